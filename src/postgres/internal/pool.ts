/**
 * The `pg` pool `layerPg` makes: @effect/sql-pg's own pool settings, and every new connection
 * warmed for an idle pickup before its first use (`ff_warm_up`). A session compiles each PL/pgSQL
 * function and plans each of its statements at their first call: on a new connection the first
 * create that claims for an idle worker cost about 10 ms of server time against 1.2 warm, and a
 * pool opens connections whenever statements overlap (the reconciler's passes) and closes them
 * after `idleTimeout` (docs/design/postgres.md, "Connections").
 */
import type { SqlError as SqlErrorType } from "@effect/sql/SqlError"
import { Duration, Effect, Redacted, type Scope } from "effect"
import { quoteIdent } from "./client.js"
import { Pg, type PgClient, SqlError } from "./driver.js"

/** A client's settings from a `PgClientConfig` (the LISTEN connection's, and each pooled one's). */
export const clientConfigOf = (c: PgClient.PgClientConfig): Pg.ClientConfig => ({
  ...(c.url === undefined ? {} : { connectionString: Redacted.value(c.url) }),
  ...(c.host === undefined ? {} : { host: c.host }),
  ...(c.port === undefined ? {} : { port: c.port }),
  ...(c.database === undefined ? {} : { database: c.database }),
  ...(c.username === undefined ? {} : { user: c.username }),
  ...(c.password === undefined ? {} : { password: Redacted.value(c.password) }),
  ...(c.ssl === undefined ? {} : { ssl: c.ssl }),
  ...(c.stream === undefined ? {} : { stream: c.stream }),
  ...(c.connectTimeout === undefined ? {} : { connectionTimeoutMillis: Duration.toMillis(c.connectTimeout) })
})

/**
 * What warms a connection: the library's `ff_warm_up` (rolled back as it ends). The functions stay
 * compiled, the catalog caches filled and the statements it ran planned. Those plans are kept,
 * though made on the tables as they were then (a pool opens its connections at a process's start,
 * on a new deployment's empty tables): the statements of the pickup's path cannot read a table
 * whole or look an execution up by another index than its key, whatever the table held when they
 * were planned (docs/design/postgres.md, "Connections"; `test/postgres-warm-up.test.ts`).
 */
export const warmUpText = (schema: string): string => `SELECT ${quoteIdent(schema)}.ff_warm_up(NULL) AS r`

/**
 * Whether the schema's library has `ff_warm_up`, asked without an error: before the install, a
 * call of it fails, and the server logs that failure as an ERROR (once per connection opened then).
 */
const hasWarmUpText = "SELECT to_regprocedure($1) IS NOT NULL AS ok"

export interface WarmedPool {
  readonly pool: Pg.Pool
  /** Warms the idle connections opened before the library was installed (their warm-up found no `ff_warm_up`). */
  readonly warmIdle: Effect.Effect<void>
}

/**
 * The pool of `config` (as `PgClient.layer` makes it), each new connection warmed before the pool
 * hands it out; before the library is installed the warm-up is not run (the connection is left as
 * it was), and one that fails leaves it as it was too.
 * The pool is checked with `SELECT 1` and ended with the scope, as `PgClient.layer`'s.
 */
export const makeWarmedPool = (
  config: PgClient.PgClientConfig,
  schema: string
): Effect.Effect<WarmedPool, SqlErrorType, Scope.Scope> =>
  Effect.gen(function*() {
    const text = warmUpText(schema)
    const signature = `${quoteIdent(schema)}.ff_warm_up(bigint)`
    const warmed = new WeakSet<Pg.ClientBase>()
    const warm = (client: Pg.ClientBase): Promise<void> =>
      client.query<{ readonly ok: boolean }>(hasWarmUpText, [signature]).then((found) =>
        found.rows[0]?.ok === true ?
          client.query(text).then((r) => {
            if (r.rows[0]?.r !== undefined) warmed.add(client)
          }) :
          undefined
      ).then(() => undefined, () => undefined)
    const pool = new Pg.Pool({
      ...clientConfigOf(config),
      idleTimeoutMillis: config.idleTimeout === undefined ? undefined : Duration.toMillis(config.idleTimeout),
      max: config.maxConnections,
      min: config.minConnections,
      maxLifetimeSeconds: config.connectionTTL === undefined ? undefined : Duration.toSeconds(config.connectionTTL),
      application_name: config.applicationName ?? "@effect/sql-pg",
      types: config.types,
      onConnect: warm
    })
    pool.on("error", () => {})
    yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => pool.query("SELECT 1"),
        catch: (cause) => new SqlError({ cause, message: "PgClient: Failed to connect" })
      }),
      () => Effect.promise(() => pool.end()).pipe(Effect.interruptible, Effect.timeoutOption(1000))
    ).pipe(Effect.timeoutFail({
      duration: config.connectTimeout ?? Duration.seconds(5),
      onTimeout: () => new SqlError({ cause: new Error("Connection timed out"), message: "PgClient: Connection timed out" })
    }))
    const warmIdle = Effect.promise(async () => {
      // (nothing else uses the pool yet: these are exactly its idle connections)
      const clients = await Promise.all(Array.from({ length: pool.idleCount }, () => pool.connect()))
      await Promise.all(clients.map((c) => (warmed.has(c) ? Promise.resolve() : warm(c)).then(() => c.release())))
    }).pipe(Effect.ignore)
    return { pool, warmIdle }
  })
