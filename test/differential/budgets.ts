/** The interpreter, budgets: creating budgets, reporting usage (admin or through a handle), resetting. */
import { Effect } from "effect"
import type { BudgetId } from "../../src/Ids.js"
import type { Command } from "./commands.js"
import { attempt, pickRecent, rec, skip, type Step, type Stepped } from "./run.js"

type BudgetCommand = Extract<Command, { readonly _tag: "CreateBudget" | "ReportUsage" | "ResetBudget" }>

export const budgets = (s: Step, cmd: BudgetCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { b, i, out, run, touched } = s
    switch (cmd._tag) {
      case "CreateBudget": {
        const budgetId = run.mint("budget", i) as BudgetId
        run.budgets.push(budgetId)
        touched.budgets.push(budgetId)
        const r = yield* attempt(
          run,
          b.createBudget({
            budgetId,
            scopeType: "tenant",
            scopeId: "diff",
            dimensions: [...cmd.dimensions],
            hardLimits: cmd.dimensions.map(() => cmd.hard),
            softLimits: cmd.dimensions.map(() => cmd.soft),
            resetIntervalMs: cmd.resetIntervalMs
          })
        )
        return out(rec(run, r))
      }

      case "ReportUsage": {
        const budgetId = pickRecent(run.budgets, cmd.budget) ?? (run.mint("no-budget", i) as BudgetId)
        touched.budgets.push(budgetId)
        const handle = cmd.handle === undefined ? undefined : pickRecent(run.handles, cmd.handle)
        const r = handle === undefined ?
          yield* attempt(
            run,
            b.reportUsageAdmin({
              budgetId,
              dimensions: cmd.amounts.map(([d]) => d),
              deltas: cmd.amounts.map(([, n]) => n),
              ...(cmd.dedupKey === undefined ? {} : { dedupKey: cmd.dedupKey })
            })
          ) :
          yield* attempt(
            run,
            b.reportUsage(handle, {
              budgetId,
              dimensions: {
                custom: Object.fromEntries(cmd.amounts),
                ...(cmd.dedupKey === undefined ? {} : { dedupKey: cmd.dedupKey })
              }
            })
          )
        return out(rec(run, r))
      }

      case "ResetBudget": {
        const budgetId = pickRecent(run.budgets, cmd.budget)
        if (budgetId === undefined) return out(skip("no budget"))
        touched.budgets.push(budgetId)
        return out(rec(run, yield* attempt(run, b.resetBudget(budgetId))))
      }
    }
  })
