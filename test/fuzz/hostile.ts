/**
 * The hostile values the fuzz test mixes into otherwise valid arguments, and the
 * machinery that mixes them in: the sites of an argument tree, a mutation of one
 * site, and a short description of a value for failure messages.
 */
import { Duration, FastCheck as fc } from "effect"

/** How a hostile value is made: fresh per use (cyclic values, mutable arrays), from the value it replaces. */
export interface Hostile {
  readonly name: string
  readonly make: (base: unknown) => unknown
}

const enc = new TextEncoder()

const HUGE_STRING = "x".repeat(1 << 20)
/** Long enough to matter, short enough for every schema-accepted position (lengths are the byte budget's). */
const LONG_STRING = "y".repeat(1_000)

const deepArray = (depth: number): unknown => {
  let v: unknown = 0
  for (let i = 0; i < depth; i++) v = [v]
  return v
}
const deepObject = (depth: number): unknown => {
  let v: unknown = {}
  for (let i = 0; i < depth; i++) v = { a: v }
  return v
}
/** A resume condition nested `depth` deep: a recursive schema walks it. */
const deepCondition = (depth: number): unknown => {
  let v: unknown = { _tag: "Single", waitpointKey: "k", matcher: { _tag: "Wildcard" } }
  for (let i = 0; i < depth; i++) v = { _tag: "Composite", body: { _tag: "AllOf", members: [v] } }
  return v
}
const cyclicCondition = (): unknown => {
  const members: Array<unknown> = []
  const c = { _tag: "Composite", body: { _tag: "AllOf", members } }
  members.push(c)
  return c
}
const cyclicObject = (): unknown => {
  const o: Record<string, unknown> = { a: 1 }
  o["self"] = o
  o["list"] = [o]
  return o
}
const cyclicArray = (): unknown => {
  const a: Array<unknown> = [1]
  a.push(a)
  return a
}
/** `{"__proto__": …}` as an own key (what JSON.parse makes of untrusted text). */
const protoObject = (): unknown => JSON.parse("{\"__proto__\":{\"polluted\":\"yes\"},\"ok.key\":\"v\"}")

/** A JSON document nested `depth` deep, as the bytes of a summary patch. */
const deepJsonBytes = (depth: number): Uint8Array => enc.encode(`{"a":${"[".repeat(depth)}${"]".repeat(depth)}}`)

/** Spellings of one id that are not its canonical form. */
const respell = (s: string, how: number): string => {
  const brace = s.indexOf("}:")
  const isExecutionId = s.startsWith("{fp:") && brace > 0
  const uuid = isExecutionId ? s.slice(brace + 2) : s
  const prefix = isExecutionId ? s.slice(0, brace + 2) : ""
  const spellings = [
    `${prefix}${uuid.toUpperCase()}`,
    `${prefix}{${uuid}}`,
    `${prefix}urn:uuid:${uuid}`,
    `${prefix}${uuid.replace(/-/g, "")}`,
    `\n${s}\n`,
    ` ${s}`,
    `${s}\u0000`
  ]
  if (isExecutionId) {
    const n = Number(s.slice(4, brace))
    spellings.push(`{fp:0${n}}:${uuid}`, `{fp:${n + 65_536}}:${uuid}`, `{fp:${n + 256 * 7}}:${uuid}`)
  }
  return spellings[how % spellings.length]!
}

const str = (base: unknown): string => (typeof base === "string" ? base : "")

