/**
 * Budgets and quota policies. Re-exported by `Model`.
 */
import { Schema } from "effect"
import { BudgetId, QuotaPolicyId, TimestampMs } from "../../Ids.js"
import { NonNegativeInt } from "./fields.js"

// ---------------------------------------------------------------------------
// Budgets and quotas (docs/design/streams-and-budgets.md#budgets)
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
