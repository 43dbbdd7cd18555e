/** Benchmark scenarios, written against the `EngineBackend` tag only. */
import { Deferred, Duration, Effect, Either, Fiber, type Layer, Logger, LogLevel, Option, Ref, Schedule, Schema } from "effect"
import { randomUUID } from "node:crypto"
import { EngineBackend } from "../../EngineBackend.js"
import type { EngineError } from "../../EngineError.js"
import * as Ids from "../../Ids.js"
import type { Maintenance } from "../../Maintenance.js"
import type * as M from "../../Model.js"
import * as Worker from "../../Worker.js"

export interface BenchResult {
  readonly system: string
  readonly scenario: string
  readonly count: number
  readonly seconds: number
  readonly perSecond?: number
  readonly p50Ms?: number
  readonly p90Ms?: number
  readonly p95Ms?: number
  readonly p99Ms?: number
  readonly note?: string
  /** The raw latencies of a latency scenario's round, pooled over its rounds (not printed). */
  readonly samplesMs?: ReadonlyArray<number>
}

export interface ScenarioOptions {
  readonly tasks: number
  readonly workers: number
  /** Claims per `claimMany` call of a bench worker (its free slots). */
  readonly batch: number
  readonly system: string
  /** Seed of the round's pseudo-random pauses (latency scenarios). */
  readonly seed: number
  /** idle-pickup: the engine its producer submits through, when not the worker's own (`--producer apart`). */
  readonly producer?: Layer.Layer<EngineBackend | Maintenance, unknown>
}

export type Scenario = (
  o: ScenarioOptions
) => Effect.Effect<ReadonlyArray<BenchResult>, EngineError, EngineBackend | Maintenance>

const ns = Ids.unsafe.namespace("bench")
const nowMs = Effect.sync(() => performance.now())

export const percentile = (sorted: ReadonlyArray<number>, p: number): number =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!

export const latencies = (samples: ReadonlyArray<number>) => {
  const s = [...samples].sort((a, b) => a - b)
  return { p50Ms: percentile(s, 50), p90Ms: percentile(s, 90), p95Ms: percentile(s, 95), p99Ms: percentile(s, 99) }
}

/** A throughput row: `count` items in the `ms` milliseconds of a scenario or of one of its phases. */
const rate = (o: ScenarioOptions, scenario: string, count: number, ms: number): BenchResult => ({
  system: o.system,
  scenario,
  count,
  seconds: ms / 1000,
  perSecond: count / (ms / 1000)
})

const policyFor = (worker: number): M.ClaimPolicy => ({
  workerId: Ids.unsafe.workerId(`bench-${worker}`),
  workerInstanceId: Ids.unsafe.workerInstanceId(`bench-${worker}`),
  leaseTtlMs: 30_000
})

/** Submits `n` executions in batches of 1 000 (like BullMQ's addBulk in the peer run). */
const createMany = (
  b: EngineBackend.Service,
  lane: Ids.LaneId,
  n: number,
  extra: Partial<M.CreateExecutionArgsInput> = {}
) =>
  Effect.forEach(
    Array.from({ length: Math.ceil(n / 1000) }, (_, i) => Math.min(1000, n - i * 1000)),
    (count) =>
      b.createExecutions(Array.from({ length: count }, () => ({
        executionId: Ids.deterministicExecutionIdSolo(lane, randomUUID()),
        namespace: ns,
        laneId: lane,
        executionKind: "noop",
        ...extra
      }))),
    { concurrency: 4, discard: true }
  )


