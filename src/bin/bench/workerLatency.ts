/**
 * Latency of the worker runtime as an application runs it: one `Worker.run` with its default idle
 * schedule, a Reconciler with `Reconciler.layer`'s defaults, and a producer in the same process
 * using `Producer.submit`. Each scenario takes its samples one at a time (cancel-latency: a few at
 * once) after a seeded pseudo-random pause, so the worker is idle when the work arrives.
 */
import { Data, Deferred, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Queue, Schema } from "effect"
import { EngineBackend } from "../../EngineBackend.js"
import * as Ids from "../../Ids.js"
import * as Producer from "../../Producer.js"
import * as Reconciler from "../../Reconciler.js"
import * as Worker from "../../Worker.js"
import { gapsMs, uniformMs } from "./random.js"
import { type BenchResult, latencies, type Scenario, type ScenarioOptions } from "./scenarios.js"

const Payload = Schema.Struct({ n: Schema.Number })
const Noop = Producer.task({ kind: "noop", input: Payload, output: Payload })
const Hold = Producer.task({ kind: "hold", input: Payload, output: Payload })
const Flaky = Producer.task({ kind: "flaky", input: Payload, output: Payload })

/** The backoff of retry-latency's executions (a fixed delay, one retry). */
export const RETRY_BACKOFF_MS = 100
/** Executions cancel-latency keeps running at once (a worker without pushed cancellations noticed one at its next lease renewal, ~10 s). */
export const CANCEL_IN_FLIGHT = 10
const SAMPLE_TIMEOUT = Duration.seconds(60)

const nowMs = Effect.sync(() => performance.now())

export const latencyRow = (
  o: Pick<ScenarioOptions, "system">,
  scenario: string,
  samples: ReadonlyArray<number>,
  ms: number,
  note: string
): BenchResult => ({
  system: o.system,
  scenario,
  count: samples.length,
  seconds: ms / 1000,
  ...latencies(samples),
  samplesMs: samples,
  note
})

type Events = Queue.Queue<Worker.WorkerEvent>

/** Takes the attempt events of one execution until it completed; anything unexpected ends the scenario. */
const awaitCompleted = (events: Events, skip: ReadonlyArray<Worker.WorkerEvent["_tag"]> = []) =>
  Effect.gen(function*() {
    for (;;) {
      const e = yield* Queue.take(events).pipe(
        Effect.timeoutFail({ duration: SAMPLE_TIMEOUT, onTimeout: () => "no worker event within 60 s" }),
        Effect.orDieWith((m) => new Error(m))
      )
      if (e._tag === "Completed") return
      if (!skip.includes(e._tag)) return yield* Effect.dieMessage(`unexpected worker event ${e._tag}`)
    }
  })

const awaitSample = <A>(d: Deferred.Deferred<A>, what: string) =>
  Deferred.await(d).pipe(
    Effect.timeoutFail({ duration: SAMPLE_TIMEOUT, onTimeout: () => `${what} not seen within 60 s` }),
    Effect.orDieWith((m) => new Error(m))
  )

/**
 * Runs `body` beside a Reconciler (`Reconciler.layer`'s defaults) and one `Worker.run` on `lane`, as an
 * application runs them; a worker that stops ends the scenario.
 */
const withRuntime = <A, E, R>(
  lane: string,
  handler: Worker.Handler<never>,
  concurrency: number,
  events: Events,
  logLevel: LogLevel.LogLevel,
  body: Effect.Effect<A, E, R>
) =>
  Effect.scoped(Effect.gen(function*() {
    yield* Effect.orDie(Reconciler.start())
    const worker = yield* Effect.forkScoped(Worker.run({
      lanes: [lane],
      handlers: [handler],
      concurrency,
      workerId: "bench",
      workerInstanceId: `bench-${lane}`,
      onEvent: (event) => (event._tag === "Claimed" ? Effect.void : Queue.offer(events, event))
    }))
    return yield* Effect.raceFirst(body, Effect.orDie(Fiber.join(worker)))
  })).pipe(Logger.withMinimumLogLevel(logLevel))

const submit = <I, IE, O, OE>(spec: Producer.TaskSpec<I, IE, O, OE>, input: I, options: Producer.SubmitOptions) =>
  Effect.catchTag(Producer.submit(spec, input, options), "PayloadError", Effect.die)

