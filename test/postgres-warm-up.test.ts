// A new connection of `layerPg`'s pool is warmed for an idle pickup before its first use
// (`ff_warm_up`: the pickup's functions run once in a subtransaction rolled back): the session
// has the functions compiled and the statements it ran planned, and leaves nothing behind, no row
// and no notification. Without it the first pickup on each new connection cost about 10 ms of
// server time against 1.2 (docs/design/postgres.md, "Connections"). Before the schema's library
// is installed a connection is not warmed, and its warm-up logs no error on the server. The
// session keeps the warm-up's plans, made while `exec_core` held only the warm-up's own row (or a
// few more): they
// must still read only the rows they name once the table has grown. The warmed session creates
// thousands of executions one by one, claims them in sets of 64 of a named kind (the warm-up's
// branch of the claim), completes them one by one and in sets, and makes idle pickups (`CALL
// ff_create_claim`, then `ff_complete`); the server's cumulative statistics of that phase
// (pg_stat_user_indexes, pg_stat_user_tables) bound what each index and table of the schema was
// read, figures that do not depend on load.
import { afterAll, describe, expect, it } from "@effect/vitest"
import { readFile } from "node:fs/promises"
import * as PgClient from "@effect/sql-pg/PgClient"
import { randomUUID } from "node:crypto"
import { Deferred, Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import * as Producer from "../src/Producer.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as Worker from "../src/Worker.js"
import { makeWarmedPool, warmUpText } from "../src/postgres/internal/pool.js"
import { completeClaim, flushStats, type Handle } from "./support/pgLibraryCalls.js"
import { startPostgres } from "./support/servers.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const url = inject("pgUrl")
const tag = `${process.pid}_${Date.now().toString(36)}`
const schema = `ff_warm_${tag}`
const lateSchema = `ff_warm_late_${tag}`

const admin = new pg.Pool({ connectionString: url, max: 2 })
const schemas: Array<string> = [schema, lateSchema]
const databases: Array<{ readonly name: string; readonly admin: pg.Pool }> = []
afterAll(async () => {
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
  for (const d of databases) {
    await d.admin.end()
    await admin.query(`DROP DATABASE IF EXISTS "${d.name}" WITH (FORCE)`)
  }
  await admin.end()
})

/** A database of the test server for this file alone, named `name`: its url and a pool on it. */
const ownDatabase = async (name: string) => {
  await admin.query(`CREATE DATABASE "${name}"`)
  const own = new URL(url)
  own.pathname = `/${name}`
  const database = { name, url: own.toString(), admin: new pg.Pool({ connectionString: own.toString(), max: 2 }) }
  // (an idle client of the pool ended by the DROP DATABASE … WITH (FORCE) of afterAll: not an error of the test)
  database.admin.on("error", () => undefined)
  databases.push(database)
  return database
}

/** The PL/pgSQL functions the session `client` has compiled, by name (its only schema's). */
const compiled = async (client: pg.ClientBase): Promise<ReadonlyArray<string>> => {
  const r = await client.query<{ readonly f: string }>(
    "SELECT DISTINCT substring(ident from '([a-z_]+)\\(') AS f FROM pg_backend_memory_contexts " +
      "WHERE name = 'PL/pgSQL function' ORDER BY 1"
  )
  return r.rows.map((row) => row.f)
}

const pickupFunctions = ["ff_claim", "ff_complete", "ff_complete_claim", "ff_create_execution", "ffi_claim_window"]

const install = (s: string, on: string = url) =>
  Effect.scoped(Layer.build(
    PostgresBackend.layer({ schema: s, hmacSecret: "none" }).pipe(
      Layer.provide(PgClient.layer({ url: Redacted.make(on), maxConnections: 2 }))
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

  it.live("a pool opened before its schema is installed logs no error for its connections' warm-up", () =>
    Effect.gen(function*() {
      // a server of its own: its log is this test's alone
      const server = yield* Effect.acquireRelease(Effect.promise(() => startPostgres()), (s) => Effect.promise(() => s.stop()))
      const { pool } = yield* makeWarmedPool({ url: Redacted.make(server.url), maxConnections: 3 }, lateSchema)
      const early = yield* Effect.promise(() => pool.connect())
      yield* Effect.promise(() => early.query("SELECT 1"))
      yield* install(lateSchema, server.url)
      // opened after the install (the early one still held): warmed
      const functions = yield* Effect.promise(async () => {
        const fresh = await pool.connect()
        const found = await compiled(fresh)
        fresh.release()
        early.release()
        return found
      })
      for (const f of pickupFunctions) expect(functions).toContain(f)
      const log = yield* Effect.promise(() => readFile(server.logFile, "utf8"))
      expect(log.split("\n").filter((line) => /ERROR/.test(line))).toEqual([])
    }).pipe(Effect.scoped), 120_000)

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

const lane = "plans"
const pickupLane = "pickup"
const TOTAL = 2_048
const SET = 64
const PICKUPS = 256

interface Reads {
  readonly scans: number
  readonly read: number
}

/** The schema's statistics: per index (`table.index`, scans and entries read) and per table (`table`, sequential scans and rows read). */
const stats = async (admin: pg.Pool, schema: string): Promise<Map<string, Reads>> => {
  const r = await admin.query<{ readonly name: string; readonly scans: string; readonly read: string }>(
    `SELECT relname || '.' || indexrelname AS name, idx_scan::text AS scans, idx_tup_read::text AS read
       FROM pg_stat_user_indexes WHERE schemaname = $1
     UNION ALL
     SELECT relname, seq_scan::text, seq_tup_read::text FROM pg_stat_user_tables WHERE schemaname = $1`,
    [schema]
  )
  return new Map(r.rows.map((row) => [row.name, { scans: Number(row.scans), read: Number(row.read) }]))
}

const create = async (client: pg.ClientBase, schema: string) => {
  const r = await client.query<{ readonly r: { readonly ok?: unknown } }>(
    `SELECT "${schema}".ff_create_execution($1, 7, 'default', $2, 'k', '\\x7b7d'::bytea, 'json', 0, '', NULL, '{}',
       'null', '{}', NULL, NULL, NULL, 100, 10, 86400000, NULL, NULL) AS r`,
    [`{fp:7}:${randomUUID()}`, lane]
  )
  expect(r.rows[0]!.r.ok).toBeDefined()
}

const complete = async (client: pg.ClientBase, schema: string, h: Handle) => {
  const r = await client.query<{ readonly r: { readonly ok?: unknown } }>(
    `SELECT "${schema}".ff_complete($1, $2, $3, $4, $5, '\\x7b7d'::bytea, NULL) AS r`,
    [h.executionId, h.attemptIndex, h.attemptId, h.leaseId, h.leaseEpoch]
  )
  expect(r.rows[0]!.r).toEqual({ ok: null })
}

/** An idle pickup: the create and the worker's claim of it in one CALL, then its completion. */
const pickup = async (client: pg.ClientBase, schema: string) => {
  const r = await client.query<{ readonly r: { readonly ok: { readonly claim: { readonly handles: ReadonlyArray<Handle> } | null } } }>(
    `CALL "${schema}".ff_create_claim($1, 7, 'default', $2, 'k', '\\x7b7d'::bytea, 'json', 0, '', NULL, '{}', 'null',
       '{}', NULL, NULL, NULL, 100, 10, 86400000, NULL, '{}', ARRAY['k'], 'w', 'w-2', 60000, 1, 1048576, NULL, $3, NULL)`,
    [`{fp:7}:${randomUUID()}`, pickupLane, schema]
  )
  const handles = r.rows[0]!.r.ok.claim?.handles ?? []
  expect(handles).toHaveLength(1)
  await complete(client, schema, handles[0]!)
}

/**
 * On a fresh schema (`rows` analyzed executions of another lane first): a session warmed as the
 * pool warms it, then the phase; the reads of the phase.
 */
const warmedPhase = (rows: number) =>
  Effect.gen(function*() {
    const s = `ff_warm_plans_${rows}_${tag}`
    // a database of its own: a schema created or dropped in the same database (the other test
    // files' schemas) makes every session of it drop all its cached plans, and they would be made
    // again on the grown table
    const database = yield* Effect.promise(() => ownDatabase(s))
    yield* install(s, database.url)
    return yield* Effect.promise(async () => {
      const admin = database.admin
      // no autovacuum analyze during the test: the session's plans stay those of its warm-up
      for (const t of ["exec_core", "exec_data", "event", "timer", "lane_count"]) {
        await admin.query(`ALTER TABLE "${s}".${t} SET (autovacuum_enabled = false)`)
      }
      if (rows > 0) {
        for (let i = 0; i < rows; i++) {
          await admin.query(
            `SELECT "${s}".ff_create_execution($1, 3, 'default', 'other', 'k', '\\x7b7d'::bytea, 'json', 0, '', NULL,
               '{}', 'null', '{}', NULL, NULL, NULL, 100, 10, 86400000, NULL, NULL)`,
            [`{fp:3}:${randomUUID()}`]
          )
        }
        await admin.query(`ANALYZE "${s}".exec_core, "${s}".exec_data`)
      }
      const client = new pg.Client({ connectionString: database.url })
      await client.connect()
      try {
        await client.query(warmUpText(s))
        await flushStats(client)
        const before = await stats(admin, s)
        for (let i = 0; i < TOTAL; i++) await create(client, s)
        let claimed = 0
        let sets = 0
        for (;;) {
          const handles = await completeClaim(client, s, lane, [], SET, true)
          if (handles.length === 0) break
          claimed += handles.length
          sets += 1
          // the completions one by one (ff_complete, as the warm-up's) and in sets, in turn
          if (sets % 2 === 0) await completeClaim(client, s, lane, handles, 0, true)
          else for (const h of handles) await complete(client, s, h)
        }
        for (let i = 0; i < PICKUPS; i++) await pickup(client, s)
        await flushStats(client)
        const after = await stats(admin, s)
        const delta = new Map(Array.from(after, ([name, a]) => {
          const b = before.get(name) ?? { scans: 0, read: 0 }
          return [name, { scans: a.scans - b.scans, read: a.read - b.read }] as const
        }))
        return { claimed, delta }
      } finally {
        await client.end()
      }
    })
  })

const N = TOTAL + PICKUPS

const check = (result: { readonly claimed: number; readonly delta: ReadonlyMap<string, Reads> }) => {
  const read = (name: string) => result.delta.get(name) ?? { scans: 0, read: 0 }
  expect(result.claimed).toBe(TOTAL)
  // the key read by look-ups: a few entries per execution, not the whole key per call
  expect(read("exec_core.exec_core_pkey").read).toBeLessThanOrEqual(10 * N)
  // no look-up by id through the lane index (a scan of the whole index each)
  expect(read("exec_core.exec_core_by_lane").scans).toBeLessThan(SET)
  // no index and no table of the schema read whole per call: every index's entries and every
  // table's rows read sequentially, a few per execution at most
  for (const [name, d] of result.delta) {
    if (name.includes(".")) expect({ name, read: d.read }).toEqual({ name, read: expect.toSatisfy((n: number) => n <= 10 * N) })
    else expect({ name, read: d.read }).toEqual({ name, read: expect.toSatisfy((n: number) => n < TOTAL) })
  }
}

describe("postgres: a warmed connection keeps its warm-up's plans", () => {
  it.live("warmed on an empty exec_core, its creates, claims, completions and pickups read by key once the table has grown", () =>
    Effect.map(warmedPhase(0), check), 300_000)

  it.live("warmed while exec_core holds one analyzed row, the same", () => Effect.map(warmedPhase(1), check), 300_000)
})
