/**
 * Spans and metrics around every `EngineBackend` operation (docs/observability.md). `instrument` builds a new service record whose
 * operations run in a span `EngineBackend.<op>` and feed three `Metric`s:
 * calls by operation and backend, errors by `_tag`, and a latency histogram.
 * Exporting them is the application's choice (`@effect/opentelemetry`, see
 * docs/observability.md).
 */
import type { Tracer } from "effect"
import { Cause, Clock, Context, Effect, Either, Metric, MetricBoundaries, MetricLabel, Predicate } from "effect"
import { type EngineBackend, operationNames } from "../EngineBackend.js"
import { type EngineError, isEngineError, notFound, rootCause } from "../EngineError.js"
import type * as M from "../Model.js"
import { decodeHandle } from "./handleCodec.js"
import { builtInTracer } from "./traceContext.js"

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/** Every call of an operation, tagged `op` and `backend`. */
export const operationsTotal = Metric.counter("flowfabric_engine_operations_total", {
  description: "EngineBackend operations called, by op and backend",
  incremental: true
})

/** Every failed call, tagged `op`, `backend`, `error_tag` (the root `_tag`, or `Defect`) and `error_kind`. */
export const operationErrorsTotal = Metric.counter("flowfabric_engine_operation_errors_total", {
  description: "EngineBackend operations that failed, by op, backend and error tag",
  incremental: true
})

/** Latency of each call in milliseconds, tagged `op` and `backend`. */
export const operationDurationMs = Metric.histogram(
  "flowfabric_engine_operation_duration_ms",
  MetricBoundaries.exponential({ start: 0.05, factor: 2, count: 20 }),
  "EngineBackend operation latency in milliseconds, by op and backend"
)

// ---------------------------------------------------------------------------
// Span attributes
// ---------------------------------------------------------------------------

export type Attributes = Record<string, string | number>

/** Operations whose first argument is an execution id. */
const BY_EXECUTION_ID: ReadonlySet<string> = new Set([
  "describeExecution",
  "resolveExecutionFlowId",
  "getExecutionResult",
  "getExecutionInput",
  "readExecutionInfo",
  "readExecutionState",
  "replayExecution"
])

const isHandle = (u: unknown): u is M.Handle =>
  Predicate.hasProperty(u, "opaque") && u.opaque instanceof Uint8Array && Predicate.hasProperty(u, "backend") &&
  typeof u.backend === "string"

const stringField = (u: unknown, key: string): string | undefined =>
  Predicate.hasProperty(u, key) && typeof u[key] === "string" ? u[key] : undefined

/**
 * The lane / execution / flow a call is about, when its argument says so.
 * Handles are decoded with the shared codec (a handle that does not decode
 * simply adds no attributes; the operation reports the error).
 */
export const attributesOf = (op: string, backend: string, args: ReadonlyArray<unknown>): Attributes => {
  const attributes: Attributes = { backend }
  const first = args[0]
  if (first === undefined) return attributes
  if (typeof first === "string") {
    if (BY_EXECUTION_ID.has(op)) attributes["execution_id"] = first
    else if (op === "describeFlow") attributes["flow_id"] = first
    else if (op === "resetBudget" || op === "getBudgetStatus") attributes["budget_id"] = first
    return attributes
  }
  if (isHandle(first)) {
    if (first.backend === "memory" || first.backend === "valkey" || first.backend === "postgres") {
      const decoded = decodeHandle(first.backend, first)
      if (Either.isRight(decoded)) {
        attributes["execution_id"] = decoded.right.executionId
        attributes["lane"] = decoded.right.laneId
        attributes["attempt_index"] = decoded.right.attemptIndex
      }
    }
    attributes["handle_kind"] = typeof first.kind === "string" ? first.kind : "invalid"
    return attributes
  }
  const executionId = stringField(first, "executionId") ?? stringField(first, "downstreamExecutionId")
  if (executionId !== undefined) attributes["execution_id"] = executionId
  const lane = stringField(first, "lane") ?? stringField(first, "laneId")
  if (lane !== undefined) attributes["lane"] = lane
  const flowId = stringField(first, "flowId")
  if (flowId !== undefined) attributes["flow_id"] = flowId
  if (op === "claimFromReclaim" && Predicate.hasProperty(first, "grant")) {
    const grantExecution = stringField(first.grant, "executionId")
    const grantLane = stringField(first.grant, "laneId")
    if (grantExecution !== undefined) attributes["execution_id"] = grantExecution
    if (grantLane !== undefined) attributes["lane"] = grantLane
  }
  return attributes
}

// ---------------------------------------------------------------------------
// What a NotFound looked for
// ---------------------------------------------------------------------------

/** The argument field that holds the id of each kind of `NotFound`. */
const ID_FIELDS: Readonly<Record<string, { readonly attribute: string; readonly field: RegExp }>> = {
  execution: { attribute: "execution_id", field: /^(?:e|.+E)xecutionId$/ },
  stream: { attribute: "execution_id", field: /^executionId$/ },
  attempt: { attribute: "execution_id", field: /^executionId$/ },
  flow: { attribute: "flow_id", field: /^flowId$/ },
  budget: { attribute: "budget_id", field: /^budgetId$/ },
  quota_policy: { attribute: "quota_policy_id", field: /^quotaPolicyId$/ }
}

/**
 * A backend reports `NotFound` with the kind of thing it missed; the id comes
 * from the caller's argument, when exactly one argument field can hold it
 * (an edge names two executions: which one is missing is not guessed).
 */
