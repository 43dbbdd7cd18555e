/**
 * `BackendCore` over Valkey: every state transition is one FCALL of the
 * flowfabric library; reads are read-only FCALLs (one consistent snapshot) or
 * plain commands on keys of one slot.
 */
import { Duration, Effect, Either, Option, ParseResult, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import {
  Conflict,
  corruption,
  type EngineError,
  type ExecutionNotActiveDetail,
  fromScriptCode,
  invalidInput,
  validation,
  ResourceExhausted,
  Timeout,
  type Transport,
  Unavailable
} from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CreateExecutionCore, HandleRef } from "../../internal/boundary.js"
import type { Hub } from "../../internal/wakeups.js"
import { makeHandle } from "../../internal/handleCodec.js"
import { ownEntries, recordOf } from "../../internal/records.js"
import { storeAttemptId, storeLeaseId } from "../../internal/storeIds.js"
import { tagBytes } from "../../internal/validation.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { traceParentField } from "../../internal/traceContext.js"
import * as D from "./decode.js"
import { parseError } from "./errors.js"
import { decodeFields, decodeJson, type Envelope, IntStr, LuaArray, type Plumbing, STAGE_BYTES } from "./plumbing.js"
import { type IdClaims, makeRegistry } from "./registry.js"

const S = Schema.String
const Str = Schema.Record({ key: Schema.String, value: Schema.String })

type Fx<A> = Effect.Effect<A, EngineError>

