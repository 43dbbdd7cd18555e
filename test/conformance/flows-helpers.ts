/** Helpers shared by the flow areas of the conformance suite (flows-*.ts). */
import { expect } from "@effect/vitest"
import { Effect } from "effect"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { backend, claimSome, payloadOf } from "./helpers.js"

export const permanent = { reason: { message: "nope" }, classification: "Permanent" } as const

/** Claims `id` (on its own lane) and completes it. */
export const completeMember = (m: { readonly executionId: ExecutionId; readonly lane: M.ClaimArgs["lane"] }) =>
  Effect.gen(function*() {
    const b = yield* backend
    const h = yield* claimSome(m.lane)
    expect(payloadOf(h).executionId).toBe(m.executionId)
    yield* b.complete(h)
  })

/** Claims `id` and fails it terminally. */
export const failMember = (m: { readonly executionId: ExecutionId; readonly lane: M.ClaimArgs["lane"] }) =>
  Effect.gen(function*() {
    const b = yield* backend
    const h = yield* claimSome(m.lane)
    expect(yield* b.fail(h, permanent)).toEqual({ _tag: "TerminalFailed" })
  })
