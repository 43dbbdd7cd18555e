// `layerConfig` on every backend: options read from Config (here a ConfigProvider over a map, as the
// environment would give them), URLs and the HMAC secret as `Redacted`; a missing setting fails the
// layer's start with a ConfigError.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Config, ConfigError, ConfigProvider, Duration, Effect, Either, Layer, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import type { EngineError } from "../src/EngineError.js"
import type { Maintenance } from "../src/Maintenance.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { createAndClaim, kidOf } from "./conformance/helpers.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const SECRET = "5a17c0de93b24f68".repeat(4)

const hmacSecret = { kid: Config.string("HMAC_KID"), secretHex: Config.redacted("HMAC_SECRET") }

/** Builds `layer` under a ConfigProvider over `env` and mints a waitpoint token on it. */
const tokenWith = (
  layer: Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError>,
  env: Record<string, string>
) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const c = yield* createAndClaim()
    const wp = yield* b.createWaitpoint(c.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
    yield* b.complete(c.handle)
    return wp.hmacToken
  }).pipe(
    Effect.provide(layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env)))))))
  )

/** The ConfigError a layer's start failed with. */
const configError = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.either(effect), (r) => {
    const error = Either.isLeft(r) ? r.left : undefined
    expect(ConfigError.isConfigError(error)).toBe(true)
    return error as ConfigError.ConfigError
  })

describe("layerConfig", () => {
  it.effect("memory: the HMAC secret from Config", () =>
    Effect.gen(function*() {
      const layer = MemoryBackend.layerConfig({ hmacSecret })
      expect(kidOf(yield* tokenWith(layer, { HMAC_KID: "env-k", HMAC_SECRET: SECRET }))).toBe("env-k")
      const missing = yield* configError(tokenWith(layer, { HMAC_KID: "env-k" }))
      expect(missing._op).toBe("MissingData")
      expect(String(missing)).toContain("HMAC_SECRET")
    }))

  it.live("valkey: the url as Config.redacted, the key prefix, a timeout and the HMAC secret from Config", () =>
    Effect.gen(function*() {
      const layer = ValkeyBackend.layerConfig({
        url: Config.redacted("VALKEY_URL"),
        keyPrefix: Config.string("KEY_PREFIX"),
        commandTimeoutMs: Config.integer("COMMAND_TIMEOUT_MS"),
        hmacSecret
      })
      const env = {
        VALKEY_URL: inject("valkeyUrl"),
        KEY_PREFIX: `lc-${tag}`,
        COMMAND_TIMEOUT_MS: "10000",
        HMAC_KID: "env-k",
        HMAC_SECRET: SECRET
      }
      expect(kidOf(yield* tokenWith(layer, env))).toBe("env-k")
      // a plain string is still accepted for a url without a password
      const plain = ValkeyBackend.layerConfig({ url: Config.string("VALKEY_URL"), keyPrefix: Config.string("KEY_PREFIX") })
      expect(kidOf(yield* tokenWith(plain, env))).toBe("env-k")
      // a missing setting fails the start before any connection
      const { VALKEY_URL: _, ...withoutUrl } = env
      const missing = yield* configError(tokenWith(layer, withoutUrl))
      expect(missing._op).toBe("MissingData")
      expect(String(missing)).toContain("VALKEY_URL")
    }), 60_000)

  it.live("postgres: the url as Config.redacted, the schema and the HMAC secret from Config", () =>
    Effect.gen(function*() {
      const schema = `ff_lc_${tag}`
      const layer = PostgresBackend.layerConfig({
        url: Config.redacted("DATABASE_URL"),
        schema: Config.string("SCHEMA"),
        maxConnections: Config.integer("POOL").pipe(Config.withDefault(2)),
        hmacSecret
      })
      const env = { DATABASE_URL: inject("pgUrl"), SCHEMA: schema, HMAC_KID: "env-k", HMAC_SECRET: SECRET }
      const token = yield* tokenWith(layer, env).pipe(
        Effect.ensuring(
          Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(
            Effect.provide(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 1 })),
            Effect.ignore
          )
        )
      )
      expect(kidOf(token)).toBe("env-k")
      const missing = yield* configError(tokenWith(layer, { SCHEMA: schema, HMAC_KID: "env-k", HMAC_SECRET: SECRET }))
      expect(String(missing)).toContain("DATABASE_URL")
    }), 60_000)
})
