/**
 * One attempt, from its claim to the write that ends it, in four steps: read the input, build the
 * task context, run the handler under the lease keeper, settle the outcome (complete, fail, or
 * report how the attempt stopped: suspended, delayed, lease lost, released at shutdown).
 */
import { Cause, Clock, Context, Duration, Effect, Either, Exit, type Fiber, HashSet, Option } from "effect"
import { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, isLeaseLost, isRetryable } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { ExecutionId, FlowId, WaitpointId } from "../../Ids.js"
import type * as M from "../../Model.js"
import * as Producer from "../../Producer.js"
import type { FlowContext, Handler, HandlerFailure, SuspendOptions, TaskContext, WorkerEvent } from "../../Worker.js"
import { builtInTracer, parentSpanOf } from "../traceContext.js"
import { utf8Encode } from "../utf8.js"
import * as LeaseKeeper from "./leaseKeeper.js"
import { taskDurationMs, tasksTotal } from "./metrics.js"
import { describeFailure, exitNow, leaseLostReason, type Runtime } from "./runtime.js"

/** What every event of an attempt says. */
type EventBase = Pick<WorkerEvent, "executionId" | "kind" | "lane" | "attempt" | "workerInstanceId">

/** Makes an effect as interruptible as the worker's loop was (the `restore` of its claim step). */
export type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/** What the steps of one attempt share. */
interface Attempt {
  readonly rt: Runtime
  readonly handle: M.Handle
  readonly p: M.HandlePayload
  readonly claimedAt: number
  /** The attempt fiber's clock, read in place where a step needs the time. */
  readonly clock: Clock.Clock
  readonly base: EventBase
}

/** How the attempt ended by the handler's own hand (suspend / delay / waitChildren). */
type Ended =
  | { readonly _tag: "Suspended"; readonly waitpointId: WaitpointId }
  | { readonly _tag: "Delayed"; readonly until: number }
  | { readonly _tag: "WaitingChildren" }

/** The attempt while its handler runs: what its task context, the lease keeper and the settlement share. */
class Running implements LeaseKeeper.Lease {
  /** Set by the write that ended the attempt (`Ended`), under the lease's lock. */
  endedBy: Ended | undefined = undefined
  lock: Effect.Semaphore | undefined = undefined
  stop: LeaseKeeper.Stop | undefined = undefined
  constructor(readonly executionId: string, readonly handle: M.Handle) {}
  ended(): boolean {
    return this.endedBy !== undefined
  }
  /** The lease the keeper guards; its lock serialises renewals with the writes that end the attempt (never racing). */
  get lease(): LeaseKeeper.Lease {
    return this
  }
}

/** How the attempt stopped, to settle. */
type Stop =
  /** The handler returned. */
  | { readonly _tag: "Handler"; readonly exit: Exit.Exit<Uint8Array, HandlerFailure> }
  /** The lease keeper stopped the handler. */
  | LeaseKeeper.Stop
  /** The handler ended the attempt itself, and that write committed. */
  | { readonly _tag: "Ended"; readonly ended: Ended }
  /** Interrupted from outside: the worker was torn down without a drain. */
  | { readonly _tag: "Interrupted" }

const noSignals: ReadonlyArray<M.ResumeSignal> = []

/**
 * One attempt, from its claim to the write that ends it, for the handle `handle` (decoded:
 * `p`). It runs in a fiber of its own, forked uninterruptible by the claim step; `restore` makes
 * the input read and the handler as interruptible as the worker's loop: once the handler has
 * stopped, the write that ends the attempt is not cut short. `prefetched` is its input when the worker read the
 * inputs of the claimed batch at once (`Some(None)`: the execution is gone); `None`: read it here.
 */
export const runAttempt = (
  rt: Runtime,
  handle: M.Handle,
  p: M.HandlePayload,
  claimedAt: number,
  prefetched: Option.Option<Option.Option<M.ExecutionInput>>,
  restore: Restore
): Effect.Effect<void> =>
  // the fiber's log annotations were set when it was forked (see the claim loop's `launch`)
  Option.isSome(prefetched) ?
    runWithInput(rt, handle, p, claimedAt, Either.right(prefetched.value), restore, true) :
    Effect.flatMap(restore(readInput(rt, p)), (input) => runWithInput(rt, handle, p, claimedAt, input, restore, false))

