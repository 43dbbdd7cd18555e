/**
 * Shared machinery of the conformance suite: how a test gets its engine, ids
 * that never collide with another test's, time control, and the small
 * recipes (create + claim, suspend, build a flow, seed HMAC) the area files
 * are written with. Everything here talks to the `EngineBackend` and
 * `Maintenance` tags only.
 */
import { expect } from "@effect/vitest"
import { Clock, Duration, Effect, Either, Exit, Fiber, Option, TestClock, TestServices } from "effect"
import { EngineBackend } from "../../src/EngineBackend.js"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { BudgetId, EdgeId, ExecutionId, FlowId, LaneId, WaitpointId } from "../../src/Ids.js"
import { decodeHandle, makeHandle } from "../../src/internal/handleCodec.js"
import { Maintenance, type PassName, type PassResult } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"

// ---------------------------------------------------------------------------
// Options and the test registrar
// ---------------------------------------------------------------------------

/**
 * What a backend may declare about itself. Every knob is a place where two
 * shapes are allowed; everything else is one behaviour.
 */
export interface SuiteOptions {
  /**
   * `true` (default): the layer is built for every test, so every test sees an
   * empty engine (and a `TestClock` at 0). `false`: the layer is built once
   * for the whole suite (server backends); tests then rely on unique lanes,
   * flows and ids, time only moves forward, and the few tests that need an
   * empty engine (empty keystore, `Seeded`, exact pass counts) are skipped.
   */
  readonly fresh?: boolean
  /**
   * Shape of `rotateWaitpointHmacSecretAll`: one entry per flow partition in
   * index order (canonical Valkey keystore replicated on every partition), or
   * a single entry with `partition = 0` (one global keystore: memory,
   * Postgres). Every entry carries the same outcome; in both
   * shapes `gcCount` counts the kids the rotation collected. Default
   * `"perPartition"`.
   */
  readonly rotateEntries?: "perPartition" | "single"
  /** `numFlowPartitions` of the deployment under test (default 256). */
  readonly numFlowPartitions?: number
  /** vitest timeout of one test in ms (default 30 000). */
  readonly timeout?: number
}

export interface ResolvedOptions {
  readonly fresh: boolean
  readonly rotateEntries: "perPartition" | "single"
  readonly numFlowPartitions: number
  readonly timeout: number
}

export const resolveOptions = (o: SuiteOptions | undefined): ResolvedOptions => ({
  fresh: o?.fresh ?? true,
  rotateEntries: o?.rotateEntries ?? "perPartition",
  numFlowPartitions: o?.numFlowPartitions ?? 256,
  timeout: o?.timeout ?? 30_000
})

/** What a test body may use. */
export type Env = EngineBackend | Maintenance | TestServices.TestServices
export type Body = Effect.Effect<void, unknown, Env>

export interface Tester {
  readonly options: ResolvedOptions
  /**
   * A test that works on a fresh and on a shared engine; `timeoutMs` overrides the suite's timeout
   * for a test that makes thousands of calls (a loaded machine needs the room).
   */
  readonly test: (name: string, body: () => Body, timeoutMs?: number) => void
  /** A test that needs an engine no other test touched; not registered when the layer is shared. */
  readonly freshOnly: (name: string, body: () => Body) => void
}

// ---------------------------------------------------------------------------
// Services, time
// ---------------------------------------------------------------------------

export const backend = EngineBackend
export const maintenance = Maintenance

export const NS = Ids.unsafe.namespace("conformance")
export const WORKER = Ids.unsafe.workerId("worker-1")
export const INSTANCE = Ids.unsafe.workerInstanceId("worker-1-i1")

export const now: Effect.Effect<number> = Clock.currentTimeMillis

/** Moves the `TestClock` forward (every backend reads time from Effect's Clock in the suite). */
export const advance = (ms: number): Effect.Effect<void> => TestClock.adjust(Duration.millis(ms))

/** A short real-time pause so that I/O of a server backend can complete while a fiber is driven. */
const liveTick: Effect.Effect<void> = TestServices.provideLive(Effect.sleep(Duration.millis(1)))

/**
 * Drives a forked fiber to completion: repeatedly runs `tick` (e.g. a
 * maintenance pass) and moves the clock by `stepMs`, until the fiber is done
 * or `maxSteps` is reached. Returns the fiber's exit.
 */
