// A create made in the process of an idle worker of its lane claims for that worker in its own
// function call on Valkey (ff_create_claim; docs/worker.md, "Wake-ups, timers and cancellation"):
// the create, then the claim, as two calls in a row (their records, events and wake-ups), in one
// FCALL. On a standalone server the claim walks the lane's partitions; on a cluster it stays in the
// create's slot. A claim that fails, finds nothing for the worker, or whose caller is interrupted
// strands nothing.
import { describe, expect, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Ref, Schedule, Schema } from "effect"
import { Cluster, Redis } from "iovalkey"
import { inject } from "vitest"
import { EngineBackend } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import type { ExecutionId } from "../src/Ids.js"
import * as Producer from "../src/Producer.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import * as Worker from "../src/Worker.js"
import { testHmacSecret } from "./support/hmac.js"
import { parseClusterUrl } from "./support/servers.js"
import { idleWorker } from "./worker/handoff.js"
import { Echo, newLane } from "./worker/helpers.js"

const Other = Producer.task({ kind: "other", input: Schema.Struct({ n: Schema.Number }), output: Schema.Struct({ n: Schema.Number }) })

interface Deployment {
  readonly name: string
  /** One backend layer, as one process has it (its connection, its subscriber connection). */
  readonly backend: () => Layer.Layer<EngineBackend, unknown>
  readonly prefix: string
  /** A plain connection to every primary, for the test's own commands. */
  readonly primaries: () => Promise<{ readonly nodes: ReadonlyArray<Redis>; readonly quit: () => Promise<unknown> }>
}

const standalone = (): Deployment => {
  const url = inject("valkeyUrl")
  const prefix = `ho-${process.pid}-${Date.now().toString(36)}`
  return {
    name: "standalone",
    prefix,
    backend: () => ValkeyBackend.layer({ hmacSecret: testHmacSecret, url, keyPrefix: prefix }),
    primaries: async () => {
      const r = new Redis(url)
      return { nodes: [r], quit: () => r.quit() }
    }
  }
}

const cluster = (): Deployment => {
  const nodes = parseClusterUrl(inject("valkeyClusterUrl"))
  const prefix = `hoc-${process.pid}-${Date.now().toString(36)}`
  return {
    name: "cluster",
    prefix,
    backend: () => ValkeyBackend.layer({ hmacSecret: testHmacSecret, nodes, keyPrefix: prefix }),
    primaries: async () => {
      const c = new Cluster(nodes.map((n) => ({ host: n.host, port: n.port })))
      await new Promise<void>((resolve) => c.once("ready", () => resolve()))
      return { nodes: c.nodes("master"), quit: () => c.quit() }
    }
  }
}

/** An Echo handler that counts its runs and signals its first start. */
const echo = (started: Deferred.Deferred<void>, runs: Ref.Ref<number>) =>
  Worker.handler({
    ...Echo,
    run: (input, ctx) =>
      Effect.zipRight(
        Effect.zipRight(Ref.update(runs, (n) => n + 1), Deferred.succeed(started, undefined)),
        Effect.succeed({ text: input.text, attempt: ctx.attempt, resumed: ctx.resumed })
      )
  })

const eventsOf = (executionId: ExecutionId) =>
  Effect.map(
    Effect.flatMap(EngineBackend, (b) => b.readEvents({ filter: { _tag: "Execution", executionId }, limit: 100 })),
    (page) => page.events
  )

/** Holds every primary in a script of `loops` empty iterations (a few hundred ms); resolves when all are free. */
const holdPrimaries = (d: Deployment, loops: number, held: Deferred.Deferred<void>) =>
  Effect.acquireUseRelease(
    Effect.promise(() => d.primaries()),
    ({ nodes }) =>
      Effect.promise(async () => {
        await Promise.all(nodes.map((n) => n.ping()))
        const all = Promise.all(nodes.map((n) => n.eval("for i = 1, tonumber(ARGV[1]) do end return 1", 0, String(loops))))
        Deferred.unsafeDone(held, Effect.void)
        return all
      }),
    (c) => Effect.promise(() => c.quit().catch(() => "closed"))
  )

/**
 * Makes every claim of `lane` fail until the effect it returns runs: the lane's reclaim index, which
 * a claim reads and a create does not touch, is not a sorted set meanwhile.
 */
