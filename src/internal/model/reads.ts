/**
 * Reads: execution and flow snapshots, attempt history, inputs, edges, and the listings.
 * Re-exported by `Model`.
 */
import { Schema } from "effect"
import {
  AttemptId,
  AttemptIndex,
  EdgeId,
  ExecutionId,
  FlowId,
  LaneId,
  LeaseEpoch,
  LeaseId,
  Namespace,
  PartitionKey,
  TimestampMs,
  WaitpointId,
  WorkerId,
  WorkerInstanceId
} from "../../Ids.js"
import { PublicState, StateVector } from "./common.js"
import { FailureClass } from "./lifecycle.js"
import { EdgeDependencyPolicy } from "./flows.js"
import { NonNegativeInt, Tags } from "./fields.js"

// ---------------------------------------------------------------------------
// Reads (docs/design/reads.md#reads)
// ---------------------------------------------------------------------------
/**
 * How a run of an attempt began: a new attempt (`initial`, `retry`, `replay`, `reclaim` — the
 * last after another worker's lease was lost), or the interrupted attempt taken up again
 * (`resumed`, after a suspension, a delay or a wait for children).
 *
 * @since 0.1.0
 */
export const AttemptRunKind = Schema.Literal("initial", "retry", "replay", "reclaim", "resumed")
/** @since 0.1.0 */
export type AttemptRunKind = typeof AttemptRunKind.Type

/**
 * How a run of an attempt ended (`running` while its lease is held).
 *
 * @since 0.1.0
 */
export const AttemptRunOutcome = Schema.Literal(
  "running",
  "completed",
  "failed",
  "retry_scheduled",
  "cancelled",
  "expired",
  "skipped",
  "lease_expired",
  "lease_revoked",
  "suspended",
  "delayed",
  "waiting_children"
)
/** @since 0.1.0 */
export type AttemptRunOutcome = typeof AttemptRunOutcome.Type

/**
 * One run of an attempt under one lease: from a claim to the transition that
 * let go of the lease. An attempt that is suspended and resumed has one run
 * per lease. `reason` is cut to `Limits.historyReasonBytes` (see
 * docs/design/executions.md, "Attempt history").
 *
 * @since 0.1.0
 */
