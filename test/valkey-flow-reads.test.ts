// describeFlow on Valkey reads the flow's members that have a join group (`B:f:<id>:groups`), not
// every member: its cost follows the groups it returns (docs/design/valkey.md#key-layout). A flow
// written before that set was kept (no `gs` in its record) is read by walking its members, as
// before. Counted with the server's command statistics, on a server of its own.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Layer, Option } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import { startValkey, type ValkeyServer } from "./support/servers.js"
import { commandCalls } from "./support/valkeyLibrary.js"

let server: ValkeyServer
let admin: Redis
const keyPrefix = `fr-${process.pid}`

beforeAll(async () => {
  server = await startValkey({ config: { "slowlog-log-slower-than": "0", "slowlog-max-len": "100000" } })
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
}, 60_000)

afterAll(async () => {
  await admin?.quit()
  await server?.stop()
}, 60_000)

/** How many times the server has run `command` (inside functions too). */
const calls = (command: string) => commandCalls(admin, command)

const ns = Ids.unsafe.namespace("fr")
const MEMBERS = 150

/** A flow of MEMBERS members and two edges into its last member (one join group, with policy). */
const flowWithOneGroup = Effect.gen(function*() {
  const b = yield* EngineBackend
  const flowId = yield* Ids.newFlowId
  const laneId = Ids.unsafe.laneId(`fr-${flowId.slice(0, 8)}`)
  const members: Array<M.CreateExecutionArgsInput> = []
  for (let i = 0; i < MEMBERS; i++) {
    members.push({ executionId: yield* Ids.executionIdForFlow(flowId), namespace: ns, laneId, executionKind: "fr" })
  }
  const last = members[MEMBERS - 1]!.executionId
  const edges: Array<M.FlowGraphEdge> = []
  for (const up of [0, 1]) {
    edges.push({
      edgeId: yield* Ids.newEdgeId,
      upstreamExecutionId: members[up]!.executionId,
      downstreamExecutionId: last,
      dependencyKind: "success_only"
    })
  }
  yield* b.createFlowGraph({
    flow: { flowId, namespace: ns },
    members,
    edges,
    joins: [{ downstreamExecutionId: last, policy: { _tag: "any_of", onSatisfied: "let_run" } }]
  })
  return { flowId, last, members }
})

