/**
 * Suspension and signals over Postgres: suspend (its resume condition flattened here for the
 * evaluator of signals.sql), waitpoints, signal delivery and observation, and the waitpoint HMAC
 * keystore (seed, rotate).
 */
import { Effect, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { invalidInput } from "../../EngineError.js"
import type { CoreArea } from "../../internal/boundary.js"
import * as M from "../../Model.js"
import { bigint, bool, bytea, int, jsonb, text, uuid } from "./client.js"
import { Base64, type CoreContext, handleArgs } from "./context.js"

const ResumeSignalRow = Schema.Struct({ ...M.ResumeSignal.fields, payload: Schema.optional(Base64) })
const SuspendRow = Schema.Union(
  Schema.TaggedStruct("Suspended", { details: M.SuspendOutcomeDetails }),
  Schema.TaggedStruct("AlreadySatisfied", { details: M.SuspendOutcomeDetails })
)
const CreateWaitpointRow = M.PendingWaitpoint
const DeliverRow = M.DeliverSignalResult
const ResumeSignalRows = Schema.Array(ResumeSignalRow)

/** blocking_reason of a suspension reason code (docs/design/signals.md#reason-codes). */
const blockingReasonOf = (reasonCode: string): M.BlockingReason => {
  switch (reasonCode) {
    case "waiting_for_approval":
      return "waiting_for_approval"
    case "waiting_for_callback":
      return "waiting_for_callback"
    case "waiting_for_tool_result":
      return "waiting_for_tool_result"
    case "waiting_for_operator_review":
    case "manual_pause":
      return "paused_by_operator"
    case "paused_by_policy":
      return "paused_by_policy"
    case "paused_by_budget":
      return "waiting_for_budget"
    default:
      return "waiting_for_signal"
  }
}

// ---------------------------------------------------------------------------
// resume conditions, flattened for the server-side evaluator
// ---------------------------------------------------------------------------

interface CondNode {
  readonly kind: "single" | "allof" | "count" | "never"
  readonly path: string
  readonly key?: string
  readonly name?: string | null
  readonly children?: Array<number>
  readonly n?: number
  readonly countKind?: M.CountKind
  readonly waitpoints?: ReadonlyArray<string>
}

const matcherName = (m: M.SignalMatcher | undefined): string | null =>
  m === undefined || m._tag === "Wildcard" ? null : m.name

/** The condition as `{legacy, nodes}` plus the signal names each waitpoint key needs. */
export const flattenCondition = (cond: M.ResumeCondition) => {
  const nodes: Array<CondNode> = []
  const names: Record<string, Array<string>> = {}
  const addName = (key: string, name: string | null) => {
    const list = (names[key] ??= [])
    if (name !== null && name !== "" && !list.includes(name)) list.push(name)
  }
  const childPath = (parent: string, i: number) => (parent === "" ? `members[${i}]` : `${parent}.members[${i}]`)
  const visit = (c: M.ResumeCondition, path: string): number => {
    const index = nodes.length
    switch (c._tag) {
      case "Single": {
        const name = matcherName(c.matcher)
        nodes.push({ kind: "single", path, key: c.waitpointKey, name })
        addName(c.waitpointKey, name)
        break
      }
      case "OperatorOnly":
      case "TimeoutOnly":
        nodes.push({ kind: "never", path })
        break
      case "Composite": {
        const body = c.body
        if (body._tag === "AllOf") {
          const children: Array<number> = []
          nodes.push({ kind: "allof", path, children })
          body.members.forEach((m, i) => children.push(visit(m, childPath(path, i))))
        } else {
          const name = matcherName(body.matcher)
          nodes.push({ kind: "count", path, n: body.n, countKind: body.countKind, name, waitpoints: body.waitpoints })
          for (const k of body.waitpoints) addName(k, name)
        }
        break
      }
    }
    return index
  }
  visit(cond, "")
  return { condition: { legacy: cond._tag !== "Composite", nodes }, names }
}

export const makeSignals = (
  ctx: CoreContext
): CoreArea<"signals"> => {
  const { callDecode } = ctx
  return {
    suspend: (h, args) => {
      const [primary, ...extras] = args.waitpoints
      if (primary === undefined) return Effect.fail(invalidInput("waitpoints_empty"))
      const flat = flattenCondition(args.resumeCondition)
      return Effect.map(
        callDecode("suspend", "suspend", [
          ...handleArgs(h),
          uuid(args.suspensionId),
          uuid(primary.waitpointId),
          text(primary._tag === "Fresh" ? primary.waitpointKey : null),
          bool(primary._tag === "UsePending"),
          jsonb(extras.flatMap((b) => (b._tag === "Fresh" ? [{ waitpointId: b.waitpointId, waitpointKey: b.waitpointKey }] : []))),
          jsonb(flat.condition),
          jsonb(flat.names),
          jsonb(Schema.encodeSync(M.ResumePolicy)(args.resumePolicy)),
          text(args.reasonCode),
          text(blockingReasonOf(args.reasonCode)),
          text(args.requestedBy),
          bigint(args.timeoutAt),
          text(args.timeoutBehavior),
          text(args.continuationMetadataPointer),
          text(args.idempotencyKey ?? ""),
          bigint(args.now)
        ], SuspendRow),
        (row): M.SuspendOutcome =>
          row._tag === "Suspended" ?
            { _tag: "Suspended", details: row.details, handle: { backend: "postgres", kind: "suspended", opaque: h.handle.opaque } } :
            row
      )
    },

    createWaitpoint: (h, waitpointKey, expiresInMs) =>
      callDecode("create_waitpoint", "create_waitpoint", [
        ...handleArgs(h),
        text(waitpointKey),
        bigint(expiresInMs)
      ], CreateWaitpointRow),

    observeSignals: (h) =>
      callDecode("observe_signals", "observe_signals", [text(h.payload.executionId), int(h.payload.attemptIndex)], ResumeSignalRows),

    deliverSignal: (a) =>
      callDecode("deliver_signal", "deliver_signal", [
        text(a.executionId),
        uuid(a.waitpointId),
        uuid(a.signalId),
        text(a.signalName),
        text(a.signalCategory),
        text(a.sourceType),
        text(a.sourceIdentity),
        bytea(a.payload),
        text(a.payloadEncoding ?? "json"),
        text(a.correlationId),
        text(a.idempotencyKey),
        text(a.targetScope),
        bigint(a.createdAt),
        bigint(a.dedupTtlMs ?? 86_400_000),
        bigint(a.resumeDelayMs),
        int(a.maxSignalsPerExecution),
        text(a.waitpointToken)
      ], DeliverRow),

    rotateWaitpointHmacSecretAll: (a) =>
      Effect.map(
        Effect.either(callDecode("rotate_waitpoint_hmac_secret_all", "rotate_waitpoint_hmac_secret", [
          text(a.newKid),
          text(a.newSecretHex),
          bigint(a.graceMs)
        ], M.RotateOutcome)),
        (result): EngineBackend.RotateResult => ({ entries: [{ partition: 0, result }] })
      ),

    seedWaitpointHmacSecret: (a) =>
      callDecode("seed_waitpoint_hmac_secret", "seed_waitpoint_hmac_secret", [text(a.kid), text(a.secretHex)], M.SeedOutcome)
  }
}
