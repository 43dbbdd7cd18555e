// The worker, reconciler and producer suites against the Valkey layer (standalone server), time from
// Effect's Clock so that TestClock drives them; each test builds its own layer under one key prefix.
import { Effect } from "effect"
import { Redis } from "iovalkey"
import { inject } from "vitest"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { producerSuite } from "./producer/suite.js"
import { reconcilerSuite } from "./reconciler/suite.js"
import { workerSuite } from "./worker/suite.js"
import { wakeupSuite } from "./worker/wakeups.js"
import { testHmacSecret } from "./support/hmac.js"
import { traceSuite } from "./support/trace.js"

const layer = ValkeyBackend.layer({
  hmacSecret: testHmacSecret,
  url: inject("valkeyUrl"),
  clock: "effect",
  keyPrefix: `rt-${process.pid}-${Date.now().toString(36)}`
})
const options = { settleMs: 2, timeout: 60_000 }

/** Kills every subscriber connection of the server (the layer's wake-up connection among them). */
const dropWakeups = Effect.acquireUseRelease(
  Effect.sync(() => new Redis(inject("valkeyUrl"))),
  (r) => Effect.promise(() => r.call("CLIENT", "KILL", "TYPE", "pubsub")),
  (r) => Effect.promise(() => r.quit())
)

workerSuite("valkey", layer, options)
wakeupSuite("valkey", layer, { ...options, dropWakeups })
reconcilerSuite("valkey", layer, options)
producerSuite("valkey", layer, options)
traceSuite("valkey", layer)
