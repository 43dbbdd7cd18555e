/**
 * Claims over Postgres: the claim of a lane (ff_claim, tried again while its candidates are busy),
 * claimForWorker's grants (ff_claim_for_worker), and the claims of a resumed execution
 * (ff_claim_resumed, with a grant or without).
 */
import { Clock, Duration, Effect, Either, Option, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, rootCause } from "../../EngineError.js"
import type { CoreArea, HandleRef } from "../../internal/boundary.js"
import { compile } from "../../internal/fastValidate.js"
import { makeHandle } from "../../internal/handleCodec.js"
import { storeLeaseId } from "../../internal/storeIds.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { Hub } from "../../internal/wakeups.js"
import { type Arg, bigint, bytea, decode, decodeNow, int, text, textArray, unwrap, uuid } from "./client.js"
import { Base64, type CoreContext, type Fx } from "./context.js"
import { replayedAs } from "./lifecycle.js"

const Claimed = Schema.Struct({ ...M.HandlePayload.fields, kind: Schema.Literal("fresh", "resumed") })
const ClaimedResumed = Schema.Struct({ ...M.HandlePayload.fields, leaseExpiresAt: Schema.Int })
/** The last wait of a claim that found only busy candidates (1, 2, 4 … ms: about a quarter of a second in all). */
const BUSY_RETRY_MAX_MS = 128
const liveClock = Clock.make()

const ClaimReply = Schema.Struct({ handles: Schema.Array(Claimed), busy: Schema.Int })
const InputRow = Schema.NullOr(Schema.Struct({ ...M.ExecutionInput.fields, payload: Base64 }))
const CompleteClaimReply = Schema.Struct({
  completed: Schema.Array(Schema.Unknown),
  handles: Schema.Array(Claimed),
  busy: Schema.Int,
  inputs: Schema.Array(InputRow)
})
type ClaimedRow = typeof Claimed.Type
type InputValue = Exclude<typeof InputRow.Type, null>
type CompleteClaimValue = typeof CompleteClaimReply.Type

// The claim's replies on the worker's hot path, read without decoding through the Schemas: each
// part is checked by its schema's compiled validator (fastValidate: every check the schema makes),
// an input's payload, base64 text, then decoded. Anything a validator does not vouch for is left
// to the Schemas, which say what is wrong.
const fastClaimReply = compile(ClaimReply)
const claimReply = (v: unknown): typeof ClaimReply.Type | undefined => fastClaimReply?.(v)

const fastInputText = compile(Schema.Struct({ ...M.ExecutionInput.fields, payload: Schema.String }))
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const inputRow = (v: unknown): InputValue | null | undefined => {
  if (v === null) return null
  const row = fastInputText?.(v)
  if (row === undefined || row.payload.length % 4 !== 0 || !BASE64.test(row.payload)) return undefined
  const bytes = Buffer.from(row.payload, "base64")
  return { ...row, payload: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) }
}

/** Each element of `list` read by `row`, or `undefined` when one does not read. */
const rows = <A>(list: unknown, row: (v: unknown) => A | undefined): Array<A> | undefined => {
  if (!Array.isArray(list)) return undefined
  const out: Array<A> = []
  for (const v of list) {
    const r = row(v)
    if (r === undefined) return undefined
    out.push(r)
  }
  return out
}

const completeClaimReply = (v: unknown): CompleteClaimValue | undefined => {
  if (typeof v !== "object" || v === null) return undefined
  const o = v as { readonly [k in keyof CompleteClaimValue]?: unknown }
  const claim = claimReply(o)
  const inputs = rows(o.inputs, inputRow)
  return claim !== undefined && Array.isArray(o.completed) && inputs !== undefined &&
      inputs.length === claim.handles.length ?
    { completed: o.completed, handles: claim.handles, busy: claim.busy, inputs } :
    undefined
}

const claimHandle = (c: ClaimedRow): M.Handle =>
  makeHandle("postgres", c.kind, {
    executionId: c.executionId,
    attemptIndex: c.attemptIndex,
    attemptId: c.attemptId,
    leaseId: c.leaseId,
    leaseEpoch: c.leaseEpoch,
    leaseTtlMs: c.leaseTtlMs,
    laneId: c.laneId,
    workerInstanceId: c.workerInstanceId
  })

/** A reply read by `fast`, or by `schema` when `fast` cannot read it. */
const readReply = <A, I>(op: string, v: unknown, fast: (v: unknown) => A | undefined, schema: Schema.Schema<A, I>): Fx<A> => {
  const a = fast(v)
  return a !== undefined ? Effect.succeed(a) : decode(op, schema)(v)
}

