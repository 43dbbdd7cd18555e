/**
 * The queues people use today, measured in the same run on the same server:
 * BullMQ on Valkey, pg-boss and graphile-worker on PostgreSQL. Each one runs
 * N no-op jobs end to end (add → process → complete); the latency scenarios'
 * peers are in `peerLatency.ts`.
 */
import { Effect, Option } from "effect"
import { dropSchema } from "./cleanup.js"
import { latencyPeers } from "./peerLatency.js"
import type { BenchResult } from "./scenarios.js"

export interface PeerOptions {
  readonly tasks: number
  readonly workers: number
  readonly url: Option.Option<string>
  /** The scenario the row is reported under. */
  readonly scenario: string
  /** Seed of the round's pseudo-random pauses (latency scenarios). */
  readonly seed: number
}

export interface Peer {
  readonly name: string
  readonly run: (o: PeerOptions) => Effect.Effect<BenchResult, Error>
}

const result = (o: PeerOptions, system: string, ms: number, note: string): BenchResult => ({
  system,
  scenario: o.scenario,
  count: o.tasks,
  seconds: ms / 1000,
  perSecond: o.tasks / (ms / 1000),
  note
})

const bullmq: Peer = {
  name: "bullmq",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { Queue, Worker } = await import("bullmq")
        const url = new URL(Option.getOrElse(o.url, () => "redis://127.0.0.1:6379"))
        const connection = { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null }
        const name = `bench-${Date.now()}`
        const queue = new Queue(name, { connection })
        let done = 0
        let finish: () => void = () => {}
        const finished = new Promise<void>((resolve) => (finish = resolve))
        const worker = new Worker(name, async () => {}, { connection, concurrency: 50, autorun: false })
        worker.on("completed", () => {
          if (++done === o.tasks) finish()
        })
        const t0 = performance.now()
        for (let i = 0; i < o.tasks; i += 1000) {
          const n = Math.min(1000, o.tasks - i)
          await queue.addBulk(Array.from({ length: n }, (_, j) => ({ name: "noop", data: { i: i + j } })))
        }
        void worker.run()
        await finished
        const ms = performance.now() - t0
        await worker.close()
        await queue.obliterate({ force: true })
        await queue.close()
        return result(o, "bullmq 6.7", ms, "addBulk ×1000, one Worker concurrency 50, default job options")
      },
      catch: (e) => new Error(`bullmq: ${String(e)}`)
    })
}

const pgUrl = (o: PeerOptions) => Option.getOrElse(o.url, () => "postgres://postgres@127.0.0.1:5432/postgres")

const pgBoss: Peer = {
  name: "pg-boss",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { default: PgBoss } = await import("pg-boss")
        const schema = `pgboss_bench_${Date.now()}`
        const boss = new PgBoss({ connectionString: pgUrl(o), schema, max: Math.max(10, o.workers + 2) })
        boss.on("error", () => {})
        await boss.start()
        const queue = "bench"
        await boss.createQueue(queue)
        let done = 0
        let finish: () => void = () => {}
        const finished = new Promise<void>((resolve) => (finish = resolve))
        const t0 = performance.now()
        for (let i = 0; i < o.tasks; i += 1000) {
          const n = Math.min(1000, o.tasks - i)
          await boss.insert(Array.from({ length: n }, (_, j) => ({ name: queue, data: { i: i + j } })))
        }
        // pg-boss sleeps its polling interval after every fetch, so one worker with small batches
        // caps at batchSize / 0.5 s: give it as many workers as ours and batches of 250.
        for (let w = 0; w < o.workers; w++) {
          await boss.work(queue, { batchSize: 250, pollingIntervalSeconds: 0.5 }, async (jobs) => {
            done += jobs.length
            if (done >= o.tasks) finish()
          })
        }
        await finished
        const ms = performance.now() - t0
        await boss.stop({ graceful: false, wait: true })
        await Effect.runPromise(dropSchema(pgUrl(o), schema))
        return result(o, "pg-boss 10.4", ms, `insert ×1000, ${o.workers} workers, batchSize 250, poll 0.5 s`)
      },
      catch: (e) => new Error(`pg-boss: ${String(e)}`)
    })
}

const graphileWorker: Peer = {
  name: "graphile-worker",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { Logger, run, makeWorkerUtils } = await import("graphile-worker")
        const logger = new Logger(() => () => {})
        const schema = `graphile_bench_${Date.now()}`
        const utils = await makeWorkerUtils({ connectionString: pgUrl(o), schema, logger })
        await utils.migrate()
        let done = 0
        let finish: () => void = () => {}
        const finished = new Promise<void>((resolve) => (finish = resolve))
        const t0 = performance.now()
        for (let i = 0; i < o.tasks; i += 1000) {
          const n = Math.min(1000, o.tasks - i)
          await utils.addJobs(Array.from({ length: n }, (_, j) => ({ identifier: "noop", payload: { i: i + j } })))
        }
        const runner = await run({
          connectionString: pgUrl(o),
          schema,
          concurrency: 10,
          pollInterval: 1000,
          noHandleSignals: true,
          logger,
          taskList: {
            noop: async () => {
              if (++done === o.tasks) finish()
            }
          }
        })
        await finished
        const ms = performance.now() - t0
        await runner.stop()
        await utils.release()
        await Effect.runPromise(dropSchema(pgUrl(o), schema))
        return result(o, "graphile-worker 0.17", ms, "addJobs ×1000, run concurrency 10, poll 1 s")
      },
      catch: (e) => new Error(`graphile-worker: ${String(e)}`)
    })
}

/** The peers of a scenario on a backend: their worker runtimes over a bulk submit, or a latency scenario's. */
export const peers = (backend: string, scenario: string): ReadonlyArray<Peer> =>
  scenario === "submit-claim-complete" || scenario === "worker-runtime" ?
    (backend === "valkey" ? [bullmq] : backend === "postgres" ? [pgBoss, graphileWorker] : []) :
    latencyPeers(backend, scenario)
