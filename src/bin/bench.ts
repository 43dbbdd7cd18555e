/**
 * `npm run bench -- --backend memory|valkey|postgres --scenario …`: throughput
 * and latency of the engine and of its worker runtime, with the peers (BullMQ,
 * pg-boss, graphile-worker) measured in the same run on the same servers.
 */
import { Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, type Layer, Option, Redacted } from "effect"
import { loadavg } from "node:os"
import { EngineBackend, type HmacSecret } from "../EngineBackend.js"
import type { EngineError } from "../EngineError.js"
import * as Ids from "../Ids.js"
import type { Maintenance } from "../Maintenance.js"
import * as MemoryBackend from "../MemoryBackend.js"
import { dropKeys, dropSchema } from "./bench/cleanup.js"
import { footprint, formatFootprint } from "./bench/footprint.js"
import { laneQuery } from "./bench/laneQuery.js"
import { peers } from "./bench/peers.js"
import { roundSeed } from "./bench/random.js"
import { type BenchResult, latencies, type Scenario, scenarios as engineScenarios } from "./bench/scenarios.js"
import { latencyScenarios } from "./bench/workerLatency.js"

const scenarios: Record<string, Scenario> = { ...engineScenarios, ...latencyScenarios }
/** Scenarios that report latency percentiles of samples taken one at a time (their `--tasks` is a sample count). */
const isLatency = (name: string) => name in latencyScenarios
const DEFAULT_TASKS = 20_000
const DEFAULT_SAMPLES = 100
/** Executions (and peer jobs) of the footprint scenario. */
const DEFAULT_FOOTPRINT = 100_000
/** Executions of the lane-query scenario's lane, and the calls timed per case. */
const DEFAULT_LANE_QUERY = 1_000_000
const LANE_QUERY_SAMPLES = 200
/** Samples of a latency scenario's untimed warm-up round (`--warmup` 0 skips it). */
const LATENCY_WARMUP = 5

const backendOption = Options.choice("backend", ["memory", "valkey", "valkey-cluster", "postgres"]).pipe(Options.withDefault("memory"))
const scenarioOption = Options.choice("scenario", [
  "submit-claim-complete",
  "suspend-signal-resume",
  "steady-state",
  "linear-flow",
  "capability-routed",
  "flow-cancel",
  "worker-runtime",
  "idle-pickup",
  "cancel-latency",
  "retry-latency",
  "await-result",
  "footprint",
  "lane-query",
  "all"
]).pipe(Options.withDefault("submit-claim-complete"))
const tasksOption = Options.integer("tasks").pipe(
  Options.withDescription(
    `tasks per round (default ${DEFAULT_TASKS}); for idle-pickup, cancel-latency, retry-latency and await-result the samples ` +
      `of the whole run, split over the rounds (default ${DEFAULT_SAMPLES}); for footprint the executions and peer ` +
      `jobs of each state (default ${DEFAULT_FOOTPRINT}); with --scenario all it sets only the former`
  ),
  Options.optional
)
const seedOption = Options.integer("seed").pipe(
  Options.withDescription("seed of the latency scenarios' pseudo-random pauses (the same for every system of a run)"),
  Options.withDefault(15)
)
const workersOption = Options.integer("workers").pipe(Options.withDefault(8))
const batchOption = Options.integer("batch").pipe(
  Options.withDescription("claims per claimMany of a bench worker, completed with one completeMany"),
  Options.withDefault(64)
)
const warmupOption = Options.integer("warmup").pipe(
  Options.withDescription("tasks of an untimed first round of each scenario and peer (JIT warm-up); 0 skips it"),
  Options.withDefault(2_000)
)
const roundsOption = Options.integer("rounds").pipe(
  Options.withDescription("timed rounds of each scenario and peer; the median round is reported"),
  Options.withDefault(3)
)
const urlOption = Options.text("url").pipe(Options.optional)
// A boolean flag reads false when absent, so the switch is the opt-out.
const noPeersOption = Options.boolean("no-peers").pipe(
  Options.withDescription("skip the peer queues (BullMQ, pg-boss, graphile-worker)")
)
const jsonOption = Options.boolean("json").pipe(Options.withDefault(false))
const laneOption = Options.text("lane").pipe(
  Options.withDescription(
    "lane-query: time the pages of this lane, loaded by an earlier run with --keep (needs --key-prefix), instead of loading one"
  ),
  Options.optional
)
const keyPrefixOption = Options.text("key-prefix").pipe(
  Options.withDescription("lane-query: the engine's key prefix (Valkey) or schema (Postgres) instead of a fresh one"),
  Options.optional
)
const producerOption = Options.choice("producer", ["same", "apart"]).pipe(
  Options.withDescription(
    "idle-pickup on a server: `apart` submits through a second engine layer on the same store (its own connections " +
      "and wake-up hub), as a producer in another process would, instead of the worker's own layer"
  ),
  Options.withDefault("same")
)
const keepOption = Options.boolean("keep").pipe(
  Options.withDescription("lane-query: leave the engine's keys / schema in place (to time them again with --lane)")
)

