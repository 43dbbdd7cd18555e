/** Reads and listings: what an execution, a flow, an edge or a waitpoint looks like now; pages of ids. */
import { Either, Option } from "effect"
import { notFound } from "../../EngineError.js"
import { executionPartition } from "../../Ids.js"
import type * as Ids from "../../Ids.js"
import * as M from "../../Model.js"
import { traceParentField } from "../traceContext.js"
import { flowState } from "./flows.js"
import { err, ok, type R } from "./helpers.js"
import type { EdgeGroup, Exec, Waitpoint } from "./state.js"
import type { Store } from "./store.js"

export const describeExecution = (
  store: Store,
  _now: number,
  id: Ids.ExecutionId
): R<Option.Option<M.ExecutionSnapshot>> => {
  const e = store.executions.get(id)
  if (e === undefined) return ok(Option.none())
  return ok(Option.some({
    executionId: e.id,
    ...(e.flowId === undefined ? {} : { flowId: e.flowId }),
    laneId: e.laneId,
    namespace: e.namespace,
    publicState: e.publicState,
    blockingReason: e.blockingReason,
    ...(e.blockingDetail === "" ? {} : { blockingDetail: e.blockingDetail }),
    ...(e.currentAttemptId === undefined ? {} : {
      currentAttempt: { attemptId: e.currentAttemptId, attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex }
    }),
    ...(e.workerInstanceId === undefined || e.leaseExpiresAt === undefined ? {} : {
      currentLease: {
        leaseEpoch: e.leaseEpoch as Ids.LeaseEpoch,
        workerInstanceId: e.workerInstanceId,
        expiresAt: e.leaseExpiresAt,
        leaseId: e.leaseId!,
        attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex,
        ...(e.leaseLastRenewedAt === undefined ? {} : { lastHeartbeatAt: e.leaseLastRenewedAt })
      }
    }),
    ...(e.currentWaitpointId === undefined ? {} : { currentWaitpoint: e.currentWaitpointId }),
    createdAt: e.createdAt,
    ...(e.startedAt === undefined ? {} : { startedAt: e.startedAt }),
    ...(e.completedAt === undefined ? {} : { completedAt: e.completedAt }),
    lastMutationAt: e.lastMutationAt,
    totalAttemptCount: e.totalAttemptCount,
    tags: { ...e.tags },
    ...(e.progressUpdatedAt === undefined ? {} : {
      progress: {
        ...(e.progressPct === undefined ? {} : { percent: e.progressPct }),
        ...(e.progressMessage === undefined || e.progressMessage === "" ? {} : { message: e.progressMessage }),
        updatedAt: e.progressUpdatedAt
      }
    }),
    ...(e.lastFailure === undefined ? {} : { lastFailure: { ...e.lastFailure } }),
    ...(e.outcome === "cancelled" && e.cancellationReason !== undefined && e.cancellationReason !== "" ?
      { cancellationReason: e.cancellationReason } :
      {}),
    attemptHistory: (e.history ?? []).map((r) => ({ ...r }))
  }))
}

export const readExecutionInfo = (
  store: Store,
  _now: number,
  id: Ids.ExecutionId
): R<Option.Option<M.ExecutionInfo>> => {
  const e = store.executions.get(id)
  if (e === undefined) return ok(Option.none())
  return ok(Option.some({
    executionId: e.id,
    namespace: e.namespace,
    laneId: e.laneId,
    priority: e.priority,
    executionKind: e.kind,
    stateVector: {
      lifecyclePhase: e.phase,
      ownershipState: e.ownership,
      eligibilityState: e.eligibility,
      blockingReason: e.blockingReason,
      terminalOutcome: e.outcome,
      attemptState: e.attemptState,
      publicState: e.publicState
    },
    publicState: e.publicState,
    createdAt: String(e.createdAt),
    ...(e.startedAt === undefined ? {} : { startedAt: String(e.startedAt) }),
    ...(e.completedAt === undefined ? {} : { completedAt: String(e.completedAt) }),
    currentAttemptIndex: e.currentAttemptIndex,
    ...(e.flowId === undefined ? {} : { flowId: e.flowId }),
    blockingDetail: e.blockingDetail,
    ...(e.outcome === "cancelled" ?
      { cancellationReason: e.cancellationReason ?? "", cancelledBy: e.cancelledBy ?? "" } :
      {})
  }))
}

export const readExecutionState = (
  store: Store,
  _now: number,
  id: Ids.ExecutionId
): R<Option.Option<M.PublicState>> => {
  const e = store.executions.get(id)
  return ok(e === undefined ? Option.none() : Option.some(e.publicState))
}

