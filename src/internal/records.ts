/**
 * Records whose keys are the caller's (tags, budget dimensions, usage keys,
 * summary documents): built without a prototype, so that every key — also
 * `__proto__`, `constructor`, `toString` — is a key like any other, stored and
 * read back as it is (an assignment to `__proto__` on a plain object would set
 * its prototype instead, and `constructor` would read Object's).
 */

/** A record of `entries`, without a prototype. */
export const recordOf = <V>(entries: Iterable<readonly [string, V]>): Record<string, V> => {
  const out: Record<string, V> = Object.create(null)
  for (const [k, v] of entries) out[k] = v
  return out
}

/**
 * The own entries of a decoded JSON object whose values all pass `is`, or
 * `undefined` when `u` is not such an object.
 */
export const ownEntries = <V>(u: unknown, is: (v: unknown) => v is V): Array<[string, V]> | undefined => {
  if (typeof u !== "object" || u === null || Array.isArray(u)) return undefined
  const out: Array<[string, V]> = []
  for (const k of Object.keys(u)) {
    const v = (u as Record<string, unknown>)[k]
    if (!is(v)) return undefined
    out.push([k, v])
  }
  return out
}
