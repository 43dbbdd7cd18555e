/**
 * Producer and operator control, reads and admin: create_execution replay
 * and dedup, the read models, cancel_execution from every phase,
 * replay_execution, the maintenance passes on an idle engine, ping / prepare /
 * shutdown_prepare.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import { passNames } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import type { ExecutionInput } from "../../src/Model.js"
import {
  addEdge,
  advance,
  backend,
  buildFlow,
  claimArgs,
  claimNone,
  claimSome,
  create,
  createAndClaim,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  info,
  isAbsent,
  maintenance,
  newLane,
  NS,
  now,
  payloadOf,
  publicState,
  signal,
  snapshot,
  suspendSingle,
  type Tester,
  vector
} from "./helpers.js"

export const admin = (t: Tester) =>
  describe("control, reads and admin", () => {
    describe("create_execution", () => {
      t.test("a new execution reads back as waiting with its identity", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const t0 = yield* now
          const c = yield* create({ tags: { "app.owner": "team-a" }, priority: 3, executionKind: "llm_call" })
          expect(c.result).toEqual({ _tag: "Created", executionId: c.executionId, publicState: "waiting" })
          const s = yield* snapshot(c.executionId)
          expect(s).toMatchObject({
            executionId: c.executionId,
            laneId: c.lane,
            namespace: NS,
            publicState: "waiting",
            blockingReason: "waiting_for_worker",
            createdAt: t0,
            lastMutationAt: t0,
            totalAttemptCount: 0,
            tags: { "app.owner": "team-a" }
          })
          expect(s.flowId).toBeUndefined()
          expect(s.currentAttempt).toBeUndefined()
          expect(s.currentLease).toBeUndefined()
          expect(s.currentWaitpoint).toBeUndefined()
          const i = yield* info(c.executionId)
          expect(i).toMatchObject({
            executionId: c.executionId,
            namespace: NS,
            laneId: c.lane,
            priority: 3,
            executionKind: "llm_call",
            publicState: "waiting",
            createdAt: String(t0),
            currentAttemptIndex: 0
          })
          expect(i.stateVector).toEqual({
            lifecyclePhase: "runnable",
            ownershipState: "unowned",
            eligibilityState: "eligible_now",
            blockingReason: "waiting_for_worker",
            terminalOutcome: "none",
            attemptState: "pending_first_attempt",
            publicState: "waiting"
          })
          expect(i.startedAt).toBeUndefined()
          expect(i.completedAt).toBeUndefined()
          expect(yield* b.readExecutionState(c.executionId)).toEqual(Option.some("waiting"))
        }))

      t.test("the same execution id again is Duplicate and changes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const again = yield* b.createExecution({
            executionId: c.executionId,
            namespace: NS,
            laneId: c.lane,
            executionKind: "other",
            priority: 99
          })
          expect(again).toEqual({ _tag: "Duplicate", executionId: c.executionId })
          expect(yield* publicState(c.executionId)).toBe("active")
          expect((yield* info(c.executionId)).executionKind).toBe("conformance")
        }))

      t.test("createExecutions: a batch over many partitions and two lanes, each item as its own create, in order", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const [first, second] = [yield* newLane("batch"), yield* newLane("batch")]
          const existing = yield* create({ laneId: first })
          const t0 = yield* now
          // ids[4] repeats the idempotency key of ids[2]: a key is scoped to a partition, so on its partition
          const ids = yield* Effect.forEach(Array.from({ length: 12 }, (_, i) => i), (i) => executionIdOnPartition(i === 4 ? 42 : i * 21))
          const item = (i: number, more: Partial<M.CreateExecutionArgsInput> = {}): M.CreateExecutionArgsInput => ({
            executionId: ids[i]!,
            namespace: NS,
            laneId: i % 2 === 0 ? first : second,
            executionKind: "batch",
            ...more
          })
          const results = yield* b.createExecutions([
            item(0, { priority: 1 }),
            item(1),
            { executionId: existing.executionId, namespace: NS, laneId: second, executionKind: "other" },
            item(2, { idempotencyKey: "batch-once" }),
            item(3, { delayUntil: t0 + 60_000 }),
            item(4, { idempotencyKey: "batch-once" }),
            ...[5, 6, 7, 8, 9, 10, 11].map((i) => item(i, { priority: i === 9 ? 5 : 0 }))
          ])
          expect(results).toEqual([
            { _tag: "Created", executionId: ids[0], publicState: "waiting" },
            { _tag: "Created", executionId: ids[1], publicState: "waiting" },
            { _tag: "Duplicate", executionId: existing.executionId },
            { _tag: "Created", executionId: ids[2], publicState: "waiting" },
            { _tag: "Created", executionId: ids[3], publicState: "delayed" },
            { _tag: "Duplicate", executionId: ids[2] },
            ...[5, 6, 7, 8, 9, 10, 11].map((i) => ({ _tag: "Created", executionId: ids[i], publicState: "waiting" }))
          ])
          yield* isAbsent(ids[4]!)
          expect((yield* info(existing.executionId)).executionKind).toBe("conformance")
          // every item is claimable from its own lane, the higher priority first (the others share
          // one creation time on the servers, where ties go by id)
          const claimed = (lane: Ids.LaneId, n: number) =>
            Effect.forEach(Array.from({ length: n }, () => 0), () => Effect.map(claimSome(lane), (h) => payloadOf(h).executionId))
          const [top1, ...rest1] = yield* claimed(first, 6)
          expect(top1).toBe(ids[0])
          expect([...rest1].sort()).toEqual([existing.executionId, ids[2], ids[6], ids[8], ids[10]].sort())
          const [top2, ...rest2] = yield* claimed(second, 5)
          expect(top2).toBe(ids[9])
          expect([...rest2].sort()).toEqual([ids[1], ids[5], ids[7], ids[11]].sort())
          yield* claimNone(first)
          yield* claimNone(second)
        }))

      t.test("a Duplicate writes nothing: a lane first named by a duplicate is not registered", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          const single = yield* newLane("dup-lane")
          const batch = yield* newLane("dup-lane")
          expect(yield* b.createExecution({ executionId: c.executionId, namespace: NS, laneId: single, executionKind: "k" }))
            .toEqual({ _tag: "Duplicate", executionId: c.executionId })
          expect(yield* b.createExecutions([{ executionId: c.executionId, namespace: NS, laneId: batch, executionKind: "k" }]))
            .toEqual([{ _tag: "Duplicate", executionId: c.executionId }])
          for (const lane of [single, batch]) {
            const listed = yield* b.listLanes({ cursor: Ids.unsafe.laneId(lane.slice(0, -1)), limit: 5 })
            expect(listed.lanes).not.toContain(lane)
          }
          expect((yield* info(c.executionId)).laneId).toBe(c.lane)
        }))

      t.test("an idempotency key dedups for 24 h onto the first execution", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const first = yield* create({ laneId: lane, idempotencyKey: "order-17" })
          const secondId = yield* Ids.executionIdSolo(lane)
          const args = { executionId: secondId, namespace: NS, laneId: lane, executionKind: "k", idempotencyKey: "order-17" }
          expect(yield* b.createExecution(args)).toEqual({ _tag: "Duplicate", executionId: first.executionId })
          yield* isAbsent(secondId)
          // an empty key means no dedup
          const e1 = yield* create({ laneId: lane, idempotencyKey: "" })
          const e2 = yield* create({ laneId: lane, idempotencyKey: "" })
          expect(e1.executionId).not.toBe(e2.executionId)
          // the key is scoped by namespace
          const otherNs = yield* b.createExecution({ ...args, executionId: yield* Ids.executionIdSolo(lane), namespace: Ids.unsafe.namespace("conformance-2") })
          expect(otherNs._tag).toBe("Created")
          yield* advance(86_400_001)
          expect((yield* b.createExecution(args))._tag).toBe("Created")
          expect(yield* publicState(secondId)).toBe("waiting")
        }))
    })

    describe("reads", () => {
      t.test("getExecutionInput returns the kind and the payload a worker runs with", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create({ executionKind: "resize", inputPayload: new Uint8Array([1, 2, 3]), payloadEncoding: "binary" })
          const i = Option.getOrThrow(yield* b.getExecutionInput(c.executionId))
          expect(i).toMatchObject({ executionId: c.executionId, executionKind: "resize", laneId: c.lane, namespace: NS })
          expect([...i.payload]).toEqual([1, 2, 3])
          expect(i.payloadEncoding).toBe("binary")
          const empty = yield* create()
          expect(Option.getOrThrow(yield* b.getExecutionInput(empty.executionId)).payload.length).toBe(0)
          expect(Option.isNone(yield* b.getExecutionInput(yield* Ids.executionIdSolo(c.lane)))).toBe(true)
        }))

      t.test("an empty payload encoding is no encoding, and an empty kind reads back empty", () =>
        Effect.gen(function*() {
          const b = yield* backend
          // (Valkey keeps no empty field: an encoding given as "" reads back as none on every backend)
          const c = yield* create({ executionKind: "", inputPayload: new Uint8Array([7]), payloadEncoding: "" })
          for (const i of [yield* b.getExecutionInput(c.executionId), ...(yield* b.getExecutionInputs([c.executionId]))]) {
            const input = Option.getOrThrow(i)
            expect("payloadEncoding" in input).toBe(false)
            expect(input.executionKind).toBe("")
            expect([...input.payload]).toEqual([7])
          }
          // a claim that brings the inputs brings this one too (Valkey once took a core without a
          // stored kind for a missing execution and left the input to the worker)
          const r = yield* b.completeAndClaim([], { args: claimArgs(c.lane), max: 1 })
          expect(r.claimed.map(({ handle, input }) => ({
            id: payloadOf(handle).executionId,
            input: Option.map(input, (i) => ({ kind: i.executionKind, payload: [...i.payload], encoded: "payloadEncoding" in i }))
          }))).toEqual([{ id: c.executionId, input: Option.some({ kind: "", payload: [7], encoded: false }) }])
        }))

      t.test("getExecutionInputs answers each id as getExecutionInput does, at its index", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create({ executionKind: "resize", inputPayload: new Uint8Array([1, 2, 3]), payloadEncoding: "binary" })
          const empty = yield* create({ executionKind: "noop" })
          const missing = yield* Ids.executionIdSolo(c.lane)
          const ids = [empty.executionId, missing, c.executionId, empty.executionId]
          const batch = yield* b.getExecutionInputs(ids)
          const single = yield* Effect.forEach(ids, (id) => b.getExecutionInput(id))
          const plain = (o: Option.Option<ExecutionInput>) => Option.map(o, (i) => ({ ...i, payload: [...i.payload] }))
          expect(batch.map(plain)).toEqual(single.map(plain))
          expect(batch.map((o) => Option.map(o, (i) => i.executionKind))).toEqual([
            Option.some("noop"),
            Option.none(),
            Option.some("resize"),
            Option.some("noop")
          ])
        }))

      t.test("getExecutionInputs refuses an empty or oversized batch and a bad id as a whole", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          yield* failsWith(b.getExecutionInputs([]), "Validation", "InvalidInput")
          yield* failsWith(b.getExecutionInputs(Array.from({ length: 1001 }, () => c.executionId)), "Validation", "LimitExceeded")
          yield* failsWith(b.getExecutionInputs([c.executionId, "not-an-id" as Ids.ExecutionId]), "Validation", "InvalidInput")
        }))

      t.test("reads of a missing execution are None", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const id = yield* Ids.executionIdSolo(yield* newLane())
          expect(Option.isNone(yield* b.describeExecution(id))).toBe(true)
          expect(Option.isNone(yield* b.readExecutionInfo(id))).toBe(true)
          expect(Option.isNone(yield* b.readExecutionState(id))).toBe(true)
          expect(Option.isNone(yield* b.getExecutionResult(id))).toBe(true)
        }))

      t.test("read models follow the execution through its life", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members } = yield* buildFlow(1)
          const m = members[0]!
          expect((yield* info(m.executionId)).flowId).toBe(flowId)
          const t1 = yield* now
          const h = yield* claimSome(m.lane)
          expect(yield* b.readExecutionState(m.executionId)).toEqual(Option.some("active"))
          expect(Option.isNone(yield* b.getExecutionResult(m.executionId))).toBe(true)
          const s = yield* snapshot(m.executionId)
          expect(s.currentAttempt?.attemptId).toBe(payloadOf(h).attemptId)
          yield* advance(7)
          yield* b.complete(h)
          const i = yield* info(m.executionId)
          expect(i.startedAt).toBe(String(t1))
          expect(i.completedAt).toBe(String(t1 + 7))
          expect(yield* b.readExecutionState(m.executionId)).toEqual(Option.some("completed"))
        }))
    })

    describe("cancel_execution", () => {
      t.test("cancels a waiting execution; a second call is ExecutionNotActive", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          expect(yield* b.cancelExecution({ executionId: c.executionId, reason: "no longer needed" })).toEqual({
            _tag: "Cancelled",
            executionId: c.executionId,
            publicState: "cancelled"
          })
          expect(yield* vector(c.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            eligibilityState: "not_applicable",
            terminalOutcome: "cancelled",
            // no attempt ever existed: the attempt state is left as it was (docs/design/executions.md#cancel)
            attemptState: "pending_first_attempt",
            publicState: "cancelled"
          })
          yield* claimNone(c.lane)
          const e = yield* failsWith(
            b.cancelExecution({ executionId: c.executionId, reason: "again" }),
            "Contention",
            "ExecutionNotActive"
          )
          expect(e.notActive?.terminalOutcome).toBe("cancelled")
        }))

      t.test("cancels delayed and dependency-blocked executions", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const delayed = yield* create({ delayUntil: (yield* now) + 60_000 })
          const { ids } = yield* buildFlow(2, [[0, 1]])
          expect(yield* publicState(ids[1]!)).toBe("waiting_children")
          for (const id of [delayed.executionId, ids[1]!]) {
            yield* b.cancelExecution({ executionId: id, reason: "x" })
            expect(yield* publicState(id)).toBe("cancelled")
          }
          yield* advance(60_000)
          yield* Effect.flatMap(maintenance, (m) => m.promoteDelayed())
          expect(yield* publicState(delayed.executionId)).toBe("cancelled")
        }))

      t.test("cancels a suspended execution and closes its waitpoint", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const s = yield* suspendSingle(c.handle)
          yield* b.cancelExecution({ executionId: c.executionId, reason: "x" })
          expect(yield* publicState(c.executionId)).toBe("cancelled")
          expect((yield* snapshot(c.executionId)).currentWaitpoint).toBeUndefined()
          expect((yield* b.listPendingWaitpoints({ executionId: c.executionId })).entries).toEqual([])
          yield* failsWith(
            signal({ executionId: c.executionId, waitpointId: s.waitpointId, token: s.token }),
            "State",
            "TargetNotSignalable"
          )
        }))

      t.test("on an active execution: operator_override cancels; other sources are fenced", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const p = payloadOf(c.handle)
          yield* failsWith(
            b.cancelExecution({
              executionId: c.executionId,
              reason: "x",
              source: "lease_holder",
              leaseId: yield* Ids.newLeaseId,
              leaseEpoch: p.leaseEpoch
            }),
            "State",
            "StaleLease"
          )
          yield* failsWith(
            b.cancelExecution({
              executionId: c.executionId,
              reason: "x",
              source: "lease_holder",
              leaseId: p.leaseId,
              leaseEpoch: (p.leaseEpoch + 1) as typeof p.leaseEpoch
            }),
            "State",
            "StaleLease"
          )
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* b.cancelExecution({
            executionId: c.executionId,
            reason: "x",
            source: "lease_holder",
            leaseId: p.leaseId,
            leaseEpoch: p.leaseEpoch
          })
          expect(yield* publicState(c.executionId)).toBe("cancelled")

          const revoked = yield* createAndClaim()
          yield* b.revokeLease({ executionId: revoked.executionId, reason: "x" })
          yield* failsWith(
            b.cancelExecution({ executionId: revoked.executionId, reason: "x", source: "lease_holder" }),
            "State",
            "LeaseRevoked"
          )
          yield* b.cancelExecution({ executionId: revoked.executionId, reason: "x" })
          expect(yield* publicState(revoked.executionId)).toBe("cancelled")
        }))

      t.test("a missing execution is NotFound(execution)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const executionId = yield* Ids.executionIdSolo(yield* newLane())
          const e = yield* failsWith(b.cancelExecution({ executionId, reason: "x" }), "NotFound")
          expect(e.entity).toBe("execution")
          expect(e.id).toBe(executionId)
        }))
    })

    describe("replay_execution", () => {
      t.test("a terminal execution replays into waiting and the next claim is a new attempt", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const outcomes = [
            (h: Parameters<typeof b.complete>[0]) => b.complete(h),
            (h: Parameters<typeof b.complete>[0]) =>
              Effect.asVoid(b.fail(h, { reason: { message: "x" }, classification: "Permanent" })),
            (h: Parameters<typeof b.complete>[0]) => b.cancel(h, { reason: "x" })
          ]
          for (const end of outcomes) {
            const c = yield* createAndClaim()
            yield* end(c.handle)
            expect(yield* b.replayExecution(c.executionId)).toEqual({ _tag: "Replayed", publicState: "waiting" })
            expect(yield* vector(c.executionId)).toEqual({
              lifecyclePhase: "runnable",
              ownershipState: "unowned",
              eligibilityState: "eligible_now",
              blockingReason: "waiting_for_worker",
              terminalOutcome: "none",
              attemptState: "pending_replay_attempt",
              publicState: "waiting"
            })
            expect((yield* info(c.executionId)).completedAt).toBeUndefined()
            const h = yield* claimSome(c.lane)
            expect(h.kind).toBe("fresh")
            expect(payloadOf(h)).toMatchObject({ attemptIndex: 1, leaseEpoch: 2 })
            // the old attempt's handle does not own the replay
            yield* failsWith(b.complete(c.handle), "State", "StaleLease")
            yield* b.complete(h)
          }
        }))

      t.test("a replay drops the old result: a replayed run completed without a payload has none", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.complete(c.handle, { payload: new TextEncoder().encode("first") })
          expect(Option.isSome(yield* b.getExecutionResult(c.executionId))).toBe(true)
          yield* b.replayExecution(c.executionId)
          expect(Option.isNone(yield* b.getExecutionResult(c.executionId))).toBe(true)
          yield* b.complete(yield* claimSome(c.lane))
          expect(yield* publicState(c.executionId)).toBe("completed")
          expect(Option.isNone(yield* b.getExecutionResult(c.executionId))).toBe(true)
        }))

      t.test("is not idempotent: a second replay is State(ExecutionNotTerminal)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.complete(c.handle)
          yield* b.replayExecution(c.executionId)
          yield* failsWith(b.replayExecution(c.executionId), "State", "ExecutionNotTerminal")
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))

      t.test("a non-terminal execution is State(ExecutionNotTerminal); a missing one NotFound", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const waiting = yield* create()
          yield* failsWith(b.replayExecution(waiting.executionId), "State", "ExecutionNotTerminal")
          const active = yield* createAndClaim()
          yield* failsWith(b.replayExecution(active.executionId), "State", "ExecutionNotTerminal")
          const e = yield* failsWith(b.replayExecution(yield* Ids.executionIdSolo(waiting.lane)), "NotFound")
          expect(e.entity).toBe("execution")
        }))

      t.test("replays are capped by max_replay_count: State(MaxReplaysExhausted)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({ policy: { maxReplayCount: 2 } })
          yield* b.complete(c.handle)
          for (let i = 0; i < 2; i++) {
            yield* b.replayExecution(c.executionId)
            yield* b.complete(yield* claimSome(c.lane))
          }
          yield* failsWith(b.replayExecution(c.executionId), "State", "MaxReplaysExhausted")
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))

      t.test("the default cap is 10 replays", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          yield* b.cancelExecution({ executionId: c.executionId, reason: "x" })
          for (let i = 0; i < 10; i++) {
            yield* b.replayExecution(c.executionId)
            yield* b.cancelExecution({ executionId: c.executionId, reason: "x" })
          }
          yield* failsWith(b.replayExecution(c.executionId), "State", "MaxReplaysExhausted")
        }))

      t.test("a replayed upstream re-runs but its already-satisfied child is not touched", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, members, ids } = yield* buildFlow(2)
          yield* addEdge(flowId, ids[0]!, ids[1]!)
          yield* b.complete(yield* claimSome(members[0]!.lane))
          expect(yield* publicState(ids[1]!)).toBe("waiting")
          yield* b.replayExecution(ids[0]!)
          expect(yield* publicState(ids[1]!)).toBe("waiting")
        }))
    })

    describe("maintenance and lifecycle", () => {
      t.test("every maintenance pass runs and reports {pass, processed, more}", () =>
        Effect.gen(function*() {
          const m = yield* maintenance
          for (const name of passNames) {
            const r = yield* m[name]({ batchSize: 10 })
            expect(r.pass).toBe(name)
            expect(Number.isInteger(r.processed) && r.processed >= 0 && r.processed <= 10).toBe(true)
            expect(typeof r.more).toBe("boolean")
            if (t.options.fresh) expect(r).toEqual({ pass: name, processed: 0, more: false })
          }
        }))

      t.test("backendLabel, ping and prepare", () =>
        Effect.gen(function*() {
          const b = yield* backend
          expect(["memory", "valkey", "postgres"]).toContain(b.backendLabel)
          yield* b.ping()
          const first = yield* b.prepare()
          expect(["NoOp", "Applied"]).toContain(first._tag)
          const second = yield* b.prepare()
          expect(second._tag).toBe(first._tag)
          // a handle carries the backend's label
          const c = yield* createAndClaim()
          expect(c.handle.backend).toBe(b.backendLabel)
        }))

      t.freshOnly("shutdownPrepare drains within its grace", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* b.shutdownPrepare(Duration.seconds(5))
        }))
    })
  })
