/**
 * Trace propagation over any backend layer, with the OpenTelemetry SDK and an in-memory span
 * exporter: the producer's span context is stored with the execution, and the worker's
 * `Worker.attempt` span is its child, in the same trace (docs/observability.md).
 */
import { NodeSdk } from "@effect/opentelemetry"
import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Duration, Effect, Layer, Option, Schedule, Schema } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import type { Maintenance } from "../../src/Maintenance.js"
import * as Producer from "../../src/Producer.js"
import * as Worker from "../../src/Worker.js"

const Resize = Producer.task({
  kind: "resize",
  input: Schema.Struct({ url: Schema.String, width: Schema.Int }),
  output: Schema.Struct({ url: Schema.String })
})

const resize = Worker.handler({
  ...Resize,
  run: (input, ctx) => Effect.as(ctx.progress(50, "resizing"), { url: `${input.url}?w=${input.width}` })
})

const awaitOptions = { pollInterval: Duration.millis(10), timeout: Duration.seconds(20) }

/** Waits (real time, generous deadline) until `find` finds a finished span. */
const finished = (spans: InMemorySpanExporter, find: (s: ReadableSpan) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 2_000; i++) {
      const span = spans.getFinishedSpans().find(find)
      if (span !== undefined) return span
      yield* Effect.sleep(Duration.millis(10))
    }
    return expect.fail("span not finished in time")
  })

export const traceSuite = (name: string, backend: Layer.Layer<EngineBackend | Maintenance, unknown>) =>
  describe(`trace propagation (${name})`, () => {
    it.live("a worker's attempt span is a child of the span that created the execution (submit and createFlow)", () =>
      Effect.gen(function*() {
        const spans = new InMemorySpanExporter()
        const TelemetryLive = NodeSdk.layer(() => ({
          resource: { serviceName: "trace-propagation" },
          spanProcessor: new SimpleSpanProcessor(spans)
        }))
        const lane = `trace-${(yield* Ids.randomUuid).slice(0, 8)}`
        const AppLive = Worker.layer({ lanes: [lane], handlers: [resize], idle: Schedule.spaced("10 millis") }).pipe(
          Layer.provideMerge(backend)
        )
        yield* Effect.gen(function*() {
          const id = yield* Producer.submit(Resize, { url: "https://example.com/a.png", width: 64 }, { lane })
          const flow = yield* Producer.createFlow({
            lane,
            nodes: { only: Producer.node(Resize, { url: "https://example.com/b.png", width: 32 }) }
          })
          yield* Producer.awaitResult(Resize, id, awaitOptions)
          yield* Producer.awaitResult(Resize, flow.executions.only, awaitOptions)

          const submit = yield* finished(spans, (s) => s.name === "Producer.submit")
          const createFlow = yield* finished(spans, (s) => s.name === "Producer.createFlow")
          for (const [execution, creator] of [[id, submit], [flow.executions.only, createFlow]] as const) {
            const attempt = yield* finished(spans, (s) => s.name === "Worker.attempt" && s.attributes["execution_id"] === execution)
            expect(attempt.spanContext().traceId).toBe(creator.spanContext().traceId)
            expect(attempt.parentSpanContext?.spanId).toBe(creator.spanContext().spanId)
            // the attempt's operations are in the same trace, under the attempt
            const progress = yield* finished(spans, (s) =>
              s.name === "EngineBackend.progress" && s.attributes["execution_id"] === execution)
            expect(progress.spanContext().traceId).toBe(creator.spanContext().traceId)
            expect(progress.parentSpanContext?.spanId).toBe(attempt.spanContext().spanId)
          }
          // no span carries the stored context as an attribute
          for (const s of spans.getFinishedSpans()) {
            expect(Object.values(s.attributes).some((v) => String(v).includes(submit.spanContext().spanId))).toBe(false)
          }
        }).pipe(Effect.provide(AppLive), Effect.provide(TelemetryLive))
      }), 60_000)

    it.live("a producer outside a traced program stores no span context", () =>
      Effect.gen(function*() {
        const b = yield* EngineBackend
        const lane = `trace-${(yield* Ids.randomUuid).slice(0, 8)}`
        const id = yield* Producer.submit(Resize, { url: "https://example.com/c.png", width: 16 }, { lane })
        const input = Option.getOrThrow(yield* b.getExecutionInput(id))
        expect(input.traceParent).toBeUndefined()
      }).pipe(Effect.provide(backend)), 60_000)
  })
