/**
 * The span context a producer stores with an execution, so that the worker's attempt span joins
 * the producer's trace (docs/observability.md, "One trace from producer to worker"). On the wire
 * it is a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`); stored, it is compact: the trace
 * id, span id and flags as 50 lower-case hex digits.
 */
import { Effect, Option, Tracer } from "effect"

/**
 * Effect's built-in tracer: it keeps spans in memory and exports nothing (see
 * `withSpanWhenTraced` in ./observability.ts).
 */
export const builtInTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/
const COMPACT = /^([0-9a-f]{32})([0-9a-f]{16})([0-9a-f]{2})$/
const ZERO_TRACE = "0".repeat(32)
const ZERO_SPAN = "0".repeat(16)

/** Whether `s` is a `traceparent` of version 00 with a valid (not all-zero) trace and span id. */
export const isTraceParent = (s: string): boolean => {
  const m = TRACEPARENT.exec(s)
  return m !== null && m[1] !== ZERO_TRACE && m[2] !== ZERO_SPAN
}

/** The stored form of a valid `traceparent`. */
export const compactTraceParent = (traceParent: string): string =>
  traceParent.slice(3, 35) + traceParent.slice(36, 52) + traceParent.slice(53, 55)

/** The `traceparent` of a stored form; `undefined` for anything else. */
export const expandTraceContext = (stored: string | undefined | null): string | undefined => {
  if (stored === undefined || stored === null) return undefined
  const m = COMPACT.exec(stored)
  return m === null ? undefined : `00-${m[1]}-${m[2]}-${m[3]}`
}

/**
 * The `traceparent` of the current span, when spans are recorded (a tracer other than Effect's
 * built-in one is installed) and there is a current span; else `undefined`, and nothing is stored.
 */
export const currentTraceParent: Effect.Effect<string | undefined> = Effect.withFiberRuntime((fiber) => {
  if (fiber.currentTracer === builtInTracer) return Effect.succeed(undefined)
  return Effect.map(Effect.option(Effect.currentSpan), (span) => {
    if (Option.isNone(span)) return undefined
    const tp = `00-${span.value.traceId}-${span.value.spanId}-${span.value.sampled ? "01" : "00"}`
    return isTraceParent(tp) ? tp : undefined
  })
})

/** The span a `traceparent` names, as the parent of a span of this process. */
export const parentSpanOf = (traceParent: string | undefined): Tracer.ExternalSpan | undefined => {
  if (traceParent === undefined) return undefined
  const m = TRACEPARENT.exec(traceParent)
  if (m === null) return undefined
  return Tracer.externalSpan({ traceId: m[1]!, spanId: m[2]!, sampled: (parseInt(m[3]!, 16) & 1) === 1 })
}

/** `{ traceParent }` of an `ExecutionInput` for a stored form, `{}` without one. */
export const traceParentField = (stored: string | undefined | null): { readonly traceParent?: string } => {
  const traceParent = expandTraceContext(stored)
  return traceParent === undefined ? {} : { traceParent }
}
