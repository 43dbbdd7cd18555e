/**
 * Claims over Valkey: the claim of a lane (one partition at a time on a cluster, one ff_claim_lane
 * on a standalone server), a batch of claims, claimForWorker's grants, and the claims of a resumed
 * execution. The claim-hint walk is explained once, beside its Lua code (claim.lua, "the claim
 * hints and the claim-hint walk"); `boundedWalk` below is the same walk run from the layer.
 */
import { Effect, Either, Option, ParseResult, Schema } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError, Transport } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea, HandleRef } from "../../internal/boundary.js"
import { decodeHandle, makeHandle } from "../../internal/handleCodec.js"
import { storeAttemptId, storeLeaseId } from "../../internal/storeIds.js"
import { traceParentField } from "../../internal/traceContext.js"
import { Limits } from "../../Limits.js"
import type * as M from "../../Model.js"
import type { Hub } from "../../internal/wakeups.js"
import { type CoreContext, type Fx, S } from "./context.js"
import { parseError } from "./errors.js"
import { completionArgs, completionOutcome } from "./lifecycle.js"
import { decodeFields, type Envelope, IntStr } from "./plumbing.js"

/** The reply of every claim-like function: the lease it granted. */
const Claimed = Schema.Tuple(
  Ids.ExecutionId,
  Schema.compose(IntStr, Ids.AttemptIndex),
  Ids.AttemptId,
  Ids.LeaseId,
  Schema.compose(IntStr, Ids.LeaseEpoch),
  IntStr,
  Schema.Literal("fresh", "resumed"),
  S
)

type ClaimedTuple = typeof Claimed.Type
const decodeClaimed = Schema.decodeUnknownEither(Claimed)
const DIGITS = /^-?\d+$/

/**
 * `Claimed` on the hot path: the same checks as the Schema's, by hand (the Schema's refinements
 * allocate a few kilobytes per claim); a miss asks the Schema, for its message.
 */
const claimedFields = (fn: string, f: ReadonlyArray<string>): Either.Either<ClaimedTuple, Transport> => {
  if (f.length === 8 && DIGITS.test(f[1]!) && DIGITS.test(f[4]!) && DIGITS.test(f[5]!)) {
    const idx = Number(f[1])
    const epoch = Number(f[4])
    const exp = Number(f[5])
    const kind = f[6]
    if (
      Ids.checkExecutionId(f[0]!) === undefined && Number.isSafeInteger(idx) && idx >= 0 && idx <= 0xffffffff &&
      Ids.isCanonicalUuid(f[2]!) && Ids.isCanonicalUuid(f[3]!) && Number.isSafeInteger(epoch) && epoch >= 0 &&
      Number.isSafeInteger(exp) && (kind === "fresh" || kind === "resumed") && typeof f[7] === "string"
    ) {
      return Either.right([f[0], idx, f[2], f[3], epoch, exp, kind, f[7]] as unknown as ClaimedTuple)
    }
  }
  return Either.mapLeft(decodeClaimed(f), (e) => parseError(fn, ParseResult.TreeFormatter.formatErrorSync(e)))
}

/** ff_issue_grant: the execution, the grant key, its expiry, the partition's lane head after it. */
const T_Grant = Schema.Tuple(Ids.ExecutionId, S, IntStr, S)
/** Fields of one claim in a claim reply: the handle's, the lease expiry, the kind, the partition's next head. */
const CLAIM_FIELDS = 8
/** Partitions one ff_claim_lane call visits before it leaves the rest of the walk to the layer. */
const CLAIM_LANE_VISITS = 8
/**
 * Claims one ff_claim_lane call takes at most (each FCALL runs alone on the server, so a batch is
 * cut to keep every call short, docs/limits.md).
 */
const CLAIM_CHUNK = 200
/** ff_claim's LATER: the score of the partition's best candidate for the worker, its lane head. */
const T_Later = Schema.Tuple(IntStr, S)

