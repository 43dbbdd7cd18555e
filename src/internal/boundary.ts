/**
 * The edge every backend shares. A backend implements `BackendCore` over
 * decoded, validated arguments; `makeEngineBackend` turns it into the public
 * `EngineBackend.Service`: it decodes handles, validates caller input (bad
 * input fails with `Validation` before the core runs, so nothing is written),
 * and runs the cancellation wait of `cancelFlow`.
 */
import { Clock, Duration, Effect, Either, Option, Schema, type Scope } from "effect"
import { cancelFlowWaitDeadline, waitForFlowCancellationWith } from "../CancelFlow.js"
import type { EngineBackend } from "../EngineBackend.js"
import { type Maintenance, type PassName, passNames } from "../Maintenance.js"
import {
  conflict,
  corruption,
  type EngineError,
  invalidInput,
  notFound,
  state,
  validation,
  type Validation,
  type ValidationKind
} from "../EngineError.js"
import {
  type BudgetId,
  BudgetId as BudgetIdSchema,
  defaultPartitionConfig,
  type ExecutionId,
  ExecutionId as ExecutionIdSchema,
  executionPartition,
  type FlowId,
  FlowId as FlowIdSchema,
  LaneId as LaneIdSchema,
  flowPartition,
  parsePartitionKey,
  type WorkerInstanceId,
  type PartitionConfig,
  partitionKeyErrorMessage
} from "../Ids.js"
import { Limits } from "../Limits.js"
import * as M from "../Model.js"
import { topologicalOrder } from "./graph.js"
import { decodeHandle } from "./handleCodec.js"
import { inputProblem, type RuleContext, textProblem } from "./inputRules.js"
import { summaryPatchProblem } from "./mergePatch.js"
import { instrument } from "./observability.js"
import { quote } from "./quote.js"
import { compactTraceParent } from "./traceContext.js"
import * as V from "./validation.js"

/** A handle after intake: the caller's value and its decoded payload. */
export interface HandleRef {
  readonly handle: M.Handle
  readonly payload: M.HandlePayload
}

type Fx<A> = Effect.Effect<A, EngineError>

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
  readonly describeExecution: (id: ExecutionId) => Fx<Option.Option<M.ExecutionSnapshot>>
  readonly describeFlow: (id: FlowId) => Fx<Option.Option<M.FlowSnapshot>>
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

const HANDLE_KINDS: ReadonlySet<unknown> = new Set<M.HandleKind>(["fresh", "resumed", "suspended"])

const fromEither = <A>(e: Either.Either<A, Validation>): Fx<A> =>
  Either.isRight(e) ? Effect.succeed(e.right) : Effect.fail(e.left)

const failWith = (e: Validation | undefined): Fx<void> => (e === undefined ? Effect.void : Effect.fail(e))

const validId = <A, I>(op: string, field: string, schema: Schema.Schema<A, I>, value: unknown, rules: RuleContext): Fx<A> =>
  fromEither(V.check(`${op}: ${field}`, schema, value, "InvalidInput", rules))

/** The argument object of an operation: a missing or non-object argument is bad input, not a crash. */
const argObject = (op: string, args: unknown): Fx<Record<string, unknown>> =>
  typeof args === "object" && args !== null && !Array.isArray(args) ?
    Effect.succeed(args as Record<string, unknown>) :
    Effect.fail(invalidInput(`${op}: expected an argument object, got ${quote(args)}`))

/** A free-text argument: a string of storable text. */
const textArg = (op: string, field: string, value: unknown): Fx<string> => {
  if (typeof value !== "string") return Effect.fail(invalidInput(`${op}: ${field} must be a string, got ${quote(value)}`))
  const problem = textProblem(value)
  return problem === undefined ? Effect.succeed(value) : Effect.fail(invalidInput(`${op}: ${field} ${problem}`))
}

const fpPartition = (op: string, key: string): Fx<number> => {
  const parsed = parsePartitionKey(key)
  if (Either.isLeft(parsed)) return Effect.fail(invalidInput(`${op}: partition: ${partitionKeyErrorMessage(parsed.left)}`))
  if (parsed.right.family !== "Flow") {
    return Effect.fail(invalidInput(`${op}: partition: expected a flow partition {fp:N}, got ${key}`))
  }
  return Effect.succeed(parsed.right.index)
}

const checkCounts = (op: string, countLimit: number, prefix: string): Fx<void> =>
  !Number.isInteger(countLimit) || countLimit < 1 ?
    Effect.fail(invalidInput(`${prefix}count_limit must be >= 1`)) :
    countLimit > Limits.streamCountLimit ?
    Effect.fail(invalidInput(
      prefix === "" ? "count_limit_exceeds_hard_cap" : `${prefix}count_limit exceeds STREAM_READ_HARD_CAP (10000)`
    )) :
    Effect.void

const checkCursor = (c: M.StreamCursor): Fx<void> => (c._tag === "At" ? failWith(V.checkStreamId(c.id)) : Effect.void)

const CREATE = "create_execution"

/** The limits of `createExecution`'s strings, tags and policy text (the payload apart). */
const createLimits = (a: M.CreateExecutionArgs): Validation | undefined =>
  V.checkTags(CREATE, a.tags) ??
    V.checkBytes(CREATE, "namespace", a.namespace, "nameBytes") ??
    V.checkBytes(CREATE, "executionKind", a.executionKind, "nameBytes") ??
    V.checkBytes(CREATE, "payloadEncoding", a.payloadEncoding, "nameBytes") ??
    V.checkBytes(CREATE, "creatorIdentity", a.creatorIdentity, "nameBytes") ??
    V.checkBytes(CREATE, "idempotencyKey", a.idempotencyKey, "nameBytes") ??
    V.checkBytes(CREATE, "policy", a.policy, "policyBytes")

