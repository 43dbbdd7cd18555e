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

/**
 * One lane: its entries sorted by (creation time, id), and its counts per public state. An entry
 * that does not go last (an id below the last one's in the same millisecond) waits in `pending`
 * until the lane is next read: inserting it at once costs a search and a shift of the entries
 * after it, for every create of a batch. The entries are the executions themselves (their
 * `createdAt` and `id`: no position record per execution); a deleted one leaves at once.
 */
export interface LaneEntries {
  order: Array<Exec>
  pending: Array<Exec>
  readonly counts: Map<M.PublicState, number>
}

type R<A> = Either.Either<A, EngineError>
const ok = <A>(a: A): R<A> => Either.right(a)

const before = (a: Exec, b: Exec): boolean =>
  a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id)

/** The index of the first entry not before `p`. */
const lowerBound = (order: ReadonlyArray<Exec>, p: LanePosition): number => {
  let lo = 0
  let hi = order.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const x = order[mid]!
    if (x.createdAt < p.at || (x.createdAt === p.at && x.id < p.id)) lo = mid + 1
    else hi = mid
  }
  return lo
}

const positionOfExec = (e: Exec): LanePosition => ({ at: e.createdAt, id: e.id })

const laneOf = (store: Store, lane: Ids.LaneId): LaneEntries => {
  let l = store.laneEntries.get(lane)
  if (l === undefined) {
    l = { order: [], pending: [], counts: new Map() }
    store.laneEntries.set(lane, l)
  }
  return l
}

const bump = (l: LaneEntries, s: M.PublicState, by: number): void => {
  l.counts.set(s, (l.counts.get(s) ?? 0) + by)
}

/** The lane's entries in order, with the pending ones merged in. */
const sorted = (l: LaneEntries): Array<Exec> => {
  if (l.pending.length === 0) return l.order
  const pending = l.pending.sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0))
  l.pending = []
  const order = l.order
  const from = lowerBound(order, positionOfExec(pending[0]!))
  const tail = order.splice(from)
  let i = 0
  let j = 0
  while (i < tail.length && j < pending.length) order.push(before(pending[j]!, tail[i]!) ? pending[j++]! : tail[i++]!)
  while (i < tail.length) order.push(tail[i++]!)
  while (j < pending.length) order.push(pending[j++]!)
  return order
}

/** A new execution joins its lane (in its current public state). */
export const laneAdd = (store: Store, e: Exec): void => {
  const l = laneOf(store, e.laneId)
  const last = l.order[l.order.length - 1]
  // executions mostly come in creation order: then the new one goes last
  if (last === undefined || before(last, e)) l.order.push(e)
  else l.pending.push(e)
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
  const order = sorted(l)
  const i = lowerBound(order, positionOfExec(e))
  if (order[i] === e) order.splice(i, 1)
  bump(l, e.publicState, -1)
}

/**
 * A page of the lane: the entries after `q.after` in the query's order, examined one by one
 * (at most `Limits.laneScanItems`); when that budget ends the page first, it is returned short
 * with the last examined position to go on from.
 */
export const listLaneExecutions = (store: Store, _now: number, q: LaneQuery): R<LanePage> => {
  const lane = store.laneEntries.get(q.laneId)
  const order = lane === undefined ? [] : sorted(lane)
  const states = q.states === undefined ? undefined : new Set(q.states)
  const entries: Array<M.LaneExecutionEntry> = []
  let i: number
  if (q.newestFirst) i = q.after === undefined ? order.length - 1 : lowerBound(order, q.after) - 1
  else {
    i = q.after === undefined ? 0 : lowerBound(order, q.after)
    if (q.after !== undefined && order[i]?.id === q.after.id && order[i]?.createdAt === q.after.at) i++
  }
  const step = q.newestFirst ? -1 : 1
  let examined = 0
  let last: Exec | undefined
  for (; i >= 0 && i < order.length; i += step) {
    if (examined === Limits.laneScanItems) return ok({ entries, next: last === undefined ? undefined : positionOfExec(last) })
    const e = order[i]!
    examined++
    last = e
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
