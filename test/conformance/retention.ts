/**
 * The retention pass (`trimRetention`, valkey.md §9 retention_trimmer; see `Maintenance`):
 * terminal executions outside flows are deleted once `completedAt + retention <= now`, where the
 * retention is `policy.streamPolicy.retentionTtlMs` (default 24 h). Flow members and executions
 * that are not terminal are never deleted.
 *
 * On a shared engine (servers) every test starts its `TestClock` at 0, so a test that moves the
 * clock by days also makes the terminal executions of earlier tests due: these tests count only
 * what they own, or drain the pass first.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import type { ExecutionId } from "../../src/Ids.js"
import * as Ids from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  addMember,
  advance,
  backend,
  bytes,
  claimSome,
  create,
  createAndClaim,
  type CreateOptions,
  createFlow,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  flowSnapshot,
  isAbsent,
  NS,
  now,
  partitionKeyOf,
  pass,
  passUntilDone,
  publicState,
  signal,
  signalAccepted,
  suspendSingle,
  type Tester
} from "./helpers.js"

const HOUR = 3_600_000
const DAY = 24 * HOUR

const retention = (ms: number): CreateOptions => ({ policy: { streamPolicy: { retentionTtlMs: ms } } })

/** Creates, claims and completes an execution (with a result); returns its id and the old handle. */
const completed = (options: CreateOptions = {}) =>
  Effect.gen(function*() {
    const b = yield* backend
    const c = yield* createAndClaim({ inputPayload: bytes("input"), ...options })
    yield* b.complete(c.handle, { payload: bytes("result") })
    expect(yield* publicState(c.executionId)).toBe("completed")
    return c
  })

/**
 * An execution that owns one of every record: payload, tags, policy, a retried failure (the last
 * failure, an attempt history), a second attempt's worth of state (a resumed attempt), a stream
 * frame, a pending waitpoint with a buffered signal, a suspension whose waitpoint got a signal
 * with a payload, and a result. Returns every id it minted.
 */
export const richCompleted = (retentionMs: number) =>
  Effect.gen(function*() {
    const b = yield* backend
    yield* ensureHmac
    const first = yield* createAndClaim({
      inputPayload: bytes("input"),
      tags: { "app.owner": "retention" },
      policy: {
        streamPolicy: { retentionTtlMs: retentionMs },
        retryPolicy: { maxRetries: 1, backoff: { type: "fixed", delayMs: 0 } }
      }
    })
    yield* b.fail(first.handle, { reason: { message: "once" }, classification: "Transient" })
    yield* passUntilDone("promoteDelayed")
    const c = { ...first, handle: yield* claimSome(first.lane) }
    yield* b.appendFrame(c.handle, { bytes: bytes("frame"), kind: "stdout" })
    const pending = yield* b.createWaitpoint(c.handle, { waitpointKey: "approval", expiresIn: Duration.minutes(1) })
    const buffered = yield* signal({
      executionId: c.executionId,
      waitpointId: pending.waitpointId,
      token: pending.hmacToken,
      name: "early",
      payload: bytes("early")
    })
    const s = yield* suspendSingle(c.handle)
    const resumed = yield* signalAccepted(
      { executionId: c.executionId, waitpointId: s.waitpointId, token: s.token, payload: bytes("go") },
      "resume_condition_satisfied"
    )
    const h = yield* claimSome(c.lane)
    yield* b.appendFrame(h, { bytes: bytes("after resume"), kind: "stdout" })
    yield* b.complete(h, { payload: bytes("result") })
    expect(yield* publicState(c.executionId)).toBe("completed")
    const signalIds = [resumed.signalId, ...(buffered._tag === "Accepted" ? [buffered.signalId] : [])]
    return { ...c, waitpointIds: [pending.waitpointId, s.waitpointId], signalIds }
  })

/** Whether `id` is on the first pages of its partition's `listExecutions`. */
const listed = (id: ExecutionId) =>
  Effect.gen(function*() {
    const b = yield* backend
    let cursor: ExecutionId | undefined = undefined
    for (let i = 0; i < 100; i++) {
      const page: M.ListExecutionsPage = yield* b.listExecutions({
        partition: partitionKeyOf(id),
        limit: 1_000,
        ...(cursor === undefined ? {} : { cursor })
      })
      if (page.executions.includes(id)) return true
      if (page.nextCursor === undefined) return false
      cursor = page.nextCursor
    }
    return false
  })

