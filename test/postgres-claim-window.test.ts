// What one claim reads on Postgres (docs/limits.md, "What one claim reads"): a claim limited to kinds
// reads no row of other kinds, one whose capabilities the waiting work lacks reads a bounded window,
// and work of a kind behind 10 000 rows of another is still claimed; a claim that brings its inputs
// looks them up by key. The rows a statement read are
// the transaction's own statistics (pg_stat_xact_user_tables), so the figures do not depend on load.
import { describe, expect, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Effect, Either, Layer, Option, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { testHmacSecret } from "./support/hmac.js"

const schema = `ff_claim_window_${process.pid}_${Date.now().toString(36)}`
const QUEUED = 10_000

const client = Layer.scopedDiscard(
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.addFinalizer(() => Effect.ignore(sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`))))
).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 2 })))

const live = PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client))

const ns = Ids.unsafe.namespace("window")
const policy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 30_000 }

/** Queues `n` executions of `kind` on `lane`, each needing `caps`. */
const queue = (lane: Ids.LaneId, n: number, kind: string, caps: ReadonlyArray<string> = []) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    for (let i = 0; i < n; i += 1_000) {
      const items = []
      for (let j = i; j < Math.min(n, i + 1_000); j++) {
        items.push({
          executionId: yield* Ids.executionIdSolo(lane),
          namespace: ns,
          laneId: lane,
          executionKind: kind,
          ...(caps.length === 0 ? {} : { policy: { routingRequirements: { requiredCapabilities: caps } } })
        })
      }
      const created = yield* b.createExecutions(items)
      expect(created.every((c) => c._tag === "Created")).toBe(true)
    }
  })

/** The rows of `exec_core` and `exec_data` read so far (heap fetches and sequential reads), as the session's statistics say. */
const reads = (sql: SqlClient.SqlClient) =>
  Effect.map(
    sql.unsafe<{ readonly relname: string; readonly n: string }>(
      `SELECT relname, (coalesce(idx_tup_fetch, 0) + coalesce(seq_tup_read, 0))::text AS n
         FROM pg_stat_xact_user_tables WHERE schemaname = $1 AND relname IN ('exec_core', 'exec_data')`,
      [schema]
    ),
    (stats) => {
      const read = (t: string) => Number(stats.find((s) => s.relname === t)?.n ?? "0")
      return { core: read("exec_core"), data: read("exec_data") }
    }
  )

/** The rows of `exec_core` one ff_claim call read (heap fetches and sequential reads), and its claims. */
const claimReads = (lane: Ids.LaneId, kinds: ReadonlyArray<string> | null) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const before = yield* reads(sql)
      const [r] = yield* sql.unsafe<{ readonly out: { readonly ok: { readonly handles: ReadonlyArray<unknown> } } }>(
        `SELECT "${schema}".ff_claim($1, '{}'::text[], $2::text[], 'w', 'w-i', 30000, 1, NULL) AS out`,
        [lane, kinds === null ? null : `{${kinds.join(",")}}`]
      )
      const after = yield* reads(sql)
      return {
        claimed: r!.out.ok.handles.length,
        core: after.core - before.core
      }
    })))

/** The rows one ff_complete_claim call (a claim of `limit` with the claimed inputs) read, and its claims and inputs. */
const claimWithInputsReads = (lane: Ids.LaneId, limit: number) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    sql.withTransaction(Effect.gen(function*() {
      const before = yield* reads(sql)
      const [r] = yield* sql.unsafe<{
        readonly out: { readonly ok: { readonly handles: ReadonlyArray<unknown>; readonly inputs: ReadonlyArray<unknown> } }
      }>(
        `SELECT "${schema}".ff_complete_claim('{}'::text[], '{}'::int[], '{}'::uuid[], '{}'::uuid[], '{}'::bigint[],
           '{}'::bytea[], $1, '{}'::text[], NULL, 'w', 'w-i', 30000, $2, 1000000, NULL) AS out`,
        [lane, limit]
      )
      const after = yield* reads(sql)
      return {
        claimed: r!.out.ok.handles.length,
        inputs: r!.out.ok.inputs.filter((i) => i !== null).length,
        core: after.core - before.core,
        data: after.data - before.data
      }
    })))

describe("postgres claim window", () => {
  layer(live, { timeout: 300_000, excludeTestServices: true })((it) => {
    it.effect(`a claim reads a bounded window, whatever waits ahead of its work (${QUEUED} rows)`, () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`window-kinds-${process.pid}`)
        yield* queue(lane, QUEUED, "a")
        yield* queue(lane, 1, "b")
        // no row of kind zz: nothing claimed, no row of kind a read
        const none = yield* claimReads(lane, ["zz"])
        expect(none.claimed).toBe(0)
        expect(none.core).toBeLessThan(100)
        // the execution of kind b behind 10 000 of kind a is claimed, reading about one row
        const one = yield* claimReads(lane, ["b"])
        expect(one.claimed).toBe(1)
        expect(one.core).toBeLessThan(100)
        // without kinds, the head is claimed
        expect(Option.isSome(yield* b.claim({ lane, capabilities: { tokens: [] }, policy }))).toBe(true)

        // 10 000 rows needing a capability this worker lacks: a window of them is read, not all
        const gpu = Ids.unsafe.laneId(`window-caps-${process.pid}`)
        yield* queue(gpu, QUEUED, "a", ["gpu"])
        const caps = yield* claimReads(gpu, null)
        expect(caps.claimed).toBe(0)
        expect(caps.core).toBeLessThan(400)
        const capsKinds = yield* claimReads(gpu, ["a"])
        expect(capsKinds.claimed).toBe(0)
        expect(capsKinds.core).toBeLessThan(400)
      }))

    it.effect("a claim without kinds takes the lane's claim order across its kinds, one window per kind (migration 0057)", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`window-merge-${process.pid}`)
        const create = (kind: string, priority: number) =>
          Effect.flatMap(Ids.executionIdSolo(lane), (executionId) =>
            Effect.as(
              b.createExecution({ executionId, namespace: ns, laneId: lane, executionKind: kind, policy: { priority } }),
              executionId
            ))
        // created in this order, a millisecond apart: claim order is priority, then creation time,
        // whatever the kind
        const order: Array<readonly [string, number]> = [["c", 0], ["a", 0], ["b", 5], ["a", 5], ["c", 9], ["b", 0]]
        const ids: Array<string> = []
        for (const [kind, priority] of order) {
          ids.push(yield* create(kind, priority))
          yield* Effect.sleep("2 millis")
        }
        const expected = [4, 2, 3, 0, 1, 5].map((i) => ids[i])
        const claimed: Array<string> = []
        for (let i = 0; i < ids.length; i++) {
          const h = yield* b.claim({ lane, capabilities: { tokens: [] }, policy })
          if (Option.isSome(h)) claimed.push(Either.getOrThrow(decodeHandle("postgres", h.value)).executionId)
        }
        expect(claimed).toEqual(expected)
        expect(Option.isNone(yield* b.claim({ lane, capabilities: { tokens: [] }, policy }))).toBe(true)

        // three kinds of 2 000 each: a claim without kinds reads a window of each, not the lane
        const many = Ids.unsafe.laneId(`window-many-${process.pid}`)
        for (const kind of ["x", "y", "z"]) yield* queue(many, 2_000, kind)
        const r = yield* claimReads(many, null)
        expect(r.claimed).toBe(1)
        expect(r.core).toBeLessThan(3 * 300)
      }))

    // (a table of a few thousand rows is where a hash join over whole tables looked cheaper to the planner)
    it.effect("a claim that brings its inputs reads the claimed executions' rows, not the tables", () =>
      Effect.gen(function*() {
        const lane = Ids.unsafe.laneId(`window-inputs-${process.pid}`)
        yield* queue(lane, 3_000, "a")
        yield* Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`ANALYZE "${schema}".exec_core, "${schema}".exec_data`))
        const r = yield* claimWithInputsReads(lane, 64)
        expect(r.claimed).toBe(64)
        expect(r.inputs).toBe(64)
        // the claim's own reads of exec_core and the inputs' look-ups by key: a few per claim
        expect(r.data).toBeLessThan(400)
        expect(r.core).toBeLessThan(1_000)
      }))
  })
})
