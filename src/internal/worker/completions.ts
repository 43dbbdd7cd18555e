/**
 * A worker's completions, written in batches (group commit): a completion waits only while the
 * previous batch is in flight, and everything that queued meanwhile goes in one call. With a
 * `Refill`, that call is a `completeAndClaim`: the slots the batch frees are filled with the next
 * executions of a lane in the same round trip (docs/worker.md, "Claims and completions in one
 * call"); without, a `completeMany`. Each caller gets the outcome its own `complete` would have
 * had: a batch refused as a whole (one item that does not validate, a transport failure, a
 * defect: logged) is written again item by item, and claims nothing. However a write ends, its
 * slot reservation is given back and the writer is free for the next batch.
 */
import { Cause, Effect, Either, Exit } from "effect"
import type { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import type * as M from "../../Model.js"

export interface Completions {
  readonly complete: (handle: M.Handle, payload: Uint8Array) => Effect.Effect<void, EngineError>
  /** `complete` of each item, queued at once and waited for by the caller alone; their outcomes in order. */
  readonly completeAll: (items: ReadonlyArray<Item>) => Effect.Effect<ReadonlyArray<Exit.Exit<void, EngineError>>>
}

/** A completion to write. */
export interface Item {
  readonly handle: M.Handle
  readonly payload: Uint8Array
}

/**
 * `items` written without a writer of batches: one `completeMany` (one `complete` for a single
 * item), each item's outcome in order. A call refused as a whole (one item that does not
 * validate, a transport failure, a defect: logged) is written again item by item, as a batch of
 * the writer is.
 */
export const completeAll = (
  backend: EngineBackend.Service,
  items: ReadonlyArray<Item>
): Effect.Effect<ReadonlyArray<Exit.Exit<void, EngineError>>> => {
  const oneByOne = Effect.forEach(items, (i) => Effect.exit(backend.complete(i.handle, { payload: i.payload })), {
    concurrency: "unbounded"
  })
  if (items.length === 1) return oneByOne
  return Effect.flatMap(
    Effect.exit(backend.completeMany(items)),
    (exit) =>
      Exit.isSuccess(exit) ?
        Effect.succeed(exit.value.map((o) => (Either.isRight(o) ? Exit.void : Exit.fail(o.left)))) :
        Effect.zipRight(refused(exit.cause), oneByOne)
  )
}

// A batch call that fails or dies is refused as a whole: a defect (not a typed error) is logged
// here, since no caller sees it; the batch is then written again completion by completion.
const refused = (cause: Cause.Cause<EngineError>) =>
  Cause.isFailure(cause) && !Cause.isDie(cause) ? Effect.void : Effect.logError("a batch of completions died; writing it one by one", cause)

/** How a batch of completions also claims: the worker's claim loop lends it its free slots. */
export interface Refill {
  /**
   * Reserves the slots a batch of `completing` completions may fill (they free theirs once
   * written): the claim to make, or `undefined` for none (no free slot, the worker stopping).
   */
  readonly reserve: (completing: number) => { readonly args: M.ClaimArgs; readonly max: number } | undefined
  /** Runs what the reserved claim took (maybe nothing) and gives the rest of the reservation back. */
  readonly launch: (
    reserved: { readonly args: M.ClaimArgs; readonly max: number },
    claimed: ReadonlyArray<EngineBackend.ClaimedWork>
  ) => Effect.Effect<void>
  /**
   * Starts the writer (uninterruptible, it never fails) in a fiber of its own that the worker's
   * drain waits for, and that holds no slot: the completion that found the writer idle then waits
   * for its outcome as the others do, its slot free for the claim of the batch it is in.
   */
  readonly startWriter: (writer: Effect.Effect<void>) => void
}

/**
 * One queued completion and its outcome. Its caller waits in an `Effect.async` that `done`
 * resumes (the first outcome wins, as a `Deferred`'s would): a `Deferred` per completion cost a
 * few microseconds to make (Effect builds each by spreading a prototype with symbol keys).
 */
class Pending {
  exit: Exit.Exit<void, EngineError> | undefined = undefined
  resume: ((exit: Exit.Exit<void, EngineError>) => void) | undefined = undefined
  constructor(readonly handle: M.Handle, readonly payload: Uint8Array) {}
  done(exit: Exit.Exit<void, EngineError>): void {
    if (this.exit !== undefined) return
    this.exit = exit
    const resume = this.resume
    if (resume !== undefined) {
      this.resume = undefined
      resume(exit)
    }
  }
  /** Its outcome, once `done`. */
  get await(): Effect.Effect<void, EngineError> {
    return this.exit ?? Effect.async<void, EngineError>((resume) => {
      if (this.exit !== undefined) return resume(this.exit)
      this.resume = resume
    })
  }
}

/** `maxBatch` completions at most per call. */
export const make = (
  backend: EngineBackend.Service,
  maxBatch: number,
  refill?: Refill
): Effect.Effect<Completions> =>
  Effect.sync(() => {
    let queued: Array<Pending> = []
    let writing = false

    const one = (p: Pending) =>
      Effect.map(Effect.exit(backend.complete(p.handle, { payload: p.payload })), (exit) => p.done(exit))

    const settle = (batch: ReadonlyArray<Pending>, outcomes: ReadonlyArray<Either.Either<void, EngineError>>) =>
      Effect.sync(() => {
        for (let i = 0; i < batch.length; i++) {
          const outcome = outcomes[i]!
          batch[i]!.done(Either.isRight(outcome) ? Exit.void : Exit.fail(outcome.left))
        }
      })

    const oneByOne = (batch: ReadonlyArray<Pending>) => Effect.forEach(batch, one, { concurrency: "unbounded", discard: true })

    const write = (batch: ReadonlyArray<Pending>): Effect.Effect<void> => {
      const reserved = refill?.reserve(batch.length)
      if (reserved === undefined || refill === undefined) {
        if (batch.length === 1) return one(batch[0]!)
        return Effect.flatMap(
          Effect.exit(backend.completeMany(batch.map((p) => ({ handle: p.handle, payload: p.payload })))),
          (exit) =>
            Exit.isSuccess(exit) ? settle(batch, exit.value) : Effect.zipRight(refused(exit.cause), oneByOne(batch))
        )
      }
      // the reservation goes back exactly once however the call ends (refill.launch gives it back)
      return Effect.flatMap(
        Effect.exit(backend.completeAndClaim(batch.map((p) => ({ handle: p.handle, payload: p.payload })), reserved)),
        (exit) =>
          Exit.isSuccess(exit) ?
            Effect.zipRight(refill.launch(reserved, exit.value.claimed), settle(batch, exit.value.completed)) :
            Effect.zipRight(Effect.zipRight(refused(exit.cause), refill.launch(reserved, [])), oneByOne(batch))
      )
    }

    // A write that still ends by a defect (in settling, or in starting what it claimed) fails the
    // completions it held that have no outcome yet, and the writer goes on: it never stays busy.
    const guarded = (batch: ReadonlyArray<Pending>): Effect.Effect<void> =>
      Effect.catchAllCause(write(batch), (cause) =>
        Effect.zipRight(
          Effect.logError("writing a batch of completions died", cause),
          Effect.sync(() => {
            for (const p of batch) p.done(Exit.failCause(cause))
          })
        ))

    // The writer is started by the completion that found it idle (in a fiber of its own with a
    // `Refill`, else in that completion's fiber), and drains what queues meanwhile; the completions
    // only wait for their outcome. Before it takes a batch it yields once:
    // the attempts a claim has just started run on the stack that started them, one after the
    // other, so their completions are all queued by then and go in one call (not the first alone,
    // then the rest); and the attempts the last batch settled have ended, so their slots count as
    // free for the claim the batch makes.
    const drain: Effect.Effect<void> = Effect.suspend(() => {
      if (queued.length === 0) {
        writing = false
        return Effect.void
      }
      const batch = queued.length <= maxBatch ? queued : queued.slice(0, maxBatch)
      queued = queued.length <= maxBatch ? [] : queued.slice(batch.length)
      return Effect.zipRight(guarded(batch), next)
    })
    const next = Effect.zipRight(Effect.yieldNow(), drain)

    /** Queues `ps`, and starts the writer when it is idle (see `drain`); the effect to wait with while it runs in the caller. */
    const enqueue = (ps: ReadonlyArray<Pending>): Effect.Effect<void> | undefined => {
      for (const p of ps) queued.push(p)
      if (writing) return undefined
      writing = true
      if (refill === undefined) return Effect.uninterruptible(next)
      refill.startWriter(next)
      return undefined
    }

    return {
      complete: (handle, payload) =>
        Effect.suspend(() => {
          const p = new Pending(handle, payload)
          const writer = enqueue([p])
          return writer === undefined ? p.await : Effect.zipRight(writer, p.await)
        }),
      completeAll: (items) =>
        Effect.suspend(() => {
          const ps = items.map((i) => new Pending(i.handle, i.payload))
          const all = Effect.forEach(ps, (p) => Effect.exit(p.await))
          const writer = enqueue(ps)
          return writer === undefined ? all : Effect.zipRight(writer, all)
        })
    }
  })
