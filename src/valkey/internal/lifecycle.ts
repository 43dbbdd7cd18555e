/**
 * An execution's life outside claims, over Valkey: create (one, a batch in chunks), and the lease
 * holder's writes: renew, progress, complete (one, a batch), fail, cancel, delay, waitChildren. A
 * retried terminal write that finds its own outcome succeeds (`reconciled`).
 */
import { Clock, Context, Effect, Either, Fiber, Option, ParseResult, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import { type EngineError, type ExecutionNotActiveDetail, fromScriptCode } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea, CreateExecutionCore, HandleRef } from "../../internal/boundary.js"
import { tagBytes } from "../../internal/validation.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { Hub } from "../../internal/wakeups.js"
import { type ClaimReplies, replyText } from "./claim.js"
import { type CoreContext, fence, type Fx, T_Int } from "./context.js"
import { fcallFailure } from "./client.js"
import { isMissingFunction, parseError } from "./errors.js"
import { decodeFields, type Envelope, STAGE_BYTES } from "./plumbing.js"

const CLASS_CATEGORY: Record<M.FailureClass, string> = {
  Transient: "transient",
  Permanent: "permanent",
  InfraCrash: "infra_crash",
  Timeout: "timeout",
  Cancelled: "cancelled"
}

const utf8 = new TextDecoder("utf-8", { fatal: true })

const failureCategory = (reason: M.FailureReason, cls: M.FailureClass): string => {
  const detail = reason.detail
  if (detail !== undefined && detail.length > 0) {
    try {
      return utf8.decode(detail)
    } catch {
      return CLASS_CATEGORY[cls]
    }
  }
  return CLASS_CATEGORY[cls]
}

const T_Exec = Schema.Tuple(Ids.ExecutionId)
const T_Created = Schema.Tuple(Ids.ExecutionId, M.PublicState)
const decodeExec = Schema.decodeUnknownEither(T_Exec)
const decodeCreated = Schema.decodeUnknownEither(T_Created)
const PUBLIC_STATES: ReadonlySet<string> = new Set(M.PublicState.literals)
/**
 * The most one FCALL of a batch takes (each runs alone on the server, so a batch is cut to keep
 * every call short, docs/limits.md): completes of ff_complete_many, and the items, tags and inline
 * bytes of a ff_create_many / ff_create_across chunk (one item holds the server about 60 µs).
 */
const COMPLETE_CHUNK = 200
const CREATE_CHUNK = 100
const CREATE_CHUNK_TAGS = 1_000
const CREATE_CHUNK_BYTES = 2 * 1024 * 1024

/**
 * The JSON arguments of one create: ff_create, an item of ff_create_many / ff_create_across, a
 * member of ff_create_flow_graph / ff_extend_flow.
 */
export const createArgs = (a: CreateExecutionCore): Record<string, unknown> => {
  // (built by assignment: a dozen conditional spreads per item cost more than the rest of it)
  const o: Record<string, unknown> = {
    execution_id: a.executionId,
    namespace: a.namespace,
    lane_id: a.laneId,
    execution_kind: a.executionKind,
    priority: a.priority,
    creator_identity: a.creatorIdentity,
    payload_encoding: a.payloadEncoding ?? ""
  }
  createOptional(a, o)
  o["tags"] = a.tags
  o["required_capabilities"] = a.requiredCapabilities.join(",")
  return o
}

/**
 * One item of ff_create_across / ff_create_many as 10 ARGV entries (FF.CREATE_ITEM_WIDTH)
 * pushed to `out`: execution id, namespace, lane, kind, priority, creator, payload encoding,
 * required capabilities (comma separated), partition, and the JSON object of the arguments an
 * item seldom has (createArgs' others, tags when there are some), "" when it has none.
 */
