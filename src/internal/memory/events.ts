/**
 * The event log of the in-memory engine (docs/design/events.md): every event is appended in the
 * synchronous step of the transition it reports, numbered by one sequence (its offset, in
 * decimal), and indexed by lane, execution and flow so that a filtered read is a search, not a
 * scan. The oldest events go when the log holds more than `Limits.eventsRetained`, or when
 * `trimRetention` finds them older than `Limits.eventRetentionMs`.
 */
import { state, validation } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import type * as M from "../../Model.js"
import { eventScope } from "../wakeups.js"
import { cutHistoryReason } from "./history.js"
import { err, ok, type R } from "./helpers.js"
import type { Exec } from "./state.js"
import type { Store } from "./store.js"

/**
 * One stored event: its sequence number, the scopes it is indexed under, its body, and the step
 * that wrote it (an `ExecutionCreated` takes in what the rest of that step does to the execution).
 */
export interface StoredEvent {
  readonly seq: number
  readonly scopes: Array<string>
  body: M.EngineEventBody
  readonly step: number
}

/** An append-only list whose oldest entries can be dropped in O(1). */
class Deque<A> {
  private items: Array<A> = []
  private head = 0
  get size(): number {
    return this.items.length - this.head
  }
  at(i: number): A {
    return this.items[this.head + i]!
  }
  first(): A | undefined {
    return this.items[this.head]
  }
  push(a: A): void {
    this.items.push(a)
  }
  /** Inserts `a` before the entries after it by `after` (entries are kept in order). */
  insertBy(a: A, after: (x: A) => boolean): void {
    let i = this.items.length
    while (i > this.head && after(this.items[i - 1]!)) i--
    this.items.splice(i, 0, a)
  }
  shift(): void {
    this.head++
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

export class EventLog {
  /** The last sequence number given (0: none yet). */
  seq = 0
  /** The sequence number of the newest event trimmed (0: none). */
  trimmedThrough = 0
  readonly all = new Deque<StoredEvent>()
  readonly byScope = new Map<string, Deque<StoredEvent>>()
}

const scopesOf = (body: M.EngineEventBody): Array<string> => {
  if (body._tag === "FlowStateChanged") return [eventScope({ _tag: "Flow", flowId: body.flowId })]
  const scopes = [
    eventScope({ _tag: "Execution", executionId: body.executionId }),
    eventScope({ _tag: "Lane", laneId: body.laneId })
  ]
  if (body.flowId !== undefined) scopes.push(eventScope({ _tag: "Flow", flowId: body.flowId }))
  return scopes
}

/** Appends `body` to the log and wakes the subscriptions of its scopes. */
export const emit = (store: Store, body: M.EngineEventBody): StoredEvent => {
  const log = store.events
  const event: StoredEvent = { seq: ++log.seq, scopes: scopesOf(body), body, step: store.stepNo }
  log.all.push(event)
  for (const scope of event.scopes) {
    let list = log.byScope.get(scope)
    if (list === undefined) log.byScope.set(scope, list = new Deque())
    list.push(event)
  }
  if (log.all.size > Limits.eventsRetained) dropOldest(log)
  store.onEvent(event.scopes)
  return event
}

/** The `ExecutionCreated` of `e` when the current step created it (and its later changes fold into it). */
const createdNow = (store: Store, e: Exec): StoredEvent | undefined =>
  e.created !== undefined && e.created.step === store.stepNo && e.created.body._tag === "ExecutionCreated" ?
    e.created :
    undefined

/**
 * `e` joined a flow. Created in this step (a flow's new member): its `ExecutionCreated` carries the
 * flow and is in the flow's read; else only its later events are.
 */
export const joinedFlow = (store: Store, e: Exec): void => {
  const created = createdNow(store, e)
  if (created === undefined || e.flowId === undefined) return
  created.body = { ...created.body, flowId: e.flowId }
  const scope = eventScope({ _tag: "Flow", flowId: e.flowId })
  created.scopes.push(scope)
  let list = store.events.byScope.get(scope)
  if (list === undefined) store.events.byScope.set(scope, list = new Deque())
  list.insertBy(created, (x) => x.seq > created.seq)
}

/**
 * Writes the event of a transition of `e` (`transitionEvent`), or, when this step created `e`,
 * folds its new public state into its `ExecutionCreated`.
 */
export const noteTransition = (store: Store, e: Exec, before: Before, now: number): void => {
  const created = createdNow(store, e)
  if (created !== undefined) {
    if (created.body._tag === "ExecutionCreated") created.body = { ...created.body, publicState: e.publicState }
    return
  }
  const event = transitionEvent(e, before, now)
  if (event !== undefined) emit(store, event)
}

const dropOldest = (log: EventLog): void => {
  const event = log.all.first()
  if (event === undefined) return
  log.all.shift()
  log.trimmedThrough = event.seq
  for (const scope of event.scopes) {
    const list = log.byScope.get(scope)
    if (list === undefined) continue
    list.shift()
    if (list.size === 0) log.byScope.delete(scope)
  }
}

/** Drops up to `batch` events older than the retention (`trimRetention`); how many went. */
export const trimEvents = (store: Store, now: number, batch: number): number => {
  const log = store.events
  let n = 0
  while (n < batch) {
    const event = log.all.first()
    if (event === undefined || event.body.at > now - Limits.eventRetentionMs) break
    dropOldest(log)
    n++
  }
  return n
}

const parseOffset = (offset: string): number | undefined =>
  /^(0|[1-9][0-9]{0,15})$/.test(offset) ? Number(offset) : undefined

export const readEvents = (
  store: Store,
  args: { readonly filter: M.EventFilter; readonly after: M.EventStart; readonly limit: number }
): R<M.EventPage> => {
  const log = store.events
  const head = String(log.seq) as M.EventOffset
  if (args.after === "latest") return ok({ events: [], next: head })
  let after = 0
  if (args.after !== "earliest") {
    const parsed = parseOffset(args.after)
    if (parsed === undefined || parsed > log.seq) return err(invalidOffset(args.after))
    if (parsed < log.trimmedThrough) return err(state("EventOffsetExpired"))
    after = parsed
  }
  const list = log.byScope.get(eventScope(args.filter))
  if (list === undefined) return ok({ events: [], next: head })
  // the first event after `after`: a binary search over the scope's events, oldest first
  let lo = 0
  let hi = list.size
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list.at(mid).seq <= after) lo = mid + 1
    else hi = mid
  }
  const events: Array<M.EngineEvent> = []
  for (let i = lo; i < list.size && events.length < args.limit; i++) {
    const e = list.at(i)
    events.push({ ...e.body, offset: String(e.seq) as M.EventOffset } as M.EngineEvent)
  }
  return ok({ events, next: events.length === args.limit ? events[events.length - 1]!.offset : head })
}

