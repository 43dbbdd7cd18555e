/**
 * The fuzz test over every public operation of a backend: FastCheck draws a
 * sequence of calls — an operation, and a mutation that mixes one hostile value
 * (see hostile.ts) into otherwise valid arguments built from a live fixture —
 * and each call is checked against three invariants:
 *
 * 1. it ends in success or a typed `EngineError`: never a defect, never an
 *    untyped failure, never `Transport` or `Bug` (the servers are healthy, so
 *    such an error is caused by the input);
 * 2. a call that failed wrote nothing: a snapshot of everything it could touch,
 *    read through the read operations, is the same before and after;
 * 3. a `Validation` detail stays short.
 *
 * The sequence is a function of the seed (`FUZZ_SEED`, default below), printed
 * with every violation; `FUZZ_SCALE` multiplies the number of calls (explore
 * with a random seed and a larger scale, keep the default in `npm test`). Time
 * is the `TestClock`'s, moved by one millisecond before each call (so that a
 * write shows in the mutation times), so a run does not depend on timing.
 */
import { describe, expect, layer as sharedLayer } from "@effect/vitest"
import { createHash } from "node:crypto"
import { Cause, Duration, Effect, Either, Exit, FastCheck as fc, type Layer, Option, Random, TestClock, Tracer } from "effect"
import { EngineBackend, operationNames } from "../../src/EngineBackend.js"
import { type EngineError, isEngineError, MAX_VALIDATION_DETAIL, rootCause } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import { decodeHandle } from "../../src/internal/handleCodec.js"
import type { BudgetId, EdgeId, ExecutionId, FlowId, LaneId, WaitpointId } from "../../src/Ids.js"
import { Maintenance, passNames } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import { getAt, mutate, mutationArb, type Mutation, preview } from "./hostile.js"

export const DEFAULT_SEED = 20_250_612

export interface FuzzOptions {
  /** Calls per run. */
  readonly runs: number
  /** `numFlowPartitions` of the deployment (default 256). */
  readonly numFlowPartitions?: number
  /** vitest timeout in ms (default 120 000). */
  readonly timeout?: number
  /** Run with a tracer installed, so that every call also builds its span's attributes. */
  readonly traced?: boolean
}

/** A tracer that is not the built-in one (operations then make spans) and keeps nothing. */
const passThroughTracer = Effect.map(Effect.tracer, (builtIn) =>
  Tracer.make({
    span: (name, parent, context, links, startTime, kind, options) =>
      builtIn.span(name, parent, context, links, startTime, kind, options),
    context: (f, fiber) => builtIn.context(f, fiber)
  }))

type Service = EngineBackend.Service
type Op = (typeof operationNames)[number] | `pass:${(typeof passNames)[number]}`
const allOps: ReadonlyArray<Op> = [...operationNames, ...passNames.map((p) => `pass:${p}` as const)]

const NS = Ids.unsafe.namespace("fuzz")
const WORKER = Ids.unsafe.workerId("fuzz-worker")
const INSTANCE = Ids.unsafe.workerInstanceId("fuzz-worker-1")
const SECRET = createHash("sha256").update("fuzz: seeded secret").digest("hex")
const ROTATED = createHash("sha256").update("fuzz: rotated secret").digest("hex")
const enc = new TextEncoder()

// ---------------------------------------------------------------------------
// The fixture: live records the calls refer to, rebuilt when a call used them up
// ---------------------------------------------------------------------------

interface Active {
  readonly executionId: ExecutionId
  readonly handle: M.Handle
}
interface Suspended extends Active {
  readonly waitpointId: WaitpointId
  readonly token: string
}
interface Flow {
  readonly flowId: FlowId
  readonly members: ReadonlyArray<ExecutionId>
  readonly edgeId: EdgeId
  /** An edge staged between the members but not applied. */
  readonly stagedEdgeId: EdgeId
}

/** What a call may touch: the snapshot reads these before and after. */
interface Touched {
  readonly executions: ReadonlyArray<ExecutionId>
  readonly flows: ReadonlyArray<FlowId>
  readonly budgets: ReadonlyArray<BudgetId>
}

