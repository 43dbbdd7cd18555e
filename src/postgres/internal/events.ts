/**
 * Events on Postgres (docs/design/events.md; the log and its order in sql/events.sql): reads of one
 * scope, and the wake-ups of the scopes this process follows. An offset is `k.id` (after that
 * event) or `k` (after every event of position k: the end of what a read could see).
 *
 * A followed scope is registered in `event_waiter` under this layer's listener id (so that an
 * event of it sends a NOTIFY on the LISTEN connection of wakeups.ts) for `WATCH_TTL_MS`, renewed
 * well before it lapses; the rows of a process that died lapse, and trimRetention deletes them.
 */
import { randomUUID } from "node:crypto"
import { Clock, Duration, Effect, Fiber, Schema } from "effect"
import { type EngineError, Transport, validation } from "../../EngineError.js"
import type { CoreArea } from "../../internal/boundary.js"
import type { EventHub, EventTransport, WakeTransport } from "../../internal/wakeups.js"
import type * as M from "../../Model.js"
import { EngineEvent } from "../../Model.js"
import { bigint, type Caller, int, text, textArray, uuid } from "./client.js"
import type { CoreContext } from "./context.js"

const Row = Schema.Struct({
  offset: Schema.String,
  at: Schema.Number,
  kind: Schema.String,
  executionId: Schema.optional(Schema.String),
  laneId: Schema.optional(Schema.String),
  flowId: Schema.optional(Schema.String),
  attempt: Schema.optional(Schema.Number),
  num: Schema.optional(Schema.Number),
  s1: Schema.optional(Schema.String),
  s2: Schema.optional(Schema.String)
})
type Row = typeof Row.Type
const Page = Schema.Struct({
  events: Schema.Array(Row),
  end: Schema.Number,
  endId: Schema.optional(Schema.Number),
  upto: Schema.optional(Schema.Number)
})
type Page = typeof Page.Type

/** The offset of a page's end: after every event of position `end`, or after the event (`end`, `endId`). */
const endOffset = (page: Page): M.EventOffset =>
  (page.endId === undefined ? String(page.end) : `${page.end}.${page.endId}`) as M.EventOffset

/** Whether position (k, id) (id null: after every event of k) is after the page's end. */
const pastEnd = (k: number, id: number | null, page: Page): boolean =>
  k > page.end || (k === page.end && page.endId !== undefined && (id === null || id > page.endId))

/** The event a row stores (the columns of each kind: the triggers of migration 0036). */
const toEvent = (r: Row): unknown => {
  const base = {
    _tag: r.kind,
    offset: r.offset,
    at: r.at,
    ...(r.kind === "FlowStateChanged" ? {} : { executionId: r.executionId, laneId: r.laneId }),
    ...(r.flowId === undefined ? {} : { flowId: r.flowId })
  }
  switch (r.kind) {
    case "ExecutionCreated":
    case "Resumed":
      return { ...base, publicState: r.s1 }
    case "Claimed":
      return { ...base, attemptIndex: r.attempt, workerInstanceId: r.s1 }
    case "Progress":
      return {
        ...base,
        attemptIndex: r.attempt,
        ...(r.num === undefined ? {} : { percent: r.num }),
        ...(r.s1 === undefined ? {} : { message: r.s1 })
      }
    case "Completed":
    case "Suspended":
      return { ...base, ...(r.attempt === undefined ? {} : { attemptIndex: r.attempt }) }
    case "Failed":
      return {
        ...base,
        ...(r.attempt === undefined ? {} : { attemptIndex: r.attempt }),
        ...(r.s1 === undefined ? {} : { reason: r.s1 }),
        ...(r.s2 === undefined ? {} : { classification: r.s2 })
      }
    case "RetryScheduled":
      return { ...base, attemptIndex: r.attempt, retryAt: r.num, ...(r.s1 === undefined ? {} : { reason: r.s1 }) }
    case "Delayed":
      return { ...base, until: r.num }
    case "AttemptInterrupted":
      return { ...base, attemptIndex: r.attempt, cause: r.s1 }
    case "Cancelled":
      return { ...base, ...(r.s1 === undefined ? {} : { reason: r.s1 }) }
    case "StateChanged":
      return { ...base, from: r.s2, to: r.s1 }
    case "FlowStateChanged":
      return { ...base, publicFlowState: r.s1 }
    default:
      return base
  }
}

const decodeEvent = Schema.decodeUnknown(EngineEvent)

/** `k.id`; a created event read from its execution's row has a negative id (down to -2^53). */
const OFFSET = /^(0|[1-9][0-9]{0,17})(?:\.(0|-?[1-9][0-9]{0,17}))?$/

const scopeArgs = (filter: M.EventFilter) => {
  switch (filter._tag) {
    case "Lane":
      return [text("l"), text(filter.laneId)]
    case "Execution":
      return [text("e"), text(filter.executionId)]
    case "Flow":
      return [text("f"), text(filter.flowId)]
  }
}

const liveClock = Clock.make()
/** How long a lane or flow read waits, at most, for the transactions running when it started. */
const SETTLE_MAX_MS = 512

/**
 * A lane or flow read returns only the events below the oldest running transaction. A read whose
 * page is short while transactions that were running at its start may still commit is made again
 * (1, 2, 4 … 512 ms apart, about a second in all, on the live clock) until they have ended: so a
 * read returns every event committed before it began unless a transaction has been running longer
 * than that (its events come in a later read, at or after the returned offset).
 */
