// The fuzz test against the Valkey layer on a standalone server (its own key prefix).
import { inject } from "vitest"
import * as ValkeyBackend from "../../src/valkey/ValkeyBackend.js"
import { fuzzSuite } from "./harness.js"

const keyPrefix = `fz-${process.pid}-${Date.now().toString(36)}`

fuzzSuite("valkey", ValkeyBackend.layer({ url: inject("valkeyUrl"), clock: "effect", keyPrefix, hmacSecret: "none" }), { runs: 800 })
