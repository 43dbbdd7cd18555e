// What a Valkey deployment needs, and what the layer does when it does not have it: a maxmemory-policy that
// can evict keys is refused at start (or only warned about, when asked), on a standalone server and on every
// primary of a cluster; and a cluster whose primary owning a lane's partition is killed answers every call
// with a retryable error until it is back, after which the work completes with Effect.retry. Each test
// starts servers of its own: nothing here touches the shared ones.
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Either, Fiber, Logger, Option, Schedule } from "effect"
import { Redis } from "iovalkey"
import { type EngineError, isRetryable } from "../src/EngineError.js"
import * as Ids from "../src/Ids.js"
import { classify, fromValkeyError } from "../src/valkey/internal/errors.js"
import * as ValkeyBackend from "../src/valkey/ValkeyBackend.js"
import { startValkey, startValkeyCluster, type ValkeyClusterServer, type ValkeyServer } from "./support/servers.js"

const NS = Ids.unsafe.namespace("deployment")
const policy = {
  workerId: Ids.unsafe.workerId("w"),
  workerInstanceId: Ids.unsafe.workerInstanceId("w-i"),
  leaseTtlMs: 60_000
}

/** Runs `effect` with every log line captured; returns its exit and the lines. */
const withLogs = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const lines: Array<string> = []
    const capture = Logger.make((options) => {
      lines.push(Logger.logfmtLogger.log(options))
    })
    const result = yield* Effect.either(effect.pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture))))
    return { result, lines }
  })

// ---------------------------------------------------------------------------
// maxmemory-policy on a standalone server
// ---------------------------------------------------------------------------

