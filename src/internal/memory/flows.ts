/**
 * Flows: their public state, the resolution of dependencies when a member ends
 * (docs/design/flows.md#resolution), building and growing a flow's graph, and cancelling a flow.
 */
import { Either } from "effect"
import {
  conflict,
  Conflict,
  contention,
  type EngineError,
  invalidInput,
  notFound,
  state as stateError,
  validation
} from "../../EngineError.js"
import { flowPartition } from "../../Ids.js"
import type * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { CreateExecutionCore } from "../boundary.js"
import { err, ok, type R, transition } from "./helpers.js"
import { overLimit } from "../validation.js"
import { emitFlow, joinedFlow } from "./events.js"
import { createExecution } from "./lifecycle.js"
import type { Dependency, EdgeGroup, Exec, Flow } from "./state.js"
import type { Store } from "./store.js"
import { cancelCore, finish, type FinishOptions } from "./terminal.js"

const BAD_OUTCOMES: ReadonlySet<M.TerminalOutcome> = new Set(["failed", "cancelled", "expired"])
const CASCADE_LIMIT = 10_000
const CYCLE_WALK_LIMIT = 1_000
/** A flow cancellation cancels at most this many members inline; the backlog pass does the rest. */
const INLINE_CANCEL_LIMIT = 1_000
const CANCEL_BACKLOG_GRACE_MS = 30_000

// -------------------------------------------------------------------------
// Public state
// -------------------------------------------------------------------------

/**
 * The public state of a flow (docs/guide.md, "Flows that grow while they run"): `cancelling` /
 * `cancelled` once cancelled; else `running` while a member is not terminal, `completed` /
 * `failed` once every member is (failed when one failed, was cancelled or expired), `open` while
 * it has no member (`completed` if it is sealed: nothing can ever run in it).
 */
export const flowState = (store: Store, f: Flow): string => {
  if (f.state !== "open") return f.state
  let failed = false
  for (const id of f.members) {
    const m = store.executions.get(id)
    if (m === undefined) continue
    if (m.phase !== "terminal") return "running"
    if (BAD_OUTCOMES.has(m.outcome)) failed = true
  }
  if (f.members.size === 0) return f.sealed ? "completed" : "open"
  return failed ? "failed" : "completed"
}

/** Cancelled, cancelling, or sealed with every member terminal: nothing about it can change. */
const flowFinal = (store: Store, f: Flow): boolean => {
  if (f.state !== "open") return true
  if (!f.sealed) return false
  const s = flowState(store, f)
  return s === "completed" || s === "failed"
}

/** Why the flow refuses a new member or edge, if it does. */
/** Flow `flowId` when it takes new members and edges; else why not (missing, finished, sealed). */
const openFlow = (store: Store, flowId: Ids.FlowId): R<Flow> => {
  const f = store.flows.get(flowId)
  if (f === undefined) return err(notFound("flow"))
  if (f.state !== "open") return err(stateError("FlowAlreadyTerminal"))
  if (f.sealed) return err(stateError("FlowSealed"))
  return ok(f)
}

// -------------------------------------------------------------------------
// Resolution
// -------------------------------------------------------------------------

/** Resolves the outgoing edges of `upstream` and cascades (docs/design/flows.md#resolution). */
export const resolveFrom = (
  store: Store,
  flow: Flow,
  upstream: Exec,
  outcome: M.TerminalOutcome,
  now: number
): void => {
  const queue: Array<[Exec, M.TerminalOutcome]> = [[upstream, outcome]]
  let steps = 0
  while (queue.length > 0 && steps < CASCADE_LIMIT) {
    const [up, out] = queue.shift()!
    steps++
    for (const edgeId of flow.outgoing.get(up.id) ?? []) {
      const edge = flow.edges.get(edgeId)!
      const child = store.executions.get(edge.downstreamExecutionId)
      if (child === undefined) continue
      const dep = child.deps?.get(edgeId)
      // the dependency applied for this edge with its own ends only (docs/design/flows.md#resolution)
      if (dep === undefined || dep.state !== "unsatisfied" || dep.upstream !== up.id) continue
      resolveEdge(store, flow, child, dep, edge, up, out, now, queue)
    }
  }
}

