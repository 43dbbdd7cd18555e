/**
 * The in-memory engine: the reference semantics (docs/design/). Every
 * operation is one synchronous step over the state (so it is atomic in a
 * single-threaded runtime); checks run before writes, so a failed operation
 * writes nothing (the lease ladder's expiry marking excepted: see
 * docs/design/executions.md#the-lease-ladder). Time and fresh ids are passed in by the caller.
 */
import { Either, Option } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import {
  conflict,
  Conflict,
  contention,
  type EngineError,
  executionNotActive,
  invalidInput,
  notFound,
  state as stateError,
  Transport,
  validation
} from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import { DEFAULT_RETENTION_MS } from "../../Maintenance.js"
import { executionPartition, flowPartition, partitionKey } from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { CreateExecutionCore, HandleRef } from "../boundary.js"
import { makeHandle } from "../handleCodec.js"
import { type KeyLookup, mintToken, sameSecret, verifyToken } from "../hmac.js"
import { recordOf } from "../records.js"
import { applyPatch, parsePatch } from "../mergePatch.js"
import { traceParentField } from "../traceContext.js"
import {
  backoffDelayMs,
  bytesOver,
  clampPriority,
  conditionKeys,
  missingCapabilities,
  overLimit,
  parseStreamId
} from "../validation.js"
import { type HeapEntry, MinHeap } from "./heap.js"
import type {
  Attempt,
  AttemptLifecycle,
  AttemptType,
  Budget,
  Dependency,
  EdgeGroup,
  Exec,
  Flow,
  Grant,
  Keystore,
  SignalRecord,
  Stream,
  StreamEntry,
  Suspension,
  Waitpoint
} from "./state.js"

type R<A> = Either.Either<A, EngineError>
const ok = Either.right
const err = <A = never>(e: EngineError): R<A> => Either.left(e)

const DAY_MS = 86_400_000
const GRANT_TTL_MS = 5_000
const MAX_DURABLE_ENTRIES = 10_000
const SUMMARY_TAIL_ENTRIES = 64
const CASCADE_LIMIT = 10_000
/** A flow cancellation cancels at most this many members inline; the backlog pass does the rest. */
export const INLINE_CANCEL_LIMIT = 1_000
const CYCLE_WALK_LIMIT = 1_000
const CANCEL_BACKLOG_GRACE_MS = 30_000
const DEFAULT_MAX_RECLAIMS = 100
const DEFAULT_MAX_REPLAYS = 10
const DEFAULT_MAX_SIGNALS = 10_000
const SUSPEND_DEDUP_MAX_MS = 604_800_000

const BAD_OUTCOMES: ReadonlySet<M.TerminalOutcome> = new Set(["failed", "cancelled", "expired"])

/**
 * A read page of `entries` (in stream order): at most `countLimit` frames and `Limits.readPageFrames`,
 * and it stops before the frame that would take its payload bytes past `Limits.readPageBytes` (never
 * empty). `next` is the first frame the budget left out (not one `countLimit` left out).
 */
const readPage = (entries: Iterable<StreamEntry>, countLimit: number) => {
  const frames: Array<StreamEntry> = []
  let bytes = 0
  let next: string | undefined
  for (const x of entries) {
    if (frames.length >= countLimit) break
    if (frames.length >= Limits.readPageFrames || (frames.length > 0 && bytes + x.size > Limits.readPageBytes)) {
      next = x.id
      break
    }
    frames.push(x)
    bytes += x.size
  }
  return { frames, next }
}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

const score = (e: Exec): number => -(e.priority * 1_000_000_000_000) + e.createdAt

interface StateChange {
  readonly phase: M.LifecyclePhase
  readonly ownership: M.OwnershipState
  readonly eligibility: M.EligibilityState
  readonly blockingReason: M.BlockingReason
  readonly blockingDetail: string
  readonly outcome?: M.TerminalOutcome
  readonly attemptState: M.AttemptState
}

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

/** The outcome of the run a terminal transition ends. */
const RUN_OUTCOME: Record<Exclude<M.TerminalOutcome, "none">, M.AttemptRunOutcome> = {
  success: "completed",
  failed: "failed",
  cancelled: "cancelled",
  expired: "expired",
  skipped: "skipped"
}

/** `reason` cut to `Limits.historyReasonBytes` of UTF-8 at a character boundary. */
export const cutHistoryReason = (reason: string): string => {
  if (reason.length * 3 <= Limits.historyReasonBytes) return reason
  const bytes = encoder.encode(reason)
  if (bytes.length <= Limits.historyReasonBytes) return reason
  let n = Limits.historyReasonBytes
  while (n > 0 && (bytes[n]! & 0xc0) === 0x80) n--
  return decoder.decode(bytes.subarray(0, n))
}

const blockingReasonFor = (reasonCode: string): M.BlockingReason => {
  switch (reasonCode) {
    case "waiting_for_approval":
    case "waiting_for_callback":
    case "waiting_for_tool_result":
    case "paused_by_policy":
      return reasonCode
    case "waiting_for_operator_review":
    case "manual_pause":
      return "paused_by_operator"
    case "paused_by_budget":
      return "waiting_for_budget"
    default:
      return "waiting_for_signal"
  }
}

const matches = (m: M.SignalMatcher | undefined, name: string): boolean =>
  m === undefined || m._tag === "Wildcard" || m.name === name

interface Evaluation {
  readonly satisfied: boolean
  readonly satisfiers: ReadonlyArray<Ids.SignalId>
}

export class MemoryEngine {
  readonly executions = new Map<Ids.ExecutionId, Exec>()
  readonly flows = new Map<Ids.FlowId, Flow>()
  readonly waitpoints = new Map<Ids.WaitpointId, Waitpoint>()
  readonly signals = new Map<Ids.SignalId, SignalRecord>()
  readonly streams = new Map<string, Stream>()
  readonly budgets = new Map<Ids.BudgetId, Budget>()
  readonly quotas = new Map<Ids.QuotaPolicyId, M.CreateQuotaPolicyArgs & { readonly createdAt: number }>()
  readonly grants = new Map<Ids.ExecutionId, Grant>()
  readonly lanes = new Set<Ids.LaneId>()
  readonly keystore: Keystore = { currentKid: undefined, secrets: new Map() }
  readonly idempotency = new Map<string, { readonly executionId: Ids.ExecutionId; readonly expiresAt: number }>()
  readonly suspendDedup = new Map<string, { readonly outcome: M.SuspendOutcome; readonly expiresAt: number }>()
  readonly signalDedup = new Map<string, { readonly signalId: Ids.SignalId; readonly expiresAt: number }>()
  readonly cancelBacklog = new Set<Ids.FlowId>()

  /** lane → required-capabilities key → claimable candidates by score. */
  private readonly claimable = new Map<Ids.LaneId, Map<string, { caps: ReadonlyArray<string>; heap: MinHeap }>>()
  private readonly delayed = new MinHeap()
  /** The `delayed` entries again, per lane (the wake-up timers of the lanes' idle workers). */
  private readonly laneDelays = new Map<Ids.LaneId, MinHeap>()
  private readonly leaseExpiries = new MinHeap()
  private readonly attemptTimeouts = new MinHeap()
  private readonly deadlines = new MinHeap()
  private readonly suspensionTimeouts = new MinHeap()
  private readonly pendingExpiries = new MinHeap()
  private readonly budgetResets = new MinHeap()
  /** Terminal executions outside flows, by the time their retention ends (`trimRetention`). */
  private readonly retentionDue = new MinHeap()

  /** Called with the stream key whenever a frame is appended. */
  onAppend: (streamKey: string) => void = () => {}
  /** Called with a lane whenever an execution becomes claimable there or delayed work is scheduled there. */
  onLaneWake: (lane: Ids.LaneId) => void = () => {}
  /** Called when someone else than its holder ends the lease of an execution (cancel, revoke, timeout). */
  onLeaseEnded: (workerInstanceId: Ids.WorkerInstanceId, executionId: Ids.ExecutionId) => void = () => {}

  constructor(readonly label: M.BackendTag = "memory") {}

  // -------------------------------------------------------------------------
  // State helpers
  // -------------------------------------------------------------------------

  private transition(e: Exec, c: StateChange, now: number): void {
    e.phase = c.phase
    e.ownership = c.ownership
    e.eligibility = c.eligibility
    e.blockingReason = c.blockingReason
    e.blockingDetail = c.blockingDetail
    e.outcome = c.outcome ?? "none"
    e.attemptState = c.attemptState
    e.publicState = M.derivePublicState(e.phase, e.eligibility, e.outcome)
    e.lastTransitionAt = now
    e.lastMutationAt = now
    if (this.isClaimable(e)) {
      this.pushClaimable(e)
      this.onLaneWake(e.laneId)
    }
  }

  /** Tells the holder of `e`'s lease, if any, that its lease is ending by another hand. */
  private leaseEndsElsewhere(e: Exec): void {
    if (e.phase === "active" && e.ownership === "leased" && e.workerInstanceId !== undefined) {
      this.onLeaseEnded(e.workerInstanceId, e.id)
    }
  }

  private clearLease(e: Exec): void {
    e.leaseId = undefined
    e.workerId = undefined
    e.workerInstanceId = undefined
    e.leaseAcquiredAt = undefined
    e.leaseExpiresAt = undefined
    e.leaseLastRenewedAt = undefined
    e.leaseRenewalDeadline = undefined
    e.attemptDeadlineAt = undefined
  }

  /** A claim leased `e`: its attempt history gains a run. */
  private startRun(e: Exec, kind: M.AttemptRunKind, now: number): void {
    const history = e.history ??= []
    history.push({
      attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex,
      kind,
      workerId: e.workerId!,
      workerInstanceId: e.workerInstanceId!,
      startedAt: now,
      outcome: "running"
    })
    if (history.length > Limits.historyRuns) history.shift()
  }

  /** Ends the running run of `e`, when it holds a lease: called before the transition that lets go of it. */
  private endRun(e: Exec, outcome: M.AttemptRunOutcome, now: number, reason?: string): void {
    if (e.phase !== "active" || e.ownership !== "leased") return
    const run = e.history?.[e.history.length - 1]
    if (run === undefined || run.outcome !== "running") return
    run.endedAt = now
    run.outcome = outcome
    if (reason !== undefined && reason !== "") run.reason = cutHistoryReason(reason)
  }

  private recordFailure(e: Exec, reason: string, classification: M.FailureClass, category: string, now: number): void {
    e.lastFailure = { reason, classification, category, at: now }
  }

  private isClaimable(e: Exec): boolean {
    if (e.phase === "runnable") {
      return e.eligibility === "eligible_now" &&
        (e.attemptState === "pending_first_attempt" || e.attemptState === "pending_retry_attempt" ||
          e.attemptState === "pending_replay_attempt" || e.attemptState === "attempt_interrupted")
    }
    return e.phase === "active" && (e.ownership === "lease_expired_reclaimable" || e.ownership === "lease_revoked")
  }

  private pushClaimable(e: Exec): void {
    let groups = this.claimable.get(e.laneId)
    if (groups === undefined) {
      groups = new Map()
      this.claimable.set(e.laneId, groups)
    }
    let group = groups.get(e.capsKey)
    if (group === undefined) {
      group = { caps: e.requiredCaps, heap: new MinHeap() }
      groups.set(e.capsKey, group)
    }
    group.heap.push(score(e), e.id)
  }

  private notActiveDetail(e: Exec) {
    return executionNotActive({
      terminalOutcome: e.outcome,
      leaseEpoch: String(e.leaseEpoch),
      lifecyclePhase: e.phase,
      attemptId: e.currentAttemptId ?? ""
    })
  }

  private currentAttempt(e: Exec): Attempt | undefined {
    return e.currentAttemptId === undefined ? undefined : e.attempts[e.currentAttemptIndex]
  }

  private streamKey(id: Ids.ExecutionId, attemptIndex: number): string {
    return `${id}:${attemptIndex}`
  }

  private closeStream(e: Exec, attemptIndex: number, reason: string, now: number): void {
    const s = this.streams.get(this.streamKey(e.id, attemptIndex))
    if (s !== undefined && s.closedAt === undefined) {
      s.closedAt = now
      s.closedReason = reason
      this.onAppend(this.streamKey(e.id, attemptIndex))
    }
  }

