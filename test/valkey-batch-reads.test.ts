// What the batch calls of a standalone server read. A batch of claims (ff_claim_lane,
// ff_complete_claim: completeAndClaim) reads the candidates of a partition's eligible index ahead,
// for several of its claims, instead of two entries per claim (claim.lua, "the candidates a batch
// of claims read ahead"): the claims still come in claim order (priority, then creation, then id),
// also when a claim in the middle of the batch takes the general path (an attempt timeout) and
// when the index spans several buckets. A batch of creations finds the id buckets of its ids in
// the partition's id directory, read once, also when the directory has grown past 256 bounds
// (ids.lua). Counted with the server's command statistics, on a server of its own.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import { startValkey, type ValkeyServer } from "./support/servers.js"
import { commandCalls } from "./support/valkeyLibrary.js"

let server: ValkeyServer
let admin: Redis
const keyPrefix = `br-${process.pid}`

beforeAll(async () => {
  server = await startValkey()
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
}, 60_000)

afterAll(async () => {
  await admin?.quit()
  await server?.stop()
}, 60_000)

/** How many times the server has run `command` (inside functions too). */
const calls = (command: string) => commandCalls(admin, command)

const ns = Ids.unsafe.namespace("ca")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
  leaseTtlMs: 30_000
}
const PRIORITIES = [0, 5, 9] as const
const timeout = JSON.stringify({ timeout_policy: { attempt_timeout_ms: 60_000 } })

