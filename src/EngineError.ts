/**
 * The `EngineError` taxonomy (docs/design/errors.md): eleven tagged errors, their kinds,
 * classes and the helpers retry policies are composed from.
 *
 * @since 0.1.0
 */
import { Duration, Predicate, Schema } from "effect"
import { EdgeSnapshot } from "./Model.js"

/** @since 0.1.0 */
export const ValidationKind = Schema.Literal(
  "InvalidInput",
  "CapabilityMismatch",
  "InvalidCapabilities",
  "InvalidPolicyJson",
  "PayloadTooLarge",
  "SignalLimitExceeded",
  "InvalidWaitpointKey",
  "InvalidToken",
  "WaitpointNotTokenBound",
  "RetentionLimitExceeded",
  "InvalidLeaseForSuspend",
  "InvalidDependency",
  "InvalidWaitpointForExecution",
  "InvalidBlockingReason",
  "InvalidOffset",
  "Unauthorized",
  "InvalidBudgetScope",
  "BudgetOverrideNotAllowed",
  "InvalidQuotaSpec",
  "InvalidKid",
  "InvalidSecretHex",
  "InvalidGraceMs",
  "InvalidTagKey",
  "InvalidFrameType",
  "Corruption",
  "HandleFromOtherBackend",
  "LimitExceeded"
)
/** @since 0.1.0 */
export type ValidationKind = typeof ValidationKind.Type

/** @since 0.1.0 */
export const ContentionKind = Schema.Literal(
  "UseClaimResumedExecution",
  "NotAResumedExecution",
  "ExecutionNotLeaseable",
  "LeaseConflict",
  "InvalidClaimGrant",
  "ClaimGrantExpired",
  "NoEligibleExecution",
  "WaitpointNotFound",
  "WaitpointPendingUseBufferScript",
  "StaleGraphRevision",
  "ExecutionNotActive",
  "ExecutionNotEligible",
  "ExecutionNotInEligibleSet",
  "ExecutionNotReclaimable",
  "NoActiveLease",
  "RateLimitExceeded",
  "ConcurrencyLimitExceeded",
  "RetryExhausted"
)
/** @since 0.1.0 */
export type ContentionKind = typeof ContentionKind.Type

/** @since 0.1.0 */
export const ConflictKind = Schema.Literal(
  "DependencyAlreadyExists",
  "CycleDetected",
  "SelfReferencingEdge",
  "ExecutionAlreadyInFlow",
  "WaitpointAlreadyExists",
  "BudgetAttachConflict",
  "QuotaAttachConflict",
  "RotationConflict",
  "ActiveAttemptExists"
)
/** @since 0.1.0 */
export type ConflictKind = typeof ConflictKind.Type

/** @since 0.1.0 */
export const StateKind = Schema.Literal(
  "StaleLease",
  "LeaseExpired",
  "LeaseRevoked",
  "ExecutionNotSuspended",
  "AlreadySuspended",
  "WaitpointClosed",
  "TargetNotSignalable",
  "DuplicateSignal",
  "ResumeConditionNotMet",
  "WaitpointNotPending",
  "PendingWaitpointExpired",
  "WaitpointNotOpen",
  "ExecutionNotTerminal",
  "MaxReplaysExhausted",
  "StreamClosed",
  "StaleOwnerCannotAppend",
  "GrantAlreadyExists",
  "ExecutionNotInFlow",
  "FlowAlreadyTerminal",
  "FlowSealed",
  "DepsNotSatisfied",
  "NotBlockedByDeps",
  "NotRunnable",
  "Terminal",
  "BudgetExceeded",
  "BudgetSoftExceeded",
  "OkAlreadyApplied",
  "AttemptNotStarted",
  "AttemptAlreadyTerminal",
  "ExecutionNotEligibleForAttempt",
  "ReplayNotAllowed",
  "MaxRetriesExhausted",
  "StreamAlreadyClosed",
  "AlreadySatisfied",
  "EventOffsetExpired"
)
/** @since 0.1.0 */
export type StateKind = typeof StateKind.Type