const createFlat = (a: CreateExecutionCore, partition: number, out: Array<Uint8Array | string>): void => {
  const o: Record<string, unknown> = {}
  createOptional(a, o)
  for (const _ in a.tags) {
    o["tags"] = a.tags
    break
  }
  let more = false
  for (const _ in o) {
    more = true
    break
  }
  out.push(
    a.executionId,
    a.namespace,
    a.laneId,
    a.executionKind,
    String(a.priority),
    a.creatorIdentity,
    a.payloadEncoding ?? "",
    a.requiredCapabilities.join(","),
    String(partition),
    more ? JSON.stringify(o) : ""
  )
}

/** createArgs' fields an item seldom has, set on `o`. */
const createOptional = (a: CreateExecutionCore, o: Record<string, unknown>): void => {
  const policy = a.policy
  if (a.delayUntil !== undefined) o["delay_until"] = a.delayUntil
  if (a.executionDeadlineAt !== undefined) o["deadline_at"] = a.executionDeadlineAt
  if (policy !== undefined) {
    const timeout = policy.timeoutPolicy
    const stream = policy.streamPolicy
    if (timeout?.executionDeadlineMs !== undefined) o["deadline_ms"] = timeout.executionDeadlineMs
    if (timeout?.attemptTimeoutMs !== undefined) o["attempt_timeout_ms"] = timeout.attemptTimeoutMs
    if (policy.maxSignalsPerExecution !== undefined) o["max_signals"] = policy.maxSignalsPerExecution
    if (stream?.retentionMaxlen !== undefined) o["stream_maxlen"] = stream.retentionMaxlen
    if (stream?.retentionTtlMs !== undefined) o["retention_ms"] = stream.retentionTtlMs
  }
  if (a.idempotencyKey !== undefined && a.idempotencyKey !== "") {
    o["idempotency_key"] = a.idempotencyKey
    o["dedup_ttl_ms"] = policy?.dedupWindowMs ?? 86_400_000
  }
  if (a.traceContext !== undefined) o["trace"] = a.traceContext
}

/** (docs/design/executions.md#replaying-a-terminal-write) A retried terminal write that finds its own outcome succeeds. */
const reconciled = <A>(h: HandleRef, matches: (d: ExecutionNotActiveDetail) => Option.Option<A>) =>
(e: EngineError): Fx<A> => {
  if (e._tag === "Contention" && e.kind === "ExecutionNotActive" && e.notActive !== undefined &&
    e.notActive.leaseEpoch === String(h.payload.leaseEpoch)) {
    const r = matches(e.notActive)
    if (Option.isSome(r)) return Effect.succeed(r.value)
  }
  return Effect.fail(e)
}

const completedBy = (h: HandleRef) => (d: ExecutionNotActiveDetail): boolean =>
  d.terminalOutcome === "success" && d.attemptId === h.payload.attemptId

const completedAgain = (h: HandleRef) => {
  const by = completedBy(h)
  return reconciled(h, (d) => (by(d) ? Option.some(undefined) : Option.none()))
}

/** Whether `e` is the refusal of a retried completion that finds its own success (`completedAgain`). */
const isCompletedAgain = (h: HandleRef, e: EngineError): boolean =>
  e._tag === "Contention" && e.kind === "ExecutionNotActive" && e.notActive !== undefined &&
  e.notActive.leaseEpoch === String(h.payload.leaseEpoch) && completedBy(h)(e.notActive)

const ItemError = Schema.parseJson(Schema.Tuple([Schema.Literal(0), Schema.String], Schema.String))
const decodeItemError = Schema.decodeUnknownEither(ItemError)

const completedOutcome: Either.Either<Either.Either<void, EngineError>, never> = Either.right(Either.void)

/**
 * One item's field of ff_complete_many / ff_complete_claim: "" completed, else its refusal (a
 * replay that finds its own success succeeds, as `completedAgain`); left: the field does not parse.
 */
export const completionOutcome = (
  fn: string,
  field: string,
  h: HandleRef
): Either.Either<Either.Either<void, EngineError>, EngineError> => {
  if (field === "") return completedOutcome
  const reply = decodeItemError(field)
  if (Either.isLeft(reply)) return Either.left(parseError(fn, ParseResult.TreeFormatter.formatErrorSync(reply.left)))
  const [, code, ...details] = reply.right
  const e = fromScriptCode("valkey", code, details)
  return isCompletedAgain(h, e) ? completedOutcome : Either.right(Either.left(e))
}

