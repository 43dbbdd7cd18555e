/**
 * Lane queries over Valkey (docs/design/reads.md#lane-queries): a lane's executions live in the
 * lane state index of each partition (helpers.lua, FF.lane_member), so a page is a merge of the
 * partitions' shares. `ff_lane_page` merges the shares of a group of partitions inside one call: on
 * a standalone server one group holds every partition, on a cluster one group per node holds the
 * partitions whose slots the node serves (as the client's slot map tells; a group whose call fails,
 * a slot having moved, is asked again one partition per call). Each group answers its first
 * entries in the query's order and the last entry it examined; an entry is safe to answer when
 * every group not yet exhausted has been read past it. Without a kind filter one round fills the
 * page; with one, a group stops at its share of `Limits.laneScanItems` and the following rounds
 * ask only the groups whose reading stopped before the page could be filled.
 */
import { Effect, Schema } from "effect"
import { corruption, type EngineError } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, LanePosition } from "../../internal/boundary.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { CoreContext } from "./context.js"
import { makePartitionGroups } from "./groups.js"
import { parseError } from "./errors.js"
import type { Envelope } from "./plumbing.js"
import { decodeJson, LuaArray } from "./plumbing.js"

const Counts = LuaArray(Schema.Int)
const decodeState = Schema.decodeUnknownEither(M.PublicState)

/** Rounds of one page; past them the page is answered short, with a cursor. */
const MAX_ROUNDS = 6

/** The index member of a position (FF.lane_member). */
const memberOf = (p: LanePosition): string => `${String(p.at).padStart(13, "0")}:${p.id}`

interface Row {
  readonly member: string
  readonly state: string
  readonly kind: string
}

interface Share {
  /** The partitions read together (one call). */
  readonly parts: ReadonlyArray<number>
  /** The last member read (the start of the next read), "" before any. */
  frontier: string
  /** Nothing follows the frontier. */
  done: boolean
}

interface Reply {
  readonly rows: ReadonlyArray<Row>
  readonly last: string
  readonly done: boolean
}

