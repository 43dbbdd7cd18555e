/**
 * The worker runtime (docs/worker.md): claims executions of its handlers' kinds round-robin over
 * its lanes while it has free slots, renews the leases of its running attempts
 * (one loop, each lease at a third of its TTL), runs the handler registered for
 * the execution's kind with a task context, maps the handler's success to
 * `complete` and its typed failure to `fail`, stops the handler when its lease
 * is lost, and drains gracefully when interrupted.
 *
 * ```ts
 * const Resize = Producer.task({ kind: "resize", input: ResizeInput, output: ResizeOutput })
 *
 * const resize = Worker.handler({
 *   ...Resize,
 *   run: (input, ctx) => Effect.gen(function*() {
 *     yield* ctx.progress(50, "resizing")
 *     return { url: `${input.url}?w=${input.width}` }
 *   }),
 *   classify: (e) => (e._tag === "BadImage" ? "Permanent" : "Transient")
 * })
 *
 * Worker.run({ lanes: ["images"], handlers: [resize], concurrency: 8, leaseTtl: "30 seconds" })
 * ```
 *
 * @since 0.1.0
 */
import type { ConfigError, Fiber, Metric, Scope } from "effect"
import { Cause, Config, Duration, Effect, Either, Exit, Layer, Option, Schedule, Schema } from "effect"
import { hostname } from "node:os"
import type { EngineBackend } from "./EngineBackend.js"
import { type EngineError, isEngineError, isLeaseLost } from "./EngineError.js"
import * as Ids from "./Ids.js"
import type { BudgetId, ExecutionId, FlowId, LaneId, WaitpointId, WorkerId, WorkerInstanceId } from "./Ids.js"
import { bytesOver } from "./internal/validation.js"
import { Limits } from "./Limits.js"
import { jsonDecoder, jsonEncoder, type PayloadError } from "./internal/worker/codec.js"
import { workerLoop } from "./internal/worker/loop.js"
import * as Metrics from "./internal/worker/metrics.js"
import * as Runtime from "./internal/worker/runtime.js"
import type * as M from "./Model.js"
import type * as Producer from "./Producer.js"

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/**
 * A worker that cannot start: no handlers, two handlers for one kind, more
 * handlers than `Limits.claimKinds` or a kind longer than `Limits.nameBytes`
 * (its claims name its kinds), a bad lane id, a concurrency below 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class WorkerError extends Schema.TaggedError<WorkerError>()("WorkerError", {
  detail: Schema.String
}) {
  override get message(): string {
    return `worker: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------
// Task context
// ---------------------------------------------------------------------------

/**
 * A waitpoint made with `ctx.createWaitpoint`: tell the party that will
 * signal it the id and the token, then `ctx.suspend({ waitpoint })`.
 *
 * @since 0.1.0
 * @category models
 */
