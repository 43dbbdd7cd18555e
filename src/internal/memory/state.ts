/** The records of the in-memory engine. */
import type { Deque, StoredEvent } from "./events.js"
import type * as Ids from "../../Ids.js"
import type * as M from "../../Model.js"

export type AttemptLifecycle =
  | "started"
  | "suspended"
  | "ended_success"
  | "ended_failure"
  | "ended_cancelled"
  | "interrupted_reclaimed"


/** A run of the attempt history (`M.AttemptRun`), completed when the run ends. */
export interface Run {
  readonly attemptIndex: Ids.AttemptIndex
  readonly kind: M.AttemptRunKind
  readonly workerId: Ids.WorkerId
  readonly workerInstanceId: Ids.WorkerInstanceId
  readonly startedAt: number
  endedAt?: number
  outcome: M.AttemptRunOutcome
  reason?: string
}

export interface Dependency {
  readonly edgeId: Ids.EdgeId
  readonly upstream: Ids.ExecutionId
  /** The data-passing reference given when the dependency was applied. */
  readonly dataPassingRef?: string | undefined
  state: "unsatisfied" | "satisfied" | "impossible"
}

export interface EdgeGroup {
  policy: M.EdgeDependencyPolicy
  n: number
  succeeded: number
  failed: number
  skipped: number
  state: M.EdgeGroupState
  readonly createdAt: number
}

/**
 * The fields of an execution that most executions never set (a renewal, a failure, a retry or a
 * replay, a cancellation, progress, a suspension and its waitpoints, dependencies, deadlines, a
 * trace context), in a record of their own made by the first write of a value other than the
 * default (docs/design/executions.md#the-memory-engines-records).
 */
class Rare {
  retryCount = 0
  replayCount = 0
  leaseReclaimCount = 0
  leaseLastRenewedAt: number | undefined = undefined
  leaseRevokedAt: number | undefined = undefined
  suspension: Suspension | undefined = undefined
  currentWaitpointId: Ids.WaitpointId | undefined = undefined
  progressPct: number | undefined = undefined
  progressMessage: string | undefined = undefined
  progressUpdatedAt: number | undefined = undefined
  failureReason: string | undefined = undefined
  lastFailure: M.LastFailure | undefined = undefined
  cancellationReason: string | undefined = undefined
  cancelledBy: string | undefined = undefined
  traceContext: string | undefined = undefined
  executionDeadlineAt: number | undefined = undefined
  attemptDeadlineAt: number | undefined = undefined
  deps: Map<Ids.EdgeId, Dependency> | undefined = undefined
  unsatisfiedCount = 0
  group: EdgeGroup | undefined = undefined
  signalCount = 0
  waitpointIds: Array<Ids.WaitpointId> | undefined = undefined
}

/** What a new execution is made of (`createExecution`). */
export interface ExecInit {
  readonly events: Deque<StoredEvent> | undefined
  readonly id: Ids.ExecutionId
  readonly namespace: Ids.Namespace
  readonly laneId: Ids.LaneId
  readonly kind: string
  readonly partition: number
  readonly creatorIdentity: string
  readonly priority: number
  readonly requiredCaps: ReadonlyArray<string>
  readonly claimGroup: string
  readonly delayUntil: number | undefined
  readonly createdAt: number
  readonly payload: Uint8Array
  readonly payloadEncoding: string | undefined
  readonly policy: M.ExecutionPolicy | undefined
  readonly tags: Record<string, string>
  readonly traceContext: string | undefined
  readonly executionDeadlineAt: number | undefined
}

/**
 * An execution. The fields every execution sets are its own; the rarely set ones (`Rare`) are
 * accessors over `rare`, which the first write of a value other than the default makes.
 */
export class Exec {
  /** Its `ExecutionCreated` event: what the creating step does to it later is folded into it. */
  created: StoredEvent | undefined = undefined
  /** Its events, oldest first (none yet: `undefined`); kept by id once it is deleted (events.ts). */
  events: Deque<StoredEvent> | undefined
  readonly id: Ids.ExecutionId
  readonly namespace: Ids.Namespace
  readonly laneId: Ids.LaneId
  readonly kind: string
  readonly partition: number
  readonly creatorIdentity: string
  flowId: Ids.FlowId | undefined = undefined
  priority: number
  readonly requiredCaps: ReadonlyArray<string>
  /** Its group in the claimable index: its kind and required capabilities (capabilities hold no newline). */
  readonly claimGroup: string
  delayUntil: number | undefined

