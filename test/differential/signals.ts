/**
 * The interpreter, signals: pending waitpoints, suspending on a fresh or pending waitpoint, delivering
 * signals with good, forged or foreign tokens, and observing the signals that resumed an attempt.
 */
import { Duration, Effect, Either } from "effect"
import type { SignalId, SuspensionId, WaitpointId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import type { Command } from "./commands.js"
import { attempt, now, payloadOf, pickRecent, rec, settle, skip, type Step, type Stepped } from "./run.js"

type SignalCommand = Extract<Command, { readonly _tag: "CreateWaitpoint" | "Suspend" | "DeliverSignal" | "ObserveSignals" }>

export const signals = (s: Step, cmd: SignalCommand): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const { b, i, out, run, touched, withHandle } = s
    switch (cmd._tag) {
      case "CreateWaitpoint":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.gen(function*() {
            const waitpointKey = `pwk:${i}`
            const r = yield* attempt(
              run,
              b.createWaitpoint(h, { waitpointKey, expiresIn: Duration.millis(cmd.expiresInMs) })
            )
            const p = payloadOf(h)
            if (Either.isRight(r) && p !== undefined) {
              const entry = {
                executionId: p.executionId,
                waitpointId: r.right.waitpointId,
                waitpointKey,
                token: r.right.hmacToken
              }
              run.pending.push(entry)
              run.signalable.push(entry)
            }
            return rec(run, r)
          }))

      case "Suspend":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.gen(function*() {
            const t = yield* now
            const p = payloadOf(h)
            let binding: M.WaitpointBinding
            let waitpointKey: string
            if (cmd.binding === "pending") {
              const own = run.pending.filter((x) => x.executionId === p?.executionId)
              const target = own[own.length - 1] ?? run.pending[run.pending.length - 1]
              if (target === undefined) return skip("no pending waitpoint")
              binding = { _tag: "UsePending", waitpointId: target.waitpointId }
              waitpointKey = target.waitpointKey
            } else {
              const waitpointId = run.mint("waitpoint", i) as WaitpointId
              waitpointKey = `wpk:${waitpointId}`
              binding = { _tag: "Fresh", waitpointId, waitpointKey }
            }
            const args: M.SuspendArgsInput = {
              suspensionId: run.mint("suspension", i) as SuspensionId,
              waitpoints: [binding],
              resumeCondition: {
                _tag: "Single",
                waitpointKey,
                matcher: cmd.matcher === "*" ? { _tag: "Wildcard" } : { _tag: "ByName", name: cmd.matcher }
              },
              ...(cmd.resumeDelayMs === undefined ? {} : {
                resumePolicy: {
                  resumeTarget: "runnable",
                  consumeMatchedSignals: true,
                  retainSignalBufferUntilClosed: false,
                  closeWaitpointOnResume: true,
                  resumeDelayMs: cmd.resumeDelayMs
                }
              }),
              ...(cmd.timeoutMs === undefined ? {} : { timeoutAt: t + cmd.timeoutMs }),
              ...(cmd.timeoutBehavior === undefined ? {} : { timeoutBehavior: cmd.timeoutBehavior }),
              ...(cmd.reasonCode === undefined ? {} : { reasonCode: cmd.reasonCode }),
              ...(cmd.idempotencyKey === undefined ? {} : { idempotencyKey: cmd.idempotencyKey })
            }
            const r = yield* attempt(run, b.suspend(h, args))
            settle(run, h, r, Either.isRight(r) && r.right._tag === "Suspended")
            if (Either.isRight(r) && p !== undefined) {
              const d = r.right.details
              run.signalable.push({ executionId: p.executionId, waitpointId: d.waitpointId, token: d.waitpointToken })
              if (r.right._tag === "Suspended") {
                // not lease-bearing: only picked by the larger refs (AlreadySuspended, ExecutionNotActive paths)
                run.handles.push(r.right.handle)
                run.spent.add(r.right.handle)
              }
            }
            return rec(run, r)
          }))

      case "DeliverSignal": {
        const wp = pickRecent(run.signalable, cmd.waitpoint)
        if (wp === undefined) return out(skip("no waitpoint"))
        touched.executions.push(wp.executionId)
        const forged = (token: string) => {
          const colon = token.indexOf(":")
          return `${token.slice(0, colon + 1)}${"0".repeat(Math.max(1, token.length - colon - 1))}`
        }
        const other = run.signalable.find((x) => x.token !== wp.token)
        const token = cmd.token === "good" || cmd.token === "unknownWaitpoint" ?
          wp.token :
          cmd.token === "other" && other !== undefined ?
          other.token :
          forged(wp.token)
        const waitpointId = cmd.token === "unknownWaitpoint" ?
          run.mint("unknown-waitpoint", i) as WaitpointId :
          wp.waitpointId
        const args: M.DeliverSignalArgsInput = {
          executionId: wp.executionId,
          waitpointId,
          signalId: run.mint("signal", i) as SignalId,
          signalName: cmd.name,
          signalCategory: "diff",
          sourceType: "test",
          sourceIdentity: "harness",
          waitpointToken: token,
          ...(cmd.idempotencyKey === undefined ? {} : { idempotencyKey: cmd.idempotencyKey }),
          ...(cmd.resumeDelayMs === undefined ? {} : { resumeDelayMs: cmd.resumeDelayMs })
        }
        return out(rec(run, yield* attempt(run, b.deliverSignal(args))))
      }

      case "ObserveSignals":
        return yield* withHandle(cmd.handle, (h) => Effect.map(attempt(run, b.observeSignals(h)), (r) => rec(run, r)))
    }
  })
