/**
 * Flow cancellation (docs/design/flows.md#cancelling-a-flow): every policy (FlowOnly,
 * CancelAll, CancelPending) with every wait mode (NoWait, WaitTimeout,
 * WaitIndefinite); the flow reads `cancelling` while owed members are not
 * terminal and `cancelled` after; the header/ack entry points; the wait
 * helper on its own.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Exit } from "effect"
import { waitForFlowCancellation } from "../../src/CancelFlow.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, FlowId } from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type * as M from "../../src/Model.js"
import {
  addMember,
  advance,
  backend,
  buildFlow,
  claimSome,
  createFlow,
  ensureHmac,
  failsWith,
  flowSnapshot,
  newLane,
  now,
  NS,
  pass,
  passUntilDone,
  publicState,
  runDriven,
  signal,
  suspendSingle,
  type Tester
} from "./helpers.js"

const WAITS: ReadonlyArray<readonly [string, M.CancelFlowWait]> = [
  ["NoWait", { _tag: "NoWait" }],
  ["WaitTimeout", { _tag: "WaitTimeout", timeout: Duration.seconds(60) }],
  ["WaitIndefinite", { _tag: "WaitIndefinite" }]
]

const TERMINAL: ReadonlyArray<M.PublicState> = ["completed", "failed", "cancelled", "expired", "skipped"]

/** A flow whose members are waiting, delayed, active, suspended and completed. */
const mixedFlow = Effect.gen(function*() {
  const b = yield* backend
  yield* ensureHmac
  const flowId = yield* createFlow()
  const waiting = yield* addMember(flowId)
  const delayed = yield* addMember(flowId, { delayUntil: (yield* now) + 3_600_000 })
  const active = yield* addMember(flowId)
  const activeHandle = yield* claimSome(active.lane)
  const suspended = yield* addMember(flowId)
  const s = yield* suspendSingle(yield* claimSome(suspended.lane), { signalName: "go" })
  const completed = yield* addMember(flowId)
  yield* b.complete(yield* claimSome(completed.lane))
  return {
    flowId,
    waiting: waiting.executionId,
    delayed: delayed.executionId,
    active: active.executionId,
    activeHandle,
    suspended: suspended.executionId,
    suspension: s,
    completed: completed.executionId,
    all: [waiting, delayed, active, suspended, completed].map((m) => m.executionId)
  }
})

/** Runs the cancel-backlog pass after the reconciler grace until the flow reads `cancelled`. */
const finishCascade = (flowId: FlowId) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10; i++) {
      if ((yield* flowSnapshot(flowId)).publicFlowState === "cancelled") return
      yield* advance(30_001)
      yield* passUntilDone("drainCancelBacklog")
    }
    expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("cancelled")
  })

/** A flow that reads `cancelled` owes nothing; one that reads `cancelling` still owes something. */
const checkCascadeInvariant = (flowId: FlowId, owed: ReadonlyArray<ExecutionId>) =>
  Effect.gen(function*() {
    const state = (yield* flowSnapshot(flowId)).publicFlowState
    expect(["cancelling", "cancelled"]).toContain(state)
    const states: ReadonlyArray<M.PublicState> = yield* Effect.forEach(owed, publicState, { concurrency: 16 })
    const allTerminal = states.every((s) => TERMINAL.includes(s))
    if (state === "cancelled") expect(states.every((s) => s === "cancelled")).toBe(true)
    else expect(allTerminal).toBe(false)
    return state
  })

const cancelDriven = (args: M.Input<typeof M.CancelFlowArgs.fields>) =>
  Effect.flatMap(backend, (b) => runDriven(b.cancelFlow(args), { tick: pass("drainCancelBacklog") }))