const makeFixture = (b: Service, lane: LaneId, numFlowPartitions: number) => {
  const partitions = { ...Ids.defaultPartitionConfig, numFlowPartitions }
  let counter = 0
  const createOn = (executionId: ExecutionId, laneId: LaneId = lane) =>
    b.createExecution({ executionId, namespace: NS, laneId, executionKind: "fuzz" })
  const claimArgs = (laneId: LaneId): M.ClaimArgs => ({
    lane: laneId,
    capabilities: { tokens: [] },
    policy: { workerId: WORKER, workerInstanceId: INSTANCE, leaseTtlMs: 600_000 }
  })
  // one lane for the executions the fixture claims: a claim may take an older one left claimable there
  const claimLane = Ids.unsafe.laneId(`${lane}-claim`)
  const createAndClaim = Effect.gen(function*() {
    yield* createOn(yield* Ids.executionIdSolo(claimLane, partitions), claimLane)
    const handle = Option.getOrThrow(yield* b.claim(claimArgs(claimLane)))
    const executionId = Either.getOrThrow(decodeHandle(handle.backend, handle)).executionId
    return { executionId, handle }
  })

  let waiting: ExecutionId | undefined
  let active: Active | undefined
  let suspended: Suspended | undefined
  let terminal: ExecutionId | undefined
  let flow: Flow | undefined
  let budget: BudgetId | undefined

  const state = (id: ExecutionId) => Effect.map(b.readExecutionInfo(id), Option.getOrUndefined)

  // new executions go to one of a few lanes (partitions), so that no listing the snapshot reads grows long
  const pool = Array.from({ length: 8 }, (_, i) => Ids.unsafe.laneId(`${lane}-${i}`))
  const fixture = {
    lane,
    laneFor: (choice: number) => pool[choice % pool.length]!,
    partitions,
    claimArgs,
    nextName: () => `n${++counter}`,
    waiting: Effect.gen(function*() {
      if (waiting !== undefined && (yield* state(waiting))?.publicState === "waiting") return waiting
      const id = yield* Ids.executionIdSolo(lane, partitions)
      yield* createOn(id)
      waiting = id
      return id
    }),
    active: Effect.gen(function*() {
      if (active !== undefined) {
        const s = yield* state(active.executionId)
        if (s?.stateVector.lifecyclePhase === "active" && s.stateVector.ownershipState === "leased") return active
      }
      active = yield* createAndClaim
      return active
    }),
    suspended: Effect.gen(function*() {
      if (suspended !== undefined && (yield* state(suspended.executionId))?.publicState === "suspended") return suspended
      const c = yield* createAndClaim
      const wp = yield* Ids.freshWaitpointBinding
      const out = yield* b.suspend(c.handle, {
        suspensionId: yield* Ids.newSuspensionId,
        waitpoints: [{ _tag: "Fresh", waitpointId: wp.waitpointId, waitpointKey: wp.waitpointKey }],
        resumeCondition: { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "Wildcard" } }
      })
      if (out._tag !== "Suspended") throw new Error("fixture: suspend did not suspend")
      suspended = { ...c, handle: out.handle, waitpointId: wp.waitpointId, token: out.details.waitpointToken }
      return suspended
    }),
    terminal: Effect.gen(function*() {
      if (terminal !== undefined && (yield* state(terminal))?.publicState === "completed") return terminal
      const c = yield* createAndClaim
      yield* b.appendFrame(c.handle, {
        bytes: enc.encode("{\"a\":1}"),
        kind: "event",
        mode: { _tag: "DurableSummary", patchKind: "json-merge-patch" }
      })
      yield* b.complete(c.handle, { payload: enc.encode("done") })
      terminal = c.executionId
      return terminal
    }),
    flow: Effect.gen(function*() {
      if (flow !== undefined) {
        const f = Option.getOrUndefined(yield* b.describeFlow(flow.flowId))
        const states = yield* Effect.forEach(flow.members, state)
        if (f?.publicFlowState === "running" && !f.sealed && states.every((s) => s?.publicState === "waiting_children" || s?.publicState === "waiting")) {
          return flow
        }
      }
      const flowId = yield* Ids.newFlowId
      yield* b.createFlow({ flowId, namespace: NS })
      const members: Array<ExecutionId> = []
      for (let i = 0; i < 3; i++) {
        const id = yield* Ids.executionIdForFlow(flowId, partitions)
        yield* createOn(id, pool[0])
        yield* b.addExecutionToFlow({ flowId, executionId: id })
        members.push(id)
      }
      const edgeId = yield* Ids.newEdgeId
      yield* b.stageDependencyEdge({
        flowId,
        edgeId,
        upstreamExecutionId: members[0]!,
        downstreamExecutionId: members[1]!,
        expectedGraphRevision: 3
      })
      yield* b.applyDependencyToChild({
        flowId,
        edgeId,
        upstreamExecutionId: members[0]!,
        downstreamExecutionId: members[1]!
      })
      const stagedEdgeId = yield* Ids.newEdgeId
      yield* b.stageDependencyEdge({
        flowId,
        edgeId: stagedEdgeId,
        upstreamExecutionId: members[0]!,
        downstreamExecutionId: members[2]!,
        expectedGraphRevision: 4
      })
      flow = { flowId, members, edgeId, stagedEdgeId }
      return flow
    }),
    budget: Effect.gen(function*() {
      if (budget !== undefined) return budget
      const id = yield* Ids.newBudgetId
      yield* b.createBudget({
        budgetId: id,
        scopeType: "tenant",
        scopeId: "fuzz",
        dimensions: ["tokens", "gpu"],
        hardLimits: [1_000_000, 1_000_000],
        softLimits: [900_000, 900_000]
      })
      budget = id
      return id
    })
  }
  return fixture
}
type Fixture = ReturnType<typeof makeFixture>

// ---------------------------------------------------------------------------
// Valid arguments of every operation
// ---------------------------------------------------------------------------