/**
 * The items of ff_complete_many / ff_complete_claim for `items`: each its lease fence, its
 * partition and the ARGV position of its result ("" without one), as ARGV entries after the
 * results (pushed to `blobs`: the results first, then the 7 fields of each item,
 * FF.COMPLETE_ITEM_WIDTH), and the arguments that place them (`fi`, the ARGV index of the first
 * item's first field, `fn`, the count): strings the function takes as they are, where JSON objects
 * cost it a decode per item.
 * Or the error of an execution id outside the deployment's partitions (nothing is sent then).
 */
export const completionArgs = (
  ctx: CoreContext,
  items: ReadonlyArray<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }>,
  blobs: Array<Uint8Array | string>
): Either.Either<{ readonly fi: number; readonly fn: number }, EngineError> => {
  const partitions: Array<number> = new Array(items.length)
  const results: Array<string> = new Array(items.length)
  for (let i = 0; i < items.length; i++) {
    const { h, payload } = items[i]!
    const partition = Ids.executionPartition(h.payload.executionId)
    if (partition >= ctx.N) return Either.left(ctx.rangeError(h.payload.executionId))
    partitions[i] = partition
    results[i] = payload === undefined ? "" : String(blobs.push(payload))
  }
  // (ARGV[1] is now, ARGV[2] the JSON arguments, ARGV[2 + j] the j-th blob)
  const fi = blobs.length + 3
  for (let i = 0; i < items.length; i++) {
    const p = items[i]!.h.payload
    blobs.push(
      p.executionId,
      String(p.attemptIndex),
      p.attemptId,
      p.leaseId,
      String(p.leaseEpoch),
      String(partitions[i]),
      results[i]!
    )
  }
  return Either.right({ fi, fn: items.length })
}

/** Claims one ff_create_claim takes at most on a standalone server (as one ff_complete_claim's). */
const HANDOFF_CHUNK = 200