export const getExecutionResult = (store: Store, _now: number, id: Ids.ExecutionId): R<Option.Option<Uint8Array>> => {
  const e = store.executions.get(id)
  return ok(
    e !== undefined && e.outcome === "success" && e.result !== undefined && e.result.length > 0 ?
      Option.some(e.result) :
      Option.none()
  )
}

export const getExecutionInput = (
  store: Store,
  _now: number,
  id: Ids.ExecutionId
): R<Option.Option<M.ExecutionInput>> => {
  const e = store.executions.get(id)
  return ok(e === undefined ? Option.none() : Option.some(inputOf(e)))
}

/** An execution's input, as `getExecutionInput` reads it. */
export const inputOf = (e: Exec): M.ExecutionInput => ({
  executionId: e.id,
  executionKind: e.kind,
  laneId: e.laneId,
  namespace: e.namespace,
  payload: e.payload,
  ...(e.payloadEncoding === undefined ? {} : { payloadEncoding: e.payloadEncoding }),
  ...traceParentField(e.traceContext)
})

export const getExecutionInputs = (
  store: Store,
  now: number,
  ids: ReadonlyArray<Ids.ExecutionId>
): R<ReadonlyArray<Option.Option<M.ExecutionInput>>> => {
  const inputs: Array<Option.Option<M.ExecutionInput>> = []
  for (const id of ids) {
    const input = getExecutionInput(store, now, id)
    if (Either.isLeft(input)) return Either.left(input.left)
    inputs.push(input.right)
  }
  return ok(inputs)
}

export const resolveExecutionFlowId = (
  store: Store,
  _now: number,
  id: Ids.ExecutionId
): R<Option.Option<Ids.FlowId>> => {
  return ok(Option.fromNullable(store.executions.get(id)?.flowId))
}

const groupSnapshot = (downstream: Ids.ExecutionId, g: EdgeGroup): M.EdgeGroupSnapshot => {
  return {
    downstreamExecutionId: downstream,
    policy: g.policy,
    totalDeps: g.n,
    satisfiedCount: g.succeeded,
    failedCount: g.failed,
    skippedCount: g.skipped,
    runningCount: Math.max(0, g.n - g.succeeded - g.failed - g.skipped),
    groupState: g.state
  }
}

/** The flow's public state alone (the wait of `cancelFlow`). */
export const readFlowState = (store: Store, _now: number, id: Ids.FlowId): R<Option.Option<string>> => {
  const f = store.flows.get(id)
  return ok(f === undefined ? Option.none() : Option.some(flowState(store, f)))
}

export const describeFlow = (store: Store, _now: number, id: Ids.FlowId): R<Option.Option<M.FlowSnapshot>> => {
  const f = store.flows.get(id)
  if (f === undefined) return ok(Option.none())
  const edgeGroups: Array<M.EdgeGroupSnapshot> = []
  for (const member of [...f.members].sort()) {
    const e = store.executions.get(member)
    if (e?.group !== undefined && e.group.n > 0) edgeGroups.push(groupSnapshot(member, e.group))
  }
  return ok(Option.some({
    flowId: f.id,
    flowKind: f.kind,
    namespace: f.namespace,
    publicFlowState: flowState(store, f),
    sealed: f.sealed,
    graphRevision: f.graphRevision,
    nodeCount: f.nodeCount,
    edgeCount: f.edgeCount,
    createdAt: f.createdAt,
    lastMutationAt: f.lastMutationAt,
    ...(f.cancelledAt === undefined ? {} : { cancelledAt: f.cancelledAt }),
    ...(f.cancelReason === undefined || f.cancelReason === "" ? {} : { cancelReason: f.cancelReason }),
    ...(f.cancellationPolicy === undefined ? {} : { cancellationPolicy: f.cancellationPolicy }),
    tags: { ...f.tags },
    edgeGroups
  }))
}

export const listEdges = (store: Store, _now: number, args: M.ListEdgesArgs): R<ReadonlyArray<M.EdgeSnapshot>> => {
  const f = store.flows.get(args.flowId)
  if (f === undefined) return ok([])
  const ids = args.direction._tag === "Outgoing" ?
    f.outgoing.get(args.direction.fromNode) :
    f.incoming.get(args.direction.toNode)
  return ok([...(ids ?? [])].map((id) => f.edges.get(id)!))
}

export const describeEdge = (
  store: Store,
  _now: number,
  args: M.DescribeEdgeArgs
): R<Option.Option<M.EdgeSnapshot>> => {
  return ok(Option.fromNullable(store.flows.get(args.flowId)?.edges.get(args.edgeId)))
}

