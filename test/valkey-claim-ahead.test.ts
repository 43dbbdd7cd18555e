// A batch of claims on a standalone server (ff_claim_lane, ff_complete_claim: completeAndClaim)
// reads the candidates of a partition's eligible index ahead, for several of its claims, instead
// of two entries per claim (claim.lua, "the candidates a batch of claims read ahead"). The claims
// still come in claim order (priority, then creation, then id), also when a claim in the middle of
// the batch takes the general path (an attempt timeout) and when the index spans several buckets,
// and the batch's reads stay few. Counted with the server's command statistics, on a server of its
// own.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Layer } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import { startValkey, type ValkeyServer } from "./support/servers.js"

let server: ValkeyServer
let admin: Redis
const keyPrefix = `ca-${process.pid}`

beforeAll(async () => {
  server = await startValkey()
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
}, 60_000)

afterAll(async () => {
  await admin?.quit()
  await server?.stop()
}, 60_000)

/** How many times the server has run `command` (inside functions too). */
const calls = (command: string) =>
  Effect.promise(async () => {
    const info = await admin.info("commandstats")
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? "0")
  })

const ns = Ids.unsafe.namespace("ca")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
  leaseTtlMs: 30_000
}
const PRIORITIES = [0, 5, 9] as const
const timeout = JSON.stringify({ timeout_policy: { attempt_timeout_ms: 60_000 } })

describe("valkey: a batch of claims reads its candidates ahead", () => {
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
})
