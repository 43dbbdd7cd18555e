/**
 * Schemas of every record, argument and outcome of the engine (model.md,
 * operations.md). Field names are camelCase; stored wire strings (states,
 * reasons, policies) keep their snake_case values.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import {
  AttemptId,
  AttemptIndex,
  BudgetId,
  EdgeId,
  ExecutionId,
  FlowId,
  LaneId,
  LeaseEpoch,
  LeaseId,
  Namespace,
  PartitionKey,
  QuotaPolicyId,
  SignalId,
  SuspensionId,
  TimestampMs,
  WaitpointId,
  WorkerId,
  WorkerInstanceId
} from "./Ids.js"
import { isTraceParent } from "./internal/traceContext.js"

/**
 * The argument type of an operation whose schema has constructor defaults:
 * fields with a default may be omitted.
 *
 * @since 0.1.0
 */
export type Input<F extends Schema.Struct.Fields> = Schema.Struct.Constructor<F>

const Tags = Schema.Record({ key: Schema.String, value: Schema.String })
const NonNegativeInt = Schema.Int.pipe(Schema.nonNegative())
const EMPTY_BYTES = new Uint8Array(0)

// ---------------------------------------------------------------------------
// State vector (model.md §3)
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
 * The authoritative derivation of `public_state` (model.md §3.7).
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
// Execution policy (model.md §14) — snake_case on the wire, camelCase in TS
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const BackoffStrategy = Schema.Union(
  Schema.Struct({
    type: Schema.Literal("fixed"),
    delayMs: Schema.propertySignature(NonNegativeInt).pipe(Schema.fromKey("delay_ms"))
  }),
  Schema.Struct({
    type: Schema.Literal("exponential"),
    initialDelayMs: Schema.propertySignature(NonNegativeInt).pipe(Schema.fromKey("initial_delay_ms")),
    maxDelayMs: Schema.propertySignature(NonNegativeInt).pipe(Schema.fromKey("max_delay_ms")),
    multiplier: Schema.Number.pipe(Schema.positive()),
    jitter: Schema.optional(Schema.Boolean)
  })
)
/** @since 0.1.0 */
export type BackoffStrategy = typeof BackoffStrategy.Type

/** @since 0.1.0 */
export const RetryPolicy = Schema.Struct({
  /** Retries after the first attempt; 3 when absent. */
  maxRetries: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("max_retries")),
  backoff: Schema.optional(BackoffStrategy),
  retryableCategories: Schema.optional(Schema.Array(Schema.String)).pipe(Schema.fromKey("retryable_categories"))
})
/** @since 0.1.0 */
export type RetryPolicy = typeof RetryPolicy.Type

/** @since 0.1.0 */
export const TimeoutPolicy = Schema.Struct({
  attemptTimeoutMs: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("attempt_timeout_ms")),
  executionDeadlineMs: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("execution_deadline_ms")),
  maxReclaimCount: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("max_reclaim_count"))
})

/** @since 0.1.0 */
export const TimeoutBehavior = Schema.Literal(
  "fail",
  "cancel",
  "expire",
  "auto_resume_with_timeout_signal",
  "auto_resume",
  "escalate"
)
/** @since 0.1.0 */
export type TimeoutBehavior = typeof TimeoutBehavior.Type

/** @since 0.1.0 */
export const SuspensionPolicy = Schema.Struct({
  defaultTimeoutMs: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("default_timeout_ms")),
  timeoutBehavior: Schema.optional(TimeoutBehavior).pipe(Schema.fromKey("timeout_behavior"))
})

/** @since 0.1.0 */
export const FallbackPolicy = Schema.Struct({
  tiers: Schema.Array(Schema.Struct({
    provider: Schema.String,
    model: Schema.String,
    timeoutMs: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("timeout_ms"))
  }))
})

/** @since 0.1.0 */
export const RoutingRequirements = Schema.Struct({
  requiredCapabilities: Schema.optional(Schema.Array(Schema.String)).pipe(Schema.fromKey("required_capabilities")),
  preferredLocality: Schema.optional(Schema.String).pipe(Schema.fromKey("preferred_locality")),
  isolationLevel: Schema.optional(Schema.String).pipe(Schema.fromKey("isolation_level"))
})

/** @since 0.1.0 */
export const StreamPolicy = Schema.Struct({
  durabilityMode: Schema.optional(Schema.String).pipe(Schema.fromKey("durability_mode")),
  retentionMaxlen: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("retention_maxlen")),
  retentionTtlMs: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("retention_ttl_ms"))
})

/**
 * Frozen at creation. Optional fields are omitted, never `null`.
 *
 * @since 0.1.0
 */
export const ExecutionPolicy = Schema.Struct({
  priority: Schema.optional(Schema.Int),
  delayUntil: Schema.optional(TimestampMs).pipe(Schema.fromKey("delay_until")),
  retryPolicy: Schema.optional(RetryPolicy).pipe(Schema.fromKey("retry_policy")),
  timeoutPolicy: Schema.optional(TimeoutPolicy).pipe(Schema.fromKey("timeout_policy")),
  maxReclaimCount: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("max_reclaim_count")),
  suspensionPolicy: Schema.optional(SuspensionPolicy).pipe(Schema.fromKey("suspension_policy")),
  fallbackPolicy: Schema.optional(FallbackPolicy).pipe(Schema.fromKey("fallback_policy")),
  maxReplayCount: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("max_replay_count")),
  budgetIds: Schema.optional(Schema.Array(BudgetId)).pipe(Schema.fromKey("budget_ids")),
  routingRequirements: Schema.optional(RoutingRequirements).pipe(Schema.fromKey("routing_requirements")),
  dedupWindowMs: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("dedup_window_ms")),
  streamPolicy: Schema.optional(StreamPolicy).pipe(Schema.fromKey("stream_policy")),
  maxSignalsPerExecution: Schema.optional(NonNegativeInt).pipe(Schema.fromKey("max_signals_per_execution"))
})
/** @since 0.1.0 */
export type ExecutionPolicy = typeof ExecutionPolicy.Type
/** The snake_case JSON form of a policy, as stored by every backend. @since 0.1.0 */
export type ExecutionPolicyJson = typeof ExecutionPolicy.Encoded

