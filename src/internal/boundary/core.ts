/**
 * What a backend implements (`BackendCore`), over the decoded, validated arguments the
 * boundary hands it.
 */
import type { Duration, Effect, Either, Option, Scope } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import type { BudgetId, ExecutionId, FlowId, LaneId, PartitionConfig } from "../../Ids.js"
import type * as M from "../../Model.js"

/** A handle after intake: the caller's value and its decoded payload. */
export interface HandleRef {
  readonly handle: M.Handle
  readonly payload: M.HandlePayload
}

/** A place in a lane's order (creation time, then execution id): what a lane cursor holds. */
export interface LanePosition {
  readonly at: number
  readonly id: ExecutionId
}

/**
 * `listLaneExecutions` after validation: `states` sorted without repeats (undefined: every
 * state), `limit` 1..listPageItems, `after` the decoded cursor (exclusive). The core answers the
 * page and, when the listing may go on, the position to continue after
 * (docs/design/reads.md#lane-queries).
 */
export interface LaneQuery {
  readonly laneId: LaneId
  readonly states: ReadonlyArray<M.PublicState> | undefined
  readonly kind: string | undefined
  readonly newestFirst: boolean
  readonly after: LanePosition | undefined
  readonly limit: number
}

/** A core's answer to a `LaneQuery`. */
export interface LanePage {
  readonly entries: ReadonlyArray<M.LaneExecutionEntry>
  readonly next: LanePosition | undefined
}

/** An operation of a core: fails with an engine error. */
export type Fx<A> = Effect.Effect<A, EngineError>

/** `createExecution` after validation: the policy is parsed, capabilities sorted. */
export interface CreateExecutionCore {
  readonly executionId: ExecutionId
  readonly namespace: M.CreateExecutionArgs["namespace"]
  readonly laneId: M.CreateExecutionArgs["laneId"]
  readonly executionKind: string
  readonly inputPayload: Uint8Array
  readonly payloadEncoding: string | undefined
  readonly priority: number
  readonly creatorIdentity: string
  readonly idempotencyKey: string | undefined
  readonly tags: Readonly<Record<string, string>>
  readonly delayUntil: number | undefined
  readonly executionDeadlineAt: number | undefined
  readonly policy: M.ExecutionPolicy | undefined
  /** The policy as stored: its snake_case JSON text, `""` when absent. */
  readonly policyJson: string
  readonly requiredCapabilities: ReadonlyArray<string>
  /** The creator's span context in its stored form (`compactTraceParent`), when given. */
  readonly traceContext: string | undefined
}

/**
 * What a backend implements: the same operations as `EngineBackend.Service`,
 * over validated arguments (defaults applied, handles decoded).
 */
