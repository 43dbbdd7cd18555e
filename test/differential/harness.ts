/**
 * Randomized differential testing (docs/design/testing.md#differential-tests): the same random operation
 * sequence runs against a reference engine (the memory layer) and a candidate engine (another
 * memory instance, Valkey or Postgres), and every outcome is compared.
 *
 * - A `Command` is one step of a sequence. Commands never carry backend values: they refer to
 *   executions, handles, waitpoints, flows, edges and budgets by index into what earlier
 *   commands produced on *that* run (`pickRecent`: 0 = the most recent), so one generated
 *   sequence is meaningful on every backend.
 * - Ids the test mints (execution, flow, edge, signal, suspension, waitpoint, budget ids) are
 *   derived from the sample's `salt` and the command's position, so they are identical on
 *   every backend. Ids and values a backend mints itself (lease ids, attempt ids, pending
 *   waitpoint ids, tokens, stream entry ids, fingerprints) are replaced by placeholders in order
 *   of first appearance; timestamps become `T+<ms since the sequence start>`.
 * - Every run gets a fresh, empty engine (`EngineFactory.make`: a new memory engine, a new Valkey
 *   key prefix, an emptied Postgres schema — see servers.ts) and a fresh `TestClock` set to
 *   `BASE_TIME`; the engine is built on the live clock and every operation then runs under the
 *   `TestClock` (server layers are built with `clock: "effect"`). Time moves only by `Advance` /
 *   `Settle` commands (and the 1 ms tick below).
 * - After every command the executions, flows and budgets it touched are read back
 *   (`describeExecution`, `readExecutionInfo`, `describeFlow`, `getBudgetStatus`, a
 *   `listExecutions` page); maintenance passes read everything; a final sweep reads the whole
 *   engine (results, inputs, pending waitpoints, edges, listings with cursors, lanes).
 * - `checkDifferential` runs the property with `FastCheck`, seeded (printed), and on failure
 *   throws a report: seed and replay path, the shrunk sequence (also as JSON for
 *   `FLOWFABRIC_DIFF_REPLAY`), and the first differing step with the paths that differ.
 *   Known, reported divergences can be tolerated with `Waiver`s (counted and printed).
 *
 * Environment: `FLOWFABRIC_DIFF_SEED`, `FLOWFABRIC_DIFF_PATH`, `FLOWFABRIC_DIFF_RUNS`,
 * `FLOWFABRIC_DIFF_REPLAY`, `FLOWFABRIC_DIFF_STRICT=1` (no waivers), `FLOWFABRIC_DIFF_VERBOSE=1`.
 *
 * Conventions that keep the comparison about semantics and not about unspecified choices:
 * - `createExecution` is followed by a 1 ms clock tick, so creation times are distinct and the
 *   claim order (priority, then FIFO by `created_at`, docs/design/executions.md#claim-order) is fully specified; ties at
 *   the same millisecond are unspecified and would be reported as false divergences.
 * - Unordered results (cancel-flow member lists, edge groups, `listEdges`) are sorted.
 * - Errors compare by `_tag`, `kind`, `entity` (NotFound) and the structured payloads
 *   (`notActive`, `existing`, `kid`); free-text `detail` / `message` are kept as notes only.
 */
import { createHash } from "node:crypto"
import {
  Cause,
  Clock,
  Duration,
  Effect,
  Either,
  Exit,
  FastCheck as fc,
  Option,
  Redacted,
  type Scope,
  TestClock,
  TestContext,
  TestServices
} from "effect"
import type { EngineBackend, HmacSecret } from "../../src/EngineBackend.js"
import type { EngineError } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { BudgetId, EdgeId, ExecutionId, FlowId, LaneId, SignalId, SuspensionId, WaitpointId } from "../../src/Ids.js"
import { decodeHandle } from "../../src/internal/handleCodec.js"
import { type Maintenance, type PassName, passNames, type PassResult } from "../../src/Maintenance.js"
import * as MemoryBackend from "../../src/MemoryBackend.js"
import type * as M from "../../src/Model.js"

// ---------------------------------------------------------------------------
// Constants shared by every run
// ---------------------------------------------------------------------------

/** The `TestClock` time every run starts at (a realistic epoch-ms value). */
export const BASE_TIME = 1_760_000_000_000

/** The HMAC keystore every engine is seeded with. */
export const HMAC: HmacSecret = { kid: "diff-k1", secretHex: Redacted.make("5eed".repeat(16)) }

export const LANES: ReadonlyArray<LaneId> = [Ids.unsafe.laneId("diff-a"), Ids.unsafe.laneId("diff-b")]
export const CAPABILITIES = ["gpu", "ssd"] as const
export type Capability = (typeof CAPABILITIES)[number]
const NS = Ids.unsafe.namespace("diff")
const WORKERS = [
  { workerId: Ids.unsafe.workerId("w0"), workerInstanceId: Ids.unsafe.workerInstanceId("w0-i") },
  { workerId: Ids.unsafe.workerId("w1"), workerInstanceId: Ids.unsafe.workerInstanceId("w1-i") }
] as const

/** A backend operation that takes longer than this in real time is recorded as a hang. */
const HANG_MS = 20_000

// ---------------------------------------------------------------------------
// The command model
// ---------------------------------------------------------------------------

/** An index into an earlier result list, counted from the most recent (0 = the last one). */
export type Ref = number

export type Backoff = "none" | "fixed100" | "fixed1000" | "exponential"

export interface RetrySpec {
  readonly maxRetries: number
  readonly backoff: Backoff
  /** `retryableCategories: ["transient"]` (docs/design/decisions.md#retry-decision). */
  readonly onlyTransient: boolean
}

export type SummaryPatch = string

export type Command =
  | {
    readonly _tag: "CreateExecution"
    readonly lane: number
    readonly priority: number
    readonly delayMs?: number | undefined
    readonly retry?: RetrySpec | undefined
    readonly caps: ReadonlyArray<Capability>
    /** Mint the id co-located with this flow (for a later `AddToFlow`, or right away with `join`). */
    readonly flow?: Ref | undefined
    /** With `flow`: add the new execution to the flow in the same command (`addExecutionToFlow`). */
    readonly join: boolean
    readonly attemptTimeoutMs?: number | undefined
    readonly deadlineMs?: number | undefined
    readonly maxReplayCount?: number | undefined
    readonly maxReclaimCount?: number | undefined
    readonly idempotencyKey?: string | undefined
    /** `streamPolicy.retentionTtlMs`: how long `trimRetention` keeps it once terminal. */
    readonly retentionMs?: number | undefined
    /** Re-submit the id of an earlier execution (⇒ `Duplicate`). */
    readonly duplicateOf?: Ref | undefined
  }
  | {
    readonly _tag: "Claim"
    readonly lane: number
    readonly caps: ReadonlyArray<Capability>
    readonly ttlMs: number
    readonly worker: number
  }
  | { readonly _tag: "Renew"; readonly handle: Ref }
  | {
    readonly _tag: "Progress"
    readonly handle: Ref
    readonly percent?: number | undefined
    readonly message?: string | undefined
  }
  | { readonly _tag: "Complete"; readonly handle: Ref; readonly payload?: string | undefined }
  | {
    readonly _tag: "Fail"
    readonly handle: Ref
    readonly classification: M.FailureClass
    /** `reason.detail`, the failure category (docs/design/decisions.md#retry-decision). */
    readonly category?: string | undefined
  }
  | { readonly _tag: "Cancel"; readonly handle: Ref }
  | { readonly _tag: "Delay"; readonly handle: Ref; readonly delayMs: number }
  | { readonly _tag: "WaitChildren"; readonly handle: Ref }
  | { readonly _tag: "CreateWaitpoint"; readonly handle: Ref; readonly expiresInMs: number }
  | {
    readonly _tag: "Suspend"
    readonly handle: Ref
    /** `fresh`: one new waitpoint; `pending`: the latest pending waitpoint (`UsePending`). */
    readonly binding: "fresh" | "pending"
    /** `ByName("go")` or `Wildcard`. */
    readonly matcher: "go" | "*"
    readonly timeoutMs?: number | undefined
    readonly timeoutBehavior?: M.TimeoutBehavior | undefined
    readonly reasonCode?: string | undefined
    readonly resumeDelayMs?: number | undefined
    readonly idempotencyKey?: string | undefined
  }
  | {
    readonly _tag: "DeliverSignal"
    readonly waitpoint: Ref
    /** `good`: the waitpoint's own token; `forged`: same kid, zero digest; `other`: another waitpoint's token; `unknownWaitpoint`: a never-created waitpoint id. */
    readonly token: "good" | "forged" | "other" | "unknownWaitpoint"
    readonly name: "go" | "stop"
    readonly idempotencyKey?: string | undefined
    readonly resumeDelayMs?: number | undefined
  }
  | { readonly _tag: "ObserveSignals"; readonly handle: Ref }
  | { readonly _tag: "RevokeLease"; readonly execution: Ref; readonly expected: "none" | "current" | "stale" }
  | { readonly _tag: "CancelExecution"; readonly execution: Ref }
  | { readonly _tag: "ChangePriority"; readonly execution: Ref; readonly priority: number }
  | { readonly _tag: "ReplayExecution"; readonly execution: Ref }
  | { readonly _tag: "CreateFlow"; readonly existing?: Ref | undefined; readonly sealed?: boolean | undefined }
  | { readonly _tag: "SealFlow"; readonly flow: Ref }
  | Scenario
  /**
   * `extendFlow`: with `member`, one new member (on the first lane); each edge joins two members
   * (`NEW`: the new one; else a ref into the flow's members) — late edges, edges into finished
   * or running members, into satisfied joins; `join`: the new member's join policy.
   */
  | {
    readonly _tag: "ExtendFlow"
    readonly flow: Ref
    readonly member: boolean
    readonly edges: ReadonlyArray<readonly [EndRef, EndRef]>
    readonly join?: M.EdgeDependencyPolicy | undefined
    readonly dataPassing: boolean
  }
  | { readonly _tag: "AddToFlow"; readonly flow: Ref; readonly execution: Ref }
  | {
    readonly _tag: "SetEdgeGroupPolicy"
    readonly flow: Ref
    readonly downstream: Ref
    readonly policy: M.EdgeDependencyPolicy
  }
  | {
    readonly _tag: "StageEdge"
    readonly flow: Ref
    readonly upstream: Ref
    readonly downstream: Ref
    readonly revision: "current" | "stale"
    /** Apply it to the child right after a successful staging (`AddEdge`). */
    readonly apply: boolean
    readonly dataPassing: boolean
  }
  /** Applies an earlier edge to its child, whether or not its staging succeeded (applying does not check it). */
  | { readonly _tag: "ApplyEdge"; readonly edge: Ref }
  | { readonly _tag: "CancelFlow"; readonly flow: Ref; readonly policy: M.CancelFlowPolicy }
  | {
    readonly _tag: "CreateBudget"
    readonly dimensions: ReadonlyArray<string>
    readonly hard: number
    readonly soft: number
    readonly resetIntervalMs: number
  }
  | {
    readonly _tag: "ReportUsage"
    /** An index into the budgets; an unknown budget (no budget yet) is unlimited (docs/design/decisions.md#usage-reports-trust-the-handle). */
    readonly budget: Ref
    readonly amounts: ReadonlyArray<readonly [string, number]>
    readonly dedupKey?: string | undefined
    /** `reportUsage(handle, …)` with this handle instead of `reportUsageAdmin`. */
    readonly handle?: Ref | undefined
  }
  | { readonly _tag: "ResetBudget"; readonly budget: Ref }
  | {
    readonly _tag: "AppendFrame"
    readonly handle: Ref
    readonly kind: M.FrameKind
    readonly text: string
    readonly mode: "durable" | "summary" | "bestEffort"
  }
  | { readonly _tag: "ReadStream"; readonly execution: Ref; readonly attemptIndex: number; readonly countLimit: number }
  | { readonly _tag: "Advance"; readonly ms: number }
  | { readonly _tag: "Pass"; readonly pass: PassName }
  /** Advances the clock, then runs every maintenance pass once in `passNames` order (a reconciler cycle). */
  | { readonly _tag: "Settle"; readonly ms: number }