export const listPendingWaitpoints = (
  store: Store,
  _now: number,
  args: M.ListPendingWaitpointsArgs & { readonly limit: number }
): R<M.ListPendingWaitpointsResult> => {
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  const ids = [...(e.waitpointIds ?? [])].sort().filter((id) => args.after === undefined || id > args.after)
  const page = ids.slice(0, args.limit)
  const entries: Array<M.PendingWaitpointInfo> = []
  for (const id of page) {
    const wp = store.waitpoints.get(id)
    if (wp === undefined || (wp.state !== "pending" && wp.state !== "active") || wp.token === "") continue
    const colon = wp.token.indexOf(":")
    const names = requiredNames(e, wp)
    entries.push({
      waitpointId: wp.id,
      waitpointKey: wp.key,
      state: wp.state,
      requiredSignalNames: names,
      createdAt: wp.createdAt,
      ...(wp.activatedAt === undefined ? {} : { activatedAt: wp.activatedAt }),
      ...(wp.expiresAt === undefined ? {} : { expiresAt: wp.expiresAt }),
      executionId: e.id,
      tokenKid: wp.token.slice(0, colon),
      tokenFingerprint: wp.token.slice(colon + 1, colon + 17)
    })
  }
  return ok({ entries, ...(ids.length > args.limit ? { nextCursor: page[page.length - 1]! } : {}) })
}

const requiredNames = (e: Exec, wp: Waitpoint): Array<string> => {
  const s = e.suspension
  if (s === undefined || s.closedAt !== undefined || wp.suspensionId !== s.id) return []
  const names: Array<string> = []
  const walk = (c: M.ResumeCondition) => {
    if (c._tag === "Single" && c.waitpointKey === wp.key && c.matcher._tag === "ByName" && c.matcher.name !== "") {
      names.push(c.matcher.name)
    }
    if (c._tag === "Composite") {
      if (c.body._tag === "AllOf") c.body.members.forEach(walk)
      else if (c.body.waitpoints.includes(wp.key) && c.body.matcher?._tag === "ByName") names.push(c.body.matcher.name)
    }
  }
  walk(s.condition)
  return names
}

const page = <T, C>(sorted: ReadonlyArray<T>, limit: number, cursorOf: (t: T) => C) => {
  const items = sorted.slice(0, limit)
  return { items, next: sorted.length > limit ? cursorOf(items[items.length - 1]!) : undefined }
}

export const listFlows = (
  store: Store,
  _now: number,
  partition: number,
  cursor: Ids.FlowId | undefined,
  limit: number
): R<M.ListFlowsPage> => {
  const all = [...store.flows.values()]
    .filter((f) => f.partition === partition && (cursor === undefined || f.id > cursor))
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  const { items, next } = page(all, limit, (f) => f.id)
  return ok({
    flows: items.map((f) => ({ flowId: f.id, createdAt: f.createdAt, status: M.flowStatusOf(flowState(store, f)) })),
    ...(next === undefined ? {} : { nextCursor: next })
  })
}

export const listLanes = (
  store: Store,
  _now: number,
  cursor: Ids.LaneId | undefined,
  limit: number
): R<M.ListLanesPage> => {
  const all = [...store.lanes].filter((l) => cursor === undefined || l > cursor).sort()
  const { items, next } = page(all, limit, (l) => l)
  return ok({ lanes: items, ...(next === undefined ? {} : { nextCursor: next }) })
}

export const listSuspended = (
  store: Store,
  _now: number,
  partition: number,
  cursor: Ids.ExecutionId | undefined,
  limit: number
): R<M.ListSuspendedPage> => {
  const all = [...store.executions.values()]
    .filter((e) => e.partition === partition && e.phase === "suspended")
    .map((e) => ({
      executionId: e.id,
      suspendedAtMs: e.suspension?.timeoutAt ?? M.NO_TIMEOUT_SCORE,
      reason: e.suspension?.reasonCode ?? ""
    }))
    .sort((a, b) =>
      a.suspendedAtMs - b.suspendedAtMs || (a.executionId < b.executionId ? -1 : a.executionId > b.executionId ? 1 : 0)
    )
  let start = 0
  if (cursor !== undefined) {
    const at = all.findIndex((x) => x.executionId === cursor)
    start = at >= 0 ? at + 1 : all.findIndex((x) => x.executionId > cursor)
    if (start < 0) start = all.length
  }
  const { items, next } = page(all.slice(start), limit, (x) => x.executionId)
  return ok({ entries: items, ...(next === undefined ? {} : { nextCursor: next }) })
}

export { countLaneExecutions, listLaneExecutions } from "./lanes.js"

export const listExecutions = (
  store: Store,
  _now: number,
  partition: number,
  cursor: Ids.ExecutionId | undefined,
  limit: number
): R<M.ListExecutionsPage> => {
  const all = [...store.executions.keys()]
    .filter((id) => executionPartition(id) === partition && (cursor === undefined || id > cursor))
    .sort()
  const { items, next } = page(all, limit, (id) => id)
  return ok({ executions: items, ...(next === undefined ? {} : { nextCursor: next }) })
}