/** What one partition's visit of a claim-hint walk answered (head: its lane head afterwards). */
type Visit<A> =
  | { readonly _tag: "Served"; readonly value: A; readonly head: string }
  | { readonly _tag: "Later"; readonly score: number; readonly head: string }
  | { readonly _tag: "NoMatch"; readonly head: string }
  | { readonly _tag: "Empty" }
type Unserved = Exclude<Visit<never>, { readonly _tag: "Served" }>

/** A field of a binary reply as text. */
const text = (x: Buffer | number | undefined): string => (Buffer.isBuffer(x) ? x.toString("utf8") : String(x))

/** The input a ff_complete_claim reply brought for a claim (its five fields of meta from `m`, its payload). */
const claimedInput = (
  raw: ReadonlyArray<Buffer | number>,
  m: number,
  executionId: Ids.ExecutionId,
  laneId: Ids.LaneId,
  payload: Buffer
): M.ExecutionInput => {
  const encoding = text(raw[m + 3])
  const trace = text(raw[m + 4])
  const input: {
    executionId: Ids.ExecutionId
    executionKind: string
    laneId: Ids.LaneId
    namespace: Ids.Namespace
    payload: Uint8Array
    payloadEncoding?: string
    traceParent?: string
  } = {
    executionId,
    executionKind: text(raw[m + 1]),
    laneId,
    namespace: text(raw[m + 2]) as Ids.Namespace,
    payload: new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength)
  }
  if (encoding !== "") input.payloadEncoding = encoding
  if (trace !== "") {
    const { traceParent } = traceParentField(trace)
    if (traceParent !== undefined) input.traceParent = traceParent
  }
  return input
}

/** Completions of one ff_complete_claim at most (as ff_complete_many's chunks). */
const COMPLETE_CLAIM_ITEMS = 200

/** What a claim's FCALL reply shares with the create that claims for a waiting worker (lifecycle.ts). */
export interface ClaimReplies {
  /** A lease granted, from a claim reply's fields (ff_claim's OK fields). */
  readonly handleOf: (
    fn: string,
    fields: ReadonlyArray<string>,
    lane: Ids.LaneId,
    workerInstanceId: Ids.WorkerInstanceId,
    ttl: number
  ) => Either.Either<
    { readonly handle: M.Handle; readonly claimed: typeof M.ClaimedResumedExecution.Type; readonly next: string },
    Transport
  >
  /**
   * The arguments of a batch of claims with their inputs (ff_complete_claim's claim part): `walk`
   * (a standalone server) those of ff_claim_lane; else one claim's ids (ff_create_claim's claim
   * on a cluster).
   */
  readonly batchArgs: (args: M.ClaimArgs, n: number, budget: number, walk: boolean) => Record<string, unknown>
  /**
   * The claims of a binary reply from field `at` on (ff_complete_claim's layout: status,
   * last_status, n, the claims' fields, their inputs' fields, their payloads, to the reply's end).
   */
  readonly readBatch: (
    fn: string,
    raw: ReadonlyArray<Buffer | number>,
    at: number,
    args: M.ClaimArgs,
    budget: number
  ) => Either.Either<ClaimBatch, Transport>
  /** A visited partition's claim hint set to its head after the visit (`score`: the hint's score now). */
  readonly refreshHint: (lane: Ids.LaneId, partition: number, score: number, next: string) => Fx<void>
  /** A partition found empty leaves the lane's hint (in the background). */
  readonly dropHintLater: (lane: Ids.LaneId, partition: number) => Fx<void>
  /** The arguments every claim FCALL takes (ids apart). */
  readonly claimArgsOf: (args: M.ClaimArgs) => Record<string, unknown>
}

/** What readBatch read: the claims in order, the budget left, the batch's status and last status. */
export interface ClaimBatch {
  readonly claimed: Array<EngineBackend.ClaimedWork>
  readonly budget: number
  readonly status: string
  readonly last: string
}

/** The text of field `i` of a binary reply. */
export const replyText = (raw: ReadonlyArray<Buffer | number>, i: number): string => text(raw[i])