/** How a scenario step leaves an upstream: claimed and completed or failed, cancelled, left waiting. */
export type Drive = "complete" | "fail" | "cancel" | "none"

/**
 * Scenario commands build one shape with several calls (each recorded), on lanes of their own so
 * that their claims take exactly the member meant:
 * - `LateEdge`: in the flow, a child `c` with join `policy` and an edge from `u1`; `u1` is driven
 *   (`early`), the child claimed or finished (`child`), `u2` driven (`late`; `skipped`: through
 *   an upstream of its own that fails), then the edge `u2 -> c` staged and applied (or added with
 *   `extendFlow`), then `u2` driven again (`after`).
 * - `FinishedFlow`: a new flow (sealed or not) whose one member finishes (`how`), then `then`: a
 *   member added, the flow extended, an edge from the finished member to a new one, the flow
 *   sealed, or cancelled.
 */
export type Scenario =
  | {
    readonly _tag: "LateEdge"
    readonly flow: Ref
    readonly policy: M.EdgeDependencyPolicy
    readonly early: Drive
    readonly child: "waiting" | "active" | "completed"
    readonly late: Drive | "skipped"
    readonly after: Drive
    readonly via: "apply" | "extend"
  }
  | {
    readonly _tag: "FinishedFlow"
    readonly sealed: boolean
    readonly how: Drive
    readonly then: "add" | "extend" | "edge" | "seal" | "cancel"
  }

/** An end of an `ExtendFlow` edge: `NEW` (the call's new member) or a ref into the flow's members. */
export type EndRef = number
export const NEW: EndRef = -1

export type CommandTag = Command["_tag"]

/** One generated sequence. `salt` seeds the test-minted ids. */
export interface Sample {
  readonly salt: number
  readonly commands: ReadonlyArray<Command>
}

// ---------------------------------------------------------------------------
// Generation
// ---------------------------------------------------------------------------

const ref: fc.Arbitrary<Ref> = fc.nat({ max: 5 })

/** Handle refs: mostly 0–3 (live handles), sometimes 4–7 (any handle, spent ones included). */
const handleRef: fc.Arbitrary<Ref> = fc.oneof(
  { arbitrary: fc.nat({ max: 3 }), weight: 5 },
  { arbitrary: fc.integer({ min: 4, max: 7 }), weight: 1 }
)

/** Mostly the first lane, so that claims find work. */
const laneArb: fc.Arbitrary<number> = fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, {
  arbitrary: fc.integer({ min: 0, max: LANES.length - 1 }),
  weight: 1
})

/** `undefined` with weight `none`, else a value of `arb` with weight `some`. */
const opt = <A>(arb: fc.Arbitrary<A>, some = 1, none = 1): fc.Arbitrary<A | undefined> =>
  fc.oneof({ arbitrary: fc.constant(undefined), weight: none }, { arbitrary: arb, weight: some })

const capsArb: fc.Arbitrary<ReadonlyArray<Capability>> = fc.oneof(
  { arbitrary: fc.constant<ReadonlyArray<Capability>>([]), weight: 4 },
  { arbitrary: fc.subarray([...CAPABILITIES], { minLength: 1 }), weight: 1 }
)

const retryArb: fc.Arbitrary<RetrySpec> = fc.record({
  maxRetries: fc.integer({ min: 0, max: 2 }),
  backoff: fc.constantFrom<Backoff>("none", "fixed100", "fixed1000", "exponential"),
  onlyTransient: fc.boolean()
})

const failureClass = fc.constantFrom<M.FailureClass>("Transient", "Permanent", "InfraCrash", "Timeout", "Cancelled")
const timeoutBehavior = fc.constantFrom<M.TimeoutBehavior>(
  "fail",
  "cancel",
  "expire",
  "auto_resume_with_timeout_signal",
  "auto_resume",
  "escalate"
)
const onSatisfied = fc.constantFrom<M.OnSatisfied>("cancel_remaining", "let_run")
const edgePolicy: fc.Arbitrary<M.EdgeDependencyPolicy> = fc.oneof(
  fc.constant<M.EdgeDependencyPolicy>({ _tag: "all_of" }),
  onSatisfied.map((o): M.EdgeDependencyPolicy => ({ _tag: "any_of", onSatisfied: o })),
  fc.record({ k: fc.integer({ min: 0, max: 3 }), onSatisfied }).map((r): M.EdgeDependencyPolicy => ({
    _tag: "quorum",
    k: r.k,
    onSatisfied: r.onSatisfied
  }))
)

export const SUMMARY_PATCHES: ReadonlyArray<SummaryPatch> = [
  "{\"a\":1}",
  "{\"b\":{\"c\":\"x\"}}",
  "{\"a\":null}",
  "{\"s\":\"__ff_null__\"}",
  "not json",
  "[1,2]"
]

const w = <A>(weight: number, arbitrary: fc.Arbitrary<A>) => ({ weight, arbitrary })

const createArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CreateExecution" as const),
  lane: laneArb,
  priority: fc.constantFrom(0, 0, 0, 1, 5, 9001, -1),
  delayMs: opt(fc.constantFrom(-100, 0, 50, 1000, 5000), 1, 6),
  retry: opt(retryArb, 1, 2),
  caps: capsArb,
  flow: opt(ref, 1, 1),
  join: fc.oneof({ arbitrary: fc.constant(true), weight: 4 }, { arbitrary: fc.constant(false), weight: 1 }),
  attemptTimeoutMs: opt(fc.constantFrom(500, 3000), 1, 8),
  deadlineMs: opt(fc.constantFrom(1000, 10_000), 1, 8),
  maxReplayCount: opt(fc.constantFrom(0, 1), 1, 6),
  maxReclaimCount: opt(fc.constantFrom(0, 1), 1, 8),
  idempotencyKey: opt(fc.constantFrom("idem-1", "idem-2"), 1, 8),
  duplicateOf: opt(ref, 1, 12),
  retentionMs: opt(fc.constantFrom(0, 1000, 30_000), 1, 2)
})

const claimArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("Claim" as const),
  lane: laneArb,
  caps: fc.oneof(
    { arbitrary: fc.constant<ReadonlyArray<Capability>>(CAPABILITIES), weight: 3 },
    { arbitrary: fc.constant<ReadonlyArray<Capability>>([]), weight: 2 },
    { arbitrary: fc.subarray([...CAPABILITIES]), weight: 1 }
  ),
  ttlMs: fc.constantFrom(1000, 5000, 30_000),
  worker: fc.integer({ min: 0, max: WORKERS.length - 1 })
})

const createFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CreateFlow" as const),
  existing: opt(ref, 1, 8),
  sealed: opt(fc.constant(true), 1, 8)
})

const endRef: fc.Arbitrary<EndRef> = fc.oneof(w(2, fc.constant(NEW)), w(3, ref))

const extendFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("ExtendFlow" as const),
  flow: ref,
  member: fc.oneof(w(3, fc.constant(true)), w(1, fc.constant(false))),
  edges: fc.array(fc.tuple(endRef, endRef), { minLength: 0, maxLength: 3 }),
  join: opt(edgePolicy, 1, 2),
  dataPassing: fc.boolean()
})

const driveArb: fc.Arbitrary<Drive> = fc.constantFrom<Drive>("complete", "complete", "fail", "cancel", "none")

const lateEdgeArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("LateEdge" as const),
  flow: fc.oneof(w(3, fc.constant(0)), w(1, ref)),
  policy: edgePolicy,
  early: driveArb,
  child: fc.constantFrom<"waiting" | "active" | "completed">("waiting", "waiting", "active", "completed"),
  late: fc.oneof(w(4, driveArb), w(1, fc.constant("skipped" as const))),
  after: driveArb,
  via: fc.constantFrom<"apply" | "extend">("apply", "extend")
})

const finishedFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("FinishedFlow" as const),
  sealed: fc.oneof(w(3, fc.constant(false)), w(1, fc.constant(true))),
  how: fc.constantFrom<Drive>("complete", "fail", "cancel"),
  then: fc.constantFrom<"add" | "extend" | "edge" | "seal" | "cancel">("add", "extend", "edge", "seal", "cancel")
})

const stageEdgeArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("StageEdge" as const),
  flow: ref,
  upstream: ref,
  downstream: ref,
  revision: fc.oneof(w(6, fc.constant("current" as const)), w(1, fc.constant("stale" as const))),
  apply: fc.oneof(w(3, fc.constant(true)), w(1, fc.constant(false))),
  dataPassing: fc.oneof(w(1, fc.constant(true)), w(2, fc.constant(false)))
})

const cancelFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CancelFlow" as const),
  flow: ref,
  policy: fc.constantFrom<M.CancelFlowPolicy>("FlowOnly", "CancelAll", "CancelPending")
})