describe("valkey: describeFlow reads the members with a join group", () => {
  const layer = Layer.suspend(() => ValkeyBackend.layer({ url: server.url, keyPrefix, hmacSecret: testHmacSecret }))

  it.live("a flow of 150 members with one group: describeFlow reads 3 hashes (flow, tags, the group)", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const { flowId, last } = yield* flowWithOneGroup
      const before = yield* calls("hgetall")
      const snap = Option.getOrThrow(yield* b.describeFlow(flowId))
      const read = (yield* calls("hgetall")) - before
      expect(snap.nodeCount).toBe(MEMBERS)
      expect(snap.edgeGroups).toEqual([expect.objectContaining({
        downstreamExecutionId: last,
        policy: { _tag: "any_of", onSatisfied: "let_run" },
        totalDeps: 2
      })])
      expect(read).toBe(3)
    }).pipe(Effect.provide(layer)), 60_000)

  it.live("groups made by every path are listed: setEdgeGroupPolicy, applyDependencyToChild, extendFlow", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const { flowId, members } = yield* flowWithOneGroup
      const [a, c, d, g] = [2, 3, 4, 5].map((i) => members[i]!.executionId) as [Ids.ExecutionId, Ids.ExecutionId, Ids.ExecutionId, Ids.ExecutionId]
      // a policy, then an edge staged and applied into c
      yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: c, policy: { _tag: "any_of", onSatisfied: "let_run" } })
      const rev = Option.getOrThrow(yield* b.describeFlow(flowId)).graphRevision
      const edgeId = yield* Ids.newEdgeId
      yield* b.stageDependencyEdge({ flowId, edgeId, upstreamExecutionId: a, downstreamExecutionId: c, dependencyKind: "success_only", expectedGraphRevision: rev })
      yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: a, downstreamExecutionId: c, dependencyKind: "success_only" })
      // an edge applied into g, which has no group yet
      const edgeG = yield* Ids.newEdgeId
      yield* b.stageDependencyEdge({ flowId, edgeId: edgeG, upstreamExecutionId: a, downstreamExecutionId: g, dependencyKind: "success_only", expectedGraphRevision: rev + 1 })
      yield* b.applyDependencyToChild({ flowId, edgeId: edgeG, upstreamExecutionId: a, downstreamExecutionId: g, dependencyKind: "success_only" })
      // an edge into d, and a new member with an edge and a join, by extendFlow
      const e = yield* Ids.executionIdForFlow(flowId)
      yield* b.extendFlow({
        flowId,
        members: [{ executionId: e, namespace: ns, laneId: Ids.unsafe.laneId("fr-x"), executionKind: "fr" }],
        edges: [
          { edgeId: yield* Ids.newEdgeId, upstreamExecutionId: a, downstreamExecutionId: d, dependencyKind: "success_only" },
          { edgeId: yield* Ids.newEdgeId, upstreamExecutionId: d, downstreamExecutionId: e, dependencyKind: "success_only" }
        ],
        joins: [{ downstreamExecutionId: e, policy: { _tag: "quorum", k: 1, onSatisfied: "let_run" } }]
      })
      const snap = Option.getOrThrow(yield* b.describeFlow(flowId))
      const listed = new Set(snap.edgeGroups.map((g) => g.downstreamExecutionId))
      expect(listed).toEqual(new Set([members[MEMBERS - 1]!.executionId, c, d, e, g]))
    }).pipe(Effect.provide(layer)), 60_000)

  it.live("a flow written before the set was kept (no gs) reads the same, by walking its members", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const { flowId } = yield* flowWithOneGroup
      const now = Option.getOrThrow(yield* b.describeFlow(flowId))
      const partition = Ids.flowPartition(flowId)
      const flowKey = `${keyPrefix}:{fp:${partition}}:f:${flowId}`
      yield* Effect.promise(() => admin.hdel(flowKey, "gs"))
      yield* Effect.promise(() => admin.del(`${flowKey}:groups`))
      const before = yield* calls("hgetall")
      expect(Option.getOrThrow(yield* b.describeFlow(flowId))).toEqual(now)
      expect((yield* calls("hgetall")) - before).toBe(2 + MEMBERS)
    }).pipe(Effect.provide(layer)), 60_000)

  it.live("the wait of cancelFlow polls the flow's state (ff_flow_state), not describeFlow", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      // more members owed than Valkey cancels inline (100): the flow stays cancelling, nobody drains
      const { flowId } = yield* flowWithOneGroup
      yield* Effect.promise(() => admin.call("SLOWLOG", "RESET"))
      const exit = yield* Effect.exit(
        b.cancelFlow({ flowId, policy: "CancelAll", wait: { _tag: "WaitTimeout", timeout: Duration.millis(350) } })
      )
      expect(Exit.isFailure(exit)).toBe(true)
      const log = (yield* Effect.promise(() => admin.call("SLOWLOG", "GET", "-1"))) as Array<[number, number, number, Array<string>]>
      const fcalls = log.map((e) => `${e[3][0] ?? ""} ${e[3][1] ?? ""}`.toLowerCase()).filter((c) => c.startsWith("fcall"))
      expect(fcalls.filter((c) => c.endsWith("ff_describe_flow"))).toEqual([])
      expect(fcalls.filter((c) => c.endsWith("ff_flow_state")).length).toBeGreaterThanOrEqual(2)
      expect((Option.getOrThrow(yield* b.describeFlow(flowId))).publicFlowState).toBe("cancelling")
    }).pipe(Effect.provide(layer)), 60_000)
})
