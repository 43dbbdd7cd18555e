/**
 * The lifecycle of an execution: its creation, then what the holder of its lease does with it
 * (renew, progress, complete, fail, cancel, delay, wait for its children).
 */
import { notFound, state as stateError } from "../../EngineError.js"
import { executionPartition } from "../../Ids.js"
import type * as M from "../../Model.js"
import type { CreateExecutionCore, HandleRef } from "../boundary.js"
import { backoffDelayMs } from "../validation.js"
import {
  clearLease,
  closeStream,
  hasAttempt,
  DAY_MS,
  delayTo,
  err,
  ladder,
  markExpired,
  notActiveDetail,
  ok,
  pushClaimable,
  type R,
  transition
} from "./helpers.js"
import { createdEvent, emit, eventsOf, progressEvent } from "./events.js"
import { endRun, recordFailure } from "./history.js"
import { laneAdd } from "./lanes.js"
import { Exec } from "./state.js"
import type { Store } from "./store.js"
import { cancelCore, endAttempt, finish } from "./terminal.js"

const failureCategoryOf = (reason: M.FailureReason, cls: M.FailureClass): string => {
  if (reason.detail !== undefined && reason.detail.length > 0) {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(reason.detail)
    } catch {
      // not UTF-8: fall back to the class
    }
  }
  return cls === "InfraCrash" ? "infra_crash" : cls.toLowerCase()
}

/** The tags of every execution created without any (read-only: reads copy them). */
const NO_TAGS: Record<string, string> = Object.freeze({})

/** The required capabilities of every execution created without any (one array, not one each). */
const NO_CAPS: ReadonlyArray<string> = Object.freeze([])

const hasKeys = (record: Record<string, string>): boolean => {
  for (const _ in record) return true
  return false
}

/** The claim group of `kind` without required capabilities (`Exec.claimGroup`), one string per kind. */
const kindGroup = (store: Store, kind: string): string => {
  let group = store.kindGroups.get(kind)
  if (group === undefined) {
    group = `${kind}\n`
    if (store.kindGroups.size < 10_000) store.kindGroups.set(kind, group)
  }
  return group
}

export const createExecution = (store: Store, now: number, args: CreateExecutionCore): R<M.CreateExecutionResult> => {
  const partition = executionPartition(args.executionId)
  const idemKey = args.idempotencyKey !== undefined && args.idempotencyKey !== "" ?
    `${partition}|${args.namespace}|${args.idempotencyKey}` :
    undefined
  if (idemKey !== undefined) {
    const hit = store.idempotency.get(idemKey)
    if (hit !== undefined && hit.expiresAt > now) return ok({ _tag: "Duplicate", executionId: hit.executionId })
  }
  if (store.executions.has(args.executionId)) return ok({ _tag: "Duplicate", executionId: args.executionId })
  const delayed = args.delayUntil !== undefined && args.delayUntil > now
  const caps = args.requiredCapabilities
  const e = new Exec({
    events: eventsOf(store, args.executionId),
    id: args.executionId,
    namespace: args.namespace,
    laneId: args.laneId,
    kind: args.executionKind,
    partition,
    creatorIdentity: args.creatorIdentity,
    priority: args.priority,
    requiredCaps: caps.length === 0 ? NO_CAPS : caps,
    claimGroup: caps.length === 0 ? kindGroup(store, args.executionKind) : `${args.executionKind}\n${caps.join(",")}`,
    delayUntil: delayed ? args.delayUntil : undefined,
    createdAt: now,
    payload: args.inputPayload,
    payloadEncoding: args.payloadEncoding,
    policy: args.policy,
    tags: hasKeys(args.tags) ? { ...args.tags } : NO_TAGS,
    traceContext: args.traceContext,
    executionDeadlineAt: args.executionDeadlineAt
  })
  store.executions.set(e.id, e)
  store.lanes.add(e.laneId)
  laneAdd(store, e)
  e.created = emit(store, e, createdEvent(e, now))
  if (delayed) {
    delayTo(store, e, args.delayUntil!, now, {
      blockingReason: "waiting_for_delay",
      blockingDetail: `delayed until ${args.delayUntil}`,
      attemptState: "pending_first_attempt"
    })
  } else {
    pushClaimable(store, e)
    store.onLaneWake(e.laneId)
  }
  if (e.executionDeadlineAt !== undefined) store.deadlines.push(e.executionDeadlineAt, e.id)
  if (idemKey !== undefined) {
    store.idempotency.set(idemKey, { executionId: e.id, expiresAt: now + (args.policy?.dedupWindowMs ?? DAY_MS) })
  }
  return ok({ _tag: "Created", executionId: e.id, publicState: e.publicState })
}

export const renew = (store: Store, now: number, h: HandleRef): R<M.LeaseRenewal> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "active") return err(notActiveDetail(e))
  if (e.ownership === "lease_revoked" || e.leaseRevokedAt !== undefined) return err(stateError("LeaseRevoked"))
  if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) {
    if (e.ownership === "leased") markExpired(store, e, now)
    return err(stateError("LeaseExpired"))
  }
  if (
    e.currentAttemptIndex !== p.attemptIndex || e.currentAttemptId !== p.attemptId || e.leaseId !== p.leaseId ||
    e.leaseEpoch !== p.leaseEpoch
  ) return err(stateError("StaleLease"))
  e.leaseExpiresAt = now + p.leaseTtlMs
  e.leaseLastRenewedAt = now
  e.lastMutationAt = now
  store.leaseExpiries.push(e.leaseExpiresAt, e.id, e)
  return ok({ expiresAtMs: e.leaseExpiresAt, leaseEpoch: p.leaseEpoch })
}

