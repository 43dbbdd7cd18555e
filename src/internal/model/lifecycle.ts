/**
 * Lifecycle: the execution policy, `createExecution`, the lease renewal and the failure of an
 * attempt. Re-exported by `Model`.
 */
import { Schema } from "effect"
import { BudgetId, ExecutionId, LaneId, LeaseEpoch, Namespace, TimestampMs } from "../../Ids.js"
import { isTraceParent } from "../traceContext.js"
import { type Input, PublicState } from "./common.js"
import { EMPTY_BYTES, NonNegativeInt, Tags } from "./fields.js"

// ---------------------------------------------------------------------------
// Execution policy (docs/design/executions.md#execution-policy) — snake_case on the wire, camelCase in TS
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
// Creation (docs/design/executions.md#lifecycle-operations)
// ---------------------------------------------------------------------------

/**
 * A W3C `traceparent` of version 00 whose trace and span ids are not all zeros.
 *
 * @since 0.1.0
 */
export const TraceParent = Schema.String.pipe(
  Schema.filter((s) => isTraceParent(s) || "a W3C traceparent: 00-<32 hex>-<16 hex>-<2 hex>, ids not all zeros")
)

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

// ---------------------------------------------------------------------------
// Lifecycle arguments and outcomes (docs/design/executions.md#lifecycle-operations)
// ---------------------------------------------------------------------------
/** @since 0.1.0 */
export const LeaseRenewal = Schema.Struct({ expiresAtMs: TimestampMs, leaseEpoch: LeaseEpoch })
/** @since 0.1.0 */
export type LeaseRenewal = typeof LeaseRenewal.Type

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