const failClaims = (d: Deployment, lane: Ids.LaneId) =>
  Effect.gen(function*() {
    const reclaim = `${d.prefix}:{fp:${Ids.lanePartition(lane)}}:l:${lane}:reclaim`
    const admin = yield* Effect.acquireRelease(Effect.promise(() => d.primaries()), (c) => Effect.promise(() => c.quit()))
    const node = yield* Effect.promise(async () => {
      for (const n of admin.nodes) {
        try {
          await n.set(reclaim, "not a sorted set")
          return n
        } catch {
          // (MOVED: another primary serves the slot)
        }
      }
      throw new Error("no primary took the key")
    })
    return Effect.asVoid(Effect.promise(() => node.del(reclaim)))
  })

const suite = (d: Deployment) =>
  describe(`valkey ${d.name}: a create claims for the idle worker of its process`, () => {
    it.live("the create's call claims for the waiting worker, with the events of a create and a claim", () =>
      Effect.gen(function*() {
        const lane = yield* newLane("ho")
        const started = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        const { handed, taken } = yield* idleWorker(lane, echo(started, runs))
        const id = yield* Producer.submit(Echo, { text: "now" }, { lane })
        // the claim ran in the create's call: leased before the producer has its reply
        const b = yield* EngineBackend
        expect(["active", "completed"]).toContain(Option.getOrUndefined(yield* b.readExecutionState(id)))
        expect(yield* handed).toBe(1)
        yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
        expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({
          text: "now",
          attempt: 1
        })
        // no claim call of the worker took it
        expect(yield* taken).toBe(0)
        yield* Effect.sleep("200 millis")
        expect(yield* Ref.get(runs)).toBe(1)
        const events = yield* eventsOf(id)
        // a create and a claim after it: nothing of the claim folded into the creation's event
        expect(events.map((e) => e._tag)).toEqual(["ExecutionCreated", "Claimed", "Completed"])
        expect(events[0]).toMatchObject({ publicState: "waiting" })
      }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)

    it.live("an input the call stages (past the staging size) is created and handed over as the others", () =>
      Effect.gen(function*() {
        const lane = yield* newLane("ho")
        const started = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        const { handed, taken } = yield* idleWorker(lane, echo(started, runs))
        const text = "x".repeat(20_000)
        const id = yield* Producer.submit(Echo, { text }, { lane })
        const b = yield* EngineBackend
        expect(["active", "completed"]).toContain(Option.getOrUndefined(yield* b.readExecutionState(id)))
        expect(yield* handed).toBe(1)
        expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text, attempt: 1 })
        expect(yield* taken).toBe(0)
        expect(yield* Ref.get(runs)).toBe(1)
      }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)

    it.live("work the handed-over claim leaves (a kind the worker lacks) goes to a waiting worker of another process", () =>
      Effect.gen(function*() {
        const lane = yield* newLane("ho")
        const started = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        const elsewhere = yield* Layer.build(d.backend())
        yield* idleWorker(lane, echo(started, runs)).pipe(Effect.provide(elsewhere))
        // this process's worker lacks the kind: the create's claim for it takes nothing
        const { handed, taken } = yield* idleWorker(lane, Worker.handler({ ...Other, run: (input) => Effect.succeed(input) }))
        const id = yield* Producer.submit(Echo, { text: "elsewhere" }, { lane })
        yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
        expect(yield* handed).toBe(1)
        expect(yield* taken).toBe(0)
        expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "elsewhere" })
        expect(yield* Ref.get(runs)).toBe(1)
      }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)

    it.live("a claim that fails in the create's call leaves the create answered and the work claimable", () =>
      Effect.gen(function*() {
        const lane = yield* newLane("ho")
        const started = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        const { handed, taken } = yield* idleWorker(lane, echo(started, runs))
        const heal = yield* failClaims(d, lane)
        const id = yield* Producer.submit(Echo, { text: "later" }, { lane })
        const b = yield* EngineBackend
        expect(yield* b.readExecutionState(id)).toEqual(Option.some("waiting"))
        expect(yield* handed).toBe(1)
        yield* Effect.sleep("100 millis")
        expect(yield* Ref.get(runs)).toBe(0)
        // the worker claims again by itself (backing off from its failed claims) and takes it
        yield* heal
        yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
        expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "later" })
        expect(yield* taken).toBe(1)
        expect(yield* Ref.get(runs)).toBe(1)
      }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)

    it.live("a producer interrupted while its create's call is in flight returns at once; the worker still runs the work once", () =>
      Effect.gen(function*() {
        const lane = yield* newLane("ho")
        const started = yield* Deferred.make<void>()
        const runs = yield* Ref.make(0)
        const { handed } = yield* idleWorker(lane, echo(started, runs))
        const held = yield* Deferred.make<void>()
        const hold = yield* Effect.fork(holdPrimaries(d, 30_000_000, held))
        yield* Deferred.await(held)
        // (the scripts reach the servers first, and hold them far longer than this)
        yield* Effect.sleep("30 millis")
        const producer = yield* Effect.fork(Producer.submit(Echo, { text: "cut" }, { lane }))
        yield* Effect.repeat(handed, { until: (n) => n === 1, schedule: Schedule.spaced("2 millis") }).pipe(
          Effect.timeout("10 seconds")
        )
        yield* Fiber.interrupt(producer).pipe(Effect.timeout("1 second"))
        expect(yield* Fiber.poll(hold)).toEqual(Option.none())
        yield* Fiber.join(hold)
        yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
        yield* Effect.sleep("300 millis")
        expect(yield* Ref.get(runs)).toBe(1)
        // the worker's slots came back: a later task runs
        const id = yield* Producer.submit(Echo, { text: "next" }, { lane })
        expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "next" })
        expect(yield* Ref.get(runs)).toBe(2)
      }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)
  })

