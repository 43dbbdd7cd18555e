/**
 * The in-process side of wake-ups, the same on every backend: the subscriptions of this process's
 * workers, fed by the backend's transport (the memory engine itself, a Valkey subscriber
 * connection, a Postgres LISTEN connection). A wake-up of a lane counts once for each subscription
 * of the lane and completes its pending `await`; a revocation goes to the subscriptions of the
 * worker instance that holds the lease. See docs/worker.md, "Wake-ups, timers and cancellation".
 */
import { Deferred, Duration, Effect, Exit, Fiber, FiberId, Option, Queue, type Scope } from "effect"
import type { EngineBackend } from "../EngineBackend.js"
import type { EngineError } from "../EngineError.js"
import type { ExecutionId } from "../Ids.js"
import type * as M from "../Model.js"

/** A waiter's wake-up count, and the wait it ends (a worker's lanes, an event follower's scope). */
interface Woken {
  count: number
  waiter: Deferred.Deferred<void> | undefined
}

interface Subscriber extends Woken {
  readonly lanes: ReadonlyArray<string>
  readonly workerInstanceId: string
  readonly revoked: Queue.Queue<ExecutionId | undefined>
  /** Run at each wake-up while set (`onWake`), in a microtask of the transport's turn. */
  hook: ((done: () => void) => void) | undefined
  /** Asked by a create of this process on one of the lanes while set (`onHandoff`). */
  handoff: ((lane: string) => EngineBackend.Handoff | undefined) | undefined
}

/** What the transport sees of the subscriptions. */
export interface Hub {
  /** Counts a wake-up for every subscription of `lane`. */
  readonly wake: (lane: string) => void
  /**
   * A reconnect (wake-ups and revocations may have been lost): counts a wake-up for every
   * subscription and has each worker check every lease it holds.
   */
  readonly wakeAll: () => void
  /**
   * Starts the wake-up hook of the subscriptions of `lane` that wait now (their workers claim),
   * without counting a wake-up or ending their wait: this process is making work claimable there,
   * and the transport's wake-up, which still follows, stays the one that counts. See
   * docs/worker.md, "Wake-ups, timers and cancellation".
   */
  readonly nudge: (lane: string) => void
  /**
   * The claim of a subscription of `lane` waiting now that lets this process's create of work
   * there claim for it in the same step (`WorkSubscription.onHandoff`), or `undefined`. The
   * backend that takes one must call its `deliver` once, however its create ends.
   */
  readonly handoff: (lane: string) => EngineBackend.Handoff | undefined
  /** Hands `executionId` to the subscriptions of `workerInstanceId`. */
  readonly revoke: (workerInstanceId: string, executionId: string) => void
  /** Whether some subscription of this process listens to `lane` / to `workerInstanceId`. */
  readonly hasLane: (lane: string) => boolean
  readonly hasWorker: (workerInstanceId: string) => boolean
  /** The lanes and worker instances subscribed now. */
  readonly lanes: () => ReadonlyArray<string>
  readonly workers: () => ReadonlyArray<string>
  /**
   * A subscription of the current scope. `listen` runs first with the lanes and worker instance
   * that had no subscription before (the transport subscribes to them, and returns once it is
   * live); `unlisten` runs when the scope closes with those that have none left.
   */
  readonly subscribe: (
    args: EngineBackend.SubscribeWorkArgs,
    store: StoreSide
  ) => Effect.Effect<EngineBackend.WorkSubscription, EngineError, Scope.Scope>
}

/** What the store does for a subscription (the backend's part). */
export interface StoreSide {
  readonly arm: Effect.Effect<EngineBackend.Armed, EngineError>
  readonly disarm: Effect.Effect<void, EngineError>
  readonly promoteDue: Effect.Effect<number, EngineError>
}

export interface WakeTransport {
  readonly listen: (lanes: ReadonlyArray<string>, workers: ReadonlyArray<string>) => Effect.Effect<void, EngineError>
  readonly unlisten: (lanes: ReadonlyArray<string>, workers: ReadonlyArray<string>) => Effect.Effect<void>
}

const addTo = <K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean => {
  let set = map.get(key)
  const fresh = set === undefined
  if (set === undefined) map.set(key, set = new Set())
  set.add(value)
  return fresh
}

const removeFrom = <K, V>(map: Map<K, Set<V>>, key: K, value: V): boolean => {
  const set = map.get(key)
  if (set === undefined) return false
  set.delete(value)
  if (set.size > 0) return false
  map.delete(key)
  return true
}

