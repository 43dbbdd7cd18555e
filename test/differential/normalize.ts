/**
 * JSON values and their normalisation: backend-minted ids and values become placeholders in
 * order of first appearance, timestamps become `T+<ms since the sequence start>`, so that two
 * engines' results compare as text.
 */
import { Duration, Either, Option } from "effect"
import { decodeHandle } from "../../src/internal/handleCodec.js"
import type * as M from "../../src/Model.js"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g
const EPOCH_MS_RE = /(?<![\d])\d{13}(?![\d])/g
const STREAM_ID_RE = /^\d+-\d+$/
/** Timestamps are within this distance of the run's base time; other integers are left alone. */
const TIME_WINDOW = 100_000_000_000

const uuidCategory = (key: string | undefined): string => {
  switch (key) {
    case "leaseId":
    case "expectedLeaseId":
      return "lease"
    case "attemptId":
      return "attempt"
    case "waitpointId":
    case "currentWaitpoint":
    case "nextCursor":
      return "wp"
    default:
      return "id"
  }
}

const textDecoder = new TextDecoder()

/**
 * Replaces backend-specific values by stable placeholders (ordinal of first appearance, per
 * category) and timestamps by `T+<ms since base>`. Object keys are visited in sorted order, so
 * two structurally equal results get the same placeholders.
 */
export class Normalizer {
  private readonly placeholders = new Map<string, string>()
  private readonly counters = new Map<string, number>()
  /** Stream entry ids are per stream: they are mapped within this scope (`<execution>:<attempt>`). */
  private streamScope = ""

  /** Runs `f` with stream ids scoped to one stream. */
  withStream<A>(scope: string, f: () => A): A {
    const previous = this.streamScope
    this.streamScope = scope
    try {
      return f()
    } finally {
      this.streamScope = previous
    }
  }

  constructor(readonly base: number, readonly known: ReadonlySet<string>) {}

  private placeholder(category: string, raw: string): string {
    const existing = this.placeholders.get(raw)
    if (existing !== undefined) return existing
    const n = this.counters.get(category) ?? 0
    this.counters.set(category, n + 1)
    const p = `<${category}#${n}>`
    this.placeholders.set(raw, p)
    return p
  }

  time(ms: number): string {
    const d = ms - this.base
    return d >= 0 ? `T+${d}` : `T${d}`
  }

  string(s: string, key: string | undefined): string {
    if (key === "streamId" || (key === "id" && STREAM_ID_RE.test(s))) {
      return this.placeholder("stream", `${this.streamScope}|${s}`)
    }
    if (key === "waitpointToken" || key === "hmacToken") return this.placeholder("token", s)
    if (key === "tokenFingerprint") return this.placeholder("fingerprint", s)
    if (key === "grantKey") return this.placeholder("grant", s)
    return s
      .replace(UUID_RE, (u) => (this.known.has(u) ? u : this.placeholder(uuidCategory(key), u)))
      .replace(EPOCH_MS_RE, (digits) => {
        const n = Number(digits)
        return Math.abs(n - this.base) <= TIME_WINDOW ? this.time(n) : digits
      })
  }

  handle(h: M.Handle): Json {
    const decoded = decodeHandle(h.backend, h)
    if (Either.isLeft(decoded)) return { handleKind: h.kind, undecodable: decoded.left._tag }
    return this.value({ handleKind: h.kind, ...decoded.right }, undefined)
  }

  value(v: unknown, key: string | undefined): Json {
    if (v === undefined || v === null) return null
    switch (typeof v) {
      case "boolean":
        return v
      case "number":
        return Number.isInteger(v) && Math.abs(v - this.base) <= TIME_WINDOW ? this.time(v) : v
      case "bigint":
        return `${v}n`
      case "string":
        return this.string(v, key)
      case "function":
      case "symbol":
        return `<${typeof v}>`
      default:
        break
    }
    if (v instanceof Uint8Array) return `bytes:${textDecoder.decode(v)}`
    if (Array.isArray(v)) return v.map((x: unknown) => this.value(x, key))
    if (Option.isOption(v)) {
      return Option.isSome(v) ? { Some: this.value(v.value, key) } : "None"
    }
    if (Duration.isDuration(v)) return `${Duration.toMillis(v)}ms`
    if (isHandle(v)) return this.handle(v)
    const out: Record<string, Json> = {}
    const record = v as Readonly<Record<string, unknown>>
    for (const k of Object.keys(record).sort()) {
      const x = record[k]
      if (x === undefined || typeof x === "function") continue
      out[k] = this.value(x, k)
    }
    return out
  }
}

const isHandle = (v: unknown): v is M.Handle =>
  typeof v === "object" && v !== null && "backend" in v && "kind" in v && "opaque" in v &&
  v.opaque instanceof Uint8Array

/** A deterministic JSON text with sorted keys (the comparison key of a value). */
export const stableStringify = (v: Json): string => {
  if (v === null || typeof v !== "object") return JSON.stringify(v)
  if (Array.isArray(v)) return `[${(v as ReadonlyArray<Json>).map(stableStringify).join(",")}]`
  const o = v as { readonly [key: string]: Json }
  return `{${
    Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stableStringify(o[k]!)}`).join(",")
  }}`
}
