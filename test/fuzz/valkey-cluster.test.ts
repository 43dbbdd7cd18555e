// The fuzz test against the Valkey layer on the 3-master cluster (its own key prefix).
import { inject } from "vitest"
import * as ValkeyBackend from "../../src/valkey/ValkeyBackend.js"
import { parseClusterUrl } from "../support/servers.js"
import { fuzzSuite } from "./harness.js"

const keyPrefix = `fzc-${process.pid}-${Date.now().toString(36)}`

fuzzSuite(
  "valkey cluster",
  ValkeyBackend.layer({ nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix, hmacSecret: "none" }),
  { runs: 500 }
)
