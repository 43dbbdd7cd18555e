/** Budgets (usage against hard and soft limits, reset on an interval) and quota policies. */
import { notFound } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import type * as M from "../../Model.js"
import { recordOf } from "../records.js"
import { DAY_MS, err, ok, type R } from "./helpers.js"
import type { Budget } from "./state.js"
import type { Store } from "./store.js"

const applyUsage = (
  b: Budget | undefined,
  dims: ReadonlyArray<readonly [string, number]>,
  dedupKey: string | undefined,
  now: number
): M.ReportUsageResult => {
  if (b === undefined) return { _tag: "Ok" }
  if (dedupKey !== undefined && dedupKey !== "") {
    const seen = b.dedup.get(dedupKey)
    if (seen !== undefined && seen > now) return { _tag: "AlreadyApplied" }
  }
  const sorted = [...dims].sort((a, c) => (a[0] < c[0] ? -1 : a[0] > c[0] ? 1 : 0))
  for (const [dim, delta] of sorted) {
    const hard = b.hard.get(dim) ?? 0
    const current = b.usage.get(dim) ?? 0
    if (hard > 0 && current + delta > hard) {
      b.breachCount += 1
      b.lastBreachAt = now
      b.lastBreachDim = dim
      b.lastUpdatedAt = now
      return { _tag: "HardBreach", dimension: dim, currentUsage: current, hardLimit: hard }
    }
  }
  let result: M.ReportUsageResult = { _tag: "Ok" }
  for (const [dim, delta] of sorted) {
    const next = (b.usage.get(dim) ?? 0) + delta
    b.usage.set(dim, next)
    const soft = b.soft.get(dim) ?? 0
    if (result._tag === "Ok" && soft > 0 && next > soft) {
      b.softBreachCount += 1
      result = { _tag: "SoftBreach", dimension: dim, currentUsage: next, softLimit: soft }
    }
  }
  b.lastUpdatedAt = now
  if (dedupKey !== undefined && dedupKey !== "") b.dedup.set(dedupKey, now + DAY_MS)
  return result
}

export const reportUsage = (
  store: Store,
  now: number,
  budgetId: Ids.BudgetId,
  dims: M.UsageDimensions
): R<M.ReportUsageResult> => {
  return ok(applyUsage(store.budgets.get(budgetId), Object.entries(dims.custom), dims.dedupKey, now))
}

export const reportUsageAdmin = (store: Store, now: number, args: M.ReportUsageAdminArgs): R<M.ReportUsageResult> => {
  const dims = args.dimensions.map((d, i) => [d, args.deltas[i]!] as const)
  return ok(applyUsage(store.budgets.get(args.budgetId), dims, args.dedupKey, now))
}

export const createBudget = (store: Store, now: number, args: M.CreateBudgetArgs): R<M.CreateBudgetResult> => {
  if (store.budgets.has(args.budgetId)) return ok({ _tag: "AlreadySatisfied", budgetId: args.budgetId })
  const hard = new Map<string, number>()
  const soft = new Map<string, number>()
  args.dimensions.forEach((d, i) => {
    hard.set(d, args.hardLimits[i]!)
    soft.set(d, args.softLimits[i]!)
  })
  const b: Budget = {
    id: args.budgetId,
    scopeType: args.scopeType,
    scopeId: args.scopeId,
    enforcementMode: args.enforcementMode,
    onHardLimit: args.onHardLimit,
    onSoftLimit: args.onSoftLimit,
    resetIntervalMs: args.resetIntervalMs,
    hard,
    soft,
    usage: new Map(),
    breachCount: 0,
    softBreachCount: 0,
    lastBreachAt: undefined,
    lastBreachDim: undefined,
    nextResetAt: args.resetIntervalMs > 0 ? now + args.resetIntervalMs : undefined,
    createdAt: now,
    lastUpdatedAt: now,
    resetCount: 0,
    lastResetAt: undefined,
    dedup: new Map()
  }
  store.budgets.set(b.id, b)
  if (b.nextResetAt !== undefined) store.budgetResets.push(b.nextResetAt, b.id)
  return ok({ _tag: "Created", budgetId: b.id })
}

export const resetBudgetCore = (store: Store, b: Budget, now: number): number => {
  for (const dim of b.usage.keys()) b.usage.set(dim, 0)
  b.resetCount += 1
  b.lastResetAt = now
  b.lastUpdatedAt = now
  b.lastBreachAt = undefined
  b.lastBreachDim = undefined
  if (b.resetIntervalMs > 0) {
    b.nextResetAt = now + b.resetIntervalMs
    store.budgetResets.push(b.nextResetAt, b.id)
    return b.nextResetAt
  }
  b.nextResetAt = undefined
  return 0
}

export const resetBudget = (store: Store, now: number, id: Ids.BudgetId): R<M.ResetBudgetResult> => {
  const b = store.budgets.get(id)
  if (b === undefined) return err(notFound("budget"))
  return ok({ _tag: "Reset", nextResetAt: resetBudgetCore(store, b, now) })
}

export const getBudgetStatus = (store: Store, _now: number, id: Ids.BudgetId): R<M.BudgetStatus> => {
  const b = store.budgets.get(id)
  if (b === undefined) return err(notFound("budget"))
  const obj = (m: Map<string, number>) => recordOf([...m].sort((a, c) => (a[0] < c[0] ? -1 : 1)))
  return ok({
    budgetId: b.id,
    scopeType: b.scopeType,
    scopeId: b.scopeId,
    enforcementMode: b.enforcementMode,
    usage: obj(b.usage),
    hardLimits: obj(b.hard),
    softLimits: obj(b.soft),
    breachCount: b.breachCount,
    softBreachCount: b.softBreachCount,
    ...(b.lastBreachAt === undefined ? {} : { lastBreachAt: String(b.lastBreachAt) }),
    ...(b.lastBreachDim === undefined ? {} : { lastBreachDim: b.lastBreachDim }),
    ...(b.nextResetAt === undefined ? {} : { nextResetAt: String(b.nextResetAt) }),
    createdAt: String(b.createdAt)
  })
}

export const createQuotaPolicy = (
  store: Store,
  now: number,
  args: M.CreateQuotaPolicyArgs
): R<M.CreateQuotaPolicyResult> => {
  if (store.quotas.has(args.quotaPolicyId)) return ok({ _tag: "AlreadySatisfied", quotaPolicyId: args.quotaPolicyId })
  store.quotas.set(args.quotaPolicyId, { ...args, createdAt: now })
  return ok({ _tag: "Created", quotaPolicyId: args.quotaPolicyId })
}
