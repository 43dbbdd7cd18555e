/**
 * The worker runtime (docs/worker.md): claims executions round-robin over
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
import type { ConfigError, Fiber, Scope } from "effect"
import {
  Cause,
  Clock,
  Config,
  Duration,
  Effect,
  Either,
  Exit,
  FiberSet,
  HashSet,
  Layer,
  Metric,
  MetricBoundaries,
  MetricLabel,
  Option,
  Predicate,
  Ref,
  Schedule,
  Schema
} from "effect"
import { hostname } from "node:os"
import { EngineBackend } from "./EngineBackend.js"
import { type EngineError, isEngineError, isLeaseLost, isRetryable, rootCause } from "./EngineError.js"
import * as Ids from "./Ids.js"
import type { BudgetId, ExecutionId, FlowId, LaneId, WaitpointId, WorkerId, WorkerInstanceId } from "./Ids.js"
import { decodeHandle } from "./internal/handleCodec.js"
import { withSpanWhenTraced } from "./internal/observability.js"
import { parentSpanOf } from "./internal/traceContext.js"
import { MAX_CLAIM_BATCH } from "./internal/validation.js"
import { decodeJson, encodeJson, PayloadError } from "./internal/worker/codec.js"
import * as Completions from "./internal/worker/completions.js"
import * as LeaseKeeper from "./internal/worker/leaseKeeper.js"
import type * as M from "./Model.js"
import * as Producer from "./Producer.js"

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/**
 * A worker that cannot start: no handlers, two handlers for one kind, a bad
 * lane id, a concurrency below 1.
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
  /** Decodes the payload, runs the handler with the context `makeContext` builds, encodes its output. */
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
  return {
    [HandlerTypeId]: { _R: (_: never) => _ },
    kind: spec.kind,
    execute: (payload, makeContext) =>
      Effect.gen(function*() {
        const input = yield* decodeJson(spec.input, payload, `input of "${spec.kind}"`).pipe(
          Effect.mapError((e) => classified("Permanent", e.message))
        )
        const output = yield* spec.run(input, makeContext(input)).pipe(Effect.mapError(ofUserError))
        return yield* encodeJson(spec.output, output, `output of "${spec.kind}"`).pipe(
          Effect.mapError((e) => classified("Permanent", e.message))
        )
      })
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
export const claimsTotal = Metric.counter("flowfabric_worker_claims_total", {
  description: "Executions a worker claimed, by lane and handle kind",
  incremental: true
})

/** Attempts finished, tagged `kind` and `outcome` (the `WorkerEvent` tag). @since 0.1.0 @category metrics */
export const tasksTotal = Metric.counter("flowfabric_worker_tasks_total", {
  description: "Attempts a worker finished, by kind and outcome",
  incremental: true
})

/** Attempt duration in milliseconds, tagged `kind` and `outcome`. @since 0.1.0 @category metrics */
export const taskDurationMs = Metric.histogram(
  "flowfabric_worker_task_duration_ms",
  MetricBoundaries.exponential({ start: 1, factor: 2, count: 20 }),
  "Attempt duration in milliseconds, by kind and outcome"
)

/** Attempts running now, tagged `worker_instance`. @since 0.1.0 @category metrics */
export const activeTasks = Metric.gauge("flowfabric_worker_active_tasks", {
  description: "Attempts a worker is running"
})

/** Lease renewals, tagged `result` (`ok`, `retry`, `lost`). @since 0.1.0 @category metrics */
export const renewalsTotal = Metric.counter("flowfabric_worker_lease_renewals_total", {
  description: "Lease renewals by result",
  incremental: true
})

/**
 * Label sets by their values, made once: a metric caches its registry entry per label array, so
 * updating with the same array is a lookup where a new one (as `Metric.tagged` makes per update)
 * rebuilds and hashes the key.
 */
const labelSets = () => {
  const sets = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  return (...pairs: ReadonlyArray<string>): ReadonlyArray<MetricLabel.MetricLabel> => {
    const key = pairs.join("\u0000")
    let set = sets.get(key)
    if (set === undefined) {
      const labels: Array<MetricLabel.MetricLabel> = []
      for (let i = 0; i + 1 < pairs.length; i += 2) labels.push(MetricLabel.make(pairs[i]!, pairs[i + 1]!))
      set = labels
      sets.set(key, set)
    }
    return set
  }
}

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
   * expire and the reconciler makes them reclaimable.
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
   * is in flight, and what queued meanwhile goes in one `completeMany`. Default: on for Postgres
   * (a statement per completion costs more than the batching: about twice the tasks per second),
   * off for memory and Valkey (measured, it does not pay there).
   */
  readonly batchCompletions?: boolean | undefined
  /** Called with every event of every attempt (in the attempt's fiber). */
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

/** The back-off after a failed claim: 50 ms doubling, capped at 1 s. */
const claimErrorBackoff: Schedule.Schedule<unknown> = Schedule.exponential("50 millis", 2).pipe(
  Schedule.union(Schedule.spaced("1 second"))
)

/** @since 0.1.0 @category defaults */
export const defaultWriteRetry: Schedule.Schedule<unknown, EngineError> = Schedule.exponential("50 millis", 2).pipe(
  Schedule.intersect(Schedule.recurs(5))
)

/** How long released attempts may take to write their release after the grace period. */
const RELEASE_TIMEOUT = Duration.seconds(5)
const SHUTDOWN_POLL = Duration.millis(20)

interface Settings {
  readonly lanes: ReadonlyArray<LaneId>
  readonly handlers: ReadonlyMap<string, Handler<unknown>>
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
  readonly onEvent: (event: WorkerEvent) => Effect.Effect<void>
}

const decodeLane = Schema.decodeUnknownEither(Ids.LaneId)

const resolveSettings = <H extends Handler<unknown>>(
  options: WorkerOptions<H>
): Effect.Effect<Settings, WorkerError | ConfigError.ConfigError> =>
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
      handlers.set(h.kind, h)
    }
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
      onEvent: options.onEvent ?? (() => Effect.void)
    }
  })

