// The ExecutionCreated of an execution that nothing has changed since its creating transaction is
// read from its exec_core row, not stored (migration 0058): a waiting execution has no event row and
// no index entry of the event log. Its first change writes it at the position it was read at, so an
// offset read before stays valid; the lane's reads find it through exec_core_created_by_lane, whose
// columns a completion never changes: the completion stays a HOT update.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Layer, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Events from "../src/Events.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { testHmacSecret } from "./support/hmac.js"

const schema = `ff_created_derived_${process.pid}_${Date.now().toString(36)}`

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })))

const live = PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client))

const ns = Ids.unsafe.namespace("derived")
const policy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 60_000 }

const uuidOf = (id: string) => id.slice(id.indexOf("}") + 2)

/** The event rows stored for the executions, by kind. */
const storedKinds = (ids: ReadonlyArray<string>) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.unsafe<{ readonly kind: string; readonly n: number }>(
      `SELECT kind::text, count(*)::int AS n FROM "${schema}".event WHERE e_uuid = ANY ($1::uuid[]) GROUP BY 1 ORDER BY 1`,
      [ids.map(uuidOf)]
    ))

const executionEvents = (id: Ids.ExecutionId, after?: M.EventOffset) =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.readEvents({ filter: Events.execution(id), ...(after === undefined ? {} : { after }) }), (p) => p.events))

describe("postgres: the created event read from the exec_core row (migration 0058)", () => {
  layer(live, { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("waiting: no event row, read from the row; the first change writes it at the same position", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        const lane = Ids.unsafe.laneId(`derived-${process.pid}`)
        const single = yield* Ids.executionIdSolo(lane)
        const batch: Array<Ids.ExecutionId> = []
        for (let i = 0; i < 5; i++) batch.push(yield* Ids.executionIdSolo(lane))
        yield* b.createExecution({ executionId: single, namespace: ns, laneId: lane, executionKind: "k" })
        yield* b.createExecutions(batch.map((executionId) => ({ executionId, namespace: ns, laneId: lane, executionKind: "k" })))
        const all = [single, ...batch]

        // nothing in the event log; the rows hold the created k, no event_k
        expect(yield* storedKinds(all)).toEqual([])
        const rows = yield* sql.unsafe<{ readonly ck: boolean; readonly ek: boolean }>(
          `SELECT created_k IS NOT NULL AS ck, event_k IS NOT NULL AS ek FROM "${schema}".exec_core WHERE e_uuid = ANY ($1::uuid[])`,
          [all.map(uuidOf)]
        )
        expect(rows).toEqual(all.map(() => ({ ck: true, ek: false })))

        // read: one ExecutionCreated each, in the execution's and in the lane's reads, a negative id
        const before = yield* Effect.forEach(all, (id) => executionEvents(id))
        expect(before.map((es) => es.map((e) => e._tag))).toEqual(all.map(() => ["ExecutionCreated"]))
        expect(before.every(([e]) => /^\d+\.-\d+$/.test(e!.offset))).toBe(true)
        const lanePage = yield* b.readEvents({ filter: Events.lane(lane), limit: 100 })
        expect(new Set(lanePage.events.map((e) => ("executionId" in e ? e.executionId : "")))).toEqual(new Set(all))
        expect(lanePage.events.map((e) => e.offset).sort()).toEqual(before.map(([e]) => e!.offset).sort())
        // a page of 2 after the first: no event skipped or repeated
        const first = yield* b.readEvents({ filter: Events.lane(lane), limit: 2 })
        const rest = yield* b.readEvents({ filter: Events.lane(lane), after: first.next, limit: 100 })
        expect([...first.events, ...rest.events].map((e) => e.offset)).toEqual(lanePage.events.map((e) => e.offset))

        // claimed (the claim's own statement) and cancelled (the update trigger): each created event
        // written once, at the offset it was read at, before the change's own
        const handles = yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 3)
        expect(handles.length).toBe(3)
        const claimed = new Set(handles.map((h) => {
          const bytes = Buffer.from(h.opaque)
          return bytes.subarray(7, 7 + bytes.readUInt32LE(3)).toString("utf8")
        }))
        const rest3 = all.filter((id) => !claimed.has(id))
        yield* Effect.forEach(rest3.slice(0, 2), (executionId) => b.cancelExecution({ executionId, reason: "x" }))
        expect(yield* storedKinds(all)).toEqual([
          { kind: "Cancelled", n: 2 },
          { kind: "Claimed", n: 3 },
          { kind: "ExecutionCreated", n: 5 }
        ])
        const after = yield* Effect.forEach(all, (id) => executionEvents(id))
        for (const [i, id] of all.entries()) {
          expect(after[i]![0]!.offset).toBe(before[i]![0]!.offset)
          expect(after[i]!.map((e) => e._tag)).toEqual(
            claimed.has(id) ? ["ExecutionCreated", "Claimed"] : rest3.indexOf(id) < 2 ? ["ExecutionCreated", "Cancelled"] : ["ExecutionCreated"]
          )
          // from the created event's offset: what follows it only
          expect((yield* executionEvents(id, before[i]![0]!.offset)).map((e) => e._tag)).toEqual(after[i]!.slice(1).map((e) => e._tag))
        }
        // the lane, resumed from where the first read ended: the changes only, no created event again
        const later = yield* b.readEvents({ filter: Events.lane(lane), after: lanePage.next, limit: 100 })
        expect(later.events.map((e) => e._tag).sort()).toEqual(["Cancelled", "Cancelled", "Claimed", "Claimed", "Claimed"])
      }))

    it.effect("a completion stays a HOT update (the created event's index keys no column it changes)", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        yield* Effect.ignore(sql.unsafe(`CREATE EXTENSION IF NOT EXISTS pg_walinspect`))
        const lane = Ids.unsafe.laneId(`derived-hot-${process.pid}`)
        const ids: Array<Ids.ExecutionId> = []
        // (few: the claimed and the completed versions of all of them fit on one page)
        for (let i = 0; i < 4; i++) ids.push(yield* Ids.executionIdSolo(lane))
        yield* b.createExecutions(ids.map((executionId) => ({ executionId, namespace: ns, laneId: lane, executionKind: "k" })))
        const handles = yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 4)
        expect(handles.length).toBe(4)
        const lsn = () =>
          Effect.zipRight(
            sql.unsafe(`CHECKPOINT`),
            Effect.map(sql.unsafe<{ readonly lsn: string }>(`SELECT pg_current_wal_flush_lsn()::text AS lsn`), (rows) => rows[0]!.lsn)
          )
        const from = yield* lsn()
        const outcomes = yield* b.completeMany(handles.map((handle) => ({ handle })))
        expect(outcomes.every(Either.isRight)).toBe(true)
        const to = yield* lsn()
        const [node] = yield* sql.unsafe<{ readonly node: string }>(
          `SELECT pg_relation_filenode('"${schema}".exec_core')::text AS node`
        )
        const records = yield* sql.unsafe<{ readonly type: string; readonly n: string }>(
          `SELECT record_type AS type, count(*)::text AS n FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
             WHERE resource_manager = 'Heap' AND block_ref ~ ('rel [0-9]+/[0-9]+/' || $3 || ' ') GROUP BY 1 ORDER BY 1`,
          [from, to, node!.node]
        )
        const n = (type: string) => Number(records.find((r) => r.type === type)?.n ?? 0)
        expect(n("HOT_UPDATE")).toBe(4)
        expect(n("UPDATE")).toBe(0)
      }))
  })
})
