/**
 * The PostgreSQL engine backend: one server-side function
 * call — one statement, one READ COMMITTED transaction — per operation, a
 * claim read from partial indexes of the executions table and locked with
 * `FOR UPDATE SKIP LOCKED`, one timer table
 * for every time-driven transition, dependency resolution inside the
 * upstream's terminal transaction, and a `NOTIFY` only while a worker waits
 * for work (the wake-ups, on a `LISTEN` connection of its own).
 *
 * @since 0.1.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import { Config, type ConfigError, Context, Effect, Layer, Option, Redacted } from "effect"
import { EngineBackend, type HmacSecret } from "../EngineBackend.js"
import { type EngineError, invalidInput, Transport, Unavailable } from "../EngineError.js"
import { defaultPartitionConfig, type PartitionConfig } from "../Ids.js"
import { Maintenance } from "../Maintenance.js"
import type * as M from "../Model.js"
import { makeEngineBackend, makeMaintenanceService } from "../internal/boundary.js"
import { missingSecret, seedAtStart } from "../internal/hmacSecret.js"
import { quote } from "../internal/quote.js"
import { type ClockMode, makeCaller, quoteIdent } from "./internal/client.js"
import { makeCore, makeCoreWakeClaims } from "./internal/core.js"
import { makeDirect } from "./internal/direct.js"
import { Pg, PgClient, SqlClient } from "./internal/driver.js"
import { makeMaintenance } from "./internal/maintenance.js"
import { makeListener } from "./internal/wakeups.js"
import { clientConfigOf, makeWarmedPool } from "./internal/pool.js"
import { type EventHub, type Hub, makeEventHub, makeHub } from "../internal/wakeups.js"
import { makeEventTransport } from "./internal/events.js"
import { BACKEND, fromSqlError } from "./internal/errors.js"
import { installedVersion, loadLibrary } from "./internal/library.js"
import { appliedVersion, LATEST_MIGRATION, migrate } from "./migrations/index.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface PostgresBackendOptions {
  /**
   * The schema every table and function lives in (default `"flowfabric"`):
   * 1 to 63 lower-case letters, digits or underscores, not starting with a
   * digit (anything else fails the layer with `Validation` before it connects).
   * Keeps deployments, and parallel test runs, apart.
   */
  readonly schema?: string | undefined
  /**
   * Apply pending migrations and install the function library when the layer starts (default
   * `true`). With `false` the layer only checks both and refuses to start when either is not
   * current.
   */
  readonly migrate?: boolean | undefined
  /** Partition counts of the deployment; fixed once stored. */
  readonly partitions?: Partial<PartitionConfig> | undefined
  /**
   * The waitpoint HMAC secret, seeded at start; a keystore that already has a current kid keeps it.
   * Needed at the first start of a deployment (its schema): a layer that finds no secret stored and
   * is given none fails (docs/guide.md "Signals and the HMAC secret"). `"none"` starts without one
   * and without that check: creating a waitpoint then fails until the keystore is seeded
   * (`seedWaitpointHmacSecret`).
   */
  readonly hmacSecret?: HmacSecret | "none" | undefined
  /**
   * Whose clock decides leases, delays and timeouts: `"store"` (the default,
   * production: the database's `clock_timestamp()`) or `"effect"` (Effect's
   * `Clock`, passed with every call, so tests drive time with `TestClock`).
   */
  readonly clock?: ClockMode | undefined
  /** The pool size, reported by `ResourceExhausted` (default 10). */
  readonly maxConnections?: number | undefined
  /** Largest owed member set `cancelFlow` cancels in its own transaction (default 1 000). */
  readonly cancelFlowInlineLimit?: number | undefined
  /** Attempts on serialization failures and deadlocks (default 5). */
  readonly conflictAttempts?: number | undefined
  /** Real-time interval between polls of a blocking `tailStream` (default 50 ms). */
  readonly tailPollMs?: number | undefined
  /**
   * The connection the wake-ups of idle workers LISTEN on: a session of its own, so a direct
   * connection to the server (or a session-mode pooler), never a transaction-mode pooler such as
   * PgBouncer's, which does not deliver notifications. Default: the settings of the `PgClient` in
   * context (the pool `layerPg` makes). `false`: no wake-ups; workers claim on their idle poll.
   * See docs/backends.md.
   */
  readonly listenUrl?: Redacted.Redacted | string | false | undefined
}

