/** The attempt history of an execution (its runs) and its last failure. */
import type * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import type * as M from "../../Model.js"
import type { Exec, Run } from "./state.js"

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** `reason` cut to `Limits.historyReasonBytes` of UTF-8 at a character boundary. */
export const cutHistoryReason = (reason: string): string => {
  if (reason.length * 3 <= Limits.historyReasonBytes) return reason
  const bytes = encoder.encode(reason)
  if (bytes.length <= Limits.historyReasonBytes) return reason
  let n = Limits.historyReasonBytes
  while (n > 0 && (bytes[n]! & 0xc0) === 0x80) n--
  return decoder.decode(bytes.subarray(0, n))
}

/** A claim leased `e`: its attempt history gains a run. */
export const startRun = (e: Exec, kind: M.AttemptRunKind, now: number): void => {
  const run: Run = {
    attemptIndex: e.currentAttemptIndex as Ids.AttemptIndex,
    kind,
    workerId: e.workerId!,
    workerInstanceId: e.workerInstanceId!,
    startedAt: now,
    outcome: "running"
  }
  const history = e.history
  // most executions have one run: an array of exactly one (a push would give it room for 17)
  if (history === undefined) e.history = [run]
  else {
    history.push(run)
    if (history.length > Limits.historyRuns) history.shift()
  }
}

/** Ends the running run of `e`, when it holds a lease: called before the transition that lets go of it. */
export const endRun = (e: Exec, outcome: M.AttemptRunOutcome, now: number, reason?: string): void => {
  if (e.phase !== "active" || e.ownership !== "leased") return
  const history = e.history
  const last = history === undefined ? -1 : history.length - 1
  const run = history?.[last]
  if (run === undefined || run.outcome !== "running") return
  // a new record with every field in place (fields added later go to a separate property array),
  // its keys in the order the old one's would have had
  history![last] = reason !== undefined && reason !== "" ?
    {
      attemptIndex: run.attemptIndex,
      kind: run.kind,
      workerId: run.workerId,
      workerInstanceId: run.workerInstanceId,
      startedAt: run.startedAt,
      outcome,
      endedAt: now,
      reason: cutHistoryReason(reason)
    } :
    {
      attemptIndex: run.attemptIndex,
      kind: run.kind,
      workerId: run.workerId,
      workerInstanceId: run.workerInstanceId,
      startedAt: run.startedAt,
      outcome,
      endedAt: now
    }
}

export const recordFailure = (
  e: Exec,
  reason: string,
  classification: M.FailureClass,
  category: string,
  now: number
): void => {
  e.lastFailure = { reason, classification, category, at: now }
}
