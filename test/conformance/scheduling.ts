/**
 * Scheduling (docs/design/executions.md#claiming): priority and FIFO order,
 * capability routing, delayed creation, retries with backoff and their
 * exhaustion, execution deadlines and attempt timeouts.
 */
import { describe, expect } from "@effect/vitest"
import { Effect } from "effect"
import * as Ids from "../../src/Ids.js"
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
  claimSome,
  create,
  createAndClaim,
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
  vector
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
    })
  })
