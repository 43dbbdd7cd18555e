/**
 * Flows, edges and join policies (model.md §9–§10, operations.md §8.2–§8.6,
 * README P4): membership, staging and applying edges with their errors,
 * all-of / any-of / quorum joins with cancel_remaining and let_run, skip
 * propagation inside the upstream's terminal operation, replay of skipped
 * members and the dependency-reconciliation safety net.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, FlowId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  addEdge,
  addMember,
  advance,
  backend,
  buildFlow,
  bytes,
  claimNone,
  claimSome,
  create,
  createFlow,
  edgeGroup,
  executionIdOnPartition,
  expectStates,
  failsWith,
  flowIdOnPartition,
  info,
  flowSnapshot,
  newLane,
  NS,
  now,
  pass,
  payloadOf,
  publicState,
  settleFlows,
  snapshot,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"

const permanent = { reason: { message: "nope" }, classification: "Permanent" } as const

export const flows = (t: Tester) =>
  describe("flows", () => {
    /** Claims `id` (on its own lane) and completes it. */
    const completeMember = (m: { readonly executionId: ExecutionId; readonly lane: M.ClaimArgs["lane"] }) =>
      Effect.gen(function*() {
        const b = yield* backend
        const h = yield* claimSome(m.lane)
        expect(payloadOf(h).executionId).toBe(m.executionId)
        yield* b.complete(h)
      })

    /** Claims `id` and fails it terminally. */
    const failMember = (m: { readonly executionId: ExecutionId; readonly lane: M.ClaimArgs["lane"] }) =>
      Effect.gen(function*() {
        const b = yield* backend
        const h = yield* claimSome(m.lane)
        expect(yield* b.fail(h, permanent)).toEqual({ _tag: "TerminalFailed" })
      })

    describe("createFlowGraph", () => {
      /** A flow id and `n` members on their own lanes, ready for createFlowGraph. */
      const graph = (n: number) =>
        Effect.gen(function*() {
          const flowId = yield* Ids.newFlowId
          const members: Array<M.CreateExecutionArgsInput & { readonly executionId: ExecutionId; readonly laneId: M.ClaimArgs["lane"] }> = []
          for (let i = 0; i < n; i++) {
            members.push({
              executionId: yield* Ids.executionIdForFlow(flowId),
              namespace: NS,
              laneId: yield* newLane("fg"),
              executionKind: "step",
              inputPayload: bytes(`input ${i}`)
            })
          }
          const edge = (from: number, to: number) =>
            Effect.map(Ids.newEdgeId, (edgeId) => ({
              edgeId,
              upstreamExecutionId: members[from]!.executionId,
              downstreamExecutionId: members[to]!.executionId
            }))
          return { flowId, members, edge, flow: { flowId, namespace: NS, flowKind: "pipeline" } }
        })

      const nothingWritten = (g: { readonly flowId: M.CreateFlowArgs["flowId"]; readonly members: ReadonlyArray<{ readonly executionId: ExecutionId }> }) =>
        Effect.gen(function*() {
          const b = yield* backend
          expect(Option.isNone(yield* b.describeFlow(g.flowId))).toBe(true)
          for (const m of g.members) expect(Option.isNone(yield* b.describeExecution(m.executionId))).toBe(true)
        })

      t.test("builds the flow with its members, joins and edges in one call", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const g = yield* graph(4)
          const [a, bb, c, d] = g.members.map((m) => ({ executionId: m.executionId, lane: m.laneId }))
          const edges = [yield* g.edge(0, 2), yield* g.edge(1, 2), yield* g.edge(2, 3)]
          const result = yield* b.createFlowGraph({
            flow: g.flow,
            members: g.members,
            edges,
            joins: [{ downstreamExecutionId: c!.executionId, policy: { _tag: "any_of", onSatisfied: "let_run" } }]
          })
          const flow = yield* flowSnapshot(g.flowId)
          expect(result).toEqual({ _tag: "Created", flowId: g.flowId, graphRevision: flow.graphRevision })
          expect(flow.nodeCount).toBe(4)
          expect(flow.edgeCount).toBe(3)
          expect((yield* edgeGroup(g.flowId, c!.executionId)).policy._tag).toBe("any_of")
          yield* expectStates([
            [a!.executionId, "waiting"],
            [bb!.executionId, "waiting"],
            [c!.executionId, "waiting_children"],
            [d!.executionId, "waiting_children"]
          ])
          expect(Option.map(yield* b.getExecutionInput(a!.executionId), (i) => text(i.payload))).toEqual(
            Option.some("input 0")
          )
          yield* completeMember(a!)
          expect(yield* publicState(c!.executionId)).toBe("waiting")
          yield* completeMember(c!)
          expect(yield* publicState(d!.executionId)).toBe("waiting")
        }))

      t.test("leaves exactly what the single-step calls leave", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const shape = [[0, 2], [1, 2], [2, 3]] as const
          const joinOf = (ids: ReadonlyArray<ExecutionId>) => ({
            downstreamExecutionId: ids[2]!,
            policy: { _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" } as const
          })
          // one flow in one call …
          const one = yield* graph(4)
          const oneEdges = yield* Effect.forEach(shape, ([u, d]) => one.edge(u, d))
          yield* b.createFlowGraph({
            flow: one.flow,
            members: one.members,
            edges: oneEdges,
            joins: [joinOf(one.members.map((m) => m.executionId))]
          })
          // … and the same shape call by call
          const steps = yield* graph(4)
          const stepIds = steps.members.map((m) => m.executionId)
          const stepEdges = yield* Effect.forEach(shape, ([u, d]) => steps.edge(u, d))
          yield* b.createFlow(steps.flow)
          yield* b.createExecutions(steps.members)
          for (const executionId of stepIds) yield* b.addExecutionToFlow({ flowId: steps.flowId, executionId })
          yield* b.setEdgeGroupPolicy({ flowId: steps.flowId, ...joinOf(stepIds) })
          for (const e of stepEdges) {
            const revision = (yield* flowSnapshot(steps.flowId)).graphRevision
            yield* b.stageDependencyEdge({ flowId: steps.flowId, ...e, expectedGraphRevision: revision })
            yield* b.applyDependencyToChild({ flowId: steps.flowId, ...e })
          }
          // compared with ids replaced by their positions and timestamps left out
          const view = (g: typeof one, edges: ReadonlyArray<{ readonly edgeId: string }>) =>
            Effect.gen(function*() {
              const ids: ReadonlyArray<string> = g.members.map((m) => m.executionId)
              const name = (text: string) => {
                let out = text
                ids.forEach((id, i) => (out = out.split(id).join(`member${i}`)))
                edges.forEach((e, i) => (out = out.split(e.edgeId).join(`edge${i}`)))
                return out.split(g.flowId).join("flow")
              }
              const flow = yield* flowSnapshot(g.flowId)
              const members = yield* Effect.forEach(ids, (id) =>
                Effect.gen(function*() {
                  const s = yield* snapshot(id as ExecutionId)
                  return {
                    vector: yield* vector(id as ExecutionId),
                    blockingDetail: name(s.blockingDetail ?? ""),
                    flowId: name(s.flowId ?? "")
                  }
                }))
              const edgeViews = yield* Effect.forEach(edges, (e) =>
                Effect.map(b.describeEdge({ flowId: g.flowId, edgeId: e.edgeId as never }), (x) =>
                  Option.map(x, ({ createdAt: _, ...rest }) => JSON.parse(name(JSON.stringify(rest))))))
              return {
                flow: {
                  graphRevision: flow.graphRevision,
                  nodeCount: flow.nodeCount,
                  edgeCount: flow.edgeCount,
                  publicFlowState: flow.publicFlowState,
                  edgeGroups: JSON.parse(name(JSON.stringify(
                    [...flow.edgeGroups].sort((x, y) => (name(x.downstreamExecutionId) < name(y.downstreamExecutionId) ? -1 : 1))
                  )))
                },
                members,
                edges: edgeViews
              }
            })
          expect(yield* view(one, oneEdges)).toEqual(yield* view(steps, stepEdges))
        }))

      t.test("a replay is AlreadySatisfied and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const g = yield* graph(2)
          const edges = [yield* g.edge(0, 1)]
          expect((yield* b.createFlowGraph({ flow: g.flow, members: g.members, edges }))._tag).toBe("Created")
          const before = yield* flowSnapshot(g.flowId)
          const again = yield* b.createFlowGraph({ flow: g.flow, members: g.members, edges })
          expect(again).toEqual({ _tag: "AlreadySatisfied", flowId: g.flowId })
          const after = yield* flowSnapshot(g.flowId)
          expect([after.graphRevision, after.nodeCount, after.edgeCount]).toEqual([
            before.graphRevision,
            before.nodeCount,
            before.edgeCount
          ])
        }))

      t.test("a graph that does not validate fails and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const g = yield* graph(3)
          const forward = yield* g.edge(0, 1)
          const back = yield* g.edge(1, 0)
          const e = yield* failsWith(
            b.createFlowGraph({ flow: g.flow, members: g.members, edges: [forward, back] }),
            "Conflict",
            "CycleDetected"
          )
          expect(e._tag).toBe("Conflict")
          yield* failsWith(
            b.createFlowGraph({ flow: g.flow, members: g.members, edges: [{ ...forward, downstreamExecutionId: forward.upstreamExecutionId }] }),
            "Conflict",
            "SelfReferencingEdge"
          )
          const outsider = yield* executionIdOnPartition((Ids.flowPartition(g.flowId) + 1) % 256)
          yield* validationFails(
            b.createFlowGraph({ flow: g.flow, members: g.members, edges: [{ ...forward, downstreamExecutionId: outsider }] }),
            "InvalidInput"
          )
          yield* validationFails(
            b.createFlowGraph({ flow: g.flow, members: [...g.members, { ...g.members[0]!, executionId: outsider }] }),
            "InvalidInput"
          )
          yield* validationFails(b.createFlowGraph({ flow: g.flow, members: [g.members[0]!, g.members[0]!] }), "InvalidInput")
          yield* validationFails(b.createFlowGraph({ flow: g.flow, members: [] }), "InvalidInput")
          yield* validationFails(
            b.createFlowGraph({ flow: g.flow, members: [{ ...g.members[0]!, idempotencyKey: "k" }] }),
            "InvalidInput"
          )
          yield* validationFails(
            b.createFlowGraph({
              flow: g.flow,
              members: g.members,
              joins: [{ downstreamExecutionId: g.members[2]!.executionId, policy: { _tag: "quorum", k: 0, onSatisfied: "let_run" } }]
            }),
            "InvalidInput"
          )
          yield* nothingWritten(g)
        }))

      t.test("a member that already exists fails the call and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const g = yield* graph(2)
          yield* b.createExecution(g.members[1]!)
          yield* validationFails(b.createFlowGraph({ flow: g.flow, members: g.members, edges: [yield* g.edge(0, 1)] }), "InvalidInput")
          yield* nothingWritten({ flowId: g.flowId, members: [g.members[0]!] })
          expect(yield* publicState(g.members[1]!.executionId)).toBe("waiting")
        }))
    })

    describe("membership", () => {
      t.test("createFlow creates an open flow and is idempotent", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const t0 = yield* now
          const flowId = yield* createFlow()
          const f = yield* flowSnapshot(flowId)
          expect(f).toMatchObject({
            flowId,
            flowKind: "dag",
            namespace: NS,
            publicFlowState: "open",
            graphRevision: 0,
            nodeCount: 0,
            edgeCount: 0,
            createdAt: t0,
            edgeGroups: []
          })
          expect(f.cancelledAt).toBeUndefined()
          yield* advance(10)
          expect(yield* b.createFlow({ flowId, namespace: NS, flowKind: "pipeline" })).toEqual({
            _tag: "AlreadySatisfied",
            flowId
          })
          expect((yield* flowSnapshot(flowId)).flowKind).toBe("dag")
        }))

      t.test("describeFlow of an unknown flow is None", () =>
        Effect.gen(function*() {
          const b = yield* backend
          expect(Option.isNone(yield* b.describeFlow(yield* Ids.newFlowId))).toBe(true)
        }))

      t.test("addExecutionToFlow adds, bumps counters, and is idempotent", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const c = yield* create({ flowId })
          expect(yield* b.addExecutionToFlow({ flowId, executionId: c.executionId })).toEqual({
            _tag: "Added",
            executionId: c.executionId,
            newNodeCount: 1
          })
          expect(yield* flowSnapshot(flowId)).toMatchObject({ nodeCount: 1, graphRevision: 1 })
          expect((yield* snapshot(c.executionId)).flowId).toBe(flowId)
          expect(yield* b.resolveExecutionFlowId(c.executionId)).toEqual(Option.some(flowId))
          expect(yield* b.addExecutionToFlow({ flowId, executionId: c.executionId })).toEqual({
            _tag: "AlreadyMember",
            executionId: c.executionId,
            nodeCount: 1
          })
          expect(yield* flowSnapshot(flowId)).toMatchObject({ nodeCount: 1, graphRevision: 1 })
        }))

      t.test("resolveExecutionFlowId is None for standalone and missing executions", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          expect(Option.isNone(yield* b.resolveExecutionFlowId(c.executionId))).toBe(true)
          expect((yield* snapshot(c.executionId)).flowId).toBeUndefined()
          expect(Option.isNone(yield* b.resolveExecutionFlowId(yield* Ids.executionIdSolo(c.lane)))).toBe(true)
        }))

      t.test("addExecutionToFlow rejects an execution minted on another partition, writing nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const p = Ids.flowPartition(flowId)
          const c = yield* create({ executionId: yield* executionIdOnPartition((p + 1) % t.options.numFlowPartitions) })
          yield* validationFails(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "InvalidInput", "partition")
          expect(yield* flowSnapshot(flowId)).toMatchObject({ nodeCount: 0, graphRevision: 0 })
          expect(Option.isNone(yield* b.resolveExecutionFlowId(c.executionId))).toBe(true)
        }))

      t.test("addExecutionToFlow: NotFound(flow), NotFound(execution)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const ghostFlow = yield* Ids.newFlowId
          const c = yield* create({ flowId: ghostFlow })
          const e1 = yield* failsWith(b.addExecutionToFlow({ flowId: ghostFlow, executionId: c.executionId }), "NotFound")
          expect(e1.entity).toBe("flow")
          const flowId = yield* createFlow()
          const e2 = yield* failsWith(
            b.addExecutionToFlow({ flowId, executionId: yield* Ids.executionIdForFlow(flowId) }),
            "NotFound"
          )
          expect(e2.entity).toBe("execution")
          expect((yield* flowSnapshot(flowId)).nodeCount).toBe(0)
        }))

      t.test("addExecutionToFlow on a cancelled flow: State(FlowAlreadyTerminal)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          yield* b.cancelFlow({ flowId, policy: "FlowOnly", wait: { _tag: "NoWait" } })
          const c = yield* create({ flowId })
          yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowAlreadyTerminal")
          expect(Option.isNone(yield* b.resolveExecutionFlowId(c.executionId))).toBe(true)
        }))

      t.test("an execution belongs to at most one flow: Conflict(ExecutionAlreadyInFlow)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const first = yield* createFlow()
          const second = yield* createFlow(yield* flowIdOnPartition(Ids.flowPartition(first), t.options.numFlowPartitions))
          const m = yield* addMember(first)
          yield* failsWith(
            b.addExecutionToFlow({ flowId: second, executionId: m.executionId }),
            "Conflict",
            "ExecutionAlreadyInFlow"
          )
          expect(yield* b.resolveExecutionFlowId(m.executionId)).toEqual(Option.some(first))
          expect((yield* flowSnapshot(second)).nodeCount).toBe(0)
        }))
    })

    describe("edges", () => {
      t.test("stageDependencyEdge stages an edge readable by describeEdge and listEdges", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(3)
          const [a, bb, c] = ids as [ExecutionId, ExecutionId, ExecutionId]
          const edgeId = yield* Ids.newEdgeId
          const t0 = yield* now
          const staged = yield* b.stageDependencyEdge({
            flowId,
            edgeId,
            upstreamExecutionId: a,
            downstreamExecutionId: bb,
            expectedGraphRevision: 3,
            dataPassingRef: "result"
          })
          expect(staged).toEqual({ _tag: "Staged", edgeId, newGraphRevision: 4 })
          expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 1, graphRevision: 4, nodeCount: 3 })
          const edge = Option.getOrThrow(yield* b.describeEdge({ flowId, edgeId }))
          expect(edge).toEqual({
            edgeId,
            flowId,
            upstreamExecutionId: a,
            downstreamExecutionId: bb,
            dependencyKind: "success_only",
            satisfactionCondition: "all_required",
            dataPassingRef: "result",
            edgeState: "pending",
            createdAt: t0,
            createdBy: "engine"
          })
          expect(yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: a } })).toEqual([edge])
          expect(yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: bb } })).toEqual([edge])
          expect(yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: a } })).toEqual([])
          expect(yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: c } })).toEqual([])
          // staging alone does not block the child
          expect(yield* publicState(bb)).toBe("waiting")
        }))

      t.test("listEdges returns every edge of a node (unordered)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(4)
          const e1 = yield* addEdge(flowId, ids[0]!, ids[1]!)
          const e2 = yield* addEdge(flowId, ids[0]!, ids[2]!)
          const e3 = yield* addEdge(flowId, ids[3]!, ids[2]!)
          const out = yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: ids[0]! } })
          expect(out.map((e) => e.edgeId).sort()).toEqual([e1, e2].sort())
          const inc = yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: ids[2]! } })
          expect(inc.map((e) => e.edgeId).sort()).toEqual([e2, e3].sort())
          const standalone = yield* create()
          expect(yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: standalone.executionId } }))
            .toEqual([])
        }))

      t.test("describeEdge is None for an unknown edge and for an edge of another flow", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const edgeId = yield* addEdge(flowId, ids[0]!, ids[1]!)
          expect(Option.isNone(yield* b.describeEdge({ flowId, edgeId: yield* Ids.newEdgeId }))).toBe(true)
          const other = yield* createFlow()
          expect(Option.isNone(yield* b.describeEdge({ flowId: other, edgeId }))).toBe(true)
        }))

      t.test("a self edge is Conflict(SelfReferencingEdge) before anything else", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(1)
          for (const f of [flowId, yield* Ids.newFlowId]) {
            yield* failsWith(
              b.stageDependencyEdge({
                flowId: f,
                edgeId: yield* Ids.newEdgeId,
                upstreamExecutionId: ids[0]!,
                downstreamExecutionId: ids[0]!,
                expectedGraphRevision: 1
              }),
              "Conflict",
              "SelfReferencingEdge"
            )
          }
          expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 0, graphRevision: 1 })
        }))

      t.test("stageDependencyEdge errors: NotFound(flow), StaleGraphRevision, ExecutionNotInFlow", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const outsider = yield* create({ flowId })
          const stage = (f: typeof flowId, up: ExecutionId, down: ExecutionId, rev: number) =>
            Effect.flatMap(Ids.newEdgeId, (edgeId) =>
              b.stageDependencyEdge({
                flowId: f,
                edgeId,
                upstreamExecutionId: up,
                downstreamExecutionId: down,
                expectedGraphRevision: rev
              }))
          const nf = yield* failsWith(stage(yield* Ids.newFlowId, ids[0]!, ids[1]!, 0), "NotFound")
          expect(nf.entity).toBe("flow")
          yield* failsWith(stage(flowId, ids[0]!, ids[1]!, 1), "Contention", "StaleGraphRevision")
          yield* failsWith(stage(flowId, ids[0]!, ids[1]!, 3), "Contention", "StaleGraphRevision")
          yield* failsWith(stage(flowId, ids[0]!, outsider.executionId, 2), "State", "ExecutionNotInFlow")
          yield* failsWith(stage(flowId, outsider.executionId, ids[1]!, 2), "State", "ExecutionNotInFlow")
          expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 0, graphRevision: 2 })
        }))

      t.test("a retried stage after commit fails with StaleGraphRevision (not idempotent)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const args = {
            flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[1]!,
            expectedGraphRevision: 2
          }
          yield* b.stageDependencyEdge(args)
          yield* failsWith(b.stageDependencyEdge(args), "Contention", "StaleGraphRevision")
          expect((yield* flowSnapshot(flowId)).edgeCount).toBe(1)
        }))

      t.test("an edge closing a cycle is Conflict(CycleDetected)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(3, [[0, 1], [1, 2]])
          for (const [up, down] of [[2, 0], [1, 0], [2, 1]] as const) {
            const rev = (yield* flowSnapshot(flowId)).graphRevision
            yield* failsWith(
              b.stageDependencyEdge({
                flowId,
                edgeId: yield* Ids.newEdgeId,
                upstreamExecutionId: ids[up]!,
                downstreamExecutionId: ids[down]!,
                expectedGraphRevision: rev
              }),
              "Conflict",
              "CycleDetected"
            )
          }
          expect((yield* flowSnapshot(flowId)).edgeCount).toBe(2)
          // a parallel edge that closes no cycle is fine
          yield* addEdge(flowId, ids[0]!, ids[2]!)
        }))

      t.test("re-staging an edge id: Conflict(DependencyAlreadyExists) with the existing edge", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const edgeId = yield* addEdge(flowId, ids[0]!, ids[1]!)
          const rev = (yield* flowSnapshot(flowId)).graphRevision
          const e = yield* failsWith(
            b.stageDependencyEdge({
              flowId,
              edgeId,
              upstreamExecutionId: ids[0]!,
              downstreamExecutionId: ids[1]!,
              expectedGraphRevision: rev
            }),
            "Conflict",
            "DependencyAlreadyExists"
          )
          expect(e.existing).toMatchObject({
            edgeId,
            flowId,
            upstreamExecutionId: ids[0],
            downstreamExecutionId: ids[1]
          })
          expect(yield* flowSnapshot(flowId)).toMatchObject({ edgeCount: 1, graphRevision: rev })
        }))

      t.test("stageDependencyEdge on a cancelled flow: State(FlowAlreadyTerminal)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          yield* b.cancelFlow({ flowId, policy: "FlowOnly" })
          const rev = (yield* flowSnapshot(flowId)).graphRevision
          yield* failsWith(
            b.stageDependencyEdge({
              flowId,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: ids[0]!,
              downstreamExecutionId: ids[1]!,
              expectedGraphRevision: rev
            }),
            "State",
            "FlowAlreadyTerminal"
          )
        }))

      t.test("applyDependencyToChild blocks a waiting child, counts edges, and is idempotent per edge", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(3)
          const stageOnly = (up: ExecutionId, down: ExecutionId) =>
            Effect.gen(function*() {
              const edgeId = yield* Ids.newEdgeId
              yield* b.stageDependencyEdge({
                flowId,
                edgeId,
                upstreamExecutionId: up,
                downstreamExecutionId: down,
                expectedGraphRevision: (yield* flowSnapshot(flowId)).graphRevision
              })
              return edgeId
            })
          const e1 = yield* stageOnly(ids[0]!, ids[2]!)
          const e2 = yield* stageOnly(ids[1]!, ids[2]!)
          const apply = (edgeId: typeof e1, up: ExecutionId) =>
            b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: up, downstreamExecutionId: ids[2]! })
          expect(yield* apply(e1, ids[0]!)).toEqual({ _tag: "Applied", unsatisfiedCount: 1 })
          expect((yield* snapshot(ids[2]!)).blockingDetail).toBe(`1 dep(s) unresolved incl ${e1}`)
          expect(yield* vector(ids[2]!)).toMatchObject({
            lifecyclePhase: "runnable",
            eligibilityState: "blocked_by_dependencies",
            blockingReason: "waiting_for_children",
            attemptState: "pending_first_attempt",
            publicState: "waiting_children"
          })
          expect(yield* apply(e1, ids[0]!)).toEqual({ _tag: "AlreadyApplied" })
          expect(yield* apply(e2, ids[1]!)).toEqual({ _tag: "Applied", unsatisfiedCount: 2 })
          expect(yield* edgeGroup(flowId, ids[2]!)).toEqual({
            downstreamExecutionId: ids[2],
            policy: { _tag: "all_of" },
            totalDeps: 2,
            satisfiedCount: 0,
            failedCount: 0,
            skippedCount: 0,
            runningCount: 2,
            groupState: "pending"
          })
          const lane = (yield* snapshot(ids[2]!)).laneId
          yield* claimNone(lane)
        }))

      t.test("applyDependencyToChild: NotFound(execution) and ExecutionAlreadyInFlow", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const ghost = yield* Ids.executionIdForFlow(flowId)
          const e = yield* failsWith(
            b.applyDependencyToChild({
              flowId,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: ids[0]!,
              downstreamExecutionId: ghost
            }),
            "NotFound"
          )
          expect(e.entity).toBe("execution")
          const other = yield* createFlow(yield* flowIdOnPartition(Ids.flowPartition(flowId), t.options.numFlowPartitions))
          yield* failsWith(
            b.applyDependencyToChild({
              flowId: other,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: ids[0]!,
              downstreamExecutionId: ids[1]!
            }),
            "Conflict",
            "ExecutionAlreadyInFlow"
          )
          expect(yield* publicState(ids[1]!)).toBe("waiting")
        }))
      t.test("applyDependencyToChild off the flow's partition is Validation(InvalidInput) and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const fp = Ids.flowPartition(flowId, { ...Ids.defaultPartitionConfig, numFlowPartitions: t.options.numFlowPartitions })
          const elsewhere = (yield* create({ executionId: yield* executionIdOnPartition((fp + 1) % t.options.numFlowPartitions) }))
            .executionId
          const before = yield* flowSnapshot(flowId)
          // slot locality (valkey.md §12.3): checked first, before NotFound / ExecutionAlreadyInFlow
          for (const [up, down] of [[ids[0]!, elsewhere], [elsewhere, ids[1]!]] as const) {
            yield* validationFails(
              b.applyDependencyToChild({ flowId, edgeId: yield* Ids.newEdgeId, upstreamExecutionId: up, downstreamExecutionId: down }),
              "InvalidInput",
              "must live on the flow's partition"
            )
          }
          expect(yield* publicState(elsewhere)).toBe("waiting")
          expect(yield* publicState(ids[1]!)).toBe("waiting")
          expect((yield* snapshot(elsewhere)).flowId).toBeUndefined()
          expect(yield* flowSnapshot(flowId)).toEqual(before)
        }))
    })

    describe("edge group policy", () => {
      t.test("setEdgeGroupPolicy: Set, then AlreadySet for the same variant", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(3)
          const d = ids[2]!
          const policy = { _tag: "quorum", k: 2, onSatisfied: "let_run" } as const
          expect(yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: d, policy })).toEqual({ _tag: "Set" })
          expect(
            yield* b.setEdgeGroupPolicy({
              flowId,
              downstreamExecutionId: d,
              policy: { _tag: "quorum", k: 1, onSatisfied: "cancel_remaining" }
            })
          ).toEqual({ _tag: "AlreadySet" })
          yield* addEdge(flowId, ids[0]!, d)
          expect((yield* edgeGroup(flowId, d)).policy).toEqual(policy)
        }))

      t.test("describeFlow lists one group per member with applied dependencies (n > 0), staged or not", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(3)
          const listed = Effect.map(flowSnapshot(flowId), (f) => f.edgeGroups.map((g) => g.downstreamExecutionId))
          const policy = { _tag: "any_of", onSatisfied: "cancel_remaining" } as const
          // a policy alone, then a staged edge not yet applied: no group is listed (n = 0)
          expect(yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: ids[1]!, policy })).toEqual({ _tag: "Set" })
          const staged = yield* Ids.newEdgeId
          yield* b.stageDependencyEdge({
            flowId,
            edgeId: staged,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[1]!,
            expectedGraphRevision: (yield* flowSnapshot(flowId)).graphRevision
          })
          expect(yield* listed).toEqual([])
          // applied: listed with its policy and n = 1
          yield* b.applyDependencyToChild({ flowId, edgeId: staged, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! })
          expect(yield* edgeGroup(flowId, ids[1]!)).toMatchObject({ policy, totalDeps: 1, runningCount: 1, groupState: "pending" })
          // a dependency applied for an edge that was never staged (§8.5 does not verify it) counts too
          yield* b.applyDependencyToChild({
            flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[0]!,
            downstreamExecutionId: ids[2]!
          })
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ policy: { _tag: "all_of" }, totalDeps: 1 })
          expect(yield* listed).toEqual([ids[1]!, ids[2]!].sort())
        }))

      t.test("setEdgeGroupPolicy after an edge was applied: InvalidInput(edge_group_policy_already_fixed)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2, [[0, 1]])
          yield* validationFails(
            b.setEdgeGroupPolicy({
              flowId,
              downstreamExecutionId: ids[1]!,
              policy: { _tag: "any_of", onSatisfied: "let_run" }
            }),
            "InvalidInput",
            "edge_group_policy_already_fixed"
          )
          expect((yield* edgeGroup(flowId, ids[1]!)).policy).toEqual({ _tag: "all_of" })
        }))

      t.test("setEdgeGroupPolicy on a missing flow: NotFound(flow)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* Ids.newFlowId
          const e = yield* failsWith(
            b.setEdgeGroupPolicy({
              flowId,
              downstreamExecutionId: yield* Ids.executionIdForFlow(flowId),
              policy: { _tag: "all_of" }
            }),
            "NotFound"
          )
          expect(e.entity).toBe("flow")
        }))

      t.test("setEdgeGroupPolicy off the flow's partition: NotFound(flow) first, else InvalidInput, nothing written", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(1)
          const n = t.options.numFlowPartitions
          const fp = Ids.flowPartition(flowId, { ...Ids.defaultPartitionConfig, numFlowPartitions: n })
          const elsewhere = (yield* create({ executionId: yield* executionIdOnPartition((fp + 1) % n) })).executionId
          const policy = { _tag: "any_of", onSatisfied: "let_run" } as const
          yield* validationFails(
            b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: elsewhere, policy }),
            "InvalidInput",
            "must live on the flow's partition"
          )
          const missing = yield* failsWith(
            b.setEdgeGroupPolicy({ flowId: yield* Ids.newFlowId, downstreamExecutionId: elsewhere, policy }),
            "NotFound"
          )
          expect(missing.entity).toBe("flow")
          expect((yield* flowSnapshot(flowId)).edgeGroups).toEqual([])
          expect(yield* publicState(elsewhere)).toBe("waiting")
          expect(yield* publicState(ids[0]!)).toBe("waiting")
        }))
    })

    describe("joins and skip propagation (P4: no maintenance pass)", () => {
      t.test("all_of: the child becomes eligible inside the last upstream's complete", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(3, [[0, 2], [1, 2]])
          yield* expectStates([[ids[0]!, "waiting"], [ids[1]!, "waiting"], [ids[2]!, "waiting_children"]])
          yield* completeMember(members[0]!)
          expect(yield* publicState(ids[2]!)).toBe("waiting_children")
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({
            totalDeps: 2,
            satisfiedCount: 1,
            runningCount: 1,
            groupState: "pending"
          })
          yield* completeMember(members[1]!)
          expect(yield* vector(ids[2]!)).toMatchObject({
            eligibilityState: "eligible_now",
            attemptState: "pending_first_attempt",
            publicState: "waiting"
          })
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({
            satisfiedCount: 2,
            runningCount: 0,
            groupState: "satisfied"
          })
          const h = yield* claimSome(members[2]!.lane)
          expect(h.kind).toBe("fresh")
        }))

      t.test("resolving a dependency stamps the child's lastMutationAt even when its state does not move", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(3)
          // the child is already running when the edges are applied, so resolution cannot unblock it
          const child = yield* claimSome(members[2]!.lane)
          expect(payloadOf(child).executionId).toBe(ids[2])
          yield* addEdge(flowId, ids[0]!, ids[2]!, { dataPassingRef: "in" })
          yield* addEdge(flowId, ids[1]!, ids[2]!)
          const before = (yield* snapshot(ids[2]!)).lastMutationAt
          yield* advance(10)
          const t1 = yield* now
          const h0 = yield* claimSome(members[0]!.lane)
          yield* b.complete(h0, { payload: bytes("up") })
          expect(t1).toBeGreaterThan(before)
          expect((yield* snapshot(ids[2]!)).lastMutationAt).toBe(t1)
          expect(yield* publicState(ids[2]!)).toBe("active")
          yield* advance(10)
          const t2 = yield* now
          yield* failMember(members[1]!)
          expect((yield* snapshot(ids[2]!)).lastMutationAt).toBe(t2)
        }))

      t.test("a linear chain advances one member per complete with no scanner delay", () =>
        Effect.gen(function*() {
          const { members, ids } = yield* buildFlow(5, [[0, 1], [1, 2], [2, 3], [3, 4]])
          for (let i = 0; i < 5; i++) {
            expect(yield* publicState(ids[i]!)).toBe("waiting")
            for (let j = i + 1; j < 5; j++) expect(yield* publicState(ids[j]!)).toBe("waiting_children")
            yield* completeMember(members[i]!)
          }
          for (const id of ids) expect(yield* publicState(id)).toBe("completed")
        }))

      t.test("diamond: the join waits for both branches", () =>
        Effect.gen(function*() {
          const { members, ids } = yield* buildFlow(4, [[0, 1], [0, 2], [1, 3], [2, 3]])
          yield* completeMember(members[0]!)
          yield* expectStates([[ids[1]!, "waiting"], [ids[2]!, "waiting"], [ids[3]!, "waiting_children"]])
          yield* completeMember(members[2]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting_children")
          yield* completeMember(members[1]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting")
        }))

      t.test("all_of: a failed upstream skips the child and the skip cascades", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 1], [1, 2], [3, 2]])
          yield* failMember(members[0]!)
          expect(yield* vector(ids[1]!)).toMatchObject({
            lifecyclePhase: "terminal",
            terminalOutcome: "skipped",
            publicState: "skipped"
          })
          expect(yield* publicState(ids[2]!)).toBe("skipped")
          expect(yield* publicState(ids[3]!)).toBe("waiting")
          expect((yield* edgeGroup(flowId, ids[1]!)).groupState).toBe("impossible")
          yield* claimNone(members[1]!.lane)
          yield* claimNone(members[2]!.lane)
        }))

      t.test("a cancelled or expired upstream also skips its child", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { ids } = yield* buildFlow(2, [[0, 1]])
          yield* b.cancelExecution({ executionId: ids[0]!, reason: "no" })
          expect(yield* publicState(ids[1]!)).toBe("skipped")
          const flowId = yield* createFlow()
          const up = yield* addMember(flowId, { executionDeadlineAt: (yield* now) + 100 })
          const down = yield* addMember(flowId)
          yield* addEdge(flowId, up.executionId, down.executionId)
          yield* advance(100)
          yield* pass("expireExecutions")
          expect(yield* publicState(up.executionId)).toBe("expired")
          expect(yield* publicState(down.executionId)).toBe("skipped")
        }))

      t.test("skipping a running downstream ends its attempt and fences its holder", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const up = yield* addMember(flowId)
          const down = yield* addMember(flowId)
          const dh = yield* claimSome(down.lane)
          yield* addEdge(flowId, up.executionId, down.executionId)
          expect(yield* publicState(down.executionId)).toBe("active")
          yield* failMember(up)
          expect(yield* vector(down.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            terminalOutcome: "skipped"
          })
          const e = yield* failsWith(b.complete(dh), "Contention", "ExecutionNotActive")
          expect(e.notActive?.terminalOutcome).toBe("skipped")
        }))

      t.test("any_of + cancel_remaining: the first success releases the child and cancels the other upstreams", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 3], [1, 3], [2, 3]], {
            3: { _tag: "any_of", onSatisfied: "cancel_remaining" }
          })
          const runningSibling = yield* claimSome(members[1]!.lane)
          yield* completeMember(members[0]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting")
          yield* settleFlows
          yield* expectStates([[ids[1]!, "cancelled"], [ids[2]!, "cancelled"], [ids[3]!, "waiting"]])
          yield* failsWith(b.complete(runningSibling), "Contention", "ExecutionNotActive")
          // the group fired once; the cancelled siblings do not skip the child
          expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ groupState: "satisfied", satisfiedCount: 1 })
          yield* completeMember(members[3]!)
        }))

      t.test("any_of + let_run: siblings keep running and later outcomes do not re-fire the group", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 3], [1, 3], [2, 3]], {
            3: { _tag: "any_of", onSatisfied: "let_run" }
          })
          yield* completeMember(members[0]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting")
          yield* settleFlows
          yield* expectStates([[ids[1]!, "waiting"], [ids[2]!, "waiting"], [ids[3]!, "waiting"]])
          yield* failMember(members[1]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting")
          expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({
            totalDeps: 3,
            satisfiedCount: 1,
            failedCount: 1,
            runningCount: 1,
            groupState: "satisfied"
          })
        }))

      t.test("any_of: impossible only when every upstream failed", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(3, [[0, 2], [1, 2]], {
            2: { _tag: "any_of", onSatisfied: "let_run" }
          })
          yield* failMember(members[0]!)
          expect(yield* publicState(ids[2]!)).toBe("waiting_children")
          expect((yield* edgeGroup(flowId, ids[2]!)).groupState).toBe("pending")
          yield* failMember(members[1]!)
          expect(yield* publicState(ids[2]!)).toBe("skipped")
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ failedCount: 2, groupState: "impossible" })
        }))

      t.test("quorum(2 of 3) + cancel_remaining: satisfied at the second success, the third is cancelled", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 3], [1, 3], [2, 3]], {
            3: { _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" }
          })
          yield* completeMember(members[0]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting_children")
          yield* completeMember(members[1]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting")
          yield* settleFlows
          expect(yield* publicState(ids[2]!)).toBe("cancelled")
          expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ satisfiedCount: 2, groupState: "satisfied" })
        }))

      t.test("quorum(2 of 3) + let_run: impossible once two failed; the child is skipped, the third runs on", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 3], [1, 3], [2, 3]], {
            3: { _tag: "quorum", k: 2, onSatisfied: "let_run" }
          })
          yield* failMember(members[0]!)
          expect(yield* publicState(ids[3]!)).toBe("waiting_children")
          yield* failMember(members[1]!)
          expect(yield* publicState(ids[3]!)).toBe("skipped")
          expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ failedCount: 2, groupState: "impossible" })
          yield* settleFlows
          expect(yield* publicState(ids[2]!)).toBe("waiting")
          yield* completeMember(members[2]!)
        }))

      t.test("quorum(2 of 3) + cancel_remaining: impossible also cancels the remaining upstream", () =>
        Effect.gen(function*() {
          const { members, ids } = yield* buildFlow(4, [[0, 3], [1, 3], [2, 3]], {
            3: { _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" }
          })
          yield* failMember(members[0]!)
          yield* failMember(members[1]!)
          expect(yield* publicState(ids[3]!)).toBe("skipped")
          yield* settleFlows
          expect(yield* publicState(ids[2]!)).toBe("cancelled")
        }))

      t.test("a dependency applied without a staged edge: not resolved inline, the pass resolves it for a blocked child only", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const up = yield* addMember(flowId)
          const blocked = yield* addMember(flowId)
          const active = yield* addMember(flowId)
          const done = yield* addMember(flowId)
          // `active` runs and `done` is cancelled before their dependencies are applied
          const activeHandle = yield* claimSome(active.lane)
          yield* b.cancelExecution({ executionId: done.executionId, reason: "x" })
          // never staged: operations.md §8.5 does not verify the edge
          const applyUnstaged = (down: ExecutionId) =>
            Effect.gen(function*() {
              const edgeId = yield* Ids.newEdgeId
              yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: up.executionId, downstreamExecutionId: down })
            })
          for (const c of [blocked, active, done]) yield* applyUnstaged(c.executionId)
          expect(yield* publicState(blocked.executionId)).toBe("waiting_children")
          // inline resolution (P4) follows the upstream's staged edges only
          yield* failMember(up)
          expect(yield* publicState(blocked.executionId)).toBe("waiting_children")
          for (const c of [blocked, active, done]) {
            expect(yield* edgeGroup(flowId, c.executionId)).toMatchObject({ runningCount: 1, failedCount: 0, groupState: "pending" })
          }
          // the safety net resolves the blocked child's dependency by its record; the others are left alone
          yield* settleFlows
          expect(yield* publicState(blocked.executionId)).toBe("skipped")
          expect(yield* edgeGroup(flowId, blocked.executionId)).toMatchObject({ failedCount: 1, groupState: "impossible" })
          for (const c of [active, done]) {
            expect(yield* edgeGroup(flowId, c.executionId)).toMatchObject({ runningCount: 1, failedCount: 0, groupState: "pending" })
          }
          expect(yield* publicState(active.executionId)).toBe("active")
          expect(yield* publicState(done.executionId)).toBe("cancelled")
          yield* b.complete(activeHandle)
        }))
    })

    describe("data passing", () => {
      t.test("an edge with a data_passing_ref copies the upstream result into the child's input on success", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const up = yield* addMember(flowId)
          const passed = yield* addMember(flowId, { inputPayload: bytes("original") })
          const plain = yield* addMember(flowId, { inputPayload: bytes("kept") })
          yield* addEdge(flowId, up.executionId, passed.executionId, { dataPassingRef: "result" })
          yield* addEdge(flowId, up.executionId, plain.executionId)
          yield* b.complete(yield* claimSome(up.lane), { payload: bytes("from-upstream") })
          const input = (id: ExecutionId) =>
            Effect.map(b.getExecutionInput(id), (i) => Option.map(i, (x) => new TextDecoder().decode(x.payload)))
          expect(yield* input(passed.executionId)).toEqual(Option.some("from-upstream"))
          expect(yield* input(plain.executionId)).toEqual(Option.some("kept"))
          expect(yield* publicState(passed.executionId)).toBe("waiting")
        }))

      t.test("an upstream that completes without a result leaves the child's input untouched", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const up = yield* addMember(flowId)
          const down = yield* addMember(flowId, { inputPayload: bytes("original") })
          yield* addEdge(flowId, up.executionId, down.executionId, { dataPassingRef: "result" })
          yield* b.complete(yield* claimSome(up.lane))
          const i = Option.getOrThrow(yield* b.getExecutionInput(down.executionId))
          expect(new TextDecoder().decode(i.payload)).toBe("original")
        }))
    })

    describe("late edges: an edge applied after its upstream ended", () => {
      t.test("an edge whose upstream already completed is satisfied by the call that applies it", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const up = yield* addMember(flowId)
          const down = yield* addMember(flowId, { inputPayload: bytes("original") })
          yield* b.complete(yield* claimSome(up.lane), { payload: bytes("from-upstream") })
          yield* addEdge(flowId, up.executionId, down.executionId, { dataPassingRef: "result" })
          // no maintenance pass: resolved inside applyDependencyToChild
          expect(yield* vector(down.executionId)).toMatchObject({
            eligibilityState: "eligible_now",
            publicState: "waiting"
          })
          expect(yield* edgeGroup(flowId, down.executionId)).toMatchObject({
            totalDeps: 1,
            satisfiedCount: 1,
            runningCount: 0,
            groupState: "satisfied"
          })
          const input = Option.getOrThrow(yield* b.getExecutionInput(down.executionId))
          expect(text(input.payload)).toBe("from-upstream")
          expect(payloadOf(yield* claimSome(down.lane)).executionId).toBe(down.executionId)
        }))

      t.test("an edge whose upstream already failed, was cancelled or was skipped skips its all_of child at once", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(7, [[2, 3]])
          const [failed, cancelled, skipRoot, skipped, c1, c2, c3] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId]
          yield* failMember(members[0]!)
          yield* b.cancelExecution({ executionId: cancelled, reason: "no" })
          yield* failMember(members[2]!)
          expect(yield* publicState(skipped)).toBe("skipped")
          expect(yield* publicState(skipRoot)).toBe("failed")
          // c3 has a child of its own, blocked on it: the skip cascades from the late edge
          const grandChild = yield* addMember(flowId)
          yield* addEdge(flowId, c3, grandChild.executionId)
          yield* addEdge(flowId, failed, c1)
          yield* addEdge(flowId, cancelled, c2)
          yield* addEdge(flowId, skipped, c3)
          yield* expectStates([[c1, "skipped"], [c2, "skipped"], [c3, "skipped"], [grandChild.executionId, "skipped"]])
          for (const c of [c1, c2, c3]) {
            // a skipped upstream counts as failed for an all_of join
            expect(yield* edgeGroup(flowId, c)).toMatchObject({
              totalDeps: 1,
              satisfiedCount: 0,
              failedCount: 1,
              skippedCount: 0,
              runningCount: 0,
              groupState: "impossible"
            })
          }
          yield* claimNone(members[4]!.lane)
        }))

      t.test("any_of: an edge from an already failed or skipped upstream counts toward impossible at once", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(5, [[1, 2]], { 4: { _tag: "any_of", onSatisfied: "let_run" } })
          const [failed, , skipped, other, child] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId]
          yield* failMember(members[0]!)
          yield* failMember(members[1]!)
          expect(yield* publicState(skipped)).toBe("skipped")
          // the running upstream first: with one edge, a lost upstream would make any_of impossible
          yield* addEdge(flowId, other, child)
          yield* addEdge(flowId, failed, child)
          yield* addEdge(flowId, skipped, child)
          expect(yield* publicState(child)).toBe("waiting_children")
          expect(yield* edgeGroup(flowId, child)).toMatchObject({
            totalDeps: 3,
            failedCount: 1,
            skippedCount: 1,
            runningCount: 1,
            groupState: "pending"
          })
          yield* failMember(members[3]!)
          expect(yield* publicState(child)).toBe("skipped")
        }))

      t.test("all_of: a late edge to a child whose group was satisfied blocks it again until the new upstream resolves", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(3, [[0, 2]])
          yield* completeMember(members[0]!)
          expect(yield* publicState(ids[2]!)).toBe("waiting")
          expect((yield* edgeGroup(flowId, ids[2]!)).groupState).toBe("satisfied")
          yield* addEdge(flowId, ids[1]!, ids[2]!)
          expect(yield* vector(ids[2]!)).toMatchObject({
            eligibilityState: "blocked_by_dependencies",
            blockingReason: "waiting_for_children",
            publicState: "waiting_children"
          })
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({
            totalDeps: 2,
            satisfiedCount: 1,
            runningCount: 1,
            groupState: "pending"
          })
          yield* claimNone(members[2]!.lane)
          yield* completeMember(members[1]!)
          expect(yield* publicState(ids[2]!)).toBe("waiting")
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ satisfiedCount: 2, groupState: "satisfied" })
          yield* completeMember(members[2]!)
        }))

      t.test("all_of: a late edge to a running child leaves it running; a new upstream that fails skips it", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(4, [[0, 2], [0, 3]])
          yield* completeMember(members[0]!)
          const running = yield* claimSome(members[2]!.lane)
          const finisher = yield* claimSome(members[3]!.lane)
          yield* addEdge(flowId, ids[1]!, ids[2]!)
          expect(yield* publicState(ids[2]!)).toBe("active")
          expect((yield* edgeGroup(flowId, ids[2]!)).groupState).toBe("pending")
          // the same late edge to a child that finished changes nothing
          yield* b.complete(finisher)
          yield* addEdge(flowId, ids[1]!, ids[3]!)
          expect(yield* publicState(ids[3]!)).toBe("completed")
          expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ totalDeps: 2, runningCount: 1, groupState: "satisfied" })
          yield* failMember(members[1]!)
          expect(yield* vector(ids[2]!)).toMatchObject({ lifecyclePhase: "terminal", terminalOutcome: "skipped" })
          yield* failsWith(b.complete(running), "Contention", "ExecutionNotActive")
          expect(yield* publicState(ids[3]!)).toBe("completed")
          expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ failedCount: 1, groupState: "satisfied" })
        }))

      t.test("any_of / quorum: a late edge to a satisfied group leaves it satisfied and the child claimable", () =>
        Effect.gen(function*() {
          const { flowId, members, ids } = yield* buildFlow(6, [[0, 2], [3, 5], [4, 5]], {
            2: { _tag: "any_of", onSatisfied: "let_run" },
            5: { _tag: "quorum", k: 2, onSatisfied: "let_run" }
          })
          yield* completeMember(members[0]!)
          yield* completeMember(members[3]!)
          yield* completeMember(members[4]!)
          yield* expectStates([[ids[2]!, "waiting"], [ids[5]!, "waiting"]])
          yield* addEdge(flowId, ids[1]!, ids[2]!)
          yield* addEdge(flowId, ids[1]!, ids[5]!)
          yield* expectStates([[ids[2]!, "waiting"], [ids[5]!, "waiting"]])
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ totalDeps: 2, runningCount: 1, groupState: "satisfied" })
          expect(yield* edgeGroup(flowId, ids[5]!)).toMatchObject({ totalDeps: 3, runningCount: 1, groupState: "satisfied" })
          // the new upstream finishing changes nothing: no pass needed, nothing stalls
          yield* completeMember(members[1]!)
          yield* expectStates([[ids[2]!, "waiting"], [ids[5]!, "waiting"]])
          expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ satisfiedCount: 2, runningCount: 0, groupState: "satisfied" })
          yield* completeMember(members[2]!)
          yield* completeMember(members[5]!)
        }))
    })

    describe("sibling cancellation", () => {
      const reasonOf = (id: ExecutionId) =>
        Effect.map(info(id), (i) => ({ state: i.publicState, reason: i.cancellationReason, by: i.cancelledBy }))

      t.test("a satisfied cancel_remaining group cancels its running siblings with sibling_quorum_satisfied", () =>
        Effect.gen(function*() {
          const { members, ids } = yield* buildFlow(3, [[0, 2], [1, 2]], { 2: { _tag: "any_of", onSatisfied: "cancel_remaining" } })
          yield* completeMember(members[0]!)
          expect(yield* reasonOf(ids[1]!)).toEqual({ state: "cancelled", reason: "sibling_quorum_satisfied", by: "operator_override" })
        }))

      t.test("an impossible cancel_remaining group cancels its running siblings with sibling_quorum_impossible", () =>
        Effect.gen(function*() {
          const { members, ids } = yield* buildFlow(4, [[0, 3], [1, 3], [2, 3]], {
            3: { _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" }
          })
          yield* failMember(members[0]!)
          yield* failMember(members[1]!)
          expect(yield* publicState(ids[3]!)).toBe("skipped")
          expect(yield* reasonOf(ids[2]!)).toEqual({ state: "cancelled", reason: "sibling_quorum_impossible", by: "operator_override" })
        }))

      t.test("readExecutionInfo shows who cancelled an execution and why", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          expect(yield* reasonOf(c.executionId)).toEqual({ state: "waiting", reason: undefined, by: undefined })
          yield* b.cancelExecution({ executionId: c.executionId, reason: "not needed", source: "ops" })
          expect(yield* reasonOf(c.executionId)).toEqual({ state: "cancelled", reason: "not needed", by: "ops" })
          const w = yield* create()
          yield* b.cancel(yield* claimSome(w.lane), { reason: "gave up" })
          expect(yield* reasonOf(w.executionId)).toEqual({ state: "cancelled", reason: "gave up", by: "worker" })
        }))
    })

    describe("open flows", () => {
      const flowState = (flowId: M.FlowSnapshot["flowId"]) => Effect.map(flowSnapshot(flowId), (f) => f.publicFlowState)

      t.test("the flow's state follows its members: open, running, completed, failed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          expect(yield* flowState(flowId)).toBe("open")
          const a = yield* addMember(flowId)
          expect(yield* flowState(flowId)).toBe("running")
          yield* completeMember(a)
          expect(yield* flowState(flowId)).toBe("completed")
          const f = yield* addMember(flowId)
          expect(yield* flowState(flowId)).toBe("running")
          yield* failMember(f)
          expect(yield* flowState(flowId)).toBe("failed")
          const listed = yield* b.listFlows({ partition: Ids.partitionKey("Flow", Ids.flowPartition(flowId)), limit: 1000 })
          expect(listed.flows.find((x) => x.flowId === flowId)?.status).toBe("Failed")
          expect((yield* flowSnapshot(flowId)).sealed).toBe(false)
        }))

      t.test("a flow whose members all finished takes new members and edges and runs again", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const a = yield* addMember(flowId)
          yield* b.complete(yield* claimSome(a.lane), { payload: bytes("a-result") })
          expect(yield* flowState(flowId)).toBe("completed")
          const next = yield* addMember(flowId)
          expect((yield* flowSnapshot(flowId)).nodeCount).toBe(2)
          yield* addEdge(flowId, a.executionId, next.executionId, { dataPassingRef: "a" })
          expect(yield* publicState(next.executionId)).toBe("waiting")
          expect(yield* flowState(flowId)).toBe("running")
          const input = Option.getOrThrow(yield* b.getExecutionInput(next.executionId))
          expect(text(input.payload)).toBe("a-result")
          yield* completeMember(next)
          expect(yield* flowState(flowId)).toBe("completed")
        }))

      t.test("replaying a member of a finished flow makes the flow running again", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(1)
          yield* failMember(members[0]!)
          expect(yield* flowState(flowId)).toBe("failed")
          yield* b.replayExecution(ids[0]!)
          expect(yield* flowState(flowId)).toBe("running")
          yield* completeMember(members[0]!)
          expect(yield* flowState(flowId)).toBe("completed")
        }))

      t.test("cancelFlow cancels a flow whose members all finished, leaving the members as they are", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(2)
          yield* completeMember(members[0]!)
          yield* failMember(members[1]!)
          expect(yield* flowState(flowId)).toBe("failed")
          const r = yield* b.cancelFlow({ flowId, policy: "CancelAll", reason: "done with it" })
          expect(r._tag).toBe("Cancelled")
          expect(yield* flowSnapshot(flowId)).toMatchObject({ publicFlowState: "cancelled", cancelReason: "done with it" })
          yield* expectStates([[ids[0]!, "completed"], [ids[1]!, "failed"]])
          const c = yield* create({ flowId })
          yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowAlreadyTerminal")
          yield* failsWith(b.cancelFlow({ flowId, policy: "FlowOnly" }), "State", "FlowAlreadyTerminal")
        }))
    })

    describe("sealed flows", () => {
      t.test("sealFlow closes a flow to new members and edges; its state then ends with its members", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(2)
          expect(yield* b.sealFlow({ flowId })).toEqual({ _tag: "Sealed", flowId, publicFlowState: "running" })
          expect(yield* b.sealFlow({ flowId })).toEqual({ _tag: "AlreadySealed", flowId, publicFlowState: "running" })
          expect((yield* flowSnapshot(flowId)).sealed).toBe(true)
          const revision = (yield* flowSnapshot(flowId)).graphRevision
          const c = yield* create({ flowId })
          yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowSealed")
          yield* failsWith(
            b.stageDependencyEdge({
              flowId,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: ids[0]!,
              downstreamExecutionId: ids[1]!,
              expectedGraphRevision: revision
            }),
            "State",
            "FlowSealed"
          )
          yield* failsWith(b.extendFlow({ flowId, members: [] , edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! }] }), "State", "FlowSealed")
          expect((yield* flowSnapshot(flowId)).graphRevision).toBe(revision)
          expect((yield* snapshot(c.executionId)).flowId).toBeUndefined()
          yield* completeMember(members[0]!)
          yield* completeMember(members[1]!)
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("completed")
          // finished and sealed: nothing left to cancel
          yield* failsWith(b.cancelFlow({ flowId, policy: "CancelAll" }), "State", "FlowAlreadyTerminal")
        }))

      t.test("a sealed flow that still runs can be cancelled; sealFlow on a cancelled flow is FlowAlreadyTerminal", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(1)
          yield* b.sealFlow({ flowId })
          yield* b.cancelFlow({ flowId, policy: "CancelAll" })
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("cancelled")
          expect(yield* publicState(ids[0]!)).toBe("cancelled")
          yield* failsWith(b.sealFlow({ flowId }), "State", "FlowAlreadyTerminal")
          const other = yield* createFlow()
          yield* b.cancelFlow({ flowId: other, policy: "FlowOnly" })
          yield* failsWith(b.sealFlow({ flowId: other }), "State", "FlowAlreadyTerminal")
          const missing = yield* failsWith(b.sealFlow({ flowId: yield* Ids.newFlowId }), "NotFound")
          expect(missing.entity).toBe("flow")
          yield* validationFails(b.sealFlow({ flowId: "nope" as FlowId }), "InvalidInput")
        }))

      t.test("a flow created sealed: createFlow and createFlowGraph", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const empty = yield* Ids.newFlowId
          yield* b.createFlow({ flowId: empty, namespace: NS, sealed: true })
          // nothing can ever run in it
          expect(yield* flowSnapshot(empty)).toMatchObject({ sealed: true, publicFlowState: "completed" })
          const flowId = yield* Ids.newFlowId
          const lane = yield* newLane("sealed")
          const ids = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId)]
          yield* b.createFlowGraph({
            flow: { flowId, namespace: NS, sealed: true },
            members: ids.map((executionId) => ({ executionId, namespace: NS, laneId: lane, executionKind: "step", inputPayload: bytes("x") })),
            edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[1]! }]
          })
          expect(yield* flowSnapshot(flowId)).toMatchObject({ sealed: true, publicFlowState: "running" })
          const c = yield* create({ flowId })
          yield* failsWith(b.addExecutionToFlow({ flowId, executionId: c.executionId }), "State", "FlowSealed")
          yield* b.complete(yield* claimSome(lane))
          yield* b.complete(yield* claimSome(lane))
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("completed")
        }))
    })

    describe("extendFlow", () => {
      const newMember = (flowId: FlowId, lane: M.ClaimArgs["lane"], input = "x") =>
        Effect.map(Ids.executionIdForFlow(flowId), (executionId) => ({
          executionId,
          namespace: NS,
          laneId: lane,
          executionKind: "step",
          inputPayload: bytes(input)
        }))
      const edge = (up: ExecutionId, down: ExecutionId, extra: { readonly dataPassingRef?: string } = {}) =>
        Effect.map(Ids.newEdgeId, (edgeId) => ({ edgeId, upstreamExecutionId: up, downstreamExecutionId: down, ...extra }))

      t.test("adds members, joins and edges to a running flow in one call: a fan-out joined by an existing member", () =>
        Effect.gen(function*() {
          const b = yield* backend
          // discover -> final; discover fans out into three workers, each joined into final
          const { flowId, members, ids } = yield* buildFlow(2, [[0, 1]])
          const [discover, final] = ids as [ExecutionId, ExecutionId]
          const running = yield* claimSome(members[0]!.lane)
          const lane = yield* newLane("fan")
          const workers = [yield* newMember(flowId, lane, "w0"), yield* newMember(flowId, lane, "w1"), yield* newMember(flowId, lane, "w2")]
          const before = yield* flowSnapshot(flowId)
          const edges = [
            ...(yield* Effect.forEach(workers, (w) => edge(discover, w.executionId))),
            ...(yield* Effect.forEach(workers, (w) => edge(w.executionId, final)))
          ]
          const r = yield* b.extendFlow({ flowId, members: workers, edges })
          const after = yield* flowSnapshot(flowId)
          expect(r).toEqual({ _tag: "Extended", flowId, graphRevision: after.graphRevision, nodeCount: 5 })
          expect(after).toMatchObject({ nodeCount: 5, edgeCount: 7, graphRevision: before.graphRevision + 3 + 6 })
          for (const w of workers) expect(yield* publicState(w.executionId)).toBe("waiting_children")
          expect(yield* edgeGroup(flowId, final)).toMatchObject({ totalDeps: 4, runningCount: 4, groupState: "pending" })
          yield* claimNone(lane)
          yield* b.complete(running)
          for (const w of workers) expect(yield* publicState(w.executionId)).toBe("waiting")
          for (let i = 0; i < 3; i++) {
            expect(yield* publicState(final)).toBe("waiting_children")
            yield* b.complete(yield* claimSome(lane))
          }
          expect(yield* publicState(final)).toBe("waiting")
          yield* completeMember(members[1]!)
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("completed")
        }))

      t.test("new members with joins; edges from finished upstreams resolve in the same call", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(2)
          yield* b.complete(yield* claimSome(members[0]!.lane), { payload: bytes("done") })
          yield* failMember(members[1]!)
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("failed")
          const lane = yield* newLane("ext")
          const anyOf = yield* newMember(flowId, lane, "any")
          const allOf = yield* newMember(flowId, lane, "all")
          const passed = yield* newMember(flowId, lane, "passed")
          const r = yield* b.extendFlow({
            flowId,
            members: [anyOf, allOf, passed],
            joins: [{ downstreamExecutionId: anyOf.executionId, policy: { _tag: "any_of", onSatisfied: "let_run" } }],
            edges: [
              yield* edge(ids[1]!, anyOf.executionId),
              yield* edge(ids[0]!, anyOf.executionId),
              yield* edge(ids[0]!, allOf.executionId),
              yield* edge(ids[1]!, allOf.executionId),
              yield* edge(ids[0]!, passed.executionId, { dataPassingRef: "up" })
            ]
          })
          expect(r._tag).toBe("Extended")
          yield* expectStates([[anyOf.executionId, "waiting"], [allOf.executionId, "skipped"], [passed.executionId, "waiting"]])
          expect(yield* edgeGroup(flowId, anyOf.executionId)).toMatchObject({
            policy: { _tag: "any_of", onSatisfied: "let_run" },
            totalDeps: 2,
            satisfiedCount: 1,
            failedCount: 1,
            groupState: "satisfied"
          })
          const input = Option.getOrThrow(yield* b.getExecutionInput(passed.executionId))
          expect(text(input.payload)).toBe("done")
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("running")
        }))

      t.test("a replay of the same call is AlreadySatisfied and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(1)
          const lane = yield* newLane("ext")
          const m = yield* newMember(flowId, lane)
          const args = { flowId, members: [m], edges: [yield* edge(ids[0]!, m.executionId)] }
          expect((yield* b.extendFlow(args))._tag).toBe("Extended")
          const before = yield* flowSnapshot(flowId)
          expect(yield* b.extendFlow(args)).toEqual({ _tag: "AlreadySatisfied", flowId })
          expect(yield* flowSnapshot(flowId)).toEqual(before)
        }))

      t.test("a call that cannot be applied whole fails and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2, [[0, 1]])
          const lane = yield* newLane("ext")
          const m = yield* newMember(flowId, lane)
          const before = yield* flowSnapshot(flowId)
          const unchanged = Effect.gen(function*() {
            expect(yield* flowSnapshot(flowId)).toEqual(before)
            expect(Option.isNone(yield* b.describeExecution(m.executionId))).toBe(true)
          })
          // a cycle through existing edges
          yield* failsWith(
            b.extendFlow({ flowId, members: [m], edges: [yield* edge(ids[1]!, m.executionId), yield* edge(m.executionId, ids[0]!)] }),
            "Conflict",
            "CycleDetected"
          )
          yield* unchanged
          // an edge to an execution that is not a member
          const outsider = yield* create({ flowId })
          yield* failsWith(
            b.extendFlow({ flowId, members: [m], edges: [yield* edge(m.executionId, outsider.executionId)] }),
            "State",
            "ExecutionNotInFlow"
          )
          yield* unchanged
          // a member that exists already
          yield* validationFails(b.extendFlow({ flowId, members: [m, { ...m, executionId: outsider.executionId }] }), "InvalidInput", "already exists")
          yield* unchanged
          // an edge id the flow has
          const existing = (yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: ids[0]! } }))[0]!
          yield* failsWith(
            b.extendFlow({ flowId, members: [m], edges: [{ ...(yield* edge(ids[0]!, m.executionId)), edgeId: existing.edgeId }] }),
            "Conflict",
            "DependencyAlreadyExists"
          )
          yield* unchanged
          // a member minted on another partition, a join on an existing member
          const elsewhere = yield* executionIdOnPartition((Ids.flowPartition(flowId) + 1) % t.options.numFlowPartitions)
          yield* validationFails(b.extendFlow({ flowId, members: [{ ...m, executionId: elsewhere }] }), "InvalidInput", "partition")
          yield* validationFails(
            b.extendFlow({ flowId, members: [m], joins: [{ downstreamExecutionId: ids[1]!, policy: { _tag: "all_of" } }] }),
            "InvalidInput"
          )
          yield* validationFails(b.extendFlow({ flowId, members: [], edges: [] }), "InvalidInput")
          yield* unchanged
          const ghost = yield* Ids.newFlowId
          const missing = yield* failsWith(b.extendFlow({ flowId: ghost, members: [yield* newMember(ghost, lane)] }), "NotFound")
          expect(missing.entity).toBe("flow")
          yield* b.cancelFlow({ flowId, policy: "FlowOnly" })
          yield* failsWith(b.extendFlow({ flowId, members: [m] }), "State", "FlowAlreadyTerminal")
          expect(Option.isNone(yield* b.describeExecution(m.executionId))).toBe(true)
        }))
    })

    describe("replay of flow members", () => {
      t.test("a skipped member replays into waiting_children and runs after its upstream succeeds", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { members, ids } = yield* buildFlow(2, [[0, 1]])
          yield* failMember(members[0]!)
          expect(yield* publicState(ids[1]!)).toBe("skipped")
          expect(yield* b.replayExecution(ids[1]!)).toEqual({ _tag: "Replayed", publicState: "waiting_children" })
          expect(yield* vector(ids[1]!)).toMatchObject({
            lifecyclePhase: "runnable",
            eligibilityState: "blocked_by_dependencies",
            terminalOutcome: "none",
            attemptState: "pending_replay_attempt",
            publicState: "waiting_children"
          })
          expect(yield* b.replayExecution(ids[0]!)).toEqual({ _tag: "Replayed", publicState: "waiting" })
          yield* completeMember(members[0]!)
          expect(yield* publicState(ids[1]!)).toBe("waiting")
          const h = yield* claimSome(members[1]!.lane)
          expect(payloadOf(h).attemptIndex).toBe(0)
          yield* b.complete(h, { payload: bytes("ok") })
        }))
    })
  })
