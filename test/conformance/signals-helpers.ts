/** Helpers shared by the signal areas of the conformance suite (signals-*.ts). */
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, WaitpointId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { backend, createAndClaim, ensureHmac, partitionKeyOf, suspendSingle } from "./helpers.js"

/** Claims, suspends on one waitpoint waiting for `name`, returns everything a test needs. */
export const suspendedExecution = (o: Parameters<typeof suspendSingle>[1] = { signalName: "approve" }) =>
  Effect.gen(function*() {
    yield* ensureHmac
    const c = yield* createAndClaim()
    const s = yield* suspendSingle(c.handle, o)
    return { ...c, ...s }
  })

/** What every signal to a suspension's waitpoint carries: the execution, the waitpoint and its token. */
export const signalTo = (s: { readonly executionId: ExecutionId; readonly waitpointId: WaitpointId; readonly token: string }) => ({
  executionId: s.executionId,
  waitpointId: s.waitpointId,
  token: s.token
})

/**
 * Claims a new execution and suspends it on one fresh waitpoint under `resumeCondition` (given the
 * waitpoint's key, for a condition that names it) and the other suspend arguments `more`. Returns
 * the execution, the suspend outcome and `to`, what every signal to the waitpoint carries.
 */
export const suspendedOnFresh = (
  resumeCondition: (waitpointKey: string) => M.ResumeCondition,
  more: Partial<M.SuspendArgsInput> = {}
) =>
  Effect.gen(function*() {
    const b = yield* backend
    yield* ensureHmac
    const c = yield* createAndClaim()
    const wp = yield* Ids.freshWaitpointBinding
    const out = yield* b.suspend(c.handle, {
      suspensionId: yield* Ids.newSuspensionId,
      waitpoints: [{ _tag: "Fresh", ...wp }],
      resumeCondition: resumeCondition(wp.waitpointKey),
      ...more
    })
    return { ...c, out, to: { executionId: c.executionId, waitpointId: wp.waitpointId, token: out.details.waitpointToken } }
  })

export const TOKEN_SHAPE = /^[^:]+:[0-9a-f]+$/

export const tamper = (token: string): string => {
  const last = token.slice(-1)
  return token.slice(0, -1) + (last === "0" ? "1" : "0")
}

/** Finds `id` in list_suspended of its partition (paging through everything). */
export const suspendedEntry = (id: ExecutionId) =>
  Effect.gen(function*() {
    const b = yield* backend
    let cursor: ExecutionId | undefined = undefined
    for (let i = 0; i < 100; i++) {
      const page: M.ListSuspendedPage = yield* b.listSuspended({
        partition: partitionKeyOf(id),
        limit: 500,
        ...(cursor === undefined ? {} : { cursor })
      })
      const hit = page.entries.find((e) => e.executionId === id)
      if (hit !== undefined) return Option.some(hit)
      if (page.nextCursor === undefined) break
      cursor = page.nextCursor
    }
    return Option.none<M.SuspendedExecutionEntry>()
  })
