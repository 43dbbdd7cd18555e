/**
 * Strict decoding of stored records (exec core, flow core, edges) into the
 * read models. A stored value that does not decode is `Validation(Corruption)`
 * with the detail `<context>: <field>: <message>` (docs/design/reads.md#stored-data-that-does-not-decode).
 */
import { Either, Schema } from "effect"
import { corruption, invalidInput, type Validation } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"

export type Hash = Readonly<Record<string, string>>

/** Field readers; the first bad field is remembered and reported by `strict`. */
export interface Reader {
  readonly str: (field: string) => string
  readonly opt: (field: string) => string | undefined
  readonly int: (field: string) => number
  readonly optInt: (field: string) => number | undefined
  readonly decode: <A, I>(field: string, schema: Schema.Schema<A, I>, value: unknown) => A
  /** Records a corruption of `field` (the first one wins). */
  readonly bad: (field: string, message: string) => void
  readonly error: () => Validation | undefined
}

export const reader = (context: string, h: Hash): Reader => {
  let first: Validation | undefined
  const bad = (field: string, message: string): void => {
    if (first === undefined) first = corruption(`${context}: ${field}: ${message}`)
  }
  const str = (field: string): string => {
    const v = h[field]
    if (v === undefined) bad(field, "missing")
    return v ?? ""
  }
  const opt = (field: string): string | undefined => {
    const v = h[field]
    return v === undefined || v === "" ? undefined : v
  }
  const toInt = (field: string, v: string): number => {
    if (/^-?\d+$/.test(v)) return Number(v)
    bad(field, `not an integer: ${JSON.stringify(v)}`)
    return 0
  }
  const int = (field: string): number => toInt(field, str(field))
  const optInt = (field: string): number | undefined => {
    const v = opt(field)
    return v === undefined ? undefined : toInt(field, v)
  }
  const decode = <A, I>(field: string, schema: Schema.Schema<A, I>, value: unknown): A => {
    const r = Schema.validateEither(schema)(value)
    if (Either.isRight(r)) return r.right
    bad(field, `invalid value ${JSON.stringify(value)}`)
    // the value is discarded: `strict` reports the recorded error instead
    return value as A
  }
  return { str, opt, int, optInt, decode, bad, error: () => first }
}

/** Builds a value from a stored hash; a bad field makes it `Left(Validation(Corruption))`. */
export const strict = <A>(
  context: string,
  h: Hash,
  f: (r: Reader) => A
): Either.Either<A, Validation> => {
  const r = reader(context, h)
  const value = f(r)
  const error = r.error()
  return error === undefined ? Either.right(value) : Either.left(error)
}

const TAG_KEY = /^[a-z][a-z0-9_]*\./

/** What `ff_read_execution` answers with `history`: see history.lua. */
export interface StoredHistory {
  /** The JSON array of the stored runs, each a JSON array. */
  readonly runs?: string | undefined
  /** The kind of the run holding the lease. */
  readonly running?: string | undefined
  /** The last failure, a JSON array. */
  readonly fail?: string | undefined
}

const StoredRun = Schema.parseJson(Schema.Array(Schema.parseJson(Schema.Array(Schema.String))))
const StoredFailure = Schema.parseJson(Schema.Tuple(Schema.String, Schema.String, Schema.String, Schema.String))
const INT = /^-?\d+$/

