/**
 * Listings with cursors (docs/design/reads.md#listings): list_flows, list_lanes,
 * list_suspended, list_executions and list_pending_waitpoints over several
 * pages. On a shared engine other tests' items may share a partition, so the
 * checks are about our items (order, no repeats, nothing missing) plus the
 * page contract; on a fresh engine pages are checked exactly.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, FlowId, LaneId, WaitpointId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  backend,
  claimSome,
  create,
  createAndClaim,
  createFlow,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  flowIdOnPartition,
  newLane,
  now,
  suspendSingle,
  type Tester,
  validationFails
} from "./helpers.js"

interface Page<A, C> {
  readonly items: ReadonlyArray<A>
  readonly nextCursor: C | undefined
}

/**
 * Pages through a listing with `limit` and checks the cursor contract on every
 * page: at most `limit` items, `nextCursor` is the last item's key when
 * present, and keys never repeat or go backwards (by `compare`).
 */
const pageThrough = <A, C>(
  limit: number,
  fetch: (cursor: C | undefined) => Effect.Effect<Page<A, C>, unknown, never>,
  key: (a: A) => C,
  compare: (a: A, b: A) => number
) =>
  Effect.gen(function*() {
    const pages: Array<ReadonlyArray<A>> = []
    let cursor: C | undefined = undefined
    for (let i = 0; i < 10_000; i++) {
      const page: Page<A, C> = yield* fetch(cursor)
      expect(page.items.length).toBeLessThanOrEqual(limit)
      pages.push(page.items)
      if (page.nextCursor === undefined) break
      expect(page.items.length).toBeGreaterThan(0)
      expect(page.nextCursor).toEqual(key(page.items[page.items.length - 1]!))
      cursor = page.nextCursor
    }
    const all = pages.flat()
    for (let i = 1; i < all.length; i++) expect(compare(all[i - 1]!, all[i]!)).toBeLessThan(0)
    return { pages, all }
  })

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0)

