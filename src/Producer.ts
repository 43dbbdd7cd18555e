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
import type { Fiber } from "effect"
import { Clock, Context, DefaultServices, Duration, Effect, Either, Option, Random, Schema } from "effect"
import { createHash, randomUUID } from "node:crypto"
import { EngineBackend } from "./EngineBackend.js"
import { type EngineError, invalidInput, notFound, Timeout } from "./EngineError.js"
import * as Ids from "./Ids.js"
import type { ExecutionId, FlowId, LaneId, WaitpointId } from "./Ids.js"
import { topologicalOrder } from "./internal/graph.js"
import { withSpanWhenTraced } from "./internal/observability.js"
import { builtInTracer, currentTraceParent } from "./internal/traceContext.js"
import { decodeJson, encodeJson, JSON_ENCODING, jsonEncoder, PayloadError } from "./internal/worker/codec.js"
import { FailureClass } from "./Model.js"
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
 * `skipped`. `reason` says why when the engine knows: the last failure's
 * message for `failed` and `expired` (with its `classification` and
 * `category`), the cancellation's reason for `cancelled`. The attempts that
 * led there are in `describeExecution(executionId).attemptHistory`.
 *
 * @since 0.1.0
 * @category errors
 */
export class ExecutionNotCompleted extends Schema.TaggedError<ExecutionNotCompleted>()("ExecutionNotCompleted", {
  executionId: Schema.String,
  publicState: Schema.String,
  reason: Schema.optional(Schema.String),
  classification: Schema.optional(FailureClass),
  category: Schema.optional(Schema.String)
}) {
  override get message(): string {
    const cls = this.classification === undefined ? "" : ` (${this.classification})`
    const why = this.reason === undefined ? "" : `: ${this.reason}`
    return `execution ${this.executionId} ended ${this.publicState}${cls}${why}`
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

/** The current span's context, stored with the execution so that its attempts join this trace. */
const traceArgs = Effect.map(currentTraceParent, (traceParent) => (traceParent === undefined ? {} : { traceParent }))

const commonArgs = (options: ExecutionOptions) => ({
  namespace: options.namespace === undefined ? DEFAULT_NAMESPACE : Ids.unsafe.namespace(options.namespace),
  ...(options.priority === undefined ? {} : { priority: options.priority }),
  ...(options.policy === undefined ? {} : { policy: options.policy }),
  ...(options.tags === undefined ? {} : { tags: options.tags }),
  ...(options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
  ...(options.creatorIdentity === undefined ? {} : { creatorIdentity: options.creatorIdentity })
})

/** Each spec's input encoder, made at its first submit (a spec is usually made once, with `task`). */
const inputEncoders = new WeakMap<object, (value: never) => Effect.Effect<Uint8Array, PayloadError>>()

const inputEncoder = <I, IE, O, OE>(spec: TaskSpec<I, IE, O, OE>): (value: I) => Effect.Effect<Uint8Array, PayloadError> => {
  let encoder = inputEncoders.get(spec)
  if (encoder === undefined) {
    encoder = jsonEncoder(spec.input, `input of "${spec.kind}"`)
    inputEncoders.set(spec, encoder)
  }
  return encoder as (value: I) => Effect.Effect<Uint8Array, PayloadError>
}

const liveRandom = Context.get(DefaultServices.liveServices, Random.Random)

/**
 * The usual submit in one step of the fiber: a valid lane, an input that encodes without an
 * asynchronous step, the live `Random` (ids from `randomUUID`), no tracing. `undefined` when any of
 * that does not hold: `submit` then takes its general path, which decides and explains.
 */
const submitNow = <I, IE, O, OE>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  spec: TaskSpec<I, IE, O, OE>,
  input: I,
  options: SubmitOptions
): Effect.Effect<ExecutionId, EngineError | PayloadError, EngineBackend> | undefined => {
  const services = fiber.currentDefaultServices
  if (typeof options.lane !== "string" || Ids.checkLaneId(options.lane) !== undefined) return undefined
  if (options.executionId === undefined && Context.get(services, Random.Random) !== liveRandom) return undefined
  const encoded = inputEncoder(spec)(input)
  if (!Either.isEither(encoded)) return undefined
  const payload = encoded as Either.Either<Uint8Array, PayloadError>
  if (Either.isLeft(payload)) return Either.left(payload.left)
  const lane = options.lane as LaneId
  const backend = Context.get(fiber.currentContext as Context.Context<EngineBackend>, EngineBackend)
  const now = Context.get(services, Clock.Clock).unsafeCurrentTimeMillis()
  return Effect.map(
    backend.createExecution({
      executionId: options.executionId ?? Ids.deterministicExecutionIdSolo(lane, randomUUID()),
      laneId: lane,
      executionKind: spec.kind,
      inputPayload: payload.right,
      payloadEncoding: JSON_ENCODING,
      ...commonArgs(options),
      ...timeArgs(options, now)
    }),
    (created) => created.executionId
  )
}

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
  Effect.withFiberRuntime((fiber) =>
    (fiber.currentTracer === builtInTracer ? submitNow(fiber, spec, input, options) : undefined) ??
      submitTraced(spec, input, options)
  )

/** `submit`'s general path, in a span `Producer.submit` when a tracer records spans. */
const submitTraced = <I, IE, O, OE>(
  spec: TaskSpec<I, IE, O, OE>,
  input: I,
  options: SubmitOptions
): Effect.Effect<ExecutionId, EngineError | PayloadError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const lane = yield* laneOf(options.lane)
    const payload = yield* inputEncoder(spec)(input)
    const executionId = options.executionId ?? (yield* Ids.executionIdSolo(lane))
    const now = yield* Clock.currentTimeMillis
    const created = yield* backend.createExecution({
      executionId,
      laneId: lane,
      executionKind: spec.kind,
      inputPayload: payload,
      payloadEncoding: JSON_ENCODING,
      ...commonArgs(options),
      ...timeArgs(options, now),
      ...(yield* traceArgs)
    })
    return created.executionId
  }).pipe(
    // no span while Effect's built-in tracer (which exports nothing) is the current one: it cost
    // about a tenth of a submit's time in the process
    withSpanWhenTraced("Producer.submit", () => ({ kind: spec.kind, lane: options.lane }))
  )

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
  /** Join policy per downstream node (default `all_of`). */
  readonly joins?: { readonly [K in N]?: M.EdgeDependencyPolicy } | undefined
  /**
   * Create the flow sealed: it takes no member or edge after this call. Default `false`: the
   * flow stays open, so `extendFlow` (or a handler's `ctx.flow.add`) can grow it while it runs.
   */
  readonly sealed?: boolean | undefined
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


