/**
 * Engine factories for the server layers of the differential tests: each run gets an isolated,
 * empty engine on the shared test servers (see test/support/globalSetup.ts).
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { Cluster, Redis } from "iovalkey"
import { PostgresBackend } from "../../src/postgres/index.js"
import { ValkeyBackend } from "../../src/valkey/index.js"
import { parseClusterUrl } from "../support/servers.js"
import { type EngineFactory, HMAC } from "./harness.js"

export interface ServerFactory extends EngineFactory {
  /** Releases what the factory keeps between runs (connections, schemas). */
  readonly dispose: () => Promise<void>
}

const tag = () => `${process.pid}-${Date.now().toString(36)}`

/**
 * Valkey: every run gets its own key prefix (`clock: "effect"`, HMAC seeded) and its keys are
 * deleted when the run ends.
 */
export const valkeyFactory = (url: string): ServerFactory => {
  const admin = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  const base = `diff-${tag()}`
  let runs = 0
  const dropPrefix = (prefix: string) =>
    Effect.promise(async () => {
      let cursor = "0"
      do {
        const [next, keys] = await admin.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
        cursor = next
        if (keys.length > 0) await admin.unlink(...keys)
      } while (cursor !== "0")
    })
  return {
    name: "valkey",
    make: Effect.gen(function*() {
      const keyPrefix = `${base}-${runs++}`
      yield* Effect.addFinalizer(() => dropPrefix(keyPrefix))
      return yield* ValkeyBackend.make({ url, keyPrefix, clock: "effect", hmacSecret: HMAC })
    }),
    dispose: async () => {
      await admin.quit()
    }
  }
}

/**
 * Valkey Cluster (`host:port,host:port,…`, see `parseClusterUrl`): as `valkeyFactory`, with a
 * backend of its own per run on the cluster's startup nodes — so the cluster-only code paths run
 * (claims per partition, completions without the no-cluster functions, lane reads per node). The
 * run's keys are deleted on every primary (one key per UNLINK: a cluster refuses cross-slot
 * multi-key commands).
 */
export const valkeyClusterFactory = (url: string): ServerFactory => {
  const nodes = parseClusterUrl(url)
  const admin = new Cluster(nodes, { lazyConnect: true, redisOptions: { maxRetriesPerRequest: 1 } })
  const base = `diffc-${tag()}`
  let runs = 0
  const dropPrefix = (prefix: string) =>
    Effect.promise(async () => {
      if (admin.status !== "ready") await admin.connect()
      for (const node of admin.nodes("master")) {
        let cursor = "0"
        do {
          const [next, keys] = await node.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
          cursor = next
          if (keys.length > 0) {
            const batch = node.pipeline()
            for (const key of keys) batch.unlink(key)
            await batch.exec()
          }
        } while (cursor !== "0")
      }
    })
  return {
    name: "valkey-cluster",
    make: Effect.gen(function*() {
      const keyPrefix = `${base}-${runs++}`
      yield* Effect.addFinalizer(() => dropPrefix(keyPrefix))
      return yield* ValkeyBackend.make({ nodes, keyPrefix, clock: "effect", hmacSecret: HMAC })
    }),
    dispose: async () => {
      if (admin.status === "ready") await admin.quit()
      else admin.disconnect()
    }
  }
}

/** Tables a reset keeps: the migration ledger, the installed function library and the fixed partition counts. */
const KEEP = new Set(["ff_migrations", "ff_library", "partition_config"])

/**
 * Postgres: every run gets an empty schema of its own — a small pool of migrated schemas,
 * truncated between runs (a fresh schema costs a migration, ~150–1000 ms) — and a new backend
 * instance (`clock: "effect"`, HMAC seeded). `dispose` drops the schemas.
 */
export const postgresFactory = (url: string): ServerFactory => {
  const pool = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }))
  const base = `ff_diff_${tag().replace(/-/g, "_")}`
  const idle: Array<string> = []
  const created: Array<string> = []
  const reset = (sql: SqlClient.SqlClient, schema: string) =>
    Effect.gen(function*() {
      const rows = yield* sql<{ readonly tablename: string }>`SELECT tablename FROM pg_tables WHERE schemaname = ${schema}`
      const tables = rows.map((r) => r.tablename).filter((t) => !KEEP.has(t))
      if (tables.length > 0) {
        yield* sql.unsafe(`TRUNCATE ${tables.map((t) => `"${schema}"."${t}"`).join(", ")} RESTART IDENTITY CASCADE`)
      }
    })
  return {
    name: "postgres",
    make: Effect.gen(function*() {
      const sql = yield* Effect.promise(() => pool.runPromise(SqlClient.SqlClient))
      let schema = idle.pop()
      if (schema === undefined) {
        schema = `${base}_${created.length}`
        created.push(schema)
      } else {
        yield* Effect.orDie(reset(sql, schema))
      }
      const taken = schema
      yield* Effect.addFinalizer(() => Effect.sync(() => idle.push(taken)))
      const pg = yield* PostgresBackend.make({ schema, clock: "effect", hmacSecret: HMAC }).pipe(
        Effect.provideService(SqlClient.SqlClient, sql)
      )
      return { backend: pg.backend, maintenance: pg.maintenance }
    }),
    dispose: async () => {
      await pool.runPromise(
        Effect.flatMap(SqlClient.SqlClient, (sql) =>
          Effect.forEach(created, (s) => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`))))
      )
      await pool.dispose()
    }
  }
}
