/**
 * The leases of a worker's running attempts, renewed from one fiber: every attempt's lease is
 * renewed `renewEvery` after its claim or last renewal, and an attempt whose lease is lost (or that
 * the worker stops at shutdown) has its handler interrupted. One loop for all attempts instead of a
 * fiber and a timer per attempt. A lease the backend reports revoked (a push: the execution was
 * cancelled, its lease revoked) is renewed at once, so a lost lease stops its handler without
 * waiting for the renewal.
 */
import type { Scope } from "effect"
import { Cause, Clock, Duration, Effect, Exit, Fiber, FiberId, Option, Schedule } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import { isLeaseLost } from "../../EngineError.js"
import type * as M from "../../Model.js"

/** Why the keeper stopped an attempt's handler. */
export type Stop =
  | { readonly _tag: "LeaseLost"; readonly reason: string }
  | { readonly _tag: "Shutdown" }

export type RenewalResult = "ok" | "retry" | "lost"

/** A running attempt, from the start of its handler to the end of the handler. */
export interface Lease {
  readonly executionId: string
  readonly handle: M.Handle
  /**
   * Held by a renewal, and by the writes that end the attempt, so the two never race (see
   * `withLock`); made when first needed, as most attempts end before their first renewal.
   */
  lock: Effect.Semaphore | undefined
  /** True once the attempt ended itself (suspend, delay, waitChildren): no more renewals. */
  readonly ended: () => boolean
  /** Set when the keeper stopped the handler; read after the handler's exit. */
  stop: Stop | undefined
}

interface Entry {
  readonly lease: Lease
  readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
  expiresAt: number
  renewAt: number
  /** Registered: its handler runs (a renewal of an entry gone does nothing). */
  live: boolean
  /** Its index in the keeper's list of running attempts while registered. */
  slot: number
}

export interface LeaseKeeper {
  /**
   * Registers the current fiber's attempt (claimed at `claimedAt`) while `handler` runs, and
   * interrupts the handler when the lease is lost or the worker shuts down (see `Lease.stop`).
   * Call it in an uninterruptible region with `handler` made interruptible by its `restore`.
   */
  readonly guard: <A, E>(
    lease: Lease,
    claimedAt: number,
    handler: Effect.Effect<A, E>
  ) => Effect.Effect<Exit.Exit<A, E>>
  /** `guard`, then `then` with the handler's exit. */
  readonly guardThen: <A, E, B>(
    lease: Lease,
    claimedAt: number,
    handler: Effect.Effect<A, E>,
    then: (exit: Exit.Exit<A, E>) => Effect.Effect<B>
  ) => Effect.Effect<B>
  /** `guardThen` on `fiber`, the fiber that runs the returned effect, called from it: the attempt is registered at the call (one run-loop step less). */
  readonly guardThenOn: <A, E, B>(
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    lease: Lease,
    claimedAt: number,
    handler: Effect.Effect<A, E>,
    then: (exit: Exit.Exit<A, E>) => Effect.Effect<B>
  ) => Effect.Effect<B>
  /**
   * `guardThen` for a handler whose exit is known before it would run (`exit`): nothing to
   * register or renew; `then` gets `exit`, or an interruption with `Lease.stop` set to
   * `Shutdown` once the keeper is shutting down (as `guardThen` does), and a revocation kept for
   * the attempt (see `recheck`) is dropped.
   */
  readonly settledOn: <A, E, B>(
    lease: Lease,
    exit: Exit.Exit<A, E>,
    then: (exit: Exit.Exit<A, E>) => Effect.Effect<B>
  ) => Effect.Effect<B>
  /** `settledOn`'s exit, without a step: what `then` would get. */
  readonly settledNow: <A, E>(lease: Lease, exit: Exit.Exit<A, E>) => Exit.Exit<A, E>
  /** Stops every running handler with `Shutdown`, and every handler that starts from now on. */
  readonly shutdown: Effect.Effect<void>
  /**
   * Renews the leases of `executionId`'s attempts now (the backend said someone else ended one): a
   * lost lease stops its handler. An attempt not yet registered is checked when it registers.
   */
  readonly recheck: (executionId: string) => Effect.Effect<void>
  /** Renews every running attempt's lease now (revocations may have been lost with a connection). */
  readonly recheckAll: Effect.Effect<void>
}

