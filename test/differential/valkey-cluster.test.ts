// Differential test of the Valkey layer on a 3-master Valkey Cluster (the one test/support/globalSetup.ts
// starts): the same generated sequences as valkey.test.ts, compared with the memory layer. A cluster
// runs other code than a standalone server — claims partition by partition instead of ff_claim_lane,
// completions without ff_complete_claim / ff_complete_many, lane reads one call per node — so it gets
// the same comparison. Every run gets its own key prefix (deleted afterwards on every primary) and reads
// time from Effect's Clock (TestClock). Known, reported divergences are waived (waivers.ts);
// FLOWFABRIC_DIFF_STRICT=1 shows them all.
import { afterAll, describe, expect, inject, it } from "vitest"
import * as H from "./harness.js"
import { valkeyClusterFactory } from "./servers.js"
import { valkeyClusterWaivers } from "./waivers.js"

const cluster = valkeyClusterFactory(inject("valkeyClusterUrl"))
afterAll(() => cluster.dispose())

describe("differential: memory vs valkey cluster", () => {
  it("the Valkey layer on a cluster agrees with the memory layer on random operation sequences", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: cluster,
      numRuns: 30,
      maxCommands: 40,
      timeLimitMs: 150_000,
      waivers: valkeyClusterWaivers
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(180_000))

  it("the Valkey layer on a cluster agrees with the memory layer on flows that grow while they run", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: cluster,
      numRuns: 25,
      maxCommands: 40,
      timeLimitMs: 120_000,
      waivers: valkeyClusterWaivers,
      profile: "flows"
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(150_000))

  it("the Valkey layer on a cluster agrees with the memory layer on lanes of a hundred waiting executions and more", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: cluster,
      numRuns: 8,
      maxCommands: 10,
      timeLimitMs: 120_000,
      waivers: valkeyClusterWaivers,
      profile: "backlog"
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(150_000))

  // FLOWFABRIC_DIFF_WAIVERS=1: every waiver's minimal repro must still diverge (else delete the waiver)
  it.runIf(process.env["FLOWFABRIC_DIFF_WAIVERS"] === "1")("every waiver still matches a real divergence", async () => {
    const checks = await H.checkWaiverRepros(H.memoryFactory(), cluster, valkeyClusterWaivers)
    for (const c of checks) {
      console.log(`[differential] waiver ${c.id}: ${c.stillDiverges ? "still diverges" : "STALE (the repro agrees)"}`)
      if (c.divergence !== undefined) console.log(H.formatDivergence(c.divergence))
    }
    expect(checks.filter((c) => !c.stillDiverges).map((c) => c.id)).toEqual([])
  }, 60_000)
})
