/**
 * The engine's write and read surface as one Effect service (docs/design/).
 * Every backend layer (memory, Valkey, Postgres) provides it.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Either, Option, Redacted, Scope } from "effect"
import { Context } from "effect"
import type { EngineError } from "./EngineError.js"
import type { BudgetId, ExecutionId, FlowId, LaneId, WorkerInstanceId } from "./Ids.js"
import type * as M from "./Model.js"

/**
 * @since 0.1.0
 */
export declare namespace EngineBackend {
  /**
   * One readonly function per operation. Values, not methods: a service can be
   * wrapped (retries, spans, test doubles) by building a new record from it.
   *
   * @since 0.1.0
   */
  export interface Service {
    readonly backendLabel: M.BackendTag

    // --- claim and lifecycle (worker hot path) -----------------------------
    readonly claim: (args: M.ClaimArgs) => Effect.Effect<Option.Option<M.Handle>, EngineError>
    /**
     * Up to `max` claims (1..1000) in as few round trips as the backend allows: each handle is what
     * `claim` would have returned, in claim order; fewer (or none) when the lane runs out.
     */
    readonly claimMany: (args: M.ClaimArgs, max: number) => Effect.Effect<ReadonlyArray<M.Handle>, EngineError>
    readonly renew: (handle: M.Handle) => Effect.Effect<M.LeaseRenewal, EngineError>
    readonly progress: (
      handle: M.Handle,
      args: { readonly percent?: number | undefined; readonly message?: string | undefined }
    ) => Effect.Effect<void, EngineError>
    readonly appendFrame: (handle: M.Handle, frame: M.FrameInput) => Effect.Effect<M.AppendFrameOutcome, EngineError>
    readonly complete: (
      handle: M.Handle,
      args?: { readonly payload?: Uint8Array | undefined }
    ) => Effect.Effect<void, EngineError>
    /**
     * Several `complete`s in as few round trips as the backend allows (1..1000 items). Each item's
     * outcome is at its index: success, or the error its own `complete` would have failed with.
     * A batch that does not validate (its size, a handle, a payload) fails as a whole and writes
     * nothing.
     */
    readonly completeMany: (
      items: ReadonlyArray<{ readonly handle: M.Handle; readonly payload?: Uint8Array | undefined }>
    ) => Effect.Effect<ReadonlyArray<Either.Either<void, EngineError>>, EngineError>
    /**
     * Completes a batch and claims the next work in one call where the store allows (the worker's
     * completion batcher: docs/worker.md, "Claims and completions in one call"). `items` as
     * `completeMany` (0..1000; each fenced on its own, its outcome at its index), then up to
     * `claim.max` claims (0..1000) as `claimMany(claim.args, claim.max)`, which see what the
     * completions made claimable (a flow child whose dependency a completion resolved). Each claimed
     * execution comes with its input, read in the same step, while the inputs of the call total at
     * most `Limits.batchBytes`; the input of a claim past that is `None` (read it with
     * `getExecutionInput`). With no items it is a claim that returns the inputs. Bad input (an
     * item, the claim's arguments, `max`) fails the call as a whole and writes nothing.
     */
    readonly completeAndClaim: (
      items: ReadonlyArray<{ readonly handle: M.Handle; readonly payload?: Uint8Array | undefined }>,
      claim: { readonly args: M.ClaimArgs; readonly max: number }
    ) => Effect.Effect<EngineBackend.CompleteAndClaimResult, EngineError>
    readonly fail: (
      handle: M.Handle,
      args: { readonly reason: M.FailureReason; readonly classification: M.FailureClass }
    ) => Effect.Effect<M.FailOutcome, EngineError>
    readonly cancel: (handle: M.Handle, args: { readonly reason: string }) => Effect.Effect<void, EngineError>
    readonly suspend: (handle: M.Handle, args: M.SuspendArgsInput) => Effect.Effect<M.SuspendOutcome, EngineError>
    readonly createWaitpoint: (
      handle: M.Handle,
      args: M.CreateWaitpointArgs
    ) => Effect.Effect<M.PendingWaitpoint, EngineError>
    readonly observeSignals: (handle: M.Handle) => Effect.Effect<ReadonlyArray<M.ResumeSignal>, EngineError>
    readonly claimFromReclaim: (token: M.ReclaimToken) => Effect.Effect<Option.Option<M.Handle>, EngineError>
    readonly delay: (handle: M.Handle, args: { readonly delayUntil: number }) => Effect.Effect<void, EngineError>
    readonly waitChildren: (handle: M.Handle) => Effect.Effect<void, EngineError>
    readonly claimForWorker: (args: M.ClaimForWorkerArgs) => Effect.Effect<M.ClaimForWorkerOutcome, EngineError>

