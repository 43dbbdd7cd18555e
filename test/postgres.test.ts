// The Postgres layer: the conformance suite (one engine, one schema, time from Effect's Clock so that
// TestClock drives leases, delays and timeouts), then what only this backend has — the store clock,
// migrations, the SQL-side HMAC and the SQLSTATE mapping.
import { describe, expect, it, layer } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { SqlError } from "@effect/sql/SqlError"
import { createHmac } from "node:crypto"
import { Duration, Effect, Either, Layer, Option, Redacted } from "effect"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { Maintenance } from "../src/Maintenance.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import { fromSqlError } from "../src/postgres/internal/errors.js"
import { appliedVersion, LATEST_MIGRATION, migrations } from "../src/postgres/migrations/index.js"
import { advance } from "./conformance/helpers.js"
import { suite } from "./conformance/index.js"
import { richCompleted } from "./conformance/retention.js"
import { testHmacSecret } from "./support/hmac.js"

const url = inject("pgUrl")
const tag = `${process.pid}_${Date.now().toString(36)}`

/** A pool, dropping `schemas` when the layer is released. */
const clientDropping = (...schemas: ReadonlyArray<string>) =>
  Layer.scopedDiscard(
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      Effect.addFinalizer(() =>
        Effect.ignore(Effect.forEach(schemas, (s) => sql.unsafe(`DROP SCHEMA IF EXISTS "${s}" CASCADE`)))
      ))
  ).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 8 })))

// ---------------------------------------------------------------------------
// conformance
// ---------------------------------------------------------------------------

const conformanceSchema = `ff_conformance_${tag}`
suite(
  "postgres",
  PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: conformanceSchema, clock: "effect" }).pipe(
    Layer.provide(clientDropping(conformanceSchema))
  ),
  { fresh: false, rotateEntries: "single" }
)

// ---------------------------------------------------------------------------
// the store clock (production mode), in real time
// ---------------------------------------------------------------------------

const NS = Ids.unsafe.namespace("store")
const policy = (leaseTtlMs: number) => ({
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-1"),
  leaseTtlMs
})
const lane = (name: string) => Ids.unsafe.laneId(`${name}-${tag}`)
const sleep = (ms: number) => Effect.sleep(Duration.millis(ms))

const storeSchema = `ff_store_${tag}`
const storeLayer = PostgresBackend.layer({ hmacSecret: testHmacSecret, schema: storeSchema }).pipe(Layer.provideMerge(clientDropping(storeSchema)))

