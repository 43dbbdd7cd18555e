/**
 * Generation, the profiles: the weights of every command in a sequence (`general`: every
 * operation; `flows`: flows that grow while they run; `backlog`: lanes of a hundred waiting
 * executions and more), the preludes, and `sampleArbitrary`.
 * The order and the weights of the alternatives decide the sequence a seed gives: changing them
 * changes every recorded seed.
 */
import { FastCheck as fc } from "effect"
import { passNames } from "../../src/Maintenance.js"
import type * as M from "../../src/Model.js"
import {
  backlogArb,
  cancelFlowArb,
  claimArb,
  completeAndClaimArb,
  completeBatchArb,
  createArb,
  createManyArb,
  applyEdgeArb,
  createFlowArb,
  extendFlowArb,
  failureClass,
  finishedFlowArb,
  handleRef,
  lateEdgeArb,
  opt,
  ref,
  setEdgeGroupPolicyArb,
  stageEdgeArb,
  SUMMARY_PATCHES,
  timeoutBehavior,
  w
} from "./arbitraries.js"
import { CAPABILITIES, type Command, LANES, type Sample } from "./commands.js"

/** `suspend` of a handle: a fresh or pending waitpoint, timeouts with every behaviour. */
const suspendArb: fc.Arbitrary<Command> = fc.record({
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

/** A signal to a waitpoint: its own token, a forged one, another waitpoint's, or an unknown waitpoint. */
const deliverSignalArb: fc.Arbitrary<Command> = fc.record({
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

/** The `general` profile: every operation, by area (lifecycle, signals, admin, flows, budgets, streams, time). */
export const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  w(16, createArb),
  w(3, createManyArb),
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
  w(3, completeAndClaimArb),
  w(3, completeBatchArb),
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
  w(10, suspendArb),
  w(9, deliverSignalArb),
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
  w(2, setEdgeGroupPolicyArb),
  w(5, stageEdgeArb),
  w(1, applyEdgeArb),
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
      _tag: fc.constant("ListLane" as const),
      lane: fc.integer({ min: 0, max: LANES.length - 1 }),
      states: opt(
        fc.uniqueArray(
          fc.constantFrom<M.PublicState>("waiting", "delayed", "active", "suspended", "completed", "failed", "cancelled"),
          { minLength: 1, maxLength: 3 }
        ),
        1,
        1
      ),
      kind: opt(fc.constantFrom("diff", "other"), 1, 3),
      order: fc.constantFrom<M.LaneOrder>("newest", "oldest"),
      limit: fc.constantFrom(1, 2, 5, 100)
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
 * sealing; cancelling finished flows. Members keep their deadlines, attempt timeouts and reclaim
 * caps, suspend with timeouts and are signalled, and lose their leases, so that the timer passes
 * and the claims end members whose dependents are due in the same call.
 */
const flowMemberArb: fc.Arbitrary<Command> = createArb.map((c) =>
  c._tag === "CreateExecution" ?
    {
      ...c,
      flow: c.flow ?? 0,
      join: true,
      lane: 0,
      delayMs: undefined,
      idempotencyKey: undefined,
      duplicateOf: undefined,
      caps: []
    } :
    c
)

/** Batches of members: every item minted for a flow (the most recent by default) and joined, on the first lane. */
const flowMembersArb: fc.Arbitrary<Command> = createManyArb.map((c) =>
  c._tag === "CreateExecutions" ?
    {
      ...c,
      items: c.items.map((x) => ({ ...x, flow: x.flow ?? 0, join: true, lane: 0, delayMs: undefined, caps: [] }))
    } :
    c
)

export const flowCommandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  w(8, flowMemberArb),
  w(2, flowMembersArb),
  w(12, claimArb.map((c) => (c._tag === "Claim" ? { ...c, lane: 0, caps: CAPABILITIES } : c))),
  w(8, fc.record({ _tag: fc.constant("Complete" as const), handle: handleRef, payload: opt(fc.constantFrom("out", ""), 3, 1) })),
  w(3, completeAndClaimArb.map((c) => (c._tag === "CompleteAndClaim" ? { ...c, lane: 0, caps: CAPABILITIES } : c))),
  w(
    3,
    completeBatchArb.map((c) =>
      c._tag === "CompleteBatch" && c.claim !== undefined ? { ...c, claim: { ...c.claim, lane: 0, caps: CAPABILITIES } } : c
    )
  ),
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
  w(2, applyEdgeArb),
  w(4, setEdgeGroupPolicyArb),
  w(8, extendFlowArb),
  w(10, lateEdgeArb),
  w(4, finishedFlowArb),
  w(3, fc.record({ _tag: fc.constant("AddToFlow" as const), flow: ref, execution: ref })),
  w(2, fc.record({ _tag: fc.constant("SealFlow" as const), flow: ref })),
  w(2, cancelFlowArb),
  w(2, createFlowArb),
  w(2, fc.record({ _tag: fc.constant("Advance" as const), ms: fc.constantFrom(10, 1000, 30_000) })),
  w(2, fc.record({ _tag: fc.constant("Settle" as const), ms: fc.constantFrom(0, 1000, 30_000) })),
  w(4, suspendArb),
  w(3, deliverSignalArb),
  w(
    1,
    fc.record({
      _tag: fc.constant("RevokeLease" as const),
      execution: ref,
      expected: fc.constant<"none" | "current" | "stale">("none")
    })
  )
)

/** A flow with members, some claimed, so the body starts on a running flow. */
const flowPreludeArb: fc.Arbitrary<ReadonlyArray<Command>> = fc.tuple(
  fc.constant<Command>({ _tag: "CreateFlow" }),
  fc.array(flowMemberArb, { minLength: 2, maxLength: 4, size: "max" }),
  fc.array(claimArb.map((c) => (c._tag === "Claim" ? { ...c, lane: 0, caps: CAPABILITIES } : c)), { maxLength: 2, size: "max" })
).map(([flow, members, claims]) => [flow, ...members, ...claims])

/**
 * The `backlog` profile: lanes of a hundred waiting executions and more (a store may keep such a
 * lane's index in parts), claimed in batches, read in pages, with priority changes, completions,
 * cancellations and time passing between the backlogs.
 */
export const backlogCommandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  w(4, backlogArb),
  w(3, fc.record({ _tag: fc.constant("ChangePriority" as const), execution: ref, priority: fc.constantFrom(0, 3, 9000) })),
  w(2, fc.record({ _tag: fc.constant("Complete" as const), handle: handleRef, payload: fc.constant(undefined) })),
  w(1, fc.record({ _tag: fc.constant("CancelExecution" as const), execution: ref })),
  w(1, fc.record({ _tag: fc.constant("Settle" as const), ms: fc.constantFrom(0, 1000) }))
)

export type Profile = "general" | "flows" | "backlog"

export interface GenerationOptions {
  readonly maxCommands?: number | undefined
  /** `general` (default): every operation; `flows`: flows that grow while they run; `backlog`: long lanes. */
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
  const backlog = options.profile === "backlog"
  return fc.record({
    salt: fc.nat({ max: 0x7fffffff }),
    prelude: flows ? flowPreludeArb : backlog ? fc.constant([]) : preludeArb,
    body: fc.array(flows ? flowCommandArbitrary : backlog ? backlogCommandArbitrary : commandArbitrary, {
      minLength: 1,
      maxLength: Math.max(1, max - 6),
      size: "max"
    })
  }).map(({ body, prelude, salt }): Sample => ({ salt, commands: [...prelude, ...body] }))
}
