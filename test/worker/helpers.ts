/**
 * Shared machinery of the worker, reconciler and producer suites: how a test
 * gets its engine, unique lanes, time control on `TestClock`, and small
 * recipes. Everything talks to the `EngineBackend` and `Maintenance` tags.
 */
import { it } from "@effect/vitest"
import {
  Clock,
  Duration,
  Deferred,
  Effect,
  Either,
  Fiber,
  type Layer,
  Option,
  Ref,
  Schema,
  TestClock,
  TestServices
} from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, LaneId } from "../../src/Ids.js"
import type { Maintenance } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import * as Producer from "../../src/Producer.js"
import * as Reconciler from "../../src/Reconciler.js"
import type * as Worker from "../../src/Worker.js"

/** What a test body may use. */
export type Env = EngineBackend | Maintenance | TestServices.TestServices
export type Body = Effect.Effect<void, unknown, Env>

export interface SuiteOptions {
  /**
   * Real milliseconds to let I/O complete at each step of `until` (default
   * 0: one turn of the event loop, enough for the in-memory engine).
   */
  readonly settleMs?: number
  /** vitest timeout of one test in ms (default 30 000). */
  readonly timeout?: number
}

/** Registers a test that runs `body` under `TestClock` with `layer` (built per test). */
export const makeTest = (
  layer: Layer.Layer<EngineBackend | Maintenance, unknown>,
  options: SuiteOptions | undefined
) =>
(title: string, body: (h: Harness) => Body) =>
  it.effect(
    title,
    () => Effect.provide(withTeardownClock(Effect.suspend(() => body(harness(options)))), layer),
    options?.timeout ?? 30_000
  )

/**
 * Runs `body` in a fiber of its own; once it ends, the `TestClock` moves on by itself (20 ms every
 * real millisecond, up to 30 s of real time) until that fiber is gone. The workers a test forked
 * are interrupted as it ends, and a worker's drain waits on the clock: without this, a test that
 * ends (fails) with an attempt or a claim in flight would hang in its teardown.
 */
const withTeardownClock = <A, E, R>(body: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const gone = yield* Deferred.make<void>()
    const tick = Effect.zipRight(TestClock.adjust("20 millis"), TestServices.provideLive(Effect.sleep("1 millis")))
    const pump = Effect.repeatN(tick, 30_000).pipe(Effect.raceFirst(Deferred.await(gone)))
    // (forked from a finalizer, which is uninterruptible: the pump must be interruptible itself)
    const fiber = yield* Effect.fork(
      Effect.onExit(body, () => Effect.asVoid(Effect.forkDaemon(Effect.interruptible(pump))))
    )
    const exit = yield* Fiber.await(fiber).pipe(
      Effect.onInterrupt(() => Fiber.interrupt(fiber)),
      Effect.ensuring(Deferred.succeed(gone, undefined))
    )
    return yield* exit
  })

// ---------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------

export interface Harness {
  /** Lets forked fibers (and server I/O) run without moving the clock. */
  readonly settle: Effect.Effect<void>
  /**
   * Moves the `TestClock` by `stepMs` until `condition` holds, running
   * `tick` (e.g. a maintenance pass) at each step; dies after `maxSteps`.
   */
  readonly until: <E, R>(
    condition: Effect.Effect<boolean, E, R>,
    options?: {
      readonly stepMs?: number
      readonly maxSteps?: number
      readonly tick?: Effect.Effect<unknown, unknown, Env>
      readonly label?: string
    }
  ) => Effect.Effect<void, E | unknown, R | Env>
  /** Moves the clock by `ms` in steps, letting fibers run at each step. */
  readonly advance: (ms: number, stepMs?: number) => Effect.Effect<void>
  /** Waits (real time, clock untouched) until `condition` holds; dies after `withinMs` of real time. */
  readonly eventually: <E, R>(condition: Effect.Effect<boolean, E, R>, withinMs?: number) => Effect.Effect<void, E, R>
}

/** " (at file:line)" of the first frame of `stack` outside this file: the test that waited. */
const callerOf = (stack: string | undefined): string => {
  const frame = stack?.split("\n").slice(1).find((line) => !line.includes("helpers.ts") && line.includes("/test/"))
  const where = frame?.match(/\/(test\/[^:)]+:\d+)/)?.[1]
  return where === undefined ? "" : ` (at ${where})`
}

const harness = (options: SuiteOptions | undefined): Harness => {
  const settleMs = options?.settleMs ?? 0
  const settle = Effect.zipRight(
    Effect.repeatN(Effect.yieldNow(), 3),
    TestServices.provideLive(Effect.sleep(Duration.millis(settleMs)))
  )
  return {
    settle,
    until: (condition, o) =>
      Effect.gen(function*() {
        const step = o?.stepMs ?? 50
        const max = o?.maxSteps ?? 400
        for (let i = 0; i < max; i++) {
          yield* settle
          if (yield* condition) return
          if (o?.tick !== undefined) yield* o.tick
          yield* TestClock.adjust(Duration.millis(step))
        }
        yield* settle
        if (yield* condition) return
        return yield* Effect.dieMessage(`condition ${o?.label ?? ""} not met after ${max} steps of ${step} ms`)
      }),
    // The condition waits on server I/O, whose speed depends on the machine's load: the bound is
    // live time, generous, not a number of polls.
    eventually: (condition, withinMs = 30_000) => {
      const at = callerOf(new Error().stack)
      return Effect.gen(function*() {
        const liveNow = TestServices.provideLive(Clock.currentTimeMillis)
        const deadline = (yield* liveNow) + withinMs
        for (;;) {
          yield* settle
          if (yield* condition) return
          if ((yield* liveNow) > deadline) return yield* Effect.dieMessage(`condition not met within ${withinMs} ms${at}`)
          yield* TestServices.provideLive(Effect.sleep(Duration.millis(Math.max(1, settleMs))))
        }
      })
    },
    advance: (ms, stepMs = 50) =>
      Effect.gen(function*() {
        let left = ms
        while (left > 0) {
          const d = Math.min(stepMs, left)
          yield* settle
          yield* TestClock.adjust(Duration.millis(d))
          left -= d
        }
        yield* settle
      })
  }
}

