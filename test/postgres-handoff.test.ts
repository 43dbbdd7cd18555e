// A create made in the process of an idle worker of its lane claims for that worker in its own
// statement on Postgres (ff_create_claim; docs/worker.md, "Wake-ups, timers and cancellation"):
// in one round trip, with the events of the two; in its common case one transaction that inserts
// the execution already claimed, leaving what the two transactions leave; work the claim leaves
// behind still wakes the other waiting workers.
import { describe, expect, it } from "@effect/vitest"
import * as PgClient from "@effect/sql-pg/PgClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { Deferred, Effect, Fiber, Layer, Option, Redacted, Schedule, Schema } from "effect"
import { createHash, randomUUID } from "node:crypto"
import pg from "pg"
import { afterAll, inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import type { ExecutionId } from "../src/Ids.js"
import * as Producer from "../src/Producer.js"
import * as PostgresBackend from "../src/postgres/PostgresBackend.js"
import * as Worker from "../src/Worker.js"
import { testHmacSecret } from "./support/hmac.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const schema = `ff_handoff_${process.pid}_${Date.now().toString(36)}`
const client = () => PgClient.layer({ url: Redacted.make(inject("pgUrl")), maxConnections: 4 })
/** One backend layer, as one process has it (its pool, its LISTEN connection). */
const backend = () => PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provide(client()))

afterAll(() =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).pipe(
      Effect.provide(client()),
      Effect.scoped,
      Effect.ignore
    )
  ))

const Other = Producer.task({ kind: "other", input: Schema.Struct({ n: Schema.Number }), output: Schema.Struct({ n: Schema.Number }) })

const echo = (started: Deferred.Deferred<void>) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) => Effect.as(Deferred.succeed(started, undefined), { text: input.text, attempt: ctx.attempt, resumed: ctx.resumed })
  })

/** The transaction part of an event's offset (`k.id`): events of one transaction share it. */
const txOf = (offset: string) => offset.split(".")[0]

const eventsOf = (executionId: ExecutionId) =>
  Effect.flatMap(EngineBackend, (b) => b.readEvents({ filter: { _tag: "Execution", executionId }, limit: 100 }))

