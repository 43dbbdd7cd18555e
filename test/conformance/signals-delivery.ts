/**
 * Suspension and signals (docs/design/signals.md), the main path: suspend (the lease released, a suspended handle
 * and a kid:digest token) and deliver_signal (resume, resume delays, bad tokens, dedup, signal caps and the errors).
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  bytes,
  claimNone,
  claimSome,
  createAndClaim,
  ensureHmac,
  failsWith,
  forgeHandle,
  kidOf,
  pass,
  payloadOf,
  publicState,
  signal,
  signalAccepted,
  singleSuspendArgs,
  snapshot,
  suspendSingle,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"
import { signalTo, suspendedEntry, suspendedExecution, suspendedOnFresh, tamper, TOKEN_SHAPE } from "./signals-helpers.js"

export const signalsDelivery = (t: Tester): void => {
  describe("suspend", () => {
    t.test("releases the lease, returns a suspended handle and a kid:digest token", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const o = s.outcome
        if (o._tag !== "Suspended") return expect.fail("not suspended")
        expect(o.details).toEqual({
          suspensionId: s.args.suspensionId,
          waitpointId: s.waitpointId,
          waitpointKey: s.waitpointKey,
          waitpointToken: s.token,
          additionalWaitpoints: []
        })
        expect(s.token).toMatch(TOKEN_SHAPE)
        expect(o.handle.kind).toBe("suspended")
        expect(payloadOf(o.handle)).toEqual(payloadOf(s.handle))
        const snap = yield* snapshot(s.executionId)
        expect(snap.publicState).toBe("suspended")
        expect(snap.currentWaitpoint).toBe(s.waitpointId)
        expect(snap.currentLease).toBeUndefined()
        expect(snap.blockingReason).toBe("waiting_for_signal")
        expect(snap.blockingDetail).toBe(`suspended: waitpoint ${s.waitpointId} awaiting waiting_for_signal`)
        expect(yield* vector(s.executionId)).toEqual({
          lifecyclePhase: "suspended",
          ownershipState: "unowned",
          eligibilityState: "not_applicable",
          blockingReason: "waiting_for_signal",
          terminalOutcome: "none",
          attemptState: "attempt_interrupted",
          publicState: "suspended"
        })
        yield* claimNone(s.lane)
      }))

    t.test("the reason code decides the blocking reason", () =>
      Effect.gen(function*() {
        const table: ReadonlyArray<readonly [string, string]> = [
          ["waiting_for_approval", "waiting_for_approval"],
          ["waiting_for_callback", "waiting_for_callback"],
          ["waiting_for_tool_result", "waiting_for_tool_result"],
          ["waiting_for_operator_review", "paused_by_operator"],
          ["paused_by_policy", "paused_by_policy"],
          ["paused_by_budget", "waiting_for_budget"],
          ["step_boundary", "waiting_for_signal"],
          ["manual_pause", "paused_by_operator"],
          ["my_own_code", "waiting_for_signal"]
        ]
        for (const [reasonCode, blocking] of table) {
          const s = yield* suspendedExecution({ reasonCode })
          expect([reasonCode, (yield* snapshot(s.executionId)).blockingReason]).toEqual([reasonCode, blocking])
          const entry = yield* suspendedEntry(s.executionId)
          expect(Option.map(entry, (e) => e.reason)).toEqual(Option.some(reasonCode))
        }
      }))

    t.test("a suspended handle is State(AlreadySuspended) before anything else", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const s = yield* suspendedExecution()
        yield* failsWith(b.suspend(s.suspendedHandle, yield* singleSuspendArgs()), "State", "AlreadySuspended")
        yield* failsWith(
          b.suspend(s.suspendedHandle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [],
            resumeCondition: { _tag: "OperatorOnly" }
          }),
          "State",
          "AlreadySuspended"
        )
      }))

    t.test("without an idempotency key a retry fails with ExecutionNotActive{phase suspended}", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const s = yield* suspendedExecution()
        const e = yield* failsWith(b.suspend(s.handle, s.args), "Contention", "ExecutionNotActive")
        expect(e.notActive?.lifecyclePhase).toBe("suspended")
      }))

    t.test("with an idempotency key a retry returns the first outcome verbatim", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const s = yield* suspendedExecution({ signalName: "approve", idempotencyKey: "suspend-1" })
        const again = yield* b.suspend(s.handle, s.args)
        expect(again).toEqual(s.outcome)
        expect(yield* publicState(s.executionId)).toBe("suspended")
        // the token of the first outcome is the live one
        yield* signalAccepted({ ...signalTo(s), name: "approve" }, "resume_condition_satisfied")
      }))

    t.test("a keyed retry from the attempt's next lease gets the first outcome with the caller's handle", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const s = yield* suspendedExecution({ signalName: "approve", idempotencyKey: "suspend-1" })
        yield* signalAccepted({ ...signalTo(s), name: "approve" }, "resume_condition_satisfied")
        const resumed = yield* claimSome(s.lane)
        expect(resumed.kind).toBe("resumed")
        const again = yield* b.suspend(resumed, s.args)
        expect(again._tag).toBe("Suspended")
        if (again._tag !== "Suspended" || s.outcome._tag !== "Suspended") return
        expect(again.details).toEqual(s.outcome.details)
        // the handle is the caller's, as a suspended one (docs/design/signals.md#suspend-idempotency)
        expect(again.handle).toEqual({ ...resumed, kind: "suspended" })
        expect(yield* publicState(s.executionId)).toBe("active")
      }))

    t.test("runs the lease ladder: ExecutionNotActive, LeaseRevoked, LeaseExpired", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const done = yield* createAndClaim()
        yield* b.complete(done.handle)
        yield* failsWith(b.suspend(done.handle, yield* singleSuspendArgs()), "Contention", "ExecutionNotActive")
        const revoked = yield* createAndClaim()
        yield* b.revokeLease({ executionId: revoked.executionId, reason: "x" })
        yield* failsWith(b.suspend(revoked.handle, yield* singleSuspendArgs()), "State", "LeaseRevoked")
        const expired = yield* createAndClaim({}, { ttl: 100 })
        yield* advance(100)
        yield* failsWith(b.suspend(expired.handle, yield* singleSuspendArgs()), "State", "LeaseExpired")
        expect((yield* vector(expired.executionId)).ownershipState).toBe("lease_expired_reclaimable")
      }))

    t.test("a handle of another attempt index (same fence triple) is Validation(InvalidLeaseForSuspend)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const c = yield* createAndClaim()
        const forged = forgeHandle(c.handle, {
          attemptIndex: (payloadOf(c.handle).attemptIndex + 1) as M.HandlePayload["attemptIndex"]
        })
        yield* failsWith(b.suspend(forged, yield* singleSuspendArgs()), "Validation", "InvalidLeaseForSuspend")
        expect(yield* publicState(c.executionId)).toBe("active")
        yield* b.renew(c.handle)
      }))

    t.freshOnly("with an empty keystore: Transport(hmac_secret_not_initialized), nothing written", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const e = yield* failsWith(b.suspend(c.handle, yield* singleSuspendArgs()), "Transport")
        expect(`${e.scriptCode ?? ""} ${e.message}`).toContain("hmac_secret_not_initialized")
        expect(e.retryable).toBe(false)
        expect(yield* publicState(c.executionId)).toBe("active")
        yield* b.complete(c.handle)
      }))
  })

  describe("deliver_signal", () => {
    t.test("a matching signal resumes the execution; claim resumes the attempt; observeSignals returns it", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const s = yield* suspendedExecution()
        const r = yield* signalAccepted(
          {
            ...signalTo(s),
            name: "approve",
            payload: bytes("{\"ok\":true}"),
            sourceType: "human",
            sourceIdentity: "alice"
          },
          "resume_condition_satisfied"
        )
        expect(yield* vector(s.executionId)).toEqual({
          lifecyclePhase: "runnable",
          ownershipState: "unowned",
          eligibilityState: "eligible_now",
          blockingReason: "waiting_for_worker",
          terminalOutcome: "none",
          attemptState: "attempt_interrupted",
          publicState: "waiting"
        })
        expect((yield* snapshot(s.executionId)).currentWaitpoint).toBeUndefined()
        const h = yield* claimSome(s.lane)
        expect(h.kind).toBe("resumed")
        expect(payloadOf(h)).toMatchObject({
          attemptIndex: payloadOf(s.handle).attemptIndex,
          attemptId: payloadOf(s.handle).attemptId,
          leaseEpoch: 2
        })
        const observed = yield* b.observeSignals(h)
        expect(observed.length).toBe(1)
        const sig = observed[0]!
        expect(sig).toMatchObject({
          signalId: r.signalId,
          signalName: "approve",
          signalCategory: "test",
          sourceType: "human",
          sourceIdentity: "alice"
        })
        expect(Option.fromNullable(sig.payload).pipe(Option.map(text))).toEqual(Option.some("{\"ok\":true}"))
        yield* b.complete(h)
      }))

    t.test("a signal of another name is a no_op and the execution stays suspended", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        yield* signalAccepted({ ...signalTo(s), name: "reject" }, "no_op")
        expect(yield* publicState(s.executionId)).toBe("suspended")
      }))

    t.test("a wildcard matcher takes any signal", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution({})
        yield* signalAccepted({ ...signalTo(s), name: "whatever" }, "resume_condition_satisfied")
        expect(yield* publicState(s.executionId)).toBe("waiting")
      }))

    t.test("resumeDelayMs resumes into delayed (waiting_for_resume_delay) until promoted", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        yield* signalAccepted(
          {
            ...signalTo(s),
            name: "approve",
            resumeDelayMs: 2_000
          },
          "resume_condition_satisfied"
        )
        expect(yield* vector(s.executionId)).toMatchObject({
          lifecyclePhase: "runnable",
          eligibilityState: "not_eligible_until_time",
          blockingReason: "waiting_for_resume_delay",
          attemptState: "attempt_interrupted",
          publicState: "delayed"
        })
        expect((yield* snapshot(s.executionId)).blockingDetail).toBe("resume delay 2000ms after signal approve")
        yield* claimNone(s.lane)
        yield* advance(2_000)
        yield* pass("promoteDelayed")
        expect((yield* claimSome(s.lane)).kind).toBe("resumed")
      }))

    t.test("the resume delay is the signal's: a resumePolicy.resumeDelayMs is stored, not applied", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const c = yield* createAndClaim()
        const b = yield* backend
        const args = yield* singleSuspendArgs({ signalName: "approve" })
        const outcome = yield* b.suspend(c.handle, {
          ...args,
          resumePolicy: {
            resumeTarget: "runnable",
            consumeMatchedSignals: true,
            retainSignalBufferUntilClosed: false,
            closeWaitpointOnResume: true,
            resumeDelayMs: 5_000
          }
        })
        if (outcome._tag !== "Suspended") return expect.fail(`expected Suspended, got ${outcome._tag}`)
        yield* signalAccepted(
          {
            executionId: c.executionId,
            waitpointId: outcome.details.waitpointId,
            token: outcome.details.waitpointToken,
            name: "approve"
          },
          "resume_condition_satisfied"
        )
        expect(yield* vector(c.executionId)).toMatchObject({
          eligibilityState: "eligible_now",
          blockingReason: "waiting_for_worker",
          publicState: "waiting"
        })
        expect((yield* claimSome(c.lane)).kind).toBe("resumed")
      }))

    t.test("bad tokens are Validation(InvalidToken) and reveal nothing; the execution stays suspended", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const other = yield* suspendedExecution()
        const attempt = (token: string, waitpointId = s.waitpointId) =>
          signal({ executionId: s.executionId, waitpointId, token, name: "approve" })
        yield* validationFails(attempt(tamper(s.token)), "InvalidToken")
        yield* validationFails(attempt(`nokid-${kidOf(s.token)}:${s.token.slice(s.token.indexOf(":") + 1)}`), "InvalidToken")
        yield* validationFails(attempt("not-a-token"), "InvalidToken")
        yield* validationFails(attempt(`${kidOf(s.token)}:abc`), "InvalidToken")
        // a digest is canonical lower-case hex: the same digest upper-cased is not the token
        const upper = `${kidOf(s.token)}:${s.token.slice(s.token.indexOf(":") + 1).toUpperCase()}`
        expect(upper).not.toBe(s.token)
        yield* validationFails(attempt(upper), "InvalidToken")
        yield* validationFails(attempt(""), "InvalidToken", "missing_token")
        // another waitpoint's valid token
        yield* validationFails(attempt(other.token), "InvalidToken")
        // an unknown waitpoint is an invalid token, not NotFound (no probing)
        yield* validationFails(attempt(s.token, yield* Ids.newWaitpointId), "InvalidToken")
        expect(yield* publicState(s.executionId)).toBe("suspended")
        expect(yield* publicState(other.executionId)).toBe("suspended")
        // the real token still works
        yield* signalAccepted({ ...signalTo(s), name: "approve" }, "resume_condition_satisfied")
      }))

    t.test("a missing execution is NotFound(execution)", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const e = yield* failsWith(
          signal({ executionId: yield* Ids.executionIdSolo(s.lane), waitpointId: s.waitpointId, token: s.token }),
          "NotFound"
        )
        expect(e.entity).toBe("execution")
      }))

    t.test("an idempotency key dedups: Duplicate{existingSignalId}", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const base = { ...signalTo(s), idempotencyKey: "sig-1" }
        const first = yield* signalAccepted({ ...base, name: "reject" }, "no_op")
        expect(yield* signal({ ...base, name: "reject" })).toEqual({
          _tag: "Duplicate",
          existingSignalId: first.signalId
        })
        // the duplicate is not evaluated even though it now carries a matching name
        expect(yield* signal({ ...base, name: "approve" })).toEqual({
          _tag: "Duplicate",
          existingSignalId: first.signalId
        })
        expect(yield* publicState(s.executionId)).toBe("suspended")
      }))

    t.test("signal dedup lasts dedupTtlMs; a dedupTtlMs of 0 disables it", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const base = {
          ...signalTo(s),
          name: "reject",
          idempotencyKey: "short"
        }
        const first = yield* signalAccepted({ ...base, dedupTtlMs: 1_000 }, "no_op")
        yield* advance(999)
        expect(yield* signal({ ...base, dedupTtlMs: 1_000 })).toEqual({ _tag: "Duplicate", existingSignalId: first.signalId })
        yield* advance(1)
        const second = yield* signalAccepted({ ...base, dedupTtlMs: 1_000 }, "no_op")
        expect(second.signalId).not.toBe(first.signalId)
        const noDedup = { ...base, idempotencyKey: "never", dedupTtlMs: 0 }
        yield* signalAccepted(noDedup, "no_op")
        yield* signalAccepted(noDedup, "no_op")
      }))

    t.test("the per-execution signal cap: Validation(SignalLimitExceeded)", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const base = {
          ...signalTo(s),
          name: "reject",
          maxSignalsPerExecution: 2
        }
        yield* signalAccepted(base, "no_op")
        yield* signalAccepted(base, "no_op")
        yield* validationFails(signal({ ...base, name: "approve" }), "SignalLimitExceeded")
        expect(yield* publicState(s.executionId)).toBe("suspended")
      }))

    t.test("the execution's signal cap holds: a sender's 0 or larger cap does not lift it, a smaller one lowers it", () =>
      Effect.gen(function*() {
        yield* ensureHmac
        const c = yield* createAndClaim({ policy: { maxSignalsPerExecution: 3 } })
        const s = yield* suspendSingle(c.handle, { signalName: "approve" })
        const base = { executionId: c.executionId, waitpointId: s.waitpointId, token: s.token, name: "reject" }
        yield* signalAccepted({ ...base, maxSignalsPerExecution: 0 }, "no_op")
        yield* signalAccepted({ ...base, maxSignalsPerExecution: 100 }, "no_op")
        yield* validationFails(signal({ ...base, maxSignalsPerExecution: 2 }), "SignalLimitExceeded")
        yield* signalAccepted(base, "no_op")
        for (const maxSignalsPerExecution of [0, 4, 1_000_000, undefined]) {
          yield* validationFails(
            signal({ ...base, name: "approve", ...(maxSignalsPerExecution === undefined ? {} : { maxSignalsPerExecution }) }),
            "SignalLimitExceeded"
          )
        }
        expect(yield* publicState(c.executionId)).toBe("suspended")
      }))

    t.test("a payload over 64 KiB is Validation(PayloadTooLarge) and is not recorded", () =>
      Effect.gen(function*() {
        const s = yield* suspendedExecution()
        const base = {
          ...signalTo(s),
          name: "approve",
          maxSignalsPerExecution: 1
        }
        yield* validationFails(signal({ ...base, payload: new Uint8Array(65_537) }), "PayloadTooLarge")
        expect(yield* publicState(s.executionId)).toBe("suspended")
        // the cap of 1 is still free: the rejected signal was not counted
        yield* signalAccepted({ ...base, payload: new Uint8Array(65_536) }, "resume_condition_satisfied")
      }))

    t.test("after the resume, or on a terminal execution: State(TargetNotSignalable)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const s = yield* suspendedExecution()
        const base = { ...signalTo(s), name: "approve" }
        yield* signalAccepted({ ...base, idempotencyKey: "k" }, "resume_condition_satisfied")
        yield* failsWith(signal(base), "State", "TargetNotSignalable")
        // a duplicate after the close is not answered as Duplicate (dedup comes after the state checks)
        yield* failsWith(signal({ ...base, idempotencyKey: "k" }), "State", "TargetNotSignalable")
        const c = yield* suspendedExecution()
        yield* b.cancelExecution({ executionId: c.executionId, reason: "stop" })
        yield* failsWith(
          signal({ executionId: c.executionId, waitpointId: c.waitpointId, token: c.token, name: "approve" }),
          "State",
          "TargetNotSignalable"
        )
      }))

    t.test("OperatorOnly is never satisfied by a signal", () =>
      Effect.gen(function*() {
        const s = yield* suspendedOnFresh(() => ({ _tag: "OperatorOnly" }))
        for (const name of ["approve", "__operator_only__", "operator"]) {
          yield* signalAccepted({ ...s.to, name }, "no_op")
        }
        expect(yield* publicState(s.executionId)).toBe("suspended")
      }))

    t.test("observeSignals is empty for a never-suspended attempt and before the resume", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const fresh = yield* createAndClaim()
        expect(yield* b.observeSignals(fresh.handle)).toEqual([])
        const s = yield* suspendedExecution()
        yield* signalAccepted({ ...signalTo(s), name: "reject" }, "no_op")
        expect(yield* b.observeSignals(s.suspendedHandle)).toEqual([])
      }))
  })
}