const bump = (s: Woken): void => {
  s.count++
  const waiter = s.waiter
  s.waiter = undefined
  const hook = (s as Partial<Subscriber>).hook
  if (hook === undefined) {
    if (waiter !== undefined) Deferred.unsafeDone(waiter, Exit.void)
    return
  }
  // A microtask, not this stack: the memory engine wakes inside its step, which must end first.
  // The wait this wake-up ends returns once the hook says so (the worker: once its claim is made).
  queueMicrotask(() => {
    let ended = false
    const done = () => {
      if (ended) return
      ended = true
      if (waiter !== undefined) Deferred.unsafeDone(waiter, Exit.void)
    }
    try {
      hook(done)
    } catch (e) {
      done()
      throw e
    }
  })
}

/** A nudge's hook: as a wake-up's (a microtask), but it ends no wait and counts nothing. */
const nudgeOne = (s: Subscriber): void => {
  const hook = s.hook
  if (hook === undefined) return
  queueMicrotask(() => hook(ignore))
}
const ignore = (): void => undefined

export const makeHub = (transport: WakeTransport): Hub => {
  const byLane = new Map<string, Set<Subscriber>>()
  const byWorker = new Map<string, Set<Subscriber>>()
  // listen / unlisten one at a time, so a lane's SUBSCRIBE and UNSUBSCRIBE never cross
  const lock = Effect.unsafeMakeSemaphore(1)

  const subscribe: Hub["subscribe"] = (args, store) =>
    Effect.gen(function*() {
      const lanes = [...new Set<string>(args.lanes)]
      const sub: Subscriber = {
        lanes,
        workerInstanceId: args.workerInstanceId,
        count: 0,
        waiter: undefined,
        revoked: yield* Queue.unbounded<ExecutionId | undefined>(),
        hook: undefined,
        handoff: undefined
      }
      yield* Effect.acquireRelease(
        lock.withPermits(1)(Effect.suspend(() => {
          const newLanes = lanes.filter((lane) => addTo(byLane, lane, sub))
          const newWorkers = addTo(byWorker, sub.workerInstanceId, sub) ? [sub.workerInstanceId] : []
          return transport.listen(newLanes, newWorkers).pipe(
            Effect.tapError(() => Effect.sync(() => drop(sub)))
          )
        })),
        () =>
          lock.withPermits(1)(Effect.suspend(() => {
            const { lanes: goneLanes, workers: goneWorkers } = drop(sub)
            return goneLanes.length === 0 && goneWorkers.length === 0 ?
              Effect.void :
              transport.unlisten(goneLanes, goneWorkers)
          }))
      )
      // The store's registration follows the order of the calls: a disarm runs in the background,
      // and the arm after it waits for it (else it could land last and leave the worker unregistered,
      // its wake-ups never sent). The last registration is undone when the subscription ends.
      let registered = false
      let disarming: Fiber.RuntimeFiber<void> | undefined
      const settled = Effect.suspend(() => (disarming === undefined ? Effect.void : Fiber.await(disarming)))
      yield* Effect.addFinalizer(() =>
        Effect.zipRight(settled, Effect.suspend(() => (registered ? Effect.ignore(store.disarm) : Effect.void)))
      )
      const subscription: EngineBackend.WorkSubscription = {
        wakeups: Effect.sync(() => sub.count),
        arm: Effect.zipRight(
          settled,
          Effect.suspend(() => {
            registered = true
            return store.arm
          })
        ),
        disarm: Effect.suspend(() => {
          if (!registered) return Effect.void
          registered = false
          return Effect.map(
            Effect.forkDaemon(Effect.ignoreLogged(store.disarm)),
            (fiber) => void (disarming = fiber)
          )
        }),
        promoteDue: store.promoteDue,
        await: (since, maxWait) =>
          Effect.suspend(() => {
            if (sub.count > since) return Effect.succeed(true)
            if (Duration.toMillis(maxWait) <= 0) return Effect.succeed(false)
            const waiter = sub.waiter ?? (sub.waiter = Deferred.unsafeMake<void>(FiberId.none))
            return Effect.map(Effect.timeoutOption(Deferred.await(waiter), maxWait), Option.isSome)
          }),
        revoked: Queue.take(sub.revoked),
        onWake: (f) => {
          sub.hook = f
        },
        onHandoff: (f) => {
          sub.handoff = f
        }
      }
      return subscription
    })

  const drop = (sub: Subscriber) => {
    const lanes = sub.lanes.filter((lane) => removeFrom(byLane, lane, sub))
    const workers = removeFrom(byWorker, sub.workerInstanceId, sub) ? [sub.workerInstanceId] : []
    return { lanes, workers }
  }

  return {
    wake: (lane) => {
      const subs = byLane.get(lane)
      if (subs !== undefined) for (const s of subs) bump(s)
    },
    wakeAll: () => {
      for (const subs of byWorker.values()) {
        for (const s of subs) {
          bump(s)
          s.revoked.unsafeOffer(undefined)
        }
      }
    },
    nudge: (lane) => {
      const subs = byLane.get(lane)
      if (subs !== undefined) for (const s of subs) nudgeOne(s)
    },
    handoff: (lane) => {
      const subs = byLane.get(lane)
      if (subs === undefined) return undefined
      for (const s of subs) {
        const taken = s.handoff?.(lane)
        if (taken !== undefined) return taken
      }
      return undefined
    },
    revoke: (workerInstanceId, executionId) => {
      const subs = byWorker.get(workerInstanceId)
      if (subs !== undefined) for (const s of subs) s.revoked.unsafeOffer(executionId as ExecutionId)
    },
    hasLane: (lane) => byLane.has(lane),
    hasWorker: (workerInstanceId) => byWorker.has(workerInstanceId),
    lanes: () => [...byLane.keys()],
    workers: () => [...byWorker.keys()],
    subscribe
  }
}