/**
 * An execution a claim returned once the worker was stopping (its drain had started): handed back
 * without running its handler, as the drain hands back the attempts it stops (`delay` to now: the
 * same attempt resumes elsewhere), and reported `Claimed` then `Released`. Its kind is read from
 * the input the claim brought (`"?"` when it brought none: no read at shutdown).
 */
export const releaseUnrun = (
  rt: Runtime,
  handle: M.Handle,
  p: M.HandlePayload,
  claimedAt: number,
  input: Option.Option<M.ExecutionInput>
): Effect.Effect<void> =>
  Effect.clockWith((clock) => {
    const a: Attempt = {
      rt,
      handle,
      p,
      claimedAt,
      clock,
      base: {
        executionId: p.executionId,
        kind: Option.isSome(input) ? input.value.executionKind : "?",
        lane: p.laneId,
        attempt: p.attemptIndex + 1,
        workerInstanceId: rt.settings.workerInstanceId
      }
    }
    return Effect.zipRight(emit(a, { ...a.base, _tag: "Claimed", handleKind: handle.kind }), release(a))
  })

/**
 * The attempt once its input was read: steps 2 to 4, in the span `Worker.attempt` (when traced).
 * `first`: called in the fiber's first step (the input came with the claim), nothing has waited
 * since the fork.
 */
const runWithInput = (
  rt: Runtime,
  handle: M.Handle,
  p: M.HandlePayload,
  claimedAt: number,
  input: Either.Either<Option.Option<M.ExecutionInput>, EngineError>,
  restore: Restore,
  first: boolean
): Effect.Effect<void> =>
  Effect.withFiberRuntime<void>((fiber) => {
    const a: Attempt = {
      rt,
      handle,
      p,
      claimedAt,
      clock: Context.get(fiber.currentDefaultServices, Clock.Clock),
      base: {
        executionId: p.executionId,
        kind: Either.isRight(input) && Option.isSome(input.right) ? input.right.value.executionKind : "?",
        lane: p.laneId,
        attempt: p.attemptIndex + 1,
        workerInstanceId: rt.settings.workerInstanceId
      }
    }
    const start = handlerFor(a, input)
    // (the handler's `run` is called once `Claimed` was reported: `execute` calls it at once).
    // `started`: still in the fiber's first step, nothing has waited since the fork (see `runHandler`).
    const rest = (started: boolean) =>
      start._tag === "Skip" ? start.effect : runHandler(a, start.handler, start.payload, restore, fiber, started)
    const { onEvent } = rt.settings
    let body: Effect.Effect<void>
    if (onEvent === undefined) {
      body = rest(first)
    } else {
      const claimed = onEvent({
        _tag: "Claimed",
        executionId: a.base.executionId,
        kind: a.base.kind,
        lane: a.base.lane,
        attempt: a.base.attempt,
        workerInstanceId: a.base.workerInstanceId,
        handleKind: handle.kind
      })
      // a report that is done as it returns (`Effect.void`) is not waited for in a step of its own
      const done = exitNow(claimed)
      body = done !== undefined && Exit.isSuccess(done) ? rest(first) : Effect.flatMap(claimed, () => rest(false))
    }
    // Effect's built-in tracer exports nothing: while it is the current one, the attempt has no span
    if (fiber.currentTracer === builtInTracer) return body
    const parent = parentSpanOf(Either.isRight(input) ? Option.getOrUndefined(input.right)?.traceParent : undefined)
    return Effect.withSpan(body, "Worker.attempt", {
      attributes: {
        execution_id: p.executionId,
        attempt_index: p.attemptIndex,
        lane: p.laneId,
        handle_kind: handle.kind,
        worker_instance_id: rt.settings.workerInstanceId
      },
      captureStackTrace: false,
      ...(parent === undefined ? {} : { parent })
    })
  })

// ---------------------------------------------------------------------------
// Step 1: the input, and the handler for its kind
// ---------------------------------------------------------------------------

/**
 * Step 1: the execution's input, prefetched or read (retried on retryable errors). It is read
 * before the attempt's span starts: the span joins the trace of the span that created the
 * execution (its traceparent comes with the input).
 */
