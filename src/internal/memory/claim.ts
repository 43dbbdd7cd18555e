/**
 * Claims: a worker takes the best claimable execution of a lane under a new lease (a fresh attempt,
 * a resumed one, or a reclaim after an expired or revoked lease), directly or through a grant.
 */
import { Option } from "effect"
import { contention, notFound } from "../../EngineError.js"
import type { EngineBackend } from "../../EngineBackend.js"
import { partitionKey } from "../../Ids.js"
import { Limits } from "../../Limits.js"
import type * as Ids from "../../Ids.js"
import type * as M from "../../Model.js"
import { makeHandle } from "../handleCodec.js"
import { missingCapabilities } from "../validation.js"
import type { MinHeap } from "./heap.js"
import {
  closeStream,
  hasAttempt,
  err,
  isClaimable,
  ok,
  pushClaimable,
  type R,
  score,
  transition
} from "./helpers.js"
import { recordFailure, startRun } from "./history.js"
import { inputOf } from "./reads.js"
import type { Exec, Grant } from "./state.js"
import type { Store } from "./store.js"
import { finish } from "./terminal.js"

const DEFAULT_MAX_RECLAIMS = 100

const leaseFor = (
  store: Store,
  e: Exec,
  now: number,
  workerId: Ids.WorkerId,
  workerInstanceId: Ids.WorkerInstanceId,
  ttl: number,
  leaseId: Ids.LeaseId
): void => {
  e.leaseId = leaseId
  e.leaseEpoch += 1
  e.workerId = workerId
  e.workerInstanceId = workerInstanceId
  e.leaseExpiresAt = now + ttl
  e.leaseLastRenewedAt = undefined
  e.leaseRevokedAt = undefined
  e.delayUntil = undefined
  store.grants.delete(e.id)
  transition(store, e, {
    phase: "active",
    ownership: "leased",
    eligibility: "not_applicable",
    blockingReason: "none",
    blockingDetail: "",
    attemptState: "running_attempt"
  }, now)
  store.leaseExpiries.push(e.leaseExpiresAt, e.id, e)
}

const armAttemptTimeout = (store: Store, e: Exec, now: number, remaining?: number): void => {
  const ms = remaining ?? e.policy?.timeoutPolicy?.attemptTimeoutMs
  if (ms !== undefined && ms > 0) {
    e.attemptDeadlineAt = now + ms
    store.attemptTimeouts.push(e.attemptDeadlineAt, e.id)
  }
}

const newAttempt = (e: Exec, now: number, attemptId: Ids.AttemptId): void => {
  e.attemptLifecycle = "started"
  e.currentAttemptIndex = e.totalAttemptCount
  e.currentAttemptId = attemptId
  e.totalAttemptCount += 1
  if (e.startedAt === undefined) e.startedAt = now
}

const handleFor = (store: Store, e: Exec, kind: M.HandleKind, lane: Ids.LaneId, ttl: number): M.Handle => {
  return makeHandle(store.label, kind, {
    executionId: e.id,
    attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex,
    attemptId: e.currentAttemptId!,
    leaseId: e.leaseId!,
    leaseEpoch: e.leaseEpoch as Ids.LeaseEpoch,
    leaseTtlMs: ttl,
    laneId: lane,
    workerInstanceId: e.workerInstanceId!
  })
}

const maxReclaims = (e: Exec): number => {
  return e.policy?.maxReclaimCount ?? e.policy?.timeoutPolicy?.maxReclaimCount ?? DEFAULT_MAX_RECLAIMS
}

/**
 * Takes `e` under a new lease: a fresh attempt, the interrupted attempt
 * again (resumed), or a new attempt after an expired or revoked lease
 * (reclaim). Returns `undefined` when the reclaim limit turned it terminal.
 */
