// Faults of the Valkey layer against a server of its own: a restart (SHUTDOWN NOSAVE, then start again on
// the same port with its AOF), the function library flushed mid-run, and the errors seen while the server
// is down. The layer must reconnect, reload the library when it is missing, keep everything committed,
// and report a down server as a retryable Transport error. Flushes are SYNC: an async one crashes
// Valkey 8.0.1 when a FUNCTION LOAD follows (docs/backends.md, "One FCALL per transition").
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Layer, Option, Ref, Schedule } from "effect"
import type { EngineBackend } from "../src/EngineBackend.js"
import { isRetryable } from "../src/EngineError.js"
import type { EngineError } from "../src/EngineError.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as Producer from "../src/Producer.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import * as Worker from "../src/Worker.js"
import { startValkey, type ValkeyServer } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

let server: ValkeyServer

beforeAll(async () => {
  server = await startValkey({ config: { appendonly: "yes", appendfsync: "always" } })
}, 60_000)

afterAll(async () => {
  await server?.stop()
}, 60_000)

const lane = Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`fault-${u.slice(0, 8)}`))

const policy = (ttl = 30_000) => ({
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-i"),
  leaseTtlMs: ttl
})

const createMany = (b: EngineBackend.Service, laneId: Ids.LaneId, n: number) =>
  Effect.forEach(Array.from({ length: n }), () =>
    Effect.gen(function*() {
      const executionId = yield* Ids.executionIdSolo(laneId)
      yield* b.createExecution({ executionId, laneId, namespace: Ids.unsafe.namespace("faults"), executionKind: "k" })
      return executionId
    }))

/** Retries transient failures (a restarting server) for up to 20 s of real time. */
const retrying = <A>(effect: Effect.Effect<A, EngineError>) =>
  Effect.retry(effect, {
    while: isRetryable,
    schedule: Schedule.spaced(Duration.millis(100)).pipe(Schedule.upTo(Duration.seconds(20)))
  })

const state = (b: EngineBackend.Service, id: Ids.ExecutionId) =>
  Effect.map(b.readExecutionState(id), Option.getOrElse(() => "missing"))