describe("postgres: a create claims for the idle worker of its process", () => {
  it.live("the create claims for the waiting worker before it returns, with the events of a create and a claim", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      const id = yield* Producer.submit(Echo, { text: "now" }, { lane })
      // the claim committed before the create's reply came back
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(id)).toEqual(Option.some("active"))
      expect(yield* handed).toBe(1)
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      const { events } = yield* eventsOf(id)
      const created = events.find((e) => e._tag === "ExecutionCreated")
      const claimed = events.find((e) => e._tag === "Claimed")
      // the events of a create and a claim after it, in that order: nothing folded into the creation
      expect(created).toMatchObject({ publicState: "waiting" })
      expect(claimed).toBeDefined()
      expect(events.indexOf(claimed!)).toBeGreaterThan(events.indexOf(created!))
      // written by one transaction (ffi_create_claimed: the execution inserted already claimed)
      expect(txOf(claimed!.offset)).toBe(txOf(created!.offset))
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("the handed-over create does not wake the worker it claims for (no empty claim follows); its other creates still do", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const first = yield* Deferred.make<void>()
      const { claims, handed } = yield* idleWorker(lane, echo(first))
      const before = yield* claims
      yield* Producer.submit(Echo, { text: "handed" }, { lane })
      yield* Deferred.await(first).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(1)
      // a NOTIFY for the worker would have come long before this
      yield* Effect.sleep("500 millis")
      expect((yield* claims) - before).toBe(0)
      // the worker still waits on the lane, registered: a create of another process wakes it
      // (its idle poll is an hour)
      const elsewhere = yield* Layer.build(backend())
      const id = yield* Producer.submit(Echo, { text: "woken" }, { lane }).pipe(Effect.provide(elsewhere))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "woken" })
      expect(yield* handed).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("work the handed-over claim leaves (a kind the worker lacks) wakes a waiting worker of another process", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      // another process's worker, with the handler
      const elsewhere = yield* Layer.build(backend())
      yield* idleWorker(lane, echo(started)).pipe(Effect.provide(elsewhere))
      // this process's worker lacks the kind: the create's claim for it takes nothing
      const { handed } = yield* idleWorker(lane, Worker.handler({ ...Other, run: (input) => Effect.succeed(input) }))
      const id = yield* Producer.submit(Echo, { text: "elsewhere" }, { lane })
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(1)
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "elsewhere" })
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a delayed create hands nothing over; the worker takes it once due", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      yield* Producer.submit(Echo, { text: "later" }, { lane, delay: "200 millis" })
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* handed).toBe(0)
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a producer interrupted during its create returns at once, and the worker's slots are freed: the next task runs", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      // another connection holds the executions' table, so the create's statement waits
      const locked = yield* Deferred.make<void>()
      const unlock = yield* Deferred.make<void>()
      const holder = yield* Effect.fork(Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.withTransaction(Effect.gen(function*() {
          yield* sql.unsafe(`LOCK TABLE "${schema}".exec_core IN ACCESS EXCLUSIVE MODE`)
          yield* Deferred.succeed(locked, undefined)
          yield* Deferred.await(unlock)
        }))).pipe(Effect.provide(client())))
      yield* Deferred.await(locked)
      const producer = yield* Effect.fork(Producer.submit(Echo, { text: "cut" }, { lane }))
      yield* Effect.repeat(handed, { until: (n) => n === 1, schedule: Schedule.spaced("5 millis") }).pipe(
        Effect.timeout("20 seconds")
      )
      yield* Effect.sleep("50 millis")
      // the caller's interruption is not held up by the waiting statement
      yield* Fiber.interrupt(producer).pipe(Effect.timeout("2 seconds"))
      yield* Deferred.succeed(unlock, undefined)
      yield* Fiber.join(holder)
      // the worker took back its slots: a later task runs
      const id = yield* Producer.submit(Echo, { text: "next" }, { lane })
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "next" })
    }).pipe(Effect.scoped, Effect.provide(backend())), 60_000)

  it.live("a create inside the caller's own transaction stays in it (no claim for the idle worker: the procedure cannot commit there)", () =>
    Effect.gen(function*() {
      const lane = yield* newLane()
      const started = yield* Deferred.make<void>()
      const { handed } = yield* idleWorker(lane, echo(started))
      const sql = yield* SqlClient.SqlClient
      // rolled back with the caller's transaction: nothing created
      let rolledBack: ExecutionId | undefined
      const aborted = yield* sql.withTransaction(Effect.flatMap(
        Producer.submit(Echo, { text: "rolled back" }, { lane }),
        (id) => Effect.fail(((rolledBack = id), "abort" as const))
      )).pipe(Effect.flip)
      expect(aborted).toBe("abort")
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(rolledBack!)).toEqual(Option.none())
      // committed with it: the worker is woken once it commits
      const id = yield* sql.withTransaction(Producer.submit(Echo, { text: "committed" }, { lane }))
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "committed" })
      expect(yield* handed).toBe(0)
    }).pipe(
      Effect.scoped,
      Effect.provide(PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client())))
    ), 60_000)

  describe("the create that claims in one transaction (ff_create_claim's common case)", () => {
    const q = `"${schema}"`
    /** The backend (the schema migrated) and the SQL client beside it. */
    const withClient = () => PostgresBackend.layer({ hmacSecret: testHmacSecret, schema }).pipe(Layer.provideMerge(client()))
    const now = 1_900_000_000_000
    /** The CALL as the layer makes it, for worker instance `wi` taking kind k on `lane`. */
    const call = (eid: string, lane: string, creator: string, tags: unknown, deadline: number | null) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql.unsafe<{ readonly r: { readonly ok: { readonly created: unknown; readonly claim: ClaimValue } } }>(
          `CALL ${q}.ff_create_claim($1::text, 7, 'default', $2::text, 'k', '\\x7b226e223a377d'::bytea, 'json', 3, $3::text,
             NULL, $4::jsonb, 'null', '{}', NULL, $5::bigint, NULL, 100, 10, 86400000, NULL, '{}', '{k}', 'w', 'wi', 30000,
             4, 1024, $6::bigint, $7::text, NULL)`,
          [eid, lane, creator, JSON.stringify(tags), deadline, now, schema]
        ))
    interface ClaimValue {
      readonly handles: ReadonlyArray<Record<string, unknown>>
      readonly inputs: ReadonlyArray<Record<string, unknown> | null>
      readonly busy: number
      readonly completed: ReadonlyArray<unknown>
    }
    /** What the rows of `lane` (one execution, `eid`) hold, ids and the lane left out. */
    const stored = (lane: string, eid: string) =>
      Effect.flatMap(SqlClient.SqlClient, (sql) =>
        Effect.all({
          core: sql.unsafe(
            `SELECT to_jsonb(c) - ARRAY['e_uuid', 'lane_id', 'current_attempt_id', 'lease_id', 'event_k'] AS v
             FROM ${q}.exec_core c WHERE lane_id = $1`,
            [lane]
          ),
          data: sql.unsafe(
            `SELECT to_jsonb(d) - ARRAY['e_uuid'] AS v FROM ${q}.exec_data d
             WHERE d.e_uuid = ${q}.ffi_eid_uuid($1) AND d.e_part = 7`,
            [eid]
          ),
          events: sql.unsafe<{ readonly kind: string }>(
            `SELECT kind, at, attempt, num, s1, s2, flow_id FROM ${q}.event WHERE lane_id = $1 ORDER BY k, id`,
            [lane]
          ),
          counts: sql.unsafe(
            `SELECT public_state, sum(n)::int AS n FROM ${q}.lane_count WHERE lane_id = $1
             GROUP BY 1 HAVING sum(n) <> 0 ORDER BY 1`,
            [lane]
          ),
          timers: sql.unsafe(
            `SELECT kind, due_at FROM ${q}.timer t WHERE t.ref = $1 OR ${q}.ffi_eid_uuid($1) = ANY (t.refs) ORDER BY 1, 2`,
            [eid]
          ),
          registered: sql.unsafe(`SELECT count(*)::int AS n FROM ${q}.lane_registry WHERE lane_id = $1`, [lane])
        }))
    /** A claim reply with its ids and lane left out. */
    const shape = (c: ClaimValue) => ({
      ...c,
      handles: c.handles.map(({ executionId: _e, attemptId: _a, leaseId: _l, laneId: _n, ...h }) => h),
      inputs: c.inputs.map((i) => (i === null ? null : { ...i, executionId: "-", laneId: "-" }))
    })

    it.live("leaves the rows, events, lane counts, timers and reply of a create and of the worker's claim after it", () =>
      Effect.gen(function*() {
        yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        // an input in the row, and one in exec_data (tags, a creator) with a deadline timer
        for (const [creator, tags, deadline] of [["", {}, null], ["someone", { a: "b" }, now + 60_000]] as const) {
          const one = `one-${randomUUID()}`
          const two = `two-${randomUUID()}`
          const eid1 = `{fp:7}:${randomUUID()}`
          const eid2 = `{fp:7}:${randomUUID()}`
          const [r1] = yield* call(eid1, one, creator, tags, deadline)
          // the create, committed, then the worker's claim in a transaction of its own
          yield* sql.unsafe(
            `SELECT ${q}.ff_create_execution($1::text, 7, 'default', $2::text, 'k', '\\x7b226e223a377d'::bytea, 'json', 3,
               $3::text, NULL, $4::jsonb, 'null', '{}', NULL, $5::bigint, NULL, 100, 10, 86400000, NULL, $6::bigint)`,
            [eid2, two, creator, JSON.stringify(tags), deadline, now]
          )
          const [r2] = yield* sql.unsafe<{ readonly r: { readonly ok: ClaimValue } }>(
            `SELECT ${q}.ff_complete_claim('{}', '{}', '{}', '{}', '{}', '{}', $1::text, '{}', '{k}', 'w', 'wi', 30000, 4,
               1024, $2::bigint) AS r`,
            [two, now]
          )
          expect(r1!.r.ok.created).toEqual({ _tag: "Created", executionId: eid1, publicState: "waiting" })
          expect(r1!.r.ok.claim.handles).toHaveLength(1)
          expect(shape(r1!.r.ok.claim)).toEqual(shape(r2!.r.ok))
          const a = yield* stored(one, eid1)
          const b = yield* stored(two, eid2)
          expect(a.core).toHaveLength(1)
          expect(a.events.map((e) => e.kind)).toEqual(["ExecutionCreated", "Claimed"])
          expect(a.data).toHaveLength(creator === "" ? 0 : 1)
          expect(a.timers.length).toBe(deadline === null ? 1 : 2)
          expect(a).toEqual(b)
          // one transaction: the two events share it
          const ks = yield* sql.unsafe<{ readonly k: string }>(`SELECT DISTINCT k::text FROM ${q}.event WHERE lane_id = $1`, [one])
          expect(ks).toHaveLength(1)
        }
      }).pipe(Effect.scoped, Effect.provide(withClient())), 60_000)

    it.live("a claim that locks one candidate leaves what the set-based claim of several leaves for each", () =>
      Effect.gen(function*() {
        yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        const create = (eid: string, lane: string) =>
          sql.unsafe(
            `SELECT ${q}.ff_create_execution($1::text, 7, 'default', $2::text, 'k', '\\x7b226e223a377d'::bytea, 'json', 3,
               '', NULL, '{}', 'null', '{}', NULL, NULL, NULL, 100, 10, 86400000, NULL, $3::bigint)`,
            [eid, lane, now]
          )
        const claim = (lane: string) =>
          Effect.map(
            sql.unsafe<{ readonly r: { readonly ok: ClaimValue } }>(
              `SELECT ${q}.ff_complete_claim('{}', '{}', '{}', '{}', '{}', '{}', $1::text, '{}', '{k}', 'w', 'wi', 30000,
                 4, 1024, $2::bigint) AS r`,
              [lane, now]
            ),
            (rows) => rows[0]!.r.ok
          )
        /** What one execution's rows hold, ids left out. */
        const ofExecution = (eid: string) =>
          Effect.all({
            core: sql.unsafe(
              `SELECT to_jsonb(c) - ARRAY['e_uuid', 'lane_id', 'current_attempt_id', 'lease_id', 'event_k'] AS v
               FROM ${q}.exec_core c WHERE c.e_uuid = ${q}.ffi_eid_uuid($1) AND c.partition_key = 7`,
              [eid]
            ),
            events: sql.unsafe<{ readonly kind: string }>(
              `SELECT kind, at, attempt, num, s1, s2, flow_id FROM ${q}.event
               WHERE e_uuid = ${q}.ffi_eid_uuid($1) ORDER BY k, id`,
              [eid]
            ),
            timers: sql.unsafe(
              `SELECT kind, due_at FROM ${q}.timer t WHERE t.ref = $1 OR ${q}.ffi_eid_uuid($1) = ANY (t.refs) ORDER BY 1, 2`,
              [eid]
            )
          })
        const counts = (lane: string) =>
          sql.unsafe<{ readonly public_state: string; readonly n: number }>(
            `SELECT public_state, sum(n)::int AS n FROM ${q}.lane_count WHERE lane_id = $1 GROUP BY 1 HAVING sum(n) <> 0`,
            [lane]
          )
        const one = `one-${randomUUID()}`
        const two = `two-${randomUUID()}`
        const [a, b1, b2] = [0, 1, 2].map(() => `{fp:7}:${randomUUID()}`)
        yield* create(a!, one)
        yield* create(b1!, two)
        yield* create(b2!, two)
        // one candidate locked: single-row statements; two: the set-based statement
        const single = yield* claim(one)
        const set = yield* claim(two)
        expect(single.handles).toHaveLength(1)
        expect(set.handles).toHaveLength(2)
        const [h] = shape(single).handles
        expect(shape(set).handles).toEqual([h, h])
        const [i] = shape(single).inputs
        expect(shape(set).inputs).toEqual([i, i])
        const mine = yield* ofExecution(a!)
        expect(mine.events.map((e) => e.kind)).toEqual(["ExecutionCreated", "Claimed"])
        expect(yield* ofExecution(b1!)).toEqual(mine)
        expect(yield* ofExecution(b2!)).toEqual(mine)
        expect(yield* counts(one)).toEqual([{ public_state: "active", n: 1 }])
        expect(yield* counts(two)).toEqual([{ public_state: "active", n: 2 }])
        // the single claim's lease timer is the execution's own (the set's is one for the set)
        const own = yield* sql.unsafe<{ readonly n: number }>(
          `SELECT count(*)::int AS n FROM ${q}.timer WHERE kind = 'lease' AND ref = $1`,
          [a!]
        )
        expect(own[0]!.n).toBe(1)
      }).pipe(Effect.scoped, Effect.provide(withClient())), 60_000)

    it.live("wakes none of the lane's other waiting workers: the work was never claimable", () =>
      Effect.gen(function*() {
        yield* EngineBackend
        const sql = yield* SqlClient.SqlClient
        const lane = `quiet-${randomUUID()}`
        const heard: Array<string> = []
        const listener = yield* Effect.acquireRelease(
          Effect.promise(async () => {
            const c = new pg.Client({ connectionString: inject("pgUrl") })
            await c.connect()
            c.on("notification", (n) => void heard.push(n.payload ?? ""))
            await c.query(`LISTEN "ff_${createHash("md5").update(schema).digest("hex")}"`)
            return c
          }),
          (c) => Effect.promise(() => c.end())
        )
        expect(listener).toBeDefined()
        // another worker instance waits on the lane
        yield* sql.unsafe(`SELECT ${q}.ff_lane_wait($1::text, 'other', 60000, NULL)`, [lane])
        const [r] = yield* call(`{fp:7}:${randomUUID()}`, lane, "", {}, null)
        expect(r!.r.ok.claim.handles).toHaveLength(1)
        // a plain create on the lane is heard (the listener works), after the CALL's commit
        yield* sql.unsafe(
          `SELECT ${q}.ff_create_execution($1::text, 7, 'default', $2::text, 'k', '\\x7b7d'::bytea, 'json', 0, '', NULL,
             '{}', 'null', '{}', NULL, NULL, NULL, 100, 10, 86400000, NULL, NULL)`,
          [`{fp:7}:${randomUUID()}`, lane]
        )
        yield* Effect.repeat(Effect.sync(() => heard.length), { until: (n) => n > 0, schedule: Schedule.spaced("10 millis") }).pipe(
          Effect.timeout("10 seconds")
        )
        yield* Effect.sleep("100 millis")
        expect(heard.filter((h) => h === `w\t${lane}`)).toHaveLength(1)
      }).pipe(Effect.scoped, Effect.provide(withClient())), 60_000)
  })
})
