/**
 * Wake-ups, due timers and prompt cancellation of the worker runtime, over any backend layer:
 *
 * ```ts
 * wakeupSuite("valkey", layer, { settleMs: 2, dropWakeups: killSubscriberConnections })
 * ```
 *
 * Every test runs under `TestClock` with an idle poll of an hour and leases renewed every 20
 * minutes: the clock moves only where a test says so (a due time), so a pickup or an interruption
 * that happens without it can only come from a wake-up or a revocation the backend pushed.
 */
import { describe, expect } from "@effect/vitest"
import { Chunk, Data, Deferred, Effect, Fiber, Option, Ref, Schedule, TestClock, TestServices } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import type { LaneId } from "../../src/Ids.js"
import { Maintenance } from "../../src/Maintenance.js"
import * as Producer from "../../src/Producer.js"
import * as Worker from "../../src/Worker.js"
import {
  claimOne,
  Echo,
  eventLog,
  isState,
  makeTest,
  newLane,
  policyOf,
  seedHmac,
  snapshot,
  type SuiteOptions,
  utf8
} from "./helpers.js"

export interface WakeupSuiteOptions extends SuiteOptions {
  /** Drops the connections the backend's wake-ups arrive on (they reconnect by themselves). */
  readonly dropWakeups?: Effect.Effect<void, unknown, EngineBackend> | undefined
}

class Flaky extends Data.TaggedError("Flaky")<{}> {}

/**
 * The worker's backend with a count of its `arm`s and of the claims a create made for it while it
 * waited (`onHandoff`, Postgres), so a test knows when the worker waits.
 */
const watched = Effect.gen(function*() {
  const backend = yield* EngineBackend
  const arms = yield* Ref.make(0)
  let handed = 0
  const service: EngineBackend.Service = {
    ...backend,
    subscribeWork: (args) =>
      Effect.map(backend.subscribeWork(args), (sub): EngineBackend.WorkSubscription => ({
        ...sub,
        arm: Effect.tap(sub.arm, () => Ref.update(arms, (n) => n + 1)),
        ...(sub.onHandoff === undefined ? {} : {
          onHandoff: (f) =>
            sub.onHandoff?.(f === undefined ? undefined : (lane) => {
              const h = f(lane)
              if (h !== undefined) handed++
              return h
            })
        })
      }))
  }
  return { service, arms: Ref.get(arms), handed: Effect.sync(() => handed) }
})

interface HeldCompletions {
  /** The worker's backend: its batches of completions are held once written, until `release`. */
  readonly held: EngineBackend.Service
  readonly release: Effect.Effect<void>
  /** No `completeAndClaim` in flight. */
  readonly quiet: Effect.Effect<boolean>
  /** The wake-ups of the subscription passed to `withWakeups`. */
  readonly wakeups: Effect.Effect<number>
  readonly withWakeups: (sub: EngineBackend.WorkSubscription) => EngineBackend.WorkSubscription
}

/**
 * Runs `body` with `service` whose batches of completions (a `completeAndClaim` that completes)
 * are held once written, until `release` (or the end of `body`: a worker's drain waits for its
 * batch): meanwhile the worker's slots stay taken, or reserved for the batch's own claim.
 */
const holdingCompletions = <A, E, R>(
  service: EngineBackend.Service,
  body: (batches: HeldCompletions) => Effect.Effect<A, E, R>
) =>
  Effect.flatMap(Deferred.make<void>(), (released) => {
    let inFlight = 0
    let wakeups: Effect.Effect<number> = Effect.succeed(0)
    const release = Deferred.succeed(released, undefined)
    const batches: HeldCompletions = {
      held: {
        ...service,
        completeAndClaim: (items, claim) =>
          Effect.suspend(() => {
            inFlight++
            return service.completeAndClaim(items, claim).pipe(
              Effect.tap(() => (items.length === 0 ? Effect.void : Deferred.await(released))),
              Effect.ensuring(Effect.sync(() => void inFlight--))
            )
          })
      },
      release: Effect.asVoid(release),
      quiet: Effect.sync(() => inFlight === 0),
      wakeups: Effect.suspend(() => wakeups),
      withWakeups: (sub) => {
        wakeups = sub.wakeups
        return sub
      }
    }
    return Effect.ensuring(body(batches), release)
  })