suite(standalone())
suite(cluster())

// On a standalone server a wake-up's message starts the claim of a worker of the process that waits
// on the lane, as the message is read (`makeWakeClaims`): what it took is handed over as a create's
// handoff is.
describe("valkey standalone: a wake-up claims for the idle worker of its process", () => {
  const d = standalone()

  it.live("work created by another process is claimed at the wake-up's message and handed over", () =>
    Effect.gen(function*() {
      const lane = yield* newLane("wk")
      const started = yield* Deferred.make<void>()
      const runs = yield* Ref.make(0)
      const { handed, taken } = yield* idleWorker(lane, echo(started, runs))
      const producer = yield* Layer.build(d.backend())
      const id = yield* Producer.submit(Echo, { text: "woken" }, { lane }).pipe(Effect.provide(producer))
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({
        text: "woken",
        attempt: 1
      })
      // the wake-up's claim took it: no claim call of the worker's own did (the woken worker
      // still claims once its slot is free)
      expect(yield* handed).toBe(1)
      expect(yield* taken).toBe(0)
      yield* Effect.sleep("200 millis")
      expect(yield* Ref.get(runs)).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)

  it.live("a wake-up's claim that fails leaves the work claimable: the worker claims it itself", () =>
    Effect.gen(function*() {
      const lane = yield* newLane("wk")
      const started = yield* Deferred.make<void>()
      const runs = yield* Ref.make(0)
      const { handed, taken } = yield* idleWorker(lane, echo(started, runs))
      const producer = yield* Layer.build(d.backend())
      const heal = yield* failClaims(d, lane)
      const id = yield* Producer.submit(Echo, { text: "later" }, { lane }).pipe(Effect.provide(producer))
      yield* Effect.repeat(handed, { until: (n) => n === 1, schedule: Schedule.spaced("2 millis") }).pipe(
        Effect.timeout("10 seconds")
      )
      yield* Effect.sleep("100 millis")
      expect(yield* Ref.get(runs)).toBe(0)
      const b = yield* EngineBackend
      expect(yield* b.readExecutionState(id)).toEqual(Option.some("waiting"))
      yield* heal
      yield* Deferred.await(started).pipe(Effect.timeout("20 seconds"))
      expect(yield* Producer.awaitResult(Echo, id).pipe(Effect.timeout("20 seconds"))).toMatchObject({ text: "later" })
      expect(yield* taken).toBe(1)
      expect(yield* Ref.get(runs)).toBe(1)
    }).pipe(Effect.scoped, Effect.provide(d.backend())), 60_000)
})
