/**
 * Reads over Postgres: descriptions of an execution, a flow and its edges, an execution's input,
 * result, state and pending waitpoints, and the listings by partition (flows, suspended,
 * executions) and of lanes. Each is one read-only call, so one snapshot.
 */
import { Effect, Either, Option, Schema } from "effect"
import { invalidInput } from "../../EngineError.js"
import { ExecutionId, FlowId } from "../../Ids.js"
import type { CoreArea, LanePosition } from "../../internal/boundary.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { bigint, bool, decode, int, text, textArray, uuid } from "./client.js"
import { Base64, type CoreContext, nullable } from "./context.js"

const FlowRow = Schema.Struct({ flowId: FlowId, createdAt: Schema.Int, state: Schema.String })
const FlowPageRow = Schema.Struct({ flows: Schema.Array(FlowRow), nextCursor: Schema.optional(FlowId) })
const ExecutionInputRow = Schema.Struct({ ...M.ExecutionInput.fields, payload: Base64 })
const EdgeSnapshots = Schema.Array(M.EdgeSnapshot)
const LaneRows = Schema.Struct({
  rows: Schema.Array(Schema.Tuple(ExecutionId, M.PublicState, Schema.String, Schema.Int)),
  stop: Schema.NullOr(Schema.Tuple(Schema.Int, ExecutionId))
})
const LaneCounts = Schema.Record({ key: M.PublicState, value: Schema.Int })
/** Positions before and after every entry: the start of a walk without a cursor. */
const LAST: LanePosition = { at: Number.MAX_SAFE_INTEGER, id: "" as ExecutionId }
const FIRST: LanePosition = { at: -1, id: "" as ExecutionId }

export const makeReads = (
  ctx: CoreContext
): CoreArea<"reads"> => {
  const { call, caller, callDecode, callOption } = ctx
  return {
    describeExecution: (id) => callOption("describe_execution", "describe_execution", [text(id)], M.ExecutionSnapshot),
    describeFlow: (id) => callOption("describe_flow", "describe_flow", [uuid(id)], M.FlowSnapshot),
    readFlowState: (id) => callOption("read_flow_state", "read_flow_state", [uuid(id)], Schema.String),

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

    /** A walk of the lane's index (ff_list_lane_executions); a filter widens it to the scan budget. */
    listLaneExecutions: (q) =>
      Effect.map(
        callDecode("list_lane_executions", "list_lane_executions", [
          text(q.laneId),
          textArray(q.states),
          text(q.kind),
          bool(q.newestFirst),
          bigint((q.after ?? (q.newestFirst ? LAST : FIRST)).at),
          text((q.after ?? (q.newestFirst ? LAST : FIRST)).id),
          int(q.limit),
          int(q.states === undefined && q.kind === undefined ? q.limit + 1 : Limits.laneScanItems)
        ], LaneRows),
        ({ rows, stop }) => {
          const entries = rows.slice(0, q.limit).map(([executionId, publicState, executionKind, createdAt]) => ({
            executionId,
            publicState,
            executionKind,
            createdAt: createdAt as M.LaneExecutionEntry["createdAt"]
          }))
          const tail = entries[entries.length - 1]
          const next: LanePosition | undefined = rows.length > q.limit ?
            { at: tail!.createdAt, id: tail!.executionId } :
            stop === null ?
            undefined :
            { at: stop[0], id: stop[1] }
          return { entries, next }
        }
      ),

    countLaneExecutions: (lane) =>
      Effect.map(callDecode("count_lane_executions", "count_lane_executions", [text(lane)], Schema.partial(LaneCounts)), (c) => {
        const out = {} as Record<M.PublicState, number>
        for (const s of M.PublicState.literals) out[s] = c[s] ?? 0
        return out
      })
  }
}
