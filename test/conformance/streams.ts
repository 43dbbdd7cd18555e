/**
 * Attempt streams (docs/design/streams-and-budgets.md#streams): the three append
 * modes, reads and tails with their cursors and bounds, summaries, limits,
 * closing on every attempt end, and fencing of appends.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import type { AttemptIndex, ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  bytes,
  claimSome,
  createAndClaim,
  drive,
  ensureHmac,
  failsWith,
  now,
  pass,
  payloadOf,
  snapshot,
  suspendSingle,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"

const idx = (n: number) => n as AttemptIndex

const START = { _tag: "Start" } as const
const END = { _tag: "End" } as const
const at = (id: string) => ({ _tag: "At", id }) as const

const read = (executionId: ExecutionId, attempt = 0, countLimit = 1_000) =>
  Effect.flatMap(backend, (b) => b.readStream({ executionId, attemptIndex: idx(attempt), from: START, to: END, countLimit }))

const append = (h: M.Handle, payload: string, extra: Partial<M.FrameInput> = {}) =>
  Effect.flatMap(backend, (b) => b.appendFrame(h, { bytes: bytes(payload), kind: "stdout", ...extra }))

const summary = (h: M.Handle, patch: unknown) =>
  append(h, typeof patch === "string" ? patch : JSON.stringify(patch), {
    kind: "event",
    mode: { _tag: "DurableSummary", patchKind: "json-merge-patch" }
  })

const bestEffort = (h: M.Handle, payload: string) =>
  append(h, payload, { kind: "event", mode: { _tag: "BestEffortLive", config: { ttlMs: 10_000 } } })

const streamIdOrder = (a: string, b: string): number => {
  const [am = 0, as = 0] = a.split("-").map(Number)
  const [bm = 0, bs = 0] = b.split("-").map(Number)
  return am !== bm ? am - bm : as - bs
}

export const streams = (t: Tester) =>
  describe("streams", () => {
    describe("append and read", () => {
      t.test("durable frames are appended in order with the documented fields", () =>
        Effect.gen(function*() {
          const c = yield* createAndClaim()
          const t0 = yield* now
          const first = yield* append(c.handle, "hello")
          expect(first.frameCount).toBe(1)
          expect(first.streamId).toMatch(/^\d+-\d+$/)
          expect(first.summaryVersion).toBeUndefined()
          const second = yield* append(c.handle, "world", {
            kind: "stderr",
            frameType: "log.line",
            correlationId: "corr-1"
          })
          expect(second.frameCount).toBe(2)
          expect(streamIdOrder(first.streamId, second.streamId)).toBeLessThan(0)
          const r = yield* read(c.executionId)
          expect(r.closedAt).toBeUndefined()
          expect(r.closedReason).toBeUndefined()
          expect(r.frames.map((f) => f.id)).toEqual([first.streamId, second.streamId])
          expect(r.frames[0]!.fields).toMatchObject({
            frame_type: "stdout",
            payload: "hello",
            encoding: "utf8",
            source: "worker",
            mode: "durable",
            ts: String(t0)
          })
          expect(r.frames[1]!.fields).toMatchObject({
            frame_type: "log.line",
            payload: "world",
            mode: "durable",
            correlation_id: "corr-1"
          })
        }))

      t.test("readStream ranges are inclusive and bounded by countLimit", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const ids: Array<string> = []
          for (let i = 0; i < 5; i++) {
            ids.push((yield* append(c.handle, `f${i}`)).streamId)
            yield* advance(1)
          }
          const range = (from: M.StreamCursor, to: M.StreamCursor, countLimit: number) =>
            Effect.map(
              b.readStream({ executionId: c.executionId, attemptIndex: idx(0), from, to, countLimit }),
              (r) => r.frames.map((f) => f.fields["payload"])
            )
          expect(yield* range(at(ids[1]!), at(ids[3]!), 100)).toEqual(["f1", "f2", "f3"])
          expect(yield* range(START, END, 2)).toEqual(["f0", "f1"])
          expect(yield* range(at(ids[4]!), END, 100)).toEqual(["f4"])
          expect(yield* range(START, at(ids[0]!), 100)).toEqual(["f0"])
          // a bare millisecond cursor is accepted
          expect(yield* range(at(ids[2]!.split("-")[0]!), END, 100)).toEqual(["f2", "f3", "f4"])
        }))

      t.test("a stream that was never written reads as empty and open", () =>
        Effect.gen(function*() {
          const c = yield* createAndClaim()
          const r = yield* read(c.executionId)
          expect(r).toEqual({ frames: [] })
          const other = yield* read(c.executionId, 7)
          expect(other.frames).toEqual([])
        }))

      t.test("frame_count counts every append and each attempt has its own stream", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim({
            policy: { retryPolicy: { maxRetries: 1, backoff: { type: "fixed", delayMs: 0 } } }
          })
          const mutatedAt = (yield* snapshot(c.executionId)).lastMutationAt
          yield* advance(10)
          yield* append(c.handle, "a0")
          yield* append(c.handle, "a1")
          expect((yield* append(c.handle, "a2")).frameCount).toBe(3)
          // appends touch the stream's metadata only
          expect((yield* snapshot(c.executionId)).lastMutationAt).toBe(mutatedAt)
          yield* b.fail(c.handle, { reason: { message: "x" }, classification: "Transient" })
          yield* pass("promoteDelayed")
          const h = yield* claimSome(c.lane)
          expect(payloadOf(h).attemptIndex).toBe(1)
          expect((yield* append(h, "b0")).frameCount).toBe(1)
          const first = yield* read(c.executionId, 0)
          expect(first.frames.map((f) => f.fields["payload"])).toEqual(["a0", "a1", "a2"])
          expect(first.closedReason).toBe("attempt_failure")
          const second = yield* read(c.executionId, 1)
          expect(second.frames.map((f) => f.fields["payload"])).toEqual(["b0"])
          expect(second.closedAt).toBeUndefined()
        }))
    })

    describe("closing", () => {
      t.test("every attempt end closes the stream with its reason; later appends are StreamClosed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const ends: ReadonlyArray<readonly [string, (h: M.Handle) => Effect.Effect<unknown, unknown, never>]> = [
            ["attempt_success", (h) => b.complete(h)],
            ["attempt_failure", (h) => b.fail(h, { reason: { message: "x" }, classification: "Permanent" })],
            ["attempt_cancelled", (h) => b.cancel(h, { reason: "x" })]
          ]
          for (const [reason, end] of ends) {
            const c = yield* createAndClaim()
            yield* append(c.handle, "before")
            yield* advance(3)
            const t1 = yield* now
            yield* end(c.handle)
            const r = yield* read(c.executionId)
            expect([reason, r.closedReason, r.closedAt]).toEqual([reason, reason, t1])
            expect(r.frames.length).toBe(1)
            yield* failsWith(append(c.handle, "after"), "State", "StreamClosed")
          }
        }))

      t.test("lease expiry closes the stream lease_expired", () =>
        Effect.gen(function*() {
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          yield* append(c.handle, "x")
          yield* advance(1_000)
          yield* pass("expireLeases")
          expect((yield* read(c.executionId)).closedReason).toBe("lease_expired")
        }))

      t.test("an operator cancel closes the stream attempt_cancelled", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* append(c.handle, "x")
          yield* b.cancelExecution({ executionId: c.executionId, reason: "stop" })
          expect((yield* read(c.executionId)).closedReason).toBe("attempt_cancelled")
        }))

      t.test("tailStream reports the close markers of a closed stream", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const last = (yield* append(c.handle, "x")).streamId
          yield* b.complete(c.handle)
          const r = yield* b.tailStream({
            executionId: c.executionId,
            attemptIndex: idx(0),
            after: at(last),
            blockMs: 0,
            countLimit: 10
          })
          expect(r.frames).toEqual([])
          expect(r.closedReason).toBe("attempt_success")
          expect(r.closedAt).toBeDefined()
        }))
    })

    describe("fencing of appends", () => {
      t.test("a revoked, expired or reclaimed holder gets StaleOwnerCannotAppend and writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const revoked = yield* createAndClaim()
          yield* b.revokeLease({ executionId: revoked.executionId, reason: "x" })
          yield* failsWith(append(revoked.handle, "x"), "State", "StaleOwnerCannotAppend")
          expect((yield* read(revoked.executionId)).frames).toEqual([])

          const expired = yield* createAndClaim({}, { ttl: 500 })
          yield* advance(500)
          yield* failsWith(append(expired.handle, "x"), "State", "StaleOwnerCannotAppend")
          // append_frame does not mark the expiry
          expect((yield* vector(expired.executionId)).ownershipState).toBe("leased")

          yield* pass("expireLeases")
          const newHolder = yield* claimSome(expired.lane)
          yield* failsWith(append(expired.handle, "x"), "State", "StaleOwnerCannotAppend")
          expect((yield* append(newHolder, "mine")).frameCount).toBe(1)
          expect((yield* read(expired.executionId, 1)).frames.map((f) => f.fields["payload"])).toEqual(["mine"])
        }))

      t.test("a suspended execution's stream is closed to appends", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const c = yield* createAndClaim()
          yield* suspendSingle(c.handle)
          yield* failsWith(append(c.handle, "x"), "State", "StreamClosed")
        }))
    })

    describe("limits", () => {
      t.test("a frame of 65 536 bytes is fine; one byte more is RetentionLimitExceeded and not written", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.appendFrame(c.handle, { bytes: new Uint8Array(65_536).fill(97), kind: "blob" })
          yield* validationFails(
            b.appendFrame(c.handle, { bytes: new Uint8Array(65_537).fill(97), kind: "blob" }),
            "RetentionLimitExceeded"
          )
          const r = yield* read(c.executionId)
          expect(r.frames.length).toBe(1)
          expect(r.frames[0]!.fields["payload"]?.length).toBe(65_536)
          expect((yield* append(c.handle, "next")).frameCount).toBe(2)
        }))

      t.test("an invalid frame type is Validation(InvalidFrameType) and not written", () =>
        Effect.gen(function*() {
          const c = yield* createAndClaim()
          for (const frameType of ["has space", "-leading", "x".repeat(129), "tab\t"]) {
            yield* validationFails(append(c.handle, "x", { frameType }), "InvalidFrameType")
          }
          expect((yield* read(c.executionId)).frames).toEqual([])
          yield* append(c.handle, "ok", { frameType: "a:b/c-d.e_f" })
        }))
    })

    describe("summaries", () => {
      t.test("DurableSummary applies JSON merge patches; readSummary returns the document", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          expect(Option.isNone(yield* b.readSummary({ executionId: c.executionId, attemptIndex: idx(0) }))).toBe(true)
          const t1 = yield* now
          const v1 = yield* summary(c.handle, { a: 1, b: { c: 2, keep: true }, list: [1, 2] })
          expect(v1.summaryVersion).toBe(1)
          yield* advance(50)
          const t2 = yield* now
          const v2 = yield* summary(c.handle, { b: { c: null, d: 3 }, e: "__ff_null__", list: [9] })
          expect(v2.summaryVersion).toBe(2)
          expect(v2.frameCount).toBe(2)
          const doc = Option.getOrThrow(yield* b.readSummary({ executionId: c.executionId, attemptIndex: idx(0) }))
          expect(JSON.parse(text(doc.documentJson))).toEqual({ a: 1, b: { keep: true, d: 3 }, e: null, list: [9] })
          expect(doc).toMatchObject({ version: 2, patchKind: "json-merge-patch", firstAppliedMs: t1, lastUpdatedMs: t2 })
          // the deltas are on the stream too
          const frames = (yield* read(c.executionId)).frames
          expect(frames.map((f) => f.fields["mode"])).toEqual(["summary", "summary"])
          expect(frames.map((f) => f.fields["summary_version"])).toEqual(["1", "2"])
        }))

      t.test("bad patches are InvalidInput and leave the summary unchanged", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* summary(c.handle, { ok: true })
          yield* validationFails(summary(c.handle, "{not json"), "InvalidInput", "patch payload is not valid JSON")
          yield* validationFails(summary(c.handle, [1, 2]), "InvalidInput", "patch must be a JSON object")
          yield* validationFails(summary(c.handle, "42"), "InvalidInput", "patch must be a JSON object")
          let deep: Record<string, unknown> = { leaf: 1 }
          for (let i = 0; i < 17; i++) deep = { n: deep }
          yield* validationFails(summary(c.handle, deep), "InvalidInput", "patch_depth_exceeded")
          const doc = Option.getOrThrow(yield* b.readSummary({ executionId: c.executionId, attemptIndex: idx(0) }))
          expect(doc.version).toBe(1)
          expect(JSON.parse(text(doc.documentJson))).toEqual({ ok: true })
        }))
    })

    describe("best-effort frames and tails", () => {
      t.test("BestEffortLive frames are tagged best_effort and hidden by exclude_best_effort", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const first = yield* append(c.handle, "durable")
          yield* bestEffort(c.handle, "live")
          yield* summary(c.handle, { s: 1 })
          const all = yield* b.tailStream({
            executionId: c.executionId,
            attemptIndex: idx(0),
            after: at("0-0"),
            blockMs: 0,
            countLimit: 100
          })
          expect(all.frames.map((f) => f.fields["mode"])).toEqual(["durable", "best_effort", "summary"])
          const filtered = yield* b.tailStream({
            executionId: c.executionId,
            attemptIndex: idx(0),
            after: at("0-0"),
            blockMs: 0,
            countLimit: 100,
            visibility: "exclude_best_effort"
          })
          expect(filtered.frames.map((f) => f.fields["payload"])).toEqual(["durable", JSON.stringify({ s: 1 })])
          const after = yield* b.tailStream({
            executionId: c.executionId,
            attemptIndex: idx(0),
            after: at(first.streamId),
            blockMs: 0,
            countLimit: 1
          })
          expect(after.frames.map((f) => f.fields["payload"])).toEqual(["live"])
        }))

      t.test("tailStream returns entries strictly after the cursor, immediately when blockMs is 0", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const ids: Array<string> = []
          for (const p of ["a", "b", "c"]) ids.push((yield* append(c.handle, p)).streamId)
          const tail = (after: string) =>
            b.tailStream({ executionId: c.executionId, attemptIndex: idx(0), after: at(after), blockMs: 0, countLimit: 10 })
          expect((yield* tail(ids[0]!)).frames.map((f) => f.fields["payload"])).toEqual(["b", "c"])
          expect((yield* tail(ids[2]!)).frames).toEqual([])
        }))

      t.test("a blocking tail wakes up for a new frame", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const last = (yield* append(c.handle, "old")).streamId
          const fiber = yield* Effect.fork(
            b.tailStream({ executionId: c.executionId, attemptIndex: idx(0), after: at(last), blockMs: 5_000, countLimit: 10 })
          )
          yield* Effect.yieldNow()
          yield* append(c.handle, "new")
          const exit = yield* drive(fiber, { stepMs: 10, maxSteps: 1_000 })
          if (Exit.isFailure(exit)) return expect.fail(String(exit.cause))
          expect(exit.value.frames.map((f) => f.fields["payload"])).toEqual(["new"])
        }))

      t.test("a blocking tail with nothing new returns no frames after blockMs", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const last = (yield* append(c.handle, "old")).streamId
          const fiber = yield* Effect.fork(
            b.tailStream({ executionId: c.executionId, attemptIndex: idx(0), after: at(last), blockMs: 300, countLimit: 10 })
          )
          const exit = yield* drive(fiber, { stepMs: 50, maxSteps: 2_000 })
          if (Exit.isFailure(exit)) return expect.fail(String(exit.cause))
          expect(exit.value.frames).toEqual([])
          yield* Fiber.interrupt(fiber)
        }))
    })

    describe("read arguments", () => {
      t.test("countLimit must be 1..10 000 (read and tail have their own details)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const r = (countLimit: number) =>
            b.readStream({ executionId: c.executionId, attemptIndex: idx(0), from: START, to: END, countLimit })
          yield* validationFails(r(0), "InvalidInput", "count_limit must be >= 1")
          yield* validationFails(r(10_001), "InvalidInput", "count_limit_exceeds_hard_cap")
          yield* r(10_000)
          const tl = (countLimit: number) =>
            b.tailStream({ executionId: c.executionId, attemptIndex: idx(0), after: at("0"), blockMs: 0, countLimit })
          yield* validationFails(tl(0), "InvalidInput", "xread_block: count_limit must be >= 1")
          yield* validationFails(tl(10_001), "InvalidInput", "xread_block: count_limit exceeds STREAM_READ_HARD_CAP (10000)")
        }))

      t.test("cursors must be start, end, <ms> or <ms>-<seq>; tails need a concrete cursor", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          for (const id of ["", "-", "+", "abc", "-1", "1-", "1-2-3", "1.2", "Start", "END"]) {
            yield* validationFails(
              b.readStream({ executionId: c.executionId, attemptIndex: idx(0), from: at(id), to: END, countLimit: 1 }),
              "InvalidInput"
            )
          }
          for (const after of [START, END]) {
            yield* validationFails(
              b.tailStream({ executionId: c.executionId, attemptIndex: idx(0), after, blockMs: 0, countLimit: 1 }),
              "InvalidInput"
            )
          }
          yield* b.readStream({ executionId: c.executionId, attemptIndex: idx(0), from: at("0-0"), to: at("99999999999999-5"), countLimit: 1 })
        }))
    })
  })