export const listings = (t: Tester) =>
  describe("listings", () => {
    describe("list_executions", () => {
      t.test("pages through a partition in execution-id order with exclusive cursors", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = 40 + Math.floor(Math.random() * 100)
          const partition = Ids.partitionKey("Flow", p)
          const ours: Array<ExecutionId> = []
          for (let i = 0; i < 7; i++) ours.push((yield* create({ executionId: yield* executionIdOnPartition(p) })).executionId)
          const { all, pages } = yield* pageThrough<ExecutionId, ExecutionId>(
            3,
            (cursor) =>
              Effect.map(
                b.listExecutions({ partition, limit: 3, ...(cursor === undefined ? {} : { cursor }) }),
                (page) => ({ items: page.executions, nextCursor: page.nextCursor })
              ),
            (id) => id,
            byString
          )
          expect(all.filter((id) => ours.includes(id))).toEqual([...ours].sort())
          if (t.options.fresh) {
            expect(pages.map((pg) => pg.length)).toEqual([3, 3, 1])
          }
          // a cursor in the middle resumes strictly after it
          const sorted = [...ours].sort()
          const after = yield* pageThrough<ExecutionId, ExecutionId>(
            1_000,
            (cursor) =>
              Effect.map(
                b.listExecutions({ partition, cursor: cursor ?? sorted[3]!, limit: 1_000 }),
                (page) => ({ items: page.executions, nextCursor: page.nextCursor })
              ),
            (id) => id,
            byString
          )
          expect(after.all.filter((id) => ours.includes(id))).toEqual(sorted.slice(4))
        }))

      t.test("the final page has no cursor even when it is exactly full; limit 0 is an empty page", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          yield* create({ executionId: yield* executionIdOnPartition(Ids.executionPartition(c.executionId)) })
          const partition = Ids.partitionKey("Flow", Ids.executionPartition(c.executionId))
          // a shared engine may hold more than one page here: walk to the end first
          const { all } = yield* pageThrough<ExecutionId, ExecutionId>(
            1_000,
            (cursor) =>
              Effect.map(
                b.listExecutions({ partition, limit: 1_000, ...(cursor === undefined ? {} : { cursor }) }),
                (page) => ({ items: page.executions, nextCursor: page.nextCursor })
              ),
            (id) => id,
            byString
          )
          expect(all).toContain(c.executionId)
          const n = all.length
          const fromStart = n <= 2 ? {} : { cursor: all[n - 3]! }
          const lastTwo = yield* b.listExecutions({ partition, limit: 2, ...fromStart })
          expect(lastTwo).toEqual({ executions: all.slice(n - 2) })
          const short = yield* b.listExecutions({ partition, limit: 1, ...fromStart })
          expect(short).toEqual({ executions: [all[n - 2]], nextCursor: all[n - 2] })
          expect(yield* b.listExecutions({ partition, limit: 0 })).toEqual({ executions: [] })
        }))

      t.test("items created after the cursor show up on later pages (forward-only)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = 150 + Math.floor(Math.random() * 100)
          const partition = Ids.partitionKey("Flow", p)
          const low = `{fp:${p}}:00000000-0000-4000-8000-${Math.floor(Math.random() * 1e12).toString().padStart(12, "0")}` as ExecutionId
          const high = `{fp:${p}}:ffffffff-ffff-4fff-bfff-${Math.floor(Math.random() * 1e12).toString().padStart(12, "0")}` as ExecutionId
          yield* create({ executionId: low })
          const first = yield* b.listExecutions({ partition, limit: 1 })
          expect(first.executions.length).toBe(1)
          const cursor = first.executions[0]!
          yield* create({ executionId: high })
          // every page after the cursor (a shared engine may hold more than a page on this partition)
          const rest: Array<ExecutionId> = []
          let after: ExecutionId | undefined = cursor
          while (after !== undefined) {
            const page: M.ListExecutionsPage = yield* b.listExecutions({ partition, cursor: after, limit: 1_000 })
            rest.push(...page.executions)
            after = page.nextCursor
          }
          expect(rest).toContain(high)
          expect(rest).not.toContain(cursor)
        }))

      t.freshOnly("at most 1 000 executions per page", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = 9
          const lane = yield* newLane()
          for (let i = 0; i < 1_001; i++) yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p) })
          const page = yield* b.listExecutions({ partition: Ids.partitionKey("Flow", p), limit: 5_000 })
          expect(page.executions.length).toBe(1_000)
          expect(page.nextCursor).toBe(page.executions[999])
          const rest = yield* b.listExecutions({ partition: Ids.partitionKey("Flow", p), cursor: page.nextCursor!, limit: 5_000 })
          expect(rest.executions.length).toBe(1)
          expect(rest.nextCursor).toBeUndefined()
        }))

      t.test("partition keys must be {fp:N}", () =>
        Effect.gen(function*() {
          const b = yield* backend
          for (const partition of ["{b:1}", "{q:0}", "fp:1", "{fp:x}", "{fp:70000}", "{zz:1}", ""]) {
            yield* validationFails(
              b.listExecutions({ partition: partition as M.ListExecutionsArgs["partition"], limit: 10 }),
              "InvalidInput",
              "partition"
            )
            yield* validationFails(
              b.listFlows({ partition: partition as M.ListFlowsArgs["partition"], limit: 10 }),
              "InvalidInput",
              "partition"
            )
            yield* validationFails(
              b.listSuspended({ partition: partition as M.ListSuspendedArgs["partition"], limit: 10 }),
              "InvalidInput",
              "partition"
            )
          }
        }))
    })

    describe("list_flows", () => {
      t.test("pages through a partition's flows in UUID byte order with their status", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const p = Math.floor(Math.random() * t.options.numFlowPartitions)
          const partition = Ids.partitionKey("Flow", p)
          const ours: Array<FlowId> = []
          const t0 = yield* now
          for (let i = 0; i < 5; i++) ours.push(yield* createFlow(yield* flowIdOnPartition(p, t.options.numFlowPartitions)))
          yield* b.cancelFlow({ flowId: ours[0]!, policy: "FlowOnly" })
          const { all, pages } = yield* pageThrough<M.FlowSummary, FlowId>(
            2,
            (cursor) =>
              Effect.map(
                b.listFlows({ partition, limit: 2, ...(cursor === undefined ? {} : { cursor }) }),
                (page) => ({ items: page.flows, nextCursor: page.nextCursor })
              ),
            (f) => f.flowId,
            (x, y) => byString(x.flowId, y.flowId)
          )
          const mine = all.filter((f) => ours.includes(f.flowId))
          expect(mine.map((f) => f.flowId)).toEqual([...ours].sort())
          for (const f of mine) {
            expect(f.createdAt).toBe(t0)
            expect(f.status).toBe(f.flowId === ours[0] ? "Cancelled" : "Active")
          }
          if (t.options.fresh) expect(pages.map((pg) => pg.length)).toEqual([2, 2, 1])
          expect(yield* b.listFlows({ partition, limit: 0 })).toEqual({ flows: [] })
        }))
    })

    describe("list_lanes", () => {
      t.test("pages through lanes in name order with exclusive cursors", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const prefix = yield* newLane("lanes")
          const ours = ["e", "a", "d", "b", "c"].map((s) => Ids.unsafe.laneId(`${prefix}/${s}`))
          for (const lane of ours) yield* create({ laneId: lane })
          const sorted = [...ours].sort()
          const page1 = yield* b.listLanes({ cursor: prefix, limit: 2 })
          expect(page1).toEqual({ lanes: sorted.slice(0, 2), nextCursor: sorted[1] })
          const page2 = yield* b.listLanes({ cursor: page1.nextCursor!, limit: 2 })
          expect(page2).toEqual({ lanes: sorted.slice(2, 4), nextCursor: sorted[3] })
          const page3 = yield* b.listLanes({ cursor: page2.nextCursor!, limit: 2 })
          expect(page3.lanes[0]).toBe(sorted[4])
          expect(yield* b.listLanes({ limit: 0 })).toEqual({ lanes: [] })
        }))

      t.test("the whole registry pages cleanly and the last page has no cursor", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          yield* create({ laneId: lane })
          const { all } = yield* pageThrough<LaneId, LaneId>(
            3,
            (cursor) =>
              Effect.map(
                b.listLanes({ limit: 3, ...(cursor === undefined ? {} : { cursor }) }),
                (page) => ({ items: page.lanes, nextCursor: page.nextCursor })
              ),
            (l) => l,
            byString
          )
          expect(all).toContain(lane)
          if (t.options.fresh) {
            const full = yield* b.listLanes({ limit: all.length })
            expect(full.lanes).toEqual(all)
            expect(full.nextCursor).toBeUndefined()
          }
        }))
    })

    describe("list_suspended", () => {
      t.test("orders by timeout (no timeout last) then id, with the reason code", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const flowId = yield* createFlow()
          const partition = Ids.partitionKey("Flow", Ids.flowPartition(flowId))
          const t0 = yield* now
          const timeouts = [t0 + 3_000, t0 + 1_000, undefined, t0 + 2_000]
          const ours: Array<readonly [ExecutionId, number]> = []
          for (const [i, timeoutAt] of timeouts.entries()) {
            const c = yield* create({ flowId })
            const h = yield* claimSome(c.lane)
            yield* suspendSingle(h, {
              reasonCode: `reason_${i}`,
              ...(timeoutAt === undefined ? {} : { timeoutAt })
            })
            ours.push([c.executionId, timeoutAt ?? 9_999_999_999_999])
          }
          const compare = (x: M.SuspendedExecutionEntry, y: M.SuspendedExecutionEntry) =>
            x.suspendedAtMs !== y.suspendedAtMs ? x.suspendedAtMs - y.suspendedAtMs : byString(x.executionId, y.executionId)
          const { all } = yield* pageThrough<M.SuspendedExecutionEntry, ExecutionId>(
            1,
            (cursor) =>
              Effect.map(
                b.listSuspended({ partition, limit: 1, ...(cursor === undefined ? {} : { cursor }) }),
                (page) => ({ items: page.entries, nextCursor: page.nextCursor })
              ),
            (e) => e.executionId,
            compare
          )
          const mine = all.filter((e) => ours.some(([id]) => id === e.executionId))
          expect(mine.map((e) => [e.executionId, e.suspendedAtMs])).toEqual(
            [...ours].sort((x, y) => x[1] - y[1]).map(([id, at]) => [id, at])
          )
          for (const e of mine) {
            const i = ours.findIndex(([id]) => id === e.executionId)
            expect(e.reason).toBe(`reason_${i}`)
          }
        }))

      t.test("a resumed execution leaves the listing; a cursor that left resumes after its id", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const flowId = yield* createFlow()
          const partition = Ids.partitionKey("Flow", Ids.flowPartition(flowId))
          const entries: Array<{ readonly id: ExecutionId; readonly wp: WaitpointId; readonly token: string }> = []
          for (let i = 0; i < 3; i++) {
            const c = yield* create({ flowId })
            const s = yield* suspendSingle(yield* claimSome(c.lane))
            entries.push({ id: c.executionId, wp: s.waitpointId, token: s.token })
          }
          const ids = entries.map((e) => e.id).sort()
          const victim = entries.find((e) => e.id === ids[0])!
          yield* b.deliverSignal({
            executionId: victim.id,
            waitpointId: victim.wp,
            signalId: yield* Ids.newSignalId,
            signalName: "go",
            waitpointToken: victim.token
          })
          const list = yield* b.listSuspended({ partition, limit: 1_000 })
          expect(list.entries.map((e) => e.executionId)).not.toContain(victim.id)
          // every remaining entry has the same no-timeout score, so the order is by id
          const after = yield* b.listSuspended({ partition, cursor: victim.id, limit: 1_000 })
          const mine = after.entries.map((e) => e.executionId).filter((id) => ids.includes(id))
          expect(mine).toEqual(ids.slice(1))
        }))
    })

    describe("list_pending_waitpoints", () => {
      t.test("pages through an execution's open waitpoints by id and hides the raw token", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const made: Array<M.PendingWaitpoint> = []
          for (let i = 0; i < 5; i++) {
            made.push(yield* b.createWaitpoint(c.handle, { waitpointKey: `k${i}`, expiresIn: Duration.minutes(10) }))
          }
          const sorted = made.map((w) => w.waitpointId).sort()
          const { all, pages } = yield* pageThrough<M.PendingWaitpointInfo, WaitpointId>(
            2,
            (after) =>
              Effect.map(
                b.listPendingWaitpoints({ executionId: c.executionId, limit: 2, ...(after === undefined ? {} : { after }) }),
                (page) => ({ items: page.entries, nextCursor: page.nextCursor })
              ),
            (w) => w.waitpointId,
            (x, y) => byString(x.waitpointId, y.waitpointId)
          )
          expect(all.map((w) => w.waitpointId)).toEqual(sorted)
          expect(pages.map((pg) => pg.length)).toEqual([2, 2, 1])
          for (const w of all) {
            const token = made.find((m) => m.waitpointId === w.waitpointId)!.hmacToken
            expect(JSON.stringify(w)).not.toContain(token.slice(token.indexOf(":") + 1))
            expect(w.tokenFingerprint).toHaveLength(16)
            expect(w.state).toBe("pending")
          }
        }))

      t.test("an unknown execution is NotFound(execution); an execution without waitpoints lists nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          expect(yield* b.listPendingWaitpoints({ executionId: c.executionId })).toEqual({ entries: [] })
          const e = yield* failsWith(
            b.listPendingWaitpoints({ executionId: yield* Ids.executionIdSolo(c.lane) }),
            "NotFound"
          )
          expect(e.entity).toBe("execution")
        }))
    })
  })