interface Call {
  readonly args: ReadonlyArray<unknown>
  readonly touched: Touched
  /** A mutated call that must not run (it would block, or stop the backend). */
  readonly unsafe?: (args: ReadonlyArray<unknown>) => boolean
  /** For what no read shows: after a failed call, what is wrong if it wrote (or `undefined`). */
  readonly probe?: Effect.Effect<string | undefined, EngineError>
}

const touch = (t: Partial<Touched>): Touched => ({ executions: t.executions ?? [], flows: t.flows ?? [], budgets: t.budgets ?? [] })

const newExecutionArgs = (fx: Fixture, executionId: ExecutionId, choice: number): M.CreateExecutionArgsInput => ({
  executionId,
  namespace: NS,
  laneId: fx.laneFor(choice),
  executionKind: "fuzz.kind",
  inputPayload: enc.encode("{\"in\":1}"),
  payloadEncoding: "json",
  priority: 5,
  creatorIdentity: "fuzzer",
  ...(choice % 3 === 0 ? { idempotencyKey: `idem-${fx.nextName()}` } : {}),
  tags: { "fuzz.tag": "v", "fuzz.other": "w" },
  policy: choice % 2 === 0 ?
    {
      retryPolicy: { maxRetries: 2, backoff: { type: "fixed", delayMs: 10 } },
      routingRequirements: { requiredCapabilities: ["cpu"] },
      maxSignalsPerExecution: 5
    } :
    "{\"retry_policy\":{\"max_retries\":1},\"stream_policy\":{\"retention_ttl_ms\":1000}}",
  ...(choice % 4 === 1 ? { delayUntil: 10_000_000 } : {}),
  ...(choice % 5 === 2 ? { executionDeadlineAt: 100_000_000 } : {})
})

const frameOf = (choice: number): M.FrameInput => {
  switch (choice % 3) {
    case 0:
      return { bytes: enc.encode("line"), kind: "stdout", frameType: "log.line", correlationId: "c-1" }
    case 1:
      return { bytes: enc.encode("{\"a\":{\"b\":[1,2]},\"c\":null}"), kind: "event", mode: { _tag: "DurableSummary", patchKind: "json-merge-patch" } }
    default:
      return { bytes: enc.encode("tick"), kind: "event", mode: { _tag: "BestEffortLive", config: { ttlMs: 3_600_000 } } }
  }
}

