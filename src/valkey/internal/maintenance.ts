/**
 * The maintenance passes over Valkey. A pass first asks every partition (one
 * read-only FCALL each, `fanOut` of them in one pipeline at a time) how much of its work is due, then hands
 * out the batch budget in partition order and runs the write FCALL only on the
 * partitions that got a share. So `batchSize` bounds the items of one run
 * across all partitions, and `more` tells whether due work was left. A
 * partition's share goes in FCALLs of at most PASS_CHUNK items, one after the
 * other, so no call of a pass holds the server long (docs/limits.md).
 *
 * The probes of the flow partitions go in groups, one read-only FCALL per
 * group (ff_pass_due_across): on a standalone server PROBE_GROUP partitions a
 * call, on a cluster the partitions one node serves (a call that meets a slot
 * served elsewhere is asked again one partition at a time). So an idle
 * process sends a few calls per run, not one per partition.
 *
 * A timer pass that leaves no due work also reports its next due time: the
 * earliest score left in the indexes it walked, the minimum over the
 * partitions (a partition with nothing due gives its probe's earliest score, a
 * partition worked gives its last call's, read after its writes).
 */
import { Effect, Schema } from "effect"
import type { EngineError } from "../../EngineError.js"
import { DEFAULT_BATCH_SIZE, type Maintenance, type PassName, type PassResult } from "../../Maintenance.js"
import { parseError } from "./errors.js"
import { makePartitionGroups } from "./groups.js"
import { decodeFields, type Envelope, IntStr, type Plumbing, type Target } from "./plumbing.js"
import { makeRegistry } from "./registry.js"

const LUA_PASS: Record<PassName, string> = {
  expireLeases: "expire_leases",
  promoteDelayed: "promote_delayed",
  expireAttempts: "expire_attempts",
  expireExecutions: "expire_executions",
  expireSuspensions: "expire_suspensions",
  expirePendingWaitpoints: "expire_pending_waitpoints",
  reconcileDependencies: "reconcile_dependencies",
  drainCancelBacklog: "drain_cancel_backlog",
  resetBudgets: "reset_budgets",
  trimRetention: "trim_retention"
}

/** The passes over timer indexes, which report `PassResult.nextDueAt`. */
const TIMER_PASSES: ReadonlySet<PassName> = new Set([
  "expireLeases",
  "promoteDelayed",
  "expireAttempts",
  "expireExecutions",
  "expireSuspensions",
  "expirePendingWaitpoints",
  "resetBudgets"
])

/** Items one pass FCALL handles at most; how far one probe counts. */
const PASS_CHUNK = 200
const PROBE_CAP = 1000
/** Flow partitions one probe call asks at most (a call's constant work per partition stays small). */
const PROBE_GROUP = 64

/** An earliest score, or "" for none. */
const DueAt = Schema.Union(Schema.Literal(""), Schema.NumberFromString)
const Due = Schema.Tuple(IntStr, DueAt)
type Due = typeof Due.Type
const Done = Schema.Tuple(IntStr, Schema.Literal("0", "1"), Schema.optionalElement(DueAt))

const earlier = (a: number | undefined, b: number | "" | undefined): number | undefined =>
  b === undefined || b === "" || (a !== undefined && a <= b) ? a : b

