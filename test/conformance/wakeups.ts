/**
 * `subscribeWork`, the wake-ups of idle workers (docs/worker.md, "Wake-ups, timers and
 * cancellation"): a subscription counts the wake-ups of its lanes, `arm` tells when their delayed
 * work is due, `promoteDue` makes it claimable, and a lease ended by another hand reaches the
 * subscription of the worker instance that holds it.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Option, TestServices } from "effect"
import type { EngineBackend } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import { advance, backend, claimSome, create, createAndClaim, newLane, now, publicState, type Tester } from "./helpers.js"

/** `effect` within `ms` of real time (a wake-up crosses a server's connection). */
const within = <A, E, R>(ms: number, effect: Effect.Effect<A, E, R>) =>
  TestServices.provideLive(
    Effect.timeoutFail(effect, { duration: Duration.millis(ms), onTimeout: () => new Error(`not within ${ms} ms`) })
  )

/**
 * Whether the revocation of `id` reaches `sub` within 10 s of real time: `id` itself, or
 * `undefined` (check every lease: the connection was opened again, and a message sent meanwhile
 * may be lost, as a loaded machine's connect timeout does). Another execution's revocation, sent
 * before, may come first.
 */
const reaches = (sub: EngineBackend.WorkSubscription, id: Ids.ExecutionId) =>
  Effect.gen(function*() {
    let checkAll = false
    for (;;) {
      const next = yield* Effect.either(within(10_000, sub.revoked))
      if (next._tag === "Left") return checkAll
      if (next.right === id) return true
      if (next.right === undefined) checkAll = true
    }
  })

const subscribe = (lane: Ids.LaneId, instance = "wake-i") =>
  Effect.flatMap(backend, (b) => b.subscribeWork({ lanes: [lane], workerInstanceId: Ids.unsafe.workerInstanceId(instance) }))

export const wakeups = (t: Tester): void => {
  describe("wake-ups (subscribeWork)", () => {
    t.test("a new execution on a subscribed lane counts a wake-up", () =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        const sub = yield* subscribe(lane)
        const seen = yield* sub.wakeups
        yield* sub.arm
        yield* create({ laneId: lane })
        expect(yield* within(10_000, sub.await(seen, Duration.infinity))).toBe(true)
        expect(yield* sub.wakeups).toBeGreaterThan(seen)
      })))

    t.test("arm tells when the lane's delayed work is due; promoteDue makes it claimable then", () =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        const sub = yield* subscribe(lane)
        expect((yield* sub.arm).dueAt).toEqual(Option.none())
        const due = (yield* now) + 1_000
        const { executionId } = yield* create({ laneId: lane, delayUntil: due })
        // a lower bound of the due time (the Valkey layer's due hints), never later
        const armed = Option.getOrThrow((yield* sub.arm).dueAt)
        expect(armed).toBeLessThanOrEqual(due)
        expect(yield* sub.promoteDue).toBe(0)
        expect(yield* publicState(executionId)).toBe("delayed")
        yield* advance(1_000)
        expect(yield* sub.promoteDue).toBe(1)
        expect(yield* publicState(executionId)).toBe("waiting")
        yield* claimSome(lane)
      })))

    t.test("a cancellation hands the execution to the subscription of the worker that holds it", () =>
      Effect.scoped(Effect.gen(function*() {
        const lane = yield* newLane()
        const instance = `holder-${(yield* Ids.randomUuid).slice(0, 8)}`
        const sub = yield* subscribe(lane, instance)
        const { executionId } = yield* createAndClaim({ laneId: lane }, { instance })
        const b = yield* backend
        yield* b.cancelExecution({ executionId, reason: "stop" })
        expect(yield* reaches(sub, executionId)).toBe(true)
        const again = yield* createAndClaim({ laneId: lane }, { instance })
        yield* b.revokeLease({ executionId: again.executionId, reason: "operator" })
        expect(yield* reaches(sub, again.executionId)).toBe(true)
      })))

    t.test("bad arguments are Validation and subscribe nothing", () =>
      Effect.scoped(Effect.gen(function*() {
        const b = yield* backend
        for (const args of [{ lanes: [], workerInstanceId: "w" }, { lanes: [""], workerInstanceId: "w" }]) {
          const r = yield* Effect.either(b.subscribeWork(args as never))
          expect(r._tag === "Left" && r.left._tag).toBe("Validation")
        }
      })))
  })
}
