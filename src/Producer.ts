/**
 * Producer helpers over the `EngineBackend` tag: submit executions with
 * typed (Schema-encoded JSON) input, create a whole flow — members, edges
 * and join policies — in one call, deliver signals, cancel flows, and read
 * typed results.
 *
 * ```ts
 * const Resize = Producer.task({ kind: "resize", input: ResizeInput, output: ResizeOutput })
 * const id = yield* Producer.submit(Resize, { url, width: 640 }, { lane: "images" })
 * const out = yield* Producer.awaitResult(Resize, id)
 * ```
 *
 * @since 0.1.0
 */
import { Clock, Duration, Effect, Either, Option, Schema } from "effect"
import { EngineBackend } from "./EngineBackend.js"
import { type EngineError, invalidInput, rootCause, TimeoutError } from "./EngineError.js"
import * as Ids from "./Ids.js"
import type { ExecutionId, FlowId, LaneId, WaitpointId } from "./Ids.js"
import { decodeJson, encodeJson, JSON_ENCODING, PayloadError } from "./internal/worker/codec.js"
import type * as M from "./Model.js"

export {
  /**
   * A value that could not be encoded to, or decoded from, a JSON payload.
   *
   * @since 0.1.0
   */
  PayloadError
} from "./internal/worker/codec.js"

// ---------------------------------------------------------------------------
// Task specs
// ---------------------------------------------------------------------------

/**
 * The contract between a producer and a worker: an execution kind with the
 * Schemas of its input and its output. Pass it to `submit` / `result` here
 * and spread it into `Worker.handler({ ...spec, run })`.
 *
 * @since 0.1.0
 * @category models
 */
export interface TaskSpec<I, IE, O, OE> {
  readonly kind: string
  readonly input: Schema.Schema<I, IE>
  readonly output: Schema.Schema<O, OE>
}

/**
 * @since 0.1.0
 * @category constructors
 */
export const task = <I, IE, O, OE>(spec: TaskSpec<I, IE, O, OE>): TaskSpec<I, IE, O, OE> => spec

/**
 * An execution ended without a result: `failed`, `cancelled`, `expired` or
 * `skipped`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ExecutionNotCompleted extends Schema.TaggedError<ExecutionNotCompleted>()("ExecutionNotCompleted", {
  executionId: Schema.String,
  publicState: Schema.String
}) {
  override get message(): string {
    return `execution ${this.executionId} ended ${this.publicState}`
  }
}

/**
 * A flow description that cannot be built: an edge to an unknown node, a
 * cycle, a join on a node without inbound edges, a quorum larger than its
 * inbound edges.
 *
 * @since 0.1.0
 * @category errors
 */
export class FlowSpecError extends Schema.TaggedError<FlowSpecError>()("FlowSpecError", {
  detail: Schema.String
}) {
  override get message(): string {
    return `invalid flow: ${this.detail}`
  }
}

// ---------------------------------------------------------------------------
// Submitting
// ---------------------------------------------------------------------------

/** The namespace used when none is given. @since 0.1.0 */
export const DEFAULT_NAMESPACE: Ids.Namespace = Ids.unsafe.namespace("default")

/**
 * @since 0.1.0
 * @category models
 */
