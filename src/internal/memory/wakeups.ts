/**
 * The due timers of idle workers: when a lane's earliest delayed work comes due, and promoting it
 * then (the wake-up hub's `arm` and `promoteDue`, see `src/internal/wakeups.ts`).
 */
import type * as Ids from "../../Ids.js"
import { ok, type R } from "./helpers.js"
import { drainHeap, isDelayedAt, promote } from "./maintenance.js"
import type { Store } from "./store.js"

/** When the earliest delayed work of `lanes` is due, if any. */
export const nextDue = (store: Store, lanes: ReadonlyArray<Ids.LaneId>): number | undefined => {
  let due: number | undefined
  for (const lane of lanes) {
    const top = store.laneDelays.get(lane)?.peekValid((entry) => isDelayedAt(store, entry.key, entry.score))
    if (top !== undefined && (due === undefined || top.score < due)) due = top.score
  }
  return due
}

/** `promoteDelayed` for the delayed work of `lanes` alone. */
export const promoteDue = (store: Store, now: number, lanes: ReadonlyArray<Ids.LaneId>, batch: number): R<number> => {
  let processed = 0
  for (const lane of lanes) {
    const heap = store.laneDelays.get(lane)
    if (heap === undefined) continue
    processed += drainHeap(heap, now, batch - processed, (key, at) => promote(store, key, at, now)).processed
  }
  return ok(processed)
}
