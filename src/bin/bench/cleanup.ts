/** Removes what a bench round left on a server, so that later rounds (and runs) start from the same state. */
import { Effect } from "effect"

/** Drops a Postgres schema and everything in it (autovacuum of old rounds' tables would compete for the CPU). */
export const dropSchema = (url: string, schema: string): Effect.Effect<void> =>
  Effect.tryPromise(async () => {
    const { default: pg } = await import("pg")
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    try {
      await client.query(`DROP SCHEMA IF EXISTS "${schema.replaceAll("\"", "\"\"")}" CASCADE`)
    } finally {
      await client.end()
    }
  }).pipe(Effect.catchAll((e) => Effect.logWarning(`bench cleanup: cannot drop schema ${schema}`, e)))

/** Deletes every Valkey key under `prefix` on one server (a standalone one, or one cluster node). */
export const dropKeys = (url: string, prefix: string): Effect.Effect<void> =>
  Effect.tryPromise(async () => {
    const { Redis } = await import("iovalkey")
    const client = new Redis(url)
    try {
      let cursor = "0"
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000)
        // one key per command: on a cluster node the keys of one batch span several slots
        if (keys.length > 0) await keys.reduce((p, key) => p.unlink(key), client.pipeline()).exec()
        cursor = next
      } while (cursor !== "0")
    } finally {
      client.disconnect()
    }
  }).pipe(Effect.catchAll((e) => Effect.logWarning(`bench cleanup: cannot delete keys ${prefix}:*`, e)))
