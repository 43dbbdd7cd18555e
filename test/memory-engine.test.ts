// What the memory engine keeps for speed and must not change what callers see: the events of an
// execution live with it (and stay readable by its id once it is deleted), an event wakes its
// subscriptions only while there are some, and issued handle bytes carry their decoded payload.
import { describe, expect, it } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Layer, Option, TestServices } from "effect"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import { MinHeap } from "../src/internal/memory/heap.js"
import { Exec } from "../src/internal/memory/state.js"
import { storeAttemptId, storeLeaseId } from "../src/internal/storeIds.js"
import { advance, claimSome, createAndClaim, create, pass, payloadOf } from "./conformance/helpers.js"

const engine = Layer.fresh(MemoryBackend.layer({ hmacSecret: "none" }))

const ofExecution = (executionId: M.ExecutionInput["executionId"]): M.EventFilter => ({ _tag: "Execution", executionId })

const tagsOf = (filter: M.EventFilter) =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.readEvents({ filter, limit: 100 }), (page) => page.events.map((e) => e._tag)))

describe("memory engine", () => {
  it.effect("a deleted execution's events stay readable by its id; one created again under it goes on from them", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const retention = { policy: { streamPolicy: { retentionTtlMs: 1_000 } } }
      const c = yield* createAndClaim(retention)
      yield* b.complete(c.handle)
      yield* advance(2_000)
      yield* pass("trimRetention")
      expect(Option.isNone(yield* b.readExecutionState(c.executionId))).toBe(true)
      expect(yield* tagsOf(ofExecution(c.executionId))).toEqual(["ExecutionCreated", "Claimed", "Completed"])
      expect(yield* tagsOf({ _tag: "Lane", laneId: c.lane })).toEqual(["ExecutionCreated", "Claimed", "Completed"])
      yield* create({ executionId: c.executionId, laneId: c.lane })
      expect(yield* tagsOf(ofExecution(c.executionId))).toEqual([
        "ExecutionCreated",
        "Claimed",
        "Completed",
        "ExecutionCreated"
      ])
    }).pipe(Effect.provide(engine)))

  it.effect("events written while nobody subscribes wake no one; a subscription taken then, or again, is woken", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const c = yield* createAndClaim()
      yield* b.progress(c.handle, { percent: 1 })
      for (let round = 0; round < 2; round++) {
        yield* Effect.scoped(Effect.gen(function*() {
          const sub = yield* b.subscribeEvents(ofExecution(c.executionId))
          const lane = yield* b.subscribeEvents({ _tag: "Lane", laneId: c.lane })
          expect(yield* sub.wakeups).toBe(0)
          yield* b.progress(c.handle, { percent: 10 + round })
          expect(yield* TestServices.provideLive(sub.await(0, Duration.seconds(5)))).toBe(true)
          expect(yield* lane.wakeups).toBe(1)
        }))
      }
    }).pipe(Effect.provide(engine)))

  it.effect("issued handle bytes decode to the payload they were issued with; a copy decodes afresh to the same", () =>
    Effect.gen(function*() {
      const c = yield* createAndClaim()
      const issued = payloadOf(c.handle)
      expect(payloadOf(c.handle)).toBe(issued)
      for (const copy of [c.handle.opaque.slice(), new Uint8Array(c.handle.opaque), Buffer.from(c.handle.opaque)]) {
        const decoded = Either.getOrThrow(decodeHandle("memory", { ...c.handle, opaque: copy }))
        expect(decoded).not.toBe(issued)
        expect(decoded).toEqual(issued)
        // decoded once, a copy keeps its payload too
        expect(Either.getOrThrow(decodeHandle("memory", { ...c.handle, opaque: copy }))).toBe(decoded)
      }
      // the handle completes, fenced as ever
      const b = yield* EngineBackend
      yield* b.complete({ ...c.handle, opaque: c.handle.opaque.slice() })
    }).pipe(Effect.provide(engine)))

  it.effect("a handle reaches the execution it was issued for; once that one is deleted, what its id names now", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const retention = { policy: { streamPolicy: { retentionTtlMs: 1_000 } } }
      const first = yield* createAndClaim(retention)
      yield* b.complete(first.handle)
      yield* advance(2_000)
      yield* pass("trimRetention")
      // deleted: nothing of that id is stored
      const gone = yield* Effect.flip(b.renew(first.handle))
      expect(gone._tag).toBe("NotFound")
      // an execution created again under the id is another record: the old handle is stale for it
      yield* create({ executionId: first.executionId, laneId: first.lane })
      const again = yield* Effect.flip(b.complete(first.handle))
      expect(again._tag === "Contention" ? again.kind : again._tag).toBe("ExecutionNotActive")
      const second = yield* claimSome(first.lane)
      const stale = yield* Effect.flip(b.complete(first.handle))
      expect(stale._tag === "State" ? stale.kind : stale._tag).toBe("StaleLease")
      yield* b.complete(second)
      expect(Option.getOrThrow(yield* b.readExecutionState(first.executionId))).toBe("completed")
    }).pipe(Effect.provide(engine)))

  it("the store's lease and attempt ids are random version 4 UUIDs, canonical and distinct across its pool", () => {
    const ids = new Set<string>()
    for (let i = 0; i < 1_000; i++) {
      for (const id of [storeLeaseId(), storeAttemptId()]) {
        expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
        ids.add(id)
      }
    }
    expect(ids.size).toBe(2_000)
  })

  it("the memory heap pops by (score, push order), whether entries come in order or not", () => {
    let seed = 15
    const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
    for (let round = 0; round < 50; round++) {
      const heap = new MinHeap()
      const model: Array<{ score: number; seq: number; key: string }> = []
      let seq = 0
      let score = 0
      for (let step = 0; step < 400; step++) {
        const r = random()
        if (r < 0.6) {
          // mostly in order (as creations and lease expiries come), now and then earlier, ties often
          score = random() < 0.8 ? score + Math.floor(random() * 3) : Math.floor(random() * score)
          const key = `k${seq}`
          heap.push(score, key)
          model.push({ score, seq: seq++, key })
        } else {
          model.sort((a, b) => a.score - b.score || a.seq - b.seq)
          expect(heap.peek()?.key).toBe(model[0]?.key)
          expect(heap.pop()?.key).toBe(model.shift()?.key)
        }
        expect(heap.size).toBe(model.length)
      }
      model.sort((a, b) => a.score - b.score || a.seq - b.seq)
      for (const m of model) expect(heap.pop()?.key).toBe(m.key)
      expect(heap.pop()).toBeUndefined()
    }
  })

  it.effect("a lane read between creates in one millisecond lists them by id, oldest or newest first", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const first = yield* create()
      const ids = [first.executionId]
      const read = (newestFirst: boolean) =>
        Effect.map(
          b.listLaneExecutions({ laneId: first.lane, limit: 1_000, order: newestFirst ? "newest" : "oldest" }),
          (page) => page.executions.map((e) => e.executionId)
        )
      for (let i = 0; i < 30; i++) {
        ids.push((yield* create({ laneId: first.lane })).executionId)
        if (i % 7 === 0) {
          const sorted = [...ids].sort()
          expect(yield* read(false)).toEqual(sorted)
          expect(yield* read(true)).toEqual([...sorted].reverse())
        }
      }
      expect(yield* read(false)).toEqual([...ids].sort())
    }).pipe(Effect.provide(engine)))

  it("an execution's rarely set fields live in a second record, made by the first write of a value other than the default", () => {
    const e = new Exec({
      events: undefined,
      id: Ids.deterministicExecutionIdSolo(Ids.unsafe.laneId("l"), "7b0c5a52-3d44-4f55-8a11-9c2d7e6f0a13"),
      namespace: Ids.unsafe.namespace("n"),
      laneId: Ids.unsafe.laneId("l"),
      kind: "k",
      partition: 0,
      creatorIdentity: "",
      priority: 0,
      requiredCaps: [],
      claimGroup: "k\n",
      delayUntil: undefined,
      createdAt: 1,
      payload: new Uint8Array(0),
      payloadEncoding: undefined,
      policy: undefined,
      tags: {},
      traceContext: undefined,
      executionDeadlineAt: undefined
    })
    // what a claim and a completion write: defaults, no second record
    e.leaseLastRenewedAt = undefined
    e.leaseRevokedAt = undefined
    e.attemptDeadlineAt = undefined
    e.executionDeadlineAt = undefined
    e.retryCount = 0
    expect(e.rare).toBeUndefined()
    expect([e.retryCount, e.signalCount, e.unsatisfiedCount, e.progressPct, e.suspension]).toEqual([0, 0, 0, undefined, undefined])
    e.retryCount = 2
    e.progressMessage = "half"
    expect(e.rare).toBeDefined()
    expect([e.retryCount, e.progressMessage, e.replayCount]).toEqual([2, "half", 0])
    e.retryCount = 0
    e.progressMessage = undefined
    expect([e.retryCount, e.progressMessage]).toEqual([0, undefined])
    // given at creation: made then
    const traced = new Exec({ ...e, kind: "k", createdAt: 1, traceContext: "00-ab", executionDeadlineAt: 5 })
    expect([traced.traceContext, traced.executionDeadlineAt]).toEqual(["00-ab", 5])
  })

  it.effect("a read event is its body and offset alone; the creating step's changes folded into its ExecutionCreated", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const c = yield* createAndClaim()
      yield* b.complete(c.handle)
      const page = yield* b.readEvents({ filter: ofExecution(c.executionId), limit: 100 })
      expect(page.events.map((e) => Object.keys(e).sort())).toEqual([
        ["_tag", "at", "executionId", "laneId", "offset", "publicState"],
        ["_tag", "at", "attemptIndex", "executionId", "laneId", "offset", "workerInstanceId"],
        ["_tag", "at", "attemptIndex", "executionId", "laneId", "offset"]
      ])
      const delayed = yield* create({ delayUntil: (yield* Clock.currentTimeMillis) + 60_000 })
      const created = yield* b.readEvents({ filter: ofExecution(delayed.executionId), limit: 100 })
      expect(created.events.map((e) => e._tag === "ExecutionCreated" && e.publicState)).toEqual(["delayed"])
    }).pipe(Effect.provide(engine)))
})
