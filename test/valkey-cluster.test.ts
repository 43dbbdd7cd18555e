// The conformance suite against the Valkey layer on a 3-master Valkey Cluster: the library is loaded on
// every primary and every FCALL stays on one slot ({fp:N} hash tags). One engine shared by the file.
import { describe, expect, layer } from "@effect/vitest"
import { Effect } from "effect"
import { Cluster } from "iovalkey"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import type { ExecutionId } from "../src/Ids.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import type { LanePosition } from "../src/internal/boundary.js"
import { makeEventHub } from "../src/internal/wakeups.js"
import type * as M from "../src/Model.js"
import { connect, keySlot } from "../src/valkey/internal/client.js"
import { makeCoreContext } from "../src/valkey/internal/context.js"
import { makeEvents } from "../src/valkey/internal/events.js"
import { makeLanes } from "../src/valkey/internal/lanes.js"
import { loadLibrary } from "../src/valkey/internal/library.js"
import { makeKeys, makePlumbing } from "../src/valkey/internal/plumbing.js"
import { makeDueTimers } from "../src/valkey/internal/wakeups.js"
import {
  create as createExecution,
  createAndClaim,
  ensureHmac,
  executionIdOnPartition,
  failsWith,
  newLane,
  signalArgs,
  suspendSingle
} from "./conformance/helpers.js"
import { suite } from "./conformance/index.js"
import { parseClusterUrl } from "./support/servers.js"
import { testHmacSecret } from "./support/hmac.js"

const keyPrefix = `cc-${process.pid}-${Date.now().toString(36)}`

suite(
  "valkey cluster",
  ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix }),
  { fresh: false }
)

// ---------------------------------------------------------------------------
// The id registry on a cluster: a reservation whose call never ran (its client was lost between
// the two) stays its execution's
// ---------------------------------------------------------------------------

const registryPrefix = `cr-${process.pid}-${Date.now().toString(36)}`

describe("valkey cluster id registry", () => {
  layer(
    ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix: registryPrefix }),
    { timeout: 30_000 }
  )((it) => {
    it.scoped("a reservation left by a lost client: its execution's delivery goes through, another execution's is refused", () =>
      Effect.gen(function*() {
        const admin = new Cluster(parseClusterUrl(inject("valkeyClusterUrl")))
        yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit()))
        const b = yield* EngineBackend
        yield* ensureHmac
        const suspended = (executionId?: ExecutionId) =>
          Effect.gen(function*() {
            const c = yield* createAndClaim(executionId === undefined ? {} : { executionId })
            return { ...c, ...(yield* suspendSingle(c.handle, { signalName: "approve" })) }
          })
        const x = yield* suspended()
        const y = yield* suspended(yield* executionIdOnPartition((Ids.executionPartition(x.executionId) + 1) % 256))
        const signalId = yield* Ids.newSignalId
        const key = `${registryPrefix}:sigid:${signalId}`
        const lost = yield* Effect.promise(() =>
          admin.call("FCALL", "ff_reserve_id", "1", key, "", JSON.stringify({ owner: x.executionId, nonce: "lost" }))
        )
        expect(lost).toEqual([1, "CREATED", ""])
        const to = (s: typeof x) =>
          Effect.map(
            signalArgs({ executionId: s.executionId, waitpointId: s.waitpointId, token: s.token, name: "approve" }),
            (args) => ({ ...args, signalId })
          )
        yield* failsWith(b.deliverSignal(yield* to(y)), "State", "DuplicateSignal")
        expect(yield* Effect.promise(() => admin.get(key))).toBe(`${x.executionId}|lost`)
        expect(yield* b.deliverSignal(yield* to(x))).toEqual({ _tag: "Accepted", signalId, effect: "resume_condition_satisfied" })
        expect((yield* Effect.promise(() => admin.get(key)))?.startsWith(`${x.executionId}|`)).toBe(true)
        yield* failsWith(b.deliverSignal(yield* to(y)), "State", "DuplicateSignal")
      }))
  })
})

// ---------------------------------------------------------------------------
// Lane pages read the partitions of one node in one call; when the client's slot map is stale (a
// slot moved), such a call fails and each partition is asked alone: the pages stay the same
// ---------------------------------------------------------------------------

const lanesPrefix = `cl-${process.pid}-${Date.now().toString(36)}`

