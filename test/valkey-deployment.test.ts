// What a Valkey deployment needs, and what the layer does when it does not have it: a maxmemory-policy that
// can evict keys is refused at start (or only warned about, when asked), on a standalone server and on every
// primary of a cluster. Each test starts servers of its own: nothing here touches the shared ones.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Either, Logger } from "effect"
import { classify } from "../src/valkey/internal/errors.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { startValkey, startValkeyCluster, type ValkeyClusterServer, type ValkeyServer } from "./support/servers.js"

/** Runs `effect` with every log line captured; returns its exit and the lines. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.make((options) => {
      lines.push(Logger.logfmtLogger.log(options))
    })
    const result = yield* Effect.either(effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture))))
    return { result, lines }
  })

// ---------------------------------------------------------------------------
// maxmemory-policy on a standalone server
// ---------------------------------------------------------------------------

describe("valkey deployment: maxmemory-policy (standalone)", () => {
  let server: ValkeyServer
  beforeAll(async () => {
    server = await startValkey({ config: { "maxmemory-policy": "allkeys-lru" } })
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  }, 60_000)

  it.scopedLive("an evicting policy is refused at start, before anything is written", () =>
    Effect.gen(function*() {
      for (const evicting of ["allkeys-lru", "volatile-lru", "volatile-ttl"]) {
        yield* Effect.promise(() => server.cli("CONFIG", "SET", "maxmemory-policy", evicting))
        const r = yield* Effect.either(ValkeyBackend.make({ url: server.url, keyPrefix: "policy" }))
        expect(Either.isLeft(r) && r.left).toMatchObject({
          _tag: "Transport",
          backend: "valkey",
          retryable: false,
          nativeCode: "eviction_policy"
        })
        expect(Either.isLeft(r) && r.left.message).toContain(`maxmemory-policy is ${evicting}`)
        expect((yield* Effect.promise(() => server.cli("DBSIZE"))).trim()).toBe("0")
      }
    }), 60_000)

  it.scopedLive("evictionCheck: \"warn\" starts and logs a warning; noeviction starts without one", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => server.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"))
      const warned = yield* withLogs(ValkeyBackend.make({ url: server.url, keyPrefix: "policy", evictionCheck: "warn" }))
      expect(Either.isRight(warned.result)).toBe(true)
      expect(warned.lines.filter((l) => l.includes("maxmemory-policy is allkeys-lru"))).toHaveLength(1)
      expect(warned.lines.find((l) => l.includes("maxmemory-policy"))).toContain("level=WARN")
      if (Either.isRight(warned.result)) yield* warned.result.right.backend.ping()
      yield* Effect.promise(() => server.cli("CONFIG", "SET", "maxmemory-policy", "noeviction"))
      const quiet = yield* withLogs(ValkeyBackend.make({ url: server.url, keyPrefix: "policy" }))
      expect(Either.isRight(quiet.result)).toBe(true)
      expect(quiet.lines.filter((l) => l.includes("maxmemory-policy"))).toEqual([])
    }), 60_000)
})

// ---------------------------------------------------------------------------
// a dedicated cluster: the policy of every primary, and an outage
// ---------------------------------------------------------------------------

describe("valkey deployment: a cluster of its own", () => {
  let cluster: ValkeyClusterServer
  beforeAll(async () => {
    cluster = await startValkeyCluster({
      config: { appendonly: "yes", appendfsync: "always", "cluster-node-timeout": "1000" }
    })
  }, 120_000)
  afterAll(async () => {
    await cluster?.stop()
  }, 60_000)

  it.scopedLive("the start checks the maxmemory-policy of every primary", () =>
    Effect.gen(function*() {
      const port = cluster.ports[2]!
      yield* Effect.promise(() => cluster.cli(port, "CONFIG", "SET", "maxmemory-policy", "volatile-lfu"))
      yield* Effect.addFinalizer(() => Effect.promise(() => cluster.cli(port, "CONFIG", "SET", "maxmemory-policy", "noeviction")))
      const refused = yield* Effect.either(ValkeyBackend.make({ nodes: cluster.nodes, keyPrefix: "policy" }))
      expect(Either.isLeft(refused) && refused.left).toMatchObject({ _tag: "Transport", nativeCode: "eviction_policy" })
      expect(Either.isLeft(refused) && refused.left.message).toContain(`maxmemory-policy is volatile-lfu on 127.0.0.1:${port}`)
      const warned = yield* withLogs(ValkeyBackend.make({ nodes: cluster.nodes, keyPrefix: "policy", evictionCheck: "warn" }))
      expect(Either.isRight(warned.result)).toBe(true)
      expect(warned.lines.filter((l) => l.includes("maxmemory-policy is volatile-lfu"))).toHaveLength(1)
    }), 60_000)
})

// ---------------------------------------------------------------------------
// the classification, one native failure at a time
// ---------------------------------------------------------------------------

describe("valkey error classification", () => {
  const err = (message: string, code?: string) => Object.assign(new Error(message), code === undefined ? {} : { code })

  it("a full server is not retryable", () => {
    expect(classify(err("OOM command not allowed when used memory > 'maxmemory'."), false)).toEqual({ kind: "other", nativeCode: "oom", retryable: false })
  })
})