const historyOf = (r: Reader, core: Hash, h: StoredHistory): {
  readonly attemptHistory: ReadonlyArray<M.AttemptRun>
  readonly lastFailure?: M.LastFailure
} => {
  const num = (field: string, v: string | undefined): number => {
    if (v !== undefined && INT.test(v)) return Number(v)
    r.bad(field, `not an integer: ${JSON.stringify(v)}`)
    return 0
  }
  const runs: Array<M.AttemptRun> = []
  const stored = Schema.decodeUnknownEither(StoredRun)(h.runs ?? "[]")
  if (Either.isLeft(stored)) r.bad("hist", "not a list of runs")
  for (const x of Either.getOrElse(stored, () => [])) {
    runs.push(r.decode("hist", M.AttemptRun, {
      attemptIndex: num("hist", x[0]),
      kind: x[1],
      workerId: x[2],
      workerInstanceId: x[3],
      startedAt: num("hist", x[4]),
      endedAt: num("hist", x[5]),
      outcome: x[6],
      ...(x[7] === undefined ? {} : { reason: x[7] })
    }))
  }
  if (h.running !== undefined) {
    runs.push(r.decode("current_attempt_index", M.AttemptRun, {
      attemptIndex: num("current_attempt_index", core["current_attempt_index"]),
      kind: h.running,
      workerId: core["current_worker_id"],
      workerInstanceId: core["current_worker_instance_id"],
      startedAt: num("lease_acquired_at", core["lease_acquired_at"]),
      outcome: "running"
    }))
  }
  let lastFailure: M.LastFailure | undefined
  if (h.fail !== undefined) {
    const f = Schema.decodeUnknownEither(StoredFailure)(h.fail)
    if (Either.isLeft(f)) r.bad("fail", "not a failure record")
    else {
      const [at, classification, category, reason] = f.right
      lastFailure = r.decode("fail", M.LastFailure, { reason, classification, category, at: num("fail", at) })
    }
  }
  return {
    attemptHistory: runs.slice(-Limits.historyRuns),
    ...(lastFailure === undefined ? {} : { lastFailure })
  }
}

export const executionSnapshot = (
  id: Ids.ExecutionId,
  core: Hash,
  tags: Hash,
  history: StoredHistory = {}
): Either.Either<M.ExecutionSnapshot, Validation> =>
  strict("describe_execution: exec_core", core, (r) => {
    const attemptId = r.opt("current_attempt_id")
    const currentAttempt = attemptId === undefined ? undefined : {
      attemptId: r.decode("current_attempt_id", Ids.AttemptId, attemptId),
      attemptIndex: r.decode("current_attempt_index", Ids.AttemptIndex, r.int("current_attempt_index"))
    }
    const worker = r.opt("current_worker_instance_id")
    const expires = r.optInt("lease_expires_at")
    const heartbeat = r.optInt("lease_last_renewed_at")
    const currentLease = worker === undefined || expires === undefined ? undefined : {
      leaseEpoch: r.decode("current_lease_epoch", Ids.LeaseEpoch, r.int("current_lease_epoch")),
      workerInstanceId: worker as Ids.WorkerInstanceId,
      expiresAt: expires,
      leaseId: r.decode("current_lease_id", Ids.LeaseId, r.str("current_lease_id")),
      attemptIndex: r.decode("current_attempt_index", Ids.AttemptIndex, r.int("current_attempt_index")),
      ...(heartbeat === undefined ? {} : { lastHeartbeatAt: heartbeat })
    }
    const flowId = r.opt("flow_id")
    const waitpoint = r.opt("current_waitpoint_id")
    const blockingReason = r.opt("blocking_reason")
    const blockingDetail = r.opt("blocking_detail")
    const startedAt = r.optInt("started_at")
    const completedAt = r.optInt("completed_at")
    const progressAt = r.optInt("progress_updated_at")
    const percent = r.optInt("progress_pct")
    const message = r.opt("progress_message")
    const cancellationReason = r.opt("terminal_outcome") === "cancelled" ? r.opt("cancellation_reason") : undefined
    return {
      executionId: id,
      ...(flowId === undefined ? {} : { flowId: r.decode("flow_id", Ids.FlowId, flowId) }),
      laneId: r.decode("lane_id", Ids.LaneId, r.str("lane_id")),
      namespace: r.str("namespace") as Ids.Namespace,
      publicState: r.decode("public_state", M.PublicState, r.str("public_state")),
      ...(blockingReason === undefined ? {} : { blockingReason }),
      ...(blockingDetail === undefined ? {} : { blockingDetail }),
      ...(currentAttempt === undefined ? {} : { currentAttempt }),
      ...(currentLease === undefined ? {} : { currentLease }),
      ...(waitpoint === undefined ? {} : { currentWaitpoint: r.decode("current_waitpoint_id", Ids.WaitpointId, waitpoint) }),
      createdAt: r.int("created_at"),
      ...(startedAt === undefined ? {} : { startedAt }),
      ...(completedAt === undefined ? {} : { completedAt }),
      lastMutationAt: r.int("last_mutation_at"),
      totalAttemptCount: r.optInt("total_attempt_count") ?? 0,
      tags: { ...tags },
      ...(progressAt === undefined ? {} : {
        progress: {
          ...(percent === undefined ? {} : { percent }),
          ...(message === undefined ? {} : { message }),
          updatedAt: progressAt
        }
      }),
      ...(cancellationReason === undefined ? {} : { cancellationReason }),
      ...historyOf(r, core, history)
    }
  })

