import { describe, expect, it } from "@effect/vitest"
import {
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  FiberRef,
  Fiber,
  HashMap,
  Layer,
  Logger,
  Metric,
  MetricState,
  Option,
  Random,
  Ref,
  Schedule,
  TestClock,
  Tracer
} from "effect"
import { EngineBackend, operationNames } from "../src/EngineBackend.js"
import { type EngineError, Transport } from "../src/EngineError.js"
import * as Ids from "../src/Ids.js"
import { instrument } from "../src/internal/observability.js"
import { makeHub } from "../src/internal/wakeups.js"
import * as LeaseKeeper from "../src/internal/worker/leaseKeeper.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Worker from "../src/Worker.js"
import { Add, claimOne, info, isState, newLane, state } from "./worker/helpers.js"
import { workerSuite } from "./worker/suite.js"
import { wakeupSuite } from "./worker/wakeups.js"

workerSuite("memory", MemoryBackend.layer())
wakeupSuite("memory", MemoryBackend.layer())

/** A tracer that keeps every span it makes. */
const recordingTracer = Effect.map(Effect.tracer, (builtIn) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = builtIn.span(name, parent, context, links, startTime, kind, options)
      spans.push(span)
      return span
    },
    context: (f, fiber) => builtIn.context(f, fiber)
  })
  return { tracer, spans }
})

const counter = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let total = 0
    for (const p of pairs) {
      if (
        p.metricKey.name === name &&
        Object.entries(tags).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v)) &&
        MetricState.isCounterState(p.metricState)
      ) total += Number(p.metricState.count)
    }
    return total
  })

describe("observability", () => {
  it.effect("with a tracer installed, every operation runs in a span EngineBackend.<op> with its attributes", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordingTracer
      yield* Effect.gen(function*() {
        const backend = yield* EngineBackend
        const lane = yield* newLane()
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        const handle = yield* claimOne(lane)
        yield* backend.complete(handle, {})
        yield* Effect.flip(backend.renew(handle))
        const byName = (name: string) => spans.filter((s) => s.name === name)
        expect(byName("EngineBackend.createExecution")[0]?.attributes.get("execution_id")).toBe(id)
        expect(byName("EngineBackend.claim")[0]?.attributes.get("lane")).toBe(lane)
        const complete = byName("EngineBackend.complete")[0]
        expect(Object.fromEntries(complete?.attributes ?? [])).toMatchObject({
          backend: "memory",
          execution_id: id,
          lane,
          attempt_index: 0,
          handle_kind: "fresh"
        })
        const renew = byName("EngineBackend.renew")[0]
        expect(renew?.status._tag === "Ended" && renew.status.exit._tag === "Failure").toBe(true)
        // The producer's own span is the parent of the operation it ran.
        const submit = byName("Producer.submit")[0]
        const create = byName("EngineBackend.createExecution")[0]
        expect(Option.map(create!.parent, (p) => p.spanId)).toEqual(Option.some(submit!.spanId))
      }).pipe(Effect.withTracer(tracer), Effect.provide(MemoryBackend.layer()))
    }))

  it.effect("instrument wraps every operation of operationNames", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordingTracer
      const stub = Object.fromEntries([
        ["backendLabel", "memory"],
        ...operationNames.map((op) => [op, () => Effect.succeed(op)] as const)
      ]) as unknown as EngineBackend.Service
      const service = instrument(stub)
      expect(service.backendLabel).toBe("memory")
      for (const op of operationNames) {
        const fn = service[op] as unknown as () => Effect.Effect<string>
        expect(yield* fn().pipe(Effect.withTracer(tracer))).toBe(op)
      }
      expect(spans.map((s) => s.name)).toEqual(operationNames.map((op) => `EngineBackend.${op}`))
    }))

  it.effect("without a tracer, Producer.submit makes no span (Effect's built-in tracer exports nothing)", () =>
    Effect.gen(function*() {
      const backend = yield* EngineBackend
      const seen: Array<Option.Option<string>> = []
      const watching: EngineBackend.Service = {
        ...backend,
        createExecution: (args) =>
          Effect.zipRight(
            Effect.map(Effect.option(Effect.currentSpan), (span) => seen.push(Option.map(span, (s) => s.name))),
            backend.createExecution(args)
          )
      }
      const lane = yield* newLane()
      yield* Producer.submit(Add, { a: 1, b: 2 }, { lane }).pipe(Effect.provideService(EngineBackend, watching))
      expect(seen).toEqual([Option.none()])
      // with a tracer, it does
      const { tracer } = yield* recordingTracer
      yield* Producer.submit(Add, { a: 1, b: 2 }, { lane }).pipe(
        Effect.provideService(EngineBackend, watching),
        Effect.withTracer(tracer)
      )
      expect(seen[1]).toEqual(Option.some("Producer.submit"))
    }).pipe(Effect.provide(MemoryBackend.layer())))

  it.effect("with a tracer, a malformed handle is still a Validation error (its span attributes never throw)", () =>
    Effect.gen(function*() {
      const { tracer } = yield* recordingTracer
      const backend = yield* EngineBackend
      const handle = { backend: "memory", kind: Object.create(null), opaque: new Uint8Array([2, 1, 3]) }
      const e = yield* Effect.flip(backend.renew(handle as never).pipe(Effect.withTracer(tracer)))
      expect(e).toMatchObject({ _tag: "Validation", kind: "Corruption" })
    }).pipe(Effect.provide(MemoryBackend.layer())))

  it.effect("operations feed counters by op and backend, errors by tag, with or without a tracer", () =>
    Effect.gen(function*() {
      const callsBefore = yield* counter("flowfabric_engine_operations_total", { op: "describeExecution", backend: "memory" })
      const errorsBefore = yield* counter("flowfabric_engine_operation_errors_total", {
        op: "describeExecution",
        error_tag: "Validation",
        error_kind: "InvalidInput"
      })
      const backend = yield* EngineBackend
      yield* Effect.flip(backend.describeExecution(Ids.unsafe.laneId("not-an-id") as unknown as Ids.ExecutionId))
      yield* backend.describeExecution(Ids.deterministicExecutionIdSolo(Ids.unsafe.laneId("l"), "00000000-0000-4000-8000-000000000000"))
      expect((yield* counter("flowfabric_engine_operations_total", { op: "describeExecution", backend: "memory" })) - callsBefore)
        .toBe(2)
      expect(
        (yield* counter("flowfabric_engine_operation_errors_total", {
          op: "describeExecution",
          error_tag: "Validation",
          error_kind: "InvalidInput"
        })) - errorsBefore
      ).toBe(1)
    }).pipe(Effect.provide(MemoryBackend.layer())))

  it.live("the worker runs each attempt in a span and counts claims and outcomes", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordingTracer
      yield* Effect.gen(function*() {
        const lane = yield* newLane()
        const before = yield* counter("flowfabric_worker_tasks_total", { kind: "add", outcome: "Completed" })
        const claimsBefore = yield* counter("flowfabric_worker_claims_total", { lane })
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })],
          idle: Schedule.spaced("10 millis"),
          workerId: "traced"
        }))
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        for (let i = 0; i < 50 && !(yield* isState(id, "completed")); i++) yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(worker)
        const attempt = spans.find((s) => s.name === "Worker.attempt")
        expect(attempt?.attributes.get("execution_id")).toBe(id)
        // the completion is written in the attempt's span
        const complete = spans.find((s) =>
          s.name === "EngineBackend.complete" && Option.isSome(s.parent) && s.parent.value.spanId === attempt!.spanId
        )
        expect(complete).toBeDefined()
        expect((yield* counter("flowfabric_worker_tasks_total", { kind: "add", outcome: "Completed" })) - before).toBe(1)
        expect((yield* counter("flowfabric_worker_claims_total", { lane })) - claimsBefore).toBe(1)
      }).pipe(Effect.withTracer(tracer), Effect.provide(MemoryBackend.layer()))
    }), 20_000)
})

