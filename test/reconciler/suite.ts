/**
 * The reconciler over any backend layer: each maintenance pass, run on its
 * schedule, moves the engine as docs/design/maintenance.md#passes says.
 * `TestClock` drives time (the layer must read Effect's `Clock`); every test
 * uses its own lanes.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, type Layer, Metric, MetricState, Option, Schedule, TestClock } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, LaneId } from "../../src/Ids.js"
import type { Maintenance } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import * as Producer from "../../src/Producer.js"
import * as Reconciler from "../../src/Reconciler.js"
import {
  claimOne,
  Echo,
  info,
  isState,
  makeTest,
  newLane,
  now,
  policyOf,
  seedHmac,
  snapshot,
  state,
  type SuiteOptions
} from "../worker/helpers.js"

const submit = (lane: LaneId, options: Partial<Producer.SubmitOptions> = {}) =>
  Producer.submit(Echo, { text: "x" }, { lane, namespace: "reconciler-suite", ...options })

/** Every pass on a 1 s interval unless overridden. */
const everySecond = (overrides: Reconciler.ReconcilerOptions = {}): Reconciler.ReconcilerOptions => ({
  intervals: {
    expireLeases: "1 second",
    promoteDelayed: "1 second",
    expireAttempts: "1 second",
    expireExecutions: "1 second",
    expireSuspensions: "1 second",
    expirePendingWaitpoints: "1 second",
    reconcileDependencies: "1 second",
    drainCancelBacklog: "1 second",
    resetBudgets: "1 second",
    trimRetention: "1 second",
    ...overrides.intervals
  },
  ...(overrides.batchSize === undefined ? {} : { batchSize: overrides.batchSize })
})

const processedOf = (pass: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let total = 0
    for (const p of pairs) {
      if (
        p.metricKey.name === "flowfabric_reconciler_processed_total" &&
        p.metricKey.tags.some((t) => t.key === "pass" && t.value === pass) &&
        MetricState.isCounterState(p.metricState)
      ) total += Number(p.metricState.count)
    }
    return total
  })

const runsOf = (pass: string) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let total = 0
    for (const p of pairs) {
      if (
        p.metricKey.name === "flowfabric_reconciler_pass_runs_total" &&
        p.metricKey.tags.some((t) => t.key === "pass" && t.value === pass) &&
        MetricState.isCounterState(p.metricState)
      ) total += Number(p.metricState.count)
    }
    return total
  })

const suspendFor = (handle: M.Handle, timeoutAt: number, behavior: M.TimeoutBehavior) =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const waitpointId = yield* Ids.newWaitpointId
    return yield* backend.suspend(handle, {
      suspensionId: yield* Ids.newSuspensionId,
      waitpoints: [{ _tag: "Fresh", waitpointId, waitpointKey: "k" }],
      resumeCondition: { _tag: "Single", waitpointKey: "k", matcher: { _tag: "ByName", name: "go" } },
      timeoutAt,
      timeoutBehavior: behavior
    })
  })

