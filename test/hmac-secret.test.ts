// Signals out of the box: the memory layer signs waitpoints with a random secret of its own; a server
// layer seeds the secret it is given, or starts on one already stored, and otherwise fails to start with
// a ConfigError that says how to provide one (never a Transport error when a waitpoint is created).
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Cause, ConfigError, Duration, Effect, Either, Exit, Layer, Queue, Redacted, Schema, type Scope } from "effect"
import { inject } from "vitest"
import { EngineBackend, type HmacSecret } from "../src/EngineBackend.js"
import type * as M from "../src/Model.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Worker from "../src/Worker.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { createAndClaim, kidOf } from "./conformance/helpers.js"

const tag = `${process.pid}-${Date.now().toString(36)}`
const secret = (kid: string, byte: string): HmacSecret => ({ kid, secretHex: Redacted.make(`${byte}0f1e2d3c4b5a6978`.repeat(4)) })

/** Mints a waitpoint token on the backend in context and returns it. */
const mintToken = Effect.gen(function*() {
  const b = yield* EngineBackend
  const c = yield* createAndClaim()
  const wp = yield* b.createWaitpoint(c.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
  yield* b.complete(c.handle)
  return wp.hmacToken
})

const Approve = Producer.task({
  kind: "approve",
  input: Schema.Struct({ doc: Schema.String }),
  output: Schema.Struct({ approvedBy: Schema.String })
})
const Approval = Schema.Struct({ approver: Schema.String })

describe("memory: signals out of the box", () => {
  it.live("a layer without options signs waitpoints; a worker suspends and a signal resumes it", () =>
    Effect.gen(function*() {
      const tokens = yield* Queue.unbounded<{ readonly waitpointId: Worker.Waitpoint["waitpointId"]; readonly token: string }>()
      const approve = Worker.handler({
        ...Approve,
        run: (_input, ctx) =>
          Effect.gen(function*() {
            const approved = (signal: M.ResumeSignal) =>
              Effect.map(Producer.signalPayload(Approval, signal), (a) => ({ approvedBy: a.approver }))
            const signal = ctx.resumeSignals[0]
            if (signal !== undefined) return yield* approved(signal)
            const waitpoint = yield* ctx.createWaitpoint({ key: "approval" })
            yield* Queue.offer(tokens, { waitpointId: waitpoint.waitpointId, token: waitpoint.token })
            // the signal may come before the suspension (it is then buffered): suspend returns it
            const buffered = yield* ctx.suspend({ waitpoint, signalName: "approved" })
            if (buffered[0] !== undefined) return yield* approved(buffered[0])
            return yield* Effect.dieMessage("resumed without a signal")
          })
      })
      yield* Effect.forkScoped(Worker.run({ lanes: ["approvals"], handlers: [approve], concurrency: 1 }))
      const id = yield* Producer.submit(Approve, { doc: "q3" }, { lane: "approvals" })
      const { token, waitpointId } = yield* Queue.take(tokens)
      expect(kidOf(token)).toMatch(/^k-[0-9a-f]{8}$/)
      yield* Producer.signal({
        executionId: id,
        waitpointId,
        token,
        name: "approved",
        payload: { schema: Approval, value: { approver: "alice" } }
      })
      expect(yield* Producer.awaitResult(Approve, id)).toEqual({ approvedBy: "alice" })
    }).pipe(Effect.scoped, Effect.provide(MemoryBackend.layer())), 30_000)

  it.effect("two engines have different secrets; a given secret is used as it is", () =>
    Effect.gen(function*() {
      const a = yield* Effect.provide(mintToken, MemoryBackend.layer())
      const b = yield* Effect.provide(mintToken, MemoryBackend.layer())
      expect(kidOf(a)).not.toBe(kidOf(b))
      const given = yield* Effect.provide(mintToken, MemoryBackend.layer({ hmacSecret: secret("mine", "ab") }))
      expect(kidOf(given)).toBe("mine")
    }))

  it.effect("hmacSecret: \"none\" starts with an empty keystore", () =>
    Effect.gen(function*() {
      const r = yield* Effect.either(Effect.provide(mintToken, MemoryBackend.layer({ hmacSecret: "none" })))
      expect(Either.isLeft(r) && r.left._tag).toBe("Transport")
    }))
})

/**
 * The server layers: `start(name, secret?)` builds a layer on the deployment `name` (a key prefix, a
 * schema) and mints a token on it; `drop(name)` removes the deployment.
 */
const serverCases = (
  backend: string,
  start: (name: string, hmacSecret: HmacSecret | "none" | undefined) => Effect.Effect<string, unknown, Scope.Scope>,
  drop: (name: string) => Effect.Effect<void>
) =>
  describe(`${backend}: the HMAC secret at layer start`, () => {
    it.scopedLive("no secret stored and none given: the layer fails with a ConfigError saying how to give one", () =>
      Effect.gen(function*() {
        const name = `none-${tag}`
        const exit = yield* Effect.exit(Effect.scoped(start(name, undefined))).pipe(Effect.ensuring(drop(name)))
        expect(Exit.isFailure(exit)).toBe(true)
        if (Exit.isFailure(exit)) {
          const error = Cause.squash(exit.cause)
          expect(ConfigError.isConfigError(error) && error._op).toBe("MissingData")
          if (!ConfigError.isConfigError(error) || error._op !== "MissingData") return
          expect(error.path).toEqual(["hmacSecret"])
          expect(error.message).toContain("no waitpoint HMAC secret is stored")
          expect(error.message).toContain("hmacSecret: { kid")
          expect(error.message).toContain("Config.redacted(")
        }
      }), 60_000)

    it.scopedLive("the first start seeds the given secret; later starts need none and keep the stored one", () =>
      Effect.gen(function*() {
        const name = `seeded-${tag}`
        expect(kidOf(yield* Effect.scoped(start(name, secret("first", "cd"))))).toBe("first")
        expect(kidOf(yield* Effect.scoped(start(name, undefined)))).toBe("first")
        // another kid given later: the stored keystore is kept (a rotation changes it)
        expect(kidOf(yield* Effect.scoped(start(name, secret("second", "ef"))))).toBe("first")
      }).pipe(Effect.ensuring(drop(`seeded-${tag}`))), 60_000)

    it.scopedLive("hmacSecret: \"none\" starts on an empty keystore, chosen explicitly; waitpoints then fail", () =>
      Effect.gen(function*() {
        const name = `opt-out-${tag}`
        const r = yield* Effect.either(Effect.scoped(start(name, "none"))).pipe(Effect.ensuring(drop(name)))
        expect(Either.isLeft(r) && (r.left as { readonly _tag?: unknown })._tag).toBe("Transport")
      }), 60_000)
  })

serverCases(
  "valkey",
  (keyPrefix, hmacSecret) =>
    Effect.flatMap(
      ValkeyBackend.make({ url: inject("valkeyUrl"), keyPrefix, ...(hmacSecret === undefined ? {} : { hmacSecret }) }),
      ({ backend }) => Effect.provideService(mintToken, EngineBackend, backend)
    ),
  () => Effect.void // the test server is thrown away; every key is under the test's own prefix
)

const pgSchema = (name: string) => `ff_hmac_${name.replace(/-/g, "_")}`
const pg = Layer.orDie(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 2 }))

serverCases(
  "postgres",
  (name, hmacSecret) =>
    PostgresBackend.make({ schema: pgSchema(name), ...(hmacSecret === undefined ? {} : { hmacSecret }) }).pipe(
      Effect.flatMap(({ backend }) => Effect.provideService(mintToken, EngineBackend, backend)),
      Effect.provide(pg)
    ),
  (name) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${pgSchema(name)}" CASCADE`)).pipe(
      Effect.provide(pg),
      Effect.ignore
    )
)
