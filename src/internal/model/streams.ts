/**
 * Streams: frames, their modes, cursors, reads, tails and the summary document.
 * Re-exported by `Model`.
 */
import { Schema } from "effect"
import { AttemptIndex, ExecutionId, TimestampMs } from "../../Ids.js"
import type { Input } from "./common.js"
import { NonNegativeInt, Tags } from "./fields.js"

// ---------------------------------------------------------------------------
// Streams (docs/design/streams-and-budgets.md#streams)
// ---------------------------------------------------------------------------

/** @since 0.1.0 */
export const FrameKind = Schema.Literal("stdout", "stderr", "event", "blob")
/** @since 0.1.0 */
export type FrameKind = typeof FrameKind.Type
/** @since 0.1.0 */
export const PatchKind = Schema.Literal("json-merge-patch")
/** @since 0.1.0 */
export type PatchKind = typeof PatchKind.Type

/** @since 0.1.0 */
export const BestEffortLiveConfig = Schema.Struct({
  ttlMs: Schema.Int.pipe(Schema.positive()),
  /** 64 when absent. */
  maxlenFloor: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** 16 384 when absent. */
  maxlenCeiling: Schema.optional(Schema.Int.pipe(Schema.positive())),
  /** 0.2 when absent, clamped to (0, 1]. */
  emaAlpha: Schema.optional(Schema.Number)
})
/** @since 0.1.0 */
export type BestEffortLiveConfig = typeof BestEffortLiveConfig.Type

/** @since 0.1.0 */
export const StreamMode = Schema.Union(
  Schema.TaggedStruct("Durable", {}),
  Schema.TaggedStruct("DurableSummary", { patchKind: PatchKind }),
  Schema.TaggedStruct("BestEffortLive", { config: BestEffortLiveConfig })
)
/** @since 0.1.0 */
export type StreamMode = typeof StreamMode.Type

/** @since 0.1.0 */
export const Frame = Schema.Struct({
  bytes: Schema.Uint8ArrayFromSelf,
  kind: FrameKind,
  seq: Schema.optional(Schema.Number),
  frameType: Schema.optionalWith(Schema.String, { default: () => "" }),
  correlationId: Schema.optional(Schema.String),
  mode: Schema.optionalWith(StreamMode, { default: () => ({ _tag: "Durable" as const }) })
})
/** @since 0.1.0 */
export type Frame = typeof Frame.Type
/** @since 0.1.0 */
export type FrameInput = Input<typeof Frame.fields>

/** @since 0.1.0 */
export const AppendFrameOutcome = Schema.Struct({
  streamId: Schema.String,
  frameCount: NonNegativeInt,
  summaryVersion: Schema.optional(NonNegativeInt)
})
/** @since 0.1.0 */
export type AppendFrameOutcome = typeof AppendFrameOutcome.Type

/** @since 0.1.0 */
export const StreamCursor = Schema.Union(
  Schema.TaggedStruct("Start", {}),
  Schema.TaggedStruct("End", {}),
  Schema.TaggedStruct("At", { id: Schema.String })
)
/** @since 0.1.0 */
export type StreamCursor = typeof StreamCursor.Type

/** @since 0.1.0 */
export const STREAM_READ_HARD_CAP = 10_000

/** @since 0.1.0 */
export const StreamFrame = Schema.Struct({
  id: Schema.String,
  fields: Tags
})
/** @since 0.1.0 */
export type StreamFrame = typeof StreamFrame.Type

/** @since 0.1.0 */
export const StreamFrames = Schema.Struct({
  frames: Schema.Array(StreamFrame),
  closedAt: Schema.optional(TimestampMs),
  closedReason: Schema.optional(Schema.String),
  /**
   * Set by `readStream` when the page stopped at the read budget (`Limits.readPageFrames`,
   * `Limits.readPageBytes`) before `countLimit` and before the end of the range: the id of the
   * next frame, to pass as `from: { _tag: "At", id: nextFrom }` to read on.
   */
  nextFrom: Schema.optional(Schema.String)
})
/** @since 0.1.0 */
export type StreamFrames = typeof StreamFrames.Type

/** @since 0.1.0 */
export const TailVisibility = Schema.Literal("all", "exclude_best_effort")
/** @since 0.1.0 */
export type TailVisibility = typeof TailVisibility.Type

/** @since 0.1.0 */
export const SummaryDocument = Schema.Struct({
  documentJson: Schema.Uint8ArrayFromSelf,
  version: NonNegativeInt,
  patchKind: PatchKind,
  lastUpdatedMs: TimestampMs,
  firstAppliedMs: TimestampMs
})
/** @since 0.1.0 */
export type SummaryDocument = typeof SummaryDocument.Type

/** @since 0.1.0 */
export const ReadStreamArgs = Schema.Struct({
  executionId: ExecutionId,
  attemptIndex: AttemptIndex,
  from: StreamCursor,
  to: StreamCursor,
  countLimit: Schema.Int
})
/** @since 0.1.0 */
export type ReadStreamArgs = typeof ReadStreamArgs.Type

/** @since 0.1.0 */
export const TailStreamArgs = Schema.Struct({
  executionId: ExecutionId,
  attemptIndex: AttemptIndex,
  after: StreamCursor,
  blockMs: NonNegativeInt,
  countLimit: Schema.Int,
  visibility: Schema.optionalWith(TailVisibility, { default: () => "all" as const })
})
/** @since 0.1.0 */
export type TailStreamArgs = typeof TailStreamArgs.Type

/** @since 0.1.0 */
export const StreamRef = Schema.Struct({ executionId: ExecutionId, attemptIndex: AttemptIndex })
/** @since 0.1.0 */
export type StreamRef = typeof StreamRef.Type
