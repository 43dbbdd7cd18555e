// A lane's kind indexes on Valkey are kept only once the lane meets a second kind: until then its
// eligible index serves its one kind. The switch renames the eligible index to a pending set, which
// calls move back a bounded chunk at a time (docs/design/valkey.md#indexes-per-execution). These
// tests look at the keys while a switch is in progress: every read sees the pending entries, and
// work made eligible during the switch is claimed in claim order, none lost.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Effect, Option } from "effect"
import { Redis } from "iovalkey"
import { EngineBackend } from "../src/EngineBackend.js"
import { decodeHandle } from "../src/internal/handleCodec.js"
import * as Ids from "../src/Ids.js"
import type * as M from "../src/Model.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { testHmacSecret } from "./support/hmac.js"

const url = inject("valkeyUrl")
const keyPrefix = `kd-${process.pid}-${Date.now().toString(36)}`
const live = ValkeyBackend.layer({ hmacSecret: testHmacSecret, url, keyPrefix })

const admin = Effect.acquireRelease(
  Effect.sync(() => new Redis(url)),
  (r) => Effect.promise(() => r.quit().catch(() => "closed"))
)
const cmd = (r: Redis, name: string, ...args: Array<string | Buffer>) =>
  Effect.promise(() => r.call(name, ...args) as Promise<unknown>)
const cmdBuffers = (r: Redis, name: string, ...args: Array<string | Buffer>) =>
  Effect.promise(() => r.callBuffer(name, ...args) as Promise<Array<Buffer>>)

/** An execution's member in the eligible indexes: its uuid's 16 bytes. */
const member = (id: string) => Buffer.from(id.slice(id.indexOf("}:") + 2).replaceAll("-", ""), "hex")

/** The lane's keys on the partition of `id` (all of this test's executions share it). */
const laneKeys = (id: Ids.ExecutionId, lane: string) => {
  const base = `${keyPrefix}:${id.slice(0, id.indexOf("}") + 1)}`
  return {
    mode: `${base}:l:${lane}:km`,
    pending: `${base}:l:${lane}:pend`,
    eligible: `${base}:l:${lane}:eligible`,
    kind: (k: string) => `${base}:l:${lane}:kind:${k}:${k.length}`
  }
}

const policy = {
  workerId: Ids.unsafe.workerId("kd"),
  workerInstanceId: Ids.unsafe.workerInstanceId("kd-1"),
  leaseTtlMs: 60_000
}
const claimOne = (lane: Ids.LaneId, kinds?: ReadonlyArray<string>) =>
  Effect.flatMap(EngineBackend, (b) =>
    b.claim({ lane, capabilities: { tokens: [] }, policy, ...(kinds === undefined ? {} : { kinds }) }))
const idOf = (h: Option.Option<M.Handle>) => {
  if (Option.isNone(h)) return expect.fail("nothing claimed")
  const d = decodeHandle("valkey", h.value)
  if (d._tag === "Left") return expect.fail("cannot decode handle")
  return d.right.executionId
}

const at = <A>(xs: ReadonlyArray<A>, i: number): A => {
  const x = xs[i]
  return x === undefined ? expect.fail(`no item ${i}`) : x
}

type Item = { readonly id: Ids.ExecutionId; priority: number; readonly kind: string }

const createAll = (lane: Ids.LaneId, items: ReadonlyArray<Item>) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const r = yield* b.createExecutions(items.map((i) => ({
      executionId: i.id,
      laneId: lane,
      namespace: Ids.unsafe.namespace("kd"),
      executionKind: i.kind,
      priority: i.priority
    })))
    expect(r.filter((x) => x._tag === "Created")).toHaveLength(items.length)
  })

const newItems = (lane: Ids.LaneId, n: number, kind: string, priority: (i: number) => number) =>
  Effect.forEach(
    Array.from({ length: n }, (_, i) => i),
    (i) => Effect.map(Ids.executionIdSolo(lane), (id): Item => ({ id, priority: priority(i), kind }))
  )