// ---------------------------------------------------------------------------
// One attempt
// ---------------------------------------------------------------------------

/** How the attempt ended by the handler's own hand (suspend / delay / waitChildren). */
type Ended =
  | { readonly _tag: "Suspended"; readonly waitpointId: WaitpointId }
  | { readonly _tag: "Delayed"; readonly until: number }
  | { readonly _tag: "WaitingChildren" }

/** Why the handler stopped: it returned, or the lease keeper stopped it. */
type Stop =
  | { readonly _tag: "Handler"; readonly exit: Exit.Exit<Uint8Array, HandlerFailure> }
  | LeaseKeeper.Stop

const utf8 = new TextEncoder()

const leaseLostReason = (e: EngineError): string => {
  const root = rootCause(e)
  return root._tag === "Contention" && root.kind === "ExecutionNotActive" && root.notActive !== undefined ?
    `execution is ${root.notActive.terminalOutcome !== "none" ? root.notActive.terminalOutcome : root.notActive.lifecyclePhase}` :
    root.message
}

interface Runtime {
  readonly backend: EngineBackend.Service
  readonly settings: Settings
  /** Renews the running attempts' leases; stops them when a lease is lost or the drain ends. */
  readonly keeper: LeaseKeeper.LeaseKeeper
  /** Writes the attempts' completions (see `batchCompletions`). */
  readonly complete: (handle: M.Handle, payload: Uint8Array) => Effect.Effect<void, EngineError>
  /** The metric labels of this worker (see `labelSets`). */
  readonly labels: (...pairs: ReadonlyArray<string>) => ReadonlyArray<MetricLabel.MetricLabel>
}

/**
 * One attempt, from its claim to the write that ends it. `prefetched` is its input when the worker
 * read the inputs of the claimed batch at once (`Some(None)`: the execution is gone); `None`: read it here.
 */
