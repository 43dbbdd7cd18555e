// Eight concurrent claimers drain 5 000 executions: every execution is claimed by exactly one of
// them and completed exactly once (FOR UPDATE SKIP LOCKED on the claimable executions, fenced completes); a
// claim whose candidate another transaction holds; completions, which lock no row before their update,
// refused when another transaction revokes the lease meanwhile, and writing no row-lock record.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Either, Fiber, Layer, Option, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Events from "../src/Events.js"
import * as Ids from "../src/Ids.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { testHmacSecret } from "./support/hmac.js"

const schema = `ff_concurrency_${process.pid}_${Date.now().toString(36)}`
const EXECUTIONS = 5_000
const CLAIMERS = 8

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: CLAIMERS + 2 })))

const live = PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client))

const decodeExecutionId = (opaque: Uint8Array): string => {
  const bytes = Buffer.from(opaque)
  return bytes.subarray(7, 7 + bytes.readUInt32LE(3)).toString("utf8")
}

describe("postgres concurrency", () => {
  layer(live, { timeout: 300_000, excludeTestServices: true })((it) => {
    it.effect(`${CLAIMERS} concurrent claimers over ${EXECUTIONS} executions: each is completed exactly once`, () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`concurrency-${process.pid}`)
        const ns = Ids.unsafe.namespace("concurrency")
        const ids: Array<Ids.ExecutionId> = []
        for (let i = 0; i < EXECUTIONS; i++) ids.push(yield* Ids.executionIdSolo(lane))
        for (let i = 0; i < EXECUTIONS; i += 500) {
          const created = yield* b.createExecutions(
            ids.slice(i, i + 500).map((executionId) => ({ executionId, namespace: ns, laneId: lane, executionKind: "k" }))
          )
          expect(created.every((c) => c._tag === "Created")).toBe(true)
        }

        const claimedBy = new Map<string, number>()
        const claimer = (n: number) =>
          Effect.gen(function*() {
            const policy = {
              workerId: Ids.unsafe.workerId(`worker-${n}`),
              workerInstanceId: Ids.unsafe.workerInstanceId(`worker-${n}-i`),
              leaseTtlMs: 120_000
            }
            let mine = 0
            for (;;) {
              const h = yield* b.claim({ lane, capabilities: { tokens: [] }, policy })
              if (Option.isNone(h)) return mine
              const id = decodeExecutionId(h.value.opaque)
              expect(claimedBy.has(id), `${id} claimed twice`).toBe(false)
              claimedBy.set(id, n)
              yield* b.complete(h.value)
              mine++
            }
          })
        const perClaimer = yield* Effect.all(Array.from({ length: CLAIMERS }, (_, n) => claimer(n)), {
          concurrency: "unbounded"
        })

        expect(perClaimer.reduce((a, c) => a + c, 0)).toBe(EXECUTIONS)
        expect(claimedBy.size).toBe(EXECUTIONS)
        // the work was actually shared
        expect(perClaimer.filter((c) => c > 0).length).toBeGreaterThan(1)

        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql.unsafe<{ readonly outcome: string; readonly attempts: string; readonly n: string }>(
          `SELECT terminal_outcome AS outcome, total_attempt_count::text AS attempts, count(*)::text AS n
             FROM "${schema}".exec_core WHERE lane_id = $1 GROUP BY 1, 2`,
          [lane]
        )
        expect(rows).toEqual([{ outcome: "success", attempts: "1", n: String(EXECUTIONS) }])
        const claimable = yield* sql.unsafe<{ readonly n: string }>(
          `SELECT count(*)::text AS n FROM "${schema}".exec_core WHERE lane_id = $1 AND blocking_reason = 'waiting_for_worker'`,
          [lane]
        )
        expect(claimable[0]!.n).toBe("0")
      }), 300_000) // 10–20 s on this machine; a loaded one (two suites side by side) took over 60 s

    // Another transaction holding an execution (the old holder's renewal of a revoked lease, a
    // cancellation) makes a claim skip it; no wake-up follows when that transaction ends, so the
    // claim itself tries again for a moment instead of answering "nothing" to an idle worker.
    it.effect("a claim whose only candidate another transaction holds takes it once that transaction ends", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        const lane = Ids.unsafe.laneId(`busy-${process.pid}`)
        const executionId = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId, namespace: Ids.unsafe.namespace("busy"), laneId: lane, executionKind: "k" })
        const locked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`SELECT 1 FROM "${schema}".exec_core
             WHERE partition_key = substr($1, 5, strpos($1, '}') - 5)::int AND e_uuid = substr($1, strpos($1, '}') + 2)::uuid
             FOR UPDATE`, [executionId])
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(release)
        })))
        yield* Deferred.await(locked)
        const [reply] = yield* sql.unsafe<{ readonly r: { readonly ok: { readonly handles: ReadonlyArray<unknown>; readonly busy: number } } }>(
          `SELECT "${schema}".ff_claim($1, '{}', NULL, 'w', 'w-i', 60000, 1, NULL) AS r`,
          [lane]
        )
        expect(reply!.r.ok).toEqual({ handles: [], busy: 1 })
        const policy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 60_000 }
        const claim = yield* Effect.fork(b.claim({ lane, capabilities: { tokens: [] }, policy }))
        // (the claim's first try most likely finds the candidate held; a later one may not, and passes)
        yield* Effect.sleep("20 millis")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        expect(decodeExecutionId(Option.getOrThrow(yield* Fiber.join(claim)).opaque)).toBe(executionId)
      }))

    // A completion reads its row without a lock and updates it with the lease checked in the
    // update's own WHERE (docs/design/postgres.md, "Storage"): a revocation committed while the
    // completion waits on the row is seen by the update, which then finds nothing to complete, and
    // the completion answers what a locked read of the revoked row says.
    it.effect("completions waiting on a revocation of their lease are refused once it commits", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        const lane = Ids.unsafe.laneId(`revoked-${process.pid}`)
        const ns = Ids.unsafe.namespace("revoked")
        const ids: Array<Ids.ExecutionId> = []
        for (let i = 0; i < 3; i++) ids.push(yield* Ids.executionIdSolo(lane))
        yield* b.createExecutions(ids.map((executionId) => ({ executionId, namespace: ns, laneId: lane, executionKind: "k" })))
        const policy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 60_000 }
        const handles = yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 3)
        expect(handles.length).toBe(3)
        const byId = new Map(handles.map((h) => [decodeExecutionId(h.opaque), h]))
        const [single, inSet, other] = ids.map((id) => byId.get(id)!)
        const revoked = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          for (const id of [ids[0]!, ids[1]!]) {
            yield* sql.unsafe(`SELECT "${schema}".ff_revoke_lease($1, NULL, 'w-i', 'test', NULL)`, [id])
          }
          yield* Deferred.succeed(revoked, undefined)
          yield* Deferred.await(release)
        })))
        yield* Effect.raceFirst(Deferred.await(revoked), Effect.zipRight(Fiber.join(holder), Effect.never))
        const one = yield* Effect.fork(Effect.either(b.complete(single!)))
        const set = yield* Effect.fork(b.completeMany([{ handle: inSet! }, { handle: other! }]))
        // both wait on the holder's row locks, then read the revocation
        yield* Effect.sleep("100 millis")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        const oneResult = yield* Fiber.join(one)
        expect(Either.isLeft(oneResult) && oneResult.left._tag === "State" && oneResult.left.kind).toBe("LeaseRevoked")
        const setResult = yield* Fiber.join(set)
        expect(setResult.map((r) => Either.isLeft(r) ? r.left._tag === "State" && r.left.kind : "ok"))
          .toEqual(["LeaseRevoked", "ok"])
        const rows = yield* sql.unsafe<{ readonly id: string; readonly state: string; readonly completed: string }>(
          `SELECT "${schema}".ffi_eid(c.partition_key, c.e_uuid) AS id, c.public_state::text AS state,
             (SELECT count(*) FROM "${schema}".event e WHERE e.e_uuid = c.e_uuid AND e.kind = 'Completed')::text AS completed
             FROM "${schema}".exec_core c WHERE c.lane_id = $1 ORDER BY 1`,
          [lane]
        )
        expect(rows).toEqual(ids.map((id, i) => ({ id, state: i < 2 ? "active" : "completed", completed: i < 2 ? "0" : "1" }))
          .sort((x, y) => (x.id < y.id ? -1 : 1)))
      }))

    // A table with a BEFORE UPDATE row trigger has every row an UPDATE changes locked first, a
    // row-lock record in the WAL each (migration 0053 dropped exec_core's): a completion, which
    // checks its lease in its update, writes none, one by one or in a set.
    it.effect("a completion writes no row-lock record of exec_core", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        yield* Effect.ignore(sql.unsafe(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`))
        const lane = Ids.unsafe.laneId(`walk-${process.pid}`)
        const ns = Ids.unsafe.namespace("wal")
        const ids: Array<Ids.ExecutionId> = []
        for (let i = 0; i < 16; i++) ids.push(yield* Ids.executionIdSolo(lane))
        yield* b.createExecutions(ids.map((executionId) => ({ executionId, namespace: ns, laneId: lane, executionKind: "k" })))
        const policy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 60_000 }
        const handles = yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 16)
        expect(handles.length).toBe(16)
        // (a checkpoint flushes the WAL written so far: pg_walinspect reads up to the flushed position)
        const lsn = () =>
          Effect.zipRight(
            sql.unsafe(`CHECKPOINT`),
            Effect.map(sql.unsafe<{ readonly lsn: string }>(`SELECT pg_current_wal_flush_lsn()::text AS lsn`), (rows) => rows[0]!.lsn)
          )
        const from = yield* lsn()
        for (const h of handles.slice(0, 8)) yield* b.complete(h)
        const outcomes = yield* b.completeMany(handles.slice(8).map((handle) => ({ handle })))
        expect(outcomes.every(Either.isRight)).toBe(true)
        const to = yield* lsn()
        const [node] = yield* sql.unsafe<{ readonly node: string }>(
          `SELECT pg_relation_filenode('"${schema}".exec_core')::text AS node`
        )
        const records = yield* sql.unsafe<{ readonly type: string; readonly n: string }>(
          `SELECT record_type AS type, count(*)::text AS n FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
             WHERE resource_manager = 'Heap' AND block_ref ~ ('rel [0-9]+/[0-9]+/' || $3 || ' ') GROUP BY 1 ORDER BY 1`,
          [from, to, node!.node]
        )
        const n = (type: string) => Number(records.find((r) => r.type === type)?.n ?? 0)
        expect(n("HOT_UPDATE") + n("UPDATE")).toBe(16)
        expect(n("LOCK")).toBe(0)
      }))

    // A batch create inserts its rows without ON CONFLICT (docs/design/postgres.md, "Storage"): a
    // create of one of its ids that commits while the batch waits on it makes the batch's insert
    // fail, and the batch runs again, answering Duplicate for that id and creating the others once.
    it.effect("a batch create racing a create of one of its ids answers Duplicate for it and creates the rest", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        const lane = Ids.unsafe.laneId(`race-${process.pid}`)
        const ns = Ids.unsafe.namespace("race")
        const raced = yield* Ids.executionIdSolo(lane)
        const other = yield* Ids.executionIdSolo(lane)
        const inserted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* Effect.fork(sql.withTransaction(Effect.gen(function*() {
          const item = {
            executionId: raced, partition: Number(/^\{fp:(\d+)\}/.exec(raced)![1]), namespace: ns, laneId: lane,
            executionKind: "k", payload: "", priority: 0, creatorIdentity: "", tags: {}, policy: {}, requiredCapabilities: [],
            maxReclaimCount: 100, maxReplayCount: 10
          }
          yield* sql.unsafe(`SELECT "${schema}".ff_create_executions($1::jsonb, NULL)`, [JSON.stringify([item])])
          yield* Deferred.succeed(inserted, undefined)
          yield* Deferred.await(release)
        })))
        // (a holder that fails ends the wait with its error)
        yield* Effect.raceFirst(Deferred.await(inserted), Effect.zipRight(Fiber.join(holder), Effect.never))
        const batch = yield* Effect.fork(b.createExecutions([raced, other].map((executionId) => ({
          executionId, namespace: ns, laneId: lane, executionKind: "k"
        }))))
        // the batch's insert waits on the holder's uncommitted row, then finds it committed
        yield* Effect.sleep("100 millis")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(holder)
        const results = yield* Fiber.join(batch)
        expect(results.map((r) => [r._tag, r.executionId])).toEqual([["Duplicate", raced], ["Created", other]])
        // one ExecutionCreated each (read from their rows, migration 0058)
        const page = yield* b.readEvents({ filter: Events.lane(lane), limit: 10 })
        expect(page.events.map((e) => [e._tag, "executionId" in e ? e.executionId : ""]).sort())
          .toEqual([raced, other].sort().map((id) => ["ExecutionCreated", id]))
        const counts = yield* sql.unsafe<{ readonly n: string }>(
          `SELECT sum(n)::text AS n FROM "${schema}".lane_count WHERE lane_id = $1 AND public_state = 'waiting'`,
          [lane]
        )
        expect(counts[0]!.n).toBe("2")
      }))
  })
})
