/**
 * Events over Valkey (docs/design/events.md, "Valkey"): the reads of the per-partition event
 * streams the function library writes with every transition (lua/events.lua), and the
 * subscriptions' wake-ups.
 *
 * - An execution's or a flow's events are on one partition: `ff_read_events` scans its stream
 *   from the offset (a stream id) in bounded steps, and this layer calls again until the page is
 *   full or the stream's end is reached.
 * - A lane's events are on every partition: each partition keeps the lane's own stream (ids of
 *   its events), read by `ff_read_lane_events_across` for a group of partitions (groups.ts:
 *   one call on a standalone server, one per node on a cluster). A read fetches a few
 *   events from each partition and merges them by position (`Position`), fetching again from a
 *   partition whose fetched events ran out while it has more, so a page is full unless every
 *   partition is at its end.
 */
import { Clock, Duration, Effect, Schedule, type Scope } from "effect"
import type { EngineError } from "../../EngineError.js"
import { invalidInput, validation } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import * as IdsM from "../../Ids.js"
import type { CoreArea } from "../../internal/boundary.js"
import { eventScope, type EventHub, type EventTransport } from "../../internal/wakeups.js"
import type * as M from "../../Model.js"
import type { CoreContext, Fx } from "./context.js"
import { makePartitionGroups } from "./groups.js"
import type { Target } from "./plumbing.js"

// ---------------------------------------------------------------------------
// Positions
// ---------------------------------------------------------------------------

interface Id {
  readonly ms: number
  readonly seq: number
}

const ID = /^(\d{1,16})-(\d{1,16})$/
const parseId = (s: string): Id | undefined => {
  const m = ID.exec(s)
  return m === null ? undefined : { ms: Number(m[1]), seq: Number(m[2]) }
}
const ZERO = "0-0"
/** The largest sequence of a stream id: `<ms>-MAX_SEQ` is after every id of that ms. */
const MAX_SEQ = "18446744073709551615"

/**
 * A position in the order of every event of the engine: (ms, partition, sequence), ms and
 * sequence those of the event's id in its partition's stream. An event's offset is its position,
 * written `<partition>:<ms>-<seq>`; the same in every filter's read. The end of a lane read is
 * the position after every event before a time: partition N (one past the last).
 */
interface Position {
  readonly p: number
  readonly ms: number
  readonly seq: number
}

const POSITION = /^(\d{1,5}):(\d{1,16})-(\d{1,16})$/
const parsePosition = (s: string, n: number): Position | undefined => {
  const m = POSITION.exec(s)
  if (m === null) return undefined
  const pos = { p: Number(m[1]), ms: Number(m[2]), seq: Number(m[3]) }
  return pos.p <= n && Number.isSafeInteger(pos.ms) && Number.isSafeInteger(pos.seq) ? pos : undefined
}
const offsetOf = (p: number, id: string) => `${p}:${id}` as M.EventOffset

/** The id of partition `p`'s stream after which the events come that are after `pos` (exclusive). */
const afterIn = (pos: Position, p: number): string =>
  p === pos.p ? `${pos.ms}-${pos.seq}` : p < pos.p ? `${pos.ms}-${MAX_SEQ}` : pos.ms === 0 ? "0-0" : `${pos.ms - 1}-${MAX_SEQ}`

const invalidOffset = (offset: string) =>
  validation("InvalidOffset", `read_events: after: not an offset of this engine (${offset.length} chars)`)

// ---------------------------------------------------------------------------
// Entries
// ---------------------------------------------------------------------------

/** One stored event: its id and its four fields (lua/events.lua). */
interface Raw {
  readonly id: string
  readonly e: string
  readonly l: string
  readonly f: string
  readonly d: string
}

const rawsOf = (fields: ReadonlyArray<string>, from: number): Array<Raw> => {
  const out: Array<Raw> = []
  for (let i = from; i + 4 < fields.length; i += 5) {
    out.push({ id: fields[i]!, e: fields[i + 1]!, l: fields[i + 2]!, f: fields[i + 3]!, d: fields[i + 4]! })
  }
  return out
}