export const makeClaimReplies = (ctx: CoreContext): ClaimReplies => {
  const { client, keys, N, settings } = ctx

  const handleOf: ClaimReplies["handleOf"] = (fn, fields, lane, workerInstanceId, ttl) =>
    Either.map(claimedFields(fn, fields), ([eid, idx, aid, lid, epoch, exp, kind, next]) => ({
      handle: makeHandle("valkey", kind, {
        executionId: eid,
        attemptIndex: idx,
        attemptId: aid,
        leaseId: lid,
        leaseEpoch: epoch,
        leaseTtlMs: ttl,
        laneId: lane,
        workerInstanceId
      }),
      claimed: { executionId: eid, leaseId: lid, leaseEpoch: epoch, attemptIndex: idx, attemptId: aid, leaseExpiresAt: exp },
      next
    }))

  /**
   * After a claim the partition's head moved on: keep its hint score (and so the global order)
   * exact. The update is sent without waiting for its reply: it leaves on the shared connection
   * ahead of this client's next command (auto-pipelining puts it in the same write), so every
   * later claim of this client sees it, and the claim does not pay one more round trip for it. A
   * failure only leaves the hint stale, which claims tolerate (a claim on a partition whose head
   * moved reports its real head) and the promoteDelayed pass repairs.
   */
  const refreshHint: ClaimReplies["refreshHint"] = (lane, partition, score, next) =>
    next === "" ?
      dropHintLater(lane, partition) :
      Number(next) === score ?
      Effect.void :
      Effect.sync(() => {
        client.connection.zadd(keys.hint(lane), "XX", next, String(partition)).catch(() => undefined)
      })

  /**
   * A partition found empty leaves the lane's hint in the background (`dropHint`: a removal, then
   * a check of the partition that puts the hint back if work arrived meanwhile), so that the claim
   * that emptied it answers without two more round trips. Until it is done, a claim of this lane
   * may visit the partition once more and find it empty: it only costs that visit. A claim that
   * reads the hints between the removal and the hint put back misses work that arrived meanwhile:
   * putting it back wakes the lane again.
   */
  const dropHintLater: ClaimReplies["dropHintLater"] = (lane, partition) =>
    Effect.asVoid(Effect.forkDaemon(ctx.dropHint(lane, partition).pipe(
      Effect.catchAll((e) => Effect.logWarning(`flowfabric valkey: cannot drop the hint of ${lane} on ${partition}`, e))
    )))

  const claimArgsOf = ({ capabilities, kinds, lane, policy }: M.ClaimArgs) => ({
    lane,
    worker_id: policy.workerId,
    worker_instance_id: policy.workerInstanceId,
    caps: capabilities.tokens,
    ...(kinds === undefined ? {} : { kinds }),
    lease_ttl_ms: policy.leaseTtlMs,
    scan: settings.claimScan
  })

  const batchArgs: ClaimReplies["batchArgs"] = (args, n, budget, walk) => ({
    ...claimArgsOf(args),
    prefix: settings.prefix,
    ...(walk ? { partitions: N, max_visits: CLAIM_LANE_VISITS } : {}),
    lease_ids: Array.from({ length: n }, storeLeaseId),
    attempt_ids: Array.from({ length: n }, storeAttemptId),
    budget
  })

  const readBatch: ClaimReplies["readBatch"] = (fn, raw, start, args, budget) => {
    const status = text(raw[start])
    const last = text(raw[start + 1])
    const count = Number(text(raw[start + 2]))
    const at = start + 3
    if (!Number.isInteger(count) || raw.length !== at + count * (CLAIM_FIELDS + 6)) {
      return Either.left(parseError(fn, `${raw.length} fields for ${count} claims`))
    }
    const meta = at + count * CLAIM_FIELDS
    const blobsAt = meta + count * 5
    const { lane, policy } = args
    const claimed: Array<EngineBackend.ClaimedWork> = new Array(count)
    for (let i = 0; i < count; i++) {
      const fields: Array<string> = new Array(CLAIM_FIELDS)
      for (let j = 0; j < CLAIM_FIELDS; j++) fields[j] = text(raw[at + i * CLAIM_FIELDS + j])
      const h = handleOf(fn, fields, lane, policy.workerInstanceId, policy.leaseTtlMs)
      if (Either.isLeft(h)) return Either.left(h.left)
      const m = meta + i * 5
      const payload = raw[blobsAt + i]
      const has = text(raw[m]) === "1" && Buffer.isBuffer(payload)
      if (has) budget -= payload.length
      claimed[i] = {
        handle: h.right.handle,
        input: has ? Option.some(claimedInput(raw, m, fields[0] as Ids.ExecutionId, lane, payload)) : Option.none()
      }
    }
    return Either.right({ claimed, budget, status, last })
  }

  return { handleOf, batchArgs, readBatch, refreshHint, dropHintLater, claimArgsOf }
}

