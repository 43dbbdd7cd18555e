/**
 * JSON Merge Patch (RFC 7396) for stream summaries
 * (docs/design/streams-and-budgets.md#summaries): object root, depth ≤ 16,
 * `null` deletes, the sentinel `"__ff_null__"` stores a literal `null`.
 * Objects are built without a prototype, so that any key
 * (`__proto__` too) is stored as it is.
 */
import { textProblem } from "./inputRules.js"

export const NULL_SENTINEL = "__ff_null__"
export const MAX_PATCH_DEPTH = 16

type Json = null | boolean | number | string | Array<Json> | { [k: string]: Json }

const isObject = (v: unknown): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v)

export type PatchError = "patch payload is not valid JSON" | "patch must be a JSON object" | "patch_depth_exceeded"

/** Whether a parsed JSON value nests objects and arrays deeper than `max` (iterative: any depth is safe). */
const deeperThan = (value: unknown, max: number): boolean => {
  const stack: Array<readonly [unknown, number]> = [[value, 0]]
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!
    if (typeof v !== "object" || v === null) continue
    if (depth + 1 > max) return true
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (typeof child === "object" && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

export const parsePatch = (text: string): Record<string, Json> | PatchError => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return "patch payload is not valid JSON"
  }
  if (!isObject(parsed)) return "patch must be a JSON object"
  if (deeperThan(parsed, MAX_PATCH_DEPTH)) return "patch_depth_exceeded"
  return parsed
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

/** A string or key of a parsed patch that is not storable text: `"<path>: <problem>"`. */
const textOf = (v: Json, path: string): string | undefined => {
  if (typeof v === "string") {
    const p = textProblem(v)
    return p === undefined ? undefined : `${path}: ${p}`
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const p = textOf(v[i]!, `${path}[${i}]`)
      if (p !== undefined) return p
    }
    return undefined
  }
  if (isObject(v)) {
    for (const k of Object.keys(v)) {
      const keyProblem = textProblem(k)
      if (keyProblem !== undefined) return `${path}: a key ${keyProblem}`
      const p = textOf(v[k]!, `${path}.${k.length > 32 ? `${k.slice(0, 32)}…` : k}`)
      if (p !== undefined) return p
    }
  }
  return undefined
}

/**
 * What is wrong with the bytes of a summary patch, checked at the boundary so
 * that every backend refuses the same patches before any of them parses one:
 * UTF-8 JSON, an object, at most `MAX_PATCH_DEPTH` deep, storable text.
 */
export const summaryPatchProblem = (bytes: Uint8Array): string | undefined => {
  let text: string
  try {
    text = utf8.decode(bytes)
  } catch {
    return "patch payload is not valid JSON"
  }
  const patch = parsePatch(text)
  if (typeof patch === "string") return patch
  return textOf(patch, "patch")
}

const rewriteSentinel = (v: Json): Json => {
  if (v === NULL_SENTINEL) return null
  if (Array.isArray(v)) return v.map(rewriteSentinel)
  if (isObject(v)) {
    const out: Record<string, Json> = Object.create(null)
    for (const k of Object.keys(v)) out[k] = rewriteSentinel(v[k]!)
    return out
  }
  return v
}

const merge = (target: Json | undefined, patch: Json): Json => {
  if (!isObject(patch)) return rewriteSentinel(patch)
  const out: Record<string, Json> = Object.create(null)
  if (isObject(target)) for (const k of Object.keys(target)) out[k] = target[k]!
  for (const k of Object.keys(patch)) {
    const v = patch[k]!
    if (v === null) delete out[k]
    else out[k] = merge(Object.hasOwn(out, k) ? out[k] : undefined, v)
  }
  return out
}

export const applyPatch = (document: Record<string, unknown>, patch: Record<string, Json>): Record<string, unknown> =>
  merge(document as Record<string, Json>, patch) as Record<string, unknown>
