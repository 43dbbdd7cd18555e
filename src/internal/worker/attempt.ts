/**
 * One attempt, from its claim to the write that ends it, in four steps: read the input, build the
 * task context, run the handler under the lease keeper, settle the outcome (complete, fail, or
 * report how the attempt stopped: suspended, delayed, lease lost, released at shutdown).
 */
import { Cause, Clock, Duration, Effect, Either, Exit, HashSet, Option, Ref } from "effect"
import { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, isLeaseLost, isRetryable } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { ExecutionId, WaitpointId } from "../../Ids.js"
import type * as M from "../../Model.js"
import * as Producer from "../../Producer.js"
import type { FlowContext, Handler, HandlerFailure, SuspendOptions, TaskContext, WorkerEvent } from "../../Worker.js"
import { decodeHandle } from "../handleCodec.js"
import { withSpanWhenTraced } from "../observability.js"
import { parentSpanOf } from "../traceContext.js"
import type * as LeaseKeeper from "./leaseKeeper.js"
import { taskDurationMs, tasksTotal } from "./metrics.js"
import { describeFailure, leaseLostReason, type Runtime } from "./runtime.js"

/** What every event of an attempt says. */
type EventBase = Pick<WorkerEvent, "executionId" | "kind" | "lane" | "attempt" | "workerInstanceId">

/** What the steps of one attempt share. */
interface Attempt {
  readonly rt: Runtime
  readonly handle: M.Handle
  readonly p: M.HandlePayload
  readonly claimedAt: number
  readonly base: EventBase
}

/** How the attempt ended by the handler's own hand (suspend / delay / waitChildren). */
type Ended =
  | { readonly _tag: "Suspended"; readonly waitpointId: WaitpointId }
  | { readonly _tag: "Delayed"; readonly until: number }
  | { readonly _tag: "WaitingChildren" }

/** The attempt while its handler runs: what its task context, the lease keeper and the settlement share. */
interface Running {
  /** Set by the write that ended the attempt (`Ended`). */
  readonly ended: Ref.Ref<Option.Option<Ended>>
  /** The lease the keeper guards; its lock serialises renewals with the writes that end the attempt (never racing). */
  readonly lease: LeaseKeeper.Lease
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

const utf8 = new TextEncoder()

/**
 * One attempt, from its claim to the write that ends it. `prefetched` is its input when the worker
 * read the inputs of the claimed batch at once (`Some(None)`: the execution is gone); `None`: read it here.
 */
export const runAttempt = (
  rt: Runtime,
  handle: M.Handle,
  claimedAt: number,
  prefetched: Option.Option<Option.Option<M.ExecutionInput>>
): Effect.Effect<void> => {
  const decoded = decodeHandle(handle.backend, handle)
  if (Either.isLeft(decoded)) {
    return Effect.logError(`claimed handle does not decode: ${JSON.stringify(decoded.left)}`)
  }
  const p = decoded.right
  return Effect.flatMap(readInput(rt, p, prefetched), (input) => runWithInput(rt, handle, p, claimedAt, input)).pipe(
    Effect.annotateLogs({
      executionId: p.executionId,
      attempt: p.attemptIndex + 1,
      lane: p.laneId,
      workerInstanceId: rt.settings.workerInstanceId
    })
  )
}

/** The attempt once its input was read: steps 2 to 4, in the span `Worker.attempt`. */
const runWithInput = (
  rt: Runtime,
  handle: M.Handle,
  p: M.HandlePayload,
  claimedAt: number,
  input: Either.Either<Option.Option<M.ExecutionInput>, EngineError>
): Effect.Effect<void> =>
  // Uninterruptible but for the handler: once the handler has stopped, the write that ends the
  // attempt is not cut short.
  Effect.uninterruptibleMask((restore) =>
    Effect.gen(function*() {
      const a: Attempt = {
        rt,
        handle,
        p,
        claimedAt,
        base: {
          executionId: p.executionId,
          kind: Either.isRight(input) && Option.isSome(input.right) ? input.right.value.executionKind : "?",
          lane: p.laneId,
          attempt: p.attemptIndex + 1,
          workerInstanceId: rt.settings.workerInstanceId
        }
      }
      yield* emit(a, { ...a.base, _tag: "Claimed", handleKind: handle.kind })
      const start = yield* handlerFor(a, input)
      if (Option.isNone(start)) return
      const { handler, payload } = start.value
      const { makeContext, running } = yield* buildContext(a, restore)
      // The handler's requirements are those `run` was typed with: they are in this fiber's context.
      const execute = handler.execute(payload, makeContext) as Effect.Effect<Uint8Array, HandlerFailure>
      const stop = yield* runHandler(a, running, restore(execute))
      return yield* settle(a, stop)
    })
  ).pipe(
    withSpanWhenTraced("Worker.attempt", () => ({
      execution_id: p.executionId,
      attempt_index: p.attemptIndex,
      lane: p.laneId,
      handle_kind: handle.kind,
      worker_instance_id: rt.settings.workerInstanceId
    }), () => parentSpanOf(Either.isRight(input) ? Option.getOrUndefined(input.right)?.traceParent : undefined))
  )

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
  p: M.HandlePayload,
  prefetched: Option.Option<Option.Option<M.ExecutionInput>>
): Effect.Effect<Either.Either<Option.Option<M.ExecutionInput>, EngineError>> =>
  Option.isSome(prefetched) ?
    Effect.succeed(Either.right(prefetched.value)) :
    rt.backend.getExecutionInput(p.executionId).pipe(
      Effect.retry({ schedule: rt.settings.writeRetry, while: isRetryable }),
      Effect.either
    )

