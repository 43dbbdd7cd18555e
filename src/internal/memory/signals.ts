/**
 * Suspension, waitpoints and signals: suspending on a resume condition, delivering signals and
 * resuming when the condition holds, and the HMAC keystore that signs the waitpoint tokens.
 */
import { Either } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import {
  conflict,
  Conflict,
  contention,
  type EngineError,
  invalidInput,
  notFound,
  state as stateError,
  Transport,
  validation
} from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import type * as M from "../../Model.js"
import type { HandleRef } from "../boundary.js"
import { type KeyLookup, mintToken, sameSecret, verifyToken } from "../hmac.js"
import { conditionKeys } from "../validation.js"
import {
  clearLease,
  hasAttempt,
  DAY_MS,
  delayTo,
  err,
  ladder,
  notActiveDetail,
  ok,
  type R,
  transition
} from "./helpers.js"
import { endRun } from "./history.js"
import type { Exec, SignalRecord, Suspension, Waitpoint } from "./state.js"
import type { Store } from "./store.js"
import { closeSuspension } from "./terminal.js"

const DEFAULT_MAX_SIGNALS = 10_000
const SUSPEND_DEDUP_MAX_MS = 604_800_000

const blockingReasonFor = (reasonCode: string): M.BlockingReason => {
  switch (reasonCode) {
    case "waiting_for_approval":
    case "waiting_for_callback":
    case "waiting_for_tool_result":
    case "paused_by_policy":
      return reasonCode
    case "waiting_for_operator_review":
    case "manual_pause":
      return "paused_by_operator"
    case "paused_by_budget":
      return "waiting_for_budget"
    default:
      return "waiting_for_signal"
  }
}

const matches = (m: M.SignalMatcher | undefined, name: string): boolean =>
  m === undefined || m._tag === "Wildcard" || m.name === name

interface Evaluation {
  readonly satisfied: boolean
  readonly satisfiers: ReadonlyArray<Ids.SignalId>
}

// -------------------------------------------------------------------------
// Resume conditions
// -------------------------------------------------------------------------

const signalsOn = (store: Store, wp: Waitpoint | undefined): Array<SignalRecord> => {
  if (wp === undefined) return []
  return wp.signals.map((id) => store.signals.get(id)).filter((s): s is SignalRecord => s !== undefined)
}

const evaluate = (store: Store, c: M.ResumeCondition, byKey: ReadonlyMap<string, Waitpoint>): Evaluation => {
  switch (c._tag) {
    case "OperatorOnly":
    case "TimeoutOnly":
      return { satisfied: false, satisfiers: [] }
    case "Single": {
      const hit = signalsOn(store, byKey.get(c.waitpointKey)).find((s) => matches(c.matcher, s.name))
      return hit === undefined ? { satisfied: false, satisfiers: [] } : { satisfied: true, satisfiers: [hit.id] }
    }
    case "Composite": {
      const body = c.body
      if (body._tag === "AllOf") {
        const parts = body.members.map((m) => evaluate(store, m, byKey))
        return parts.every((p) => p.satisfied) ?
          { satisfied: true, satisfiers: [...new Set(parts.flatMap((p) => p.satisfiers))] } :
          { satisfied: false, satisfiers: [] }
      }
      const seen = new Set<string>()
      const satisfiers: Array<Ids.SignalId> = []
      for (const key of body.waitpoints) {
        const wp = byKey.get(key)
        for (const s of signalsOn(store, wp)) {
          if (!matches(body.matcher, s.name)) continue
          const distinct = body.countKind === "DistinctWaitpoints" ?
            key :
            body.countKind === "DistinctSignals" ?
            s.id :
            `${s.sourceType}:${s.sourceIdentity}`
          if (seen.has(distinct)) continue
          seen.add(distinct)
          if (satisfiers.length < body.n) satisfiers.push(s.id)
        }
      }
      return seen.size >= body.n ? { satisfied: true, satisfiers } : { satisfied: false, satisfiers: [] }
    }
  }
}

