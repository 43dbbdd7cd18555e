/**
 * Flows: creation, members, edges and joins, graphs, extension, sealing and cancellation.
 * Re-exported by `Model`.
 */
import { Schema } from "effect"
import { EdgeId, ExecutionId, FlowId, Namespace, TimestampMs } from "../../Ids.js"
import { NonNegativeInt } from "./fields.js"

// ---------------------------------------------------------------------------
// Flows, edges, edge groups (docs/design/flows.md)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const OnSatisfied = Schema.Literal("cancel_remaining", "let_run")
/** @since 0.1.0 */
export type OnSatisfied = typeof OnSatisfied.Type

/** @since 0.1.0 */
export const EdgeDependencyPolicy = Schema.Union(
  Schema.TaggedStruct("all_of", {}),
  Schema.TaggedStruct("any_of", { onSatisfied: OnSatisfied }),
  Schema.TaggedStruct("quorum", { k: Schema.Int, onSatisfied: OnSatisfied })
)
/** @since 0.1.0 */
export type EdgeDependencyPolicy = typeof EdgeDependencyPolicy.Type

/** @since 0.1.0 */
export const CreateFlowArgs = Schema.Struct({
  flowId: FlowId,
  flowKind: Schema.optionalWith(Schema.String, { default: () => "dag" }),
  namespace: Namespace,
  /** Created sealed: it takes no member and no edge after this call (see `sealFlow`). */
  sealed: Schema.optionalWith(Schema.Boolean, { default: () => false })
})
/** @since 0.1.0 */
export type CreateFlowArgs = typeof CreateFlowArgs.Type

/** @since 0.1.0 */
export const CreateFlowResult = Schema.Union(
  Schema.TaggedStruct("Created", { flowId: FlowId }),
  Schema.TaggedStruct("AlreadySatisfied", { flowId: FlowId })
)
/** @since 0.1.0 */
export type CreateFlowResult = typeof CreateFlowResult.Type

/** @since 0.1.0 */
export const AddExecutionToFlowArgs = Schema.Struct({ flowId: FlowId, executionId: ExecutionId })
/** @since 0.1.0 */
export type AddExecutionToFlowArgs = typeof AddExecutionToFlowArgs.Type

/** @since 0.1.0 */
export const AddExecutionToFlowResult = Schema.Union(
  Schema.TaggedStruct("Added", { executionId: ExecutionId, newNodeCount: NonNegativeInt }),
  Schema.TaggedStruct("AlreadyMember", { executionId: ExecutionId, nodeCount: NonNegativeInt })
)
/** @since 0.1.0 */
export type AddExecutionToFlowResult = typeof AddExecutionToFlowResult.Type

/** @since 0.1.0 */
export const StageDependencyEdgeArgs = Schema.Struct({
  flowId: FlowId,
  edgeId: EdgeId,
  upstreamExecutionId: ExecutionId,
  downstreamExecutionId: ExecutionId,
  dependencyKind: Schema.optionalWith(Schema.String, { default: () => "success_only" }),
  dataPassingRef: Schema.optional(Schema.String),
  expectedGraphRevision: NonNegativeInt,
  now: Schema.optional(TimestampMs)
})
/** @since 0.1.0 */
export type StageDependencyEdgeArgs = typeof StageDependencyEdgeArgs.Type

/** @since 0.1.0 */
export const StageDependencyEdgeResult = Schema.TaggedStruct("Staged", {
  edgeId: EdgeId,
  newGraphRevision: NonNegativeInt
})
/** @since 0.1.0 */
export type StageDependencyEdgeResult = typeof StageDependencyEdgeResult.Type