export const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  w(16, createArb),
  w(15, claimArb),
  w(3, fc.record({ _tag: fc.constant("Renew" as const), handle: handleRef })),
  w(
    2,
    fc.record({
      _tag: fc.constant("Progress" as const),
      handle: handleRef,
      percent: opt(fc.integer({ min: 0, max: 100 })),
      message: opt(fc.constantFrom("working", "almost"))
    })
  ),
  w(7, fc.record({ _tag: fc.constant("Complete" as const), handle: handleRef, payload: opt(fc.constantFrom("out", ""), 3, 1) })),
  w(
    6,
    fc.record({
      _tag: fc.constant("Fail" as const),
      handle: handleRef,
      classification: failureClass,
      category: opt(fc.constantFrom("transient", "boom"), 1, 3)
    })
  ),
  w(2, fc.record({ _tag: fc.constant("Cancel" as const), handle: handleRef })),
  w(3, fc.record({ _tag: fc.constant("Delay" as const), handle: handleRef, delayMs: fc.constantFrom(-100, 0, 100, 1000) })),
  w(2, fc.record({ _tag: fc.constant("WaitChildren" as const), handle: handleRef })),
  w(
    2,
    fc.record({
      _tag: fc.constant("CreateWaitpoint" as const),
      handle: handleRef,
      expiresInMs: fc.constantFrom(100, 1000, 60_000)
    })
  ),
  w(
    10,
    fc.record({
      _tag: fc.constant("Suspend" as const),
      handle: handleRef,
      binding: fc.oneof(w(5, fc.constant("fresh" as const)), w(1, fc.constant("pending" as const))),
      matcher: fc.constantFrom<"go" | "*">("go", "*"),
      timeoutMs: opt(fc.constantFrom(100, 1000, 10_000, 10_000, -700_000), 1, 1),
      timeoutBehavior: opt(timeoutBehavior, 3, 1),
      reasonCode: opt(fc.constantFrom("waiting_for_approval", "manual_pause", "custom_code"), 1, 3),
      resumeDelayMs: opt(fc.constantFrom(100, 1000), 1, 5),
      idempotencyKey: opt(fc.constantFrom("susp-1"), 1, 6)
    })
  ),
  w(
    9,
    fc.record({
      _tag: fc.constant("DeliverSignal" as const),
      waitpoint: ref,
      token: fc.oneof(
        w(6, fc.constant("good" as const)),
        w(1, fc.constant("forged" as const)),
        w(1, fc.constant("other" as const)),
        w(1, fc.constant("unknownWaitpoint" as const))
      ),
      name: fc.oneof(w(3, fc.constant("go" as const)), w(1, fc.constant("stop" as const))),
      idempotencyKey: opt(fc.constantFrom("sig-1"), 1, 4),
      resumeDelayMs: opt(fc.constantFrom(100, 1000), 1, 6)
    })
  ),
  w(1, fc.record({ _tag: fc.constant("ObserveSignals" as const), handle: handleRef })),
  w(
    2,
    fc.record({
      _tag: fc.constant("RevokeLease" as const),
      execution: ref,
      expected: fc.constantFrom<"none" | "current" | "stale">("none", "current", "stale")
    })
  ),
  w(2, fc.record({ _tag: fc.constant("CancelExecution" as const), execution: ref })),
  w(
    2,
    fc.record({ _tag: fc.constant("ChangePriority" as const), execution: ref, priority: fc.constantFrom(0, 3, 9001) })
  ),
  w(2, fc.record({ _tag: fc.constant("ReplayExecution" as const), execution: ref })),
  w(4, createFlowArb),
  w(2, fc.record({ _tag: fc.constant("AddToFlow" as const), flow: ref, execution: ref })),
  w(
    2,
    fc.record({ _tag: fc.constant("SetEdgeGroupPolicy" as const), flow: ref, downstream: ref, policy: edgePolicy })
  ),
  w(5, stageEdgeArb),
  w(1, fc.record({ _tag: fc.constant("ApplyEdge" as const), edge: ref })),
  w(2, cancelFlowArb),
  w(2, extendFlowArb),
  w(1, fc.record({ _tag: fc.constant("SealFlow" as const), flow: ref })),
  w(1, lateEdgeArb),
  w(1, finishedFlowArb),
  w(
    1,
    fc.record({
      _tag: fc.constant("CreateBudget" as const),
      dimensions: fc.subarray(["calls", "tokens"], { minLength: 1 }),
      hard: fc.constantFrom(0, 5, 10),
      soft: fc.constantFrom(0, 3),
      resetIntervalMs: fc.constantFrom(0, 0, 1000)
    })
  ),
  w(
    2,
    fc.record({
      _tag: fc.constant("ReportUsage" as const),
      budget: ref,
      amounts: fc.subarray(["calls", "tokens"], { minLength: 1 }).chain((dims) =>
        fc.tuple(...dims.map((d) => fc.constantFrom(1, 3, 7).map((n) => [d, n] as const)))
      ),
      dedupKey: opt(fc.constantFrom("u-1", "u-2"), 1, 2),
      handle: opt(handleRef, 1, 3)
    })
  ),
  w(1, fc.record({ _tag: fc.constant("ResetBudget" as const), budget: ref })),
  w(
    3,
    fc.record({
      _tag: fc.constant("AppendFrame" as const),
      handle: handleRef,
      kind: fc.constantFrom<M.FrameKind>("stdout", "stderr", "event", "blob"),
      text: fc.constantFrom(...SUMMARY_PATCHES, "hello"),
      mode: fc.oneof(
        w(6, fc.constant("durable" as const)),
        w(3, fc.constant("summary" as const)),
        w(1, fc.constant("bestEffort" as const))
      )
    })
  ),
  w(
    2,
    fc.record({
      _tag: fc.constant("ReadStream" as const),
      execution: ref,
      attemptIndex: fc.integer({ min: 0, max: 2 }),
      countLimit: fc.constantFrom(1, 3, 100, 0)
    })
  ),
  w(
    6,
    fc.record({
      _tag: fc.constant("Advance" as const),
      ms: fc.constantFrom(1, 10, 100, 500, 999, 1000, 1001, 3000, 5000, 30_000, 60_000)
    })
  ),
  w(5, fc.record({ _tag: fc.constant("Pass" as const), pass: fc.constantFrom(...passNames) })),
  w(
    4,
    fc.record({ _tag: fc.constant("Settle" as const), ms: fc.constantFrom(0, 100, 1000, 1001, 5000, 30_000, 90_000) })
  )
)

/**
 * The `flows` profile: flows that grow while they run. Members are created into the flow, claimed
 * and finished, and edges keep coming: applied after their upstream finished (or was skipped or
 * cancelled), into running and finished members, into any_of / quorum joins already satisfied;
 * members added and flows extended in every state (running, finished, sealed, cancelled);
 * sealing; cancelling finished flows.
 */
const flowMemberArb: fc.Arbitrary<Command> = createArb.map((c) =>
  c._tag === "CreateExecution" ?
    {
      ...c,
      flow: c.flow ?? 0,
      join: true,
      lane: 0,
      delayMs: undefined,
      deadlineMs: undefined,
      idempotencyKey: undefined,
      duplicateOf: undefined,
      caps: []
    } :
    c
)

export const flowCommandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  w(8, flowMemberArb),
  w(12, claimArb.map((c) => (c._tag === "Claim" ? { ...c, lane: 0, caps: CAPABILITIES } : c))),
  w(8, fc.record({ _tag: fc.constant("Complete" as const), handle: handleRef, payload: opt(fc.constantFrom("out", ""), 3, 1) })),
  w(
    4,
    fc.record({
      _tag: fc.constant("Fail" as const),
      handle: handleRef,
      classification: fc.constantFrom<M.FailureClass>("Permanent", "Transient"),
      category: opt(fc.constantFrom("boom"), 1, 3)
    })
  ),
  w(1, fc.record({ _tag: fc.constant("Cancel" as const), handle: handleRef })),
  w(2, fc.record({ _tag: fc.constant("CancelExecution" as const), execution: ref })),
  w(2, fc.record({ _tag: fc.constant("ReplayExecution" as const), execution: ref })),
  w(10, stageEdgeArb.map((c) => (c._tag === "StageEdge" ? { ...c, revision: "current" as const, apply: true } : c))),
  w(1, fc.record({ _tag: fc.constant("ApplyEdge" as const), edge: ref })),
  w(
    4,
    fc.record({ _tag: fc.constant("SetEdgeGroupPolicy" as const), flow: ref, downstream: ref, policy: edgePolicy })
  ),
  w(8, extendFlowArb),
  w(10, lateEdgeArb),
  w(4, finishedFlowArb),
  w(3, fc.record({ _tag: fc.constant("AddToFlow" as const), flow: ref, execution: ref })),
  w(2, fc.record({ _tag: fc.constant("SealFlow" as const), flow: ref })),
  w(2, cancelFlowArb),
  w(2, createFlowArb),
  w(2, fc.record({ _tag: fc.constant("Advance" as const), ms: fc.constantFrom(10, 1000, 30_000) })),
  w(2, fc.record({ _tag: fc.constant("Settle" as const), ms: fc.constantFrom(0, 1000, 30_000) }))
)

/** A flow with members, some claimed, so the body starts on a running flow. */
const flowPreludeArb: fc.Arbitrary<ReadonlyArray<Command>> = fc.tuple(
  fc.constant<Command>({ _tag: "CreateFlow" }),
  fc.array(flowMemberArb, { minLength: 2, maxLength: 4, size: "max" }),
  fc.array(claimArb.map((c) => (c._tag === "Claim" ? { ...c, lane: 0, caps: CAPABILITIES } : c)), { maxLength: 2, size: "max" })
).map(([flow, members, claims]) => [flow, ...members, ...claims])

export type Profile = "general" | "flows"

export interface GenerationOptions {
  readonly maxCommands?: number | undefined
  /** `general` (default): every operation; `flows`: flows that grow while they run. */
  readonly profile?: Profile | undefined
}

/**
 * A few flows, then creates, then claims, so that the random body finds handles and flows to use
 * (each part may shrink away).
 */
const preludeArb: fc.Arbitrary<ReadonlyArray<Command>> = fc.tuple(
  fc.array(createFlowArb, { maxLength: 1, size: "max" }),
  fc.array(createArb, { maxLength: 3, size: "max" }),
  fc.array(claimArb, { maxLength: 2, size: "max" })
).map(([flows, creates, claims]) => [...flows, ...creates, ...claims])

export const sampleArbitrary = (options: GenerationOptions = {}): fc.Arbitrary<Sample> => {
  const max = options.maxCommands ?? 40
  const flows = options.profile === "flows"
  return fc.record({
    salt: fc.nat({ max: 0x7fffffff }),
    prelude: flows ? flowPreludeArb : preludeArb,
    body: fc.array(flows ? flowCommandArbitrary : commandArbitrary, {
      minLength: 1,
      maxLength: Math.max(1, max - 6),
      size: "max"
    })
  }).map(({ body, prelude, salt }): Sample => ({ salt, commands: [...prelude, ...body] }))
}

// ---------------------------------------------------------------------------
// JSON values and normalisation
// ---------------------------------------------------------------------------

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

const UUID_RE = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g
const EPOCH_MS_RE = /(?<![\d])\d{13}(?![\d])/g
const STREAM_ID_RE = /^\d+-\d+$/
/** Timestamps are within this distance of the run's base time; other integers are left alone. */
const TIME_WINDOW = 100_000_000_000

const uuidCategory = (key: string | undefined): string => {
  switch (key) {
    case "leaseId":
    case "expectedLeaseId":
      return "lease"
    case "attemptId":
      return "attempt"
    case "waitpointId":
    case "currentWaitpoint":
    case "nextCursor":
      return "wp"
    default:
      return "id"
  }
}

const textDecoder = new TextDecoder()

/**
 * Replaces backend-specific values by stable placeholders (ordinal of first appearance, per
 * category) and timestamps by `T+<ms since base>`. Object keys are visited in sorted order, so
 * two structurally equal results get the same placeholders.
 */
export class Normalizer {
  private readonly placeholders = new Map<string, string>()
  private readonly counters = new Map<string, number>()
  /** Stream entry ids are per stream: they are mapped within this scope (`<execution>:<attempt>`). */
  private streamScope = ""

  /** Runs `f` with stream ids scoped to one stream. */
  withStream<A>(scope: string, f: () => A): A {
    const previous = this.streamScope
    this.streamScope = scope
    try {
      return f()
    } finally {
      this.streamScope = previous
    }
  }

  constructor(readonly base: number, readonly known: ReadonlySet<string>) {}

  private placeholder(category: string, raw: string): string {
    const existing = this.placeholders.get(raw)
    if (existing !== undefined) return existing
    const n = this.counters.get(category) ?? 0
    this.counters.set(category, n + 1)
    const p = `<${category}#${n}>`
    this.placeholders.set(raw, p)
    return p
  }

  time(ms: number): string {
    const d = ms - this.base
    return d >= 0 ? `T+${d}` : `T${d}`
  }

  string(s: string, key: string | undefined): string {
    if (key === "streamId" || (key === "id" && STREAM_ID_RE.test(s))) {
      return this.placeholder("stream", `${this.streamScope}|${s}`)
    }
    if (key === "waitpointToken" || key === "hmacToken") return this.placeholder("token", s)
    if (key === "tokenFingerprint") return this.placeholder("fingerprint", s)
    if (key === "grantKey") return this.placeholder("grant", s)
    return s
      .replace(UUID_RE, (u) => (this.known.has(u) ? u : this.placeholder(uuidCategory(key), u)))
      .replace(EPOCH_MS_RE, (digits) => {
        const n = Number(digits)
        return Math.abs(n - this.base) <= TIME_WINDOW ? this.time(n) : digits
      })
  }

  handle(h: M.Handle): Json {
    const decoded = decodeHandle(h.backend, h)
    if (Either.isLeft(decoded)) return { handleKind: h.kind, undecodable: decoded.left._tag }
    return this.value({ handleKind: h.kind, ...decoded.right }, undefined)
  }

  value(v: unknown, key: string | undefined): Json {
    if (v === undefined || v === null) return null
    switch (typeof v) {
      case "boolean":
        return v
      case "number":
        return Number.isInteger(v) && Math.abs(v - this.base) <= TIME_WINDOW ? this.time(v) : v
      case "bigint":
        return `${v}n`
      case "string":
        return this.string(v, key)
      case "function":
      case "symbol":
        return `<${typeof v}>`
      default:
        break
    }
    if (v instanceof Uint8Array) return `bytes:${textDecoder.decode(v)}`
    if (Array.isArray(v)) return v.map((x: unknown) => this.value(x, key))
    if (Option.isOption(v)) {
      return Option.isSome(v) ? { Some: this.value(v.value, key) } : "None"
    }
    if (Duration.isDuration(v)) return `${Duration.toMillis(v)}ms`
    if (isHandle(v)) return this.handle(v)
    const out: Record<string, Json> = {}
    const record = v as Readonly<Record<string, unknown>>
    for (const k of Object.keys(record).sort()) {
      const x = record[k]
      if (x === undefined || typeof x === "function") continue
      out[k] = this.value(x, k)
    }
    return out
  }
}

