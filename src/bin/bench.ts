/**
 * `npm run bench -- --backend memory|valkey|postgres --scenario …`: throughput
 * and latency of the engine, with the peers (BullMQ, pg-boss,
 * graphile-worker) measured in the same run on the same servers.
 */
import { Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Console, Effect, type Layer, Option, Redacted } from "effect"
import { EngineBackend, type HmacSecret } from "../EngineBackend.js"
import type { EngineError } from "../EngineError.js"
import type { Maintenance } from "../Maintenance.js"
import * as MemoryBackend from "../MemoryBackend.js"
import { dropKeys, dropSchema } from "./bench/cleanup.js"
import { type BenchResult, scenarios } from "./bench/scenarios.js"
import { peers } from "./bench/peers.js"

const backendOption = Options.choice("backend", ["memory", "valkey", "postgres"]).pipe(Options.withDefault("memory"))
const scenarioOption = Options.choice("scenario", [
  "submit-claim-complete",
  "suspend-signal-resume",
  "steady-state",
  "linear-flow",
  "capability-routed",
  "flow-cancel",
  "worker-runtime",
  "all"
]).pipe(Options.withDefault("submit-claim-complete"))
const tasksOption = Options.integer("tasks").pipe(Options.withDefault(20_000))
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

type BackendLayer = Layer.Layer<EngineBackend | Maintenance, EngineError | unknown>

const benchSecret: HmacSecret = { kid: "bench", secretHex: Redacted.make("5ec2e7a1b0c4d9f3".repeat(4)) }

/** A fresh engine for each round (its own key prefix / schema), and the removal of what it left. */
interface RoundBackend {
  readonly layer: BackendLayer
  readonly cleanup: Effect.Effect<void>
}

const roundBackend = (
  backend: string,
  url: Option.Option<string>
): Effect.Effect<(round: number) => RoundBackend> => {
  const run = Date.now()
  switch (backend) {
    case "valkey": {
      const server = Option.getOrElse(url, () => "redis://127.0.0.1:6379")
      return Effect.promise(() => import("../valkey/index.js")).pipe(Effect.map(({ ValkeyBackend }) => (round) => {
        const keyPrefix = `bench-${run}-${round}`
        return {
          layer: ValkeyBackend.layer({ url: server, keyPrefix, hmacSecret: benchSecret }) as BackendLayer,
          cleanup: dropKeys(server, keyPrefix)
        }
      }))
    }
    case "postgres": {
      const server = Option.getOrElse(url, () => "postgres://postgres@127.0.0.1:5432/postgres")
      return Effect.promise(() => import("../postgres/index.js")).pipe(Effect.map(({ PostgresBackend }) => (round) => {
        const schema = `bench_${run}_${round}`
        return {
          layer: PostgresBackend.layerPg({ url: Redacted.make(server), schema, hmacSecret: benchSecret }) as BackendLayer,
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

const formatRow = (r: BenchResult): string =>
  [
    r.system.padEnd(26),
    r.scenario.padEnd(24),
    String(r.count).padStart(7),
    r.perSecond === undefined ? "".padStart(10) : r.perSecond.toFixed(0).padStart(10),
    r.p50Ms === undefined ? "".padStart(8) : r.p50Ms.toFixed(2).padStart(8),
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
    json: jsonOption
  },
  (opts) =>
    Effect.gen(function*() {
      const backendFor = yield* roundBackend(opts.backend, opts.url)
      let rounds = 0
      const selected = opts.scenario === "all" ? Object.keys(scenarios) : [opts.scenario]
      const results: Array<BenchResult> = []
      for (const name of selected) {
        // Each round gets a fresh engine (a fresh key prefix / schema on servers), removed after it.
        const round = (tasks: number) =>
          Effect.suspend(() => {
            const backend = backendFor(rounds++)
            return scenarios[name]!({ tasks, workers: opts.workers, batch: opts.batch, system: `flowfabric-${opts.backend}` })
              .pipe(Effect.provide(backend.layer), Effect.scoped, Effect.ensuring(backend.cleanup))
          })
        // the peers' runs are worker runtimes over a bulk submit: beside either scenario, once per run
        const peersHere = name === "submit-claim-complete" ||
          (name === "worker-runtime" && !selected.includes("submit-claim-complete"))
        const runs = !opts.noPeers && peersHere ?
          peers(opts.backend).map((peer) => (tasks: number) =>
            peer.run({ tasks, workers: opts.workers, url: opts.url })
          ) :
          []
        if (opts.warmup > 0) {
          yield* round(opts.warmup)
          for (const run of runs) yield* run(opts.warmup)
        }
        results.push(...(yield* runs.length === 0 ?
          medianRound(opts.rounds, () => round(opts.tasks)) :
          interleavedRounds(opts.rounds, round(opts.tasks), runs.map((run) => run(opts.tasks)))))
      }
      if (opts.json) {
        yield* Console.log(JSON.stringify({ machine: machineInfo(), results }, null, 2))
      } else {
        yield* Console.log(["system".padEnd(26), "scenario".padEnd(24), "count".padStart(7), "per sec".padStart(10), "p50 ms".padStart(8), "p95 ms".padStart(8), "p99 ms".padStart(8)].join(" "))
        for (const r of results) yield* Console.log(formatRow(r))
        yield* Console.log(JSON.stringify({ machine: machineInfo(), results }))
      }
    })
)

const machineInfo = () => ({
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
  cpus: (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency
})

const cli = Command.run(command, { name: "flowfabric-bench", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
