/**
 * A worker's completions, written in batches (group commit): a completion waits only while the
 * previous batch is in flight, and everything that queued meanwhile goes in one `completeMany`.
 * Each caller gets the outcome its own `complete` would have had: a batch refused as a whole (one
 * item that does not validate, a transport failure) is written again item by item.
 */
import { Deferred, Effect, Either, Exit } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import type * as M from "../../Model.js"

export interface Completions {
  readonly complete: (handle: M.Handle, payload: Uint8Array) => Effect.Effect<void, EngineError>
}

interface Pending {
  readonly handle: M.Handle
  readonly payload: Uint8Array
  readonly done: Deferred.Deferred<void, EngineError>
}

/** `maxBatch` completions at most per call. */
export const make = (
  backend: EngineBackend.Service,
  maxBatch: number
): Effect.Effect<Completions> =>
  Effect.gen(function*() {
    let queued: Array<Pending> = []
    let writing = false

    const one = (p: Pending) =>
      Effect.flatMap(Effect.exit(backend.complete(p.handle, { payload: p.payload })), (exit) => Deferred.done(p.done, exit))

    const write = (batch: ReadonlyArray<Pending>): Effect.Effect<void> =>
      batch.length === 1 ? one(batch[0]!) : Effect.gen(function*() {
        const outcomes = yield* Effect.either(
          backend.completeMany(batch.map((p) => ({ handle: p.handle, payload: p.payload })))
        )
        if (Either.isLeft(outcomes)) {
          return yield* Effect.forEach(batch, one, { concurrency: "unbounded", discard: true })
        }
        for (const [i, p] of batch.entries()) {
          const outcome = outcomes.right[i]!
          yield* Deferred.done(p.done, Either.isRight(outcome) ? Exit.void : Exit.fail(outcome.left))
        }
      })

    // The writer runs in the fiber of the completion that found it idle, and drains what queues
    // meanwhile; the others only wait for their outcome.
    const drain: Effect.Effect<void> = Effect.suspend(() => {
      if (queued.length === 0) {
        writing = false
        return Effect.void
      }
      const batch = queued.slice(0, maxBatch)
      queued = queued.slice(batch.length)
      return Effect.zipRight(write(batch), drain)
    })

    return {
      complete: (handle, payload) =>
        Effect.flatMap(Deferred.make<void, EngineError>(), (done) =>
          Effect.suspend(() => {
            queued.push({ handle, payload, done })
            if (writing) return Deferred.await(done)
            writing = true
            return Effect.zipRight(Effect.uninterruptible(drain), Deferred.await(done))
          }))
    }
  })
