// The lane indexes key the lane and the time only (migration 0054): `exec_core_by_lane (lane_id,
// created_at)`, `event_by_lane (lane_id, k)`, `event_by_flow (flow_id, k)`, so that the executions of
// one millisecond and the events of one transaction share an index entry (B-tree deduplication).
// The lane queries and the lane and flow event reads order the rows of one millisecond (one k)
// themselves: pages of any size list every execution and event once, in the order they did (creation
// time, then the id's text order; k, then id), on a fresh store and on one written before 0054.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Effect, Layer, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Events from "../src/Events.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { appliedVersion, LATEST_MIGRATION } from "../src/postgres/migrations/index.js"
import { testHmacSecret } from "./support/hmac.js"
import { libraryItem, tableReads } from "./support/pgLibraryCalls.js"
import { storeAtMigration } from "./support/pgOldStore.js"

const tag = `${process.pid}_${Date.now().toString(36)}`
const freshSchema = `ff_lanededup_${tag}`
const oldSchema = `ff_lanededup_old_${tag}`
const planSchema = `ff_lanededup_plan_${tag}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() =>
      Effect.ignore(Effect.forEach([freshSchema, oldSchema, planSchema], (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)))
    ))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

const NS = Ids.unsafe.namespace("lanededup")

/** Every execution of a lane, page by page of `limit`, in `order`. */
const listAll = (laneId: Ids.LaneId, order: "oldest" | "newest", limit: number) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const out: Array<M.LaneExecutionEntry> = []
    let cursor: string | undefined = undefined
    for (let i = 0; i < 10_000; i++) {
      const page: M.ListLaneExecutionsPage = yield* b.listLaneExecutions({ laneId, order, limit, cursor })
      out.push(...page.executions)
      if (page.nextCursor === undefined) break
      cursor = page.nextCursor
    }
    return out
  })

/** Every event of a filter, page by page of `limit`, from the earliest. */
const readAll = (filter: M.EventFilter, limit: number) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const out: Array<M.EngineEvent> = []
    let after: M.EventStart = "earliest"
    for (let i = 0; i < 10_000; i++) {
      const page: M.EventPage = yield* b.readEvents({ filter, after, limit })
      out.push(...page.events)
      if (page.events.length === 0) break
      after = page.next
    }
    return out
  })

/** The execution an event names (none for a flow's own event). */
const executionOf = (e: M.EngineEvent) => ("executionId" in e ? e.executionId : undefined)

/** The ids in the lane order: creation time, then the id's text order. */
const laneOrder = (entries: ReadonlyArray<M.LaneExecutionEntry>) =>
  [...entries].sort((a, b) => a.createdAt - b.createdAt || (a.executionId < b.executionId ? -1 : 1)).map((e) => e.executionId)

const sizeOf = (schema: string, index: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly n: string }>(`SELECT pg_relation_size($1::regclass)::text AS n`, [`"${schema}".${index}`])
  ).pipe(Effect.map((r) => Number(r[0]!.n)))

describe("postgres: lane indexes keyed by lane and time, deduplicated (migration 0054)", () => {
  layer(client, { timeout: 180_000, excludeTestServices: true })((it) => {
    it.effect("a batch's executions and events share lane index entries; pages list them all once, in order", () =>
      Effect.gen(function*() {
        const laneId = Ids.unsafe.laneId(`dedup-${tag}`)
        const out = yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          const created: Array<Ids.ExecutionId> = []
          // 4 batches of 1 000 (each one millisecond, one transaction), ids over several partitions
          for (let batch = 0; batch < 4; batch++) {
            const items = Array.from({ length: 1000 }, (_, i) => ({
              executionId: `{fp:${(batch * 7 + i) % 13}}:${randomUUID()}` as Ids.ExecutionId,
              namespace: NS,
              laneId,
              executionKind: "k"
            }))
            yield* b.createExecutions(items)
            created.push(...items.map((x) => x.executionId))
          }
          const oldest = yield* listAll(laneId, "oldest", 37)
          const newest = yield* listAll(laneId, "newest", 41)
          const events = yield* readAll(Events.lane(laneId), 53)
          return { created, oldest, newest, events }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: freshSchema })))

        expect(out.oldest).toHaveLength(4000)
        expect(out.oldest.map((e) => e.executionId)).toEqual(laneOrder(out.oldest))
        expect(new Set(out.oldest.map((e) => e.executionId))).toEqual(new Set(out.created))
        expect(out.newest.map((e) => e.executionId)).toEqual(laneOrder(out.oldest).reverse())
        // the lane's events: each creation once, batch after batch (one k a batch); within a batch in
        // the order of their ids, which for created events read from their rows (migration 0058) are
        // computed from the execution, not the order of the items
        expect(out.events.map((e) => e._tag)).toEqual(out.created.map(() => "ExecutionCreated"))
        for (let batch = 0; batch < 4; batch++) {
          const slice = (xs: ReadonlyArray<string | undefined>) => xs.slice(batch * 1000, (batch + 1) * 1000)
          expect(new Set(slice(out.events.map(executionOf)))).toEqual(new Set(slice(out.created)))
        }
        // 4 000 executions and events: about 8 bytes each in the lane indexes (one entry a batch);
        // 75 and 46 bytes when each entry keyed its row (before 0054)
        expect((yield* sizeOf(freshSchema, "exec_core_by_lane")) / 4000).toBeLessThan(24)
        expect((yield* sizeOf(freshSchema, "event_by_lane")) / 4000).toBeLessThan(24)
        expect((yield* sizeOf(freshSchema, "exec_core_created_by_lane")) / 4000).toBeLessThan(24)
      }))

    it.effect("a store at 0053 (one millisecond's executions, one k's events in a heap order unlike id order): read the same after 0054", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const lane = `old-dedup-${tag}`
        const flowId = randomUUID()
        // text order of the ids: {fp:10} < {fp:1} < {fp:2} (a digit before '}')
        const ids = [`{fp:10}:${randomUUID()}`, `{fp:1}:${randomUUID()}`, `{fp:2}:${randomUUID()}`]
        const uuidOf = (id: string) => id.slice(id.indexOf("}") + 2)
        const partOf = (id: string) => Number(id.slice(4, id.indexOf("}")))
        yield* storeAtMigration(oldSchema, 53, Effect.gen(function*() {
          // inserted in reverse: the heap order is not the lane order
          for (const id of [...ids].reverse()) {
            yield* sql.unsafe(
              `INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority,
                 lifecycle_phase, ownership_state, eligibility_state, blocking_reason, terminal_outcome, attempt_state,
                 public_state, created_at, payload, payload_encoding, event_k)
               VALUES ($1, $2, $3, 'old', 'k', 0, 'runnable', 'unowned', 'eligible_now', 'waiting_for_worker', 'none',
                 'pending_first_attempt', 'waiting', 1000, convert_to('{}', 'UTF8'), 'json', 5)`,
              [uuidOf(id), partOf(id), lane]
            )
          }
          // their ExecutionCreated, one k (5), ids 3, 2, 1 in heap order; in the flow as well
          for (const [i, id] of [...ids.entries()].reverse()) {
            yield* sql.unsafe(
              `INSERT INTO event (id, k, at, e_part, e_uuid, lane_id, flow_id, kind, s1) OVERRIDING SYSTEM VALUE
               VALUES ($1, 5, 1000, $2, $3, $4, $5, 'ExecutionCreated', 'waiting')`,
              [i + 1, partOf(id), uuidOf(id), lane, flowId]
            )
          }
          yield* sql.unsafe(`SELECT setval(pg_get_serial_sequence('event', 'id'), 3)`)
        }))
        expect(yield* appliedVersion(oldSchema)).toBe(53)

        const out = yield* Effect.gen(function*() {
          const laneId = Ids.unsafe.laneId(lane)
          return {
            oldest: (yield* listAll(laneId, "oldest", 1)).map((e) => e.executionId),
            newest: (yield* listAll(laneId, "newest", 2)).map((e) => e.executionId),
            lane: (yield* readAll(Events.lane(laneId), 1)).map(executionOf),
            flow: (yield* readAll(Events.flow(flowId as Ids.FlowId), 2)).map(executionOf)
          }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: oldSchema })))

        expect(yield* appliedVersion(oldSchema)).toBe(LATEST_MIGRATION)
        expect(out.oldest).toEqual(ids)
        expect(out.newest).toEqual([...ids].reverse())
        expect(out.lane).toEqual(ids)
        expect(out.flow).toEqual(ids)
      }))

    it.effect("planned while the lane was small, a page and an event read sort one millisecond's (one k's) rows, never the lane's", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const lane = `plan-${tag}`
        const laneId = Ids.unsafe.laneId(lane)
        // the schema, with three executions, analyzed
        yield* Effect.gen(function*() {
          const b = yield* EngineBackend
          for (let i = 0; i < 3; i++) {
            yield* b.createExecution({ executionId: Ids.deterministicExecutionIdSolo(laneId, randomUUID()), namespace: NS, laneId, executionKind: "k" })
          }
        }).pipe(Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: planSchema })))
        yield* sql.unsafe(`ANALYZE "${planSchema}".exec_core, "${planSchema}".event`)
        const url = inject("pgUrl")
        const reads = yield* Effect.promise(async () => {
          const session = new pg.Client({ connectionString: url })
          const other = new pg.Client({ connectionString: url })
          await session.connect()
          await other.connect()
          try {
            const calls = async () => {
              await session.query(`SELECT "${planSchema}".ff_list_lane_executions($1, NULL, NULL, true, 9000000000000000, '', 10, 11, 0)`, [lane])
              await session.query(`SELECT "${planSchema}".ff_list_lane_executions($1, NULL, NULL, false, -1, '', 10, 11, 0)`, [lane])
              await session.query(`SELECT "${planSchema}".ff_read_events('l', $1, NULL, NULL, 10, 0)`, [lane])
            }
            // seven calls: the session's generic plans are made on the small table
            for (let i = 0; i < 7; i++) await calls()
            // the lane grows by four batches of 1 000, each one millisecond and one transaction
            for (let batch = 0; batch < 4; batch++) {
              const items = Array.from({ length: 1000 }, () => libraryItem(`{fp:${batch}}:${randomUUID()}`, batch, lane, "lanededup"))
              await other.query(`SELECT "${planSchema}".ff_create_executions($1, NULL)`, [JSON.stringify(items)])
            }
            await other.query("SELECT pg_stat_force_next_flush()")
            await session.query("SELECT pg_stat_force_next_flush()")
            const before = await tableReads(other, planSchema)
            for (let i = 0; i < 10; i++) await calls()
            await session.query("SELECT pg_stat_force_next_flush()")
            await other.query("SELECT 1")
            const after = await tableReads(other, planSchema)
            const delta = (t: string) => ({
              seq: after.get(t)!.seq - before.get(t)!.seq,
              idx: after.get(t)!.idx - before.get(t)!.idx
            })
            return { exec_core: delta("exec_core"), event: delta("event") }
          } finally {
            await session.end()
            await other.end()
          }
        })
        // each call reads one batch (1 000 rows of one millisecond, one k) and the bound's entries,
        // never the lane's 4 003 (two pages and one event read a round, ten rounds)
        expect(reads.exec_core.seq).toBe(0)
        expect(reads.event.seq).toBe(0)
        expect(reads.exec_core.idx / 20).toBeLessThan(2500)
        expect(reads.event.idx / 10).toBeLessThan(2500)
      }))
  })
})
