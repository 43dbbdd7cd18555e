// The worker, reconciler and producer suites against the Valkey layer (standalone server), time from
// Effect's Clock so that TestClock drives them; each test builds its own layer under one key prefix.
import { inject } from "vitest"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { producerSuite } from "./producer/suite.js"
import { reconcilerSuite } from "./reconciler/suite.js"
import { workerSuite } from "./worker/suite.js"
import { testHmacSecret } from "./support/hmac.js"
import { traceSuite } from "./support/trace.js"

const layer = ValkeyBackend.layer({
  hmacSecret: testHmacSecret,
  url: inject("valkeyUrl"),
  clock: "effect",
  keyPrefix: `rt-${process.pid}-${Date.now().toString(36)}`
})
const options = { settleMs: 2, timeout: 60_000 }

workerSuite("valkey", layer, options)
reconcilerSuite("valkey", layer, options)
producerSuite("valkey", layer, options)
traceSuite("valkey", layer)
