// Fault injection against a PostgreSQL of its own: the pool's backends terminated mid-run and the
// server restarted mid-run. Calls then fail with retryable Transport errors, work resumes after the
// reconnect, and nothing committed is lost or applied twice.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Duration, Effect, Either, Layer, ManagedRuntime, Option, Redacted, Ref, Schedule } from "effect"
import pg from "pg"
import { afterAll, beforeAll } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import { type EngineError, isLeaseLost, isRetryable } from "../src/EngineError.js"
import * as Ids from "../src/Ids.js"
import { Maintenance } from "../src/Maintenance.js"
import type * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { type PostgresServer, startPostgres } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"

const APP = "ff-faults"
const SCHEMA = "ff_faults"
const NS = Ids.unsafe.namespace("faults")
const WORKER = { workerId: Ids.unsafe.workerId("w"), leaseTtlMs: 1_500 }

let server: PostgresServer
let admin: pg.Client

beforeAll(async () => {
  server = await startPostgres()
  admin = new pg.Client({ connectionString: server.url })
  admin.on("error", () => {})
  await admin.connect()
}, 120_000)

afterAll(async () => {
  await admin?.end().catch(() => undefined)
  await server?.stop()
})

/** The backend over its own pool (applicationName lets the test find the pool's backends). */
const makeRuntime = () =>
  ManagedRuntime.make(
    PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: SCHEMA, maxConnections: 4 }).pipe(
      Layer.provide(PgClient.layer({
        url: Redacted.make(server.url),
        maxConnections: 4,
        applicationName: APP,
        connectTimeout: Duration.seconds(2)
      }))
    )
  )