/**
 * idle-pickup: one task at a time to an idle worker (concurrency 1, the default idle schedule);
 * latency = `Producer.submit` called → the handler's first line.
 */
const idlePickup: Scenario = (o) =>
  Effect.gen(function*() {
    const lane = `idle-${Date.now()}`
    const started = yield* Queue.unbounded<number>()
    const events: Events = yield* Queue.unbounded<Worker.WorkerEvent>()
    const handler = Worker.handler({
      ...Noop,
      run: (input) =>
        Effect.suspend(() => {
          started.unsafeOffer(performance.now())
          return Effect.succeed(input)
        })
    })
    // `--producer apart`: the submits go through an engine of their own on the same store, so that
    // nothing of the worker's layer (its connections, its wake-up hub) serves them
    const producer = o.producer === undefined ? undefined : yield* Effect.orDie(Layer.build(o.producer))
    const produce = (i: number) => {
      const call = submit(Noop, { n: i }, { lane })
      return producer === undefined ? call : Effect.provide(call, producer)
    }
    return yield* withRuntime(lane, handler, 1, events, LogLevel.Warning, Effect.gen(function*() {
      const samples: Array<number> = []
      const t0 = yield* nowMs
      for (const [i, gap] of gapsMs(o.seed, o.tasks).entries()) {
        yield* Effect.sleep(Duration.millis(gap))
        const submitted = yield* nowMs
        yield* produce(i)
        samples.push((yield* Queue.take(started)) - submitted)
        yield* awaitCompleted(events)
      }
      return [latencyRow(o, "idle-pickup", samples, (yield* nowMs) - t0, "submit → handler start, one task at a time")]
    }))
  }).pipe(Effect.scoped)

/**
 * cancel-latency: a running handler cancelled from outside with `cancelExecution` (0.3–1.2 s after it
 * started); latency = the call made → the handler's interruption observed. `CANCEL_IN_FLIGHT` run at once.
 */
const cancelLatency: Scenario = (o) =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const lane = `cancel-${Date.now()}`
    const laneId = Ids.unsafe.laneId(lane)
    const starts = new Map<string, Deferred.Deferred<number>>()
    const stops = new Map<string, Deferred.Deferred<number>>()
    const events: Events = yield* Queue.unbounded<Worker.WorkerEvent>()
    const handler = Worker.handler({
      ...Hold,
      run: (_input, ctx) =>
        Effect.suspend(() => {
          const id = ctx.executionId
          Deferred.unsafeDone(starts.get(id)!, Exit.succeed(performance.now()))
          return Effect.never.pipe(
            Effect.onInterrupt(() => Effect.sync(() => Deferred.unsafeDone(stops.get(id)!, Exit.succeed(performance.now()))))
          )
        })
    })
    const gaps = gapsMs(o.seed, o.tasks)
    const holds = uniformMs(o.seed + 0x10000, o.tasks, 300, 1200)
    const samples: Array<number> = []
    const one = (i: number) =>
      Effect.gen(function*() {
        yield* Effect.sleep(Duration.millis(gaps[i]!))
        const executionId = yield* Ids.executionIdSolo(laneId)
        const start = yield* Deferred.make<number>()
        const stop = yield* Deferred.make<number>()
        starts.set(executionId, start)
        stops.set(executionId, stop)
        yield* submit(Hold, { n: i }, { lane, executionId })
        yield* awaitSample(start, "handler start")
        yield* Effect.sleep(Duration.millis(holds[i]!))
        const cancelled = yield* nowMs
        yield* backend.cancelExecution({ executionId, reason: "bench: cancelled from outside" })
        samples.push((yield* awaitSample(stop, "handler interruption")) - cancelled)
      })
    const slots = Math.min(CANCEL_IN_FLIGHT, o.tasks)
    // a cancelled attempt logs its lost lease as a warning: expected here
    return yield* withRuntime(lane, handler, slots, events, LogLevel.Error, Effect.gen(function*() {
      const t0 = yield* nowMs
      yield* Effect.forEach(
        Array.from({ length: slots }, (_, k) => k),
        (k) =>
          Effect.forEach(
            Array.from({ length: Math.ceil((o.tasks - k) / slots) }, (_, j) => k + j * slots),
            one,
            { discard: true }
          ),
        { concurrency: "unbounded", discard: true }
      )
      return [latencyRow(
        o,
        "cancel-latency",
        samples,
        (yield* nowMs) - t0,
        `cancelExecution → handler interrupted, ${slots} running at once`
      )]
    }))
  })