/** Progress measure of a composite: distinct satisfiers summed over its parts. */
const evaluateCount = (store: Store, s: Suspension, byKey: ReadonlyMap<string, Waitpoint>): number => {
  const count = (c: M.ResumeCondition): number => {
    if (c._tag === "Single") return evaluate(store, c, byKey).satisfied ? 1 : 0
    if (c._tag !== "Composite") return 0
    if (c.body._tag === "AllOf") return c.body.members.reduce((n, m) => n + count(m), 0)
    const body = c.body
    const seen = new Set<string>()
    for (const key of body.waitpoints) {
      for (const sig of signalsOn(store, byKey.get(key))) {
        if (!matches(body.matcher, sig.name)) continue
        seen.add(
          body.countKind === "DistinctWaitpoints" ?
            key :
            body.countKind === "DistinctSignals" ?
            sig.id :
            `${sig.sourceType}:${sig.sourceIdentity}`
        )
      }
    }
    return seen.size
  }
  return count(s.condition)
}

const matcherAccepts = (c: M.ResumeCondition, key: string, name: string): boolean => {
  switch (c._tag) {
    case "Single":
      return c.waitpointKey === key && matches(c.matcher, name)
    case "Composite":
      return c.body._tag === "AllOf" ?
        c.body.members.some((m) => matcherAccepts(m, key, name)) :
        c.body.waitpoints.includes(key) && matches(c.body.matcher, name)
    default:
      return false
  }
}

const waitpointsByKey = (store: Store, s: Suspension): Map<string, Waitpoint> => {
  const map = new Map<string, Waitpoint>()
  for (const id of [s.waitpointId, ...s.additional.map((w) => w.waitpointId)]) {
    const wp = store.waitpoints.get(id)
    if (wp !== undefined) map.set(wp.key, wp)
  }
  return map
}

const suspendDedupKey = (e: Ids.ExecutionId, key: string): string => {
  return `${e}|${key}`
}

// -------------------------------------------------------------------------
// Suspend, waitpoints, signals
// -------------------------------------------------------------------------