const build = (op: Op, fx: Fixture, choice: number): Effect.Effect<Call, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const partitionKey = (id: ExecutionId) => Ids.partitionKey("Flow", Ids.executionPartition(id))
    switch (op) {
      case "claim":
      case "claimMany": {
        const w = yield* fx.waiting
        return { args: op === "claim" ? [fx.claimArgs(fx.lane)] : [fx.claimArgs(fx.lane), 2], touched: touch({ executions: [w] }) }
      }
      case "claimForWorker": {
        const w = yield* fx.waiting
        return {
          args: [{ laneId: fx.lane, workerId: WORKER, workerInstanceId: INSTANCE, workerCapabilities: ["cpu"], grantTtlMs: 60_000 }],
          touched: touch({ executions: [w] })
        }
      }
      case "renew":
      case "observeSignals":
      case "waitChildren": {
        const a = yield* fx.active
        return { args: [a.handle], touched: touch({ executions: [a.executionId] }) }
      }
      case "progress": {
        const a = yield* fx.active
        return { args: [a.handle, { percent: 50, message: "half" }], touched: touch({ executions: [a.executionId] }) }
      }
      case "appendFrame": {
        const a = yield* fx.active
        return { args: [a.handle, frameOf(choice)], touched: touch({ executions: [a.executionId] }) }
      }
      case "complete": {
        const a = yield* fx.active
        return { args: [a.handle, { payload: enc.encode("result") }], touched: touch({ executions: [a.executionId] }) }
      }
      case "completeMany": {
        const a = yield* fx.active
        return { args: [[{ handle: a.handle, payload: enc.encode("r") }]], touched: touch({ executions: [a.executionId] }) }
      }
      case "completeAndClaim": {
        const a = yield* fx.active
        const w = yield* fx.waiting
        return {
          args: [[{ handle: a.handle, payload: enc.encode("r") }], { args: fx.claimArgs(fx.lane), max: 2 }],
          touched: touch({ executions: [a.executionId, w] })
        }
      }
      case "fail": {
        const a = yield* fx.active
        return {
          args: [a.handle, { reason: { message: "boom", detail: enc.encode("d") }, classification: choice % 2 === 0 ? "Transient" : "Permanent" }],
          touched: touch({ executions: [a.executionId] })
        }
      }
      case "cancel": {
        const a = yield* fx.active
        return { args: [a.handle, { reason: "stop" }], touched: touch({ executions: [a.executionId] }) }
      }
      case "delay": {
        const a = yield* fx.active
        return { args: [a.handle, { delayUntil: 10_000_000 }], touched: touch({ executions: [a.executionId] }) }
      }
      case "suspend": {
        const a = yield* fx.active
        const wp = yield* Ids.freshWaitpointBinding
        const wp2 = yield* Ids.freshWaitpointBinding
        const composite = choice % 2 === 0
        return {
          args: [a.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: composite ?
              [{ _tag: "Fresh", waitpointId: wp.waitpointId, waitpointKey: wp.waitpointKey }, {
                _tag: "Fresh",
                waitpointId: wp2.waitpointId,
                waitpointKey: wp2.waitpointKey
              }] :
              [{ _tag: "Fresh", waitpointId: wp.waitpointId, waitpointKey: wp.waitpointKey }],
            resumeCondition: composite ?
              {
                _tag: "Composite",
                body: {
                  _tag: "AllOf",
                  members: [
                    { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "ByName", name: "go" } },
                    { _tag: "Single", waitpointKey: wp2.waitpointKey, matcher: { _tag: "Wildcard" } }
                  ]
                }
              } :
              { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "ByName", name: "go" } },
            reasonCode: "waiting_for_signal",
            timeoutAt: 10_000_000,
            timeoutBehavior: "fail",
            idempotencyKey: `susp-${fx.nextName()}`
          }],
          touched: touch({ executions: [a.executionId] })
        }
      }
      case "createWaitpoint": {
        const a = yield* fx.active
        return {
          args: [a.handle, { waitpointKey: `wk-${fx.nextName()}`, expiresIn: Duration.minutes(10) }],
          touched: touch({ executions: [a.executionId] })
        }
      }
      case "claimFromReclaim": {
        const w = yield* fx.waiting
        return {
          args: [{
            grant: {
              executionId: w,
              partitionKey: partitionKey(w),
              grantKey: "grant",
              expiresAtMs: 60_000,
              laneId: fx.lane
            },
            workerId: WORKER,
            workerInstanceId: INSTANCE,
            leaseTtlMs: 60_000
          }],
          touched: touch({ executions: [w] })
        }
      }
      case "describeExecution":
      case "resolveExecutionFlowId":
      case "getExecutionResult":
      case "getExecutionInput":
      case "readExecutionInfo":
      case "readExecutionState":
      case "replayExecution": {
        const id = choice % 2 === 0 ? yield* fx.terminal : (yield* fx.flow).members[0]!
        return { args: [id], touched: touch({ executions: [id] }) }
      }
      case "getExecutionInputs": {
        const t = yield* fx.terminal
        const w = yield* fx.waiting
        return { args: [[t, w]], touched: touch({ executions: [t, w] }) }
      }
      case "describeFlow": {
        const f = yield* fx.flow
        return { args: [f.flowId], touched: touch({ flows: [f.flowId] }) }
      }
      case "listEdges": {
        const f = yield* fx.flow
        return {
          args: [{ flowId: f.flowId, direction: choice % 2 === 0 ? { _tag: "Outgoing", fromNode: f.members[0] } : { _tag: "Incoming", toNode: f.members[1] } }],
          touched: touch({ flows: [f.flowId] })
        }
      }
      case "describeEdge": {
        const f = yield* fx.flow
        return { args: [{ flowId: f.flowId, edgeId: f.edgeId }], touched: touch({ flows: [f.flowId] }) }
      }
      case "listFlows":
      case "listSuspended":
      case "listExecutions": {
        const f = yield* fx.flow
        return {
          args: [{ partition: partitionKey(f.members[0]!), limit: 10, ...(choice % 2 === 0 && op !== "listFlows" ? { cursor: f.members[0] } : {}) }],
          touched: touch({ flows: [f.flowId] })
        }
      }
      case "listLanes":
        return { args: [{ limit: 10, ...(choice % 2 === 0 ? { cursor: fx.lane } : {}) }], touched: touch({}) }
      case "listLaneExecutions": {
        const first = yield* b.listLaneExecutions({ laneId: fx.lane, limit: 1 })
        return {
          args: [{
            laneId: fx.lane,
            limit: 10,
            states: choice % 3 === 0 ? ["waiting", "active"] : ["completed"],
            order: choice % 2 === 0 ? "newest" : "oldest",
            ...(choice % 4 === 0 ? { executionKind: "fuzz" } : {}),
            ...(first.nextCursor === undefined ? {} : { cursor: first.nextCursor })
          }],
          touched: touch({})
        }
      }
      case "countLaneExecutions":
        return { args: [fx.lane], touched: touch({}) }
      case "listPendingWaitpoints": {
        const a = yield* fx.active
        return { args: [{ executionId: a.executionId, limit: 10 }], touched: touch({ executions: [a.executionId] }) }
      }
      case "deliverSignal": {
        const s = yield* fx.suspended
        return {
          args: [{
            executionId: s.executionId,
            waitpointId: s.waitpointId,
            signalId: yield* Ids.newSignalId,
            signalName: "go",
            signalCategory: "fuzz",
            sourceType: "test",
            sourceIdentity: "fuzzer",
            payload: enc.encode("p"),
            payloadEncoding: "utf8",
            correlationId: "corr",
            idempotencyKey: `sig-${fx.nextName()}`,
            dedupTtlMs: 60_000,
            waitpointToken: s.token
          }],
          touched: touch({ executions: [s.executionId] })
        }
      }
      case "claimResumedExecution": {
        const s = yield* fx.suspended
        return {
          args: [{
            executionId: s.executionId,
            workerId: WORKER,
            workerInstanceId: INSTANCE,
            laneId: fx.lane,
            leaseId: yield* Ids.newLeaseId,
            leaseTtlMs: 60_000,
            currentAttemptIndex: 0
          }],
          touched: touch({ executions: [s.executionId] })
        }
      }
      case "createExecution": {
        const id = yield* Ids.executionIdSolo(fx.laneFor(choice), fx.partitions)
        return { args: [newExecutionArgs(fx, id, choice)], touched: touch({ executions: [id] }) }
      }
      case "createExecutions": {
        const a = yield* Ids.executionIdSolo(fx.laneFor(choice), fx.partitions)
        const c = yield* Ids.executionIdSolo(fx.laneFor(choice + 1), fx.partitions)
        return { args: [[newExecutionArgs(fx, a, choice), newExecutionArgs(fx, c, choice + 1)]], touched: touch({ executions: [a, c] }) }
      }
      case "createFlow": {
        const flowId = yield* Ids.newFlowId
        return { args: [{ flowId, flowKind: "dag", namespace: NS }], touched: touch({ flows: [flowId] }) }
      }
      case "createFlowGraph": {
        const flowId = yield* Ids.newFlowId
        const m0 = yield* Ids.executionIdForFlow(flowId, fx.partitions)
        const m1 = yield* Ids.executionIdForFlow(flowId, fx.partitions)
        const member = (id: ExecutionId) => ({ ...newExecutionArgs(fx, id, choice), idempotencyKey: undefined })
        return {
          args: [{
            flow: { flowId, namespace: NS },
            members: [member(m0), member(m1)],
            edges: [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: m0, downstreamExecutionId: m1, dataPassingRef: "out" }],
            joins: [{ downstreamExecutionId: m1, policy: { _tag: "any_of", onSatisfied: "let_run" } }]
          }],
          touched: touch({ flows: [flowId], executions: [m0, m1] })
        }
      }
      case "extendFlow": {
        const f = yield* fx.flow
        const m = yield* Ids.executionIdForFlow(f.flowId, fx.partitions)
        const member = { ...newExecutionArgs(fx, m, choice), idempotencyKey: undefined }
        return {
          args: [{
            flowId: f.flowId,
            members: [member],
            edges: [
              { edgeId: yield* Ids.newEdgeId, upstreamExecutionId: f.members[0], downstreamExecutionId: m, dataPassingRef: "out" },
              { edgeId: yield* Ids.newEdgeId, upstreamExecutionId: m, downstreamExecutionId: f.members[2] }
            ],
            joins: [{ downstreamExecutionId: m, policy: { _tag: "any_of", onSatisfied: "let_run" } }]
          }],
          touched: touch({ flows: [f.flowId], executions: [...f.members, m] })
        }
      }
      case "sealFlow": {
        const f = yield* fx.flow
        return { args: [{ flowId: f.flowId }], touched: touch({ flows: [f.flowId], executions: f.members }) }
      }
      case "addExecutionToFlow": {
        const f = yield* fx.flow
        const id = yield* Ids.executionIdForFlow(f.flowId, fx.partitions)
        yield* b.createExecution({ executionId: id, namespace: NS, laneId: fx.laneFor(choice), executionKind: "fuzz" })
        return { args: [{ flowId: f.flowId, executionId: id }], touched: touch({ flows: [f.flowId], executions: [id] }) }
      }
      case "stageDependencyEdge": {
        const f = yield* fx.flow
        const snap = Option.getOrThrow(yield* b.describeFlow(f.flowId))
        return {
          args: [{
            flowId: f.flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: f.members[1],
            downstreamExecutionId: f.members[2],
            dependencyKind: "success_only",
            dataPassingRef: "ref",
            expectedGraphRevision: snap.graphRevision
          }],
          touched: touch({ flows: [f.flowId], executions: f.members })
        }
      }
      case "applyDependencyToChild": {
        const f = yield* fx.flow
        return {
          args: [{ flowId: f.flowId, edgeId: f.stagedEdgeId, upstreamExecutionId: f.members[0], downstreamExecutionId: f.members[2] }],
          touched: touch({ flows: [f.flowId], executions: f.members })
        }
      }
      case "setEdgeGroupPolicy": {
        const f = yield* fx.flow
        return {
          args: [{ flowId: f.flowId, downstreamExecutionId: f.members[2], policy: { _tag: "quorum", k: 1, onSatisfied: "cancel_remaining" } }],
          touched: touch({ flows: [f.flowId], executions: f.members })
        }
      }
      case "cancelFlow":
      case "cancelFlowHeader": {
        const f = yield* fx.flow
        return {
          args: [op === "cancelFlow" ?
            { flowId: f.flowId, policy: "CancelAll", reason: "fuzz" } :
            { flowId: f.flowId, reason: "fuzz", cancellationPolicy: "CancelPending" }],
          touched: touch({ flows: [f.flowId], executions: f.members }),
          // a wait would block on the TestClock
          unsafe: (args) => {
            const wait = (args[0] as { wait?: { _tag?: unknown } } | undefined)?.wait
            return wait?._tag === "WaitTimeout" || wait?._tag === "WaitIndefinite"
          }
        }
      }
      case "ackCancelMember": {
        const f = yield* fx.flow
        return { args: [{ flowId: f.flowId, executionId: f.members[0] }], touched: touch({ flows: [f.flowId], executions: f.members }) }
      }
      case "cancelExecution": {
        const w = yield* fx.waiting
        return { args: [{ executionId: w, reason: "fuzz", source: "operator_override" }], touched: touch({ executions: [w] }) }
      }
      case "changePriority": {
        const w = yield* fx.waiting
        return { args: [{ executionId: w, newPriority: 7, laneId: fx.lane }], touched: touch({ executions: [w] }) }
      }
      case "revokeLease": {
        const a = yield* fx.active
        return { args: [{ executionId: a.executionId, reason: "fuzz", workerInstanceId: INSTANCE }], touched: touch({ executions: [a.executionId] }) }
      }
      case "reportUsage": {
        const a = yield* fx.active
        const budgetId = yield* fx.budget
        return {
          args: [a.handle, { budgetId, dimensions: { inputTokens: 3, outputTokens: 4, wallMs: 5, custom: { gpu: 1 }, dedupKey: `u-${fx.nextName()}` } }],
          touched: touch({ executions: [a.executionId], budgets: [budgetId] })
        }
      }
      case "reportUsageAdmin": {
        const budgetId = yield* fx.budget
        return {
          args: [{ budgetId, dimensions: ["tokens", "gpu"], deltas: [1, 2], dedupKey: `ua-${fx.nextName()}` }],
          touched: touch({ budgets: [budgetId] })
        }
      }
      case "createBudget": {
        const budgetId = yield* Ids.newBudgetId
        return {
          args: [{
            budgetId,
            scopeType: "tenant",
            scopeId: "fuzz",
            enforcementMode: "strict",
            onHardLimit: "fail",
            onSoftLimit: "warn",
            resetIntervalMs: 60_000,
            dimensions: ["tokens", "usd"],
            hardLimits: [100, 50],
            softLimits: [90, 40]
          }],
          touched: touch({ budgets: [budgetId] })
        }
      }
      case "resetBudget":
      case "getBudgetStatus": {
        const budgetId = yield* fx.budget
        return { args: [budgetId], touched: touch({ budgets: [budgetId] }) }
      }
      case "createQuotaPolicy": {
        const args = { quotaPolicyId: yield* Ids.newQuotaPolicyId, windowSeconds: 60, maxRequestsPerWindow: 10, maxConcurrent: 2 }
        return {
          args: [args],
          touched: touch({}),
          // no read shows a quota policy: creating it afterwards must find none
          probe: Effect.map(b.createQuotaPolicy(args), (r) => (r._tag === "Created" ? undefined : "the failed call created the quota policy"))
        }
      }
      case "readStream":
      case "tailStream":
      case "readSummary": {
        const t = yield* fx.terminal
        const args = op === "readStream" ?
          { executionId: t, attemptIndex: 0, from: { _tag: "Start" }, to: { _tag: "End" }, countLimit: 10 } :
          op === "tailStream" ?
          { executionId: t, attemptIndex: 0, after: { _tag: "At", id: "0-0" }, blockMs: 0, countLimit: 10, visibility: "all" } :
          { executionId: t, attemptIndex: 0 }
        return {
          args: [args],
          touched: touch({ executions: [t] }),
          // a positive blockMs would block on the TestClock (Postgres) or the server (Valkey)
          unsafe: (a) => {
            const blockMs = (a[0] as { blockMs?: unknown } | undefined)?.blockMs
            return typeof blockMs === "number" && blockMs > 0
          }
        }
      }
      case "rotateWaitpointHmacSecretAll":
        return { args: [{ newKid: `kid-${fx.nextName()}`, newSecretHex: ROTATED, graceMs: 3_600_000 }], touched: touch({}) }
      case "seedWaitpointHmacSecret":
        return { args: [{ kid: "fuzz-seed", secretHex: SECRET }], touched: touch({}) }
      case "ping":
      case "prepare":
        return { args: [], touched: touch({}) }
      case "readEvents": {
        const f = yield* fx.flow
        const filter = choice % 3 === 0 ?
          { _tag: "Lane", laneId: fx.lane } :
          choice % 3 === 1 ?
          { _tag: "Execution", executionId: f.members[0] } :
          { _tag: "Flow", flowId: f.flowId }
        return { args: [{ filter, after: choice % 2 === 0 ? "earliest" : "latest", limit: 10 }], touched: touch({}) }
      }
      case "shutdownPrepare":
        // a valid grace would stop the stream operations of the shared backend: only bad ones run
        return { args: [Duration.seconds(1)], touched: touch({}), unsafe: (a) => Duration.isDuration(a[0]) }
      default: {
        // maintenance passes; nothing is due (time does not move), so a pass must change nothing
        return { args: [{ batchSize: 10 }], touched: touch({}) }
      }
    }
  })

