/**
 * The latency scenarios run against the peers' own worker runtimes, in the same process and on the
 * same server, measured as ours: the same seeded pauses, from the producer's call to the handler
 * function's first line.
 */
import { Effect, Option } from "effect"
import { setTimeout as sleep } from "node:timers/promises"
import { dropSchema } from "./cleanup.js"
import type { Peer, PeerOptions } from "./peers.js"
import { gapsMs } from "./random.js"
import { latencyRow, RETRY_BACKOFF_MS } from "./workerLatency.js"

/** A promise with its resolver, made before the producer's call so the handler can settle it. */
const signal = <A>() => {
  let resolve: (a: A) => void = () => {}
  const promise = new Promise<A>((r) => (resolve = r))
  return { promise, resolve }
}

const SAMPLE_TIMEOUT_MS = 60_000

const within = <A>(p: Promise<A>, what: string): Promise<A> =>
  Promise.race([
    p,
    sleep(SAMPLE_TIMEOUT_MS, undefined, { ref: false }).then(() => {
      throw new Error(`${what} not seen within ${SAMPLE_TIMEOUT_MS / 1000} s`)
    })
  ])

const valkeyConnection = (o: PeerOptions) => {
  const url = new URL(Option.getOrElse(o.url, () => "redis://127.0.0.1:6379"))
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null }
}

const pgUrl = (o: PeerOptions) => Option.getOrElse(o.url, () => "postgres://postgres@127.0.0.1:5432/postgres")

/** Samples taken one at a time: pause, then `sample(i)` returns one latency. */
const sequential = async (o: PeerOptions, sample: (i: number) => Promise<number>) => {
  const samples: Array<number> = []
  const t0 = performance.now()
  for (const [i, gap] of gapsMs(o.seed, o.tasks).entries()) {
    await sleep(gap)
    samples.push(await sample(i))
  }
  return { samples, ms: performance.now() - t0 }
}

const bullmqIdlePickup: Peer = {
  name: "bullmq",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { Queue, Worker } = await import("bullmq")
        const connection = valkeyConnection(o)
        const name = `bench-idle-${Date.now()}`
        const queue = new Queue(name, { connection })
        let started = signal<number>()
        let done = signal<void>()
        const worker = new Worker(name, async () => {
          started.resolve(performance.now())
        }, { connection, concurrency: 1 })
        worker.on("completed", () => done.resolve())
        try {
          await worker.waitUntilReady()
          const { samples, ms } = await sequential(o, async (i) => {
            started = signal()
            done = signal()
            const submitted = performance.now()
            await queue.add("noop", { i })
            const at = await within(started.promise, "handler start")
            await within(done.promise, "completion")
            return at - submitted
          })
          return latencyRow(
            { system: "bullmq 6.7" },
            "idle-pickup",
            samples,
            ms,
            "queue.add → handler start; one Worker, concurrency 1, default options"
          )
        } finally {
          await worker.close()
          await queue.obliterate({ force: true })
          await queue.close()
        }
      },
      catch: (e) => new Error(`bullmq: ${String(e)}`)
    })
}

const bullmqRetry: Peer = {
  name: "bullmq",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { Queue, Worker } = await import("bullmq")
        const connection = valkeyConnection(o)
        const name = `bench-retry-${Date.now()}`
        const queue = new Queue(name, { connection })
        let failedAt = 0
        let retried = signal<number>()
        let done = signal<void>()
        const worker = new Worker(name, async (job) => {
          const at = performance.now()
          if (job.attemptsMade === 0) {
            failedAt = at
            throw new Error("transient")
          }
          retried.resolve(at)
        }, { connection, concurrency: 1 })
        worker.on("completed", () => done.resolve())
        worker.on("error", () => {})
        try {
          await worker.waitUntilReady()
          const { samples, ms } = await sequential(o, async (i) => {
            retried = signal()
            done = signal()
            await queue.add("flaky", { i }, { attempts: 2, backoff: { type: "fixed", delay: RETRY_BACKOFF_MS } })
            const at = await within(retried.promise, "retry")
            await within(done.promise, "completion")
            return at - (failedAt + RETRY_BACKOFF_MS)
          })
          return latencyRow(
            { system: "bullmq 6.7" },
            "retry-latency",
            samples,
            ms,
            `retry start after due (failure + ${RETRY_BACKOFF_MS} ms); attempts 2, fixed backoff ${RETRY_BACKOFF_MS} ms`
          )
        } finally {
          await worker.close()
          await queue.obliterate({ force: true })
          await queue.close()
        }
      },
      catch: (e) => new Error(`bullmq: ${String(e)}`)
    })
}

