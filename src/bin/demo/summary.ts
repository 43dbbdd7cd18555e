/**
 * The demo's closing summary, read from the engine: a table of the steps (state, attempts, the
 * workers of their attempt history, last progress, result or reason), then the attempt history of
 * the steps that failed, waited or were cancelled.
 */
import { Console, Effect, Option } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import type * as M from "../../Model.js"
import { progressText, reasonOf, shortWorker, type StepView, workersOf } from "./views.js"

const cut = (text: string, max: number) => text.length > max ? `${text.slice(0, max - 1)}…` : text

const table = (rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)))
  const line = (row: ReadonlyArray<string>) => row.map((cell, c) => cell.padEnd(widths[c]!)).join("  ").trimEnd()
  return [line(rows[0]!), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)]
}

const resultOf = (backend: EngineBackend.Service, v: StepView): Effect.Effect<string, EngineError> =>
  v.state !== "completed" ?
    Effect.succeed(reasonOf(v)) :
    Effect.map(backend.getExecutionResult(v.step.id), (bytes) =>
      Option.match(bytes, { onNone: () => "", onSome: (b) => new TextDecoder().decode(b) }))

const secondsAfter = (from: number, at: number) => `+${((at - from) / 1000).toFixed(2)} s`

const runLine = (v: StepView, r: M.AttemptRun) =>
  [
    `    attempt ${r.attemptIndex + 1}`,
    r.kind.padEnd(7),
    shortWorker(r.workerInstanceId).padEnd(9),
    secondsAfter(v.createdAt, r.startedAt).padEnd(8),
    (r.endedAt === undefined ? "" : `${r.endedAt - r.startedAt} ms`).padEnd(8),
    `${r.outcome}${r.reason === undefined ? "" : `: ${r.reason}`}`
  ].join("  ")

/** A step whose story is more than one run that completed. */
const eventful = (v: StepView) =>
  v.lastFailure !== undefined || v.runs.length > 1 || v.runs.some((r) => r.outcome !== "completed")

export const printSummary = (backend: EngineBackend.Service, views: ReadonlyArray<StepView>) =>
  Effect.gen(function*() {
    const rows: Array<ReadonlyArray<string>> = [["step", "flow", "state", "attempts", "workers", "progress", "result / reason"]]
    for (const v of views) {
      rows.push([
        v.step.name,
        v.step.flow,
        v.state,
        String(v.attempts),
        workersOf(v).join(","),
        cut(progressText(v), 26),
        cut(yield* resultOf(backend, v), 60)
      ])
    }
    for (const line of table(rows)) yield* Console.log(line)

    yield* Console.log("\n  attempt history (each run: attempt, kind, worker, start after creation, duration, outcome):")
    for (const v of views.filter(eventful)) {
      const failure = v.lastFailure === undefined ? "" : `  last failure: ${v.lastFailure.reason} (${
        v.lastFailure.classification
      }, ${secondsAfter(v.createdAt, v.lastFailure.at)})`
      yield* Console.log(`  ${v.step.name}${failure}`)
      for (const r of v.runs) yield* Console.log(runLine(v, r))
    }

    const outcomes = new Map<string, number>()
    for (const r of views.flatMap((v) => v.runs)) outcomes.set(r.outcome, (outcomes.get(r.outcome) ?? 0) + 1)
    const runs = [...outcomes.values()].reduce((n, k) => n + k, 0)
    yield* Console.log(
      `\n  runs in the engine's attempt histories: ${runs} (${[...outcomes].map(([o, n]) => `${o} ${n}`).join(", ")})`
    )
  })
