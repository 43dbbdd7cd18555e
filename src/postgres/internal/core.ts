/**
 * The Postgres `BackendCore`: every operation is one call of its server-side
 * function (`ff_<op>`, in the function library of `src/postgres/sql/`); this
 * module builds the arguments and decodes the replies with Schema.
 */
import { Clock, Deferred, Duration, Effect, Either, Option, Ref, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { corruption, type EngineError, invalidInput, rootCause, Transport } from "../../EngineError.js"
import {
  budgetPartition,
  executionPartition,
  FlowId,
  flowPartition,
  type PartitionConfig,
  quotaPartition
} from "../../Ids.js"
import type { Maintenance, PassName, PassOptions, PassResult } from "../../Maintenance.js"
import { DEFAULT_BATCH_SIZE } from "../../Maintenance.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { type BackendCore, type CreateExecutionCore, encodePolicy, type HandleRef } from "../../internal/boundary.js"
import type { Hub } from "../../internal/wakeups.js"
import { makeHandle } from "../../internal/handleCodec.js"
import { ownEntries, recordOf } from "../../internal/records.js"
import { storeLeaseId } from "../../internal/storeIds.js"
import { clampPriority, parseStreamId } from "../../internal/validation.js"
import {
  type Arg,
  bigint,
  bool,
  bytea,
  type Caller,
  decode,
  int,
  jsonb,
  realSleep,
  text,
  textArray,
  uuid
} from "./client.js"

type Fx<A> = Effect.Effect<A, EngineError>

export interface CoreOptions {
  readonly partitions: PartitionConfig
  /** Largest owed member set `cancelFlow` cancels in its own transaction (docs/design/flows.md#the-cascade). */
  readonly cancelFlowInlineLimit: number
  /** Real-time interval between polls of a blocking `tailStream`. */
  readonly tailPollMs: number
  /** The wake-ups of this process's workers; none without a LISTEN connection (workers poll). */
  readonly hub: Hub | undefined
}

/** How long a waiting worker's registration lasts without being renewed (its idle polls renew it). */
const WAITER_TTL_MS = 120_000
const LaneWait = Schema.Struct({ dueAt: Schema.NullOr(Schema.Number), fresh: Schema.Boolean })

// ---------------------------------------------------------------------------
// reply schemas
// ---------------------------------------------------------------------------

const Claimed = Schema.Struct({ ...M.HandlePayload.fields, kind: Schema.Literal("fresh", "resumed") })
const ClaimedResumed = Schema.Struct({ ...M.HandlePayload.fields, leaseExpiresAt: Schema.Int })
const OkOnly = Schema.Null
const Base64 = Schema.Uint8ArrayFromBase64
const ResumeSignalRow = Schema.Struct({ ...M.ResumeSignal.fields, payload: Schema.optional(Base64) })
const SummaryRow = Schema.Struct({
  documentJson: Schema.String,
  version: Schema.Int,
  patchKind: M.PatchKind,
  lastUpdatedMs: Schema.Int,
  firstAppliedMs: Schema.Int
})
const FlowRow = Schema.Struct({ flowId: FlowId, createdAt: Schema.Int, state: Schema.String })
const FlowPageRow = Schema.Struct({ flows: Schema.Array(FlowRow), nextCursor: Schema.optional(FlowId) })
const PassRow = Schema.Struct({
  processed: Schema.Int.pipe(Schema.nonNegative()),
  more: Schema.Boolean,
  nextDueAt: Schema.optional(Schema.Number)
})
const SuspendRow = Schema.Union(
  Schema.TaggedStruct("Suspended", { details: M.SuspendOutcomeDetails }),
  Schema.TaggedStruct("AlreadySatisfied", { details: M.SuspendOutcomeDetails })
)
const CreateWaitpointRow = M.PendingWaitpoint
const DeliverRow = M.DeliverSignalResult

const ExecutionInputRow = Schema.Struct({ ...M.ExecutionInput.fields, payload: Base64 })

// Schemas built once: a schema built per call also compiles its decoder per call.
const nullables = new WeakMap<Schema.Schema.Any, Schema.Schema.Any>()
const nullable = <A, I>(schema: Schema.Schema<A, I>): Schema.Schema<A | null, I | null> => {
  let s = nullables.get(schema)
  if (s === undefined) {
    s = Schema.NullOr(schema)
    nullables.set(schema, s)
  }
  return s as Schema.Schema<A | null, I | null>
}
/** The last wait of a claim that found only busy candidates (1, 2, 4 … ms: about a quarter of a second in all). */
const BUSY_RETRY_MAX_MS = 128
const liveClock = Clock.make()

const ClaimReply = Schema.Struct({ handles: Schema.Array(Claimed), busy: Schema.Int })
const ResumeSignalRows = Schema.Array(ResumeSignalRow)
const EdgeSnapshots = Schema.Array(M.EdgeSnapshot)
const CreateExecutionResults = Schema.Array(M.CreateExecutionResult)

// ---------------------------------------------------------------------------
// argument helpers
// ---------------------------------------------------------------------------

const handleArgs = (h: HandleRef): Array<Arg> => [
  text(h.payload.executionId),
  int(h.payload.attemptIndex),
  uuid(h.payload.attemptId),
  uuid(h.payload.leaseId),
  bigint(h.payload.leaseEpoch)
]

const utf8Fatal = new TextDecoder("utf-8", { fatal: true })
const utf8Lossy = new TextDecoder("utf-8")
const utf8Encoder = new TextEncoder()

const failureCategory = (reason: M.FailureReason, cls: M.FailureClass): string => {
  if (reason.detail !== undefined && reason.detail.length > 0) {
    try {
      return utf8Fatal.decode(reason.detail)
    } catch {
      // not UTF-8: fall back to the class
    }
  }
  switch (cls) {
    case "Transient":
      return "transient"
    case "Permanent":
      return "permanent"
    case "InfraCrash":
      return "infra_crash"
    case "Timeout":
      return "timeout"
    case "Cancelled":
      return "cancelled"
  }
}

/** blocking_reason of a suspension reason code (docs/design/signals.md#reason-codes). */
const blockingReasonOf = (reasonCode: string): M.BlockingReason => {
  switch (reasonCode) {
    case "waiting_for_approval":
      return "waiting_for_approval"
    case "waiting_for_callback":
      return "waiting_for_callback"
    case "waiting_for_tool_result":
      return "waiting_for_tool_result"
    case "waiting_for_operator_review":
    case "manual_pause":
      return "paused_by_operator"
    case "paused_by_policy":
      return "paused_by_policy"
    case "paused_by_budget":
      return "waiting_for_budget"
    default:
      return "waiting_for_signal"
  }
}

/** The stored form of a `createExecution` (shared by the single and the batch call). */
/** A join policy as `ff_set_edge_group_policy` takes it. */
const joinColumns = (policy: M.EdgeDependencyPolicy) => ({
  variant: policy._tag,
  onSatisfied: policy._tag === "all_of" ? null : policy.onSatisfied,
  k: policy._tag === "quorum" ? policy.k : policy._tag === "any_of" ? 1 : 0
})

/** An edge as `ff_create_flow_graph` / `ff_extend_flow` take it. */
const graphEdge = (e: M.FlowGraphEdge) => ({
  edgeId: e.edgeId,
  upstream: e.upstreamExecutionId,
  downstream: e.downstreamExecutionId,
  kind: e.dependencyKind,
  dataRef: e.dataPassingRef ?? ""
})

const createItem = (a: CreateExecutionCore) => {
  const p = a.policy
  return {
    executionId: a.executionId,
    partition: executionPartition(a.executionId),
    namespace: a.namespace,
    laneId: a.laneId,
    executionKind: a.executionKind,
    payloadEncoding: a.payloadEncoding ?? null,
    priority: a.priority,
    creatorIdentity: a.creatorIdentity,
    idempotencyKey: a.idempotencyKey ?? null,
    tags: a.tags,
    policy: a.policy === undefined ? null : encodePolicy(a.policy),
    requiredCapabilities: a.requiredCapabilities,
    delayUntil: a.delayUntil ?? null,
    executionDeadlineAt: a.executionDeadlineAt ?? null,
    attemptTimeoutMs: p?.timeoutPolicy?.attemptTimeoutMs ?? null,
    maxReclaimCount: p?.maxReclaimCount ?? p?.timeoutPolicy?.maxReclaimCount ?? 100,
    maxReplayCount: p?.maxReplayCount ?? 10,
    dedupTtlMs: p?.dedupWindowMs ?? 86_400_000,
    traceContext: a.traceContext ?? null
  }
}

// ---------------------------------------------------------------------------
// resume conditions, flattened for the server-side evaluator
// ---------------------------------------------------------------------------

interface CondNode {
  readonly kind: "single" | "allof" | "count" | "never"
  readonly path: string
  readonly key?: string
  readonly name?: string | null
  readonly children?: Array<number>
  readonly n?: number
  readonly countKind?: M.CountKind
  readonly waitpoints?: ReadonlyArray<string>
}

const matcherName = (m: M.SignalMatcher | undefined): string | null =>
  m === undefined || m._tag === "Wildcard" ? null : m.name

/** The condition as `{legacy, nodes}` plus the signal names each waitpoint key needs. */
export const flattenCondition = (cond: M.ResumeCondition) => {
  const nodes: Array<CondNode> = []
  const names: Record<string, Array<string>> = {}
  const addName = (key: string, name: string | null) => {
    const list = (names[key] ??= [])
    if (name !== null && name !== "" && !list.includes(name)) list.push(name)
  }
  const childPath = (parent: string, i: number) => (parent === "" ? `members[${i}]` : `${parent}.members[${i}]`)
  const visit = (c: M.ResumeCondition, path: string): number => {
    const index = nodes.length
    switch (c._tag) {
      case "Single": {
        const name = matcherName(c.matcher)
        nodes.push({ kind: "single", path, key: c.waitpointKey, name })
        addName(c.waitpointKey, name)
        break
      }
      case "OperatorOnly":
      case "TimeoutOnly":
        nodes.push({ kind: "never", path })
        break
      case "Composite": {
        const body = c.body
        if (body._tag === "AllOf") {
          const children: Array<number> = []
          nodes.push({ kind: "allof", path, children })
          body.members.forEach((m, i) => children.push(visit(m, childPath(path, i))))
        } else {
          const name = matcherName(body.matcher)
          nodes.push({ kind: "count", path, n: body.n, countKind: body.countKind, name, waitpoints: body.waitpoints })
          for (const k of body.waitpoints) addName(k, name)
        }
        break
      }
    }
    return index
  }
  visit(cond, "")
  return { condition: { legacy: cond._tag !== "Composite", nodes }, names }
}

// ---------------------------------------------------------------------------
// streams
// ---------------------------------------------------------------------------

const modeWire = (mode: M.StreamMode): "durable" | "summary" | "best_effort" =>
  mode._tag === "Durable" ? "durable" : mode._tag === "DurableSummary" ? "summary" : "best_effort"

const jsonDepth = (v: unknown): number => {
  if (typeof v !== "object" || v === null) return 0
  let max = 0
  for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) {
    max = Math.max(max, jsonDepth(child))
  }
  return max + 1
}

