/**
 * Attempt streams over Postgres: append a frame (durable, summary patch, best-effort live), read a
 * range, tail (blocking: a poll per interval, or at once on a write of this process), and read the
 * summary document.
 */
import { Deferred, Duration, Effect, Option, Ref, Schema } from "effect"
import type { CoreArea } from "../../internal/boundary.js"
import { parseStreamId } from "../../internal/validation.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { bigint, bool, int, jsonb, realSleep, text } from "./client.js"
import { type CoreContext, type Fx, handleArgs, utf8Fatal } from "./context.js"

const SummaryRow = Schema.Struct({
  documentJson: Schema.String,
  version: Schema.Int,
  patchKind: M.PatchKind,
  lastUpdatedMs: Schema.Int,
  firstAppliedMs: Schema.Int
})

const utf8Lossy = new TextDecoder("utf-8")
const utf8Encoder = new TextEncoder()

const modeWire = (mode: M.StreamMode): "durable" | "summary" | "best_effort" =>
  mode._tag === "Durable" ? "durable" : mode._tag === "DurableSummary" ? "summary" : "best_effort"

const jsonDepth = (v: unknown): number => {
  if (typeof v !== "object" || v === null) return 0
  let max = 0
  for (const child of Array.isArray(v) ? v : Object.values(v as Record<string, unknown>)) {
    max = Math.max(max, jsonDepth(child))
  }
  return max + 1
}

/** The patch of a `DurableSummary` frame, or the reason it is rejected. */
const parsePatch = (bytes: Uint8Array): { readonly patch: unknown; readonly error: string | null } => {
  let value: unknown
  try {
    value = JSON.parse(utf8Fatal.decode(bytes))
  } catch {
    return { patch: null, error: "patch payload is not valid JSON" }
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { patch: null, error: "patch must be a JSON object" }
  }
  if (jsonDepth(value) > 16) return { patch: null, error: "patch_depth_exceeded" }
  return { patch: value, error: null }
}

/** A cursor as a bound: `[ts, seq, pinned]`; `pinned` = the last (lower) / first (upper) entry. */
const bound = (c: M.StreamCursor, pinned: M.StreamCursor["_tag"]): readonly [number | null, number | null, boolean] => {
  if (c._tag === "At") {
    const [ms, seq] = parseStreamId(c.id)
    return [ms, seq, false]
  }
  return [null, null, c._tag === pinned]
}

export const makeStreams = (ctx: CoreContext): CoreArea<"streams"> => {
  const { callDecode, callOption, options, streamKey, wake, nextWrite } = ctx

  const readPage = [int(Limits.readPageFrames), bigint(Limits.readPageBytes)] as const
  const tailOnce = (a: M.TailStreamArgs) => {
    const [ts, seq] = bound(a.after, "End")
    return callDecode("tail_stream", "tail_stream", [
      text(a.executionId),
      int(a.attemptIndex),
      bigint(ts),
      bigint(seq ?? 0),
      bool(a.visibility === "exclude_best_effort"),
      int(a.countLimit),
      ...readPage
    ], M.StreamFrames)
  }

  return {
    appendFrame: (h, frame) => {
      const mode = modeWire(frame.mode)
      const patch = frame.mode._tag === "DurableSummary" ? parsePatch(frame.bytes) : { patch: null, error: null }
      const cfgBe = frame.mode._tag === "BestEffortLive" ? frame.mode.config : undefined
      const alpha = cfgBe?.emaAlpha === undefined ? 0.2 : Math.min(1, Math.max(Number.EPSILON, cfgBe.emaAlpha))
      return callDecode("append_frame", "append_frame", [
        ...handleArgs(h),
        text(frame.frameType === "" ? frame.kind : frame.frameType),
        text(utf8Lossy.decode(frame.bytes)),
        int(frame.bytes.length),
        text(mode),
        text(frame.correlationId),
        jsonb(patch.patch),
        text(patch.error),
        bigint(cfgBe?.ttlMs ?? 0),
        int(cfgBe?.maxlenFloor ?? 64),
        int(cfgBe?.maxlenCeiling ?? 16_384),
        ["float8", alpha],
        int(10_000),
        int(Limits.summaryDocumentBytes)
      ], M.AppendFrameOutcome).pipe(Effect.tap(() => wake(h)))
    },

    readStream: (a) => {
      const [fromTs, fromSeq, fromLast] = bound(a.from, "End")
      const [toTs, toSeq, toFirst] = bound(a.to, "Start")
      return callDecode("read_stream", "read_stream", [
        text(a.executionId),
        int(a.attemptIndex),
        bigint(fromTs),
        bigint(fromSeq),
        bool(fromLast),
        bigint(toTs),
        bigint(toSeq),
        bool(toFirst),
        int(a.countLimit),
        ...readPage
      ], M.StreamFrames)
    },

    tailStream: (a) =>
      Effect.gen(function*() {
        const first = yield* tailOnce(a)
        if (first.frames.length > 0 || a.blockMs === 0 || first.closedAt !== undefined) return first
        const key = streamKey(a.executionId, a.attemptIndex)
        const last = yield* Ref.make(first)
        // a poll per interval (real time, so other processes' writes are seen) or at once on a local write
        const poll: Fx<M.StreamFrames> = Effect.gen(function*() {
          for (;;) {
            const written = yield* nextWrite(key)
            yield* Effect.raceFirst(Deferred.await(written), realSleep(options.tailPollMs))
            const r = yield* tailOnce(a)
            if (r.frames.length > 0 || r.closedAt !== undefined) return r
            yield* Ref.set(last, r)
          }
        })
        const timeout = Effect.zipRight(
          Effect.sleep(Duration.millis(a.blockMs)),
          Effect.map(Ref.get(last), (r): M.StreamFrames => ({ ...r, frames: [] }))
        )
        return yield* Effect.raceFirst(poll, timeout)
      }),

    readSummary: (a) =>
      Effect.map(
        callOption("read_summary", "read_summary", [text(a.executionId), int(a.attemptIndex)], SummaryRow),
        Option.map((row): M.SummaryDocument => ({
          ...row,
          documentJson: utf8Encoder.encode(JSON.stringify(JSON.parse(row.documentJson)))
        }))
      )
  }
}