type BackendLayer = Layer.Layer<EngineBackend | Maintenance, EngineError | unknown>

const benchSecret: HmacSecret = { kid: "bench", secretHex: Redacted.make("5ec2e7a1b0c4d9f3".repeat(4)) }

/** A fresh engine for each round (its own key prefix / schema), and the removal of what it left. */
interface RoundBackend {
  readonly layer: BackendLayer
  /** A second engine on the same store (a server's): a producer apart from the worker's layer. */
  readonly apart?: BackendLayer
  readonly cleanup: Effect.Effect<void>
}

const roundBackend = (
  backend: string,
  url: Option.Option<string>,
  name?: string
): Effect.Effect<(round: number) => RoundBackend> => {
  const run = name ?? Date.now()
  switch (backend) {
    case "valkey": {
      const server = Option.getOrElse(url, () => "redis://127.0.0.1:6379")
      return Effect.promise(() => import("../valkey/index.js")).pipe(Effect.map(({ ValkeyBackend }) => (round) => {
        const keyPrefix = `bench-${run}-${round}`
        const layer = () => ValkeyBackend.layer({ url: server, keyPrefix, hmacSecret: benchSecret }) as BackendLayer
        return {
          layer: layer(),
          apart: layer(),
          cleanup: dropKeys(server, keyPrefix)
        }
      }))
    }
    case "valkey-cluster": {
      // `--url` lists the cluster's startup nodes: host:port,host:port,…
      const nodes = Option.getOrElse(url, () => "127.0.0.1:7000").split(",")
      return Effect.promise(() => import("../valkey/index.js")).pipe(Effect.map(({ ValkeyBackend }) => (round) => {
        const keyPrefix = `bench-${run}-${round}`
        const layer = () => ValkeyBackend.layer({ nodes, keyPrefix, hmacSecret: benchSecret }) as BackendLayer
        return {
          layer: layer(),
          apart: layer(),
          cleanup: Effect.forEach(nodes, (node) => dropKeys(`redis://${node}`, keyPrefix), { discard: true })
        }
      }))
    }
    case "postgres": {
      const server = Option.getOrElse(url, () => "postgres://postgres@127.0.0.1:5432/postgres")
      return Effect.promise(() => import("../postgres/index.js")).pipe(Effect.map(({ PostgresBackend }) => (round) => {
        const schema = `bench_${run}_${round}`
        const layer = () =>
          PostgresBackend.layerPg({ url: Redacted.make(server), schema, hmacSecret: benchSecret }) as BackendLayer
        return {
          layer: layer(),
          apart: layer(),
          cleanup: dropSchema(server, schema)
        }
      }))
    }
    default:
      return Effect.succeed(() => ({ layer: MemoryBackend.layer({ hmacSecret: benchSecret }), cleanup: Effect.void }))
  }
}

/**
 * Runs `rounds` timed rounds and keeps the median one by its first row's rate
 * (this 2-vCPU VM varies by ±15 % from one run to the next).
 */
const medianRound = <E, R>(
  rounds: number,
  round: () => Effect.Effect<ReadonlyArray<BenchResult>, E, R>
): Effect.Effect<ReadonlyArray<BenchResult>, E, R> =>
  Effect.map(Effect.replicateEffect(round(), Math.max(1, rounds)), medianOf)