const runAttempt = (
  rt: Runtime,
  handle: M.Handle,
  claimedAt: number,
  prefetched: Option.Option<Option.Option<M.ExecutionInput>>
): Effect.Effect<void> => {
  const { backend, settings } = rt
  const decoded = decodeHandle(handle.backend, handle)
  if (Either.isLeft(decoded)) {
    return Effect.logError(`claimed handle does not decode: ${JSON.stringify(decoded.left)}`)
  }
  const p = decoded.right
  const attempt = p.attemptIndex + 1
  // The input is read before the attempt's span starts: the span joins the trace of the span
  // that created the execution (its traceparent comes with the input).
  const readInput: Effect.Effect<Either.Either<Option.Option<M.ExecutionInput>, EngineError>> =
    Option.isSome(prefetched) ?
      Effect.succeed(Either.right(prefetched.value)) :
      backend.getExecutionInput(p.executionId).pipe(
        Effect.retry({ schedule: settings.writeRetry, while: isRetryable }),
        Effect.either
      )
  return Effect.flatMap(readInput, (input) => runWithInput(rt, handle, p, claimedAt, input)).pipe(
    Effect.annotateLogs({
      executionId: p.executionId,
      attempt,
      lane: p.laneId,
      workerInstanceId: settings.workerInstanceId
    })
  )
}

