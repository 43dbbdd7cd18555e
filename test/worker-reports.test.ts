// The reports of outputs written together (docs/worker.md, "What an attempt costs"): the leading
// synchronous steps of a report run on the writing fiber's stack; the rest in a fiber of its own.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, FiberRef, HashMap, Option, Ref, Schedule } from "effect"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Worker from "../src/Worker.js"
import { Add, isState, newLane } from "./worker/helpers.js"

describe("reports of outputs written together (memory)", () => {
  it.live("a report made of synchronous steps runs on the writer's stack; one that reaches another step goes on in a fiber of its own, its steps run once, in its attempt's annotations", () =>
    Effect.gen(function*() {
      const reporters: Array<string | undefined> = []
      const steps: Array<string> = []
      const completed = yield* Ref.make(0)
      let reports = 0
      const lane = yield* newLane()
      const ids = yield* Effect.forEach(Array.from({ length: 8 }, (_, i) => i), (a) =>
        Producer.submit(Add, { a, b: 1 }, { lane }))
      const fiber = yield* Effect.fork(Worker.run({
        lanes: [lane],
        handlers: [Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })],
        concurrency: 8,
        batchCompletions: false,
        idle: Schedule.spaced("1 second"),
        onEvent: (event) => {
          if (event._tag !== "Completed") return Effect.void
          // Effect.sync, Ref, flatMap: synchronous steps, each recording the fiber that runs it
          const sync = Effect.flatMap(
            Effect.sync(() => reporters.push(Option.getOrUndefined(Fiber.getCurrentFiber())?.id().toString())),
            () => Ref.updateAndGet(completed, (n) => n + 1)
          )
          // every other report then reads its fiber (a step that is not synchronous)
          return reports++ % 2 === 0 ? sync : Effect.flatMap(sync, () =>
            Effect.flatMap(FiberRef.get(FiberRef.currentLogAnnotations), (annotations) =>
              Effect.sync(() =>
                steps.push(String(Option.getOrUndefined(HashMap.get(annotations, "executionId")) === event.executionId))
              )))
        }
      }))
      for (let i = 0; i < 300; i++) {
        if ((yield* Effect.forEach(ids, (id) => isState(id, "completed"))).every(Boolean)) break
        yield* Effect.sleep("10 millis")
      }
      yield* Fiber.interrupt(fiber)
      expect(yield* Ref.get(completed)).toBe(8)
      // the synchronous steps of the eight reports ran in one fiber: the one that wrote the outputs
      expect(reporters).toHaveLength(8)
      expect(new Set(reporters).size).toBe(1)
      // the rest of the others ran once each, in a fiber with their attempt's log annotations
      expect(steps).toEqual(Array(4).fill("true"))
    }).pipe(Effect.provide(MemoryBackend.layer())), 20_000)
})