export interface BackendCore {
  readonly label: M.BackendTag
  /** The deployment's partition counts (default `defaultPartitionConfig`). */
  readonly partitions?: PartitionConfig | undefined
  readonly claim: (args: M.ClaimArgs) => Fx<Option.Option<M.Handle>>
  /** Up to `max` claims in as few round trips as the backend can (`max` already checked). */
  readonly claimMany: (args: M.ClaimArgs, max: number) => Fx<ReadonlyArray<M.Handle>>
  readonly renew: (h: HandleRef) => Fx<M.LeaseRenewal>
  readonly progress: (h: HandleRef, percent: number | undefined, message: string | undefined) => Fx<void>
  readonly appendFrame: (h: HandleRef, frame: M.Frame) => Fx<M.AppendFrameOutcome>
  readonly complete: (h: HandleRef, payload: Uint8Array | undefined) => Fx<void>
  /** Each item as `complete`, in as few round trips as the backend can. */
  readonly completeMany: (
    items: ReadonlyArray<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }>
  ) => Fx<ReadonlyArray<Either.Either<void, EngineError>>>
  /**
   * `completeMany` then `claimMany` with the claimed executions' inputs (at most
   * `Limits.batchBytes` of them in all, the rest `None`), in one call where the store can.
   */
  readonly completeAndClaim: (
    items: ReadonlyArray<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }>,
    args: M.ClaimArgs,
    max: number
  ) => Fx<EngineBackend.CompleteAndClaimResult>
  readonly fail: (h: HandleRef, reason: M.FailureReason, classification: M.FailureClass) => Fx<M.FailOutcome>
  readonly cancel: (h: HandleRef, reason: string) => Fx<void>
  readonly suspend: (h: HandleRef, args: M.SuspendArgs) => Fx<M.SuspendOutcome>
  readonly createWaitpoint: (h: HandleRef, waitpointKey: string, expiresInMs: number) => Fx<M.PendingWaitpoint>
  readonly observeSignals: (h: HandleRef) => Fx<ReadonlyArray<M.ResumeSignal>>
  readonly claimFromReclaim: (token: M.ReclaimToken) => Fx<Option.Option<M.Handle>>
  readonly delay: (h: HandleRef, delayUntil: number) => Fx<void>
  readonly waitChildren: (h: HandleRef) => Fx<void>
  readonly claimForWorker: (args: M.ClaimForWorkerArgs) => Fx<M.ClaimForWorkerOutcome>
  /** Lanes checked (1..batchItems lane ids, without duplicates), the worker instance id measured. */
  readonly subscribeWork: (
    args: EngineBackend.SubscribeWorkArgs
  ) => Effect.Effect<EngineBackend.WorkSubscription, EngineError, Scope.Scope>
  /** `after` defaults filled, `limit` clamped to 1..Limits.eventPageItems, the offset's length checked. */
  readonly readEvents: (args: {
    readonly filter: M.EventFilter
    readonly after: M.EventStart
    readonly limit: number
  }) => Fx<M.EventPage>
  readonly subscribeEvents: (
    filter: M.EventFilter
  ) => Effect.Effect<EngineBackend.EventSubscription, EngineError, Scope.Scope>
  readonly describeExecution: (id: ExecutionId) => Fx<Option.Option<M.ExecutionSnapshot>>
  readonly describeFlow: (id: FlowId) => Fx<Option.Option<M.FlowSnapshot>>
  /** The flow's public state alone (`describeFlow`'s `publicFlowState`), from its record: the wait of `cancelFlow`. */
  readonly readFlowState: (id: FlowId) => Fx<Option.Option<string>>
  readonly listEdges: (args: M.ListEdgesArgs) => Fx<ReadonlyArray<M.EdgeSnapshot>>
  readonly describeEdge: (args: M.DescribeEdgeArgs) => Fx<Option.Option<M.EdgeSnapshot>>
  readonly resolveExecutionFlowId: (id: ExecutionId) => Fx<Option.Option<FlowId>>
  readonly getExecutionResult: (id: ExecutionId) => Fx<Option.Option<Uint8Array>>
  /** `None` when the execution does not exist. */
  readonly getExecutionInput: (id: ExecutionId) => Fx<Option.Option<M.ExecutionInput>>
  readonly getExecutionInputs: (ids: ReadonlyArray<ExecutionId>) => Fx<ReadonlyArray<Option.Option<M.ExecutionInput>>>
  /** `limit` is already clamped to 1..1000. */
  readonly listPendingWaitpoints: (
    args: M.ListPendingWaitpointsArgs & { readonly limit: number }
  ) => Fx<M.ListPendingWaitpointsResult>
  readonly readExecutionInfo: (id: ExecutionId) => Fx<Option.Option<M.ExecutionInfo>>
  readonly readExecutionState: (id: ExecutionId) => Fx<Option.Option<M.PublicState>>
  /** Listings receive the partition index; `limit` is ≥ 1 (a zero limit never reaches the core). */
  readonly listFlows: (partition: number, cursor: FlowId | undefined, limit: number) => Fx<M.ListFlowsPage>
  readonly listLanes: (cursor: M.ListLanesArgs["cursor"], limit: number) => Fx<M.ListLanesPage>
  readonly listSuspended: (partition: number, cursor: ExecutionId | undefined, limit: number) => Fx<M.ListSuspendedPage>
  readonly listExecutions: (
    partition: number,
    cursor: ExecutionId | undefined,
    limit: number
  ) => Fx<M.ListExecutionsPage>
  readonly listLaneExecutions: (query: LaneQuery) => Fx<LanePage>
  /** Every public state's count (0 included). */
  readonly countLaneExecutions: (laneId: LaneId) => Fx<Record<M.PublicState, number>>
  readonly deliverSignal: (args: M.DeliverSignalArgs) => Fx<M.DeliverSignalResult>
  readonly claimResumedExecution: (args: M.ClaimResumedExecutionArgs) => Fx<M.ClaimResumedExecutionResult>
  readonly createExecution: (args: CreateExecutionCore) => Fx<M.CreateExecutionResult>
  /** A batch in as few round trips as the backend can. */
  readonly createExecutions: (args: ReadonlyArray<CreateExecutionCore>) => Fx<ReadonlyArray<M.CreateExecutionResult>>
  readonly createFlow: (args: M.CreateFlowArgs) => Fx<M.CreateFlowResult>
  /** Validated: members new-looking and on the flow's partition, edges between members, acyclic. */
  readonly createFlowGraph: (args: {
    readonly flow: M.CreateFlowArgs
    readonly members: ReadonlyArray<CreateExecutionCore>
    readonly edges: ReadonlyArray<M.FlowGraphEdge>
    readonly joins: ReadonlyArray<M.FlowGraphJoin>
  }) => Fx<M.CreateFlowGraphResult>
  /**
   * Validated: members new-looking and on the flow's partition, edges on the flow's partition,
   * joins on new members. Membership, cycles and existing ids are the core's to check.
   */
  readonly extendFlow: (args: {
    readonly flowId: FlowId
    readonly members: ReadonlyArray<CreateExecutionCore>
    readonly edges: ReadonlyArray<M.FlowGraphEdge>
    readonly joins: ReadonlyArray<M.FlowGraphJoin>
  }) => Fx<M.ExtendFlowResult>
  readonly sealFlow: (args: M.SealFlowArgs) => Fx<M.SealFlowResult>
  readonly addExecutionToFlow: (args: M.AddExecutionToFlowArgs) => Fx<M.AddExecutionToFlowResult>
  readonly stageDependencyEdge: (args: M.StageDependencyEdgeArgs) => Fx<M.StageDependencyEdgeResult>
  readonly applyDependencyToChild: (args: M.ApplyDependencyToChildArgs) => Fx<M.ApplyDependencyToChildResult>
  readonly setEdgeGroupPolicy: (args: M.SetEdgeGroupPolicyArgs) => Fx<M.SetEdgeGroupPolicyResult>
  readonly cancelExecution: (args: M.CancelExecutionArgs) => Fx<M.CancelExecutionResult>
  readonly changePriority: (args: M.ChangePriorityArgs) => Fx<M.ChangePriorityResult>
  readonly replayExecution: (id: ExecutionId) => Fx<M.ReplayExecutionResult>
  readonly revokeLease: (args: M.RevokeLeaseArgs) => Fx<M.RevokeLeaseResult>
  /** The atomic header plus the member cascade; the wait is done by the boundary. */
  readonly cancelFlow: (args: { readonly flowId: FlowId; readonly policy: M.CancelFlowPolicy; readonly reason: string }) => Fx<M.CancelFlowResult>
  readonly cancelFlowHeader: (args: M.CancelFlowHeaderArgs) => Fx<M.CancelFlowHeader>
  readonly ackCancelMember: (args: M.AckCancelMemberArgs) => Fx<void>
  /** `h` is decoded but, the lease is not validated (docs/design/decisions.md#usage-reports-trust-the-handle). */
  readonly reportUsage: (h: HandleRef, budgetId: BudgetId, dimensions: M.UsageDimensions) => Fx<M.ReportUsageResult>
  readonly reportUsageAdmin: (args: M.ReportUsageAdminArgs) => Fx<M.ReportUsageResult>
  readonly createBudget: (args: M.CreateBudgetArgs) => Fx<M.CreateBudgetResult>
  readonly resetBudget: (id: BudgetId) => Fx<M.ResetBudgetResult>
  readonly getBudgetStatus: (id: BudgetId) => Fx<M.BudgetStatus>
  readonly createQuotaPolicy: (args: M.CreateQuotaPolicyArgs) => Fx<M.CreateQuotaPolicyResult>
  readonly readStream: (args: M.ReadStreamArgs) => Fx<M.StreamFrames>
  readonly tailStream: (args: M.TailStreamArgs) => Fx<M.StreamFrames>
  readonly readSummary: (args: M.StreamRef) => Fx<Option.Option<M.SummaryDocument>>
  readonly rotateWaitpointHmacSecretAll: (args: M.RotateWaitpointHmacSecretAllArgs) => Fx<EngineBackend.RotateResult>
  readonly seedWaitpointHmacSecret: (args: M.SeedWaitpointHmacSecretArgs) => Fx<M.SeedOutcome>
  readonly ping: () => Fx<void>
  readonly prepare: () => Fx<M.PrepareOutcome>
  readonly shutdownPrepare: (grace: Duration.Duration) => Fx<void>
}

