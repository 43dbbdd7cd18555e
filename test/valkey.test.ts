// The conformance suite against the Valkey layer on a standalone server: one engine shared by the
// whole file (unique key prefix), time from Effect's Clock so that TestClock drives leases and delays.
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "iovalkey"
import { inject } from "vitest"
import { Maintenance } from "../src/Maintenance.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { advance } from "./conformance/helpers.js"
import { suite } from "./conformance/index.js"
import { richCompleted } from "./conformance/retention.js"
import { testHmacSecret } from "./support/hmac.js"

const keyPrefix = `ct-${process.pid}-${Date.now().toString(36)}`

suite("valkey", ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: inject("valkeyUrl"), clock: "effect", keyPrefix }), { fresh: false })

// ---------------------------------------------------------------------------
// trimRetention leaves nothing of a deleted execution behind (its own key prefix)
// ---------------------------------------------------------------------------

const retentionPrefix = `ret-${process.pid}-${Date.now().toString(36)}`

describe("valkey retention", () => {
  layer(ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: inject("valkeyUrl"), clock: "effect", keyPrefix: retentionPrefix }), {
    timeout: 30_000
  })((it) => {
    it.scoped("trimRetention: no key names the execution, its waitpoints or signals, no set or sorted set holds them", () =>
      Effect.gen(function*() {
        const admin = new Redis(inject("valkeyUrl"), { maxRetriesPerRequest: 1 })
        yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
        const everything = Effect.promise(async () => {
          const out: Array<string> = []
          let cursor = "0"
          do {
            const [next, keys] = await admin.scan(cursor, "MATCH", `${retentionPrefix}:*`, "COUNT", 1000)
            out.push(...keys)
            cursor = next
          } while (cursor !== "0")
          return out
        })
        /** Keys that name one of `ids`, and set / sorted-set keys that hold one of them. */
        const referencing = (ids: ReadonlyArray<string>) =>
          Effect.flatMap(everything, (keys) =>
            Effect.promise(async () => {
              const hits: Array<string> = []
              for (const key of keys) {
                if (ids.some((id) => key.includes(id))) {
                  hits.push(key)
                  continue
                }
                const type = await admin.type(key)
                for (const id of ids) {
                  if (type === "zset" && (await admin.zscore(key, id)) !== null) hits.push(`${key} ∋ ${id}`)
                  if (type === "set" && (await admin.sismember(key, id)) === 1) hits.push(`${key} ∋ ${id}`)
                }
              }
              return hits
            }))
        const keep = yield* richCompleted(60_000)
        const r = yield* richCompleted(1_000)
        // the execution id is "{fp:N}:<uuid>": keys name it by its uuid
        const uuidOf = (id: string) => id.slice(id.indexOf("}:") + 2)
        const ids = [r.executionId, uuidOf(r.executionId), ...r.waitpointIds, ...r.signalIds]
        expect((yield* referencing(ids)).length).toBeGreaterThan(10)
        // the id registry names every signal and waitpoint id (outside the partition's slot)
        const registry = [...r.signalIds.map((id) => `${retentionPrefix}:sigid:${id}`), ...r.waitpointIds.map((id) => `${retentionPrefix}:wpid:${id}`)]
        expect(yield* Effect.promise(() => admin.exists(...registry))).toBe(registry.length)
        yield* advance(1_000)
        const m = yield* Maintenance
        expect(yield* m.trimRetention()).toEqual({ pass: "trimRetention", processed: 1, more: false })
        expect(yield* referencing(ids)).toEqual([])
        // the other execution is whole
        const keptIds = [keep.executionId, uuidOf(keep.executionId), ...keep.waitpointIds, ...keep.signalIds]
        expect((yield* referencing(keptIds)).length).toBeGreaterThan(10)
      }))
  })
})
