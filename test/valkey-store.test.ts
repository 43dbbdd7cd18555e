// The Valkey layer in its production clock mode ("store": Valkey TIME inside every function), in real
// time with short TTLs: lease expiry and reclaim, renewal, delays and retry backoff.
import { describe, expect, inject, it, layer } from "@effect/vitest"
import { Config, ConfigProvider, Duration, Effect, Layer, Option } from "effect"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import { Maintenance } from "../src/Maintenance.js"
import type * as M from "../src/Model.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"

const keyPrefix = `st-${process.pid}-${Date.now().toString(36)}`
const live = ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: inject("valkeyUrl"), keyPrefix })

const payload = (h: M.Handle) => {
  const d = decodeHandle("valkey", h)
  if (d._tag === "Left") return expect.fail("cannot decode handle")
  return d.right
}

const lane = Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`st-${u.slice(0, 8)}`))

const createOn = (laneId: Ids.LaneId, extra: Partial<M.CreateExecutionArgsInput> = {}) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const executionId = yield* Ids.executionIdSolo(laneId)
    const r = yield* b.createExecution({
      executionId,
      laneId,
      namespace: Ids.unsafe.namespace("store"),
      executionKind: "store-clock",
      ...extra
    })
    expect(r._tag).toBe("Created")
    return executionId
  })

const claim = (laneId: Ids.LaneId, ttl: number, worker = "w1") =>
  Effect.flatMap(EngineBackend, (b) =>
    b.claim({
      lane: laneId,
      capabilities: { tokens: [] },
      policy: {
        workerId: Ids.unsafe.workerId(worker),
        workerInstanceId: Ids.unsafe.workerInstanceId(`${worker}-i`),
        leaseTtlMs: ttl
      }
    }))

const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

