/**
 * The migrations, applied through `@effect/sql`'s migrator inside one
 * transaction that holds an advisory lock per schema, so several processes
 * starting at once apply them exactly once.
 */
import * as Migrator from "@effect/sql/Migrator"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import * as m0001 from "./0001_tables.js"
import * as m0002 from "./0002_lifecycle.js"
import * as m0003 from "./0003_flows.js"
import * as m0004 from "./0004_signals.js"
import * as m0005 from "./0005_streams_budgets.js"
import * as m0006 from "./0006_operator_maintenance.js"
import * as m0007 from "./0007_create_dedup_replay.js"
import * as m0008 from "./0008_hot_path.js"
import * as m0009 from "./0009_batch_claim.js"
import * as m0010 from "./0010_flow_graph.js"
import * as m0011 from "./0011_resolve_edge.js"
import * as m0012 from "./0012_complete_member.js"
import * as m0013 from "./0013_flow_graph_final_rows.js"
import * as m0014 from "./0014_claim_generic_plan.js"
import * as m0015 from "./0015_dependency_reconcile.js"
import * as m0016 from "./0016_retention.js"
import * as m0017 from "./0017_hot_path_retention.js"
import * as m0018 from "./0018_complete_set.js"
import * as m0019 from "./0019_claim_set_lock.js"
import * as m0020 from "./0020_dedup_expiry.js"
import * as m0022 from "./0022_stream_budgets.js"

/** The migration ledger table, inside the deployment's schema. */
export const LEDGER_TABLE = "ff_migrations"

const run = (text: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.asVoid(sql.unsafe(text)))

/** Every migration, by `<id>_<name>` (the `Migrator.fromRecord` layout). */
export const migrations: Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> = {
  "0001_tables": run(m0001.sql),
  "0002_lifecycle": run(m0002.sql),
  "0003_flows": run(m0003.sql),
  "0004_signals": run(m0004.sql),
  "0005_streams_budgets": run(m0005.sql),
  "0006_operator_maintenance": run(m0006.sql),
  "0007_create_dedup_replay": run(m0007.sql),
  "0008_hot_path": run(m0008.sql),
  "0009_batch_claim": run(m0009.sql),
  "0010_flow_graph": run(m0010.sql),
  "0011_resolve_edge": run(m0011.sql),
  "0012_complete_member": run(m0012.sql),
  "0013_flow_graph_final_rows": run(m0013.sql),
  "0014_claim_generic_plan": run(m0014.sql),
  "0015_dependency_reconcile": run(m0015.sql),
  "0016_retention": run(m0016.sql),
  "0017_hot_path_retention": run(m0017.sql),
  "0018_complete_set": run(m0018.sql),
  "0019_claim_set_lock": run(m0019.sql),
  "0020_dedup_expiry": run(m0020.sql),
  "0022_stream_budgets": run(m0022.sql)
}

/** The id of the newest migration this code needs. */
export const LATEST_MIGRATION = Math.max(...Object.keys(migrations).map((k) => Number(k.slice(0, 4))))

const quote = (name: string): string => `"${name.replace(/"/g, "\"\"")}"`

/**
 * Creates the schema when missing and applies the pending migrations with the
 * schema as `search_path` (functions capture it with `SET search_path FROM
 * CURRENT`). Returns the migrations applied now.
 */
export const migrate = (
  schema: string
): Effect.Effect<ReadonlyArray<readonly [number, string]>, Migrator.MigrationError | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`flowfabric:migrate:${schema}`}))`
      yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quote(schema)}`)
      yield* sql.unsafe(`SET LOCAL search_path TO ${quote(schema)}`)
      // The migrator probes its table with a failing cast otherwise, which
      // would abort this transaction.
      yield* sql.unsafe(
        `CREATE TABLE IF NOT EXISTS ${quote(schema)}.${LEDGER_TABLE} (` +
          "migration_id integer PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), name text NOT NULL)"
      )
      return yield* Migrator.make({})({
        loader: Migrator.fromRecord(migrations),
        table: `${schema}.${LEDGER_TABLE}`
      })
    }))
  })

/** The newest applied migration id (0 when the ledger is missing). */
export const appliedVersion = (schema: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const exists = yield* sql.unsafe<{ readonly t: string | null }>(
      "SELECT to_regclass($1)::text AS t",
      [`${quote(schema)}.${LEDGER_TABLE}`]
    )
    if (exists[0]?.t === null || exists[0]?.t === undefined) return 0
    const rows = yield* sql.unsafe<{ readonly v: number | null }>(
      `SELECT max(migration_id) AS v FROM ${quote(schema)}.${LEDGER_TABLE}`
    )
    return rows[0]?.v ?? 0
  })
