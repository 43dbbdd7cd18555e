// A create made while an idle worker of its lane waits on the same memory engine claims for that
// worker in the same turn (docs/worker.md, "Wake-ups, timers and cancellation"): the create, then
// the worker's claim, as two engine steps in a row, and the claimed attempt started before the
// create returns. Work the claim leaves behind still reaches the lane's other waiting workers.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Option, Ref, Schedule, Schema } from "effect"
import { EngineBackend } from "../src/EngineBackend.js"
import type { ExecutionId } from "../src/Ids.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Worker from "../src/Worker.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const Other = Producer.task({ kind: "other", input: Schema.Struct({ n: Schema.Number }), output: Schema.Struct({ n: Schema.Number }) })

/** An Echo handler whose start is recorded as it runs (before `Producer.submit` returns, for a handed-over create). */
const echo = (started: Deferred.Deferred<void>) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) =>
      Effect.as(Deferred.succeed(started, undefined), { text: input.text, attempt: ctx.attempt, resumed: ctx.resumed })
  })

const eventsOf = (executionId: ExecutionId) =>
  Effect.map(
    Effect.flatMap(EngineBackend, (b) => b.readEvents({ filter: { _tag: "Execution", executionId }, limit: 100 })),
    (page) => page.events.map((e) => e._tag)
  )

describe("memory: a create claims for the idle worker waiting on its engine", () => {
  it.live("the create claims for the waiting worker and starts the attempt before it returns", () =>
    Effect.gen(function*() {
      const lane = yield* newLane("mh")
      const started = yield* Deferred.make<void>()
      const { handed, taken } = yield* idleWorker(lane, echo(started))
      const id = yield* Producer.submit(Echo, { text: "now" }, { lane })
      // the handler ran before the create returned
      expect(yield* Deferred.isDone(started)).toBe(true)
      expect(yield* handed).toBe(1)
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "now", attempt: 1 })
      // no claim call of the worker took it
      expect(yield* taken).toBe(0)
      // a create and a claim after it: nothing of the claim folded into the creation's event
      expect(yield* eventsOf(id)).toEqual(["ExecutionCreated", "Claimed", "Completed"])
    }).pipe(Effect.scoped, Effect.provide(MemoryBackend.layer())))

  it.live("a delayed create hands nothing over; the worker takes it once due", () =>
    Effect.gen(function*() {
      const lane = yield* newLane("mh")
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      yield* Producer.submit(Echo, { text: "later" }, { lane, delay: "50 millis" })
      expect(yield* handed).toBe(0)
      expect(yield* Deferred.isDone(started)).toBe(false)
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
    }).pipe(Effect.scoped, Effect.provide(MemoryBackend.layer())))

  it.live("work the handed-over claim leaves (a kind the worker lacks) goes to a waiting worker that has its handler", () =>
    Effect.gen(function*() {
      const lane = yield* newLane("mh")
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      const otherStarted = yield* Deferred.make<void>()
      yield* Effect.forkScoped(Worker.run({
        lanes: [lane],
        handlers: [Worker.handler({ ...Other, run: (input) => Effect.as(Deferred.succeed(otherStarted, undefined), input) })],
        idle: Schedule.spaced("1 hour"),
        workerId: "other"
      }))
      // (the second worker waits once its first claim found nothing; its wake-up does not depend on it)
      const id = yield* Producer.submit(Other, { n: 1 }, { lane })
      yield* Deferred.await(otherStarted).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Other, id).pipe(Effect.timeout("20 seconds"))).toEqual({ n: 1 })
      expect(yield* handed).toBeLessThanOrEqual(1)
      expect(yield* Deferred.isDone(started)).toBe(false)
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(id)).toEqual(Option.some("completed"))
    }).pipe(Effect.scoped, Effect.provide(MemoryBackend.layer())))

  it.live("a worker stopping with a handoff pending waits for its delivery, and hands back unrun what it took", () =>
    Effect.gen(function*() {
      // the handoffs the worker offers are taken by the test, not by the engine's creates
      let offer: ((lane: string) => EngineBackend.Handoff | undefined) | undefined
      const waiting = yield* Deferred.make<void>()
      const layer = Layer.effect(
        EngineBackend,
        Effect.map(EngineBackend, (b): EngineBackend.Service => ({
          ...b,
          subscribeWork: (args) =>
            Effect.map(b.subscribeWork(args), (sub): EngineBackend.WorkSubscription => ({
              ...sub,
              onHandoff: (f) => {
                offer = f
                if (f !== undefined) Deferred.unsafeDone(waiting, Exit.void)
              }
            }))
        }))
      ).pipe(Layer.provideMerge(MemoryBackend.layer()))
      yield* Effect.gen(function*() {
        const lane = yield* newLane("mh")
        const runs = yield* Ref.make(0)
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [Worker.handler({ ...Echo, run: (input, ctx) => Effect.as(Ref.update(runs, (n) => n + 1), { text: input.text, attempt: ctx.attempt, resumed: ctx.resumed }) })],
          concurrency: 1,
          idle: Schedule.spaced("1 hour"),
          workerId: "pending"
        }))
        yield* Deferred.await(waiting).pipe(Effect.timeout("20 seconds"))
        const handoff = offer?.(lane)
        expect(handoff).toBeDefined()
        // the handoff holds the worker's one slot: the create's wake-up claims nothing
        const id = yield* Producer.submit(Echo, { text: "pending" }, { lane })
        const b = yield* EngineBackend
        const stopping = yield* Effect.fork(Fiber.interrupt(worker))
        yield* Effect.sleep("100 millis")
        // the drain waits for the pending handoff
        expect(Option.isNone(yield* Fiber.poll(stopping))).toBe(true)
        const { claimed } = yield* b.completeAndClaim([], { args: handoff!.args, max: handoff!.max })
        expect(claimed.length).toBe(1)
        handoff!.deliver(claimed, false)
        yield* Fiber.join(stopping).pipe(Effect.timeout("20 seconds"))
        // taken once the worker was stopping: handed back unrun
        expect(yield* Ref.get(runs)).toBe(0)
        expect(["delayed", "waiting"]).toContain(Option.getOrUndefined(yield* b.readExecutionState(id)))
      }).pipe(Effect.provide(layer))
    }))
})
