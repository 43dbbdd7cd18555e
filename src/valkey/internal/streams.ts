/**
 * Streams over Valkey: appendFrame, readStream, tailStream (a blocking wait on a connection of its
 * own, then a page), readSummary, and the permit pool that bounds the concurrent reads.
 */
import { Duration, Effect, Option, Schema } from "effect"
import { ResourceExhausted, Timeout, Unavailable } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, CoreArea } from "../../internal/boundary.js"
import { Limits } from "../../Limits.js"
import type * as M from "../../Model.js"
import { type CoreContext, fence, type Fx, S, Str } from "./context.js"
import { decodeFields, IntStr, LuaArray } from "./plumbing.js"

const FrameJson = Schema.Struct({ id: S, fields: Str })
/** ff_read_stream: the frames, closed_at, closed_reason, the first frame the page budget left out. */
const Frames = Schema.Tuple(Schema.parseJson(LuaArray(FrameJson)), S, S, S)
const T_Append = Schema.Tuple(S, IntStr, S)
const T_Summary = Schema.Tuple(S, IntStr, S, IntStr, S)

export interface StreamOps {
  /** Runs `effect` holding one stream-op permit (ResourceExhausted / Unavailable otherwise). */
  readonly guard: <A>(effect: Fx<A>) => Fx<A>
  readonly shutdown: (grace: Duration.Duration) => Fx<void>
}

export const makeStreams = (
  ctx: CoreContext,
  streamOps: StreamOps
): CoreArea<"streams"> => {
  const { call, client, ex, inRange, keys } = ctx

  const appendFrame: BackendCore["appendFrame"] = (h, frame) =>
    Effect.gen(function*() {
      const mode = frame.mode
      const env = yield* call("append_frame", ex(h.payload.executionId), {
        ...fence(h),
        frame_type: frame.frameType === "" ? frame.kind : frame.frameType,
        ...(frame.correlationId === undefined ? {} : { correlation_id: frame.correlationId }),
        mode: mode._tag === "Durable" ? "durable" : mode._tag === "DurableSummary" ? "summary" : "best_effort",
        ...(mode._tag === "DurableSummary" ? { patch_kind: mode.patchKind, summary_max: Limits.summaryDocumentBytes } : {}),
        ...(mode._tag === "BestEffortLive" ?
          {
            ttl_ms: mode.config.ttlMs,
            maxlen_floor: mode.config.maxlenFloor ?? 64,
            maxlen_ceiling: mode.config.maxlenCeiling ?? 16384,
            ema_alpha: mode.config.emaAlpha ?? 0.2
          } :
          {}),
        encoding: "utf8"
      }, [frame.bytes])
      const [streamId, frameCount, version] = yield* decodeFields(
        "ff_append_frame",
        T_Append,
        env.fields
      )
      return {
        streamId,
        frameCount,
        ...(version === "" ? {} : { summaryVersion: Number(version) })
      }
    })

  const READ_PAGE = { page_frames: Limits.readPageFrames, page_bytes: Limits.readPageBytes }
  const cursorArg = (c: M.StreamCursor) => (c._tag === "Start" ? "-" : c._tag === "End" ? "+" : c.id)

  const framesFrom = (
    fn: string,
    fields: ReadonlyArray<string>,
    id: Ids.ExecutionId,
    visibility: M.TailVisibility,
    tail: boolean
  ) =>
    Effect.map(decodeFields(fn, Frames, fields, id), ([frames, closedAt, closedReason, next]): M.StreamFrames => ({
      frames: visibility === "exclude_best_effort" ? frames.filter((f) => f.fields["mode"] !== "best_effort") : frames,
      ...(/^\d+$/.test(closedAt) ? { closedAt: Number(closedAt) } : {}),
      ...(closedReason === "" ? {} : { closedReason }),
      ...(next === "" || tail ? {} : { nextFrom: next })
    }))

  const readStream: BackendCore["readStream"] = (a) =>
    streamOps.guard(Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("read_stream", ex(a.executionId), {
        execution_id: a.executionId,
        attempt_index: a.attemptIndex,
        from: cursorArg(a.from),
        to: cursorArg(a.to),
        count: a.countLimit,
        ...READ_PAGE
      }, [], true)
      return yield* framesFrom("ff_read_stream", env.fields, a.executionId, "all", false)
    }))

  const tailStream: BackendCore["tailStream"] = (a) =>
    streamOps.guard(Effect.gen(function*() {
      yield* inRange(a.executionId)
      const after = a.after._tag === "At" ? a.after.id : "0-0"
      if (a.blockMs > 0) {
        const partition = Ids.executionPartition(a.executionId)
        const stream = keys.stream(partition, a.executionId, a.attemptIndex)
        // a blocking read gets its own connection so it never stalls the shared one; it only waits
        // for a frame (one entry), the page is read below
        yield* Effect.scoped(Effect.flatMap(client.dedicated, (c) =>
          Effect.tryPromise({
            try: () => c.xread("COUNT", 1, "BLOCK", a.blockMs, "STREAMS", stream, after),
            catch: (e) => e
          }).pipe(Effect.ignore, Effect.onInterrupt(() => client.discard(c)))))
      }
      const env = yield* call("read_stream", ex(a.executionId), {
        execution_id: a.executionId,
        attempt_index: a.attemptIndex,
        after,
        count: a.countLimit,
        ...READ_PAGE
      }, [], true)
      return yield* framesFrom("ff_read_stream", env.fields, a.executionId, a.visibility, true)
    }))

  const readSummary: BackendCore["readSummary"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("read_summary", ex(a.executionId), {
        execution_id: a.executionId,
        attempt_index: a.attemptIndex
      }, [], true)
      if (env.status === "NONE") return Option.none()
      const [doc, version, , lastUpdated, firstApplied] = yield* decodeFields(
        "ff_read_summary",
        T_Summary,
        env.fields,
        a.executionId
      )
      return Option.some({
        documentJson: new TextEncoder().encode(doc),
        version,
        patchKind: "json-merge-patch",
        lastUpdatedMs: lastUpdated,
        firstAppliedMs: /^\d+$/.test(firstApplied) ? Number(firstApplied) : lastUpdated
      } satisfies M.SummaryDocument)
    })

  return { appendFrame, readStream, tailStream, readSummary }
}

