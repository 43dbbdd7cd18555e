/**
 * What a worker's claim loop and its attempts share: the checked settings, the worker's runtime
 * (backend, lease keeper, completions, metric labels), and how a failure or a lost lease reads.
 */
import { type Duration, Effect, type Either, Exit, Predicate, type Schedule } from "effect"
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

/** Synchronous steps `stepsNow` runs at most before it leaves the rest to a fiber. */
const MAX_SYNC_STEPS = 64

/**
 * Runs the leading synchronous steps of `effect` on the caller's stack, as a fiber's run loop runs
 * them: a success, a `Sync` step (`Effect.sync`, a `Ref` or `Deferred` update: its function
 * called), and a `flatMap` of those (its function called with the value). At the first step of
 * any other kind (one that reads the fiber, waits, fails, or more than `MAX_SYNC_STEPS` steps) it
 * stops: what is left, that step and the `flatMap`s still around it, is returned, to run in a
 * fiber of its own (the steps already run are not run again). A success is returned as its `Exit`.
 * A function that throws leaves the defect to that fiber, as the run loop makes a throw a defect.
 */
export const stepsNow = <A>(effect: Effect.Effect<A>): Exit.Exit<A> | Effect.Effect<A> => {
  const around: Array<(a: unknown) => Effect.Effect<unknown>> = []
  let current: Effect.Effect<unknown> = effect
  for (let step = 0; step < MAX_SYNC_STEPS; step++) {
    const op = current as unknown as {
      readonly _op?: unknown
      readonly effect_instruction_i0?: unknown
      readonly effect_instruction_i1?: unknown
    }
    let value: unknown
    if (op._op === "Success") {
      value = (current as unknown as Exit.Success<unknown, unknown>).value
    } else if (op._op === "Sync" && typeof op.effect_instruction_i0 === "function") {
      try {
        value = op.effect_instruction_i0()
      } catch (e) {
        return rest(Effect.die(e), around) as Effect.Effect<A>
      }
    } else if (op._op === "OnSuccess" && typeof op.effect_instruction_i1 === "function") {
      around.push(op.effect_instruction_i1 as (a: unknown) => Effect.Effect<unknown>)
      current = op.effect_instruction_i0 as Effect.Effect<unknown>
      continue
    } else {
      return rest(current, around) as Effect.Effect<A>
    }
    const next = around.pop()
    if (next === undefined) return Exit.succeed(value as A)
    try {
      current = next(value)
    } catch (e) {
      return rest(Effect.die(e), around) as Effect.Effect<A>
    }
  }
  return rest(current, around) as Effect.Effect<A>
}

/** `current` followed by the functions of the `flatMap`s around it (innermost last). */
const rest = (current: Effect.Effect<unknown>, around: ReadonlyArray<(a: unknown) => Effect.Effect<unknown>>) => {
  let effect = current
  for (let i = around.length - 1; i >= 0; i--) effect = Effect.flatMap(effect, around[i]!)
  return effect
}
