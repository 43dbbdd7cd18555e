/**
 * The waitpoint HMAC secret at layer start (docs/guide.md "Signals and the HMAC secret"): the memory
 * engine makes a random one, a server layer seeds the one it is given or finds one stored, and
 * fails to start otherwise.
 */
import { randomBytes } from "node:crypto"
import { ConfigError, Effect, Redacted } from "effect"
import type { EngineBackend, HmacSecret } from "../EngineBackend.js"
import type { EngineError } from "../EngineError.js"

/** A fresh secret: 32 random bytes as lower-case hex, under a random kid. */
export const randomHmacSecret = (): HmacSecret => ({
  kid: `k-${randomBytes(4).toString("hex")}`,
  secretHex: Redacted.make(randomBytes(32).toString("hex"))
})

/**
 * Seeds `secret` at start. A keystore that already has another current kid is left as it is (a
 * rotation changed it), as is a stored secret that differs from `secret` under the same kid; both
 * are logged.
 */
export const seedAtStart = (
  backend: EngineBackend.Service,
  secret: HmacSecret
): Effect.Effect<void, EngineError> =>
  backend.seedWaitpointHmacSecret({ kid: secret.kid, secretHex: Redacted.value(secret.secretHex) }).pipe(
    Effect.flatMap((outcome) =>
      outcome._tag === "AlreadySeeded" && !outcome.sameSecret ?
        Effect.logWarning(
          `flowfabric ${backend.backendLabel}: the HMAC keystore keeps its stored secret for kid ${outcome.kid}, ` +
            "which differs from the one given (rotateWaitpointHmacSecretAll changes it)"
        ) :
        Effect.void
    ),
    Effect.catchIf(
      (e) => e._tag === "Validation" && e.kind === "InvalidInput" && e.detail.includes("rotate"),
      () =>
        Effect.logWarning(
          `flowfabric ${backend.backendLabel}: the HMAC keystore has another current kid than ${secret.kid} ` +
            "(rotated); it is left as it is"
        )
    )
  )

/** The failure of a server layer that has no secret: where none is stored and none was given. */
export const missingSecret = (backend: string, store: string): ConfigError.ConfigError =>
  ConfigError.MissingData(
    ["hmacSecret"],
    `flowfabric ${backend}: no waitpoint HMAC secret is stored in ${store} and the layer was given none. ` +
      "Waitpoint tokens (signals) need one: pass hmacSecret: { kid: \"k1\", secretHex: Redacted.make(hex) } to the " +
      "layer, with hex 32 random bytes or more (openssl rand -hex 32), or read it with layerConfig, e.g. " +
      "hmacSecret: { kid: Config.string(\"FLOWFABRIC_HMAC_KID\"), secretHex: Config.redacted(\"FLOWFABRIC_HMAC_SECRET\") }. " +
      "It is stored at the first start; later starts may leave it out."
  )
