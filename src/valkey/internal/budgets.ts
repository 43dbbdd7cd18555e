/**
 * Budgets and quota policies over Valkey: usage reports (every hard limit checked before any
 * dimension moves, in ff_report_usage), creation, resets and status, each one FCALL on the
 * budget's (or quota policy's) partition.
 */
import { Effect, Schema } from "effect"
import type { EngineError } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea } from "../../internal/boundary.js"
import { ownEntries, recordOf } from "../../internal/records.js"
import type * as M from "../../Model.js"
import { type CoreContext, type Fx, S, T_Int } from "./context.js"
import { parseError } from "./errors.js"
import { decodeFields, type Envelope, IntStr } from "./plumbing.js"

type StrRecord = Readonly<Record<string, string>>

/** ff_budget_status: `{def, usage, limits}`, hashes of strings whose keys are the caller's (kept as they are). */
const decodeBudget = (text: string | undefined): Effect.Effect<{ readonly def: StrRecord; readonly usage: StrRecord; readonly limits: StrRecord }, EngineError> => {
  let raw: unknown
  try {
    raw = JSON.parse(text ?? "")
  } catch {
    raw = undefined
  }
  const isString = (v: unknown): v is string => typeof v === "string"
  const part = (k: string) => {
    const entries = ownEntries((raw as Record<string, unknown> | undefined)?.[k], isString)
    return entries === undefined ? undefined : recordOf(entries)
  }
  const def = part("def")
  const usage = part("usage")
  const limits = part("limits")
  return def === undefined || usage === undefined || limits === undefined ?
    Effect.fail(parseError("ff_budget_status", "not a budget {def, usage, limits}")) :
    Effect.succeed({ def, usage, limits })
}

const T_Breach = Schema.Tuple(S, IntStr, IntStr)

const sortedByKey = (r: Readonly<Record<string, number>>) => Object.keys(r).sort().map((k) => [k, r[k]!] as const)

