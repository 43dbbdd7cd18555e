// The conformance suite against the Valkey layer on a 3-master Valkey Cluster: the library is loaded on
// every primary and every FCALL stays on one slot ({fp:N} hash tags). One engine shared by the file.
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Cluster } from "iovalkey"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import type { ExecutionId } from "../src/Ids.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { createAndClaim, ensureHmac, executionIdOnPartition, failsWith, signalArgs, suspendSingle } from "./conformance/helpers.js"
import { suite } from "./conformance/index.js"
import { parseClusterUrl } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"

const keyPrefix = `cc-${process.pid}-${Date.now().toString(36)}`

suite(
  "valkey cluster",
  ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix }),
  { fresh: false }
)

// ---------------------------------------------------------------------------
// The id registry on a cluster: a reservation whose call never ran (its client was lost between
// the two) stays its execution's
// ---------------------------------------------------------------------------

const registryPrefix = `cr-${process.pid}-${Date.now().toString(36)}`

describe("valkey cluster id registry", () => {
  layer(
    ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix: registryPrefix }),
    { timeout: 30_000 }
  )((it) => {
    it.scoped("a reservation left by a lost client: its execution's delivery goes through, another execution's is refused", () =>
      Effect.gen(function*() {
        const admin = new Cluster(parseClusterUrl(inject("valkeyClusterUrl")))
        yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
        const b = yield* EngineBackend
        yield* ensureHmac
        const suspended = (executionId?: ExecutionId) =>
          Effect.gen(function*() {
            const c = yield* createAndClaim(executionId === undefined ? {} : { executionId })
            return { ...c, ...(yield* suspendSingle(c.handle, { signalName: "approve" })) }
          })
        const x = yield* suspended()
        const y = yield* suspended(yield* executionIdOnPartition((Ids.executionPartition(x.executionId) + 1) % 256))
        const signalId = yield* Ids.newSignalId
        const key = `${registryPrefix}:sigid:${signalId}`
        const lost = yield* Effect.promise(() =>
          admin.call("FCALL", "ff_reserve_id", "1", key, "", JSON.stringify({ owner: x.executionId, nonce: "lost" }))
        )
        expect(lost).toEqual([1, "CREATED", ""])
        const to = (s: typeof x) =>
          Effect.map(
            signalArgs({ executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" }),
            (args) => ({ ...args, signalId })
          )
        yield* failsWith(b.deliverSignal(yield* to(y)), "State", "DuplicateSignal")
        expect(yield* Effect.promise(() => admin.get(key))).toBe(`${x.executionId}|lost`)
        expect(yield* b.deliverSignal(yield* to(x))).toEqual({ _tag: "Accepted", signalId, effect: "resume_condition_satisfied" })
        expect((yield* Effect.promise(() => admin.get(key)))?.startsWith(`${x.executionId}|`)).toBe(true)
        yield* failsWith(b.deliverSignal(yield* to(y)), "State", "DuplicateSignal")
      }))
  })
})
