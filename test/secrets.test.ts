// No secret or token in an error, a log line, a span or a metric. The failures are forced on real servers:
// a Valkey at maxmemory with noeviction refuses deliverSignal (which carries a waitpoint token) and
// rotateWaitpointHmacSecretAll (which carries the new secret); a Postgres keystore and waitpoint table whose
// trigger refuses writes with the row in its detail, as a check or not-null violation does. Every error is
// serialised whole (own and hidden fields, causes, bytes), logged through the standard loggers, and the
// spans and metrics of the calls are exported; none may hold the secret or the token.
import { NodeSdk } from "@effect/opentelemetry"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Redis } from "iovalkey"
import { randomBytes } from "node:crypto"
import { inspect } from "node:util"
import { Cause, Effect, Either, Layer, Logger, Option, Redacted } from "effect"
import { inject } from "vitest"
import type { EngineBackend } from "../src/EngineBackend.js"
import { type EngineError, isEngineError } from "../src/EngineError.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { startValkey, type ValkeyServer } from "./support/servers.js"

// ---------------------------------------------------------------------------
// Serialising everything an error, a log line, a span or a metric holds
// ---------------------------------------------------------------------------

/** Every own field (hidden ones too), every cause, every byte (as hex and as text), recursively. */
const walk = (u: unknown, seen: Set<unknown>, out: Array<string>): void => {
  if (u === null || u === undefined || typeof u === "boolean" || typeof u === "number" || typeof u === "bigint") {
    out.push(String(u))
    return
  }
  if (typeof u === "string") {
    out.push(u)
    return
  }
  if (typeof u === "symbol" || typeof u === "function") {
    out.push(String(u))
    return
  }
  if (seen.has(u)) return
  seen.add(u)
  if (u instanceof Uint8Array) {
    const b = Buffer.from(u.buffer, u.byteOffset, u.byteLength)
    out.push(b.toString("hex"), b.toString("latin1"))
    return
  }
  if (u instanceof Error) out.push(u.name, u.message, u.stack ?? "", String(u))
  if (u instanceof Map) for (const [k, v] of u) (walk(k, seen, out), walk(v, seen, out))
  if (u instanceof Set) for (const v of u) walk(v, seen, out)
  for (const key of Reflect.ownKeys(u)) {
    out.push(String(key))
    const d = Object.getOwnPropertyDescriptor(u, key)
    walk(d !== undefined && "value" in d ? d.value : undefined, seen, out)
  }
  // getters on the prototype chain (a tagged error's `message`)
  for (const key of ["message", "cause", "stack"]) {
    try {
      walk((u as Record<string, unknown>)[key], seen, out)
    } catch {
      // a throwing getter shows nothing
    }
  }
}

const serialise = (u: unknown): string => {
  const out: Array<string> = []
  walk(u, new Set(), out)
  out.push(inspect(u, { depth: null, showHidden: true, getters: true, maxArrayLength: null, maxStringLength: null }))
  try {
    out.push(JSON.stringify(u) ?? "")
  } catch {
    // cyclic
  }
  return out.join("\n")
}

/** The spellings of a secret or a token that must not appear: as given, upper-cased, as spaced bytes. */
const spellings = (needle: string): ReadonlyArray<string> => {
  const digest = needle.slice(needle.indexOf(":") + 1)
  const bytes = /^[0-9a-f]+$/.test(digest) ? digest.match(/../g)!.join(" ") : digest
  return [...new Set([needle, digest, digest.toUpperCase(), bytes])]
}

const expectAbsent = (where: string, haystack: string, needles: ReadonlyArray<string>) => {
  needles.forEach((needle, i) =>
    spellings(needle).forEach((s, j) => {
      expect(haystack.toLowerCase().includes(s.toLowerCase()), `${where} holds secret #${i} (spelling #${j})`).toBe(false)
    })
  )
}

/** Logs `error` as a program would, through the standard loggers; returns everything they wrote. */
const logged = (errors: ReadonlyArray<unknown>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.make((options) => {
      lines.push(
        Logger.stringLogger.log(options),
        Logger.logfmtLogger.log(options),
        Logger.jsonLogger.log(options),
        serialise(Logger.structuredLogger.log(options)),
        Cause.pretty(options.cause)
      )
    })
    yield* Effect.forEach(errors, (e) =>
      Effect.all([
        Effect.logError("call failed", e),
        Effect.logError(Cause.fail(e)),
        Effect.logWarning("call failed", Cause.die(e))
      ])).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)))
    return lines.join("\n")
  })

