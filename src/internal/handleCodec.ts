/**
 * The opaque handle bytes (v2 layout, docs/design/executions.md#handles):
 * magic 0x02, wire version 0x01, a backend tag byte, then little-endian
 * integers and u32-length UTF-8 strings. No trailing bytes.
 */
import { Either } from "effect"
import { checkExecutionId, isCanonicalUuid } from "../Ids.js"
import type { AttemptId, AttemptIndex, ExecutionId, LaneId, LeaseEpoch, LeaseId, WorkerInstanceId } from "../Ids.js"
import type { BackendTag, Handle, HandleKind, HandlePayload } from "../Model.js"

const TAG_BYTE: Record<BackendTag, number> = { valkey: 0x01, postgres: 0x02, memory: 0x03 }
const BYTE_TAG: Record<number, BackendTag> = { 0x01: "valkey", 0x02: "postgres", 0x03: "memory" }

const decoder = new TextDecoder("utf-8", { fatal: true })

/** The bytes of `p`, in a fresh buffer of `Bytes` (the caller keeps its payload with it). */
const encodeInto = (backend: BackendTag, p: HandlePayload): Bytes => {
  const strings = [p.executionId, p.attemptId, p.leaseId, p.laneId, p.workerInstanceId]
  let size = 3 + 4 + 8 + 8
  for (const s of strings) size += 4 + Buffer.byteLength(s, "utf8")
  const out = Buffer.allocUnsafe(size)
  out[0] = 0x02
  out[1] = 0x01
  out[2] = TAG_BYTE[backend]
  let at = 3
  const str = (s: string) => {
    const n = out.write(s, at + 4, "utf8")
    out.writeUInt32LE(n, at)
    at += 4 + n
  }
  const u64 = (v: number) => {
    out.writeUInt32LE(v % 0x100000000, at)
    out.writeUInt32LE(Math.floor(v / 0x100000000), at + 4)
    at += 8
  }
  str(p.executionId)
  out.writeUInt32LE(p.attemptIndex, at)
  at += 4
  str(p.attemptId)
  str(p.leaseId)
  u64(p.leaseEpoch)
  u64(p.leaseTtlMs)
  str(p.laneId)
  str(p.workerInstanceId)
  return new Bytes(out.buffer, out.byteOffset, out.byteLength)
}

export const encodePayload = (backend: BackendTag, p: HandlePayload): Uint8Array => encodeInto(backend, p)

/** The payload of plain bytes decoded here (a copy of issued bytes, bytes from elsewhere), hidden on them. */
const knownPayload = Symbol("flowfabric-effect/handlePayload")

/**
 * Handle bytes this process issued keep their payload in a private field (a property defined on
 * plain bytes costs several times more per claim, a WeakMap entry more still); plain bytes decoded
 * here keep it in a hidden property.
 * Bytes changed in place after that still decode as they were issued; every backend fences a
 * handle against its store, so the most such a change can do is present a handle the engine
 * itself issued. Copies of the bytes are decoded afresh.
 */
class Bytes extends Uint8Array {
  #payload: HandlePayload | undefined = undefined
  static remember(bytes: Uint8Array, payload: HandlePayload): void {
    if (#payload in bytes) (bytes as Bytes).#payload = payload
    else if (Object.isExtensible(bytes)) Object.defineProperty(bytes, knownPayload, { value: payload })
  }
  static payloadOf(bytes: Uint8Array): HandlePayload | undefined {
    return #payload in bytes ?
      (bytes as Bytes).#payload :
      (bytes as { readonly [knownPayload]?: HandlePayload })[knownPayload]
  }
}

/** `payload` is kept as the decoded form of the new bytes: callers hand in a fresh object. */
export const makeHandle = (backend: BackendTag, kind: HandleKind, payload: HandlePayload): Handle => {
  const opaque = encodeInto(backend, payload)
  Bytes.remember(opaque, payload)
  return { backend, kind, opaque }
}

export type DecodeError =
  | { readonly _tag: "OtherBackend"; readonly actual: string; readonly embedded: boolean }
  | { readonly _tag: "Corrupt"; readonly detail: string }

class Reader {
  at = 3
  readonly view: DataView
  constructor(readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  }
  need(n: number): void {
    if (this.at + n > this.bytes.length) throw new Error("truncated")
  }
  u32(): number {
    this.need(4)
    const v = this.view.getUint32(this.at, true)
    this.at += 4
    return v
  }
  u64(): number {
    this.need(8)
    const lo = this.view.getUint32(this.at, true)
    const hi = this.view.getUint32(this.at + 4, true)
    this.at += 8
    if (hi > 0x1fffff) throw new Error("u64 out of range")
    return hi * 0x100000000 + lo
  }
  str(): string {
    const n = this.u32()
    this.need(n)
    const s = decoder.decode(this.bytes.subarray(this.at, this.at + n))
    this.at += n
    return s
  }
}

/** Decodes a handle addressed to `expected`, checking the tag first. */
export const decodeHandle = (expected: BackendTag, handle: Handle): Either.Either<HandlePayload, DecodeError> => {
  if (handle.backend !== expected) return Either.left({ _tag: "OtherBackend", actual: handle.backend, embedded: false })
  const bytes = handle.opaque
  if (!(bytes instanceof Uint8Array) || bytes.length < 3) return Either.left({ _tag: "Corrupt", detail: "truncated" })
  if (bytes[0] !== 0x02) return Either.left({ _tag: "Corrupt", detail: `bad magic ${bytes[0]}` })
  if (bytes[1] !== 0x01) return Either.left({ _tag: "Corrupt", detail: `bad wire version ${bytes[1]}` })
  const embedded = BYTE_TAG[bytes[2]!]
  if (embedded === undefined) return Either.left({ _tag: "Corrupt", detail: `bad backend tag ${bytes[2]}` })
  if (embedded !== expected) return Either.left({ _tag: "OtherBackend", actual: embedded, embedded: true })
  const known = Bytes.payloadOf(bytes)
  if (known !== undefined) return Either.right(known)
  try {
    const r = new Reader(bytes)
    const executionId = r.str()
    const attemptIndex = r.u32()
    const attemptId = r.str()
    const leaseId = r.str()
    const leaseEpoch = r.u64()
    const leaseTtlMs = r.u64()
    const laneId = r.str()
    const workerInstanceId = r.str()
    if (r.at !== bytes.length) return Either.left({ _tag: "Corrupt", detail: "trailing bytes" })
    if (checkExecutionId(executionId) !== undefined) {
      return Either.left({ _tag: "Corrupt", detail: `bad execution id ${JSON.stringify(executionId)}` })
    }
    if (!isCanonicalUuid(attemptId) || !isCanonicalUuid(leaseId)) {
      return Either.left({ _tag: "Corrupt", detail: "bad attempt or lease id" })
    }
    const payload: HandlePayload = {
      executionId: executionId as ExecutionId,
      attemptIndex: attemptIndex as AttemptIndex,
      attemptId: attemptId as AttemptId,
      leaseId: leaseId as LeaseId,
      leaseEpoch: leaseEpoch as LeaseEpoch,
      leaseTtlMs,
      laneId: laneId as LaneId,
      workerInstanceId: workerInstanceId as WorkerInstanceId
    }
    Bytes.remember(bytes, payload)
    return Either.right(payload)
  } catch (e) {
    return Either.left({ _tag: "Corrupt", detail: e instanceof Error ? e.message : String(e) })
  }
}