    // --- wake-ups (the worker runtime) ----------------------------------------
    /**
     * Subscribes the current scope to the wake-ups of `lanes` and to the lease revocations of the
     * executions `workerInstanceId` holds (see docs/worker.md, "Wake-ups, timers and
     * cancellation"). Returns once the subscription is live: a wake-up sent after it returns is
     * not missed, though one lost with a dropped connection may be (the subscription then counts a
     * wake-up of its own once it is live again).
     */
    readonly subscribeWork: (
      args: EngineBackend.SubscribeWorkArgs
    ) => Effect.Effect<EngineBackend.WorkSubscription, EngineError, Scope.Scope>

    // --- events (docs/design/events.md) ---------------------------------------
    /**
     * A page of the events `args.filter` sees, oldest first, after `args.after` (default
     * `"earliest"`: from the oldest retained event; `"latest"`: none, only the offset of the end):
     * at most `args.limit` (1..`Limits.eventPageItems`, default 100). Only events of committed
     * transitions are read, in the order of each execution's transitions. An offset whose
     * successors were trimmed fails `State(EventOffsetExpired)`; a malformed one
     * `Validation(InvalidOffset)`.
     */
    readonly readEvents: (args: M.ReadEventsArgs) => Effect.Effect<M.EventPage, EngineError>
    /**
     * Subscribes the current scope to the wake-ups of `filter`: a count that grows after an event
     * it sees may have been written. A hint only (it may count without a new event, and a wake-up
     * lost with a dropped connection counts once the connection is back): read with `readEvents`
     * after it, and read again after a bounded wait anyway.
     */
    readonly subscribeEvents: (
      filter: M.EventFilter
    ) => Effect.Effect<EngineBackend.EventSubscription, EngineError, Scope.Scope>

    // --- reads ---------------------------------------------------------------
    readonly describeExecution: (id: ExecutionId) => Effect.Effect<Option.Option<M.ExecutionSnapshot>, EngineError>
    readonly describeFlow: (id: FlowId) => Effect.Effect<Option.Option<M.FlowSnapshot>, EngineError>
    readonly listEdges: (args: M.ListEdgesArgs) => Effect.Effect<ReadonlyArray<M.EdgeSnapshot>, EngineError>
    readonly describeEdge: (args: M.DescribeEdgeArgs) => Effect.Effect<Option.Option<M.EdgeSnapshot>, EngineError>
    readonly resolveExecutionFlowId: (id: ExecutionId) => Effect.Effect<Option.Option<FlowId>, EngineError>
    readonly getExecutionResult: (id: ExecutionId) => Effect.Effect<Option.Option<Uint8Array>, EngineError>
    /** The kind and input payload of an execution (after data passing from upstream edges). */
    readonly getExecutionInput: (id: ExecutionId) => Effect.Effect<Option.Option<M.ExecutionInput>, EngineError>
    /**
     * Several `getExecutionInput`s in as few round trips as the backend allows (1..1000 ids): the
     * input of `ids[i]` at index `i`. A worker reads the inputs of a claimed batch with one call.
     */
    readonly getExecutionInputs: (
      ids: ReadonlyArray<ExecutionId>
    ) => Effect.Effect<ReadonlyArray<Option.Option<M.ExecutionInput>>, EngineError>
    readonly listPendingWaitpoints: (
      args: M.ListPendingWaitpointsArgs
    ) => Effect.Effect<M.ListPendingWaitpointsResult, EngineError>
    readonly readExecutionInfo: (id: ExecutionId) => Effect.Effect<Option.Option<M.ExecutionInfo>, EngineError>
    readonly readExecutionState: (id: ExecutionId) => Effect.Effect<Option.Option<M.PublicState>, EngineError>

