/**
 * What the operations of the Postgres core share (core.ts assembles them from one module per area,
 * named as the files of src/postgres/sql/: claim, lifecycle, flows, signals, streams, budgets,
 * admin, reads; the wake-up subscription in wakeups.ts): the caller and the decoding of its
 * replies, the options, the lease fence of a handle, the stored form of a created execution, and
 * the in-process wake-ups of blocked tails.
 */
import { Deferred, Effect, Option, Schema } from "effect"
import type { EngineError } from "../../EngineError.js"
import { executionPartition, type PartitionConfig } from "../../Ids.js"
import { type CreateExecutionCore, encodePolicy, type HandleRef } from "../../internal/boundary.js"
import type { EventHub, Hub } from "../../internal/wakeups.js"
import { type Arg, bigint, type Caller, type ClockMode, decode, int, text, uuid } from "./client.js"

export type Fx<A> = Effect.Effect<A, EngineError>

export interface CoreOptions {
  readonly partitions: PartitionConfig
  /** Largest owed member set `cancelFlow` cancels in its own transaction (docs/design/flows.md#the-cascade). */
  readonly cancelFlowInlineLimit: number
  /** Real-time interval between polls of a blocking `tailStream`. */
  readonly tailPollMs: number
  /** The wake-ups of this process's workers; none without a LISTEN connection (workers poll). */
  readonly hub: Hub | undefined
  /** The event wake-ups of this process's followers; none without a LISTEN connection. */
  readonly events?: EventHub | undefined
  /** Where the store's time comes from (the caller's): its timers that renew rows run on it. */
  readonly clock?: ClockMode | undefined
}

const OkOnly = Schema.Null
export const Base64 = Schema.Uint8ArrayFromBase64

// Schemas built once: a schema built per call also compiles its decoder per call.
const nullables = new WeakMap<Schema.Schema.Any, Schema.Schema.Any>()
export const nullable = <A, I>(schema: Schema.Schema<A, I>): Schema.Schema<A | null, I | null> => {
  let s = nullables.get(schema)
  if (s === undefined) {
    s = Schema.NullOr(schema)
    nullables.set(schema, s)
  }
  return s as Schema.Schema<A | null, I | null>
}

export const handleArgs = (h: HandleRef): Array<Arg> => [
  text(h.payload.executionId),
  int(h.payload.attemptIndex),
  uuid(h.payload.attemptId),
  uuid(h.payload.leaseId),
  bigint(h.payload.leaseEpoch)
]

export const utf8Fatal = new TextDecoder("utf-8", { fatal: true })

/** The stored form of a `createExecution` (shared by the single and the batch call and by the members of a flow graph). */
export const createItem = (a: CreateExecutionCore) => {
  const p = a.policy
  return {
    executionId: a.executionId,
    partition: executionPartition(a.executionId),
    namespace: a.namespace,
    laneId: a.laneId,
    executionKind: a.executionKind,
    payloadEncoding: a.payloadEncoding ?? null,
    priority: a.priority,
    creatorIdentity: a.creatorIdentity,
    idempotencyKey: a.idempotencyKey ?? null,
    tags: a.tags,
    policy: a.policy === undefined ? null : encodePolicy(a.policy),
    requiredCapabilities: a.requiredCapabilities,
    delayUntil: a.delayUntil ?? null,
    executionDeadlineAt: a.executionDeadlineAt ?? null,
    attemptTimeoutMs: p?.timeoutPolicy?.attemptTimeoutMs ?? null,
    maxReclaimCount: p?.maxReclaimCount ?? p?.timeoutPolicy?.maxReclaimCount ?? 100,
    maxReplayCount: p?.maxReplayCount ?? 10,
    dedupTtlMs: p?.dedupWindowMs ?? 86_400_000,
    traceContext: a.traceContext ?? null
  }
}

export interface CoreContext {
  readonly caller: Caller
  readonly call: Caller["call"]
  readonly options: CoreOptions
  readonly cfg: PartitionConfig
  /** `ff_<fn>`'s reply decoded with `schema`. */
  readonly callDecode: <A, I>(op: string, fn: string, args: ReadonlyArray<Arg>, schema: Schema.Schema<A, I>) => Fx<A>
  /** `ff_<fn>`'s reply, `null` as `None`. */
  readonly callOption: <A, I>(
    op: string,
    fn: string,
    args: ReadonlyArray<Arg>,
    schema: Schema.Schema<A, I>
  ) => Fx<Option.Option<NonNullable<A>>>
  /** `ff_<fn>` whose reply is `null`. */
  readonly callVoid: (op: string, fn: string, args: ReadonlyArray<Arg>) => Fx<void>
  /** The key of an attempt's stream among the blocked tails. */
  readonly streamKey: (executionId: string, attemptIndex: number) => string
  /** Releases the tails blocked on the stream of the handle's attempt (an append, the attempt's end). */
  readonly wake: (h: HandleRef) => Effect.Effect<void>
  /** `wake`, at once (for the loops over a batch's replies). */
  readonly unsafeWake: (h: HandleRef) => void
  /** What the next local write to the stream of `key` completes. */
  readonly nextWrite: (key: string) => Effect.Effect<Deferred.Deferred<void>>
}

export const makeCoreContext = (caller: Caller, options: CoreOptions): CoreContext => {
  const { call } = caller
  const cfg = options.partitions

  // In-process wake-ups of blocked tails: appends and attempt ends of this
  // process release them at once; other processes' writes are seen by polling.
  const waiters = new Map<string, Deferred.Deferred<void>>()
  const streamKey = (executionId: string, attemptIndex: number) => `${executionId}:${attemptIndex}`
  const unsafeWake = (h: HandleRef) => {
    if (waiters.size === 0) return
    const key = streamKey(h.payload.executionId, h.payload.attemptIndex)
    const d = waiters.get(key)
    if (d !== undefined) {
      waiters.delete(key)
      Deferred.unsafeDone(d, Effect.void)
    }
  }
  const wake = (h: HandleRef) => Effect.sync(() => unsafeWake(h))
  const nextWrite = (key: string) =>
    Effect.gen(function*() {
      const existing = waiters.get(key)
      if (existing !== undefined) return existing
      const d = yield* Deferred.make<void>()
      waiters.set(key, d)
      return d
    })

  const callDecode = <A, I>(op: string, fn: string, args: ReadonlyArray<Arg>, schema: Schema.Schema<A, I>): Fx<A> =>
    Effect.flatMap(call(op, fn, args), decode(op, schema))

  const callOption = <A, I>(op: string, fn: string, args: ReadonlyArray<Arg>, schema: Schema.Schema<A, I>) =>
    Effect.map(callDecode(op, fn, args, nullable(schema)), Option.fromNullable)

  const callVoid = (op: string, fn: string, args: ReadonlyArray<Arg>): Fx<void> =>
    Effect.asVoid(callDecode(op, fn, args, OkOnly))

  return { caller, call, options, cfg, callDecode, callOption, callVoid, streamKey, wake, unsafeWake, nextWrite }
}
