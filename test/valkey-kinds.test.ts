// A lane's kind indexes on Valkey are kept only once the lane meets a second kind: until then its
// eligible index serves its one kind. The switch renames the eligible index to a pending set, which
// calls move back a bounded chunk at a time (docs/design/valkey.md#indexes-per-execution). These
// tests look at the keys while a switch is in progress: every read sees the pending entries, and
// work made eligible during the switch is claimed in claim order, none lost. The eligible index and
// the pending set are bucketed (docs/design/valkey.md#the-eligible-buckets): the tests read the
// buckets, check their bounds and sizes, and claim across splits and emptied buckets.
import { describe, expect, inject, layer } from "@effect/vitest"
import { Effect, Option, TestClock } from "effect"
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
// the same store under Effect's clock, for tests that choose the creation times
const clocked = ValkeyBackend.layer({ hmacSecret: testHmacSecret, url, keyPrefix, clock: "effect" })

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

/** A bucketed set: its directory and the prefix of its buckets' keys. */
type Bucketed = { readonly dir: string; readonly pre: string }

/** The lane's keys on the partition of `id` (all of this test's executions share it). */
const laneKeys = (id: Ids.ExecutionId, lane: string) => {
  const base = `${keyPrefix}:${id.slice(0, id.indexOf("}") + 1)}`
  return {
    mode: `${base}:l:${lane}:km`,
    // the plain sets of a store of version 8 or older
    pendingPlain: `${base}:l:${lane}:pend`,
    eligiblePlain: `${base}:l:${lane}:eligible`,
    // the bucketed ones: the eligible index of a lane of one kind, and of a lane with kind indexes
    eligibleOne: { dir: `${base}:l:${lane}:ed`, pre: `${base}:l:${lane}:eb1:` },
    eligibleKinds: { dir: `${base}:l:${lane}:ed`, pre: `${base}:l:${lane}:eb2:` },
    pending: { dir: `${base}:l:${lane}:pd`, pre: `${base}:l:${lane}:eb1:` },
    kind: (k: string) => `${base}:l:${lane}:kind:${k}:${k.length}`
  }
}

/**
 * The key of an entry, as the buckets' bounds spell it: 17 digits of score + 10^16, the member in hex.
 * The sum is taken exactly (as a double it is past 2^53, where only even numbers are kept).
 */
const entryKey = (score: number, m: Buffer) =>
  `${(BigInt(score) + BigInt(1e16)).toString().padStart(17, "0")}${m.toString("hex")}`

/** The bounds of a bucketed set's buckets: its directory's, or the first bucket's alone when it has none. */
const boundsOf = (r: Redis, s: Bucketed) =>
  Effect.gen(function*() {
    const bounds = (yield* cmd(r, "ZRANGE", s.dir, "0", "-1")) as Array<string>
    if (bounds.length > 0) {
      expect(bounds[0]).toBe("")
      return bounds
    }
    return (yield* cmd(r, "EXISTS", s.pre)) === 1 ? [""] : []
  })

/**
 * The entries of a bucketed set in order, after checking its shape: every bucket holds 1 to 64
 * entries, all at or above its bound and below the next one's, the first bound "" (a set of one
 * bucket has no directory).
 */
const entries = (r: Redis, s: Bucketed) =>
  Effect.gen(function*() {
    const bounds = yield* boundsOf(r, s)
    const out: Array<{ readonly member: Buffer; readonly score: number }> = []
    for (let j = 0; j < bounds.length; j++) {
      const flat = yield* cmdBuffers(r, "ZRANGE", `${s.pre}${bounds[j]}`, "0", "-1", "WITHSCORES")
      expect(flat.length).toBeGreaterThan(0)
      expect(flat.length).toBeLessThanOrEqual(128)
      for (let i = 0; i < flat.length; i += 2) {
        const e = { member: at(flat, i), score: Number(at(flat, i + 1).toString()) }
        const key = entryKey(e.score, e.member)
        expect(key >= at(bounds, j)).toBe(true)
        if (j + 1 < bounds.length) expect(key < at(bounds, j + 1)).toBe(true)
        out.push(e)
      }
    }
    return out
  })