/** Validates `createExecution` input and parses its policy. */
const prepareCreate = (
  args: M.CreateExecutionArgsInput,
  rules: RuleContext
): Either.Either<CreateExecutionCore, Validation> => {
  const constructed = V.construct(CREATE, M.CreateExecutionArgs, args, "InvalidInput", rules)
  if (Either.isLeft(constructed)) return Either.left(constructed.left)
  const a = constructed.right
  if (a.inputPayload.length > V.MAX_PAYLOAD_BYTES) {
    return Either.left(
      validation("PayloadTooLarge", `input payload of ${a.inputPayload.length} bytes > ${V.MAX_PAYLOAD_BYTES}`)
    )
  }
  const bad = createLimits(a)
  if (bad !== undefined) return Either.left(bad)
  const parsed = V.parsePolicy(a.policy)
  if (Either.isLeft(parsed)) return Either.left(parsed.left)
  const policy = parsed.right.policy
  if (policy !== undefined) {
    const problem = inputProblem(M.ExecutionPolicy, policy, rules)
    if (problem !== undefined) return Either.left(validation("InvalidPolicyJson", problem))
  }
  // the policy is measured as it is stored: its JSON
  const policyJson = policy === undefined ? "" : JSON.stringify(encodePolicy(policy))
  if (V.bytesOver(policyJson, Limits.policyBytes)) return Either.left(V.overLimit(CREATE, "policy", "policyBytes", "bytes"))
  return Either.right({
    executionId: a.executionId,
    namespace: a.namespace,
    laneId: a.laneId,
    executionKind: a.executionKind,
    inputPayload: a.inputPayload,
    payloadEncoding: a.payloadEncoding,
    priority: V.clampPriority(a.priority !== 0 ? a.priority : policy?.priority ?? 0),
    creatorIdentity: a.creatorIdentity,
    idempotencyKey: a.idempotencyKey,
    tags: a.tags,
    policy,
    policyJson,
    requiredCapabilities: parsed.right.requiredCapabilities,
    delayUntil: a.delayUntil ?? policy?.delayUntil,
    executionDeadlineAt: a.executionDeadlineAt,
    traceContext: a.traceParent === undefined ? undefined : compactTraceParent(a.traceParent)
  })
}

/** What a prepared create weighs against `Limits.batchBytes`: payload, policy and tag bytes. */
const createBytes = (c: CreateExecutionCore): number =>
  c.inputPayload.length + Buffer.byteLength(c.policyJson, "utf8") + V.tagBytes(c.tags)

/** The limits of a worker's identity. */
const workerLimits = (
  op: string,
  w: { readonly workerId: string; readonly workerInstanceId: string }
): Validation | undefined =>
  V.checkBytes(op, "workerId", w.workerId, "nameBytes") ??
    V.checkBytes(op, "workerInstanceId", w.workerInstanceId, "nameBytes")

/** The limits of an HMAC kid and secret (their sizes; their form is checked apart). */
const secretLimits = (op: string, kid: string, secretHex: string): Validation | undefined =>
  V.checkBytes(op, "kid", kid, "nameBytes") ??
    (secretHex.length > Limits.secretHexChars ? V.overLimit(op, "secret", "secretHexChars", "characters") : undefined)

/** The limits of a flow's strings. */
const flowLimits = (op: string, f: M.CreateFlowArgs): Validation | undefined =>
  V.checkBytes(op, "flowKind", f.flowKind, "nameBytes") ?? V.checkBytes(op, "namespace", f.namespace, "nameBytes")

/** The limits of an edge's strings. */
const edgeLimits = (
  op: string,
  e: { readonly dependencyKind: string; readonly dataPassingRef?: string | undefined }
): Validation | undefined =>
  V.checkBytes(op, "dependencyKind", e.dependencyKind, "nameBytes") ??
    V.checkBytes(op, "dataPassingRef", e.dataPassingRef, "textBytes")

/** Validates claim arguments; capabilities come back sorted and de-duplicated. */
const claimArgs = (op: string, args: M.ClaimArgs, rules: RuleContext): Either.Either<M.ClaimArgs, Validation> => {
  const a = V.construct(op, M.ClaimArgs, args, "InvalidInput", rules)
  if (Either.isLeft(a)) return a
  const bad = workerLimits(op, a.right.policy)
  if (bad !== undefined) return Either.left(bad)
  const tokens = V.checkCapabilities("worker", a.right.capabilities.tokens)
  if (Either.isLeft(tokens)) return Either.left(tokens.left)
  return Either.right({ lane: a.right.lane, capabilities: { tokens: tokens.right }, policy: a.right.policy })
}

/**
 * Wraps a core into the public service.
 */