  phase: M.LifecyclePhase = "runnable"
  ownership: M.OwnershipState = "unowned"
  eligibility: M.EligibilityState = "eligible_now"
  blockingReason: M.BlockingReason = "waiting_for_worker"
  blockingDetail = ""
  outcome: M.TerminalOutcome = "none"
  attemptState: M.AttemptState = "pending_first_attempt"
  publicState: M.PublicState = "waiting"

  totalAttemptCount = 0
  currentAttemptIndex = 0
  currentAttemptId: Ids.AttemptId | undefined = undefined

  leaseId: Ids.LeaseId | undefined = undefined
  leaseEpoch = 0
  workerId: Ids.WorkerId | undefined = undefined
  workerInstanceId: Ids.WorkerInstanceId | undefined = undefined
  leaseExpiresAt: number | undefined = undefined

  readonly createdAt: number
  startedAt: number | undefined = undefined
  completedAt: number | undefined = undefined
  lastMutationAt: number

  payload: Uint8Array
  readonly payloadEncoding: string | undefined
  readonly policy: M.ExecutionPolicy | undefined
  result: Uint8Array | undefined = undefined
  readonly tags: Record<string, string>
  /**
   * The state of its current attempt (`currentAttemptIndex`), read while `currentAttemptId` is set.
   * Only the current attempt is ever read, so no record of the earlier ones is kept: their
   * streams are found by index (0 to `totalAttemptCount` - 1).
   */
  attemptLifecycle: AttemptLifecycle = "started"
  /** The last `Limits.historyRuns` runs; absent until the first claim. */
  history: Array<Run> | undefined = undefined
  /** The rarely set fields, once one of them was written. */
  rare: Rare | undefined = undefined

  constructor(init: ExecInit) {
    this.events = init.events
    this.id = init.id
    this.namespace = init.namespace
    this.laneId = init.laneId
    this.kind = init.kind
    this.partition = init.partition
    this.creatorIdentity = init.creatorIdentity
    this.priority = init.priority
    this.requiredCaps = init.requiredCaps
    this.claimGroup = init.claimGroup
    this.delayUntil = init.delayUntil
    this.createdAt = init.createdAt
    this.lastMutationAt = init.createdAt
    this.payload = init.payload
    this.payloadEncoding = init.payloadEncoding
    this.policy = init.policy
    this.tags = init.tags
    if (init.traceContext !== undefined) this.more().traceContext = init.traceContext
    if (init.executionDeadlineAt !== undefined) this.more().executionDeadlineAt = init.executionDeadlineAt
  }

  private more(): Rare {
    return this.rare ??= new Rare()
  }