/** The event of entry `r`, with offset `offset`; undefined for an entry this library cannot read. */
const decodeEvent = (r: Raw, offset: string): M.EngineEvent | undefined => {
  const id = parseId(r.id)
  if (id === undefined) return undefined
  const parts = r.d.split("|")
  const code = parts[0]
  const at = parts[1] === "" || parts[1] === undefined ? id.ms : Number(parts[1])
  const x = parts.slice(2)
  /** Field i, the last one taking the rest of the text (free text may hold "|"). */
  const rest = (i: number) => x.slice(i).join("|")
  const int = (s: string | undefined) => Number(s)
  if (code === "F") {
    return { _tag: "FlowStateChanged", offset: offset as M.EventOffset, at, flowId: r.f as Ids.FlowId, publicFlowState: x[0]! }
  }
  const c = {
    offset: offset as M.EventOffset,
    at,
    executionId: r.e as Ids.ExecutionId,
    laneId: r.l as Ids.LaneId,
    ...(r.f === "" ? {} : { flowId: r.f as Ids.FlowId })
  }
  const attempt = (s: string | undefined) =>
    s === undefined || s === "" ? {} : { attemptIndex: int(s) as Ids.AttemptIndex }
  const text = <K extends string>(k: K, s: string | undefined) =>
    (s === undefined || s === "" ? {} : { [k]: s }) as Partial<Record<K, string>>
  switch (code) {
    case "C":
      return { _tag: "ExecutionCreated", ...c, publicState: x[0] as M.PublicState }
    case "K":
      return { _tag: "Claimed", ...c, attemptIndex: int(x[0]) as Ids.AttemptIndex, workerInstanceId: rest(1) as Ids.WorkerInstanceId }
    case "P":
      return {
        _tag: "Progress",
        ...c,
        attemptIndex: int(x[0]) as Ids.AttemptIndex,
        ...(x[1] === undefined || x[1] === "" ? {} : { percent: int(x[1]) }),
        ...(x.length > 2 ? text("message", rest(2)) : {})
      }
    case "D":
      return { _tag: "Completed", ...c, ...attempt(x[0]) }
    case "X":
      return {
        _tag: "Failed",
        ...c,
        ...attempt(x[0]),
        ...(x[1] === undefined || x[1] === "" ? {} : { classification: x[1] as M.FailureClass }),
        ...text("reason", rest(2))
      }
    case "R":
      return {
        _tag: "RetryScheduled",
        ...c,
        attemptIndex: int(x[0]) as Ids.AttemptIndex,
        retryAt: int(x[1]),
        ...(x.length > 2 ? { reason: rest(2) } : {})
      }
    case "Y":
      return { _tag: "Delayed", ...c, until: int(x[0]) }
    case "S":
      return { _tag: "Suspended", ...c, ...attempt(x[0]) }
    case "U":
      return { _tag: "Resumed", ...c, publicState: x[0] as M.PublicState }
    case "I":
      return {
        _tag: "AttemptInterrupted",
        ...c,
        attemptIndex: int(x[0]) as Ids.AttemptIndex,
        cause: x[1] === "lease_revoked" ? "lease_revoked" : "lease_expired"
      }
    case "N":
      return { _tag: "Cancelled", ...c, ...text("reason", rest(0)) }
    case "E":
      return { _tag: "Expired", ...c }
    case "Z":
      return { _tag: "Skipped", ...c }
    case "T":
      return { _tag: "StateChanged", ...c, from: x[0] as M.PublicState, to: x[1] as M.PublicState }
    default:
      return undefined
  }
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/** Events fetched from one partition at a time on a lane read (more when they run out). */
const LANE_FETCH_FIRST = 16
const LANE_FETCH_MORE = 128

interface Share {
  /** Where the next fetch starts (exclusive; "earliest" / "latest" before the first). */
  from: string
  buf: Array<{ readonly raw: Raw; readonly id: Id }>
  more: boolean
  /** The partition's server clock (ms) at its first fetch. */
  clock: number
}

export const makeEvents = (ctx: CoreContext, hub: EventHub): CoreArea<"events"> => {
  const { call, ex, flowOf, flowTarget, N, settings } = ctx
  const groups = makePartitionGroups(ctx)

  /** An execution's or a flow's events: partition `p`'s stream, scanned in bounded calls. */
  const readOne = (
    p: number,
    target: Target,
    who: { readonly execution_id: string } | { readonly flow_id: string },
    after: M.EventStart,
    limit: number
  ): Fx<M.EventPage> =>
    Effect.gen(function*() {
      const events: Array<M.EngineEvent> = []
      let from: string = after
      let exact = false
      if (after !== "earliest" && after !== "latest") {
        const pos = parsePosition(after, N)
        if (pos === undefined) return yield* Effect.fail(invalidOffset(after))
        from = afterIn(pos, p)
        exact = pos.p === p
      }
      for (let round = 0; round < 10_000; round++) {
        const env = yield* call("read_events", target, { ...who, after: from, exact, limit: limit - events.length }, [], true)
        const [next = ZERO, more = "0"] = env.fields
        for (const raw of rawsOf(env.fields, 2)) {
          const ev = decodeEvent(raw, offsetOf(p, raw.id))
          if (ev !== undefined) events.push(ev)
        }
        if (events.length >= limit) return { events, next: events[events.length - 1]!.offset }
        if (more !== "1") return { events, next: offsetOf(p, next) }
        from = next
        exact = true
      }
      return yield* invalidInput("read_events: the stream did not end")
    })

  /** Takes one partition's answer to a lane read (the fields after its `{1, "OK", ""}`) into `s`. */
  const takeShare = (s: Share, fields: ReadonlyArray<string>): void => {
    const [end = ZERO, last = "", more = "0", start = "", clock = "0"] = fields
    if (s.from === "earliest" || s.from === "latest") s.from = start === "" ? end : start
    s.clock = Number(clock)
    s.more = more === "1"
    if (last !== "") s.from = last
    for (const raw of rawsOf(fields, 5)) {
      const id = parseId(raw.id)
      if (id !== undefined) s.buf.push({ raw, id })
    }
  }

  /**
   * Fetches the lane's events after `shares[p].from` on each partition `p` of `ask`, `count` at
   * most from each: one call per group of partitions (groups.ts: every partition on a standalone
   * server, one group per node on a cluster); a group whose call fails (a stale slot map) is
   * asked one partition per call.
   */
  const fetchShares = (lane: Ids.LaneId, shares: ReadonlyArray<Share>, ask: ReadonlyArray<number>, count: number) => {
    const one = (p: number) =>
      Effect.map(
        call("read_lane_events", flowTarget(p), { lane_id: lane, after: shares[p]!.from, limit: count }, [], true),
        (env) => takeShare(shares[p]!, env.fields)
      )
    const group = (parts: ReadonlyArray<number>) =>
      Effect.map(
        call("read_lane_events_across", flowTarget(parts[0]!), {
          prefix: settings.prefix,
          lane_id: lane,
          parts: parts.map((p) => [p, shares[p]!.from, count])
        }, [], true),
        (env) => {
          let at = 0
          for (const p of parts) {
            const n = Number(env.fields[at])
            takeShare(shares[p]!, env.fields.slice(at + 1, at + 1 + n))
            at += 1 + n
          }
        }
      )
    const alone = (parts: ReadonlyArray<number>) =>
      Effect.forEach(parts, one, { concurrency: "unbounded", discard: true })
    return Effect.forEach(
      groups(ask),
      (parts) => parts.length === 1 ? alone(parts) : Effect.catchAll(group(parts), () => alone(parts)),
      { concurrency: "unbounded", discard: true }
    )
  }

  /** Reads of a lane wait this long for the events of the current millisecond, at most. */
  const HOLD_ROUNDS = 20

  /**
   * A lane's events, merged over the partitions by position. Only events before the horizon (the
   * lowest server clock the partitions answered) are taken: every event written later has a
   * later position, so a reader that goes on from the last position skips nothing. A page cut
   * short by the horizon is read again a millisecond later.
   */
  const readLane = (lane: Ids.LaneId, after: M.EventStart, limit: number): Fx<M.EventPage> =>
    Effect.gen(function*() {
      let pos: Position | undefined
      if (after !== "earliest" && after !== "latest") {
        pos = parsePosition(after, N)
        if (pos === undefined) return yield* Effect.fail(invalidOffset(after))
      }
      for (let round = 0;; round++) {
        const shares: Array<Share> = Array.from({ length: N }, (_, p) => ({
          from: pos === undefined ? after : afterIn(pos, p),
          buf: [],
          more: true,
          clock: 0
        }))
        const first = after === "latest" ? 1 : Math.min(limit, LANE_FETCH_FIRST)
        yield* fetchShares(lane, shares, shares.map((_, p) => p), first)
        let horizon = Infinity
        for (const s of shares) horizon = Math.min(horizon, s.clock)
        const end = offsetOf(N, `${Math.max(0, horizon - 1)}-0`)
        if (after === "latest") return { events: [], next: end }
        const events: Array<M.EngineEvent> = []
        let held = false
        while (events.length < limit) {
          const needy: Array<number> = []
          shares.forEach((s, p) => {
            if (s.buf.length === 0 && s.more) needy.push(p)
          })
          if (needy.length > 0) {
            const count = Math.min(limit - events.length, LANE_FETCH_MORE)
            yield* fetchShares(lane, shares, needy, count)
            continue
          }
          // the next event: the first head by (ms, partition, sequence)
          let best = -1
          let bestMs = 0
          for (let p = 0; p < N; p++) {
            const head = shares[p]!.buf[0]
            if (head !== undefined && (best < 0 || head.id.ms < bestMs)) {
              best = p
              bestMs = head.id.ms
            }
          }
          if (best < 0) break
          if (bestMs >= horizon) {
            held = true
            break
          }
          const { raw } = shares[best]!.buf.shift()!
          const ev = decodeEvent(raw, offsetOf(best, raw.id))
          if (ev !== undefined) events.push(ev)
        }
        if (events.length >= limit) return { events, next: events[events.length - 1]!.offset }
        // (every event before the horizon was taken: the end is after the last one)
        if (!held || round >= HOLD_ROUNDS) return { events, next: end }
        yield* Effect.sleep(Duration.millis(1)).pipe(Effect.withClock(Clock.make()))
      }
    })

  const readEvents: CoreArea<"events">["readEvents"] = ({ after, filter, limit }) => {
    switch (filter._tag) {
      case "Lane":
        return readLane(filter.laneId, after, limit)
      case "Execution":
        if (IdsM.executionPartition(filter.executionId) >= N) {
          return after === "earliest" || after === "latest" || parsePosition(after, N) !== undefined ?
            Effect.succeed({ events: [], next: offsetOf(0, ZERO) }) :
            Effect.fail(invalidOffset(after))
        }
        return readOne(
          IdsM.executionPartition(filter.executionId),
          ex(filter.executionId),
          { execution_id: filter.executionId },
          after,
          limit
        )
      case "Flow": {
        const target = flowOf(filter.flowId)
        return readOne(target.partition ?? 0, target, { flow_id: filter.flowId }, after, limit)
      }
    }
  }

  return { readEvents, subscribeEvents: hub.subscribe }
}

// ---------------------------------------------------------------------------
// Wake-ups
// ---------------------------------------------------------------------------

/** How long a listener mark lasts (refreshed at a third of it while the scope is listened to). */
const MARK_MS = 120_000

/**
 * The event side of the wake-up transport: a scope is listened to by subscribing to its channel
 * (`<prefix>:ev:<scope>`, on the subscriber connection of wakeups.ts) and marking it in the
 * `B:evw` hash of each partition its events are written on (every partition for a lane), so the
 * library publishes its events; the marks are refreshed while the scope is listened to, and expire
 * when the process goes away.
 */
export const makeEventTransport = (
  ctx: CoreContext,
  channels: {
    readonly listen: (channel: string) => Effect.Effect<void, EngineError>
    readonly unlisten: (channel: string) => Effect.Effect<void>
  },
  scope: Scope.Scope,
  scopesNow: () => ReadonlyArray<string>
): EventTransport => {
  const { client, keys, N } = ctx
  let refresher = false

  const partitionsOf = (s: string): ReadonlyArray<number> => {
    if (s.startsWith("l:")) return Array.from({ length: N }, (_, p) => p)
    if (s.startsWith("e:")) return [IdsM.executionPartition(s.slice(2) as Ids.ExecutionId)].filter((p) => p < N)
    return [IdsM.flowPartition(s.slice(2) as Ids.FlowId, ctx.settings.partitions)]
  }

  const mark = (s: string, until: number | undefined): Effect.Effect<void> =>
    Effect.ignore(Effect.forEach(
      partitionsOf(s),
      (p) =>
        until === undefined ?
          client.run("HDEL evw", (c) => c.hdel(`${keys.flow(p)}:evw`, s)) :
          client.run("HSET evw", (c) => c.hset(`${keys.flow(p)}:evw`, s, String(until))),
      { concurrency: ctx.settings.fanOut, discard: true }
    ))

  const refresh = Effect.suspend(() =>
    Effect.forEach(scopesNow(), (s) => mark(s, Date.now() + MARK_MS), { discard: true })
  )

  return {
    listen: (s) =>
      Effect.gen(function*() {
        yield* channels.listen(keys.eventChannel(s))
        yield* mark(s, Date.now() + MARK_MS)
        if (!refresher) {
          refresher = true
          // (listen runs inside an acquire, which is uninterruptible: the refresher is not)
          yield* Effect.forkIn(
            Effect.interruptible(
              Effect.repeat(refresh, Schedule.spaced(Duration.millis(MARK_MS / 3))).pipe(
                Effect.delay(Duration.millis(MARK_MS / 3)),
                Effect.withClock(Clock.make())
              )
            ),
            scope
          )
        }
      }),
    unlisten: (s) => Effect.zipRight(channels.unlisten(keys.eventChannel(s)), mark(s, undefined))
  }
}

export { eventScope }