const roundRate = (r: ReadonlyArray<BenchResult>) => r[0]?.perSecond ?? r[0]?.p50Ms ?? 0

/** The median of timed rounds (each the rows of one round), by the first row's rate. */
const medianOf = (all: ReadonlyArray<ReadonlyArray<BenchResult>>): ReadonlyArray<BenchResult> => {
  const sorted = [...all].sort((a, b) => roundRate(a) - roundRate(b))
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!
  const shown = sorted.map((x) => (x[0]?.perSecond === undefined ? `${roundRate(x).toFixed(2)} ms` : roundRate(x).toFixed(0)))
  return median.map((r) => ({ ...r, note: `median of ${all.length} rounds: ${shown.join(" / ")}` }))
}

/**
 * Our rounds and the peers' rounds taken in turn (ours, each peer, ours, ...), so that a slow
 * spell of the machine falls on both sides; each peer's row also gives, round by round, our rate
 * over its rate.
 */
const interleavedRounds = <E, R>(
  rounds: number,
  ours: Effect.Effect<ReadonlyArray<BenchResult>, E, R>,
  theirs: ReadonlyArray<Effect.Effect<BenchResult, unknown>>
) =>
  Effect.gen(function*() {
    const our: Array<ReadonlyArray<BenchResult>> = []
    const peer: Array<Array<ReadonlyArray<BenchResult>>> = theirs.map(() => [])
    for (let i = 0; i < Math.max(1, rounds); i++) {
      our.push(yield* ours)
      for (const [j, run] of theirs.entries()) peer[j]!.push([yield* run])
    }
    const rows = [...medianOf(our)]
    for (const runs of peer) {
      const ratios = runs.map((r, i) => roundRate(our[i]!) / roundRate(r)).sort((a, b) => a - b)
      const median = ratios[Math.floor((ratios.length - 1) / 2)]!
      rows.push(...medianOf(runs).map((r) => ({
        ...r,
        note: `${r.note}; flowfabric ÷ this, round by round: ${ratios.map((x) => x.toFixed(2)).join(" / ")} (median ${median.toFixed(2)})`
      })))
    }
    return rows
  })

/**
 * A latency scenario's rounds, ours and each peer's in turn as in `interleavedRounds`; each system's
 * samples are pooled over its rounds for the percentiles, and each peer's row gives, round by
 * round, our p50 over its p50 (below 1: ours is quicker).
 */
const latencyRounds = <E, R>(
  rounds: number,
  ours: (round: number) => Effect.Effect<ReadonlyArray<BenchResult>, E, R>,
  theirs: ReadonlyArray<(round: number) => Effect.Effect<BenchResult, unknown>>
) =>
  Effect.gen(function*() {
    const our: Array<BenchResult> = []
    const peer: Array<Array<BenchResult>> = theirs.map(() => [])
    for (let i = 0; i < Math.max(1, rounds); i++) {
      our.push(...(yield* ours(i)).slice(0, 1))
      for (const [j, run] of theirs.entries()) peer[j]!.push(yield* run(i))
    }
    const mine = pooled(our)
    const rows = [mine]
    for (const runs of peer) {
      const theirsPooled = pooled(runs)
      const ratios = runs.map((r, i) => (our[i]!.p50Ms ?? 0) / (r.p50Ms ?? 0))
      const sorted = [...ratios].sort((a, b) => a - b)
      const median = sorted[Math.floor((sorted.length - 1) / 2)]!
      const all = (mine.p50Ms ?? 0) / (theirsPooled.p50Ms ?? 0)
      const p99 = (mine.p99Ms ?? 0) / (theirsPooled.p99Ms ?? 0)
      rows.push({
        ...theirsPooled,
        note: `${theirsPooled.note}; flowfabric p50 ÷ this p50, round by round: ${
          ratios.map((x) => x.toFixed(2)).join(" / ")
        } (median ${median.toFixed(2)}); pooled p50 ${all.toFixed(2)}, p99 ${p99.toFixed(2)} (below 1: flowfabric quicker)`
      })
    }
    return rows
  })

