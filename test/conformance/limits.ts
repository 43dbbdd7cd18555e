/**
 * The budget of bytes and counts of every call (src/Limits.ts, docs/limits.md): input past a
 * limit is `Validation(LimitExceeded)` naming the limit and never repeating the value, nothing is
 * written, and input at the limit is accepted. The four calls that once wrote half of themselves
 * on Valkey (4,000 tags, 2,100 budget dimensions, a flow graph member with 4,000 tags, a batch with
 * such an item) are refused whole, and the same call within the limits then succeeds completely.
 */
import { describe, expect } from "@effect/vitest"
import { Effect, Option } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import { Limits } from "../../src/Limits.js"
import type * as M from "../../src/Model.js"
import {
  backend,
  bytes,
  claimArgs,
  claimSome,
  create,
  createAndClaim,
  createBudget,
  createFlow,
  ensureHmac,
  isAbsent,
  newLane,
  NS,
  payloadOf,
  publicState,
  SEED_KID,
  signalArgs,
  snapshot,
  suspendSingle,
  type Tester,
  validationFails
} from "./helpers.js"

const tags = (n: number, value = "v"): Record<string, string> => {
  const out: Record<string, string> = {}
  for (let i = 0; i < n; i++) out[`lim.t${i}`] = value
  return out
}

/** One byte (or one entry) past `limit`, as `x`s. */
const over = (limit: keyof typeof Limits) => "x".repeat(Limits[limit] + 1)
const at = (limit: keyof typeof Limits) => "y".repeat(Limits[limit])

/** `LimitExceeded` naming `limit`, whose detail does not repeat the (long) value. */
const limitFails = <A, R>(effect: Effect.Effect<A, unknown, R>, limit: keyof typeof Limits) =>
  Effect.map(validationFails(effect as Effect.Effect<A, never, R>, "LimitExceeded", `Limits.${limit}`), (e) => {
    expect(e.detail).not.toMatch(/xxxxxxxx/)
    expect(e.detail.length).toBeLessThan(300)
    return e
  })

const member = (flowId: Ids.FlowId, lane: Ids.LaneId, extra: Partial<M.CreateExecutionArgsInput> = {}) =>
  Effect.map(Ids.executionIdForFlow(flowId), (executionId): M.CreateExecutionArgsInput => ({
    executionId,
    namespace: NS,
    laneId: lane,
    executionKind: "limits",
    ...extra
  }))