class BenchTransient extends Data.TaggedError("BenchTransient")<{}> {}

/**
 * retry-latency: a handler that fails `Transient` on its first attempt, with a fixed 100 ms backoff;
 * latency = how long after the due time (the failing handler's return + 100 ms) the next attempt's
 * handler starts.
 */
const retryLatency: Scenario = (o) =>
  Effect.gen(function*() {
    const lane = `retry-${Date.now()}`
    const failedAt = new Map<string, number>()
    const retried = yield* Queue.unbounded<{ readonly id: string; readonly at: number }>()
    const events: Events = yield* Queue.unbounded<Worker.WorkerEvent>()
    const handler = Worker.handler({
      ...Flaky,
      run: (input, ctx) =>
        Effect.suspend(() => {
          const at = performance.now()
          if (ctx.attempt === 1) {
            failedAt.set(ctx.executionId, at)
            return Effect.fail(new BenchTransient())
          }
          retried.unsafeOffer({ id: ctx.executionId, at })
          return Effect.succeed(input)
        })
    })
    const policy = { retryPolicy: { maxRetries: 1, backoff: { type: "fixed" as const, delayMs: RETRY_BACKOFF_MS } } }
    return yield* withRuntime(lane, handler, 1, events, LogLevel.Warning, Effect.gen(function*() {
      const samples: Array<number> = []
      const t0 = yield* nowMs
      for (const [i, gap] of gapsMs(o.seed, o.tasks).entries()) {
        yield* Effect.sleep(Duration.millis(gap))
        yield* submit(Flaky, { n: i }, { lane, policy })
        const next = yield* Queue.take(retried).pipe(
          Effect.timeoutFail({ duration: SAMPLE_TIMEOUT, onTimeout: () => "no retry within 60 s" }),
          Effect.orDieWith((m) => new Error(m))
        )
        samples.push(next.at - (failedAt.get(next.id)! + RETRY_BACKOFF_MS))
        yield* awaitCompleted(events, ["Failed"])
      }
      return [latencyRow(
        o,
        "retry-latency",
        samples,
        (yield* nowMs) - t0,
        `next attempt's start after its due time (failure + ${RETRY_BACKOFF_MS} ms fixed backoff)`
      )]
    }))
  })

/**
 * await-result: a producer waits with `Producer.awaitResult` (on the execution's events) while a
 * plain claimer claims the task and completes it, one task at a time after a seeded 20–60 ms pause;
 * latency = the `complete` call returned (the completion committed) → `awaitResult` returned.
 */
const awaitResult: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`await-${Date.now()}`)
    const policy = {
      workerId: Ids.unsafe.workerId("bench-await"),
      workerInstanceId: Ids.unsafe.workerInstanceId("bench-await"),
      leaseTtlMs: 30_000
    }
    const samples: Array<number> = []
    const t0 = yield* nowMs
    // a short pause: the waiter has subscribed and is waiting (no worker needs to go idle here)
    for (const [i, gap] of uniformMs(o.seed, o.tasks, 20, 60).entries()) {
      const id = yield* submit(Noop, { n: i }, { lane })
      const handle = yield* b.claim({ lane, capabilities: { tokens: [] }, policy })
      if (handle._tag === "None") return yield* Effect.dieMessage("await-result: nothing to claim")
      const waiter = yield* Effect.fork(Effect.zipRight(
        Producer.awaitResult(Noop, id).pipe(Effect.orDie, Effect.timeout(SAMPLE_TIMEOUT), Effect.orDie),
        nowMs
      ))
      // the waiter subscribes and reads the state first; the completion comes after the pause
      yield* Effect.sleep(Duration.millis(gap))
      yield* b.complete(handle.value, { payload: new TextEncoder().encode(JSON.stringify({ n: i })) })
      const committed = yield* nowMs
      samples.push(Math.max(0, (yield* Fiber.join(waiter)) - committed))
    }
    return [latencyRow(o, "await-result", samples, (yield* nowMs) - t0, "complete returned → awaitResult returned")]
  }).pipe(Effect.orDie)

export const latencyScenarios: Record<string, Scenario> = {
  "await-result": awaitResult,
  "idle-pickup": idlePickup,
  "cancel-latency": cancelLatency,
  "retry-latency": retryLatency
}