/** The `stream_ops` permit pool of read_stream / tail_stream (docs/design/streams-and-budgets.md#the-stream-read-pool). */
export const makeStreamOps = (max: number): Effect.Effect<StreamOps> =>
  Effect.gen(function*() {
    const semaphore = yield* Effect.makeSemaphore(max)
    let closed = false
    let inUse = 0
    const guard = <A>(effect: Fx<A>): Fx<A> =>
      Effect.suspend(() => {
        if (closed) return Effect.fail(new Unavailable({ op: "stream_ops" }))
        return semaphore.withPermitsIfAvailable(1)(
          Effect.acquireUseRelease(
            Effect.sync(() => {
              inUse++
            }),
            () => effect,
            () =>
              Effect.sync(() => {
                inUse--
              })
          )
        ).pipe(
          Effect.flatMap(Option.match({
            onNone: () =>
              Effect.fail(
                new ResourceExhausted({
                  pool: "stream_ops",
                  max,
                  retryAfterMs: Math.max(25, Math.floor((25 * max) / (max - inUse + 1)))
                })
              ),
            onSome: Effect.succeed
          }))
        )
      })
    const shutdown = (grace: Duration.Duration): Fx<void> =>
      Effect.gen(function*() {
        closed = true
        const start = yield* Effect.clockWith((c) => c.currentTimeMillis)
        while (inUse > 0) {
          const elapsed = (yield* Effect.clockWith((c) => c.currentTimeMillis)) - start
          if (elapsed >= Duration.toMillis(grace)) {
            return yield* new Timeout({ op: "shutdown_prepare", elapsed: Duration.millis(elapsed) })
          }
          yield* Effect.sleep(Duration.millis(25))
        }
      })
    return { guard, shutdown }
  })