describe("postgres, store clock (real time)", () => {
  layer(storeLayer, { timeout: 30_000, excludeTestServices: true })((it) => {
    it.effect("a lease expires on the database clock; claim reclaims it as a new attempt and fences the old holder", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = lane("lease")
        const executionId = yield* Ids.executionIdSolo(l)
        yield* b.createExecution({ executionId, namespace: NS, laneId: l, executionKind: "k" })
        // the renewal must land inside the lease on a loaded machine too: 1.5 s of margin
        const first = Option.getOrThrow(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy(1_500) }))
        const renewal = yield* b.renew(first)
        expect(renewal.leaseEpoch).toBe(1)
        yield* sleep(1_700)
        const late = yield* Effect.either(b.complete(first))
        expect(Either.isLeft(late) && late.left._tag === "State" && late.left.kind).toBe("LeaseExpired")
        const second = Option.getOrThrow(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy(5_000) }))
        const stale = yield* Effect.either(b.complete(first))
        expect(Either.isLeft(stale) && stale.left._tag === "State" && stale.left.kind).toBe("StaleLease")
        yield* b.complete(second, { payload: new TextEncoder().encode("done") })
        expect(yield* b.readExecutionState(executionId)).toEqual(Option.some("completed"))
        const info = Option.getOrThrow(yield* b.readExecutionInfo(executionId))
        expect(info.currentAttemptIndex).toBe(1)
      }))

    it.effect("the lease-expiry pass marks an expired lease without any worker call", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const m = yield* Maintenance
        const l = lane("pass")
        const executionId = yield* Ids.executionIdSolo(l)
        yield* b.createExecution({ executionId, namespace: NS, laneId: l, executionKind: "k" })
        yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy(200) })
        yield* sleep(300)
        const r = yield* m.expireLeases()
        expect(r.processed).toBeGreaterThanOrEqual(1)
        const info = Option.getOrThrow(yield* b.readExecutionInfo(executionId))
        expect(info.stateVector.ownershipState).toBe("lease_expired_reclaimable")
      }))

    it.effect("delays are promoted once the database clock passes them", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const m = yield* Maintenance
        const sql = yield* SqlClient.SqlClient
        const l = lane("delay")
        const executionId = yield* Ids.executionIdSolo(l)
        const [row] = yield* sql<{ readonly now: string }>`SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::text AS now`
        const dbNow = Number(row!.now)
        const created = yield* b.createExecution({
          executionId,
          namespace: NS,
          laneId: l,
          executionKind: "k",
          // two seconds of margin: the early checks must not see the delay expire on a loaded machine
          delayUntil: dbNow + 2_000
        })
        expect(created).toMatchObject({ _tag: "Created", publicState: "delayed" })
        yield* m.promoteDelayed()
        expect(yield* b.readExecutionState(executionId)).toEqual(Option.some("delayed"))
        yield* sleep(2_100)
        yield* m.promoteDelayed()
        expect(yield* b.readExecutionState(executionId)).toEqual(Option.some("waiting"))
      }))

    it.effect("a blocking tail wakes up when a frame arrives and times out in real time otherwise", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = lane("tail")
        const executionId = yield* Ids.executionIdSolo(l)
        yield* b.createExecution({ executionId, namespace: NS, laneId: l, executionKind: "k" })
        const h = Option.getOrThrow(yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: policy(10_000) }))
        const tail = (blockMs: number) =>
          b.tailStream({ executionId, attemptIndex: Ids.AttemptIndex.make(0), after: { _tag: "At", id: "0-0" }, blockMs, countLimit: 10 })
        const started = Date.now()
        const empty = yield* tail(200)
        expect(empty.frames).toEqual([])
        expect(Date.now() - started).toBeGreaterThanOrEqual(190)
        const waiting = yield* Effect.fork(tail(5_000))
        yield* sleep(100)
        yield* b.appendFrame(h, { bytes: new TextEncoder().encode("hello"), kind: "stdout" })
        const got = yield* waiting.await
        expect(got._tag).toBe("Success")
      }))
  })
})

// ---------------------------------------------------------------------------
// migrations
// ---------------------------------------------------------------------------