/** One attempt whose input was read (`runAttempt`). */
const runWithInput = (
  rt: Runtime,
  handle: M.Handle,
  p: M.HandlePayload,
  claimedAt: number,
  input: Either.Either<Option.Option<M.ExecutionInput>, EngineError>
): Effect.Effect<void> => {
  const { backend, settings } = rt
  const attempt = p.attemptIndex + 1
  // Uninterruptible but for the handler: once the handler has stopped, the write that ends the
  // attempt is not cut short.
  return Effect.uninterruptibleMask((restore) => Effect.gen(function*() {
    const kind = Either.isRight(input) && Option.isSome(input.right) ? input.right.value.executionKind : "?"
    const base: EventBase = {
      executionId: p.executionId,
      kind,
      lane: p.laneId,
      attempt,
      workerInstanceId: settings.workerInstanceId
    }
    const elapsed = Effect.map(Clock.currentTimeMillis, (now) => now - claimedAt)
    const emit = (event: WorkerEvent) =>
      event._tag === "Claimed" ?
        settings.onEvent(event) :
        Effect.flatMap(elapsed, (ms) => {
          const labels = rt.labels("kind", kind, "outcome", event._tag)
          tasksTotal.unsafeUpdate(1, labels)
          taskDurationMs.unsafeUpdate(ms, labels)
          return settings.onEvent(event)
        })

    /**
     * A write under the lease: retried on retryable errors (`ExecutionNotActive` is a retryable
     * contention, but a lost lease is final); a lost lease is reported, never fatal.
     */
    const write = <A>(operation: string, effect: Effect.Effect<A, EngineError>) =>
      effect.pipe(
        Effect.retry({ schedule: settings.writeRetry, while: (e) => isRetryable(e) && !isLeaseLost(e) }),
        Effect.map(Option.some),
        Effect.catchAll((error) =>
          Effect.as(
            isLeaseLost(error) ?
              emit({ ...base, _tag: "LeaseLost", reason: `${operation} fenced: ${leaseLostReason(error)}` }) :
              Effect.zipRight(
                Effect.logError(`${operation} failed`, error),
                emit({ ...base, _tag: "WriteFailed", operation, error })
              ),
            Option.none<A>()
          )
        )
      )
    const failWith = (classification: M.FailureClass, message: string) =>
      Effect.gen(function*() {
        const outcome = yield* write("fail", backend.fail(handle, { reason: { message }, classification }))
        if (Option.isSome(outcome)) {
          yield* Effect.logInfo(`failed (${classification}): ${message}`)
          yield* emit({
            ...base,
            _tag: "Failed",
            classification,
            reason: message,
            outcome: outcome.value,
            durationMs: yield* elapsed
          })
        }
      })

    yield* emit({ ...base, _tag: "Claimed", handleKind: handle.kind })

    if (Either.isLeft(input)) {
      return yield* failWith("Transient", `cannot read the execution's input: ${input.left.message}`)
    }
    if (Option.isNone(input.right)) {
      return yield* Effect.logWarning("claimed execution has no input record (deleted?); nothing to run")
    }
    const payload = input.right.value.payload
    const h = settings.handlers.get(kind)
    if (h === undefined) {
      return yield* failWith(
        "Permanent",
        `no handler for kind "${kind}" on worker ${settings.workerId} (handles: ${[...settings.handlers.keys()].join(", ")})`
      )
    }

    const resumeSignals = handle.kind === "resumed" ?
      yield* restore(backend.observeSignals(handle)).pipe(
        Effect.tapError((e) => Effect.logWarning("observeSignals failed", e)),
        Effect.orElseSucceed((): ReadonlyArray<M.ResumeSignal> => [])
      ) :
      []

    const ended = yield* Ref.make<Option.Option<Ended>>(Option.none())
    /** Serialises renewals with the writes that end the attempt, so a renewal never races them. */
    const leaseLock = yield* Effect.makeSemaphore(1)

    const endAttempt = (op: Effect.Effect<Ended, EngineError>): Effect.Effect<never, EngineError> =>
      Effect.zipRight(
        leaseLock.withPermits(1)(Effect.flatMap(op, (e) => Ref.set(ended, Option.some(e)))),
        Effect.interrupt
      )

    const flowId = yield* Effect.cached(backend.resolveExecutionFlowId(p.executionId))
    const ownFlow = Effect.flatMap(flowId, (id) =>
      Option.isSome(id) ?
        Effect.succeed(id.value) :
        Effect.fail(new Producer.FlowSpecError({ detail: `execution ${p.executionId} is not a member of a flow` })))
    const neighbours = (outgoing: boolean) =>
      Effect.flatMap(flowId, (id) =>
        Option.isNone(id) ?
          Effect.succeed<ReadonlyArray<ExecutionId>>([]) :
          Effect.map(
            backend.listEdges({
              flowId: id.value,
              direction: outgoing ? { _tag: "Outgoing", fromNode: p.executionId } : { _tag: "Incoming", toNode: p.executionId }
            }),
            (edges) => [...new Set(edges.map((e) => (outgoing ? e.downstreamExecutionId : e.upstreamExecutionId)))].sort()
          ))
    const flowContext: FlowContext = {
      id: flowId,
      upstreams: neighbours(false),
      downstreams: neighbours(true),
      add: (extension) =>
        Effect.flatMap(ownFlow, (id) =>
          Producer.extendFlow(id, { ...extension, lane: extension.lane ?? p.laneId, key: `ctx:${p.executionId}` }).pipe(
            Effect.provideService(EngineBackend, backend)
          )),
      seal: Effect.flatMap(ownFlow, (id) => Producer.sealFlow(id).pipe(Effect.provideService(EngineBackend, backend)))
    }

    const makeContext = <I>(decodedInput: I): TaskContext<I> => ({
      executionId: p.executionId,
      kind,
      lane: p.laneId,
      input: decodedInput,
      attempt,
      attemptIndex: p.attemptIndex,
      handleKind: handle.kind,
      resumed: handle.kind === "resumed",
      resumeSignals,
      workerId: settings.workerId,
      workerInstanceId: settings.workerInstanceId,
      handle,
      progress: (percent, message) =>
        backend.progress(handle, {
          ...(percent === undefined ? {} : { percent: Math.min(100, Math.max(0, Math.round(percent))) }),
          ...(message === undefined ? {} : { message })
        }),
      appendFrame: (frame) => backend.appendFrame(handle, frame),
      log: (message) => backend.appendFrame(handle, { bytes: utf8.encode(message), kind: "stdout" }),
      event: (frameType, data) =>
        backend.appendFrame(handle, { bytes: utf8.encode(JSON.stringify(data) ?? "null"), kind: "event", frameType }),
      createWaitpoint: (options) =>
        Effect.gen(function*() {
          const key = options?.key ?? `wpk:${yield* Ids.randomUuid}`
          const created = yield* backend.createWaitpoint(handle, {
            waitpointKey: key,
            expiresIn: Duration.decode(options?.expiresIn ?? Duration.hours(1))
          })
          return { waitpointId: created.waitpointId, waitpointKey: key, token: created.hmacToken }
        }),
      suspend: (options = {}) =>
        Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const suspensionId = yield* Ids.newSuspensionId
          let binding: M.WaitpointBinding
          let key: string
          if (options.waitpoint !== undefined) {
            binding = { _tag: "UsePending", waitpointId: options.waitpoint.waitpointId }
            key = options.waitpoint.waitpointKey
          } else {
            const waitpointId = yield* Ids.newWaitpointId
            key = options.waitpointKey ?? `wpk:${waitpointId}`
            binding = { _tag: "Fresh", waitpointId, waitpointKey: key }
          }
          const outcome = yield* leaseLock.withPermits(1)(
            Effect.gen(function*() {
              const o = yield* backend.suspend(handle, {
                suspensionId,
                waitpoints: [binding],
                resumeCondition: {
                  _tag: "Single",
                  waitpointKey: key,
                  matcher: options.signalName === undefined ?
                    { _tag: "Wildcard" } :
                    { _tag: "ByName", name: options.signalName }
                },
                now,
                ...(options.reasonCode === undefined ? {} : { reasonCode: options.reasonCode }),
                ...(options.timeout === undefined ?
                  {} :
                  { timeoutAt: now + Duration.toMillis(Duration.decode(options.timeout)) }),
                ...(options.timeoutBehavior === undefined ? {} : { timeoutBehavior: options.timeoutBehavior }),
                ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey })
              })
              if (o._tag === "Suspended") {
                yield* Ref.set(ended, Option.some({ _tag: "Suspended", waitpointId: o.details.waitpointId }))
              }
              return o
            })
          )
          if (outcome._tag === "AlreadySatisfied") return yield* backend.observeSignals(handle)
          if (options.onSuspended !== undefined) yield* Effect.uninterruptible(options.onSuspended(outcome.details))
          return yield* Effect.interrupt
        }),
      delay: (duration) =>
        endAttempt(Effect.gen(function*() {
          const until = typeof duration === "object" && duration !== null && "until" in duration ?
            duration.until :
            (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(duration))
          yield* backend.delay(handle, { delayUntil: Math.floor(until) })
          return { _tag: "Delayed", until } as const
        })),
      waitChildren: endAttempt(Effect.as(backend.waitChildren(handle), { _tag: "WaitingChildren" } as const)),
      reportUsage: (budgetId, dimensions) => backend.reportUsage(handle, { budgetId, dimensions }),
      flow: flowContext
    })

    // The keeper renews the lease while the handler runs, and interrupts the handler when the lease is
    // lost or the worker's drain ends.
    const lease: LeaseKeeper.Lease = {
      executionId: p.executionId,
      handle,
      lock: leaseLock,
      ended: Effect.map(Ref.get(ended), Option.isSome),
      stop: undefined
    }
    // The handler's requirements are those `run` was typed with: they are in this fiber's context.
    const execute = h.execute(payload, makeContext) as Effect.Effect<Uint8Array, HandlerFailure>
    const exit = yield* rt.keeper.guard(lease, claimedAt, restore(execute))
    const interrupted = Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
    const stop: Stop = interrupted && lease.stop !== undefined ? lease.stop : { _tag: "Handler", exit }

    const endedBy = yield* Ref.get(ended)
    if (Option.isSome(endedBy)) {
      const e = endedBy.value
      yield* Effect.logDebug(`attempt ended: ${e._tag}`)
      return yield* emit(
        e._tag === "Suspended" ?
          { ...base, _tag: "Suspended", waitpointId: e.waitpointId } :
          e._tag === "Delayed" ?
          { ...base, _tag: "Delayed", until: e.until } :
          { ...base, _tag: "WaitingChildren" }
      )
    }
    if (interrupted && lease.stop === undefined && !HashSet.has(Cause.interruptors(exit.cause), yield* Effect.fiberId)) {
      // interrupted from outside (the worker is torn down without a drain): nothing is written, as in a crash
      return yield* Effect.logDebug("attempt interrupted with the worker")
    }
    switch (stop._tag) {
      case "LeaseLost": {
        yield* Effect.logWarning(`lease lost, attempt stopped: ${stop.reason}`)
        return yield* emit({ ...base, _tag: "LeaseLost", reason: stop.reason })
      }
      case "Shutdown": {
        const now = yield* Clock.currentTimeMillis
        const released = yield* write("release", backend.delay(handle, { delayUntil: now }))
        if (Option.isSome(released)) {
          yield* Effect.logInfo("released at shutdown")
          yield* emit({ ...base, _tag: "Released", reason: "worker shutdown" })
        }
        return
      }
      case "Handler": {
        const exit = stop.exit
        if (Exit.isSuccess(exit)) {
          const done = yield* write("complete", rt.complete(handle, exit.value))
          if (Option.isSome(done)) yield* emit({ ...base, _tag: "Completed", durationMs: yield* elapsed })
          return
        }
        const failure = Cause.failureOption(exit.cause)
        if (Option.isSome(failure)) {
          const f = failure.value
          if (f._tag === "LeaseLost") {
            const reason = leaseLostReason(f.error)
            yield* Effect.logWarning(`lease lost during the attempt: ${reason}`)
            return yield* emit({ ...base, _tag: "LeaseLost", reason })
          }
          return yield* failWith(f.classification, f.message)
        }
        const defect = Cause.dieOption(exit.cause)
        if (Option.isSome(defect)) {
          yield* Effect.logError("handler died", exit.cause)
          return yield* failWith("InfraCrash", `handler defect: ${describeFailure(defect.value)}`)
        }
        return yield* failWith("Transient", "the handler was interrupted")
      }
    }
  })).pipe(
    withSpanWhenTraced("Worker.attempt", () => ({
      execution_id: p.executionId,
      attempt_index: p.attemptIndex,
      lane: p.laneId,
      handle_kind: handle.kind,
      worker_instance_id: settings.workerInstanceId
    }), () => parentSpanOf(Either.isRight(input) ? Option.getOrUndefined(input.right)?.traceParent : undefined))
  )
}