const resolveEdge = (
  store: Store,
  flow: Flow,
  child: Exec,
  dep: Dependency,
  edge: M.EdgeSnapshot | undefined,
  up: Exec,
  outcome: M.TerminalOutcome,
  now: number,
  queue: Array<[Exec, M.TerminalOutcome]>
): void => {
  const group = child.group!
  child.lastMutationAt = now
  if (outcome === "success") {
    dep.state = "satisfied"
    child.unsatisfiedCount--
    group.succeeded++
    // the reference given when the dependency was applied (the staged edge's when none was given)
    const dataPassingRef = dep.dataPassingRef !== undefined && dep.dataPassingRef !== "" ?
      dep.dataPassingRef :
      edge?.dataPassingRef
    if (dataPassingRef !== undefined && dataPassingRef !== "" && child.phase !== "terminal" && up.result !== undefined) {
      child.payload = up.result
    }
  } else {
    dep.state = "impossible"
    // an all_of join counts a skipped upstream as failed
    if (outcome === "skipped" && group.policy._tag !== "all_of") group.skipped++
    else group.failed++
  }
  if (group.state !== "pending") return
  const { n, succeeded } = group
  const lost = group.failed + group.skipped
  const k = group.policy._tag === "all_of" ? n : group.policy._tag === "any_of" ? 1 : group.policy.k
  if (succeeded >= k && (group.policy._tag !== "all_of" || child.unsatisfiedCount === 0)) {
    group.state = "satisfied"
    if (child.phase === "runnable" && child.eligibility === "blocked_by_dependencies") {
      transition(store, child, {
        phase: "runnable",
        ownership: "unowned",
        eligibility: "eligible_now",
        blockingReason: "waiting_for_worker",
        blockingDetail: "",
        attemptState: child.attemptState === "none" ? "pending_first_attempt" : child.attemptState
      }, now)
    }
    cancelSiblings(store, child, group, "sibling_quorum_satisfied", now, queue)
  } else if (lost > n - k) {
    group.state = "impossible"
    if (child.phase !== "terminal") {
      finishQueued(store, child, "skipped", now, {
        attempt: "ended_cancelled",
        streamReason: "dependency_impossible",
        failureReason: "dependency_impossible",
        publish: true
      }, queue)
    }
    cancelSiblings(store, child, group, "sibling_quorum_impossible", now, queue)
  }
}

/** `finish` without recursing into resolution: the caller's queue continues the cascade. */
const finishQueued = (
  store: Store,
  e: Exec,
  outcome: Exclude<M.TerminalOutcome, "none">,
  now: number,
  opts: FinishOptions,
  queue: Array<[Exec, M.TerminalOutcome]>
): void => {
  finish(store, e, outcome, now, { ...opts, publish: false })
  if (opts.publish) queue.push([e, outcome])
}

/**
 * `cancel_remaining`: the upstreams of `child` still running when its join fired are cancelled
 * by the engine, `cancelled_by` `operator_override` (docs/guide.md, "Joins").
 */
const cancelSiblings = (
  store: Store,
  child: Exec,
  group: EdgeGroup,
  reason: "sibling_quorum_satisfied" | "sibling_quorum_impossible",
  now: number,
  queue: Array<[Exec, M.TerminalOutcome]>
): void => {
  if (group.policy._tag === "all_of" || group.policy.onSatisfied !== "cancel_remaining") return
  for (const dep of child.deps?.values() ?? []) {
    if (dep.state !== "unsatisfied") continue
    const sibling = store.executions.get(dep.upstream)
    if (sibling === undefined || sibling.phase === "terminal") continue
    cancelCore(store, sibling, reason, "operator_override", now, false)
    queue.push([sibling, "cancelled"])
  }
}