export interface Waitpoint {
  readonly waitpointId: WaitpointId
  readonly waitpointKey: string
  readonly token: string
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SuspendOptions {
  /** A pending waitpoint from `ctx.createWaitpoint`; default: a fresh waitpoint. */
  readonly waitpoint?: Waitpoint | undefined
  /** The key of the fresh waitpoint (default `wpk:<id>`). */
  readonly waitpointKey?: string | undefined
  /** Resume on a signal of this name (default: any signal). */
  readonly signalName?: string | undefined
  /** Apply `timeoutBehavior` when no signal came within this long. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Default `fail`. */
  readonly timeoutBehavior?: M.TimeoutBehavior | undefined
  /** Default `waiting_for_signal` (`waiting_for_approval`, `waiting_for_callback`, …). */
  readonly reasonCode?: string | undefined
  readonly idempotencyKey?: string | undefined
  /**
   * Runs once the suspension committed, with the waitpoint and its token
   * (e.g. to send the token to an approver). Uninterruptible; keep it short.
   */
  readonly onSuspended?: ((details: M.SuspendOutcomeDetails) => Effect.Effect<void>) | undefined
}

/**
 * What a handler gets besides its decoded input. Every operation is bound to
 * the attempt's lease; one that finds the lease lost fails with an
 * `EngineError` for which `isLeaseLost` holds, and the worker then writes
 * nothing for the attempt. `suspend`, `delay` and `waitChildren` end the
 * attempt: they never return (except `suspend` when the waitpoint's buffered
 * signals already satisfy it), the handler's fiber is stopped, and the
 * execution runs again — the same attempt, `resumed` — when it is resumed.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskContext<I> {
  readonly executionId: ExecutionId
  readonly kind: string
  readonly lane: LaneId
  readonly input: I
  /** 1 for the first attempt; retries and reclaims count up, resumptions do not. */
  readonly attempt: number
  readonly attemptIndex: number
  /** `fresh` for a new attempt, `resumed` after suspend / delay / waitChildren. */
  readonly handleKind: M.HandleKind
  readonly resumed: boolean
  /** The signals that resumed this attempt (`observeSignals`), empty otherwise. */
  readonly resumeSignals: ReadonlyArray<M.ResumeSignal>
  readonly workerId: WorkerId
  readonly workerInstanceId: WorkerInstanceId
  /** The raw lease handle, for operations the context does not wrap. */
  readonly handle: M.Handle
  /** A numeric heartbeat (percent rounded and clamped to 0..100). */
  readonly progress: (percent: number | undefined, message?: string) => Effect.Effect<void, EngineError>
  readonly appendFrame: (frame: M.FrameInput) => Effect.Effect<M.AppendFrameOutcome, EngineError>
  /** Appends a `stdout` frame with the text. */
  readonly log: (message: string) => Effect.Effect<M.AppendFrameOutcome, EngineError>
  /** Appends an `event` frame of type `frameType` with the JSON of `data`. */
  readonly event: (frameType: string, data: unknown) => Effect.Effect<M.AppendFrameOutcome, EngineError>
  /** A pending waitpoint, signalable before the attempt suspends (signals are buffered). */
  readonly createWaitpoint: (
    options?: { readonly key?: string | undefined; readonly expiresIn?: Duration.DurationInput | undefined }
  ) => Effect.Effect<Waitpoint, EngineError>
  /** Suspends until a signal; returns only when buffered signals already satisfy the condition. */
  readonly suspend: (options?: SuspendOptions) => Effect.Effect<ReadonlyArray<M.ResumeSignal>, EngineError>
  /** Ends the attempt; the execution is resumed after `duration` (or at `{ until }` ms). */
  readonly delay: (duration: Duration.DurationInput | { readonly until: number }) => Effect.Effect<never, EngineError>
  /** Ends the attempt until the execution's flow dependencies resolve. */
  readonly waitChildren: Effect.Effect<never, EngineError>
  readonly reportUsage: (
    budgetId: BudgetId,
    dimensions: M.Input<typeof M.UsageDimensions.fields>
  ) => Effect.Effect<M.ReportUsageResult, EngineError>
  /** The execution's flow, which a handler can grow while it runs (see `FlowContext`). */
  readonly flow: FlowContext
}

/**
 * A handler's view of the flow its execution belongs to (docs/guide.md, "Flows that grow while
 * they run"). These calls are not bound to the lease: a flow is grown by whoever holds it.
 *
 * @since 0.1.0
 * @category models
 */
export interface FlowContext {
  /** The flow this execution is a member of, `None` when it is in none. */
  readonly id: Effect.Effect<Option.Option<FlowId>, EngineError>
  /** The members this execution depends on (its inbound edges), by id; empty outside a flow. */
  readonly upstreams: Effect.Effect<ReadonlyArray<ExecutionId>, EngineError>
  /** The members that depend on this execution (its outbound edges), by id; empty outside a flow. */
  readonly downstreams: Effect.Effect<ReadonlyArray<ExecutionId>, EngineError>
  /**
   * Adds nodes and edges to this execution's flow in one atomic step (`Producer.extendFlow`);
   * nodes default to this execution's lane, and edges may name members already in the flow (this
   * execution's id among them). The new members' ids derive from this execution and the node
   * names, so an attempt that runs again and adds the same names adds nothing twice and gets the
   * same ids; give every node of one execution a name of its own. An execution in no flow fails
   * with `FlowSpecError`.
   */
  readonly add: <N extends string>(
    extension: Omit<Producer.FlowExtension<N>, "lane" | "key"> & { readonly lane?: string | undefined }
  ) => Effect.Effect<Producer.ExtendedFlow<N>, EngineError | PayloadError | Producer.FlowSpecError>
  /** Seals this execution's flow (`Producer.sealFlow`). */
  readonly seal: Effect.Effect<M.SealFlowResult, EngineError | Producer.FlowSpecError>
}

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