// ---------------------------------------------------------------------------
// The snapshot: everything a call could have written, through the reads
// ---------------------------------------------------------------------------

const canonical = (u: unknown): unknown => {
  if (u instanceof Uint8Array) return `bytes:${Buffer.from(u).toString("hex")}`
  if (Array.isArray(u)) return u.map(canonical)
  if (typeof u === "object" && u !== null) {
    const out: Record<string, unknown> = {}
    for (const k of Object.keys(u).sort()) out[k] = canonical((u as Record<string, unknown>)[k])
    return out
  }
  return u
}

const snapshot = (b: Service, fx: Fixture, t: Touched): Effect.Effect<string> =>
  Effect.gen(function*() {
    const reads: Array<Effect.Effect<unknown>> = []
    const read = <A>(label: string, e: Effect.Effect<A, EngineError>) =>
      reads.push(Effect.map(Effect.either(e), (r) => [label, Either.isRight(r) ? canonical(r.right) : `error:${r.left._tag}`]))
    const partitions = new Set<number>()
    const attempts = yield* Effect.forEach(
      t.executions,
      (id) =>
        Effect.match(b.readExecutionInfo(id), {
          onFailure: () => 0,
          onSuccess: Option.match({ onNone: () => 0, onSome: (i) => i.currentAttemptIndex })
        }),
      { concurrency: 8 }
    )
    t.executions.forEach((id, n) => {
      partitions.add(Ids.executionPartition(id))
      read("describe", b.describeExecution(id))
      read("info", b.readExecutionInfo(id))
      read("waitpoints", b.listPendingWaitpoints({ executionId: id, limit: 1000 }))
      for (let a = 0; a <= attempts[n]!; a++) {
        const ref = { executionId: id, attemptIndex: Ids.AttemptIndex.make(a) }
        read("stream", b.readStream({ ...ref, from: { _tag: "Start" }, to: { _tag: "End" }, countLimit: 1000 }))
        read("summary", b.readSummary(ref))
      }
    })
    for (const id of t.flows) {
      read("flow", b.describeFlow(id))
      partitions.add(Ids.flowPartition(id, fx.partitions))
    }
    for (const id of t.budgets) read("budget", b.getBudgetStatus(id))
    for (const p of partitions) {
      const partition = Ids.partitionKey("Flow", p)
      read("executions", b.listExecutions({ partition, limit: 1000 }))
      read("suspended", b.listSuspended({ partition, limit: 1000 }))
    }
    read("lanes", b.listLanes({ limit: 1000 }))
    read("lane executions", b.listLaneExecutions({ laneId: fx.lane, limit: 1000 }))
    read("lane counts", b.countLaneExecutions(fx.lane))
    return JSON.stringify(yield* Effect.all(reads, { concurrency: 8 }))
  })