/** Flow state after members changed: `cancelling` → `cancelled` once no owed member is left. */
/** Writes a `FlowStateChanged` event when the public state of `f` is not the one last reported. */
export const noteFlowState = (store: Store, f: Flow, now: number): void => {
  const s = flowState(store, f)
  if (s === f.eventState) return
  f.eventState = s
  emitFlow(store, { seq: 0, _tag: "FlowStateChanged", at: now, flowId: f.id, publicFlowState: s })
}

export const settleFlow = (store: Store, flow: Flow, now: number): void => {
  settleCancel(store, flow, now)
  noteFlowState(store, flow, now)
}

const settleCancel = (store: Store, flow: Flow, now: number): void => {
  if (flow.state !== "cancelling") return
  for (const id of flow.owed) {
    if (store.executions.get(id)?.phase === "terminal") flow.owed.delete(id)
  }
  if (flow.owed.size === 0) {
    flow.state = "cancelled"
    flow.lastMutationAt = now
    flow.backlogDueAt = undefined
    store.cancelBacklog.delete(flow.id)
  }
}

// -------------------------------------------------------------------------
// Building and growing the graph
// -------------------------------------------------------------------------

export const createFlow = (store: Store, now: number, args: M.CreateFlowArgs): R<M.CreateFlowResult> => {
  if (store.flows.has(args.flowId)) return ok({ _tag: "AlreadySatisfied", flowId: args.flowId })
  store.flows.set(args.flowId, {
    id: args.flowId,
    kind: args.flowKind,
    namespace: args.namespace,
    partition: flowPartition(args.flowId),
    state: "open",
    sealed: args.sealed,
    graphRevision: 0,
    nodeCount: 0,
    edgeCount: 0,
    createdAt: now,
    lastMutationAt: now,
    cancelledAt: undefined,
    cancelReason: undefined,
    cancellationPolicy: undefined,
    members: new Set(),
    edges: new Map(),
    outgoing: new Map(),
    incoming: new Map(),
    owed: new Set(),
    backlogDueAt: undefined,
    tags: {},
    eventState: args.sealed ? "completed" : "open"
  })
  return ok({ _tag: "Created", flowId: args.flowId })
}

/** The whole graph in this one step; the boundary validated its shape, so only the store can refuse it. */
export const createFlowGraph = (
  store: Store,
  now: number,
  g: {
    readonly flow: M.CreateFlowArgs
    readonly members: ReadonlyArray<CreateExecutionCore>
    readonly edges: ReadonlyArray<M.FlowGraphEdge>
    readonly joins: ReadonlyArray<M.FlowGraphJoin>
  }
): R<M.CreateFlowGraphResult> => {
  const flowId = g.flow.flowId
  if (store.flows.has(flowId)) return ok({ _tag: "AlreadySatisfied", flowId })
  const existing = g.members.find((m) => store.executions.has(m.executionId))
  if (existing !== undefined) {
    return err(invalidInput(`create_flow_graph: member ${existing.executionId} already exists`))
  }
  return Either.gen(function*() {
    // sealed last: the graph's own members and edges go in first
    yield* createFlow(store, now, { ...g.flow, sealed: false })
    for (const m of g.members) {
      yield* createExecution(store, now, m)
      yield* addExecutionToFlow(store, now, { flowId, executionId: m.executionId })
    }
    for (const j of g.joins) yield* setEdgeGroupPolicy(store, now, { flowId, ...j })
    for (const e of g.edges) {
      const expectedGraphRevision = store.flows.get(flowId)!.graphRevision
      yield* stageDependencyEdge(store, now, { flowId, ...e, expectedGraphRevision })
      yield* applyDependencyToChild(store, now, { flowId, ...e })
    }
    const f = store.flows.get(flowId)!
    f.sealed = g.flow.sealed
    return { _tag: "Created", flowId, graphRevision: f.graphRevision } as const
  })
}

