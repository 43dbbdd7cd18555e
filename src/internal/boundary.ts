/**
 * The edge every backend shares. A backend implements `BackendCore` over
 * decoded, validated arguments; `makeEngineBackend` turns it into the public
 * `EngineBackend.Service`: it decodes handles, validates caller input (bad
 * input fails with `Validation` before the core runs, so nothing is written),
 * and runs the cancellation wait of `cancelFlow`.
 *
 * Each area's operations live in `boundary/<area>.ts` (claim, lifecycle, flows,
 * signals, streams, budgets, admin, reads, maintenance); `boundary/context.ts`
 * holds the intake they share, `boundary/core.ts` the `BackendCore` contract.
 */
import type { EngineBackend } from "../EngineBackend.js"
import { adminOperations } from "./boundary/admin.js"
import { budgetOperations } from "./boundary/budgets.js"
import { claimOperations } from "./boundary/claim.js"
import { makeBoundary } from "./boundary/context.js"
import { eventOperations } from "./boundary/events.js"
import type { BackendCore } from "./boundary/core.js"
import { flowOperations } from "./boundary/flows.js"
import { lifecycleOperations } from "./boundary/lifecycle.js"
import { readOperations } from "./boundary/reads.js"
import { signalOperations } from "./boundary/signals.js"
import { streamOperations } from "./boundary/streams.js"
import { instrument } from "./observability.js"

export type {
  BackendCore,
  CoreArea,
  CreateExecutionCore,
  HandleRef,
  LanePage,
  LanePosition,
  LaneQuery
} from "./boundary/core.js"
export { encodePolicy } from "./boundary/lifecycle.js"
export { makeMaintenanceService } from "./boundary/maintenance.js"

/**
 * Wraps a core into the public service.
 */
export const makeEngineBackend = (core: BackendCore): EngineBackend.Service => {
  const b = makeBoundary(core)
  const service: EngineBackend.Service = {
    backendLabel: b.label,
    ...claimOperations(b),
    ...lifecycleOperations(b),
    ...flowOperations(b),
    ...signalOperations(b),
    ...streamOperations(b),
    ...budgetOperations(b),
    ...adminOperations(b),
    ...readOperations(b),
    ...eventOperations(b)
  }
  return instrument(service)
}
