/**
 * Flows (docs/design/flows.md), edges: staging and applying dependency edges with their errors, reading them
 * back, and edge group policies.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import {
  addEdge,
  addMember,
  backend,
  buildFlow,
  claimNone,
  create,
  createFlow,
  edgeGroup,
  executionIdOnPartition,
  failsWith,
  flowIdOnPartition,
  flowSnapshot,
  now,
  publicState,
  snapshot,
  type Tester,
  validationFails,
  vector
} from "./helpers.js"

export const flowsEdges = (t: Tester): void => {
  describe("edges", () => {
    t.test("stageDependencyEdge stages an edge readable by describeEdge and listEdges", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(3)
        const [a, bb, c] = ids as [ExecutionId, ExecutionId, ExecutionId]
        const edgeId = yield* Ids.newEdgeId
        const t0 = yield* now
        const staged = yield* b.stageDependencyEdge({
          flowId,
          edgeId,
          upstreamExecutionId: a,
          downstreamExecutionId: bb,
          expectedGraphRevision: 3,
          dataPassingRef: "result"
        })
        expect(staged).toEqual({ _tag: "Staged", edgeId, newGraphRevision: 4 })
        expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 1, graphRevision: 4, nodeCount: 3 })
        const edge = Option.getOrThrow(yield* b.describeEdge({ flowId, edgeId }))
        expect(edge).toEqual({
          edgeId,
          flowId,
          upstreamExecutionId: a,
          downstreamExecutionId: bb,
          dependencyKind: "success_only",
          satisfactionCondition: "all_required",
          dataPassingRef: "result",
          edgeState: "pending",
          createdAt: t0,
          createdBy: "engine"
        })
        expect(yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: a } })).toEqual([edge])
        expect(yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: bb } })).toEqual([edge])
        expect(yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: a } })).toEqual([])
        expect(yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: c } })).toEqual([])
        // staging alone does not block the child
        expect(yield* publicState(bb)).toBe("waiting")
      }))

    t.test("listEdges returns every edge of a node (unordered)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(4)
        const e1 = yield* addEdge(flowId, ids[0]!, ids[1]!)
        const e2 = yield* addEdge(flowId, ids[0]!, ids[2]!)
        const e3 = yield* addEdge(flowId, ids[3]!, ids[2]!)
        const out = yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: ids[0]! } })
        expect(out.map((e) => e.edgeId).sort()).toEqual([e1, e2].sort())
        const inc = yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: ids[2]! } })
        expect(inc.map((e) => e.edgeId).sort()).toEqual([e2, e3].sort())
        const standalone = yield* create()
        expect(yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: standalone.executionId } }))
          .toEqual([])
      }))

    t.test("describeEdge is None for an unknown edge and for an edge of another flow", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        const edgeId = yield* addEdge(flowId, ids[0]!, ids[1]!)
        expect(Option.isNone(yield* b.describeEdge({ flowId, edgeId: yield* Ids.newEdgeId }))).toBe(true)
        const other = yield* createFlow()
        expect(Option.isNone(yield* b.describeEdge({ flowId: other, edgeId }))).toBe(true)
      }))

    t.test("a self edge is Conflict(SelfReferencingEdge) before anything else", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(1)
        for (const f of [flowId, yield* Ids.newFlowId]) {
          yield* failsWith(
            b.stageDependencyEdge({
              flowId: f,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: ids[0]!,
              downstreamExecutionId: ids[0]!,
              expectedGraphRevision: 1
            }),
            "Conflict",
            "SelfReferencingEdge"
          )
        }
        expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 0, graphRevision: 1 })
      }))

    t.test("stageDependencyEdge errors: NotFound(flow), StaleGraphRevision, ExecutionNotInFlow", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        const outsider = yield* create({ flowId })
        const stage = (f: typeof flowId, up: ExecutionId, down: ExecutionId, rev: number) =>
          Effect.flatMap(Ids.newEdgeId, (edgeId) =>
            b.stageDependencyEdge({
              flowId: f,
              edgeId,
              upstreamExecutionId: up,
              downstreamExecutionId: down,
              expectedGraphRevision: rev
            }))
        const nf = yield* failsWith(stage(yield* Ids.newFlowId, ids[0]!, ids[1]!, 0), "NotFound")
        expect(nf.entity).toBe("flow")
        yield* failsWith(stage(flowId, ids[0]!, ids[1]!, 1), "Contention", "StaleGraphRevision")
        yield* failsWith(stage(flowId, ids[0]!, ids[1]!, 3), "Contention", "StaleGraphRevision")
        yield* failsWith(stage(flowId, ids[0]!, outsider.executionId, 2), "State", "ExecutionNotInFlow")
        yield* failsWith(stage(flowId, outsider.executionId, ids[1]!, 2), "State", "ExecutionNotInFlow")
        expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 0, graphRevision: 2 })
      }))

    t.test("a retried stage after commit fails with StaleGraphRevision (not idempotent)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        const args = {
          flowId,
          edgeId: yield* Ids.newEdgeId,
          upstreamExecutionId: ids[0]!,
          downstreamExecutionId: ids[1]!,
          expectedGraphRevision: 2
        }
        yield* b.stageDependencyEdge(args)
        yield* failsWith(b.stageDependencyEdge(args), "Contention", "StaleGraphRevision")
        expect((yield* flowSnapshot(flowId)).edgeCount).toBe(1)
      }))

    t.test("an edge closing a cycle is Conflict(CycleDetected)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(3, [[0, 1], [1, 2]])
        for (const [up, down] of [[2, 0], [1, 0], [2, 1]] as const) {
          const rev = (yield* flowSnapshot(flowId)).graphRevision
          yield* failsWith(
            b.stageDependencyEdge({
              flowId,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: ids[up]!,
              downstreamExecutionId: ids[down]!,
              expectedGraphRevision: rev
            }),
            "Conflict",
            "CycleDetected"
          )
        }
        expect((yield* flowSnapshot(flowId)).edgeCount).toBe(2)
        // a parallel edge that closes no cycle is fine
        yield* addEdge(flowId, ids[0]!, ids[2]!)
      }))

    t.test("re-staging an edge id: Conflict(DependencyAlreadyExists) with the existing edge", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        const edgeId = yield* addEdge(flowId, ids[0]!, ids[1]!)
        const rev = (yield* flowSnapshot(flowId)).graphRevision
        const e = yield* failsWith(
          b.stageDependencyEdge({
            flowId,
            edgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[1]!,
            expectedGraphRevision: rev
          }),
          "Conflict",
          "DependencyAlreadyExists"
        )
        expect(e.existing).toMatchObject({
          edgeId,
          flowId,
          upstreamExecutionId: ids[0],
          downstreamExecutionId: ids[1]
        })
        expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 1, graphRevision: rev })
      }))

    t.test("stageDependencyEdge on a cancelled flow: State(FlowAlreadyTerminal)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        yield* b.cancelFlow({ flowId, policy: "FlowOnly" })
        const rev = (yield* flowSnapshot(flowId)).graphRevision
        yield* failsWith(
          b.stageDependencyEdge({
            flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[1]!,
            expectedGraphRevision: rev
          }),
          "State",
          "FlowAlreadyTerminal"
        )
      }))

    t.test("applyDependencyToChild blocks a waiting child, counts edges, and is idempotent per edge", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(3)
        const stageOnly = (up: ExecutionId, down: ExecutionId) =>
          Effect.gen(function*() {
            const edgeId = yield* Ids.newEdgeId
            yield* b.stageDependencyEdge({
              flowId,
              edgeId,
              upstreamExecutionId: up,
              downstreamExecutionId: down,
              expectedGraphRevision: (yield* flowSnapshot(flowId)).graphRevision
            })
            return edgeId
          })
        const e1 = yield* stageOnly(ids[0]!, ids[2]!)
        const e2 = yield* stageOnly(ids[1]!, ids[2]!)
        const apply = (edgeId: typeof e1, up: ExecutionId) =>
          b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: up, downstreamExecutionId: ids[2]! })
        expect(yield* apply(e1, ids[0]!)).toEqual({ _tag: "Applied", unsatisfiedCount: 1 })
        expect((yield* snapshot(ids[2]!)).blockingDetail).toBe(`1 dep(s) unresolved incl ${e1}`)
        expect(yield* vector(ids[2]!)).toMatchObject({
          lifecyclePhase: "runnable",
          eligibilityState: "blocked_by_dependencies",
          blockingReason: "waiting_for_children",
          attemptState: "pending_first_attempt",
          publicState: "waiting_children"
        })
        // blocked again after it was waiting: listed once, in its new state, by the lane and partition listings
        const laneId = (yield* snapshot(ids[2]!)).laneId
        const listed = (yield* b.listLaneExecutions({ laneId, limit: 100 })).executions.filter((x) => x.executionId === ids[2])
        expect(listed.map((x) => x.publicState)).toEqual(["waiting_children"])
        expect((yield* b.listLaneExecutions({ laneId, limit: 100, states: ["waiting"] })).executions.map((x) => x.executionId))
          .not.toContain(ids[2])
        const partition = Ids.partitionKey("Flow", Ids.executionPartition(ids[2]!))
        const inPartition: Array<ExecutionId> = []
        let cursor: ExecutionId | undefined
        do {
          const page = yield* b.listExecutions({ partition, limit: 1_000, ...(cursor ? { cursor } : {}) })
          inPartition.push(...page.executions)
          cursor = page.nextCursor
        } while (cursor !== undefined)
        expect(inPartition.filter((x) => x === ids[2])).toHaveLength(1)
        expect(yield* apply(e1, ids[0]!)).toEqual({ _tag: "AlreadyApplied" })
        expect(yield* apply(e2, ids[1]!)).toEqual({ _tag: "Applied", unsatisfiedCount: 2 })
        expect(yield* edgeGroup(flowId, ids[2]!)).toEqual({
          downstreamExecutionId: ids[2],
          policy: { _tag: "all_of" },
          totalDeps: 2,
          satisfiedCount: 0,
          failedCount: 0,
          skippedCount: 0,
          runningCount: 2,
          groupState: "pending"
        })
        const lane = (yield* snapshot(ids[2]!)).laneId
        yield* claimNone(lane)
      }))

    t.test("applyDependencyToChild: NotFound(execution) and ExecutionAlreadyInFlow", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        const ghost = yield* Ids.executionIdForFlow(flowId)
        const e = yield* failsWith(
          b.applyDependencyToChild({
            flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ghost
          }),
          "NotFound"
        )
        expect(e.entity).toBe("execution")
        const other = yield* createFlow(yield* flowIdOnPartition(Ids.flowPartition(flowId), t.options.numFlowPartitions))
        yield* failsWith(
          b.applyDependencyToChild({
            flowId: other,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[1]!
          }),
          "Conflict",
          "ExecutionAlreadyInFlow"
        )
        expect(yield* publicState(ids[1]!)).toBe("waiting")
      }))
    t.test("dependencies and join groups are a member's: a downstream of no flow is State(ExecutionNotInFlow), nothing written", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(1)
        const other = yield* createFlow(yield* flowIdOnPartition(Ids.flowPartition(flowId), t.options.numFlowPartitions))
        const theirs = (yield* addMember(other)).executionId
        const outsider = (yield* create({ flowId })).executionId
        const policy = { _tag: "any_of", onSatisfied: "let_run" } as const
        const apply = (down: ExecutionId) =>
          Effect.gen(function*() {
            const edgeId = yield* Ids.newEdgeId
            return yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: down })
          })
        const [flowBefore, otherBefore, outsiderBefore, theirsBefore] = [
          yield* flowSnapshot(flowId),
          yield* flowSnapshot(other),
          yield* snapshot(outsider),
          yield* snapshot(theirs)
        ]
        // docs/design/flows.md#applying-an-edge: a dependency outside the downstream's flow would never resolve
        yield* failsWith(apply(outsider), "State", "ExecutionNotInFlow")
        yield* failsWith(b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: outsider, policy }), "State", "ExecutionNotInFlow")
        yield* failsWith(b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: theirs, policy }), "Conflict", "ExecutionAlreadyInFlow")
        const ghost = yield* failsWith(
          b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: yield* Ids.executionIdForFlow(flowId), policy }),
          "NotFound"
        )
        expect(ghost.entity).toBe("execution")
        expect(yield* flowSnapshot(flowId)).toEqual(flowBefore)
        expect(yield* flowSnapshot(other)).toEqual(otherBefore)
        expect(yield* snapshot(outsider)).toEqual(outsiderBefore)
        expect(yield* snapshot(theirs)).toEqual(theirsBefore)
        // nothing was kept for later: a member now, its policy is Set (not AlreadySet), its first edge the first counted
        expect((yield* b.addExecutionToFlow({ flowId, executionId: outsider }))._tag).toBe("Added")
        expect(yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: outsider, policy })).toEqual({ _tag: "Set" })
        expect(yield* apply(outsider)).toEqual({ _tag: "Applied", unsatisfiedCount: 1 })
        expect(yield* edgeGroup(flowId, outsider)).toMatchObject({ policy, totalDeps: 1, groupState: "pending" })
        expect(yield* publicState(outsider)).toBe("waiting_children")
        // the other flow's member takes its own flow's policy
        expect(yield* b.setEdgeGroupPolicy({ flowId: other, downstreamExecutionId: theirs, policy })).toEqual({ _tag: "Set" })
      }))

    t.test("applyDependencyToChild off the flow's partition is Validation(InvalidInput) and writes nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2)
        const fp = Ids.flowPartition(flowId, { ...Ids.defaultPartitionConfig, numFlowPartitions: t.options.numFlowPartitions })
        const elsewhere = (yield* create({ executionId: yield* executionIdOnPartition((fp + 1) % t.options.numFlowPartitions) }))
          .executionId
        const before = yield* flowSnapshot(flowId)
        // slot locality (docs/design/ids.md#co-location): checked first, before NotFound / ExecutionAlreadyInFlow
        for (const [up, down] of [[ids[0]!, elsewhere], [elsewhere, ids[1]!]] as const) {
          yield* validationFails(
            b.applyDependencyToChild({ flowId, edgeId: yield* Ids.newEdgeId, upstreamExecutionId: up, downstreamExecutionId: down }),
            "InvalidInput",
            "must live on the flow's partition"
          )
        }
        expect(yield* publicState(elsewhere)).toBe("waiting")
        expect(yield* publicState(ids[1]!)).toBe("waiting")
        expect((yield* snapshot(elsewhere)).flowId).toBeUndefined()
        expect(yield* flowSnapshot(flowId)).toEqual(before)
      }))
  })

  describe("edge group policy", () => {
    t.test("setEdgeGroupPolicy: Set, then AlreadySet for the same variant", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(3)
        const d = ids[2]!
        const policy = { _tag: "quorum", k: 2, onSatisfied: "let_run" } as const
        expect(yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: d, policy })).toEqual({ _tag: "Set" })
        expect(
          yield* b.setEdgeGroupPolicy({
            flowId,
            downstreamExecutionId: d,
            policy: { _tag: "quorum", k: 1, onSatisfied: "cancel_remaining" }
          })
        ).toEqual({ _tag: "AlreadySet" })
        yield* addEdge(flowId, ids[0]!, d)
        expect((yield* edgeGroup(flowId, d)).policy).toEqual(policy)
      }))

    t.test("describeFlow lists one group per member with applied dependencies (n > 0), staged or not", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(3)
        const listed = Effect.map(flowSnapshot(flowId), (f) => f.edgeGroups.map((g) => g.downstreamExecutionId))
        const policy = { _tag: "any_of", onSatisfied: "cancel_remaining" } as const
        // a policy alone, then a staged edge not yet applied: no group is listed (n = 0)
        expect(yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: ids[1]!, policy })).toEqual({ _tag: "Set" })
        const staged = yield* Ids.newEdgeId
        yield* b.stageDependencyEdge({
          flowId,
          edgeId: staged,
          upstreamExecutionId: ids[0]!,
          downstreamExecutionId: ids[1]!,
          expectedGraphRevision: (yield* flowSnapshot(flowId)).graphRevision
        })
        expect(yield* listed).toEqual([])
        // applied: listed with its policy and n = 1
        yield* b.applyDependencyToChild({ flowId, edgeId: staged, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! })
        expect(yield* edgeGroup(flowId, ids[1]!)).toMatchObject({ policy, totalDeps: 1, runningCount: 1, groupState: "pending" })
        // a dependency applied for an edge that was never staged (applying does not verify it: docs/design/flows.md#applying-an-edge) counts too
        yield* b.applyDependencyToChild({
          flowId,
          edgeId: yield* Ids.newEdgeId,
          upstreamExecutionId: ids[0]!,
          downstreamExecutionId: ids[2]!
        })
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ policy: { _tag: "all_of" }, totalDeps: 1 })
        expect(yield* listed).toEqual([ids[1]!, ids[2]!].sort())
      }))

    t.test("setEdgeGroupPolicy after an edge was applied: InvalidInput(edge_group_policy_already_fixed)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(2, [[0, 1]])
        yield* validationFails(
          b.setEdgeGroupPolicy({
            flowId,
            downstreamExecutionId: ids[1]!,
            policy: { _tag: "any_of", onSatisfied: "let_run" }
          }),
          "InvalidInput",
          "edge_group_policy_already_fixed"
        )
        expect((yield* edgeGroup(flowId, ids[1]!)).policy).toEqual({ _tag: "all_of" })
      }))

    t.test("setEdgeGroupPolicy on a missing flow: NotFound(flow)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* Ids.newFlowId
        const e = yield* failsWith(
          b.setEdgeGroupPolicy({
            flowId,
            downstreamExecutionId: yield* Ids.executionIdForFlow(flowId),
            policy: { _tag: "all_of" }
          }),
          "NotFound"
        )
        expect(e.entity).toBe("flow")
      }))

    t.test("setEdgeGroupPolicy off the flow's partition: NotFound(flow) first, else InvalidInput, nothing written", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(1)
        const n = t.options.numFlowPartitions
        const fp = Ids.flowPartition(flowId, { ...Ids.defaultPartitionConfig, numFlowPartitions: n })
        const elsewhere = (yield* create({ executionId: yield* executionIdOnPartition((fp + 1) % n) })).executionId
        const policy = { _tag: "any_of", onSatisfied: "let_run" } as const
        yield* validationFails(
          b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: elsewhere, policy }),
          "InvalidInput",
          "must live on the flow's partition"
        )
        const missing = yield* failsWith(
          b.setEdgeGroupPolicy({ flowId: yield* Ids.newFlowId, downstreamExecutionId: elsewhere, policy }),
          "NotFound"
        )
        expect(missing.entity).toBe("flow")
        expect((yield* flowSnapshot(flowId)).edgeGroups).toEqual([])
        expect(yield* publicState(elsewhere)).toBe("waiting")
        expect(yield* publicState(ids[0]!)).toBe("waiting")
      }))
  })
}
