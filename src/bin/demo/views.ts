/**
 * What the demo shows of each step, read from the engine: `describeExecution` (state, attempts,
 * attempt history, progress, last failure, cancellation reason) and, for a cancelled step,
 * `readExecutionInfo` (who cancelled it). Nothing here comes from the demo's own process.
 */
import { Effect, Option } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import type { ExecutionId } from "../../Ids.js"
import type * as M from "../../Model.js"
import * as Producer from "../../Producer.js"

/** A member of one of the demo's flows. */
export interface Step {
  readonly name: string
  readonly flow: "report" | "reindex"
  readonly id: ExecutionId
}

export interface StepView {
  readonly step: Step
  /** `gone` when the engine no longer knows the execution. */
  readonly state: M.PublicState | "gone"
  readonly attempts: number
  /** The worker holding its lease now, if any. */
  readonly worker: string | undefined
  readonly blockingReason: string | undefined
  readonly progress: M.ProgressReport | undefined
  readonly lastFailure: M.LastFailure | undefined
  readonly cancellationReason: string | undefined
  readonly cancelledBy: string | undefined
  readonly createdAt: number
  /** Oldest first, as many as the engine keeps (`Limits.historyRuns`). */
  readonly runs: ReadonlyArray<M.AttemptRun>
}

const gone = (step: Step): StepView => ({
  step,
  state: "gone",
  attempts: 0,
  worker: undefined,
  blockingReason: undefined,
  progress: undefined,
  lastFailure: undefined,
  cancellationReason: undefined,
  cancelledBy: undefined,
  createdAt: 0,
  runs: []
})

/** Before the first read: nothing known yet. */
export const unread = (step: Step): StepView => ({ ...gone(step), state: "waiting" })

const readView = (backend: EngineBackend.Service, step: Step): Effect.Effect<StepView, EngineError> =>
  Effect.gen(function*() {
    const found = yield* backend.describeExecution(step.id)
    if (Option.isNone(found)) return gone(step)
    const s = found.value
    const info = s.publicState === "cancelled" ? yield* backend.readExecutionInfo(step.id) : Option.none()
    return {
      step,
      state: s.publicState,
      attempts: s.totalAttemptCount,
      worker: s.currentLease?.workerInstanceId,
      blockingReason: s.blockingReason === "none" ? undefined : s.blockingReason,
      progress: s.progress,
      lastFailure: s.lastFailure,
      cancellationReason: s.cancellationReason,
      cancelledBy: Option.match(info, { onNone: () => undefined, onSome: (i) => i.cancelledBy }),
      createdAt: s.createdAt,
      runs: s.attemptHistory
    }
  })

const reads = { concurrency: 4 } as const

/** Reads every step, a few at a time. */
export const readViews = (
  backend: EngineBackend.Service,
  steps: ReadonlyArray<Step>
): Effect.Effect<ReadonlyArray<StepView>, EngineError> => Effect.forEach(steps, (s) => readView(backend, s), reads)

/** Re-reads the steps that are not terminal yet, a few at a time; a terminal step keeps its last view. */
export const refresh = (
  backend: EngineBackend.Service,
  views: ReadonlyArray<StepView>
): Effect.Effect<ReadonlyArray<StepView>, EngineError> =>
  Effect.forEach(
    views,
    (v) => v.state !== "gone" && Producer.isTerminal(v.state) ? Effect.succeed(v) : readView(backend, v.step),
    reads
  )

/** `worker-2-1a2b3c4d` → `worker-2`. */
export const shortWorker = (instance: string) => instance.replace(/-[0-9a-f]{8}$/, "")

/** Every worker that ran the step, in the order they first did (from its attempt history). */
export const workersOf = (v: StepView): ReadonlyArray<string> => [...new Set(v.runs.map((r) => shortWorker(r.workerInstanceId)))]

export const percentOf = (v: StepView): number => v.state === "completed" ? 100 : v.progress?.percent ?? 0

/** `37% shard 1: batch 37/100`, or `` when the step reported no progress. */
export const progressText = (v: StepView): string =>
  v.progress === undefined ? "" : [
    v.progress.percent === undefined ? "" : `${v.progress.percent}%`,
    v.progress.message ?? ""
  ].filter((s) => s !== "").join(" ")

/** Why a step is where it is, when its state needs a reason: failure, cancellation, what it waits for. */
export const reasonOf = (v: StepView): string => {
  switch (v.state) {
    case "cancelled":
      return v.cancellationReason === undefined ?
        "" :
        `${v.cancellationReason}${v.cancelledBy === undefined || v.cancelledBy === "" ? "" : ` (by ${v.cancelledBy})`}`
    case "delayed":
    case "failed":
    case "expired":
      return v.lastFailure?.reason ?? ""
    case "suspended":
    case "rate_limited":
      return v.blockingReason ?? ""
    default:
      return ""
  }
}
