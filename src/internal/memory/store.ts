/**
 * The state of the in-memory engine: the reference semantics (docs/design/). Every operation is
 * one synchronous step over a `Store` (so it is atomic in a single-threaded runtime), written as a
 * function of the area it belongs to (claim, lifecycle, flows, signals, streams, budgets, admin,
 * reads, maintenance: the names of the Postgres and Valkey files); checks run before writes, so a
 * failed operation writes nothing (the lease ladder's expiry marking excepted: see
 * docs/design/executions.md#the-lease-ladder). Time and fresh ids are passed in by the caller.
 */
import type * as Ids from "../../Ids.js"
import type * as M from "../../Model.js"
import { EventLog } from "./events.js"
import { MinHeap } from "./heap.js"
import type { LaneEntries } from "./lanes.js"
import type { Budget, Exec, Flow, Grant, Keystore, SignalRecord, Stream, Waitpoint } from "./state.js"

export class Store {
  readonly executions = new Map<Ids.ExecutionId, Exec>()
  readonly flows = new Map<Ids.FlowId, Flow>()
  readonly waitpoints = new Map<Ids.WaitpointId, Waitpoint>()
  readonly signals = new Map<Ids.SignalId, SignalRecord>()
  /** By `streamKey`. */
  readonly streams = new Map<string, Stream>()
  readonly budgets = new Map<Ids.BudgetId, Budget>()
  readonly quotas = new Map<Ids.QuotaPolicyId, M.CreateQuotaPolicyArgs & { readonly createdAt: number }>()
  readonly grants = new Map<Ids.ExecutionId, Grant>()
  readonly lanes = new Set<Ids.LaneId>()
  /** Each lane's executions by creation time and its counts per public state (lanes.ts). */
  readonly laneEntries = new Map<Ids.LaneId, LaneEntries>()
  readonly keystore: Keystore = { currentKid: undefined, secrets: new Map() }
  readonly idempotency = new Map<string, { readonly executionId: Ids.ExecutionId; readonly expiresAt: number }>()
  readonly suspendDedup = new Map<string, { readonly outcome: M.SuspendOutcome; readonly expiresAt: number }>()
  readonly signalDedup = new Map<string, { readonly signalId: Ids.SignalId; readonly expiresAt: number }>()
  readonly cancelBacklog = new Set<Ids.FlowId>()

  /**
   * lane → group (kind and required capabilities, `Exec.claimGroup`) → claimable candidates by
   * score: a claim passes over the groups it may not take at once.
   */
  readonly claimable = new Map<
    Ids.LaneId,
    Map<string, { readonly kind: string; readonly caps: ReadonlyArray<string>; readonly heap: MinHeap<Exec> }>
  >()
  /** `Exec.claimGroup` of each kind without required capabilities (one string, hashed once). */
  readonly kindGroups = new Map<string, string>()
  readonly delayed = new MinHeap()
  /** The `delayed` entries again, per lane (the wake-up timers of the lanes' idle workers). */
  readonly laneDelays = new Map<Ids.LaneId, MinHeap>()
  /** Lease expiries, each entry with its execution (see `dropEndedLeaseExpiries`). */
  readonly leaseExpiries = new MinHeap<Exec>()
  readonly attemptTimeouts = new MinHeap()
  readonly deadlines = new MinHeap()
  readonly suspensionTimeouts = new MinHeap()
  readonly pendingExpiries = new MinHeap()
  readonly budgetResets = new MinHeap()
  /** Terminal executions outside flows, by the time their retention ends (`trimRetention`). */
  readonly retentionDue = new MinHeap()

  /** The event log (events.ts). */
  readonly events = new EventLog()
  /** The last event sequence number given before the current engine step (one per call) began. */
  stepSeq = 0

  /** Called with the stream key whenever a frame is appended. */
  onAppend: (streamKey: string) => void = () => {}
  /** Called with a lane whenever an execution becomes claimable there or delayed work is scheduled there. */
  onLaneWake: (lane: Ids.LaneId) => void = () => {}
  /** Called when someone else than its holder ends the lease of an execution (cancel, revoke, timeout). */
  onLeaseEnded: (workerInstanceId: Ids.WorkerInstanceId, executionId: Ids.ExecutionId) => void = () => {}
  /** Called with every event appended (its scopes: `scopesOf`). */
  onEvent: (body: M.EngineEventBody) => void = () => {}

  constructor(readonly label: M.BackendTag = "memory") {}
}

/** The key of an attempt's stream in `Store.streams`. */
export const streamKey = (id: Ids.ExecutionId, attemptIndex: number): string => `${id}:${attemptIndex}`
