/**
 * What the operations of the Valkey core share (core.ts assembles them from one module per area:
 * claim, lifecycle, flows, signals, streams, budgets, admin, reads): the plumbing (the FCALL, key
 * names, the client, the settings), the id registry, the targets of an id's partition, the lease
 * fence, and the reply schemas of several areas.
 */
import { Effect, Schema } from "effect"
import { type EngineError, invalidInput } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { HandleRef } from "../../internal/boundary.js"
import { IntStr, type Plumbing, type Target } from "./plumbing.js"
import { makeRegistry, type Registry } from "./registry.js"

export type Fx<A> = Effect.Effect<A, EngineError>

export const S = Schema.String
export const Str = Schema.Record({ key: Schema.String, value: Schema.String })
export const T_Int = Schema.Tuple(IntStr)
export const T_Str = Schema.Tuple(S)

/** The lease fence of a handle, as every write of the lease holder takes it (flowfabric.lua). */
export const fence = (h: HandleRef) => ({
  execution_id: h.payload.executionId,
  attempt_index: h.payload.attemptIndex,
  attempt_id: h.payload.attemptId,
  lease_id: h.payload.leaseId,
  lease_epoch: h.payload.leaseEpoch
})

export interface CoreContext extends Plumbing {
  readonly registry: Registry
  /** The number of flow partitions. */
  readonly N: number
  /** The target of an execution's partition, of a flow's, a budget's, a quota policy's. */
  readonly ex: (id: Ids.ExecutionId) => Target
  readonly flowOf: (id: Ids.FlowId) => Target
  readonly budgetOf: (id: Ids.BudgetId) => Target
  readonly quotaOf: (id: Ids.QuotaPolicyId) => Target
  /** Fails with InvalidInput when the id's partition is not one of the deployment's. */
  readonly inRange: (id: Ids.ExecutionId) => Fx<void>
  /** The InvalidInput of an id whose partition is not one of the deployment's (`inRange`'s failure). */
  readonly rangeError: (id: Ids.ExecutionId) => EngineError
}

export const makeCoreContext = (p: Plumbing): CoreContext => {
  const { keys, settings } = p
  const N = settings.partitions.numFlowPartitions
  const rangeError = (id: Ids.ExecutionId): EngineError =>
    invalidInput(`execution id ${id}: partition ${Ids.executionPartition(id)} >= numFlowPartitions ${N}`)
  return {
    ...p,
    registry: makeRegistry(p),
    N,
    ex: (id) => p.flowTarget(Ids.executionPartition(id)),
    flowOf: (id) => p.flowTarget(Ids.flowPartition(id, settings.partitions)),
    budgetOf: (id) => ({ base: keys.budget(Ids.budgetPartition(id, settings.partitions)) }),
    quotaOf: (id) => ({ base: keys.quota(Ids.quotaPartition(id, settings.partitions)) }),
    inRange: (id) => Ids.executionPartition(id) < N ? Effect.void : Effect.fail(rangeError(id)),
    rangeError
  }
}
