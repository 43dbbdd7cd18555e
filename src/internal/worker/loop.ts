/**
 * A worker's claim loop (docs/worker.md): it claims into its free slots round-robin over its
 * lanes, runs each claimed attempt in a fiber of its own, waits for a wake-up when nothing is
 * claimable, and drains when its scope closes.
 */
import type { Scope } from "effect"
import {
  Cause,
  Clock,
  type Context,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  FiberId,
  FiberRef,
  FiberRefs,
  FiberSet,
  HashMap,
  identity,
  Option,
  Runtime,
  RuntimeFlags,
  Schedule
} from "effect"
import { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, rootCause } from "../../EngineError.js"
import type * as M from "../../Model.js"
import { decodeHandle } from "../handleCodec.js"
import { MAX_CLAIM_BATCH } from "../validation.js"
import { builtInTracer } from "../traceContext.js"
import { Done, releaseUnrun, type Restore, runAttempt, settleWritten, startNow } from "./attempt.js"
import * as Completions from "./completions.js"
import * as LeaseKeeper from "./leaseKeeper.js"
import { activeTasks, claimsTotal, type Labels, labelSets, renewalsTotal } from "./metrics.js"
import { leaseLostReason, stepsNow, type Runtime as WorkerRuntime, type Settings } from "./runtime.js"

/** The back-off after a failed claim: 50 ms doubling, capped at 1 s. */
const claimErrorBackoff: Schedule.Schedule<unknown> = Schedule.exponential("50 millis", 2).pipe(
  Schedule.union(Schedule.spaced("1 second"))
)

/** How long released attempts may take to write their release after the grace period. */
const RELEASE_TIMEOUT = Duration.seconds(5)
const SHUTDOWN_POLL = Duration.millis(20)

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

/**
 * The worker's stop: the running attempts may finish within the grace period, then the keeper stops
 * the rest, which hand their executions back (unless `releaseOnShutdown` is off: then they are
 * dropped as in a crash, after the same grace period). A claim in flight (at a wake-up, or with a batch of completions) runs in
 * a fiber of `tasks`, uninterruptible: what it returns once the drain started is handed back at once
 * by that fiber (see `launch`), so waiting for `tasks` waits for the claims and their releases too;
 * past the drain's timeouts, the set's close still waits for them (they cannot be interrupted).
 * `attempts` and `claiming` only word the log.
 */
const drain = (
  settings: Settings,
  tasks: FiberSet.FiberSet<void, never>,
  keeper: LeaseKeeper.LeaseKeeper,
  attempts: () => number,
  claiming: () => boolean
): Effect.Effect<void> =>
  Effect.gen(function*() {
    const running = yield* FiberSet.size(tasks)
    if (running === 0) return yield* Effect.logDebug("worker stopped")
    const release = settings.releaseOnShutdown
    const inFlight = claiming() ? `; claims in flight: what they return is ${release ? "handed back" : "dropped"}` : ""
    yield* Effect.logInfo(
      `worker stopping; ${attempts()} attempt(s) running, grace ${Duration.format(settings.grace)}${inFlight}`
    )
    const left = yield* awaitIdle(tasks, settings.grace)
    if (left > 0 && !release) {
      return yield* Effect.logWarning(
        `grace period over; ${attempts()} attempt(s) dropped, their leases will expire${
          claiming() ? "; what the claims in flight return is dropped too" : ""
        }`
      )
    }
    if (left > 0) {
      yield* Effect.logInfo(
        `grace period over; releasing ${attempts()} attempt(s)${claiming() ? "; claims still in flight" : ""}`
      )
      yield* keeper.shutdown
      yield* awaitIdle(tasks, RELEASE_TIMEOUT)
    }
    yield* Effect.logInfo(claiming() ? "worker stopped; waiting for the claims in flight" : "worker stopped")
  })

/** The lane's log annotations and the attempt's (`executionId`, `attempt`). */
const attemptAnnotations = (
  lane: HashMap.HashMap<string, unknown>,
  executionId: string,
  attempt: number
): HashMap.HashMap<string, unknown> => HashMap.set(HashMap.set(lane, "executionId", executionId), "attempt", attempt)

/**
 * The new attempt fiber's refs with its log annotations. `FiberRefs.updateAs` copies the map of
 * refs: setting `refs.locals` in place would rely on `Runtime.runFork` handing a map of the new
 * fiber's own, which Effect does not promise. Used when `attemptRefs` cannot be (see there).
 */
