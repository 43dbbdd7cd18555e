/**
 * The connection: an iovalkey `Redis` or `Cluster` acquired in a scope, the
 * version gate, library loading on every primary, and FCALLs that reload the
 * library and retry once when the server lost it.
 */
import { Cluster, type ClusterOptions, Redis, type RedisOptions } from "./driver.js"
import { Clock, Duration, Effect, Option, Pool, type Scope } from "effect"
import { corruption, type EngineError, Transport } from "../../EngineError.js"
import { fromValkeyError, isMissingFunction, safeValkeyCause } from "./errors.js"
import { sendFcall } from "./fcallCommand.js"
import { type Library, LIBRARY_NAME } from "./library.js"

export type Connection = Redis | Cluster

export type LibraryPolicy = "replace-if-different" | "always" | "never"

export interface ConnectOptions {
  /** `redis://host:port[/db]` of a standalone server. */
  readonly url?: string | undefined
  /** Startup nodes of a Valkey Cluster (then `url` is ignored). */
  readonly nodes?: ReadonlyArray<{ readonly host: string; readonly port: number }> | undefined
  readonly redisOptions?: RedisOptions | undefined
  readonly clusterOptions?: ClusterOptions | undefined
  readonly commandTimeoutMs?: number | undefined
  /** Most dedicated connections for blocking reads (default 16). */
  readonly dedicatedMax?: number | undefined
  /** What a primary whose `maxmemory-policy` may evict keys does to the start (default `"refuse"`). */
  readonly evictionCheck?: EvictionCheck | undefined
}

export type EvictionCheck = "refuse" | "warn"

export interface Client {
  readonly connection: Connection
  readonly isCluster: boolean
  /** A plain command (or a few) on the shared connection. */
  readonly run: <A>(op: string, f: (c: Connection) => Promise<A>) => Effect.Effect<A, Transport>
  /**
   * `FCALL` / `FCALL_RO` with `key` (and `more` keys after it, in its slot or on a standalone server);
   * reloads the library and retries once if the function is missing.
   */
  readonly fcall: (
    fn: string,
    key: string,
    args: ReadonlyArray<string | Uint8Array>,
    readOnly: boolean,
    more?: ReadonlyArray<string> | undefined,
    /** Bulk replies as Buffers, not strings (a reply that carries bytes). */
    binary?: boolean | undefined,
    /**
     * Runs once the call is handed to the connection (in the order of its commands), before its
     * reply: what this process sends on the connection from here on runs after the call.
     */
    afterSend?: (() => void) | undefined,
    /**
     * Runs with the reply as it is read, before the caller's fiber resumes with it, whatever
     * becomes of that fiber meanwhile (not for a call that failed); what it throws is ignored.
     */
    onReply?: ((raw: unknown) => void) | undefined
  ) => Effect.Effect<unknown, Transport>
  /**
   * `fcall`'s call made on the caller's stack, without an effect: the reply's promise (the
   * call is on the connection when this returns) and whether the connection was ready to send it
   * (`fcallFailure` turns a rejection into the error `fcall` would fail with). No reload and
   * retry when the function is missing: the caller checks `isMissingFunction` and calls again.
   */
  readonly fcallNow: (
    fn: string,
    key: string,
    args: ReadonlyArray<string | Uint8Array>,
    readOnly: boolean,
    binary: boolean
  ) => { readonly reply: Promise<unknown>; readonly sent: boolean }
  /** Every primary (the client itself when standalone). */
  readonly primaries: Effect.Effect<ReadonlyArray<Redis>, Transport>
  /** Loads the library on every primary per the policy; `true` when something was loaded. */
  readonly ensureLibrary: (policy: LibraryPolicy) => Effect.Effect<boolean, EngineError>
  /** A dedicated connection for a blocking read (pooled; back to the pool when the scope closes). */
  readonly dedicated: Effect.Effect<Connection, Transport, Scope.Scope>
  /** Drops a dedicated connection that may still be blocked (an interrupted read). */
  readonly discard: (c: Connection) => Effect.Effect<void>
}

