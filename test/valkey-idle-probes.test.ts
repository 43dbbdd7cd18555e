// An idle process's reconciler on Valkey asks the partitions what is due in a few calls per pass
// run, not one call per partition (docs/design/maintenance.md#how-passes-find-their-work): over an
// idle stretch of a reconciler with its default intervals, the functions called on a server of its
// own are counted (INFO commandstats) and must stay under a bound far below one call per partition
// and run (about 1,100 calls a second with the default 256 partitions).
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { Redis } from "iovalkey"
import * as Reconciler from "../src/Reconciler.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import { startValkey, type ValkeyServer } from "./support/servers.js"

/** Function calls a second an idle reconciler may send (its ten passes, a few calls each, and repairs). */
const MAX_CALLS_PER_SECOND = 40
const IDLE_MS = 3000

let server: ValkeyServer
let admin: Redis

beforeAll(async () => {
  server = await startValkey()
  admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
}, 60_000)

afterAll(async () => {
  await admin?.quit()
  await server?.stop()
}, 60_000)

/** Calls of ff_* functions (FCALL and FCALL_RO) so far. */
const functionCalls = async (): Promise<number> => {
  const info = await admin.info("commandstats")
  let n = 0
  for (const m of info.matchAll(/^cmdstat_fcall(?:_ro)?:calls=(\d+)/gm)) n += Number(m[1])
  return n
}

describe("valkey idle reconciler", () => {
  it.live("an idle reconciler's calls per second stay under the bound", () =>
    Effect.gen(function*() {
      const live = Reconciler.layer().pipe(
        Layer.provide(ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "idle" }))
      )
      const rate = yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(live)
        // the passes' first runs (at start) are over
        yield* Effect.sleep("1 second")
        const before = yield* Effect.promise(functionCalls)
        yield* Effect.sleep(`${IDLE_MS} millis`)
        const after = yield* Effect.promise(functionCalls)
        return ((after - before) * 1000) / IDLE_MS
      }))
      console.log(`idle reconciler: ${rate.toFixed(1)} function calls/s`)
      expect(rate).toBeLessThan(MAX_CALLS_PER_SECOND)
    }), 30_000)
})