describe("valkey faults", () => {
  it.scopedLive("a restart with AOF keeps every committed transition; the layer reconnects", () =>
    Effect.gen(function*() {
      const { backend: b } = yield* ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "restart" })
      const l = yield* lane
      const ids = yield* createMany(b, l, 20)
      const done: Array<Ids.ExecutionId> = []
      // (executions created in the same millisecond are claimed in any order: record which one ran)
      for (let i = 0; i < 10; i++) {
        const h = Option.getOrThrow(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy() }))
        yield* b.complete(h)
        done.push(Either.getOrThrow(decodeHandle("valkey", h)).executionId)
      }

      yield* Effect.promise(() => server.shutdown())
      // while the server is down an operation fails fast with a retryable Transport error
      const down = yield* Effect.either(b.readExecutionState(ids[0]!))
      expect(Either.isLeft(down)).toBe(true)
      if (Either.isLeft(down)) {
        expect(down.left._tag).toBe("Transport")
        expect(isRetryable(down.left)).toBe(true)
      }
      yield* Effect.promise(() => server.start())

      // nothing committed is lost, and the next operations succeed on the reconnected client
      for (const id of ids) {
        expect(yield* retrying(state(b, id))).toBe(done.includes(id) ? "completed" : "waiting")
      }
      for (let i = 10; i < 20; i++) {
        const h = Option.getOrThrow(yield* retrying(b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy() })))
        yield* b.complete(h)
      }
      for (const id of ids) expect(yield* state(b, id)).toBe("completed")
      expect(Option.isNone(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy() }))).toBe(true)
    }), 60_000)

  it.scopedLive("FUNCTION FLUSH mid-run: the next call reloads the library and succeeds", () =>
    Effect.gen(function*() {
      const { backend: b, maintenance: m } = yield* ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "flush" })
      const l = yield* lane
      const [first, second] = yield* createMany(b, l, 2)
      const h = Option.getOrThrow(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy() }))

      expect((yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))).trim()).toBe("OK")
      expect((yield* Effect.promise(() => server.cli("FUNCTION", "LIST"))).trim()).toBe("")
      // a write, a read-only function and a pass all work as if nothing happened
      yield* b.complete(h)
      expect(yield* state(b, first!)).toBe("completed")
      yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))
      expect(Option.isSome(yield* b.describeExecution(second!))).toBe(true)
      yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))
      const r = yield* m.expireLeases()
      expect(r.pass).toBe("expireLeases")
      const h2 = Option.getOrThrow(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy() }))
      yield* b.complete(h2)
      expect(yield* state(b, second!)).toBe("completed")
      expect(yield* Effect.promise(() => server.cli("FUNCTION", "LIST"))).toContain("flowfabric")
    }), 60_000)

  it.scopedLive("FUNCTION FLUSH while an idle worker waits: the create that claims for it creates once, and the worker runs it", () =>
    Effect.gen(function*() {
      const lane = yield* newLane("flush-ho")
      const runs = yield* Ref.make(0)
      const { handed } = yield* idleWorker(
        lane,
        Worker.handler({ ...Echo, run: (input) => Effect.as(Ref.update(runs, (n) => n + 1), { text: input.text, attempt: 1, resumed: false }) })
      )
      yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))
      // the create's call finds no function: the library is loaded again, the execution created
      // once, and the worker (its handoff given back) claims it
      const id = yield* Producer.submit(Echo, { text: "flushed" }, { lane })
      expect(yield* handed).toBe(1)
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "flushed" })
      expect(yield* Effect.promise(() => server.cli("FUNCTION", "LIST"))).toContain("flowfabric")
      // and the next create claims for it again (the first create's wake-up may also have reached
      // the idle worker after it ran the work, and its claim at the message taken its slot once:
      // the count before the create is the base)
      const before = yield* handed
      const next = yield* Producer.submit(Echo, { text: "next" }, { lane })
      expect(yield* handed).toBeGreaterThan(before)
      expect(yield* Producer.awaitResult(Echo, next).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "next" })
      // a plain create (a producer's layer without a worker) finds no function either: it loads the
      // library again and creates once
      const elsewhere = yield* Layer.build(ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "flush-ho" }))
      yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))
      const plain = yield* Producer.submit(Echo, { text: "plain" }, { lane }).pipe(Effect.provide(elsewhere))
      expect(yield* Producer.awaitResult(Echo, plain).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "plain" })
      expect(yield* Ref.get(runs)).toBe(3)
    }).pipe(
      Effect.provide(Layer.suspend(() => ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "flush-ho" })))
    ), 60_000)

  it.scopedLive("a restart without the library (a cold node): the first call reloads it", () =>
    Effect.gen(function*() {
      const { backend: b } = yield* ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "cold" })
      const l = yield* lane
      const [id] = yield* createMany(b, l, 1)
      yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))
      yield* Effect.promise(() => server.shutdown())
      yield* Effect.promise(() => server.start())
      expect((yield* Effect.promise(() => server.cli("FUNCTION", "LIST"))).trim()).toBe("")
      const h = Option.getOrThrow(yield* retrying(b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy() })))
      yield* b.complete(h)
      expect(yield* state(b, id!)).toBe("completed")
    }), 60_000)

  it.scopedLive("the library policy \"never\" refuses a server without the library", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => server.cli("FUNCTION", "FLUSH", "SYNC"))
      const r = yield* Effect.either(ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "never", library: "never" }))
      expect(Either.isLeft(r) && r.left._tag === "Transport" && r.left.kind).toBe("script_not_loaded")
      // "always" loads it again
      yield* ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "never", library: "always" })
      expect(yield* Effect.promise(() => server.cli("FUNCTION", "LIST"))).toContain("flowfabric")
    }), 60_000)

  it.scopedLive("partition counts are fixed per deployment: a different count refuses to start", () =>
    Effect.gen(function*() {
      yield* ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "parts" })
      const r = yield* Effect.either(
        ValkeyBackend.make({ hmacSecret: testHmacSecret, url: server.url, keyPrefix: "parts", partitions: { numFlowPartitions: 16 } })
      )
      expect(Either.isLeft(r) && r.left._tag === "Transport" && r.left.message).toContain("partition_mismatch")
    }), 60_000)

  it.scopedLive("an unreachable server fails the layer with a retryable Transport error", () =>
    Effect.gen(function*() {
      const r = yield* Effect.either(
        ValkeyBackend.make({
          hmacSecret: testHmacSecret,
          url: "redis://127.0.0.1:1",
          keyPrefix: "nowhere",
          redisOptions: { retryStrategy: () => null }
        })
      )
      expect(Either.isLeft(r)).toBe(true)
      if (Either.isLeft(r)) {
        expect(r.left._tag).toBe("Transport")
        expect(r.left._tag === "Transport" && isRetryable(r.left)).toBe(true)
      }
    }), 60_000)
})
