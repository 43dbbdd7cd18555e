/**
 * Scheduling (docs/design/executions.md#claiming): priority and FIFO order,
 * capability and kind routing, delayed creation, retries with backoff and their
 * exhaustion, execution deadlines and attempt timeouts.
 */
import { describe, expect } from "@effect/vitest"
import { Effect } from "effect"
import * as Ids from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type { ExecutionId, LaneId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  addEdge,
  addMember,
  advance,
  backend,
  bytes,
  claimArgs,
  claimNone,
  type Claimed,
  claimSome,
  create,
  type Env,
  createAndClaim,
  INSTANCE,
  createFlow,
  executionIdOnPartition,
  failsWith,
  flowIdOnPartition,
  gpuHeadsAcrossPartitions,
  info,
  newLane,
  now,
  pass,
  passUntilDone,
  payloadOf,
  publicState,
  snapshot,
  type Tester,
  validationFails,
  vector,
  WORKER
} from "./helpers.js"

const failWith = (classification: M.FailureClass, detail?: string) => ({
  reason: detail === undefined ? { message: "boom" } : { message: "boom", detail: bytes(detail) },
  classification
})

/** Claims everything on `lane` and returns the execution ids in claim order. */
const drain = (lane: LaneId, count: number) =>
  Effect.gen(function*() {
    const order: Array<ExecutionId> = []
    for (let i = 0; i < count; i++) order.push(payloadOf(yield* claimSome(lane)).executionId)
    yield* claimNone(lane)
    return order
  })

/**
 * Fails the current attempt of `id`, expects `RetryScheduled{now + delay}`,
 * promotes it after the delay and claims the next attempt.
 */
const retryOnce = (lane: LaneId, h: M.Handle, delay: number) =>
  Effect.gen(function*() {
    const b = yield* backend
    const t0 = yield* now
    const out = yield* b.fail(h, failWith("Transient"))
    expect(out).toEqual({ _tag: "RetryScheduled", delayUntil: t0 + delay })
    const id = payloadOf(h).executionId
    expect(yield* publicState(id)).toBe("delayed")
    yield* claimNone(lane)
    if (delay > 0) {
      yield* advance(delay - 1)
      yield* pass("promoteDelayed")
      expect(yield* publicState(id)).toBe("delayed")
      yield* advance(1)
    }
    yield* pass("promoteDelayed")
    expect(yield* publicState(id)).toBe("waiting")
    const next = yield* claimSome(lane)
    expect(next.kind).toBe("fresh")
    expect(payloadOf(next).attemptIndex).toBe(payloadOf(h).attemptIndex + 1)
    return next
  })

