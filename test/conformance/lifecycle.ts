/**
 * The worker hot path (docs/design/executions.md#lifecycle-operations): claim,
 * renew, progress, complete, fail, cancel, delay, wait_children and the
 * resumed-claim entry points, each with its happy path, its errors and its
 * replay behaviour.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  addMember,
  advance,
  backend,
  bytes,
  claimArgs,
  claimNone,
  claimOn,
  claimSome,
  create,
  createAndClaim,
  createFlow,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  forgeHandle,
  gpuHeadsAcrossPartitions,
  info,
  INSTANCE,
  newLane,
  now,
  pass,
  payloadOf,
  publicState,
  snapshot,
  type Tester,
  text,
  validationFails,
  vector,
  WORKER
} from "./helpers.js"

const transient = { reason: { message: "boom" }, classification: "Transient" } as const

export const lifecycle = (t: Tester) =>
  describe("lifecycle", () => {
    describe("claim", () => {
      t.test("returns None on an empty lane", () =>
        Effect.gen(function*() {
          yield* claimNone(yield* newLane())
        }))

      t.test("leases a new execution: fresh handle, epoch 1, attempt 0, state vector active/leased", () =>
        Effect.gen(function*() {
          const c = yield* create()
          const t0 = yield* now
          const h = yield* claimSome(c.lane, { ttl: 5_000 })
          expect(h.kind).toBe("fresh")
          const p = payloadOf(h)
          expect(p).toMatchObject({
            executionId: c.executionId,
            attemptIndex: 0,
            leaseEpoch: 1,
            leaseTtlMs: 5_000,
            laneId: c.lane,
            workerInstanceId: INSTANCE
          })
          const s = yield* snapshot(c.executionId)
          expect(s.publicState).toBe("active")
          expect(s.totalAttemptCount).toBe(1)
          expect(s.currentAttempt).toEqual({ attemptId: p.attemptId, attemptIndex: 0 })
          expect(s.currentLease).toMatchObject({
            leaseEpoch: 1,
            leaseId: p.leaseId,
            workerInstanceId: INSTANCE,
            expiresAt: t0 + 5_000,
            attemptIndex: 0
          })
          expect(yield* vector(c.executionId)).toEqual({
            lifecyclePhase: "active",
            ownershipState: "leased",
            eligibilityState: "not_applicable",
            blockingReason: "none",
            terminalOutcome: "none",
            attemptState: "running_attempt",
            publicState: "active"
          })
          const i = yield* info(c.executionId)
          expect(i.startedAt).toBe(String(t0))
          expect(i.currentAttemptIndex).toBe(0)
        }))

      t.test("never hands out a leased execution twice", () =>
        Effect.gen(function*() {
          const c = yield* createAndClaim()
          yield* claimNone(c.lane, { worker: "worker-2", instance: "worker-2-i1" })
        }))

      t.test("claimMany takes up to max in claim order, fewer when the lane runs out; max is 1..1000", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const low = yield* create({ laneId: lane, priority: 1 })
          yield* advance(1)
          const high = yield* create({ laneId: lane, priority: 5 })
          yield* advance(1)
          const low2 = yield* create({ laneId: lane, priority: 1 })
          const first = yield* b.claimMany(claimArgs(lane), 2)
          expect(first.map((h) => h.kind)).toEqual(["fresh", "fresh"])
          expect(first.map((h) => payloadOf(h).executionId)).toEqual([high.executionId, low.executionId])
          const rest = yield* b.claimMany(claimArgs(lane), 5)
          expect(rest.map((h) => payloadOf(h).executionId)).toEqual([low2.executionId])
          expect(yield* b.claimMany(claimArgs(lane), 5)).toEqual([])
          for (const h of [...first, ...rest]) yield* b.complete(h)
          expect(yield* publicState(high.executionId)).toBe("completed")
          yield* validationFails(b.claimMany(claimArgs(lane), 0), "InvalidInput")
          yield* validationFails(b.claimMany(claimArgs(lane), 1001), "LimitExceeded", "Limits.batchItems")
        }))

      t.test("claimMany walks every partition of the lane in claim order and passes over unmatched work", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const on = (p: number, priority: number, caps: ReadonlyArray<string> = []) =>
            Effect.flatMap(executionIdOnPartition(p), (executionId) =>
              create({
                laneId: lane,
                executionId,
                priority,
                ...(caps.length === 0 ? {} : { policy: { routingRequirements: { requiredCapabilities: caps } } })
              }))
          const a = yield* on(21, 3)
          const gpu = yield* on(22, 9, ["gpu"])
          const c = yield* on(23, 7)
          const d = yield* on(21, 5)
          const e = yield* on(24, 1)
          const claimed = yield* b.claimMany(claimArgs(lane), 10)
          expect(claimed.map((h) => payloadOf(h).executionId)).toEqual(
            [c, d, a, e].map((x) => x.executionId)
          )
          expect(yield* publicState(gpu.executionId)).toBe("waiting")
          const onGpu = yield* b.claimMany(claimArgs(lane, { tokens: ["gpu"] }), 10)
          expect(onGpu.map((h) => payloadOf(h).executionId)).toEqual([gpu.executionId])
          for (const h of [...claimed, ...onGpu]) yield* b.complete(h)
        }))

      t.test("only sees executions of the requested lane", () =>
        Effect.gen(function*() {
          const c = yield* create()
          yield* claimNone(yield* newLane())
          const h = yield* claimSome(c.lane)
          expect(payloadOf(h).executionId).toBe(c.executionId)
        }))

      t.test("every lease-bound operation on a missing execution is NotFound(execution)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const ghostId = yield* Ids.executionIdSolo(Ids.unsafe.laneId("ghost"))
          const ghost = forgeHandle(c.handle, { executionId: ghostId })
          const notFound: ReadonlyArray<Effect.Effect<unknown, EngineError>> = [
            b.renew(ghost),
            b.progress(ghost, { percent: 1 }),
            b.complete(ghost),
            b.fail(ghost, transient),
            b.cancel(ghost, { reason: "x" }),
            b.delay(ghost, { delayUntil: (yield* now) + 10 }),
            b.waitChildren(ghost),
            b.createWaitpoint(ghost, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
          ]
          for (const op of notFound) {
            const e = yield* failsWith(op, "NotFound")
            expect(e.entity).toBe("execution")
            expect(e.id).toBe(ghostId)
          }
          // append_frame collapses a missing execution into StreamClosed
          yield* failsWith(b.appendFrame(ghost, { bytes: bytes("x"), kind: "stdout" }), "State", "StreamClosed")
          // the real execution was not touched
          expect(yield* publicState(c.executionId)).toBe("active")
        }))
    })

    describe("renew", () => {
      t.test("extends the lease from now by the handle's TTL, epoch unchanged", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const t0 = yield* now
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          yield* advance(600)
          const r = yield* b.renew(c.handle)
          expect(r).toEqual({ expiresAtMs: t0 + 1_600, leaseEpoch: 1 })
          const s = yield* snapshot(c.executionId)
          expect(s.currentLease?.expiresAt).toBe(t0 + 1_600)
          expect(s.currentLease?.leaseEpoch).toBe(1)
          expect(s.currentLease?.lastHeartbeatAt).toBe(t0 + 600)
          // past the original expiry the renewed lease still owns the execution
          yield* advance(900)
          yield* b.complete(c.handle)
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))

      t.test("is safe to repeat", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          const a = yield* b.renew(c.handle)
          const again = yield* b.renew(c.handle)
          expect(again).toEqual(a)
          expect(payloadOf(c.handle).leaseEpoch).toBe(1)
        }))

      t.test("after complete: Contention(ExecutionNotActive) with the stored detail", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.complete(c.handle)
          const e = yield* failsWith(b.renew(c.handle), "Contention", "ExecutionNotActive")
          expect(e.notActive).toEqual({
            terminalOutcome: "success",
            leaseEpoch: "1",
            lifecyclePhase: "terminal",
            attemptId: expect.any(String)
          })
        }))

      t.test("at expiry: State(LeaseExpired) and the lease is marked reclaimable", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          yield* advance(1_000) // lease_expires_at <= now is expired
          yield* failsWith(b.renew(c.handle), "State", "LeaseExpired")
          const v = yield* vector(c.executionId)
          expect(v).toMatchObject({
            lifecyclePhase: "active",
            ownershipState: "lease_expired_reclaimable",
            attemptState: "attempt_interrupted",
            publicState: "active"
          })
        }))
    })

    describe("progress", () => {
      t.test("stamps last_mutation_at", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* advance(10)
          const t1 = yield* now
          yield* b.progress(c.handle, { percent: 40, message: "halfway" })
          expect((yield* snapshot(c.executionId)).lastMutationAt).toBe(t1)
          // last write wins, a message alone is fine
          yield* advance(5)
          yield* b.progress(c.handle, { message: "still going" })
          expect((yield* snapshot(c.executionId)).lastMutationAt).toBe(t1 + 5)
        }))

      t.test("on a terminal execution: ExecutionNotActive", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.complete(c.handle)
          yield* failsWith(b.progress(c.handle, { percent: 1 }), "Contention", "ExecutionNotActive")
        }))

      t.test("past expiry: LeaseExpired without marking the lease", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          yield* advance(999)
          yield* b.progress(c.handle, { percent: 1 })
          yield* advance(1)
          yield* failsWith(b.progress(c.handle, { percent: 2 }), "State", "LeaseExpired")
          expect((yield* vector(c.executionId)).ownershipState).toBe("leased")
        }))
    })

    describe("complete", () => {
      t.test("ends the execution successfully and stores the result", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* advance(25)
          const t1 = yield* now
          yield* b.complete(c.handle, { payload: bytes("result!") })
          expect(yield* vector(c.executionId)).toEqual({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            eligibilityState: "not_applicable",
            blockingReason: "none",
            terminalOutcome: "success",
            attemptState: "attempt_terminal",
            publicState: "completed"
          })
          const s = yield* snapshot(c.executionId)
          expect(s.currentLease).toBeUndefined()
          expect(s.totalAttemptCount).toBe(1)
          expect((yield* info(c.executionId)).completedAt).toBe(String(t1))
          const result = yield* b.getExecutionResult(c.executionId)
          expect(Option.map(result, text)).toEqual(Option.some("result!"))
        }))

      t.test("replay with the same handle succeeds", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.complete(c.handle, { payload: bytes("r") })
          yield* b.complete(c.handle, { payload: bytes("r") })
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))

      t.test("after an operator cancel: ExecutionNotActive carrying outcome, epoch, phase and attempt id", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.cancelExecution({ executionId: c.executionId, reason: "operator" })
          const e = yield* failsWith(b.complete(c.handle), "Contention", "ExecutionNotActive")
          expect(e.notActive).toEqual({
            terminalOutcome: "cancelled",
            leaseEpoch: "1",
            lifecyclePhase: "terminal",
            attemptId: payloadOf(c.handle).attemptId
          })
        }))

      t.test("without a payload, or with an empty one, stores no result", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const a = yield* createAndClaim()
          yield* b.complete(a.handle)
          expect(Option.isNone(yield* b.getExecutionResult(a.executionId))).toBe(true)
          const e = yield* createAndClaim()
          yield* b.complete(e.handle, { payload: new Uint8Array(0) })
          expect(Option.isNone(yield* b.getExecutionResult(e.executionId))).toBe(true)
          expect(yield* publicState(e.executionId)).toBe("completed")
        }))
    })

    describe("fail", () => {
      t.test("without a retry policy ends the execution failed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          expect(yield* b.fail(c.handle, transient)).toEqual({ _tag: "TerminalFailed" })
          expect(yield* vector(c.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            terminalOutcome: "failed",
            attemptState: "attempt_terminal",
            publicState: "failed"
          })
          yield* claimNone(c.lane)
        }))

      t.test("replay after TerminalFailed returns TerminalFailed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.fail(c.handle, transient)
          expect(yield* b.fail(c.handle, transient)).toEqual({ _tag: "TerminalFailed" })
        }))

      t.test("replay after RetryScheduled returns RetryScheduled{delayUntil: 0}", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ policy: { retryPolicy: { maxRetries: 1 } } })
          const first = yield* b.fail(c.handle, transient)
          expect(first._tag).toBe("RetryScheduled")
          expect(yield* b.fail(c.handle, transient)).toEqual({ _tag: "RetryScheduled", delayUntil: 0 })
          expect(yield* publicState(c.executionId)).toBe("delayed")
        }))

      t.test("after complete: ExecutionNotActive (another outcome is not reconciled)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.complete(c.handle)
          const e = yield* failsWith(b.fail(c.handle, transient), "Contention", "ExecutionNotActive")
          expect(e.notActive?.terminalOutcome).toBe("success")
        }))
    })

    describe("cancel (lease holder)", () => {
      t.test("cancels, and a replay succeeds", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.cancel(c.handle, { reason: "not needed" })
          expect(yield* vector(c.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            terminalOutcome: "cancelled",
            publicState: "cancelled"
          })
          yield* b.cancel(c.handle, { reason: "not needed" })
          const e = yield* failsWith(b.complete(c.handle), "Contention", "ExecutionNotActive")
          expect(e.notActive?.terminalOutcome).toBe("cancelled")
        }))

      t.test("does not check lease expiry", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          yield* advance(5_000)
          yield* b.cancel(c.handle, { reason: "late" })
          expect(yield* publicState(c.executionId)).toBe("cancelled")
        }))

      t.test("a suspended or parked execution is cancelled without any lease check", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const s = yield* createAndClaim()
          const wp = yield* b.suspend(s.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...(yield* Ids.freshWaitpointBinding) }],
            resumeCondition: { _tag: "OperatorOnly" }
          })
          if (wp._tag !== "Suspended") return expect.fail("expected Suspended")
          yield* b.cancel(wp.handle, { reason: "abandon" })
          expect(yield* vector(s.executionId)).toMatchObject({ terminalOutcome: "cancelled", publicState: "cancelled" })
          expect((yield* snapshot(s.executionId)).currentWaitpoint).toBeUndefined()
          const d = yield* createAndClaim()
          yield* b.delay(d.handle, { delayUntil: (yield* now) + 60_000 })
          yield* b.cancel(d.handle, { reason: "abandon" })
          expect(yield* publicState(d.executionId)).toBe("cancelled")
        }))

      t.test("on a revoked lease: State(LeaseRevoked)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.revokeLease({ executionId: c.executionId, reason: "ops" })
          yield* failsWith(b.cancel(c.handle, { reason: "x" }), "State", "LeaseRevoked")
          expect(yield* publicState(c.executionId)).toBe("active")
        }))
    })

    describe("delay", () => {
      t.test("parks the attempt until delayUntil; the next claim resumes the same attempt", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const p = payloadOf(c.handle)
          const t0 = yield* now
          yield* b.delay(c.handle, { delayUntil: t0 + 5_000 })
          expect(yield* vector(c.executionId)).toEqual({
            lifecyclePhase: "runnable",
            ownershipState: "unowned",
            eligibilityState: "not_eligible_until_time",
            blockingReason: "waiting_for_delay",
            terminalOutcome: "none",
            attemptState: "attempt_interrupted",
            publicState: "delayed"
          })
          expect((yield* snapshot(c.executionId)).blockingDetail).toBe(`delayed until ${t0 + 5_000}`)
          yield* claimNone(c.lane)
          yield* advance(4_999)
          yield* pass("promoteDelayed")
          expect(yield* publicState(c.executionId)).toBe("delayed")
          yield* advance(1)
          yield* pass("promoteDelayed")
          expect(yield* publicState(c.executionId)).toBe("waiting")
          expect((yield* vector(c.executionId)).attemptState).toBe("attempt_interrupted")
          const h = yield* claimSome(c.lane)
          expect(h.kind).toBe("resumed")
          expect(payloadOf(h)).toMatchObject({ attemptIndex: p.attemptIndex, attemptId: p.attemptId, leaseEpoch: 2 })
          expect((yield* snapshot(c.executionId)).totalAttemptCount).toBe(1)
          yield* b.complete(h)
        }))

      t.test("is not idempotent: a retry fails with ExecutionNotActive{phase runnable}", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const until = (yield* now) + 1_000
          yield* b.delay(c.handle, { delayUntil: until })
          const e = yield* failsWith(b.delay(c.handle, { delayUntil: until }), "Contention", "ExecutionNotActive")
          expect(e.notActive?.lifecyclePhase).toBe("runnable")
        }))
    })

    describe("wait_children", () => {
      t.test("blocks the parent until its child completes, then resumes the same attempt", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const parent = yield* addMember(flowId)
          const child = yield* addMember(flowId)
          const ph = yield* claimSome(parent.lane)
          // the child is upstream of the parent
          const flow = yield* b.describeFlow(flowId)
          const edgeId = yield* Ids.newEdgeId
          yield* b.stageDependencyEdge({
            flowId,
            edgeId,
            upstreamExecutionId: child.executionId,
            downstreamExecutionId: parent.executionId,
            expectedGraphRevision: Option.getOrThrow(flow).graphRevision
          })
          const applied = yield* b.applyDependencyToChild({
            flowId,
            edgeId,
            upstreamExecutionId: child.executionId,
            downstreamExecutionId: parent.executionId
          })
          expect(applied).toEqual({ _tag: "Applied", unsatisfiedCount: 1 })
          // applying to an active parent does not disturb it
          expect(yield* publicState(parent.executionId)).toBe("active")
          yield* b.waitChildren(ph)
          expect(yield* vector(parent.executionId)).toMatchObject({
            lifecyclePhase: "runnable",
            ownershipState: "unowned",
            eligibilityState: "blocked_by_dependencies",
            blockingReason: "waiting_for_children",
            attemptState: "attempt_interrupted",
            publicState: "waiting_children"
          })
          expect((yield* snapshot(parent.executionId)).blockingDetail).toBe("waiting for child executions to complete")
          yield* claimNone(parent.lane)
          const ch = yield* claimSome(child.lane)
          yield* b.complete(ch)
          // resolved inside the child's complete, no maintenance pass
          expect(yield* publicState(parent.executionId)).toBe("waiting")
          const resumed = yield* claimSome(parent.lane)
          expect(resumed.kind).toBe("resumed")
          expect(payloadOf(resumed)).toMatchObject({ attemptId: payloadOf(ph).attemptId, leaseEpoch: 2 })
        }))

      t.test("is not idempotent: a retry fails with ExecutionNotActive", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.waitChildren(c.handle)
          const e = yield* failsWith(b.waitChildren(c.handle), "Contention", "ExecutionNotActive")
          expect(e.notActive?.lifecyclePhase).toBe("runnable")
        }))
    })

    describe("claim_for_worker and resumed claims", () => {
      const delayedExecution = Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* b.delay(c.handle, { delayUntil: yield* now })
        yield* pass("promoteDelayed")
        expect(yield* publicState(c.executionId)).toBe("waiting")
        return c
      })

      const grant = (lane: M.ClaimArgs["lane"], grantTtlMs = 5_000, worker = WORKER) =>
        Effect.flatMap(backend, (b) =>
          b.claimForWorker({
            laneId: lane,
            workerId: worker,
            workerInstanceId: INSTANCE,
            workerCapabilities: [],
            grantTtlMs
          }))

      const resumedArgs = (id: ExecutionId, h: M.Handle, lane: M.ClaimArgs["lane"], worker = WORKER) =>
        Effect.map(Ids.newLeaseId, (leaseId): M.ClaimResumedExecutionArgs => ({
          executionId: id,
          workerId: worker,
          workerInstanceId: INSTANCE,
          laneId: lane,
          leaseId,
          leaseTtlMs: 10_000,
          currentAttemptIndex: payloadOf(h).attemptIndex
        }))

      t.test("claimForWorker on an empty lane is NoWork", () =>
        Effect.gen(function*() {
          expect(yield* grant(yield* newLane())).toEqual({ _tag: "NoWork" })
        }))

      t.test("claimForWorker grants the head of the lane; the grant blocks other workers' claims until it expires", () =>
        Effect.gen(function*() {
          const c = yield* create()
          const t0 = yield* now
          const g = yield* grant(c.lane, 1_000, Ids.unsafe.workerId("scheduler-worker"))
          if (g._tag !== "Granted") return expect.fail("expected a grant")
          expect(g.grant.executionId).toBe(c.executionId)
          expect(g.grant.partitionKey).toBe(`{fp:${Ids.executionPartition(c.executionId)}}`)
          expect(g.grant.expiresAtMs).toBe(t0 + 1_000)
          // one grant per execution: another worker's claim cannot grant it again
          yield* claimNone(c.lane)
          expect(yield* publicState(c.executionId)).toBe("waiting")
          yield* advance(1_001)
          yield* claimSome(c.lane)
        }))

      t.test("claimForWorker grants the best candidate for the worker across partitions, whatever their heads need", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          // without gpu the best candidates are z, x, y, behind heads that need it
          const { x, y, z } = yield* gpuHeadsAcrossPartitions(lane, t.options.numFlowPartitions)
          const granted = (worker: string) =>
            Effect.map(grant(lane, 5_000, Ids.unsafe.workerId(worker)), (g) => g._tag === "Granted" ? g.grant.executionId : "none")
          // each grant reserves its execution for its worker: the next worker gets the next best
          expect(yield* granted("w-1")).toBe(z.executionId)
          expect(yield* granted("w-2")).toBe(x.executionId)
          expect(yield* granted("w-3")).toBe(y.executionId)
          expect(yield* granted("w-4")).toBe("none")
          // a worker's own live grant does not hide the execution from it: the grant is renewed
          expect(yield* granted("w-1")).toBe(z.executionId)
        }))

      t.test("claimResumedExecution with a grant re-leases the interrupted attempt", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          const t0 = yield* now
          expect((yield* grant(c.lane))._tag).toBe("Granted")
          const args = yield* resumedArgs(c.executionId, c.handle, c.lane)
          const r = yield* b.claimResumedExecution(args)
          expect(r.claimed).toEqual({
            executionId: c.executionId,
            leaseId: args.leaseId,
            leaseEpoch: 2,
            attemptIndex: payloadOf(c.handle).attemptIndex,
            attemptId: payloadOf(c.handle).attemptId,
            leaseExpiresAt: t0 + 10_000
          })
          expect(r.handle.kind).toBe("resumed")
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* b.complete(r.handle)
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))

      t.test("claimResumedExecution is not idempotent: the grant is consumed, a retry is ExecutionNotLeaseable", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          yield* grant(c.lane)
          const args = yield* resumedArgs(c.executionId, c.handle, c.lane)
          yield* b.claimResumedExecution(args)
          yield* failsWith(b.claimResumedExecution(args), "Contention", "ExecutionNotLeaseable")
        }))

      t.test("claimResumedExecution without a grant: Contention(InvalidClaimGrant)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          yield* failsWith(
            b.claimResumedExecution(yield* resumedArgs(c.executionId, c.handle, c.lane)),
            "Contention",
            "InvalidClaimGrant"
          )
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))

      t.test("claimResumedExecution with another worker's grant: Contention(InvalidClaimGrant)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          expect((yield* grant(c.lane, 5_000, Ids.unsafe.workerId("someone-else")))._tag).toBe("Granted")
          yield* failsWith(
            b.claimResumedExecution(yield* resumedArgs(c.executionId, c.handle, c.lane)),
            "Contention",
            "InvalidClaimGrant"
          )
        }))

      t.test("claimResumedExecution with an expired grant: ClaimGrantExpired, then the grant is gone", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          expect((yield* grant(c.lane, 100))._tag).toBe("Granted")
          yield* advance(101)
          const args = yield* resumedArgs(c.executionId, c.handle, c.lane)
          yield* failsWith(b.claimResumedExecution(args), "Contention", "ClaimGrantExpired")
          yield* failsWith(b.claimResumedExecution(args), "Contention", "InvalidClaimGrant")
        }))

      t.test("claimResumedExecution on a never-claimed execution: NotAResumedExecution", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          const probe = yield* createAndClaim()
          yield* failsWith(
            b.claimResumedExecution(yield* resumedArgs(c.executionId, probe.handle, c.lane)),
            "Contention",
            "NotAResumedExecution"
          )
        }))

      t.test("claimResumedExecution on an active execution: ExecutionNotLeaseable", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* failsWith(
            b.claimResumedExecution(yield* resumedArgs(c.executionId, c.handle, c.lane)),
            "Contention",
            "ExecutionNotLeaseable"
          )
        }))

      t.test("claimResumedExecution on a missing execution: NotFound(execution)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const ghost = yield* Ids.executionIdSolo(c.lane)
          const e = yield* failsWith(b.claimResumedExecution(yield* resumedArgs(ghost, c.handle, c.lane)), "NotFound")
          expect(e.entity).toBe("execution")
        }))

      t.test("claimFromReclaim consumes a grant once: Some(resumed handle), then None", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          const g = yield* grant(c.lane)
          if (g._tag !== "Granted") return expect.fail("expected a grant")
          const token: M.ReclaimToken = {
            grant: { ...g.grant, laneId: c.lane },
            workerId: WORKER,
            workerInstanceId: Ids.unsafe.workerInstanceId("reclaimer-1"),
            leaseTtlMs: 7_000
          }
          const h = yield* b.claimFromReclaim(token)
          if (Option.isNone(h)) return expect.fail("claimFromReclaim returned None")
          expect(h.value.kind).toBe("resumed")
          expect(payloadOf(h.value)).toMatchObject({
            executionId: c.executionId,
            attemptId: payloadOf(c.handle).attemptId,
            leaseEpoch: 2,
            leaseTtlMs: 7_000,
            laneId: c.lane,
            workerInstanceId: "reclaimer-1"
          })
          expect(Option.isNone(yield* b.claimFromReclaim(token))).toBe(true)
          yield* b.complete(h.value)
        }))

      t.test("claimFromReclaim without a grant, or for a non-interrupted execution, is None", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* delayedExecution
          const fresh = yield* create()
          for (const id of [c.executionId, fresh.executionId]) {
            const token: M.ReclaimToken = {
              grant: {
                executionId: id,
                partitionKey: Ids.partitionKey("Flow", Ids.executionPartition(id)),
                grantKey: "made-up",
                expiresAtMs: (yield* now) + 5_000,
                laneId: c.lane
              },
              workerId: WORKER,
              workerInstanceId: INSTANCE,
              leaseTtlMs: 1_000
            }
            expect(Option.isNone(yield* b.claimFromReclaim(token))).toBe(true)
          }
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))

      t.test("claimFromReclaim on a missing execution: NotFound(execution)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const id = yield* Ids.executionIdSolo(lane)
          const e = yield* failsWith(
            b.claimFromReclaim({
              grant: {
                executionId: id,
                partitionKey: Ids.partitionKey("Flow", Ids.executionPartition(id)),
                grantKey: "made-up",
                expiresAtMs: (yield* now) + 5_000,
                laneId: lane
              },
              workerId: WORKER,
              workerInstanceId: INSTANCE,
              leaseTtlMs: 1_000
            }),
            "NotFound"
          )
          expect(e.entity).toBe("execution")
        }))

      t.test("claim resumes interrupted work itself and reports it in claimOn", () =>
        Effect.gen(function*() {
          const c = yield* delayedExecution
          const h = yield* claimOn(c.lane)
          expect(Option.map(h, (x) => x.kind)).toEqual(Option.some("resumed"))
        }))
    })
  })
