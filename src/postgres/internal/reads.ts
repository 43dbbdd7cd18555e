/**
 * Reads over Postgres: descriptions of an execution, a flow and its edges, an execution's input,
 * result, state and pending waitpoints, and the listings by partition (flows, suspended,
 * executions) and of lanes. Each is one read-only call, so one snapshot.
 */
import { Effect, Either, Option, Schema } from "effect"
import { invalidInput } from "../../EngineError.js"
import { FlowId } from "../../Ids.js"
import type { CoreArea } from "../../internal/boundary.js"
import * as M from "../../Model.js"
import { bool, decode, int, text, uuid } from "./client.js"
import { Base64, type CoreContext, nullable } from "./context.js"

const FlowRow = Schema.Struct({ flowId: FlowId, createdAt: Schema.Int, state: Schema.String })
const FlowPageRow = Schema.Struct({ flows: Schema.Array(FlowRow), nextCursor: Schema.optional(FlowId) })
const ExecutionInputRow = Schema.Struct({ ...M.ExecutionInput.fields, payload: Base64 })
const EdgeSnapshots = Schema.Array(M.EdgeSnapshot)

export const makeReads = (
  ctx: CoreContext
): CoreArea<"reads"> => {
  const { call, caller, callDecode, callOption } = ctx
  return {
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
      callDecode("list_executions", "list_executions", [int(partition), text(cursor), int(limit)], M.ListExecutionsPage)
  }
}
