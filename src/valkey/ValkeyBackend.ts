/**
 * The Valkey engine backend (docs/design/valkey.md): hash-tagged partitions `{fp:N}` /
 * `{b:M}` / `{q:K}`, one Lua function per operation in one function library
 * (`#!lua name=flowfabric`, loaded on every primary), so that every state
 * transition is exactly one FCALL on one cluster slot. The same layer runs on
 * a standalone server and on a Valkey Cluster.
 *
 * ```ts
 * import { ValkeyBackend } from "flowfabric-effect/valkey"
 *
 * const live = ValkeyBackend.layer({ url: "redis://127.0.0.1:6379", hmacSecret: { kid: "k1", secretHex: Redacted.make(hex) } })
 * const cluster = ValkeyBackend.layer({ nodes: [{ host: "10.0.0.1", port: 7000 }] })
 * ```
 *
 * Choices of this backend (documented deviations and decisions):
 * - Keys: `<keyPrefix>:{fp:N}:e:<executionId>` and friends; every FCALL takes
 *   the partition base as its one key and builds the others from it.
 * - Claims walk a per-lane claim hint instead of scanning all partitions, in
 *   the memory engine's global order (the walk: lua/claim.lua, "the claim hints
 *   and the claim-hint walk").
 * - `createExecutions` sends each partition's items to `ff_create_many` in
 *   chunks (each item created exactly as `ff_create` does, in order), all
 *   chunks at once.
 * - The waitpoint HMAC keystore is replicated on every flow partition (a
 *   rotation reports one entry per partition).
 * - Time: `clock: "store"` (default) reads Valkey `TIME` inside each function;
 *   `clock: "effect"` passes Effect's `Clock` time with every FCALL.
 *
 * @since 0.1.0
 */
import type { ClusterOptions, RedisOptions } from "iovalkey"
import { Config, type ConfigError, Context, Effect, Layer, Redacted, type Scope } from "effect"
import { EngineBackend, type HmacSecret } from "../EngineBackend.js"
import { type EngineError, invalidInput } from "../EngineError.js"
import { defaultPartitionConfig, type PartitionConfig } from "../Ids.js"
import { makeEngineBackend, makeMaintenanceService } from "../internal/boundary.js"
import { missingSecret, seedAtStart } from "../internal/hmacSecret.js"
import { type EventHub, type Hub, makeEventHub, makeHub } from "../internal/wakeups.js"
import { Maintenance } from "../Maintenance.js"
import { connect, type EvictionCheck, type LibraryPolicy } from "./internal/client.js"
import { makeCoreContext } from "./internal/context.js"
import { makeCore, makeCoreWakeClaims } from "./internal/core.js"
import { makeEventTransport } from "./internal/events.js"
import { loadLibrary } from "./internal/library.js"
import { makeMaintenance } from "./internal/maintenance.js"
import { makeStreamOps } from "./internal/streams.js"
import { makeSubscriber } from "./internal/wakeups.js"
import { layerError, makePlumbing, type Settings } from "./internal/plumbing.js"

/**
 * @since 0.1.0
 * @category models
 */