const graphileIdlePickup: Peer = {
  name: "graphile-worker",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { Logger, run, makeWorkerUtils } = await import("graphile-worker")
        const logger = new Logger(() => () => {})
        const schema = `graphile_idle_${Date.now()}`
        const utils = await makeWorkerUtils({ connectionString: pgUrl(o), schema, logger })
        let started = signal<number>()
        let done = signal<void>()
        try {
          await utils.migrate()
          // the defaults: concurrency 1, LISTEN/NOTIFY with a 2 s poll as the safety net
          const runner = await run({
            connectionString: pgUrl(o),
            schema,
            noHandleSignals: true,
            logger,
            taskList: {
              noop: async () => {
                started.resolve(performance.now())
              }
            }
          })
          runner.events.on("job:success", () => done.resolve())
          try {
            const { samples, ms } = await sequential(o, async (i) => {
              started = signal()
              done = signal()
              const submitted = performance.now()
              await utils.addJob("noop", { i })
              const at = await within(started.promise, "handler start")
              await within(done.promise, "completion")
              return at - submitted
            })
            return latencyRow(
              { system: "graphile-worker 0.17" },
              "idle-pickup",
              samples,
              ms,
              "addJob → task start; run() defaults: concurrency 1, LISTEN/NOTIFY, poll 2 s"
            )
          } finally {
            await runner.stop()
          }
        } finally {
          await utils.release()
          await Effect.runPromise(dropSchema(pgUrl(o), schema))
        }
      },
      catch: (e) => new Error(`graphile-worker: ${String(e)}`)
    })
}

const pgBossIdlePickup: Peer = {
  name: "pg-boss",
  run: (o) =>
    Effect.tryPromise({
      try: async () => {
        const { default: PgBoss } = await import("pg-boss")
        const schema = `pgboss_idle_${Date.now()}`
        const boss = new PgBoss({ connectionString: pgUrl(o), schema, max: 4 })
        boss.on("error", () => {})
        let started = signal<number>()
        try {
          await boss.start()
          const queue = "bench"
          await boss.createQueue(queue)
          // pg-boss polls (no LISTEN/NOTIFY); 0.5 s is its shortest interval (the default is 2 s)
          await boss.work(queue, { batchSize: 1, pollingIntervalSeconds: 0.5 }, async () => {
            started.resolve(performance.now())
          })
          const { samples, ms } = await sequential(o, async (i) => {
            started = signal()
            const submitted = performance.now()
            const id = await boss.send(queue, { i })
            const at = await within(started.promise, "handler start")
            // the job is completed after the handler returns: wait for it, as for the others
            for (let n = 0; (await boss.getJobById(queue, id!))?.state !== "completed"; n++) {
              if (n > 1000) throw new Error("job not completed")
              await sleep(5)
            }
            return at - submitted
          })
          return latencyRow(
            { system: "pg-boss 10.4" },
            "idle-pickup",
            samples,
            ms,
            "send → handler start; work batchSize 1, poll 0.5 s (its minimum; default 2 s)"
          )
        } finally {
          await boss.stop({ graceful: false, wait: true })
          await Effect.runPromise(dropSchema(pgUrl(o), schema))
        }
      },
      catch: (e) => new Error(`pg-boss: ${String(e)}`)
    })
}

/** The peers of a latency scenario on a backend (none for memory, none for cancel-latency). */
export const latencyPeers = (backend: string, scenario: string): ReadonlyArray<Peer> => {
  switch (scenario) {
    case "idle-pickup":
      return backend === "valkey" ? [bullmqIdlePickup] : backend === "postgres" ? [pgBossIdlePickup, graphileIdlePickup] : []
    case "retry-latency":
      return backend === "valkey" ? [bullmqRetry] : []
    default:
      return []
  }
}