export interface ExecutionOptions {
  readonly namespace?: string | undefined
  readonly priority?: number | undefined
  /** Frozen at creation (retries, backoff, timeouts, routing …). */
  readonly policy?: M.ExecutionPolicy | undefined
  readonly tags?: Readonly<Record<string, string>> | undefined
  readonly idempotencyKey?: string | undefined
  readonly creatorIdentity?: string | undefined
  /** Not eligible before now + delay. */
  readonly delay?: Duration.DurationInput | undefined
  /** Ends `expired` at now + deadline if not finished. */
  readonly deadline?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface SubmitOptions extends ExecutionOptions {
  readonly lane: string
  /** Default: a fresh id on the lane's partition (`Ids.executionIdSolo`). */
  readonly executionId?: ExecutionId | undefined
}

const decodeLane = Schema.decodeUnknownEither(Ids.LaneId)

/** A lane id, or `Validation(InvalidInput)`. */
const laneOf = (lane: string): Effect.Effect<LaneId, EngineError> => {
  const decoded = decodeLane(lane)
  return Either.isRight(decoded) ?
    Effect.succeed(decoded.right) :
    Effect.fail(invalidInput(`lane ${JSON.stringify(lane)}: ${decoded.left.message}`))
}

const timeArgs = (options: ExecutionOptions, now: number) => ({
  ...(options.delay === undefined ? {} : { delayUntil: now + Duration.toMillis(Duration.decode(options.delay)) }),
  ...(options.deadline === undefined ?
    {} :
    { executionDeadlineAt: now + Duration.toMillis(Duration.decode(options.deadline)) })
})

const commonArgs = (options: ExecutionOptions) => ({
  namespace: options.namespace === undefined ? DEFAULT_NAMESPACE : Ids.unsafe.namespace(options.namespace),
  ...(options.priority === undefined ? {} : { priority: options.priority }),
  ...(options.policy === undefined ? {} : { policy: options.policy }),
  ...(options.tags === undefined ? {} : { tags: options.tags }),
  ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
  ...(options.creatorIdentity === undefined ? {} : { creatorIdentity: options.creatorIdentity })
})

/**
 * Encodes `input` with the spec's input Schema (JSON) and creates an
 * execution of the spec's kind. Returns its id (the original id when an
 * idempotency key makes it a duplicate).
 *
 * @since 0.1.0
 * @category submitting
 */
export const submit = <I, IE, O, OE>(
  spec: TaskSpec<I, IE, O, OE>,
  input: I,
  options: SubmitOptions
): Effect.Effect<ExecutionId, EngineError | PayloadError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const lane = yield* laneOf(options.lane)
    const payload = yield* encodeJson(spec.input, input, `input of "${spec.kind}"`)
    const executionId = options.executionId ?? (yield* Ids.executionIdSolo(lane))
    const now = yield* Clock.currentTimeMillis
    const created = yield* backend.createExecution({
      executionId,
      laneId: lane,
      executionKind: spec.kind,
      inputPayload: payload,
      payloadEncoding: JSON_ENCODING,
      ...commonArgs(options),
      ...timeArgs(options, now)
    })
    return created.executionId
  }).pipe(Effect.withSpan("Producer.submit", { attributes: { kind: spec.kind, lane: options.lane } }))

// ---------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------

/**
 * One member of a flow: a kind and its encoded input (built with `node`).
 *
 * @since 0.1.0
 * @category models
 */
export interface FlowNode {
  readonly kind: string
  readonly payload: Effect.Effect<Uint8Array, PayloadError>
  readonly options: NodeOptions
}

/**
 * @since 0.1.0
 * @category models
 */
export interface NodeOptions extends ExecutionOptions {
  /** Default: the flow's lane. */
  readonly lane?: string | undefined
}

/**
 * A flow member running `spec` with `input`.
 *
 * @since 0.1.0
 * @category flows
 */
export const node = <I, IE, O, OE>(
  spec: TaskSpec<I, IE, O, OE>,
  input: I,
  options: NodeOptions = {}
): FlowNode => ({
  kind: spec.kind,
  payload: encodeJson(spec.input, input, `input of "${spec.kind}"`),
  options
})

/**
 * A dependency: `to` runs after `from` (per the join policy of `to`).
 *
 * @since 0.1.0
 * @category models
 */