/** The memory engine with some of its operations replaced (each given the engine's own service). */
const memoryWith = (overrides: (backend: EngineBackend.Service) => Partial<EngineBackend.Service>) =>
  Layer.effect(EngineBackend, Effect.map(EngineBackend, (backend) => ({ ...backend, ...overrides(backend) })))
    .pipe(Layer.provide(MemoryBackend.layer()))

/**
 * A subscription that offers no handoff: the memory engine's creates then leave the claim to the
 * worker's wake-up, the path these tests hold or break (a create that claims for the idle worker
 * is tested in memory-handoff.test.ts).
 */
const withoutHandoff = (backend: EngineBackend.Service): Partial<EngineBackend.Service> => ({
  subscribeWork: (args) =>
    Effect.map(backend.subscribeWork(args), (sub): EngineBackend.WorkSubscription => {
      const { onHandoff: _, ...rest } = sub
      return rest
    })
})

/** The error a wrapped operation fails with when a test injects a fault. */
const injected = (retryable: boolean) =>
  Effect.fail(new Transport({ backend: "memory", kind: "transport", retryable, message: "injected" }))

describe("execution ids on the submit path", () => {
  const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

  it("under the default Random, ids are fresh v4 UUIDs; a seeded Random repeats its ids", () => {
    const live = Array.from({ length: 200 }, () => Effect.runSync(Ids.randomUuid))
    expect(live.every((u) => V4.test(u))).toBe(true)
    expect(new Set(live).size).toBe(200)
    const seeded = () => Effect.runSync(Effect.withRandom(Ids.randomUuid, Random.make(15)))
    expect(seeded()).toBe(seeded())
    expect(V4.test(seeded())).toBe(true)
  })
})

describe("wake-up hub", () => {
  const quiet = { listen: () => Effect.void, unlisten: () => Effect.void }
  const store = {
    arm: Effect.succeed({ dueAt: Option.none(), claimAgain: false }),
    disarm: Effect.void,
    promoteDue: Effect.succeed(0)
  }

  it.live("a wake-up runs the onWake hook at once; the wait it ends returns when the hook calls done", () =>
    Effect.gen(function*() {
      const hub = makeHub(quiet)
      const sub = yield* hub.subscribe({ lanes: [Ids.unsafe.laneId("a")], workerInstanceId: Ids.unsafe.workerInstanceId("w") }, store)
      const calls: Array<() => void> = []
      sub.onWake((done) => void calls.push(done))
      const mark = yield* sub.wakeups
      const waiting = yield* Effect.fork(sub.await(mark, Duration.seconds(30)))
      yield* Effect.sleep("5 millis")
      hub.wake("b")
      hub.wake("a")
      yield* Effect.sleep("5 millis")
      expect(calls.length).toBe(1)
      // the hook has not said done: the wait goes on
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      calls[0]!()
      expect(yield* Fiber.join(waiting)).toBe(true)
      // cleared: a wake-up ends the next wait at once
      sub.onWake(undefined)
      const again = yield* Effect.fork(sub.await(yield* sub.wakeups, Duration.seconds(30)))
      yield* Effect.sleep("5 millis")
      hub.wake("a")
      expect(yield* Fiber.join(again)).toBe(true)
      expect(calls.length).toBe(1)
    }).pipe(Effect.scoped))

  it.live("a nudge runs the hook of a waiting subscription, but counts no wake-up and ends no wait", () =>
    Effect.gen(function*() {
      const hub = makeHub(quiet)
      const sub = yield* hub.subscribe({ lanes: [Ids.unsafe.laneId("a")], workerInstanceId: Ids.unsafe.workerInstanceId("w") }, store)
      // no hook set (the worker is not waiting): nothing runs
      hub.nudge("a")
      const calls: Array<() => void> = []
      sub.onWake((done) => void calls.push(done))
      const mark = yield* sub.wakeups
      const waiting = yield* Effect.fork(sub.await(mark, Duration.seconds(30)))
      yield* Effect.sleep("5 millis")
      hub.nudge("b")
      hub.nudge("a")
      yield* Effect.sleep("5 millis")
      expect(calls.length).toBe(1)
      calls[0]!()
      yield* Effect.sleep("5 millis")
      expect(yield* sub.wakeups).toBe(mark)
      expect(Option.isNone(yield* Fiber.poll(waiting))).toBe(true)
      // the wake-up that follows counts, runs the hook again, and ends the wait
      hub.wake("a")
      yield* Effect.sleep("5 millis")
      expect(calls.length).toBe(2)
      calls[1]!()
      expect(yield* Fiber.join(waiting)).toBe(true)
      expect(yield* sub.wakeups).toBe(mark + 1)
    }).pipe(Effect.scoped))
})

