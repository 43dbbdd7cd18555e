/**
 * Suspension, waitpoints and signals (docs/design/signals.md): suspend →
 * signal → resume, tokens (good, forged, expired, rotated), composite conditions, pending waitpoints that buffer signals,
 * suspension timeouts of every behaviour, and the HMAC keystore admin.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Either, Option } from "effect"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, LaneId, WaitpointId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  bytes,
  claimNone,
  claimSome,
  createAndClaim,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  forgeHandle,
  kidOf,
  now,
  partitionKeyOf,
  pass,
  payloadOf,
  publicState,
  randomSecret,
  SEED_KID,
  SEED_SECRET,
  signal,
  signalAccepted,
  signalArgs,
  singleSuspendArgs,
  snapshot,
  suspendSingle,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"

/** Claims, suspends on one waitpoint waiting for `name`, returns everything a test needs. */
const suspendedExecution = (o: Parameters<typeof suspendSingle>[1] = { signalName: "approve" }) =>
  Effect.gen(function*() {
    yield* ensureHmac
    const c = yield* createAndClaim()
    const s = yield* suspendSingle(c.handle, o)
    return { ...c, ...s }
  })

const TOKEN_SHAPE = /^[^:]+:[0-9a-f]+$/

const tamper = (token: string): string => {
  const last = token.slice(-1)
  return token.slice(0, -1) + (last === "0" ? "1" : "0")
}

/** Finds `id` in list_suspended of its partition (paging through everything). */
const suspendedEntry = (id: ExecutionId) =>
  Effect.gen(function*() {
    const b = yield* backend
    let cursor: ExecutionId | undefined = undefined
    for (let i = 0; i < 100; i++) {
      const page: M.ListSuspendedPage = yield* b.listSuspended({
        partition: partitionKeyOf(id),
        limit: 500,
        ...(cursor === undefined ? {} : { cursor })
      })
      const hit = page.entries.find((e) => e.executionId === id)
      if (hit !== undefined) return Option.some(hit)
      if (page.nextCursor === undefined) break
      cursor = page.nextCursor
    }
    return Option.none<M.SuspendedExecutionEntry>()
  })