const isHandle = (v: unknown): v is M.Handle =>
  typeof v === "object" && v !== null && "backend" in v && "kind" in v && "opaque" in v &&
  v.opaque instanceof Uint8Array

/** A deterministic JSON text with sorted keys (the comparison key of a value). */
export const stableStringify = (v: Json): string => {
  if (v === null || typeof v !== "object") return JSON.stringify(v)
  if (Array.isArray(v)) return `[${(v as ReadonlyArray<Json>).map(stableStringify).join(",")}]`
  const o = v as { readonly [key: string]: Json }
  return `{${
    Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${stableStringify(o[k]!)}`).join(",")
  }}`
}

// ---------------------------------------------------------------------------
// Engines
// ---------------------------------------------------------------------------

export interface Engine {
  readonly backend: EngineBackend.Service
  readonly maintenance: Maintenance.Service
}

/** Builds a fresh, isolated engine for one run (released with the scope). */
export interface EngineFactory {
  readonly name: string
  readonly make: Effect.Effect<Engine, unknown, Scope.Scope>
}

export const memoryFactory = (name = "memory"): EngineFactory => ({
  name,
  make: MemoryBackend.make({ hmacSecret: HMAC })
})

// ---------------------------------------------------------------------------
// The interpreter
// ---------------------------------------------------------------------------

export interface StepRecord {
  readonly index: number
  /** The command, or `FinalSweep` for the reads after the last command. */
  readonly label: string
  readonly result: Json
  readonly reads: Json
  /** Free-text error details, for the report only (never compared). */
  readonly notes: ReadonlyArray<string>
}

export interface RunRecord {
  readonly engine: string
  readonly steps: ReadonlyArray<StepRecord>
  /** Real time spent building the engine, running the commands (with their reads), and the final sweep. */
  readonly timing: { readonly makeMs: number; readonly stepsMs: number; readonly sweepMs: number }
  /** Set when the run stopped early at the first step that differed from `reference`. */
  readonly stoppedAt?: number | undefined
  /** Set when the run stopped early because an `endRun` waiver matched (the runs agree up to there). */
  readonly endedByWaiver?: boolean | undefined
}

interface Failure {
  readonly error?: EngineError | undefined
  readonly defect?: string | undefined
}

type Outcome<A> = Either.Either<A, Failure>

interface Pending {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  readonly waitpointKey: string
  readonly token: string
}

interface Signalable {
  readonly executionId: ExecutionId
  readonly waitpointId: WaitpointId
  readonly token: string
}

interface StagedEdge {
  readonly flowId: FlowId
  readonly edgeId: EdgeId
  readonly upstream: ExecutionId
  readonly downstream: ExecutionId
  readonly dataPassingRef?: string | undefined
}

interface Touched {
  readonly executions: Array<ExecutionId>
  readonly flows: Array<FlowId>
  readonly budgets: Array<BudgetId>
  all: boolean
}

/** The per-run state of the interpreter: what earlier commands produced on this engine. */
class Run {
  readonly known = new Set<string>()
  readonly norm: Normalizer
  readonly executions: Array<ExecutionId> = []
  readonly handles: Array<M.Handle> = []
  /** Handles whose lease was released or found lost on this run (identity of the handle values). */
  readonly spent = new Set<M.Handle>()
  readonly signalable: Array<Signalable> = []
  readonly pending: Array<Pending> = []
  readonly flows: Array<FlowId> = []
  readonly members = new Map<FlowId, Array<ExecutionId>>()
  readonly edges: Array<StagedEdge> = []
  readonly budgets: Array<BudgetId> = []
  notes: Array<string> = []

  constructor(readonly engine: Engine, readonly salt: number, base: number) {
    this.norm = new Normalizer(base, this.known)
  }

  /** A UUID derived from the salt and `parts`, registered as test-minted. */
  mint(...parts: ReadonlyArray<string | number>): string {
    const h = createHash("sha256").update(`${this.salt}|${parts.join("|")}`).digest("hex")
    const v = `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${"89ab"[parseInt(h[16]!, 16) & 3]}${
      h.slice(17, 20)
    }-${h.slice(20, 32)}`
    this.known.add(v)
    return v
  }
}

const pickRecent = <A>(list: ReadonlyArray<A>, r: Ref): A | undefined =>
  list.length === 0 ? undefined : list[list.length - 1 - (r % list.length)]

/** Refs 0–3 pick among the handles not known to be spent (when there are any), larger refs among all. */
const pickHandle = (run: Run, r: Ref): M.Handle | undefined => {
  const live = run.handles.filter((h) => !run.spent.has(h))
  return r < 4 && live.length > 0 ? pickRecent(live, r) : pickRecent(run.handles, r)
}

const LOST: ReadonlyArray<string> = ["ExecutionNotActive", "LeaseExpired", "LeaseRevoked", "StaleLease"]

/** Marks `h` spent after an operation that released its lease, or that found it lost. */
const settle = <A>(run: Run, h: M.Handle, o: Outcome<A>, releases: boolean): void => {
  if (Either.isRight(o) ? releases : LOST.includes(String((o.left.error as { kind?: unknown } | undefined)?.kind))) {
    run.spent.add(h)
  }
}

const payloadOf = (h: M.Handle): M.HandlePayload | undefined => Either.getOrUndefined(decodeHandle(h.backend, h))

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s)

/** Runs one backend call: its value, its typed error, or its defect; a hang (real time) is a defect. */
const attempt = <A>(run: Run, effect: Effect.Effect<A, EngineError>): Effect.Effect<Outcome<A>> => {
  const hang = TestServices.provideLive(Effect.sleep(Duration.millis(HANG_MS))).pipe(
    Effect.zipRight(Effect.die(new Error(`no answer within ${HANG_MS} ms (real time)`)))
  )
  return Effect.exit(Effect.raceFirst(effect, hang)).pipe(
    Effect.map((exit): Outcome<A> => {
      if (Exit.isSuccess(exit)) return Either.right(exit.value)
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) {
        const e = failure.value
        const detail = "detail" in e && typeof e.detail === "string" ? e.detail : e.message
        if (detail !== "") run.notes.push(`${e._tag}${"kind" in e ? `(${String(e.kind)})` : ""}: ${detail}`)
        return Either.left({ error: e })
      }
      const defect = Cause.pretty(exit.cause).split("\n").slice(0, 3).join(" | ")
      run.notes.push(`defect: ${defect}`)
      return Either.left({ defect })
    })
  )
}

const ERROR_FIELDS = ["kind", "entity", "notActive", "existing", "kid", "op", "pool"] as const

const normError = (run: Run, f: Failure): Json => {
  if (f.error === undefined) return { defect: f.defect ?? "unknown" }
  const e = f.error
  const picked: Record<string, unknown> = { _tag: e._tag }
  const record = e as unknown as Readonly<Record<string, unknown>>
  for (const k of ERROR_FIELDS) if (record[k] !== undefined) picked[k] = record[k]
  if (e._tag === "Transport") picked["message"] = e.message
  return { err: run.norm.value(picked, undefined) }
}

const rec = <A>(run: Run, o: Outcome<A>, f: (a: A) => unknown = (a) => a): Json =>
  Either.isRight(o) ? { ok: run.norm.value(f(o.right), undefined) } : normError(run, o.left)

const skip = (why: string): Json => ({ skip: why })

/** A pass result without its next due time: a hint each backend gives from its own indexes (or not at all). */
const withoutDue = ({ nextDueAt: _, ...rest }: PassResult): Omit<PassResult, "nextDueAt"> => rest

const sortedIds = <A extends string>(ids: ReadonlyArray<A>): Array<A> => [...ids].sort()

const sortFlow = (s: M.FlowSnapshot): M.FlowSnapshot => ({
  ...s,
  edgeGroups: [...s.edgeGroups].sort((a, b) => a.downstreamExecutionId.localeCompare(b.downstreamExecutionId))
})

const sortCancelFlow = (r: M.CancelFlowResult): M.CancelFlowResult => {
  switch (r._tag) {
    case "Cancelled":
      return { ...r, memberExecutionIds: sortedIds(r.memberExecutionIds) }
    case "CancellationScheduled":
      return { ...r, memberExecutionIds: sortedIds(r.memberExecutionIds) }
    case "PartiallyCancelled":
      return {
        ...r,
        memberExecutionIds: sortedIds(r.memberExecutionIds),
        failedMemberExecutionIds: sortedIds(r.failedMemberExecutionIds)
      }
  }
}

const retryPolicy = (r: RetrySpec): M.RetryPolicy => {
  const backoff: M.BackoffStrategy | undefined = r.backoff === "fixed100" ?
    { type: "fixed", delayMs: 100 } :
    r.backoff === "fixed1000" ?
    { type: "fixed", delayMs: 1000 } :
    r.backoff === "exponential" ?
    { type: "exponential", initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2 } :
    undefined
  return {
    maxRetries: r.maxRetries,
    ...(backoff === undefined ? {} : { backoff }),
    ...(r.onlyTransient ? { retryableCategories: ["transient"] } : {})
  }
}

const now: Effect.Effect<number> = Clock.currentTimeMillis

const noTouch = (): Touched => ({ executions: [], flows: [], budgets: [], all: false })

interface Stepped {
  readonly result: Json
  readonly touched: Touched
}

/** Interprets one command against `run.engine`. */
const interpret = (run: Run, cmd: Command, i: number): Effect.Effect<Stepped> =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const touched = noTouch()
    const out = (result: Json): Stepped => ({ result, touched })
    const touchHandle = (h: M.Handle) => {
      const p = payloadOf(h)
      if (p !== undefined) touched.executions.push(p.executionId)
    }
    const withHandle = (
      r: Ref,
      f: (h: M.Handle) => Effect.Effect<Json>
    ): Effect.Effect<Stepped> => {
      const h = pickHandle(run, r)
      if (h === undefined) return Effect.succeed(out(skip("no handle")))
      touchHandle(h)
      return Effect.map(f(h), out)
    }
    const withExecution = (r: Ref, f: (id: ExecutionId) => Effect.Effect<Json>): Effect.Effect<Stepped> => {
      const id = pickRecent(run.executions, r)
      if (id === undefined) return Effect.succeed(out(skip("no execution")))
      touched.executions.push(id)
      return Effect.map(f(id), out)
    }

    switch (cmd._tag) {
      case "CreateExecution": {
        const t = yield* now
        const lane = LANES[cmd.lane % LANES.length]!
        const flow = cmd.flow === undefined ? undefined : pickRecent(run.flows, cmd.flow)
        const duplicate = cmd.duplicateOf === undefined ? undefined : pickRecent(run.executions, cmd.duplicateOf)
        const uuid = run.mint("execution", i)
        const executionId = duplicate ??
          (flow === undefined ?
            Ids.deterministicExecutionIdSolo(lane, uuid) :
            Ids.deterministicExecutionIdForFlow(flow, uuid))
        const policy: M.ExecutionPolicy = {
          ...(cmd.retry === undefined ? {} : { retryPolicy: retryPolicy(cmd.retry) }),
          ...(cmd.caps.length === 0 ? {} : { routingRequirements: { requiredCapabilities: [...cmd.caps] } }),
          ...(cmd.attemptTimeoutMs === undefined ? {} : { timeoutPolicy: { attemptTimeoutMs: cmd.attemptTimeoutMs } }),
          ...(cmd.maxReplayCount === undefined ? {} : { maxReplayCount: cmd.maxReplayCount }),
          ...(cmd.maxReclaimCount === undefined ? {} : { maxReclaimCount: cmd.maxReclaimCount }),
          ...(cmd.retentionMs === undefined ? {} : { streamPolicy: { retentionTtlMs: cmd.retentionMs } })
        }
        const args: M.CreateExecutionArgsInput = {
          executionId,
          namespace: NS,
          laneId: lane,
          executionKind: "diff",
          inputPayload: bytes(`input-${i}`),
          priority: cmd.priority,
          ...(Object.keys(policy).length === 0 ? {} : { policy }),
          ...(cmd.delayMs === undefined ? {} : { delayUntil: t + cmd.delayMs }),
          ...(cmd.deadlineMs === undefined ? {} : { executionDeadlineAt: t + cmd.deadlineMs }),
          ...(cmd.idempotencyKey === undefined ? {} : { idempotencyKey: cmd.idempotencyKey })
        }
        const r = yield* attempt(run, b.createExecution(args))
        if (duplicate === undefined) run.executions.push(executionId)
        touched.executions.push(executionId)
        if (Either.isRight(r) && r.right.executionId !== executionId) touched.executions.push(r.right.executionId)
        let joined: Json | undefined
        if (flow !== undefined && cmd.join) {
          touched.flows.push(flow)
          const added = yield* attempt(run, b.addExecutionToFlow({ flowId: flow, executionId }))
          if (Either.isRight(added) && added.right._tag === "Added") run.members.get(flow)?.push(executionId)
          joined = rec(run, added)
        }
        // distinct creation times keep the claim order specified (see the module comment)
        yield* TestClock.adjust(Duration.millis(1))
        return out(joined === undefined ? rec(run, r) : { create: rec(run, r), join: joined })
      }

      case "Claim": {
        const lane = LANES[cmd.lane % LANES.length]!
        const worker = WORKERS[cmd.worker % WORKERS.length]!
        const r = yield* attempt(
          run,
          b.claim({
            lane,
            capabilities: { tokens: [...cmd.caps] },
            policy: { ...worker, leaseTtlMs: cmd.ttlMs }
          })
        )
        if (Either.isRight(r) && Option.isSome(r.right)) {
          run.handles.push(r.right.value)
          touchHandle(r.right.value)
        }
        return out(rec(run, r))
      }

      case "Renew":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(attempt(run, b.renew(h)), (r) => {
            settle(run, h, r, false)
            return rec(run, r)
          }))

      case "Progress":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(
            attempt(
              run,
              b.progress(h, {
                ...(cmd.percent === undefined ? {} : { percent: cmd.percent }),
                ...(cmd.message === undefined ? {} : { message: cmd.message })
              })
            ),
            (r) => rec(run, r)
          ))

      case "Complete":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(
            attempt(run, b.complete(h, cmd.payload === undefined ? undefined : { payload: bytes(cmd.payload) })),
            (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            }
          ))

      case "Fail":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(
            attempt(
              run,
              b.fail(h, {
                reason: {
                  message: `failed at ${i}`,
                  ...(cmd.category === undefined ? {} : { detail: bytes(cmd.category) })
                },
                classification: cmd.classification
              })
            ),
            (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            }
          ))

      case "Cancel":
        return yield* withHandle(
          cmd.handle,
          (h) =>
            Effect.map(attempt(run, b.cancel(h, { reason: `cancel at ${i}` })), (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            })
        )

      case "Delay":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.flatMap(now, (t) =>
            Effect.map(attempt(run, b.delay(h, { delayUntil: t + cmd.delayMs })), (r) => {
              settle(run, h, r, true)
              return rec(run, r)
            })))

      case "WaitChildren":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.map(attempt(run, b.waitChildren(h)), (r) => {
            settle(run, h, r, true)
            return rec(run, r)
          }))

      case "CreateWaitpoint":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.gen(function*() {
            const waitpointKey = `pwk:${i}`
            const r = yield* attempt(
              run,
              b.createWaitpoint(h, { waitpointKey, expiresIn: Duration.millis(cmd.expiresInMs) })
            )
            const p = payloadOf(h)
            if (Either.isRight(r) && p !== undefined) {
              const entry = {
                executionId: p.executionId,
                waitpointId: r.right.waitpointId,
                waitpointKey,
                token: r.right.hmacToken
              }
              run.pending.push(entry)
              run.signalable.push(entry)
            }
            return rec(run, r)
          }))

      case "Suspend":
        return yield* withHandle(cmd.handle, (h) =>
          Effect.gen(function*() {
            const t = yield* now
            const p = payloadOf(h)
            let binding: M.WaitpointBinding
            let waitpointKey: string
            if (cmd.binding === "pending") {
              const own = run.pending.filter((x) => x.executionId === p?.executionId)
              const target = own[own.length - 1] ?? run.pending[run.pending.length - 1]
              if (target === undefined) return skip("no pending waitpoint")
              binding = { _tag: "UsePending", waitpointId: target.waitpointId }
              waitpointKey = target.waitpointKey
            } else {
              const waitpointId = run.mint("waitpoint", i) as WaitpointId
              waitpointKey = `wpk:${waitpointId}`
              binding = { _tag: "Fresh", waitpointId, waitpointKey }
            }
            const args: M.SuspendArgsInput = {
              suspensionId: run.mint("suspension", i) as SuspensionId,
              waitpoints: [binding],
              resumeCondition: {
                _tag: "Single",
                waitpointKey,
                matcher: cmd.matcher === "*" ? { _tag: "Wildcard" } : { _tag: "ByName", name: cmd.matcher }
              },
              ...(cmd.resumeDelayMs === undefined ? {} : {
                resumePolicy: {
                  resumeTarget: "runnable",
                  consumeMatchedSignals: true,
                  retainSignalBufferUntilClosed: false,
                  closeWaitpointOnResume: true,
                  resumeDelayMs: cmd.resumeDelayMs
                }
              }),
              ...(cmd.timeoutMs === undefined ? {} : { timeoutAt: t + cmd.timeoutMs }),
              ...(cmd.timeoutBehavior === undefined ? {} : { timeoutBehavior: cmd.timeoutBehavior }),
              ...(cmd.reasonCode === undefined ? {} : { reasonCode: cmd.reasonCode }),
              ...(cmd.idempotencyKey === undefined ? {} : { idempotencyKey: cmd.idempotencyKey })
            }
            const r = yield* attempt(run, b.suspend(h, args))
            settle(run, h, r, Either.isRight(r) && r.right._tag === "Suspended")
            if (Either.isRight(r) && p !== undefined) {
              const d = r.right.details
              run.signalable.push({ executionId: p.executionId, waitpointId: d.waitpointId, token: d.waitpointToken })
              if (r.right._tag === "Suspended") {
                // not lease-bearing: only picked by the larger refs (AlreadySuspended, ExecutionNotActive paths)
                run.handles.push(r.right.handle)
                run.spent.add(r.right.handle)
              }
            }
            return rec(run, r)
          }))

      case "DeliverSignal": {
        const wp = pickRecent(run.signalable, cmd.waitpoint)
        if (wp === undefined) return out(skip("no waitpoint"))
        touched.executions.push(wp.executionId)
        const forged = (token: string) => {
          const colon = token.indexOf(":")
          return `${token.slice(0, colon + 1)}${"0".repeat(Math.max(1, token.length - colon - 1))}`
        }
        const other = run.signalable.find((x) => x.token !== wp.token)
        const token = cmd.token === "good" || cmd.token === "unknownWaitpoint" ?
          wp.token :
          cmd.token === "other" && other !== undefined ?
          other.token :
          forged(wp.token)
        const waitpointId = cmd.token === "unknownWaitpoint" ?
          run.mint("unknown-waitpoint", i) as WaitpointId :
          wp.waitpointId
        const args: M.DeliverSignalArgsInput = {
          executionId: wp.executionId,
          waitpointId,
          signalId: run.mint("signal", i) as SignalId,
          signalName: cmd.name,
          signalCategory: "diff",
          sourceType: "test",
          sourceIdentity: "harness",
          waitpointToken: token,
          ...(cmd.idempotencyKey === undefined ? {} : { idempotencyKey: cmd.idempotencyKey }),
          ...(cmd.resumeDelayMs === undefined ? {} : { resumeDelayMs: cmd.resumeDelayMs })
        }
        return out(rec(run, yield* attempt(run, b.deliverSignal(args))))
      }

      case "ObserveSignals":
        return yield* withHandle(cmd.handle, (h) => Effect.map(attempt(run, b.observeSignals(h)), (r) => rec(run, r)))

      case "RevokeLease":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.gen(function*() {
            let expectedLeaseId: Ids.LeaseId | undefined
            if (cmd.expected === "stale") expectedLeaseId = run.mint("stale-lease", i) as Ids.LeaseId
            if (cmd.expected === "current") {
              const s = yield* attempt(run, b.describeExecution(executionId))
              if (Either.isRight(s) && Option.isSome(s.right)) expectedLeaseId = s.right.value.currentLease?.leaseId
            }
            const r = yield* attempt(
              run,
              b.revokeLease({
                executionId,
                reason: `revoke at ${i}`,
                ...(expectedLeaseId === undefined ? {} : { expectedLeaseId })
              })
            )
            return rec(run, r)
          }))

      case "CancelExecution":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.map(attempt(run, b.cancelExecution({ executionId, reason: `operator at ${i}` })), (r) => rec(run, r)))

      case "ChangePriority":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.map(
            attempt(run, b.changePriority({ executionId, newPriority: cmd.priority })),
            (r) => rec(run, r)
          ))

      case "ReplayExecution":
        return yield* withExecution(
          cmd.execution,
          (executionId) => Effect.map(attempt(run, b.replayExecution(executionId)), (r) => rec(run, r))
        )

      case "CreateFlow": {
        const existing = cmd.existing === undefined ? undefined : pickRecent(run.flows, cmd.existing)
        const flowId = existing ?? (run.mint("flow", i) as FlowId)
        const r = yield* attempt(run, b.createFlow({ flowId, namespace: NS, ...(cmd.sealed === true ? { sealed: true } : {}) }))
        if (existing === undefined) {
          run.flows.push(flowId)
          run.members.set(flowId, [])
        }
        touched.flows.push(flowId)
        return out(rec(run, r))
      }

      case "AddToFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        // prefer executions minted for this flow's partition
        const partition = Ids.flowPartition(flowId)
        const colocated = run.executions.filter((e) => Ids.executionPartition(e) === partition)
        const executionId = pickRecent(colocated.length > 0 ? colocated : run.executions, cmd.execution)
        if (executionId === undefined) return out(skip("no execution"))
        touched.flows.push(flowId)
        touched.executions.push(executionId)
        const r = yield* attempt(run, b.addExecutionToFlow({ flowId, executionId }))
        if (Either.isRight(r) && r.right._tag === "Added") run.members.get(flowId)?.push(executionId)
        return out(rec(run, r))
      }

      case "SetEdgeGroupPolicy": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        const members = run.members.get(flowId) ?? []
        const downstream = pickRecent(members.length > 0 ? members : run.executions, cmd.downstream)
        if (downstream === undefined) return out(skip("no execution"))
        touched.flows.push(flowId)
        const r = yield* attempt(
          run,
          b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: downstream, policy: cmd.policy })
        )
        return out(rec(run, r))
      }

      case "StageEdge": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        const members = run.members.get(flowId) ?? []
        const pool = members.length >= 2 ? members : run.executions
        const upstream = pickRecent(pool, cmd.upstream)
        // the downstream defaults to a different member than the upstream
        const downstream = pickRecent(pool, cmd.downstream === cmd.upstream ? cmd.downstream + 1 : cmd.downstream)
        if (upstream === undefined || downstream === undefined) return out(skip("no execution"))
        touched.flows.push(flowId)
        touched.executions.push(upstream, downstream)
        const snapshot = yield* attempt(run, b.describeFlow(flowId))
        const revision = Either.isRight(snapshot) && Option.isSome(snapshot.right) ?
          snapshot.right.value.graphRevision :
          0
        const expectedGraphRevision = cmd.revision === "current" ? revision : revision === 0 ? 1 : revision - 1
        const edgeId = run.mint("edge", i) as EdgeId
        const dataPassingRef = cmd.dataPassing ? "result" : undefined
        const stage = yield* attempt(
          run,
          b.stageDependencyEdge({
            flowId,
            edgeId,
            upstreamExecutionId: upstream,
            downstreamExecutionId: downstream,
            expectedGraphRevision,
            ...(dataPassingRef === undefined ? {} : { dataPassingRef })
          })
        )
        const edge: StagedEdge = { flowId, edgeId, upstream, downstream, dataPassingRef }
        run.edges.push(edge)
        if (!cmd.apply || Either.isLeft(stage)) return out({ stage: rec(run, stage) })
        const apply = yield* attempt(run, applyEdge(b, edge))
        return out({ stage: rec(run, stage), apply: rec(run, apply) })
      }

      case "ApplyEdge": {
        const edge = pickRecent(run.edges, cmd.edge)
        if (edge === undefined) return out(skip("no edge"))
        touched.flows.push(edge.flowId)
        touched.executions.push(edge.upstream, edge.downstream)
        return out(rec(run, yield* attempt(run, applyEdge(b, edge))))
      }

      case "SealFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        touched.flows.push(flowId)
        return out(rec(run, yield* attempt(run, b.sealFlow({ flowId }))))
      }

      case "ExtendFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        const members = run.members.get(flowId) ?? []
        const fresh = cmd.member ? Ids.deterministicExecutionIdForFlow(flowId, run.mint("execution", i)) : undefined
        const end = (e: EndRef): ExecutionId | undefined => (e === NEW ? fresh : pickRecent(members, e))
        const edges: Array<StagedEdge> = []
        for (const [k, [from, to]] of cmd.edges.entries()) {
          const up = end(from)
          const down = end(to)
          if (up === undefined || down === undefined || up === down) continue
          edges.push({
            flowId,
            edgeId: run.mint("edge", i, k) as EdgeId,
            upstream: up,
            downstream: down,
            dataPassingRef: cmd.dataPassing ? "result" : undefined
          })
        }
        if (fresh === undefined && edges.length === 0) return out(skip("nothing to add"))
        touched.flows.push(flowId)
        touched.executions.push(...edges.flatMap((e) => [e.upstream, e.downstream]))
        const r = yield* attempt(
          run,
          b.extendFlow({
            flowId,
            members: fresh === undefined ? [] : [{
              executionId: fresh,
              namespace: NS,
              laneId: LANES[0]!,
              executionKind: "diff",
              inputPayload: bytes(`input-${i}`)
            }],
            edges: edges.map((e) => ({
              edgeId: e.edgeId,
              upstreamExecutionId: e.upstream,
              downstreamExecutionId: e.downstream,
              ...(e.dataPassingRef === undefined ? {} : { dataPassingRef: e.dataPassingRef })
            })),
            joins: fresh === undefined || cmd.join === undefined ? [] : [{ downstreamExecutionId: fresh, policy: cmd.join }]
          })
        )
        if (Either.isRight(r) && r.right._tag === "Extended") {
          if (fresh !== undefined) {
            run.executions.push(fresh)
            members.push(fresh)
            touched.executions.push(fresh)
          }
          run.edges.push(...edges)
        }
        // a new member's creation time is distinct from the next one's (see the module comment)
        yield* TestClock.adjust(Duration.millis(1))
        return out(rec(run, r))
      }

      case "LateEdge":
      case "FinishedFlow":
        return out(yield* scenario(run, b, cmd, i, touched))

      case "CancelFlow": {
        const flowId = pickRecent(run.flows, cmd.flow)
        if (flowId === undefined) return out(skip("no flow"))
        touched.flows.push(flowId)
        touched.executions.push(...(run.members.get(flowId) ?? []))
        const r = yield* attempt(
          run,
          b.cancelFlow({ flowId, policy: cmd.policy, wait: { _tag: "NoWait" }, reason: `cancel flow at ${i}` })
        )
        return out(rec(run, r, sortCancelFlow))
      }

      case "CreateBudget": {
        const budgetId = run.mint("budget", i) as BudgetId
        run.budgets.push(budgetId)
        touched.budgets.push(budgetId)
        const r = yield* attempt(
          run,
          b.createBudget({
            budgetId,
            scopeType: "tenant",
            scopeId: "diff",
            dimensions: [...cmd.dimensions],
            hardLimits: cmd.dimensions.map(() => cmd.hard),
            softLimits: cmd.dimensions.map(() => cmd.soft),
            resetIntervalMs: cmd.resetIntervalMs
          })
        )
        return out(rec(run, r))
      }

      case "ReportUsage": {
        const budgetId = pickRecent(run.budgets, cmd.budget) ?? (run.mint("no-budget", i) as BudgetId)
        touched.budgets.push(budgetId)
        const handle = cmd.handle === undefined ? undefined : pickRecent(run.handles, cmd.handle)
        const r = handle === undefined ?
          yield* attempt(
            run,
            b.reportUsageAdmin({
              budgetId,
              dimensions: cmd.amounts.map(([d]) => d),
              deltas: cmd.amounts.map(([, n]) => n),
              ...(cmd.dedupKey === undefined ? {} : { dedupKey: cmd.dedupKey })
            })
          ) :
          yield* attempt(
            run,
            b.reportUsage(handle, {
              budgetId,
              dimensions: {
                custom: Object.fromEntries(cmd.amounts),
                ...(cmd.dedupKey === undefined ? {} : { dedupKey: cmd.dedupKey })
              }
            })
          )
        return out(rec(run, r))
      }

      case "ResetBudget": {
        const budgetId = pickRecent(run.budgets, cmd.budget)
        if (budgetId === undefined) return out(skip("no budget"))
        touched.budgets.push(budgetId)
        return out(rec(run, yield* attempt(run, b.resetBudget(budgetId))))
      }

      case "AppendFrame":
        return yield* withHandle(cmd.handle, (h) => {
          const mode: M.StreamMode = cmd.mode === "summary" ?
            { _tag: "DurableSummary", patchKind: "json-merge-patch" } :
            cmd.mode === "bestEffort" ?
            { _tag: "BestEffortLive", config: { ttlMs: 5000 } } :
            { _tag: "Durable" }
          const p = payloadOf(h)
          return Effect.map(
            attempt(run, b.appendFrame(h, { bytes: bytes(cmd.text), kind: cmd.kind, mode })),
            (r) => run.norm.withStream(p === undefined ? "" : `${p.executionId}:${p.attemptIndex}`, () => rec(run, r))
          )
        })

      case "ReadStream":
        return yield* withExecution(cmd.execution, (executionId) =>
          Effect.gen(function*() {
            const attemptIndex = cmd.attemptIndex as Ids.AttemptIndex
            const frames = yield* attempt(
              run,
              b.readStream({
                executionId,
                attemptIndex,
                from: { _tag: "Start" },
                to: { _tag: "End" },
                countLimit: cmd.countLimit
              })
            )
            const tail = yield* attempt(
              run,
              b.tailStream({
                executionId,
                attemptIndex,
                after: { _tag: "At", id: "0-0" },
                blockMs: 0,
                countLimit: cmd.countLimit,
                visibility: "exclude_best_effort"
              })
            )
            const summary = yield* attempt(run, b.readSummary({ executionId, attemptIndex }))
            return run.norm.withStream(`${executionId}:${attemptIndex}`, () => ({
              frames: rec(run, frames),
              tail: rec(run, tail),
              summary: rec(run, summary)
            }))
          }))

      case "Advance":
        yield* TestClock.adjust(Duration.millis(cmd.ms))
        return out({ ok: null })

      case "Pass": {
        const r = yield* attempt(run, run.engine.maintenance[cmd.pass]())
        touched.all = true
        return out(rec(run, r, withoutDue))
      }

      case "Settle": {
        yield* TestClock.adjust(Duration.millis(cmd.ms))
        const results: Record<string, Json> = {}
        for (const name of passNames) {
          results[name] = rec(run, yield* attempt(run, run.engine.maintenance[name]()), withoutDue)
        }
        touched.all = true
        return out(results)
      }
    }
  })

/** Runs a scenario command (see `Scenario`): every call's outcome, by step name. */
const scenario = (run: Run, b: EngineBackend.Service, cmd: Scenario, i: number, touched: Touched) =>
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

const applyEdge = (b: EngineBackend.Service, edge: StagedEdge) =>
  b.applyDependencyToChild({
    flowId: edge.flowId,
    edgeId: edge.edgeId,
    upstreamExecutionId: edge.upstream,
    downstreamExecutionId: edge.downstream,
    ...(edge.dataPassingRef === undefined ? {} : { dataPassingRef: edge.dataPassingRef })
  })

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

const unique = <A>(xs: ReadonlyArray<A>): Array<A> => [...new Set(xs)]

const readExecution = (run: Run, id: ExecutionId) =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const describe = yield* attempt(run, b.describeExecution(id))
    const info = yield* attempt(run, b.readExecutionInfo(id))
    return { describe: rec(run, describe), info: rec(run, info) }
  })

const readFlow = (run: Run, id: FlowId) =>
  Effect.map(
    attempt(run, run.engine.backend.describeFlow(id)),
    (r) => rec(run, r, (o) => Option.map(o, sortFlow))
  )

const partitionKey = (p: number) => Ids.partitionKey("Flow", p)

/** The reads after one command: what it touched (everything after a maintenance pass). */
const readTouched = (run: Run, touched: Touched): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const executions = touched.all ? run.executions : unique(touched.executions)
    // a member's flow too: its terminal operations may change the flow (docs/design/flows.md#flow-states)
    const flowsOfMembers = run.flows.filter((f) => (run.members.get(f) ?? []).some((m) => executions.includes(m)))
    const flows = touched.all ? run.flows : unique([...touched.flows, ...flowsOfMembers])
    const budgets = touched.all ? run.budgets : unique(touched.budgets)
    const out: Record<string, Json> = {}
    for (const id of executions) out[`execution ${id}`] = yield* readExecution(run, id)
    for (const id of flows) out[`flow ${id}`] = yield* readFlow(run, id)
    for (const id of budgets) out[`budget ${id}`] = rec(run, yield* attempt(run, b.getBudgetStatus(id)))
    if (!touched.all) {
      for (const p of unique(executions.map(Ids.executionPartition))) {
        out[`listExecutions ${p}`] = rec(
          run,
          yield* attempt(run, b.listExecutions({ partition: partitionKey(p), limit: 5 }))
        )
      }
    }
    return out
  })

/** Pages through a listing with a small limit (exercising cursors). */
const pages = <C, P extends { readonly nextCursor?: C | undefined }>(
  run: Run,
  page: (cursor: C | undefined) => Effect.Effect<P, EngineError>
): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const out: Array<Json> = []
    let cursor: C | undefined
    for (let n = 0; n < 50; n++) {
      const r = yield* attempt(run, page(cursor))
      out.push(rec(run, r))
      if (Either.isLeft(r) || r.right.nextCursor === undefined) break
      cursor = r.right.nextCursor
    }
    return out
  })

/** Reads the whole engine after the last command. */
const finalSweep = (run: Run): Effect.Effect<Json> =>
  Effect.gen(function*() {
    const b = run.engine.backend
    const out: Record<string, Json> = {}
    for (const id of run.executions) {
      out[`execution ${id}`] = {
        ...(yield* readExecution(run, id)),
        result: rec(run, yield* attempt(run, b.getExecutionResult(id))),
        input: rec(run, yield* attempt(run, b.getExecutionInput(id))),
        flowId: rec(run, yield* attempt(run, b.resolveExecutionFlowId(id))),
        // ordered by waitpoint id, and pending waitpoint ids are minted by the backend: sort by the key
        pendingWaitpoints: rec(
          run,
          yield* attempt(run, b.listPendingWaitpoints({ executionId: id })),
          (r) => ({ ...r, entries: [...r.entries].sort((x, y) => x.waitpointKey.localeCompare(y.waitpointKey)) })
        )
      }
    }
    for (const id of run.flows) {
      const incoming: Record<string, Json> = {}
      for (const m of run.members.get(id) ?? []) {
        incoming[m] = rec(
          run,
          yield* attempt(run, b.listEdges({ flowId: id, direction: { _tag: "Incoming", toNode: m } })),
          (edges) => [...edges].sort((x, y) => x.edgeId.localeCompare(y.edgeId))
        )
      }
      out[`flow ${id}`] = { describe: yield* readFlow(run, id), incoming }
    }
    for (const e of run.edges) {
      out[`edge ${e.edgeId}`] = {
        describe: rec(run, yield* attempt(run, b.describeEdge({ flowId: e.flowId, edgeId: e.edgeId }))),
        outgoing: rec(
          run,
          yield* attempt(run, b.listEdges({ flowId: e.flowId, direction: { _tag: "Outgoing", fromNode: e.upstream } })),
          (edges) => [...edges].sort((x, y) => x.edgeId.localeCompare(y.edgeId))
        )
      }
    }
    for (const id of run.budgets) out[`budget ${id}`] = rec(run, yield* attempt(run, b.getBudgetStatus(id)))
    const partitions = unique(run.executions.map(Ids.executionPartition)).sort((x, y) => x - y)
    for (const p of partitions) {
      out[`listExecutions ${p}`] = yield* pages(
        run,
        (cursor: ExecutionId | undefined) =>
          b.listExecutions({ partition: partitionKey(p), limit: 3, ...(cursor === undefined ? {} : { cursor }) })
      )
      out[`listSuspended ${p}`] = yield* pages(
        run,
        (cursor: ExecutionId | undefined) =>
          b.listSuspended({ partition: partitionKey(p), limit: 3, ...(cursor === undefined ? {} : { cursor }) })
      )
    }
    for (const p of unique(run.flows.map((f) => Ids.flowPartition(f))).sort((x, y) => x - y)) {
      out[`listFlows ${p}`] = yield* pages(
        run,
        (cursor: FlowId | undefined) =>
          b.listFlows({ partition: partitionKey(p), limit: 2, ...(cursor === undefined ? {} : { cursor }) })
      )
    }
    out["listLanes"] = rec(run, yield* attempt(run, b.listLanes({ limit: 100 })))
    return out
  })

// ---------------------------------------------------------------------------
// Running a sample
// ---------------------------------------------------------------------------

export const describeCommand = (c: Command): string => {
  const { _tag, ...rest } = c
  const fields = Object.entries(rest).filter(([, v]) => v !== undefined)
  return fields.length === 0 ? _tag : `${_tag} ${JSON.stringify(Object.fromEntries(fields))}`
}

export interface RunOptions {
  /** Compare each step with this record as it is produced and stop at the first difference. */
  readonly reference?: RunRecord | undefined
  readonly waivers?: ReadonlyArray<Waiver> | undefined
}

/**
 * A known, reported divergence that a check may tolerate so that it can look for further ones:
 * a difference it `matches` does not count. Every use is counted and printed.
 */
export interface Waiver {
  readonly id: string
  /** What differs and which spec section decides it. */
  readonly description: string
  readonly matches: (difference: Difference, step: StepRecord) => boolean
  /**
   * `mask` (default): the matched difference does not count. `endRun`: the divergence changes
   * state that later steps would keep showing, so the comparison of this run ends here (agreeing).
   */
  readonly effect?: "mask" | "endRun" | undefined
  /** A minimal sequence that shows the divergence (see `checkWaiverRepros`). */
  readonly repro?: ReadonlyArray<Command> | undefined
}

/** How often each waiver hid a difference (across the whole process). */
export const waiverHits = new Map<string, number>()

interface StepComparison {
  /** Differences no waiver covers. */
  readonly remaining: ReadonlyArray<Difference>
  /** An `endRun` waiver matched: nothing after this step is compared. */
  readonly endRun: boolean
}

const SAME: StepComparison = { remaining: [], endRun: false }

/** Compares one step (the cheap text comparison first), applying the waivers. */
const compareStep = (a: StepRecord, b: StepRecord, waivers: ReadonlyArray<Waiver>): StepComparison => {
  if (stableStringify(a.result) === stableStringify(b.result) && stableStringify(a.reads) === stableStringify(b.reads)) {
    return SAME
  }
  const all = [
    ...jsonDifferences(a.result, b.result, "result", 10_000),
    ...jsonDifferences(a.reads, b.reads, "reads", 10_000)
  ]
  let endRun = false
  const used = new Set<string>()
  const remaining = all.filter((d) => {
    const waiver = waivers.find((w) => w.matches(d, b))
    if (waiver === undefined) return true
    used.add(waiver.id)
    if (waiver.effect === "endRun") endRun = true
    return false
  })
  for (const id of used) waiverHits.set(id, (waiverHits.get(id) ?? 0) + 1)
  return endRun ? { remaining: [], endRun } : { remaining, endRun }
}

/** Runs `sample` on a fresh engine from `factory` under a fresh `TestClock` at `BASE_TIME`. */
export const runSampleEffect = (
  factory: EngineFactory,
  sample: Sample,
  options: RunOptions = {}
): Effect.Effect<RunRecord, unknown> =>
  Effect.scoped(
    Effect.gen(function*() {
      yield* TestClock.setTime(BASE_TIME)
      const t0 = performance.now()
      const engine = yield* TestServices.provideLive(factory.make)
      const t1 = performance.now()
      const timing = (t2: number, t3: number) => ({ makeMs: t1 - t0, stepsMs: t2 - t1, sweepMs: t3 - t2 })
      const run = new Run(engine, sample.salt, BASE_TIME)
      const steps: Array<StepRecord> = []
      let endedByWaiver = false
      /** Records a step; `false` when the run should stop (diverged, or an `endRun` waiver). */
      const push = (s: StepRecord): boolean => {
        steps.push(s)
        const ref = options.reference?.steps[s.index]
        if (ref === undefined) return true
        const c = compareStep(ref, s, options.waivers ?? [])
        if (c.endRun) endedByWaiver = true
        return c.remaining.length === 0 && !c.endRun
      }
      for (let i = 0; i < sample.commands.length; i++) {
        const cmd = sample.commands[i]!
        run.notes = []
        const stepped = yield* interpret(run, cmd, i)
        const reads = cmd._tag === "Advance" ? {} : yield* readTouched(run, stepped.touched)
        if (!push({ index: i, label: describeCommand(cmd), result: stepped.result, reads, notes: run.notes })) {
          const t = performance.now()
          return { engine: factory.name, steps, stoppedAt: i, endedByWaiver, timing: timing(t, t) }
        }
      }
      const t2 = performance.now()
      run.notes = []
      const sweep = yield* finalSweep(run)
      push({ index: sample.commands.length, label: "FinalSweep", result: null, reads: sweep, notes: run.notes })
      return { engine: factory.name, steps, timing: timing(t2, performance.now()) }
    })
  ).pipe(Effect.provide(TestContext.TestContext))

export const runSample = (factory: EngineFactory, sample: Sample, options: RunOptions = {}): Promise<RunRecord> =>
  Effect.runPromise(runSampleEffect(factory, sample, options))

// ---------------------------------------------------------------------------
// Comparison
// ---------------------------------------------------------------------------

export interface Difference {
  readonly path: string
  readonly reference: Json | "<absent>"
  readonly candidate: Json | "<absent>"
}

export interface Divergence {
  readonly index: number
  readonly label: string
  readonly referenceEngine: string
  readonly candidateEngine: string
  readonly reference: StepRecord | undefined
  readonly candidate: StepRecord | undefined
  readonly differences: ReadonlyArray<Difference>
}

const isObject = (v: Json): v is { readonly [key: string]: Json } =>
  v !== null && typeof v === "object" && !Array.isArray(v)

/** Paths where two JSON values differ (leaf-most), at most `limit`. */
export const jsonDifferences = (a: Json, b: Json, path = "", limit = 20): Array<Difference> => {
  const out: Array<Difference> = []
  const walk = (x: Json | "<absent>", y: Json | "<absent>", p: string) => {
    if (out.length >= limit) return
    if (x !== "<absent>" && y !== "<absent>" && stableStringify(x) === stableStringify(y)) return
    if (x !== "<absent>" && y !== "<absent>" && isObject(x) && isObject(y)) {
      for (const k of unique([...Object.keys(x), ...Object.keys(y)]).sort()) {
        walk(k in x ? x[k]! : "<absent>", k in y ? y[k]! : "<absent>", `${p}.${k}`)
      }
      return
    }
    if (x !== "<absent>" && y !== "<absent>" && Array.isArray(x) && Array.isArray(y) && x.length === y.length) {
      const xs = x as ReadonlyArray<Json>
      const ys = y as ReadonlyArray<Json>
      for (let i = 0; i < xs.length; i++) walk(xs[i]!, ys[i]!, `${p}[${i}]`)
      return
    }
    out.push({ path: p === "" ? "." : p, reference: x, candidate: y })
  }
  walk(a, b, path)
  return out
}

/** The first step where the two runs differ (result first, then the reads), or `undefined`. */
export const compare = (
  reference: RunRecord,
  candidate: RunRecord,
  waivers: ReadonlyArray<Waiver> = []
): Divergence | undefined => {
  const n = Math.max(reference.steps.length, candidate.steps.length)
  for (let i = 0; i < n; i++) {
    const a = reference.steps[i]
    const b = candidate.steps[i]
    const c = a !== undefined && b !== undefined ? compareStep(a, b, waivers) : undefined
    if (c !== undefined && c.endRun) return undefined
    if (c !== undefined && c.remaining.length === 0) continue
    const differences: ReadonlyArray<Difference> = c === undefined ?
      [{ path: ".", reference: a === undefined ? "<absent>" : "<step>", candidate: b === undefined ? "<absent>" : "<step>" }] :
      c.remaining.slice(0, 20)
    return {
      index: i,
      label: a?.label ?? b?.label ?? "?",
      referenceEngine: reference.engine,
      candidateEngine: candidate.engine,
      reference: a,
      candidate: b,
      differences
    }
  }
  return undefined
}

const show = (v: Json | "<absent>"): string => {
  const s = v === "<absent>" ? v : stableStringify(v)
  return s.length > 600 ? `${s.slice(0, 600)}…` : s
}

export const formatDivergence = (d: Divergence): string => {
  const lines = [
    `first divergence at step ${d.index}: ${d.label}`,
    `  ${d.referenceEngine} result: ${d.reference === undefined ? "<absent>" : show(d.reference.result)}`,
    `  ${d.candidateEngine} result: ${d.candidate === undefined ? "<absent>" : show(d.candidate.result)}`,
    "  differences:"
  ]
  for (const x of d.differences) {
    lines.push(`    ${x.path}`, `      ${d.referenceEngine}: ${show(x.reference)}`, `      ${d.candidateEngine}: ${show(x.candidate)}`)
  }
  const notes = (label: string, s: StepRecord | undefined) => {
    if (s !== undefined && s.notes.length > 0) lines.push(`  ${label} notes: ${s.notes.join(" ; ")}`)
  }
  notes(d.referenceEngine, d.reference)
  notes(d.candidateEngine, d.candidate)
  return lines.join("\n")
}

export const formatSample = (sample: Sample, upTo = sample.commands.length - 1): string =>
  [
    `salt ${sample.salt}`,
    ...sample.commands.slice(0, upTo + 1).map((c, i) => `  ${String(i).padStart(2)}. ${describeCommand(c)}`)
  ].join("\n")

// ---------------------------------------------------------------------------
// The property
// ---------------------------------------------------------------------------

export interface CheckOptions {
  readonly reference: EngineFactory
  readonly candidate: EngineFactory
  /** Overridden by `FLOWFABRIC_DIFF_RUNS` (default 30). */
  readonly numRuns?: number | undefined
  readonly maxCommands?: number | undefined
  /** Default: `FLOWFABRIC_DIFF_SEED`, else a random seed (always printed). */
  readonly seed?: number | undefined
  /** fast-check replay path (with the seed of a failing run). Default: `FLOWFABRIC_DIFF_PATH`. */
  readonly path?: string | undefined
  /** Wall-clock budget of the whole check, shrinking included (runs past it are skipped). */
  readonly timeLimitMs?: number | undefined
  readonly log?: ((line: string) => void) | undefined
  /**
   * Known divergences to tolerate (see `Waiver`). Ignored when `FLOWFABRIC_DIFF_STRICT=1`, so a
   * strict run shows every divergence, the waived ones included.
   */
  readonly waivers?: ReadonlyArray<Waiver> | undefined
  /** The sequences generated (default `general`, see `sampleArbitrary`). */
  readonly profile?: Profile | undefined
}

export interface CheckResult {
  readonly seed: number
  readonly numRuns: number
  readonly interrupted: boolean
  readonly elapsedMs: number
  /** Per command tag: how many succeeded / returned `None` / failed / were skipped (reference runs). */
  readonly coverage: Readonly<Record<string, { ok: number; none: number; err: number; skip: number }>>
  /** Per command tag and error (`_tag(kind)`): how often the reference engine failed so. */
  readonly errors: Readonly<Record<string, number>>
}

const envNumber = (name: string): number | undefined => {
  const v = process.env[name]
  return v === undefined || v === "" ? undefined : Number(v)
}

/** Tallies ok / error / skip per command tag of one run (the `.ok`/`.err`/`.skip` of each result). */
const tally = (
  coverage: Record<string, { ok: number; none: number; err: number; skip: number }>,
  errors: Record<string, number>,
  sample: Sample,
  record: RunRecord
): void => {
  for (const s of record.steps) {
    const cmd = sample.commands[s.index]
    if (cmd === undefined) continue
    const c = (coverage[cmd._tag] ??= { ok: 0, none: 0, err: 0, skip: 0 })
    const r = s.result
    const results: ReadonlyArray<Json> = isObject(r) && !("ok" in r) && !("err" in r) && !("skip" in r) ?
      Object.values(r) :
      [r]
    for (const x of results) {
      if (isObject(x) && "skip" in x) c.skip++
      else if (isObject(x) && "ok" in x && x["ok"] === "None") c.none++
      else if (isObject(x) && "ok" in x) c.ok++
      else {
        c.err++
        const e = isObject(x) && isObject(x["err"] ?? null) ? x["err"] as { readonly [key: string]: Json } : undefined
        const key = `${cmd._tag}: ${
          e === undefined ? "defect" : `${String(e["_tag"])}${e["kind"] === undefined ? "" : `(${String(e["kind"])})`}`
        }`
        errors[key] = (errors[key] ?? 0) + 1
      }
    }
  }
}

export const formatCoverage = (coverage: CheckResult["coverage"]): string =>
  Object.entries(coverage)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([tag, c]) => `${tag} ${c.ok}/${c.none}/${c.err}/${c.skip}`)
    .join(", ")

/** Re-runs `sample` on both engines (full runs, no early stop) and returns the divergence. */
export const diffSample = async (
  reference: EngineFactory,
  candidate: EngineFactory,
  sample: Sample
): Promise<Divergence | undefined> => {
  const a = await runSample(reference, sample)
  const b = await runSample(candidate, sample)
  return compare(a, b)
}

/**
 * Runs `numRuns` random samples on both engines and throws a report (seed, replay path, minimal
 * sequence, first divergence) when any sample makes them disagree.
 *
 * Environment: `FLOWFABRIC_DIFF_SEED`, `FLOWFABRIC_DIFF_PATH` (replay a fast-check run),
 * `FLOWFABRIC_DIFF_RUNS`, `FLOWFABRIC_DIFF_STRICT=1` (no waivers), `FLOWFABRIC_DIFF_VERBOSE=1`
 * (error tallies), `FLOWFABRIC_DIFF_REPLAY` (a sample printed by a failing check, as JSON or
 * `@file`: runs just that sample, without shrinking).
 */
export const checkDifferential = async (o: CheckOptions): Promise<CheckResult> => {
  const began = performance.now()
  const log = o.log ?? ((line: string) => console.log(line))
  const replay = process.env["FLOWFABRIC_DIFF_REPLAY"]
  if (replay !== undefined && replay !== "") return replaySample(o, replay, log)
  const seed = o.seed ?? envNumber("FLOWFABRIC_DIFF_SEED") ?? (Math.random() * 0x7fffffff) | 0
  const path = o.path ?? process.env["FLOWFABRIC_DIFF_PATH"]
  const numRuns = envNumber("FLOWFABRIC_DIFF_RUNS") ?? o.numRuns ?? 30
  const label = `${o.reference.name} vs ${o.candidate.name}`
  const waivers = process.env["FLOWFABRIC_DIFF_STRICT"] === "1" ? [] : (o.waivers ?? [])
  log(
    `[differential] ${label}: seed=${seed} runs=${numRuns}${path === undefined ? "" : ` path=${path}`}` +
      (waivers.length === 0 ? "" : ` waivers=${waivers.map((x) => x.id).join(",")}`)
  )
  waiverHits.clear()
  const reportWaivers = () => {
    for (const x of waivers) {
      const hits = waiverHits.get(x.id) ?? 0
      if (hits > 0) log(`[differential] ${label}: waived ${hits}× ${x.id}: ${x.description}`)
    }
  }
  const coverage: Record<string, { ok: number; none: number; err: number; skip: number }> = {}
  const errors: Record<string, number> = {}
  const timings = { runs: 0, reference: 0, make: 0, steps: 0, sweep: 0, cut: 0, commands: 0, compared: 0 }

  const property = fc.asyncProperty(sampleArbitrary({ maxCommands: o.maxCommands, profile: o.profile }), async (sample) => {
    const a = await runSample(o.reference, sample)
    const b = await runSample(o.candidate, sample, { reference: a, waivers })
    tally(coverage, errors, sample, a)
    timings.runs++
    timings.reference += a.timing.makeMs + a.timing.stepsMs + a.timing.sweepMs
    timings.make += b.timing.makeMs
    timings.steps += b.timing.stepsMs
    timings.sweep += b.timing.sweepMs
    timings.commands += sample.commands.length
    timings.compared += b.endedByWaiver === true ? b.stoppedAt ?? 0 : sample.commands.length
    if (b.endedByWaiver === true) timings.cut++
    const d = compare(a, b, waivers)
    if (d !== undefined) throw new DivergenceError(d)
  })
  const details = await fc.check(property, {
    seed,
    numRuns,
    ...(path === undefined ? {} : { path }),
    ...(o.timeLimitMs === undefined ? {} : { interruptAfterTimeLimit: o.timeLimitMs })
  })
  const elapsedMs = Math.round(performance.now() - began)
  if (!details.failed) {
    log(`[differential] ${label}: ${details.numRuns} runs agree in ${elapsedMs} ms${details.interrupted ? " (time limit hit)" : ""}`)
    log(`[differential] ${label}: coverage ok/none/err/skip: ${formatCoverage(coverage)}`)
    if (process.env["FLOWFABRIC_DIFF_VERBOSE"] === "1") {
      log(`[differential] ${label}: errors: ${
        Object.entries(errors).sort(([x], [y]) => x.localeCompare(y)).map(([k, n]) => `${k} ×${n}`).join(", ")
      }`)
    }
    const avg = (ms: number) => Math.round(ms / Math.max(1, timings.runs))
    if (timings.cut > 0) {
      log(
        `[differential] ${label}: ${timings.cut} runs ended early at an endRun waiver; ` +
          `${timings.compared} of ${timings.commands} commands compared`
      )
    }
    log(
      `[differential] ${label}: mean per run: ${o.reference.name} ${avg(timings.reference)} ms; ${o.candidate.name} ` +
        `make ${avg(timings.make)} ms, commands ${avg(timings.steps)} ms, sweep ${avg(timings.sweep)} ms`
    )
    reportWaivers()
    return { seed, numRuns: details.numRuns, interrupted: details.interrupted, elapsedMs, coverage, errors }
  }
  const sample = details.counterexample?.[0]
  const error = details.errorInstance
  const divergence = error instanceof DivergenceError ? error.divergence : undefined
  const report = [
    `[differential] ${label}: the engines disagree (seed=${seed}, path=${details.counterexamplePath ?? "?"}, ` +
    `after ${details.numRuns} runs and ${details.numShrinks} shrinks, ${elapsedMs} ms)`,
    `replay: FLOWFABRIC_DIFF_SEED=${seed} FLOWFABRIC_DIFF_PATH=${details.counterexamplePath ?? ""}`,
    ...(sample === undefined ? [] : [
      "minimal sequence (up to the divergence):",
      formatSample(sample, divergence?.index ?? sample.commands.length - 1),
      `as JSON (FLOWFABRIC_DIFF_REPLAY): ${
        JSON.stringify({
          salt: sample.salt,
          commands: sample.commands.slice(0, (divergence?.index ?? sample.commands.length - 1) + 1)
        })
      }`
    ]),
    divergence === undefined ? `error: ${String(error ?? details.error)}` : formatDivergence(divergence)
  ].join("\n")
  log(report)
  reportWaivers()
  throw new Error(report)
}

export class DivergenceError extends Error {
  constructor(readonly divergence: Divergence) {
    super(formatDivergence(divergence))
  }
}

/** Parses a sample printed by a failing check (`as JSON …`). */
export const parseSample = (json: string): Sample => JSON.parse(json) as Sample

const replaySample = async (
  o: CheckOptions,
  source: string,
  log: (line: string) => void
): Promise<CheckResult> => {
  const began = performance.now()
  const { readFileSync } = await import("node:fs")
  const sample = parseSample(source.startsWith("@") ? readFileSync(source.slice(1), "utf8") : source)
  const waivers = process.env["FLOWFABRIC_DIFF_STRICT"] === "1" ? [] : (o.waivers ?? [])
  const label = `${o.reference.name} vs ${o.candidate.name}`
  log(`[differential] ${label}: replaying one sample (${sample.commands.length} commands)`)
  const a = await runSample(o.reference, sample)
  const b = await runSample(o.candidate, sample)
  const d = compare(a, b, waivers)
  const elapsedMs = Math.round(performance.now() - began)
  if (d !== undefined) {
    const report = [`[differential] ${label}: the engines disagree on the replayed sample`, formatSample(sample, d.index), formatDivergence(d)]
      .join("\n")
    log(report)
    throw new Error(report)
  }
  log(`[differential] ${label}: the replayed sample agrees (${elapsedMs} ms)`)
  return { seed: 0, numRuns: 1, interrupted: false, elapsedMs, coverage: {}, errors: {} }
}

export interface WaiverCheck {
  readonly id: string
  /** The repro still diverges once this waiver is removed (the others stay applied). */
  readonly stillDiverges: boolean
  readonly divergence?: Divergence | undefined
}

/**
 * Replays every waiver's `repro` with all the *other* waivers applied: a waiver whose repro agrees
 * is stale (the backend or the reference was fixed) and should be deleted.
 */
export const checkWaiverRepros = async (
  reference: EngineFactory,
  candidate: EngineFactory,
  waivers: ReadonlyArray<Waiver>
): Promise<ReadonlyArray<WaiverCheck>> => {
  const out: Array<WaiverCheck> = []
  for (const w of waivers) {
    if (w.repro === undefined) continue
    const sample: Sample = { salt: 0, commands: w.repro }
    const a = await runSample(reference, sample)
    const b = await runSample(candidate, sample)
    const d = compare(a, b, waivers.filter((x) => x !== w))
    out.push({ id: w.id, stillDiverges: d !== undefined, divergence: d })
  }
  return out
}