describe("postgres migrations", () => {
  const schema = `ff_migrate_${tag}`
  it.layer(clientDropping(schema, `ff_absent_${tag}`, `ff_broken_${tag}`), { timeout: 60_000 })((it) => {
    it.effect("several processes starting at once apply the migrations exactly once", () =>
      Effect.gen(function*() {
        // separate pools, as separate processes would have
        const start = Effect.scoped(Effect.flatMap(
          Layer.build(PgClient.layer({ url: Redacted.make(url), maxConnections: 2 })),
          (ctx) => Effect.provide(PostgresBackend.make({ hmacSecret: testHmacSecret, schema }), ctx)
        ))
        yield* Effect.all([start, start, start, start], { concurrency: "unbounded" })
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql.unsafe<{ readonly n: string }>(`SELECT count(*)::text AS n FROM "${schema}".ff_migrations`)
        expect(Number(rows[0]!.n)).toBe(Object.keys(migrations).length)
        expect(yield* appliedVersion(schema)).toBe(LATEST_MIGRATION)
        // and a restart applies nothing
        yield* start
      }))

    it.effect("migrate: false refuses to start on a schema that is not migrated", () =>
      Effect.gen(function*() {
        const r = yield* Effect.either(PostgresBackend.make({ hmacSecret: testHmacSecret, schema: `ff_absent_${tag}`, migrate: false }))
        expect(Either.isLeft(r) && r.left._tag).toBe("Unavailable")
      }))

    it.effect("the partition counts of a deployment are fixed once stored", () =>
      Effect.gen(function*() {
        yield* PostgresBackend.make({ hmacSecret: testHmacSecret, schema })
        const r = yield* Effect.either(PostgresBackend.make({ hmacSecret: testHmacSecret, schema, partitions: { numFlowPartitions: 16 } }))
        expect(Either.isLeft(r) && r.left._tag).toBe("Unavailable")
      }))

    it.effect("a migration that fails is a Transport error of the layer's start, and nothing is half-applied", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const broken = `ff_broken_${tag}`
        yield* sql.unsafe(`CREATE SCHEMA "${broken}"`)
        yield* sql.unsafe(`CREATE TABLE "${broken}".exec_core (x int)`)
        const r = yield* Effect.either(PostgresBackend.make({ hmacSecret: testHmacSecret, schema: broken }))
        expect(Either.isLeft(r) && r.left).toMatchObject({ _tag: "Transport", backend: "postgres", retryable: false })
        expect(yield* appliedVersion(broken)).toBe(0)
      }))

    it.effect("an invalid schema name is rejected before any I/O", () =>
      Effect.gen(function*() {
        const r = yield* Effect.either(PostgresBackend.make({ hmacSecret: testHmacSecret, schema: "no; drop" }))
        expect(Either.isLeft(r) && r.left._tag).toBe("Validation")
      }))

    it.effect("a schema name with an upper-case letter is Validation from make and from layerPg, which does not connect", () =>
      Effect.gen(function*() {
        for (const name of [`Ff_Mixed_${tag}`, "FLOWFABRIC", "1abc", "", "x".repeat(64), "caf\u00e9"]) {
          const made = yield* Effect.either(PostgresBackend.make({ schema: name }))
          expect(Either.isLeft(made) && made.left).toMatchObject({ _tag: "Validation", kind: "InvalidInput" })
          // nothing listens on port 1: a layer that tried to connect would fail with Transport
          const built = yield* Effect.either(Effect.scoped(Layer.build(
            PostgresBackend.layerPg({ url: Redacted.make("postgres://nobody@127.0.0.1:1/none"), schema: name })
          )))
          expect(Either.isLeft(built) && built.left).toMatchObject({ _tag: "Validation", kind: "InvalidInput" })
          if (Either.isLeft(built) && built.left._tag === "Validation") expect(built.left.detail).toContain("lower-case")
        }
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ readonly n: string }>`SELECT count(*)::text AS n FROM pg_namespace WHERE nspname ILIKE ${`ff_mixed_${tag}`}`
        expect(rows[0]!.n).toBe("0")
      }))

    it.effect("the SQL HMAC-SHA256 equals node:crypto's, for short and long keys", () =>
      Effect.gen(function*() {
        yield* PostgresBackend.make({ hmacSecret: testHmacSecret, schema })
        const sql = yield* SqlClient.SqlClient
        for (const keyHex of ["00", "ab".repeat(32), "cd".repeat(64), "0f".repeat(65)]) {
          const message = "a4c1e5d2-0000-4000-8000-000000000000|wpk:x|1700000000000"
          const rows = yield* sql.unsafe<{ readonly h: string }>(
            `SELECT encode("${schema}".ffi_hmac(decode($1, 'hex'), convert_to($2, 'UTF8')), 'hex') AS h`,
            [keyHex, message]
          )
          expect(rows[0]!.h).toBe(createHmac("sha256", Buffer.from(keyHex, "hex")).update(message).digest("hex"))
        }
      }))
  })
})

// ---------------------------------------------------------------------------
// SQLSTATE mapping (docs/design/errors.md#postgres-failures)
// ---------------------------------------------------------------------------

