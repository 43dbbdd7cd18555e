/**
 * The records every area shares: the argument type of operations with defaults, the state
 * vector of an execution and the attempt handle. Re-exported by `Model`.
 */
import { Schema } from "effect"
import { AttemptId, AttemptIndex, ExecutionId, LaneId, LeaseEpoch, LeaseId, WorkerInstanceId } from "../../Ids.js"
import { NonNegativeInt } from "./fields.js"

/**
 * The argument type of an operation whose schema has constructor defaults:
 * fields with a default may be omitted.
 *
 * @since 0.1.0
 */
export type Input<F extends Schema.Struct.Fields> = Schema.Struct.Constructor<F>

// ---------------------------------------------------------------------------
// State vector (docs/design/executions.md#states)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const LifecyclePhase = Schema.Literal("submitted", "runnable", "active", "suspended", "terminal")
/** @since 0.1.0 */
export type LifecyclePhase = typeof LifecyclePhase.Type

/** @since 0.1.0 */
export const OwnershipState = Schema.Literal("unowned", "leased", "lease_expired_reclaimable", "lease_revoked")
/** @since 0.1.0 */
export type OwnershipState = typeof OwnershipState.Type

/** @since 0.1.0 */
export const EligibilityState = Schema.Literal(
  "eligible_now",
  "not_eligible_until_time",
  "blocked_by_dependencies",
  "blocked_by_budget",
  "blocked_by_quota",
  "blocked_by_route",
  "blocked_by_lane_state",
  "blocked_by_operator",
  "not_applicable"
)
/** @since 0.1.0 */
export type EligibilityState = typeof EligibilityState.Type

/** @since 0.1.0 */
export const BlockingReason = Schema.Literal(
  "none",
  "waiting_for_worker",
  "waiting_for_retry_backoff",
  "waiting_for_resume_delay",
  "waiting_for_delay",
  "waiting_for_signal",
  "waiting_for_approval",
  "waiting_for_callback",
  "waiting_for_tool_result",
  "waiting_for_children",
  "waiting_for_budget",
  "waiting_for_quota",
  "waiting_for_capable_worker",
  "waiting_for_locality_match",
  "paused_by_operator",
  "paused_by_policy",
  "paused_by_flow_cancel"
)
/** @since 0.1.0 */
export type BlockingReason = typeof BlockingReason.Type

/** @since 0.1.0 */
export const TerminalOutcome = Schema.Literal("none", "success", "failed", "cancelled", "expired", "skipped")
/** @since 0.1.0 */
export type TerminalOutcome = typeof TerminalOutcome.Type

/** @since 0.1.0 */
export const AttemptState = Schema.Literal(
  "none",
  "pending_first_attempt",
  "running_attempt",
  "attempt_interrupted",
  "pending_retry_attempt",
  "pending_replay_attempt",
  "attempt_terminal"
)
/** @since 0.1.0 */
export type AttemptState = typeof AttemptState.Type

/** @since 0.1.0 */
export const PublicState = Schema.Literal(
  "waiting",
  "delayed",
  "rate_limited",
  "waiting_children",
  "active",
  "suspended",
  "resumable",
  "completed",
  "failed",
  "cancelled",
  "expired",
  "skipped"
)
/** @since 0.1.0 */
export type PublicState = typeof PublicState.Type

/** @since 0.1.0 */
export const StateVector = Schema.Struct({
  lifecyclePhase: LifecyclePhase,
  ownershipState: OwnershipState,
  eligibilityState: EligibilityState,
  blockingReason: BlockingReason,
  terminalOutcome: TerminalOutcome,
  attemptState: AttemptState,
  publicState: PublicState
})
/** @since 0.1.0 */
export type StateVector = typeof StateVector.Type

/**
 * The authoritative derivation of `public_state` (docs/design/executions.md#public-state).
 *
 * @since 0.1.0
 */
export const derivePublicState = (
  phase: LifecyclePhase,
  eligibility: EligibilityState,
  outcome: TerminalOutcome
): PublicState => {
  switch (phase) {
    case "terminal":
      return outcome === "success" ? "completed" : outcome === "none" ? "failed" : outcome
    case "suspended":
      return "suspended"
    case "active":
      return "active"
    case "submitted":
      return "waiting"
    case "runnable":
      switch (eligibility) {
        case "not_eligible_until_time":
          return "delayed"
        case "blocked_by_dependencies":
          return "waiting_children"
        case "blocked_by_budget":
        case "blocked_by_quota":
          return "rate_limited"
        default:
          return "waiting"
      }
  }
}

// ---------------------------------------------------------------------------
// Handles (docs/design/executions.md#leases-and-fencing)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const BackendTag = Schema.Literal("memory", "valkey", "postgres")
/** @since 0.1.0 */
export type BackendTag = typeof BackendTag.Type

/** @since 0.1.0 */
export const HandleKind = Schema.Literal("fresh", "resumed", "suspended")
/** @since 0.1.0 */
export type HandleKind = typeof HandleKind.Type

/**
 * The opaque attempt cookie. Borrowed (never consumed) by every lease-bound
 * operation; decode it with `HandleCodec` only inside a backend.
 *
 * @since 0.1.0
 */
export const Handle = Schema.Struct({
  backend: BackendTag,
  kind: HandleKind,
  opaque: Schema.Uint8ArrayFromSelf
})
/** @since 0.1.0 */
export type Handle = typeof Handle.Type

/** What a handle's opaque bytes carry. @since 0.1.0 */
export const HandlePayload = Schema.Struct({
  executionId: ExecutionId,
  attemptIndex: AttemptIndex,
  attemptId: AttemptId,
  leaseId: LeaseId,
  leaseEpoch: LeaseEpoch,
  leaseTtlMs: NonNegativeInt,
  laneId: LaneId,
  workerInstanceId: WorkerInstanceId
})
/** @since 0.1.0 */
export type HandlePayload = typeof HandlePayload.Type
