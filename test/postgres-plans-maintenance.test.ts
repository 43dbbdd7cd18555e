// The maintenance passes, planned by a session while the tables were small, read only the rows
// they name once the tables have grown (docs/design/postgres.md, "The function library";
// docs/design/maintenance.md). A reconciler's session runs each pass (`ff_pass_*`) seven times
// while the schema holds a handful of executions with work due for every pass (a PL/pgSQL
// statement's generic plan is made at a session's sixth call), then another connection grows
// the tables (executions with an input kept in `exec_data`, leases, delays, deadlines,
// suspensions, waitpoints with a buffered signal, stream frames, idempotency keys, budgets with a
// reset, flows and flow cancellations owed) and the session runs every pass until it reports
// nothing more. The reads of that phase are the server's cumulative statistics
// (pg_stat_user_tables, pg_stat_user_indexes), so the figures do not depend on load: no grown
// table (more than 200 rows) is read sequentially, and the index entries read stay a few per
// item a pass processed.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import { Context, Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { flushStats, tableReads } from "./support/pgLibraryCalls.js"

const url = inject("pgUrl")
const schema = `ff_plans_passes_${process.pid}_${Date.now().toString(36)}`
const admin = new pg.Pool({ connectionString: url, max: 2 })
afterAll(async () => {
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)
  await admin.end()
})

const NS = Ids.unsafe.namespace("plans")
const HOUR = 3_600_000
const UNITS = 256
const hmacSecret = { kid: "k1", secretHex: Redacted.make("0123456789abcdef".repeat(4)) }
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-i"),
  leaseTtlMs: 60_000
}
/** An input past the size kept in the exec_core row: each execution has an exec_data row. */
const input = new TextEncoder().encode(JSON.stringify({ text: "x".repeat(200) }))

/** A backend on a pool of its own (closed with the scope: its lane_count rows become an ended process's). */
const backendLayer = PostgresBackend.layer({ schema, hmacSecret, cancelFlowInlineLimit: 1 }).pipe(
  Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
)

/**
 * Work due for every pass (once the clock is two days on), on a lane of its own: an expired lease
 * (its execution with a waitpoint pending for a week),
 * a suspension that times out (with a pending waitpoint, a buffered signal and two frames), a
 * completed execution (with frames and an idempotency key), a deadline, a delay, a budget with a
 * reset, a flow whose cancellation owes members and one whose edges stay unresolved.
 */
const unit = (b: EngineBackend.Service, i: number, round: string) =>
  Effect.gen(function*() {
    const lane = Ids.unsafe.laneId(`passes-${round}-${i}`)
    const create = (extra: { readonly delayUntil?: number; readonly executionDeadlineAt?: number; readonly idempotencyKey?: string } = {}) =>
      Effect.gen(function*() {
        const executionId = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k", inputPayload: input, ...extra })
        return executionId
      })
    const claim = Effect.map(b.claim({ lane, capabilities: { tokens: [] }, policy }), Option.getOrThrow)
    const now = Date.now()
    // a lease left to expire, with a waitpoint that expires in a week (a timer no pass takes)
    yield* create()
    yield* b.createWaitpoint(yield* claim, { waitpointKey: "late", expiresIn: Duration.days(7) })
    // a suspension with a timeout, a pending waitpoint with a buffered signal, frames
    const suspended = yield* create()
    const h = yield* claim
    for (let f = 0; f < 2; f++) yield* b.appendFrame(h, { bytes: new TextEncoder().encode(`frame ${f}`), kind: "stdout" })
    const pending = yield* b.createWaitpoint(h, { waitpointKey: "early", expiresIn: Duration.minutes(1) })
    yield* b.deliverSignal({
      executionId: suspended,
      waitpointId: pending.waitpointId,
      signalId: yield* Ids.newSignalId,
      signalName: "early",
      waitpointToken: pending.hmacToken
    })
    yield* b.suspend(h, {
      suspensionId: yield* Ids.newSuspensionId,
      waitpoints: [{ _tag: "Fresh", waitpointId: yield* Ids.newWaitpointId, waitpointKey: "k" }],
      resumeCondition: { _tag: "Single", waitpointKey: "k", matcher: { _tag: "Wildcard" } },
      timeoutAt: now + HOUR
    })
    // completed, with frames and an idempotency key
    yield* create({ idempotencyKey: `key-${round}-${i}` })
    const c = yield* claim
    yield* b.appendFrame(c, { bytes: new TextEncoder().encode("frame"), kind: "stdout" })
    yield* b.complete(c, { payload: input })
    // a deadline, a delay
    yield* create({ executionDeadlineAt: now + HOUR })
    yield* create({ delayUntil: now + HOUR })
    yield* b.createBudget({
      budgetId: yield* Ids.newBudgetId,
      scopeType: "lane",
      scopeId: lane,
      resetIntervalMs: 60_000,
      dimensions: ["tokens"],
      hardLimits: [100],
      softLimits: [50]
    })
    // two flows of three members (two upstreams of one downstream): one cancelled (its members
    // owed past the inline limit), one left with its edges unresolved
    for (const cancel of [true, false]) {
      const flowId = yield* Ids.newFlowId
      const ids = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId)]
      const edges = [0, 1].map((j) =>
        Effect.map(Ids.newEdgeId, (edgeId) => ({ edgeId, upstreamExecutionId: ids[j]!, downstreamExecutionId: ids[2]! }))
      )
      yield* b.createFlowGraph({
        flow: { flowId, namespace: NS, flowKind: "k" },
        members: ids.map((executionId) => ({ executionId, namespace: NS, laneId: Ids.unsafe.laneId(`flows-${round}`), executionKind: "k", inputPayload: input })),
        edges: yield* Effect.all(edges)
      })
      if (cancel) yield* b.cancelFlow({ flowId, policy: "CancelAll" })
    }
  })