/**
 * The per-flow budgets (docs/limits.md): `LimitExceeded` when adding `members` members and `edges`
 * edges would take the flow past `Limits.flowMembers` or `Limits.flowEdges`. A flow already past
 * one (grown before it existed) still reads, cancels and takes calls that add nothing.
 */
const flowOver = (op: string, f: Flow, members: number, edges: number): EngineError | undefined =>
  members > 0 && f.nodeCount + members > Limits.flowMembers ?
    overLimit(op, "flow members", "flowMembers", "entries") :
    edges > 0 && f.edgeCount + edges > Limits.flowEdges ?
    overLimit(op, "flow edges", "flowEdges", "entries") :
    undefined

export const addExecutionToFlow = (
  store: Store,
  now: number,
  args: M.AddExecutionToFlowArgs
): R<M.AddExecutionToFlowResult> => {
  const opened = openFlow(store, args.flowId)
  if (Either.isLeft(opened)) return err(opened.left)
  const f = opened.right
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (f.members.has(e.id)) {
    if (e.flowId !== undefined && e.flowId !== f.id) return err(conflict("ExecutionAlreadyInFlow"))
    e.flowId = f.id
    return ok({ _tag: "AlreadyMember", executionId: e.id, nodeCount: f.nodeCount })
  }
  if (e.flowId !== undefined) return err(conflict("ExecutionAlreadyInFlow"))
  const over = flowOver("add_execution_to_flow", f, 1, 0)
  if (over !== undefined) return err(over)
  f.members.add(e.id)
  e.flowId = f.id
  joinedFlow(store, e)
  e.lastMutationAt = now
  f.nodeCount += 1
  f.graphRevision += 1
  f.lastMutationAt = now
  noteFlowState(store, f, now)
  return ok({ _tag: "Added", executionId: e.id, newNodeCount: f.nodeCount })
}

export const stageDependencyEdge = (
  store: Store,
  now: number,
  args: M.StageDependencyEdgeArgs
): R<M.StageDependencyEdgeResult> => {
  const opened = openFlow(store, args.flowId)
  if (Either.isLeft(opened)) return err(opened.left)
  const f = opened.right
  if (f.graphRevision !== args.expectedGraphRevision) return err(contention("StaleGraphRevision"))
  const over = flowOver("stage_dependency_edge", f, 0, 1)
  if (over !== undefined) return err(over)
  if (!f.members.has(args.upstreamExecutionId) || !f.members.has(args.downstreamExecutionId)) {
    return err(stateError("ExecutionNotInFlow"))
  }
  // A cycle exists iff the upstream is reachable from the downstream.
  const seen = new Set<string>([args.downstreamExecutionId])
  const frontier: Array<Ids.ExecutionId> = [args.downstreamExecutionId]
  while (frontier.length > 0) {
    const node = frontier.shift()!
    if (node === args.upstreamExecutionId) return err(conflict("CycleDetected"))
    if (seen.size > CYCLE_WALK_LIMIT) return err(conflict("CycleDetected"))
    for (const edgeId of f.outgoing.get(node) ?? []) {
      const next = f.edges.get(edgeId)!.downstreamExecutionId
      if (!seen.has(next)) {
        seen.add(next)
        frontier.push(next)
      }
    }
  }
  const existing = f.edges.get(args.edgeId)
  if (existing !== undefined) return err(new Conflict({ kind: "DependencyAlreadyExists", existing }))
  const edge: M.EdgeSnapshot = {
    edgeId: args.edgeId,
    flowId: f.id,
    upstreamExecutionId: args.upstreamExecutionId,
    downstreamExecutionId: args.downstreamExecutionId,
    dependencyKind: args.dependencyKind,
    satisfactionCondition: "all_required",
    ...(args.dataPassingRef === undefined || args.dataPassingRef === "" ? {} : { dataPassingRef: args.dataPassingRef }),
    edgeState: "pending",
    createdAt: args.now ?? now,
    createdBy: "engine"
  }
  f.edges.set(edge.edgeId, edge)
  const add = (m: Map<Ids.ExecutionId, Set<Ids.EdgeId>>, k: Ids.ExecutionId) => {
    let s = m.get(k)
    if (s === undefined) m.set(k, s = new Set())
    s.add(edge.edgeId)
  }
  add(f.outgoing, edge.upstreamExecutionId)
  add(f.incoming, edge.downstreamExecutionId)
  f.graphRevision += 1
  f.edgeCount += 1
  f.lastMutationAt = args.now ?? now
  return ok({ _tag: "Staged", edgeId: edge.edgeId, newGraphRevision: f.graphRevision })
}

