/**
 * The `lane-query` scenario: pages and counts of one lane holding N executions (`--tasks`,
 * default 1 000 000), spread over every partition. The lane is loaded with `createExecutions` in
 * batches of 1 000 (four in flight): every tenth batch delayed by a month (10 % `delayed`, in runs
 * of 1 000), the rest `waiting`; then the 100 oldest are claimed (`active`). Each case is timed
 * over `samples` calls one after another (after 5 untimed ones): the first page of 100 newest
 * and oldest first, 100 consecutive pages newest first, a page from the middle of the lane, pages
 * filtered by state (a frequent, a 10 % and a rare state), by a kind no execution has (the
 * bounded scan), and `countLaneExecutions`. A row's note gives the mean page length.
 */
import { Console, Effect } from "effect"
import { randomUUID } from "node:crypto"
import { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import { encodeLaneCursor } from "../../internal/boundary/reads.js"
import { Limits } from "../../Limits.js"
import type * as M from "../../Model.js"
import { type BenchResult, latencies } from "./scenarios.js"

const BATCH = Limits.batchItems
const PAGE = 100
const INPUT = new TextEncoder().encode(`{"to":"ana@example.com","n":1}`)

export interface LaneQueryOptions {
  readonly tasks: number
  readonly samples: number
  readonly system: string
  /** Flow partitions of the deployment (the executions are spread over all of them). */
  readonly partitions: number
  /** A lane an earlier run loaded (and kept): its pages are timed, nothing is loaded. */
  readonly lane?: string
}

const nowMs = Effect.sync(() => performance.now())

export const laneQuery = (o: LaneQueryOptions): Effect.Effect<ReadonlyArray<BenchResult>, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(o.lane ?? `lane-query-${randomUUID().slice(0, 8)}`)
    const ns = Ids.unsafe.namespace("bench")
    const results: Array<BenchResult> = []
    const later = Date.now() + 30 * 86_400_000
    const batches = Math.ceil(o.tasks / BATCH)
    let firstAt = 0
    let lastAt = 0
    let tasks = o.tasks
    if (o.lane === undefined) {
      yield* Console.log(`lane: ${lane}`)
      const loadStart = yield* nowMs
      yield* Effect.forEach(Array.from({ length: batches }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const at = Date.now()
          if (i === 0) firstAt = at
          lastAt = Math.max(lastAt, at)
          yield* b.createExecutions(Array.from({ length: Math.min(BATCH, o.tasks - i * BATCH) }, () => ({
            executionId: `{fp:${Math.floor(Math.random() * o.partitions)}}:${randomUUID()}` as Ids.ExecutionId,
            namespace: ns,
            laneId: lane,
            executionKind: "noop",
            inputPayload: INPUT,
            ...(i % 10 === 9 ? { delayUntil: later } : {})
          })))
        }), { concurrency: 4, discard: true })
      const loadMs = (yield* nowMs) - loadStart
      results.push({
        system: o.system,
        scenario: "lane-query load",
        count: o.tasks,
        seconds: loadMs / 1000,
        perSecond: o.tasks / (loadMs / 1000)
      })
      yield* b.claimMany({
        lane,
        capabilities: { tokens: [] },
        policy: {
          workerId: Ids.unsafe.workerId("lane-query"),
          workerInstanceId: Ids.unsafe.workerInstanceId("lane-query-1"),
          leaseTtlMs: 6 * 3_600_000
        }
      }, 100)
    } else {
      // the kept lane: its size, and its first and last creation times
      tasks = (yield* b.countLaneExecutions(lane)).total
      const edge = (order: M.LaneOrder) =>
        Effect.map(b.listLaneExecutions({ laneId: lane, limit: 1, order }), (p) => p.executions[0]?.createdAt ?? 0)
      firstAt = yield* edge("oldest")
      lastAt = yield* edge("newest")
    }

    const time = (name: string, call: (i: number) => Effect.Effect<number, EngineError>) =>
      Effect.gen(function*() {
        for (let i = 0; i < 5; i++) yield* call(i)
        const samples: Array<number> = []
        let items = 0
        for (let i = 0; i < o.samples; i++) {
          const t0 = yield* nowMs
          items += yield* call(i)
          samples.push((yield* nowMs) - t0)
        }
        const total = samples.reduce((x, y) => x + y, 0)
        results.push({
          system: o.system,
          scenario: `lane-query ${name}`,
          count: o.samples,
          seconds: total / 1000,
          ...latencies(samples),
          note: `mean page ${(items / o.samples).toFixed(1)}`
        })
      })
    const page = (args: Omit<M.ListLaneExecutionsArgs, "laneId" | "limit">) =>
      Effect.map(b.listLaneExecutions({ laneId: lane, limit: PAGE, ...args }), (p) => p.executions.length)

    yield* time("newest page", () => page({}))
    yield* time("oldest page", () => page({ order: "oldest" }))
    // consecutive pages: each call continues from the previous one's cursor
    let cursor: string | undefined
    yield* time("newest next pages", () =>
      Effect.map(b.listLaneExecutions({ laneId: lane, limit: PAGE, ...(cursor === undefined ? {} : { cursor }) }), (p) => {
        cursor = p.nextCursor
        return p.executions.length
      }))
    const middle = encodeLaneCursor({
      at: Math.floor((firstAt + lastAt) / 2),
      id: "{fp:0}:00000000-0000-4000-8000-000000000000" as Ids.ExecutionId
    })
    yield* time("newest from the middle", () => page({ cursor: middle }))
    yield* time("state waiting (90 %)", () => page({ states: ["waiting"] }))
    yield* time("state delayed (10 %)", () => page({ states: ["delayed"] }))
    yield* time("state active (100 oldest)", () => page({ states: ["active"] }))
    yield* time("waiting+delayed oldest", () => page({ states: ["waiting", "delayed"], order: "oldest" }))
    yield* time("kind matching none", () => page({ executionKind: "none" }))
    yield* time("count", () => Effect.map(b.countLaneExecutions(lane), (c) => (c.total === tasks ? 1 : 0)))
    return results
  })
