/**
 * Wake-ups over Valkey pub/sub: one subscriber connection per layer, opened at the first
 * subscription, subscribed to `<prefix>:wake:<lane>` for the lanes of this process's workers and to
 * `<prefix>:revoke:<worker instance>` for their leases (see FF.call_end in helpers.lua), and to
 * `<prefix>:ev:<scope>` for the event scopes subscribed here (events.ts). On a
 * cluster it connects to any node: a PUBLISH reaches every node's subscribers. A dropped
 * connection is opened again (on a cluster, to any node the client knows), subscribed to every
 * channel, and then counts as a wake-up of every subscription, so work announced while it was down
 * is claimed.
 *
 * And the due timers of idle workers (`makeDueTimers`): when the lanes' delayed work comes due
 * (their due hints, `<prefix>:due:<lane>`), and its promotion by an idle worker at that time.
 */
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Option, Schema, type Scope } from "effect"
import { type EngineError, Transport } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import type { EventHub, Hub, WakeTransport } from "../../internal/wakeups.js"
import { Limits } from "../../Limits.js"
import type { Client } from "./client.js"
import type { CoreContext, Fx } from "./context.js"
import type { Redis } from "./driver.js"
import { fromValkeyError } from "./errors.js"
import { decodeFields, IntStr, type Keys, pipelineErrors } from "./plumbing.js"

const RECONNECT_MIN_MS = 50
const RECONNECT_MAX_MS = 2_000