export const makeLifecycle = (
  ctx: CoreContext,
  replies: ClaimReplies,
  hub?: Hub | undefined
): CoreArea<"lifecycle"> => {
  const { call, client, ex, inRange, keys, N, settings } = ctx

  /**
   * On a standalone server, a create of work claimable at once nudges this process's idle workers
   * of its lane as soon as it is on the connection: their claim follows it on the same connection,
   * so the server runs it right after the create, without waiting for the create's reply or its
   * wake-up message (docs/worker.md, "Wake-ups, timers and cancellation"). A claim that finds
   * nothing (a duplicate, a kind the worker lacks) costs one empty claim; the wake-up message
   * still follows as before.
   */
  const nudgeOnSend = (a: CreateExecutionCore): (() => void) | undefined =>
    hub === undefined || client.isCluster || a.delayUntil !== undefined ? undefined : () => hub.nudge(a.laneId)

  /** A create's result from its status and fields (ff_create's, the create part of ff_create_claim's). */
  const createdOf = (
    fn: string,
    a: CreateExecutionCore,
    status: string,
    fields: ReadonlyArray<string>
  ): Fx<M.CreateExecutionResult> => {
    // the usual reply checked by hand (as createdFrom does); else the Schema, for its message
    const executionId = fields[0]
    const state = fields[1]
    if (
      status !== "DUPLICATE" && fields.length === 2 && executionId !== undefined && state !== undefined &&
      Ids.checkExecutionId(executionId) === undefined && PUBLIC_STATES.has(state)
    ) {
      const created: M.CreateExecutionResult = {
        _tag: "Created",
        executionId: executionId as Ids.ExecutionId,
        publicState: state as M.PublicState
      }
      return Effect.as(ctx.registerLane(a.laneId), created)
    }
    return createdChecked(fn, a, status, fields)
  }

  const createdChecked = (fn: string, a: CreateExecutionCore, status: string, fields: ReadonlyArray<string>) =>
    Effect.gen(function*() {
      // a Duplicate writes nothing, the lane registry included
      if (status === "DUPLICATE") {
        const [executionId] = yield* decodeFields(fn, T_Exec, fields.slice(0, 1))
        return { _tag: "Duplicate", executionId } satisfies M.CreateExecutionResult
      }
      const [executionId, publicState] = yield* decodeFields(fn, T_Created, fields)
      yield* ctx.registerLane(a.laneId)
      return { _tag: "Created", executionId, publicState } satisfies M.CreateExecutionResult
    })

  const plainCreate = (a: CreateExecutionCore): Fx<M.CreateExecutionResult> =>
    Effect.flatMap(
      call("create", ex(a.executionId), createArgs(a), [a.inputPayload, a.policyJson], false, nudgeOnSend(a)),
      (env) => createdOf("ff_create", a, env.status, env.fields)
    )

  /**
   * `plainCreate` on a standalone server, its FCALL written on the caller's stack (no effect runs
   * before it is on the connection); the effect returned reads its reply. A function missing
   * after a restart: `plainCreate`, which loads the library again and calls once more (nothing
   * ran). `undefined` when a blob must be staged first (then `plainCreate` makes the call).
   */
  const plainCreateNow = (a: CreateExecutionCore, now: string): Fx<M.CreateExecutionResult> | undefined => {
    const target = ex(a.executionId)
    const args = createArgs(a)
    const call = ctx.callNow("create", target, args, [a.inputPayload, a.policyJson], now, nudgeOnSend(a))
    if (call === undefined) return undefined
    const { reply, sent } = call
    return Effect.flatMap(
      Effect.promise((): Promise<Either.Either<unknown, unknown>> => reply.then(Either.right, Either.left)),
      (settled) => {
        if (Either.isLeft(settled)) {
          return isMissingFunction(settled.left) ?
            plainCreate(a) :
            Effect.fail(fcallFailure("ff_create", settled.left, sent, false))
        }
        return Effect.flatMap(
          ctx.textReply("create", target, args, settled.right),
          (env) => createdOf("ff_create", a, env.status, env.fields)
        )
      }
    )
  }

  /**
   * A create of work claimable at once while an idle worker of this process waits on its lane:
   * ff_create_claim creates, then claims for that worker, in one FCALL (docs/worker.md, "Wake-ups,
   * timers and cancellation"). The worker's slots are taken and the call started in one
   * uninterruptible step; the call and the hand-over of what it claimed run in a fiber of their
   * own, so that `deliver` runs once whatever happens to the caller, who may be interrupted while
   * it waits (the worker still gets what the call claimed).
   */
  const createClaiming = (a: CreateExecutionCore): Fx<M.CreateExecutionResult> | undefined => {
    if (hub === undefined || a.delayUntil !== undefined) return undefined
    return Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime<M.CreateExecutionResult, EngineError>((fiber) => {
        const handoff = hub.handoff(a.laneId)
        const now = client.isCluster ?
          undefined :
          settings.clock === "effect" ?
          String(Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeMillis()) :
          ""
        if (handoff === undefined) return restore((now === undefined ? undefined : plainCreateNow(a, now)) ?? plainCreate(a))
        if (now !== undefined) {
          const sent = handoffNow(a, handoff, now)
          if (sent !== undefined) return restore(sent)
        }
        // (a call that failed, or whose reply did not read: the worker claims itself; `deliver`
        // counts its first call only)
        const handed = Effect.ensuring(handoffCreate(a, handoff), Effect.sync(() => handoff.deliver([], true)))
        return Effect.flatMap(Effect.forkDaemon(handed), (fiber) => restore(Fiber.join(fiber)))
      })
    )
  }

  /**
   * A standalone server's ff_create_claim, sent on the caller's stack as the handoff is taken (no
   * fiber is forked and no effect runs before the call is on the connection), its claims handed
   * over in the reply's callback, whatever becomes of the caller meanwhile (an interrupted
   * producer's worker still gets them; a call that fails, or whose reply does not read, delivers
   * "claim again"). The effect returned reads the create's result once the reply is in (a
   * function missing after a server restart: the library is loaded again and the execution created
   * with ff_create, the worker claiming itself). `undefined` when a blob must be staged first:
   * `handoffCreate` makes the call then.
   */
  const handoffNow = (
    a: CreateExecutionCore,
    handoff: EngineBackend.Handoff,
    now: string
  ): Fx<M.CreateExecutionResult> | undefined => {
    const fn = "ff_create_claim"
    let args: Record<string, unknown>
    let call: ReturnType<CoreContext["callBinaryNow"]>
    try {
      args = {
        ...createArgs(a),
        claim: replies.batchArgs(handoff.args, Math.min(HANDOFF_CHUNK, handoff.max), Limits.batchBytes, true)
      }
      call = ctx.callBinaryNow("create_claim", ex(a.executionId), args, [a.inputPayload, a.policyJson], now)
    } catch (defect) {
      handoff.deliver([], true)
      return Effect.die(defect)
    }
    if (call === undefined) return undefined
    const sent = call.sent
    const settled = call.reply.then(
      (raw): Either.Either<unknown, unknown> => {
        try {
          if (!Array.isArray(raw) || raw[0] !== 1) {
            handoff.deliver([], true)
          } else {
            const read = replies.readBatch(fn, raw as ReadonlyArray<Buffer | number>, 7, handoff.args, Limits.batchBytes)
            // (a claim that failed, or whose reply did not read, leaves the worker claiming itself;
            // what it may have claimed then waits for its lease's expiry, as after a lost claim reply)
            if (Either.isRight(read)) handoff.deliver(read.right.claimed, read.right.claimed.length === 0)
            else handoff.deliver([], true)
          }
        } catch {
          handoff.deliver([], true)
        }
        return Either.right(raw)
      },
      (error: unknown) => {
        handoff.deliver([], true)
        return Either.left(error)
      }
    )
    return Effect.flatMap(Effect.promise(() => settled), (settled) => {
      if (Either.isLeft(settled)) {
        return isMissingFunction(settled.left) ?
          plainCreate(a) :
          Effect.fail(fcallFailure(fn, settled.left, sent, false))
      }
      return Effect.flatMap(ctx.binaryReply("create_claim", args, settled.right), (raw) => {
        const text = (i: number) => replyText(raw, i)
        return createdOf(fn, a, text(1), [text(3), text(4)])
      })
    })
  }

  /**
   * ff_create_claim's call: the worker has its work first (`give`), then the create's result is
   * read. On a cluster the layer writes the create's claim hint and wakes the lane (as after
   * ff_create), writes the claim's wakes, and sets the partition's hint to its head after the
   * claim (as a claim's visit does).
   */
  const handoffCreate = (a: CreateExecutionCore, handoff: EngineBackend.Handoff): Fx<M.CreateExecutionResult> =>
    Effect.gen(function*() {
      const fn = "ff_create_claim"
      const walk = !client.isCluster
      const target = ex(a.executionId)
      // the claims are handed over as the reply is read, before this fiber resumes with it
      let read: ReturnType<typeof replies.readBatch> | undefined
      const raw = yield* ctx.callBinary("create_claim", target, {
        ...createArgs(a),
        claim: replies.batchArgs(handoff.args, walk ? Math.min(HANDOFF_CHUNK, handoff.max) : 1, Limits.batchBytes, walk)
      }, [a.inputPayload, a.policyJson], (reply) => {
        read = replies.readBatch(fn, reply, 7, handoff.args, Limits.batchBytes)
        if (Either.isRight(read)) handoff.deliver(read.right.claimed, read.right.claimed.length === 0)
        else handoff.deliver([], true)
      })
      const text = (i: number) => replyText(raw, i)
      const batch = read ?? replies.readBatch(fn, raw, 7, handoff.args, Limits.batchBytes)
      // (a claim that failed, or whose reply did not read, leaves the worker claiming itself; what
      // it may have claimed then waits for its lease's expiry, as after a lost claim reply)
      if (Either.isRight(batch)) handoff.deliver(batch.right.claimed, batch.right.claimed.length === 0)
      else handoff.deliver([], true)
      if (!walk && target.partition !== undefined) {
        yield* ctx.applyWake(target.partition, text(2))
        yield* ctx.applyWake(target.partition, text(5))
        if (Either.isRight(batch) && batch.right.last !== "ERROR") {
          yield* replies.refreshHint(a.laneId, target.partition, Number.NaN, text(6))
        }
      }
      return yield* createdOf(fn, a, text(1), [text(3), text(4)])
    })

  const createExecution: BackendCore["createExecution"] = (a: CreateExecutionCore) =>
    Effect.zipRight(inRange(a.executionId), createClaiming(a) ?? plainCreate(a))

  /** The results of one create_many / create_across reply, at the items' places in `results`. */
  const createdFrom = (
    name: string,
    env: Envelope,
    items: ReadonlyArray<number>,
    results: Array<M.CreateExecutionResult>
  ): Fx<void> =>
    Effect.gen(function*() {
      if (env.fields.length !== 3 * items.length) {
        return yield* parseError(name, `${env.fields.length} reply fields for ${items.length} items`)
      }
      for (let k = 0; k < items.length; k++) {
        const status = env.fields[3 * k]!
        const executionId = env.fields[3 * k + 1]!
        const state = env.fields[3 * k + 2]!
        // the usual reply checked by hand (the Schema's refinements allocate per item); else the Schema, for its message
        if (
          status !== "DUPLICATE" && Ids.checkExecutionId(executionId) === undefined && PUBLIC_STATES.has(state)
        ) {
          results[items[k]!] = {
            _tag: "Created",
            executionId: executionId as Ids.ExecutionId,
            publicState: state as M.PublicState
          }
          continue
        }
        const decoded: Either.Either<M.CreateExecutionResult, ParseResult.ParseError> = status === "DUPLICATE" ?
          Either.map(decodeExec([env.fields[3 * k + 1]]), ([executionId]) => ({ _tag: "Duplicate" as const, executionId })) :
          Either.map(
            decodeCreated([env.fields[3 * k + 1], env.fields[3 * k + 2]]),
            ([executionId, publicState]) => ({ _tag: "Created" as const, executionId, publicState })
          )
        if (Either.isLeft(decoded)) {
          return yield* parseError(name, ParseResult.TreeFormatter.formatErrorSync(decoded.left))
        }
        results[items[k]!] = decoded.right
      }
    })

  const blobsOf = (list: ReadonlyArray<CreateExecutionCore>, items: ReadonlyArray<number>) => {
    const blobs: Array<Uint8Array | string> = []
    for (const i of items) blobs.push(list[i]!.inputPayload, list[i]!.policyJson)
    return blobs
  }

  /**
   * The items of `order` (indexes into `list`) cut into runs of at most CREATE_CHUNK items,
   * CREATE_CHUNK_TAGS tags and CREATE_CHUNK_BYTES of inline blobs and tags (a run holds one item at least).
   */
  const weighed = (list: ReadonlyArray<CreateExecutionCore>, order: ReadonlyArray<number>): Array<Array<number>> => {
    const chunks: Array<Array<number>> = []
    let chunk: Array<number> = []
    let tags = 0
    let bytes = 0
    for (const i of order) {
      const a = list[i]!
      const t = Object.keys(a.tags).length
      const b = (a.inputPayload.length < STAGE_BYTES ? a.inputPayload.length : 0) + a.policyJson.length + tagBytes(a.tags)
      if (chunk.length > 0 && (chunk.length >= CREATE_CHUNK || tags + t > CREATE_CHUNK_TAGS || bytes + b > CREATE_CHUNK_BYTES)) {
        chunks.push(chunk)
        chunk = []
        tags = 0
        bytes = 0
      }
      chunk.push(i)
      tags += t
      bytes += b
    }
    if (chunk.length > 0) chunks.push(chunk)
    return chunks
  }

  /**
   * A batch goes in chunks (`weighed`), each item created exactly as ff_create does (one after the
   * other, each atomically), all chunks at once: on a standalone server a chunk is a run of the
   * list over any partitions (ff_create_across); on a cluster, a run of one partition's items
   * (ff_create_many). Ids are range-checked before anything is sent.
   */
  const createChunks = (list: ReadonlyArray<CreateExecutionCore>, results: Array<M.CreateExecutionResult>): Fx<void> => {
    if (!client.isCluster) {
      const chunks = weighed(list, Array.from({ length: list.length }, (_, i) => i))
      return Effect.forEach(chunks, (items) => {
        // the payload / policy pairs, then the items' fields (createFlat) from ARGV[fi] on
        const blobs = blobsOf(list, items)
        const fi = blobs.length + 3
        for (const i of items) createFlat(list[i]!, Ids.executionPartition(list[i]!.executionId), blobs)
        return Effect.flatMap(
          call("create_across", { base: keys.lanes }, { prefix: settings.prefix, partitions: N, fi, fn: items.length }, blobs),
          (env) => createdFrom("ff_create_across", env, items, results)
        )
      }, { concurrency: "unbounded", discard: true })
    }
    const byPartition = new Map<number, Array<number>>()
    for (let i = 0; i < list.length; i++) {
      const partition = Ids.executionPartition(list[i]!.executionId)
      const group = byPartition.get(partition)
      if (group === undefined) byPartition.set(partition, [i])
      else group.push(i)
    }
    const chunks: Array<{ readonly partition: number; readonly items: ReadonlyArray<number> }> = []
    for (const [partition, items] of byPartition) {
      for (const chunk of weighed(list, items)) chunks.push({ partition, items: chunk })
    }
    return Effect.forEach(chunks, ({ items, partition }) => {
      const blobs = blobsOf(list, items)
      const fi = blobs.length + 3
      for (const i of items) createFlat(list[i]!, partition, blobs)
      return Effect.flatMap(
        call("create_many", ctx.flowTarget(partition), { fi, fn: items.length }, blobs),
        (env) => createdFrom("ff_create_many", env, items, results)
      )
    }, { concurrency: "unbounded", discard: true })
  }

  const createExecutions: BackendCore["createExecutions"] = (list) =>
    Effect.gen(function*() {
      for (const a of list) yield* inRange(a.executionId)
      const results = new Array<M.CreateExecutionResult>(list.length)
      yield* createChunks(list, results)
      // only the lanes of created executions: a Duplicate writes nothing
      const created = new Set<string>()
      for (let i = 0; i < list.length; i++) if (results[i]!._tag === "Created") created.add(list[i]!.laneId)
      for (const lane of created) yield* ctx.registerLane(lane)
      return results
    })

  // --- the worker's lease-bound writes ------------------------------------------------------------
  const renew: BackendCore["renew"] = (h) =>
    Effect.gen(function*() {
      const env = yield* call("renew", ex(h.payload.executionId), { ...fence(h), lease_ttl_ms: h.payload.leaseTtlMs })
      const [expiresAtMs] = yield* decodeFields("ff_renew", T_Int, env.fields)
      return { expiresAtMs, leaseEpoch: h.payload.leaseEpoch }
    })

  const progress: BackendCore["progress"] = (h, percent, message) =>
    Effect.asVoid(call("progress", ex(h.payload.executionId), {
      ...fence(h),
      ...(percent === undefined ? {} : { percent }),
      ...(message === undefined ? {} : { message })
    }))

  const complete: BackendCore["complete"] = (h, payload) =>
    call("complete", ex(h.payload.executionId), fence(h), payload === undefined ? [] : [payload]).pipe(
      Effect.asVoid,
      Effect.catchAll(completedAgain(h))
    )

  /**
   * On a standalone server one FCALL completes COMPLETE_CHUNK items (ff_complete_many); a cluster
   * sends them side by side.
   */
  const completeMany: BackendCore["completeMany"] = (items) =>
    client.isCluster ?
      Effect.forEach(items, ({ h, payload }) => Effect.either(complete(h, payload)), { concurrency: "unbounded" }) :
      Effect.map(
        Effect.forEach(
          Array.from({ length: Math.ceil(items.length / COMPLETE_CHUNK) }, (_, i) =>
            items.slice(i * COMPLETE_CHUNK, (i + 1) * COMPLETE_CHUNK)),
          completeChunk,
          { concurrency: "unbounded" }
        ),
        (chunks) => chunks.flat()
      )

  /** One ff_complete_many: its items' outcomes in order. */
  const completeChunk = (items: Parameters<BackendCore["completeMany"]>[0]): Fx<Array<Either.Either<void, EngineError>>> => {
    const blobs: Array<Uint8Array | string> = []
    const args = completionArgs(ctx, items, blobs)
    if (Either.isLeft(args)) return Effect.fail(args.left)
    return Effect.flatMap(
      call("complete_many", { base: keys.lanes }, { prefix: settings.prefix, partitions: N, ...args.right }, blobs),
      (env) => {
        const fn = "ff_complete_many"
        if (env.fields.length !== items.length) {
          return Effect.fail(parseError(fn, `${env.fields.length} replies for ${items.length} items`))
        }
        const outcomes: Array<Either.Either<void, EngineError>> = new Array(items.length)
        for (let i = 0; i < items.length; i++) {
          const o = completionOutcome(fn, env.fields[i]!, items[i]!.h)
          if (Either.isLeft(o)) return Effect.fail(o.left)
          outcomes[i] = o.right
        }
        return Effect.succeed(outcomes)
      }
    )
  }

  const fail: BackendCore["fail"] = (h, reason, cls) =>
    Effect.gen(function*() {
      const env = yield* call("fail", ex(h.payload.executionId), {
        ...fence(h),
        reason: reason.message,
        category: failureCategory(reason, cls),
        classification: cls
      })
      if (env.status === "RETRY") {
        const [delayUntil] = yield* decodeFields("ff_fail", T_Int, env.fields)
        return { _tag: "RetryScheduled", delayUntil } satisfies M.FailOutcome
      }
      return { _tag: "TerminalFailed" } satisfies M.FailOutcome
    }).pipe(
      Effect.catchAll(reconciled(h, (d): Option.Option<M.FailOutcome> =>
        d.lifecyclePhase === "terminal" && d.terminalOutcome === "failed" && d.attemptId === h.payload.attemptId ?
          Option.some({ _tag: "TerminalFailed" }) :
          d.lifecyclePhase === "runnable" ?
          Option.some({ _tag: "RetryScheduled", delayUntil: 0 }) :
          Option.none()))
    )

  const cancel: BackendCore["cancel"] = (h, reason) =>
    call("cancel", ex(h.payload.executionId), { ...fence(h), reason, mode: "worker", source: "lease_holder" }).pipe(
      Effect.asVoid,
      Effect.catchAll(reconciled(h, (d) =>
        d.terminalOutcome === "cancelled" && d.attemptId === h.payload.attemptId ? Option.some(undefined) : Option.none()))
    )

  const delay: BackendCore["delay"] = (h, delayUntil) =>
    Effect.asVoid(call("delay", ex(h.payload.executionId), { ...fence(h), delay_until: delayUntil }))

  const waitChildren: BackendCore["waitChildren"] = (h) =>
    Effect.asVoid(call("wait_children", ex(h.payload.executionId), fence(h)))

  return {
    createExecution,
    createExecutions,
    renew,
    progress,
    complete,
    completeMany,
    fail,
    cancel,
    delay,
    waitChildren
  }
}
