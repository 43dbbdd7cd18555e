/**
 * Keeping secrets out of errors (docs/errors.md, "Secrets in errors"). A native
 * failure is copied into a plain `Error` that keeps its message and a few
 * named fields, never the command arguments, query parameters or row dumps the
 * native object carries; and a long run of hex digits — a token's digest, an
 * HMAC secret — is masked in any text an error keeps.
 */

/** Runs of 32 or more hex digits: token digests (40 or 64) and secrets (64 or more). */
const LONG_HEX = /[0-9a-fA-F]{32,}/g

/** `text` with every long run of hex digits masked. */
export const redactText = (text: string): string => text.replace(LONG_HEX, "<redacted>")

const field = (u: unknown, key: string): unknown =>
  typeof u === "object" && u !== null ? (u as Record<string, unknown>)[key] : undefined

/** The message of a native failure, masked. */
export const safeMessage = (error: unknown): string =>
  redactText(error instanceof Error ? error.message : typeof error === "string" ? error : String(error))

/**
 * A plain copy of a native failure: its class name, masked message, and the
 * string or number fields named in `keep` (masked too). Nothing else of the
 * original — its arguments, parameters, details or nested causes — is kept.
 */
export const safeCause = (error: unknown, keep: ReadonlyArray<string>, message = safeMessage(error)): Error => {
  const copy = new Error(message)
  const name = field(error, "name")
  copy.name = typeof name === "string" ? name : "Error"
  for (const key of keep) {
    const value = field(error, key)
    if (typeof value === "string") Object.assign(copy, { [key]: redactText(value) })
    else if (typeof value === "number") Object.assign(copy, { [key]: value })
  }
  // the stack names the code that failed; its first line repeats the (masked) message
  const stack = field(error, "stack")
  copy.stack = typeof stack === "string" ?
    [`${copy.name}: ${message}`, ...stack.split("\n").filter((l) => /^\s+at /.test(l))].join("\n") :
    `${copy.name}: ${message}`
  return copy
}
