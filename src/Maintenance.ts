/**
 * The maintenance passes every backend implements (architecture.md §6): the
 * work upstream runs as background scanners. Each pass is bounded by a batch
 * size and reports what it did; `Reconciler` runs them on `Schedule`s.
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
  "resetBudgets"
)
/** @since 0.1.0 */
export type PassName = typeof PassName.Type

/** @since 0.1.0 */
export const passNames: ReadonlyArray<PassName> = PassName.literals

/**
 * What one run of a pass did: how many items it changed and whether more
 * were due than the batch allowed (run it again soon).
 *
 * @since 0.1.0
 */
export const PassResult = Schema.Struct({
  pass: PassName,
  processed: Schema.Int.pipe(Schema.nonNegative()),
  more: Schema.Boolean
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
 * @since 0.1.0
 */
export declare namespace Maintenance {
  /** @since 0.1.0 */
  export type Pass = (options?: PassOptions) => Effect.Effect<PassResult, EngineError>

  /** @since 0.1.0 */
  export type Service = { readonly [K in PassName]: Pass }
}

/**
 * - `expireLeases`: leases past their expiry become reclaimable (T12).
 * - `promoteDelayed`: delayed and backoff executions whose time came become eligible (T20).
 * - `expireAttempts`: attempts past their attempt timeout end the execution `expired` (T15).
 * - `expireExecutions`: executions past their deadline end `expired` (T15).
 * - `expireSuspensions`: suspensions past `timeoutAt` apply their timeout behaviour (T16/T18/T19).
 * - `expirePendingWaitpoints`: pending waitpoints past their expiry are closed.
 * - `reconcileDependencies`: the safety net for flow dependency resolution (P4).
 * - `drainCancelBacklog`: cancels members a flow cancellation still owes (P5).
 * - `resetBudgets`: budgets whose reset interval elapsed are zeroed.
 *
 * @since 0.1.0
 * @category tags
 */
export class Maintenance extends Context.Tag("flowfabric/Maintenance")<Maintenance, Maintenance.Service>() {}