export const scheduling = (t: Tester) =>
  describe("scheduling", () => {
    describe("priority and order", () => {
      t.test("higher priority first, then FIFO by creation time", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const low1 = yield* create({ laneId: lane })
          yield* advance(1)
          const high1 = yield* create({ laneId: lane, priority: 5 })
          yield* advance(1)
          const low2 = yield* create({ laneId: lane })
          yield* advance(1)
          const high2 = yield* create({ laneId: lane, priority: 5 })
          yield* advance(1)
          const top = yield* create({ laneId: lane, priority: 9 })
          expect(yield* drain(lane, 5)).toEqual([
            top.executionId,
            high1.executionId,
            high2.executionId,
            low1.executionId,
            low2.executionId
          ])
        }))

      t.test("priority is clamped to 0..9000 (clamped values tie and fall back to FIFO)", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const over = yield* create({ laneId: lane, priority: 20_000 })
          yield* advance(1)
          const max = yield* create({ laneId: lane, priority: 9_000 })
          yield* advance(1)
          const under = yield* create({ laneId: lane, priority: -3 })
          yield* advance(1)
          const zero = yield* create({ laneId: lane })
          expect((yield* info(over.executionId)).priority).toBe(9_000)
          expect((yield* info(under.executionId)).priority).toBe(0)
          expect(yield* drain(lane, 4)).toEqual([over.executionId, max.executionId, under.executionId, zero.executionId])
        }))

      t.test("the policy priority applies when the argument is 0", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const plain = yield* create({ laneId: lane })
          yield* advance(1)
          const viaPolicy = yield* create({ laneId: lane, policy: { priority: 7 } })
          expect((yield* info(viaPolicy.executionId)).priority).toBe(7)
          expect(yield* drain(lane, 2)).toEqual([viaPolicy.executionId, plain.executionId])
        }))

      t.test("changePriority re-scores with the original creation time", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const a = yield* create({ laneId: lane })
          yield* advance(1)
          const d = yield* create({ laneId: lane })
          yield* advance(1)
          const e = yield* create({ laneId: lane })
          yield* advance(1)
          const c = yield* create({ laneId: lane })
          expect(yield* b.changePriority({ executionId: c.executionId, newPriority: 10 })).toEqual({
            _tag: "Changed",
            executionId: c.executionId
          })
          expect((yield* info(c.executionId)).priority).toBe(10)
          // up and back down: d keeps its place before e
          yield* b.changePriority({ executionId: d.executionId, newPriority: 5 })
          yield* advance(10)
          yield* b.changePriority({ executionId: d.executionId, newPriority: 0 })
          // idempotent
          yield* b.changePriority({ executionId: d.executionId, newPriority: 0 })
          expect(yield* drain(lane, 4)).toEqual([c.executionId, a.executionId, d.executionId, e.executionId])
        }))

      t.test("changePriority clamps; on a non-eligible execution it is ExecutionNotEligible; missing is NotFound", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const w = yield* create()
          yield* b.changePriority({ executionId: w.executionId, newPriority: 99_999 })
          expect((yield* info(w.executionId)).priority).toBe(9_000)
          const active = yield* createAndClaim()
          yield* failsWith(
            b.changePriority({ executionId: active.executionId, newPriority: 1 }),
            "Contention",
            "ExecutionNotEligible"
          )
          const delayed = yield* create({ delayUntil: (yield* now) + 10_000 })
          yield* failsWith(
            b.changePriority({ executionId: delayed.executionId, newPriority: 1 }),
            "Contention",
            "ExecutionNotEligible"
          )
          const e = yield* failsWith(
            b.changePriority({ executionId: yield* Ids.executionIdSolo(w.lane), newPriority: 1 }),
            "NotFound"
          )
          expect(e.entity).toBe("execution")
        }))
    })

    describe("capability routing", () => {
      t.test("required capabilities must be a case-sensitive subset of the worker's", () =>
        Effect.gen(function*() {
          const c = yield* create({ policy: { routingRequirements: { requiredCapabilities: ["gpu", "cuda12"] } } })
          yield* claimNone(c.lane)
          yield* claimNone(c.lane, { tokens: ["gpu"] })
          yield* claimNone(c.lane, { tokens: ["GPU", "cuda12"] })
          expect(yield* publicState(c.executionId)).toBe("waiting")
          const h = yield* claimSome(c.lane, { tokens: ["cuda12", "x86", "gpu", "gpu"] })
          expect(payloadOf(h).executionId).toBe(c.executionId)
        }))

      t.test("an execution without requirements matches every worker", () =>
        Effect.gen(function*() {
          const c = yield* create()
          yield* claimSome(c.lane, { tokens: ["anything"] })
        }))

      t.test("an unmatched execution does not hide others on the lane and stays waiting", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const gpu = yield* create({
            laneId: lane,
            executionId: yield* executionIdOnPartition(11),
            policy: { routingRequirements: { requiredCapabilities: ["gpu"] } }
          })
          yield* advance(1)
          const plain = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(12) })
          const h = yield* claimSome(lane)
          expect(payloadOf(h).executionId).toBe(plain.executionId)
          expect(yield* publicState(gpu.executionId)).toBe("waiting")
          const g = yield* claimSome(lane, { tokens: ["gpu"] })
          expect(payloadOf(g).executionId).toBe(gpu.executionId)
        }))

      t.test("the best capable candidate wins across the eligible and reclaim indexes", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          // a (needs gpu) and b run and their leases run out; c waits; the order is a, b, c
          const a = yield* create({ laneId: lane, policy: { routingRequirements: { requiredCapabilities: ["gpu"] } } })
          yield* advance(1)
          const b = yield* create({ laneId: lane })
          yield* advance(1)
          expect(payloadOf(yield* claimSome(lane, { tokens: ["gpu"], ttl: 1_000 })).executionId).toBe(a.executionId)
          expect(payloadOf(yield* claimSome(lane, { ttl: 1_000 })).executionId).toBe(b.executionId)
          const c = yield* create({ laneId: lane })
          yield* advance(1_000)
          yield* pass("expireLeases")
          // without gpu: a is not for this worker, b (reclaim) comes before c (eligible)
          const h = yield* claimSome(lane)
          expect(payloadOf(h)).toMatchObject({ executionId: b.executionId, attemptIndex: 1 })
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(c.executionId)
          yield* claimNone(lane)
          expect(payloadOf(yield* claimSome(lane, { tokens: ["gpu"] }))).toMatchObject({ executionId: a.executionId, attemptIndex: 1 })
        }))

      t.test("the best capable candidate wins across partitions, whatever their heads need", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const n = t.options.numFlowPartitions
          const on = (p: number) => executionIdOnPartition(p % n)
          const gpu = { routingRequirements: { requiredCapabilities: ["gpu"] } }
          const { g0, g1, x, y, z } = yield* gpuHeadsAcrossPartitions(lane, n)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(z.executionId)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(x.executionId)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(y.executionId)
          yield* claimNone(lane)
          expect(payloadOf(yield* claimSome(lane, { tokens: ["gpu"] })).executionId).toBe(g0.executionId)
          expect(payloadOf(yield* claimSome(lane, { tokens: ["gpu"] })).executionId).toBe(g1.executionId)
          // the same order in one claimMany
          const lane2 = yield* newLane()
          yield* create({ laneId: lane2, executionId: yield* on(3), priority: 1, policy: gpu })
          yield* advance(1)
          const a = yield* create({ laneId: lane2, executionId: yield* on(4) })
          yield* advance(1)
          const c = yield* create({ laneId: lane2, executionId: yield* on(3) })
          yield* advance(1)
          const batch = yield* b.claimMany(claimArgs(lane2), 3)
          expect(batch.map((h) => payloadOf(h).executionId)).toEqual([a.executionId, c.executionId])
        }))

      t.test("a partition deferred for a better candidate is not replaced by a worse one found later", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const n = t.options.numFlowPartitions
          const on = (p: number) => executionIdOnPartition(p % n)
          const gpu = { routingRequirements: { requiredCapabilities: ["gpu"] } }
          // partition 5: its head needs gpu (priority 1), then x; partition 6: its head needs gpu
          // (the oldest), then y. Without gpu: x, then y; the walk defers 5 for x, then sees y.
          yield* create({ laneId: lane, executionId: yield* on(6), policy: gpu })
          yield* advance(1)
          const x = yield* create({ laneId: lane, executionId: yield* on(5) })
          yield* advance(1)
          yield* create({ laneId: lane, executionId: yield* on(5), priority: 1, policy: gpu })
          yield* advance(1)
          const y = yield* create({ laneId: lane, executionId: yield* on(6) })
          yield* advance(1)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(x.executionId)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(y.executionId)
          yield* claimNone(lane)
        }))

      t.test("the best capable candidate is found behind the better heads of many partitions", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const parts = Math.min(40, t.options.numFlowPartitions)
          const gpu = { routingRequirements: { requiredCapabilities: ["gpu"] } }
          // every partition's head needs gpu; the candidates without requirements come in the
          // reverse order of their partitions' heads (the oldest one on the last partition)
          const heads: Array<ExecutionId> = []
          for (let p = 0; p < parts; p++) {
            heads.push((yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), priority: 1, policy: gpu })).executionId)
            yield* advance(1)
          }
          const plain: Array<ExecutionId> = []
          for (let p = parts - 1; p >= 0; p--) {
            plain.push((yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p) })).executionId)
            yield* advance(1)
          }
          for (let i = 0; i < 3; i++) expect(payloadOf(yield* claimSome(lane)).executionId).toBe(plain[i])
          expect(payloadOf(yield* claimSome(lane, { tokens: ["gpu"] })).executionId).toBe(heads[0])
        }))

      t.test("a partition whose best candidate was blocked does not jump the claim order", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const n = t.options.numFlowPartitions
          const flowId = yield* createFlow(yield* flowIdOnPartition(0, n))
          const first = yield* addMember(flowId, { laneId: lane })
          yield* advance(1)
          const other = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(1 % n), priority: 5 })
          yield* advance(1)
          const child = yield* addMember(flowId, { laneId: lane, priority: 9 })
          yield* advance(1)
          // the child was the best candidate of its partition; the edge blocks it
          yield* addEdge(flowId, first.executionId, child.executionId)
          expect(yield* publicState(child.executionId)).toBe("waiting_children")
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(other.executionId)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(first.executionId)
          yield* claimNone(lane)
        }))

      t.test("requirements given as policy JSON text are honoured", () =>
        Effect.gen(function*() {
          const c = yield* create({ policy: "{\"routing_requirements\":{\"required_capabilities\":[\"b\",\"a\"]}}" })
          yield* claimNone(c.lane, { tokens: ["a"] })
          yield* claimSome(c.lane, { tokens: ["a", "b"] })
        }))
    })

    describe("kind routing", () => {
      /**
       * Partition 0 holds `n0` (kind new, priority 2) then `y`; partition 1 holds `n1` (kind new,
       * priority 1) then `z`; partition 2 holds `x`: created n0, n1, z, x, y a millisecond apart;
       * z, x and y are of kind old. The claim order is n0, n1, z, x, y.
       */
      const newHeadsAcrossPartitions = (lane: LaneId) =>
        Effect.gen(function*() {
          const on = (p: number) => executionIdOnPartition(p % t.options.numFlowPartitions)
          const next = (o: Parameters<typeof create>[0]) => Effect.zipLeft(create({ laneId: lane, executionKind: "old", ...o }), advance(1))
          const n0 = yield* next({ executionId: yield* on(0), priority: 2, executionKind: "new" })
          const n1 = yield* next({ executionId: yield* on(1), priority: 1, executionKind: "new" })
          const z = yield* next({ executionId: yield* on(1) })
          const x = yield* next({ executionId: yield* on(2) })
          const y = yield* next({ executionId: yield* on(0) })
          return { n0, n1, z, x, y }
        })

      t.test("a claim with kinds finds its work behind many executions of other kinds on the same partition", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const p = 3 % t.options.numFlowPartitions
          const ids = yield* Effect.forEach(Array.from({ length: 100 }), () => executionIdOnPartition(p))
          const others = yield* b.createExecutions(ids.map((executionId) => ({
            executionId,
            laneId: lane,
            namespace: Ids.unsafe.namespace("conformance"),
            executionKind: "a"
          })))
          expect(others.filter((r) => r._tag === "Created")).toHaveLength(100)
          yield* advance(1)
          const wanted = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "b" })
          expect(payloadOf(yield* claimSome(lane, { kinds: ["b"] })).executionId).toBe(wanted.executionId)
          yield* claimNone(lane, { kinds: ["b"] })
          yield* advance(1)
          const late = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "c" })
          const g = yield* b.claimForWorker({
            laneId: lane,
            workerId: WORKER,
            workerInstanceId: INSTANCE,
            workerCapabilities: [],
            kinds: ["c"],
            grantTtlMs: 5_000
          })
          expect(g._tag === "Granted" && g.grant.executionId).toBe(late.executionId)
        }))

      t.test("a claim with kinds finds the lane's first kind behind many better executions of a later kind", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const p = 5 % t.options.numFlowPartitions
          const first = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "a" })
          yield* advance(1)
          const second = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "a" })
          yield* advance(1)
          const ids = yield* Effect.forEach(Array.from({ length: 100 }), () => executionIdOnPartition(p))
          const later = yield* b.createExecutions(ids.map((executionId) => ({
            executionId,
            laneId: lane,
            namespace: Ids.unsafe.namespace("conformance"),
            executionKind: "b",
            priority: 5
          })))
          expect(later.filter((r) => r._tag === "Created")).toHaveLength(100)
          yield* advance(1)
          expect(payloadOf(yield* claimSome(lane, { kinds: ["a"] })).executionId).toBe(first.executionId)
          const third = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "a" })
          expect(payloadOf(yield* claimSome(lane, { kinds: ["a"] })).executionId).toBe(second.executionId)
          expect(payloadOf(yield* claimSome(lane, { kinds: ["a"] })).executionId).toBe(third.executionId)
          yield* claimNone(lane, { kinds: ["a"] })
          expect(ids).toContain(payloadOf(yield* claimSome(lane, { kinds: ["b"] })).executionId)
        }))

      t.test("a claim with kinds passes over other kinds and takes the best candidate of its kinds across partitions", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const { n0, n1, x, y, z } = yield* newHeadsAcrossPartitions(lane)
          const old = { kinds: ["old"] }
          yield* claimNone(lane, { kinds: ["other"] })
          expect(payloadOf(yield* claimSome(lane, old)).executionId).toBe(z.executionId)
          // passed over, not consumed: still waiting, never attempted
          for (const c of [n0, n1]) {
            expect(yield* publicState(c.executionId)).toBe("waiting")
            expect((yield* snapshot(c.executionId)).totalAttemptCount).toBe(0)
          }
          expect(payloadOf(yield* claimSome(lane, old)).executionId).toBe(x.executionId)
          expect(payloadOf(yield* claimSome(lane, old)).executionId).toBe(y.executionId)
          // only other kinds wait: nothing for this claimer
          yield* claimNone(lane, old)
          yield* claimNone(lane, { kinds: ["other", "old"] })
          expect(payloadOf(yield* claimSome(lane, { kinds: ["old", "new"] })).executionId).toBe(n0.executionId)
          expect(payloadOf(yield* claimSome(lane)).executionId).toBe(n1.executionId)
          yield* claimNone(lane)
          // the same order in one claimMany
          const lane2 = yield* newLane()
          const two = yield* newHeadsAcrossPartitions(lane2)
          const batch = yield* b.claimMany(claimArgs(lane2, old), 10)
          expect(batch.map((h) => payloadOf(h).executionId)).toEqual([two.z, two.x, two.y].map((c) => c.executionId))
          const rest = yield* b.claimMany(claimArgs(lane2, { kinds: ["new", "other"] }), 10)
          expect(rest.map((h) => payloadOf(h).executionId)).toEqual([two.n0, two.n1].map((c) => c.executionId))
        }))

      t.test("a claim with kinds finds its kind behind the better heads of other kinds on many partitions", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const parts = Math.min(40, t.options.numFlowPartitions)
          // every partition's head is of kind new; the old ones come in the reverse order of
          // their partitions' heads (the oldest one on the last partition)
          const heads: Array<ExecutionId> = []
          for (let p = 0; p < parts; p++) {
            const c = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), priority: 1, executionKind: "new" })
            heads.push(c.executionId)
            yield* advance(1)
          }
          const old: Array<ExecutionId> = []
          for (let p = parts - 1; p >= 0; p--) {
            old.push((yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "old" })).executionId)
            yield* advance(1)
          }
          for (let i = 0; i < 3; i++) expect(payloadOf(yield* claimSome(lane, { kinds: ["old"] })).executionId).toBe(old[i])
          expect(payloadOf(yield* claimSome(lane, { kinds: ["new"] })).executionId).toBe(heads[0])
        }))

      t.test("a reclaimable execution of another kind is passed over; one of the claimer's kinds is reclaimed", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const a = yield* create({ laneId: lane, executionKind: "old" })
          expect(payloadOf(yield* claimSome(lane, { ttl: 1_000 })).executionId).toBe(a.executionId)
          yield* advance(1_000)
          yield* pass("expireLeases")
          const c = yield* create({ laneId: lane, executionKind: "new" })
          expect(payloadOf(yield* claimSome(lane, { kinds: ["new"] })).executionId).toBe(c.executionId)
          yield* claimNone(lane, { kinds: ["new"] })
          expect(payloadOf(yield* claimSome(lane, { kinds: ["old"] }))).toMatchObject({ executionId: a.executionId, attemptIndex: 1 })
        }))

      t.test("the empty kind is a kind like another", () =>
        Effect.gen(function*() {
          const c = yield* create({ executionKind: "" })
          yield* claimNone(c.lane, { kinds: ["x"] })
          expect(payloadOf(yield* claimSome(c.lane, { kinds: ["", "x"] })).executionId).toBe(c.executionId)
        }))

      t.test("claimForWorker with kinds grants only an execution of those kinds", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const { n0, z } = yield* newHeadsAcrossPartitions(lane)
          const grant = (kinds: ReadonlyArray<string>, worker: string) =>
            Effect.map(
              b.claimForWorker({
                laneId: lane,
                workerId: Ids.unsafe.workerId(worker),
                workerInstanceId: INSTANCE,
                workerCapabilities: [],
                grantTtlMs: 5_000,
                kinds
              }),
              (g) => (g._tag === "Granted" ? g.grant.executionId : "none")
            )
          expect(yield* grant(["other"], "w-0")).toBe("none")
          expect(yield* grant(["old"], "w-1")).toBe(z.executionId)
          expect(yield* grant(["new"], "w-2")).toBe(n0.executionId)
        }))

      t.test("bad kinds are refused before anything is written", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create({ executionKind: "k" })
          yield* validationFails(b.claim(claimArgs(c.lane, { kinds: [] })), "InvalidInput", "kinds")
          const many = Array.from({ length: Limits.claimKinds + 1 }, (_, i) => `k${i}`)
          yield* validationFails(b.claimMany(claimArgs(c.lane, { kinds: many }), 5), "LimitExceeded", "Limits.claimKinds")
          const long = "k".repeat(Limits.nameBytes + 1)
          const e = yield* validationFails(b.claim(claimArgs(c.lane, { kinds: ["k", long] })), "LimitExceeded", "Limits.nameBytes")
          expect(e.detail).not.toContain(long)
          yield* validationFails(
            b.claimForWorker({
              laneId: c.lane,
              workerId: WORKER,
              workerInstanceId: INSTANCE,
              workerCapabilities: [],
              grantTtlMs: 5_000,
              kinds: []
            }),
            "InvalidInput",
            "kinds"
          )
          expect(yield* publicState(c.executionId)).toBe("waiting")
          const at = Array.from({ length: Limits.claimKinds }, (_, i) => (i === 0 ? "k" : `k${i}`))
          expect(payloadOf(yield* claimSome(c.lane, { kinds: at })).executionId).toBe(c.executionId)
        }))
    })

    describe("delays", () => {
      t.test("delayUntil in the future creates a delayed execution that promoteDelayed releases", () =>
        Effect.gen(function*() {
          const t0 = yield* now
          const c = yield* create({ delayUntil: t0 + 2_000 })
          expect(c.result).toEqual({ _tag: "Created", executionId: c.executionId, publicState: "delayed" })
          expect(yield* vector(c.executionId)).toEqual({
            lifecyclePhase: "runnable",
            ownershipState: "unowned",
            eligibilityState: "not_eligible_until_time",
            blockingReason: "waiting_for_delay",
            terminalOutcome: "none",
            attemptState: "pending_first_attempt",
            publicState: "delayed"
          })
          yield* claimNone(c.lane)
          yield* advance(1_999)
          yield* pass("promoteDelayed")
          yield* claimNone(c.lane)
          yield* advance(1)
          yield* pass("promoteDelayed")
          expect(yield* vector(c.executionId)).toMatchObject({
            eligibilityState: "eligible_now",
            attemptState: "pending_first_attempt",
            publicState: "waiting"
          })
          const h = yield* claimSome(c.lane)
          expect(h.kind).toBe("fresh")
          expect(payloadOf(h).attemptIndex).toBe(0)
        }))

      t.test("delayUntil now or in the past creates a waiting execution", () =>
        Effect.gen(function*() {
          const t0 = yield* now
          const atNow = yield* create({ delayUntil: t0 })
          expect(atNow.result).toMatchObject({ publicState: "waiting" })
          const past = yield* create({ delayUntil: Math.max(0, t0 - 1_000) })
          expect(past.result).toMatchObject({ publicState: "waiting" })
          yield* claimSome(past.lane)
        }))

      t.test("a delayUntil in the policy applies when the argument is absent", () =>
        Effect.gen(function*() {
          const c = yield* create({ policy: { delayUntil: (yield* now) + 1_000 } })
          expect(c.result).toMatchObject({ publicState: "delayed" })
        }))

      t.test("promoteDelayed reports when the next delayed execution is due (nextDueAt)", () =>
        Effect.gen(function*() {
          const t0 = yield* now
          const c = yield* create({ delayUntil: t0 + 300 })
          let r = yield* pass("promoteDelayed")
          for (let i = 0; r.more && i < 50; i++) r = yield* pass("promoteDelayed")
          expect(r.more).toBe(false)
          // a shared engine may hold other tests' delayed work, due earlier
          if (t.options.fresh) expect(r.nextDueAt).toBe(t0 + 300)
          else {
            expect(r.nextDueAt).toBeGreaterThan(t0)
            expect(r.nextDueAt).toBeLessThanOrEqual(t0 + 300)
          }
          yield* advance(300)
          const due = yield* pass("promoteDelayed")
          expect(due.processed).toBeGreaterThanOrEqual(1)
          expect(yield* publicState(c.executionId)).toBe("waiting")
          if (t.options.fresh) expect(due).toEqual({ pass: "promoteDelayed", processed: 1, more: false })
        }))

      t.test("promoteDelayed is bounded by batchSize and reports more", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const t0 = yield* now
          const ids: Array<ExecutionId> = []
          for (let i = 0; i < 3; i++) ids.push((yield* create({ laneId: lane, delayUntil: t0 + 100 })).executionId)
          yield* advance(100)
          const first = yield* pass("promoteDelayed", 1)
          expect(first).toEqual({ pass: "promoteDelayed", processed: 1, more: true })
          yield* passUntilDone("promoteDelayed")
          for (const id of ids) expect(yield* publicState(id)).toBe("waiting")
          yield* drain(lane, 3)
        }))
    })

    describe("retries", () => {
      t.test("fixed backoff: RetryScheduled, promote after the delay, retry attempts, then TerminalFailed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({
            policy: { retryPolicy: { maxRetries: 2, backoff: { type: "fixed", delayMs: 1_000 } } }
          })
          const t0 = yield* now
          const out = yield* b.fail(c.handle, failWith("Transient"))
          expect(out).toEqual({ _tag: "RetryScheduled", delayUntil: t0 + 1_000 })
          expect(yield* vector(c.executionId)).toEqual({
            lifecyclePhase: "runnable",
            ownershipState: "unowned",
            eligibilityState: "not_eligible_until_time",
            blockingReason: "waiting_for_retry_backoff",
            terminalOutcome: "none",
            attemptState: "pending_retry_attempt",
            publicState: "delayed"
          })
          expect((yield* snapshot(c.executionId)).currentLease).toBeUndefined()
          expect((yield* snapshot(c.executionId)).blockingDetail).toBe(
            `retry backoff until ${t0 + 1_000} (attempt 0 failed: boom)`
          )
          yield* claimNone(c.lane)
          yield* advance(999)
          yield* pass("promoteDelayed")
          expect(yield* publicState(c.executionId)).toBe("delayed")
          yield* advance(1)
          yield* pass("promoteDelayed")
          expect((yield* vector(c.executionId)).attemptState).toBe("pending_retry_attempt")
          const h1 = yield* claimSome(c.lane)
          expect(payloadOf(h1)).toMatchObject({ attemptIndex: 1, leaseEpoch: 2 })
          expect(payloadOf(h1).attemptId).not.toBe(payloadOf(c.handle).attemptId)
          expect((yield* snapshot(c.executionId)).totalAttemptCount).toBe(2)
          // the old attempt's handle is fenced
          yield* failsWith(b.complete(c.handle), "State", "StaleLease")
          const h2 = yield* retryOnce(c.lane, h1, 1_000)
          expect(payloadOf(h2)).toMatchObject({ attemptIndex: 2, leaseEpoch: 3 })
          expect(yield* b.fail(h2, failWith("Transient"))).toEqual({ _tag: "TerminalFailed" })
          expect(yield* vector(c.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            terminalOutcome: "failed",
            attemptState: "attempt_terminal",
            publicState: "failed"
          })
          expect((yield* snapshot(c.executionId)).totalAttemptCount).toBe(3)
          yield* claimNone(c.lane)
        }))

      t.test("exponential backoff: min(initial × multiplier^n, max)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({
            policy: {
              retryPolicy: {
                maxRetries: 3,
                backoff: { type: "exponential", initialDelayMs: 100, maxDelayMs: 500, multiplier: 3 }
              }
            }
          })
          let h = c.handle
          for (const delay of [100, 300, 500]) h = yield* retryOnce(c.lane, h, delay)
          expect(yield* b.fail(h, failWith("Timeout"))).toEqual({ _tag: "TerminalFailed" })
        }))

      t.test("an empty retry policy means 3 retries with the default 1 s × 2^n backoff", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ policy: { retryPolicy: {} } })
          let h = c.handle
          for (const delay of [1_000, 2_000, 4_000]) h = yield* retryOnce(c.lane, h, delay)
          expect(yield* b.fail(h, failWith("InfraCrash"))).toEqual({ _tag: "TerminalFailed" })
          expect((yield* snapshot(c.executionId)).totalAttemptCount).toBe(4)
        }))

      t.test("Permanent and Cancelled failures never retry", () =>
        Effect.gen(function*() {
          const b = yield* backend
          for (const cls of ["Permanent", "Cancelled"] as const) {
            const c = yield* createAndClaim({ policy: { retryPolicy: { maxRetries: 5 } } })
            expect(yield* b.fail(c.handle, failWith(cls))).toEqual({ _tag: "TerminalFailed" })
            expect(yield* publicState(c.executionId)).toBe("failed")
          }
        }))

      t.test("non-empty retryable_categories: only listed categories retry", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const policy = { retryPolicy: { maxRetries: 3, retryableCategories: ["rate_limit"] } }
          const listed = yield* createAndClaim({ policy })
          expect((yield* b.fail(listed.handle, failWith("Transient", "rate_limit")))._tag).toBe("RetryScheduled")
          const other = yield* createAndClaim({ policy })
          expect(yield* b.fail(other.handle, failWith("Transient", "disk_full"))).toEqual({ _tag: "TerminalFailed" })
          // without a detail the category is the class name, "transient", which is not listed
          const noDetail = yield* createAndClaim({ policy })
          expect(yield* b.fail(noDetail.handle, failWith("Transient"))).toEqual({ _tag: "TerminalFailed" })
          const byClass = yield* createAndClaim({
            policy: { retryPolicy: { maxRetries: 3, retryableCategories: ["transient"] } }
          })
          expect((yield* b.fail(byClass.handle, failWith("Transient")))._tag).toBe("RetryScheduled")
        }))

      t.test("started_at is the first claim and survives retries", () =>
        Effect.gen(function*() {
          const t0 = yield* now
          const c = yield* createAndClaim({
            policy: { retryPolicy: { maxRetries: 1, backoff: { type: "fixed", delayMs: 10 } } }
          })
          yield* retryOnce(c.lane, c.handle, 10)
          expect((yield* info(c.executionId)).startedAt).toBe(String(t0))
        }))
    })

    describe("deadlines and timeouts", () => {
      t.test("an execution deadline expires a waiting execution (expireExecutions)", () =>
        Effect.gen(function*() {
          const t0 = yield* now
          const c = yield* create({ executionDeadlineAt: t0 + 5_000 })
          yield* advance(4_999)
          yield* pass("expireExecutions")
          expect(yield* publicState(c.executionId)).toBe("waiting")
          yield* advance(1)
          yield* pass("expireExecutions")
          expect(yield* vector(c.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            terminalOutcome: "expired",
            publicState: "expired"
          })
          yield* claimNone(c.lane)
        }))

      t.test("an execution deadline expires an active execution and fences its holder", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ executionDeadlineAt: (yield* now) + 1_000 }, { ttl: 60_000 })
          yield* advance(1_000)
          yield* pass("expireExecutions")
          expect(yield* publicState(c.executionId)).toBe("expired")
          const e = yield* failsWith(b.complete(c.handle), "Contention", "ExecutionNotActive")
          expect(e.notActive?.terminalOutcome).toBe("expired")
        }))

      t.test("a completed execution is not expired by its deadline", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ executionDeadlineAt: (yield* now) + 1_000 })
          yield* b.complete(c.handle)
          yield* advance(2_000)
          yield* pass("expireExecutions")
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))

      t.test("the deadline ends with the first terminal transition: a replayed execution runs without it", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ executionDeadlineAt: (yield* now) + 1_000 })
          yield* b.complete(c.handle)
          yield* b.replayExecution(c.executionId)
          yield* advance(1_000)
          expect(yield* pass("expireExecutions")).toMatchObject({ processed: 0 })
          expect(yield* publicState(c.executionId)).toBe("waiting")
          yield* claimSome(c.lane)
        }))

      t.test("the attempt timeout of the policy is armed at claim and expireAttempts ends it", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ policy: { timeoutPolicy: { attemptTimeoutMs: 2_000 } } }, { ttl: 60_000 })
          yield* advance(1_999)
          yield* pass("expireAttempts")
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* advance(1)
          yield* pass("expireAttempts")
          expect(yield* publicState(c.executionId)).toBe("expired")
          yield* failsWith(b.renew(c.handle), "Contention", "ExecutionNotActive")
        }))

      // Each later attempt runs on its own timeout: what the earlier attempt armed never ends it.
      const laterAttempt = (name: string, interrupt: (c: Claimed) => Effect.Effect<M.Handle, unknown, Env>) =>
        t.test(`the attempt timeout of an earlier attempt does not end the attempt after ${name}`, () =>
          Effect.gen(function*() {
            const b = yield* backend
            const c = yield* createAndClaim({
              policy: {
                timeoutPolicy: { attemptTimeoutMs: 2_000 },
                retryPolicy: { maxRetries: 3, backoff: { type: "fixed", delayMs: 500 } }
              }
            }, { ttl: 500 })
            yield* advance(400)
            // the next attempt is leased at 1 500, its timeout due at 3 500
            const h = yield* interrupt(c)
            expect(payloadOf(h).executionId).toBe(c.executionId)
            yield* advance(500)
            yield* pass("expireAttempts")
            expect(yield* publicState(c.executionId)).toBe("active")
            yield* b.renew(h)
            yield* advance(1_499)
            yield* pass("expireAttempts")
            expect(yield* publicState(c.executionId)).toBe("active")
            yield* advance(1)
            yield* pass("expireAttempts")
            expect(yield* publicState(c.executionId)).toBe("expired")
          }))
      laterAttempt("a retry", (c) =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* b.fail(c.handle, { reason: { message: "x" }, classification: "Transient" })
          yield* advance(1_100)
          yield* pass("promoteDelayed")
          return yield* claimSome(c.lane, { ttl: 60_000 })
        }))
      laterAttempt("a reclaim", (c) =>
        Effect.gen(function*() {
          yield* advance(100)
          yield* pass("expireLeases")
          yield* advance(1_000)
          return yield* claimSome(c.lane, { ttl: 60_000 })
        }))
      laterAttempt("a revoked lease", (c) =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* b.revokeLease({ executionId: c.executionId, reason: "x" })
          yield* advance(1_100)
          return yield* claimSome(c.lane, { ttl: 60_000 })
        }))
      laterAttempt("a delay", (c) =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* b.delay(c.handle, { delayUntil: (yield* now) + 1_000 })
          yield* advance(1_100)
          yield* pass("promoteDelayed")
          return yield* claimSome(c.lane, { ttl: 60_000 })
        }))
    })
  })