describe("lease keeper (memory)", () => {
  /** The memory engine, with `renew` failing (a retryable transport error, or a defect) while `failing` says so. */
  const flakyRenewals = Effect.gen(function*() {
    const failing = yield* Ref.make<false | "fail" | "die">(false)
    const renewals = yield* Ref.make(0)
    const layer = memoryWith((backend) => ({
      renew: (handle) =>
        Effect.zipRight(
          Ref.update(renewals, (n) => n + 1),
          Effect.flatMap(Ref.get(failing), (fail) =>
            fail === "fail" ? injected(true) : fail === "die" ? Effect.dieMessage("injected defect") : backend.renew(handle))
        )
    }))
    return { failing, renewals, layer }
  })

  const slowAdd = (ms: number) =>
    Worker.handler({ ...Add, run: (i) => Effect.as(Effect.sleep(Duration.millis(ms)), i.a + i.b) })

  const events = Effect.map(Ref.make<ReadonlyArray<Worker.WorkerEvent>>([]), (log) => ({
    onEvent: (e: Worker.WorkerEvent) => Ref.update(log, (all) => [...all, e]),
    ended: Effect.map(Ref.get(log), (all) => all.filter((e) => e._tag !== "Claimed"))
  }))

  // The TestClock drives the handlers, the lease keeper and the engine's expiry alike, so a busy
  // machine cannot make a renewal late.
  const waitFor = (condition: Effect.Effect<boolean>) =>
    Effect.gen(function*() {
      for (let i = 0; i < 300; i++) {
        if (yield* condition) return
        yield* TestClock.adjust("20 millis")
      }
      return yield* Effect.dieMessage("condition not met within 6 s")
    })

  /**
   * Runs `body` with a worker over the flaky engine: its handler sleeps `handlerMs`, its leases last
   * `leaseTtlMs` and are renewed every `renewEveryMs`; the worker is stopped when `body` returns.
   */
  const withWorker = <A>(
    o: { readonly handlerMs: number; readonly leaseTtlMs: number; readonly renewEveryMs: number; readonly concurrency?: number },
    body: (t: {
      readonly lane: Ids.LaneId
      readonly failing: Ref.Ref<false | "fail" | "die">
      readonly renewals: Ref.Ref<number>
      readonly ended: Effect.Effect<ReadonlyArray<Worker.WorkerEvent>>
    }) => Effect.Effect<A, unknown, EngineBackend>
  ) =>
    Effect.gen(function*() {
      const { failing, layer, renewals } = yield* flakyRenewals
      const log = yield* events
      return yield* Effect.gen(function*() {
        const lane = yield* newLane()
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [slowAdd(o.handlerMs)],
          concurrency: o.concurrency ?? 1,
          leaseTtl: Duration.millis(o.leaseTtlMs),
          renewEvery: Duration.millis(o.renewEveryMs),
          idle: Schedule.spaced("10 millis"),
          onEvent: log.onEvent
        }))
        const result = yield* body({ lane, failing, renewals, ended: log.ended })
        yield* Fiber.interrupt(worker)
        return result
      }).pipe(Effect.provide(layer))
    })

  for (const [mode, title] of [
    ["fail", "a renewal that fails is tried again on the keeper's beat; the attempt keeps its lease and completes"],
    ["die", "a renewal that dies counts as a failed one: the keeper goes on and the attempt completes"]
  ] as const) {
    it.effect(title, () =>
      withWorker({ handlerMs: 1_200, leaseTtlMs: 600, renewEveryMs: 200 }, ({ ended, failing, lane, renewals }) =>
        Effect.gen(function*() {
          const retriesBefore = yield* counter("flowfabric_worker_lease_renewals_total", { result: "retry" })
          yield* Ref.set(failing, mode)
          const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          // the first renewals (due 200 ms after the claim) fail, then the engine recovers before the expiry
          yield* waitFor(Effect.map(Ref.get(renewals), (n) => n >= 2))
          yield* Ref.set(failing, false)
          yield* waitFor(Effect.map(ended, (e) => e.length > 0))
          expect((yield* ended).map((e) => e._tag)).toEqual(["Completed"])
          expect(yield* isState(id, "completed")).toBe(true)
          expect((yield* counter("flowfabric_worker_lease_renewals_total", { result: "retry" })) - retriesBefore)
            .toBeGreaterThanOrEqual(2)
        })), 20_000)
  }

  it.effect("renewals that keep failing until the lease's expiry stop the handler; nothing is written", () =>
    withWorker({ handlerMs: 60_000, leaseTtlMs: 400, renewEveryMs: 100 }, ({ ended, failing, lane }) =>
      Effect.gen(function*() {
        yield* Ref.set(failing, "fail")
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        yield* waitFor(Effect.map(ended, (e) => e.length > 0))
        const [lost] = yield* ended
        expect(lost?._tag).toBe("LeaseLost")
        expect(lost?._tag === "LeaseLost" ? lost.reason : "").toContain("lease expired while renewals failed")
        // the worker wrote nothing: the execution is still the lost attempt's, until expireLeases marks it
        expect(yield* isState(id, "active")).toBe(true)
      })), 20_000)

  it.effect("one keeper renews every running attempt's lease", () =>
    withWorker({ handlerMs: 1_000, leaseTtlMs: 300, renewEveryMs: 100, concurrency: 20 }, ({ ended, lane, renewals }) =>
      Effect.gen(function*() {
        const ids = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
          Producer.submit(Add, { a: i, b: 1 }, { lane }))
        yield* waitFor(Effect.map(ended, (e) => e.length === 20))
        expect(new Set((yield* ended).map((e) => e._tag))).toEqual(new Set(["Completed"]))
        for (const id of ids) expect(yield* isState(id, "completed")).toBe(true)
        // each attempt outlived its TTL three times over, so each lease was renewed several times
        expect(yield* Ref.get(renewals)).toBeGreaterThanOrEqual(20 * 5)
      })), 20_000)
})