export const drive = <A, E>(
  fiber: Fiber.RuntimeFiber<A, E>,
  options?: {
    readonly stepMs?: number
    readonly maxSteps?: number
    readonly tick?: Effect.Effect<unknown, unknown, Env>
  }
): Effect.Effect<Exit.Exit<A, E>, unknown, Env> =>
  Effect.gen(function*() {
    const step = options?.stepMs ?? 100
    const max = options?.maxSteps ?? 4_000
    for (let i = 0; i < max; i++) {
      yield* liveTick
      if (Option.isSome(yield* Fiber.poll(fiber))) break
      if (options?.tick !== undefined) yield* options.tick
      yield* TestClock.adjust(Duration.millis(step))
    }
    return yield* Fiber.await(fiber)
  })

/** Forks `effect`, drives the clock until it ends, and returns its exit. */
export const runDriven = <A, E>(
  effect: Effect.Effect<A, E, Env>,
  options?: Parameters<typeof drive>[1]
): Effect.Effect<Exit.Exit<A, E>, unknown, Env> =>
  Effect.flatMap(Effect.fork(effect), (fiber) => drive(fiber, options))

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

type Tag = EngineError["_tag"]
export type ErrorOf<T extends Tag> = Extract<EngineError, { readonly _tag: T }>

const describeValue = (u: unknown): string => {
  try {
    return JSON.stringify(u, (_k, v: unknown) => (v instanceof Uint8Array ? `<${v.length} bytes>` : v))
  } catch {
    return String(u)
  }
}

/**
 * Runs `effect`, expects it to fail with `_tag` (and `kind` when given), and
 * returns the error for further checks.
 */
export const failsWith = <T extends Tag, A, R>(
  effect: Effect.Effect<A, EngineError, R>,
  tag: T,
  kind?: string
): Effect.Effect<ErrorOf<T>, never, R> =>
  Effect.map(Effect.either(effect), (result) => {
    if (Either.isRight(result)) {
      return expect.fail(`expected ${tag}${kind === undefined ? "" : `(${kind})`}, got success ${describeValue(result.right)}`)
    }
    const e = result.left
    const got: { _tag: string; kind?: unknown } = { _tag: e._tag }
    if ("kind" in e) got.kind = e.kind
    const want: { _tag: string; kind?: unknown } = { _tag: tag }
    if (kind !== undefined) want.kind = kind
    else if ("kind" in e) want.kind = e.kind
    expect(got, `error was ${describeValue(e)}`).toEqual(want)
    return e as ErrorOf<T>
  })

/** `failsWith(…, "Validation", kind)` that also checks the detail contains `detail`. */
export const validationFails = <A, R>(
  effect: Effect.Effect<A, EngineError, R>,
  kind: string,
  detail?: string
): Effect.Effect<ErrorOf<"Validation">, never, R> =>
  Effect.tap(failsWith(effect, "Validation", kind), (e) =>
    Effect.sync(() => {
      if (detail !== undefined) expect(e.detail).toContain(detail)
    }))

// ---------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------

/** A lane no other test uses. */
export const newLane = (prefix = "ct"): Effect.Effect<LaneId> =>
  Effect.map(Ids.randomUuid, (u) => Ids.unsafe.laneId(`${prefix}-${u.slice(0, 13)}`))

/** An execution id on flow partition `p`, whatever lane it runs on. */
export const executionIdOnPartition = (p: number): Effect.Effect<ExecutionId> =>
  Effect.map(Ids.randomUuid, (u) => `{fp:${p}}:${u}` as ExecutionId)

/** A fresh flow id whose partition is `p`. */
export const flowIdOnPartition = (p: number, numFlowPartitions = 256): Effect.Effect<FlowId> =>
  Effect.gen(function*() {
    for (;;) {
      const id = yield* Ids.newFlowId
      if (Ids.flowPartition(id, { ...Ids.defaultPartitionConfig, numFlowPartitions }) === p) return id
    }
  })

export const partitionKeyOf = (id: ExecutionId): M.ListExecutionsArgs["partition"] =>
  Ids.partitionKey("Flow", Ids.executionPartition(id))

// ---------------------------------------------------------------------------
// Executions
// ---------------------------------------------------------------------------

export type CreateOptions = Partial<M.CreateExecutionArgsInput> & { readonly flowId?: FlowId }

export interface Created {
  readonly executionId: ExecutionId
  readonly lane: LaneId
  readonly result: M.CreateExecutionResult
}