const readInput = (
  rt: Runtime,
  p: M.HandlePayload
): Effect.Effect<Either.Either<Option.Option<M.ExecutionInput>, EngineError>> =>
  rt.backend.getExecutionInput(p.executionId).pipe(
    Effect.retry({ schedule: rt.settings.writeRetry, while: isRetryable }),
    Effect.either
  )

/** The handler to run on its payload, or what the attempt does instead (then it ends there). */
type Start =
  | { readonly _tag: "Run"; readonly handler: Handler<unknown>; readonly payload: Uint8Array }
  | { readonly _tag: "Skip"; readonly effect: Effect.Effect<void> }

/**
 * How long an execution of a kind without a handler is held back once handed back: the claim that
 * returned it did not honour the worker's kinds, and would hand it to this worker again at once.
 */
const UNHANDLED_KIND_DELAY_MS = 1_000

/**
 * The handler to run and its payload, unless the attempt ends here: an input that cannot be read
 * fails it (`Transient`), an execution without an input record is left alone, and one of a kind
 * without a handler is handed back, for a worker that has one. That is a safety net only: the
 * worker claims its handlers' kinds alone (docs/worker.md#claiming-and-concurrency).
 */
const handlerFor = (a: Attempt, input: Either.Either<Option.Option<M.ExecutionInput>, EngineError>): Start => {
  const { settings } = a.rt
  if (Either.isLeft(input)) {
    return { _tag: "Skip", effect: failWith(a, "Transient", `cannot read the execution's input: ${input.left.message}`) }
  }
  if (Option.isNone(input.right)) {
    return { _tag: "Skip", effect: Effect.logWarning("claimed execution has no input record (deleted?); nothing to run") }
  }
  const handler = settings.handlers.get(a.base.kind)
  if (handler === undefined) {
    const reason = `no handler for kind "${a.base.kind}" on worker ${settings.workerId} (handles: ${
      settings.kinds.join(", ")
    })`
    return {
      _tag: "Skip",
      effect: handBack(a, reason, UNHANDLED_KIND_DELAY_MS, Effect.logWarning(`handed back: ${reason}`))
    }
  }
  return { _tag: "Run", handler, payload: input.right.value.payload }
}

// ---------------------------------------------------------------------------
// Step 2: the task context
// ---------------------------------------------------------------------------

/** The signals that resumed the attempt; none when they cannot be read. */
const observeResumeSignals = (a: Attempt): Effect.Effect<ReadonlyArray<M.ResumeSignal>> =>
  a.rt.backend.observeSignals(a.handle).pipe(
    Effect.tapError((e) => Effect.logWarning("observeSignals failed", e)),
    Effect.orElseSucceed((): ReadonlyArray<M.ResumeSignal> => [])
  )

/** Runs `op`, a write that ends the attempt, under the lease lock, then stops the handler. */
const endAttempt = (running: Running, op: Effect.Effect<Ended, EngineError>): Effect.Effect<never, EngineError> =>
  Effect.zipRight(
    LeaseKeeper.withLock(running.lease, Effect.map(op, (e) => void (running.endedBy = e))),
    Effect.interrupt
  )

/**
 * The `TaskContext` of an attempt for the handler's decoded `input`. Its operations are made when
 * first read (most handlers use none of them), each once, bound to the attempt: a handler may
 * take them out of the context (`({ progress }) => …`).
 */
class Context_<I> implements TaskContext<I> {
  readonly executionId: ExecutionId
  readonly kind: string
  readonly lane: M.HandlePayload["laneId"]
  readonly attempt: number
  readonly attemptIndex: number
  readonly handleKind: M.HandleKind
  readonly resumed: boolean
  readonly workerId: TaskContext<I>["workerId"]
  readonly workerInstanceId: TaskContext<I>["workerInstanceId"]
  readonly handle: M.Handle
  #progress: TaskContext<I>["progress"] | undefined
  #appendFrame: TaskContext<I>["appendFrame"] | undefined
  #log: TaskContext<I>["log"] | undefined
  #event: TaskContext<I>["event"] | undefined
  #createWaitpoint: TaskContext<I>["createWaitpoint"] | undefined
  #suspend: TaskContext<I>["suspend"] | undefined
  #delay: TaskContext<I>["delay"] | undefined
  #waitChildren: TaskContext<I>["waitChildren"] | undefined
  #reportUsage: TaskContext<I>["reportUsage"] | undefined
  #flow: FlowContext | undefined

