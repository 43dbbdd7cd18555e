// Differential test of the Valkey layer (issue: "a differential test runs the same random operation
// sequences against the memory layer and the Valkey layer and compares every outcome"). Every run
// gets its own key prefix (deleted afterwards) and reads time from Effect's Clock (TestClock).
// Known, reported divergences are waived (waivers.ts); FLOWFABRIC_DIFF_STRICT=1 shows them all.
import { afterAll, describe, expect, inject, it } from "vitest"
import * as H from "./harness.js"
import { valkeyFactory } from "./servers.js"
import { valkeyWaivers } from "./waivers.js"

const valkey = valkeyFactory(inject("valkeyUrl"))
afterAll(() => valkey.dispose())

describe("differential: memory vs valkey", () => {
  it("the Valkey layer agrees with the memory layer on random operation sequences", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: valkey,
      numRuns: 30,
      maxCommands: 40,
      timeLimitMs: 150_000,
      waivers: valkeyWaivers
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(180_000))

  it("the Valkey layer agrees with the memory layer on flows that grow while they run", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: valkey,
      numRuns: 25,
      maxCommands: 40,
      timeLimitMs: 120_000,
      waivers: valkeyWaivers,
      profile: "flows"
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(150_000))

  it("the Valkey layer agrees with the memory layer on lanes of a hundred waiting executions and more", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: valkey,
      numRuns: 8,
      maxCommands: 10,
      timeLimitMs: 120_000,
      waivers: valkeyWaivers,
      profile: "backlog"
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(150_000))

  // FLOWFABRIC_DIFF_WAIVERS=1: every waiver's minimal repro must still diverge (else delete the waiver)
  it.runIf(process.env["FLOWFABRIC_DIFF_WAIVERS"] === "1")("every waiver still matches a real divergence", async () => {
    const checks = await H.checkWaiverRepros(H.memoryFactory(), valkey, valkeyWaivers)
    for (const c of checks) {
      console.log(`[differential] waiver ${c.id}: ${c.stillDiverges ? "still diverges" : "STALE (the repro agrees)"}`)
      if (c.divergence !== undefined) console.log(H.formatDivergence(c.divergence))
    }
    expect(checks.filter((c) => !c.stillDiverges).map((c) => c.id)).toEqual([])
  }, 60_000)
})