export const limits = (t: Tester) =>
  describe("limits (nothing written past a limit)", () => {
    describe("all or nothing", () => {
      t.test("createExecution with 4,000 tags writes nothing; the same id with 64 tags is created whole and claimable", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const executionId = yield* Ids.executionIdSolo(lane)
          const args = { executionId, namespace: NS, laneId: lane, executionKind: "limits" }
          yield* limitFails(b.createExecution({ ...args, tags: tags(4000) }), "tagsPerExecution")
          yield* isAbsent(executionId)
          expect(yield* b.createExecution({ ...args, tags: tags(Limits.tagsPerExecution) })).toMatchObject({
            _tag: "Created",
            executionId
          })
          expect(Object.keys((yield* snapshot(executionId)).tags)).toHaveLength(Limits.tagsPerExecution)
          const h = yield* claimSome(lane)
          yield* b.complete(h)
          expect(yield* publicState(executionId)).toBe("completed")
        }))

      t.test("createBudget with 2,100 dimensions writes nothing; 64 dimensions are created with every limit", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const budgetId = yield* Ids.newBudgetId
          const args = (n: number): M.CreateBudgetArgs => ({
            budgetId,
            scopeType: "tenant",
            scopeId: "limits",
            enforcementMode: "strict",
            onHardLimit: "fail",
            onSoftLimit: "warn",
            resetIntervalMs: 0,
            dimensions: Array.from({ length: n }, (_, i) => `d${i}`),
            hardLimits: Array.from({ length: n }, () => 10),
            softLimits: Array.from({ length: n }, () => 5)
          })
          yield* limitFails(b.createBudget(args(2100)), "budgetDimensions")
          const missing = yield* Effect.either(b.getBudgetStatus(budgetId))
          expect(missing._tag === "Left" && missing.left._tag).toBe("NotFound")
          expect(yield* b.createBudget(args(Limits.budgetDimensions))).toEqual({ _tag: "Created", budgetId })
          const status = yield* b.getBudgetStatus(budgetId)
          expect(Object.keys(status.hardLimits)).toHaveLength(Limits.budgetDimensions)
          expect(status.hardLimits[`d${Limits.budgetDimensions - 1}`]).toBe(10)
        }))

      t.test("createFlowGraph whose third member has 4,000 tags writes nothing; within the limits it is created whole", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const flowId = yield* Ids.newFlowId
          const members = [yield* member(flowId, lane), yield* member(flowId, lane), yield* member(flowId, lane)]
          const ids = members.map((m) => m.executionId)
          const edges = [{ edgeId: yield* Ids.newEdgeId, upstreamExecutionId: ids[0]!, downstreamExecutionId: ids[2]! }]
          const graph = (third: Record<string, string>) => ({
            flow: { flowId, namespace: NS },
            members: [members[0]!, members[1]!, { ...members[2]!, tags: third }],
            edges
          })
          yield* limitFails(b.createFlowGraph(graph(tags(4000))), "tagsPerExecution")
          expect(Option.isNone(yield* b.describeFlow(flowId))).toBe(true)
          for (const id of ids) yield* isAbsent(id)
          expect(yield* b.createFlowGraph(graph(tags(Limits.tagsPerExecution)))).toMatchObject({ _tag: "Created", flowId })
          const flow = Option.getOrThrow(yield* b.describeFlow(flowId))
          expect([flow.nodeCount, flow.edgeCount]).toEqual([3, 1])
          expect(Object.keys((yield* snapshot(ids[2]!)).tags)).toHaveLength(Limits.tagsPerExecution)
          expect(yield* publicState(ids[2]!)).toBe("waiting_children")
        }))

      t.test("createExecutions([ok, 4,000 tags, ok]) writes nothing; the batch within the limits creates all three", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const ids: Array<ExecutionId> = []
          for (let i = 0; i < 3; i++) ids.push(yield* Ids.executionIdSolo(lane))
          const batch = (second: Record<string, string>) =>
            ids.map((executionId, i) => ({
              executionId,
              namespace: NS,
              laneId: lane,
              executionKind: "limits",
              tags: i === 1 ? second : {}
            }))
          const e = yield* limitFails(b.createExecutions(batch(tags(4000))), "tagsPerExecution")
          expect(e.detail).toMatch(/^\[1\]/)
          for (const id of ids) yield* isAbsent(id)
          const r = yield* b.createExecutions(batch(tags(Limits.tagsPerExecution)))
          expect(r.map((x) => x._tag)).toEqual(["Created", "Created", "Created"])
          for (const id of ids) expect(yield* publicState(id)).toBe("waiting")
        }))
    })

    describe("strings", () => {
      t.test("createExecution: names, keys, tags and policy past their limits write nothing; at the limits they are accepted", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const cases: ReadonlyArray<readonly [Partial<M.CreateExecutionArgsInput>, keyof typeof Limits]> = [
            [{ namespace: Ids.unsafe.namespace(over("nameBytes")) }, "nameBytes"],
            [{ executionKind: over("nameBytes") }, "nameBytes"],
            [{ creatorIdentity: over("nameBytes") }, "nameBytes"],
            [{ payloadEncoding: over("nameBytes") }, "nameBytes"],
            [{ idempotencyKey: over("nameBytes") }, "nameBytes"],
            // 86 three-byte characters: 258 bytes in 86 UTF-16 units
            [{ executionKind: "\u20ac".repeat(86) }, "nameBytes"],
            [{ tags: { [`lim.${over("tagKeyBytes")}`]: "v" } }, "tagKeyBytes"],
            [{ tags: { "lim.k": over("tagValueBytes") } }, "tagValueBytes"],
            [{ policy: { retryPolicy: { retryableCategories: Array.from({ length: 2000 }, (_, i) => `category-${i}`) } } }, "policyBytes"],
            [{ policy: JSON.stringify({ fallback_policy: { tiers: [{ provider: over("policyBytes"), model: "m" }] } }) }, "policyBytes"]
          ]
          for (const [patch, limit] of cases) {
            const executionId = yield* Ids.executionIdSolo(lane)
            yield* limitFails(
              b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "limits", ...patch }),
              limit
            )
            yield* isAbsent(executionId)
          }
          const edge = yield* create({
            laneId: lane,
            namespace: Ids.unsafe.namespace(at("nameBytes")),
            executionKind: at("nameBytes"),
            idempotencyKey: at("nameBytes"),
            tags: { [`lim.${"k".repeat(Limits.tagKeyBytes - 4)}`]: at("tagValueBytes") }
          })
          expect(yield* publicState(edge.executionId)).toBe("waiting")
        }))

      t.test("worker calls: progress, fail, cancel, frames and worker ids past their limits are refused and change nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* limitFails(b.progress(c.handle, { message: over("textBytes") }), "textBytes")
          yield* limitFails(b.fail(c.handle, { reason: { message: over("textBytes") }, classification: "Permanent" }), "textBytes")
          yield* limitFails(
            b.fail(c.handle, { reason: { message: "m", detail: bytes(over("nameBytes")) }, classification: "Permanent" }),
            "nameBytes"
          )
          yield* limitFails(b.cancel(c.handle, { reason: over("textBytes") }), "textBytes")
          yield* limitFails(
            b.appendFrame(c.handle, { bytes: bytes("x"), kind: "stdout", correlationId: over("nameBytes") }),
            "nameBytes"
          )
          expect(yield* publicState(c.executionId)).toBe("active")
          const r = yield* b.readStream({
            executionId: c.executionId,
            attemptIndex: 0 as Ids.AttemptIndex,
            from: { _tag: "Start" },
            to: { _tag: "End" },
            countLimit: 10
          })
          expect(r.frames).toEqual([])
          yield* b.progress(c.handle, { message: at("textBytes") })
          const lane = yield* newLane()
          yield* limitFails(
            b.claim({
              lane,
              capabilities: { tokens: [] },
              policy: { workerId: Ids.unsafe.workerId(over("nameBytes")), workerInstanceId: Ids.unsafe.workerInstanceId("i"), leaseTtlMs: 1000 }
            }),
            "nameBytes"
          )
          yield* b.complete(c.handle)
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))

      t.test("operator calls: reasons past textBytes are refused and change nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* limitFails(b.revokeLease({ executionId: c.executionId, reason: over("textBytes") }), "textBytes")
          yield* limitFails(b.cancelExecution({ executionId: c.executionId, reason: over("textBytes") }), "textBytes")
          expect(yield* publicState(c.executionId)).toBe("active")
          const flowId = yield* createFlow()
          yield* limitFails(b.cancelFlow({ flowId, policy: "CancelAll", reason: over("textBytes") }), "textBytes")
          expect((yield* b.describeFlow(flowId)).pipe(Option.map((f) => f.cancelledAt))).toEqual(Option.some(undefined))
          yield* limitFails(b.createFlow({ flowId: yield* Ids.newFlowId, namespace: NS, flowKind: over("nameBytes") }), "nameBytes")
        }))

      t.test("signals and suspensions: names, keys, tokens, bindings and condition size past their limits are refused", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const s = yield* suspendSingle(c.handle)
          const args = yield* signalArgs({ executionId: c.executionId, waitpointId: s.waitpointId, token: s.token })
          for (const field of ["signalName", "signalCategory", "sourceType", "sourceIdentity", "correlationId", "idempotencyKey"]) {
            yield* limitFails(b.deliverSignal({ ...args, [field]: over("nameBytes") }), "nameBytes")
          }
          yield* limitFails(b.deliverSignal({ ...args, waitpointToken: over("tokenBytes") }), "tokenBytes")
          expect(yield* publicState(c.executionId)).toBe("suspended")

          const d = yield* createAndClaim()
          const base = {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [{ _tag: "Fresh" as const, waitpointId: yield* Ids.newWaitpointId, waitpointKey: "k0" }],
            resumeCondition: { _tag: "Single" as const, waitpointKey: "k0", matcher: { _tag: "Wildcard" as const } }
          }
          yield* limitFails(b.suspend(d.handle, { ...base, reasonCode: over("nameBytes") }), "nameBytes")
          yield* limitFails(b.suspend(d.handle, { ...base, continuationMetadataPointer: over("textBytes") }), "textBytes")
          const many: Array<M.WaitpointBinding> = []
          for (let i = 0; i <= Limits.waitpointsPerSuspend; i++) {
            many.push({ _tag: "Fresh", waitpointId: yield* Ids.newWaitpointId, waitpointKey: `k${i}` })
          }
          yield* limitFails(
            b.suspend(d.handle, {
              ...base,
              waitpoints: many,
              resumeCondition: {
                _tag: "Composite",
                body: { _tag: "Count", n: 1, countKind: "DistinctWaitpoints", waitpoints: many.map((_, i) => `k${i}`) }
              }
            }),
            "waitpointsPerSuspend"
          )
          const leaves: Array<M.ResumeCondition> = Array.from(
            { length: Limits.conditionNodes },
            () => ({ _tag: "Single", waitpointKey: "k0", matcher: { _tag: "Wildcard" } })
          )
          yield* limitFails(
            b.suspend(d.handle, { ...base, resumeCondition: { _tag: "Composite", body: { _tag: "AllOf", members: leaves } } }),
            "conditionNodes"
          )
          yield* limitFails(
            b.suspend(d.handle, {
              ...base,
              resumeCondition: { _tag: "Single", waitpointKey: "k0", matcher: { _tag: "ByName", name: over("nameBytes") } }
            }),
            "nameBytes"
          )
          expect(yield* publicState(d.executionId)).toBe("active")
        }))

      t.test("budgets and usage: dimensions, names and dedup keys past their limits are refused and count nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const budgetId = yield* createBudget([["tokens", 100, 0]])
          const dims = Array.from({ length: Limits.budgetDimensions + 1 }, (_, i) => `d${i}`)
          yield* limitFails(
            b.reportUsageAdmin({ budgetId, dimensions: dims, deltas: dims.map(() => 1) }),
            "budgetDimensions"
          )
          yield* limitFails(b.reportUsageAdmin({ budgetId, dimensions: [over("nameBytes")], deltas: [1] }), "nameBytes")
          yield* limitFails(
            b.reportUsageAdmin({ budgetId, dimensions: ["tokens"], deltas: [1], dedupKey: over("nameBytes") }),
            "nameBytes"
          )
          const c = yield* createAndClaim()
          yield* limitFails(
            b.reportUsage(c.handle, { budgetId, dimensions: { custom: { tokens: 1 }, dedupKey: over("nameBytes") } }),
            "nameBytes"
          )
          expect((yield* b.getBudgetStatus(budgetId)).usage).toEqual({})
          yield* limitFails(
            b.createBudget({
              budgetId: yield* Ids.newBudgetId,
              scopeType: "tenant",
              scopeId: over("nameBytes"),
              dimensions: [],
              hardLimits: [],
              softLimits: []
            }),
            "nameBytes"
          )
        }))

      t.test("flow edges and HMAC administration: past their limits they are refused", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const flowId = yield* createFlow()
          const up = yield* create({ flowId })
          const down = yield* create({ flowId })
          yield* b.addExecutionToFlow({ flowId, executionId: up.executionId })
          yield* b.addExecutionToFlow({ flowId, executionId: down.executionId })
          const edge = {
            flowId,
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: up.executionId,
            downstreamExecutionId: down.executionId,
            expectedGraphRevision: 2
          }
          yield* limitFails(b.stageDependencyEdge({ ...edge, dataPassingRef: over("textBytes") }), "textBytes")
          yield* limitFails(b.stageDependencyEdge({ ...edge, dependencyKind: over("nameBytes") }), "nameBytes")
          expect((yield* b.describeFlow(flowId)).pipe(Option.map((f) => f.edgeCount))).toEqual(Option.some(0))
          yield* limitFails(
            b.rotateWaitpointHmacSecretAll({ newKid: over("nameBytes"), newSecretHex: "ab".repeat(32), graceMs: 0 }),
            "nameBytes"
          )
          yield* limitFails(
            b.rotateWaitpointHmacSecretAll({ newKid: "lim-k", newSecretHex: "ab".repeat(Limits.secretHexChars), graceMs: 0 }),
            "secretHexChars"
          )
          yield* limitFails(b.seedWaitpointHmacSecret({ kid: SEED_KID, secretHex: "ab".repeat(Limits.secretHexChars) }), "secretHexChars")
        }))
    })

    describe("batches", () => {
      t.test("createExecutions: more than batchItems items, or more than batchBytes in all, writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const item = (executionId: ExecutionId, payload?: Uint8Array) => ({
            executionId,
            namespace: NS,
            laneId: lane,
            executionKind: "limits",
            ...(payload === undefined ? {} : { inputPayload: payload })
          })
          const ids: Array<ExecutionId> = []
          for (let i = 0; i <= Limits.batchItems; i++) ids.push(yield* Ids.executionIdSolo(lane))
          yield* limitFails(b.createExecutions(ids.map((id) => item(id))), "batchItems")
          yield* isAbsent(ids[0]!)
          // three payloads of 6 MiB: each within payloadBytes, 18 MiB in all
          const big = new Uint8Array(6 * 1024 * 1024)
          yield* limitFails(b.createExecutions(ids.slice(0, 3).map((id) => item(id, big))), "batchBytes")
          for (const id of ids.slice(0, 3)) yield* isAbsent(id)
        }))

      t.test("completeMany: more than batchBytes of results completes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const handles: Array<M.Handle> = []
          for (let i = 0; i < 3; i++) {
            yield* create({ laneId: lane })
            handles.push(yield* claimSome(lane))
          }
          const big = new Uint8Array(6 * 1024 * 1024)
          yield* limitFails(b.completeMany(handles.map((handle) => ({ handle, payload: big }))), "batchBytes")
          const done = yield* b.completeMany(handles.map((handle) => ({ handle })))
          expect(done.map((x) => x._tag)).toEqual(["Right", "Right", "Right"])
        }))

      t.test("completeAndClaim: the claims' inputs total at most batchBytes; a claim past it comes without", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const big = new Uint8Array(7 * 1024 * 1024).fill(7)
          const ids: Array<ExecutionId> = []
          for (let i = 0; i < 3; i++) ids.push((yield* create({ laneId: lane, inputPayload: big })).executionId)
          const r = yield* b.completeAndClaim([], { args: claimArgs(lane), max: 3 })
          expect(r.claimed.length).toBe(3)
          const claimedIds = r.claimed.map(({ handle }) => payloadOf(handle).executionId)
          expect([...claimedIds].sort()).toEqual([...ids].sort())
          expect(r.claimed.map(({ input }) => Option.map(input, (i) => [i.executionId, i.payload.length]))).toEqual([
            Option.some([claimedIds[0], big.length]),
            Option.some([claimedIds[1], big.length]),
            Option.none()
          ])
          expect(Option.map(yield* b.getExecutionInput(claimedIds[2]!), (i) => i.payload.length))
            .toEqual(Option.some(big.length))
        }))

      t.test("createFlowGraph: more than flowGraphMembers members, flowGraphEdges edges or flowGraphTags tags writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const flowId = yield* Ids.newFlowId
          const members: Array<M.CreateExecutionArgsInput> = []
          for (let i = 0; i <= Limits.flowGraphMembers; i++) members.push(yield* member(flowId, lane))
          yield* limitFails(b.createFlowGraph({ flow: { flowId, namespace: NS }, members }), "flowGraphMembers")
          const few = members.slice(0, 3)
          const edges: Array<M.FlowGraphEdge> = []
          for (let i = 0; i <= Limits.flowGraphEdges; i++) {
            edges.push({
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: few[0]!.executionId,
              downstreamExecutionId: few[1 + (i % 2)]!.executionId,
              dependencyKind: "success_only"
            })
          }
          yield* limitFails(b.createFlowGraph({ flow: { flowId, namespace: NS }, members: few, edges }), "flowGraphEdges")
          const tagged = members.slice(0, Math.ceil(Limits.flowGraphTags / Limits.tagsPerExecution) + 1)
            .map((m) => ({ ...m, tags: tags(Limits.tagsPerExecution) }))
          yield* limitFails(b.createFlowGraph({ flow: { flowId, namespace: NS }, members: tagged }), "flowGraphTags")
          expect(Option.isNone(yield* b.describeFlow(flowId))).toBe(true)
          yield* isAbsent(few[0]!.executionId)
        }))

      t.test("extendFlow: more than flowExtendMembers members, flowExtendEdges edges, flowExtendTags tags or batchBytes writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const flowId = yield* Ids.newFlowId
          yield* b.createFlow({ flowId, namespace: NS })
          const before = Option.getOrThrow(yield* b.describeFlow(flowId))
          const members: Array<M.CreateExecutionArgsInput> = []
          for (let i = 0; i <= Limits.flowExtendMembers; i++) members.push(yield* member(flowId, lane))
          yield* limitFails(b.extendFlow({ flowId, members }), "flowExtendMembers")
          const few = members.slice(0, 3)
          const edges: Array<M.FlowGraphEdge> = []
          for (let i = 0; i <= Limits.flowExtendEdges; i++) {
            edges.push({
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: few[0]!.executionId,
              downstreamExecutionId: few[1 + (i % 2)]!.executionId,
              dependencyKind: "success_only"
            })
          }
          yield* limitFails(b.extendFlow({ flowId, members: few, edges }), "flowExtendEdges")
          const tagged = members.slice(0, Math.ceil(Limits.flowExtendTags / Limits.tagsPerExecution) + 1)
            .map((m) => ({ ...m, tags: tags(Limits.tagsPerExecution) }))
          yield* limitFails(b.extendFlow({ flowId, members: tagged }), "flowExtendTags")
          const big = new Uint8Array(6 * 1024 * 1024)
          yield* limitFails(b.extendFlow({ flowId, members: few.map((m) => ({ ...m, inputPayload: big })) }), "batchBytes")
          expect(Option.getOrThrow(yield* b.describeFlow(flowId))).toEqual(before)
          yield* isAbsent(few[0]!.executionId)
        }))

      // thousands of writes in 20 calls: a loaded machine takes longer than a test's usual 30 s
      t.test("a flow takes at most flowMembers members and flowEdges edges; a call past them writes nothing; the full flow reads, replays and cancels", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const flowId = yield* createFlow()
          // a createFlowGraph can never pass the budgets of a flow on its own
          expect(Limits.flowGraphMembers).toBeLessThanOrEqual(Limits.flowMembers)
          expect(Limits.flowGraphEdges).toBeLessThanOrEqual(Limits.flowEdges)
          // the flow grows to both budgets in extendFlow calls of flowExtendMembers members and
          // flowExtendEdges edges, every edge out of the first member (each member gets a join group)
          const perCall = Limits.flowExtendMembers
          const calls = Limits.flowMembers / perCall
          expect(Number.isInteger(calls)).toBe(true)
          expect(calls * Limits.flowExtendEdges).toBe(Limits.flowEdges)
          const ids: Array<ExecutionId> = []
          let last: Parameters<typeof b.extendFlow>[0] | undefined
          for (let c = 0; c < calls; c++) {
            const members: Array<M.CreateExecutionArgsInput> = []
            for (let i = 0; i < perCall; i++) members.push(yield* member(flowId, lane))
            ids.push(...members.map((m) => m.executionId))
            const targets = ids.slice(Math.max(1, c * perCall))
            const edges: Array<M.FlowGraphEdge> = []
            for (let i = 0; i < Limits.flowExtendEdges; i++) {
              edges.push({
                edgeId: yield* Ids.newEdgeId,
                upstreamExecutionId: ids[0]!,
                downstreamExecutionId: targets[i % targets.length]!,
                dependencyKind: "success_only"
              })
            }
            last = { flowId, members, edges }
            expect((yield* b.extendFlow(last))._tag).toBe("Extended")
          }
          const full = Option.getOrThrow(yield* b.describeFlow(flowId))
          expect(full).toMatchObject({ nodeCount: Limits.flowMembers, edgeCount: Limits.flowEdges })
          expect(full.edgeGroups.length).toBe(Limits.flowMembers - 1)
          // past the member budget: one more member, by either call
          const extra = yield* member(flowId, lane)
          yield* limitFails(b.extendFlow({ flowId, members: [extra] }), "flowMembers")
          yield* isAbsent(extra.executionId)
          expect((yield* b.createExecution(extra))._tag).toBe("Created")
          yield* limitFails(b.addExecutionToFlow({ flowId, executionId: extra.executionId }), "flowMembers")
          expect((yield* snapshot(extra.executionId)).flowId).toBeUndefined()
          // past the edge budget: one more edge, by either call
          const edge = {
            edgeId: yield* Ids.newEdgeId,
            upstreamExecutionId: ids[1]!,
            downstreamExecutionId: ids[2]!,
            dependencyKind: "success_only"
          }
          yield* limitFails(b.extendFlow({ flowId, edges: [edge] }), "flowEdges")
          yield* limitFails(
            b.stageDependencyEdge({ flowId, ...edge, expectedGraphRevision: full.graphRevision }),
            "flowEdges"
          )
          expect(Option.isNone(yield* b.describeEdge({ flowId, edgeId: edge.edgeId }))).toBe(true)
          // a dependency applied for an edge never staged counts as an edge too (the groups below unchanged)
          yield* limitFails(b.applyDependencyToChild({ flowId, ...edge }), "flowEdges")
          expect(Option.getOrThrow(yield* b.describeFlow(flowId))).toEqual(full)
          // what adds nothing still answers: a replay, a member again; the full flow lists and cancels
          expect((yield* b.extendFlow(last!))._tag).toBe("AlreadySatisfied")
          expect((yield* b.addExecutionToFlow({ flowId, executionId: ids[5]! }))._tag).toBe("AlreadyMember")
          const out = yield* b.listEdges({ flowId, direction: { _tag: "Outgoing", fromNode: ids[0]! } })
          expect(out.length).toBe(Limits.flowEdges)
          const r = yield* b.cancelFlow({ flowId, policy: "CancelAll" })
          expect(r.memberExecutionIds.length).toBe(Limits.flowMembers)
        }), 300_000)
    })

    describe("reads and documents", () => {
      const frameOf = (size: number, fill: number) => new Uint8Array(size).fill(fill)
      const readAll = (executionId: ExecutionId, countLimit: number) =>
        Effect.gen(function*() {
          const b = yield* backend
          const pages: Array<M.StreamFrames> = []
          let from: M.StreamCursor = { _tag: "Start" }
          for (let i = 0; i < 20; i++) {
            const page: M.StreamFrames = yield* b.readStream({
              executionId,
              attemptIndex: 0 as Ids.AttemptIndex,
              from,
              to: { _tag: "End" },
              countLimit
            })
            pages.push(page)
            if (page.nextFrom === undefined) break
            from = { _tag: "At", id: page.nextFrom }
          }
          return pages
        })

      t.test("readStream: a page stops at readPageBytes and nextFrom reads on; every frame comes back once, in order", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const ids: Array<string> = []
          for (let i = 0; i < 40; i++) {
            ids.push((yield* b.appendFrame(c.handle, { bytes: frameOf(Limits.frameBytes, 97 + (i % 26)), kind: "stdout" })).streamId)
          }
          const pages = yield* readAll(c.executionId, 100)
          const perPage = Limits.readPageBytes / Limits.frameBytes
          expect(pages.map((p) => p.frames.length)).toEqual([perPage, perPage, 40 - 2 * perPage])
          expect(pages[0]!.nextFrom).toBe(ids[perPage])
          expect(pages.flatMap((p) => p.frames.map((f) => f.id))).toEqual(ids)
          // the tail's page has the same budget
          const tail = yield* b.tailStream({
            executionId: c.executionId,
            attemptIndex: 0 as Ids.AttemptIndex,
            after: { _tag: "At", id: "0-0" },
            blockMs: 0,
            countLimit: 100
          })
          expect(tail.frames.map((f) => f.id)).toEqual(ids.slice(0, perPage))
          // a countLimit within the budget is served as asked, and says nothing more
          const two = yield* readAll(c.executionId, 2)
          expect(two.map((p) => [p.frames.length, p.nextFrom])).toEqual([[2, undefined]])
        }))

      t.test("readStream: a page holds at most readPageFrames frames", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const n = Limits.readPageFrames + 1
          const ids: Array<string> = []
          for (let i = 0; i < n; i++) ids.push((yield* b.appendFrame(c.handle, { bytes: bytes(`f${i}`), kind: "stdout" })).streamId)
          const pages = yield* readAll(c.executionId, Limits.streamCountLimit)
          expect(pages.map((p) => p.frames.length)).toEqual([Limits.readPageFrames, 1])
          expect(pages[0]!.nextFrom).toBe(ids[Limits.readPageFrames])
          expect(pages.flatMap((p) => p.frames.map((f) => f.id))).toEqual(ids)
          // asked for exactly a page: a full page and no nextFrom (the caller reads on from the last id)
          const exact = yield* readAll(c.executionId, Limits.readPageFrames)
          expect(exact.map((p) => [p.frames.length, p.nextFrom])).toEqual([[Limits.readPageFrames, undefined]])
        }))

      t.test("a summary patch past summaryDocumentBytes is refused and writes nothing; a patch that fits still applies", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const patch = (doc: Record<string, unknown>) =>
            b.appendFrame(c.handle, {
              bytes: bytes(JSON.stringify(doc)),
              kind: "event",
              mode: { _tag: "DurableSummary", patchKind: "json-merge-patch" }
            })
          const chunk = "s".repeat(60_000)
          const fits = Math.floor(Limits.summaryDocumentBytes / 60_020)
          for (let i = 0; i < fits; i++) yield* patch({ [`k${i}`]: chunk })
          const before = Option.getOrThrow(yield* b.readSummary({ executionId: c.executionId, attemptIndex: 0 as Ids.AttemptIndex }))
          expect(before.version).toBe(fits)
          yield* limitFails(patch({ k9: "t".repeat(Limits.summaryDocumentBytes - fits * 60_000) }), "summaryDocumentBytes")
          const after = Option.getOrThrow(yield* b.readSummary({ executionId: c.executionId, attemptIndex: 0 as Ids.AttemptIndex }))
          expect(after.version).toBe(fits)
          expect(after.documentJson).toEqual(before.documentJson)
          const frames = yield* b.readStream({
            executionId: c.executionId,
            attemptIndex: 0 as Ids.AttemptIndex,
            from: { _tag: "Start" },
            to: { _tag: "End" },
            countLimit: 100
          })
          expect(frames.frames).toHaveLength(fits)
          expect((yield* patch({ k0: null, k9: "t".repeat(30_000) })).summaryVersion).toBe(fits + 1)
        }))
    })
  })