    // --- listings --------------------------------------------------------------
    readonly listFlows: (args: M.ListFlowsArgs) => Effect.Effect<M.ListFlowsPage, EngineError>
    readonly listLanes: (args: M.ListLanesArgs) => Effect.Effect<M.ListLanesPage, EngineError>
    readonly listSuspended: (args: M.ListSuspendedArgs) => Effect.Effect<M.ListSuspendedPage, EngineError>
    readonly listExecutions: (args: M.ListExecutionsArgs) => Effect.Effect<M.ListExecutionsPage, EngineError>
    /**
     * A page of a lane's executions over every partition, newest (default) or oldest first by
     * creation time (ties by id), optionally only some public states and one execution kind.
     * Each page examines at most `Limits.laneScanItems` index entries: a filter that matches
     * rarely may answer a short page with a `nextCursor` (docs/design/reads.md#lane-queries).
     */
    readonly listLaneExecutions: (
      args: M.ListLaneExecutionsArgs
    ) => Effect.Effect<M.ListLaneExecutionsPage, EngineError>
    /** How many executions of a lane are in each public state, over every partition. */
    readonly countLaneExecutions: (laneId: LaneId) => Effect.Effect<M.LaneExecutionCounts, EngineError>

    // --- signals -----------------------------------------------------------------
    readonly deliverSignal: (args: M.DeliverSignalArgsInput) => Effect.Effect<M.DeliverSignalResult, EngineError>
    readonly claimResumedExecution: (
      args: M.ClaimResumedExecutionArgs
    ) => Effect.Effect<M.ClaimResumedExecutionResult, EngineError>

    // --- producer, flows and operator control ------------------------------------
    readonly createExecution: (args: M.CreateExecutionArgsInput) => Effect.Effect<M.CreateExecutionResult, EngineError>
    /**
     * Submits a batch: every item is validated first (one bad item fails the call and nothing is
     * written), then each is created as `createExecution` would, in as few round trips as the
     * backend allows. Results are in input order.
     */
    readonly createExecutions: (
      args: ReadonlyArray<M.CreateExecutionArgsInput>
    ) => Effect.Effect<ReadonlyArray<M.CreateExecutionResult>, EngineError>
    readonly createFlow: (args: M.Input<typeof M.CreateFlowArgs.fields>) => Effect.Effect<M.CreateFlowResult, EngineError>
    /**
     * A whole flow in one atomic step: `createFlow`, each member created (as `createExecutions`) and
     * added, each join set, each edge staged and applied, in that order. Members must be new and
     * minted on the flow's partition; edges join members, without cycles. A flow that already
     * exists is `AlreadySatisfied` and nothing is written; anything that would fail part-way fails
     * the whole call, which writes nothing.
     */
    readonly createFlowGraph: (args: {
      readonly flow: M.Input<typeof M.CreateFlowArgs.fields>
      readonly members: ReadonlyArray<M.CreateExecutionArgsInput>
      readonly edges?: ReadonlyArray<M.Input<typeof M.FlowGraphEdge.fields>> | undefined
      readonly joins?: ReadonlyArray<M.FlowGraphJoin> | undefined
    }) => Effect.Effect<M.CreateFlowGraphResult, EngineError>
    /**
     * Grows an existing flow in one atomic step: each new member created (as `createExecutions`)
     * and added, each join set (new members only), then each edge staged and applied, an edge whose
     * upstream has already ended resolving at once. Edges may join new and existing members, without
     * cycles. A call whose members and edges are all in the flow already is `AlreadySatisfied` and
     * writes nothing; anything that would fail part-way fails the whole call, which writes nothing.
     * A sealed flow refuses it with `State(FlowSealed)`, a cancelled one with
     * `State(FlowAlreadyTerminal)`.
     */
    readonly extendFlow: (args: {
      readonly flowId: FlowId
      readonly members?: ReadonlyArray<M.CreateExecutionArgsInput> | undefined
      readonly edges?: ReadonlyArray<M.Input<typeof M.FlowGraphEdge.fields>> | undefined
      readonly joins?: ReadonlyArray<M.FlowGraphJoin> | undefined
    }) => Effect.Effect<M.ExtendFlowResult, EngineError>
    /**
     * Closes a flow to new members and edges; its state then ends with its members. Sealing a
     * sealed flow is `AlreadySealed`; a cancelled (or cancelling) flow is
     * `State(FlowAlreadyTerminal)`.
     */
    readonly sealFlow: (args: M.SealFlowArgs) => Effect.Effect<M.SealFlowResult, EngineError>
    readonly addExecutionToFlow: (
      args: M.AddExecutionToFlowArgs
    ) => Effect.Effect<M.AddExecutionToFlowResult, EngineError>
    readonly stageDependencyEdge: (
      args: M.Input<typeof M.StageDependencyEdgeArgs.fields>
    ) => Effect.Effect<M.StageDependencyEdgeResult, EngineError>
    readonly applyDependencyToChild: (
      args: M.Input<typeof M.ApplyDependencyToChildArgs.fields>
    ) => Effect.Effect<M.ApplyDependencyToChildResult, EngineError>
    readonly setEdgeGroupPolicy: (args: M.SetEdgeGroupPolicyArgs) => Effect.Effect<M.SetEdgeGroupPolicyResult, EngineError>
    readonly cancelExecution: (
      args: M.Input<typeof M.CancelExecutionArgs.fields>
    ) => Effect.Effect<M.CancelExecutionResult, EngineError>
    readonly changePriority: (args: M.ChangePriorityArgs) => Effect.Effect<M.ChangePriorityResult, EngineError>
    readonly replayExecution: (id: ExecutionId) => Effect.Effect<M.ReplayExecutionResult, EngineError>
    readonly revokeLease: (args: M.RevokeLeaseArgs) => Effect.Effect<M.RevokeLeaseResult, EngineError>

