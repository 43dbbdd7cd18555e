/**
 * Terminal transitions: every end of an execution (complete, fail, cancel, expire, skip) goes
 * through `finish`, which ends the attempt, closes its stream and suspension, lets go of the lease
 * and hands a flow member to its flow's resolution (`flows.ts`).
 */
import type * as M from "../../Model.js"
import { DEFAULT_RETENTION_MS } from "../../Maintenance.js"
import { resolveFrom, settleFlow } from "./flows.js"
import { clearLease, closeStream, dropEndedLeaseExpiries, hasAttempt, leaseEndsElsewhere, transition } from "./helpers.js"
import { endRun } from "./history.js"
import type { AttemptLifecycle, Exec } from "./state.js"
import type { Store } from "./store.js"

/** The outcome of the run a terminal transition ends. */
const RUN_OUTCOME: Record<Exclude<M.TerminalOutcome, "none">, M.AttemptRunOutcome> = {
  success: "completed",
  failed: "failed",
  cancelled: "cancelled",
  expired: "expired",
  skipped: "skipped"
}

export interface FinishOptions {
  readonly attempt: AttemptLifecycle
  readonly streamReason: string
  readonly failureReason?: string
  readonly suspensionReason?: string
  /** The reason of the run it ends (default `failureReason`). */
  readonly runReason?: string
  readonly publish: boolean
}

/** Ends the current attempt of `e`, if it has one still running or suspended. */
export const endAttempt = (e: Exec, st: AttemptLifecycle): void => {
  if (!hasAttempt(e) || e.attemptLifecycle.startsWith("ended") || e.attemptLifecycle === "interrupted_reclaimed") return
  e.attemptLifecycle = st
}

export const closeSuspension = (store: Store, e: Exec, reason: string, now: number): void => {
  const s = e.suspension
  if (s === undefined || s.closedAt !== undefined) return
  s.closedAt = now
  s.closeReason = reason
  for (const id of [s.waitpointId, ...s.additional.map((w) => w.waitpointId)]) {
    const wp = store.waitpoints.get(id)
    if (wp !== undefined && (wp.state === "active" || wp.state === "pending")) {
      wp.state = "closed"
      wp.closedAt = now
      wp.closeReason = reason
    }
  }
  e.currentWaitpointId = undefined
}

/**
 * Makes `e` terminal. Flow members resolve their outgoing edges in the same
 * step (docs/design/decisions.md#dependencies-resolve-in-the-terminal-step) unless `publish` is false (flow-cascade cancels).
 */
export const finish = (
  store: Store,
  e: Exec,
  outcome: Exclude<M.TerminalOutcome, "none">,
  now: number,
  opts: FinishOptions
): void => {
  endRun(e, RUN_OUTCOME[outcome], now, opts.runReason ?? opts.failureReason)
  const attempt = hasAttempt(e)
  endAttempt(e, opts.attempt)
  if (attempt) closeStream(store, e, e.currentAttemptIndex, opts.streamReason, now)
  closeSuspension(store, e, opts.suspensionReason ?? opts.streamReason, now)
  clearLease(e)
  e.completedAt = now
  e.delayUntil = undefined
  // the deadline index lets go of a terminal execution, and a replay does not re-arm it (as
  // ff_complete and ff_replay_execution do on Valkey and Postgres)
  e.executionDeadlineAt = undefined
  if (opts.failureReason !== undefined) e.failureReason = opts.failureReason
  store.grants.delete(e.id)
  transition(store, e, {
    phase: "terminal",
    ownership: "unowned",
    eligibility: "not_applicable",
    blockingReason: "none",
    blockingDetail: "",
    outcome,
    // attempt_terminal once an attempt exists; else a skip reads none, every other end leaves it
    // unchanged (as ff_cancel_execution and ff_resolve_dependency on Valkey)
    attemptState: e.totalAttemptCount > 0 ? "attempt_terminal" : outcome === "skipped" ? "none" : e.attemptState
  }, now)
  if (e.flowId === undefined) store.retentionDue.push(now + retentionOf(e), e.id)
  if (store.leaseExpiries.size > 0) dropEndedLeaseExpiries(store)
  afterTerminal(store, e, outcome, now, opts.publish)
}

const afterTerminal = (store: Store, e: Exec, outcome: M.TerminalOutcome, now: number, publish: boolean): void => {
  if (e.flowId === undefined) return
  const flow = store.flows.get(e.flowId)
  if (flow === undefined) return
  if (publish) resolveFrom(store, flow, e, outcome, now)
  settleFlow(store, flow, now)
}

/** Cancels from any non-terminal phase. */
export const cancelCore = (
  store: Store,
  e: Exec,
  reason: string,
  source: string,
  now: number,
  publish: boolean
): void => {
  if (source !== "worker") leaseEndsElsewhere(store, e)
  e.cancellationReason = reason
  e.cancelledBy = source
  finish(store, e, "cancelled", now, {
    attempt: "ended_cancelled",
    streamReason: "attempt_cancelled",
    failureReason: `cancelled: ${reason}`,
    suspensionReason: "cancelled",
    runReason: reason,
    publish
  })
}

/** The retention of a terminal execution: `streamPolicy.retentionTtlMs`, else 24 h. */
export const retentionOf = (e: Exec): number => {
  return e.policy?.streamPolicy?.retentionTtlMs ?? DEFAULT_RETENTION_MS
}