export const cancelFlows = (t: Tester) =>
  describe("cancel_flow", () => {
    describe("waitForFlowCancellation", () => {
      t.test("on an open flow fails with Timeout{cancel_flow, elapsed = deadline} at the deadline", () =>
        Effect.gen(function*() {
          const flowId = yield* createFlow()
          const t0 = yield* now
          const exit = yield* runDriven(waitForFlowCancellation(flowId, Duration.seconds(2)))
          const timeout = yield* failsWith(exit, "Timeout")
          expect(timeout.op).toBe("cancel_flow")
          expect(Duration.toMillis(timeout.elapsed)).toBe(2_000)
          expect((yield* now) - t0).toBeGreaterThanOrEqual(2_000)
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("open")
          const e = yield* failsWith(waitForFlowCancellation(flowId, Duration.zero), "Timeout")
          expect(e.op).toBe("cancel_flow")
          expect(Duration.toMillis(e.elapsed)).toBe(0)
        }))

      t.test("succeeds at once for a missing flow and for a cancelled flow", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* waitForFlowCancellation(yield* Ids.newFlowId, Duration.zero)
          const flowId = yield* createFlow()
          yield* b.cancelFlow({ flowId, policy: "FlowOnly" })
          yield* waitForFlowCancellation(flowId, Duration.zero)
        }))
    })

    describe("errors and replay", () => {
      t.test("a missing flow is NotFound(flow)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          for (const policy of ["FlowOnly", "CancelAll", "CancelPending"] as const) {
            const flowId = yield* Ids.newFlowId
            const e = yield* failsWith(b.cancelFlow({ flowId, policy }), "NotFound")
            expect(e.entity).toBe("flow")
            expect(e.id).toBe(flowId)
          }
        }))

      t.test("a second cancelFlow is State(FlowAlreadyTerminal), whatever the policy", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId } = yield* buildFlow(2)
          yield* b.cancelFlow({ flowId, policy: "CancelAll" })
          yield* finishCascade(flowId)
          for (const policy of ["FlowOnly", "CancelAll", "CancelPending"] as const) {
            yield* failsWith(b.cancelFlow({ flowId, policy }), "State", "FlowAlreadyTerminal")
          }
          expect((yield* flowSnapshot(flowId)).cancellationPolicy).toBe("cancel_all")
        }))

      t.test("an empty flow is cancelled at once with CancelAll", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const r = yield* b.cancelFlow({ flowId, policy: "CancelAll", reason: "empty" })
          expect(r).toEqual({ _tag: "Cancelled", cancellationPolicy: "cancel_all", memberExecutionIds: [] })
          const f = yield* flowSnapshot(flowId)
          expect(f.publicFlowState).toBe("cancelled")
          expect(f.cancelReason).toBe("empty")
        }))
    })

    for (const [waitName, wait] of WAITS) {
      describe(`FlowOnly × ${waitName}`, () => {
        t.test("flips the flow to cancelled and leaves every member alone", () =>
          Effect.gen(function*() {
            const f = yield* mixedFlow
            const t0 = yield* now
            const exit = yield* cancelDriven({ flowId: f.flowId, policy: "FlowOnly", wait })
            if (Exit.isFailure(exit)) return expect.fail(`cancelFlow failed: ${String(exit.cause)}`)
            expect(exit.value._tag).toBe("Cancelled")
            expect(exit.value.cancellationPolicy).toBe("flow_only")
            expect([...exit.value.memberExecutionIds].sort()).toEqual([...f.all].sort())
            const snap = yield* flowSnapshot(f.flowId)
            expect(snap.publicFlowState).toBe("cancelled")
            expect(snap.cancellationPolicy).toBe("flow_only")
            expect(snap.cancelledAt).toBe(t0)
            yield* passUntilDone("drainCancelBacklog")
            expect(yield* publicState(f.waiting)).toBe("waiting")
            expect(yield* publicState(f.delayed)).toBe("delayed")
            expect(yield* publicState(f.active)).toBe("active")
            expect(yield* publicState(f.suspended)).toBe("suspended")
            expect(yield* publicState(f.completed)).toBe("completed")
          }))
      })

      describe(`CancelAll × ${waitName}`, () => {
        t.test("cancels every non-terminal member; the flow reads cancelled only when they all are", () =>
          Effect.gen(function*() {
            const b = yield* backend
            const f = yield* mixedFlow
            const owed = [f.waiting, f.delayed, f.active, f.suspended]
            const exit = yield* cancelDriven({ flowId: f.flowId, policy: "CancelAll", wait })
            if (Exit.isFailure(exit)) return expect.fail(`cancelFlow failed: ${String(exit.cause)}`)
            expect(exit.value).toMatchObject({ _tag: "Cancelled", cancellationPolicy: "cancel_all" })
            expect([...exit.value.memberExecutionIds].sort()).toEqual([...f.all].sort())
            const state = yield* checkCascadeInvariant(f.flowId, owed)
            // a wait returns only once the cascade finished
            if (wait._tag !== "NoWait") expect(state).toBe("cancelled")
            yield* finishCascade(f.flowId)
            for (const id of owed) expect(yield* publicState(id)).toBe("cancelled")
            expect(yield* publicState(f.completed)).toBe("completed")
            // the former lease holder and the signaller are shut out
            const e = yield* failsWith(b.complete(f.activeHandle), "Contention", "ExecutionNotActive")
            expect(e.notActive?.terminalOutcome).toBe("cancelled")
            yield* failsWith(
              signal({
                executionId: f.suspended,
                waitpointId: f.suspension.waitpointId,
                token: f.suspension.token,
                name: "go"
              }),
              "State",
              "TargetNotSignalable"
            )
          }))
      })

      describe(`CancelPending × ${waitName}`, () => {
        t.test("cancels runnable members only; active and suspended members drain", () =>
          Effect.gen(function*() {
            const b = yield* backend
            const f = yield* mixedFlow
            const exit = yield* cancelDriven({ flowId: f.flowId, policy: "CancelPending", wait })
            if (Exit.isFailure(exit)) return expect.fail(`cancelFlow failed: ${String(exit.cause)}`)
            expect(exit.value).toMatchObject({ _tag: "Cancelled", cancellationPolicy: "cancel_pending" })
            const state = yield* checkCascadeInvariant(f.flowId, [f.waiting, f.delayed])
            if (wait._tag !== "NoWait") expect(state).toBe("cancelled")
            yield* finishCascade(f.flowId)
            expect(yield* publicState(f.waiting)).toBe("cancelled")
            expect(yield* publicState(f.delayed)).toBe("cancelled")
            expect(yield* publicState(f.active)).toBe("active")
            expect(yield* publicState(f.suspended)).toBe("suspended")
            expect(yield* publicState(f.completed)).toBe("completed")
            expect((yield* flowSnapshot(f.flowId)).cancellationPolicy).toBe("cancel_pending")
            // the active member finishes normally
            yield* b.complete(f.activeHandle)
            expect(yield* publicState(f.active)).toBe("completed")
          }))
      })
    }

    describe("flows with dependencies", () => {
      t.test("CancelAll on a DAG leaves no member runnable (cancelled, or skipped by a cancelled upstream)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 1], [1, 2], [0, 3]])
          const h = yield* claimSome(members[0]!.lane)
          yield* b.cancelFlow({ flowId, policy: "CancelAll" })
          yield* finishCascade(flowId)
          expect(yield* publicState(ids[0]!)).toBe("cancelled")
          for (const id of ids.slice(1)) expect(["cancelled", "skipped"]).toContain(yield* publicState(id))
          yield* failsWith(b.complete(h), "Contention", "ExecutionNotActive")
        }))

      t.test("CancelPending spares an active upstream; its dependants are cancelled", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(3, [[0, 1], [1, 2]])
          const h = yield* claimSome(members[0]!.lane)
          yield* b.cancelFlow({ flowId, policy: "CancelPending" })
          yield* finishCascade(flowId)
          expect(yield* publicState(ids[1]!)).toBe("cancelled")
          expect(yield* publicState(ids[2]!)).toBe("cancelled")
          expect(yield* publicState(ids[0]!)).toBe("active")
          yield* b.complete(h)
          expect(yield* publicState(ids[1]!)).toBe("cancelled")
        }))
    })

    describe("large flows (bounded atomic work, durable backlog)", () => {
      // above the memory engine's inline bound (1 000), so the backlog path is exercised there too
      const SIZE = 1_050
      // thousands of calls each: a loaded machine takes well over the suite's usual 30 s
      const LARGE_TIMEOUT = 180_000

      // the members come in extendFlow batches: one at a time, a loaded machine took longer than a
      // test may to build the flow on the server backends
      const bigFlow = Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const laneId = yield* newLane("big")
        const ids: Array<ExecutionId> = []
        for (let i = 0; i < SIZE; i += Limits.flowExtendMembers) {
          const members = yield* Effect.forEach(
            Array.from({ length: Math.min(Limits.flowExtendMembers, SIZE - i) }),
            () =>
              Effect.map(Ids.executionIdForFlow(flowId), (executionId) => ({
                executionId,
                namespace: NS,
                laneId,
                executionKind: "conformance"
              }))
          )
          expect((yield* b.extendFlow({ flowId, members }))._tag).toBe("Extended")
          ids.push(...members.map((m) => m.executionId))
        }
        return { flowId, ids }
      })

      t.test("CancelAll × NoWait: cancelling until the backlog cancelled every member, then cancelled", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* bigFlow
          const r = yield* b.cancelFlow({ flowId, policy: "CancelAll" })
          expect(r.memberExecutionIds.length).toBe(SIZE)
          yield* checkCascadeInvariant(flowId, ids)
          yield* finishCascade(flowId)
          expect(new Set(yield* Effect.forEach(ids, publicState, { concurrency: 16 }))).toEqual(new Set(["cancelled"]))
        }), LARGE_TIMEOUT)

      t.test("CancelAll × WaitIndefinite waits for the whole cascade", () =>
        Effect.gen(function*() {
          const { flowId, ids } = yield* bigFlow
          const exit = yield* cancelDriven({ flowId, policy: "CancelAll", wait: { _tag: "WaitIndefinite" } })
          expect(Exit.isSuccess(exit)).toBe(true)
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("cancelled")
          expect(new Set(yield* Effect.forEach(ids, publicState, { concurrency: 16 }))).toEqual(new Set(["cancelled"]))
        }), LARGE_TIMEOUT)

      t.test("CancelAll × WaitTimeout: a cascade still owed at the deadline is Timeout{cancel_flow}", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* bigFlow
          // nobody drains the backlog here: either the backend cancelled everything atomically,
          // or the wait must time out with the requested deadline while the flow reads `cancelling`
          const exit = yield* runDriven(
            b.cancelFlow({ flowId, policy: "CancelAll", wait: { _tag: "WaitTimeout", timeout: Duration.millis(500) } })
          )
          const state = yield* checkCascadeInvariant(flowId, ids)
          if (state === "cancelled") {
            expect(Exit.isSuccess(exit)).toBe(true)
          } else {
            expect(Exit.isFailure(exit)).toBe(true)
            const e = yield* failsWith(exit, "Timeout")
            expect(e.op).toBe("cancel_flow")
            expect(Duration.toMillis(e.elapsed)).toBe(500)
          }
          yield* finishCascade(flowId)
        }), LARGE_TIMEOUT)
    })

    describe("cancel_flow_header and ack_cancel_member", () => {
      t.test("the header cancels (the cascade follows) and then answers AlreadyTerminal with what it stored", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(3)
          const r = yield* b.cancelFlowHeader({ flowId, reason: "ops", cancellationPolicy: "CancelAll" })
          if (r._tag !== "Cancelled") return expect.fail(`expected Cancelled, got ${r._tag}`)
          expect(r.cancellationPolicy).toBe("cancel_all")
          expect([...r.memberExecutionIds].sort()).toEqual([...ids].sort())
          yield* finishCascade(flowId)
          for (const id of ids) expect(yield* publicState(id)).toBe("cancelled")
          const again = yield* b.cancelFlowHeader({ flowId, reason: "other", cancellationPolicy: "FlowOnly" })
          if (again._tag !== "AlreadyTerminal") return expect.fail(`expected AlreadyTerminal, got ${again._tag}`)
          expect(again.storedCancellationPolicy).toBe("cancel_all")
          expect(again.storedCancelReason).toBe("ops")
          expect([...again.memberExecutionIds].sort()).toEqual([...ids].sort())
        }))

      t.test("the header of a missing flow is NotFound(flow)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const e = yield* failsWith(
            b.cancelFlowHeader({ flowId: yield* Ids.newFlowId, reason: "x", cancellationPolicy: "CancelAll" }),
            "NotFound"
          )
          expect(e.entity).toBe("flow")
        }))

      t.test("ackCancelMember is idempotent and never fails for unknown ids", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(1)
          yield* b.cancelFlowHeader({ flowId, reason: "x", cancellationPolicy: "CancelAll" })
          yield* b.ackCancelMember({ flowId, executionId: ids[0]! })
          yield* b.ackCancelMember({ flowId, executionId: ids[0]! })
          const ghost = yield* Ids.newFlowId
          yield* b.ackCancelMember({ flowId: ghost, executionId: yield* Ids.executionIdForFlow(ghost) })
        }))
    })
  })
