// The conformance suite against the Valkey layer on a standalone server: one engine shared by the
// whole file (unique key prefix), time from Effect's Clock so that TestClock drives leases and delays.
import { inject } from "vitest"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { suite } from "./conformance/index.js"

const keyPrefix = `ct-${process.pid}-${Date.now().toString(36)}`

suite("valkey", ValkeyBackend.layer({ url: inject("valkeyUrl"), clock: "effect", keyPrefix }), { fresh: false })