describe("lease keeper and revocations (memory)", () => {
  // A revoked attempt's execution can be claimed again, by the same worker, before the revocation
  // reaches the keeper: the keeper then holds two attempts of one execution and must stop the old one.
  it.effect("a revocation stops the revoked attempt even when the next attempt of its execution registered first", () =>
    Effect.gen(function*() {
      const backend = yield* EngineBackend
      const lane = yield* newLane()
      const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
      const first = yield* claimOne(lane)
      yield* backend.revokeLease({ executionId: id, reason: "operator" })
      const second = yield* claimOne(lane)
      const keeper = yield* LeaseKeeper.make({
        backend,
        leaseTtlMs: 3_600_000,
        renewEvery: Duration.minutes(20),
        onRenewal: () => Effect.void,
        describeLoss: (e) => e.message
      })
      const lease = (handle: typeof first): LeaseKeeper.Lease => ({
        executionId: id,
        handle,
        lock: Effect.unsafeMakeSemaphore(1),
        ended: () => false,
        stop: undefined
      })
      const [old, next] = [lease(first), lease(second)]
      const oldRun = yield* Effect.fork(keeper.guard(old, 0, Effect.never))
      const nextRun = yield* Effect.fork(keeper.guard(next, 0, Effect.never))
      yield* Effect.yieldNow()
      yield* keeper.recheck(id)
      expect(old.stop?._tag).toBe("LeaseLost")
      expect(Exit.isInterrupted(yield* Fiber.await(oldRun))).toBe(true)
      expect(next.stop).toBeUndefined()
      expect(nextRun.unsafePoll()).toBeNull()
    }).pipe(Effect.scoped, Effect.provide(MemoryBackend.layer())))
})

describe("input reads (memory)", () => {
  /** The memory engine, counting input reads; the claims leave their inputs out while `strip` is set. */
  const countingInputs = Effect.gen(function*() {
    const single = yield* Ref.make(0)
    const batches = yield* Ref.make<ReadonlyArray<number>>([])
    const strip = yield* Ref.make(false)
    const layer = memoryWith((backend) => ({
      getExecutionInput: (id) => Effect.zipRight(Ref.update(single, (n) => n + 1), backend.getExecutionInput(id)),
      getExecutionInputs: (ids) => Effect.zipRight(Ref.update(batches, (all) => [...all, ids.length]), backend.getExecutionInputs(ids)),
      completeAndClaim: (items, claim) =>
        Effect.flatMap(Ref.get(strip), (off) =>
          Effect.map(
            backend.completeAndClaim(items, claim),
            (r) => off ? { ...r, claimed: r.claimed.map(({ handle }) => ({ handle, input: Option.none() })) } : r
          ))
    }))
    return { single, batches, strip, layer }
  })

  const runFour = (strip: boolean) =>
    Effect.gen(function*() {
      const counts = yield* countingInputs
      yield* Ref.set(counts.strip, strip)
      return yield* Effect.gen(function*() {
        const lane = yield* newLane()
        const ids = yield* Effect.forEach([1, 2, 3, 4], (a) => Producer.submit(Add, { a, b: 1 }, { lane }))
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })],
          concurrency: 4,
          idle: Schedule.spaced("10 millis")
        }))
        for (let i = 0; i < 300; i++) {
          const states = yield* Effect.forEach(ids, (id) => isState(id, "completed"))
          if (states.every(Boolean)) break
          yield* Effect.sleep("10 millis")
        }
        yield* Fiber.interrupt(worker)
        expect(yield* Effect.forEach(ids, (id) => Producer.result(Add, id))).toEqual([2, 3, 4, 5].map(Option.some))
        return { single: yield* Ref.get(counts.single), batches: yield* Ref.get(counts.batches) }
      }).pipe(Effect.provide(counts.layer))
    })

  it.live("the inputs come with the claims: no read of its own", () =>
    Effect.gen(function*() {
      const { batches, single } = yield* runFour(false)
      expect(batches).toEqual([])
      expect(single).toBe(0)
    }), 20_000)

  it.live("an input a claim left out (past its byte budget) is read by its attempt", () =>
    Effect.gen(function*() {
      const { batches, single } = yield* runFour(true)
      expect(batches).toEqual([])
      expect(single).toBe(4)
    }), 20_000)
})

describe("claims at a wake-up (memory)", () => {
  it.live("a claim at a wake-up that dies gives its slots back: the worker picks the work up afterwards", () =>
    Effect.gen(function*() {
      // the memory engine whose next claim dies (a defect, not an error) while `dieNext` is set
      const dieNext = yield* Ref.make(false)
      const died = yield* Ref.make(0)
      const layer = memoryWith((backend) => ({
        ...withoutHandoff(backend),
        completeAndClaim: (items, claim) =>
          Effect.flatMap(Ref.getAndSet(dieNext, false), (die) =>
            die ?
              Effect.zipRight(Ref.update(died, (n) => n + 1), Effect.dieMessage("injected claim defect")) :
              backend.completeAndClaim(items, claim))
      }))
      yield* Effect.gen(function*() {
        const lane = yield* newLane()
        // an hour between polls: only a wake-up (or the loop right after one) claims
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })],
          concurrency: 1,
          idle: Schedule.spaced("1 hour")
        }))
        yield* Effect.sleep("50 millis")
        // the worker waits for a wake-up: the submit's wake-up claims, and that claim dies
        yield* Ref.set(dieNext, true)
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        for (let i = 0; i < 200 && !(yield* isState(id, "completed")); i++) yield* Effect.sleep("10 millis")
        expect(yield* Ref.get(died)).toBe(1)
        expect(yield* Producer.result(Add, id)).toEqual(Option.some(3))
        yield* Fiber.interrupt(worker)
      }).pipe(Effect.provide(layer))
    }), 20_000)
})

