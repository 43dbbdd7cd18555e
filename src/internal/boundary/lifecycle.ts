/**
 * The boundary of lifecycle operations: creating executions (policy parsed, limits checked),
 * renewing, reporting progress, completing, failing, cancelling, delaying, waiting for children.
 */
import { Effect, Either, Schema } from "effect"
import { invalidInput, validation, type Validation } from "../../EngineError.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { inputProblem, type RuleContext } from "../inputRules.js"
import { quote } from "../quote.js"
import { compactTraceParent } from "../traceContext.js"
import * as V from "../validation.js"
import { argObject, type Boundary, failWith, fromEither, type Operations, textArg } from "./context.js"
import type { CreateExecutionCore, HandleRef } from "./core.js"

const CREATE = "create_execution"

/** The limits of `createExecution`'s strings, tags and policy text (the payload apart). */
const createLimits = (a: M.CreateExecutionArgs): Validation | undefined =>
  V.checkTags(CREATE, a.tags) ??
    V.checkBytes(CREATE, "namespace", a.namespace, "nameBytes") ??
    V.checkBytes(CREATE, "executionKind", a.executionKind, "nameBytes") ??
    V.checkBytes(CREATE, "payloadEncoding", a.payloadEncoding, "nameBytes") ??
    V.checkBytes(CREATE, "creatorIdentity", a.creatorIdentity, "nameBytes") ??
    V.checkBytes(CREATE, "idempotencyKey", a.idempotencyKey, "nameBytes") ??
    V.checkBytes(CREATE, "policy", a.policy, "policyBytes")

/** Validates `createExecution` input and parses its policy. */
export const prepareCreate = (
  args: M.CreateExecutionArgsInput,
  rules: RuleContext
): Either.Either<CreateExecutionCore, Validation> => {
  const constructed = V.construct(CREATE, M.CreateExecutionArgs, args, "InvalidInput", rules)
  if (Either.isLeft(constructed)) return Either.left(constructed.left)
  const a = constructed.right
  if (a.inputPayload.length > V.MAX_PAYLOAD_BYTES) {
    return Either.left(
      validation("PayloadTooLarge", `input payload of ${a.inputPayload.length} bytes > ${V.MAX_PAYLOAD_BYTES}`)
    )
  }
  const bad = createLimits(a)
  if (bad !== undefined) return Either.left(bad)
  const parsed = V.parsePolicy(a.policy)
  if (Either.isLeft(parsed)) return Either.left(parsed.left)
  const policy = parsed.right.policy
  if (policy !== undefined) {
    const problem = inputProblem(M.ExecutionPolicy, policy, rules)
    if (problem !== undefined) return Either.left(validation("InvalidPolicyJson", problem))
  }
  // the policy is measured as it is stored: its JSON
  const policyJson = policy === undefined ? "" : JSON.stringify(encodePolicy(policy))
  if (V.bytesOver(policyJson, Limits.policyBytes)) return Either.left(V.overLimit(CREATE, "policy", "policyBytes", "bytes"))
  return Either.right({
    executionId: a.executionId,
    namespace: a.namespace,
    laneId: a.laneId,
    executionKind: a.executionKind,
    inputPayload: a.inputPayload,
    // ("" names no encoding: Valkey keeps no empty field, so every backend reads it back as none)
    payloadEncoding: a.payloadEncoding === "" ? undefined : a.payloadEncoding,
    priority: V.clampPriority(a.priority !== 0 ? a.priority : policy?.priority ?? 0),
    creatorIdentity: a.creatorIdentity,
    idempotencyKey: a.idempotencyKey,
    tags: a.tags,
    policy,
    policyJson,
    requiredCapabilities: parsed.right.requiredCapabilities,
    delayUntil: a.delayUntil ?? policy?.delayUntil,
    executionDeadlineAt: a.executionDeadlineAt,
    traceContext: a.traceParent === undefined ? undefined : compactTraceParent(a.traceParent)
  })
}

/** What a prepared create weighs against `Limits.batchBytes`: payload, policy and tag bytes. */
export const createBytes = (c: CreateExecutionCore): number =>
  c.inputPayload.length + Buffer.byteLength(c.policyJson, "utf8") + V.tagBytes(c.tags)

const encodePolicyEither = Schema.encodeEither(M.ExecutionPolicy)

/** The snake_case JSON object of a validated policy. */
export const encodePolicy = (policy: M.ExecutionPolicy): M.ExecutionPolicyJson =>
  Either.getOrThrow(encodePolicyEither(policy))

/** The lifecycle operations. */
const completePayload = (op: string, payload: unknown): Either.Either<Uint8Array | undefined, Validation> => {
  if (payload === undefined) return Either.right(undefined)
  if (!(payload instanceof Uint8Array)) return Either.left(invalidInput(`${op}: payload must be bytes`))
  if (payload.length > V.MAX_PAYLOAD_BYTES) {
    return Either.left(validation("PayloadTooLarge", `${op}: ${payload.length} bytes > ${V.MAX_PAYLOAD_BYTES}`))
  }
  return Either.right(payload)
}

