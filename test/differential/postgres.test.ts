// Differential test of the Postgres layer (issue: "a differential test runs the same random operation
// sequences against the memory layer and the Postgres layer and compares every outcome"). Every run
// gets an empty schema of its own and a new backend that reads time from Effect's Clock (TestClock).
// Known, reported divergences are waived (waivers.ts); FLOWFABRIC_DIFF_STRICT=1 shows them all.
import { afterAll, describe, expect, inject, it } from "vitest"
import * as H from "./harness.js"
import { postgresFactory } from "./servers.js"
import { postgresWaivers } from "./waivers.js"

const postgres = postgresFactory(inject("pgUrl"))
afterAll(() => postgres.dispose())

describe("differential: memory vs postgres", () => {
  it("the Postgres layer agrees with the memory layer on random operation sequences", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: postgres,
      numRuns: 30,
      maxCommands: 40,
      timeLimitMs: 150_000,
      waivers: postgresWaivers
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(180_000))

  it("the Postgres layer agrees with the memory layer on flows that grow while they run", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: postgres,
      numRuns: 25,
      maxCommands: 40,
      timeLimitMs: 120_000,
      waivers: postgresWaivers,
      profile: "flows"
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(150_000))

  it("the Postgres layer agrees with the memory layer on lanes of a hundred waiting executions and more", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory(),
      candidate: postgres,
      numRuns: 8,
      maxCommands: 10,
      timeLimitMs: 120_000,
      waivers: postgresWaivers,
      profile: "backlog"
    })
    expect(result.numRuns).toBeGreaterThan(0)
  }, H.diffTestTimeout(150_000))

  // FLOWFABRIC_DIFF_WAIVERS=1: every waiver's minimal repro must still diverge (else delete the waiver)
  it.runIf(process.env["FLOWFABRIC_DIFF_WAIVERS"] === "1")("every waiver still matches a real divergence", async () => {
    const checks = await H.checkWaiverRepros(H.memoryFactory(), postgres, postgresWaivers)
    for (const c of checks) {
      console.log(`[differential] waiver ${c.id}: ${c.stillDiverges ? "still diverges" : "STALE (the repro agrees)"}`)
      if (c.divergence !== undefined) console.log(H.formatDivergence(c.divergence))
    }
    expect(checks.filter((c) => !c.stillDiverges).map((c) => c.id)).toEqual([])
  }, 60_000)
})