/**
 * What `make` returns: the service values, not yet in a context.
 *
 * @since 0.1.0
 * @category models
 */
export interface PostgresBackend {
  readonly backend: EngineBackend.Service
  readonly maintenance: Maintenance.Service
  /** Claims up to `count` executions in one statement (the service's `claim` takes one). */
  readonly claimMany: (args: M.ClaimArgs, count: number) => Effect.Effect<ReadonlyArray<M.Handle>, EngineError>
}

/** Lower case only: an upper-case letter would name another schema wherever the name is not quoted. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/

/** Why `schema` cannot be the deployment's schema, or `undefined`. */
const schemaNameError = (schema: unknown): EngineError | undefined =>
  typeof schema === "string" && SCHEMA_NAME.test(schema) ?
    undefined :
    invalidInput(
      `postgres: schema name ${quote(schema)} must be 1 to 63 lower-case letters, digits or underscores, ` +
        "not starting with a digit"
    )

const messageOf = (u: unknown): string => {
  if (typeof u === "object" && u !== null && "message" in u && typeof u.message === "string") return u.message
  return String(u)
}

/** Failures of the layer's start (connect, migrate, checks) as `EngineError`. */
const startupError = (op: string) => (e: unknown): EngineError => {
  if (typeof e === "object" && e !== null && "_tag" in e) {
    if (e._tag === "SqlError") return fromSqlError(e as SqlError, { op, maxConnections: 0 })
    if (e._tag === "MigrationError") {
      const cause = "cause" in e ? e.cause : undefined
      const detail = cause === undefined ? "" : `: ${messageOf(cause)} ${messageOf((cause as { cause?: unknown }).cause ?? "")}`
      return new Transport({
        backend: BACKEND,
        kind: "other",
        retryable: false,
        message: `${op}: ${messageOf(e)}${detail}`.trim(),
        cause: e
      })
    }
  }
  return new Transport({ backend: BACKEND, kind: "other", retryable: false, message: `${op}: ${messageOf(e)}` })
}

const checkPartitions = (schema: string, partitions: PartitionConfig) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const table = `${quoteIdent(schema)}.partition_config`
    yield* sql.unsafe(
      `INSERT INTO ${table} (singleton, num_flow_partitions, num_budget_partitions, num_quota_partitions) ` +
        "VALUES (true, $1, $2, $3) ON CONFLICT (singleton) DO NOTHING",
      [partitions.numFlowPartitions, partitions.numBudgetPartitions, partitions.numQuotaPartitions]
    )
    const rows = yield* sql.unsafe<{ readonly f: number; readonly b: number; readonly q: number }>(
      `SELECT num_flow_partitions AS f, num_budget_partitions AS b, num_quota_partitions AS q FROM ${table}`
    )
    const stored = rows[0]
    if (
      stored !== undefined &&
      (stored.f !== partitions.numFlowPartitions || stored.b !== partitions.numBudgetPartitions ||
        stored.q !== partitions.numQuotaPartitions)
    ) {
      return yield* new Unavailable({
        op: `partition_config: stored flow/budget/quota = ${stored.f}/${stored.b}/${stored.q}, configured ` +
          `${partitions.numFlowPartitions}/${partitions.numBudgetPartitions}/${partitions.numQuotaPartitions}`
      })
    }
  })

/**
 * The LISTEN connection's settings: `listenUrl`, else `fallback` (the pool `layerPg` made), else
 * those of the `PgClient` in context.
 */
