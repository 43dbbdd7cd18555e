/**
 * Lane queries (docs/design/reads.md#lane-queries): `listLaneExecutions` over every partition,
 * newest or oldest first by creation time then id, filtered by public state and kind, with an
 * opaque cursor; `countLaneExecutions`. Every test uses a lane of its own, so pages are checked
 * exactly where the contract fixes them (no filter: full pages), and filtered listings by what
 * their pages hold together (a filtered page may be short).
 */
import { describe, expect } from "@effect/vitest"
import { Effect } from "effect"
import type { ExecutionId, LaneId } from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  bytes,
  claimNone,
  claimSome,
  create,
  executionIdOnPartition,
  newLane,
  now,
  passUntilDone,
  payloadOf,
  type Tester,
  validationFails
} from "./helpers.js"

type Args = Omit<M.ListLaneExecutionsArgs, "laneId" | "limit" | "cursor">

/** Every page of a lane listing with `limit`, checking the page contract; the pages and their entries. */
const walk = (lane: LaneId, limit: number, args: Args = {}) =>
  Effect.gen(function*() {
    const b = yield* backend
    const pages: Array<M.ListLaneExecutionsPage> = []
    let cursor: string | undefined
    for (let i = 0; i < 1_000; i++) {
      const page: M.ListLaneExecutionsPage = yield* b.listLaneExecutions({
        laneId: lane,
        limit,
        ...args,
        ...(cursor === undefined ? {} : { cursor })
      })
      expect(page.executions.length).toBeLessThanOrEqual(limit)
      pages.push(page)
      if (page.nextCursor === undefined) break
      cursor = page.nextCursor
    }
    const entries = pages.flatMap((p) => p.executions)
    return { pages, entries, ids: entries.map((e) => e.executionId) }
  })

const byAge = (newest: boolean) => (a: M.LaneExecutionEntry, b: M.LaneExecutionEntry) => {
  const c = a.createdAt - b.createdAt || (a.executionId < b.executionId ? -1 : a.executionId > b.executionId ? 1 : 0)
  return newest ? -c : c
}

/** `n` executions of `lane` on random partitions, `perMs` created in each millisecond (ties). */
const spread = (t: Tester, lane: LaneId, n: number, perMs: number, kind = "conformance") =>
  Effect.gen(function*() {
    const out: Array<M.LaneExecutionEntry> = []
    for (let i = 0; i < n; i++) {
      if (i > 0 && i % perMs === 0) yield* advance(1)
      const p = Math.floor(Math.random() * t.options.numFlowPartitions)
      const at = yield* now
      const c = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: kind })
      out.push({ executionId: c.executionId, publicState: "waiting", executionKind: kind, createdAt: at as M.LaneExecutionEntry["createdAt"] })
    }
    yield* advance(1)
    return out
  })

