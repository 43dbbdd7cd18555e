/**
 * Flows over Valkey: create (empty, or a whole graph in one FCALL), extend, seal, membership,
 * dependency edges and join policies, and flow cancellation (docs/design/flows.md). A flow and
 * its members share a partition, so each is one FCALL on it.
 */
import { Effect, Option, Schema } from "effect"
import { Conflict, type EngineError } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea } from "../../internal/boundary.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { type CoreContext, S, T_Int, T_Str } from "./context.js"
import { createArgs } from "./lifecycle.js"
import { decodeFields, IntStr, LuaArray } from "./plumbing.js"
import { describeEdgeBy } from "./reads.js"

const MemberIds = LuaArray(Ids.ExecutionId)
const T_Int2 = Schema.Tuple(IntStr, IntStr)
const T_Added = Schema.Tuple(Ids.ExecutionId, IntStr)
const T_Staged = Schema.Tuple(Ids.EdgeId, IntStr)
const T_Cancel = Schema.Tuple(S, Schema.parseJson(MemberIds))
const T_CancelAlready = Schema.Tuple(S, S, Schema.parseJson(MemberIds))

/** An edge as stage_edge / apply_dependency / create_flow_graph take it. */
const edgeArgs = (e: M.FlowGraphEdge) => ({
  edge_id: e.edgeId,
  upstream: e.upstreamExecutionId,
  downstream: e.downstreamExecutionId,
  dependency_kind: e.dependencyKind,
  ...(e.dataPassingRef === undefined ? {} : { data_passing_ref: e.dataPassingRef })
})

/** A join policy as set_edge_group_policy / create_flow_graph take it. */
const joinArgs = (policy: M.EdgeDependencyPolicy) => ({
  variant: policy._tag,
  ...(policy._tag === "all_of" ? {} : { on_satisfied: policy.onSatisfied }),
  ...(policy._tag === "quorum" ? { k: policy.k } : {})
})

