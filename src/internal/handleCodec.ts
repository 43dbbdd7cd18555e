/**
 * The opaque handle bytes (v2 layout, docs/design/executions.md#handles):
 * magic 0x02, wire version 0x01, a backend tag byte, then little-endian
 * integers and u32-length UTF-8 strings. No trailing bytes.
 */
import { Either } from "effect"
import { checkExecutionId, isCanonicalUuid } from "../Ids.js"
import type { AttemptId, AttemptIndex, ExecutionId, LaneId, LeaseEpoch, LeaseId, WorkerInstanceId } from "../Ids.js"
import type { BackendTag, Handle, HandleKind, HandlePayload } from "../Model.js"
import { writeAscii } from "./utf8.js"

const TAG_BYTE: Record<BackendTag, number> = { valkey: 0x01, postgres: 0x02, memory: 0x03 }
const BYTE_TAG: Record<number, BackendTag> = { 0x01: "valkey", 0x02: "postgres", 0x03: "memory" }

const decoder = new TextDecoder("utf-8", { fatal: true })
const utf8 = new TextEncoder()

/** The bytes of `p`, in a fresh buffer of `Bytes` (the caller keeps its payload with it). */
const encodeInto = (backend: BackendTag, p: HandlePayload): Bytes => {
  const { executionId, attemptId, leaseId, laneId, workerInstanceId } = p
  // every string is ASCII in the common case (ids, lanes), where a character is a byte: one pass
  // writes them; otherwise the exact UTF-8 sizes are measured and written
  const ascii = 3 + 4 + 8 + 8 + 5 * 4 + executionId.length + attemptId.length + leaseId.length + laneId.length +
    workerInstanceId.length
  const out = fresh(ascii)
  if (!writeAll(out, p, writeAsciiString)) return encodeUtf8(backend, p)
  out[2] = TAG_BYTE[backend]
  return out
}

/** `size` bytes of `Bytes`, cut from Node's buffer pool (no backing store of its own per handle). */
const fresh = (size: number): Bytes => {
  const b = Buffer.allocUnsafe(size)
  return new Bytes(b.buffer, b.byteOffset, b.byteLength)
}

/** `encodeInto` for strings outside ASCII: each string's UTF-8 length measured first. */
const encodeUtf8 = (backend: BackendTag, p: HandlePayload): Bytes => {
  let size = 3 + 4 + 8 + 8
  for (const s of [p.executionId, p.attemptId, p.leaseId, p.laneId, p.workerInstanceId]) {
    size += 4 + Buffer.byteLength(s, "utf8")
  }
  const out = fresh(size)
  writeAll(out, p, writeUtf8String)
  out[2] = TAG_BYTE[backend]
  return out
}

/** Writes `s` at `at` as its u32 length and its bytes; returns the offset after it, or -1 (not written). */
type WriteString = (out: Uint8Array, at: number, s: string) => number

/** `v` (below 2^32) as four little-endian bytes at `at`. */
const u32 = (out: Uint8Array, at: number, v: number): void => {
  out[at] = v & 0xff
  out[at + 1] = (v >>> 8) & 0xff
  out[at + 2] = (v >>> 16) & 0xff
  out[at + 3] = (v >>> 24) & 0xff
}

const writeAsciiString: WriteString = (out, at, s) => {
  const n = writeAscii(out, at + 4, s)
  if (n < 0) return -1
  u32(out, at, n)
  return at + 4 + n
}

const writeUtf8String: WriteString = (out, at, s) => {
  const { written } = utf8.encodeInto(s, out.subarray(at + 4))
  u32(out, at, written)
  return at + 4 + written
}

/** The v2 layout of `p` into `out` (its tag byte apart); false when a string did not fit `write`. */
const writeAll = (out: Uint8Array, p: HandlePayload, write: WriteString): boolean => {
  out[0] = 0x02
  out[1] = 0x01
  let at = write(out, 3, p.executionId)
  if (at < 0) return false
  u32(out, at, p.attemptIndex)
  at = write(out, at + 4, p.attemptId)
  if (at < 0) return false
  at = write(out, at, p.leaseId)
  if (at < 0) return false
  u32(out, at, p.leaseEpoch % 0x100000000)
  u32(out, at + 4, Math.floor(p.leaseEpoch / 0x100000000))
  u32(out, at + 8, p.leaseTtlMs % 0x100000000)
  u32(out, at + 12, Math.floor(p.leaseTtlMs / 0x100000000))
  at = write(out, at + 16, p.laneId)
  if (at < 0) return false
  at = write(out, at, p.workerInstanceId)
  return at === out.length
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