export const makeMaintenance = (p: Plumbing): Maintenance.Service => {
  const { settings, keys } = p
  const registry = makeRegistry(p)
  const flowTargets: ReadonlyArray<Target> = Array.from(
    { length: settings.partitions.numFlowPartitions },
    (_, i) => p.flowTarget(i)
  )
  const budgetTargets: ReadonlyArray<Target> = Array.from(
    { length: settings.partitions.numBudgetPartitions },
    (_, i) => ({ base: keys.budget(i) })
  )

  const N = settings.partitions.numFlowPartitions
  const nodeGroups = makePartitionGroups({ client: p.client, keys, N })
  const probeGroups = (): ReadonlyArray<ReadonlyArray<number>> =>
    nodeGroups().flatMap((g) =>
      Array.from({ length: Math.ceil(g.length / PROBE_GROUP) }, (_, i) => g.slice(i * PROBE_GROUP, (i + 1) * PROBE_GROUP))
    )

  const probeOne = (target: Target, args: Record<string, unknown>): Effect.Effect<Due, EngineError> =>
    Effect.flatMap(p.call("pass_due", target, args, [], true), (env) => decodeFields("ff_pass_due", Due, env.fields))

  /** Each part's [due, earliest], or undefined for a part the group's call left unprobed (the cap was reached). */
  const decodeAcross = (
    parts: ReadonlyArray<number>,
    env: Envelope
  ): Effect.Effect<ReadonlyArray<readonly [number, Due | undefined]>, EngineError> =>
    Effect.gen(function*() {
      const f = env.fields
      const n = Number(f[0])
      if (!Number.isSafeInteger(n) || n < 0 || n > parts.length || f.length !== 1 + 3 * n) {
        return yield* Effect.fail(parseError("ff_pass_due_across", `a reply of ${f.length} fields`))
      }
      const out: Array<readonly [number, Due | undefined]> = []
      for (let i = 0; i < parts.length; i++) {
        if (i >= n) {
          out.push([parts[i]!, undefined])
          continue
        }
        const due = yield* decodeFields("ff_pass_due_across", Due, [f[1 + 3 * i]!, f[2 + 3 * i]!])
        const wake = f[3 + 3 * i]!
        if (wake !== "") yield* p.applyWake(parts[i]!, wake)
        out.push([parts[i]!, due])
      }
      return out
    })

  /** The probes of every flow partition, in partition order, one call per group. */
  const probeFlows = (args: Record<string, unknown>) =>
    Effect.map(
      Effect.forEach(
        probeGroups(),
        (parts) => {
          const alone = Effect.forEach(
            parts,
            (q) => Effect.map(probeOne(p.flowTarget(q), args), (d) => [q, d] as const),
            { concurrency: settings.fanOut }
          )
          return parts.length === 1 ? alone : p.call(
            "pass_due_across",
            p.flowTarget(parts[0]!),
            { ...args, prefix: settings.prefix, parts },
            [],
            true
          ).pipe(
            Effect.flatMap((env) => decodeAcross(parts, env)),
            // a stale slot map: each partition alone
            Effect.catchAll(() => alone)
          )
        },
        { concurrency: settings.fanOut }
      ),
      (groups) => {
        const dues = new Array<Due | undefined>(N)
        for (const g of groups) for (const [q, d] of g) dues[q] = d
        return dues
      }
    )

  /** The budget partitions' probes, fanOut at a time, each group in one pipeline (callEach). */
  const probeBudgets = (targets: ReadonlyArray<Target>, args: Record<string, unknown>) => {
    const groups: Array<ReadonlyArray<Target>> = []
    for (let i = 0; i < targets.length; i += settings.fanOut) groups.push(targets.slice(i, i + settings.fanOut))
    return Effect.map(
      Effect.forEach(groups, (group) =>
        Effect.flatMap(
          p.callEach("pass_due", group, args),
          (envs) => Effect.forEach(envs, (env) => decodeFields("ff_pass_due", Due, env.fields))
        )),
      (ds) => ds.flat()
    )
  }

  // every 8th promoteDelayed probe also re-reports the lanes with claimable work (lost claim hints)
  let promotions = 0

  const run = (name: PassName, batchSize: number): Effect.Effect<PassResult, EngineError> =>
    Effect.gen(function*() {
      const pass = LUA_PASS[name]
      const repair = name === "promoteDelayed" && promotions++ % 8 === 0
      const targets = name === "resetBudgets" ? budgetTargets : flowTargets
      const batch = Math.max(1, Math.floor(batchSize))
      const args = { pass, cap: Math.min(batch, PROBE_CAP) + 1, repair }
      const dues: ReadonlyArray<Due | undefined> = name === "resetBudgets" ?
        yield* probeBudgets(targets, args) :
        yield* probeFlows(args)
      let remaining = batch
      let more = false
      let nextDueAt: number | undefined
      const jobs: Array<readonly [Target, number]> = []
      for (let i = 0; i < targets.length; i++) {
        const probed = dues[i]
        if (probed === undefined) {
          // not probed: the counts before it reached the cap, so the batch is shared out already
          more = true
          break
        }
        const [due, first] = probed
        if (due === 0) {
          nextDueAt = earlier(nextDueAt, first)
          continue
        }
        if (remaining === 0) {
          more = true
          break
        }
        const share = Math.min(due, remaining)
        if (due > share) more = true
        remaining -= share
        jobs.push([targets[i]!, share])
      }
      // a partition's share in chunks, one after the other: the last chunk says whether more is due
      const results = yield* Effect.forEach(
        jobs,
        ([target, share]) =>
          Effect.gen(function*() {
            let done = 0
            let left = share
            let last: "0" | "1" = "0"
            let next: number | "" | undefined
            while (left > 0) {
              const chunk = Math.min(left, PASS_CHUNK)
              const env = yield* p.call(`pass_${pass}`, target, { batch: chunk })
              const [n, m, at] = yield* decodeFields(`ff_pass_${pass}`, Done, env.fields)
              done += n
              left -= chunk
              last = m
              next = at
              if (m === "0") break
            }
            // the registry keys of the ids the deleted executions owned (other slots than the partition's)
            if (name === "trimRetention" && target.partition !== undefined) yield* registry.free(target.partition)
            return [done, last, next] as const
          }),
        { concurrency: settings.fanOut }
      )
      let processed = 0
      for (const [n, m, next] of results) {
        processed += n
        if (m === "1") more = true
        nextDueAt = earlier(nextDueAt, next)
      }
      return more || nextDueAt === undefined || !TIMER_PASSES.has(name) ?
        { pass: name, processed, more } :
        { pass: name, processed, more, nextDueAt }
    })

  const pass = (name: PassName): Maintenance.Pass => (options) =>
    run(name, options?.batchSize ?? DEFAULT_BATCH_SIZE)

  return {
    expireLeases: pass("expireLeases"),
    promoteDelayed: pass("promoteDelayed"),
    expireAttempts: pass("expireAttempts"),
    expireExecutions: pass("expireExecutions"),
    expireSuspensions: pass("expireSuspensions"),
    expirePendingWaitpoints: pass("expirePendingWaitpoints"),
    reconcileDependencies: pass("reconcileDependencies"),
    drainCancelBacklog: pass("drainCancelBacklog"),
    resetBudgets: pass("resetBudgets"),
    trimRetention: pass("trimRetention")
  }
}