  get retryCount(): number {
    return this.rare?.retryCount ?? 0
  }
  set retryCount(v: number) {
    if (v !== 0 || this.rare !== undefined) this.more().retryCount = v
  }
  get replayCount(): number {
    return this.rare?.replayCount ?? 0
  }
  set replayCount(v: number) {
    if (v !== 0 || this.rare !== undefined) this.more().replayCount = v
  }
  get leaseReclaimCount(): number {
    return this.rare?.leaseReclaimCount ?? 0
  }
  set leaseReclaimCount(v: number) {
    if (v !== 0 || this.rare !== undefined) this.more().leaseReclaimCount = v
  }
  get leaseLastRenewedAt(): number | undefined {
    return this.rare?.leaseLastRenewedAt
  }
  set leaseLastRenewedAt(v: number | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().leaseLastRenewedAt = v
  }
  get leaseRevokedAt(): number | undefined {
    return this.rare?.leaseRevokedAt
  }
  set leaseRevokedAt(v: number | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().leaseRevokedAt = v
  }
  get suspension(): Suspension | undefined {
    return this.rare?.suspension
  }
  set suspension(v: Suspension | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().suspension = v
  }
  get currentWaitpointId(): Ids.WaitpointId | undefined {
    return this.rare?.currentWaitpointId
  }
  set currentWaitpointId(v: Ids.WaitpointId | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().currentWaitpointId = v
  }
  get progressPct(): number | undefined {
    return this.rare?.progressPct
  }
  set progressPct(v: number | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().progressPct = v
  }
  get progressMessage(): string | undefined {
    return this.rare?.progressMessage
  }
  set progressMessage(v: string | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().progressMessage = v
  }
  get progressUpdatedAt(): number | undefined {
    return this.rare?.progressUpdatedAt
  }
  set progressUpdatedAt(v: number | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().progressUpdatedAt = v
  }
  get failureReason(): string | undefined {
    return this.rare?.failureReason
  }
  set failureReason(v: string | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().failureReason = v
  }
  /** Absent until the first failure. */
  get lastFailure(): M.LastFailure | undefined {
    return this.rare?.lastFailure
  }
  set lastFailure(v: M.LastFailure | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().lastFailure = v
  }
  get cancellationReason(): string | undefined {
    return this.rare?.cancellationReason
  }
  set cancellationReason(v: string | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().cancellationReason = v
  }
  get cancelledBy(): string | undefined {
    return this.rare?.cancelledBy
  }
  set cancelledBy(v: string | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().cancelledBy = v
  }
  /** The creator's span context, compact (see `src/internal/traceContext.ts`). */
  get traceContext(): string | undefined {
    return this.rare?.traceContext
  }
  /** Cleared by the first terminal transition: a replayed execution runs without it. */
  get executionDeadlineAt(): number | undefined {
    return this.rare?.executionDeadlineAt
  }
  set executionDeadlineAt(v: number | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().executionDeadlineAt = v
  }
  get attemptDeadlineAt(): number | undefined {
    return this.rare?.attemptDeadlineAt
  }
  set attemptDeadlineAt(v: number | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().attemptDeadlineAt = v
  }
  /** Created when the first dependency is applied. */
  get deps(): Map<Ids.EdgeId, Dependency> | undefined {
    return this.rare?.deps
  }
  set deps(v: Map<Ids.EdgeId, Dependency> | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().deps = v
  }
  get unsatisfiedCount(): number {
    return this.rare?.unsatisfiedCount ?? 0
  }
  set unsatisfiedCount(v: number) {
    if (v !== 0 || this.rare !== undefined) this.more().unsatisfiedCount = v
  }
  get group(): EdgeGroup | undefined {
    return this.rare?.group
  }
  set group(v: EdgeGroup | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().group = v
  }
  get signalCount(): number {
    return this.rare?.signalCount ?? 0
  }
  set signalCount(v: number) {
    if (v !== 0 || this.rare !== undefined) this.more().signalCount = v
  }
  /** Its waitpoints, oldest first; absent until the first. */
  get waitpointIds(): Array<Ids.WaitpointId> | undefined {
    return this.rare?.waitpointIds
  }
  set waitpointIds(v: Array<Ids.WaitpointId> | undefined) {
    if (v !== undefined || this.rare !== undefined) this.more().waitpointIds = v
  }
}

export interface SignalRecord {
  readonly id: Ids.SignalId
  readonly executionId: Ids.ExecutionId
  readonly waitpointId: Ids.WaitpointId
  readonly name: string
  readonly category: string
  readonly sourceType: string
  readonly sourceIdentity: string
  readonly correlationId: string
  readonly payload: Uint8Array | undefined
  readonly acceptedAt: number
}

export interface Waitpoint {
  readonly id: Ids.WaitpointId
  readonly executionId: Ids.ExecutionId
  readonly attemptIndex: number
  suspensionId: Ids.SuspensionId | undefined
  readonly key: string
  readonly token: string
  state: "pending" | "active" | "closed" | "expired"
  readonly createdAt: number
  activatedAt: number | undefined
  satisfiedAt: number | undefined
  closedAt: number | undefined
  expiresAt: number | undefined
  closeReason: string | undefined
  signalCount: number
  matchedSignalCount: number
  lastSignalAt: number | undefined
  /** Every accepted signal, in arrival order (buffered ones included). */
  readonly signals: Array<Ids.SignalId>
}