const listenConfigOf = (listenUrl: PostgresBackendOptions["listenUrl"], fallback: Pg.ClientConfig | undefined) =>
  Effect.gen(function*() {
    if (listenUrl === false) return undefined
    if (listenUrl !== undefined) {
      return { connectionString: Redacted.isRedacted(listenUrl) ? Redacted.value(listenUrl) : listenUrl } as Pg.ClientConfig
    }
    if (fallback !== undefined) return fallback
    const pg = yield* Effect.serviceOption(PgClient.PgClient)
    return Option.isNone(pg) ? undefined : clientConfigOf(pg.value.config)
  })

/**
 * Builds the backend over the `SqlClient` in context: applies the
 * migrations and installs the function library (unless `migrate: false`,
 * which instead refuses to start on an older schema or another library),
 * checks the partition counts and seeds the HMAC keystore.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: PostgresBackendOptions = {}
): Effect.Effect<PostgresBackend, EngineError | ConfigError.ConfigError, SqlClient.SqlClient> =>
  makeWith(options, undefined, undefined)

/**
 * `make`, the LISTEN connection's settings defaulting to `listen` (`layerPg`'s, which made the pool),
 * the idle pickup's calls sent at once on `pool` (`layerPg`'s own) when given.
 */
const makeWith = (
  options: PostgresBackendOptions,
  listen: Pg.ClientConfig | undefined,
  pool: Pg.Pool | undefined
): Effect.Effect<PostgresBackend, EngineError | ConfigError.ConfigError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const schema = options.schema ?? "flowfabric"
    const badSchema = schemaNameError(schema)
    if (badSchema !== undefined) return yield* badSchema
    const partitions: PartitionConfig = { ...defaultPartitionConfig, ...options.partitions }
    const library = yield* loadLibrary
    if (options.migrate ?? true) {
      // the migrator dies on a failing migration: report it as a startup error
      yield* migrate(schema, library).pipe(
        Effect.catchAllDefect((defect) => Effect.fail(defect)),
        Effect.mapError(startupError("migrate"))
      )
    } else {
      const version = yield* Effect.mapError(appliedVersion(schema), startupError("schema_version"))
      if (version < LATEST_MIGRATION) {
        return yield* new Unavailable({
          op: `schema_version: schema '${schema}' is at migration ${version}, this code needs ${LATEST_MIGRATION}`
        })
      }
      const installed = yield* Effect.mapError(installedVersion(schema), startupError("function_library"))
      if (installed !== library.version) {
        return yield* new Unavailable({
          op: `function_library: schema '${schema}' has ${
            installed === undefined ? "no function library" : `function library ${installed}`
          }, this code needs ${library.version} (start once with migrate: true)`
        })
      }
    }
    yield* Effect.catchTag(
      checkPartitions(schema, partitions),
      "SqlError",
      (e) => Effect.fail(startupError("partition_config")(e))
    )
    const caller = yield* makeCaller({
      schema,
      clock: options.clock ?? "store",
      maxConnections: options.maxConnections ?? 10,
      conflictAttempts: options.conflictAttempts ?? 5,
      direct: pool === undefined ? undefined : makeDirect(pool)
    })
    const listenConfig = yield* listenConfigOf(options.listenUrl, listen)
    let events: EventHub | undefined
    // (set once the hub is made: a wake-up's claim for a waiting worker, see makeWakeClaims)
    let wakeClaims: ((lane: string, count: () => void) => boolean) | undefined
    const listener = listenConfig === undefined ?
      undefined :
      makeListener(listenConfig, schema, () => hub!, () => events, () => wakeClaims)
    const hub: Hub | undefined = listener === undefined ? undefined : makeHub(listener)
    if (listener !== undefined) events = makeEventHub(makeEventTransport(caller, listener, () => events!))
    const coreOptions = {
      partitions,
      cancelFlowInlineLimit: options.cancelFlowInlineLimit ?? 1000,
      tailPollMs: options.tailPollMs ?? 50,
      hub,
      events,
      clock: options.clock ?? "store"
    }
    const core = makeCore(caller, coreOptions)
    wakeClaims = makeCoreWakeClaims(caller, coreOptions)
    const backend = makeEngineBackend(core)
    if (options.hmacSecret !== undefined && options.hmacSecret !== "none") {
      yield* seedAtStart(backend, options.hmacSecret)
    } else if (options.hmacSecret === undefined) {
      const sql = yield* SqlClient.SqlClient
      const stored = yield* sql.unsafe<{ readonly n: number }>(
        `SELECT count(*)::int AS n FROM ${quoteIdent(schema)}.hmac_kid WHERE is_current`
      ).pipe(Effect.mapError(startupError("hmac_kid")))
      if ((stored[0]?.n ?? 0) === 0) return yield* Effect.fail(missingSecret("postgres", `schema "${schema}"`))
    }
    return { backend, maintenance: makeMaintenanceService(makeMaintenance(caller)), claimMany: core.claimMany }
  })

