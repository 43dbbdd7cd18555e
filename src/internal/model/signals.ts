/**
 * Suspension, waitpoints and signals, and the HMAC keystore that signs waitpoint tokens.
 * Re-exported by `Model`.
 */
import { Schema } from "effect"
import { ExecutionId, SignalId, SuspensionId, TimestampMs, WaitpointId } from "../../Ids.js"
import { Handle, type Input } from "./common.js"
import { TimeoutBehavior } from "./lifecycle.js"
import { NonNegativeInt } from "./fields.js"

// ---------------------------------------------------------------------------
// Suspension, waitpoints, signals (docs/design/signals.md)
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
// HMAC keystore administration (docs/design/signals.md#the-keystore)
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