/** The work an ff_complete_claim reply (ff_create_claim's too) claimed, each with its input. */
const claimedWork = (reply: CompleteClaimValue): ReadonlyArray<EngineBackend.ClaimedWork> =>
  reply.handles.map((c, i): EngineBackend.ClaimedWork => ({
    handle: claimHandle(c),
    input: Option.fromNullable(reply.inputs[i])
  }))

/** The claim part of an ff_complete_claim reply (ff_create_claim's too): the claimed work, and the busy count. */
export const readClaimed = (op: string, v: unknown): Either.Either<{
  readonly claimed: ReadonlyArray<EngineBackend.ClaimedWork>
  readonly busy: number
}, EngineError> => {
  const fast = completeClaimReply(v)
  const reply = fast !== undefined ? Either.right(fast) : decodeNow(op, CompleteClaimReply)(v)
  return Either.map(reply, (r) => ({ claimed: claimedWork(r), busy: r.busy }))
}

/** The claimer's parameters of ff_claim, ff_complete_claim and ff_create_claim, in their order. */
export const claimerParams = (args: M.ClaimArgs) => [
  text(args.lane),
  textArray(args.capabilities.tokens),
  textArray(args.kinds),
  text(args.policy.workerId),
  text(args.policy.workerInstanceId),
  bigint(args.policy.leaseTtlMs)
]

/** ff_complete_claim's arguments: the completions of `items`, then the claim of up to `max` for `args`. */
const completeClaimArgs = (
  items: ReadonlyArray<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }>,
  args: M.ClaimArgs,
  max: number
): ReadonlyArray<Arg> => {
  const col = <T>(f: (item: (typeof items)[number]) => T) => items.map(f)
  return [
    ["text[]", col(({ h }) => h.payload.executionId)],
    ["int[]", col(({ h }) => h.payload.attemptIndex)],
    ["uuid[]", col(({ h }) => h.payload.attemptId)],
    ["uuid[]", col(({ h }) => h.payload.leaseId)],
    ["bigint[]", col(({ h }) => h.payload.leaseEpoch)],
    ["bytea[]", col(({ payload }) => bytea(payload)[1])],
    ...claimerParams(args),
    int(max),
    bigint(Limits.batchBytes)
  ]
}

/**
 * A wake-up of `lane` (its `NOTIFY`), as the LISTEN connection reads it: when a worker of this
 * process waits on the lane and lets a claim be made for it (`Hub.handoff`), its claim
 * (ff_complete_claim without completions, as the worker's own) is sent at once, on the
 * notification's stack, on a connection of the layer's own pool (no microtask, fiber or effect
 * before it is written), and what it took is handed over in the reply's callback. The wake-up is
 * counted then (`count`, `Hub.wake`), after the hand-over, so that the woken worker's own steps
 * (its wait's end, its claim once more) do not run while the claim's reply is awaited: the worker
 * claims once more itself once its slots are free, so a claim that took nothing or left work
 * behind needs nothing more, and one that failed, or whose reply did not read, is made again.
 * `false` (the caller counts the wake-up at once) when no worker of the lane waits with a free
 * slot. Without a pool of its own (`make` over a `SqlClient`), or on the Effect clock, the worker
 * claims from its hook as before.
 */
export const makeWakeClaims = (ctx: CoreContext, hub: Hub): ((lane: string, count: () => void) => boolean) | undefined => {
  const { caller, options } = ctx
  if (!caller.canSend || (options.clock ?? "store") !== "store") return undefined
  return (lane, count) => {
    const handoff = hub.handoff(lane)
    if (handoff === undefined) return false
    const give = (claimed: ReadonlyArray<EngineBackend.ClaimedWork>, again: boolean) => {
      try {
        handoff.deliver(claimed, again)
      } finally {
        count()
      }
    }
    try {
      const sent = caller.send("complete_and_claim", "complete_claim", completeClaimArgs([], handoff.args, handoff.max), null, false, (reply) => {
        const read = Either.flatMap(reply, (v) => readClaimed("complete_and_claim", v))
        if (Either.isRight(read)) give(read.right.claimed, false)
        else give([], true)
      })
      if (!sent) give([], true)
    } catch {
      give([], true)
    }
    return true
  }
}

const NOT_RESUMABLE = new Set(["NotAResumedExecution", "ExecutionNotLeaseable", "InvalidClaimGrant", "ClaimGrantExpired"])