    // --- flow cancellation -----------------------------------------------------------
    readonly cancelFlow: (args: M.Input<typeof M.CancelFlowArgs.fields>) => Effect.Effect<M.CancelFlowResult, EngineError>
    readonly cancelFlowHeader: (args: M.CancelFlowHeaderArgs) => Effect.Effect<M.CancelFlowHeader, EngineError>
    readonly ackCancelMember: (args: M.AckCancelMemberArgs) => Effect.Effect<void, EngineError>

    // --- budgets and quotas ------------------------------------------------------------
    readonly reportUsage: (
      handle: M.Handle,
      args: { readonly budgetId: BudgetId; readonly dimensions: M.Input<typeof M.UsageDimensions.fields> }
    ) => Effect.Effect<M.ReportUsageResult, EngineError>
    readonly reportUsageAdmin: (args: M.ReportUsageAdminArgs) => Effect.Effect<M.ReportUsageResult, EngineError>
    readonly createBudget: (args: M.Input<typeof M.CreateBudgetArgs.fields>) => Effect.Effect<M.CreateBudgetResult, EngineError>
    readonly resetBudget: (id: BudgetId) => Effect.Effect<M.ResetBudgetResult, EngineError>
    readonly getBudgetStatus: (id: BudgetId) => Effect.Effect<M.BudgetStatus, EngineError>
    readonly createQuotaPolicy: (args: M.CreateQuotaPolicyArgs) => Effect.Effect<M.CreateQuotaPolicyResult, EngineError>

    // --- streams ---------------------------------------------------------------------
    readonly readStream: (args: M.ReadStreamArgs) => Effect.Effect<M.StreamFrames, EngineError>
    readonly tailStream: (args: M.Input<typeof M.TailStreamArgs.fields>) => Effect.Effect<M.StreamFrames, EngineError>
    readonly readSummary: (args: M.StreamRef) => Effect.Effect<Option.Option<M.SummaryDocument>, EngineError>

    // --- admin, health, lifecycle ----------------------------------------------------------
    readonly rotateWaitpointHmacSecretAll: (
      args: M.RotateWaitpointHmacSecretAllArgs
    ) => Effect.Effect<EngineBackend.RotateResult, EngineError>
    readonly seedWaitpointHmacSecret: (args: M.SeedWaitpointHmacSecretArgs) => Effect.Effect<M.SeedOutcome, EngineError>
    readonly ping: () => Effect.Effect<void, EngineError>
    readonly prepare: () => Effect.Effect<M.PrepareOutcome, EngineError>
    readonly shutdownPrepare: (grace: Duration.Duration) => Effect.Effect<void, EngineError>
  }

  /**
   * @since 0.1.0
   */
  export interface SubscribeWorkArgs {
    /** 1..1000 lanes. */
    readonly lanes: ReadonlyArray<LaneId>
    readonly workerInstanceId: WorkerInstanceId
  }