/**
 * How a handler failed (after its classification), or that it found its
 * lease lost.
 *
 * @since 0.1.0
 * @category models
 */
export type HandlerFailure =
  | { readonly _tag: "Classified"; readonly classification: M.FailureClass; readonly message: string }
  | { readonly _tag: "LeaseLost"; readonly error: EngineError }

/**
 * @since 0.1.0
 * @category models
 */
export interface HandlerSpec<I, IE, O, OE, E, R> {
  readonly kind: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
  readonly run: (input: I, ctx: TaskContext<I>) => Effect.Effect<O, E, R>
  /** The classification of a typed failure (default `Transient`: retried per the execution's retry policy). */
  readonly classify?: ((error: E) => M.FailureClass) | undefined
  /** The failure reason stored with `fail` (default: the error's tag and message). */
  readonly describe?: ((error: E) => string) | undefined
}

const HandlerTypeId: unique symbol = Symbol.for("flowfabric/Worker/Handler")

/**
 * A handler with its input and output types erased, ready for `run`. `R` is
 * what its `run` requires.
 *
 * @since 0.1.0
 * @category models
 */
export interface Handler<out R> {
  readonly [HandlerTypeId]: { readonly _R: (_: never) => R }
  readonly kind: string
  /**
   * Decodes the payload, runs the handler with the context `makeContext` builds, encodes its
   * output. The payload is decoded and the handler's `run` called when `execute` is called (the
   * worker calls it as the attempt starts, in the attempt's fiber, or on the stack of the claim
   * that took it before the attempt has a fiber: see docs/worker.md, "What an attempt costs"; the
   * effect it returns runs in the attempt's fiber); a `run` that throws gives an
   * effect that dies with what it threw.
   */
  readonly execute: (
    payload: Uint8Array,
    makeContext: <I>(input: I) => TaskContext<I>
  ) => Effect.Effect<Uint8Array, HandlerFailure, R>
}

/**
 * @since 0.1.0
 */
export declare namespace Handler {
  /** What a union of handlers requires. @since 0.1.0 */
  export type Context<H> = H extends Handler<infer R> ? R : never
}

/** A readable one-line reason for any failure value. */
export const describeFailure: (error: unknown) => string = Runtime.describeFailure

