/**
 * The maintenance passes over Postgres (docs/design/maintenance.md): each is one call of its
 * ff_pass_<name> (maintenance.sql), bounded by the batch size.
 */
import { Effect, Schema } from "effect"
import type { Maintenance, PassName, PassOptions, PassResult } from "../../Maintenance.js"
import { DEFAULT_BATCH_SIZE } from "../../Maintenance.js"
import { type Arg, type Caller, decode, int, text } from "./client.js"
import type { Fx } from "./context.js"

const PassRow = Schema.Struct({
  processed: Schema.Int.pipe(Schema.nonNegative()),
  more: Schema.Boolean,
  nextDueAt: Schema.optional(Schema.Number)
})

/** The passes over the caller of the core. */
export const makeMaintenance = (caller: Caller): Maintenance.Service => {
  const run = (name: PassName, fn: string, extra: ReadonlyArray<Arg>) => (passOptions?: PassOptions): Fx<PassResult> => {
    const batch = Math.max(1, Math.floor(passOptions?.batchSize ?? DEFAULT_BATCH_SIZE))
    return Effect.map(
      Effect.flatMap(caller.call(name, fn, [...extra, int(batch)]), decode(name, PassRow)),
      (r) => ({ pass: name, ...r })
    )
  }
  return {
    expireLeases: run("expireLeases", "pass_timers", [text("lease")]),
    promoteDelayed: run("promoteDelayed", "pass_timers", [text("delay")]),
    expireAttempts: run("expireAttempts", "pass_timers", [text("attempt_timeout")]),
    expireExecutions: run("expireExecutions", "pass_timers", [text("deadline")]),
    expireSuspensions: run("expireSuspensions", "pass_timers", [text("suspension")]),
    expirePendingWaitpoints: run("expirePendingWaitpoints", "pass_timers", [text("waitpoint")]),
    reconcileDependencies: run("reconcileDependencies", "pass_dependencies", []),
    drainCancelBacklog: run("drainCancelBacklog", "pass_cancel_backlog", []),
    resetBudgets: run("resetBudgets", "pass_timers", [text("budget_reset")]),
    trimRetention: run("trimRetention", "pass_retention", [])
  }
}