export const applyDependencyToChild = (
  store: Store,
  now: number,
  args: M.ApplyDependencyToChildArgs
): R<M.ApplyDependencyToChildResult> => {
  return Either.map(applyDependency(store, now, args), (dep) => {
    if (dep === undefined) return { _tag: "AlreadyApplied" } as const
    resolveLate(store, now, args.flowId, dep.child, dep.dep)
    return { _tag: "Applied", unsatisfiedCount: dep.child.unsatisfiedCount } as const
  })
}

const STAGED_ENDS = "apply_dependency_to_child: the edge id is staged with another upstream or downstream"

/**
 * Why `child` may not take a join group or a dependency of flow `flowId`: it belongs to another
 * flow, or to none (docs/design/flows.md#applying-an-edge).
 */
const notMemberOf = (child: Exec, flowId: Ids.FlowId): EngineError | undefined =>
  child.flowId === flowId ? undefined :
  child.flowId !== undefined ? conflict("ExecutionAlreadyInFlow") :
  stateError("ExecutionNotInFlow")

/**
 * The child's side of an edge: its dependency record and join group. A new dependency makes a
 * satisfied all_of group pending again unless the child is terminal; a child that has not
 * started is blocked while its group is pending. `undefined` when the dependency exists already.
 */
const applyDependency = (
  store: Store,
  now: number,
  args: M.ApplyDependencyToChildArgs
): R<{ readonly child: Exec; readonly dep: Dependency } | undefined> => {
  const child = store.executions.get(args.downstreamExecutionId)
  if (child === undefined) return err(notFound("execution"))
  const refused = notMemberOf(child, args.flowId)
  if (refused !== undefined) return err(refused)
  const f = store.flows.get(args.flowId)
  const staged = f?.edges.get(args.edgeId)
  if (
    staged !== undefined &&
    (staged.upstreamExecutionId !== args.upstreamExecutionId || staged.downstreamExecutionId !== child.id)
  ) {
    return err(validation("InvalidDependency", STAGED_ENDS))
  }
  if (child.deps?.has(args.edgeId) === true) return ok(undefined)
  if (staged === undefined && f !== undefined) {
    const over = flowOver("apply_dependency_to_child", f, 0, 1)
    if (over !== undefined) return err(over)
    f.edgeCount += 1
  }
  const dep: Dependency = {
    edgeId: args.edgeId,
    upstream: args.upstreamExecutionId,
    dataPassingRef: args.dataPassingRef,
    state: "unsatisfied"
  }
  if (child.deps === undefined) child.deps = new Map()
  child.deps.set(args.edgeId, dep)
  child.unsatisfiedCount += 1
  if (child.group === undefined) {
    child.group = { policy: { _tag: "all_of" }, n: 0, succeeded: 0, failed: 0, skipped: 0, state: "pending", createdAt: now }
  }
  const group = child.group
  group.n += 1
  if (group.policy._tag === "all_of" && group.state === "satisfied" && child.phase !== "terminal") {
    group.state = "pending"
  }
  if (child.phase === "runnable" && group.state === "pending") {
    transition(store, child, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: "blocked_by_dependencies",
      blockingReason: "waiting_for_children",
      blockingDetail: `${child.unsatisfiedCount} dep(s) unresolved incl ${args.edgeId}`,
      attemptState: child.attemptState
    }, now)
  }
  return ok({ child, dep })
}