describe("valkey cluster lane pages", () => {
  layer(
    ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), keyPrefix: lanesPrefix }),
    { timeout: 60_000 }
  )((it) => {
    it.scoped("a stale slot map: the node's call fails, each partition is asked alone, the pages and counts are the same", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = yield* newLane()
        const later = Date.now() + 3_600_000
        for (let i = 0; i < 40; i++) {
          yield* createExecution({
            laneId: lane,
            executionId: yield* executionIdOnPartition((i * 37) % 256),
            executionKind: i % 3 === 0 ? "x" : "y",
            ...(i % 4 === 0 ? { delayUntil: later } : {})
          })
        }
        // a second reader of the same keys, whose slot map sends a third of the partitions to the wrong node
        const client = yield* connect({ nodes: parseClusterUrl(inject("valkeyClusterUrl")) }, yield* loadLibrary)
        const settings = { prefix: lanesPrefix, partitions: Ids.defaultPartitionConfig, clock: "store", cancelInlineLimit: 100, claimScan: 32, fanOut: 32 } as const
        const keys = makeKeys(lanesPrefix)
        const lanes = makeLanes(makeCoreContext(makePlumbing(client, settings)))
        const map = (client.connection as Cluster).slots
        const stale = Effect.sync(() => {
          const owners = [...new Set(map.map((s) => s?.[0]).filter((n) => n !== undefined))]
          expect(owners.length).toBe(3)
          for (let p = 0; p < 256; p += 3) {
            const slot = keySlot(keys.flow(p))
            map[slot] = [owners[(owners.indexOf(map[slot]![0]!) + 1) % owners.length]!]
          }
        })
        const cases: ReadonlyArray<Omit<M.ListLaneExecutionsArgs, "laneId" | "limit">> = [
          {},
          { order: "oldest" },
          { states: ["waiting", "delayed"] },
          { executionKind: "x", order: "oldest" }
        ]
        for (const args of cases) {
          const expected: Array<M.LaneExecutionEntry> = []
          let cursor: string | undefined
          do {
            const page: M.ListLaneExecutionsPage = yield* b.listLaneExecutions({ laneId: lane, limit: 7, ...args, ...(cursor === undefined ? {} : { cursor }) })
            expected.push(...page.executions)
            cursor = page.nextCursor
          } while (cursor !== undefined)
          const got: Array<M.LaneExecutionEntry> = []
          let after: LanePosition | undefined
          do {
            yield* stale
            const page = yield* lanes.listLaneExecutions({
              laneId: lane,
              states: args.states,
              kind: args.executionKind,
              newestFirst: args.order !== "oldest",
              after,
              limit: 7
            })
            got.push(...page.entries)
            after = page.next
          } while (after !== undefined)
          expect(got).toEqual(expected)
          expect(got.length).toBe(args.executionKind === "x" ? 14 : 40)
        }
        yield* stale
        const counts = yield* lanes.countLaneExecutions(lane)
        expect(counts).toEqual((yield* b.countLaneExecutions(lane)).byState)
        expect(counts.delayed).toBe(10)
        // the lane's events, read the same way (a group per node): the same events in the same order
        const quiet = { listen: () => Effect.void, unlisten: () => Effect.void }
        const events = makeEvents(makeCoreContext(makePlumbing(client, settings)), makeEventHub(quiet))
        const expected = yield* b.readEvents({ filter: { _tag: "Lane", laneId: lane }, limit: 100 })
        expect(expected.events.map((e) => e._tag)).toEqual(Array(40).fill("ExecutionCreated"))
        const got: Array<M.EngineEvent> = []
        let from: M.EventStart = "earliest"
        for (let n = 0; n < 20 && got.length < 40; n++) {
          yield* stale
          const page: M.EventPage = yield* events.readEvents({ filter: { _tag: "Lane", laneId: lane }, after: from, limit: 7 })
          got.push(...page.events)
          from = page.next
        }
        expect(got).toEqual(expected.events)
      }))
  })
})

// ---------------------------------------------------------------------------
// A claim that finds a partition empty drops its claim hint in the background: a removal, then a
// look at the partition that puts the hint back if work arrived meanwhile. Until then the hint is
// away, and a claim that reads the hints then (the claim at that work's own wake-up) misses the
// work: putting the hint back wakes the lane's workers again.
// ---------------------------------------------------------------------------

