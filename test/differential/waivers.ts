/**
 * Divergences the differential tests found and reported (see the report of the differential-test
 * task). A waiver lets a check tolerate one known difference so that it can look for further ones;
 * every use is counted and printed, and `FLOWFABRIC_DIFF_STRICT=1` turns all of them off.
 * Remove a waiver when the backend (or the memory reference) is fixed.
 *
 * A waiver is `{ id, description, matches, effect, repro }`: `matches` picks the differences it
 * tolerates (keep it narrow), `effect: "endRun"` ends the run there when the state differs from
 * then on, and `repro` is the shortest known sequence that shows the divergence (checked by
 * `FLOWFABRIC_DIFF_WAIVERS=1`: a repro that agrees marks the waiver stale).
 *
 * Open: none.
 * Closed: `valkey-replayed-member-skipped-by-unrelated-edge-apply` (a completed flow member that
 * was replayed was skipped on Valkey when a late upstream of its already satisfied all_of join
 * failed or was skipped — in the repro, by an edge applied between two other members, whose skip
 * cascaded into it — though a join fires once), fixed in flow.lua `FF.resolve_edge` and pinned by
 * the conformance tests "a replayed completed member is not skipped when a late upstream…" and "a
 * replayed member whose satisfied all_of join counts a failure…" (flows-growth.ts);
 * `valkey-signal-to-expired-pending-waitpoint-while-suspended` (a signal to a pending
 * waitpoint the expiry pass closed, sent while the execution was suspended on another waitpoint,
 * answered Contention(WaitpointNotFound) on Valkey, not State(WaitpointClosed)), fixed in
 * suspension.lua and pinned by the conformance test "an expired pending waitpoint of an execution
 * suspended on another one…" (signals-waitpoints.ts); `claim-order-with-capabilities` (the Valkey claim took the first
 * capable candidate of the best hinted partition, not the globally best one, and trusted stale
 * hints), is fixed by the bounded hint walk (claim.lua `FF.claim_lane_one`, src/valkey/internal/claim.ts
 * `claimCluster`) and pinned by the conformance tests "the best capable candidate wins across
 * partitions…" and "a partition whose best candidate was blocked…" (scheduling.ts).
 */
import type { Waiver } from "./harness.js"

export const valkeyWaivers: ReadonlyArray<Waiver> = []

export const postgresWaivers: ReadonlyArray<Waiver> = []

/**
 * The Valkey layer on a Valkey Cluster (valkey-cluster.test.ts): its own list, as the cluster code
 * paths differ.
 */
export const valkeyClusterWaivers: ReadonlyArray<Waiver> = []