/** A dependency whose upstream has already ended resolves now, with the upstream's outcome. */
export const resolveLate = (store: Store, now: number, flowId: Ids.FlowId, child: Exec, dep: Dependency): void => {
  const f = store.flows.get(flowId)
  const up = store.executions.get(dep.upstream)
  if (f === undefined || up === undefined || up.phase !== "terminal" || up.outcome === "none") return
  if (dep.state !== "unsatisfied") return
  const queue: Array<[Exec, M.TerminalOutcome]> = []
  resolveEdge(store, f, child, dep, f.edges.get(dep.edgeId), up, up.outcome, now, queue)
  for (const [x, o] of queue) resolveFrom(store, f, x, o, now)
  settleFlow(store, f, now)
}

export const sealFlow = (store: Store, now: number, args: M.SealFlowArgs): R<M.SealFlowResult> => {
  const f = store.flows.get(args.flowId)
  if (f === undefined) return err(notFound("flow"))
  if (f.state !== "open") return err(stateError("FlowAlreadyTerminal"))
  if (f.sealed) return ok({ _tag: "AlreadySealed", flowId: f.id, publicFlowState: flowState(store, f) })
  f.sealed = true
  f.lastMutationAt = now
  noteFlowState(store, f, now)
  return ok({ _tag: "Sealed", flowId: f.id, publicFlowState: flowState(store, f) })
}

/**
 * Whether `edges` would close a cycle with the flow's edges: the members reachable from the
 * edges' downstream ends (along both) hold a cycle, or there are more than `CYCLE_WALK_LIMIT` of
 * them (refused conservatively). A cycle through a new edge lies among those members.
 */
const closesCycle = (f: Flow, edges: ReadonlyArray<M.FlowGraphEdge>): boolean => {
  const added = new Map<Ids.ExecutionId, Array<Ids.ExecutionId>>()
  for (const e of edges) {
    const out = added.get(e.upstreamExecutionId)
    if (out === undefined) added.set(e.upstreamExecutionId, [e.downstreamExecutionId])
    else out.push(e.downstreamExecutionId)
  }
  const next = (node: Ids.ExecutionId): Array<Ids.ExecutionId> => [
    ...[...(f.outgoing.get(node) ?? [])].map((edgeId) => f.edges.get(edgeId)!.downstreamExecutionId),
    ...(added.get(node) ?? [])
  ]
  const reach = new Set<Ids.ExecutionId>()
  const queue: Array<Ids.ExecutionId> = []
  for (const e of edges) {
    if (!reach.has(e.downstreamExecutionId)) {
      reach.add(e.downstreamExecutionId)
      queue.push(e.downstreamExecutionId)
    }
  }
  for (let i = 0; i < queue.length; i++) {
    for (const n of next(queue[i]!)) {
      if (reach.has(n)) continue
      reach.add(n)
      if (reach.size > CYCLE_WALK_LIMIT) return true
      queue.push(n)
    }
  }
  // Kahn's algorithm over the reached members: a cycle leaves some never freed
  const indegree = new Map<Ids.ExecutionId, number>()
  for (const node of reach) for (const n of next(node)) indegree.set(n, (indegree.get(n) ?? 0) + 1)
  const free = [...reach].filter((node) => (indegree.get(node) ?? 0) === 0)
  let freed = 0
  while (free.length > 0) {
    const node = free.pop()!
    freed++
    for (const n of next(node)) {
      const d = indegree.get(n)! - 1
      indegree.set(n, d)
      if (d === 0) free.push(n)
    }
  }
  return freed < reach.size
}