/** Workers claim and complete until `remaining` reaches zero. */
const drain = (
  b: EngineBackend.Service,
  lane: Ids.LaneId,
  { batch, workers }: { readonly batch: number; readonly workers: number },
  remaining: Ref.Ref<number>,
  tokens: ReadonlyArray<string> = [],
  onDone: (h: M.Handle) => Effect.Effect<void> = () => Effect.void
) =>
  Effect.forEach(
    Array.from({ length: workers }, (_, i) => i),
    (w) =>
      Effect.gen(function*() {
        const policy = policyFor(w)
        const args = { lane, capabilities: { tokens }, policy }
        for (;;) {
          if ((yield* Ref.get(remaining)) <= 0) return
          // a worker with `claimBatch` free slots fills them in one call, as BullMQ and pg-boss fetch
          const claimed = yield* b.claimMany(args, batch)
          if (claimed.length === 0) {
            yield* Effect.yieldNow()
            continue
          }
          // the batch is completed in one call, as pg-boss completes a fetched batch
          const outcomes = yield* b.completeMany(claimed.map((handle) => ({ handle })))
          for (const [i, h] of claimed.entries()) {
            const outcome = outcomes[i]!
            if (Either.isLeft(outcome)) return yield* Effect.fail(outcome.left)
            yield* onDone(h)
          }
          yield* Ref.update(remaining, (n) => n - claimed.length)
        }
      }),
    { concurrency: "unbounded", discard: true }
  )

const submitClaimComplete: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`scc-${Date.now()}`)
    const remaining = yield* Ref.make(o.tasks)
    const t0 = yield* nowMs
    yield* createMany(b, lane, o.tasks)
    const t1 = yield* nowMs
    yield* drain(b, lane, o, remaining)
    const t2 = yield* nowMs
    return [
      rate(o, "submit-claim-complete", o.tasks, t2 - t0),
      rate(o, "  submit only", o.tasks, t1 - t0),
      rate(o, "  claim+complete only", o.tasks, t2 - t1)
    ]
  })

const suspendSignalResume: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`ssr-${Date.now()}`)
    const n = Math.min(o.tasks, 2_000)
    const policy = policyFor(0)
    const samples: Array<number> = []
    for (let i = 0; i < n; i++) {
      const executionId = yield* Ids.executionIdSolo(lane)
      yield* b.createExecution({ executionId, namespace: ns, laneId: lane, executionKind: "approval" })
      const h = Option.getOrThrow(yield* b.claim({ lane, capabilities: { tokens: [] }, policy }))
      const wp = yield* Ids.freshWaitpointBinding
      const outcome = yield* b.suspend(h, {
        suspensionId: yield* Ids.newSuspensionId,
        waitpoints: [{ _tag: "Fresh", ...wp }],
        resumeCondition: { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "ByName", name: "go" } }
      })
      if (outcome._tag !== "Suspended") continue
      const t0 = yield* nowMs
      yield* b.deliverSignal({
        executionId,
        waitpointId: wp.waitpointId,
        signalId: yield* Ids.newSignalId,
        signalName: "go",
        waitpointToken: outcome.details.waitpointToken
      })
      const resumed = yield* b.claim({ lane, capabilities: { tokens: [] }, policy })
      samples.push((yield* nowMs) - t0)
      if (Option.isSome(resumed)) yield* b.complete(resumed.value)
    }
    const total = samples.reduce((a, x) => a + x, 0) / 1000
    return [{
      system: o.system,
      scenario: "suspend-signal-resume",
      count: samples.length,
      seconds: total,
      ...latencies(samples),
      note: "latency = deliverSignal + resumed claim"
    }]
  })

const steadyState: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`steady-${Date.now()}`)
    const n = o.tasks
    const created = new Map<string, number>()
    const samples: Array<number> = []
    const remaining = yield* Ref.make(n)
    const producer = Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      () =>
        Effect.gen(function*() {
          const executionId = yield* Ids.executionIdSolo(lane)
          created.set(executionId, yield* nowMs)
          yield* b.createExecution({ executionId, namespace: ns, laneId: lane, executionKind: "noop" })
        }),
      { concurrency: 16, discard: true }
    )
    const t0 = yield* nowMs
    yield* Effect.all([
      producer,
      drain(b, lane, o, remaining, [], (h) =>
        Effect.gen(function*() {
          const start = created.get(decodeExecutionId(h))
          if (start !== undefined) samples.push((yield* nowMs) - start)
        }))
    ], { concurrency: "unbounded", discard: true })
    const seconds = ((yield* nowMs) - t0) / 1000
    return [{
      system: o.system,
      scenario: "steady-state",
      count: n,
      seconds,
      perSecond: n / seconds,
      ...latencies(samples),
      note: "producers and workers concurrently; latency = submit to complete"
    }]
  })

