/**
 * Reads over Valkey: an execution's snapshot, info, state, flow, result and input; a flow, its
 * edges, pending waitpoints; and the listings (flows, lanes, suspended executions, executions).
 * Each is a read-only FCALL (one consistent snapshot) or plain reads of keys of one slot.
 */
import { Effect, Either, Option, Schema } from "effect"
import { corruption, invalidInput } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea } from "../../internal/boundary.js"
import { traceParentField } from "../../internal/traceContext.js"
import * as M from "../../Model.js"
import { type CoreContext, type Fx, S, Str, T_Str } from "./context.js"
import * as D from "./decode.js"
import { parseError } from "./errors.js"
import { CoreField, publicStateOfVector } from "./coreRecord.js"
import { makeLanes } from "./lanes.js"
import { decodeFields, decodeJson, type Envelope, LuaArray } from "./plumbing.js"

const ReadExecution = Schema.Struct({
  core: Str,
  tags: Schema.optional(Str),
  runs: Schema.optional(S),
  running: Schema.optional(S),
  fail: Schema.optional(S)
})

const GroupJson = Schema.extend(Str, Schema.Struct({ downstream: S }))

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

const EdgeRows = LuaArray(Str)
const FlowJson = Schema.Struct({ flow: Str, tags: Str })
const FlowRows = LuaArray(Schema.Tuple(S, S, S, S))
const SuspendedRows = LuaArray(Schema.Tuple(S, S, S))
const PendingRows = LuaArray(PendingJson)
const GroupRows = LuaArray(GroupJson)
const StrArray = LuaArray(S)

/** One edge's snapshot (describeEdge; extendFlow and stageDependencyEdge read the edge a conflict names). */
export const describeEdgeBy = (ctx: CoreContext, flowId: Ids.FlowId, edgeId: Ids.EdgeId) =>
  Effect.gen(function*() {
    const env = yield* ctx.call("describe_edge", ctx.flowOf(flowId), { flow_id: flowId, edge_id: edgeId }, [], true)
    if (env.status === "NONE") return Option.none<M.EdgeSnapshot>()
    const h = yield* decodeJson("ff_describe_edge", Str, env.fields[0])
    return Option.some(yield* D.edgeSnapshot("describe_edge: edge", h, { flowId, edgeId }))
  })

export const makeReads = (
  ctx: CoreContext
): CoreArea<"reads"> => {
  const { call, client, ex, flowOf, inRange, keys, N, settings } = ctx

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
      const sv = yield* client.run("HGET sv", (c) => c.hget(keys.core(Ids.executionPartition(id), id), CoreField.stateVector))
      if (sv === null) return Option.none()
      const v = publicStateOfVector(sv) ?? sv
      const decoded = Schema.decodeUnknownEither(M.PublicState)(v)
      return Either.isRight(decoded) ?
        Option.some(decoded.right) :
        yield* invalidInput(`invalid public_state '${v}': not a known public state`)
    })

  const resolveExecutionFlowId: BackendCore["resolveExecutionFlowId"] = (id) =>
    Effect.gen(function*() {
      if (Ids.executionPartition(id) >= N) return Option.none()
      const v = yield* client.run("HGET flow_id", (c) => c.hget(keys.core(Ids.executionPartition(id), id), CoreField.flowId))
      if (v === null || v === "") return Option.none()
      return Option.some(
        yield* D.strict("resolve_execution_flow_id: exec_core", { flow_id: v }, (r) => r.decode("flow_id", Ids.FlowId, v))
      )
    })

  const getExecutionResult: BackendCore["getExecutionResult"] = (id) =>
    Effect.gen(function*() {
      const partition = Ids.executionPartition(id)
      if (partition >= N) return Option.none()
      const [sv, small] = yield* client.run(
        "HMGET sv result",
        (c) => c.hmgetBuffer(keys.core(partition, id), CoreField.stateVector, CoreField.result)
      )
      if (sv === null || sv === undefined || publicStateOfVector(sv.toString("utf8")) !== "completed") {
        return Option.none()
      }
      // a small result is a field of the core, a larger one its own key (never both)
      if (small !== null && small !== undefined && small.length > 0) return Option.some(new Uint8Array(small))
      const result = yield* client.run("GET result", (c) => c.getBuffer(keys.ex(partition, id, "result")))
      return result === null || result.length === 0 ? Option.none() : Option.some(new Uint8Array(result))
    })

  type InputReply = readonly [ReadonlyArray<Buffer | null>, Buffer | null] | undefined

  const inputOf = (id: Ids.ExecutionId, reply: InputReply): Fx<Option.Option<M.ExecutionInput>> =>
    Effect.gen(function*() {
      if (reply === undefined) return Option.none()
      const [[kindB, laneB, namespaceB, encodingB, traceB, inline], stored] = reply
      const text = (b: Buffer | null | undefined) => (b === null || b === undefined ? null : b.toString("utf8"))
      const [kind, lane, namespace, encoding, trace] = [text(kindB), text(laneB), text(namespaceB), text(encodingB), text(traceB)]
      if (lane === null) return Option.none()
      // a small input is a field of the core, a larger one its own key (never both)
      const payload = inline ?? stored
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
              c.hmgetBuffer(
                keys.core(partition, id),
                CoreField.executionKind,
                CoreField.laneId,
                CoreField.namespace,
                CoreField.payloadEncoding,
                CoreField.trace,
                CoreField.payload
              ),
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

  const readFlowState: BackendCore["readFlowState"] = (id) =>
    Effect.gen(function*() {
      const env = yield* call("flow_state", flowOf(id), { flow_id: id }, [], true)
      if (env.status === "NONE") return Option.none()
      const [state] = yield* decodeFields("ff_flow_state", T_Str, env.fields)
      return Option.some(state)
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

  const describeEdge: BackendCore["describeEdge"] = ({ flowId, edgeId }) => describeEdgeBy(ctx, flowId, edgeId)

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
      const env = yield* call("list_flows", ctx.flowTarget(partition), {
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
        env = yield* call("list_suspended", ctx.flowTarget(partition), {
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
      // the partition's id index (docs/design/valkey.md#the-id-index): up to limit + 1 ids
      const ids = (yield* call("list_executions", ctx.flowTarget(partition), {
        ...(cursor === undefined ? {} : { cursor }),
        limit
      }, [], true)).fields
      const executions = yield* Effect.forEach(ids.slice(0, limit), (id) =>
        D.strict("list_executions: all_executions", { id }, (r) => r.decode("id", Ids.ExecutionId, id)))
      const last = executions[executions.length - 1]
      return { executions, ...(ids.length > limit && last !== undefined ? { nextCursor: last } : {}) }
    })

  return {
    describeExecution,
    readExecutionInfo,
    readExecutionState,
    resolveExecutionFlowId,
    getExecutionResult,
    getExecutionInput,
    getExecutionInputs,
    describeFlow,
    readFlowState,
    listEdges,
    describeEdge,
    listPendingWaitpoints,
    listFlows,
    listLanes,
    listSuspended,
    listExecutions,
    ...makeLanes(ctx)
  }
}
