// A waiting execution's exec_core row holds no value that only says "not yet" (migration 0051): the
// counts and the lease epoch are NULL for 0, the reclaim and replay limits NULL for their defaults,
// last_mutation_at NULL until the first change after the create, has_grant and an empty
// blocking_detail NULL, and last_transition_at is gone. The reads, the claim, the completion and a
// replay read them as before (retries and reclaims: the conformance suite); a store written at
// migration 0050 (zeros, defaults and times stored) is read, claimed, completed and replayed after it.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Effect, Either, Layer, Option, Redacted, Schema } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle, makeHandle } from "../src/internal/handleCodec.js"
import * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { appliedVersion, LATEST_MIGRATION } from "../src/postgres/migrations/index.js"
import { testHmacSecret } from "./support/hmac.js"
import { storeAtMigration } from "./support/pgOldStore.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const freshSchema = `ff_narrow_${tag}`
const oldSchema = `ff_narrow_old_${tag}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() =>
      Effect.ignore(Effect.forEach([freshSchema, oldSchema], (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)))
    ))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

const NS = Ids.unsafe.namespace("narrow")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
  leaseTtlMs: 30_000
}
const bytes = (s: string) => new TextEncoder().encode(s)

interface Stored {
  readonly retry: number | null
  readonly replay: number | null
  readonly reclaim: number | null
  readonly attempts: number | null
  readonly epoch: string | null
  readonly mutated: string | null
  readonly max_reclaim: number | null
  readonly max_replay: number | null
  readonly grant: boolean | null
  readonly detail: string | null
  readonly size: number
}

/** The row's counts, limits, epoch and last change, and its size (bytes of the row version). */
const storedOf = (schema: string, id: string) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql.unsafe<Stored>(
      `SELECT retry_count AS retry, replay_count AS replay, lease_reclaim_count AS reclaim,
         total_attempt_count AS attempts, lease_epoch::text AS epoch, last_mutation_at::text AS mutated,
         max_reclaim_count AS max_reclaim, max_replay_count AS max_replay, has_grant AS grant,
         blocking_detail AS detail, pg_column_size(e.*) AS size
       FROM "${schema}".exec_core e WHERE e_uuid = $1`,
      [id.slice(id.indexOf("}") + 2)]
    )
    return rows[0]
  })

const NOT_YET = { retry: null, replay: null, reclaim: null, attempts: null, epoch: null, mutated: null, grant: null, detail: null }

describe("postgres: a waiting exec_core row without its not-yet values (migration 0051)", () => {
  layer(client, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("created, claimed, completed and replayed: NULL until a value counts, the reads unchanged", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const laneId = Ids.unsafe.laneId(`narrow-${tag}`)
        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const one = Ids.deterministicExecutionIdSolo(laneId, randomUUID())
          const limited = Ids.deterministicExecutionIdSolo(laneId, randomUUID())
          const batch = Ids.deterministicExecutionIdSolo(laneId, randomUUID())
          yield* b.createExecution({ executionId: one, namespace: NS, laneId, executionKind: "k", inputPayload: bytes("{}") })
          yield* b.createExecution({
            executionId: limited, namespace: NS, laneId, executionKind: "k", inputPayload: bytes("{}"),
            policy: { maxReplayCount: 1, maxReclaimCount: 7 }
          })
          yield* b.createExecutions([{ executionId: batch, namespace: NS, laneId, executionKind: "k", inputPayload: bytes("{}") }])
          const waiting = {
            one: yield* storedOf(freshSchema, one),
            limited: yield* storedOf(freshSchema, limited),
            batch: yield* storedOf(freshSchema, batch)
          }
          const described = Option.getOrThrow(yield* b.describeExecution(one))
          const handles = yield* b.claimMany({ lane: laneId, capabilities: { tokens: [] }, policy }, 10)
          const epochs = handles.map((h) => Either.getOrThrow(decodeHandle("postgres", h)).leaseEpoch)
          const claimed = yield* storedOf(freshSchema, one)
          yield* Effect.forEach(handles, (h) => b.complete(h, {}))
          const completed = yield* storedOf(freshSchema, one)
          const afterRun = Option.getOrThrow(yield* b.describeExecution(one))
          // the replay limits: the default (10) for one, 1 for limited
          const replayOne = yield* b.replayExecution(one)
          const replayLimited = yield* b.replayExecution(limited)
          const second = yield* b.claimMany({ lane: laneId, capabilities: { tokens: [] }, policy }, 10)
          yield* Effect.forEach(second, (h) => b.complete(h, {}))
          const again = yield* Effect.either(b.replayExecution(limited))
          return {
            waiting, described, epochs, claimed, completed, afterRun, replayOne, replayLimited, again,
            replayed: yield* storedOf(freshSchema, one)
          }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: freshSchema })))

        const columns = yield* sql.unsafe<{ readonly n: number }>(
          `SELECT count(*)::int AS n FROM information_schema.columns
           WHERE table_schema = $1 AND table_name = 'exec_core' AND column_name = 'last_transition_at'`,
          [freshSchema]
        )
        expect(columns).toEqual([{ n: 0 }])
        expect(out.waiting.one).toMatchObject({ ...NOT_YET, max_reclaim: null, max_replay: null })
        expect(out.waiting.batch).toMatchObject({ ...NOT_YET, max_reclaim: null, max_replay: null })
        expect(out.waiting.limited).toMatchObject({ ...NOT_YET, max_reclaim: 7, max_replay: 1 })
        // about 135 bytes with these names and input; 58 more before 0051
        expect(out.waiting.one!.size).toBeLessThanOrEqual(142)
        expect(out.described.lastMutationAt).toBe(out.described.createdAt)
        expect(out.described.totalAttemptCount).toBe(0)
        expect(out.epochs).toEqual([1, 1, 1])
        expect(out.claimed).toMatchObject({ retry: null, replay: null, reclaim: null, attempts: 1, epoch: "1", grant: false })
        expect(out.claimed!.mutated).not.toBeNull()
        expect(out.completed).toMatchObject({ attempts: 1, epoch: "1" })
        expect(out.afterRun.totalAttemptCount).toBe(1)
        expect(out.afterRun.lastMutationAt).toBeGreaterThanOrEqual(out.afterRun.createdAt)
        expect(out.replayOne._tag).toBe("Replayed")
        expect(out.replayLimited._tag).toBe("Replayed")
        expect(Either.isLeft(out.again) && out.again.left).toMatchObject({ _tag: "State", kind: "MaxReplaysExhausted" })
        // replayed, claimed and completed again: its second attempt under the second lease
        expect(out.replayed).toMatchObject({ replay: 1, attempts: 2, epoch: "2", max_replay: null })
      }))

    it.effect("a store at 0050 (zeros, defaults and times stored): read, claimed, completed and replayed after 0051", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const lane = `old-narrow-${tag}`
        const ids = { waiting: `{fp:1}:${randomUUID()}`, running: `{fp:2}:${randomUUID()}` }
        const attempt = randomUUID()
        const lease = randomUUID()
        yield* storeAtMigration(oldSchema, 50, Effect.gen(function*() {
          const row = (id: string, s: readonly [string, string, string, string, string, string, string], ran: boolean) =>
            sql.unsafe(
              `INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority,
                 lifecycle_phase, ownership_state, eligibility_state, blocking_reason, terminal_outcome, attempt_state,
                 public_state, created_at, last_transition_at, last_mutation_at, total_attempt_count,
                 current_attempt_index, current_attempt_id, lease_epoch, lease_id, lease_expires_at,
                 worker_id, worker_instance_id, lease_acquired_at, payload, payload_encoding)
               VALUES ($1, $2, $3, 'old', 'k', 0, $4, $5, $6, $7, $8, $9, $10, 1000, 1000, 1000, $11, $12, $13, $14, $15,
                 $16, $17, $17, $18, convert_to('{}', 'UTF8'), 'json')`,
              [
                id.slice(id.indexOf("}") + 2), Number(id.slice(4, id.indexOf("}"))), lane, ...s,
                ran ? 1 : 0, ran ? 0 : null, ran ? attempt : null, ran ? 1 : 0, ran ? lease : null,
                ran ? 4_102_444_800_000 : null, ran ? "w" : null, ran ? 1001 : null
              ]
            )
          yield* row(ids.waiting, ["runnable", "unowned", "eligible_now", "waiting_for_worker", "none", "pending_first_attempt", "waiting"], false)
          yield* row(ids.running, ["active", "leased", "not_applicable", "none", "none", "running_attempt", "active"], true)
        }))
        expect(yield* appliedVersion(oldSchema)).toBe(50)

        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const laneId = Ids.unsafe.laneId(lane)
          const before = Option.getOrThrow(yield* b.describeExecution(ids.waiting as Ids.ExecutionId))
          const handles = yield* b.claimMany({ lane: laneId, capabilities: { tokens: [] }, policy }, 10)
          const claimed = handles.map((h) => Either.getOrThrow(decodeHandle("postgres", h)))
          yield* Effect.forEach(handles, (h) => b.complete(h, {}))
          const running = makeHandle("postgres", "fresh", Schema.decodeUnknownSync(M.HandlePayload)({
            executionId: ids.running, attemptIndex: 0, attemptId: attempt, leaseId: lease, leaseEpoch: 1,
            leaseTtlMs: 30_000, laneId: lane, workerInstanceId: "w"
          }))
          yield* b.complete(running, {})
          const replayed = yield* b.replayExecution(ids.running as Ids.ExecutionId)
          const again = yield* b.claimMany({ lane: laneId, capabilities: { tokens: [] }, policy }, 10)
          const reclaimed = again.map((h) => Either.getOrThrow(decodeHandle("postgres", h)))
          const states = yield* Effect.forEach(Object.values(ids), (id) => b.readExecutionState(id as Ids.ExecutionId))
          return { before, claimed, replayed, reclaimed, states }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: oldSchema })))

        expect(yield* appliedVersion(oldSchema)).toBe(LATEST_MIGRATION)
        expect(out.before.lastMutationAt).toBe(1000)
        expect(out.before.totalAttemptCount).toBe(0)
        expect(out.claimed.map((h) => [h.executionId, h.attemptIndex, h.leaseEpoch])).toEqual([[ids.waiting, 0, 1]])
        expect(out.replayed._tag).toBe("Replayed")
        // the replayed execution's next attempt and lease follow the stored ones
        expect(out.reclaimed.map((h) => [h.executionId, h.attemptIndex, h.leaseEpoch])).toEqual([[ids.running, 1, 2]])
        expect(out.states.map(Option.getOrNull)).toEqual(["completed", "active"])
        expect(yield* storedOf(oldSchema, ids.running)).toMatchObject({ replay: 1, attempts: 2, epoch: "2" })
      }))
  })
})
