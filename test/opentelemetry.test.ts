// The wiring docs/observability.md shows, with in-memory exporters: every engine operation and worker
// attempt reaches the OpenTelemetry span processor, and the engine's metrics reach the metric reader.
import { NodeSdk } from "@effect/opentelemetry"
import { describe, expect, it } from "@effect/vitest"
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { Effect, Layer, Schedule, Schema } from "effect"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Reconciler from "../src/Reconciler.js"
import * as Worker from "../src/Worker.js"
import { traceSuite } from "./support/trace.js"

const Resize = Producer.task({
  kind: "resize",
  input: Schema.Struct({ url: Schema.String, width: Schema.Int }),
  output: Schema.Struct({ url: Schema.String })
})

describe("OpenTelemetry export", () => {
  it.live("spans and metrics reach the SDK's processor and reader", () =>
    Effect.gen(function*() {
      const spans = new InMemorySpanExporter()
      const reader = new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
        exportIntervalMillis: 3_600_000
      })
      const TelemetryLive = NodeSdk.layer(() => ({
        resource: { serviceName: "image-workers" },
        spanProcessor: new SimpleSpanProcessor(spans),
        metricReader: reader
      }))
      const AppLive = Layer.mergeAll(
        Worker.layer({
          lanes: ["images"],
          handlers: [Worker.handler({ ...Resize, run: (input) => Effect.succeed({ url: `${input.url}?w=${input.width}` }) })],
          idle: Schedule.spaced("10 millis")
        }),
        Reconciler.layer()
      ).pipe(Layer.provideMerge(MemoryBackend.layer()))

      yield* Effect.gen(function*() {
        const id = yield* Producer.submit(Resize, { url: "https://example.com/cat.png", width: 640 }, { lane: "images" })
        expect(yield* Producer.awaitResult(Resize, id)).toEqual({ url: "https://example.com/cat.png?w=640" })

        const names = spans.getFinishedSpans().map((s) => s.name)
        expect(names).toContain("Producer.submit")
        expect(names).toContain("EngineBackend.createExecution")
        expect(names).toContain("Worker.attempt")
        expect(names).toContain("EngineBackend.complete")
        const complete = spans.getFinishedSpans().find((s) => s.name === "EngineBackend.complete")!
        expect(complete.attributes).toMatchObject({ backend: "memory", execution_id: id, lane: "images" })

        const collected = yield* Effect.promise(() => reader.collect())
        const metricNames = collected.resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name))
        expect(metricNames).toContain("flowfabric_engine_operations_total")
        expect(metricNames).toContain("flowfabric_engine_operation_duration_ms")
      }).pipe(Effect.provide(AppLive), Effect.provide(TelemetryLive))
    }), 30_000)
})

traceSuite("memory", MemoryBackend.layer())