/**
 * Registers `run` for executions of `kind`: the input payload is decoded
 * with `input` (a payload that does not decode fails the execution as
 * `Permanent` with the parse error as reason), the output encoded with
 * `output` (JSON) and stored with `complete`. A typed failure is classified
 * with `classify` (default `Transient`); a defect fails as `InfraCrash`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const handler = <I, IE, O, OE, E, R>(spec: HandlerSpec<I, IE, O, OE, E, R>): Handler<R> => {
  const classified = (classification: M.FailureClass, message: string): HandlerFailure => ({
    _tag: "Classified",
    classification,
    message
  })
  const ofUserError = (e: E): HandlerFailure => {
    if (isEngineError(e) && isLeaseLost(e)) return { _tag: "LeaseLost", error: e }
    return classified(spec.classify?.(e) ?? "Transient", spec.describe?.(e) ?? describeFailure(e))
  }
  const onFailure = (cause: Cause.Cause<E>): Effect.Effect<never, HandlerFailure> => {
    const failure = Cause.failureOrCause(cause)
    return Either.isLeft(failure) ? Effect.fail(ofUserError(failure.left)) : Effect.failCause(failure.right)
  }
  const permanent = (e: PayloadError): HandlerFailure => classified("Permanent", e.message)
  const decodeInput = jsonDecoder(spec.input, `input of "${spec.kind}"`, permanent)
  const encodeOutput = jsonEncoder(spec.output, `output of "${spec.kind}"`, permanent)
  return {
    [HandlerTypeId]: { _R: (_: never) => _ },
    kind: spec.kind,
    execute: (payload, makeContext) => {
      // `mapError` and the output's encoding in one step; a `run` whose outcome is known as it
      // returns (`Effect.succeed`, `Effect.fail`…) is mapped at once, without a step
      const runOn = (input: I) => {
        const ran = spec.run(input, makeContext(input))
        const now = Runtime.exitNow(ran)
        if (now === undefined) return Effect.matchCauseEffect(ran, { onFailure, onSuccess: encodeOutput })
        return Exit.isSuccess(now) ? encodeOutput(now.value) : onFailure(now.cause)
      }
      // evaluated now, not in a step of its own (see `execute`)
      try {
        // a schema without asynchronous steps decodes to an `Either`: one step less
        const decoded = decodeInput(payload)
        if (!Either.isEither(decoded)) return Effect.flatMap(decoded, runOn)
        const now = decoded as Either.Either<I, HandlerFailure>
        return Either.isLeft(now) ? Either.left(now.left) : runOn(now.right)
      } catch (defect) {
        return Effect.die(defect)
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Events, metrics
// ---------------------------------------------------------------------------

interface EventBase {
  readonly executionId: ExecutionId
  readonly kind: string
  readonly lane: LaneId
  readonly attempt: number
  readonly workerInstanceId: WorkerInstanceId
}

/**
 * What happened to a claimed execution, reported to `onEvent`.
 *
 * @since 0.1.0
 * @category models
 */
export type WorkerEvent =
  | EventBase & { readonly _tag: "Claimed"; readonly handleKind: M.HandleKind }
  | EventBase & { readonly _tag: "Completed"; readonly durationMs: number }
  | EventBase & {
    readonly _tag: "Failed"
    readonly classification: M.FailureClass
    readonly reason: string
    readonly outcome: M.FailOutcome
    readonly durationMs: number
  }
  | EventBase & { readonly _tag: "Suspended"; readonly waitpointId: WaitpointId }
  | EventBase & { readonly _tag: "Delayed"; readonly until: number }
  | EventBase & { readonly _tag: "WaitingChildren" }
  | EventBase & { readonly _tag: "LeaseLost"; readonly reason: string }
  | EventBase & { readonly _tag: "Released"; readonly reason: string }
  | EventBase & { readonly _tag: "WriteFailed"; readonly operation: string; readonly error: EngineError }

/** Executions claimed, tagged `lane` and `handle_kind`. @since 0.1.0 @category metrics */
export const claimsTotal: Metric.Metric.Counter<number> = Metrics.claimsTotal

/** Attempts finished, tagged `kind` and `outcome` (the `WorkerEvent` tag). @since 0.1.0 @category metrics */
export const tasksTotal: Metric.Metric.Counter<number> = Metrics.tasksTotal

/** Attempt duration in milliseconds, tagged `kind` and `outcome`. @since 0.1.0 @category metrics */
export const taskDurationMs: Metric.Metric.Histogram<number> = Metrics.taskDurationMs

/** Attempts running now, tagged `worker_instance`. @since 0.1.0 @category metrics */
export const activeTasks: Metric.Metric.Gauge<number> = Metrics.activeTasks

/** Lease renewals, tagged `result` (`ok`, `retry`, `lost`). @since 0.1.0 @category metrics */
export const renewalsTotal: Metric.Metric.Counter<number> = Metrics.renewalsTotal