/**
 * `EngineBackend` and `Maintenance` over the `SqlClient` in context (bring
 * your own `PgClient` layer).
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: PostgresBackendOptions = {}
): Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError, SqlClient.SqlClient> =>
  Layer.effectContext(Effect.map(make(options), contextOf))

const contextOf = ({ backend, maintenance }: PostgresBackend) =>
  Context.make(EngineBackend, backend).pipe(Context.add(Maintenance, maintenance))

/**
 * @since 0.1.0
 * @category models
 */
export interface PostgresPgConfig extends PgClient.PgClientConfig, PostgresBackendOptions {}

/**
 * `layer` with its own `@effect/sql-pg` client.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerPg = (
  config: PostgresPgConfig
): Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError> => {
  const {
    cancelFlowInlineLimit,
    clock,
    conflictAttempts,
    hmacSecret,
    listenUrl,
    migrate: runMigrations,
    partitions,
    schema,
    tailPollMs,
    ...pg
  } = config
  // a bad schema name fails the layer before it connects
  const badSchema = schemaNameError(schema ?? "flowfabric")
  if (badSchema !== undefined) return Layer.fail(badSchema)
  const backendOptions: PostgresBackendOptions = {
    cancelFlowInlineLimit,
    clock,
    conflictAttempts,
    hmacSecret,
    listenUrl,
    migrate: runMigrations,
    partitions,
    schema,
    tailPollMs,
    maxConnections: pg.maxConnections
  }
  // The pool of `pg`, each new connection warmed for the pickup before its first use; the
  // connections opened before the library was installed are warmed once it is.
  return Layer.unwrapScoped(Effect.map(
    Effect.mapError(makeWarmedPool(pg, schema ?? "flowfabric"), startupError("connect")),
    ({ pool, warmIdle }) =>
      Layer.effectContext(Effect.map(Effect.zipLeft(makeWith(backendOptions, clientConfigOf(pg), pool), warmIdle), contextOf)).pipe(
        Layer.provide(Layer.mapError(
          PgClient.layerFromPool({
            acquire: Effect.succeed(pool),
            applicationName: pg.applicationName,
            spanAttributes: pg.spanAttributes,
            transformResultNames: pg.transformResultNames,
            transformQueryNames: pg.transformQueryNames,
            transformJson: pg.transformJson,
            types: pg.types
          }),
          startupError("connect")
        ))
      )
  ))
}

/**
 * The options `layerConfig` reads: those of `layerPg`, the HMAC secret as `{ kid, secretHex }`.
 *
 * @since 0.1.0
 * @category models
 */
export interface PostgresBackendConfig extends Omit<PostgresPgConfig, "hmacSecret"> {
  readonly hmacSecret?: HmacSecret | undefined
}

/**
 * `layerPg` with its options read from `Config` (a `Config` per option, or one for them all), in the
 * style of `PgClient.layerConfig`; secrets as `Redacted`:
 *
 * ```ts
 * PostgresBackend.layerConfig({
 *   url: Config.redacted("DATABASE_URL"),
 *   schema: Config.string("FLOWFABRIC_SCHEMA").pipe(Config.withDefault("flowfabric")),
 *   hmacSecret: { kid: Config.string("FLOWFABRIC_HMAC_KID"), secretHex: Config.redacted("FLOWFABRIC_HMAC_SECRET") }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<PostgresBackendConfig>
): Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), (options) => layerPg(options)))