export const makeEngineBackend = (core: BackendCore): EngineBackend.Service => {
  const label = core.label
  const partitions = core.partitions ?? defaultPartitionConfig
  const rules: RuleContext = { partitions }
  const flowPartitionOf = (flowId: FlowId): number => flowPartition(flowId, partitions)

  /** A batch argument holds 1..Limits.batchItems items. */
  const batchSized = (list: unknown): list is ReadonlyArray<unknown> =>
    Array.isArray(list) && list.length >= 1 && list.length <= Limits.batchItems
  const batchSizeError = (op: string, what: string, list: unknown) =>
    Array.isArray(list) && list.length > Limits.batchItems ?
      V.overLimit(op, what, "batchItems", "entries") :
      invalidInput(`${op}: between 1 and ${Limits.batchItems} ${what}`)

  const intake = (handle: M.Handle): Either.Either<HandleRef, Validation> => {
    if (
      typeof handle !== "object" || handle === null || typeof handle.backend !== "string" ||
      !HANDLE_KINDS.has(handle.kind) || !(handle.opaque instanceof Uint8Array)
    ) {
      return Either.left(corruption("handle_codec: not a handle"))
    }
    const decoded = decodeHandle(label, handle)
    if (Either.isLeft(decoded)) {
      const err = decoded.left
      if (err._tag === "Corrupt") return Either.left(corruption(`handle_codec: ${err.detail}`))
      const actual = /^[a-z]{1,16}$/.test(err.actual) ? err.actual : quote(err.actual)
      return Either.left(
        validation("HandleFromOtherBackend", `expected=${label} actual=${actual}${err.embedded ? " (embedded tag)" : ""}`)
      )
    }
    const p = executionPartition(decoded.right.executionId)
    if (p >= partitions.numFlowPartitions) {
      return Either.left(corruption(`handle_codec: partition ${p} is not one of this deployment's flow partitions`))
    }
    return Either.right({ handle, payload: decoded.right })
  }

  const completePayload = (op: string, payload: unknown): Either.Either<Uint8Array | undefined, Validation> => {
    if (payload === undefined) return Either.right(undefined)
    if (!(payload instanceof Uint8Array)) return Either.left(invalidInput(`${op}: payload must be bytes`))
    if (payload.length > V.MAX_PAYLOAD_BYTES) {
      return Either.left(validation("PayloadTooLarge", `${op}: ${payload.length} bytes > ${V.MAX_PAYLOAD_BYTES}`))
    }
    return Either.right(payload)
  }

  const withHandle = <A>(handle: M.Handle, f: (h: HandleRef) => Fx<A>): Fx<A> =>
    Effect.suspend(() => {
      const h = intake(handle)
      return Either.isLeft(h) ? Effect.fail(h.left) : f(h.right)
    })

  const make = <F extends Schema.Struct.Fields>(
    op: string,
    schema: Schema.Struct<F>,
    input: unknown,
    kind: ValidationKind = "InvalidInput"
  ) => fromEither(V.construct(op, schema, input, kind, rules))

  const byExecutionId = <A>(op: string, f: (id: ExecutionId) => Fx<A>) => (id: ExecutionId) =>
    Effect.flatMap(validId(op, "executionId", ExecutionIdSchema, id, rules), f)

  const checkJoinPolicy = (policy: unknown): Fx<void> =>
    Effect.suspend(() => {
      const p = policy as { _tag?: unknown; k?: unknown; onSatisfied?: unknown } | undefined
      const tag = p?._tag
      if (tag !== "all_of" && tag !== "any_of" && tag !== "quorum") {
        return Effect.fail(invalidInput("unknown EdgeDependencyPolicy variant"))
      }
      if (tag === "quorum") {
        const k = p?.k
        if (typeof k !== "number" || !Number.isInteger(k) || k < 1) return Effect.fail(invalidInput("quorum k must be >= 1"))
        if (k > 2_147_483_647) return Effect.fail(invalidInput("quorum k exceeds supported maximum"))
      }
      if (tag !== "all_of" && p?.onSatisfied !== "cancel_remaining" && p?.onSatisfied !== "let_run") {
        return Effect.fail(invalidInput("on_satisfied required for any_of/quorum: cancel_remaining | let_run"))
      }
      return Effect.void
    })

  /** The members of a flow graph (createFlowGraph, extendFlow): new-looking, on the flow's partition. */
  const graphMembers = (
    op: string,
    list: ReadonlyArray<unknown>,
    fp: number,
    tagLimit: "flowGraphTags" | "flowExtendTags"
  ): Fx<Array<CreateExecutionCore>> =>
    Effect.gen(function*() {
      const members: Array<CreateExecutionCore> = []
      const memberIds = new Set<string>()
      let bytes = 0
      let tags = 0
      for (let i = 0; i < list.length; i++) {
        const p = prepareCreate(list[i] as M.CreateExecutionArgsInput, rules)
        if (Either.isLeft(p)) return yield* validation(p.left.kind, `${op}: members[${i}] ${p.left.detail}`)
        bytes += createBytes(p.right)
        if (bytes > Limits.batchBytes) return yield* V.overLimit(op, "members' payloads, policies and tags", "batchBytes", "bytes")
        tags += Object.keys(p.right.tags).length
        if (tags > Limits[tagLimit]) return yield* V.overLimit(op, "members' tags", tagLimit, "tags")
        const id = p.right.executionId
        if (executionPartition(id) !== fp) {
          return yield* invalidInput(
            `${op}: members[${i}]: partition ${executionPartition(id)} != the flow's partition ${fp}. ` +
              "Mint member ids with Ids.executionIdForFlow(flowId)."
          )
        }
        if (memberIds.has(id)) return yield* invalidInput(`${op}: members[${i}]: ${id} is listed twice`)
        if (p.right.idempotencyKey !== undefined && p.right.idempotencyKey !== "") {
          return yield* invalidInput(`${op}: members[${i}]: members take no idempotency key (the flow id dedups the call)`)
        }
        memberIds.add(id)
        members.push(p.right)
      }
      return members
    })

  /**
   * The edges and joins of a flow graph: each edge's endpoints pass `endpoint` (members of the
   * graph, or executions on the flow's partition), no edge id twice; joins on `joinable` members,
   * each once.
   */
  const graphEdges = (
    op: string,
    edgeList: unknown,
    joinList: unknown,
    endpoint: (id: ExecutionId) => boolean,
    notEndpoint: string,
    joinable: ReadonlySet<string>,
    edgeLimit: "flowGraphEdges" | "flowExtendEdges"
  ): Fx<{ readonly edges: Array<M.FlowGraphEdge>; readonly joins: Array<M.FlowGraphJoin> }> =>
    Effect.gen(function*() {
      const edgesIn: unknown = edgeList ?? []
      const joinsIn: unknown = joinList ?? []
      if (!Array.isArray(edgesIn) || !Array.isArray(joinsIn)) return yield* invalidInput(`${op}: edges and joins are lists`)
      yield* failWith(V.checkCount(op, "edges", edgesIn.length, edgeLimit))
      const edges: Array<M.FlowGraphEdge> = []
      const edgeIds = new Set<string>()
      for (let i = 0; i < edgesIn.length; i++) {
        const e = yield* make(op, M.FlowGraphEdge, edgesIn[i])
        yield* failWith(edgeLimits(op, e))
        if (!endpoint(e.upstreamExecutionId) || !endpoint(e.downstreamExecutionId)) {
          return yield* invalidInput(`${op}: edges[${i}] joins an execution that ${notEndpoint}`)
        }
        if (e.upstreamExecutionId === e.downstreamExecutionId) return yield* conflict("SelfReferencingEdge")
        if (edgeIds.has(e.edgeId)) return yield* invalidInput(`${op}: edges[${i}]: edge id ${e.edgeId} is listed twice`)
        edgeIds.add(e.edgeId)
        edges.push(e)
      }
      const joins: Array<M.FlowGraphJoin> = []
      const joined = new Set<string>()
      for (let i = 0; i < joinsIn.length; i++) {
        yield* checkJoinPolicy((joinsIn[i] as { policy?: unknown } | undefined)?.policy)
        const j = yield* make(op, M.FlowGraphJoin, joinsIn[i])
        if (!joinable.has(j.downstreamExecutionId) || joined.has(j.downstreamExecutionId)) {
          return yield* invalidInput(`${op}: joins[${i}]: not a new member, or a member joined twice`)
        }
        joined.add(j.downstreamExecutionId)
        joins.push(j)
      }
      return { edges, joins }
    })

  const service: EngineBackend.Service = {
    backendLabel: label,

    claim: (args) =>
      Effect.suspend(() => {
        const a = claimArgs("claim", args, rules)
        return Either.isLeft(a) ? Effect.fail(a.left) : core.claim(a.right)
      }),

    claimMany: (args, max) =>
      Effect.suspend(() => {
        if (Number.isInteger(max) && max > Limits.batchItems) {
          return Effect.fail(V.overLimit("claim_many", "max", "batchItems", "claims"))
        }
        if (!Number.isInteger(max) || max < 1) {
          return Effect.fail(invalidInput(`claim_many: max must be an integer in 1..${Limits.batchItems}`))
        }
        const a = claimArgs("claim_many", args, rules)
        if (Either.isLeft(a)) return Effect.fail(a.left)
        return core.claimMany(a.right, max)
      }),

    renew: (handle) => withHandle(handle, core.renew),

    progress: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("progress", input)
        const percent = args["percent"]
        if (percent !== undefined && (!Number.isInteger(percent) || (percent as number) < 0 || (percent as number) > 100)) {
          return yield* invalidInput("progress: percent must be an integer in 0..100")
        }
        const message = args["message"] === undefined ? undefined : yield* textArg("progress", "message", args["message"])
        yield* failWith(V.checkBytes("progress", "message", message, "textBytes"))
        return yield* core.progress(h, percent as number | undefined, message)
      }),

    appendFrame: (handle, frame) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        if (frame?.bytes instanceof Uint8Array && frame.bytes.length > V.MAX_FRAME_BYTES) {
          return yield* validation("RetentionLimitExceeded", `frame of ${frame.bytes.length} bytes > ${V.MAX_FRAME_BYTES}`)
        }
        const f = yield* make("append_frame", M.Frame, frame)
        yield* failWith(V.checkFrameType(f.frameType))
        yield* failWith(V.checkBytes("append_frame", "correlationId", f.correlationId, "nameBytes"))
        if (f.mode._tag === "DurableSummary") {
          const problem = summaryPatchProblem(f.bytes)
          if (problem !== undefined) return yield* invalidInput(problem)
        }
        return yield* core.appendFrame(h, f)
      }),

    complete: (handle, args) =>
      withHandle(handle, (h) => {
        if (args !== undefined && (typeof args !== "object" || args === null || Array.isArray(args))) {
          return Effect.fail(invalidInput(`complete: expected an argument object or nothing, got ${quote(args)}`))
        }
        const payload = completePayload("complete", args?.payload)
        return Either.isLeft(payload) ? Effect.fail(payload.left) : core.complete(h, payload.right)
      }),

    completeMany: (items) =>
      Effect.suspend(() => {
        if (!batchSized(items)) return Effect.fail(batchSizeError("complete_many", "items", items))
        const refs: Array<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }> = []
        let bytes = 0
        for (const item of items) {
          if (typeof item !== "object" || item === null) return Effect.fail(invalidInput("complete_many: an item is not an object"))
          const h = intake(item.handle)
          if (Either.isLeft(h)) return Effect.fail(h.left)
          const payload = completePayload("complete_many", item.payload)
          if (Either.isLeft(payload)) return Effect.fail(payload.left)
          bytes += payload.right?.length ?? 0
          if (bytes > Limits.batchBytes) return Effect.fail(V.overLimit("complete_many", "payloads", "batchBytes", "bytes"))
          refs.push({ h: h.right, payload: payload.right })
        }
        return core.completeMany(refs)
      }),

    fail: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("fail", input)
        const reason = yield* fromEither(V.check("fail: reason", M.FailureReason, args["reason"], "InvalidInput", rules))
        yield* failWith(
          V.checkBytes("fail", "reason.message", reason.message, "textBytes") ??
            (reason.detail !== undefined && reason.detail.length > Limits.nameBytes ?
              V.overLimit("fail", "reason.detail", "nameBytes", "bytes") :
              undefined)
        )
        const cls = yield* fromEither(V.check("fail: classification", M.FailureClass, args["classification"]))
        return yield* core.fail(h, reason, cls)
      }),

    cancel: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("cancel", input)
        const reason = yield* textArg("cancel", "reason", args["reason"])
        yield* failWith(V.checkBytes("cancel", "reason", reason, "textBytes"))
        return yield* core.cancel(h, reason)
      }),

    suspend: (handle, input) =>
      Effect.gen(function*() {
        if (handle?.kind === "suspended") return yield* state("AlreadySuspended")
        const args = yield* make("suspend", M.SuspendArgs, input)
        yield* failWith(V.suspendLimits(args))
        const now = args.now ?? (yield* Clock.currentTimeMillis)
        yield* failWith(V.checkSuspendArgs(args, now))
        const h = yield* intake(handle)
        return yield* core.suspend(h, args)
      }),

    createWaitpoint: (handle, args) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const a = yield* make("create_waitpoint", M.CreateWaitpointArgs, args)
        yield* failWith(V.checkWaitpointKey(a.waitpointKey, false))
        const ms = Duration.toMillis(a.expiresIn)
        if (!Number.isFinite(ms) || ms < 0) return yield* invalidInput("create_waitpoint: expiresIn must be finite")
        return yield* core.createWaitpoint(h, a.waitpointKey, Math.floor(ms))
      }),

    observeSignals: (handle) => withHandle(handle, core.observeSignals),

    claimFromReclaim: (token) =>
      Effect.gen(function*() {
        const t = yield* make("claim_from_reclaim", M.ReclaimToken, token)
        yield* failWith(
          workerLimits("claim_from_reclaim", t) ?? V.checkBytes("claim_from_reclaim", "grant.grantKey", t.grant.grantKey, "textBytes")
        )
        return yield* core.claimFromReclaim(t)
      }),

    delay: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("delay", input)
        const delayUntil = args["delayUntil"]
        if (!Number.isSafeInteger(delayUntil)) return yield* invalidInput("delay: delayUntil must be an integer")
        return yield* core.delay(h, delayUntil as number)
      }),

    waitChildren: (handle) => withHandle(handle, core.waitChildren),

    claimForWorker: (args) =>
      Effect.gen(function*() {
        const a = yield* make("claim_for_worker", M.ClaimForWorkerArgs, args)
        yield* failWith(workerLimits("claim_for_worker", a))
        const workerCapabilities = yield* fromEither(V.checkCapabilities("worker", a.workerCapabilities))
        return yield* core.claimForWorker({ ...a, workerCapabilities })
      }),

    describeExecution: byExecutionId("describe_execution", core.describeExecution),
    describeFlow: (id) => Effect.flatMap(validId("describe_flow", "flowId", FlowIdSchema, id, rules), core.describeFlow),
    listEdges: (args) => Effect.flatMap(make("list_edges", M.ListEdgesArgs, args), core.listEdges),
    describeEdge: (args) => Effect.flatMap(make("describe_edge", M.DescribeEdgeArgs, args), core.describeEdge),
    resolveExecutionFlowId: byExecutionId("resolve_execution_flow_id", core.resolveExecutionFlowId),
    getExecutionResult: byExecutionId("get_execution_result", core.getExecutionResult),
    getExecutionInput: byExecutionId("get_execution_input", core.getExecutionInput),
    getExecutionInputs: (ids) =>
      Effect.suspend(() => {
        if (!batchSized(ids)) return Effect.fail(batchSizeError("get_execution_inputs", "ids", ids))
        return Effect.flatMap(
          Effect.forEach(ids, (id) => validId("get_execution_inputs", "executionId", ExecutionIdSchema, id, rules)),
          core.getExecutionInputs
        )
      }),
    listPendingWaitpoints: (args) =>
      Effect.gen(function*() {
        const a = yield* make("list_pending_waitpoints", M.ListPendingWaitpointsArgs, args)
        const limit = Math.min(Limits.listPageItems, Math.max(1, a.limit ?? 100))
        return yield* core.listPendingWaitpoints({ ...a, limit })
      }),
    readExecutionInfo: byExecutionId("read_execution_info", core.readExecutionInfo),
    readExecutionState: byExecutionId("read_execution_state", core.readExecutionState),

    listFlows: (args) =>
      Effect.gen(function*() {
        const a = yield* make("list_flows", M.ListFlowsArgs, args)
        const p = yield* fpPartition("list_flows", a.partition)
        return a.limit === 0 ? { flows: [] } : yield* core.listFlows(p, a.cursor, Math.min(a.limit, Limits.listPageItems))
      }),
    listLanes: (args) =>
      Effect.gen(function*() {
        const a = yield* make("list_lanes", M.ListLanesArgs, args)
        return a.limit === 0 ? { lanes: [] } : yield* core.listLanes(a.cursor, Math.min(a.limit, Limits.listPageItems))
      }),
    listSuspended: (args) =>
      Effect.gen(function*() {
        const a = yield* make("list_suspended", M.ListSuspendedArgs, args)
        const p = yield* fpPartition("list_suspended", a.partition)
        return a.limit === 0 ?
          { entries: [] } :
          yield* core.listSuspended(p, a.cursor, Math.min(a.limit, Limits.listPageItems))
      }),
    listExecutions: (args) =>
      Effect.gen(function*() {
        const a = yield* make("list_executions", M.ListExecutionsArgs, args)
        const p = yield* fpPartition("list_executions", a.partition)
        return a.limit === 0 ?
          { executions: [] } :
          yield* core.listExecutions(p, a.cursor, Math.min(a.limit, Limits.listPageItems))
      }),

    deliverSignal: (args) =>
      Effect.gen(function*() {
        const payload = args?.payload
        if (payload instanceof Uint8Array && payload.length > V.MAX_SIGNAL_PAYLOAD_BYTES) {
          return yield* validation("PayloadTooLarge", `signal payload of ${payload.length} bytes > 65536`)
        }
        const a = yield* make("deliver_signal", M.DeliverSignalArgs, args)
        yield* failWith(V.signalLimits(a))
        return yield* core.deliverSignal(a)
      }),

    claimResumedExecution: (args) =>
      Effect.gen(function*() {
        const a = yield* make("claim_resumed_execution", M.ClaimResumedExecutionArgs, args)
        yield* failWith(workerLimits("claim_resumed_execution", a))
        return yield* core.claimResumedExecution(a)
      }),

    createExecution: (args) =>
      Effect.suspend(() => {
        const prepared = prepareCreate(args, rules)
        return Either.isLeft(prepared) ? Effect.fail(prepared.left) : core.createExecution(prepared.right)
      }),

    createExecutions: (list) =>
      Effect.suspend(() => {
        if (!Array.isArray(list)) return Effect.fail(invalidInput(`create_executions: expected a list, got ${quote(list)}`))
        if (list.length > Limits.batchItems) {
          return Effect.fail(V.overLimit("create_executions", "items", "batchItems", "entries"))
        }
        const prepared: Array<CreateExecutionCore> = []
        let bytes = 0
        for (let i = 0; i < list.length; i++) {
          const p = prepareCreate(list[i]!, rules)
          if (Either.isLeft(p)) return Effect.fail(validation(p.left.kind, `[${i}] ${p.left.detail}`))
          bytes += createBytes(p.right)
          if (bytes > Limits.batchBytes) {
            return Effect.fail(V.overLimit("create_executions", "payloads, policies and tags", "batchBytes", "bytes"))
          }
          prepared.push(p.right)
        }
        if (prepared.length === 0) return Effect.succeed([])
        return core.createExecutions(prepared)
      }),

    createFlow: (args) =>
      Effect.gen(function*() {
        const a = yield* make("create_flow", M.CreateFlowArgs, args)
        yield* failWith(flowLimits("create_flow", a))
        return yield* core.createFlow(a)
      }),

    addExecutionToFlow: (args) =>
      Effect.gen(function*() {
        const a = yield* make("add_execution_to_flow", M.AddExecutionToFlowArgs, args)
        const ep = executionPartition(a.executionId)
        const fp = flowPartitionOf(a.flowId)
        if (ep !== fp) {
          return yield* invalidInput(
            `add_execution_to_flow: execution_id's partition ${ep} != flow_id's partition ${fp}. ` +
              "Mint the execution id with Ids.executionIdForFlow(flowId)."
          )
        }
        return yield* core.addExecutionToFlow(a)
      }),

    stageDependencyEdge: (args) =>
      Effect.gen(function*() {
        const a = yield* make("stage_dependency_edge", M.StageDependencyEdgeArgs, args)
        yield* failWith(edgeLimits("stage_dependency_edge", a))
        if (a.upstreamExecutionId === a.downstreamExecutionId) return yield* conflict("SelfReferencingEdge")
        return yield* core.stageDependencyEdge(a)
      }),

    applyDependencyToChild: (args) =>
      Effect.gen(function*() {
        const a = yield* make("apply_dependency_to_child", M.ApplyDependencyToChildArgs, args)
        yield* failWith(edgeLimits("apply_dependency_to_child", a))
        // slot locality (docs/design/ids.md#co-location): flow members live on the flow's partition, so an edge
        // whose endpoints do not is bad input on every backend, rejected before anything is read
        const fp = flowPartitionOf(a.flowId)
        if (executionPartition(a.downstreamExecutionId) !== fp || executionPartition(a.upstreamExecutionId) !== fp) {
          return yield* invalidInput(
            `apply_dependency_to_child: the upstream and downstream executions must live on the flow's partition ${fp}`
          )
        }
        return yield* core.applyDependencyToChild(a)
      }),

    setEdgeGroupPolicy: (args) =>
      Effect.gen(function*() {
        yield* checkJoinPolicy((args as { policy?: unknown } | undefined)?.policy)
        const a = yield* make("set_edge_group_policy", M.SetEdgeGroupPolicyArgs, args)
        // slot locality (docs/design/ids.md#co-location): a downstream off the flow's partition cannot be a member;
        // NotFound(flow) still comes first, read only on this bad path
        if (executionPartition(a.downstreamExecutionId) !== flowPartitionOf(a.flowId)) {
          if (Option.isNone(yield* core.describeFlow(a.flowId))) return yield* notFound("flow")
          return yield* invalidInput("set_edge_group_policy: the downstream execution must live on the flow's partition")
        }
        return yield* core.setEdgeGroupPolicy(a)
      }),

    createFlowGraph: (input) =>
      Effect.gen(function*() {
        const op = "create_flow_graph"
        const args = (yield* argObject(op, input)) as Parameters<EngineBackend.Service["createFlowGraph"]>[0]
        const flow = yield* make(op, M.CreateFlowArgs, args.flow)
        yield* failWith(flowLimits(op, flow))
        const fp = flowPartitionOf(flow.flowId)
        const list = args?.members
        if (Array.isArray(list) && list.length > Limits.flowGraphMembers) {
          return yield* V.overLimit(op, "members", "flowGraphMembers", "entries")
        }
        if (!batchSized(list)) return yield* batchSizeError(op, "members", list)
        const members = yield* graphMembers(op, list, fp, "flowGraphTags")
        const memberIds = new Set<string>(members.map((m) => m.executionId))
        const { edges, joins } = yield* graphEdges(
          op,
          args.edges,
          args.joins,
          (id) => memberIds.has(id),
          "is not a member",
          memberIds,
          "flowGraphEdges"
        )
        const links = edges.map((e) => [e.upstreamExecutionId, e.downstreamExecutionId] as const)
        if (topologicalOrder([...memberIds], links) === undefined) return yield* conflict("CycleDetected")
        return yield* core.createFlowGraph({ flow, members, edges, joins })
      }),

    extendFlow: (input) =>
      Effect.gen(function*() {
        const op = "extend_flow"
        const args = (yield* argObject(op, input)) as Parameters<EngineBackend.Service["extendFlow"]>[0]
        const flowId = yield* validId(op, "flowId", FlowIdSchema, args.flowId, rules)
        const fp = flowPartitionOf(flowId)
        const list: unknown = args.members ?? []
        if (!Array.isArray(list)) return yield* invalidInput(`${op}: members is a list`)
        if (list.length > Limits.flowExtendMembers) return yield* V.overLimit(op, "members", "flowExtendMembers", "entries")
        const members = yield* graphMembers(op, list, fp, "flowExtendTags")
        const memberIds = new Set<string>(members.map((m) => m.executionId))
        // an edge may join existing members: the core checks they are members of the flow
        const onPartition = (id: ExecutionId) => executionPartition(id) === fp
        const { edges, joins } = yield* graphEdges(
          op,
          args.edges,
          args.joins,
          onPartition,
          `does not live on the flow's partition ${fp}`,
          memberIds,
          "flowExtendEdges"
        )
        if (members.length === 0 && edges.length === 0) {
          return yield* invalidInput(`${op}: nothing to add: give at least one member or one edge`)
        }
        return yield* core.extendFlow({ flowId, members, edges, joins })
      }),

    sealFlow: (args) => Effect.flatMap(make("seal_flow", M.SealFlowArgs, args), core.sealFlow),

    cancelExecution: (args) =>
      Effect.gen(function*() {
        const a = yield* make("cancel_execution", M.CancelExecutionArgs, args)
        yield* failWith(
          V.checkBytes("cancel_execution", "reason", a.reason, "textBytes") ??
            V.checkBytes("cancel_execution", "source", a.source, "nameBytes")
        )
        return yield* core.cancelExecution(a)
      }),
    changePriority: (args) => Effect.flatMap(make("change_priority", M.ChangePriorityArgs, args), core.changePriority),
    replayExecution: byExecutionId("replay_execution", core.replayExecution),
    revokeLease: (args) =>
      Effect.gen(function*() {
        const a = yield* make("revoke_lease", M.RevokeLeaseArgs, args)
        yield* failWith(
          V.checkBytes("revoke_lease", "reason", a.reason, "textBytes") ??
            V.checkBytes("revoke_lease", "workerInstanceId", a.workerInstanceId, "nameBytes")
        )
        return yield* core.revokeLease(a)
      }),

    cancelFlow: (args) =>
      Effect.gen(function*() {
        const a = yield* make("cancel_flow", M.CancelFlowArgs, args)
        yield* failWith(V.checkBytes("cancel_flow", "reason", a.reason, "textBytes"))
        const result = yield* core.cancelFlow({ flowId: a.flowId, policy: a.policy, reason: a.reason })
        const deadline = cancelFlowWaitDeadline(a.wait)
        if (Option.isSome(deadline)) yield* waitForFlowCancellationWith(service, a.flowId, deadline.value)
        return result
      }),
    cancelFlowHeader: (args) =>
      Effect.gen(function*() {
        const a = yield* make("cancel_flow_header", M.CancelFlowHeaderArgs, args)
        yield* failWith(V.checkBytes("cancel_flow_header", "reason", a.reason, "textBytes"))
        return yield* core.cancelFlowHeader(a)
      }),
    ackCancelMember: (args) => Effect.flatMap(make("ack_cancel_member", M.AckCancelMemberArgs, args), core.ackCancelMember),

    reportUsage: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("report_usage", input)
        const budgetId = yield* validId("report_usage", "budgetId", BudgetIdSchema, args["budgetId"], rules)
        const dimensions = yield* make("report_usage", M.UsageDimensions, args["dimensions"])
        yield* failWith(V.usageLimits("report_usage", Object.keys(dimensions.custom), dimensions.dedupKey))
        return yield* core.reportUsage(h, budgetId, dimensions)
      }),
    reportUsageAdmin: (args) =>
      Effect.gen(function*() {
        const a = yield* make("report_usage_admin", M.ReportUsageAdminArgs, args)
        if (a.dimensions.length !== a.deltas.length) {
          return yield* invalidInput("report_usage_admin: dimensions and deltas differ in length")
        }
        yield* failWith(V.usageLimits("report_usage_admin", a.dimensions, a.dedupKey))
        return yield* core.reportUsageAdmin(a)
      }),
    createBudget: (args) =>
      Effect.gen(function*() {
        const a = yield* make("create_budget", M.CreateBudgetArgs, args, "InvalidBudgetScope")
        if (a.dimensions.length !== a.hardLimits.length || a.dimensions.length !== a.softLimits.length) {
          return yield* invalidInput("create_budget: dimensions, hard_limits and soft_limits differ in length")
        }
        if (a.dimensions.some((d) => d.length === 0)) return yield* invalidInput("create_budget: empty dimension name")
        yield* failWith(
          V.usageLimits("create_budget", a.dimensions, undefined) ??
            V.checkBytes("create_budget", "scopeType", a.scopeType, "nameBytes") ??
            V.checkBytes("create_budget", "scopeId", a.scopeId, "nameBytes") ??
            V.checkBytes("create_budget", "enforcementMode", a.enforcementMode, "nameBytes") ??
            V.checkBytes("create_budget", "onHardLimit", a.onHardLimit, "nameBytes") ??
            V.checkBytes("create_budget", "onSoftLimit", a.onSoftLimit, "nameBytes")
        )
        return yield* core.createBudget(a)
      }),
    resetBudget: (id) => Effect.flatMap(validId("reset_budget", "budgetId", BudgetIdSchema, id, rules), core.resetBudget),
    getBudgetStatus: (id) =>
      Effect.flatMap(validId("get_budget_status", "budgetId", BudgetIdSchema, id, rules), core.getBudgetStatus),
    createQuotaPolicy: (args) =>
      Effect.flatMap(make("create_quota_policy", M.CreateQuotaPolicyArgs, args, "InvalidQuotaSpec"), core.createQuotaPolicy),

    readStream: (args) =>
      Effect.gen(function*() {
        const a = yield* make("read_stream", M.ReadStreamArgs, args)
        yield* checkCounts("read_stream", a.countLimit, "")
        yield* checkCursor(a.from)
        yield* checkCursor(a.to)
        return yield* core.readStream(a)
      }),
    tailStream: (args) =>
      Effect.gen(function*() {
        const a = yield* make("tail_stream", M.TailStreamArgs, args)
        if (a.after._tag !== "At") return yield* invalidInput("tail_stream: the after cursor must be concrete (At)")
        yield* checkCursor(a.after)
        yield* checkCounts("tail_stream", a.countLimit, "xread_block: ")
        return yield* core.tailStream(a)
      }),
    readSummary: (args) => Effect.flatMap(make("read_summary", M.StreamRef, args), core.readSummary),

    rotateWaitpointHmacSecretAll: (args) =>
      Effect.gen(function*() {
        const a = yield* make("rotate_waitpoint_hmac_secret_all", M.RotateWaitpointHmacSecretAllArgs, args)
        yield* failWith(secretLimits("rotate_waitpoint_hmac_secret_all", a.newKid, a.newSecretHex))
        yield* failWith(V.checkKid(a.newKid))
        yield* failWith(V.checkSecretHex(a.newSecretHex))
        yield* failWith(V.checkGraceMs(a.graceMs))
        return yield* core.rotateWaitpointHmacSecretAll({ ...a, newSecretHex: a.newSecretHex.toLowerCase() })
      }),
    seedWaitpointHmacSecret: (args) =>
      Effect.gen(function*() {
        const a = yield* make("seed_waitpoint_hmac_secret", M.SeedWaitpointHmacSecretArgs, args)
        yield* failWith(secretLimits("seed_waitpoint_hmac_secret", a.kid, a.secretHex))
        const weak = V.hmacSecretProblem(a.secretHex)
        if (weak !== undefined) return yield* invalidInput(weak)
        if (a.kid.length === 0) return yield* invalidInput("kid must be non-empty")
        yield* failWith(V.checkKid(a.kid))
        return yield* core.seedWaitpointHmacSecret({ ...a, secretHex: a.secretHex.toLowerCase() })
      }),

    subscribeWork: (args) =>
      Effect.gen(function*() {
        const op = "subscribe_work"
        const a = yield* argObject(op, args)
        const lanes = a["lanes"]
        if (!batchSized(lanes)) return yield* batchSizeError(op, "lanes", lanes)
        const checked: Array<M.ClaimArgs["lane"]> = []
        for (const lane of lanes) {
          const id = yield* validId(op, "lanes", LaneIdSchema, lane, rules)
          if (!checked.includes(id)) checked.push(id)
        }
        const worker = yield* textArg(op, "workerInstanceId", a["workerInstanceId"])
        yield* failWith(V.checkBytes(op, "workerInstanceId", worker, "nameBytes"))
        return yield* core.subscribeWork({ lanes: checked, workerInstanceId: worker as WorkerInstanceId })
      }),

    ping: () => core.ping(),
    prepare: () => core.prepare(),
    shutdownPrepare: (grace) =>
      Duration.isDuration(grace) ?
        core.shutdownPrepare(grace) :
        Effect.fail(invalidInput(`shutdown_prepare: grace must be a Duration, got ${quote(grace)}`))
  }
  return instrument(service)
}

