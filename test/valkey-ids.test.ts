// The partition's id index on Valkey (docs/design/valkey.md#the-id-index): listExecutions reads
// buckets of at most 64 ids that split as they fill and leave the directory when emptied.
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "iovalkey"
import { inject } from "vitest"
import type { ExecutionId } from "../src/Ids.js"
import * as Ids from "../src/Ids.js"
import { Maintenance } from "../src/Maintenance.js"
import type * as M from "../src/Model.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { advance, backend, executionIdOnPartition, newLane, NS } from "./conformance/helpers.js"
import { testHmacSecret } from "./support/hmac.js"

const prefix = `ids-${process.pid}-${Date.now().toString(36)}`
const P = 7
const base = `${prefix}:{fp:${P}}`
const partition = Ids.partitionKey("Flow", P)

/** Every id of the partition, page by page (`limit` per page). */
const listAll = (limit: number, cursor?: ExecutionId) =>
  Effect.gen(function*() {
    const b = yield* backend
    const out: Array<ExecutionId> = []
    let after = cursor
    for (;;) {
      const page: M.ListExecutionsPage = yield* b.listExecutions({
        partition,
        limit,
        ...(after === undefined ? {} : { cursor: after })
      })
      expect(page.executions.length).toBeLessThanOrEqual(limit)
      out.push(...page.executions)
      if (page.nextCursor === undefined) return out
      expect(page.nextCursor).toBe(page.executions[page.executions.length - 1])
      after = page.nextCursor
    }
  })

/** The buckets: their bounds in directory order and, per bucket, its size and encoding. */
const buckets = (admin: Redis) =>
  Effect.promise(async () => {
    const bounds = await admin.zrange(`${base}:i:ids`, 0, -1)
    const out: Array<{ bound: string; size: number; encoding: string | null }> = []
    for (const bound of bounds) {
      const key = `${base}:i:ids:${bound}`
      out.push({ bound, size: await admin.zcard(key), encoding: await admin.object("ENCODING", key) as string | null })
    }
    return out
  })

