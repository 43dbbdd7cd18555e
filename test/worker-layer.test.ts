// Running the worker and the reconciler in an application: `Worker.layer` and `Reconciler.layer` check
// their settings (the worker's environment variables included) when the layer is built, so a bad
// setting fails the application's start; a `Worker.run` forked by hand reports its failure.
import { describe, expect, it } from "@effect/vitest"
import { ConfigError, ConfigProvider, Effect, Either, Exit, Fiber, Layer, Logger, LogLevel, Schema } from "effect"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Reconciler from "../src/Reconciler.js"
import * as Worker from "../src/Worker.js"

const Double = Producer.task({ kind: "double", input: Schema.Number, output: Schema.Number })
const double = Worker.handler({ ...Double, run: (n) => Effect.succeed(n * 2) })

const env = (vars: Record<string, string>) => Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(vars))))

/** Runs `effect` with a logger that keeps every message at error level. */
const withErrorLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const errors: Array<string> = []
    const logger = Logger.make(({ cause, logLevel, message }) => {
      if (LogLevel.greaterThanEqual(logLevel, LogLevel.Error)) errors.push(`${String(message)} ${String(cause)}`)
    })
    const result = yield* Effect.exit(effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
    return { result, errors }
  })

describe("Worker.layer", () => {
  it.live("runs the worker while the application runs", () =>
    Effect.gen(function*() {
      const id = yield* Producer.submit(Double, 21, { lane: "numbers" })
      expect(yield* Producer.awaitResult(Double, id)).toBe(42)
    }).pipe(
      Effect.provide(
        Layer.mergeAll(Worker.layer({ lanes: ["numbers"], handlers: [double] }), Reconciler.layer()).pipe(
          Layer.provideMerge(MemoryBackend.layer())
        )
      )
    ), 30_000)

  it.effect("a bad WorkerConfig variable (FLOWFABRIC_LEASE_TTL=30s) fails the layer's build with its ConfigError", () =>
    Effect.gen(function*() {
      const app = Worker.layer({ lanes: ["numbers"], handlers: [double] }).pipe(
        Layer.provide(MemoryBackend.layer()),
        Layer.provide(env({ FLOWFABRIC_LEASE_TTL: "30s" }))
      )
      const r = yield* Effect.either(Effect.scoped(Layer.build(app)))
      expect(Either.isLeft(r) && ConfigError.isConfigError(r.left)).toBe(true)
      expect(Either.isLeft(r) && String(r.left)).toContain("FLOWFABRIC_LEASE_TTL")
    }))

  it.effect("a bad option fails the layer's build with a WorkerError", () =>
    Effect.gen(function*() {
      const app = Worker.layer({ lanes: [], handlers: [double] }).pipe(Layer.provide(MemoryBackend.layer()))
      const r = yield* Effect.either(Effect.scoped(Layer.build(app)))
      expect(Either.isLeft(r) && r.left._tag).toBe("WorkerError")
      const concurrency = Worker.layer({ lanes: ["x"], handlers: [double], concurrency: 0 }).pipe(
        Layer.provide(MemoryBackend.layer())
      )
      expect((yield* Effect.flip(Effect.scoped(Layer.build(concurrency))))._tag).toBe("WorkerError")
    }))
})

describe("Worker.start and a Worker.run forked by hand", () => {
  it.effect("start fails itself on a bad setting, before forking anything", () =>
    Effect.gen(function*() {
      const r = yield* Effect.either(Effect.scoped(Worker.start({ lanes: ["numbers"], handlers: [double] })))
      expect(Either.isLeft(r) && ConfigError.isConfigError(r.left)).toBe(true)
    }).pipe(Effect.provide(MemoryBackend.layer()), Effect.provide(env({ FLOWFABRIC_WORKER_CONCURRENCY: "many" }))))

  it.effect("a forked run with a bad setting fails its fiber and logs the failure at error level", () =>
    Effect.gen(function*() {
      const { errors, result } = yield* withErrorLogs(Effect.gen(function*() {
        const fiber = yield* Effect.fork(Worker.run({ lanes: ["numbers"], handlers: [double] }))
        return yield* Fiber.await(fiber)
      }))
      expect(Exit.isSuccess(result)).toBe(true)
      if (Exit.isSuccess(result)) {
        const exit = result.value
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("FLOWFABRIC_LEASE_TTL")
      }
      expect(errors.filter((e) => e.includes("worker failed to start") && e.includes("FLOWFABRIC_LEASE_TTL")))
        .toHaveLength(1)
    }).pipe(Effect.provide(MemoryBackend.layer()), Effect.provide(env({ FLOWFABRIC_LEASE_TTL: "30s" }))))

  it.effect("a worker that fails once running (a claim refused with Validation) logs the failure at error level", () =>
    Effect.gen(function*() {
      const { errors, result } = yield* withErrorLogs(Effect.scoped(Effect.gen(function*() {
        // a capability token with a comma is refused by the claim, not by the settings
        const fiber = yield* Worker.start({ lanes: ["numbers"], handlers: [double], capabilities: ["a,b"] })
        return yield* Fiber.await(fiber)
      })))
      expect(Exit.isSuccess(result) && Exit.isFailure(result.value)).toBe(true)
      expect(errors.filter((e) => e.startsWith("worker failed "))).toHaveLength(1)
    }).pipe(Effect.provide(MemoryBackend.layer())))
})

describe("Reconciler.layer", () => {
  const build = (options: Reconciler.ReconcilerOptions) =>
    Effect.flip(Effect.scoped(Layer.build(Reconciler.layer(options).pipe(Layer.provide(MemoryBackend.layer())))))

  it.effect("bad options fail the layer's build with a ReconcilerError", () =>
    Effect.gen(function*() {
      const unknownPass = yield* build({ passes: ["expireLeases", "vacuum" as never] })
      expect(unknownPass).toMatchObject({ _tag: "ReconcilerError" })
      expect(unknownPass.message).toContain(`unknown pass "vacuum"`)
      expect((yield* build({ intervals: { promoteDelayed: "30s" as never } })).message).toContain("promoteDelayed")
      expect((yield* build({ intervals: { promoteDelayed: 0 } })).message).toContain("positive duration")
      expect((yield* build({ batchSize: 0 })).message).toContain("batchSize")
      expect((yield* build({ maxConsecutiveRuns: 1.5 })).message).toContain("maxConsecutiveRuns")
    }))

  it.effect("good options start it", () =>
    Effect.gen(function*() {
      const r = yield* Effect.either(Effect.scoped(Layer.build(
        Reconciler.layer({ intervals: { promoteDelayed: "250 millis" }, batchSize: 100 }).pipe(
          Layer.provide(MemoryBackend.layer())
        )
      )))
      expect(Either.isRight(r)).toBe(true)
    }))
})
