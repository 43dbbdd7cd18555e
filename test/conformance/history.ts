/**
 * What a snapshot tells about an execution's past (docs/design/executions.md, "Attempt history"):
 * the runs of its attempts (one per lease: who, when, how it ended and why), its last failure, its
 * progress, its first claim and its end; and the creator's span context returned with its input.
 */
import { describe, expect } from "@effect/vitest"
import { Effect } from "effect"
import * as Ids from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  bytes,
  claimSome,
  create,
  createAndClaim,
  ensureHmac,
  INSTANCE,
  NS,
  now,
  pass,
  publicState,
  signalAccepted,
  snapshot,
  suspendSingle,
  type Tester,
  validationFails,
  WORKER
} from "./helpers.js"

const W2 = { worker: "worker-2", instance: "worker-2-i1" }

const run = (
  attemptIndex: number,
  kind: M.AttemptRunKind,
  startedAt: number,
  end?: { readonly endedAt: number; readonly outcome: M.AttemptRunOutcome; readonly reason?: string },
  worker: { readonly worker: string; readonly instance: string } = { worker: WORKER, instance: INSTANCE }
): M.AttemptRun => ({
  attemptIndex: attemptIndex as Ids.AttemptIndex,
  kind,
  workerId: Ids.unsafe.workerId(worker.worker),
  workerInstanceId: Ids.unsafe.workerInstanceId(worker.instance),
  startedAt,
  ...(end === undefined ? { outcome: "running" } : end)
})

const TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