/** Sleeps `ms` of real time (the layers of these tests run on live clocks or the store's). */
const live = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Whether `condition` holds within 5 s of real time, checked every 5 ms. */
const until = (condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    const deadline = Date.now() + 5_000
    while (!(yield* condition)) {
      if (Date.now() > deadline) return false
      yield* live(5)
    }
    return true
  })

/** A client of the test cluster and the layer's plumbing over it, for the store under `prefix`. */
const plumbingOf = (prefix: string) =>
  Effect.gen(function*() {
    const client = yield* connect({ nodes: parseClusterUrl(inject("valkeyClusterUrl")) }, yield* loadLibrary)
    const settings = { prefix, partitions: Ids.defaultPartitionConfig, clock: "store", cancelInlineLimit: 100, claimScan: 32, fanOut: 32 } as const
    return { client, plumbing: makePlumbing(client, settings) }
  })

const hintsPrefix = `ch-${process.pid}-${Date.now().toString(36)}`

describe("valkey cluster claim hints", () => {
  layer(
    ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "effect", keyPrefix: hintsPrefix }),
    { timeout: 30_000 }
  )((it) => {
    it.scoped("a hint dropped while its partition has work is put back, and the lane's workers are woken", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = yield* newLane()
        const partition = 17
        const sub = yield* b.subscribeWork({ lanes: [lane], workerInstanceId: Ids.unsafe.workerInstanceId("ch-worker") })
        yield* createExecution({ laneId: lane, executionId: yield* executionIdOnPartition(partition) })
        // the create's own wake-up
        expect(yield* until(Effect.map(sub.wakeups, (n) => n >= 1))).toBe(true)
        const before = yield* sub.wakeups
        const { client, plumbing } = yield* plumbingOf(hintsPrefix)
        yield* plumbing.dropHint(lane, partition)
        const hint = yield* Effect.promise(() => (client.connection as Cluster).zscore(makeKeys(hintsPrefix).hint(lane), String(partition)))
        expect(hint).not.toBeNull()
        expect(yield* until(Effect.map(sub.wakeups, (n) => n > before))).toBe(true)
      }))
  })
})

// ---------------------------------------------------------------------------
// A promotion on a cluster sets the lane's due hint of the partition to its next due time, from
// this layer, after the call: a delayed create of the same partition in between has written an
// earlier hint, which that write must not hide (the idle workers arm their timers by the hint).
// ---------------------------------------------------------------------------

const duePrefix = `cd-${process.pid}-${Date.now().toString(36)}`

describe("valkey cluster due hints", () => {
  layer(
    ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes: parseClusterUrl(inject("valkeyClusterUrl")), clock: "store", keyPrefix: duePrefix }),
    { timeout: 30_000 }
  )((it) => {
    it.scoped("a promotion's next due time keeps earlier delayed work created meanwhile, and wakes the lane", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = yield* newLane()
        const partition = 29
        const on = executionIdOnPartition(partition)
        const sub = yield* b.subscribeWork({ lanes: [lane], workerInstanceId: Ids.unsafe.workerInstanceId("cd-worker") })
        const start = Date.now()
        yield* createExecution({ laneId: lane, executionId: yield* on, delayUntil: start + 20 })
        yield* createExecution({ laneId: lane, executionId: yield* on, delayUntil: start + 3_600_000 })
        yield* live(50)
        const { client, plumbing } = yield* plumbingOf(duePrefix)
        const earlier = start + 60_000
        let before = 0
        // the create runs between the promotion's call and the layer's write of its next due time
        const ctx = makeCoreContext({
          ...plumbing,
          call: (fn, target, args, blobs, readOnly, afterSend) =>
            Effect.tap(plumbing.call(fn, target, args, blobs, readOnly, afterSend), () =>
              fn !== "promote_lane" ? Effect.void : Effect.gen(function*() {
                before = yield* sub.wakeups
                yield* Effect.provideService(
                  createExecution({ laneId: lane, executionId: yield* on, delayUntil: earlier }),
                  EngineBackend,
                  b
                )
              }).pipe(Effect.orDie))
        })
        expect(yield* makeDueTimers(ctx).promoteDue([lane])).toBe(1)
        const hint = yield* Effect.promise(() => (client.connection as Cluster).zscore(makeKeys(duePrefix).due(lane), String(partition)))
        expect(Number(hint)).toBe(earlier)
        // the create's wake-up, then the one of the hint put back
        expect(yield* until(Effect.map(sub.wakeups, (n) => n >= before + 2))).toBe(true)
      }))
  })
})