describe("valkey deployment: maxmemory-policy (standalone)", () => {
  let server: ValkeyServer
  beforeAll(async () => {
    server = await startValkey({ config: { "maxmemory-policy": "allkeys-lru" } })
  }, 60_000)
  afterAll(async () => {
    await server?.stop()
  }, 60_000)

  it.scopedLive("an evicting policy is refused at start, before anything is written", () =>
    Effect.gen(function*() {
      for (const evicting of ["allkeys-lru", "volatile-lru", "volatile-ttl"]) {
        yield* Effect.promise(() => server.cli("CONFIG", "SET", "maxmemory-policy", evicting))
        const r = yield* Effect.either(ValkeyBackend.make({ hmacSecret: "none", url: server.url, keyPrefix: "policy" }))
        expect(Either.isLeft(r) && r.left).toMatchObject({
          _tag: "Transport",
          backend: "valkey",
          retryable: false,
          nativeCode: "eviction_policy"
        })
        expect(Either.isLeft(r) && r.left.message).toContain(`maxmemory-policy is ${evicting}`)
        expect((yield* Effect.promise(() => server.cli("DBSIZE"))).trim()).toBe("0")
      }
    }), 60_000)

  it.scopedLive("evictionCheck: \"warn\" starts and logs a warning; noeviction starts without one", () =>
    Effect.gen(function*() {
      yield* Effect.promise(() => server.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"))
      const warned = yield* withLogs(ValkeyBackend.make({ hmacSecret: "none", url: server.url, keyPrefix: "policy", evictionCheck: "warn" }))
      expect(Either.isRight(warned.result)).toBe(true)
      expect(warned.lines.filter((l) => l.includes("maxmemory-policy is allkeys-lru"))).toHaveLength(1)
      expect(warned.lines.find((l) => l.includes("maxmemory-policy"))).toContain("level=WARN")
      if (Either.isRight(warned.result)) yield* warned.result.right.backend.ping()
      yield* Effect.promise(() => server.cli("CONFIG", "SET", "maxmemory-policy", "noeviction"))
      const quiet = yield* withLogs(ValkeyBackend.make({ hmacSecret: "none", url: server.url, keyPrefix: "policy" }))
      expect(Either.isRight(quiet.result)).toBe(true)
      expect(quiet.lines.filter((l) => l.includes("maxmemory-policy"))).toEqual([])
    }), 60_000)
})

// ---------------------------------------------------------------------------
// a dedicated cluster: the policy of every primary, and an outage
// ---------------------------------------------------------------------------

describe("valkey deployment: a cluster of its own", () => {
  let cluster: ValkeyClusterServer
  beforeAll(async () => {
    cluster = await startValkeyCluster({
      config: { appendonly: "yes", appendfsync: "always", "cluster-node-timeout": "1000" }
    })
  }, 120_000)
  afterAll(async () => {
    await cluster?.stop()
  }, 60_000)

  const clusterOk = (port: number) =>
    Effect.promise(() => cluster.cli(port, "CLUSTER", "INFO").then((s) => s.includes("cluster_state:ok"), () => false))
  const clusterFailed = (port: number) =>
    Effect.promise(() => cluster.cli(port, "CLUSTER", "INFO").then((s) => s.includes("cluster_state:fail"), () => false))
  const until = (check: Effect.Effect<boolean>) =>
    Effect.repeat(check, { until: (ok) => ok, schedule: Schedule.spaced(Duration.millis(50)).pipe(Schedule.upTo("30 seconds")) })

  it.scopedLive("the start checks the maxmemory-policy of every primary", () =>
    Effect.gen(function*() {
      const port = cluster.ports[2]!
      yield* Effect.promise(() => cluster.cli(port, "CONFIG", "SET", "maxmemory-policy", "volatile-lfu"))
      yield* Effect.addFinalizer(() => Effect.promise(() => cluster.cli(port, "CONFIG", "SET", "maxmemory-policy", "noeviction")))
      const refused = yield* Effect.either(ValkeyBackend.make({ hmacSecret: "none", nodes: cluster.nodes, keyPrefix: "policy" }))
      expect(Either.isLeft(refused) && refused.left).toMatchObject({ _tag: "Transport", nativeCode: "eviction_policy" })
      expect(Either.isLeft(refused) && refused.left.message).toContain(`maxmemory-policy is volatile-lfu on 127.0.0.1:${port}`)
      const warned = yield* withLogs(ValkeyBackend.make({ hmacSecret: "none", nodes: cluster.nodes, keyPrefix: "policy", evictionCheck: "warn" }))
      expect(Either.isRight(warned.result)).toBe(true)
      expect(warned.lines.filter((l) => l.includes("maxmemory-policy is volatile-lfu"))).toHaveLength(1)
    }), 60_000)

  it.scopedLive("the primary owning a lane's partition is killed: every error is retryable, the work completes after", () =>
    Effect.gen(function*() {
      const { backend: b } = yield* ValkeyBackend.make({ hmacSecret: "none", nodes: cluster.nodes, keyPrefix: "outage" })
      const admin = new Redis(cluster.ports[0]!, "127.0.0.1")
      yield* Effect.addFinalizer(() => Effect.promise(() => admin.quit().catch(() => undefined)))
      const slots = (yield* Effect.promise(() => admin.cluster("SLOTS"))) as unknown as Array<[number, number, [string, number]]>
      const ownerOf = (partition: number) =>
        Effect.map(
          Effect.promise(() => admin.cluster("KEYSLOT", `outage:{fp:${partition}}`) as Promise<number>),
          (slot) => slots.find(([from, to]) => from <= slot && slot <= to)![2][1]
        )
      // the lane's partition lives on the victim, another partition on a primary that stays up
      const victim = yield* ownerOf(0)
      let live = 1
      while ((yield* ownerOf(live)) === victim) live++
      const survivor = cluster.ports.find((p) => p !== victim)!
      // the lane's work is on the victim's partition; another lane's on a partition that stays up
      const newLane = Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`outage-${u.slice(0, 8)}`))
      const lane = yield* newLane
      const liveLane = yield* newLane
      const on = (partition: number) => Effect.map(Ids.randomUuid, (u) => `{fp:${partition}}:${u}` as Ids.ExecutionId)
      const create = (executionId: Ids.ExecutionId, laneId = lane) =>
        b.createExecution({ executionId, namespace: NS, laneId, executionKind: "k" })
      const claimOn = (laneId: Ids.LaneId) => b.claim({ lane: laneId, capabilities: { tokens: [] }, policy })
      const before = yield* on(0)
      yield* create(before)
      const onLive = yield* on(live)
      yield* create(onLive, liveLane)
      const claimed = Option.getOrThrow(yield* claimOn(lane))

      const errors: Array<EngineError> = []
      const attempt = <A>(call: Effect.Effect<A, EngineError>) => Effect.either(call).pipe(Effect.tap((r) => {
        if (Either.isLeft(r)) errors.push(r.left)
      }))

      yield* Effect.promise(() => cluster.kill(victim))
      // the first failed read shows the client has seen the connection close (a read is always
      // retryable; a write in flight at the kill would rightly not be)
      yield* Effect.repeat(attempt(b.describeExecution(before)), {
        until: Either.isLeft,
        schedule: Schedule.spaced(Duration.millis(20)).pipe(Schedule.upTo("10 seconds"))
      })
      const onVictim = Effect.gen(function*() {
        yield* attempt(create(yield* on(0)))
        yield* attempt(b.describeExecution(before))
        yield* attempt(claimOn(lane))
        yield* attempt(b.complete(claimed))
      })
      // at once: the victim's connection is closed, the rest of the cluster still serves
      yield* onVictim
      // once the others have marked it failed, the whole cluster is down
      yield* until(clusterFailed(survivor))
      yield* onVictim
      yield* attempt(create(yield* on(live), liveLane))
      yield* attempt(b.describeExecution(onLive))

      // the work, retried for as long as the errors say so, while the primary is still down
      const retried: Array<EngineError> = []
      const retrying = <A>(call: Effect.Effect<A, EngineError>) =>
        Effect.retry(call.pipe(Effect.tapError((e) => Effect.sync(() => retried.push(e)))), {
          while: isRetryable,
          schedule: Schedule.spaced(Duration.millis(200)).pipe(Schedule.upTo("60 seconds"))
        })
      const after = yield* on(0)
      const claimAndComplete = (laneId: Ids.LaneId) =>
        Effect.gen(function*() {
          for (let i = 0; i < 300; i++) {
            const h = yield* retrying(claimOn(laneId))
            if (Option.isSome(h)) return yield* retrying(b.complete(h.value))
            yield* Effect.sleep("100 millis")
          }
          return yield* Effect.dieMessage(`nothing to claim on ${laneId}`)
        })
      const work = yield* Effect.fork(Effect.gen(function*() {
        yield* retrying(b.complete(claimed))
        yield* retrying(create(after))
        yield* claimAndComplete(lane)
        yield* claimAndComplete(liveLane)
      }))
      yield* Effect.sleep("500 millis")
      yield* Effect.promise(() => cluster.start(victim))
      const outcome = yield* Fiber.await(work)
      yield* until(clusterOk(survivor))

      const seen = errors.map((e) => (e._tag === "Transport" ? `${e.nativeCode}: ${e.message}` : e._tag))
      expect(errors.length, seen.join("\n")).toBeGreaterThan(0)
      expect(errors.filter((e) => !isRetryable(e)).map((e) => e.message)).toEqual([])
      expect(retried.filter((e) => !isRetryable(e)).map((e) => e.message)).toEqual([])
      // both outages were seen: a closed connection to the victim, and the cluster down
      const codes = new Set(errors.map((e) => (e._tag === "Transport" ? e.nativeCode : e._tag)))
      expect([...codes].sort(), seen.join("\n")).toEqual(expect.arrayContaining(["cluster_down", "io_error"]))
      expect(outcome._tag, String(outcome)).toBe("Success")
      for (const id of [before, onLive, after]) {
        expect([id, Option.getOrUndefined(yield* retrying(b.readExecutionState(id)))]).toEqual([id, "completed"])
      }
    }), 120_000)
})

