/**
 * The reads after each command (what it touched; everything after a maintenance pass) and the
 * final sweep that reads the whole engine after the last command.
 */
import { Effect, Either, Option } from "effect"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId, FlowId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { LANES } from "./commands.js"
import type { Json } from "./normalize.js"
import { attempt, type Outcome, rec, type Run, sortFlow, type Touched, unique } from "./run.js"

const readExecution = (run: Run, id: ExecutionId) =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const describe = yield* attempt(run, b.describeExecution(id))
    const info = yield* attempt(run, b.readExecutionInfo(id))
    return { describe: rec(run, describe), info: rec(run, info) }
  })

const readFlow = (run: Run, id: FlowId) =>
  Effect.map(
    attempt(run, run.engine.backend.describeFlow(id)),
    (r) => rec(run, r, (o) => Option.map(o, sortFlow))
  )

const partitionKey = (p: number) => Ids.partitionKey("Flow", p)

/** The reads after one command: what it touched (everything after a maintenance pass). */
export const readTouched = (run: Run, touched: Touched): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const executions = touched.all ? run.executions : unique(touched.executions)
    // a member's flow too: its terminal operations may change the flow (docs/design/flows.md#flow-states)
    const flowsOfMembers = run.flows.filter((f) => (run.members.get(f) ?? []).some((m) => executions.includes(m)))
    const flows = touched.all ? run.flows : unique([...touched.flows, ...flowsOfMembers])
    const budgets = touched.all ? run.budgets : unique(touched.budgets)
    const out: Record<string, Json> = {}
    for (const id of executions) out[`execution ${id}`] = yield* readExecution(run, id)
    for (const id of flows) out[`flow ${id}`] = yield* readFlow(run, id)
    for (const id of budgets) out[`budget ${id}`] = rec(run, yield* attempt(run, b.getBudgetStatus(id)))
    if (!touched.all) {
      for (const p of unique(executions.map(Ids.executionPartition))) {
        out[`listExecutions ${p}`] = rec(
          run,
          yield* attempt(run, b.listExecutions({ partition: partitionKey(p), limit: 5 }))
        )
      }
    }
    return out
  })

/** Pages through a listing with a small limit (exercising cursors). */
const pages = <C, P extends { readonly nextCursor?: C | undefined }>(
  run: Run,
  page: (cursor: C | undefined) => Effect.Effect<P, EngineError>
): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const out: Array<Json> = []
    let cursor: C | undefined
    for (let n = 0; n < 50; n++) {
      const r = yield* attempt(run, page(cursor))
      out.push(rec(run, r))
      if (Either.isLeft(r) || r.right.nextCursor === undefined) break
      cursor = r.right.nextCursor
    }
    return out
  })

/** A lane listing walked to its end (every page's entries in order) and the lane's counts. */
export const laneReads = (
  run: Run,
  cmd: { readonly lane: number; readonly states?: ReadonlyArray<M.PublicState> | undefined; readonly kind?: string | undefined; readonly order: M.LaneOrder; readonly limit: number }
): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const laneId = LANES[cmd.lane]!
    const entries: Array<M.LaneExecutionEntry> = []
    let cursor: string | undefined
    let failure: Json | undefined
    for (let n = 0; n < 200; n++) {
      const r = yield* attempt(run, b.listLaneExecutions({
        laneId,
        limit: cmd.limit,
        order: cmd.order,
        ...(cmd.states === undefined ? {} : { states: cmd.states }),
        ...(cmd.kind === undefined ? {} : { executionKind: cmd.kind }),
        ...(cursor === undefined ? {} : { cursor })
      }))
      if (Either.isLeft(r)) {
        failure = rec(run, r)
        break
      }
      entries.push(...r.right.executions)
      if (r.right.nextCursor === undefined) break
      cursor = r.right.nextCursor
    }
    return {
      entries: rec(run, Either.right(entries)),
      ...(failure === undefined ? {} : { failure }),
      counts: rec(run, yield* attempt(run, b.countLaneExecutions(laneId)))
    }
  })

/**
 * Every event `filter` holds, oldest first, without offsets (each engine numbers its own): what
 * happened, in the order it happened (docs/design/events.md).
 */
const eventsOf = (run: Run, filter: M.EventFilter): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const out: Array<Json> = []
    let after: M.EventStart = "earliest"
    for (let n = 0; n < 50; n++) {
      const page: Outcome<M.EventPage> = yield* attempt(run, run.engine.backend.readEvents({ filter, after, limit: 50 }))
      if (Either.isLeft(page)) return rec(run, page)
      const { events, next }: M.EventPage = page.right
      for (const { offset: _, ...event } of events) out.push(event as Json)
      if (events.length < 50) break
      after = next
    }
    return out
  })