/** `units` units of work created by a backend of its own, closed after. */
const populate = (units: number, round: string) =>
  Effect.scoped(Effect.gen(function*() {
    const b = Context.get(yield* Layer.build(backendLayer), EngineBackend)
    for (let i = 0; i < units; i++) yield* unit(b, i, round)
  }))

const passes: ReadonlyArray<readonly [string, string]> = [
  ["lease", `ff_pass_timers('lease', $1, $2)`],
  ["attempt_timeout", `ff_pass_timers('attempt_timeout', $1, $2)`],
  ["deadline", `ff_pass_timers('deadline', $1, $2)`],
  ["suspension", `ff_pass_timers('suspension', $1, $2)`],
  ["waitpoint", `ff_pass_timers('waitpoint', $1, $2)`],
  ["delay", `ff_pass_timers('delay', $1, $2)`],
  ["budget_reset", `ff_pass_timers('budget_reset', $1, $2)`],
  ["dependencies", `ff_pass_dependencies($1, $2)`],
  ["cancel_backlog", `ff_pass_cancel_backlog($1, $2)`],
  ["retention", `ff_pass_retention($1, $2)`]
]

/** Each pass, in sets of `batch`, until it reports nothing more; the items processed, by pass. */
const runPasses = async (client: pg.ClientBase, now: number, batch: number) => {
  const processed: Record<string, number> = {}
  for (const [name, call] of passes) {
    processed[name] = 0
    for (;;) {
      const r = await client.query<{ readonly r: { readonly ok: { readonly processed: number; readonly more: boolean } } }>(
        `SELECT "${schema}".${call} AS r`,
        [batch, now]
      )
      processed[name] += r.rows[0]!.r.ok.processed
      if (!r.rows[0]!.r.ok.more) break
    }
  }
  return processed
}

describe("postgres: maintenance passes planned on small tables", () => {
  it.live("each pass reads the grown tables by their indexes, a few entries per item", () =>
    Effect.gen(function*() {
      yield* Effect.scoped(Layer.build(backendLayer))
      yield* Effect.promise(async () => {
        const tables = await admin.query<{ readonly t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = $1`, [schema])
        for (const { t } of tables.rows) await admin.query(`ALTER TABLE "${schema}"."${t}" SET (autovacuum_enabled = false)`)
      })
      const client = new pg.Client({ connectionString: url })
      yield* Effect.promise(() => client.connect())
      yield* Effect.addFinalizer(() => Effect.promise(() => client.end()))
      // the session's first seven rounds of every pass, on a unit of work each, the tables analyzed small
      for (let round = 0; round < 7; round++) {
        yield* populate(1, `small${round}`)
        if (round === 0) {
          yield* Effect.promise(async () => {
            const tables = await admin.query<{ readonly t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = $1`, [schema])
            for (const { t } of tables.rows) await admin.query(`ANALYZE "${schema}"."${t}"`)
          })
        }
        const done = yield* Effect.promise(() => runPasses(client, Date.now() + 2 * 24 * HOUR, 100))
        if (round === 0) expect(done).toMatchObject({ lease: 1, deadline: 1, suspension: 1, waitpoint: 1, delay: 1, budget_reset: 1 })
      }
      yield* populate(UNITS, "grown")
      const result = yield* Effect.promise(async () => {
        await flushStats(client)
        const before = await tableReads(admin, schema)
        const processed = await runPasses(client, Date.now() + 2 * 24 * HOUR, 100)
        await flushStats(client)
        const after = await tableReads(admin, schema)
        const seqRead: Record<string, number> = {}
        const idxRead: Record<string, number> = {}
        for (const [table, a] of after) {
          const bf = before.get(table) ?? { rows: 0, seq: 0, idx: 0 }
          // (the events' trim reads a range of the table's blocks a pass by design: ffi_events_trim)
          if (table !== "event" && Math.max(a.rows, bf.rows) > 200 && a.seq > bf.seq) seqRead[table] = a.seq - bf.seq
          if (a.idx > bf.idx) idxRead[table] = a.idx - bf.idx
        }
        const grown = [...before].filter(([, a]) => a.rows > 200).map(([t]) => t).sort()
        return { processed, seqRead, idxRead, grown }
      })
      if (process.env["PLANS_PRINT"] !== undefined) console.log(JSON.stringify(result))
      expect(result.grown).toEqual(expect.arrayContaining(["exec_core", "exec_data", "timer", "waitpoint", "signal", "stream_frame"]))
      expect(result.seqRead).toEqual({})
      const items = Object.values(result.processed).reduce((x, y) => x + y, 0)
      const entries = Object.values(result.idxRead).reduce((x, y) => x + y, 0)
      expect(entries / items, JSON.stringify(result.idxRead)).toBeLessThan(25)
      expect(result.processed).toMatchObject({
        lease: UNITS,
        deadline: UNITS,
        suspension: UNITS,
        waitpoint: UNITS,
        delay: UNITS,
        budget_reset: UNITS,
        retention: UNITS
      })
      // each cancelled flow owes one member or two (the member cancelled at once is the first by id;
      // a downstream skipped when its upstream was cancelled is owed no more), all taken
      expect(result.processed["cancel_backlog"]).toBeGreaterThanOrEqual(UNITS)
    }).pipe(Effect.scoped), 600_000)
})
