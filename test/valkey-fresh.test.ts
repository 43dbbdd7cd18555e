// The conformance suite against the Valkey layer with an empty keyspace per test (a random key prefix per
// layer build), so that the tests needing a fresh engine (empty keystore, Seeded, exact pass counts) run too;
// the layer starts without a secret (hmacSecret: "none").
import { Effect, Layer } from "effect"
import { inject } from "vitest"
import * as Ids from "../src/Ids.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { suite } from "./conformance/index.js"

const url = inject("valkeyUrl")

suite(
  "valkey (fresh keyspace per test)",
  Layer.unwrapEffect(
    Effect.map(
      Ids.randomUuid,
      (u) => ValkeyBackend.layer({ hmacSecret: "none", url, clock: "effect", keyPrefix: `cf-${u.slice(0, 13)}` })
    )
  )
)