const baseRedisOptions = (o: ConnectOptions): RedisOptions => ({
  // concurrent commands of one tick go out in one write, except function calls: a batch FCALL
  // runs for milliseconds, and holding the calls of a tick for one write makes the server wait
  // until every fiber of the tick has handled its reply (measured: the server idled a fifth of a
  // claim-and-complete run; the worker runtime did 14-34 % more without it)
  enableAutoPipelining: true,
  autoPipeliningIgnoredCommands: ["fcall", "fcall_ro"],
  // commands fail fast while disconnected instead of queueing for minutes
  maxRetriesPerRequest: 0,
  // a command in flight when the connection dropped may have been applied: never resend it blindly
  autoResendUnfulfilledCommands: false,
  enableOfflineQueue: true,
  ...(o.commandTimeoutMs === undefined ? {} : { commandTimeout: o.commandTimeoutMs }),
  ...o.redisOptions,
  lazyConnect: true
})

const quietly = (c: Connection): Effect.Effect<void> =>
  Effect.promise(() =>
    c.quit().then(
      () => undefined,
      () => {
        c.disconnect()
      }
    )
  )

const open = (o: ConnectOptions): Effect.Effect<Connection, Transport, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.suspend(() => {
      const connection: Connection = o.nodes !== undefined && o.nodes.length > 0 ?
        new Cluster(o.nodes.map((n) => ({ host: n.host, port: n.port })), {
          enableOfflineQueue: true,
          // The client does not send a command again after a CLUSTERDOWN, TRYAGAIN or closed
          // connection: those retries go to any node, so the error that finally surfaced would no
          // longer tell whether the command could have run. The engine reports each as it is, a
          // retryable Transport error unless a write may have run (docs/errors.md), and the caller
          // retries with its own schedule. MOVED and ASK are still followed.
          retryDelayOnTryAgain: 0,
          retryDelayOnClusterDown: 0,
          retryDelayOnFailover: 0,
          ...o.clusterOptions,
          lazyConnect: true,
          redisOptions: { ...baseRedisOptions(o), ...o.clusterOptions?.redisOptions }
        }) :
        new Redis(o.url ?? "redis://127.0.0.1:6379", baseRedisOptions(o))
      // iovalkey emits "error" on every failed reconnect; commands report their own failures
      connection.on("error", () => undefined)
      return Effect.tryPromise({
        try: () => connection.connect(),
        catch: (e) => fromValkeyError("connect", e, false)
      }).pipe(
        Effect.as(connection),
        Effect.tapError(() => Effect.sync(() => connection.disconnect()))
      )
    }),
    quietly
  )

/** The error `Client.fcall` fails with when the call of `fn` failed with `error` (`sent`: see `fcallNow`). */
export const fcallFailure = (fn: string, error: unknown, sent: boolean, readOnly: boolean): Transport =>
  // only a write sent before the connection dropped is ambiguous (docs/design/errors.md#valkey-failures)
  fromValkeyError(`FCALL ${fn}`, error, sent && !readOnly)

/** `valkey_version` (Valkey 8+) or `redis_version` of `INFO server`. */
export const serverVersion = (info: string): string | undefined =>
  /^valkey_version:(\S+)/m.exec(info)?.[1] ?? /^redis_version:(\S+)/m.exec(info)?.[1]

// CRC16-XMODEM, the hash of Valkey Cluster's key slots
const CRC16 = Array.from({ length: 256 }, (_, n) => {
  let crc = n << 8
  for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  return crc
})

/** The cluster slot of `key` (its `{hash tag}` when it has one). */
export const keySlot = (key: string): number => {
  const open = key.indexOf("{")
  const close = open < 0 ? -1 : key.indexOf("}", open + 1)
  const tag = close > open + 1 ? key.slice(open + 1, close) : key
  let crc = 0
  for (const byte of Buffer.from(tag)) crc = ((crc << 8) & 0xffff) ^ CRC16[((crc >> 8) ^ byte) & 0xff]!
  return crc & 16383
}

const atLeast = (version: string, major: number, minor: number): boolean => {
  const [ma = 0, mi = 0] = version.split(".").map(Number)
  return ma > major || (ma === major && mi >= minor)
}