export interface ValkeyBackendOptions {
  /**
   * `redis://[user:pass@]host:port[/db]` of a standalone server (default `redis://127.0.0.1:6379`);
   * `Redacted` when it holds a password.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** Startup nodes of a Valkey Cluster; when given, `url` is ignored. */
  readonly nodes?: ReadonlyArray<string | { readonly host: string; readonly port: number }> | undefined
  /** Prefix of every key (default `"ff"`); no braces. Keeps deployments, and test runs, apart. */
  readonly keyPrefix?: string | undefined
  /** Partition counts of the deployment; fixed once stored (default 256 / 32 / 32). */
  readonly partitions?: Partial<PartitionConfig> | undefined
  /**
   * The waitpoint HMAC secret, seeded at start on every partition; a keystore that already has a
   * current kid keeps it. Needed at the first start of a deployment (its key prefix): a layer that
   * finds no secret stored and is given none fails (docs/guide.md "Signals and the HMAC secret").
   * `"none"` starts without one and without that check: creating a waitpoint then fails until
   * the keystore is seeded (`seedWaitpointHmacSecret`).
   */
  readonly hmacSecret?: HmacSecret | "none" | undefined
  /**
   * When to load the function library at start: `"replace-if-different"`
   * (default: when a primary has another version or none), `"always"`, or
   * `"never"` (an operator loads it; a missing or different library fails the layer).
   */
  readonly library?: LibraryPolicy | undefined
  /**
   * Whose clock decides leases, delays and timeouts: `"store"` (default:
   * Valkey `TIME` inside each function) or `"effect"` (Effect's `Clock`,
   * passed with every FCALL, so tests drive time with `TestClock`).
   */
  readonly clock?: "store" | "effect" | undefined
  /** Lanes registered at start (`listLanes`); lanes are also registered when first used. */
  readonly lanes?: ReadonlyArray<string> | undefined
  /** Extra iovalkey options (standalone, or each cluster node). */
  readonly redisOptions?: RedisOptions | undefined
  /** Extra iovalkey cluster options. */
  readonly clusterOptions?: ClusterOptions | undefined
  /** Per-command timeout in ms (none by default). */
  readonly commandTimeoutMs?: number | undefined
  /** Flows owing at most this many member cancels are cancelled inside `cancelFlow`'s own FCALL (default 100). */
  readonly cancelInlineLimit?: number | undefined
  /** Claim candidates examined per partition for capability matching (default 32). */
  readonly claimScan?: number | undefined
  /** Parallel FCALLs of a fan-out over partitions (default 32). */
  readonly fanOut?: number | undefined
  /** Concurrent `readStream` / `tailStream` calls (default 64). */
  readonly streamOpsMax?: number | undefined
  /**
   * What the start does when a primary's `maxmemory-policy` is not
   * `noeviction` (a policy that evicts keys loses engine state without an
   * error, docs/backends.md): `"refuse"` (default) fails the layer,
   * `"warn"` logs a warning and starts.
   */
  readonly evictionCheck?: EvictionCheck | undefined
}

/**
 * What `make` returns: the service values, not yet in a context.
 *
 * @since 0.1.0
 * @category models
 */
export interface ValkeyBackend {
  readonly backend: EngineBackend.Service
  readonly maintenance: Maintenance.Service
}