/** Creates an execution (on a new lane unless one is given) and checks it was `Created`. */
export const create = (options: CreateOptions = {}): Effect.Effect<Created, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const { flowId, ...rest } = options
    const lane = options.laneId ?? (yield* newLane())
    const executionId = options.executionId ??
      (flowId !== undefined ? yield* Ids.executionIdForFlow(flowId) : yield* Ids.executionIdSolo(lane))
    const result = yield* b.createExecution({
      namespace: NS,
      executionKind: "conformance",
      ...rest,
      executionId,
      laneId: lane
    })
    expect(result, "createExecution").toMatchObject({ _tag: "Created", executionId })
    return { executionId, lane, result }
  })

/**
 * A lane over three partitions whose heads need a capability: partition 0 holds `g0` (needs gpu,
 * priority 2) then `y`; partition 1 holds `g1` (needs gpu, priority 1) then `z`; partition 2 holds
 * `x`, created in the order g0, g1, z, x, y a millisecond apart. Without gpu the claim order is
 * z, x, y (FIFO); with gpu, g0 and g1 come first.
 */
export const gpuHeadsAcrossPartitions = (lane: LaneId, numFlowPartitions: number) =>
  Effect.gen(function*() {
    const on = (p: number) => executionIdOnPartition(p % numFlowPartitions)
    const gpu = { routingRequirements: { requiredCapabilities: ["gpu"] } }
    const next = <A, E, R>(created: Effect.Effect<A, E, R>) => Effect.zipLeft(created, advance(1))
    const g0 = yield* next(create({ laneId: lane, executionId: yield* on(0), priority: 2, policy: gpu }))
    const g1 = yield* next(create({ laneId: lane, executionId: yield* on(1), priority: 1, policy: gpu }))
    const z = yield* next(create({ laneId: lane, executionId: yield* on(1) }))
    const x = yield* next(create({ laneId: lane, executionId: yield* on(2) }))
    const y = yield* next(create({ laneId: lane, executionId: yield* on(0) }))
    return { g0, g1, z, x, y }
  })

export interface ClaimOptions {
  readonly tokens?: ReadonlyArray<string>
  readonly ttl?: number
  readonly worker?: string
  readonly instance?: string
}

export const claimArgs = (lane: LaneId, o: ClaimOptions = {}): M.ClaimArgs => ({
  lane,
  capabilities: { tokens: o.tokens ?? [] },
  policy: {
    workerId: o.worker === undefined ? WORKER : Ids.unsafe.workerId(o.worker),
    workerInstanceId: o.instance === undefined ? INSTANCE : Ids.unsafe.workerInstanceId(o.instance),
    leaseTtlMs: o.ttl ?? 30_000
  }
})

/** `claim` on `lane`: `Option<Handle>`. */
export const claimOn = (lane: LaneId, o?: ClaimOptions) =>
  Effect.flatMap(EngineBackend, (b) => b.claim(claimArgs(lane, o)))

/** `claim` on `lane` that must yield a handle. */
export const claimSome = (lane: LaneId, o?: ClaimOptions): Effect.Effect<M.Handle, EngineError, EngineBackend> =>
  Effect.map(claimOn(lane, o), (h) => Option.getOrElse(h, () => expect.fail(`claim on ${lane} returned None`)))

/** `claim` on `lane` that must yield nothing. */
export const claimNone = (lane: LaneId, o?: ClaimOptions): Effect.Effect<void, EngineError, EngineBackend> =>
  Effect.map(claimOn(lane, o), (h) => {
    if (Option.isSome(h)) {
      expect.fail(`claim on ${lane} should return None, got ${describeValue(payloadOf(h.value))}`)
    }
  })

export interface Claimed extends Created {
  readonly handle: M.Handle
}

/** Creates an execution on a fresh lane and claims it. */
export const createAndClaim = (
  options: CreateOptions = {},
  claim: ClaimOptions = {}
): Effect.Effect<Claimed, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const c = yield* create(options)
    const handle = yield* claimSome(c.lane, claim)
    expect(payloadOf(handle).executionId).toBe(c.executionId)
    return { ...c, handle }
  })

/** The decoded payload of a handle (the v2 codec every backend shares). */
export const payloadOf = (h: M.Handle): M.HandlePayload =>
  Either.getOrElse(decodeHandle(h.backend, h), (e) => expect.fail(`cannot decode handle: ${describeValue(e)}`))

/** A handle with some payload fields replaced (forged), for fencing tests. */
export const forgeHandle = (h: M.Handle, patch: Partial<M.HandlePayload>, kind?: M.HandleKind): M.Handle =>
  makeHandle(h.backend, kind ?? h.kind, { ...payloadOf(h), ...patch })