export const suspend = (store: Store, now: number, h: HandleRef, args: M.SuspendArgs): R<M.SuspendOutcome> => {
  const p = h.payload
  if (args.idempotencyKey !== undefined && args.idempotencyKey !== "") {
    const hit = store.suspendDedup.get(suspendDedupKey(p.executionId, args.idempotencyKey))
    // the first outcome verbatim, with the caller's handle (docs/design/signals.md#suspend-idempotency)
    if (hit !== undefined && hit.expiresAt > now) {
      return ok(hit.outcome._tag === "Suspended" ? { ...hit.outcome, handle: { ...h.handle, kind: "suspended" } } : hit.outcome)
    }
  }
  const e = store.executions.get(p.executionId)
  const failure = ladder(store, e, p, now, true)
  if (failure !== undefined) return err(failure)
  const x = e!
  if (x.currentAttemptIndex !== p.attemptIndex) return err(validation("InvalidLeaseForSuspend"))
  if (x.suspension !== undefined && x.suspension.closedAt === undefined) return err(stateError("AlreadySuspended"))
  const [primary, ...extras] = args.waitpoints
  let primaryWp: Waitpoint | undefined
  if (primary!._tag === "UsePending") {
    const wp = store.waitpoints.get(primary!.waitpointId)
    if (wp === undefined) return err(contention("WaitpointNotFound"))
    if (wp.state !== "pending") return err(stateError("WaitpointNotPending"))
    if (wp.executionId !== x.id || wp.attemptIndex !== p.attemptIndex) {
      return err(validation("InvalidWaitpointForExecution"))
    }
    if (wp.expiresAt !== undefined && wp.expiresAt <= now) return err(stateError("PendingWaitpointExpired"))
    if (wp.token === "") return err(validation("WaitpointNotTokenBound"))
    primaryWp = wp
  } else if (store.keystore.currentKid === undefined) {
    return err(hmacNotInitialized(store))
  } else {
    for (const b of args.waitpoints) {
      if (b._tag === "Fresh") {
        const existing = store.waitpoints.get(b.waitpointId)
        if (existing !== undefined) return err(conflict("WaitpointAlreadyExists"))
      }
    }
  }
  // Checks are done; from here on the step writes.
  const newWaitpoint = (id: Ids.WaitpointId, key: string): Waitpoint => {
    const wp: Waitpoint = {
      id,
      executionId: x.id,
      attemptIndex: p.attemptIndex,
      suspensionId: args.suspensionId,
      key,
      token: mint(store, id, key, now)!,
      state: "active",
      createdAt: now,
      activatedAt: now,
      satisfiedAt: undefined,
      closedAt: undefined,
      expiresAt: args.timeoutAt,
      closeReason: undefined,
      signalCount: 0,
      matchedSignalCount: 0,
      lastSignalAt: undefined,
      signals: []
    }
    store.waitpoints.set(id, wp)
    ;(x.waitpointIds ??= []).push(id)
    return wp
  }
  if (primaryWp !== undefined) {
    primaryWp.state = "active"
    primaryWp.activatedAt = now
    primaryWp.expiresAt = args.timeoutAt
    primaryWp.suspensionId = args.suspensionId
  } else {
    const b = primary as Extract<M.WaitpointBinding, { _tag: "Fresh" }>
    primaryWp = newWaitpoint(b.waitpointId, b.waitpointKey)
  }
  const additional = extras.map((b) => {
    const fresh = b as Extract<M.WaitpointBinding, { _tag: "Fresh" }>
    const wp = newWaitpoint(fresh.waitpointId, fresh.waitpointKey)
    return { waitpointId: wp.id, waitpointKey: wp.key, waitpointToken: wp.token }
  })
  const suspension: Suspension = {
    id: args.suspensionId,
    attemptIndex: p.attemptIndex,
    waitpointId: primaryWp.id,
    waitpointKey: primaryWp.key,
    waitpointToken: primaryWp.token,
    additional,
    reasonCode: args.reasonCode,
    requestedBy: args.requestedBy,
    createdAt: now,
    timeoutAt: args.timeoutAt,
    timeoutBehavior: args.timeoutBehavior,
    condition: args.resumeCondition,
    resumePolicy: args.resumePolicy,
    continuationMetadataPointer: args.continuationMetadataPointer,
    lastSignalAt: undefined,
    satisfiedAt: undefined,
    closedAt: undefined,
    closeReason: undefined,
    satisfiers: []
  }
  const details: M.SuspendOutcomeDetails = {
    suspensionId: args.suspensionId,
    waitpointId: primaryWp.id,
    waitpointKey: primaryWp.key,
    waitpointToken: primaryWp.token,
    additionalWaitpoints: additional
  }
  const remember = (outcome: M.SuspendOutcome) => {
    if (args.idempotencyKey !== undefined && args.idempotencyKey !== "") {
      const ttl = args.timeoutAt === undefined ?
        SUSPEND_DEDUP_MAX_MS :
        Math.min(args.timeoutAt - (args.now ?? now) + 60_000, SUSPEND_DEDUP_MAX_MS)
      store.suspendDedup.set(suspendDedupKey(x.id, args.idempotencyKey), { outcome, expiresAt: now + ttl })
    }
    return outcome
  }
  if (primary!._tag === "UsePending" && primaryWp.signals.length > 0) {
    const verdict = evaluate(store, args.resumeCondition, waitpointsByKey(store, suspension))
    if (verdict.satisfied) {
      suspension.satisfiers = verdict.satisfiers
      suspension.satisfiedAt = now
      x.suspension = suspension
      closeSuspension(store, x, "resumed", now)
      primaryWp.satisfiedAt = now
      primaryWp.matchedSignalCount = verdict.satisfiers.length
      x.lastMutationAt = now
      return ok(remember({ _tag: "AlreadySatisfied", details }))
    }
  }
  endRun(x, "suspended", now, args.reasonCode)
  x.suspension = suspension
  x.currentWaitpointId = primaryWp.id
  if (hasAttempt(x)) x.attemptLifecycle = "suspended"
  clearLease(x)
  transition(store, x, {
    phase: "suspended",
    ownership: "unowned",
    eligibility: "not_applicable",
    blockingReason: blockingReasonFor(args.reasonCode),
    blockingDetail: `suspended: waitpoint ${primaryWp.id} awaiting ${args.reasonCode}`,
    attemptState: "attempt_interrupted"
  }, now)
  if (args.timeoutAt !== undefined) store.suspensionTimeouts.push(args.timeoutAt, x.id)
  return ok(remember({ _tag: "Suspended", details, handle: { ...h.handle, kind: "suspended" } }))
}