export const connect = (
  o: ConnectOptions,
  library: Library
): Effect.Effect<Client, EngineError, Scope.Scope> =>
  Effect.gen(function*() {
    const connection = yield* open(o)
    const isCluster = connection instanceof Cluster

    // Plain commands are reads and idempotent index writes (hints, lanes, freed registry entries): repeating one
    // is always safe, so a lost connection leaves them retryable even after the send.
    const run = <A>(op: string, f: (c: Connection) => Promise<A>): Effect.Effect<A, Transport> =>
      Effect.tryPromise({ try: () => f(connection), catch: (e) => fromValkeyError(op, e, false) })

    const primaries: Effect.Effect<ReadonlyArray<Redis>, Transport> = Effect.suspend(() => {
      if (!(connection instanceof Cluster)) return Effect.succeed([connection])
      const nodes = connection.nodes("master")
      return nodes.length > 0 ?
        Effect.succeed(nodes) :
        Effect.fail(
          new Transport({
            backend: "valkey",
            kind: "cluster",
            retryable: true,
            message: "cluster has no known primary",
            nativeCode: "no_connection_for_route"
          })
        )
    })

    const onNode = <A>(node: Redis, op: string, f: (r: Redis) => Promise<A>): Effect.Effect<A, Transport> =>
      Effect.suspend(() => {
        const sent = node.status === "ready"
        return Effect.tryPromise({ try: () => f(node), catch: (e) => fromValkeyError(op, e, sent) })
      })

    // --- version gate: the minimum over every primary (docs/design/valkey.md#the-function-library) ---
    const nodes = yield* primaries
    for (const node of nodes) {
      const info = yield* onNode(node, "INFO server", (r) => r.info("server"))
      const version = serverVersion(info)
      if (version === undefined || !atLeast(version, 7, 2)) {
        return yield* new Transport({
          backend: "valkey",
          kind: "other",
          retryable: false,
          message: `unsupported server version ${version ?? "(unknown)"}: Valkey >= 7.2 (redis_version >= 7.2) is required`
        })
      }
    }

    // --- durability: a policy that evicts keys loses engine state without an error (docs/backends.md) ---
    for (const node of nodes) {
      const info = yield* onNode(node, "INFO memory", (r) => r.info("memory"))
      const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1]
      if (policy === undefined || policy === "noeviction") continue
      const message = `maxmemory-policy is ${policy} on ${node.options.host ?? "?"}:${node.options.port ?? "?"}: ` +
        "Valkey may evict the engine's keys (executions, leases, idempotency keys) and lose them without an error; " +
        "set maxmemory-policy noeviction (docs/backends.md)"
      if ((o.evictionCheck ?? "refuse") === "refuse") {
        return yield* new Transport({
          backend: "valkey",
          kind: "other",
          retryable: false,
          message: `${message}, or start the layer with evictionCheck: "warn"`,
          nativeCode: "eviction_policy"
        })
      }
      yield* Effect.logWarning(`flowfabric valkey: ${message}`)
    }

    // --- library loading (docs/design/valkey.md#the-function-library) ---
    const versionOn = (node: Redis): Effect.Effect<Option.Option<string>, Transport> =>
      Effect.tryPromise({
        try: () => node.fcall("ff_version", 0),
        catch: (e) => e
      }).pipe(
        Effect.map((v) => (typeof v === "string" ? Option.some(v) : Option.none())),
        Effect.catchAll((e) =>
          isMissingFunction(e) ? Effect.succeed(Option.none<string>()) : Effect.fail(fromValkeyError("FCALL ff_version", e, true))
        )
      )

    const loadOn = (node: Redis): Effect.Effect<void, Transport> =>
      onNode(node, "FUNCTION LOAD", (r) => r.call("FUNCTION", "LOAD", "REPLACE", library.source)).pipe(Effect.asVoid)

    const lock = yield* Effect.makeSemaphore(1)

    const ensureLibrary = (policy: LibraryPolicy): Effect.Effect<boolean, EngineError> =>
      lock.withPermits(1)(
        Effect.gen(function*() {
          const all = yield* primaries
          let loaded = false
          for (const node of all) {
            if (policy === "always") {
              yield* loadOn(node)
              loaded = true
              continue
            }
            const current = yield* versionOn(node)
            if (Option.isSome(current) && current.value === library.version) continue
            if (policy === "never") {
              return yield* new Transport({
                backend: "valkey",
                kind: "script_not_loaded",
                retryable: false,
                message: Option.isNone(current) ?
                  `library ${LIBRARY_NAME} is not loaded and the library policy is "never"` :
                  `library ${LIBRARY_NAME} ${current.value} is loaded, ${library.version} expected (policy "never")`,
                nativeCode: "no_script"
              })
            }
            yield* loadOn(node)
            loaded = true
            const after = yield* versionOn(node)
            if (Option.isNone(after) || after.value !== library.version) {
              return yield* corruption(
                `flowfabric lua library version mismatch after FUNCTION LOAD: expected ${library.version}, got ${
                  Option.getOrElse(after, () => "(none)")
                }`
              )
            }
          }
          return loaded
        })
      )

    const reload: Effect.Effect<void, Transport> = ensureLibrary("replace-if-different").pipe(
      Effect.asVoid,
      Effect.catchAll((e) =>
        e._tag === "Transport" ?
          Effect.fail(e) :
          Effect.fail(
            new Transport({
              backend: "valkey",
              kind: "script_not_loaded",
              retryable: false,
              message: e.message,
              nativeCode: "no_script"
            })
          )
      )
    )

    // Whether a command for `key` goes out at once (its node's connection is ready) or waits for a
    // connection: one that waits and then fails was never sent, so repeating it is safe.
    const slots = new Map<string, number>()
    const writable = (key: string): boolean => {
      if (!(connection instanceof Cluster)) return connection.status === "ready"
      let slot = slots.get(key)
      if (slot === undefined) slots.set(key, slot = keySlot(key))
      const owner = connection.slots[slot]?.[0]
      if (owner === undefined) return false
      const node = connection.nodes("all").find((n) => `${n.options.host}:${n.options.port}` === owner)
      return node?.status === "ready"
    }

    const fcallNow: Client["fcallNow"] = (fn, key, args, readOnly, binary) => {
      const sent = writable(key)
      try {
        return { reply: sendFcall(connection, fn, [key], args, readOnly, binary), sent }
      } catch (e) {
        return { reply: Promise.reject(e), sent }
      }
    }

    const fcallOnce = (
      fn: string,
      key: string,
      args: ReadonlyArray<string | Uint8Array>,
      readOnly: boolean,
      more: ReadonlyArray<string>,
      binary: boolean,
      afterSend: (() => void) | undefined,
      onReply: ((raw: unknown) => void) | undefined
    ) =>
      Effect.suspend(() => {
        const sent = writable(key)
        return Effect.tryPromise({
          try: () => {
            const reply = sendFcall(connection, fn, more.length === 0 ? [key] : [key, ...more], args, readOnly, binary)
            afterSend?.()
            return onReply === undefined ? reply : (reply as Promise<unknown>).then((raw) => {
              try {
                onReply(raw)
              } catch {
                // (the caller reads the reply all the same)
              }
              return raw
            })
          },
          catch: (e) => ({ error: e, sent })
        })
      })

    const fcall = (
      fn: string,
      key: string,
      args: ReadonlyArray<string | Uint8Array>,
      readOnly: boolean,
      more: ReadonlyArray<string> = [],
      binary = false,
      afterSend?: (() => void) | undefined,
      onReply?: ((raw: unknown) => void) | undefined
    ) =>
      fcallOnce(fn, key, args, readOnly, more, binary, afterSend, onReply).pipe(
        Effect.catchAll(({ error, sent }) =>
          isMissingFunction(error) ?
            reload.pipe(
              Effect.zipRight(fcallOnce(fn, key, args, readOnly, more, binary, afterSend, onReply)),
              Effect.mapError((e) => {
                if (e instanceof Transport) return e
                if (!isMissingFunction(e.error)) return fromValkeyError(`FCALL ${fn}`, e.error, e.sent && !readOnly)
                return new Transport({
                  backend: "valkey",
                  kind: "script_not_loaded",
                  retryable: false,
                  message: `FCALL ${fn}: the function is still missing after reloading the library`,
                  nativeCode: "no_script",
                  cause: safeValkeyCause(e.error)
                })
              })
            ) :
            Effect.fail(fcallFailure(fn, error, sent, readOnly))
        )
      )

    // blocking reads (tailStream) never stall the shared connection: they borrow one of these.
    // An idle one is closed after a minute of real time: the pool's timer runs on the live clock
    // even when the layer reads its time from a TestClock (a day of TestClock would otherwise
    // replay 1 440 idle checks).
    const pool = yield* Pool.makeWithTTL({
      acquire: open(o),
      min: 0,
      max: o.dedicatedMax ?? 16,
      timeToLive: Duration.minutes(1)
    }).pipe(Effect.withClock(Clock.make()))
    const dedicated: Effect.Effect<Connection, Transport, Scope.Scope> = pool.get
    const discard = (c: Connection): Effect.Effect<void> => pool.invalidate(c)

    return { connection, isCluster, run, fcall, fcallNow, primaries, ensureLibrary, dedicated, discard } satisfies Client
  })