export interface KeeperOptions {
  readonly backend: EngineBackend.Service
  readonly leaseTtlMs: number
  readonly renewEvery: Duration.Duration
  readonly onRenewal: (result: RenewalResult, cause?: Cause.Cause<EngineError>) => Effect.Effect<void>
  readonly describeLoss: (error: EngineError) => string
}

/** Runs `effect` holding `lease`'s lock. */
export const withLock = <A, E, R>(lease: Lease, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.suspend(() => (lease.lock ??= Effect.unsafeMakeSemaphore(1)).withPermits(1)(effect))

/** Leases renewed at once by one pass of the keeper. */
const RENEWAL_CONCURRENCY = 16
/** Revocations kept for attempts that register after them (claimed, not yet running). */
const EARLY_REVOCATIONS = 256

/** Starts the keeper's loop in the current scope. */
export const make = (options: KeeperOptions): Effect.Effect<LeaseKeeper, never, Scope.Scope> =>
  Effect.gen(function*() {
    const { backend, leaseTtlMs } = options
    const renewEveryMs = Duration.toMillis(options.renewEvery)
    // how often due leases are looked for, and how soon a failed renewal is tried again
    const tickMs = Math.max(5, Math.min(250, Math.floor(renewEveryMs / 4)))
    // The running attempts, in a list where each entry knows its index: registering appends, and
    // an attempt gone is replaced by the last entry (no hashing of the execution id per attempt).
    // Only a revocation looks an execution up, by a pass over the list. An execution may have two
    // entries for a moment: an attempt whose lease was revoked, and the next attempt, claimed
    // again before the first one stopped.
    const running: Array<Entry> = []
    /** Every running attempt's entry of `executionId`. */
    const entriesOf = (executionId: string): Array<Entry> => {
      const found: Array<Entry> = []
      for (const entry of running) if (entry.lease.executionId === executionId) found.push(entry)
      return found
    }
    // revocations that came before their attempt registered (oldest first)
    const early = new Set<string>()
    let shuttingDown = false

    const stop = (entry: Entry, why: Stop) =>
      Effect.suspend(() => {
        if (entry.lease.stop !== undefined) return Effect.void
        entry.lease.stop = why
        return Fiber.interruptAsFork(entry.fiber, FiberId.none)
      })

    const renew = (entry: Entry) =>
      withLock(entry.lease, Effect.gen(function*() {
        if (!entry.live || entry.lease.ended()) return
        const started = yield* Clock.currentTimeMillis
        const result = yield* Effect.exit(backend.renew(entry.lease.handle))
        if (Exit.isSuccess(result)) {
          entry.expiresAt = started + leaseTtlMs
          entry.renewAt = started + renewEveryMs
          return yield* options.onRenewal("ok")
        }
        // a defect counts as a failed renewal: the lease is kept while it can be, never dropped silently
        const error = Option.getOrUndefined(Cause.failureOption(result.cause))
        const message = error?.message ?? Cause.pretty(result.cause)
        const now = yield* Clock.currentTimeMillis
        if ((error !== undefined && isLeaseLost(error)) || now >= entry.expiresAt) {
          yield* options.onRenewal("lost", result.cause)
          return yield* stop(entry, {
            _tag: "LeaseLost",
            reason: error !== undefined && isLeaseLost(error) ?
              options.describeLoss(error) :
              `lease expired while renewals failed: ${message}`
          })
        }
        yield* options.onRenewal("retry", result.cause)
        entry.renewAt = now + Math.min(tickMs, Math.max(1, entry.expiresAt - now))
      }))

    const pass = Effect.gen(function*() {
      if (running.length === 0) return
      const now = yield* Clock.currentTimeMillis
      const due: Array<Entry> = []
      for (const entry of running) if (entry.renewAt <= now) due.push(entry)
      if (due.length > 0) yield* Effect.forEach(due, renew, { concurrency: RENEWAL_CONCURRENCY, discard: true })
    })
    yield* Effect.forkScoped(Effect.repeat(
      Effect.catchAllCause(pass, (cause) => Effect.logError("lease keeper pass failed", cause)),
      Schedule.spaced(Duration.millis(tickMs))
    ))

    const register = (entry: Entry) => {
      entry.slot = running.length
      running.push(entry)
    }
    const unregister = (entry: Entry) => {
      if (!entry.live) return
      entry.live = false
      const last = running.pop()!
      if (last !== entry) {
        running[entry.slot] = last
        last.slot = entry.slot
      }
    }

    const guardThenOn: LeaseKeeper["guardThenOn"] = <A, E, B>(
      fiber: Fiber.RuntimeFiber<unknown, unknown>,
      lease: Lease,
      claimedAt: number,
      handler: Effect.Effect<A, E>,
      then: (exit: Exit.Exit<A, E>) => Effect.Effect<B>
    ): Effect.Effect<B> => {
      if (shuttingDown) {
        lease.stop = { _tag: "Shutdown" }
        return then(Exit.interrupt(FiberId.none))
      }
      const entry: Entry = {
        lease,
        fiber,
        expiresAt: claimedAt + leaseTtlMs,
        renewAt: claimedAt + renewEveryMs,
        live: true,
        slot: 0
      }
      register(entry)
      // the caller's region is uninterruptible: once the handler's exit is in, the entry goes
      const run = Effect.matchCauseEffect(handler, {
        onFailure: (cause) => {
          unregister(entry)
          return then(Exit.failCause(cause))
        },
        onSuccess: (value) => {
          unregister(entry)
          return then(Exit.succeed(value))
        }
      })
      if (!early.delete(lease.executionId)) return run
      return Effect.zipRight(Effect.forkDaemon(renew(entry)), run)
    }

    const settledNow: LeaseKeeper["settledNow"] = (lease, exit) => {
      if (shuttingDown) {
        lease.stop = { _tag: "Shutdown" }
        return Exit.interrupt(FiberId.none)
      }
      if (early.size > 0) early.delete(lease.executionId)
      return exit
    }

    const settledOn: LeaseKeeper["settledOn"] = (lease, exit, then) => then(settledNow(lease, exit))

    const guardThen: LeaseKeeper["guardThen"] = (lease, claimedAt, handler, then) =>
      Effect.withFiberRuntime((fiber) => guardThenOn(fiber, lease, claimedAt, handler, then))

    const guard: LeaseKeeper["guard"] = (lease, claimedAt, handler) =>
      guardThen(lease, claimedAt, handler, Effect.succeed)

    const recheck = (executionId: string) =>
      Effect.suspend(() => {
        const same = entriesOf(executionId)
        // every attempt of the execution is checked: the revoked one may not be the newest
        if (same.length > 1) return Effect.forEach(same, renew, { concurrency: "unbounded", discard: true })
        if (same.length === 1) return renew(same[0]!)
        early.add(executionId)
        if (early.size > EARLY_REVOCATIONS) early.delete(early.values().next().value!)
        return Effect.void
      })

    const recheckAll = Effect.suspend(() =>
      Effect.forEach([...running], renew, { concurrency: RENEWAL_CONCURRENCY, discard: true })
    )

    const shutdown = Effect.suspend(() => {
      shuttingDown = true
      return Effect.forEach([...running], (entry) => stop(entry, { _tag: "Shutdown" }), { discard: true })
    })

    return { guard, guardThen, guardThenOn, settledOn, settledNow, shutdown, recheck, recheckAll }
  })
