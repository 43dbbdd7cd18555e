/**
 * Flows (docs/design/flows.md), joins: all-of / any-of / quorum joins with cancel_remaining and let_run, skip
 * propagation inside the upstream's terminal operation, data passing, late edges (applied after their upstream
 * ended) and sibling cancellation.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { completeMember, failMember } from "./flows-helpers.js"
import {
  addEdge,
  addMember,
  advance,
  backend,
  buildFlow,
  bytes,
  claimNone,
  claimSome,
  create,
  createFlow,
  edgeGroup,
  expectStates,
  failsWith,
  flowSnapshot,
  info,
  now,
  pass,
  payloadOf,
  publicState,
  settleFlows,
  snapshot,
  type Tester,
  text,
  validationFails,
  vector
} from "./helpers.js"

/** A flow of three upstreams (members 0 to 2) joined into member 3 under `policy`. */
const joinOfThree = (policy: M.EdgeDependencyPolicy) => buildFlow(4, [[0, 3], [1, 3], [2, 3]], { 3: policy })

export const flowsJoins = (t: Tester): void => {
  describe("joins and skip propagation (inline, no maintenance pass)", () => {
    t.test("all_of: the child becomes eligible inside the last upstream's complete", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* buildFlow(3, [[0, 2], [1, 2]])
        yield* expectStates([[ids[0]!, "waiting"], [ids[1]!, "waiting"], [ids[2]!, "waiting_children"]])
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[2]!)).toBe("waiting_children")
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({
          totalDeps: 2,
          satisfiedCount: 1,
          runningCount: 1,
          groupState: "pending"
        })
        yield* completeMember(members[1]!)
        expect(yield* vector(ids[2]!)).toMatchObject({
          eligibilityState: "eligible_now",
          attemptState: "pending_first_attempt",
          publicState: "waiting"
        })
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({
          satisfiedCount: 2,
          runningCount: 0,
          groupState: "satisfied"
        })
        const h = yield* claimSome(members[2]!.lane)
        expect(h.kind).toBe("fresh")
      }))

    t.test("resolving a dependency stamps the child's lastMutationAt even when its state does not move", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(3)
        // the child is already running when the edges are applied, so resolution cannot unblock it
        const child = yield* claimSome(members[2]!.lane)
        expect(payloadOf(child).executionId).toBe(ids[2])
        yield* addEdge(flowId, ids[0]!, ids[2]!, { dataPassingRef: "in" })
        yield* addEdge(flowId, ids[1]!, ids[2]!)
        const before = (yield* snapshot(ids[2]!)).lastMutationAt
        yield* advance(10)
        const t1 = yield* now
        const h0 = yield* claimSome(members[0]!.lane)
        yield* b.complete(h0, { payload: bytes("up") })
        expect(t1).toBeGreaterThan(before)
        expect((yield* snapshot(ids[2]!)).lastMutationAt).toBe(t1)
        expect(yield* publicState(ids[2]!)).toBe("active")
        yield* advance(10)
        const t2 = yield* now
        yield* failMember(members[1]!)
        expect((yield* snapshot(ids[2]!)).lastMutationAt).toBe(t2)
      }))

    t.test("a linear chain advances one member per complete with no scanner delay", () =>
      Effect.gen(function*() {
        const { members, ids } = yield* buildFlow(5, [[0, 1], [1, 2], [2, 3], [3, 4]])
        for (let i = 0; i < 5; i++) {
          expect(yield* publicState(ids[i]!)).toBe("waiting")
          for (let j = i + 1; j < 5; j++) expect(yield* publicState(ids[j]!)).toBe("waiting_children")
          yield* completeMember(members[i]!)
        }
        for (const id of ids) expect(yield* publicState(id)).toBe("completed")
      }))

    t.test("diamond: the join waits for both branches", () =>
      Effect.gen(function*() {
        const { members, ids } = yield* buildFlow(4, [[0, 1], [0, 2], [1, 3], [2, 3]])
        yield* completeMember(members[0]!)
        yield* expectStates([[ids[1]!, "waiting"], [ids[2]!, "waiting"], [ids[3]!, "waiting_children"]])
        yield* completeMember(members[2]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting_children")
        yield* completeMember(members[1]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting")
      }))

    t.test("all_of: a failed upstream skips the child and the skip cascades", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* buildFlow(4, [[0, 1], [1, 2], [3, 2]])
        yield* failMember(members[0]!)
        expect(yield* vector(ids[1]!)).toMatchObject({
          lifecyclePhase: "terminal",
          terminalOutcome: "skipped",
          publicState: "skipped"
        })
        expect(yield* publicState(ids[2]!)).toBe("skipped")
        expect(yield* publicState(ids[3]!)).toBe("waiting")
        expect((yield* edgeGroup(flowId, ids[1]!)).groupState).toBe("impossible")
        yield* claimNone(members[1]!.lane)
        yield* claimNone(members[2]!.lane)
      }))

    t.test("a cancelled or expired upstream also skips its child", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { ids } = yield* buildFlow(2, [[0, 1]])
        yield* b.cancelExecution({ executionId: ids[0]!, reason: "no" })
        expect(yield* publicState(ids[1]!)).toBe("skipped")
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId, { executionDeadlineAt: (yield* now) + 100 })
        const down = yield* addMember(flowId)
        yield* addEdge(flowId, up.executionId, down.executionId)
        yield* advance(100)
        yield* pass("expireExecutions")
        expect(yield* publicState(up.executionId)).toBe("expired")
        expect(yield* publicState(down.executionId)).toBe("skipped")
      }))

    t.test("skipping a running downstream ends its attempt and fences its holder", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId)
        const down = yield* addMember(flowId)
        const dh = yield* claimSome(down.lane)
        yield* addEdge(flowId, up.executionId, down.executionId)
        expect(yield* publicState(down.executionId)).toBe("active")
        yield* failMember(up)
        expect(yield* vector(down.executionId)).toMatchObject({
          lifecyclePhase: "terminal",
          ownershipState: "unowned",
          terminalOutcome: "skipped"
        })
        const e = yield* failsWith(b.complete(dh), "Contention", "ExecutionNotActive")
        expect(e.notActive?.terminalOutcome).toBe("skipped")
      }))

    t.test("any_of + cancel_remaining: the first success releases the child and cancels the other upstreams", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* joinOfThree({ _tag: "any_of", onSatisfied: "cancel_remaining" })
        const runningSibling = yield* claimSome(members[1]!.lane)
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting")
        yield* settleFlows
        yield* expectStates([[ids[1]!, "cancelled"], [ids[2]!, "cancelled"], [ids[3]!, "waiting"]])
        yield* failsWith(b.complete(runningSibling), "Contention", "ExecutionNotActive")
        // the group fired once; the cancelled siblings do not skip the child
        expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ groupState: "satisfied", satisfiedCount: 1 })
        yield* completeMember(members[3]!)
      }))

    t.test("any_of + let_run: siblings keep running and later outcomes do not re-fire the group", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* joinOfThree({ _tag: "any_of", onSatisfied: "let_run" })
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting")
        yield* settleFlows
        yield* expectStates([[ids[1]!, "waiting"], [ids[2]!, "waiting"], [ids[3]!, "waiting"]])
        yield* failMember(members[1]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting")
        expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({
          totalDeps: 3,
          satisfiedCount: 1,
          failedCount: 1,
          runningCount: 1,
          groupState: "satisfied"
        })
      }))

    t.test("any_of: impossible only when every upstream failed", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* buildFlow(3, [[0, 2], [1, 2]], {
          2: { _tag: "any_of", onSatisfied: "let_run" }
        })
        yield* failMember(members[0]!)
        expect(yield* publicState(ids[2]!)).toBe("waiting_children")
        expect((yield* edgeGroup(flowId, ids[2]!)).groupState).toBe("pending")
        yield* failMember(members[1]!)
        expect(yield* publicState(ids[2]!)).toBe("skipped")
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ failedCount: 2, groupState: "impossible" })
      }))

    t.test("quorum(2 of 3) + cancel_remaining: satisfied at the second success, the third is cancelled", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* joinOfThree({ _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" })
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting_children")
        yield* completeMember(members[1]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting")
        yield* settleFlows
        expect(yield* publicState(ids[2]!)).toBe("cancelled")
        expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ satisfiedCount: 2, groupState: "satisfied" })
      }))

    t.test("quorum(2 of 3) + let_run: impossible once two failed; the child is skipped, the third runs on", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* joinOfThree({ _tag: "quorum", k: 2, onSatisfied: "let_run" })
        yield* failMember(members[0]!)
        expect(yield* publicState(ids[3]!)).toBe("waiting_children")
        yield* failMember(members[1]!)
        expect(yield* publicState(ids[3]!)).toBe("skipped")
        expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ failedCount: 2, groupState: "impossible" })
        yield* settleFlows
        expect(yield* publicState(ids[2]!)).toBe("waiting")
        yield* completeMember(members[2]!)
      }))

    t.test("quorum(2 of 3) + cancel_remaining: impossible also cancels the remaining upstream", () =>
      Effect.gen(function*() {
        const { members, ids } = yield* joinOfThree({ _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" })
        yield* failMember(members[0]!)
        yield* failMember(members[1]!)
        expect(yield* publicState(ids[3]!)).toBe("skipped")
        yield* settleFlows
        expect(yield* publicState(ids[2]!)).toBe("cancelled")
      }))

    t.test("a dependency applied without a staged edge: not resolved inline, the pass resolves it for a blocked child only", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId)
        const blocked = yield* addMember(flowId)
        const active = yield* addMember(flowId)
        const done = yield* addMember(flowId)
        // `active` runs and `done` is cancelled before their dependencies are applied
        const activeHandle = yield* claimSome(active.lane)
        yield* b.cancelExecution({ executionId: done.executionId, reason: "x" })
        // never staged: applying does not verify the edge (docs/design/flows.md#applying-an-edge)
        const applyUnstaged = (down: ExecutionId) =>
          Effect.gen(function*() {
            const edgeId = yield* Ids.newEdgeId
            yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: up.executionId, downstreamExecutionId: down })
          })
        for (const c of [blocked, active, done]) yield* applyUnstaged(c.executionId)
        expect(yield* publicState(blocked.executionId)).toBe("waiting_children")
        // each counts as one of the flow's edges (docs/limits.md, flowEdges)
        expect(Option.getOrThrow(yield* b.describeFlow(flowId)).edgeCount).toBe(3)
        // inline resolution (docs/design/flows.md#resolution) follows the upstream's staged edges only
        yield* failMember(up)
        expect(yield* publicState(blocked.executionId)).toBe("waiting_children")
        for (const c of [blocked, active, done]) {
          expect(yield* edgeGroup(flowId, c.executionId)).toMatchObject({ runningCount: 1, failedCount: 0, groupState: "pending" })
        }
        // the safety net resolves the blocked child's dependency by its record; the others are left alone
        yield* settleFlows
        expect(yield* publicState(blocked.executionId)).toBe("skipped")
        expect(yield* edgeGroup(flowId, blocked.executionId)).toMatchObject({ failedCount: 1, groupState: "impossible" })
        for (const c of [active, done]) {
          expect(yield* edgeGroup(flowId, c.executionId)).toMatchObject({ runningCount: 1, failedCount: 0, groupState: "pending" })
        }
        expect(yield* publicState(active.executionId)).toBe("active")
        expect(yield* publicState(done.executionId)).toBe("cancelled")
        yield* b.complete(activeHandle)
      }))
  })

  describe("staged edges and applied dependencies", () => {
    t.test("applying a staged edge id with other ends is Validation(InvalidDependency) and writes nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, ids } = yield* buildFlow(4)
        const [u, v, y, z] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId]
        const edgeId = yield* Ids.newEdgeId
        yield* b.stageDependencyEdge({
          flowId,
          edgeId,
          upstreamExecutionId: u,
          downstreamExecutionId: y,
          expectedGraphRevision: (yield* flowSnapshot(flowId)).graphRevision
        })
        const before = [yield* flowSnapshot(flowId), yield* snapshot(y), yield* snapshot(z)]
        for (const [up, down] of [[v, y], [u, z], [y, u]] as const) {
          yield* validationFails(
            b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: up, downstreamExecutionId: down }),
            "InvalidDependency"
          )
        }
        expect([yield* flowSnapshot(flowId), yield* snapshot(y), yield* snapshot(z)]).toEqual(before)
        expect(yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: u, downstreamExecutionId: y }))
          .toEqual({ _tag: "Applied", unsatisfiedCount: 1 })
      }))

    t.test("a dependency applied before its edge id was staged from another upstream: neither terminal step resolves it", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const [u, v, y] = [yield* addMember(flowId), yield* addMember(flowId), yield* addMember(flowId)]
        const edgeId = yield* Ids.newEdgeId
        // applied unstaged (docs/design/flows.md#applying-an-edge), then the id staged from u
        yield* b.applyDependencyToChild({ flowId, edgeId, upstreamExecutionId: v.executionId, downstreamExecutionId: y.executionId })
        yield* b.stageDependencyEdge({
          flowId,
          edgeId,
          upstreamExecutionId: u.executionId,
          downstreamExecutionId: y.executionId,
          expectedGraphRevision: (yield* flowSnapshot(flowId)).graphRevision
        })
        // u's terminal step follows the staged edge, but the dependency waits for v; v has no staged edge
        yield* completeMember(u)
        expect(yield* publicState(y.executionId)).toBe("waiting_children")
        yield* completeMember(v)
        expect(yield* publicState(y.executionId)).toBe("waiting_children")
        expect(yield* edgeGroup(flowId, y.executionId)).toMatchObject({ runningCount: 1, groupState: "pending" })
        // the pass resolves it from its record, with v's outcome
        yield* settleFlows
        expect(yield* publicState(y.executionId)).toBe("waiting")
        expect(yield* edgeGroup(flowId, y.executionId)).toMatchObject({ satisfiedCount: 1, groupState: "satisfied" })
      }))
  })

  describe("data passing", () => {
    t.test("an edge with a data_passing_ref copies the upstream result into the child's input on success", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId)
        const passed = yield* addMember(flowId, { inputPayload: bytes("original") })
        const plain = yield* addMember(flowId, { inputPayload: bytes("kept") })
        yield* addEdge(flowId, up.executionId, passed.executionId, { dataPassingRef: "result" })
        yield* addEdge(flowId, up.executionId, plain.executionId)
        yield* b.complete(yield* claimSome(up.lane), { payload: bytes("from-upstream") })
        const input = (id: ExecutionId) =>
          Effect.map(b.getExecutionInput(id), (i) => Option.map(i, (x) => new TextDecoder().decode(x.payload)))
        expect(yield* input(passed.executionId)).toEqual(Option.some("from-upstream"))
        expect(yield* input(plain.executionId)).toEqual(Option.some("kept"))
        expect(yield* publicState(passed.executionId)).toBe("waiting")
      }))

    t.test("an upstream that completes without a result leaves the child's input untouched", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId)
        const down = yield* addMember(flowId, { inputPayload: bytes("original") })
        yield* addEdge(flowId, up.executionId, down.executionId, { dataPassingRef: "result" })
        yield* b.complete(yield* claimSome(up.lane))
        const i = Option.getOrThrow(yield* b.getExecutionInput(down.executionId))
        expect(new TextDecoder().decode(i.payload)).toBe("original")
      }))

    t.test("a dependency applied for an edge never staged passes data only with a reference of its own", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId)
        const late = yield* addMember(flowId, { inputPayload: bytes("late") })
        const given = yield* addMember(flowId, { inputPayload: bytes("given") })
        const blocked = yield* addMember(flowId, { inputPayload: bytes("blocked") })
        const upLater = yield* addMember(flowId)
        // never staged: applying does not verify the edge (docs/design/flows.md#applying-an-edge)
        const applyUnstaged = (upstream: ExecutionId, down: ExecutionId, dataPassingRef?: string) =>
          Effect.gen(function*() {
            const edgeId = yield* Ids.newEdgeId
            return yield* b.applyDependencyToChild({
              flowId,
              edgeId,
              upstreamExecutionId: upstream,
              downstreamExecutionId: down,
              ...(dataPassingRef === undefined ? {} : { dataPassingRef })
            })
          })
        yield* b.complete(yield* claimSome(up.lane), { payload: bytes("from-upstream") })
        // late: resolved by the apply, with no reference given and no staged edge to take one from
        expect(yield* applyUnstaged(up.executionId, late.executionId)).toEqual({ _tag: "Applied", unsatisfiedCount: 0 })
        expect(yield* applyUnstaged(up.executionId, given.executionId, "result")).toEqual({
          _tag: "Applied",
          unsatisfiedCount: 0
        })
        // resolved by the reconcile pass, from the dependency record
        yield* applyUnstaged(upLater.executionId, blocked.executionId)
        yield* b.complete(yield* claimSome(upLater.lane), { payload: bytes("from-later") })
        yield* settleFlows
        yield* expectStates([[late.executionId, "waiting"], [given.executionId, "waiting"], [blocked.executionId, "waiting"]])
        const input = (id: ExecutionId) => Effect.map(b.getExecutionInput(id), (i) => Option.map(i, (x) => text(x.payload)))
        expect(yield* input(late.executionId)).toEqual(Option.some("late"))
        expect(yield* input(given.executionId)).toEqual(Option.some("from-upstream"))
        expect(yield* input(blocked.executionId)).toEqual(Option.some("blocked"))
      }))
  })

  describe("late edges: an edge applied after its upstream ended", () => {
    t.test("an edge whose upstream already completed is satisfied by the call that applies it", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const flowId = yield* createFlow()
        const up = yield* addMember(flowId)
        const down = yield* addMember(flowId, { inputPayload: bytes("original") })
        yield* b.complete(yield* claimSome(up.lane), { payload: bytes("from-upstream") })
        yield* addEdge(flowId, up.executionId, down.executionId, { dataPassingRef: "result" })
        // no maintenance pass: resolved inside applyDependencyToChild
        expect(yield* vector(down.executionId)).toMatchObject({
          eligibilityState: "eligible_now",
          publicState: "waiting"
        })
        expect(yield* edgeGroup(flowId, down.executionId)).toMatchObject({
          totalDeps: 1,
          satisfiedCount: 1,
          runningCount: 0,
          groupState: "satisfied"
        })
        const input = Option.getOrThrow(yield* b.getExecutionInput(down.executionId))
        expect(text(input.payload)).toBe("from-upstream")
        expect(payloadOf(yield* claimSome(down.lane)).executionId).toBe(down.executionId)
      }))

    t.test("an edge whose upstream already failed, was cancelled or was skipped skips its all_of child at once", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(7, [[2, 3]])
        const [failed, cancelled, skipRoot, skipped, c1, c2, c3] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId]
        yield* failMember(members[0]!)
        yield* b.cancelExecution({ executionId: cancelled, reason: "no" })
        yield* failMember(members[2]!)
        expect(yield* publicState(skipped)).toBe("skipped")
        expect(yield* publicState(skipRoot)).toBe("failed")
        // c3 has a child of its own, blocked on it: the skip cascades from the late edge
        const grandChild = yield* addMember(flowId)
        yield* addEdge(flowId, c3, grandChild.executionId)
        yield* addEdge(flowId, failed, c1)
        yield* addEdge(flowId, cancelled, c2)
        yield* addEdge(flowId, skipped, c3)
        yield* expectStates([[c1, "skipped"], [c2, "skipped"], [c3, "skipped"], [grandChild.executionId, "skipped"]])
        for (const c of [c1, c2, c3]) {
          // a skipped upstream counts as failed for an all_of join
          expect(yield* edgeGroup(flowId, c)).toMatchObject({
            totalDeps: 1,
            satisfiedCount: 0,
            failedCount: 1,
            skippedCount: 0,
            runningCount: 0,
            groupState: "impossible"
          })
        }
        yield* claimNone(members[4]!.lane)
      }))

    t.test("any_of: an edge from an already failed or skipped upstream counts toward impossible at once", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* buildFlow(5, [[1, 2]], { 4: { _tag: "any_of", onSatisfied: "let_run" } })
        const [failed, , skipped, other, child] = ids as [ExecutionId, ExecutionId, ExecutionId, ExecutionId, ExecutionId]
        yield* failMember(members[0]!)
        yield* failMember(members[1]!)
        expect(yield* publicState(skipped)).toBe("skipped")
        // the running upstream first: with one edge, a lost upstream would make any_of impossible
        yield* addEdge(flowId, other, child)
        yield* addEdge(flowId, failed, child)
        yield* addEdge(flowId, skipped, child)
        expect(yield* publicState(child)).toBe("waiting_children")
        expect(yield* edgeGroup(flowId, child)).toMatchObject({
          totalDeps: 3,
          failedCount: 1,
          skippedCount: 1,
          runningCount: 1,
          groupState: "pending"
        })
        yield* failMember(members[3]!)
        expect(yield* publicState(child)).toBe("skipped")
      }))

    t.test("all_of: a late edge to a child whose group was satisfied blocks it again until the new upstream resolves", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* buildFlow(3, [[0, 2]])
        yield* completeMember(members[0]!)
        expect(yield* publicState(ids[2]!)).toBe("waiting")
        expect((yield* edgeGroup(flowId, ids[2]!)).groupState).toBe("satisfied")
        yield* addEdge(flowId, ids[1]!, ids[2]!)
        expect(yield* vector(ids[2]!)).toMatchObject({
          eligibilityState: "blocked_by_dependencies",
          blockingReason: "waiting_for_children",
          publicState: "waiting_children"
        })
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({
          totalDeps: 2,
          satisfiedCount: 1,
          runningCount: 1,
          groupState: "pending"
        })
        yield* claimNone(members[2]!.lane)
        yield* completeMember(members[1]!)
        expect(yield* publicState(ids[2]!)).toBe("waiting")
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ satisfiedCount: 2, groupState: "satisfied" })
        yield* completeMember(members[2]!)
      }))

    t.test("all_of: a late edge to a running child leaves it running; a new upstream that fails skips it", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const { flowId, members, ids } = yield* buildFlow(4, [[0, 2], [0, 3]])
        yield* completeMember(members[0]!)
        const running = yield* claimSome(members[2]!.lane)
        const finisher = yield* claimSome(members[3]!.lane)
        yield* addEdge(flowId, ids[1]!, ids[2]!)
        expect(yield* publicState(ids[2]!)).toBe("active")
        expect((yield* edgeGroup(flowId, ids[2]!)).groupState).toBe("pending")
        // the same late edge to a child that finished changes nothing
        yield* b.complete(finisher)
        yield* addEdge(flowId, ids[1]!, ids[3]!)
        expect(yield* publicState(ids[3]!)).toBe("completed")
        expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ totalDeps: 2, runningCount: 1, groupState: "satisfied" })
        yield* failMember(members[1]!)
        expect(yield* vector(ids[2]!)).toMatchObject({ lifecyclePhase: "terminal", terminalOutcome: "skipped" })
        yield* failsWith(b.complete(running), "Contention", "ExecutionNotActive")
        expect(yield* publicState(ids[3]!)).toBe("completed")
        expect(yield* edgeGroup(flowId, ids[3]!)).toMatchObject({ failedCount: 1, groupState: "satisfied" })
      }))

    t.test("any_of / quorum: a late edge to a satisfied group leaves it satisfied and the child claimable", () =>
      Effect.gen(function*() {
        const { flowId, members, ids } = yield* buildFlow(6, [[0, 2], [3, 5], [4, 5]], {
          2: { _tag: "any_of", onSatisfied: "let_run" },
          5: { _tag: "quorum", k: 2, onSatisfied: "let_run" }
        })
        yield* completeMember(members[0]!)
        yield* completeMember(members[3]!)
        yield* completeMember(members[4]!)
        yield* expectStates([[ids[2]!, "waiting"], [ids[5]!, "waiting"]])
        yield* addEdge(flowId, ids[1]!, ids[2]!)
        yield* addEdge(flowId, ids[1]!, ids[5]!)
        yield* expectStates([[ids[2]!, "waiting"], [ids[5]!, "waiting"]])
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ totalDeps: 2, runningCount: 1, groupState: "satisfied" })
        expect(yield* edgeGroup(flowId, ids[5]!)).toMatchObject({ totalDeps: 3, runningCount: 1, groupState: "satisfied" })
        // the new upstream finishing changes nothing: no pass needed, nothing stalls
        yield* completeMember(members[1]!)
        yield* expectStates([[ids[2]!, "waiting"], [ids[5]!, "waiting"]])
        expect(yield* edgeGroup(flowId, ids[2]!)).toMatchObject({ satisfiedCount: 2, runningCount: 0, groupState: "satisfied" })
        yield* completeMember(members[2]!)
        yield* completeMember(members[5]!)
      }))
  })

  describe("sibling cancellation", () => {
    const reasonOf = (id: ExecutionId) =>
      Effect.map(info(id), (i) => ({ state: i.publicState, reason: i.cancellationReason, by: i.cancelledBy }))

    t.test("a satisfied cancel_remaining group cancels its running siblings with sibling_quorum_satisfied", () =>
      Effect.gen(function*() {
        const { members, ids } = yield* buildFlow(3, [[0, 2], [1, 2]], { 2: { _tag: "any_of", onSatisfied: "cancel_remaining" } })
        yield* completeMember(members[0]!)
        expect(yield* reasonOf(ids[1]!)).toEqual({ state: "cancelled", reason: "sibling_quorum_satisfied", by: "operator_override" })
      }))

    t.test("an impossible cancel_remaining group cancels its running siblings with sibling_quorum_impossible", () =>
      Effect.gen(function*() {
        const { members, ids } = yield* joinOfThree({ _tag: "quorum", k: 2, onSatisfied: "cancel_remaining" })
        yield* failMember(members[0]!)
        yield* failMember(members[1]!)
        expect(yield* publicState(ids[3]!)).toBe("skipped")
        expect(yield* reasonOf(ids[2]!)).toEqual({ state: "cancelled", reason: "sibling_quorum_impossible", by: "operator_override" })
      }))

    t.test("readExecutionInfo shows who cancelled an execution and why", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const c = yield* create()
        expect(yield* reasonOf(c.executionId)).toEqual({ state: "waiting", reason: undefined, by: undefined })
        yield* b.cancelExecution({ executionId: c.executionId, reason: "not needed", source: "ops" })
        expect(yield* reasonOf(c.executionId)).toEqual({ state: "cancelled", reason: "not needed", by: "ops" })
        const w = yield* create()
        yield* b.cancel(yield* claimSome(w.lane), { reason: "gave up" })
        expect(yield* reasonOf(w.executionId)).toEqual({ state: "cancelled", reason: "gave up", by: "worker" })
      }))
  })
}
