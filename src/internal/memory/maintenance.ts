/**
 * The maintenance passes: each drains the timers that came due (lease expiries, delays, attempt and
 * execution deadlines, suspension and waitpoint timeouts, budget resets, retention) in bounded
 * batches, plus the dependency safety net and the flow-cancel backlog.
 */
import type * as Ids from "../../Ids.js"
import { resetBudgetCore } from "./budgets.js"
import { drainFlow, resolveLate } from "./flows.js"
import type { MinHeap } from "./heap.js"
import { keepEvents, trimEvents } from "./events.js"
import { leaseEndsElsewhere, markExpired, ok, type R, transition } from "./helpers.js"
import { recordFailure } from "./history.js"
import { laneRemove } from "./lanes.js"
import type { Exec } from "./state.js"
import { type Store, streamKey } from "./store.js"
import { closeSuspension, finish, retentionOf } from "./terminal.js"

export interface PassCount {
  readonly processed: number
  readonly more: boolean
  /** When the pass's next timer is due (it may find that timer stale then). */
  readonly nextDueAt?: number | undefined
}

export const drainHeap = <V>(
  heap: MinHeap<V>,
  now: number,
  batch: number,
  apply: (key: string, score: number) => boolean
): PassCount => {
  let processed = 0
  for (;;) {
    const top = heap.peek()
    if (top === undefined) return { processed, more: false }
    if (top.score > now) return { processed, more: false, nextDueAt: top.score }
    if (processed >= batch) return { processed, more: true }
    heap.pop()
    if (apply(top.key, top.score)) processed++
  }
}

export const expireLeases = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.leaseExpiries, now, batch, (key, at) => {
    const e = store.executions.get(key as Ids.ExecutionId)
    if (e === undefined || e.phase !== "active" || e.ownership !== "leased" || e.leaseExpiresAt !== at) return false
    markExpired(store, e, now)
    return true
  }))
}

/** Whether `key` is still delayed until `at`. */
export const isDelayedAt = (store: Store, key: string, at: number): boolean => {
  const e = store.executions.get(key as Ids.ExecutionId)
  return e !== undefined && e.phase === "runnable" && e.eligibility === "not_eligible_until_time" && e.delayUntil === at
}

/** Makes delayed `key` eligible if it is still delayed until `at`. */
export const promote = (store: Store, key: string, at: number, now: number): boolean => {
  if (!isDelayedAt(store, key, at)) return false
  const e = store.executions.get(key as Ids.ExecutionId)!
  e.delayUntil = undefined
  transition(store, e, {
    phase: "runnable",
    ownership: "unowned",
    eligibility: "eligible_now",
    blockingReason: "waiting_for_worker",
    blockingDetail: "",
    attemptState: e.attemptState
  }, now)
  return true
}

export const promoteDelayed = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.delayed, now, batch, (key, at) => promote(store, key, at, now)))
}

export const expireAttempts = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.attemptTimeouts, now, batch, (key, at) => {
    const e = store.executions.get(key as Ids.ExecutionId)
    if (e === undefined || e.phase !== "active" || e.attemptDeadlineAt !== at) return false
    leaseEndsElsewhere(store, e)
    recordFailure(e, "attempt_timeout", "Timeout", "timeout", now)
    finish(store, e, "expired", now, {
      attempt: "ended_failure",
      streamReason: "expired",
      failureReason: "attempt_timeout",
      publish: true
    })
    return true
  }))
}

export const expireExecutions = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.deadlines, now, batch, (key, at) => {
    const e = store.executions.get(key as Ids.ExecutionId)
    if (e === undefined || e.phase === "terminal" || e.executionDeadlineAt !== at) return false
    leaseEndsElsewhere(store, e)
    recordFailure(e, "execution_deadline", "Timeout", "timeout", now)
    finish(store, e, "expired", now, {
      attempt: "ended_failure",
      streamReason: "expired",
      failureReason: "execution_deadline",
      suspensionReason: "expired:execution_deadline",
      publish: true
    })
    return true
  }))
}

export const expireSuspensions = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.suspensionTimeouts, now, batch, (key, at) => {
    const e = store.executions.get(key as Ids.ExecutionId)
    const s = e?.suspension
    if (e === undefined || s === undefined || e.phase !== "suspended" || s.closedAt !== undefined || s.timeoutAt !== at) {
      return false
    }
    const behavior = s.timeoutBehavior
    const reason = `timed_out_${behavior === "auto_resume" ? "auto_resume_with_timeout_signal" : behavior}`
    switch (behavior) {
      case "fail":
      case "cancel":
      case "expire": {
        const outcome = behavior === "fail" ? "failed" : behavior === "cancel" ? "cancelled" : "expired"
        if (outcome === "cancelled") {
          e.cancellationReason = "suspension_timeout"
          e.cancelledBy = "system_timeout_policy"
        } else {
          recordFailure(e, `suspension_timeout:${behavior}`, "Timeout", "timeout", now)
        }
        finish(store, e, outcome, now, {
          attempt: behavior === "cancel" ? "ended_cancelled" : "ended_failure",
          streamReason: "suspension_timeout",
          failureReason: `suspension_timeout:${behavior}`,
          suspensionReason: reason,
          publish: true
        })
        return true
      }
      case "auto_resume":
      case "auto_resume_with_timeout_signal":
        closeSuspension(store, e, reason, now)
        transition(store, e, {
          phase: "runnable",
          ownership: "unowned",
          eligibility: "eligible_now",
          blockingReason: "waiting_for_worker",
          blockingDetail: "",
          attemptState: "attempt_interrupted"
        }, now)
        return true
      case "escalate":
        s.timeoutAt = undefined
        s.reasonCode = "waiting_for_operator_review"
        transition(store, e, {
          phase: "suspended",
          ownership: "unowned",
          eligibility: "not_applicable",
          blockingReason: "paused_by_operator",
          blockingDetail: `suspension escalated: timeout at ${at}`,
          attemptState: e.attemptState
        }, now)
        return true
    }
  }))
}