export interface Subscriber extends WakeTransport {
  /** The subscriber connection now (for tests that drop it). */
  readonly current: () => Redis | undefined
  /** Subscribes to an event channel (`keys.eventChannel`); returns once it is live (or will be on the next connection). */
  readonly listenChannel: (channel: string) => Effect.Effect<void, EngineError>
  readonly unlistenChannel: (channel: string) => Effect.Effect<void>
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
  scope: Scope.Scope,
  eventHubOf: () => EventHub,
  /** Run with a lane's wake-up as its message is read, before the hub counts it (`makeWakeClaims`). */
  claimOf: () => ((lane: string) => void) | undefined = () => undefined
): Subscriber => {
  const wakePrefix = keys.wakeChannel("")
  const revokePrefix = keys.revokeChannel("")
  const eventPrefix = keys.eventChannel("")
  let live: Redis | undefined
  let loop: Fiber.RuntimeFiber<void> | undefined

  const channelsOf = (lanes: ReadonlyArray<string>, workers: ReadonlyArray<string>) => [
    ...lanes.map(keys.wakeChannel),
    ...workers.map(keys.revokeChannel)
  ]

  const onMessage = (channel: string, message: string) => {
    const hub = hubOf()
    if (channel.startsWith(wakePrefix)) {
      const lane = channel.slice(wakePrefix.length)
      // (a defect of the claim neither reaches the connection's reader nor keeps the wake-up
      // from being counted: the worker then claims at the wake-up as without it)
      try {
        claimOf()?.(lane)
      } catch {
        // (nothing to do: see above)
      }
      hub.wake(lane)
    }
    else if (channel.startsWith(revokePrefix)) hub.revoke(channel.slice(revokePrefix.length), message)
    else if (channel.startsWith(eventPrefix)) eventHubOf().wake(channel.slice(eventPrefix.length))
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
      const events = eventHubOf()
      yield* subscribeAll(r, [...channelsOf(hub.lanes(), hub.workers()), ...events.scopes().map(keys.eventChannel)])
      live = r
      if (!(yield* Deferred.succeed(first, undefined))) {
        hub.wakeAll()
        events.wakeAll()
      }
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

  const listenChannel = (channel: string) =>
    Effect.gen(function*() {
      yield* start
      const r = live
      if (r === undefined) return
      yield* subscribeAll(r, [channel]).pipe(Effect.catchAll(() => Effect.void))
    })

  return {
    current: () => live,
    listenChannel,
    unlistenChannel: (channel) =>
      Effect.suspend(() => {
        const r = live
        if (r === undefined) return Effect.void
        return Effect.ignore(Effect.tryPromise(() => r.unsubscribe(channel)))
      }),
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

/** The due timers of a lane's idle workers (the hub's `arm` and `promoteDue`). */
export const makeDueTimers = (ctx: CoreContext) => {
  const { call, client, keys, N, settings } = ctx

  /** The earliest due time of the lanes' due hints (a lower bound of their delayed work's). */
  const nextDue = (lanes: ReadonlyArray<Ids.LaneId>): Fx<Option.Option<number>> =>
    Effect.map(
      Effect.forEach(
        lanes,
        (lane) => client.run("ZRANGE due", (c) => c.zrange(keys.due(lane), 0, 0, "WITHSCORES")),
        { concurrency: "unbounded" }
      ),
      (heads) => {
        let due: number | undefined
        for (const head of heads) {
          const at = head[1] === undefined ? NaN : Number(head[1])
          if (Number.isFinite(at) && (due === undefined || at < due)) due = at
        }
        return Option.fromNullable(due)
      }
    )

  /** Partitions one promoteDue visits at most per lane. */
  const DUE_VISITS = 16
  const PromoteLane = Schema.Tuple(IntStr, Schema.Literal("0", "1"), Schema.String)

  /**
   * Promotes the due delayed work of `lanes`: each partition whose due hint has come (the store's
   * clock decides) gets one ff_promote_lane, which also sets the hint to the partition's next due
   * time (on a cluster this layer does, then checks again, as `dropHint` does).
   */
  const promoteDue = (lanes: ReadonlyArray<Ids.LaneId>): Fx<number> =>
    Effect.gen(function*() {
      const now = settings.clock === "effect" ? Number(yield* ctx.nowArg) : Date.now()
      let promoted = 0
      for (const lane of lanes) {
        const due = yield* client.run(
          "ZRANGEBYSCORE due",
          (c) => c.zrangebyscore(keys.due(lane), "-inf", String(now), "LIMIT", 0, DUE_VISITS)
        )
        for (const member of due) {
          const partition = Number(member)
          if (!Number.isInteger(partition) || partition < 0 || partition >= N) {
            yield* client.run("ZREM due", (c) => c.zrem(keys.due(lane), member))
            continue
          }
          const env = yield* call("promote_lane", ctx.flowTarget(partition), { lane, batch: Limits.batchItems })
          const [n, , next] = yield* decodeFields("ff_promote_lane", PromoteLane, env.fields)
          promoted += n
          if (client.isCluster) yield* fixDue(lane, partition, next)
        }
      }
      return promoted
    })

  /**
   * A cluster's due hint after a promotion: the partition's next due time, or none. The write
   * replaces whatever a delayed create wrote meanwhile (its hint may be earlier than `next`), so
   * the partition's head is read after it and, when earlier than what was written, put back with
   * the lane's wake-up (its idle workers armed their timers by the hint), as `dropHint` does.
   */
  const fixDue = (lane: Ids.LaneId, partition: number, next: string): Fx<void> =>
    Effect.gen(function*() {
      const member = String(partition)
      if (next !== "") yield* client.run("ZADD due", (c) => c.zadd(keys.due(lane), next, member))
      else yield* client.run("ZREM due", (c) => c.zrem(keys.due(lane), member))
      const head = yield* client.run(
        "ZRANGE delayed",
        (c) => c.zrange(`${keys.flow(partition)}:l:${lane}:delayed`, 0, 0, "WITHSCORES")
      )
      const again = head[1]
      if (again !== undefined && (next === "" || Number(again) < Number(next))) {
        yield* client.run("ZADD due + PUBLISH wake", (c) =>
          c.pipeline().zadd(keys.due(lane), "LT", again, member).publish(keys.wakeChannel(lane), "1")
            .exec().then(pipelineErrors))
      }
    })

  return { nextDue, promoteDue }
}