export const createWaitpoint = (
  store: Store,
  now: number,
  h: HandleRef,
  key: string,
  expiresInMs: number,
  id: Ids.WaitpointId
): R<M.PendingWaitpoint> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "active") return err(notActiveDetail(e))
  if (e.ownership !== "leased") return err(contention("NoActiveLease"))
  if (e.currentAttemptIndex !== p.attemptIndex || e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch) {
    return err(stateError("StaleLease"))
  }
  if (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) return err(stateError("LeaseExpired"))
  if (store.waitpoints.has(id)) return err(conflict("WaitpointAlreadyExists"))
  const token = mint(store, id, key, now)
  if (token === undefined) return err(hmacNotInitialized(store))
  const wp: Waitpoint = {
    id,
    executionId: e.id,
    attemptIndex: p.attemptIndex,
    suspensionId: undefined,
    key,
    token,
    state: "pending",
    createdAt: now,
    activatedAt: undefined,
    satisfiedAt: undefined,
    closedAt: undefined,
    expiresAt: now + expiresInMs,
    closeReason: undefined,
    signalCount: 0,
    matchedSignalCount: 0,
    lastSignalAt: undefined,
    signals: []
  }
  store.waitpoints.set(id, wp)
  ;(e.waitpointIds ??= []).push(id)
  store.pendingExpiries.push(wp.expiresAt!, id)
  return ok({ waitpointId: id, hmacToken: token })
}

export const observeSignals = (store: Store, _now: number, h: HandleRef): R<ReadonlyArray<M.ResumeSignal>> => {
  const e = store.executions.get(h.payload.executionId)
  const s = e?.suspension
  if (s === undefined || s.attemptIndex !== h.payload.attemptIndex || s.closeReason !== "resumed") return ok([])
  const out: Array<M.ResumeSignal> = []
  for (const id of s.satisfiers) {
    const r = store.signals.get(id)
    if (r === undefined || r.executionId !== e!.id) continue
    out.push({
      signalId: r.id,
      signalName: r.name,
      signalCategory: r.category,
      sourceType: r.sourceType,
      sourceIdentity: r.sourceIdentity,
      correlationId: r.correlationId,
      acceptedAt: r.acceptedAt,
      ...(r.payload === undefined ? {} : { payload: r.payload })
    })
  }
  return ok(out)
}