describe("batched completions (memory)", () => {
  /**
   * Submits `n` Add tasks (a = 0, 1, …; b = 1) on a new lane and runs one worker with batched
   * completions over them until every one completed; checks their results.
   */
  const addsToCompletion = (
    n: number,
    worker: {
      readonly concurrency: number
      readonly run: (input: { readonly a: number; readonly b: number }) => Effect.Effect<number>
      readonly idle: Schedule.Schedule<unknown>
      /** Default on. */
      readonly batchCompletions?: boolean
      readonly onEvent?: (event: Worker.WorkerEvent) => Effect.Effect<void>
    }
  ) =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const ids = yield* Effect.forEach(Array.from({ length: n }, (_, i) => i), (a) =>
        Producer.submit(Add, { a, b: 1 }, { lane }))
      const fiber = yield* Effect.fork(Worker.run({
        lanes: [lane],
        handlers: [Worker.handler({ ...Add, run: worker.run })],
        concurrency: worker.concurrency,
        batchCompletions: worker.batchCompletions ?? true,
        idle: worker.idle,
        ...(worker.onEvent === undefined ? {} : { onEvent: worker.onEvent })
      }))
      for (let i = 0; i < 300; i++) {
        if ((yield* Effect.forEach(ids, (id) => isState(id, "completed"))).every(Boolean)) break
        yield* Effect.sleep("10 millis")
      }
      yield* Fiber.interrupt(fiber)
      expect(yield* Effect.forEach(ids, (id) => Producer.result(Add, id))).toEqual(
        Array.from({ length: n }, (_, a) => Option.some(a + 1))
      )
    })

  it.live("a batch of completions that dies is written one by one and gives its slots back: later completions go on", () =>
    Effect.gen(function*() {
      // the memory engine whose next batch of completions dies (a defect, not an error) while `dieNext` is set
      const dieNext = yield* Ref.make(true)
      const died = yield* Ref.make(0)
      const layer = memoryWith((backend) => ({
        completeAndClaim: (items, claim) =>
          items.length === 0 ? backend.completeAndClaim(items, claim) : Effect.flatMap(Ref.getAndSet(dieNext, false), (die) =>
            die ?
              Effect.zipRight(Ref.update(died, (n) => n + 1), Effect.dieMessage("injected batch defect")) :
              backend.completeAndClaim(items, claim))
      }))
      yield* addsToCompletion(4, {
        // a handler that waits: its completion is written after the claim that started it gave its slots back
        run: (i) => Effect.as(Effect.sleep("5 millis"), i.a + i.b),
        concurrency: 1,
        idle: Schedule.spaced("10 millis")
      }).pipe(Effect.provide(layer))
      expect(yield* Ref.get(died)).toBe(1)
    }), 20_000)

  /**
   * The memory engine behind a 5 ms round trip (as a server's), recording the batch sizes of the
   * completions written with completeMany or completeAndClaim, and single completes; a batch fails
   * while `failBatch` is set.
   */
  const countingCompletes = Effect.gen(function*() {
    const singles = yield* Ref.make(0)
    const batches = yield* Ref.make<ReadonlyArray<number>>([])
    const failBatch = yield* Ref.make(false)
    const batch = <A>(n: number, write: Effect.Effect<A, EngineError>) =>
      Effect.zipRight(
        Effect.zipRight(Ref.update(batches, (all) => [...all, n]), Effect.sleep("5 millis")),
        Effect.flatMap(Ref.get(failBatch), (fail) => fail ? injected(false) : write)
      )
    const layer = memoryWith((backend) => ({
      complete: (handle, args) =>
        Effect.zipRight(Ref.update(singles, (n) => n + 1), Effect.zipRight(Effect.sleep("5 millis"), backend.complete(handle, args))),
      completeMany: (items) => batch(items.length, backend.completeMany(items)),
      completeAndClaim: (items, claim) =>
        items.length === 0 ? backend.completeAndClaim(items, claim) : batch(items.length, backend.completeAndClaim(items, claim))
    }))
    return { singles, batches, failBatch, layer }
  })

  const runTwenty = (failBatch: boolean) =>
    Effect.gen(function*() {
      const counts = yield* countingCompletes
      yield* Ref.set(counts.failBatch, failBatch)
      yield* addsToCompletion(20, {
        run: (i) => Effect.as(Effect.sleep("20 millis"), i.a + i.b),
        concurrency: 20,
        idle: Schedule.spaced("10 millis")
      }).pipe(Effect.provide(counts.layer))
      return { singles: yield* Ref.get(counts.singles), batches: yield* Ref.get(counts.batches) }
    })

  it.live("completions that queue while a write is in flight go in one call", () =>
    Effect.gen(function*() {
      const { batches, singles } = yield* runTwenty(false)
      // the first completion is written alone; the ones that finished meanwhile follow together
      expect(singles + batches.reduce((a, n) => a + n, 0)).toBe(20)
      expect(Math.max(0, ...batches)).toBeGreaterThan(1)
    }), 20_000)

  it.live("the completions of the attempts one claim started go in one call, which claims into all their slots", () =>
    Effect.gen(function*() {
      // every write of completions: [completions, claim max (-1: completeMany)]
      const writes = yield* Ref.make<ReadonlyArray<readonly [number, number]>>([])
      const record = (n: number, max: number) => Ref.update(writes, (all) => [...all, [n, max] as const])
      // (behind a 5 ms round trip, as a server's)
      const layer = memoryWith((backend) => ({
        completeMany: (items) => Effect.zipRight(record(items.length, -1), Effect.zipRight(Effect.sleep("5 millis"), backend.completeMany(items))),
        completeAndClaim: (items, claim) =>
          Effect.zipRight(
            items.length === 0 ? Effect.void : record(items.length, claim.max),
            Effect.zipRight(Effect.sleep("5 millis"), backend.completeAndClaim(items, claim))
          )
      }))
      yield* addsToCompletion(24, {
        // a handler that does not wait: each attempt runs to its completion on the claim's stack
        run: (i) => Effect.succeed(i.a + i.b),
        concurrency: 8,
        idle: Schedule.spaced("1 second")
      }).pipe(Effect.provide(layer))
      // 24 executions, 8 at a time: three writes of 8, each claiming into the 8 slots it frees
      expect(yield* Ref.get(writes)).toEqual([[8, 8], [8, 8], [8, 8]])
    }), 20_000)

  it.live("a batch of completions claims the next executions into the slots it frees, kinds honoured", () =>
    Effect.gen(function*() {
      // claims made with completions: [completions, claim max, claimed]
      const refills = yield* Ref.make<ReadonlyArray<readonly [number, number, number]>>([])
      const kinds = yield* Ref.make<ReadonlyArray<ReadonlyArray<string> | undefined>>([])
      const layer = memoryWith((backend) => ({
        completeAndClaim: (items, claim) =>
          Effect.tap(backend.completeAndClaim(items, claim), (r) =>
            items.length === 0 ? Effect.void : Effect.zipRight(
              Ref.update(refills, (all) => [...all, [items.length, claim.max, r.claimed.length] as const]),
              Ref.update(kinds, (all) => [...all, claim.args.kinds])
            ))
      }))
      yield* addsToCompletion(12, {
        run: (i) => Effect.as(Effect.sleep("5 millis"), i.a + i.b),
        concurrency: 3,
        idle: Schedule.spaced("1 second")
      }).pipe(Effect.provide(layer))
      const made = yield* Ref.get(refills)
      // the completions claimed most of the work; never more than the slots they freed plus the free ones
      expect(made.reduce((n, [, , got]) => n + got, 0)).toBeGreaterThanOrEqual(6)
      for (const [completions, max, got] of made) {
        expect(max).toBeLessThanOrEqual(3)
        expect(max).toBeGreaterThanOrEqual(completions)
        expect(got).toBeLessThanOrEqual(max)
      }
      for (const k of yield* Ref.get(kinds)) expect(k).toEqual(["add"])
    }), 20_000)

  it.live("without batched completions, the outputs of the handlers a claim started that were done as they returned go in one completeMany", () =>
    Effect.gen(function*() {
      const counts = yield* countingCompletes
      // every event, in order, with the log annotations of its report (Claimed is recorded as it is
      // reported, its report done at once: a report still to run would start the attempt in a fiber)
      const events = yield* Ref.make<ReadonlyArray<string>>([])
      const claimed: Array<string> = []
      yield* addsToCompletion(8, {
        run: (i) => Effect.succeed(i.a + i.b),
        concurrency: 8,
        batchCompletions: false,
        idle: Schedule.spaced("1 second"),
        onEvent: (event) =>
          event._tag === "Claimed" ?
            (claimed.push(`Claimed ${event.attempt}`), Effect.void) :
            Effect.flatMap(FiberRef.get(FiberRef.currentLogAnnotations), (annotations) =>
              Ref.update(events, (all) => [
                ...all,
                `${claimed.length} ${event._tag} ${event.attempt} ${
                  Option.getOrUndefined(HashMap.get(annotations, "executionId")) === event.executionId
                } ${Option.getOrUndefined(HashMap.get(annotations, "attempt"))}`
              ]))
      }).pipe(Effect.provide(counts.layer))
      // one claim took all 8; their outputs were written in one call, none alone
      expect(yield* Ref.get(counts.batches)).toEqual([8])
      expect(yield* Ref.get(counts.singles)).toBe(0)
      // each attempt reported Claimed, then Completed once written, in its own log annotations
      expect(claimed).toEqual(Array(8).fill("Claimed 1"))
      expect(yield* Ref.get(events)).toEqual(Array(8).fill("8 Completed 1 true 1"))
    }), 20_000)

  it.live("without batched completions, an output batch refused as a whole is written again completion by completion", () =>
    Effect.gen(function*() {
      const counts = yield* countingCompletes
      yield* Ref.set(counts.failBatch, true)
      yield* addsToCompletion(8, {
        run: (i) => Effect.succeed(i.a + i.b),
        concurrency: 8,
        batchCompletions: false,
        idle: Schedule.spaced("1 second")
      }).pipe(Effect.provide(counts.layer))
      expect(yield* Ref.get(counts.batches)).toEqual([8])
      expect(yield* Ref.get(counts.singles)).toBe(8)
    }), 20_000)

  it.live("an output written with others whose write fails alone is retried and reported on its own; the others complete", () =>
    Effect.gen(function*() {
      // the batch's first item fails its first write with a retryable error; its retry is a complete of its own
      const failedOnce = yield* Ref.make(false)
      const singles = yield* Ref.make(0)
      const layer = memoryWith((backend) => ({
        complete: (handle, args) => Effect.zipRight(Ref.update(singles, (n) => n + 1), backend.complete(handle, args)),
        completeMany: (items) =>
          Effect.flatMap(Ref.getAndSet(failedOnce, true), (failed) =>
            failed ?
              backend.completeMany(items) :
              Effect.map(backend.completeMany(items.slice(1)), (rest) => [
                Either.left(new Transport({ backend: "memory", kind: "transport", retryable: true, message: "injected" })),
                ...rest
              ]))
      }))
      const events = yield* Ref.make<ReadonlyArray<string>>([])
      yield* addsToCompletion(4, {
        run: (i) => Effect.succeed(i.a + i.b),
        concurrency: 4,
        batchCompletions: false,
        idle: Schedule.spaced("1 second"),
        onEvent: (event) => event._tag === "Claimed" ? Effect.void : Ref.update(events, (all) => [...all, event._tag])
      }).pipe(Effect.provide(layer))
      expect(yield* Ref.get(singles)).toBe(1)
      expect(yield* Ref.get(events)).toEqual(Array(4).fill("Completed"))
    }), 20_000)

  it.live("a report of an output written with others that dies does not keep the others from theirs", () =>
    Effect.gen(function*() {
      const completed = yield* Ref.make(0)
      let died = 0
      yield* addsToCompletion(4, {
        run: (i) => Effect.succeed(i.a + i.b),
        concurrency: 4,
        batchCompletions: false,
        idle: Schedule.spaced("1 second"),
        onEvent: (event) => {
          if (event._tag !== "Completed") return Effect.void
          // the first report dies as it is made; the others are reported
          if (died++ === 0) throw new Error("injected report defect")
          return Ref.update(completed, (n) => n + 1)
        }
      }).pipe(Effect.provide(MemoryBackend.layer()))
      expect(died).toBe(4)
      expect(yield* Ref.get(completed)).toBe(3)
    }), 20_000)

  it.live("reports of outputs written together that wait run at once, and their attempts hold their slots until they end", () =>
    Effect.gen(function*() {
      let live = 0, maxLive = 0, inReport = 0, maxInReport = 0
      yield* addsToCompletion(6, {
        run: (i) => Effect.succeed(i.a + i.b),
        concurrency: 2,
        batchCompletions: false,
        idle: Schedule.spaced("10 millis"),
        onEvent: (event) => {
          if (event._tag === "Claimed") {
            maxLive = Math.max(maxLive, ++live)
            return Effect.void
          }
          return Effect.gen(function*() {
            maxInReport = Math.max(maxInReport, ++inReport)
            yield* Effect.sleep("30 millis")
            inReport--
            live--
          })
        }
      }).pipe(Effect.provide(MemoryBackend.layer()))
      // never more attempts than slots, reports included; the two of one claim reported together
      expect(maxLive).toBe(2)
      expect(maxInReport).toBe(2)
    }), 20_000)

  it.live("a batch refused as a whole is written again completion by completion", () =>
    Effect.gen(function*() {
      const { batches, singles } = yield* runTwenty(true)
      expect(batches.length).toBeGreaterThan(0)
      // every completion ends up written by its own complete
      expect(singles).toBe(20)
    }), 20_000)
})

