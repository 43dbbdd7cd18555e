// A session keeps its PL/pgSQL statements' plans; the claim's and the completion's are generic
// (planned once per session), the others generic from their sixth call. Plans made while
// `exec_core` held one analyzed row must still read only the rows they name once the table has
// grown (docs/design/postgres.md, "The function library"): a create, a claim or a completion of 64
// and a renewal read a bounded number of `exec_core_pkey` entries per execution and never the
// table whole, whatever it held when the session planned, and no look-up by id goes through
// another index. The reads are the server's cumulative statistics (pg_stat_user_indexes,
// pg_stat_user_tables), so the figures do not depend on load.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { randomUUID } from "node:crypto"
import { Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { completeClaim as completeClaimIn, flushStats, type Handle, libraryItem } from "./support/pgLibraryCalls.js"

const url = inject("pgUrl")
const schema = `ff_plans_${process.pid}_${Date.now().toString(36)}`
const lane = "plans"
const TOTAL = 4_096
const SET = 64

const admin = new pg.Pool({ connectionString: url, max: 2 })
afterAll(async () => {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await admin.end()
})

const install = Effect.scoped(Layer.build(
  PostgresBackend.layer({ schema, hmacSecret: "none" }).pipe(
    Layer.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))
  )
))

/** Statistics of exec_core, by index name (scans and entries read), and "seq" for its sequential scans (scans and rows read). */
const coreStats = async () => {
  const r = await admin.query<{ readonly name: string; readonly scans: string; readonly read: string }>(
    `SELECT indexrelname AS name, idx_scan::text AS scans, idx_tup_read::text AS read FROM pg_stat_user_indexes
      WHERE schemaname = $1 AND relname = 'exec_core'
     UNION ALL
     SELECT 'seq', seq_scan::text, seq_tup_read::text FROM pg_stat_user_tables WHERE schemaname = $1 AND relname = 'exec_core'`,
    [schema]
  )
  return new Map(r.rows.map((row) => [row.name, { scans: Number(row.scans), read: Number(row.read) }]))
}

const createSet = (client: pg.ClientBase, n: number) =>
  client.query(`SELECT "${schema}".ff_create_executions($1, NULL) AS r`, [
    JSON.stringify(Array.from({ length: n }, () => libraryItem(`{fp:7}:${randomUUID()}`, 7, lane)))
  ])

const completeClaim = (client: pg.ClientBase, done: ReadonlyArray<Handle>, limit: number) =>
  completeClaimIn(client, schema, lane, done, limit)

/** ff_renew of the handle's lease. */
const renew = async (client: pg.ClientBase, h: Handle) => {
  const r = await client.query<{ readonly r: { readonly ok?: unknown } }>(
    `SELECT "${schema}".ff_renew($1, $2, $3, $4, $5, 60000, NULL) AS r`,
    [h.executionId, h.attemptIndex, h.attemptId, h.leaseId, h.leaseEpoch]
  )
  expect(r.rows[0]!.r.ok).toBeDefined()
}

describe("postgres: plans made on a small exec_core", () => {
  it.live("claims and completions of 64 read exec_core by its key once the table has grown", () =>
    Effect.gen(function*() {
      yield* install
      const result = yield* Effect.promise(async () => {
        // no autovacuum analyze of exec_core during the test: the session's plans stay those made below
        await admin.query(`ALTER TABLE "${schema}".exec_core SET (autovacuum_enabled = false)`)
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        try {
          // the session's first create, claim and completion, while exec_core holds one analyzed row
          await createSet(client, 1)
          await admin.query(`ANALYZE "${schema}".exec_core`)
          const first = await completeClaim(client, [], 1)
          expect(first).toHaveLength(1)
          // (six renewals: the default plan mode makes the generic plan at the sixth call)
          for (let i = 0; i < 6; i++) await renew(client, first[0]!)
          await completeClaim(client, first, 0)
          // the table grows by sets of 64 created; the same session claims and completes it all in sets
          // of 64, and renews one lease of each set
          await flushStats(client)
          const before = await coreStats()
          for (let i = 0; i < TOTAL; i += SET) await createSet(client, SET)
          let claimed = 0
          for (;;) {
            const handles = await completeClaim(client, [], SET)
            if (handles.length === 0) break
            claimed += handles.length
            await renew(client, handles[0]!)
            await completeClaim(client, handles, 0)
          }
          await flushStats(client)
          const after = await coreStats()
          const delta = (name: string) => ({
            scans: (after.get(name)?.scans ?? 0) - (before.get(name)?.scans ?? 0),
            read: (after.get(name)?.read ?? 0) - (before.get(name)?.read ?? 0)
          })
          return { claimed, pkey: delta("exec_core_pkey"), byLane: delta("exec_core_by_lane"), seq: delta("seq") }
        } finally {
          await client.end()
        }
      })
      expect(result.claimed).toBe(TOTAL)
      // the key read by look-ups: a few entries per execution, not the whole key per set
      expect(result.pkey.read).toBeLessThanOrEqual(10 * TOTAL)
      // no look-up by id through the lane index (a scan of the whole index each)
      expect(result.byLane.scans).toBeLessThan(TOTAL / SET)
      // no statement reads the table whole (the create's look-up of stored ids, as an anti-join)
      expect(result.seq.read).toBeLessThan(TOTAL)
    }), 300_000)
})
