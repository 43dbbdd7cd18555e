// A store written before migration 0047 (`exec_core` keyed by the id's text) migrates to the key
// (partition_key, e_uuid): its executions in every state are read, listed (by partition in id order,
// by lane with ties in id order across partitions), claimed, completed and cancelled by id, two
// executions of one uuid under two partitions among them; the timers of a set (an array of ids
// before, uuids and partitions after) are taken by the lease and retention passes.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Effect, Either, Layer, Option, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import { Maintenance } from "../src/Maintenance.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { appliedVersion, LATEST_MIGRATION } from "../src/postgres/migrations/index.js"
import { testHmacSecret } from "./support/hmac.js"
import { storeAtMigration } from "./support/pgOldStore.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const schema = `ff_uuid_old_${tag}`
const lane = `old-lane-${tag}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

type State = "waiting" | "reclaim" | "delayed" | "running" | "completed"

interface Row {
  readonly name: string
  readonly partition: number
  readonly state: State
  readonly createdAt: number
}

const states: Record<State, readonly [string, string, string, string, string, string, string]> = {
  waiting: ["runnable", "unowned", "eligible_now", "waiting_for_worker", "none", "pending_first_attempt", "waiting"],
  reclaim: [
    "active", "lease_expired_reclaimable", "not_applicable", "waiting_for_worker", "none", "attempt_interrupted", "active"
  ],
  delayed: [
    "runnable", "unowned", "not_eligible_until_time", "waiting_for_delay", "none", "pending_first_attempt", "delayed"
  ],
  running: ["active", "leased", "not_applicable", "none", "none", "running_attempt", "active"],
  completed: ["terminal", "unowned", "not_applicable", "none", "success", "attempt_terminal", "completed"]
}

// the four waiting executions share a millisecond: the lane lists them in id order, where
// {fp:10}:… comes before {fp:1}:…, and the two of one uuid apart only by their partitions
const rows: ReadonlyArray<Row> = [
  { name: "w1-shared", partition: 1, state: "waiting", createdAt: 1_000 },
  { name: "w10-shared", partition: 10, state: "waiting", createdAt: 1_000 },
  { name: "w2", partition: 2, state: "waiting", createdAt: 1_000 },
  { name: "w1", partition: 1, state: "waiting", createdAt: 1_000 },
  { name: "reclaim", partition: 3, state: "reclaim", createdAt: 1_500 },
  { name: "delayed", partition: 1, state: "delayed", createdAt: 2_000 },
  { name: "running", partition: 10, state: "running", createdAt: 2_500 },
  { name: "completed", partition: 2, state: "completed", createdAt: 500 }
]

/** A schema at migration 0046 holding `rows` as the library of that layout left them. */
const oldStore = (ids: ReadonlyMap<string, string>) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* storeAtMigration(schema, 46, Effect.gen(function*() {
      for (const r of rows) {
        const id = ids.get(r.name)!
        const [phase, own, elig, blocking, outcome, attempt, pub] = states[r.state]
        const leased = r.state === "reclaim" || r.state === "running"
        const ran = leased || r.state === "completed"
        yield* sql.unsafe(
          `INSERT INTO exec_core (execution_id, partition_key, lane_id, namespace, execution_kind, priority,
             lifecycle_phase, ownership_state, eligibility_state, blocking_reason, terminal_outcome, attempt_state,
             public_state, created_at, last_transition_at, last_mutation_at, total_attempt_count,
             current_attempt_index, current_attempt_id, lease_epoch, lease_id, lease_expires_at, delay_until,
             completed_at, worker_id, worker_instance_id, lease_acquired_at)
           VALUES ($1, $2, $3, 'old', 'k', 0, $4, $5, $6, $7, $8, $9, $10, $11, $11, $11, $12, $13, $14, $15, $16,
             $17, $18, $19, $20, $20, $21)`,
          [
            id, r.partition, lane, phase, own, elig, blocking, outcome, attempt, pub, r.createdAt,
            ran ? 1 : 0, ran ? 0 : null, ran ? randomUUID() : null, ran ? 1 : 0,
            leased ? randomUUID() : null,
            r.state === "reclaim" ? r.createdAt + 30_000 : r.state === "running" ? 4_102_444_800_000 : null,
            r.state === "delayed" ? 4_102_444_800_000 : null,
            r.state === "completed" ? r.createdAt + 10 : null,
            leased || r.state === "completed" ? "w-old" : null,
            ran ? r.createdAt + 1 : null
          ]
        )
        yield* sql.unsafe(
          `INSERT INTO exec_data (execution_id, payload, result) VALUES ($1, '\\x7b7d', $2::bytea)`,
          [id, r.state === "completed" ? "\\x6f6b" : null]
        )
      }
      // a claim's lease timer of a set and a completion's retention timer of a set, both due
      yield* sql.unsafe(
        `INSERT INTO timer (kind, ref, due_at, refs) VALUES
           ('lease', '#' || gen_random_uuid(), 0, ARRAY[$1, $2]), ('retention', '#' || gen_random_uuid(), 0, ARRAY[$3])`,
        [ids.get("running")!, ids.get("w10-shared")!, ids.get("completed")!]
      )
    }))
    expect(yield* appliedVersion(schema)).toBe(46)
  })

describe("postgres migration 0047: exec_core keyed by partition and uuid, an old store", () => {
  layer(client, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("executions of every state of a store at 0046 are read, listed, claimed, completed and cancelled", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const shared = randomUUID()
        const ids = new Map(rows.map((r) => [
          r.name,
          `{fp:${r.partition}}:${r.name.endsWith("-shared") ? shared : randomUUID()}`
        ]))
        yield* oldStore(ids)
        const id = (name: string) => ids.get(name)! as Ids.ExecutionId
        const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const laneId = Ids.unsafe.laneId(lane)
          const before = yield* Effect.forEach(rows, (r) => b.readExecutionState(id(r.name)))
          const result = yield* b.getExecutionResult(id("completed"))
          const partition1 = yield* b.listExecutions({ partition: Ids.partitionKey("Flow", 1), limit: 1 })
          const partition1Rest = yield* b.listExecutions({
            partition: Ids.partitionKey("Flow", 1),
            cursor: partition1.nextCursor!,
            limit: 10
          })
          const oldest = yield* b.listLaneExecutions({ laneId, order: "oldest", limit: 100 })
          const newest = yield* b.listLaneExecutions({ laneId, limit: 3 })
          const newestRest = yield* b.listLaneExecutions({ laneId, limit: 100, cursor: newest.nextCursor! })
          const policy = {
            workerId: Ids.unsafe.workerId("w"),
            workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
            leaseTtlMs: 30_000
          }
          // the set's lease timer: the running execution's lease is renewed (a timer of its own), the
          // waiting one is passed over; the set's retention timer deletes the completed execution
          const m = yield* Maintenance
          const leases = yield* m.expireLeases()
          const [ownLease] = yield* sql.unsafe<{ readonly n: number }>(
            `SELECT count(*)::int AS n FROM "${schema}".timer WHERE kind = 'lease' AND ref = $1`, [ids.get("running")!])
          const retention = yield* m.trimRetention()
          const handles = yield* b.claimMany({ lane: laneId, capabilities: { tokens: [] }, policy }, 10)
          const claimed = handles.map((h) => Either.getOrThrow(decodeHandle("postgres", h)).executionId as string)
          yield* Effect.forEach(handles, (h) => b.complete(h))
          yield* b.cancelExecution({ executionId: id("running"), reason: "migrated" })
          const after = yield* Effect.forEach(rows, (r) => b.readExecutionState(id(r.name)))
          return { before, result, partition1, partition1Rest, oldest, newest, newestRest, leases, ownLease, retention, claimed, after }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema })))

        expect(yield* appliedVersion(schema)).toBe(LATEST_MIGRATION)
        expect(out.before.map(Option.getOrNull)).toEqual([
          "waiting", "waiting", "waiting", "waiting", "active", "delayed", "active", "completed"
        ])
        expect(Option.map(out.result, (r) => Buffer.from(r).toString())).toEqual(Option.some("ok"))
        // a partition's executions in id order, with the cursor
        const inPartition1 = ["w1-shared", "w1", "delayed"].map((n) => ids.get(n)!).sort(byString)
        expect([...out.partition1.executions, ...out.partition1Rest.executions]).toEqual(inPartition1)
        expect(out.partition1.nextCursor).toBe(inPartition1[0])
        // the lane by creation time, ties by id in string order
        const byAge = [...rows].sort((a, b) => a.createdAt - b.createdAt || byString(ids.get(a.name)!, ids.get(b.name)!))
          .map((r) => ids.get(r.name)!)
        expect(out.oldest.executions.map((e) => e.executionId)).toEqual(byAge)
        expect([...out.newest.executions, ...out.newestRest.executions].map((e) => e.executionId)).toEqual(
          [...byAge].reverse()
        )
        expect(byAge.indexOf(ids.get("w10-shared")!)).toBeLessThan(byAge.indexOf(ids.get("w1-shared")!))
        // every claimable execution was claimed (the reclaimed one as a new attempt), then completed
        expect([...out.claimed].sort()).toEqual(["w1-shared", "w10-shared", "w2", "w1", "reclaim"].map((n) => ids.get(n)!).sort())
        expect(out.leases).toMatchObject({ processed: 0, more: false })
        expect(out.ownLease).toEqual({ n: 1 })
        expect(out.retention).toMatchObject({ processed: 1, more: false })
        expect(out.after.map(Option.getOrNull)).toEqual([
          "completed", "completed", "completed", "completed", "completed", "delayed", "cancelled", null
        ])
        const sets = yield* sql.unsafe<{ readonly n: number }>(
          `SELECT count(*)::int AS n FROM "${schema}".timer WHERE refs IS NOT NULL AND due_at = 0`)
        expect(sets).toEqual([{ n: 0 }])
        // the rows keep their partitions and uuids, the two of one uuid apart
        const twoPartitions = yield* sql.unsafe<{ readonly p: number }>(
          `SELECT partition_key AS p FROM "${schema}".exec_core WHERE e_uuid = $1 ORDER BY 1`,
          [ids.get("w1-shared")!.slice("{fp:1}:".length)]
        )
        expect(twoPartitions.map((r) => r.p)).toEqual([1, 10])
        const [reclaimed] = yield* sql.unsafe<{ readonly n: number; readonly k: string | null }>(
          `SELECT total_attempt_count AS n, run_kind AS k FROM "${schema}".exec_core
           WHERE partition_key = 3 AND e_uuid = $1`,
          [ids.get("reclaim")!.slice("{fp:3}:".length)]
        )
        expect(reclaimed).toEqual({ n: 2, k: "reclaim" })
      }))
  })
})
