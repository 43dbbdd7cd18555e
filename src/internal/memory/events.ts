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

/** The body of an execution's event / of a flow's. */
type ExecutionEventBody = Exclude<M.EngineEventBody, { readonly _tag: "FlowStateChanged" }>
type FlowEventBody = Extract<M.EngineEventBody, { readonly _tag: "FlowStateChanged" }>

/**
 * One stored event: its body and its sequence number, in one object (`seq` is 0 until `emit`
 * numbers it). The lists it is in follow from its body: its execution's, its lane's and its
 * flow's (a `FlowStateChanged`: its flow's alone). An `ExecutionCreated` takes in what the rest of
 * the step that wrote it does to the execution: it was written in the current step when its number
 * is past `Store.stepSeq`.
 */
export type StoredEvent = M.EngineEventBody & { seq: number }
type ExecutionEvent = ExecutionEventBody & { seq: number }

/** An append-only list whose oldest entries can be dropped in O(1). */
export class Deque<A> {
  private items: Array<A>
  private head = 0
  constructor(first?: A) {
    this.items = first === undefined ? [] : [first]
  }
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
    const items = this.items
    const n = items.length
    if (n >= 8) {
      items.push(a)
      return
    }
    // a short list (an execution's events, mostly 2 to 5) is copied into an array of its exact
    // length: a push past an array's room would give it 16 slots more, kept as long as the list
    const next = new Array<A>(n + 1)
    for (let i = 0; i < n; i++) next[i] = items[i]!
    next[n] = a
    this.items = next
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

/** The events of one key (an execution, a lane, a flow), oldest first. */
type Index = Map<string, Deque<StoredEvent>>

export class EventLog {
  /** The last sequence number given (0: none yet). */
  seq = 0
  /** The sequence number of the newest event trimmed (0: none). */
  trimmedThrough = 0
  /** Every event, oldest first. */
  readonly all = new Deque<StoredEvent>()
  /**
   * The events of executions no longer stored (a live execution holds its own: `Exec.events`);
   * an execution created again under the same id takes its list back.
   */
  readonly byExecution: Index = new Map()
  readonly byLane: Index = new Map()
  readonly byFlow: Index = new Map()
}

const append = (index: Index, key: string, event: StoredEvent): void => {
  const list = index.get(key)
  if (list === undefined) index.set(key, new Deque(event))
  else list.push(event)
}

const dropFirst = (index: Index, key: string): void => {
  const list = index.get(key)
  if (list === undefined) return
  list.shift()
  if (list.size === 0) index.delete(key)
}

/** The list of the events `filter` reads, if it has any. */
const listOf = (store: Store, filter: M.EventFilter): Deque<StoredEvent> | undefined => {
  const log = store.events
  switch (filter._tag) {
    case "Execution":
      return store.executions.get(filter.executionId)?.events ?? log.byExecution.get(filter.executionId)
    case "Lane":
      return log.byLane.get(filter.laneId)
    case "Flow":
      return log.byFlow.get(filter.flowId)
  }
}

/** The scopes (`eventScope`) whose subscriptions an event wakes. */
export const scopesOf = (body: M.EngineEventBody): Array<string> => {
  if (body._tag === "FlowStateChanged") return [eventScope({ _tag: "Flow", flowId: body.flowId })]
  const scopes = [
    eventScope({ _tag: "Execution", executionId: body.executionId }),
    eventScope({ _tag: "Lane", laneId: body.laneId })
  ]
  if (body.flowId !== undefined) scopes.push(eventScope({ _tag: "Flow", flowId: body.flowId }))
  return scopes
}

/** Numbers `event`, an event of the execution `e`, appends it to the log and wakes the subscriptions of its scopes. */
export const emit = (store: Store, e: Exec, event: ExecutionEvent): StoredEvent => {
  const log = store.events
  event.seq = ++log.seq
  log.all.push(event)
  if (e.events === undefined) e.events = new Deque(event)
  else e.events.push(event)
  append(log.byLane, event.laneId, event)
  if (event.flowId !== undefined) append(log.byFlow, event.flowId, event)
  if (log.all.size > Limits.eventsRetained) dropOldest(store)
  store.onEvent(event)
  return event
}

/** Numbers `event`, an event of a flow, appends it to the log and wakes the subscriptions of its flow. */
export const emitFlow = (store: Store, event: FlowEventBody & { seq: number }): void => {
  const log = store.events
  event.seq = ++log.seq
  log.all.push(event)
  append(log.byFlow, event.flowId, event)
  if (log.all.size > Limits.eventsRetained) dropOldest(store)
  store.onEvent(event)
}

/** The events of `e`, deleted, stay readable by its id. */
export const keepEvents = (store: Store, e: Exec): void => {
  if (e.events !== undefined && e.events.size > 0) store.events.byExecution.set(e.id, e.events)
  e.events = undefined
}

/** The events an execution created under `id` takes over (of a deleted one under that id). */
export const eventsOf = (store: Store, id: Ids.ExecutionId): Deque<StoredEvent> | undefined => {
  const byExecution = store.events.byExecution
  if (byExecution.size === 0) return undefined
  const list = byExecution.get(id)
  if (list !== undefined) byExecution.delete(id)
  return list
}

/** The `ExecutionCreated` of `e` when the current step created it (and its later changes fold into it). */
const createdNow = (store: Store, e: Exec): Extract<StoredEvent, { _tag: "ExecutionCreated" }> | undefined =>
  e.created !== undefined && e.created.seq > store.stepSeq && e.created._tag === "ExecutionCreated" ?
    e.created :
    undefined

/**
 * `e` joined a flow. Created in this step (a flow's new member): its `ExecutionCreated` carries the
 * flow and is in the flow's read; else only its later events are.
 */
export const joinedFlow = (store: Store, e: Exec): void => {
  const created = createdNow(store, e)
  if (created === undefined || e.flowId === undefined) return
  ;(created as { flowId?: Ids.FlowId }).flowId = e.flowId
  const index = store.events.byFlow
  const list = index.get(e.flowId)
  if (list === undefined) index.set(e.flowId, new Deque(created))
  else list.insertBy(created, (x) => x.seq > created.seq)
}

/**
 * Writes the event of a transition of `e` (`transitionEvent`), or, when this step created `e`,
 * folds its new public state into its `ExecutionCreated`.
 */
export const noteTransition = (store: Store, e: Exec, before: Before, now: number): void => {
  const created = createdNow(store, e)
  if (created !== undefined) {
    ;(created as { publicState: M.PublicState }).publicState = e.publicState
    return
  }
  const event = transitionEvent(e, before, now)
  if (event !== undefined) emit(store, e, event)
}

const dropOldest = (store: Store): void => {
  const log = store.events
  const event = log.all.first()
  if (event === undefined) return
  log.all.shift()
  log.trimmedThrough = event.seq
  const body = event
  if (body._tag === "FlowStateChanged") return dropFirst(log.byFlow, body.flowId)
  const own = store.executions.get(body.executionId)?.events
  if (own !== undefined) own.shift()
  else dropFirst(log.byExecution, body.executionId)
  dropFirst(log.byLane, body.laneId)
  if (body.flowId !== undefined) dropFirst(log.byFlow, body.flowId)
}

/** Drops up to `batch` events older than the retention (`trimRetention`); how many went. */
export const trimEvents = (store: Store, now: number, batch: number): number => {
  const log = store.events
  let n = 0
  while (n < batch) {
    const event = log.all.first()
    if (event === undefined || event.at > now - Limits.eventRetentionMs) break
    dropOldest(store)
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
  const list = listOf(store, args.filter)
  if (list === undefined) return ok({ events: [], next: head })
  // the first event after `after`: a binary search over the filter's events, oldest first
  let lo = 0
  let hi = list.size
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (list.at(mid).seq <= after) lo = mid + 1
    else hi = mid
  }
  const events: Array<M.EngineEvent> = []
  for (let i = lo; i < list.size && events.length < args.limit; i++) {
    const { seq, ...body } = list.at(i)
    events.push({ ...body, offset: String(seq) as M.EventOffset } as M.EngineEvent)
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
  seq: 0,
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
export const transitionEvent = (e: Exec, before: Before, now: number): ExecutionEvent | undefined => {
  if (e.phase === "active" && e.ownership === "leased") {
    if (before.phase === "active" && before.ownership === "leased") return undefined
    return claimedEvent(e, now)
  }
  // (a completed execution is terminal: neither of the two cases below applies to it)
  if (e.publicState === "completed" && e.phase === "terminal" && before.publicState !== "completed") {
    return completedEvent(e, now)
  }
  const c = common(e, now)
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

// The events every task writes (created, claimed, completed) are built without spreads.

export const createdEvent = (e: Exec, now: number): ExecutionEvent =>
  e.flowId === undefined ?
    { seq: 0, _tag: "ExecutionCreated", at: now, executionId: e.id, laneId: e.laneId, publicState: e.publicState } :
    { seq: 0, _tag: "ExecutionCreated", at: now, executionId: e.id, laneId: e.laneId, flowId: e.flowId, publicState: e.publicState }

const claimedEvent = (e: Exec, now: number): ExecutionEvent => {
  const attemptIndex = attemptOf(e)
  const workerInstanceId = e.workerInstanceId!
  return e.flowId === undefined ?
    { seq: 0, _tag: "Claimed", at: now, executionId: e.id, laneId: e.laneId, attemptIndex, workerInstanceId } :
    { seq: 0, _tag: "Claimed", at: now, executionId: e.id, laneId: e.laneId, flowId: e.flowId, attemptIndex, workerInstanceId }
}

const completedEvent = (e: Exec, now: number): ExecutionEvent => {
  if (e.currentAttemptId === undefined) {
    return e.flowId === undefined ?
      { seq: 0, _tag: "Completed", at: now, executionId: e.id, laneId: e.laneId } :
      { seq: 0, _tag: "Completed", at: now, executionId: e.id, laneId: e.laneId, flowId: e.flowId }
  }
  const attemptIndex = attemptOf(e)
  return e.flowId === undefined ?
    { seq: 0, _tag: "Completed", at: now, executionId: e.id, laneId: e.laneId, attemptIndex } :
    { seq: 0, _tag: "Completed", at: now, executionId: e.id, laneId: e.laneId, flowId: e.flowId, attemptIndex }
}

/** The progress `e` holds now (a call that left out the percent or the message keeps the stored one). */
export const progressEvent = (e: Exec, now: number): ExecutionEvent => ({
  _tag: "Progress",
  ...common(e, now),
  attemptIndex: attemptOf(e),
  ...(e.progressPct === undefined ? {} : { percent: e.progressPct }),
  ...(e.progressMessage === undefined || e.progressMessage === "" ? {} : { message: cutHistoryReason(e.progressMessage) })
})
