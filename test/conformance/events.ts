/**
 * The event log (docs/design/events.md): one event per transition, written with it; reads by
 * lane, execution and flow; ordered per execution; resumable from an offset; trimmed by age; and
 * the wake-ups of a subscription.
 */
import { describe, expect } from "@effect/vitest"
import { Chunk, Duration, Effect, Fiber, Option, Stream, TestServices } from "effect"
import * as Events from "../../src/Events.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, FlowId } from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  claimSome,
  create,
  createAndClaim,
  failsWith,
  forgeHandle,
  INSTANCE,
  newLane,
  NS,
  now,
  pass,
  type Tester,
  validationFails
} from "./helpers.js"

/** Every event `filter` sees from the start, read in pages of `limit`. */
const readAll = (filter: M.EventFilter, limit = 100, after: M.EventStart = "earliest") =>
  Effect.gen(function*() {
    const b = yield* backend
    const out: Array<M.EngineEvent> = []
    let from = after
    for (let i = 0; i < 1000; i++) {
      const page = yield* b.readEvents({ filter, after: from, limit })
      expect(page.events.length).toBeLessThanOrEqual(limit)
      out.push(...page.events)
      from = page.next
      if (page.events.length < limit) return { events: out, next: from }
    }
    return expect.fail("readAll: too many pages")
  })

const tags = (events: ReadonlyArray<M.EngineEvent>) => events.map((e) => e._tag)
const ofExecution = (id: ExecutionId) => Events.execution(id)

/** The offsets of `events` are distinct, and the events come in the order `readAll` gave. */
const distinctOffsets = (events: ReadonlyArray<M.EngineEvent>) =>
  expect(new Set(events.map((e) => e.offset)).size).toBe(events.length)