/** @since 0.1.0 */
export const ApplyDependencyToChildArgs = Schema.Struct({
  flowId: FlowId,
  edgeId: EdgeId,
  downstreamExecutionId: ExecutionId,
  upstreamExecutionId: ExecutionId,
  graphRevision: Schema.optional(NonNegativeInt),
  dependencyKind: Schema.optionalWith(Schema.String, { default: () => "success_only" }),
  dataPassingRef: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ApplyDependencyToChildArgs = typeof ApplyDependencyToChildArgs.Type

/** @since 0.1.0 */
export const ApplyDependencyToChildResult = Schema.Union(
  Schema.TaggedStruct("Applied", { unsatisfiedCount: NonNegativeInt }),
  Schema.TaggedStruct("AlreadyApplied", {})
)
/** @since 0.1.0 */
export type ApplyDependencyToChildResult = typeof ApplyDependencyToChildResult.Type

/** @since 0.1.0 */
export const SetEdgeGroupPolicyArgs = Schema.Struct({
  flowId: FlowId,
  downstreamExecutionId: ExecutionId,
  policy: EdgeDependencyPolicy
})
/** @since 0.1.0 */
export type SetEdgeGroupPolicyArgs = typeof SetEdgeGroupPolicyArgs.Type

/** One edge of `createFlowGraph`: staged and applied as `stageDependencyEdge` + `applyDependencyToChild`. @since 0.1.0 */
export const FlowGraphEdge = Schema.Struct({
  edgeId: EdgeId,
  upstreamExecutionId: ExecutionId,
  downstreamExecutionId: ExecutionId,
  dependencyKind: Schema.optionalWith(Schema.String, { default: () => "success_only" }),
  dataPassingRef: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type FlowGraphEdge = typeof FlowGraphEdge.Type

/** One join of `createFlowGraph`: `setEdgeGroupPolicy` on a member. @since 0.1.0 */
export const FlowGraphJoin = Schema.Struct({ downstreamExecutionId: ExecutionId, policy: EdgeDependencyPolicy })
/** @since 0.1.0 */
export type FlowGraphJoin = typeof FlowGraphJoin.Type

/** @since 0.1.0 */
export const CreateFlowGraphResult = Schema.Union(
  Schema.TaggedStruct("Created", { flowId: FlowId, graphRevision: NonNegativeInt }),
  /** The flow already existed (a replay): nothing was written. */
  Schema.TaggedStruct("AlreadySatisfied", { flowId: FlowId })
)
/** @since 0.1.0 */
export type CreateFlowGraphResult = typeof CreateFlowGraphResult.Type

/** @since 0.1.0 */
export const ExtendFlowResult = Schema.Union(
  Schema.TaggedStruct("Extended", { flowId: FlowId, graphRevision: NonNegativeInt, nodeCount: NonNegativeInt }),
  /** Every member and edge of the call was already in the flow (a replay): nothing was written. */
  Schema.TaggedStruct("AlreadySatisfied", { flowId: FlowId })
)
/** @since 0.1.0 */
export type ExtendFlowResult = typeof ExtendFlowResult.Type

/** @since 0.1.0 */
export const SealFlowArgs = Schema.Struct({ flowId: FlowId })
/** @since 0.1.0 */
export type SealFlowArgs = typeof SealFlowArgs.Type

/** @since 0.1.0 */
export const SealFlowResult = Schema.Union(
  Schema.TaggedStruct("Sealed", { flowId: FlowId, publicFlowState: Schema.String }),
  Schema.TaggedStruct("AlreadySealed", { flowId: FlowId, publicFlowState: Schema.String })
)
/** @since 0.1.0 */
export type SealFlowResult = typeof SealFlowResult.Type

/** @since 0.1.0 */
export const SetEdgeGroupPolicyResult = Schema.Union(
  Schema.TaggedStruct("Set", {}),
  Schema.TaggedStruct("AlreadySet", {})
)
/** @since 0.1.0 */
export type SetEdgeGroupPolicyResult = typeof SetEdgeGroupPolicyResult.Type

// ---------------------------------------------------------------------------
// Flow cancellation (docs/design/flows.md#cancelling-a-flow)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const CancelFlowPolicy = Schema.Literal("FlowOnly", "CancelAll", "CancelPending")
/** @since 0.1.0 */
export type CancelFlowPolicy = typeof CancelFlowPolicy.Type

/** @since 0.1.0 */
export const cancelFlowPolicyWire = (policy: CancelFlowPolicy): string =>
  policy === "FlowOnly" ? "flow_only" : policy === "CancelAll" ? "cancel_all" : "cancel_pending"

/** Reads a stored policy string (`cancel_flow_only` is accepted too: docs/design/decisions.md#flow-only-policy-spelling). @since 0.1.0 */
export const cancelFlowPolicyFromWire = (wire: string): CancelFlowPolicy | undefined =>
  wire === "flow_only" || wire === "cancel_flow_only" ? "FlowOnly" :
  wire === "cancel_all" ? "CancelAll" :
  wire === "cancel_pending" ? "CancelPending" :
  undefined

/** @since 0.1.0 */
export const CancelFlowWait = Schema.Union(
  Schema.TaggedStruct("NoWait", {}),
  Schema.TaggedStruct("WaitTimeout", { timeout: Schema.DurationFromSelf }),
  Schema.TaggedStruct("WaitIndefinite", {})
)
/** @since 0.1.0 */
export type CancelFlowWait = typeof CancelFlowWait.Type

/** @since 0.1.0 */
export const CancelFlowArgs = Schema.Struct({
  flowId: FlowId,
  policy: CancelFlowPolicy,
  wait: Schema.optionalWith(CancelFlowWait, { default: () => ({ _tag: "NoWait" as const }) }),
  reason: Schema.optionalWith(Schema.String, { default: () => "" })
})
/** @since 0.1.0 */
export type CancelFlowArgs = typeof CancelFlowArgs.Type

/** @since 0.1.0 */
export const CancelFlowResult = Schema.Union(
  Schema.TaggedStruct("Cancelled", {
    cancellationPolicy: Schema.String,
    memberExecutionIds: Schema.Array(ExecutionId)
  }),
  Schema.TaggedStruct("CancellationScheduled", {
    cancellationPolicy: Schema.String,
    memberCount: NonNegativeInt,
    memberExecutionIds: Schema.Array(ExecutionId)
  }),
  Schema.TaggedStruct("PartiallyCancelled", {
    cancellationPolicy: Schema.String,
    memberExecutionIds: Schema.Array(ExecutionId),
    failedMemberExecutionIds: Schema.Array(ExecutionId)
  })
)
/** @since 0.1.0 */
export type CancelFlowResult = typeof CancelFlowResult.Type

/** @since 0.1.0 */
export const CancelFlowHeaderArgs = Schema.Struct({
  flowId: FlowId,
  reason: Schema.String,
  cancellationPolicy: CancelFlowPolicy
})
/** @since 0.1.0 */
export type CancelFlowHeaderArgs = typeof CancelFlowHeaderArgs.Type

/** @since 0.1.0 */
export const CancelFlowHeader = Schema.Union(
  Schema.TaggedStruct("Cancelled", {
    cancellationPolicy: Schema.String,
    memberExecutionIds: Schema.Array(ExecutionId)
  }),
  Schema.TaggedStruct("AlreadyTerminal", {
    storedCancellationPolicy: Schema.optional(Schema.String),
    storedCancelReason: Schema.optional(Schema.String),
    memberExecutionIds: Schema.Array(ExecutionId)
  })
)
/** @since 0.1.0 */
export type CancelFlowHeader = typeof CancelFlowHeader.Type

/** @since 0.1.0 */
export const AckCancelMemberArgs = Schema.Struct({ flowId: FlowId, executionId: ExecutionId })
/** @since 0.1.0 */
export type AckCancelMemberArgs = typeof AckCancelMemberArgs.Type