/**
 * Wraps a backend's maintenance passes: their options are checked as every
 * other caller value (an object or nothing; `batchSize` a positive integer).
 */
export const makeMaintenanceService = (passes: Maintenance.Service): Maintenance.Service => {
  const checked = (name: PassName): Maintenance.Pass => (options) =>
    Effect.suspend(() => {
      if (options === undefined) return passes[name]()
      if (typeof options !== "object" || options === null || Array.isArray(options)) {
        return Effect.fail(invalidInput(`${name}: expected an options object or nothing, got ${quote(options)}`))
      }
      const batchSize: unknown = options.batchSize
      if (batchSize === undefined) return passes[name]()
      if (typeof batchSize !== "number" || !Number.isSafeInteger(batchSize) || batchSize < 1) {
        return Effect.fail(invalidInput(`${name}: batchSize must be a positive integer, got ${quote(batchSize)}`))
      }
      return passes[name]({ batchSize })
    })
  const out: Partial<Record<PassName, Maintenance.Pass>> = {}
  for (const name of passNames) out[name] = checked(name)
  return out as Maintenance.Service
}

const encodePolicyEither = Schema.encodeEither(M.ExecutionPolicy)

/** The snake_case JSON object of a validated policy. */
export const encodePolicy = (policy: M.ExecutionPolicy): M.ExecutionPolicyJson =>
  Either.getOrThrow(encodePolicyEither(policy))
