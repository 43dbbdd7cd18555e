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

export interface Exec {
  /** Its `ExecutionCreated` event: what the creating step does to it later is folded into it. */
  created?: StoredEvent | undefined
  /** Its events, oldest first (none yet: `undefined`); kept by id once it is deleted (events.ts). */
  events: Deque<StoredEvent> | undefined
  readonly id: Ids.ExecutionId
  readonly namespace: Ids.Namespace
  readonly laneId: Ids.LaneId
  readonly kind: string
  readonly partition: number
  readonly creatorIdentity: string
  flowId: Ids.FlowId | undefined
  priority: number
  readonly requiredCaps: ReadonlyArray<string>
  /** Its group in the claimable index: its kind and required capabilities (capabilities hold no newline). */
  readonly claimGroup: string
  delayUntil: number | undefined

  phase: M.LifecyclePhase
  ownership: M.OwnershipState
  eligibility: M.EligibilityState
  blockingReason: M.BlockingReason
  blockingDetail: string
  outcome: M.TerminalOutcome
  attemptState: M.AttemptState
  publicState: M.PublicState

  totalAttemptCount: number
  currentAttemptIndex: number
  currentAttemptId: Ids.AttemptId | undefined
  retryCount: number
  replayCount: number
  leaseReclaimCount: number

  leaseId: Ids.LeaseId | undefined
  leaseEpoch: number
  workerId: Ids.WorkerId | undefined
  workerInstanceId: Ids.WorkerInstanceId | undefined
  leaseExpiresAt: number | undefined
  leaseLastRenewedAt: number | undefined
  leaseRevokedAt: number | undefined

  suspension: Suspension | undefined
  currentWaitpointId: Ids.WaitpointId | undefined


  progressPct: number | undefined
  progressMessage: string | undefined
  progressUpdatedAt: number | undefined

  failureReason: string | undefined
  /** Absent until the first failure. */
  lastFailure: M.LastFailure | undefined
  cancellationReason: string | undefined
  cancelledBy: string | undefined

  readonly createdAt: number
  startedAt: number | undefined
  completedAt: number | undefined
  lastMutationAt: number

  payload: Uint8Array
  readonly payloadEncoding: string | undefined
  readonly policy: M.ExecutionPolicy | undefined
  result: Uint8Array | undefined
  readonly tags: Record<string, string>
  /**
   * The state of its current attempt (`currentAttemptIndex`), read while `currentAttemptId` is set.
   * Only the current attempt is ever read, so no record of the earlier ones is kept: their
   * streams are found by index (0 to `totalAttemptCount` - 1).
   */
  attemptLifecycle: AttemptLifecycle
  /** The last `Limits.historyRuns` runs; absent until the first claim. */
  history: Array<Run> | undefined
  /** The creator's span context, compact (see `src/internal/traceContext.ts`). */
  readonly traceContext: string | undefined
  /** Cleared by the first terminal transition: a replayed execution runs without it. */
  executionDeadlineAt: number | undefined
  attemptDeadlineAt: number | undefined

  /** Created when the first dependency is applied. */
  deps: Map<Ids.EdgeId, Dependency> | undefined
  unsatisfiedCount: number
  group: EdgeGroup | undefined

  signalCount: number
  /** Its waitpoints, oldest first; absent until the first. */
  waitpointIds: Array<Ids.WaitpointId> | undefined
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
