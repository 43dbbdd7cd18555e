/**
 * Claims over Postgres: the claim of a lane (ff_claim, tried again while its candidates are busy),
 * claimForWorker's grants (ff_claim_for_worker), and the claims of a resumed execution
 * (ff_claim_resumed, with a grant or without).
 */
import { Clock, Duration, Effect, Either, Option, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, rootCause } from "../../EngineError.js"
import type { CoreArea } from "../../internal/boundary.js"
import { makeHandle } from "../../internal/handleCodec.js"
import { storeLeaseId } from "../../internal/storeIds.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { bigint, bytea, int, text, textArray, unwrap, uuid } from "./client.js"
import { Base64, type CoreContext, type Fx, handleArgs } from "./context.js"
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

const NOT_RESUMABLE = new Set(["NotAResumedExecution", "ExecutionNotLeaseable", "InvalidClaimGrant", "ClaimGrantExpired"])

export const makeClaims = (
  ctx: CoreContext
): CoreArea<"claim"> => {
  const { callDecode } = ctx

  /**
   * A claim that found nothing while another transaction held some of its candidates (see
   * ff_claim) tries again a few times, on the live clock: those candidates may be claimable once
   * that transaction ends, and nothing would wake an idle worker for them.
   */
  const claimMany = (args: M.ClaimArgs, count: number): Fx<ReadonlyArray<M.Handle>> => {
    const once = callDecode("claim", "claim", [
      text(args.lane),
      textArray(args.capabilities.tokens),
      textArray(args.kinds),
      text(args.policy.workerId),
      text(args.policy.workerInstanceId),
      bigint(args.policy.leaseTtlMs),
      int(Math.max(1, Math.floor(count)))
    ], ClaimReply)
    return Effect.gen(function*() {
      let reply = yield* once
      for (let wait = 1; reply.handles.length === 0 && reply.busy > 0 && wait <= BUSY_RETRY_MAX_MS; wait *= 2) {
        yield* Effect.sleep(Duration.millis(wait)).pipe(Effect.withClock(liveClock))
        reply = yield* once
      }
      return reply.handles.map(({ kind, ...payload }) => makeHandle("postgres", kind, payload))
    })
  }

  /**
   * completeAndClaim: one ff_complete_claim. A claim alone that found only busy candidates tries
   * again as claimMany does; with completions it does not (the worker's loop claims again).
   */
  const completeAndClaim: CoreArea<"claim">["completeAndClaim"] = (items, args, max) => {
    const col = <T>(f: (item: (typeof items)[number]) => T) => items.map(f)
    const once = callDecode("complete_and_claim", "complete_claim", [
      ["text[]", col(({ h }) => h.payload.executionId)],
      ["int[]", col(({ h }) => h.payload.attemptIndex)],
      ["uuid[]", col(({ h }) => h.payload.attemptId)],
      ["uuid[]", col(({ h }) => h.payload.leaseId)],
      ["bigint[]", col(({ h }) => h.payload.leaseEpoch)],
      ["bytea[]", col(({ payload }) => bytea(payload)[1])],
      text(args.lane),
      textArray(args.capabilities.tokens),
      textArray(args.kinds),
      text(args.policy.workerId),
      text(args.policy.workerInstanceId),
      bigint(args.policy.leaseTtlMs),
      int(max),
      bigint(Limits.batchBytes)
    ], CompleteClaimReply)
    return Effect.gen(function*() {
      let reply = yield* once
      for (
        let wait = 1;
        items.length === 0 && max > 0 && reply.handles.length === 0 && reply.busy > 0 && wait <= BUSY_RETRY_MAX_MS;
        wait *= 2
      ) {
        yield* Effect.sleep(Duration.millis(wait)).pipe(Effect.withClock(liveClock))
        reply = yield* once
      }
      const completed: Array<Either.Either<void, EngineError>> = []
      for (let i = 0; i < items.length; i++) {
        const h = items[i]!.h
        const r = unwrap("complete_and_claim", reply.completed[i])
        if (Either.isRight(r) || replayedAs(r.left, h, "success")) {
          yield* ctx.wake(h)
          completed.push(Either.void)
        } else {
          completed.push(Either.left(r.left))
        }
      }
      const claimed = reply.handles.map(({ kind, ...payload }, i): EngineBackend.ClaimedWork => ({
        handle: makeHandle("postgres", kind, payload),
        input: Option.fromNullable(reply.inputs[i])
      }))
      return { completed, claimed }
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
