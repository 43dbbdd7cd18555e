/**
 * The boundary of flows: creation, members, edges and joins (partition locality, acyclicity),
 * graphs, extension, sealing, and cancellation with its wait.
 */
import { Effect, Either, Option } from "effect"
import { cancelFlowWaitDeadline, pollFlowCancellation } from "../../CancelFlow.js"
import type { EngineBackend } from "../../EngineBackend.js"
import { conflict, invalidInput, notFound, validation, type Validation } from "../../EngineError.js"
import { type ExecutionId, executionPartition, FlowId as FlowIdSchema } from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { topologicalOrder } from "../graph.js"
import * as V from "../validation.js"
import { argObject, type Boundary, failWith, type Operations, validId } from "./context.js"
import type { CreateExecutionCore, Fx } from "./core.js"
import { createBytes, prepareCreate } from "./lifecycle.js"

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

/**
 * The flow operations. `cancelFlow` waits on the core's read of the flow's state.
 */
export const flowOperations = (b: Boundary): Operations<
  "createFlow" | "addExecutionToFlow" | "stageDependencyEdge" | "applyDependencyToChild" | "setEdgeGroupPolicy" |
  "createFlowGraph" | "extendFlow" | "sealFlow" | "cancelFlow" | "cancelFlowHeader" | "ackCancelMember"
> => {
  const { core, rules, flowPartitionOf, batchSized, batchSizeError, make } = b

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

  return {
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

    cancelFlow: (args) =>
      Effect.gen(function*() {
        const a = yield* make("cancel_flow", M.CancelFlowArgs, args)
        yield* failWith(V.checkBytes("cancel_flow", "reason", a.reason, "textBytes"))
        const result = yield* core.cancelFlow({ flowId: a.flowId, policy: a.policy, reason: a.reason })
        const deadline = cancelFlowWaitDeadline(a.wait)
        // the wait reads the flow's state alone, not its join groups (docs/design/flows.md#waiting-for-the-cancellation)
        if (Option.isSome(deadline)) yield* pollFlowCancellation(core.readFlowState, a.flowId, deadline.value)
        return result
      }),

    cancelFlowHeader: (args) =>
      Effect.gen(function*() {
        const a = yield* make("cancel_flow_header", M.CancelFlowHeaderArgs, args)
        yield* failWith(V.checkBytes("cancel_flow_header", "reason", a.reason, "textBytes"))
        return yield* core.cancelFlowHeader(a)
      }),

    ackCancelMember: (args) => Effect.flatMap(make("ack_cancel_member", M.AckCancelMemberArgs, args), core.ackCancelMember)
  }
}
