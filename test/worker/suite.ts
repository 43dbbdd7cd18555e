/**
 * The worker runtime over any backend layer:
 *
 * ```ts
 * workerSuite("memory", MemoryBackend.layer())
 * workerSuite("valkey", ValkeyBackend.layer({ url, clock: "effect", keyPrefix }), { settleMs: 2 })
 * ```
 *
 * Every test runs under `TestClock` (the layer must read time from Effect's
 * `Clock`) and uses its own lanes, so a layer may be shared.
 */
import { describe, expect } from "@effect/vitest"
import { Clock, Data, Deferred, Effect, Either, Fiber, type Layer, Option, Ref, Schedule, Schema } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import { isLeaseLost } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type { LaneId } from "../../src/Ids.js"
import type { Maintenance } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import * as Producer from "../../src/Producer.js"
import * as Reconciler from "../../src/Reconciler.js"
import * as Worker from "../../src/Worker.js"
import {
  Add,
  createRaw,
  Echo,
  eventLog,
  info,
  isState,
  newLane,
  passes,
  seedHmac,
  snapshot,
  state,
  type SuiteOptions,
  makeTest,
  now,
  utf8
} from "./helpers.js"

/** The lease-expiry pass alone, drained. */
const expireLeases = Reconciler.runOnce({ passes: ["expireLeases"] })

class Rejected extends Data.TaggedError("Rejected")<{ readonly why: string }> {}

/** Test defaults: a short idle poll, no grace, a 3 s lease. */
const start = <H extends Worker.Handler<unknown>>(options: Worker.WorkerOptions<H>) =>
  Effect.fork(Worker.run({
    idle: Schedule.spaced("50 millis"),
    gracePeriod: 0,
    leaseTtl: "3 seconds",
    concurrency: 1,
    workerId: "suite-worker",
    ...options
  }))

const echoHandler = (
  run: (input: { readonly text: string }, ctx: Worker.TaskContext<{ readonly text: string }>) => Effect.Effect<string, unknown>
) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) =>
      Effect.map(run(input, ctx), (text) => ({ text, attempt: ctx.attempt, resumed: ctx.resumed }))
  })

const submitEcho = (lane: LaneId, text: string, options: Partial<Producer.SubmitOptions> = {}) =>
  Producer.submit(Echo, { text }, { lane, namespace: "worker-suite", ...options })