// ---------------------------------------------------------------------------
// Handles, claims, leases (model.md §6–§8)
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

/** @since 0.1.0 */
export const ClaimArgs = Schema.Struct({ lane: LaneId, capabilities: CapabilitySet, policy: ClaimPolicy })
/** @since 0.1.0 */
export type ClaimArgs = typeof ClaimArgs.Type

/** @since 0.1.0 */
export const LeaseRenewal = Schema.Struct({ expiresAtMs: TimestampMs, leaseEpoch: LeaseEpoch })
/** @since 0.1.0 */
export type LeaseRenewal = typeof LeaseRenewal.Type

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
  grantTtlMs: Schema.Int.pipe(Schema.between(1, 0xffffffff))
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

// ---------------------------------------------------------------------------
// Lifecycle arguments and outcomes (operations.md §4)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const FailureReason = Schema.Struct({
  message: Schema.String,
  detail: Schema.optional(Schema.Uint8ArrayFromSelf)
})
/** @since 0.1.0 */
export type FailureReason = typeof FailureReason.Type

/** @since 0.1.0 */
export const FailureClass = Schema.Literal("Transient", "Permanent", "InfraCrash", "Timeout", "Cancelled")
/** @since 0.1.0 */
export type FailureClass = typeof FailureClass.Type

/** @since 0.1.0 */
export const FailOutcome = Schema.Union(
  Schema.TaggedStruct("RetryScheduled", { delayUntil: TimestampMs }),
  Schema.TaggedStruct("TerminalFailed", {})
)
/** @since 0.1.0 */
export type FailOutcome = typeof FailOutcome.Type

// ---------------------------------------------------------------------------
// Streams (model.md §12)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const FrameKind = Schema.Literal("stdout", "stderr", "event", "blob")
/** @since 0.1.0 */
export type FrameKind = typeof FrameKind.Type
/** @since 0.1.0 */
export const PatchKind = Schema.Literal("json-merge-patch")
/** @since 0.1.0 */
export type PatchKind = typeof PatchKind.Type

/** @since 0.1.0 */
export const BestEffortLiveConfig = Schema.Struct({
  ttlMs: Schema.Int.pipe(Schema.positive()),
  /** 64 when absent. */
  maxlenFloor: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** 16 384 when absent. */
  maxlenCeiling: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** 0.2 when absent, clamped to (0, 1]. */
  emaAlpha: Schema.optional(Schema.Number)
})
/** @since 0.1.0 */
export type BestEffortLiveConfig = typeof BestEffortLiveConfig.Type

/** @since 0.1.0 */
export const StreamMode = Schema.Union(
  Schema.TaggedStruct("Durable", {}),
  Schema.TaggedStruct("DurableSummary", { patchKind: PatchKind }),
  Schema.TaggedStruct("BestEffortLive", { config: BestEffortLiveConfig })
)
/** @since 0.1.0 */
export type StreamMode = typeof StreamMode.Type

/** @since 0.1.0 */
export const Frame = Schema.Struct({
  bytes: Schema.Uint8ArrayFromSelf,
  kind: FrameKind,
  seq: Schema.optional(Schema.Number),
  frameType: Schema.optionalWith(Schema.String, { default: () => "" }),
  correlationId: Schema.optional(Schema.String),
  mode: Schema.optionalWith(StreamMode, { default: () => ({ _tag: "Durable" as const }) })
})
/** @since 0.1.0 */
export type Frame = typeof Frame.Type
/** @since 0.1.0 */
export type FrameInput = Input<typeof Frame.fields>

/** @since 0.1.0 */
export const AppendFrameOutcome = Schema.Struct({
  streamId: Schema.String,
  frameCount: NonNegativeInt,
  summaryVersion: Schema.optional(NonNegativeInt)
})
/** @since 0.1.0 */
export type AppendFrameOutcome = typeof AppendFrameOutcome.Type

/** @since 0.1.0 */
export const StreamCursor = Schema.Union(
  Schema.TaggedStruct("Start", {}),
  Schema.TaggedStruct("End", {}),
  Schema.TaggedStruct("At", { id: Schema.String })
)
/** @since 0.1.0 */
export type StreamCursor = typeof StreamCursor.Type

/** @since 0.1.0 */
export const STREAM_READ_HARD_CAP = 10_000

/** @since 0.1.0 */
export const StreamFrame = Schema.Struct({
  id: Schema.String,
  fields: Tags
})
/** @since 0.1.0 */
export type StreamFrame = typeof StreamFrame.Type

