/**
 * Lane queries over Valkey (docs/design/reads.md#lane-queries): a lane's executions live in the
 * lane state index of each partition (helpers.lua, FF.lane_member), so a page is a merge of the
 * partitions' shares. The first round asks every partition for a few entries (on a standalone server
 * one read-only FCALL for all of them, on a cluster one per partition, all in flight at once); an entry is safe to answer when every partition not yet
 * exhausted has been read past it; the following rounds ask only the partitions whose reading
 * stopped before the page could be filled. A page costs O(partitions × a few entries) plus the
 * entries of the page, and never more than `Limits.laneScanItems` index entries examined.
 */
import { Effect, Schema } from "effect"
import { corruption } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { BackendCore, LanePosition } from "../../internal/boundary.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import type { CoreContext } from "./context.js"
import { S } from "./context.js"
import { decodeJson, LuaArray } from "./plumbing.js"

const Rows = LuaArray(Schema.Tuple(S, S, S))
const Shares = LuaArray(Schema.Tuple(S, S, S))
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
  /** The last member read (the start of the next read), "" before any. */
  frontier: string
  /** Nothing follows the frontier. */
  done: boolean
}

export const makeLanes = (ctx: CoreContext): Pick<BackendCore, "listLaneExecutions" | "countLaneExecutions"> => {
  const { call, client, keys, N, settings } = ctx

  /** One round: the share (rows, last member read, exhausted) of each partition asked. */
  const readShares = (
    ask: ReadonlyArray<number>,
    after: (p: number) => string,
    args: Record<string, unknown>
  ) =>
    client.isCluster ?
      Effect.forEach(ask, (p) =>
        Effect.gen(function*() {
          const env = yield* call("lane_page", ctx.flowTarget(p), { ...args, after: after(p) }, [], true)
          const rows = yield* decodeJson("ff_lane_page", Rows, env.fields[0])
          return { rows, last: env.fields[1] ?? "", done: env.fields[2] === "1" }
        }), { concurrency: "unbounded" }) :
      Effect.gen(function*() {
        const env = yield* call("lane_page_across", { base: keys.lanes }, {
          ...args,
          prefix: settings.prefix,
          parts: ask.map((p) => [p, after(p)])
        }, [], true)
        const shares = yield* decodeJson("ff_lane_page_across", Shares, env.fields[0])
        return yield* Effect.forEach(shares, ([rows, last, done]) =>
          Effect.map(decodeJson("ff_lane_page_across", Rows, rows), (r) => ({ rows: r, last, done: done === "1" })))
      })

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
      const shares: Array<Share> = Array.from({ length: N }, () => ({ frontier: start, done: false }))
      const rows: Array<Row> = []
      let ask = Array.from({ length: N }, (_, p) => p)
      let amount = Math.min(want, Math.max(2, Math.ceil((2 * want) / N)))
      let budget = Limits.laneScanItems
      for (let round = 1;; round++) {
        // a kind filter passes entries over: examine more than the matches asked for
        let scan = q.kind === undefined ? amount : Math.max(amount, Math.min(4 * amount, Math.floor(budget / ask.length)))
        scan = Math.min(scan, Math.floor(budget / ask.length))
        if (round === 1) scan = Math.max(scan, 1) // every partition is read once
        if (scan >= 1) {
          budget -= scan * ask.length
          const replies = yield* readShares(ask, (p) => shares[p]!.frontier, {
            lane: q.laneId,
            states,
            ...(q.kind === undefined ? {} : { kind: q.kind }),
            rev,
            want: Math.min(amount, scan),
            scan
          })
          for (let i = 0; i < ask.length; i++) {
            const reply = replies[i]!
            const share = shares[ask[i]!]!
            for (const [member, state, kind] of reply.rows) rows.push({ member, state, kind })
            if (reply.last !== "") share.frontier = reply.last
            share.done = reply.done
          }
        }
        // every entry up to the earliest frontier of a partition with more to read is known
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
        // the partitions that may still hold an entry of the page
        const threshold = rows.length >= want ? rows[want - 1]!.member : undefined
        ask = []
        shares.forEach((s, p) => {
          if (!s.done && (threshold === undefined || cmp(s.frontier, threshold) < 0)) ask.push(p)
        })
        amount = want - safe.length
      }
    })

  const countLaneExecutions: BackendCore["countLaneExecutions"] = (lane) =>
    Effect.gen(function*() {
      const states = M.PublicState.literals
      const replies = client.isCluster ?
        yield* Effect.forEach(
          Array.from({ length: N }, (_, p) => p),
          (p) => call("lane_counts", ctx.flowTarget(p), { lane, states }, [], true),
          { concurrency: "unbounded" }
        ) :
        [yield* call("lane_counts_across", { base: keys.lanes }, { prefix: settings.prefix, partitions: N, lane, states }, [], true)]
      const out = {} as Record<M.PublicState, number>
      for (const s of states) out[s] = 0
      for (const env of replies) {
        const counts = yield* decodeJson("ff_lane_counts", Counts, env.fields[0])
        states.forEach((s, i) => {
          out[s] += counts[i] ?? 0
        })
      }
      return out
    })

  return { listLaneExecutions, countLaneExecutions }
}
