/**
 * An execution's life on Postgres: its creation (one or a batch), and the lease holder's writes:
 * renew, progress, complete (one or a batch), fail, cancel, delay, wait for children. A terminal
 * write replayed after a lost reply is recognised and answered as the first call was.
 */
import { Clock, Context, Effect, Either, type Fiber, Option, Predicate, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, rootCause } from "../../EngineError.js"
import type { CoreArea, HandleRef } from "../../internal/boundary.js"
import * as M from "../../Model.js"
import type { CreateExecutionCore } from "../../internal/boundary.js"
import { builtInTracer } from "../../internal/traceContext.js"
import { Limits } from "../../Limits.js"
import { type Arg, bigint, bytea, decode, int, jsonb, text, textArray } from "./client.js"
import { claimerParams, readClaimed } from "./claim.js"
import { SqlClient } from "./driver.js"
import { type CoreContext, createItem, type Fx, handleArgs, utf8Fatal } from "./context.js"

const CreateExecutionResults = Schema.Array(M.CreateExecutionResult)

const failureCategory = (reason: M.FailureReason, cls: M.FailureClass): string => {
  if (reason.detail !== undefined && reason.detail.length > 0) {
    try {
      return utf8Fatal.decode(reason.detail)
    } catch {
      // not UTF-8: fall back to the class
    }
  }
  switch (cls) {
    case "Transient":
      return "transient"
    case "Permanent":
      return "permanent"
    case "InfraCrash":
      return "infra_crash"
    case "Timeout":
      return "timeout"
    case "Cancelled":
      return "cancelled"
  }
}

const isNotActive = (e: EngineError) => {
  const root = rootCause(e)
  return root._tag === "Contention" && root.kind === "ExecutionNotActive" ? root.notActive : undefined
}

/** `complete` / `cancel` replayed after a lost reply: the first call ended the attempt (docs/design/executions.md#replaying-a-terminal-write). */
export const replayedAs = (e: EngineError, h: HandleRef, outcome: string): boolean => {
  const d = isNotActive(e)
  return d !== undefined && d.leaseEpoch === String(h.payload.leaseEpoch) && d.terminalOutcome === outcome &&
    d.attemptId === h.payload.attemptId
}

/** Whether `fiber` runs inside the caller's transaction (as `Caller.inTransaction`, read off the fiber). */
const inTransaction = (fiber: Fiber.RuntimeFiber<unknown, unknown>): boolean =>
  Option.isSome(Context.getOption(fiber.currentContext, SqlClient.TransactionConnection))