/**
 * The operations of each area, as every backend core splits them into files of the same name
 * (docs/architecture.md, "Where each operation lives").
 */
export interface CoreAreas {
  readonly claim:
    | "claim"
    | "claimForWorker"
    | "claimFromReclaim"
    | "claimMany"
    | "claimResumedExecution"
    | "completeAndClaim"
  readonly lifecycle:
    | "cancel"
    | "complete"
    | "completeMany"
    | "createExecution"
    | "createExecutions"
    | "delay"
    | "fail"
    | "progress"
    | "renew"
    | "waitChildren"
  readonly flows:
    | "ackCancelMember"
    | "addExecutionToFlow"
    | "applyDependencyToChild"
    | "cancelFlow"
    | "cancelFlowHeader"
    | "createFlow"
    | "createFlowGraph"
    | "extendFlow"
    | "sealFlow"
    | "setEdgeGroupPolicy"
    | "stageDependencyEdge"
  readonly signals:
    | "createWaitpoint"
    | "deliverSignal"
    | "observeSignals"
    | "rotateWaitpointHmacSecretAll"
    | "seedWaitpointHmacSecret"
    | "suspend"
  readonly streams: "appendFrame" | "readStream" | "readSummary" | "tailStream"
  readonly budgets:
    | "createBudget"
    | "createQuotaPolicy"
    | "getBudgetStatus"
    | "reportUsage"
    | "reportUsageAdmin"
    | "resetBudget"
  readonly admin:
    | "cancelExecution"
    | "changePriority"
    | "ping"
    | "prepare"
    | "replayExecution"
    | "revokeLease"
  readonly events: "readEvents" | "subscribeEvents"
  readonly reads:
    | "describeEdge"
    | "describeExecution"
    | "describeFlow"
    | "readFlowState"
    | "getExecutionInput"
    | "getExecutionInputs"
    | "getExecutionResult"
    | "listEdges"
    | "listExecutions"
    | "listFlows"
    | "listLaneExecutions"
    | "countLaneExecutions"
    | "listLanes"
    | "listPendingWaitpoints"
    | "listSuspended"
    | "readExecutionInfo"
    | "readExecutionState"
    | "resolveExecutionFlowId"
}

/** The part of `BackendCore` that the area `A` of a backend provides. */
export type CoreArea<A extends keyof CoreAreas> = Pick<BackendCore, CoreAreas[A]>
