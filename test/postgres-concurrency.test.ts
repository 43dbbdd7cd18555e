// Eight concurrent claimers drain 5 000 executions: every execution is claimed by exactly one of
// them and completed exactly once (FOR UPDATE SKIP LOCKED on the claimable executions, fenced completes); and a
// claim whose candidate another transaction holds.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Fiber, Layer, Option, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
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
        const events = yield* sql.unsafe<{ readonly id: string; readonly n: string }>(
          `SELECT "${schema}".ffi_eid(e_part, e_uuid) AS id, count(*)::text AS n FROM "${schema}".event WHERE lane_id = $1 GROUP BY 1 ORDER BY 1`,
          [lane]
        )
        expect(events).toEqual([raced, other].sort().map((id) => ({ id, n: "1" })))
        const counts = yield* sql.unsafe<{ readonly n: string }>(
          `SELECT sum(n)::text AS n FROM "${schema}".lane_count WHERE lane_id = $1 AND public_state = 'waiting'`,
          [lane]
        )
        expect(counts[0]!.n).toBe("2")
      }))
  })
})