// ---------------------------------------------------------------------------
// The worker
// ---------------------------------------------------------------------------

const awaitIdle = (tasks: FiberSet.FiberSet<void, never>, limit: Duration.Duration) =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(limit)
    for (;;) {
      const size = yield* FiberSet.size(tasks)
      const now = yield* Clock.currentTimeMillis
      if (size === 0 || now >= deadline) return size
      yield* Effect.sleep(Duration.min(SHUTDOWN_POLL, Duration.millis(deadline - now)))
    }
  })

/** Promotions in a row that found nothing at the reported due time before the worker waits for a wake-up instead. */
const MAX_DUE_MISSES = 10

/** A subscription that never wakes: the worker claims on its idle schedule alone. */
const pollingOnly: EngineBackend.WorkSubscription = {
  wakeups: Effect.succeed(0),
  arm: Effect.succeed({ dueAt: Option.none(), claimAgain: false }),
  disarm: Effect.void,
  await: (_since, maxWait) => Effect.as(Effect.sleep(maxWait), false),
  promoteDue: Effect.succeed(0),
  revoked: Effect.never
}

/** The worker's wake-ups; a backend that cannot give them leaves the worker to its idle poll. */
const subscribe = (
  backend: EngineBackend.Service,
  settings: Settings
): Effect.Effect<EngineBackend.WorkSubscription, never, Scope.Scope> =>
  backend.subscribeWork({ lanes: settings.lanes, workerInstanceId: settings.workerInstanceId }).pipe(
    Effect.catchAll((error) =>
      Effect.as(Effect.logWarning("wake-ups unavailable; the worker claims on its idle schedule", error), pollingOnly)
    )
  )