const size = (r: Redis, s: Bucketed) => Effect.map(entries(r, s), (xs) => xs.length)

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
        expect(yield* cmd(r, "GET", k.mode)).toBe("b=a")
        expect(yield* cmd(r, "EXISTS", k.kind("a"))).toBe(0)
        expect(yield* size(r, k.eligibleOne)).toBe(300)
        expect(((yield* boundsOf(r, k.eligibleOne))).length).toBeGreaterThan(4)
        const before = yield* waiting(lane, 40)
        expect(before.map((e) => e.executionId).sort()).toEqual(first.map((i) => i.id).sort())

        // a second kind: the eligible index becomes the pending set; the call moves one chunk back
        const bee = at(yield* newItems(lane, 1, "b", () => 1), 0)
        yield* createAll(lane, [bee])
        expect(yield* cmd(r, "GET", k.mode)).toBe("b+a")
        const pendingAfterSwitch = yield* size(r, k.pending)
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
        const pend = yield* entries(r, k.pending)
        const last = at(pend, pend.length - 1).member
        const moved = first.find((i) => member(i.id).equals(last))
        if (moved === undefined) return expect.fail("the pending set's last member is not an execution of the lane")
        yield* b.changePriority({ executionId: moved.id, newPriority: 9 })
        expect((yield* entries(r, k.pending)).some((e) => e.member.equals(last))).toBe(false)
        moved.priority = 9
        const all: Array<Item> = [...first, bee, ...late]
        const createdAt = new Map((yield* waiting(lane, 100)).map((e) => [e.executionId as string, e.createdAt]))
        expect(createdAt.size).toBe(all.length)
        // (the moved execution's one entry is in the eligible index, at its new score)
        expect((yield* entries(r, k.eligibleKinds)).filter((e) => e.member.equals(last)))
          .toEqual([{ member: last, score: -9e12 + createdAt.get(moved.id)! }])
        const expected = claimOrder(all, createdAt)
        expect(yield* cmd(r, "GET", k.mode)).toBe("b+a")

        // claims limited to a kind find their kind's best, pending or not
        expect(idOf(yield* claimOne(lane, ["b"]))).toBe(bee.id)
        const expectedA = expected.filter((id) => id !== bee.id)
        const claimed: Array<string> = [bee.id]
        // (batches of claims: one call moves one chunk back, so the later claims of a batch read the
        // pending set itself; single claims in between)
        let claimsWhilePending = 0
        let batch = 0
        for (let i = 0; i < expectedA.length; batch++) {
          if ((yield* cmd(r, "EXISTS", k.pending.pre)) === 1) claimsWhilePending++
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
        expect(yield* cmd(r, "EXISTS", k.pending.dir, k.pending.pre)).toBe(0)
        expect(yield* cmd(r, "EXISTS", k.eligibleKinds.dir, k.eligibleKinds.pre)).toBe(0)
        expect(yield* cmd(r, "KEYS", `${k.pending.pre.slice(0, -4)}eb*`)).toEqual([])
        expect(yield* cmd(r, "GET", k.mode)).toBe("b!")
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
        expect(yield* cmd(r, "GET", k.mode)).toBe("b=b")
        expect(yield* cmd(r, "EXISTS", k.kind("b"))).toBe(0)
        expect(yield* claimOne(lane, ["a"])).toEqual(Option.none())
        expect(idOf(yield* claimOne(lane, ["b"]))).toBe(x.id)
      }))

    it.scoped("a lane of an older store (eligible work, no mode) keeps its kind indexes", () =>
      Effect.gen(function*() {
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kd-${(yield* Ids.randomUuid).slice(0, 8)}`)
        const items = yield* newItems(lane, 3, "a", () => 0)
        yield* createAll(lane, [at(items, 0)])
        const k = laneKeys(at(items, 0).id, lane)
        // as a version 4 store left it: a plain eligible index with ids as members, the kind index
        // beside it, no mode
        const id0 = at(items, 0).id
        const [entry] = yield* entries(r, k.eligibleOne)
        if (entry === undefined) return expect.fail("no entry")
        for (const bound of (yield* boundsOf(r, k.eligibleOne))) {
          yield* cmd(r, "DEL", `${k.eligibleOne.pre}${bound}`)
        }
        yield* cmd(r, "DEL", k.eligibleOne.dir, k.mode)
        yield* cmd(r, "ZADD", k.eligiblePlain, String(entry.score), id0)
        yield* cmd(r, "ZADD", k.kind("a"), String(entry.score), id0)
        yield* createAll(lane, [at(items, 1)])
        expect(yield* cmd(r, "GET", k.mode)).toBe("!")
        expect(yield* cmd(r, "ZCARD", k.eligiblePlain)).toBe(2)
        expect(yield* cmd(r, "ZCARD", k.kind("a"))).toBe(2)
        const page = yield* waiting(lane, 10)
        expect(page.map((e) => e.executionId)).toEqual(items.slice(0, 2).map((i) => i.id))
        expect(idOf(yield* claimOne(lane, ["a"]))).toBe(id0)
        // (its entries left both indexes in their old form)
        expect(yield* cmd(r, "ZCARD", k.kind("a"))).toBe(1)
        expect(yield* cmd(r, "ZCARD", k.eligiblePlain)).toBe(1)
        expect(idOf(yield* claimOne(lane))).toBe(at(items, 1).id)
        // drained, the lane takes the bucketed layout with the next execution made eligible
        yield* createAll(lane, [at(items, 2)])
        expect(yield* cmd(r, "GET", k.mode)).toBe("b!")
        expect(yield* cmd(r, "EXISTS", k.eligiblePlain)).toBe(0)
        expect((yield* entries(r, k.eligibleKinds)).map((e) => e.member)).toEqual([member(at(items, 2).id)])
        expect(yield* cmd(r, "ZCARD", k.kind("a"))).toBe(1)
        expect(idOf(yield* claimOne(lane, ["a"]))).toBe(at(items, 2).id)
        expect(yield* cmd(r, "EXISTS", k.eligibleKinds.dir, k.eligibleKinds.pre)).toBe(0)
      }))

    it.scoped("a plain pending set of an older store is moved into the buckets and claimed in order", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kd-${(yield* Ids.randomUuid).slice(0, 8)}`)
        const items = yield* newItems(lane, 90, "a", (i) => i % 4)
        yield* createAll(lane, items)
        const k = laneKeys(at(items, 0).id, lane)
        // as a store of version 8 or older switching kinds left it: the plain pending set, mode "+a"
        const all = yield* entries(r, k.eligibleOne)
        for (const bound of (yield* boundsOf(r, k.eligibleOne))) {
          yield* cmd(r, "DEL", `${k.eligibleOne.pre}${bound}`)
        }
        yield* cmd(r, "DEL", k.eligibleOne.dir)
        yield* Effect.promise(() => r.zadd(k.pendingPlain, ...all.flatMap((e) => [e.score, e.member])))
        yield* cmd(r, "SET", k.mode, "+a")
        const createdAt = new Map((yield* waiting(lane, 25)).map((e) => [e.executionId as string, e.createdAt]))
        expect(createdAt.size).toBe(items.length)
        const bee = at(yield* newItems(lane, 1, "b", () => 2), 0)
        yield* createAll(lane, [bee])
        createdAt.set(bee.id, at((yield* waiting(lane, 100)).filter((e) => e.executionId === bee.id), 0).createdAt)
        const expected = claimOrder([...items, bee], createdAt)
        const got: Array<string> = []
        while (got.length < expected.length) {
          const hs = yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 7)
          if (hs.length === 0) break
          got.push(...hs.map((h) => idOf(Option.some(h))))
        }
        expect(got).toEqual(expected)
        expect(yield* cmd(r, "GET", k.mode)).toBe("!")
        expect(yield* cmd(r, "EXISTS", k.pendingPlain)).toBe(0)
      }))
  })

  describe("the eligible buckets", () => {
    it.scoped("one call's batch lands in many buckets and splits them, each entry in its bucket", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kb-${(yield* Ids.randomUuid).slice(0, 8)}`)
        // buckets first, then batches that scatter over them (one millisecond: uuid order) and
        // over priorities, each written by one call that looks up and splits many buckets
        const first = yield* newItems(lane, 150, "a", () => 0)
        for (let i = 0; i < first.length; i += 50) yield* createAll(lane, first.slice(i, i + 50))
        const big = yield* newItems(lane, 400, "a", () => 0)
        yield* createAll(lane, big)
        const mixed = yield* newItems(lane, 200, "a", (i) => [0, 4, 0, 9][i % 4]!)
        yield* createAll(lane, mixed)
        const items = [...first, ...big, ...mixed]
        const k = laneKeys(at(items, 0).id, lane)
        const createdAt = new Map((yield* waiting(lane, 97)).map((e) => [e.executionId as string, e.createdAt]))
        const expected = claimOrder(items, createdAt)
        // (the data: random ids, and the creation times of the calls, printed if the order breaks)
        const times = `created at ${[...new Set(createdAt.values())].sort().join(", ")}`
        expect((yield* boundsOf(r, k.eligibleOne)).length).toBeGreaterThan(10)
        const inIndex = (yield* entries(r, k.eligibleOne)).map((e) => e.member.toString("hex"))
        expect(inIndex, times).toEqual(expected.map((id) => member(id).toString("hex")))
        const claimed: Array<string> = []
        for (let round = 0; round < 100 && claimed.length < items.length; round++) {
          const got = (yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 61))
            .map((h) => idOf(Option.some(h)))
          claimed.push(...got)
        }
        expect(claimed, times).toEqual(expected)
        expect(yield* cmd(r, "KEYS", `${k.eligibleOne.pre}*`)).toEqual([])
      }))

    it.scoped("claims take the lane in claim order across splits, emptied buckets and priority changes", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const r = yield* admin
        const lane = Ids.unsafe.laneId(`kd-${(yield* Ids.randomUuid).slice(0, 8)}`)
        // in batches: later ones better, worse and equal (work lands at the head, the tail and the middle)
        const items = yield* newItems(lane, 400, "a", (i) => [0, 3, 1, 3, 0, 2, 5, 1][Math.floor(i / 50)]!)
        for (let i = 0; i < items.length; i += 50) yield* createAll(lane, items.slice(i, i + 50))
        const k = laneKeys(at(items, 0).id, lane)
        const sizes = () =>
          Effect.gen(function*() {
            const bounds = (yield* boundsOf(r, k.eligibleOne))
            return yield* Effect.forEach(bounds, (bd) => cmd(r, "ZCARD", `${k.eligibleOne.pre}${bd}`))
          })
        expect((yield* sizes()).length).toBeGreaterThan(6)
        expect(yield* size(r, k.eligibleOne)).toBe(400)
        // priorities changed: up, down, to the same
        for (let i = 0; i < items.length; i += 13) {
          const item = at(items, i)
          item.priority = (i * 7) % 6
          yield* b.changePriority({ executionId: item.id, newPriority: item.priority })
        }
        const createdAt = new Map((yield* waiting(lane, 33)).map((e) => [e.executionId as string, e.createdAt]))
        expect(createdAt.size).toBe(items.length)
        const expected = claimOrder(items, createdAt)
        // the index in claim order, and the lane pages (oldest and newest first) over the buckets
        const inIndex = (yield* entries(r, k.eligibleOne)).map((e) => e.member.toString("hex"))
        expect(inIndex).toEqual(expected.map((id) => member(id).toString("hex")))
        const byAge = [...items].map((i) => i.id).sort((x, y) =>
          createdAt.get(x)! - createdAt.get(y)! || (x < y ? -1 : 1)
        )
        expect((yield* waiting(lane, 17)).map((e) => e.executionId)).toEqual(byAge)
        const newest: Array<string> = []
        let cursor: string | undefined
        for (let i = 0; i < 100; i++) {
          const page: M.ListLaneExecutionsPage = yield* b.listLaneExecutions({
            laneId: lane,
            states: ["waiting"],
            order: "newest",
            limit: 29,
            ...(cursor === undefined ? {} : { cursor })
          })
          newest.push(...page.executions.map((e) => e.executionId))
          if (page.nextCursor === undefined) break
          cursor = page.nextCursor
        }
        expect(newest).toEqual([...byAge].reverse())
        // claims, single and in batches, with work made eligible between them
        const claimed: Array<string> = []
        let queue = expected
        for (let round = 0; queue.length > 0; round++) {
          const n = round % 3 === 0 ? 1 : 23
          const got = n === 1 ?
            [idOf(yield* claimOne(lane, round % 2 === 0 ? ["a"] : undefined))] :
            (yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, n)).map((h) => idOf(Option.some(h)))
          expect(got).toEqual(queue.slice(0, got.length))
          claimed.push(...got)
          queue = queue.slice(got.length)
          yield* entries(r, k.eligibleOne)
          if (round === 5) {
            // a newcomer of the best priority goes first
            const top = at(yield* newItems(lane, 1, "a", () => 9), 0)
            yield* createAll(lane, [top])
            queue = [top.id, ...queue]
          }
        }
        expect(yield* claimOne(lane)).toEqual(Option.none())
        expect(claimed).toHaveLength(401)
        expect(yield* cmd(r, "EXISTS", k.eligibleOne.dir)).toBe(0)
        expect(yield* cmd(r, "KEYS", `${k.eligibleOne.pre}*`)).toEqual([])
        // a lane that empties and fills again keeps one bucket and no directory
        const again = yield* newItems(lane, 3, "a", () => 0)
        yield* createAll(lane, again)
        expect(yield* cmd(r, "EXISTS", k.eligibleOne.dir)).toBe(0)
        expect((yield* entries(r, k.eligibleOne)).map((e) => e.member.toString("hex")).sort())
          .toEqual(again.map((i) => member(i.id).toString("hex")).sort())
        expect(yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 5)).toHaveLength(3)
        expect(yield* cmd(r, "KEYS", `${k.eligibleOne.pre}*`)).toEqual([])
      }))
  })
})

layer(clocked, { timeout: 60_000 })("valkey, the eligible buckets under a chosen clock", (it) => {
  // Claim scores of neighbouring milliseconds differ by 1, and score + 10^16 is past 2^53, where a
  // double keeps only even numbers: a key written from that sum gives the scores T and T + 1 (T a
  // multiple of 4) the same digits, so an entry of T + 1 with a low member keys before the entries
  // of T with higher members, though it sorts after them in its bucket.
  it.scoped("an entry of the next millisecond keys after every entry of this one (scores past 2^53 kept exact)", () =>
    Effect.gen(function*() {
      const b = yield* EngineBackend
      const r = yield* admin
      const lane = Ids.unsafe.laneId(`kt-${(yield* Ids.randomUuid).slice(0, 8)}`)
      const T = 1_796_617_013_536 // a multiple of 4
      const byMember = (xs: ReadonlyArray<Item>) =>
        [...xs].sort((x, y) => Buffer.compare(member(x.id), member(y.id)))
      const items: Array<Item> = []
      const createdAt = new Map<string, number>()
      // per priority (scores above and below 0): 60 entries of higher members at T + d (they split
      // their bucket), then 40 of lower members at T + d + 1
      for (const [priority, d] of [[0, 0], [3, 4]] as const) {
        const group = byMember(yield* newItems(lane, 100, "a", () => priority))
        const late = group.slice(0, 40)
        const early = group.slice(40)
        yield* TestClock.setTime(T + d)
        yield* createAll(lane, early)
        yield* TestClock.setTime(T + d + 1)
        yield* createAll(lane, late)
        for (const i of early) createdAt.set(i.id, T + d)
        for (const i of late) createdAt.set(i.id, T + d + 1)
        items.push(...early, ...late)
      }
      const k = laneKeys(at(items, 0).id, lane)
      expect((yield* boundsOf(r, k.eligibleOne)).length).toBeGreaterThan(2)
      const expected = claimOrder(items, createdAt)
      const inIndex = (yield* entries(r, k.eligibleOne)).map((e) => e.member.toString("hex"))
      expect(inIndex).toEqual(expected.map((id) => member(id).toString("hex")))
      // the lane's pages read every entry once, from the position of the last one read
      const read = new Map((yield* waiting(lane, 7)).map((e) => [e.executionId as string, e.createdAt]))
      expect(read).toEqual(createdAt)
      const claimed: Array<string> = []
      for (let round = 0; round < 20 && claimed.length < items.length; round++) {
        const got = (yield* b.claimMany({ lane, capabilities: { tokens: [] }, policy }, 23))
          .map((h) => idOf(Option.some(h)))
        claimed.push(...got)
      }
      expect(claimed).toEqual(expected)
    }))
})
