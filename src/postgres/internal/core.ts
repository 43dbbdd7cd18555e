/**
 * The Postgres `BackendCore`: every operation is one call of its server-side
 * function (`ff_<op>`, in the function library of `src/postgres/sql/`), which
 * builds the arguments and decodes the reply with Schema. The operations live
 * in one module per area, over the shared context (context.ts), named as the
 * SQL files and the Valkey modules of the same operations: claim, lifecycle,
 * flows, signals, streams, budgets, admin, reads; the wake-up subscription in
 * wakeups.ts, the maintenance passes in maintenance.ts.
 */
import { Effect } from "effect"
import type { BackendCore } from "../../internal/boundary.js"
import { makeAdmin } from "./admin.js"
import { makeBudgets } from "./budgets.js"
import { makeClaims, makeWakeClaims } from "./claim.js"
import type { Caller } from "./client.js"
import { type CoreOptions, makeCoreContext } from "./context.js"
import { makeFlows } from "./flows.js"
import { makeLifecycle } from "./lifecycle.js"
import { makeReads } from "./reads.js"
import { makeSignals } from "./signals.js"
import { makeStreams } from "./streams.js"
import { makeEvents } from "./events.js"
import { makeWakeups } from "./wakeups.js"

/** The claims made at a wake-up's notification for a waiting worker (`makeWakeClaims`), or `undefined`. */
export const makeCoreWakeClaims = (
  caller: Caller,
  options: CoreOptions
): ((lane: string, count: () => void) => boolean) | undefined =>
  options.hub === undefined ? undefined : makeWakeClaims(makeCoreContext(caller, options), options.hub)

export const makeCore = (caller: Caller, options: CoreOptions): BackendCore => {
  const ctx = makeCoreContext(caller, options)
  return {
    label: "postgres",
    partitions: ctx.cfg,
    ...makeWakeups(ctx),
    ...makeEvents(ctx),
    ...makeClaims(ctx),
    ...makeLifecycle(ctx),
    ...makeSignals(ctx),
    ...makeStreams(ctx),
    ...makeReads(ctx),
    ...makeFlows(ctx),
    ...makeAdmin(ctx),
    ...makeBudgets(ctx),
    shutdownPrepare: () => Effect.void
  }
}
