/**
 * What every Valkey operation shares: key names, the FCALL envelope and its
 * Schema decoding, the clock argument, and the claim hints.
 *
 * Claim hints (explained in lua/claim.lua, "the claim hints and the claim-hint
 * walk"): on a cluster this layer writes a call's wakes to them right after the
 * call (`applyWake`, then the wake-ups), and `dropHint` removes a partition left
 * with nothing claimable; on a standalone server the function writes them itself
 * (`_hint`, register.lua).
 */
import { randomUUID } from "node:crypto"
import { Clock, Effect, Either, ParseResult, Schema } from "effect"
import { type EngineError, fromScriptCode, Transport } from "../../EngineError.js"
import type { PartitionConfig } from "../../Ids.js"
import type { Client } from "./client.js"
import type { Redis } from "./driver.js"
import { parseError } from "./errors.js"

export interface Settings {
  readonly prefix: string
  readonly partitions: PartitionConfig
  readonly clock: "store" | "effect"
  /** Flows with at most this many owed members are cancelled inside the cancel_flow call (docs/design/flows.md#the-cascade). */
  readonly cancelInlineLimit: number
  /** Claim candidates examined per partition and call (capability filtering). */
  readonly claimScan: number
  /** Concurrent FCALLs of a fan-out (maintenance passes, HMAC seeding and rotation). */
  readonly fanOut: number
}

export const makeKeys = (prefix: string) => {
  const flow = (p: number) => `${prefix}:{fp:${p}}`
  return {
    flow,
    budget: (m: number) => `${prefix}:{b:${m}}`,
    quota: (k: number) => `${prefix}:{q:${k}}`,
    core: (p: number, eid: string) => `${flow(p)}:e:${eid}`,
    ex: (p: number, eid: string, suffix: string) => `${flow(p)}:e:${eid}:${suffix}`,
    stream: (p: number, eid: string, idx: number) => `${flow(p)}:e:${eid}:st:${idx}`,
    smeta: (p: number, eid: string, idx: number) => `${flow(p)}:e:${eid}:st:${idx}:meta`,
    sigPayload: (p: number, sid: string) => `${flow(p)}:s:${sid}:payload`,
    hint: (lane: string) => `${prefix}:hint:${lane}`,
    /** A lane's due hint: partitions with delayed work of the lane, scored by a lower bound of its due time. */
    due: (lane: string) => `${prefix}:due:${lane}`,
    /** The channels of wake-ups (a lane's idle workers) and revocations (a worker instance's leases). */
    wakeChannel: (lane: string) => `${prefix}:wake:${lane}`,
    revokeChannel: (workerInstanceId: string) => `${prefix}:revoke:${workerInstanceId}`,
    /** The channel of an event scope (`eventScope`: l:<lane>, e:<execution>, f:<flow>), published only while marked listened. */
    eventChannel: (scope: string) => `${prefix}:ev:${scope}`,
    /** The id registry: the execution that owns a signal id / a waitpoint id (helpers.lua, "the id registry"). */
    signalOwner: (signalId: string) => `${prefix}:sigid:${signalId}`,
    waitpointOwner: (waitpointId: string) => `${prefix}:wpid:${waitpointId}`,
    /** The registry entries retention released for partition `p` that wait to be deleted (`<kind>:<id> <owner>`). */
    idsToFree: (p: number) => `${flow(p)}:i:idfree`,
    /** The slot anchor of the standalone calls that reach several partitions (nothing is stored there). */
    lanes: `${prefix}:lanes`,
    /** The lane registry (listLanes): a sorted set of lane ids, all scored 0, read by name. */
    laneIndex: `${prefix}:lane-index`,
    config: `${prefix}:config`
  }
}
export type Keys = ReturnType<typeof makeKeys>

/** A decoded reply: `{1, status, wake, ...fields}`. */
export interface Envelope {
  readonly status: string
  readonly wake: string
  readonly fields: ReadonlyArray<string>
}

const OkReply = Schema.Tuple([Schema.Literal(1), Schema.String, Schema.String], Schema.String)
const ErrReply = Schema.Tuple([Schema.Literal(0), Schema.String], Schema.String)
const Reply = Schema.Union(OkReply, ErrReply)
const decodeReply = Schema.decodeUnknownEither(Reply)