/**
 * How long an execution of a kind without a handler is held back once handed back: the claim that
 * returned it did not honour the worker's kinds, and would hand it to this worker again at once.
 */
const UNHANDLED_KIND_DELAY_MS = 1_000

/**
 * The handler to run and its payload; `None` when the attempt ends here: an input that cannot be
 * read fails it (`Transient`), an execution without an input record is left alone, and one of a
 * kind without a handler is handed back, for a worker that has one. That is a safety net only: the
 * worker claims its handlers' kinds alone (docs/worker.md#claiming-and-concurrency).
 */
const handlerFor = (
  a: Attempt,
  input: Either.Either<Option.Option<M.ExecutionInput>, EngineError>
): Effect.Effect<Option.Option<{ readonly handler: Handler<unknown>; readonly payload: Uint8Array }>> =>
  Effect.gen(function*() {
    const { settings } = a.rt
    if (Either.isLeft(input)) {
      yield* failWith(a, "Transient", `cannot read the execution's input: ${input.left.message}`)
      return Option.none()
    }
    if (Option.isNone(input.right)) {
      yield* Effect.logWarning("claimed execution has no input record (deleted?); nothing to run")
      return Option.none()
    }
    const handler = settings.handlers.get(a.base.kind)
    if (handler === undefined) {
      const reason = `no handler for kind "${a.base.kind}" on worker ${settings.workerId} (handles: ${
        settings.kinds.join(", ")
      })`
      yield* handBack(a, reason, UNHANDLED_KIND_DELAY_MS, Effect.logWarning(`handed back: ${reason}`))
      return Option.none()
    }
    return Option.some({ handler, payload: input.right.value.payload })
  })

// ---------------------------------------------------------------------------
// Step 2: the task context
// ---------------------------------------------------------------------------

/**
 * Step 2: the attempt's lease and its task context (`makeContext` gets the handler's decoded
 * input). `restore` lets the read of the resume signals be interrupted.
 */
const buildContext = (
  a: Attempt,
  restore: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
): Effect.Effect<{ readonly makeContext: <I>(input: I) => TaskContext<I>; readonly running: Running }> =>
  Effect.gen(function*() {
    const resumeSignals = a.handle.kind === "resumed" ? yield* restore(observeResumeSignals(a)) : []
    const ended = yield* Ref.make<Option.Option<Ended>>(Option.none())
    const running: Running = {
      ended,
      lease: {
        executionId: a.p.executionId,
        handle: a.handle,
        lock: yield* Effect.makeSemaphore(1),
        ended: Effect.map(Ref.get(ended), Option.isSome),
        stop: undefined
      }
    }
    const flow = yield* flowContext(a)
    return { makeContext: (input) => taskContext(a, running, resumeSignals, flow, input), running }
  })

/** The signals that resumed the attempt; none when they cannot be read. */
const observeResumeSignals = (a: Attempt): Effect.Effect<ReadonlyArray<M.ResumeSignal>> =>
  a.rt.backend.observeSignals(a.handle).pipe(
    Effect.tapError((e) => Effect.logWarning("observeSignals failed", e)),
    Effect.orElseSucceed((): ReadonlyArray<M.ResumeSignal> => [])
  )

/** Runs `op`, a write that ends the attempt, under the lease lock, then stops the handler. */
const endAttempt = (running: Running, op: Effect.Effect<Ended, EngineError>): Effect.Effect<never, EngineError> =>
  Effect.zipRight(
    running.lease.lock.withPermits(1)(Effect.flatMap(op, (e) => Ref.set(running.ended, Option.some(e)))),
    Effect.interrupt
  )

