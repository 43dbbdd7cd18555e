/**
 * The producer helpers over any backend layer: typed submission and results,
 * whole flows in one call (members, edges, joins, graph revisions), signals
 * with HMAC tokens, flow cancellation with a wait mode.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Fiber, type Layer, Option, Ref, Schema, TestServices } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import type { LaneId } from "../../src/Ids.js"
import type { Maintenance } from "../../src/Maintenance.js"
import * as Producer from "../../src/Producer.js"
import { payloadOf } from "../conformance/helpers.js"
import {
  Add,
  claimOne,
  Echo,
  isState,
  makeTest,
  newLane,
  seedHmac,
  state,
  type SuiteOptions,
  utf8
} from "../worker/helpers.js"

const decoder = new TextDecoder()

/** Claims one execution of `lane` and completes it with `value` as JSON. */
const completeNext = (lane: LaneId, value: unknown) =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const handle = yield* claimOne(lane)
    yield* backend.complete(handle, { payload: utf8(JSON.stringify(value)) })
    return handle
  })

export const producerSuite = (
  name: string,
  layer: Layer.Layer<EngineBackend | Maintenance, unknown>,
  options?: SuiteOptions
): void => {
  const test = makeTest(layer, options)

  describe(`Producer (${name})`, () => {
    describe("submit and results", () => {
      test("submit stores the Schema-encoded JSON input; result decodes the typed output", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const id = yield* Producer.submit(Add, { a: 1, b: 2 }, {
            lane,
            namespace: "producer-suite",
            priority: 5,
            tags: { "app.team": "core" }
          })
          const input = Option.getOrThrow(yield* backend.getExecutionInput(id))
          expect(input).toMatchObject({ executionKind: "add", laneId: lane, payloadEncoding: "json" })
          expect(JSON.parse(decoder.decode(input.payload))).toEqual({ a: 1, b: 2 })
          expect(yield* Producer.result(Add, id)).toEqual(Option.none())
          yield* completeNext(lane, 3)
          expect(yield* Producer.result(Add, id)).toEqual(Option.some(3))
          expect(yield* Producer.awaitResult(Add, id)).toBe(3)
        }))

      test("an input the Schema rejects fails with PayloadError; a bad lane with Validation; nothing is created", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const Positive = Producer.task({
            kind: "positive",
            input: Schema.Struct({ n: Schema.Number.pipe(Schema.positive()) }),
            output: Schema.Number
          })
          const lane = yield* newLane()
          const bad = yield* Effect.flip(Producer.submit(Positive, { n: -1 }, { lane }))
          expect(bad).toMatchObject({ _tag: "PayloadError", direction: "encode" })
          expect(bad.message).toContain(`cannot encode input of "positive"`)
          const badLane = yield* Effect.flip(Producer.submit(Positive, { n: 1 }, { lane: "" }))
          expect(badLane).toMatchObject({ _tag: "Validation", kind: "InvalidInput" })
          expect((yield* backend.listLanes({ limit: 1000 })).lanes).not.toContain(lane)
        }))

      test("a result that does not decode fails with PayloadError naming the execution", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          yield* completeNext(lane, "three")
          const e = yield* Effect.flip(Producer.result(Add, id))
          expect(e).toMatchObject({ _tag: "PayloadError", direction: "decode" })
          expect(e.message).toContain(id)
        }))

      test("awaitResult fails with ExecutionNotCompleted when the execution ends otherwise; awaitTerminal times out", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          const waiting = yield* Effect.flip(Producer.awaitTerminal(id, { timeout: Duration.zero }))
          expect(waiting).toMatchObject({ _tag: "Timeout", op: "await_execution" })
          const handle = yield* claimOne(lane)
          yield* backend.fail(handle, { reason: { message: "no" }, classification: "Permanent" })
          const e = yield* Effect.flip(Producer.awaitResult(Add, id))
          expect(e).toMatchObject({ _tag: "ExecutionNotCompleted", executionId: id, publicState: "failed" })
        }))

      test("ExecutionNotCompleted says why: the failure's reason, class and category, or the cancellation's reason", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const failed = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          yield* backend.fail(yield* claimOne(lane), {
            reason: { message: "card declined", detail: new TextEncoder().encode("payment") },
            classification: "Permanent"
          })
          const e = yield* Effect.flip(Producer.awaitResult(Add, failed))
          expect(e).toMatchObject({
            _tag: "ExecutionNotCompleted",
            publicState: "failed",
            reason: "card declined",
            classification: "Permanent",
            category: "payment"
          })
          expect(e.message).toBe(`execution ${failed} ended failed (Permanent): card declined`)
          const cancelled = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          yield* backend.cancelExecution({ executionId: cancelled, reason: "order withdrawn" })
          const c = yield* Effect.flip(Producer.awaitResult(Add, cancelled))
          expect(c).toMatchObject({ _tag: "ExecutionNotCompleted", publicState: "cancelled", reason: "order withdrawn" })
          expect(c).not.toHaveProperty("classification")
        }))

      test("an idempotency key makes a second submit return the first execution", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const key = `order-${yield* Ids.randomUuid}`
          const first = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane, idempotencyKey: key })
          const second = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane, idempotencyKey: key })
          expect(second).toBe(first)
        }))

      test("awaitResult returns on the completion's event, not at its next read of the state", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const id = yield* Producer.submit(Add, { a: 1, b: 2 }, { lane })
          // without the event's wake-up it would read the state again in an hour (of any clock)
          const waiter = yield* Effect.fork(Producer.awaitResult(Add, id, { pollInterval: Duration.hours(1) }))
          yield* TestServices.provideLive(Effect.sleep(Duration.millis(100)))
          yield* completeNext(lane, 3)
          const r = yield* Fiber.join(waiter).pipe(Effect.timeout(Duration.seconds(20)), TestServices.provideLive)
          expect(r).toBe(3)
        }))

      test("awaitTerminal and awaitResult on an id no execution has: NotFound naming it", () =>
        Effect.gen(function*() {
          const id = yield* Ids.executionIdSolo(yield* newLane())
          const e = yield* Effect.flip(Producer.awaitTerminal(id))
          expect(e).toMatchObject({ _tag: "NotFound", entity: "execution", id })
          const r = yield* Effect.flip(Producer.awaitResult(Add, id))
          expect(r).toMatchObject({ _tag: "NotFound", entity: "execution", id })
        }))
    })

    describe("flows", () => {
      test("createFlow builds members, edges and join policies in one call", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const flow = yield* Producer.createFlow({
            lane,
            namespace: "producer-suite",
            flowKind: "pipeline",
            nodes: {
              a: Producer.node(Add, { a: 1, b: 1 }),
              b: Producer.node(Add, { a: 2, b: 2 }),
              c: Producer.node(Add, { a: 3, b: 3 }),
              join: Producer.node(Echo, { text: "join" }),
              last: Producer.node(Echo, { text: "last" })
            },
            edges: [
              { from: "a", to: "join" },
              { from: "b", to: "join" },
              { from: "c", to: "join" },
              { from: "join", to: "last", passOutput: true }
            ],
            joins: { join: { _tag: "quorum", k: 2, onSatisfied: "let_run" } }
          })
          const snapshot = Option.getOrThrow(yield* backend.describeFlow(flow.flowId))
          expect(snapshot).toMatchObject({ flowKind: "pipeline", nodeCount: 5, edgeCount: 4, graphRevision: 9 })
          const group = snapshot.edgeGroups.find((g) => g.downstreamExecutionId === flow.executions.join)
          expect(group).toMatchObject({ policy: { _tag: "quorum", k: 2 }, totalDeps: 3, groupState: "pending" })
          for (const name of ["a", "b", "c", "join", "last"] as const) {
            expect(Ids.executionPartition(flow.executions[name])).toBe(Ids.flowPartition(flow.flowId))
            expect(yield* backend.resolveExecutionFlowId(flow.executions[name])).toEqual(Option.some(flow.flowId))
          }
          expect(yield* Effect.forEach(["a", "b", "c", "join", "last"] as const, (n) => state(flow.executions[n])))
            .toEqual(["waiting", "waiting", "waiting", "waiting_children", "waiting_children"])
          const toLast = flow.edges.find((e) => e.to === "last")!
          const edge = Option.getOrThrow(yield* backend.describeEdge({ flowId: flow.flowId, edgeId: toLast.edgeId }))
          expect(edge).toMatchObject({
            upstreamExecutionId: flow.executions.join,
            downstreamExecutionId: flow.executions.last,
            dataPassingRef: "join"
          })
          // Two of the three upstreams satisfy the quorum.
          yield* completeNext(lane, 2)
          expect(yield* state(flow.executions.join)).toBe("waiting_children")
          yield* completeNext(lane, 4)
          expect(yield* state(flow.executions.join)).toBe("waiting")
        }))

      test("the flow appears at once: a claim right after sees the roots, never a node before its edges", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const claimed = yield* Ref.make<ReadonlyArray<string>>([])
          const calls = yield* Ref.make<ReadonlyArray<string>>([])
          const claimNow = Effect.flatMap(
            backend.claim({
              lane,
              capabilities: { tokens: [] },
              policy: {
                workerId: Ids.unsafe.workerId("eager"),
                workerInstanceId: Ids.unsafe.workerInstanceId("eager"),
                leaseTtlMs: 60_000
              }
            }),
            (h) => Option.isSome(h) ? Ref.update(claimed, (xs) => [...xs, "claim"]) : Effect.void
          )
          // A claim attempted right after the write createFlow makes; any other write is recorded.
          const eager: EngineBackend.Service = {
            ...backend,
            createFlowGraph: (args) =>
              Effect.tap(Effect.zipRight(Ref.update(calls, (xs) => [...xs, "createFlowGraph"]), backend.createFlowGraph(args)), () =>
                Effect.zipRight(claimNow, claimNow)),
            createExecution: (args) => Effect.zipRight(Ref.update(calls, (xs) => [...xs, "createExecution"]), backend.createExecution(args)),
            addExecutionToFlow: (args) =>
              Effect.zipRight(Ref.update(calls, (xs) => [...xs, "addExecutionToFlow"]), backend.addExecutionToFlow(args))
          }
          const flow = yield* Producer.createFlow({
            lane,
            nodes: { root: Producer.node(Add, { a: 1, b: 1 }), child: Producer.node(Add, { a: 2, b: 2 }) },
            edges: [{ from: "root", to: "child" }]
          }).pipe(Effect.provideService(EngineBackend, eager))
          expect(yield* Ref.get(calls)).toEqual(["createFlowGraph"])
          expect(yield* Ref.get(claimed)).toEqual(["claim"])
          expect(yield* state(flow.executions.root)).toBe("active")
          expect(yield* state(flow.executions.child)).toBe("waiting_children")
        }))

      test("a flow id that already names a flow is refused and nothing is created", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const flowId = yield* Ids.newFlowId
          const spec = { flowId, lane, nodes: { a: Producer.node(Add, { a: 1, b: 1 }) } }
          const first = yield* Producer.createFlow(spec)
          const again = yield* Effect.flip(Producer.createFlow(spec))
          expect(again._tag).toBe("FlowSpecError")
          const snapshot = Option.getOrThrow(yield* backend.describeFlow(first.flowId))
          expect(snapshot.nodeCount).toBe(1)
        }))

      test("createFlow rejects a graph it cannot build before writing anything", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const n = Producer.node(Add, { a: 1, b: 1 })
          const detail = (spec: Producer.FlowSpec<"a" | "b">) =>
            Effect.map(Effect.flip(Producer.createFlow(spec)), (e) => (e._tag === "FlowSpecError" ? e.detail : e._tag))
          expect(yield* detail({ lane, nodes: { a: n, b: n }, edges: [{ from: "a", to: "b" }, { from: "b", to: "a" }] }))
            .toContain("cycle")
          expect(yield* detail({ lane, nodes: { a: n, b: n }, joins: { b: { _tag: "any_of", onSatisfied: "let_run" } } }))
            .toContain("no inbound edges")
          expect(
            yield* detail({
              lane,
              nodes: { a: n, b: n },
              edges: [{ from: "a", to: "b" }],
              joins: { b: { _tag: "quorum", k: 2, onSatisfied: "let_run" } }
            })
          ).toContain("quorum k=2")
          expect(yield* detail({ lane, nodes: { a: n, b: n }, edges: [{ from: "a", to: "a" }] })).toContain("itself")
          const keyed = Producer.node(Add, { a: 1, b: 1 }, { idempotencyKey: "k" })
          expect(yield* detail({ lane, nodes: { a: keyed, b: n } })).toContain("idempotency key")
          const backend = yield* EngineBackend
          expect((yield* backend.listLanes({ limit: 1000 })).lanes).not.toContain(lane)
        }))

      test("an any-of join with cancel_remaining cancels the slower upstream", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const flow = yield* Producer.createFlow({
            lane,
            nodes: {
              fast: Producer.node(Add, { a: 1, b: 1 }),
              slow: Producer.node(Add, { a: 2, b: 2 }),
              after: Producer.node(Add, { a: 0, b: 0 })
            },
            edges: [{ from: "fast", to: "after" }, { from: "slow", to: "after" }],
            joins: { after: { _tag: "any_of", onSatisfied: "cancel_remaining" } }
          })
          // both upstreams were created in the same millisecond: either may be claimed first
          const first = payloadOf(yield* completeNext(lane, 2)).executionId
          const other = first === flow.executions.fast ? flow.executions.slow : flow.executions.fast
          expect(yield* state(flow.executions.after)).toBe("waiting")
          expect(yield* state(other)).toBe("cancelled")
        }))

      test("cancelFlow with a wait returns once the members are cancelled", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const flow = yield* Producer.createFlow({
            lane,
            nodes: { a: Producer.node(Add, { a: 1, b: 1 }), b: Producer.node(Add, { a: 2, b: 2 }) },
            edges: [{ from: "a", to: "b" }]
          })
          yield* claimOne(lane)
          const result = yield* Producer.cancelFlow(flow.flowId, { wait: "5 seconds", reason: "stop" })
          expect(result).toMatchObject({ _tag: "Cancelled", cancellationPolicy: "cancel_all" })
          expect([...result.memberExecutionIds].sort()).toEqual([flow.executions.a, flow.executions.b].sort())
          expect(Option.map(yield* backend.describeFlow(flow.flowId), (f) => f.publicFlowState)).toEqual(
            Option.some("cancelled")
          )
          expect(yield* isState(flow.executions.a, "cancelled")).toBe(true)
          const again = yield* Effect.flip(Producer.cancelFlow(flow.flowId, { policy: "FlowOnly" }))
          expect(again).toMatchObject({ _tag: "State", kind: "FlowAlreadyTerminal" })
        }))
    })

    describe("flows that grow while they run", () => {
      test("extendFlow adds nodes joined to members already in the flow; a key makes a retry add nothing twice", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const flow = yield* Producer.createFlow({
            lane,
            nodes: { first: Producer.node(Add, { a: 1, b: 1 }), last: Producer.node(Add, { a: 0, b: 0 }) },
            edges: [{ from: "first", to: "last" }]
          })
          yield* completeNext(lane, 2)
          // first completed: an edge from it resolves at once, one into `last` blocks it again
          const ext = {
            lane,
            key: "step-1",
            nodes: { more: Producer.node(Add, { a: 2, b: 3 }) },
            edges: [{ from: flow.executions.first, to: "more" as const, passOutput: true }, { from: "more" as const, to: flow.executions.last }]
          }
          const grown = yield* Producer.extendFlow(flow.flowId, ext)
          expect(grown.added).toBe(true)
          expect(yield* state(grown.executions.more)).toBe("waiting")
          expect(yield* state(flow.executions.last)).toBe("waiting_children")
          const input = Option.getOrThrow(yield* backend.getExecutionInput(grown.executions.more))
          expect(JSON.parse(decoder.decode(input.payload))).toBe(2)
          const again = yield* Producer.extendFlow(flow.flowId, ext)
          expect(again).toEqual({ ...grown, added: false })
          expect(Option.getOrThrow(yield* backend.describeFlow(flow.flowId)).nodeCount).toBe(3)
          yield* completeNext(lane, 5)
          expect(yield* state(flow.executions.last)).toBe("waiting")
        }))

      test("extendFlow refuses an extension it cannot build before writing anything", () =>
        Effect.gen(function*() {
          const lane = yield* newLane()
          const flow = yield* Producer.createFlow({ lane, nodes: { a: Producer.node(Add, { a: 1, b: 1 }) } })
          const refused = (ext: Producer.FlowExtension<string>) => Effect.flip(Producer.extendFlow(flow.flowId, ext))
          expect(yield* refused({ lane, nodes: {} })).toMatchObject({ _tag: "FlowSpecError" })
          expect(yield* refused({
            lane,
            nodes: { x: Producer.node(Add, { a: 1, b: 1 }), y: Producer.node(Add, { a: 1, b: 1 }) },
            edges: [{ from: "x", to: "y" }, { from: "y", to: "x" }]
          })).toMatchObject({ _tag: "FlowSpecError", detail: "the edges between the new nodes form a cycle" })
          expect(yield* refused({ lane, nodes: { x: Producer.node(Add, { a: 1, b: 1 }) }, joins: { x: { _tag: "all_of" } } }))
            .toMatchObject({ _tag: "FlowSpecError" })
        }))

      test("a flow created sealed, and sealFlow: no new member or edge", () =>
        Effect.gen(function*() {
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const sealed = yield* Producer.createFlow({ lane, sealed: true, nodes: { a: Producer.node(Add, { a: 1, b: 1 }) } })
          const add = { lane, nodes: { b: Producer.node(Add, { a: 1, b: 1 }) } }
          expect(yield* Effect.flip(Producer.extendFlow(sealed.flowId, add))).toMatchObject({ _tag: "State", kind: "FlowSealed" })
          const open = yield* Producer.createFlow({ lane, nodes: { a: Producer.node(Add, { a: 1, b: 1 }) } })
          expect(yield* Producer.sealFlow(open.flowId)).toEqual({ _tag: "Sealed", flowId: open.flowId, publicFlowState: "running" })
          expect(yield* Effect.flip(Producer.extendFlow(open.flowId, add))).toMatchObject({ _tag: "State", kind: "FlowSealed" })
          expect(Option.getOrThrow(yield* backend.describeFlow(open.flowId)).sealed).toBe(true)
        }))
    })

    describe("signals", () => {
      test("signal delivers a typed payload with the waitpoint's token; a wrong token is refused", () =>
        Effect.gen(function*() {
          yield* seedHmac
          const backend = yield* EngineBackend
          const lane = yield* newLane()
          const id = yield* Producer.submit(Add, { a: 1, b: 1 }, { lane })
          const handle = yield* claimOne(lane)
          const waitpointId = yield* Ids.newWaitpointId
          const suspended = yield* backend.suspend(handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh", waitpointId, waitpointKey: "approval" }],
            resumeCondition: { _tag: "Single", waitpointKey: "approval", matcher: { _tag: "ByName", name: "approved" } }
          })
          const token = suspended.details.waitpointToken
          const Approval = Schema.Struct({ by: Schema.String })
          const forged = yield* Effect.flip(Producer.signal({ executionId: id, waitpointId, token: `${token}x`, name: "approved" }))
          expect(forged).toMatchObject({ _tag: "Validation", kind: "InvalidToken" })
          const ok = yield* Producer.signal({
            executionId: id,
            waitpointId,
            token,
            name: "approved",
            payload: { schema: Approval, value: { by: "alice" } },
            source: { type: "user", identity: "alice" },
            idempotencyKey: "approval-1"
          })
          expect(ok).toMatchObject({ _tag: "Accepted", effect: "resume_condition_satisfied" })
          expect(yield* state(id)).toBe("waiting")
          const resumed = yield* claimOne(lane)
          expect(resumed.kind).toBe("resumed")
          const [signal] = yield* backend.observeSignals(resumed)
          expect(signal).toMatchObject({ signalName: "approved", sourceIdentity: "alice" })
          expect(yield* Producer.signalPayload(Approval, signal!)).toEqual({ by: "alice" })
        }))
    })
  })
}
