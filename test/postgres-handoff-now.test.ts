// The idle pickup's calls sent at once on `layerPg`'s own pool (docs/design/postgres.md,
// "Connections"): the create that claims for the idle worker of its process hands over what its
// claim took in the reply's callback, whatever becomes of the producer; a wake-up's notification
// claims for the waiting worker on the notification's stack.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Fiber, Layer, Option, Redacted, Schedule } from "effect"
import { randomUUID } from "node:crypto"
import { afterAll, inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import * as Producer from "../src/Producer.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as Worker from "../src/Worker.js"
import { testHmacSecret } from "./support/hmac.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const schema = `ff_handoff_now_${process.pid}_${Date.now().toString(36)}`
const client = () => PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 2 })
/** One process's layer over a pool of its own: the idle pickup's calls are sent at once. */
const backend = () =>
  PostgresBackend.layerPg({ url: Redacted.make(inject("pgUrl")), maxConnections: 4, hmacSecret: testHmacSecret, schema })

afterAll(() =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(
      Effect.provide(client()),
      Effect.scoped,
      Effect.ignore
    )
  ))

const echo = (started: Deferred.Deferred<void>) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) => Effect.as(Deferred.succeed(started, undefined), { text: input.text, attempt: ctx.attempt, resumed: ctx.resumed })
  })

describe("postgres: the idle pickup's calls sent at once on the layer's own pool", () => {
  it.live("the create claims for the waiting worker before it returns", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { claims, handed } = yield* idleWorker(lane, echo(started))
      const before = yield* claims
      const id = yield* Producer.submit(Echo, { text: "now" }, { lane })
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(id)).toEqual(Option.some("active"))
      expect(yield* handed).toBe(1)
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "now" })
      // the worker made no claim of its own for it
      expect((yield* claims) - before).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a producer interrupted while its create waits returns at once; the worker still gets what the claim took", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      // another connection holds the executions' table, so the create's statement waits
      const locked = yield* Deferred.make<void>()
      const unlock = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`LOCK TABLE "${schema}".exec_core IN ACCESS EXCLUSIVE MODE`)
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(unlock)
        }))).pipe(Effect.provide(client())))
      yield* Deferred.await(locked)
      const executionId = Ids.deterministicExecutionIdSolo(lane, randomUUID())
      const producer = yield* Effect.fork(Producer.submit(Echo, { text: "cut" }, { lane, executionId }))
      yield* Effect.repeat(handed, { until: (n) => n === 1, schedule: Schedule.spaced("5 millis") }).pipe(
        Effect.timeout("20 seconds")
      )
      yield* Effect.sleep("50 millis")
      yield* Fiber.interrupt(producer).pipe(Effect.timeout("2 seconds"))
      yield* Deferred.succeed(unlock, undefined)
      yield* Fiber.join(holder)
      // (its lease is 30 s: a claim left to its expiry would not run within this wait)
      yield* Deferred.await(started).pipe(Effect.timeout("10 seconds"))
      expect(yield* Producer.awaitResult(Echo, executionId).pipe(Effect.timeout("10 seconds"))).toMatchObject({
        text: "cut"
      })
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a create of another process: the notification's claim is made for the waiting worker, then the worker claims once itself", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { claims, handed, taken } = yield* idleWorker(lane, echo(started))
      const before = yield* claims
      const elsewhere = yield* Layer.build(backend())
      const id = yield* Producer.submit(Echo, { text: "apart" }, { lane }).pipe(Effect.provide(elsewhere))
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "apart" })
      expect(yield* handed).toBe(1)
      // the worker's own claims after the wake-up took nothing: the notification's claim had it
      yield* Effect.repeat(claims, { until: (n) => n > before, schedule: Schedule.spaced("5 millis") }).pipe(
        Effect.timeout("20 seconds")
      )
      expect(yield* taken).toBe(0)
      // and the worker waits again, registered: the next create of that process is picked up too
      const next = yield* Producer.submit(Echo, { text: "again" }, { lane }).pipe(Effect.provide(elsewhere))
      expect(yield* Producer.awaitResult(Echo, next).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "again" })
      expect(yield* handed).toBe(2)
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)
})