/**
 * Whether a fiber sleeps on the `TestClock` until `at`: the worker waits for a due time. A test
 * moves the clock only once that wait started; the worker measures its wait from the time it read
 * before, so a move in between would push the wait's end past the due time.
 */
const sleepsUntil = (at: number) => Effect.map(TestClock.sleeps(), Chunk.some((end) => end === at))

const echo = (run: (text: string, ctx: Worker.TaskContext<{ readonly text: string }>) => Effect.Effect<string, unknown>) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) => Effect.map(run(input.text, ctx), (text) => ({ text, attempt: ctx.attempt, resumed: ctx.resumed }))
  })

const submit = (lane: LaneId, text: string, options: Partial<Producer.SubmitOptions> = {}) =>
  Producer.submit(Echo, { text }, { lane, namespace: "wakeup-suite", ...options })

export const wakeupSuite = (
  name: string,
  layer: Parameters<typeof makeTest>[0],
  options?: WakeupSuiteOptions
): void => {
  const test = makeTest(layer, options)

  /**
   * Starts a worker that polls once an hour and renews its leases every 20 minutes, and returns
   * once it waits for a wake-up (it armed after its first empty claim).
   */
  const idleWorker = <H extends Worker.Handler<unknown>>(
    eventually: (c: Effect.Effect<boolean>) => Effect.Effect<void>,
    o: Worker.WorkerOptions<H>
  ) =>
    Effect.gen(function*() {
      const { arms, handed, service } = yield* watched
      const fiber = yield* Effect.fork(
        Worker.run({
          idle: Schedule.spaced("1 hour"),
          leaseTtl: "1 hour",
          renewEvery: "20 minutes",
          gracePeriod: 0,
          workerId: "wakeup-suite",
          ...o
        }).pipe(Effect.provideService(EngineBackend, service))
      )
      yield* eventually(Effect.map(arms, (n) => n >= 1))
      return { fiber, arms, handed }
    })

  describe(`wake-ups (${name})`, () => {
    test("an idle worker is woken by a new execution on its lane", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const other = yield* newLane()
        yield* idleWorker(eventually, { lanes: [other, lane], handlers: [echo((t) => Effect.succeed(t))] })
        const id = yield* submit(lane, "hello")
        yield* eventually(isState(id, "completed"))
        expect(yield* Producer.result(Echo, id)).toEqual(Option.some({ text: "hello", attempt: 1, resumed: false }))
      }))

    test("a wake-up starts the claim at once, before the worker's wait returns", ({ eventually }) =>
      Effect.flatMap(watched, ({ arms, service }) =>
        holdingCompletions(service, (batches) =>
          Effect.gen(function*() {
            const lane = yield* newLane()
            // The worker's wait never ends for a wake-up, and no create claims for it (no
            // `onHandoff`): only a claim started by a wake-up itself (`onWake`) picks the work up.
            const deaf: EngineBackend.Service = {
              ...batches.held,
              subscribeWork: (args) =>
                Effect.map(batches.held.subscribeWork(args), ({ onHandoff: _, ...sub }) =>
                  batches.withWakeups({ ...sub, await: () => Effect.never }))
            }
            yield* Effect.fork(
              Worker.run({
                lanes: [lane],
                handlers: [echo((t) => Effect.succeed(t))],
                idle: Schedule.spaced("1 hour"),
                concurrency: 2,
                workerId: "wakeup-suite"
              }).pipe(Effect.provideService(EngineBackend, deaf))
            )
            yield* eventually(Effect.map(arms, (n) => n >= 1))
            const first = yield* submit(lane, "one")
            yield* eventually(isState(first, "completed"))
            // The first's completion is written, and its batch (Valkey, Postgres) is still in
            // flight, its claim holding every slot of the worker: a wake-up now would start no
            // claim (the loop claims for it once its wait returns, which this one never does).
            // The next execution comes once no claim is in flight and the first's wake-up has
            // come (a create wakes its lane once).
            yield* batches.release
            yield* eventually(
              Effect.map(Effect.all([batches.quiet, batches.wakeups]), ([quiet, n]) => quiet && n >= 1)
            )
            const second = yield* submit(lane, "two")
            yield* eventually(isState(second, "completed"))
            expect(yield* Producer.result(Echo, second)).toEqual(
              Option.some({ text: "two", attempt: 1, resumed: false })
            )
          }))))

    test("a wake-up while every slot is taken is claimed once a slot is free", ({ eventually }) =>
      Effect.flatMap(watched, ({ arms, service }) =>
        holdingCompletions(service, (batches) =>
          Effect.gen(function*() {
            const lane = yield* newLane()
            const worker: EngineBackend.Service = {
              ...batches.held,
              subscribeWork: (args) => Effect.map(batches.held.subscribeWork(args), batches.withWakeups)
            }
            yield* Effect.fork(
              Worker.run({
                lanes: [lane],
                handlers: [echo((t) => Effect.succeed(t))],
                idle: Schedule.spaced("1 hour"),
                concurrency: 2,
                workerId: "wakeup-suite"
              }).pipe(Effect.provideService(EngineBackend, worker))
            )
            yield* eventually(Effect.map(arms, (n) => n >= 1))
            const first = yield* submit(lane, "one")
            yield* eventually(isState(first, "completed"))
            // the second's wake-up comes while the first's batch holds the worker's slots
            const seen = yield* batches.wakeups
            const second = yield* submit(lane, "two")
            yield* eventually(Effect.map(batches.wakeups, (n) => n > seen))
            yield* batches.release
            yield* eventually(isState(second, "completed"))
          }))))

    test("work that arrives between the empty claim and the wait is not lost", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const backend = yield* EngineBackend
        const injected = yield* Ref.make(Option.none<Ids.ExecutionId>())
        // the worker's first claim finds nothing; the execution is created before the claim
        // returns, so its wake-up (if any) comes before the worker waits
        const racing: EngineBackend.Service = {
          ...backend,
          completeAndClaim: (items, claim) =>
            Effect.tap(backend.completeAndClaim(items, claim), ({ claimed }) =>
              Effect.gen(function*() {
                if (claimed.length > 0 || Option.isSome(yield* Ref.get(injected))) return
                const executionId = yield* Ids.executionIdSolo(lane)
                yield* Ref.set(injected, Option.some(executionId))
                yield* backend.createExecution({
                  executionId,
                  namespace: Ids.unsafe.namespace("wakeup-suite"),
                  laneId: lane,
                  executionKind: "echo",
                  inputPayload: utf8(JSON.stringify({ text: "raced" }))
                })
              }))
        }
        yield* Effect.fork(
          Worker.run({
            lanes: [lane],
            handlers: [echo((t) => Effect.succeed(t))],
            idle: Schedule.spaced("1 hour"),
            workerId: "wakeup-suite"
          }).pipe(Effect.provideService(EngineBackend, racing))
        )
        yield* eventually(Effect.map(Ref.get(injected), Option.isSome))
        const id = Option.getOrThrow(yield* Ref.get(injected))
        yield* eventually(isState(id, "completed"))
      }))

    test("work that arrives while the worker arms is not lost", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const backend = yield* EngineBackend
        const injected = yield* Ref.make(Option.none<Ids.ExecutionId>())
        const racing: EngineBackend.Service = {
          ...backend,
          subscribeWork: (args) =>
            Effect.map(backend.subscribeWork(args), (sub) => ({
              ...sub,
              arm: Effect.tap(sub.arm, () =>
                Effect.gen(function*() {
                  if (Option.isSome(yield* Ref.get(injected))) return
                  const id = yield* submit(lane, "while arming").pipe(
                    Effect.provideService(EngineBackend, backend),
                    Effect.orDie
                  )
                  yield* Ref.set(injected, Option.some(id))
                }))
            }))
        }
        yield* Effect.fork(
          Worker.run({
            lanes: [lane],
            handlers: [echo((t) => Effect.succeed(t))],
            idle: Schedule.spaced("1 hour"),
            workerId: "wakeup-suite"
          }).pipe(Effect.provideService(EngineBackend, racing))
        )
        yield* eventually(Effect.map(Ref.get(injected), Option.isSome))
        yield* eventually(isState(Option.getOrThrow(yield* Ref.get(injected)), "completed"))
      }))

    test("a resolved dependency wakes the worker of the downstream's lane", ({ eventually }) =>
      Effect.gen(function*() {
        const up = yield* newLane()
        const down = yield* newLane()
        yield* idleWorker(eventually, { lanes: [down], handlers: [echo((t) => Effect.succeed(`${t} ran`))] })
        const flow = yield* Producer.createFlow({
          lane: down,
          nodes: {
            first: Producer.node(Echo, { text: "first" }, { lane: up }),
            second: Producer.node(Echo, { text: "second" })
          },
          edges: [{ from: "first", to: "second" }]
        })
        const backend = yield* EngineBackend
        const handle = yield* claimOne(up)
        yield* backend.complete(handle, { payload: utf8(JSON.stringify({ text: "done", attempt: 1, resumed: false })) })
        yield* eventually(isState(flow.executions.second, "completed"))
      }))

    test("a signal that satisfies a suspension wakes the worker", ({ eventually }) =>
      Effect.gen(function*() {
        yield* seedHmac
        const lane = yield* newLane()
        const waitpoint = yield* Ref.make(Option.none<Worker.Waitpoint>())
        const handler = echo((text, ctx) =>
          Effect.gen(function*() {
            if (ctx.resumed) return `${text} resumed`
            const wp = yield* ctx.createWaitpoint()
            yield* Ref.set(waitpoint, Option.some(wp))
            yield* ctx.suspend({ waitpoint: wp })
            return "unreachable"
          })
        )
        const { arms, handed } = yield* idleWorker(eventually, { lanes: [lane], handlers: [handler] })
        const id = yield* submit(lane, "job")
        yield* eventually(isState(id, "suspended"))
        // the worker went idle again (after a claim its create made for it while it waited, it never
        // stopped waiting: the create does not wake it)
        yield* eventually(Effect.map(Effect.all([arms, handed]), ([a, h]) => a >= 2 || h >= 1))
        const wp = Option.getOrThrow(yield* Ref.get(waitpoint))
        yield* Producer.signal({ executionId: id, waitpointId: wp.waitpointId, token: wp.token, name: "go" })
        yield* eventually(isState(id, "completed"))
        expect(Option.map(yield* Producer.result(Echo, id), (r) => r.text)).toEqual(Option.some("job resumed"))
      }))

    test("a lease made reclaimable wakes an idle worker", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const id = yield* submit(lane, "orphan")
        yield* claimOne(lane, { ...policyOf("gone"), leaseTtlMs: 1_000 })
        yield* idleWorker(eventually, { lanes: [lane], handlers: [echo((t) => Effect.succeed(`${t} rescued`))] })
        yield* TestClock.adjust("2 seconds")
        // the lease ended: whoever marks it reclaimable (here the maintenance pass) wakes the worker
        yield* Effect.flatMap(Maintenance, (m) => m.expireLeases())
        yield* eventually(isState(id, "completed"))
        expect((yield* snapshot(id)).totalAttemptCount).toBe(2)
      }))
  })

  describe(`due timers (${name})`, () => {
    test("a delayed execution is claimed at its due time, with no maintenance pass", ({ eventually, settle }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        yield* idleWorker(eventually, { lanes: [lane], handlers: [echo((t) => Effect.succeed(t))] })
        const due = (yield* TestClock.currentTimeMillis) + 100
        const id = yield* submit(lane, "later", { delay: "100 millis" })
        // the worker armed again after the delayed work's wake-up, and waits for its due time
        yield* eventually(sleepsUntil(due))
        yield* TestClock.adjust("99 millis")
        yield* settle
        expect(yield* isState(id, "delayed")).toBe(true)
        yield* TestClock.adjust("1 millis")
        yield* eventually(isState(id, "completed"))
      }))

    test("the due time is kept when the worker's wait starts late", ({ eventually, settle }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const backend = yield* EngineBackend
        // every wait for a wake-up starts 20 ms (real time) after the worker read its clock: the test
        // moves the clock meanwhile
        const late: EngineBackend.Service = {
          ...backend,
          subscribeWork: (args) =>
            Effect.map(backend.subscribeWork(args), (sub) => ({
              ...sub,
              await: (since, maxWait) =>
                Effect.zipRight(TestServices.provideLive(Effect.sleep("20 millis")), sub.await(since, maxWait))
            }))
        }
        const { arms } = yield* Effect.provideService(
          idleWorker(eventually, { lanes: [lane], handlers: [echo((t) => Effect.succeed(t))] }),
          EngineBackend,
          late
        )
        const id = yield* submit(lane, "later", { delay: "100 millis" })
        // armed with the due time, and about to wait
        yield* eventually(Effect.map(arms, (n) => n >= 2))
        yield* TestClock.adjust("99 millis")
        yield* settle
        yield* TestClock.adjust("1 millis")
        yield* eventually(isState(id, "completed"))
      }))

    test("a retry's backoff ends at its due time, with no maintenance pass", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const log = yield* eventLog
        const flaky = echo((t, ctx) => (ctx.attempt === 1 ? Effect.fail(new Flaky()) : Effect.succeed(`${t} retried`)))
        yield* idleWorker(eventually, { lanes: [lane], handlers: [flaky], onEvent: log.onEvent })
        const id = yield* submit(lane, "job", {
          policy: { retryPolicy: { maxRetries: 1, backoff: { type: "fixed", delayMs: 300 } } }
        })
        yield* eventually(log.has(id, "Failed"))
        // (300 ms: the lease keeper's tick sleeps until each multiple of 250 ms)
        yield* eventually(sleepsUntil((yield* TestClock.currentTimeMillis) + 300))
        yield* TestClock.adjust("300 millis")
        yield* eventually(isState(id, "completed"))
        expect(Option.map(yield* Producer.result(Echo, id), (r) => r.attempt)).toEqual(Option.some(2))
      }))
  })

  describe(`prompt cancellation (${name})`, () => {
    /** A worker whose handler of "hold" never returns; reports each interruption. */
    const holding = (eventually: (c: Effect.Effect<boolean>) => Effect.Effect<void>, lanes: ReadonlyArray<LaneId>) =>
      Effect.gen(function*() {
        const started = yield* Ref.make(new Set<string>())
        const interrupted = yield* Ref.make(new Set<string>())
        const handler = echo((text, ctx) =>
          text === "hold" && ctx.attempt === 1 ?
            Effect.zipRight(
              Ref.update(started, (s) => new Set(s).add(ctx.executionId)),
              Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (s) => new Set(s).add(ctx.executionId))))
            ) :
            Effect.succeed(text)
        )
        yield* idleWorker(eventually, { lanes, handlers: [handler], concurrency: 4 })
        return {
          started: (id: Ids.ExecutionId) => Effect.map(Ref.get(started), (s) => s.has(id)),
          interrupted: (id: Ids.ExecutionId) => Effect.map(Ref.get(interrupted), (s) => s.has(id))
        }
      })

    test("cancelExecution interrupts the running handler at once", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const w = yield* holding(eventually, [lane])
        const id = yield* submit(lane, "hold")
        yield* eventually(w.started(id))
        const backend = yield* EngineBackend
        yield* backend.cancelExecution({ executionId: id, reason: "stop" })
        yield* eventually(w.interrupted(id))
        expect(yield* isState(id, "cancelled")).toBe(true)
      }))

    test("revokeLease interrupts the running handler at once", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const w = yield* holding(eventually, [lane])
        const id = yield* submit(lane, "hold")
        yield* eventually(w.started(id))
        const backend = yield* EngineBackend
        yield* backend.revokeLease({ executionId: id, reason: "operator" })
        yield* eventually(w.interrupted(id))
        // the revoked execution is claimable again, and its new attempt runs at once
        yield* eventually(isState(id, "completed"))
      }))

    test("cancelFlow interrupts its running members at once", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const w = yield* holding(eventually, [lane])
        const flow = yield* Producer.createFlow({
          lane,
          nodes: { a: Producer.node(Echo, { text: "hold" }), b: Producer.node(Echo, { text: "hold" }) }
        })
        yield* eventually(Effect.map(Effect.all([w.started(flow.executions.a), w.started(flow.executions.b)]), (xs) => xs.every(Boolean)))
        yield* Producer.cancelFlow(flow.flowId, { reason: "stop" })
        yield* eventually(
          Effect.map(Effect.all([w.interrupted(flow.executions.a), w.interrupted(flow.executions.b)]), (xs) => xs.every(Boolean))
        )
      }))

    test("an any_of join that fires interrupts the running siblings it cancels", ({ eventually }) =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const manual = yield* newLane()
        const w = yield* holding(eventually, [lane])
        const flow = yield* Producer.createFlow({
          lane,
          nodes: {
            slow: Producer.node(Echo, { text: "hold" }),
            fast: Producer.node(Echo, { text: "fast" }, { lane: manual }),
            join: Producer.node(Echo, { text: "joined" })
          },
          edges: [{ from: "slow", to: "join" }, { from: "fast", to: "join" }],
          joins: { join: { _tag: "any_of", onSatisfied: "cancel_remaining" } }
        })
        yield* eventually(w.started(flow.executions.slow))
        const backend = yield* EngineBackend
        const handle = yield* claimOne(manual)
        yield* backend.complete(handle, { payload: utf8(JSON.stringify({ text: "fast", attempt: 1, resumed: false })) })
        yield* eventually(w.interrupted(flow.executions.slow))
        yield* eventually(isState(flow.executions.join, "completed"))
      }))
  })

  if (options?.dropWakeups !== undefined) {
    const drop = options.dropWakeups
    describe(`lost connections (${name})`, () => {
      test("work created while the wake-up connection is down is picked up once it is back", ({ eventually }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const { arms } = yield* idleWorker(eventually, { lanes: [lane], handlers: [echo((t) => Effect.succeed(t))] })
          yield* drop
          const id = yield* submit(lane, "during the outage")
          // (the connection comes back after a real-time pause)
          yield* eventually(isState(id, "completed"), 5_000)
          // and the wake-ups work again afterwards, once the worker waits again
          yield* eventually(Effect.map(arms, (n) => n >= 2))
          const next = yield* submit(lane, "after the outage")
          yield* eventually(isState(next, "completed"))
        }))

      test("a cancellation sent while the connection is down interrupts the handler once it is back", ({ eventually }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const interrupted = yield* Ref.make(false)
          const started = yield* Ref.make(false)
          const handler = echo(() =>
            Effect.zipRight(Ref.set(started, true), Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true))))
          )
          const { fiber } = yield* idleWorker(eventually, { lanes: [lane], handlers: [handler] })
          const id = yield* submit(lane, "hold")
          yield* eventually(Ref.get(started), 5_000)
          yield* drop
          // its revocation goes out while the worker hears nothing; the lease is renewed every 20
          // minutes, so only the check of every lease at the reconnect can stop the handler
          const backend = yield* EngineBackend
          yield* backend.cancelExecution({ executionId: id, reason: "stop" })
          yield* eventually(Ref.get(interrupted), 5_000)
          yield* Fiber.interrupt(fiber)
        }))

      test("a cancellation after the connection came back still interrupts at once", ({ eventually }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const interrupted = yield* Ref.make(false)
          const started = yield* Ref.make(false)
          const handler = echo(() =>
            Effect.zipRight(Ref.set(started, true), Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true))))
          )
          const { arms, fiber } = yield* idleWorker(eventually, { lanes: [lane], handlers: [handler] })
          yield* drop
          const id = yield* submit(lane, "hold")
          yield* eventually(Ref.get(started), 5_000)
          // the connection is back once the worker waits again (its wake-up at the reconnect ended its
          // wait; a create in the worker's own process may have started the handler before that)
          yield* eventually(Effect.map(arms, (n) => n >= 2), 5_000)
          const backend = yield* EngineBackend
          yield* backend.cancelExecution({ executionId: id, reason: "stop" })
          yield* eventually(Ref.get(interrupted), 5_000)
          yield* Fiber.interrupt(fiber)
        }))
    })
  }
}
