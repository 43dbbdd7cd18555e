/**
 * The peers of the `footprint` scenario, on the same server in the same run: N jobs with the same
 * JSON input added in bulk (BullMQ `addBulk`, pg-boss `insert`, graphile-worker `addJobs`, 1 000
 * per call), the store read; then every job processed by the peer's own worker with its default
 * retention, the store read again. Each peer gets a fresh queue / schema, removed afterwards.
 */
import { Effect, Option } from "effect"
import {
  type Footprint,
  pgFootprint,
  pgProbe,
  valkeyBaseline,
  valkeyFootprint,
  valkeyProbe,
  type WalFigure
} from "./footprintStores.js"

const BATCH = 1000

export interface PeerFootprints {
  readonly footprints: ReadonlyArray<Footprint>
  readonly wal: ReadonlyArray<WalFigure>
}

const waitFor = (done: () => boolean, what: string, timeoutMs = 30 * 60_000) =>
  new Promise<void>((resolve, reject) => {
    const t0 = Date.now()
    const tick = () => {
      if (done()) return resolve()
      if (Date.now() - t0 > timeoutMs) return reject(new Error(`${what}: not done within ${timeoutMs} ms`))
      setTimeout(tick, 50)
    }
    tick()
  })

const batches = (n: number) => Array.from({ length: Math.ceil(n / BATCH) }, (_, i) => Math.min(BATCH, n - i * BATCH))

const bullmq = async (url: string, n: number, input: unknown): Promise<PeerFootprints> => {
  const { Queue, Worker } = await import("bullmq")
  const u = new URL(url)
  const connection = { host: u.hostname, port: Number(u.port || 6379), maxRetriesPerRequest: null }
  const probe = await valkeyProbe(url)
  // a queue name as short as the lane's, so that key names cost alike
  const name = "jobs"
  const prefix = `bull:${name}`
  const system = "bullmq 6.7"
  await probe.dropKeys(prefix)
  const queue = new Queue(name, { connection })
  try {
    await queue.waitUntilReady()
    const base = await valkeyBaseline(probe, prefix)
    for (const count of batches(n)) {
      await queue.addBulk(Array.from({ length: count }, () => ({ name: "noop", data: input })))
    }
    const waiting = await valkeyFootprint(probe, prefix, base, system, "waiting", n)
    let done = 0
    const worker = new Worker(name, async () => {}, { connection, concurrency: 50 })
    worker.on("completed", () => void done++)
    await waitFor(() => done >= n, "bullmq")
    await worker.close()
    const completed = await valkeyFootprint(probe, prefix, base, system, "completed", n)
    return { footprints: [waiting, completed], wal: [] }
  } finally {
    await queue.close()
    await probe.dropKeys(prefix)
    probe.close()
  }
}

const pgBoss = async (url: string, n: number, workers: number, input: object): Promise<PeerFootprints> => {
  const { default: PgBoss } = await import("pg-boss")
  const probe = await pgProbe(url)
  const schema = `fp_pgboss_${Date.now()}`
  const system = "pg-boss 10.4"
  const boss = new PgBoss({ connectionString: url, schema, max: Math.max(10, workers + 2) })
  boss.on("error", () => {})
  let stopped = false
  try {
    await boss.start()
    const queue = "jobs"
    await boss.createQueue(queue)
    const base = await probe.relations(schema)
    const w0 = await probe.walLsn()
    for (const count of batches(n)) {
      await boss.insert(Array.from({ length: count }, () => ({ name: queue, data: input })))
    }
    const w1 = await probe.walLsn()
    const waiting = await pgFootprint(probe, schema, base, system, "waiting", n)
    let done = 0
    const w2 = await probe.walLsn()
    for (let w = 0; w < workers; w++) {
      await boss.work(queue, { batchSize: 250, pollingIntervalSeconds: 0.5 }, async (jobs) => {
        done += jobs.length
      })
    }
    await waitFor(() => done >= n, "pg-boss")
    await boss.stop({ graceful: true, wait: true })
    stopped = true
    const w3 = await probe.walLsn()
    const completed = await pgFootprint(probe, schema, base, system, "completed", n, { live: true })
    return {
      footprints: [waiting, completed],
      wal: [
        { system, phase: "insert", count: n, bytes: Number(w1 - w0), task: true },
        { system, phase: "fetch + complete", count: n, bytes: Number(w3 - w2), task: true }
      ]
    }
  } finally {
    if (!stopped) await boss.stop({ graceful: false, wait: true }).catch(() => undefined)
    await probe.dropSchema(schema)
    await probe.close()
  }
}

const graphileWorker = async (url: string, n: number, input: unknown): Promise<PeerFootprints> => {
  const { Logger, run, makeWorkerUtils } = await import("graphile-worker")
  const logger = new Logger(() => () => {})
  const probe = await pgProbe(url)
  const schema = `fp_graphile_${Date.now()}`
  const system = "graphile-worker 0.17"
  const utils = await makeWorkerUtils({ connectionString: url, schema, logger })
  try {
    await utils.migrate()
    const base = await probe.relations(schema)
    const w0 = await probe.walLsn()
    for (const count of batches(n)) {
      await utils.addJobs(Array.from({ length: count }, () => ({ identifier: "noop", payload: input })))
    }
    const w1 = await probe.walLsn()
    const waiting = await pgFootprint(probe, schema, base, system, "waiting", n)
    let done = 0
    const w2 = await probe.walLsn()
    const runner = await run({
      connectionString: url,
      schema,
      concurrency: 10,
      pollInterval: 1000,
      noHandleSignals: true,
      logger,
      taskList: {
        noop: async () => {
          done++
        }
      }
    })
    await waitFor(() => done >= n, "graphile-worker")
    await runner.stop()
    const w3 = await probe.walLsn()
    const completed = await pgFootprint(probe, schema, base, system, "completed", n, { live: true })
    return {
      footprints: [waiting, completed],
      wal: [
        { system, phase: "addJobs", count: n, bytes: Number(w1 - w0), task: true },
        { system, phase: "run (jobs deleted)", count: n, bytes: Number(w3 - w2), task: true }
      ]
    }
  } finally {
    await utils.release()
    await probe.dropSchema(schema)
    await probe.close()
  }
}

/** The peers of `backend` measured one after another. */
export const footprintPeers = (
  backend: "valkey" | "postgres",
  url: Option.Option<string>,
  n: number,
  workers: number,
  inputJson: string
): Effect.Effect<PeerFootprints, Error> =>
  Effect.tryPromise({
    try: async () => {
      const input = JSON.parse(inputJson) as object
      const runs = backend === "valkey" ?
        [() => bullmq(Option.getOrElse(url, () => "redis://127.0.0.1:6379"), n, input)] :
        [
          () => pgBoss(Option.getOrElse(url, () => "postgres://postgres@127.0.0.1:5432/postgres"), n, workers, input),
          () => graphileWorker(Option.getOrElse(url, () => "postgres://postgres@127.0.0.1:5432/postgres"), n, input)
        ]
      const footprints: Array<Footprint> = []
      const wal: Array<WalFigure> = []
      for (const r of runs) {
        const x = await r()
        footprints.push(...x.footprints)
        wal.push(...x.wal)
      }
      return { footprints, wal }
    },
    catch: (e) => new Error(`footprint peers: ${String(e)}`)
  })