const CLASS_CATEGORY: Record<M.FailureClass, string> = {
  Transient: "transient",
  Permanent: "permanent",
  InfraCrash: "infra_crash",
  Timeout: "timeout",
  Cancelled: "cancelled"
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const failureCategory = (reason: M.FailureReason, cls: M.FailureClass): string => {
  const detail = reason.detail
  if (detail !== undefined && detail.length > 0) {
    try {
      return utf8.decode(detail)
    } catch {
      return CLASS_CATEGORY[cls]
    }
  }
  return CLASS_CATEGORY[cls]
}

/** The reply of every claim-like function: the lease it granted. */
const Claimed = Schema.Tuple(
  Ids.ExecutionId,
  Schema.compose(IntStr, Ids.AttemptIndex),
  Ids.AttemptId,
  Ids.LeaseId,
  Schema.compose(IntStr, Ids.LeaseEpoch),
  IntStr,
  Schema.Literal("fresh", "resumed"),
  S
)

type ClaimedTuple = typeof Claimed.Type
const isExecutionId = Schema.is(Ids.ExecutionId)
const isAttemptId = Schema.is(Ids.AttemptId)
const isLeaseId = Schema.is(Ids.LeaseId)
const isAttemptIndex = Schema.is(Ids.AttemptIndex)
const isLeaseEpoch = Schema.is(Ids.LeaseEpoch)
const DIGITS = /^-?\d+$/

/** `Claimed` on the hot path: the same checks without the Schema machinery; a miss asks the Schema (and its message). */
const claimedFields = (fn: string, f: ReadonlyArray<string>): Effect.Effect<ClaimedTuple, Transport> => {
  if (f.length === 8 && DIGITS.test(f[1]!) && DIGITS.test(f[4]!) && DIGITS.test(f[5]!)) {
    const idx = Number(f[1])
    const epoch = Number(f[4])
    const exp = Number(f[5])
    const kind = f[6]
    if (
      isExecutionId(f[0]) && isAttemptIndex(idx) && isAttemptId(f[2]) && isLeaseId(f[3]) && isLeaseEpoch(epoch) &&
      Number.isInteger(exp) && (kind === "fresh" || kind === "resumed")
    ) {
      return Effect.succeed([f[0], idx, f[2], f[3], epoch, exp, kind, f[7]!] as unknown as ClaimedTuple)
    }
  }
  return decodeFields(fn, Claimed, f)
}

const WaitpointDetailsJson = Schema.Struct({
  waitpoint_id: Ids.WaitpointId,
  waitpoint_key: S,
  waitpoint_token: S
})
const SuspendDetailsJson = Schema.Struct({
  suspension_id: Ids.SuspensionId,
  ...WaitpointDetailsJson.fields,
  additional: LuaArray(WaitpointDetailsJson)
})

const ReadExecution = Schema.Struct({
  core: Str,
  tags: Schema.optional(Str),
  runs: Schema.optional(S),
  running: Schema.optional(S),
  fail: Schema.optional(S)
})

const GroupJson = Schema.extend(Str, Schema.Struct({ downstream: S }))

const SignalJson = Schema.Struct({
  signal_id: Ids.SignalId,
  signal_name: Schema.optionalWith(S, { default: () => "" }),
  signal_category: Schema.optionalWith(S, { default: () => "" }),
  source_type: Schema.optionalWith(S, { default: () => "" }),
  source_identity: Schema.optionalWith(S, { default: () => "" }),
  correlation_id: Schema.optionalWith(S, { default: () => "" }),
  accepted_at: Schema.optionalWith(S, { default: () => "" }),
  has_payload: Schema.optionalWith(S, { default: () => "0" })
})

const FrameJson = Schema.Struct({ id: S, fields: Str })

const PendingJson = Schema.Struct({
  waitpoint_id: Ids.WaitpointId,
  waitpoint_key: S,
  state: Schema.Literal("pending", "active"),
  created_at: S,
  activated_at: S,
  expires_at: S,
  token: S,
  names: S
})

type StrRecord = Readonly<Record<string, string>>

/** ff_budget_status: `{def, usage, limits}`, hashes of strings whose keys are the caller's (kept as they are). */
const decodeBudget = (text: string | undefined): Effect.Effect<{ readonly def: StrRecord; readonly usage: StrRecord; readonly limits: StrRecord }, EngineError> => {
  let raw: unknown
  try {
    raw = JSON.parse(text ?? "")
  } catch {
    raw = undefined
  }
  const isString = (v: unknown): v is string => typeof v === "string"
  const part = (k: string) => {
    const entries = ownEntries((raw as Record<string, unknown> | undefined)?.[k], isString)
    return entries === undefined ? undefined : recordOf(entries)
  }
  const def = part("def")
  const usage = part("usage")
  const limits = part("limits")
  return def === undefined || usage === undefined || limits === undefined ?
    Effect.fail(parseError("ff_budget_status", "not a budget {def, usage, limits}")) :
    Effect.succeed({ def, usage, limits })
}

const MemberIds = LuaArray(Ids.ExecutionId)
const EdgeRows = LuaArray(Str)
/** ff_read_stream: the frames, closed_at, closed_reason, the first frame the page budget left out. */
const Frames = Schema.Tuple(Schema.parseJson(LuaArray(FrameJson)), S, S, S)
const T_Int = Schema.Tuple(IntStr)
const T_Int2 = Schema.Tuple(IntStr, IntStr)
/** ff_issue_grant: the execution, the grant key, its expiry, the partition's lane head after it. */
const T_Grant = Schema.Tuple(Ids.ExecutionId, S, IntStr, S)
const T_Append = Schema.Tuple(S, IntStr, S)
const T_Waitpoint = Schema.Tuple(Ids.WaitpointId, S)
const T_Signal = Schema.Tuple(Ids.SignalId)
const T_Accepted = Schema.Tuple(Ids.SignalId, M.SignalEffect)
const T_Exec = Schema.Tuple(Ids.ExecutionId)
const T_Created = Schema.Tuple(Ids.ExecutionId, M.PublicState)
const decodeExec = Schema.decodeUnknownEither(T_Exec)
const decodeCreated = Schema.decodeUnknownEither(T_Created)
/** Fields of one claim in a claim reply: the handle's, the lease expiry, the kind, the partition's next head. */
const CLAIM_FIELDS = 8
/** Partitions one ff_claim_lane call visits before it leaves the rest of the walk to the layer. */
const CLAIM_LANE_VISITS = 8
/** Items per ff_create_many call (one call blocks the server for about 60 µs per item). */
/**
 * The most one FCALL of a batch takes (each runs alone on the server, so a batch is cut to keep every
 * call short, docs/limits.md): claims of ff_claim_lane, completes of ff_complete_many, and the items,
 * tags and inline bytes of a ff_create_many / ff_create_across chunk.
 */
const CLAIM_CHUNK = 200
const COMPLETE_CHUNK = 200
const CREATE_CHUNK = 100
const CREATE_CHUNK_TAGS = 1_000
const CREATE_CHUNK_BYTES = 2 * 1024 * 1024
const T_Added = Schema.Tuple(Ids.ExecutionId, IntStr)
const T_Staged = Schema.Tuple(Ids.EdgeId, IntStr)
const T_State = Schema.Tuple(M.PublicState)
const T_Str = Schema.Tuple(S)
const T_Str2 = Schema.Tuple(S, S)
/** ff_claim's LATER: the score of the partition's best candidate for the worker, its lane head. */
const T_Later = Schema.Tuple(IntStr, S)

/** What one partition's visit of a claim-hint walk answered (head: its lane head afterwards). */
type Visit<A> =
  | { readonly _tag: "Served"; readonly value: A; readonly head: string }
  | { readonly _tag: "Later"; readonly score: number; readonly head: string }
  | { readonly _tag: "NoMatch"; readonly head: string }
  | { readonly _tag: "Empty" }
type Unserved = Exclude<Visit<never>, { readonly _tag: "Served" }>
const T_Cancel = Schema.Tuple(S, Schema.parseJson(MemberIds))
const T_CancelAlready = Schema.Tuple(S, S, Schema.parseJson(MemberIds))
const T_Breach = Schema.Tuple(S, IntStr, IntStr)
const T_Summary = Schema.Tuple(S, IntStr, S, IntStr, S)
const T_Rotated = Schema.Tuple(S, S, IntStr)
const FlowJson = Schema.Struct({ flow: Str, tags: Str })
const FlowRows = LuaArray(Schema.Tuple(S, S, S, S))
const SuspendedRows = LuaArray(Schema.Tuple(S, S, S))
const SignalRows = LuaArray(SignalJson)
const PendingRows = LuaArray(PendingJson)
const GroupRows = LuaArray(GroupJson)
const StrArray = LuaArray(S)

const sortedByKey = (r: Readonly<Record<string, number>>) => Object.keys(r).sort().map((k) => [k, r[k]!] as const)

/** An edge as stage_edge / apply_dependency / create_flow_graph take it. */
const edgeArgs = (e: M.FlowGraphEdge) => ({
  edge_id: e.edgeId,
  upstream: e.upstreamExecutionId,
  downstream: e.downstreamExecutionId,
  dependency_kind: e.dependencyKind,
  ...(e.dataPassingRef === undefined ? {} : { data_passing_ref: e.dataPassingRef })
})

/** A join policy as set_edge_group_policy / create_flow_graph take it. */
const joinArgs = (policy: M.EdgeDependencyPolicy) => ({
  variant: policy._tag,
  ...(policy._tag === "all_of" ? {} : { on_satisfied: policy.onSatisfied }),
  ...(policy._tag === "quorum" ? { k: policy.k } : {})
})

const condToLua = (c: M.ResumeCondition): unknown => {
  switch (c._tag) {
    case "Single":
      return { kind: "single", key: c.waitpointKey, name: c.matcher._tag === "ByName" ? c.matcher.name : "" }
    case "OperatorOnly":
      return { kind: "operator" }
    case "TimeoutOnly":
      return { kind: "timeout" }
    case "Composite":
      return { kind: "composite", tree: bodyToLua(c.body, "") }
  }
}

const childPath = (path: string, i: number) => (path === "" ? `members[${i}]` : `${path}.members[${i}]`)

const matcherFields = (m: M.SignalMatcher | undefined) =>
  m === undefined || m._tag === "Wildcard" ? { wild: true, name: "" } : { wild: false, name: m.name }

const bodyToLua = (body: M.CompositeBody, path: string): unknown =>
  body._tag === "AllOf" ?
    { k: "allof", path, members: body.members.map((m, i) => memberToLua(m, childPath(path, i))) } :
    { k: "count", path, n: body.n, ck: body.countKind, ...matcherFields(body.matcher), wps: body.waitpoints }

const memberToLua = (m: M.ResumeCondition, path: string): unknown => {
  switch (m._tag) {
    case "Single":
      return { k: "single", path, key: m.waitpointKey, ...matcherFields(m.matcher) }
    case "Composite":
      return bodyToLua(m.body, path)
    default:
      return { k: "never", path }
  }
}

export interface StreamOps {
  /** Runs `effect` holding one stream-op permit (ResourceExhausted / Unavailable otherwise). */
  readonly guard: <A>(effect: Fx<A>) => Fx<A>
  readonly shutdown: (grace: Duration.Duration) => Fx<void>
}

export const makeCore = (
  p: Plumbing,
  streamOps: StreamOps,
  library: { readonly version: string },
  hub: Hub
): BackendCore => {
  const { call, client, keys, settings } = p
  const registry = makeRegistry(p)
  const N = settings.partitions.numFlowPartitions
  const ex = (id: Ids.ExecutionId) => p.flowTarget(Ids.executionPartition(id))
  const flowOf = (id: Ids.FlowId) => p.flowTarget(Ids.flowPartition(id, settings.partitions))
  const budgetOf = (id: Ids.BudgetId) => ({ base: keys.budget(Ids.budgetPartition(id, settings.partitions)) })
  const quotaOf = (id: Ids.QuotaPolicyId) => ({ base: keys.quota(Ids.quotaPartition(id, settings.partitions)) })

  const inRange = (id: Ids.ExecutionId): Fx<void> =>
    Ids.executionPartition(id) < N ?
      Effect.void :
      Effect.fail(invalidInput(`execution id ${id}: partition ${Ids.executionPartition(id)} >= numFlowPartitions ${N}`))

  const fence = (h: HandleRef) => ({
    execution_id: h.payload.executionId,
    attempt_index: h.payload.attemptIndex,
    attempt_id: h.payload.attemptId,
    lease_id: h.payload.leaseId,
    lease_epoch: h.payload.leaseEpoch
  })

  const handleFrom = (
    fn: string,
    env: Envelope,
    lane: Ids.LaneId,
    workerInstanceId: Ids.WorkerInstanceId,
    ttl: number
  ) => handleOf(fn, env.fields.slice(0, CLAIM_FIELDS), lane, workerInstanceId, ttl)

  const handleOf = (
    fn: string,
    fields: ReadonlyArray<string>,
    lane: Ids.LaneId,
    workerInstanceId: Ids.WorkerInstanceId,
    ttl: number
  ) =>
    Effect.map(claimedFields(fn, fields), ([eid, idx, aid, lid, epoch, exp, kind, next]) => ({
      handle: makeHandle("valkey", kind, {
        executionId: eid,
        attemptIndex: idx,
        attemptId: aid,
        leaseId: lid,
        leaseEpoch: epoch,
        leaseTtlMs: ttl,
        laneId: lane,
        workerInstanceId
      }),
      claimed: { executionId: eid, leaseId: lid, leaseEpoch: epoch, attemptIndex: idx, attemptId: aid, leaseExpiresAt: exp },
      next
    }))

  // --- due timers of idle workers ------------------------------------------------------------------
  /** The earliest due time of the lanes' due hints (a lower bound of their delayed work's). */
  const nextDue = (lanes: ReadonlyArray<Ids.LaneId>): Fx<Option.Option<number>> =>
    Effect.map(
      Effect.forEach(
        lanes,
        (lane) => client.run("ZRANGE due", (c) => c.zrange(keys.due(lane), 0, 0, "WITHSCORES")),
        { concurrency: "unbounded" }
      ),
      (heads) => {
        let due: number | undefined
        for (const head of heads) {
          const at = head[1] === undefined ? NaN : Number(head[1])
          if (Number.isFinite(at) && (due === undefined || at < due)) due = at
        }
        return Option.fromNullable(due)
      }
    )

  /** Partitions one promoteDue visits at most per lane. */
  const DUE_VISITS = 16
  const PromoteLane = Schema.Tuple(IntStr, Schema.Literal("0", "1"), Schema.String)

  /**
   * Promotes the due delayed work of `lanes`: each partition whose due hint has come (the store's
   * clock decides) gets one ff_promote_lane, which also sets the hint to the partition's next due
   * time (on a cluster this layer does, then checks again, as `dropHint` does).
   */
  const promoteDue = (lanes: ReadonlyArray<Ids.LaneId>): Fx<number> =>
    Effect.gen(function*() {
      const now = settings.clock === "effect" ? Number(yield* p.nowArg) : Date.now()
      let promoted = 0
      for (const lane of lanes) {
        const due = yield* client.run(
          "ZRANGEBYSCORE due",
          (c) => c.zrangebyscore(keys.due(lane), "-inf", String(now), "LIMIT", 0, DUE_VISITS)
        )
        for (const member of due) {
          const partition = Number(member)
          if (!Number.isInteger(partition) || partition < 0 || partition >= N) {
            yield* client.run("ZREM due", (c) => c.zrem(keys.due(lane), member))
            continue
          }
          const env = yield* call("promote_lane", p.flowTarget(partition), { lane, batch: Limits.batchItems })
          const [n, , next] = yield* decodeFields("ff_promote_lane", PromoteLane, env.fields)
          promoted += n
          if (client.isCluster) yield* fixDue(lane, partition, next)
        }
      }
      return promoted
    })

  /** A cluster's due hint after a promotion: the partition's next due time, or none. */
  const fixDue = (lane: Ids.LaneId, partition: number, next: string): Fx<void> =>
    Effect.gen(function*() {
      if (next !== "") {
        yield* client.run("ZADD due", (c) => c.zadd(keys.due(lane), next, String(partition)))
        return
      }
      yield* client.run("ZREM due", (c) => c.zrem(keys.due(lane), String(partition)))
      // delayed work scheduled meanwhile has written its hint before or after the removal
      const head = yield* client.run(
        "ZRANGE delayed",
        (c) => c.zrange(`${keys.flow(partition)}:l:${lane}:delayed`, 0, 0, "WITHSCORES")
      )
      const again = head[1]
      if (again !== undefined) {
        yield* client.run("ZADD due", (c) => c.call("ZADD", keys.due(lane), "LT", again, String(partition)))
      }
    })

  // --- claims --------------------------------------------------------------------------------
  /**
   * After a claim the partition's head moved on: keep its hint score (and so the global order)
   * exact. The update is sent without waiting for its reply: it leaves on the shared connection
   * ahead of this client's next command (auto-pipelining puts it in the same write), so every
   * later claim of this client sees it, and the claim does not pay one more round trip for it. A
   * failure only leaves the hint stale, which claims tolerate (a claim on a partition whose head
   * moved reports its real head) and the promoteDelayed pass repairs.
   */
  const refreshHint = (lane: Ids.LaneId, partition: number, score: number, next: string): Fx<void> =>
    next === "" ?
      p.dropHint(lane, partition) :
      Number(next) === score ?
      Effect.void :
      Effect.sync(() => {
        client.connection.call("ZADD", keys.hint(lane), "XX", next, String(partition)).catch(() => undefined)
      })

  /** The arguments every claim FCALL takes (ids apart). */
  const claimArgsOf = ({ capabilities, lane, policy }: M.ClaimArgs) => ({
    lane,
    worker_id: policy.workerId,
    worker_instance_id: policy.workerInstanceId,
    caps: capabilities.tokens,
    lease_ttl_ms: policy.leaseTtlMs,
    scan: settings.claimScan
  })

  const claim: BackendCore["claim"] = (args) =>
    client.isCluster ?
      claimCluster(args) :
      Effect.map(claimManyStandalone(args, 1), (handles) => Option.fromNullable(handles[0]))

  interface HintEntry {
    readonly partition: number
    readonly score: number
  }

  /**
   * The hint entries of `lane` best claim score first (ties from a random start, so that
   * concurrent claimers spread over them instead of racing for one), a page at a
   * time. Pages follow scores (a page ends after a whole group of ties, the next one starts past
   * its score), so hints a walk re-scores or removes meanwhile do not shift it; a partition
   * comes at most once.
   */
  const hintCursor = (lane: Ids.LaneId) => {
    const key = keys.hint(lane)
    const entries: Array<HintEntry> = []
    const seen = new Set<number>()
    let min = "-inf"
    let done = false
    const load = Effect.gen(function*() {
      let page = yield* client.run("ZRANGE hint", (c) => c.zrangebyscore(key, min, "+inf", "WITHSCORES", "LIMIT", 0, 32))
      if (page.length < 64) {
        done = true
      } else {
        // the last score's ties in full
        const last = page[page.length - 1]!
        const ties = yield* client.run("ZRANGE hint", (c) => c.zrangebyscore(key, last, last, "WITHSCORES"))
        let keep = page.length
        while (keep >= 2 && page[keep - 1] === last) keep -= 2
        page = [...page.slice(0, keep), ...ties]
        min = `(${last}`
      }
      const rows: Array<HintEntry> = []
      for (let i = 0; i + 1 < page.length; i += 2) {
        const partition = Number(page[i])
        if (!Number.isInteger(partition) || partition < 0 || partition >= N) {
          yield* client.run("ZREM hint", (c) => c.zrem(key, page[i]!))
          continue
        }
        if (seen.has(partition)) continue
        seen.add(partition)
        rows.push({ partition, score: Number(page[i + 1]) })
      }
      let start = 0
      while (start < rows.length) {
        let end = start + 1
        while (end < rows.length && rows[end]!.score === rows[start]!.score) end++
        const size = end - start
        const shift = size > 1 ? yield* Effect.randomWith((r) => r.nextIntBetween(0, size)) : 0
        for (let j = 0; j < size; j++) entries.push(rows[start + ((j + shift) % size)]!)
        start = end
      }
    })
    /** The entry at position `i` of the walk, or undefined past the end. */
    const at = (i: number): Fx<HintEntry | undefined> =>
      Effect.gen(function*() {
        while (entries.length <= i && !done) yield* load
        return entries[i]
      })
    return { at }
  }

  /**
   * The claim-hint walk of a claim on a cluster (one ff_claim per partition, since the hint key
   * lives in another slot) and of every claimForWorker (ff_issue_grant), the same walk as
   * ff_claim_lane's on a standalone server (execution.lua `FF.claim_lane_one`, which explains it):
   * hint entries best first, each visit bounded by the next entry's hint and the deferred
   * candidate, so that the call serves the globally best candidate for this worker
   * (docs/design/executions.md#claim-order); a partition whose best candidate for the worker is worse than the bound answers LATER
   * and is visited again once nothing better can be elsewhere. Each visit sets the partition's
   * hint to its real head (a stale hint costs one visit once).
   */
  const boundedWalk = <A>(
    lane: Ids.LaneId,
    visit: (partition: number, bound: number | undefined) => Fx<Visit<A>>
  ): Fx<Option.Option<A>> =>
    Effect.gen(function*() {
      const hints = hintCursor(lane)
      let i = 0
      let deferred: { readonly partition: number; readonly score: number; readonly hint: number } | undefined
      for (;;) {
        const entry = yield* hints.at(i)
        let partition: number
        let hint: number
        let bound: number | undefined
        if (deferred !== undefined && (entry === undefined || deferred.score <= entry.score)) {
          partition = deferred.partition
          hint = deferred.hint
          bound = entry?.score
          deferred = undefined
        } else if (entry === undefined) {
          return Option.none()
        } else {
          partition = entry.partition
          hint = entry.score
          i++
          bound = (yield* hints.at(i))?.score
          if (deferred !== undefined && (bound === undefined || deferred.score < bound)) bound = deferred.score
        }
        const v = yield* visit(partition, bound)
        switch (v._tag) {
          case "Served":
            yield* refreshHint(lane, partition, hint, v.head)
            return Option.some(v.value)
          case "Later":
            // (visited with the deferred candidate as its bound, a partition answers a worse one)
            if (deferred === undefined || v.score < deferred.score) {
              deferred = { partition, score: v.score, hint: Number(v.head) }
            }
            yield* refreshHint(lane, partition, hint, v.head)
            break
          case "NoMatch":
            yield* refreshHint(lane, partition, hint, v.head)
            break
          case "Empty":
            yield* p.dropHint(lane, partition)
        }
      }
    })

  /** A visit's answer from a LATER / NOMATCH / EMPTY envelope (`null`: a status of the caller's). */
  const visitOf = (fn: string, env: Envelope): Fx<Unserved | null> =>
    Effect.gen(function*() {
      switch (env.status) {
        case "LATER": {
          const [score, head] = yield* decodeFields(fn, T_Later, env.fields)
          return { _tag: "Later", score, head } as const
        }
        case "NOMATCH":
          return { _tag: "NoMatch", head: env.fields[0] ?? "" } as const
        case "EMPTY":
          return { _tag: "Empty" } as const
        default:
          return null
      }
    })

  const claimCluster: BackendCore["claim"] = (args) =>
    boundedWalk<M.Handle>(args.lane, (partition, bound) =>
      Effect.gen(function*() {
        const env = yield* call("claim", p.flowTarget(partition), {
          ...claimArgsOf(args),
          lease_id: storeLeaseId(),
          attempt_id: storeAttemptId(),
          ...(bound === undefined ? {} : { bound: String(bound) })
        })
        const other = yield* visitOf("ff_claim", env)
        if (other !== null) return other
        const r = yield* handleFrom("ff_claim", env, args.lane, args.policy.workerInstanceId, args.policy.leaseTtlMs)
        return { _tag: "Served", value: r.handle, head: r.next } satisfies Visit<M.Handle>
      }))

  /**
   * On a standalone server the hint walk runs inside the server (ff_claim_lane: the same walk, the
   * same ff_claim per partition, the hint kept exact atomically) and one FCALL takes up to `max`
   * claims; a cluster keeps the walk here, one FCALL per partition, since the hint key lives in
   * another slot. One claim visits at most CLAIM_LANE_VISITS partitions (it blocks the server
   * meanwhile); past that (MORE: work exists, none of it for this worker so far) the walk goes on
   * here, one FCALL per partition.
   */
  const claimManyStandalone = (args: M.ClaimArgs, max: number): Fx<ReadonlyArray<M.Handle>> =>
    Effect.gen(function*() {
      const { lane, policy } = args
      const handles: Array<M.Handle> = []
      let last = "OK"
      // CLAIM_CHUNK claims per FCALL; the next chunk only when this one was served whole
      while (last === "OK" && handles.length < max) {
        const n = Math.min(CLAIM_CHUNK, max - handles.length)
        const env = yield* call("claim_lane", { base: keys.hint(lane) }, {
          ...claimArgsOf(args),
          prefix: settings.prefix,
          partitions: N,
          max_visits: CLAIM_LANE_VISITS,
          lease_ids: Array.from({ length: n }, storeLeaseId),
          attempt_ids: Array.from({ length: n }, storeAttemptId)
        })
        const [status = "", ...rest] = env.fields
        last = status
        for (let at = 0; at + CLAIM_FIELDS <= rest.length; at += CLAIM_FIELDS) {
          const fields = rest.slice(at, at + CLAIM_FIELDS)
          handles.push((yield* handleOf("ff_claim_lane", fields, lane, policy.workerInstanceId, policy.leaseTtlMs)).handle)
        }
      }
      return last === "MORE" ? yield* claimOneByOne(args, max, handles) : handles
    })

  /** Single claims until `max` or none is left (`start` is what a batch already took). */
  const claimOneByOne = (args: M.ClaimArgs, max: number, start: Array<M.Handle> = []): Fx<ReadonlyArray<M.Handle>> =>
    Effect.gen(function*() {
      const handles = start
      while (handles.length < max) {
        const next = yield* claimCluster(args)
        if (Option.isNone(next)) break
        handles.push(next.value)
      }
      return handles
    })

  /**
   * On a standalone server one FCALL claims the whole batch, each claim walking the hints from the
   * best partition as a single claim does. A cluster claims one at a time: a batch on one partition
   * would take its worse work before a better head elsewhere.
   */
  const claimMany: BackendCore["claimMany"] = (args, max) =>
    client.isCluster ? claimOneByOne(args, max) : claimManyStandalone(args, max)

  const claimForWorker: BackendCore["claimForWorker"] = (args) =>
    Effect.map(
      boundedWalk<M.ClaimForWorkerOutcome>(args.laneId, (partition, bound) =>
        Effect.gen(function*() {
          const env = yield* call("issue_grant", p.flowTarget(partition), {
            lane: args.laneId,
            worker_id: args.workerId,
            worker_instance_id: args.workerInstanceId,
            caps: args.workerCapabilities,
            grant_ttl_ms: args.grantTtlMs,
            scan: settings.claimScan,
            ...(bound === undefined ? {} : { bound: String(bound) })
          })
          const other = yield* visitOf("ff_issue_grant", env)
          if (other !== null) return other
          const [executionId, grantKey, expiresAtMs, head] = yield* decodeFields("ff_issue_grant", T_Grant, env.fields)
          const granted: M.ClaimForWorkerOutcome = {
            _tag: "Granted",
            grant: { executionId, partitionKey: Ids.partitionKey("Flow", partition), grantKey, expiresAtMs }
          }
          return { _tag: "Served", value: granted, head } satisfies Visit<M.ClaimForWorkerOutcome>
        })),
      Option.getOrElse((): M.ClaimForWorkerOutcome => ({ _tag: "NoWork" }))
    )

  const claimResumedExecution: BackendCore["claimResumedExecution"] = (args) =>
    Effect.gen(function*() {
      yield* inRange(args.executionId)
      const env = yield* call("claim_resumed", ex(args.executionId), {
        execution_id: args.executionId,
        worker_id: args.workerId,
        worker_instance_id: args.workerInstanceId,
        lease_id: args.leaseId,
        lease_ttl_ms: args.leaseTtlMs,
        ...(args.remainingAttemptTimeoutMs === undefined ? {} : { remaining_timeout_ms: args.remainingAttemptTimeoutMs })
      })
      const r = yield* handleFrom("ff_claim_resumed", env, args.laneId, args.workerInstanceId, args.leaseTtlMs)
      return { _tag: "Claimed" as const, claimed: r.claimed, handle: r.handle }
    })

  const claimFromReclaim: BackendCore["claimFromReclaim"] = (token) =>
    Effect.gen(function*() {
      const id = token.grant.executionId
      yield* inRange(id)
      const env = yield* call("claim_resumed", ex(id), {
        execution_id: id,
        worker_id: token.workerId,
        worker_instance_id: token.workerInstanceId,
        lease_id: storeLeaseId(),
        lease_ttl_ms: token.leaseTtlMs
      })
      const r = yield* handleFrom("ff_claim_resumed", env, token.grant.laneId, token.workerInstanceId, token.leaseTtlMs)
      return Option.some(r.handle)
    }).pipe(
      Effect.catchIf(
        (e): e is EngineError =>
          e._tag === "Contention" &&
          (e.kind === "NotAResumedExecution" || e.kind === "ExecutionNotLeaseable" || e.kind === "InvalidClaimGrant" ||
            e.kind === "ClaimGrantExpired"),
        () => Effect.succeed(Option.none<M.Handle>())
      )
    )

  // --- the worker's lease-bound writes ------------------------------------------------------------
  const renew: BackendCore["renew"] = (h) =>
    Effect.gen(function*() {
      const env = yield* call("renew", ex(h.payload.executionId), { ...fence(h), lease_ttl_ms: h.payload.leaseTtlMs })
      const [expiresAtMs] = yield* decodeFields("ff_renew", T_Int, env.fields)
      return { expiresAtMs, leaseEpoch: h.payload.leaseEpoch }
    })

  const progress: BackendCore["progress"] = (h, percent, message) =>
    Effect.asVoid(call("progress", ex(h.payload.executionId), {
      ...fence(h),
      ...(percent === undefined ? {} : { percent }),
      ...(message === undefined ? {} : { message })
    }))

  /** (docs/design/executions.md#replaying-a-terminal-write) A retried terminal write that finds its own outcome succeeds. */
  const reconciled = <A>(h: HandleRef, matches: (d: ExecutionNotActiveDetail) => Option.Option<A>) =>
  (e: EngineError): Fx<A> => {
    if (e._tag === "Contention" && e.kind === "ExecutionNotActive" && e.notActive !== undefined &&
      e.notActive.leaseEpoch === String(h.payload.leaseEpoch)) {
      const r = matches(e.notActive)
      if (Option.isSome(r)) return Effect.succeed(r.value)
    }
    return Effect.fail(e)
  }

  const completedAgain = (h: HandleRef) =>
    reconciled(h, (d) =>
      d.terminalOutcome === "success" && d.attemptId === h.payload.attemptId ? Option.some(undefined) : Option.none())

  const complete: BackendCore["complete"] = (h, payload) =>
    call("complete", ex(h.payload.executionId), fence(h), payload === undefined ? [] : [payload]).pipe(
      Effect.asVoid,
      Effect.catchAll(completedAgain(h))
    )

  const ItemError = Schema.parseJson(Schema.Tuple([Schema.Literal(0), Schema.String], Schema.String))
  const decodeItemError = Schema.decodeUnknownEither(ItemError)

  /**
   * On a standalone server one FCALL completes COMPLETE_CHUNK items (ff_complete_many); a cluster
   * sends them side by side.
   */
  const completeMany: BackendCore["completeMany"] = (items) =>
    client.isCluster ?
      Effect.forEach(items, ({ h, payload }) => Effect.either(complete(h, payload)), { concurrency: "unbounded" }) :
      Effect.map(
        Effect.forEach(
          Array.from({ length: Math.ceil(items.length / COMPLETE_CHUNK) }, (_, i) =>
            items.slice(i * COMPLETE_CHUNK, (i + 1) * COMPLETE_CHUNK)),
          completeChunk,
          { concurrency: "unbounded" }
        ),
        (chunks) => chunks.flat()
      )

  /** One ff_complete_many: its items' outcomes in order. */
  const completeChunk = (items: Parameters<BackendCore["completeMany"]>[0]) =>
    Effect.gen(function*() {
      for (const { h } of items) yield* inRange(h.payload.executionId)
      const blobs: Array<Uint8Array> = []
      const env = yield* call("complete_many", { base: keys.lanes }, {
        prefix: settings.prefix,
        partitions: N,
        items: items.map(({ h, payload }) => ({
          ...fence(h),
          partition: Ids.executionPartition(h.payload.executionId),
          ...(payload === undefined ? {} : { blob: blobs.push(payload) })
        }))
      }, blobs)
      if (env.fields.length !== items.length) {
        return yield* parseError("ff_complete_many", `${env.fields.length} replies for ${items.length} items`)
      }
      return yield* Effect.forEach(env.fields, (field, i): Fx<Either.Either<void, EngineError>> => {
        if (field === "") return Effect.succeed(Either.void)
        const h = items[i]!.h
        const reply = decodeItemError(field)
        if (Either.isLeft(reply)) {
          return Effect.fail(parseError("ff_complete_many", ParseResult.TreeFormatter.formatErrorSync(reply.left)))
        }
        const [, code, ...details] = reply.right
        return Effect.either(completedAgain(h)(fromScriptCode("valkey", code, details)))
      })
    })

  const fail: BackendCore["fail"] = (h, reason, cls) =>
    Effect.gen(function*() {
      const env = yield* call("fail", ex(h.payload.executionId), {
        ...fence(h),
        reason: reason.message,
        category: failureCategory(reason, cls),
        classification: cls
      })
      if (env.status === "RETRY") {
        const [delayUntil] = yield* decodeFields("ff_fail", T_Int, env.fields)
        return { _tag: "RetryScheduled", delayUntil } satisfies M.FailOutcome
      }
      return { _tag: "TerminalFailed" } satisfies M.FailOutcome
    }).pipe(
      Effect.catchAll(reconciled(h, (d): Option.Option<M.FailOutcome> =>
        d.lifecyclePhase === "terminal" && d.terminalOutcome === "failed" && d.attemptId === h.payload.attemptId ?
          Option.some({ _tag: "TerminalFailed" }) :
          d.lifecyclePhase === "runnable" ?
          Option.some({ _tag: "RetryScheduled", delayUntil: 0 }) :
          Option.none()))
    )

  const cancel: BackendCore["cancel"] = (h, reason) =>
    call("cancel", ex(h.payload.executionId), { ...fence(h), reason, mode: "worker", source: "lease_holder" }).pipe(
      Effect.asVoid,
      Effect.catchAll(reconciled(h, (d) =>
        d.terminalOutcome === "cancelled" && d.attemptId === h.payload.attemptId ? Option.some(undefined) : Option.none()))
    )

  const delay: BackendCore["delay"] = (h, delayUntil) =>
    Effect.asVoid(call("delay", ex(h.payload.executionId), { ...fence(h), delay_until: delayUntil }))

  const waitChildren: BackendCore["waitChildren"] = (h) =>
    Effect.asVoid(call("wait_children", ex(h.payload.executionId), fence(h)))

  const appendFrame: BackendCore["appendFrame"] = (h, frame) =>
    Effect.gen(function*() {
      const mode = frame.mode
      const env = yield* call("append_frame", ex(h.payload.executionId), {
        ...fence(h),
        frame_type: frame.frameType === "" ? frame.kind : frame.frameType,
        ...(frame.correlationId === undefined ? {} : { correlation_id: frame.correlationId }),
        mode: mode._tag === "Durable" ? "durable" : mode._tag === "DurableSummary" ? "summary" : "best_effort",
        ...(mode._tag === "DurableSummary" ? { patch_kind: mode.patchKind, summary_max: Limits.summaryDocumentBytes } : {}),
        ...(mode._tag === "BestEffortLive" ?
          {
            ttl_ms: mode.config.ttlMs,
            maxlen_floor: mode.config.maxlenFloor ?? 64,
            maxlen_ceiling: mode.config.maxlenCeiling ?? 16384,
            ema_alpha: mode.config.emaAlpha ?? 0.2
          } :
          {}),
        encoding: "utf8"
      }, [frame.bytes])
      const [streamId, frameCount, version] = yield* decodeFields(
        "ff_append_frame",
        T_Append,
        env.fields
      )
      return {
        streamId,
        frameCount,
        ...(version === "" ? {} : { summaryVersion: Number(version) })
      }
    })

  // --- suspension and signals ---------------------------------------------------------------------
  const suspend: BackendCore["suspend"] = (h, args) =>
    Effect.gen(function*() {
      const [primary, ...extras] = args.waitpoints
      if (primary === undefined) return yield* invalidInput("waitpoints_empty")
      const now = args.now ?? (yield* Effect.clockWith((c) => c.currentTimeMillis))
      const dedupTtl = args.timeoutAt === undefined ?
        604_800_000 :
        Math.max(1, Math.min(args.timeoutAt - now + 60_000, 604_800_000))
      const fresh = args.waitpoints.flatMap((x) => (x._tag === "Fresh" ? [x.waitpointId] : []))
      const suspendCall = (claims: IdClaims) =>
        Effect.flatMap(
          call("suspend", { ...ex(h.payload.executionId), keys: claims.keys }, {
            ...fence(h),
            suspension_id: args.suspensionId,
            cond: condToLua(args.resumeCondition),
            resume_policy_json: JSON.stringify(args.resumePolicy),
            reason_code: args.reasonCode,
            requested_by: args.requestedBy,
            ...(args.timeoutAt === undefined ? {} : { timeout_at: args.timeoutAt }),
            timeout_behavior: args.timeoutBehavior,
            ...(args.continuationMetadataPointer === undefined ? {} : { continuation: args.continuationMetadataPointer }),
            ...(args.idempotencyKey === undefined || args.idempotencyKey === "" ?
              {} :
              { idempotency_key: args.idempotencyKey, dedup_ttl_ms: dedupTtl }),
            use_pending: primary._tag === "UsePending",
            primary: primary._tag === "Fresh" ?
              { waitpoint_id: primary.waitpointId, waitpoint_key: primary.waitpointKey } :
              { waitpoint_id: primary.waitpointId },
            extras: extras.map((x) =>
              x._tag === "Fresh" ? { waitpoint_id: x.waitpointId, waitpoint_key: x.waitpointKey } : { waitpoint_id: x.waitpointId }
            ),
            ...(claims.taken === undefined ? {} : { taken: claims.taken })
          }),
          (env) =>
            Effect.map(
              decodeJson("ff_suspend", SuspendDetailsJson, env.fields[0], h.payload.executionId),
              (d) => ({ status: env.status, d })
            )
        )
      // a keyed retry answered with its first outcome may name other waitpoints than this call's
      const { d, status } = yield* registry.withIds(
        h.payload.executionId,
        fresh.map((w) => keys.waitpointOwner(w)),
        suspendCall,
        ({ d }, i) => d.waitpoint_id === fresh[i] || d.additional.some((x) => x.waitpoint_id === fresh[i])
      ).pipe(
        Effect.catchIf(
          (e): e is EngineError => primary._tag === "UsePending" && e._tag === "Contention" && e.kind === "WaitpointNotFound",
          (e) =>
            Effect.flatMap(
              client.run("GET waitpoint owner", (c) => c.get(keys.waitpointOwner(primary.waitpointId))),
              (owner) =>
                Effect.fail(
                  owner !== null && owner.split("|")[0] !== h.payload.executionId ?
                    validation("InvalidWaitpointForExecution", `waitpoint ${primary.waitpointId} belongs to another execution`) :
                    e
                )
            )
        )
      )
      const details: M.SuspendOutcomeDetails = {
        suspensionId: d.suspension_id,
        waitpointId: d.waitpoint_id,
        waitpointKey: d.waitpoint_key,
        waitpointToken: d.waitpoint_token,
        additionalWaitpoints: d.additional.map((x) => ({
          waitpointId: x.waitpoint_id,
          waitpointKey: x.waitpoint_key,
          waitpointToken: x.waitpoint_token
        }))
      }
      if (status === "SATISFIED") return { _tag: "AlreadySatisfied", details } satisfies M.SuspendOutcome
      return {
        _tag: "Suspended",
        details,
        handle: makeHandle("valkey", "suspended", h.payload)
      } satisfies M.SuspendOutcome
    })

  const createWaitpoint: BackendCore["createWaitpoint"] = (h, waitpointKey, expiresInMs) =>
    Effect.gen(function*() {
      const id = yield* Ids.newWaitpointId
      const [waitpointId, hmacToken] = yield* registry.withIds(
        h.payload.executionId,
        [keys.waitpointOwner(id)],
        (claims) =>
          Effect.flatMap(
            call("create_waitpoint", { ...ex(h.payload.executionId), keys: claims.keys }, {
              ...fence(h),
              waitpoint_id: id,
              waitpoint_key: waitpointKey,
              expires_in_ms: expiresInMs,
              ...(claims.taken === undefined ? {} : { taken: claims.taken })
            }),
            (env) => decodeFields("ff_create_waitpoint", T_Waitpoint, env.fields)
          ),
        () => true
      )
      return { waitpointId, hmacToken }
    })

  const observeSignals: BackendCore["observeSignals"] = (h) =>
    Effect.gen(function*() {
      const id = h.payload.executionId
      const env = yield* call("observe_signals", ex(id), { execution_id: id, attempt_index: h.payload.attemptIndex }, [], true)
      const rows = yield* decodeJson("ff_observe_signals", SignalRows, env.fields[0], id)
      const partition = Ids.executionPartition(id)
      return yield* Effect.forEach(rows, (s) =>
        Effect.gen(function*() {
          const payload = s.has_payload === "1" ?
            yield* client.run("GET signal payload", (c) => c.getBuffer(keys.sigPayload(partition, s.signal_id))) :
            null
          const acceptedAt = /^\d+$/.test(s.accepted_at) ? Number(s.accepted_at) : 0
          return {
            signalId: s.signal_id,
            signalName: s.signal_name,
            signalCategory: s.signal_category,
            sourceType: s.source_type,
            sourceIdentity: s.source_identity,
            correlationId: s.correlation_id,
            acceptedAt,
            ...(payload === null ? {} : { payload: new Uint8Array(payload) })
          } satisfies M.ResumeSignal
        }))
    })

  const deliverSignal: BackendCore["deliverSignal"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const deliver = (claims: IdClaims): Fx<M.DeliverSignalResult> =>
        Effect.gen(function*() {
          const env = yield* call("deliver_signal", { ...ex(a.executionId), keys: claims.keys }, {
            execution_id: a.executionId,
            waitpoint_id: a.waitpointId,
            signal_id: a.signalId,
            signal_name: a.signalName,
            signal_category: a.signalCategory,
            source_type: a.sourceType,
            source_identity: a.sourceIdentity,
            payload_encoding: a.payloadEncoding ?? "json",
            ...(a.correlationId === undefined ? {} : { correlation_id: a.correlationId }),
            ...(a.idempotencyKey === undefined ? {} : { idempotency_key: a.idempotencyKey }),
            target_scope: a.targetScope,
            ...(a.createdAt === undefined ? {} : { created_at: a.createdAt }),
            ...(a.dedupTtlMs === undefined ? {} : { dedup_ttl_ms: a.dedupTtlMs }),
            ...(a.resumeDelayMs === undefined ? {} : { resume_delay_ms: a.resumeDelayMs }),
            ...(a.maxSignalsPerExecution === undefined ? {} : { max_signals: a.maxSignalsPerExecution }),
            ...(a.signalMaxlen === undefined ? {} : { signal_maxlen: a.signalMaxlen }),
            ...(claims.taken === undefined ? {} : { taken: claims.taken }),
            token: a.waitpointToken
          }, a.payload === undefined ? [] : [a.payload])
          if (env.status === "DUPLICATE") {
            const [existingSignalId] = yield* decodeFields("ff_deliver_signal", T_Signal, env.fields)
            return { _tag: "Duplicate", existingSignalId } satisfies M.DeliverSignalResult
          }
          const [signalId, effect] = yield* decodeFields(
            "ff_deliver_signal",
            T_Accepted,
            env.fields
          )
          return { _tag: "Accepted", signalId, effect } satisfies M.DeliverSignalResult
        })
      // a keyed repeat answered Duplicate names the first signal's id, not necessarily this one's
      return yield* registry.withIds(
        a.executionId,
        [keys.signalOwner(a.signalId)],
        deliver,
        (r) => r._tag === "Accepted" || r.existingSignalId === a.signalId
      )
    })

  // --- reads --------------------------------------------------------------------------------------
  const readCore = (id: Ids.ExecutionId, withTags: boolean) =>
    Effect.gen(function*() {
      if (Ids.executionPartition(id) >= N) return Option.none()
      const env = yield* call("read_execution", ex(id), { execution_id: id, tags: withTags, history: withTags }, [], true)
      if (env.status === "NONE") return Option.none()
      return Option.some(yield* decodeJson("ff_read_execution", ReadExecution, env.fields[0], id))
    })

  const describeExecution: BackendCore["describeExecution"] = (id) =>
    Effect.flatMap(readCore(id, true), (r) =>
      Option.match(r, {
        onNone: () => Effect.succeed(Option.none()),
        onSome: (x) => Effect.map(D.executionSnapshot(id, x.core, x.tags ?? {}, x), Option.some)
      }))

  const readExecutionInfo: BackendCore["readExecutionInfo"] = (id) =>
    Effect.flatMap(readCore(id, false), (r) =>
      Option.match(r, {
        onNone: () => Effect.succeed(Option.none()),
        onSome: (x) => Effect.map(D.executionInfo(id, x.core), Option.some)
      }))

  const readExecutionState: BackendCore["readExecutionState"] = (id) =>
    Effect.gen(function*() {
      if (Ids.executionPartition(id) >= N) return Option.none()
      const v = yield* client.run("HGET public_state", (c) => c.hget(keys.core(Ids.executionPartition(id), id), "public_state"))
      if (v === null) return Option.none()
      const decoded = Schema.decodeUnknownEither(M.PublicState)(v)
      return Either.isRight(decoded) ?
        Option.some(decoded.right) :
        yield* invalidInput(`invalid public_state '${v}': not a known public state`)
    })

  const resolveExecutionFlowId: BackendCore["resolveExecutionFlowId"] = (id) =>
    Effect.gen(function*() {
      if (Ids.executionPartition(id) >= N) return Option.none()
      const v = yield* client.run("HGET flow_id", (c) => c.hget(keys.core(Ids.executionPartition(id), id), "flow_id"))
      if (v === null || v === "") return Option.none()
      return Option.some(
        yield* D.strict("resolve_execution_flow_id: exec_core", { flow_id: v }, (r) => r.decode("flow_id", Ids.FlowId, v))
      )
    })

  const getExecutionResult: BackendCore["getExecutionResult"] = (id) =>
    Effect.gen(function*() {
      const partition = Ids.executionPartition(id)
      if (partition >= N) return Option.none()
      const state = yield* client.run("HGET public_state", (c) => c.hget(keys.core(partition, id), "public_state"))
      if (state !== "completed") return Option.none()
      const result = yield* client.run("GET result", (c) => c.getBuffer(keys.ex(partition, id, "result")))
      return result === null || result.length === 0 ? Option.none() : Option.some(new Uint8Array(result))
    })

  type InputReply = readonly [ReadonlyArray<string | null>, Buffer | null] | undefined

  const inputOf = (id: Ids.ExecutionId, reply: InputReply): Fx<Option.Option<M.ExecutionInput>> =>
    Effect.gen(function*() {
      if (reply === undefined) return Option.none()
      const [[kind, lane, namespace, encoding, trace], payload] = reply
      if (lane === null || lane === undefined) return Option.none()
      return Option.some({
        executionId: id,
        executionKind: kind ?? "",
        laneId: yield* D.strict("get_execution_input: exec_core", { lane_id: lane }, (r) => r.decode("lane_id", Ids.LaneId, lane)),
        namespace: (namespace ?? "") as Ids.Namespace,
        payload: payload === null ? new Uint8Array(0) : new Uint8Array(payload),
        ...(encoding === null || encoding === undefined || encoding === "" ? {} : { payloadEncoding: encoding }),
        ...traceParentField(trace)
      } satisfies M.ExecutionInput)
    })

  /** Each execution's core fields and payload: all the reads in one pipeline flush, and one effect. */
  const getExecutionInputs: BackendCore["getExecutionInputs"] = (ids) =>
    Effect.gen(function*() {
      const replies = yield* client.run("HMGET core + GET payload", (c) =>
        Promise.all(ids.map((id): Promise<InputReply> => {
          const partition = Ids.executionPartition(id)
          return partition >= N ?
            Promise.resolve(undefined) :
            Promise.all([
              c.hmget(keys.core(partition, id), "execution_kind", "lane_id", "namespace", "payload_encoding", "trace"),
              c.getBuffer(keys.ex(partition, id, "payload"))
            ])
        })))
      return yield* Effect.forEach(ids, (id, i) => inputOf(id, replies[i]))
    })

  const getExecutionInput: BackendCore["getExecutionInput"] = (id) =>
    Effect.map(getExecutionInputs([id]), (inputs) => inputs[0]!)

  const describeFlow: BackendCore["describeFlow"] = (id) =>
    Effect.gen(function*() {
      const env = yield* call("describe_flow", flowOf(id), { flow_id: id }, [], true)
      if (env.status === "NONE") return Option.none()
      const f = yield* decodeJson("ff_describe_flow", FlowJson, env.fields[0])
      const groups = yield* decodeJson("ff_describe_flow", GroupRows, env.fields[1])
      return Option.some(yield* D.flowSnapshot(id, f.flow, f.tags, groups))
    })

  const listEdges: BackendCore["listEdges"] = ({ flowId, direction }) =>
    Effect.gen(function*() {
      const node = direction._tag === "Outgoing" ? direction.fromNode : direction.toNode
      if (Ids.executionPartition(node) !== Ids.flowPartition(flowId, settings.partitions)) return []
      const env = yield* call("list_edges", flowOf(flowId), {
        flow_id: flowId,
        direction: direction._tag === "Outgoing" ? "out" : "in",
        node
      }, [], true)
      const rows = yield* decodeJson("ff_list_edges", EdgeRows, env.fields[0])
      return yield* Effect.forEach(rows, (row) =>
        Effect.gen(function*() {
          const missing = row["missing"]
          if (missing !== undefined) return yield* corruption(`list_edges: edge ${missing}: record missing`)
          const edge = yield* D.edgeSnapshot("list_edges: edge", row, { flowId })
          const endpoint = direction._tag === "Outgoing" ? edge.upstreamExecutionId : edge.downstreamExecutionId
          if (endpoint !== node) {
            const field = direction._tag === "Outgoing" ? "upstream_execution_id" : "downstream_execution_id"
            return yield* corruption(`list_edges: edge: ${field}: ${endpoint} is not ${node}`)
          }
          return edge
        }))
    })

  const describeEdgeBy = (flowId: Ids.FlowId, edgeId: Ids.EdgeId) =>
    Effect.gen(function*() {
      const env = yield* call("describe_edge", flowOf(flowId), { flow_id: flowId, edge_id: edgeId }, [], true)
      if (env.status === "NONE") return Option.none<M.EdgeSnapshot>()
      const h = yield* decodeJson("ff_describe_edge", Str, env.fields[0])
      return Option.some(yield* D.edgeSnapshot("describe_edge: edge", h, { flowId, edgeId }))
    })

  const describeEdge: BackendCore["describeEdge"] = ({ flowId, edgeId }) => describeEdgeBy(flowId, edgeId)

  const listPendingWaitpoints: BackendCore["listPendingWaitpoints"] = (args) =>
    Effect.gen(function*() {
      yield* inRange(args.executionId)
      const env = yield* call("list_pending_waitpoints", ex(args.executionId), {
        execution_id: args.executionId,
        ...(args.after === undefined ? {} : { after: args.after }),
        limit: args.limit
      }, [], true)
      const rows = yield* decodeJson("ff_list_pending_waitpoints", PendingRows, env.fields[0], args.executionId)
      const entries = yield* Effect.forEach(rows, (w) =>
        Effect.gen(function*() {
          const names = yield* decodeJson("ff_list_pending_waitpoints", StrArray, w.names)
          const colon = w.token.indexOf(":")
          const int = (s: string) => (/^\d+$/.test(s) ? Number(s) : undefined)
          const createdAt = int(w.created_at)
          if (createdAt === undefined) return yield* parseError("ff_list_pending_waitpoints", "created_at", args.executionId)
          const activatedAt = int(w.activated_at)
          const expiresAt = int(w.expires_at)
          return {
            waitpointId: w.waitpoint_id,
            waitpointKey: w.waitpoint_key,
            state: w.state,
            requiredSignalNames: names,
            createdAt,
            ...(activatedAt === undefined ? {} : { activatedAt }),
            ...(expiresAt === undefined ? {} : { expiresAt }),
            executionId: args.executionId,
            tokenKid: colon < 0 ? "" : w.token.slice(0, colon),
            tokenFingerprint: colon < 0 ? "" : w.token.slice(colon + 1, colon + 17)
          } satisfies M.PendingWaitpointInfo
        }))
      const next = env.fields[1] ?? ""
      return {
        entries,
        ...(next === "" ? {} : { nextCursor: yield* decodeFields("ff_list_pending_waitpoints", Ids.WaitpointId, next) })
      }
    })

  // --- listings ------------------------------------------------------------------------------------
  const listFlows: BackendCore["listFlows"] = (partition, cursor, limit) =>
    Effect.gen(function*() {
      if (partition >= N) return { flows: [] }
      const env = yield* call("list_flows", p.flowTarget(partition), {
        ...(cursor === undefined ? {} : { cursor }),
        limit
      }, [], true)
      const rows = yield* decodeJson("ff_list_flows", FlowRows, env.fields[0])
      const page = rows.slice(0, limit)
      const flows = yield* Effect.forEach(page, ([id, createdAt, state, exists]) =>
        D.strict("list_flows: flow_index", { id, created_at: createdAt }, (r) => {
          const flowId = r.decode("id", Ids.FlowId, id)
          if (exists !== "1") r.bad(`flow ${id}`, "record missing")
          return { flowId, createdAt: r.int("created_at"), status: M.flowStatusOf(state) }
        }))
      const last = flows[flows.length - 1]
      return { flows, ...(rows.length > limit && last !== undefined ? { nextCursor: last.flowId } : {}) }
    })

  /** A page of the lane registry (a sorted set read by name, so a page costs its limit). */
  const listLanes: BackendCore["listLanes"] = (cursor, limit) =>
    Effect.gen(function*() {
      const names = yield* client.run("ZRANGEBYLEX lane-index", (c) =>
        c.zrangebylex(keys.laneIndex, cursor === undefined ? "-" : `(${cursor}`, "+", "LIMIT", 0, limit + 1))
      const page = yield* Effect.forEach(
        names.slice(0, limit),
        (l) => D.strict("list_lanes: registry", { lane: l }, (r) => r.decode("lane", Ids.LaneId, l))
      )
      const last = page[page.length - 1]
      return { lanes: page, ...(names.length > limit && last !== undefined ? { nextCursor: last } : {}) }
    })

  const listSuspended: BackendCore["listSuspended"] = (partition, cursor, limit) =>
    Effect.gen(function*() {
      if (partition >= N) return { entries: [] }
      // a cursor that left the index is looked for a bounded stretch per call (status SCAN)
      let scanFrom = "0"
      let env: Envelope
      do {
        env = yield* call("list_suspended", p.flowTarget(partition), {
          ...(cursor === undefined ? {} : { cursor, scan_from: Number(scanFrom) }),
          limit
        }, [], true)
        scanFrom = env.fields[0] ?? "0"
      } while (env.status === "SCAN")
      const rows = yield* decodeJson("ff_list_suspended", SuspendedRows, env.fields[0])
      const entries: Array<M.SuspendedExecutionEntry> = []
      for (const [id, score, reason] of rows.slice(0, limit)) {
        if (Ids.checkExecutionId(id) !== undefined) continue
        entries.push({ executionId: id as Ids.ExecutionId, suspendedAtMs: Number(score), reason })
      }
      const last = entries[entries.length - 1]
      return { entries, ...(rows.length > limit && last !== undefined ? { nextCursor: last.executionId } : {}) }
    })

  const listExecutions: BackendCore["listExecutions"] = (partition, cursor, limit) =>
    Effect.gen(function*() {
      if (partition >= N) return { executions: [] }
      const ids = yield* client.run("ZRANGEBYLEX all", (c) =>
        c.zrangebylex(keys.all(partition), cursor === undefined ? "-" : `(${cursor}`, "+", "LIMIT", 0, limit + 1))
      const executions = yield* Effect.forEach(ids.slice(0, limit), (id) =>
        D.strict("list_executions: all_executions", { id }, (r) => r.decode("id", Ids.ExecutionId, id)))
      const last = executions[executions.length - 1]
      return { executions, ...(ids.length > limit && last !== undefined ? { nextCursor: last } : {}) }
    })

  // --- producer, flows, operator control ----------------------------------------------------------
  /** The JSON arguments of one create (ff_create, and one item of ff_create_many). */
  const createArgs = (a: CreateExecutionCore) => {
    const policy = a.policy
    return {
      execution_id: a.executionId,
      namespace: a.namespace,
      lane_id: a.laneId,
      execution_kind: a.executionKind,
      priority: a.priority,
      creator_identity: a.creatorIdentity,
      payload_encoding: a.payloadEncoding ?? "",
      ...(a.delayUntil === undefined ? {} : { delay_until: a.delayUntil }),
      ...(a.executionDeadlineAt === undefined ? {} : { deadline_at: a.executionDeadlineAt }),
      ...(policy?.timeoutPolicy?.executionDeadlineMs === undefined ?
        {} :
        { deadline_ms: policy.timeoutPolicy.executionDeadlineMs }),
      ...(policy?.timeoutPolicy?.attemptTimeoutMs === undefined ?
        {} :
        { attempt_timeout_ms: policy.timeoutPolicy.attemptTimeoutMs }),
      ...(policy?.maxSignalsPerExecution === undefined ? {} : { max_signals: policy.maxSignalsPerExecution }),
      ...(policy?.streamPolicy?.retentionMaxlen === undefined ?
        {} :
        { stream_maxlen: policy.streamPolicy.retentionMaxlen }),
      ...(policy?.streamPolicy?.retentionTtlMs === undefined ?
        {} :
        { retention_ms: policy.streamPolicy.retentionTtlMs }),
      ...(a.idempotencyKey === undefined || a.idempotencyKey === "" ?
        {} :
        { idempotency_key: a.idempotencyKey, dedup_ttl_ms: policy?.dedupWindowMs ?? 86_400_000 }),
      tags: a.tags,
      required_capabilities: a.requiredCapabilities.join(","),
      ...(a.traceContext === undefined ? {} : { trace: a.traceContext })
    }
  }

  const createExecution: BackendCore["createExecution"] = (a: CreateExecutionCore) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("create", ex(a.executionId), createArgs(a), [a.inputPayload, a.policyJson])
      // a Duplicate writes nothing, the lane registry included
      if (env.status === "DUPLICATE") {
        const [executionId] = yield* decodeFields("ff_create", T_Exec, env.fields)
        return { _tag: "Duplicate", executionId } satisfies M.CreateExecutionResult
      }
      const [executionId, publicState] = yield* decodeFields(
        "ff_create",
        T_Created,
        env.fields
      )
      yield* p.registerLane(a.laneId)
      return { _tag: "Created", executionId, publicState } satisfies M.CreateExecutionResult
    })

  /** The results of one create_many / create_across reply, at the items' places in `results`. */
  const createdFrom = (
    name: string,
    env: Envelope,
    items: ReadonlyArray<number>,
    results: Array<M.CreateExecutionResult>
  ): Fx<void> =>
    Effect.gen(function*() {
      if (env.fields.length !== 3 * items.length) {
        return yield* parseError(name, `${env.fields.length} reply fields for ${items.length} items`)
      }
      for (let k = 0; k < items.length; k++) {
        const status = env.fields[3 * k]!
        const decoded: Either.Either<M.CreateExecutionResult, ParseResult.ParseError> = status === "DUPLICATE" ?
          Either.map(decodeExec([env.fields[3 * k + 1]]), ([executionId]) => ({ _tag: "Duplicate" as const, executionId })) :
          Either.map(
            decodeCreated([env.fields[3 * k + 1], env.fields[3 * k + 2]]),
            ([executionId, publicState]) => ({ _tag: "Created" as const, executionId, publicState })
          )
        if (Either.isLeft(decoded)) {
          return yield* parseError(name, ParseResult.TreeFormatter.formatErrorSync(decoded.left))
        }
        results[items[k]!] = decoded.right
      }
    })

  const blobsOf = (list: ReadonlyArray<CreateExecutionCore>, items: ReadonlyArray<number>) => {
    const blobs: Array<Uint8Array | string> = []
    for (const i of items) blobs.push(list[i]!.inputPayload, list[i]!.policyJson)
    return blobs
  }

  /**
   * The items of `order` (indexes into `list`) cut into runs of at most CREATE_CHUNK items,
   * CREATE_CHUNK_TAGS tags and CREATE_CHUNK_BYTES of inline blobs and tags (a run holds one item at least).
   */
  const weighed = (list: ReadonlyArray<CreateExecutionCore>, order: ReadonlyArray<number>): Array<Array<number>> => {
    const chunks: Array<Array<number>> = []
    let chunk: Array<number> = []
    let tags = 0
    let bytes = 0
    for (const i of order) {
      const a = list[i]!
      const t = Object.keys(a.tags).length
      const b = (a.inputPayload.length < STAGE_BYTES ? a.inputPayload.length : 0) + a.policyJson.length + tagBytes(a.tags)
      if (chunk.length > 0 && (chunk.length >= CREATE_CHUNK || tags + t > CREATE_CHUNK_TAGS || bytes + b > CREATE_CHUNK_BYTES)) {
        chunks.push(chunk)
        chunk = []
        tags = 0
        bytes = 0
      }
      chunk.push(i)
      tags += t
      bytes += b
    }
    if (chunk.length > 0) chunks.push(chunk)
    return chunks
  }

  /**
   * A batch goes in chunks (`weighed`), each item created exactly as ff_create does (one after the
   * other, each atomically), all chunks at once: on a standalone server a chunk is a run of the
   * list over any partitions (ff_create_across); on a cluster, a run of one partition's items
   * (ff_create_many). Ids are range-checked before anything is sent.
   */
  const createChunks = (list: ReadonlyArray<CreateExecutionCore>, results: Array<M.CreateExecutionResult>): Fx<void> => {
    if (!client.isCluster) {
      const chunks = weighed(list, Array.from({ length: list.length }, (_, i) => i))
      return Effect.forEach(chunks, (items) =>
        Effect.flatMap(
          call("create_across", { base: keys.lanes }, {
            prefix: settings.prefix,
            partitions: N,
            items: items.map((i) => ({ ...createArgs(list[i]!), partition: Ids.executionPartition(list[i]!.executionId) }))
          }, blobsOf(list, items)),
          (env) => createdFrom("ff_create_across", env, items, results)
        ), { concurrency: "unbounded", discard: true })
    }
    const byPartition = new Map<number, Array<number>>()
    for (let i = 0; i < list.length; i++) {
      const partition = Ids.executionPartition(list[i]!.executionId)
      const group = byPartition.get(partition)
      if (group === undefined) byPartition.set(partition, [i])
      else group.push(i)
    }
    const chunks: Array<{ readonly partition: number; readonly items: ReadonlyArray<number> }> = []
    for (const [partition, items] of byPartition) {
      for (const chunk of weighed(list, items)) chunks.push({ partition, items: chunk })
    }
    return Effect.forEach(chunks, ({ items, partition }) =>
      Effect.flatMap(
        call("create_many", p.flowTarget(partition), { items: items.map((i) => createArgs(list[i]!)) }, blobsOf(list, items)),
        (env) => createdFrom("ff_create_many", env, items, results)
      ), { concurrency: "unbounded", discard: true })
  }

  const createExecutions: BackendCore["createExecutions"] = (list) =>
    Effect.gen(function*() {
      for (const a of list) yield* inRange(a.executionId)
      const results = new Array<M.CreateExecutionResult>(list.length)
      yield* createChunks(list, results)
      // only the lanes of created executions: a Duplicate writes nothing
      const created = new Set<string>()
      for (let i = 0; i < list.length; i++) if (results[i]!._tag === "Created") created.add(list[i]!.laneId)
      for (const lane of created) yield* p.registerLane(lane)
      return results
    })

  const createFlow: BackendCore["createFlow"] = (a) =>
    Effect.map(
      call("create_flow", flowOf(a.flowId), {
        flow_id: a.flowId,
        flow_kind: a.flowKind,
        namespace: a.namespace,
        sealed: a.sealed
      }),
      (env): M.CreateFlowResult =>
        env.status === "ALREADY" ? { _tag: "AlreadySatisfied", flowId: a.flowId } : { _tag: "Created", flowId: a.flowId }
    )

  const createFlowGraph: BackendCore["createFlowGraph"] = (g) =>
    Effect.gen(function*() {
      const flowId = g.flow.flowId
      const blobs: Array<Uint8Array | string> = []
      for (const m of g.members) blobs.push(m.inputPayload, m.policyJson)
      const env = yield* call("create_flow_graph", flowOf(flowId), {
        flow: { flow_id: flowId, flow_kind: g.flow.flowKind, namespace: g.flow.namespace, sealed: g.flow.sealed },
        members: g.members.map(createArgs),
        joins: g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinArgs(policy)
        })),
        edges: g.edges.map(edgeArgs)
      }, blobs)
      if (env.status === "ALREADY") return { _tag: "AlreadySatisfied", flowId } satisfies M.CreateFlowGraphResult
      for (const lane of new Set(g.members.map((m) => m.laneId))) yield* p.registerLane(lane)
      const [graphRevision] = yield* decodeFields("ff_create_flow_graph", T_Int, env.fields)
      return { _tag: "Created", flowId, graphRevision } satisfies M.CreateFlowGraphResult
    })

  const extendFlow: BackendCore["extendFlow"] = (g) =>
    Effect.gen(function*() {
      const blobs: Array<Uint8Array | string> = []
      for (const m of g.members) blobs.push(m.inputPayload, m.policyJson)
      const env = yield* call("extend_flow", flowOf(g.flowId), {
        flow_id: g.flowId,
        members: g.members.map(createArgs),
        joins: g.joins.map(({ downstreamExecutionId, policy }) => ({
          downstream: downstreamExecutionId,
          ...joinArgs(policy)
        })),
        edges: g.edges.map(edgeArgs)
      }, blobs)
      if (env.status === "ALREADY") return { _tag: "AlreadySatisfied", flowId: g.flowId } satisfies M.ExtendFlowResult
      for (const lane of new Set(g.members.map((m) => m.laneId))) yield* p.registerLane(lane)
      const [graphRevision, nodeCount] = yield* decodeFields("ff_extend_flow", T_Int2, env.fields)
      return { _tag: "Extended", flowId: g.flowId, graphRevision, nodeCount } satisfies M.ExtendFlowResult
    }).pipe(
      // the typed conflict carries the existing edge, read right after
      Effect.catchIf(
        (e): e is EngineError =>
          (e._tag === "Conflict" && e.kind === "DependencyAlreadyExists" && e.existing === undefined) ||
          (e._tag === "Transport" && e.scriptCode === "dependency_already_exists"),
        (e) =>
          Effect.gen(function*() {
            for (const x of g.edges) {
              const existing = yield* describeEdgeBy(g.flowId, x.edgeId)
              if (Option.isSome(existing)) {
                return yield* Effect.fail(new Conflict({ kind: "DependencyAlreadyExists", existing: existing.value }))
              }
            }
            return yield* Effect.fail(e)
          })
      )
    )

  const sealFlow: BackendCore["sealFlow"] = (a) =>
    Effect.gen(function*() {
      const env = yield* call("seal_flow", flowOf(a.flowId), { flow_id: a.flowId })
      const [publicFlowState] = yield* decodeFields("ff_seal_flow", T_Str, env.fields)
      return {
        _tag: env.status === "ALREADY" ? "AlreadySealed" : "Sealed",
        flowId: a.flowId,
        publicFlowState
      } satisfies M.SealFlowResult
    })

  const addExecutionToFlow: BackendCore["addExecutionToFlow"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("add_to_flow", flowOf(a.flowId), { flow_id: a.flowId, execution_id: a.executionId })
      const [, count] = yield* decodeFields("ff_add_to_flow", T_Added, env.fields)
      return env.status === "ALREADY" ?
        { _tag: "AlreadyMember", executionId: a.executionId, nodeCount: count } satisfies M.AddExecutionToFlowResult :
        { _tag: "Added", executionId: a.executionId, newNodeCount: count } satisfies M.AddExecutionToFlowResult
    })

  const stageDependencyEdge: BackendCore["stageDependencyEdge"] = (a) =>
    Effect.gen(function*() {
      const env = yield* call("stage_edge", flowOf(a.flowId), {
        flow_id: a.flowId,
        ...edgeArgs(a),
        expected_graph_revision: a.expectedGraphRevision,
        ...(a.now === undefined ? {} : { created_at: a.now })
      })
      const [edgeId, newGraphRevision] = yield* decodeFields(
        "ff_stage_edge",
        T_Staged,
        env.fields
      )
      return { _tag: "Staged", edgeId, newGraphRevision } satisfies M.StageDependencyEdgeResult
    }).pipe(
      // the typed conflict carries the existing edge, read right after
      Effect.catchIf(
        (e): e is EngineError =>
          (e._tag === "Conflict" && e.kind === "DependencyAlreadyExists") ||
          (e._tag === "Transport" && e.scriptCode === "dependency_already_exists"),
        (e) =>
          Effect.flatMap(describeEdgeBy(a.flowId, a.edgeId), (existing) =>
            Effect.fail(
              Option.isSome(existing) ?
                new Conflict({ kind: "DependencyAlreadyExists", existing: existing.value }) :
                e
            ))
      )
    )

  const applyDependencyToChild: BackendCore["applyDependencyToChild"] = (a) =>
    Effect.gen(function*() {
      // the boundary has checked that both endpoints live on the flow's partition
      const env = yield* call("apply_dependency", flowOf(a.flowId), { flow_id: a.flowId, ...edgeArgs(a) })
      if (env.status === "ALREADY") return { _tag: "AlreadyApplied" } satisfies M.ApplyDependencyToChildResult
      const [unsatisfiedCount] = yield* decodeFields("ff_apply_dependency", T_Int, env.fields)
      return { _tag: "Applied", unsatisfiedCount } satisfies M.ApplyDependencyToChildResult
    })

  const setEdgeGroupPolicy: BackendCore["setEdgeGroupPolicy"] = (a) =>
    Effect.gen(function*() {
      // the boundary has checked that the downstream lives on the flow's partition
      const env = yield* call("set_edge_group_policy", flowOf(a.flowId), {
        flow_id: a.flowId,
        downstream: a.downstreamExecutionId,
        ...joinArgs(a.policy)
      })
      return env.status === "ALREADY" ?
        { _tag: "AlreadySet" } satisfies M.SetEdgeGroupPolicyResult :
        { _tag: "Set" } satisfies M.SetEdgeGroupPolicyResult
    })

  const cancelExecution: BackendCore["cancelExecution"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      yield* call("cancel", ex(a.executionId), {
        execution_id: a.executionId,
        reason: a.reason,
        source: a.source,
        mode: "operator",
        ...(a.leaseId === undefined ? {} : { lease_id: a.leaseId }),
        ...(a.leaseEpoch === undefined ? {} : { lease_epoch: a.leaseEpoch })
      })
      return { _tag: "Cancelled", executionId: a.executionId, publicState: "cancelled" } satisfies M.CancelExecutionResult
    })

  const changePriority: BackendCore["changePriority"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      yield* call("change_priority", ex(a.executionId), {
        execution_id: a.executionId,
        priority: Math.min(9000, Math.max(0, Math.trunc(a.newPriority)))
      })
      return { _tag: "Changed", executionId: a.executionId } satisfies M.ChangePriorityResult
    })

  const replayExecution: BackendCore["replayExecution"] = (id) =>
    Effect.gen(function*() {
      yield* inRange(id)
      const env = yield* call("replay", ex(id), { execution_id: id })
      const [publicState] = yield* decodeFields("ff_replay", T_State, env.fields)
      return { _tag: "Replayed", publicState } satisfies M.ReplayExecutionResult
    })

  const revokeLease: BackendCore["revokeLease"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("revoke", ex(a.executionId), {
        execution_id: a.executionId,
        reason: a.reason,
        ...(a.expectedLeaseId === undefined ? {} : { expected_lease_id: a.expectedLeaseId })
      })
      if (env.status === "ALREADY") {
        const [reason] = yield* decodeFields("ff_revoke", T_Str, env.fields)
        return { _tag: "AlreadySatisfied", reason } satisfies M.RevokeLeaseResult
      }
      const [leaseId, leaseEpoch] = yield* decodeFields("ff_revoke", T_Str2, env.fields)
      return { _tag: "Revoked", leaseId, leaseEpoch } satisfies M.RevokeLeaseResult
    })

  // --- flow cancellation ----------------------------------------------------------------------------
  const cancelFlow: BackendCore["cancelFlow"] = ({ flowId, policy, reason }) =>
    Effect.gen(function*() {
      const env = yield* call("cancel_flow", flowOf(flowId), {
        flow_id: flowId,
        policy: M.cancelFlowPolicyWire(policy),
        reason,
        mode: "trait",
        inline_limit: settings.cancelInlineLimit,
        grace_ms: 0
      })
      const [cancellationPolicy, members] = yield* decodeFields(
        "ff_cancel_flow",
        T_Cancel,
        env.fields
      )
      return { _tag: "Cancelled", cancellationPolicy, memberExecutionIds: members } satisfies M.CancelFlowResult
    })

  const cancelFlowHeader: BackendCore["cancelFlowHeader"] = (a) =>
    Effect.gen(function*() {
      const env = yield* call("cancel_flow", flowOf(a.flowId), {
        flow_id: a.flowId,
        policy: M.cancelFlowPolicyWire(a.cancellationPolicy),
        reason: a.reason,
        mode: "header",
        grace_ms: 30_000
      })
      if (env.status === "ALREADY") {
        const [stored, storedReason, members] = yield* decodeFields(
          "ff_cancel_flow",
          T_CancelAlready,
          env.fields
        )
        return {
          _tag: "AlreadyTerminal",
          ...(stored === "" ? {} : { storedCancellationPolicy: stored }),
          ...(storedReason === "" ? {} : { storedCancelReason: storedReason }),
          memberExecutionIds: members
        } satisfies M.CancelFlowHeader
      }
      const [cancellationPolicy, members] = yield* decodeFields(
        "ff_cancel_flow",
        T_Cancel,
        env.fields
      )
      return { _tag: "Cancelled", cancellationPolicy, memberExecutionIds: members } satisfies M.CancelFlowHeader
    })

  const ackCancelMember: BackendCore["ackCancelMember"] = (a) =>
    Effect.asVoid(call("ack_cancel_member", flowOf(a.flowId), { flow_id: a.flowId, execution_id: a.executionId }))

  // --- budgets and quotas ---------------------------------------------------------------------------
  const usageResult = (env: Envelope): Fx<M.ReportUsageResult> =>
    Effect.gen(function*() {
      switch (env.status) {
        case "OK":
          return { _tag: "Ok" } satisfies M.ReportUsageResult
        case "ALREADY_APPLIED":
          return { _tag: "AlreadyApplied" } satisfies M.ReportUsageResult
        case "SOFT_BREACH": {
          const [dimension, currentUsage, softLimit] = yield* decodeFields(
            "ff_report_usage",
            T_Breach,
            env.fields
          )
          return { _tag: "SoftBreach", dimension, currentUsage, softLimit } satisfies M.ReportUsageResult
        }
        case "HARD_BREACH": {
          const [dimension, currentUsage, hardLimit] = yield* decodeFields(
            "ff_report_usage",
            T_Breach,
            env.fields
          )
          return { _tag: "HardBreach", dimension, currentUsage, hardLimit } satisfies M.ReportUsageResult
        }
        default:
          return yield* parseError("ff_report_usage", `unknown status ${env.status}`)
      }
    })

  const report = (budgetId: Ids.BudgetId, pairs: ReadonlyArray<readonly [string, number]>, dedupKey: string | undefined) =>
    Effect.flatMap(
      call("report_usage", budgetOf(budgetId), {
        budget_id: budgetId,
        dimensions: pairs.map((x) => x[0]),
        deltas: pairs.map((x) => x[1]),
        ...(dedupKey === undefined || dedupKey === "" ? {} : { dedup_key: dedupKey })
      }),
      usageResult
    )

  const reportUsage: BackendCore["reportUsage"] = (_h, budgetId, dims) =>
    report(budgetId, sortedByKey(dims.custom), dims.dedupKey)

  const reportUsageAdmin: BackendCore["reportUsageAdmin"] = (a) =>
    report(a.budgetId, a.dimensions.map((d, i) => [d, a.deltas[i] ?? 0] as const), a.dedupKey)

  const createBudget: BackendCore["createBudget"] = (a) =>
    Effect.map(
      call("create_budget", budgetOf(a.budgetId), {
        budget_id: a.budgetId,
        scope_type: a.scopeType,
        scope_id: a.scopeId,
        enforcement_mode: a.enforcementMode,
        on_hard_limit: a.onHardLimit,
        on_soft_limit: a.onSoftLimit,
        reset_interval_ms: a.resetIntervalMs,
        dimensions: a.dimensions,
        hard: a.hardLimits,
        soft: a.softLimits
      }),
      (env): M.CreateBudgetResult =>
        env.status === "ALREADY" ? { _tag: "AlreadySatisfied", budgetId: a.budgetId } : { _tag: "Created", budgetId: a.budgetId }
    )

  const resetBudget: BackendCore["resetBudget"] = (id) =>
    Effect.gen(function*() {
      const env = yield* call("reset_budget", budgetOf(id), { budget_id: id })
      const [nextResetAt] = yield* decodeFields("ff_reset_budget", T_Int, env.fields)
      return { _tag: "Reset", nextResetAt } satisfies M.ResetBudgetResult
    })

  const getBudgetStatus: BackendCore["getBudgetStatus"] = (id) =>
    Effect.gen(function*() {
      const env = yield* call("budget_status", budgetOf(id), { budget_id: id }, [], true)
      const b = yield* decodeBudget(env.fields[0])
      const num = (s: string | undefined) => (s !== undefined && /^\d+$/.test(s) ? Number(s) : 0)
      // dimensions are the caller's names: records without a prototype keep every one (records.ts)
      const hardLimits: Record<string, number> = recordOf([])
      const softLimits: Record<string, number> = recordOf([])
      for (const [k, v] of Object.entries(b.limits)) {
        if (k.startsWith("hard:")) hardLimits[k.slice(5)] = num(v)
        else if (k.startsWith("soft:")) softLimits[k.slice(5)] = num(v)
      }
      const usage: Record<string, number> = recordOf([])
      for (const [k, v] of Object.entries(b.usage)) if (k !== "_init" && k !== "breached_at") usage[k] = num(v)
      const opt = (k: string) => (b.def[k] === undefined || b.def[k] === "" ? undefined : b.def[k])
      const lastBreachAt = opt("last_breach_at")
      const lastBreachDim = opt("last_breach_dim")
      const nextResetAt = opt("next_reset_at")
      const createdAt = opt("created_at")
      return {
        budgetId: id,
        scopeType: b.def["scope_type"] ?? "",
        scopeId: b.def["scope_id"] ?? "",
        enforcementMode: b.def["enforcement_mode"] ?? "",
        usage,
        hardLimits,
        softLimits,
        breachCount: num(b.def["breach_count"]),
        softBreachCount: num(b.def["soft_breach_count"]),
        ...(lastBreachAt === undefined ? {} : { lastBreachAt }),
        ...(lastBreachDim === undefined ? {} : { lastBreachDim }),
        ...(nextResetAt === undefined ? {} : { nextResetAt }),
        ...(createdAt === undefined ? {} : { createdAt })
      } satisfies M.BudgetStatus
    })

  const createQuotaPolicy: BackendCore["createQuotaPolicy"] = (a) =>
    Effect.map(
      call("create_quota", quotaOf(a.quotaPolicyId), {
        quota_policy_id: a.quotaPolicyId,
        window_seconds: a.windowSeconds,
        max_requests_per_window: a.maxRequestsPerWindow,
        max_concurrent: a.maxConcurrent
      }),
      (env): M.CreateQuotaPolicyResult =>
        env.status === "ALREADY" ?
          { _tag: "AlreadySatisfied", quotaPolicyId: a.quotaPolicyId } :
          { _tag: "Created", quotaPolicyId: a.quotaPolicyId }
    )

  // --- streams ---------------------------------------------------------------------------------------
  const READ_PAGE = { page_frames: Limits.readPageFrames, page_bytes: Limits.readPageBytes }
  const cursorArg = (c: M.StreamCursor) => (c._tag === "Start" ? "-" : c._tag === "End" ? "+" : c.id)

  const framesFrom = (
    fn: string,
    fields: ReadonlyArray<string>,
    id: Ids.ExecutionId,
    visibility: M.TailVisibility,
    tail: boolean
  ) =>
    Effect.map(decodeFields(fn, Frames, fields, id), ([frames, closedAt, closedReason, next]): M.StreamFrames => ({
      frames: visibility === "exclude_best_effort" ? frames.filter((f) => f.fields["mode"] !== "best_effort") : frames,
      ...(/^\d+$/.test(closedAt) ? { closedAt: Number(closedAt) } : {}),
      ...(closedReason === "" ? {} : { closedReason }),
      ...(next === "" || tail ? {} : { nextFrom: next })
    }))

  const readStream: BackendCore["readStream"] = (a) =>
    streamOps.guard(Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("read_stream", ex(a.executionId), {
        execution_id: a.executionId,
        attempt_index: a.attemptIndex,
        from: cursorArg(a.from),
        to: cursorArg(a.to),
        count: a.countLimit,
        ...READ_PAGE
      }, [], true)
      return yield* framesFrom("ff_read_stream", env.fields, a.executionId, "all", false)
    }))

  const tailStream: BackendCore["tailStream"] = (a) =>
    streamOps.guard(Effect.gen(function*() {
      yield* inRange(a.executionId)
      const after = a.after._tag === "At" ? a.after.id : "0-0"
      if (a.blockMs > 0) {
        const partition = Ids.executionPartition(a.executionId)
        const stream = keys.stream(partition, a.executionId, a.attemptIndex)
        // a blocking read gets its own connection so it never stalls the shared one; it only waits
        // for a frame (one entry), the page is read below
        yield* Effect.scoped(Effect.flatMap(client.dedicated, (c) =>
          Effect.tryPromise({
            try: () => c.xread("COUNT", 1, "BLOCK", a.blockMs, "STREAMS", stream, after),
            catch: (e) => e
          }).pipe(Effect.ignore, Effect.onInterrupt(() => client.discard(c)))))
      }
      const env = yield* call("read_stream", ex(a.executionId), {
        execution_id: a.executionId,
        attempt_index: a.attemptIndex,
        after,
        count: a.countLimit,
        ...READ_PAGE
      }, [], true)
      return yield* framesFrom("ff_read_stream", env.fields, a.executionId, a.visibility, true)
    }))

  const readSummary: BackendCore["readSummary"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("read_summary", ex(a.executionId), {
        execution_id: a.executionId,
        attempt_index: a.attemptIndex
      }, [], true)
      if (env.status === "NONE") return Option.none()
      const [doc, version, , lastUpdated, firstApplied] = yield* decodeFields(
        "ff_read_summary",
        T_Summary,
        env.fields,
        a.executionId
      )
      return Option.some({
        documentJson: new TextEncoder().encode(doc),
        version,
        patchKind: "json-merge-patch",
        lastUpdatedMs: lastUpdated,
        firstAppliedMs: /^\d+$/.test(firstApplied) ? Number(firstApplied) : lastUpdated
      } satisfies M.SummaryDocument)
    })

  // --- HMAC keystore administration ---------------------------------------------------------------
  const partitions = Array.from({ length: N }, (_, i) => i)

  const rotateWaitpointHmacSecretAll: BackendCore["rotateWaitpointHmacSecretAll"] = (a) =>
    Effect.map(
      Effect.forEach(partitions, (partition) =>
        Effect.either(
          Effect.gen(function*() {
            const env = yield* call("hmac_rotate", p.flowTarget(partition), {
              kid: a.newKid,
              secret: a.newSecretHex,
              grace_ms: a.graceMs
            })
            if (env.status === "noop") return { _tag: "Noop", kid: env.fields[0] ?? a.newKid } satisfies M.RotateOutcome
            const [previous, newKid, gcCount] = yield* decodeFields(
              "ff_hmac_rotate",
              T_Rotated,
              env.fields
            )
            return {
              _tag: "Rotated",
              ...(previous === "" ? {} : { previousKid: previous }),
              newKid,
              gcCount
            } satisfies M.RotateOutcome
          })
        ).pipe(Effect.map((result) => ({ partition, result }))), { concurrency: settings.fanOut }),
      (entries): EngineBackend.RotateResult => ({ entries })
    )

  const seedWaitpointHmacSecret: BackendCore["seedWaitpointHmacSecret"] = (a) =>
    Effect.gen(function*() {
      const results = yield* Effect.forEach(
        partitions,
        (partition) => call("hmac_seed", p.flowTarget(partition), { kid: a.kid, secret: a.secretHex }),
        { concurrency: settings.fanOut }
      )
      const other = results.find((r) => r.status === "other_kid")
      if (other !== undefined) {
        return yield* invalidInput(
          `seed_waitpoint_hmac_secret: stored current_kid ${other.fields[0] ?? ""} differs from supplied kid ${a.kid}; use rotate_waitpoint_hmac_secret_all to change kid`
        )
      }
      if (results.some((r) => r.status === "installed" || r.status === "repaired")) {
        return { _tag: "Seeded", kid: a.kid } satisfies M.SeedOutcome
      }
      const mismatch = results.some((r) => r.status === "mismatch")
      return {
        _tag: "AlreadySeeded",
        kid: a.kid,
        sameSecret: !mismatch && results.some((r) => r.status === "match")
      } satisfies M.SeedOutcome
    })

  // --- admin ---------------------------------------------------------------------------------------
  const ping: BackendCore["ping"] = () => Effect.asVoid(client.run("PING", (c) => c.ping()))

  const prepare: BackendCore["prepare"] = () =>
    Effect.as(client.ensureLibrary("replace-if-different"), {
      _tag: "Applied",
      description: `FUNCTION LOAD (flowfabric lib v${library.version})`
    } satisfies M.PrepareOutcome)

  return {
    label: "valkey",
    partitions: settings.partitions,
    claim,
    subscribeWork: (args) =>
      hub.subscribe(args, {
        arm: Effect.map(nextDue(args.lanes), (dueAt) => ({ dueAt, claimAgain: false })),
        disarm: Effect.void,
        promoteDue: promoteDue(args.lanes)
      }),
    claimMany,
    completeMany,
    renew,
    progress,
    appendFrame,
    complete,
    fail,
    cancel,
    suspend,
    createWaitpoint,
    observeSignals,
    claimFromReclaim,
    delay,
    waitChildren,
    claimForWorker,
    describeExecution,
    describeFlow,
    listEdges,
    describeEdge,
    resolveExecutionFlowId,
    getExecutionResult,
    getExecutionInput,
    getExecutionInputs,
    listPendingWaitpoints,
    readExecutionInfo,
    readExecutionState,
    listFlows,
    listLanes,
    listSuspended,
    listExecutions,
    deliverSignal,
    claimResumedExecution,
    createExecution,
    createExecutions,
    createFlow,
    createFlowGraph,
    extendFlow,
    sealFlow,
    addExecutionToFlow,
    stageDependencyEdge,
    applyDependencyToChild,
    setEdgeGroupPolicy,
    cancelExecution,
    changePriority,
    replayExecution,
    revokeLease,
    cancelFlow,
    cancelFlowHeader,
    ackCancelMember,
    reportUsage,
    reportUsageAdmin,
    createBudget,
    resetBudget,
    getBudgetStatus,
    createQuotaPolicy,
    readStream,
    tailStream,
    readSummary,
    rotateWaitpointHmacSecretAll,
    seedWaitpointHmacSecret,
    ping,
    prepare,
    shutdownPrepare: streamOps.shutdown
  }
}

