// A waiting worker's registration on Postgres (lane_waiter: creates of other processes notify it)
// lapses two minutes after it was written unless renewed; it is renewed while the worker waits,
// whatever its idle poll (docs/backends.md, "Wake-ups"). Time is Effect's clock ("effect" mode),
// moved by TestClock.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Clock, Duration, Effect, Exit, Layer, Option, Redacted, Schedule, Scope, TestClock, TestServices } from "effect"
import { afterAll, inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import type { LaneId } from "../src/Ids.js"
import * as Ids from "../src/Ids.js"
import { Maintenance } from "../src/Maintenance.js"
import * as Producer from "../src/Producer.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as Worker from "../src/Worker.js"
import { testHmacSecret } from "./support/hmac.js"
import { Echo, newLane } from "./worker/helpers.js"

const schema = `ff_waiter_${process.pid}_${Date.now().toString(36)}`
const client = () => PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })
/** One backend layer, as one process has it (its pool, its LISTEN connection). */
const backend = () =>
  PostgresBackend.layer({ hmacSecret: testHmacSecret, schema, clock: "effect" }).pipe(Layer.provide(client()))

afterAll(() =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(
      Effect.provide(client()),
      Effect.scoped,
      Effect.ignore
    )
  ))

/** Repeats `condition` on the live clock until it holds (fails after `withinMs`). */
const eventually = <E, R>(condition: Effect.Effect<boolean, E, R>, withinMs = 20_000) =>
  Effect.gen(function*() {
    const deadline = (yield* TestServices.provideLive(Clock.currentTimeMillis)) + withinMs
    for (;;) {
      if (yield* condition) return
      if ((yield* TestServices.provideLive(Clock.currentTimeMillis)) > deadline) {
        return yield* Effect.die(new Error("condition not reached in time"))
      }
      yield* TestServices.provideLive(Effect.sleep("10 millis"))
    }
  })

/** The expiry of `worker`'s registration on `lane`, if any. */
const expiry = (lane: LaneId, worker: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly expires_at: string }>(
      `SELECT expires_at::text FROM "${schema}".lane_waiter WHERE lane_id = $1 AND worker_instance_id = $2`,
      [lane, worker]
    )).pipe(
      Effect.map((rows) => Option.map(Option.fromNullable(rows[0]), (r) => Number(r.expires_at))),
      Effect.provide(client()),
      Effect.orDie
    )

const registeredPast = (lane: LaneId, worker: string, at: number) =>
  Effect.map(expiry(lane, worker), Option.exists((e) => e > at))

/**
 * A worker on `lane` whose idle poll is an hour (only a wake-up makes it claim again), counting its
 * arms; returned once it armed the first time.
 */
const idleWorker = (lane: LaneId, workerId: string) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const counts = { armed: 0 }
    const service: EngineBackend.Service = {
      ...b,
      subscribeWork: (args) =>
        Effect.map(b.subscribeWork(args), (sub) => ({ ...sub, arm: Effect.tap(sub.arm, () => Effect.sync(() => counts.armed++)) }))
    }
    yield* Effect.forkScoped(
      Worker.run({
        lanes: [lane],
        handlers: [Worker.handler({ ...Echo, run: (input, ctx) => Effect.succeed({ text: input.text, attempt: ctx.attempt, resumed: ctx.resumed }) })],
        idle: Schedule.spaced("1 hour"),
        workerId
      }).pipe(Effect.provideService(EngineBackend, service))
    )
    yield* eventually(Effect.sync(() => counts.armed >= 1))
    return counts
  })