/** One system's latency rounds as one row: the samples pooled, each round's p50 in the note. */
const pooled = (runs: ReadonlyArray<BenchResult>): BenchResult => {
  const samples = runs.flatMap((r) => r.samplesMs ?? [])
  return {
    ...runs[0]!,
    count: samples.length,
    seconds: runs.reduce((a, r) => a + r.seconds, 0),
    ...latencies(samples),
    samplesMs: samples,
    note: `${runs[0]!.note ?? ""}; ${runs.length} round${runs.length === 1 ? "" : "s"}, p50 by round: ${
      runs.map((r) => (r.p50Ms ?? 0).toFixed(2)).join(" / ")
    } ms`
  }
}

const formatRow = (r: BenchResult): string =>
  [
    r.system.padEnd(26),
    r.scenario.padEnd(24),
    String(r.count).padStart(7),
    r.perSecond === undefined ? "".padStart(10) : r.perSecond.toFixed(0).padStart(10),
    r.p50Ms === undefined ? "".padStart(8) : r.p50Ms.toFixed(2).padStart(8),
    r.p90Ms === undefined ? "".padStart(8) : r.p90Ms.toFixed(2).padStart(8),
    r.p95Ms === undefined ? "".padStart(8) : r.p95Ms.toFixed(2).padStart(8),
    r.p99Ms === undefined ? "".padStart(8) : r.p99Ms.toFixed(2).padStart(8),
    r.scenario.startsWith(" ") ? "" : `  ${r.note ?? ""}`
  ].join(" ")

