/**
 * Runs the maintenance passes of a backend (docs/design/maintenance.md): one scoped
 * fiber per pass, each on its own `Schedule`, at most `concurrency` runs at once,
 * with bounded batches, a retry schedule for transient errors, logs, spans and
 * `Metric`s of what each pass did. It stops with its scope.
 *
 * ```ts
 * const AppLive = Reconciler.layer({ intervals: { promoteDelayed: "250 millis" } }).pipe(
 *   Layer.provideMerge(MemoryBackend.layer())
 * )
 * ```
 *
 * @since 0.1.0
 */
import type { Scope } from "effect"
import { Cause, Clock, Duration, Effect, Layer, Metric, MetricBoundaries, Schedule, Schema } from "effect"
import { type EngineError, isRetryable } from "./EngineError.js"
import { Maintenance, type PassName, passNames, type PassResult } from "./Maintenance.js"

/**
 * The default interval of each pass (see
 * docs/design/maintenance.md#the-reconciler).
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultIntervals: { readonly [K in PassName]: Duration.Duration } = {
  expireLeases: Duration.millis(1500),
  promoteDelayed: Duration.millis(750),
  expireAttempts: Duration.seconds(2),
  expireSuspensions: Duration.seconds(2),
  expirePendingWaitpoints: Duration.seconds(5),
  expireExecutions: Duration.seconds(5),
  reconcileDependencies: Duration.seconds(15),
  drainCancelBacklog: Duration.seconds(1),
  resetBudgets: Duration.seconds(15),
  trimRetention: Duration.seconds(60)
}

/**
 * The default retry of a pass that failed with a retryable error
 * (`EngineError.isRetryable`): exponential from 50 ms, at most 5 retries.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultRetrySchedule: Schedule.Schedule<unknown, EngineError> = Schedule.exponential("50 millis", 2).pipe(
  Schedule.intersect(Schedule.recurs(5))
)

/**
 * @since 0.1.0
 * @category models
 */
export interface ReconcilerOptions {
  /** The interval of a pass (default `defaultIntervals`); a pass runs at once at start, then every interval. */
  readonly intervals?: { readonly [K in PassName]?: Duration.DurationInput } | undefined
  /** A whole `Schedule` for a pass; takes precedence over its interval. */
  readonly schedules?: { readonly [K in PassName]?: Schedule.Schedule<unknown> } | undefined
  /** The passes to run (default: every pass of `passNames`). */
  readonly passes?: ReadonlyArray<PassName> | undefined
  /** Items per run of a pass (default: the backend's, 1 000). */
  readonly batchSize?: number | undefined
  /**
   * How many times in a row a pass that reports `more: true` runs again at
   * once before it waits for its schedule (default 100), so that one pass
   * cannot hold a backend forever.
   */
  readonly maxConsecutiveRuns?: number | undefined
  /** Retries of a run that failed with a retryable error (default `defaultRetrySchedule`). */
  readonly retrySchedule?: Schedule.Schedule<unknown, EngineError> | undefined
  /**
   * How many runs of passes may be in flight at once (default `defaultConcurrency`, 2); the
   * others wait for a run to end. Each run in flight holds a connection of a Postgres layer's pool:
   * unbounded, the reconciler's start opened one per pass, cold connections that the next
   * statements of the process (an idle pickup's) then met.
   */
  readonly concurrency?: number | undefined
}

/**
 * The runs of passes in flight at once by default (`ReconcilerOptions.concurrency`): two, so
 * that one long run (a batch of 1 000) does not hold back a timer pass due meanwhile.
 *
 * @since 0.1.0
 * @category defaults
 */
export const defaultConcurrency = 2

/**
 * A reconciler that cannot start: an unknown pass, an interval that is not
 * a positive duration, a batch size or run limit below 1.
 *
 * @since 0.1.0
 * @category errors
 */
export class ReconcilerError extends Schema.TaggedError<ReconcilerError>()("ReconcilerError", {
  detail: Schema.String
}) {
  override get message(): string {
    return `reconciler: ${this.detail}`
  }
}

const positiveInteger = (n: number | undefined) => n === undefined || (Number.isSafeInteger(n) && n >= 1)

