// Eight concurrent claimers drain 5 000 executions: every execution is claimed by exactly one of
// them and completed exactly once (FOR UPDATE SKIP LOCKED on the ready table, fenced completes).
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Layer, Option, Redacted } from "effect"
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
        const ready = yield* sql.unsafe<{ readonly n: string }>(
          `SELECT count(*)::text AS n FROM "${schema}".ready WHERE lane_id = $1`,
          [lane]
        )
        expect(ready[0]!.n).toBe("0")
      }), 300_000) // 10–20 s on this machine; a loaded one (two suites side by side) took over 60 s
  })
})
