/**
 * The in-memory engine: the reference semantics every backend is held to,
 * the layer tests swap in, and the embedded default of the demo. A real
 * engine — every operation, every error, every maintenance pass — with time
 * from Effect's `Clock`, so `TestClock` drives leases, delays and timeouts.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import { randomUUID } from "node:crypto"
import { Clock, Config, type ConfigError, Context, Deferred, Effect, Either, Layer, Option, Redacted } from "effect"
import { EngineBackend, type HmacSecret } from "./EngineBackend.js"
import type { EngineError } from "./EngineError.js"
import * as Ids from "./Ids.js"
import { DEFAULT_BATCH_SIZE, Maintenance, type PassName, type PassOptions, type PassResult } from "./Maintenance.js"
import type * as M from "./Model.js"
import { type BackendCore, type CreateExecutionCore, makeEngineBackend, makeMaintenanceService } from "./internal/boundary.js"
import { randomHmacSecret } from "./internal/hmacSecret.js"
import { storeAttemptId, storeLeaseId } from "./internal/storeIds.js"
import * as Admin from "./internal/memory/admin.js"
import * as Budgets from "./internal/memory/budgets.js"
import * as Claim from "./internal/memory/claim.js"
import * as Flows from "./internal/memory/flows.js"
import * as Lifecycle from "./internal/memory/lifecycle.js"
import * as Passes from "./internal/memory/maintenance.js"
import * as Reads from "./internal/memory/reads.js"
import * as Signals from "./internal/memory/signals.js"
import { Store, streamKey } from "./internal/memory/store.js"
import * as Streams from "./internal/memory/streams.js"
import * as Wakeups from "./internal/memory/wakeups.js"
import * as Events from "./internal/memory/events.js"
import { makeEventHub, makeHub } from "./internal/wakeups.js"

/**
 * @since 0.1.0
 */
export interface MemoryBackendOptions {
  /**
   * The secret the waitpoint HMAC keystore starts with. Default `"random"`: 32 random bytes under a
   * random kid, so signals work at once (the tokens are good for this engine only, which lives and
   * dies with the process). `"none"` starts with an empty keystore, to be seeded with
   * `seedWaitpointHmacSecret`; until then creating a waitpoint fails.
   */
  readonly hmacSecret?: HmacSecret | "random" | "none" | undefined
}

/**
 * @since 0.1.0
 */
export interface MemoryBackend {
  readonly backend: EngineBackend.Service
  readonly maintenance: Maintenance.Service
}

type Step<A> = (now: number) => Either.Either<A, EngineError>

/** The passes whose runs report their next timer (`PassResult.nextDueAt`). */
const TIMER_PASSES: ReadonlySet<PassName> = new Set([
  "expireLeases",
  "promoteDelayed",
  "expireAttempts",
  "expireExecutions",
  "expireSuspensions",
  "expirePendingWaitpoints"
])

/**
 * Builds an engine and returns its service values without providing tags
 * (several engines can live in one program).
 *
 * @since 0.1.0
 */
