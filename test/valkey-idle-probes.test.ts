// An idle process's reconciler on Valkey asks the partitions what is due in a few calls per pass
// run, not one call per partition (docs/design/maintenance.md#how-passes-find-their-work): over an
// idle stretch of a reconciler with its default intervals, the functions called on a server of its
// own (standalone, and a 3-master cluster) are counted (INFO commandstats of every node) and must
// stay under a bound far below one call per partition and run (about 600-1,100 calls a second with
// the default 256 partitions before the probes went in groups).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { Maintenance } from "../src/Maintenance.js"
import { Redis } from "iovalkey"
import * as Reconciler from "../src/Reconciler.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { flowIdOnPartition, newLane, NS } from "./conformance/helpers.js"
import { testHmacSecret } from "./support/hmac.js"
import { startValkey, startValkeyCluster, type ValkeyClusterServer, type ValkeyServer } from "./support/servers.js"

/** Function calls a second an idle reconciler may send (its ten passes, a few calls each, and repairs). */
const MAX_CALLS_PER_SECOND = 40
const IDLE_MS = 3000

let server: ValkeyServer
let cluster: ValkeyClusterServer
let admins: Array<Redis> = []

beforeAll(async () => {
  ;[server, cluster] = await Promise.all([startValkey(), startValkeyCluster()])
}, 120_000)

afterAll(async () => {
  await Promise.all(admins.map((a) => a.quit()))
  await Promise.all([server?.stop(), cluster?.stop()])
}, 60_000)

/** Calls of ff_* functions (FCALL and FCALL_RO) so far, over the servers of `urls`. */
const functionCalls = async (urls: ReadonlyArray<string>): Promise<number> => {
  let n = 0
  for (const url of urls) {
    const admin = new Redis(url, { maxRetriesPerRequest: 1 })
    admins.push(admin)
    const info = await admin.info("commandstats")
    for (const m of info.matchAll(/^cmdstat_fcall(?:_ro)?:calls=(\d+)/gm)) n += Number(m[1])
  }
  return n
}

/** An idle reconciler's function calls a second on the servers of `urls`. */
const idleRate = (backend: ReturnType<typeof ValkeyBackend.layer>, urls: ReadonlyArray<string>) =>
  Effect.scoped(Effect.gen(function*() {
    yield* Layer.build(Reconciler.layer().pipe(Layer.provide(backend)))
    // the passes' first runs (at start) are over
    yield* Effect.sleep("1 second")
    const before = yield* Effect.promise(() => functionCalls(urls))
    yield* Effect.sleep(`${IDLE_MS} millis`)
    const after = yield* Effect.promise(() => functionCalls(urls))
    return ((after - before) * 1000) / IDLE_MS
  }))

describe("valkey idle reconciler", () => {
  it.live("standalone: an idle reconciler's calls per second stay under the bound", () =>
    Effect.gen(function*() {
      const backend = ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "idle" })
      const rate = yield* idleRate(backend, [server.url])
      console.log(`idle reconciler, standalone: ${rate.toFixed(1)} function calls/s`)
      expect(rate).toBeLessThan(MAX_CALLS_PER_SECOND)
    }), 30_000)

  it.live("cluster: an idle reconciler's calls per second stay under the bound", () =>
    Effect.gen(function*() {
      const backend = ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: cluster.nodes, keyPrefix: "idle" })
      const rate = yield* idleRate(backend, cluster.ports.map((p) => `redis://127.0.0.1:${p}`))
      console.log(`idle reconciler, cluster: ${rate.toFixed(1)} function calls/s`)
      expect(rate).toBeLessThan(MAX_CALLS_PER_SECOND)
    }), 60_000)

  const shareBatch = Effect.gen(function*() {
      const b = yield* EngineBackend
      const m = yield* Maintenance
      const lane = yield* newLane()
      // each delayed a second from its own creation (the loop may take longer than a fixed delay)
      for (let p = 0; p < 256; p += 2) {
        const executionId = yield* Ids.executionIdForFlow(yield* flowIdOnPartition(p))
        const created = yield* b.createExecution({
          namespace: NS,
          executionKind: "k",
          executionId,
          laneId: lane,
          delayUntil: Date.now() + 1000
        })
        expect(created).toMatchObject({ _tag: "Created" })
      }
      yield* Effect.sleep("1100 millis")
      let total = 0
      for (let run = 1; run <= 13; run++) {
        const r = yield* m.promoteDelayed({ batchSize: 10 })
        expect(r.processed).toBe(run < 13 ? 10 : 8)
        expect(r.more).toBe(run < 13)
        total += r.processed
      }
      expect(total).toBe(128)
      expect(yield* m.promoteDelayed({ batchSize: 10 })).toEqual({ pass: "promoteDelayed", processed: 0, more: false })
    })

  it.live("standalone: the grouped probes share the batch (due work on 128 partitions, promoted 10 a run)", () =>
    shareBatch.pipe(
      Effect.provide(ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "share" }))
    ), 30_000)

  it.live("cluster: the grouped probes share the batch (due work on 128 partitions, promoted 10 a run)", () =>
    shareBatch.pipe(
      Effect.provide(ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: cluster.nodes, keyPrefix: "share" }))
    ), 60_000)
})