/** The options' problems, before anything runs. */
const checkOptions = (options: ReconcilerOptions | undefined): Effect.Effect<void, ReconcilerError> =>
  Effect.suspend(() => {
    const fail = (detail: string) => Effect.fail(new ReconcilerError({ detail }))
    const known = new Set<string>(passNames)
    for (const name of [
      ...(options?.passes ?? []),
      ...Object.keys(options?.intervals ?? {}),
      ...Object.keys(options?.schedules ?? {})
    ]) {
      if (!known.has(name)) return fail(`unknown pass "${name}" (passes: ${passNames.join(", ")})`)
    }
    for (const [name, interval] of Object.entries(options?.intervals ?? {})) {
      if (interval === undefined) continue
      const decoded = Duration.decodeUnknown(interval)
      if (decoded._tag === "None" || !Duration.greaterThan(decoded.value, Duration.zero)) {
        return fail(`the interval of ${name} must be a positive duration, got ${JSON.stringify(interval)}`)
      }
    }
    if (!positiveInteger(options?.batchSize)) return fail(`batchSize must be an integer >= 1, got ${options?.batchSize}`)
    if (!positiveInteger(options?.concurrency)) return fail(`concurrency must be an integer >= 1, got ${options?.concurrency}`)
    if (!positiveInteger(options?.maxConsecutiveRuns)) {
      return fail(`maxConsecutiveRuns must be an integer >= 1, got ${options?.maxConsecutiveRuns}`)
    }
    return Effect.void
  })

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/**
 * Runs of each pass, tagged `pass`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const passRunsTotal = Metric.counter("flowfabric_reconciler_pass_runs_total", {
  description: "Maintenance pass runs, by pass",
  incremental: true
})

/**
 * Items changed by each pass, tagged `pass`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const passProcessedTotal = Metric.counter("flowfabric_reconciler_processed_total", {
  description: "Items a maintenance pass changed, by pass",
  incremental: true
})

/**
 * Runs that failed after their retries, tagged `pass` and `error_tag`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const passErrorsTotal = Metric.counter("flowfabric_reconciler_pass_errors_total", {
  description: "Maintenance pass runs that failed after their retries, by pass and error tag",
  incremental: true
})

/**
 * Duration of each run in milliseconds, tagged `pass`.
 *
 * @since 0.1.0
 * @category metrics
 */
export const passDurationMs = Metric.histogram(
  "flowfabric_reconciler_pass_duration_ms",
  MetricBoundaries.exponential({ start: 0.1, factor: 2, count: 18 }),
  "Maintenance pass duration in milliseconds, by pass"
)

// ---------------------------------------------------------------------------
// Running passes
// ---------------------------------------------------------------------------

/**
 * One run of one pass: retried on retryable errors, measured, logged at
 * debug level and counted.
 */
const runPass = (
  maintenance: Maintenance.Service,
  name: PassName,
  options: ReconcilerOptions | undefined
): Effect.Effect<PassResult, EngineError> => {
  const runs = Metric.tagged(passRunsTotal, "pass", name)
  const processed = Metric.tagged(passProcessedTotal, "pass", name)
  const duration = Metric.tagged(passDurationMs, "pass", name)
  const batch = options?.batchSize === undefined ? undefined : { batchSize: options.batchSize }
  return Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const result = yield* maintenance[name](batch).pipe(
      Effect.retry({ schedule: options?.retrySchedule ?? defaultRetrySchedule, while: isRetryable })
    )
    const elapsed = (yield* Clock.currentTimeMillis) - start
    yield* Metric.increment(runs)
    yield* Metric.incrementBy(processed, result.processed)
    yield* Metric.update(duration, elapsed)
    yield* Effect.annotateCurrentSpan({ processed: result.processed, more: result.more })
    if (result.processed > 0 || result.more) {
      yield* Effect.logDebug(`${name}: ${result.processed} processed${result.more ? ", more due" : ""}`).pipe(
        Effect.annotateLogs({ pass: name, processed: result.processed, more: result.more })
      )
    }
    return result
  }).pipe(
    Effect.tapError((e) =>
      Effect.zipRight(
        Metric.increment(Metric.tagged(Metric.tagged(passErrorsTotal, "pass", name), "error_tag", e._tag)),
        Effect.logWarning(`${name} failed`, e).pipe(Effect.annotateLogs({ pass: name }))
      )
    ),
    Effect.withSpan(`Reconciler.${name}`, { attributes: { pass: name }, captureStackTrace: false })
  )
}

/** Runs one run of a pass once a run may start (`ReconcilerOptions.concurrency`). */
type Gate = <A, E>(run: Effect.Effect<A, E>) => Effect.Effect<A, E>

/**
 * Runs a pass, and again at once while it reports `more: true` (at most
 * `maxConsecutiveRuns` runs). Errors are logged and counted, never fatal.
 */