// ---------------------------------------------------------------------------
// Event wake-ups (subscribeEvents)
// ---------------------------------------------------------------------------

/** The key of an event filter in the hub and on the wire: `l:` lane, `e:` execution, `f:` flow. */
export const eventScope = (filter: M.EventFilter): string => {
  switch (filter._tag) {
    case "Lane":
      return `l:${filter.laneId}`
    case "Execution":
      return `e:${filter.executionId}`
    case "Flow":
      return `f:${filter.flowId}`
  }
}

/** The event subscriptions of this process, fed by the backend's transport (as `Hub` for work). */
export interface EventHub {
  /** Counts a wake-up for every subscription of `scope` (an `eventScope`). */
  readonly wake: (scope: string) => void
  /** Counts a wake-up for every subscription (a reconnect: wake-ups may have been lost). */
  readonly wakeAll: () => void
  /** The scopes subscribed now. */
  readonly scopes: () => ReadonlyArray<string>
  /**
   * A subscription of the current scope; `listen` runs first when `scope` had none (and returns
   * once the transport delivers its wake-ups), `unlisten` when the last one of `scope` ends.
   */
  readonly subscribe: (filter: M.EventFilter) => Effect.Effect<EngineBackend.EventSubscription, EngineError, Scope.Scope>
}

export interface EventTransport {
  readonly listen: (scope: string) => Effect.Effect<void, EngineError>
  readonly unlisten: (scope: string) => Effect.Effect<void>
}

export const makeEventHub = (transport: EventTransport): EventHub => {
  const byScope = new Map<string, Set<Woken>>()
  const lock = Effect.unsafeMakeSemaphore(1)
  return {
    wake: (scope) => {
      const subs = byScope.get(scope)
      if (subs !== undefined) for (const s of subs) bump(s)
    },
    wakeAll: () => {
      for (const subs of byScope.values()) for (const s of subs) bump(s)
    },
    scopes: () => [...byScope.keys()],
    subscribe: (filter) =>
      Effect.gen(function*() {
        const scope = eventScope(filter)
        const sub: Woken = { count: 0, waiter: undefined }
        yield* Effect.acquireRelease(
          lock.withPermits(1)(Effect.suspend(() =>
            addTo(byScope, scope, sub) ?
              Effect.tapError(transport.listen(scope), () => Effect.sync(() => removeFrom(byScope, scope, sub))) :
              Effect.void
          )),
          () =>
            lock.withPermits(1)(Effect.suspend(() =>
              removeFrom(byScope, scope, sub) ? transport.unlisten(scope) : Effect.void
            ))
        )
        const subscription: EngineBackend.EventSubscription = {
          wakeups: Effect.sync(() => sub.count),
          await: (since, maxWait) =>
            Effect.suspend(() => {
              if (sub.count > since) return Effect.succeed(true)
              if (Duration.toMillis(maxWait) <= 0) return Effect.succeed(false)
              const waiter = sub.waiter ?? (sub.waiter = Deferred.unsafeMake<void>(FiberId.none))
              return Effect.map(Effect.timeoutOption(Deferred.await(waiter), maxWait), Option.isSome)
            })
        }
        return subscription
      })
  }
}
