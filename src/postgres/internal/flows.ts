/**
 * Flows over Postgres: creation (one flow, a whole graph), extension, sealing, members and edges,
 * join policies, and the flow's cancellation (inline up to a bound, the rest owed to the cancel
 * backlog: docs/design/flows.md#the-cascade).
 */
import type { CoreArea } from "../../internal/boundary.js"
import { flowPartition } from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { bigint, bool, int, jsonb, text, uuid } from "./client.js"
import { type CoreContext, createItem } from "./context.js"

/** A join policy as `ff_set_edge_group_policy` takes it. */
const joinColumns = (policy: M.EdgeDependencyPolicy) => ({
  variant: policy._tag,
  onSatisfied: policy._tag === "all_of" ? null : policy.onSatisfied,
  k: policy._tag === "quorum" ? policy.k : policy._tag === "any_of" ? 1 : 0
})

/** An edge as `ff_create_flow_graph` / `ff_extend_flow` take it. */
const graphEdge = (e: M.FlowGraphEdge) => ({
  edgeId: e.edgeId,
  upstream: e.upstreamExecutionId,
  downstream: e.downstreamExecutionId,
  kind: e.dependencyKind,
  dataRef: e.dataPassingRef ?? ""
})

export const makeFlows = (
  ctx: CoreContext
): CoreArea<"flows"> => {
  const { callDecode, callVoid, cfg, options } = ctx
  return {
    createFlow: (a) =>
      callDecode("create_flow", "create_flow", [
        uuid(a.flowId),
        int(flowPartition(a.flowId, cfg)),
        text(a.flowKind),
        text(a.namespace),
        bool(a.sealed)
      ], M.CreateFlowResult),

    createFlowGraph: (g) =>
      callDecode("create_flow_graph", "create_flow_graph", [
        uuid(g.flow.flowId),
        int(flowPartition(g.flow.flowId, cfg)),
        text(g.flow.flowKind),
        text(g.flow.namespace),
        jsonb(g.members.map((a) => ({ ...createItem(a), payload: Buffer.from(a.inputPayload).toString("base64") }))),
        jsonb(g.edges.map(graphEdge)),
        jsonb(g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinColumns(policy)
        }))),
        bool(g.flow.sealed)
      ], M.CreateFlowGraphResult),

    extendFlow: (g) =>
      callDecode("extend_flow", "extend_flow", [
        uuid(g.flowId),
        jsonb(g.members.map((a) => ({ ...createItem(a), payload: Buffer.from(a.inputPayload).toString("base64") }))),
        jsonb(g.edges.map(graphEdge)),
        jsonb(g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinColumns(policy)
        }))),
        int(Limits.flowMembers),
        int(Limits.flowEdges)
      ], M.ExtendFlowResult),

    sealFlow: (a) => callDecode("seal_flow", "seal_flow", [uuid(a.flowId)], M.SealFlowResult),

    addExecutionToFlow: (a) =>
      callDecode("add_execution_to_flow", "add_execution_to_flow", [
        uuid(a.flowId),
        text(a.executionId),
        int(Limits.flowMembers)
      ], M.AddExecutionToFlowResult),

    stageDependencyEdge: (a) =>
      callDecode("stage_dependency_edge", "stage_dependency_edge", [
        uuid(a.flowId),
        uuid(a.edgeId),
        text(a.upstreamExecutionId),
        text(a.downstreamExecutionId),
        text(a.dependencyKind),
        text(a.dataPassingRef ?? ""),
        bigint(a.expectedGraphRevision),
        bigint(a.now),
        int(Limits.flowEdges)
      ], M.StageDependencyEdgeResult),

    applyDependencyToChild: (a) =>
      callDecode("apply_dependency_to_child", "apply_dependency_to_child", [
        uuid(a.flowId),
        uuid(a.edgeId),
        text(a.downstreamExecutionId),
        text(a.upstreamExecutionId),
        text(a.dependencyKind),
        text(a.dataPassingRef ?? ""),
        int(Limits.flowEdges)
      ], M.ApplyDependencyToChildResult),

    setEdgeGroupPolicy: (a) => {
      const join = joinColumns(a.policy)
      return callDecode("set_edge_group_policy", "set_edge_group_policy", [
        uuid(a.flowId),
        text(a.downstreamExecutionId),
        text(join.variant),
        text(join.onSatisfied),
        int(join.k)
      ], M.SetEdgeGroupPolicyResult)
    },

    cancelFlow: (a) =>
      callDecode("cancel_flow", "cancel_flow", [
        uuid(a.flowId),
        text(M.cancelFlowPolicyWire(a.policy)),
        text(a.reason),
        int(options.cancelFlowInlineLimit)
      ], M.CancelFlowResult),

    cancelFlowHeader: (a) =>
      callDecode("cancel_flow_header", "cancel_flow_header", [
        uuid(a.flowId),
        text(M.cancelFlowPolicyWire(a.cancellationPolicy)),
        text(a.reason)
      ], M.CancelFlowHeader),

    ackCancelMember: (a) => callVoid("ack_cancel_member", "ack_cancel_member", [uuid(a.flowId), text(a.executionId)])
  }
}
