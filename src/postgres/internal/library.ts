/**
 * The function library: every PL/pgSQL and SQL function of the backend, in the files of
 * `src/postgres/sql/` concatenated in a fixed order (the header `flowfabric.sql` first). Its
 * version is `<declared version>+<sha1 of the source>`, so any change to any file reinstalls it.
 *
 * The library is installed in the migration transaction, after the migrations and under the
 * same advisory lock: when the version recorded in the schema's `ff_library` table differs from
 * this one, every library function of the schema is dropped and the library is created again,
 * so a changed signature or return type and a function that no longer exists need nothing
 * special, and the drop and the creation commit together: no session finds the library half
 * installed. The functions the tables depend on (a CHECK constraint's function) belong to the
 * migrations and are left alone.
 */
import type { SqlError } from "@effect/sql/SqlError"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { Effect } from "effect"
import { Transport } from "../../EngineError.js"
import { quoteIdent } from "./client.js"
import { SqlClient } from "./driver.js"

/** Load order: the header, the helpers every area uses, then the areas. */
export const SQL_FILES = [
  "flowfabric.sql",
  "internal.sql",
  "wakeups.sql",
  "events.sql",
  "history.sql",
  "terminal.sql",
  "lifecycle.sql",
  "claim.sql",
  "signals.sql",
  "flows.sql",
  "flow_cancel.sql",
  "streams.sql",
  "budgets.sql",
  "admin.sql",
  "maintenance.sql",
  "reads.sql"
] as const

/** The table (one row) recording the installed library version, inside the deployment's schema. */
export const LIBRARY_TABLE = "ff_library"

export interface Library {
  readonly source: string
  /** What `ff_library.version` holds once this source is installed. */
  readonly version: string
}

/** Builds the library from the given file contents (exported for tests). */
export const assemble = (files: ReadonlyArray<string>): Library => {
  const source = files.map((f) => (f.endsWith("\n") ? f : `${f}\n`)).join("")
  const hash = createHash("sha1").update(source).digest("hex")
  const declared = /^-- library version: (\S+)$/m.exec(source)?.[1] ?? "0"
  return { source, version: `${declared}+${hash}` }
}

/** The library's files, read from next to this module (`src/` under tsx, `dist/` once built). */
export const readLibraryFiles = (): ReadonlyArray<string> =>
  SQL_FILES.map((file) => readFileSync(new URL(`../sql/${file}`, import.meta.url), "utf8"))

/** Reads the `.sql` files shipped with the package. */
export const loadLibrary: Effect.Effect<Library, Transport> = Effect.try({
  try: () => assemble(readLibraryFiles()),
  catch: (cause) =>
    new Transport({
      backend: "postgres",
      kind: "other",
      retryable: false,
      message: `cannot read the flowfabric SQL function library: ${cause instanceof Error ? cause.message : String(cause)}`,
      cause
    })
})

/**
 * Creates the version table when missing. Not a migration, like the migrator's ledger: a schema
 * migrated through the first layout's migrations 1–20 skips the baseline and needs it too.
 */
export const ensureLibraryTable = (schema: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.asVoid(sql.unsafe(
      `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${LIBRARY_TABLE} (` +
        "singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton), version text NOT NULL, " +
        "installed_at timestamptz NOT NULL DEFAULT now())"
    )))

/** The installed library version (`undefined` when none is recorded or the schema has no version table). */
export const installedVersion = (
  schema: string
): Effect.Effect<string | undefined, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const exists = yield* sql.unsafe<{ readonly t: string | null }>(
      "SELECT to_regclass($1)::text AS t",
      [`${quoteIdent(schema)}.${LIBRARY_TABLE}`]
    )
    if (exists[0]?.t === null || exists[0]?.t === undefined) return undefined
    const rows = yield* sql.unsafe<{ readonly version: string }>(
      `SELECT version FROM ${quoteIdent(schema)}.${LIBRARY_TABLE}`
    )
    return rows[0]?.version
  })

/**
 * The library's functions in `schema`: every `ff_*` / `ffi_*` function no table, constraint,
 * index or trigger depends on (those are part of the migrations).
 */
const libraryFunctions = (schema: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly signature: string }>(
      `SELECT format('%I.%I(%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid)) AS signature
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = $1 AND p.proname ~ '^ffi?_'
         AND NOT EXISTS (SELECT 1 FROM pg_depend d
                         WHERE d.refclassid = 'pg_proc'::regclass AND d.refobjid = p.oid
                           AND d.classid <> 'pg_proc'::regclass)
       ORDER BY 1`,
      [schema]
    ))

/**
 * Installs `library` in `schema` unless that version is installed already. Runs inside the
 * migration transaction (advisory lock held, `search_path` set to the schema, the version table
 * present). Returns whether it installed.
 */
export const installLibrary = (
  schema: string,
  library: Library
): Effect.Effect<boolean, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    if ((yield* installedVersion(schema)) === library.version) return false
    const existing = yield* libraryFunctions(schema)
    if (existing.length > 0) yield* sql.unsafe(`DROP ROUTINE ${existing.map((r) => r.signature).join(", ")}`)
    yield* sql.unsafe(library.source)
    yield* sql.unsafe(
      `INSERT INTO ${quoteIdent(schema)}.${LIBRARY_TABLE} (singleton, version) VALUES (true, $1) ` +
        "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version, installed_at = now()",
      [library.version]
    )
    yield* Effect.logDebug(`installed the function library ${library.version} in schema ${schema}`)
    return true
  })
