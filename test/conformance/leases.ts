/**
 * Leases and fencing (docs/design/executions.md#leases-and-fencing): expiry
 * marking, reclaim as a new attempt with a higher epoch, revocation, and stale
 * handles after reclaim, revoke and suspend.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Either, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import {
  advance,
  backend,
  bytes,
  claimOn,
  claimSome,
  createAndClaim,
  ensureHmac,
  failsWith,
  forgeHandle,
  INSTANCE,
  pass,
  payloadOf,
  publicState,
  signalAccepted,
  singleSuspendArgs,
  snapshot,
  suspendSingle,
  type Tester,
  vector
} from "./helpers.js"

const transient = { reason: { message: "boom" }, classification: "Transient" } as const

export const leases = (t: Tester) =>
  describe("leases and fencing", () => {
    const expiredAndMarked = (ttl = 1_000) =>
      Effect.gen(function*() {
        const c = yield* createAndClaim({}, { ttl })
        yield* advance(ttl)
        const r = yield* pass("expireLeases")
        expect(r.pass).toBe("expireLeases")
        if (t.options.fresh) expect(r).toEqual({ pass: "expireLeases", processed: 1, more: false })
        else expect(r.processed).toBeGreaterThanOrEqual(1)
        return c
      })

    t.test("the fence triple: lease id, epoch and attempt id are each checked (and where they are not)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const p = payloadOf(c.handle)
        const otherLease = forgeHandle(c.handle, { leaseId: yield* Ids.newLeaseId })
        const otherEpoch = forgeHandle(c.handle, { leaseEpoch: (p.leaseEpoch + 1) as typeof p.leaseEpoch })
        const otherAttempt = forgeHandle(c.handle, { attemptId: yield* Ids.newAttemptId })
        const otherIndex = forgeHandle(c.handle, { attemptIndex: (p.attemptIndex + 1) as typeof p.attemptIndex })
        for (const h of [otherLease, otherEpoch]) {
          yield* failsWith(b.complete(h), "State", "StaleLease")
          yield* failsWith(b.renew(h), "State", "StaleLease")
          yield* failsWith(b.progress(h, { percent: 1 }), "State", "StaleLease")
          yield* failsWith(b.fail(h, transient), "State", "StaleLease")
          yield* failsWith(b.delay(h, { delayUntil: 0 }), "State", "StaleLease")
          yield* failsWith(b.cancel(h, { reason: "x" }), "State", "StaleLease")
          yield* failsWith(b.appendFrame(h, { bytes: bytes("x"), kind: "stdout" }), "State", "StaleOwnerCannotAppend")
        }
        yield* failsWith(b.complete(otherAttempt), "State", "StaleLease")
        yield* failsWith(b.renew(otherAttempt), "State", "StaleLease")
        yield* failsWith(b.waitChildren(otherAttempt), "State", "StaleLease")
        yield* failsWith(b.renew(otherIndex), "State", "StaleLease")
        yield* failsWith(b.appendFrame(otherIndex, { bytes: bytes("x"), kind: "stdout" }), "State", "StaleOwnerCannotAppend")
        expect(yield* vector(c.executionId)).toMatchObject({ ownershipState: "leased", publicState: "active" })
        // progress does not compare the attempt id
        yield* b.progress(otherAttempt, { percent: 10 })
        yield* b.complete(c.handle)
      }))

    t.test("expireLeases leaves a live lease alone", () =>
      Effect.gen(function*() {
        const c = yield* createAndClaim({}, { ttl: 1_000 })
        yield* advance(999)
        const r = yield* pass("expireLeases")
        if (t.options.fresh) expect(r.processed).toBe(0)
        expect((yield* vector(c.executionId)).ownershipState).toBe("leased")
      }))

    t.test("expireLeases marks an expired lease reclaimable; the holder gets LeaseExpired", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* expiredAndMarked()
        expect(yield* vector(c.executionId)).toEqual({
          lifecyclePhase: "active",
          ownershipState: "lease_expired_reclaimable",
          eligibilityState: "not_applicable",
          blockingReason: "waiting_for_worker",
          terminalOutcome: "none",
          attemptState: "attempt_interrupted",
          publicState: "active"
        })
        expect((yield* snapshot(c.executionId)).blockingDetail).toBe("lease expired, awaiting reclaim")
        yield* failsWith(b.complete(c.handle), "State", "LeaseExpired")
        yield* failsWith(b.renew(c.handle), "State", "LeaseExpired")
      }))

    t.test("claim re-leases a reclaimable execution as a new attempt with epoch + 1", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* expiredAndMarked()
        const old = payloadOf(c.handle)
        const h = yield* claimSome(c.lane, { instance: "worker-2-i1", worker: "worker-2" })
        expect(h.kind).toBe("fresh")
        const p = payloadOf(h)
        expect(p.executionId).toBe(c.executionId)
        expect(p.attemptIndex).toBe(1)
        expect(p.leaseEpoch).toBe(old.leaseEpoch + 1)
        expect(p.attemptId).not.toBe(old.attemptId)
        expect(p.leaseId).not.toBe(old.leaseId)
        const s = yield* snapshot(c.executionId)
        expect(s.totalAttemptCount).toBe(2)
        expect(s.currentLease).toMatchObject({ leaseEpoch: 2, workerInstanceId: "worker-2-i1", attemptIndex: 1 })
        expect((yield* vector(c.executionId)).ownershipState).toBe("leased")
        // the stale holder is fenced out of every lease-bound write
        yield* failsWith(b.complete(c.handle), "State", "StaleLease")
        yield* failsWith(b.renew(c.handle), "State", "StaleLease")
        yield* failsWith(b.progress(c.handle, { percent: 5 }), "State", "StaleLease")
        yield* failsWith(b.fail(c.handle, transient), "State", "StaleLease")
        yield* failsWith(b.delay(c.handle, { delayUntil: 0 }), "State", "StaleLease")
        yield* failsWith(b.waitChildren(c.handle), "State", "StaleLease")
        yield* failsWith(b.appendFrame(c.handle, { bytes: bytes("x"), kind: "stdout" }), "State", "StaleOwnerCannotAppend")
        yield* ensureHmac
        yield* failsWith(b.suspend(c.handle, yield* singleSuspendArgs()), "State", "StaleLease")
        // the new holder is unaffected
        expect(yield* publicState(c.executionId)).toBe("active")
        yield* b.complete(h)
        expect(yield* publicState(c.executionId)).toBe("completed")
      }))

    t.test("lazy expiry: the first lease-validating write marks the lease, then claim reclaims", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim({}, { ttl: 500 })
        yield* advance(500)
        yield* failsWith(b.complete(c.handle), "State", "LeaseExpired")
        expect((yield* vector(c.executionId)).ownershipState).toBe("lease_expired_reclaimable")
        const h = yield* claimSome(c.lane)
        expect(payloadOf(h)).toMatchObject({ attemptIndex: 1, leaseEpoch: 2 })
      }))

    t.test("max_reclaim_count: the reclaim beyond the cap ends the execution failed", () =>
      Effect.gen(function*() {
        const c = yield* createAndClaim({ policy: { maxReclaimCount: 1 } }, { ttl: 1_000 })
        yield* advance(1_000)
        yield* pass("expireLeases")
        const second = yield* claimSome(c.lane, { ttl: 1_000 })
        expect(payloadOf(second)).toMatchObject({ attemptIndex: 1, leaseEpoch: 2 })
        yield* advance(1_000)
        yield* pass("expireLeases")
        const third = yield* Effect.either(claimOn(c.lane))
        if (Either.isRight(third)) expect(Option.isNone(third.right)).toBe(true)
        else expect(third.left).toMatchObject({ _tag: "State", kind: "MaxRetriesExhausted" })
        expect(yield* vector(c.executionId)).toMatchObject({ lifecyclePhase: "terminal", terminalOutcome: "failed" })
      }))

    t.test("revokeLease revokes: LeaseRevoked for the holder, AlreadySatisfied on repeat", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        const p = payloadOf(c.handle)
        const r = yield* b.revokeLease({ executionId: c.executionId, reason: "operator says so" })
        expect(r).toEqual({ _tag: "Revoked", leaseId: p.leaseId, leaseEpoch: "1" })
        expect(yield* vector(c.executionId)).toMatchObject({
          lifecyclePhase: "active",
          ownershipState: "lease_revoked",
          blockingReason: "waiting_for_worker",
          attemptState: "attempt_interrupted",
          publicState: "active"
        })
        expect((yield* snapshot(c.executionId)).blockingDetail).toBe("lease revoked: operator says so")
        yield* failsWith(b.complete(c.handle), "State", "LeaseRevoked")
        yield* failsWith(b.renew(c.handle), "State", "LeaseRevoked")
        yield* failsWith(b.progress(c.handle, { percent: 3 }), "State", "LeaseRevoked")
        yield* failsWith(b.fail(c.handle, transient), "State", "LeaseRevoked")
        yield* failsWith(b.appendFrame(c.handle, { bytes: bytes("x"), kind: "stdout" }), "State", "StaleOwnerCannotAppend")
        expect(yield* b.revokeLease({ executionId: c.executionId, reason: "again" })).toEqual({
          _tag: "AlreadySatisfied",
          reason: "already_revoked"
        })
      }))

    t.test("a revoked execution is reclaimed by claim; the new lease renews (revocation markers cleared)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* b.revokeLease({ executionId: c.executionId, reason: "ops" })
        const h = yield* claimSome(c.lane)
        expect(payloadOf(h)).toMatchObject({ attemptIndex: 1, leaseEpoch: 2 })
        yield* b.renew(h)
        yield* failsWith(b.complete(c.handle), "State", "StaleLease")
        // revoke → reclaim → complete → replay → claim: the fresh lease must still renew
        yield* b.complete(h)
        yield* b.replayExecution(c.executionId)
        const h3 = yield* claimSome(c.lane)
        expect(payloadOf(h3)).toMatchObject({ attemptIndex: 2, leaseEpoch: 3 })
        yield* b.renew(h3)
        yield* b.complete(h3)
      }))

    t.test("revokeLease with a stale expectedLeaseId: State(StaleLease), nothing changes", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* failsWith(
          b.revokeLease({ executionId: c.executionId, expectedLeaseId: yield* Ids.newLeaseId, reason: "x" }),
          "State",
          "StaleLease"
        )
        expect((yield* vector(c.executionId)).ownershipState).toBe("leased")
        yield* b.renew(c.handle)
        // with the right id it revokes
        const r = yield* b.revokeLease({
          executionId: c.executionId,
          expectedLeaseId: payloadOf(c.handle).leaseId,
          reason: "x"
        })
        expect(r._tag).toBe("Revoked")
      }))

    t.test("revokeLease on an expired-marked lease: AlreadySatisfied{already_expired}", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* expiredAndMarked()
        expect(yield* b.revokeLease({ executionId: c.executionId, reason: "x" })).toEqual({
          _tag: "AlreadySatisfied",
          reason: "already_expired"
        })
      }))

    t.test("revokeLease without a lease: AlreadySatisfied{no_active_lease}", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim()
        yield* b.complete(c.handle)
        expect(yield* b.revokeLease({ executionId: c.executionId, reason: "x" })).toEqual({
          _tag: "AlreadySatisfied",
          reason: "no_active_lease"
        })
      }))

    t.test("revokeLease on a missing execution (explicit worker instance): NotFound(execution)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* Ids.executionIdSolo(Ids.unsafe.laneId("ghost"))
        const e = yield* failsWith(
          b.revokeLease({ executionId: id, workerInstanceId: INSTANCE, reason: "x" }),
          "NotFound"
        )
        expect(e.entity).toBe("execution")
        expect(e.id).toBe(id)
      }))

    t.test("after suspend the pre-suspend and the suspended handle are fenced; after resume both are stale", () =>
      Effect.gen(function*() {
        const b = yield* backend
        yield* ensureHmac
        const c = yield* createAndClaim()
        const s = yield* suspendSingle(c.handle, { signalName: "go" })
        expect(s.suspendedHandle.kind).toBe("suspended")
        expect(payloadOf(s.suspendedHandle)).toEqual(payloadOf(c.handle))
        for (const h of [c.handle, s.suspendedHandle]) {
          const e = yield* failsWith(b.complete(h), "Contention", "ExecutionNotActive")
          expect(e.notActive?.lifecyclePhase).toBe("suspended")
          yield* failsWith(b.renew(h), "Contention", "ExecutionNotActive")
        }
        yield* signalAccepted(
          { executionId: c.executionId, waitpointId: s.waitpointId, token: s.token, name: "go" },
          "resume_condition_satisfied"
        )
        const resumed = yield* claimSome(c.lane)
        expect(resumed.kind).toBe("resumed")
        expect(payloadOf(resumed).leaseEpoch).toBe(2)
        for (const h of [c.handle, s.suspendedHandle]) {
          yield* failsWith(b.complete(h), "State", "StaleLease")
        }
        yield* b.complete(resumed)
      }))

    t.test("the lease epoch grows on every acquisition and never on renew", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* createAndClaim({}, { ttl: 1_000 })
        yield* b.renew(c.handle)
        expect((yield* snapshot(c.executionId)).currentLease?.leaseEpoch).toBe(1)
        yield* b.delay(c.handle, { delayUntil: 0 })
        yield* pass("promoteDelayed")
        const h2 = yield* claimSome(c.lane, { ttl: 1_000 })
        expect(payloadOf(h2).leaseEpoch).toBe(2)
        yield* b.revokeLease({ executionId: c.executionId, reason: "x" })
        const h3 = yield* claimSome(c.lane, { ttl: 1_000 })
        expect(payloadOf(h3).leaseEpoch).toBe(3)
        yield* advance(1_000)
        yield* pass("expireLeases")
        const h4 = yield* claimSome(c.lane, { ttl: 1_000 })
        expect(payloadOf(h4).leaseEpoch).toBe(4)
        expect(payloadOf(h4).attemptIndex).toBe(2)
        yield* b.complete(h4)
      }))

    t.test("cancelExecution ends a reclaimable execution", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* expiredAndMarked()
        const r = yield* b.cancelExecution({ executionId: c.executionId, reason: "give up" })
        expect(r).toEqual({ _tag: "Cancelled", executionId: c.executionId, publicState: "cancelled" })
        expect(yield* vector(c.executionId)).toMatchObject({ ownershipState: "unowned", terminalOutcome: "cancelled" })
      }))
  })