/** An OpenTelemetry SDK with in-memory exporters: what the calls run under exports its spans and metrics. */
const telemetry = () => {
  const spans = new InMemorySpanExporter()
  const reader = new PeriodicExportingMetricReader({
    exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
    exportIntervalMillis: 3_600_000
  })
  const layer = NodeSdk.layer(() => ({
    resource: { serviceName: "secrets" },
    spanProcessor: new SimpleSpanProcessor(spans),
    metricReader: reader
  }))
  const exported = Effect.promise(async () => {
    const metrics = await reader.collect()
    return serialise(spans.getFinishedSpans().map((s) => ({
      name: s.name,
      attributes: s.attributes,
      status: s.status,
      events: s.events
    }))) + serialise(metrics)
  })
  return { layer, exported, spans }
}

const engineErrors = (u: unknown): ReadonlyArray<EngineError> => {
  const out: Array<EngineError> = []
  const visit = (x: unknown): void => {
    if (Either.isEither(x)) {
      if (Either.isLeft(x)) visit(x.left)
      return
    }
    if (isEngineError(x)) out.push(x)
    else if (Array.isArray(x)) x.forEach(visit)
    else if (typeof x === "object" && x !== null) Object.values(x).forEach(visit)
  }
  visit(u)
  return out
}

const newSecret = () => randomBytes(32).toString("hex")

const NS = Ids.unsafe.namespace("secrets")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-i"),
  leaseTtlMs: 60_000
}

/** A claimed execution suspended on one waitpoint: its id, waitpoint and token. */
const suspended = (b: EngineBackend.Service) =>
  Effect.gen(function*() {
    const lane = Ids.unsafe.laneId(`sec-${(yield* Ids.randomUuid).slice(0, 8)}`)
    const executionId = yield* Ids.executionIdSolo(lane)
    yield* b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k" })
    const h = Option.getOrThrow(yield* b.claim({ lane, capabilities: { tokens: [] }, policy }))
    const wp = yield* Ids.freshWaitpointBinding
    const out = yield* b.suspend(h, {
      suspensionId: yield* Ids.newSuspensionId,
      waitpoints: [{ _tag: "Fresh", ...wp }],
      resumeCondition: { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "Wildcard" } }
    })
    return { executionId, lane, handle: h, waitpointId: wp.waitpointId, token: out.details.waitpointToken }
  })

const signalArgs = (s: { readonly executionId: Ids.ExecutionId; readonly waitpointId: Ids.WaitpointId; readonly token: string }) =>
  Effect.map(Ids.newSignalId, (signalId): M.DeliverSignalArgsInput => ({
    executionId: s.executionId,
    waitpointId: s.waitpointId,
    signalId,
    signalName: "go",
    waitpointToken: s.token
  }))

// ---------------------------------------------------------------------------
// Valkey at maxmemory
// ---------------------------------------------------------------------------

