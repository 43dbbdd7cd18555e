/**
 * Divergences the differential tests found and reported (see the report of the differential-test
 * task). A waiver lets a check tolerate one known difference so that it can look for further ones;
 * every use is counted and printed, and `FLOWFABRIC_DIFF_STRICT=1` turns all of them off.
 * Remove a waiver when the backend (or the memory reference) is fixed.
 *
 * Open: the Valkey waiver below, found by the cluster test (`valkey-cluster.test.ts`) with
 * 80-command sequences; standalone Valkey diverges the same way, memory and Postgres agree.
 * Closed: `valkey-signal-to-expired-pending-waitpoint-while-suspended` (a signal to a pending
 * waitpoint the expiry pass closed, sent while the execution was suspended on another waitpoint,
 * answered Contention(WaitpointNotFound) on Valkey, not State(WaitpointClosed)), fixed in
 * suspension.lua and pinned by the conformance test "an expired pending waitpoint of an execution
 * suspended on another one…" (signals-waitpoints.ts); `claim-order-with-capabilities` (the Valkey claim took the first
 * capable candidate of the best hinted partition, not the globally best one, and trusted stale
 * hints), is fixed by the bounded hint walk (claim.lua `FF.claim_lane_one`, src/valkey/internal/claim.ts
 * `claimCluster`) and pinned by the conformance tests "the best capable candidate wins across
 * partitions…" and "a partition whose best candidate was blocked…" (scheduling.ts).
 */
import type { Command, Waiver } from "./harness.js"

const cancelFlowRepro: ReadonlyArray<Command> = [
  { _tag: "CreateFlow" },
  { _tag: "CreateExecution", lane: 0, priority: 0, caps: [], flow: 0, join: true },
  { _tag: "CreateExecution", lane: 0, priority: 0, retry: { maxRetries: 0, backoff: "none", onlyTransient: false }, caps: [], flow: 0, join: true },
  { _tag: "LateEdge", flow: 0, policy: { _tag: "all_of" }, early: "complete", child: "completed", late: "complete", after: "complete", via: "apply" },
  { _tag: "LateEdge", flow: 0, policy: { _tag: "quorum", k: 0, onSatisfied: "cancel_remaining" }, early: "complete", child: "waiting", late: "skipped", after: "complete", via: "apply" },
  { _tag: "CreateExecution", lane: 0, priority: 0, retry: { maxRetries: 0, backoff: "fixed100", onlyTransient: true }, caps: [], flow: 0, join: true, maxReclaimCount: 0 },
  { _tag: "ExtendFlow", flow: 5, member: false, edges: [], dataPassing: false },
  { _tag: "StageEdge", flow: 0, upstream: 3, downstream: 3, revision: "current", apply: true, dataPassing: true },
  { _tag: "StageEdge", flow: 5, upstream: 0, downstream: 5, revision: "current", apply: true, dataPassing: true },
  { _tag: "Complete", handle: 1, payload: "" },
  { _tag: "ExtendFlow", flow: 0, member: true, edges: [[-1, -1]], join: { _tag: "quorum", k: 0, onSatisfied: "cancel_remaining" }, dataPassing: true },
  { _tag: "ReplayExecution", execution: 5 },
  { _tag: "SetEdgeGroupPolicy", flow: 2, downstream: 5, policy: { _tag: "quorum", k: 1, onSatisfied: "cancel_remaining" }},
  { _tag: "LateEdge", flow: 0, policy: { _tag: "all_of" }, early: "cancel", child: "completed", late: "none", after: "fail", via: "apply" },
  { _tag: "SetEdgeGroupPolicy", flow: 1, downstream: 3, policy: { _tag: "all_of" }},
  { _tag: "CompleteAndClaim", handle: 0, none: true, payload: "", lane: 0, caps: ["gpu", "ssd"], worker: 0, max: 0 },
  { _tag: "StageEdge", flow: 5, upstream: 4, downstream: 3, revision: "current", apply: true, dataPassing: true }
]

/**
 * Found by the cluster differential test with 80-command sequences (standalone Valkey diverges the
 * same way; memory and Postgres agree). A flow member that completed and was replayed (waiting,
 * `pending_replay_attempt`, eligible) is skipped by Valkey (`Skipped` event, terminal `skipped`) in
 * the step that stages and applies an edge between two *other* members of its flow (the
 * repro's last step); memory and Postgres leave it waiting. No rule in
 * docs/design/flows.md skips a member for an edge it is not the downstream of, so Valkey is taken to
 * be wrong (not diagnosed further: likely a queued cascade or a stale join group of the replayed
 * member resolved by the apply). The state then differs for the rest of the run, so the run ends
 * there. The difference shows in the reads of the first later step that reads the member, by then
 * in whatever state memory moved it to (in the repro, the final sweep: waiting; in the long
 * sequence it was found in, a cancelled flow: cancelled), so the waiver matches any `publicState`
 * Valkey reads as `skipped` where memory does not. That is broad: it would also end runs at other
 * wrong skips — which is why its hits are printed, and `FLOWFABRIC_DIFF_STRICT=1` shows them.
 */
const replayedMemberSkippedByUnrelatedApply: Waiver = {
  id: "valkey-replayed-member-skipped-by-unrelated-edge-apply",
  description: "a completed flow member that was replayed and waits is skipped by Valkey when an edge between two " +
    "other members is applied; memory and Postgres leave it waiting (matches any publicState skipped on Valkey only)",
  matches: (d) =>
    /\.publicState$/.test(d.path) && d.reference !== "skipped" && d.candidate === "skipped",
  effect: "endRun",
  repro: cancelFlowRepro
}

export const valkeyWaivers: ReadonlyArray<Waiver> = [replayedMemberSkippedByUnrelatedApply]

export const postgresWaivers: ReadonlyArray<Waiver> = []

/**
 * The Valkey layer on a Valkey Cluster (valkey-cluster.test.ts): its own list, as the cluster code
 * paths differ; today the standalone waiver, which the cluster shows the same way.
 */
export const valkeyClusterWaivers: ReadonlyArray<Waiver> = [replayedMemberSkippedByUnrelatedApply]
