/**
 * Operator control over Postgres: cancel an execution, change its priority, replay it, revoke its
 * lease; and the layer's own: ping, prepare (nothing to do: the library is installed at start).
 */
import { Effect } from "effect"
import type { CoreArea } from "../../internal/boundary.js"
import { clampPriority } from "../../internal/validation.js"
import * as M from "../../Model.js"
import { bigint, int, text, uuid } from "./client.js"
import type { CoreContext } from "./context.js"

export const makeAdmin = (
  ctx: CoreContext
): CoreArea<"admin"> => {
  const { call, callDecode } = ctx
  return {
    cancelExecution: (a) =>
      callDecode("cancel_execution", "cancel_execution", [
        text(a.executionId),
        text(a.reason),
        text(a.source),
        uuid(a.leaseId),
        bigint(a.leaseEpoch)
      ], M.CancelExecutionResult),

    changePriority: (a) =>
      callDecode("change_priority", "change_priority", [text(a.executionId), int(clampPriority(a.newPriority))], M.ChangePriorityResult),

    replayExecution: (id) => callDecode("replay_execution", "replay_execution", [text(id)], M.ReplayExecutionResult),

    revokeLease: (a) =>
      callDecode("revoke_lease", "revoke_lease", [
        text(a.executionId),
        uuid(a.expectedLeaseId),
        text(a.workerInstanceId ?? ""),
        text(a.reason)
      ], M.RevokeLeaseResult),

    ping: () => Effect.asVoid(call("ping", "ping", [])),
    prepare: () => Effect.succeed({ _tag: "NoOp" as const })
  }
}
