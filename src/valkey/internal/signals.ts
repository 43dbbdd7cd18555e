/**
 * Suspension and signals over Valkey: suspend, createWaitpoint, deliverSignal (each taking its ids
 * through the id registry, registry.ts), observeSignals, and the waitpoint HMAC keystore's seeding
 * and rotation on every flow partition.
 */
import { Effect, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, invalidInput, validation } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea } from "../../internal/boundary.js"
import { makeHandle } from "../../internal/handleCodec.js"
import * as M from "../../Model.js"
import { type CoreContext, fence, type Fx, S } from "./context.js"
import { decodeFields, decodeJson, IntStr, LuaArray } from "./plumbing.js"
import type { IdClaims } from "./registry.js"

const WaitpointDetailsJson = Schema.Struct({
  waitpoint_id: Ids.WaitpointId,
  waitpoint_key: S,
  waitpoint_token: S
})
const SuspendDetailsJson = Schema.Struct({
  suspension_id: Ids.SuspensionId,
  ...WaitpointDetailsJson.fields,
  additional: LuaArray(WaitpointDetailsJson)
})

const SignalJson = Schema.Struct({
  signal_id: Ids.SignalId,
  signal_name: Schema.optionalWith(S, { default: () => "" }),
  signal_category: Schema.optionalWith(S, { default: () => "" }),
  source_type: Schema.optionalWith(S, { default: () => "" }),
  source_identity: Schema.optionalWith(S, { default: () => "" }),
  correlation_id: Schema.optionalWith(S, { default: () => "" }),
  accepted_at: Schema.optionalWith(S, { default: () => "" }),
  has_payload: Schema.optionalWith(S, { default: () => "0" })
})
const SignalRows = LuaArray(SignalJson)
const T_Waitpoint = Schema.Tuple(Ids.WaitpointId, S)
const T_Signal = Schema.Tuple(Ids.SignalId)
const T_Accepted = Schema.Tuple(Ids.SignalId, M.SignalEffect)
const T_Rotated = Schema.Tuple(S, S, IntStr)

const condToLua = (c: M.ResumeCondition): unknown => {
  switch (c._tag) {
    case "Single":
      return { kind: "single", key: c.waitpointKey, name: c.matcher._tag === "ByName" ? c.matcher.name : "" }
    case "OperatorOnly":
      return { kind: "operator" }
    case "TimeoutOnly":
      return { kind: "timeout" }
    case "Composite":
      return { kind: "composite", tree: bodyToLua(c.body, "") }
  }
}

const childPath = (path: string, i: number) => (path === "" ? `members[${i}]` : `${path}.members[${i}]`)

const matcherFields = (m: M.SignalMatcher | undefined) =>
  m === undefined || m._tag === "Wildcard" ? { wild: true, name: "" } : { wild: false, name: m.name }

const bodyToLua = (body: M.CompositeBody, path: string): unknown =>
  body._tag === "AllOf" ?
    { k: "allof", path, members: body.members.map((m, i) => memberToLua(m, childPath(path, i))) } :
    { k: "count", path, n: body.n, ck: body.countKind, ...matcherFields(body.matcher), wps: body.waitpoints }

const memberToLua = (m: M.ResumeCondition, path: string): unknown => {
  switch (m._tag) {
    case "Single":
      return { k: "single", path, key: m.waitpointKey, ...matcherFields(m.matcher) }
    case "Composite":
      return bodyToLua(m.body, path)
    default:
      return { k: "never", path }
  }
}

