/**
 * Wake-ups over LISTEN/NOTIFY: one connection per layer, of its own (never a pooled one: a LISTEN
 * belongs to its session), opened at the first subscription and listening on the schema's channel
 * (`ffi_channel()` in wakeups.sql). A notification is `e` TAB scope (an event of a followed scope:
 * events.ts), `w` TAB lane (work became claimable there) or
 * `r` TAB worker instance TAB execution id (a lease ended by another hand). A dropped connection
 * is opened again, LISTENs again and then counts as a wake-up of every subscription, so work
 * announced while it was down is claimed. The connection closes with the last subscription.
 *
 * A subscription (`subscribeWork`, below) registers the idle worker on each of its lanes
 * (ff_lane_wait: work made claimable there is then notified, and the reply gives the lane's
 * earliest due time), renews that registration while the worker waits (it lapses after
 * `WAITER_TTL_MS`, so that the rows of a process that died go), withdraws it when busy
 * (ff_lane_unwait), and promotes its lanes' due work (ff_promote_due) when that time comes.
 */
import { createHash } from "node:crypto"
import { Clock, Deferred, Duration, Effect, Exit, Fiber, Option, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, Transport } from "../../EngineError.js"
import type { BackendCore } from "../../internal/boundary.js"
import type { EventHub, Hub, WakeTransport } from "../../internal/wakeups.js"
import { DEFAULT_BATCH_SIZE } from "../../Maintenance.js"
import { bigint, int, quoteIdent, text, textArray } from "./client.js"
import type { CoreContext } from "./context.js"
import { Pg } from "./driver.js"
import { BACKEND } from "./errors.js"

const RECONNECT_MIN_MS = 50
const RECONNECT_MAX_MS = 2_000
/** The `application_name` of the LISTEN connection (for operators, and tests that drop it). */
export const LISTEN_APPLICATION_NAME = "flowfabric-wakeups"

/** The NOTIFY channel of a schema (as `ffi_channel()`). */
export const channelOf = (schema: string): string => `ff_${createHash("md5").update(schema).digest("hex")}`

const failure = (message: string, cause?: unknown): Transport =>
  new Transport({ backend: BACKEND, kind: "transport", retryable: true, message, cause })

/**
 * The transport of `hub` (made with it: `hubOf` returns it). `config` opens the connection; the
 * reconnect loop runs on the live clock.
 */
export const makeListener = (
  config: Pg.ClientConfig,
  schema: string,
  hubOf: () => Hub,
  eventsOf: () => EventHub | undefined = () => undefined,
  /**
   * Run with a lane's wake-up as its notification is read (`makeWakeClaims`): `true` when it claims
   * for a waiting worker, and then counts the wake-up itself (`count`) once it handed the claim
   * over; otherwise the hub counts it at once.
   */
  wakeClaimsOf: () => ((lane: string, count: () => void) => boolean) | undefined = () => undefined
): WakeTransport => {
  const channel = channelOf(schema)
  let loop: Fiber.RuntimeFiber<never> | undefined

  const onNotification = (msg: Pg.Notification) => {
    if (msg.channel !== channel || msg.payload === undefined) return
    const parts = msg.payload.split("\t")
    const hub = hubOf()
    if (parts[0] === "w" && parts.length === 2) {
      const lane = parts[1]!
      if (wakeClaimsOf()?.(lane, () => hub.wake(lane)) !== true) hub.wake(lane)
    } else if (parts[0] === "r" && parts.length === 3) hub.revoke(parts[1]!, parts[2]!)
    else if (parts[0] === "e" && parts.length === 2) eventsOf()?.wake(parts[1]!)
  }

  /** One connection's life; `first` completes once the first one listens, later ones wake everyone. */
  const session = (first: Deferred.Deferred<void, EngineError>) =>
    Effect.gen(function*() {
      const client = new Pg.Client({ ...config, application_name: LISTEN_APPLICATION_NAME })
      const ended = yield* Deferred.make<void>()
      client.on("error", () => Deferred.unsafeDone(ended, Exit.void))
      client.on("end", () => Deferred.unsafeDone(ended, Exit.void))
      client.on("notification", onNotification)
      yield* Effect.addFinalizer(() => Effect.promise(() => client.end().catch(() => undefined)))
      yield* Effect.tryPromise({ try: () => client.connect(), catch: (e) => failure("wake-ups: cannot connect", e) })
      yield* Effect.tryPromise({
        try: () => client.query(`LISTEN ${quoteIdent(channel)}`),
        catch: (e) => failure("wake-ups: LISTEN failed", e)
      })
      if (!(yield* Deferred.succeed(first, undefined))) {
        hubOf().wakeAll()
        eventsOf()?.wakeAll()
      }
      yield* Deferred.await(ended)
    }).pipe(Effect.scoped)

  const start = Effect.suspend(() => {
    if (loop !== undefined) return Effect.void
    return Effect.gen(function*() {
      const first = yield* Deferred.make<void, EngineError>()
      const run = Effect.gen(function*() {
        let wait = RECONNECT_MIN_MS
        for (;;) {
          const exit = yield* Effect.exit(session(first))
          if (Exit.isFailure(exit)) {
            yield* Effect.logDebug("flowfabric postgres: the wake-up connection failed; reconnecting", exit.cause)
            yield* Deferred.fail(first, failure("wake-ups: cannot open the LISTEN connection"))
            yield* Effect.sleep(Duration.millis(wait))
            wait = Math.min(RECONNECT_MAX_MS, wait * 2)
          } else {
            wait = RECONNECT_MIN_MS
            yield* Effect.sleep(Duration.millis(wait))
          }
        }
      }).pipe(Effect.withClock(Clock.make()))
      // (subscriptions start inside an acquire, which is uninterruptible: the loop is not)
      loop = yield* Effect.forkDaemon(Effect.interruptible(run))
      // a first connection that fails leaves the loop trying, and the workers polling meanwhile
      yield* Effect.ignore(Deferred.await(first))
    })
  })

  return {
    // one channel for every lane and worker: the hub picks what concerns this process
    listen: () => start,
    unlisten: () =>
      Effect.suspend(() => {
        const running = loop
        if (running === undefined || hubOf().workers().length > 0 || (eventsOf()?.scopes().length ?? 0) > 0) {
          return Effect.void
        }
        loop = undefined
        return Fiber.interrupt(running)
      })
  }
}

