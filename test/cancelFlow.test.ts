import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Exit, Fiber, Option, Ref, TestClock } from "effect"
import * as CancelFlow from "../src/CancelFlow.js"
import { EngineBackend } from "../src/EngineBackend.js"
import { NotFound, Timeout } from "../src/EngineError.js"
import * as Ids from "../src/Ids.js"
import type { FlowSnapshot } from "../src/Model.js"

const flowId = "6f9c1b2e-3d4a-4b5c-8d6e-7f8091a2b3c4" as Ids.FlowId

const snapshot = (publicFlowState: string): FlowSnapshot => ({
  flowId,
  flowKind: "dag",
  namespace: Ids.unsafe.namespace("ns"),
  publicFlowState,
  sealed: false,
  graphRevision: 0,
  nodeCount: 0,
  edgeCount: 0,
  createdAt: 0,
  lastMutationAt: 0,
  tags: {},
  edgeGroups: []
})

/** A `describeFlow` that answers from a script and counts its calls. */
const scripted = (states: ReadonlyArray<string | undefined>) =>
  Effect.map(Ref.make(0), (calls) => ({
    calls,
    backend: {
      describeFlow: () =>
        Effect.map(Ref.getAndUpdate(calls, (n) => n + 1), (n) => {
          const s = states[Math.min(n, states.length - 1)]
          return s === undefined ? Option.none() : Option.some(snapshot(s))
        })
    }
  }))

describe("cancelFlowWaitDeadline", () => {
  it("maps each wait mode to its deadline", () => {
    expect(CancelFlow.cancelFlowWaitDeadline({ _tag: "NoWait" })).toEqual(Option.none())
    expect(CancelFlow.cancelFlowWaitDeadline({ _tag: "WaitTimeout", timeout: Duration.seconds(7) })).toEqual(
      Option.some(Duration.seconds(7))
    )
    expect(CancelFlow.cancelFlowWaitDeadline({ _tag: "WaitIndefinite" })).toEqual(Option.some(Duration.seconds(300)))
  })
})

describe("waitForFlowCancellation", () => {
  it.effect("ends on the first poll when the flow already reads cancelled", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["cancelled"])
      yield* CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.seconds(5))
      expect(yield* Ref.get(calls)).toBe(1)
    }))

  it.effect("polls every 100 ms until the flow reads cancelled", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["cancelling", "cancelling", "cancelling", "cancelled"])
      const fiber = yield* Effect.fork(CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.seconds(5)))
      yield* TestClock.adjust("250 millis")
      expect(yield* Ref.get(calls)).toBe(3)
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toBeUndefined()
      expect(yield* Ref.get(calls)).toBe(4)
    }))

  it.effect("ends when the flow is gone", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["open", undefined])
      const fiber = yield* Effect.fork(CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.seconds(5)))
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(calls)).toBe(2)
    }))

  it.effect("only `cancelled` ends the wait: completed and failed do not", () =>
    Effect.gen(function*() {
      const { backend } = yield* scripted(["completed", "failed", "completed"])
      const fiber = yield* Effect.fork(CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.millis(300)))
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
    }))

  it.effect("fails at the deadline with Timeout{ op: cancel_flow, elapsed: deadline }", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["cancelling"])
      const fiber = yield* Effect.fork(
        Effect.flip(CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.millis(450)))
      )
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error).toBeInstanceOf(Timeout)
      expect(error._tag).toBe("Timeout")
      if (error._tag !== "Timeout") return
      expect(error.op).toBe("cancel_flow")
      expect(Duration.toMillis(error.elapsed)).toBe(450)
      // reads at 0, 100, …, 500 ms: the deadline is checked after each read.
      expect(yield* Ref.get(calls)).toBe(6)
    }))

  it.effect("a zero deadline makes exactly one describeFlow", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["cancelling"])
      const error = yield* Effect.flip(CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.zero))
      expect(error._tag).toBe("Timeout")
      expect(yield* Ref.get(calls)).toBe(1)
    }))

  it.effect("WaitIndefinite stops at the 300 s ceiling", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["cancelling"])
      const deadline = Option.getOrThrow(CancelFlow.cancelFlowWaitDeadline({ _tag: "WaitIndefinite" }))
      // A coarse poll keeps the test fast; the deadline is what is under test.
      const fiber = yield* Effect.fork(
        Effect.flip(CancelFlow.waitForFlowCancellationWith(backend, flowId, deadline, { pollInterval: "10 seconds" }))
      )
      yield* TestClock.adjust("299 seconds")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("2 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("Timeout")
      if (error._tag === "Timeout") expect(Duration.toSeconds(error.elapsed)).toBe(300)
      expect(yield* Ref.get(calls)).toBe(31)
    }))

  it.effect("returns describeFlow's error as it is", () =>
    Effect.gen(function*() {
      const failing = { describeFlow: () => Effect.fail(new NotFound({ entity: "flow" })) }
      const error = yield* Effect.flip(CancelFlow.waitForFlowCancellationWith(failing, flowId, Duration.seconds(1)))
      expect(error).toBeInstanceOf(NotFound)
    }))

  it.effect("the poll interval is a parameter", () =>
    Effect.gen(function*() {
      const { backend, calls } = yield* scripted(["open", "open", "cancelled"])
      const fiber = yield* Effect.fork(
        CancelFlow.waitForFlowCancellationWith(backend, flowId, Duration.seconds(5), { pollInterval: "1 second" })
      )
      yield* TestClock.adjust("1500 millis")
      expect(yield* Ref.get(calls)).toBe(2)
      yield* TestClock.adjust("500 millis")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(calls)).toBe(3)
    }))

  it.effect("reads the backend from context", () =>
    Effect.gen(function*() {
      const { backend } = yield* scripted(["cancelled"])
      yield* CancelFlow.waitForFlowCancellation(flowId, Duration.seconds(1)).pipe(
        Effect.provideService(EngineBackend, backend as unknown as EngineBackend.Service)
      )
    }))
})