/** The patch of a `DurableSummary` frame, or the reason it is rejected. */
const parsePatch = (bytes: Uint8Array): { readonly patch: unknown; readonly error: string | null } => {
  let value: unknown
  try {
    value = JSON.parse(utf8Fatal.decode(bytes))
  } catch {
    return { patch: null, error: "patch payload is not valid JSON" }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { patch: null, error: "patch must be a JSON object" }
  }
  if (jsonDepth(value) > 16) return { patch: null, error: "patch_depth_exceeded" }
  return { patch: value, error: null }
}

/** A cursor as a bound: `[ts, seq, pinned]`; `pinned` = the last (lower) / first (upper) entry. */
const bound = (c: M.StreamCursor, pinned: M.StreamCursor["_tag"]): readonly [number | null, number | null, boolean] => {
  if (c._tag === "At") {
    const [ms, seq] = parseStreamId(c.id)
    return [ms, seq, false]
  }
  return [null, null, c._tag === pinned]
}

// ---------------------------------------------------------------------------
// the core
// ---------------------------------------------------------------------------

const isNotActive = (e: EngineError) => {
  const root = rootCause(e)
  return root._tag === "Contention" && root.kind === "ExecutionNotActive" ? root.notActive : undefined
}

const NOT_RESUMABLE = new Set(["NotAResumedExecution", "ExecutionNotLeaseable", "InvalidClaimGrant", "ClaimGrantExpired"])