describe("postgres error mapping", () => {
  const map = (cause: unknown) => fromSqlError(new SqlError({ cause, message: "x" }), { op: "op", maxConnections: 7 })
  const pgError = (code: string, extra: Record<string, unknown> = {}) =>
    Object.assign(new Error(`pg ${code}`), { code, ...extra })

  it("serialization failures and deadlocks that outlive the retries are Contention(RetryExhausted)", () => {
    for (const code of ["40001", "40P01", "55P03"]) expect(map(pgError(code))).toMatchObject({ _tag: "Contention", kind: "RetryExhausted" })
  })
  it("connection loss is a retryable Transport of the postgres backend", () => {
    for (const cause of [pgError("57P01"), pgError("08006"), pgError("ECONNREFUSED"), new Error("Connection terminated unexpectedly")]) {
      expect(map(cause)).toMatchObject({ _tag: "Transport", backend: "postgres", kind: "transport", retryable: true })
    }
    expect(map(pgError("08007"))).toMatchObject({ _tag: "Transport", retryable: false })
    expect(map(pgError("57P03"))).toMatchObject({ _tag: "Transport", kind: "busy_loading", retryable: true })
  })
  it("bad caller values are Validation(InvalidInput); unexpected unique violations a protocol Transport", () => {
    for (const code of ["23502", "23514", "22P02", "22003", "22001", "22007", "22008", "23503"]) {
      expect(map(pgError(code, { constraint: "c" }))).toMatchObject({ _tag: "Validation", kind: "InvalidInput" })
    }
    expect(map(pgError("23505"))).toMatchObject({ _tag: "Transport", kind: "protocol", retryable: false, nativeCode: "23505" })
    // ids taken concurrently: a waitpoint id, a signal id
    expect(map(pgError("23505", { constraint: "waitpoint_pkey" }))).toMatchObject({ _tag: "Conflict", kind: "WaitpointAlreadyExists" })
    expect(map(pgError("23505", { constraint: "signal_id_unique" }))).toMatchObject({ _tag: "State", kind: "DuplicateSignal" })
  })
  it("resource, auth, drift and internal errors", () => {
    expect(map(pgError("53300"))).toMatchObject({ _tag: "ResourceExhausted", pool: "postgres_connections", max: 7 })
    expect(map(new Error("timeout exceeded when trying to connect"))).toMatchObject({ _tag: "ResourceExhausted" })
    expect(map(pgError("57014"))).toMatchObject({ _tag: "Timeout", op: "op" })
    expect(map(pgError("28P01"))).toMatchObject({ _tag: "Transport", kind: "auth", retryable: false })
    expect(map(pgError("42P01"))).toMatchObject({ _tag: "Transport", kind: "protocol", retryable: false })
    expect(map(pgError("53200"))).toMatchObject({ _tag: "Transport", kind: "other", retryable: false })
    expect(map(pgError("XX000"))).toMatchObject({ _tag: "Transport", kind: "other", retryable: false })
  })
  it("a domain error raised inside a server function keeps its typed kind", () => {
    expect(map(pgError("FF001", { message: "invalid_input", detail: "[\"patch must be a JSON object\"]" })))
      .toMatchObject({ _tag: "Validation", kind: "InvalidInput", detail: "patch must be a JSON object" })
    expect(map(pgError("FF001", { message: "waitpoint_already_exists", detail: "[]" })))
      .toMatchObject({ _tag: "Conflict", kind: "WaitpointAlreadyExists" })
  })
})

// ---------------------------------------------------------------------------
// trimRetention leaves no row of a deleted execution behind
// ---------------------------------------------------------------------------