const takeCandidate = (
  store: Store,
  e: Exec,
  now: number,
  args: M.ClaimArgs,
  ids: { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
): M.Handle | undefined => {
  const { workerId, workerInstanceId, leaseTtlMs } = args.policy
  if (e.phase === "active") {
    if (e.leaseReclaimCount >= maxReclaims(e)) {
      recordFailure(e, "max_reclaims_exceeded", "InfraCrash", "infra_crash", now)
      finish(store, e, "failed", now, {
        attempt: "ended_failure",
        streamReason: "reclaimed",
        failureReason: "max_reclaims_exceeded",
        publish: true
      })
      return undefined
    }
    if (hasAttempt(e)) closeStream(store, e, e.currentAttemptIndex, "reclaimed", now)
    e.leaseReclaimCount += 1
    newAttempt(e, now, ids.attemptId)
    leaseFor(store, e, now, workerId, workerInstanceId, leaseTtlMs, ids.leaseId)
    startRun(e, "reclaim", now)
    armAttemptTimeout(store, e, now)
    return handleFor(store, e, "fresh", args.lane, leaseTtlMs)
  }
  if (e.attemptState === "attempt_interrupted") {
    if (hasAttempt(e)) e.attemptLifecycle = "started"
    leaseFor(store, e, now, workerId, workerInstanceId, leaseTtlMs, ids.leaseId)
    startRun(e, "resumed", now)
    armAttemptTimeout(store, e, now)
    return handleFor(store, e, "resumed", args.lane, leaseTtlMs)
  }
  const type: M.AttemptRunKind = e.attemptState === "pending_retry_attempt" ?
    "retry" :
    e.attemptState === "pending_replay_attempt" ?
    "replay" :
    "initial"
  newAttempt(e, now, ids.attemptId)
  leaseFor(store, e, now, workerId, workerInstanceId, leaseTtlMs, ids.leaseId)
  startRun(e, type, now)
  armAttemptTimeout(store, e, now)
  return handleFor(store, e, "fresh", args.lane, leaseTtlMs)
}

const liveGrant = (store: Store, id: Ids.ExecutionId, now: number): Grant | undefined => {
  const g = store.grants.get(id)
  if (g === undefined) return undefined
  if (g.expiresAt <= now) {
    store.grants.delete(id)
    return undefined
  }
  return g
}

/** One group of a lane's claimable index (`Store.claimable`). */
type Group = { readonly kind: string; readonly caps: ReadonlyArray<string>; readonly heap: MinHeap<Exec> }

/**
 * The claimable candidates of `lane` a worker may take (its capabilities cover the candidate's;
 * its kind is one of `kinds`, when given), best first: each `next()` takes the best one off its
 * heap. The groups the worker may take are picked once, and again when the lane gains a group.
 */
class Candidates {
  private eligible: Array<Group> = []
  /** The number of the lane's groups when `eligible` was picked (groups are never removed). */
  private seen = -1

  constructor(
    readonly store: Store,
    readonly lane: Ids.LaneId,
    readonly tokens: ReadonlyArray<string>,
    readonly kinds: ReadonlyArray<string> | undefined,
    readonly now: number,
    readonly workerId?: Ids.WorkerId
  ) {}

  next(): Exec | undefined {
    const { store, lane } = this
    const groups = store.claimable.get(lane)
    if (groups === undefined) return undefined
    if (groups.size !== this.seen) {
      this.seen = groups.size
      this.eligible = []
      for (const group of groups.values()) {
        if (this.kinds !== undefined && !this.kinds.includes(group.kind)) continue
        if (missingCapabilities(group.caps, this.tokens).length > 0) continue
        this.eligible.push(group)
      }
    }
    let skipped: Array<{ heap: MinHeap<Exec>; score: number; key: string; e: Exec }> | undefined
    let bestHeap: MinHeap<Exec> | undefined
    let best: Exec | undefined
    let bestScore = 0
    for (const group of this.eligible) {
      const heap = group.heap
      for (;;) {
        const top = heap.peek()
        if (top === undefined) break
        // a stale entry (lazy deletion): the execution moved on since it was pushed (a deleted
        // execution is terminal; one created again under its id has entries of its own)
        const e = top.value
        if (e.laneId !== lane || !isClaimable(e) || score(e) !== top.score) {
          heap.pop()
          continue
        }
        const g = store.grants.size === 0 ? undefined : liveGrant(store, e.id, this.now)
        if (g !== undefined && g.workerId !== this.workerId) {
          heap.pop()
          ;(skipped ??= []).push({ heap, score: top.score, key: top.key, e })
          continue
        }
        if (best === undefined || top.score < bestScore) {
          bestHeap = heap
          best = e
          bestScore = top.score
        }
        break
      }
    }
    if (bestHeap !== undefined) bestHeap.pop()
    if (skipped !== undefined) for (const s of skipped) s.heap.push(s.score, s.key, s.e)
    return best
  }
}

/**
 * Claims until `max` executions or the lane runs out, one `ids()` per claim: each claimed
 * execution's handle and execution, as `take` makes its entry of the reply (claimMany,
 * claimWithInputs).
 */
const claimUpTo = <A>(
  store: Store,
  now: number,
  args: M.ClaimArgs,
  max: number,
  ids: () => { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId },
  take: (handle: M.Handle, e: Exec) => A
): Array<A> => {
  const claimed: Array<A> = []
  const candidates = new Candidates(store, args.lane, args.capabilities.tokens, args.kinds, now, args.policy.workerId)
  while (claimed.length < max) {
    const next = ids()
    for (;;) {
      const e = candidates.next()
      if (e === undefined) return claimed
      const handle = takeCandidate(store, e, now, args, next)
      if (handle !== undefined) {
        claimed.push(take(handle, e))
        break
      }
    }
  }
  return claimed
}

const handleOnly = (handle: M.Handle): M.Handle => handle

/** Claims until `max` handles or the lane runs out. */
export const claimMany = (
  store: Store,
  now: number,
  args: M.ClaimArgs,
  max: number,
  ids: () => { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
): R<ReadonlyArray<M.Handle>> => ok(claimUpTo(store, now, args, max, ids, handleOnly))

/**
 * `claimMany` with each claimed execution's input: the inputs total at most `Limits.batchBytes`,
 * a claim past that comes without (completeAndClaim).
 */
export const claimWithInputs = (
  store: Store,
  now: number,
  args: M.ClaimArgs,
  max: number,
  ids: () => { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
): R<ReadonlyArray<EngineBackend.ClaimedWork>> => {
  let bytes = 0
  return ok(claimUpTo(store, now, args, max, ids, (handle, e): EngineBackend.ClaimedWork => {
    bytes += e.payload.length
    return { handle, input: bytes > Limits.batchBytes ? Option.none() : Option.some(inputOf(e)) }
  }))
}

export const claim = (
  store: Store,
  now: number,
  args: M.ClaimArgs,
  ids: { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
): R<Option.Option<M.Handle>> => {
  const candidates = new Candidates(store, args.lane, args.capabilities.tokens, args.kinds, now, args.policy.workerId)
  for (;;) {
    const e = candidates.next()
    if (e === undefined) return ok(Option.none())
    const handle = takeCandidate(store, e, now, args, ids)
    if (handle !== undefined) return ok(Option.some(handle))
  }
}

export const claimForWorker = (
  store: Store,
  now: number,
  args: M.ClaimForWorkerArgs,
  grantKey: string
): R<M.ClaimForWorkerOutcome> => {
  const skipped: Array<Exec> = []
  let found: Exec | undefined
  const candidates = new Candidates(store, args.laneId, args.workerCapabilities, args.kinds, now, args.workerId)
  for (;;) {
    const e = candidates.next()
    if (e === undefined) break
    if (budgetBlocked(store, e)) {
      skipped.push(e)
      continue
    }
    found = e
    break
  }
  for (const e of skipped) pushClaimable(store, e)
  if (found === undefined) return ok({ _tag: "NoWork" })
  pushClaimable(store, found)
  const grant: Grant = { executionId: found.id, workerId: args.workerId, grantKey, expiresAt: now + args.grantTtlMs }
  store.grants.set(found.id, grant)
  return ok({
    _tag: "Granted",
    grant: {
      executionId: found.id,
      partitionKey: partitionKey("Flow", found.partition),
      grantKey,
      expiresAtMs: grant.expiresAt
    }
  })
}

const budgetBlocked = (store: Store, e: Exec): boolean => {
  for (const id of e.policy?.budgetIds ?? []) {
    const b = store.budgets.get(id)
    if (b === undefined) continue
    for (const [dim, hard] of b.hard) if (hard > 0 && (b.usage.get(dim) ?? 0) >= hard) return true
  }
  return false
}

const resumedClaim = (
  store: Store,
  e: Exec,
  now: number,
  lane: Ids.LaneId,
  workerId: Ids.WorkerId,
  workerInstanceId: Ids.WorkerInstanceId,
  ttl: number,
  leaseId: Ids.LeaseId,
  remainingAttemptTimeoutMs: number | undefined
): M.Handle => {
  if (hasAttempt(e)) e.attemptLifecycle = "started"
  leaseFor(store, e, now, workerId, workerInstanceId, ttl, leaseId)
  startRun(e, "resumed", now)
  if (remainingAttemptTimeoutMs !== undefined && remainingAttemptTimeoutMs > 0) {
    armAttemptTimeout(store, e, now, remainingAttemptTimeoutMs)
  }
  return handleFor(store, e, "resumed", lane, ttl)
}

export const claimResumedExecution = (
  store: Store,
  now: number,
  args: M.ClaimResumedExecutionArgs
): R<M.ClaimResumedExecutionResult> => {
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "runnable") return err(contention("ExecutionNotLeaseable"))
  if (e.attemptState !== "attempt_interrupted") return err(contention("NotAResumedExecution"))
  const g = store.grants.get(e.id)
  if (g === undefined || g.workerId !== args.workerId) return err(contention("InvalidClaimGrant"))
  if (g.expiresAt <= now) {
    store.grants.delete(e.id)
    return err(contention("ClaimGrantExpired"))
  }
  const handle = resumedClaim(store, 
    e,
    now,
    args.laneId,
    args.workerId,
    args.workerInstanceId,
    args.leaseTtlMs,
    args.leaseId,
    args.remainingAttemptTimeoutMs
  )
  return ok({
    _tag: "Claimed",
    claimed: {
      executionId: e.id,
      leaseId: args.leaseId,
      leaseEpoch: e.leaseEpoch as Ids.LeaseEpoch,
      attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex,
      attemptId: e.currentAttemptId!,
      leaseExpiresAt: e.leaseExpiresAt!
    },
    handle
  })
}

export const claimFromReclaim = (
  store: Store,
  now: number,
  token: M.ReclaimToken,
  leaseId: Ids.LeaseId
): R<Option.Option<M.Handle>> => {
  const e = store.executions.get(token.grant.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "runnable" || e.attemptState !== "attempt_interrupted") return ok(Option.none())
  const g = store.grants.get(e.id)
  if (g === undefined || g.workerId !== token.workerId || g.grantKey !== token.grant.grantKey) return ok(Option.none())
  if (g.expiresAt <= now) {
    store.grants.delete(e.id)
    return ok(Option.none())
  }
  return ok(Option.some(resumedClaim(store, 
    e,
    now,
    token.grant.laneId,
    token.workerId,
    token.workerInstanceId,
    token.leaseTtlMs,
    leaseId,
    undefined
  )))
}
