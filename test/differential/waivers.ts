/**
 * Divergences the differential tests found and reported (see the report of the differential-test
 * task). A waiver lets a check tolerate one known difference so that it can look for further ones;
 * every use is counted and printed, and `FLOWFABRIC_DIFF_STRICT=1` turns all of them off.
 * Remove a waiver when the backend (or the memory reference) is fixed.
 */
import type { Command, Difference, Waiver } from "./harness.js"

// --- repro builders (commands refer to earlier results by index, 0 = the most recent) ---------------
const create = (o: Partial<Extract<Command, { _tag: "CreateExecution" }>> = {}): Command => ({
  _tag: "CreateExecution",
  lane: 0,
  priority: 0,
  caps: [],
  join: true,
  ...o
})
const claim = (o: Partial<Extract<Command, { _tag: "Claim" }>> = {}): Command => ({
  _tag: "Claim",
  lane: 0,
  caps: [],
  ttlMs: 1000,
  worker: 0,
  ...o
})
const createFlow: Command = { _tag: "CreateFlow" }
const advance = (ms: number): Command => ({ _tag: "Advance", ms })

const relTime = (v: Difference["candidate"]): number | undefined =>
  typeof v === "string" && /^T[+-]\d+$/.test(v) ? Number(v.slice(1)) : undefined

type JsonValue = Difference["candidate"]

const isRecord = (v: JsonValue): v is { readonly [key: string]: JsonValue } =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/** `v[k0][k1]…`, or `null` when a step of the path is missing. */
const field = (v: JsonValue, ...path: ReadonlyArray<string>): JsonValue => {
  let cur: JsonValue = v
  for (const k of path) {
    if (!isRecord(cur)) return null
    cur = cur[k] ?? null
  }
  return cur
}

const someHandle = (v: Difference["candidate"]): { readonly attemptIndex?: unknown } | undefined =>
  typeof v === "object" && v !== null && !Array.isArray(v) && "Some" in v ?
    (v as { readonly Some: { readonly attemptIndex?: unknown } }).Some :
    undefined

/**
 * A `claim` after a lease ran out but before any `expireLeases` pass marked it: the Valkey
 * `claim` first marks due leases of the partition (`FF.expire_due_leases` in execution.lua) and
 * then reclaims the older execution (new attempt, epoch + 1); memory's `claim` only takes
 * candidates already marked `lease_expired_reclaimable` (README P3: "the lease-expiry pass marks
 * expired leases, and claim takes lease_expired_reclaimable / lease_revoked candidates") and
 * leases the next eligible execution. The inline marking also reaches other executions of the
 * partition (a claim on any lane), and one past its reclaim cap turns terminal `failed`
 * (`max_reclaims_exceeded`) on the server while memory still shows it leased. Unspecified beyond
 * P3; memory is the reference. The run ends.
 */
export const claimMarksExpiredLeases: Waiver = {
  repro: [create(), claim(), create(), advance(30_000), claim()],
  id: "claim-marks-expired-leases",
  description: "claim: valkey marks due leases and reclaims them inline, memory waits for expireLeases (README P3)",
  effect: "endRun",
  matches: (d, step) => {
    // a claim (on any lane) marked another execution of the partition whose lease ran out
    if (d.path.endsWith(".stateVector.ownershipState")) {
      return d.reference === "leased" && d.candidate === "lease_expired_reclaimable"
    }
    // … or reclaimed it past its reclaim cap (terminal `max_reclaims_exceeded`): memory still shows
    // a lease that expired before the server's last change of the execution
    const lease = /^reads\.(execution [^.]+)\.describe\.ok\.Some\.currentLease$/.exec(d.path)
    if (lease !== null && d.candidate === "<absent>" && isRecord(d.reference)) {
      const expiresAt = relTime(d.reference["expiresAt"] ?? null)
      const changedAt = relTime(field(step.reads, lease[1]!, "describe", "ok", "Some", "lastMutationAt"))
      return expiresAt !== undefined && changedAt !== undefined && expiresAt <= changedAt
    }
    if (!step.label.startsWith("Claim") || !d.path.startsWith("result.ok")) return false
    const r = step.result
    const ok = typeof r === "object" && r !== null && !Array.isArray(r) && "ok" in r ? r["ok"] : undefined
    const h = someHandle(ok ?? null)
    return h !== undefined && typeof h.attemptIndex === "number" && h.attemptIndex > 0
  }
}

/**
 * Claim order with capability filtering across partitions: the Valkey `claim` visits the lane's
 * hinted partitions best *head* first and takes the first capable candidate inside that partition,
 * even when another partition holds a capable candidate with a better score (the head of the first
 * partition needs a capability the worker lacks). Memory takes the globally best capable candidate
 * (model.md §8.3 priority then FIFO; ValkeyBackend.ts: "the order is the global priority-then-FIFO
 * order of the memory engine"). The same walk also misorders without capabilities when a hint is
 * stale (better than the partition's real head): `applyDependencyToChild` blocks a partition's
 * eligible head and leaves the lane hint at its score (hints are only lowered, and re-scored after
 * a claim), so the walk visits that partition first and leases its real, worse head; repro
 * [createFlow, create({ flow: 0 }), create({ priority: 5 }), create({ priority: 9001, flow: 0 }),
 * StageEdge 1 → 0 applied, claim()]. Inside one partition the order is fixed (ff_claim tries only
 * the best head before its merged scan; conformance "the best capable candidate wins across the
 * eligible and reclaim indexes"). This waiver hides every claim where the server leases another
 * execution's first attempt, so keep it only while the bug is open. The run ends.
 */
export const claimOrderWithCapabilities: Waiver = {
  repro: [create(), createFlow, create({ priority: 1, caps: ["gpu"], flow: 0 }), create({ flow: 0 }), claim()],
  id: "claim-order-with-capabilities",
  description: "claim: valkey does not always take the best capable candidate across hinted partitions (model.md §8.3)",
  effect: "endRun",
  matches: (d, step) => {
    if (!step.label.startsWith("Claim") || d.path !== "result.ok.Some.executionId") return false
    // a reclaim by the candidate (attempt index > 0) is `claim-marks-expired-leases`
    const r = step.result
    const ok = typeof r === "object" && r !== null && !Array.isArray(r) && "ok" in r ? r["ok"] : undefined
    return someHandle(ok ?? null)?.attemptIndex === 0
  }
}

export const valkeyWaivers: ReadonlyArray<Waiver> = [
  claimOrderWithCapabilities,
  claimMarksExpiredLeases
]

export const postgresWaivers: ReadonlyArray<Waiver> = []
