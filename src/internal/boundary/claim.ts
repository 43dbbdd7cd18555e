/** The boundary of claims: claim, claimMany, reclaim, grants, resumed claims, work subscriptions. */
import { Effect, Either } from "effect"
import { invalidInput, type Validation } from "../../EngineError.js"
import { LaneId as LaneIdSchema, type WorkerInstanceId } from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { RuleContext } from "../inputRules.js"
import * as V from "../validation.js"
import { argObject, type Boundary, failWith, fromEither, type Operations, textArg, validId } from "./context.js"
import { completionItems } from "./lifecycle.js"

/** The limits of a worker's identity. */
const workerLimits = (
  op: string,
  w: { readonly workerId: string; readonly workerInstanceId: string }
): Validation | undefined =>
  V.checkBytes(op, "workerId", w.workerId, "nameBytes") ??
    V.checkBytes(op, "workerInstanceId", w.workerInstanceId, "nameBytes")

/**
 * The execution kinds a claim is limited to (absent: any kind), sorted and de-duplicated: at most
 * `Limits.claimKinds`, each at most `Limits.nameBytes` (as a kind at create), never none.
 */
const claimKinds = (
  op: string,
  kinds: ReadonlyArray<string> | undefined
): Either.Either<ReadonlyArray<string> | undefined, Validation> => {
  if (kinds === undefined) return Either.right(undefined)
  if (kinds.length === 0) return Either.left(invalidInput(`${op}: kinds: empty (leave it out to claim any kind)`))
  const bad = V.checkCount(op, "kinds", kinds.length, "claimKinds") ??
    kinds.reduce<Validation | undefined>((found, k) => found ?? V.checkBytes(op, "kinds", k, "nameBytes"), undefined)
  return bad !== undefined ? Either.left(bad) : Either.right([...new Set(kinds)].sort())
}

/** Validates claim arguments; capabilities and kinds come back sorted and de-duplicated. */
const claimArgs = (op: string, args: M.ClaimArgs, rules: RuleContext): Either.Either<M.ClaimArgs, Validation> => {
  const a = V.construct(op, M.ClaimArgs, args, "InvalidInput", rules)
  if (Either.isLeft(a)) return a
  const bad = workerLimits(op, a.right.policy)
  if (bad !== undefined) return Either.left(bad)
  const tokens = V.checkCapabilities("worker", a.right.capabilities.tokens)
  if (Either.isLeft(tokens)) return Either.left(tokens.left)
  const kinds = claimKinds(op, a.right.kinds)
  if (Either.isLeft(kinds)) return Either.left(kinds.left)
  return Either.right({
    lane: a.right.lane,
    capabilities: { tokens: tokens.right },
    policy: a.right.policy,
    ...(kinds.right === undefined ? {} : { kinds: kinds.right })
  })
}

/** The claim operations. */
export const claimOperations = (b: Boundary): Operations<
  | "claim"
  | "claimMany"
  | "claimFromReclaim"
  | "claimForWorker"
  | "claimResumedExecution"
  | "subscribeWork"
  | "completeAndClaim"
> => {
  const { core, rules, batchSized, batchSizeError, intake, make } = b

  return {
    claim: (args) =>
      Effect.suspend(() => {
        const a = claimArgs("claim", args, rules)
        return Either.isLeft(a) ? Effect.fail(a.left) : core.claim(a.right)
      }),

    claimMany: (args, max) =>
      Effect.suspend(() => {
        if (Number.isInteger(max) && max > Limits.batchItems) {
          return Effect.fail(V.overLimit("claim_many", "max", "batchItems", "claims"))
        }
        if (!Number.isInteger(max) || max < 1) {
          return Effect.fail(invalidInput(`claim_many: max must be an integer in 1..${Limits.batchItems}`))
        }
        const a = claimArgs("claim_many", args, rules)
        if (Either.isLeft(a)) return Effect.fail(a.left)
        return core.claimMany(a.right, max)
      }),

    completeAndClaim: (items, claim) =>
      Effect.suspend(() => {
        const op = "complete_and_claim"
        if (!Array.isArray(items)) return Effect.fail(invalidInput(`${op}: items must be a list`))
        if (items.length > 0 && !batchSized(items)) return Effect.fail(batchSizeError(op, "items", items))
        const refs = completionItems(op, items, intake)
        if (Either.isLeft(refs)) return Effect.fail(refs.left)
        if (typeof claim !== "object" || claim === null) return Effect.fail(invalidInput(`${op}: claim must be an object`))
        const { max } = claim
        if (Number.isInteger(max) && max > Limits.batchItems) {
          return Effect.fail(V.overLimit(op, "claim.max", "batchItems", "claims"))
        }
        if (!Number.isInteger(max) || max < 0) {
          return Effect.fail(invalidInput(`${op}: claim.max must be an integer in 0..${Limits.batchItems}`))
        }
        const a = claimArgs(op, claim.args, rules)
        if (Either.isLeft(a)) return Effect.fail(a.left)
        if (refs.right.length === 0 && max === 0) return Effect.succeed({ completed: [], claimed: [] })
        return core.completeAndClaim(refs.right, a.right, max)
      }),

    claimFromReclaim: (token) =>
      Effect.gen(function*() {
        const t = yield* make("claim_from_reclaim", M.ReclaimToken, token)
        yield* failWith(
          workerLimits("claim_from_reclaim", t) ?? V.checkBytes("claim_from_reclaim", "grant.grantKey", t.grant.grantKey, "textBytes")
        )
        return yield* core.claimFromReclaim(t)
      }),

    claimForWorker: (args) =>
      Effect.gen(function*() {
        const a = yield* make("claim_for_worker", M.ClaimForWorkerArgs, args)
        yield* failWith(workerLimits("claim_for_worker", a))
        const workerCapabilities = yield* fromEither(V.checkCapabilities("worker", a.workerCapabilities))
        const { kinds: given, ...rest } = a
        const kinds = yield* fromEither(claimKinds("claim_for_worker", given))
        return yield* core.claimForWorker({ ...rest, workerCapabilities, ...(kinds === undefined ? {} : { kinds }) })
      }),

    claimResumedExecution: (args) =>
      Effect.gen(function*() {
        const a = yield* make("claim_resumed_execution", M.ClaimResumedExecutionArgs, args)
        yield* failWith(workerLimits("claim_resumed_execution", a))
        return yield* core.claimResumedExecution(a)
      }),

    subscribeWork: (args) =>
      Effect.gen(function*() {
        const op = "subscribe_work"
        const a = yield* argObject(op, args)
        const lanes = a["lanes"]
        if (!batchSized(lanes)) return yield* batchSizeError(op, "lanes", lanes)
        const checked: Array<M.ClaimArgs["lane"]> = []
        for (const lane of lanes) {
          const id = yield* validId(op, "lanes", LaneIdSchema, lane, rules)
          if (!checked.includes(id)) checked.push(id)
        }
        const worker = yield* textArg(op, "workerInstanceId", a["workerInstanceId"])
        yield* failWith(V.checkBytes(op, "workerInstanceId", worker, "nameBytes"))
        return yield* core.subscribeWork({ lanes: checked, workerInstanceId: worker as WorkerInstanceId })
      })
  }
}
