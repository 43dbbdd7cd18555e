// A create made in the process of an idle worker of its lane claims for that worker in its own
// statement on Postgres (ff_create_claim; docs/worker.md, "Wake-ups, timers and cancellation"):
// in one round trip, with the events of the two; in its common case one transaction that inserts
// the execution already claimed, leaving what the two transactions leave; work the claim leaves
// behind still wakes the other waiting workers.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Fiber, Layer, Option, Redacted, Schedule, Schema } from "effect"
import { afterAll, inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import type { ExecutionId } from "../src/Ids.js"
import * as Producer from "../src/Producer.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as Worker from "../src/Worker.js"
import { testHmacSecret } from "./support/hmac.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const schema = `ff_handoff_${process.pid}_${Date.now().toString(36)}`
const client = () => PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })
/** One backend layer, as one process has it (its pool, its LISTEN connection). */
const backend = () => PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provide(client()))

afterAll(() =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(
      Effect.provide(client()),
      Effect.scoped,
      Effect.ignore
    )
  ))

const Other = Producer.task({ kind: "other", input: Schema.Struct({ n: Schema.Number }), output: Schema.Struct({ n: Schema.Number }) })

const echo = (started: Deferred.Deferred<void>) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) => Effect.as(Deferred.succeed(started, undefined), { text: input.text, attempt: ctx.attempt, resumed: ctx.resumed })
  })

/** The transaction part of an event's offset (`k.id`): events of one transaction share it. */
const txOf = (offset: string) => offset.split(".")[0]

const eventsOf = (executionId: ExecutionId) =>
  Effect.flatMap(EngineBackend, (b) => b.readEvents({ filter: { _tag: "Execution", executionId }, limit: 100 }))

describe("postgres: a create claims for the idle worker of its process", () => {
  it.live("the create claims for the waiting worker before it returns, with the events of a create and a claim", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      const id = yield* Producer.submit(Echo, { text: "now" }, { lane })
      // the claim committed before the create's reply came back
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(id)).toEqual(Option.some("active"))
      expect(yield* handed).toBe(1)
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      const { events } = yield* eventsOf(id)
      const created = events.find((e) => e._tag === "ExecutionCreated")
      const claimed = events.find((e) => e._tag === "Claimed")
      // the events of a create and a claim after it, in that order: nothing folded into the creation
      expect(created).toMatchObject({ publicState: "waiting" })
      expect(claimed).toBeDefined()
      expect(events.indexOf(claimed!)).toBeGreaterThan(events.indexOf(created!))
      // written by one transaction (ffi_create_claimed: the execution inserted already claimed)
      expect(txOf(claimed!.offset)).toBe(txOf(created!.offset))
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("the handed-over create does not wake the worker it claims for (no empty claim follows); its other creates still do", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const first = yield* Deferred.make<void>()
      const { claims, handed } = yield* idleWorker(lane, echo(first))
      const before = yield* claims
      yield* Producer.submit(Echo, { text: "handed" }, { lane })
      yield* Deferred.await(first).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(1)
      // a NOTIFY for the worker would have come long before this
      yield* Effect.sleep("500 millis")
      expect((yield* claims) - before).toBe(0)
      // the worker still waits on the lane, registered: a create of another process wakes it
      // (its idle poll is an hour)
      const elsewhere = yield* Layer.build(backend())
      const id = yield* Producer.submit(Echo, { text: "woken" }, { lane }).pipe(Effect.provide(elsewhere))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "woken" })
      expect(yield* handed).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("work the handed-over claim leaves (a kind the worker lacks) wakes a waiting worker of another process", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      // another process's worker, with the handler
      const elsewhere = yield* Layer.build(backend())
      yield* idleWorker(lane, echo(started)).pipe(Effect.provide(elsewhere))
      // this process's worker lacks the kind: the create's claim for it takes nothing
      const { handed } = yield* idleWorker(lane, Worker.handler({ ...Other, run: (input) => Effect.succeed(input) }))
      const id = yield* Producer.submit(Echo, { text: "elsewhere" }, { lane })
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(1)
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "elsewhere" })
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a delayed create hands nothing over; the worker takes it once due", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      yield* Producer.submit(Echo, { text: "later" }, { lane, delay: "200 millis" })
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a producer interrupted during its create returns at once, and the worker's slots are freed: the next task runs", () =>
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
      const producer = yield* Effect.fork(Producer.submit(Echo, { text: "cut" }, { lane }))
      yield* Effect.repeat(handed, { until: (n) => n === 1, schedule: Schedule.spaced("5 millis") }).pipe(
        Effect.timeout("20 seconds")
      )
      yield* Effect.sleep("50 millis")
      // the caller's interruption is not held up by the waiting statement
      yield* Fiber.interrupt(producer).pipe(Effect.timeout("2 seconds"))
      yield* Deferred.succeed(unlock, undefined)
      yield* Fiber.join(holder)
      // the worker took back its slots: a later task runs
      const id = yield* Producer.submit(Echo, { text: "next" }, { lane })
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "next" })
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a create inside the caller's own transaction stays in it (no claim for the idle worker: the procedure cannot commit there)", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      const sql = yield* SqlClient.SqlClient
      // rolled back with the caller's transaction: nothing created
      let rolledBack: ExecutionId | undefined
      const aborted = yield* sql.withTransaction(Effect.flatMap(
        Producer.submit(Echo, { text: "rolled back" }, { lane }),
        (id) => Effect.fail(((rolledBack = id), "abort" as const))
      )).pipe(Effect.flip)
      expect(aborted).toBe("abort")
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(rolledBack!)).toEqual(Option.none())
      // committed with it: the worker is woken once it commits
      const id = yield* sql.withTransaction(Producer.submit(Echo, { text: "committed" }, { lane }))
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "committed" })
      expect(yield* handed).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client())))
    ), 60_000)
})
