/** The boundary of the maintenance passes. */
import { Effect } from "effect"
import { invalidInput } from "../../EngineError.js"
import { type Maintenance, type PassName, passNames } from "../../Maintenance.js"
import { quote } from "../quote.js"

/**
 * Wraps a backend's maintenance passes: their options are checked as every
 * other caller value (an object or nothing; `batchSize` a positive integer).
 */
export const makeMaintenanceService = (passes: Maintenance.Service): Maintenance.Service => {
  const checked = (name: PassName): Maintenance.Pass => (options) =>
    Effect.suspend(() => {
      if (options === undefined) return passes[name]()
      if (typeof options !== "object" || options === null || Array.isArray(options)) {
        return Effect.fail(invalidInput(`${name}: expected an options object or nothing, got ${quote(options)}`))
      }
      const batchSize: unknown = options.batchSize
      if (batchSize === undefined) return passes[name]()
      if (typeof batchSize !== "number" || !Number.isSafeInteger(batchSize) || batchSize < 1) {
        return Effect.fail(invalidInput(`${name}: batchSize must be a positive integer, got ${quote(batchSize)}`))
      }
      return passes[name]({ batchSize })
    })
  const out: Partial<Record<PassName, Maintenance.Pass>> = {}
  for (const name of passNames) out[name] = checked(name)
  return out as Maintenance.Service
}
