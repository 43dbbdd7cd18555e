/**
 * Generation, the building blocks: refs, lanes, policies and the arbitraries of the commands that
 * the profiles (profiles.ts) use with weights of their own.
 */
import { FastCheck as fc } from "effect"
import type * as M from "../../src/Model.js"
import {
  type Backoff,
  type BacklogOp,
  type BatchItem,
  CAPABILITIES,
  type Capability,
  type Command,
  type Drive,
  type EndRef,
  LANES,
  NEW,
  type Ref,
  type RetrySpec,
  type SummaryPatch,
  WORKERS
} from "./commands.js"

export const ref: fc.Arbitrary<Ref> = fc.nat({ max: 5 })

/** Handle refs: mostly 0–3 (live handles), sometimes 4–7 (any handle, spent ones included). */
export const handleRef: fc.Arbitrary<Ref> = fc.oneof(
  { arbitrary: fc.nat({ max: 3 }), weight: 5 },
  { arbitrary: fc.integer({ min: 4, max: 7 }), weight: 1 }
)

/** Mostly the first lane, so that claims find work. */
const laneArb: fc.Arbitrary<number> = fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, {
  arbitrary: fc.integer({ min: 0, max: LANES.length - 1 }),
  weight: 1
})

/** `undefined` with weight `none`, else a value of `arb` with weight `some`. */
export const opt = <A>(arb: fc.Arbitrary<A>, some = 1, none = 1): fc.Arbitrary<A | undefined> =>
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

export const failureClass = fc.constantFrom<M.FailureClass>("Transient", "Permanent", "InfraCrash", "Timeout", "Cancelled")
export const timeoutBehavior = fc.constantFrom<M.TimeoutBehavior>(
  "fail",
  "cancel",
  "expire",
  "auto_resume_with_timeout_signal",
  "auto_resume",
  "escalate"
)
const onSatisfied = fc.constantFrom<M.OnSatisfied>("cancel_remaining", "let_run")
export const edgePolicy: fc.Arbitrary<M.EdgeDependencyPolicy> = fc.oneof(
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

export const w = <A>(weight: number, arbitrary: fc.Arbitrary<A>) => ({ weight, arbitrary })

export const createArb: fc.Arbitrary<Command> = fc.record({
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

/**
 * A `createExecutions` batch of 1–5 items with distinct priorities (one creation time for all);
 * now and then a key or an id repeated inside the batch, or one invalid item.
 */
export const createManyArb: fc.Arbitrary<Command> = fc
  .shuffledSubarray([0, 1, 2, 5, 9001], { minLength: 1, maxLength: 5 })
  .chain((priorities) =>
    fc.record({
      _tag: fc.constant("CreateExecutions" as const),
      items: fc.tuple(...priorities.map((priority) =>
        fc.record({
          lane: laneArb,
          priority: fc.constant(priority),
          delayMs: opt(fc.constantFrom(-100, 50, 1000), 1, 6),
          retry: opt(retryArb, 1, 3),
          caps: capsArb,
          flow: opt(ref, 1, 2),
          join: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
          idempotencyKey: opt(fc.constantFrom("idem-1", "idem-b"), 1, 6),
          duplicateOf: opt(fc.oneof(w(1, ref), w(2, fc.constant("previous" as const))), 1, 10)
        }).map((item): BatchItem => item)
      )),
      invalid: opt(fc.nat({ max: priorities.length - 1 }), 1, 8)
    })
  )

/**
 * A `Backlog`: mostly batches of 1–5 distinct priorities (one creation time each, a millisecond
 * apart, so that a priority's entries of neighbouring milliseconds meet), claims of 1–10 between
 * them, and now and then a paged read of the lane; 30–80 steps, a peak of about a hundred waiting.
 */
export const backlogArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("Backlog" as const),
  ops: fc.array(
    fc.oneof(
      w(10, fc.shuffledSubarray([0, 1, 2, 5, 9000], { minLength: 1, maxLength: 5 }).map((create): BacklogOp => ({ create }))),
      w(2, fc.integer({ min: 1, max: 10 }).map((claim): BacklogOp => ({ claim }))),
      w(1, fc.constantFrom<M.LaneOrder>("oldest", "newest").map((list): BacklogOp => ({ list })))
    ),
    { minLength: 30, maxLength: 80 }
  )
})

export const claimArb: fc.Arbitrary<Command> = fc.record({
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

export const completeAndClaimArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CompleteAndClaim" as const),
  handle: handleRef,
  none: fc.boolean(),
  payload: opt(fc.constantFrom("out", ""), 3, 1),
  lane: laneArb,
  caps: fc.constantFrom<ReadonlyArray<Capability>>(CAPABILITIES, []),
  worker: fc.integer({ min: 0, max: WORKERS.length - 1 }),
  max: fc.integer({ min: 0, max: 3 })
})

export const completeBatchArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CompleteBatch" as const),
  handles: fc.array(handleRef, { minLength: 2, maxLength: 4 }),
  payload: opt(fc.constantFrom("out", ""), 3, 1),
  claim: opt(
    fc.record({
      lane: laneArb,
      caps: fc.constantFrom<ReadonlyArray<Capability>>(CAPABILITIES, []),
      worker: fc.integer({ min: 0, max: WORKERS.length - 1 }),
      max: fc.integer({ min: 0, max: 3 })
    })
  )
})

