/** The boundary of suspension, waitpoints, signals and the HMAC keystore. */
import { Clock, Duration, Effect } from "effect"
import { invalidInput, state, validation, type Validation } from "../../EngineError.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import * as V from "../validation.js"
import { type Boundary, failWith, type Operations } from "./context.js"

/** The limits of an HMAC kid and secret (their sizes; their form is checked apart). */
const secretLimits = (op: string, kid: string, secretHex: string): Validation | undefined =>
  V.checkBytes(op, "kid", kid, "nameBytes") ??
    (secretHex.length > Limits.secretHexChars ? V.overLimit(op, "secret", "secretHexChars", "characters") : undefined)

/** The signal operations. */
export const signalOperations = (b: Boundary): Operations<
  "suspend" | "createWaitpoint" | "observeSignals" | "deliverSignal" | "rotateWaitpointHmacSecretAll" |
  "seedWaitpointHmacSecret"
> => {
  const { core, intake, withHandle, make } = b

  return {
    suspend: (handle, input) =>
      Effect.gen(function*() {
        if (handle?.kind === "suspended") return yield* state("AlreadySuspended")
        const args = yield* make("suspend", M.SuspendArgs, input)
        yield* failWith(V.suspendLimits(args))
        const now = args.now ?? (yield* Clock.currentTimeMillis)
        yield* failWith(V.checkSuspendArgs(args, now))
        const h = yield* intake(handle)
        return yield* core.suspend(h, args)
      }),

    createWaitpoint: (handle, args) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const a = yield* make("create_waitpoint", M.CreateWaitpointArgs, args)
        yield* failWith(V.checkWaitpointKey(a.waitpointKey, false))
        const ms = Duration.toMillis(a.expiresIn)
        if (!Number.isFinite(ms) || ms < 0) return yield* invalidInput("create_waitpoint: expiresIn must be finite")
        return yield* core.createWaitpoint(h, a.waitpointKey, Math.floor(ms))
      }),

    observeSignals: (handle) => withHandle(handle, core.observeSignals),

    deliverSignal: (args) =>
      Effect.gen(function*() {
        const payload = args?.payload
        if (payload instanceof Uint8Array && payload.length > V.MAX_SIGNAL_PAYLOAD_BYTES) {
          return yield* validation("PayloadTooLarge", `signal payload of ${payload.length} bytes > 65536`)
        }
        const a = yield* make("deliver_signal", M.DeliverSignalArgs, args)
        yield* failWith(V.signalLimits(a))
        return yield* core.deliverSignal(a)
      }),

    rotateWaitpointHmacSecretAll: (args) =>
      Effect.gen(function*() {
        const a = yield* make("rotate_waitpoint_hmac_secret_all", M.RotateWaitpointHmacSecretAllArgs, args)
        yield* failWith(secretLimits("rotate_waitpoint_hmac_secret_all", a.newKid, a.newSecretHex))
        yield* failWith(V.checkKid(a.newKid))
        yield* failWith(V.checkSecretHex(a.newSecretHex))
        yield* failWith(V.checkGraceMs(a.graceMs))
        return yield* core.rotateWaitpointHmacSecretAll({ ...a, newSecretHex: a.newSecretHex.toLowerCase() })
      }),

    seedWaitpointHmacSecret: (args) =>
      Effect.gen(function*() {
        const a = yield* make("seed_waitpoint_hmac_secret", M.SeedWaitpointHmacSecretArgs, args)
        yield* failWith(secretLimits("seed_waitpoint_hmac_secret", a.kid, a.secretHex))
        const weak = V.hmacSecretProblem(a.secretHex)
        if (weak !== undefined) return yield* invalidInput(weak)
        if (a.kid.length === 0) return yield* invalidInput("kid must be non-empty")
        yield* failWith(V.checkKid(a.kid))
        return yield* core.seedWaitpointHmacSecret({ ...a, secretHex: a.secretHex.toLowerCase() })
      })
  }
}