export const make = (options: MemoryBackendOptions = {}): Effect.Effect<MemoryBackend, EngineError> =>
  Effect.gen(function*() {
    const store = new Store("memory")
    // one engine step: one call (its events fold what the call did to an execution it created)
    const step = <A>(f: Step<A>): Effect.Effect<A, EngineError> =>
      Effect.clockWith((clock) => {
        store.stepSeq = store.events.seq
        return f(clock.unsafeCurrentTimeMillis())
      })
    const waiters = new Map<string, Deferred.Deferred<void>>()
    store.onAppend = (key) => {
      const d = waiters.get(key)
      if (d !== undefined) {
        waiters.delete(key)
        Deferred.unsafeDone(d, Effect.void)
      }
    }
    // wake-ups are delivered in the engine step that makes work claimable
    const hub = makeHub({ listen: () => Effect.void, unlisten: () => Effect.void })
    store.onLaneWake = hub.wake
    store.onLeaseEnded = hub.revoke
    // events wake their subscriptions in the engine step that writes them; while there are none,
    // an event costs no wake-up at all
    const events = makeEventHub({ listen: () => Effect.void, unlisten: () => Effect.void })
    let eventSubscriptions = 0
    store.onEvent = (body) => {
      if (eventSubscriptions === 0) return
      for (const scope of Events.scopesOf(body)) events.wake(scope)
    }
    const counted = Effect.acquireRelease(
      Effect.sync(() => void eventSubscriptions++),
      () => Effect.sync(() => void eventSubscriptions--)
    )
    const nextAppend = (key: string) =>
      Effect.map(Effect.fiberId, (fiberId) => {
        let d = waiters.get(key)
        if (d === undefined) {
          d = Deferred.unsafeMake<void>(fiberId)
          waiters.set(key, d)
        }
        return d
      })

    const newLeaseIds = () => ({ leaseId: storeLeaseId(), attemptId: storeAttemptId() })

    /**
     * A create of work claimable at once, while an idle worker of this engine waits on its lane:
     * the worker's claim follows in the same turn, as an engine step of its own (docs/worker.md,
     * "Wake-ups, timers and cancellation"), and what it took starts before the create returns.
     */
    const createExecution = (args: CreateExecutionCore): Effect.Effect<M.CreateExecutionResult, EngineError> =>
      Effect.clockWith((clock) => {
        const now = clock.unsafeCurrentTimeMillis()
        store.stepSeq = store.events.seq
        const created = Lifecycle.createExecution(store, now, args)
        if (Either.isLeft(created) || created.right._tag !== "Created" || args.delayUntil !== undefined) return created
        const handoff = hub.handoff(args.laneId)
        if (handoff === undefined) return created
        let claimed: ReadonlyArray<EngineBackend.ClaimedWork> = []
        try {
          store.stepSeq = store.events.seq
          const c = Claim.claimWithInputs(store, now, handoff.args, handoff.max, newLeaseIds)
          if (Either.isRight(c)) claimed = c.right
        } finally {
          handoff.deliver(claimed, claimed.length === 0)
        }
        return created
      })

    const withLease = <A>(f: (ids: { leaseId: Ids.LeaseId; attemptId: Ids.AttemptId }) => Step<A>) =>
      step((now) => f({ leaseId: storeLeaseId(), attemptId: storeAttemptId() })(now))

    const core: BackendCore = {
      label: "memory",
      claim: (args) => withLease((ids) => (now) => Claim.claim(store, now, args, ids)),
      claimMany: (args, max) =>
        step((now) => Claim.claimMany(store, now, args, max, () => ({ leaseId: storeLeaseId(), attemptId: storeAttemptId() }))),
      renew: (h) => step((now) => Lifecycle.renew(store, now, h)),
      progress: (h, percent, message) => step((now) => Lifecycle.progress(store, now, h, percent, message)),
      appendFrame: (h, frame) => step((now) => Streams.appendFrame(store, now, h, frame)),
      complete: (h, payload) => step((now) => Lifecycle.complete(store, now, h, payload)),
      completeMany: (items) =>
        step((now) => Either.right(items.map(({ h, payload }) => Lifecycle.complete(store, now, h, payload)))),
      completeAndClaim: (items, args, max) =>
        step((now) => {
          const completed = items.map(({ h, payload }) => Lifecycle.complete(store, now, h, payload))
          const claimed = Claim.claimWithInputs(store, now, args, max, () => ({ leaseId: storeLeaseId(), attemptId: storeAttemptId() }))
          return Either.map(claimed, (claimed) => ({ completed, claimed }))
        }),
      fail: (h, reason, cls) => step((now) => Lifecycle.fail(store, now, h, reason, cls)),
      cancel: (h, reason) => step((now) => Lifecycle.cancel(store, now, h, reason)),
      suspend: (h, args) => step((now) => Signals.suspend(store, now, h, args)),
      createWaitpoint: (h, key, expiresInMs) =>
        step((now) => Signals.createWaitpoint(store, now, h, key, expiresInMs, randomUUID() as Ids.WaitpointId)),
      observeSignals: (h) => step((now) => Signals.observeSignals(store, now, h)),
      claimFromReclaim: (token) => step((now) => Claim.claimFromReclaim(store, now, token, storeLeaseId())),
      delay: (h, delayUntil) => step((now) => Lifecycle.delay(store, now, h, delayUntil)),
      waitChildren: (h) => step((now) => Lifecycle.waitChildren(store, now, h)),
      claimForWorker: (args) => step((now) => Claim.claimForWorker(store, now, args, randomUUID())),
      subscribeWork: (args) =>
        hub.subscribe(args, {
          arm: Effect.sync(() => ({ dueAt: Option.fromNullable(Wakeups.nextDue(store, args.lanes)), claimAgain: false })),
          disarm: Effect.void,
          promoteDue: step((now) => Wakeups.promoteDue(store, now, args.lanes, DEFAULT_BATCH_SIZE))
        }),
      readEvents: (args) => Effect.sync(() => Events.readEvents(store, args)).pipe(Effect.flatten),
      subscribeEvents: (filter) => Effect.zipRight(counted, events.subscribe(filter)),
      describeExecution: (id) => step((now) => Reads.describeExecution(store, now, id)),
      describeFlow: (id) => step((now) => Reads.describeFlow(store, now, id)),
      readFlowState: (id) => step((now) => Reads.readFlowState(store, now, id)),
      listEdges: (args) => step((now) => Reads.listEdges(store, now, args)),
      describeEdge: (args) => step((now) => Reads.describeEdge(store, now, args)),
      resolveExecutionFlowId: (id) => step((now) => Reads.resolveExecutionFlowId(store, now, id)),
      getExecutionResult: (id) => step((now) => Reads.getExecutionResult(store, now, id)),
      getExecutionInput: (id) => step((now) => Reads.getExecutionInput(store, now, id)),
      getExecutionInputs: (ids) => step((now) => Reads.getExecutionInputs(store, now, ids)),
      listPendingWaitpoints: (args) => step((now) => Reads.listPendingWaitpoints(store, now, args)),
      readExecutionInfo: (id) => step((now) => Reads.readExecutionInfo(store, now, id)),
      readExecutionState: (id) => step((now) => Reads.readExecutionState(store, now, id)),
      listFlows: (p, cursor, limit) => step((now) => Reads.listFlows(store, now, p, cursor, limit)),
      listLanes: (cursor, limit) => step((now) => Reads.listLanes(store, now, cursor, limit)),
      listSuspended: (p, cursor, limit) => step((now) => Reads.listSuspended(store, now, p, cursor, limit)),
      listExecutions: (p, cursor, limit) => step((now) => Reads.listExecutions(store, now, p, cursor, limit)),
      listLaneExecutions: (q) => step((now) => Reads.listLaneExecutions(store, now, q)),
      countLaneExecutions: (lane) => step((now) => Reads.countLaneExecutions(store, now, lane)),
      deliverSignal: (args) => step((now) => Signals.deliverSignal(store, now, args)),
      claimResumedExecution: (args) => step((now) => Claim.claimResumedExecution(store, now, args)),
      createExecution,
      createExecutions: (list) =>
        step((now) => Either.all(list.map((args) => Lifecycle.createExecution(store, now, args)))),
      createFlow: (args) => step((now) => Flows.createFlow(store, now, args)),
      createFlowGraph: (args) => step((now) => Flows.createFlowGraph(store, now, args)),
      extendFlow: (args) => step((now) => Flows.extendFlow(store, now, args)),
      sealFlow: (args) => step((now) => Flows.sealFlow(store, now, args)),
      addExecutionToFlow: (args) => step((now) => Flows.addExecutionToFlow(store, now, args)),
      stageDependencyEdge: (args) => step((now) => Flows.stageDependencyEdge(store, now, args)),
      applyDependencyToChild: (args) => step((now) => Flows.applyDependencyToChild(store, now, args)),
      setEdgeGroupPolicy: (args) => step((now) => Flows.setEdgeGroupPolicy(store, now, args)),
      cancelExecution: (args) => step((now) => Admin.cancelExecution(store, now, args)),
      changePriority: (args) => step((now) => Admin.changePriority(store, now, args)),
      replayExecution: (id) => step((now) => Admin.replayExecution(store, now, id)),
      revokeLease: (args) => step((now) => Admin.revokeLease(store, now, args)),
      cancelFlow: (args) => step((now) => Flows.cancelFlow(store, now, args)),
      cancelFlowHeader: (args) => step((now) => Flows.cancelFlowHeader(store, now, args)),
      ackCancelMember: (args) => step((now) => Flows.ackCancelMember(store, now, args)),
      reportUsage: (_h, budgetId, dims) => step((now) => Budgets.reportUsage(store, now, budgetId, dims)),
      reportUsageAdmin: (args) => step((now) => Budgets.reportUsageAdmin(store, now, args)),
      createBudget: (args) => step((now) => Budgets.createBudget(store, now, args)),
      resetBudget: (id) => step((now) => Budgets.resetBudget(store, now, id)),
      getBudgetStatus: (id) => step((now) => Budgets.getBudgetStatus(store, now, id)),
      createQuotaPolicy: (args) => step((now) => Budgets.createQuotaPolicy(store, now, args)),
      readStream: (args) => step((now) => Streams.readStream(store, now, args)),
      tailStream: (args) =>
        Effect.gen(function*() {
          const key = streamKey(args.executionId, args.attemptIndex)
          const first = Streams.tailOnce(store, yield* Clock.currentTimeMillis, args)
          if (first.frames.length > 0 || args.blockMs === 0 || first.closedAt !== undefined) return first
          const appended = yield* nextAppend(key)
          yield* Deferred.await(appended).pipe(Effect.timeoutOption(args.blockMs))
          return Streams.tailOnce(store, yield* Clock.currentTimeMillis, args)
        }),
      readSummary: (args) => step((now) => Streams.readSummary(store, now, args)),
      rotateWaitpointHmacSecretAll: (args) => step((now) => Signals.rotateWaitpointHmacSecretAll(store, now, args)),
      seedWaitpointHmacSecret: (args) => step((now) => Signals.seedWaitpointHmacSecret(store, now, args)),
      ping: () => Effect.void,
      prepare: () => Effect.succeed<M.PrepareOutcome>({ _tag: "NoOp" }),
      shutdownPrepare: (_grace: Duration.Duration) => Effect.void
    }

    const backend = makeEngineBackend(core)

    const pass = (name: PassName, run: (now: number, batch: number) => Either.Either<Passes.PassCount, EngineError>) =>
    (options?: PassOptions): Effect.Effect<PassResult, EngineError> =>
      Effect.map(
        step((now) => run(now, options?.batchSize ?? DEFAULT_BATCH_SIZE)),
        (r) => ({
          pass: name,
          processed: r.processed,
          more: r.more,
          ...(r.nextDueAt !== undefined && TIMER_PASSES.has(name) ? { nextDueAt: r.nextDueAt } : {})
        })
      )

    const maintenance: Maintenance.Service = makeMaintenanceService({
      expireLeases: pass("expireLeases", (now, n) => Passes.expireLeases(store, now, n)),
      promoteDelayed: pass("promoteDelayed", (now, n) => Passes.promoteDelayed(store, now, n)),
      expireAttempts: pass("expireAttempts", (now, n) => Passes.expireAttempts(store, now, n)),
      expireExecutions: pass("expireExecutions", (now, n) => Passes.expireExecutions(store, now, n)),
      expireSuspensions: pass("expireSuspensions", (now, n) => Passes.expireSuspensions(store, now, n)),
      expirePendingWaitpoints: pass("expirePendingWaitpoints", (now, n) => Passes.expirePendingWaitpoints(store, now, n)),
      reconcileDependencies: pass("reconcileDependencies", (now, n) => Passes.reconcileDependencies(store, now, n)),
      drainCancelBacklog: pass("drainCancelBacklog", (now, n) => Passes.drainCancelBacklog(store, now, n)),
      resetBudgets: pass("resetBudgets", (now, n) => Passes.resetBudgets(store, now, n)),
      trimRetention: pass("trimRetention", (now, n) => Passes.trimRetention(store, now, n))
    })

    const secret = options.hmacSecret === undefined || options.hmacSecret === "random" ?
      randomHmacSecret() :
      options.hmacSecret
    if (secret !== "none") {
      yield* backend.seedWaitpointHmacSecret({ kid: secret.kid, secretHex: Redacted.value(secret.secretHex) })
    }
    return { backend, maintenance }
  })

/**
 * Provides `EngineBackend` and `Maintenance` from a fresh in-memory engine.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer = (options: MemoryBackendOptions = {}): Layer.Layer<EngineBackend | Maintenance, EngineError> =>
  Layer.effectContext(
    Effect.map(make(options), ({ backend, maintenance }) =>
      Context.make(EngineBackend, backend).pipe(Context.add(Maintenance, maintenance)))
  )

/**
 * The options `layerConfig` reads: the secret the keystore starts with (default: a random one).
 *
 * @since 0.1.0
 * @category models
 */
export interface MemoryBackendConfig {
  readonly hmacSecret?: HmacSecret | undefined
}

/**
 * `layer` with its options read from `Config`, as the server layers' `layerConfig`:
 * `MemoryBackend.layerConfig({ hmacSecret: { kid: Config.string("HMAC_KID"), secretHex: Config.redacted("HMAC_SECRET") } })`.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerConfig = (
  config: Config.Config.Wrap<MemoryBackendConfig>
): Layer.Layer<EngineBackend | Maintenance, EngineError | ConfigError.ConfigError> =>
  Layer.unwrapEffect(Effect.map(Config.unwrap(config), (options) => layer(options)))