export const makeCore = (caller: Caller, options: CoreOptions): BackendCore => {
  const { call } = caller
  const cfg = options.partitions

  // In-process wake-ups of blocked tails: appends and attempt ends of this
  // process release them at once; other processes' writes are seen by polling.
  const waiters = new Map<string, Deferred.Deferred<void>>()
  const streamKey = (executionId: string, attemptIndex: number) => `${executionId}:${attemptIndex}`
  const wake = (h: HandleRef) =>
    Effect.sync(() => {
      const key = streamKey(h.payload.executionId, h.payload.attemptIndex)
      const d = waiters.get(key)
      if (d !== undefined) {
        waiters.delete(key)
        Deferred.unsafeDone(d, Effect.void)
      }
    })
  const nextWrite = (key: string) =>
    Effect.gen(function*() {
      const existing = waiters.get(key)
      if (existing !== undefined) return existing
      const d = yield* Deferred.make<void>()
      waiters.set(key, d)
      return d
    })

  const callDecode = <A, I>(op: string, fn: string, args: ReadonlyArray<Arg>, schema: Schema.Schema<A, I>): Fx<A> =>
    Effect.flatMap(call(op, fn, args), decode(op, schema))

  const callOption = <A, I>(op: string, fn: string, args: ReadonlyArray<Arg>, schema: Schema.Schema<A, I>) =>
    Effect.map(callDecode(op, fn, args, nullable(schema)), Option.fromNullable)

  const callVoid = (op: string, fn: string, args: ReadonlyArray<Arg>): Fx<void> =>
    Effect.asVoid(callDecode(op, fn, args, OkOnly))

  /**
   * A claim that found nothing while another transaction held some of its candidates (see
   * ff_claim) tries again a few times, on the live clock: those candidates may be claimable once
   * that transaction ends, and nothing would wake an idle worker for them.
   */
  const claimMany = (args: M.ClaimArgs, count: number): Fx<ReadonlyArray<M.Handle>> => {
    const once = callDecode("claim", "claim", [
      text(args.lane),
      textArray(args.capabilities.tokens),
      textArray(args.kinds),
      text(args.policy.workerId),
      text(args.policy.workerInstanceId),
      bigint(args.policy.leaseTtlMs),
      int(Math.max(1, Math.floor(count)))
    ], ClaimReply)
    return Effect.gen(function*() {
      let reply = yield* once
      for (let wait = 1; reply.handles.length === 0 && reply.busy > 0 && wait <= BUSY_RETRY_MAX_MS; wait *= 2) {
        yield* Effect.sleep(Duration.millis(wait)).pipe(Effect.withClock(liveClock))
        reply = yield* once
      }
      return reply.handles.map(({ kind, ...payload }) => makeHandle("postgres", kind, payload))
    })
  }

  /** `complete` / `cancel` replayed after a lost reply: the first call ended the attempt (docs/design/executions.md#replaying-a-terminal-write). */
  const replayedAs = (e: EngineError, h: HandleRef, outcome: string): boolean => {
    const d = isNotActive(e)
    return d !== undefined && d.leaseEpoch === String(h.payload.leaseEpoch) && d.terminalOutcome === outcome &&
      d.attemptId === h.payload.attemptId
  }

  /** A terminal write replayed after a lost reply (docs/design/executions.md#replaying-a-terminal-write). */
  const reconcile = <A>(h: HandleRef, effect: Fx<A>, ok: (d: NonNullable<ReturnType<typeof isNotActive>>) => A | undefined) =>
    Effect.catchAll(effect, (e): Fx<A> => {
      const d = isNotActive(e)
      if (d !== undefined && d.leaseEpoch === String(h.payload.leaseEpoch)) {
        const value = ok(d)
        if (value !== undefined) return Effect.succeed(value)
      }
      return Effect.fail(e)
    })

  const readPage = [int(Limits.readPageFrames), bigint(Limits.readPageBytes)] as const
  const tailOnce = (a: M.TailStreamArgs) => {
    const [ts, seq] = bound(a.after, "End")
    return callDecode("tail_stream", "tail_stream", [
      text(a.executionId),
      int(a.attemptIndex),
      bigint(ts),
      bigint(seq ?? 0),
      bool(a.visibility === "exclude_best_effort"),
      int(a.countLimit),
      ...readPage
    ], M.StreamFrames)
  }

  const core: BackendCore = {
    label: "postgres",
    partitions: cfg,
    claimMany,
    subscribeWork: ({ lanes, workerInstanceId }) => {
      const hub = options.hub
      if (hub === undefined) {
        return Effect.fail(new Transport({
          backend: "postgres",
          kind: "other",
          retryable: false,
          message: "wake-ups need a LISTEN connection of their own (listenUrl, or a PgClient in context)"
        }))
      }
      const arm = Effect.map(
        Effect.forEach(
          lanes,
          (lane) => callDecode("lane_wait", "lane_wait", [text(lane), text(workerInstanceId), bigint(WAITER_TTL_MS)], LaneWait),
          // one transaction per lane (each holds that lane's lock alone), a few at a time
          { concurrency: 4 }
        ),
        (waits): EngineBackend.Armed => {
          let due: number | undefined
          for (const w of waits) if (w.dueAt !== null && (due === undefined || w.dueAt < due)) due = w.dueAt
          return { dueAt: Option.fromNullable(due), claimAgain: waits.some((w) => w.fresh) }
        }
      )
      return hub.subscribe({ lanes, workerInstanceId }, {
        arm,
        disarm: callVoid("lane_unwait", "lane_unwait", [textArray(lanes), text(workerInstanceId)]),
        promoteDue: callDecode("promote_due", "promote_due", [textArray(lanes), int(DEFAULT_BATCH_SIZE)], Schema.Int)
      })
    },

    claim: (args) => Effect.map(claimMany(args, 1), (handles) => Option.fromNullable(handles[0])),

    renew: (h) =>
      callDecode("renew", "renew", [...handleArgs(h), bigint(h.payload.leaseTtlMs)], M.LeaseRenewal),

    progress: (h, percent, message) =>
      callVoid("progress", "progress", [...handleArgs(h), int(percent), text(message)]),

    appendFrame: (h, frame) => {
      const mode = modeWire(frame.mode)
      const patch = frame.mode._tag === "DurableSummary" ? parsePatch(frame.bytes) : { patch: null, error: null }
      const cfgBe = frame.mode._tag === "BestEffortLive" ? frame.mode.config : undefined
      const alpha = cfgBe?.emaAlpha === undefined ? 0.2 : Math.min(1, Math.max(Number.EPSILON, cfgBe.emaAlpha))
      return callDecode("append_frame", "append_frame", [
        ...handleArgs(h),
        text(frame.frameType === "" ? frame.kind : frame.frameType),
        text(utf8Lossy.decode(frame.bytes)),
        int(frame.bytes.length),
        text(mode),
        text(frame.correlationId),
        jsonb(patch.patch),
        text(patch.error),
        bigint(cfgBe?.ttlMs ?? 0),
        int(cfgBe?.maxlenFloor ?? 64),
        int(cfgBe?.maxlenCeiling ?? 16_384),
        ["float8", alpha],
        int(10_000),
        int(Limits.summaryDocumentBytes)
      ], M.AppendFrameOutcome).pipe(Effect.tap(() => wake(h)))
    },

    complete: (h, payload) =>
      Effect.catchAll(
        callVoid("complete", "complete", [...handleArgs(h), bytea(payload)]),
        (e) => (replayedAs(e, h, "success") ? Effect.void : Effect.fail(e))
      ).pipe(Effect.tap(() => wake(h))),

    completeMany: (items) =>
      Effect.flatMap(
        caller.callSet("complete_many", "complete_set", items.map(({ h, payload }) => [...handleArgs(h), bytea(payload)])),
        (replies) =>
          Effect.forEach(replies, (reply, i): Effect.Effect<Either.Either<void, EngineError>> => {
            const h = items[i]!.h
            return Either.isRight(reply) || replayedAs(reply.left, h, "success") ?
              Effect.as(wake(h), Either.void) :
              Effect.succeed(Either.left(reply.left))
          })
      ),

    fail: (h, reason, classification) =>
      reconcile(
        h,
        callDecode("fail", "fail", [
          ...handleArgs(h),
          text(reason.message),
          text(failureCategory(reason, classification)),
          text(classification)
        ], M.FailOutcome),
        (d): M.FailOutcome | undefined =>
          d.lifecyclePhase === "terminal" && d.terminalOutcome === "failed" && d.attemptId === h.payload.attemptId ?
            { _tag: "TerminalFailed" } :
            d.lifecyclePhase === "runnable" ?
            { _tag: "RetryScheduled", delayUntil: 0 } :
            undefined
      ).pipe(Effect.tap(() => wake(h))),

    cancel: (h, reason) =>
      Effect.catchAll(
        callVoid("cancel", "cancel", [...handleArgs(h), text(reason)]),
        (e) => (replayedAs(e, h, "cancelled") ? Effect.void : Effect.fail(e))
      ).pipe(Effect.tap(() => wake(h))),

    suspend: (h, args) => {
      const [primary, ...extras] = args.waitpoints
      if (primary === undefined) return Effect.fail(invalidInput("waitpoints_empty"))
      const flat = flattenCondition(args.resumeCondition)
      return Effect.map(
        callDecode("suspend", "suspend", [
          ...handleArgs(h),
          uuid(args.suspensionId),
          uuid(primary.waitpointId),
          text(primary._tag === "Fresh" ? primary.waitpointKey : null),
          bool(primary._tag === "UsePending"),
          jsonb(extras.flatMap((b) => (b._tag === "Fresh" ? [{ waitpointId: b.waitpointId, waitpointKey: b.waitpointKey }] : []))),
          jsonb(flat.condition),
          jsonb(flat.names),
          jsonb(Schema.encodeSync(M.ResumePolicy)(args.resumePolicy)),
          text(args.reasonCode),
          text(blockingReasonOf(args.reasonCode)),
          text(args.requestedBy),
          bigint(args.timeoutAt),
          text(args.timeoutBehavior),
          text(args.continuationMetadataPointer),
          text(args.idempotencyKey ?? ""),
          bigint(args.now)
        ], SuspendRow),
        (row): M.SuspendOutcome =>
          row._tag === "Suspended" ?
            { _tag: "Suspended", details: row.details, handle: { backend: "postgres", kind: "suspended", opaque: h.handle.opaque } } :
            row
      )
    },

    createWaitpoint: (h, waitpointKey, expiresInMs) =>
      callDecode("create_waitpoint", "create_waitpoint", [
        ...handleArgs(h),
        text(waitpointKey),
        bigint(expiresInMs)
      ], CreateWaitpointRow),

    observeSignals: (h) =>
      callDecode("observe_signals", "observe_signals", [text(h.payload.executionId), int(h.payload.attemptIndex)], ResumeSignalRows),

    claimFromReclaim: (token) =>
      Effect.gen(function*() {
        const leaseId = storeLeaseId()
        const result = yield* Effect.either(callDecode("claim_from_reclaim", "claim_resumed", [
          text(token.grant.executionId),
          text(token.workerId),
          text(token.workerInstanceId),
          uuid(leaseId),
          bigint(token.leaseTtlMs),
          bigint(null),
          text(token.grant.grantKey)
        ], ClaimedResumed))
        if (Either.isLeft(result)) {
          const root = rootCause(result.left)
          if (root._tag === "Contention" && NOT_RESUMABLE.has(root.kind)) return Option.none()
          return yield* Effect.fail(result.left)
        }
        const { leaseExpiresAt: _, ...payload } = result.right
        return Option.some(makeHandle("postgres", "resumed", { ...payload, laneId: token.grant.laneId }))
      }),

    delay: (h, delayUntil) => callVoid("delay", "delay", [...handleArgs(h), bigint(delayUntil)]),

    waitChildren: (h) => callVoid("wait_children", "wait_children", handleArgs(h)),

    claimForWorker: (args) =>
      callDecode("claim_for_worker", "claim_for_worker", [
        text(args.laneId),
        text(args.workerId),
        text(args.workerInstanceId),
        textArray(args.workerCapabilities),
        textArray(args.kinds),
        bigint(args.grantTtlMs)
      ], M.ClaimForWorkerOutcome),

    // --- reads -----------------------------------------------------------------

    describeExecution: (id) => callOption("describe_execution", "describe_execution", [text(id)], M.ExecutionSnapshot),
    describeFlow: (id) => callOption("describe_flow", "describe_flow", [uuid(id)], M.FlowSnapshot),
    listEdges: (args) =>
      callDecode("list_edges", "list_edges", [
        uuid(args.flowId),
        text(args.direction._tag === "Outgoing" ? args.direction.fromNode : args.direction.toNode),
        bool(args.direction._tag === "Outgoing")
      ], EdgeSnapshots),
    describeEdge: (args) => callOption("describe_edge", "describe_edge", [uuid(args.flowId), uuid(args.edgeId)], M.EdgeSnapshot),
    resolveExecutionFlowId: (id) => callOption("resolve_execution_flow_id", "resolve_execution_flow_id", [text(id)], FlowId),
    getExecutionInput: (id) =>
      callOption("get_execution_input", "get_execution_input", [text(id)], ExecutionInputRow),
    getExecutionInputs: (ids) =>
      Effect.flatMap(
        caller.callMany("get_execution_inputs", "get_execution_input", ids.map((id) => [text(id)])),
        (replies) =>
          Effect.forEach(replies, (reply) =>
            Effect.flatMap(
              reply,
              (value) => Effect.map(decode("get_execution_inputs", nullable(ExecutionInputRow))(value), Option.fromNullable)
            ))
      ),
    getExecutionResult: (id) => callOption("get_execution_result", "get_execution_result", [text(id)], Base64),
    listPendingWaitpoints: (args) =>
      callDecode("list_pending_waitpoints", "list_pending_waitpoints", [
        text(args.executionId),
        uuid(args.after),
        int(args.limit)
      ], M.ListPendingWaitpointsResult),
    readExecutionInfo: (id) => callOption("read_execution_info", "read_execution_info", [text(id)], M.ExecutionInfo),
    readExecutionState: (id) =>
      Effect.flatMap(
        call("read_execution_state", "read_execution_state", [text(id)]),
        (value) =>
          value === null ?
            Effect.succeed(Option.none()) :
            Either.match(Schema.decodeUnknownEither(M.PublicState)(value), {
              onLeft: () => Effect.fail(invalidInput(`read_execution_state: invalid public_state '${String(value)}'`)),
              onRight: (s) => Effect.succeed(Option.some(s))
            })
      ),

    // --- listings ----------------------------------------------------------------

    listFlows: (partition, cursor, limit) =>
      Effect.map(
        callDecode("list_flows", "list_flows", [int(partition), uuid(cursor), int(limit)], FlowPageRow),
        (page): M.ListFlowsPage => ({
          flows: page.flows.map((f) => ({ flowId: f.flowId, createdAt: f.createdAt, status: M.flowStatusOf(f.state) })),
          ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor })
        })
      ),
    listLanes: (cursor, limit) => callDecode("list_lanes", "list_lanes", [text(cursor), int(limit)], M.ListLanesPage),
    listSuspended: (partition, cursor, limit) =>
      callDecode("list_suspended", "list_suspended", [int(partition), text(cursor), int(limit)], M.ListSuspendedPage),
    listExecutions: (partition, cursor, limit) =>
      callDecode("list_executions", "list_executions", [int(partition), text(cursor), int(limit)], M.ListExecutionsPage),

    // --- signals -------------------------------------------------------------------

    deliverSignal: (a) =>
      callDecode("deliver_signal", "deliver_signal", [
        text(a.executionId),
        uuid(a.waitpointId),
        uuid(a.signalId),
        text(a.signalName),
        text(a.signalCategory),
        text(a.sourceType),
        text(a.sourceIdentity),
        bytea(a.payload),
        text(a.payloadEncoding ?? "json"),
        text(a.correlationId),
        text(a.idempotencyKey),
        text(a.targetScope),
        bigint(a.createdAt),
        bigint(a.dedupTtlMs ?? 86_400_000),
        bigint(a.resumeDelayMs),
        int(a.maxSignalsPerExecution),
        text(a.waitpointToken)
      ], DeliverRow),

    claimResumedExecution: (a) =>
      Effect.map(
        callDecode("claim_resumed_execution", "claim_resumed", [
          text(a.executionId),
          text(a.workerId),
          text(a.workerInstanceId),
          uuid(a.leaseId),
          bigint(a.leaseTtlMs),
          bigint(a.remainingAttemptTimeoutMs),
          text(null)
        ], ClaimedResumed),
        ({ leaseExpiresAt, ...payload }): M.ClaimResumedExecutionResult => ({
          _tag: "Claimed",
          claimed: {
            executionId: payload.executionId,
            leaseId: payload.leaseId,
            leaseEpoch: payload.leaseEpoch,
            attemptIndex: payload.attemptIndex,
            attemptId: payload.attemptId,
            leaseExpiresAt
          },
          handle: makeHandle("postgres", "resumed", payload)
        })
      ),

    // --- producer, flows, operator control ----------------------------------------------

    createExecution: (a) => {
      const x = createItem(a)
      return callDecode("create_execution", "create_execution", [
        text(x.executionId),
        int(x.partition),
        text(x.namespace),
        text(x.laneId),
        text(x.executionKind),
        bytea(a.inputPayload),
        text(x.payloadEncoding),
        int(x.priority),
        text(x.creatorIdentity),
        text(x.idempotencyKey),
        jsonb(x.tags),
        jsonb(x.policy),
        textArray(x.requiredCapabilities),
        bigint(x.delayUntil),
        bigint(x.executionDeadlineAt),
        bigint(x.attemptTimeoutMs),
        int(x.maxReclaimCount),
        int(x.maxReplayCount),
        bigint(x.dedupTtlMs),
        text(x.traceContext)
      ], M.CreateExecutionResult)
    },

    createExecutions: (list) =>
      callDecode(
        "create_executions",
        "create_executions",
        [jsonb(list.map((a) => ({ ...createItem(a), payload: Buffer.from(a.inputPayload).toString("base64") })))],
        CreateExecutionResults
      ),

    createFlow: (a) =>
      callDecode("create_flow", "create_flow", [
        uuid(a.flowId),
        int(flowPartition(a.flowId, cfg)),
        text(a.flowKind),
        text(a.namespace),
        bool(a.sealed)
      ], M.CreateFlowResult),

    createFlowGraph: (g) =>
      callDecode("create_flow_graph", "create_flow_graph", [
        uuid(g.flow.flowId),
        int(flowPartition(g.flow.flowId, cfg)),
        text(g.flow.flowKind),
        text(g.flow.namespace),
        jsonb(g.members.map((a) => ({ ...createItem(a), payload: Buffer.from(a.inputPayload).toString("base64") }))),
        jsonb(g.edges.map(graphEdge)),
        jsonb(g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinColumns(policy)
        }))),
        bool(g.flow.sealed)
      ], M.CreateFlowGraphResult),

    extendFlow: (g) =>
      callDecode("extend_flow", "extend_flow", [
        uuid(g.flowId),
        jsonb(g.members.map((a) => ({ ...createItem(a), payload: Buffer.from(a.inputPayload).toString("base64") }))),
        jsonb(g.edges.map(graphEdge)),
        jsonb(g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinColumns(policy)
        })))
      ], M.ExtendFlowResult),

    sealFlow: (a) => callDecode("seal_flow", "seal_flow", [uuid(a.flowId)], M.SealFlowResult),

    addExecutionToFlow: (a) =>
      callDecode("add_execution_to_flow", "add_execution_to_flow", [uuid(a.flowId), text(a.executionId)], M.AddExecutionToFlowResult),

    stageDependencyEdge: (a) =>
      callDecode("stage_dependency_edge", "stage_dependency_edge", [
        uuid(a.flowId),
        uuid(a.edgeId),
        text(a.upstreamExecutionId),
        text(a.downstreamExecutionId),
        text(a.dependencyKind),
        text(a.dataPassingRef ?? ""),
        bigint(a.expectedGraphRevision),
        bigint(a.now)
      ], M.StageDependencyEdgeResult),

    applyDependencyToChild: (a) =>
      callDecode("apply_dependency_to_child", "apply_dependency_to_child", [
        uuid(a.flowId),
        uuid(a.edgeId),
        text(a.downstreamExecutionId),
        text(a.upstreamExecutionId),
        text(a.dependencyKind),
        text(a.dataPassingRef ?? "")
      ], M.ApplyDependencyToChildResult),

    setEdgeGroupPolicy: (a) => {
      const join = joinColumns(a.policy)
      return callDecode("set_edge_group_policy", "set_edge_group_policy", [
        uuid(a.flowId),
        text(a.downstreamExecutionId),
        text(join.variant),
        text(join.onSatisfied),
        int(join.k)
      ], M.SetEdgeGroupPolicyResult)
    },

    cancelExecution: (a) =>
      callDecode("cancel_execution", "cancel_execution", [
        text(a.executionId),
        text(a.reason),
        text(a.source),
        uuid(a.leaseId),
        bigint(a.leaseEpoch)
      ], M.CancelExecutionResult),

    changePriority: (a) =>
      callDecode("change_priority", "change_priority", [text(a.executionId), int(clampPriority(a.newPriority))], M.ChangePriorityResult),

    replayExecution: (id) => callDecode("replay_execution", "replay_execution", [text(id)], M.ReplayExecutionResult),

    revokeLease: (a) =>
      callDecode("revoke_lease", "revoke_lease", [
        text(a.executionId),
        uuid(a.expectedLeaseId),
        text(a.workerInstanceId ?? ""),
        text(a.reason)
      ], M.RevokeLeaseResult),

    // --- flow cancellation ---------------------------------------------------------------

    cancelFlow: (a) =>
      callDecode("cancel_flow", "cancel_flow", [
        uuid(a.flowId),
        text(M.cancelFlowPolicyWire(a.policy)),
        text(a.reason),
        int(options.cancelFlowInlineLimit)
      ], M.CancelFlowResult),

    cancelFlowHeader: (a) =>
      callDecode("cancel_flow_header", "cancel_flow_header", [
        uuid(a.flowId),
        text(M.cancelFlowPolicyWire(a.cancellationPolicy)),
        text(a.reason)
      ], M.CancelFlowHeader),

    ackCancelMember: (a) => callVoid("ack_cancel_member", "ack_cancel_member", [uuid(a.flowId), text(a.executionId)]),

    // --- budgets and quotas --------------------------------------------------------------------

    reportUsage: (_h, budgetId, dimensions) => {
      const dims = Object.keys(dimensions.custom).sort()
      return callDecode("report_usage", "report_usage", [
        uuid(budgetId),
        textArray(dims),
        ["bigint[]", dims.map((d) => dimensions.custom[d] ?? 0)],
        text(dimensions.dedupKey)
      ], M.ReportUsageResult)
    },

    reportUsageAdmin: (a) =>
      callDecode("report_usage_admin", "report_usage", [
        uuid(a.budgetId),
        textArray(a.dimensions),
        ["bigint[]", a.deltas],
        text(a.dedupKey)
      ], M.ReportUsageResult),

    createBudget: (a) =>
      callDecode("create_budget", "create_budget", [
        uuid(a.budgetId),
        int(budgetPartition(a.budgetId, cfg)),
        text(a.scopeType),
        text(a.scopeId),
        text(a.enforcementMode),
        text(a.onHardLimit),
        text(a.onSoftLimit),
        bigint(a.resetIntervalMs),
        textArray(a.dimensions),
        ["bigint[]", a.hardLimits],
        ["bigint[]", a.softLimits]
      ], M.CreateBudgetResult),

    resetBudget: (id) => callDecode("reset_budget", "reset_budget", [uuid(id)], M.ResetBudgetResult),

    getBudgetStatus: (id) =>
      Effect.flatMap(call("get_budget_status", "get_budget_status", [uuid(id)]), (raw) =>
        Effect.flatMap(decode("get_budget_status", M.BudgetStatus)(raw), (status) => {
          // dimensions are the caller's names: records without a prototype keep every one (records.ts)
          const isNumber = (v: unknown): v is number => typeof v === "number"
          const own = (k: "usage" | "hardLimits" | "softLimits") => ownEntries((raw as Record<string, unknown>)[k], isNumber)
          const usage = own("usage")
          const hardLimits = own("hardLimits")
          const softLimits = own("softLimits")
          return usage === undefined || hardLimits === undefined || softLimits === undefined ?
            Effect.fail(corruption("get_budget_status: a usage or limit is not a number")) :
            Effect.succeed({ ...status, usage: recordOf(usage), hardLimits: recordOf(hardLimits), softLimits: recordOf(softLimits) })
        })),

    createQuotaPolicy: (a) =>
      callDecode("create_quota_policy", "create_quota_policy", [
        uuid(a.quotaPolicyId),
        int(quotaPartition(a.quotaPolicyId, cfg)),
        bigint(a.windowSeconds),
        bigint(a.maxRequestsPerWindow),
        bigint(a.maxConcurrent)
      ], M.CreateQuotaPolicyResult),

    // --- streams -------------------------------------------------------------------------------

    readStream: (a) => {
      const [fromTs, fromSeq, fromLast] = bound(a.from, "End")
      const [toTs, toSeq, toFirst] = bound(a.to, "Start")
      return callDecode("read_stream", "read_stream", [
        text(a.executionId),
        int(a.attemptIndex),
        bigint(fromTs),
        bigint(fromSeq),
        bool(fromLast),
        bigint(toTs),
        bigint(toSeq),
        bool(toFirst),
        int(a.countLimit),
        ...readPage
      ], M.StreamFrames)
    },

    tailStream: (a) =>
      Effect.gen(function*() {
        const first = yield* tailOnce(a)
        if (first.frames.length > 0 || a.blockMs === 0 || first.closedAt !== undefined) return first
        const key = streamKey(a.executionId, a.attemptIndex)
        const last = yield* Ref.make(first)
        // a poll per interval (real time, so other processes' writes are seen) or at once on a local write
        const poll: Fx<M.StreamFrames> = Effect.gen(function*() {
          for (;;) {
            const written = yield* nextWrite(key)
            yield* Effect.raceFirst(Deferred.await(written), realSleep(options.tailPollMs))
            const r = yield* tailOnce(a)
            if (r.frames.length > 0 || r.closedAt !== undefined) return r
            yield* Ref.set(last, r)
          }
        })
        const timeout = Effect.zipRight(
          Effect.sleep(Duration.millis(a.blockMs)),
          Effect.map(Ref.get(last), (r): M.StreamFrames => ({ ...r, frames: [] }))
        )
        return yield* Effect.raceFirst(poll, timeout)
      }),

    readSummary: (a) =>
      Effect.map(
        callOption("read_summary", "read_summary", [text(a.executionId), int(a.attemptIndex)], SummaryRow),
        Option.map((row): M.SummaryDocument => ({
          ...row,
          documentJson: utf8Encoder.encode(JSON.stringify(JSON.parse(row.documentJson)))
        }))
      ),

    // --- admin ---------------------------------------------------------------------------------

    rotateWaitpointHmacSecretAll: (a) =>
      Effect.map(
        Effect.either(callDecode("rotate_waitpoint_hmac_secret_all", "rotate_waitpoint_hmac_secret", [
          text(a.newKid),
          text(a.newSecretHex),
          bigint(a.graceMs)
        ], M.RotateOutcome)),
        (result): EngineBackend.RotateResult => ({ entries: [{ partition: 0, result }] })
      ),

    seedWaitpointHmacSecret: (a) =>
      callDecode("seed_waitpoint_hmac_secret", "seed_waitpoint_hmac_secret", [text(a.kid), text(a.secretHex)], M.SeedOutcome),

    ping: () => Effect.asVoid(call("ping", "ping", [])),
    prepare: () => Effect.succeed({ _tag: "NoOp" as const }),
    shutdownPrepare: () => Effect.void
  }
  return core
}

