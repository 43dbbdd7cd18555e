// The Postgres schema layout: DDL-only migrations plus the function library of src/postgres/sql/,
// installed by version. A schema built through the first layout's migrations 0001–0020 and then
// started with this layer equals a fresh one (pg_dump --schema-only); the library is installed
// once per version, also when layers start at once, and `migrate: false` refuses a schema whose
// library is not this one.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { execFile } from "node:child_process"
import { readFileSync } from "node:fs"
import * as path from "node:path"
import { promisify } from "node:util"
import { Effect, Either, Layer, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { Maintenance } from "../src/Maintenance.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import {
  assemble,
  LIBRARY_TABLE,
  loadLibrary,
  readLibraryFiles,
  SQL_FILES
} from "../src/postgres/internal/library.js"
import { appliedVersion, LATEST_MIGRATION, migrate, migrations } from "../src/postgres/migrations/index.js"
import { migrateChain } from "./fixtures/postgres-chain-0020/index.js"
import { pgBinDir } from "./support/servers.js"

/** The migrations after the baseline, as `[id, name]`. */
const laterMigrations: ReadonlyArray<readonly [number, string]> = Object.keys(migrations)
  .map((k) => [Number(k.slice(0, 4)), k.slice(5)] as const)
  .filter(([id]) => id > 20)
  .sort(([a], [b]) => a - b)

const url = inject("pgUrl")
const tag = `${process.pid}_${Date.now().toString(36)}`
const chainSchema = `ff_lib_chain_${tag}`
const freshSchema = `ff_lib_fresh_${tag}`
const raceSchema = `ff_lib_race_${tag}`
const oldSchema = `ff_lib_old_${tag}`
const pickupSchema = `ff_lib_pickup_${tag}`
const checkSchema = `ff_lib_check_${tag}`
const rowSchema = `ff_lib_row_${tag}`
/** The functions an idle pickup and the worker runtime call first (docs/benchmarks.md, issue 15). */
const hotEntryPoints = [
  "ff_claim",
  "ff_complete",
  "ff_complete_claim",
  "ff_complete_set",
  "ff_create_execution",
  "ff_lane_wait"
]

const clientDropping = (...schemas: ReadonlyArray<string>) =>
  Layer.scopedDiscard(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.addFinalizer(() =>
        Effect.ignore(Effect.forEach(schemas, (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)))
      ))
  ).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 8 })))

/** Runs `effect` over a pool of its own, as another process would. */
const inOwnPool = <A, E>(effect: Effect.Effect<A, E, SqlClient.SqlClient>) =>
  Effect.scoped(Effect.flatMap(
    Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 })),
    (ctx) => Effect.provide(effect, ctx)
  ))

const run = promisify(execFile)

/**
 * `pg_dump --schema-only` of one schema, normalised only where two schemas must differ: the
 * schema's name becomes `<schema>`, and the `\restrict` / `\unrestrict` lines (a random key per
 * dump, printed by newer pg_dump releases) are dropped.
 */
const dump = (schema: string) =>
  Effect.promise(async () => {
    const { stdout } = await run(
      path.join(pgBinDir(), "pg_dump"),
      ["--schema-only", `--schema=${schema}`, `--dbname=${url}`],
      { maxBuffer: 64 * 1024 * 1024 }
    )
    return stdout
      .split("\n")
      .filter((line) => !/^\\(un)?restrict /.test(line))
      .join("\n")
      .replace(new RegExp(`\\b${schema}\\b`, "g"), "<schema>")
  })

/** Every function of `schema` with its oid, by signature. */
const functions = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly sig: string; readonly oid: string }>(
      "SELECT p.oid::regprocedure::text AS sig, p.oid::text AS oid FROM pg_proc p " +
        "WHERE p.pronamespace = $1::regnamespace ORDER BY 1",
      [schema]
    ))

const storedVersion = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.map(
      sql.unsafe<{ readonly version: string }>(`SELECT version FROM "${schema}".${LIBRARY_TABLE}`),
      (rows) => rows[0]?.version
    ))

