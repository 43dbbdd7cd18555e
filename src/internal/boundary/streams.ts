/** The boundary of streams: frames appended, read, tailed, the summary read. */
import { Effect } from "effect"
import { invalidInput, validation } from "../../EngineError.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { summaryPatchProblem } from "../mergePatch.js"
import * as V from "../validation.js"
import { type Boundary, failWith, type Operations } from "./context.js"
import type { Fx } from "./core.js"

const checkCounts = (op: string, countLimit: number, prefix: string): Fx<void> =>
  !Number.isInteger(countLimit) || countLimit < 1 ?
    Effect.fail(invalidInput(`${prefix}count_limit must be >= 1`)) :
    countLimit > Limits.streamCountLimit ?
    Effect.fail(invalidInput(
      prefix === "" ? "count_limit_exceeds_hard_cap" : `${prefix}count_limit exceeds STREAM_READ_HARD_CAP (10000)`
    )) :
    Effect.void

const checkCursor = (c: M.StreamCursor): Fx<void> => (c._tag === "At" ? failWith(V.checkStreamId(c.id)) : Effect.void)

/** The stream operations. */
export const streamOperations = (b: Boundary): Operations<
  "appendFrame" | "readStream" | "tailStream" | "readSummary"
> => {
  const { core, intake, make } = b

  return {
    appendFrame: (handle, frame) =>
      Effect.gen(function*() {
        const h = yield* intake(handle)
        if (frame?.bytes instanceof Uint8Array && frame.bytes.length > V.MAX_FRAME_BYTES) {
          return yield* validation("RetentionLimitExceeded", `frame of ${frame.bytes.length} bytes > ${V.MAX_FRAME_BYTES}`)
        }
        const f = yield* make("append_frame", M.Frame, frame)
        yield* failWith(V.checkFrameType(f.frameType))
        yield* failWith(V.checkBytes("append_frame", "correlationId", f.correlationId, "nameBytes"))
        if (f.mode._tag === "DurableSummary") {
          const problem = summaryPatchProblem(f.bytes)
          if (problem !== undefined) return yield* invalidInput(problem)
        }
        return yield* core.appendFrame(h, f)
      }),

    readStream: (args) =>
      Effect.gen(function*() {
        const a = yield* make("read_stream", M.ReadStreamArgs, args)
        yield* checkCounts("read_stream", a.countLimit, "")
        yield* checkCursor(a.from)
        yield* checkCursor(a.to)
        return yield* core.readStream(a)
      }),

    tailStream: (args) =>
      Effect.gen(function*() {
        const a = yield* make("tail_stream", M.TailStreamArgs, args)
        if (a.after._tag !== "At") return yield* invalidInput("tail_stream: the after cursor must be concrete (At)")
        yield* checkCursor(a.after)
        yield* checkCounts("tail_stream", a.countLimit, "xread_block: ")
        return yield* core.tailStream(a)
      }),

    readSummary: (args) => Effect.flatMap(make("read_summary", M.StreamRef, args), core.readSummary)
  }
}