/** Every read of a deleted execution is None, and it is not listed. */
const expectGone = (id: ExecutionId) =>
  Effect.gen(function*() {
    const b = yield* backend
    yield* isAbsent(id)
    expect(Option.isNone(yield* b.readExecutionInfo(id))).toBe(true)
    expect(Option.isNone(yield* b.readExecutionState(id))).toBe(true)
    expect(Option.isNone(yield* b.getExecutionResult(id))).toBe(true)
    expect(Option.isNone(yield* b.getExecutionInput(id))).toBe(true)
    expect(yield* listed(id)).toBe(false)
  })

export const retentionArea = (t: Tester) =>
  describe("retention (trimRetention)", () => {
    t.test("a terminal execution is deleted once its retention elapsed: every read is None, not listed, an old handle is NotFound", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const done = yield* completed(retention(1_000))
        const kept = yield* completed(retention(60_000))
        expect(yield* listed(done.executionId)).toBe(true)
        yield* advance(999)
        yield* passUntilDone("trimRetention")
        expect(yield* publicState(done.executionId)).toBe("completed")
        yield* advance(1)
        const r = yield* pass("trimRetention")
        expect(r.pass).toBe("trimRetention")
        expect(r.processed).toBeGreaterThanOrEqual(1)
        yield* passUntilDone("trimRetention")
        yield* expectGone(done.executionId)
        const e = yield* failsWith(b.complete(done.handle), "NotFound")
        expect(e.entity).toBe("execution")
        // the one inside its retention is untouched
        expect(yield* publicState(kept.executionId)).toBe("completed")
        expect(Option.map(yield* b.getExecutionResult(kept.executionId), (x) => new TextDecoder().decode(x)))
          .toEqual(Option.some("result"))
        expect(yield* listed(kept.executionId)).toBe(true)
        yield* advance(60_000)
        yield* passUntilDone("trimRetention")
        yield* expectGone(kept.executionId)
      }))

    t.test("an execution with attempts, streams, waitpoints, a suspension and signals is deleted whole", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const r = yield* richCompleted(1_000)
        yield* advance(1_000)
        yield* passUntilDone("trimRetention")
        yield* expectGone(r.executionId)
        // like an id never created
        yield* failsWith(b.listPendingWaitpoints({ executionId: r.executionId }), "NotFound")
      }))

    t.test("the signal and waitpoint ids of a deleted execution are free again, on any partition", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const r = yield* richCompleted(1_000)
        const other = yield* createAndClaim({
          executionId: yield* executionIdOnPartition((Ids.executionPartition(r.executionId) + 1) % t.options.numFlowPartitions)
        })
        const never = { _tag: "ByName", name: "never" } as const
        const reuse = Effect.flatMap(Ids.newSuspensionId, (suspensionId) =>
          b.suspend(other.handle, {
            suspensionId,
            waitpoints: r.waitpointIds.map((waitpointId, i) => ({ _tag: "Fresh", waitpointId, waitpointKey: `k${i}` })),
            resumeCondition: {
              _tag: "Composite",
              body: {
                _tag: "AllOf",
                members: r.waitpointIds.map((_, i) => ({ _tag: "Single", waitpointKey: `k${i}`, matcher: never }))
              }
            }
          }))
        yield* failsWith(reuse, "Conflict", "WaitpointAlreadyExists")
        yield* advance(1_000)
        yield* passUntilDone("trimRetention")
        yield* expectGone(r.executionId)
        const s = yield* reuse
        expect(s._tag).toBe("Suspended")
        for (const signalId of r.signalIds) {
          expect(
            yield* b.deliverSignal({
              executionId: other.executionId,
              waitpointId: s.details.waitpointId,
              signalId,
              signalName: "again",
              signalCategory: "test",
              sourceType: "test",
              sourceIdentity: "suite",
              waitpointToken: s.details.waitpointToken
            })
          ).toMatchObject({ _tag: "Accepted", signalId })
        }
      }))

    t.test("failed and cancelled executions are deleted too", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const cancelled = yield* create(retention(1_000))
        yield* b.cancelExecution({ executionId: cancelled.executionId, reason: "x" })
        const failed = yield* createAndClaim(retention(1_000))
        yield* b.fail(failed.handle, { reason: { message: "boom" }, classification: "Permanent" })
        expect(yield* publicState(failed.executionId)).toBe("failed")
        expect(yield* publicState(cancelled.executionId)).toBe("cancelled")
        yield* advance(1_000)
        yield* passUntilDone("trimRetention")
        yield* expectGone(cancelled.executionId)
        yield* expectGone(failed.executionId)
      }))

    // (a day of TestClock is too long for the server layers' clock-driven fibers: fresh engines only)
    t.freshOnly("the default retention is 24 h from the terminal transition", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* advance(5_000)
        yield* b.complete(c.handle)
        yield* advance(DAY - 1)
        expect(yield* pass("trimRetention")).toEqual({ pass: "trimRetention", processed: 0, more: false })
        expect(yield* publicState(c.executionId)).toBe("completed")
        yield* advance(1)
        expect(yield* pass("trimRetention")).toEqual({ pass: "trimRetention", processed: 1, more: false })
        yield* expectGone(c.executionId)
      }))

    t.test("an execution that is not terminal is never deleted, however long past its retention (running, suspended, delayed, waiting, replayed)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const zero = retention(0)
        const running = yield* createAndClaim(zero)
        const suspended = yield* createAndClaim(zero)
        yield* suspendSingle(suspended.handle)
        const delayed = yield* create({ ...zero, delayUntil: (yield* now) + HOUR })
        const waiting = yield* create(zero)
        const replayed = yield* completed(retention(1_000))
        expect((yield* b.replayExecution(replayed.executionId))._tag).toBe("Replayed")
        yield* advance(60_000)
        yield* passUntilDone("trimRetention")
        expect(yield* publicState(running.executionId)).toBe("active")
        expect(yield* publicState(suspended.executionId)).toBe("suspended")
        expect(yield* publicState(delayed.executionId)).toBe("delayed")
        expect(yield* publicState(waiting.executionId)).toBe("waiting")
        expect(yield* publicState(replayed.executionId)).toBe("waiting")
        // once the replayed run ends, its retention counts from that end
        const h = yield* claimSome(replayed.lane)
        yield* b.complete(h)
        yield* advance(999)
        yield* passUntilDone("trimRetention")
        expect(yield* publicState(replayed.executionId)).toBe("completed")
        yield* advance(1)
        yield* passUntilDone("trimRetention")
        yield* expectGone(replayed.executionId)
      }))

    t.test("at most batchSize executions per run, more while more are due", () =>
      Effect.gen(function*() {
        // a shared engine: first delete whatever earlier tests left due
        yield* passUntilDone("trimRetention")
        const ids: Array<ExecutionId> = []
        for (let i = 0; i < 3; i++) ids.push((yield* completed(retention(1_000))).executionId)
        yield* advance(1_000)
        expect(yield* pass("trimRetention", 1)).toEqual({ pass: "trimRetention", processed: 1, more: true })
        expect(yield* pass("trimRetention", 1)).toEqual({ pass: "trimRetention", processed: 1, more: true })
        expect(yield* pass("trimRetention", 1)).toEqual({ pass: "trimRetention", processed: 1, more: false })
        expect(yield* pass("trimRetention", 1)).toEqual({ pass: "trimRetention", processed: 0, more: false })
        for (const id of ids) yield* expectGone(id)
      }))

    t.test("flow members are never deleted: the flow still reads them", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const a = yield* addMember(flowId, retention(1_000))
        const c = yield* addMember(flowId, retention(1_000))
        for (const m of [a, c]) {
          const h = yield* claimSome(m.lane)
          yield* b.complete(h)
        }
        const solo = yield* completed(retention(1_000))
        const before = yield* flowSnapshot(flowId)
        yield* advance(60_000)
        yield* passUntilDone("trimRetention")
        yield* expectGone(solo.executionId)
        expect(yield* publicState(a.executionId)).toBe("completed")
        expect(yield* publicState(c.executionId)).toBe("completed")
        expect(yield* listed(a.executionId)).toBe(true)
        const after = yield* flowSnapshot(flowId)
        expect(after.nodeCount).toBe(before.nodeCount)
        expect(after.publicFlowState).toBe(before.publicFlowState)
      }))

    t.test("an idempotency key keeps its own dedup window after its execution is deleted", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const key = `retention-${yield* Ids.randomUuid}`
        const c = yield* completed({
          idempotencyKey: key,
          policy: { streamPolicy: { retentionTtlMs: 1_000 }, dedupWindowMs: HOUR }
        })
        yield* advance(1_000)
        yield* passUntilDone("trimRetention")
        yield* expectGone(c.executionId)
        const again = yield* Ids.executionIdSolo(c.lane)
        const dup = yield* b.createExecution({
          executionId: again,
          namespace: NS,
          laneId: c.lane,
          executionKind: "conformance",
          idempotencyKey: key
        })
        expect(dup).toEqual({ _tag: "Duplicate", executionId: c.executionId })
        yield* advance(HOUR)
        const fresh = yield* b.createExecution({
          executionId: again,
          namespace: NS,
          laneId: c.lane,
          executionKind: "conformance",
          idempotencyKey: key
        })
        expect(fresh._tag).toBe("Created")
      }))
  })
