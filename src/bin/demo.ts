/**
 * `npm start`: what the engine is for, in a few seconds.
 *
 * A nightly-report pipeline runs as a flow on the embedded memory engine (or
 * `--backend valkey|postgres --url …`): three regional fetches fan out to
 * several workers — one of them flaky, retried with backoff — a quorum join
 * (2 of 3) aggregates them, an approval step suspends until the demo's
 * approver signals it with the waitpoint's HMAC token, two publishers race
 * and an any-of join lets the first win and cancels the other mid-flight.
 * Meanwhile a re-index sub-flow is cancelled with a bounded wait.
 *
 * A live board (or a timeline) and a closing summary show what the engine
 * says of each step — state, attempts, attempt history, the progress the
 * handlers report, the last failure, why it was cancelled — read with
 * `describeExecution` (./demo/views.ts) when the engine's event log reports a change on the
 * demo's lanes, not from the demo's own process.
 */
import { Command, Options } from "@effect/cli"
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { randomBytes } from "node:crypto"
import {
  Clock,
  Console,
  Data,
  Duration,
  Effect,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Metric,
  MetricState,
  Option,
  Queue,
  Redacted,
  Ref,
  Schedule,
  Schema,
  Stream
} from "effect"
import { EngineBackend, type HmacSecret } from "../EngineBackend.js"
import * as Events from "../Events.js"
import type { ExecutionId, WaitpointId } from "../Ids.js"
import * as Ids from "../Ids.js"
import type { Maintenance } from "../Maintenance.js"
import * as MemoryBackend from "../MemoryBackend.js"
import type * as M from "../Model.js"
import * as Producer from "../Producer.js"
import * as Reconciler from "../Reconciler.js"
import * as Worker from "../Worker.js"
import { makeDisplay } from "./demo/display.js"
import { printSummary } from "./demo/summary.js"
import { readViews, type Step } from "./demo/views.js"

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

class DemoError extends Schema.TaggedError<DemoError>()("DemoError", { message: Schema.String }) {}

/** A regional API answering 503: transient, retried with backoff. */
class UpstreamUnavailable extends Data.TaggedError("UpstreamUnavailable")<{ readonly region: string }> {
  override get message(): string {
    return `HTTP 503 from the ${this.region} API`
  }
}

// ---------------------------------------------------------------------------
// Tasks
// ---------------------------------------------------------------------------

const Fetch = Producer.task({
  kind: "fetch-region",
  input: Schema.Struct({ region: Schema.String, rows: Schema.Int, ms: Schema.Int, failFirst: Schema.Int }),
  output: Schema.Struct({ region: Schema.String, rows: Schema.Int })
})

const Aggregate = Producer.task({
  kind: "aggregate",
  input: Schema.Struct({ report: Schema.String }),
  output: Schema.Struct({ regions: Schema.Array(Schema.String), rows: Schema.Int })
})

const Approve = Producer.task({
  kind: "approval",
  input: Schema.Struct({ title: Schema.String }),
  output: Schema.Struct({ approvedBy: Schema.String })
})

const Publish = Producer.task({
  kind: "publish",
  input: Schema.Struct({ target: Schema.String, ms: Schema.Int }),
  output: Schema.Struct({ url: Schema.String })
})

const Notify = Producer.task({
  kind: "notify",
  input: Schema.Struct({ channel: Schema.String }),
  output: Schema.Struct({ sent: Schema.Boolean })
})

const Reindex = Producer.task({
  kind: "reindex-shard",
  input: Schema.Struct({ shard: Schema.Int }),
  output: Schema.Struct({ documents: Schema.Int })
})

const ApprovalSignal = Schema.Struct({ approver: Schema.String })

// ---------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------

interface ApprovalRequest {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  readonly token: string
  readonly title: string
}