export const deliverSignal = (store: Store, now: number, args: M.DeliverSignalArgs): R<M.DeliverSignalResult> => {
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  const wp = store.waitpoints.get(args.waitpointId)
  const authFail = (detail: string) => {
    return err<M.DeliverSignalResult>(validation("InvalidToken", detail))
  }
  if (wp === undefined || wp.executionId !== e.id) return args.waitpointToken === "" ? authFail("missing_token") : authFail("")
  const verdict = verifyToken(args.waitpointToken, keyLookup(store), now, {
    waitpointId: wp.id,
    waitpointKey: wp.key,
    createdAt: wp.createdAt
  })
  if (verdict === "hmac_secret_not_initialized") return err(hmacNotInitialized(store))
  if (verdict === "missing_token" || verdict === "token_expired") return authFail(verdict)
  if (verdict === "invalid_token") return authFail("")
  if (e.phase === "terminal") return err(stateError("TargetNotSignalable"))
  const buffering = wp.state === "pending" || wp.state === "expired"
  if (!buffering && e.phase !== "suspended" && wp.state !== "active") return err(stateError("TargetNotSignalable"))
  if (buffering) {
    if (wp.state === "expired" || (wp.expiresAt !== undefined && wp.expiresAt <= now)) {
      return err(stateError("WaitpointClosed"))
    }
  } else if (wp.state !== "active") {
    return err(stateError("WaitpointClosed"))
  }
  // the execution's cap (0 = none); a sender may only lower it (docs/guide.md)
  const own = e.policy?.maxSignalsPerExecution ?? DEFAULT_MAX_SIGNALS
  const asked = args.maxSignalsPerExecution
  const limit = asked !== undefined && asked > 0 && (own === 0 || asked < own) ? asked : own
  if (limit > 0 && e.signalCount >= limit) return err(validation("SignalLimitExceeded"))
  const dedupTtl = args.dedupTtlMs ?? DAY_MS
  const dedupKey = `${wp.id}|${args.idempotencyKey ?? ""}`
  const deduped = args.idempotencyKey !== undefined && args.idempotencyKey !== "" && dedupTtl > 0
  if (deduped) {
    const hit = store.signalDedup.get(dedupKey)
    if (hit !== undefined && hit.expiresAt > now) return ok({ _tag: "Duplicate", existingSignalId: hit.signalId })
  }
  // a signal id names one signal of one execution: reusing it, whoever used it, is refused
  if (store.signals.has(args.signalId)) return err(stateError("DuplicateSignal"))
  if (deduped) store.signalDedup.set(dedupKey, { signalId: args.signalId, expiresAt: now + dedupTtl })
  const record: SignalRecord = {
    id: args.signalId,
    executionId: e.id,
    waitpointId: wp.id,
    name: args.signalName,
    category: args.signalCategory,
    sourceType: args.sourceType,
    sourceIdentity: args.sourceIdentity,
    correlationId: args.correlationId ?? "",
    payload: args.payload,
    acceptedAt: now
  }
  const live = e.suspension !== undefined && e.suspension.closedAt === undefined ? e.suspension : undefined
  const before = live !== undefined && live.condition._tag === "Composite" ?
    evaluateCount(store, live, waitpointsByKey(store, live)) :
    0
  store.signals.set(record.id, record)
  wp.signals.push(record.id)
  const maxlen = args.signalMaxlen ?? 1000
  if (maxlen > 0 && wp.signals.length > maxlen) wp.signals.splice(0, wp.signals.length - maxlen)
  wp.signalCount += 1
  wp.lastSignalAt = now
  e.signalCount += 1
  if (buffering) return ok({ _tag: "Accepted", signalId: record.id, effect: "buffered_for_pending_waitpoint" })
  const s = e.suspension
  if (s === undefined || s.closedAt !== undefined || e.phase !== "suspended") {
    return ok({ _tag: "Accepted", signalId: record.id, effect: "appended_to_waitpoint" })
  }
  s.lastSignalAt = now
  const byKey = waitpointsByKey(store, s)
  const referenced = conditionKeys(s.condition)
  const composite = s.condition._tag === "Composite"
  const verdict2 = evaluate(store, s.condition, byKey)
  if (verdict2.satisfied) {
    wp.matchedSignalCount += 1
    resume(store, e, s, verdict2.satisfiers, now, args.resumeDelayMs ?? 0, args.signalName)
    return ok({ _tag: "Accepted", signalId: record.id, effect: "resume_condition_satisfied" })
  }
  if (!composite) {
    const cond = s.condition
    const hit = cond._tag === "Single" && cond.waitpointKey === wp.key && matches(cond.matcher, args.signalName)
    if (hit) wp.matchedSignalCount += 1
    return ok({ _tag: "Accepted", signalId: record.id, effect: hit ? "appended_to_waitpoint" : "no_op" })
  }
  if (!referenced.has(wp.key)) return ok({ _tag: "Accepted", signalId: record.id, effect: "signal_ignored_not_in_condition" })
  if (!matcherAccepts(s.condition, wp.key, args.signalName)) {
    return ok({ _tag: "Accepted", signalId: record.id, effect: "signal_ignored_matcher_failed" })
  }
  wp.matchedSignalCount += 1
  const after = evaluateCount(store, s, byKey)
  return ok({
    _tag: "Accepted",
    signalId: record.id,
    effect: after > before ? "appended_to_waitpoint" : "appended_to_waitpoint_duplicate"
  })
}

const resume = (
  store: Store,
  e: Exec,
  s: Suspension,
  satisfiers: ReadonlyArray<Ids.SignalId>,
  now: number,
  resumeDelayMs: number,
  signalName: string
): void => {
  s.satisfiers = satisfiers
  s.satisfiedAt = now
  const primary = store.waitpoints.get(s.waitpointId)
  if (primary !== undefined) primary.satisfiedAt = now
  closeSuspension(store, e, "resumed", now)
  if (resumeDelayMs > 0) {
    delayTo(store, e, now + resumeDelayMs, now, {
      blockingReason: "waiting_for_resume_delay",
      blockingDetail: `resume delay ${resumeDelayMs}ms after signal ${signalName}`,
      attemptState: "attempt_interrupted"
    })
  } else {
    transition(store, e, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: "eligible_now",
      blockingReason: "waiting_for_worker",
      blockingDetail: "",
      attemptState: "attempt_interrupted"
    }, now)
  }
}

