/**
 * The interpreter, scenario commands (`LateEdge`, `FinishedFlow`, see `Scenario` in commands.ts):
 * one flow shape built with several calls, each recorded by name.
 */
import { Duration, Effect, Either, Option, TestClock } from "effect"
import type { EngineBackend } from "../../src/EngineBackend.js"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { EdgeId, ExecutionId, FlowId, LaneId } from "../../src/Ids.js"
import { type Drive, NS, type Scenario, WORKERS } from "./commands.js"
import { applyEdge } from "./flows.js"
import type { Json } from "./normalize.js"
import { attempt, bytes, pickRecent, rec, type Run, skip, sortCancelFlow, type StagedEdge, type Touched } from "./run.js"

/** Runs a scenario command (see `Scenario`): every call's outcome, by step name. */
export const scenario = (run: Run, b: EngineBackend.Service, cmd: Scenario, i: number, touched: Touched) =>
  Effect.gen(function*() {
    const steps: Record<string, Json> = {}
    let n = 0
    const step = <A>(name: string, effect: Effect.Effect<A, EngineError>, f: (a: A) => unknown = (a) => a) =>
      Effect.map(attempt(run, effect), (r) => {
        steps[`${String(n++).padStart(2, "0")} ${name}`] = rec(run, r, f)
        return r
      })
    /** A member of `flowId` on a lane of its own (named `name`), created and added. */
    const member = (flowId: FlowId, name: string) =>
      Effect.gen(function*() {
        const lane = Ids.unsafe.laneId(`diff-${name}-${i}`)
        const executionId = Ids.deterministicExecutionIdForFlow(flowId, run.mint("execution", i, name))
        yield* step(`create ${name}`, b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "diff", inputPayload: bytes(`input-${i}-${name}`) }))
        yield* TestClock.adjust(Duration.millis(1))
        const added = yield* step(`add ${name}`, b.addExecutionToFlow({ flowId, executionId }))
        if (Either.isRight(added) && added.right._tag === "Added") run.members.get(flowId)?.push(executionId)
        run.executions.push(executionId)
        touched.executions.push(executionId)
        return { executionId, lane }
      })
    const claim = (m: { readonly lane: LaneId }, name: string) =>
      Effect.map(
        step(`claim ${name}`, b.claim({ lane: m.lane, capabilities: { tokens: [] }, policy: { ...WORKERS[0], leaseTtlMs: 30_000 } })),
        (r) => (Either.isRight(r) ? Option.getOrUndefined(r.right) : undefined)
      )
    const drive = (m: { readonly executionId: ExecutionId; readonly lane: LaneId }, how: Drive, name: string) =>
      Effect.gen(function*() {
        if (how === "none") return
        if (how === "cancel") {
          yield* step(`cancel ${name}`, b.cancelExecution({ executionId: m.executionId, reason: `scenario ${i}` }))
          return
        }
        const h = yield* claim(m, name)
        if (h === undefined) return
        if (how === "complete") yield* step(`complete ${name}`, b.complete(h, { payload: bytes(`out-${name}`) }))
        else yield* step(`fail ${name}`, b.fail(h, { reason: { message: "boom" }, classification: "Permanent" }))
      })
    const edge = (flowId: FlowId, up: ExecutionId, down: ExecutionId, name: string, via: "apply" | "extend") =>
      Effect.gen(function*() {
        const edgeId = run.mint("edge", i, name) as EdgeId
        const e: StagedEdge = { flowId, edgeId, upstream: up, downstream: down, dataPassingRef: "result" }
        if (via === "extend") {
          const r = yield* step(`extend ${name}`, b.extendFlow({
            flowId,
            edges: [{ edgeId, upstreamExecutionId: up, downstreamExecutionId: down, dataPassingRef: "result" }]
          }))
          if (Either.isRight(r)) run.edges.push(e)
          return
        }
        const snapshot = yield* attempt(run, b.describeFlow(flowId))
        const revision = Either.isRight(snapshot) && Option.isSome(snapshot.right) ? snapshot.right.value.graphRevision : 0
        const staged = yield* step(`stage ${name}`, b.stageDependencyEdge({
          flowId,
          edgeId,
          upstreamExecutionId: up,
          downstreamExecutionId: down,
          expectedGraphRevision: revision,
          dataPassingRef: "result"
        }))
        run.edges.push(e)
        if (Either.isRight(staged)) yield* step(`apply ${name}`, applyEdge(b, e))
      })

    if (cmd._tag === "LateEdge") {
      const flowId = pickRecent(run.flows, cmd.flow)
      if (flowId === undefined) return skip("no flow")
      touched.flows.push(flowId)
      const u1 = yield* member(flowId, "u1")
      const u2 = yield* member(flowId, "u2")
      const c = yield* member(flowId, "c")
      yield* step("join c", b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: c.executionId, policy: cmd.policy }))
      yield* edge(flowId, u1.executionId, c.executionId, "u1-c", "apply")
      yield* drive(u1, cmd.early, "u1")
      if (cmd.child !== "waiting") {
        const h = yield* claim(c, "c")
        if (h !== undefined) {
          if (cmd.child === "completed") yield* step("complete c", b.complete(h))
          else run.handles.push(h)
        }
      }
      if (cmd.late === "skipped") {
        const x = yield* member(flowId, "x")
        yield* edge(flowId, x.executionId, u2.executionId, "x-u2", "apply")
        yield* drive(x, "fail", "x")
      } else {
        yield* drive(u2, cmd.late, "u2")
      }
      yield* edge(flowId, u2.executionId, c.executionId, "u2-c", cmd.via)
      if (cmd.late === "none") yield* drive(u2, cmd.after, "u2 after")
      return steps as Json
    }

    const flowId = run.mint("flow", i) as FlowId
    run.flows.push(flowId)
    run.members.set(flowId, [])
    touched.flows.push(flowId)
    yield* step("create flow", b.createFlow({ flowId, namespace: NS }))
    const a = yield* member(flowId, "a")
    if (cmd.sealed) yield* step("seal", b.sealFlow({ flowId }))
    yield* drive(a, cmd.how, "a")
    yield* step("finished", b.describeFlow(flowId), (f) => Option.map(f, (x) => x.publicFlowState))
    switch (cmd.then) {
      case "add": {
        yield* member(flowId, "b")
        break
      }
      case "extend": {
        const executionId = Ids.deterministicExecutionIdForFlow(flowId, run.mint("execution", i, "e"))
        const r = yield* step("extend", b.extendFlow({
          flowId,
          members: [{ executionId, namespace: NS, laneId: Ids.unsafe.laneId(`diff-e-${i}`), executionKind: "diff", inputPayload: bytes("e") }],
          edges: [{ edgeId: run.mint("edge", i, "a-e") as EdgeId, upstreamExecutionId: a.executionId, downstreamExecutionId: executionId, dataPassingRef: "result" }]
        }))
        if (Either.isRight(r) && r.right._tag === "Extended") {
          run.executions.push(executionId)
          run.members.get(flowId)?.push(executionId)
          touched.executions.push(executionId)
        }
        break
      }
      case "edge": {
        const d = yield* member(flowId, "d")
        yield* edge(flowId, a.executionId, d.executionId, "a-d", "apply")
        break
      }
      case "seal":
        yield* step("seal", b.sealFlow({ flowId }))
        break
      case "cancel":
        yield* step("cancel flow", b.cancelFlow({ flowId, policy: "CancelAll", reason: `finished ${i}` }), sortCancelFlow)
        break
    }
    return steps as Json
  })