/** @since 0.1.0 */
export const BugKind = Schema.Literal("AttemptNotInCreatedState", "InvariantViolation")
/** @since 0.1.0 */
export type BugKind = typeof BugKind.Type

/** @since 0.1.0 */
export const BackendErrorKind = Schema.Literal(
  "transport",
  "protocol",
  "timeout",
  "auth",
  "cluster",
  "busy_loading",
  "script_not_loaded",
  "other"
)
/** @since 0.1.0 */
export type BackendErrorKind = typeof BackendErrorKind.Type

/** @since 0.1.0 */
export const ErrorClass = Schema.Literal(
  "terminal",
  "retryable",
  "cooperative",
  "informational",
  "advisory",
  "bug",
  "expected",
  "soft_error"
)
/** @since 0.1.0 */
export type ErrorClass = typeof ErrorClass.Type

/**
 * The stored values an `ExecutionNotActive` carries so that a replayed
 * terminal write can be reconciled (docs/design/executions.md#replaying-a-terminal-write).
 *
 * @since 0.1.0
 */
export const ExecutionNotActiveDetail = Schema.Struct({
  terminalOutcome: Schema.String,
  leaseEpoch: Schema.String,
  lifecyclePhase: Schema.String,
  attemptId: Schema.String
})
/** @since 0.1.0 */
export type ExecutionNotActiveDetail = typeof ExecutionNotActiveDetail.Type

/**
 * What a call looked for and did not find: `entity` names its kind
 * (`execution`, `flow`, `budget`, `stream`, `attempt`, …) and `id` the id the
 * caller passed, when the call carried one.
 *
 * @since 0.1.0
 */
export class NotFound extends Schema.TaggedError<NotFound>()("NotFound", {
  entity: Schema.String,
  id: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return this.id === undefined ? `not found: ${this.entity}` : `not found: ${this.entity} ${this.id}`
  }
}

/** @since 0.1.0 */
export class Validation extends Schema.TaggedError<Validation>()("Validation", {
  kind: ValidationKind,
  detail: Schema.String
}) {
  override get message(): string {
    return `validation: ${this.kind}: ${this.detail}`
  }
}

/** @since 0.1.0 */
export class Contention extends Schema.TaggedError<Contention>()("Contention", {
  kind: ContentionKind,
  notActive: Schema.optional(ExecutionNotActiveDetail)
}) {
  override get message(): string {
    const d = this.notActive
    return d === undefined ?
      `contention: ${this.kind}` :
      `contention: ${this.kind} (phase=${d.lifecyclePhase} outcome=${d.terminalOutcome} epoch=${d.leaseEpoch})`
  }
}

/** @since 0.1.0 */
export class Conflict extends Schema.TaggedError<Conflict>()("Conflict", {
  kind: ConflictKind,
  existing: Schema.optional(EdgeSnapshot),
  kid: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return this.kid === undefined ? `conflict: ${this.kind}` : `conflict: ${this.kind}(${this.kid})`
  }
}

/** @since 0.1.0 */
export class State extends Schema.TaggedError<State>()("State", {
  kind: StateKind
}) {
  override get message(): string {
    return `state: ${this.kind}`
  }
}

/** @since 0.1.0 */
export class Bug extends Schema.TaggedError<Bug>()("Bug", {
  kind: BugKind,
  detail: Schema.optional(Schema.String)
}) {
  override get message(): string {
    return this.detail === undefined ? `bug: ${this.kind}` : `bug: ${this.kind}: ${this.detail}`
  }
}

/** @since 0.1.0 */
export class Transport extends Schema.TaggedError<Transport>()("Transport", {
  backend: Schema.String,
  kind: BackendErrorKind,
  retryable: Schema.Boolean,
  message: Schema.String,
  nativeCode: Schema.optional(Schema.String),
  scriptCode: Schema.optional(Schema.String),
  parse: Schema.optional(Schema.Struct({
    fcall: Schema.String,
    executionId: Schema.optional(Schema.String),
    message: Schema.String
  })),
  cause: Schema.optional(Schema.Defect)
}) {
  override toString(): string {
    return `transport (${this.backend}): ${this.message}`
  }
}