export const makeClaims = (
  ctx: CoreContext
): CoreArea<"claim"> => {
  const { call, callDecode } = ctx

  /** ff_<fn>'s reply read by `fast`, or by `schema` when `fast` cannot read it. */
  const callRead = <A, I>(op: string, fn: string, args: ReadonlyArray<Arg>, fast: (v: unknown) => A | undefined, schema: Schema.Schema<A, I>): Fx<A> =>
    Effect.flatMap(call(op, fn, args), (v) => readReply(op, v, fast, schema))

  /**
   * A claim that found nothing while another transaction held some of its candidates (see
   * ff_claim) tries again a few times, on the live clock: those candidates may be claimable once
   * that transaction ends, and nothing would wake an idle worker for them. `retry` false: once.
   */
  const untilNotBusy = <A extends { readonly handles: ReadonlyArray<unknown>; readonly busy: number }>(
    once: Fx<A>,
    retry: boolean
  ): Fx<A> =>
    Effect.gen(function*() {
      let reply = yield* once
      for (let wait = 1; retry && reply.handles.length === 0 && reply.busy > 0 && wait <= BUSY_RETRY_MAX_MS; wait *= 2) {
        yield* Effect.sleep(Duration.millis(wait)).pipe(Effect.withClock(liveClock))
        reply = yield* once
      }
      return reply
    })

  const claimMany = (args: M.ClaimArgs, count: number): Fx<ReadonlyArray<M.Handle>> =>
    Effect.map(
      untilNotBusy(
        callRead("claim", "claim", [...claimerParams(args), int(Math.max(1, Math.floor(count)))], claimReply, ClaimReply),
        true
      ),
      (reply) => reply.handles.map(claimHandle)
    )

  /**
   * completeAndClaim: one ff_complete_claim. A claim alone that found only busy candidates tries
   * again as claimMany does; with completions it does not (the worker's loop claims again).
   */
  const completeAndClaim: CoreArea<"claim">["completeAndClaim"] = (items, args, max) => {
    const once = callRead(
      "complete_and_claim",
      "complete_claim",
      completeClaimArgs(items, args, max),
      completeClaimReply,
      CompleteClaimReply
    )
    return Effect.map(untilNotBusy(once, items.length === 0 && max > 0), (reply) => {
      const completed: Array<Either.Either<void, EngineError>> = []
      for (let i = 0; i < items.length; i++) {
        const h = items[i]!.h
        const r = unwrap("complete_and_claim", reply.completed[i])
        if (Either.isRight(r) || replayedAs(r.left, h, "success")) {
          ctx.unsafeWake(h)
          completed.push(Either.void)
        } else {
          completed.push(Either.left(r.left))
        }
      }
      return { completed, claimed: claimedWork(reply) }
    })
  }

  return {
    completeAndClaim,
    claimMany,
    claim: (args) => Effect.map(claimMany(args, 1), (handles) => Option.fromNullable(handles[0])),

    claimForWorker: (args) =>
      callDecode("claim_for_worker", "claim_for_worker", [
        text(args.laneId),
        text(args.workerId),
        text(args.workerInstanceId),
        textArray(args.workerCapabilities),
        textArray(args.kinds),
        bigint(args.grantTtlMs)
      ], M.ClaimForWorkerOutcome),

    claimResumedExecution: (a) =>
      Effect.map(
        callDecode("claim_resumed_execution", "claim_resumed", [
          text(a.executionId),
          text(a.workerId),
          text(a.workerInstanceId),
          uuid(a.leaseId),
          bigint(a.leaseTtlMs),
          bigint(a.remainingAttemptTimeoutMs),
          text(null)
        ], ClaimedResumed),
        ({ leaseExpiresAt, ...payload }): M.ClaimResumedExecutionResult => ({
          _tag: "Claimed",
          claimed: {
            executionId: payload.executionId,
            leaseId: payload.leaseId,
            leaseEpoch: payload.leaseEpoch,
            attemptIndex: payload.attemptIndex,
            attemptId: payload.attemptId,
            leaseExpiresAt
          },
          handle: makeHandle("postgres", "resumed", payload)
        })
      ),

    claimFromReclaim: (token) =>
      Effect.gen(function*() {
        const leaseId = storeLeaseId()
        const result = yield* Effect.either(callDecode("claim_from_reclaim", "claim_resumed", [
          text(token.grant.executionId),
          text(token.workerId),
          text(token.workerInstanceId),
          uuid(leaseId),
          bigint(token.leaseTtlMs),
          bigint(null),
          text(token.grant.grantKey)
        ], ClaimedResumed))
        if (Either.isLeft(result)) {
          const root = rootCause(result.left)
          if (root._tag === "Contention" && NOT_RESUMABLE.has(root.kind)) return Option.none()
          return yield* Effect.fail(result.left)
        }
        const { leaseExpiresAt: _, ...payload } = result.right
        return Option.some(makeHandle("postgres", "resumed", { ...payload, laneId: token.grant.laneId }))
      })
  }
}