export const snapshot = (id: ExecutionId): Effect.Effect<M.ExecutionSnapshot, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.describeExecution(id), (s) => Option.getOrElse(s, () => expect.fail(`describeExecution(${id}) is None`))))

export const publicState = (id: ExecutionId): Effect.Effect<M.PublicState, EngineError, EngineBackend> =>
  Effect.map(snapshot(id), (s) => s.publicState)

export const info = (id: ExecutionId): Effect.Effect<M.ExecutionInfo, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.readExecutionInfo(id), (s) => Option.getOrElse(s, () => expect.fail(`readExecutionInfo(${id}) is None`))))

export const vector = (id: ExecutionId): Effect.Effect<M.StateVector, EngineError, EngineBackend> =>
  Effect.map(info(id), (i) => i.stateVector)

/** Checks the public state of several executions at once (one readable diff on failure). */
export const expectStates = (
  expected: ReadonlyArray<readonly [ExecutionId, M.PublicState]>
): Effect.Effect<void, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const got: Array<string> = []
    for (const [id] of expected) got.push(`${id} ${yield* publicState(id)}`)
    expect(got).toEqual(expected.map(([id, s]) => `${id} ${s}`))
  })

export const isAbsent = (id: ExecutionId): Effect.Effect<void, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.describeExecution(id), (s) => {
      expect(Option.isNone(s), `execution ${id} should not exist`).toBe(true)
    }))

/** Runs one maintenance pass. */
export const pass = (name: PassName, batchSize?: number): Effect.Effect<PassResult, EngineError, Maintenance> =>
  Effect.flatMap(Maintenance, (m) => m[name](batchSize === undefined ? undefined : { batchSize }))

/** Runs a pass until it reports no more due work (bounded). */
export const passUntilDone = (name: PassName): Effect.Effect<number, EngineError, Maintenance> =>
  Effect.gen(function*() {
    let total = 0
    for (let i = 0; i < 50; i++) {
      const r = yield* pass(name)
      expect(r.pass).toBe(name)
      total += r.processed
      if (!r.more) break
    }
    return total
  })

/** The safety-net passes a flow may lean on (dependency reconciliation and the cancel backlog). */
export const settleFlows: Effect.Effect<void, EngineError, Maintenance> = Effect.asVoid(
  Effect.all([passUntilDone("reconcileDependencies"), passUntilDone("drainCancelBacklog")])
)

export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)
export const text = (b: Uint8Array): string => new TextDecoder().decode(b)

// ---------------------------------------------------------------------------
// HMAC keystore
// ---------------------------------------------------------------------------

export const SEED_KID = "ct-k1"
export const SEED_SECRET = "0123456789abcdef".repeat(4)

export const randomSecret: Effect.Effect<string> = Effect.map(
  Effect.all([Ids.randomUuid, Ids.randomUuid]),
  ([a, b]) => (a + b).replace(/-/g, "")
)

/**
 * Makes sure the keystore has a current kid. On a shared engine a rotation
 * test may already have replaced the seed kid, which makes `seed` refuse
 * ("use rotate"): that is fine, a keystore exists.
 */
export const ensureHmac: Effect.Effect<void, EngineError, EngineBackend> = Effect.gen(function*() {
  const b = yield* EngineBackend
  const r = yield* Effect.either(b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: SEED_SECRET }))
  if (Either.isLeft(r)) {
    const e = r.left
    if (e._tag === "Validation" && e.kind === "InvalidInput" && e.detail.includes("rotate")) return
    return yield* Effect.fail(e)
  }
})

/** The kid of a `kid:digest` token. */
export const kidOf = (token: string): string => token.slice(0, token.indexOf(":"))

// ---------------------------------------------------------------------------
// Suspension and signals
// ---------------------------------------------------------------------------

export interface SuspendSingleOptions {
  readonly signalName?: string
  readonly timeoutAt?: number
  readonly timeoutBehavior?: M.SuspendArgs["timeoutBehavior"]
  readonly reasonCode?: string
  readonly idempotencyKey?: string
}

export interface Suspended {
  readonly outcome: M.SuspendOutcome
  readonly waitpointId: WaitpointId
  readonly waitpointKey: string
  readonly token: string
  readonly args: M.SuspendArgsInput
}