export interface FlowEdge<N extends string> {
  readonly from: N
  readonly to: N
  /** Default `success_only`. */
  readonly dependencyKind?: string | undefined
  /**
   * Copy the upstream's result into the downstream's input when the edge is
   * satisfied (the edge's `dataPassingRef`, here the upstream node's name).
   */
  readonly passOutput?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FlowSpec<N extends string> {
  /** Default: a fresh id. */
  readonly flowId?: FlowId | undefined
  readonly namespace?: string | undefined
  /** Default `dag`. */
  readonly flowKind?: string | undefined
  /** The lane of every node that does not name its own. */
  readonly lane: string
  readonly nodes: { readonly [K in N]: FlowNode }
  readonly edges?: ReadonlyArray<FlowEdge<N>> | undefined
  /** Join policy per downstream node (default `all_of`). Set before any of its edges is applied. */
  readonly joins?: { readonly [K in N]?: M.EdgeDependencyPolicy } | undefined
  /**
   * A node with inbound edges is created delayed by this long, so that no
   * worker can claim it in the moment between its creation and the
   * application of its edges (which blocks it on its dependencies and
   * overrides the delay). Default 5 minutes: also how long such a node
   * waits if this call dies before its edges are applied.
   */
  readonly hold?: Duration.DurationInput | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface CreatedFlow<N extends string> {
  readonly flowId: FlowId
  readonly executions: { readonly [K in N]: ExecutionId }
  readonly edges: ReadonlyArray<{ readonly from: N; readonly to: N; readonly edgeId: Ids.EdgeId }>
}

const DEFAULT_HOLD = Duration.minutes(5)
const STAGE_ATTEMPTS = 10

const checkFlowSpec = <N extends string>(spec: FlowSpec<N>): Either.Either<ReadonlyArray<N>, FlowSpecError> => {
  const names = Object.keys(spec.nodes) as Array<N>
  const known = new Set<string>(names)
  const fail = (detail: string) => Either.left(new FlowSpecError({ detail }))
  if (names.length === 0) return fail("a flow needs at least one node")
  const inbound = new Map<string, number>()
  const outgoing = new Map<string, Array<string>>()
  const seen = new Set<string>()
  for (const e of spec.edges ?? []) {
    if (!known.has(e.from)) return fail(`edge from unknown node "${e.from}"`)
    if (!known.has(e.to)) return fail(`edge to unknown node "${e.to}"`)
    if (e.from === e.to) return fail(`edge from "${e.from}" to itself`)
    const key = `${e.from}\u0000${e.to}`
    if (seen.has(key)) return fail(`duplicate edge "${e.from}" -> "${e.to}"`)
    seen.add(key)
    inbound.set(e.to, (inbound.get(e.to) ?? 0) + 1)
    outgoing.set(e.from, [...(outgoing.get(e.from) ?? []), e.to])
  }
  for (const [name, policy] of Object.entries<M.EdgeDependencyPolicy | undefined>(spec.joins ?? {})) {
    if (policy === undefined) continue
    if (!known.has(name)) return fail(`join on unknown node "${name}"`)
    const n = inbound.get(name) ?? 0
    if (n === 0) return fail(`join on "${name}", which has no inbound edges`)
    if (policy._tag === "quorum" && (policy.k < 1 || policy.k > n)) {
      return fail(`quorum k=${policy.k} on "${name}" must be within 1..${n} (its inbound edges)`)
    }
  }
  // Kahn's algorithm: a topological order exists iff the graph is acyclic.
  const indegree = new Map<string, number>(names.map((n) => [n, inbound.get(n) ?? 0]))
  const order: Array<N> = []
  const ready = names.filter((n) => indegree.get(n) === 0)
  while (ready.length > 0) {
    const n = ready.shift()!
    order.push(n)
    for (const m of outgoing.get(n) ?? []) {
      const d = indegree.get(m)! - 1
      indegree.set(m, d)
      if (d === 0) ready.push(m as N)
    }
  }
  if (order.length !== names.length) return fail("the edges form a cycle")
  return Either.right(order)
}

const isStaleRevision = (e: EngineError): boolean => {
  const root = rootCause(e)
  return root._tag === "Contention" && root.kind === "StaleGraphRevision"
}

/**
 * Creates a flow with its members, join policies and edges in one call:
 * `createFlow`; per node (in topological order) `createExecution` with an id
 * from `Ids.executionIdForFlow` and `addExecutionToFlow`; `setEdgeGroupPolicy`
 * for every join; then per edge `stageDependencyEdge` (with the flow's
 * current `expectedGraphRevision`, re-read and retried when another writer
 * moved it) and `applyDependencyToChild`. Roots are eligible at once; nodes
 * with inbound edges wait for their dependencies.
 *
 * @since 0.1.0
 * @category flows
 */
export const createFlow = <N extends string>(
  spec: FlowSpec<N>
): Effect.Effect<CreatedFlow<N>, EngineError | PayloadError | FlowSpecError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const order = yield* checkFlowSpec(spec)
    const flowId = spec.flowId ?? (yield* Ids.newFlowId)
    const namespace = spec.namespace === undefined ? DEFAULT_NAMESPACE : Ids.unsafe.namespace(spec.namespace)
    yield* backend.createFlow({ flowId, namespace, ...(spec.flowKind === undefined ? {} : { flowKind: spec.flowKind }) })

    const edges = spec.edges ?? []
    const hasInbound = new Set<string>(edges.map((e) => e.to))
    const holdMs = Duration.toMillis(Duration.decode(spec.hold ?? DEFAULT_HOLD))
    const executions: Partial<Record<N, ExecutionId>> = {}
    for (const name of order) {
      const n: FlowNode = spec.nodes[name]
      const lane = yield* laneOf(n.options.lane ?? spec.lane)
      const payload = yield* n.payload
      const executionId = yield* Ids.executionIdForFlow(flowId)
      const now = yield* Clock.currentTimeMillis
      const times = timeArgs(n.options, now)
      yield* backend.createExecution({
        executionId,
        laneId: lane,
        executionKind: n.kind,
        inputPayload: payload,
        payloadEncoding: JSON_ENCODING,
        ...commonArgs({ ...n.options, namespace: n.options.namespace ?? spec.namespace }),
        ...times,
        ...(hasInbound.has(name) && holdMs > 0 ? { delayUntil: Math.max(now + holdMs, times.delayUntil ?? 0) } : {})
      })
      yield* backend.addExecutionToFlow({ flowId, executionId })
      executions[name] = executionId
    }
    const idOf = (name: N): ExecutionId => executions[name]!

    for (const [name, policy] of Object.entries<M.EdgeDependencyPolicy | undefined>(spec.joins ?? {})) {
      if (policy !== undefined) {
        yield* backend.setEdgeGroupPolicy({ flowId, downstreamExecutionId: idOf(name as N), policy })
      }
    }

    const revisionNow = Effect.flatMap(backend.describeFlow(flowId), (snapshot) =>
      Option.isSome(snapshot) ? Effect.succeed(snapshot.value.graphRevision) : Effect.fail(invalidInput(`flow ${flowId} vanished`)))
    let revision = yield* revisionNow
    const staged: Array<{ readonly from: N; readonly to: N; readonly edgeId: Ids.EdgeId }> = []
    for (const e of edges) {
      const edgeId = yield* Ids.newEdgeId
      const args = {
        flowId,
        edgeId,
        upstreamExecutionId: idOf(e.from),
        downstreamExecutionId: idOf(e.to),
        ...(e.dependencyKind === undefined ? {} : { dependencyKind: e.dependencyKind }),
        ...(e.passOutput === true ? { dataPassingRef: e.from } : {})
      }
      for (let attempt = 1;; attempt++) {
        const result = yield* Effect.either(backend.stageDependencyEdge({ ...args, expectedGraphRevision: revision }))
        if (Either.isRight(result)) {
          revision = result.right.newGraphRevision
          break
        }
        if (!isStaleRevision(result.left) || attempt >= STAGE_ATTEMPTS) return yield* result.left
        // Another writer moved the graph (or our own write committed and its reply was lost).
        const existing = yield* backend.describeEdge({ flowId, edgeId })
        revision = yield* revisionNow
        if (Option.isSome(existing)) break
      }
      yield* backend.applyDependencyToChild({ ...args, graphRevision: revision })
      staged.push({ from: e.from, to: e.to, edgeId })
    }
    return { flowId, executions: executions as { readonly [K in N]: ExecutionId }, edges: staged }
  }).pipe(Effect.withSpan("Producer.createFlow", { attributes: { nodes: Object.keys(spec.nodes).length } }))

