/**
 * The execution core as stored on Valkey (docs/design/valkey.md#the-core-record): the short field
 * names the layer reads directly, and the public state of a stored state vector. The Lua side of
 * the same table is `CF` / `SV_CODES` in src/valkey/lua/helpers.lua; every other read of the core
 * goes through a function, which hands the layer the fields under their long names.
 */

/** Stored names of the core fields the layer reads with HGET / HMGET. */
export const CoreField = {
  laneId: "l",
  namespace: "ns",
  executionKind: "k",
  payloadEncoding: "pe",
  trace: "tr",
  flowId: "f",
  stateVector: "sv",
  /** an input of at most 48 bytes (a larger one has its own key) */
  payload: "p",
  /** a result of at most 48 bytes (a larger one has its own key; a version 4 store has only the key) */
  result: "rv"
} as const

const PHASE: Record<string, string> = { s: "submitted", r: "runnable", a: "active", u: "suspended", t: "terminal" }
const ELIGIBILITY: Record<string, string> = {
  e: "eligible_now",
  t: "not_eligible_until_time",
  d: "blocked_by_dependencies",
  b: "blocked_by_budget",
  q: "blocked_by_quota",
  r: "blocked_by_route",
  l: "blocked_by_lane_state",
  o: "blocked_by_operator",
  n: "not_applicable"
}
const OUTCOME: Record<string, string> = { n: "none", s: "success", f: "failed", c: "cancelled", e: "expired", k: "skipped" }
const CODES: ReadonlyArray<Record<string, string> | undefined> = [PHASE, undefined, ELIGIBILITY, undefined, OUTCOME, undefined]

/** The six dimensions of a stored vector (one character each, "-" for "", "(value)" for a value without a code). */
const dimensions = (sv: string): ReadonlyArray<string> | undefined => {
  const out: Array<string> = []
  let pos = 0
  for (let i = 0; i < 6; i++) {
    const ch = sv[pos]
    if (ch === undefined) return undefined
    if (ch === "(") {
      const close = sv.indexOf(")", pos)
      if (close < 0) return undefined
      out.push(sv.slice(pos + 1, close))
      pos = close + 1
    } else {
      const table = CODES[i]
      out.push(ch === "-" ? "" : table === undefined ? ch : (table[ch] ?? ""))
      pos += 1
    }
  }
  return out
}

/** The public state a stored state vector shows (as helpers.lua FF.public); undefined when malformed. */
export const publicStateOfVector = (sv: string): string | undefined => {
  const d = dimensions(sv)
  if (d === undefined) return undefined
  const [phase, , elig, , outcome] = d
  switch (phase) {
    case "terminal":
      return outcome === "success" ? "completed" : outcome === "none" || outcome === "" ? "failed" : outcome
    case "suspended":
      return "suspended"
    case "active":
      return "active"
    case "runnable":
      return elig === "not_eligible_until_time" ?
        "delayed" :
        elig === "blocked_by_dependencies" ?
        "waiting_children" :
        elig === "blocked_by_budget" || elig === "blocked_by_quota" ?
        "rate_limited" :
        "waiting"
    default:
      return "waiting"
  }
}
