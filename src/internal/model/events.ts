/**
 * Events: what happened to executions and flows, as a typed, resumable log
 * (docs/design/events.md). Re-exported by `Model`.
 */
import { Schema } from "effect"
import { AttemptIndex, ExecutionId, FlowId, LaneId, TimestampMs, WorkerInstanceId } from "../../Ids.js"
import { PublicState } from "./common.js"
import { FailureClass } from "./lifecycle.js"

// ---------------------------------------------------------------------------
// Offsets and filters
// ---------------------------------------------------------------------------

/**
 * A position in the event log, opaque: pass back the `offset` of the last event handled (or the
 * `next` of a page) to read what follows it. Valid with the filter it was read with.
 *
 * @since 0.1.0
 */
export const EventOffset = Schema.String.pipe(Schema.brand("EventOffset"))
/** @since 0.1.0 */
export type EventOffset = typeof EventOffset.Type

/**
 * Which events a read or a subscription sees: those of one lane (every execution on it), of one
 * execution, or of one flow (its own state changes and every event of its members).
 *
 * @since 0.1.0
 */
export const EventFilter = Schema.Union(
  Schema.TaggedStruct("Lane", { laneId: LaneId }),
  Schema.TaggedStruct("Execution", { executionId: ExecutionId }),
  Schema.TaggedStruct("Flow", { flowId: FlowId })
)
/** @since 0.1.0 */
export type EventFilter = typeof EventFilter.Type

/**
 * Where a read starts: after an offset, at the oldest retained event (`"earliest"`, the default),
 * or at the end of the log (`"latest"`: no event, and the offset to follow from).
 *
 * @since 0.1.0
 */
export type EventStart = EventOffset | "earliest" | "latest"

/** @since 0.1.0 */
export interface ReadEventsArgs {
  readonly filter: EventFilter
  /** Default `"earliest"`. */
  readonly after?: EventStart | undefined
  /** 1..`Limits.eventPageItems`; default 100. */
  readonly limit?: number | undefined
}

// ---------------------------------------------------------------------------
// The events
// ---------------------------------------------------------------------------

const execution = {
  offset: EventOffset,
  /** When the transition happened (ms, the store's clock: the operation's time). */
  at: TimestampMs,
  executionId: ExecutionId,
  laneId: LaneId,
  flowId: Schema.optional(FlowId)
}

/**
 * The events of executions (one per transition, written with it) and of flows.
 *
 * - `ExecutionCreated`: created (or re-created by an idempotent submit: never twice for one id),
 *   with its first public state.
 * - `Claimed`: a lease started: a first claim, a retry, a reclaim after a lost lease, a resumed
 *   claim after a suspension.
 * - `Progress`: the worker reported progress (message cut like a history reason).
 * - `Completed`, `Failed`, `Cancelled`, `Expired`, `Skipped`: it ended. `Failed` carries the
 *   failure's reason and class when the failure had them.
 * - `RetryScheduled`: an attempt failed and another one is due at `retryAt`.
 * - `Delayed`: the worker delayed it until `until`.
 * - `Suspended`, `Resumed`: it suspended, and its resume condition was met (or its suspension
 *   timed out and it goes on).
 * - `AttemptInterrupted`: the lease it ran under was lost (`lease_expired`) or revoked
 *   (`lease_revoked`): the attempt waits to be reclaimed.
 * - `StateChanged`: any other change of public state (delayed work promoted, dependencies
 *   satisfied, budget-blocked, replayed).
 * - `FlowStateChanged`: a flow's public state changed (running, completed, failed, cancelled);
 *   seen by the filter of that flow only.
 *
 * @since 0.1.0
 */
export const EngineEvent = Schema.Union(
  Schema.TaggedStruct("ExecutionCreated", { ...execution, publicState: PublicState }),
  Schema.TaggedStruct("Claimed", {
    ...execution,
    attemptIndex: AttemptIndex,
    workerInstanceId: WorkerInstanceId
  }),
  Schema.TaggedStruct("Progress", {
    ...execution,
    attemptIndex: AttemptIndex,
    percent: Schema.optional(Schema.Int),
    message: Schema.optional(Schema.String)
  }),
  Schema.TaggedStruct("Completed", { ...execution, attemptIndex: Schema.optional(AttemptIndex) }),
  Schema.TaggedStruct("Failed", {
    ...execution,
    attemptIndex: Schema.optional(AttemptIndex),
    reason: Schema.optional(Schema.String),
    classification: Schema.optional(FailureClass)
  }),
  Schema.TaggedStruct("RetryScheduled", {
    ...execution,
    attemptIndex: AttemptIndex,
    retryAt: TimestampMs,
    reason: Schema.optional(Schema.String)
  }),
  Schema.TaggedStruct("Delayed", { ...execution, until: TimestampMs }),
  Schema.TaggedStruct("Suspended", { ...execution, attemptIndex: Schema.optional(AttemptIndex) }),
  Schema.TaggedStruct("Resumed", { ...execution, publicState: PublicState }),
  Schema.TaggedStruct("AttemptInterrupted", {
    ...execution,
    attemptIndex: AttemptIndex,
    cause: Schema.Literal("lease_expired", "lease_revoked")
  }),
  Schema.TaggedStruct("Cancelled", { ...execution, reason: Schema.optional(Schema.String) }),
  Schema.TaggedStruct("Expired", { ...execution }),
  Schema.TaggedStruct("Skipped", { ...execution }),
  Schema.TaggedStruct("StateChanged", { ...execution, from: PublicState, to: PublicState }),
  Schema.TaggedStruct("FlowStateChanged", {
    offset: EventOffset,
    at: TimestampMs,
    flowId: FlowId,
    publicFlowState: Schema.String
  })
)
/** @since 0.1.0 */
export type EngineEvent = typeof EngineEvent.Type

/** The event types without their `offset` (what a store writes; the offset is its position). */
export type EngineEventBody = EngineEvent extends infer E ? E extends EngineEvent ? Omit<E, "offset"> : never : never

/**
 * A page of events: at most `limit`, oldest first, and the offset to read on from (the last
 * event's, or the start's when the page is empty).
 *
 * @since 0.1.0
 */
export interface EventPage {
  readonly events: ReadonlyArray<EngineEvent>
  readonly next: EventOffset
}
