/**
 * The id registry: `<prefix>:sigid:<id>` and `<prefix>:wpid:<id>` name the execution that owns a
 * signal id or a waitpoint id, whatever partition it lives on, so that no execution reuses
 * another's (docs/backends.md, "Keys and slots"; helpers.lua, "the id registry").
 *
 * On a standalone server the registry keys go with the FCALL that takes the ids (KEYS[2..]): the
 * function checks them before its first write and sets them with its writes. On a cluster they
 * live in other slots than the partition, so the ids are reserved first, one `ff_reserve_id` each
 * in the key's own slot, and the FCALL learns which ones another execution owns (`taken`). A
 * reservation the call created is given back when the call is refused, or when it did not use the
 * id (a keyed call answered with its first outcome). A client lost between the reservation and
 * the call leaves the reservation to its execution: a retry by that execution goes through, any
 * other is refused.
 *
 * Retention hands back the ids of the executions it deletes: the pass lists them in its
 * partition's `idfree` set, and `free` deletes their registry keys in bounded batches.
 */
import { randomUUID } from "node:crypto"
import { Cause, Effect, Exit, Option, Schema } from "effect"
import type { EngineError } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import { decodeFields, type Plumbing } from "./plumbing.js"

/** What the FCALL that takes the ids is given: the registry keys (standalone) or which ids are taken (cluster). */
export interface IdClaims {
  readonly keys?: ReadonlyArray<string>
  readonly taken?: ReadonlyArray<boolean>
}

/** Registry entries one `free` batch handles. */
const FREE_BATCH = 200

/** ff_reserve_id: its status. */
const Reserved = Schema.Tuple(Schema.Literal("CREATED", "OWNED", "TAKEN"))
const Freed = Schema.Tuple(Schema.Literal("0", "1"))

export interface Registry {
  /**
   * Runs `use` (the FCALL taking the ids whose registry keys are `keys`, for `owner`), with what
   * it must pass on; `uses(result, i)` tells whether the result took the i-th id.
   */
  readonly withIds: <A>(
    owner: Ids.ExecutionId,
    keys: ReadonlyArray<string>,
    use: (claims: IdClaims) => Effect.Effect<A, EngineError>,
    uses: (result: A, index: number) => boolean
  ) => Effect.Effect<A, EngineError>
  /** Deletes the registry keys retention listed for partition `p`, in batches, until none is left. */
  readonly free: (p: number) => Effect.Effect<void, EngineError>
}

export const makeRegistry = (p: Plumbing): Registry => {
  const { call, client, keys } = p

  const release = (owner: string, nonce: string, which: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.forEach(
      which,
      (key) =>
        call("release_id", { base: key }, { owner, nonce }).pipe(
          Effect.catchAll((e) =>
            Effect.logWarning(`flowfabric valkey: cannot give back the reservation ${key}: ${e.message}`)
          )
        ),
      { concurrency: "unbounded", discard: true }
    )

  const withIds: Registry["withIds"] = (owner, registryKeys, use, uses) =>
    !client.isCluster ?
      use({ keys: registryKeys }) :
      Effect.gen(function*() {
        const nonce = randomUUID()
        const statuses = yield* Effect.forEach(
          registryKeys,
          (key) =>
            Effect.flatMap(
              call("reserve_id", { base: key }, { owner, nonce }),
              (env) => decodeFields("ff_reserve_id", Reserved, [env.status, ...env.fields])
            ),
          { concurrency: "unbounded" }
        )
        const created = registryKeys.filter((_, i) => statuses[i]![0] === "CREATED")
        const exit = yield* Effect.exit(use({ taken: statuses.map(([s]) => s === "TAKEN") }))
        if (Exit.isSuccess(exit)) {
          const unused = registryKeys.filter((_, i) => statuses[i]![0] === "CREATED" && !uses(exit.value, i))
          if (unused.length > 0) yield* release(owner, nonce, unused)
          return exit.value
        }
        // a refusal wrote nothing; a write that may have run (a lost connection) keeps its reservations
        const failure = Cause.failureOption(exit.cause)
        if (created.length > 0 && Option.isSome(failure) && (failure.value._tag !== "Transport" || failure.value.retryable)) {
          yield* release(owner, nonce, created)
        }
        return yield* exit
      })

  const free: Registry["free"] = (partition) =>
    Effect.gen(function*() {
      const queue = keys.idsToFree(partition)
      for (;;) {
        const entries = yield* client.run("SRANDMEMBER idfree", (c) => c.srandmember(queue, FREE_BATCH))
        if (entries.length === 0) return
        yield* Effect.forEach(
          entries,
          (entry) => {
            const space = entry.indexOf(" ")
            const colon = entry.indexOf(":")
            const kind = entry.slice(0, colon)
            const id = entry.slice(colon + 1, space)
            const key = kind === "sigid" ? keys.signalOwner(id) : keys.waitpointOwner(id)
            return Effect.flatMap(
              call("release_id", { base: key }, { owner: entry.slice(space + 1) }),
              (env) => decodeFields("ff_release_id", Freed, env.fields)
            )
          },
          { concurrency: p.settings.fanOut, discard: true }
        )
        yield* client.run("SREM idfree", (c) => c.srem(queue, ...entries))
      }
    })

  return { withIds, free }
}