describe("valkey: errors of calls refused at maxmemory", () => {
  let server: ValkeyServer
  beforeAll(async () => {
    server = await startValkey({ config: { maxmemory: "24mb", "maxmemory-policy": "noeviction" } })
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  }, 60_000)

  it.scopedLive("deliverSignal's token and a rotated secret are in no error, log line, span or metric", () =>
    Effect.gen(function*() {
      const otel = telemetry()
      yield* Effect.gen(function*() {
        const seeded = newSecret()
        const { backend: b } = yield* ValkeyBackend.make({ url: server.url, keyPrefix: "sec", hmacSecret: { kid: "k1", secretHex: Redacted.make(seeded) } })
        const s = yield* suspended(b)

        // a limit far below what the server holds: every write is refused from here on, however the
        // server's memory moves (filling it up to its limit left it a few bytes under at times)
        const admin = new Redis(server.url, { maxRetriesPerRequest: 1 })
        yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
        const filled = yield* Effect.promise(async () => {
          await admin.config("SET", "maxmemory", "64kb")
          return admin.set("fill", "x").then(() => "never refused", (e: unknown) => String(e))
        })
        expect(filled).toContain("OOM")

        const delivered = yield* Effect.either(b.deliverSignal(yield* signalArgs(s)))
        const rotated = newSecret()
        const rotation = yield* b.rotateWaitpointHmacSecretAll({ newKid: "k2", newSecretHex: rotated, graceMs: 1_000 })
        const failures = [...engineErrors(delivered), ...engineErrors(rotation)]
        // the calls did fail, with the server's refusal
        expect(Either.isLeft(delivered) && delivered.left).toMatchObject({ _tag: "Transport", backend: "valkey" })
        expect(engineErrors(rotation).length).toBeGreaterThan(0)
        expect(serialise(delivered)).toContain("OOM")

        const secrets = [s.token, seeded, rotated]
        expectAbsent("the deliverSignal error", serialise(delivered), secrets)
        expectAbsent("the rotation result", serialise(rotation), secrets)
        expectAbsent("the logs", yield* logged(failures), secrets)
        expectAbsent("the spans and metrics", yield* otel.exported, secrets)
        expect(otel.spans.getFinishedSpans().map((x) => x.name)).toContain("EngineBackend.deliverSignal")
        yield* Effect.promise(() => admin.flushall())
      }).pipe(Effect.provide(otel.layer))
    }), 60_000)
})

// ---------------------------------------------------------------------------
// Postgres: a failure whose detail dumps the row
// ---------------------------------------------------------------------------

describe("postgres: errors whose detail dumps a row", () => {
  const schema = `ff_secrets_${process.pid}_${Date.now().toString(36)}`
  const client = Layer.scopedDiscard(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
  ).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

  it.scopedLive("the rotated secret and a minted token are in no error, log line, span or metric", () =>
    Effect.gen(function*() {
      const otel = telemetry()
      yield* Effect.gen(function*() {
        const seeded = newSecret()
        const { backend: b } = yield* PostgresBackend.make({ schema, hmacSecret: { kid: "k1", secretHex: Redacted.make(seeded) } })
        const sql = yield* SqlClient.SqlClient
        const s = yield* suspended(b)
        // writes of keys and waitpoints are refused with the row in the detail and the hint
        yield* sql.unsafe(`
          CREATE FUNCTION "${schema}".refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
          BEGIN
            RAISE EXCEPTION 'refused by policy' USING ERRCODE = 'XX000', DETAIL = 'Failing row contains ' || NEW::text,
              HINT = NEW::text;
          END $$`)
        yield* sql.unsafe(`CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON "${schema}".hmac_kid
          FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse_row()`)
        yield* sql.unsafe(`CREATE TRIGGER refuse BEFORE INSERT ON "${schema}".waitpoint
          FOR EACH ROW EXECUTE FUNCTION "${schema}".refuse_row()`)

        const rotated = newSecret()
        const rotation = yield* b.rotateWaitpointHmacSecretAll({ newKid: "k2", newSecretHex: rotated, graceMs: 1_000 })
        const second = yield* Effect.either(suspended(b))
        const delivered = yield* Effect.either(b.deliverSignal(yield* signalArgs(s)))
        expect(delivered).toMatchObject({ _tag: "Right" })
        const failures = [...engineErrors(rotation), ...engineErrors(second)]
        expect(failures.map((e) => e._tag)).toEqual(["Transport", "Transport"])
        expect(serialise(failures)).toContain("refused by policy")

        const secrets = [s.token, seeded, rotated]
        expectAbsent("the errors", serialise(failures), secrets)
        expectAbsent("the logs", yield* logged(failures), secrets)
        expectAbsent("the spans and metrics", yield* otel.exported, secrets)
        // the refused waitpoint's token (never returned) would be a 64-digit hex run
        for (const [where, text] of [["errors", serialise(failures)], ["logs", yield* logged(failures)]] as const) {
          expect(/[0-9a-f]{64}/i.test(text), `${where} hold a 64-digit hex run`).toBe(false)
        }
      }).pipe(Effect.provide(otel.layer))
    }).pipe(Effect.provide(client)), 60_000)
})