const withAnnotations = (
  refs: FiberRefs.FiberRefs,
  fiberId: FiberId.Runtime,
  annotations: HashMap.HashMap<string, unknown>
): FiberRefs.FiberRefs => FiberRefs.updateAs(refs, { fiberId, fiberRef: FiberRef.currentLogAnnotations, value: annotations })

type Locals = FiberRefs.FiberRefs["locals"]

/** `ref`'s value in `locals` set to `value` by `fiberId`, pushed on its stack (as `FiberRefs.updateAs` does for a fiber that has not set it yet). */
const pushLocal = <A>(locals: Locals, ref: FiberRef.FiberRef<A>, fiberId: FiberId.Runtime, value: A): void => {
  const stack = locals.get(ref)
  locals.set(ref, stack === undefined ? [[fiberId, value]] : [[fiberId, value], ...stack])
}

/**
 * The refs of an attempt's fiber, made in one copy of the loop's map of refs: what
 * `Runtime.runFork` from the loop's runtime, then `withAnnotations`, would give (the loop's refs
 * forked, the context set, the log annotations set), without the per-fork pass that applies each
 * ref's fork patch, nor the second copy. That pass is done once here: when forking changes no
 * ref (no `FiberRef` with a fork patch of its own among the loop's refs, the usual case), a fork's
 * refs are the loop's as they are, and the copy made per attempt is the whole of it. Otherwise
 * `undefined`: the attempt forks from the loop's runtime, each fork patched as Effect does it.
 * The attempt fiber is then forked from a runtime without refs, and its refs replaced by these
 * (`updateRefs`).
 */
const attemptRefs = (
  loopRefs: FiberRefs.FiberRefs,
  context: Context.Context<never>
): ((fiberId: FiberId.Runtime, annotations: HashMap.HashMap<string, unknown>) => FiberRefs.FiberRefs) | undefined => {
  const forked = FiberRefs.forkAs(loopRefs, FiberId.none)
  for (const [ref, stack] of forked.locals) if (loopRefs.locals.get(ref) !== stack) return undefined
  return (fiberId, annotations) => {
    const locals: Locals = new Map(loopRefs.locals)
    pushLocal(locals, FiberRef.currentContext, fiberId, context)
    pushLocal(locals, FiberRef.currentLogAnnotations, fiberId, annotations)
    return FiberRefs.unsafeMake(locals)
  }
}

/** Promotions in a row that found nothing at the reported due time before the worker waits for a wake-up instead. */
const MAX_DUE_MISSES = 10

