// The Lua function library called directly, below the service boundary: stores written by earlier
// library versions, the batched index writes, expiries, staged blobs, the id registry, summary
// patches and the event streams. What a function writes before it can fail is in
// valkey-library-writes.test.ts.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Clock, Effect, Option, TestClock } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import { Maintenance } from "../src/Maintenance.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"
import {
  adminConnection,
  claimPolicy,
  fcall,
  fcallKeys,
  keyBases,
  lane,
  refused,
  replyOf
} from "./support/valkeyLibrary.js"

const url = inject("valkeyUrl")
const prefix = `lib-${process.pid}-${Date.now().toString(36)}`
const { base } = keyBases(prefix)

describe("valkey function library", () => {
  // the layer loads the library; the tests then call it directly
  layer(ValkeyBackend.layer({ url, keyPrefix: prefix, clock: "effect", hmacSecret: testHmacSecret }), { timeout: 60_000 })((it) => {
    const admin = () => adminConnection(url)

    describe("a store written by library version 3", () => {
      // Version 3 wrote an attempt record (`:a:<index>`) at each claim and kept no run kind nor
      // stream flag in the core; version 4 reads such a live run from its attempt record.
      it.scoped("a live run it began: its kind from the attempt record; its completion closes the stream", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const core = `${base(Ids.executionPartition(id))}:e:${id}`
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag !== "Some") return expect.unreachable("no claim")
          yield* b.appendFrame(h.value, { bytes: new TextEncoder().encode("x"), kind: "stdout" })
          expect(yield* Effect.promise(() => r.hmget(core, "rk", "so"))).toEqual(["i", "1"])
          expect(yield* Effect.promise(() => r.exists(`${core}:a:0`))).toBe(0)
          // the same run as version 3 stored it
          yield* Effect.promise(() => r.hdel(core, "rk", "so"))
          yield* Effect.promise(() => r.hset(`${core}:a:0`, "attempt_type", "retry", "attempt_state", "started"))
          const live = yield* b.describeExecution(id)
          expect(live._tag === "Some" && live.value.attemptHistory.map((x) => [x.kind, x.outcome])).toEqual([["retry", "running"]])
          yield* b.complete(h.value)
          const done = yield* b.describeExecution(id)
          expect(done._tag === "Some" && done.value.attemptHistory.map((x) => [x.kind, x.outcome])).toEqual([["retry", "completed"]])
          const frames = yield* b.readStream({
            executionId: id,
            attemptIndex: 0 as Ids.AttemptIndex,
            from: { _tag: "Start" },
            to: { _tag: "End" },
            countLimit: 10
          })
          expect(frames.closedReason).toBe("attempt_success")
        }))
    })

    describe("the completed core (library version 10) and a store written by version 9", () => {
      // Version 10 keeps a completed run in the lease fields the completion leaves (w, wi, la: no
      // rw, rwi, rs copies) and stores last_mutation_at (tm) only while it differs from
      // last_transition_at (tt); version 9 copied the run and stored tm beside tt.
      const completed = Effect.gen(function*() {
        const b = yield* EngineBackend
        const l = yield* lane
        const id = yield* Ids.executionIdSolo(l)
        yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
        yield* TestClock.adjust("5 millis")
        const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
        if (h._tag !== "Some") return expect.unreachable("no claim")
        yield* TestClock.adjust("5 millis")
        yield* b.complete(h.value)
        return { id, core: `${base(Ids.executionPartition(id))}:e:${id}` }
      })
      const seen = (id: Ids.ExecutionId) =>
        Effect.flatMap(EngineBackend, (b) => b.describeExecution(id)).pipe(Effect.map((s) => {
          if (s._tag !== "Some") return expect.unreachable("no snapshot")
          const v = s.value
          return {
            state: v.publicState,
            lease: v.currentLease,
            lastMutationAt: v.lastMutationAt,
            startedAt: v.startedAt,
            runs: v.attemptHistory.map((x) => [x.attemptIndex, x.kind, x.workerId, x.workerInstanceId, x.outcome])
          }
        }))
      const completedRun = [[0, "initial", "w", "w-i", "completed"]]

      it.scoped("a completion writes no copies of its run nor tm; the snapshot shows the run and no lease", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const done = yield* completed
          const stored = yield* Effect.promise(() => r.hgetall(done.core))
          expect(Object.keys(stored).filter((f) => ["rw", "rwi", "rs", "tm", "li", "lx", "sa", "ai", "le"].includes(f))).toEqual([])
          expect([stored["w"], stored["wi"], stored["la"] !== undefined, stored["tt"] !== undefined]).toEqual(["w", "w-i", true, true])
          const s = yield* seen(done.id)
          expect(s.state).toBe("completed")
          expect(s.lease).toBeUndefined()
          expect(s.lastMutationAt).toBe(Number(stored["tt"]))
          expect(s.startedAt).toBe(Number(stored["la"]))
          expect(s.runs).toEqual(completedRun)
        }))

      it.scoped("a completed core as version 9 stored it is read, and a replay moves its run to the history once", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const done = yield* completed
          // the same core as version 9 stored it: the run copied to rw/rwi/rs, the lease fields gone, tm beside tt
          const st = yield* Effect.promise(() => r.hmget(done.core, "w", "wi", "la", "tt"))
          yield* Effect.promise(() => r.hset(done.core, "rw", st[0]!, "rwi", st[1]!, "rs", st[2]!, "tm", st[3]!))
          yield* Effect.promise(() => r.hdel(done.core, "w", "wi", "la"))
          const s = yield* seen(done.id)
          expect([s.state, s.lease, s.lastMutationAt, s.runs]).toEqual(["completed", undefined, Number(st[3]), completedRun])
          yield* b.replayExecution(done.id)
          const fields = yield* Effect.promise(() => r.hgetall(done.core))
          expect(Object.keys(fields).filter((f) => ["rw", "rwi", "rs", "w", "wi", "la"].includes(f))).toEqual([])
          expect((yield* seen(done.id)).runs).toEqual(completedRun)
        }))

      it.scoped("a replay of a version 10 completion moves its run to the history once and clears the lease fields", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const done = yield* completed
          yield* b.replayExecution(done.id)
          const fields = yield* Effect.promise(() => r.hgetall(done.core))
          expect(Object.keys(fields).filter((f) => ["rw", "rwi", "rs", "w", "wi", "la", "li"].includes(f))).toEqual([])
          const s = yield* seen(done.id)
          expect([s.state, s.lease, s.runs]).toEqual(["waiting", undefined, completedRun])
          // claimed and completed again: two runs
          const h = yield* b.claim({ lane: fields["l"] as Ids.LaneId, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag !== "Some") return expect.unreachable("no claim")
          yield* b.complete(h.value)
          expect((yield* seen(done.id)).runs).toEqual([...completedRun, [1, "replay", "w", "w-i", "completed"]])
        }))

      it.scoped("a claim stores no attempt index nor lease epoch equal to the count's; ones a version 9 claim stored are kept current", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const attempt = (id: Ids.ExecutionId) =>
            Effect.map(b.describeExecution(id), (s) => s._tag === "Some" ? s.value.currentAttempt?.attemptIndex : "none")
          const again = (id: Ids.ExecutionId, l: Ids.LaneId) =>
            Effect.gen(function*() {
              yield* b.replayExecution(id)
              yield* TestClock.adjust("5 millis")
              const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
              if (h._tag !== "Some") return expect.unreachable("no claim")
              return h.value
            })
          // version 10 all along: no ai, the index read from n
          const fresh = yield* completed
          const l = (yield* Effect.promise(() => r.hget(fresh.core, "l"))) as Ids.LaneId
          const started = (yield* Effect.promise(() => r.hget(fresh.core, "la")))!
          expect(yield* Effect.promise(() => r.hmget(fresh.core, "ai", "le", "n"))).toEqual([null, null, "1"])
          expect(yield* attempt(fresh.id)).toBe(0)
          const h1 = yield* again(fresh.id, l)
          expect(yield* Effect.promise(() => r.hmget(fresh.core, "ai", "le", "n"))).toEqual([null, null, "2"])
          // started_at, read from the first lease while that lasted, is stored once a later one replaces it
          expect(yield* Effect.promise(() => r.hget(fresh.core, "sa"))).toBe(started)
          expect((yield* seen(fresh.id)).startedAt).toBe(Number(started))
          expect(yield* attempt(fresh.id)).toBe(1)
          const snap = yield* b.describeExecution(fresh.id)
          expect(snap._tag === "Some" && snap.value.currentLease?.leaseEpoch).toBe(2)
          yield* b.complete(h1)
          expect(yield* attempt(fresh.id)).toBe(1)
          // a version 9 core: ai and le stored beside n, written again by the next claim
          const old = yield* completed
          yield* Effect.promise(() => r.hset(old.core, "ai", "0", "le", "1"))
          yield* again(old.id, (yield* Effect.promise(() => r.hget(old.core, "l"))) as Ids.LaneId)
          expect(yield* Effect.promise(() => r.hmget(old.core, "ai", "le", "n"))).toEqual(["1", "2", "2"])
          expect(yield* attempt(old.id)).toBe(1)
        }))

      it.scoped("an active core as version 9 stored it (tm beside tt) completes; a renewal's tm moves with the next transition", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const core = `${base(Ids.executionPartition(id))}:e:${id}`
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          yield* TestClock.adjust("5 millis")
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag !== "Some") return expect.unreachable("no claim")
          expect(yield* Effect.promise(() => r.hexists(core, "tm"))).toBe(0)
          const tt = yield* Effect.promise(() => r.hget(core, "tt"))
          yield* Effect.promise(() => r.hset(core, "tm", tt!))
          expect((yield* seen(id)).lastMutationAt).toBe(Number(tt))
          yield* TestClock.adjust("5 millis")
          yield* b.renew(h.value)
          const tm = Number(yield* Effect.promise(() => r.hget(core, "tm")))
          expect(tm).toBeGreaterThan(Number(tt))
          expect((yield* seen(id)).lastMutationAt).toBe(tm)
          yield* TestClock.adjust("5 millis")
          yield* b.complete(h.value)
          const after = yield* Effect.promise(() => r.hmget(core, "tt", "tm"))
          expect(after[0]).toBe(after[1])
          expect(Number(after[0])).toBeGreaterThan(tm)
          const s = yield* seen(id)
          expect([s.state, s.lastMutationAt, s.runs]).toEqual(["completed", Number(after[0]), completedRun])
        }))
    })

    describe("results (library version 5) and a store written by version 4", () => {
      // Version 5 keeps a result of at most 48 bytes in the core (field `rv`), a larger one in
      // `:result`; version 4 kept every result in `:result`, which is still read.
      const completedWith = (payload: Uint8Array) =>
        Effect.gen(function*() {
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag !== "Some") return expect.unreachable("no claim")
          yield* b.complete(h.value, { payload })
          return { id, core: `${base(Ids.executionPartition(id))}:e:${id}` }
        })
      const bytes = (s: string) => new TextEncoder().encode(s)

      it.scoped("a small result is a field of the core, a larger one its own key; both read back; a replay drops either", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const small = yield* completedWith(bytes("x".repeat(48)))
          expect(yield* Effect.promise(() => r.hget(small.core, "rv"))).toBe("x".repeat(48))
          expect(yield* Effect.promise(() => r.exists(`${small.core}:result`))).toBe(0)
          expect(yield* b.getExecutionResult(small.id)).toEqual(Option.some(bytes("x".repeat(48))))
          const large = yield* completedWith(bytes("y".repeat(49)))
          expect(yield* Effect.promise(() => r.hexists(large.core, "rv"))).toBe(0)
          expect(yield* Effect.promise(() => r.get(`${large.core}:result`))).toBe("y".repeat(49))
          expect(yield* b.getExecutionResult(large.id)).toEqual(Option.some(bytes("y".repeat(49))))
          yield* b.replayExecution(small.id)
          yield* b.replayExecution(large.id)
          expect(yield* Effect.promise(() => r.hexists(small.core, "rv"))).toBe(0)
          expect(yield* Effect.promise(() => r.exists(`${large.core}:result`))).toBe(0)
        }))

      it.scoped("a small result version 4 stored in `:result` is read", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const done = yield* completedWith(bytes("ok"))
          // the same result as version 4 stored it
          yield* Effect.promise(() => r.hdel(done.core, "rv"))
          yield* Effect.promise(() => r.set(`${done.core}:result`, "ok"))
          expect(yield* b.getExecutionResult(done.id)).toEqual(Option.some(bytes("ok")))
        }))
    })

    describe("index writes batched per call", () => {
      // The lane state sets, lease_expiry and retention are written per key once per call (FF.zadd,
      // FF.zrem): the sets and the lane counts must end as single writes would leave them.
      it.scoped("after claims and completions in batches, the sets and the lane counts agree with the executions", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 6; i++) {
            const id = yield* Ids.executionIdSolo(l)
            ids.push(id)
            yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          }
          const handles = yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy }, 4)
          expect(handles).toHaveLength(4)
          const out = yield* b.completeMany(handles.slice(0, 3).map((handle) => ({ handle })))
          expect(out.every((x) => x._tag === "Right")).toBe(true)
          const B = base(Ids.executionPartition(ids[0]!))
          const idsOf = (key: string) => Effect.promise(() => r.zrange(key, 0, -1)).pipe(Effect.map((m) => m.map((x) => x.slice(14)).sort()))
          const active = yield* idsOf(`${B}:l:${l}:s=active`)
          const done = yield* idsOf(`${B}:l:${l}:s=completed`)
          expect(active).toHaveLength(1)
          expect(done).toHaveLength(3)
          for (const id of active) {
            expect(yield* Effect.promise(() => r.zscore(`${B}:i:lease_expiry`, id))).not.toBeNull()
            expect(yield* Effect.promise(() => r.zscore(`${B}:i:retention`, id))).toBeNull()
          }
          for (const id of done) {
            expect(ids).toContain(id)
            expect(yield* Effect.promise(() => r.zscore(`${B}:i:lease_expiry`, id))).toBeNull()
            expect(yield* Effect.promise(() => r.zscore(`${B}:i:retention`, id))).not.toBeNull()
          }
          expect(yield* Effect.promise(() => r.hgetall(`${B}:l:${l}:n`))).toMatchObject({ waiting: "2", active: "1", completed: "3" })
        }))

      // A queued ZADD that takes one of these sets past 32 entries makes it a skiplist first (a
      // member longer than any listpack value, added and removed around the ZADD): only the
      // encoding changes, no member is left behind and the counts stay those of the executions.
      it.scoped("a set past 32 entries is a skiplist, its members and counts those of the executions alone", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 48; i++) ids.push(yield* Ids.executionIdSolo(l))
          yield* b.createExecutions(ids.map((executionId) => ({
            executionId,
            laneId: l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k"
          })))
          const B = base(Ids.executionPartition(ids[0]!))
          const activeKey = `${B}:l:${l}:s=active`
          const encoding = (key: string) => Effect.promise(() => r.call("OBJECT", "ENCODING", key) as Promise<string | null>)
          const longest = (key: string) =>
            Effect.promise(() => r.zrangeBuffer(key, 0, -1)).pipe(Effect.map((m) => Math.max(0, ...m.map((x) => x.length))))
          const first = yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy }, 20)
          expect(first).toHaveLength(20)
          // (20 entries: still a listpack)
          expect(yield* encoding(activeKey)).toBe("listpack")
          const second = yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy }, 20)
          expect(second).toHaveLength(20)
          expect(yield* encoding(activeKey)).toBe("skiplist")
          expect(yield* encoding(`${B}:i:lease_expiry`)).toBe("skiplist")
          expect(yield* Effect.promise(() => r.zcard(activeKey))).toBe(40)
          expect(yield* longest(activeKey)).toBeLessThan(64)
          expect(yield* longest(`${B}:i:lease_expiry`)).toBeLessThan(64)
          let leased = 0
          for (const id of ids) {
            if ((yield* Effect.promise(() => r.zscore(`${B}:i:lease_expiry`, id))) !== null) leased++
          }
          expect(leased).toBe(40)
          const out = yield* b.completeMany([...first, ...second].map((handle) => ({ handle })))
          expect(out.every((x) => x._tag === "Right")).toBe(true)
          const doneKey = `${B}:l:${l}:s=completed`
          // (40 added by one call: made a skiplist as it is created)
          expect(yield* encoding(doneKey)).toBe("skiplist")
          expect(yield* Effect.promise(() => r.zcard(doneKey))).toBe(40)
          expect(yield* longest(doneKey)).toBeLessThan(64)
          expect(yield* Effect.promise(() => r.exists(activeKey))).toBe(0)
          expect(yield* Effect.promise(() => r.hgetall(`${B}:l:${l}:n`))).toMatchObject({ waiting: "8", active: "0", completed: "40" })
        }))
    })

    describe("a user that may not call OBJECT", () => {
      // The skiplist conversion asks the set's encoding with redis.pcall: refused, the set stays a
      // listpack and the call (whose other writes are made by then) completes.
      it.scoped("completes 40 executions in one call; s=completed stays a listpack", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 40; i++) ids.push(yield* Ids.executionIdSolo(l))
          yield* b.createExecutions(ids.map((executionId) => ({
            executionId,
            laneId: l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k"
          })))
          expect(yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy }, 40)).toHaveLength(40)
          const p = Ids.executionPartition(ids[0]!)
          const fields: Array<string> = []
          for (const id of ids) {
            const [aid, li, n] = yield* Effect.promise(() => r.hmget(`${base(p)}:e:${id}`, "aid", "li", "n"))
            fields.push(id, String(Number(n) - 1), aid!, li!, n!, String(p), "")
          }
          const user = `nobj-${process.pid}`
          yield* Effect.promise(() => r.call("ACL", "SETUSER", user, "on", "nopass", "~*", "&*", "+@all", "-object"))
          yield* Effect.addFinalizer(() => Effect.promise(() => r.call("ACL", "DELUSER", user)))
          const limited = yield* Effect.acquireRelease(
            Effect.sync(() => new Redis(url, { maxRetriesPerRequest: 1, username: user, password: "x" })),
            (c) => Effect.promise(() => c.quit())
          )
          const out = yield* fcall(limited, "ff_complete_many", `${prefix}:lanes`, { prefix, partitions: 256, fi: 3, fn: 40 }, fields)
          expect(replyOf(out)).toEqual([1, "OK", "", ...ids.map(() => "")])
          const doneKey = `${base(p)}:l:${l}:s=completed`
          expect(yield* Effect.promise(() => r.zcard(doneKey))).toBe(40)
          expect(yield* Effect.promise(() => r.call("OBJECT", "ENCODING", doneKey))).toBe("listpack")
          expect(yield* Effect.promise(() => r.hgetall(`${base(p)}:l:${l}:n`))).toMatchObject({ active: "0", completed: "40" })
        }))
    })

    describe("expireAttempts", () => {
      it.scoped("an attempt_timeout entry that is not the current attempt's due time expires nothing", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const m = yield* Maintenance
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const key = `${base(Ids.executionPartition(id))}:i:attempt_timeout`
          yield* b.createExecution({
            executionId: id,
            laneId: l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k",
            policy: {
              timeoutPolicy: { attemptTimeoutMs: 60_000 },
              retryPolicy: { maxRetries: 3, backoff: { type: "fixed", delayMs: 0 } }
            }
          })
          const h1 = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h1._tag === "None") return expect.fail("nothing claimed")
          expect(yield* b.fail(h1.value, { reason: { message: "x" }, classification: "Transient" }))
            .toMatchObject({ _tag: "RetryScheduled" })
          // an entry left for the runnable execution (by an earlier attempt) is stale: removed
          yield* Effect.promise(() => r.zadd(key, "0", id))
          expect(yield* m.expireAttempts()).toMatchObject({ processed: 0 })
          expect(Option.getOrUndefined(yield* b.readExecutionState(id))).toBe("delayed")
          expect(yield* Effect.promise(() => r.zscore(key, id))).toBeNull()
          // an entry earlier than the current attempt's timeout is moved to that timeout
          yield* m.promoteDelayed()
          const h2 = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h2._tag === "None") return expect.fail("the retry not claimed")
          const due = yield* Effect.promise(() => r.zscore(key, id))
          expect(Number(due)).toBe((yield* Clock.currentTimeMillis) + 60_000)
          yield* Effect.promise(() => r.zadd(key, "0", id))
          expect(yield* m.expireAttempts()).toMatchObject({ processed: 0 })
          expect(Option.getOrUndefined(yield* b.readExecutionState(id))).toBe("active")
          expect(yield* Effect.promise(() => r.zscore(key, id))).toBe(due)
          yield* b.renew(h2.value)
        }))

      it.scoped("an attempt armed by an earlier library (its core without attempt_timeout_at) times out at its entry's time", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const m = yield* Maintenance
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const key = `${base(Ids.executionPartition(id))}:i:attempt_timeout`
          yield* b.createExecution({
            executionId: id,
            laneId: l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k",
            policy: { timeoutPolicy: { attemptTimeoutMs: 1_000 } }
          })
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag === "None") return expect.fail("nothing claimed")
          const due = yield* Effect.promise(() => r.zscore(key, id))
          // the core as that library left it: the due time in the index alone
          yield* Effect.promise(() => r.hdel(`${base(Ids.executionPartition(id))}:e:${id}`, "ato"))
          expect(yield* m.expireAttempts()).toMatchObject({ processed: 0 })
          expect(yield* Effect.promise(() => r.zscore(key, id))).toBe(due)
          yield* TestClock.adjust("2 seconds")
          expect(yield* m.expireAttempts()).toMatchObject({ processed: 1 })
          expect(Option.getOrUndefined(yield* b.readExecutionState(id))).not.toBe("active")
        }))
    })

    describe("listSuspended", () => {
      it.scoped("a cursor that left the index resumes at the first greater id, found by bounded scans", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const p = 7
          const key = `${base(p)}:i:suspended`
          // 25,000 entries in score order whose ids all sort before the cursor, then one after it
          const id = (n: number) => `{fp:${p}}:00000000-0000-4000-8000-${n.toString(16).padStart(12, "0")}`
          for (let i = 0; i < 25_000; i += 5_000) {
            const args: Array<string> = []
            for (let n = i; n < i + 5_000; n++) args.push(String(1_000_000 + n), id(n))
            yield* Effect.promise(() => r.zadd(key, ...args))
          }
          const later = `{fp:${p}}:ffffffff-0000-4000-8000-000000000000`
          yield* Effect.promise(() => r.zadd(key, "2000000", later))
          const gone = `{fp:${p}}:f0000000-0000-4000-8000-000000000000` as Ids.ExecutionId
          const page = yield* b.listSuspended({ partition: `{fp:${p}}` as M.ListSuspendedArgs["partition"], cursor: gone, limit: 5 })
          expect(page.entries.map((e) => e.executionId)).toEqual([later])
          expect(page.nextCursor).toBeUndefined()
          // a cursor still in the index: the page after it, by rank
          const next = yield* b.listSuspended({
            partition: `{fp:${p}}` as M.ListSuspendedArgs["partition"],
            cursor: id(24_997) as Ids.ExecutionId,
            limit: 2
          })
          expect(next.entries.map((e) => [e.executionId, e.suspendedAtMs])).toEqual([[id(24_998), 1_024_998], [id(24_999), 1_024_999]])
          expect(next.nextCursor).toBe(id(24_999))
        }))
    })

    describe("staged blobs", () => {
      it.scoped("a large payload and result are staged and renamed into place; nothing staged is left behind", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const big = new Uint8Array(1024 * 1024).map((_, i) => i % 251)
          const args = { executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k", inputPayload: big }
          expect((yield* b.createExecution(args))._tag).toBe("Created")
          expect((yield* b.createExecution(args))._tag).toBe("Duplicate")
          const input = yield* b.getExecutionInput(id)
          expect(input._tag === "Some" && Buffer.compare(Buffer.from(input.value.payload), Buffer.from(big))).toBe(0)
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag === "None") return expect.fail("nothing claimed")
          yield* b.complete(h.value, { payload: big.slice().reverse() })
          const result = yield* b.getExecutionResult(id)
          expect(result._tag === "Some" && result.value.length).toBe(big.length)
          expect(result._tag === "Some" && result.value[0]).toBe(big[big.length - 1])
          const staged = yield* Effect.promise(() => r.keys(`${prefix}:*:stage:*`))
          expect(staged).toEqual([])
        }))
    })

    describe("the id registry", () => {
      it.scoped("ff_reserve_id takes a free id, keeps it for its owner, refuses another; ff_release_id gives back only what it names", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const key = `${prefix}:sigid:${yield* Ids.newSignalId}`
          const reserve = (owner: string, nonce: string) => Effect.map(fcall(r, "ff_reserve_id", key, { owner, nonce }), (o) => replyOf(o)?.[1])
          const release = (args: object) => Effect.map(fcall(r, "ff_release_id", key, args), (o) => replyOf(o)?.[3])
          const value = Effect.promise(() => r.get(key))
          expect(yield* reserve("{fp:1}:a", "n1")).toBe("CREATED")
          expect(yield* value).toBe("{fp:1}:a|n1")
          expect(yield* reserve("{fp:2}:b", "n2")).toBe("TAKEN")
          expect(yield* value).toBe("{fp:1}:a|n1")
          // the owner again (a retry): kept, under its new nonce, so the first call no longer releases it
          expect(yield* reserve("{fp:1}:a", "n3")).toBe("OWNED")
          expect(yield* release({ owner: "{fp:1}:a", nonce: "n1" })).toBe("0")
          expect(yield* release({ owner: "{fp:2}:b" })).toBe("0")
          expect(yield* value).toBe("{fp:1}:a|n3")
          expect(yield* release({ owner: "{fp:1}:a", nonce: "n3" })).toBe("1")
          expect(yield* value).toBeNull()
          // retention's release names the owner only
          yield* Effect.promise(() => r.set(key, "{fp:1}:a"))
          expect(yield* release({ owner: "{fp:1}:a" })).toBe("1")
          expect(refused(yield* fcall(r, "ff_reserve_id", key, { owner: "{fp:1}:a" }))).toBe("invalid_input")
        }))

      it.scoped("ff_deliver_signal whose registry key names another execution refuses before it writes; a free one is taken", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          const p = Ids.executionPartition(id)
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag === "None") return expect.fail("nothing claimed")
          const binding = yield* Ids.freshWaitpointBinding
          const s = yield* b.suspend(h.value, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...binding }],
            resumeCondition: { _tag: "Single", waitpointKey: binding.waitpointKey, matcher: { _tag: "ByName", name: "never" } }
          })
          expect(yield* Effect.promise(() => r.get(`${prefix}:wpid:${binding.waitpointId}`))).toBe(id)
          const sid = yield* Ids.newSignalId
          const registryKey = `${prefix}:sigid:${sid}`
          yield* Effect.promise(() => r.set(registryKey, "{fp:0}:someone-else"))
          const deliver = fcallKeys(r, "ff_deliver_signal", [base(p), registryKey], {
            execution_id: id,
            waitpoint_id: binding.waitpointId,
            signal_id: sid,
            signal_name: "x",
            token: s.details.waitpointToken
          })
          expect(refused(yield* deliver)).toBe("duplicate_signal")
          expect(yield* Effect.promise(() => r.exists(`${base(p)}:s:${sid}`))).toBe(0)
          expect(yield* Effect.promise(() => r.zcard(`${base(p)}:e:${id}:sigs`))).toBe(0)
          expect(yield* Effect.promise(() => r.get(registryKey))).toBe("{fp:0}:someone-else")
          yield* Effect.promise(() => r.del(registryKey))
          expect(replyOf(yield* deliver)?.[1]).toBe("OK")
          expect(yield* Effect.promise(() => r.get(registryKey))).toBe(id)
        }))
    })

    describe("summary patches", () => {
      it.scoped("a patch rewrites only what it names: order, nesting, escapes and brackets inside strings are kept", () =>
        Effect.gen(function*() {
          const b = yield* EngineBackend
          const l = yield* lane
          const id = yield* Ids.executionIdSolo(l)
          yield* b.createExecution({ executionId: id, laneId: l, namespace: Ids.unsafe.namespace("lib"), executionKind: "k" })
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag === "None") return expect.fail("nothing claimed")
          const patch = (text: string) =>
            b.appendFrame(h.value, {
              bytes: new TextEncoder().encode(text),
              kind: "event",
              mode: { _tag: "DurableSummary", patchKind: "json-merge-patch" }
            })
          yield* patch('{"a":"x}\\"{","b":[{"c":1},"]"],"n":{"m":{"o":1}},"z":true,"k":{"l":[1,{"x":"}"}]}}')
          yield* patch('{"n":{"m":{"p":2}},"a":null,"q":{"r":1},"b":7,"gone":null,"k":{"l":null,"w":"__ff_null__"}}')
          const doc = yield* b.readSummary({ executionId: id, attemptIndex: 0 as Ids.AttemptIndex })
          expect(doc._tag === "Some" && new TextDecoder().decode(doc.value.documentJson)).toBe(
            '{"b":7,"n":{"m":{"o":1,"p":2}},"z":true,"k":{"w":null},"q":{"r":1}}'
          )
        }))
    })

    describe("the event streams", () => {
      /** The events of partition p's stream (each entry holds one or more: e, l, f, d each). */
      const streamEvents = (r: Redis, p: number) =>
        Effect.promise(async () => {
          const entries = (await r.xrange(`${base(p)}:ev`, "-", "+")) as Array<[string, Array<string>]>
          const out: Array<{ readonly e: string; readonly l: string }> = []
          for (const [, v] of entries) {
            if (v[0] === "v") {
              // (library version 10: one field per event, e, l, f and d joined by NUL bytes)
              for (let j = 1; j < v.length; j += 2) {
                const [e, l] = v[j]!.split("\0")
                out.push({ e: e!, l: l! })
              }
            } else for (let j = 0; j + 7 < v.length; j += 8) out.push({ e: v[j + 1]!, l: v[j + 3]! })
          }
          return out
        })
      /** A lane whose partition holds no event stream yet (of 256 partitions, a few hold this file's). */
      const freshLane = (r: Redis) =>
        Effect.gen(function*() {
          for (let i = 0; i < 1000; i++) {
            const l = yield* lane
            const p = Ids.executionPartition(yield* Ids.executionIdSolo(l))
            if ((yield* Effect.promise(() => r.exists(`${base(p)}:ev`))) === 0) return l
          }
          return yield* Effect.dieMessage("no partition without a stream")
        })

      const create = (ids: ReadonlyArray<Ids.ExecutionId>, l: Ids.LaneId) =>
        Effect.flatMap(EngineBackend, (b) =>
          b.createExecutions(ids.map((executionId) => ({
            executionId,
            laneId: l,
            namespace: Ids.unsafe.namespace("lib"),
            executionKind: "k"
          }))))
      /** Every event of `filter`, read in pages of `limit`. */
      const readAll = (filter: M.EventFilter, limit: number, after: M.EventStart = "earliest") =>
        Effect.gen(function*() {
          const b = yield* EngineBackend
          const out: Array<M.EngineEvent> = []
          let from = after
          for (let i = 0; i < 100; i++) {
            const page = yield* b.readEvents({ filter, after: from, limit })
            out.push(...page.events)
            from = page.next
            if (page.events.length < limit) return out
          }
          return expect.fail("too many pages")
        })
      const idOf = (e: M.EngineEvent) => (e._tag === "FlowStateChanged" ? "" : e.executionId)

      it.scoped("a lane's stream is trimmed with its partition's: both stay within the cap", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const cap = 3907 + 64 // FF.EV_CAP + FF.EV_SLACK, in events
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 4200; i++) ids.push(yield* Ids.executionIdSolo(l))
          const p = Ids.executionPartition(ids[0]!)
          for (let i = 0; i < ids.length; i += 1000) yield* create(ids.slice(i, i + 1000), l)
          const events = (yield* streamEvents(r, p)).filter((e) => e.l === l)
          const laneStream = yield* Effect.promise(() => r.xlen(`${base(p)}:l:${l}:ev`))
          expect(events.length).toBeLessThanOrEqual(cap)
          expect(events.length).toBeGreaterThan(3000)
          expect(laneStream).toBeLessThanOrEqual(cap)
          // the count of events kept beside the stream is the stream's
          const all = yield* streamEvents(r, p)
          expect(Number(yield* Effect.promise(() => r.hget(`${base(p)}:evt`, "\0n")))).toBe(all.length)
          // the lane's read starts at its oldest retained event and ends with the newest create
          const page = yield* b.readEvents({ filter: { _tag: "Lane", laneId: l }, limit: 10 })
          expect(page.events.map((e) => e._tag)).toEqual(Array(10).fill("ExecutionCreated"))
          expect(ids.indexOf(idOf(page.events[0]!) as Ids.ExecutionId)).toBe(ids.length - events.length)
        }))

      it.scoped("the events of one call are one entry of the partition's stream and one of the lane's; each keeps its own offset", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 7; i++) ids.push(yield* Ids.executionIdSolo(l))
          const p = Ids.executionPartition(ids[0]!)
          const before = yield* Effect.promise(() => r.xlen(`${base(p)}:ev`))
          yield* create(ids, l)
          expect(yield* Effect.promise(() => r.xlen(`${base(p)}:ev`))).toBe(before + 1)
          expect(yield* Effect.promise(() => r.xlen(`${base(p)}:l:${l}:ev`))).toBe(1)
          // a lane read in pages that end inside the entry: every event once, in order
          for (const limit of [1, 3, 7, 100]) {
            const lanePage = yield* readAll({ _tag: "Lane", laneId: l }, limit)
            expect(lanePage.map(idOf)).toEqual(ids)
            expect(new Set(lanePage.map((e) => e.offset)).size).toBe(7)
          }
          const all = yield* readAll({ _tag: "Lane", laneId: l }, 100)
          // an execution's read finds its event inside the entry, from the start or from an
          // offset inside the entry (before or at the event)
          for (let i = 0; i < 7; i++) {
            const own = yield* readAll({ _tag: "Execution", executionId: ids[i]! }, 10)
            expect(own.map((e) => e.offset)).toEqual([all[i]!.offset])
          }
          const later = yield* readAll({ _tag: "Execution", executionId: ids[5]! }, 10, all[2]!.offset)
          expect(later.map((e) => e.offset)).toEqual([all[5]!.offset])
          expect(yield* readAll({ _tag: "Execution", executionId: ids[2]! }, 10, all[2]!.offset)).toEqual([])
          // the lane's read from an offset inside the entry goes on after it
          expect((yield* readAll({ _tag: "Lane", laneId: l }, 2, all[3]!.offset)).map(idOf)).toEqual(ids.slice(4))
          // the next call's events come after all of them
          const h = yield* b.claim({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy })
          if (h._tag === "None") return expect.fail("nothing claimed")
          const after = yield* readAll({ _tag: "Lane", laneId: l }, 100, all[6]!.offset)
          expect(after.map((e) => e._tag)).toEqual(["Claimed"])
          expect(ids).toContain(idOf(after[0]!))
          expect(after[0]!.offset > all[6]!.offset || after[0]!.offset.length > all[6]!.offset.length).toBe(true)
        }))

      it.scoped("a call with more than 128 events of a partition writes them in entries of 128; reads see each once, in order", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const b = yield* EngineBackend
          const l = yield* lane
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 200; i++) ids.push(yield* Ids.executionIdSolo(l))
          const p = Ids.executionPartition(ids[0]!)
          for (let i = 0; i < ids.length; i += 100) yield* create(ids.slice(i, i + 100), l)
          const before = yield* Effect.promise(() => r.xlen(`${base(p)}:ev`))
          const claimed = yield* b.claimMany({ lane: l, capabilities: { tokens: [] }, policy: claimPolicy }, 200)
          expect(claimed.length).toBe(200)
          // one call: 200 Claimed events in two entries (128 + 72), two lane entries
          expect(yield* Effect.promise(() => r.xlen(`${base(p)}:ev`))).toBe(before + 2)
          expect(yield* Effect.promise(() => r.xlen(`${base(p)}:l:${l}:ev`))).toBe(4)
          for (const limit of [7, 128, 500]) {
            const all = yield* readAll({ _tag: "Lane", laneId: l }, limit)
            expect(all.length).toBe(400)
            expect(new Set(all.map((e) => e.offset)).size).toBe(400)
            expect(all.slice(0, 200).map(idOf)).toEqual(ids)
            expect(new Set(all.slice(200).map((e) => e._tag))).toEqual(new Set(["Claimed"]))
            expect(new Set(all.slice(200).map(idOf))).toEqual(new Set(ids))
          }
          const all = yield* readAll({ _tag: "Lane", laneId: l }, 500)
          // the event at the border of the two entries, and the one after it, read by execution
          for (const i of [327, 328, 329]) {
            const own = yield* readAll({ _tag: "Execution", executionId: idOf(all[i]!) as Ids.ExecutionId }, 10)
            expect(own.map((e) => e.offset)).toEqual([all[ids.indexOf(idOf(all[i]!) as Ids.ExecutionId)]!.offset, all[i]!.offset])
          }
          const events = yield* streamEvents(r, p)
          expect(Number(yield* Effect.promise(() => r.hget(`${base(p)}:evt`, "\0n")))).toBe(events.length)
        }))

      it.scoped("entries of four fields per event (library versions 8 and 9) are read and trimmed beside entries of one field per event", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          const l = yield* lane
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 5; i++) ids.push(yield* Ids.executionIdSolo(l))
          const p = Ids.executionPartition(ids[0]!)
          const k = `${base(p)}:ev`
          yield* create(ids.slice(0, 3), l)
          // the partition's stream rewritten as versions 8 and 9 wrote it: e, l, f, d per event
          const entries = yield* Effect.promise(() => r.xrange(k, "-", "+") as Promise<Array<[string, Array<string>]>>)
          expect(entries.every(([, v]) => v[0] === "v" && v.length % 2 === 0)).toBe(true)
          yield* Effect.promise(() => r.del(k))
          let last = ""
          for (const [id, v] of entries) {
            const fields: Array<string> = []
            for (let j = 1; j < v.length; j += 2) {
              const [e, ln, f, ...d] = v[j]!.split("\0")
              fields.push("e", e!, "l", ln!, "f", f!, "d", d.join("\0"))
            }
            yield* Effect.promise(() => r.xadd(k, id, ...fields))
            const [ms, seq] = id.split("-")
            last = `${ms}-${Number(seq) + (v.length / 2) - 1}`
          }
          yield* Effect.promise(() => r.call("XSETID", k, last))
          yield* create(ids.slice(3), l)
          const after = yield* Effect.promise(() => r.xrange(k, "-", "+") as Promise<Array<[string, Array<string>]>>)
          expect(after.map(([, v]) => v[0])).toEqual([...entries.map(() => "e"), "v"])
          expect((yield* readAll({ _tag: "Lane", laneId: l }, 2)).map(idOf)).toEqual(ids)
          const one = yield* readAll({ _tag: "Execution", executionId: ids[1]! }, 10)
          expect(one.map((e) => [e._tag, idOf(e)])).toEqual([["ExecutionCreated", ids[1]]])
          // the count of events still matches the stream, and the old entries are trimmed by their events
          expect(Number(yield* Effect.promise(() => r.hget(`${base(p)}:evt`, "\0n")))).toBe((yield* streamEvents(r, p)).length)
          yield* Effect.promise(() => r.hset(`${base(p)}:evt`, "\0n", "100000"))
          yield* create([yield* Ids.executionIdSolo(l)], l)
          const kept = yield* Effect.promise(() => r.xrange(k, "-", "+") as Promise<Array<[string, Array<string>]>>)
          expect(kept.length).toBeLessThan(after.length + 1)
        }))

      it.scoped("a stream written one event per entry, without a count (library versions 6 and 7), is read and counted on", () =>
        Effect.gen(function*() {
          const r = yield* admin()
          // a partition without a stream: a store of those versions held only entries of one event,
          // and an earlier test's entry of several on the same partition would be counted as one
          const l = yield* freshLane(r)
          const ids: Array<Ids.ExecutionId> = []
          for (let i = 0; i < 6; i++) ids.push(yield* Ids.executionIdSolo(l))
          const p = Ids.executionPartition(ids[0]!)
          // single creates write one event per entry, as versions 6 and 7 wrote every event; its store had no count
          for (const id of ids.slice(0, 3)) yield* create([id], l)
          yield* Effect.promise(() => r.hdel(`${base(p)}:evt`, "\0n"))
          yield* create(ids.slice(3), l)
          const all = yield* streamEvents(r, p)
          expect(Number(yield* Effect.promise(() => r.hget(`${base(p)}:evt`, "\0n")))).toBe(all.length)
          expect((yield* readAll({ _tag: "Lane", laneId: l }, 2)).map(idOf)).toEqual(ids)
        }))
    })
  })
})