  readonly #a: Attempt
  readonly #running: Running

  constructor(a: Attempt, running: Running, readonly resumeSignals: ReadonlyArray<M.ResumeSignal>, readonly input: I) {
    const { handle, p } = a
    this.#a = a
    this.#running = running
    this.executionId = p.executionId
    this.kind = a.base.kind
    this.lane = p.laneId
    this.attempt = a.base.attempt
    this.attemptIndex = p.attemptIndex
    this.handleKind = handle.kind
    this.resumed = handle.kind === "resumed"
    this.workerId = a.rt.settings.workerId
    this.workerInstanceId = a.rt.settings.workerInstanceId
    this.handle = handle
  }

  get progress(): TaskContext<I>["progress"] {
    const { backend } = this.#a.rt
    const { handle } = this
    return this.#progress ??= (percent, message) =>
      backend.progress(handle, {
        ...(percent === undefined ? {} : { percent: Math.min(100, Math.max(0, Math.round(percent))) }),
        ...(message === undefined ? {} : { message })
      })
  }

  get appendFrame(): TaskContext<I>["appendFrame"] {
    const { backend } = this.#a.rt
    const { handle } = this
    return this.#appendFrame ??= (frame) => backend.appendFrame(handle, frame)
  }

  get log(): TaskContext<I>["log"] {
    const { backend } = this.#a.rt
    const { handle } = this
    return this.#log ??= (message) => backend.appendFrame(handle, { bytes: utf8Encode(message), kind: "stdout" })
  }

  get event(): TaskContext<I>["event"] {
    const { backend } = this.#a.rt
    const { handle } = this
    return this.#event ??= (frameType, data) =>
      backend.appendFrame(handle, { bytes: utf8Encode(JSON.stringify(data) ?? "null"), kind: "event", frameType })
  }

  get createWaitpoint(): TaskContext<I>["createWaitpoint"] {
    const { backend } = this.#a.rt
    const { handle } = this
    return this.#createWaitpoint ??= (options) =>
      Effect.gen(function*() {
        const key = options?.key ?? `wpk:${yield* Ids.randomUuid}`
        const created = yield* backend.createWaitpoint(handle, {
          waitpointKey: key,
          expiresIn: Duration.decode(options?.expiresIn ?? Duration.hours(1))
        })
        return { waitpointId: created.waitpointId, waitpointKey: key, token: created.hmacToken }
      })
  }

  get suspend(): TaskContext<I>["suspend"] {
    const a = this.#a, running = this.#running
    return this.#suspend ??= (options = {}) => suspend(a, running, options)
  }

  get delay(): TaskContext<I>["delay"] {
    const { backend } = this.#a.rt
    const { handle } = this, running = this.#running
    return this.#delay ??= (duration) =>
      endAttempt(
        running,
        Effect.gen(function*() {
          const until = typeof duration === "object" && duration !== null && "until" in duration ?
            duration.until :
            (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(duration))
          yield* backend.delay(handle, { delayUntil: Math.floor(until) })
          return { _tag: "Delayed", until } as const
        })
      )
  }

  get waitChildren(): TaskContext<I>["waitChildren"] {
    const { backend } = this.#a.rt
    const { handle } = this, running = this.#running
    return this.#waitChildren ??= Effect.suspend(() =>
      endAttempt(running, Effect.as(backend.waitChildren(handle), { _tag: "WaitingChildren" } as const))
    )
  }

  get reportUsage(): TaskContext<I>["reportUsage"] {
    const { backend } = this.#a.rt
    const { handle } = this
    return this.#reportUsage ??= (budgetId, dimensions) => backend.reportUsage(handle, { budgetId, dimensions })
  }

  get flow(): FlowContext {
    return this.#flow ??= flowContext(this.#a)
  }
}

/** The `TaskContext` of the attempt for the handler's decoded `input`. */
const taskContext = <I>(
  a: Attempt,
  running: Running,
  resumeSignals: ReadonlyArray<M.ResumeSignal>,
  input: I
): TaskContext<I> => new Context_(a, running, resumeSignals, input)

