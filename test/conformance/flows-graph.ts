/**
 * Flows (docs/design/flows.md), the graph as a whole: createFlowGraph (members, edges and joins in one call,
 * validated before the first write) and flow membership (createFlow, addExecutionToFlow and their errors).
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { completeMember } from "./flows-helpers.js"
import {
  addMember,
  advance,
  backend,
  bytes,
  create,
  createFlow,
  edgeGroup,
  executionIdOnPartition,
  expectStates,
  failsWith,
  flowIdOnPartition,
  flowSnapshot,
  newLane,
  NS,
  now,
  publicState,
  snapshot,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"

export const flowsGraph = (t: Tester): void => {
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
}