const invalidOffset = (offset: string) =>
  validation("InvalidOffset", `read_events: after: not an offset of this engine (${offset.length} chars)`)

// ---------------------------------------------------------------------------
// What each transition reports
// ---------------------------------------------------------------------------

/** The state of an execution before a transition, as `transition` saw it. */
export interface Before {
  readonly phase: M.LifecyclePhase
  readonly ownership: M.OwnershipState
  readonly publicState: M.PublicState
}

const common = (e: Exec, now: number) => ({
  at: now,
  executionId: e.id,
  laneId: e.laneId,
  ...(e.flowId === undefined ? {} : { flowId: e.flowId })
})

const attemptOf = (e: Exec) => e.currentAttemptIndex as Ids.AttemptIndex

/** The failure recorded in this step, if any (its reason and class go with the event). */
const freshFailure = (e: Exec, now: number) => (e.lastFailure !== undefined && e.lastFailure.at === now ? e.lastFailure : undefined)

/**
 * The event of the transition of `e` from `before` to its present state, if it reports one:
 * a lease started (`Claimed`), lost (`AttemptInterrupted`), or a change of public state.
 */
export const transitionEvent = (e: Exec, before: Before, now: number): M.EngineEventBody | undefined => {
  const c = common(e, now)
  if (e.phase === "active" && e.ownership === "leased") {
    if (before.phase === "active" && before.ownership === "leased") return undefined
    return { _tag: "Claimed", ...c, attemptIndex: attemptOf(e), workerInstanceId: e.workerInstanceId! }
  }
  if (e.phase === "active" && before.phase === "active" && before.ownership === "leased") {
    return {
      _tag: "AttemptInterrupted",
      ...c,
      attemptIndex: attemptOf(e),
      cause: e.ownership === "lease_revoked" ? "lease_revoked" : "lease_expired"
    }
  }
  if (e.attemptState === "pending_retry_attempt" && before.phase === "active") {
    const f = freshFailure(e, now)
    return {
      _tag: "RetryScheduled",
      ...c,
      attemptIndex: attemptOf(e),
      retryAt: e.publicState === "delayed" && e.delayUntil !== undefined ? e.delayUntil : now,
      ...(f === undefined ? {} : { reason: cutHistoryReason(f.reason) })
    }
  }
  if (e.publicState === before.publicState) return undefined
  switch (e.publicState) {
    case "completed":
      return { _tag: "Completed", ...c, ...(e.currentAttemptId === undefined ? {} : { attemptIndex: attemptOf(e) }) }
    case "failed": {
      const f = freshFailure(e, now)
      const reason = f?.reason ?? e.failureReason
      return {
        _tag: "Failed",
        ...c,
        ...(e.currentAttemptId === undefined ? {} : { attemptIndex: attemptOf(e) }),
        ...(reason === undefined || reason === "" ? {} : { reason: cutHistoryReason(reason) }),
        ...(f === undefined ? {} : { classification: f.classification })
      }
    }
    case "cancelled":
      return {
        _tag: "Cancelled",
        ...c,
        ...(e.cancellationReason === undefined ? {} : { reason: cutHistoryReason(e.cancellationReason) })
      }
    case "expired":
      return { _tag: "Expired", ...c }
    case "skipped":
      return { _tag: "Skipped", ...c }
    case "suspended":
      return { _tag: "Suspended", ...c, ...(e.currentAttemptId === undefined ? {} : { attemptIndex: attemptOf(e) }) }
    default:
      if (before.phase === "suspended") return { _tag: "Resumed", ...c, publicState: e.publicState }
      if (e.publicState === "delayed" && before.phase === "active" && e.delayUntil !== undefined) {
        return { _tag: "Delayed", ...c, until: e.delayUntil }
      }
      return { _tag: "StateChanged", ...c, from: before.publicState, to: e.publicState }
  }
}

export const createdEvent = (e: Exec, now: number): M.EngineEventBody => ({
  _tag: "ExecutionCreated",
  ...common(e, now),
  publicState: e.publicState
})

/** The progress `e` holds now (a call that left out the percent or the message keeps the stored one). */
export const progressEvent = (e: Exec, now: number): M.EngineEventBody => ({
  _tag: "Progress",
  ...common(e, now),
  attemptIndex: attemptOf(e),
  ...(e.progressPct === undefined ? {} : { percent: e.progressPct }),
  ...(e.progressMessage === undefined || e.progressMessage === "" ? {} : { message: cutHistoryReason(e.progressMessage) })
})