const stateField = <A extends string>(
  core: Hash,
  field: string,
  schema: Schema.Schema<A, A>
): Either.Either<A, Validation> => {
  const v = core[field] ?? ""
  return Either.mapLeft(
    Schema.decodeUnknownEither(schema)(v),
    () => invalidInput(`invalid ${field} '${v}': not a known ${field}`)
  )
}

export const executionInfo = (id: Ids.ExecutionId, core: Hash): Either.Either<M.ExecutionInfo, Validation> =>
  Either.gen(function*() {
    const stateVector: M.StateVector = {
      lifecyclePhase: yield* stateField(core, "lifecycle_phase", M.LifecyclePhase),
      ownershipState: yield* stateField(core, "ownership_state", M.OwnershipState),
      eligibilityState: yield* stateField(core, "eligibility_state", M.EligibilityState),
      blockingReason: yield* stateField(core, "blocking_reason", M.BlockingReason),
      terminalOutcome: yield* stateField(core, "terminal_outcome", M.TerminalOutcome),
      attemptState: yield* stateField(core, "attempt_state", M.AttemptState),
      publicState: yield* stateField(core, "public_state", M.PublicState)
    }
    return yield* strict("read_execution_info: exec_core", core, (r) => {
      const startedAt = r.opt("started_at")
      const completedAt = r.opt("completed_at")
      const flowId = r.opt("flow_id")
      return {
        executionId: id,
        namespace: r.str("namespace") as Ids.Namespace,
        laneId: r.decode("lane_id", Ids.LaneId, r.str("lane_id")),
        priority: r.int("priority"),
        executionKind: r.opt("execution_kind") ?? "",
        stateVector,
        publicState: stateVector.publicState,
        createdAt: r.str("created_at"),
        ...(startedAt === undefined ? {} : { startedAt }),
        ...(completedAt === undefined ? {} : { completedAt }),
        currentAttemptIndex: r.optInt("current_attempt_index") ?? 0,
        ...(flowId === undefined ? {} : { flowId }),
        blockingDetail: r.opt("blocking_detail") ?? "",
        ...(stateVector.terminalOutcome === "cancelled" ?
          { cancellationReason: r.opt("cancellation_reason") ?? "", cancelledBy: r.opt("cancelled_by") ?? "" } :
          {})
      }
    })
  })

const FLOW_FIELDS = new Set([
  "flow_id",
  "flow_kind",
  "namespace",
  "graph_revision",
  "node_count",
  "edge_count",
  "public_flow_state",
  "created_at",
  "last_mutation_at",
  "cancelled_at",
  "cancel_reason",
  "cancellation_policy",
  "sealed",
  // member counters the public state is derived from (flow.lua); not part of the snapshot
  "open_members",
  "bad_members",
  // the public state its events last reported (events.lua); not part of the snapshot
  "es",
  // its members with a join group are kept in a set (flow.lua, FF.group_added)
  "gs"
])

export interface GroupHash extends Hash {
  readonly downstream: string
}

export const flowSnapshot = (
  id: Ids.FlowId,
  core: Hash,
  storedTags: Hash,
  groups: ReadonlyArray<GroupHash>
): Either.Either<M.FlowSnapshot, Validation> =>
  strict("describe_flow: flow_core", core, (r) => {
    if (r.str("flow_id") !== id) r.bad("flow_id", `stored ${core["flow_id"]} for flow ${id}`)
    const tags: Record<string, string> = { ...storedTags }
    for (const [k, v] of Object.entries(core)) {
      if (FLOW_FIELDS.has(k)) continue
      if (TAG_KEY.test(k)) tags[k] = v
      else r.bad(k, "unknown field")
    }
    const cancelledAt = r.optInt("cancelled_at")
    const cancelReason = r.opt("cancel_reason")
    const cancellationPolicy = r.opt("cancellation_policy")
    return {
      flowId: id,
      flowKind: r.str("flow_kind"),
      namespace: r.str("namespace") as Ids.Namespace,
      publicFlowState: r.str("public_flow_state"),
      sealed: r.opt("sealed") === "1",
      graphRevision: r.int("graph_revision"),
      nodeCount: r.int("node_count"),
      edgeCount: r.int("edge_count"),
      createdAt: r.int("created_at"),
      lastMutationAt: r.int("last_mutation_at"),
      ...(cancelledAt === undefined ? {} : { cancelledAt }),
      ...(cancelReason === undefined ? {} : { cancelReason }),
      ...(cancellationPolicy === undefined ? {} : { cancellationPolicy }),
      tags,
      edgeGroups: groups.map((g) => edgeGroup(r, g))
    }
  })