/** The lane's waiting executions, oldest first, read in pages of `limit`. */
const waiting = (lane: Ids.LaneId, limit: number) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const out: Array<M.LaneExecutionEntry> = []
    let cursor: string | undefined
    for (let i = 0; i < 100; i++) {
      const page: M.ListLaneExecutionsPage = yield* b.listLaneExecutions({
        laneId: lane,
        states: ["waiting"],
        order: "oldest",
        limit,
        ...(cursor === undefined ? {} : { cursor })
      })
      out.push(...page.executions)
      if (page.nextCursor === undefined) break
      cursor = page.nextCursor
    }
    return out
  })

/** Claim order: priority (higher first), then creation time, then id. */
const claimOrder = (items: ReadonlyArray<Item>, createdAt: ReadonlyMap<string, number>) =>
  [...items].sort((x, y) =>
    y.priority - x.priority || createdAt.get(x.id)! - createdAt.get(y.id)! || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0)
  ).map((i) => i.id)

layer(live, { excludeTestServices: true, timeout: 60_000 })("valkey, kind indexes kept once a lane meets a second kind", (it) => {
  describe("the switch in bounded steps", () => {
    it.scoped("reads see the pending set and claims take everything in claim order while the switch runs", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kd-${(yield* Ids.randomUuid).slice(0, 8)}`)
        const first = yield* newItems(lane, 300, "a", (i) => (i % 3 === 0 ? 2 : 0))
        for (let i = 0; i < first.length; i += 100) yield* createAll(lane, first.slice(i, i + 100))
        const k = laneKeys(at(first, 0).id, lane)

        // one kind: no kind index, the eligible index serves it
        expect(yield* cmd(r, "GET", k.mode)).toBe("=a")
        expect(yield* cmd(r, "EXISTS", k.kind("a"))).toBe(0)
        expect(yield* cmd(r, "ZCARD", k.eligible)).toBe(300)
        const before = yield* waiting(lane, 40)
        expect(before.map((e) => e.executionId).sort()).toEqual(first.map((i) => i.id).sort())

        // a second kind: the eligible index becomes the pending set; the call moves one chunk back
        const bee = at(yield* newItems(lane, 1, "b", () => 1), 0)
        yield* createAll(lane, [bee])
        expect(yield* cmd(r, "GET", k.mode)).toBe("+a")
        const pendingAfterSwitch = (yield* cmd(r, "ZCARD", k.pending)) as number
        expect(pendingAfterSwitch).toBeGreaterThan(200)
        expect(pendingAfterSwitch).toBeLessThan(300)
        expect(yield* cmd(r, "ZCARD", k.kind("b"))).toBe(1)

        // the lane pages read the pending set too: the same executions, in the same order, and b
        const during = yield* waiting(lane, 40)
        expect(during.map((e) => e.executionId)).toEqual(
          [...before, ...during.filter((e) => e.executionId === bee.id)].sort((x, y) =>
            x.createdAt - y.createdAt || (x.executionId < y.executionId ? -1 : 1)
          ).map((e) => e.executionId)
        )
        expect(yield* b.countLaneExecutions(lane)).toMatchObject({ byState: { waiting: 301 } })

        // work made eligible during the switch: better and worse than the pending entries, and a
        // pending execution given a new priority (its entry leaves the pending set)
        const late = yield* newItems(lane, 6, "a", (i) => (i < 3 ? 5 : 0))
        yield* createAll(lane, late)
        const last = at(yield* cmdBuffers(r, "ZRANGE", k.pending, "-1", "-1"), 0)
        const moved = first.find((i) => member(i.id).equals(last))
        if (moved === undefined) return expect.fail("the pending set's last member is not an execution of the lane")
        yield* b.changePriority({ executionId: moved.id, newPriority: 9 })
        expect(yield* cmd(r, "ZSCORE", k.pending, last)).toBe(null)
        moved.priority = 9
        const all: Array<Item> = [...first, bee, ...late]
        const createdAt = new Map((yield* waiting(lane, 100)).map((e) => [e.executionId as string, e.createdAt]))
        expect(createdAt.size).toBe(all.length)
        const expected = claimOrder(all, createdAt)
        expect(yield* cmd(r, "GET", k.mode)).toBe("+a")

        // claims limited to a kind find their kind's best, pending or not
        expect(idOf(yield* claimOne(lane, ["b"]))).toBe(bee.id)
        const expectedA = expected.filter((id) => id !== bee.id)
        const claimed: Array<string> = [bee.id]
        // (batches of claims: one call moves one chunk back, so the later claims of a batch read the
        // pending set itself; single claims in between)
        let claimsWhilePending = 0
        let batch = 0
        for (let i = 0; i < expectedA.length; batch++) {
          if ((yield* cmd(r, "EXISTS", k.pending)) === 1) claimsWhilePending++
          const kinds = batch % 2 === 0 ? { kinds: ["a"] } : {}
          // (the first batch claims past what the chunks moved so far: it must read the pending set)
          const size = batch === 0 ? 200 : batch % 3 === 2 ? 1 : 40
          const got = size === 1 ?
            [idOf(yield* claimOne(lane, batch % 2 === 0 ? ["a"] : undefined))] :
            (yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy, ...kinds }, size)).map((h) =>
              idOf(Option.some(h))
            )
          expect(got).toEqual(expectedA.slice(i, i + got.length))
          expect(got.length).toBe(Math.min(size, expectedA.length - i))
          claimed.push(...got)
          i += got.length
        }
        expect(claimsWhilePending).toBeGreaterThan(1)
        expect(yield* claimOne(lane)).toEqual(Option.none())
        expect(claimed.sort()).toEqual(all.map((i) => i.id).sort())
        expect(yield* cmd(r, "EXISTS", k.pending)).toBe(0)
        expect(yield* cmd(r, "GET", k.mode)).toBe("!")
        expect(yield* cmd(r, "EXISTS", k.kind("a"))).toBe(0)
      }))

    it.scoped("a second kind that finds the lane empty takes it over without kind indexes", () =>
      Effect.gen(function*() {
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kd-${(yield* Ids.randomUuid).slice(0, 8)}`)
        const a = at(yield* newItems(lane, 1, "a", () => 0), 0)
        yield* createAll(lane, [a])
        const k = laneKeys(a.id, lane)
        expect(idOf(yield* claimOne(lane))).toBe(a.id)
        const x = at(yield* newItems(lane, 1, "b", () => 0), 0)
        yield* createAll(lane, [x])
        expect(yield* cmd(r, "GET", k.mode)).toBe("=b")
        expect(yield* cmd(r, "EXISTS", k.kind("b"))).toBe(0)
        expect(yield* claimOne(lane, ["a"])).toEqual(Option.none())
        expect(idOf(yield* claimOne(lane, ["b"]))).toBe(x.id)
      }))

    it.scoped("a lane of an older store (eligible work, no mode) keeps its kind indexes", () =>
      Effect.gen(function*() {
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kd-${(yield* Ids.randomUuid).slice(0, 8)}`)
        const items = yield* newItems(lane, 2, "a", () => 0)
        yield* createAll(lane, [at(items, 0)])
        const k = laneKeys(at(items, 0).id, lane)
        // as a version 4 store left it: ids as members, the kind index beside the eligible index, no mode
        const id0 = at(items, 0).id
        const score = (yield* cmd(r, "ZSCORE", k.eligible, member(id0))) as string
        yield* cmd(r, "ZREM", k.eligible, member(id0))
        yield* cmd(r, "ZADD", k.eligible, score, id0)
        yield* cmd(r, "ZADD", k.kind("a"), score, id0)
        yield* cmd(r, "DEL", k.mode)
        yield* createAll(lane, [at(items, 1)])
        expect(yield* cmd(r, "GET", k.mode)).toBe("!")
        expect(yield* cmd(r, "ZCARD", k.kind("a"))).toBe(2)
        const page = yield* waiting(lane, 10)
        expect(page.map((e) => e.executionId)).toEqual(items.map((i) => i.id))
        expect(idOf(yield* claimOne(lane, ["a"]))).toBe(id0)
        // (its entries left both indexes in their old form)
        expect(yield* cmd(r, "ZCARD", k.kind("a"))).toBe(1)
        expect(yield* cmd(r, "ZCARD", k.eligible)).toBe(1)
        expect(idOf(yield* claimOne(lane))).toBe(at(items, 1).id)
      }))
  })
})
