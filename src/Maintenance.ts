/**
 * The maintenance passes every backend implements: the work that falls due at
 * a time rather than being caused by a call. Each pass is bounded by a batch
 * size and reports what it did; `Reconciler` runs them on `Schedule`s (see
 * docs/design/maintenance.md#passes).
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import { Context, Schema } from "effect"
import type { EngineError } from "./EngineError.js"

/** @since 0.1.0 */
export const PassName = Schema.Literal(
  "expireLeases",
  "promoteDelayed",
  "expireAttempts",
  "expireExecutions",
  "expireSuspensions",
  "expirePendingWaitpoints",
  "reconcileDependencies",
  "drainCancelBacklog",
  "resetBudgets",
  "trimRetention"
)
/** @since 0.1.0 */
export type PassName = typeof PassName.Type

/** @since 0.1.0 */
export const passNames: ReadonlyArray<PassName> = PassName.literals

/**
 * What one run of a pass did: how many items it changed and whether more
 * were due than the batch allowed (run it again soon). A pass over timers may
 * also tell when its next item is due (`nextDueAt`, ms, the store's clock), so
 * that the `Reconciler` runs it then rather than at its next interval.
 *
 * @since 0.1.0
 */
export const PassResult = Schema.Struct({
  pass: PassName,
  processed: Schema.Int.pipe(Schema.nonNegative()),
  more: Schema.Boolean,
  nextDueAt: Schema.optional(Schema.Number)
})
/** @since 0.1.0 */
export type PassResult = typeof PassResult.Type

/** @since 0.1.0 */
export interface PassOptions {
  /** At most this many items per run (default 1 000). */
  readonly batchSize?: number | undefined
}

/** @since 0.1.0 */
export const DEFAULT_BATCH_SIZE = 1000

/**
 * How long a terminal execution is kept when its policy does not say
 * (`streamPolicy.retentionTtlMs`): 24 hours (see
 * docs/design/maintenance.md#trim-retention).
 *
 * @since 0.1.0
 */
export const DEFAULT_RETENTION_MS = 86_400_000

/**
 * @since 0.1.0
 */
export declare namespace Maintenance {
  /** @since 0.1.0 */
  export type Pass = (options?: PassOptions) => Effect.Effect<PassResult, EngineError>

  /** @since 0.1.0 */
  export type Service = { readonly [K in PassName]: Pass }
}

/**
 * - `expireLeases`: leases past their expiry become reclaimable.
 * - `promoteDelayed`: delayed and backoff executions whose time came become eligible.
 * - `expireAttempts`: attempts past their attempt timeout end the execution `expired`.
 * - `expireExecutions`: executions past their deadline end `expired`.
 * - `expireSuspensions`: suspensions past `timeoutAt` apply their timeout behaviour.
 * - `expirePendingWaitpoints`: pending waitpoints past their expiry are closed.
 * - `reconcileDependencies`: the safety net for flow dependency resolution,
 *   which normally happens in the terminal step of the execution depended on.
 * - `drainCancelBacklog`: cancels members a flow cancellation still owes.
 * - `resetBudgets`: budgets whose reset interval elapsed are zeroed.
 * - `trimRetention`: terminal executions whose retention elapsed are deleted
 *   (see docs/design/maintenance.md#trim-retention). The retention of an
 *   execution is its policy's `streamPolicy.retentionTtlMs` (default
 *   `DEFAULT_RETENTION_MS`, 24 h), counted from its terminal transition
 *   (`completedAt`); it is due when
 *   `completedAt + retention <= now`. A due execution is deleted whole: core,
 *   payload, result, policy, tags, attempts, streams and summaries, claim
 *   grant, suspension and suspend dedup records, its waitpoints (with their
 *   conditions, signals and signal dedup records) and its signals; it leaves
 *   every index and listing. Afterwards it is unknown, exactly like an id never
 *   created: `describeExecution`, `readExecutionInfo`, `readExecutionState`,
 *   `getExecutionResult` return `None`, `listExecutions` no longer shows it, an
 *   operation with an old handle fails `NotFound`. An idempotency key it was
 *   created with keeps its own dedup window (`dedupWindowMs`, default 24 h):
 *   until that ends, a create with the key is still a `Duplicate` naming the
 *   deleted id. Dedup records whose window ended (create idempotency, suspend,
 *   signal and usage dedup, of any execution) are dropped by the same pass and
 *   not counted (on Valkey they expire on their own). Members of a flow are never deleted by this pass (their flow
 *   reads them: `describeFlow`, edges, counters); they stay until a flow
 *   retention exists. An execution that is not terminal (or was replayed) is
 *   never deleted, however old. One item per execution deleted; at most
 *   `batchSize` per run, `more` when more were due.
 *
 * @since 0.1.0
 * @category tags
 */
export class Maintenance extends Context.Tag("flowfabric/Maintenance")<Maintenance, Maintenance.Service>() {}
