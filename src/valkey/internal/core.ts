/**
 * `BackendCore` over Valkey: every state transition is one FCALL of the
 * flowfabric library; reads are read-only FCALLs (one consistent snapshot) or
 * plain commands on keys of one slot. The operations live in one module per
 * area, each over the shared context (context.ts), named as the Lua files and
 * the Postgres SQL files of the same operations: claim, lifecycle, flows,
 * signals, streams, budgets, admin, reads, events; the due timers of idle workers in
 * wakeups.ts, the maintenance passes in maintenance.ts.
 */
import { Effect } from "effect"
import type { BackendCore } from "../../internal/boundary.js"
import type { EventHub, Hub } from "../../internal/wakeups.js"
import { makeAdmin } from "./admin.js"
import { makeBudgets } from "./budgets.js"
import { makeClaimReplies, makeClaims, makeWakeClaims } from "./claim.js"
import { makeCoreContext } from "./context.js"
import { makeEvents } from "./events.js"
import { makeFlows } from "./flows.js"
import { makeLifecycle } from "./lifecycle.js"
import type { Plumbing } from "./plumbing.js"
import { makeReads } from "./reads.js"
import { makeSignals } from "./signals.js"
import { makeStreams, type StreamOps } from "./streams.js"
import { makeDueTimers } from "./wakeups.js"

export const makeCore = (
  p: Plumbing,
  streamOps: StreamOps,
  library: { readonly version: string },
  hub: Hub,
  eventHub: EventHub
): BackendCore => {
  const ctx = makeCoreContext(p)
  const { nextDue, promoteDue } = makeDueTimers(ctx)
  const replies = makeClaimReplies(ctx)
  const lifecycle = makeLifecycle(ctx, replies, hub)
  const reads = makeReads(ctx)
  return {
    label: "valkey",
    partitions: p.settings.partitions,
    subscribeWork: (args) =>
      hub.subscribe(args, {
        arm: Effect.map(nextDue(args.lanes), (dueAt) => ({ dueAt, claimAgain: false })),
        disarm: Effect.void,
        promoteDue: promoteDue(args.lanes)
      }),
    ...makeClaims(ctx, { completeMany: lifecycle.completeMany, getExecutionInputs: reads.getExecutionInputs }),
    ...lifecycle,
    ...makeSignals(ctx),
    ...makeStreams(ctx, streamOps),
    ...reads,
    ...makeFlows(ctx),
    ...makeAdmin(ctx, library),
    ...makeBudgets(ctx),
    ...makeEvents(ctx, eventHub),
    shutdownPrepare: streamOps.shutdown
  }
}

/** The claims made at a wake-up's message for a waiting worker (`makeWakeClaims`), or `undefined`. */
export const makeCoreWakeClaims = (p: Plumbing, hub: Hub): ((lane: string) => void) | undefined => {
  const ctx = makeCoreContext(p)
  return makeWakeClaims(ctx, makeClaimReplies(ctx), hub)
}