// ---------------------------------------------------------------------------
// Options and config
// ---------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface WorkerOptions<H> {
  /** Lanes to claim from, round-robin. */
  readonly lanes: ReadonlyArray<string>
  /** One handler per execution kind. */
  readonly handlers: ReadonlyArray<H>
  /** Capability tokens this worker advertises (routing). */
  readonly capabilities?: ReadonlyArray<string> | undefined
  /** Attempts run at once (default `FLOWFABRIC_WORKER_CONCURRENCY` or 4). */
  readonly concurrency?: number | undefined
  /** Lease TTL (default `FLOWFABRIC_LEASE_TTL` or 30 s). */
  readonly leaseTtl?: Duration.DurationInput | undefined
  /** Renewal interval (default `FLOWFABRIC_LEASE_RENEW_EVERY` or a third of the TTL). */
  readonly renewEvery?: Duration.DurationInput | undefined
  /**
   * The safety net of wake-ups: how long an idle worker waits for a wake-up before it claims
   * anyway; reset when a claim succeeds (default: every `FLOWFABRIC_WORKER_POLL_INTERVAL`, 5 s).
   * An idle worker is woken as soon as work becomes claimable on its lanes, and claims delayed
   * work when it is due (docs/worker.md, "Wake-ups, timers and cancellation").
   */
  readonly idle?: Schedule.Schedule<unknown> | undefined
  /** On interruption, how long running attempts may still finish (default `FLOWFABRIC_WORKER_GRACE_PERIOD` or 10 s). */
  readonly gracePeriod?: Duration.DurationInput | undefined
  /**
   * After the grace period, stop the remaining attempts and hand their
   * executions back (`delay` to now, the same attempt is resumed elsewhere)
   * — default `true`. `false` drops them as a crash would: their leases
   * expire and the reconciler makes them reclaimable. What a claim in flight
   * returns once the stop began runs no handler: it is handed back at once
   * the same way, or with `false` dropped the same way (docs/worker.md, "Shutdown").
   */
  readonly releaseOnShutdown?: boolean | undefined
  /** Stable logical id (default `FLOWFABRIC_WORKER_ID` or `worker-<hostname>`). */
  readonly workerId?: string | undefined
  /** Unique per process (default `FLOWFABRIC_WORKER_INSTANCE_ID` or `<workerId>-<random>`). */
  readonly workerInstanceId?: string | undefined
  /** Retries of `complete` / `fail` / release writes on retryable errors (default 50 ms doubling, 5 times). */
  readonly writeRetry?: Schedule.Schedule<unknown, EngineError> | undefined
  /**
   * Write completions in batches (group commit): a completion waits only while the previous batch
   * is in flight, and what queued meanwhile goes in one `completeAndClaim`, which also claims the
   * next executions into the slots the batch frees (docs/worker.md, "Claims and completions in one
   * call"). Default: on for Valkey and Postgres (a round trip per completion costs more than the
   * batching), off for memory.
   */
  readonly batchCompletions?: boolean | undefined
  /**
   * Called with every event of every attempt; what it returns runs in the attempt's fiber, or
   * in a fiber with the attempt's log annotations (the `Completed` report of an attempt whose
   * handler was done as it returned: docs/worker.md, "What an attempt costs").
   */
  readonly onEvent?: ((event: WorkerEvent) => Effect.Effect<void>) | undefined
}

const DEFAULT_POLL_INTERVAL = Duration.seconds(5)

/**
 * The settings `run` reads from `Config` for what its options leave out.
 *
 * @since 0.1.0
 * @category config
 */
export const WorkerConfig = Config.all({
  workerId: Config.option(Config.string("FLOWFABRIC_WORKER_ID")),
  workerInstanceId: Config.option(Config.string("FLOWFABRIC_WORKER_INSTANCE_ID")),
  concurrency: Config.integer("FLOWFABRIC_WORKER_CONCURRENCY").pipe(Config.withDefault(4)),
  leaseTtl: Config.duration("FLOWFABRIC_LEASE_TTL").pipe(Config.withDefault(Duration.seconds(30))),
  renewEvery: Config.option(Config.duration("FLOWFABRIC_LEASE_RENEW_EVERY")),
  gracePeriod: Config.duration("FLOWFABRIC_WORKER_GRACE_PERIOD").pipe(Config.withDefault(Duration.seconds(10))),
  pollInterval: Config.duration("FLOWFABRIC_WORKER_POLL_INTERVAL").pipe(Config.withDefault(DEFAULT_POLL_INTERVAL))
})

