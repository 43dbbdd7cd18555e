/**
 * An idle worker for the tests of a create that claims for it (`WorkSubscription.onHandoff`;
 * docs/worker.md, "Wake-ups, timers and cancellation").
 */
import { Deferred, Effect, Option, Schedule } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import type { LaneId } from "../../src/Ids.js"
import * as Worker from "../../src/Worker.js"

/**
 * Runs a worker (idle poll of an hour: only a wake-up or a handoff picks work up) over the backend
 * in context; returns once it waits with its handoff set. Counts the handoffs its subscription gave
 * a create (`handed`), the claim calls the worker made itself (`claims`: a completeAndClaim without
 * completions, a claimMany, a claim) and the executions any of its calls took (`taken`).
 */
export const idleWorker = (lane: LaneId, handler: Worker.Handler<never>) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const waiting = yield* Deferred.make<void>()
    let handed = 0
    let claims = 0
    let taken = 0
    const service: EngineBackend.Service = {
      ...b,
      completeAndClaim: (items, claim) => {
        if (items.length === 0) claims++
        return Effect.tap(b.completeAndClaim(items, claim), (r) => Effect.sync(() => void (taken += r.claimed.length)))
      },
      claimMany: (args, max) => {
        claims++
        return Effect.tap(b.claimMany(args, max), (r) => Effect.sync(() => void (taken += r.length)))
      },
      claim: (args) => {
        claims++
        return Effect.tap(b.claim(args), (r) => Effect.sync(() => void (taken += Option.isSome(r) ? 1 : 0)))
      },
      subscribeWork: (args) =>
        Effect.map(b.subscribeWork(args), (sub): EngineBackend.WorkSubscription => ({
          ...sub,
          onHandoff: (f) => {
            sub.onHandoff?.(f === undefined ? undefined : (l) => {
              const h = f(l)
              if (h !== undefined) handed++
              return h
            })
            if (f !== undefined) Deferred.unsafeDone(waiting, Effect.void)
          }
        }))
    }
    yield* Effect.forkScoped(
      Worker.run({ lanes: [lane], handlers: [handler], idle: Schedule.spaced("1 hour"), workerId: "handoff" }).pipe(
        Effect.provideService(EngineBackend, service)
      )
    )
    yield* Deferred.await(waiting)
    return { handed: Effect.sync(() => handed), claims: Effect.sync(() => claims), taken: Effect.sync(() => taken) }
  })