const settled = (read: Effect.Effect<Page, EngineError>, limit: number): Effect.Effect<Page, EngineError> =>
  Effect.gen(function*() {
    let page = yield* read
    const target = page.upto
    if (target === undefined) return page
    for (let wait = 1; page.events.length < Math.max(limit, 1) && page.end < target && wait <= SETTLE_MAX_MS; wait *= 2) {
      yield* Effect.sleep(Duration.millis(wait)).pipe(Effect.withClock(liveClock))
      page = yield* read
    }
    return page
  })

export const makeEvents = (ctx: CoreContext): CoreArea<"events"> => {
  const { callDecode, options } = ctx
  const read = (filter: M.EventFilter, k: number | null, id: number | null, limit: number) =>
    settled(callDecode("read_events", "read_events", [...scopeArgs(filter), bigint(k), bigint(id), int(limit)], Page), limit)
  return {
    readEvents: ({ filter, after, limit }) =>
      Effect.gen(function*() {
        let k: number | null = null
        let id: number | null = null
        if (after === "latest") {
          return { events: [], next: endOffset(yield* read(filter, null, null, 0)) }
        }
        if (after !== "earliest") {
          const m = OFFSET.exec(after)
          if (m === null) {
            return yield* validation("InvalidOffset", `read_events: after: not an offset of this engine (${after.length} chars)`)
          }
          k = Number(m[1])
          id = m[2] === undefined ? null : Number(m[2])
        }
        const page = yield* read(filter, k, id, limit)
        const events: Array<M.EngineEvent> = []
        for (const r of page.events) {
          events.push(
            yield* Effect.mapError(decodeEvent(toEvent(r)), (e) =>
              new Transport({ backend: "postgres", kind: "protocol", retryable: false, message: `read_events: ${e.message}` }))
          )
        }
        // a short page read all the scope holds up to its end (and never ends before `after`)
        const next = events.length === limit ?
          events[events.length - 1]!.offset :
          k !== null && pastEnd(k, id, page) ?
          after as M.EventOffset :
          endOffset(page)
        return { events, next }
      }),
    subscribeEvents: (filter) => {
      const hub = options.events
      if (hub === undefined) {
        return Effect.fail(new Transport({
          backend: "postgres",
          kind: "other",
          retryable: false,
          message: "event wake-ups need a LISTEN connection of their own (listenUrl, or a PgClient in context)"
        }))
      }
      return hub.subscribe(filter)
    }
  }
}

/** How long a followed scope stays registered without renewal (ms), and how often it is renewed. */
const WATCH_TTL_MS = 180_000
const RENEW_EVERY = Duration.seconds(60)
/** How long the LISTEN connection stays open after the last followed scope. */
const LINGER = Duration.seconds(10)

/**
 * The transport of the event hub: the LISTEN connection of `listener` (opened with the first
 * scope, closed with the last scope and the last worker subscription), the registration of each
 * scope, and while any is followed a fiber renewing the registrations (on the live clock).
 */
export const makeEventTransport = (caller: Caller, listener: WakeTransport, hubOf: () => EventHub): EventTransport => {
  const id = randomUUID()
  let renewing: Fiber.RuntimeFiber<unknown> | undefined
  const watch = (scopes: ReadonlyArray<string>): Effect.Effect<void, EngineError> =>
    scopes.length === 0 ?
      Effect.void :
      Effect.asVoid(caller.call("subscribe_events", "event_watch", [textArray(scopes), uuid(id), bigint(WATCH_TTL_MS)]))
  const renew = Effect.suspend(() => Effect.ignoreLogged(watch(hubOf().scopes()))).pipe(
    Effect.delay(RENEW_EVERY),
    Effect.forever,
    Effect.withClock(Clock.make())
  )
  // the connection stays open a while after the last scope (a producer awaiting one result after
  // another would otherwise open it again for each)
  let closing: Fiber.RuntimeFiber<unknown> | undefined
  const cancelClose = Effect.suspend(() => {
    const fiber = closing
    closing = undefined
    return fiber === undefined ? Effect.void : Fiber.interrupt(fiber)
  })
  const closeLater = Effect.gen(function*() {
    yield* Effect.sleep(LINGER)
    if (hubOf().scopes().length > 0) return
    const fiber = renewing
    renewing = undefined
    if (fiber !== undefined) yield* Fiber.interrupt(fiber)
    yield* listener.unlisten([], [])
  }).pipe(Effect.withClock(Clock.make()))
  return {
    listen: (scope) =>
      Effect.gen(function*() {
        yield* cancelClose
        yield* listener.listen([], [])
        yield* watch([scope])
        if (renewing === undefined) renewing = yield* Effect.forkDaemon(Effect.interruptible(renew))
      }),
    unlisten: (scope) =>
      Effect.gen(function*() {
        yield* Effect.ignoreLogged(caller.call("subscribe_events", "event_unwatch", [textArray([scope]), uuid(id)]))
        if (hubOf().scopes().length === 0 && closing === undefined) {
          closing = yield* Effect.forkDaemon(Effect.interruptible(Effect.ensuring(
            closeLater,
            Effect.sync(() => void (closing = undefined))
          )))
        }
      })
  }
}