/** @since 0.1.0 */
export class Unavailable extends Schema.TaggedError<Unavailable>()("Unavailable", {
  op: Schema.String
}) {
  override get message(): string {
    return `unavailable: ${this.op}`
  }
}

/** @since 0.1.0 */
export class ResourceExhausted extends Schema.TaggedError<ResourceExhausted>()("ResourceExhausted", {
  pool: Schema.String,
  max: Schema.Number,
  retryAfterMs: Schema.optional(Schema.Number)
}) {
  override get message(): string {
    return `resource exhausted: pool=${this.pool} max=${this.max}`
  }
}

/** @since 0.1.0 */
export class Timeout extends Schema.TaggedError<Timeout>()("Timeout", {
  op: Schema.String,
  elapsed: Schema.DurationFromSelf
}) {
  override get message(): string {
    return `timeout: op=${this.op} elapsed=${Duration.format(this.elapsed)}`
  }
}

/** @since 0.1.0 */
export class Contextual extends Schema.TaggedError<Contextual>()("Contextual", {
  context: Schema.String,
  source: Schema.suspend((): Schema.Schema<EngineError, EngineErrorEncoded> => EngineError)
}) {
  override get message(): string {
    return `${this.context}: ${this.source.message}`
  }
}

/** @since 0.1.0 */
export type EngineError =
  | NotFound
  | Validation
  | Contention
  | Conflict
  | State
  | Bug
  | Transport
  | Unavailable
  | ResourceExhausted
  | Timeout
  | Contextual

interface ContextualEncoded {
  readonly _tag: "Contextual"
  readonly context: string
  readonly source: EngineErrorEncoded
}

/** The serialisable form of an `EngineError`. @since 0.1.0 */
export type EngineErrorEncoded =
  | typeof NotFound.Encoded
  | typeof Validation.Encoded
  | typeof Contention.Encoded
  | typeof Conflict.Encoded
  | typeof State.Encoded
  | typeof Bug.Encoded
  | typeof Transport.Encoded
  | typeof Unavailable.Encoded
  | typeof ResourceExhausted.Encoded
  | typeof Timeout.Encoded
  | ContextualEncoded

/** @since 0.1.0 */
export const EngineError: Schema.Schema<EngineError, EngineErrorEncoded> = Schema.Union(
  NotFound,
  Validation,
  Contention,
  Conflict,
  State,
  Bug,
  Transport,
  Unavailable,
  ResourceExhausted,
  Timeout,
  Contextual
)

const TAGS = new Set([
  "NotFound",
  "Validation",
  "Contention",
  "Conflict",
  "State",
  "Bug",
  "Transport",
  "Unavailable",
  "ResourceExhausted",
  "Timeout",
  "Contextual"
])

/** @since 0.1.0 */
export const isEngineError = (u: unknown): u is EngineError =>
  Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && TAGS.has(u._tag) && u instanceof Error

// ---------------------------------------------------------------------------
// Classification (docs/design/errors.md#classes)
// ---------------------------------------------------------------------------

const INFORMATIONAL_STATE: ReadonlySet<StateKind> = new Set<StateKind>([
  "ExecutionNotSuspended",
  "AlreadySuspended",
  "AlreadySatisfied",
  "WaitpointClosed",
  "DuplicateSignal",
  "GrantAlreadyExists",
  "OkAlreadyApplied",
  "AttemptAlreadyTerminal",
  "StreamAlreadyClosed",
  "BudgetSoftExceeded",
  "WaitpointNotOpen",
  "WaitpointNotPending",
  "PendingWaitpointExpired",
  "NotBlockedByDeps",
  "DepsNotSatisfied"
])

/** Strips every `Contextual` layer. @since 0.1.0 */
export const rootCause = (e: EngineError): EngineError => {
  let current = e
  while (current._tag === "Contextual") current = current.source
  return current
}

