/** The interpreter, admin: operator calls on an execution (revoke its lease, cancel, change priority, replay). */
import { Effect, Either, Option } from "effect"
import type * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import { clampPriority } from "../../src/internal/validation.js"
import type { Command } from "./commands.js"
import { attempt, rec, type Step, type Stepped } from "./run.js"

type AdminCommand = Extract<
  Command,
  { readonly _tag: "RevokeLease" | "CancelExecution" | "ChangePriority" | "ReplayExecution" }
>

/**
 * The priority nearest `wanted` (clamped) that no other item of `executionId`'s batch has: the
 * items share one creation time, and the claim order of a tie is not specified.
 */
const untied = (batch: ReadonlyMap<ExecutionId, number>, executionId: ExecutionId, wanted: number): number => {
  const taken = new Set([...batch].filter(([id]) => id !== executionId).map(([, p]) => p))
  const p = clampPriority(wanted)
  for (let d = 0;; d++) {
    if (p + d <= 9000 && !taken.has(p + d)) return p + d
    if (p - d >= 0 && !taken.has(p - d)) return p - d
  }
}

export const admin = (s: Step, cmd: AdminCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { b, i, run, withExecution } = s
    switch (cmd._tag) {
      case "RevokeLease":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.gen(function*() {
            let expectedLeaseId: Ids.LeaseId | undefined
            if (cmd.expected === "stale") expectedLeaseId = run.mint("stale-lease", i) as Ids.LeaseId
            if (cmd.expected === "current") {
              const s = yield* attempt(run, b.describeExecution(executionId))
              if (Either.isRight(s) && Option.isSome(s.right)) expectedLeaseId = s.right.value.currentLease?.leaseId
            }
            const r = yield* attempt(
              run,
              b.revokeLease({
                executionId,
                reason: `revoke at ${i}`,
                ...(expectedLeaseId === undefined ? {} : { expectedLeaseId })
              })
            )
            return rec(run, r)
          }))

      case "CancelExecution":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.map(attempt(run, b.cancelExecution({ executionId, reason: `operator at ${i}` })), (r) => rec(run, r)))

      case "ChangePriority":
        return yield* withExecution(cmd.execution, (executionId) => {
          const batch = run.batches.get(executionId)
          const newPriority = batch === undefined ? cmd.priority : untied(batch, executionId, cmd.priority)
          return Effect.map(attempt(run, b.changePriority({ executionId, newPriority })), (r) => {
            if (batch !== undefined && Either.isRight(r)) batch.set(executionId, newPriority)
            return rec(run, r)
          })
        })

      case "ReplayExecution":
        return yield* withExecution(
          cmd.execution,
          (executionId) => Effect.map(attempt(run, b.replayExecution(executionId)), (r) => rec(run, r))
        )
    }
  })
