/**
 * @effect/sql and @effect/sql-pg, optional peer dependencies, loaded when
 * `flowfabric-effect/postgres` is imported (see src/internal/driver.ts). Each export is the module
 * and, as a namespace, the types of it this backend uses.
 */
import type * as MigratorModule from "@effect/sql/Migrator"
import type * as SqlClientModule from "@effect/sql/SqlClient"
import type * as SqlErrorModule from "@effect/sql/SqlError"
import type * as PgClientModule from "@effect/sql-pg/PgClient"
import { createRequire } from "node:module"
import type * as PgModule from "pg"
import { importDriver } from "../../internal/driver.js"

/** `pg`, which @effect/sql-pg brings: imported directly, else from beside @effect/sql-pg (a strict layout). */
const importPg = (): Promise<typeof PgModule> =>
  import("pg").then(
    (m) => (m as unknown as { default?: typeof PgModule }).default ?? m,
    () => createRequire(import.meta.resolve("@effect/sql-pg/PgClient"))("pg") as typeof PgModule
  )

const [sqlClient, migrator, pgClient, pg, sqlError] = await importDriver(
  "flowfabric-effect/postgres",
  [["@effect/sql-pg", "^0.53.0"], ["@effect/sql", "^0.52.1"]],
  () =>
    Promise.all([
      import("@effect/sql/SqlClient"),
      import("@effect/sql/Migrator"),
      import("@effect/sql-pg/PgClient"),
      importPg(),
      import("@effect/sql/SqlError")
    ])
)

export const SqlClient: typeof SqlClientModule = sqlClient
export declare namespace SqlClient {
  export type SqlClient = SqlClientModule.SqlClient
}

/** `SqlError`, the class (the pool `layerPg` makes reports its connection failures as `PgClient.layer`'s). */
export const SqlError: typeof SqlErrorModule.SqlError = sqlError.SqlError

export const Migrator: typeof MigratorModule = migrator
export declare namespace Migrator {
  export type MigrationError = MigratorModule.MigrationError
}

export const PgClient: typeof PgClientModule = pgClient

/** The `pg` driver (the wake-ups' LISTEN connection). */
export const Pg: typeof PgModule = pg
export declare namespace Pg {
  export type Client = PgModule.Client
  export type ClientBase = PgModule.ClientBase
  export type Pool = PgModule.Pool
  export type QueryResult = PgModule.QueryResult
  export type ClientConfig = PgModule.ClientConfig
  export type Notification = PgModule.Notification
}
export declare namespace PgClient {
  export type PgClientConfig = PgClientModule.PgClientConfig
}
