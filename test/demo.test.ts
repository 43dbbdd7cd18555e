// `npm start` runs the demo; it must finish in seconds, exit 0 and print its summary.
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { inject } from "vitest"

interface Run {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

const runDemo = (args: ReadonlyArray<string>) =>
  Effect.async<Run>((resume) => {
    const child = execFile(
      "npx",
      ["tsx", "src/bin/demo.ts", ...args],
      { cwd: process.cwd(), timeout: 60_000, env: { ...process.env, NO_COLOR: "1" } },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr }))
    )
    return Effect.sync(() => child.kill())
  })

describe("demo", () => {
  const pipelineRuns = (backend: string, args: ReadonlyArray<string>) =>
    it.live(`runs the pipeline on ${backend}, exits 0 and prints the summary`, () =>
      Effect.gen(function*() {
        const run = yield* runDemo([...args, "--plain"])
        // (the output names the step that did not end as intended)
        expect(run.stderr, run.stdout).toBe("")
        expect(run.code, run.stdout).toBe(0)
        const out = run.stdout
        expect(out).toContain(`backend ${backend}`)
        expect(out).toContain("Summary")
        // the table: state, attempts, the workers of the attempt history, last progress, result or reason
        expect(out).toMatch(/fetch-apac\s+report\s+completed\s+3\s+worker-\d.*\s+100% page 4\/4\s+\{"region":"apac"/)
        expect(out).toMatch(/aggregate\s+report\s+completed\s+1\s+worker-\d\s/)
        expect(out).toMatch(/approve\s+report\s+completed\s+1\s.*"approvedBy":"alice"/)
        expect(out).toMatch(/publish-us\s+report\s+cancelled\s+1\s+worker-\d.*sibling_quorum_satisfied \(by operator_override\)/)
        expect(out).toMatch(/notify\s+report\s+completed/)
        expect(out).toMatch(/reindex-1\s+reindex\s+cancelled/)
        // the batch worker runs two shards (which two differs by backend) and reports their progress
        expect(out).toMatch(
          /reindex-(\d)\s+reindex\s+cancelled\s+1\s+batch\s+\d+% shard \1: batch \d+\/100\s+superseded by tonight's full report \(by flow_cascade\)/
        )
        expect(out).toMatch(/reindex-\d\s+reindex\s+cancelled\s+0\s+superseded by tonight's full report/)
        // the attempt history: the flaky step's failures, the approval's suspension and resumption
        expect(out).toMatch(/fetch-apac\s+last failure: UpstreamUnavailable: HTTP 503 from the apac API \(Transient/)
        expect(out).toMatch(/attempt 2\s+retry\s+worker-\d\s.*retry_scheduled: UpstreamUnavailable: HTTP 503 from the apac API/)
        expect(out).toMatch(/attempt 1\s+initial\s+worker-\d\s.*suspended: waiting_for_approval\n\s+attempt 1\s+resumed\s/)
        expect(out).toMatch(/runs in the engine's attempt histories: 13 \(/)
        expect(out).toContain("All good")
      }), 90_000)

  pipelineRuns("memory", [])
  pipelineRuns("valkey", ["--backend", "valkey", "--url", inject("valkeyUrl")])
  pipelineRuns("postgres", ["--backend", "postgres", "--url", inject("pgUrl")])

  it.live("a backend whose layer cannot be loaded fails with a clear message", () =>
    Effect.gen(function*() {
      const run = yield* runDemo(["--backend", "postgres"])
      expect(run.code).not.toBe(0)
      expect(`${run.stdout}${run.stderr}`).toContain("--backend postgres needs --url")
    }), 90_000)
})
