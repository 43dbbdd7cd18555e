// Concurrency of the Valkey claim path: 8 claimers race over 5,000 executions of one lane spread over
// every flow partition (so the per-lane claim hints are exercised); every execution must be completed
// exactly once, by exactly one lease, with no lost or doubly leased work.
import { describe, expect, inject, it } from "@effect/vitest"
import { Effect, Option, Ref } from "effect"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import { Limits } from "../src/Limits.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { parseClusterUrl } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"

const TOTAL = 5_000
const CLAIMERS = 8

const race = (options: ValkeyBackend.ValkeyBackendOptions) =>
  Effect.gen(function*() {
    const { backend: b } = yield* ValkeyBackend.make({ hmacSecret: testHmacSecret, ...options })
    const laneId = Ids.unsafe.laneId(`race-${(yield* Ids.randomUuid).slice(0, 8)}`)
    const ids = yield* Effect.forEach(Array.from({ length: TOTAL }, (_, i) => i), (i) =>
      Effect.map(Ids.randomUuid, (u) => `{fp:${i % 256}}:${u}` as Ids.ExecutionId))
    // in batches of Limits.batchItems
    for (let i = 0; i < TOTAL; i += Limits.batchItems) {
      const created = yield* b.createExecutions(ids.slice(i, i + Limits.batchItems).map((executionId) => ({
        executionId,
        laneId,
        namespace: Ids.unsafe.namespace("race"),
        executionKind: "race"
      })))
      expect(created.every((r) => r._tag === "Created")).toBe(true)
    }

    const completions = yield* Ref.make(new Map<string, number>())
    const claimer = (n: number) =>
      Effect.gen(function*() {
        let idle = 0
        let mine = 0
        while (idle < 3) {
          const h = yield* b.claim({
            lane: laneId,
            capabilities: { tokens: [] },
            policy: {
              workerId: Ids.unsafe.workerId(`w${n}`),
              workerInstanceId: Ids.unsafe.workerInstanceId(`w${n}-i`),
              leaseTtlMs: 60_000
            }
          })
          if (Option.isNone(h)) {
            idle++
            continue
          }
          idle = 0
          const p = decodeHandle("valkey", h.value)
          if (p._tag === "Left") return expect.fail("undecodable handle")
          expect(p.right.leaseEpoch).toBe(1)
          yield* b.complete(h.value)
          yield* Ref.update(completions, (m) => new Map(m).set(p.right.executionId, (m.get(p.right.executionId) ?? 0) + 1))
          mine++
        }
        return mine
      })
    const perClaimer = yield* Effect.forEach(Array.from({ length: CLAIMERS }, (_, i) => i), claimer, {
      concurrency: "unbounded"
    })
    const done = yield* Ref.get(completions)
    expect(perClaimer.reduce((a, x) => a + x, 0)).toBe(TOTAL)
    expect(done.size).toBe(TOTAL)
    expect([...done.values()].every((n) => n === 1)).toBe(true)
    // every claimer took part
    expect(perClaimer.every((n) => n > 0)).toBe(true)
    for (const id of ids.slice(0, 200)) {
      expect(Option.getOrThrow(yield* b.readExecutionState(id))).toBe("completed")
    }
  })

describe("valkey concurrency", () => {
  it.scopedLive(`${CLAIMERS} claimers over ${TOTAL} executions: each completes exactly once`, () =>
    race({ url: inject("valkeyUrl"), keyPrefix: `race-${process.pid}-${Date.now().toString(36)}` }), 120_000)

  it.scopedLive(`${CLAIMERS} claimers over ${TOTAL} executions on a cluster: each completes exactly once`, () =>
    race({
      nodes: parseClusterUrl(inject("valkeyClusterUrl")),
      keyPrefix: `race-${process.pid}-${Date.now().toString(36)}`
    }), 120_000)
})