export const makeBudgets = (
  ctx: CoreContext
): CoreArea<"budgets"> => {
  const { budgetOf, call, quotaOf } = ctx

  const usageResult = (env: Envelope): Fx<M.ReportUsageResult> =>
    Effect.gen(function*() {
      switch (env.status) {
        case "OK":
          return { _tag: "Ok" } satisfies M.ReportUsageResult
        case "ALREADY_APPLIED":
          return { _tag: "AlreadyApplied" } satisfies M.ReportUsageResult
        case "SOFT_BREACH": {
          const [dimension, currentUsage, softLimit] = yield* decodeFields(
            "ff_report_usage",
            T_Breach,
            env.fields
          )
          return { _tag: "SoftBreach", dimension, currentUsage, softLimit } satisfies M.ReportUsageResult
        }
        case "HARD_BREACH": {
          const [dimension, currentUsage, hardLimit] = yield* decodeFields(
            "ff_report_usage",
            T_Breach,
            env.fields
          )
          return { _tag: "HardBreach", dimension, currentUsage, hardLimit } satisfies M.ReportUsageResult
        }
        default:
          return yield* parseError("ff_report_usage", `unknown status ${env.status}`)
      }
    })

  const report = (budgetId: Ids.BudgetId, pairs: ReadonlyArray<readonly [string, number]>, dedupKey: string | undefined) =>
    Effect.flatMap(
      call("report_usage", budgetOf(budgetId), {
        budget_id: budgetId,
        dimensions: pairs.map((x) => x[0]),
        deltas: pairs.map((x) => x[1]),
        ...(dedupKey === undefined || dedupKey === "" ? {} : { dedup_key: dedupKey })
      }),
      usageResult
    )

  const reportUsage: BackendCore["reportUsage"] = (_h, budgetId, dims) =>
    report(budgetId, sortedByKey(dims.custom), dims.dedupKey)

  const reportUsageAdmin: BackendCore["reportUsageAdmin"] = (a) =>
    report(a.budgetId, a.dimensions.map((d, i) => [d, a.deltas[i] ?? 0] as const), a.dedupKey)

  const createBudget: BackendCore["createBudget"] = (a) =>
    Effect.map(
      call("create_budget", budgetOf(a.budgetId), {
        budget_id: a.budgetId,
        scope_type: a.scopeType,
        scope_id: a.scopeId,
        enforcement_mode: a.enforcementMode,
        on_hard_limit: a.onHardLimit,
        on_soft_limit: a.onSoftLimit,
        reset_interval_ms: a.resetIntervalMs,
        dimensions: a.dimensions,
        hard: a.hardLimits,
        soft: a.softLimits
      }),
      (env): M.CreateBudgetResult =>
        env.status === "ALREADY" ? { _tag: "AlreadySatisfied", budgetId: a.budgetId } : { _tag: "Created", budgetId: a.budgetId }
    )

  const resetBudget: BackendCore["resetBudget"] = (id) =>
    Effect.gen(function*() {
      const env = yield* call("reset_budget", budgetOf(id), { budget_id: id })
      const [nextResetAt] = yield* decodeFields("ff_reset_budget", T_Int, env.fields)
      return { _tag: "Reset", nextResetAt } satisfies M.ResetBudgetResult
    })

  const getBudgetStatus: BackendCore["getBudgetStatus"] = (id) =>
    Effect.gen(function*() {
      const env = yield* call("budget_status", budgetOf(id), { budget_id: id }, [], true)
      const b = yield* decodeBudget(env.fields[0])
      const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : 0)
      // dimensions are the caller's names: records without a prototype keep every one (records.ts)
      const hardLimits: Record<string, number> = recordOf([])
      const softLimits: Record<string, number> = recordOf([])
      for (const [k, v] of Object.entries(b.limits)) {
        if (k.startsWith("hard:")) hardLimits[k.slice(5)] = num(v)
        else if (k.startsWith("soft:")) softLimits[k.slice(5)] = num(v)
      }
      const usage: Record<string, number> = recordOf([])
      for (const [k, v] of Object.entries(b.usage)) if (k !== "_init" && k !== "breached_at") usage[k] = num(v)
      const opt = (k: string) => (b.def[k] === undefined || b.def[k] === "" ? undefined : b.def[k])
      const lastBreachAt = opt("last_breach_at")
      const lastBreachDim = opt("last_breach_dim")
      const nextResetAt = opt("next_reset_at")
      const createdAt = opt("created_at")
      return {
        budgetId: id,
        scopeType: b.def["scope_type"] ?? "",
        scopeId: b.def["scope_id"] ?? "",
        enforcementMode: b.def["enforcement_mode"] ?? "",
        usage,
        hardLimits,
        softLimits,
        breachCount: num(b.def["breach_count"]),
        softBreachCount: num(b.def["soft_breach_count"]),
        ...(lastBreachAt === undefined ? {} : { lastBreachAt }),
        ...(lastBreachDim === undefined ? {} : { lastBreachDim }),
        ...(nextResetAt === undefined ? {} : { nextResetAt }),
        ...(createdAt === undefined ? {} : { createdAt })
      } satisfies M.BudgetStatus
    })

  const createQuotaPolicy: BackendCore["createQuotaPolicy"] = (a) =>
    Effect.map(
      call("create_quota", quotaOf(a.quotaPolicyId), {
        quota_policy_id: a.quotaPolicyId,
        window_seconds: a.windowSeconds,
        max_requests_per_window: a.maxRequestsPerWindow,
        max_concurrent: a.maxConcurrent
      }),
      (env): M.CreateQuotaPolicyResult =>
        env.status === "ALREADY" ?
          { _tag: "AlreadySatisfied", quotaPolicyId: a.quotaPolicyId } :
          { _tag: "Created", quotaPolicyId: a.quotaPolicyId }
    )

  return { reportUsage, reportUsageAdmin, createBudget, resetBudget, getBudgetStatus, createQuotaPolicy }
}