export const history = (t: Tester) =>
  describe("history", () => {
    t.test("a new execution has a creation time and nothing else to tell", () =>
      Effect.gen(function*() {
        const t0 = yield* now
        const c = yield* create()
        const s = yield* snapshot(c.executionId)
        expect(s.createdAt).toBe(t0)
        expect(s.attemptHistory).toEqual([])
        for (const k of ["startedAt", "completedAt", "progress", "lastFailure", "cancellationReason"] as const) {
          expect(s[k], k).toBeUndefined()
        }
      }))

    t.test("a run from claim to completion, its progress and the times of the first claim and of the end", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* create()
        yield* advance(10)
        const t1 = yield* now
        const h = yield* claimSome(c.lane)
        expect((yield* snapshot(c.executionId)).attemptHistory).toEqual([run(0, "initial", t1)])
        yield* advance(10)
        yield* b.progress(h, { percent: 40, message: "resizing" })
        const t2 = yield* now
        expect((yield* snapshot(c.executionId)).progress).toEqual({ percent: 40, message: "resizing", updatedAt: t2 })
        yield* advance(10)
        // a value left out keeps the stored one
        yield* b.progress(h, { message: "uploading" })
        const t3 = yield* now
        expect((yield* snapshot(c.executionId)).progress).toEqual({ percent: 40, message: "uploading", updatedAt: t3 })
        yield* advance(10)
        yield* b.complete(h, { payload: bytes("done") })
        const t4 = yield* now
        const s = yield* snapshot(c.executionId)
        expect(s.publicState).toBe("completed")
        expect(s.startedAt).toBe(t1)
        expect(s.completedAt).toBe(t4)
        expect(s.attemptHistory).toEqual([run(0, "initial", t1, { endedAt: t4, outcome: "completed" })])
        expect(s.lastFailure).toBeUndefined()
      }))

    t.test("a progress report with only a percent has no message", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* b.progress(c.handle, { percent: 0 })
        const t1 = yield* now
        expect((yield* snapshot(c.executionId)).progress).toEqual({ percent: 0, updatedAt: t1 })
      }))

    t.test("a retried failure, then a permanent one: the last failure's reason, class, category and time", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* createAndClaim({
          policy: { retryPolicy: { maxRetries: 3, backoff: { type: "fixed", delayMs: 1_000 } } }
        })
        yield* advance(5)
        const r = yield* b.fail(c.handle, {
          reason: { message: "connection reset", detail: bytes("network") },
          classification: "Transient"
        })
        const t1 = yield* now
        expect(r).toEqual({ _tag: "RetryScheduled", delayUntil: t1 + 1_000 })
        const s1 = yield* snapshot(c.executionId)
        expect(s1.lastFailure).toEqual({ reason: "connection reset", classification: "Transient", category: "network", at: t1 })
        expect(s1.attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t1, outcome: "retry_scheduled", reason: "connection reset" })
        ])
        expect(s1.completedAt).toBeUndefined()
        yield* advance(1_000)
        yield* pass("promoteDelayed")
        const t2 = yield* now
        const h2 = yield* claimSome(c.lane, W2)
        yield* advance(5)
        expect(yield* b.fail(h2, { reason: { message: "bad input" }, classification: "Permanent" })).toEqual({
          _tag: "TerminalFailed"
        })
        const t3 = yield* now
        const s2 = yield* snapshot(c.executionId)
        expect(s2.publicState).toBe("failed")
        expect(s2.lastFailure).toEqual({ reason: "bad input", classification: "Permanent", category: "permanent", at: t3 })
        expect(s2.attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t1, outcome: "retry_scheduled", reason: "connection reset" }),
          run(1, "retry", t2, { endedAt: t3, outcome: "failed", reason: "bad input" }, W2)
        ])
        expect(s2.startedAt).toBe(t0)
        expect(s2.completedAt).toBe(t3)
      }))

    t.test("a suspension, a delay and a wait for children end a run; the next claim resumes the attempt", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const t0 = yield* now
        const c = yield* createAndClaim()
        yield* advance(5)
        const s = yield* suspendSingle(c.handle, { reasonCode: "waiting_for_approval" })
        const t1 = yield* now
        yield* signalAccepted({ executionId: c.executionId, waitpointId: s.waitpointId, token: s.token }, "resume_condition_satisfied")
        yield* advance(5)
        const t2 = yield* now
        const h2 = yield* claimSome(c.lane, W2)
        expect(h2.kind).toBe("resumed")
        yield* advance(5)
        const t3 = yield* now
        yield* b.delay(h2, { delayUntil: t3 })
        yield* pass("promoteDelayed")
        yield* advance(5)
        const t4 = yield* now
        const h3 = yield* claimSome(c.lane)
        yield* advance(5)
        const t5 = yield* now
        yield* b.waitChildren(h3)
        // nothing to wait for: eligible again at once
        const h4 = yield* claimSome(c.lane)
        yield* b.complete(h4)
        const snap = yield* snapshot(c.executionId)
        expect(snap.attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t1, outcome: "suspended", reason: "waiting_for_approval" }),
          run(0, "resumed", t2, { endedAt: t3, outcome: "delayed" }, W2),
          run(0, "resumed", t4, { endedAt: t5, outcome: "waiting_children" }),
          run(0, "resumed", t5, { endedAt: t5, outcome: "completed" })
        ])
        expect(snap.totalAttemptCount).toBe(1)
        expect(snap.startedAt).toBe(t0)
      }))

    t.test("a lost lease ends its run; a reclaim starts a new attempt; a worker's cancel gives the reason", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* createAndClaim({}, { ttl: 1_000 })
        yield* advance(1_000)
        const t1 = yield* now
        yield* pass("expireLeases")
        const h2 = yield* claimSome(c.lane, W2)
        expect(h2.kind).toBe("fresh")
        yield* advance(5)
        const t2 = yield* now
        expect(yield* b.revokeLease({ executionId: c.executionId, reason: "node drained" })).toMatchObject({
          _tag: "Revoked"
        })
        yield* advance(5)
        const t3 = yield* now
        const h3 = yield* claimSome(c.lane)
        yield* advance(5)
        const t4 = yield* now
        yield* b.cancel(h3, { reason: "user asked" })
        const s = yield* snapshot(c.executionId)
        expect(s.publicState).toBe("cancelled")
        expect(s.cancellationReason).toBe("user asked")
        expect(s.lastFailure).toBeUndefined()
        expect(s.completedAt).toBe(t4)
        expect(s.attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t1, outcome: "lease_expired" }),
          run(1, "reclaim", t1, { endedAt: t2, outcome: "lease_revoked", reason: "node drained" }, W2),
          run(2, "reclaim", t3, { endedAt: t4, outcome: "cancelled", reason: "user asked" })
        ])
      }))

    t.test("an operator's cancel of a waiting execution: its reason, and no run", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* create()
        yield* b.cancelExecution({ executionId: c.executionId, reason: "not needed" })
        const s = yield* snapshot(c.executionId)
        expect(s.cancellationReason).toBe("not needed")
        expect(s.attemptHistory).toEqual([])
        expect(s.startedAt).toBeUndefined()
        expect(s.completedAt).toBe(yield* now)
      }))

    t.test("an attempt timeout ends the run expired and is the last failure (class Timeout)", () =>
      Effect.gen(function*() {
        const t0 = yield* now
        const c = yield* createAndClaim({ policy: { timeoutPolicy: { attemptTimeoutMs: 1_000 } } })
        yield* advance(1_000)
        yield* pass("expireAttempts")
        const t1 = yield* now
        const s = yield* snapshot(c.executionId)
        expect(s.publicState).toBe("expired")
        expect(s.lastFailure).toEqual({ reason: "attempt_timeout", classification: "Timeout", category: "timeout", at: t1 })
        expect(s.attemptHistory).toEqual([run(0, "initial", t0, { endedAt: t1, outcome: "expired", reason: "attempt_timeout" })])
      }))

    t.test("an execution deadline that passes while it waits: the last failure, and no run", () =>
      Effect.gen(function*() {
        const c = yield* create({ executionDeadlineAt: (yield* now) + 1_000 })
        yield* advance(1_000)
        yield* pass("expireExecutions")
        const s = yield* snapshot(c.executionId)
        expect(s.publicState).toBe("expired")
        expect(s.lastFailure).toEqual({
          reason: "execution_deadline",
          classification: "Timeout",
          category: "timeout",
          at: yield* now
        })
        expect(s.attemptHistory).toEqual([])
      }))

    t.test("a replay keeps the history, clears the end time and runs a replay attempt", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* createAndClaim()
        yield* b.complete(c.handle)
        yield* advance(5)
        yield* b.replayExecution(c.executionId)
        expect((yield* snapshot(c.executionId)).completedAt).toBeUndefined()
        const t1 = yield* now
        const h = yield* claimSome(c.lane)
        yield* b.complete(h)
        const s = yield* snapshot(c.executionId)
        expect(s.attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t0, outcome: "completed" }),
          run(1, "replay", t1, { endedAt: t1, outcome: "completed" })
        ])
        expect(s.startedAt).toBe(t0)
        expect(s.completedAt).toBe(t1)
      }))

    t.test("a retried attempt that completes: the retried run, then the completed one, kind retry", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* createAndClaim({
          policy: { retryPolicy: { maxRetries: 3, backoff: { type: "fixed", delayMs: 1_000 } } }
        })
        yield* advance(5)
        yield* b.fail(c.handle, { reason: { message: "flaky" }, classification: "Transient" })
        const t1 = yield* now
        yield* advance(1_000)
        yield* pass("promoteDelayed")
        const t2 = yield* now
        const h2 = yield* claimSome(c.lane, W2)
        expect((yield* snapshot(c.executionId)).attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t1, outcome: "retry_scheduled", reason: "flaky" }),
          run(1, "retry", t2, undefined, W2)
        ])
        yield* advance(5)
        yield* b.complete(h2)
        const t3 = yield* now
        const s = yield* snapshot(c.executionId)
        expect(s.publicState).toBe("completed")
        expect(s.attemptHistory).toEqual([
          run(0, "initial", t0, { endedAt: t1, outcome: "retry_scheduled", reason: "flaky" }),
          run(1, "retry", t2, { endedAt: t3, outcome: "completed" }, W2)
        ])
        expect(s.lastFailure).toEqual({ reason: "flaky", classification: "Transient", category: "transient", at: t1 })
        expect(s.currentLease).toBeUndefined()
      }))

    t.test("a reclaimed attempt that completes: kind reclaim; a replay of it, then another, keep every run in order", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const c = yield* createAndClaim({}, { ttl: 1_000 })
        yield* advance(1_000)
        const t1 = yield* now
        yield* pass("expireLeases")
        const h2 = yield* claimSome(c.lane, W2)
        yield* advance(5)
        yield* b.complete(h2)
        const t2 = yield* now
        const first = [
          run(0, "initial", t0, { endedAt: t1, outcome: "lease_expired" }),
          run(1, "reclaim", t1, { endedAt: t2, outcome: "completed" }, W2)
        ]
        expect((yield* snapshot(c.executionId)).attemptHistory).toEqual(first)
        yield* advance(5)
        yield* b.replayExecution(c.executionId)
        const replayed = yield* snapshot(c.executionId)
        expect(replayed.attemptHistory).toEqual(first)
        expect(replayed.completedAt).toBeUndefined()
        // a revoke finds no lease on a waiting or a completed execution
        expect(yield* b.revokeLease({ executionId: c.executionId, reason: "x" })).toEqual({ _tag: "AlreadySatisfied", reason: "no_active_lease" })
        const t3 = yield* now
        const h3 = yield* claimSome(c.lane)
        yield* advance(5)
        yield* b.complete(h3)
        const t4 = yield* now
        expect(yield* b.revokeLease({ executionId: c.executionId, reason: "x" })).toEqual({ _tag: "AlreadySatisfied", reason: "no_active_lease" })
        yield* b.replayExecution(c.executionId)
        const t5 = yield* now
        const h4 = yield* claimSome(c.lane, W2)
        const s = yield* snapshot(c.executionId)
        expect(s.attemptHistory).toEqual([
          ...first,
          run(2, "replay", t3, { endedAt: t4, outcome: "completed" }),
          run(3, "replay", t5, undefined, W2)
        ])
        yield* b.complete(h4)
        expect((yield* snapshot(c.executionId)).attemptHistory.map((r) => r.outcome)).toEqual([
          "lease_expired",
          "completed",
          "completed",
          "completed"
        ])
      }))

    t.test(`a completion after ${Limits.historyRuns} ended runs: the bound holds, the completed run last`, () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* create()
        const starts: Array<number> = []
        for (let i = 0; i < Limits.historyRuns; i++) {
          starts.push(yield* now)
          yield* claimSome(c.lane)
          yield* advance(1)
          yield* b.revokeLease({ executionId: c.executionId, reason: `drain ${i}` })
        }
        const last = yield* now
        const h = yield* claimSome(c.lane, W2)
        yield* advance(1)
        yield* b.complete(h)
        const s = yield* snapshot(c.executionId)
        expect(s.attemptHistory).toHaveLength(Limits.historyRuns)
        expect(s.attemptHistory[0]).toEqual(run(1, "reclaim", starts[1]!, {
          endedAt: starts[1]! + 1,
          outcome: "lease_revoked",
          reason: "drain 1"
        }))
        expect(s.attemptHistory[Limits.historyRuns - 1]).toEqual(
          run(Limits.historyRuns, "reclaim", last, { endedAt: last + 1, outcome: "completed" }, W2)
        )
        yield* b.replayExecution(c.executionId)
        const h2 = yield* claimSome(c.lane)
        const t2 = yield* now
        const s2 = yield* snapshot(c.executionId)
        expect(s2.attemptHistory).toHaveLength(Limits.historyRuns)
        expect(s2.attemptHistory.slice(-2)).toEqual([
          run(Limits.historyRuns, "reclaim", last, { endedAt: last + 1, outcome: "completed" }, W2),
          run(Limits.historyRuns + 1, "replay", t2)
        ])
        yield* b.complete(h2)
      }))

    t.test(`the history keeps the last ${Limits.historyRuns} runs; a reason is cut to ${Limits.historyReasonBytes} bytes at a character boundary`, () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* create()
        const long = "a" + "é".repeat(200)
        const starts: Array<number> = []
        for (let i = 0; i <= Limits.historyRuns; i++) {
          starts.push(yield* now)
          yield* claimSome(c.lane)
          yield* advance(1)
          const reason = i === Limits.historyRuns ? long : `drain ${i}`
          yield* b.revokeLease({ executionId: c.executionId, reason })
        }
        const last = yield* now
        yield* claimSome(c.lane)
        const s = yield* snapshot(c.executionId)
        expect(s.attemptHistory).toHaveLength(Limits.historyRuns)
        const expected = [...starts.keys()].slice(2).map((i) =>
          run(i, i === 0 ? "initial" : "reclaim", starts[i]!, {
            endedAt: starts[i]! + 1,
            outcome: "lease_revoked",
            reason: i === Limits.historyRuns ? "a" + "é".repeat(127) : `drain ${i}`
          })
        )
        expect(s.attemptHistory).toEqual([...expected, run(Limits.historyRuns + 1, "reclaim", last)])
        expect(new TextEncoder().encode(s.attemptHistory[Limits.historyRuns - 2]!.reason!).length).toBe(255)
        expect(s.totalAttemptCount).toBe(Limits.historyRuns + 2)
      }))

    t.test("a full-length failure message is kept whole as the last failure's reason", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const message = "x".repeat(Limits.textBytes)
        yield* b.fail(c.handle, { reason: { message }, classification: "Permanent" })
        const s = yield* snapshot(c.executionId)
        expect(s.lastFailure?.reason).toBe(message)
        expect(s.attemptHistory[0]!.reason).toBe("x".repeat(Limits.historyReasonBytes))
        expect(yield* publicState(c.executionId)).toBe("failed")
      }))

    describe("trace context", () => {
      t.test("the creator's traceparent comes back with the input, from every way of creating", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const one = yield* create({ traceParent: TRACE })
          const none = yield* create()
          const lane = one.lane
          const batch = [yield* Ids.executionIdSolo(lane), yield* Ids.executionIdSolo(lane)] as const
          yield* b.createExecutions([
            { executionId: batch[0], namespace: NS, laneId: lane, executionKind: "k", traceParent: TRACE },
            { executionId: batch[1], namespace: NS, laneId: lane, executionKind: "k" }
          ])
          const flowId = yield* Ids.newFlowId
          const member = yield* Ids.executionIdForFlow(flowId)
          yield* b.createFlowGraph({
            flow: { flowId, namespace: NS },
            members: [{ executionId: member, namespace: NS, laneId: lane, executionKind: "k", traceParent: TRACE }],
            edges: [],
            joins: []
          })
          const inputs = yield* b.getExecutionInputs([one.executionId, none.executionId, batch[0], batch[1], member])
          expect(inputs.map((i) => i._tag === "Some" ? i.value.traceParent : "absent")).toEqual([
            TRACE,
            undefined,
            TRACE,
            undefined,
            TRACE
          ])
          const single = yield* b.getExecutionInput(one.executionId)
          expect(single._tag === "Some" ? single.value.traceParent : "absent").toBe(TRACE)
        }))

      t.test("a malformed traceparent is refused and nothing is written", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = Ids.unsafe.laneId("trace-bad")
          for (
            const bad of [
              "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
              "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
              "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
              ""
            ]
          ) {
            const executionId = yield* Ids.executionIdSolo(lane)
            yield* validationFails(
              b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k", traceParent: bad }),
              "InvalidInput"
            )
            expect((yield* b.describeExecution(executionId))._tag).toBe("None")
          }
        }))
    })
  })