export const expirePendingWaitpoints = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.pendingExpiries, now, batch, (key, at) => {
    const wp = store.waitpoints.get(key as Ids.WaitpointId)
    if (wp === undefined || wp.state !== "pending" || wp.expiresAt !== at) return false
    wp.state = "expired"
    wp.closedAt = now
    wp.closeReason = "expired"
    return true
  }))
}

/**
 * The safety net of inline resolution (docs/design/flows.md#the-reconcile-pass): every member
 * blocked by dependencies has each unresolved dependency whose upstream is terminal resolved, by
 * its dependency record (staged edge or not). Members that are not blocked are left alone. One per
 * dependency resolved.
 */
export const reconcileDependencies = (store: Store, now: number, batch: number): R<PassCount> => {
  let processed = 0
  for (const f of store.flows.values()) {
    for (const childId of f.members) {
      const child = store.executions.get(childId)
      if (child === undefined || child.phase !== "runnable" || child.eligibility !== "blocked_by_dependencies") continue
      for (const dep of [...(child.deps?.values() ?? [])]) {
        if (dep.state !== "unsatisfied") continue
        const up = store.executions.get(dep.upstream)
        if (up === undefined || up.phase !== "terminal" || up.outcome === "none") continue
        if (processed >= batch) return ok({ processed, more: true })
        resolveLate(store, now, f.id, child, dep)
        processed++
      }
    }
  }
  return ok({ processed, more: false })
}

export const drainCancelBacklog = (store: Store, now: number, batch: number): R<PassCount> => {
  let processed = 0
  for (const id of [...store.cancelBacklog]) {
    const f = store.flows.get(id)
    if (f === undefined) {
      store.cancelBacklog.delete(id)
      continue
    }
    if (f.backlogDueAt !== undefined && f.backlogDueAt > now) continue
    if (processed >= batch) return ok({ processed, more: true })
    processed += drainFlow(store, f, now, batch - processed)
  }
  return ok({ processed, more: [...store.cancelBacklog].some((id) => (store.flows.get(id)?.backlogDueAt ?? 0) <= now) })
}

/**
 * Deletes terminal executions outside flows whose retention ended (see `Maintenance`): the
 * execution and everything it owns. Dedup records past their window (create idempotency,
 * suspend, signal and usage dedup) and events older than `Limits.eventRetentionMs` go too; they
 * are not counted.
 */
export const trimRetention = (store: Store, now: number, batch: number): R<PassCount> => {
  dropExpiredDedup(store, now)
  // events past their retention, not counted either (up to max(1 000, 10 × batch) a pass)
  trimEvents(store, now, Math.max(1000, 10 * batch))
  return ok(drainHeap(store.retentionDue, now, batch, (key) => {
    const e = store.executions.get(key as Ids.ExecutionId)
    if (e === undefined || e.phase !== "terminal" || e.flowId !== undefined || e.completedAt === undefined) {
      return false
    }
    // a replayed execution that ended again has a later entry of its own
    if (e.completedAt + retentionOf(e) > now) return false
    deleteExecution(store, e)
    return true
  }))
}

const dropExpiredDedup = (store: Store, now: number): void => {
  const drop = (records: Map<string, { readonly expiresAt: number }>) => {
    for (const [key, r] of records) if (r.expiresAt <= now) records.delete(key)
  }
  drop(store.idempotency)
  drop(store.suspendDedup)
  drop(store.signalDedup)
  for (const b of store.budgets.values()) {
    for (const [key, expiresAt] of b.dedup) if (expiresAt <= now) b.dedup.delete(key)
  }
}

const deleteExecution = (store: Store, e: Exec): void => {
  for (const w of e.waitpointIds ?? []) {
    const wp = store.waitpoints.get(w)
    if (wp === undefined) continue
    for (const sid of wp.signals) store.signals.delete(sid)
    store.waitpoints.delete(w)
  }
  if (store.streams.size > 0) for (let i = 0; i < e.totalAttemptCount; i++) store.streams.delete(streamKey(e.id, i))
  store.grants.delete(e.id)
  keepEvents(store, e)
  store.executions.delete(e.id)
  laneRemove(store, e)
}

export const resetBudgets = (store: Store, now: number, batch: number): R<PassCount> => {
  return ok(drainHeap(store.budgetResets, now, batch, (key, at) => {
    const b = store.budgets.get(key as Ids.BudgetId)
    if (b === undefined || b.nextResetAt !== at) return false
    resetBudgetCore(store, b, now)
    return true
  }))
}