const decodeExecutionId = (h: M.Handle): string => {
  const view = new DataView(h.opaque.buffer, h.opaque.byteOffset, h.opaque.byteLength)
  const len = view.getUint32(3, true)
  return new TextDecoder().decode(h.opaque.subarray(7, 7 + len))
}

const linearFlow: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`flow-${Date.now()}`)
    const flows = Math.max(1, Math.min(2_000, Math.floor(o.tasks / 10)))
    const nodes = 10
    const started = new Map<string, number>()
    const lastNode = new Map<string, string>()
    const samples: Array<number> = []
    // a flow is built in one call: its members, and the chain's edges staged and applied
    const build = Effect.gen(function*() {
      const flowId = yield* Ids.newFlowId
      const ids: Array<Ids.ExecutionId> = []
      for (let i = 0; i < nodes; i++) ids.push(yield* Ids.executionIdForFlow(flowId))
      const edges = []
      for (let i = 1; i < nodes; i++) {
        edges.push({ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: ids[i - 1]!, downstreamExecutionId: ids[i]! })
      }
      yield* b.createFlowGraph({
        flow: { flowId, namespace: ns, flowKind: "pipeline" },
        members: ids.map((executionId) => ({ executionId, namespace: ns, laneId: lane, executionKind: "step" })),
        edges
      })
      started.set(ids[nodes - 1]!, yield* nowMs)
      lastNode.set(ids[nodes - 1]!, flowId)
    })
    const remaining = yield* Ref.make(flows * nodes)
    const t0 = yield* nowMs
    // Every flow is built before the workers start, as submit-claim-complete submits first: a member
    // finished while its flow is still being built would settle the flow
    // (docs/design/flows.md#flow-states) or meet edges that only the reconcileDependencies pass resolves.
    yield* Effect.forEach(Array.from({ length: flows }, (_, i) => i), () => build, { concurrency: 16, discard: true })
    const t1 = yield* nowMs
    yield* drain(b, lane, o, remaining, [], (h) =>
      Effect.gen(function*() {
        const id = decodeExecutionId(h)
        const start = started.get(id)
        if (start !== undefined) samples.push((yield* nowMs) - start)
      }))
    const t2 = yield* nowMs
    return [{
      ...rate(o, "linear-flow (10 nodes)", flows, t2 - t0),
      ...latencies(samples),
      note: "flows per second, building included; latency = flow built to last node complete"
    }, rate(o, "  build only", flows, t1 - t0), rate(o, "  run only (built first)", flows, t2 - t1)]
  })

const capabilityRouted: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`caps-${Date.now()}`)
    const classes = ["gpu", "cpu", "io", "net"]
    const per = Math.floor(o.tasks / classes.length)
    const t0 = yield* nowMs
    for (const c of classes) {
      yield* createMany(b, lane, per, { policy: { routingRequirements: { requiredCapabilities: [c] } } })
    }
    yield* Effect.forEach(classes, (c) =>
      Effect.gen(function*() {
        const remaining = yield* Ref.make(per)
        yield* drain(b, lane, { batch: o.batch, workers: Math.max(1, Math.floor(o.workers / classes.length)) }, remaining, [c])
      }), { concurrency: "unbounded", discard: true })
    const seconds = ((yield* nowMs) - t0) / 1000
    return [{
      system: o.system,
      scenario: "capability-routed",
      count: per * classes.length,
      seconds,
      perSecond: (per * classes.length) / seconds,
      note: `${classes.length} capability classes, one class per worker`
    }]
  })

