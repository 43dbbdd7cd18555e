/** The streams of attempts: appending frames (and the summary document), reading and tailing them. */
import { Option } from "effect"
import { invalidInput, state as stateError } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import type * as M from "../../Model.js"
import type { HandleRef } from "../boundary.js"
import { applyPatch, parsePatch } from "../mergePatch.js"
import { bytesOver, overLimit, parseStreamId } from "../validation.js"
import { err, ok, type R } from "./helpers.js"
import type { Stream, StreamEntry } from "./state.js"
import { type Store, streamKey } from "./store.js"

const MAX_DURABLE_ENTRIES = 10_000
const SUMMARY_TAIL_ENTRIES = 64

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/**
 * A read page of `entries` (in stream order): at most `countLimit` frames and `Limits.readPageFrames`,
 * and it stops before the frame that would take its payload bytes past `Limits.readPageBytes` (never
 * empty). `next` is the first frame the budget left out (not one `countLimit` left out).
 */
const readPage = (entries: Iterable<StreamEntry>, countLimit: number) => {
  const frames: Array<StreamEntry> = []
  let bytes = 0
  let next: string | undefined
  for (const x of entries) {
    if (frames.length >= countLimit) break
    if (frames.length >= Limits.readPageFrames || (frames.length > 0 && bytes + x.size > Limits.readPageBytes)) {
      next = x.id
      break
    }
    frames.push(x)
    bytes += x.size
  }
  return { frames, next }
}

export const appendFrame = (store: Store, now: number, h: HandleRef, frame: M.Frame): R<M.AppendFrameOutcome> => {
  const p = h.payload
  const e = store.executions.get(p.executionId)
  if (e === undefined || e.phase !== "active") return err(stateError("StreamClosed"))
  if (
    e.ownership !== "leased" || (e.leaseExpiresAt !== undefined && e.leaseExpiresAt <= now) ||
    e.currentAttemptIndex !== p.attemptIndex || e.leaseId !== p.leaseId || e.leaseEpoch !== p.leaseEpoch
  ) return err(stateError("StaleOwnerCannotAppend"))
  const key = streamKey(e.id, p.attemptIndex)
  const existing = store.streams.get(key)
  const live = existing !== undefined && existing.expiresAt !== undefined && existing.expiresAt <= now ?
    undefined :
    existing
  if (live?.closedAt !== undefined) return err(stateError("StreamClosed"))
  const text = decoder.decode(frame.bytes)
  let patch: ReturnType<typeof parsePatch> | undefined
  let document: Record<string, unknown> | undefined
  if (frame.mode._tag === "DurableSummary") {
    patch = parsePatch(text)
    if (typeof patch === "string") return err(invalidInput(patch))
    document = applyPatch(live?.summary?.document ?? {}, patch)
    if (bytesOver(JSON.stringify(document), Limits.summaryDocumentBytes)) {
      return err(overLimit("append_frame", "summary document", "summaryDocumentBytes", "bytes"))
    }
  }
  const s: Stream = live ?? {
    executionId: e.id,
    attemptIndex: p.attemptIndex,
    attemptId: p.attemptId,
    createdAt: now,
    entries: [],
    closedAt: undefined,
    closedReason: undefined,
    frameCount: 0,
    totalBytes: 0,
    lastMs: 0,
    lastSeq: 0,
    lastFrameAt: undefined,
    hasDurableFrame: false,
    expiresAt: undefined,
    emaRate: undefined,
    summary: undefined
  }
  if (live === undefined) store.streams.set(key, s)
  // Ids are "<ms>-<seq>", strictly increasing and never "0-0" (the from-the-beginning cursor).
  const ms = Math.max(now, s.lastMs)
  const seq = ms === s.lastMs ? s.lastSeq + 1 : 0
  const id = `${ms}-${seq}`
  const fields: Record<string, string> = {
    frame_type: frame.frameType === "" ? frame.kind : frame.frameType,
    ts: String(now),
    payload: text,
    encoding: "utf8",
    source: "worker",
    mode: frame.mode._tag === "Durable" ? "durable" : frame.mode._tag === "DurableSummary" ? "summary" : "best_effort"
  }
  if (frame.correlationId !== undefined) fields["correlation_id"] = frame.correlationId
  let summaryVersion: number | undefined
  if (document !== undefined) {
    const prev = s.summary
    s.summary = {
      document,
      version: (prev?.version ?? 0) + 1,
      firstAppliedMs: prev?.firstAppliedMs ?? now,
      lastUpdatedMs: now
    }
    summaryVersion = s.summary.version
    fields["summary_version"] = String(summaryVersion)
  }
  if (frame.mode._tag === "BestEffortLive") fields["ttl_ms"] = String(frame.mode.config.ttlMs)
  s.entries.push({ id, ms, seq, fields, size: frame.bytes.length })
  s.lastMs = ms
  s.lastSeq = seq
  s.frameCount += 1
  s.totalBytes += frame.bytes.length
  const previousFrameAt = s.lastFrameAt
  s.lastFrameAt = now
  if (frame.mode._tag === "BestEffortLive") {
    const cfg = frame.mode.config
    const floor = cfg.maxlenFloor ?? 64
    const ceiling = cfg.maxlenCeiling ?? 16_384
    const alpha = Math.min(1, Math.max(Number.MIN_VALUE, cfg.emaAlpha ?? 0.2))
    if (previousFrameAt !== undefined && s.emaRate !== undefined) {
      const instant = 1000 / Math.max(1, now - previousFrameAt)
      s.emaRate = alpha * instant + (1 - alpha) * s.emaRate
    } else {
      s.emaRate = (floor / 2) / (cfg.ttlMs / 1000)
    }
    const k = Math.min(ceiling, Math.max(floor, Math.ceil(s.emaRate * (cfg.ttlMs / 1000) * 2)))
    if (s.entries.length > k) s.entries = s.entries.slice(s.entries.length - k)
    if (!s.hasDurableFrame) s.expiresAt = now + 2 * cfg.ttlMs
  } else {
    s.hasDurableFrame = true
    s.expiresAt = undefined
    const cap = frame.mode._tag === "DurableSummary" ? SUMMARY_TAIL_ENTRIES : MAX_DURABLE_ENTRIES
    if (s.entries.length > cap) s.entries = s.entries.slice(s.entries.length - cap)
  }
  store.onAppend(key)
  return ok({
    streamId: id,
    frameCount: s.frameCount,
    ...(summaryVersion === undefined ? {} : { summaryVersion })
  })
}