// ---------------------------------------------------------------------------
// Signals and cancellation
// ---------------------------------------------------------------------------

/**
 * @since 0.1.0
 * @category models
 */
export interface SignalOptions<A, I> {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  /** The waitpoint's HMAC token (from the suspend outcome or `createWaitpoint`). */
  readonly token: string
  readonly name: string
  /** A typed payload, encoded as JSON with its Schema. */
  readonly payload?: { readonly schema: Schema.Schema<A, I>; readonly value: A } | undefined
  readonly category?: string | undefined
  readonly source?: { readonly type: string; readonly identity: string } | undefined
  readonly idempotencyKey?: string | undefined
  readonly correlationId?: string | undefined
  /** Resume this long after the signal satisfies the condition. */
  readonly resumeDelay?: Duration.DurationInput | undefined
}

/**
 * Delivers a signal to a waitpoint with its HMAC token.
 *
 * @since 0.1.0
 * @category signals
 */
export const signal = <A = never, I = never>(
  options: SignalOptions<A, I>
): Effect.Effect<M.DeliverSignalResult, EngineError | PayloadError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const payload = options.payload === undefined ?
      undefined :
      yield* encodeJson(options.payload.schema, options.payload.value, `payload of signal "${options.name}"`)
    return yield* backend.deliverSignal({
      executionId: options.executionId,
      waitpointId: options.waitpointId,
      signalId: yield* Ids.newSignalId,
      signalName: options.name,
      waitpointToken: options.token,
      ...(payload === undefined ? {} : { payload, payloadEncoding: JSON_ENCODING }),
      ...(options.category === undefined ? {} : { signalCategory: options.category }),
      ...(options.source === undefined ?
        {} :
        { sourceType: options.source.type, sourceIdentity: options.source.identity }),
      ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
      ...(options.correlationId === undefined ? {} : { correlationId: options.correlationId }),
      ...(options.resumeDelay === undefined ?
        {} :
        { resumeDelayMs: Duration.toMillis(Duration.decode(options.resumeDelay)) })
    })
  }).pipe(Effect.withSpan("Producer.signal", { attributes: { execution_id: options.executionId, signal: options.name } }))