const makeHandlers = (approvals: Queue.Queue<ApprovalRequest>) => {
  /** `steps` slices of work, each followed by a progress report to the engine (the board reads it back). */
  const work = <I>(ctx: Worker.TaskContext<I>, ms: number, label: string, steps = 4) =>
    Effect.forEach(
      Array.from({ length: steps + 1 }, (_, i) => i),
      (i) =>
        Effect.zipRight(
          i === 0 ? Effect.void : Effect.sleep(Duration.millis(ms / steps)),
          ctx.progress((100 * i) / steps, `${label} ${i}/${steps}`)
        ),
      { discard: true }
    )

  const fetch = Worker.handler({
    ...Fetch,
    run: (input, ctx) =>
      Effect.gen(function*() {
        yield* ctx.progress(0, `GET /${input.region}/orders (attempt ${ctx.attempt})`)
        if (ctx.attempt <= input.failFirst) {
          yield* Effect.sleep(Duration.millis(80))
          return yield* new UpstreamUnavailable({ region: input.region })
        }
        yield* work(ctx, input.ms, "page")
        return { region: input.region, rows: input.rows }
      }),
    classify: () => "Transient"
  })

  const aggregate = Worker.handler({
    ...Aggregate,
    // Reads the results of the upstream fetches that finished (a quorum: 2 of 3 is enough).
    run: (input, ctx) =>
      Effect.gen(function*() {
        const backend = yield* EngineBackend
        yield* ctx.progress(10, `collecting ${input.report} inputs`)
        const flowId = yield* backend.resolveExecutionFlowId(ctx.executionId)
        const edges = Option.isSome(flowId) ?
          yield* backend.listEdges({ flowId: flowId.value, direction: { _tag: "Incoming", toNode: ctx.executionId } }) :
          []
        const parts = yield* Effect.forEach(edges, (e) => Producer.result(Fetch, e.upstreamExecutionId))
        const done = parts.flatMap((p) => (Option.isSome(p) ? [p.value] : []))
        yield* work(ctx, 300, "merging", 3)
        return { regions: done.map((p) => p.region), rows: done.reduce((n, p) => n + p.rows, 0) }
      })
  })

  const approval = Worker.handler({
    ...Approve,
    run: (input, ctx) =>
      Effect.gen(function*() {
        if (ctx.resumeSignals.length > 0) {
          const signal = ctx.resumeSignals[0]!
          const payload = yield* Producer.signalPayload(ApprovalSignal, signal)
          yield* ctx.progress(100, `approved by ${payload.approver}`)
          return { approvedBy: payload.approver }
        }
        // A pending waitpoint: its token goes to the approver before the attempt suspends.
        const waitpoint = yield* ctx.createWaitpoint({ key: "approval", expiresIn: "1 minute" })
        yield* ctx.progress(50, "waiting for approval")
        yield* Queue.offer(approvals, {
          executionId: ctx.executionId,
          waitpointId: waitpoint.waitpointId,
          token: waitpoint.token,
          title: input.title
        })
        return yield* Effect.as(
          ctx.suspend({
            waitpoint,
            signalName: "approved",
            reasonCode: "waiting_for_approval",
            timeout: "30 seconds",
            timeoutBehavior: "fail"
          }),
          { approvedBy: "buffered signal" }
        )
      })
  })

  const publish = Worker.handler({
    ...Publish,
    run: (input, ctx) =>
      Effect.gen(function*() {
        yield* work(ctx, input.ms, "uploading", 10)
        return { url: `https://${input.target}.example.com/nightly.pdf` }
      })
  })

  const notify = Worker.handler({
    ...Notify,
    run: (input, ctx) =>
      Effect.gen(function*() {
        yield* ctx.progress(100, `posted to ${input.channel}`)
        return { sent: true }
      })
  })

  const reindex = Worker.handler({
    ...Reindex,
    run: (input, ctx) =>
      Effect.gen(function*() {
        yield* work(ctx, 20_000, `shard ${input.shard}: batch`, 100)
        return { documents: 1_000 }
      })
  })

  return { report: [fetch, aggregate, approval, publish, notify], batch: [reindex] }
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

const counterTotal = (name: string, filter: (tags: ReadonlyArray<{ key: string; value: string }>) => boolean) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let total = 0
    for (const pair of pairs) {
      if (pair.metricKey.name === name && filter(pair.metricKey.tags) && MetricState.isCounterState(pair.metricState)) {
        total += Number(pair.metricState.count)
      }
    }
    return total
  })

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

interface DemoOptions {
  readonly backend: "memory" | "valkey" | "postgres"
  readonly url: Option.Option<string>
  readonly workers: number
  readonly plain: boolean
  readonly verbose: boolean
}


