/**
 * The schema's migrations (tables, indexes, constraints, storage settings: DDL only) and the
 * start-up step that applies them and installs the function library: one transaction holding
 * an advisory lock per schema, so several processes starting at once do the work exactly once.
 *
 * Migration ids: 0020 is the baseline (the whole schema); a change of the tables is a new
 * migration 0021 onwards. The functions are not migrations: they are the library of
 * `src/postgres/sql/` (see `../internal/library.ts`).
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Effect } from "effect"
import { Migrator, SqlClient } from "../internal/driver.js"
import { quoteIdent } from "../internal/client.js"
import { ensureLibraryTable, installLibrary, type Library } from "../internal/library.js"
import * as m0020 from "./0020_baseline.js"
import * as m0021 from "./0021_signal_id_unique.js"
import * as m0022 from "./0022_stream_budgets.js"
import * as m0023 from "./0023_history.js"
import * as m0024 from "./0024_flow_sealed.js"
import * as m0025 from "./0025_wakeups.js"
import * as m0026 from "./0026_timer_key.js"
import * as m0027 from "./0027_ready_kind.js"
import * as m0028 from "./0028_lane_queries.js"
import * as m0029 from "./0029_events.js"
import * as m0030 from "./0030_no_partition_index.js"
import * as m0031 from "./0031_run_kind.js"
import * as m0032 from "./0032_lane_count_per_statement.js"
import * as m0033 from "./0033_caps_null.js"
import * as m0034 from "./0034_queue_fillfactor.js"
import * as m0035 from "./0035_event_by_execution_hash.js"
import * as m0036 from "./0036_events_per_statement.js"
import * as m0037 from "./0037_event_kind_code.js"
import * as m0038 from "./0038_timer_batches.js"
import * as m0039 from "./0039_own_rows.js"
import * as m0040 from "./0040_event_no_id_index.js"
import * as m0041 from "./0041_hash_id_keys.js"
import * as m0042 from "./0042_exec_core_column_order.js"
import * as m0043 from "./0043_edge_group_by_flow.js"
import * as m0044 from "./0044_state_codes.js"
import * as m0045 from "./0045_event_execution_uuid.js"
import * as m0046 from "./0046_claimable_index.js"
import * as m0047 from "./0047_exec_core_uuid.js"
import * as m0048 from "./0048_lane_index_uuid_bytes.js"
import * as m0049 from "./0049_exec_core_row_check.js"
import * as m0050 from "./0050_inline_input.js"
import * as m0051 from "./0051_narrow_waiting_row.js"
import * as m0052 from "./0052_plan_indexes.js"
import * as m0053 from "./0053_event_k_and_index.js"
import * as m0054 from "./0054_lane_index_dedup.js"
import * as m0055 from "./0055_created_event_state.js"
import * as m0056 from "./0056_exec_core_check_constants.js"
import * as m0057 from "./0057_one_claim_index.js"
import * as m0058 from "./0058_created_event_derived.js"

/** The migration ledger table, inside the deployment's schema. */
export const LEDGER_TABLE = "ff_migrations"

const run = (text: string): Effect.Effect<void, SqlError, SqlClient.SqlClient> =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => Effect.asVoid(sql.unsafe(text)))