/** `ctx.suspend`: ends the attempt, unless the waitpoint's buffered signals already satisfy it. */
const suspend = (
  a: Attempt,
  running: Running,
  options: SuspendOptions
): Effect.Effect<ReadonlyArray<M.ResumeSignal>, EngineError> =>
  Effect.gen(function*() {
    const { backend } = a.rt
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
    const outcome = yield* LeaseKeeper.withLock(
      running.lease,
      Effect.gen(function*() {
        const o = yield* backend.suspend(a.handle, {
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
        if (o._tag === "Suspended") running.endedBy = { _tag: "Suspended", waitpointId: o.details.waitpointId }
        return o
      })
    )
    if (outcome._tag === "AlreadySatisfied") return yield* backend.observeSignals(a.handle)
    if (options.onSuspended !== undefined) yield* Effect.uninterruptible(options.onSuspended(outcome.details))
    return yield* Effect.interrupt
  })

/** `ctx.flow`: the execution's flow, resolved once when first asked for. */
const flowContext = (a: Attempt): FlowContext => {
  const { backend } = a.rt
  const { p } = a
  // the cache itself is made on first use
  let cached: Effect.Effect<Option.Option<FlowId>, EngineError> | undefined
  const flowId = Effect.suspend(() =>
    cached ?? Effect.flatMap(Effect.cached(backend.resolveExecutionFlowId(p.executionId)), (made) => (cached ??= made))
  )
  {
    const { p } = a
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
              direction: outgoing ?
                { _tag: "Outgoing", fromNode: p.executionId } :
                { _tag: "Incoming", toNode: p.executionId }
            }),
            (edges) => [...new Set(edges.map((e) => (outgoing ? e.downstreamExecutionId : e.upstreamExecutionId)))].sort()
          ))
    return {
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
  }
}

// ---------------------------------------------------------------------------
// Step 3: the handler, under the lease keeper
// ---------------------------------------------------------------------------

/**
 * Steps 2 to 4: builds the task context, runs the handler (made interruptible by `restore`)
 * while the keeper renews the lease, and settles how it stopped. The keeper interrupts the handler
 * when the lease is lost or the worker's drain ends.
 */
const runHandler = (
  a: Attempt,
  handler: Handler<unknown>,
  payload: Uint8Array,
  restore: Restore,
  fiber: Fiber.RuntimeFiber<void, never>,
  started: boolean
): Effect.Effect<void> => {
  const running = new Running(a.p.executionId, a.handle)
  const then = thenFor(a, running, fiber)
  const run = (resumeSignals: ReadonlyArray<M.ResumeSignal>, now: boolean) => {
    // The handler's requirements are those `run` was typed with: they are in this fiber's context.
    const execute = executeFor(a, running, handler, payload, resumeSignals)
    // A handler whose outcome is known as `execute` returns (its `run` gave `Effect.succeed`…),
    // in the fiber's first step: no interruption can have reached the fiber yet, and there is no
    // handler left to run, renew a lease for, or interrupt; it is settled at once (the keeper
    // still sends it to be released when the worker is stopping).
    const exit = now ? exitNow(execute) : undefined
    if (exit !== undefined) return a.rt.keeper.settledOn(running.lease, exit, then)
    return a.rt.keeper.guardThenOn(fiber, running.lease, a.claimedAt, restore(execute), then)
  }
  return a.handle.kind === "resumed" ?
    Effect.flatMap(restore(observeResumeSignals(a)), (signals) => run(signals, false)) :
    run(noSignals, started)
}

/** The handler called on its payload: its decoded input and task context given to `run`. */
const executeFor = (
  a: Attempt,
  running: Running,
  handler: Handler<unknown>,
  payload: Uint8Array,
  resumeSignals: ReadonlyArray<M.ResumeSignal>
): Effect.Effect<Uint8Array, HandlerFailure> =>
  handler.execute(payload, (input) => taskContext(a, running, resumeSignals, input)) as Effect.Effect<
    Uint8Array,
    HandlerFailure
  >

