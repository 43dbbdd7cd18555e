// The event log on Postgres (docs/design/events.md): an event is written by the transaction of
// its change, so a rolled-back change leaves none and an uncommitted one is not read; a reader
// never passes an event that a running transaction may still commit before it; and an
// execution's events keep the order of its changes even when a transaction with an older id
// changes it after a younger one did. The changes written here by hand set last_mutation_at, as
// every change of the library does: it is the event's time (NULL until a row's first change).
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Events from "../src/Events.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import { startPostgres } from "./support/servers.js"

const schema = `ff_events_${process.pid}_${Date.now().toString(36)}`

/**
 * A server of this file's own: its tests hold transactions open, and a transaction held open
 * holds back every lane and flow read of the whole server (docs/design/events.md), so sharing
 * the run's server would stall the other files' event reads.
 */
class Server extends Context.Tag("test/PostgresEventsServer")<Server, { readonly url: string }>() {}
const server = Layer.scoped(
  Server,
  Effect.acquireRelease(Effect.promise(() => startPostgres()), (s) => Effect.promise(() => s.stop()))
)

const client = Layer.unwrapEffect(
  Effect.map(Server, ({ url }) => PgClient.layer({ url: Redacted.make(url), maxConnections: 4 }))
).pipe(Layer.provideMerge(server))

const live = PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client))

/** A connection of its own, for a transaction the test holds open. */
const session = Effect.acquireRelease(
  Effect.flatMap(Server, ({ url }) =>
    Effect.promise(async () => {
      const c = new pg.Client({ connectionString: url })
      await c.connect()
      await c.query(`SET search_path TO "${schema}"`)
      return c
    })),
  (c) => Effect.promise(() => c.end())
)
const query = (c: pg.Client, text: string, values: Array<unknown> = []) => Effect.promise(() => c.query(text, values))

const ns = Ids.unsafe.namespace("events")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-i"),
  leaseTtlMs: 60_000
}

const tagsOf = (id: Ids.ExecutionId) =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.readEvents({ filter: Events.execution(id) }), (p) => p.events.map((e: M.EngineEvent) => e._tag)))

