/** Operator control of one execution: cancel it, change its priority, replay it, revoke its lease. */
import { contention, notFound, state as stateError } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import type * as M from "../../Model.js"
import { clampPriority } from "../validation.js"
import { err, leaseEndsElsewhere, notActiveDetail, ok, pushClaimable, type R, transition } from "./helpers.js"
import { noteFlowState } from "./flows.js"
import { endRun } from "./history.js"
import type { Store } from "./store.js"
import { cancelCore } from "./terminal.js"

const DEFAULT_MAX_REPLAYS = 10

export const cancelExecution = (store: Store, now: number, args: M.CancelExecutionArgs): R<M.CancelExecutionResult> => {
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase === "terminal") return err(notActiveDetail(e))
  if (e.phase === "active" && args.source !== "operator_override") {
    if (e.ownership === "lease_revoked") return err(stateError("LeaseRevoked"))
    if (args.leaseId !== undefined && (e.leaseId !== args.leaseId || (args.leaseEpoch !== undefined && e.leaseEpoch !== args.leaseEpoch))) {
      return err(stateError("StaleLease"))
    }
  }
  // cancelled_by is the source, or the execution's own id when the source is empty
  cancelCore(store, e, args.reason, args.source === "" ? e.id : args.source, now, args.source !== "flow_cascade")
  return ok({ _tag: "Cancelled", executionId: e.id, publicState: "cancelled" })
}

export const changePriority = (store: Store, now: number, args: M.ChangePriorityArgs): R<M.ChangePriorityResult> => {
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "runnable" || e.eligibility !== "eligible_now") return err(contention("ExecutionNotEligible"))
  e.priority = clampPriority(args.newPriority)
  e.lastMutationAt = now
  pushClaimable(store, e)
  return ok({ _tag: "Changed", executionId: e.id })
}

/** A replayed member is live again: its flow, if it had ended, reads (and reports) running. */
const replayedInFlow = (store: Store, flowId: Ids.FlowId | undefined, now: number): void => {
  const f = flowId === undefined ? undefined : store.flows.get(flowId)
  if (f !== undefined) noteFlowState(store, f, now)
}

export const replayExecution = (store: Store, now: number, id: Ids.ExecutionId): R<M.ReplayExecutionResult> => {
  const e = store.executions.get(id)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "terminal") return err(stateError("ExecutionNotTerminal"))
  if (e.replayCount >= (e.policy?.maxReplayCount ?? DEFAULT_MAX_REPLAYS)) return err(stateError("MaxReplaysExhausted"))
  e.replayCount += 1
  e.completedAt = undefined
  e.result = undefined
  if (e.outcome === "skipped" && e.flowId !== undefined) {
    const g = e.group
    for (const dep of e.deps?.values() ?? []) {
      if (dep.state === "impossible") dep.state = "unsatisfied"
    }
    e.unsatisfiedCount = [...(e.deps?.values() ?? [])].filter((d) => d.state === "unsatisfied").length
    if (g !== undefined) {
      g.failed = 0
      g.skipped = 0
      g.state = "pending"
    }
    transition(store, e, {
      phase: "runnable",
      ownership: "unowned",
      eligibility: "blocked_by_dependencies",
      blockingReason: "waiting_for_children",
      blockingDetail: `${e.unsatisfiedCount} dep(s) unresolved`,
      attemptState: "pending_replay_attempt"
    }, now)
    replayedInFlow(store, e.flowId, now)
    return ok({ _tag: "Replayed", publicState: "waiting_children" })
  }
  transition(store, e, {
    phase: "runnable",
    ownership: "unowned",
    eligibility: "eligible_now",
    blockingReason: "waiting_for_worker",
    blockingDetail: "",
    attemptState: "pending_replay_attempt"
  }, now)
  replayedInFlow(store, e.flowId, now)
  return ok({ _tag: "Replayed", publicState: "waiting" })
}

export const revokeLease = (store: Store, now: number, args: M.RevokeLeaseArgs): R<M.RevokeLeaseResult> => {
  const e = store.executions.get(args.executionId)
  if (e === undefined) return err(notFound("execution"))
  if (e.phase !== "active") {
    return e.workerInstanceId === undefined ? ok({ _tag: "AlreadySatisfied", reason: "no_active_lease" }) : err(notActiveDetail(e))
  }
  if (e.ownership === "lease_revoked") return ok({ _tag: "AlreadySatisfied", reason: "already_revoked" })
  if (e.ownership === "lease_expired_reclaimable") return ok({ _tag: "AlreadySatisfied", reason: "already_expired" })
  if (e.ownership !== "leased") return err(contention("NoActiveLease"))
  if (args.expectedLeaseId !== undefined && args.expectedLeaseId !== e.leaseId) return err(stateError("StaleLease"))
  const leaseId = e.leaseId!
  leaseEndsElsewhere(store, e)
  endRun(e, "lease_revoked", now, args.reason)
  e.leaseRevokedAt = now
  transition(store, e, {
    phase: "active",
    ownership: "lease_revoked",
    eligibility: "not_applicable",
    blockingReason: "waiting_for_worker",
    blockingDetail: `lease revoked: ${args.reason}`,
    attemptState: "attempt_interrupted"
  }, now)
  return ok({ _tag: "Revoked", leaseId, leaseEpoch: String(e.leaseEpoch) })
}