/** Every hostile value; some depend on the value they replace. */
export const hostiles: ReadonlyArray<Hostile> = [
  { name: "null", make: () => null },
  { name: "undefined", make: () => undefined },
  { name: "true", make: () => true },
  { name: "0", make: () => 0 },
  { name: "-1", make: () => -1 },
  { name: "-0", make: () => -0 },
  { name: "1.5", make: () => 1.5 },
  { name: "NaN", make: () => Number.NaN },
  { name: "Infinity", make: () => Number.POSITIVE_INFINITY },
  { name: "-Infinity", make: () => Number.NEGATIVE_INFINITY },
  { name: "2^53", make: () => 2 ** 53 },
  { name: "1e308", make: () => 1e308 },
  { name: "max safe integer", make: () => Number.MAX_SAFE_INTEGER },
  { name: "min safe integer", make: () => Number.MIN_SAFE_INTEGER },
  { name: "2^31", make: () => 2 ** 31 },
  { name: "2^32", make: () => 2 ** 32 },
  { name: "-2^31", make: () => -(2 ** 31) },
  { name: "bigint", make: () => 12n },
  { name: "huge bigint", make: () => 2n ** 80n },
  { name: "symbol", make: () => Symbol("hostile") },
  { name: "function", make: () => () => 1 },
  { name: "date", make: () => new Date(0) },
  { name: "map", make: () => new Map([["a", 1]]) },
  { name: "empty string", make: () => "" },
  { name: "blank", make: () => "   " },
  { name: "NUL", make: () => "\u0000" },
  { name: "NUL inside", make: (b) => `${str(b) || "a"}\u0000b` },
  { name: "lone high surrogate", make: (b) => `${str(b) || "a"}\ud800` },
  { name: "lone low surrogate", make: () => "x\udc00y" },
  { name: "swapped surrogates", make: () => "\udfff\ud800" },
  { name: "respelled 0", make: (b) => respell(str(b), 0) },
  { name: "respelled 1", make: (b) => respell(str(b), 1) },
  { name: "respelled 2", make: (b) => respell(str(b), 2) },
  { name: "respelled 3", make: (b) => respell(str(b), 3) },
  { name: "respelled 4", make: (b) => respell(str(b), 4) },
  { name: "respelled 5", make: (b) => respell(str(b), 5) },
  { name: "respelled 6", make: (b) => respell(str(b), 6) },
  { name: "respelled 7", make: (b) => respell(str(b), 7) },
  { name: "respelled 8", make: (b) => respell(str(b), 8) },
  { name: "respelled 9", make: (b) => respell(str(b), 9) },
  { name: "__proto__", make: () => "__proto__" },
  // valid text that a store's own syntax could trip on
  { name: "Lua pattern", make: (b) => `${str(b)}%[(` },
  { name: "percent", make: () => "100%" },
  { name: "colon", make: (b) => `${str(b)}:x` },
  { name: "hash tag", make: () => "{fp:1}:{b:2}" },
  { name: "emoji", make: (b) => `${str(b)}😀` },
  { name: "line separators", make: () => "a\u2028b\r\nc" },
  { name: "quotes", make: () => "'\"\\`$" },
  { name: "JSON text", make: () => "{\"a\":[1,null]}" },
  { name: "null sentinel", make: () => "__ff_null__" },
  { name: "SQL", make: () => "x'); DROP TABLE t; --" },
  { name: "huge string", make: (b) => (typeof b === "string" ? LONG_STRING : HUGE_STRING) },
  { name: "empty array", make: () => [] },
  { name: "[null]", make: () => [null] },
  { name: "huge array", make: (b) => (Array.isArray(b) ? Array.from({ length: 300 }, () => b[0]) : new Array(200_000).fill(7)) },
  { name: "empty object", make: () => ({}) },
  { name: "null-prototype object", make: () => Object.create(null) },
  { name: "__proto__ object", make: protoObject },
  { name: "deep array", make: () => deepArray(20_000) },
  { name: "deep object", make: () => deepObject(20_000) },
  { name: "deep condition", make: () => deepCondition(20_000) },
  { name: "cyclic object", make: cyclicObject },
  { name: "cyclic array", make: cyclicArray },
  { name: "cyclic condition", make: cyclicCondition },
  { name: "bytes where text", make: (b) => (typeof b === "string" ? enc.encode(b) : new Uint8Array([1, 2])) },
  { name: "text where bytes", make: (b) => (b instanceof Uint8Array ? new TextDecoder().decode(b) : "text") },
  { name: "invalid UTF-8 bytes", make: () => new Uint8Array([0x7b, 0xff, 0xfe, 0x00, 0x7d]) },
  { name: "NUL bytes", make: () => new Uint8Array([0x00, 0x00]) },
  { name: "deep JSON bytes", make: () => deepJsonBytes(20_000) },
  { name: "JSON with \\u0000", make: () => enc.encode("{\"a\":\"x\\u0000y\",\"b\\u0000\":1}") },
  { name: "JSON with a lone surrogate", make: () => enc.encode("{\"a\":\"\\ud800\",\"\\udc00\":1}") },
  { name: "JSON with __proto__", make: () => enc.encode("{\"__proto__\":{\"x\":1},\"constructor\":{\"y\":2}}") },
  { name: "JSON array", make: () => enc.encode("[1,2]") },
  { name: "negative duration", make: () => Duration.millis(-5) },
  { name: "typed array of another kind", make: () => new Uint16Array([1, 2]) }
]

// ---------------------------------------------------------------------------
// Sites and mutations
// ---------------------------------------------------------------------------

export type Path = ReadonlyArray<string | number>

const isPlain = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && (Object.getPrototypeOf(u) === Object.prototype || Object.getPrototypeOf(u) === null)

/** Every position of an argument list: each argument and everything inside plain objects and arrays. */
export const sitesOf = (args: ReadonlyArray<unknown>): ReadonlyArray<Path> => {
  const out: Array<Path> = []
  const walk = (v: unknown, path: Path) => {
    out.push(path)
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...path, i]))
    else if (isPlain(v)) for (const k of Object.keys(v)) walk(v[k], [...path, k])
  }
  args.forEach((a, i) => walk(a, [i]))
  return out
}