// ---------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------

/** The operations that write nothing. */
const READS: ReadonlySet<string> = new Set<Op>([
  "describeExecution",
  "describeFlow",
  "listEdges",
  "describeEdge",
  "resolveExecutionFlowId",
  "getExecutionResult",
  "getExecutionInput",
  "getExecutionInputs",
  "listPendingWaitpoints",
  "readExecutionInfo",
  "readExecutionState",
  "listFlows",
  "listLanes",
  "listSuspended",
  "listExecutions",
  "listLaneExecutions",
  "countLaneExecutions",
  "getBudgetStatus",
  "readStream",
  "tailStream",
  "readSummary",
  "readEvents",
  "ping"
])

/** `b` with `onWrite` called before every operation that is not a read. */
const countingWrites = (b: Service, onWrite: () => void): Service => {
  const out: Record<string, unknown> = { ...b }
  for (const op of operationNames) {
    if (READS.has(op)) continue
    const f = b[op] as (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown>
    out[op] = (...args: ReadonlyArray<unknown>) => Effect.suspend(() => (onWrite(), f(...args)))
  }
  return out as unknown as Service
}

interface Plan {
  readonly op: Op
  readonly choice: number
  readonly mutation: Mutation
}

const drawArb = fc.record({ choice: fc.nat({ max: 1_000 }), mutation: mutationArb })

/** The first line of a defect or error, short. */
const headline = (u: unknown): string => {
  const text = u instanceof Error ? `${u.name}: ${u.message}` : preview(u)
  return text.split("\n")[0]!.slice(0, 200)
}

/** What is wrong with how a call ended, or `undefined`. */
const judge = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) {
    const defect = Cause.dieOption(exit.cause)
    return Option.isSome(defect) ? `defect: ${headline(defect.value)}` : `ended without an error: ${Cause.pretty(exit.cause).slice(0, 200)}`
  }
  const e = failure.value
  if (!isEngineError(e)) return `untyped failure: ${headline(e)}`
  const root = rootCause(e)
  if (root._tag === "Transport" || root._tag === "Bug") return `${root._tag}: ${headline(root)}`
  if (root._tag === "Validation" && root.detail.length > MAX_VALIDATION_DETAIL) {
    return `Validation detail of ${root.detail.length} characters: ${root.detail.slice(0, 120)}…`
  }
  return undefined
}