const formatParse = (e: ParseResult.ParseError): string => ParseResult.TreeFormatter.formatErrorSync(e)

/** Decodes `fields` with a tuple schema; a mismatch is a Transport parse error naming the function. */
export const decodeFields = <A, I>(
  fn: string,
  schema: Schema.Schema<A, I>,
  fields: unknown,
  executionId?: string
): Effect.Effect<A, Transport> =>
  Either.match(Schema.decodeUnknownEither(schema)(fields), {
    onLeft: (e) => Effect.fail(parseError(fn, formatParse(e), executionId)),
    onRight: Effect.succeed
  })

// parsers are cached per schema (AST): build each JSON wrapper once
const jsonSchemas = new WeakMap<object, Schema.Schema<unknown, string>>()
const jsonOf = <A, I>(schema: Schema.Schema<A, I>): Schema.Schema<A, string> => {
  const cached = jsonSchemas.get(schema)
  if (cached !== undefined) return cached as Schema.Schema<A, string>
  const made = Schema.parseJson(schema)
  jsonSchemas.set(schema, made as Schema.Schema<unknown, string>)
  return made
}

/** A JSON text of a reply field decoded with `schema`. */
export const decodeJson = <A, I>(
  fn: string,
  schema: Schema.Schema<A, I>,
  text: string | undefined,
  executionId?: string
): Effect.Effect<A, Transport> => decodeFields(fn, jsonOf(schema), text, executionId)

/** Decimal integer strings. */
export const IntStr = Schema.transformOrFail(Schema.String, Schema.Int, {
  strict: true,
  decode: (s, _, ast) =>
    /^-?\d+$/.test(s) ? ParseResult.succeed(Number(s)) : ParseResult.fail(new ParseResult.Type(ast, s, "not an integer")),
  encode: (n) => ParseResult.succeed(String(n))
})

/** Lua writes an empty table as `{}`: accept it where an array is expected. */
export const LuaArray = <A, I, R>(item: Schema.Schema<A, I, R>) =>
  Schema.Union(
    Schema.Array(item),
    Schema.transform(Schema.Record({ key: Schema.String, value: Schema.Never }), Schema.Array(item), {
      strict: false,
      decode: () => [],
      encode: () => ({})
    })
  )

const Wake = Schema.Record({ key: Schema.String, value: IntStr })
const decodeWake = Schema.decodeUnknownEither(Schema.parseJson(Wake))

/**
 * The hot path of `decodeReply`: a well-formed `{1, status, wake, ...}` / `{0, code, ...}`
 * of strings. Anything else goes through the Schema (which names what is wrong).
 */
const isReply = (raw: unknown): raw is ReadonlyArray<unknown> => {
  if (!Array.isArray(raw)) return false
  const head = raw[0]
  if (head === 1) {
    if (raw.length < 3) return false
  } else if (head !== 0 || raw.length < 2) {
    return false
  }
  for (let i = 1; i < raw.length; i++) if (typeof raw[i] !== "string") return false
  return true
}

const INT = /^-?\d+$/

/** The hot path of `decodeWake` (a JSON object of integer strings); `undefined` means "ask the Schema". */
const fastWake = (wake: string): Either.Either<Record<string, number>, never> | undefined => {
  let parsed: unknown
  try {
    parsed = JSON.parse(wake)
  } catch {
    return undefined
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return undefined
  const out: Record<string, number> = {}
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== "string" || !INT.test(v)) return undefined
    const n = Number(v)
    if (!Number.isSafeInteger(n)) return undefined
    out[k] = n
  }
  return Either.right(out)
}
const LaneHead = Schema.Tuple(Schema.String)
/** The key prefix of a due hint in a reply's wakes (see FF.wake_json). */
const DUE_KEY = "\u0001"

export interface Target {
  /** KEYS[1]: the partition base `<prefix>:{fp:N}` (or `{b:M}`, `{q:K}`). */
  readonly base: string
  /** The flow partition, for claim hints (absent for budget and quota partitions). */
  readonly partition?: number | undefined
  /** KEYS[2..]: keys outside the partition a standalone call reads and writes (never on a cluster). */
  readonly keys?: ReadonlyArray<string> | undefined
}

