/**
 * Operator control over Valkey: cancel an execution, change its priority, replay it, revoke its
 * lease; and the layer's own: ping, prepare (the function library loaded where it differs).
 */
import { Effect, Schema } from "effect"
import type { BackendCore, CoreArea } from "../../internal/boundary.js"
import * as M from "../../Model.js"
import { type CoreContext, S, T_Str } from "./context.js"
import { decodeFields } from "./plumbing.js"

const T_State = Schema.Tuple(M.PublicState)
const T_Str2 = Schema.Tuple(S, S)

export const makeAdmin = (
  ctx: CoreContext,
  library: { readonly version: string }
): CoreArea<"admin"> => {
  const { call, client, ex, inRange } = ctx

  const cancelExecution: BackendCore["cancelExecution"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      yield* call("cancel", ex(a.executionId), {
        execution_id: a.executionId,
        reason: a.reason,
        source: a.source,
        mode: "operator",
        ...(a.leaseId === undefined ? {} : { lease_id: a.leaseId }),
        ...(a.leaseEpoch === undefined ? {} : { lease_epoch: a.leaseEpoch })
      })
      return { _tag: "Cancelled", executionId: a.executionId, publicState: "cancelled" } satisfies M.CancelExecutionResult
    })

  const changePriority: BackendCore["changePriority"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      yield* call("change_priority", ex(a.executionId), {
        execution_id: a.executionId,
        priority: Math.min(9000, Math.max(0, Math.trunc(a.newPriority)))
      })
      return { _tag: "Changed", executionId: a.executionId } satisfies M.ChangePriorityResult
    })

  const replayExecution: BackendCore["replayExecution"] = (id) =>
    Effect.gen(function*() {
      yield* inRange(id)
      const env = yield* call("replay", ex(id), { execution_id: id })
      const [publicState] = yield* decodeFields("ff_replay", T_State, env.fields)
      return { _tag: "Replayed", publicState } satisfies M.ReplayExecutionResult
    })

  const revokeLease: BackendCore["revokeLease"] = (a) =>
    Effect.gen(function*() {
      yield* inRange(a.executionId)
      const env = yield* call("revoke", ex(a.executionId), {
        execution_id: a.executionId,
        reason: a.reason,
        ...(a.expectedLeaseId === undefined ? {} : { expected_lease_id: a.expectedLeaseId })
      })
      if (env.status === "ALREADY") {
        const [reason] = yield* decodeFields("ff_revoke", T_Str, env.fields)
        return { _tag: "AlreadySatisfied", reason } satisfies M.RevokeLeaseResult
      }
      const [leaseId, leaseEpoch] = yield* decodeFields("ff_revoke", T_Str2, env.fields)
      return { _tag: "Revoked", leaseId, leaseEpoch } satisfies M.RevokeLeaseResult
    })

  const ping: BackendCore["ping"] = () => Effect.asVoid(client.run("PING", (c) => c.ping()))

  const prepare: BackendCore["prepare"] = () =>
    Effect.as(client.ensureLibrary("replace-if-different"), {
      _tag: "Applied",
      description: `FUNCTION LOAD (flowfabric lib v${library.version})`
    } satisfies M.PrepareOutcome)

  return { cancelExecution, changePriority, replayExecution, revokeLease, ping, prepare }
}
