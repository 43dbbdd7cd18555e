/**
 * Batch completions (docs/design/executions.md#lifecycle-operations): completeMany, each item its
 * own complete, and completeAndClaim, a worker's completions and its next claim in one call.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  buildFlow,
  bytes,
  claimArgs,
  claimSome,
  create,
  createAndClaim,
  newLane,
  payloadOf,
  publicState,
  text,
  type Tester,
  validationFails
} from "./helpers.js"

export const completions = (t: Tester) =>
  describe("completions", () => {
  describe("completeMany", () => {
    t.test("each item is its own complete: outcomes by index, results stored, replays succeed", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const done = yield* createAndClaim()
        yield* b.complete(done.handle, { payload: bytes("first") })
        const cancelled = yield* createAndClaim()
        yield* b.cancelExecution({ executionId: cancelled.executionId, reason: "operator" })
        const x = yield* createAndClaim()
        const y = yield* createAndClaim()
        const outcomes = yield* b.completeMany([
          { handle: x.handle, payload: bytes("x") },
          { handle: cancelled.handle },
          { handle: done.handle, payload: bytes("first") },
          { handle: y.handle },
          { handle: y.handle }
        ])
        expect(outcomes.map((o) => o._tag)).toEqual(["Right", "Left", "Right", "Right", "Right"])
        const refused = outcomes[1]!
        expect(Either.isLeft(refused) && refused.left._tag === "Contention" ? refused.left.kind : undefined)
          .toBe("ExecutionNotActive")
        expect(yield* publicState(x.executionId)).toBe("completed")
        expect(yield* publicState(y.executionId)).toBe("completed")
        expect(yield* publicState(cancelled.executionId)).toBe("cancelled")
        expect(Option.map(yield* b.getExecutionResult(x.executionId), text)).toEqual(Option.some("x"))
        expect(Option.isNone(yield* b.getExecutionResult(y.executionId))).toBe(true)
      }))

    t.test("completing a flow member in a batch releases its dependent for the next claim", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flow = yield* buildFlow(3, [[0, 2], [1, 2]])
        const [up1, up2, down] = flow.members
        const h1 = yield* claimSome(up1!.lane)
        const h2 = yield* claimSome(up2!.lane)
        expect(yield* publicState(down!.executionId)).toBe("waiting_children")
        expect(yield* b.completeMany([{ handle: h1 }, { handle: h2, payload: bytes("two") }])).toEqual([
          Either.void,
          Either.void
        ])
        expect(yield* publicState(down!.executionId)).toBe("waiting")
        const next = yield* claimSome(down!.lane)
        expect(payloadOf(next).executionId).toBe(down!.executionId)
      }))

    t.test("a batch that does not validate fails as a whole and completes nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* validationFails(b.completeMany([]), "InvalidInput")
        yield* validationFails(
          b.completeMany(Array.from({ length: 1001 }, () => ({ handle: c.handle }))),
          "LimitExceeded",
          "Limits.batchItems"
        )
        const otherBackend: M.Handle = { ...c.handle, backend: c.handle.backend === "memory" ? "valkey" : "memory" }
        yield* validationFails(b.completeMany([{ handle: c.handle }, { handle: otherBackend }]), "HandleFromOtherBackend")
        yield* validationFails(
          b.completeMany([{ handle: c.handle }, { handle: c.handle, payload: "text" as unknown as Uint8Array }]),
          "InvalidInput"
        )
        expect(yield* publicState(c.executionId)).toBe("active")
        expect(yield* b.completeMany([{ handle: c.handle }])).toEqual([Either.void])
        expect(yield* publicState(c.executionId)).toBe("completed")
      }))
  })

  describe("completeAndClaim", () => {
    /** What a claim of completeAndClaim returns, as ids and inputs. */
    const inputsOf = (claimed: ReadonlyArray<{ readonly handle: M.Handle; readonly input: Option.Option<M.ExecutionInput> }>) =>
      claimed.map(({ handle, input }) => ({
        id: payloadOf(handle).executionId,
        input: Option.map(input, (i) => ({ id: i.executionId, kind: i.executionKind, payload: text(i.payload) }))
      }))

    t.test("completes each item as completeMany and claims as claimMany, each claim with its input", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const cancelled = yield* createAndClaim()
        yield* b.cancelExecution({ executionId: cancelled.executionId, reason: "operator" })
        const x = yield* createAndClaim()
        const y = yield* createAndClaim()
        const lane = yield* newLane()
        const low = yield* create({ laneId: lane, priority: 1, inputPayload: bytes("low") })
        yield* advance(1)
        // (inputs of both sizes: a short one, and one over 48 bytes, which Valkey keeps in a key of its own)
        const long = `high ${"x".repeat(60)}`
        const high = yield* create({ laneId: lane, priority: 5, inputPayload: bytes(long), executionKind: "k2" })
        yield* advance(1)
        const low2 = yield* create({ laneId: lane, priority: 1, inputPayload: bytes("") })
        const r = yield* b.completeAndClaim(
          [{ handle: x.handle, payload: bytes("x") }, { handle: cancelled.handle }, { handle: y.handle }],
          { args: claimArgs(lane), max: 2 }
        )
        expect(r.completed.map((o) => o._tag)).toEqual(["Right", "Left", "Right"])
        const refused = r.completed[1]!
        expect(Either.isLeft(refused) && refused.left._tag === "Contention" ? refused.left.kind : undefined)
          .toBe("ExecutionNotActive")
        expect(yield* publicState(x.executionId)).toBe("completed")
        expect(yield* publicState(y.executionId)).toBe("completed")
        expect(Option.map(yield* b.getExecutionResult(x.executionId), text)).toEqual(Option.some("x"))
        expect(inputsOf(r.claimed)).toEqual([
          { id: high.executionId, input: Option.some({ id: high.executionId, kind: "k2", payload: long }) },
          { id: low.executionId, input: Option.some({ id: low.executionId, kind: "conformance", payload: "low" }) }
        ])
        expect(r.claimed.map(({ handle }) => handle.kind)).toEqual(["fresh", "fresh"])
        expect((yield* b.getExecutionInputs([high.executionId, low.executionId])).map((i) => Option.map(i, (x) => text(x.payload))))
          .toEqual([Option.some(long), Option.some("low")])
        // a claimed handle is a lease like any other: the replay of its completion succeeds too
        const again = yield* b.completeAndClaim(
          [{ handle: x.handle, payload: bytes("x") }, { handle: r.claimed[0]!.handle }],
          { args: claimArgs(lane), max: 5 }
        )
        expect(again.completed).toEqual([Either.void, Either.void])
        expect(yield* publicState(high.executionId)).toBe("completed")
        expect(inputsOf(again.claimed)).toEqual([
          { id: low2.executionId, input: Option.some({ id: low2.executionId, kind: "conformance", payload: "" }) }
        ])
        expect(yield* b.completeAndClaim([], { args: claimArgs(lane), max: 5 })).toEqual({ completed: [], claimed: [] })
        expect(yield* publicState(low.executionId)).toBe("active")
      }))

    t.test("inputs and results of any bytes come back whole: ASCII, UTF-8, not UTF-8, empty", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const payloads = [
          bytes('{"n":1}'),
          bytes("é ✓"),
          new Uint8Array([0xff, 0xfe, 0x80, 0x00, 0x7f]),
          new Uint8Array([0x00]),
          new Uint8Array(0),
          new Uint8Array(300).fill(0x61)
        ]
        const created: Array<ExecutionId> = []
        for (const [i, p] of payloads.entries()) {
          created.push((yield* create({ laneId: lane, inputPayload: p, payloadEncoding: i % 2 === 0 ? "" : "binary" })).executionId)
          yield* advance(1)
        }
        const first = yield* b.completeAndClaim([], { args: claimArgs(lane), max: payloads.length })
        expect(first.claimed.map(({ handle }) => payloadOf(handle).executionId)).toEqual(created)
        expect(first.claimed.map(({ input }) => Option.map(input, (i) => [...i.payload]))).toEqual(
          payloads.map((p) => Option.some([...p]))
        )
        expect(first.claimed.map(({ input }) => Option.map(input, (i) => i.payloadEncoding ?? ""))).toEqual(
          payloads.map((_, i) => Option.some(i % 2 === 0 ? "" : "binary"))
        )
        const done = yield* b.completeAndClaim(
          first.claimed.map(({ handle }, i) => ({ handle, payload: payloads[payloads.length - 1 - i]! })),
          { args: claimArgs(lane), max: 1 }
        )
        expect(done.completed).toEqual(payloads.map(() => Either.void))
        for (const [i, id] of created.entries()) {
          // (an empty payload stores no result)
          const p = payloads[payloads.length - 1 - i]!
          expect(Option.map(yield* b.getExecutionResult(id), (r) => [...r])).toEqual(
            p.length === 0 ? Option.none() : Option.some([...p])
          )
        }
      }))

    t.test("claims what its completions made claimable: a flow child whose dependency resolved", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flow = yield* buildFlow(2, [[0, 1]])
        const [up, down] = flow.members
        const h = yield* claimSome(up!.lane)
        expect(yield* publicState(down!.executionId)).toBe("waiting_children")
        const r = yield* b.completeAndClaim([{ handle: h }], { args: claimArgs(down!.lane), max: 4 })
        expect(r.completed).toEqual([Either.void])
        expect(r.claimed.map(({ handle }) => payloadOf(handle).executionId)).toEqual([down!.executionId])
        expect(Option.map(r.claimed[0]!.input, (i) => i.executionId)).toEqual(Option.some(down!.executionId))
        expect(yield* publicState(down!.executionId)).toBe("active")
      }))

    t.test("no items: a claim with inputs; max 0: completions only; the claim honours kinds", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const other = yield* create({ laneId: lane, executionKind: "other" })
        const mine = yield* create({ laneId: lane, executionKind: "mine", inputPayload: bytes("in") })
        const r = yield* b.completeAndClaim([], { args: claimArgs(lane, { kinds: ["mine"] }), max: 3 })
        expect(inputsOf(r.claimed)).toEqual([
          { id: mine.executionId, input: Option.some({ id: mine.executionId, kind: "mine", payload: "in" }) }
        ])
        const done = yield* b.completeAndClaim([{ handle: r.claimed[0]!.handle }], { args: claimArgs(lane), max: 0 })
        expect(done).toEqual({ completed: [Either.void], claimed: [] })
        expect(yield* publicState(mine.executionId)).toBe("completed")
        expect(yield* publicState(other.executionId)).toBe("waiting")
      }))

    t.test("bad input fails as a whole: nothing completed, nothing claimed", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const lane = yield* newLane()
        const waiting = yield* create({ laneId: lane })
        const claim = { args: claimArgs(lane), max: 1 }
        yield* validationFails(
          b.completeAndClaim(Array.from({ length: 1001 }, () => ({ handle: c.handle })), claim),
          "LimitExceeded",
          "Limits.batchItems"
        )
        const otherBackend: M.Handle = { ...c.handle, backend: c.handle.backend === "memory" ? "valkey" : "memory" }
        yield* validationFails(b.completeAndClaim([{ handle: c.handle }, { handle: otherBackend }], claim), "HandleFromOtherBackend")
        yield* validationFails(
          b.completeAndClaim([{ handle: c.handle, payload: "text" as unknown as Uint8Array }], claim),
          "InvalidInput"
        )
        yield* validationFails(b.completeAndClaim([{ handle: c.handle }], { ...claim, max: -1 }), "InvalidInput")
        yield* validationFails(b.completeAndClaim([{ handle: c.handle }], { ...claim, max: 1.5 }), "InvalidInput")
        yield* validationFails(
          b.completeAndClaim([{ handle: c.handle }], { ...claim, max: 1001 }),
          "LimitExceeded",
          "Limits.batchItems"
        )
        yield* validationFails(
          b.completeAndClaim([{ handle: c.handle }], { args: claimArgs(lane, { kinds: [] }), max: 1 }),
          "InvalidInput"
        )
        expect(yield* publicState(c.executionId)).toBe("active")
        expect(yield* publicState(waiting.executionId)).toBe("waiting")
      }))
  })
  })