/** Runs in its own scope, inside the backend's: workers are stopped before the backend closes, even on failure. */
const runDemo = (options: DemoOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const backend = yield* EngineBackend
    const run = (yield* Ids.randomUuid).slice(0, 8)
    const started = yield* Clock.currentTimeMillis
    const reportsLane = `reports-${run}`
    const batchLane = `batch-${run}`

    yield* Console.log(`flowfabric demo: backend ${backend.backendLabel}, run ${run}, ${options.workers} workers\n`)

    // What only this process knows, kept apart from the engine's reads: the approver's notes, and the
    // workers' own events (the board does not read them; the end of the run waits on them).
    const localNotes = yield* Ref.make<ReadonlyMap<ExecutionId, string>>(new Map())
    const workerEvents = yield* Ref.make<ReadonlyArray<Worker.WorkerEvent>>([])
    const onEvent = (e: Worker.WorkerEvent) => Ref.update(workerEvents, (all) => [...all, e])
    const approvals = yield* Queue.unbounded<ApprovalRequest>()
    const handlers = makeHandlers(approvals)

    // --- the flows -----------------------------------------------------------
    const retry: M.ExecutionPolicy = {
      retryPolicy: { maxRetries: 3, backoff: { type: "exponential", initialDelayMs: 150, maxDelayMs: 1_000, multiplier: 2 } }
    }
    const report = yield* Producer.createFlow({
      lane: reportsLane,
      namespace: "demo",
      flowKind: "nightly-report",
      nodes: {
        "fetch-eu": Producer.node(Fetch, { region: "eu", rows: 1_200, ms: 350, failFirst: 0 }),
        "fetch-us": Producer.node(Fetch, { region: "us", rows: 2_000, ms: 500, failFirst: 0 }),
        "fetch-apac": Producer.node(Fetch, { region: "apac", rows: 800, ms: 300, failFirst: 2 }, { policy: retry }),
        "aggregate": Producer.node(Aggregate, { report: "nightly" }),
        "approve": Producer.node(Approve, { title: "Publish the nightly report?" }),
        "publish-eu": Producer.node(Publish, { target: "cdn-eu", ms: 300 }),
        "publish-us": Producer.node(Publish, { target: "cdn-us", ms: 8_000 }),
        "notify": Producer.node(Notify, { channel: "#reports" })
      },
      edges: [
        { from: "fetch-eu", to: "aggregate" },
        { from: "fetch-us", to: "aggregate" },
        { from: "fetch-apac", to: "aggregate" },
        { from: "aggregate", to: "approve" },
        { from: "approve", to: "publish-eu" },
        { from: "approve", to: "publish-us" },
        { from: "publish-eu", to: "notify" },
        { from: "publish-us", to: "notify" }
      ],
      joins: {
        aggregate: { _tag: "quorum", k: 2, onSatisfied: "let_run" },
        notify: { _tag: "any_of", onSatisfied: "cancel_remaining" }
      }
    })
    const reindex = yield* Producer.createFlow({
      lane: batchLane,
      namespace: "demo",
      flowKind: "reindex",
      nodes: {
        "reindex-1": Producer.node(Reindex, { shard: 1 }),
        "reindex-2": Producer.node(Reindex, { shard: 2 }),
        "reindex-3": Producer.node(Reindex, { shard: 3 }),
        "reindex-4": Producer.node(Reindex, { shard: 4 })
      }
    })
    const steps: ReadonlyArray<Step> = [
      ...Object.entries<ExecutionId>(report.executions).map(([name, id]) => ({ name, flow: "report" as const, id })),
      ...Object.entries<ExecutionId>(reindex.executions).map(([name, id]) => ({ name, flow: "reindex" as const, id }))
    ]

    // --- workers, approver, display -----------------------------------------
    // a lease long enough that a machine under load never lets one lapse (cancellations reach the
    // handlers at once whatever the lease)
    const common = { leaseTtl: "15 seconds", gracePeriod: "2 seconds", onEvent, idle: fastIdle } as const
    // Worker.start checks each worker's settings before it forks it in this scope
    const workers = yield* Effect.forEach(
      Array.from({ length: Math.max(1, options.workers) }, (_, i) => i + 1),
      (i) =>
        Worker.start({
          ...common,
          lanes: [reportsLane],
          handlers: handlers.report,
          concurrency: 2,
          workerId: `worker-${i}`,
          workerInstanceId: `worker-${i}-${run}`
        })
    )
    const batchWorker = yield* Worker.start({
      ...common,
      lanes: [batchLane],
      handlers: handlers.batch,
      concurrency: 2,
      workerId: "batch",
      workerInstanceId: `batch-${run}`
    })

    const approver = yield* Effect.forkScoped(Effect.gen(function*() {
      const request = yield* Queue.take(approvals)
      yield* Ref.update(localNotes, (m) => new Map(m).set(request.executionId, "token sent to alice; she approves in 0.5 s"))
      yield* Effect.sleep("500 millis")
      yield* Producer.signal({
        executionId: request.executionId,
        waitpointId: request.waitpointId,
        token: request.token,
        name: "approved",
        payload: { schema: ApprovalSignal, value: { approver: "alice" } },
        source: { type: "user", identity: "alice" }
      })
      yield* Ref.update(localNotes, (m) => {
        const next = new Map(m)
        next.delete(request.executionId)
        return next
      })
    }))

    const live = !options.plain && process.stdout.isTTY === true
    const display = yield* makeDisplay(backend, { steps, localNotes, started }, live)
    // redrawn when the engine reports something on the demo's lanes (the event log), and on a slow
    // clock for the live board's elapsed time
    const changes = Stream.merge(
      Events.stream(Events.lane(Ids.unsafe.laneId(reportsLane)), { pollInterval: "250 millis" }),
      Events.stream(Events.lane(Ids.unsafe.laneId(batchLane)), { pollInterval: "250 millis" })
    )
    const redraws = live ? Stream.merge(changes, Stream.tick("250 millis")) : changes
    const displayFiber = yield* Effect.forkScoped(
      redraws.pipe(Stream.groupedWithin(64, "20 millis"), Stream.runForEach(() => display.tick))
    )

    // --- wait for the report, cancel the re-index once approved --------------
    const ids = report.executions
    yield* Producer.awaitTerminal(ids.approve, { timeout: "20 seconds", pollInterval: "25 millis" })
    const cancelStart = yield* Clock.currentTimeMillis
    const cancelled = yield* Producer.cancelFlow(reindex.flowId, {
      policy: "CancelAll",
      wait: "3 seconds",
      reason: "superseded by tonight's full report"
    })
    const cancelMs = (yield* Clock.currentTimeMillis) - cancelStart
    for (const id of Object.values<ExecutionId>(report.executions)) {
      yield* Producer.awaitTerminal(id, { timeout: "20 seconds", pollInterval: "25 millis" })
    }
    // the workers' own view: each cancelled attempt was stopped (or had just completed)
    yield* waitFor(
      Effect.map(Ref.get(workerEvents), (events) =>
        [ids["publish-us"], reindex.executions["reindex-1"], reindex.executions["reindex-2"]].every((id) =>
          events.some((e) => e.executionId === id && (e._tag === "LeaseLost" || e._tag === "Completed"))
        )),
      Duration.seconds(3)
    )
    yield* Fiber.interrupt(displayFiber)
    yield* display.tick // the last changes
    yield* Fiber.interrupt(approver)
    yield* Effect.forEach([...workers, batchWorker], Fiber.interrupt, { concurrency: "unbounded", discard: true })

    // --- summary: every step read afresh from the engine --------------------------
    const views = yield* readViews(backend, steps)
    const elapsed = ((yield* Clock.currentTimeMillis) - started) / 1000
    yield* Console.log(`\nSummary (${elapsed.toFixed(1)} s)\n`)
    yield* printSummary(backend, views)
    yield* Console.log(
      `  re-index sub-flow: ${cancelled.memberExecutionIds.length} members cancelled (CancelAll, WaitTimeout 3 s) in ${cancelMs} ms`
    )
    const ops = yield* counterTotal("flowfabric_engine_operations_total", () => true)
    const opErrors = yield* counterTotal("flowfabric_engine_operation_errors_total", () => true)
    yield* Console.log(
      `  engine operations: ${ops}, ${opErrors} answered with an error (e.g. a renewal that found its execution cancelled)`
    )
    const events = yield* Ref.get(workerEvents)
    const count = (tag: Worker.WorkerEvent["_tag"]) => events.filter((e) => e._tag === tag).length
    yield* Console.log(
      `  the workers' own events (this process): claimed ${count("Claimed")}, completed ${count("Completed")}, ` +
        `failed ${count("Failed")}, suspended ${count("Suspended")}, stopped on a lost lease ${count("LeaseLost")}`
    )

    // The demo checks its own story, so a broken engine does not pass silently.
    const stateOf = (id: ExecutionId) => views.find((v) => v.step.id === id)?.state
    const expectations: ReadonlyArray<readonly [string, boolean]> = [
      ["notify completed", stateOf(ids.notify) === "completed"],
      ["publish-us cancelled by the any-of join", stateOf(ids["publish-us"]) === "cancelled"],
      ["fetch-apac retried and completed", stateOf(ids["fetch-apac"]) === "completed"],
      ["approval resumed by its signal", stateOf(ids.approve) === "completed"],
      [
        "re-index sub-flow cancelled",
        Object.values<ExecutionId>(reindex.executions).every((id) => stateOf(id) === "cancelled")
      ]
    ]
    const broken = expectations.filter(([, ok]) => !ok).map(([name]) => name)
    if (broken.length > 0) return yield* new DemoError({ message: `unexpected outcome: ${broken.join("; ")}` })
    yield* Console.log("\nAll good: every step ended as intended.")
  }))