/**
 * A flow's events as the contract orders them: the flow's own events in order, and each member's
 * in order; how two members' events interleave is not promised (docs/design/events.md).
 */
const byExecution = (events: Json): Json => {
  if (!Array.isArray(events)) return events
  const flow: Array<Json> = []
  const members: Record<string, Array<Json>> = {}
  for (const e of events) {
    const id = (e as { readonly executionId?: string }).executionId
    if (id === undefined) flow.push(e)
    else (members[id] ??= []).push(e)
  }
  return { flow, members: Object.fromEntries(Object.entries(members).sort(([x], [y]) => x.localeCompare(y))) }
}

/** Reads the whole engine after the last command. */
export const finalSweep = (run: Run): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const out: Record<string, Json> = {}
    for (const id of run.executions) {
      out[`execution ${id}`] = {
        ...(yield* readExecution(run, id)),
        result: rec(run, yield* attempt(run, b.getExecutionResult(id))),
        input: rec(run, yield* attempt(run, b.getExecutionInput(id))),
        flowId: rec(run, yield* attempt(run, b.resolveExecutionFlowId(id))),
        events: yield* eventsOf(run, { _tag: "Execution", executionId: id }),
        // ordered by waitpoint id, and pending waitpoint ids are minted by the backend: sort by the key
        pendingWaitpoints: rec(
          run,
          yield* attempt(run, b.listPendingWaitpoints({ executionId: id })),
          (r) => ({ ...r, entries: [...r.entries].sort((x, y) => x.waitpointKey.localeCompare(y.waitpointKey)) })
        )
      }
    }
    for (const id of run.flows) {
      const incoming: Record<string, Json> = {}
      for (const m of run.members.get(id) ?? []) {
        incoming[m] = rec(
          run,
          yield* attempt(run, b.listEdges({ flowId: id, direction: { _tag: "Incoming", toNode: m } })),
          (edges) => [...edges].sort((x, y) => x.edgeId.localeCompare(y.edgeId))
        )
      }
      out[`flow ${id}`] = {
        describe: yield* readFlow(run, id),
        incoming,
        events: byExecution(yield* eventsOf(run, { _tag: "Flow", flowId: id }))
      }
    }
    for (const e of run.edges) {
      out[`edge ${e.edgeId}`] = {
        describe: rec(run, yield* attempt(run, b.describeEdge({ flowId: e.flowId, edgeId: e.edgeId }))),
        outgoing: rec(
          run,
          yield* attempt(run, b.listEdges({ flowId: e.flowId, direction: { _tag: "Outgoing", fromNode: e.upstream } })),
          (edges) => [...edges].sort((x, y) => x.edgeId.localeCompare(y.edgeId))
        )
      }
    }
    for (const id of run.budgets) out[`budget ${id}`] = rec(run, yield* attempt(run, b.getBudgetStatus(id)))
    const partitions = unique(run.executions.map(Ids.executionPartition)).sort((x, y) => x - y)
    for (const p of partitions) {
      out[`listExecutions ${p}`] = yield* pages(
        run,
        (cursor: ExecutionId | undefined) =>
          b.listExecutions({ partition: partitionKey(p), limit: 3, ...(cursor === undefined ? {} : { cursor }) })
      )
      out[`listSuspended ${p}`] = yield* pages(
        run,
        (cursor: ExecutionId | undefined) =>
          b.listSuspended({ partition: partitionKey(p), limit: 3, ...(cursor === undefined ? {} : { cursor }) })
      )
    }
    for (const p of unique(run.flows.map((f) => Ids.flowPartition(f))).sort((x, y) => x - y)) {
      out[`listFlows ${p}`] = yield* pages(
        run,
        (cursor: FlowId | undefined) =>
          b.listFlows({ partition: partitionKey(p), limit: 2, ...(cursor === undefined ? {} : { cursor }) })
      )
    }
    out["listLanes"] = rec(run, yield* attempt(run, b.listLanes({ limit: 100 })))
    for (let lane = 0; lane < LANES.length; lane++) {
      out[`lane ${lane} newest`] = yield* laneReads(run, { lane, order: "newest", limit: 2 })
      out[`lane ${lane} oldest active`] = yield* laneReads(run, { lane, order: "oldest", limit: 1, states: ["active"] })
    }
    return out
  })