// ---------------------------------------------------------------------------
// the classification, one native failure at a time
// ---------------------------------------------------------------------------

describe("valkey error classification", () => {
  const err = (message: string, code?: string) => Object.assign(new Error(message), code === undefined ? {} : { code })
  const redirected = (last: string) => err(`Too many Cluster redirections. Last error: ${last}`)

  it("a cluster that is down, or moving a slot, is retryable, also once the client gave up redirecting", () => {
    for (const [e, nativeCode] of [
      [err("CLUSTERDOWN The cluster is down"), "cluster_down"],
      [redirected("ReplyError: CLUSTERDOWN The cluster is down"), "cluster_down"],
      [err("MOVED 3999 127.0.0.1:7001"), "moved"],
      [redirected("ReplyError: MOVED 3999 127.0.0.1:7001"), "moved"],
      [err("ASK 3999 127.0.0.1:7001"), "ask"],
      [err("TRYAGAIN Multiple keys request during rehashing of slot"), "try_again"],
      [err("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), "master_down"]
    ] as const) {
      for (const sent of [false, true]) expect([e.message, classify(e, sent)]).toEqual([e.message, { kind: "cluster", nativeCode, retryable: true }])
    }
  })

  it("a connection closed or refused before the command was written is retryable; one lost in flight is not", () => {
    for (const e of [err("Connection is closed."), redirected("Error: Connection is closed."), err("connect ECONNREFUSED 127.0.0.1:7000", "ECONNREFUSED"), err("read ECONNRESET", "ECONNRESET")]) {
      expect([e.message, classify(e, false)]).toEqual([e.message, { kind: "transport", nativeCode: "io_error", retryable: true }])
      expect([e.message, classify(e, true)]).toEqual([e.message, { kind: "transport", nativeCode: "fatal_receive", retryable: false }])
    }
  })

  it("a command that timed out is retryable only if it was never written", () => {
    expect(classify(err("Command timed out"), false)).toEqual({ kind: "timeout", nativeCode: "timeout", retryable: true })
    expect(classify(err("Command timed out"), true)).toEqual({ kind: "timeout", nativeCode: "timeout", retryable: false })
  })

  it("a full server, and a redirection loop ending in something unknown, are not retryable", () => {
    expect(classify(err("OOM command not allowed when used memory > 'maxmemory'."), false)).toEqual({ kind: "other", nativeCode: "oom", retryable: false })
    expect(classify(redirected("Error: something else"), false)).toEqual({ kind: "cluster", nativeCode: "too_many_redirections", retryable: false })
  })

  it("an error keeps no argument of the command it echoes", () => {
    const token = `k1:${"ab12".repeat(10)}`
    const reply = Object.assign(err(`ERR unknown command 'FCALL', with args beginning with: 'ff_deliver_signal' '1' '${token}'`), {
      command: { name: "fcall", args: ["ff_deliver_signal", "1", "{fp:0}", "", JSON.stringify({ token })] }
    })
    const e = fromValkeyError("FCALL ff_deliver_signal", reply, true)
    expect(e.message).toBe("FCALL ff_deliver_signal: ERR unknown command 'FCALL', with args beginning with: <redacted>")
    expect(JSON.stringify(e)).not.toContain("ab12ab12")
    expect(e.cause).toMatchObject({ message: "ERR unknown command 'FCALL', with args beginning with: <redacted>", command: "fcall" })
    expect(Object.keys(e.cause as object)).not.toContain("args")
  })
})