export const reconcilerSuite = (
  name: string,
  layer: Layer.Layer<EngineBackend | Maintenance, unknown>,
  options?: SuiteOptions
): void => {
  const test = makeTest(layer, options)

  describe(`Reconciler (${name})`, () => {
    test("promotes delayed executions and retries whose backoff elapsed", ({ advance, until }) =>
      Effect.scoped(Effect.gen(function*() {
        const backend = yield* EngineBackend
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond({ intervals: { promoteDelayed: "250 millis" } }))
        const delayed = yield* submit(lane, { delay: "10 seconds" })
        expect(yield* state(delayed)).toBe("delayed")
        yield* advance(9_000, 250)
        expect(yield* state(delayed)).toBe("delayed")
        // (each `until` below: the passes' I/O is real and lags behind the test clock on a loaded
        // machine; what it waits for stays true once reached, so its bound in steps is generous)
        yield* until(isState(delayed, "waiting"), { stepMs: 250, maxSteps: 80 })

        const retried = yield* submit(lane, {
          policy: { retryPolicy: { maxRetries: 2, backoff: { type: "fixed", delayMs: 2_000 } } }
        })
        yield* backend.cancelExecution({ executionId: delayed, reason: "out of the way" })
        const handle = yield* claimOne(lane)
        const outcome = yield* backend.fail(handle, { reason: { message: "flaky" }, classification: "Transient" })
        expect(outcome._tag).toBe("RetryScheduled")
        expect(yield* state(retried)).toBe("delayed")
        yield* advance(1_500, 250)
        expect(yield* state(retried)).toBe("delayed")
        yield* until(isState(retried, "waiting"), { stepMs: 250, maxSteps: 80 })
      })))

    test("expires attempts past their attempt timeout", ({ until }) =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond())
        const id = yield* submit(lane, { policy: { timeoutPolicy: { attemptTimeoutMs: 5_000 } } })
        yield* claimOne(lane, { ...policyOf("slow"), leaseTtlMs: 60_000 })
        const t0 = yield* now
        yield* until(isState(id, "expired"), { stepMs: 250 })
        expect((yield* now) - t0).toBeGreaterThanOrEqual(5_000)
        expect((yield* now) - t0).toBeLessThanOrEqual(6_500)
      })))

    test("runs a timer pass at the due time its last run reported, not at its next interval", ({ eventually, settle }) =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        const id = yield* submit(lane, { policy: { timeoutPolicy: { attemptTimeoutMs: 1_500 } } })
        yield* claimOne(lane, { ...policyOf("slow"), leaseTtlMs: 60_000 })
        const before = yield* runsOf("expireAttempts")
        yield* Reconciler.start(everySecond({ intervals: { expireAttempts: "1 hour" } }))
        yield* eventually(Effect.map(runsOf("expireAttempts"), (n) => n > before))
        yield* TestClock.adjust("1499 millis")
        yield* settle
        expect(yield* state(id)).toBe("active")
        yield* TestClock.adjust("1 millis")
        yield* eventually(isState(id, "expired"))
      })))

    test("promotes a delayed execution at its due time, not at the pass's next interval", ({ eventually, settle }) =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        const id = yield* submit(lane, { delay: "300 millis" })
        const before = yield* runsOf("promoteDelayed")
        yield* Reconciler.start(everySecond({ intervals: { promoteDelayed: "1 hour" } }))
        yield* eventually(Effect.map(runsOf("promoteDelayed"), (n) => n > before))
        yield* TestClock.adjust("299 millis")
        yield* settle
        expect(yield* state(id)).toBe("delayed")
        yield* TestClock.adjust("1 millis")
        yield* eventually(isState(id, "waiting"))
      })))

    test("expires executions past their deadline, claimed or not", ({ until }) =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond())
        const running = yield* submit(lane, { deadline: "4 seconds" })
        yield* claimOne(lane, { ...policyOf("busy"), leaseTtlMs: 60_000 })
        const waiting = yield* submit(lane, { deadline: "3 seconds" })
        expect(yield* state(running)).toBe("active")
        yield* until(isState(waiting, "expired"), { stepMs: 250 })
        yield* until(isState(running, "expired"), { stepMs: 250 })
      })))

    test("marks leases that were not renewed reclaimable; the next claim reclaims them", ({ until }) =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond({ intervals: { expireLeases: "500 millis" } }))
        const id = yield* submit(lane)
        yield* claimOne(lane, { ...policyOf("gone"), leaseTtlMs: 2_000 })
        yield* until(
          Effect.map(info(id), (i) => i.stateVector.ownershipState === "lease_expired_reclaimable"),
          { stepMs: 250, maxSteps: 80 }
        )
        yield* claimOne(lane, policyOf("next"))
        const s = yield* snapshot(id)
        expect(s.totalAttemptCount).toBe(2)
        expect(s.currentLease?.workerInstanceId).toBe("next-i")
      })))

    test("applies each suspension timeout behaviour", ({ until }) =>
      Effect.scoped(Effect.gen(function*() {
        yield* seedHmac
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond())
        const behaviours: ReadonlyArray<readonly [M.TimeoutBehavior, M.PublicState]> = [
          ["fail", "failed"],
          ["cancel", "cancelled"],
          ["expire", "expired"],
          ["auto_resume", "waiting"],
          ["auto_resume_with_timeout_signal", "waiting"],
          ["escalate", "suspended"]
        ]
        const ids: Array<readonly [M.TimeoutBehavior, ExecutionId, M.PublicState]> = []
        const t0 = yield* now
        for (const [behaviour, expected] of behaviours) {
          const id = yield* submit(lane)
          const handle = yield* claimOne(lane)
          const outcome = yield* suspendFor(handle, t0 + 2_000, behaviour)
          expect(outcome._tag).toBe("Suspended")
          ids.push([behaviour, id, expected])
        }
        yield* until(
          Effect.map(
            Effect.forEach(ids, ([behaviour, id]) =>
              behaviour === "escalate" ?
                Effect.map(snapshot(id), (s) => s.blockingReason === "paused_by_operator") :
                Effect.map(state(id), (s) => s !== "suspended")),
            (xs) => xs.every(Boolean)
          ),
          { stepMs: 250 }
        )
        for (const [behaviour, id, expected] of ids) {
          expect([behaviour, yield* state(id)]).toEqual([behaviour, expected])
        }
      })))

    test("closes pending waitpoints past their expiry", ({ until }) =>
      Effect.scoped(Effect.gen(function*() {
        yield* seedHmac
        const backend = yield* EngineBackend
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond())
        const id = yield* submit(lane)
        const handle = yield* claimOne(lane)
        const wp = yield* backend.createWaitpoint(handle, { waitpointKey: "later", expiresIn: Duration.seconds(2) })
        const listed = (yield* backend.listPendingWaitpoints({ executionId: id })).entries.map((e) => e.waitpointId)
        expect(listed).toEqual([wp.waitpointId])
        yield* until(
          Effect.map(backend.listPendingWaitpoints({ executionId: id }), (r) => r.entries.length === 0),
          { stepMs: 250 }
        )
        const late = yield* Effect.flip(Producer.signal({
          executionId: id,
          waitpointId: wp.waitpointId,
          token: wp.hmacToken,
          name: "late"
        }))
        expect(late).toMatchObject({ _tag: "State", kind: "WaitpointClosed" })
      })))

    test("drains the flow-cancel backlog once its grace elapsed", ({ advance, until }) =>
      Effect.scoped(Effect.gen(function*() {
        const backend = yield* EngineBackend
        const lane = yield* newLane()
        yield* Reconciler.start(everySecond())
        const flow = yield* Producer.createFlow({
          lane,
          nodes: { a: Producer.node(Echo, { text: "a" }), b: Producer.node(Echo, { text: "b" }) }
        })
        const header = yield* backend.cancelFlowHeader({
          flowId: flow.flowId,
          reason: "no longer needed",
          cancellationPolicy: "CancelAll"
        })
        expect(header._tag).toBe("Cancelled")
        const flowState = Effect.map(backend.describeFlow(flow.flowId), Option.map((f) => f.publicFlowState))
        expect(yield* flowState).toEqual(Option.some("cancelling"))
        yield* advance(25_000, 1_000)
        expect(yield* state(flow.executions.a)).toBe("waiting")
        yield* until(Effect.map(flowState, (s) => Option.getOrUndefined(s) === "cancelled"), { stepMs: 500 })
        expect(yield* state(flow.executions.a)).toBe("cancelled")
        expect(yield* state(flow.executions.b)).toBe("cancelled")
      })))

    test("a pass that reports more work runs again at once, in bounded batches", ({ advance, eventually, until }) =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        // (a schedule of its own: the pass does not run early for the leases' due times)
        yield* Reconciler.start({
          passes: ["expireLeases"],
          schedules: { expireLeases: Schedule.spaced("10 seconds") },
          batchSize: 1
        })
        const before = yield* processedOf("expireLeases")
        const ids = yield* Effect.forEach([1, 2, 3], () => submit(lane))
        for (const _ of ids) yield* claimOne(lane, { ...policyOf("w"), leaseTtlMs: 1_000 })
        const ownership = Effect.forEach(ids, (id) => Effect.map(info(id), (i) => i.stateVector.ownershipState))
        yield* advance(9_900, 100)
        expect(yield* ownership).toEqual(["leased", "leased", "leased"])
        // (the schedule counts from the end of the first run, whose I/O may have let the clock move on)
        yield* until(Effect.map(ownership, (o) => o.every((x) => x === "lease_expired_reclaimable")), {
          stepMs: 100,
          maxSteps: 200
        })
        // the store shows the transition before the pass's fiber has counted it
        yield* eventually(Effect.map(processedOf("expireLeases"), (n) => n - before >= 3))
      })))

    test("runOnce runs every pass once and reports what each did", () =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const id = yield* submit(lane, { delay: "1 second" })
        const results = yield* Reconciler.runOnce()
        expect(results.map((r) => r.pass)).toEqual([
          "expireLeases",
          "promoteDelayed",
          "expireAttempts",
          "expireExecutions",
          "expireSuspensions",
          "expirePendingWaitpoints",
          "reconcileDependencies",
          "drainCancelBacklog",
          "resetBudgets",
          "trimRetention"
        ])
        expect(results.every((r) => !r.more)).toBe(true)
        expect(yield* state(id)).toBe("delayed")
      }))
  })
}
