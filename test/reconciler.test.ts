import { describe, expect, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Fiber, Layer, Ref, Schedule, TestClock } from "effect"
import { Contention, NotFound } from "../src/EngineError.js"
import { Maintenance, type PassName, passNames } from "../src/Maintenance.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Reconciler from "../src/Reconciler.js"
import { reconcilerSuite } from "./reconciler/suite.js"

reconcilerSuite("memory", MemoryBackend.layer())

/** A `Maintenance` whose passes count their calls and behave as `behave` says. */
const fakeMaintenance = (behave: (pass: PassName, call: number) => Effect.Effect<number, Contention | NotFound>) =>
  Effect.gen(function*() {
    const calls = yield* Ref.make<Record<string, number>>({})
    const service = Object.fromEntries(passNames.map((pass) => [
      pass,
      () =>
        Effect.flatMap(Ref.modify(calls, (c) => {
          const n = (c[pass] ?? 0) + 1
          return [n, { ...c, [pass]: n }]
        }), (n) => Effect.map(behave(pass, n), (processed) => ({ pass, processed, more: false })))
    ])) as Maintenance.Service
    return { calls: Ref.get(calls), layer: Layer.succeed(Maintenance, service) }
  })

const step = (ms: number, by = 10) =>
  Effect.gen(function*() {
    for (let t = 0; t < ms; t += by) {
      yield* Effect.repeatN(Effect.yieldNow(), 3)
      yield* TestClock.adjust(Duration.millis(by))
    }
    yield* Effect.repeatN(Effect.yieldNow(), 3)
  })

describe("Reconciler (any Maintenance)", () => {
  it.effect("retries a pass that failed with a retryable error", () =>
    Effect.gen(function*() {
      const fake = yield* fakeMaintenance((_, call) =>
        call <= 2 ? Effect.fail(new Contention({ kind: "RetryExhausted" })) : Effect.succeed(4)
      )
      const run = yield* Effect.fork(Reconciler.runOnce({ passes: ["expireLeases"] }).pipe(Effect.provide(fake.layer)))
      yield* step(500)
      const results = yield* Fiber.join(run)
      expect(results).toEqual([{ pass: "expireLeases", processed: 4, more: false }])
      expect((yield* fake.calls)["expireLeases"]).toBe(3)
    }))

  it.effect("runOnce returns an error that is not retryable; the running reconciler logs it and goes on", () =>
    Effect.gen(function*() {
      const fake = yield* fakeMaintenance(() => Effect.fail(new NotFound({ entity: "partition" })))
      const error = yield* Effect.flip(Reconciler.runOnce({ passes: ["promoteDelayed"] }).pipe(Effect.provide(fake.layer)))
      expect(error._tag).toBe("NotFound")
      expect((yield* fake.calls)["promoteDelayed"]).toBe(1)
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Reconciler.start({ passes: ["promoteDelayed"], intervals: { promoteDelayed: "1 second" } })
        yield* step(3_500, 250)
      })).pipe(Effect.provide(fake.layer))
      // 1 (runOnce) + runs at 0, 1, 2, 3 s
      expect((yield* fake.calls)["promoteDelayed"]).toBe(5)
    }))

  it.effect("runs each pass on its default interval and stops with its scope", () =>
    Effect.gen(function*() {
      const fake = yield* fakeMaintenance(() => Effect.succeed(0))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Layer.build(Reconciler.layer())
        yield* step(15_000, 250)
      })).pipe(Effect.provide(fake.layer))
      const expected = Object.fromEntries(passNames.map((p) => [
        p,
        Math.floor(15_000 / Duration.toMillis(Reconciler.defaultIntervals[p])) + 1
      ]))
      expect(yield* fake.calls).toEqual(expected)
      expect(expected["expireLeases"]).toBe(11)
      expect(expected["promoteDelayed"]).toBe(21)
      // the retention trimmer every 60 s: once at start within 15 s
      expect(expected["trimRetention"]).toBe(1)
      // Stopped: time passes, nothing runs.
      yield* step(5_000, 250)
      expect(yield* fake.calls).toEqual(expected)
    }))

  it.effect("a schedule given for a pass replaces its interval", () =>
    Effect.gen(function*() {
      const fake = yield* fakeMaintenance(() => Effect.succeed(0))
      yield* Effect.scoped(Effect.gen(function*() {
        yield* Reconciler.start({ passes: ["resetBudgets"], schedules: { resetBudgets: Schedule.recurs(2) } })
        yield* step(100)
      })).pipe(Effect.provide(fake.layer))
      expect((yield* fake.calls)["resetBudgets"]).toBe(3)
    }))

  it.effect("runs at most `concurrency` passes at once (default 2): the others wait for a run to end", () =>
    Effect.gen(function*() {
      for (const concurrency of [undefined, 1, 3]) {
        const gate = yield* Deferred.make<void>()
        const inFlight = yield* Ref.make(0)
        const most = yield* Ref.make(0)
        const fake = yield* fakeMaintenance(() =>
          Effect.gen(function*() {
            const n = yield* Ref.updateAndGet(inFlight, (x) => x + 1)
            yield* Ref.update(most, (m) => Math.max(m, n))
            yield* Deferred.await(gate)
            yield* Ref.update(inFlight, (x) => x - 1)
            return 0
          })
        )
        yield* Effect.scoped(Effect.gen(function*() {
          yield* Reconciler.start(concurrency === undefined ? {} : { concurrency })
          yield* step(100)
          const bound = concurrency ?? Reconciler.defaultConcurrency
          expect(yield* Ref.get(inFlight)).toBe(bound)
          expect(Object.values(yield* fake.calls).reduce((a, b) => a + b, 0)).toBe(bound)
          // the runs end: every pass has its turn at start
          yield* Deferred.succeed(gate, undefined)
          yield* step(100)
          expect(Object.keys(yield* fake.calls).sort()).toEqual([...passNames].sort())
        })).pipe(Effect.provide(fake.layer))
        expect(yield* Ref.get(most)).toBe(concurrency ?? 2)
      }
      const bad = yield* Effect.flip(Reconciler.start({ concurrency: 0 }).pipe(Effect.scoped, Effect.provide(Layer.succeed(Maintenance, {} as Maintenance.Service))))
      expect(bad._tag).toBe("ReconcilerError")
    }))
})
