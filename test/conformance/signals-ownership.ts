/**
 * Suspension and signals (docs/design/signals.md): signal and waitpoint ids belong to their execution.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, LaneId, WaitpointId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  backend,
  bytes,
  claimSome,
  createAndClaim,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  payloadOf,
  publicState,
  signal,
  signalAccepted,
  signalArgs,
  snapshot,
  suspendSingle,
  type Tester,
  text,
  validationFails
} from "./helpers.js"
import { signalTo, tamper } from "./signals-helpers.js"

export const signalsOwnership = (t: Tester): void => {
  describe("signal and waitpoint ids belong to their execution", () => {
    /** A suspended execution waiting for `approve`, on `lane` (so on its partition) when given. */
    const suspendedOn = (lane?: LaneId) =>
      Effect.gen(function*() {
        yield* ensureHmac
        const c = yield* createAndClaim(lane === undefined ? {} : { laneId: lane })
        const s = yield* suspendSingle(c.handle, { signalName: "approve" })
        return { ...c, ...s }
      })

    /** Where a second execution is placed beside a first one: its partition, or the next one. */
    const PLACEMENTS = ["one partition", "two partitions"] as const
    type Placement = (typeof PLACEMENTS)[number]

    /** A claimed execution on `of`'s lane, on `of`'s partition or on the next one. */
    const claimedBeside = (of: { readonly executionId: ExecutionId; readonly lane: LaneId }, placement: Placement) =>
      Effect.gen(function*() {
        const p = Ids.executionPartition(of.executionId)
        const executionId = placement === "one partition" ?
          yield* executionIdOnPartition(p) :
          yield* executionIdOnPartition((p + 1) % t.options.numFlowPartitions)
        const c = yield* createAndClaim({ laneId: of.lane, executionId })
        expect(Ids.executionPartition(c.executionId) === p).toBe(placement === "one partition")
        return c
      })

    /** A suspended execution waiting for `approve`, placed beside `of`. */
    const suspendedBeside = (of: { readonly executionId: ExecutionId; readonly lane: LaneId }, placement: Placement) =>
      Effect.gen(function*() {
        const c = yield* claimedBeside(of, placement)
        const s = yield* suspendSingle(c.handle, { signalName: "approve" })
        return { ...c, ...s }
      })

    /** Claims the resumed execution of `lane` and returns what observeSignals reports, as [id, payload]. */
    const observed = (lane: LaneId) =>
      Effect.gen(function*() {
        const b = yield* backend
        const h = yield* claimSome(lane)
        expect(h.kind).toBe("resumed")
        const signals = yield* b.observeSignals(h)
        return signals.map((x) => [x.signalId, x.payload === undefined ? "" : text(x.payload)])
      })

    const freshSuspend = (waitpointId: WaitpointId) =>
      Effect.map(Ids.newSuspensionId, (suspensionId): M.SuspendArgsInput => ({
        suspensionId,
        waitpoints: [{ _tag: "Fresh", waitpointId, waitpointKey: "k" }],
        resumeCondition: { _tag: "Single", waitpointKey: "k", matcher: { _tag: "Wildcard" } }
      }))

    t.test("a signal id another execution used is State(DuplicateSignal); that execution observes its own signal", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const victim = yield* suspendedOn()
        const attacker = yield* suspendedOn(victim.lane)
        const sent = yield* signalArgs({
          executionId: victim.executionId,
          waitpointId: victim.waitpointId,
          token: victim.token,
          name: "approve",
          payload: bytes("victim")
        })
        expect(yield* b.deliverSignal(sent)).toMatchObject({ _tag: "Accepted", effect: "resume_condition_satisfied" })
        // the attacker's own execution, waitpoint and valid token, the victim's signal id
        yield* failsWith(
          b.deliverSignal({
            ...sent,
            executionId: attacker.executionId,
            waitpointId: attacker.waitpointId,
            waitpointToken: attacker.token,
            payload: bytes("attacker")
          }),
          "State",
          "DuplicateSignal"
        )
        expect(yield* publicState(attacker.executionId)).toBe("suspended")
        expect(yield* observed(victim.lane)).toEqual([[sent.signalId, "victim"]])
      }))

    t.test("a signal id is refused while buffered on a pending waitpoint, and for its own execution too", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const p = yield* createAndClaim()
        const wp = yield* b.createWaitpoint(p.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
        const buffered = yield* signalArgs({ executionId: p.executionId, waitpointId: wp.waitpointId, token: wp.hmacToken })
        expect(yield* b.deliverSignal(buffered)).toMatchObject({ effect: "buffered_for_pending_waitpoint" })
        const other = yield* suspendedOn(p.lane)
        yield* failsWith(
          b.deliverSignal({ ...buffered, executionId: other.executionId, waitpointId: other.waitpointId, waitpointToken: other.token }),
          "State",
          "DuplicateSignal"
        )
        // the same signal again, to the same pending waitpoint
        yield* failsWith(b.deliverSignal(buffered), "State", "DuplicateSignal")
        // and to an active one: without an idempotency key a repeated id is refused, with one the
        // repeat is answered Duplicate first
        const again = yield* signalArgs({ executionId: other.executionId, waitpointId: other.waitpointId, token: other.token, name: "reject" })
        expect(yield* b.deliverSignal(again)).toMatchObject({ _tag: "Accepted", effect: "no_op" })
        yield* failsWith(b.deliverSignal(again), "State", "DuplicateSignal")
        const keyed = { ...(yield* signalArgs({ executionId: other.executionId, waitpointId: other.waitpointId, token: other.token, name: "reject" })), idempotencyKey: "k" }
        expect(yield* b.deliverSignal(keyed)).toMatchObject({ _tag: "Accepted" })
        expect(yield* b.deliverSignal(keyed)).toEqual({ _tag: "Duplicate", existingSignalId: keyed.signalId })
        expect(yield* publicState(other.executionId)).toBe("suspended")
      }))

    t.test("a Fresh binding reusing a waitpoint id, open or closed, of another execution or its own: Conflict(WaitpointAlreadyExists)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const a = yield* suspendedOn()
        const other = yield* createAndClaim({ laneId: a.lane })
        yield* failsWith(b.suspend(other.handle, yield* freshSuspend(a.waitpointId)), "Conflict", "WaitpointAlreadyExists")
        yield* signalAccepted(
          { executionId: a.executionId, waitpointId: a.waitpointId, token: a.token, name: "approve" },
          "resume_condition_satisfied"
        )
        // closed now: still a's
        yield* failsWith(b.suspend(other.handle, yield* freshSuspend(a.waitpointId)), "Conflict", "WaitpointAlreadyExists")
        expect(yield* publicState(other.executionId)).toBe("active")
        yield* b.renew(other.handle)
        // a's next lease cannot take its old waitpoint id again either
        const resumed = yield* claimSome(a.lane)
        expect(payloadOf(resumed).executionId).toBe(a.executionId)
        yield* failsWith(b.suspend(resumed, yield* freshSuspend(a.waitpointId)), "Conflict", "WaitpointAlreadyExists")
        expect(yield* publicState(a.executionId)).toBe("active")
        // nor can one call bind one id twice
        const w = yield* Ids.newWaitpointId
        yield* validationFails(
          b.suspend(other.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", waitpointId: w, waitpointKey: "k1" }, { _tag: "Fresh", waitpointId: w, waitpointKey: "k2" }],
            resumeCondition: {
              _tag: "Composite",
              body: {
                _tag: "AllOf",
                members: [
                  { _tag: "Single", waitpointKey: "k1", matcher: { _tag: "Wildcard" } },
                  { _tag: "Single", waitpointKey: "k2", matcher: { _tag: "Wildcard" } }
                ]
              }
            }
          }),
          "InvalidInput",
          "duplicate_waitpoint_id"
        )
        expect(yield* publicState(other.executionId)).toBe("active")
      }))

    for (const placement of PLACEMENTS) {
      t.test(`a signal id of an execution on ${placement}: State(DuplicateSignal), nothing written; a refused id stays free; the owner's keyed retry answers Duplicate`, () =>
        Effect.gen(function*() {
          const b = yield* backend
          const victim = yield* suspendedOn()
          const attacker = yield* suspendedBeside(victim, placement)
          const toVictim = { executionId: victim.executionId, waitpointId: victim.waitpointId, token: victim.token }
          const asAttacker = { executionId: attacker.executionId, waitpointId: attacker.waitpointId, waitpointToken: attacker.token }
          const keyed = { ...(yield* signalArgs({ ...toVictim, name: "reject", payload: bytes("kept") })), idempotencyKey: "k" }
          expect(yield* b.deliverSignal(keyed)).toMatchObject({ _tag: "Accepted", effect: "no_op" })
          // a delivery refused for its token does not keep the id it named
          const free = yield* signalArgs({ ...toVictim, name: "reject" })
          yield* validationFails(b.deliverSignal({ ...free, ...asAttacker, waitpointToken: tamper(attacker.token) }), "InvalidToken")
          expect(yield* b.deliverSignal(free)).toMatchObject({ _tag: "Accepted", signalId: free.signalId, effect: "no_op" })
          const before = yield* snapshot(attacker.executionId)
          yield* failsWith(b.deliverSignal({ ...keyed, ...asAttacker, payload: bytes("attacker") }), "State", "DuplicateSignal")
          yield* failsWith(b.deliverSignal({ ...free, ...asAttacker }), "State", "DuplicateSignal")
          expect(yield* b.deliverSignal(keyed)).toEqual({ _tag: "Duplicate", existingSignalId: keyed.signalId })
          const sent = yield* signalArgs({ ...toVictim, name: "approve", payload: bytes("victim") })
          expect(yield* b.deliverSignal(sent)).toMatchObject({ _tag: "Accepted", effect: "resume_condition_satisfied" })
          yield* failsWith(b.deliverSignal({ ...sent, ...asAttacker, payload: bytes("attacker") }), "State", "DuplicateSignal")
          expect(yield* snapshot(attacker.executionId)).toEqual(before)
          expect(yield* observed(victim.lane)).toEqual([[sent.signalId, "victim"]])
          const own = yield* signalAccepted(
            { executionId: attacker.executionId, waitpointId: attacker.waitpointId, token: attacker.token, name: "approve", payload: bytes("own") },
            "resume_condition_satisfied"
          )
          expect(yield* observed(victim.lane)).toEqual([[own.signalId, "own"]])
        }))

      t.test(`a waitpoint id of an execution on ${placement}, open, closed or pending: Conflict(WaitpointAlreadyExists), nothing written; the owner's keyed retry is idempotent`, () =>
        Effect.gen(function*() {
          const b = yield* backend
          const a = yield* suspendedOn()
          const other = yield* claimedBeside(a, placement)
          const pending = yield* claimedBeside(a, "one partition")
          const wp = yield* b.createWaitpoint(pending.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
          const before = yield* snapshot(other.executionId)
          // open
          yield* failsWith(b.suspend(other.handle, yield* freshSuspend(a.waitpointId)), "Conflict", "WaitpointAlreadyExists")
          // pending: neither taken as Fresh nor used as another execution's pending waitpoint
          yield* failsWith(b.suspend(other.handle, yield* freshSuspend(wp.waitpointId)), "Conflict", "WaitpointAlreadyExists")
          yield* validationFails(
            b.suspend(other.handle, {
              suspensionId: yield* Ids.newSuspensionId,
              waitpoints: [{ _tag: "UsePending", waitpointId: wp.waitpointId }],
              resumeCondition: { _tag: "Single", waitpointKey: "k", matcher: { _tag: "Wildcard" } }
            }),
            "InvalidWaitpointForExecution"
          )
          // a refused suspend does not keep the ids it named
          const spare = yield* Ids.freshWaitpointBinding
          const both = (first: { readonly waitpointId: WaitpointId; readonly waitpointKey: string }, second: WaitpointId) =>
            Effect.map(Ids.newSuspensionId, (suspensionId): M.SuspendArgsInput => ({
              suspensionId,
              waitpoints: [{ _tag: "Fresh", ...first }, { _tag: "Fresh", waitpointId: second, waitpointKey: "k2" }],
              resumeCondition: {
                _tag: "Composite",
                body: {
                  _tag: "AllOf",
                  members: [
                    { _tag: "Single", waitpointKey: first.waitpointKey, matcher: { _tag: "Wildcard" } },
                    { _tag: "Single", waitpointKey: "k2", matcher: { _tag: "Wildcard" } }
                  ]
                }
              }
            }))
          yield* failsWith(b.suspend(other.handle, yield* both(spare, a.waitpointId)), "Conflict", "WaitpointAlreadyExists")
          yield* signalAccepted({ executionId: a.executionId, waitpointId: a.waitpointId, token: a.token, name: "approve" }, "resume_condition_satisfied")
          // closed
          yield* failsWith(b.suspend(other.handle, yield* freshSuspend(a.waitpointId)), "Conflict", "WaitpointAlreadyExists")
          expect(yield* snapshot(other.executionId)).toEqual(before)
          const resumed = yield* claimSome(a.lane)
          expect(payloadOf(resumed).executionId).toBe(a.executionId)
          expect((yield* b.observeSignals(resumed)).length).toBe(1)
          yield* b.renew(other.handle)
          // the spare id is free; the owner's retry of its keyed suspend answers the first outcome
          const keyed = { ...(yield* both(spare, (yield* Ids.newWaitpointId))), idempotencyKey: "s" }
          const first = yield* b.suspend(other.handle, keyed)
          expect(first._tag).toBe("Suspended")
          expect(first.details.waitpointId).toBe(spare.waitpointId)
          const again = yield* b.suspend(other.handle, keyed)
          expect(again._tag).toBe("Suspended")
          expect(again.details).toEqual(first.details)
          yield* failsWith(b.suspend(pending.handle, yield* freshSuspend(spare.waitpointId)), "Conflict", "WaitpointAlreadyExists")
          yield* b.complete(pending.handle)
        }))

      t.test(`two executions racing to use one signal id, on ${placement}: exactly one wins, the other's signals are untouched`, () =>
        Effect.gen(function*() {
          const b = yield* backend
          for (let round = 0; round < 3; round++) {
            const x = yield* suspendedOn()
            const y = yield* suspendedBeside(x, placement)
            const signalId = yield* Ids.newSignalId
            const deliver = (s: typeof x, payload: string) =>
              Effect.flatMap(
                signalArgs({ ...signalTo(s), name: "approve" }),
                (args) => Effect.either(b.deliverSignal({ ...args, signalId, payload: bytes(payload) }))
              )
            const [rx, ry] = yield* Effect.all([deliver(x, "x"), deliver(y, "y")], { concurrency: "unbounded" })
            const wins = [rx, ry].filter(Either.isRight)
            expect(wins.map((r) => r.right)).toEqual([{ _tag: "Accepted", signalId, effect: "resume_condition_satisfied" }])
            const [winner, loser, lost] = Either.isRight(rx) ? [x, y, ry] : [y, x, rx]
            expect(Either.isLeft(lost) && lost.left).toMatchObject({ _tag: "State", kind: "DuplicateSignal" })
            expect(yield* publicState(loser.executionId)).toBe("suspended")
            expect(yield* observed(winner.lane)).toEqual([[signalId, winner === x ? "x" : "y"]])
            // the loser's own signal resumes it, and it observes that one only
            const own = yield* signalAccepted(
              { executionId: loser.executionId, waitpointId: loser.waitpointId, token: loser.token, name: "approve", payload: bytes("own") },
              "resume_condition_satisfied"
            )
            expect(yield* observed(loser.lane)).toEqual([[own.signalId, "own"]])
          }
        }))

      t.test(`two executions racing to suspend on one waitpoint id, on ${placement}: exactly one wins, the other keeps its lease`, () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          for (let round = 0; round < 3; round++) {
            const x = yield* createAndClaim()
            const y = yield* claimedBeside(x, placement)
            const waitpointId = yield* Ids.newWaitpointId
            const attempt = (c: typeof x) =>
              Effect.flatMap(freshSuspend(waitpointId), (args) => Effect.either(b.suspend(c.handle, args)))
            const [rx, ry] = yield* Effect.all([attempt(x), attempt(y)], { concurrency: "unbounded" })
            expect([rx, ry].filter(Either.isRight).map((r) => r.right._tag)).toEqual(["Suspended"])
            const [winner, loser, won, lost] = Either.isRight(rx) ? [x, y, rx, ry] : [y, x, ry, rx]
            expect(Either.isLeft(lost) && lost.left).toMatchObject({ _tag: "Conflict", kind: "WaitpointAlreadyExists" })
            expect(yield* publicState(loser.executionId)).toBe("active")
            yield* b.renew(loser.handle)
            const token = Either.isRight(won) ? won.right.details.waitpointToken : ""
            yield* failsWith(
              signal({ executionId: loser.executionId, waitpointId, token, name: "approve" }),
              "Validation",
              "InvalidToken"
            )
            yield* signalAccepted(
              { executionId: winner.executionId, waitpointId, token, name: "approve" },
              "resume_condition_satisfied"
            )
            yield* b.complete(loser.handle)
          }
        }))
    }
  })
}