  /** The full lease ladder (docs/design/executions.md#the-lease-ladder). */
  private ladder(e: Exec | undefined, p: M.HandlePayload, now: number, mark: boolean): EngineError | undefined {
    if (e === undefined) return notFound("execution")
    if (e.phase !== "active") return this.notActiveDetail(e)
    if (e.ownership === "lease_revoked") return stateError("LeaseRevoked")
    if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) {
      if (mark && e.ownership === "leased") this.markExpired(e, now)
      return stateError("LeaseExpired")
    }
    if (e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch || e.currentAttemptId !== p.attemptId) {
      return stateError("StaleLease")
    }
    return undefined
  }

  private markExpired(e: Exec, now: number): void {
    this.endRun(e, "lease_expired", now)
    e.leaseExpiredAt = now
    const attempt = this.currentAttempt(e)
    this.transition(e, {
      phase: "active",
      ownership: "lease_expired_reclaimable",
      eligibility: "not_applicable",
      blockingReason: "waiting_for_worker",
      blockingDetail: "lease expired, awaiting reclaim",
      attemptState: "attempt_interrupted"
    }, now)
    if (attempt !== undefined) this.closeStream(e, attempt.index, "lease_expired", now)
  }

  private keyLookup(): KeyLookup {
    return {
      isEmpty: this.keystore.currentKid === undefined,
      secret: (kid) => this.keystore.secrets.get(kid)
    }
  }

  private hmacNotInitialized(): EngineError {
    return new Transport({
      backend: this.label,
      kind: "other",
      retryable: false,
      message: "waitpoint HMAC keystore is empty: seed it with seedWaitpointHmacSecret",
      scriptCode: "hmac_secret_not_initialized"
    })
  }

  private mint(waitpointId: string, key: string, createdAt: number): string | undefined {
    const kid = this.keystore.currentKid
    if (kid === undefined) return undefined
    const secret = this.keystore.secrets.get(kid)!
    return mintToken(kid, secret.secretHex, waitpointId, key, createdAt)
  }

  // -------------------------------------------------------------------------
  // Terminal transitions and flow resolution
  // -------------------------------------------------------------------------

  private endAttempt(e: Exec, st: AttemptLifecycle, now: number, reason?: string, category?: string): void {
    const a = this.currentAttempt(e)
    if (a === undefined || a.state.startsWith("ended") || a.state === "interrupted_reclaimed") return
    a.state = st
    a.endedAt = now
    if (reason !== undefined) a.failureReason = reason
    if (category !== undefined) a.failureCategory = category
  }

  private closeSuspension(e: Exec, reason: string, now: number): void {
    const s = e.suspension
    if (s === undefined || s.closedAt !== undefined) return
    s.closedAt = now
    s.closeReason = reason
    for (const id of [s.waitpointId, ...s.additional.map((w) => w.waitpointId)]) {
      const wp = this.waitpoints.get(id)
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
  private finish(
    e: Exec,
    outcome: Exclude<M.TerminalOutcome, "none">,
    now: number,
    opts: {
      readonly attempt: AttemptLifecycle
      readonly streamReason: string
      readonly failureReason?: string
      readonly failureCategory?: string
      readonly suspensionReason?: string
      /** The reason of the run it ends (default `failureReason`). */
      readonly runReason?: string
      readonly publish: boolean
    }
  ): void {
    this.endRun(e, RUN_OUTCOME[outcome], now, opts.runReason ?? opts.failureReason)
    const attempt = this.currentAttempt(e)
    this.endAttempt(e, opts.attempt, now, opts.failureReason, opts.failureCategory)
    if (attempt !== undefined) this.closeStream(e, attempt.index, opts.streamReason, now)
    this.closeSuspension(e, opts.suspensionReason ?? opts.streamReason, now)
    this.clearLease(e)
    e.completedAt = now
    e.delayUntil = undefined
    // the deadline index lets go of a terminal execution, and a replay does not re-arm it (as the
    // Valkey and Postgres terminal paths, valkey.md ff_complete / ff_replay_execution)
    e.executionDeadlineAt = undefined
    if (opts.failureReason !== undefined) e.failureReason = opts.failureReason
    this.grants.delete(e.id)
    this.transition(e, {
      phase: "terminal",
      ownership: "unowned",
      eligibility: "not_applicable",
      blockingReason: "none",
      blockingDetail: "",
      outcome,
      // attempt_terminal once an attempt exists; else a skip reads none, every other end leaves it
      // unchanged (valkey.md ff_cancel_execution, ff_resolve_dependency)
      attemptState: e.totalAttemptCount > 0 ? "attempt_terminal" : outcome === "skipped" ? "none" : e.attemptState
    }, now)
    if (e.flowId === undefined) this.retentionDue.push(now + this.retentionOf(e), e.id)
    this.afterTerminal(e, outcome, now, opts.publish)
  }

  private afterTerminal(e: Exec, outcome: M.TerminalOutcome, now: number, publish: boolean): void {
    if (e.flowId === undefined) return
    const flow = this.flows.get(e.flowId)
    if (flow === undefined) return
    if (publish) this.resolveFrom(flow, e, outcome, now)
    this.settleFlow(flow, now)
  }

  /** Flow state after members changed: `cancelling` → `cancelled` once no owed member is left. */
  private settleFlow(flow: Flow, now: number): void {
    if (flow.state !== "cancelling") return
    for (const id of flow.owed) {
      if (this.executions.get(id)?.phase === "terminal") flow.owed.delete(id)
    }
    if (flow.owed.size === 0) {
      flow.state = "cancelled"
      flow.lastMutationAt = now
      flow.backlogDueAt = undefined
      this.cancelBacklog.delete(flow.id)
    }
  }

  /**
   * The public state of a flow (docs/guide.md, "Flows that grow while they run"): `cancelling` /
   * `cancelled` once cancelled; else `running` while a member is not terminal, `completed` /
   * `failed` once every member is (failed when one failed, was cancelled or expired), `open` while
   * it has no member (`completed` if it is sealed: nothing can ever run in it).
   */
  private flowState(f: Flow): string {
    if (f.state !== "open") return f.state
    let failed = false
    for (const id of f.members) {
      const m = this.executions.get(id)
      if (m === undefined) continue
      if (m.phase !== "terminal") return "running"
      if (BAD_OUTCOMES.has(m.outcome)) failed = true
    }
    if (f.members.size === 0) return f.sealed ? "completed" : "open"
    return failed ? "failed" : "completed"
  }

  /** Cancelled, cancelling, or sealed with every member terminal: nothing about it can change. */
  private flowFinal(f: Flow): boolean {
    if (f.state !== "open") return true
    if (!f.sealed) return false
    const s = this.flowState(f)
    return s === "completed" || s === "failed"
  }

  /** Why the flow refuses a new member or edge, if it does. */
  private flowClosed(f: Flow): EngineError | undefined {
    if (f.state !== "open") return stateError("FlowAlreadyTerminal")
    if (f.sealed) return stateError("FlowSealed")
    return undefined
  }

  /** Resolves the outgoing edges of `upstream` and cascades (docs/design/flows.md#resolution). */
  private resolveFrom(flow: Flow, upstream: Exec, outcome: M.TerminalOutcome, now: number): void {
    const queue: Array<[Exec, M.TerminalOutcome]> = [[upstream, outcome]]
    let steps = 0
    while (queue.length > 0 && steps < CASCADE_LIMIT) {
      const [up, out] = queue.shift()!
      steps++
      for (const edgeId of flow.outgoing.get(up.id) ?? []) {
        const edge = flow.edges.get(edgeId)!
        const child = this.executions.get(edge.downstreamExecutionId)
        if (child === undefined) continue
        const dep = child.deps?.get(edgeId)
        if (dep === undefined || dep.state !== "unsatisfied") continue
        this.resolveEdge(flow, child, dep, edge, up, out, now, queue)
      }
    }
  }

  private resolveEdge(
    flow: Flow,
    child: Exec,
    dep: Dependency,
    edge: M.EdgeSnapshot | undefined,
    up: Exec,
    outcome: M.TerminalOutcome,
    now: number,
    queue: Array<[Exec, M.TerminalOutcome]>
  ): void {
    const group = child.group!
    child.lastMutationAt = now
    if (outcome === "success") {
      dep.state = "satisfied"
      child.unsatisfiedCount--
      group.succeeded++
      // the reference given when the dependency was applied (the staged edge's when none was given)
      const dataPassingRef = dep.dataPassingRef !== undefined && dep.dataPassingRef !== "" ?
        dep.dataPassingRef :
        edge?.dataPassingRef
      if (dataPassingRef !== undefined && dataPassingRef !== "" && child.phase !== "terminal" && up.result !== undefined) {
        child.payload = up.result
      }
    } else {
      dep.state = "impossible"
      // an all_of join counts a skipped upstream as failed
      if (outcome === "skipped" && group.policy._tag !== "all_of") group.skipped++
      else group.failed++
    }
    if (group.state !== "pending") return
    const { n, succeeded } = group
    const lost = group.failed + group.skipped
    const k = group.policy._tag === "all_of" ? n : group.policy._tag === "any_of" ? 1 : group.policy.k
    if (succeeded >= k && (group.policy._tag !== "all_of" || child.unsatisfiedCount === 0)) {
      group.state = "satisfied"
      if (child.phase === "runnable" && child.eligibility === "blocked_by_dependencies") {
        this.transition(child, {
          phase: "runnable",
          ownership: "unowned",
          eligibility: "eligible_now",
          blockingReason: "waiting_for_worker",
          blockingDetail: "",
          attemptState: child.attemptState === "none" ? "pending_first_attempt" : child.attemptState
        }, now)
      }
      this.cancelSiblings(child, group, "sibling_quorum_satisfied", now, queue)
    } else if (lost > n - k) {
      group.state = "impossible"
      if (child.phase !== "terminal") {
        this.finishQueued(child, "skipped", now, {
          attempt: "ended_cancelled",
          streamReason: "dependency_impossible",
          failureReason: "dependency_impossible",
          publish: true
        }, queue)
      }
      this.cancelSiblings(child, group, "sibling_quorum_impossible", now, queue)
    }
  }

  /** `finish` without recursing into resolution: the caller's queue continues the cascade. */
  private finishQueued(
    e: Exec,
    outcome: Exclude<M.TerminalOutcome, "none">,
    now: number,
    opts: Parameters<MemoryEngine["finish"]>[3],
    queue: Array<[Exec, M.TerminalOutcome]>
  ): void {
    this.finish(e, outcome, now, { ...opts, publish: false })
    if (opts.publish) queue.push([e, outcome])
  }

  /**
   * `cancel_remaining`: the upstreams of `child` still running when its join fired are cancelled
   * by the engine, `cancelled_by` `operator_override` (docs/guide.md, "Joins").
   */
  private cancelSiblings(
    child: Exec,
    group: EdgeGroup,
    reason: "sibling_quorum_satisfied" | "sibling_quorum_impossible",
    now: number,
    queue: Array<[Exec, M.TerminalOutcome]>
  ): void {
    if (group.policy._tag === "all_of" || group.policy.onSatisfied !== "cancel_remaining") return
    for (const dep of child.deps?.values() ?? []) {
      if (dep.state !== "unsatisfied") continue
      const sibling = this.executions.get(dep.upstream)
      if (sibling === undefined || sibling.phase === "terminal") continue
      this.cancelCore(sibling, reason, "operator_override", now, false)
      queue.push([sibling, "cancelled"])
    }
  }

  /** Cancels from any non-terminal phase. */
  private cancelCore(e: Exec, reason: string, source: string, now: number, publish: boolean): void {
    if (source !== "worker") this.leaseEndsElsewhere(e)
    e.cancellationReason = reason
    e.cancelledBy = source
    this.finish(e, "cancelled", now, {
      attempt: "ended_cancelled",
      streamReason: "attempt_cancelled",
      failureReason: `cancelled: ${reason}`,
      suspensionReason: "cancelled",
      runReason: reason,
      publish
    })
  }

  // -------------------------------------------------------------------------
  // Claim
  // -------------------------------------------------------------------------

  private leaseFor(
    e: Exec,
    now: number,
    workerId: Ids.WorkerId,
    workerInstanceId: Ids.WorkerInstanceId,
    ttl: number,
    leaseId: Ids.LeaseId
  ): void {
    e.leaseId = leaseId
    e.leaseEpoch += 1
    e.workerId = workerId
    e.workerInstanceId = workerInstanceId
    e.leaseTtlMs = ttl
    e.leaseAcquiredAt = now
    e.leaseExpiresAt = now + ttl
    e.leaseLastRenewedAt = undefined
    e.leaseRenewalDeadline = now + Math.floor((2 * ttl) / 3)
    e.leaseExpiredAt = undefined
    e.leaseRevokedAt = undefined
    e.leaseRevokeReason = undefined
    e.delayUntil = undefined
    this.grants.delete(e.id)
    this.transition(e, {
      phase: "active",
      ownership: "leased",
      eligibility: "not_applicable",
      blockingReason: "none",
      blockingDetail: "",
      attemptState: "running_attempt"
    }, now)
    this.leaseExpiries.push(e.leaseExpiresAt, e.id)
  }

  private armAttemptTimeout(e: Exec, now: number, remaining?: number): void {
    const ms = remaining ?? e.policy?.timeoutPolicy?.attemptTimeoutMs
    if (ms !== undefined && ms > 0) {
      e.attemptDeadlineAt = now + ms
      this.attemptTimeouts.push(e.attemptDeadlineAt, e.id)
    }
  }

  private newAttempt(e: Exec, now: number, type: AttemptType, attemptId: Ids.AttemptId): Attempt {
    const attempt: Attempt = { index: e.totalAttemptCount, id: attemptId, type, state: "started", startedAt: now }
    e.attempts.push(attempt)
    e.currentAttemptIndex = attempt.index
    e.currentAttemptId = attemptId
    e.totalAttemptCount += 1
    if (e.startedAt === undefined) e.startedAt = now
    e.pendingRetryReason = undefined
    e.pendingReplayReason = undefined
    e.pendingPreviousAttemptIndex = undefined
    return attempt
  }

  private handleFor(e: Exec, kind: M.HandleKind, lane: Ids.LaneId, ttl: number): M.Handle {
    return makeHandle(this.label, kind, {
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

  private maxReclaims(e: Exec): number {
    return e.policy?.maxReclaimCount ?? e.policy?.timeoutPolicy?.maxReclaimCount ?? DEFAULT_MAX_RECLAIMS
  }

  /**
   * Takes `e` under a new lease: a fresh attempt, the interrupted attempt
   * again (resumed), or a new attempt after an expired or revoked lease
   * (reclaim). Returns `undefined` when the reclaim limit turned it terminal.
   */
  private takeCandidate(
    e: Exec,
    now: number,
    args: M.ClaimArgs,
    ids: { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
  ): M.Handle | undefined {
    const { workerId, workerInstanceId, leaseTtlMs } = args.policy
    if (e.phase === "active") {
      if (e.leaseReclaimCount >= this.maxReclaims(e)) {
        this.recordFailure(e, "max_reclaims_exceeded", "InfraCrash", "infra_crash", now)
        this.finish(e, "failed", now, {
          attempt: "ended_failure",
          streamReason: "reclaimed",
          failureReason: "max_reclaims_exceeded",
          publish: true
        })
        return undefined
      }
      const old = this.currentAttempt(e)
      if (old !== undefined && old.state === "started") {
        old.state = "interrupted_reclaimed"
        old.endedAt = now
      }
      if (old !== undefined) this.closeStream(e, old.index, "reclaimed", now)
      e.leaseReclaimCount += 1
      this.newAttempt(e, now, "reclaim", ids.attemptId)
      this.leaseFor(e, now, workerId, workerInstanceId, leaseTtlMs, ids.leaseId)
      this.startRun(e, "reclaim", now)
      this.armAttemptTimeout(e, now)
      return this.handleFor(e, "fresh", args.lane, leaseTtlMs)
    }
    if (e.attemptState === "attempt_interrupted") {
      const a = this.currentAttempt(e)
      if (a !== undefined) a.state = "started"
      this.leaseFor(e, now, workerId, workerInstanceId, leaseTtlMs, ids.leaseId)
      this.startRun(e, "resumed", now)
      this.armAttemptTimeout(e, now)
      return this.handleFor(e, "resumed", args.lane, leaseTtlMs)
    }
    const type: AttemptType = e.attemptState === "pending_retry_attempt" ?
      "retry" :
      e.attemptState === "pending_replay_attempt" ?
      "replay" :
      "initial"
    this.newAttempt(e, now, type, ids.attemptId)
    this.leaseFor(e, now, workerId, workerInstanceId, leaseTtlMs, ids.leaseId)
    this.startRun(e, type, now)
    this.armAttemptTimeout(e, now)
    return this.handleFor(e, "fresh", args.lane, leaseTtlMs)
  }

  private liveGrant(id: Ids.ExecutionId, now: number): Grant | undefined {
    const g = this.grants.get(id)
    if (g === undefined) return undefined
    if (g.expiresAt <= now) {
      this.grants.delete(id)
      return undefined
    }
    return g
  }

  /** The best claimable candidate of `lane` the worker may take, removed from its heap. */
  private nextCandidate(lane: Ids.LaneId, tokens: ReadonlyArray<string>, now: number, workerId?: Ids.WorkerId): Exec | undefined {
    const groups = this.claimable.get(lane)
    if (groups === undefined) return undefined
    const isCurrent = (entry: HeapEntry): boolean => {
      const e = this.executions.get(entry.key as Ids.ExecutionId)
      return e !== undefined && e.laneId === lane && this.isClaimable(e) && score(e) === entry.score
    }
    let skipped: Array<{ heap: MinHeap; score: number; key: string }> | undefined
    let best: { heap: MinHeap; exec: Exec; score: number } | undefined
    for (const group of groups.values()) {
      if (missingCapabilities(group.caps, tokens).length > 0) continue
      for (;;) {
        const top = group.heap.peekValid(isCurrent)
        if (top === undefined) break
        const g = this.grants.size === 0 ? undefined : this.liveGrant(top.key as Ids.ExecutionId, now)
        if (g !== undefined && g.workerId !== workerId) {
          group.heap.pop()
          ;(skipped ??= []).push({ heap: group.heap, score: top.score, key: top.key })
          continue
        }
        if (best === undefined || top.score < best.score) {
          best = { heap: group.heap, exec: this.executions.get(top.key as Ids.ExecutionId)!, score: top.score }
        }
        break
      }
    }
    if (best !== undefined) best.heap.pop()
    if (skipped !== undefined) for (const s of skipped) s.heap.push(s.score, s.key)
    return best?.exec
  }

  /** Claims until `max` handles or the lane runs out; an error after the first claim ends the batch. */
  claimMany(
    now: number,
    args: M.ClaimArgs,
    max: number,
    ids: () => { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
  ): R<ReadonlyArray<M.Handle>> {
    const claimed: Array<M.Handle> = []
    while (claimed.length < max) {
      const r = this.claim(now, args, ids())
      if (Either.isLeft(r)) return claimed.length === 0 ? Either.left(r.left) : ok(claimed)
      if (Option.isNone(r.right)) break
      claimed.push(r.right.value)
    }
    return ok(claimed)
  }

  claim(
    now: number,
    args: M.ClaimArgs,
    ids: { readonly leaseId: Ids.LeaseId; readonly attemptId: Ids.AttemptId }
  ): R<Option.Option<M.Handle>> {
    for (;;) {
      const e = this.nextCandidate(args.lane, args.capabilities.tokens, now, args.policy.workerId)
      if (e === undefined) return ok(Option.none())
      const handle = this.takeCandidate(e, now, args, ids)
      if (handle !== undefined) return ok(Option.some(handle))
    }
  }

  claimForWorker(now: number, args: M.ClaimForWorkerArgs, grantKey: string): R<M.ClaimForWorkerOutcome> {
    const skipped: Array<Exec> = []
    let found: Exec | undefined
    for (;;) {
      const e = this.nextCandidate(args.laneId, args.workerCapabilities, now, args.workerId)
      if (e === undefined) break
      if (this.budgetBlocked(e)) {
        skipped.push(e)
        continue
      }
      found = e
      break
    }
    for (const e of skipped) this.pushClaimable(e)
    if (found === undefined) return ok({ _tag: "NoWork" })
    this.pushClaimable(found)
    const grant: Grant = { executionId: found.id, workerId: args.workerId, grantKey, expiresAt: now + args.grantTtlMs }
    this.grants.set(found.id, grant)
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

  private budgetBlocked(e: Exec): boolean {
    for (const id of e.policy?.budgetIds ?? []) {
      const b = this.budgets.get(id)
      if (b === undefined) continue
      for (const [dim, hard] of b.hard) if (hard > 0 && (b.usage.get(dim) ?? 0) >= hard) return true
    }
    return false
  }

  private resumedClaim(
    e: Exec,
    now: number,
    lane: Ids.LaneId,
    workerId: Ids.WorkerId,
    workerInstanceId: Ids.WorkerInstanceId,
    ttl: number,
    leaseId: Ids.LeaseId,
    remainingAttemptTimeoutMs: number | undefined
  ): M.Handle {
    const a = this.currentAttempt(e)
    if (a !== undefined) a.state = "started"
    this.leaseFor(e, now, workerId, workerInstanceId, ttl, leaseId)
    this.startRun(e, "resumed", now)
    if (remainingAttemptTimeoutMs !== undefined && remainingAttemptTimeoutMs > 0) {
      this.armAttemptTimeout(e, now, remainingAttemptTimeoutMs)
    }
    return this.handleFor(e, "resumed", lane, ttl)
  }

  claimResumedExecution(now: number, args: M.ClaimResumedExecutionArgs): R<M.ClaimResumedExecutionResult> {
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "runnable") return err(contention("ExecutionNotLeaseable"))
    if (e.attemptState !== "attempt_interrupted") return err(contention("NotAResumedExecution"))
    const g = this.grants.get(e.id)
    if (g === undefined || g.workerId !== args.workerId) return err(contention("InvalidClaimGrant"))
    if (g.expiresAt <= now) {
      this.grants.delete(e.id)
      return err(contention("ClaimGrantExpired"))
    }
    const handle = this.resumedClaim(
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

  claimFromReclaim(now: number, token: M.ReclaimToken, leaseId: Ids.LeaseId): R<Option.Option<M.Handle>> {
    const e = this.executions.get(token.grant.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "runnable" || e.attemptState !== "attempt_interrupted") return ok(Option.none())
    const g = this.grants.get(e.id)
    if (g === undefined || g.workerId !== token.workerId || g.grantKey !== token.grant.grantKey) return ok(Option.none())
    if (g.expiresAt <= now) {
      this.grants.delete(e.id)
      return ok(Option.none())
    }
    return ok(Option.some(this.resumedClaim(
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

  // -------------------------------------------------------------------------
  // Lease-bound lifecycle
  // -------------------------------------------------------------------------

  renew(now: number, h: HandleRef): R<M.LeaseRenewal> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "active") return err(this.notActiveDetail(e))
    if (e.ownership === "lease_revoked" || e.leaseRevokedAt !== undefined) return err(stateError("LeaseRevoked"))
    if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) {
      if (e.ownership === "leased") this.markExpired(e, now)
      return err(stateError("LeaseExpired"))
    }
    if (
      e.currentAttemptIndex !== p.attemptIndex || e.currentAttemptId !== p.attemptId || e.leaseId !== p.leaseId ||
      e.leaseEpoch !== p.leaseEpoch
    ) return err(stateError("StaleLease"))
    e.leaseExpiresAt = now + p.leaseTtlMs
    e.leaseRenewalDeadline = now + Math.floor((2 * p.leaseTtlMs) / 3)
    e.leaseLastRenewedAt = now
    e.lastMutationAt = now
    this.leaseExpiries.push(e.leaseExpiresAt, e.id)
    return ok({ expiresAtMs: e.leaseExpiresAt, leaseEpoch: p.leaseEpoch })
  }

  progress(now: number, h: HandleRef, percent: number | undefined, message: string | undefined): R<void> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "active") return err(this.notActiveDetail(e))
    if (e.ownership === "lease_revoked") return err(stateError("LeaseRevoked"))
    if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) return err(stateError("LeaseExpired"))
    if (e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch) return err(stateError("StaleLease"))
    e.progressUpdatedAt = now
    e.lastMutationAt = now
    if (percent !== undefined) e.progressPct = percent
    if (message !== undefined) e.progressMessage = message
    return ok(undefined)
  }

  complete(now: number, h: HandleRef, payload: Uint8Array | undefined): R<void> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    const failure = this.ladder(e, p, now, true)
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
    this.finish(x, "success", now, { attempt: "ended_success", streamReason: "attempt_success", publish: true })
    return ok(undefined)
  }

  fail(now: number, h: HandleRef, reason: M.FailureReason, cls: M.FailureClass): R<M.FailOutcome> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    const failure = this.ladder(e, p, now, true)
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
    this.recordFailure(x, reason.message, cls, category, now)
    const retry = x.policy?.retryPolicy
    const categories = retry?.retryableCategories ?? []
    const retries = retry !== undefined && x.retryCount < (retry.maxRetries ?? 3) && cls !== "Permanent" &&
      cls !== "Cancelled" && (categories.length === 0 || categories.includes(category))
    if (!retries) {
      this.finish(x, "failed", now, {
        attempt: "ended_failure",
        streamReason: "attempt_failure",
        failureReason: reason.message,
        failureCategory: category,
        publish: true
      })
      return ok({ _tag: "TerminalFailed" })
    }
    const attempt = this.currentAttempt(x)!
    this.endRun(x, "retry_scheduled", now, reason.message)
    this.endAttempt(x, "ended_failure", now, reason.message, category)
    this.closeStream(x, attempt.index, "attempt_failure", now)
    const delayUntil = now + backoffDelayMs(x.policy, x.retryCount)
    x.retryCount += 1
    x.pendingRetryReason = reason.message
    x.pendingPreviousAttemptIndex = attempt.index
    x.failureReason = reason.message
    x.currentAttemptId = undefined
    this.clearLease(x)
    this.delayTo(x, delayUntil, now, {
      blockingReason: "waiting_for_retry_backoff",
      blockingDetail: `retry backoff until ${delayUntil} (attempt ${attempt.index} failed: ${reason.message})`,
      attemptState: "pending_retry_attempt"
    })
    return ok({ _tag: "RetryScheduled", delayUntil })
  }

  private delayTo(
    e: Exec,
    delayUntil: number,
    now: number,
    c: { blockingReason: M.BlockingReason; blockingDetail: string; attemptState: M.AttemptState }
  ): void {
    e.delayUntil = delayUntil
    this.transition(e, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: "not_eligible_until_time",
      ...c
    }, now)
    this.delayed.push(delayUntil, e.id)
    let lane = this.laneDelays.get(e.laneId)
    if (lane === undefined) this.laneDelays.set(e.laneId, lane = new MinHeap())
    lane.push(delayUntil, e.id)
    this.onLaneWake(e.laneId)
  }

  cancel(now: number, h: HandleRef, reason: string): R<void> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase === "terminal") {
      if (e.outcome === "cancelled" && String(e.leaseEpoch) === String(p.leaseEpoch) && e.currentAttemptId === p.attemptId) {
        return ok(undefined)
      }
      return err(this.notActiveDetail(e))
    }
    if (e.phase === "active") {
      if (e.ownership === "lease_revoked") return err(stateError("LeaseRevoked"))
      if (e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch) return err(stateError("StaleLease"))
    }
    this.cancelCore(e, reason, "worker", now, true)
    return ok(undefined)
  }

  delay(now: number, h: HandleRef, delayUntil: number): R<void> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    const failure = this.ladder(e, p, now, true)
    if (failure !== undefined) return err(failure)
    const x = e!
    this.endRun(x, "delayed", now)
    const a = this.currentAttempt(x)
    if (a !== undefined) a.state = "suspended"
    this.clearLease(x)
    this.delayTo(x, delayUntil, now, {
      blockingReason: "waiting_for_delay",
      blockingDetail: `delayed until ${delayUntil}`,
      attemptState: "attempt_interrupted"
    })
    return ok(undefined)
  }

  waitChildren(now: number, h: HandleRef): R<void> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    const failure = this.ladder(e, p, now, true)
    if (failure !== undefined) return err(failure)
    const x = e!
    this.endRun(x, "waiting_children", now)
    const a = this.currentAttempt(x)
    if (a !== undefined) a.state = "suspended"
    this.clearLease(x)
    const satisfied = x.group === undefined || x.group.state === "satisfied" || x.unsatisfiedCount === 0
    this.transition(x, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: satisfied ? "eligible_now" : "blocked_by_dependencies",
      blockingReason: satisfied ? "waiting_for_worker" : "waiting_for_children",
      blockingDetail: satisfied ? "" : "waiting for child executions to complete",
      attemptState: "attempt_interrupted"
    }, now)
    return ok(undefined)
  }

  // -------------------------------------------------------------------------
  // Streams
  // -------------------------------------------------------------------------

  appendFrame(now: number, h: HandleRef, frame: M.Frame): R<M.AppendFrameOutcome> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    if (e === undefined || e.phase !== "active") return err(stateError("StreamClosed"))
    if (
      e.ownership !== "leased" || (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) ||
      e.currentAttemptIndex !== p.attemptIndex || e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch
    ) return err(stateError("StaleOwnerCannotAppend"))
    const key = this.streamKey(e.id, p.attemptIndex)
    const existing = this.streams.get(key)
    const live = existing !== undefined && existing.expiresAt !== undefined && existing.expiresAt <= now ?
      undefined :
      existing
    if (live?.closedAt !== undefined) return err(stateError("StreamClosed"))
    const text = decoder.decode(frame.bytes)
    let patch: ReturnType<typeof parsePatch> | undefined
    let document: Record<string, unknown> | undefined
    if (frame.mode._tag === "DurableSummary") {
      patch = parsePatch(text)
      if (typeof patch === "string") return err(invalidInput(patch))
      document = applyPatch(live?.summary?.document ?? {}, patch)
      if (bytesOver(JSON.stringify(document), Limits.summaryDocumentBytes)) {
        return err(overLimit("append_frame", "summary document", "summaryDocumentBytes", "bytes"))
      }
    }
    const s: Stream = live ?? {
      executionId: e.id,
      attemptIndex: p.attemptIndex,
      attemptId: p.attemptId,
      createdAt: now,
      entries: [],
      closedAt: undefined,
      closedReason: undefined,
      frameCount: 0,
      totalBytes: 0,
      lastMs: 0,
      lastSeq: 0,
      lastFrameAt: undefined,
      hasDurableFrame: false,
      expiresAt: undefined,
      emaRate: undefined,
      summary: undefined
    }
    if (live === undefined) this.streams.set(key, s)
    // Ids are "<ms>-<seq>", strictly increasing and never "0-0" (the from-the-beginning cursor).
    const ms = Math.max(now, s.lastMs)
    const seq = ms === s.lastMs ? s.lastSeq + 1 : 0
    const id = `${ms}-${seq}`
    const fields: Record<string, string> = {
      frame_type: frame.frameType === "" ? frame.kind : frame.frameType,
      ts: String(now),
      payload: text,
      encoding: "utf8",
      source: "worker",
      mode: frame.mode._tag === "Durable" ? "durable" : frame.mode._tag === "DurableSummary" ? "summary" : "best_effort"
    }
    if (frame.correlationId !== undefined) fields["correlation_id"] = frame.correlationId
    let summaryVersion: number | undefined
    if (document !== undefined) {
      const prev = s.summary
      s.summary = {
        document,
        version: (prev?.version ?? 0) + 1,
        firstAppliedMs: prev?.firstAppliedMs ?? now,
        lastUpdatedMs: now
      }
      summaryVersion = s.summary.version
      fields["summary_version"] = String(summaryVersion)
    }
    if (frame.mode._tag === "BestEffortLive") fields["ttl_ms"] = String(frame.mode.config.ttlMs)
    s.entries.push({ id, ms, seq, fields, size: frame.bytes.length })
    s.lastMs = ms
    s.lastSeq = seq
    s.frameCount += 1
    s.totalBytes += frame.bytes.length
    const previousFrameAt = s.lastFrameAt
    s.lastFrameAt = now
    if (frame.mode._tag === "BestEffortLive") {
      const cfg = frame.mode.config
      const floor = cfg.maxlenFloor ?? 64
      const ceiling = cfg.maxlenCeiling ?? 16_384
      const alpha = Math.min(1, Math.max(Number.MIN_VALUE, cfg.emaAlpha ?? 0.2))
      if (previousFrameAt !== undefined && s.emaRate !== undefined) {
        const instant = 1000 / Math.max(1, now - previousFrameAt)
        s.emaRate = alpha * instant + (1 - alpha) * s.emaRate
      } else {
        s.emaRate = (floor / 2) / (cfg.ttlMs / 1000)
      }
      const k = Math.min(ceiling, Math.max(floor, Math.ceil(s.emaRate * (cfg.ttlMs / 1000) * 2)))
      if (s.entries.length > k) s.entries = s.entries.slice(s.entries.length - k)
      if (!s.hasDurableFrame) s.expiresAt = now + 2 * cfg.ttlMs
    } else {
      s.hasDurableFrame = true
      s.expiresAt = undefined
      const cap = frame.mode._tag === "DurableSummary" ? SUMMARY_TAIL_ENTRIES : MAX_DURABLE_ENTRIES
      if (s.entries.length > cap) s.entries = s.entries.slice(s.entries.length - cap)
    }
    this.onAppend(key)
    return ok({
      streamId: id,
      frameCount: s.frameCount,
      ...(summaryVersion === undefined ? {} : { summaryVersion })
    })
  }

  private liveStream(now: number, id: Ids.ExecutionId, attemptIndex: number): Stream | undefined {
    const s = this.streams.get(this.streamKey(id, attemptIndex))
    if (s === undefined) return undefined
    if (s.expiresAt !== undefined && s.expiresAt <= now) {
      this.streams.delete(this.streamKey(id, attemptIndex))
      return undefined
    }
    return s
  }

  private framesOf(s: Stream | undefined, entries: ReadonlyArray<StreamEntry>): M.StreamFrames {
    return {
      frames: entries.map((x) => ({ id: x.id, fields: { ...x.fields } })),
      ...(s?.closedAt === undefined ? {} : { closedAt: s.closedAt }),
      ...(s?.closedReason === undefined ? {} : { closedReason: s.closedReason })
    }
  }

  readStream(now: number, args: M.ReadStreamArgs): R<M.StreamFrames> {
    const s = this.liveStream(now, args.executionId, args.attemptIndex)
    if (s === undefined) return ok({ frames: [] })
    const cmp = (x: StreamEntry, id: string) => {
      const [ms, seq] = parseStreamId(id)
      return x.ms !== ms ? x.ms - ms : x.seq - seq
    }
    const inRange = function*(): Generator<StreamEntry> {
      for (const x of s.entries) {
        if (args.from._tag === "At" && cmp(x, args.from.id) < 0) continue
        if (args.from._tag === "End" && x !== s.entries[s.entries.length - 1]) continue
        if (args.to._tag === "At" && cmp(x, args.to.id) > 0) break
        if (args.to._tag === "Start" && x !== s.entries[0]) break
        yield x
      }
    }
    const page = readPage(inRange(), args.countLimit)
    return ok({ ...this.framesOf(s, page.frames), ...(page.next === undefined ? {} : { nextFrom: page.next }) })
  }

  tailOnce(now: number, args: M.TailStreamArgs): M.StreamFrames {
    const s = this.liveStream(now, args.executionId, args.attemptIndex)
    if (s === undefined) return { frames: [] }
    const after = args.after._tag === "At" ? parseStreamId(args.after.id) : [0, -1] as const
    const visible = function*(): Generator<StreamEntry> {
      for (const x of s.entries) {
        if (x.ms < after[0] || (x.ms === after[0] && x.seq <= after[1])) continue
        if (args.visibility === "exclude_best_effort" && x.fields["mode"] === "best_effort") continue
        yield x
      }
    }
    return this.framesOf(s, readPage(visible(), args.countLimit).frames)
  }

  readSummary(now: number, args: M.StreamRef): R<Option.Option<M.SummaryDocument>> {
    const s = this.liveStream(now, args.executionId, args.attemptIndex)
    if (s?.summary === undefined || s.summary.version === 0) return ok(Option.none())
    return ok(Option.some({
      documentJson: encoder.encode(JSON.stringify(s.summary.document)),
      version: s.summary.version,
      patchKind: "json-merge-patch",
      lastUpdatedMs: s.summary.lastUpdatedMs,
      firstAppliedMs: s.summary.firstAppliedMs
    }))
  }

  streamKeyOf(id: Ids.ExecutionId, attemptIndex: number): string {
    return this.streamKey(id, attemptIndex)
  }

  // -------------------------------------------------------------------------
  // Suspension, waitpoints, signals
  // -------------------------------------------------------------------------

  private signalsOn(wp: Waitpoint | undefined): Array<SignalRecord> {
    if (wp === undefined) return []
    return wp.signals.map((id) => this.signals.get(id)).filter((s): s is SignalRecord => s !== undefined)
  }

  private evaluate(c: M.ResumeCondition, byKey: ReadonlyMap<string, Waitpoint>): Evaluation {
    switch (c._tag) {
      case "OperatorOnly":
      case "TimeoutOnly":
        return { satisfied: false, satisfiers: [] }
      case "Single": {
        const hit = this.signalsOn(byKey.get(c.waitpointKey)).find((s) => matches(c.matcher, s.name))
        return hit === undefined ? { satisfied: false, satisfiers: [] } : { satisfied: true, satisfiers: [hit.id] }
      }
      case "Composite": {
        const body = c.body
        if (body._tag === "AllOf") {
          const parts = body.members.map((m) => this.evaluate(m, byKey))
          return parts.every((p) => p.satisfied) ?
            { satisfied: true, satisfiers: [...new Set(parts.flatMap((p) => p.satisfiers))] } :
            { satisfied: false, satisfiers: [] }
        }
        const seen = new Set<string>()
        const satisfiers: Array<Ids.SignalId> = []
        for (const key of body.waitpoints) {
          const wp = byKey.get(key)
          for (const s of this.signalsOn(wp)) {
            if (!matches(body.matcher, s.name)) continue
            const distinct = body.countKind === "DistinctWaitpoints" ?
              key :
              body.countKind === "DistinctSignals" ?
              s.id :
              `${s.sourceType}:${s.sourceIdentity}`
            if (seen.has(distinct)) continue
            seen.add(distinct)
            if (satisfiers.length < body.n) satisfiers.push(s.id)
          }
        }
        return seen.size >= body.n ? { satisfied: true, satisfiers } : { satisfied: false, satisfiers: [] }
      }
    }
  }

  private waitpointsByKey(s: Suspension): Map<string, Waitpoint> {
    const map = new Map<string, Waitpoint>()
    for (const id of [s.waitpointId, ...s.additional.map((w) => w.waitpointId)]) {
      const wp = this.waitpoints.get(id)
      if (wp !== undefined) map.set(wp.key, wp)
    }
    return map
  }

  private suspendDedupKey(e: Ids.ExecutionId, key: string): string {
    return `${e}|${key}`
  }

  suspend(now: number, h: HandleRef, args: M.SuspendArgs): R<M.SuspendOutcome> {
    const p = h.payload
    if (args.idempotencyKey !== undefined && args.idempotencyKey !== "") {
      const hit = this.suspendDedup.get(this.suspendDedupKey(p.executionId, args.idempotencyKey))
      // the first outcome verbatim, with the caller's handle (docs/design/signals.md#suspend-idempotency)
      if (hit !== undefined && hit.expiresAt > now) {
        return ok(hit.outcome._tag === "Suspended" ? { ...hit.outcome, handle: { ...h.handle, kind: "suspended" } } : hit.outcome)
      }
    }
    const e = this.executions.get(p.executionId)
    const failure = this.ladder(e, p, now, true)
    if (failure !== undefined) return err(failure)
    const x = e!
    if (x.currentAttemptIndex !== p.attemptIndex) return err(validation("InvalidLeaseForSuspend"))
    if (x.suspension !== undefined && x.suspension.closedAt === undefined) return err(stateError("AlreadySuspended"))
    const [primary, ...extras] = args.waitpoints
    let primaryWp: Waitpoint | undefined
    if (primary!._tag === "UsePending") {
      const wp = this.waitpoints.get(primary!.waitpointId)
      if (wp === undefined) return err(contention("WaitpointNotFound"))
      if (wp.state !== "pending") return err(stateError("WaitpointNotPending"))
      if (wp.executionId !== x.id || wp.attemptIndex !== p.attemptIndex) {
        return err(validation("InvalidWaitpointForExecution"))
      }
      if (wp.expiresAt !== undefined && wp.expiresAt <= now) return err(stateError("PendingWaitpointExpired"))
      if (wp.token === "") return err(validation("WaitpointNotTokenBound"))
      primaryWp = wp
    } else if (this.keystore.currentKid === undefined) {
      return err(this.hmacNotInitialized())
    } else {
      for (const b of args.waitpoints) {
        if (b._tag === "Fresh") {
          const existing = this.waitpoints.get(b.waitpointId)
          if (existing !== undefined) return err(conflict("WaitpointAlreadyExists"))
        }
      }
    }
    // Checks are done; from here on the step writes.
    const newWaitpoint = (id: Ids.WaitpointId, key: string): Waitpoint => {
      const wp: Waitpoint = {
        id,
        executionId: x.id,
        attemptIndex: p.attemptIndex,
        suspensionId: args.suspensionId,
        key,
        token: this.mint(id, key, now)!,
        state: "active",
        createdAt: now,
        activatedAt: now,
        satisfiedAt: undefined,
        closedAt: undefined,
        expiresAt: args.timeoutAt,
        closeReason: undefined,
        signalCount: 0,
        matchedSignalCount: 0,
        lastSignalAt: undefined,
        signals: []
      }
      this.waitpoints.set(id, wp)
      x.waitpointIds.push(id)
      return wp
    }
    if (primaryWp !== undefined) {
      primaryWp.state = "active"
      primaryWp.activatedAt = now
      primaryWp.expiresAt = args.timeoutAt
      primaryWp.suspensionId = args.suspensionId
    } else {
      const b = primary as Extract<M.WaitpointBinding, { _tag: "Fresh" }>
      primaryWp = newWaitpoint(b.waitpointId, b.waitpointKey)
    }
    const additional = extras.map((b) => {
      const fresh = b as Extract<M.WaitpointBinding, { _tag: "Fresh" }>
      const wp = newWaitpoint(fresh.waitpointId, fresh.waitpointKey)
      return { waitpointId: wp.id, waitpointKey: wp.key, waitpointToken: wp.token }
    })
    const suspension: Suspension = {
      id: args.suspensionId,
      attemptIndex: p.attemptIndex,
      waitpointId: primaryWp.id,
      waitpointKey: primaryWp.key,
      waitpointToken: primaryWp.token,
      additional,
      reasonCode: args.reasonCode,
      requestedBy: args.requestedBy,
      createdAt: now,
      timeoutAt: args.timeoutAt,
      timeoutBehavior: args.timeoutBehavior,
      condition: args.resumeCondition,
      resumePolicy: args.resumePolicy,
      continuationMetadataPointer: args.continuationMetadataPointer,
      lastSignalAt: undefined,
      satisfiedAt: undefined,
      closedAt: undefined,
      closeReason: undefined,
      satisfiers: []
    }
    const details: M.SuspendOutcomeDetails = {
      suspensionId: args.suspensionId,
      waitpointId: primaryWp.id,
      waitpointKey: primaryWp.key,
      waitpointToken: primaryWp.token,
      additionalWaitpoints: additional
    }
    const remember = (outcome: M.SuspendOutcome) => {
      if (args.idempotencyKey !== undefined && args.idempotencyKey !== "") {
        const ttl = args.timeoutAt === undefined ?
          SUSPEND_DEDUP_MAX_MS :
          Math.min(args.timeoutAt - (args.now ?? now) + 60_000, SUSPEND_DEDUP_MAX_MS)
        this.suspendDedup.set(this.suspendDedupKey(x.id, args.idempotencyKey), { outcome, expiresAt: now + ttl })
      }
      return outcome
    }
    if (primary!._tag === "UsePending" && primaryWp.signals.length > 0) {
      const verdict = this.evaluate(args.resumeCondition, this.waitpointsByKey(suspension))
      if (verdict.satisfied) {
        suspension.satisfiers = verdict.satisfiers
        suspension.satisfiedAt = now
        x.suspension = suspension
        this.closeSuspension(x, "resumed", now)
        primaryWp.satisfiedAt = now
        primaryWp.matchedSignalCount = verdict.satisfiers.length
        x.lastMutationAt = now
        return ok(remember({ _tag: "AlreadySatisfied", details }))
      }
    }
    this.endRun(x, "suspended", now, args.reasonCode)
    x.suspension = suspension
    x.currentWaitpointId = primaryWp.id
    const a = this.currentAttempt(x)
    if (a !== undefined) a.state = "suspended"
    this.clearLease(x)
    this.transition(x, {
      phase: "suspended",
      ownership: "unowned",
      eligibility: "not_applicable",
      blockingReason: blockingReasonFor(args.reasonCode),
      blockingDetail: `suspended: waitpoint ${primaryWp.id} awaiting ${args.reasonCode}`,
      attemptState: "attempt_interrupted"
    }, now)
    if (args.timeoutAt !== undefined) this.suspensionTimeouts.push(args.timeoutAt, x.id)
    return ok(remember({ _tag: "Suspended", details, handle: { ...h.handle, kind: "suspended" } }))
  }

  createWaitpoint(now: number, h: HandleRef, key: string, expiresInMs: number, id: Ids.WaitpointId): R<M.PendingWaitpoint> {
    const p = h.payload
    const e = this.executions.get(p.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "active") return err(this.notActiveDetail(e))
    if (e.ownership !== "leased") return err(contention("NoActiveLease"))
    if (e.currentAttemptIndex !== p.attemptIndex || e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch) {
      return err(stateError("StaleLease"))
    }
    if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) return err(stateError("LeaseExpired"))
    if (this.waitpoints.has(id)) return err(conflict("WaitpointAlreadyExists"))
    const token = this.mint(id, key, now)
    if (token === undefined) return err(this.hmacNotInitialized())
    const wp: Waitpoint = {
      id,
      executionId: e.id,
      attemptIndex: p.attemptIndex,
      suspensionId: undefined,
      key,
      token,
      state: "pending",
      createdAt: now,
      activatedAt: undefined,
      satisfiedAt: undefined,
      closedAt: undefined,
      expiresAt: now + expiresInMs,
      closeReason: undefined,
      signalCount: 0,
      matchedSignalCount: 0,
      lastSignalAt: undefined,
      signals: []
    }
    this.waitpoints.set(id, wp)
    e.waitpointIds.push(id)
    this.pendingExpiries.push(wp.expiresAt!, id)
    return ok({ waitpointId: id, hmacToken: token })
  }

  observeSignals(_now: number, h: HandleRef): R<ReadonlyArray<M.ResumeSignal>> {
    const e = this.executions.get(h.payload.executionId)
    const s = e?.suspension
    if (s === undefined || s.attemptIndex !== h.payload.attemptIndex || s.closeReason !== "resumed") return ok([])
    const out: Array<M.ResumeSignal> = []
    for (const id of s.satisfiers) {
      const r = this.signals.get(id)
      if (r === undefined || r.executionId !== e!.id) continue
      out.push({
        signalId: r.id,
        signalName: r.name,
        signalCategory: r.category,
        sourceType: r.sourceType,
        sourceIdentity: r.sourceIdentity,
        correlationId: r.correlationId,
        acceptedAt: r.acceptedAt,
        ...(r.payload === undefined ? {} : { payload: r.payload })
      })
    }
    return ok(out)
  }

  deliverSignal(now: number, args: M.DeliverSignalArgs): R<M.DeliverSignalResult> {
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    const wp = this.waitpoints.get(args.waitpointId)
    const authFail = (detail: string) => {
      e.lastHmacValidationFailedAt = now
      return err<M.DeliverSignalResult>(validation("InvalidToken", detail))
    }
    if (wp === undefined || wp.executionId !== e.id) return args.waitpointToken === "" ? authFail("missing_token") : authFail("")
    const verdict = verifyToken(args.waitpointToken, this.keyLookup(), now, {
      waitpointId: wp.id,
      waitpointKey: wp.key,
      createdAt: wp.createdAt
    })
    if (verdict === "hmac_secret_not_initialized") return err(this.hmacNotInitialized())
    if (verdict === "missing_token" || verdict === "token_expired") return authFail(verdict)
    if (verdict === "invalid_token") return authFail("")
    if (e.phase === "terminal") return err(stateError("TargetNotSignalable"))
    const buffering = wp.state === "pending" || wp.state === "expired"
    if (!buffering && e.phase !== "suspended" && wp.state !== "active") return err(stateError("TargetNotSignalable"))
    if (buffering) {
      if (wp.state === "expired" || (wp.expiresAt !== undefined && wp.expiresAt <= now)) {
        return err(stateError("WaitpointClosed"))
      }
    } else if (wp.state !== "active") {
      return err(stateError("WaitpointClosed"))
    }
    // the execution's cap (0 = none); a sender may only lower it (docs/guide.md)
    const own = e.policy?.maxSignalsPerExecution ?? DEFAULT_MAX_SIGNALS
    const asked = args.maxSignalsPerExecution
    const limit = asked !== undefined && asked > 0 && (own === 0 || asked < own) ? asked : own
    if (limit > 0 && e.signalCount >= limit) return err(validation("SignalLimitExceeded"))
    const dedupTtl = args.dedupTtlMs ?? DAY_MS
    const dedupKey = `${wp.id}|${args.idempotencyKey ?? ""}`
    const deduped = args.idempotencyKey !== undefined && args.idempotencyKey !== "" && dedupTtl > 0
    if (deduped) {
      const hit = this.signalDedup.get(dedupKey)
      if (hit !== undefined && hit.expiresAt > now) return ok({ _tag: "Duplicate", existingSignalId: hit.signalId })
    }
    // a signal id names one signal of one execution: reusing it, whoever used it, is refused
    if (this.signals.has(args.signalId)) return err(stateError("DuplicateSignal"))
    if (deduped) this.signalDedup.set(dedupKey, { signalId: args.signalId, expiresAt: now + dedupTtl })
    const record: SignalRecord = {
      id: args.signalId,
      executionId: e.id,
      waitpointId: wp.id,
      name: args.signalName,
      category: args.signalCategory,
      sourceType: args.sourceType,
      sourceIdentity: args.sourceIdentity,
      correlationId: args.correlationId ?? "",
      payload: args.payload,
      acceptedAt: now
    }
    const live = e.suspension !== undefined && e.suspension.closedAt === undefined ? e.suspension : undefined
    const before = live !== undefined && live.condition._tag === "Composite" ?
      this.evaluateCount(live, this.waitpointsByKey(live)) :
      0
    this.signals.set(record.id, record)
    wp.signals.push(record.id)
    const maxlen = args.signalMaxlen ?? 1000
    if (maxlen > 0 && wp.signals.length > maxlen) wp.signals.splice(0, wp.signals.length - maxlen)
    wp.signalCount += 1
    wp.lastSignalAt = now
    e.signalCount += 1
    if (buffering) return ok({ _tag: "Accepted", signalId: record.id, effect: "buffered_for_pending_waitpoint" })
    const s = e.suspension
    if (s === undefined || s.closedAt !== undefined || e.phase !== "suspended") {
      return ok({ _tag: "Accepted", signalId: record.id, effect: "appended_to_waitpoint" })
    }
    s.lastSignalAt = now
    const byKey = this.waitpointsByKey(s)
    const referenced = conditionKeys(s.condition)
    const composite = s.condition._tag === "Composite"
    const verdict2 = this.evaluate(s.condition, byKey)
    if (verdict2.satisfied) {
      wp.matchedSignalCount += 1
      this.resume(e, s, verdict2.satisfiers, now, args.resumeDelayMs ?? 0, args.signalName)
      return ok({ _tag: "Accepted", signalId: record.id, effect: "resume_condition_satisfied" })
    }
    if (!composite) {
      const cond = s.condition
      const hit = cond._tag === "Single" && cond.waitpointKey === wp.key && matches(cond.matcher, args.signalName)
      if (hit) wp.matchedSignalCount += 1
      return ok({ _tag: "Accepted", signalId: record.id, effect: hit ? "appended_to_waitpoint" : "no_op" })
    }
    if (!referenced.has(wp.key)) return ok({ _tag: "Accepted", signalId: record.id, effect: "signal_ignored_not_in_condition" })
    if (!this.matcherAccepts(s.condition, wp.key, args.signalName)) {
      return ok({ _tag: "Accepted", signalId: record.id, effect: "signal_ignored_matcher_failed" })
    }
    wp.matchedSignalCount += 1
    const after = this.evaluateCount(s, byKey)
    return ok({
      _tag: "Accepted",
      signalId: record.id,
      effect: after > before ? "appended_to_waitpoint" : "appended_to_waitpoint_duplicate"
    })
  }

  /** Progress measure of a composite: distinct satisfiers summed over its parts. */
  private evaluateCount(s: Suspension, byKey: ReadonlyMap<string, Waitpoint>): number {
    const count = (c: M.ResumeCondition): number => {
      if (c._tag === "Single") return this.evaluate(c, byKey).satisfied ? 1 : 0
      if (c._tag !== "Composite") return 0
      if (c.body._tag === "AllOf") return c.body.members.reduce((n, m) => n + count(m), 0)
      const body = c.body
      const seen = new Set<string>()
      for (const key of body.waitpoints) {
        for (const sig of this.signalsOn(byKey.get(key))) {
          if (!matches(body.matcher, sig.name)) continue
          seen.add(
            body.countKind === "DistinctWaitpoints" ?
              key :
              body.countKind === "DistinctSignals" ?
              sig.id :
              `${sig.sourceType}:${sig.sourceIdentity}`
          )
        }
      }
      return seen.size
    }
    return count(s.condition)
  }

  private matcherAccepts(c: M.ResumeCondition, key: string, name: string): boolean {
    switch (c._tag) {
      case "Single":
        return c.waitpointKey === key && matches(c.matcher, name)
      case "Composite":
        return c.body._tag === "AllOf" ?
          c.body.members.some((m) => this.matcherAccepts(m, key, name)) :
          c.body.waitpoints.includes(key) && matches(c.body.matcher, name)
      default:
        return false
    }
  }

  private resume(
    e: Exec,
    s: Suspension,
    satisfiers: ReadonlyArray<Ids.SignalId>,
    now: number,
    resumeDelayMs: number,
    signalName: string
  ): void {
    s.satisfiers = satisfiers
    s.satisfiedAt = now
    const primary = this.waitpoints.get(s.waitpointId)
    if (primary !== undefined) primary.satisfiedAt = now
    this.closeSuspension(e, "resumed", now)
    if (resumeDelayMs > 0) {
      this.delayTo(e, now + resumeDelayMs, now, {
        blockingReason: "waiting_for_resume_delay",
        blockingDetail: `resume delay ${resumeDelayMs}ms after signal ${signalName}`,
        attemptState: "attempt_interrupted"
      })
    } else {
      this.transition(e, {
        phase: "runnable",
        ownership: "unowned",
        eligibility: "eligible_now",
        blockingReason: "waiting_for_worker",
        blockingDetail: "",
        attemptState: "attempt_interrupted"
      }, now)
    }
  }

  listPendingWaitpoints(
    _now: number,
    args: M.ListPendingWaitpointsArgs & { readonly limit: number }
  ): R<M.ListPendingWaitpointsResult> {
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    const ids = [...e.waitpointIds].sort().filter((id) => args.after === undefined || id > args.after)
    const page = ids.slice(0, args.limit)
    const entries: Array<M.PendingWaitpointInfo> = []
    for (const id of page) {
      const wp = this.waitpoints.get(id)
      if (wp === undefined || (wp.state !== "pending" && wp.state !== "active") || wp.token === "") continue
      const colon = wp.token.indexOf(":")
      const names = this.requiredNames(e, wp)
      entries.push({
        waitpointId: wp.id,
        waitpointKey: wp.key,
        state: wp.state,
        requiredSignalNames: names,
        createdAt: wp.createdAt,
        ...(wp.activatedAt === undefined ? {} : { activatedAt: wp.activatedAt }),
        ...(wp.expiresAt === undefined ? {} : { expiresAt: wp.expiresAt }),
        executionId: e.id,
        tokenKid: wp.token.slice(0, colon),
        tokenFingerprint: wp.token.slice(colon + 1, colon + 17)
      })
    }
    return ok({ entries, ...(ids.length > args.limit ? { nextCursor: page[page.length - 1]! } : {}) })
  }

  private requiredNames(e: Exec, wp: Waitpoint): Array<string> {
    const s = e.suspension
    if (s === undefined || s.closedAt !== undefined || wp.suspensionId !== s.id) return []
    const names: Array<string> = []
    const walk = (c: M.ResumeCondition) => {
      if (c._tag === "Single" && c.waitpointKey === wp.key && c.matcher._tag === "ByName" && c.matcher.name !== "") {
        names.push(c.matcher.name)
      }
      if (c._tag === "Composite") {
        if (c.body._tag === "AllOf") c.body.members.forEach(walk)
        else if (c.body.waitpoints.includes(wp.key) && c.body.matcher?._tag === "ByName") names.push(c.body.matcher.name)
      }
    }
    walk(s.condition)
    return names
  }

  // -------------------------------------------------------------------------
  // Reads
  // -------------------------------------------------------------------------

  describeExecution(_now: number, id: Ids.ExecutionId): R<Option.Option<M.ExecutionSnapshot>> {
    const e = this.executions.get(id)
    if (e === undefined) return ok(Option.none())
    return ok(Option.some({
      executionId: e.id,
      ...(e.flowId === undefined ? {} : { flowId: e.flowId }),
      laneId: e.laneId,
      namespace: e.namespace,
      publicState: e.publicState,
      blockingReason: e.blockingReason,
      ...(e.blockingDetail === "" ? {} : { blockingDetail: e.blockingDetail }),
      ...(e.currentAttemptId === undefined ? {} : {
        currentAttempt: { attemptId: e.currentAttemptId, attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex }
      }),
      ...(e.workerInstanceId === undefined || e.leaseExpiresAt === undefined ? {} : {
        currentLease: {
          leaseEpoch: e.leaseEpoch as Ids.LeaseEpoch,
          workerInstanceId: e.workerInstanceId,
          expiresAt: e.leaseExpiresAt,
          leaseId: e.leaseId!,
          attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex,
          ...(e.leaseLastRenewedAt === undefined ? {} : { lastHeartbeatAt: e.leaseLastRenewedAt })
        }
      }),
      ...(e.currentWaitpointId === undefined ? {} : { currentWaitpoint: e.currentWaitpointId }),
      createdAt: e.createdAt,
      ...(e.startedAt === undefined ? {} : { startedAt: e.startedAt }),
      ...(e.completedAt === undefined ? {} : { completedAt: e.completedAt }),
      lastMutationAt: e.lastMutationAt,
      totalAttemptCount: e.totalAttemptCount,
      tags: { ...e.tags },
      ...(e.progressUpdatedAt === undefined ? {} : {
        progress: {
          ...(e.progressPct === undefined ? {} : { percent: e.progressPct }),
          ...(e.progressMessage === undefined || e.progressMessage === "" ? {} : { message: e.progressMessage }),
          updatedAt: e.progressUpdatedAt
        }
      }),
      ...(e.lastFailure === undefined ? {} : { lastFailure: { ...e.lastFailure } }),
      ...(e.outcome === "cancelled" && e.cancellationReason !== undefined && e.cancellationReason !== "" ?
        { cancellationReason: e.cancellationReason } :
        {}),
      attemptHistory: (e.history ?? []).map((r) => ({ ...r }))
    }))
  }

  readExecutionInfo(_now: number, id: Ids.ExecutionId): R<Option.Option<M.ExecutionInfo>> {
    const e = this.executions.get(id)
    if (e === undefined) return ok(Option.none())
    return ok(Option.some({
      executionId: e.id,
      namespace: e.namespace,
      laneId: e.laneId,
      priority: e.priority,
      executionKind: e.kind,
      stateVector: {
        lifecyclePhase: e.phase,
        ownershipState: e.ownership,
        eligibilityState: e.eligibility,
        blockingReason: e.blockingReason,
        terminalOutcome: e.outcome,
        attemptState: e.attemptState,
        publicState: e.publicState
      },
      publicState: e.publicState,
      createdAt: String(e.createdAt),
      ...(e.startedAt === undefined ? {} : { startedAt: String(e.startedAt) }),
      ...(e.completedAt === undefined ? {} : { completedAt: String(e.completedAt) }),
      currentAttemptIndex: e.currentAttemptIndex,
      ...(e.flowId === undefined ? {} : { flowId: e.flowId }),
      blockingDetail: e.blockingDetail,
      ...(e.outcome === "cancelled" ?
        { cancellationReason: e.cancellationReason ?? "", cancelledBy: e.cancelledBy ?? "" } :
        {})
    }))
  }

  readExecutionState(_now: number, id: Ids.ExecutionId): R<Option.Option<M.PublicState>> {
    const e = this.executions.get(id)
    return ok(e === undefined ? Option.none() : Option.some(e.publicState))
  }

  getExecutionResult(_now: number, id: Ids.ExecutionId): R<Option.Option<Uint8Array>> {
    const e = this.executions.get(id)
    return ok(
      e !== undefined && e.outcome === "success" && e.result !== undefined && e.result.length > 0 ?
        Option.some(e.result) :
        Option.none()
    )
  }

  getExecutionInput(_now: number, id: Ids.ExecutionId): R<Option.Option<M.ExecutionInput>> {
    const e = this.executions.get(id)
    if (e === undefined) return ok(Option.none())
    return ok(Option.some({
      executionId: e.id,
      executionKind: e.kind,
      laneId: e.laneId,
      namespace: e.namespace,
      payload: e.payload,
      ...(e.payloadEncoding === undefined ? {} : { payloadEncoding: e.payloadEncoding }),
      ...traceParentField(e.traceContext)
    }))
  }

  getExecutionInputs(now: number, ids: ReadonlyArray<Ids.ExecutionId>): R<ReadonlyArray<Option.Option<M.ExecutionInput>>> {
    const inputs: Array<Option.Option<M.ExecutionInput>> = []
    for (const id of ids) {
      const input = this.getExecutionInput(now, id)
      if (Either.isLeft(input)) return Either.left(input.left)
      inputs.push(input.right)
    }
    return ok(inputs)
  }

  resolveExecutionFlowId(_now: number, id: Ids.ExecutionId): R<Option.Option<Ids.FlowId>> {
    return ok(Option.fromNullable(this.executions.get(id)?.flowId))
  }

  private groupSnapshot(downstream: Ids.ExecutionId, g: EdgeGroup): M.EdgeGroupSnapshot {
    return {
      downstreamExecutionId: downstream,
      policy: g.policy,
      totalDeps: g.n,
      satisfiedCount: g.succeeded,
      failedCount: g.failed,
      skippedCount: g.skipped,
      runningCount: Math.max(0, g.n - g.succeeded - g.failed - g.skipped),
      groupState: g.state
    }
  }

  describeFlow(_now: number, id: Ids.FlowId): R<Option.Option<M.FlowSnapshot>> {
    const f = this.flows.get(id)
    if (f === undefined) return ok(Option.none())
    const edgeGroups: Array<M.EdgeGroupSnapshot> = []
    for (const member of [...f.members].sort()) {
      const e = this.executions.get(member)
      if (e?.group !== undefined && e.group.n > 0) edgeGroups.push(this.groupSnapshot(member, e.group))
    }
    return ok(Option.some({
      flowId: f.id,
      flowKind: f.kind,
      namespace: f.namespace,
      publicFlowState: this.flowState(f),
      sealed: f.sealed,
      graphRevision: f.graphRevision,
      nodeCount: f.nodeCount,
      edgeCount: f.edgeCount,
      createdAt: f.createdAt,
      lastMutationAt: f.lastMutationAt,
      ...(f.cancelledAt === undefined ? {} : { cancelledAt: f.cancelledAt }),
      ...(f.cancelReason === undefined || f.cancelReason === "" ? {} : { cancelReason: f.cancelReason }),
      ...(f.cancellationPolicy === undefined ? {} : { cancellationPolicy: f.cancellationPolicy }),
      tags: { ...f.tags },
      edgeGroups
    }))
  }

  listEdges(_now: number, args: M.ListEdgesArgs): R<ReadonlyArray<M.EdgeSnapshot>> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return ok([])
    const ids = args.direction._tag === "Outgoing" ?
      f.outgoing.get(args.direction.fromNode) :
      f.incoming.get(args.direction.toNode)
    return ok([...(ids ?? [])].map((id) => f.edges.get(id)!))
  }

  describeEdge(_now: number, args: M.DescribeEdgeArgs): R<Option.Option<M.EdgeSnapshot>> {
    return ok(Option.fromNullable(this.flows.get(args.flowId)?.edges.get(args.edgeId)))
  }

  // -------------------------------------------------------------------------
  // Listings
  // -------------------------------------------------------------------------

  private page<T, C>(sorted: ReadonlyArray<T>, limit: number, cursorOf: (t: T) => C) {
    const items = sorted.slice(0, limit)
    return { items, next: sorted.length > limit ? cursorOf(items[items.length - 1]!) : undefined }
  }

  listFlows(_now: number, partition: number, cursor: Ids.FlowId | undefined, limit: number): R<M.ListFlowsPage> {
    const all = [...this.flows.values()]
      .filter((f) => f.partition === partition && (cursor === undefined || f.id > cursor))
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
    const { items, next } = this.page(all, limit, (f) => f.id)
    return ok({
      flows: items.map((f) => ({ flowId: f.id, createdAt: f.createdAt, status: M.flowStatusOf(this.flowState(f)) })),
      ...(next === undefined ? {} : { nextCursor: next })
    })
  }

  listLanes(_now: number, cursor: Ids.LaneId | undefined, limit: number): R<M.ListLanesPage> {
    const all = [...this.lanes].filter((l) => cursor === undefined || l > cursor).sort()
    const { items, next } = this.page(all, limit, (l) => l)
    return ok({ lanes: items, ...(next === undefined ? {} : { nextCursor: next }) })
  }

  listSuspended(_now: number, partition: number, cursor: Ids.ExecutionId | undefined, limit: number): R<M.ListSuspendedPage> {
    const all = [...this.executions.values()]
      .filter((e) => e.partition === partition && e.phase === "suspended")
      .map((e) => ({
        executionId: e.id,
        suspendedAtMs: e.suspension?.timeoutAt ?? M.NO_TIMEOUT_SCORE,
        reason: e.suspension?.reasonCode ?? ""
      }))
      .sort((a, b) =>
        a.suspendedAtMs - b.suspendedAtMs || (a.executionId < b.executionId ? -1 : a.executionId > b.executionId ? 1 : 0)
      )
    let start = 0
    if (cursor !== undefined) {
      const at = all.findIndex((x) => x.executionId === cursor)
      start = at >= 0 ? at + 1 : all.findIndex((x) => x.executionId > cursor)
      if (start < 0) start = all.length
    }
    const { items, next } = this.page(all.slice(start), limit, (x) => x.executionId)
    return ok({ entries: items, ...(next === undefined ? {} : { nextCursor: next }) })
  }

  listExecutions(_now: number, partition: number, cursor: Ids.ExecutionId | undefined, limit: number): R<M.ListExecutionsPage> {
    const all = [...this.executions.keys()]
      .filter((id) => executionPartition(id) === partition && (cursor === undefined || id > cursor))
      .sort()
    const { items, next } = this.page(all, limit, (id) => id)
    return ok({ executions: items, ...(next === undefined ? {} : { nextCursor: next }) })
  }

  // -------------------------------------------------------------------------
  // Producer, flows, operator control
  // -------------------------------------------------------------------------

  createExecution(now: number, args: CreateExecutionCore): R<M.CreateExecutionResult> {
    const partition = executionPartition(args.executionId)
    const idemKey = args.idempotencyKey !== undefined && args.idempotencyKey !== "" ?
      `${partition}|${args.namespace}|${args.idempotencyKey}` :
      undefined
    if (idemKey !== undefined) {
      const hit = this.idempotency.get(idemKey)
      if (hit !== undefined && hit.expiresAt > now) return ok({ _tag: "Duplicate", executionId: hit.executionId })
    }
    if (this.executions.has(args.executionId)) return ok({ _tag: "Duplicate", executionId: args.executionId })
    const delayed = args.delayUntil !== undefined && args.delayUntil > now
    const caps = args.requiredCapabilities
    const e: Exec = {
      id: args.executionId,
      namespace: args.namespace,
      laneId: args.laneId,
      kind: args.executionKind,
      partition,
      creatorIdentity: args.creatorIdentity,
      flowId: undefined,
      priority: args.priority,
      requiredCaps: caps,
      capsKey: caps.join(","),
      delayUntil: delayed ? args.delayUntil : undefined,
      phase: "runnable",
      ownership: "unowned",
      eligibility: "eligible_now",
      blockingReason: "waiting_for_worker",
      blockingDetail: "",
      outcome: "none",
      attemptState: "pending_first_attempt",
      publicState: "waiting",
      totalAttemptCount: 0,
      currentAttemptIndex: 0,
      currentAttemptId: undefined,
      retryCount: 0,
      replayCount: 0,
      leaseReclaimCount: 0,
      leaseId: undefined,
      leaseEpoch: 0,
      workerId: undefined,
      workerInstanceId: undefined,
      leaseTtlMs: 0,
      leaseAcquiredAt: undefined,
      leaseExpiresAt: undefined,
      leaseLastRenewedAt: undefined,
      leaseRenewalDeadline: undefined,
      leaseExpiredAt: undefined,
      leaseRevokedAt: undefined,
      leaseRevokeReason: undefined,
      suspension: undefined,
      currentWaitpointId: undefined,
      pendingRetryReason: undefined,
      pendingReplayReason: undefined,
      pendingPreviousAttemptIndex: undefined,
      progressPct: undefined,
      progressMessage: undefined,
      progressUpdatedAt: undefined,
      failureReason: undefined,
      lastFailure: undefined,
      cancellationReason: undefined,
      cancelledBy: undefined,
      createdAt: now,
      startedAt: undefined,
      completedAt: undefined,
      lastTransitionAt: now,
      lastMutationAt: now,
      lastCapabilityMismatchAt: undefined,
      lastHmacValidationFailedAt: undefined,
      payload: args.inputPayload,
      payloadEncoding: args.payloadEncoding,
      policy: args.policy,
      result: undefined,
      tags: { ...args.tags },
      attempts: [],
      history: undefined,
      traceContext: args.traceContext,
      executionDeadlineAt: args.executionDeadlineAt,
      attemptDeadlineAt: undefined,
      deps: undefined,
      unsatisfiedCount: 0,
      group: undefined,
      signalCount: 0,
      waitpointIds: []
    }
    this.executions.set(e.id, e)
    this.lanes.add(e.laneId)
    if (delayed) {
      this.delayTo(e, args.delayUntil!, now, {
        blockingReason: "waiting_for_delay",
        blockingDetail: `delayed until ${args.delayUntil}`,
        attemptState: "pending_first_attempt"
      })
    } else {
      this.pushClaimable(e)
      this.onLaneWake(e.laneId)
    }
    if (e.executionDeadlineAt !== undefined) this.deadlines.push(e.executionDeadlineAt, e.id)
    if (idemKey !== undefined) {
      this.idempotency.set(idemKey, { executionId: e.id, expiresAt: now + (args.policy?.dedupWindowMs ?? DAY_MS) })
    }
    return ok({ _tag: "Created", executionId: e.id, publicState: e.publicState })
  }

  createFlow(now: number, args: M.CreateFlowArgs): R<M.CreateFlowResult> {
    if (this.flows.has(args.flowId)) return ok({ _tag: "AlreadySatisfied", flowId: args.flowId })
    this.flows.set(args.flowId, {
      id: args.flowId,
      kind: args.flowKind,
      namespace: args.namespace,
      partition: flowPartition(args.flowId),
      state: "open",
      sealed: args.sealed,
      graphRevision: 0,
      nodeCount: 0,
      edgeCount: 0,
      createdAt: now,
      lastMutationAt: now,
      cancelledAt: undefined,
      cancelReason: undefined,
      cancellationPolicy: undefined,
      members: new Set(),
      edges: new Map(),
      outgoing: new Map(),
      incoming: new Map(),
      groups: new Map(),
      owed: new Set(),
      backlogDueAt: undefined,
      tags: {}
    })
    return ok({ _tag: "Created", flowId: args.flowId })
  }

  /** The whole graph in this one step; the boundary validated its shape, so only the store can refuse it. */
  createFlowGraph(
    now: number,
    g: {
      readonly flow: M.CreateFlowArgs
      readonly members: ReadonlyArray<CreateExecutionCore>
      readonly edges: ReadonlyArray<M.FlowGraphEdge>
      readonly joins: ReadonlyArray<M.FlowGraphJoin>
    }
  ): R<M.CreateFlowGraphResult> {
    const flowId = g.flow.flowId
    if (this.flows.has(flowId)) return ok({ _tag: "AlreadySatisfied", flowId })
    const existing = g.members.find((m) => this.executions.has(m.executionId))
    if (existing !== undefined) {
      return err(invalidInput(`create_flow_graph: member ${existing.executionId} already exists`))
    }
    return Either.gen(this, function*() {
      // sealed last: the graph's own members and edges go in first
      yield* this.createFlow(now, { ...g.flow, sealed: false })
      for (const m of g.members) {
        yield* this.createExecution(now, m)
        yield* this.addExecutionToFlow(now, { flowId, executionId: m.executionId })
      }
      for (const j of g.joins) yield* this.setEdgeGroupPolicy(now, { flowId, ...j })
      for (const e of g.edges) {
        const expectedGraphRevision = this.flows.get(flowId)!.graphRevision
        yield* this.stageDependencyEdge(now, { flowId, ...e, expectedGraphRevision })
        yield* this.applyDependencyToChild(now, { flowId, ...e })
      }
      const f = this.flows.get(flowId)!
      f.sealed = g.flow.sealed
      return { _tag: "Created", flowId, graphRevision: f.graphRevision } as const
    })
  }

  addExecutionToFlow(now: number, args: M.AddExecutionToFlowArgs): R<M.AddExecutionToFlowResult> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return err(notFound("flow"))
    const closed = this.flowClosed(f)
    if (closed !== undefined) return err(closed)
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (f.members.has(e.id)) {
      if (e.flowId !== undefined && e.flowId !== f.id) return err(conflict("ExecutionAlreadyInFlow"))
      e.flowId = f.id
      return ok({ _tag: "AlreadyMember", executionId: e.id, nodeCount: f.nodeCount })
    }
    if (e.flowId !== undefined) return err(conflict("ExecutionAlreadyInFlow"))
    f.members.add(e.id)
    e.flowId = f.id
    e.lastMutationAt = now
    f.nodeCount += 1
    f.graphRevision += 1
    f.lastMutationAt = now
    const pending = f.groups.get(e.id)
    if (pending !== undefined && e.group === undefined) e.group = pending
    return ok({ _tag: "Added", executionId: e.id, newNodeCount: f.nodeCount })
  }

  stageDependencyEdge(now: number, args: M.StageDependencyEdgeArgs): R<M.StageDependencyEdgeResult> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return err(notFound("flow"))
    const closed = this.flowClosed(f)
    if (closed !== undefined) return err(closed)
    if (f.graphRevision !== args.expectedGraphRevision) return err(contention("StaleGraphRevision"))
    if (!f.members.has(args.upstreamExecutionId) || !f.members.has(args.downstreamExecutionId)) {
      return err(stateError("ExecutionNotInFlow"))
    }
    // A cycle exists iff the upstream is reachable from the downstream.
    const seen = new Set<string>([args.downstreamExecutionId])
    const frontier: Array<Ids.ExecutionId> = [args.downstreamExecutionId]
    while (frontier.length > 0) {
      const node = frontier.shift()!
      if (node === args.upstreamExecutionId) return err(conflict("CycleDetected"))
      if (seen.size > CYCLE_WALK_LIMIT) return err(conflict("CycleDetected"))
      for (const edgeId of f.outgoing.get(node) ?? []) {
        const next = f.edges.get(edgeId)!.downstreamExecutionId
        if (!seen.has(next)) {
          seen.add(next)
          frontier.push(next)
        }
      }
    }
    const existing = f.edges.get(args.edgeId)
    if (existing !== undefined) return err(new Conflict({ kind: "DependencyAlreadyExists", existing }))
    const edge: M.EdgeSnapshot = {
      edgeId: args.edgeId,
      flowId: f.id,
      upstreamExecutionId: args.upstreamExecutionId,
      downstreamExecutionId: args.downstreamExecutionId,
      dependencyKind: args.dependencyKind,
      satisfactionCondition: "all_required",
      ...(args.dataPassingRef === undefined || args.dataPassingRef === "" ? {} : { dataPassingRef: args.dataPassingRef }),
      edgeState: "pending",
      createdAt: args.now ?? now,
      createdBy: "engine"
    }
    f.edges.set(edge.edgeId, edge)
    const add = (m: Map<Ids.ExecutionId, Set<Ids.EdgeId>>, k: Ids.ExecutionId) => {
      let s = m.get(k)
      if (s === undefined) m.set(k, s = new Set())
      s.add(edge.edgeId)
    }
    add(f.outgoing, edge.upstreamExecutionId)
    add(f.incoming, edge.downstreamExecutionId)
    f.graphRevision += 1
    f.edgeCount += 1
    f.lastMutationAt = args.now ?? now
    return ok({ _tag: "Staged", edgeId: edge.edgeId, newGraphRevision: f.graphRevision })
  }

  applyDependencyToChild(now: number, args: M.ApplyDependencyToChildArgs): R<M.ApplyDependencyToChildResult> {
    return Either.map(this.applyDependency(now, args), (dep) => {
      if (dep === undefined) return { _tag: "AlreadyApplied" } as const
      this.resolveLate(now, args.flowId, dep.child, dep.dep)
      return { _tag: "Applied", unsatisfiedCount: dep.child.unsatisfiedCount } as const
    })
  }

  /**
   * The child's side of an edge: its dependency record and join group. A new dependency makes a
   * satisfied all_of group pending again unless the child is terminal; a child that has not
   * started is blocked while its group is pending. `undefined` when the dependency exists already.
   */
  private applyDependency(
    now: number,
    args: M.ApplyDependencyToChildArgs
  ): R<{ readonly child: Exec; readonly dep: Dependency } | undefined> {
    const child = this.executions.get(args.downstreamExecutionId)
    if (child === undefined) return err(notFound("execution"))
    if (child.flowId !== undefined && child.flowId !== args.flowId) return err(conflict("ExecutionAlreadyInFlow"))
    if (child.deps?.has(args.edgeId) === true) return ok(undefined)
    const f = this.flows.get(args.flowId)
    const dep: Dependency = {
      edgeId: args.edgeId,
      upstream: args.upstreamExecutionId,
      dataPassingRef: args.dataPassingRef,
      state: "unsatisfied"
    }
    if (child.deps === undefined) child.deps = new Map()
    child.deps.set(args.edgeId, dep)
    child.unsatisfiedCount += 1
    if (child.group === undefined) {
      child.group = f?.groups.get(child.id) ??
        { policy: { _tag: "all_of" }, n: 0, succeeded: 0, failed: 0, skipped: 0, state: "pending", createdAt: now }
    }
    const group = child.group
    group.n += 1
    if (group.policy._tag === "all_of" && group.state === "satisfied" && child.phase !== "terminal") {
      group.state = "pending"
    }
    if (child.phase === "runnable" && group.state === "pending") {
      this.transition(child, {
        phase: "runnable",
        ownership: "unowned",
        eligibility: "blocked_by_dependencies",
        blockingReason: "waiting_for_children",
        blockingDetail: `${child.unsatisfiedCount} dep(s) unresolved incl ${args.edgeId}`,
        attemptState: child.attemptState
      }, now)
    }
    return ok({ child, dep })
  }

  /** A dependency whose upstream has already ended resolves now, with the upstream's outcome. */
  private resolveLate(now: number, flowId: Ids.FlowId, child: Exec, dep: Dependency): void {
    const f = this.flows.get(flowId)
    const up = this.executions.get(dep.upstream)
    if (f === undefined || up === undefined || up.phase !== "terminal" || up.outcome === "none") return
    if (dep.state !== "unsatisfied") return
    const queue: Array<[Exec, M.TerminalOutcome]> = []
    this.resolveEdge(f, child, dep, f.edges.get(dep.edgeId), up, up.outcome, now, queue)
    for (const [x, o] of queue) this.resolveFrom(f, x, o, now)
    this.settleFlow(f, now)
  }

  sealFlow(now: number, args: M.SealFlowArgs): R<M.SealFlowResult> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return err(notFound("flow"))
    if (f.state !== "open") return err(stateError("FlowAlreadyTerminal"))
    if (f.sealed) return ok({ _tag: "AlreadySealed", flowId: f.id, publicFlowState: this.flowState(f) })
    f.sealed = true
    f.lastMutationAt = now
    return ok({ _tag: "Sealed", flowId: f.id, publicFlowState: this.flowState(f) })
  }

  /**
   * Whether `edges` would close a cycle with the flow's edges: the members reachable from the
   * edges' downstream ends (along both) hold a cycle, or there are more than `CYCLE_WALK_LIMIT` of
   * them (refused conservatively). A cycle through a new edge lies among those members.
   */
  private closesCycle(f: Flow, edges: ReadonlyArray<M.FlowGraphEdge>): boolean {
    const added = new Map<Ids.ExecutionId, Array<Ids.ExecutionId>>()
    for (const e of edges) {
      const out = added.get(e.upstreamExecutionId)
      if (out === undefined) added.set(e.upstreamExecutionId, [e.downstreamExecutionId])
      else out.push(e.downstreamExecutionId)
    }
    const next = (node: Ids.ExecutionId): Array<Ids.ExecutionId> => [
      ...[...(f.outgoing.get(node) ?? [])].map((edgeId) => f.edges.get(edgeId)!.downstreamExecutionId),
      ...(added.get(node) ?? [])
    ]
    const reach = new Set<Ids.ExecutionId>()
    const queue: Array<Ids.ExecutionId> = []
    for (const e of edges) {
      if (!reach.has(e.downstreamExecutionId)) {
        reach.add(e.downstreamExecutionId)
        queue.push(e.downstreamExecutionId)
      }
    }
    for (let i = 0; i < queue.length; i++) {
      for (const n of next(queue[i]!)) {
        if (reach.has(n)) continue
        reach.add(n)
        if (reach.size > CYCLE_WALK_LIMIT) return true
        queue.push(n)
      }
    }
    // Kahn's algorithm over the reached members: a cycle leaves some never freed
    const indegree = new Map<Ids.ExecutionId, number>()
    for (const node of reach) for (const n of next(node)) indegree.set(n, (indegree.get(n) ?? 0) + 1)
    const free = [...reach].filter((node) => (indegree.get(node) ?? 0) === 0)
    let freed = 0
    while (free.length > 0) {
      const node = free.pop()!
      freed++
      for (const n of next(node)) {
        const d = indegree.get(n)! - 1
        indegree.set(n, d)
        if (d === 0) free.push(n)
      }
    }
    return freed < reach.size
  }

  /** The whole extension in this one step; the boundary validated its shape, so only the store can refuse it. */
  extendFlow(
    now: number,
    g: {
      readonly flowId: Ids.FlowId
      readonly members: ReadonlyArray<CreateExecutionCore>
      readonly edges: ReadonlyArray<M.FlowGraphEdge>
      readonly joins: ReadonlyArray<M.FlowGraphJoin>
    }
  ): R<M.ExtendFlowResult> {
    const flowId = g.flowId
    const f = this.flows.get(flowId)
    if (f === undefined) return err(notFound("flow"))
    const closed = this.flowClosed(f)
    if (closed !== undefined) return err(closed)
    if (g.members.every((m) => f.members.has(m.executionId)) && g.edges.every((e) => f.edges.has(e.edgeId))) {
      return ok({ _tag: "AlreadySatisfied", flowId })
    }
    const existing = g.members.find((m) => this.executions.has(m.executionId))
    if (existing !== undefined) return err(invalidInput(`extend_flow: member ${existing.executionId} already exists`))
    const isNew = new Set<string>(g.members.map((m) => m.executionId))
    const member = (id: Ids.ExecutionId) => f.members.has(id) || isNew.has(id)
    for (const e of g.edges) {
      if (!member(e.upstreamExecutionId) || !member(e.downstreamExecutionId)) return err(stateError("ExecutionNotInFlow"))
      const stored = f.edges.get(e.edgeId)
      if (stored !== undefined) return err(new Conflict({ kind: "DependencyAlreadyExists", existing: stored }))
    }
    if (this.closesCycle(f, g.edges)) return err(conflict("CycleDetected"))
    return Either.gen(this, function*() {
      for (const m of g.members) {
        yield* this.createExecution(now, m)
        yield* this.addExecutionToFlow(now, { flowId, executionId: m.executionId })
      }
      for (const j of g.joins) yield* this.setEdgeGroupPolicy(now, { flowId, ...j })
      // every edge is applied before any resolves, so a join counts all its new edges
      const applied: Array<{ readonly child: Exec; readonly dep: Dependency }> = []
      for (const e of g.edges) {
        yield* this.stageDependencyEdge(now, { flowId, ...e, expectedGraphRevision: f.graphRevision })
        const dep = yield* this.applyDependency(now, { flowId, ...e })
        if (dep !== undefined) applied.push(dep)
      }
      for (const { child, dep } of applied) this.resolveLate(now, flowId, child, dep)
      return { _tag: "Extended", flowId, graphRevision: f.graphRevision, nodeCount: f.nodeCount } as const
    })
  }

  setEdgeGroupPolicy(now: number, args: M.SetEdgeGroupPolicyArgs): R<M.SetEdgeGroupPolicyResult> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return err(notFound("flow"))
    const child = this.executions.get(args.downstreamExecutionId)
    const existing = child?.group ?? f.groups.get(args.downstreamExecutionId)
    if (existing !== undefined && existing.n > 0) {
      return err(invalidInput("edge_group_policy_already_fixed: dependencies already staged"))
    }
    if (existing !== undefined && existing.policy._tag === args.policy._tag) return ok({ _tag: "AlreadySet" })
    const group: EdgeGroup = { policy: args.policy, n: 0, succeeded: 0, failed: 0, skipped: 0, state: "pending", createdAt: now }
    f.groups.set(args.downstreamExecutionId, group)
    if (child !== undefined) child.group = group
    return ok({ _tag: "Set" })
  }

  cancelExecution(now: number, args: M.CancelExecutionArgs): R<M.CancelExecutionResult> {
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase === "terminal") return err(this.notActiveDetail(e))
    if (e.phase === "active" && args.source !== "operator_override") {
      if (e.ownership === "lease_revoked") return err(stateError("LeaseRevoked"))
      if (args.leaseId !== undefined && (e.leaseId !== args.leaseId || (args.leaseEpoch !== undefined && e.leaseEpoch !== args.leaseEpoch))) {
        return err(stateError("StaleLease"))
      }
    }
    // cancelled_by is the source, or the execution's own id when the source is empty
    this.cancelCore(e, args.reason, args.source === "" ? e.id : args.source, now, args.source !== "flow_cascade")
    return ok({ _tag: "Cancelled", executionId: e.id, publicState: "cancelled" })
  }

  changePriority(now: number, args: M.ChangePriorityArgs): R<M.ChangePriorityResult> {
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "runnable" || e.eligibility !== "eligible_now") return err(contention("ExecutionNotEligible"))
    e.priority = clampPriority(args.newPriority)
    e.lastMutationAt = now
    this.pushClaimable(e)
    return ok({ _tag: "Changed", executionId: e.id })
  }

  replayExecution(now: number, id: Ids.ExecutionId): R<M.ReplayExecutionResult> {
    const e = this.executions.get(id)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "terminal") return err(stateError("ExecutionNotTerminal"))
    if (e.replayCount >= (e.policy?.maxReplayCount ?? DEFAULT_MAX_REPLAYS)) return err(stateError("MaxReplaysExhausted"))
    e.replayCount += 1
    e.completedAt = undefined
    e.pendingReplayReason = "replay"
    e.pendingPreviousAttemptIndex = e.currentAttemptId === undefined ? undefined : e.currentAttemptIndex
    e.result = undefined
    if (e.outcome === "skipped" && e.flowId !== undefined) {
      const g = e.group
      for (const dep of e.deps?.values() ?? []) {
        if (dep.state === "impossible") dep.state = "unsatisfied"
      }
      e.unsatisfiedCount = [...(e.deps?.values() ?? [])].filter((d) => d.state === "unsatisfied").length
      if (g !== undefined) {
        g.failed = 0
        g.skipped = 0
        g.state = "pending"
      }
      this.transition(e, {
        phase: "runnable",
        ownership: "unowned",
        eligibility: "blocked_by_dependencies",
        blockingReason: "waiting_for_children",
        blockingDetail: `${e.unsatisfiedCount} dep(s) unresolved`,
        attemptState: "pending_replay_attempt"
      }, now)
      return ok({ _tag: "Replayed", publicState: "waiting_children" })
    }
    this.transition(e, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: "eligible_now",
      blockingReason: "waiting_for_worker",
      blockingDetail: "",
      attemptState: "pending_replay_attempt"
    }, now)
    return ok({ _tag: "Replayed", publicState: "waiting" })
  }

  revokeLease(now: number, args: M.RevokeLeaseArgs): R<M.RevokeLeaseResult> {
    const e = this.executions.get(args.executionId)
    if (e === undefined) return err(notFound("execution"))
    if (e.phase !== "active") {
      return e.workerInstanceId === undefined ? ok({ _tag: "AlreadySatisfied", reason: "no_active_lease" }) : err(this.notActiveDetail(e))
    }
    if (e.ownership === "lease_revoked") return ok({ _tag: "AlreadySatisfied", reason: "already_revoked" })
    if (e.ownership === "lease_expired_reclaimable") return ok({ _tag: "AlreadySatisfied", reason: "already_expired" })
    if (e.ownership !== "leased") return err(contention("NoActiveLease"))
    if (args.expectedLeaseId !== undefined && args.expectedLeaseId !== e.leaseId) return err(stateError("StaleLease"))
    const leaseId = e.leaseId!
    this.leaseEndsElsewhere(e)
    this.endRun(e, "lease_revoked", now, args.reason)
    e.leaseRevokedAt = now
    e.leaseRevokeReason = args.reason
    this.transition(e, {
      phase: "active",
      ownership: "lease_revoked",
      eligibility: "not_applicable",
      blockingReason: "waiting_for_worker",
      blockingDetail: `lease revoked: ${args.reason}`,
      attemptState: "attempt_interrupted"
    }, now)
    return ok({ _tag: "Revoked", leaseId, leaseEpoch: String(e.leaseEpoch) })
  }

  // -------------------------------------------------------------------------
  // Flow cancellation
  // -------------------------------------------------------------------------

  private owedMembers(f: Flow, policy: M.CancelFlowPolicy): Array<Ids.ExecutionId> {
    if (policy === "FlowOnly") return []
    return [...f.members].sort().filter((id) => {
      const e = this.executions.get(id)
      if (e === undefined || e.phase === "terminal") return false
      return policy === "CancelAll" || e.phase === "runnable"
    })
  }

  private flipFlow(f: Flow, policy: M.CancelFlowPolicy, reason: string, now: number, graceMs: number): void {
    f.cancelledAt = now
    f.cancelReason = reason
    f.cancellationPolicy = M.cancelFlowPolicyWire(policy)
    f.lastMutationAt = now
    for (const id of this.owedMembers(f, policy)) f.owed.add(id)
    if (f.owed.size === 0) {
      f.state = "cancelled"
    } else {
      f.state = "cancelling"
      f.backlogDueAt = now + graceMs
      this.cancelBacklog.add(f.id)
    }
  }

  /** Cancels up to `max` owed members of `f`; returns how many it cancelled. */
  private drainFlow(f: Flow, now: number, max: number): number {
    let done = 0
    for (const id of [...f.owed].sort()) {
      if (done >= max) break
      const e = this.executions.get(id)
      if (e !== undefined && e.phase !== "terminal") {
        this.cancelCore(e, f.cancelReason === undefined || f.cancelReason === "" ? "flow_cancelled" : f.cancelReason, "flow_cascade", now, false)
        done++
      }
      f.owed.delete(id)
    }
    this.settleFlow(f, now)
    return done
  }

  cancelFlow(now: number, args: { flowId: Ids.FlowId; policy: M.CancelFlowPolicy; reason: string }): R<M.CancelFlowResult> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return err(notFound("flow"))
    if (this.flowFinal(f)) return err(stateError("FlowAlreadyTerminal"))
    const members = [...f.members].sort()
    this.flipFlow(f, args.policy, args.reason, now, 0)
    if (f.state === "cancelling") this.drainFlow(f, now, INLINE_CANCEL_LIMIT)
    return ok({ _tag: "Cancelled", cancellationPolicy: M.cancelFlowPolicyWire(args.policy), memberExecutionIds: members })
  }

  cancelFlowHeader(now: number, args: M.CancelFlowHeaderArgs): R<M.CancelFlowHeader> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return err(notFound("flow"))
    const members = [...f.members].sort()
    if (this.flowFinal(f)) {
      return ok({
        _tag: "AlreadyTerminal",
        ...(f.cancellationPolicy === undefined ? {} : { storedCancellationPolicy: f.cancellationPolicy }),
        ...(f.cancelReason === undefined || f.cancelReason === "" ? {} : { storedCancelReason: f.cancelReason }),
        memberExecutionIds: members
      })
    }
    this.flipFlow(f, args.cancellationPolicy, args.reason, now, CANCEL_BACKLOG_GRACE_MS)
    return ok({
      _tag: "Cancelled",
      cancellationPolicy: M.cancelFlowPolicyWire(args.cancellationPolicy),
      memberExecutionIds: members
    })
  }

  ackCancelMember(now: number, args: M.AckCancelMemberArgs): R<void> {
    const f = this.flows.get(args.flowId)
    if (f === undefined) return ok(undefined)
    f.owed.delete(args.executionId)
    if (f.owed.size === 0 && f.state === "cancelling") this.settleFlow(f, now)
    return ok(undefined)
  }

  // -------------------------------------------------------------------------
  // Budgets and quotas
  // -------------------------------------------------------------------------

  private applyUsage(b: Budget | undefined, dims: ReadonlyArray<readonly [string, number]>, dedupKey: string | undefined, now: number): M.ReportUsageResult {
    if (b === undefined) return { _tag: "Ok" }
    if (dedupKey !== undefined && dedupKey !== "") {
      const seen = b.dedup.get(dedupKey)
      if (seen !== undefined && seen > now) return { _tag: "AlreadyApplied" }
    }
    const sorted = [...dims].sort((a, c) => (a[0] < c[0] ? -1 : a[0] > c[0] ? 1 : 0))
    for (const [dim, delta] of sorted) {
      const hard = b.hard.get(dim) ?? 0
      const current = b.usage.get(dim) ?? 0
      if (hard > 0 && current + delta > hard) {
        b.breachCount += 1
        b.lastBreachAt = now
        b.lastBreachDim = dim
        b.lastUpdatedAt = now
        return { _tag: "HardBreach", dimension: dim, currentUsage: current, hardLimit: hard }
      }
    }
    let result: M.ReportUsageResult = { _tag: "Ok" }
    for (const [dim, delta] of sorted) {
      const next = (b.usage.get(dim) ?? 0) + delta
      b.usage.set(dim, next)
      const soft = b.soft.get(dim) ?? 0
      if (result._tag === "Ok" && soft > 0 && next > soft) {
        b.softBreachCount += 1
        result = { _tag: "SoftBreach", dimension: dim, currentUsage: next, softLimit: soft }
      }
    }
    b.lastUpdatedAt = now
    if (dedupKey !== undefined && dedupKey !== "") b.dedup.set(dedupKey, now + DAY_MS)
    return result
  }

  reportUsage(now: number, budgetId: Ids.BudgetId, dims: M.UsageDimensions): R<M.ReportUsageResult> {
    return ok(this.applyUsage(this.budgets.get(budgetId), Object.entries(dims.custom), dims.dedupKey, now))
  }

  reportUsageAdmin(now: number, args: M.ReportUsageAdminArgs): R<M.ReportUsageResult> {
    const dims = args.dimensions.map((d, i) => [d, args.deltas[i]!] as const)
    return ok(this.applyUsage(this.budgets.get(args.budgetId), dims, args.dedupKey, now))
  }

  createBudget(now: number, args: M.CreateBudgetArgs): R<M.CreateBudgetResult> {
    if (this.budgets.has(args.budgetId)) return ok({ _tag: "AlreadySatisfied", budgetId: args.budgetId })
    const hard = new Map<string, number>()
    const soft = new Map<string, number>()
    args.dimensions.forEach((d, i) => {
      hard.set(d, args.hardLimits[i]!)
      soft.set(d, args.softLimits[i]!)
    })
    const b: Budget = {
      id: args.budgetId,
      scopeType: args.scopeType,
      scopeId: args.scopeId,
      enforcementMode: args.enforcementMode,
      onHardLimit: args.onHardLimit,
      onSoftLimit: args.onSoftLimit,
      resetIntervalMs: args.resetIntervalMs,
      hard,
      soft,
      usage: new Map(),
      breachCount: 0,
      softBreachCount: 0,
      lastBreachAt: undefined,
      lastBreachDim: undefined,
      nextResetAt: args.resetIntervalMs > 0 ? now + args.resetIntervalMs : undefined,
      createdAt: now,
      lastUpdatedAt: now,
      resetCount: 0,
      lastResetAt: undefined,
      dedup: new Map()
    }
    this.budgets.set(b.id, b)
    if (b.nextResetAt !== undefined) this.budgetResets.push(b.nextResetAt, b.id)
    return ok({ _tag: "Created", budgetId: b.id })
  }

  private resetBudgetCore(b: Budget, now: number): number {
    for (const dim of b.usage.keys()) b.usage.set(dim, 0)
    b.resetCount += 1
    b.lastResetAt = now
    b.lastUpdatedAt = now
    b.lastBreachAt = undefined
    b.lastBreachDim = undefined
    if (b.resetIntervalMs > 0) {
      b.nextResetAt = now + b.resetIntervalMs
      this.budgetResets.push(b.nextResetAt, b.id)
      return b.nextResetAt
    }
    b.nextResetAt = undefined
    return 0
  }

  resetBudget(now: number, id: Ids.BudgetId): R<M.ResetBudgetResult> {
    const b = this.budgets.get(id)
    if (b === undefined) return err(notFound("budget"))
    return ok({ _tag: "Reset", nextResetAt: this.resetBudgetCore(b, now) })
  }

  getBudgetStatus(_now: number, id: Ids.BudgetId): R<M.BudgetStatus> {
    const b = this.budgets.get(id)
    if (b === undefined) return err(notFound("budget"))
    const obj = (m: Map<string, number>) => recordOf([...m].sort((a, c) => (a[0] < c[0] ? -1 : 1)))
    return ok({
      budgetId: b.id,
      scopeType: b.scopeType,
      scopeId: b.scopeId,
      enforcementMode: b.enforcementMode,
      usage: obj(b.usage),
      hardLimits: obj(b.hard),
      softLimits: obj(b.soft),
      breachCount: b.breachCount,
      softBreachCount: b.softBreachCount,
      ...(b.lastBreachAt === undefined ? {} : { lastBreachAt: String(b.lastBreachAt) }),
      ...(b.lastBreachDim === undefined ? {} : { lastBreachDim: b.lastBreachDim }),
      ...(b.nextResetAt === undefined ? {} : { nextResetAt: String(b.nextResetAt) }),
      createdAt: String(b.createdAt)
    })
  }

  createQuotaPolicy(now: number, args: M.CreateQuotaPolicyArgs): R<M.CreateQuotaPolicyResult> {
    if (this.quotas.has(args.quotaPolicyId)) return ok({ _tag: "AlreadySatisfied", quotaPolicyId: args.quotaPolicyId })
    this.quotas.set(args.quotaPolicyId, { ...args, createdAt: now })
    return ok({ _tag: "Created", quotaPolicyId: args.quotaPolicyId })
  }

  // -------------------------------------------------------------------------
  // HMAC keystore
  // -------------------------------------------------------------------------

  rotate(now: number, args: M.RotateWaitpointHmacSecretAllArgs): R<EngineBackend.RotateResult> {
    const ks = this.keystore
    const entry = (result: Either.Either<M.RotateOutcome, EngineError>) => ok({ entries: [{ partition: 0, result }] })
    if (ks.currentKid === args.newKid) {
      const current = ks.secrets.get(args.newKid)
      if (current === undefined) {
        ks.secrets.set(args.newKid, { secretHex: args.newSecretHex, expiresAt: undefined })
        return entry(Either.right({ _tag: "Noop", kid: args.newKid }))
      }
      return sameSecret(current.secretHex, args.newSecretHex) ?
        entry(Either.right({ _tag: "Noop", kid: args.newKid })) :
        entry(Either.left(new Conflict({ kind: "RotationConflict", kid: args.newKid })))
    }
    let gcCount = 0
    for (const [kid, s] of ks.secrets) {
      if (kid !== ks.currentKid && (s.expiresAt === undefined || s.expiresAt <= 0 || s.expiresAt < now)) {
        ks.secrets.delete(kid)
        gcCount++
      }
    }
    const previousKid = ks.currentKid
    if (previousKid !== undefined) ks.secrets.get(previousKid)!.expiresAt = now + args.graceMs
    ks.secrets.set(args.newKid, { secretHex: args.newSecretHex, expiresAt: undefined })
    ks.currentKid = args.newKid
    return entry(Either.right({
      _tag: "Rotated",
      ...(previousKid === undefined ? {} : { previousKid }),
      newKid: args.newKid,
      gcCount
    }))
  }

  seed(_now: number, args: M.SeedWaitpointHmacSecretArgs): R<M.SeedOutcome> {
    const ks = this.keystore
    if (ks.currentKid === undefined) {
      ks.currentKid = args.kid
      ks.secrets.set(args.kid, { secretHex: args.secretHex, expiresAt: undefined })
      return ok({ _tag: "Seeded", kid: args.kid })
    }
    if (ks.currentKid !== args.kid) {
      return err(invalidInput(
        `seed_waitpoint_hmac_secret: stored current_kid ${ks.currentKid} differs from supplied kid ${args.kid}; ` +
          "use rotate_waitpoint_hmac_secret_all to change kid"
      ))
    }
    const current = ks.secrets.get(args.kid)
    if (current === undefined) {
      ks.secrets.set(args.kid, { secretHex: args.secretHex, expiresAt: undefined })
      return ok({ _tag: "Seeded", kid: args.kid })
    }
    return ok({ _tag: "AlreadySeeded", kid: args.kid, sameSecret: sameSecret(current.secretHex, args.secretHex) })
  }

  // -------------------------------------------------------------------------
  // Maintenance passes
  // -------------------------------------------------------------------------

  private drainHeap(
    heap: MinHeap,
    now: number,
    batch: number,
    apply: (key: string, score: number) => boolean
  ): PassCount {
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

  expireLeases(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.leaseExpiries, now, batch, (key, at) => {
      const e = this.executions.get(key as Ids.ExecutionId)
      if (e === undefined || e.phase !== "active" || e.ownership !== "leased" || e.leaseExpiresAt !== at) return false
      this.markExpired(e, now)
      return true
    }))
  }

  /** Whether `key` is still delayed until `at`. */
  private isDelayedAt(key: string, at: number): boolean {
    const e = this.executions.get(key as Ids.ExecutionId)
    return e !== undefined && e.phase === "runnable" && e.eligibility === "not_eligible_until_time" && e.delayUntil === at
  }

  /** Makes delayed `key` eligible if it is still delayed until `at`. */
  private promote(key: string, at: number, now: number): boolean {
    if (!this.isDelayedAt(key, at)) return false
    const e = this.executions.get(key as Ids.ExecutionId)!
    e.delayUntil = undefined
    this.transition(e, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: "eligible_now",
      blockingReason: "waiting_for_worker",
      blockingDetail: "",
      attemptState: e.attemptState
    }, now)
    return true
  }

  promoteDelayed(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.delayed, now, batch, (key, at) => this.promote(key, at, now)))
  }

  /** When the earliest delayed work of `lanes` is due, if any. */
  nextDue(lanes: ReadonlyArray<Ids.LaneId>): number | undefined {
    let due: number | undefined
    for (const lane of lanes) {
      const top = this.laneDelays.get(lane)?.peekValid((entry) => this.isDelayedAt(entry.key, entry.score))
      if (top !== undefined && (due === undefined || top.score < due)) due = top.score
    }
    return due
  }

  /** `promoteDelayed` for the delayed work of `lanes` alone. */
  promoteDue(now: number, lanes: ReadonlyArray<Ids.LaneId>, batch: number): R<number> {
    let processed = 0
    for (const lane of lanes) {
      const heap = this.laneDelays.get(lane)
      if (heap === undefined) continue
      processed += this.drainHeap(heap, now, batch - processed, (key, at) => this.promote(key, at, now)).processed
    }
    return ok(processed)
  }

  expireAttempts(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.attemptTimeouts, now, batch, (key, at) => {
      const e = this.executions.get(key as Ids.ExecutionId)
      if (e === undefined || e.phase !== "active" || e.attemptDeadlineAt !== at) return false
      this.leaseEndsElsewhere(e)
      this.recordFailure(e, "attempt_timeout", "Timeout", "timeout", now)
      this.finish(e, "expired", now, {
        attempt: "ended_failure",
        streamReason: "expired",
        failureReason: "attempt_timeout",
        publish: true
      })
      return true
    }))
  }

  expireExecutions(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.deadlines, now, batch, (key, at) => {
      const e = this.executions.get(key as Ids.ExecutionId)
      if (e === undefined || e.phase === "terminal" || e.executionDeadlineAt !== at) return false
      this.leaseEndsElsewhere(e)
      this.recordFailure(e, "execution_deadline", "Timeout", "timeout", now)
      this.finish(e, "expired", now, {
        attempt: "ended_failure",
        streamReason: "expired",
        failureReason: "execution_deadline",
        suspensionReason: "expired:execution_deadline",
        publish: true
      })
      return true
    }))
  }

  expireSuspensions(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.suspensionTimeouts, now, batch, (key, at) => {
      const e = this.executions.get(key as Ids.ExecutionId)
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
            this.recordFailure(e, `suspension_timeout:${behavior}`, "Timeout", "timeout", now)
          }
          this.finish(e, outcome, now, {
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
          this.closeSuspension(e, reason, now)
          this.transition(e, {
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
          this.transition(e, {
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

  expirePendingWaitpoints(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.pendingExpiries, now, batch, (key, at) => {
      const wp = this.waitpoints.get(key as Ids.WaitpointId)
      if (wp === undefined || wp.state !== "pending" || wp.expiresAt !== at) return false
      wp.state = "expired"
      wp.closedAt = now
      wp.closeReason = "expired"
      return true
    }))
  }

  /** Resolves dependencies whose upstream is terminal but still unresolved (the safety net, docs/design/flows.md#the-reconcile-pass). */
  /**
   * The safety net of inline resolution: every member blocked by dependencies
   * has each unresolved dependency whose upstream is terminal resolved, by its dependency record
   * (staged edge or not). Members that are not blocked are left alone. One per dependency resolved.
   */
  reconcileDependencies(now: number, batch: number): R<PassCount> {
    let processed = 0
    for (const f of this.flows.values()) {
      for (const childId of f.members) {
        const child = this.executions.get(childId)
        if (child === undefined || child.phase !== "runnable" || child.eligibility !== "blocked_by_dependencies") continue
        for (const dep of [...(child.deps?.values() ?? [])]) {
          if (dep.state !== "unsatisfied") continue
          const up = this.executions.get(dep.upstream)
          if (up === undefined || up.phase !== "terminal" || up.outcome === "none") continue
          const edge = f.edges.get(dep.edgeId)
          if (processed >= batch) return ok({ processed, more: true })
          const queue: Array<[Exec, M.TerminalOutcome]> = []
          this.resolveEdge(f, child, dep, edge, up, up.outcome, now, queue)
          for (const [x, o] of queue) this.resolveFrom(f, x, o, now)
          this.settleFlow(f, now)
          processed++
        }
      }
    }
    return ok({ processed, more: false })
  }

  drainCancelBacklog(now: number, batch: number): R<PassCount> {
    let processed = 0
    for (const id of [...this.cancelBacklog]) {
      const f = this.flows.get(id)
      if (f === undefined) {
        this.cancelBacklog.delete(id)
        continue
      }
      if (f.backlogDueAt !== undefined && f.backlogDueAt > now) continue
      if (processed >= batch) return ok({ processed, more: true })
      processed += this.drainFlow(f, now, batch - processed)
    }
    return ok({ processed, more: [...this.cancelBacklog].some((id) => (this.flows.get(id)?.backlogDueAt ?? 0) <= now) })
  }

  /** The retention of a terminal execution: `streamPolicy.retentionTtlMs`, else 24 h. */
  private retentionOf(e: Exec): number {
    return e.policy?.streamPolicy?.retentionTtlMs ?? DEFAULT_RETENTION_MS
  }

  /**
   * Deletes terminal executions outside flows whose retention ended (see `Maintenance`): the
   * execution and everything it owns. Dedup records past their window (create idempotency,
   * suspend, signal and usage dedup) go too; they are not counted.
   */
  trimRetention(now: number, batch: number): R<PassCount> {
    this.dropExpiredDedup(now)
    return ok(this.drainHeap(this.retentionDue, now, batch, (key) => {
      const e = this.executions.get(key as Ids.ExecutionId)
      if (e === undefined || e.phase !== "terminal" || e.flowId !== undefined || e.completedAt === undefined) {
        return false
      }
      // a replayed execution that ended again has a later entry of its own
      if (e.completedAt + this.retentionOf(e) > now) return false
      this.deleteExecution(e)
      return true
    }))
  }

  private dropExpiredDedup(now: number): void {
    const drop = (records: Map<string, { readonly expiresAt: number }>) => {
      for (const [key, r] of records) if (r.expiresAt <= now) records.delete(key)
    }
    drop(this.idempotency)
    drop(this.suspendDedup)
    drop(this.signalDedup)
    for (const b of this.budgets.values()) {
      for (const [key, expiresAt] of b.dedup) if (expiresAt <= now) b.dedup.delete(key)
    }
  }

  private deleteExecution(e: Exec): void {
    for (const w of e.waitpointIds) {
      const wp = this.waitpoints.get(w)
      if (wp === undefined) continue
      for (const sid of wp.signals) this.signals.delete(sid)
      this.waitpoints.delete(w)
    }
    for (const a of e.attempts) this.streams.delete(this.streamKey(e.id, a.index))
    this.grants.delete(e.id)
    this.executions.delete(e.id)
  }

  resetBudgets(now: number, batch: number): R<PassCount> {
    return ok(this.drainHeap(this.budgetResets, now, batch, (key, at) => {
      const b = this.budgets.get(key as Ids.BudgetId)
      if (b === undefined || b.nextResetAt !== at) return false
      this.resetBudgetCore(b, now)
      return true
    }))
  }
}

export interface PassCount {
  readonly processed: number
  readonly more: boolean
  /** When the pass's next timer is due (it may find that timer stale then). */
  readonly nextDueAt?: number | undefined
}