/** The `TaskContext` of the attempt for the handler's decoded `input`. */
const taskContext = <I>(
  a: Attempt,
  running: Running,
  resumeSignals: ReadonlyArray<M.ResumeSignal>,
  flow: FlowContext,
  input: I
): TaskContext<I> => {
  const { backend, settings } = a.rt
  const { handle, p } = a
  return {
    executionId: p.executionId,
    kind: a.base.kind,
    lane: p.laneId,
    input,
    attempt: a.base.attempt,
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
    suspend: (options = {}) => suspend(a, running, options),
    delay: (duration) =>
      endAttempt(
        running,
        Effect.gen(function*() {
          const until = typeof duration === "object" && duration !== null && "until" in duration ?
            duration.until :
            (yield* Clock.currentTimeMillis) + Duration.toMillis(Duration.decode(duration))
          yield* backend.delay(handle, { delayUntil: Math.floor(until) })
          return { _tag: "Delayed", until } as const
        })
      ),
    waitChildren: endAttempt(running, Effect.as(backend.waitChildren(handle), { _tag: "WaitingChildren" } as const)),
    reportUsage: (budgetId, dimensions) => backend.reportUsage(handle, { budgetId, dimensions }),
    flow
  }
}

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
    const outcome = yield* running.lease.lock.withPermits(1)(
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
        if (o._tag === "Suspended") {
          yield* Ref.set(running.ended, Option.some({ _tag: "Suspended", waitpointId: o.details.waitpointId }))
        }
        return o
      })
    )
    if (outcome._tag === "AlreadySatisfied") return yield* backend.observeSignals(a.handle)
    if (options.onSuspended !== undefined) yield* Effect.uninterruptible(options.onSuspended(outcome.details))
    return yield* Effect.interrupt
  })

/** `ctx.flow`: the execution's flow, resolved once when first asked for. */
const flowContext = (a: Attempt): Effect.Effect<FlowContext> =>
  Effect.map(Effect.cached(a.rt.backend.resolveExecutionFlowId(a.p.executionId)), (flowId) => {
    const { backend } = a.rt
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
  })

// ---------------------------------------------------------------------------
// Step 3: the handler, under the lease keeper
// ---------------------------------------------------------------------------

/**
 * Runs the handler (made interruptible by the caller) while the keeper renews the lease; the keeper
 * interrupts the handler when the lease is lost or the worker's drain ends. Returns how the attempt
 * stopped.
 */
const runHandler = (
  a: Attempt,
  running: Running,
  execute: Effect.Effect<Uint8Array, HandlerFailure>
): Effect.Effect<Stop> =>
  Effect.gen(function*() {
    const { lease } = running
    const exit = yield* a.rt.keeper.guard(lease, a.claimedAt, execute)
    const interrupted = Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)
    const stop: Stop = interrupted && lease.stop !== undefined ? lease.stop : { _tag: "Handler", exit }
    const endedBy = yield* Ref.get(running.ended)
    if (Option.isSome(endedBy)) return { _tag: "Ended", ended: endedBy.value }
    if (interrupted && lease.stop === undefined && !HashSet.has(Cause.interruptors(exit.cause), yield* Effect.fiberId)) {
      return { _tag: "Interrupted" }
    }
    return stop
  })

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
  Effect.gen(function*() {
    if (Exit.isSuccess(exit)) {
      const done = yield* write(a, "complete", a.rt.complete(a.handle, exit.value))
      if (Option.isSome(done)) yield* emit(a, { ...a.base, _tag: "Completed", durationMs: yield* elapsed(a) })
      return
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) {
      const f = failure.value
      if (f._tag === "LeaseLost") {
        const reason = leaseLostReason(f.error)
        yield* Effect.logWarning(`lease lost during the attempt: ${reason}`)
        return yield* emit(a, { ...a.base, _tag: "LeaseLost", reason })
      }
      return yield* failWith(a, f.classification, f.message)
    }
    const defect = Cause.dieOption(exit.cause)
    if (Option.isSome(defect)) {
      yield* Effect.logError("handler died", exit.cause)
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
        durationMs: yield* elapsed(a)
      })
    }
  })

/**
 * A write under the lease: retried on retryable errors (`ExecutionNotActive` is a retryable
 * contention, but a lost lease is final); a lost lease is reported, never fatal.
 */
const write = <A>(
  a: Attempt,
  operation: string,
  effect: Effect.Effect<A, EngineError>
): Effect.Effect<Option.Option<A>> =>
  effect.pipe(
    Effect.retry({ schedule: a.rt.settings.writeRetry, while: (e) => isRetryable(e) && !isLeaseLost(e) }),
    Effect.map(Option.some),
    Effect.catchAll((error) =>
      Effect.as(
        isLeaseLost(error) ?
          emit(a, { ...a.base, _tag: "LeaseLost", reason: `${operation} fenced: ${leaseLostReason(error)}` }) :
          Effect.zipRight(
            Effect.logError(`${operation} failed`, error),
            emit(a, { ...a.base, _tag: "WriteFailed", operation, error })
          ),
        Option.none<A>()
      )
    )
  )

const elapsed = (a: Attempt): Effect.Effect<number> => Effect.map(Clock.currentTimeMillis, (now) => now - a.claimedAt)

/** Reports `event` to `onEvent`; every event but `Claimed` ends the attempt and is counted and timed. */
const emit = (a: Attempt, event: WorkerEvent): Effect.Effect<void> =>
  event._tag === "Claimed" ?
    a.rt.settings.onEvent(event) :
    Effect.flatMap(elapsed(a), (ms) => {
      const labels = a.rt.labels("kind", a.base.kind, "outcome", event._tag)
      tasksTotal.unsafeUpdate(1, labels)
      taskDurationMs.unsafeUpdate(ms, labels)
      return a.rt.settings.onEvent(event)
    })