/** The items of a batch of completions (`completeMany`, `completeAndClaim`), its length checked by the caller. */
export const completionItems = (
  op: string,
  items: ReadonlyArray<{ readonly handle: M.Handle; readonly payload?: Uint8Array | undefined }>,
  intake: (handle: M.Handle) => Either.Either<HandleRef, Validation>
): Either.Either<Array<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }>, Validation> => {
  const refs: Array<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }> = []
  let bytes = 0
  for (const item of items) {
    if (typeof item !== "object" || item === null) return Either.left(invalidInput(`${op}: an item is not an object`))
    const h = intake(item.handle)
    if (Either.isLeft(h)) return Either.left(h.left)
    const payload = completePayload(op, item.payload)
    if (Either.isLeft(payload)) return Either.left(payload.left)
    bytes += payload.right?.length ?? 0
    if (bytes > Limits.batchBytes) return Either.left(V.overLimit(op, "payloads", "batchBytes", "bytes"))
    refs.push({ h: h.right, payload: payload.right })
  }
  return Either.right(refs)
}

export const lifecycleOperations = (b: Boundary): Operations<
  "createExecution" | "createExecutions" | "renew" | "progress" | "complete" | "completeMany" | "fail" | "cancel" |
  "delay" | "waitChildren"
> => {
  const { core, rules, batchSized, batchSizeError, intake, withHandle } = b

  return {
    createExecution: (args) =>
      Effect.suspend(() => {
        const prepared = prepareCreate(args, rules)
        return Either.isLeft(prepared) ? Effect.fail(prepared.left) : core.createExecution(prepared.right)
      }),

    createExecutions: (list) =>
      Effect.suspend(() => {
        if (!Array.isArray(list)) return Effect.fail(invalidInput(`create_executions: expected a list, got ${quote(list)}`))
        if (list.length > Limits.batchItems) {
          return Effect.fail(V.overLimit("create_executions", "items", "batchItems", "entries"))
        }
        const prepared: Array<CreateExecutionCore> = []
        let bytes = 0
        for (let i = 0; i < list.length; i++) {
          const p = prepareCreate(list[i]!, rules)
          if (Either.isLeft(p)) return Effect.fail(validation(p.left.kind, `[${i}] ${p.left.detail}`))
          bytes += createBytes(p.right)
          if (bytes > Limits.batchBytes) {
            return Effect.fail(V.overLimit("create_executions", "payloads, policies and tags", "batchBytes", "bytes"))
          }
          prepared.push(p.right)
        }
        if (prepared.length === 0) return Effect.succeed([])
        return core.createExecutions(prepared)
      }),

    renew: (handle) => withHandle(handle, core.renew),

    progress: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("progress", input)
        const percent = args["percent"]
        if (percent !== undefined && (!Number.isInteger(percent) || (percent as number) < 0 || (percent as number) > 100)) {
          return yield* invalidInput("progress: percent must be an integer in 0..100")
        }
        const message = args["message"] === undefined ? undefined : yield* textArg("progress", "message", args["message"])
        yield* failWith(V.checkBytes("progress", "message", message, "textBytes"))
        return yield* core.progress(h, percent as number | undefined, message)
      }),

    complete: (handle, args) =>
      withHandle(handle, (h) => {
        if (args !== undefined && (typeof args !== "object" || args === null || Array.isArray(args))) {
          return Effect.fail(invalidInput(`complete: expected an argument object or nothing, got ${quote(args)}`))
        }
        const payload = completePayload("complete", args?.payload)
        return Either.isLeft(payload) ? Effect.fail(payload.left) : core.complete(h, payload.right)
      }),

    completeMany: (items) =>
      Effect.suspend(() => {
        if (!batchSized(items)) return Effect.fail(batchSizeError("complete_many", "items", items))
        const refs = completionItems("complete_many", items, intake)
        return Either.isLeft(refs) ? Effect.fail(refs.left) : core.completeMany(refs.right)
      }),

    fail: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("fail", input)
        const reason = yield* fromEither(V.check("fail: reason", M.FailureReason, args["reason"], "InvalidInput", rules))
        yield* failWith(
          V.checkBytes("fail", "reason.message", reason.message, "textBytes") ??
            (reason.detail !== undefined && reason.detail.length > Limits.nameBytes ?
              V.overLimit("fail", "reason.detail", "nameBytes", "bytes") :
              undefined)
        )
        const cls = yield* fromEither(V.check("fail: classification", M.FailureClass, args["classification"]))
        return yield* core.fail(h, reason, cls)
      }),

    cancel: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("cancel", input)
        const reason = yield* textArg("cancel", "reason", args["reason"])
        yield* failWith(V.checkBytes("cancel", "reason", reason, "textBytes"))
        return yield* core.cancel(h, reason)
      }),

    delay: (handle, input) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        const args = yield* argObject("delay", input)
        const delayUntil = args["delayUntil"]
        if (!Number.isSafeInteger(delayUntil)) return yield* invalidInput("delay: delayUntil must be an integer")
        return yield* core.delay(h, delayUntil as number)
      }),

    waitChildren: (handle) => withHandle(handle, core.waitChildren)
  }
}