const sorted = <A extends string>(ids: ReadonlyArray<A>): Array<A> => [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
const hexOf = (id: string) => id.slice(id.indexOf("}:") + 2).replace(/-/g, "")

describe("valkey id index", () => {
  layer(ValkeyBackend.layer({ hmacSecret: testHmacSecret, url: inject("valkeyUrl"), clock: "effect", keyPrefix: prefix }), {
    timeout: 60_000
  })((it) => {
    it.scoped("buckets split as they fill, stay listpacks, pages cross them; deletes empty buckets and the index", () =>
      Effect.gen(function*() {
        const admin = new Redis(inject("valkeyUrl"), { maxRetriesPerRequest: 1 })
        yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
        const b = yield* backend
        const lane = yield* newLane()
        // random ids, and a run of (even) ids sharing their first 29 hex digits (deterministic ids may)
        const ids: Array<ExecutionId> = []
        for (let i = 0; i < 500; i++) ids.push(yield* executionIdOnPartition(P))
        for (let i = 0; i < 300; i++) {
          ids.push(`{fp:${P}}:00000000-0000-4000-8000-000000000${(2 * i).toString(16).padStart(3, "0")}` as ExecutionId)
        }
        const shuffled = [...ids].sort(() => Math.random() - 0.5)
        for (let i = 0; i < shuffled.length; i += 100) {
          const res = yield* b.createExecutions(shuffled.slice(i, i + 100).map((executionId) => ({
            namespace: NS,
            executionKind: "ids",
            executionId,
            laneId: lane,
            policy: { streamPolicy: { retentionTtlMs: 1_000 } }
          })))
          expect(res.every((r) => r._tag === "Created")).toBe(true)
        }
        const all = sorted(ids)
        const bs = yield* buckets(admin)
        // 800 ids in buckets of at most 64: at least 13 buckets, every one a listpack of ids in range
        expect(bs.length).toBeGreaterThanOrEqual(13)
        expect(bs[0]!.bound).toBe("")
        for (const bk of bs) {
          expect(bk.size).toBeGreaterThan(0)
          expect(bk.size).toBeLessThanOrEqual(64)
          expect(bk.encoding).toBe("listpack")
        }
        // each bucket holds exactly the ids from its bound to the next one's
        for (let j = 0; j < bs.length; j++) {
          const lo = bs[j]!.bound
          const hi = bs[j + 1]?.bound
          const inRange = all.filter((id) => hexOf(id) >= lo && (hi === undefined || hexOf(id) < hi))
          expect(inRange.length).toBe(bs[j]!.size)
        }
        expect(yield* listAll(1_000)).toEqual(all)
        expect(yield* listAll(7)).toEqual(all)
        expect(yield* listAll(1)).toEqual(all)
        // a cursor at a bucket's last id resumes at the next bucket's first; one before all ids
        const second = bs[1]!.bound
        const lastOfFirst = all.filter((id) => hexOf(id) < second).pop()!
        const page = yield* b.listExecutions({ partition, cursor: lastOfFirst, limit: 2 })
        expect(page.executions).toEqual(all.slice(all.indexOf(lastOfFirst) + 1, all.indexOf(lastOfFirst) + 3))
        // a cursor that is not in the index (an id never created) resumes after its place
        const ghost = `{fp:${P}}:00000000-0000-4000-8000-0000000000ff` as ExecutionId
        expect(ids).not.toContain(ghost)
        expect((yield* b.listExecutions({ partition, cursor: ghost, limit: 3 })).executions).toEqual(
          all.filter((id) => id > ghost).slice(0, 3)
        )
        // cursors of other partitions: before every id here, or after every one
        expect((yield* b.listExecutions({ partition, cursor: `{fp:10}:${all[5]!.slice(all[5]!.indexOf("}:") + 2)}` as ExecutionId, limit: 2 })))
          .toEqual({ executions: all.slice(0, 2), nextCursor: all[1] })
        expect((yield* b.listExecutions({ partition, cursor: `{fp:8}:${"0".repeat(8)}-0000-4000-8000-${"0".repeat(12)}` as ExecutionId, limit: 2 })))
          .toEqual({ executions: [] })

        // delete every id of the third bucket and some of others (cancel, then retention)
        const lo3 = bs[2]!.bound
        const hi3 = bs[3]!.bound
        const third = all.filter((id) => hexOf(id) >= lo3 && hexOf(id) < hi3)
        const others = all.filter((_, i) => i % 5 === 0).filter((id) => !third.includes(id))
        const gone = new Set([...third, ...others])
        for (const id of gone) yield* b.cancelExecution({ executionId: id, reason: "ids test" })
        yield* advance(2_000)
        const m = yield* Maintenance
        let deleted = 0
        for (;;) {
          const r = yield* m.trimRetention()
          deleted += r.processed
          if (!r.more) break
        }
        expect(deleted).toBe(gone.size)
        const left = all.filter((id) => !gone.has(id))
        const after = yield* buckets(admin)
        expect(after.map((x) => x.bound)).not.toContain(lo3)
        expect(after.length).toBe(bs.length - 1)
        expect(yield* Effect.promise(() => admin.exists(`${base}:i:ids:${lo3}`))).toBe(0)
        for (const bk of after) expect(bk.size).toBeGreaterThan(0)
        expect(yield* listAll(1_000)).toEqual(left)
        expect(yield* listAll(9)).toEqual(left)
        // a cursor inside the emptied range resumes at the next bucket
        expect((yield* b.listExecutions({ partition, cursor: third[0]!, limit: 1 })).executions).toEqual(
          left.filter((id) => id > third[0]!).slice(0, 1)
        )

        // every execution deleted: no key of the index is left
        for (const id of left) yield* b.cancelExecution({ executionId: id, reason: "ids test" })
        yield* advance(2_000)
        for (;;) {
          const r = yield* m.trimRetention()
          if (!r.more) break
        }
        expect(yield* listAll(10)).toEqual([])
        const keys = yield* Effect.promise(() => admin.keys(`${base}:i:ids*`))
        expect(keys).toEqual([])
      }))
  })
})
