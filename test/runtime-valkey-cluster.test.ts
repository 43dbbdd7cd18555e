// Wake-ups, due timers and prompt cancellation of the worker runtime, and the reconciler, on a 3-master Valkey Cluster,
// time from Effect's Clock: the wake-ups follow the claim hints a cluster's layer writes after each
// call, and revocations are published inside the call.
import { Effect } from "effect"
import { Cluster } from "iovalkey"
import { inject } from "vitest"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { parseClusterUrl } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"
import { reconcilerSuite } from "./reconciler/suite.js"
import { wakeupSuite } from "./worker/wakeups.js"

const nodes = parseClusterUrl(inject("valkeyClusterUrl"))
const layer = ValkeyBackend.layer({
  hmacSecret: testHmacSecret,
  nodes,
  clock: "effect",
  keyPrefix: `rtc-${process.pid}-${Date.now().toString(36)}`
})

/** Kills every subscriber connection on every node (the layer's wake-up connection among them). */
const dropWakeups = Effect.acquireUseRelease(
  Effect.promise(async () => {
    const c = new Cluster(nodes.map((n) => ({ host: n.host, port: n.port })))
    await new Promise<void>((resolve) => c.once("ready", () => resolve()))
    return c
  }),
  (c) => Effect.promise(() => Promise.all(c.nodes("master").map((n) => n.call("CLIENT", "KILL", "TYPE", "pubsub")))),
  (c) => Effect.promise(() => c.quit())
)

wakeupSuite("valkey cluster", layer, { settleMs: 2, timeout: 60_000, dropWakeups })
reconcilerSuite("valkey cluster", layer, { settleMs: 2, timeout: 60_000 })
