// The conformance suite against the Valkey layer on a 3-master Valkey Cluster: the library is loaded on
// every primary and every FCALL stays on one slot ({fp:N} hash tags). One engine shared by the file.
import { inject } from "vitest"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { suite } from "./conformance/index.js"
import { parseClusterUrl } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"

const keyPrefix = `cc-${process.pid}-${Date.now().toString(36)}`

suite(
  "valkey cluster",
  ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix }),
  { fresh: false }
)
