/**
 * Identifiers of the engine and the partition math that places them (see
 * docs/design/ids.md).
 *
 * @since 0.1.0
 */
import { Context, DefaultServices, Effect, Either, ParseResult, Random, Schema } from "effect"
import { randomUUID } from "node:crypto"
import { quote } from "./internal/quote.js"

// ---------------------------------------------------------------------------
// UUIDs
// ---------------------------------------------------------------------------

const SIMPLE = /^[0-9a-f]{32}$/

/**
 * Normalises the forms a UUID parser accepts (hyphenated, simple, braced,
 * `urn:uuid:`) to the lowercase hyphenated form, or `undefined`.
 *
 * @since 0.1.0
 */
export const normalizeUuid = (input: string): string | undefined => {
  if (isCanonicalUuid(input)) return input
  let s = input.trim().toLowerCase()
  if (s.startsWith("urn:uuid:")) s = s.slice(9)
  if (s.startsWith("{") && s.endsWith("}")) s = s.slice(1, -1)
  if (isCanonicalUuid(s)) return s
  if (SIMPLE.test(s)) {
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`
  }
  return undefined
}

/**
 * Lowercase hyphenated 8-4-4-4-12 hex. Checked char by char: ids are checked on
 * every call, and this is several times cheaper than the equivalent regex.
 *
 * @since 0.1.0
 */
export const isCanonicalUuid = (s: string): boolean => s.length === 36 && isCanonicalUuidAt(s, 0)

/** Whether the 36 characters of `s` from `start` are a canonical UUID (the caller checked there are 36). */
const isCanonicalUuidAt = (s: string, start: number): boolean => {
  for (let i = 0; i < 36; i++) {
    const c = s.charCodeAt(start + i)
    if (i === 8 || i === 13 || i === 18 || i === 23) {
      if (c !== 45) return false
    } else if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) {
      return false
    }
  }
  return true
}

/**
 * A UUID in canonical form; other accepted spellings are normalised on decode.
 *
 * @since 0.1.0
 */
export const Uuid = Schema.transformOrFail(
  Schema.String,
  Schema.String.pipe(Schema.filter((s) => isCanonicalUuid(s) || "expected a canonical UUID")),
  {
    strict: true,
    decode: (s, _, ast) => {
      const n = normalizeUuid(s)
      return n === undefined ?
        Effect.fail(new ParseResult.Type(ast, s, `not a UUID: ${quote(s)}`)) :
        Effect.succeed(n)
    },
    encode: Effect.succeed
  }
)

const HEX = "0123456789abcdef"

const formatUuid = (bytes: ArrayLike<number>): string => {
  let out = ""
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) out += "-"
    const b = bytes[i]!
    out += HEX[b >> 4]! + HEX[b & 15]!
  }
  return out
}

/** The `Random` of Effect's default services (seeded once from `Math.random`). */
const liveRandom = Context.get(DefaultServices.liveServices, Random.Random)

/**
 * A random version-4 UUID, drawn from Effect's `Random` service so that tests
 * with a seeded `Random` get repeatable ids (under the default one, from
 * `crypto.randomUUID`: three draws of the service cost 20 times more, on every
 * submit).
 *
 * @since 0.1.0
 */
export const randomUuid: Effect.Effect<string> = Effect.randomWith((random) =>
  random === liveRandom ? Effect.sync(randomUUID) : Effect.zipWith(
    Effect.zip(random.next, random.next),
    random.next,
    ([a, b], c) => {
      // Three 53-bit draws give the 122 random bits of a v4 UUID.
      const bytes = new Array<number>(16)
      const fill = (x: number, from: number, count: number) => {
        let v = Math.floor(x * 2 ** 48)
        for (let i = 0; i < count; i++) {
          bytes[from + i] = v & 0xff
          v = Math.floor(v / 256)
        }
      }
      fill(a, 0, 6)
      fill(b, 6, 6)
      fill(c, 12, 4)
      bytes[6] = (bytes[6]! & 0x0f) | 0x40
      bytes[8] = (bytes[8]! & 0x3f) | 0x80
      return formatUuid(bytes)
    }
  )
)

/**
 * The 16 raw bytes (RFC 4122 order) of a canonical UUID.
 *
 * @since 0.1.0
 */
export const uuidBytes = (uuid: string): Uint8Array => {
  const hex = uuid.replace(/-/g, "")
  const out = new Uint8Array(16)
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const brandedUuid = <B extends string>(brand: B) => Uuid.pipe(Schema.brand(brand))

/** @since 0.1.0 */
export const FlowId = brandedUuid("FlowId")
/** @since 0.1.0 */
export type FlowId = typeof FlowId.Type
/** @since 0.1.0 */
export const EdgeId = brandedUuid("EdgeId")
/** @since 0.1.0 */
export type EdgeId = typeof EdgeId.Type
/** @since 0.1.0 */
export const BudgetId = brandedUuid("BudgetId")
/** @since 0.1.0 */
export type BudgetId = typeof BudgetId.Type
/** @since 0.1.0 */
export const QuotaPolicyId = brandedUuid("QuotaPolicyId")
/** @since 0.1.0 */
export type QuotaPolicyId = typeof QuotaPolicyId.Type
/** @since 0.1.0 */
export const LeaseId = brandedUuid("LeaseId")
/** @since 0.1.0 */
export type LeaseId = typeof LeaseId.Type
/** @since 0.1.0 */
export const AttemptId = brandedUuid("AttemptId")
/** @since 0.1.0 */
export type AttemptId = typeof AttemptId.Type
/** @since 0.1.0 */
export const SignalId = brandedUuid("SignalId")
/** @since 0.1.0 */
export type SignalId = typeof SignalId.Type
/** @since 0.1.0 */
export const WaitpointId = brandedUuid("WaitpointId")
/** @since 0.1.0 */
export type WaitpointId = typeof WaitpointId.Type
/** @since 0.1.0 */
export const SuspensionId = brandedUuid("SuspensionId")
/** @since 0.1.0 */
export type SuspensionId = typeof SuspensionId.Type

/** @since 0.1.0 */
export const newFlowId: Effect.Effect<FlowId> = randomUuid as Effect.Effect<FlowId>
/** @since 0.1.0 */
export const newEdgeId: Effect.Effect<EdgeId> = randomUuid as Effect.Effect<EdgeId>
/** @since 0.1.0 */
export const newBudgetId: Effect.Effect<BudgetId> = randomUuid as Effect.Effect<BudgetId>
/** @since 0.1.0 */
export const newQuotaPolicyId: Effect.Effect<QuotaPolicyId> = randomUuid as Effect.Effect<QuotaPolicyId>
/** @since 0.1.0 */
export const newLeaseId: Effect.Effect<LeaseId> = randomUuid as Effect.Effect<LeaseId>
/** @since 0.1.0 */
export const newAttemptId: Effect.Effect<AttemptId> = randomUuid as Effect.Effect<AttemptId>
/** @since 0.1.0 */
export const newSignalId: Effect.Effect<SignalId> = randomUuid as Effect.Effect<SignalId>
/** @since 0.1.0 */
export const newWaitpointId: Effect.Effect<WaitpointId> = randomUuid as Effect.Effect<WaitpointId>
/** @since 0.1.0 */
export const newSuspensionId: Effect.Effect<SuspensionId> = randomUuid as Effect.Effect<SuspensionId>

// ---------------------------------------------------------------------------
// Free-string ids and scalars
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const WorkerId = Schema.String.pipe(Schema.brand("WorkerId"))
/** @since 0.1.0 */
export type WorkerId = typeof WorkerId.Type
/** @since 0.1.0 */
export const WorkerInstanceId = Schema.String.pipe(Schema.brand("WorkerInstanceId"))
/** @since 0.1.0 */
export type WorkerInstanceId = typeof WorkerInstanceId.Type
/** @since 0.1.0 */
export const Namespace = Schema.String.pipe(Schema.brand("Namespace"))
/** @since 0.1.0 */
export type Namespace = typeof Namespace.Type
/** @since 0.1.0 */
export const WaitpointKey = Schema.String
/** @since 0.1.0 */
export const IdempotencyKey = Schema.String

/** Unsigned 64-bit counter carried as a safe JS integer. @since 0.1.0 */
export const LeaseEpoch = Schema.Int.pipe(Schema.nonNegative(), Schema.brand("LeaseEpoch"))
/** @since 0.1.0 */
export type LeaseEpoch = typeof LeaseEpoch.Type
/** Zero-based: the first attempt is 0 (see docs/design/ids.md#attempt-index). @since 0.1.0 */
export const AttemptIndex = Schema.Int.pipe(Schema.between(0, 0xffffffff), Schema.brand("AttemptIndex"))
/** @since 0.1.0 */
export type AttemptIndex = typeof AttemptIndex.Type
/** Milliseconds since the Unix epoch. @since 0.1.0 */
export const TimestampMs = Schema.Int
/** @since 0.1.0 */
export type TimestampMs = number

// ---------------------------------------------------------------------------
// LaneId
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export type LaneIdError =
  | { readonly _tag: "Empty" }
  | { readonly _tag: "TooLong"; readonly length: number }
  | { readonly _tag: "NonPrintable"; readonly byteIndex: number }

/** @since 0.1.0 */
export const checkLaneId = (s: string): LaneIdError | undefined => {
  if (s.length === 0) return { _tag: "Empty" }
  const bytes = Buffer.byteLength(s, "utf8")
  if (bytes > 64) return { _tag: "TooLong", length: bytes }
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c > 0x7e) return { _tag: "NonPrintable", byteIndex: Buffer.byteLength(s.slice(0, i), "utf8") }
  }
  return undefined
}

const laneIdMessage = (e: LaneIdError): string =>
  e._tag === "Empty" ? "lane id is empty" :
  e._tag === "TooLong" ? `lane id is ${e.length} bytes, more than 64` :
  `lane id has a non-printable byte at index ${e.byteIndex}`

/** A submission lane: 1–64 bytes of printable ASCII. @since 0.1.0 */
export const LaneId = Schema.String.pipe(
  Schema.filter((s) => {
    const e = checkLaneId(s)
    return e === undefined || laneIdMessage(e)
  }),
  Schema.brand("LaneId")
)
/** @since 0.1.0 */
export type LaneId = typeof LaneId.Type

// ---------------------------------------------------------------------------
// Partitions (CRC-16/XMODEM, the hash Valkey Cluster uses for slots)
// ---------------------------------------------------------------------------

const CRC_TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let j = 0; j < 8; j++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

/** @since 0.1.0 */
export const crc16 = (bytes: ArrayLike<number>): number => {
  let crc = 0
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) & 0xffff) ^ CRC_TABLE[((crc >> 8) ^ bytes[i]!) & 0xff]!
  return crc
}

/**
 * The partition counts of a deployment. They are fixed for its lifetime.
 *
 * @since 0.1.0
 */
export interface PartitionConfig {
  readonly numFlowPartitions: number
  readonly numBudgetPartitions: number
  readonly numQuotaPartitions: number
}

/** @since 0.1.0 */
export const defaultPartitionConfig: PartitionConfig = {
  numFlowPartitions: 256,
  numBudgetPartitions: 32,
  numQuotaPartitions: 32
}

/** @since 0.1.0 */
export const flowPartition = (flowId: FlowId, config: PartitionConfig = defaultPartitionConfig): number =>
  crc16(uuidBytes(flowId)) % config.numFlowPartitions

const laneCrc = new Map<string, number>()

/** @since 0.1.0 */
export const lanePartition = (laneId: LaneId, config: PartitionConfig = defaultPartitionConfig): number => {
  let crc = laneCrc.get(laneId)
  if (crc === undefined) {
    crc = crc16(Buffer.from(laneId, "utf8"))
    if (laneCrc.size < 10_000) laneCrc.set(laneId, crc)
  }
  return crc % config.numFlowPartitions
}

/** @since 0.1.0 */
export const budgetPartition = (budgetId: BudgetId, config: PartitionConfig = defaultPartitionConfig): number =>
  crc16(uuidBytes(budgetId)) % config.numBudgetPartitions

/** @since 0.1.0 */
export const quotaPartition = (quotaId: QuotaPolicyId, config: PartitionConfig = defaultPartitionConfig): number =>
  crc16(uuidBytes(quotaId)) % config.numQuotaPartitions

/** @since 0.1.0 */
export type PartitionFamily = "Flow" | "Budget" | "Quota"

const FAMILY_PREFIX: Record<PartitionFamily, string> = { Flow: "fp", Budget: "b", Quota: "q" }

/** @since 0.1.0 */
export type PartitionKeyError =
  | { readonly _tag: "MissingBraces" }
  | { readonly _tag: "MalformedBody" }
  | { readonly _tag: "UnknownFamilyPrefix"; readonly prefix: string }
  | { readonly _tag: "InvalidIndex"; readonly text: string }

/** A parsed partition key such as `{fp:7}`. @since 0.1.0 */
export interface Partition {
  readonly family: PartitionFamily
  readonly index: number
}

/** @since 0.1.0 */
export const parsePartitionKey = (key: string): Either.Either<Partition, PartitionKeyError> => {
  if (!key.startsWith("{") || !key.endsWith("}")) return Either.left({ _tag: "MissingBraces" })
  const body = key.slice(1, -1)
  const colon = body.indexOf(":")
  if (colon <= 0 || colon !== body.lastIndexOf(":")) return Either.left({ _tag: "MalformedBody" })
  const prefix = body.slice(0, colon)
  const text = body.slice(colon + 1)
  const family = prefix === "fp" ? "Flow" : prefix === "b" ? "Budget" : prefix === "q" ? "Quota" : undefined
  if (family === undefined) return Either.left({ _tag: "UnknownFamilyPrefix", prefix })
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 0xffff) return Either.left({ _tag: "InvalidIndex", text })
  return Either.right({ family, index: Number(text) })
}

/** @since 0.1.0 */
export const partitionKeyErrorMessage = (e: PartitionKeyError): string =>
  e._tag === "MissingBraces" ? "missing braces" :
  e._tag === "MalformedBody" ? "malformed body" :
  e._tag === "UnknownFamilyPrefix" ? `unknown family prefix ${quote(e.prefix)}` :
  `invalid index ${quote(e.text)}`

/** @since 0.1.0 */
export const PartitionKey = Schema.String.pipe(
  Schema.filter((s) => Either.match(parsePartitionKey(s), { onLeft: partitionKeyErrorMessage, onRight: () => true })),
  Schema.brand("PartitionKey")
)
/** @since 0.1.0 */
export type PartitionKey = typeof PartitionKey.Type

/** @since 0.1.0 */
export const partitionKey = (family: PartitionFamily, index: number): PartitionKey =>
  `{${FAMILY_PREFIX[family]}:${index}}` as PartitionKey

// ---------------------------------------------------------------------------
// ExecutionId: "{fp:N}:<uuid>"
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export type ExecutionIdError =
  | { readonly _tag: "MissingTag" }
  | { readonly _tag: "InvalidPartitionIndex"; readonly text: string }
  | { readonly _tag: "InvalidUuid"; readonly text: string }

/**
 * An execution id is accepted in its one canonical spelling only: `{fp:N}:<uuid>`
 * with `N` in decimal without leading zeros and the UUID in lower-case hyphenated
 * form (`normalizeUuid` converts other spellings of a UUID).
 *
 * @since 0.1.0
 */
export const checkExecutionId = (s: string): ExecutionIdError | undefined =>
  executionIdPartitionOf(s) >= 0 ? undefined : executionIdError(s)

/**
 * The `N` of a canonical execution id in one pass over its characters (no slice, no regex: every
 * id of every call is checked), or -1 when `s` is not one (`executionIdError` says why).
 */
const executionIdPartitionOf = (s: string): number => {
  if (
    s.length < 4 + 1 + 2 + 36 || s.charCodeAt(0) !== 123 || s.charCodeAt(1) !== 102 || s.charCodeAt(2) !== 112 ||
    s.charCodeAt(3) !== 58
  ) return -1
  let n = 0
  let j = 4
  for (; j < s.length; j++) {
    const c = s.charCodeAt(j)
    if (c < 48 || c > 57) break
    n = n * 10 + (c - 48)
  }
  const digits = j - 4
  if (digits === 0 || digits > 5 || (digits > 1 && s.charCodeAt(4) === 48) || n > 0xffff) return -1
  if (s.charCodeAt(j) !== 125 || s.charCodeAt(j + 1) !== 58) return -1
  return s.length - (j + 2) === 36 && isCanonicalUuidAt(s, j + 2) ? n : -1
}

/** Why `s` is not a canonical execution id (`undefined` if it is one). */
const executionIdError = (s: string): ExecutionIdError | undefined => {
  if (!s.startsWith("{fp:")) return { _tag: "MissingTag" }
  const close = s.indexOf("}:", 4)
  if (close < 0) return { _tag: "MissingTag" }
  const text = s.slice(4, close)
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text) || Number(text) > 0xffff) return { _tag: "InvalidPartitionIndex", text }
  const uuid = s.slice(close + 2)
  if (!isCanonicalUuid(uuid)) return { _tag: "InvalidUuid", text: uuid }
  return undefined
}

const executionIdMessage = (e: ExecutionIdError): string =>
  e._tag === "MissingTag" ? "execution id must look like {fp:N}:<uuid>" :
  e._tag === "InvalidPartitionIndex" ? `invalid partition index ${quote(e.text)}` :
  `not a canonical (lower-case, hyphenated) uuid: ${quote(e.text)}`

/** @since 0.1.0 */
export const ExecutionId = Schema.String.pipe(
  Schema.filter((s) => {
    const e = checkExecutionId(s)
    return e === undefined || executionIdMessage(e)
  }),
  Schema.brand("ExecutionId")
)
/** @since 0.1.0 */
export type ExecutionId = typeof ExecutionId.Type

/** The `N` of `{fp:N}`. @since 0.1.0 */
export const executionPartition = (id: ExecutionId): number => {
  // the digits read in place; anything else (not an id this module checked) as before
  let n = 0
  let j = 4
  for (; j < 10 && j < id.length; j++) {
    const c = id.charCodeAt(j)
    if (c < 48 || c > 57) break
    n = n * 10 + (c - 48)
  }
  return j > 4 && id.charCodeAt(j) === 125 && id.charCodeAt(j + 1) === 58 ? n : Number(id.slice(4, id.indexOf("}:", 4)))
}

/** The hash tag `{fp:N}` an execution lives under. @since 0.1.0 */
export const executionHashTag = (id: ExecutionId): string => id.slice(0, id.indexOf("}:", 4) + 1)

const mint = (partition: number, uuid: string): ExecutionId => `{fp:${partition}}:${uuid}` as ExecutionId

/** An execution id co-located with `flowId`. @since 0.1.0 */
export const executionIdForFlow = (flowId: FlowId, config: PartitionConfig = defaultPartitionConfig) =>
  Effect.map(randomUuid, (uuid) => mint(flowPartition(flowId, config), uuid))

/** An execution id for a standalone execution on `laneId`. @since 0.1.0 */
export const executionIdSolo = (laneId: LaneId, config: PartitionConfig = defaultPartitionConfig) =>
  Effect.map(randomUuid, (uuid) => mint(lanePartition(laneId, config), uuid))

/** @since 0.1.0 */
export const deterministicExecutionIdForFlow = (
  flowId: FlowId,
  uuid: string,
  config: PartitionConfig = defaultPartitionConfig
): ExecutionId => mint(flowPartition(flowId, config), normalizeUuid(uuid) ?? uuid)

/** @since 0.1.0 */
export const deterministicExecutionIdSolo = (
  laneId: LaneId,
  uuid: string,
  config: PartitionConfig = defaultPartitionConfig
): ExecutionId => mint(lanePartition(laneId, config), normalizeUuid(uuid) ?? uuid)

/** `fresh()` binding: `{ waitpointId, waitpointKey: "wpk:<id>" }`. @since 0.1.0 */
export const freshWaitpointBinding = Effect.map(newWaitpointId, (waitpointId) => ({
  waitpointId,
  waitpointKey: `wpk:${waitpointId}`
}))

/** Makes branded values from literals already known to be valid. @since 0.1.0 */
export const unsafe = {
  laneId: (s: string) => s as LaneId,
  workerId: (s: string) => s as WorkerId,
  workerInstanceId: (s: string) => s as WorkerInstanceId,
  namespace: (s: string) => s as Namespace
}
