// The flow, signal and read entry points, planned by a session while the tables were small, read
// only the rows they name once the tables have grown (docs/design/postgres.md, "The function
// library"). Each test runs an area's calls through the backend on a pool of one connection (one
// session): first seven times while `exec_core` holds a handful of rows, analyzed (a PL/pgSQL
// statement's generic plan is made at a session's sixth call, or at its first under
// force_generic_plan), then the tables grow by another connection (4 096 executions, 256 flow
// graphs of three members and two edges) and the same session runs the calls ten times more. The
// reads of that phase are the server's cumulative statistics (pg_stat_user_tables), so the
// figures do not depend on load: no grown table (more than 200 rows) is read sequentially, and
// the index entries read stay a few per call.
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { randomUUID } from "node:crypto"
import { Context, Duration, Effect, Layer, Option, Redacted } from "effect"
import pg from "pg"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { libraryItem, tableReads } from "./support/pgLibraryCalls.js"

const url = inject("pgUrl")
const admin = new pg.Pool({ connectionString: url, max: 2 })
const schemas: Array<string> = []
afterAll(async () => {
  for (const s of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)
  await admin.end()
})

const NS = Ids.unsafe.namespace("plans")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-i"),
  leaseTtlMs: 60_000
}

/** The tables grown by another connection: 4 096 executions on lane "bulk", 256 flows of three members and two edges. */
const grow = async (schema: string) => {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    await growOn(client, schema)
    // its statistics (the rows it inserted) visible to the other sessions
    await client.query("SELECT pg_stat_force_next_flush()")
    await client.query("SELECT 1")
  } finally {
    await client.end()
  }
}

const growOn = async (admin: pg.ClientBase, schema: string) => {
  for (let i = 0; i < 64; i++) {
    const items = Array.from({ length: 64 }, () => libraryItem(`{fp:${i}}:${randomUUID()}`, i, "bulk", "plans"))
    await admin.query(`SELECT "${schema}".ff_create_executions($1, NULL)`, [JSON.stringify(items)])
  }
  for (let i = 0; i < 256; i++) {
    const flowId = randomUUID() as Ids.FlowId
    const partition = Ids.flowPartition(flowId)
    const ids = [0, 1, 2].map(() => `{fp:${partition}}:${randomUUID()}`)
    const edges = [0, 1].map((j) => ({ edgeId: randomUUID(), upstream: ids[j], downstream: ids[2], kind: "success_only", dataRef: "" }))
    const r = await admin.query<{ readonly r: { readonly ok?: unknown } }>(
      `SELECT "${schema}".ff_create_flow_graph($1, $2, 'k', 'plans', $3, $4, '[]', true, NULL) AS r`,
      [flowId, partition, JSON.stringify(ids.map((id) => libraryItem(id, partition, "bulk-flows", "plans"))), JSON.stringify(edges)]
    )
    expect(r.rows[0]!.r.ok).toBeDefined()
  }
}

/**
 * The tables of signals, streams and budgets grown by a backend on a pool of its own: 256
 * executions each with two frames, a pending waitpoint with a buffered signal and a suspension on
 * a waitpoint of its own; 512 budgets of two dimensions, each with usage reported twice (a dedup
 * key each).
 */
