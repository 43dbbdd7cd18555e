/** The interpreter, time and maintenance: advancing the clock, one maintenance pass, or a reconciler cycle. */
import { Duration, Effect, TestClock } from "effect"
import { passNames } from "../../src/Maintenance.js"
import type { Command } from "./commands.js"
import type { Json } from "./normalize.js"
import { attempt, rec, type Step, type Stepped, withoutDue } from "./run.js"

type MaintenanceCommand = Extract<Command, { readonly _tag: "Advance" | "Pass" | "Settle" }>

export const maintenance = (s: Step, cmd: MaintenanceCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { out, run, touched } = s
    switch (cmd._tag) {
      case "Advance":
        yield* TestClock.adjust(Duration.millis(cmd.ms))
        return out({ ok: null })

      case "Pass": {
        const r = yield* attempt(run, run.engine.maintenance[cmd.pass]())
        touched.all = true
        return out(rec(run, r, withoutDue))
      }

      case "Settle": {
        yield* TestClock.adjust(Duration.millis(cmd.ms))
        const results: Record<string, Json> = {}
        for (const name of passNames) {
          results[name] = rec(run, yield* attempt(run, run.engine.maintenance[name]()), withoutDue)
        }
        touched.all = true
        return out(results)
      }
    }
  })
