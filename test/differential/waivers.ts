/**
 * Divergences the differential tests found and reported (see the report of the differential-test
 * task). A waiver lets a check tolerate one known difference so that it can look for further ones;
 * every use is counted and printed, and `FLOWFABRIC_DIFF_STRICT=1` turns all of them off.
 * Remove a waiver when the backend (or the memory reference) is fixed.
 *
 * None is open. The last one, `claim-order-with-capabilities` (the Valkey claim took the first
 * capable candidate of the best hinted partition, not the globally best one, and trusted stale
 * hints), is fixed by the bounded hint walk (claim.lua `FF.claim_lane_one`, src/valkey/internal/claim.ts
 * `claimCluster`) and pinned by the conformance tests "the best capable candidate wins across
 * partitions…" and "a partition whose best candidate was blocked…" (scheduling.ts).
 */
import type { Waiver } from "./harness.js"

export const valkeyWaivers: ReadonlyArray<Waiver> = []

export const postgresWaivers: ReadonlyArray<Waiver> = []

/** The Valkey layer on a Valkey Cluster (valkey-cluster.test.ts): its own list, the cluster code paths differ. */
export const valkeyClusterWaivers: ReadonlyArray<Waiver> = []