describe("a claim in flight when the worker stops (memory)", () => {
  /**
   * The memory engine whose claims that take something are held while `gate` is set: the claim is
   * made (the executions are leased to the worker), its reply waits for the gate. Every `delay` (a
   * release) takes a round trip of a second, as a server's would: a release nobody waits for is
   * still in flight when the worker has stopped.
   */
  const holding = Effect.gen(function*() {
    const gate = yield* Ref.make(Option.none<Deferred.Deferred<void>>())
    const held = yield* Ref.make(0)
    const layer = memoryWith((backend) => ({
      ...withoutHandoff(backend),
      completeAndClaim: (items, claim) =>
        Effect.flatMap(backend.completeAndClaim(items, claim), (r) =>
          Effect.flatMap(Ref.get(gate), (g) =>
            Option.isNone(g) || r.claimed.length === 0 ?
              Effect.succeed(r) :
              Effect.zipRight(Ref.update(held, (n) => n + 1), Effect.as(Deferred.await(g.value), r)))),
      delay: (handle, args) => Effect.zipRight(Effect.sleep("1 second"), backend.delay(handle, args))
    }))
    return { gate, held, layer }
  })

  /** Lets forked fibers run without moving the clock. */
  const settle = Effect.repeatN(Effect.yieldNow(), 5)
  /** Moves the clock by `stepMs` until `condition` holds (at most `max` steps). */
  const until = <E, R>(condition: Effect.Effect<boolean, E, R>, stepMs = 50, max = 400) =>
    Effect.gen(function*() {
      for (let i = 0; i < max; i++) {
        yield* settle
        if (yield* condition) return
        yield* TestClock.adjust(Duration.millis(stepMs))
      }
      return yield* Effect.dieMessage(`condition not met after ${max} steps of ${stepMs} ms`)
    })
  const ownership = (id: Ids.ExecutionId) => Effect.map(info(id), (i) => i.stateVector.ownershipState)

  const cases = [
    { path: "at a wake-up", late: false },
    { path: "at a wake-up", late: true },
    { path: "with a batch of completions", late: false },
    { path: "with a batch of completions", late: true }
  ] as const
  for (const { late, path } of cases) {
    const when = late ? "after the grace period and the release timeout" : "within the grace period"
    it.effect(`a claim made ${path} that returns ${when}: handed back unrun, claimable as soon as the worker stopped`, () =>
      Effect.gen(function*() {
        const h = yield* holding
        yield* Effect.gen(function*() {
          const lane = yield* newLane()
          // runs of the handler per execution (`a`) on the first worker
          const runs = yield* Ref.make<ReadonlyArray<number>>([])
          const first = yield* Deferred.make<void>()
          const events = yield* Ref.make<ReadonlyArray<string>>([])
          const worker = yield* Effect.fork(Worker.run({
            lanes: [lane],
            handlers: [Worker.handler({
              ...Add,
              run: (i) =>
                Effect.zipRight(
                  Ref.update(runs, (all) => [...all, i.a]),
                  // the batch case: the first execution completes once the claim is to be held
                  i.a === 0 ? Effect.as(Deferred.await(first), i.a + i.b) : Effect.succeed(i.a + i.b)
                )
            })],
            concurrency: 1,
            gracePeriod: "1 second",
            leaseTtl: "30 seconds",
            idle: Schedule.spaced("1 hour"),
            batchCompletions: path !== "at a wake-up",
            workerInstanceId: "first",
            onEvent: (e) => Ref.update(events, (all) => [...all, `${e._tag}:${e.executionId}`])
          }))
          yield* settle
          const gate = yield* Deferred.make<void>()
          let held: Ids.ExecutionId
          if (path === "at a wake-up") {
            // the worker waits for a wake-up: the submit's wake-up claims, and that claim is held
            yield* Ref.set(h.gate, Option.some(gate))
            held = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          } else {
            // the worker's one slot runs the first execution; its completion claims the next one
            const x = yield* Producer.submit(Add, { a: 0, b: 1 }, { lane })
            yield* until(isState(x, "active"))
            held = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
            yield* Ref.set(h.gate, Option.some(gate))
            yield* Deferred.succeed(first, undefined)
          }
          yield* until(Effect.map(Ref.get(h.held), (n) => n === 1))
          expect(yield* ownership(held)).toBe("leased")
          // the worker stops while the claim is in flight
          const stopping = yield* Effect.fork(Fiber.interrupt(worker))
          yield* settle
          yield* TestClock.adjust(late ? "6100 millis" : "200 millis")
          yield* settle
          yield* Deferred.succeed(gate, undefined)
          yield* Ref.set(h.gate, Option.none())
          yield* until(Effect.map(Fiber.poll(stopping), Option.isSome))
          // the moment the worker has stopped, the execution is no longer leased: handed back unrun
          expect(yield* ownership(held)).not.toBe("leased")
          expect(["delayed", "waiting"]).toContain(yield* state(held))
          expect((yield* Ref.get(runs)).filter((a) => a === 1)).toEqual([])
          expect((yield* Ref.get(events)).filter((e) => e.endsWith(held))).toEqual([`Claimed:${held}`, `Released:${held}`])
          // another worker takes it at once, long before its lease would have expired
          const second = yield* Effect.fork(Worker.run({
            lanes: [lane],
            handlers: [Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })],
            idle: Schedule.spaced("1 hour"),
            workerInstanceId: "second"
          }))
          yield* until(isState(held, "completed"), 50, 40)
          expect(yield* Producer.result(Add, held)).toEqual(Option.some(3))
          yield* Fiber.interrupt(second)
        }).pipe(Effect.provide(h.layer))
      }), 20_000)
  }

  it.effect("with releaseOnShutdown off, what a claim in flight returns is dropped unrun: no handler starts", () =>
    Effect.gen(function*() {
      const h = yield* holding
      yield* Effect.gen(function*() {
        const lane = yield* newLane()
        const runs = yield* Ref.make(0)
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [Worker.handler({ ...Add, run: (i) => Effect.zipRight(Ref.update(runs, (n) => n + 1), Effect.succeed(i.a + i.b)) })],
          concurrency: 1,
          releaseOnShutdown: false,
          leaseTtl: "30 seconds",
          idle: Schedule.spaced("1 hour")
        }))
        yield* settle
        const gate = yield* Deferred.make<void>()
        yield* Ref.set(h.gate, Option.some(gate))
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        yield* until(Effect.map(Ref.get(h.held), (n) => n === 1))
        const stopping = yield* Effect.fork(Fiber.interrupt(worker))
        yield* settle
        // the worker does not end before its claim does (the claim cannot be interrupted)
        expect(Option.isNone(yield* Fiber.poll(stopping))).toBe(true)
        yield* Deferred.succeed(gate, undefined)
        yield* until(Effect.map(Fiber.poll(stopping), Option.isSome))
        // dropped as the running attempts are: its handler never ran, its lease expires
        expect(yield* Ref.get(runs)).toBe(0)
        expect(yield* ownership(id)).toBe("leased")
      }).pipe(Effect.provide(h.layer))
    }), 20_000)
})