  /**
   * What `subscribeWork` returns. A worker whose claim found nothing waits with it:
   *
   * 1. `arm` once (the store now knows the worker may be waiting), then claim again;
   * 2. before each claim, read `wakeups`; after a claim that found nothing, `await` with that
   *    count: it returns at once when a wake-up arrived since, so none between the claim and
   *    the wait is lost;
   * 3. at the due time `arm` returned, `promoteDue`, then claim; `disarm` once busy again.
   *
   * @since 0.1.0
   */
  export interface WorkSubscription {
    /** The wake-ups received so far (a reconnect of the backend's connection counts as one). */
    readonly wakeups: Effect.Effect<number>
    /**
     * Marks the worker as waiting for work on its lanes (where the store needs to know: Postgres
     * sends its notifications only to waiting workers) and tells when the lanes' earliest delayed
     * or backed-off work is due.
     */
    readonly arm: Effect.Effect<Armed, EngineError>
    /**
     * The worker is busy again: the store may stop waking it. Returns at once (the store is told
     * in the background, before the next `arm`); a failure is logged, as it costs only wake-ups
     * the worker does not need.
     */
    readonly disarm: Effect.Effect<void>
    /**
     * Waits until the count of wake-ups exceeds `since` or `maxWait` passed (Effect's `Clock`);
     * true when woken.
     */
    readonly await: (since: number, maxWait: Duration.Duration) => Effect.Effect<boolean>
    /**
     * While set, `f` runs at each wake-up as soon as the backend's connection delivered it (in a
     * microtask of that turn): an idle worker makes its claim from there, without waiting for its
     * `await` to return. The `await` that the wake-up ends returns once `f` calls `done` (the
     * worker: once its claim is made and its attempts started, so that the loop's own wake-up does
     * not compete with the claim for the process). `undefined` clears it. It does not run for a
     * wake-up counted before it was set (`await` returns at once for that one).
     */
    readonly onWake: (f: ((done: () => void) => void) | undefined) => void
    /**
     * While set, a create of work claimable at once made through this process's backend layer on
     * one of the lanes may claim for the worker in the same step, when the store can do both at
     * once (Postgres: one statement; Valkey: one function call): `f` is asked, on the create's
     * stack, for the worker's claim on that lane (`undefined`: not now); the slots it names are the
     * worker's until `deliver` hands over what the claim took, which the backend calls exactly
     * once, however the create ends (`claimAgain`: the worker should claim itself, as the claim did
     * not run, found only busy candidates, or looked at part of the lane only). A store that cannot
     * leaves it unused. `undefined` clears it.
     */
    readonly onHandoff?: (f: ((lane: string) => Handoff | undefined) | undefined) => void
    /** Makes the lanes' delayed and backed-off work that is due claimable now; how many executions. */
    readonly promoteDue: Effect.Effect<number, EngineError>
    /**
     * The next execution held by `workerInstanceId` whose lease someone else ended (cancelled,
     * revoked, expired by a timeout): the worker checks that lease at once. `undefined` when the
     * backend's connection came back after a loss (a revocation sent meanwhile was lost): the
     * worker checks every lease it holds.
     */
    readonly revoked: Effect.Effect<ExecutionId | undefined>
  }

  /**
   * What `subscribeEvents` returns: read `wakeups` before a read that found nothing new, then
   * `await` with that count (it returns at once when a wake-up arrived since).
   *
   * @since 0.1.0
   */
  export interface EventSubscription {
    readonly wakeups: Effect.Effect<number>
    /** Waits until the count of wake-ups exceeds `since` or `maxWait` passed (Effect's `Clock`); true when woken. */
    readonly await: (since: number, maxWait: Duration.Duration) => Effect.Effect<boolean>
  }

  /**
   * What `completeAndClaim` returns: each item's outcome at its index (as `completeMany`), and the
   * claims in claim order, each with its input (`None`: past the call's input budget, or gone).
   *
   * @since 0.1.0
   */
  export interface CompleteAndClaimResult {
    readonly completed: ReadonlyArray<Either.Either<void, EngineError>>
    readonly claimed: ReadonlyArray<ClaimedWork>
  }

  /**
   * A claimed execution and its input, as one claim of `completeAndClaim` returns it.
   *
   * @since 0.1.0
   */
  export interface ClaimedWork {
    readonly handle: M.Handle
    readonly input: Option.Option<M.ExecutionInput>
  }