describe("postgres function library", () => {
  it.layer(clientDropping(chainSchema, freshSchema, raceSchema, oldSchema, pickupSchema, checkSchema, rowSchema), { timeout: 120_000 })((it) => {
    it.effect("a schema migrated through 0001–0020 and then started equals a fresh one (pg_dump --schema-only)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const library = yield* loadLibrary
        yield* migrateChain(chainSchema)
        expect(yield* appliedVersion(chainSchema)).toBe(20)
        // the first layout leaves a function the library no longer has
        const before = (yield* functions(chainSchema)).map((f) => f.sig)
        expect(before).toContain(`${chainSchema}.ffi_retention_arm()`)

        yield* PostgresBackend.make({ hmacSecret: "none", schema: chainSchema })
        yield* PostgresBackend.make({ hmacSecret: "none", schema: freshSchema })

        // the chain's schema skipped the baseline; the fresh one applied only the baseline
        const ledger = (schema: string) =>
          sql.unsafe<{ readonly id: number; readonly name: string }>(
            `SELECT migration_id AS id, name FROM "${schema}".ff_migrations ORDER BY 1`
          )
        expect((yield* ledger(chainSchema)).map((r) => r.id)).toEqual([
          ...Array.from({ length: 20 }, (_, i) => i + 1),
          ...laterMigrations.map(([id]) => id)
        ])
        expect((yield* ledger(freshSchema)).map((r) => [r.id, r.name])).toEqual([[20, "baseline"], ...laterMigrations])
        expect(yield* storedVersion(chainSchema)).toBe(library.version)
        expect(yield* storedVersion(freshSchema)).toBe(library.version)

        const a = yield* dump(chainSchema)
        const b = yield* dump(freshSchema)
        expect(a.match(/^CREATE TABLE /gm)?.length).toBeGreaterThan(25)
        expect(a.match(/^CREATE FUNCTION /gm)?.length).toBeGreaterThan(100)
        expect(a).not.toContain("ffi_retention_arm")
        expect(a).toBe(b)
      }))

    // PL/pgSQL plans a statement only when it first runs, so a type error (a state of exec_state
    // compared with a text value, a function called with an argument of the wrong type) in a branch
    // no other test takes would go unnoticed: plpgsql_check (installed by .ci/run) plans them all.
    it.effect("every statement of every PL/pgSQL function of the schema type-checks (plpgsql_check)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* PostgresBackend.make({ hmacSecret: "none", schema: checkSchema })
        yield* sql.unsafe("CREATE EXTENSION IF NOT EXISTS plpgsql_check")
        // the helpers run on the caller's search path: the schema's, as the entry points set it
        const errors = yield* sql.withTransaction(Effect.zipRight(
          sql.unsafe(`SET LOCAL search_path TO "${checkSchema}", public`),
          sql.unsafe<{ readonly fn: string; readonly line: number | null; readonly message: string }>(
          `SELECT p.proname AS fn, c.lineno AS line, c.message || coalesce(': ' || c.query, '') AS message
           FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
           JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql'
           CROSS JOIN LATERAL plpgsql_check_function_tb(p.oid,
             relid => CASE WHEN p.prorettype <> 'trigger'::regtype THEN 0
                           WHEN p.proname = 'ff_trg_flow_event' THEN format('%I.flow_core', n.nspname)::regclass
                           ELSE format('%I.exec_core', n.nspname)::regclass END,
             newtable => CASE WHEN p.proname = 'ffi_lane_count_rows' THEN 'ffi_rows'
                              WHEN p.proname IN ('ffi_trg_events_created', 'ffi_trg_events_updated',
                                                 'ffi_lane_count_update') THEN 'ffi_new' END,
             oldtable => CASE WHEN p.proname IN ('ffi_trg_events_updated', 'ffi_lane_count_update') THEN 'ffi_old' END,
             fatal_errors => false, other_warnings => false, performance_warnings => false,
             extra_warnings => false) c
           WHERE n.nspname = $1 AND c.level = 'error'
           ORDER BY 1, 2`,
            [checkSchema]
          )
        ))
        const checked = yield* sql.unsafe<{ readonly n: number }>(
          `SELECT count(*)::int AS n FROM pg_proc p JOIN pg_namespace ns ON ns.oid = p.pronamespace
           JOIN pg_language l ON l.oid = p.prolang AND l.lanname = 'plpgsql' WHERE ns.nspname = $1`,
          [checkSchema]
        )
        expect(checked[0]?.n).toBeGreaterThan(100)
        expect(errors.map((e) => `${e.fn}:${e.line ?? "-"} ${e.message}`)).toEqual([])
      }))

    it.effect("a second start with the same library installs nothing; another version replaces every function", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const library = yield* loadLibrary
        yield* PostgresBackend.make({ hmacSecret: "none", schema: freshSchema })
        const first = yield* functions(freshSchema)
        yield* PostgresBackend.make({ hmacSecret: "none", schema: freshSchema })
        expect(yield* functions(freshSchema)).toEqual(first)
        expect((yield* migrate(freshSchema, library)).libraryInstalled).toBe(false)

        // another recorded version: the next start installs the library again
        yield* sql.unsafe(`UPDATE "${freshSchema}".${LIBRARY_TABLE} SET version = 'another'`)
        yield* PostgresBackend.make({ hmacSecret: "none", schema: freshSchema })
        expect(yield* storedVersion(freshSchema)).toBe(library.version)
        const reinstalled = yield* functions(freshSchema)
        expect(reinstalled.map((f) => f.sig)).toEqual(first.map((f) => f.sig))
        // every library function is new; the index and trigger functions belong to the migrations
        const kept = reinstalled.filter((f) => first.some((g) => g.oid === f.oid)).map((f) => f.sig)
        expect(kept).toEqual([
          `${freshSchema}.ff_trg_flow_event()`,
          `${freshSchema}.ffi_eid(integer,uuid)`,
          `${freshSchema}.ffi_lane_count_rows()`,
          `${freshSchema}.ffi_lane_count_update()`,
          `${freshSchema}.ffi_trg_events_created()`,
          `${freshSchema}.ffi_trg_events_updated()`
        ])

        // a library whose function changed its signature: no stale overload is left behind
        const files = readLibraryFiles().map((text, i) =>
          SQL_FILES[i] === "admin.sql" ?
            text.replace("CREATE FUNCTION ff_ping(p_now bigint)", "CREATE FUNCTION ff_ping(p_extra int, p_now bigint)") :
            text
        )
        const changed = assemble(files)
        expect(changed.version).not.toBe(library.version)
        expect((yield* migrate(freshSchema, changed)).libraryInstalled).toBe(true)
        const pings = (yield* functions(freshSchema)).filter((f) => f.sig.includes(".ff_ping("))
        expect(pings.map((f) => f.sig)).toEqual([`${freshSchema}.ff_ping(integer,bigint)`])
        expect((yield* migrate(freshSchema, library)).libraryInstalled).toBe(true)
        expect((yield* functions(freshSchema)).map((f) => f.sig)).toEqual(first.map((f) => f.sig))
      }))

    it.effect("layers starting at once install the library once", () =>
      Effect.gen(function*() {
        const library = yield* loadLibrary
        const results = yield* Effect.all(
          [1, 2, 3, 4].map(() => inOwnPool(migrate(raceSchema, library))),
          { concurrency: "unbounded" }
        )
        expect(results.filter((r) => r.libraryInstalled)).toHaveLength(1)
        expect(results.flatMap((r) => r.migrations)).toEqual([[20, "baseline"], ...laterMigrations])
        // and whole layers starting at once all come up on the installed library
        yield* Effect.all([1, 2].map(() => inOwnPool(PostgresBackend.make({ hmacSecret: "none", schema: raceSchema }))), {
          concurrency: "unbounded"
        })
        expect(yield* storedVersion(raceSchema)).toBe(library.version)
      }))

    it.effect("migrate: false refuses a schema whose function library is missing or another version", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        // a schema of the first layout at migration 20: no library (and the later migrations pending)
        yield* migrateChain(oldSchema)
        const behind = yield* Effect.either(PostgresBackend.make({ hmacSecret: "none", schema: oldSchema, migrate: false }))
        expect(Either.isLeft(behind) && behind.left).toMatchObject({ _tag: "Unavailable" })
        expect(Either.isLeft(behind) && behind.left.message).toContain(
          laterMigrations.length > 0 ? `this code needs ${LATEST_MIGRATION}` : "no function library"
        )

        yield* PostgresBackend.make({ hmacSecret: "none", schema: oldSchema })
        yield* PostgresBackend.make({ hmacSecret: "none", schema: oldSchema, migrate: false })

        yield* sql.unsafe(`DELETE FROM "${oldSchema}".${LIBRARY_TABLE}`)
        const missing = yield* Effect.either(PostgresBackend.make({ hmacSecret: "none", schema: oldSchema, migrate: false }))
        expect(Either.isLeft(missing) && missing.left).toMatchObject({ _tag: "Unavailable" })
        expect(Either.isLeft(missing) && missing.left.message).toContain("no function library")
        yield* PostgresBackend.make({ hmacSecret: "none", schema: oldSchema })

        yield* sql.unsafe(`UPDATE "${oldSchema}".${LIBRARY_TABLE} SET version = 'another'`)
        const other = yield* Effect.either(PostgresBackend.make({ hmacSecret: "none", schema: oldSchema, migrate: false }))
        expect(Either.isLeft(other) && other.left).toMatchObject({ _tag: "Unavailable" })
        expect(Either.isLeft(other) && other.left.message).toContain("function library another")
      }))

    it.effect("the pickup's entry points plan generically from their first call; the wake-up calls answer what they did", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* PostgresBackend.make({ hmacSecret: "none", schema: pickupSchema })
        // the default plan_cache_mode plans each statement again at each of a session's first five
        // calls (and for good when the generic plan looks dearer): a fresh pooled session paid that
        const configs = yield* sql.unsafe<{ readonly name: string; readonly config: ReadonlyArray<string> | null }>(
          "SELECT p.proname AS name, p.proconfig AS config FROM pg_proc p WHERE p.pronamespace = $1::regnamespace " +
            "AND p.proname = ANY ($2::text[]) ORDER BY 1",
          [pickupSchema, hotEntryPoints]
        )
        expect(configs.map((c) => c.name)).toEqual([...hotEntryPoints].sort())
        for (const c of configs) expect(c.config ?? [], c.name).toContain("plan_cache_mode=force_generic_plan")
        // ffi_wake and ffi_events_wake are called in expressions on the hot path (no query start-up):
        // each answers whether it had someone to notify
        // (the internal functions run on the search_path their entry point sets)
        const answer = (call: string) =>
          sql.withTransaction(Effect.zipRight(
            sql.unsafe(`SET LOCAL search_path TO "${pickupSchema}"`),
            Effect.map(sql.unsafe<{ readonly w: boolean }>(`SELECT ${call} AS w`), (rows) => rows[0]?.w)
          ))
        expect(yield* answer("ffi_wake('nobody-waits')")).toBe(false)
        yield* sql.unsafe(`SELECT "${pickupSchema}".ff_lane_wait('waited', 'w-1', 60000, NULL)`)
        expect(yield* answer("ffi_wake('waited')")).toBe(true)
        expect(yield* answer("ffi_events_wake(ARRAY['l:waited'])")).toBe(false)
      }))

    it.effect("exec_core's CHECK constraints call no function, and still refuse a forbidden row", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        yield* PostgresBackend.make({ hmacSecret: "none", schema: rowSchema })
        // a CHECK is planned at the start of each statement that writes the table: a SQL function
        // in it had its body parsed and analysed again each time (migration 0049)
        const calls = yield* sql.unsafe<{ readonly c: string; readonly f: string }>(
          "SELECT c.conname AS c, d.refobjid::regprocedure::text AS f FROM pg_constraint c " +
            "JOIN pg_depend d ON d.classid = 'pg_constraint'::regclass AND d.objid = c.oid " +
            "AND d.refclassid = 'pg_proc'::regclass WHERE c.conrelid = $1::regclass",
          [`"${rowSchema}".exec_core`]
        )
        expect(calls).toEqual([])
        const checks = yield* sql.unsafe<{ readonly c: string }>(
          "SELECT conname AS c FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c' ORDER BY 1",
          [`"${rowSchema}".exec_core`]
        )
        expect(checks.map((c) => c.c)).toEqual(["exec_core_claimable", "exec_core_row"])
        // their value lists are array constants: a list of constants is read back and folded into
        // one array at each statement (migration 0056)
        const defs = yield* sql.unsafe<{ readonly d: string }>(
          "SELECT pg_get_constraintdef(oid) AS d FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
          [`"${rowSchema}".exec_core`]
        )
        expect(defs.filter((d) => d.d.includes("ARRAY["))).toEqual([])
        const b = yield* PostgresBackend.make({ hmacSecret: "none", schema: rowSchema })
        const laneId = Ids.unsafe.laneId("row-check")
        const executionId = yield* Ids.executionIdSolo(laneId)
        yield* b.backend.createExecution({ executionId, namespace: Ids.unsafe.namespace("default"), laneId, executionKind: "k" })
        const refused = (set: string) =>
          Effect.flip(sql.unsafe(`UPDATE "${rowSchema}".exec_core SET ${set}`)).pipe(
            Effect.map((e) => (e.cause as { readonly code?: string }).code)
          )
        // leased while not active; terminal without an outcome; a priority out of range
        expect(yield* refused("ownership_state = 'leased'")).toBe("23514")
        expect(yield* refused("lifecycle_phase = 'terminal'")).toBe("23514")
        expect(yield* refused("priority = 9001")).toBe("23514")
        // a state of another column's list; a claimable row whose blocking_reason says otherwise
        expect(yield* refused("eligibility_state = 'leased'")).toBe("23514")
        expect(yield* refused("blocking_reason = 'none'")).toBe("23514")
      }))
  })

  it.live("lane counts: the retention pass folds the count rows of ended processes into shard 0, the counts unchanged", () =>
    Effect.gen(function*() {
      const schema = `ff_lane_fold_${tag}`
      const layer = PostgresBackend.layerPg({ url: Redacted.make(url), schema, hmacSecret: "none", maxConnections: 2 })
      const lane = Ids.unsafe.laneId("fold")
      const counts = Effect.flatMap(EngineBackend, (b) => b.countLaneExecutions(lane))
      // a pool of its own creates executions, then closes: its server processes end
      yield* Effect.scoped(Effect.flatMap(Layer.build(layer), (ctx) =>
        Effect.provide(
          Effect.gen(function*() {
            const b = yield* EngineBackend
            for (let i = 0; i < 3; i++) {
              yield* b.createExecution({
                executionId: yield* Ids.executionIdSolo(lane),
                namespace: Ids.unsafe.namespace("fold"),
                laneId: lane,
                executionKind: "k",
                ...(i === 0 ? { delayUntil: Date.now() + 3_600_000 } : {})
              })
            }
          }),
          ctx
        )))
      const rows = (sql: SqlClient.SqlClient) =>
        sql.unsafe<{ readonly shard: number; readonly public_state: string; readonly n: string }>(
          `SELECT shard, public_state, n::text AS n FROM "${schema}".lane_count WHERE lane_id = 'fold' ORDER BY 1, 2`
        )
      const sql = yield* SqlClient.SqlClient
      // until the ended processes left pg_stat_activity
      for (let i = 0; i < 100; i++) {
        const live = yield* sql.unsafe<{ readonly n: string }>(
          `SELECT count(*)::text AS n FROM pg_stat_activity WHERE pid IN (SELECT shard FROM "${schema}".lane_count)`
        )
        if (live[0]?.n === "0") break
        yield* Effect.sleep("50 millis")
      }
      expect((yield* rows(sql)).every((r) => r.shard !== 0)).toBe(true)
      yield* Effect.scoped(Effect.flatMap(Layer.build(layer), (ctx) =>
        Effect.provide(
          Effect.gen(function*() {
            const before = yield* counts
            expect(before.byState).toMatchObject({ waiting: 2, delayed: 1 })
            yield* Effect.flatMap(Maintenance, (m) => m.trimRetention())
            expect(yield* counts).toEqual(before)
          }),
          ctx
        )))
      expect(yield* rows(sql)).toEqual([
        { shard: 0, public_state: "delayed", n: "1" },
        { shard: 0, public_state: "waiting", n: "2" }
      ])
      yield* sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))), 60_000)

  it.live("lane counts: batch claims and completions (one UPDATE of many rows each) keep every count equal to the rows", () =>
    Effect.gen(function*() {
      const schema = `ff_lane_batch_${tag}`
      const lane = Ids.unsafe.laneId("batch")
      const policy = {
        workerId: Ids.unsafe.workerId("w"),
        workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
        leaseTtlMs: 60_000
      }
      const sql = yield* SqlClient.SqlClient
      const stored = sql.unsafe<{ readonly public_state: string; readonly n: string }>(
        `SELECT public_state, count(*)::text AS n FROM "${schema}".exec_core WHERE lane_id = 'batch' GROUP BY 1`
      )
      yield* Effect.scoped(Effect.flatMap(
        Layer.build(PostgresBackend.layerPg({ url: Redacted.make(url), schema, hmacSecret: "none", maxConnections: 2 })),
        (ctx) =>
          Effect.provide(
            Effect.gen(function*() {
              const b = yield* EngineBackend
              const same = Effect.gen(function*() {
                const counts = yield* b.countLaneExecutions(lane)
                const rows = Object.fromEntries((yield* stored).map((r) => [r.public_state, Number(r.n)]))
                expect(Object.fromEntries(Object.entries(counts.byState).filter(([, n]) => n !== 0))).toEqual(rows)
                return counts
              })
              yield* b.createExecutions(Array.from({ length: 40 }, () => ({
                executionId: Ids.deterministicExecutionIdSolo(lane, crypto.randomUUID()),
                namespace: Ids.unsafe.namespace("batch"),
                laneId: lane,
                executionKind: "k"
              })))
              const claimed = yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 30)
              expect(claimed.length).toBe(30)
              expect((yield* same).byState).toMatchObject({ waiting: 10, active: 30 })
              yield* b.completeMany(claimed.slice(0, 20).map((handle) => ({ handle })))
              yield* b.renew(claimed[25]!)
              expect((yield* same).byState).toMatchObject({ waiting: 10, active: 10, completed: 20 })
              const outcome = yield* b.completeAndClaim(claimed.slice(20).map((handle) => ({ handle })), {
                args: { lane, capabilities: { tokens: [] }, policy },
                max: 4
              })
              expect(outcome.claimed.length).toBe(4)
              expect((yield* same).byState).toMatchObject({ waiting: 6, active: 4, completed: 30 })
            }),
            ctx
          )
      ))
      yield* sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 }))), 60_000)

  it("each library function is defined once, under a header giving its arguments, reply and errors", () => {
    const names: Array<string> = []
    for (const file of SQL_FILES) {
      const text = readFileSync(new URL(`../src/postgres/sql/${file}`, import.meta.url), "utf8")
      for (const m of text.matchAll(/((?:^--.*\n)*)^CREATE (OR REPLACE )?(?:FUNCTION|PROCEDURE) (\w+)\(/gm)) {
        const [, header = "", orReplace, name = ""] = m
        names.push(name)
        expect(orReplace, `${file}: ${name} is created with plain CREATE FUNCTION / PROCEDURE`).toBeUndefined()
        expect(header, `${file}: ${name} has a header`).toMatch(new RegExp(`^-- ${name}: `, "m"))
        for (const field of ["args", "reply", "errors"]) {
          expect(header, `${file}: ${name} header names its ${field}`).toMatch(new RegExp(`^-- {3}${field}: `, "m"))
        }
      }
    }
    expect(names.length).toBeGreaterThan(100)
    expect(names.filter((n, i) => names.indexOf(n) !== i)).toEqual([])
  })
})
