/**
 * The intake every area of the boundary shares: handles decoded, argument objects checked,
 * ids validated, batches sized.
 */
import { Effect, Either, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { corruption, invalidInput, validation, type Validation, type ValidationKind } from "../../EngineError.js"
import {
  defaultPartitionConfig,
  type ExecutionId,
  ExecutionId as ExecutionIdSchema,
  executionPartition,
  type FlowId,
  flowPartition
} from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { decodeHandle } from "../handleCodec.js"
import { type RuleContext, textProblem } from "../inputRules.js"
import { quote } from "../quote.js"
import * as V from "../validation.js"
import type { BackendCore, Fx, HandleRef } from "./core.js"

const HANDLE_KINDS: ReadonlySet<unknown> = new Set<M.HandleKind>(["fresh", "resumed", "suspended"])

export const fromEither = <A>(e: Either.Either<A, Validation>): Fx<A> =>
  Either.isRight(e) ? Effect.succeed(e.right) : Effect.fail(e.left)

export const failWith = (e: Validation | undefined): Fx<void> => (e === undefined ? Effect.void : Effect.fail(e))

export const validId = <A, I>(op: string, field: string, schema: Schema.Schema<A, I>, value: unknown, rules: RuleContext): Fx<A> =>
  fromEither(V.check(`${op}: ${field}`, schema, value, "InvalidInput", rules))

/** The argument object of an operation: a missing or non-object argument is bad input, not a crash. */
export const argObject = (op: string, args: unknown): Fx<Record<string, unknown>> =>
  typeof args === "object" && args !== null && !Array.isArray(args) ?
    Effect.succeed(args as Record<string, unknown>) :
    Effect.fail(invalidInput(`${op}: expected an argument object, got ${quote(args)}`))

/** A free-text argument: a string of storable text. */
export const textArg = (op: string, field: string, value: unknown): Fx<string> => {
  if (typeof value !== "string") return Effect.fail(invalidInput(`${op}: ${field} must be a string, got ${quote(value)}`))
  const problem = textProblem(value)
  return problem === undefined ? Effect.succeed(value) : Effect.fail(invalidInput(`${op}: ${field} ${problem}`))
}

/**
 * What the operations of every area share, for one backend: its core, its partition rules, and
 * the intake of handles and argument objects.
 */
export const makeBoundary = (core: BackendCore) => {
  const label = core.label
  const partitions = core.partitions ?? defaultPartitionConfig
  const rules: RuleContext = { partitions }
  const flowPartitionOf = (flowId: FlowId): number => flowPartition(flowId, partitions)

  /** A batch argument holds 1..Limits.batchItems items. */
  const batchSized = (list: unknown): list is ReadonlyArray<unknown> =>
    Array.isArray(list) && list.length >= 1 && list.length <= Limits.batchItems
  const batchSizeError = (op: string, what: string, list: unknown) =>
    Array.isArray(list) && list.length > Limits.batchItems ?
      V.overLimit(op, what, "batchItems", "entries") :
      invalidInput(`${op}: between 1 and ${Limits.batchItems} ${what}`)

  const intake = (handle: M.Handle): Either.Either<HandleRef, Validation> => {
    if (
      typeof handle !== "object" || handle === null || typeof handle.backend !== "string" ||
      !HANDLE_KINDS.has(handle.kind) || !(handle.opaque instanceof Uint8Array)
    ) {
      return Either.left(corruption("handle_codec: not a handle"))
    }
    const decoded = decodeHandle(label, handle)
    if (Either.isLeft(decoded)) {
      const err = decoded.left
      if (err._tag === "Corrupt") return Either.left(corruption(`handle_codec: ${err.detail}`))
      const actual = /^[a-z]{1,16}$/.test(err.actual) ? err.actual : quote(err.actual)
      return Either.left(
        validation("HandleFromOtherBackend", `expected=${label} actual=${actual}${err.embedded ? " (embedded tag)" : ""}`)
      )
    }
    const p = executionPartition(decoded.right.executionId)
    if (p >= partitions.numFlowPartitions) {
      return Either.left(corruption(`handle_codec: partition ${p} is not one of this deployment's flow partitions`))
    }
    return Either.right({ handle, payload: decoded.right })
  }

  const withHandle = <A>(handle: M.Handle, f: (h: HandleRef) => Fx<A>): Fx<A> =>
    Effect.suspend(() => {
      const h = intake(handle)
      return Either.isLeft(h) ? Effect.fail(h.left) : f(h.right)
    })

  const make = <F extends Schema.Struct.Fields>(
    op: string,
    schema: Schema.Struct<F>,
    input: unknown,
    kind: ValidationKind = "InvalidInput"
  ) => fromEither(V.construct(op, schema, input, kind, rules))

  const byExecutionId = <A>(op: string, f: (id: ExecutionId) => Fx<A>) => (id: ExecutionId) =>
    Effect.flatMap(validId(op, "executionId", ExecutionIdSchema, id, rules), f)

  return { core, label, rules, flowPartitionOf, batchSized, batchSizeError, intake, withHandle, make, byExecutionId }
}

/** The shared intake of one backend (`makeBoundary`). */
export type Boundary = ReturnType<typeof makeBoundary>

/** The operations of one area, typed as the public service has them. */
export type Operations<K extends keyof EngineBackend.Service> = Pick<EngineBackend.Service, K>