/** The maintenance passes (docs/design/maintenance.md) over the same caller. */
export const makeMaintenance = (caller: Caller): Maintenance.Service => {
  const run = (name: PassName, fn: string, extra: ReadonlyArray<Arg>) => (passOptions?: PassOptions): Fx<PassResult> => {
    const batch = Math.max(1, Math.floor(passOptions?.batchSize ?? DEFAULT_BATCH_SIZE))
    return Effect.map(
      Effect.flatMap(caller.call(name, fn, [...extra, int(batch)]), decode(name, PassRow)),
      (r) => ({ pass: name, ...r })
    )
  }
  return {
    expireLeases: run("expireLeases", "pass_timers", [text("lease")]),
    promoteDelayed: run("promoteDelayed", "pass_timers", [text("delay")]),
    expireAttempts: run("expireAttempts", "pass_timers", [text("attempt_timeout")]),
    expireExecutions: run("expireExecutions", "pass_timers", [text("deadline")]),
    expireSuspensions: run("expireSuspensions", "pass_timers", [text("suspension")]),
    expirePendingWaitpoints: run("expirePendingWaitpoints", "pass_timers", [text("waitpoint")]),
    reconcileDependencies: run("reconcileDependencies", "pass_dependencies", []),
    drainCancelBacklog: run("drainCancelBacklog", "pass_cancel_backlog", []),
    resetBudgets: run("resetBudgets", "pass_timers", [text("budget_reset")]),
    trimRetention: run("trimRetention", "pass_retention", [])
  }
}

