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
        expect(run.stderr).toBe("")
        expect(run.code).toBe(0)
        const out = run.stdout
        expect(out).toContain(`backend ${backend}`)
        expect(out).toContain("Summary")
        expect(out).toMatch(/fetch-apac\s+report\s+completed\s+3\s/)
        expect(out).toMatch(/aggregate\s+report\s+completed\s+1\s/)
        expect(out).toMatch(/approve\s+report\s+completed\s+1\s.*"approvedBy":"alice"/)
        expect(out).toMatch(/publish-us\s+report\s+cancelled/)
        expect(out).toMatch(/notify\s+report\s+completed/)
        expect(out).toMatch(/reindex-1\s+reindex\s+cancelled/)
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
