/** The boundary of budgets and quota policies. */
import { Effect } from "effect"
import { invalidInput } from "../../EngineError.js"
import { BudgetId as BudgetIdSchema } from "../../Ids.js"
import * as M from "../../Model.js"
import * as V from "../validation.js"
import { argObject, type Boundary, failWith, type Operations, validId } from "./context.js"

/** The budget operations. */
export const budgetOperations = (b: Boundary): Operations<
  "reportUsage" | "reportUsageAdmin" | "createBudget" | "resetBudget" | "getBudgetStatus" | "createQuotaPolicy"
> => {
  const { core, rules, intake, make } = b

  return {
    reportUsage: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("report_usage", input)
        const budgetId = yield* validId("report_usage", "budgetId", BudgetIdSchema, args["budgetId"], rules)
        const dimensions = yield* make("report_usage", M.UsageDimensions, args["dimensions"])
        yield* failWith(V.usageLimits("report_usage", Object.keys(dimensions.custom), dimensions.dedupKey))
        return yield* core.reportUsage(h, budgetId, dimensions)
      }),

    reportUsageAdmin: (args) =>
      Effect.gen(function*() {
        const a = yield* make("report_usage_admin", M.ReportUsageAdminArgs, args)
        if (a.dimensions.length !== a.deltas.length) {
          return yield* invalidInput("report_usage_admin: dimensions and deltas differ in length")
        }
        yield* failWith(V.usageLimits("report_usage_admin", a.dimensions, a.dedupKey))
        return yield* core.reportUsageAdmin(a)
      }),

    createBudget: (args) =>
      Effect.gen(function*() {
        const a = yield* make("create_budget", M.CreateBudgetArgs, args, "InvalidBudgetScope")
        if (a.dimensions.length !== a.hardLimits.length || a.dimensions.length !== a.softLimits.length) {
          return yield* invalidInput("create_budget: dimensions, hard_limits and soft_limits differ in length")
        }
        if (a.dimensions.some((d) => d.length === 0)) return yield* invalidInput("create_budget: empty dimension name")
        yield* failWith(
          V.usageLimits("create_budget", a.dimensions, undefined) ??
            V.checkBytes("create_budget", "scopeType", a.scopeType, "nameBytes") ??
            V.checkBytes("create_budget", "scopeId", a.scopeId, "nameBytes") ??
            V.checkBytes("create_budget", "enforcementMode", a.enforcementMode, "nameBytes") ??
            V.checkBytes("create_budget", "onHardLimit", a.onHardLimit, "nameBytes") ??
            V.checkBytes("create_budget", "onSoftLimit", a.onSoftLimit, "nameBytes")
        )
        return yield* core.createBudget(a)
      }),

    resetBudget: (id) => Effect.flatMap(validId("reset_budget", "budgetId", BudgetIdSchema, id, rules), core.resetBudget),

    getBudgetStatus: (id) =>
      Effect.flatMap(validId("get_budget_status", "budgetId", BudgetIdSchema, id, rules), core.getBudgetStatus),

    createQuotaPolicy: (args) =>
      Effect.flatMap(make("create_quota_policy", M.CreateQuotaPolicyArgs, args, "InvalidQuotaSpec"), core.createQuotaPolicy)
  }
}