const growMore = (schema: string) =>
  Effect.scoped(Effect.gen(function*() {
    const ctx = yield* Layer.build(
      PostgresBackend.layer({ schema, hmacSecret: { kid: "k1", secretHex: Redacted.make("0123456789abcdef".repeat(4)) } }).pipe(
        Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 1 }))
      )
    )
    const b = Context.get(ctx, EngineBackend)
    const lane = Ids.unsafe.laneId("bulk-signals")
    for (let i = 0; i < 256; i++) {
      const executionId = yield* Ids.executionIdSolo(lane)
      yield* b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k" })
      const h = yield* claimOne(b, lane)
      for (let f = 0; f < 2; f++) yield* b.appendFrame(h, { bytes: new TextEncoder().encode(`frame ${f}`), kind: "stdout" })
      const pending = yield* b.createWaitpoint(h, { waitpointKey: "early", expiresIn: Duration.hours(1) })
      yield* b.deliverSignal({
        executionId,
        waitpointId: pending.waitpointId,
        signalId: yield* Ids.newSignalId,
        signalName: "early",
        waitpointToken: pending.hmacToken
      })
      yield* b.suspend(h, {
        suspensionId: yield* Ids.newSuspensionId,
        waitpoints: [{ _tag: "Fresh", waitpointId: yield* Ids.newWaitpointId, waitpointKey: "k" }],
        resumeCondition: { _tag: "Single", waitpointKey: "k", matcher: { _tag: "Wildcard" } }
      })
    }
    for (let i = 0; i < 512; i++) {
      const budgetId = yield* Ids.newBudgetId
      yield* b.createBudget({
        budgetId,
        scopeType: "lane",
        scopeId: `bulk-${i}`,
        resetIntervalMs: 3_600_000,
        dimensions: ["tokens", "calls"],
        hardLimits: [1_000, 100],
        softLimits: [500, 50]
      })
      for (let j = 0; j < 2; j++) {
        yield* b.reportUsageAdmin({ budgetId, dimensions: ["tokens", "calls"], deltas: [10, 1], dedupKey: `d${j}` })
      }
    }
  }))

const analyzeAll = async (schema: string) => {
  const tables = await admin.query<{ readonly t: string }>(`SELECT tablename AS t FROM pg_tables WHERE schemaname = $1`, [schema])
  for (const { t } of tables.rows) await admin.query(`ANALYZE "${schema}"."${t}"`)
}

/**
 * Runs `calls` (one round of an area's calls) seven times on a session that planned them on small
 * tables, grows the tables, runs it ten times more, and answers the grown tables (more than 200
 * rows) read sequentially in that phase, and the index entries read, by table and a round.
 */
