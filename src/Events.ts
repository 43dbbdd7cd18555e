/**
 * Following what happens to executions and flows: the engine's event log as an Effect `Stream`
 * (docs/design/events.md, docs/guide.md "Following events").
 *
 * ```ts
 * import { Events } from "flowfabric-effect"
 *
 * const board = Events.stream(Events.lane(laneId), { from: "latest" }).pipe(
 *   Stream.runForEach((event) => Console.log(event._tag, event.executionId))
 * )
 * ```
 *
 * @since 0.1.0
 */
import { Chunk, Duration, Effect, Either, Stream } from "effect"
import { EngineBackend } from "./EngineBackend.js"
import type { EngineError } from "./EngineError.js"
import type { ExecutionId, FlowId, LaneId } from "./Ids.js"
import type * as M from "./Model.js"

/**
 * The events of every execution on a lane.
 *
 * @since 0.1.0
 * @category filters
 */
export const lane = (laneId: LaneId): M.EventFilter => ({ _tag: "Lane", laneId })

/**
 * The events of one execution.
 *
 * @since 0.1.0
 * @category filters
 */
export const execution = (executionId: ExecutionId): M.EventFilter => ({ _tag: "Execution", executionId })

/**
 * The events of a flow: its state changes and the events of its members.
 *
 * @since 0.1.0
 * @category filters
 */
export const flow = (flowId: FlowId): M.EventFilter => ({ _tag: "Flow", flowId })

/**
 * @since 0.1.0
 * @category models
 */
export interface StreamOptions {
  /**
   * Where to start: after an offset (the `offset` of the last event handled: a follower that
   * reconnects with it misses nothing still retained), `"earliest"` (default: every retained
   * event) or `"latest"` (only what happens from now on).
   */
  readonly from?: M.EventStart | undefined
  /** Events read per call, 1..`Limits.eventPageItems` (default 100). */
  readonly pageSize?: number | undefined
  /**
   * The longest wait without a wake-up before the log is read again (default 1 s): it bounds the
   * delay a lost wake-up (a dropped connection) can cause.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
}

/** After a wake-up whose event was not readable yet, how soon to read again (doubling). */
const RETRY_FIRST_MS = 2

/**
 * The events `filter` sees, oldest first, then each new one as it is written: pages of
 * `readEvents`, and, once caught up, a wait for a wake-up of `subscribeEvents` (or
 * `pollInterval`; every `pollInterval` when the backend offers no wake-ups). Never ends by itself; fails with the first error of a read, e.g.
 * `State(EventOffsetExpired)` when `from` is older than the retained window.
 *
 * @since 0.1.0
 * @category streams
 */
export const stream = (
  filter: M.EventFilter,
  options: StreamOptions = {}
): Stream.Stream<M.EngineEvent, EngineError, EngineBackend> =>
  Stream.unwrapScoped(Effect.gen(function*() {
    const backend = yield* EngineBackend
    // without wake-ups (a Postgres layer without a LISTEN connection) it reads every pollInterval
    const subscription = Either.getOrUndefined(yield* Effect.either(backend.subscribeEvents(filter)))
    const limit = options.pageSize ?? 100
    const poll = Duration.toMillis(Duration.decode(options.pollInterval ?? Duration.seconds(1)))
    let after: M.EventStart = options.from ?? "earliest"
    // after a wake-up that found nothing new, read again soon (a Postgres event becomes readable
    // once every older transaction has ended, an instant after its own commit)
    let retryMs = 0
    const pull = Effect.gen(function*() {
      for (;;) {
        const seen = subscription === undefined ? 0 : yield* subscription.wakeups
        const page = yield* backend.readEvents({ filter, after, limit })
        after = page.next
        if (page.events.length > 0) {
          retryMs = 0
          return Chunk.unsafeFromArray(page.events)
        }
        const wait = retryMs > 0 ? Math.min(retryMs, poll) : poll
        const woken = subscription === undefined ?
          yield* Effect.as(Effect.sleep(Duration.millis(wait)), false) :
          yield* subscription.await(seen, Duration.millis(wait))
        retryMs = woken ? RETRY_FIRST_MS : retryMs > 0 && retryMs < poll ? retryMs * 2 : 0
      }
    })
    return Stream.repeatEffectChunk(pull)
  }))