/** Polls eagerly (5 ms doubling up to 50 ms): the demo is about latency, not about sparing an idle server. */
const fastIdle = Schedule.exponential("5 millis", 2).pipe(Schedule.union(Schedule.spaced("50 millis")))

const waitFor = (condition: Effect.Effect<boolean>, limit: Duration.Duration) =>
  Effect.gen(function*() {
    const deadline = (yield* Clock.currentTimeMillis) + Duration.toMillis(limit)
    while (!(yield* condition) && (yield* Clock.currentTimeMillis) < deadline) yield* Effect.sleep("25 millis")
  })

// ---------------------------------------------------------------------------
// Backends
// ---------------------------------------------------------------------------

type BackendLayer = Layer.Layer<EngineBackend | Maintenance, unknown>

const unavailable = (backend: string, cause: unknown) =>
  new DemoError({
    message: `the ${backend} backend is not available in this build (${
      cause instanceof Error ? cause.message : String(cause)
    }); run the demo with --backend memory`
  })

/**
 * Waitpoint tokens are HMACs: a server keystore needs a secret at its first start (the memory engine
 * makes its own). The first run on a server stores this one; later runs keep the stored one.
 */
const serverHmacSecret = (): HmacSecret => ({ kid: "demo", secretHex: Redacted.make(randomBytes(32).toString("hex")) })