/**
 * A wake-up of `lane` on a standalone server, as its message is read: when a worker of this
 * process waits on the lane and lets a claim be made for it (`Hub.handoff`), its claim is sent at
 * once, on the message's stack (no microtask, no fiber, no effect before the call is on the
 * connection), and what it took is handed over in the reply's callback (docs/worker.md, "Wake-ups,
 * timers and cancellation"). The wake-up itself is still counted after it (`Hub.wake`): the woken
 * worker makes its own claim once the handoff is delivered, so a claim that took nothing, failed,
 * or left work behind needs no claim again of its own (a failed one is made again all the same,
 * as a create's handoff is). A cluster, or a layer on the Effect clock, claims as before (the
 * worker's hook).
 */
export const makeWakeClaims = (ctx: CoreContext, replies: ClaimReplies, hub: Hub): ((lane: string) => void) | undefined => {
  if (ctx.client.isCluster || ctx.settings.clock !== "store") return undefined
  const fn = "ff_complete_claim"
  return (lane) => {
    const handoff = hub.handoff(lane)
    if (handoff === undefined) return
    let reply: Promise<unknown>
    try {
      const blobs: Array<Uint8Array | string> = []
      const completing = completionArgs(ctx, [], blobs)
      const call = Either.isLeft(completing) ? undefined : ctx.callBinaryNow("complete_claim", { base: ctx.keys.hint(lane) }, {
        ...replies.batchArgs(handoff.args, Math.min(CLAIM_CHUNK, handoff.max), Limits.batchBytes, true),
        ...completing.right
      }, blobs, "")
      if (call === undefined) return handoff.deliver([], true)
      reply = call.reply
    } catch {
      return handoff.deliver([], true)
    }
    reply.then((raw) => {
      try {
        // (an error reply, a missing function: the worker's claim again meets it and reports it)
        if (!Array.isArray(raw) || raw[0] !== 1 || text(raw[3]) !== "0") return handoff.deliver([], true)
        const read = replies.readBatch(fn, raw as ReadonlyArray<Buffer | number>, 4, handoff.args, Limits.batchBytes)
        if (Either.isRight(read)) handoff.deliver(read.right.claimed, false)
        else handoff.deliver([], true)
      } catch {
        handoff.deliver([], true)
      }
    }, () => handoff.deliver([], true))
  }
}