describe("postgres events", () => {
  layer(live, { timeout: 60_000, excludeTestServices: true })((it) => {
    it.scoped("a change rolled back leaves no event; an uncommitted one is not read, a committed one is", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`ev-rollback-${process.pid}`)
        const id = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId: id, namespace: ns, laneId: lane, executionKind: "k" })
        const c = yield* session
        yield* query(c, "BEGIN")
        yield* query(
          c,
          `UPDATE exec_core SET lifecycle_phase = 'terminal', terminal_outcome = 'cancelled', public_state = 'cancelled',
             blocking_reason = 'none', cancellation_reason = 'test', last_mutation_at = created_at + 1,
             event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL
           WHERE ('{fp:' || partition_key || '}:' || e_uuid) = $1`,
          [id]
        )
        const inside = yield* query(c, "SELECT kind FROM event WHERE ffi_eid(e_part, e_uuid) = $1 ORDER BY id", [id])
        expect(inside.rows.map((r) => r.kind)).toEqual(["ExecutionCreated", "Cancelled"])
        expect(yield* tagsOf(id)).toEqual(["ExecutionCreated"])
        yield* query(c, "ROLLBACK")
        expect(yield* tagsOf(id)).toEqual(["ExecutionCreated"])
        // nothing stored: the created event is read from the row, which the rollback left unchanged
        const rows = yield* query(c, "SELECT count(*)::int AS n FROM event WHERE ffi_eid(e_part, e_uuid) = $1", [id])
        expect(rows.rows[0].n).toBe(0)

        yield* query(c, "BEGIN")
        yield* query(
          c,
          `UPDATE exec_core SET public_state = 'cancelled', last_mutation_at = created_at + 1,
             event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL
           WHERE ('{fp:' || partition_key || '}:' || e_uuid) = $1`,
          [id]
        )
        expect(yield* tagsOf(id)).toEqual(["ExecutionCreated"])
        yield* query(c, "COMMIT")
        expect(yield* tagsOf(id)).toEqual(["ExecutionCreated", "Cancelled"])
      }))

    it.scoped("an older transaction that changes an execution after a younger one: read after it, in order", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`ev-order-${process.pid}`)
        const id = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId: id, namespace: ns, laneId: lane, executionKind: "k" })
        const { next: start } = yield* b.readEvents({ filter: Events.lane(lane), after: "latest" })
        // the older transaction takes its id first, and holds it open
        const c = yield* session
        yield* query(c, "BEGIN")
        const xid = yield* query(c, "SELECT pg_current_xact_id()::text AS x")
        // a younger one claims the execution and commits
        const h = yield* b.claim({ lane, capabilities: { tokens: [] }, policy })
        expect(Option.isSome(h)).toBe(true)
        // not readable on the lane while the older transaction may still commit an event before it
        expect((yield* b.readEvents({ filter: Events.lane(lane), after: start })).events).toEqual([])
        // the execution's own read has it at once: every writer of its events holds its row, so
        // the older transaction's change, if any, comes after the end this read gives
        const own = yield* b.readEvents({ filter: Events.execution(id) })
        expect(own.events.map((e) => e._tag)).toEqual(["ExecutionCreated", "Claimed"])
        // the older transaction changes the same execution, then commits
        yield* query(
          c,
          `UPDATE exec_core SET lifecycle_phase = 'terminal', ownership_state = 'unowned', terminal_outcome = 'cancelled',
             public_state = 'cancelled', cancellation_reason = 'late' WHERE ('{fp:' || partition_key || '}:' || e_uuid) = $1`,
          [id]
        )
        const written = yield* query(c, "SELECT k::text FROM event WHERE ffi_eid(e_part, e_uuid) = $1 AND kind = 'Cancelled'", [id])
        expect(BigInt(written.rows[0].k)).toBeGreaterThan(BigInt(xid.rows[0].x))
        yield* query(c, "COMMIT")
        expect(yield* tagsOf(id)).toEqual(["ExecutionCreated", "Claimed", "Cancelled"])
        const after = yield* b.readEvents({ filter: Events.execution(id), after: own.next })
        expect(after.events.map((e) => e._tag)).toEqual(["Cancelled"])
        const resumed = yield* b.readEvents({ filter: Events.lane(lane), after: start })
        expect(resumed.events.map((e) => e._tag)).toEqual(["Claimed", "Cancelled"])
      }))

    it.scoped("one statement changing several executions: an event for each changed one, a change by the creating transaction folded", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`ev-statement-${process.pid}`)
        const a = yield* Ids.executionIdSolo(lane)
        const u = yield* Ids.executionIdSolo(lane)
        const n = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId: a, namespace: ns, laneId: lane, executionKind: "k" })
        yield* b.createExecution({ executionId: u, namespace: ns, laneId: lane, executionKind: "k" })
        const c = yield* session
        yield* query(c, "BEGIN")
        // a third execution created by this transaction (a copy of the first row under another id; its
        // created event read from the row, as the library's creates leave it: migration 0058)
        yield* query(
          c,
          `INSERT INTO exec_core SELECT (jsonb_populate_record(e, jsonb_build_object('partition_key', substr($2, 5, strpos($2, '}') - 5),
             'e_uuid', substr($2, strpos($2, '}') + 2), 'event_k', NULL, 'created_k', pg_current_xact_id()::text::bigint))).*
           FROM exec_core e WHERE ('{fp:' || partition_key || '}:' || e_uuid) = $1`,
          [a, n]
        )
        // one statement: the first and the new one cancelled, the second only touched
        yield* query(
          c,
          `UPDATE exec_core SET lifecycle_phase = CASE WHEN ('{fp:' || partition_key || '}:' || e_uuid) = $2 THEN lifecycle_phase ELSE 'terminal' END,
             terminal_outcome = CASE WHEN ('{fp:' || partition_key || '}:' || e_uuid) = $2 THEN terminal_outcome ELSE 'cancelled' END,
             public_state = CASE WHEN ('{fp:' || partition_key || '}:' || e_uuid) = $2 THEN public_state ELSE 'cancelled' END,
             blocking_reason = CASE WHEN ('{fp:' || partition_key || '}:' || e_uuid) = $2 THEN blocking_reason ELSE 'none' END,
             cancellation_reason = 'batch', last_mutation_at = coalesce(last_mutation_at, created_at) + 1,
             event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL
           WHERE ('{fp:' || partition_key || '}:' || e_uuid) = ANY ($1::text[])`,
          [[a, u, n], u]
        )
        yield* query(c, "COMMIT")
        const page = (id: Ids.ExecutionId) =>
          Effect.map(b.readEvents({ filter: Events.execution(id) }), (p) => p.events as ReadonlyArray<M.EngineEvent>)
        const ofA = yield* page(a)
        expect(ofA.map((e) => e._tag)).toEqual(["ExecutionCreated", "Cancelled"])
        expect(ofA[1]).toMatchObject({ _tag: "Cancelled", reason: "batch" })
        expect(yield* tagsOf(u)).toEqual(["ExecutionCreated"])
        const ofN = yield* page(n)
        expect(ofN.map((e) => e._tag)).toEqual(["ExecutionCreated"])
        expect(ofN[0]).toMatchObject({ _tag: "ExecutionCreated", publicState: "cancelled" })
      }))

    it.scoped("two progress reports within the same millisecond write two Progress events", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`ev-progress-${process.pid}`)
        const id = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId: id, namespace: ns, laneId: lane, executionKind: "k" })
        expect(Option.isSome(yield* b.claim({ lane, capabilities: { tokens: [] }, policy }))).toBe(true)
        const c = yield* session
        const report = (pct: number, msg: string) =>
          query(
            c,
            `SELECT ff_progress('{fp:' || e.partition_key || '}:' || e.e_uuid, e.current_attempt_index, e.current_attempt_id, e.lease_id, e.lease_epoch,
               $2, $3, e.lease_acquired_at + 1) AS r FROM exec_core e WHERE '{fp:' || e.partition_key || '}:' || e.e_uuid = $1`,
            [id, pct, msg]
          )
        expect((yield* report(10, "a")).rows[0].r).toEqual({ ok: null })
        expect((yield* report(20, "b")).rows[0].r).toEqual({ ok: null })
        const events = (yield* b.readEvents({ filter: Events.execution(id) })).events as ReadonlyArray<M.EngineEvent>
        expect(events.map((e) => e._tag)).toEqual(["ExecutionCreated", "Claimed", "Progress", "Progress"])
        expect(events.slice(2)).toMatchObject([{ percent: 10, message: "a" }, { percent: 20, message: "b" }])
        expect(events[2]!.at).toBe(events[3]!.at)
      }))
    it.scoped("the trim sweeps the heap a block range at a time: every expired event goes, the fresh stay", () =>
      Effect.gen(function*() {
        const c = yield* session
        const lane = `ev-trim-${process.pid}`
        const now = Date.now()
        // 3 000 events, every third one past the retention, spread over some 50 blocks
        yield* query(
          c,
          `INSERT INTO event (k, at, lane_id, kind)
           SELECT 1, CASE WHEN g % 3 = 0 THEN $2::bigint - 3600001 ELSE $2::bigint END, $1, 'ExecutionCreated'
           FROM generate_series(1, 3000) g`,
          [lane, now]
        )
        const newestOld = (yield* query(c, "SELECT max(id)::text AS id FROM event WHERE lane_id = $1 AND at < $2", [lane, now]))
          .rows[0].id
        // no index reads event by id: the trim sweeps the heap
        const byId = yield* query(
          c,
          `SELECT count(*)::int AS n FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
           WHERE i.indrelid = 'event'::regclass AND a.attname = 'id'`
        )
        expect(byId.rows[0].n).toBe(0)
        const blocks = (yield* query(c, "SELECT (pg_relation_size('event') / 8192)::int AS b")).rows[0].b as number
        const trim = () => query(c, "SELECT ffi_events_trim($1, 200, 3600000, 1000000) AS n", [now])
        const nextBlock = () =>
          Effect.map(query(c, "SELECT next_block::int AS b FROM event_trim"), (r) => r.rows[0].b as number)
        let deleted = 0
        let from = yield* nextBlock()
        if (from >= blocks) from = 0
        // 200 wanted: 8 blocks a call; a whole sweep of the heap from where the last one stopped
        for (let i = 0; i < Math.ceil(blocks / 8) + 1; i++) {
          deleted += (yield* trim()).rows[0].n as number
          const to = yield* nextBlock()
          expect(to).toBe(from + 8)
          from = to >= blocks ? 0 : to
        }
        expect(deleted).toBeGreaterThanOrEqual(1000)
        const left = yield* query(
          c,
          "SELECT count(*) FILTER (WHERE at < $2)::int AS old, count(*)::int AS n FROM event WHERE lane_id = $1",
          [lane, now]
        )
        expect(left.rows[0]).toEqual({ old: 0, n: 2000 })
        // a read after a position before the newest deleted fails expired
        const pos = yield* query(c, "SELECT (k, id) >= (1, $1::bigint) AS moved FROM event_trim", [newestOld])
        expect(pos.rows[0].moved).toBe(true)
        yield* query(c, "DELETE FROM event WHERE lane_id = $1", [lane])
      }))
  })
})