/**
 * Decodes a signal's JSON payload with `schema`.
 *
 * @since 0.1.0
 * @category signals
 */
export const signalPayload = <A, I>(
  schema: Schema.Schema<A, I>,
  signal: M.ResumeSignal
): Effect.Effect<A, PayloadError> =>
  decodeJson(schema, signal.payload ?? new Uint8Array(0), `payload of signal "${signal.signalName}"`)

/**
 * @since 0.1.0
 * @category models
 */
export interface CancelFlowOptions {
  /** Default `CancelAll`. */
  readonly policy?: M.CancelFlowPolicy | undefined
  /**
   * How long to wait for the cancellation to finish: a duration
   * (`WaitTimeout`, fails with `Timeout{op:"cancel_flow"}` when it does not),
   * `"indefinite"` (`WaitIndefinite`, 300 s ceiling) or `"none"` (default).
   */
  readonly wait?: Duration.DurationInput | "indefinite" | "none" | undefined
  readonly reason?: string | undefined
}

/**
 * Cancels a flow with a policy and a wait mode.
 *
 * @since 0.1.0
 * @category flows
 */
export const cancelFlow = (
  flowId: FlowId,
  options: CancelFlowOptions = {}
): Effect.Effect<M.CancelFlowResult, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (backend) => {
    const w = options.wait
    const wait: M.CancelFlowWait = w === undefined || w === "none" ?
      { _tag: "NoWait" } :
      w === "indefinite" ?
      { _tag: "WaitIndefinite" } :
      { _tag: "WaitTimeout", timeout: Duration.decode(w) }
    return backend.cancelFlow({
      flowId,
      policy: options.policy ?? "CancelAll",
      wait,
      ...(options.reason === undefined ? {} : { reason: options.reason })
    })
  }).pipe(Effect.withSpan("Producer.cancelFlow", { attributes: { flow_id: flowId } }))