const workerLoop = (settings: Settings): Effect.Effect<never, EngineError, EngineBackend | Scope.Scope> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const labels = labelSets()
    // Made before the attempts' set, so that its loop renews leases until the last attempt is gone.
    const keeper = yield* LeaseKeeper.make({
      backend,
      leaseTtlMs: settings.leaseTtlMs,
      renewEvery: settings.renewEvery,
      onRenewal: (result, cause) =>
        Effect.zipRight(
          Effect.sync(() => renewalsTotal.unsafeUpdate(1, labels("result", result))),
          result === "retry" && cause !== undefined ? Effect.logWarning("lease renewal failed; retrying", cause) : Effect.void
        ),
      describeLoss: leaseLostReason
    })
    const complete = (settings.batchCompletions ?? backend.backendLabel === "postgres") ?
      (yield* Completions.make(backend, Math.min(settings.concurrency, MAX_CLAIM_BATCH))).complete :
      (handle: M.Handle, payload: Uint8Array) => backend.complete(handle, { payload })
    const rt: Runtime = { backend, settings, keeper, complete, labels }
    const tasks = yield* FiberSet.make<void, never>()
    const slots = yield* Effect.makeSemaphore(settings.concurrency)
    const active = labels("worker_instance", settings.workerInstanceId)

    // Registered after the FiberSet, so it runs before the set interrupts what is left.
    yield* Effect.addFinalizer(() =>
      Effect.gen(function*() {
        const running = yield* FiberSet.size(tasks)
        if (running === 0) return yield* Effect.logDebug("worker stopped")
        if (!settings.releaseOnShutdown) {
          return yield* Effect.logWarning(`worker stopped; ${running} attempt(s) dropped, their leases will expire`)
        }
        yield* Effect.logInfo(`worker stopping; ${running} attempt(s) running, grace ${Duration.format(settings.grace)}`)
        const left = yield* awaitIdle(tasks, settings.grace)
        if (left > 0) {
          yield* Effect.logInfo(`grace period over; releasing ${left} attempt(s)`)
          yield* keeper.shutdown
          yield* awaitIdle(tasks, RELEASE_TIMEOUT)
        }
        yield* Effect.logInfo("worker stopped")
      })
    )

    const policy: M.ClaimPolicy = {
      workerId: settings.workerId,
      workerInstanceId: settings.workerInstanceId,
      leaseTtlMs: settings.leaseTtlMs
    }
    const capabilities: M.CapabilitySet = { tokens: settings.capabilities }
    let next = 0
    /** Up to `max` claims from the first lane, in turn, that has work, starting after the lane that gave work last. */
    const claimRound = (max: number) =>
      Effect.gen(function*() {
        const n = settings.lanes.length
        for (let i = 0; i < n; i++) {
          const index = (next + i) % n
          const lane = settings.lanes[index]!
          const handles = yield* backend.claimMany({ lane, capabilities, policy }, max)
          if (handles.length > 0) {
            next = (index + 1) % n
            return Option.some({ lane, handles })
          }
        }
        return Option.none()
      })
    // attempts forked and not yet finished; every one holds a slot
    let running = 0

    const background = yield* FiberSet.make<void, never>()
    const sub = yield* subscribe(backend, settings)
    // a lease someone else ended (cancel, revoke, timeout) is checked at once, not at its renewal
    yield* FiberSet.run(
      background,
      Effect.forever(Effect.flatMap(sub.revoked, (id) => FiberSet.run(background, keeper.recheck(id))))
    )
    const idle = yield* Schedule.driver(settings.idle)
    const poll = Effect.catchAll(idle.next(undefined), () => Effect.zipRight(idle.reset, Effect.sleep("1 second")))
    const errors = yield* Schedule.driver(claimErrorBackoff)
    const backOff = Effect.catchAll(errors.next(undefined), () => Effect.zipRight(errors.reset, Effect.sleep("1 second")))
    /** Since the last wait: `undefined` not armed, else the due time `arm` reported. */
    let armed: Option.Option<number> | undefined
    /** Promotions in a row that found nothing due at the reported due time (the store's clock lags ours). */
    let misses = 0

    yield* Effect.logInfo(
      `worker ${settings.workerInstanceId} started: lanes ${settings.lanes.join(", ")}; kinds ${
        [...settings.handlers.keys()].join(", ")
      }; concurrency ${settings.concurrency}; lease ${settings.leaseTtlMs} ms`
    )
    for (;;) {
      yield* slots.take(1)
      // every wake-up from here on ends the wait that may follow this claim
      const mark = yield* sub.wakeups
      // The free slots are filled in one claimMany. A claim and the fork of its
      // attempts are one step: an interruption in between would strand leases
      // until they expired.
      const claimed = yield* Effect.uninterruptibleMask((restore) =>
        Effect.gen(function*() {
          const free = Math.min(MAX_CLAIM_BATCH, Math.max(1, settings.concurrency - running))
          if (free > 1) yield* slots.take(free - 1)
          const r = yield* Effect.either(claimRound(free))
          const got = Either.isRight(r) ? Option.getOrUndefined(r.right) : undefined
          const handles = got?.handles ?? []
          if (handles.length < free) yield* slots.release(free - handles.length)
          if (got === undefined) return r
          const { lane } = got
          const claimedAt = yield* Clock.currentTimeMillis
          // the inputs of the whole batch in one read; when it fails, each attempt reads its own
          const ids = handles.flatMap((h) => Either.match(decodeHandle(h.backend, h), {
            onLeft: () => [],
            onRight: (p) => [p.executionId]
          }))
          const inputs = ids.length === handles.length ?
            Either.getRight(yield* Effect.either(backend.getExecutionInputs(ids))) :
            Option.none()
          for (const [i, handle] of handles.entries()) {
            claimsTotal.unsafeUpdate(1, labels("lane", lane, "handle_kind", handle.kind))
            activeTasks.unsafeModify(1, active)
            running++
            yield* FiberSet.run(
              tasks,
              restore(runAttempt(rt, handle, claimedAt, Option.map(inputs, (all) => all[i]!))).pipe(
                Effect.ensuring(
                  Effect.zipRight(
                    slots.release(1),
                    Effect.sync(() => {
                      activeTasks.unsafeModify(-1, active)
                      running--
                    })
                  )
                )
              )
            )
          }
          return r
        })
      )
      if (Either.isLeft(claimed)) {
        const error = claimed.left
        const root = rootCause(error)
        if (root._tag === "Validation") return yield* Effect.fail(error)
        yield* Effect.logWarning("claim failed; backing off", error)
        yield* backOff
        continue
      }
      yield* errors.reset
      if (Option.isSome(claimed.right)) {
        yield* idle.reset
        if (armed !== undefined) {
          armed = undefined
          yield* sub.disarm
        }
        continue
      }
      if (armed === undefined) {
        const arm = yield* Effect.either(sub.arm)
        if (Either.isLeft(arm)) yield* Effect.logWarning("cannot arm the wake-ups; polling", arm.left)
        armed = Either.isRight(arm) ? arm.right.dueAt : Option.none()
        if (Either.isRight(arm) && arm.right.claimAgain) continue
      }
      // Nothing claimable: wait for a wake-up, the lanes' next due time, or the safety poll.
      const now = yield* Clock.currentTimeMillis
      const dueIn = Option.flatMap(armed, (due) =>
        misses >= MAX_DUE_MISSES ?
          Option.none() :
          Option.some(Math.max(due - now, misses === 0 ? 0 : Math.min(1000, 2 ** misses))))
      armed = undefined
      const woken = Option.isSome(dueIn) && dueIn.value === 0 ? "due" : yield* Effect.raceFirst(
        Effect.as(poll, "poll" as const),
        Effect.map(
          sub.await(mark, Option.match(dueIn, { onNone: () => Duration.infinity, onSome: Duration.millis })),
          (w) => (w ? "wake" as const : "due" as const)
        )
      )
      if (woken === "due") {
        const promoted = yield* Effect.either(sub.promoteDue)
        if (Either.isLeft(promoted)) yield* Effect.logWarning("cannot promote due work", promoted.left)
        misses = Either.isRight(promoted) && promoted.right > 0 ? 0 : misses + 1
      } else {
        misses = 0
      }
    }
  }).pipe(Effect.annotateLogs({ worker: settings.workerInstanceId }))

/** The worker on checked settings, its failure logged at error level (an interruption is not one). */
const runWith = (settings: Settings): Effect.Effect<never, EngineError, EngineBackend> =>
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