describe("attempts settled at once, and their fibers' refs (memory)", () => {
  const keeperOn = (backend: EngineBackend.Service) =>
    LeaseKeeper.make({
      backend,
      leaseTtlMs: 3_600_000,
      renewEvery: Duration.minutes(20),
      onRenewal: () => Effect.void,
      describeLoss: (e) => e.message
    })
  const leaseOf = (executionId: string, handle: Worker.TaskContext<unknown>["handle"]): LeaseKeeper.Lease => ({
    executionId,
    handle,
    lock: undefined,
    ended: () => false,
    stop: undefined
  })

  it.effect("settledOn: the exit goes to `then`; a revocation kept for the attempt is dropped with it", () =>
    Effect.gen(function*() {
      const renewals = yield* Ref.make(0)
      return yield* Effect.gen(function*() {
        const backend = yield* EngineBackend
        const lane = yield* newLane()
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        const handle = yield* claimOne(lane)
        const keeper = yield* keeperOn(backend)
        // a revocation that came before its attempt registered is kept for it
        yield* keeper.recheck(id)
        const lease = leaseOf(id, handle)
        const exit = yield* keeper.settledOn(lease, Exit.succeed(7), (e) => Effect.succeed(e))
        expect(exit).toEqual(Exit.succeed(7))
        expect(lease.stop).toBeUndefined()
        // the kept revocation went with the settled attempt: the next one of the same execution is not renewed at once
        const next = yield* Effect.fork(keeper.guard(leaseOf(id, handle), 0, Effect.never))
        yield* Effect.yieldNow()
        yield* Effect.yieldNow()
        expect(yield* Ref.get(renewals)).toBe(0)
        yield* Fiber.interrupt(next)
      }).pipe(
        Effect.scoped,
        Effect.provide(memoryWith((backend) => ({
          renew: (handle) => Effect.zipRight(Ref.update(renewals, (n) => n + 1), backend.renew(handle))
        })))
      )
    }))

  it.effect("settledOn once the keeper shuts down: `then` gets an interruption and the lease says Shutdown", () =>
    Effect.gen(function*() {
      const backend = yield* EngineBackend
      const lane = yield* newLane()
      const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
      const handle = yield* claimOne(lane)
      const keeper = yield* keeperOn(backend)
      yield* keeper.shutdown
      const lease = leaseOf(id, handle)
      const exit = yield* keeper.settledOn(lease, Exit.succeed(7), (e) => Effect.succeed(e))
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(lease.stop?._tag).toBe("Shutdown")
    }).pipe(Effect.scoped, Effect.provide(MemoryBackend.layer())))

  it.live("a handler whose outcome is known as it returns: completed, failed as classified, a defect as InfraCrash; the worker's logs carry the attempt's annotations", () =>
    Effect.gen(function*() {
      const lines = yield* Ref.make<ReadonlyArray<{ readonly message: unknown; readonly annotations: Record<string, unknown> }>>([])
      const logger = Logger.make(({ annotations, message }) => {
        const record: Record<string, unknown> = {}
        for (const [k, v] of annotations) record[k] = v
        Effect.runSync(Ref.update(lines, (all) => [...all, { message, annotations: record }]))
      })
      const lane = yield* newLane()
      const ok = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
      const bad = yield* Producer.submit(Add, { a: -1, b: 0 }, { lane })
      const dies = yield* Producer.submit(Add, { a: -2, b: 0 }, { lane })
      const worker = yield* Effect.fork(Worker.run({
        lanes: [lane],
        handlers: [Worker.handler({
          ...Add,
          classify: () => "Permanent",
          run: (i) => i.a === -1 ? Effect.fail("negative") : i.a === -2 ? Effect.die("boom") : Effect.succeed(i.a + i.b)
        })],
        concurrency: 4,
        idle: Schedule.spaced("10 millis")
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger))))
      const settled = Effect.map(
        Effect.all([isState(ok, "completed"), isState(bad, "failed"), isState(dies, "failed")]),
        (xs) => xs.every(Boolean)
      )
      for (let i = 0; i < 300 && !(yield* settled); i++) yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(worker)
      expect(yield* settled).toBe(true)
      expect(yield* Producer.result(Add, ok)).toEqual(Option.some(3))
      const failed = (yield* Ref.get(lines)).filter((l) => String(l.message).includes("failed ("))
      expect(failed.map((l) => [l.annotations.executionId, l.annotations.attempt, l.annotations.lane]).sort()).toEqual(
        [[bad, 1, lane], [dies, 1, lane]].sort()
      )
      expect(failed.map((l) => String(l.message)).sort()).toEqual([
        expect.stringContaining("failed (InfraCrash)"),
        expect.stringContaining("failed (Permanent)")
      ].sort())
    }).pipe(Effect.provide(MemoryBackend.layer())))

  it.live("a FiberRef that forks a value of its own gives each attempt's fiber its own (the attempt's refs are made as Effect forks them)", () =>
    Effect.gen(function*() {
      let made = 0
      const perFiber = FiberRef.unsafeMake<{ readonly n: number }>({ n: 0 }, { fork: () => ({ n: ++made }) })
      const seen = yield* Ref.make<ReadonlyArray<{ readonly n: number }>>([])
      const lane = yield* newLane()
      const ids = yield* Effect.forEach([1, 2, 3], (a) => Producer.submit(Add, { a, b: 0 }, { lane }))
      const worker = yield* Effect.fork(Worker.run({
        lanes: [lane],
        handlers: [Worker.handler({
          ...Add,
          run: (i) => Effect.flatMap(FiberRef.get(perFiber), (v) => Effect.as(Ref.update(seen, (all) => [...all, v]), i.a))
        })],
        concurrency: 3,
        idle: Schedule.spaced("10 millis")
      }).pipe(Effect.locally(perFiber, { n: -1 })))
      for (let i = 0; i < 300 && (yield* Ref.get(seen)).length < ids.length; i++) yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(worker)
      const values = yield* Ref.get(seen)
      expect(values).toHaveLength(3)
      expect(new Set(values).size).toBe(3)
    }).pipe(Effect.provide(MemoryBackend.layer())))
})