export const workerSuite = (
  name: string,
  layer: Layer.Layer<EngineBackend | Maintenance, unknown>,
  options?: SuiteOptions
): void => {
  const test = makeTest(layer, options)

  describe(`Worker (${name})`, () => {
    describe("handlers", () => {
      test("runs the handler of each kind and stores its typed result", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const add = Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })
          const echo = echoHandler((i, ctx) => Effect.as(ctx.progress(100, "done"), i.text.toUpperCase()))
          const w = yield* start({ lanes: [lane], handlers: [add, echo], concurrency: 2, onEvent: log.onEvent })
          const a = yield* Producer.submit(Add, { a: 2, b: 3 }, { lane })
          const e = yield* submitEcho(lane, "hello")
          yield* until(Effect.map(Effect.all([isState(a, "completed"), isState(e, "completed")]), (xs) => xs.every(Boolean)))
          yield* until(log.settled)
          expect(yield* Producer.result(Add, a)).toEqual(Option.some(5))
          expect(yield* Producer.result(Echo, e)).toEqual(Option.some({ text: "HELLO", attempt: 1, resumed: false }))
          expect((yield* log.of(a)).map((x) => x._tag)).toEqual(["Claimed", "Completed"])
          expect((yield* log.of(e))[0]).toMatchObject({ _tag: "Claimed", kind: "echo", lane, attempt: 1 })
          yield* Fiber.interrupt(w)
        }))

      test("an input that does not decode fails the execution Permanent with the parse error as reason", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const add = Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })
          yield* start({ lanes: [lane], handlers: [add], onEvent: log.onEvent })
          const retries: M.ExecutionPolicy = { retryPolicy: { maxRetries: 3 } }
          const bad = yield* createRaw(lane, "add", utf8(JSON.stringify({ a: "two", b: 3 })), { policy: retries })
          const notJson = yield* createRaw(lane, "add", utf8("{oops"), { policy: retries })
          yield* until(Effect.map(Effect.all([isState(bad, "failed"), isState(notJson, "failed")]), (xs) => xs.every(Boolean)))
          // the worker reports an attempt's end after its write returned
          const failedEvents = Effect.map(log.all, (events) => events.filter((e) => e._tag === "Failed"))
          yield* until(Effect.map(failedEvents, (events) => events.length >= 2))
          const failed = yield* failedEvents
          expect(failed).toHaveLength(2)
          for (const f of failed) {
            expect(f).toMatchObject({ classification: "Permanent", outcome: { _tag: "TerminalFailed" } })
          }
          const reasonOf = (id: Ids.ExecutionId) => {
            const f = failed.find((e) => e.executionId === id)
            return f?._tag === "Failed" ? f.reason : ""
          }
          expect(reasonOf(bad)).toContain(`cannot decode input of "add"`)
          expect(reasonOf(bad)).toContain("Expected number")
          expect(reasonOf(notJson)).toContain("payload is not UTF-8 JSON")
          // Permanent: no retry despite the retry policy.
          expect((yield* snapshot(bad)).totalAttemptCount).toBe(1)
        }))

      test("typed failures are classified by the handler; a defect fails as InfraCrash", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const h = Worker.handler({
            ...Echo,
            run: (input) =>
              input.text === "reject" ?
                Effect.fail(new Rejected({ why: "forbidden word" })) :
                input.text === "crash" ?
                Effect.dieMessage("boom") :
                Effect.fail(new Rejected({ why: "try later" })),
            classify: (e) => (e.why === "forbidden word" ? "Permanent" : "Transient"),
            describe: (e) => `rejected: ${e.why}`
          })
          yield* start({ lanes: [lane], handlers: [h], onEvent: log.onEvent })
          const retry: M.ExecutionPolicy = { retryPolicy: { maxRetries: 1, backoff: { type: "fixed", delayMs: 1_000 } } }
          const rejected = yield* submitEcho(lane, "reject", { policy: retry })
          const crashed = yield* submitEcho(lane, "crash", { policy: retry })
          const later = yield* submitEcho(lane, "later", { policy: retry })
          yield* until(Effect.map(Effect.all([rejected, crashed, later].map((id) => isState(id, "failed"))), (xs) => xs.every(Boolean)), { tick: passes })
          // the worker reports an attempt's end after its write returned
          const failedEvents = Effect.map(log.all, (events) => events.flatMap((e) => (e._tag === "Failed" ? [e] : [])))
          yield* until(Effect.map(failedEvents, (events) => events.length >= 4))
          const failures = yield* failedEvents
          const of = (id: Ids.ExecutionId) => failures.filter((f) => f.executionId === id)
          expect(of(rejected).map((f) => [f.classification, f.reason, f.outcome._tag])).toEqual([
            ["Permanent", "rejected: forbidden word", "TerminalFailed"]
          ])
          expect(of(crashed)[0]?.classification).toBe("InfraCrash")
          expect(of(crashed)[0]?.reason).toContain("handler defect")
          expect(of(crashed)[0]?.reason).toContain("boom")
          // Transient: retried once per the policy, then terminal.
          expect(of(later).map((f) => [f.classification, f.outcome._tag])).toEqual([
            ["Transient", "RetryScheduled"],
            ["Transient", "TerminalFailed"]
          ])
          expect((yield* snapshot(later)).totalAttemptCount).toBe(2)
        }))

      test("a run that throws instead of returning an effect fails its execution as InfraCrash", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const h = Worker.handler({
            ...Echo,
            run: (input) => {
              if (input.text === "throw") throw new Error("thrown before any effect")
              return Effect.succeed({ text: input.text, attempt: 1, resumed: false })
            }
          })
          yield* start({ lanes: [lane], handlers: [h], onEvent: log.onEvent })
          const thrown = yield* submitEcho(lane, "throw")
          const fine = yield* submitEcho(lane, "fine")
          yield* until(Effect.map(Effect.all([isState(thrown, "failed"), isState(fine, "completed")]), (xs) => xs.every(Boolean)))
          const failedEvents = Effect.map(log.all, (events) => events.flatMap((e) => (e._tag === "Failed" ? [e] : [])))
          yield* until(Effect.map(failedEvents, (events) => events.length >= 1))
          const [failed] = yield* failedEvents
          expect(failed?.executionId).toBe(thrown)
          expect(failed?.classification).toBe("InfraCrash")
          expect(failed?.reason).toContain("thrown before any effect")
          // reported claimed before the handler's run was called
          const tags = (yield* log.all).filter((e) => e.executionId === thrown).map((e) => e._tag)
          expect(tags).toEqual(["Claimed", "Failed"])
        }))

      test("two workers with different handlers on one lane: each runs only its kinds, none fails", ({ advance, until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const adds = yield* eventLog
          const echoes = yield* eventLog
          const add = Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })
          const echo = echoHandler((i) => Effect.succeed(i.text))
          const ids: { add: Array<Ids.ExecutionId>; echo: Array<Ids.ExecutionId> } = { add: [], echo: [] }
          // the kinds interleaved in claim order, an echo first
          for (let i = 0; i < 4; i++) {
            ids.echo.push(yield* submitEcho(lane, `e${i}`))
            ids.add.push(yield* Producer.submit(Add, { a: i, b: 1 }, { lane, namespace: "worker-suite" }))
          }
          // a rolling deploy: the worker of "add" alone first; the echoes wait for theirs, unclaimed
          const wa = yield* start({ lanes: [lane], handlers: [add], concurrency: 2, workerId: "adder", onEvent: adds.onEvent })
          yield* until(Effect.map(Effect.all(ids.add.map((id) => isState(id, "completed"))), (xs) => xs.every(Boolean)))
          yield* advance(500)
          for (const id of ids.echo) expect(yield* state(id)).toBe("waiting")
          const we = yield* start({ lanes: [lane], handlers: [echo], concurrency: 2, workerId: "echoer", onEvent: echoes.onEvent })
          // and more of both kinds while both run
          for (let i = 4; i < 8; i++) {
            ids.add.push(yield* Producer.submit(Add, { a: i, b: 1 }, { lane, namespace: "worker-suite" }))
            ids.echo.push(yield* submitEcho(lane, `e${i}`))
          }
          const all = [...ids.add, ...ids.echo]
          yield* until(Effect.map(Effect.all(all.map((id) => isState(id, "completed"))), (xs) => xs.every(Boolean)))
          yield* until(Effect.map(Effect.all([adds.settled, echoes.settled]), (xs) => xs.every(Boolean)))
          const tags = (events: ReadonlyArray<Worker.WorkerEvent>) => [...new Set(events.map((e) => e._tag))].sort()
          const kinds = (events: ReadonlyArray<Worker.WorkerEvent>) => [...new Set(events.map((e) => e.kind))]
          const ofAdds = yield* adds.all
          const ofEchoes = yield* echoes.all
          expect(tags(ofAdds)).toEqual(["Claimed", "Completed"])
          expect(tags(ofEchoes)).toEqual(["Claimed", "Completed"])
          expect(kinds(ofAdds)).toEqual(["add"])
          expect(kinds(ofEchoes)).toEqual(["echo"])
          expect(ofAdds.filter((e) => e._tag === "Claimed").map((e) => e.executionId).sort()).toEqual([...ids.add].sort())
          expect(ofEchoes.filter((e) => e._tag === "Claimed").map((e) => e.executionId).sort()).toEqual([...ids.echo].sort())
          for (const id of all) expect((yield* snapshot(id)).totalAttemptCount).toBe(1)
          yield* Fiber.interrupt(wa)
          yield* Fiber.interrupt(we)
        }))

      test("a claim that returns a kind without a handler anyway hands it back, for a worker that has one", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          // a backend that ignores the worker's kinds: the worker's safety net hands the execution back
          const anyKind = Effect.updateService(EngineBackend, (b) => ({
            ...b,
            completeAndClaim: (items, { args: { kinds: _, ...args }, max }) => b.completeAndClaim(items, { args, max })
          }))
          const add = Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a) })
          const id = yield* submitEcho(lane, "hi", { policy: { retryPolicy: { maxRetries: 0 } } })
          const wa = yield* anyKind(start({ lanes: [lane], handlers: [add], workerId: "adder", onEvent: log.onEvent }))
          yield* until(log.has(id, "Released"))
          yield* Fiber.interrupt(wa)
          const [claimed, released] = yield* log.of(id)
          expect(claimed).toMatchObject({ _tag: "Claimed", kind: "echo" })
          expect(released).toMatchObject({ _tag: "Released", kind: "echo" })
          expect(released?._tag === "Released" ? released.reason : "").toContain(`no handler for kind "echo"`)
          expect(yield* state(id)).not.toBe("failed")
          yield* start({ lanes: [lane], handlers: [echoHandler((i) => Effect.succeed(i.text))], onEvent: log.onEvent })
          // (its delay is due in a second: the worker's timer promotes it)
          yield* until(isState(id, "completed"), { stepMs: 100 })
          // the same attempt, resumed: handing back spent no retry
          expect(yield* Producer.result(Echo, id)).toEqual(Option.some({ text: "hi", attempt: 1, resumed: true }))
        }))

      test("a worker with no handlers, two handlers for a kind, too many or too long kinds, or a bad lane does not start", () =>
        Effect.gen(function*() {
          const add = Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a) })
          const errorOf = (o: Worker.WorkerOptions<Worker.Handler<never>>) =>
            Effect.map(Effect.flip(Worker.run(o)), (e) => e._tag === "WorkerError" ? e.detail : e._tag)
          expect(yield* errorOf({ lanes: ["a"], handlers: [] })).toBe("no handlers")
          expect(yield* errorOf({ lanes: ["a"], handlers: [add, add] })).toContain(`two handlers for kind "add"`)
          expect(yield* errorOf({ lanes: [""], handlers: [add] })).toContain("lane")
          expect(yield* errorOf({ lanes: ["a"], handlers: [add], concurrency: 0 })).toContain("concurrency")
          // the worker claims its handlers' kinds: as many as one claim may name, none longer than a kind
          const kinds = (n: number, suffix = "") =>
            Array.from({ length: n }, (_, i) => Worker.handler({ ...Add, kind: `k${i}${suffix}`, run: (x) => Effect.succeed(x.a) }))
          expect(yield* errorOf({ lanes: ["a"], handlers: kinds(Limits.claimKinds + 1) })).toContain("Limits.claimKinds")
          expect(yield* errorOf({ lanes: ["a"], handlers: kinds(1, "x".repeat(Limits.nameBytes)) })).toContain("Limits.nameBytes")
        }))
    })

    describe("claiming", () => {
      test("runs at most `concurrency` attempts at once", ({ advance, until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const gate = yield* Deferred.make<void>()
          const running = yield* Ref.make(0)
          const peak = yield* Ref.make(0)
          const echo = echoHandler((i) =>
            Effect.gen(function*() {
              const n = yield* Ref.updateAndGet(running, (x) => x + 1)
              yield* Ref.update(peak, (p) => Math.max(p, n))
              yield* Deferred.await(gate)
              yield* Ref.update(running, (x) => x - 1)
              return i.text
            })
          )
          const log = yield* eventLog
          yield* start({ lanes: [lane], handlers: [echo], concurrency: 2, onEvent: log.onEvent })
          const ids = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => submitEcho(lane, `t${i}`))
          yield* until(Effect.map(Ref.get(running), (n) => n === 2))
          yield* advance(2_000)
          expect(yield* Ref.get(running)).toBe(2)
          expect((yield* log.all).filter((e) => e._tag === "Claimed")).toHaveLength(2)
          const states = yield* Effect.forEach(ids, state)
          expect(states.filter((s) => s === "active")).toHaveLength(2)
          expect(states.filter((s) => s === "waiting")).toHaveLength(3)
          yield* Deferred.succeed(gate, undefined)
          yield* until(Effect.map(Effect.forEach(ids, (id) => isState(id, "completed")), (xs) => xs.every(Boolean)))
          expect(yield* Ref.get(peak)).toBe(2)
        }))

      test("fills its free slots with one claim", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const gate = yield* Deferred.make<void>()
          const calls = yield* Ref.make<ReadonlyArray<readonly [max: number, got: number]>>([])
          const backend = yield* EngineBackend
          const recording: EngineBackend.Service = {
            ...backend,
            completeAndClaim: (items, claim) =>
              Effect.tap(
                backend.completeAndClaim(items, claim),
                (r) => Ref.update(calls, (xs) => [...xs, [claim.max, r.claimed.length] as const])
              )
          }
          const ids = yield* Effect.forEach([1, 2, 3, 4, 5], (i) => submitEcho(lane, `t${i}`))
          yield* Effect.fork(Worker.run({
            lanes: [lane],
            handlers: [echoHandler((i) => Effect.as(Deferred.await(gate), i.text))],
            concurrency: 3,
            workerId: "batch"
          }).pipe(Effect.provideService(EngineBackend, recording)))
          yield* until(Effect.map(Effect.forEach(ids, state), (ss) => ss.filter((s) => s === "active").length === 3))
          expect((yield* Ref.get(calls))[0]).toEqual([3, 3])
          yield* Deferred.succeed(gate, undefined)
          yield* until(Effect.map(Effect.forEach(ids, (id) => isState(id, "completed")), (xs) => xs.every(Boolean)))
          // never more than the free slots
          for (const [max, got] of yield* Ref.get(calls)) expect(got).toBeLessThanOrEqual(max)
        }))

      test("claims round-robin over its lanes", ({ until }) =>
        Effect.gen(function*() {
          const l1 = yield* newLane("rr1")
          const l2 = yield* newLane("rr2")
          const log = yield* eventLog
          const ids = [
            yield* submitEcho(l1, "a1"),
            yield* submitEcho(l1, "a2"),
            yield* submitEcho(l2, "b1"),
            yield* submitEcho(l2, "b2")
          ]
          yield* start({ lanes: [l1, l2], handlers: [echoHandler((i) => Effect.succeed(i.text))], onEvent: log.onEvent })
          yield* until(Effect.map(Effect.forEach(ids, (id) => isState(id, "completed")), (xs) => xs.every(Boolean)))
          const lanes = (yield* log.all).filter((e) => e._tag === "Claimed").map((e) => e.lane)
          expect(lanes).toEqual([l1, l2, l1, l2])
        }))

      test("polls on its idle schedule, the safety net of wake-ups, while there is no work", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          // each claim's and each arming's start and end on the TestClock, in order
          const calls = yield* Ref.make<ReadonlyArray<readonly ["claim" | "arm", number, number]>>([])
          const timed = <A, E>(kind: "claim" | "arm", effect: Effect.Effect<A, E>) =>
            Effect.flatMap(now, (start) =>
              Effect.tap(effect, () => Effect.flatMap(now, (end) => Ref.update(calls, (xs) => [...xs, [kind, start, end] as const]))))
          const backend = yield* EngineBackend
          const counting: EngineBackend.Service = {
            ...backend,
            completeAndClaim: (items, claim) => timed("claim", backend.completeAndClaim(items, claim)),
            subscribeWork: (args) => Effect.map(backend.subscribeWork(args), (sub) => ({ ...sub, arm: timed("arm", sub.arm) }))
          }
          yield* Effect.fork(Worker.run({
            lanes: [lane],
            handlers: [echoHandler((i) => Effect.succeed(i.text))],
            idle: Schedule.exponential("100 millis", 2).pipe(Schedule.union(Schedule.spaced("1 second"))),
            workerId: "idle"
          }).pipe(Effect.provideService(EngineBackend, counting)))
          yield* until(Effect.map(Ref.get(calls), (xs) => xs.filter((x) => x[0] === "claim").length >= 8), { stepMs: 50 })
          // From the end of one empty claim (and of the arming that follows it) to the start of the
          // next, the worker waits its schedule's delay (a server's I/O moves the clock while a call
          // is in flight, so the wait is measured from the call's end). A wait of 0 is the claim a
          // store that learns only now that the worker waits asks for at once (Postgres).
          const all = yield* Ref.get(calls)
          const waits = all.flatMap(([kind, start], i) => (kind === "claim" && i > 0 ? [start - all[i - 1]![2]] : []))
            .filter((w) => w > 0)
          expect(waits.slice(0, 6)).toEqual([100, 200, 400, 800, 1_000, 1_000])
        }))
    })

    describe("leases", () => {
      test("a long attempt keeps its lease through renewals", ({ eventually, until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const echo = echoHandler((i) => Effect.as(Effect.sleep("20 seconds"), i.text))
          yield* start({ lanes: [lane], handlers: [echo], leaseTtl: "3 seconds", onEvent: log.onEvent })
          const id = yield* submitEcho(lane, "slow")
          let maxExpiry = 0
          // The lease is renewed every second (a third of its TTL). The clock moves on only while
          // the lease has a second left after the step: once less is left, its renewal has been due
          // for a while, and the test waits (real time) for it to land. Without that wait a loaded
          // machine let the steps, 5 ms of real time each, run past a renewal still in flight.
          const leaseLeft = Effect.gen(function*() {
            const s = yield* snapshot(id)
            const now = yield* Clock.currentTimeMillis
            return s.currentLease === undefined ? Infinity : s.currentLease.expiresAt - now
          })
          // Each step runs the one pass that would take a lapsed lease away (every pass at each of
          // the ~80 steps cost most of this test's real time, past a minute on a loaded machine).
          yield* until(isState(id, "completed"), {
            stepMs: 250,
            maxSteps: 200,
            tick: Effect.gen(function*() {
              yield* eventually(Effect.map(leaseLeft, (left) => left >= 1_250))
              yield* expireLeases
              const s = yield* snapshot(id)
              maxExpiry = Math.max(maxExpiry, s.currentLease?.expiresAt ?? 0)
            })
          })
          expect((yield* snapshot(id)).totalAttemptCount).toBe(1)
          yield* until(log.settled)
          expect((yield* log.of(id)).map((e) => e._tag)).toEqual(["Claimed", "Completed"])
          expect(maxExpiry).toBeGreaterThan(17_000)
        }))

      test("a revoked lease interrupts the handler; the execution is reclaimed and completes", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const interrupted = yield* Ref.make(false)
          const echo = echoHandler((i, ctx) =>
            ctx.attempt === 1 ?
              Effect.never.pipe(Effect.onInterrupt(() => Ref.set(interrupted, true))) :
              Effect.succeed(`${i.text} on attempt ${ctx.attempt}`)
          )
          yield* start({ lanes: [lane], handlers: [echo], leaseTtl: "3 seconds", onEvent: log.onEvent })
          const id = yield* submitEcho(lane, "job")
          yield* until(isState(id, "active"))
          const backend = yield* EngineBackend
          expect(yield* backend.revokeLease({ executionId: id, reason: "operator says stop" })).toMatchObject({
            _tag: "Revoked"
          })
          yield* until(Ref.get(interrupted), { stepMs: 100 })
          yield* until(isState(id, "completed"))
          yield* until(log.settled)
          const events = yield* log.of(id)
          expect(events.map((e) => `${e._tag}:${e.attempt}`)).toEqual([
            "Claimed:1",
            "LeaseLost:1",
            "Claimed:2",
            "Completed:2"
          ])
          expect(events[1]?._tag === "LeaseLost" ? events[1].reason : "").toContain("LeaseRevoked")
          expect(yield* Producer.result(Echo, id)).toEqual(
            Option.some({ text: "job on attempt 2", attempt: 2, resumed: false })
          )
        }))

      test("a handler that returns after its lease was lost writes nothing", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const echo = echoHandler((_, ctx) =>
            ctx.attempt === 1 ?
              Effect.uninterruptible(Effect.as(Effect.sleep("5 seconds"), "late")) :
              Effect.succeed("fresh")
          )
          yield* start({ lanes: [lane], handlers: [echo], leaseTtl: "3 seconds", onEvent: log.onEvent })
          const id = yield* submitEcho(lane, "job")
          yield* until(isState(id, "active"))
          const backend = yield* EngineBackend
          yield* backend.revokeLease({ executionId: id, reason: "test" })
          yield* until(isState(id, "completed"), { stepMs: 250 })
          yield* until(log.settled)
          expect((yield* log.of(id)).map((e) => `${e._tag}:${e.attempt}`)).toEqual([
            "Claimed:1",
            "LeaseLost:1",
            "Claimed:2",
            "Completed:2"
          ])
          // Stopped by the failed renewal, not by a fenced write: the worker did not even try to complete.
          const lost = (yield* log.of(id))[1]
          expect(lost?._tag === "LeaseLost" ? lost.reason : "").not.toContain("fenced")
          expect(Option.map(yield* Producer.result(Echo, id), (r) => r.text)).toEqual(Option.some("fresh"))
        }))

      test("a worker killed mid-attempt: the lease expires, the reconciler makes it reclaimable, another worker completes it, the first one's late write is fenced", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const backend = yield* EngineBackend
          const firstHandle = yield* Ref.make(Option.none<M.Handle>())
          const stuck = echoHandler((_, ctx) => Effect.zipRight(Ref.set(firstHandle, Option.some(ctx.handle)), Effect.never))
          const first = yield* start({
            lanes: [lane],
            handlers: [stuck],
            leaseTtl: "2 seconds",
            // a crash: no grace, no release
            gracePeriod: "0 millis",
            releaseOnShutdown: false,
            workerId: "doomed"
          })
          const id = yield* submitEcho(lane, "job")
          yield* until(Effect.map(Ref.get(firstHandle), Option.isSome))
          // The process dies: no release, no write; the lease is simply no longer renewed.
          yield* Fiber.interrupt(first)
          expect((yield* info(id)).stateVector.ownershipState).toBe("leased")
          yield* until(
            Effect.map(info(id), (i) => i.stateVector.ownershipState === "lease_expired_reclaimable"),
            { stepMs: 250, tick: passes }
          )
          const log = yield* eventLog
          yield* start({
            lanes: [lane],
            handlers: [echoHandler((i, ctx) => Effect.succeed(`${i.text} by ${ctx.workerInstanceId}`))],
            workerId: "rescuer",
            workerInstanceId: "rescuer-1",
            onEvent: log.onEvent
          })
          yield* until(isState(id, "completed"))
          expect((yield* snapshot(id)).totalAttemptCount).toBe(2)
          const late = Option.getOrThrow(yield* Ref.get(firstHandle))
          const write = yield* Effect.either(backend.complete(late, { payload: utf8(JSON.stringify({ text: "stale" })) }))
          expect(Either.isLeft(write) && isLeaseLost(write.left)).toBe(true)
          expect(Option.map(yield* Producer.result(Echo, id), (r) => r.text)).toEqual(Option.some("job by rescuer-1"))
        }))
    })

    describe("shutdown", () => {
      test("interruption lets running attempts finish within the grace period, then releases the rest", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const echo = echoHandler((i, ctx) =>
            i.text === "short" ?
              Effect.as(Effect.sleep("1 second"), "short done") :
              ctx.resumed ?
              Effect.succeed("long resumed elsewhere") :
              Effect.as(Effect.sleep("1 minute"), "long done")
          )
          const w = yield* start({
            lanes: [lane],
            handlers: [echo],
            concurrency: 2,
            gracePeriod: "2 seconds",
            onEvent: log.onEvent,
            workerInstanceId: "a"
          })
          const short = yield* submitEcho(lane, "short")
          const long = yield* submitEcho(lane, "long")
          yield* until(Effect.map(Effect.all([isState(short, "active"), isState(long, "active")]), (xs) => xs.every(Boolean)))
          const stopping = yield* Effect.fork(Fiber.interrupt(w))
          yield* until(Effect.map(Fiber.poll(stopping), Option.isSome), { stepMs: 100 })
          expect(yield* state(short)).toBe("completed")
          expect((yield* log.of(long)).map((e) => e._tag)).toEqual(["Claimed", "Released"])
          expect(["delayed", "waiting"]).toContain(yield* state(long))
          // Another worker resumes the same attempt.
          yield* start({ lanes: [lane], handlers: [echo], onEvent: log.onEvent, workerInstanceId: "b" })
          yield* until(isState(long, "completed"), { tick: passes })
          expect(yield* Producer.result(Echo, long)).toEqual(
            Option.some({ text: "long resumed elsewhere", attempt: 1, resumed: true })
          )
          expect((yield* log.of(long)).map((e) => `${e._tag}@${e.workerInstanceId}`)).toEqual([
            "Claimed@a",
            "Released@a",
            "Claimed@b",
            "Completed@b"
          ])
        }))
      test("with releaseOnShutdown off, running attempts still get the grace period; the rest are dropped, their leases left to expire", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const echo = echoHandler((i) =>
            i.text === "short" ? Effect.as(Effect.sleep("1 second"), "short done") : Effect.as(Effect.sleep("1 minute"), "long done")
          )
          const w = yield* start({
            lanes: [lane],
            handlers: [echo],
            concurrency: 2,
            gracePeriod: "2 seconds",
            releaseOnShutdown: false,
            onEvent: log.onEvent
          })
          const short = yield* submitEcho(lane, "short")
          const long = yield* submitEcho(lane, "long")
          yield* until(Effect.map(Effect.all([isState(short, "active"), isState(long, "active")]), (xs) => xs.every(Boolean)))
          const stopping = yield* Effect.fork(Fiber.interrupt(w))
          yield* until(Effect.map(Fiber.poll(stopping), Option.isSome), { stepMs: 100 })
          expect(yield* state(short)).toBe("completed")
          expect(yield* state(long)).toBe("active")
          expect((yield* info(long)).stateVector.ownershipState).toBe("leased")
          expect((yield* log.of(long)).map((e) => e._tag)).toEqual(["Claimed"])
        }))
    })

    describe("task context", () => {
      test("suspend until a signal; the attempt is resumed with the signal", ({ until }) =>
        Effect.gen(function*() {
          yield* seedHmac
          const lane = yield* newLane()
          const log = yield* eventLog
          const waitpoint = yield* Ref.make(Option.none<Worker.Waitpoint>())
          const Text = Schema.Struct({ text: Schema.String })
          const echo = echoHandler((_, ctx) =>
            Effect.gen(function*() {
              const signal = ctx.resumeSignals[0]
              if (signal !== undefined) return (yield* Producer.signalPayload(Text, signal)).text
              const wp = yield* ctx.createWaitpoint({ key: "approval" })
              yield* Ref.set(waitpoint, Option.some(wp))
              yield* ctx.suspend({ waitpoint: wp, signalName: "go", reasonCode: "waiting_for_approval" })
              return "unreachable"
            })
          )
          yield* start({ lanes: [lane], handlers: [echo], onEvent: log.onEvent })
          const id = yield* submitEcho(lane, "job")
          yield* until(isState(id, "suspended"))
          const wp = Option.getOrThrow(yield* Ref.get(waitpoint))
          const delivered = yield* Producer.signal({
            executionId: id,
            waitpointId: wp.waitpointId,
            token: wp.token,
            name: "go",
            payload: { schema: Text, value: { text: "approved" } }
          })
          expect(delivered).toMatchObject({ _tag: "Accepted", effect: "resume_condition_satisfied" })
          yield* until(isState(id, "completed"))
          expect(yield* Producer.result(Echo, id)).toEqual(Option.some({ text: "approved", attempt: 1, resumed: true }))
          yield* until(log.settled)
          expect((yield* log.of(id)).map((e) => e._tag)).toEqual(["Claimed", "Suspended", "Claimed", "Completed"])
        }))

      test("suspend returns the signals at once when buffered signals already satisfy it", ({ until }) =>
        Effect.gen(function*() {
          yield* seedHmac
          const lane = yield* newLane()
          const waitpoint = yield* Ref.make(Option.none<Worker.Waitpoint>())
          const gate = yield* Deferred.make<void>()
          const echo = echoHandler((_, ctx) =>
            Effect.gen(function*() {
              const wp = yield* ctx.createWaitpoint()
              yield* Ref.set(waitpoint, Option.some(wp))
              yield* Deferred.await(gate)
              const signals = yield* ctx.suspend({ waitpoint: wp })
              return signals.map((s) => s.signalName).join(",")
            })
          )
          yield* start({ lanes: [lane], handlers: [echo] })
          const id = yield* submitEcho(lane, "job")
          yield* until(Effect.map(Ref.get(waitpoint), Option.isSome))
          const wp = Option.getOrThrow(yield* Ref.get(waitpoint))
          const early = yield* Producer.signal({ executionId: id, waitpointId: wp.waitpointId, token: wp.token, name: "early" })
          expect(early).toMatchObject({ _tag: "Accepted", effect: "buffered_for_pending_waitpoint" })
          yield* Deferred.succeed(gate, undefined)
          yield* until(isState(id, "completed"))
          // The lease was kept: the same attempt went on and completed. The signals returned are those
          // `observeSignals` reports for a suspension that was satisfied at once (memory: the buffered one).
          const result = Option.getOrThrow(yield* Producer.result(Echo, id))
          expect(result).toMatchObject({ attempt: 1, resumed: false })
          expect(["early", ""]).toContain(result.text)
          expect((yield* snapshot(id)).totalAttemptCount).toBe(1)
        }))

      test("delay ends the attempt; the execution is resumed once the delay passed", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const log = yield* eventLog
          const echo = echoHandler((i, ctx) =>
            ctx.resumed ? Effect.succeed(`${i.text} later`) : Effect.as(ctx.delay("5 seconds"), "unreachable")
          )
          yield* start({ lanes: [lane], handlers: [echo], onEvent: log.onEvent })
          const id = yield* submitEcho(lane, "job")
          yield* until(isState(id, "delayed"))
          yield* until(isState(id, "completed"), { stepMs: 250, tick: passes })
          expect(yield* Producer.result(Echo, id)).toEqual(Option.some({ text: "job later", attempt: 1, resumed: true }))
          yield* until(log.settled)
          const events = yield* log.of(id)
          expect(events.map((e) => e._tag)).toEqual(["Claimed", "Delayed", "Claimed", "Completed"])
          const delayed = events[1]
          expect(delayed?._tag === "Delayed" && delayed.until >= 5_000).toBe(true)
        }))

      test("waitChildren ends the attempt until the children it added finish", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const Parent = Producer.task({ kind: "parent", input: Schema.Struct({ n: Schema.Number }), output: Schema.Number })
          const parent = Worker.handler({
            ...Parent,
            run: (input, ctx) =>
              Effect.gen(function*() {
                const backend = yield* EngineBackend
                const flowId = Option.getOrThrow(yield* backend.resolveExecutionFlowId(ctx.executionId))
                if (ctx.resumed) {
                  const edges = yield* backend.listEdges({ flowId, direction: { _tag: "Incoming", toNode: ctx.executionId } })
                  const results = yield* Effect.forEach(edges, (e) => Producer.result(Add, e.upstreamExecutionId))
                  return results.reduce((sum, r) => sum + Option.getOrElse(r, () => 0), 0)
                }
                // Spawn two children in the flow, make them dependencies of this execution, wait.
                for (const b of [1, 2]) {
                  const child = yield* Ids.executionIdForFlow(flowId)
                  yield* backend.createExecution({
                    executionId: child,
                    namespace: Ids.unsafe.namespace("worker-suite"),
                    laneId: ctx.lane,
                    executionKind: "add",
                    inputPayload: utf8(JSON.stringify({ a: input.n, b }))
                  })
                  yield* backend.addExecutionToFlow({ flowId, executionId: child })
                  const revision = Option.getOrThrow(yield* backend.describeFlow(flowId)).graphRevision
                  const edgeId = yield* Ids.newEdgeId
                  yield* backend.stageDependencyEdge({
                    flowId,
                    edgeId,
                    upstreamExecutionId: child,
                    downstreamExecutionId: ctx.executionId,
                    expectedGraphRevision: revision
                  })
                  yield* backend.applyDependencyToChild({
                    flowId,
                    edgeId,
                    upstreamExecutionId: child,
                    downstreamExecutionId: ctx.executionId
                  })
                }
                return yield* ctx.waitChildren
              })
          })
          const add = Worker.handler({ ...Add, run: (i) => Effect.as(Effect.sleep("1 second"), i.a + i.b) })
          const log = yield* eventLog
          yield* start({ lanes: [lane], handlers: [parent, add], concurrency: 2, onEvent: log.onEvent })
          const flow = yield* Producer.createFlow({ lane, nodes: { parent: Producer.node(Parent, { n: 10 }) } })
          const id = flow.executions.parent
          yield* until(isState(id, "waiting_children"))
          yield* until(isState(id, "completed"), { tick: passes })
          expect(yield* Producer.result(Parent, id)).toEqual(Option.some(23))
          yield* until(log.settled)
          expect((yield* log.of(id)).map((e) => e._tag)).toEqual(["Claimed", "WaitingChildren", "Claimed", "Completed"])
        }))

      test("ctx.flow.add grows the handler's own flow: a fan-out joined by the step already waiting on it", ({ until }) =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const Discover = Producer.task({ kind: "discover", input: Schema.Struct({ n: Schema.Number }), output: Schema.Number })
          const Sum = Producer.task({ kind: "sum", input: Schema.Struct({}), output: Schema.Number })
          const discover = Worker.handler({
            ...Discover,
            run: (input, ctx) =>
              Effect.gen(function*() {
                const [join] = yield* ctx.flow.downstreams
                const names = Array.from({ length: input.n }, (_, i) => `part-${i}`)
                const added = yield* ctx.flow.add({
                  nodes: Object.fromEntries(names.map((name, i) => [name, Producer.node(Add, { a: i, b: 1 })])),
                  edges: names.map((name) => ({ from: name, to: join! }))
                })
                // the first attempt fails after adding: the retry adds the same names, nothing twice
                if (ctx.attempt === 1) return yield* new Rejected({ why: "once more" })
                expect(added.added).toBe(false)
                return Object.keys(added.executions).length
              })
          })
          const sum = Worker.handler({
            ...Sum,
            run: (_, ctx) =>
              Effect.gen(function*() {
                const ups = yield* ctx.flow.upstreams
                const results = yield* Effect.forEach(ups, (id) => Producer.result(Add, id))
                return results.reduce((total, r) => total + Option.getOrElse(r, () => 0), 0)
              })
          })
          const add = Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })
          yield* start({ lanes: [lane], handlers: [discover, sum, add], concurrency: 2 })
          const flow = yield* Producer.createFlow({
            lane,
            nodes: {
              discover: Producer.node(Discover, { n: 3 }, { policy: { retryPolicy: { maxRetries: 1 } } }),
              join: Producer.node(Sum, {})
            },
            edges: [{ from: "discover", to: "join" }]
          })
          yield* until(isState(flow.executions.join, "completed"), { stepMs: 200, tick: passes })
          // 1 + 2 + 3 from the parts, 3 from discover
          expect(yield* Producer.result(Sum, flow.executions.join)).toEqual(Option.some(9))
          const f = Option.getOrThrow(yield* backend.describeFlow(flow.flowId))
          expect(f).toMatchObject({ nodeCount: 5, edgeCount: 4, publicFlowState: "completed" })
          expect((yield* snapshot(flow.executions.discover)).totalAttemptCount).toBe(2)
        }))

      test("ctx.flow.seal seals the flow; ctx.flow outside a flow: no id, no neighbours, add fails", ({ until }) =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const seen = yield* Ref.make<ReadonlyArray<unknown>>([])
          const echo = echoHandler((i, ctx) =>
            Effect.gen(function*() {
              if (i.text === "seal") {
                const sealed = yield* ctx.flow.seal
                return sealed._tag
              }
              const id = yield* ctx.flow.id
              const ups = yield* ctx.flow.upstreams
              const failure = yield* Effect.flip(ctx.flow.add({ nodes: { x: Producer.node(Add, { a: 1, b: 1 }) } }))
              yield* Ref.set(seen, [Option.isNone(id), ups.length, failure._tag])
              return "alone"
            })
          )
          yield* start({ lanes: [lane], handlers: [echo] })
          const flow = yield* Producer.createFlow({ lane, nodes: { s: Producer.node(Echo, { text: "seal" }) } })
          const alone = yield* submitEcho(lane, "alone")
          yield* until(Effect.map(Effect.all([isState(flow.executions.s, "completed"), isState(alone, "completed")]), (xs) => xs.every(Boolean)))
          expect(Option.map(yield* Producer.result(Echo, flow.executions.s), (r) => r.text)).toEqual(Option.some("Sealed"))
          expect(Option.getOrThrow(yield* backend.describeFlow(flow.flowId))).toMatchObject({ sealed: true, publicFlowState: "completed" })
          expect(yield* Ref.get(seen)).toEqual([true, 0, "FlowSpecError"])
        }))

      test("progress, frames and usage go to the engine under the attempt's lease", ({ until }) =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const backend = yield* EngineBackend
          const budgetId = yield* Ids.newBudgetId
          yield* backend.createBudget({
            budgetId,
            scopeType: "tenant",
            scopeId: "acme",
            dimensions: ["tokens"],
            hardLimits: [1_000],
            softLimits: [0]
          })
          const echo = echoHandler((i, ctx) =>
            Effect.gen(function*() {
              yield* ctx.progress(42.4, "reading")
              yield* ctx.log(`hello ${i.text}`)
              yield* ctx.event("stage", { stage: "parse" })
              const usage = yield* ctx.reportUsage(budgetId, { custom: { tokens: 7 } })
              return usage._tag
            })
          )
          yield* start({ lanes: [lane], handlers: [echo] })
          const id = yield* submitEcho(lane, "frames")
          yield* until(isState(id, "completed"))
          expect(Option.map(yield* Producer.result(Echo, id), (r) => r.text)).toEqual(Option.some("Ok"))
          const frames = yield* backend.readStream({
            executionId: id,
            attemptIndex: Schema.decodeSync(Ids.AttemptIndex)(0),
            from: { _tag: "Start" },
            to: { _tag: "End" },
            countLimit: 100
          })
          expect(frames.frames.map((f) => f.fields["frame_type"])).toEqual(["stdout", "stage"])
          expect(frames.frames[0]?.fields["payload"]).toBe("hello frames")
          expect((yield* backend.getBudgetStatus(budgetId)).usage).toMatchObject({ tokens: 7 })
        }))
    })
  })
}