  /**
   * A waiting worker's claim, made for it by a create in the same step, or on Valkey as a wake-up's
   * message is read (`WorkSubscription.onHandoff`).
   */
  export interface Handoff {
    readonly args: M.ClaimArgs
    readonly max: number
    /**
     * What the claim made for the worker took, and whether the worker should claim again itself (the
     * claim did not run, failed, or found only busy candidates). The first call counts; later ones
     * are ignored.
     */
    readonly deliver: (claimed: ReadonlyArray<ClaimedWork>, claimAgain: boolean) => void
  }

  /**
   * What `arm` reports.
   *
   * @since 0.1.0
   */
  export interface Armed {
    /** When the lanes' earliest delayed or backed-off work is due (ms, the store's clock), if any. */
    readonly dueAt: Option.Option<number>
    /**
     * The store did not know the worker as waiting until now: work that became claimable before
     * `arm` may have sent no wake-up, so claim once more before waiting.
     */
    readonly claimAgain: boolean
  }

  /**
   * One entry per partition of a cluster-wide rotation; a failing partition
   * reports its own error and the others go on.
   *
   * @since 0.1.0
   */
  export interface RotateResult {
    readonly entries: ReadonlyArray<{
      readonly partition: number
      readonly result: Either.Either<M.RotateOutcome, EngineError>
    }>
  }
}

/**
 * The waitpoint HMAC secret a backend layer seeds its keystore with (`hmacSecret` of the layers):
 * a key id and at least 32 random bytes as hex, e.g. from `openssl rand -hex 32`. A server
 * keystore keeps the first secret stored; change it with `rotateWaitpointHmacSecretAll`.
 *
 * @since 0.1.0
 * @category models
 */
export interface HmacSecret {
  readonly kid: string
  readonly secretHex: Redacted.Redacted<string>
}

/**
 * The engine backend service.
 *
 * @since 0.1.0
 * @category tags
 */
export class EngineBackend extends Context.Tag("flowfabric/EngineBackend")<EngineBackend, EngineBackend.Service>() {}

/**
 * The names of the effectful operations: those of the specification plus the batch calls,
 * `getExecutionInput`, `extendFlow`, `sealFlow` and `readEvents` (`backendLabel` is a value; the
 * scoped subscriptions `subscribeWork` and `subscribeEvents` are not listed).
 *
 * @since 0.1.0
 */
export const operationNames = [
  "claim",
  "claimMany",
  "renew",
  "progress",
  "appendFrame",
  "complete",
  "completeMany",
  "completeAndClaim",
  "fail",
  "cancel",
  "suspend",
  "createWaitpoint",
  "observeSignals",
  "claimFromReclaim",
  "delay",
  "waitChildren",
  "describeExecution",
  "describeFlow",
  "listEdges",
  "describeEdge",
  "resolveExecutionFlowId",
  "listFlows",
  "listLanes",
  "listSuspended",
  "listExecutions",
  "listLaneExecutions",
  "countLaneExecutions",
  "deliverSignal",
  "claimResumedExecution",
  "cancelFlow",
  "setEdgeGroupPolicy",
  "rotateWaitpointHmacSecretAll",
  "seedWaitpointHmacSecret",
  "reportUsage",
  "readStream",
  "tailStream",
  "readSummary",
  "createExecution",
  "createExecutions",
  "createFlow",
  "createFlowGraph",
  "extendFlow",
  "sealFlow",
  "addExecutionToFlow",
  "stageDependencyEdge",
  "applyDependencyToChild",
  "cancelExecution",
  "changePriority",
  "replayExecution",
  "revokeLease",
  "createBudget",
  "resetBudget",
  "createQuotaPolicy",
  "getBudgetStatus",
  "reportUsageAdmin",
  "getExecutionResult",
  "getExecutionInput",
  "getExecutionInputs",
  "listPendingWaitpoints",
  "ping",
  "claimForWorker",
  "prepare",
  "shutdownPrepare",
  "cancelFlowHeader",
  "ackCancelMember",
  "readExecutionInfo",
  "readExecutionState",
  "readEvents"
] as const satisfies ReadonlyArray<Exclude<keyof EngineBackend.Service, "backendLabel">>