/** The `stream_ops` permit pool of read_stream / tail_stream (docs/design/streams-and-budgets.md#the-stream-read-pool). */
export const makeStreamOps = (max: number): Effect.Effect<StreamOps> =>
  Effect.gen(function*() {
    const semaphore = yield* Effect.makeSemaphore(max)
    let closed = false
    let inUse = 0
    const guard = <A>(effect: Fx<A>): Fx<A> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(new Unavailable({ op: "stream_ops" }))
        return semaphore.withPermitsIfAvailable(1)(
          Effect.acquireUseRelease(
            Effect.sync(() => {
              inUse++
            }),
            () => effect,
            () =>
              Effect.sync(() => {
                inUse--
              })
          )
        ).pipe(
          Effect.flatMap(Option.match({
            onNone: () =>
              Effect.fail(
                new ResourceExhausted({
                  pool: "stream_ops",
                  max,
                  retryAfterMs: Math.max(25, Math.floor((25 * max) / (max - inUse + 1)))
                })
              ),
            onSome: Effect.succeed
          }))
        )
      })
    const shutdown = (grace: Duration.Duration): Fx<void> =>
      Effect.gen(function*() {
        closed = true
        const start = yield* Effect.clockWith((c) => c.currentTimeMillis)
        while (inUse > 0) {
          const elapsed = (yield* Effect.clockWith((c) => c.currentTimeMillis)) - start
          if (elapsed >= Duration.toMillis(grace)) {
            return yield* new Timeout({ op: "shutdown_prepare", elapsed: Duration.millis(elapsed) })
          }
          yield* Effect.sleep(Duration.millis(25))
        }
      })
    return { guard, shutdown }
  })
