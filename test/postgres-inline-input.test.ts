// A small input (and a small result) is kept in the exec_core row and an execution with nothing cold
// (created alone, in a batch or as a flow graph's member) has no exec_data row (migration 0050); a
// large input or result, or anything cold (tags, a policy, a creator identity, a trace context), is
// exec_data's. Every read, claim, completion, replay and retention reads both places; a store written
// at migration 0047 (every execution with its exec_data row) is read, claimed and completed after
// the later migrations.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle, makeHandle } from "../src/internal/handleCodec.js"
import * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { appliedVersion, LATEST_MIGRATION } from "../src/postgres/migrations/index.js"
import { testHmacSecret } from "./support/hmac.js"
import { storeAtMigration } from "./support/pgOldStore.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const freshSchema = `ff_inline_${tag}`
const oldSchema = `ff_inline_old_${tag}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() =>
      Effect.ignore(Effect.forEach([freshSchema, oldSchema], (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)))
    ))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

const NS = Ids.unsafe.namespace("inline")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
  leaseTtlMs: 30_000
}
const bytes = (s: string) => new TextEncoder().encode(s)
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const SMALL = `{"to":"ana@example.com","n":1}`
const LARGE = JSON.stringify({ to: "ana@example.com", pad: "x".repeat(400) })

/** Where an execution's input and result are: the exec_core row's columns, and exec_data's row. */
const placeOf = (schema: string, id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const uuid = id.slice(id.indexOf("}") + 2)
    const [core] = yield* sql.unsafe<{ readonly payload: boolean; readonly result: boolean; readonly enc: string | null }>(
      `SELECT payload IS NOT NULL AS payload, result IS NOT NULL AS result, payload_encoding AS enc
       FROM "${schema}".exec_core WHERE e_uuid = $1`,
      [uuid]
    )
    const data = yield* sql.unsafe<{ readonly payload: boolean; readonly result: boolean }>(
      `SELECT payload IS NOT NULL AS payload, result IS NOT NULL AS result FROM "${schema}".exec_data WHERE e_uuid = $1`,
      [uuid]
    )
    return { core, data: data[0] ?? null }
  })

describe("postgres: a small input and result in the exec_core row (migration 0050)", () => {
  layer(client, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("inline and cold inputs and results round-trip through create, claim, complete, replay and retention", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const laneId = Ids.unsafe.laneId(`inline-${tag}`)
        const newId = () => Ids.deterministicExecutionIdSolo(laneId, randomUUID())
        const create = (b: EngineBackend.Service, payload: string, extra: Partial<M.CreateExecutionArgs> = {}) =>
          Effect.gen(function*() {
            const executionId = newId()
            yield* b.createExecution({
              executionId,
              namespace: NS,
              laneId,
              executionKind: "k",
              inputPayload: bytes(payload),
              payloadEncoding: "json",
              ...extra
            })
            return executionId
          })
        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const small = yield* create(b, SMALL)
          const large = yield* create(b, LARGE)
          const tagged = yield* create(b, SMALL, { tags: { "app.team": "a" } })
          const [batchSmall, batchLarge] = [newId(), newId()]
          yield* b.createExecutions([
            { executionId: batchSmall, namespace: NS, laneId, executionKind: "k", inputPayload: bytes(SMALL) },
            { executionId: batchLarge, namespace: NS, laneId, executionKind: "k", inputPayload: bytes(LARGE) }
          ])
          // a flow graph's members, created in one statement
          const flowId = yield* Ids.newFlowId
          const [memberSmall, memberLarge] = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId)]
          const memberLane = Ids.unsafe.laneId(`inline-flow-${tag}`)
          yield* b.createFlowGraph({
            flow: { flowId, namespace: NS, flowKind: "pipeline" },
            members: [
              { executionId: memberSmall, namespace: NS, laneId: memberLane, executionKind: "k", inputPayload: bytes(SMALL) },
              { executionId: memberLarge, namespace: NS, laneId: memberLane, executionKind: "k", inputPayload: bytes(LARGE) }
            ],
            edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: memberSmall, downstreamExecutionId: memberLarge }],
            joins: []
          })
          const members = {
            small: yield* placeOf(freshSchema, memberSmall),
            large: yield* placeOf(freshSchema, memberLarge),
            inputs: yield* b.getExecutionInputs([memberSmall, memberLarge])
          }
          const created = {
            small: yield* placeOf(freshSchema, small),
            large: yield* placeOf(freshSchema, large),
            tagged: yield* placeOf(freshSchema, tagged),
            batchSmall: yield* placeOf(freshSchema, batchSmall),
            batchLarge: yield* placeOf(freshSchema, batchLarge)
          }
          const inputs = yield* b.getExecutionInputs([small, large, tagged, batchSmall, batchLarge])
          // the claim's inputs: both places
          const claimed = yield* b.completeAndClaim([], { args: { lane: laneId, capabilities: { tokens: [] }, policy }, max: 10 })
          const byId = new Map(claimed.claimed.map((c) => [
            Either.getOrThrow(decodeHandle("postgres", c.handle)).executionId as string,
            c
          ]))
          const claimInputs = [small, large, tagged, batchSmall, batchLarge].map((id) =>
            Option.map(byId.get(id)!.input, (i) => [text(i.payload), i.payloadEncoding ?? null])
          )
          // results: small and large, one by one and as a set
          const h = (id: string) => byId.get(id)!.handle
          yield* b.complete(h(small), { payload: bytes("small-result") })
          yield* b.complete(h(large), { payload: bytes(LARGE) })
          yield* b.complete(h(tagged), { payload: bytes("tagged-result") })
          const many = yield* b.completeMany([
            { handle: h(batchSmall), payload: bytes(LARGE) },
            { handle: h(batchLarge), payload: bytes("batch-result") }
          ])
          const completed = {
            small: yield* placeOf(freshSchema, small),
            large: yield* placeOf(freshSchema, large),
            batchSmall: yield* placeOf(freshSchema, batchSmall),
            batchLarge: yield* placeOf(freshSchema, batchLarge)
          }
          const results = yield* Effect.forEach([small, large, tagged, batchSmall, batchLarge], (id) =>
            Effect.map(b.getExecutionResult(id), Option.map(text)))
          const retention = yield* sql.unsafe<{ readonly n: number }>(
            `SELECT count(*)::int AS n FROM "${freshSchema}".timer WHERE kind = 'retention'
               AND ($1 = ref OR $2 = ref OR EXISTS (SELECT 1 FROM unnest(refs) u WHERE u = $3::uuid OR u = $4::uuid))`,
            [small, large, batchSmall.slice(batchSmall.indexOf("}") + 2), batchLarge.slice(batchLarge.indexOf("}") + 2)]
          )
          // a replay clears the result where it is (an exec_data row that held only it goes)
          yield* b.replayExecution(small)
          yield* b.replayExecution(batchSmall)
          const replayed = {
            small: yield* placeOf(freshSchema, small),
            batchSmall: yield* placeOf(freshSchema, batchSmall),
            results: yield* Effect.forEach([small, batchSmall], (id) => b.getExecutionResult(id))
          }
          return { created, members, inputs, claimInputs, many, completed, results, retention, replayed }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: freshSchema })))

        // a small input without anything cold: in the row, no exec_data row
        expect(out.created.small).toEqual({ core: { payload: true, result: false, enc: "json" }, data: null })
        expect(out.created.batchSmall).toEqual({ core: { payload: true, result: false, enc: null }, data: null })
        // a large one, or anything cold: exec_data's, as before
        expect(out.created.large).toEqual({ core: { payload: false, result: false, enc: null }, data: { payload: true, result: false } })
        expect(out.created.tagged).toEqual({ core: { payload: false, result: false, enc: null }, data: { payload: true, result: false } })
        expect(out.created.batchLarge).toEqual({ core: { payload: false, result: false, enc: null }, data: { payload: true, result: false } })
        expect(out.members.small).toEqual({ core: { payload: true, result: false, enc: null }, data: null })
        expect(out.members.large).toEqual({ core: { payload: false, result: false, enc: null }, data: { payload: true, result: false } })
        expect(out.members.inputs.map((o) => Option.map(o, (i) => text(i.payload)))).toEqual([Option.some(SMALL), Option.some(LARGE)])
        expect(out.inputs.map((o) => Option.map(o, (i) => [text(i.payload), i.payloadEncoding ?? null]))).toEqual([
          Option.some([SMALL, "json"]), Option.some([LARGE, "json"]), Option.some([SMALL, "json"]),
          Option.some([SMALL, null]), Option.some([LARGE, null])
        ])
        expect(out.claimInputs).toEqual([
          Option.some([SMALL, "json"]), Option.some([LARGE, "json"]), Option.some([SMALL, "json"]),
          Option.some([SMALL, null]), Option.some([LARGE, null])
        ])
        expect(out.many.every(Either.isRight)).toBe(true)
        expect(out.completed.small).toEqual({ core: { payload: true, result: true, enc: "json" }, data: null })
        expect(out.completed.large).toEqual({ core: { payload: false, result: false, enc: null }, data: { payload: true, result: true } })
        // a large result of an execution whose input is inline: a row of its own
        expect(out.completed.batchSmall).toEqual({ core: { payload: true, result: false, enc: null }, data: { payload: false, result: true } })
        expect(out.completed.batchLarge).toEqual({ core: { payload: false, result: true, enc: null }, data: { payload: true, result: false } })
        expect(out.results).toEqual([
          Option.some("small-result"), Option.some(LARGE), Option.some("tagged-result"), Option.some(LARGE),
          Option.some("batch-result")
        ])
        // every completion armed its retention (the one by one each, the set one for the set)
        expect(out.retention).toEqual([{ n: 3 }])
        expect(out.replayed.small).toEqual({ core: { payload: true, result: false, enc: "json" }, data: null })
        expect(out.replayed.batchSmall).toEqual({ core: { payload: true, result: false, enc: null }, data: null })
        expect(out.replayed.results).toEqual([Option.none(), Option.none()])
      }))

    it.effect("a store at 0047 (every input in exec_data): waiting, running and completed executions read, claimed, completed", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const lane = `old-inline-${tag}`
        const ids = {
          waiting: `{fp:1}:${randomUUID()}`,
          running: `{fp:2}:${randomUUID()}`,
          completed: `{fp:3}:${randomUUID()}`
        }
        const attempt = randomUUID()
        const lease = randomUUID()
        yield* storeAtMigration(oldSchema, 47, Effect.gen(function*() {
          const row = (id: string, s: readonly [string, string, string, string, string, string, string], ran: boolean) =>
            sql.unsafe(
              `INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority,
                 lifecycle_phase, ownership_state, eligibility_state, blocking_reason, terminal_outcome, attempt_state,
                 public_state, created_at, last_transition_at, last_mutation_at, total_attempt_count,
                 current_attempt_index, current_attempt_id, lease_epoch, lease_id, lease_expires_at, completed_at,
                 worker_id, worker_instance_id, lease_acquired_at)
               VALUES ($1, $2, $3, 'old', 'k', 0, $4, $5, $6, $7, $8, $9, $10, 1000, 1000, 1000, $11, $12, $13, $14, $15,
                 $16, $17, $18, $18, $19)`,
              [
                id.slice(id.indexOf("}") + 2), Number(id.slice(4, id.indexOf("}"))), lane, ...s,
                ran ? 1 : 0, ran ? 0 : null, ran ? (s[6] === "active" ? attempt : randomUUID()) : null, ran ? 1 : 0,
                s[6] === "active" ? lease : null, s[6] === "active" ? 4_102_444_800_000 : null,
                s[6] === "completed" ? 1010 : null, ran ? "w" : null, ran ? 1001 : null
              ]
            )
          yield* row(ids.waiting, ["runnable", "unowned", "eligible_now", "waiting_for_worker", "none", "pending_first_attempt", "waiting"], false)
          yield* row(ids.running, ["active", "leased", "not_applicable", "none", "none", "running_attempt", "active"], true)
          yield* row(ids.completed, ["terminal", "unowned", "not_applicable", "none", "success", "attempt_terminal", "completed"], true)
          for (const [name, id] of Object.entries(ids)) {
            yield* sql.unsafe(
              `INSERT INTO exec_data (e_part, e_uuid, payload, payload_encoding, result)
               VALUES ($1, $2, convert_to($3, 'UTF8'), 'json', $4::bytea)`,
              [Number(id.slice(4, id.indexOf("}"))), id.slice(id.indexOf("}") + 2), `{"old":"${name}"}`,
                name === "completed" ? "\\x6f6c64" : null]
            )
          }
        }))
        expect(yield* appliedVersion(oldSchema)).toBe(47)

        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const laneId = Ids.unsafe.laneId(lane)
          const inputs = yield* b.getExecutionInputs(Object.values(ids) as Array<Ids.ExecutionId>)
          const oldResult = yield* b.getExecutionResult(ids.completed as Ids.ExecutionId)
          const claimed = yield* b.completeAndClaim([], { args: { lane: laneId, capabilities: { tokens: [] }, policy }, max: 10 })
          const claimedIds = claimed.claimed.map((c) => Either.getOrThrow(decodeHandle("postgres", c.handle)).executionId)
          const claimInputs = claimed.claimed.map((c) => Option.map(c.input, (i) => [text(i.payload), i.payloadEncoding]))
          yield* Effect.forEach(claimed.claimed, (c) => b.complete(c.handle, { payload: bytes("new-result") }))
          // the running execution of the old store completes by its handle, with a large result
          const running = makeHandle("postgres", "fresh", Schema.decodeUnknownSync(M.HandlePayload)({
            executionId: ids.running, attemptIndex: 0, attemptId: attempt, leaseId: lease, leaseEpoch: 1,
            leaseTtlMs: 30_000, laneId: lane, workerInstanceId: "w"
          }))
          yield* b.complete(running, { payload: bytes(LARGE) })
          const runningPlace = yield* placeOf(oldSchema, ids.running)
          const handles = yield* b.claimMany({ lane: laneId, capabilities: { tokens: [] }, policy }, 10)
          const results = yield* Effect.forEach([ids.waiting, ids.running, ids.completed], (id) =>
            Effect.map(b.getExecutionResult(id as Ids.ExecutionId), Option.map(text)))
          const waitingPlace = yield* placeOf(oldSchema, ids.waiting)
          const states = yield* Effect.forEach(Object.values(ids), (id) => b.readExecutionState(id as Ids.ExecutionId))
          return { inputs, oldResult, claimedIds, claimInputs, runningPlace, handles, results, waitingPlace, states }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: oldSchema })))

        expect(yield* appliedVersion(oldSchema)).toBe(LATEST_MIGRATION)
        expect(out.inputs.map((o) => Option.map(o, (i) => text(i.payload)))).toEqual([
          Option.some(`{"old":"waiting"}`), Option.some(`{"old":"running"}`), Option.some(`{"old":"completed"}`)
        ])
        expect(Option.map(out.oldResult, text)).toEqual(Option.some("old"))
        expect(out.claimedIds).toEqual([ids.waiting])
        expect(out.claimInputs).toEqual([Option.some([`{"old":"waiting"}`, "json"])])
        expect(out.runningPlace).toEqual({ core: { payload: false, result: false, enc: null }, data: { payload: true, result: true } })
        expect(out.handles).toEqual([])
        expect(out.results).toEqual([Option.some("new-result"), Option.some(LARGE), Option.some("old")])
        // an old row keeps its exec_data row (the input); its new small result is the exec_core row's
        expect(out.waitingPlace).toEqual({ core: { payload: false, result: true, enc: null }, data: { payload: true, result: false } })
        expect(out.states.map(Option.getOrNull)).toEqual(["completed", "completed", "completed"])
      }))
  })
})
