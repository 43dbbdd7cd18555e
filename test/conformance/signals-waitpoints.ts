/**
 * Suspension and signals (docs/design/signals.md), waitpoints: composite resume conditions, and pending waitpoints
 * that buffer signals until a suspension uses them.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Ids from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  claimSome,
  createAndClaim,
  ensureHmac,
  failsWith,
  kidOf,
  now,
  pass,
  publicState,
  signal,
  signalAccepted,
  suspendSingle,
  type Tester,
  validationFails,
  vector
} from "./helpers.js"
import { suspendedOnFresh, TOKEN_SHAPE } from "./signals-helpers.js"

export const signalsWaitpoints = (t: Tester): void => {
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
        const c = yield* suspendedOnFresh((key) => ({
          _tag: "Composite",
          body: { _tag: "Count", n: 2, countKind: "DistinctSources", waitpoints: [key] }
        }))
        const base = c.to
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
        const c = yield* suspendedOnFresh((key) => ({
          _tag: "Composite",
          body: { _tag: "Count", n: 2, countKind: "DistinctSignals", matcher: { _tag: "ByName", name: "vote" }, waitpoints: [key] }
        }))
        const base = c.to
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
        yield* advance(1)
        const t1 = yield* now
        const out = yield* usePending(p.handle, p.wp.waitpointId, p.key)
        expect(out._tag).toBe("AlreadySatisfied")
        // the execution changed (its waitpoint was satisfied and closed): its last mutation is now
        const described = yield* b.describeExecution(p.executionId)
        expect(described).toMatchObject({ _tag: "Some", value: { lastMutationAt: t1 } })
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

    t.test("an expired pending waitpoint of an execution suspended on another one: a signal to it is WaitpointClosed", () =>
      Effect.gen(function*() {
        const p = yield* pendingWaitpoint("approval", "1 second")
        yield* suspendSingle(p.handle, { signalName: "go" })
        yield* advance(1_000)
        yield* pass("expirePendingWaitpoints")
        yield* failsWith(
          signal({ executionId: p.executionId, waitpointId: p.wp.waitpointId, token: p.wp.hmacToken }),
          "State",
          "WaitpointClosed"
        )
        expect(yield* publicState(p.executionId)).toBe("suspended")
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
}