const liveStream = (store: Store, now: number, id: Ids.ExecutionId, attemptIndex: number): Stream | undefined => {
  const s = store.streams.get(streamKey(id, attemptIndex))
  if (s === undefined) return undefined
  if (s.expiresAt !== undefined && s.expiresAt <= now) {
    store.streams.delete(streamKey(id, attemptIndex))
    return undefined
  }
  return s
}

const framesOf = (s: Stream | undefined, entries: ReadonlyArray<StreamEntry>): M.StreamFrames => {
  return {
    frames: entries.map((x) => ({ id: x.id, fields: { ...x.fields } })),
    ...(s?.closedAt === undefined ? {} : { closedAt: s.closedAt }),
    ...(s?.closedReason === undefined ? {} : { closedReason: s.closedReason })
  }
}

export const readStream = (store: Store, now: number, args: M.ReadStreamArgs): R<M.StreamFrames> => {
  const s = liveStream(store, now, args.executionId, args.attemptIndex)
  if (s === undefined) return ok({ frames: [] })
  const cmp = (x: StreamEntry, id: string) => {
    const [ms, seq] = parseStreamId(id)
    return x.ms !== ms ? x.ms - ms : x.seq - seq
  }
  const inRange = function*(): Generator<StreamEntry> {
    for (const x of s.entries) {
      if (args.from._tag === "At" && cmp(x, args.from.id) < 0) continue
      if (args.from._tag === "End" && x !== s.entries[s.entries.length - 1]) continue
      if (args.to._tag === "At" && cmp(x, args.to.id) > 0) break
      if (args.to._tag === "Start" && x !== s.entries[0]) break
      yield x
    }
  }
  const page = readPage(inRange(), args.countLimit)
  return ok({ ...framesOf(s, page.frames), ...(page.next === undefined ? {} : { nextFrom: page.next }) })
}

export const tailOnce = (store: Store, now: number, args: M.TailStreamArgs): M.StreamFrames => {
  const s = liveStream(store, now, args.executionId, args.attemptIndex)
  if (s === undefined) return { frames: [] }
  const after = args.after._tag === "At" ? parseStreamId(args.after.id) : [0, -1] as const
  const visible = function*(): Generator<StreamEntry> {
    for (const x of s.entries) {
      if (x.ms < after[0] || (x.ms === after[0] && x.seq <= after[1])) continue
      if (args.visibility === "exclude_best_effort" && x.fields["mode"] === "best_effort") continue
      yield x
    }
  }
  return framesOf(s, readPage(visible(), args.countLimit).frames)
}

export const readSummary = (store: Store, now: number, args: M.StreamRef): R<Option.Option<M.SummaryDocument>> => {
  const s = liveStream(store, now, args.executionId, args.attemptIndex)
  if (s?.summary === undefined || s.summary.version === 0) return ok(Option.none())
  return ok(Option.some({
    documentJson: encoder.encode(JSON.stringify(s.summary.document)),
    version: s.summary.version,
    patchKind: "json-merge-patch",
    lastUpdatedMs: s.summary.lastUpdatedMs,
    firstAppliedMs: s.summary.firstAppliedMs
  }))
}