export const lanes = (t: Tester) =>
  describe("lane_queries", () => {
    t.test("lists a lane over every partition, newest or oldest first, ties by id, in full pages", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const made = yield* spread(t, lane, 11, 3)
        for (const newest of [true, false]) {
          const { pages, entries } = yield* walk(lane, 3, newest ? {} : { order: "oldest" })
          expect(entries).toEqual([...made].sort(byAge(newest)))
          expect(pages.map((p) => p.executions.length)).toEqual([3, 3, 3, 2])
          expect(pages.map((p) => p.nextCursor !== undefined)).toEqual([true, true, true, false])
        }
        // a page exactly full at the end has no cursor; a repeated call answers the same page
        const all = yield* b.listLaneExecutions({ laneId: lane, limit: 11 })
        expect(all.executions.length).toBe(11)
        expect(all.nextCursor).toBeUndefined()
        expect(yield* b.listLaneExecutions({ laneId: lane, limit: 11 })).toEqual(all)
        expect(yield* b.listLaneExecutions({ laneId: lane, limit: 0 })).toEqual({ executions: [] })
        // a cursor of one order continues the other from the same place
        const first = yield* b.listLaneExecutions({ laneId: lane, limit: 4 })
        const back = yield* b.listLaneExecutions({ laneId: lane, limit: 100, order: "oldest", cursor: first.nextCursor! })
        expect(back.executions.map((e) => e.executionId)).toEqual(
          [...made].sort(byAge(false)).slice(8).map((e) => e.executionId)
        )
        // an empty lane
        expect(yield* b.listLaneExecutions({ laneId: yield* newLane(), limit: 5 })).toEqual({ executions: [] })
      }))

    t.test("ties of one millisecond across partitions are in id string order ({fp:10}:… before {fp:1}:…), the same uuid too", () =>
      Effect.gen(function*() {
        const lane = yield* newLane()
        const shared = (yield* executionIdOnPartition(0)).slice("{fp:0}:".length)
        const ids: Array<ExecutionId> = []
        for (const p of [1, 10, 2, 19, 100, 0, 12, 101].filter((p) => p < t.options.numFlowPartitions)) {
          ids.push(yield* executionIdOnPartition(p))
          if (p === 1 || p === 10) ids.push(`{fp:${p}}:${shared}` as ExecutionId)
        }
        for (const executionId of ids) yield* create({ laneId: lane, executionId })
        yield* advance(1)
        const sorted = [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))
        for (const newest of [true, false]) {
          const { ids: listed } = yield* walk(lane, 3, newest ? {} : { order: "oldest" })
          expect(listed).toEqual(newest ? [...sorted].reverse() : sorted)
        }
      }))

    t.test("waiting executions of several priorities are listed by creation time, whatever their priority", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const made: Array<M.LaneExecutionEntry> = []
        const priorities = [0, 5, 3, 5, 0, 9000, 1, 3, 0, 7, 5, 2]
        for (let i = 0; i < priorities.length; i++) {
          if (i % 2 === 0) yield* advance(1)
          // (two partitions only: several priorities share one partition's index)
          const p = i % Math.min(2, t.options.numFlowPartitions)
          const at = yield* now
          const c = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), priority: priorities[i]! })
          made.push({ executionId: c.executionId, publicState: "waiting", executionKind: "conformance", createdAt: at as M.LaneExecutionEntry["createdAt"] })
        }
        yield* advance(1)
        // one of them is claimed (the best priority): it leaves the waiting ones
        const claimed = payloadOf(yield* claimSome(lane)).executionId
        expect(claimed).toBe(made[5]!.executionId)
        const waiting = made.filter((e) => e.executionId !== claimed)
        for (const newest of [true, false]) {
          for (const limit of [1, 2, 5, 100]) {
            const order = newest ? {} : { order: "oldest" as const }
            expect((yield* walk(lane, limit, { ...order, states: ["waiting"] })).entries).toEqual([...waiting].sort(byAge(newest)))
            const all = (yield* walk(lane, limit, order)).entries
            expect(all.map((e) => e.executionId)).toEqual([...made].sort(byAge(newest)).map((e) => e.executionId))
            expect(all.find((e) => e.executionId === claimed)?.publicState).toBe("active")
          }
        }
        expect((yield* b.countLaneExecutions(lane)).byState).toMatchObject({ waiting: 11, active: 1 })
      }))

    t.test("filters by one or several public states and by kind; counts per state", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const [done, running] = yield* spread(t, lane, 2, 1, "a")
        const h1 = yield* claimSome(lane)
        yield* b.complete(h1, { payload: bytes("r") })
        yield* claimSome(lane)
        const waiting = yield* spread(t, lane, 3, 2, "a")
        const later = (yield* now) + 3_600_000
        const delayed: Array<ExecutionId> = []
        for (let i = 0; i < 2; i++) {
          const p = Math.floor(Math.random() * t.options.numFlowPartitions)
          const c = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(p), executionKind: "b", delayUntil: later })
          delayed.push(c.executionId)
        }
        const ids = (xs: ReadonlyArray<{ readonly executionId: ExecutionId }>) => xs.map((x) => x.executionId)
        const set = (xs: ReadonlyArray<ExecutionId>) => [...xs].sort()
        for (const limit of [1, 2, 100]) {
          expect((yield* walk(lane, limit, { states: ["completed"] })).ids).toEqual([done!.executionId])
          expect((yield* walk(lane, limit, { states: ["active"] })).ids).toEqual([running!.executionId])
          const open = yield* walk(lane, limit, { states: ["waiting", "delayed", "waiting"], order: "oldest" })
          expect(set(open.ids)).toEqual(set([...ids(waiting), ...delayed]))
          expect(open.entries).toEqual([...open.entries].sort(byAge(false)))
          expect(set((yield* walk(lane, limit, { executionKind: "b" })).ids)).toEqual(set(delayed))
          expect((yield* walk(lane, limit, { executionKind: "a", states: ["active", "delayed"] })).ids).toEqual([
            running!.executionId
          ])
          expect((yield* walk(lane, limit, { executionKind: "none" })).ids).toEqual([])
          expect((yield* walk(lane, limit, { states: ["failed"] })).ids).toEqual([])
        }
        const entry = (yield* walk(lane, 100, { states: ["delayed"] })).entries[0]!
        expect(entry).toMatchObject({ publicState: "delayed", executionKind: "b" })
        const counts = yield* b.countLaneExecutions(lane)
        expect(counts.laneId).toBe(lane)
        expect(counts.total).toBe(7)
        expect(counts.byState).toMatchObject({ waiting: 3, delayed: 2, active: 1, completed: 1, failed: 0, suspended: 0 })
        expect(Object.keys(counts.byState).length).toBe(12)
        const none = yield* b.countLaneExecutions(yield* newLane())
        expect(none.total).toBe(0)
        expect(Object.values(none.byState).every((n) => n === 0)).toBe(true)
      }))

    t.test("pages go forward without repeats or gaps while executions change state", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const made = yield* spread(t, lane, 12, 2)
        for (const order of ["oldest", "newest"] as const) {
          const seen: Array<M.LaneExecutionEntry> = []
          const added: Array<ExecutionId> = []
          let cursor: string | undefined
          for (let i = 0; i < 100; i++) {
            const page: M.ListLaneExecutionsPage = yield* b.listLaneExecutions({
              laneId: lane,
              limit: 3,
              order,
              ...(cursor === undefined ? {} : { cursor })
            })
            seen.push(...page.executions)
            if (page.nextCursor === undefined) break
            cursor = page.nextCursor
            // between pages: a claim and a completion move executions between states, a create adds one
            const h = yield* claimSome(lane)
            if (i % 2 === 0) yield* b.complete(h, { payload: bytes("r") })
            added.push(...(yield* spread(t, lane, 1, 1)).map((e) => e.executionId))
          }
          const ids = seen.map((e) => e.executionId)
          expect(new Set(ids).size).toBe(ids.length)
          expect(seen).toEqual([...seen].sort(byAge(order === "newest")))
          for (const m of made) expect(ids).toContain(m.executionId)
          // executions created after the walk began come after every cursor when the oldest come first
          if (order === "oldest") for (const a of added) expect(ids).toContain(a)
          made.push(...added.map((executionId) => ({ ...made[0]!, executionId })))
        }
        const counts = yield* b.countLaneExecutions(lane)
        expect(counts.total).toBe(made.length)
        expect(counts.byState.active + counts.byState.completed + counts.byState.waiting).toBe(made.length)
      }), 60_000)

    t.test("a deleted execution leaves the lane's listing and counts", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        const [, kept] = yield* spread(t, lane, 2, 1)
        yield* b.complete(yield* claimSome(lane), { payload: bytes("r") })
        expect((yield* b.countLaneExecutions(lane)).byState).toMatchObject({ completed: 1, waiting: 1 })
        yield* advance(8 * 24 * 3_600_000)
        yield* passUntilDone("trimRetention")
        expect((yield* walk(lane, 10)).ids).toEqual([kept!.executionId])
        const counts = yield* b.countLaneExecutions(lane)
        expect(counts.total).toBe(1)
        expect(counts.byState).toMatchObject({ completed: 0, waiting: 1 })
      }))

    t.test("lane ids holding ':', '{' or '}' keep their own executions, listings, counts and claims", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const base = yield* newLane()
        // ids that spell another lane's keys on a key layout of `<lane>:<suffix>` (one partition for all)
        const lanes = [base, `${base}:s`, `${base}:s:delayed`, `${base}:n`, `${base}:ev`, `${base}:kind:x:1`, `{${base}}`, `${base}}{`, `${base}:delayed`]
          .map((l) => l as LaneId)
        const later = (yield* now) + 3_600_000
        const made = new Map<LaneId, { readonly delayed: ExecutionId; readonly waiting: ExecutionId }>()
        for (const lane of lanes) {
          const delayed = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(0), executionKind: "x", delayUntil: later })
          const waiting = yield* create({ laneId: lane, executionId: yield* executionIdOnPartition(0), executionKind: "x" })
          made.set(lane, { delayed: delayed.executionId, waiting: waiting.executionId })
        }
        const sorted = (xs: ReadonlyArray<ExecutionId>) => [...xs].sort()
        for (const lane of lanes) {
          const own = made.get(lane)!
          expect(sorted((yield* walk(lane, 10)).ids)).toEqual(sorted([own.delayed, own.waiting]))
          expect((yield* walk(lane, 10, { states: ["delayed"] })).ids).toEqual([own.delayed])
          expect((yield* b.countLaneExecutions(lane)).byState).toMatchObject({ delayed: 1, waiting: 1, active: 0 })
        }
        // the delayed work comes due: each lane's promotion, claims and listings stay its own
        yield* advance(3_600_001)
        yield* passUntilDone("promoteDelayed")
        for (const lane of lanes) {
          const own = made.get(lane)!
          const claimed = [payloadOf(yield* claimSome(lane)).executionId, payloadOf(yield* claimSome(lane)).executionId]
          expect(sorted(claimed)).toEqual(sorted([own.delayed, own.waiting]))
          yield* claimNone(lane)
          expect(sorted((yield* walk(lane, 1, { states: ["active"] })).ids)).toEqual(sorted(claimed))
          expect((yield* b.countLaneExecutions(lane)).total).toBe(2)
          expect((yield* b.countLaneExecutions(lane)).byState.active).toBe(2)
        }
      }))

    t.test("bad input is a Validation error", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const lane = yield* newLane()
        yield* spread(t, lane, 1, 1)
        yield* validationFails(b.listLaneExecutions({ laneId: lane, limit: 1, states: [] }), "InvalidInput", "states")
        yield* validationFails(b.listLaneExecutions({ laneId: lane, limit: 1, cursor: "not a cursor" }), "InvalidInput", "cursor")
        yield* validationFails(
          b.listLaneExecutions({ laneId: lane, limit: 1, cursor: Buffer.from("12|nope").toString("base64url") }),
          "InvalidInput",
          "cursor"
        )
        yield* validationFails(b.listLaneExecutions({ laneId: lane, limit: -1 }), "InvalidInput")
        yield* validationFails(
          b.listLaneExecutions({ laneId: lane, limit: 1, states: ["sleeping" as M.PublicState] }),
          "InvalidInput"
        )
        yield* validationFails(
          b.listLaneExecutions({ laneId: lane, limit: 1, order: "sideways" as M.LaneOrder }),
          "InvalidInput"
        )
        yield* validationFails(
          b.listLaneExecutions({ laneId: lane, limit: 1, executionKind: "k".repeat(Limits.nameBytes + 1) }),
          "LimitExceeded"
        )
        yield* validationFails(b.listLaneExecutions({ laneId: "" as LaneId, limit: 1 }), "InvalidInput")
        yield* validationFails(b.countLaneExecutions("" as LaneId), "InvalidInput")
        // a limit past the page bound gives a bounded page, not an error
        expect((yield* b.listLaneExecutions({ laneId: lane, limit: 10 * Limits.listPageItems })).executions.length).toBe(1)
      }))
  })