/** How the handler of `running` stopped (its exit), settled, in the attempt's fiber `fiber`. */
const thenFor = (a: Attempt, running: Running, fiber: Fiber.RuntimeFiber<void, never>) =>
(exit: Exit.Exit<Uint8Array, HandlerFailure>): Effect.Effect<void> => {
  const { lease } = running
  if (running.endedBy !== undefined) return settle(a, { _tag: "Ended", ended: running.endedBy })
  if (Exit.isSuccess(exit) || !Cause.isInterruptedOnly(exit.cause)) return settle(a, { _tag: "Handler", exit })
  if (lease.stop !== undefined) return settle(a, lease.stop)
  return settle(
    a,
    HashSet.has(Cause.interruptors(exit.cause), fiber.id()) ? { _tag: "Handler", exit } : { _tag: "Interrupted" }
  )
}

// ---------------------------------------------------------------------------
// Attempts started on the claim's stack
// ---------------------------------------------------------------------------

/** An attempt whose handler succeeded as it was called (see `startNow`): its output is to be written. */
export class Done {
  constructor(readonly a: Attempt, readonly output: Uint8Array) {}
}

/**
 * A fresh attempt whose input came with its claim, started on the stack of the claim that took it
 * before any fiber of its own: `Claimed` is reported and the handler called, as the first step
 * of its fiber (`runAttempt`) would (the claim loop starts it so when the attempt has no span:
 * the current tracer is Effect's built-in one). Three answers:
 * - `undefined`: nothing was done (a resumed handle, a kind without a handler): the attempt
 *   takes `runAttempt`'s path from its start;
 * - a `Done`: the handler's success was known as it returned (its `run` gave `Effect.succeed`…);
 *   nothing is left to run but the write of its output, which the claim loop makes together with
 *   the other such attempts of the claim (`Runtime.completeAll`), then reports (`settleWritten`);
 *   the attempt is never registered with the lease keeper, as an attempt settled in its fiber's
 *   first step is not (`LeaseKeeper.settledNow`: at shutdown it is released instead);
 * - an effect: the rest of the attempt (the report of `Claimed` still running, the handler, or a
 *   failure to settle), to run in a fiber of its own forked as `runAttempt`'s is.
 */
export const startNow = (
  rt: Runtime,
  handle: M.Handle,
  p: M.HandlePayload,
  claimedAt: number,
  input: M.ExecutionInput,
  restore: Restore,
  clock: Clock.Clock
): Done | Effect.Effect<void> | undefined => {
  if (handle.kind === "resumed") return undefined
  const kind = input.executionKind
  const handler = rt.settings.handlers.get(kind)
  if (handler === undefined) return undefined
  const a: Attempt = {
    rt,
    handle,
    p,
    claimedAt,
    clock,
    base: { executionId: p.executionId, kind, lane: p.laneId, attempt: p.attemptIndex + 1, workerInstanceId: rt.settings.workerInstanceId }
  }
  const { onEvent } = rt.settings
  if (onEvent !== undefined) {
    const claimed = onEvent({
      _tag: "Claimed",
      executionId: a.base.executionId,
      kind,
      lane: a.base.lane,
      attempt: a.base.attempt,
      workerInstanceId: a.base.workerInstanceId,
      handleKind: handle.kind
    })
    // a report still to run (or failed) is run first, in the attempt's fiber, as `runWithInput` does
    const done = exitNow(claimed)
    if (done === undefined || Exit.isFailure(done)) {
      return Effect.flatMap(
        claimed,
        () => Effect.withFiberRuntime<void>((fiber) => runHandler(a, handler, input.payload, restore, fiber, false))
      )
    }
  }
  const running = new Running(p.executionId, handle)
  const execute = executeFor(a, running, handler, input.payload, noSignals)
  const exit = exitNow(execute)
  if (exit === undefined) {
    return Effect.withFiberRuntime<void>((fiber) =>
      rt.keeper.guardThenOn(fiber, running.lease, claimedAt, restore(execute), thenFor(a, running, fiber))
    )
  }
  const settled = rt.keeper.settledNow(running.lease, exit)
  if (Exit.isSuccess(settled)) return new Done(a, settled.value)
  return Effect.withFiberRuntime<void>((fiber) => thenFor(a, running, fiber)(settled))
}

/**
 * A `Done` attempt once its output's write ended (`exit`, as `complete` would have ended): counted,
 * timed and reported `Completed`, or, when the write failed, retried and reported as an
 * attempt's own write is (`writeThen`). What is left to run (a report that is not done as it is
 * made, a retry) runs in a fiber of its own with the attempt's log annotations, as it would have
 * run in the attempt's fiber (see the claim loop's `writeDone`).
 */