const drainPass = (
  maintenance: Maintenance.Service,
  name: PassName,
  options: ReconcilerOptions | undefined,
  gate: Gate
): Effect.Effect<PassResult | undefined> => {
  const max = Math.max(1, options?.maxConsecutiveRuns ?? 100)
  const loop = (n: number): Effect.Effect<PassResult, EngineError> =>
    Effect.flatMap(gate(runPass(maintenance, name, options)), (r) => (r.more && n + 1 < max ? loop(n + 1) : Effect.succeed(r)))
  return loop(0).pipe(
    // the failure was logged and counted by `runPass`; the next tick tries again
    Effect.catchAll(() => Effect.succeed(undefined)),
    Effect.catchAllDefect((defect) =>
      Effect.as(Effect.logError(`${name} crashed`, Cause.die(defect)).pipe(Effect.annotateLogs({ pass: name })), undefined)
    )
  )
}

/** The shortest wait before a pass runs again for a timer its last run reported past (a clock skew). */
const STALE_DUE_RETRY_MS = 5

/**
 * A pass on its interval, run earlier when its last run reported a timer due before the next
 * interval (`PassResult.nextDueAt`): the timer's transition happens at its due time.
 */
const timedPass = (
  maintenance: Maintenance.Service,
  name: PassName,
  options: ReconcilerOptions | undefined,
  gate: Gate
): Effect.Effect<never> => {
  const interval = Duration.toMillis(Duration.decode(options?.intervals?.[name] ?? defaultIntervals[name]))
  return Effect.gen(function*() {
    // runs in a row that found nothing although a timer was reported due (the store's clock lags ours)
    let stale = 0
    for (;;) {
      const r = yield* drainPass(maintenance, name, options, gate)
      const now = yield* Clock.currentTimeMillis
      let wait = interval
      const due = r?.nextDueAt
      if (due !== undefined) {
        if (due > now) {
          stale = 0
          wait = Math.min(interval, due - now)
        } else if (r!.processed > 0) {
          stale = 0
          wait = 1
        } else {
          wait = Math.min(interval, STALE_DUE_RETRY_MS * 2 ** stale++)
        }
      }
      yield* Effect.sleep(Duration.millis(wait))
    }
  })
}

/**
 * Checks the options, then forks one fiber per pass in the current scope;
 * each fiber runs its pass at once and then on its schedule until the scope
 * closes, at most `concurrency` runs of passes at once (the others wait their
 * turn). Bad options fail `start` with a `ReconcilerError`; once started,
 * a pass's failures are logged and counted, never fatal.
 *
 * @since 0.1.0
 * @category constructors
 */
export const start = (options?: ReconcilerOptions): Effect.Effect<void, ReconcilerError, Maintenance | Scope.Scope> =>
  Effect.gen(function*() {
    yield* checkOptions(options)
    const maintenance = yield* Maintenance
    const passes = options?.passes ?? passNames
    const permits = yield* Effect.makeSemaphore(options?.concurrency ?? defaultConcurrency)
    const gate: Gate = permits.withPermits(1)
    for (const name of passes) {
      const schedule = options?.schedules?.[name]
      const run = schedule === undefined ?
        timedPass(maintenance, name, options, gate) :
        drainPass(maintenance, name, options, gate).pipe(Effect.repeat(schedule))
      yield* run.pipe(Effect.annotateLogs({ reconciler: name }), Effect.forkScoped)
    }
    yield* Effect.logDebug(`reconciler started: ${passes.join(", ")}`)
  })

/**
 * The reconciler as a layer: requires `Maintenance`, provides nothing, runs
 * while the layer's scope is open. Bad options fail the layer's build (the
 * application's start) with a `ReconcilerError`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options?: ReconcilerOptions): Layer.Layer<never, ReconcilerError, Maintenance> =>
  Layer.scopedDiscard(start(options))

/**
 * Runs every pass once, in `passNames` order (a pass that reports
 * `more: true` runs again until it does not, at most `maxConsecutiveRuns`
 * times), and returns one aggregated result per pass. Errors are returned.
 * Useful in tests and demos.
 *
 * @since 0.1.0
 * @category combinators
 */
export const runOnce = (
  options?: Omit<ReconcilerOptions, "intervals" | "schedules">
): Effect.Effect<ReadonlyArray<PassResult>, EngineError | ReconcilerError, Maintenance> =>
  Effect.gen(function*() {
    yield* checkOptions(options)
    const maintenance = yield* Maintenance
    const max = Math.max(1, options?.maxConsecutiveRuns ?? 100)
    const results: Array<PassResult> = []
    for (const name of options?.passes ?? passNames) {
      let processed = 0
      let more = true
      for (let i = 0; more && i < max; i++) {
        const r = yield* runPass(maintenance, name, options)
        processed += r.processed
        more = r.more
      }
      results.push({ pass: name, processed, more })
    }
    return results
  })