/** The default safety-net poll of an idle worker: every 5 s. @since 0.1.0 @category defaults */
export const defaultIdleSchedule: Schedule.Schedule<unknown> = Schedule.spaced(DEFAULT_POLL_INTERVAL)

/** @since 0.1.0 @category defaults */
export const defaultWriteRetry: Schedule.Schedule<unknown, EngineError> = Schedule.exponential("50 millis", 2).pipe(
  Schedule.intersect(Schedule.recurs(5))
)

const decodeLane = Schema.decodeUnknownEither(Ids.LaneId)

const resolveSettings = <H extends Handler<unknown>>(
  options: WorkerOptions<H>
): Effect.Effect<Runtime.Settings, WorkerError | ConfigError.ConfigError> =>
  Effect.gen(function*() {
    const config = yield* WorkerConfig
    const fail = (detail: string) => Effect.fail(new WorkerError({ detail }))
    if (options.lanes.length === 0) return yield* fail("no lanes")
    const lanes: Array<LaneId> = []
    for (const lane of options.lanes) {
      const decoded = decodeLane(lane)
      if (Either.isLeft(decoded)) return yield* fail(`lane ${JSON.stringify(lane)}: ${decoded.left.message}`)
      if (!lanes.includes(decoded.right)) lanes.push(decoded.right)
    }
    if (options.handlers.length === 0) return yield* fail("no handlers")
    const handlers = new Map<string, Handler<unknown>>()
    for (const h of options.handlers) {
      if (handlers.has(h.kind)) return yield* fail(`two handlers for kind "${h.kind}"`)
      if (bytesOver(h.kind, Limits.nameBytes)) return yield* fail("a handler kind longer than Limits.nameBytes")
      handlers.set(h.kind, h)
    }
    // the worker claims only the kinds it has handlers for (docs/worker.md#claiming-and-concurrency)
    if (handlers.size > Limits.claimKinds) return yield* fail("more handlers than Limits.claimKinds")
    const concurrency = options.concurrency ?? config.concurrency
    if (!Number.isInteger(concurrency) || concurrency < 1) return yield* fail(`concurrency ${concurrency} < 1`)
    const leaseTtl = options.leaseTtl === undefined ? config.leaseTtl : Duration.decode(options.leaseTtl)
    const leaseTtlMs = Math.floor(Duration.toMillis(leaseTtl))
    if (!(leaseTtlMs >= 1)) return yield* fail("leaseTtl must be at least 1 ms")
    const renewEvery = options.renewEvery !== undefined ?
      Duration.decode(options.renewEvery) :
      Option.getOrElse(config.renewEvery, () => Duration.millis(Math.max(1, Math.floor(leaseTtlMs / 3))))
    if (Duration.toMillis(renewEvery) >= leaseTtlMs) return yield* fail("renewEvery must be shorter than leaseTtl")
    const workerId = options.workerId ?? Option.getOrElse(config.workerId, () => `worker-${hostname()}`)
    const workerInstanceId = options.workerInstanceId ??
      Option.getOrUndefined(config.workerInstanceId) ??
      `${workerId}-${(yield* Ids.randomUuid).slice(0, 8)}`
    return {
      lanes,
      handlers,
      kinds: [...handlers.keys()].sort(),
      capabilities: [...new Set(options.capabilities ?? [])].sort(),
      concurrency,
      leaseTtlMs,
      renewEvery,
      idle: options.idle ?? Schedule.spaced(config.pollInterval),
      grace: options.gracePeriod === undefined ? config.gracePeriod : Duration.decode(options.gracePeriod),
      releaseOnShutdown: options.releaseOnShutdown ?? true,
      workerId: Ids.unsafe.workerId(workerId),
      workerInstanceId: Ids.unsafe.workerInstanceId(workerInstanceId),
      writeRetry: options.writeRetry ?? defaultWriteRetry,
      batchCompletions: options.batchCompletions,
      onEvent: options.onEvent
    }
  })

