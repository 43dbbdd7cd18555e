/**
 * The operation catalogue of the differential tests (docs/design/testing.md#differential-tests): the
 * constants every run shares and the `Command`s a generated sequence is made of. Commands never
 * carry backend values, only refs into what earlier commands produced on the same run.
 */
import { Redacted } from "effect"
import type { HmacSecret } from "../../src/EngineBackend.js"
import * as Ids from "../../src/Ids.js"
import type { LaneId } from "../../src/Ids.js"
import type { PassName } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"

// ---------------------------------------------------------------------------
// Constants shared by every run
// ---------------------------------------------------------------------------

/** The `TestClock` time every run starts at (a realistic epoch-ms value). */
export const BASE_TIME = 1_760_000_000_000

/** The HMAC keystore every engine is seeded with. */
export const HMAC: HmacSecret = { kid: "diff-k1", secretHex: Redacted.make("5eed".repeat(16)) }

// The second lane's id is the first's plus ":s" and both land on flow partition 71 (of 256): on Valkey
// a lane's keys (`B:l:<lane>:…`) must never spell another lane's.
export const LANES: ReadonlyArray<LaneId> = [Ids.unsafe.laneId("diff-3d"), Ids.unsafe.laneId("diff-3d:s")]
/** The lane of `Backlog` commands alone (no other command creates or claims there). */
export const BACKLOG_LANE: LaneId = Ids.unsafe.laneId("diff-backlog")
export const CAPABILITIES = ["gpu", "ssd"] as const
export type Capability = (typeof CAPABILITIES)[number]
export const NS = Ids.unsafe.namespace("diff")
export const WORKERS = [
  { workerId: Ids.unsafe.workerId("w0"), workerInstanceId: Ids.unsafe.workerInstanceId("w0-i") },
  { workerId: Ids.unsafe.workerId("w1"), workerInstanceId: Ids.unsafe.workerInstanceId("w1-i") }
] as const

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

/** One step of a sequence; interpret.ts sends each to the file of its area (lifecycle.ts, flows.ts, …). */
export type Command =
  | ExecutionSpec & {
    readonly _tag: "CreateExecution"
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
    /**
     * `createExecutions`: a batch, then each item minted for a flow and marked `join` added to it
     * (`addExecutionToFlow`), in item order. The items share one creation time, so each has a
     * priority of its own (see `BatchItem.priority`). `invalid`: the item at that
     * index carries a capability no worker can name, so the whole call fails `Validation` and
     * writes nothing (no join follows).
     */
    readonly _tag: "CreateExecutions"
    readonly items: ReadonlyArray<BatchItem>
    readonly invalid?: number | undefined
  }
  | {
    /**
     * A backlog on `BACKLOG_LANE`, large enough for a store to split its lane index into parts:
     * `ops` in order, each a `createExecutions` batch (distinct priorities, then a 1 ms tick), a
     * `claimMany` of `claim` (the claimed ids in claim order are the result), or the lane's
     * waiting executions read in pages of 7 (`list`). The claim order of every claim is compared.
     */
    readonly _tag: "Backlog"
    readonly ops: ReadonlyArray<BacklogOp>
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
    /** `completeAndClaim`: the handle completed (unless `none`), then up to `max` claims on the lane. */
    readonly _tag: "CompleteAndClaim"
    readonly handle: Ref
    readonly none: boolean
    readonly payload?: string | undefined
    readonly lane: number
    readonly caps: ReadonlyArray<Capability>
    readonly worker: number
    readonly max: number
  }
  | {
    /**
     * Several handles completed in one call: `completeMany`, or with `claim` a `completeAndClaim`
     * on that lane. Mixed outcomes: live handles, spent ones, the same handle twice.
     */
    readonly _tag: "CompleteBatch"
    readonly handles: ReadonlyArray<Ref>
    readonly payload?: string | undefined
    readonly claim?: {
      readonly lane: number
      readonly caps: ReadonlyArray<Capability>
      readonly worker: number
      readonly max: number
    } | undefined
  }
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
    /** Also adds an earlier edge of the flow again, with its id and ends (staged, refused or only applied). */
    readonly reuse?: Ref | undefined
  }
  | { readonly _tag: "AddToFlow"; readonly flow: Ref; readonly execution: Ref }
  | {
    readonly _tag: "SetEdgeGroupPolicy"
    readonly flow: Ref
    readonly downstream: Ref
    readonly policy: M.EdgeDependencyPolicy
    /** Pick the downstream among every execution on the flow's partition, member or not. */
    readonly stray?: Ref | undefined
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
    /** Stage under the id of an earlier edge of the flow (staged, refused or only applied). */
    readonly reuse?: Ref | undefined
  }
  /**
   * Applies an earlier edge to its child, whether or not its staging succeeded (applying does not check it);
   * `stray` swaps one end for another execution on the flow's partition (a non-member, another flow's member,
   * or a member the staged edge does not join).
   */
  | {
    readonly _tag: "ApplyEdge"
    readonly edge: Ref
    readonly stray?: { readonly end: "upstream" | "downstream"; readonly execution: Ref } | undefined
  }
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
  | {
    /** `listLaneExecutions` walked to its end (the entries of every page together) and `countLaneExecutions`. */
    readonly _tag: "ListLane"
    readonly lane: number
    readonly states?: ReadonlyArray<M.PublicState> | undefined
    readonly kind?: string | undefined
    readonly order: M.LaneOrder
    readonly limit: number
  }
  | { readonly _tag: "Advance"; readonly ms: number }
  | { readonly _tag: "Pass"; readonly pass: PassName }
  /** Advances the clock, then runs every maintenance pass once in `passNames` order (a reconciler cycle). */
  | { readonly _tag: "Settle"; readonly ms: number }

/** One step of a `Backlog`. */
export type BacklogOp =
  | { readonly create: ReadonlyArray<number> }
  | { readonly claim: number }
  | { readonly list: M.LaneOrder }

/** What a `CreateExecution` and an item of a `CreateExecutions` batch both say of the new execution. */
export interface ExecutionSpec {
  readonly lane: number
  /**
   * In a batch, distinct after the clamp to 0–9000: the items share one creation time, and the
   * claim order of a tie within a millisecond is not specified.
   */
  readonly priority: number
  readonly delayMs?: number | undefined
  readonly retry?: RetrySpec | undefined
  readonly caps: ReadonlyArray<Capability>
  /**
   * Mint the id co-located with this flow; with `join`, add the execution to the flow
   * (`addExecutionToFlow`): in the same command, or after the batch.
   */
  readonly flow?: Ref | undefined
  readonly join: boolean
}

/** One item of a `CreateExecutions` batch. */
export interface BatchItem extends ExecutionSpec {
  readonly idempotencyKey?: string | undefined
  /** The id of an earlier execution (a `Ref`), or `"previous"`: the id of the item before it in this batch. */
  readonly duplicateOf?: Ref | "previous" | undefined
}

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