describe("valkey: what the batch calls read", () => {
  const layer = Layer.suspend(() => ValkeyBackend.layer({ url: server.url, keyPrefix, hmacSecret: testHmacSecret }))

  it.live("160 executions on one partition, claimed 64 at a time: claim order, and few reads", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const laneId = Ids.unsafe.laneId(`ca-${(yield* Ids.randomUuid).slice(0, 8)}`)
      // 4 calls of 40, a few milliseconds apart (each call's executions share their creation
      // time); priorities cycle; two executions with an attempt timeout take the general path
      const made: Array<{ id: Ids.ExecutionId; priority: number; call: number }> = []
      for (let call = 0; call < 4; call++) {
        const items = []
        for (let i = 0; i < 40; i++) {
          const id = yield* Ids.executionIdSolo(laneId)
          const priority = PRIORITIES[(i + call) % 3]!
          made.push({ id, priority, call })
          items.push({
            executionId: id,
            namespace: ns,
            laneId,
            executionKind: "ca",
            priority,
            inputPayload: new TextEncoder().encode(`{"i":${i}}`),
            ...((call === 1 && i === 7) || (call === 2 && i === 20) ? { policy: timeout } : {})
          })
        }
        yield* b.createExecutions(items)
        yield* Effect.sleep("3 millis")
      }
      const expected = [...made].sort((x, y) =>
        y.priority - x.priority || x.call - y.call || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)
      ).map((x) => x.id)

      const zrange = yield* calls("zrange")
      const lookups = yield* calls("zrevrangebylex")
      const claimed: Array<string> = []
      for (const max of [64, 64, 64]) {
        const r = yield* b.completeAndClaim([], { args: { lane: laneId, capabilities: { tokens: [] }, policy }, max })
        for (const c of r.claimed) claimed.push(Either.getOrThrow(decodeHandle("valkey", c.handle)).executionId)
      }
      const reads = (yield* calls("zrange")) - zrange
      const bucketLookups = (yield* calls("zrevrangebylex")) - lookups

      expect(claimed).toEqual(expected)
      // a claim read two entries (and a partition's reclaim index once per batch): 160 and more
      // ZRANGEs; read ahead, a batch reads 2, 4, 8, ... entries (a bucket of 48 at most per
      // ZRANGE), again from 2 after the general path's claim
      expect(reads).toBeLessThanOrEqual(60)
      // the removals find each entry's bucket from the read (also once the first bucket emptied
      // and the next one took its name): no directory lookup
      expect(bucketLookups).toBe(0)
    }).pipe(Effect.provide(layer)))

  it.live("one lane on three partitions, claimed 64 at a time: one claim order over the partitions", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const laneId = Ids.unsafe.laneId(`cp-${(yield* Ids.randomUuid).slice(0, 8)}`)
      // 6 calls of 30, each on the partitions in turn: a partition's run of candidates is cut by
      // another's better ones (priority, then creation), so a batch that stayed on a partition
      // past its bound (the next partition's hint) would claim out of order
      const made: Array<{ id: Ids.ExecutionId; priority: number; call: number }> = []
      for (let call = 0; call < 6; call++) {
        const items = []
        for (let i = 0; i < 30; i++) {
          const id = `{fp:${[11, 12, 13][(i + call) % 3]}}:${yield* Ids.randomUuid}` as Ids.ExecutionId
          const priority = PRIORITIES[Math.floor(i / 10)]!
          made.push({ id, priority, call })
          items.push({ executionId: id, namespace: ns, laneId, executionKind: "cp", priority })
        }
        yield* b.createExecutions(items)
        yield* Effect.sleep("3 millis")
      }
      const claimed: Array<string> = []
      for (const max of [64, 64, 64]) {
        const r = yield* b.completeAndClaim([], { args: { lane: laneId, capabilities: { tokens: [] }, policy }, max })
        for (const c of r.claimed) claimed.push(Either.getOrThrow(decodeHandle("valkey", c.handle)).executionId)
      }
      // by priority, then creation; ties (one call's executions of one priority) in any order
      const key = (id: string) => {
        const m = made.find((x) => x.id === id)!
        return `${9 - m.priority}:${m.call}`
      }
      expect(claimed.length).toBe(made.length)
      expect(new Set(claimed).size).toBe(made.length)
      expect(claimed.map(key)).toEqual(made.map((x) => x.id).map(key).sort())
    }).pipe(Effect.provide(layer)))

  it.live("a batch of 1 000 creations on a partition of 28 000 ids: its id directory read once, no lookup per id", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const laneId = Ids.unsafe.laneId(`ids-${(yield* Ids.randomUuid).slice(0, 8)}`)
      const batch = (n: number) =>
        Effect.gen(function*() {
          const items = []
          for (let i = 0; i < n; i++) {
            items.push({ executionId: yield* Ids.executionIdSolo(laneId), namespace: ns, laneId, executionKind: "ids" })
          }
          const res = yield* b.createExecutions(items)
          expect(res.every((r) => r._tag === "Created")).toBe(true)
        })
      for (let i = 0; i < 28; i++) yield* batch(1_000)
      const dir = `${keyPrefix}:{fp:${Ids.executionPartition(yield* Ids.executionIdSolo(laneId))}}:i:ids`
      // buckets of 32 to 64 ids: more than 256 bounds
      expect(yield* Effect.promise(() => admin.zcard(dir))).toBeGreaterThan(256)
      const lookups = yield* calls("zrevrangebylex")
      const reads = yield* calls("zrange")
      yield* batch(1_000)
      // the layer sends 100 creations a call: each call looks up its first id's bucket and its
      // first eligible entry's (ZREVRANGEBYLEX), then reads the id directory (one ZRANGE: at most 8 bounds per id it expects
      // to add, here about 7) and keeps it current through its splits; before, past 256 bounds,
      // each id was looked up
      expect(yield* Effect.promise(() => admin.zcard(dir))).toBeLessThanOrEqual(800)
      expect((yield* calls("zrevrangebylex")) - lookups).toBeLessThanOrEqual(20)
      // (the eligible buckets' splits read with ZRANGE as well: about one per 24 ids)
      expect((yield* calls("zrange")) - reads).toBeLessThanOrEqual(80)
    }).pipe(Effect.provide(layer)), 120_000)
})
