// The Lua function library called directly, below the service boundary: a function either does all
// of its work or fails before its first write (a Valkey function is not rolled back on error). Sizes
// the boundary refuses are sent here on purpose: no helper of the library may fail on a size after
// it has written.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Duration, Effect } from "effect"
import { EngineBackend } from "../src/EngineBackend.js"
import { Maintenance } from "../src/Maintenance.js"
import * as Ids from "../src/Ids.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import {
  adminConnection,
  claimPolicy,
  createArgs,
  fcall,
  keyBases,
  lane,
  refused,
  replyOf,
  tagsOf
} from "./support/valkeyLibrary.js"

const url = inject("valkeyUrl")
const prefix = `libw-${process.pid}-${Date.now().toString(36)}`
const { base, budgetBase } = keyBases(prefix)

describe("valkey function library: nothing written before a refusal", () => {
  // the layer loads the library; the tests then call it directly
  layer(ValkeyBackend.layer({ url, keyPrefix: prefix, clock: "effect", hmacSecret: testHmacSecret }), { timeout: 60_000 })((it) => {
    const admin = () => adminConnection(url)

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

    describe("batch items in ARGV (fi, fn)", () => {
      // ff_create_across and ff_complete_many take their items as ARGV entries after the blobs
      // (the layer's form), or as JSON objects (items): both create and complete alike.
      const lanesKey = () => `${prefix}:lanes`
      const flatCreate = (id: Ids.ExecutionId, l: Ids.LaneId, more: string) =>
        [id, "lib", l, "k", "0", "", "", "", String(Ids.executionPartition(id)), more]

      it.scoped("items in ARGV are created and completed as JSON items are; their rare arguments come as one JSON object", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const ids = [yield* Ids.executionIdSolo(l), yield* Ids.executionIdSolo(l), yield* Ids.executionIdSolo(l)]
          const p = Ids.executionPartition(ids[0]!)
          const later = 4_102_444_800_000
          const blobs = ["", "", "", "", "", ""]
          const out = yield* fcall(r, "ff_create_across", lanesKey(), { prefix, partitions: 256, fi: 9, fn: 3 }, [
            ...blobs,
            ...flatCreate(ids[0]!, l, ""),
            ...flatCreate(ids[1]!, l, JSON.stringify({ tags: { a: "1" } })),
            ...flatCreate(ids[2]!, l, JSON.stringify({ delay_until: later }))
          ])
          expect(replyOf(out)).toEqual([1, "OK", "", "OK", ids[0], "waiting", "OK", ids[1], "waiting", "OK", ids[2], "delayed"])
          expect(yield* Effect.promise(() => r.hgetall(`${base(p)}:e:${ids[1]}:tags`))).toEqual({ a: "1" })
          const handles = yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy }, 2)
          expect(handles).toHaveLength(2)
          const fences = yield* Effect.forEach(ids.slice(0, 2), (id) =>
            Effect.promise(() => r.hmget(`${base(p)}:e:${id}`, "aid", "li", "n")))
          // the second one with a result (its ARGV position), the first with a stale lease id
          const done = yield* fcall(r, "ff_complete_many", lanesKey(), { prefix, partitions: 256, fi: 4, fn: 2 }, [
            "fine",
            ids[0]!, String(Number(fences[0]![2]) - 1), fences[0]![0]!, "not-the-lease", fences[0]![2]!, String(p), "",
            ids[1]!, String(Number(fences[1]![2]) - 1), fences[1]![0]!, fences[1]![1]!, fences[1]![2]!, String(p), "1"
          ])
          const reply = replyOf(done)
          expect(reply?.slice(0, 3)).toEqual([1, "OK", ""])
          expect(JSON.parse(reply?.[3] as string)).toEqual([0, "stale_lease"])
          expect(reply?.[4]).toBe("")
          expect(yield* Effect.promise(() => r.hget(`${base(p)}:e:${ids[1]}`, "rv"))).toBe("fine")
          expect(yield* Effect.promise(() => r.hget(`${base(p)}:e:${ids[0]}`, "li"))).toBe(fences[0]![1])
          // ff_create_many (a cluster's batch) takes the same items on its partition
          const more = yield* Ids.executionIdSolo(l)
          const many = yield* fcall(r, "ff_create_many", base(p), { fi: 5, fn: 1 }, ["", "", ...flatCreate(more, l, "")])
          expect(replyOf(many)?.slice(3)).toEqual(["OK", more, "waiting"])
        }))

      it.scoped("positions outside ARGV are refused before any write", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const p = Ids.executionPartition(id)
          for (const [fi, fn] of [[3, 2], [2, 1], [3.5, 1], ["3", 1]] as const) {
            const out = yield* fcall(r, "ff_create_across", lanesKey(), { prefix, partitions: 256, fi, fn }, flatCreate(id, l, ""))
            expect(refused(out)).toBe("invalid_input")
          }
          const bad = yield* fcall(r, "ff_create_across", lanesKey(), { prefix, partitions: 256, fi: 3, fn: 1 }, flatCreate(id, l, "[1"))
          expect(refused(bad)).toBe("invalid_input")
          expect(yield* Effect.promise(() => r.exists(`${base(p)}:e:${id}`))).toBe(0)
          const none = yield* fcall(r, "ff_complete_many", lanesKey(), { prefix, partitions: 256, fi: 3, fn: 2 }, [
            id, "0", "a", "l", "1", String(p), ""
          ])
          expect(refused(none)).toBe("invalid_input")
        }))
    })

    describe("every check before the first write", () => {

      it.scoped("ff_create_many with a malformed second item creates nothing", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const l = yield* lane
          const flowId = yield* Ids.newFlowId
          const ids = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId)]
          const p = Ids.executionPartition(ids[0]!)
          const items = [createArgs(ids[0]!, l, {}), { ...createArgs(ids[1]!, l, {}), lane_id: null }]
          const out = yield* fcall(r, "ff_create_many", base(p), { items }, ["", "", "", ""])
          expect(refused(out)).toBe("invalid_input")
          for (const id of ids) expect(yield* Effect.promise(() => r.exists(`${base(p)}:e:${id}`))).toBe(0)
        }))

      it.scoped("ff_create_flow_graph with an edge to a non-member writes nothing", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const flowId = yield* Ids.newFlowId
          const ids = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId)]
          const stranger = yield* Ids.executionIdForFlow(flowId)
          const p = Ids.executionPartition(ids[0]!)
          const out = yield* fcall(r, "ff_create_flow_graph", base(p), {
            flow: { flow_id: flowId, flow_kind: "dag", namespace: "lib" },
            members: ids.map((id) => createArgs(id, l, {})),
            joins: [{ downstream: ids[1], variant: "any_of", on_satisfied: "let_run" }],
            edges: [{ edge_id: yield* Ids.newEdgeId, upstream: ids[0], downstream: stranger }]
          }, ["", "", "", ""])
          expect(refused(out)).toBe("invalid_input")
          expect((yield* b.describeFlow(flowId))._tag).toBe("None")
          for (const id of ids) expect(yield* Effect.promise(() => r.exists(`${base(p)}:e:${id}`))).toBe(0)
        }))

      it.scoped("ff_report_usage with a delta past 2^53 changes no dimension", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const budgetId = yield* Ids.newBudgetId
          yield* b.createBudget({
            budgetId,
            scopeType: "tenant",
            scopeId: "t",
            dimensions: ["a", "b"],
            hardLimits: [0, 0],
            softLimits: [0, 0]
          })
          const out = yield* fcall(r, "ff_report_usage", budgetBase(Ids.budgetPartition(budgetId)), {
            budget_id: budgetId,
            dimensions: ["a", "b"],
            deltas: [5, 1e300]
          })
          expect(refused(out)).toBe("invalid_input")
          expect((yield* b.getBudgetStatus(budgetId)).usage).toEqual({})
        }))

      it.scoped("ff_claim without a lease TTL refuses before it writes", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          const out = yield* fcall(r, "ff_claim", base(Ids.executionPartition(id)), {
            lane: l,
            worker_id: "w",
            worker_instance_id: "w-i",
            caps: [],
            lease_id: yield* Ids.newLeaseId,
            attempt_id: yield* Ids.newAttemptId
          })
          expect(refused(out)).toBe("invalid_input")
          expect((yield* b.describeExecution(id)).pipe((o) => o._tag === "Some" && o.value.publicState)).toBe("waiting")
          expect(yield* Effect.promise(() => r.hget(`${base(Ids.executionPartition(id))}:e:${id}`, "rk"))).toBeNull()
        }))

      it.scoped("ff_complete_many with a malformed second item completes nothing", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          expect(h._tag).toBe("Some")
          const s = yield* b.describeExecution(id)
          const lease = s._tag === "Some" ? s.value.currentLease : undefined
          const attempt = s._tag === "Some" ? s.value.currentAttempt : undefined
          const out = yield* fcall(r, "ff_complete_many", `${prefix}:lanes`, {
            prefix,
            partitions: 256,
            items: [
              {
                partition: Ids.executionPartition(id),
                execution_id: id,
                attempt_index: attempt?.attemptIndex,
                attempt_id: attempt?.attemptId,
                lease_id: lease?.leaseId,
                lease_epoch: lease?.leaseEpoch
              },
              { partition: Ids.executionPartition(id) }
            ]
          })
          expect(refused(out)).toBe("invalid_input")
          expect((yield* b.describeExecution(id)).pipe((o) => o._tag === "Some" && o.value.publicState)).toBe("active")
        }))

      it.scoped("numbers no command takes (a 1e300 TTL, retention or signal cap) are clamped, not failed on", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const p = Ids.executionPartition(id)
          const created = yield* fcall(r, "ff_create", base(p), {
            ...createArgs(id, l, {}),
            idempotency_key: `k-${id}`,
            dedup_ttl_ms: 1e300
          }, ["", ""])
          expect(created.ok && created.reply[1]).toBe("OK")
          const again = yield* fcall(r, "ff_create", base(p), {
            ...createArgs(yield* Ids.executionIdSolo(l), l, {}),
            idempotency_key: `k-${id}`
          }, ["", ""])
          expect(again.ok && again.reply.slice(1, 2)).toEqual(["DUPLICATE"])
          yield* Effect.promise(() => r.zadd(`${prefix}:hint:${l}`, "0", String(p)))
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag === "None") return expect.fail("nothing claimed")
          const s = yield* b.describeExecution(id)
          if (s._tag === "None" || s.value.currentLease === undefined) return expect.fail("no lease")
          const fence = {
            execution_id: id,
            attempt_index: s.value.currentLease.attemptIndex,
            lease_id: s.value.currentLease.leaseId,
            lease_epoch: s.value.currentLease.leaseEpoch
          }
          const durable = yield* fcall(r, "ff_append_frame", base(p), {
            ...fence,
            frame_type: "stdout",
            mode: "durable",
            retention_maxlen: 1e300
          }, ["x"])
          expect(durable.ok && durable.reply[1]).toBe("OK")
          const live = yield* fcall(r, "ff_append_frame", base(p), {
            ...fence,
            frame_type: "event",
            mode: "best_effort",
            ttl_ms: 1e300,
            maxlen_ceiling: 1e300
          }, ["y"])
          expect(live.ok && live.reply[1]).toBe("OK")
          const wp = yield* b.createWaitpoint(h.value, { waitpointKey: "k", expiresIn: Duration.hours(1) })
          const signalled = yield* fcall(r, "ff_deliver_signal", base(p), {
            execution_id: id,
            waitpoint_id: wp.waitpointId,
            signal_id: yield* Ids.newSignalId,
            signal_name: "go",
            token: wp.hmacToken,
            signal_maxlen: 1e300
          })
          expect(signalled.ok && signalled.reply.slice(1, 2)).toEqual(["OK"])
        }))

      it.scoped("a backoff with no initial delay and a huge multiplier schedules its retries (no nan delay)", () =>
        Effect.gen(function*() {
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          yield* b.createExecution({
            executionId: id,
            laneId: l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k",
            policy: {
              retryPolicy: {
                maxRetries: 5,
                backoff: { type: "exponential", initialDelayMs: 0, maxDelayMs: 1000, multiplier: 1e308 }
              }
            }
          })
          for (let i = 0; i < 4; i++) {
            yield* (yield* Maintenance).promoteDelayed()
            const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
            if (h._tag === "None") return expect.fail(`attempt ${i} not claimable`)
            const out = yield* b.fail(h.value, { reason: { message: "boom" }, classification: "Transient" })
            expect(out).toMatchObject({ _tag: "RetryScheduled" })
          }
        }))
    })
  })
})