/** Suspend args waiting for one signal (by name, or any) on one fresh waitpoint. */
export const singleSuspendArgs = (o: SuspendSingleOptions = {}): Effect.Effect<M.SuspendArgsInput> =>
  Effect.gen(function*() {
    const wp = yield* Ids.freshWaitpointBinding
    const suspensionId = yield* Ids.newSuspensionId
    const args: M.SuspendArgsInput = {
      suspensionId,
      waitpoints: [{ _tag: "Fresh", waitpointId: wp.waitpointId, waitpointKey: wp.waitpointKey }],
      resumeCondition: {
        _tag: "Single",
        waitpointKey: wp.waitpointKey,
        matcher: o.signalName === undefined ? { _tag: "Wildcard" } : { _tag: "ByName", name: o.signalName }
      },
      ...(o.timeoutAt === undefined ? {} : { timeoutAt: o.timeoutAt }),
      ...(o.timeoutBehavior === undefined ? {} : { timeoutBehavior: o.timeoutBehavior }),
      ...(o.reasonCode === undefined ? {} : { reasonCode: o.reasonCode }),
      ...(o.idempotencyKey === undefined ? {} : { idempotencyKey: o.idempotencyKey })
    }
    return args
  })

/** Suspends `handle` on one fresh waitpoint and checks the outcome is `Suspended`. */
export const suspendSingle = (
  handle: M.Handle,
  o: SuspendSingleOptions = {}
): Effect.Effect<Suspended & { readonly suspendedHandle: M.Handle }, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const args = yield* singleSuspendArgs(o)
    const outcome = yield* b.suspend(handle, args)
    if (outcome._tag !== "Suspended") return expect.fail(`expected Suspended, got ${outcome._tag}`)
    const first = args.waitpoints[0]!
    expect(outcome.details.waitpointId).toBe(first.waitpointId)
    return {
      outcome,
      waitpointId: outcome.details.waitpointId,
      waitpointKey: outcome.details.waitpointKey,
      token: outcome.details.waitpointToken,
      args,
      suspendedHandle: outcome.handle
    }
  })

export interface SignalOptions {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  readonly token: string
  readonly name?: string
  readonly idempotencyKey?: string
  readonly payload?: Uint8Array
  readonly resumeDelayMs?: number
  readonly sourceType?: string
  readonly sourceIdentity?: string
  readonly maxSignalsPerExecution?: number
  readonly dedupTtlMs?: number
}

export const signalArgs = (o: SignalOptions): Effect.Effect<M.DeliverSignalArgsInput> =>
  Effect.map(Ids.newSignalId, (signalId) => ({
    executionId: o.executionId,
    waitpointId: o.waitpointId,
    signalId,
    signalName: o.name ?? "go",
    signalCategory: "test",
    sourceType: o.sourceType ?? "test",
    sourceIdentity: o.sourceIdentity ?? "suite",
    waitpointToken: o.token,
    ...(o.idempotencyKey === undefined ? {} : { idempotencyKey: o.idempotencyKey }),
    ...(o.payload === undefined ? {} : { payload: o.payload }),
    ...(o.resumeDelayMs === undefined ? {} : { resumeDelayMs: o.resumeDelayMs }),
    ...(o.maxSignalsPerExecution === undefined ? {} : { maxSignalsPerExecution: o.maxSignalsPerExecution }),
    ...(o.dedupTtlMs === undefined ? {} : { dedupTtlMs: o.dedupTtlMs })
  }))

/** Delivers a signal. */
export const signal = (o: SignalOptions): Effect.Effect<M.DeliverSignalResult, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    return yield* b.deliverSignal(yield* signalArgs(o))
  })

/** Delivers a signal that must be `Accepted` with `effect`. */
export const signalAccepted = (
  o: SignalOptions,
  effect: M.SignalEffect
): Effect.Effect<M.DeliverSignalResult & { readonly _tag: "Accepted" }, EngineError, EngineBackend> =>
  Effect.map(signal(o), (r) => {
    expect(r).toMatchObject({ _tag: "Accepted", effect })
    return r as M.DeliverSignalResult & { readonly _tag: "Accepted" }
  })

// ---------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------

export const createFlow = (flowId?: FlowId): Effect.Effect<FlowId, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const id = flowId ?? (yield* Ids.newFlowId)
    const r = yield* b.createFlow({ flowId: id, namespace: NS })
    expect(r).toEqual({ _tag: "Created", flowId: id })
    return id
  })