export const events = (t: Tester) =>
  describe("events", () => {
    t.test("each transition of an execution writes one event, in order, with what it reports", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* createAndClaim()
        yield* advance(5)
        yield* b.progress(c.handle, { percent: 40, message: "halfway" })
        yield* advance(5)
        yield* b.complete(c.handle, {})
        const { events } = yield* readAll(ofExecution(c.executionId))
        expect(tags(events)).toEqual(["ExecutionCreated", "Claimed", "Progress", "Completed"])
        distinctOffsets(events)
        const base = { executionId: c.executionId, laneId: c.lane }
        expect(events[0]).toMatchObject({ ...base, at: t0, publicState: "waiting" })
        expect(events[1]).toMatchObject({ ...base, at: t0, attemptIndex: 0, workerInstanceId: INSTANCE })
        expect(events[2]).toMatchObject({ ...base, at: t0 + 5, attemptIndex: 0, percent: 40, message: "halfway" })
        expect(events[3]).toMatchObject({ ...base, at: t0 + 10, attemptIndex: 0 })
        for (const e of events) expect(e).not.toHaveProperty("flowId")
      }))

    t.test("a retried failure, a delay and a permanent failure carry their reason, class and times", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim({
          policy: { retryPolicy: { maxRetries: 3, backoff: { type: "fixed", delayMs: 1_000 } } }
        })
        yield* b.fail(c.handle, { reason: { message: "connection reset" }, classification: "Transient" })
        const t1 = yield* now
        yield* advance(1_000)
        yield* pass("promoteDelayed")
        const h2 = yield* claimSome(c.lane)
        yield* b.delay(h2, { delayUntil: (yield* now) + 500 })
        const t2 = yield* now
        yield* advance(500)
        yield* pass("promoteDelayed")
        const h3 = yield* claimSome(c.lane)
        yield* b.fail(h3, { reason: { message: "bad input" }, classification: "Permanent" })
        const { events } = yield* readAll(ofExecution(c.executionId))
        expect(tags(events)).toEqual([
          "ExecutionCreated",
          "Claimed",
          "RetryScheduled",
          "StateChanged",
          "Claimed",
          "Delayed",
          "StateChanged",
          "Claimed",
          "Failed"
        ])
        expect(events[2]).toMatchObject({ attemptIndex: 0, retryAt: t1 + 1_000, reason: "connection reset" })
        expect(events[3]).toMatchObject({ from: "delayed", to: "waiting" })
        expect(events[4]).toMatchObject({ attemptIndex: 1 })
        expect(events[5]).toMatchObject({ until: t2 + 500 })
        expect(events[8]).toMatchObject({ attemptIndex: 1, reason: "bad input", classification: "Permanent" })
      }))

    t.test("a cancellation carries its reason; a lost lease reads AttemptInterrupted, then Claimed again", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim({}, { ttl: 1_000 })
        yield* advance(1_001)
        yield* pass("expireLeases")
        yield* claimSome(c.lane)
        yield* b.cancelExecution({ executionId: c.executionId, reason: "operator said so" })
        const { events } = yield* readAll(ofExecution(c.executionId))
        expect(tags(events)).toEqual(["ExecutionCreated", "Claimed", "AttemptInterrupted", "Claimed", "Cancelled"])
        expect(events[2]).toMatchObject({ attemptIndex: 0, cause: "lease_expired" })
        expect(events[3]).toMatchObject({ attemptIndex: 1 })
        expect(events[4]).toMatchObject({ reason: "operator said so" })
      }))

    t.test("a delayed submit is created delayed; a member added to a flow later carries it from then on", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* create({ delayUntil: t0 + 1_000 })
        const flowId = yield* Ids.newFlowId
        yield* b.createFlow({ flowId, flowKind: "events", namespace: NS })
        const m = yield* create({ flowId, laneId: c.lane })
        yield* b.addExecutionToFlow({ flowId, executionId: m.executionId })
        yield* advance(1_000)
        yield* pass("promoteDelayed")
        yield* b.cancelExecution({ executionId: m.executionId, reason: "r" })
        const own = (yield* readAll(ofExecution(c.executionId))).events
        expect(tags(own)).toEqual(["ExecutionCreated", "StateChanged"])
        expect(own[0]).toMatchObject({ publicState: "delayed", at: t0 })
        expect(own[1]).toMatchObject({ from: "delayed", to: "waiting", at: t0 + 1_000 })
        const member = (yield* readAll(ofExecution(m.executionId))).events
        expect(tags(member)).toEqual(["ExecutionCreated", "Cancelled"])
        expect(member[0]).not.toHaveProperty("flowId")
        expect(member[1]).toMatchObject({ flowId })
        const inFlow = (yield* readAll(Events.flow(flowId))).events
        expect(inFlow.filter((e) => "executionId" in e).map((e) => e._tag)).toEqual(["Cancelled"])
      }))

    t.test("a refused operation writes no event", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const { next } = yield* readAll(ofExecution(c.executionId))
        yield* failsWith(b.complete(forgeHandle(c.handle, { leaseEpoch: 99 as Ids.LeaseEpoch }), {}), "State", "StaleLease")
        yield* failsWith(b.progress(forgeHandle(c.handle, { leaseEpoch: 99 as Ids.LeaseEpoch }), { percent: 1 }), "State")
        yield* b.cancelExecution({ executionId: c.executionId, reason: "x" })
        const after = (yield* readAll(ofExecution(c.executionId), 100, next)).events
        expect(tags(after)).toEqual(["Cancelled"])
        yield* failsWith(b.complete(c.handle, {}), "Contention")
        expect((yield* readAll(ofExecution(c.executionId), 100, after[0]!.offset)).events).toEqual([])
      }))

    t.test("a Duplicate create writes no event", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* create({ idempotencyKey: "events-once" })
        const twice = yield* Ids.executionIdSolo(c.lane)
        const dup = { namespace: NS, laneId: c.lane, executionKind: "conformance" }
        expect(yield* b.createExecution({ ...dup, executionId: c.executionId }))
          .toEqual({ _tag: "Duplicate", executionId: c.executionId })
        expect(yield* b.createExecution({ ...dup, executionId: c.executionId, idempotencyKey: "events-once" }))
          .toEqual({ _tag: "Duplicate", executionId: c.executionId })
        // the set-based batch (no keys, no delays) and the item-by-item one
        expect(yield* b.createExecutions([{ ...dup, executionId: c.executionId }, { ...dup, executionId: twice },
          { ...dup, executionId: twice }])).toEqual([
            { _tag: "Duplicate", executionId: c.executionId },
            { _tag: "Created", executionId: twice, publicState: "waiting" },
            { _tag: "Duplicate", executionId: twice }
          ])
        expect(yield* b.createExecutions([{ ...dup, executionId: twice, idempotencyKey: "events-twice" }]))
          .toEqual([{ _tag: "Duplicate", executionId: twice }])
        for (const id of [c.executionId, twice]) {
          expect(tags((yield* readAll(ofExecution(id))).events)).toEqual(["ExecutionCreated"])
        }
        expect(tags((yield* readAll(Events.lane(c.lane))).events)).toEqual(["ExecutionCreated", "ExecutionCreated"])
      }))

    t.test("a lane's read holds the events of its executions only, ordered per execution", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const other = yield* newLane()
        const x = yield* create({ laneId: lane })
        const y = yield* create({ laneId: lane })
        const z = yield* create({ laneId: other })
        for (let i = 0; i < 2; i++) {
          const h = yield* claimSome(lane)
          yield* advance(1)
          yield* b.complete(h, {})
        }
        yield* b.cancelExecution({ executionId: z.executionId, reason: "elsewhere" })
        const { events } = yield* readAll(Events.lane(lane), 2)
        distinctOffsets(events)
        expect(events.every((e) => "laneId" in e && e.laneId === lane)).toBe(true)
        for (const id of [x.executionId, y.executionId]) {
          const mine = events.filter((e) => "executionId" in e && e.executionId === id)
          expect(tags(mine)).toEqual(["ExecutionCreated", "Claimed", "Completed"])
          expect(mine).toEqual((yield* readAll(ofExecution(id))).events)
        }
        expect(events).toHaveLength(6)
        expect(tags((yield* readAll(Events.lane(other))).events)).toEqual(["ExecutionCreated", "Cancelled"])
      }))

    t.test("a flow's read holds its members' events and its own state changes", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const flowId = yield* Ids.newFlowId
        const a = yield* Ids.executionIdForFlow(flowId)
        const c = yield* Ids.executionIdForFlow(flowId)
        const member = (executionId: ExecutionId) => ({
          executionId,
          namespace: NS,
          laneId: lane,
          executionKind: "conformance"
        })
        yield* b.createFlowGraph({
          flow: { flowId, flowKind: "events", namespace: NS, sealed: true },
          members: [member(a), member(c)],
          edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: a, downstreamExecutionId: c }]
        })
        // a millisecond later, so that the claims take the flow's members first on every backend
        // (within one millisecond a claim's order over partitions is not promised)
        yield* advance(1)
        const outsider = yield* create({ laneId: lane })
        for (let i = 0; i < 3; i++) yield* b.complete(yield* claimSome(lane), {})
        const flowEvents = (yield* readAll(Events.flow(flowId))).events
        distinctOffsets(flowEvents)
        expect(flowEvents).toHaveLength(9)
        const ofMember = (id: ExecutionId) => flowEvents.filter((e) => "executionId" in e && e.executionId === id)
        expect(tags(ofMember(a))).toEqual(["ExecutionCreated", "Claimed", "Completed"])
        expect(tags(ofMember(c))).toEqual(["ExecutionCreated", "StateChanged", "Claimed", "Completed"])
        // what the creating call did to a member (blocked by its edge) is in its ExecutionCreated
        expect(ofMember(a)[0]).toMatchObject({ flowId, laneId: lane, publicState: "waiting" })
        expect(ofMember(c)[0]).toMatchObject({ flowId, laneId: lane, publicState: "waiting_children" })
        expect(ofMember(c)[1]).toMatchObject({ flowId, from: "waiting_children", to: "waiting" })
        expect(ofMember(outsider.executionId)).toEqual([])
        const states = flowEvents.filter((e): e is Extract<M.EngineEvent, { _tag: "FlowStateChanged" }> =>
          e._tag === "FlowStateChanged"
        )
        expect(states.map((e) => e.publicFlowState)).toEqual(["running", "completed"])
        // the flow completed with its last member's completion: after it, in the flow's order
        const last = flowEvents.indexOf(states[1]!)
        expect(last).toBeGreaterThan(flowEvents.indexOf(ofMember(c)[3]!))
      }))

    t.test("an edge applied late writes one event per change: blocked, then released by an ended upstream", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* Ids.newFlowId
        yield* b.createFlow({ flowId, flowKind: "events", namespace: NS })
        /** A member on a lane of its own (so that a claim takes exactly it). */
        const member = Effect.gen(function*() {
          const m = yield* create({ flowId })
          yield* b.addExecutionToFlow({ flowId, executionId: m.executionId })
          return m
        })
        const edge = (up: ExecutionId, down: ExecutionId) =>
          Effect.gen(function*() {
            const flow = Option.getOrThrow(yield* b.describeFlow(flowId))
            const edgeId = yield* Ids.newEdgeId
            yield* b.stageDependencyEdge({
              flowId,
              edgeId,
              upstreamExecutionId: up,
              downstreamExecutionId: down,
              expectedGraphRevision: flow.graphRevision
            })
            return yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: up, downstreamExecutionId: down })
          })
        const finish = (m: { readonly lane: Ids.LaneId }) =>
          Effect.gen(function*() {
            yield* b.complete(yield* claimSome(m.lane), {})
          })
        const [u1, u2, u3, c, d] = [yield* member, yield* member, yield* member, yield* member, yield* member]
        // c joins when one of its upstreams succeeds and cancels the others
        yield* b.setEdgeGroupPolicy({
          flowId,
          downstreamExecutionId: c.executionId,
          policy: { _tag: "quorum", k: 1, onSatisfied: "cancel_remaining" }
        })
        yield* advance(1)
        yield* edge(u1.executionId, c.executionId)
        yield* edge(u3.executionId, c.executionId)
        yield* advance(1)
        yield* finish(u1)
        yield* finish(u2)
        const t0 = yield* now
        // an edge from an ended upstream: the call blocks d, then the upstream's outcome frees it
        expect(yield* edge(u1.executionId, d.executionId)).toMatchObject({ _tag: "Applied", unsatisfiedCount: 0 })
        // a late edge into c, whose quorum is already satisfied: c is not blocked again
        yield* edge(u2.executionId, c.executionId)
        const ofC = (yield* readAll(ofExecution(c.executionId))).events
        expect(ofC.map((e) => e._tag === "StateChanged" ? `${e.from}>${e.to}` : e._tag)).toEqual([
          "ExecutionCreated",
          "waiting>waiting_children",
          "waiting_children>waiting"
        ])
        const ofD = (yield* readAll(ofExecution(d.executionId))).events
        expect(tags(ofD)).toEqual(["ExecutionCreated", "StateChanged", "StateChanged"])
        expect(ofD[1]).toMatchObject({ flowId, at: t0, from: "waiting", to: "waiting_children" })
        expect(ofD[2]).toMatchObject({ flowId, at: t0, from: "waiting_children", to: "waiting" })
        distinctOffsets(ofD)
        // the remaining upstream was cancelled by the join
        const ofU3 = (yield* readAll(ofExecution(u3.executionId))).events
        expect(tags(ofU3)).toEqual(["ExecutionCreated", "Cancelled"])
        expect(ofU3[1]).toMatchObject({ flowId, reason: "sibling_quorum_satisfied" })
        // the flow's read has them in the same order
        const inFlow = (yield* readAll(Events.flow(flowId))).events
        distinctOffsets(inFlow)
        const flowOf = (id: ExecutionId) => inFlow.filter((e) => "executionId" in e && e.executionId === id)
        expect(flowOf(d.executionId)).toEqual(ofD.slice(1))
        expect(flowOf(c.executionId)).toEqual(ofC.slice(1))
      }))

    t.test("waitChildren with nothing to wait for is one change: active to waiting", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* advance(1)
        yield* b.waitChildren(c.handle)
        const { events } = yield* readAll(ofExecution(c.executionId))
        expect(tags(events)).toEqual(["ExecutionCreated", "Claimed", "StateChanged"])
        expect(events[2]).toMatchObject({ from: "active", to: "waiting" })
      }))

    t.test("a cancellation that ends the flow in the same call reports only its end state", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowStates = (flowId: FlowId) =>
          Effect.map(readAll(Events.flow(flowId)), ({ events }) =>
            events.flatMap((e) => e._tag === "FlowStateChanged" ? [e.publicFlowState] : []))
        const flowId = yield* Ids.newFlowId
        yield* b.createFlow({ flowId, flowKind: "events", namespace: NS })
        const m = yield* create({ flowId })
        yield* b.addExecutionToFlow({ flowId, executionId: m.executionId })
        yield* b.cancelFlow({ flowId, policy: "FlowOnly" })
        expect((yield* flowStates(flowId))).toEqual(["running", "cancelled"])
        expect(tags((yield* readAll(ofExecution(m.executionId))).events)).toEqual(["ExecutionCreated"])
        // a cascade reports cancelling before its members' events, then cancelled
        const g = yield* Ids.newFlowId
        yield* b.createFlow({ flowId: g, flowKind: "events", namespace: NS })
        const n = yield* create({ flowId: g })
        yield* b.addExecutionToFlow({ flowId: g, executionId: n.executionId })
        yield* b.cancelFlow({ flowId: g, policy: "CancelAll" })
        expect((yield* flowStates(g))).toEqual(["running", "cancelling", "cancelled"])
        const inFlow = tags((yield* readAll(Events.flow(g))).events)
        expect(inFlow.slice(-3)).toEqual(["FlowStateChanged", "Cancelled", "FlowStateChanged"])
      }))

    t.test("a replayed member makes its ended flow running again, reported after the member's event", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* Ids.newFlowId
        yield* b.createFlow({ flowId, flowKind: "events", namespace: NS })
        const m = yield* create({ flowId })
        yield* b.addExecutionToFlow({ flowId, executionId: m.executionId })
        yield* b.cancelExecution({ executionId: m.executionId, reason: "r" })
        yield* advance(1)
        const t1 = yield* now
        yield* b.replayExecution(m.executionId)
        const inFlow = (yield* readAll(Events.flow(flowId))).events
        expect(inFlow.map((e) => e._tag === "FlowStateChanged" ? e.publicFlowState : e._tag))
          .toEqual(["running", "Cancelled", "failed", "StateChanged", "running"])
        expect(inFlow[4]).toMatchObject({ at: t1 })
      }))

    t.test("a reader that resumes from its last offset misses nothing and sees nothing twice", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const { next: start } = yield* readAll(Events.lane(lane), 1, "latest")
        const seen: Array<M.EngineEvent> = []
        let offset: M.EventStart = start
        for (let round = 0; round < 4; round++) {
          const c = yield* create({ laneId: lane })
          const h = yield* claimSome(lane)
          yield* b.progress(h, { percent: round })
          if (round % 2 === 0) yield* b.complete(h, {})
          else yield* b.cancelExecution({ executionId: c.executionId, reason: "r" })
          // a reader that takes one page of two, then "disconnects" and resumes from its offset
          const page: M.EventPage = yield* b.readEvents({ filter: Events.lane(lane), after: offset, limit: 2 })
          seen.push(...page.events)
          offset = page.next
        }
        const rest = yield* readAll(Events.lane(lane), 3, offset)
        seen.push(...rest.events)
        const all = (yield* readAll(Events.lane(lane))).events
        expect(all).toHaveLength(16)
        expect(seen).toEqual(all)
        // from the end: nothing, and the same end
        const end = yield* b.readEvents({ filter: Events.lane(lane), after: rest.next, limit: 10 })
        expect(end.events).toEqual([])
      }))

    t.test("the stream pages through the log and follows what is written next", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const first = yield* Events.stream(ofExecution(c.executionId), { pageSize: 1 }).pipe(
          Stream.take(2),
          Stream.runCollect
        )
        expect(tags(Chunk.toReadonlyArray(first))).toEqual(["ExecutionCreated", "Claimed"])
        const follower = yield* Events.stream(ofExecution(c.executionId), { from: Chunk.unsafeLast(first).offset }).pipe(
          Stream.take(1),
          Stream.runCollect,
          TestServices.provideLive,
          Effect.timeout(Duration.seconds(20)),
          Effect.fork
        )
        yield* TestServices.provideLive(Effect.sleep(Duration.millis(20)))
        yield* b.complete(c.handle, {})
        const next = yield* Fiber.join(follower)
        expect(tags(Chunk.toReadonlyArray(next))).toEqual(["Completed"])
      }))

    t.test("a subscription counts a wake-up for an event of its filter", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* b.subscribeEvents(ofExecution(c.executionId))
          const before = yield* sub.wakeups
          yield* b.progress(c.handle, { percent: 10 })
          const woken = yield* TestServices.provideLive(sub.await(before, Duration.seconds(20)))
          expect(woken).toBe(true)
        }))
      }))

    t.test("events older than the retention are trimmed; an offset before them fails EventOffsetExpired", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const { events } = yield* readAll(ofExecution(c.executionId))
        const firstOffset = events[0]!.offset
        yield* advance(Limits.eventRetentionMs + 1)
        const fresh = yield* createAndClaim()
        const expired = b.readEvents({ filter: ofExecution(c.executionId), after: firstOffset, limit: 10 })
        // a pass trims a bounded number: other tests' old events may come first on a shared engine
        for (let i = 0; i < 200; i++) {
          yield* pass("trimRetention", 1000)
          const r = yield* Effect.either(expired)
          if (r._tag === "Left") break
        }
        yield* failsWith(expired, "State", "EventOffsetExpired")
        expect((yield* readAll(ofExecution(c.executionId))).events).toEqual([])
        expect(tags((yield* readAll(ofExecution(fresh.executionId))).events)).toEqual(["ExecutionCreated", "Claimed"])
      }))

    t.test("bad input fails Validation and reads nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const filter = Events.lane(lane)
        yield* validationFails(b.readEvents({ filter, limit: 0 }), "InvalidInput")
        yield* validationFails(b.readEvents({ filter, limit: 1.5 }), "InvalidInput")
        yield* validationFails(b.readEvents({ filter, after: "" as M.EventOffset }), "InvalidOffset")
        yield* validationFails(b.readEvents({ filter, after: "not-an-offset" as M.EventOffset }), "InvalidOffset")
        yield* validationFails(
          b.readEvents({ filter, after: "1".repeat(Limits.eventOffsetBytes + 1) as M.EventOffset }),
          "LimitExceeded"
        )
        yield* validationFails(b.readEvents({ filter: { _tag: "Lane", laneId: "" } as unknown as M.EventFilter }), "InvalidInput")
        yield* validationFails(b.readEvents({ filter: { _tag: "Flow", flowId: "x" as FlowId } }), "InvalidInput")
        yield* validationFails(b.readEvents(undefined as unknown as M.ReadEventsArgs), "InvalidInput")
        yield* Effect.scoped(validationFails(
          b.subscribeEvents({ _tag: "Execution", executionId: "nope" as ExecutionId }),
          "InvalidInput"
        ))
        const page = yield* b.readEvents({ filter, limit: Limits.eventPageItems + 5 })
        expect(page.events).toEqual([])
      }))
  })