// -------------------------------------------------------------------------
// HMAC keystore and tokens
// -------------------------------------------------------------------------

const keyLookup = (store: Store): KeyLookup => {
  return {
    isEmpty: store.keystore.currentKid === undefined,
    secret: (kid) => store.keystore.secrets.get(kid)
  }
}

const hmacNotInitialized = (store: Store): EngineError => {
  return new Transport({
    backend: store.label,
    kind: "other",
    retryable: false,
    message: "waitpoint HMAC keystore is empty: seed it with seedWaitpointHmacSecret",
    scriptCode: "hmac_secret_not_initialized"
  })
}

const mint = (store: Store, waitpointId: string, key: string, createdAt: number): string | undefined => {
  const kid = store.keystore.currentKid
  if (kid === undefined) return undefined
  const secret = store.keystore.secrets.get(kid)!
  return mintToken(kid, secret.secretHex, waitpointId, key, createdAt)
}

export const rotateWaitpointHmacSecretAll = (
  store: Store,
  now: number,
  args: M.RotateWaitpointHmacSecretAllArgs
): R<EngineBackend.RotateResult> => {
  const ks = store.keystore
  const entry = (result: Either.Either<M.RotateOutcome, EngineError>) => ok({ entries: [{ partition: 0, result }] })
  if (ks.currentKid === args.newKid) {
    const current = ks.secrets.get(args.newKid)
    if (current === undefined) {
      ks.secrets.set(args.newKid, { secretHex: args.newSecretHex, expiresAt: undefined })
      return entry(Either.right({ _tag: "Noop", kid: args.newKid }))
    }
    return sameSecret(current.secretHex, args.newSecretHex) ?
      entry(Either.right({ _tag: "Noop", kid: args.newKid })) :
      entry(Either.left(new Conflict({ kind: "RotationConflict", kid: args.newKid })))
  }
  let gcCount = 0
  for (const [kid, s] of ks.secrets) {
    if (kid !== ks.currentKid && (s.expiresAt === undefined || s.expiresAt <= 0 || s.expiresAt < now)) {
      ks.secrets.delete(kid)
      gcCount++
    }
  }
  const previousKid = ks.currentKid
  if (previousKid !== undefined) ks.secrets.get(previousKid)!.expiresAt = now + args.graceMs
  ks.secrets.set(args.newKid, { secretHex: args.newSecretHex, expiresAt: undefined })
  ks.currentKid = args.newKid
  return entry(Either.right({
    _tag: "Rotated",
    ...(previousKid === undefined ? {} : { previousKid }),
    newKid: args.newKid,
    gcCount
  }))
}

export const seedWaitpointHmacSecret = (
  store: Store,
  _now: number,
  args: M.SeedWaitpointHmacSecretArgs
): R<M.SeedOutcome> => {
  const ks = store.keystore
  if (ks.currentKid === undefined) {
    ks.currentKid = args.kid
    ks.secrets.set(args.kid, { secretHex: args.secretHex, expiresAt: undefined })
    return ok({ _tag: "Seeded", kid: args.kid })
  }
  if (ks.currentKid !== args.kid) {
    return err(invalidInput(
      `seed_waitpoint_hmac_secret: stored current_kid ${ks.currentKid} differs from supplied kid ${args.kid}; ` +
        "use rotate_waitpoint_hmac_secret_all to change kid"
    ))
  }
  const current = ks.secrets.get(args.kid)
  if (current === undefined) {
    ks.secrets.set(args.kid, { secretHex: args.secretHex, expiresAt: undefined })
    return ok({ _tag: "Seeded", kid: args.kid })
  }
  return ok({ _tag: "AlreadySeeded", kid: args.kid, sameSecret: sameSecret(current.secretHex, args.secretHex) })
}