export const signals = (t: Tester) =>
  describe("suspension and signals", () => {
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
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" },
            "resume_condition_satisfied"
          )
        }))

      t.test("a keyed retry from the attempt's next lease gets the first outcome with the caller's handle", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const s = yield* suspendedExecution({ signalName: "approve", idempotencyKey: "suspend-1" })
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" },
            "resume_condition_satisfied"
          )
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
              executionId: s.executionId,
              waitpointId: s.waitpointId,
              token: s.token,
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
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "reject" },
            "no_op"
          )
          expect(yield* publicState(s.executionId)).toBe("suspended")
        }))

      t.test("a wildcard matcher takes any signal", () =>
        Effect.gen(function*() {
          const s = yield* suspendedExecution({})
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "whatever" },
            "resume_condition_satisfied"
          )
          expect(yield* publicState(s.executionId)).toBe("waiting")
        }))

      t.test("resumeDelayMs resumes into delayed (waiting_for_resume_delay) until promoted", () =>
        Effect.gen(function*() {
          const s = yield* suspendedExecution()
          yield* signalAccepted(
            {
              executionId: s.executionId,
              waitpointId: s.waitpointId,
              token: s.token,
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
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" },
            "resume_condition_satisfied"
          )
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
          const base = { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, idempotencyKey: "sig-1" }
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
            executionId: s.executionId,
            waitpointId: s.waitpointId,
            token: s.token,
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
            executionId: s.executionId,
            waitpointId: s.waitpointId,
            token: s.token,
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
            executionId: s.executionId,
            waitpointId: s.waitpointId,
            token: s.token,
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
          const base = { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" }
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
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const wp = yield* Ids.freshWaitpointBinding
          const out = yield* b.suspend(c.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...wp }],
            resumeCondition: { _tag: "OperatorOnly" }
          })
          const token = out.details.waitpointToken
          for (const name of ["approve", "__operator_only__", "operator"]) {
            yield* signalAccepted({ executionId: c.executionId, waitpointId: wp.waitpointId, token, name }, "no_op")
          }
          expect(yield* publicState(c.executionId)).toBe("suspended")
        }))

      t.test("observeSignals is empty for a never-suspended attempt and before the resume", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const fresh = yield* createAndClaim()
          expect(yield* b.observeSignals(fresh.handle)).toEqual([])
          const s = yield* suspendedExecution()
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "reject" },
            "no_op"
          )
          expect(yield* b.observeSignals(s.suspendedHandle)).toEqual([])
        }))
    })

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
                  signalArgs({ executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" }),
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

    describe("composite conditions", () => {
      t.test("AllOf over two waitpoints: each leaf once, then resume; satisfiers are observed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const w1 = yield* Ids.freshWaitpointBinding
          const w2 = yield* Ids.freshWaitpointBinding
          const out = yield* b.suspend(c.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...w1 }, { _tag: "Fresh", ...w2 }],
            resumeCondition: {
              _tag: "Composite",
              body: {
                _tag: "AllOf",
                members: [
                  { _tag: "Single", waitpointKey: w1.waitpointKey, matcher: { _tag: "ByName", name: "a" } },
                  { _tag: "Single", waitpointKey: w2.waitpointKey, matcher: { _tag: "ByName", name: "b" } }
                ]
              }
            }
          })
          expect(out._tag).toBe("Suspended")
          expect(out.details.additionalWaitpoints.length).toBe(1)
          const extra = out.details.additionalWaitpoints[0]!
          expect(extra).toMatchObject({ waitpointId: w2.waitpointId, waitpointKey: w2.waitpointKey })
          expect(extra.waitpointToken).toMatch(TOKEN_SHAPE)
          const on1 = { executionId: c.executionId, waitpointId: w1.waitpointId, token: out.details.waitpointToken }
          const on2 = { executionId: c.executionId, waitpointId: w2.waitpointId, token: extra.waitpointToken }
          const first = yield* signalAccepted({ ...on1, name: "a" }, "appended_to_waitpoint")
          yield* signalAccepted({ ...on1, name: "a" }, "appended_to_waitpoint_duplicate")
          yield* signalAccepted({ ...on1, name: "zzz" }, "signal_ignored_matcher_failed")
          expect(yield* publicState(c.executionId)).toBe("suspended")
          // a token is bound to its own waitpoint
          yield* validationFails(signal({ ...on2, token: on1.token, name: "b" }), "InvalidToken")
          const last = yield* signalAccepted({ ...on2, name: "b" }, "resume_condition_satisfied")
          expect(yield* publicState(c.executionId)).toBe("waiting")
          const h = yield* claimSome(c.lane)
          const observed = yield* b.observeSignals(h)
          expect(observed.map((s) => s.signalId).sort()).toEqual([first.signalId, last.signalId].sort())
        }))

      t.test("Count(DistinctSources, 2): a second source is needed", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const wp = yield* Ids.freshWaitpointBinding
          const out = yield* b.suspend(c.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...wp }],
            resumeCondition: {
              _tag: "Composite",
              body: { _tag: "Count", n: 2, countKind: "DistinctSources", waitpoints: [wp.waitpointKey] }
            }
          })
          const base = { executionId: c.executionId, waitpointId: wp.waitpointId, token: out.details.waitpointToken }
          yield* signalAccepted({ ...base, sourceType: "human", sourceIdentity: "alice" }, "appended_to_waitpoint")
          yield* signalAccepted(
            { ...base, sourceType: "human", sourceIdentity: "alice" },
            "appended_to_waitpoint_duplicate"
          )
          expect(yield* publicState(c.executionId)).toBe("suspended")
          yield* signalAccepted({ ...base, sourceType: "human", sourceIdentity: "bob" }, "resume_condition_satisfied")
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))

      t.test("Count(DistinctSignals, 2) with a matcher: only matching signals count", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const wp = yield* Ids.freshWaitpointBinding
          const out = yield* b.suspend(c.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...wp }],
            resumeCondition: {
              _tag: "Composite",
              body: {
                _tag: "Count",
                n: 2,
                countKind: "DistinctSignals",
                matcher: { _tag: "ByName", name: "vote" },
                waitpoints: [wp.waitpointKey]
              }
            }
          })
          const base = { executionId: c.executionId, waitpointId: wp.waitpointId, token: out.details.waitpointToken }
          yield* signalAccepted({ ...base, name: "chatter" }, "signal_ignored_matcher_failed")
          yield* signalAccepted({ ...base, name: "vote" }, "appended_to_waitpoint")
          expect(yield* publicState(c.executionId)).toBe("suspended")
          yield* signalAccepted({ ...base, name: "vote" }, "resume_condition_satisfied")
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))
    })

    describe("pending waitpoints", () => {
      const pendingWaitpoint = (
        key = "approval",
        expiresIn: Duration.DurationInput = "1 minute",
        laneId?: M.ClaimArgs["lane"]
      ) =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim(laneId === undefined ? {} : { laneId })
          const t0 = yield* now
          const wp = yield* b.createWaitpoint(c.handle, { waitpointKey: key, expiresIn: Duration.decode(expiresIn) })
          return { ...c, wp, key, createdAt: t0 }
        })

      const usePending = (h: M.Handle, waitpointId: M.PendingWaitpoint["waitpointId"], key: string, name = "approve") =>
        Effect.gen(function*() {
          const b = yield* backend
          return yield* b.suspend(h, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "UsePending", waitpointId }],
            resumeCondition: { _tag: "Single", waitpointKey: key, matcher: { _tag: "ByName", name } }
          })
        })

      t.test("createWaitpoint issues a token while the lease is kept; it is listed as pending", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = yield* pendingWaitpoint()
          expect(p.wp.hmacToken).toMatch(TOKEN_SHAPE)
          expect(yield* publicState(p.executionId)).toBe("active")
          yield* b.renew(p.handle)
          const listed = yield* b.listPendingWaitpoints({ executionId: p.executionId })
          expect(listed.entries).toEqual([
            {
              waitpointId: p.wp.waitpointId,
              waitpointKey: "approval",
              state: "pending",
              requiredSignalNames: [],
              createdAt: p.createdAt,
              expiresAt: p.createdAt + 60_000,
              executionId: p.executionId,
              tokenKid: kidOf(p.wp.hmacToken),
              tokenFingerprint: p.wp.hmacToken.slice(p.wp.hmacToken.indexOf(":") + 1).slice(0, 16)
            }
          ])
          expect(listed.nextCursor).toBeUndefined()
          // not idempotent: a second call is a second waitpoint
          const second = yield* b.createWaitpoint(p.handle, { waitpointKey: "approval", expiresIn: Duration.minutes(1) })
          expect(second.waitpointId).not.toBe(p.wp.waitpointId)
        }))

      t.test("signals to a pending waitpoint are buffered; UsePending then finds them: AlreadySatisfied, lease kept", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = yield* pendingWaitpoint()
          const buffered = yield* signalAccepted(
            { executionId: p.executionId, waitpointId: p.wp.waitpointId, token: p.wp.hmacToken, name: "approve" },
            "buffered_for_pending_waitpoint"
          )
          expect(buffered.effect).toBe("buffered_for_pending_waitpoint")
          expect(yield* publicState(p.executionId)).toBe("active")
          const out = yield* usePending(p.handle, p.wp.waitpointId, p.key)
          expect(out._tag).toBe("AlreadySatisfied")
          expect(out.details).toMatchObject({
            waitpointId: p.wp.waitpointId,
            waitpointKey: p.key,
            waitpointToken: p.wp.hmacToken
          })
          expect(yield* vector(p.executionId)).toMatchObject({ lifecyclePhase: "active", ownershipState: "leased" })
          expect((yield* b.listPendingWaitpoints({ executionId: p.executionId })).entries).toEqual([])
          yield* failsWith(usePending(p.handle, p.wp.waitpointId, p.key), "State", "WaitpointNotPending")
          yield* b.complete(p.handle)
        }))

      t.test("UsePending without a satisfying buffer suspends on the same token", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = yield* pendingWaitpoint()
          const base = { executionId: p.executionId, waitpointId: p.wp.waitpointId, token: p.wp.hmacToken }
          yield* signalAccepted({ ...base, name: "noise" }, "buffered_for_pending_waitpoint")
          const out = yield* usePending(p.handle, p.wp.waitpointId, p.key)
          if (out._tag !== "Suspended") return expect.fail("expected Suspended")
          expect(out.details.waitpointToken).toBe(p.wp.hmacToken)
          expect(yield* publicState(p.executionId)).toBe("suspended")
          const listed = yield* b.listPendingWaitpoints({ executionId: p.executionId })
          expect(listed.entries).toHaveLength(1)
          expect(listed.entries[0]).toMatchObject({
            waitpointId: p.wp.waitpointId,
            state: "active",
            requiredSignalNames: ["approve"]
          })
          expect(listed.entries[0]?.activatedAt).toBeDefined()
          yield* signalAccepted({ ...base, name: "approve" }, "resume_condition_satisfied")
          expect(yield* publicState(p.executionId)).toBe("waiting")
        }))

      t.test("UsePending of an unknown waitpoint: Contention(WaitpointNotFound), nothing written", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = yield* pendingWaitpoint()
          yield* failsWith(usePending(p.handle, yield* Ids.newWaitpointId, p.key), "Contention", "WaitpointNotFound")
          expect(yield* publicState(p.executionId)).toBe("active")
          yield* b.renew(p.handle)
        }))

      t.test("UsePending of another execution's waitpoint: Validation(InvalidWaitpointForExecution)", () =>
        Effect.gen(function*() {
          const p = yield* pendingWaitpoint()
          // same lane, so same partition: the waitpoint is visible, it just belongs to someone else
          const q = yield* pendingWaitpoint("approval", "1 minute", p.lane)
          yield* failsWith(
            usePending(p.handle, q.wp.waitpointId, q.key),
            "Validation",
            "InvalidWaitpointForExecution"
          )
          expect(yield* publicState(p.executionId)).toBe("active")
        }))

      t.test("an expired pending waitpoint: PendingWaitpointExpired; once closed, WaitpointNotPending and WaitpointClosed", () =>
        Effect.gen(function*() {
          const p = yield* pendingWaitpoint("approval", "1 second")
          yield* advance(1_000)
          yield* failsWith(usePending(p.handle, p.wp.waitpointId, p.key), "State", "PendingWaitpointExpired")
          yield* pass("expirePendingWaitpoints")
          yield* failsWith(usePending(p.handle, p.wp.waitpointId, p.key), "State", "WaitpointNotPending")
          yield* failsWith(
            signal({ executionId: p.executionId, waitpointId: p.wp.waitpointId, token: p.wp.hmacToken }),
            "State",
            "WaitpointClosed"
          )
          expect(yield* publicState(p.executionId)).toBe("active")
        }))

      t.test("createWaitpoint errors: ExecutionNotActive, lease lost, InvalidWaitpointKey", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const done = yield* createAndClaim()
          yield* b.complete(done.handle)
          yield* failsWith(
            b.createWaitpoint(done.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) }),
            "Contention",
            "ExecutionNotActive"
          )
          const revoked = yield* createAndClaim()
          yield* b.revokeLease({ executionId: revoked.executionId, reason: "x" })
          const e = yield* Effect.flip(
            b.createWaitpoint(revoked.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) })
          )
          // the canonical order: ownership ≠ leased is NoActiveLease (before the lease checks)
          const kind: string = "kind" in e ? String(e.kind) : ""
          expect(`${e._tag}:${kind}`).toBe("Contention:NoActiveLease")
          const live = yield* createAndClaim()
          for (const key of ["", "x".repeat(257), "bad\u0001key"]) {
            yield* validationFails(
              b.createWaitpoint(live.handle, { waitpointKey: key, expiresIn: Duration.minutes(1) }),
              "InvalidWaitpointKey"
            )
          }
          expect((yield* b.listPendingWaitpoints({ executionId: live.executionId })).entries).toEqual([])
        }))

      t.test("createWaitpoint runs the stricter ladder: an expired lease is LeaseExpired, not marked, nothing created", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim({}, { ttl: 1_000 })
          yield* advance(999)
          const first = yield* b.createWaitpoint(c.handle, { waitpointKey: "k1", expiresIn: Duration.minutes(1) })
          yield* advance(1)
          yield* failsWith(
            b.createWaitpoint(c.handle, { waitpointKey: "k2", expiresIn: Duration.minutes(1) }),
            "State",
            "LeaseExpired"
          )
          expect((yield* vector(c.executionId)).ownershipState).toBe("leased")
          const pending = (yield* b.listPendingWaitpoints({ executionId: c.executionId })).entries
          expect(pending.map((w) => w.waitpointId)).toEqual([first.waitpointId])
        }))

      t.freshOnly("createWaitpoint with an empty keystore: Transport(hmac_secret_not_initialized)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const e = yield* failsWith(
            b.createWaitpoint(c.handle, { waitpointKey: "k", expiresIn: Duration.minutes(1) }),
            "Transport"
          )
          expect(`${e.scriptCode ?? ""} ${e.message}`).toContain("hmac_secret_not_initialized")
          expect((yield* b.listPendingWaitpoints({ executionId: c.executionId })).entries).toEqual([])
        }))
    })

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
              signal({ executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" }),
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
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" },
            "resume_condition_satisfied"
          )
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
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const wp = yield* Ids.freshWaitpointBinding
          const out = yield* b.suspend(c.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", ...wp }],
            resumeCondition: { _tag: "TimeoutOnly" },
            timeoutAt: (yield* now) + 500,
            timeoutBehavior: "auto_resume"
          })
          yield* signalAccepted(
            { executionId: c.executionId, waitpointId: wp.waitpointId, token: out.details.waitpointToken, name: "x" },
            "no_op"
          )
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

    describe("HMAC keystore", () => {
      const rotate = (newKid: string, newSecretHex: string, graceMs: number) =>
        Effect.flatMap(backend, (b) => b.rotateWaitpointHmacSecretAll({ newKid, newSecretHex, graceMs }))

      const checkEntries = (
        r: { readonly entries: ReadonlyArray<{ readonly partition: number; readonly result: Either.Either<M.RotateOutcome, EngineError> }> },
        check: (result: Either.Either<M.RotateOutcome, EngineError>) => void
      ) => {
        if (t.options.rotateEntries === "single") {
          expect(r.entries.map((e) => e.partition)).toEqual([0])
        } else {
          expect(r.entries.map((e) => e.partition)).toEqual(
            Array.from({ length: t.options.numFlowPartitions }, (_, i) => i)
          )
        }
        for (const e of r.entries) check(e.result)
      }

      const newKid = (tag: string) => Effect.map(Ids.randomUuid, (u) => `ct-${tag}-${u.slice(0, 8)}`)

      t.freshOnly("seed installs once: Seeded, then AlreadySeeded{sameSecret}", () =>
        Effect.gen(function*() {
          const b = yield* backend
          expect(yield* b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: SEED_SECRET })).toEqual({
            _tag: "Seeded",
            kid: SEED_KID
          })
          expect(yield* b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: SEED_SECRET.toUpperCase() })).toEqual({
            _tag: "AlreadySeeded",
            kid: SEED_KID,
            sameSecret: true
          })
          expect(yield* b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: "fedcba9876543210".repeat(4) })).toEqual({
            _tag: "AlreadySeeded",
            kid: SEED_KID,
            sameSecret: false
          })
          yield* validationFails(
            b.seedWaitpointHmacSecret({ kid: "another-kid", secretHex: SEED_SECRET }),
            "InvalidInput",
            "rotate_waitpoint_hmac_secret_all"
          )
          // tokens are minted with the seeded kid
          const s = yield* suspendedExecution()
          expect(kidOf(s.token)).toBe(SEED_KID)
        }))

      t.test("seed rejects a secret that is not hex, shorter than 32 bytes or one byte repeated, and an empty kid", () =>
        Effect.gen(function*() {
          const b = yield* backend
          for (const secretHex of ["0".repeat(63), "g".repeat(64), "", "01234567-89ab-cdef-0123-456789abcdef0123456789"]) {
            yield* validationFails(
              b.seedWaitpointHmacSecret({ kid: "k", secretHex }),
              "InvalidInput",
              "secret_hex must be hex digits of whole bytes"
            )
          }
          for (const secretHex of [SEED_SECRET.slice(0, 62), "ab"]) {
            yield* validationFails(
              b.seedWaitpointHmacSecret({ kid: "k", secretHex }),
              "InvalidInput",
              "secret_hex must hold at least 32 bytes (64 hex digits)"
            )
          }
          for (const secretHex of ["0".repeat(64), "00".repeat(48), "f".repeat(64), "aB".repeat(32)]) {
            yield* validationFails(
              b.seedWaitpointHmacSecret({ kid: "k", secretHex }),
              "InvalidInput",
              "secret_hex must not be one byte repeated"
            )
          }
          yield* validationFails(
            b.seedWaitpointHmacSecret({ kid: "", secretHex: SEED_SECRET }),
            "InvalidInput",
            "kid must be non-empty"
          )
          yield* validationFails(b.seedWaitpointHmacSecret({ kid: "a:b", secretHex: SEED_SECRET }), "InvalidKid")
        }))

      t.test("rotation: new tokens use the new kid; old tokens stay valid through the grace, then token_expired", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const kidA = yield* newKid("a")
          const kidB = yield* newKid("b")
          const secretA = yield* randomSecret
          const secretB = yield* randomSecret
          yield* rotate(kidA, secretA, 86_400_000)
          const old = yield* suspendedExecution()
          expect(kidOf(old.token)).toBe(kidA)
          const r = yield* rotate(kidB, secretB, 10_000)
          checkEntries(r, (e) => {
            expect(Either.isRight(e)).toBe(true)
            if (Either.isRight(e)) {
              expect(e.right).toMatchObject({ _tag: "Rotated", previousKid: kidA, newKid: kidB })
            }
          })
          const fresh = yield* suspendedExecution()
          expect(kidOf(fresh.token)).toBe(kidB)
          const onOld = { executionId: old.executionId, waitpointId: old.waitpointId, token: old.token }
          yield* advance(10_000)
          // exactly at the end of the grace the old kid is still accepted
          yield* signalAccepted({ ...onOld, name: "reject" }, "no_op")
          yield* advance(1)
          yield* validationFails(signal({ ...onOld, name: "approve" }), "InvalidToken", "token_expired")
          expect(yield* publicState(old.executionId)).toBe("suspended")
          // the current kid never expires
          yield* advance(86_400_000)
          yield* signalAccepted(
            { executionId: fresh.executionId, waitpointId: fresh.waitpointId, token: fresh.token, name: "approve" },
            "resume_condition_satisfied"
          )
        }))

      t.test("rotation with grace 0 stops old tokens right after the rotation instant", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const s = yield* suspendedExecution()
          yield* rotate(yield* newKid("z"), yield* randomSecret, 0)
          const base = { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token }
          yield* signalAccepted({ ...base, name: "reject" }, "no_op")
          yield* advance(1)
          yield* validationFails(signal({ ...base, name: "approve" }), "InvalidToken", "token_expired")
        }))

      t.test("a rotated-out kid also stops buffering into pending waitpoints", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const wp = yield* b.createWaitpoint(c.handle, { waitpointKey: "k", expiresIn: Duration.hours(2) })
          yield* rotate(yield* newKid("p"), yield* randomSecret, 1_000)
          const base = { executionId: c.executionId, waitpointId: wp.waitpointId, token: wp.hmacToken, name: "x" }
          yield* signalAccepted(base, "buffered_for_pending_waitpoint")
          yield* advance(1_001)
          yield* validationFails(signal(base), "InvalidToken", "token_expired")
        }))

      t.test("an exact retry is Noop; the same kid with another secret is Conflict(RotationConflict)", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const kid = yield* newKid("n")
          const secret = yield* randomSecret
          yield* rotate(kid, secret, 1_000)
          checkEntries(yield* rotate(kid, secret, 1_000), (e) => {
            expect(Either.isRight(e) && e.right).toEqual({ _tag: "Noop", kid })
          })
          checkEntries(yield* rotate(kid, secret.toUpperCase(), 5), (e) => {
            expect(Either.isRight(e) && e.right).toEqual({ _tag: "Noop", kid })
          })
          checkEntries(yield* rotate(kid, yield* randomSecret, 1_000), (e) => {
            expect(Either.isLeft(e)).toBe(true)
            if (Either.isLeft(e)) expect(e.left).toMatchObject({ _tag: "Conflict", kind: "RotationConflict", kid })
          })
          // the conflict changed nothing: tokens still use the kid
          const s = yield* suspendedExecution()
          expect(kidOf(s.token)).toBe(kid)
        }))

      t.test("rotation garbage-collects kids whose grace elapsed", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const k1 = yield* newKid("g1")
          const k2 = yield* newKid("g2")
          const k3 = yield* newKid("g3")
          yield* rotate(k1, yield* randomSecret, 1_000)
          yield* rotate(k2, yield* randomSecret, 1_000)
          yield* advance(1_001)
          checkEntries(yield* rotate(k3, yield* randomSecret, 1_000), (e) => {
            if (Either.isLeft(e)) return expect.fail(String(e.left))
            expect(e.right).toMatchObject({ _tag: "Rotated", previousKid: k2, newKid: k3 })
            const gc = e.right._tag === "Rotated" ? e.right.gcCount : -1
            if (t.options.fresh) expect(gc).toBe(2) // the seed kid and k1
            else expect(gc).toBeGreaterThanOrEqual(1)
          })
        }))

      t.test("a secret longer than 32 bytes is accepted and signs tokens", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const kid = yield* newKid("long")
          const long = (yield* randomSecret) + (yield* randomSecret).slice(0, 32)
          checkEntries(yield* rotate(kid, long, 1_000), (e) => {
            expect(Either.isRight(e) && e.right).toMatchObject({ _tag: "Rotated", newKid: kid })
          })
          const s = yield* suspendedExecution()
          expect(kidOf(s.token)).toBe(kid)
          yield* signalAccepted(
            { executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" },
            "resume_condition_satisfied"
          )
        }))

      t.test("rotation input is validated before anything: InvalidKid, InvalidSecretHex, InvalidGraceMs", () =>
        Effect.gen(function*() {
          yield* ensureHmac
          const secret = yield* randomSecret
          yield* validationFails(rotate("", secret, 1_000), "InvalidKid")
          yield* validationFails(rotate("a:b", secret, 1_000), "InvalidKid")
          for (const bad of ["", "abc", "zz", "0g"]) yield* validationFails(rotate("ct-ok", bad, 1_000), "InvalidSecretHex")
          // a secret is at least 32 bytes, and not one byte repeated (an all-zero placeholder)
          for (const bad of ["ab", secret.slice(0, 62), "00".repeat(32), "7".repeat(128), "Cc".repeat(40)]) {
            yield* validationFails(rotate("ct-ok", bad, 1_000), "InvalidSecretHex")
          }
          for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) yield* validationFails(rotate("ct-ok", secret, bad), "InvalidGraceMs")
          // nothing was installed: tokens do not use the rejected kid
          const s = yield* suspendedExecution()
          expect(kidOf(s.token)).not.toBe("ct-ok")
        }))
    })
  })