export const makeClaims = (
  ctx: CoreContext,
  /** The other areas' operations a cluster's completeAndClaim is made of. */
  others: Pick<BackendCore, "completeMany" | "getExecutionInputs">
): CoreArea<"claim"> => {
  const { call, client, ex, inRange, keys, N, settings } = ctx
  const { batchArgs, claimArgsOf, dropHintLater, handleOf, readBatch, refreshHint } = makeClaimReplies(ctx)

  const handleFrom = (
    fn: string,
    env: Envelope,
    lane: Ids.LaneId,
    workerInstanceId: Ids.WorkerInstanceId,
    ttl: number
  ) => handleOf(fn, env.fields.slice(0, CLAIM_FIELDS), lane, workerInstanceId, ttl)

  const claim: BackendCore["claim"] = (args) =>
    client.isCluster ?
      claimCluster(args) :
      Effect.map(claimManyStandalone(args, 1), (handles) => Option.fromNullable(handles[0]))

  interface HintEntry {
    readonly partition: number
    readonly score: number
  }

  /**
   * The hint entries of `lane` best claim score first (ties from a random start, so that
   * concurrent claimers spread over them instead of racing for one), a page at a
   * time. Pages follow scores (a page ends after a whole group of ties, the next one starts past
   * its score), so hints a walk re-scores or removes meanwhile do not shift it; a partition
   * comes at most once.
   */
  const hintCursor = (lane: Ids.LaneId) => {
    const key = keys.hint(lane)
    const entries: Array<HintEntry> = []
    const seen = new Set<number>()
    let min = "-inf"
    let done = false
    const load = Effect.gen(function*() {
      let page = yield* client.run("ZRANGE hint", (c) => c.zrangebyscore(key, min, "+inf", "WITHSCORES", "LIMIT", 0, 32))
      if (page.length < 64) {
        done = true
      } else {
        // the last score's ties in full
        const last = page[page.length - 1]!
        const ties = yield* client.run("ZRANGE hint", (c) => c.zrangebyscore(key, last, last, "WITHSCORES"))
        let keep = page.length
        while (keep >= 2 && page[keep - 1] === last) keep -= 2
        page = [...page.slice(0, keep), ...ties]
        min = `(${last}`
      }
      const rows: Array<HintEntry> = []
      for (let i = 0; i + 1 < page.length; i += 2) {
        const partition = Number(page[i])
        if (!Number.isInteger(partition) || partition < 0 || partition >= N) {
          yield* client.run("ZREM hint", (c) => c.zrem(key, page[i]!))
          continue
        }
        if (seen.has(partition)) continue
        seen.add(partition)
        rows.push({ partition, score: Number(page[i + 1]) })
      }
      let start = 0
      while (start < rows.length) {
        let end = start + 1
        while (end < rows.length && rows[end]!.score === rows[start]!.score) end++
        const size = end - start
        const shift = size > 1 ? yield* Effect.randomWith((r) => r.nextIntBetween(0, size)) : 0
        for (let j = 0; j < size; j++) entries.push(rows[start + ((j + shift) % size)]!)
        start = end
      }
    })
    /** The entry at position `i` of the walk, or undefined past the end. */
    const at = (i: number): Fx<HintEntry | undefined> =>
      Effect.gen(function*() {
        while (entries.length <= i && !done) yield* load
        return entries[i]
      })
    return { at }
  }

  /**
   * The claim-hint walk (explained once, in claim.lua beside `FF.claim_lane_one`) run from the
   * layer, one FCALL per partition: a claim on a cluster (ff_claim) and every claimForWorker
   * (ff_issue_grant).
   */
  const boundedWalk = <A>(
    lane: Ids.LaneId,
    visit: (partition: number, bound: number | undefined) => Fx<Visit<A>>
  ): Fx<Option.Option<A>> =>
    Effect.gen(function*() {
      const hints = hintCursor(lane)
      let i = 0
      let deferred: { readonly partition: number; readonly score: number; readonly hint: number } | undefined
      for (;;) {
        const entry = yield* hints.at(i)
        let partition: number
        let hint: number
        let bound: number | undefined
        if (deferred !== undefined && (entry === undefined || deferred.score <= entry.score)) {
          partition = deferred.partition
          hint = deferred.hint
          bound = entry?.score
          deferred = undefined
        } else if (entry === undefined) {
          return Option.none()
        } else {
          partition = entry.partition
          hint = entry.score
          i++
          bound = (yield* hints.at(i))?.score
          if (deferred !== undefined && (bound === undefined || deferred.score < bound)) bound = deferred.score
        }
        const v = yield* visit(partition, bound)
        switch (v._tag) {
          case "Served":
            yield* refreshHint(lane, partition, hint, v.head)
            return Option.some(v.value)
          case "Later":
            // (visited with the deferred candidate as its bound, a partition answers a worse one)
            if (deferred === undefined || v.score < deferred.score) {
              deferred = { partition, score: v.score, hint: Number(v.head) }
            }
            yield* refreshHint(lane, partition, hint, v.head)
            break
          case "NoMatch":
            yield* refreshHint(lane, partition, hint, v.head)
            break
          case "Empty":
            yield* dropHintLater(lane, partition)
        }
      }
    })

  /** A visit's answer from a LATER / NOMATCH / EMPTY envelope (`null`: a status of the caller's). */
  const visitOf = (fn: string, env: Envelope): Fx<Unserved | null> =>
    Effect.gen(function*() {
      switch (env.status) {
        case "LATER": {
          const [score, head] = yield* decodeFields(fn, T_Later, env.fields)
          return { _tag: "Later", score, head } as const
        }
        case "NOMATCH":
          return { _tag: "NoMatch", head: env.fields[0] ?? "" } as const
        case "EMPTY":
          return { _tag: "Empty" } as const
        default:
          return null
      }
    })

  const claimCluster: BackendCore["claim"] = (args) =>
    boundedWalk<M.Handle>(args.lane, (partition, bound) =>
      Effect.gen(function*() {
        const env = yield* call("claim", ctx.flowTarget(partition), {
          ...claimArgsOf(args),
          lease_id: storeLeaseId(),
          attempt_id: storeAttemptId(),
          ...(bound === undefined ? {} : { bound: String(bound) })
        })
        const other = yield* visitOf("ff_claim", env)
        if (other !== null) return other
        const r = yield* handleFrom("ff_claim", env, args.lane, args.policy.workerInstanceId, args.policy.leaseTtlMs)
        return { _tag: "Served", value: r.handle, head: r.next } satisfies Visit<M.Handle>
      }))

  /**
   * On a standalone server the walk runs inside the server (ff_claim_lane) and one FCALL takes up
   * to CLAIM_CHUNK claims. One claim visits at most CLAIM_LANE_VISITS partitions (it blocks the
   * server meanwhile); past that (MORE: work exists, none of it for this worker so far) the walk
   * goes on here, one FCALL per partition.
   */
  const claimManyStandalone = (args: M.ClaimArgs, max: number): Fx<ReadonlyArray<M.Handle>> =>
    Effect.gen(function*() {
      const { lane, policy } = args
      const handles: Array<M.Handle> = []
      let last = "OK"
      // CLAIM_CHUNK claims per FCALL; the next chunk only when this one was served whole
      while (last === "OK" && handles.length < max) {
        const n = Math.min(CLAIM_CHUNK, max - handles.length)
        const env = yield* call("claim_lane", { base: keys.hint(lane) }, {
          ...claimArgsOf(args),
          prefix: settings.prefix,
          partitions: N,
          max_visits: CLAIM_LANE_VISITS,
          lease_ids: Array.from({ length: n }, storeLeaseId),
          attempt_ids: Array.from({ length: n }, storeAttemptId)
        })
        const [status = "", ...rest] = env.fields
        last = status
        for (let at = 0; at + CLAIM_FIELDS <= rest.length; at += CLAIM_FIELDS) {
          const fields = rest.slice(at, at + CLAIM_FIELDS)
          handles.push((yield* handleOf("ff_claim_lane", fields, lane, policy.workerInstanceId, policy.leaseTtlMs)).handle)
        }
      }
      return last === "MORE" ? yield* claimOneByOne(args, max, handles) : handles
    })

  /** Single claims until `max` or none is left (`start` is what a batch already took). */
  const claimOneByOne = (args: M.ClaimArgs, max: number, start: Array<M.Handle> = []): Fx<ReadonlyArray<M.Handle>> =>
    Effect.gen(function*() {
      const handles = start
      while (handles.length < max) {
        const next = yield* claimCluster(args)
        if (Option.isNone(next)) break
        handles.push(next.value)
      }
      return handles
    })

  /**
   * On a standalone server one FCALL claims the whole batch, each claim walking the hints from the
   * best partition as a single claim does. A cluster claims one at a time: a batch on one partition
   * would take its worse work before a better head elsewhere.
   */
  const claimMany: BackendCore["claimMany"] = (args, max) =>
    client.isCluster ? claimOneByOne(args, max) : claimManyStandalone(args, max)

  type Items = ReadonlyArray<{ readonly h: HandleRef; readonly payload: Uint8Array | undefined }>

  /**
   * completeAndClaim. A standalone server runs it as one ff_complete_claim (more than
   * COMPLETE_CLAIM_ITEMS completions: the first ones go ahead in completeMany; more than
   * CLAIM_CHUNK claims: the rest in further calls). A cluster completes the items side by side
   * (completeMany), then claims one at a time (claimMany) and reads the inputs of what it claimed
   * in one pipeline (getExecutionInputs): the completions, the claims and the inputs live on
   * different nodes.
   */
  const completeAndClaim: BackendCore["completeAndClaim"] = (items, args, max) =>
    client.isCluster ?
      Effect.gen(function*() {
        const completed = items.length === 0 ? [] : yield* others.completeMany(items)
        const handles = max === 0 ? [] : yield* claimOneByOne(args, max)
        return { completed, claimed: yield* withInputs(handles) }
      }) :
      Effect.gen(function*() {
        const ahead = items.length - COMPLETE_CLAIM_ITEMS
        const early = ahead > 0 ? yield* others.completeMany(items.slice(0, ahead)) : []
        const first = yield* completeClaimCall(ahead > 0 ? items.slice(ahead) : items, args, max, Limits.batchBytes)
        const claimed = [...first.claimed]
        let { budget, last } = first
        while (last === "OK" && claimed.length < max) {
          const next = yield* completeClaimCall([], args, max - claimed.length, budget)
          claimed.push(...next.claimed)
          ;({ budget, last } = next)
        }
        if (last === "MORE") claimed.push(...(yield* withInputs(yield* claimOneByOne(args, max - claimed.length))))
        return { completed: [...early, ...first.completed], claimed }
      })

  /** The inputs of `handles`, read in one pipeline while they total at most Limits.batchBytes. */
  const withInputs = (handles: ReadonlyArray<M.Handle>): Fx<ReadonlyArray<EngineBackend.ClaimedWork>> =>
    handles.length === 0 ? Effect.succeed([]) : Effect.map(
      Effect.flatMap(
        Effect.forEach(handles, (h) =>
          Either.match(decodeHandle("valkey", h), {
            onLeft: (e) => Effect.fail(parseError("complete_and_claim", `claimed handle: ${JSON.stringify(e)}`)),
            onRight: (p) => Effect.succeed(p.executionId)
          })),
        others.getExecutionInputs
      ),
      (inputs) => {
        let used = 0
        return handles.map((handle, i) => {
          const input = inputs[i]!
          used += Option.isSome(input) ? input.value.payload.length : 0
          return { handle, input: used <= Limits.batchBytes ? input : Option.none() }
        })
      }
    )

  /** One ff_complete_claim: the items' outcomes, up to CLAIM_CHUNK claims, what is left of `budget`. */
  const completeClaimCall = (items: Items, args: M.ClaimArgs, max: number, budget: number) => {
    const blobs: Array<Uint8Array | string> = []
    const completing = completionArgs(ctx, items, blobs)
    if (Either.isLeft(completing)) return Effect.fail(completing.left)
    const n = Math.min(CLAIM_CHUNK, max)
    return Effect.flatMap(
      ctx.callBinary("complete_claim", { base: keys.hint(args.lane) }, {
        ...batchArgs(args, n, budget, true),
        ...completing.right
      }, blobs),
      (raw) => completeClaimReply(raw, items, args, budget)
    )
  }

  /** What one ff_complete_claim's reply says (`completeClaimCall`), read in one pass. */
  const completeClaimReply = (
    raw: ReadonlyArray<Buffer | number>,
    items: Items,
    args: M.ClaimArgs,
    budget: number
  ): Fx<{
    readonly completed: Array<Either.Either<void, EngineError>>
    readonly claimed: Array<EngineBackend.ClaimedWork>
    readonly budget: number
    readonly last: string
  }> => {
    const fn = "ff_complete_claim"
    const nItems = Number(text(raw[3]))
    if (nItems !== items.length) return Effect.fail(parseError(fn, `${nItems} replies for ${items.length} items`))
    const completed: Array<Either.Either<void, EngineError>> = new Array(nItems)
    for (let i = 0; i < nItems; i++) {
      const o = completionOutcome(fn, text(raw[4 + i]), items[i]!.h)
      if (Either.isLeft(o)) return Effect.fail(o.left)
      completed[i] = o.right
    }
    const batch = readBatch(fn, raw, 4 + nItems, args, budget)
    if (Either.isLeft(batch)) return Effect.fail(batch.left)
    return Effect.succeed({ completed, claimed: batch.right.claimed, budget: batch.right.budget, last: batch.right.last })
  }

  const claimForWorker: BackendCore["claimForWorker"] = (args) =>
    Effect.map(
      boundedWalk<M.ClaimForWorkerOutcome>(args.laneId, (partition, bound) =>
        Effect.gen(function*() {
          const env = yield* call("issue_grant", ctx.flowTarget(partition), {
            lane: args.laneId,
            worker_id: args.workerId,
            worker_instance_id: args.workerInstanceId,
            caps: args.workerCapabilities,
            ...(args.kinds === undefined ? {} : { kinds: args.kinds }),
            grant_ttl_ms: args.grantTtlMs,
            scan: settings.claimScan,
            ...(bound === undefined ? {} : { bound: String(bound) })
          })
          const other = yield* visitOf("ff_issue_grant", env)
          if (other !== null) return other
          const [executionId, grantKey, expiresAtMs, head] = yield* decodeFields("ff_issue_grant", T_Grant, env.fields)
          const granted: M.ClaimForWorkerOutcome = {
            _tag: "Granted",
            grant: { executionId, partitionKey: Ids.partitionKey("Flow", partition), grantKey, expiresAtMs }
          }
          return { _tag: "Served", value: granted, head } satisfies Visit<M.ClaimForWorkerOutcome>
        })),
      Option.getOrElse((): M.ClaimForWorkerOutcome => ({ _tag: "NoWork" }))
    )

  const claimResumedExecution: BackendCore["claimResumedExecution"] = (args) =>
    Effect.gen(function*() {
      yield* inRange(args.executionId)
      const env = yield* call("claim_resumed", ex(args.executionId), {
        execution_id: args.executionId,
        worker_id: args.workerId,
        worker_instance_id: args.workerInstanceId,
        lease_id: args.leaseId,
        lease_ttl_ms: args.leaseTtlMs,
        ...(args.remainingAttemptTimeoutMs === undefined ? {} : { remaining_timeout_ms: args.remainingAttemptTimeoutMs })
      })
      const r = yield* handleFrom("ff_claim_resumed", env, args.laneId, args.workerInstanceId, args.leaseTtlMs)
      return { _tag: "Claimed" as const, claimed: r.claimed, handle: r.handle }
    })

  const claimFromReclaim: BackendCore["claimFromReclaim"] = (token) =>
    Effect.gen(function*() {
      const id = token.grant.executionId
      yield* inRange(id)
      const env = yield* call("claim_resumed", ex(id), {
        execution_id: id,
        worker_id: token.workerId,
        worker_instance_id: token.workerInstanceId,
        lease_id: storeLeaseId(),
        lease_ttl_ms: token.leaseTtlMs
      })
      const r = yield* handleFrom("ff_claim_resumed", env, token.grant.laneId, token.workerInstanceId, token.leaseTtlMs)
      return Option.some(r.handle)
    }).pipe(
      Effect.catchIf(
        (e): e is EngineError =>
          e._tag === "Contention" &&
          (e.kind === "NotAResumedExecution" || e.kind === "ExecutionNotLeaseable" || e.kind === "InvalidClaimGrant" ||
            e.kind === "ClaimGrantExpired"),
        () => Effect.succeed(Option.none<M.Handle>())
      )
    )

  return { claim, claimMany, claimForWorker, claimResumedExecution, claimFromReclaim, completeAndClaim }
}