/** What a caller should do with an error. @since 0.1.0 */
export const errorClass = (e: EngineError): ErrorClass => {
  const root = rootCause(e)
  switch (root._tag) {
    case "NotFound":
    case "Validation":
    case "Conflict":
    case "Unavailable":
    case "Timeout":
      return "terminal"
    case "Contention":
    case "ResourceExhausted":
      return "retryable"
    case "Bug":
      return "bug"
    case "State":
      return root.kind === "BudgetExceeded" ?
        "cooperative" :
        INFORMATIONAL_STATE.has(root.kind) ?
        "informational" :
        "terminal"
    case "Transport":
      return root.retryable ? "retryable" : "terminal"
    case "Contextual":
      return errorClass(root.source)
  }
}

/**
 * `true` iff retrying after a backoff may succeed. Use it as the `while` of
 * `Effect.retry`.
 *
 * @since 0.1.0
 */
export const isRetryable = (e: EngineError): boolean => errorClass(e) === "retryable"

/**
 * `true` iff the handle no longer owns its execution: the worker must stop
 * the attempt (docs/design/errors.md#lease-lost).
 *
 * @since 0.1.0
 */
export const isLeaseLost = (e: EngineError): boolean => {
  const root = rootCause(e)
  return (root._tag === "State" &&
    (root.kind === "StaleLease" || root.kind === "LeaseExpired" || root.kind === "LeaseRevoked")) ||
    (root._tag === "Contention" && (root.kind === "ExecutionNotActive" || root.kind === "LeaseConflict"))
}

/**
 * Labels an infrastructure error with a call site; typed families are
 * returned unchanged (docs/design/errors.md#context-labels).
 *
 * @since 0.1.0
 */
export const withBackendContext = (e: EngineError, context: string): EngineError =>
  e._tag === "Transport" || e._tag === "Unavailable" || e._tag === "ResourceExhausted" || e._tag === "Timeout" ||
    e._tag === "Contextual" ?
    new Contextual({ context, source: e }) :
    e

// ---------------------------------------------------------------------------
// Constructors used by every backend
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const notFound = (entity: string, id?: string) => new NotFound(id === undefined ? { entity } : { entity, id })
/**
 * The longest `detail` of a `Validation` error, in characters: a longer one is
 * cut (ending in `…`), so that a huge bad value never makes a huge error.
 *
 * @since 0.1.0
 */
export const MAX_VALIDATION_DETAIL = 500