export const makeSignals = (
  ctx: CoreContext
): CoreArea<"signals"> => {
  const { call, client, ex, inRange, keys, N, registry, settings } = ctx

  const suspend: BackendCore["suspend"] = (h, args) =>
    Effect.gen(function*() {
      const [primary, ...extras] = args.waitpoints
      if (primary === undefined) return yield* invalidInput("waitpoints_empty")
      const now = args.now ?? (yield* Effect.clockWith((c) => c.currentTimeMillis))
      const dedupTtl = args.timeoutAt === undefined ?
        604_800_000 :
        Math.max(1, Math.min(args.timeoutAt - now + 60_000, 604_800_000))
      const fresh = args.waitpoints.flatMap((x) => (x._tag === "Fresh" ? [x.waitpointId] : []))
      const suspendCall = (claims: IdClaims) =>
        Effect.flatMap(
          call("suspend", { ...ex(h.payload.executionId), keys: claims.keys }, {
            ...fence(h),
            suspension_id: args.suspensionId,
            cond: condToLua(args.resumeCondition),
            resume_policy_json: JSON.stringify(args.resumePolicy),
            reason_code: args.reasonCode,
            requested_by: args.requestedBy,
            ...(args.timeoutAt === undefined ? {} : { timeout_at: args.timeoutAt }),
            timeout_behavior: args.timeoutBehavior,
            ...(args.continuationMetadataPointer === undefined ? {} : { continuation: args.continuationMetadataPointer }),
            ...(args.idempotencyKey === undefined || args.idempotencyKey === "" ?
              {} :
              { idempotency_key: args.idempotencyKey, dedup_ttl_ms: dedupTtl }),
            use_pending: primary._tag === "UsePending",
            primary: primary._tag === "Fresh" ?
              { waitpoint_id: primary.waitpointId, waitpoint_key: primary.waitpointKey } :
              { waitpoint_id: primary.waitpointId },
            extras: extras.map((x) =>
              x._tag === "Fresh" ? { waitpoint_id: x.waitpointId, waitpoint_key: x.waitpointKey } : { waitpoint_id: x.waitpointId }
            ),
            ...(claims.taken === undefined ? {} : { taken: claims.taken })
          }),
          (env) =>
            Effect.map(
              decodeJson("ff_suspend", SuspendDetailsJson, env.fields[0], h.payload.executionId),
              (d) => ({ status: env.status, d })
            )
        )
      // a keyed retry answered with its first outcome may name other waitpoints than this call's
      const { d, status } = yield* registry.withIds(
        h.payload.executionId,
        fresh.map((w) => keys.waitpointOwner(w)),
        suspendCall,
        ({ d }, i) => d.waitpoint_id === fresh[i] || d.additional.some((x) => x.waitpoint_id === fresh[i])
      ).pipe(
        Effect.catchIf(
          (e): e is EngineError => primary._tag === "UsePending" && e._tag === "Contention" && e.kind === "WaitpointNotFound",
          (e) =>
            Effect.flatMap(
              client.run("GET waitpoint owner", (c) => c.get(keys.waitpointOwner(primary.waitpointId))),
              (owner) =>
                Effect.fail(
                  owner !== null && owner.split("|")[0] !== h.payload.executionId ?
                    validation("InvalidWaitpointForExecution", `waitpoint ${primary.waitpointId} belongs to another execution`) :
                    e
                )
            )
        )
      )
      const details: M.SuspendOutcomeDetails = {
        suspensionId: d.suspension_id,
        waitpointId: d.waitpoint_id,
        waitpointKey: d.waitpoint_key,
        waitpointToken: d.waitpoint_token,
        additionalWaitpoints: d.additional.map((x) => ({
          waitpointId: x.waitpoint_id,
          waitpointKey: x.waitpoint_key,
          waitpointToken: x.waitpoint_token
        }))
      }
      if (status === "SATISFIED") return { _tag: "AlreadySatisfied", details } satisfies M.SuspendOutcome
      return {
        _tag: "Suspended",
        details,
        handle: makeHandle("valkey", "suspended", h.payload)
      } satisfies M.SuspendOutcome
    })

  const createWaitpoint: BackendCore["createWaitpoint"] = (h, waitpointKey, expiresInMs) =>
    Effect.gen(function*() {
      const id = yield* Ids.newWaitpointId
      const [waitpointId, hmacToken] = yield* registry.withIds(
        h.payload.executionId,
        [keys.waitpointOwner(id)],
        (claims) =>
          Effect.flatMap(
            call("create_waitpoint", { ...ex(h.payload.executionId), keys: claims.keys }, {
              ...fence(h),
              waitpoint_id: id,
              waitpoint_key: waitpointKey,
              expires_in_ms: expiresInMs,
              ...(claims.taken === undefined ? {} : { taken: claims.taken })
            }),
            (env) => decodeFields("ff_create_waitpoint", T_Waitpoint, env.fields)
          ),
        () => true
      )
      return { waitpointId, hmacToken }
    })

  const observeSignals: BackendCore["observeSignals"] = (h) =>
    Effect.gen(function*() {
      const id = h.payload.executionId
      const env = yield* call("observe_signals", ex(id), { execution_id: id, attempt_index: h.payload.attemptIndex }, [], true)
      const rows = yield* decodeJson("ff_observe_signals", SignalRows, env.fields[0], id)
      const partition = Ids.executionPartition(id)
      return yield* Effect.forEach(rows, (s) =>
        Effect.gen(function*() {
          const payload = s.has_payload === "1" ?
            yield* client.run("GET signal payload", (c) => c.getBuffer(keys.sigPayload(partition, s.signal_id))) :
            null
          const acceptedAt = /^\d+$/.test(s.accepted_at) ? Number(s.accepted_at) : 0
          return {
            signalId: s.signal_id,
            signalName: s.signal_name,
            signalCategory: s.signal_category,
            sourceType: s.source_type,
            sourceIdentity: s.source_identity,
            correlationId: s.correlation_id,
            acceptedAt,
            ...(payload === null ? {} : { payload: new Uint8Array(payload) })
          } satisfies M.ResumeSignal
        }))
    })

  const deliverSignal: BackendCore["deliverSignal"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const deliver = (claims: IdClaims): Fx<M.DeliverSignalResult> =>
        Effect.gen(function*() {
          const env = yield* call("deliver_signal", { ...ex(a.executionId), keys: claims.keys }, {
            execution_id: a.executionId,
            waitpoint_id: a.waitpointId,
            signal_id: a.signalId,
            signal_name: a.signalName,
            signal_category: a.signalCategory,
            source_type: a.sourceType,
            source_identity: a.sourceIdentity,
            payload_encoding: a.payloadEncoding ?? "json",
            ...(a.correlationId === undefined ? {} : { correlation_id: a.correlationId }),
            ...(a.idempotencyKey === undefined ? {} : { idempotency_key: a.idempotencyKey }),
            target_scope: a.targetScope,
            ...(a.createdAt === undefined ? {} : { created_at: a.createdAt }),
            ...(a.dedupTtlMs === undefined ? {} : { dedup_ttl_ms: a.dedupTtlMs }),
            ...(a.resumeDelayMs === undefined ? {} : { resume_delay_ms: a.resumeDelayMs }),
            ...(a.maxSignalsPerExecution === undefined ? {} : { max_signals: a.maxSignalsPerExecution }),
            ...(a.signalMaxlen === undefined ? {} : { signal_maxlen: a.signalMaxlen }),
            ...(claims.taken === undefined ? {} : { taken: claims.taken }),
            token: a.waitpointToken
          }, a.payload === undefined ? [] : [a.payload])
          if (env.status === "DUPLICATE") {
            const [existingSignalId] = yield* decodeFields("ff_deliver_signal", T_Signal, env.fields)
            return { _tag: "Duplicate", existingSignalId } satisfies M.DeliverSignalResult
          }
          const [signalId, effect] = yield* decodeFields(
            "ff_deliver_signal",
            T_Accepted,
            env.fields
          )
          return { _tag: "Accepted", signalId, effect } satisfies M.DeliverSignalResult
        })
      // a keyed repeat answered Duplicate names the first signal's id, not necessarily this one's
      return yield* registry.withIds(
        a.executionId,
        [keys.signalOwner(a.signalId)],
        deliver,
        (r) => r._tag === "Accepted" || r.existingSignalId === a.signalId
      )
    })

  // --- HMAC keystore administration ---------------------------------------------------------------
  const partitions = Array.from({ length: N }, (_, i) => i)

  const rotateWaitpointHmacSecretAll: BackendCore["rotateWaitpointHmacSecretAll"] = (a) =>
    Effect.map(
      Effect.forEach(partitions, (partition) =>
        Effect.either(
          Effect.gen(function*() {
            const env = yield* call("hmac_rotate", ctx.flowTarget(partition), {
              kid: a.newKid,
              secret: a.newSecretHex,
              grace_ms: a.graceMs
            })
            if (env.status === "noop") return { _tag: "Noop", kid: env.fields[0] ?? a.newKid } satisfies M.RotateOutcome
            const [previous, newKid, gcCount] = yield* decodeFields(
              "ff_hmac_rotate",
              T_Rotated,
              env.fields
            )
            return {
              _tag: "Rotated",
              ...(previous === "" ? {} : { previousKid: previous }),
              newKid,
              gcCount
            } satisfies M.RotateOutcome
          })
        ).pipe(Effect.map((result) => ({ partition, result }))), { concurrency: settings.fanOut }),
      (entries): EngineBackend.RotateResult => ({ entries })
    )

  const seedWaitpointHmacSecret: BackendCore["seedWaitpointHmacSecret"] = (a) =>
    Effect.gen(function*() {
      const results = yield* Effect.forEach(
        partitions,
        (partition) => call("hmac_seed", ctx.flowTarget(partition), { kid: a.kid, secret: a.secretHex }),
        { concurrency: settings.fanOut }
      )
      const other = results.find((r) => r.status === "other_kid")
      if (other !== undefined) {
        return yield* invalidInput(
          `seed_waitpoint_hmac_secret: stored current_kid ${other.fields[0] ?? ""} differs from supplied kid ${a.kid}; use rotate_waitpoint_hmac_secret_all to change kid`
        )
      }
      if (results.some((r) => r.status === "installed" || r.status === "repaired")) {
        return { _tag: "Seeded", kid: a.kid } satisfies M.SeedOutcome
      }
      const mismatch = results.some((r) => r.status === "mismatch")
      return {
        _tag: "AlreadySeeded",
        kid: a.kid,
        sameSecret: !mismatch && results.some((r) => r.status === "match")
      } satisfies M.SeedOutcome
    })

  return {
    suspend,
    createWaitpoint,
    observeSignals,
    deliverSignal,
    rotateWaitpointHmacSecretAll,
    seedWaitpointHmacSecret
  }
}
