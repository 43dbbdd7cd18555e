// A new connection of `layerPg`'s pool is warmed for an idle pickup before its first use
// (`ff_warm_up`: the pickup's functions run once in a subtransaction rolled back): the session
// has the functions compiled and leaves nothing behind, no row and no notification. Without it
// the first pickup on each new connection cost about 10 ms of server time against 1.2
// (docs/design/postgres.md, "Connections").
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Deferred, Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import * as Producer from "../src/Producer.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as Worker from "../src/Worker.js"
import { makeWarmedPool } from "../src/postgres/internal/pool.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const url = inject("pgUrl")
const tag = `${process.pid}_${Date.now().toString(36)}`
const schema = `ff_warm_${tag}`
const lateSchema = `ff_warm_late_${tag}`

const admin = new pg.Pool({ connectionString: url, max: 2 })
afterAll(async () => {
  for (const s of [schema, lateSchema]) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
  await admin.end()
})

/** The PL/pgSQL functions the session `client` has compiled, by name (its only schema's). */
const compiled = async (client: pg.ClientBase): Promise<ReadonlyArray<string>> => {
  const r = await client.query<{ readonly f: string }>(
    "SELECT DISTINCT substring(ident from '([a-z_]+)\\(') AS f FROM pg_backend_memory_contexts " +
      "WHERE name = 'PL/pgSQL function' ORDER BY 1"
  )
  return r.rows.map((row) => row.f)
}

const pickupFunctions = ["ff_claim", "ff_complete", "ff_complete_claim", "ff_create_execution", "ffi_claim_window"]

const install = (s: string) =>
  Effect.scoped(Layer.build(
    PostgresBackend.layer({ schema: s, hmacSecret: "none" }).pipe(
      Layer.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))
    )
  ))

describe("postgres: connections warmed for the pickup", () => {
  it.live("ff_warm_up compiles the pickup's functions in the session and leaves no row and no notification", () =>
    Effect.gen(function*() {
      yield* install(schema)
      const result = yield* Effect.promise(async () => {
        const listener = new pg.Client({ connectionString: url })
        await listener.connect()
        const notified: Array<string> = []
        listener.on("notification", (n) => notified.push(n.payload ?? ""))
        const channel = (await listener.query<{ readonly c: string }>(`SELECT 'ff_' || md5($1) AS c`, [schema])).rows[0]!.c
        await listener.query(`LISTEN "${channel}"`)
        // a worker waiting on the warm-up's lane would be notified by its create, were it kept
        await admin.query(`SELECT "${schema}".ff_lane_wait('flowfabric' || chr(9) || 'warm-up', 'w-1', 60000, NULL)`)
        const client = new pg.Client({ connectionString: url })
        await client.connect()
        const before = await compiled(client)
        const reply = (await client.query<{ readonly r: unknown }>(`SELECT "${schema}".ff_warm_up(NULL) AS r`)).rows[0]!.r
        const after = await compiled(client)
        await client.end()
        await new Promise((resolve) => setTimeout(resolve, 300))
        await listener.end()
        const rows = await admin.query<{ readonly n: number }>(
          `SELECT (SELECT count(*) FROM "${schema}".exec_core) + (SELECT count(*) FROM "${schema}".exec_data) + ` +
            `(SELECT count(*) FROM "${schema}".event) + (SELECT count(*) FROM "${schema}".timer) + ` +
            `(SELECT count(*) FROM "${schema}".lane_registry) + (SELECT count(*) FROM "${schema}".lane_count) AS n`
        )
        return { before, reply, after, notified, rows: Number(rows.rows[0]!.n) }
      })
      expect(result.before).toEqual([])
      // the create, the claim and the completion all ran
      expect(result.reply).toEqual({ ok: true })
      for (const f of pickupFunctions) expect(result.after).toContain(f)
      expect(result.rows).toBe(0)
      expect(result.notified).toEqual([])
    }))

  it.live("layerPg's pool warms each connection before its first use, those opened before the install once it is done", () =>
    Effect.gen(function*() {
      // the pool as layerPg makes it, on a schema not installed yet: its first connection's
      // warm-up finds no library and leaves it as it was
      const { pool, warmIdle } = yield* makeWarmedPool({ url: Redacted.make(url), maxConnections: 3 }, lateSchema)
      const early = yield* Effect.promise(() => pool.connect())
      yield* Effect.promise(() => early.query("SELECT 1"))
      early.release()
      expect(pool.totalCount).toBe(1)
      yield* install(lateSchema)
      // a connection opened now is warm when the pool hands it out
      const late = yield* Effect.promise(async () => {
        const busy = await pool.connect()
        const fresh = await pool.connect()
        const functions = await compiled(fresh)
        const cold = await compiled(busy)
        fresh.release()
        busy.release()
        return { functions, cold }
      })
      for (const f of pickupFunctions) expect(late.functions).toContain(f)
      expect(late.cold).toEqual([])
      // the connection opened before the install is warmed by warmIdle
      yield* warmIdle
      const all = yield* Effect.promise(async () => {
        const clients = await Promise.all(Array.from({ length: pool.totalCount }, () => pool.connect()))
        const found = await Promise.all(clients.map((c) => compiled(c)))
        for (const c of clients) c.release()
        return found
      })
      expect(all).toHaveLength(2)
      for (const functions of all) for (const f of pickupFunctions) expect(functions).toContain(f)
    }).pipe(Effect.scoped))

  it.live("an engine of layerPg hands a create to its idle worker (its pool warmed, its LISTEN connection from the same settings)", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, Worker.handler({
        ...Echo,
        run: (input, ctx) => Effect.as(Deferred.succeed(started, undefined), { text: input.text, attempt: ctx.attempt, resumed: ctx.resumed })
      }))
      yield* Producer.submit(Echo, { text: "warm" }, { lane })
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(1)
    }).pipe(
      Effect.scoped,
      Effect.provide(PostgresBackend.layerPg({ url: Redacted.make(url), schema, hmacSecret: "none", maxConnections: 3 }))
    ), 60_000)
})