export const makeLanes = (ctx: CoreContext): Pick<BackendCore, "listLaneExecutions" | "countLaneExecutions"> => {
  const { call, settings } = ctx
  const groups = makePartitionGroups(ctx)

  /**
   * One call over `parts` (its first partition names the node); when a call over several fails, each
   * partition alone, every one from the same place (a group's reading is one frontier for all).
   */
  const readGroup = <A>(
    fn: string,
    parts: ReadonlyArray<number>,
    args: Record<string, unknown>,
    decode: (env: Envelope) => Effect.Effect<A, EngineError>
  ): Effect.Effect<ReadonlyArray<{ readonly parts: ReadonlyArray<number>; readonly reply: A }>, EngineError> => {
    const one = (ps: ReadonlyArray<number>, a: Record<string, unknown>) =>
      Effect.flatMap(call(fn, ctx.flowTarget(ps[0]!), { ...a, prefix: settings.prefix, parts: ps }, [], true), decode)
    // (a kind filter's scan budget is the group's: its partitions share it)
    const scan = typeof args["scan"] === "number" && args["kind"] !== undefined ?
      Math.max(1, Math.floor(args["scan"] / parts.length)) :
      undefined
    const each = scan === undefined ? args : { ...args, scan, want: Math.min(Number(args["want"]), scan) }
    const alone = Effect.forEach(parts, (p) => Effect.map(one([p], each), (reply) => ({ parts: [p], reply })), {
      concurrency: "unbounded"
    })
    return parts.length === 1 ?
      alone :
      one(parts, args).pipe(
        Effect.map((reply) => [{ parts, reply }]),
        Effect.catchAll(() => alone)
      )
  }

  const decodePage = (env: Envelope): Effect.Effect<Reply, EngineError> => {
    const f = env.fields
    if (f.length < 2 || (f.length - 2) % 3 !== 0) {
      return Effect.fail(parseError("ff_lane_page", `a reply of ${f.length} fields`))
    }
    const rows: Array<Row> = []
    for (let i = 2; i < f.length; i += 3) rows.push({ member: f[i]!, state: f[i + 1]!, kind: f[i + 2]! })
    return Effect.succeed({ rows, last: f[0]!, done: f[1] === "1" })
  }

  const entryOf = (r: Row) =>
    Effect.gen(function*() {
      const id = r.member.slice(14)
      const at = r.member.slice(0, 13)
      const state = decodeState(r.state)
      if (!/^\d{13}$/.test(at) || r.member[13] !== ":" || Ids.checkExecutionId(id) !== undefined || state._tag === "Left") {
        return yield* corruption(`list_lane_executions: lane index: entry '${r.member}' (${r.state})`)
      }
      return {
        executionId: id as Ids.ExecutionId,
        publicState: state.right,
        executionKind: r.kind,
        createdAt: Number(at) as M.LaneExecutionEntry["createdAt"]
      } satisfies M.LaneExecutionEntry
    })

  const listLaneExecutions: BackendCore["listLaneExecutions"] = (q) =>
    Effect.gen(function*() {
      const states = q.states ?? M.PublicState.literals
      const want = q.limit + 1
      const rev = q.newestFirst
      // in the query's order: negative when x comes first
      const cmp = (x: string, y: string) => (x === y ? 0 : (x < y) !== rev ? -1 : 1)
      const start = q.after === undefined ? "" : memberOf(q.after)
      let shares: Array<Share> = groups().map((parts) => ({ parts, frontier: start, done: false }))
      const rows: Array<Row> = []
      let ask = shares
      let amount = want
      let budget = Limits.laneScanItems
      for (let round = 1;; round++) {
        // every entry examined matches unless a kind filter passes entries over: then the groups
        // share the scan budget
        let scan = q.kind === undefined ? amount : Math.floor(budget / ask.length)
        if (round === 1) scan = Math.max(scan, 1) // every group is read once
        if (scan >= 1) {
          budget -= scan * ask.length
          const args = {
            lane: q.laneId,
            states,
            ...(q.kind === undefined ? {} : { kind: q.kind }),
            rev,
            want: Math.min(amount, scan),
            scan
          }
          const replies = yield* Effect.forEach(
            ask,
            (share) => readGroup("lane_page", share.parts, { ...args, after: share.frontier }, decodePage),
            { concurrency: "unbounded" }
          )
          const next = shares.filter((share) => !ask.includes(share))
          replies.forEach((replied, i) => {
            // (a group asked one partition at a time becomes one share per partition)
            for (const { parts, reply } of replied) {
              rows.push(...reply.rows)
              next.push({ parts, frontier: reply.last === "" ? ask[i]!.frontier : reply.last, done: reply.done })
            }
          })
          shares = next
        }
        // every entry up to the earliest frontier of a group with more to read is known
        let bound: string | undefined
        for (const s of shares) if (!s.done && (bound === undefined || cmp(s.frontier, bound) < 0)) bound = s.frontier
        rows.sort((x, y) => cmp(x.member, y.member))
        const safe = bound === undefined ? rows : rows.filter((r) => cmp(r.member, bound) <= 0)
        const last = scan < 1 || round === MAX_ROUNDS
        if (safe.length >= want || bound === undefined || last) {
          const page = safe.slice(0, q.limit)
          const entries = yield* Effect.forEach(page, entryOf)
          const tail = entries[entries.length - 1]
          const next: LanePosition | undefined = safe.length > q.limit ?
            { at: tail!.createdAt, id: tail!.executionId } :
            bound === undefined ?
            undefined :
            { at: Number(bound.slice(0, 13)), id: bound.slice(14) as Ids.ExecutionId }
          return { entries, next }
        }
        // the groups that may still hold an entry of the page
        const threshold = rows.length >= want ? rows[want - 1]!.member : undefined
        ask = shares.filter((s) => !s.done && (threshold === undefined || cmp(s.frontier, threshold) < 0))
        amount = want - safe.length
      }
    })

  const countLaneExecutions: BackendCore["countLaneExecutions"] = (lane) =>
    Effect.gen(function*() {
      const states = M.PublicState.literals
      const replies = yield* Effect.forEach(
        groups(),
        (parts) =>
          readGroup("lane_counts", parts, { lane, states }, (env) => decodeJson("ff_lane_counts", Counts, env.fields[0])),
        { concurrency: "unbounded" }
      )
      const out = {} as Record<M.PublicState, number>
      for (const s of states) out[s] = 0
      for (const replied of replies) {
        for (const { reply } of replied) {
          states.forEach((s, i) => {
            out[s] += reply[i] ?? 0
          })
        }
      }
      return out
    })

  return { listLaneExecutions, countLaneExecutions }
}