describe("postgres retention", () => {
  const schema = `ff_retention_${tag}`
  layer(
    PostgresBackend.layer({ hmacSecret: testHmacSecret, schema, clock: "effect" }).pipe(Layer.provideMerge(clientDropping(schema))),
    { timeout: 30_000 }
  )((it) => {
    it.effect("trimRetention: no row of any table references the execution, its waitpoints or signals", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        /** Rows per table that reference the execution, one of its waitpoints or one of its signals. */
        const rows = (r: { readonly executionId: string; readonly waitpointIds: ReadonlyArray<string>; readonly signalIds: ReadonlyArray<string> }) =>
          Effect.gen(function*() {
            const e = r.executionId
            const wps = `{${r.waitpointIds.join(",")}}`
            const sigs = `{${r.signalIds.join(",")}}`
            const queries: Record<string, readonly [string, ReadonlyArray<string>]> = {
              exec_core: ["'{fp:' || partition_key || '}:' || e_uuid = $1", [e]],
              exec_data: ["'{fp:' || e_part || '}:' || e_uuid = $1", [e]],
              exec_idempotency: ["execution_id = $1", [e]],
              exec_history: ["execution_id = $1", [e]],
              exec_failure: ["execution_id = $1", [e]],
              timer: ["ref = $1 OR ref = ANY($2::text[]) OR substr($1, strpos($1, '}') + 2)::uuid = ANY(refs)", [e, wps]],
              claim_grant: ["execution_id = $1", [e]],
              suspension: ["execution_id = $1", [e]],
              waitpoint: ["execution_id = $1 OR waitpoint_id = ANY($2::uuid[])", [e, wps]],
              signal: ["execution_id = $1 OR waitpoint_id = ANY($2::uuid[]) OR signal_id = ANY($3::uuid[])", [e, wps, sigs]],
              signal_dedup: ["waitpoint_id = ANY($1::uuid[])", [wps]],
              suspend_dedup: ["execution_id = $1", [e]],
              stream_meta: ["execution_id = $1", [e]],
              stream_frame: ["execution_id = $1", [e]],
              stream_summary: ["execution_id = $1", [e]],
              dep: ["downstream_id = $1 OR upstream_id = $1", [e]],
              edge_group: ["downstream_id = $1", [e]],
              dep_pending: ["execution_id = $1", [e]],
              cancel_owed: ["execution_id = $1", [e]]
            }
            const out: Record<string, number> = {}
            for (const [table, [where, params]] of Object.entries(queries)) {
              const n = yield* sql.unsafe<{ readonly n: string }>(
                `SELECT count(*)::text AS n FROM "${schema}".${table} WHERE ${where}`,
                params
              )
              const count = Number(n[0]!.n)
              if (count > 0) out[table] = count
            }
            return out
          })
        const keep = yield* richCompleted(60_000)
        const r = yield* richCompleted(1_000)
        const before = yield* rows(r)
        expect(Object.keys(before)).toEqual(
          expect.arrayContaining(["exec_core", "exec_data", "exec_history", "exec_failure", "timer", "suspension", "waitpoint", "signal", "stream_meta", "stream_frame"])
        )
        yield* advance(1_000)
        const m = yield* Maintenance
        expect(yield* m.trimRetention()).toEqual({ pass: "trimRetention", processed: 1, more: false })
        // the lease timers of its claims' sets (timer.refs; a claim of a single candidate arms one
        // of its own, gone with the attempt) name it until their due time; the lease pass then
        // drops them
        const leaseSets = yield* sql.unsafe<{ readonly kind: string }>(
          `SELECT kind FROM "${schema}".timer WHERE $1 = ANY(CASE WHEN refs IS NOT NULL THEN ARRAY(SELECT '{fp:' || x.p || '}:' || x.u FROM unnest(ref_parts, refs) AS x(p, u)) END)`, [r.executionId])
        expect(leaseSets.every((t) => t.kind === "lease")).toBe(true)
        const { timer: _, ...rest } = yield* rows(r)
        expect(rest).toEqual({})
        yield* advance(30_000)
        yield* m.expireLeases()
        expect(yield* rows(r)).toEqual({})
        // the other execution is whole
        const { timer: _k, ...keepRest } = yield* rows(keep)
        const { timer: _b, ...beforeRest } = before
        expect(keepRest).toEqual(beforeRest)
      }))

    it.effect("claimMany arms one lease timer for its set and completeMany one retention timer for its set; the passes take each execution of a set", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const b = yield* EngineBackend
        const m = yield* Maintenance
        // the earlier tests' timers out of the way, so that the passes' counts below are this test's
        yield* advance(2 * 86_400_000)
        while ((yield* m.trimRetention({ batchSize: 1_000 })).more) { /* drain */ }
        while ((yield* m.expireLeases({ batchSize: 1_000 })).more) { /* drain */ }
        const l = Ids.unsafe.laneId(`retention-set-${tag}`)
        const ids = [yield* Ids.executionIdSolo(l), yield* Ids.executionIdSolo(l), yield* Ids.executionIdSolo(l)]
        for (const executionId of ids) {
          yield* b.createExecution({
            executionId, namespace: NS, laneId: l, executionKind: "k", policy: { streamPolicy: { retentionTtlMs: 1_000 } }
          })
        }
        const handles = yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: policy(60_000) }, 3)
        expect(handles.length).toBe(3)
        const timers = () =>
          sql.unsafe<{ readonly kind: string; readonly refs: ReadonlyArray<string> | null; readonly ref: string }>(
            `SELECT kind, CASE WHEN refs IS NOT NULL THEN ARRAY(SELECT '{fp:' || x.p || '}:' || x.u FROM unnest(ref_parts, refs) AS x(p, u)) END AS refs, ref FROM "${schema}".timer
             WHERE ref = ANY ($1::text[]) OR CASE WHEN refs IS NOT NULL THEN ARRAY(SELECT '{fp:' || x.p || '}:' || x.u FROM unnest(ref_parts, refs) AS x(p, u)) END && $1::text[] ORDER BY kind, ref`,
            [ids]
          )
        const claimed = yield* timers()
        expect(claimed.map((t) => [t.kind, [...(t.refs ?? [])].sort()])).toEqual([["lease", [...ids].sort()]])
        expect(claimed[0]!.ref.startsWith("#")).toBe(true)
        // the third one's lease renewed 10 s later: a timer of its own
        yield* advance(10_000)
        yield* b.renew(handles[2]!)
        const outcomes = yield* b.completeMany(handles.slice(0, 2).map((handle) => ({ handle })))
        expect(outcomes.map((o) => o._tag)).toEqual(["Right", "Right"])
        const after = yield* timers()
        expect(after.map((t) => [t.kind, t.refs === null ? t.ref : [...t.refs].sort()])).toEqual([
          ["lease", [...ids].sort()],
          ["lease", ids[2]!],
          ["retention", ids.slice(0, 2).sort()]
        ])
        // the set's lease timer falls due: the completed ones are passed over, the renewed one is
        // still leased (its own timer is later), nothing expires
        yield* advance(50_000)
        expect(yield* m.expireLeases()).toMatchObject({ processed: 0, more: false })
        expect((yield* timers()).map((t) => [t.kind, t.refs === null ? t.ref : [...t.refs].sort()])).toEqual([
          ["lease", ids[2]!],
          ["retention", ids.slice(0, 2).sort()]
        ])
        // retention: the two completed ones go, at most the batch size per call
        expect(yield* m.trimRetention({ batchSize: 1 })).toEqual({ pass: "trimRetention", processed: 1, more: true })
        expect(yield* m.trimRetention({ batchSize: 1 })).toEqual({ pass: "trimRetention", processed: 1, more: false })
        expect((yield* timers()).map((t) => t.kind)).toEqual(["lease"])
        // the renewed lease expires through its own timer
        yield* advance(10_000)
        expect(yield* m.expireLeases()).toMatchObject({ processed: 1, more: false })
      }))

    it.effect("exec_data keeps one row per execution through its hash key (migrations 0041, 0047)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`hashkey-${tag}`)
        const executionId = yield* Ids.executionIdSolo(lane)
        // (tags: an execution with nothing cold has no exec_data row, migration 0048)
        yield* b.createExecution({
          executionId,
          namespace: Ids.unsafe.namespace("hk"),
          laneId: lane,
          executionKind: "k",
          tags: { "app.t": "x" }
        })
        const count = () =>
          Effect.map(
            sql.unsafe<{ readonly n: string }>(
              `SELECT count(*)::text AS n FROM "${schema}".exec_data WHERE "${schema}".ffi_eid(e_part, e_uuid) = $1`,
              [executionId]
            ),
            (r) => Number(r[0]!.n)
          )
        // a second row is refused by the exclusion constraint
        const insert = (id: string) =>
          Effect.either(sql.unsafe(
            `INSERT INTO "${schema}".exec_data (e_part, e_uuid, payload)
             VALUES (substr($1, 5, strpos($1, '}') - 5)::int, substr($1, strpos($1, '}') + 2)::uuid, '\\x00')`,
            [id]
          ))
        expect((yield* insert(executionId))._tag).toEqual("Left")
        expect(yield* count()).toEqual(1)
        // the same uuid under another partition is another execution
        const elsewhere = executionId.replace(/^\{fp:\d+\}/, `{fp:${Ids.executionPartition(executionId) + 1}}`)
        expect((yield* insert(elsewhere))._tag).toEqual("Right")
        yield* sql.unsafe(`DELETE FROM "${schema}".exec_data WHERE "${schema}".ffi_eid(e_part, e_uuid) = $1`, [elsewhere])
        // found by id through the hash index
        const plan = yield* sql.unsafe<{ readonly "QUERY PLAN": string }>(
          `EXPLAIN SELECT * FROM "${schema}".exec_data WHERE "${schema}".ffi_eid(e_part, e_uuid) = 'x'`
        )
        expect(plan.map((r) => r["QUERY PLAN"]).join("\n")).toContain("exec_data_one")
      }))

    it.effect("the claimable executions are the rows waiting for a worker, read in claim order from one partial index (migrations 0046, 0057)", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`claimable-${tag}`)
        const executionId = yield* Ids.executionIdSolo(lane)
        yield* b.createExecution({ executionId, namespace: Ids.unsafe.namespace("cl"), laneId: lane, executionKind: "k" })
        // a row waiting for a worker that is not claimable (or the reverse) is refused
        for (const set of ["blocking_reason = 'waiting_for_delay'", "eligibility_state = 'blocked_by_operator'"]) {
          const bad = yield* Effect.either(
            sql.unsafe(`UPDATE "${schema}".exec_core SET ${set} WHERE '{fp:' || partition_key || '}:' || e_uuid = $1`, [executionId])
          )
          expect(bad._tag).toEqual("Left")
        }
        const explain = (query: string) =>
          Effect.map(
            sql.withTransaction(Effect.gen(function*() {
              yield* sql.unsafe(`SET LOCAL search_path TO "${schema}"`)
              yield* sql.unsafe("SET LOCAL enable_sort = off")
              yield* sql.unsafe("SET LOCAL enable_seqscan = off")
              return yield* sql.unsafe<{ readonly "QUERY PLAN": string }>(`EXPLAIN ${query}`)
            })),
            (plan) => plan.map((r) => r["QUERY PLAN"]).join("\n")
          )
        // one claim index (migration 0057): a claimable row has one entry, and a claim without kinds
        // finds the lane's kinds in that index too
        const partial = yield* sql.unsafe<{ readonly indexname: string }>(
          `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'exec_core'
             AND indexdef LIKE '%waiting_for_worker%' ORDER BY 1`,
          [schema]
        )
        expect(partial.map((r) => r.indexname)).toEqual(["exec_core_claim_by_kind"])
        expect(yield* explain(
          `SELECT execution_kind FROM exec_core WHERE lane_id = 'l' AND blocking_reason = 'waiting_for_worker'
             AND execution_kind > 'k' ORDER BY execution_kind LIMIT 1`
        )).toContain("exec_core_claim_by_kind")
        expect(yield* explain(
          `SELECT e_uuid FROM exec_core WHERE lane_id = 'l' AND execution_kind = 'k'
             AND blocking_reason = 'waiting_for_worker' ORDER BY execution_kind, priority DESC, created_at LIMIT 10`
        )).toContain("exec_core_claim_by_kind")
      }))

    it.effect("trimRetention deletes dedup rows past their window, the oldest first, and keeps the others", () =>
      Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const b = yield* EngineBackend
        const lane = Ids.unsafe.laneId(`dedup-${tag}`)
        const ns = Ids.unsafe.namespace("dedup")
        const key = (k: string) =>
          Effect.map(
            sql.unsafe<{ readonly n: string }>(
              `SELECT count(*)::text AS n FROM "${schema}".exec_idempotency WHERE idempotency_key = $1`,
              [k]
            ),
            (r) => Number(r[0]!.n)
          )
        // a create's key holds for 24 h
        const create = (k: string) =>
          Effect.flatMap(Ids.executionIdSolo(lane), (executionId) =>
            b.createExecution({ executionId, namespace: ns, laneId: lane, executionKind: "k", idempotencyKey: k }))
        const hour = 3_600_000
        yield* create(`first-${tag}`)
        yield* advance(12 * hour)
        yield* create(`second-${tag}`)
        expect([yield* key(`first-${tag}`), yield* key(`second-${tag}`)]).toEqual([1, 1])
        const m = yield* Maintenance
        yield* advance(12 * hour - 1)
        yield* m.trimRetention()
        expect([yield* key(`first-${tag}`), yield* key(`second-${tag}`)]).toEqual([1, 1])
        yield* advance(1)
        yield* m.trimRetention()
        expect([yield* key(`first-${tag}`), yield* key(`second-${tag}`)]).toEqual([0, 1])
        // the key is free again, as it was before its row went
        expect((yield* create(`first-${tag}`))._tag).toBe("Created")
        yield* advance(12 * hour)
        yield* m.trimRetention()
        expect(yield* key(`second-${tag}`)).toBe(0)
      }))
  })
})
