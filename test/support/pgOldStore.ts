// A Postgres schema at an earlier migration, filled with rows as the library of that layout left
// them: the fixture of the migration tests (a store written before a migration is read after it).
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect } from "effect"
import { Migrator } from "../../src/postgres/internal/driver.js"
import { LEDGER_TABLE, migrations } from "../../src/postgres/migrations/index.js"

/**
 * Creates `schema` with the migrations numbered up to `upTo`, then runs `fill` in the same
 * transaction, the schema on the search path and the triggers off (no library of that layout is at
 * hand: its triggers, which write events and lane counts through it, would fail).
 */
export const storeAtMigration = <A, E, R>(schema: string, upTo: number, fill: Effect.Effect<A, E, R>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      yield* sql.unsafe(`CREATE SCHEMA "${schema}"`)
      yield* sql.unsafe(`SET LOCAL search_path TO "${schema}"`)
      yield* sql.unsafe(
        `CREATE TABLE "${schema}".${LEDGER_TABLE} (migration_id integer PRIMARY KEY, ` +
          "created_at timestamptz NOT NULL DEFAULT now(), name text NOT NULL)"
      )
      const upToThis = Object.fromEntries(Object.entries(migrations).filter(([k]) => Number(k.slice(0, 4)) <= upTo))
      yield* Migrator.make({})({ loader: Migrator.fromRecord(upToThis), table: `${schema}.${LEDGER_TABLE}` })
      yield* sql.unsafe("SET LOCAL session_replication_role = replica")
      return yield* fill
    })))