/** A subscription that never wakes: the worker claims on its idle schedule alone. */
const pollingOnly: EngineBackend.WorkSubscription = {
  wakeups: Effect.succeed(0),
  arm: Effect.succeed({ dueAt: Option.none(), claimAgain: false }),
  disarm: Effect.void,
  await: (_since, maxWait) => Effect.as(Effect.sleep(maxWait), false),
  promoteDue: Effect.succeed(0),
  revoked: Effect.never,
  onWake: () => undefined
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

/** Runs the worker on `settings` until interrupted (`Worker.run`); fails only on a claim that fails with `Validation`. */
export const workerLoop = (settings: Settings): Effect.Effect<never, EngineError, EngineBackend | Scope.Scope> =>
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
    const tasks = yield* FiberSet.make<void, never>()
    const active = labels("worker_instance", settings.workerInstanceId)
    /** Set when the drain starts: completions claim nothing more. */
    let stopping = false

    /** Handoffs taken whose create has not delivered yet; `handoffsSettled` is open while there are none. */
    let handoffsPending = 0
    const handoffsSettled = Effect.unsafeMakeLatch(true)
    // Registered after the FiberSet, so it runs before the set interrupts what is left.
    // A handoff still pending is waited for as a claim in flight is: a fiber of the attempts' set,
    // uninterruptible, waits until every pending handoff delivered (what comes back is handed back).
    yield* Effect.addFinalizer(() =>
      Effect.zipRight(
        Effect.sync(() => {
          stopping = true
          if (handoffsPending > 0) FiberSet.unsafeAdd(tasks, forkAttempt(handoffsSettled.await))
        }),
        drain(settings, tasks, keeper, () => running, () => reserved > 0)
      )
    )

    const policy: M.ClaimPolicy = {
      workerId: settings.workerId,
      workerInstanceId: settings.workerInstanceId,
      leaseTtlMs: settings.leaseTtlMs
    }
    const capabilities: M.CapabilitySet = { tokens: settings.capabilities }
    const claimArgs = settings.lanes.map((lane): M.ClaimArgs => ({ lane, capabilities, policy, kinds: settings.kinds }))
    let next = 0
    /** Up to `max` claims from the first lane, in turn, that has work, starting after the lane that gave work last. */
    const claimRound = (max: number) =>
      Effect.gen(function*() {
        const n = settings.lanes.length
        for (let i = 0; i < n; i++) {
          const index = (next + i) % n
          const args = claimArgs[index]!
          const { claimed } = yield* backend.completeAndClaim([], { args, max })
          if (claimed.length > 0) {
            next = (index + 1) % n
            return Option.some({ lane: args.lane, claimed })
          }
        }
        return Option.none()
      })
    // attempts forked and not yet finished; every one holds one of the `concurrency` slots
    let running = 0
    // slots a batch of completions has reserved for the claim it makes with them
    let reserved = 0
    /** How many executions one claim may take now: the free slots, at most a claim's batch. */
    const freeSlots = () => Math.min(MAX_CLAIM_BATCH, settings.concurrency - running - reserved)
    // open while a slot is free: the loop waits on it when every slot is taken
    const slotFree = Effect.unsafeMakeLatch(true)
    // observes each attempt's fiber: its end frees its slot
    const finished = () => {
      running--
      activeTasks.unsafeModify(-1, active)
      slotFree.unsafeOpen()
    }
    const finishedMany = (slots: number) => {
      running -= slots
      activeTasks.unsafeModify(-slots, active)
      slotFree.unsafeOpen()
    }
    let rt: WorkerRuntime | undefined
    // Attempts start from the loop's own context (its log annotations, no span), whichever fiber
    // claimed them (the loop, or an attempt writing a batch of completions that claimed).
    const loopRuntime = yield* Effect.runtime<never>()
    const clock = yield* Effect.clock
    // An attempt's fiber starts uninterruptible (its claim and its fork are one step, see `launch`);
    // `restore` makes an effect as interruptible as the loop is.
    const forkAttempt = Runtime.runFork(Runtime.make({
      context: loopRuntime.context,
      fiberRefs: loopRuntime.fiberRefs,
      runtimeFlags: RuntimeFlags.disable(loopRuntime.runtimeFlags, RuntimeFlags.Interruption)
    }))
    // the same fork, from a runtime without refs: the attempt's refs are made by `refsOf` alone
    const refsOf = attemptRefs(loopRuntime.fiberRefs, loopRuntime.context)
    const forkBare = Runtime.runFork(Runtime.make({
      context: loopRuntime.context,
      fiberRefs: FiberRefs.empty(),
      runtimeFlags: RuntimeFlags.disable(loopRuntime.runtimeFlags, RuntimeFlags.Interruption)
    }))
    const restore: Restore = RuntimeFlags.interruption(loopRuntime.runtimeFlags) ? Effect.interruptible : identity
    // Attempts whose input came with their claim start on the claim's stack (`startNow`) unless
    // they have a span (a tracer other than Effect's built-in one is current): that span is made
    // in the attempt's fiber, around all of its steps.
    const startsNow = (yield* Effect.tracer) === builtInTracer
    const loopAnnotations = FiberRefs.getOrDefault(loopRuntime.fiberRefs, FiberRef.currentLogAnnotations)
    /** Per lane: the loop's log annotations and the lane's, and the label set of its claims by handle kind. */
    const lanes = new Map<M.ClaimArgs["lane"], {
      readonly annotations: HashMap.HashMap<string, unknown>
      readonly claimLabels: { fresh: Labels | undefined; resumed: Labels | undefined }
    }>()
    const laneOf = (lane: M.ClaimArgs["lane"]) => {
      let l = lanes.get(lane)
      if (l === undefined) {
        l = {
          annotations: HashMap.set(HashMap.set(loopAnnotations, "lane", lane), "workerInstanceId", settings.workerInstanceId),
          claimLabels: { fresh: undefined, resumed: undefined }
        }
        lanes.set(lane, l)
      }
      return l
    }
    /**
     * Forks an attempt per claimed execution (the caller is uninterruptible: a claim and the fork
     * of its attempts are one step, an interruption in between would strand leases until they
     * expired). Each attempt's fiber is its own: its log annotations are set as it is forked, and it
     * starts at once, on the caller's stack (an attempt whose handler does not wait runs to its end
     * before the next one starts, without a turn of the scheduler).
     */
    const launch = (lane: M.ClaimArgs["lane"], claimed: ReadonlyArray<EngineBackend.ClaimedWork>) =>
      claimed.length === 0 ?
        Effect.void :
        Effect.suspend(() => launchNow(clock.unsafeCurrentTimeMillis(), lane, claimed) ?? Effect.void)
    /**
     * `launch`'s work, done on the caller's stack: the attempts are forked (and started) before it
     * returns. What is left to run in a fiber (the log of a handle that does not decode, the hand-back
     * of what was claimed once the drain began) is returned, else `undefined`.
     */
    const launchNow = (
      claimedAt: number,
      lane: M.ClaimArgs["lane"],
      claimed: ReadonlyArray<EngineBackend.ClaimedWork>
    ): Effect.Effect<void> | undefined => {
      const l = laneOf(lane)
      let errors: Array<unknown> | undefined
      let resumed = 0
      for (const { handle } of claimed) if (handle.kind === "resumed") resumed++
      if (resumed < claimed.length) {
        claimsTotal.unsafeUpdate(claimed.length - resumed, l.claimLabels.fresh ??= labels("lane", lane, "handle_kind", "fresh"))
      }
      if (resumed > 0) {
        claimsTotal.unsafeUpdate(resumed, l.claimLabels.resumed ??= labels("lane", lane, "handle_kind", "resumed"))
      }
      if (stopping) return launchStopping(l.annotations, claimedAt, claimed)
      let done: Array<Done> | undefined
      for (const { handle, input } of claimed) {
        const p = decodeHandle(handle.backend, handle)
        if (Either.isLeft(p)) {
          ;(errors ??= []).push(p.left)
          continue
        }
        running++
        const payload = p.right
        const annotations = () => attemptAnnotations(l.annotations, payload.executionId, payload.attemptIndex + 1)
        if (startsNow && Option.isSome(input)) {
          const started = startNow(rt!, handle, payload, claimedAt, input.value, restore, clock)
          if (started instanceof Done) {
            ;(done ??= []).push(started)
            continue
          }
          if (started !== undefined) {
            forkRunning(started, annotations(), 1)
            continue
          }
        }
        // an input left out of the claim's reply (past its byte budget) is read by the attempt
        const prefetched = Option.isSome(input) ? Option.some(input) : Option.none()
        forkRunning(runAttempt(rt!, handle, payload, claimedAt, prefetched, restore), annotations(), 1)
      }
      // the outputs of the handlers done as they returned are written at once, in one fiber that
      // holds their slots until each is reported
      if (done !== undefined) forkRunning(writeDone(l.annotations, done), l.annotations, done.length)
      return errors === undefined ? undefined : Effect.forEach(
        errors,
        (e) => Effect.logError(`claimed handle does not decode: ${JSON.stringify(e)}`),
        { discard: true }
      )
    }
    /** Forks `effect` uninterruptible with the log annotations `annotations`; it starts at once, on the caller's stack. */
    const forkAnnotated = (effect: Effect.Effect<void>, annotations: HashMap.HashMap<string, unknown>) =>
      refsOf !== undefined ?
        forkBare(effect, { updateRefs: (_, fiberId) => refsOf(fiberId, annotations) }) :
        forkAttempt(effect, { updateRefs: (refs, fiberId) => withAnnotations(refs, fiberId, annotations) })
    /**
     * Forks `effect`, which holds `slots` of the running attempts' slots (counted in `running`
     * already), with the log annotations `annotations`.
     */
    const forkRunning = (effect: Effect.Effect<void>, annotations: HashMap.HashMap<string, unknown>, slots: number) => {
      const fiber = forkAnnotated(effect, annotations)
      const exit = fiber.unsafePoll()
      if (exit === null) {
        // still running: it holds its slots until it ends (the drain waits for it)
        activeTasks.unsafeModify(slots, active)
        FiberSet.unsafeAdd(tasks, fiber)
        fiber.addObserver(slots === 1 ? finished : () => finishedMany(slots))
      } else {
        // it ran to its end on this stack (its handler did not wait): its slots are free again,
        // and there is nothing to drain or observe (a defect still reaches the set, as before)
        running -= slots
        if (Exit.isFailure(exit)) FiberSet.unsafeAdd(tasks, fiber)
      }
    }
    /**
     * The outputs of attempts done on the claim's stack (`startNow`), written together, then each
     * reported as its own write would have been. A report done as it is made (`Effect.void`) takes
     * no step; each of the others runs in a fiber of its own with its attempt's log annotations
     * (as in the attempt's fiber), all at once, and this fiber, which holds the attempts' slots,
     * waits for them. A defect in one does not keep the others from theirs; the first one ends
     * this fiber, as it would have ended the attempt's.
     */
    const writeDone = (lane: HashMap.HashMap<string, unknown>, done: ReadonlyArray<Done>): Effect.Effect<void> =>
      Effect.flatMap(complete.all(done.map((d) => ({ handle: d.a.handle, payload: d.output }))), (exits) => {
        let waiting: Array<Fiber.RuntimeFiber<void, never>> | undefined
        let defect: Cause.Cause<never> | undefined
        for (let i = 0; i < done.length; i++) {
          const d = done[i]!
          let report: Effect.Effect<void>
          try {
            report = settleWritten(d, exits[i]!)
          } catch (e) {
            report = Effect.die(e)
          }
          // (a report of synchronous steps alone is run here; the rest of any other, in its fiber)
          const now = stepsNow(report)
          if (Exit.isExit(now) && Exit.isSuccess(now)) continue
          const fiber = forkAnnotated(now, attemptAnnotations(lane, d.a.p.executionId, d.a.p.attemptIndex + 1))
          const exit = fiber.unsafePoll()
          if (exit === null) (waiting ??= []).push(fiber)
          else if (Exit.isFailure(exit)) defect ??= exit.cause
        }
        const end = Effect.suspend(() => (defect === undefined ? Effect.void : Effect.failCause(defect)))
        if (waiting === undefined) return end
        return Effect.zipRight(
          Effect.forEach(waiting, (fiber) =>
            Effect.map(Fiber.await(fiber), (exit) => {
              if (Exit.isFailure(exit)) defect ??= exit.cause
            }), { discard: true }),
          end
        )
      })
    /**
     * What a claim returned once the drain had started (the claim was in flight when the worker
     * began to stop): no handler runs. Each execution is handed back at once, as the drain hands
     * back the attempts it stops, in the claiming fiber itself (uninterruptible, held in the
     * attempts' set: the drain, and the set's close, wait for it); with `releaseOnShutdown` off it
     * is dropped, as the drain drops running attempts (its lease expires).
     */
    const launchStopping = (
      laneAnnotations: HashMap.HashMap<string, unknown>,
      claimedAt: number,
      claimed: ReadonlyArray<EngineBackend.ClaimedWork>
    ): Effect.Effect<void> => {
      if (!settings.releaseOnShutdown) {
        return Effect.logWarning(
          `worker stopping; ${claimed.length} execution(s) claimed meanwhile dropped unrun, their leases will expire`
        )
      }
      return Effect.forEach(claimed, ({ handle, input }) => {
        const p = decodeHandle(handle.backend, handle)
        if (Either.isLeft(p)) return Effect.logError(`claimed handle does not decode: ${JSON.stringify(p.left)}`)
        return Effect.locally(
          releaseUnrun(rt!, handle, p.right, claimedAt, input),
          FiberRef.currentLogAnnotations,
          attemptAnnotations(laneAnnotations, p.right.executionId, p.right.attemptIndex + 1)
        )
      }, { concurrency: "unbounded", discard: true })
    }
    const refill: Completions.Refill = {
      reserve: (completing) => {
        const max = Math.min(MAX_CLAIM_BATCH, settings.concurrency - running - reserved + completing)
        if (stopping || max <= 0) return undefined
        reserved += max
        const args = claimArgs[next]!
        next = (next + 1) % claimArgs.length
        return { args, max }
      },
      // the reservation is given back once the claimed attempts hold their slots (however the
      // launch ends: else its slots stay taken for good)
      launch: (r, claimed) =>
        launch(r.args.lane, claimed).pipe(Effect.ensuring(Effect.sync(() => {
          reserved -= r.max
          slotFree.unsafeOpen()
        }))),
      startWriter: (writer) => {
        const fiber = forkAttempt(writer)
        if (fiber.unsafePoll() === null) FiberSet.unsafeAdd(tasks, fiber)
      }
    }
    /**
     * Claims into `free` slots (reserved meanwhile, so that a batch of completions claiming at the
     * same time leaves them alone) and forks the claimed attempts: one uninterruptible step (an
     * interruption in between would strand leases until they expired). The reservation is given
     * back however the step ends (a claim that dies too: else its slots stay taken for good).
     */
    const claimAndLaunch = (free: number) =>
      Effect.uninterruptible(
        Effect.gen(function*() {
          reserved += free
          const r = yield* Effect.either(claimRound(free))
          const got = Either.isRight(r) ? Option.getOrUndefined(r.right) : undefined
          if (got !== undefined) yield* launch(got.lane, got.claimed)
          return r
        }).pipe(Effect.ensuring(Effect.sync(() => void (reserved -= free))))
      )
    /** Set by a claim made at a wake-up that found work (the loop then resets its idle schedule). */
    let claimedOnWake = false
    /**
     * A wake-up while the loop waits: the claim starts at once, from the turn that delivered the
     * wake-up, in a fiber of its own (held in the attempts' set, so a drain waits for it), instead
     * of after the loop's wait has returned. Its failure is logged; the loop's next claim, which
     * follows the same wake-up, reports it as it does its own.
     */
    const claimOnWake = (done: () => void) => {
      const free = freeSlots()
      if (stopping || free <= 0) return done()
      const fiber = forkAttempt(
        Effect.flatMap(claimAndLaunch(free), (r) => {
          if (Either.isLeft(r)) return Effect.logWarning("claim at a wake-up failed", r.left)
          if (Option.isSome(r.right)) claimedOnWake = true
          return Effect.void
        }).pipe(
          // a claim that dies is logged here (no one joins this fiber); the loop's own claim,
          // which follows the wake-up, meets the defect again if it lasts, and stops the worker
          Effect.catchAllCause((cause) => Effect.logError("claim at a wake-up died", cause)),
          Effect.ensuring(Effect.sync(() => {
            slotFree.unsafeOpen()
            done()
          }))
        )
      )
      FiberSet.unsafeAdd(tasks, fiber)
    }
    /**
     * The claim again that follows a handoff whose claim did not run, failed, or found only busy
     * candidates (and what `launchNow` left to run), in a fiber of the attempts' set (a drain waits
     * for it, as for a claim at a wake-up).
     */
    const afterHandoff = (left: Effect.Effect<void> | undefined, again: boolean) => {
      const claimAgain = Effect.suspend(() => {
        const free = freeSlots()
        if (!again || stopping || free <= 0) return Effect.void
        // (the loop may wait for a free slot meanwhile, this claim's among the reserved ones)
        return Effect.flatMap(Effect.ensuring(claimAndLaunch(free), Effect.sync(() => slotFree.unsafeOpen())), (r) => {
          if (Either.isLeft(r)) return Effect.logWarning("claim after a create's handoff failed", r.left)
          if (Option.isSome(r.right)) claimedOnWake = true
          return Effect.void
        })
      })
      const fiber = forkAttempt(
        (left === undefined ? claimAgain : Effect.zipRight(left, claimAgain)).pipe(
          Effect.catchAllCause((cause) => Effect.logError("claim handed over by a create died", cause))
        )
      )
      if (fiber.unsafePoll() === null) FiberSet.unsafeAdd(tasks, fiber)
    }
    /**
     * A create of this process on one of the lanes asks, while the loop waits, whether it may claim
     * for the worker in its own step (`WorkSubscription.onHandoff`; one statement or function
     * call): the free slots are reserved at once, and `deliver` starts what that claim took on the
     * caller's stack, as it is called (no fiber waits for it: the drain waits for the handoffs
     * still pending, see `workerLoop`'s finalizer); a claim that did not run, or found only busy
     * candidates, is made again by a fiber of the attempts' set.
     */
    const handoff = (lane: string): EngineBackend.Handoff | undefined => {
      const index = claimArgs.findIndex((a) => a.lane === lane)
      const free = freeSlots()
      if (stopping || index < 0 || free <= 0) return undefined
      const args = claimArgs[index]!
      reserved += free
      handoffsPending++
      handoffsSettled.unsafeClose()
      let delivered = false
      return {
        args,
        max: free,
        // (the first call counts: a later delivery is ignored)
        deliver: (claimed, again) => {
          if (delivered) return
          delivered = true
          let left: Effect.Effect<void> | undefined
          try {
            if (claimed.length > 0) {
              next = (index + 1) % claimArgs.length
              claimedOnWake = true
              left = launchNow(clock.unsafeCurrentTimeMillis(), args.lane, claimed)
            }
          } catch (defect) {
            left = Effect.die(defect)
          }
          // the reservation is given back once the claimed attempts hold their slots; a drain
          // waiting for this handoff sees what follows it in the attempts' set first
          reserved -= free
          slotFree.unsafeOpen()
          try {
            if (left !== undefined || again) afterHandoff(left, again)
          } finally {
            if (--handoffsPending === 0) handoffsSettled.unsafeOpen()
          }
        }
      }
    }
    const completions = (settings.batchCompletions ?? backend.backendLabel !== "memory") ?
      yield* Completions.make(backend, Math.min(settings.concurrency, MAX_CLAIM_BATCH), refill) :
      undefined
    const complete = completions !== undefined ?
      { one: completions.complete, all: completions.completeAll } :
      {
        one: (handle: M.Handle, payload: Uint8Array) => backend.complete(handle, { payload }),
        all: (items: ReadonlyArray<Completions.Item>) => Completions.completeAll(backend, items)
      }
    const byKind = new Map<string, Map<string, Labels>>()
    const outcomeLabels = (kind: string, outcome: string): Labels => {
      let byOutcome = byKind.get(kind)
      if (byOutcome === undefined) byKind.set(kind, byOutcome = new Map())
      let set = byOutcome.get(outcome)
      if (set === undefined) byOutcome.set(outcome, set = labels("kind", kind, "outcome", outcome))
      return set
    }
    rt = { backend, settings, keeper, complete: complete.one, labels, outcomeLabels }

    const background = yield* FiberSet.make<void, never>()
    const sub = yield* subscribe(backend, settings)
    // a lease someone else ended (cancel, revoke, timeout) is checked at once, not at its renewal
    yield* FiberSet.run(
      background,
      Effect.forever(
        Effect.flatMap(sub.revoked, (id) => FiberSet.run(background, id === undefined ? keeper.recheckAll : keeper.recheck(id)))
      )
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
        settings.kinds.join(", ")
      }; concurrency ${settings.concurrency}; lease ${settings.leaseTtlMs} ms`
    )
    for (;;) {
      if (running + reserved >= settings.concurrency) {
        slotFree.unsafeClose()
        yield* slotFree.await
        continue
      }
      // every wake-up from here on ends the wait that may follow this claim
      const mark = yield* sub.wakeups
      // The free slots are filled in one claim (a completeAndClaim without completions: the
      // claimed executions come with their inputs).
      const claimed = yield* claimAndLaunch(freeSlots())
      if (Either.isLeft(claimed)) {
        const error = claimed.left
        const root = rootCause(error)
        if (root._tag === "Validation") return yield* Effect.fail(error)
        yield* Effect.logWarning("claim failed; backing off", error)
        yield* backOff
        continue
      }
      yield* errors.reset
      if (claimedOnWake) {
        claimedOnWake = false
        yield* idle.reset
      }
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
      const due = misses >= MAX_DUE_MISSES ? Option.none() : armed
      const floor = misses === 0 ? 0 : Math.min(1000, 2 ** misses)
      armed = undefined
      // The timer reads the clock as it starts to sleep: a wait measured from a time read before
      // the race's fibers started would end late by the gap (for ever under a test's clock that
      // moved meanwhile).
      const dueIn = (at: number) => Effect.map(Clock.currentTimeMillis, (now) => Math.max(at - now, floor))
      const timer = Option.map(due, (at) => Effect.as(Effect.flatMap(dueIn(at), (ms) => Effect.sleep(ms)), "due" as const))
      // (a wake-up meanwhile claims at once: claimOnWake)
      const woken = Option.isSome(due) && (yield* dueIn(due.value)) === 0 ? "due" : yield* Effect.raceAll([
        Effect.as(poll, "poll" as const),
        Effect.map(sub.await(mark, Duration.infinity), (w) => (w ? "wake" as const : "due" as const)),
        ...Option.toArray(timer)
      ]).pipe(
        Effect.onExit(() =>
          Effect.sync(() => {
            sub.onWake(undefined)
            sub.onHandoff?.(undefined)
          })
        ),
        (wait) =>
          Effect.zipRight(
            Effect.sync(() => {
              sub.onWake(claimOnWake)
              sub.onHandoff?.(handoff)
            }),
            wait
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