export const settleWritten = (d: Done, exit: Exit.Exit<void, EngineError>): Effect.Effect<void> => {
  const { a } = d
  if (Exit.isSuccess(exit)) return completed(a)
  const first = Cause.failureOption(exit.cause)
  if (Option.isNone(first)) return Effect.failCause(exit.cause as Cause.Cause<never>)
  return writeFailed(a, "complete", a.rt.complete(a.handle, d.output), () => completed(a), undefined, first.value)
}

// ---------------------------------------------------------------------------
// Step 4: settle the outcome
// ---------------------------------------------------------------------------

/** Step 4: the write that ends the attempt, or the report of how it ended. */
const settle = (a: Attempt, stop: Stop): Effect.Effect<void> => {
  switch (stop._tag) {
    case "Ended":
      return reportEnded(a, stop.ended)
    case "Interrupted":
      // nothing is written, as in a crash
      return Effect.logDebug("attempt interrupted with the worker")
    case "LeaseLost":
      return Effect.zipRight(
        Effect.logWarning(`lease lost, attempt stopped: ${stop.reason}`),
        emit(a, { ...a.base, _tag: "LeaseLost", reason: stop.reason })
      )
    case "Shutdown":
      return release(a)
    case "Handler":
      return settleExit(a, stop.exit)
  }
}

/** The handler ended the attempt itself (suspend / delay / waitChildren): the write is done. */
const reportEnded = (a: Attempt, e: Ended): Effect.Effect<void> =>
  Effect.zipRight(
    Effect.logDebug(`attempt ended: ${e._tag}`),
    emit(
      a,
      e._tag === "Suspended" ?
        { ...a.base, _tag: "Suspended", waitpointId: e.waitpointId } :
        e._tag === "Delayed" ?
        { ...a.base, _tag: "Delayed", until: e.until } :
        { ...a.base, _tag: "WaitingChildren" }
    )
  )

/**
 * The execution is handed back (`delay` to now + `afterMs`: the same attempt resumes, no retry is
 * spent), to be resumed elsewhere; reported as `Released` with `reason` once written.
 */
const handBack = (a: Attempt, reason: string, afterMs: number, log: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const released = yield* write(a, "release", a.rt.backend.delay(a.handle, { delayUntil: now + afterMs }))
    if (Option.isSome(released)) {
      yield* log
      yield* emit(a, { ...a.base, _tag: "Released", reason })
    }
  })

/** Stopped at shutdown: handed back. */
const release = (a: Attempt): Effect.Effect<void> =>
  handBack(a, "worker shutdown", 0, Effect.logInfo("released at shutdown"))

/** The handler returned: its output completes the execution, its failure fails it. */
const settleExit = (a: Attempt, exit: Exit.Exit<Uint8Array, HandlerFailure>): Effect.Effect<void> =>
  Exit.isSuccess(exit) ?
    writeThen(a, "complete", a.rt.complete(a.handle, exit.value), () => completed(a), undefined) :
    settleFailure(a, exit.cause)

/** The completion was written: counted, timed and reported. */
const completed = (a: Attempt): Effect.Effect<void> => {
  const durationMs = elapsedMs(a)
  const labels = a.rt.outcomeLabels(a.base.kind, "Completed")
  tasksTotal.unsafeUpdate(1, labels)
  taskDurationMs.unsafeUpdate(durationMs, labels)
  const { onEvent } = a.rt.settings
  if (onEvent === undefined) return Effect.void
  const { base } = a
  return onEvent({
    _tag: "Completed",
    executionId: base.executionId,
    kind: base.kind,
    lane: base.lane,
    attempt: base.attempt,
    workerInstanceId: base.workerInstanceId,
    durationMs
  })
}