export interface Plumbing {
  readonly settings: Settings
  readonly keys: Keys
  readonly client: Client
  readonly flowTarget: (p: number) => Target
  /** ARGV[1]: "" (store clock: the function reads TIME) or Effect's Clock time. */
  readonly nowArg: Effect.Effect<string>
  /**
   * One FCALL: typed script errors fail with their EngineError; wakes update the claim hints.
   * `afterSend` runs once the FCALL is on the connection (see `Client.fcall`).
   */
  readonly call: (
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    blobs?: ReadonlyArray<Uint8Array | string>,
    readOnly?: boolean,
    afterSend?: () => void
  ) => Effect.Effect<Envelope, EngineError>
  /**
   * As `call` for a standalone function whose reply carries bytes: the raw `{1, ...}` reply, its
   * bulk strings as Buffers (an error reply fails as `call`'s would). `onRead` gets a `{1, ...}`
   * reply as it is read, before the caller's fiber resumes (see `Client.fcall`).
   */
  readonly callBinary: (
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    blobs?: ReadonlyArray<Uint8Array | string>,
    onRead?: (raw: ReadonlyArray<Buffer | number>) => void
  ) => Effect.Effect<ReadonlyArray<Buffer | number>, EngineError>
  /**
   * `callBinary`'s FCALL of `ff_<fn>` made on the caller's stack, with `now` as ARGV[1]: no effect
   * runs before it is on the connection. The reply's promise (see `Client.fcallNow`), to be read
   * with `binaryReply`; `undefined` when a blob must be staged first (then `callBinary` makes it).
   */
  readonly callBinaryNow: (
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    blobs: ReadonlyArray<Uint8Array | string>,
    now: string
  ) => { readonly reply: Promise<unknown>; readonly sent: boolean } | undefined
  /**
   * As `callBinaryNow` for `call`'s FCALL (a text reply), read with `textReply`; `afterSend` runs
   * once it is on the connection (see `Client.fcall`).
   */
  readonly callNow: (
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    blobs: ReadonlyArray<Uint8Array | string>,
    now: string,
    afterSend?: (() => void) | undefined
  ) => { readonly reply: Promise<unknown>; readonly sent: boolean } | undefined
  /** `call`'s reading of a raw reply of `ff_<fn>` called on `target` with `args`. */
  readonly textReply: (
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    raw: unknown
  ) => Effect.Effect<Envelope, EngineError>
  /** `callBinary`'s reading of a raw reply of `ff_<fn>` called with `args`. */
  readonly binaryReply: (
    fn: string,
    args: Readonly<Record<string, unknown>>,
    raw: unknown
  ) => Effect.Effect<ReadonlyArray<Buffer | number>, EngineError>
  /**
   * A read-only FCALL of `ff_<fn>` with the same arguments on each of `targets`, replies in their
   * order. On a standalone server the calls go in one pipeline (one write, their replies read
   * together: a maintenance pass probes every partition); on a cluster, or when a reply is an
   * error (a function missing after a restart), each goes through `call`.
   */
  readonly callEach: (
    fn: string,
    targets: ReadonlyArray<Target>,
    args: Readonly<Record<string, unknown>>
  ) => Effect.Effect<ReadonlyArray<Envelope>, EngineError>
  readonly registerLane: (lane: string) => Effect.Effect<void>
  readonly applyWake: (partition: number, wake: string) => Effect.Effect<void>
  /** Removes a partition from a lane's hint unless it still has claimable work (then the lane is woken again). */
  readonly dropHint: (lane: string, partition: number) => Effect.Effect<void, EngineError>
}

/**
 * Payloads and results of this size or more reach the functions that store them staged: SET in a
 * key of their own beside the call's partition (same slot), which the function RENAMEs into place,
 * so the blob's bytes never pass through Lua (a string argument costs the function a copy and its
 * garbage collector about 4 ms per MiB: an 8 MiB payload held the server for tens of milliseconds).
 */
export const STAGE_BYTES = 8 * 1024
/** The functions whose blobs are payloads or results they store (FF.put_blob). */
const STAGING = new Set([
  "create",
  "create_many",
  "create_claim",
  "create_across",
  "create_flow_graph",
  "complete",
  "complete_many",
  "complete_claim"
])
/** How long a staged blob outlives a call that never took it (a lost connection, a crash). */
const STAGE_TTL_MS = 600_000

const toBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength)

/** Up to this many bytes an ASCII blob goes as text (see `toArg`). */
const SHORT_TEXT = 256

/**
 * A blob as an FCALL argument. Short ASCII bytes go as the string of the same bytes (its UTF-8 is
 * those bytes): a command whose arguments are all strings is written as one string, where a
 * single Buffer argument makes the client assemble the command from a list of pieces, three for
 * each Buffer, with a native call per piece.
 */
const toArg = (b: Uint8Array | string): string | Buffer => {
  if (typeof b === "string") return b
  const n = b.length
  if (n > SHORT_TEXT) return toBuffer(b)
  for (let i = 0; i < n; i++) if (b[i]! > 0x7f) return toBuffer(b)
  return String.fromCharCode.apply(null, b as unknown as Array<number>)
}

/** A pipeline's first failed command, thrown (a pipeline resolves with each command's error). */
export const pipelineErrors = (results: Array<[Error | null, unknown]> | null): void => {
  for (const [error] of results ?? []) if (error !== null) throw error
}

export const makePlumbing = (client: Client, settings: Settings): Plumbing => {
  const keys = makeKeys(settings.prefix)
  const knownLanes = new Set<string>()

  const nowArg: Effect.Effect<string> = settings.clock === "effect" ?
    Effect.map(Clock.currentTimeMillis, (n) => String(n)) :
    Effect.succeed("")

  const registerLane = (lane: string): Effect.Effect<void> =>
    knownLanes.has(lane) ?
      Effect.void :
      client.run("ZADD lane-index", (c) => c.zadd(keys.laneIndex, 0, lane)).pipe(
        Effect.tap(() => Effect.sync(() => knownLanes.add(lane))),
        Effect.asVoid,
        Effect.catchAll((e) => Effect.logWarning(`flowfabric valkey: cannot register lane ${lane}`, e))
      )

  // (a cluster's call reports its wakes: the claim hints and due hints are written here, then the
  // lanes' idle workers are woken, so a woken worker finds the hints it claims by. A lane's claim
  // hint and its wake-up go in one pipeline to the hint's node, which runs them in that order: one
  // round trip, not two.)
  const applyWake = (partition: number, wake: string): Effect.Effect<void> =>
    wake === "" ? Effect.void : Effect.gen(function*() {
      const decoded = fastWake(wake) ?? decodeWake(wake)
      if (Either.isLeft(decoded)) {
        return yield* Effect.logWarning(`flowfabric valkey: undecodable wake ${wake}`)
      }
      const claimable = new Map<string, number>()
      const due = new Map<string, number>()
      for (const [key, score] of Object.entries(decoded.right)) {
        if (key.startsWith(DUE_KEY)) due.set(key.slice(DUE_KEY.length), score)
        else claimable.set(key, score)
      }
      const member = String(partition)
      for (const [lane, score] of due) {
        yield* client.run("ZADD due", (c) => c.zadd(keys.due(lane), "LT", String(score), member)).pipe(
          Effect.catchAll((e) => Effect.logWarning(`flowfabric valkey: cannot update the due hints of ${lane}`, e))
        )
        if (!claimable.has(lane)) yield* publishWake(lane)
      }
      for (const [lane, score] of claimable) {
        yield* registerLane(lane)
        yield* client.run("ZADD hint + PUBLISH wake", (c) =>
          c.pipeline().zadd(keys.hint(lane), "LT", String(score), member).publish(keys.wakeChannel(lane), "1")
            .exec().then(pipelineErrors)).pipe(
            Effect.catchAll((e) => Effect.logWarning(`flowfabric valkey: cannot update the hints of ${lane}`, e))
          )
      }
    })

  const publishWake = (lane: string): Effect.Effect<void> =>
    client.run("PUBLISH wake", (c) => c.publish(keys.wakeChannel(lane), "1")).pipe(
      Effect.asVoid,
      Effect.catchAll((e) => Effect.logWarning(`flowfabric valkey: cannot wake the workers of ${lane}`, e))
    )

  /** `partition`: where the reply's wakes go (undefined when the call wrote its hints itself). */
  const onReply = (
    name: string,
    partition: number | undefined,
    args: Readonly<Record<string, unknown>>,
    raw: unknown
  ): Effect.Effect<Envelope, EngineError> => {
    let r: ReadonlyArray<unknown>
    if (isReply(raw)) {
      r = raw
    } else {
      const reply = decodeReply(raw)
      if (Either.isLeft(reply)) {
        const eid = typeof args["execution_id"] === "string" ? args["execution_id"] : undefined
        return Effect.fail(parseError(name, formatParse(reply.left), eid))
      }
      r = reply.right
    }
    if (r[0] === 0) {
      const code = r[1] as string
      const details = r.slice(2) as Array<string>
      const failed = Effect.fail(fromScriptCode("valkey", code, details))
      return code === "lease_expired" && details[0] === "marked" && partition !== undefined ?
        Effect.zipRight(applyWake(partition, details[1] ?? ""), failed) :
        failed
    }
    const envelope: Envelope = { status: r[1] as string, wake: r[2] as string, fields: r.slice(3) as Array<string> }
    return envelope.wake !== "" && partition !== undefined ?
      Effect.as(applyWake(partition, envelope.wake), envelope) :
      Effect.succeed(envelope)
  }

  // on a standalone server a write FCALL updates the claim hints itself (register.lua)
  const hintsInCall = !client.isCluster
  const call: Plumbing["call"] = (fn, target, args, blobs = [], readOnly = false, afterSend) =>
    send(fn, target, args, blobs, readOnly, false, (name, inCall, raw) =>
      onReply(name, inCall ? undefined : target.partition, args, raw), afterSend)

  const readBinary = (
    name: string,
    args: Readonly<Record<string, unknown>>,
    raw: unknown
  ): Effect.Effect<ReadonlyArray<Buffer | number>, EngineError> => {
    if (Array.isArray(raw) && raw[0] === 1) return Effect.succeed(raw as ReadonlyArray<Buffer | number>)
    const texts = Array.isArray(raw) ?
      raw.map((x: unknown) => (Buffer.isBuffer(x) ? x.toString("utf8") : x)) :
      raw
    return onReply(name, undefined, args, texts).pipe(
      Effect.zipRight(Effect.fail(parseError(name, "not a reply")))
    )
  }

  const callBinary: Plumbing["callBinary"] = (fn, target, args, blobs = [], onRead) =>
    send(fn, target, args, blobs, false, true, (name, _, raw) => readBinary(name, args, raw), undefined, onRead === undefined ? undefined : (raw) => {
      if (Array.isArray(raw) && raw[0] === 1) onRead(raw as ReadonlyArray<Buffer | number>)
    })

  const callBinaryNow: Plumbing["callBinaryNow"] = (fn, target, args, blobs, now) => {
    const built = argvOf(fn, target, args, blobs, false, now)
    if (built.stages.length > 0) return undefined
    return client.fcallNow(`ff_${fn}`, target.base, built.argv, false, true)
  }

  const callNow: Plumbing["callNow"] = (fn, target, args, blobs, now, afterSend) => {
    const built = argvOf(fn, target, args, blobs, false, now)
    if (built.stages.length > 0) return undefined
    const call = client.fcallNow(`ff_${fn}`, target.base, built.argv, false, false)
    afterSend?.()
    return call
  }

  const textReply: Plumbing["textReply"] = (fn, target, args, raw) => {
    const inCall = hintsInCall && target.partition !== undefined
    return onReply(`ff_${fn}`, inCall ? undefined : target.partition, args, raw)
  }

  /**
   * The ARGV of an FCALL of `ff_<fn>`: `now`, the JSON arguments (with `_hint` when the call writes
   * its claim hints itself, `inCall`, and the staging keys), the blobs (`stages`: those to SET
   * first, in their staging keys).
   */
  const argvOf = (
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    blobs: ReadonlyArray<Uint8Array | string>,
    readOnly: boolean,
    now: string
  ) => {
    const inCall = hintsInCall && !readOnly && target.partition !== undefined
    const argv: Array<string | Buffer> = [now, ""]
    // argument position (ARGV index, 1-based) -> staging key
    let staged: Record<string, string> | undefined
    const stages: Array<readonly [string, Buffer]> = []
    for (const b of blobs) {
      if (STAGING.has(fn) && typeof b !== "string" && b.length >= STAGE_BYTES) {
        const key = `${target.base}:stage:${randomUUID()}`
        stages.push([key, toBuffer(b)])
        ;(staged ??= {})[String(argv.length + 1)] = key
        argv.push("")
      } else {
        argv.push(toArg(b))
      }
    }
    const sent = inCall ? { ...args, _hint: [settings.prefix, target.partition] } : args
    argv[1] = JSON.stringify(staged === undefined ? sent : { ...sent, staged })
    return { argv, stages, inCall }
  }

  /** One FCALL of `ff_<fn>` (blobs staged or in ARGV), its raw reply handed to `reply`. */
  const send = <A>(
    fn: string,
    target: Target,
    args: Readonly<Record<string, unknown>>,
    blobs: ReadonlyArray<Uint8Array | string>,
    readOnly: boolean,
    binary: boolean,
    reply: (name: string, inCall: boolean, raw: unknown) => Effect.Effect<A, EngineError>,
    afterSend?: () => void,
    onRawReply?: (raw: unknown) => void
  ): Effect.Effect<A, EngineError> =>
    Effect.flatMap(nowArg, (now) => {
      const name = `ff_${fn}`
      const { argv, inCall, stages } = argvOf(fn, target, args, blobs, readOnly, now)
      const invoke = Effect.flatMap(
        client.fcall(name, target.base, argv, readOnly, target.keys, binary, afterSend, onRawReply),
        (raw) => reply(name, inCall, raw)
      )
      return stages.length === 0 ? invoke : Effect.zipRight(
        Effect.forEach(stages, ([key, blob]) => client.run("SET stage", (c) => c.set(key, blob, "PX", STAGE_TTL_MS)), {
          discard: true
        }),
        invoke
      )
    })

  const callEach: Plumbing["callEach"] = (fn, targets, args) => {
    // one call each, all at once (a group is at most the pass's fan-out)
    const one = Effect.forEach(targets, (target) => call(fn, target, args, [], true), { concurrency: "unbounded" })
    if (client.isCluster || targets.length < 2) return one
    return Effect.flatMap(nowArg, (now) => {
      const name = `ff_${fn}`
      const json = JSON.stringify(args)
      return Effect.flatMap(
        client.run(
          `FCALL_RO ${name} pipeline`,
          (c) => (c as Redis).pipeline(targets.map((t) => ["fcall_ro", name, "1", t.base, now, json])).exec()
        ),
        (results) => {
          if (results === null || results.length !== targets.length || results.some(([e]) => e !== null)) return one
          return Effect.forEach(results, ([, raw], i) => onReply(name, targets[i]!.partition, args, raw))
        }
      )
    })
  }

  const flowTarget = (p: number): Target => ({ base: keys.flow(p), partition: p })

  const dropHint = (lane: string, partition: number): Effect.Effect<void, EngineError> =>
    Effect.gen(function*() {
      yield* client.run("ZREM hint", (c) => c.zrem(keys.hint(lane), String(partition)))
      // re-check after the removal: a producer that added work meanwhile has added its hint before or after
      const env = yield* call("lane_head", flowTarget(partition), { lane }, [], true)
      const [head] = yield* decodeFields("ff_lane_head", LaneHead, env.fields)
      if (head !== "") {
        // The hint was away since the removal: a claim that read the hints meanwhile missed this
        // work, and that claim may have been the one made at the work's own wake-up. The lane is
        // woken again with the hint back (one pipeline: the hint first, as `applyWake` does).
        yield* client.run("ZADD hint + PUBLISH wake", (c) =>
          c.pipeline().zadd(keys.hint(lane), "LT", head, String(partition)).publish(keys.wakeChannel(lane), "1")
            .exec().then(pipelineErrors))
      }
    })

  return {
    settings,
    keys,
    client,
    flowTarget,
    nowArg,
    call,
    callBinary,
    callBinaryNow,
    callNow,
    textReply,
    binaryReply: (fn, args, raw) => readBinary(`ff_${fn}`, args, raw),
    callEach,
    registerLane,
    applyWake,
    dropHint
  }
}

/** An infrastructure error raised by the layer itself. */
export const layerError = (message: string): Transport =>
  new Transport({ backend: "valkey", kind: "other", retryable: false, message })