/** @since 0.1.0 */
export const StreamFrames = Schema.Struct({
  frames: Schema.Array(StreamFrame),
  closedAt: Schema.optional(TimestampMs),
  closedReason: Schema.optional(Schema.String),
  /**
   * Set by `readStream` when the page stopped at the read budget (`Limits.readPageFrames`,
   * `Limits.readPageBytes`) before `countLimit` and before the end of the range: the id of the
   * next frame, to pass as `from: { _tag: "At", id: nextFrom }` to read on.
   */
  nextFrom: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type StreamFrames = typeof StreamFrames.Type

/** @since 0.1.0 */
export const TailVisibility = Schema.Literal("all", "exclude_best_effort")
/** @since 0.1.0 */
export type TailVisibility = typeof TailVisibility.Type

/** @since 0.1.0 */
export const SummaryDocument = Schema.Struct({
  documentJson: Schema.Uint8ArrayFromSelf,
  version: NonNegativeInt,
  patchKind: PatchKind,
  lastUpdatedMs: TimestampMs,
  firstAppliedMs: TimestampMs
})
/** @since 0.1.0 */
export type SummaryDocument = typeof SummaryDocument.Type

/** @since 0.1.0 */
export const ReadStreamArgs = Schema.Struct({
  executionId: ExecutionId,
  attemptIndex: AttemptIndex,
  from: StreamCursor,
  to: StreamCursor,
  countLimit: Schema.Int
})
/** @since 0.1.0 */
export type ReadStreamArgs = typeof ReadStreamArgs.Type

/** @since 0.1.0 */
export const TailStreamArgs = Schema.Struct({
  executionId: ExecutionId,
  attemptIndex: AttemptIndex,
  after: StreamCursor,
  blockMs: NonNegativeInt,
  countLimit: Schema.Int,
  visibility: Schema.optionalWith(TailVisibility, { default: () => "all" as const })
})
/** @since 0.1.0 */
export type TailStreamArgs = typeof TailStreamArgs.Type

/** @since 0.1.0 */
export const StreamRef = Schema.Struct({ executionId: ExecutionId, attemptIndex: AttemptIndex })
/** @since 0.1.0 */
export type StreamRef = typeof StreamRef.Type

// ---------------------------------------------------------------------------
// Suspension, waitpoints, signals (model.md §11)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const SignalMatcher = Schema.Union(
  Schema.TaggedStruct("ByName", { name: Schema.String }),
  Schema.TaggedStruct("Wildcard", {})
)
/** @since 0.1.0 */
export type SignalMatcher = typeof SignalMatcher.Type

/** @since 0.1.0 */
export const CountKind = Schema.Literal("DistinctWaitpoints", "DistinctSignals", "DistinctSources")
/** @since 0.1.0 */
export type CountKind = typeof CountKind.Type

/** @since 0.1.0 */
export type ResumeCondition =
  | { readonly _tag: "Single"; readonly waitpointKey: string; readonly matcher: SignalMatcher }
  | { readonly _tag: "OperatorOnly" }
  | { readonly _tag: "TimeoutOnly" }
  | { readonly _tag: "Composite"; readonly body: CompositeBody }

/** @since 0.1.0 */
export type CompositeBody =
  | { readonly _tag: "AllOf"; readonly members: ReadonlyArray<ResumeCondition> }
  | {
    readonly _tag: "Count"
    readonly n: number
    readonly countKind: CountKind
    readonly matcher?: SignalMatcher | undefined
    readonly waitpoints: ReadonlyArray<string>
  }

/** @since 0.1.0 */
export const ResumeCondition: Schema.Schema<ResumeCondition> = Schema.Union(
  Schema.TaggedStruct("Single", { waitpointKey: Schema.String, matcher: SignalMatcher }),
  Schema.TaggedStruct("OperatorOnly", {}),
  Schema.TaggedStruct("TimeoutOnly", {}),
  Schema.TaggedStruct("Composite", { body: Schema.suspend((): Schema.Schema<CompositeBody> => CompositeBody) })
)

/** @since 0.1.0 */
export const CompositeBody: Schema.Schema<CompositeBody> = Schema.Union(
  Schema.TaggedStruct("AllOf", { members: Schema.Array(Schema.suspend(() => ResumeCondition)) }),
  Schema.TaggedStruct("Count", {
    n: Schema.Int.pipe(Schema.nonNegative()),
    countKind: CountKind,
    matcher: Schema.optional(SignalMatcher),
    waitpoints: Schema.Array(Schema.String)
  })
)

/** @since 0.1.0 */
export const ResumePolicy = Schema.Struct({
  resumeTarget: Schema.optionalWith(Schema.Literal("runnable"), { default: () => "runnable" as const }),
  consumeMatchedSignals: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  retainSignalBufferUntilClosed: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Stored with the suspension; the delay applied on resume is the signal's `resumeDelayMs`. */
  resumeDelayMs: Schema.optional(NonNegativeInt),
  closeWaitpointOnResume: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
/** @since 0.1.0 */
export type ResumePolicy = typeof ResumePolicy.Type

/** @since 0.1.0 */
export const SuspensionReasonCode = Schema.String
/** @since 0.1.0 */
export const SuspensionRequester = Schema.Literal("worker", "operator", "policy", "system_timeout_policy")
/** @since 0.1.0 */
export type SuspensionRequester = typeof SuspensionRequester.Type

/** @since 0.1.0 */
export const WaitpointBinding = Schema.Union(
  Schema.TaggedStruct("Fresh", { waitpointId: WaitpointId, waitpointKey: Schema.String }),
  Schema.TaggedStruct("UsePending", { waitpointId: WaitpointId })
)
/** @since 0.1.0 */
export type WaitpointBinding = typeof WaitpointBinding.Type

/** @since 0.1.0 */
export const SuspendArgs = Schema.Struct({
  suspensionId: SuspensionId,
  waitpoints: Schema.Array(WaitpointBinding),
  resumeCondition: ResumeCondition,
  resumePolicy: Schema.optionalWith(ResumePolicy, {
    default: () => ({
      resumeTarget: "runnable" as const,
      consumeMatchedSignals: true,
      retainSignalBufferUntilClosed: false,
      closeWaitpointOnResume: true
    })
  }),
  reasonCode: Schema.optionalWith(Schema.String, { default: () => "waiting_for_signal" }),
  requestedBy: Schema.optionalWith(SuspensionRequester, { default: () => "worker" as const }),
  timeoutAt: Schema.optional(TimestampMs),
  timeoutBehavior: Schema.optionalWith(TimeoutBehavior, { default: () => "fail" as const }),
  continuationMetadataPointer: Schema.optional(Schema.String),
  /** The caller's clock; only used to check `timeoutAt` (backend clock when absent). */
  now: Schema.optional(TimestampMs),
  idempotencyKey: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type SuspendArgs = typeof SuspendArgs.Type
/** @since 0.1.0 */
export type SuspendArgsInput = Input<typeof SuspendArgs.fields>

/** @since 0.1.0 */
export const WaitpointDetails = Schema.Struct({
  waitpointId: WaitpointId,
  waitpointKey: Schema.String,
  waitpointToken: Schema.String
})
/** @since 0.1.0 */
export type WaitpointDetails = typeof WaitpointDetails.Type

/** @since 0.1.0 */
export const SuspendOutcomeDetails = Schema.Struct({
  suspensionId: SuspensionId,
  ...WaitpointDetails.fields,
  additionalWaitpoints: Schema.Array(WaitpointDetails)
})
/** @since 0.1.0 */
export type SuspendOutcomeDetails = typeof SuspendOutcomeDetails.Type

/** @since 0.1.0 */
export const SuspendOutcome = Schema.Union(
  Schema.TaggedStruct("Suspended", { details: SuspendOutcomeDetails, handle: Handle }),
  Schema.TaggedStruct("AlreadySatisfied", { details: SuspendOutcomeDetails })
)
/** @since 0.1.0 */
export type SuspendOutcome = typeof SuspendOutcome.Type

/** @since 0.1.0 */
export const CreateWaitpointArgs = Schema.Struct({
  waitpointKey: Schema.String,
  expiresIn: Schema.DurationFromSelf
})
/** @since 0.1.0 */
export type CreateWaitpointArgs = typeof CreateWaitpointArgs.Type

/** @since 0.1.0 */
export const PendingWaitpoint = Schema.Struct({ waitpointId: WaitpointId, hmacToken: Schema.String })
/** @since 0.1.0 */
export type PendingWaitpoint = typeof PendingWaitpoint.Type

/** @since 0.1.0 */
export const DeliverSignalArgs = Schema.Struct({
  executionId: ExecutionId,
  waitpointId: WaitpointId,
  signalId: SignalId,
  signalName: Schema.String,
  signalCategory: Schema.optionalWith(Schema.String, { default: () => "" }),
  sourceType: Schema.optionalWith(Schema.String, { default: () => "" }),
  sourceIdentity: Schema.optionalWith(Schema.String, { default: () => "" }),
  payload: Schema.optional(Schema.Uint8ArrayFromSelf),
  payloadEncoding: Schema.optional(Schema.String),
  correlationId: Schema.optional(Schema.String),
  idempotencyKey: Schema.optional(Schema.String),
  targetScope: Schema.optionalWith(Schema.String, { default: () => "waitpoint" }),
  createdAt: Schema.optional(TimestampMs),
  dedupTtlMs: Schema.optional(NonNegativeInt),
  resumeDelayMs: Schema.optional(NonNegativeInt),
  maxSignalsPerExecution: Schema.optional(NonNegativeInt),
  signalMaxlen: Schema.optional(NonNegativeInt),
  waitpointToken: Schema.String
})
/** @since 0.1.0 */
export type DeliverSignalArgs = typeof DeliverSignalArgs.Type
/** @since 0.1.0 */
export type DeliverSignalArgsInput = Input<typeof DeliverSignalArgs.fields>

/** @since 0.1.0 */
export const SignalEffect = Schema.Literal(
  "appended_to_waitpoint",
  "resume_condition_satisfied",
  "no_op",
  "buffered_for_pending_waitpoint",
  "signal_ignored_not_in_condition",
  "signal_ignored_matcher_failed",
  "appended_to_waitpoint_duplicate"
)
/** @since 0.1.0 */
export type SignalEffect = typeof SignalEffect.Type

/** @since 0.1.0 */
export const DeliverSignalResult = Schema.Union(
  Schema.TaggedStruct("Accepted", { signalId: SignalId, effect: SignalEffect }),
  Schema.TaggedStruct("Duplicate", { existingSignalId: SignalId })
)
/** @since 0.1.0 */
export type DeliverSignalResult = typeof DeliverSignalResult.Type

/** @since 0.1.0 */
export const ResumeSignal = Schema.Struct({
  signalId: SignalId,
  signalName: Schema.String,
  signalCategory: Schema.String,
  sourceType: Schema.String,
  sourceIdentity: Schema.String,
  correlationId: Schema.String,
  acceptedAt: TimestampMs,
  payload: Schema.optional(Schema.Uint8ArrayFromSelf)
})
/** @since 0.1.0 */
export type ResumeSignal = typeof ResumeSignal.Type

/** @since 0.1.0 */
export const ListPendingWaitpointsArgs = Schema.Struct({
  executionId: ExecutionId,
  after: Schema.optional(WaitpointId),
  limit: Schema.optional(Schema.Int)
})
/** @since 0.1.0 */
export type ListPendingWaitpointsArgs = typeof ListPendingWaitpointsArgs.Type

/** @since 0.1.0 */
export const PendingWaitpointInfo = Schema.Struct({
  waitpointId: WaitpointId,
  waitpointKey: Schema.String,
  state: Schema.Literal("pending", "active"),
  requiredSignalNames: Schema.Array(Schema.String),
  createdAt: TimestampMs,
  activatedAt: Schema.optional(TimestampMs),
  expiresAt: Schema.optional(TimestampMs),
  executionId: ExecutionId,
  tokenKid: Schema.String,
  tokenFingerprint: Schema.String
})
/** @since 0.1.0 */
export type PendingWaitpointInfo = typeof PendingWaitpointInfo.Type

/** @since 0.1.0 */
export const ListPendingWaitpointsResult = Schema.Struct({
  entries: Schema.Array(PendingWaitpointInfo),
  nextCursor: Schema.optional(WaitpointId)
})
/** @since 0.1.0 */
export type ListPendingWaitpointsResult = typeof ListPendingWaitpointsResult.Type

// ---------------------------------------------------------------------------
// Reads (operations.md §6)
// ---------------------------------------------------------------------------

/**
 * A W3C `traceparent` of version 00 whose trace and span ids are not all zeros.
 *
 * @since 0.1.0
 */
export const TraceParent = Schema.String.pipe(
  Schema.filter((s) => isTraceParent(s) || "a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>, ids not all zeros")
)

/**
 * How a run of an attempt began: a new attempt (`initial`, `retry`, `replay`, `reclaim` — the
 * last after another worker's lease was lost), or the interrupted attempt taken up again
 * (`resumed`, after a suspension, a delay or a wait for children).
 *
 * @since 0.1.0
 */
export const AttemptRunKind = Schema.Literal("initial", "retry", "replay", "reclaim", "resumed")
/** @since 0.1.0 */
export type AttemptRunKind = typeof AttemptRunKind.Type

/**
 * How a run of an attempt ended (`running` while its lease is held).
 *
 * @since 0.1.0
 */
export const AttemptRunOutcome = Schema.Literal(
  "running",
  "completed",
  "failed",
  "retry_scheduled",
  "cancelled",
  "expired",
  "skipped",
  "lease_expired",
  "lease_revoked",
  "suspended",
  "delayed",
  "waiting_children"
)
/** @since 0.1.0 */
export type AttemptRunOutcome = typeof AttemptRunOutcome.Type

/**
 * One run of an attempt under one lease: from a claim to the transition that
 * let go of the lease. An attempt that is suspended and resumed has one run
 * per lease. `reason` is cut to `Limits.historyReasonBytes` (see
 * docs/design/executions.md, "Attempt history").
 *
 * @since 0.1.0
 */
export const AttemptRun = Schema.Struct({
  attemptIndex: AttemptIndex,
  kind: AttemptRunKind,
  workerId: WorkerId,
  workerInstanceId: WorkerInstanceId,
  startedAt: TimestampMs,
  endedAt: Schema.optional(TimestampMs),
  outcome: AttemptRunOutcome,
  reason: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type AttemptRun = typeof AttemptRun.Type

/**
 * The last failure of an execution: a `fail` (retried or not), an expiry, or
 * the reclaim cap. `category` is the one the retry policy matched.
 *
 * @since 0.1.0
 */
export const LastFailure = Schema.Struct({
  reason: Schema.String,
  classification: FailureClass,
  category: Schema.String,
  at: TimestampMs
})
/** @since 0.1.0 */
export type LastFailure = typeof LastFailure.Type

/**
 * What the worker last reported with `progress` (`ctx.progress`).
 *
 * @since 0.1.0
 */
export const ProgressReport = Schema.Struct({
  percent: Schema.optional(Schema.Int),
  message: Schema.optional(Schema.String),
  updatedAt: TimestampMs
})
/** @since 0.1.0 */
export type ProgressReport = typeof ProgressReport.Type

/** @since 0.1.0 */
export const ExecutionSnapshot = Schema.Struct({
  executionId: ExecutionId,
  flowId: Schema.optional(FlowId),
  laneId: LaneId,
  namespace: Namespace,
  publicState: PublicState,
  blockingReason: Schema.optional(Schema.String),
  blockingDetail: Schema.optional(Schema.String),
  currentAttempt: Schema.optional(Schema.Struct({ attemptId: AttemptId, attemptIndex: AttemptIndex })),
  currentLease: Schema.optional(Schema.Struct({
    leaseEpoch: LeaseEpoch,
    workerInstanceId: WorkerInstanceId,
    expiresAt: TimestampMs,
    leaseId: LeaseId,
    attemptIndex: AttemptIndex,
    lastHeartbeatAt: Schema.optional(TimestampMs)
  })),
  currentWaitpoint: Schema.optional(WaitpointId),
  createdAt: TimestampMs,
  /** The first claim. */
  startedAt: Schema.optional(TimestampMs),
  /** The terminal transition (cleared by a replay). */
  completedAt: Schema.optional(TimestampMs),
  lastMutationAt: TimestampMs,
  totalAttemptCount: NonNegativeInt,
  tags: Tags,
  progress: Schema.optional(ProgressReport),
  lastFailure: Schema.optional(LastFailure),
  /** Why it was cancelled, when it was. */
  cancellationReason: Schema.optional(Schema.String),
  /** The last `Limits.historyRuns` runs, oldest first (`[]` before the first claim). */
  attemptHistory: Schema.Array(AttemptRun)
})
/** @since 0.1.0 */
export type ExecutionSnapshot = typeof ExecutionSnapshot.Type

/**
 * What a worker needs to run an execution: its kind and input payload.
 *
 * @since 0.1.0
 */
export const ExecutionInput = Schema.Struct({
  executionId: ExecutionId,
  executionKind: Schema.String,
  laneId: LaneId,
  namespace: Namespace,
  payload: Schema.Uint8ArrayFromSelf,
  payloadEncoding: Schema.optional(Schema.String),
  /** The creator's span context, when it gave one (`CreateExecutionArgs.traceParent`). */
  traceParent: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ExecutionInput = typeof ExecutionInput.Type

/** @since 0.1.0 */
export const ExecutionInfo = Schema.Struct({
  executionId: ExecutionId,
  namespace: Namespace,
  laneId: LaneId,
  priority: Schema.Int,
  executionKind: Schema.String,
  stateVector: StateVector,
  publicState: PublicState,
  createdAt: Schema.String,
  startedAt: Schema.optional(Schema.String),
  completedAt: Schema.optional(Schema.String),
  currentAttemptIndex: NonNegativeInt,
  flowId: Schema.optional(Schema.String),
  blockingDetail: Schema.String,
  /** Why a cancelled execution was cancelled (its `cancel` / `cancelExecution` reason, or the engine's). */
  cancellationReason: Schema.optional(Schema.String),
  /** Who cancelled it: `worker`, the `cancelExecution` source, `flow_cascade`, `operator_override` (a join's siblings). */
  cancelledBy: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ExecutionInfo = typeof ExecutionInfo.Type

// ---------------------------------------------------------------------------
// Flows, edges, edge groups (model.md §9–§10)
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
export const EdgeGroupState = Schema.Literal("pending", "satisfied", "impossible", "cancelled")
/** @since 0.1.0 */
export type EdgeGroupState = typeof EdgeGroupState.Type

/** @since 0.1.0 */
export const EdgeGroupSnapshot = Schema.Struct({
  downstreamExecutionId: ExecutionId,
  policy: EdgeDependencyPolicy,
  totalDeps: NonNegativeInt,
  satisfiedCount: NonNegativeInt,
  failedCount: NonNegativeInt,
  skippedCount: NonNegativeInt,
  runningCount: NonNegativeInt,
  groupState: EdgeGroupState
})
/** @since 0.1.0 */
export type EdgeGroupSnapshot = typeof EdgeGroupSnapshot.Type

/** @since 0.1.0 */
export const FlowSnapshot = Schema.Struct({
  flowId: FlowId,
  flowKind: Schema.String,
  namespace: Namespace,
  /**
   * Derived from the members (docs/guide.md, "Flows that grow while they run"): `open` (no member
   * yet), `running` (a member is not terminal), `completed` / `failed` (every member terminal),
   * `cancelling`, `cancelled`.
   */
  publicFlowState: Schema.String,
  /** A sealed flow takes no new member and no new edge. */
  sealed: Schema.Boolean,
  graphRevision: NonNegativeInt,
  nodeCount: NonNegativeInt,
  edgeCount: NonNegativeInt,
  createdAt: TimestampMs,
  lastMutationAt: TimestampMs,
  cancelledAt: Schema.optional(TimestampMs),
  cancelReason: Schema.optional(Schema.String),
  cancellationPolicy: Schema.optional(Schema.String),
  tags: Tags,
  edgeGroups: Schema.Array(EdgeGroupSnapshot)
})
/** @since 0.1.0 */
export type FlowSnapshot = typeof FlowSnapshot.Type

/** @since 0.1.0 */
export const EdgeSnapshot = Schema.Struct({
  edgeId: EdgeId,
  flowId: FlowId,
  upstreamExecutionId: ExecutionId,
  downstreamExecutionId: ExecutionId,
  dependencyKind: Schema.String,
  satisfactionCondition: Schema.String,
  dataPassingRef: Schema.optional(Schema.String),
  edgeState: Schema.String,
  createdAt: TimestampMs,
  createdBy: Schema.String
})
/** @since 0.1.0 */
export type EdgeSnapshot = typeof EdgeSnapshot.Type

/** @since 0.1.0 */
export const EdgeDirection = Schema.Union(
  Schema.TaggedStruct("Outgoing", { fromNode: ExecutionId }),
  Schema.TaggedStruct("Incoming", { toNode: ExecutionId })
)
/** @since 0.1.0 */
export type EdgeDirection = typeof EdgeDirection.Type

/** @since 0.1.0 */
export const ListEdgesArgs = Schema.Struct({ flowId: FlowId, direction: EdgeDirection })
/** @since 0.1.0 */
export type ListEdgesArgs = typeof ListEdgesArgs.Type

/** @since 0.1.0 */
export const DescribeEdgeArgs = Schema.Struct({ flowId: FlowId, edgeId: EdgeId })
/** @since 0.1.0 */
export type DescribeEdgeArgs = typeof DescribeEdgeArgs.Type

/** @since 0.1.0 */
export const FlowStatus = Schema.Literal("Active", "Completed", "Failed", "Cancelled", "Unknown")
/** @since 0.1.0 */
export type FlowStatus = typeof FlowStatus.Type

/** @since 0.1.0 */
export const flowStatusOf = (publicFlowState: string): FlowStatus => {
  switch (publicFlowState) {
    case "open":
    case "running":
    case "blocked":
      return "Active"
    case "completed":
      return "Completed"
    case "failed":
      return "Failed"
    case "cancelled":
      return "Cancelled"
    default:
      return "Unknown"
  }
}

// ---------------------------------------------------------------------------
// Listings (operations.md §7)
// ---------------------------------------------------------------------------

const Limit = Schema.Int.pipe(Schema.nonNegative())

/** @since 0.1.0 */
export const ListFlowsArgs = Schema.Struct({ partition: PartitionKey, cursor: Schema.optional(FlowId), limit: Limit })
/** @since 0.1.0 */
export type ListFlowsArgs = typeof ListFlowsArgs.Type
/** @since 0.1.0 */
export const FlowSummary = Schema.Struct({ flowId: FlowId, createdAt: TimestampMs, status: FlowStatus })
/** @since 0.1.0 */
export type FlowSummary = typeof FlowSummary.Type
/** @since 0.1.0 */
export const ListFlowsPage = Schema.Struct({ flows: Schema.Array(FlowSummary), nextCursor: Schema.optional(FlowId) })
/** @since 0.1.0 */
export type ListFlowsPage = typeof ListFlowsPage.Type

/** @since 0.1.0 */
export const ListLanesArgs = Schema.Struct({ cursor: Schema.optional(LaneId), limit: Limit })
/** @since 0.1.0 */
export type ListLanesArgs = typeof ListLanesArgs.Type
/** @since 0.1.0 */
export const ListLanesPage = Schema.Struct({ lanes: Schema.Array(LaneId), nextCursor: Schema.optional(LaneId) })
/** @since 0.1.0 */
export type ListLanesPage = typeof ListLanesPage.Type

/** @since 0.1.0 */
export const ListSuspendedArgs = Schema.Struct({
  partition: PartitionKey,
  cursor: Schema.optional(ExecutionId),
  limit: Limit
})
/** @since 0.1.0 */
export type ListSuspendedArgs = typeof ListSuspendedArgs.Type
/** @since 0.1.0 */
export const SuspendedExecutionEntry = Schema.Struct({
  executionId: ExecutionId,
  suspendedAtMs: TimestampMs,
  reason: Schema.String
})
/** @since 0.1.0 */
export type SuspendedExecutionEntry = typeof SuspendedExecutionEntry.Type
/** @since 0.1.0 */
export const ListSuspendedPage = Schema.Struct({
  entries: Schema.Array(SuspendedExecutionEntry),
  nextCursor: Schema.optional(ExecutionId)
})
/** @since 0.1.0 */
export type ListSuspendedPage = typeof ListSuspendedPage.Type

/** @since 0.1.0 */
export const ListExecutionsArgs = Schema.Struct({
  partition: PartitionKey,
  cursor: Schema.optional(ExecutionId),
  limit: Limit
})
/** @since 0.1.0 */
export type ListExecutionsArgs = typeof ListExecutionsArgs.Type
/** @since 0.1.0 */
export const ListExecutionsPage = Schema.Struct({
  executions: Schema.Array(ExecutionId),
  nextCursor: Schema.optional(ExecutionId)
})
/** @since 0.1.0 */
export type ListExecutionsPage = typeof ListExecutionsPage.Type

/** "no timeout" score of the suspended index. @since 0.1.0 */
export const NO_TIMEOUT_SCORE = 9_999_999_999_999

// ---------------------------------------------------------------------------
// Producer and operator control (operations.md §8)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const CreateExecutionArgs = Schema.Struct({
  executionId: ExecutionId,
  namespace: Namespace,
  laneId: LaneId,
  executionKind: Schema.String,
  inputPayload: Schema.optionalWith(Schema.Uint8ArrayFromSelf, { default: () => EMPTY_BYTES }),
  payloadEncoding: Schema.optional(Schema.String),
  priority: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  creatorIdentity: Schema.optionalWith(Schema.String, { default: () => "" }),
  idempotencyKey: Schema.optional(Schema.String),
  tags: Schema.optionalWith(Tags, { default: () => ({}) }),
  /** A typed policy, or its snake_case JSON text (as received from a wire). */
  policy: Schema.optional(Schema.Union(ExecutionPolicy, Schema.String)),
  delayUntil: Schema.optional(TimestampMs),
  executionDeadlineAt: Schema.optional(TimestampMs),
  /**
   * The creator's span context, a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`): the
   * worker's attempt span joins that trace. `Producer` fills it from the current span.
   */
  traceParent: Schema.optional(TraceParent)
})
/** @since 0.1.0 */
export type CreateExecutionArgs = typeof CreateExecutionArgs.Type
/** @since 0.1.0 */
export type CreateExecutionArgsInput = Input<typeof CreateExecutionArgs.fields>

/** @since 0.1.0 */
export const CreateExecutionResult = Schema.Union(
  Schema.TaggedStruct("Created", { executionId: ExecutionId, publicState: PublicState }),
  Schema.TaggedStruct("Duplicate", { executionId: ExecutionId })
)
/** @since 0.1.0 */
export type CreateExecutionResult = typeof CreateExecutionResult.Type

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

// ---------------------------------------------------------------------------
// Flow cancellation (operations.md §9)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const CancelFlowPolicy = Schema.Literal("FlowOnly", "CancelAll", "CancelPending")
/** @since 0.1.0 */
export type CancelFlowPolicy = typeof CancelFlowPolicy.Type

/** @since 0.1.0 */
export const cancelFlowPolicyWire = (policy: CancelFlowPolicy): string =>
  policy === "FlowOnly" ? "flow_only" : policy === "CancelAll" ? "cancel_all" : "cancel_pending"

/** Reads a stored policy string (D-11 accepts `cancel_flow_only`). @since 0.1.0 */
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

// ---------------------------------------------------------------------------
// Budgets and quotas (model.md §13, operations.md §10)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const UsageDimensions = Schema.Struct({
  inputTokens: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  outputTokens: Schema.optionalWith(Schema.Number, { default: () => 0 }),
  wallMs: Schema.optional(Schema.Number),
  custom: Schema.Record({ key: Schema.String, value: NonNegativeInt }),
  dedupKey: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type UsageDimensions = typeof UsageDimensions.Type

/** @since 0.1.0 */
export const ReportUsageArgs = Schema.Struct({ budgetId: BudgetId, dimensions: UsageDimensions })
/** @since 0.1.0 */
export type ReportUsageArgs = typeof ReportUsageArgs.Type

/** @since 0.1.0 */
export const ReportUsageResult = Schema.Union(
  Schema.TaggedStruct("Ok", {}),
  Schema.TaggedStruct("SoftBreach", { dimension: Schema.String, currentUsage: Schema.Number, softLimit: Schema.Number }),
  Schema.TaggedStruct("HardBreach", { dimension: Schema.String, currentUsage: Schema.Number, hardLimit: Schema.Number }),
  Schema.TaggedStruct("AlreadyApplied", {})
)
/** @since 0.1.0 */
export type ReportUsageResult = typeof ReportUsageResult.Type

/** @since 0.1.0 */
export const ReportUsageAdminArgs = Schema.Struct({
  budgetId: BudgetId,
  dimensions: Schema.Array(Schema.String),
  deltas: Schema.Array(NonNegativeInt),
  dedupKey: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ReportUsageAdminArgs = typeof ReportUsageAdminArgs.Type

/** @since 0.1.0 */
export const CreateBudgetArgs = Schema.Struct({
  budgetId: BudgetId,
  scopeType: Schema.String,
  scopeId: Schema.String,
  enforcementMode: Schema.optionalWith(Schema.String, { default: () => "strict" }),
  onHardLimit: Schema.optionalWith(Schema.String, { default: () => "fail" }),
  onSoftLimit: Schema.optionalWith(Schema.String, { default: () => "warn" }),
  resetIntervalMs: Schema.optionalWith(NonNegativeInt, { default: () => 0 }),
  dimensions: Schema.Array(Schema.String),
  hardLimits: Schema.Array(NonNegativeInt),
  softLimits: Schema.Array(NonNegativeInt)
})
/** @since 0.1.0 */
export type CreateBudgetArgs = typeof CreateBudgetArgs.Type

/** @since 0.1.0 */
export const CreateBudgetResult = Schema.Union(
  Schema.TaggedStruct("Created", { budgetId: BudgetId }),
  Schema.TaggedStruct("AlreadySatisfied", { budgetId: BudgetId })
)
/** @since 0.1.0 */
export type CreateBudgetResult = typeof CreateBudgetResult.Type

/** @since 0.1.0 */
export const ResetBudgetResult = Schema.TaggedStruct("Reset", { nextResetAt: TimestampMs })
/** @since 0.1.0 */
export type ResetBudgetResult = typeof ResetBudgetResult.Type

/** @since 0.1.0 */
export const CreateQuotaPolicyArgs = Schema.Struct({
  quotaPolicyId: QuotaPolicyId,
  windowSeconds: Schema.Int.pipe(Schema.positive()),
  maxRequestsPerWindow: NonNegativeInt,
  maxConcurrent: NonNegativeInt
})
/** @since 0.1.0 */
export type CreateQuotaPolicyArgs = typeof CreateQuotaPolicyArgs.Type

/** @since 0.1.0 */
export const CreateQuotaPolicyResult = Schema.Union(
  Schema.TaggedStruct("Created", { quotaPolicyId: QuotaPolicyId }),
  Schema.TaggedStruct("AlreadySatisfied", { quotaPolicyId: QuotaPolicyId })
)
/** @since 0.1.0 */
export type CreateQuotaPolicyResult = typeof CreateQuotaPolicyResult.Type

/** @since 0.1.0 */
export const BudgetStatus = Schema.Struct({
  budgetId: BudgetId,
  scopeType: Schema.String,
  scopeId: Schema.String,
  enforcementMode: Schema.String,
  usage: Schema.Record({ key: Schema.String, value: Schema.Number }),
  hardLimits: Schema.Record({ key: Schema.String, value: Schema.Number }),
  softLimits: Schema.Record({ key: Schema.String, value: Schema.Number }),
  breachCount: NonNegativeInt,
  softBreachCount: NonNegativeInt,
  lastBreachAt: Schema.optional(Schema.String),
  lastBreachDim: Schema.optional(Schema.String),
  nextResetAt: Schema.optional(Schema.String),
  createdAt: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type BudgetStatus = typeof BudgetStatus.Type

// ---------------------------------------------------------------------------
// HMAC keystore administration (operations.md §12)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const RotateWaitpointHmacSecretAllArgs = Schema.Struct({
  newKid: Schema.String,
  newSecretHex: Schema.String,
  graceMs: Schema.Number
})
/** @since 0.1.0 */
export type RotateWaitpointHmacSecretAllArgs = typeof RotateWaitpointHmacSecretAllArgs.Type

/** @since 0.1.0 */
export const RotateOutcome = Schema.Union(
  Schema.TaggedStruct("Rotated", {
    previousKid: Schema.optional(Schema.String),
    newKid: Schema.String,
    gcCount: NonNegativeInt
  }),
  Schema.TaggedStruct("Noop", { kid: Schema.String })
)
/** @since 0.1.0 */
export type RotateOutcome = typeof RotateOutcome.Type

/** @since 0.1.0 */
export const SeedWaitpointHmacSecretArgs = Schema.Struct({ kid: Schema.String, secretHex: Schema.String })
/** @since 0.1.0 */
export type SeedWaitpointHmacSecretArgs = typeof SeedWaitpointHmacSecretArgs.Type

/** @since 0.1.0 */
export const SeedOutcome = Schema.Union(
  Schema.TaggedStruct("Seeded", { kid: Schema.String }),
  Schema.TaggedStruct("AlreadySeeded", { kid: Schema.String, sameSecret: Schema.Boolean })
)
/** @since 0.1.0 */
export type SeedOutcome = typeof SeedOutcome.Type

/** @since 0.1.0 */
export const PrepareOutcome = Schema.Union(
  Schema.TaggedStruct("NoOp", {}),
  Schema.TaggedStruct("Applied", { description: Schema.String })
)
/** @since 0.1.0 */
export type PrepareOutcome = typeof PrepareOutcome.Type