const capDetail = (detail: string): string => {
  if (detail.length <= MAX_VALIDATION_DETAIL) return detail
  let end = MAX_VALIDATION_DETAIL - 1
  // never end on the first half of a surrogate pair
  const last = detail.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${detail.slice(0, end)}…`
}

/** @since 0.1.0 */
export const validation = (kind: ValidationKind, detail = "") => new Validation({ kind, detail: capDetail(detail) })
/** @since 0.1.0 */
export const invalidInput = (detail: string) => validation("InvalidInput", detail)
/** @since 0.1.0 */
export const corruption = (detail: string) => validation("Corruption", detail)
/** @since 0.1.0 */
export const contention = (kind: ContentionKind) => new Contention({ kind })
/** @since 0.1.0 */
export const executionNotActive = (detail: ExecutionNotActiveDetail) =>
  new Contention({ kind: "ExecutionNotActive", notActive: detail })
/** @since 0.1.0 */
export const conflict = (kind: ConflictKind) => new Conflict({ kind })
/** @since 0.1.0 */
export const state = (kind: StateKind) => new State({ kind })
/** @since 0.1.0 */
export const bug = (kind: BugKind, detail?: string) =>
  new Bug(detail === undefined ? { kind } : { kind, detail })

// ---------------------------------------------------------------------------
// Server-script codes (docs/design/errors.md#error-codes-of-the-server-libraries)
// ---------------------------------------------------------------------------

const SCRIPT_CODES: Record<string, (details: ReadonlyArray<string>) => EngineError> = {
  stale_lease: () => state("StaleLease"),
  lease_expired: () => state("LeaseExpired"),
  lease_revoked: () => state("LeaseRevoked"),
  execution_not_active: (d) =>
    executionNotActive({
      terminalOutcome: d[0] ?? "",
      leaseEpoch: d[1] ?? "",
      lifecyclePhase: d[2] ?? "",
      attemptId: d[3] ?? ""
    }),
  no_active_lease: () => contention("NoActiveLease"),
  active_attempt_exists: () => conflict("ActiveAttemptExists"),
  use_claim_resumed_execution: () => contention("UseClaimResumedExecution"),
  not_a_resumed_execution: () => contention("NotAResumedExecution"),
  execution_not_leaseable: () => contention("ExecutionNotLeaseable"),
  lease_conflict: () => contention("LeaseConflict"),
  invalid_claim_grant: () => contention("InvalidClaimGrant"),
  claim_grant_expired: () => contention("ClaimGrantExpired"),
  no_eligible_execution: () => contention("NoEligibleExecution"),
  budget_exceeded: () => state("BudgetExceeded"),
  budget_soft_exceeded: () => state("BudgetSoftExceeded"),
  execution_not_suspended: () => state("ExecutionNotSuspended"),
  already_suspended: () => state("AlreadySuspended"),
  waitpoint_closed: () => state("WaitpointClosed"),
  waitpoint_not_found: () => contention("WaitpointNotFound"),
  target_not_signalable: () => state("TargetNotSignalable"),
  waitpoint_pending_use_buffer_script: () => contention("WaitpointPendingUseBufferScript"),
  duplicate_signal: () => state("DuplicateSignal"),
  payload_too_large: () => validation("PayloadTooLarge"),
  signal_limit_exceeded: () => validation("SignalLimitExceeded"),
  invalid_waitpoint_key: () => validation("InvalidWaitpointKey"),
  invalid_token: (d) => validation("InvalidToken", d[0] ?? ""),
  missing_token: () => validation("InvalidToken", "missing_token"),
  token_expired: () => validation("InvalidToken", "token_expired"),
  invalid_lease_for_suspend: () => validation("InvalidLeaseForSuspend"),
  resume_condition_not_met: () => state("ResumeConditionNotMet"),
  waitpoint_not_pending: () => state("WaitpointNotPending"),
  pending_waitpoint_expired: () => state("PendingWaitpointExpired"),
  invalid_waitpoint_for_execution: () => validation("InvalidWaitpointForExecution"),
  waitpoint_already_exists: () => conflict("WaitpointAlreadyExists"),
  waitpoint_not_open: () => state("WaitpointNotOpen"),
  execution_not_terminal: () => state("ExecutionNotTerminal"),
  max_replays_exhausted: () => state("MaxReplaysExhausted"),
  stream_closed: () => state("StreamClosed"),
  stale_owner_cannot_append: () => state("StaleOwnerCannotAppend"),
  retention_limit_exceeded: () => validation("RetentionLimitExceeded"),
  limit_exceeded: (d) => validation("LimitExceeded", d[0] ?? ""),
  execution_not_eligible: () => contention("ExecutionNotEligible"),
  execution_not_in_eligible_set: () => contention("ExecutionNotInEligibleSet"),
  grant_already_exists: () => state("GrantAlreadyExists"),
  execution_not_reclaimable: () => contention("ExecutionNotReclaimable"),
  invalid_dependency: (d) => validation("InvalidDependency", d[0] ?? ""),
  stale_graph_revision: () => contention("StaleGraphRevision"),
  execution_already_in_flow: () => conflict("ExecutionAlreadyInFlow"),
  cycle_detected: () => conflict("CycleDetected"),
  flow_not_found: () => notFound("flow"),
  execution_not_in_flow: () => state("ExecutionNotInFlow"),
  event_offset_expired: () => state("EventOffsetExpired"),
  self_referencing_edge: () => conflict("SelfReferencingEdge"),
  flow_already_terminal: () => state("FlowAlreadyTerminal"),
  flow_sealed: () => state("FlowSealed"),
  deps_not_satisfied: () => state("DepsNotSatisfied"),
  not_blocked_by_deps: () => state("NotBlockedByDeps"),
  not_runnable: () => state("NotRunnable"),
  terminal: () => state("Terminal"),
  invalid_blocking_reason: () => validation("InvalidBlockingReason"),
  ok_already_applied: () => state("OkAlreadyApplied"),
  attempt_not_found: () => notFound("attempt"),
  attempt_not_in_created_state: () => bug("AttemptNotInCreatedState"),
  attempt_not_started: () => state("AttemptNotStarted"),
  attempt_already_terminal: () => state("AttemptAlreadyTerminal"),
  execution_not_found: () => notFound("execution"),
  execution_not_eligible_for_attempt: () => state("ExecutionNotEligibleForAttempt"),
  replay_not_allowed: () => state("ReplayNotAllowed"),
  max_retries_exhausted: () => state("MaxRetriesExhausted"),
  stream_not_found: () => notFound("stream"),
  stream_already_closed: () => state("StreamAlreadyClosed"),
  invalid_frame_type: () => validation("InvalidFrameType"),
  invalid_offset: () => validation("InvalidOffset"),
  unauthorized: () => validation("Unauthorized"),
  budget_not_found: () => notFound("budget"),
  invalid_budget_scope: () => validation("InvalidBudgetScope"),
  budget_attach_conflict: () => conflict("BudgetAttachConflict"),
  budget_override_not_allowed: () => validation("BudgetOverrideNotAllowed"),
  quota_policy_not_found: () => notFound("quota_policy"),
  rate_limit_exceeded: () => contention("RateLimitExceeded"),
  concurrency_limit_exceeded: () => contention("ConcurrencyLimitExceeded"),
  quota_attach_conflict: () => conflict("QuotaAttachConflict"),
  invalid_quota_spec: () => validation("InvalidQuotaSpec"),
  invalid_input: (d) => invalidInput(d[0] ?? ""),
  capability_mismatch: (d) => validation("CapabilityMismatch", d[0] ?? ""),
  invalid_capabilities: (d) => validation("InvalidCapabilities", d[0] ?? ""),
  invalid_policy_json: (d) => validation("InvalidPolicyJson", d[0] ?? ""),
  waitpoint_not_token_bound: () => validation("WaitpointNotTokenBound"),
  invalid_kid: () => validation("InvalidKid"),
  invalid_secret_hex: () => validation("InvalidSecretHex"),
  invalid_grace_ms: () => validation("InvalidGraceMs"),
  rotation_conflict: (d) => new Conflict({ kind: "RotationConflict", kid: d[0] ?? "" }),
  invalid_tag_key: (d) => validation("InvalidTagKey", d[0] ?? ""),
  invalid_secret: () => corruption("invalid_secret"),
  corruption: (d) => corruption(d[0] ?? ""),
  invariant_violation: (d) => bug("InvariantViolation", d[0] ?? ""),
  additional_waitpoint_binding_malformed: () => invalidInput("additional_waitpoint_binding_malformed"),
  use_pending_with_extras_unsupported: () => invalidInput("use_pending_with_extras_unsupported"),
  invalid_args: () => invalidInput("invalid_args")
}

/**
 * Maps a server-script failure `[code, ...details]` to its typed error
 * (docs/design/errors.md#error-codes-of-the-server-libraries). Codes with no typed kind become a non-retryable
 * `Transport` naming the code.
 *
 * @since 0.1.0
 */
export const fromScriptCode = (backend: string, code: string, details: ReadonlyArray<string> = []): EngineError => {
  const known = SCRIPT_CODES[code]
  if (known !== undefined) return known(details)
  if (code.startsWith("already_member_of_different_flow")) return conflict("ExecutionAlreadyInFlow")
  if (code === "hmac_secret_not_initialized") {
    return new Transport({
      backend,
      kind: "other",
      retryable: false,
      message: "waitpoint HMAC keystore is empty: seed it with seedWaitpointHmacSecret",
      scriptCode: code
    })
  }
  if (code === "staged_blob_missing") {
    return new Transport({
      backend,
      kind: "other",
      retryable: true,
      message: "a staged payload was gone before the call took it (evicted, or the server restarted): nothing was written",
      scriptCode: code
    })
  }
  if (code === "invalid_keys_missing_hmac") {
    return new Transport({ backend, kind: "protocol", retryable: false, message: code, scriptCode: code })
  }
  return new Transport({
    backend,
    kind: "protocol",
    retryable: false,
    message: `unknown error code: ${code}`,
    scriptCode: code
  })
}
