/**
 * The lane index of the memory engine: each lane's executions in creation order (then id), and
 * its count per public state, kept by creation, every change of public state and deletion. The
 * lane queries read it (docs/design/reads.md#lane-queries).
 */
import { Either } from "effect"
import type { EngineError } from "../../EngineError.js"
import type * as Ids from "../../Ids.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { LanePage, LanePosition, LaneQuery } from "../boundary.js"
import type { Exec } from "./state.js"
import type { Store } from "./store.js"

/** One lane: its entries sorted by (creation time, id), and its counts per public state. */
export interface LaneEntries {
  readonly order: Array<LanePosition>
  readonly counts: Map<M.PublicState, number>
}

type R<A> = Either.Either<A, EngineError>
const ok = <A>(a: A): R<A> => Either.right(a)

const before = (a: LanePosition, b: LanePosition): boolean => a.at < b.at || (a.at === b.at && a.id < b.id)

/** The index of the first entry not before `p`. */
const lowerBound = (order: ReadonlyArray<LanePosition>, p: LanePosition): number => {
  let lo = 0
  let hi = order.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (before(order[mid]!, p)) lo = mid + 1
    else hi = mid
  }
  return lo
}

const laneOf = (store: Store, lane: Ids.LaneId): LaneEntries => {
  let l = store.laneEntries.get(lane)
  if (l === undefined) {
    l = { order: [], counts: new Map() }
    store.laneEntries.set(lane, l)
  }
  return l
}

const bump = (l: LaneEntries, s: M.PublicState, by: number): void => {
  l.counts.set(s, (l.counts.get(s) ?? 0) + by)
}

/** A new execution joins its lane (in its current public state). */
export const laneAdd = (store: Store, e: Exec): void => {
  const l = laneOf(store, e.laneId)
  const p = { at: e.createdAt, id: e.id }
  const last = l.order[l.order.length - 1]
  // executions mostly come in creation order: then the new one goes last
  if (last === undefined || before(last, p)) l.order.push(p)
  else l.order.splice(lowerBound(l.order, p), 0, p)
  bump(l, e.publicState, 1)
}

/** `e` moved from public state `from` to its current one. */
export const laneMoved = (store: Store, e: Exec, from: M.PublicState): void => {
  if (from === e.publicState) return
  const l = laneOf(store, e.laneId)
  bump(l, from, -1)
  bump(l, e.publicState, 1)
}

/** A deleted execution leaves its lane. */
export const laneRemove = (store: Store, e: Exec): void => {
  const l = store.laneEntries.get(e.laneId)
  if (l === undefined) return
  const i = lowerBound(l.order, { at: e.createdAt, id: e.id })
  if (l.order[i]?.id === e.id) l.order.splice(i, 1)
  bump(l, e.publicState, -1)
}

/**
 * A page of the lane: the entries after `q.after` in the query's order, examined one by one
 * (at most `Limits.laneScanItems`); when that budget ends the page first, it is returned short
 * with the last examined position to go on from.
 */
export const listLaneExecutions = (store: Store, _now: number, q: LaneQuery): R<LanePage> => {
  const order = store.laneEntries.get(q.laneId)?.order ?? []
  const states = q.states === undefined ? undefined : new Set(q.states)
  const entries: Array<M.LaneExecutionEntry> = []
  let i: number
  if (q.newestFirst) i = q.after === undefined ? order.length - 1 : lowerBound(order, q.after) - 1
  else {
    i = q.after === undefined ? 0 : lowerBound(order, q.after)
    if (q.after !== undefined && order[i]?.id === q.after.id && order[i]?.at === q.after.at) i++
  }
  const step = q.newestFirst ? -1 : 1
  let examined = 0
  let last: LanePosition | undefined
  for (; i >= 0 && i < order.length; i += step) {
    if (examined === Limits.laneScanItems) return ok({ entries, next: last })
    const p = order[i]!
    const e = store.executions.get(p.id)!
    examined++
    last = p
    if ((states !== undefined && !states.has(e.publicState)) || (q.kind !== undefined && e.kind !== q.kind)) continue
    if (entries.length === q.limit) return ok({ entries, next: positionOf(entries) })
    entries.push({ executionId: e.id, publicState: e.publicState, executionKind: e.kind, createdAt: e.createdAt })
  }
  return ok({ entries, next: undefined })
}

const positionOf = (entries: ReadonlyArray<M.LaneExecutionEntry>): LanePosition => {
  const x = entries[entries.length - 1]!
  return { at: x.createdAt, id: x.executionId }
}

/** The lane's count per public state. */
export const countLaneExecutions = (
  store: Store,
  _now: number,
  lane: Ids.LaneId
): R<Record<M.PublicState, number>> => {
  const counts = store.laneEntries.get(lane)?.counts
  const out = {} as Record<M.PublicState, number>
  for (const s of M.PublicState.literals) out[s] = counts?.get(s) ?? 0
  return ok(out)
}