export const AttemptRun = Schema.Struct({
  attemptIndex: AttemptIndex,
  kind: AttemptRunKind,
  workerId: WorkerId,
  workerInstanceId: WorkerInstanceId,
  startedAt: TimestampMs,
  endedAt: Schema.optional(TimestampMs),
  outcome: AttemptRunOutcome,
  reason: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type AttemptRun = typeof AttemptRun.Type

/**
 * The last failure of an execution: a `fail` (retried or not), an expiry, or
 * the reclaim cap. `category` is the one the retry policy matched.
 *
 * @since 0.1.0
 */
export const LastFailure = Schema.Struct({
  reason: Schema.String,
  classification: FailureClass,
  category: Schema.String,
  at: TimestampMs
})
/** @since 0.1.0 */
export type LastFailure = typeof LastFailure.Type

/**
 * What the worker last reported with `progress` (`ctx.progress`).
 *
 * @since 0.1.0
 */
export const ProgressReport = Schema.Struct({
  percent: Schema.optional(Schema.Int),
  message: Schema.optional(Schema.String),
  updatedAt: TimestampMs
})
/** @since 0.1.0 */
export type ProgressReport = typeof ProgressReport.Type

/** @since 0.1.0 */
export const ExecutionSnapshot = Schema.Struct({
  executionId: ExecutionId,
  flowId: Schema.optional(FlowId),
  laneId: LaneId,
  namespace: Namespace,
  publicState: PublicState,
  blockingReason: Schema.optional(Schema.String),
  blockingDetail: Schema.optional(Schema.String),
  currentAttempt: Schema.optional(Schema.Struct({ attemptId: AttemptId, attemptIndex: AttemptIndex })),
  currentLease: Schema.optional(Schema.Struct({
    leaseEpoch: LeaseEpoch,
    workerInstanceId: WorkerInstanceId,
    expiresAt: TimestampMs,
    leaseId: LeaseId,
    attemptIndex: AttemptIndex,
    lastHeartbeatAt: Schema.optional(TimestampMs)
  })),
  currentWaitpoint: Schema.optional(WaitpointId),
  createdAt: TimestampMs,
  /** The first claim. */
  startedAt: Schema.optional(TimestampMs),
  /** The terminal transition (cleared by a replay). */
  completedAt: Schema.optional(TimestampMs),
  lastMutationAt: TimestampMs,
  totalAttemptCount: NonNegativeInt,
  tags: Tags,
  progress: Schema.optional(ProgressReport),
  lastFailure: Schema.optional(LastFailure),
  /** Why it was cancelled, when it was. */
  cancellationReason: Schema.optional(Schema.String),
  /** The last `Limits.historyRuns` runs, oldest first (`[]` before the first claim). */
  attemptHistory: Schema.Array(AttemptRun)
})
/** @since 0.1.0 */
export type ExecutionSnapshot = typeof ExecutionSnapshot.Type

/**
 * What a worker needs to run an execution: its kind and input payload.
 *
 * @since 0.1.0
 */
export const ExecutionInput = Schema.Struct({
  executionId: ExecutionId,
  executionKind: Schema.String,
  laneId: LaneId,
  namespace: Namespace,
  payload: Schema.Uint8ArrayFromSelf,
  payloadEncoding: Schema.optional(Schema.String),
  /** The creator's span context, when it gave one (`CreateExecutionArgs.traceParent`). */
  traceParent: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ExecutionInput = typeof ExecutionInput.Type

/** @since 0.1.0 */
export const ExecutionInfo = Schema.Struct({
  executionId: ExecutionId,
  namespace: Namespace,
  laneId: LaneId,
  priority: Schema.Int,
  executionKind: Schema.String,
  stateVector: StateVector,
  publicState: PublicState,
  createdAt: Schema.String,
  startedAt: Schema.optional(Schema.String),
  completedAt: Schema.optional(Schema.String),
  currentAttemptIndex: NonNegativeInt,
  flowId: Schema.optional(Schema.String),
  blockingDetail: Schema.String,
  /** Why a cancelled execution was cancelled (its `cancel` / `cancelExecution` reason, or the engine's). */
  cancellationReason: Schema.optional(Schema.String),
  /** Who cancelled it: `worker`, the `cancelExecution` source, `flow_cascade`, `operator_override` (a join's siblings). */
  cancelledBy: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ExecutionInfo = typeof ExecutionInfo.Type

// ---------------------------------------------------------------------------
// Flow reads: snapshots, edges (docs/design/flows.md)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const EdgeGroupState = Schema.Literal("pending", "satisfied", "impossible", "cancelled")
/** @since 0.1.0 */
export type EdgeGroupState = typeof EdgeGroupState.Type

/** @since 0.1.0 */
export const EdgeGroupSnapshot = Schema.Struct({
  downstreamExecutionId: ExecutionId,
  policy: EdgeDependencyPolicy,
  totalDeps: NonNegativeInt,
  satisfiedCount: NonNegativeInt,
  failedCount: NonNegativeInt,
  skippedCount: NonNegativeInt,
  runningCount: NonNegativeInt,
  groupState: EdgeGroupState
})
/** @since 0.1.0 */
export type EdgeGroupSnapshot = typeof EdgeGroupSnapshot.Type

/** @since 0.1.0 */
export const FlowSnapshot = Schema.Struct({
  flowId: FlowId,
  flowKind: Schema.String,
  namespace: Namespace,
  /**
   * Derived from the members (docs/guide.md, "Flows that grow while they run"): `open` (no member
   * yet), `running` (a member is not terminal), `completed` / `failed` (every member terminal),
   * `cancelling`, `cancelled`.
   */
  publicFlowState: Schema.String,
  /** A sealed flow takes no new member and no new edge. */
  sealed: Schema.Boolean,
  graphRevision: NonNegativeInt,
  nodeCount: NonNegativeInt,
  edgeCount: NonNegativeInt,
  createdAt: TimestampMs,
  lastMutationAt: TimestampMs,
  cancelledAt: Schema.optional(TimestampMs),
  cancelReason: Schema.optional(Schema.String),
  cancellationPolicy: Schema.optional(Schema.String),
  tags: Tags,
  edgeGroups: Schema.Array(EdgeGroupSnapshot)
})
/** @since 0.1.0 */
export type FlowSnapshot = typeof FlowSnapshot.Type

/** @since 0.1.0 */
export const EdgeSnapshot = Schema.Struct({
  edgeId: EdgeId,
  flowId: FlowId,
  upstreamExecutionId: ExecutionId,
  downstreamExecutionId: ExecutionId,
  dependencyKind: Schema.String,
  satisfactionCondition: Schema.String,
  dataPassingRef: Schema.optional(Schema.String),
  edgeState: Schema.String,
  createdAt: TimestampMs,
  createdBy: Schema.String
})
/** @since 0.1.0 */
export type EdgeSnapshot = typeof EdgeSnapshot.Type

/** @since 0.1.0 */
export const EdgeDirection = Schema.Union(
  Schema.TaggedStruct("Outgoing", { fromNode: ExecutionId }),
  Schema.TaggedStruct("Incoming", { toNode: ExecutionId })
)
/** @since 0.1.0 */
export type EdgeDirection = typeof EdgeDirection.Type

/** @since 0.1.0 */
export const ListEdgesArgs = Schema.Struct({ flowId: FlowId, direction: EdgeDirection })
/** @since 0.1.0 */
export type ListEdgesArgs = typeof ListEdgesArgs.Type

/** @since 0.1.0 */
export const DescribeEdgeArgs = Schema.Struct({ flowId: FlowId, edgeId: EdgeId })
/** @since 0.1.0 */
export type DescribeEdgeArgs = typeof DescribeEdgeArgs.Type

/** @since 0.1.0 */
export const FlowStatus = Schema.Literal("Active", "Completed", "Failed", "Cancelled", "Unknown")
/** @since 0.1.0 */
export type FlowStatus = typeof FlowStatus.Type

/** @since 0.1.0 */
export const flowStatusOf = (publicFlowState: string): FlowStatus => {
  switch (publicFlowState) {
    case "open":
    case "running":
    case "blocked":
      return "Active"
    case "completed":
      return "Completed"
    case "failed":
      return "Failed"
    case "cancelled":
      return "Cancelled"
    default:
      return "Unknown"
  }
}

// ---------------------------------------------------------------------------
// Listings (docs/design/reads.md#listings)
// ---------------------------------------------------------------------------

const Limit = Schema.Int.pipe(Schema.nonNegative())

/** @since 0.1.0 */
export const ListFlowsArgs = Schema.Struct({ partition: PartitionKey, cursor: Schema.optional(FlowId), limit: Limit })
/** @since 0.1.0 */
export type ListFlowsArgs = typeof ListFlowsArgs.Type
/** @since 0.1.0 */
export const FlowSummary = Schema.Struct({ flowId: FlowId, createdAt: TimestampMs, status: FlowStatus })
/** @since 0.1.0 */
export type FlowSummary = typeof FlowSummary.Type
/** @since 0.1.0 */
export const ListFlowsPage = Schema.Struct({ flows: Schema.Array(FlowSummary), nextCursor: Schema.optional(FlowId) })
/** @since 0.1.0 */
export type ListFlowsPage = typeof ListFlowsPage.Type

/** @since 0.1.0 */
export const ListLanesArgs = Schema.Struct({ cursor: Schema.optional(LaneId), limit: Limit })
/** @since 0.1.0 */
export type ListLanesArgs = typeof ListLanesArgs.Type
/** @since 0.1.0 */
export const ListLanesPage = Schema.Struct({ lanes: Schema.Array(LaneId), nextCursor: Schema.optional(LaneId) })
/** @since 0.1.0 */
export type ListLanesPage = typeof ListLanesPage.Type

/** @since 0.1.0 */
export const ListSuspendedArgs = Schema.Struct({
  partition: PartitionKey,
  cursor: Schema.optional(ExecutionId),
  limit: Limit
})
/** @since 0.1.0 */
export type ListSuspendedArgs = typeof ListSuspendedArgs.Type
/** @since 0.1.0 */
export const SuspendedExecutionEntry = Schema.Struct({
  executionId: ExecutionId,
  suspendedAtMs: TimestampMs,
  reason: Schema.String
})
/** @since 0.1.0 */
export type SuspendedExecutionEntry = typeof SuspendedExecutionEntry.Type
/** @since 0.1.0 */
export const ListSuspendedPage = Schema.Struct({
  entries: Schema.Array(SuspendedExecutionEntry),
  nextCursor: Schema.optional(ExecutionId)
})
/** @since 0.1.0 */
export type ListSuspendedPage = typeof ListSuspendedPage.Type

/** @since 0.1.0 */
export const ListExecutionsArgs = Schema.Struct({
  partition: PartitionKey,
  cursor: Schema.optional(ExecutionId),
  limit: Limit
})
/** @since 0.1.0 */
export type ListExecutionsArgs = typeof ListExecutionsArgs.Type
/** @since 0.1.0 */
export const ListExecutionsPage = Schema.Struct({
  executions: Schema.Array(ExecutionId),
  nextCursor: Schema.optional(ExecutionId)
})
/** @since 0.1.0 */
export type ListExecutionsPage = typeof ListExecutionsPage.Type

/** "no timeout" score of the suspended index. @since 0.1.0 */
export const NO_TIMEOUT_SCORE = 9_999_999_999_999

// ---------------------------------------------------------------------------
// Lane queries (docs/design/reads.md#lane-queries)
// ---------------------------------------------------------------------------

/** The order of a lane listing: by creation time, ties by execution id. @since 0.1.0 */
export const LaneOrder = Schema.Literal("newest", "oldest")
/** @since 0.1.0 */
export type LaneOrder = typeof LaneOrder.Type

/**
 * A page of a lane's executions, across every partition. `states` (one or several public
 * states) and `executionKind` filter; `order` defaults to `newest`; `cursor` is the opaque
 * `nextCursor` of the previous page. A page examines a bounded number of index entries
 * (`Limits.laneScanItems`): a filter that matches rarely may answer a short (even empty) page
 * with a `nextCursor` to continue from.
 *
 * @since 0.1.0
 */
export const ListLaneExecutionsArgs = Schema.Struct({
  laneId: LaneId,
  states: Schema.optional(Schema.Array(PublicState)),
  executionKind: Schema.optional(Schema.String),
  order: Schema.optional(LaneOrder),
  cursor: Schema.optional(Schema.String),
  limit: Limit
})
/** @since 0.1.0 */
export type ListLaneExecutionsArgs = typeof ListLaneExecutionsArgs.Type
/** @since 0.1.0 */
export const LaneExecutionEntry = Schema.Struct({
  executionId: ExecutionId,
  publicState: PublicState,
  executionKind: Schema.String,
  createdAt: TimestampMs
})
/** @since 0.1.0 */
export type LaneExecutionEntry = typeof LaneExecutionEntry.Type
/** @since 0.1.0 */
export const ListLaneExecutionsPage = Schema.Struct({
  executions: Schema.Array(LaneExecutionEntry),
  /** Set when the listing may go on: pass it unchanged as the next call's `cursor`. */
  nextCursor: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type ListLaneExecutionsPage = typeof ListLaneExecutionsPage.Type

/** How many executions of a lane are in each public state (every state listed, 0 when none). @since 0.1.0 */
export const LaneExecutionCounts = Schema.Struct({
  laneId: LaneId,
  total: NonNegativeInt,
  byState: Schema.Record({ key: PublicState, value: NonNegativeInt })
})
/** @since 0.1.0 */
export type LaneExecutionCounts = typeof LaneExecutionCounts.Type
