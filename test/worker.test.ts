import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Metric, MetricState, Option, Schedule, Tracer } from "effect"
import { EngineBackend, operationNames } from "../src/EngineBackend.js"
import * as Ids from "../src/Ids.js"
import { instrument } from "../src/internal/observability.js"
import * as MemoryBackend from "../src/MemoryBackend.js"
import * as Producer from "../src/Producer.js"
import * as Worker from "../src/Worker.js"
import { Add, claimOne, isState, newLane } from "./worker/helpers.js"
import { workerSuite } from "./worker/suite.js"

workerSuite("memory", MemoryBackend.layer())

/** A tracer that keeps every span it makes. */
const recordingTracer = Effect.map(Effect.tracer, (builtIn) => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = builtIn.span(name, parent, context, links, startTime, kind, options)
      spans.push(span)
      return span
    },
    context: (f, fiber) => builtIn.context(f, fiber)
  })
  return { tracer, spans }
})

const counter = (name: string, tags: Record<string, string>) =>
  Effect.map(Metric.snapshot, (pairs) => {
    let total = 0
    for (const p of pairs) {
      if (
        p.metricKey.name === name &&
        Object.entries(tags).every(([k, v]) => p.metricKey.tags.some((t) => t.key === k && t.value === v)) &&
        MetricState.isCounterState(p.metricState)
      ) total += Number(p.metricState.count)
    }
    return total
  })

describe("observability", () => {
  it.effect("with a tracer installed, every operation runs in a span EngineBackend.<op> with its attributes", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordingTracer
      yield* Effect.gen(function*() {
        const backend = yield* EngineBackend
        const lane = yield* newLane()
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        const handle = yield* claimOne(lane)
        yield* backend.complete(handle, {})
        yield* Effect.flip(backend.renew(handle))
        const byName = (name: string) => spans.filter((s) => s.name === name)
        expect(byName("EngineBackend.createExecution")[0]?.attributes.get("execution_id")).toBe(id)
        expect(byName("EngineBackend.claim")[0]?.attributes.get("lane")).toBe(lane)
        const complete = byName("EngineBackend.complete")[0]
        expect(Object.fromEntries(complete?.attributes ?? [])).toMatchObject({
          backend: "memory",
          execution_id: id,
          lane,
          attempt_index: 0,
          handle_kind: "fresh"
        })
        const renew = byName("EngineBackend.renew")[0]
        expect(renew?.status._tag === "Ended" && renew.status.exit._tag === "Failure").toBe(true)
        // The producer's own span is the parent of the operation it ran.
        const submit = byName("Producer.submit")[0]
        const create = byName("EngineBackend.createExecution")[0]
        expect(Option.map(create!.parent, (p) => p.spanId)).toEqual(Option.some(submit!.spanId))
      }).pipe(Effect.withTracer(tracer), Effect.provide(MemoryBackend.layer()))
    }))

  it.effect("instrument wraps every operation of operationNames", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordingTracer
      const stub = Object.fromEntries([
        ["backendLabel", "memory"],
        ...operationNames.map((op) => [op, () => Effect.succeed(op)] as const)
      ]) as unknown as EngineBackend.Service
      const service = instrument(stub)
      expect(service.backendLabel).toBe("memory")
      for (const op of operationNames) {
        const fn = service[op] as unknown as () => Effect.Effect<string>
        expect(yield* fn().pipe(Effect.withTracer(tracer))).toBe(op)
      }
      expect(spans.map((s) => s.name)).toEqual(operationNames.map((op) => `EngineBackend.${op}`))
    }))

  it.effect("operations feed counters by op and backend, errors by tag, with or without a tracer", () =>
    Effect.gen(function*() {
      const callsBefore = yield* counter("flowfabric_engine_operations_total", { op: "describeExecution", backend: "memory" })
      const errorsBefore = yield* counter("flowfabric_engine_operation_errors_total", {
        op: "describeExecution",
        error_tag: "Validation",
        error_kind: "InvalidInput"
      })
      const backend = yield* EngineBackend
      yield* Effect.flip(backend.describeExecution(Ids.unsafe.laneId("not-an-id") as unknown as Ids.ExecutionId))
      yield* backend.describeExecution(Ids.deterministicExecutionIdSolo(Ids.unsafe.laneId("l"), "00000000-0000-4000-8000-000000000000"))
      expect((yield* counter("flowfabric_engine_operations_total", { op: "describeExecution", backend: "memory" })) - callsBefore)
        .toBe(2)
      expect(
        (yield* counter("flowfabric_engine_operation_errors_total", {
          op: "describeExecution",
          error_tag: "Validation",
          error_kind: "InvalidInput"
        })) - errorsBefore
      ).toBe(1)
    }).pipe(Effect.provide(MemoryBackend.layer())))

  it.live("the worker runs each attempt in a span and counts claims and outcomes", () =>
    Effect.gen(function*() {
      const { spans, tracer } = yield* recordingTracer
      yield* Effect.gen(function*() {
        const lane = yield* newLane()
        const before = yield* counter("flowfabric_worker_tasks_total", { kind: "add", outcome: "Completed" })
        const claimsBefore = yield* counter("flowfabric_worker_claims_total", { lane })
        const worker = yield* Effect.fork(Worker.run({
          lanes: [lane],
          handlers: [Worker.handler({ ...Add, run: (i) => Effect.succeed(i.a + i.b) })],
          idle: Schedule.spaced("10 millis"),
          workerId: "traced"
        }))
        const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
        for (let i = 0; i < 50 && !(yield* isState(id, "completed")); i++) yield* Effect.sleep("10 millis")
        yield* Fiber.interrupt(worker)
        const attempt = spans.find((s) => s.name === "Worker.attempt")
        expect(attempt?.attributes.get("execution_id")).toBe(id)
        const complete = spans.find((s) => s.name === "EngineBackend.complete")
        expect(Option.map(complete!.parent, (p) => p.spanId)).toEqual(Option.some(attempt!.spanId))
        expect((yield* counter("flowfabric_worker_tasks_total", { kind: "add", outcome: "Completed" })) - before).toBe(1)
        expect((yield* counter("flowfabric_worker_claims_total", { lane })) - claimsBefore).toBe(1)
      }).pipe(Effect.withTracer(tracer), Effect.provide(MemoryBackend.layer()))
    }), 20_000)
})
