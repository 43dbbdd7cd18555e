/** The boundary of reads: snapshots, inputs and results, edges, pending waitpoints, listings. */
import { Effect, Either } from "effect"
import { invalidInput } from "../../EngineError.js"
import {
  checkExecutionId,
  ExecutionId as ExecutionIdSchema,
  FlowId as FlowIdSchema,
  LaneId as LaneIdSchema,
  parsePartitionKey,
  partitionKeyErrorMessage
} from "../../Ids.js"
import type { ExecutionId } from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import * as V from "../validation.js"
import { type Boundary, failWith, type Operations, validId } from "./context.js"
import type { Fx, LanePosition } from "./core.js"

const fpPartition = (op: string, key: string): Fx<number> => {
  const parsed = parsePartitionKey(key)
  if (Either.isLeft(parsed)) return Effect.fail(invalidInput(`${op}: partition: ${partitionKeyErrorMessage(parsed.left)}`))
  if (parsed.right.family !== "Flow") {
    return Effect.fail(invalidInput(`${op}: partition: expected a flow partition {fp:N}, got ${key}`))
  }
  return Effect.succeed(parsed.right.index)
}

/**
 * A lane cursor: the base64url text of `<created at>|<execution id>`, the position after which
 * the next page starts. Opaque to callers; any order may continue from it.
 */
export const encodeLaneCursor = (p: LanePosition): string => Buffer.from(`${p.at}|${p.id}`).toString("base64url")

/** The position of a lane cursor, or undefined when it is not one. */
export const decodeLaneCursor = (cursor: string): LanePosition | undefined => {
  if (cursor.length > 200 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return undefined
  const text = Buffer.from(cursor, "base64url").toString("utf8")
  const bar = text.indexOf("|")
  const at = text.slice(0, bar)
  const id = text.slice(bar + 1)
  if (bar < 1 || !/^\d{1,15}$/.test(at) || checkExecutionId(id) !== undefined) return undefined
  return { at: Number(at), id: id as ExecutionId }
}

/** The read operations. */
export const readOperations = (b: Boundary): Operations<
  "describeExecution" | "describeFlow" | "listEdges" | "describeEdge" | "resolveExecutionFlowId" |
  "getExecutionResult" | "getExecutionInput" | "getExecutionInputs" | "listPendingWaitpoints" |
  "readExecutionInfo" | "readExecutionState" | "listFlows" | "listLanes" | "listSuspended" | "listExecutions" |
  "listLaneExecutions" | "countLaneExecutions"
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
      }),

    listLaneExecutions: (args) =>
      Effect.gen(function*() {
        const op = "list_lane_executions"
        const a = yield* make(op, M.ListLaneExecutionsArgs, args)
        if (a.states !== undefined && a.states.length === 0) {
          return yield* invalidInput(`${op}: states: at least one state, or none for every state`)
        }
        yield* failWith(V.checkBytes(op, "executionKind", a.executionKind, "nameBytes"))
        const after = a.cursor === undefined ? undefined : decodeLaneCursor(a.cursor)
        if (a.cursor !== undefined && after === undefined) {
          return yield* invalidInput(`${op}: cursor: not a cursor of this listing`)
        }
        if (a.limit === 0) return { executions: [] }
        const states = a.states === undefined ? undefined : [...new Set(a.states)].sort()
        const page = yield* core.listLaneExecutions({
          laneId: a.laneId,
          states: states === undefined || states.length === M.PublicState.literals.length ? undefined : states,
          kind: a.executionKind,
          newestFirst: a.order !== "oldest",
          after,
          limit: Math.min(a.limit, Limits.listPageItems)
        })
        return {
          executions: page.entries,
          ...(page.next === undefined ? {} : { nextCursor: encodeLaneCursor(page.next) })
        }
      }),

    countLaneExecutions: (laneId) =>
      Effect.gen(function*() {
        const lane = yield* validId("count_lane_executions", "laneId", LaneIdSchema, laneId, rules)
        const byState = yield* core.countLaneExecutions(lane)
        let total = 0
        for (const s of M.PublicState.literals) total += byState[s]
        return { laneId: lane, total, byState }
      })
  }
}