const flowCancel: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`cancel-${Date.now()}`)
    const members = 100
    const flows = Math.max(1, Math.min(100, Math.floor(o.tasks / members)))
    const samples: Array<number> = []
    for (let f = 0; f < flows; f++) {
      const flowId = yield* Ids.newFlowId
      yield* b.createFlow({ flowId, namespace: ns })
      yield* Effect.forEach(Array.from({ length: members }, (_, i) => i), () =>
        Effect.gen(function*() {
          const executionId = yield* Ids.executionIdForFlow(flowId)
          yield* b.createExecution({ executionId, namespace: ns, laneId: lane, executionKind: "member" })
          yield* b.addExecutionToFlow({ flowId, executionId })
        }), { concurrency: 16, discard: true })
      const t0 = yield* nowMs
      yield* b.cancelFlow({ flowId, policy: "CancelAll", wait: { _tag: "WaitTimeout", timeout: Duration.seconds(30) } })
      samples.push((yield* nowMs) - t0)
    }
    return [{
      system: o.system,
      scenario: "flow-cancel (100 members)",
      count: flows,
      seconds: samples.reduce((a, x) => a + x, 0) / 1000,
      ...latencies(samples),
      note: "cancelFlow(CancelAll, WaitTimeout) until the flow reads cancelled"
    }]
  })

/**
 * The worker runtime end to end: `o.workers` `Worker.run` fibers with `--batch` concurrency each run
 * a no-op handler (input decoded, output encoded, as an application's handler is) until every
 * submitted execution completed.
 */
const workerRuntime: Scenario = (o) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const lane = Ids.unsafe.laneId(`wrt-${Date.now()}`)
    const noop = Worker.handler({
      kind: "noop",
      input: Schema.Struct({ n: Schema.Number }),
      output: Schema.Struct({ n: Schema.Number }),
      run: (input) => Effect.succeed(input)
    })
    const input = new TextEncoder().encode(JSON.stringify({ n: 1 }))
    const completed = yield* Ref.make(0)
    const allDone = yield* Deferred.make<void>()
    const t0 = yield* nowMs
    yield* createMany(b, lane, o.tasks, { inputPayload: input })
    const t1 = yield* nowMs
    const workers = yield* Effect.forEach(
      Array.from({ length: o.workers }, (_, i) => i),
      (i) =>
        Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [noop],
          concurrency: o.batch,
          workerId: `bench-${i}`,
          workerInstanceId: `bench-${i}-${lane}`,
          idle: Schedule.spaced("1 millis"),
          onEvent: (event) =>
            event._tag === "Completed" ?
              Effect.flatMap(Ref.updateAndGet(completed, (n) => n + 1), (n) =>
                n === o.tasks ? Deferred.succeed(allDone, undefined) : Effect.void) :
              event._tag === "Claimed" ? Effect.void : Effect.dieMessage(`unexpected worker event ${event._tag}`)
        }).pipe(Logger.withMinimumLogLevel(LogLevel.Warning)))
    )
    yield* Deferred.await(allDone)
    const t2 = yield* nowMs
    yield* Effect.forEach(workers, Fiber.interrupt, { discard: true })
    return [rate(o, "worker-runtime", o.tasks, t2 - t0), rate(o, "  run only (submitted first)", o.tasks, t2 - t1)]
  })

export const scenarios: Record<string, Scenario> = {
  "submit-claim-complete": submitClaimComplete,
  "suspend-signal-resume": suspendSignalResume,
  "steady-state": steadyState,
  "linear-flow": linearFlow,
  "capability-routed": capabilityRouted,
  "flow-cancel": flowCancel,
  "worker-runtime": workerRuntime
}
