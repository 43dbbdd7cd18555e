/**
 * The state helpers every area of the in-memory engine shares: the state transition (which feeds
 * the claimable index), the lease, the delayed index and the lease ladder.
 */
import { Either } from "effect"
import { type EngineError, executionNotActive, notFound, state as stateError } from "../../EngineError.js"
import * as M from "../../Model.js"
import { MinHeap } from "./heap.js"
import { noteTransition } from "./events.js"
import { endRun } from "./history.js"
import { laneMoved } from "./lanes.js"
import type { Exec } from "./state.js"
import { type Store, streamKey } from "./store.js"

export type R<A> = Either.Either<A, EngineError>
export const ok = Either.right
export const err = <A = never>(e: EngineError): R<A> => Either.left(e)

export const DAY_MS = 86_400_000

/** The claim order of `e` in the claimable index: higher priority first, then older first. */
export const score = (e: Exec): number => -(e.priority * 1_000_000_000_000) + e.createdAt

interface StateChange {
  readonly phase: M.LifecyclePhase
  readonly ownership: M.OwnershipState
  readonly eligibility: M.EligibilityState
  readonly blockingReason: M.BlockingReason
  readonly blockingDetail: string
  readonly outcome?: M.TerminalOutcome
  readonly attemptState: M.AttemptState
}

export const transition = (store: Store, e: Exec, c: StateChange, now: number): void => {
  const before = { phase: e.phase, ownership: e.ownership, publicState: e.publicState }
  e.phase = c.phase
  e.ownership = c.ownership
  e.eligibility = c.eligibility
  e.blockingReason = c.blockingReason
  e.blockingDetail = c.blockingDetail
  e.outcome = c.outcome ?? "none"
  e.attemptState = c.attemptState
  const from = e.publicState
  e.publicState = M.derivePublicState(e.phase, e.eligibility, e.outcome)
  laneMoved(store, e, from)
  e.lastMutationAt = now
  noteTransition(store, e, before, now)
  if (isClaimable(e)) {
    pushClaimable(store, e)
    store.onLaneWake(e.laneId)
  }
}

/** Tells the holder of `e`'s lease, if any, that its lease is ending by another hand. */
export const leaseEndsElsewhere = (store: Store, e: Exec): void => {
  if (e.phase === "active" && e.ownership === "leased" && e.workerInstanceId !== undefined) {
    store.onLeaseEnded(e.workerInstanceId, e.id)
  }
}

export const clearLease = (e: Exec): void => {
  e.leaseId = undefined
  e.workerId = undefined
  e.workerInstanceId = undefined
  e.leaseExpiresAt = undefined
  e.leaseLastRenewedAt = undefined
  e.attemptDeadlineAt = undefined
}

/**
 * Drops the lease expiries at the head of the index whose lease ended (lazy deletion, done at once
 * for the oldest: executions mostly end in the order they were claimed, and the expiry pass would
 * skip these entries alone, later and after they had aged out of the young generation).
 */
export const dropEndedLeaseExpiries = (store: Store): void => {
  const heap = store.leaseExpiries
  for (;;) {
    const top = heap.peek()
    if (top === undefined) return
    // the expiry pass's test of a live entry (maintenance.ts, expireLeases), on the execution the
    // entry was pushed for: no lookup by id (an execution is deleted only once terminal, and one
    // created again under its id pushes entries of its own)
    const e = top.value
    if (e.phase === "active" && e.ownership === "leased" && e.leaseExpiresAt === top.score) return
    heap.pop()
  }
}

export const isClaimable = (e: Exec): boolean => {
  if (e.phase === "runnable") {
    return e.eligibility === "eligible_now" &&
      (e.attemptState === "pending_first_attempt" || e.attemptState === "pending_retry_attempt" ||
        e.attemptState === "pending_replay_attempt" || e.attemptState === "attempt_interrupted")
  }
  return e.phase === "active" && (e.ownership === "lease_expired_reclaimable" || e.ownership === "lease_revoked")
}

export const pushClaimable = (store: Store, e: Exec): void => {
  let groups = store.claimable.get(e.laneId)
  if (groups === undefined) {
    groups = new Map()
    store.claimable.set(e.laneId, groups)
  }
  let group = groups.get(e.claimGroup)
  if (group === undefined) {
    group = { kind: e.kind, caps: e.requiredCaps, heap: new MinHeap<Exec>() }
    groups.set(e.claimGroup, group)
  }
  group.heap.push(score(e), e.id, e)
}

export const notActiveDetail = (e: Exec) => {
  return executionNotActive({
    terminalOutcome: e.outcome,
    leaseEpoch: String(e.leaseEpoch),
    lifecyclePhase: e.phase,
    attemptId: e.currentAttemptId ?? ""
  })
}

/** Whether `e` has a current attempt (its index `currentAttemptIndex`, its state `attemptLifecycle`). */
export const hasAttempt = (e: Exec): boolean => e.currentAttemptId !== undefined

export const closeStream = (store: Store, e: Exec, attemptIndex: number, reason: string, now: number): void => {
  if (store.streams.size === 0) return
  const s = store.streams.get(streamKey(e.id, attemptIndex))
  if (s !== undefined && s.closedAt === undefined) {
    s.closedAt = now
    s.closedReason = reason
    store.onAppend(streamKey(e.id, attemptIndex))
  }
}

/** The full lease ladder (docs/design/executions.md#the-lease-ladder). */
export const ladder = (
  store: Store,
  e: Exec | undefined,
  p: M.HandlePayload,
  now: number,
  mark: boolean
): EngineError | undefined => {
  if (e === undefined) return notFound("execution")
  if (e.phase !== "active") return notActiveDetail(e)
  if (e.ownership === "lease_revoked") return stateError("LeaseRevoked")
  if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) {
    if (mark && e.ownership === "leased") markExpired(store, e, now)
    return stateError("LeaseExpired")
  }
  if (e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch || e.currentAttemptId !== p.attemptId) {
    return stateError("StaleLease")
  }
  return undefined
}

export const markExpired = (store: Store, e: Exec, now: number): void => {
  endRun(e, "lease_expired", now)
  const attempt = hasAttempt(e)
  transition(store, e, {
    phase: "active",
    ownership: "lease_expired_reclaimable",
    eligibility: "not_applicable",
    blockingReason: "waiting_for_worker",
    blockingDetail: "lease expired, awaiting reclaim",
    attemptState: "attempt_interrupted"
  }, now)
  if (attempt) closeStream(store, e, e.currentAttemptIndex, "lease_expired", now)
}

export const delayTo = (
  store: Store,
  e: Exec,
  delayUntil: number,
  now: number,
  c: { blockingReason: M.BlockingReason; blockingDetail: string; attemptState: M.AttemptState }
): void => {
  e.delayUntil = delayUntil
  transition(store, e, {
    phase: "runnable",
    ownership: "unowned",
    eligibility: "not_eligible_until_time",
    ...c
  }, now)
  store.delayed.push(delayUntil, e.id)
  let lane = store.laneDelays.get(e.laneId)
  if (lane === undefined) store.laneDelays.set(e.laneId, lane = new MinHeap())
  lane.push(delayUntil, e.id)
  store.onLaneWake(e.laneId)
}