/** Every maintenance pass once (drained). */
export const passes = Reconciler.runOnce()

// ---------------------------------------------------------------------------
// Ids and engine recipes
// ---------------------------------------------------------------------------

/** A lane no other test uses. */
export const newLane = (prefix = "t"): Effect.Effect<LaneId> =>
  Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`${prefix}-${u.slice(0, 12)}`))

export const NS = "worker-suite"

export const seedHmac = Effect.flatMap(EngineBackend, (b) =>
  b.seedWaitpointHmacSecret({ kid: "suite", secretHex: "5ec2e7a1b0c4d9f3".repeat(4) }).pipe(Effect.ignore))

export const state = (id: ExecutionId): Effect.Effect<M.PublicState | "gone", EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.readExecutionState(id), Option.getOrElse((): M.PublicState | "gone" => "gone")))

export const info = (id: ExecutionId): Effect.Effect<M.ExecutionInfo, EngineError | string, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.flatMap(b.readExecutionInfo(id), Option.match({
      onNone: () => Effect.fail(`no execution ${id}`),
      onSome: Effect.succeed
    })))

export const snapshot = (id: ExecutionId): Effect.Effect<M.ExecutionSnapshot, EngineError | string, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.flatMap(b.describeExecution(id), Option.match({
      onNone: () => Effect.fail(`no execution ${id}`),
      onSome: Effect.succeed
    })))

export const isState = (id: ExecutionId, ...states: ReadonlyArray<M.PublicState>) =>
  Effect.map(state(id), (s) => s !== "gone" && states.includes(s))

/** Creates an execution with raw payload bytes (bypassing the typed producer). */
export const createRaw = (
  lane: LaneId,
  kind: string,
  payload: Uint8Array,
  extra: Partial<M.CreateExecutionArgsInput> = {}
): Effect.Effect<ExecutionId, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const executionId = yield* Ids.executionIdSolo(lane)
    yield* b.createExecution({
      executionId,
      namespace: Ids.unsafe.namespace(NS),
      laneId: lane,
      executionKind: kind,
      inputPayload: payload,
      ...extra
    })
    return executionId
  })

export const policyOf = (name: string): M.ClaimPolicy => ({
  workerId: Ids.unsafe.workerId(name),
  workerInstanceId: Ids.unsafe.workerInstanceId(`${name}-i`),
  leaseTtlMs: 30_000
})

/** Claims one execution on `lane` by hand. */
export const claimOne = (lane: LaneId, policy: M.ClaimPolicy = policyOf("manual")) =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.flatMap(b.claim({ lane, capabilities: { tokens: [] }, policy }), Option.match({
      onNone: () => Effect.fail("nothing to claim" as const),
      onSome: Effect.succeed
    })))

// ---------------------------------------------------------------------------
// Tasks used across suites
// ---------------------------------------------------------------------------

export const Add = Producer.task({
  kind: "add",
  input: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
  output: Schema.Number
})

export const Echo = Producer.task({
  kind: "echo",
  input: Schema.Struct({ text: Schema.String }),
  output: Schema.Struct({ text: Schema.String, attempt: Schema.Number, resumed: Schema.Boolean })
})

export const utf8 = (s: string) => new TextEncoder().encode(s)

/** Collects worker events. */
export const eventLog = Effect.gen(function*() {
  const events = yield* Ref.make<ReadonlyArray<Worker.WorkerEvent>>([])
  return {
    onEvent: (e: Worker.WorkerEvent) => Ref.update(events, (all) => [...all, e]),
    all: Ref.get(events),
    of: (id: ExecutionId) => Effect.map(Ref.get(events), (all) => all.filter((e) => e.executionId === id)),
    has: (id: ExecutionId, tag: Worker.WorkerEvent["_tag"]) =>
      Effect.map(Ref.get(events), (all) => all.some((e) => e.executionId === id && e._tag === tag)),
    /** Every claimed attempt has reported its end (the worker reports it after the write that ended it). */
    settled: Effect.map(Ref.get(events), (all) => {
      const claimed = all.filter((e) => e._tag === "Claimed").length
      return claimed === all.length - claimed
    })
  }
})

export const now = Clock.currentTimeMillis

/** The `Either` of an effect, for asserting on failures. */
export const attempt = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.either(effect)
export const leftOf = <A, E>(e: Either.Either<A, E>): E | undefined => (Either.isLeft(e) ? e.left : undefined)