export const runFuzz = (options: FuzzOptions) =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const maintenance = yield* Maintenance
    const seed = Number(process.env["FUZZ_SEED"] ?? DEFAULT_SEED)
    const runs = Math.round(options.runs * Number(process.env["FUZZ_SCALE"] ?? 1))
    // every operation in turn, each call with its own drawn mutation: all of them are covered alike
    const plans: ReadonlyArray<Plan> = fc.sample(drawArb, { seed, numRuns: runs }).map((d, i) => ({
      op: allOps[i % allOps.length]!,
      ...d
    }))
    const lane = Ids.unsafe.laneId(`fz-${(yield* Ids.randomUuid).slice(0, 18)}`)
    // writes since the start, so that a snapshot can be reused while nothing was written
    let writes = 0
    const counted = countingWrites(b, () => writes++)
    const fx = makeFixture(counted, lane, options.numFlowPartitions ?? 256)
    let cached: { readonly key: string; readonly writes: number; readonly value: string } | undefined
    const snapshotOf = (touched: Touched) =>
      Effect.gen(function*() {
        const key = JSON.stringify(touched)
        if (cached?.key === key && cached.writes === writes) return cached.value
        const value = yield* snapshot(b, fx, touched)
        cached = { key, writes, value }
        return value
      })
    yield* Effect.either(b.seedWaitpointHmacSecret({ kid: "fuzz-seed", secretHex: SECRET }))
    const violations = new Map<string, string>()
    const counts = { calls: 0, failed: 0, skipped: 0 }
    for (let i = 0; i < plans.length; i++) {
      const plan = plans[i]!
      const call = yield* Effect.provideService(build(plan.op, fx, plan.choice), EngineBackend, counted)
      const mutated = mutate(call.args, plan.mutation)
      if (call.unsafe?.(mutated.args) === true) {
        counts.skipped++
        continue
      }
      const fn: (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, unknown> = plan.op.startsWith("pass:") ?
        maintenance[plan.op.slice(5) as (typeof passNames)[number]] as never :
        b[plan.op as (typeof operationNames)[number]] as never
      const before = mutated.description === undefined ? undefined : yield* snapshotOf(call.touched)
      // a millisecond per call: a write then shows in the mutation times the snapshot reads
      yield* TestClock.adjust(Duration.millis(1))
      const exit = yield* Effect.exit(Effect.suspend(() => fn(...mutated.args)))
      counts.calls++
      if (Exit.isSuccess(exit) && !READS.has(plan.op)) writes++
      const where = `#${i} ${plan.op}(${mutated.description ?? "valid arguments"})`
      const problem = judge(exit)
      const record = (what: string) => {
        const key = `${plan.op} ${what.slice(0, 60)}`
        if (!violations.has(key)) violations.set(key, `${where}: ${what}`)
      }
      if (problem !== undefined) record(problem)
      if (Exit.isFailure(exit)) {
        counts.failed++
        if (call.probe !== undefined) {
          const wrote = yield* Effect.orElseSucceed(call.probe, () => "the probe after it failed")
          writes++
          if (wrote !== undefined) record(wrote)
        }
        if (before !== undefined) {
          const after = yield* snapshot(b, fx, call.touched)
          cached = { key: JSON.stringify(call.touched), writes, value: after }
          if (after !== before) record(`a failed call changed the state (value ${preview(mutated.path === undefined ? undefined : getAt(mutated.args, mutated.path))})`)
        }
      }
    }
    if (violations.size > 0) {
      expect.fail(
        `fuzz (seed ${seed}, FUZZ_SEED=${seed} to replay): ${violations.size} violation(s) in ${counts.calls} calls:\n` +
          [...violations.values()].join("\n")
      )
    }
    // the run exercised the engine: most calls failed validation, some went through
    expect(counts.calls).toBeGreaterThan(runs / 2)
    expect(counts.failed).toBeLessThan(counts.calls)
  })

/** Registers the fuzz test of one backend (one engine for the whole run). */
export const fuzzSuite = (
  name: string,
  layer: Layer.Layer<EngineBackend | Maintenance, unknown>,
  options: FuzzOptions
): void => {
  describe(`fuzz: ${name}`, () => {
    sharedLayer(layer, { timeout: options.timeout ?? 120_000 })((it) => {
      it.effect(
        "every operation ends in success or a typed error, a failed call writes nothing, details stay short",
        // ids drawn from a Random seeded like the plan: a run repeats as a whole
        () =>
          Effect.gen(function*() {
            const run = Effect.withRandom(runFuzz(options), Random.make(Number(process.env["FUZZ_SEED"] ?? DEFAULT_SEED)))
            return yield* options.traced === true ? Effect.withTracer(run, yield* passThroughTracer) : run
          }),
        options.timeout ?? 120_000
      )
    })
  })
}