// ---------------------------------------------------------------------------
// Running
// ---------------------------------------------------------------------------

/** The worker on checked settings, its failure logged at error level (an interruption is not one). */
const runWith = (settings: Runtime.Settings): Effect.Effect<never, EngineError, EngineBackend> =>
  Effect.scoped(workerLoop(settings)).pipe(
    Effect.tapErrorCause((cause) =>
      Cause.isInterruptedOnly(cause) ?
        Effect.void :
        Effect.logError("worker failed", cause).pipe(Effect.annotateLogs({ worker: settings.workerInstanceId }))
    )
  )

/**
 * Runs a worker until interrupted. On interruption it stops claiming, lets
 * the running attempts finish within the grace period, then stops the rest
 * and hands their executions back (see `releaseOnShutdown`). Fails only on
 * a bad setting (`WorkerError`, or the `ConfigError` of a `WorkerConfig`
 * variable) or a claim that fails with `Validation`; every failure is also
 * logged at error level, so a `run` forked by hand does not fail unseen.
 * In an application prefer `layer` (or `start`), which check the settings
 * before anything runs.
 *
 * @since 0.1.0
 * @category running
 */
export const run = <H extends Handler<unknown>>(
  options: WorkerOptions<H>
): Effect.Effect<never, WorkerError | EngineError | ConfigError.ConfigError, EngineBackend | Handler.Context<H>> =>
  resolveSettings(options).pipe(
    Effect.tapError((e) => Effect.logError("worker failed to start", e)),
    Effect.flatMap(runWith)
  ) as Effect.Effect<
    never,
    WorkerError | EngineError | ConfigError.ConfigError,
    EngineBackend | Handler.Context<H>
  >

/**
 * Checks the settings — the options, then `WorkerConfig` (the environment)
 * for what they leave out — and starts the worker in a fiber of the current
 * scope, which stops it (draining as `run` does) when it closes. A bad
 * setting fails `start` itself with its `WorkerError` or `ConfigError`;
 * the returned fiber fails only if the worker does (a claim that fails
 * with `Validation`), and that failure is logged at error level.
 *
 * @since 0.1.0
 * @category running
 */
export const start = <H extends Handler<unknown>>(
  options: WorkerOptions<H>
): Effect.Effect<
  Fiber.RuntimeFiber<never, EngineError>,
  WorkerError | ConfigError.ConfigError,
  EngineBackend | Handler.Context<H> | Scope.Scope
> =>
  Effect.flatMap(resolveSettings(options), (settings) => Effect.forkScoped(runWith(settings))) as Effect.Effect<
    Fiber.RuntimeFiber<never, EngineError>,
    WorkerError | ConfigError.ConfigError,
    EngineBackend | Handler.Context<H> | Scope.Scope
  >

/**
 * The worker as a layer: `start` when the layer is built, stopped (drained)
 * when it is released. A bad setting — an option, or a `WorkerConfig`
 * variable such as `FLOWFABRIC_LEASE_TTL` — fails the layer, so the
 * application does not start. Provides nothing; requires the backend and
 * what the handlers require.
 *
 * ```ts
 * const AppLive = Layer.mergeAll(
 *   Worker.layer({ lanes: ["images"], handlers: [resize] }),
 *   Reconciler.layer()
 * ).pipe(Layer.provideMerge(MemoryBackend.layer()))
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = <H extends Handler<unknown>>(
  options: WorkerOptions<H>
): Layer.Layer<never, WorkerError | ConfigError.ConfigError, EngineBackend | Handler.Context<H>> =>
  Layer.scopedDiscard(start(options))

export {
  /**
   * A value that could not be encoded to, or decoded from, a JSON payload.
   *
   * @since 0.1.0
   */
  PayloadError
} from "./internal/worker/codec.js"