const measure = (name: string, calls: (b: EngineBackend.Service, round: number) => Effect.Effect<void, unknown>) =>
  Effect.gen(function*() {
    const schema = `ff_plans_${name}_${process.pid}_${Date.now().toString(36)}`
    schemas.push(schema)
    const ctx = yield* Layer.build(
      PostgresBackend.layer({ schema, hmacSecret: { kid: "k1", secretHex: Redacted.make("0123456789abcdef".repeat(4)) } }).pipe(
        Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 1, idleTimeout: "1 hour" }))
      )
    )
    const b = Context.get(ctx, EngineBackend)
    const sql = Context.get(ctx, SqlClient.SqlClient)
    // makes the session's statistics visible to the other sessions (its next transaction flushes them)
    const flush = Effect.gen(function*() {
      yield* sql`SELECT pg_stat_force_next_flush()`
      yield* sql`SELECT 1`
    })
    const session = yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`
    yield* Effect.promise(async () => {
      const tables = await admin.query<{ readonly t: string }>(
        `SELECT tablename AS t FROM pg_tables WHERE schemaname = $1`,
        [schema]
      )
      for (const { t } of tables.rows) {
        await admin.query(`ALTER TABLE "${schema}"."${t}" SET (autovacuum_enabled = false)`)
      }
    })
    // one execution, analyzed, then the session's first seven rounds
    const laneId = Ids.unsafe.laneId("plans")
    yield* b.createExecution({ executionId: yield* Ids.executionIdSolo(laneId), namespace: NS, laneId, executionKind: "k" })
    yield* Effect.promise(() => admin.query(`ANALYZE "${schema}".exec_core`))
    for (let i = 0; i < 7; i++) {
      yield* calls(b, i)
      // every table analyzed while it holds the first round's rows (the plans of the next rounds
      // are made on those statistics)
      if (i === 0) yield* Effect.promise(() => analyzeAll(schema))
    }
    yield* Effect.promise(() => grow(schema))
    yield* growMore(schema)
    yield* flush
    const before = yield* Effect.promise(() => tableReads(admin, schema))
    for (let i = 7; i < 17; i++) yield* calls(b, i)
    yield* flush
    const after = yield* Effect.promise(() => tableReads(admin, schema))
    // the same session throughout
    expect((yield* sql<{ readonly pid: number }>`SELECT pg_backend_pid() AS pid`)[0]!.pid).toBe(session[0]!.pid)
    const seqRead: Record<string, number> = {}
    const idxRead: Record<string, number> = {}
    for (const [table, a] of after) {
      const bf = before.get(table) ?? { rows: 0, seq: 0, idx: 0 }
      if (a.rows > 200 && a.seq > bf.seq) seqRead[table] = a.seq - bf.seq
      if (a.idx > bf.idx) idxRead[table] = a.idx - bf.idx
    }
    const idxPerRound = Object.values(idxRead).reduce((x, y) => x + y, 0) / 10
    if (process.env["PLANS_PRINT"] !== undefined) console.log(name, JSON.stringify({ seqRead, idxRead, idxPerRound }))
    return { seqRead, idxRead, idxPerRound, grown: [...after].filter(([, a]) => a.rows > 200).map(([t]) => t).sort() }
  }).pipe(Effect.scoped)

const claimOne = (b: EngineBackend.Service, lane: Ids.LaneId) =>
  Effect.map(b.claim({ lane, capabilities: { tokens: [] }, policy }), Option.getOrThrow)

describe("postgres: flow, signal and read calls planned on small tables", () => {
  it.live("flows: a graph created, its members completed, the flow read and cancelled", () =>
    Effect.gen(function*() {
      const r = yield* measure("flows", (b, round) =>
        Effect.gen(function*() {
          const flowId = yield* Ids.newFlowId
          const lane = Ids.unsafe.laneId(`flows-${round}`)
          const ids = [yield* Ids.executionIdForFlow(flowId), yield* Ids.executionIdForFlow(flowId),
            yield* Ids.executionIdForFlow(flowId)]
          const members = ids.map((executionId) => ({ executionId, namespace: NS, laneId: lane, executionKind: "k" }))
          const edges = [0, 1].map((j) =>
            Effect.map(Ids.newEdgeId, (edgeId) => ({ edgeId, upstreamExecutionId: ids[j]!, downstreamExecutionId: ids[2]! }))
          )
          yield* b.createFlowGraph({
            flow: { flowId, namespace: NS, flowKind: "k" },
            members,
            edges: yield* Effect.all(edges)
          })
          yield* b.complete(yield* claimOne(b, lane), {})
          yield* b.describeFlow(flowId)
          yield* b.listEdges({ flowId, direction: { _tag: "Incoming", toNode: ids[2]! } })
          yield* b.cancelFlow({ flowId, policy: "CancelAll" })
          const flow = Option.getOrThrow(yield* b.describeFlow(flowId))
          expect(flow.publicFlowState).toBe("cancelled")
        }))
      expect(r.grown).toEqual(expect.arrayContaining(["dep", "edge_group", "exec_core", "flow_core", "flow_edge"]))
      expect(r.seqRead).toEqual({})
      expect(r.idxPerRound, JSON.stringify(r.idxRead)).toBeLessThan(400)
    }), 300_000)

  it.live("signals: a suspension on a waitpoint, a signal delivered", () =>
    Effect.gen(function*() {
      const r = yield* measure("signals", (b, round) =>
        Effect.gen(function*() {
          const lane = Ids.unsafe.laneId(`signals-${round}`)
          const executionId = yield* Ids.executionIdSolo(lane)
          yield* b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k" })
          const h = yield* claimOne(b, lane)
          const waitpointId = yield* Ids.newWaitpointId
          const out: M.SuspendOutcome = yield* b.suspend(h, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", waitpointId, waitpointKey: "k" }],
            resumeCondition: { _tag: "Single", waitpointKey: "k", matcher: { _tag: "Wildcard" } }
          })
          yield* b.listPendingWaitpoints({ executionId })
          const delivered = yield* b.deliverSignal({
            executionId,
            waitpointId,
            signalId: yield* Ids.newSignalId,
            signalName: "go",
            waitpointToken: out.details.waitpointToken
          })
          expect(delivered._tag).toBe("Accepted")
          expect(yield* b.readExecutionState(executionId)).toEqual(Option.some("waiting"))
        }))
      expect(r.grown).toEqual(expect.arrayContaining(["exec_core", "signal", "suspension", "waitpoint"]))
      expect(r.seqRead).toEqual({})
      expect(r.idxPerRound, JSON.stringify(r.idxRead)).toBeLessThan(400)
    }), 300_000)

  it.live("reads: an execution described (with its history), its state, info and result, a lane listed", () =>
    Effect.gen(function*() {
      const r = yield* measure("reads", (b, round) =>
        Effect.gen(function*() {
          const lane = Ids.unsafe.laneId(`reads-${round}`)
          const executionId = yield* Ids.executionIdSolo(lane)
          yield* b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k" })
          yield* b.complete(yield* claimOne(b, lane), {})
          expect(Option.isSome(yield* b.describeExecution(executionId))).toBe(true)
          yield* b.readExecutionInfo(executionId)
          yield* b.readExecutionState(executionId)
          yield* b.getExecutionResult(executionId)
          yield* b.getExecutionInput(executionId)
          yield* b.resolveExecutionFlowId(executionId)
          const page = yield* b.listLaneExecutions({ laneId: lane, limit: 10 })
          expect(page.executions.map((x) => x.executionId)).toEqual([executionId])
          yield* b.countLaneExecutions(lane)
        }))
      expect(r.grown).toContain("exec_core")
      expect(r.seqRead).toEqual({})
      expect(r.idxPerRound, JSON.stringify(r.idxRead)).toBeLessThan(400)
    }), 300_000)

  it.live("admin and streams: frames appended and read, a lease revoked, executions cancelled, replayed, reprioritised", () =>
    Effect.gen(function*() {
      const r = yield* measure("admin", (b, round) =>
        Effect.gen(function*() {
          const lane = Ids.unsafe.laneId(`admin-${round}`)
          const [one, two] = [yield* Ids.executionIdSolo(lane), yield* Ids.executionIdSolo(lane)]
          yield* b.createExecution({ executionId: one, namespace: NS, laneId: lane, executionKind: "k" })
          const h = yield* claimOne(b, lane)
          for (let i = 0; i < 2; i++) yield* b.appendFrame(h, { bytes: new TextEncoder().encode(`frame ${i}`), kind: "stdout" })
          const ref = { executionId: one, attemptIndex: 0 as Ids.AttemptIndex }
          const frames = yield* b.readStream({ ...ref, from: { _tag: "Start" }, to: { _tag: "End" }, countLimit: 10 })
          expect(frames.frames).toHaveLength(2)
          yield* b.readSummary(ref)
          yield* b.revokeLease({ executionId: one, reason: "plans" })
          yield* b.cancelExecution({ executionId: one, reason: "plans" })
          expect((yield* b.replayExecution(one))._tag).toBe("Replayed")
          yield* b.createExecution({ executionId: two, namespace: NS, laneId: lane, executionKind: "k" })
          yield* b.changePriority({ executionId: two, newPriority: 5 })
          yield* b.cancelExecution({ executionId: two, reason: "plans" })
        }))
      expect(r.grown).toEqual(expect.arrayContaining(["exec_core", "stream_frame", "stream_meta"]))
      expect(r.seqRead).toEqual({})
      expect(r.idxPerRound, JSON.stringify(r.idxRead)).toBeLessThan(400)
    }), 300_000)

  it.live("budgets: a budget created, usage reported (once again with its dedup key), its status read, reset", () =>
    Effect.gen(function*() {
      const r = yield* measure("budgets", (b, round) =>
        Effect.gen(function*() {
          const budgetId = yield* Ids.newBudgetId
          yield* b.createBudget({
            budgetId,
            scopeType: "lane",
            scopeId: `budgets-${round}`,
            resetIntervalMs: 3_600_000,
            dimensions: ["tokens", "calls"],
            hardLimits: [1_000, 100],
            softLimits: [500, 50]
          })
          const report = { budgetId, dimensions: ["tokens", "calls"], deltas: [600, 1], dedupKey: "once" }
          expect((yield* b.reportUsageAdmin(report))._tag).toBe("SoftBreach")
          expect((yield* b.reportUsageAdmin(report))._tag).toBe("AlreadyApplied")
          yield* b.getBudgetStatus(budgetId)
          yield* b.resetBudget(budgetId)
        }))
      expect(r.grown).toEqual(expect.arrayContaining(["budget", "budget_dedup", "budget_limit", "budget_usage"]))
      expect(r.seqRead).toEqual({})
      expect(r.idxPerRound, JSON.stringify(r.idxRead)).toBeLessThan(400)
    }), 300_000)
})