/** Every migration, by `<id>_<name>` (the `Migrator.fromRecord` layout). */
export const migrations: Record<string, Effect.Effect<void, SqlError, SqlClient.SqlClient>> = {
  "0020_baseline": run(m0020.sql),
  "0021_signal_id_unique": run(m0021.sql),
  "0022_stream_budgets": run(m0022.sql),
  "0023_history": run(m0023.sql),
  "0024_flow_sealed": run(m0024.sql),
  "0025_wakeups": run(m0025.sql),
  "0026_timer_key": run(m0026.sql),
  "0027_ready_kind": run(m0027.sql),
  "0028_lane_queries": run(m0028.sql),
  "0029_events": run(m0029.sql),
  "0030_no_partition_index": run(m0030.sql),
  "0031_run_kind": run(m0031.sql),
  "0032_lane_count_per_statement": run(m0032.sql),
  "0033_caps_null": run(m0033.sql),
  "0034_queue_fillfactor": run(m0034.sql),
  "0035_event_by_execution_hash": run(m0035.sql),
  "0036_events_per_statement": run(m0036.sql),
  "0037_event_kind_code": run(m0037.sql),
  "0038_timer_batches": run(m0038.sql),
  "0039_own_rows": run(m0039.sql),
  "0040_event_no_id_index": run(m0040.sql),
  "0041_hash_id_keys": run(m0041.sql),
  "0042_exec_core_column_order": run(m0042.sql),
  "0043_edge_group_by_flow": run(m0043.sql),
  "0044_state_codes": run(m0044.sql),
  "0045_event_execution_uuid": run(m0045.sql),
  "0046_claimable_index": run(m0046.sql),
  "0047_exec_core_uuid": run(m0047.sql),
  "0048_lane_index_uuid_bytes": run(m0048.sql),
  "0049_exec_core_row_check": run(m0049.sql),
  "0050_inline_input": run(m0050.sql),
  "0051_narrow_waiting_row": run(m0051.sql),
  "0052_plan_indexes": run(m0052.sql),
  "0053_event_k_and_index": run(m0053.sql),
  "0054_lane_index_dedup": run(m0054.sql),
  "0055_created_event_state": run(m0055.sql),
  "0056_exec_core_check_constants": run(m0056.sql),
  "0057_one_claim_index": run(m0057.sql),
  "0058_created_event_derived": run(m0058.sql)
}

/** The id of the newest migration this code needs. */
export const LATEST_MIGRATION = Math.max(...Object.keys(migrations).map((k) => Number(k.slice(0, 4))))

/** What one start-up step did. */
export interface MigrateResult {
  /** The migrations applied now, as `[id, name]`. */
  readonly migrations: ReadonlyArray<readonly [number, string]>
  /** Whether the function library was (re)installed now. */
  readonly libraryInstalled: boolean
}

/**
 * Creates the schema when missing, applies the pending migrations with the schema as
 * `search_path` and installs `library` unless that version is installed already (functions
 * capture the schema with `SET search_path FROM CURRENT`).
 */
export const migrate = (
  schema: string,
  library: Library
): Effect.Effect<MigrateResult, Migrator.MigrationError | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    return yield* sql.withTransaction(Effect.gen(function*() {
      yield* sql`SELECT pg_advisory_xact_lock(hashtext(${`flowfabric:migrate:${schema}`}))`
      yield* sql.unsafe(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`)
      yield* sql.unsafe(`SET LOCAL search_path TO ${quoteIdent(schema)}`)
      // The migrator probes its table with a failing cast otherwise, which
      // would abort this transaction.
      yield* sql.unsafe(
        `CREATE TABLE IF NOT EXISTS ${quoteIdent(schema)}.${LEDGER_TABLE} (` +
          "migration_id integer PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), name text NOT NULL)"
      )
      const applied = yield* Migrator.make({})({
        loader: Migrator.fromRecord(migrations),
        table: `${schema}.${LEDGER_TABLE}`
      })
      yield* ensureLibraryTable(schema)
      const libraryInstalled = yield* installLibrary(schema, library)
      return { migrations: applied, libraryInstalled }
    }))
  })

/** The newest applied migration id (0 when the ledger is missing). */
export const appliedVersion = (schema: string): Effect.Effect<number, SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const exists = yield* sql.unsafe<{ readonly t: string | null }>(
      "SELECT to_regclass($1)::text AS t",
      [`${quoteIdent(schema)}.${LEDGER_TABLE}`]
    )
    if (exists[0]?.t === null || exists[0]?.t === undefined) return 0
    const rows = yield* sql.unsafe<{ readonly v: number | null }>(
      `SELECT max(migration_id) AS v FROM ${quoteIdent(schema)}.${LEDGER_TABLE}`
    )
    return rows[0]?.v ?? 0
  })