describe("postgres: a waiting worker's registration", () => {
  it.scoped("one its process left behind lapses, and trimRetention deletes it (the lane's creates send no NOTIFY for it)", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const worker = Ids.unsafe.workerInstanceId("waiter-gone")
      const b = yield* EngineBackend
      const m = yield* Maintenance
      // a registration whose process ended without withdrawing it (the subscription's scope never closed)
      const scope = yield* Scope.make()
      const sub = yield* Scope.extend(b.subscribeWork({ lanes: [lane], workerInstanceId: worker }), scope)
      yield* sub.arm
      const at = Option.getOrThrow(yield* expiry(lane, worker))
      yield* m.trimRetention()
      expect(yield* expiry(lane, worker)).toEqual(Option.some(at))
      // the process is gone, its renewals with it: the registration lapsed
      const now = yield* Clock.currentTimeMillis
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe(`UPDATE "${schema}".lane_waiter SET expires_at = $2 WHERE lane_id = $1`, [lane, now - 1])).pipe(
          Effect.provide(client()),
          Effect.orDie
        )
      yield* m.trimRetention()
      expect(yield* expiry(lane, worker)).toEqual(Option.none())
      yield* Scope.close(scope, Exit.void)
    }).pipe(Effect.provide(backend())), 60_000)

  it.scoped("is renewed while the subscription stays armed, and withdrawn by its disarm", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const b = yield* EngineBackend
      const worker = Ids.unsafe.workerInstanceId("waiter-renew")
      const sub = yield* b.subscribeWork({ lanes: [lane], workerInstanceId: worker })
      yield* sub.arm
      expect(yield* expiry(lane, worker)).toEqual(Option.some((yield* Clock.currentTimeMillis) + 120_000))
      for (let i = 0; i < 6; i++) {
        yield* TestClock.adjust("50 seconds")
        const now = yield* Clock.currentTimeMillis
        // never lapsed: renewed before its two minutes were over, however long the wait
        yield* eventually(registeredPast(lane, worker, now + 60_000))
      }
      yield* sub.disarm
      yield* eventually(Effect.map(expiry(lane, worker), Option.isNone))
      // no renewal after the disarm writes it again
      yield* TestClock.adjust("5 minutes")
      yield* TestServices.provideLive(Effect.sleep("200 millis"))
      expect(yield* expiry(lane, worker)).toEqual(Option.none())
    }).pipe(Effect.provide(backend())), 60_000)

  it.scoped("a worker idle for longer than the registration lasts is still woken by another process's create", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const b = yield* EngineBackend
      const worker = yield* idleWorker(lane, "waiter")
      const armedAt = yield* Clock.currentTimeMillis
      // five minutes of waiting (its idle poll is an hour), in steps the renewals follow
      for (let i = 0; i < 6; i++) {
        yield* TestClock.adjust("50 seconds")
        yield* TestServices.provideLive(Effect.sleep("100 millis"))
      }
      expect(worker.armed).toBe(1)
      // another worker registering on the lane clears the lane's lapsed registrations
      yield* Effect.scoped(Effect.gen(function*() {
        const other = yield* b.subscribeWork({ lanes: [lane], workerInstanceId: Ids.unsafe.workerInstanceId("waiter-other") })
        yield* other.arm
      }))
      expect(yield* Clock.currentTimeMillis).toBeGreaterThan(armedAt + Duration.toMillis("2 minutes"))
      const elsewhere = yield* Layer.build(backend())
      const id = yield* Producer.submit(Echo, { text: "woken" }, { lane }).pipe(Effect.provide(elsewhere))
      yield* eventually(Effect.map(b.readExecutionState(id), (s) => Option.getOrUndefined(s) === "completed"))
    }).pipe(Effect.provide(backend())), 60_000)

  it.scoped("a renewal that finds the registration gone wakes the worker: work made claimable meanwhile, unnotified, is claimed", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const b = yield* EngineBackend
      yield* idleWorker(lane, "waiter-gone")
      // the registration goes (as a lapsed one another worker's registration clears)
      yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DELETE FROM "${schema}".lane_waiter WHERE lane_id = $1`, [lane])).pipe(
        Effect.provide(client()),
        Effect.orDie
      )
      const elsewhere = yield* Layer.build(backend())
      const id = yield* Producer.submit(Echo, { text: "unnotified" }, { lane }).pipe(Effect.provide(elsewhere))
      yield* TestServices.provideLive(Effect.sleep("300 millis"))
      expect(Option.getOrUndefined(yield* b.readExecutionState(id))).toBe("waiting")
      // the next renewal registers the worker again and wakes it
      yield* TestClock.adjust("50 seconds")
      // (its idle poll is an hour: only the wake-up made it claim)
      yield* eventually(Effect.map(b.readExecutionState(id), (s) => Option.getOrUndefined(s) === "completed"))
    }).pipe(Effect.provide(backend())), 60_000)
})