const namingWhatWasNotFound = (op: string, backend: string, args: ReadonlyArray<unknown>) =>
(e: EngineError): EngineError => {
  if (e._tag !== "NotFound" || e.id !== undefined) return e
  const where = ID_FIELDS[e.entity]
  const first = args[0]
  if (where === undefined || first === undefined || first === null) return e
  if (typeof first === "string" || isHandle(first)) {
    const id = attributesOf(op, backend, args)[where.attribute]
    return typeof id === "string" ? notFound(e.entity, id) : e
  }
  if (typeof first !== "object") return e
  const ids = Object.entries(first).filter(([k, v]) => typeof v === "string" && where.field.test(k))
  return ids.length === 1 ? notFound(e.entity, ids[0]![1] as string) : e
}

// ---------------------------------------------------------------------------
// instrument
// ---------------------------------------------------------------------------

type AnyOperation = (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, EngineError>

const errorTags = (cause: Cause.Cause<EngineError>): { readonly tag: string; readonly kind: string } => {
  const failure = Cause.failureOption(cause)
  if (failure._tag === "Some") {
    const e = failure.value
    if (isEngineError(e)) {
      const root = rootCause(e)
      return { tag: root._tag, kind: stringField(root, "kind") ?? "" }
    }
    return { tag: "Unknown", kind: "" }
  }
  return { tag: "Defect", kind: "" }
}

// Effect's built-in tracer (`builtInTracer`) keeps spans in memory and exports nothing. While it
// is the current tracer, operations skip their span (a span costs several microseconds, as much
// as a whole in-memory operation) and only feed the metrics; install any other tracer
// (`@effect/opentelemetry`, a test tracer) and every operation gets its span.

/**
 * `Effect.withSpan`, skipped while the built-in tracer is the current one (see above). `parent`,
 * when it gives a span, is the span's parent instead of the current span.
 */
export const withSpanWhenTraced = (
  name: string,
  attributes: () => Attributes,
  parent?: () => Tracer.AnySpan | undefined
) =>
<A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiberRuntime((fiber) => {
    if (fiber.currentTracer === builtInTracer) return self
    const p = parent?.()
    return Effect.withSpan(self, name, {
      attributes: attributes(),
      captureStackTrace: false,
      ...(p === undefined ? {} : { parent: p })
    })
  })

/**
 * Effect's live clock (the one of its default services): its nanoseconds are the process's
 * monotonic time (`process.hrtime.bigint`), the same time `performance.now()` reads without a
 * BigInt. Another clock (`TestClock`) is read as it is.
 */
const liveClock: Clock.Clock = Effect.runSync(Effect.clock)

const wrap = (op: string, backend: string, fn: AnyOperation): AnyOperation => {
  const tags: ReadonlyArray<MetricLabel.MetricLabel> = [MetricLabel.make("op", op), MetricLabel.make("backend", backend)]
  const errorTagsCache = new Map<string, ReadonlyArray<MetricLabel.MetricLabel>>()
  const errorLabels = (tag: string, kind: string) => {
    const key = `${tag}\u0000${kind}`
    let labels = errorTagsCache.get(key)
    if (labels === undefined) {
      labels = [...tags, MetricLabel.make("error_tag", tag), MetricLabel.make("error_kind", kind)]
      errorTagsCache.set(key, labels)
    }
    return labels
  }
  const spanName = `EngineBackend.${op}`
  /** The time in ms on `clock`'s scale, for a duration: `performance.now()` for the live clock (no BigInt per reading). */
  const msOn = (clock: Clock.Clock): number =>
    clock === liveClock ? performance.now() : Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
  // One fiber-runtime step and one match per call: this wrapper sits on every operation, and
  // `onExit` (an uninterruptible region) cost as much as a whole in-memory operation.
  return (...args) =>
    Effect.withFiberRuntime((fiber) => {
      const clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
      const start = msOn(clock)
      const record = () => {
        operationsTotal.unsafeUpdate(1, tags)
        operationDurationMs.unsafeUpdate(msOn(clock) - start, tags)
      }
      const measured = Effect.matchCauseEffect(fn(...args), {
        onFailure: (cause) => {
          record()
          if (!Cause.isInterruptedOnly(cause)) {
            const { kind, tag } = errorTags(cause)
            operationErrorsTotal.unsafeUpdate(1, errorLabels(tag, kind))
          }
          return Effect.failCause(Cause.map(cause, namingWhatWasNotFound(op, backend, args)))
        },
        onSuccess: (value) => {
          record()
          return Effect.succeed(value)
        }
      })
      return fiber.currentTracer === builtInTracer ?
        measured :
        Effect.withSpan(measured, spanName, { attributes: attributesOf(op, backend, args), captureStackTrace: false })
    })
}

/**
 * A new service whose every operation (each name of `operationNames`, and any
 * other function the record carries) runs in a span `EngineBackend.<op>`
 * with `backend`, `lane`, `execution_id`, `flow_id` attributes when known,
 * and feeds `operationsTotal`, `operationErrorsTotal` and
 * `operationDurationMs`. A `NotFound` gets the id the caller passed (see
 * `namingWhatWasNotFound`); values are otherwise copied as they are.
 */
export const instrument = (service: EngineBackend.Service): EngineBackend.Service => {
  const backend = service.backendLabel
  const source: Record<string, unknown> = { ...service }
  const out: Record<string, unknown> = { ...service }
  const names = new Set<string>(operationNames)
  for (const [key, value] of Object.entries(source)) {
    if (typeof value === "function") names.add(key)
  }
  for (const op of names) {
    const fn = source[op]
    if (typeof fn === "function") out[op] = wrap(op, backend, fn as AnyOperation)
  }
  return out as unknown as EngineBackend.Service
}