const backendLayer = (options: DemoOptions): Effect.Effect<BackendLayer, DemoError> => {
  switch (options.backend) {
    case "memory":
      return Effect.succeed(MemoryBackend.layer())
    case "valkey":
      return Effect.tryPromise({
        try: () => import("../valkey/index.js"),
        catch: (e) => unavailable("valkey", e)
      }).pipe(
        Effect.map((m): BackendLayer =>
          m.ValkeyBackend.layer({
            ...(Option.isSome(options.url) ? { url: options.url.value } : {}),
            hmacSecret: serverHmacSecret()
          })
        )
      )
    case "postgres": {
      if (Option.isNone(options.url)) {
        return Effect.fail(new DemoError({ message: "--backend postgres needs --url postgres://user:pass@host:port/db" }))
      }
      const url = Redacted.make(options.url.value)
      return Effect.tryPromise({
        try: () => import("../postgres/index.js"),
        catch: (e) => unavailable("postgres", e)
      }).pipe(Effect.map((m): BackendLayer => m.PostgresBackend.layerPg({ url, hmacSecret: serverHmacSecret() })))
    }
  }
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------

const command = Command.make(
  "demo",
  {
    backend: Options.choice("backend", ["memory", "valkey", "postgres"]).pipe(
      Options.withDefault("memory" as const),
      Options.withDescription("the engine to run on (memory is embedded)")
    ),
    url: Options.text("url").pipe(Options.optional, Options.withDescription("server URL for valkey / postgres")),
    workers: Options.integer("workers").pipe(Options.withDefault(3), Options.withDescription("report workers")),
    plain: Options.boolean("plain").pipe(Options.withDescription("print a timeline instead of a live board")),
    verbose: Options.boolean("verbose").pipe(Options.withDescription("show the engine's debug logs"))
  },
  (options) =>
    Effect.gen(function*() {
      const layer = yield* backendLayer(options)
      const reconciler = Reconciler.layer({
        intervals: {
          expireLeases: "200 millis",
          promoteDelayed: "25 millis",
          expireAttempts: "250 millis",
          expireSuspensions: "250 millis",
          expirePendingWaitpoints: "1 second",
          expireExecutions: "500 millis",
          reconcileDependencies: "500 millis",
          drainCancelBacklog: "100 millis",
          resetBudgets: "5 seconds"
        }
      })
      yield* runDemo(options).pipe(
        Effect.provide(Layer.provideMerge(reconciler, layer)),
        Logger.withMinimumLogLevel(options.verbose ? LogLevel.Debug : LogLevel.Error)
      )
    })
).pipe(Command.withDescription("A nightly-report pipeline on flowfabric: fan-out, joins, retries, approvals, cancellation"))

const cli = Command.run(command, { name: "flowfabric-demo", version: "0.1.0" })

cli(process.argv).pipe(Effect.provide(NodeContext.layer), NodeRuntime.runMain)