/** The whole extension in this one step; the boundary validated its shape, so only the store can refuse it. */
export const extendFlow = (
  store: Store,
  now: number,
  g: {
    readonly flowId: Ids.FlowId
    readonly members: ReadonlyArray<CreateExecutionCore>
    readonly edges: ReadonlyArray<M.FlowGraphEdge>
    readonly joins: ReadonlyArray<M.FlowGraphJoin>
  }
): R<M.ExtendFlowResult> => {
  const flowId = g.flowId
  const opened = openFlow(store, flowId)
  if (Either.isLeft(opened)) return err(opened.left)
  const f = opened.right
  if (g.members.every((m) => f.members.has(m.executionId)) && g.edges.every((e) => f.edges.has(e.edgeId))) {
    return ok({ _tag: "AlreadySatisfied", flowId })
  }
  const over = flowOver("extend_flow", f, g.members.length, g.edges.length)
  if (over !== undefined) return err(over)
  const existing = g.members.find((m) => store.executions.has(m.executionId))
  if (existing !== undefined) return err(invalidInput(`extend_flow: member ${existing.executionId} already exists`))
  const isNew = new Set<string>(g.members.map((m) => m.executionId))
  const member = (id: Ids.ExecutionId) => f.members.has(id) || isNew.has(id)
  for (const e of g.edges) {
    if (!member(e.upstreamExecutionId) || !member(e.downstreamExecutionId)) return err(stateError("ExecutionNotInFlow"))
    const stored = f.edges.get(e.edgeId)
    if (stored !== undefined) return err(new Conflict({ kind: "DependencyAlreadyExists", existing: stored }))
    if (store.executions.get(e.downstreamExecutionId)?.deps?.has(e.edgeId) === true) {
      return err(validation("InvalidDependency", `extend_flow: edge ${e.edgeId} was applied to its downstream already`))
    }
  }
  if (closesCycle(f, g.edges)) return err(conflict("CycleDetected"))
  return Either.gen(function*() {
    for (const m of g.members) {
      yield* createExecution(store, now, m)
      yield* addExecutionToFlow(store, now, { flowId, executionId: m.executionId })
    }
    for (const j of g.joins) yield* setEdgeGroupPolicy(store, now, { flowId, ...j })
    // every edge is applied before any resolves, so a join counts all its new edges
    const applied: Array<{ readonly child: Exec; readonly dep: Dependency }> = []
    for (const e of g.edges) {
      yield* stageDependencyEdge(store, now, { flowId, ...e, expectedGraphRevision: f.graphRevision })
      const dep = yield* applyDependency(store, now, { flowId, ...e })
      if (dep !== undefined) applied.push(dep)
    }
    for (const { child, dep } of applied) resolveLate(store, now, flowId, child, dep)
    return { _tag: "Extended", flowId, graphRevision: f.graphRevision, nodeCount: f.nodeCount } as const
  })
}

export const setEdgeGroupPolicy = (
  store: Store,
  now: number,
  args: M.SetEdgeGroupPolicyArgs
): R<M.SetEdgeGroupPolicyResult> => {
  const f = store.flows.get(args.flowId)
  if (f === undefined) return err(notFound("flow"))
  const child = store.executions.get(args.downstreamExecutionId)
  if (child === undefined) return err(notFound("execution"))
  const refused = notMemberOf(child, f.id)
  if (refused !== undefined) return err(refused)
  const existing = child.group
  if (existing !== undefined && existing.n > 0) {
    return err(invalidInput("edge_group_policy_already_fixed: dependencies already staged"))
  }
  if (existing !== undefined && existing.policy._tag === args.policy._tag) return ok({ _tag: "AlreadySet" })
  const group: EdgeGroup = { policy: args.policy, n: 0, succeeded: 0, failed: 0, skipped: 0, state: "pending", createdAt: now }
  child.group = group
  return ok({ _tag: "Set" })
}