// ---------------------------------------------------------------------------
// Results
// ---------------------------------------------------------------------------

const TERMINAL: ReadonlySet<M.PublicState> = new Set(["completed", "failed", "cancelled", "expired", "skipped"])

/**
 * `true` for the public states an execution never leaves (except by replay).
 *
 * @since 0.1.0
 * @category results
 */
export const isTerminal = (state: M.PublicState): boolean => TERMINAL.has(state)

/**
 * The decoded result of a completed execution; `None` while it has none
 * (not finished, not successful, or completed without a payload).
 *
 * @since 0.1.0
 * @category results
 */
export const result = <I, IE, O, OE>(
  spec: TaskSpec<I, IE, O, OE>,
  executionId: ExecutionId
): Effect.Effect<Option.Option<O>, EngineError | PayloadError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const bytes = yield* backend.getExecutionResult(executionId)
    if (Option.isNone(bytes)) return Option.none()
    return Option.some(yield* decodeJson(spec.output, bytes.value, `result of ${executionId}`))
  })

/**
 * @since 0.1.0
 * @category models
 */
export interface AwaitOptions {
  /** Default 100 ms. */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Fails with `Timeout{op:"await_execution"}` after this long (default: wait forever). */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Polls `readExecutionState` until the execution is terminal and returns
 * that state.
 *
 * @since 0.1.0
 * @category results
 */
export const awaitTerminal = (
  executionId: ExecutionId,
  options: AwaitOptions = {}
): Effect.Effect<M.PublicState, EngineError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const start = yield* Clock.currentTimeMillis
    const limit = options.timeout === undefined ? undefined : Duration.decode(options.timeout)
    const interval = options.pollInterval ?? Duration.millis(100)
    for (;;) {
      const state = yield* backend.readExecutionState(executionId)
      if (Option.isNone(state)) return yield* invalidInput(`execution ${executionId} does not exist`)
      if (isTerminal(state.value)) return state.value
      if (limit !== undefined && (yield* Clock.currentTimeMillis) - start >= Duration.toMillis(limit)) {
        return yield* new TimeoutError({ op: "await_execution", elapsed: limit })
      }
      yield* Effect.sleep(interval)
    }
  })

/**
 * Waits for the execution to finish and returns its decoded result; an
 * execution that ends otherwise fails with `ExecutionNotCompleted`.
 *
 * @since 0.1.0
 * @category results
 */
export const awaitResult = <I, IE, O, OE>(
  spec: TaskSpec<I, IE, O, OE>,
  executionId: ExecutionId,
  options: AwaitOptions = {}
): Effect.Effect<O, EngineError | PayloadError | ExecutionNotCompleted, EngineBackend> =>
  Effect.gen(function*() {
    const state = yield* awaitTerminal(executionId, options)
    if (state !== "completed") return yield* new ExecutionNotCompleted({ executionId, publicState: state })
    const value = yield* result(spec, executionId)
    if (Option.isSome(value)) return value.value
    // completed without a payload: decode JSON null (an output of Schema.Void / Schema.Null / optional)
    return yield* decodeJson(spec.output, new Uint8Array(0), `result of ${executionId}`)
  })