export const makeFlows = (
  ctx: CoreContext
): CoreArea<"flows"> => {
  const { call, flowOf, inRange, settings } = ctx

  const createFlow: BackendCore["createFlow"] = (a) =>
    Effect.map(
      call("create_flow", flowOf(a.flowId), {
        flow_id: a.flowId,
        flow_kind: a.flowKind,
        namespace: a.namespace,
        sealed: a.sealed
      }),
      (env): M.CreateFlowResult =>
        env.status === "ALREADY" ? { _tag: "AlreadySatisfied", flowId: a.flowId } : { _tag: "Created", flowId: a.flowId }
    )

  const createFlowGraph: BackendCore["createFlowGraph"] = (g) =>
    Effect.gen(function*() {
      const flowId = g.flow.flowId
      const blobs: Array<Uint8Array | string> = []
      for (const m of g.members) blobs.push(m.inputPayload, m.policyJson)
      const env = yield* call("create_flow_graph", flowOf(flowId), {
        flow: { flow_id: flowId, flow_kind: g.flow.flowKind, namespace: g.flow.namespace, sealed: g.flow.sealed },
        members: g.members.map(createArgs),
        joins: g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinArgs(policy)
        })),
        edges: g.edges.map(edgeArgs)
      }, blobs)
      if (env.status === "ALREADY") return { _tag: "AlreadySatisfied", flowId } satisfies M.CreateFlowGraphResult
      for (const lane of new Set(g.members.map((m) => m.laneId))) yield* ctx.registerLane(lane)
      const [graphRevision] = yield* decodeFields("ff_create_flow_graph", T_Int, env.fields)
      return { _tag: "Created", flowId, graphRevision } satisfies M.CreateFlowGraphResult
    })

  const extendFlow: BackendCore["extendFlow"] = (g) =>
    Effect.gen(function*() {
      const blobs: Array<Uint8Array | string> = []
      for (const m of g.members) blobs.push(m.inputPayload, m.policyJson)
      const env = yield* call("extend_flow", flowOf(g.flowId), {
        flow_id: g.flowId,
        members: g.members.map(createArgs),
        joins: g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinArgs(policy)
        })),
        edges: g.edges.map(edgeArgs),
        members_max: Limits.flowMembers,
        edges_max: Limits.flowEdges
      }, blobs)
      if (env.status === "ALREADY") return { _tag: "AlreadySatisfied", flowId: g.flowId } satisfies M.ExtendFlowResult
      for (const lane of new Set(g.members.map((m) => m.laneId))) yield* ctx.registerLane(lane)
      const [graphRevision, nodeCount] = yield* decodeFields("ff_extend_flow", T_Int2, env.fields)
      return { _tag: "Extended", flowId: g.flowId, graphRevision, nodeCount } satisfies M.ExtendFlowResult
    }).pipe(
      // the typed conflict carries the existing edge, read right after
      Effect.catchIf(
        (e): e is EngineError =>
          (e._tag === "Conflict" && e.kind === "DependencyAlreadyExists" && e.existing === undefined) ||
          (e._tag === "Transport" && e.scriptCode === "dependency_already_exists"),
        (e) =>
          Effect.gen(function*() {
            for (const x of g.edges) {
              const existing = yield* describeEdgeBy(ctx, g.flowId, x.edgeId)
              if (Option.isSome(existing)) {
                return yield* Effect.fail(new Conflict({ kind: "DependencyAlreadyExists", existing: existing.value }))
              }
            }
            return yield* Effect.fail(e)
          })
      )
    )

  const sealFlow: BackendCore["sealFlow"] = (a) =>
    Effect.gen(function*() {
      const env = yield* call("seal_flow", flowOf(a.flowId), { flow_id: a.flowId })
      const [publicFlowState] = yield* decodeFields("ff_seal_flow", T_Str, env.fields)
      return {
        _tag: env.status === "ALREADY" ? "AlreadySealed" : "Sealed",
        flowId: a.flowId,
        publicFlowState
      } satisfies M.SealFlowResult
    })

  const addExecutionToFlow: BackendCore["addExecutionToFlow"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("add_to_flow", flowOf(a.flowId), {
        flow_id: a.flowId,
        execution_id: a.executionId,
        members_max: Limits.flowMembers
      })
      const [, count] = yield* decodeFields("ff_add_to_flow", T_Added, env.fields)
      return env.status === "ALREADY" ?
        { _tag: "AlreadyMember", executionId: a.executionId, nodeCount: count } satisfies M.AddExecutionToFlowResult :
        { _tag: "Added", executionId: a.executionId, newNodeCount: count } satisfies M.AddExecutionToFlowResult
    })

  const stageDependencyEdge: BackendCore["stageDependencyEdge"] = (a) =>
    Effect.gen(function*() {
      const env = yield* call("stage_edge", flowOf(a.flowId), {
        flow_id: a.flowId,
        ...edgeArgs(a),
        expected_graph_revision: a.expectedGraphRevision,
        ...(a.now === undefined ? {} : { created_at: a.now }),
        edges_max: Limits.flowEdges
      })
      const [edgeId, newGraphRevision] = yield* decodeFields(
        "ff_stage_edge",
        T_Staged,
        env.fields
      )
      return { _tag: "Staged", edgeId, newGraphRevision } satisfies M.StageDependencyEdgeResult
    }).pipe(
      // the typed conflict carries the existing edge, read right after
      Effect.catchIf(
        (e): e is EngineError =>
          (e._tag === "Conflict" && e.kind === "DependencyAlreadyExists") ||
          (e._tag === "Transport" && e.scriptCode === "dependency_already_exists"),
        (e) =>
          Effect.flatMap(describeEdgeBy(ctx, a.flowId, a.edgeId), (existing) =>
            Effect.fail(
              Option.isSome(existing) ?
                new Conflict({ kind: "DependencyAlreadyExists", existing: existing.value }) :
                e
            ))
      )
    )

  const applyDependencyToChild: BackendCore["applyDependencyToChild"] = (a) =>
    Effect.gen(function*() {
      // the boundary has checked that both endpoints live on the flow's partition
      const env = yield* call("apply_dependency", flowOf(a.flowId), {
        flow_id: a.flowId,
        ...edgeArgs(a),
        edges_max: Limits.flowEdges
      })
      if (env.status === "ALREADY") return { _tag: "AlreadyApplied" } satisfies M.ApplyDependencyToChildResult
      const [unsatisfiedCount] = yield* decodeFields("ff_apply_dependency", T_Int, env.fields)
      return { _tag: "Applied", unsatisfiedCount } satisfies M.ApplyDependencyToChildResult
    })

  const setEdgeGroupPolicy: BackendCore["setEdgeGroupPolicy"] = (a) =>
    Effect.gen(function*() {
      // the boundary has checked that the downstream lives on the flow's partition
      const env = yield* call("set_edge_group_policy", flowOf(a.flowId), {
        flow_id: a.flowId,
        downstream: a.downstreamExecutionId,
        ...joinArgs(a.policy)
      })
      return env.status === "ALREADY" ?
        { _tag: "AlreadySet" } satisfies M.SetEdgeGroupPolicyResult :
        { _tag: "Set" } satisfies M.SetEdgeGroupPolicyResult
    })

  // --- flow cancellation ----------------------------------------------------------------------------
  const cancelFlow: BackendCore["cancelFlow"] = ({ flowId, policy, reason }) =>
    Effect.gen(function*() {
      const env = yield* call("cancel_flow", flowOf(flowId), {
        flow_id: flowId,
        policy: M.cancelFlowPolicyWire(policy),
        reason,
        mode: "trait",
        inline_limit: settings.cancelInlineLimit,
        grace_ms: 0
      })
      const [cancellationPolicy, members] = yield* decodeFields(
        "ff_cancel_flow",
        T_Cancel,
        env.fields
      )
      return { _tag: "Cancelled", cancellationPolicy, memberExecutionIds: members } satisfies M.CancelFlowResult
    })

  const cancelFlowHeader: BackendCore["cancelFlowHeader"] = (a) =>
    Effect.gen(function*() {
      const env = yield* call("cancel_flow", flowOf(a.flowId), {
        flow_id: a.flowId,
        policy: M.cancelFlowPolicyWire(a.cancellationPolicy),
        reason: a.reason,
        mode: "header",
        grace_ms: 30_000
      })
      if (env.status === "ALREADY") {
        const [stored, storedReason, members] = yield* decodeFields(
          "ff_cancel_flow",
          T_CancelAlready,
          env.fields
        )
        return {
          _tag: "AlreadyTerminal",
          ...(stored === "" ? {} : { storedCancellationPolicy: stored }),
          ...(storedReason === "" ? {} : { storedCancelReason: storedReason }),
          memberExecutionIds: members
        } satisfies M.CancelFlowHeader
      }
      const [cancellationPolicy, members] = yield* decodeFields(
        "ff_cancel_flow",
        T_Cancel,
        env.fields
      )
      return { _tag: "Cancelled", cancellationPolicy, memberExecutionIds: members } satisfies M.CancelFlowHeader
    })

  const ackCancelMember: BackendCore["ackCancelMember"] = (a) =>
    Effect.asVoid(call("ack_cancel_member", flowOf(a.flowId), { flow_id: a.flowId, execution_id: a.executionId }))

  return {
    createFlow,
    createFlowGraph,
    extendFlow,
    sealFlow,
    addExecutionToFlow,
    stageDependencyEdge,
    applyDependencyToChild,
    setEdgeGroupPolicy,
    cancelFlow,
    cancelFlowHeader,
    ackCancelMember
  }
}
