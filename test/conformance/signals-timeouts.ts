/**
 * Suspension and signals (docs/design/signals.md): suspension timeouts of every behaviour (expireSuspensions).
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  claimNone,
  claimSome,
  createAndClaim,
  ensureHmac,
  failsWith,
  now,
  pass,
  publicState,
  signal,
  signalAccepted,
  singleSuspendArgs,
  snapshot,
  suspendSingle,
  type Tester,
  validationFails,
  vector
} from "./helpers.js"
import { signalTo, suspendedEntry, suspendedExecution, suspendedOnFresh } from "./signals-helpers.js"

export const signalsTimeouts = (t: Tester): void => {
  describe("suspension timeouts (expireSuspensions)", () => {
    let timedAt = 0
    const timed = (behavior: M.SuspendArgs["timeoutBehavior"]) =>
      Effect.gen(function*() {
        const at = (yield* now) + 1_000
        timedAt = at
        const s = yield* suspendedExecution({ signalName: "approve", timeoutAt: at, timeoutBehavior: behavior })
        yield* advance(999)
        yield* pass("expireSuspensions")
        expect(yield* publicState(s.executionId)).toBe("suspended")
        yield* advance(1)
        yield* pass("expireSuspensions")
        return s
      })

    for (const [behavior, outcome] of [["fail", "failed"], ["cancel", "cancelled"], ["expire", "expired"]] as const) {
      t.test(`${behavior}: terminal ${outcome}, the waitpoint closes`, () =>
        Effect.gen(function*() {
          const b = yield* backend
          const s = yield* timed(behavior)
          expect(yield* vector(s.executionId)).toMatchObject({
            lifecyclePhase: "terminal",
            ownershipState: "unowned",
            terminalOutcome: outcome,
            publicState: outcome
          })
          yield* failsWith(
            signal({ ...signalTo(s), name: "approve" }),
            "State",
            "TargetNotSignalable"
          )
          yield* failsWith(b.complete(s.handle), "Contention", "ExecutionNotActive")
          yield* claimNone(s.lane)
        }))
    }

    for (const behavior of ["auto_resume", "auto_resume_with_timeout_signal"] as const) {
      t.test(`${behavior}: resumes to waiting on the same attempt, no satisfier signals`, () =>
        Effect.gen(function*() {
          const b = yield* backend
          const s = yield* timed(behavior)
          expect(yield* vector(s.executionId)).toMatchObject({
            lifecyclePhase: "runnable",
            eligibilityState: "eligible_now",
            attemptState: "attempt_interrupted",
            publicState: "waiting"
          })
          const h = yield* claimSome(s.lane)
          expect(h.kind).toBe("resumed")
          expect(yield* b.observeSignals(h)).toEqual([])
        }))
    }

    t.test("escalate: stays suspended, paused_by_operator, reason becomes waiting_for_operator_review, timeout removed", () =>
      Effect.gen(function*() {
        const s = yield* timed("escalate")
        expect(yield* vector(s.executionId)).toMatchObject({
          lifecyclePhase: "suspended",
          blockingReason: "paused_by_operator",
          publicState: "suspended"
        })
        expect((yield* snapshot(s.executionId)).blockingDetail).toBe(`suspension escalated: timeout at ${timedAt}`)
        const entry = yield* suspendedEntry(s.executionId)
        expect(Option.map(entry, (e) => e.reason)).toEqual(Option.some("waiting_for_operator_review"))
        // the timeout is gone, so the listing shows the no-timeout score
        // (docs/design/reads.md#the-suspended-listing)
        expect(Option.map(entry, (e) => e.suspendedAtMs)).toEqual(Option.some(9_999_999_999_999))
        yield* advance(60_000)
        yield* pass("expireSuspensions")
        expect(yield* publicState(s.executionId)).toBe("suspended")
        // a signal still resumes it
        yield* signalAccepted({ ...signalTo(s), name: "approve" }, "resume_condition_satisfied")
      }))

    t.test("the default behaviour is fail", () =>
      Effect.gen(function*() {
        const at = (yield* now) + 100
        const s = yield* suspendedExecution({ signalName: "approve", timeoutAt: at })
        yield* advance(100)
        yield* pass("expireSuspensions")
        expect(yield* publicState(s.executionId)).toBe("failed")
      }))

    t.test("TimeoutOnly ignores signals and resolves at its deadline", () =>
      Effect.gen(function*() {
        const c = yield* suspendedOnFresh(() => ({ _tag: "TimeoutOnly" }), {
          timeoutAt: (yield* now) + 500,
          timeoutBehavior: "auto_resume"
        })
        yield* signalAccepted({ ...c.to, name: "x" }, "no_op")
        expect(yield* publicState(c.executionId)).toBe("suspended")
        yield* advance(500)
        yield* pass("expireSuspensions")
        expect(yield* publicState(c.executionId)).toBe("waiting")
      }))

    t.test("timeoutAt may lie up to 10 minutes in the past (clock skew), not more", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        yield* advance(700_000)
        const t0 = yield* now
        const late = yield* createAndClaim()
        yield* validationFails(
          b.suspend(late.handle, yield* singleSuspendArgs({ timeoutAt: t0 - 600_001 })),
          "InvalidInput",
          "timeout_at_in_past"
        )
        expect(yield* publicState(late.executionId)).toBe("active")
        yield* b.suspend(late.handle, yield* singleSuspendArgs({ timeoutAt: t0 - 600_000, timeoutBehavior: "expire" }))
        yield* pass("expireSuspensions")
        expect(yield* publicState(late.executionId)).toBe("expired")
      }))

    t.test("an execution deadline expires a suspended execution", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const b = yield* backend
        const c = yield* createAndClaim({ executionDeadlineAt: (yield* now) + 1_000 })
        const s = yield* suspendSingle(c.handle, { signalName: "approve" })
        yield* advance(1_000)
        yield* pass("expireExecutions")
        expect(yield* publicState(c.executionId)).toBe("expired")
        yield* failsWith(
          signal({ executionId: c.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" }),
          "State",
          "TargetNotSignalable"
        )
        yield* failsWith(b.complete(c.handle), "Contention", "ExecutionNotActive")
      }))
  })
}