const edgeGroup = (parent: Reader, g: GroupHash): M.EdgeGroupSnapshot => {
  const r = reader("describe_flow: edge_group", g)
  const variant = r.opt("policy_variant") ?? "all_of"
  const onSatisfied = r.opt("on_satisfied")
  const policy: M.EdgeDependencyPolicy = variant === "all_of" ?
    { _tag: "all_of" } :
    variant === "any_of" ?
    { _tag: "any_of", onSatisfied: r.decode("on_satisfied", M.OnSatisfied, onSatisfied) } :
    variant === "quorum" ?
    { _tag: "quorum", k: r.int("k"), onSatisfied: r.decode("on_satisfied", M.OnSatisfied, onSatisfied) } :
    (() => {
      r.bad("policy_variant", `unknown variant ${variant}`)
      return { _tag: "all_of" as const }
    })()
  const n = r.optInt("n") ?? 0
  const succeeded = r.optInt("succeeded") ?? 0
  const failed = r.optInt("failed") ?? 0
  const skipped = r.optInt("skipped") ?? 0
  const snapshot: M.EdgeGroupSnapshot = {
    downstreamExecutionId: r.decode("downstream", Ids.ExecutionId, g.downstream),
    policy,
    totalDeps: n,
    satisfiedCount: succeeded,
    failedCount: failed,
    skippedCount: skipped,
    runningCount: Math.max(0, n - succeeded - failed - skipped),
    groupState: r.decode("group_state", M.EdgeGroupState, r.opt("group_state") ?? "pending")
  }
  const e = r.error()
  if (e !== undefined) parent.bad("edge_group", e.detail)
  return snapshot
}

const EDGE_FIELDS = new Set([
  "edge_id",
  "flow_id",
  "upstream_execution_id",
  "downstream_execution_id",
  "dependency_kind",
  "satisfaction_condition",
  "data_passing_ref",
  "edge_state",
  "created_at",
  "created_by"
])

export const edgeSnapshot = (
  context: string,
  h: Hash,
  expected: { readonly flowId: Ids.FlowId; readonly edgeId?: string | undefined }
): Either.Either<M.EdgeSnapshot, Validation> =>
  strict(context, h, (r) => {
    for (const k of Object.keys(h)) if (!EDGE_FIELDS.has(k)) r.bad(k, "unknown field")
    const edgeId = r.decode("edge_id", Ids.EdgeId, r.str("edge_id"))
    if (expected.edgeId !== undefined && edgeId !== expected.edgeId) {
      r.bad("edge_id", `stored ${edgeId}, expected ${expected.edgeId}`)
    }
    const flowId = r.decode("flow_id", Ids.FlowId, r.str("flow_id"))
    if (flowId !== expected.flowId) r.bad("flow_id", `stored ${flowId}, expected ${expected.flowId}`)
    const dataPassingRef = r.opt("data_passing_ref")
    return {
      edgeId,
      flowId,
      upstreamExecutionId: r.decode("upstream_execution_id", Ids.ExecutionId, r.str("upstream_execution_id")),
      downstreamExecutionId: r.decode("downstream_execution_id", Ids.ExecutionId, r.str("downstream_execution_id")),
      dependencyKind: r.str("dependency_kind"),
      satisfactionCondition: r.str("satisfaction_condition"),
      ...(dataPassingRef === undefined ? {} : { dataPassingRef }),
      edgeState: r.str("edge_state"),
      createdAt: r.int("created_at"),
      createdBy: r.str("created_by")
    }
  })