/** The handler failed: its typed failure or defect fails the execution, unless its lease was lost. */
const settleFailure = (a: Attempt, cause: Cause.Cause<HandlerFailure>): Effect.Effect<void> =>
  Effect.gen(function*() {
    const failure = Cause.failureOption(cause)
    if (Option.isSome(failure)) {
      const f = failure.value
      if (f._tag === "LeaseLost") {
        const reason = leaseLostReason(f.error)
        yield* Effect.logWarning(`lease lost during the attempt: ${reason}`)
        return yield* emit(a, { ...a.base, _tag: "LeaseLost", reason })
      }
      return yield* failWith(a, f.classification, f.message)
    }
    const defect = Cause.dieOption(cause)
    if (Option.isSome(defect)) {
      yield* Effect.logError("handler died", cause)
      return yield* failWith(a, "InfraCrash", `handler defect: ${describeFailure(defect.value)}`)
    }
    return yield* failWith(a, "Transient", "the handler was interrupted")
  })

/** Fails the execution (retried per its retry policy unless `Permanent`). */
const failWith = (a: Attempt, classification: M.FailureClass, message: string): Effect.Effect<void> =>
  Effect.gen(function*() {
    const outcome = yield* write(a, "fail", a.rt.backend.fail(a.handle, { reason: { message }, classification }))
    if (Option.isSome(outcome)) {
      yield* Effect.logInfo(`failed (${classification}): ${message}`)
      yield* emit(a, {
        ...a.base,
        _tag: "Failed",
        classification,
        reason: message,
        outcome: outcome.value,
        durationMs: elapsedMs(a)
      })
    }
  })

/**
 * A write under the lease: retried on retryable errors (`ExecutionNotActive` is a retryable
 * contention, but a lost lease is final); a lost lease is reported, never fatal. The retry
 * schedule is only started once the first try failed.
 */
const write = <A>(
  a: Attempt,
  operation: string,
  effect: Effect.Effect<A, EngineError>
): Effect.Effect<Option.Option<A>> => writeThen(a, operation, effect, (value) => Effect.succeed(Option.some(value)), Option.none())

/** `write`, then `then` with what it wrote, or `lost` when it wrote nothing. */
const writeThen = <A, B>(
  a: Attempt,
  operation: string,
  effect: Effect.Effect<A, EngineError>,
  then: (value: A) => Effect.Effect<B>,
  lost: B
): Effect.Effect<B> =>
  Effect.matchEffect(effect, { onSuccess: then, onFailure: (first) => writeFailed(a, operation, effect, then, lost, first) })

/** `writeThen` once the first try failed: retried while retryable, else reported. */
const writeFailed = <A, B>(
  a: Attempt,
  operation: string,
  effect: Effect.Effect<A, EngineError>,
  then: (value: A) => Effect.Effect<B>,
  lost: B,
  first: EngineError
): Effect.Effect<B> => {
  const report = (error: EngineError) =>
    Effect.as(
      isLeaseLost(error) ?
        emit(a, { ...a.base, _tag: "LeaseLost", reason: `${operation} fenced: ${leaseLostReason(error)}` }) :
        Effect.zipRight(
          Effect.logError(`${operation} failed`, error),
          emit(a, { ...a.base, _tag: "WriteFailed", operation, error })
        ),
      lost
    )
  const retryable = (e: EngineError) => isRetryable(e) && !isLeaseLost(e)
  if (!retryable(first)) return report(first)
  // the schedule sees the first failure as it would have seen it under Effect.retry
  let tried = false
  const again = Effect.suspend(() => (tried ? effect : ((tried = true), Effect.fail(first))))
  return Effect.matchEffect(Effect.retry(again, { schedule: a.rt.settings.writeRetry, while: retryable }), {
    onSuccess: then,
    onFailure: report
  })
}

const elapsedMs = (a: Attempt): number => a.clock.unsafeCurrentTimeMillis() - a.claimedAt

/** Reports `event` to `onEvent`; every event but `Claimed` ends the attempt and is counted and timed. */
const emit = (a: Attempt, event: WorkerEvent): Effect.Effect<void> => Effect.suspend(() => emitNow(a, event))

/** `emit`, its metrics updated now. */
const emitNow = (a: Attempt, event: WorkerEvent): Effect.Effect<void> => {
  if (event._tag !== "Claimed") {
    const labels = a.rt.outcomeLabels(a.base.kind, event._tag)
    tasksTotal.unsafeUpdate(1, labels)
    taskDurationMs.unsafeUpdate(elapsedMs(a), labels)
  }
  const { onEvent } = a.rt.settings
  return onEvent === undefined ? Effect.void : onEvent(event)
}