export const createFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CreateFlow" as const),
  existing: opt(ref, 1, 8),
  sealed: opt(fc.constant(true), 1, 8)
})

const endRef: fc.Arbitrary<EndRef> = fc.oneof(w(2, fc.constant(NEW)), w(3, ref))

export const extendFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("ExtendFlow" as const),
  flow: ref,
  member: fc.oneof(w(3, fc.constant(true)), w(1, fc.constant(false))),
  edges: fc.array(fc.tuple(endRef, endRef), { minLength: 0, maxLength: 3 }),
  join: opt(edgePolicy, 1, 2),
  dataPassing: fc.boolean(),
  reuse: opt(ref, 1, 6)
})

export const setEdgeGroupPolicyArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("SetEdgeGroupPolicy" as const),
  flow: ref,
  downstream: ref,
  policy: edgePolicy,
  stray: opt(ref, 1, 3)
})

export const applyEdgeArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("ApplyEdge" as const),
  edge: ref,
  stray: opt(fc.record({ end: fc.constantFrom<"upstream" | "downstream">("upstream", "downstream"), execution: ref }), 1, 1)
})

const driveArb: fc.Arbitrary<Drive> = fc.constantFrom<Drive>("complete", "complete", "fail", "cancel", "none")

export const lateEdgeArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("LateEdge" as const),
  flow: fc.oneof(w(3, fc.constant(0)), w(1, ref)),
  policy: edgePolicy,
  early: driveArb,
  child: fc.constantFrom<"waiting" | "active" | "completed">("waiting", "waiting", "active", "completed"),
  late: fc.oneof(w(4, driveArb), w(1, fc.constant("skipped" as const))),
  after: driveArb,
  via: fc.constantFrom<"apply" | "extend">("apply", "extend")
})

export const finishedFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("FinishedFlow" as const),
  sealed: fc.oneof(w(3, fc.constant(false)), w(1, fc.constant(true))),
  how: fc.constantFrom<Drive>("complete", "fail", "cancel"),
  then: fc.constantFrom<"add" | "extend" | "edge" | "seal" | "cancel">("add", "extend", "edge", "seal", "cancel")
})

export const stageEdgeArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("StageEdge" as const),
  flow: ref,
  upstream: ref,
  downstream: ref,
  revision: fc.oneof(w(6, fc.constant("current" as const)), w(1, fc.constant("stale" as const))),
  apply: fc.oneof(w(3, fc.constant(true)), w(1, fc.constant(false))),
  dataPassing: fc.oneof(w(1, fc.constant(true)), w(2, fc.constant(false))),
  reuse: opt(ref, 1, 8)
})

export const cancelFlowArb: fc.Arbitrary<Command> = fc.record({
  _tag: fc.constant("CancelFlow" as const),
  flow: ref,
  policy: fc.constantFrom<M.CancelFlowPolicy>("FlowOnly", "CancelAll", "CancelPending")
})
