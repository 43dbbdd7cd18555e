/**
 * Claims: capabilities, claim policies, grants and reclaim tokens, the resumed claim.
 * Re-exported by `Model`.
 */
import { Schema } from "effect"
import {
  AttemptId,
  AttemptIndex,
  ExecutionId,
  LaneId,
  LeaseEpoch,
  LeaseId,
  PartitionKey,
  TimestampMs,
  WorkerId,
  WorkerInstanceId
} from "../../Ids.js"
import { Handle } from "./common.js"
import { NonNegativeInt } from "./fields.js"

// ---------------------------------------------------------------------------
// Claims and leases (docs/design/executions.md#leases-and-fencing)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const CapabilitySet = Schema.Struct({ tokens: Schema.Array(Schema.String) })
/** @since 0.1.0 */
export type CapabilitySet = typeof CapabilitySet.Type

/** @since 0.1.0 */
export const ClaimPolicy = Schema.Struct({
  maxWait: Schema.optional(Schema.DurationFromSelf),
  workerId: WorkerId,
  workerInstanceId: WorkerInstanceId,
  leaseTtlMs: Schema.Int.pipe(Schema.between(1, 0xffffffff))
})
/** @since 0.1.0 */
export type ClaimPolicy = typeof ClaimPolicy.Type

/**
 * `kinds`: the execution kinds the claimer runs (absent: any kind); a candidate of another kind is
 * passed over and left for other claimers (docs/design/executions.md#kinds).
 *
 * @since 0.1.0
 */
export const ClaimArgs = Schema.Struct({
  lane: LaneId,
  capabilities: CapabilitySet,
  policy: ClaimPolicy,
  kinds: Schema.optional(Schema.Array(Schema.String))
})
/** @since 0.1.0 */
export type ClaimArgs = typeof ClaimArgs.Type

/** @since 0.1.0 */
export const ClaimGrant = Schema.Struct({
  executionId: ExecutionId,
  partitionKey: PartitionKey,
  grantKey: Schema.String,
  expiresAtMs: TimestampMs
})
/** @since 0.1.0 */
export type ClaimGrant = typeof ClaimGrant.Type

/** @since 0.1.0 */
export const ReclaimGrant = Schema.Struct({ ...ClaimGrant.fields, laneId: LaneId })
/** @since 0.1.0 */
export type ReclaimGrant = typeof ReclaimGrant.Type

/** @since 0.1.0 */
export const ReclaimToken = Schema.Struct({
  grant: ReclaimGrant,
  workerId: WorkerId,
  workerInstanceId: WorkerInstanceId,
  leaseTtlMs: Schema.Int.pipe(Schema.between(1, 0xffffffff))
})
/** @since 0.1.0 */
export type ReclaimToken = typeof ReclaimToken.Type

/** @since 0.1.0 */
export const ClaimForWorkerArgs = Schema.Struct({
  laneId: LaneId,
  workerId: WorkerId,
  workerInstanceId: WorkerInstanceId,
  workerCapabilities: Schema.Array(Schema.String),
  grantTtlMs: Schema.Int.pipe(Schema.between(1, 0xffffffff)),
  /** As `ClaimArgs.kinds`: only an execution of one of these kinds is granted (absent: any kind). */
  kinds: Schema.optional(Schema.Array(Schema.String))
})
/** @since 0.1.0 */
export type ClaimForWorkerArgs = typeof ClaimForWorkerArgs.Type

/** @since 0.1.0 */
export const ClaimForWorkerOutcome = Schema.Union(
  Schema.TaggedStruct("NoWork", {}),
  Schema.TaggedStruct("Granted", { grant: ClaimGrant })
)
/** @since 0.1.0 */
export type ClaimForWorkerOutcome = typeof ClaimForWorkerOutcome.Type

/** @since 0.1.0 */
export const ClaimResumedExecutionArgs = Schema.Struct({
  executionId: ExecutionId,
  workerId: WorkerId,
  workerInstanceId: WorkerInstanceId,
  laneId: LaneId,
  leaseId: LeaseId,
  leaseTtlMs: Schema.Int.pipe(Schema.between(1, 0xffffffff)),
  currentAttemptIndex: AttemptIndex,
  remainingAttemptTimeoutMs: Schema.optional(NonNegativeInt)
})
/** @since 0.1.0 */
export type ClaimResumedExecutionArgs = typeof ClaimResumedExecutionArgs.Type

/** @since 0.1.0 */
export const ClaimedResumedExecution = Schema.Struct({
  executionId: ExecutionId,
  leaseId: LeaseId,
  leaseEpoch: LeaseEpoch,
  attemptIndex: AttemptIndex,
  attemptId: AttemptId,
  leaseExpiresAt: TimestampMs
})

/** @since 0.1.0 */
export const ClaimResumedExecutionResult = Schema.TaggedStruct("Claimed", {
  claimed: ClaimedResumedExecution,
  handle: Handle
})
/** @since 0.1.0 */
export type ClaimResumedExecutionResult = typeof ClaimResumedExecutionResult.Type