const adminQuery = async (text: string, values: Array<unknown> = []) => {
  for (let i = 0; ; i++) {
    try {
      if (i > 0) {
        admin = new pg.Client({ connectionString: server.url })
        admin.on("error", () => {})
        await admin.connect()
      }
      return await admin.query(text, values)
    } catch (e) {
      if (i >= 50) throw e
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

const encoder = new TextEncoder()

interface RunStats {
  readonly transportErrors: number
  readonly otherErrors: ReadonlyArray<string>
  readonly completed: number
}

/**
 * Creates `count` executions on `lane`, then runs `workers` claim → complete loops until every
 * execution is terminal, while `fault` runs once `faultAfter` completions happened. Retryable
 * errors are retried with a short real-time backoff; a lost lease drops the attempt (the
 * execution is reclaimed after its TTL by the lease-expiry pass).
 */
const runWorkload = (options: {
  readonly lane: M.ClaimArgs["lane"]
  readonly count: number
  readonly workers: number
  readonly faultAfter: number
  readonly fault: () => Promise<void>
}) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const m = yield* Maintenance
    const transport = yield* Ref.make(0)
    const others = yield* Ref.make<ReadonlyArray<string>>([])
    const completed = yield* Ref.make(0)
    const faultDone = yield* Ref.make(false)

    const note = (e: EngineError) =>
      e._tag === "Transport" && e.retryable ?
        Ref.update(transport, (n) => n + 1) :
        isRetryable(e) || isLeaseLost(e) ?
        Effect.void :
        Ref.update(others, (xs) => [...xs, `${e._tag}: ${e.message}`])

    /** Retries `effect` while it fails with a retryable error. */
    const retrying = <A>(effect: Effect.Effect<A, EngineError>): Effect.Effect<A, EngineError> =>
      Effect.catchAll(effect, (e) =>
        isRetryable(e) ?
          Effect.zipRight(note(e), Effect.zipRight(Effect.sleep(Duration.millis(50)), Effect.suspend(() => retrying(effect)))) :
          Effect.fail(e))

    const ids: Array<Ids.ExecutionId> = []
    for (let i = 0; i < options.count; i++) ids.push(yield* Ids.executionIdSolo(options.lane))
    yield* retrying(b.createExecutions(ids.map((executionId) => ({ executionId, namespace: NS, laneId: options.lane, executionKind: "k" }))))

    const allTerminal = Effect.map(
      Effect.forEach(ids, (id) => retrying(b.readExecutionState(id)), { concurrency: 4 }),
      (states) => states.every((s) => Option.isSome(s) && s.value === "completed")
    )

    const worker = (n: number) =>
      Effect.gen(function*() {
        const policy = { ...WORKER, workerInstanceId: Ids.unsafe.workerInstanceId(`w-${n}`) }
        for (;;) {
          const claimed = yield* Effect.either(retrying(b.claim({ lane: options.lane, capabilities: { tokens: [] }, policy })))
          if (Either.isLeft(claimed)) {
            yield* note(claimed.left)
            continue
          }
          if (Option.isNone(claimed.right)) {
            yield* Effect.ignore(retrying(m.expireLeases()))
            if (yield* allTerminal) return
            yield* Effect.sleep(Duration.millis(100))
            continue
          }
          const handle = claimed.right.value
          const id = decodeExecutionId(handle)
          const done = yield* Effect.either(retrying(b.complete(handle, { payload: encoder.encode(id) })))
          if (Either.isLeft(done)) {
            yield* note(done.left)
            continue
          }
          const total = yield* Ref.updateAndGet(completed, (x) => x + 1)
          if (total >= options.faultAfter && !(yield* Ref.getAndSet(faultDone, true))) {
            yield* Effect.promise(options.fault)
          }
        }
      })

    yield* Effect.all(Array.from({ length: options.workers }, (_, n) => worker(n)), { concurrency: "unbounded", discard: true })

    // every execution completed, with its own result
    for (const id of ids) {
      const result = yield* retrying(b.getExecutionResult(id))
      expect(Option.map(result, (r) => new TextDecoder().decode(r))).toEqual(Option.some(id))
    }
    return {
      transportErrors: yield* Ref.get(transport),
      otherErrors: yield* Ref.get(others),
      completed: yield* Ref.get(completed)
    } satisfies RunStats
  })

const decodeExecutionId = (h: M.Handle): string => {
  const bytes = Buffer.from(h.opaque)
  const len = bytes.readUInt32LE(3)
  return bytes.subarray(7, 7 + len).toString("utf8")
}

/** No execution of the lane was completed by two runs (its history holds every run that ended). */
const completedTwice = async (lane: string): Promise<number> => {
  const r = await adminQuery(
    `SELECT count(*)::int AS n FROM (SELECT h.execution_id FROM ${SCHEMA}.exec_history h
       JOIN ${SCHEMA}.exec_core e ON '{fp:' || e.partition_key || '}:' || e.e_uuid = h.execution_id
      WHERE e.lane_id = $1 AND h.outcome = 'completed' GROUP BY 1 HAVING count(*) > 1) x`,
    [lane]
  )
  return (r.rows[0] as { n: number }).n
}

describe("postgres faults", () => {
  it.live("terminating the pool's backends mid-run: retryable Transport errors, then everything completes once", () =>
    Effect.gen(function*() {
      const runtime = makeRuntime()
      const lane = Ids.unsafe.laneId("terminate")
      const kill = async () => {
        await adminQuery("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", [APP])
      }
      const stats = yield* Effect.promise(() =>
        runtime.runPromise(runWorkload({
          lane,
          count: 300,
          workers: 4,
          faultAfter: 60,
          fault: async () => {
            await kill()
            await new Promise((r) => setTimeout(r, 50))
            await kill()
          }
        }))
      )
      expect(stats.otherErrors).toEqual([])
      expect(stats.transportErrors).toBeGreaterThan(0)
      expect(yield* Effect.promise(() => completedTwice(lane))).toBe(0)
      yield* Effect.promise(() => runtime.dispose())
    }), 120_000)

  it.live("restarting the server mid-run: retryable Transport errors, then everything completes once", () =>
    Effect.gen(function*() {
      const runtime = makeRuntime()
      const lane = Ids.unsafe.laneId("restart")
      const stats = yield* Effect.promise(() =>
        runtime.runPromise(runWorkload({ lane, count: 300, workers: 4, faultAfter: 60, fault: () => server.restart() }))
      )
      expect(stats.otherErrors).toEqual([])
      expect(stats.transportErrors).toBeGreaterThan(0)
      expect(yield* Effect.promise(() => completedTwice(lane))).toBe(0)
      yield* Effect.promise(() => runtime.dispose())
    }), 120_000)

  it.live("a call while the server is down is a retryable Transport{backend: postgres}; it succeeds after the restart", () =>
    Effect.gen(function*() {
      const runtime = makeRuntime()
      const ping = runtime.runPromise(Effect.flatMap(EngineBackend, (b) => Effect.either(b.ping())))
      expect(Either.isRight(yield* Effect.promise(() => ping))).toBe(true)
      yield* Effect.promise(() => server.shutdown("fast"))
      const down = yield* Effect.promise(() => runtime.runPromise(Effect.flatMap(EngineBackend, (b) => Effect.either(b.ping()))))
      expect(Either.isLeft(down) && down.left).toMatchObject({ _tag: "Transport", backend: "postgres", retryable: true })
      yield* Effect.promise(() => server.start())
      const up = yield* Effect.promise(() =>
        runtime.runPromise(Effect.flatMap(EngineBackend, (b) =>
          Effect.retry(b.ping(), { while: isRetryable, times: 50, schedule: Schedule.spaced(Duration.millis(100)) }).pipe(
            Effect.either
          )))
      )
      expect(Either.isRight(up)).toBe(true)
      yield* Effect.promise(() => runtime.dispose())
    }), 120_000)
})
