// The worker's two hot transitions written directly (transitions.lua, FF.claim_plain and
// FF.complete_plain): the batch functions (ff_claim_lane, ff_complete_many) take them for a core in
// the plain shape, the single ones (ff_claim, ff_complete) take the general path. The same
// executions, claimed and completed at the same times by each, must leave the same store: cores,
// inputs and results, lane counts and state sets, the lease and retention indexes and the events.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Effect, TestClock } from "effect"
import type { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import { adminConnection, fcall, fcallKeys, keyBases, lane, replyOf } from "./support/valkeyLibrary.js"

const url = inject("valkeyUrl")
const prefix = `hot-${process.pid}-${Date.now().toString(36)}`
const { base } = keyBases(prefix)

// the executions of one lane: priority, input, result, policy (an attempt timeout or a stream
// takes the general path on both sides)
const shapes = [
  { priority: 0, input: "", result: undefined, policy: undefined, frame: false },
  { priority: 0, input: "{\"n\":1}", result: "{\"n\":1}", policy: undefined, frame: false },
  { priority: 7, input: "i".repeat(100), result: "r".repeat(100), policy: undefined, frame: false },
  { priority: 0, input: "x", result: "", policy: undefined, frame: false },
  { priority: 0, input: "t", result: "ok", policy: JSON.stringify({ timeout_policy: { attempt_timeout_ms: 60_000 } }), frame: false },
  { priority: 0, input: "s", result: "ok", policy: undefined, frame: true },
  { priority: 3, input: "{}", result: "{}", policy: undefined, frame: false }
] as const

const worker = { worker_id: "w", worker_instance_id: "w-i", caps: [], lease_ttl_ms: 30_000, scan: 32 }

describe("valkey function library: the worker's hot transitions", () => {
  layer(ValkeyBackend.layer({ url, keyPrefix: prefix, clock: "effect", hmacSecret: testHmacSecret }), { timeout: 60_000 })((it) => {
    const admin = () => adminConnection(url)
    // Creates the shapes on two new lanes, one millisecond apart (each shape at the same time on
    // both); their lanes, partition bases and ids.
    const created = Effect.gen(function*() {
      const b = yield* EngineBackend
      const sides = [{ l: yield* lane, ids: [] as Array<Ids.ExecutionId> }, { l: yield* lane, ids: [] as Array<Ids.ExecutionId> }]
      for (const s of shapes) {
        for (const side of sides) {
          const id = yield* Ids.executionIdSolo(side.l)
          yield* b.createExecution({
            executionId: id,
            laneId: side.l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k",
            priority: s.priority,
            inputPayload: new TextEncoder().encode(s.input),
            ...(s.policy === undefined ? {} : { policy: s.policy })
          })
          side.ids.push(id)
        }
        yield* TestClock.adjust("1 millis")
      }
      const [general, fast] = sides.map((side) => ({ ...side, B: base(Ids.executionPartition(side.ids[0]!)) }))
      return { general: general!, fast: fast! }
    })

    // The claims' fences in claim order: {execution id, attempt index, attempt id, lease id, lease epoch}.
    type Fence = { execution_id: Ids.ExecutionId; attempt_index: string; attempt_id: string; lease_id: string; lease_epoch: string }
    const fenceOf = (f: ReadonlyArray<unknown>): Fence => ({
      execution_id: String(f[0]) as Ids.ExecutionId,
      attempt_index: String(f[1]),
      attempt_id: String(f[2]),
      lease_id: String(f[3]),
      lease_epoch: String(f[4])
    })

    // The store of a lane's executions, every id and the lane named by its position.
    const dump = (r: Redis, l: string, B: string, ids: ReadonlyArray<string>) =>
      Effect.promise(async () => {
        const norm = (s: string) => {
          let out = s.split(l).join("LANE")
          ids.forEach((e, i) => {
            out = out.split(e).join(`E${i}`)
          })
          return out
        }
        const execs = []
        for (const e of ids) {
          const core = `${B}:e:${e}`
          const fields = await r.hgetall(core)
          execs.push({
            core: Object.keys(fields).map((f) => [f, norm(fields[f]!)]),
            result: await r.get(`${core}:result`),
            payload: await r.get(`${core}:payload`),
            leaseExpiry: await r.zscore(`${B}:i:lease_expiry`, e),
            retention: await r.zscore(`${B}:i:retention`, e),
            attemptTimeout: await r.zscore(`${B}:i:attempt_timeout`, e)
          })
        }
        const states: Record<string, Array<string>> = {}
        for (const s of ["active", "completed"]) {
          states[s] = (await r.zrange(`${B}:l:${l}:s=${s}`, 0, -1)).map(norm)
        }
        const events: Array<string> = []
        const entries = (await r.xrange(`${B}:ev`, "-", "+")) as Array<[string, Array<string>]>
        for (const [, kv] of entries) {
          for (let j = 0; j < kv.length; j += 2) {
            const [e] = kv[j + 1]!.split("\0")
            if (ids.includes(e!)) events.push(norm(kv[j + 1]!))
          }
        }
        return { execs, counts: await r.hgetall(`${B}:l:${l}:n`), states, events }
      })

    const uuid = (k: number, i: number) => `0000000${k}-0000-4000-8000-${String(i).padStart(12, "0")}`
    const leaseIds = shapes.map((_, i) => uuid(1, i))
    const attemptIds = shapes.map((_, i) => uuid(2, i))

    // The shapes created on two lanes and claimed: one ff_claim per execution on the general side,
    // one ff_claim_lane for all on the fast one; each side's fences in claim order.
    const claimed = (r: Redis) =>
      Effect.gen(function*() {
        const { fast, general } = yield* created
        yield* TestClock.adjust("3 millis")
        const generalFences: Array<Fence> = []
        for (let i = 0; i < shapes.length; i++) {
          const out = replyOf(yield* fcall(r, "ff_claim", general.B, { ...worker, lane: general.l, lease_id: leaseIds[i], attempt_id: attemptIds[i] }))
          expect(out?.[1]).toBe("OK")
          generalFences.push(fenceOf(out!.slice(3)))
        }
        const batch = replyOf(
          yield* fcallKeys(r, "ff_claim_lane", [`${prefix}:hint:${fast.l}`], {
            ...worker,
            lane: fast.l,
            prefix,
            partitions: 256,
            max_visits: 8,
            lease_ids: leaseIds,
            attempt_ids: attemptIds
          })
        )
        expect(batch?.[1]).toBe("OK")
        const fastFences = Array.from({ length: shapes.length }, (_, i) => fenceOf(batch!.slice(4 + 8 * i)))
        expect(fastFences.map((f) => fast.ids.indexOf(f.execution_id))).toEqual(
          generalFences.map((f) => general.ids.indexOf(f.execution_id))
        )
        return { general: { ...general, fences: generalFences }, fast: { ...fast, fences: fastFences } }
      })

    // Completes the fences: one ff_complete each on the general side, one ff_complete_many (items in
    // ARGV) on the fast one; each execution's result is its shape's. The replies, per fence (""
    // for a completion, else the refusal), the lane named LANE.
    type Side = { l: string; B: string; ids: ReadonlyArray<Ids.ExecutionId> }
    const completeBoth = (r: Redis, general: Side, gf: ReadonlyArray<Fence>, fast: Side, ff: ReadonlyArray<Fence>) =>
      Effect.gen(function*() {
        const resultOf = (side: Side, f: Fence) => shapes[side.ids.indexOf(f.execution_id)]!.result
        const generalReplies: Array<string> = []
        for (const f of gf) {
          const res = resultOf(general, f)
          const out = replyOf(yield* fcall(r, "ff_complete", general.B, f, res === undefined ? [] : [res]))
          generalReplies.push(out?.[0] === 1 ? "" : JSON.stringify(out).split(general.l).join("LANE"))
        }
        const blobs: Array<string> = []
        const items: Array<string> = []
        for (const f of ff) {
          const res = resultOf(fast, f)
          let blob = ""
          if (res !== undefined) {
            blobs.push(res)
            blob = String(blobs.length)
          }
          items.push(f.execution_id, f.attempt_index, f.attempt_id, f.lease_id, f.lease_epoch, String(Ids.executionPartition(f.execution_id)), blob)
        }
        const many = replyOf(
          yield* fcallKeys(r, "ff_complete_many", [`${prefix}:lanes`], { prefix, partitions: 256, fi: 3 + blobs.length, fn: ff.length }, [...blobs, ...items])
        )
        const fastReplies = (many ?? []).slice(3).map((x) => x === "" ? "" : JSON.stringify(JSON.parse(String(x))).split(fast.l).join("LANE"))
        expect(fastReplies).toEqual(generalReplies)
        return generalReplies
      })

    it.scoped("ff_claim_lane and ff_complete_many write what ff_claim and ff_complete write", () =>
      Effect.gen(function*() {
        const r = yield* admin()
        const b = yield* EngineBackend
        const n = shapes.length
        const { fast, general } = yield* claimed(r)
        // a stream opened by the attempt of the shape that has one
        for (const side of [general, fast]) {
          const j = shapes.findIndex((s) => s.frame)
          const f = side.fences.find((x) => x.execution_id === side.ids[j])!
          yield* fcall(r, "ff_append_frame", side.B, { ...f, frame_type: "stdout", mode: "durable", encoding: "" }, ["frame"])
        }
        expect(yield* dump(r, fast.l, fast.B, fast.ids)).toEqual(yield* dump(r, general.l, general.B, general.ids))
        yield* TestClock.adjust("2 millis")
        expect(yield* completeBoth(r, general, general.fences, fast, fast.fences)).toEqual(shapes.map(() => ""))
        const after = yield* dump(r, fast.l, fast.B, fast.ids)
        expect(after).toEqual(yield* dump(r, general.l, general.B, general.ids))
        expect(after.counts).toEqual({ waiting: "0", active: "0", completed: String(n) })
        // both read back alike
        for (let i = 0; i < n; i++) {
          const [x, y] = [yield* b.describeExecution(general.ids[i]!), yield* b.describeExecution(fast.ids[i]!)]
          if (x._tag !== "Some" || y._tag !== "Some") return expect.unreachable("no snapshot")
          expect([y.value.publicState, y.value.attemptHistory.length]).toEqual([x.value.publicState, x.value.attemptHistory.length])
        }
      }))

    it.scoped("a batch's completions refused (stale fence, expired lease, done already) answer and write as ff_complete's", () =>
      Effect.gen(function*() {
        const r = yield* admin()
        const { fast, general } = yield* claimed(r)
        yield* TestClock.adjust("2 millis")
        // a lease id, an attempt id and an epoch that are not the lease's, then the right fences
        const spoil = (fences: ReadonlyArray<Fence>) =>
          fences.map((f, i) =>
            i === 0 ? { ...f, lease_id: uuid(3, 0) } : i === 1 ? { ...f, attempt_id: uuid(3, 1) } : i === 2 ? { ...f, lease_epoch: "2" } : f
          )
        const first = yield* completeBoth(r, general, spoil(general.fences).slice(0, 4), fast, spoil(fast.fences).slice(0, 4))
        expect(first.map((x) => x === "" ? "" : JSON.parse(x)[1])).toEqual(["stale_lease", "stale_lease", "stale_lease", ""])
        // completed already: not active
        const again = yield* completeBoth(r, general, general.fences.slice(3, 4), fast, fast.fences.slice(3, 4))
        expect(JSON.parse(again[0]!)[1]).toBe("execution_not_active")
        expect(yield* dump(r, fast.l, fast.B, fast.ids)).toEqual(yield* dump(r, general.l, general.B, general.ids))
        // the other leases expire: each completion marks its own
        yield* TestClock.adjust("31 seconds")
        const late = yield* completeBoth(r, general, general.fences.slice(4), fast, fast.fences.slice(4))
        expect(late.map((x) => JSON.parse(x)[1])).toEqual(late.map(() => "lease_expired"))
        expect(yield* dump(r, fast.l, fast.B, fast.ids)).toEqual(yield* dump(r, general.l, general.B, general.ids))
      }))
  })
})
