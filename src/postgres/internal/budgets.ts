/**
 * Budgets and quotas over Postgres: usage reports (the lease holder's and the operator's), budget
 * creation, reset and status, quota policies.
 */
import { Effect } from "effect"
import { corruption } from "../../EngineError.js"
import { budgetPartition, quotaPartition } from "../../Ids.js"
import type { CoreArea } from "../../internal/boundary.js"
import { ownEntries, recordOf } from "../../internal/records.js"
import * as M from "../../Model.js"
import { bigint, decode, int, text, textArray, uuid } from "./client.js"
import type { CoreContext } from "./context.js"

export const makeBudgets = (
  ctx: CoreContext
): CoreArea<"budgets"> => {
  const { call, callDecode, cfg } = ctx
  return {
    reportUsage: (_h, budgetId, dimensions) => {
      const dims = Object.keys(dimensions.custom).sort()
      return callDecode("report_usage", "report_usage", [
        uuid(budgetId),
        textArray(dims),
        ["bigint[]", dims.map((d) => dimensions.custom[d] ?? 0)],
        text(dimensions.dedupKey)
      ], M.ReportUsageResult)
    },

    reportUsageAdmin: (a) =>
      callDecode("report_usage_admin", "report_usage", [
        uuid(a.budgetId),
        textArray(a.dimensions),
        ["bigint[]", a.deltas],
        text(a.dedupKey)
      ], M.ReportUsageResult),

    createBudget: (a) =>
      callDecode("create_budget", "create_budget", [
        uuid(a.budgetId),
        int(budgetPartition(a.budgetId, cfg)),
        text(a.scopeType),
        text(a.scopeId),
        text(a.enforcementMode),
        text(a.onHardLimit),
        text(a.onSoftLimit),
        bigint(a.resetIntervalMs),
        textArray(a.dimensions),
        ["bigint[]", a.hardLimits],
        ["bigint[]", a.softLimits]
      ], M.CreateBudgetResult),

    resetBudget: (id) => callDecode("reset_budget", "reset_budget", [uuid(id)], M.ResetBudgetResult),

    getBudgetStatus: (id) =>
      Effect.flatMap(call("get_budget_status", "get_budget_status", [uuid(id)]), (raw) =>
        Effect.flatMap(decode("get_budget_status", M.BudgetStatus)(raw), (status) => {
          // dimensions are the caller's names: records without a prototype keep every one (records.ts)
          const isNumber = (v: unknown): v is number => typeof v === "number"
          const own = (k: "usage" | "hardLimits" | "softLimits") => ownEntries((raw as Record<string, unknown>)[k], isNumber)
          const usage = own("usage")
          const hardLimits = own("hardLimits")
          const softLimits = own("softLimits")
          return usage === undefined || hardLimits === undefined || softLimits === undefined ?
            Effect.fail(corruption("get_budget_status: a usage or limit is not a number")) :
            Effect.succeed({ ...status, usage: recordOf(usage), hardLimits: recordOf(hardLimits), softLimits: recordOf(softLimits) })
        })),

    createQuotaPolicy: (a) =>
      callDecode("create_quota_policy", "create_quota_policy", [
        uuid(a.quotaPolicyId),
        int(quotaPartition(a.quotaPolicyId, cfg)),
        bigint(a.windowSeconds),
        bigint(a.maxRequestsPerWindow),
        bigint(a.maxConcurrent)
      ], M.CreateQuotaPolicyResult)
  }
}