const checkFlowSpec = <N extends string>(spec: FlowSpec<N>): Either.Either<ReadonlyArray<N>, FlowSpecError> => {
  const names = Object.keys(spec.nodes) as Array<N>
  const known = new Set<string>(names)
  const fail = (detail: string) => Either.left(new FlowSpecError({ detail }))
  if (names.length === 0) return fail("a flow needs at least one node")
  for (const name of names) {
    if (spec.nodes[name].options.idempotencyKey !== undefined) {
      return fail(`node "${name}": flow members take no idempotency key (the flow id makes the call idempotent)`)
    }
  }
  const inbound = new Map<string, number>()
  const seen = new Set<string>()
  for (const e of spec.edges ?? []) {
    if (!known.has(e.from)) return fail(`edge from unknown node "${e.from}"`)
    if (!known.has(e.to)) return fail(`edge to unknown node "${e.to}"`)
    if (e.from === e.to) return fail(`edge from "${e.from}" to itself`)
    const key = `${e.from}\u0000${e.to}`
    if (seen.has(key)) return fail(`duplicate edge "${e.from}" -> "${e.to}"`)
    seen.add(key)
    inbound.set(e.to, (inbound.get(e.to) ?? 0) + 1)
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
  const order = topologicalOrder(names, (spec.edges ?? []).map((e) => [e.from, e.to] as const))
  if (order === undefined) return fail("the edges form a cycle")
  return Either.right(order)
}

/**
 * Creates a flow with its members, join policies and edges in one atomic
 * `createFlowGraph` call: one execution per node (ids from
 * `Ids.executionIdForFlow`), the joins, and each edge staged and applied.
 * Roots are eligible at once; nodes with inbound edges wait for their
 * dependencies, and no worker can see a node before its edges are in place.
 * A graph the spec check refuses writes nothing (`FlowSpecError`), and so does
 * a `flowId` that already names a flow.
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
    const now = yield* Clock.currentTimeMillis
    const trace = yield* traceArgs
    const executions: Partial<Record<N, ExecutionId>> = {}
    const members: Array<M.CreateExecutionArgsInput> = []
    for (const name of order) {
      const n: FlowNode = spec.nodes[name]
      const executionId = yield* Ids.executionIdForFlow(flowId)
      executions[name] = executionId
      members.push({
        executionId,
        laneId: yield* laneOf(n.options.lane ?? spec.lane),
        executionKind: n.kind,
        inputPayload: yield* n.payload,
        payloadEncoding: JSON_ENCODING,
        ...commonArgs({ ...n.options, namespace: n.options.namespace ?? spec.namespace }),
        ...timeArgs(n.options, now),
        ...trace
      })
    }
    const idOf = (name: N): ExecutionId => executions[name]!
    const edges: Array<{ readonly from: N; readonly to: N; readonly edgeId: Ids.EdgeId }> = []
    for (const e of spec.edges ?? []) edges.push({ from: e.from, to: e.to, edgeId: yield* Ids.newEdgeId })
    const result = yield* backend.createFlowGraph({
      flow: {
        flowId,
        namespace,
        ...(spec.flowKind === undefined ? {} : { flowKind: spec.flowKind }),
        ...(spec.sealed === true ? { sealed: true } : {})
      },
      members,
      edges: (spec.edges ?? []).map((e, i) => ({
        edgeId: edges[i]!.edgeId,
        upstreamExecutionId: idOf(e.from),
        downstreamExecutionId: idOf(e.to),
        ...(e.dependencyKind === undefined ? {} : { dependencyKind: e.dependencyKind }),
        ...(e.passOutput === true ? { dataPassingRef: e.from } : {})
      })),
      joins: Object.entries<M.EdgeDependencyPolicy | undefined>(spec.joins ?? {}).flatMap(([name, policy]) =>
        policy === undefined ? [] : [{ downstreamExecutionId: idOf(name as N), policy }]
      )
    })
    if (result._tag === "AlreadySatisfied") {
      return yield* new FlowSpecError({ detail: `flow ${flowId} already exists; nothing was created` })
    }
    return { flowId, executions: executions as { readonly [K in N]: ExecutionId }, edges }
  }).pipe(Effect.withSpan("Producer.createFlow", { attributes: { nodes: Object.keys(spec.nodes).length } }))

/**
 * An edge of `extendFlow`: each end is the name of one of the extension's nodes, or the id of an
 * execution already in the flow.
 *
 * @since 0.1.0
 * @category models
 */
export interface FlowExtensionEdge<N extends string> {
  readonly from: N | ExecutionId
  readonly to: N | ExecutionId
  /** Default `success_only`. */
  readonly dependencyKind?: string | undefined
  /** Copy the upstream's result into the downstream's input when the edge is satisfied. */
  readonly passOutput?: boolean | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface FlowExtension<N extends string> {
  /** The lane of every node that does not name its own. */
  readonly lane: string
  readonly namespace?: string | undefined
  /** The new members (may be empty: edges between members already in the flow). */
  readonly nodes: { readonly [K in N]: FlowNode }
  readonly edges?: ReadonlyArray<FlowExtensionEdge<N>> | undefined
  /** Join policy per new node (default `all_of`). */
  readonly joins?: { readonly [K in N]?: M.EdgeDependencyPolicy } | undefined
  /**
   * Derive the ids of the new members and edges from this key and the node names, so a retry with
   * the same key and names adds nothing twice (the engine answers `AlreadySatisfied` and the same
   * ids come back). Default: fresh ids.
   */
  readonly key?: string | undefined
}

/**
 * @since 0.1.0
 * @category models
 */
export interface ExtendedFlow<N extends string> {
  readonly flowId: FlowId
  readonly executions: { readonly [K in N]: ExecutionId }
  readonly edges: ReadonlyArray<{
    readonly from: N | ExecutionId
    readonly to: N | ExecutionId
    readonly edgeId: Ids.EdgeId
  }>
  /** `false` when the flow held every member and edge already (a retry with the same `key`). */
  readonly added: boolean
}

const checkExtension = <N extends string>(spec: FlowExtension<N>): Either.Either<ReadonlyArray<N>, FlowSpecError> => {
  const names = Object.keys(spec.nodes) as Array<N>
  const known = new Set<string>(names)
  const fail = (detail: string) => Either.left(new FlowSpecError({ detail }))
  const edges = spec.edges ?? []
  if (names.length === 0 && edges.length === 0) return fail("an extension needs at least one node or one edge")
  for (const name of names) {
    if (spec.nodes[name].options.idempotencyKey !== undefined) {
      return fail(`node "${name}": flow members take no idempotency key (use the extension's key)`)
    }
  }
  const inbound = new Map<string, number>()
  const seen = new Set<string>()
  for (const e of edges) {
    if (e.from === e.to) return fail(`edge from "${e.from}" to itself`)
    const key = `${e.from}\u0000${e.to}`
    if (seen.has(key)) return fail(`duplicate edge "${e.from}" -> "${e.to}"`)
    seen.add(key)
    inbound.set(e.to, (inbound.get(e.to) ?? 0) + 1)
  }
  for (const [name, policy] of Object.entries<M.EdgeDependencyPolicy | undefined>(spec.joins ?? {})) {
    if (policy === undefined) continue
    if (!known.has(name)) return fail(`join on "${name}", which is not a node of the extension`)
    const n = inbound.get(name) ?? 0
    if (n === 0) return fail(`join on "${name}", which has no inbound edges`)
    if (policy._tag === "quorum" && (policy.k < 1 || policy.k > n)) {
      return fail(`quorum k=${policy.k} on "${name}" must be within 1..${n} (its inbound edges)`)
    }
  }
  const order = topologicalOrder(
    names,
    edges.filter((e) => known.has(e.from) && known.has(e.to)).map((e) => [e.from as N, e.to as N] as const)
  )
  if (order === undefined) return fail("the edges between the new nodes form a cycle")
  return Either.right(order)
}

/** A UUID derived from `parts` (the same parts, the same UUID). */
const derivedUuid = (parts: ReadonlyArray<string>): string => {
  const h = createHash("sha256").update(parts.join("\u0000")).digest("hex")
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${"89ab"[parseInt(h[16]!, 16) & 3]}${h.slice(17, 20)}-${
    h.slice(20, 32)
  }`
}

/**
 * Grows a running flow in one atomic `extendFlow` call: one execution per node (ids from
 * `Ids.executionIdForFlow`, or derived from `key`), the joins, and each edge staged and applied.
 * Edges may join new nodes and members already in the flow (`ExecutionId`s); an edge whose
 * upstream already ended resolves at once. A flow whose members all finished runs again; a
 * sealed flow refuses with `State(FlowSealed)`, a cancelled one with `State(FlowAlreadyTerminal)`.
 * See docs/guide.md, "Flows that grow while they run".
 *
 * @since 0.1.0
 * @category flows
 */
export const extendFlow = <N extends string>(
  flowId: FlowId,
  spec: FlowExtension<N>
): Effect.Effect<ExtendedFlow<N>, EngineError | PayloadError | FlowSpecError, EngineBackend> =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const order = yield* checkExtension(spec)
    const now = yield* Clock.currentTimeMillis
    const executions: Partial<Record<N, ExecutionId>> = {}
    const members: Array<M.CreateExecutionArgsInput> = []
    for (const name of order) {
      const n: FlowNode = spec.nodes[name]
      const executionId = spec.key === undefined ?
        yield* Ids.executionIdForFlow(flowId) :
        Ids.deterministicExecutionIdForFlow(flowId, derivedUuid([flowId, spec.key, "node", name]))
      executions[name] = executionId
      members.push({
        executionId,
        laneId: yield* laneOf(n.options.lane ?? spec.lane),
        executionKind: n.kind,
        inputPayload: yield* n.payload,
        payloadEncoding: JSON_ENCODING,
        ...commonArgs({ ...n.options, namespace: n.options.namespace ?? spec.namespace }),
        ...timeArgs(n.options, now)
      })
    }
    const idOf = (end: N | ExecutionId): ExecutionId =>
      Object.prototype.hasOwnProperty.call(executions, end) ? executions[end as N]! : end as ExecutionId
    const edges: Array<{ readonly from: N | ExecutionId; readonly to: N | ExecutionId; readonly edgeId: Ids.EdgeId }> = []
    for (const e of spec.edges ?? []) {
      const edgeId = spec.key === undefined ?
        yield* Ids.newEdgeId :
        derivedUuid([flowId, spec.key, "edge", idOf(e.from), idOf(e.to)]) as Ids.EdgeId
      edges.push({ from: e.from, to: e.to, edgeId })
    }
    const result = yield* backend.extendFlow({
      flowId,
      members,
      edges: (spec.edges ?? []).map((e, i) => ({
        edgeId: edges[i]!.edgeId,
        upstreamExecutionId: idOf(e.from),
        downstreamExecutionId: idOf(e.to),
        ...(e.dependencyKind === undefined ? {} : { dependencyKind: e.dependencyKind }),
        ...(e.passOutput === true ? { dataPassingRef: String(e.from) } : {})
      })),
      joins: Object.entries<M.EdgeDependencyPolicy | undefined>(spec.joins ?? {}).flatMap(([name, policy]) =>
        policy === undefined ? [] : [{ downstreamExecutionId: idOf(name as N), policy }]
      )
    })
    return {
      flowId,
      executions: executions as { readonly [K in N]: ExecutionId },
      edges,
      added: result._tag === "Extended"
    }
  }).pipe(Effect.withSpan("Producer.extendFlow", { attributes: { flow_id: flowId, nodes: Object.keys(spec.nodes).length } }))

/**
 * Seals a flow: it takes no new member or edge, and its state ends with its members.
 *
 * @since 0.1.0
 * @category flows
 */
export const sealFlow = (flowId: FlowId): Effect.Effect<M.SealFlowResult, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (backend) => backend.sealFlow({ flowId })).pipe(
    Effect.withSpan("Producer.sealFlow", { attributes: { flow_id: flowId } })
  )

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
  /**
   * The longest wait without news before the state is read again: 1 s by default while the
   * execution's events wake the wait, 100 ms when the backend offers no event wake-ups (a
   * Postgres layer without a LISTEN connection).
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /** Fails with `Timeout{op:"await_execution"}` after this long (default: wait forever). */
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Waits until the execution is terminal and returns that state; fails `NotFound` when no
 * execution has this id. Subscribes to the execution's events and reads its state once at the
 * start and again at each wake-up (an event of it was written), or after `pollInterval` without
 * one, so that a lost wake-up delays the answer but cannot hang it.
 *
 * @since 0.1.0
 * @category results
 */
export const awaitTerminal = (
  executionId: ExecutionId,
  options: AwaitOptions = {}
): Effect.Effect<M.PublicState, EngineError, EngineBackend> =>
  Effect.flatMap(EngineBackend, (backend) =>
    waitFor(executionId, options, Effect.map(backend.readExecutionState(executionId), (state) =>
      Option.isNone(state) ?
        Option.some(Either.left(notFound("execution", executionId))) :
        isTerminal(state.value) ?
        Option.some(Either.right(state.value)) :
        Option.none())))

/**
 * Runs `probe` at the start, at each wake-up of the execution's events and after `pollInterval`
 * without one, until it answers (a failure ends the wait too).
 */
const waitFor = <A, E>(
  executionId: ExecutionId,
  options: AwaitOptions,
  probe: Effect.Effect<Option.Option<Either.Either<A, E>>, EngineError>
): Effect.Effect<A, E | EngineError, EngineBackend> =>
  Effect.scoped(Effect.gen(function*() {
    const backend = yield* EngineBackend
    const start = yield* Clock.currentTimeMillis
    const limit = options.timeout === undefined ? undefined : Duration.toMillis(Duration.decode(options.timeout))
    const subscribed = yield* Effect.either(backend.subscribeEvents({ _tag: "Execution", executionId }))
    const subscription = Either.getOrUndefined(subscribed)
    const interval = Duration.toMillis(
      Duration.decode(options.pollInterval ?? (subscription === undefined ? Duration.millis(100) : Duration.seconds(1)))
    )
    for (;;) {
      const seen = subscription === undefined ? 0 : yield* subscription.wakeups
      const answer = yield* probe
      if (Option.isSome(answer)) return yield* answer.value
      const left = limit === undefined ? interval : limit - ((yield* Clock.currentTimeMillis) - start)
      if (left <= 0) return yield* new Timeout({ op: "await_execution", elapsed: Duration.millis(limit!) })
      const wait = Duration.millis(Math.min(interval, left))
      if (subscription === undefined) yield* Effect.sleep(wait)
      else yield* subscription.await(seen, wait)
    }
  }))

/** The `ExecutionNotCompleted` of an execution that ended `state`, with why, read from its snapshot. */
const notCompleted = (executionId: ExecutionId, state: M.PublicState) =>
  Effect.gen(function*() {
    const backend = yield* EngineBackend
    const snapshot = Option.getOrUndefined(yield* backend.describeExecution(executionId))
    const failure = state === "failed" || state === "expired" ? snapshot?.lastFailure : undefined
    const cancelled = state === "cancelled" ? snapshot?.cancellationReason : undefined
    return yield* new ExecutionNotCompleted({
      executionId,
      publicState: state,
      ...(failure === undefined ?
        {} :
        { reason: failure.reason, classification: failure.classification, category: failure.category }),
      ...(cancelled === undefined ? {} : { reason: cancelled })
    })
  })

/**
 * Waits for the execution to finish and returns its decoded result; an
 * execution that ends otherwise fails with `ExecutionNotCompleted`, which
 * carries why (the last failure's reason and class, or the cancellation's
 * reason). Woken by the execution's events like `awaitTerminal`; each check
 * reads the result first, so a completion with a payload answers in one read.
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
    const backend = yield* EngineBackend
    // a completion with a payload answers in one read; else the state tells whether it ended
    const ended = yield* waitFor(
      executionId,
      options,
      Effect.flatMap(backend.getExecutionResult(executionId), (bytes) =>
        Option.isSome(bytes) ?
          Effect.succeed(Option.some(Either.right<Uint8Array | M.PublicState>(bytes.value))) :
          Effect.map(backend.readExecutionState(executionId), (state) =>
            Option.isNone(state) ?
              Option.some(Either.left(notFound("execution", executionId))) :
              isTerminal(state.value) ?
              Option.some(Either.right<Uint8Array | M.PublicState>(state.value)) :
              Option.none()))
    )
    if (ended instanceof Uint8Array) return yield* decodeJson(spec.output, ended, `result of ${executionId}`)
    if (ended !== "completed") return yield* notCompleted(executionId, ended)
    const value = yield* result(spec, executionId)
    if (Option.isSome(value)) return value.value
    // completed without a payload: decode JSON null (an output of Schema.Void / Schema.Null / optional)
    return yield* decodeJson(spec.output, new Uint8Array(0), `result of ${executionId}`)
  })
