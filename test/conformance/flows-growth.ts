/**
 * Flows (docs/design/flows.md) that grow while they run: open and sealed flows, extendFlow, and the replay of
 * flow members.
 */
import { describe, expect } from "@effect/vitest"
import { Clock, Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { EngineBackend } from "../../src/EngineBackend.js"
import type { EngineError } from "../../src/EngineError.js"
import type { ExecutionId, FlowId, LaneId } from "../../src/Ids.js"
import type { PassName } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import { completeMember, failMember } from "./flows-helpers.js"
import {
  addEdge,
  addMember,
  advance,
  backend,
  buildFlow,
  bytes,
  claimNone,
  claimSome,
  create,
  createFlow,
  edgeGroup,
  ensureHmac,
  executionIdOnPartition,
  expectStates,
  failsWith,
  flowSnapshot,
  newLane,
  NS,
  pass,
  payloadOf,
  publicState,
  snapshot,
  suspendSingle,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"

export const flowsGrowth = (t: Tester): void => {
  describe("open flows", () => {
    const flowState = (flowId: M.FlowSnapshot["flowId"]) => Effect.map(flowSnapshot(flowId), (f) => f.publicFlowState)

    t.test("the flow's state follows its members: open, running, completed, failed", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        expect(yield* flowState(flowId)).toBe("open")
        const a = yield* addMember(flowId)
        expect(yield* flowState(flowId)).toBe("running")
        yield* completeMember(a)
        expect(yield* flowState(flowId)).toBe("completed")
        const f = yield* addMember(flowId)
        expect(yield* flowState(flowId)).toBe("running")
        yield* failMember(f)
        expect(yield* flowState(flowId)).toBe("failed")
        const listed = yield* b.listFlows({ partition: Ids.partitionKey("Flow", Ids.flowPartition(flowId)), limit: 1000 })
        expect(listed.flows.find((x) => x.flowId === flowId)?.status).toBe("Failed")
        expect((yield* flowSnapshot(flowId)).sealed).toBe(false)
      }))

    t.test("a flow whose members all finished takes new members and edges and runs again", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const a = yield* addMember(flowId)
        yield* b.complete(yield* claimSome(a.lane), { payload: bytes("a-result") })
        expect(yield* flowState(flowId)).toBe("completed")
        // (a small input of its own, which the upstream's result replaces)
        const next = yield* addMember(flowId, { inputPayload: bytes("own input") })
        expect(text(Option.getOrThrow(yield* b.getExecutionInput(next.executionId)).payload)).toBe("own input")
        expect((yield* flowSnapshot(flowId)).nodeCount).toBe(2)
        yield* addEdge(flowId, a.executionId, next.executionId, { dataPassingRef: "a" })
        expect(yield* publicState(next.executionId)).toBe("waiting")
        expect(yield* flowState(flowId)).toBe("running")
        const input = Option.getOrThrow(yield* b.getExecutionInput(next.executionId))
        expect(text(input.payload)).toBe("a-result")
        yield* completeMember(next)
        expect(yield* flowState(flowId)).toBe("completed")
      }))

    t.test("a result larger than the child's own small input replaces it whole", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const a = yield* addMember(flowId)
        const large = JSON.stringify({ pad: "r".repeat(600) })
        yield* b.complete(yield* claimSome(a.lane), { payload: bytes(large) })
        const next = yield* addMember(flowId, { inputPayload: bytes("own input"), payloadEncoding: "json" })
        yield* addEdge(flowId, a.executionId, next.executionId, { dataPassingRef: "a" })
        const input = Option.getOrThrow(yield* b.getExecutionInput(next.executionId))
        expect([text(input.payload), input.payloadEncoding]).toEqual([large, "json"])
        const claimed = yield* claimSome(next.lane)
        yield* b.complete(claimed, { payload: bytes("done") })
        expect(Option.map(yield* b.getExecutionResult(next.executionId), text)).toEqual(Option.some("done"))
        expect(Option.map(yield* b.getExecutionResult(a.executionId), text)).toEqual(Option.some(large))
      }))

    t.test("replaying a member of a finished flow makes the flow running again", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(1)
        yield* failMember(members[0]!)
        expect(yield* flowState(flowId)).toBe("failed")
        yield* b.replayExecution(ids[0]!)
        expect(yield* flowState(flowId)).toBe("running")
        yield* completeMember(members[0]!)
        expect(yield* flowState(flowId)).toBe("completed")
      }))

    t.test("cancelFlow cancels a flow whose members all finished, leaving the members as they are", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(2)
        yield* completeMember(members[0]!)
        yield* failMember(members[1]!)
        expect(yield* flowState(flowId)).toBe("failed")
        const r = yield* b.cancelFlow({ flowId, policy: "CancelAll", reason: "done with it" })
        expect(r._tag).toBe("Cancelled")
        expect(yield* flowSnapshot(flowId)).toMatchObject({ publicFlowState: "cancelled", cancelReason: "done with it" })
        yield* expectStates([[ids[0]!, "completed"], [ids[1]!, "failed"]])
        const c = yield* create({ flowId })
        yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowAlreadyTerminal")
        yield* failsWith(b.cancelFlow({ flowId, policy: "FlowOnly" }), "State", "FlowAlreadyTerminal")
      }))

    t.test("a claim that fails a member past its reclaim cap resolves its dependents before the next candidate: a member of its lane depending on it is skipped, not failed by its own cap", () =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId, { laneId: lane, policy: { maxReclaimCount: 0 } })
        // (created a millisecond later: the claims take `up` first)
        yield* advance(1)
        const down = yield* addMember(flowId, { laneId: lane, policy: { maxReclaimCount: 0 } })
        expect(payloadOf(yield* claimSome(lane, { ttl: 1_000 })).executionId).toBe(up.executionId)
        expect(payloadOf(yield* claimSome(lane, { ttl: 1_000 })).executionId).toBe(down.executionId)
        yield* advance(1_000)
        yield* pass("expireLeases")
        // an edge into the member whose lease expired (a running member)
        yield* addEdge(flowId, up.executionId, down.executionId)
        yield* Effect.either(claimNone(lane))
        yield* expectStates([[up.executionId, "failed"], [down.executionId, "skipped"]])
      }))

    /**
     * A member and its dependent, both due in one run of a timer pass: the pass ends the member,
     * whose dependency then skips the dependent before the pass reaches it (every backend resolves
     * dependents in the step that ends their upstream).
     */
    const dueTogether = (
      setUp: (lane: LaneId, flowId: FlowId, t0: number) => Effect.Effect<readonly [ExecutionId, ExecutionId], EngineError, EngineBackend>,
      passName: PassName,
      ended: M.PublicState
    ) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const flowId = yield* createFlow()
        const [up, down] = yield* setUp(lane, flowId, yield* Clock.currentTimeMillis)
        yield* addEdge(flowId, up, down)
        yield* advance(10_000)
        yield* pass(passName)
        yield* expectStates([[up, ended], [down, "skipped"]])
      })

    t.test("an execution deadline pass skips a dependent due after its upstream instead of expiring it", () =>
      dueTogether((lane, flowId, t0) =>
        Effect.gen(function*() {
          const up = yield* addMember(flowId, { laneId: lane, executionDeadlineAt: t0 + 1_000 })
          const down = yield* addMember(flowId, { laneId: lane, executionDeadlineAt: t0 + 2_000 })
          return [up.executionId, down.executionId] as const
        }), "expireExecutions", "expired"))

    t.test("an attempt timeout pass skips a running dependent timed out after its upstream instead of expiring it", () =>
      dueTogether((lane, flowId) =>
        Effect.gen(function*() {
          const policy = { timeoutPolicy: { attemptTimeoutMs: 1_000 }, retryPolicy: { maxRetries: 0 } }
          const up = yield* addMember(flowId, { laneId: lane, policy })
          yield* advance(1)
          const down = yield* addMember(flowId, { laneId: lane, policy })
          expect(payloadOf(yield* claimSome(lane, { ttl: 60_000 })).executionId).toBe(up.executionId)
          // (its timeout a millisecond after the upstream's)
          yield* advance(1)
          expect(payloadOf(yield* claimSome(lane, { ttl: 60_000 })).executionId).toBe(down.executionId)
          return [up.executionId, down.executionId] as const
        }), "expireAttempts", "expired"))

    t.test("a suspension timeout pass skips a suspended dependent timed out after its upstream instead of failing it", () =>
      dueTogether((lane, flowId, t0) =>
        Effect.gen(function*() {
          yield* ensureHmac
          const up = yield* addMember(flowId, { laneId: lane })
          yield* advance(1)
          const down = yield* addMember(flowId, { laneId: lane })
          const hu = yield* claimSome(lane)
          const hd = yield* claimSome(lane)
          expect(payloadOf(hu).executionId).toBe(up.executionId)
          yield* suspendSingle(hu, { signalName: "go", timeoutAt: t0 + 1_000, timeoutBehavior: "fail" })
          yield* suspendSingle(hd, { signalName: "go", timeoutAt: t0 + 2_000, timeoutBehavior: "fail" })
          return [up.executionId, down.executionId] as const
        }), "expireSuspensions", "failed"))
  })

  describe("sealed flows", () => {
    t.test("sealFlow closes a flow to new members and edges; its state then ends with its members", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(2)
        expect(yield* b.sealFlow({ flowId })).toEqual({ _tag: "Sealed", flowId, publicFlowState: "running" })
        expect(yield* b.sealFlow({ flowId })).toEqual({ _tag: "AlreadySealed", flowId, publicFlowState: "running" })
        expect((yield* flowSnapshot(flowId)).sealed).toBe(true)
        const revision = (yield* flowSnapshot(flowId)).graphRevision
        const c = yield* create({ flowId })
        yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowSealed")
        yield* failsWith(
          b.stageDependencyEdge({
            flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[1]!,
            expectedGraphRevision: revision
          }),
          "State",
          "FlowSealed"
        )
        yield* failsWith(b.extendFlow({ flowId, members: [] , edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! }] }), "State", "FlowSealed")
        expect((yield* flowSnapshot(flowId)).graphRevision).toBe(revision)
        expect((yield* snapshot(c.executionId)).flowId).toBeUndefined()
        yield* completeMember(members[0]!)
        yield* completeMember(members[1]!)
        expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("completed")
        // finished and sealed: nothing left to cancel
        yield* failsWith(b.cancelFlow({ flowId, policy: "CancelAll" }), "State", "FlowAlreadyTerminal")
      }))

    t.test("a sealed flow that still runs can be cancelled; sealFlow on a cancelled flow is FlowAlreadyTerminal", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(1)
        yield* b.sealFlow({ flowId })
        yield* b.cancelFlow({ flowId, policy: "CancelAll" })
        expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("cancelled")
        expect(yield* publicState(ids[0]!)).toBe("cancelled")
        yield* failsWith(b.sealFlow({ flowId }), "State", "FlowAlreadyTerminal")
        const other = yield* createFlow()
        yield* b.cancelFlow({ flowId: other, policy: "FlowOnly" })
        yield* failsWith(b.sealFlow({ flowId: other }), "State", "FlowAlreadyTerminal")
        const missing = yield* failsWith(b.sealFlow({ flowId: yield* Ids.newFlowId }), "NotFound")
        expect(missing.entity).toBe("flow")
        yield* validationFails(b.sealFlow({ flowId: "nope" as FlowId }), "InvalidInput")
      }))

    t.test("a flow created sealed: createFlow and createFlowGraph", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const empty = yield* Ids.newFlowId
        yield* b.createFlow({ flowId: empty, namespace: NS, sealed: true })
        // nothing can ever run in it
        expect(yield* flowSnapshot(empty)).toMatchObject({ sealed: true, publicFlowState: "completed" })
        const flowId = yield* Ids.newFlowId
        const lane = yield* newLane("sealed")
        const ids = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId)]
        yield* b.createFlowGraph({
          flow: { flowId, namespace: NS, sealed: true },
          members: ids.map((executionId) => ({ executionId, namespace: NS, laneId: lane, executionKind: "step", inputPayload: bytes("x") })),
          edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! }]
        })
        expect(yield* flowSnapshot(flowId)).toMatchObject({ sealed: true, publicFlowState: "running" })
        const c = yield* create({ flowId })
        yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowSealed")
        yield* b.complete(yield* claimSome(lane))
        yield* b.complete(yield* claimSome(lane))
        expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("completed")
      }))
  })

  describe("extendFlow", () => {
    const newMember = (flowId: FlowId, lane: M.ClaimArgs["lane"], input = "x") =>
      Effect.map(Ids.executionIdForFlow(flowId), (executionId) => ({
        executionId,
        namespace: NS,
        laneId: lane,
        executionKind: "step",
        inputPayload: bytes(input)
      }))
    const edge = (up: ExecutionId, down: ExecutionId, extra: { readonly dataPassingRef?: string } = {}) =>
      Effect.map(Ids.newEdgeId, (edgeId) => ({ edgeId, upstreamExecutionId: up, downstreamExecutionId: down, ...extra }))

    t.test("adds members, joins and edges to a running flow in one call: a fan-out joined by an existing member", () =>
      Effect.gen(function*() {
        const b = yield* backend
        // discover -> final; discover fans out into three workers, each joined into final
        const { flowId, members, ids } = yield* buildFlow(2, [[0, 1]])
        const [discover, final] = ids as [ExecutionId, ExecutionId]
        const running = yield* claimSome(members[0]!.lane)
        const lane = yield* newLane("fan")
        const workers = [yield* newMember(flowId, lane, "w0"), yield* newMember(flowId, lane, "w1"), yield* newMember(flowId, lane, "w2")]
        const before = yield* flowSnapshot(flowId)
        const edges = [
          ...(yield* Effect.forEach(workers, (w) => edge(discover, w.executionId))),
          ...(yield* Effect.forEach(workers, (w) => edge(w.executionId, final)))
        ]
        const r = yield* b.extendFlow({ flowId, members: workers, edges })
        const after = yield* flowSnapshot(flowId)
        expect(r).toEqual({ _tag: "Extended", flowId, graphRevision: after.graphRevision, nodeCount: 5 })
        expect(after).toMatchObject({ nodeCount: 5, edgeCount: 7, graphRevision: before.graphRevision + 3 + 6 })
        for (const w of workers) expect(yield* publicState(w.executionId)).toBe("waiting_children")
        expect(yield* edgeGroup(flowId, final)).toMatchObject({ totalDeps: 4, runningCount: 4, groupState: "pending" })
        yield* claimNone(lane)
        yield* b.complete(running)
        for (const w of workers) expect(yield* publicState(w.executionId)).toBe("waiting")
        for (let i = 0; i < 3; i++) {
          expect(yield* publicState(final)).toBe("waiting_children")
          yield* b.complete(yield* claimSome(lane))
        }
        expect(yield* publicState(final)).toBe("waiting")
        yield* completeMember(members[1]!)
        expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("completed")
      }))

    t.test("new members with joins; edges from finished upstreams resolve in the same call", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(2)
        yield* b.complete(yield* claimSome(members[0]!.lane), { payload: bytes("done") })
        yield* failMember(members[1]!)
        expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("failed")
        const lane = yield* newLane("ext")
        const anyOf = yield* newMember(flowId, lane, "any")
        const allOf = yield* newMember(flowId, lane, "all")
        const passed = yield* newMember(flowId, lane, "passed")
        const r = yield* b.extendFlow({
          flowId,
          members: [anyOf, allOf, passed],
          joins: [{ downstreamExecutionId: anyOf.executionId, policy: { _tag: "any_of", onSatisfied: "let_run" } }],
          edges: [
            yield* edge(ids[1]!, anyOf.executionId),
            yield* edge(ids[0]!, anyOf.executionId),
            yield* edge(ids[0]!, allOf.executionId),
            yield* edge(ids[1]!, allOf.executionId),
            yield* edge(ids[0]!, passed.executionId, { dataPassingRef: "up" })
          ]
        })
        expect(r._tag).toBe("Extended")
        yield* expectStates([[anyOf.executionId, "waiting"], [allOf.executionId, "skipped"], [passed.executionId, "waiting"]])
        expect(yield* edgeGroup(flowId, anyOf.executionId)).toMatchObject({
          policy: { _tag: "any_of", onSatisfied: "let_run" },
          totalDeps: 2,
          satisfiedCount: 1,
          failedCount: 1,
          groupState: "satisfied"
        })
        const input = Option.getOrThrow(yield* b.getExecutionInput(passed.executionId))
        expect(text(input.payload)).toBe("done")
        expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("running")
      }))

    t.test("a replay of the same call is AlreadySatisfied and writes nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(1)
        const lane = yield* newLane("ext")
        const m = yield* newMember(flowId, lane)
        const args = { flowId, members: [m], edges: [yield* edge(ids[0]!, m.executionId)] }
        expect((yield* b.extendFlow(args))._tag).toBe("Extended")
        const before = yield* flowSnapshot(flowId)
        expect(yield* b.extendFlow(args)).toEqual({ _tag: "AlreadySatisfied", flowId })
        expect(yield* flowSnapshot(flowId)).toEqual(before)
      }))

    t.test("an edge id already applied to its downstream (never staged) is Validation(InvalidDependency), nothing written", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids, members: built } = yield* buildFlow(2)
        const edgeId = yield* Ids.newEdgeId
        // applied without being staged (docs/design/flows.md#applying-an-edge)
        yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! })
        const lane = yield* newLane("ext")
        const m = yield* newMember(flowId, lane)
        const [flowBefore, childBefore] = [yield* flowSnapshot(flowId), yield* snapshot(ids[1]!)]
        const staged = { edgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! }
        for (const members of [[], [m]]) {
          yield* validationFails(b.extendFlow({ flowId, members, edges: [staged] }), "InvalidDependency")
          expect([yield* flowSnapshot(flowId), yield* snapshot(ids[1]!)]).toEqual([flowBefore, childBefore])
          expect(Option.isNone(yield* b.describeExecution(m.executionId))).toBe(true)
        }
        expect(yield* edgeGroup(flowId, ids[1]!)).toMatchObject({ totalDeps: 1, runningCount: 1 })
        // staged on its own, the edge then resolves the dependency applied with its ends
        yield* b.stageDependencyEdge({ flowId, ...staged, expectedGraphRevision: flowBefore.graphRevision })
        yield* completeMember(built[0]!)
        expect(yield* publicState(ids[1]!)).toBe("waiting")
      }))

    t.test("a call that cannot be applied whole fails and writes nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2, [[0, 1]])
        const lane = yield* newLane("ext")
        const m = yield* newMember(flowId, lane)
        const before = yield* flowSnapshot(flowId)
        const unchanged = Effect.gen(function*() {
          expect(yield* flowSnapshot(flowId)).toEqual(before)
          expect(Option.isNone(yield* b.describeExecution(m.executionId))).toBe(true)
        })
        // a cycle through existing edges
        yield* failsWith(
          b.extendFlow({ flowId, members: [m], edges: [yield* edge(ids[1]!, m.executionId), yield* edge(m.executionId, ids[0]!)] }),
          "Conflict",
          "CycleDetected"
        )
        yield* unchanged
        // an edge to an execution that is not a member
        const outsider = yield* create({ flowId })
        yield* failsWith(
          b.extendFlow({ flowId, members: [m], edges: [yield* edge(m.executionId, outsider.executionId)] }),
          "State",
          "ExecutionNotInFlow"
        )
        yield* unchanged
        // a member that exists already
        yield* validationFails(b.extendFlow({ flowId, members: [m, { ...m, executionId: outsider.executionId }] }), "InvalidInput", "already exists")
        yield* unchanged
        // an edge id the flow has
        const existing = (yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: ids[0]! } }))[0]!
        yield* failsWith(
          b.extendFlow({ flowId, members: [m], edges: [{ ...(yield* edge(ids[0]!, m.executionId)), edgeId: existing.edgeId }] }),
          "Conflict",
          "DependencyAlreadyExists"
        )
        yield* unchanged
        // a member minted on another partition, a join on an existing member
        const elsewhere = yield* executionIdOnPartition((Ids.flowPartition(flowId) + 1) % t.options.numFlowPartitions)
        yield* validationFails(b.extendFlow({ flowId, members: [{ ...m, executionId: elsewhere }] }), "InvalidInput", "partition")
        yield* validationFails(
          b.extendFlow({ flowId, members: [m], joins: [{ downstreamExecutionId: ids[1]!, policy: { _tag: "all_of" } }] }),
          "InvalidInput"
        )
        yield* validationFails(b.extendFlow({ flowId, members: [], edges: [] }), "InvalidInput")
        yield* unchanged
        const ghost = yield* Ids.newFlowId
        const missing = yield* failsWith(b.extendFlow({ flowId: ghost, members: [yield* newMember(ghost, lane)] }), "NotFound")
        expect(missing.entity).toBe("flow")
        yield* b.cancelFlow({ flowId, policy: "FlowOnly" })
        yield* failsWith(b.extendFlow({ flowId, members: [m] }), "State", "FlowAlreadyTerminal")
        expect(Option.isNone(yield* b.describeExecution(m.executionId))).toBe(true)
      }))
  })

  describe("replay of flow members", () => {

    t.test("a skipped member replays into waiting_children and runs after its upstream succeeds", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { members, ids } = yield* buildFlow(2, [[0, 1]])
        yield* failMember(members[0]!)
        expect(yield* publicState(ids[1]!)).toBe("skipped")
        expect(yield* b.replayExecution(ids[1]!)).toEqual({ _tag: "Replayed", publicState: "waiting_children" })
        expect(yield* vector(ids[1]!)).toMatchObject({
          lifecyclePhase: "runnable",
          eligibilityState: "blocked_by_dependencies",
          terminalOutcome: "none",
          attemptState: "pending_replay_attempt",
          publicState: "waiting_children"
        })
        expect(yield* b.replayExecution(ids[0]!)).toEqual({ _tag: "Replayed", publicState: "waiting" })
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[1]!)).toBe("waiting")
        const h = yield* claimSome(members[1]!.lane)
        expect(payloadOf(h).attemptIndex).toBe(0)
        yield* b.complete(h, { payload: bytes("ok") })
      }))

    t.test("a skipped quorum member with no impossible dependency replays blocked, its join group pending again", () =>
      Effect.gen(function*() {
        const b = yield* backend
        // quorum 2 with one upstream: its success leaves the group impossible, the dependency satisfied
        const { flowId, members, ids } = yield* buildFlow(2, [[0, 1]], {
          1: { _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" }
        })
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[1]!)).toBe("skipped")
        expect((yield* edgeGroup(flowId, ids[1]!)).groupState).toBe("impossible")
        expect(yield* b.replayExecution(ids[1]!)).toEqual({ _tag: "Replayed", publicState: "waiting_children" })
        expect(yield* vector(ids[1]!)).toMatchObject({
          lifecyclePhase: "runnable",
          eligibilityState: "blocked_by_dependencies",
          blockingReason: "waiting_for_children",
          publicState: "waiting_children"
        })
        expect(yield* edgeGroup(flowId, ids[1]!)).toMatchObject({ groupState: "pending", failedCount: 0, skippedCount: 0 })
        // its quorum is not met: it is not claimable, and the reconcile pass does not release it
        yield* claimNone(members[1]!.lane)
        yield* pass("reconcileDependencies")
        expect(yield* vector(ids[1]!)).toMatchObject({
          eligibilityState: "blocked_by_dependencies",
          publicState: "waiting_children"
        })
        yield* claimNone(members[1]!.lane)
      }))

    t.test("waitChildren of a replayed member whose join fired impossible while it was cancelled blocks it: a dependency resolved impossible is not satisfied", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(2, [[0, 1]])
        yield* b.cancelExecution({ executionId: ids[1]!, reason: "not now" })
        yield* failMember(members[0]!)
        expect(yield* edgeGroup(flowId, ids[1]!)).toMatchObject({ failedCount: 1, groupState: "impossible" })
        expect(yield* publicState(ids[1]!)).toBe("cancelled")
        // replayed from cancelled (not skipped): its group is left as it is, it waits for a worker
        expect(yield* b.replayExecution(ids[1]!)).toEqual({ _tag: "Replayed", publicState: "waiting" })
        const h = yield* claimSome(members[1]!.lane)
        yield* b.waitChildren(h)
        expect(yield* vector(ids[1]!)).toMatchObject({
          lifecyclePhase: "runnable",
          eligibilityState: "blocked_by_dependencies",
          blockingReason: "waiting_for_children",
          attemptState: "attempt_interrupted",
          publicState: "waiting_children"
        })
        yield* claimNone(members[1]!.lane)
      }))

    t.test("a replayed completed member is not skipped when a late upstream of its satisfied all_of join fails or is skipped", () =>
      Effect.gen(function*() {
        const b = yield* backend
        // 2 and 4 complete after 0 satisfied them; late edges 1 -> 2 and 3 -> 4 come in after that (the
        // children finished: their groups stay satisfied); both children are replayed
        const { flowId, members, ids } = yield* buildFlow(6, [[0, 2], [0, 4]])
        const [, failing, direct, skippedLater, viaSkip, root] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId]
        yield* completeMember(members[0]!)
        yield* completeMember(members[2]!)
        yield* completeMember(members[4]!)
        yield* addEdge(flowId, failing, direct)
        yield* addEdge(flowId, skippedLater, viaSkip)
        expect(yield* edgeGroup(flowId, direct)).toMatchObject({ totalDeps: 2, runningCount: 1, groupState: "satisfied" })
        for (const c of [direct, viaSkip]) {
          expect(yield* b.replayExecution(c)).toEqual({ _tag: "Replayed", publicState: "waiting" })
        }
        // the late upstreams end badly: 1 fails; 3 is skipped by an edge from a failed member (an edge
        // between two other members of the flow), which cascades into 4's dependency
        yield* failMember(members[1]!)
        yield* failMember(members[5]!)
        yield* addEdge(flowId, root, skippedLater)
        expect(yield* publicState(skippedLater)).toBe("skipped")
        // the groups fired satisfied once and never fire again: the replayed children wait for a worker
        for (const c of [direct, viaSkip]) {
          expect(yield* vector(c)).toMatchObject({
            lifecyclePhase: "runnable",
            eligibilityState: "eligible_now",
            terminalOutcome: "none",
            attemptState: "pending_replay_attempt",
            publicState: "waiting"
          })
          expect(yield* edgeGroup(flowId, c)).toMatchObject({ totalDeps: 2, satisfiedCount: 1, failedCount: 1, groupState: "satisfied" })
        }
        yield* completeMember(members[2]!)
        yield* completeMember(members[4]!)
        yield* expectStates([[direct, "completed"], [viaSkip, "completed"]])
      }))

    t.test("a replayed member whose satisfied all_of join counts a failure is blocked by a new edge, then skipped when it resolves", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(4, [[0, 2]])
        const [, failing, child, next] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId]
        yield* completeMember(members[0]!)
        yield* completeMember(members[2]!)
        yield* addEdge(flowId, failing, child)
        expect(yield* b.replayExecution(child)).toEqual({ _tag: "Replayed", publicState: "waiting" })
        yield* failMember(members[1]!)
        expect(yield* publicState(child)).toBe("waiting")
        // a new edge makes the satisfied all_of group pending again: the child is blocked
        yield* addEdge(flowId, next, child)
        expect(yield* vector(child)).toMatchObject({
          eligibilityState: "blocked_by_dependencies",
          blockingReason: "waiting_for_children",
          publicState: "waiting_children"
        })
        expect(yield* edgeGroup(flowId, child)).toMatchObject({
          totalDeps: 3,
          satisfiedCount: 1,
          failedCount: 1,
          runningCount: 1,
          groupState: "pending"
        })
        yield* claimNone(members[2]!.lane)
        // the pending all_of group counts a failed edge: the next resolution, a success, fires it impossible
        yield* completeMember(members[3]!)
        expect(yield* vector(child)).toMatchObject({ lifecyclePhase: "terminal", terminalOutcome: "skipped" })
        expect(yield* edgeGroup(flowId, child)).toMatchObject({ satisfiedCount: 2, failedCount: 1, groupState: "impossible" })
      }))
  })
}