export interface Suspension {
  readonly id: Ids.SuspensionId
  readonly attemptIndex: number
  readonly waitpointId: Ids.WaitpointId
  readonly waitpointKey: string
  readonly waitpointToken: string
  readonly additional: ReadonlyArray<M.WaitpointDetails>
  reasonCode: string
  readonly requestedBy: string
  readonly createdAt: number
  timeoutAt: number | undefined
  readonly timeoutBehavior: M.TimeoutBehavior
  readonly condition: M.ResumeCondition
  readonly resumePolicy: M.ResumePolicy
  readonly continuationMetadataPointer: string | undefined
  lastSignalAt: number | undefined
  satisfiedAt: number | undefined
  closedAt: number | undefined
  closeReason: string | undefined
  satisfiers: ReadonlyArray<Ids.SignalId>
}

export interface Flow {
  readonly id: Ids.FlowId
  readonly kind: string
  readonly namespace: Ids.Namespace
  readonly partition: number
  /** `open`, `cancelling` or `cancelled`: the public state of an open flow is derived from its members. */
  state: "open" | "cancelling" | "cancelled"
  /** Takes no new member and no new edge. */
  sealed: boolean
  /** The public state its last `FlowStateChanged` event reported (at creation: its state then). */
  eventState: string
  graphRevision: number
  nodeCount: number
  edgeCount: number
  readonly createdAt: number
  lastMutationAt: number
  cancelledAt: number | undefined
  cancelReason: string | undefined
  cancellationPolicy: string | undefined
  readonly members: Set<Ids.ExecutionId>
  readonly edges: Map<Ids.EdgeId, M.EdgeSnapshot>
  readonly outgoing: Map<Ids.ExecutionId, Set<Ids.EdgeId>>
  readonly incoming: Map<Ids.ExecutionId, Set<Ids.EdgeId>>
  /** Members a cancellation still owes. */
  readonly owed: Set<Ids.ExecutionId>
  backlogDueAt: number | undefined
  readonly tags: Record<string, string>
}

export interface StreamEntry {
  readonly id: string
  readonly ms: number
  readonly seq: number
  readonly fields: Record<string, string>
  /** The frame's payload bytes as appended (for the read page budget). */
  readonly size: number
}

export interface Stream {
  readonly executionId: Ids.ExecutionId
  readonly attemptIndex: number
  readonly attemptId: Ids.AttemptId
  readonly createdAt: number
  entries: Array<StreamEntry>
  closedAt: number | undefined
  closedReason: string | undefined
  frameCount: number
  totalBytes: number
  lastMs: number
  lastSeq: number
  lastFrameAt: number | undefined
  hasDurableFrame: boolean
  /** Set while the stream has only best-effort frames: it vanishes at this time. */
  expiresAt: number | undefined
  emaRate: number | undefined
  summary:
    | {
      document: Record<string, unknown>
      version: number
      firstAppliedMs: number
      lastUpdatedMs: number
    }
    | undefined
}

export interface Budget {
  readonly id: Ids.BudgetId
  readonly scopeType: string
  readonly scopeId: string
  readonly enforcementMode: string
  readonly onHardLimit: string
  readonly onSoftLimit: string
  readonly resetIntervalMs: number
  readonly hard: Map<string, number>
  readonly soft: Map<string, number>
  readonly usage: Map<string, number>
  breachCount: number
  softBreachCount: number
  lastBreachAt: number | undefined
  lastBreachDim: string | undefined
  nextResetAt: number | undefined
  readonly createdAt: number
  lastUpdatedAt: number
  resetCount: number
  lastResetAt: number | undefined
  readonly dedup: Map<string, number>
}

export interface Grant {
  readonly executionId: Ids.ExecutionId
  readonly workerId: Ids.WorkerId
  readonly grantKey: string
  readonly expiresAt: number
}

export interface Keystore {
  currentKid: string | undefined
  readonly secrets: Map<string, { readonly secretHex: string; expiresAt: number | undefined }>
}
