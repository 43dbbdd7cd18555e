/**
 * What a worker's claim loop and its attempts share: the checked settings, the worker's runtime
 * (backend, lease keeper, completions, metric labels), and how a failure or a lost lease reads.
 */
import { type Duration, type Effect, type Either, Exit, Predicate, type Schedule } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, rootCause } from "../../EngineError.js"
import type { LaneId, WorkerId, WorkerInstanceId } from "../../Ids.js"
import type * as M from "../../Model.js"
import type { Handler, WorkerEvent } from "../../Worker.js"
import type * as LeaseKeeper from "./leaseKeeper.js"
import type { Labels, LabelSets } from "./metrics.js"

/** A worker's options, checked and completed from `WorkerConfig`. */
export interface Settings {
  readonly lanes: ReadonlyArray<LaneId>
  readonly handlers: ReadonlyMap<string, Handler<unknown>>
  /** The kinds of `handlers`, sorted: the only kinds the worker claims. */
  readonly kinds: ReadonlyArray<string>
  readonly capabilities: ReadonlyArray<string>
  readonly concurrency: number
  readonly leaseTtlMs: number
  readonly renewEvery: Duration.Duration
  readonly idle: Schedule.Schedule<unknown>
  readonly grace: Duration.Duration
  readonly releaseOnShutdown: boolean
  readonly workerId: WorkerId
  readonly workerInstanceId: WorkerInstanceId
  readonly writeRetry: Schedule.Schedule<unknown, EngineError>
  readonly batchCompletions: boolean | undefined
  /** `undefined` when the worker was given none: no event is made. */
  readonly onEvent: ((event: WorkerEvent) => Effect.Effect<void>) | undefined
}

/** A running worker, as its attempts see it. */
export interface Runtime {
  readonly backend: EngineBackend.Service
  readonly settings: Settings
  /** Renews the running attempts' leases; stops them when a lease is lost or the drain ends. */
  readonly keeper: LeaseKeeper.LeaseKeeper
  /** Writes the attempts' completions (see `batchCompletions`). */
  readonly complete: (handle: M.Handle, payload: Uint8Array) => Effect.Effect<void, EngineError>
  /** The metric labels of this worker (see `labelSets`). */
  readonly labels: LabelSets
  /** The labels of a finished attempt of `kind` (`kind`, `outcome`: the event's tag). */
  readonly outcomeLabels: (kind: string, outcome: WorkerEvent["_tag"]) => Labels
}

export const leaseLostReason = (e: EngineError): string => {
  const root = rootCause(e)
  return root._tag === "Contention" && root.kind === "ExecutionNotActive" && root.notActive !== undefined ?
    `execution is ${root.notActive.terminalOutcome !== "none" ? root.notActive.terminalOutcome : root.notActive.lifecyclePhase}` :
    root.message
}

const truncate = (s: string, max = 2000): string => (s.length > max ? `${s.slice(0, max - 1)}…` : s)

/** A readable one-line reason for any failure value. */
export const describeFailure = (error: unknown): string => {
  if (error instanceof Error) {
    const tag = Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : error.name
    return truncate(error.message === "" ? tag : `${tag}: ${error.message}`)
  }
  if (typeof error === "object" && error !== null) {
    try {
      return truncate(JSON.stringify(error))
    } catch {
      return truncate(String(error))
    }
  }
  return truncate(String(error))
}

/**
 * `effect`'s exit when the effect is one already: an `Exit` (`Effect.succeed`, `Effect.fail`,
 * `Effect.die`, `Effect.void`…) or an `Either` (a synchronous schema's decode). Read by the
 * effect's op, as Effect's own `runSyncExit` reads it before it forks anything; `undefined` for
 * every other effect (one that must run to be known).
 */
export const exitNow = <A, E, R>(effect: Effect.Effect<A, E, R>): Exit.Exit<A, E> | undefined => {
  switch ((effect as { readonly _op?: unknown })._op) {
    case "Success":
    case "Failure":
      return effect as unknown as Exit.Exit<A, E>
    case "Right":
      return Exit.succeed((effect as unknown as Either.Right<E, A>).right)
    case "Left":
      return Exit.fail((effect as unknown as Either.Left<E, A>).left)
    default:
      return undefined
  }
}