export const flowSnapshot = (id: FlowId): Effect.Effect<M.FlowSnapshot, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (b) =>
    Effect.map(b.describeFlow(id), (s) => Option.getOrElse(s, () => expect.fail(`describeFlow(${id}) is None`))))

/** Creates an execution co-located with `flowId` (on its own new lane) and adds it to the flow. */
export const addMember = (flowId: FlowId, options: CreateOptions = {}): Effect.Effect<Created, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const c = yield* create({ ...options, flowId })
    const r = yield* b.addExecutionToFlow({ flowId, executionId: c.executionId })
    expect(r._tag).toBe("Added")
    return c
  })

/** Stages an edge at the flow's current revision and applies it to the child. */
export const addEdge = (
  flowId: FlowId,
  upstream: ExecutionId,
  downstream: ExecutionId,
  options: { readonly dataPassingRef?: string } = {}
): Effect.Effect<EdgeId, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const edgeId = yield* Ids.newEdgeId
    const flow = yield* flowSnapshot(flowId)
    const staged = yield* b.stageDependencyEdge({
      flowId,
      edgeId,
      upstreamExecutionId: upstream,
      downstreamExecutionId: downstream,
      expectedGraphRevision: flow.graphRevision,
      ...(options.dataPassingRef === undefined ? {} : { dataPassingRef: options.dataPassingRef })
    })
    expect(staged).toEqual({ _tag: "Staged", edgeId, newGraphRevision: flow.graphRevision + 1 })
    const applied = yield* b.applyDependencyToChild({
      flowId,
      edgeId,
      upstreamExecutionId: upstream,
      downstreamExecutionId: downstream,
      ...(options.dataPassingRef === undefined ? {} : { dataPassingRef: options.dataPassingRef })
    })
    expect(applied._tag).toBe("Applied")
    return edgeId
  })

export interface FlowFixture {
  readonly flowId: FlowId
  readonly members: ReadonlyArray<Created>
  readonly ids: ReadonlyArray<ExecutionId>
}

/**
 * A flow with `size` members (each on its own lane) and the given edges
 * (`[upstreamIndex, downstreamIndex]`); `policies` set join policies by
 * downstream index before any edge is applied.
 */
export const buildFlow = (
  size: number,
  edges: ReadonlyArray<readonly [number, number]> = [],
  policies: Readonly<Record<number, M.EdgeDependencyPolicy>> = {}
): Effect.Effect<FlowFixture, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const flowId = yield* createFlow()
    const members: Array<Created> = []
    for (let i = 0; i < size; i++) members.push(yield* addMember(flowId))
    const ids = members.map((m) => m.executionId)
    for (const [k, policy] of Object.entries(policies)) {
      const r = yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: ids[Number(k)]!, policy })
      expect(r._tag).toBe("Set")
    }
    for (const [u, d] of edges) yield* addEdge(flowId, ids[u]!, ids[d]!)
    return { flowId, members, ids }
  })

/** The edge group of `downstream` in the flow snapshot. */
export const edgeGroup = (flowId: FlowId, downstream: ExecutionId) =>
  Effect.map(flowSnapshot(flowId), (f) => {
    const g = f.edgeGroups.find((x) => x.downstreamExecutionId === downstream)
    return g ?? expect.fail(`no edge group for ${downstream}`)
  })

// ---------------------------------------------------------------------------
// Budgets
// ---------------------------------------------------------------------------

export const createBudget = (
  dims: ReadonlyArray<readonly [string, number, number]>,
  o: { readonly resetIntervalMs?: number } = {}
): Effect.Effect<BudgetId, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const b = yield* EngineBackend
    const budgetId = yield* Ids.newBudgetId
    const r = yield* b.createBudget({
      budgetId,
      scopeType: "tenant",
      scopeId: "conformance",
      dimensions: dims.map((d) => d[0]),
      hardLimits: dims.map((d) => d[1]),
      softLimits: dims.map((d) => d[2]),
      ...(o.resetIntervalMs === undefined ? {} : { resetIntervalMs: o.resetIntervalMs })
    })
    expect(r).toEqual({ _tag: "Created", budgetId })
    return budgetId
  })

export const usage = (budgetId: BudgetId, dims: Record<string, number>, dedupKey?: string) =>
  Effect.flatMap(EngineBackend, (b) =>
    b.reportUsageAdmin({
      budgetId,
      dimensions: Object.keys(dims),
      deltas: Object.values(dims),
      ...(dedupKey === undefined ? {} : { dedupKey })
    }))
