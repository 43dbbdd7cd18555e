/**
 * Wake-ups over Valkey pub/sub: one subscriber connection per layer, opened at the first
 * subscription, subscribed to `<prefix>:wake:<lane>` for the lanes of this process's workers and to
 * `<prefix>:revoke:<worker instance>` for their leases (see FF.call_end in helpers.lua). On a
 * cluster it connects to any node: a PUBLISH reaches every node's subscribers. A dropped
 * connection is opened again (on a cluster, to any node the client knows), subscribed to every
 * channel, and then counts as a wake-up of every subscription, so work announced while it was down
 * is claimed.
 */
import { Clock, Deferred, Duration, Effect, Exit, Fiber, type Scope } from "effect"
import { type EngineError, Transport } from "../../EngineError.js"
import type { Hub, WakeTransport } from "../../internal/wakeups.js"
import type { Client } from "./client.js"
import type { Redis } from "./driver.js"
import { fromValkeyError } from "./errors.js"
import type { Keys } from "./plumbing.js"

const RECONNECT_MIN_MS = 50
const RECONNECT_MAX_MS = 2_000

export interface Subscriber extends WakeTransport {
  /** The subscriber connection now (for tests that drop it). */
  readonly current: () => Redis | undefined
}

/**
 * The transport of `hub` (`hubOf` gives the hub: it is made with this transport). The
 * connection's loop runs in `scope` on the live clock (a test's `TestClock` does not hold back a
 * reconnect).
 */
export const makeSubscriber = (
  client: Client,
  keys: Keys,
  hubOf: () => Hub,
  scope: Scope.Scope
): Subscriber => {
  const wakePrefix = keys.wakeChannel("")
  const revokePrefix = keys.revokeChannel("")
  let live: Redis | undefined
  let loop: Fiber.RuntimeFiber<void> | undefined

  const channelsOf = (lanes: ReadonlyArray<string>, workers: ReadonlyArray<string>) => [
    ...lanes.map(keys.wakeChannel),
    ...workers.map(keys.revokeChannel)
  ]

  const onMessage = (channel: string, message: string) => {
    const hub = hubOf()
    if (channel.startsWith(wakePrefix)) hub.wake(channel.slice(wakePrefix.length))
    else if (channel.startsWith(revokePrefix)) hub.revoke(channel.slice(revokePrefix.length), message)
  }

  /** A new connection: on a cluster to a node picked at random, else like the client's. */
  const fresh = (): Redis => {
    const options = { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false }
    const connection = client.connection
    if (!client.isCluster) return (connection as Redis).duplicate(options)
    const nodes = (connection as unknown as { nodes: (role: "all") => Array<Redis> }).nodes("all")
    const node = nodes[Math.floor(Math.random() * nodes.length)]
    if (node === undefined) throw new Error("the cluster has no known node")
    return node.duplicate(options)
  }

  const subscribeAll = (r: Redis, channels: ReadonlyArray<string>) =>
    channels.length === 0 ?
      Effect.void :
      Effect.tryPromise({ try: () => r.subscribe(...channels), catch: (e) => fromValkeyError("SUBSCRIBE", e, false) })

  /**
   * One connection's life: connect, subscribe to every channel, serve until it ends. `first`
   * completes when the first connection is live; any later one wakes every subscription (work
   * announced while no connection listened is claimed now).
   */
  const session = (first: Deferred.Deferred<void, EngineError>) =>
    Effect.gen(function*() {
      const r = yield* Effect.try({ try: fresh, catch: (e) => fromValkeyError("connect subscriber", e, false) })
      const ended = yield* Deferred.make<void>()
      r.on("error", () => undefined)
      r.on("end", () => Deferred.unsafeDone(ended, Exit.void))
      r.on("message", onMessage)
      yield* Effect.addFinalizer(() => Effect.sync(() => r.disconnect()))
      yield* Effect.tryPromise({ try: () => r.connect(), catch: (e) => fromValkeyError("connect subscriber", e, false) })
      const hub = hubOf()
      yield* subscribeAll(r, channelsOf(hub.lanes(), hub.workers()))
      live = r
      if (!(yield* Deferred.succeed(first, undefined))) hub.wakeAll()
      yield* Deferred.await(ended)
    }).pipe(
      Effect.scoped,
      Effect.ensuring(Effect.sync(() => {
        live = undefined
      }))
    )

  const start = Effect.suspend(() => {
    if (loop !== undefined) return Effect.void
    return Effect.gen(function*() {
      const first = yield* Deferred.make<void, EngineError>()
      const run = Effect.gen(function*() {
        let wait = RECONNECT_MIN_MS
        for (;;) {
          const exit = yield* Effect.exit(session(first))
          if (Exit.isFailure(exit)) {
            yield* Effect.logDebug("flowfabric valkey: the wake-up connection failed; reconnecting", exit.cause)
            yield* Deferred.fail(first, new Transport({
              backend: "valkey",
              kind: "other",
              retryable: true,
              message: "cannot open the wake-up connection"
            }))
            yield* Effect.sleep(Duration.millis(wait))
            wait = Math.min(RECONNECT_MAX_MS, wait * 2)
          } else {
            wait = RECONNECT_MIN_MS
            yield* Effect.sleep(Duration.millis(wait))
          }
        }
      }).pipe(Effect.withClock(Clock.make()))
      // (subscriptions start inside an acquire, which is uninterruptible: the loop is not)
      loop = yield* Effect.forkIn(Effect.interruptible(run), scope)
      // a first connection that fails leaves the loop trying, and the workers polling meanwhile
      yield* Effect.ignore(Deferred.await(first))
    })
  })

  return {
    current: () => live,
    listen: (lanes, workers) =>
      Effect.gen(function*() {
        yield* start
        const r = live
        // (not connected: the next connection subscribes to every channel, then wakes everyone)
        if (r === undefined) return
        yield* subscribeAll(r, channelsOf(lanes, workers)).pipe(Effect.catchAll(() => Effect.void))
      }),
    unlisten: (lanes, workers) =>
      Effect.suspend(() => {
        const r = live
        const channels = channelsOf(lanes, workers)
        if (r === undefined || channels.length === 0) return Effect.void
        return Effect.ignore(Effect.tryPromise(() => r.unsubscribe(...channels)))
      })
  }
}
