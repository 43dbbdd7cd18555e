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
import { type BackendCore, makeEngineBackend, makeMaintenanceService } from "./internal/boundary.js"
import { randomHmacSecret } from "./internal/hmacSecret.js"
import { storeAttemptId, storeLeaseId } from "./internal/storeIds.js"
import { MemoryEngine, type PassCount } from "./internal/memory/engine.js"
import { makeHub } from "./internal/wakeups.js"

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

const step = <A>(f: Step<A>): Effect.Effect<A, EngineError> =>
  Effect.clockWith((clock) => f(clock.unsafeCurrentTimeMillis()))

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
    const engine = new MemoryEngine("memory")
    const waiters = new Map<string, Deferred.Deferred<void>>()
    engine.onAppend = (key) => {
      const d = waiters.get(key)
      if (d !== undefined) {
        waiters.delete(key)
        Deferred.unsafeDone(d, Effect.void)
      }
    }
    // wake-ups are delivered in the engine step that makes work claimable
    const hub = makeHub({ listen: () => Effect.void, unlisten: () => Effect.void })
    engine.onLaneWake = hub.wake
    engine.onLeaseEnded = hub.revoke
    const nextAppend = (key: string) =>
      Effect.map(Effect.fiberId, (fiberId) => {
        let d = waiters.get(key)
        if (d === undefined) {
          d = Deferred.unsafeMake<void>(fiberId)
          waiters.set(key, d)
        }
        return d
      })

    const withLease = <A>(f: (ids: { leaseId: Ids.LeaseId; attemptId: Ids.AttemptId }) => Step<A>) =>
      step((now) => f({ leaseId: storeLeaseId(), attemptId: storeAttemptId() })(now))

    const core: BackendCore = {
      label: "memory",
      claim: (args) => withLease((ids) => (now) => engine.claim(now, args, ids)),
      claimMany: (args, max) =>
        step((now) => engine.claimMany(now, args, max, () => ({ leaseId: storeLeaseId(), attemptId: storeAttemptId() }))),
      renew: (h) => step((now) => engine.renew(now, h)),
      progress: (h, percent, message) => step((now) => engine.progress(now, h, percent, message)),
      appendFrame: (h, frame) => step((now) => engine.appendFrame(now, h, frame)),
      complete: (h, payload) => step((now) => engine.complete(now, h, payload)),
      completeMany: (items) =>
        step((now) => Either.right(items.map(({ h, payload }) => engine.complete(now, h, payload)))),
      fail: (h, reason, cls) => step((now) => engine.fail(now, h, reason, cls)),
      cancel: (h, reason) => step((now) => engine.cancel(now, h, reason)),
      suspend: (h, args) => step((now) => engine.suspend(now, h, args)),
      createWaitpoint: (h, key, expiresInMs) =>
        step((now) => engine.createWaitpoint(now, h, key, expiresInMs, randomUUID() as Ids.WaitpointId)),
      observeSignals: (h) => step((now) => engine.observeSignals(now, h)),
      claimFromReclaim: (token) => step((now) => engine.claimFromReclaim(now, token, storeLeaseId())),
      delay: (h, delayUntil) => step((now) => engine.delay(now, h, delayUntil)),
      waitChildren: (h) => step((now) => engine.waitChildren(now, h)),
      claimForWorker: (args) => step((now) => engine.claimForWorker(now, args, randomUUID())),
      subscribeWork: (args) =>
        hub.subscribe(args, {
          arm: Effect.sync(() => ({ dueAt: Option.fromNullable(engine.nextDue(args.lanes)), claimAgain: false })),
          disarm: Effect.void,
          promoteDue: step((now) => engine.promoteDue(now, args.lanes, DEFAULT_BATCH_SIZE))
        }),
      describeExecution: (id) => step((now) => engine.describeExecution(now, id)),
      describeFlow: (id) => step((now) => engine.describeFlow(now, id)),
      listEdges: (args) => step((now) => engine.listEdges(now, args)),
      describeEdge: (args) => step((now) => engine.describeEdge(now, args)),
      resolveExecutionFlowId: (id) => step((now) => engine.resolveExecutionFlowId(now, id)),
      getExecutionResult: (id) => step((now) => engine.getExecutionResult(now, id)),
      getExecutionInput: (id) => step((now) => engine.getExecutionInput(now, id)),
      getExecutionInputs: (ids) => step((now) => engine.getExecutionInputs(now, ids)),
      listPendingWaitpoints: (args) => step((now) => engine.listPendingWaitpoints(now, args)),
      readExecutionInfo: (id) => step((now) => engine.readExecutionInfo(now, id)),
      readExecutionState: (id) => step((now) => engine.readExecutionState(now, id)),
      listFlows: (p, cursor, limit) => step((now) => engine.listFlows(now, p, cursor, limit)),
      listLanes: (cursor, limit) => step((now) => engine.listLanes(now, cursor, limit)),
      listSuspended: (p, cursor, limit) => step((now) => engine.listSuspended(now, p, cursor, limit)),
      listExecutions: (p, cursor, limit) => step((now) => engine.listExecutions(now, p, cursor, limit)),
      deliverSignal: (args) => step((now) => engine.deliverSignal(now, args)),
      claimResumedExecution: (args) => step((now) => engine.claimResumedExecution(now, args)),
      createExecution: (args) => step((now) => engine.createExecution(now, args)),
      createExecutions: (list) =>
        step((now) => Either.all(list.map((args) => engine.createExecution(now, args)))),
      createFlow: (args) => step((now) => engine.createFlow(now, args)),
    createFlowGraph: (args) => step((now) => engine.createFlowGraph(now, args)),
      extendFlow: (args) => step((now) => engine.extendFlow(now, args)),
      sealFlow: (args) => step((now) => engine.sealFlow(now, args)),
      addExecutionToFlow: (args) => step((now) => engine.addExecutionToFlow(now, args)),
      stageDependencyEdge: (args) => step((now) => engine.stageDependencyEdge(now, args)),
      applyDependencyToChild: (args) => step((now) => engine.applyDependencyToChild(now, args)),
      setEdgeGroupPolicy: (args) => step((now) => engine.setEdgeGroupPolicy(now, args)),
      cancelExecution: (args) => step((now) => engine.cancelExecution(now, args)),
      changePriority: (args) => step((now) => engine.changePriority(now, args)),
      replayExecution: (id) => step((now) => engine.replayExecution(now, id)),
      revokeLease: (args) => step((now) => engine.revokeLease(now, args)),
      cancelFlow: (args) => step((now) => engine.cancelFlow(now, args)),
      cancelFlowHeader: (args) => step((now) => engine.cancelFlowHeader(now, args)),
      ackCancelMember: (args) => step((now) => engine.ackCancelMember(now, args)),
      reportUsage: (_h, budgetId, dims) => step((now) => engine.reportUsage(now, budgetId, dims)),
      reportUsageAdmin: (args) => step((now) => engine.reportUsageAdmin(now, args)),
      createBudget: (args) => step((now) => engine.createBudget(now, args)),
      resetBudget: (id) => step((now) => engine.resetBudget(now, id)),
      getBudgetStatus: (id) => step((now) => engine.getBudgetStatus(now, id)),
      createQuotaPolicy: (args) => step((now) => engine.createQuotaPolicy(now, args)),
      readStream: (args) => step((now) => engine.readStream(now, args)),
      tailStream: (args) =>
        Effect.gen(function*() {
          const key = engine.streamKeyOf(args.executionId, args.attemptIndex)
          const first = engine.tailOnce(yield* Clock.currentTimeMillis, args)
          if (first.frames.length > 0 || args.blockMs === 0 || first.closedAt !== undefined) return first
          const appended = yield* nextAppend(key)
          yield* Deferred.await(appended).pipe(Effect.timeoutOption(args.blockMs))
          return engine.tailOnce(yield* Clock.currentTimeMillis, args)
        }),
      readSummary: (args) => step((now) => engine.readSummary(now, args)),
      rotateWaitpointHmacSecretAll: (args) => step((now) => engine.rotate(now, args)),
      seedWaitpointHmacSecret: (args) => step((now) => engine.seed(now, args)),
      ping: () => Effect.void,
      prepare: () => Effect.succeed<M.PrepareOutcome>({ _tag: "NoOp" }),
      shutdownPrepare: (_grace: Duration.Duration) => Effect.void
    }

    const backend = makeEngineBackend(core)

    const pass = (name: PassName, run: (now: number, batch: number) => Either.Either<PassCount, EngineError>) =>
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
      expireLeases: pass("expireLeases", (now, n) => engine.expireLeases(now, n)),
      promoteDelayed: pass("promoteDelayed", (now, n) => engine.promoteDelayed(now, n)),
      expireAttempts: pass("expireAttempts", (now, n) => engine.expireAttempts(now, n)),
      expireExecutions: pass("expireExecutions", (now, n) => engine.expireExecutions(now, n)),
      expireSuspensions: pass("expireSuspensions", (now, n) => engine.expireSuspensions(now, n)),
      expirePendingWaitpoints: pass("expirePendingWaitpoints", (now, n) => engine.expirePendingWaitpoints(now, n)),
      reconcileDependencies: pass("reconcileDependencies", (now, n) => engine.reconcileDependencies(now, n)),
      drainCancelBacklog: pass("drainCancelBacklog", (now, n) => engine.drainCancelBacklog(now, n)),
      resetBudgets: pass("resetBudgets", (now, n) => engine.resetBudgets(now, n)),
      trimRetention: pass("trimRetention", (now, n) => engine.trimRetention(now, n))
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