export const progress = (
  store: Store,
  now: number,
  h: HandleRef,
  percent: number | undefined,
  message: string | undefined
): R<void> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "active") return err(notActiveDetail(e))
  if (e.ownership === "lease_revoked") return err(stateError("LeaseRevoked"))
  if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) return err(stateError("LeaseExpired"))
  if (e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch) return err(stateError("StaleLease"))
  e.progressUpdatedAt = now
  e.lastMutationAt = now
  if (percent !== undefined) e.progressPct = percent
  if (message !== undefined) e.progressMessage = message
  emit(store, e, progressEvent(e, now))
  return ok(undefined)
}

export const complete = (store: Store, now: number, h: HandleRef, payload: Uint8Array | undefined): R<void> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  const failure = ladder(store, e, p, now, true)
  if (failure !== undefined) {
    const d = failure._tag === "Contention" ? failure.notActive : undefined
    if (
      d !== undefined && d.terminalOutcome === "success" && d.leaseEpoch === String(p.leaseEpoch) &&
      d.attemptId === p.attemptId
    ) return ok(undefined)
    return err(failure)
  }
  const x = e!
  if (payload !== undefined && payload.length > 0) x.result = payload
  finish(store, x, "success", now, { attempt: "ended_success", streamReason: "attempt_success", publish: true })
  return ok(undefined)
}

export const fail = (
  store: Store,
  now: number,
  h: HandleRef,
  reason: M.FailureReason,
  cls: M.FailureClass
): R<M.FailOutcome> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  const failure = ladder(store, e, p, now, true)
  if (failure !== undefined) {
    const d = failure._tag === "Contention" ? failure.notActive : undefined
    if (d !== undefined && d.leaseEpoch === String(p.leaseEpoch)) {
      if (d.lifecyclePhase === "terminal" && d.terminalOutcome === "failed" && d.attemptId === p.attemptId) {
        return ok({ _tag: "TerminalFailed" })
      }
      if (d.lifecyclePhase === "runnable") return ok({ _tag: "RetryScheduled", delayUntil: 0 })
    }
    return err(failure)
  }
  const x = e!
  const category = failureCategoryOf(reason, cls)
  recordFailure(x, reason.message, cls, category, now)
  const retry = x.policy?.retryPolicy
  const categories = retry?.retryableCategories ?? []
  const retries = retry !== undefined && x.retryCount < (retry.maxRetries ?? 3) && cls !== "Permanent" &&
    cls !== "Cancelled" && (categories.length === 0 || categories.includes(category))
  if (!retries) {
    finish(store, x, "failed", now, {
      attempt: "ended_failure",
      streamReason: "attempt_failure",
      failureReason: reason.message,
      publish: true
    })
    return ok({ _tag: "TerminalFailed" })
  }
  const attemptIndex = x.currentAttemptIndex
  endRun(x, "retry_scheduled", now, reason.message)
  endAttempt(x, "ended_failure")
  closeStream(store, x, attemptIndex, "attempt_failure", now)
  const delayUntil = now + backoffDelayMs(x.policy, x.retryCount)
  x.retryCount += 1
  x.failureReason = reason.message
  x.currentAttemptId = undefined
  clearLease(x)
  delayTo(store, x, delayUntil, now, {
    blockingReason: "waiting_for_retry_backoff",
    blockingDetail: `retry backoff until ${delayUntil} (attempt ${attemptIndex} failed: ${reason.message})`,
    attemptState: "pending_retry_attempt"
  })
  return ok({ _tag: "RetryScheduled", delayUntil })
}

export const cancel = (store: Store, now: number, h: HandleRef, reason: string): R<void> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase === "terminal") {
    if (e.outcome === "cancelled" && String(e.leaseEpoch) === String(p.leaseEpoch) && e.currentAttemptId === p.attemptId) {
      return ok(undefined)
    }
    return err(notActiveDetail(e))
  }
  if (e.phase === "active") {
    if (e.ownership === "lease_revoked") return err(stateError("LeaseRevoked"))
    if (e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch) return err(stateError("StaleLease"))
  }
  cancelCore(store, e, reason, "worker", now, true)
  return ok(undefined)
}

export const delay = (store: Store, now: number, h: HandleRef, delayUntil: number): R<void> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  const failure = ladder(store, e, p, now, true)
  if (failure !== undefined) return err(failure)
  const x = e!
  endRun(x, "delayed", now)
  if (hasAttempt(x)) x.attemptLifecycle = "suspended"
  clearLease(x)
  delayTo(store, x, delayUntil, now, {
    blockingReason: "waiting_for_delay",
    blockingDetail: `delayed until ${delayUntil}`,
    attemptState: "attempt_interrupted"
  })
  return ok(undefined)
}

export const waitChildren = (store: Store, now: number, h: HandleRef): R<void> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  const failure = ladder(store, e, p, now, true)
  if (failure !== undefined) return err(failure)
  const x = e!
  endRun(x, "waiting_children", now)
  if (hasAttempt(x)) x.attemptLifecycle = "suspended"
  clearLease(x)
  const satisfied = x.group === undefined || x.group.state === "satisfied" || x.unsatisfiedCount === 0
  transition(store, x, {
    phase: "runnable",
    ownership: "unowned",
    eligibility: satisfied ? "eligible_now" : "blocked_by_dependencies",
    blockingReason: satisfied ? "waiting_for_worker" : "waiting_for_children",
    blockingDetail: satisfied ? "" : "waiting for child executions to complete",
    attemptState: "attempt_interrupted"
  }, now)
  return ok(undefined)
}