/**
 * How long a waiting worker's registration lasts without being renewed, and how often it is
 * renewed while the worker waits (whatever its idle poll).
 */
const WAITER_TTL_MS = 120_000
const RENEW_EVERY = Duration.millis(WAITER_TTL_MS / 3)
const LaneWait = Schema.Struct({ dueAt: Schema.NullOr(Schema.Number), fresh: Schema.Boolean })

export const makeWakeups = (ctx: CoreContext): Pick<BackendCore, "subscribeWork"> => {
  const { callDecode, callVoid, options } = ctx
  const subscribeWork: BackendCore["subscribeWork"] = ({ lanes, workerInstanceId }) => {
    const hub = options.hub
    if (hub === undefined) {
      return Effect.fail(new Transport({
        backend: "postgres",
        kind: "other",
        retryable: false,
        message: "wake-ups need a LISTEN connection of their own (listenUrl, or a PgClient in context)"
      }))
    }
    const laneWait = Effect.forEach(
      lanes,
      (lane) => callDecode("lane_wait", "lane_wait", [text(lane), text(workerInstanceId), bigint(WAITER_TTL_MS)], LaneWait),
      // one transaction per lane (each holds that lane's lock alone), a few at a time
      { concurrency: 4 }
    )
    /**
     * While registered, the registration is renewed every `RENEW_EVERY` (on the clock the store's
     * time comes from: Effect's in "effect" mode, the live one otherwise), each renewal whole
     * (uninterruptible: a disarm that stops the renewals then withdraws the registration after the
     * last one). A renewal that finds the worker unregistered (its row lapsed and went meanwhile,
     * so work made claimable since may have gone unnotified) wakes the lane's subscriptions.
     */
    let renewing: Fiber.RuntimeFiber<void> | undefined
    const renew = Effect.delay(
      Effect.uninterruptible(Effect.flatMap(
        Effect.either(laneWait),
        (r) =>
          r._tag === "Left" ?
            Effect.logWarning("cannot renew the wake-up registration of a waiting worker", r.left) :
            Effect.sync(() => r.right.forEach((w, i) => w.fresh && hub.wake(lanes[i]!)))
      )),
      RENEW_EVERY
    ).pipe(Effect.forever, Effect.interruptible, (e) => (options.clock === "effect" ? e : Effect.withClock(e, Clock.make())))
    const startRenewing = Effect.suspend(() =>
      renewing === undefined ? Effect.map(Effect.forkDaemon(renew), (f) => void (renewing = f)) : Effect.void
    )
    const stopRenewing = Effect.suspend(() => {
      const fiber = renewing
      renewing = undefined
      return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
    })
    const arm = Effect.zipRight(
      startRenewing,
      Effect.map(laneWait, (waits): EngineBackend.Armed => {
        let due: number | undefined
        for (const w of waits) if (w.dueAt !== null && (due === undefined || w.dueAt < due)) due = w.dueAt
        return { dueAt: Option.fromNullable(due), claimAgain: waits.some((w) => w.fresh) }
      })
    )
    // (after the hub's own finalizer, which withdraws the registration: the renewals stop anyway)
    return Effect.zipRight(
      Effect.addFinalizer(() => stopRenewing),
      hub.subscribe({ lanes, workerInstanceId }, {
        arm,
        disarm: Effect.zipRight(stopRenewing, callVoid("lane_unwait", "lane_unwait", [textArray(lanes), text(workerInstanceId)])),
        promoteDue: callDecode("promote_due", "promote_due", [textArray(lanes), int(DEFAULT_BATCH_SIZE)], Schema.Int)
      })
    )
  }
  return { subscribeWork }
}