const parseNode = (n: string | { readonly host: string; readonly port: number }) => {
  if (typeof n !== "string") return { host: n.host, port: n.port }
  const s = n.replace(/^(redis|valkey)s?:\/\//, "").replace(/\/.*$/, "")
  const i = s.lastIndexOf(":")
  return i > 0 ? { host: s.slice(0, i), port: Number(s.slice(i + 1)) } : { host: s, port: 6379 }
}

/**
 * Connects, checks the server version (Valkey ≥ 7.2) and the
 * `maxmemory-policy` of every primary, checks or records the partition counts, loads the function library on every primary, seeds the
 * HMAC keystore and the lane registry, and builds both services. The
 * connection is closed with the scope.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = (
  options: ValkeyBackendOptions = {}
): Effect.Effect<ValkeyBackend, EngineError | ConfigError.ConfigError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options.keyPrefix ?? "ff"
    if (prefix === "" || /[{}]/.test(prefix)) {
      return yield* invalidInput(`keyPrefix must be non-empty and contain no braces: ${JSON.stringify(prefix)}`)
    }
    const partitions: PartitionConfig = { ...defaultPartitionConfig, ...options.partitions }
    for (const [name, n] of Object.entries(partitions)) {
      if (!Number.isInteger(n) || n < 1 || n > 65_536) return yield* invalidInput(`${name} must be in 1..65536, got ${n}`)
    }
    const library = yield* loadLibrary
    const client = yield* connect({
      url: Redacted.isRedacted(options.url) ? Redacted.value(options.url) : options.url,
      nodes: options.nodes?.map(parseNode),
      redisOptions: options.redisOptions,
      clusterOptions: options.clusterOptions,
      commandTimeoutMs: options.commandTimeoutMs,
      dedicatedMax: Math.min(options.streamOpsMax ?? 64, 16),
      evictionCheck: options.evictionCheck
    }, library)

    // partition counts are fixed per deployment (docs/design/valkey.md#partitions-and-slots)
    const configKey = `${prefix}:config`
    const stored = yield* client.run("partition config", async (c) => {
      await c.hsetnx(configKey, "num_flow_partitions", String(partitions.numFlowPartitions))
      await c.hsetnx(configKey, "num_budget_partitions", String(partitions.numBudgetPartitions))
      await c.hsetnx(configKey, "num_quota_partitions", String(partitions.numQuotaPartitions))
      return c.hgetall(configKey)
    })
    const mismatch = (["numFlowPartitions", "numBudgetPartitions", "numQuotaPartitions"] as const).find((k) => {
      const field = k === "numFlowPartitions" ?
        "num_flow_partitions" :
        k === "numBudgetPartitions" ?
        "num_budget_partitions" :
        "num_quota_partitions"
      return stored[field] !== String(partitions[k])
    })
    if (mismatch !== undefined) {
      return yield* layerError(
        `partition_mismatch: ${configKey} stores ${JSON.stringify(stored)}, this layer is configured with ${
          JSON.stringify(partitions)
        }`
      )
    }

    yield* client.ensureLibrary(options.library ?? "replace-if-different")

    const settings: Settings = {
      prefix,
      partitions,
      clock: options.clock ?? "store",
      cancelInlineLimit: options.cancelInlineLimit ?? 100,
      claimScan: options.claimScan ?? 32,
      fanOut: options.fanOut ?? 32
    }
    const plumbing = makePlumbing(client, settings)
    const streamOps = yield* makeStreamOps(options.streamOpsMax ?? 64)
    const scope = yield* Effect.scope
    // (set once the core is made: a wake-up's claim for a waiting worker, see makeWakeClaims)
    let wakeClaims: ((lane: string) => void) | undefined
    const subscriber = makeSubscriber(client, plumbing.keys, () => hub, scope, () => eventHub, () => wakeClaims)
    const hub: Hub = makeHub(subscriber)
    const eventHub: EventHub = makeEventHub(
      makeEventTransport(makeCoreContext(plumbing), {
        listen: subscriber.listenChannel,
        unlisten: subscriber.unlistenChannel
      }, scope, () => eventHub.scopes())
    )
    const core = makeCore(plumbing, streamOps, library, hub, eventHub)
    wakeClaims = makeCoreWakeClaims(plumbing, hub)
    const backend = makeEngineBackend(core)

    if (options.hmacSecret !== undefined && options.hmacSecret !== "none") {
      yield* seedAtStart(backend, options.hmacSecret)
    } else if (options.hmacSecret === undefined) {
      const kids = yield* Effect.forEach(
        Array.from({ length: partitions.numFlowPartitions }, (_, p) => `${plumbing.keys.flow(p)}:hmac`),
        (key) => client.run("HGET hmac current_kid", (c) => c.hget(key, "current_kid")),
        { concurrency: settings.fanOut }
      )
      const missing = kids.filter((kid) => kid === null || kid === "").length
      if (missing > 0) {
        return yield* Effect.fail(missingSecret(
          "valkey",
          missing === kids.length ?
            `the keystore of key prefix "${prefix}"` :
            `${missing} of the ${kids.length} partitions of key prefix "${prefix}" (seed the stored kid again to repair them)`
        ))
      }
    }
    for (const lane of options.lanes ?? []) yield* plumbing.registerLane(lane)

    return { backend, maintenance: makeMaintenanceService(makeMaintenance(plumbing)) }
  })

/**
 * `EngineBackend` and `Maintenance` over one Valkey connection.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (
  options: ValkeyBackendOptions = {}
): Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError> =>
  Layer.scopedContext(
    Effect.map(make(options), ({ backend, maintenance }) =>
      Context.add(Context.make(EngineBackend, backend), Maintenance, maintenance))
  )

/**
 * The options `layerConfig` reads: those of `layer` but the iovalkey ones, cluster nodes as
 * `host:port` strings.
 *
 * @since 0.1.0
 * @category models
 */
export interface ValkeyBackendConfig
  extends Omit<ValkeyBackendOptions, "nodes" | "redisOptions" | "clusterOptions" | "hmacSecret">
{
  readonly nodes?: ReadonlyArray<string> | undefined
  readonly hmacSecret?: HmacSecret | undefined
}

/**
 * `layer` with its options read from `Config` (a `Config` per option, or one for them all), in the
 * style of `PgClient.layerConfig`; secrets as `Redacted`:
 *
 * ```ts
 * ValkeyBackend.layerConfig({
 *   url: Config.redacted("VALKEY_URL"),
 *   keyPrefix: Config.string("FLOWFABRIC_KEY_PREFIX").pipe(Config.withDefault("ff")),
 *   hmacSecret: { kid: Config.string("FLOWFABRIC_HMAC_KID"), secretHex: Config.redacted("FLOWFABRIC_HMAC_SECRET") }
 * })
 * ```
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<ValkeyBackendConfig>
): Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), (options) => layer(options)))
