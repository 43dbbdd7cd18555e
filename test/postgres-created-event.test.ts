// An ExecutionCreated event of an execution created waiting stores no state (migration 0055): its
// row's s1 is NULL (8 bytes less a row and a WAL record), and every read shows `waiting` as before.
// Created delayed, it stores the state; folded (a flow member blocked by its edges in the creating
// call), the fold writes the state; an event stored before 0055 (the text) reads the same.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Effect, Layer, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Events from "../src/Events.js"
import * as Ids from "../src/Ids.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { appliedVersion, LATEST_MIGRATION } from "../src/postgres/migrations/index.js"
import { testHmacSecret } from "./support/hmac.js"
import { storeAtMigration } from "./support/pgOldStore.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const freshSchema = `ff_created_${tag}`
const oldSchema = `ff_created_old_${tag}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() =>
      Effect.ignore(Effect.forEach([freshSchema, oldSchema], (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)))
    ))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

const NS = Ids.unsafe.namespace("created")

/** The ExecutionCreated of an execution, as read. */
const createdOf = (id: Ids.ExecutionId) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const page = yield* b.readEvents({ filter: Events.execution(id), limit: 10 })
    const e = page.events[0]
    return e !== undefined && e._tag === "ExecutionCreated" ? e : undefined
  })

/** The stored s1 of each execution's ExecutionCreated row. */
const storedStates = (schema: string, ids: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly s1: string | null }>(
      `SELECT s1 FROM "${schema}".event WHERE kind = 'ExecutionCreated' AND e_uuid = ANY ($1::uuid[])
       ORDER BY array_position($1::uuid[], e_uuid)`,
      [ids.map((id) => id.slice(id.indexOf("}") + 2))]
    )
  ).pipe(Effect.map((rows) => rows.map((r) => r.s1)))

describe("postgres: an ExecutionCreated created waiting stores no state (migration 0055)", () => {
  layer(client, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("waiting: no state stored, read as waiting; delayed: stored; the lane's read the same", () =>
      Effect.gen(function*() {
        const laneId = Ids.unsafe.laneId(`created-${tag}`)
        const one = Ids.deterministicExecutionIdSolo(laneId, randomUUID())
        const batch = [Ids.deterministicExecutionIdSolo(laneId, randomUUID()), Ids.deterministicExecutionIdSolo(laneId, randomUUID())]
        const delayed = Ids.deterministicExecutionIdSolo(laneId, randomUUID())
        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          yield* b.createExecution({ executionId: one, namespace: NS, laneId, executionKind: "k" })
          yield* b.createExecutions(batch.map((executionId) => ({ executionId, namespace: NS, laneId, executionKind: "k" })))
          yield* b.createExecution({
            executionId: delayed, namespace: NS, laneId, executionKind: "k", delayUntil: Date.now() + 3_600_000
          })
          const read = yield* Effect.forEach([one, ...batch, delayed], createdOf)
          const lane = yield* b.readEvents({ filter: Events.lane(laneId), limit: 10 })
          // read from their rows until their first change (migration 0058), which writes them
          const unwritten = yield* storedStates(freshSchema, [one, ...batch, delayed])
          yield* Effect.forEach([one, ...batch, delayed], (executionId) => b.cancelExecution({ executionId, reason: "x" }))
          return { read, lane: lane.events, unwritten }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: freshSchema })))

        expect(out.unwritten).toEqual([])
        expect(yield* storedStates(freshSchema, [one, ...batch, delayed])).toEqual([null, null, null, "delayed"])
        expect(out.read.map((e) => e?.publicState)).toEqual(["waiting", "waiting", "waiting", "delayed"])
        expect(out.lane.map((e) => (e._tag === "ExecutionCreated" ? e.publicState : e._tag))).toEqual(
          ["waiting", "waiting", "waiting", "delayed"]
        )
      }))

    it.effect("a store at 0054 (the state stored as text): its events read the same after 0055", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const lane = `old-created-${tag}`
        const id = `{fp:3}:${randomUUID()}`
        yield* storeAtMigration(oldSchema, 54, Effect.gen(function*() {
          yield* sql.unsafe(
            `INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority,
               lifecycle_phase, ownership_state, eligibility_state, blocking_reason, terminal_outcome, attempt_state,
               public_state, created_at, payload, payload_encoding, event_k)
             VALUES ($1, 3, $2, 'old', 'k', 0, 'runnable', 'unowned', 'eligible_now', 'waiting_for_worker', 'none',
               'pending_first_attempt', 'waiting', 1000, convert_to('{}', 'UTF8'), 'json', 5)`,
            [id.slice(id.indexOf("}") + 2), lane]
          )
          yield* sql.unsafe(
            `INSERT INTO event (k, at, e_part, e_uuid, lane_id, kind, s1) VALUES (5, 1000, 3, $1, $2, 'ExecutionCreated', 'waiting')`,
            [id.slice(id.indexOf("}") + 2), lane]
          )
        }))
        expect(yield* appliedVersion(oldSchema)).toBe(54)
        const read = yield* createdOf(id as Ids.ExecutionId).pipe(
          Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: oldSchema }))
        )
        expect(yield* appliedVersion(oldSchema)).toBe(LATEST_MIGRATION)
        expect(yield* storedStates(oldSchema, [id])).toEqual(["waiting"])
        expect(read).toMatchObject({ _tag: "ExecutionCreated", executionId: id, publicState: "waiting", at: 1000 })
      }))
  })
})
