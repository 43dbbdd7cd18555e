/**
 * Operator control: cancel, reprioritise, replay, revoke a lease, prepare a deployment.
 * Re-exported by `Model`.
 */
import { Schema } from "effect"
import { AttemptId, ExecutionId, LaneId, LeaseEpoch, LeaseId, WorkerInstanceId } from "../../Ids.js"
import { PublicState } from "./common.js"

// ---------------------------------------------------------------------------
// Operator control (docs/design/executions.md#lifecycle-operations)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const CancelExecutionArgs = Schema.Struct({
  executionId: ExecutionId,
  reason: Schema.String,
  source: Schema.optionalWith(Schema.String, { default: () => "operator_override" }),
  leaseId: Schema.optional(LeaseId),
  leaseEpoch: Schema.optional(LeaseEpoch),
  attemptId: Schema.optional(AttemptId)
})
/** @since 0.1.0 */
export type CancelExecutionArgs = typeof CancelExecutionArgs.Type

/** @since 0.1.0 */
export const CancelExecutionResult = Schema.TaggedStruct("Cancelled", {
  executionId: ExecutionId,
  publicState: Schema.Literal("cancelled")
})
/** @since 0.1.0 */
export type CancelExecutionResult = typeof CancelExecutionResult.Type

/** @since 0.1.0 */
export const ChangePriorityArgs = Schema.Struct({
  executionId: ExecutionId,
  newPriority: Schema.Int,
  laneId: Schema.optional(LaneId)
})
/** @since 0.1.0 */
export type ChangePriorityArgs = typeof ChangePriorityArgs.Type

/** @since 0.1.0 */
export const ChangePriorityResult = Schema.TaggedStruct("Changed", { executionId: ExecutionId })
/** @since 0.1.0 */
export type ChangePriorityResult = typeof ChangePriorityResult.Type

/** @since 0.1.0 */
export const ReplayExecutionResult = Schema.TaggedStruct("Replayed", { publicState: PublicState })
/** @since 0.1.0 */
export type ReplayExecutionResult = typeof ReplayExecutionResult.Type

/** @since 0.1.0 */
export const RevokeLeaseArgs = Schema.Struct({
  executionId: ExecutionId,
  expectedLeaseId: Schema.optional(LeaseId),
  workerInstanceId: Schema.optional(WorkerInstanceId),
  reason: Schema.String
})
/** @since 0.1.0 */
export type RevokeLeaseArgs = typeof RevokeLeaseArgs.Type

/** @since 0.1.0 */
export const RevokeLeaseResult = Schema.Union(
  Schema.TaggedStruct("Revoked", { leaseId: Schema.String, leaseEpoch: Schema.String }),
  Schema.TaggedStruct("AlreadySatisfied", { reason: Schema.String })
)
/** @since 0.1.0 */
export type RevokeLeaseResult = typeof RevokeLeaseResult.Type

/** @since 0.1.0 */
export const PrepareOutcome = Schema.Union(
  Schema.TaggedStruct("NoOp", {}),
  Schema.TaggedStruct("Applied", { description: Schema.String })
)
/** @since 0.1.0 */
export type PrepareOutcome = typeof PrepareOutcome.Type