layer(live, { excludeTestServices: true, timeout: 30_000 })("valkey, store clock (real time)", (it) => {
  describe("timestamps come from the server", () => {
    it.effect("created_at and the lease expiry are Valkey TIME", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = yield* lane
        const before = Date.now()
        const id = yield* createOn(l)
        const h = Option.getOrThrow(yield* claim(l, 5_000))
        const after = Date.now()
        const s = Option.getOrThrow(yield* b.describeExecution(id))
        // the server runs on this machine: its clock agrees with ours within a second
        expect(Math.abs(s.createdAt - before)).toBeLessThan(1_000)
        expect(s.currentLease?.expiresAt).toBeGreaterThanOrEqual(before + 5_000 - 1_000)
        expect(s.currentLease?.expiresAt).toBeLessThanOrEqual(after + 5_000 + 1_000)
        yield* b.complete(h)
      }))
  })

  describe("leases", () => {
    it.effect("a lease that is not renewed expires; the pass marks it and claim reclaims it", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const m = yield* Maintenance
        const l = yield* lane
        const id = yield* createOn(l)
        const first = Option.getOrThrow(yield* claim(l, 300))
        yield* sleep(400)
        const r = yield* m.expireLeases()
        expect(r.processed).toBeGreaterThanOrEqual(1)
        const info = Option.getOrThrow(yield* b.readExecutionInfo(id))
        expect(info.stateVector.ownershipState).toBe("lease_expired_reclaimable")
        const second = Option.getOrThrow(yield* claim(l, 5_000, "w2"))
        expect(payload(second)).toMatchObject({ executionId: id, attemptIndex: 1, leaseEpoch: 2 })
        const stale = yield* Effect.either(b.complete(first))
        expect(stale._tag === "Left" && stale.left._tag === "State" && stale.left.kind).toBe("StaleLease")
        yield* b.complete(second)
      }))

    it.effect("renewing keeps a short lease alive past its first expiry", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = yield* lane
        yield* createOn(l)
        // each renewal lands 600 ms into a 2 s lease: a loaded machine cannot make one late
        const h = Option.getOrThrow(yield* claim(l, 2_000))
        for (let i = 0; i < 4; i++) {
          yield* sleep(600)
          const r = yield* b.renew(h)
          expect(r.leaseEpoch).toBe(1)
        }
        // 2.4 s after the claim, well past the original 2 s
        yield* b.complete(h)
      }))

    it.effect("the lazy check of a write marks an expired lease without any pass", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = yield* lane
        yield* createOn(l)
        const h = Option.getOrThrow(yield* claim(l, 200))
        yield* sleep(300)
        const e = yield* Effect.either(b.renew(h))
        expect(e._tag === "Left" && e.left._tag === "State" && e.left.kind).toBe("LeaseExpired")
        const again = Option.getOrThrow(yield* claim(l, 5_000))
        expect(payload(again).leaseEpoch).toBe(2)
        yield* b.complete(again)
      }))
  })

  describe("claim order", () => {
    it.effect("priority then FIFO holds across partitions of one lane (the claim hint is exact)", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = yield* lane
        const made: Array<Ids.ExecutionId> = []
        // [partition, priority] in creation order
        for (const [p, priority] of [[5, 0], [9, 3], [3, 0], [9, 0], [5, 3], [7, 9], [3, 3]] as const) {
          const executionId = `{fp:${p}}:${yield* Ids.randomUuid}` as Ids.ExecutionId
          yield* createOn(l, { executionId, priority })
          made.push(executionId)
          yield* sleep(3)
        }
        const order: Array<Ids.ExecutionId> = []
        for (let i = 0; i < made.length; i++) {
          const h = Option.getOrThrow(yield* claim(l, 5_000))
          order.push(payload(h).executionId)
          yield* b.complete(h)
        }
        // priority 9, then the priority-3 ones by creation, then the priority-0 ones by creation
        expect(order).toEqual([made[5], made[1], made[4], made[6], made[0], made[2], made[3]])
        expect(Option.isNone(yield* claim(l, 5_000))).toBe(true)
      }))
  })

  describe("delays and backoff", () => {
    it.effect("a delay is promoted once its time has come", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const m = yield* Maintenance
        const l = yield* lane
        const id = yield* createOn(l)
        const h = Option.getOrThrow(yield* claim(l, 5_000))
        // Two seconds of margin: the early checks must not see the delay expire on a loaded machine.
        const delayUntil = Date.now() + 2_000
        yield* b.delay(h, { delayUntil })
        yield* m.promoteDelayed()
        expect(Option.getOrThrow(yield* b.readExecutionState(id))).toBe("delayed")
        expect(Option.isNone(yield* claim(l, 5_000))).toBe(true)
        yield* sleep(Math.max(0, delayUntil - Date.now()) + 100)
        yield* m.promoteDelayed()
        const resumed = Option.getOrThrow(yield* claim(l, 5_000))
        expect(resumed.kind).toBe("resumed")
        yield* b.complete(resumed)
      }))

    it.effect("a fixed retry backoff is measured on the server clock", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const m = yield* Maintenance
        const l = yield* lane
        const id = yield* createOn(l, { policy: { retryPolicy: { maxRetries: 1, backoff: { type: "fixed", delayMs: 300 } } } })
        const h = Option.getOrThrow(yield* claim(l, 5_000))
        const before = Date.now()
        const out = yield* b.fail(h, { reason: { message: "flaky" }, classification: "Transient" })
        if (out._tag !== "RetryScheduled") return expect.fail("expected RetryScheduled")
        expect(out.delayUntil).toBeGreaterThanOrEqual(before + 300 - 1_000)
        expect(out.delayUntil).toBeLessThanOrEqual(Date.now() + 300 + 1_000)
        yield* sleep(400)
        yield* m.promoteDelayed()
        const retry = Option.getOrThrow(yield* claim(l, 5_000))
        expect(payload(retry)).toMatchObject({ executionId: id, attemptIndex: 1 })
        expect(yield* b.fail(retry, { reason: { message: "again" }, classification: "Transient" })).toEqual({
          _tag: "TerminalFailed"
        })
      }))
  })
})

describe("layerConfig", () => {
  it.scopedLive("reads its options from Config and seeds the HMAC keystore at start", () =>
    Effect.gen(function*() {
      const config = ValkeyBackend.layerConfig({
        url: Config.redacted("VALKEY_URL"),
        keyPrefix: Config.string("VALKEY_PREFIX"),
        hmacSecret: { kid: Config.string("HMAC_KID"), secretHex: Config.redacted("HMAC_SECRET") }
      }).pipe(
        Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["VALKEY_URL", inject("valkeyUrl")],
            ["VALKEY_PREFIX", `cfg-${process.pid}-${Date.now().toString(36)}`],
            ["HMAC_KID", "boot-k1"],
            ["HMAC_SECRET", "c0ffee15deadbeef".repeat(4)]
          ])
        )))
      )
      yield* Effect.gen(function*() {
        const b = yield* EngineBackend
        expect(b.backendLabel).toBe("valkey")
        // the keystore was seeded at start: a waitpoint token is minted with the boot kid
        const l = yield* lane
        yield* createOn(l)
        const h = Option.getOrThrow(yield* claim(l, 5_000))
        const wp = yield* b.createWaitpoint(h, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
        expect(wp.hmacToken.startsWith("boot-k1:")).toBe(true)
        expect(yield* b.seedWaitpointHmacSecret({ kid: "boot-k1", secretHex: "c0ffee15deadbeef".repeat(4) })).toEqual({
          _tag: "AlreadySeeded",
          kid: "boot-k1",
          sameSecret: true
        })
        yield* b.complete(h)
      }).pipe(Effect.provide(config))
    }))
})
