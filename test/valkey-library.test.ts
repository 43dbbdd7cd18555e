// The Lua function library called directly, below the service boundary: a function either does all
// of its work or fails before its first write (a Valkey function is not rolled back on error). Sizes
// the boundary refuses are sent here on purpose: no helper of the library may fail on a size after
// it has written.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"

const url = inject("valkeyUrl")
const prefix = `lib-${process.pid}-${Date.now().toString(36)}`
const base = (p: number) => `${prefix}:{fp:${p}}`
const budgetBase = (m: number) => `${prefix}:{b:${m}}`

/** A raw FCALL of the library: its reply, or the error message it failed with. */
const fcall = (admin: Redis, fn: string, key: string, args: object, blobs: ReadonlyArray<string> = []) =>
  Effect.promise(() =>
    (admin.call("FCALL", fn, "1", key, "", JSON.stringify(args), ...blobs) as Promise<Array<unknown>>).then(
      (r) => ({ ok: true as const, reply: r }),
      (e: unknown) => ({ ok: false as const, error: String(e) })
    )
  )

const tagsOf = (n: number) => {
  const tags: Record<string, string> = {}
  for (let i = 0; i < n; i++) tags[`lib.tag${i}`] = `value-${i}`
  return tags
}

const lane = Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`lib-${u.slice(0, 8)}`))

/** The arguments of ff_create (and of one item of ff_create_many / a member of ff_create_flow_graph). */
const createArgs = (executionId: Ids.ExecutionId, laneId: Ids.LaneId, tags: Record<string, string>) => ({
  execution_id: executionId,
  namespace: "lib",
  lane_id: laneId,
  execution_kind: "k",
  priority: 0,
  creator_identity: "",
  payload_encoding: "",
  tags,
  required_capabilities: ""
})

describe("valkey function library", () => {
  // the layer loads the library; the tests then call it directly
  layer(ValkeyBackend.layer({ url, keyPrefix: prefix, clock: "effect" }), { timeout: 60_000 })((it) => {
    const admin = () =>
      Effect.acquireRelease(
        Effect.sync(() => new Redis(url, { maxRetriesPerRequest: 1 })),
        (c) => Effect.promise(() => c.quit())
      )

    describe("a helper never fails on a size after a write", () => {
      it.scoped("ff_create with 4,000 tags stores them all and the execution is claimable", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const p = Ids.executionPartition(id)
          const out = yield* fcall(r, "ff_create", base(p), createArgs(id, l, tagsOf(4000)), ["", ""])
          expect(out).toMatchObject({ ok: true, reply: [1, "OK", expect.anything(), id, "waiting"] })
          expect(yield* Effect.promise(() => r.hlen(`${base(p)}:e:${id}:tags`))).toBe(4000)
          // the lane is registered by the layer after a create; here the test does it
          yield* Effect.promise(() => r.zadd(`${prefix}:hint:${l}`, "0", String(p)))
          const h = yield* b.claim({
            lane: l,
            capabilities: { tokens: [] },
            policy: { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 30_000 }
          })
          expect(h._tag).toBe("Some")
        }))

      it.scoped("ff_create_many with [ok, 4,000 tags, ok] creates all three", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const l = yield* lane
          const flowId = yield* Ids.newFlowId
          const ids = [
            yield* Ids.executionIdForFlow(flowId),
            yield* Ids.executionIdForFlow(flowId),
            yield* Ids.executionIdForFlow(flowId)
          ]
          const p = Ids.executionPartition(ids[0]!)
          const items = ids.map((id, i) => createArgs(id, l, i === 1 ? tagsOf(4000) : {}))
          const out = yield* fcall(r, "ff_create_many", base(p), { items }, ["", "", "", "", "", ""])
          expect(out.ok).toBe(true)
          for (const id of ids) expect(yield* Effect.promise(() => r.exists(`${base(p)}:e:${id}`))).toBe(1)
          expect(yield* Effect.promise(() => r.hlen(`${base(p)}:e:${ids[1]}:tags`))).toBe(4000)
        }))

      it.scoped("ff_create_flow_graph whose third member has 4,000 tags creates the whole flow", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const flowId = yield* Ids.newFlowId
          const ids = [
            yield* Ids.executionIdForFlow(flowId),
            yield* Ids.executionIdForFlow(flowId),
            yield* Ids.executionIdForFlow(flowId)
          ]
          const p = Ids.executionPartition(ids[0]!)
          const out = yield* fcall(r, "ff_create_flow_graph", base(p), {
            flow: { flow_id: flowId, flow_kind: "dag", namespace: "lib" },
            members: ids.map((id, i) => createArgs(id, l, i === 2 ? tagsOf(4000) : {})),
            joins: [],
            edges: [{ edge_id: yield* Ids.newEdgeId, upstream: ids[0], downstream: ids[2], dependency_kind: "success_only" }]
          }, ["", "", "", "", "", ""])
          expect(out.ok).toBe(true)
          const flow = yield* b.describeFlow(flowId)
          expect(flow._tag === "Some" && flow.value.nodeCount).toBe(3)
          expect(flow._tag === "Some" && flow.value.edgeCount).toBe(1)
          expect(yield* Effect.promise(() => r.hlen(`${base(p)}:e:${ids[2]}:tags`))).toBe(4000)
        }))

      it.scoped("ff_create_budget with 2,100 dimensions stores every limit", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const budgetId = yield* Ids.newBudgetId
          const m = Ids.budgetPartition(budgetId)
          const dims = Array.from({ length: 2100 }, (_, i) => `d${i}`)
          const out = yield* fcall(r, "ff_create_budget", budgetBase(m), {
            budget_id: budgetId,
            scope_type: "tenant",
            scope_id: "t",
            enforcement_mode: "strict",
            on_hard_limit: "fail",
            on_soft_limit: "warn",
            reset_interval_ms: 0,
            dimensions: dims,
            hard: dims.map(() => 10),
            soft: dims.map(() => 5)
          })
          expect(out).toMatchObject({ ok: true, reply: [1, "OK", "", budgetId] })
          const status = yield* b.getBudgetStatus(budgetId)
          expect(Object.keys(status.hardLimits)).toHaveLength(2100)
          expect(status.hardLimits["d2099"]).toBe(10)
        }))
    })
  })
})
