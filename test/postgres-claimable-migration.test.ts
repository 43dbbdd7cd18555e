// A store written before migration 0046 (claimable executions as rows of `ready`) migrates to the
// partial indexes of `exec_core`: its waiting, retried and reclaimable executions are claimed in the
// order their `ready` rows gave (priority, creation time, sequence), a claim naming kinds or
// capabilities takes what it took before, and what had no `ready` row (a delayed, a running
// execution) is not claimed.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Effect, Either, Layer, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { appliedVersion, LATEST_MIGRATION } from "../src/postgres/migrations/index.js"
import { testHmacSecret } from "./support/hmac.js"
import { storeAtMigration } from "./support/pgOldStore.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const schema = `ff_claimable_old_${tag}`
const lane = `old-lane-${tag}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

interface Row {
  readonly name: string
  readonly priority: number
  readonly createdAt: number
  readonly kind: string
  readonly caps?: ReadonlyArray<string>
  /** waiting (a first attempt), retry (a retry after its backoff), reclaim (an expired lease), delayed, running */
  readonly state: "waiting" | "retry" | "reclaim" | "delayed" | "running"
  /** the ready row's place in its queue (its seq), when it has one */
  readonly seq?: number
}

// ties of priority and creation time are unordered by the rules, so every queued row has its own
const rows: ReadonlyArray<Row> = [
  { name: "a-1000", priority: 0, createdAt: 1_000, kind: "a", state: "waiting", seq: 1 },
  { name: "b-2000-p5", priority: 5, createdAt: 2_000, kind: "b", state: "waiting", seq: 2 },
  // created first, queued again later (a retry): the creation time orders it, not the sequence
  { name: "a-500-retry", priority: 0, createdAt: 500, kind: "a", state: "retry", seq: 7 },
  { name: "a-1500-reclaim", priority: 0, createdAt: 1_500, kind: "a", state: "reclaim", seq: 4 },
  { name: "b-1200", priority: 0, createdAt: 1_200, kind: "b", state: "waiting", seq: 3 },
  { name: "gpu-p9", priority: 9, createdAt: 900, kind: "a", caps: ["gpu"], state: "waiting", seq: 5 },
  { name: "a-100-delayed", priority: 9, createdAt: 100, kind: "a", state: "delayed" },
  { name: "a-200-running", priority: 9, createdAt: 200, kind: "a", state: "running" }
]

const states = {
  waiting: ["runnable", "unowned", "eligible_now", "waiting_for_worker", "pending_first_attempt", "waiting"],
  retry: ["runnable", "unowned", "eligible_now", "waiting_for_worker", "pending_retry_attempt", "waiting"],
  reclaim: ["active", "lease_expired_reclaimable", "not_applicable", "waiting_for_worker", "attempt_interrupted", "active"],
  delayed: ["runnable", "unowned", "not_eligible_until_time", "waiting_for_delay", "pending_first_attempt", "delayed"],
  running: ["active", "leased", "not_applicable", "none", "running_attempt", "active"]
} as const

/** A schema at migration 0045 holding `rows` as the library of that layout left them. */
const oldStore = (ids: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* storeAtMigration(schema, 45, Effect.gen(function*() {
      for (const r of rows) {
        const id = ids.get(r.name)!
        const [phase, own, elig, blocking, attempt, pub] = states[r.state]
        const leased = r.state === "reclaim" || r.state === "running"
        yield* sql.unsafe(
          `INSERT INTO exec_core (execution_id, partition_key, lane_id, namespace, execution_kind, priority,
             required_caps, lifecycle_phase, ownership_state, eligibility_state, blocking_reason, attempt_state,
             public_state, created_at, last_transition_at, last_mutation_at, total_attempt_count,
             current_attempt_index, current_attempt_id, lease_epoch, lease_id, lease_expires_at, retry_count,
             delay_until)
           VALUES ($1, 0, $2, 'old', $3, $4, $5::text[], $6, $7, $8, $9, $10, $11, $12, $12, $12, $13, $14, $15, $16,
             $17, $18, $19, $20)`,
          [
            id, lane, r.kind, r.priority, r.caps === undefined ? null : `{${r.caps.join(",")}}`,
            phase, own, elig, blocking, attempt, pub, r.createdAt,
            r.state === "waiting" || r.state === "delayed" ? 0 : 1,
            leased ? 0 : null, leased ? randomUUID() : null, leased ? 1 : 0, leased ? randomUUID() : null,
            leased ? r.createdAt + 30_000 : null, r.state === "retry" ? 1 : 0,
            r.state === "delayed" ? 4_102_444_800_000 : null
          ]
        )
        yield* sql.unsafe(`INSERT INTO exec_data (execution_id, payload) VALUES ($1, '\\x7b7d')`, [id])
        if (r.seq !== undefined) {
          yield* sql.unsafe(
            `INSERT INTO ready (execution_id, lane_id, priority, created_at, seq, required_caps, execution_kind)
             OVERRIDING SYSTEM VALUE VALUES ($1, $2, $3, $4, $5, $6::text[], $7)`,
            [id, lane, r.priority, r.createdAt, r.seq, r.caps === undefined ? null : `{${r.caps.join(",")}}`, r.kind]
          )
        }
      }
    }))
    expect(yield* appliedVersion(schema)).toBe(45)
    // the claim order of that layout, as its claim read it: per kind, and without kinds or capabilities
    const order = (where: string) =>
      Effect.map(
        sql.unsafe<{ readonly id: string }>(
          `SELECT execution_id AS id FROM "${schema}".ready WHERE lane_id = $1 AND ${where}
           ORDER BY priority DESC, created_at, seq`,
          [lane]
        ),
        (found) => found.map((r) => r.id)
      )
    return {
      kindA: yield* order("execution_kind = 'a' AND required_caps IS NULL"),
      any: yield* order("required_caps IS NULL"),
      gpu: yield* order("required_caps <@ '{gpu}'")
    }
  })

describe("postgres migration 0046: the claimable executions of an old store", () => {
  layer(client, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("waiting and reclaimable executions of a store at 0045 are claimed in the order of their ready rows", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const ids = new Map(rows.map((r) => [r.name, `{fp:0}:${randomUUID()}`]))
        const before = yield* oldStore(ids)
        const names = new Map([...ids].map(([n, id]) => [id, n]))
        const named = (list: ReadonlyArray<string>) => list.map((id) => names.get(id))
        expect(named(before.kindA)).toEqual(["a-500-retry", "a-1000", "a-1500-reclaim"])

        const claimed = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const policy = {
            workerId: Ids.unsafe.workerId("w"),
            workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
            leaseTtlMs: 30_000
          }
          const laneId = Ids.unsafe.laneId(lane)
          const claim = (kinds: ReadonlyArray<string> | undefined, tokens: ReadonlyArray<string>) =>
            Effect.map(
              b.claimMany({ lane: laneId, capabilities: { tokens }, policy, ...(kinds === undefined ? {} : { kinds }) }, 10),
              (hs) => hs.map((h) => Either.getOrThrow(decodeHandle("postgres", h)).executionId as string)
            )
          const kindA = yield* claim(["a"], [])
          const any = yield* claim(undefined, [])
          const gpu = yield* claim(undefined, ["gpu"])
          const none = yield* claim(undefined, ["gpu"])
          return { kindA, any, gpu, none }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema })))

        expect(yield* appliedVersion(schema)).toBe(LATEST_MIGRATION)
        expect(claimed.kindA).toEqual(before.kindA)
        // what was left of the lane without kinds or capabilities, in the same order
        expect(claimed.any).toEqual(before.any.filter((id) => !before.kindA.includes(id)))
        expect(named(claimed.any)).toEqual(["b-2000-p5", "b-1200"])
        expect(named(claimed.gpu)).toEqual(["gpu-p9"])
        expect(claimed.none).toEqual([])
        // the reclaimed execution started a new attempt; the delayed and the running ones are untouched
        const [reclaimed] = yield* sql.unsafe<{ readonly n: number; readonly k: string | null }>(
          `SELECT total_attempt_count AS n, run_kind AS k FROM "${schema}".exec_core
           WHERE '{fp:' || partition_key || '}:' || e_uuid = $1`,
          [ids.get("a-1500-reclaim")!]
        )
        expect(reclaimed).toEqual({ n: 2, k: "reclaim" })
        const untouched = yield* sql.unsafe<{ readonly s: string }>(
          `SELECT public_state::text AS s FROM "${schema}".exec_core
           WHERE '{fp:' || partition_key || '}:' || e_uuid IN ($1, $2) ORDER BY created_at`,
          [ids.get("a-100-delayed")!, ids.get("a-200-running")!]
        )
        expect(untouched.map((r) => r.s)).toEqual(["delayed", "active"])
        const ready = yield* sql.unsafe<{ readonly t: string | null }>(`SELECT to_regclass($1)::text AS t`, [
          `"${schema}".ready`
        ])
        expect(ready[0]!.t).toBeNull()
      }))
  })
})
