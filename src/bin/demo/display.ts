/**
 * The demo's live display: a board redrawn in place (a TTY) or a timeline of state changes
 * (`--plain`). Both show what the engine returns for each step (./views.ts); the approver's notes,
 * known only to the demo process, are shown apart, marked `demo:`.
 */
import { Clock, Console, Effect, Ref } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import type { ExecutionId } from "../../Ids.js"
import { percentOf, progressText, reasonOf, refresh, shortWorker, type Step, type StepView, unread } from "./views.js"

export interface Board {
  readonly steps: ReadonlyArray<Step>
  /** What only the demo process knows about a step (the approver's doings): not engine state. */
  readonly localNotes: Ref.Ref<ReadonlyMap<ExecutionId, string>>
  /** The demo's start, on this process's clock. */
  readonly started: number
}

export interface Display {
  /** Reads the steps from the engine and shows what changed. */
  readonly tick: Effect.Effect<void, EngineError>
}

const bar = (percent: number) => {
  const filled = Math.round(Math.min(100, Math.max(0, percent)) / 10)
  return `${"█".repeat(filled)}${"░".repeat(10 - filled)}`
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2).padStart(5)}s`

const withLocal = (text: string, local: string | undefined) =>
  local === undefined ? text : [text, `[demo: ${local}]`].filter((s) => s !== "").join(" ")

/** One line per step: progress, state, attempts, lease holder, then the reason or the progress message. */
const boardLines = (views: ReadonlyArray<StepView>, notes: ReadonlyMap<ExecutionId, string>, elapsedMs: number) => [
  `  ${(elapsedMs / 1000).toFixed(1)}s`,
  ...views.map((v) => {
    const reason = reasonOf(v)
    const detail = withLocal(reason !== "" ? reason : v.progress?.message ?? "", notes.get(v.step.id))
    return [
      `  ${v.step.name.padEnd(12)}`,
      bar(percentOf(v)),
      `${percentOf(v)}%`.padStart(4),
      v.state.padEnd(16),
      (v.attempts > 0 ? `#${v.attempts}` : "").padEnd(2),
      shortWorker(v.worker ?? "").padEnd(9),
      detail.slice(0, 56)
    ].join(" ")
  })
]

/** Redraws the board in place. */
const liveBoard = (backend: EngineBackend.Service, board: Board): Effect.Effect<Display> =>
  Effect.gen(function*() {
    const views = yield* Ref.make<ReadonlyArray<StepView>>(board.steps.map(unread))
    let drawn = 0
    const tick = Effect.gen(function*() {
      const now = yield* refresh(backend, yield* Ref.get(views))
      yield* Ref.set(views, now)
      const lines = boardLines(now, yield* Ref.get(board.localNotes), (yield* Clock.currentTimeMillis) - board.started)
      yield* Effect.sync(() => {
        process.stdout.write(`${drawn > 0 ? `\x1b[${drawn}A\x1b[J` : ""}${lines.join("\n")}\n`)
        drawn = lines.length
      })
    })
    return { tick }
  })

/** Prints a line when a step changes state, attempt or lease holder. */
const timeline = (backend: EngineBackend.Service, board: Board): Effect.Effect<Display> =>
  Effect.gen(function*() {
    const views = yield* Ref.make<ReadonlyArray<StepView>>(board.steps.map(unread))
    const last = new Map<string, string>()
    const tick = Effect.gen(function*() {
      const now = yield* refresh(backend, yield* Ref.get(views))
      yield* Ref.set(views, now)
      const notes = yield* Ref.get(board.localNotes)
      const at = seconds((yield* Clock.currentTimeMillis) - board.started)
      for (const v of now) {
        const key = `${v.state}|${v.attempts}|${v.worker ?? ""}`
        if (last.get(v.step.id) === key) continue
        last.set(v.step.id, key)
        const attempt = v.attempts > 1 ? ` (attempt ${v.attempts})` : ""
        const who = v.worker === undefined ? "" : ` on ${shortWorker(v.worker)}`
        // where an unfinished step stopped: the last progress it reported
        const progress = ["cancelled", "failed", "expired"].includes(v.state) && v.progress !== undefined ?
          `, last progress ${progressText(v)}` :
          ""
        const why = withLocal(reasonOf(v), notes.get(v.step.id))
        yield* Console.log(`  [${at}] ${v.step.name.padEnd(12)} ${v.state}${attempt}${who}${progress}${why === "" ? "" : ` - ${why}`}`)
      }
    })
    return { tick }
  })

/** The board on a TTY, else (or with `--plain`) the timeline. */
export const makeDisplay = (backend: EngineBackend.Service, board: Board, live: boolean): Effect.Effect<Display> =>
  live ? liveBoard(backend, board) : timeline(backend, board)
