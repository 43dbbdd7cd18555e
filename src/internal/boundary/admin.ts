/** The boundary of operator control: cancel, priority, replay, lease revocation, ping, prepare, shutdown. */
import { Duration, Effect } from "effect"
import { invalidInput } from "../../EngineError.js"
import * as M from "../../Model.js"
import { quote } from "../quote.js"
import * as V from "../validation.js"
import { type Boundary, failWith, type Operations } from "./context.js"

/** The operator operations. */
export const adminOperations = (b: Boundary): Operations<
  "cancelExecution" | "changePriority" | "replayExecution" | "revokeLease" | "ping" | "prepare" |
  "shutdownPrepare"
> => {
  const { core, make, byExecutionId } = b

  return {
    cancelExecution: (args) =>
      Effect.gen(function*() {
        const a = yield* make("cancel_execution", M.CancelExecutionArgs, args)
        yield* failWith(
          V.checkBytes("cancel_execution", "reason", a.reason, "textBytes") ??
            V.checkBytes("cancel_execution", "source", a.source, "nameBytes")
        )
        return yield* core.cancelExecution(a)
      }),

    changePriority: (args) => Effect.flatMap(make("change_priority", M.ChangePriorityArgs, args), core.changePriority),
    replayExecution: byExecutionId("replay_execution", core.replayExecution),

    revokeLease: (args) =>
      Effect.gen(function*() {
        const a = yield* make("revoke_lease", M.RevokeLeaseArgs, args)
        yield* failWith(
          V.checkBytes("revoke_lease", "reason", a.reason, "textBytes") ??
            V.checkBytes("revoke_lease", "workerInstanceId", a.workerInstanceId, "nameBytes")
        )
        return yield* core.revokeLease(a)
      }),

    ping: () => core.ping(),
    prepare: () => core.prepare(),

    shutdownPrepare: (grace) =>
      Duration.isDuration(grace) ?
        core.shutdownPrepare(grace) :
        Effect.fail(invalidInput(`shutdown_prepare: grace must be a Duration, got ${quote(grace)}`))
  }
}