const command = Command.make(
  "bench",
  {
    backend: backendOption,
    scenario: scenarioOption,
    tasks: tasksOption,
    workers: workersOption,
    batch: batchOption,
    warmup: warmupOption,
    rounds: roundsOption,
    url: urlOption,
    noPeers: noPeersOption,
    seed: seedOption,
    json: jsonOption,
    lane: laneOption,
    keyPrefix: keyPrefixOption,
    keep: keepOption,
    producer: producerOption
  },
  (opts) =>
    Effect.gen(function*() {
      if (opts.scenario === "footprint") {
        const backend = opts.backend
        if (backend === "valkey-cluster") {
          return yield* Effect.fail(new Error("footprint: use --backend valkey (the bytes do not depend on the slots)"))
        }
        const report = yield* footprint({
          backend,
          url: opts.url,
          tasks: Option.getOrElse(opts.tasks, () => DEFAULT_FOOTPRINT),
          workers: opts.workers,
          peers: !opts.noPeers,
          hmacSecret: benchSecret
        })
        if (!opts.json) yield* Console.log(formatFootprint(report))
        yield* Console.log(JSON.stringify({ machine: machineInfo(), footprint: report }, null, opts.json ? 2 : undefined))
        return
      }
      if (opts.scenario === "lane-query") {
        const prefix = Option.getOrUndefined(opts.keyPrefix)
        const backend = (yield* roundBackend(opts.backend, opts.url, prefix))(0)
        const lane = Option.getOrUndefined(opts.lane)
        if (lane !== undefined && prefix === undefined) return yield* Effect.fail(new Error("--lane needs --key-prefix"))
        yield* Console.log(`key prefix / schema: bench-${prefix ?? "…"}-0 (bench_… on Postgres)`)
        const rows = yield* laneQuery({
          tasks: Option.getOrElse(opts.tasks, () => DEFAULT_LANE_QUERY),
          samples: LANE_QUERY_SAMPLES,
          system: `flowfabric-${opts.backend}`,
          partitions: Ids.defaultPartitionConfig.numFlowPartitions,
          ...(lane === undefined ? {} : { lane })
        }).pipe(Effect.provide(backend.layer), Effect.scoped, Effect.ensuring(opts.keep ? Effect.void : backend.cleanup))
        if (!opts.json) for (const r of rows) yield* Console.log(formatRow(r))
        yield* Console.log(JSON.stringify({ machine: machineInfo(), results: rows }, null, opts.json ? 2 : undefined))
        return
      }
      if (opts.producer === "apart" && (opts.backend === "memory" || opts.scenario !== "idle-pickup")) {
        return yield* Effect.fail(new Error("--producer apart: idle-pickup on a server backend only"))
      }
      const backendFor = yield* roundBackend(opts.backend, opts.url)
      let rounds = 0
      const selected = opts.scenario === "all" ? Object.keys(scenarios) : [opts.scenario]
      const results: Array<BenchResult> = []
      for (const name of selected) {
        // Each round gets a fresh engine (a fresh key prefix / schema on servers), removed after it.
        const round = (tasks: number, seed = opts.seed) =>
          Effect.suspend(() => {
            const backend = backendFor(rounds++)
            const apart = opts.producer === "apart" ? backend.apart : undefined
            return scenarios[name]!({
              tasks,
              workers: opts.workers,
              batch: opts.batch,
              system: `flowfabric-${opts.backend}${apart === undefined ? "" : " apart"}`,
              seed,
              ...(apart === undefined ? {} : { producer: apart })
            }).pipe(Effect.provide(backend.layer), Effect.scoped, Effect.ensuring(backend.cleanup))
          })
        // the throughput peers' runs are worker runtimes over a bulk submit: beside either scenario, once per run
        const peersHere = isLatency(name) || name === "submit-claim-complete" ||
          (name === "worker-runtime" && !selected.includes("submit-claim-complete"))
        const runs = !opts.noPeers && peersHere ?
          peers(opts.backend, name).map((peer) => (tasks: number, seed = opts.seed) =>
            peer.run({ tasks, workers: opts.workers, url: opts.url, scenario: name, seed })
          ) :
          []
        if (isLatency(name)) {
          const total = opts.scenario === "all" ? DEFAULT_SAMPLES : Option.getOrElse(opts.tasks, () => DEFAULT_SAMPLES)
          const roundsHere = Math.max(1, opts.rounds)
          // the samples shared out so that the rounds add up to `total`
          const perRound = (i: number) =>
            Math.max(1, Math.floor((total * (i + 1)) / roundsHere) - Math.floor((total * i) / roundsHere))
          if (opts.warmup > 0) {
            const warm = Math.min(opts.warmup, LATENCY_WARMUP)
            yield* round(warm, roundSeed(opts.seed, -1))
            for (const run of runs) yield* run(warm, roundSeed(opts.seed, -1))
          }
          results.push(...(yield* latencyRounds(
            opts.rounds,
            (i) => round(perRound(i), roundSeed(opts.seed, i)),
            runs.map((run) => (i: number) => run(perRound(i), roundSeed(opts.seed, i)))
          )))
          continue
        }
        const tasks = Option.getOrElse(opts.tasks, () => DEFAULT_TASKS)
        if (opts.warmup > 0) {
          yield* round(opts.warmup)
          for (const run of runs) yield* run(opts.warmup)
        }
        results.push(...(yield* runs.length === 0 ?
          medianRound(opts.rounds, () => round(tasks)) :
          interleavedRounds(opts.rounds, round(tasks), runs.map((run) => run(tasks)))))
      }
      // the raw samples stay out of the printed results
      const printed = results.map(({ samplesMs: _, ...r }) => r)
      if (opts.json) {
        yield* Console.log(JSON.stringify({ machine: machineInfo(), results: printed }, null, 2))
      } else {
        yield* Console.log(["system".padEnd(26), "scenario".padEnd(24), "count".padStart(7), "per sec".padStart(10), "p50 ms".padStart(8), "p90 ms".padStart(8), "p95 ms".padStart(8), "p99 ms".padStart(8)].join(" "))
        for (const r of results) yield* Console.log(formatRow(r))
        yield* Console.log(JSON.stringify({ machine: machineInfo(), results: printed }))
      }
    })
)

/** The 1/5/15-minute load averages when the run started: other work on the machine shifts absolute figures. */
const loadAtStart = loadavg()

const machineInfo = () => ({
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpus: (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency,
  loadavgAtStart: loadAtStart.map((x) => Number(x.toFixed(2))),
  loadavgAtEnd: loadavg().map((x) => Number(x.toFixed(2)))
})

const cli = Command.run(command, { name: "flowfabric-bench", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
