/**
 * JSON Merge Patch (RFC 7396) for stream summaries (model.md §12.2): object
 * root, depth ≤ 16, `null` deletes, the sentinel `"__ff_null__"` stores a
 * literal `null`.
 */
export const NULL_SENTINEL = "__ff_null__"
export const MAX_PATCH_DEPTH = 16

type Json = null | boolean | number | string | Array<Json> | { [k: string]: Json }

const isObject = (v: unknown): v is Record<string, Json> => typeof v === "object" && v !== null && !Array.isArray(v)

export type PatchError = "patch payload is not valid JSON" | "patch must be a JSON object" | "patch_depth_exceeded"

const depth = (v: unknown): number => {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth))
  if (isObject(v)) return 1 + Math.max(0, ...Object.values(v).map(depth))
  return 0
}

export const parsePatch = (text: string): Record<string, Json> | PatchError => {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return "patch payload is not valid JSON"
  }
  if (!isObject(parsed)) return "patch must be a JSON object"
  if (depth(parsed) > MAX_PATCH_DEPTH) return "patch_depth_exceeded"
  return parsed
}

const rewriteSentinel = (v: Json): Json => {
  if (v === NULL_SENTINEL) return null
  if (Array.isArray(v)) return v.map(rewriteSentinel)
  if (isObject(v)) {
    const out: Record<string, Json> = {}
    for (const [k, x] of Object.entries(v)) out[k] = rewriteSentinel(x)
    return out
  }
  return v
}

const merge = (target: Json | undefined, patch: Json): Json => {
  if (!isObject(patch)) return rewriteSentinel(patch)
  const out: Record<string, Json> = isObject(target) ? { ...target } : {}
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k]
    else out[k] = merge(out[k], v)
  }
  return out
}

export const applyPatch = (document: Record<string, unknown>, patch: Record<string, Json>): Record<string, unknown> =>
  merge(document as Record<string, Json>, patch) as Record<string, unknown>
