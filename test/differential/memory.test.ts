// Differential sanity checks of the harness itself (run in CI):
// - two independent memory engines agree on every random sequence (ids minted from the sample,
//   backend-minted values normalised, no hidden nondeterminism);
// - a planted divergence (a memory engine whose delayed creations answer `waiting`) is found,
//   shrunk to one command and reported with the seed and the first differing step.
import { Effect } from "effect"
import { describe, expect, it } from "vitest"
import * as H from "./harness.js"

/** A memory engine whose `createExecution` always reports `publicState: "waiting"`. */
const mutant: H.EngineFactory = {
  name: "memory-mutant",
  make: Effect.map(H.memoryFactory().make, (engine) => ({
    ...engine,
    backend: {
      ...engine.backend,
      createExecution: (args) =>
        Effect.map(engine.backend.createExecution(args), (r) =>
          r._tag === "Created" ? { ...r, publicState: "waiting" as const } : r)
    }
  }))
}

describe("differential: memory vs memory", () => {
  it("two memory engines agree on random operation sequences", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory("memory"),
      candidate: H.memoryFactory("memory-2"),
      numRuns: 100,
      maxCommands: 40,
      // ~15 s on a quiet machine; on a loaded one the run stops early rather than overrun the test timeout
      timeLimitMs: 45_000
    })
    expect(result.numRuns).toBeGreaterThan(0)
    // batches come up (about one in two runs has one)
    expect(result.coverage["CreateExecutions"]?.ok ?? 0).toBeGreaterThan(0)
  }, 60_000)

  it("two memory engines agree on flows that grow while they run", async () => {
    const result = await H.checkDifferential({
      reference: H.memoryFactory("memory"),
      candidate: H.memoryFactory("memory-2"),
      numRuns: 50,
      maxCommands: 40,
      // on a loaded machine the run stops early rather than overrun the test timeout
      timeLimitMs: 60_000,
      profile: "flows"
    })
    expect(result.numRuns).toBeGreaterThan(0)
    // the shapes of the profile come up
    for (const tag of ["LateEdge", "FinishedFlow", "ExtendFlow", "SealFlow", "StageEdge", "CancelFlow"] as const) {
      expect(result.coverage[tag]?.ok ?? 0, tag).toBeGreaterThan(0)
    }
  }, 120_000)

  it("finds, shrinks and reports a planted divergence", async () => {
    const lines: Array<string> = []
    const error = await H.checkDifferential({
      reference: H.memoryFactory("memory"),
      candidate: mutant,
      numRuns: 200,
      maxCommands: 40,
      seed: 42,
      log: (line) => lines.push(line)
    }).then(() => undefined, (e: unknown) => e)
    expect(error).toBeInstanceOf(Error)
    const report = (error as Error).message
    expect(report).toContain("seed=42")
    expect(report).toContain("FLOWFABRIC_DIFF_SEED=42")
    // shrunk to the one command that shows it: a delayed creation
    expect(report).toMatch(/minimal sequence \(up to the divergence\):\nsalt \d+\n {3}0\. CreateExecution [^\n]*"delayMs":(50|1000|5000)/)
    expect(report).toContain("first divergence at step 0: CreateExecution")
    expect(report).toContain("result.ok.publicState")
  }, 60_000)
})
