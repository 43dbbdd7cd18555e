// The Lua function library called directly, below the service boundary, by
// test/valkey-library.test.ts and test/valkey-library-writes.test.ts: raw FCALLs and the
// arguments they send; and the server's command counts, which other Valkey tests read too.
import { Clock, Effect } from "effect"
import { Redis } from "iovalkey"
import * as Ids from "../../src/Ids.js"

/** The key bases of a test file's key prefix: a partition's, a budget's. */
export const keyBases = (prefix: string) => ({
  base: (p: number) => `${prefix}:{fp:${p}}`,
  budgetBase: (m: number) => `${prefix}:{b:${m}}`
})

/** How many times the server has run `command` (inside functions too), from `INFO commandstats`. */
export const commandCalls = (admin: Redis, command: string) =>
  Effect.promise(async () => {
    const info = await admin.info("commandstats")
    return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? "0")
  })

/** A connection of the test's own, closed with its scope. */
export const adminConnection = (url: string) =>
  Effect.acquireRelease(
    Effect.sync(() => new Redis(url, { maxRetriesPerRequest: 1 })),
    (c) => Effect.promise(() => c.quit())
  )

/** A raw FCALL of the library at the layer's time (Effect's Clock): its reply, or the error it failed with. */
export const fcall = (admin: Redis, fn: string, key: string, args: object, blobs: ReadonlyArray<string> = []) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.promise(() =>
      (admin.call("FCALL", fn, "1", key, String(now), JSON.stringify(args), ...blobs) as Promise<Array<unknown>>).then(
        (r) => ({ ok: true as const, reply: r }),
        (e: unknown) => ({ ok: false as const, error: String(e) })
      )
    ))

/** A raw FCALL with more keys than the partition base (KEYS[2..]). */
export const fcallKeys = (admin: Redis, fn: string, keys: ReadonlyArray<string>, args: object, blobs: ReadonlyArray<string> = []) =>
  Effect.flatMap(Clock.currentTimeMillis, (now) =>
    Effect.promise(() =>
      (admin.call("FCALL", fn, String(keys.length), ...keys, String(now), JSON.stringify(args), ...blobs) as Promise<Array<unknown>>)
        .then(
          (r) => ({ ok: true as const, reply: r }),
          (e: unknown) => ({ ok: false as const, error: String(e) })
        )
    ))

/** The reply of a call that did not throw (undefined otherwise). */
export const replyOf = (out: { ok: true; reply: Array<unknown> } | { ok: false; error: string }) => (out.ok ? out.reply : undefined)

/** The code of a refusal reply ({0, code, detail}), or undefined. */
export const refused = (out: { ok: boolean; reply?: Array<unknown> }) =>
  out.ok && out.reply?.[0] === 0 ? out.reply[1] : undefined

export const tagsOf = (n: number) => {
  const tags: Record<string, string> = {}
  for (let i = 0; i < n; i++) tags[`lib.tag${i}`] = `value-${i}`
  return tags
}

export const claimPolicy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("w-i"), leaseTtlMs: 30_000 }

export const lane = Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`lib-${u.slice(0, 8)}`))

/** The arguments of ff_create (and of one item of ff_create_many / a member of ff_create_flow_graph). */
export const createArgs = (executionId: Ids.ExecutionId, laneId: Ids.LaneId, tags: Record<string, string>) => ({
  execution_id: executionId,
  namespace: "lib",
  lane_id: laneId,
  execution_kind: "k",
  priority: 0,
  creator_identity: "",
  payload_encoding: "",
  tags,
  required_capabilities: ""
})
