/** The boundary of reads: snapshots, inputs and results, edges, pending waitpoints, listings. */
import { Effect, Either } from "effect"
import { invalidInput } from "../../EngineError.js"
import {
  ExecutionId as ExecutionIdSchema,
  FlowId as FlowIdSchema,
  parsePartitionKey,
  partitionKeyErrorMessage
} from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { type Boundary, type Operations, validId } from "./context.js"
import type { Fx } from "./core.js"

const fpPartition = (op: string, key: string): Fx<number> => {
  const parsed = parsePartitionKey(key)
  if (Either.isLeft(parsed)) return Effect.fail(invalidInput(`${op}: partition: ${partitionKeyErrorMessage(parsed.left)}`))
  if (parsed.right.family !== "Flow") {
    return Effect.fail(invalidInput(`${op}: partition: expected a flow partition {fp:N}, got ${key}`))
  }
  return Effect.succeed(parsed.right.index)
}

/** The read operations. */
export const readOperations = (b: Boundary): Operations<
  "describeExecution" | "describeFlow" | "listEdges" | "describeEdge" | "resolveExecutionFlowId" |
  "getExecutionResult" | "getExecutionInput" | "getExecutionInputs" | "listPendingWaitpoints" |
  "readExecutionInfo" | "readExecutionState" | "listFlows" | "listLanes" | "listSuspended" | "listExecutions"
> => {
  const { core, rules, batchSized, batchSizeError, make, byExecutionId } = b

  return {
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
      })
  }
}