// -------------------------------------------------------------------------
// Cancellation
// -------------------------------------------------------------------------

const owedMembers = (store: Store, f: Flow, policy: M.CancelFlowPolicy): Array<Ids.ExecutionId> => {
  if (policy === "FlowOnly") return []
  return [...f.members].sort().filter((id) => {
    const e = store.executions.get(id)
    if (e === undefined || e.phase === "terminal") return false
    return policy === "CancelAll" || e.phase === "runnable"
  })
}

const flipFlow = (
  store: Store,
  f: Flow,
  policy: M.CancelFlowPolicy,
  reason: string,
  now: number,
  graceMs: number
): void => {
  f.cancelledAt = now
  f.cancelReason = reason
  f.cancellationPolicy = M.cancelFlowPolicyWire(policy)
  f.lastMutationAt = now
  for (const id of owedMembers(store, f, policy)) f.owed.add(id)
  if (f.owed.size === 0) {
    f.state = "cancelled"
  } else {
    f.state = "cancelling"
    f.backlogDueAt = now + graceMs
    store.cancelBacklog.add(f.id)
  }
  noteFlowState(store, f, now)
}

/** Cancels up to `max` owed members of `f`; returns how many it cancelled. */
export const drainFlow = (store: Store, f: Flow, now: number, max: number): number => {
  let done = 0
  for (const id of [...f.owed].sort()) {
    if (done >= max) break
    const e = store.executions.get(id)
    if (e !== undefined && e.phase !== "terminal") {
      cancelCore(store, e, f.cancelReason === undefined || f.cancelReason === "" ? "flow_cancelled" : f.cancelReason, "flow_cascade", now, false)
      done++
    }
    f.owed.delete(id)
  }
  settleFlow(store, f, now)
  return done
}

export const cancelFlow = (
  store: Store,
  now: number,
  args: { flowId: Ids.FlowId; policy: M.CancelFlowPolicy; reason: string }
): R<M.CancelFlowResult> => {
  const f = store.flows.get(args.flowId)
  if (f === undefined) return err(notFound("flow"))
  if (flowFinal(store, f)) return err(stateError("FlowAlreadyTerminal"))
  const members = [...f.members].sort()
  flipFlow(store, f, args.policy, args.reason, now, 0)
  if (f.state === "cancelling") drainFlow(store, f, now, INLINE_CANCEL_LIMIT)
  return ok({ _tag: "Cancelled", cancellationPolicy: M.cancelFlowPolicyWire(args.policy), memberExecutionIds: members })
}

export const cancelFlowHeader = (store: Store, now: number, args: M.CancelFlowHeaderArgs): R<M.CancelFlowHeader> => {
  const f = store.flows.get(args.flowId)
  if (f === undefined) return err(notFound("flow"))
  const members = [...f.members].sort()
  if (flowFinal(store, f)) {
    return ok({
      _tag: "AlreadyTerminal",
      ...(f.cancellationPolicy === undefined ? {} : { storedCancellationPolicy: f.cancellationPolicy }),
      ...(f.cancelReason === undefined || f.cancelReason === "" ? {} : { storedCancelReason: f.cancelReason }),
      memberExecutionIds: members
    })
  }
  flipFlow(store, f, args.cancellationPolicy, args.reason, now, CANCEL_BACKLOG_GRACE_MS)
  return ok({
    _tag: "Cancelled",
    cancellationPolicy: M.cancelFlowPolicyWire(args.cancellationPolicy),
    memberExecutionIds: members
  })
}

export const ackCancelMember = (store: Store, now: number, args: M.AckCancelMemberArgs): R<void> => {
  const f = store.flows.get(args.flowId)
  if (f === undefined) return ok(undefined)
  f.owed.delete(args.executionId)
  if (f.owed.size === 0 && f.state === "cancelling") settleFlow(store, f, now)
  return ok(undefined)
}