/** A copy of plain objects and arrays; everything else is shared. */
export const clone = (v: unknown): unknown => {
  if (Array.isArray(v)) return v.map(clone)
  if (isPlain(v)) {
    const out: Record<string, unknown> = Object.getPrototypeOf(v) === null ? Object.create(null) : {}
    for (const k of Object.keys(v)) Object.defineProperty(out, k, { value: clone(v[k]), enumerable: true, writable: true, configurable: true })
    return out
  }
  return v
}

export const getAt = (root: ReadonlyArray<unknown>, path: Path): unknown => {
  let v: unknown = root
  for (const k of path) v = (v as Record<string | number, unknown>)[k]
  return v
}

const setAt = (root: Array<unknown>, path: Path, value: unknown): void => {
  const parent = getAt(root, path.slice(0, -1)) as Record<string | number, unknown>
  Object.defineProperty(parent, path[path.length - 1]!, { value, enumerable: true, writable: true, configurable: true })
}

export type Mutation =
  | { readonly _tag: "None" }
  | { readonly _tag: "Replace"; readonly site: number; readonly hostile: number }
  | { readonly _tag: "Delete"; readonly site: number }
  | { readonly _tag: "AddKey"; readonly site: number; readonly key: string; readonly hostile: number }

export const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ _tag: "None" as const }) },
  {
    weight: 12,
    arbitrary: fc.record({
      _tag: fc.constant("Replace" as const),
      site: fc.nat(),
      hostile: fc.nat({ max: hostiles.length - 1 })
    })
  },
  { weight: 2, arbitrary: fc.record({ _tag: fc.constant("Delete" as const), site: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({
      _tag: fc.constant("AddKey" as const),
      site: fc.nat(),
      key: fc.constantFrom("__proto__", "constructor", "toString", "hasOwnProperty", "ok.__proto__"),
      hostile: fc.nat({ max: hostiles.length - 1 })
    })
  }
)

export interface Mutated {
  readonly args: ReadonlyArray<unknown>
  /** What was changed, for failure messages; `undefined` when the arguments are the valid ones. */
  readonly description: string | undefined
  /** The path that was changed. */
  readonly path: Path | undefined
}

/** Applies `m` to a copy of `args`. */
export const mutate = (args: ReadonlyArray<unknown>, m: Mutation): Mutated => {
  const copy = clone(args) as Array<unknown>
  if (m._tag === "None") return { args: copy, description: undefined, path: undefined }
  const sites = sitesOf(copy)
  if (m._tag === "Replace") {
    // with no arguments at all, the hostile value is an extra argument
    const path: Path = sites.length === 0 ? [0] : sites[m.site % sites.length]!
    const h = hostiles[m.hostile]!
    const value = h.make(getAt(copy, path))
    setAt(copy, path, value)
    return { args: copy, description: `${pathText(path)} := ${h.name}`, path }
  }
  if (m._tag === "Delete") {
    const deletable = sites.filter((p) => p.length >= 2)
    if (deletable.length === 0) return { args: copy, description: undefined, path: undefined }
    const path = deletable[m.site % deletable.length]!
    const parent = getAt(copy, path.slice(0, -1)) as Record<string | number, unknown>
    if (Array.isArray(parent)) parent.splice(path[path.length - 1] as number, 1)
    else delete parent[path[path.length - 1]!]
    return { args: copy, description: `delete ${pathText(path)}`, path }
  }
  const objects = sites.filter((p) => isPlain(getAt(copy, p)))
  if (objects.length === 0) return { args: copy, description: undefined, path: undefined }
  const path = objects[m.site % objects.length]!
  const h = hostiles[m.hostile]!
  const target = getAt(copy, path) as Record<string, unknown>
  // an own property, also for "__proto__" (an assignment would set the prototype)
  Object.defineProperty(target, m.key, { value: h.make(undefined), enumerable: true, writable: true, configurable: true })
  return { args: copy, description: `${pathText(path)}[${JSON.stringify(m.key)}] := ${h.name}`, path: [...path, m.key] }
}

export const pathText = (p: Path): string => `args${p.map((k) => (typeof k === "number" ? `[${k}]` : `.${k}`)).join("")}`

/** A short, safe description of any value (never throws, never long). */
export const preview = (u: unknown): string => {
  try {
    if (typeof u === "string") return u.length > 80 ? `${JSON.stringify(u.slice(0, 80))}…(${u.length} chars)` : JSON.stringify(u)
    if (typeof u === "bigint") return `${u}n`
    if (typeof u === "symbol" || typeof u === "function") return String(u)
    if (u instanceof Uint8Array) return `<${u.length} bytes>`
    const seen = new WeakSet<object>()
    const text = JSON.stringify(u, (_k, v: unknown) => {
      if (typeof v === "bigint") return `${v}n`
      if (v instanceof Uint8Array) return `<${v.length} bytes>`
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "<cycle>"
        seen.add(v)
      }
      return v
    })
    return text === undefined ? String(u) : text.length > 200 ? `${text.slice(0, 200)}…` : text
  } catch (e) {
    return `<unprintable: ${e instanceof Error ? e.message.slice(0, 80) : "?"}>`
  }
}