export const makeLifecycle = (
  ctx: CoreContext
): CoreArea<"lifecycle"> => {
  const { call, caller, callDecode, callVoid, options, unsafeWake, wake } = ctx
  const ignore = (): void => undefined

  /**
   * A create of work claimable at once nudges this process's idle workers of its lane as soon as
   * it returned (committed), whichever of its reply and its NOTIFY arrives first: the claim starts
   * from the reply without waiting for the notification (docs/worker.md, "Wake-ups, timers and
   * cancellation").
   */
  const nudged = (a: { readonly laneId: string; readonly delayUntil: number | undefined }) =>
  (r: M.CreateExecutionResult) =>
    Effect.sync(() => {
      if (r._tag === "Created" && a.delayUntil === undefined) options.hub?.nudge(a.laneId)
    })

  /** A terminal write replayed after a lost reply (docs/design/executions.md#replaying-a-terminal-write). */
  const reconcile = <A>(h: HandleRef, effect: Fx<A>, ok: (d: NonNullable<ReturnType<typeof isNotActive>>) => A | undefined) =>
    Effect.catchAll(effect, (e): Fx<A> => {
      const d = isNotActive(e)
      if (d !== undefined && d.leaseEpoch === String(h.payload.leaseEpoch)) {
        const value = ok(d)
        if (value !== undefined) return Effect.succeed(value)
      }
      return Effect.fail(e)
    })

  /**
   * A create of work claimable at once, while an idle worker of this process waits on its lane:
   * ff_create_claim commits the create, then claims for that worker, in one statement (docs/
   * worker.md, "Wake-ups, timers and cancellation"). The worker's slots are taken and the call sent
   * in one uninterruptible step, on the caller's stack (`sendNow`), and what the claim took is
   * handed over in the reply's callback, whatever becomes of the caller meanwhile: an interrupted
   * caller returns at once and the worker still gets its work. Where the layer cannot send at once
   * (no pool of its own, a tracer recording spans) the call is an effect, whose hand-over is set up
   * in the same uninterruptible step (a caller interrupted during it leaves what the claim took to
   * its leases' expiry, as a lost claim reply). A create made inside the caller's own transaction is
   * a plain one, part of that transaction (the procedure, which commits, cannot run there): the
   * worker is woken once it commits.
   */
  const createClaiming = (a: CreateExecutionCore, args: ReadonlyArray<Arg>): Fx<M.CreateExecutionResult> | undefined => {
    const hub = options.hub
    if (hub === undefined || a.delayUntil !== undefined) return undefined
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<M.CreateExecutionResult, EngineError>((fiber) => {
        if (inTransaction(fiber)) {
          return restore(plainCreate(a, args))
        }
        const handoff = hub.handoff(a.laneId)
        if (handoff === undefined) return restore(plainCreate(a, args))
        const claiming = [
          ...args,
          // (the lane is the create's)
          ...claimerParams(handoff.args).slice(1),
          int(handoff.max),
          bigint(Limits.batchBytes)
        ]
        let sent: Fx<M.CreateExecutionResult> | undefined
        try {
          sent = createClaimingNow(fiber, a, args, handoff, claiming)
        } catch (defect) {
          handoff.deliver([], true)
          return Effect.die(defect)
        }
        if (sent !== undefined) return restore(sent)
        return restore(caller.callProcedure("create_execution", "create_claim", claiming)).pipe(
          Effect.flatMap((v) => {
            // the worker has its work first, then the producer its result
            give(handoff, v)
            return created(v)
          }),
          // (a claim that did not run or was interrupted: the worker claims itself)
          Effect.ensuring(Effect.sync(() => handoff.deliver([], true)))
        )
      })
    )
  }

  /**
   * What ff_create_claim's reply `v` claimed, handed to the worker (`deliver` counts its first call).
   * A claim that did not run, found only busy candidates or whose reply does not read leaves the
   * worker claiming itself (the create committed all the same; what such a claim took waits for
   * its leases' expiry, as after a lost claim reply).
   */
  const give = (handoff: EngineBackend.Handoff, v: unknown): void => {
    const claim = Predicate.isObject(v) && "claim" in v ? v.claim : undefined
    const read = claim === null || claim === undefined ? undefined : readClaimed("create_execution", claim)
    if (read === undefined || Either.isLeft(read)) return handoff.deliver([], true)
    handoff.deliver(read.right.claimed, read.right.claimed.length === 0 && read.right.busy > 0)
  }
  const created = (v: unknown): Fx<M.CreateExecutionResult> =>
    decode("create_execution", M.CreateExecutionResult)(Predicate.isObject(v) && "created" in v ? v.created : undefined)

  /**
   * `ff_<fn>` sent at once on a connection of the layer's own pool (`Caller.send`); `onReply` sees
   * the reply in the driver's callback, and the effect returned resumes with it, `read`. A call
   * refused by a serialization failure or deadlock (which a call as an effect tries again) is made
   * again as `onConflict`. `undefined` when the layer cannot send at once (no pool of its own, or closing)
   * or a tracer records spans (the call's span is made where it runs as an effect).
   */
  const sendNow = <A>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    fn: string,
    args: ReadonlyArray<Arg>,
    procedure: boolean,
    onReply: (reply: Either.Either<unknown, EngineError>) => void,
    read: (value: unknown) => Fx<A>,
    onConflict: () => Fx<A>
  ): Fx<A> | undefined => {
    if (!caller.canSend || fiber.currentTracer !== builtInTracer) return undefined
    const now = options.clock === "effect" ?
      Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis() :
      null
    let outcome: Fx<A> | undefined
    let resume: ((outcome: Fx<A>) => void) | undefined
    const sent = caller.send("create_execution", fn, args, now, procedure, (reply, conflict) => {
      try {
        onReply(reply)
      } finally {
        outcome = Either.isRight(reply) ? read(reply.right) : conflict ? onConflict() : Effect.fail(reply.left)
        const waiting = resume
        resume = undefined
        waiting?.(outcome)
      }
    })
    if (!sent) return undefined
    return Effect.async<A, EngineError>((done) => {
      if (outcome !== undefined) return done(outcome)
      resume = done
      return Effect.sync(() => void (resume = undefined))
    })
  }

  /**
   * ff_create_claim sent at once (`sendNow`), its claim handed over in the reply's callback; the
   * create's result read once the reply is in. A conflict makes the create again as a plain one,
   * the worker claiming itself.
   */
  const createClaimingNow = (
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    a: CreateExecutionCore,
    args: ReadonlyArray<Arg>,
    handoff: EngineBackend.Handoff,
    claiming: ReadonlyArray<Arg>
  ): Fx<M.CreateExecutionResult> | undefined => {
    return sendNow(fiber, "create_claim", claiming, true, (reply) => {
      try {
        if (Either.isRight(reply)) give(handoff, reply.right)
      } finally {
        handoff.deliver([], true)
      }
    }, created, () => plainCreate(a, args))
  }

  /** ff_create_execution: sent at once where it can be (`sendNow`, outside the caller's transaction), else an effect. */
  const plainCreate = (a: CreateExecutionCore, args: ReadonlyArray<Arg>): Fx<M.CreateExecutionResult> =>
    Effect.withFiberRuntime<M.CreateExecutionResult, EngineError>((fiber) => {
      const read = decode("create_execution", M.CreateExecutionResult)
      const asEffect = () => Effect.flatMap(call("create_execution", "create_execution", args), read)
      const sent = inTransaction(fiber) ?
        undefined :
        sendNow(fiber, "create_execution", args, false, ignore, read, asEffect)
      return sent ?? asEffect()
    }).pipe(Effect.tap(nudged(a)))

  return {
    createExecution: (a) => {
      const x = createItem(a)
      const args = [
        text(x.executionId),
        int(x.partition),
        text(x.namespace),
        text(x.laneId),
        text(x.executionKind),
        bytea(a.inputPayload),
        text(x.payloadEncoding),
        int(x.priority),
        text(x.creatorIdentity),
        text(x.idempotencyKey),
        jsonb(x.tags),
        jsonb(x.policy),
        textArray(x.requiredCapabilities),
        bigint(x.delayUntil),
        bigint(x.executionDeadlineAt),
        bigint(x.attemptTimeoutMs),
        int(x.maxReclaimCount),
        int(x.maxReplayCount),
        bigint(x.dedupTtlMs),
        text(x.traceContext)
      ]
      return createClaiming(a, args) ?? plainCreate(a, args)
    },

    createExecutions: (list) =>
      callDecode(
        "create_executions",
        "create_executions",
        [jsonb(list.map((a) => ({ ...createItem(a), payload: Buffer.from(a.inputPayload).toString("base64") })))],
        CreateExecutionResults
      ),

    renew: (h) =>
      callDecode("renew", "renew", [...handleArgs(h), bigint(h.payload.leaseTtlMs)], M.LeaseRenewal),

    progress: (h, percent, message) =>
      callVoid("progress", "progress", [...handleArgs(h), int(percent), text(message)]),

    complete: (h, payload) =>
      Effect.catchAll(
        callVoid("complete", "complete", [...handleArgs(h), bytea(payload)]),
        (e) => (replayedAs(e, h, "success") ? Effect.void : Effect.fail(e))
      ).pipe(Effect.tap(() => wake(h))),

    completeMany: (items) =>
      Effect.flatMap(
        caller.callSet("complete_many", "complete_set", items.map(({ h, payload }) => [...handleArgs(h), bytea(payload)])),
        (replies) =>
          Effect.sync(() =>
            replies.map((reply, i): Either.Either<void, EngineError> => {
              const h = items[i]!.h
              if (Either.isRight(reply) || replayedAs(reply.left, h, "success")) {
                unsafeWake(h)
                return Either.void
              }
              return Either.left(reply.left)
            })
          )
      ),

    fail: (h, reason, classification) =>
      reconcile(
        h,
        callDecode("fail", "fail", [
          ...handleArgs(h),
          text(reason.message),
          text(failureCategory(reason, classification)),
          text(classification)
        ], M.FailOutcome),
        (d): M.FailOutcome | undefined =>
          d.lifecyclePhase === "terminal" && d.terminalOutcome === "failed" && d.attemptId === h.payload.attemptId ?
            { _tag: "TerminalFailed" } :
            d.lifecyclePhase === "runnable" ?
            { _tag: "RetryScheduled", delayUntil: 0 } :
            undefined
      ).pipe(Effect.tap(() => wake(h))),

    cancel: (h, reason) =>
      Effect.catchAll(
        callVoid("cancel", "cancel", [...handleArgs(h), text(reason)]),
        (e) => (replayedAs(e, h, "cancelled") ? Effect.void : Effect.fail(e))
      ).pipe(Effect.tap(() => wake(h))),

    delay: (h, delayUntil) => callVoid("delay", "delay", [...handleArgs(h), bigint(delayUntil)]),
    waitChildren: (h) => callVoid("wait_children", "wait_children", handleArgs(h))
  }
}
