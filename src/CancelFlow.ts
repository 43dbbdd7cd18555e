/**
 * Waiting for a flow cancellation to finish: a `Schedule`-driven poll of
 * `describeFlow` bounded by a deadline (see
 * docs/design/flows.md#waiting-for-the-cancellation).
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Option, Schedule } from "effect"
import { EngineBackend } from "./EngineBackend.js"
import { type EngineError, Timeout } from "./EngineError.js"
import type { FlowId } from "./Ids.js"
import type { CancelFlowWait } from "./Model.js"

/** @since 0.1.0 */
export const CANCEL_WAIT_POLL_INTERVAL: Duration.Duration = Duration.millis(100)

/** @since 0.1.0 */
export const CANCEL_WAIT_INDEFINITE_CEILING: Duration.Duration = Duration.seconds(300)

/**
 * `NoWait` → none (skip the wait); `WaitTimeout(d)` → d; `WaitIndefinite` →
 * the 300 s ceiling.
 *
 * @since 0.1.0
 */
export const cancelFlowWaitDeadline = (wait: CancelFlowWait): Option.Option<Duration.Duration> => {
  switch (wait._tag) {
    case "NoWait":
      return Option.none()
    case "WaitTimeout":
      return Option.some(wait.timeout)
    case "WaitIndefinite":
      return Option.some(CANCEL_WAIT_INDEFINITE_CEILING)
  }
}

/**
 * Polls `describeFlow` until the flow reads `cancelled` or is gone. The state
 * is read at least once before the deadline is checked, so a zero deadline
 * makes exactly one read; at the deadline it fails with
 * `Timeout{ op: "cancel_flow", elapsed: deadline }`. Errors of `describeFlow`
 * are returned as they are.
 *
 * @since 0.1.0
 */
export const waitForFlowCancellationWith = (
  backend: Pick<EngineBackend.Service, "describeFlow">,
  flowId: FlowId,
  deadline: Duration.DurationInput,
  options?: { readonly pollInterval?: Duration.DurationInput }
): Effect.Effect<void, EngineError> =>
  pollFlowCancellation(
    (id) => Effect.map(backend.describeFlow(id), Option.map((s) => s.publicFlowState)),
    flowId,
    deadline,
    options
  )

/**
 * The wait of `waitForFlowCancellationWith` over any read of a flow's public state (`None`: the
 * flow is gone). The engine's `cancelFlow` polls its backend's read of the flow record alone, which
 * costs the same whatever the flow's size; `describeFlow` also reads the join groups.
 *
 * @internal
 */
export const pollFlowCancellation = (
  readState: (flowId: FlowId) => Effect.Effect<Option.Option<string>, EngineError>,
  flowId: FlowId,
  deadline: Duration.DurationInput,
  options?: { readonly pollInterval?: Duration.DurationInput }
): Effect.Effect<void, EngineError> =>
  Effect.gen(function*() {
    const limit = Duration.decode(deadline)
    const start = yield* Clock.currentTimeMillis
    const poll = Effect.gen(function*() {
      const state = yield* readState(flowId)
      if (Option.isNone(state) || state.value === "cancelled") return true
      const elapsed = (yield* Clock.currentTimeMillis) - start
      if (elapsed >= Duration.toMillis(limit)) {
        return yield* new Timeout({ op: "cancel_flow", elapsed: limit })
      }
      return false
    })
    yield* Effect.repeat(poll, {
      schedule: Schedule.spaced(options?.pollInterval ?? CANCEL_WAIT_POLL_INTERVAL),
      until: (done) => done
    })
  })

/**
 * `waitForFlowCancellationWith` on the `EngineBackend` in context.
 *
 * @since 0.1.0
 */
export const waitForFlowCancellation = (
  flowId: FlowId,
  deadline: Duration.DurationInput,
  options?: { readonly pollInterval?: Duration.DurationInput }
): Effect.Effect<void, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (backend) => waitForFlowCancellationWith(backend, flowId, deadline, options))
