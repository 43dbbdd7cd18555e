/**
 * Suspension and signals (docs/design/signals.md): the HMAC keystore admin (seeding, rotation and its grace,
 * garbage collection of old kids, input validation).
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  createAndClaim,
  ensureHmac,
  kidOf,
  publicState,
  randomSecret,
  SEED_KID,
  SEED_SECRET,
  signal,
  signalAccepted,
  type Tester,
  validationFails
} from "./helpers.js"
import { signalTo, suspendedExecution } from "./signals-helpers.js"

export const signalsKeystore = (t: Tester): void => {
  describe("HMAC keystore", () => {
    const rotate = (newKid: string, newSecretHex: string, graceMs: number) =>
      Effect.flatMap(backend, (b) => b.rotateWaitpointHmacSecretAll({ newKid, newSecretHex, graceMs }))

    const checkEntries = (
      r: { readonly entries: ReadonlyArray<{ readonly partition: number; readonly result: Either.Either<M.RotateOutcome, EngineError> }> },
      check: (result: Either.Either<M.RotateOutcome, EngineError>) => void
    ) => {
      if (t.options.rotateEntries === "single") {
        expect(r.entries.map((e) => e.partition)).toEqual([0])
      } else {
        expect(r.entries.map((e) => e.partition)).toEqual(
          Array.from({ length: t.options.numFlowPartitions }, (_, i) => i)
        )
      }
      for (const e of r.entries) check(e.result)
    }

    const newKid = (tag: string) => Effect.map(Ids.randomUuid, (u) => `ct-${tag}-${u.slice(0, 8)}`)

    t.freshOnly("seed installs once: Seeded, then AlreadySeeded{sameSecret}", () =>
      Effect.gen(function*() {
        const b = yield* backend
        expect(yield* b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: SEED_SECRET })).toEqual({
          _tag: "Seeded",
          kid: SEED_KID
        })
        expect(yield* b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: SEED_SECRET.toUpperCase() })).toEqual({
          _tag: "AlreadySeeded",
          kid: SEED_KID,
          sameSecret: true
        })
        expect(yield* b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: "fedcba9876543210".repeat(4) })).toEqual({
          _tag: "AlreadySeeded",
          kid: SEED_KID,
          sameSecret: false
        })
        yield* validationFails(
          b.seedWaitpointHmacSecret({ kid: "another-kid", secretHex: SEED_SECRET }),
          "InvalidInput",
          "rotate_waitpoint_hmac_secret_all"
        )
        // tokens are minted with the seeded kid
        const s = yield* suspendedExecution()
        expect(kidOf(s.token)).toBe(SEED_KID)
      }))

    t.test("seed rejects a secret that is not hex, shorter than 32 bytes or one byte repeated, and an empty kid", () =>
      Effect.gen(function*() {
        const b = yield* backend
        for (const secretHex of ["0".repeat(63), "g".repeat(64), "", "01234567-89ab-cdef-0123-456789abcdef0123456789"]) {
          yield* validationFails(
            b.seedWaitpointHmacSecret({ kid: "k", secretHex }),
            "InvalidInput",
            "secret_hex must be hex digits of whole bytes"
          )
        }
        for (const secretHex of [SEED_SECRET.slice(0, 62), "ab"]) {
          yield* validationFails(
            b.seedWaitpointHmacSecret({ kid: "k", secretHex }),
            "InvalidInput",
            "secret_hex must hold at least 32 bytes (64 hex digits)"
          )
        }
        for (const secretHex of ["0".repeat(64), "00".repeat(48), "f".repeat(64), "aB".repeat(32)]) {
          yield* validationFails(
            b.seedWaitpointHmacSecret({ kid: "k", secretHex }),
            "InvalidInput",
            "secret_hex must not be one byte repeated"
          )
        }
        yield* validationFails(
          b.seedWaitpointHmacSecret({ kid: "", secretHex: SEED_SECRET }),
          "InvalidInput",
          "kid must be non-empty"
        )
        yield* validationFails(b.seedWaitpointHmacSecret({ kid: "a:b", secretHex: SEED_SECRET }), "InvalidKid")
      }))

    t.test("rotation: new tokens use the new kid; old tokens stay valid through the grace, then token_expired", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const kidA = yield* newKid("a")
        const kidB = yield* newKid("b")
        const secretA = yield* randomSecret
        const secretB = yield* randomSecret
        yield* rotate(kidA, secretA, 86_400_000)
        const old = yield* suspendedExecution()
        expect(kidOf(old.token)).toBe(kidA)
        const r = yield* rotate(kidB, secretB, 10_000)
        checkEntries(r, (e) => {
          expect(Either.isRight(e)).toBe(true)
          if (Either.isRight(e)) {
            expect(e.right).toMatchObject({ _tag: "Rotated", previousKid: kidA, newKid: kidB })
          }
        })
        const fresh = yield* suspendedExecution()
        expect(kidOf(fresh.token)).toBe(kidB)
        const onOld = { executionId: old.executionId, waitpointId: old.waitpointId, token: old.token }
        yield* advance(10_000)
        // exactly at the end of the grace the old kid is still accepted
        yield* signalAccepted({ ...onOld, name: "reject" }, "no_op")
        yield* advance(1)
        yield* validationFails(signal({ ...onOld, name: "approve" }), "InvalidToken", "token_expired")
        expect(yield* publicState(old.executionId)).toBe("suspended")
        // the current kid never expires
        yield* advance(86_400_000)
        yield* signalAccepted(
          { executionId: fresh.executionId, waitpointId: fresh.waitpointId, token: fresh.token, name: "approve" },
          "resume_condition_satisfied"
        )
      }))

    t.test("rotation with grace 0 stops old tokens right after the rotation instant", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const s = yield* suspendedExecution()
        yield* rotate(yield* newKid("z"), yield* randomSecret, 0)
        const base = signalTo(s)
        yield* signalAccepted({ ...base, name: "reject" }, "no_op")
        yield* advance(1)
        yield* validationFails(signal({ ...base, name: "approve" }), "InvalidToken", "token_expired")
      }))

    t.test("a rotated-out kid also stops buffering into pending waitpoints", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const c = yield* createAndClaim()
        const wp = yield* b.createWaitpoint(c.handle, { waitpointKey: "k", expiresIn: Duration.hours(2) })
        yield* rotate(yield* newKid("p"), yield* randomSecret, 1_000)
        const base = { executionId: c.executionId, waitpointId: wp.waitpointId, token: wp.hmacToken, name: "x" }
        yield* signalAccepted(base, "buffered_for_pending_waitpoint")
        yield* advance(1_001)
        yield* validationFails(signal(base), "InvalidToken", "token_expired")
      }))

    t.test("an exact retry is Noop; the same kid with another secret is Conflict(RotationConflict)", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const kid = yield* newKid("n")
        const secret = yield* randomSecret
        yield* rotate(kid, secret, 1_000)
        checkEntries(yield* rotate(kid, secret, 1_000), (e) => {
          expect(Either.isRight(e) && e.right).toEqual({ _tag: "Noop", kid })
        })
        checkEntries(yield* rotate(kid, secret.toUpperCase(), 5), (e) => {
          expect(Either.isRight(e) && e.right).toEqual({ _tag: "Noop", kid })
        })
        checkEntries(yield* rotate(kid, yield* randomSecret, 1_000), (e) => {
          expect(Either.isLeft(e)).toBe(true)
          if (Either.isLeft(e)) expect(e.left).toMatchObject({ _tag: "Conflict", kind: "RotationConflict", kid })
        })
        // the conflict changed nothing: tokens still use the kid
        const s = yield* suspendedExecution()
        expect(kidOf(s.token)).toBe(kid)
      }))

    t.test("rotation garbage-collects kids whose grace elapsed", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const k1 = yield* newKid("g1")
        const k2 = yield* newKid("g2")
        const k3 = yield* newKid("g3")
        yield* rotate(k1, yield* randomSecret, 1_000)
        yield* rotate(k2, yield* randomSecret, 1_000)
        yield* advance(1_001)
        checkEntries(yield* rotate(k3, yield* randomSecret, 1_000), (e) => {
          if (Either.isLeft(e)) return expect.fail(String(e.left))
          expect(e.right).toMatchObject({ _tag: "Rotated", previousKid: k2, newKid: k3 })
          const gc = e.right._tag === "Rotated" ? e.right.gcCount : -1
          if (t.options.fresh) expect(gc).toBe(2) // the seed kid and k1
          else expect(gc).toBeGreaterThanOrEqual(1)
        })
      }))

    t.test("a secret longer than 32 bytes is accepted and signs tokens", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const kid = yield* newKid("long")
        const long = (yield* randomSecret) + (yield* randomSecret).slice(0, 32)
        checkEntries(yield* rotate(kid, long, 1_000), (e) => {
          expect(Either.isRight(e) && e.right).toMatchObject({ _tag: "Rotated", newKid: kid })
        })
        const s = yield* suspendedExecution()
        expect(kidOf(s.token)).toBe(kid)
        yield* signalAccepted({ ...signalTo(s), name: "approve" }, "resume_condition_satisfied")
      }))

    t.test("rotation input is validated before anything: InvalidKid, InvalidSecretHex, InvalidGraceMs", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const secret = yield* randomSecret
        yield* validationFails(rotate("", secret, 1_000), "InvalidKid")
        yield* validationFails(rotate("a:b", secret, 1_000), "InvalidKid")
        for (const bad of ["", "abc", "zz", "0g"]) yield* validationFails(rotate("ct-ok", bad, 1_000), "InvalidSecretHex")
        // a secret is at least 32 bytes, and not one byte repeated (an all-zero placeholder)
        for (const bad of ["ab", secret.slice(0, 62), "00".repeat(32), "7".repeat(128), "Cc".repeat(40)]) {
          yield* validationFails(rotate("ct-ok", bad, 1_000), "InvalidSecretHex")
        }
        for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) yield* validationFails(rotate("ct-ok", secret, bad), "InvalidGraceMs")
        // nothing was installed: tokens do not use the rejected kid
        const s = yield* suspendedExecution()
        expect(kidOf(s.token)).not.toBe("ct-ok")
      }))
  })
}
