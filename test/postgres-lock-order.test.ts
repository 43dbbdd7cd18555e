// Every path that locks a flow member and its flow takes the member first, then the flow
// (docs/design/postgres.md, "Transactions and locking"): applyDependencyToChild locks the child,
// then the flow for an edge not staged; extendFlow locks the edges' downstream members before the
// flow. Provoked deterministically: a transaction holds the child's lock (where
// applyDependencyToChild's own statement stands after its first lock), extendFlow with an edge to
// that child starts and waits, then the transaction applies a dependency to the child, which locks
// the flow. With extendFlow locking the flow first, the two waited for each other and Postgres
// ended one of them (deadlock_detected); now extendFlow waits for the child alone and both succeed.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { randomUUID } from "node:crypto"
import { Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import * as Ids from "../src/Ids.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { libraryItem } from "./support/pgLibraryCalls.js"

const url = inject("pgUrl")
const schema = `ff_lock_order_${process.pid}_${Date.now().toString(36)}`

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

/** "ok" for a call that answered {"ok": …}, its error code otherwise (the reply's, or the statement's SQLSTATE). */
const outcome = (p: Promise<pg.QueryResult<{ readonly r: { readonly ok?: unknown; readonly err?: string } }>>): Promise<string> =>
  p.then(
    (res) => (res.rows[0]!.r.ok !== undefined ? "ok" : String(res.rows[0]!.r.err)),
    (e: unknown) => (typeof e === "object" && e !== null && "code" in e ? String(e.code) : String(e))
  )

describe("postgres: one lock order for a member and its flow", () => {
  it.live("applyDependencyToChild and extendFlow on the same child do not deadlock", () =>
    Effect.gen(function*() {
      yield* install
      const result = yield* Effect.promise(async () => {
        const flowId = randomUUID() as Ids.FlowId
        const partition = Ids.flowPartition(flowId)
        const [up, child, other] = [0, 1, 2].map(() => `{fp:${partition}}:${randomUUID()}`)
        const created = await admin.query<{ readonly r: { readonly ok?: unknown } }>(
          `SELECT "${schema}".ff_create_flow_graph($1, $2, 'k', 'default', $3, '[]', '[]', false, NULL) AS r`,
          [flowId, partition, JSON.stringify([up, child, other].map((id) => libraryItem(id!, partition, "lock-order")))]
        )
        expect(created.rows[0]!.r.ok).toBeDefined()
        const a = new pg.Client({ connectionString: url })
        const b = new pg.Client({ connectionString: url })
        await a.connect()
        await b.connect()
        try {
          const bPid = (await b.query<{ readonly p: number }>("SELECT pg_backend_pid() AS p")).rows[0]!.p
          // A holds the child's lock, as applyDependencyToChild does after its first statement
          await a.query("BEGIN")
          await a.query(
            `SELECT 1 FROM "${schema}".exec_core WHERE partition_key = $1 AND e_uuid = $2 FOR UPDATE`,
            [partition, child!.slice(child!.indexOf("}:") + 2)]
          )
          // B extends the flow with an edge to the child, and waits for a lock
          const extended = outcome(b.query(
            `SELECT "${schema}".ff_extend_flow($1, '[]', $2, '[]', 1000, 1000, NULL) AS r`,
            [flowId, JSON.stringify([{ edgeId: randomUUID(), upstream: other, downstream: child, kind: "success_only", dataRef: "" }])]
          ))
          for (let i = 0;; i++) {
            const waiting = await admin.query<{ readonly w: string | null }>(
              "SELECT wait_event_type AS w FROM pg_stat_activity WHERE pid = $1",
              [bPid]
            )
            if (waiting.rows[0]?.w === "Lock") break
            if (i > 500) throw new Error("extendFlow never waited for a lock")
            await new Promise((resolve) => setTimeout(resolve, 10))
          }
          // A applies a dependency not staged to the child: it locks the flow
          const applied = await outcome(a.query(
            `SELECT "${schema}".ff_apply_dependency_to_child($1, $2, $3, $4, 'success_only', '', 1000, NULL) AS r`,
            [flowId, randomUUID(), child, up]
          ))
          await a.query(applied === "ok" ? "COMMIT" : "ROLLBACK")
          const extendedOutcome = await extended
          const deps = await admin.query<{ readonly n: string }>(
            `SELECT count(*)::text AS n FROM "${schema}".dep WHERE downstream_id = $1`,
            [child]
          )
          return { applied, extended: extendedOutcome, deps: Number(deps.rows[0]!.n) }
        } finally {
          await a.end()
          await b.end()
        }
      })
      expect(result).toEqual({ applied: "ok", extended: "ok", deps: 2 })
    }), 60_000)
})
