/**
 * Bad input of every boundary kind (docs/guide.md#bad-input, src/internal/
 * boundary.ts + validation.ts): ids, lanes, capability tokens and their
 * bounds, policy JSON, payload sizes, tag keys, frame types (streams.ts),
 * waitpoint keys, tokens (signals.ts), handles, suspend arguments, join
 * policies. Each is answered by `Validation` with nothing written — checked
 * by reading back.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect } from "effect"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import {
  advance,
  backend,
  buildFlow,
  bytes,
  claimSome,
  create,
  createAndClaim,
  createFlow,
  ensureHmac,
  flowSnapshot,
  isAbsent,
  newLane,
  NS,
  payloadOf,
  publicState,
  snapshot,
  suspendSingle,
  type Tester,
  validationFails
} from "./helpers.js"

/** A createExecution call with a valid, unused id on a valid lane, plus `patch`. */
const createWith = (patch: Partial<M.CreateExecutionArgsInput>) =>
  Effect.gen(function*() {
    const b = yield* backend
    const lane = yield* newLane()
    const executionId = yield* Ids.executionIdSolo(lane)
    return {
      executionId,
      run: b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "bad", ...patch })
    }
  })

export const validation = (t: Tester) =>
  describe("input validation (nothing written)", () => {
    describe("create_execution", () => {
      t.test("malformed execution ids are InvalidInput", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const uuid = yield* Ids.randomUuid
          for (const id of ["", "nope", uuid, "{fp:1}", `{fp:x}:${uuid}`, `{fp:70000}:${uuid}`, "{fp:1}:not-a-uuid", `fp:1:${uuid}`]) {
            yield* validationFails(
              b.createExecution({ executionId: id as ExecutionId, namespace: NS, laneId: lane, executionKind: "k" }),
              "InvalidInput",
              "executionId"
            )
          }
          const listed = yield* b.listLanes({ cursor: Ids.unsafe.laneId(lane.slice(0, -1)), limit: 5 })
          expect(listed.lanes).not.toContain(lane)
        }))

      t.test("lane ids must be 1–64 bytes of printable ASCII", () =>
        Effect.gen(function*() {
          for (const laneId of ["", "x".repeat(65), "tab\there", "new\nline", "caf\u00e9", "del\u007f"]) {
            const c = yield* createWith({ laneId: laneId as M.CreateExecutionArgs["laneId"] })
            yield* validationFails(c.run, "InvalidInput", "laneId")
            yield* isAbsent(c.executionId)
          }
          // the bounds themselves are fine: 64 bytes, spaces allowed
          const edge = yield* create({ laneId: Ids.unsafe.laneId(`${"y".repeat(60)} ${(yield* Ids.randomUuid).slice(0, 3)}`) })
          expect(yield* publicState(edge.executionId)).toBe("waiting")
        }))

      t.test("tag keys must be namespaced (^[a-z][a-z0-9_]*\\. + non-dot): InvalidTagKey with the key", () =>
        Effect.gen(function*() {
          for (const key of ["plain", "Upper.case", "1digit.x", "a.", "a..b", ".lead", "sp ace.x", "a-b.c"]) {
            const c = yield* createWith({ tags: { "ok.key": "v", [key]: "v" } })
            const e = yield* validationFails(c.run, "InvalidTagKey")
            expect(e.detail).toBe(key)
            yield* isAbsent(c.executionId)
          }
          const good = yield* create({ tags: { "cairn.task_id": "42", "a.b": "x", "ns_2.k.more": "y" } })
          expect((yield* snapshot(good.executionId)).tags).toEqual({ "cairn.task_id": "42", "a.b": "x", "ns_2.k.more": "y" })
        }))

      t.test("policy JSON problems are InvalidPolicyJson", () =>
        Effect.gen(function*() {
          const cases: ReadonlyArray<readonly [string, string | undefined]> = [
            ["{", "malformed"],
            ["[1,2]", "malformed"],
            ["42", "malformed"],
            ["null", "malformed"],
            ["{\"routing_requirements\":5}", "routing_requirements:not_object"],
            ["{\"routing_requirements\":[\"gpu\"]}", "routing_requirements:not_object"],
            ["{\"retry_policy\":{\"max_retries\":-1}}", undefined],
            ["{\"priority\":\"high\"}", undefined],
            ["{\"retry_policy\":{\"backoff\":{\"type\":\"fixed\",\"delay_ms\":\"soon\"}}}", undefined]
          ]
          for (const [policy, detail] of cases) {
            const c = yield* createWith({ policy })
            yield* validationFails(c.run, "InvalidPolicyJson", detail)
            yield* isAbsent(c.executionId)
          }
          // blank text means no policy
          const blank = yield* create({ policy: "  " })
          expect(yield* publicState(blank.executionId)).toBe("waiting")
        }))

      t.test("required capabilities: every token rule and both bounds (InvalidCapabilities)", () =>
        Effect.gen(function*() {
          const json = (caps: unknown) => JSON.stringify({ routing_requirements: { required_capabilities: caps } })
          const cases: ReadonlyArray<readonly [unknown, string]> = [
            ["gpu", "required:not_array"],
            [[1], "required:non_string_token"],
            [[""], "required:empty_token"],
            [["a,b"], "required:comma_in_token"],
            [["a b"], "required:control_or_whitespace"],
            [["tab\t"], "required:control_or_whitespace"],
            [["del\u007f"], "required:control_or_whitespace"],
            [Array.from({ length: 257 }, (_, i) => `t${i}`), "required:too_many_tokens"],
            [["x".repeat(4_097)], "required:too_many_bytes"],
            [["x".repeat(2_048), "y".repeat(2_048)], "required:too_many_bytes"]
          ]
          for (const [caps, detail] of cases) {
            const c = yield* createWith({ policy: json(caps) })
            const e = yield* validationFails(c.run, "InvalidCapabilities")
            expect(e.detail).toBe(detail)
            yield* isAbsent(c.executionId)
          }
          // the same through a typed policy
          const typed = yield* createWith({ policy: { routingRequirements: { requiredCapabilities: ["has space"] } } })
          yield* validationFails(typed.run, "InvalidCapabilities", "required:control_or_whitespace")
          yield* isAbsent(typed.executionId)
          // inclusive bounds and UTF-8 above 0x7F are accepted
          const many = yield* create({ policy: json(Array.from({ length: 256 }, (_, i) => `t${i}`)) })
          const wide = yield* create({ policy: json(["x".repeat(4_096)]) })
          const utf8 = yield* create({ policy: json(["gpu\u00e9"]) })
          for (const id of [many.executionId, wide.executionId, utf8.executionId]) {
            expect(yield* publicState(id)).toBe("waiting")
          }
          yield* claimSome(utf8.lane, { tokens: ["gpu\u00e9"] })
        }))

      t.test("an input payload over 8 MiB is PayloadTooLarge", () =>
        Effect.gen(function*() {
          const c = yield* createWith({ inputPayload: new Uint8Array(8 * 1024 * 1024 + 1) })
          yield* validationFails(c.run, "PayloadTooLarge")
          yield* isAbsent(c.executionId)
        }))

      t.test("non-integer priority or times are InvalidInput", () =>
        Effect.gen(function*() {
          for (const patch of [{ priority: 1.5 }, { delayUntil: 10.25 }, { executionDeadlineAt: Number.NaN }]) {
            const c = yield* createWith(patch)
            yield* validationFails(c.run, "InvalidInput")
            yield* isAbsent(c.executionId)
          }
        }))
    })

    describe("claim", () => {
      t.test("worker capabilities are validated (InvalidCapabilities worker:…) and nothing is claimed", () =>
        Effect.gen(function*() {
          const c = yield* create()
          const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
            [[""], "worker:empty_token"],
            [["a,b"], "worker:comma_in_token"],
            [["a b"], "worker:control_or_whitespace"],
            [Array.from({ length: 257 }, (_, i) => `t${i}`), "worker:too_many_tokens"],
            [["x".repeat(4_097)], "worker:too_many_bytes"]
          ]
          const b = yield* backend
          for (const [tokens, detail] of cases) {
            const e = yield* validationFails(
              b.claim({
                lane: c.lane,
                capabilities: { tokens },
                policy: { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("i"), leaseTtlMs: 1_000 }
              }),
              "InvalidCapabilities"
            )
            expect(e.detail).toBe(detail)
            yield* validationFails(
              b.claimForWorker({
                laneId: c.lane,
                workerId: Ids.unsafe.workerId("w"),
                workerInstanceId: Ids.unsafe.workerInstanceId("i"),
                workerCapabilities: tokens,
                grantTtlMs: 1_000
              }),
              "InvalidCapabilities",
              detail
            )
          }
          expect(yield* publicState(c.executionId)).toBe("waiting")
          yield* claimSome(c.lane, { tokens: Array.from({ length: 256 }, (_, i) => `t${i}`) })
        }))

      t.test("a bad lane or lease TTL is InvalidInput", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* create()
          const policy = { workerId: Ids.unsafe.workerId("w"), workerInstanceId: Ids.unsafe.workerInstanceId("i") }
          for (const leaseTtlMs of [0, -5, 1.5, 2 ** 32]) {
            yield* validationFails(b.claim({ lane: c.lane, capabilities: { tokens: [] }, policy: { ...policy, leaseTtlMs } }), "InvalidInput")
          }
          yield* validationFails(
            b.claim({ lane: "" as M.ClaimArgs["lane"], capabilities: { tokens: [] }, policy: { ...policy, leaseTtlMs: 1 } }),
            "InvalidInput"
          )
          yield* validationFails(
            b.claimForWorker({ laneId: c.lane, ...policy, workerCapabilities: [], grantTtlMs: 0 }),
            "InvalidInput"
          )
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))
    })

    describe("handles", () => {
      const otherTag = (label: M.BackendTag): M.BackendTag => (label === "valkey" ? "postgres" : "valkey")
      const otherTagByte = (label: M.BackendTag): number => (label === "valkey" ? 0x02 : 0x01)

      t.test("a handle of another backend, or with corrupt bytes, is rejected and changes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const h = c.handle
          const other = otherTag(b.backendLabel)
          const e1 = yield* validationFails(b.complete({ ...h, backend: other }), "HandleFromOtherBackend")
          expect(e1.detail).toBe(`expected=${b.backendLabel} actual=${other}`)
          const embedded = Uint8Array.from(h.opaque)
          embedded[2] = otherTagByte(b.backendLabel)
          const e2 = yield* validationFails(b.renew({ ...h, opaque: embedded }), "HandleFromOtherBackend")
          expect(e2.detail).toContain("(embedded tag)")
          const corrupt: ReadonlyArray<Uint8Array> = [
            h.opaque.slice(0, h.opaque.length - 1),
            Uint8Array.from([...h.opaque, 0]),
            Uint8Array.from([0x07, ...h.opaque.slice(1)]),
            Uint8Array.from([h.opaque[0]!, 0x09, ...h.opaque.slice(2)]),
            new Uint8Array(0)
          ]
          for (const opaque of corrupt) {
            const e = yield* validationFails(b.complete({ ...h, opaque }), "Corruption")
            expect(e.detail.startsWith("handle_codec:")).toBe(true)
          }
          yield* validationFails(b.fail({ ...h, backend: other }, { reason: { message: "x" }, classification: "Permanent" }), "HandleFromOtherBackend")
          yield* validationFails(b.cancel({ ...h, backend: other }, { reason: "x" }), "HandleFromOtherBackend")
          yield* validationFails(b.appendFrame({ ...h, backend: other }, { bytes: bytes("x"), kind: "stdout" }), "HandleFromOtherBackend")
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* b.complete(h)
        }))

      t.test("the kind of a handle is informational except for suspend", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* b.renew({ ...c.handle, kind: "resumed" })
          yield* b.complete({ ...c.handle, kind: "resumed" })
          expect(yield* publicState(c.executionId)).toBe("completed")
        }))
    })

    describe("lease-bound arguments", () => {
      t.test("progress percent must be an integer 0..100; a rejected call does not touch the execution", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const before = (yield* snapshot(c.executionId)).lastMutationAt
          yield* advance(10)
          for (const percent of [101, -1, 1.5, Number.NaN]) {
            yield* validationFails(b.progress(c.handle, { percent }), "InvalidInput", "percent")
          }
          expect((yield* snapshot(c.executionId)).lastMutationAt).toBe(before)
          yield* b.progress(c.handle, { percent: 100 })
          yield* b.progress(c.handle, { percent: 0 })
        }))

      t.test("complete with a result over 8 MiB is PayloadTooLarge; fail/delay with bad arguments are InvalidInput", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          yield* validationFails(b.complete(c.handle, { payload: new Uint8Array(8 * 1024 * 1024 + 1) }), "PayloadTooLarge")
          yield* validationFails(
            b.fail(c.handle, { reason: { message: "x" }, classification: "Weird" as M.FailureClass }),
            "InvalidInput"
          )
          yield* validationFails(b.delay(c.handle, { delayUntil: 1.5 }), "InvalidInput")
          yield* validationFails(b.delay(c.handle, { delayUntil: Number.NaN }), "InvalidInput")
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* b.complete(c.handle)
        }))
    })

    describe("suspend arguments (checked before any I/O)", () => {
      const fresh = (waitpointKey: string) =>
        Effect.map(Ids.newWaitpointId, (waitpointId) => ({ _tag: "Fresh" as const, waitpointId, waitpointKey }))
      const single = (k: string, name?: string): M.ResumeCondition => ({
        _tag: "Single",
        waitpointKey: k,
        matcher: name === undefined ? { _tag: "Wildcard" } : { _tag: "ByName", name }
      })
      const allOf = (...members: ReadonlyArray<M.ResumeCondition>): M.ResumeCondition => ({
        _tag: "Composite",
        body: { _tag: "AllOf", members }
      })
      const count = (n: number, countKind: M.CountKind, waitpoints: ReadonlyArray<string>): M.ResumeCondition => ({
        _tag: "Composite",
        body: { _tag: "Count", n, countKind, waitpoints }
      })

      t.test("every structural rule has its exact InvalidInput detail, and the lease is kept", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const pendingId = yield* Ids.newWaitpointId
          let nested: M.ResumeCondition = single("a")
          for (let i = 0; i < 5; i++) nested = allOf(nested)
          const cases: ReadonlyArray<readonly [string, M.SuspendArgsInput["waitpoints"], M.ResumeCondition, Partial<M.SuspendArgsInput>]> = [
            ["waitpoints_empty", [], single("a"), {}],
            ["waitpoint_key_mismatch", [yield* fresh("a")], single("b"), {}],
            [
              "additional_waitpoint_binding_must_be_fresh at waitpoints[1]",
              [yield* fresh("a"), { _tag: "UsePending", waitpointId: pendingId }],
              allOf(single("a")),
              {}
            ],
            [
              "additional_waitpoint_binding_empty_key at waitpoints[1]",
              [yield* fresh("a"), yield* fresh("")],
              allOf(single("a")),
              {}
            ],
            [
              "referenced_waitpoint_key_missing_binding: c",
              [yield* fresh("a"), yield* fresh("b")],
              allOf(single("a"), single("c")),
              {}
            ],
            [
              "extra_binding_not_referenced_by_condition: b",
              [yield* fresh("a"), yield* fresh("b")],
              allOf(single("a")),
              {}
            ],
            [
              "use_pending_with_extras_unsupported",
              [{ _tag: "UsePending", waitpointId: pendingId }, yield* fresh("b")],
              allOf(single("a"), single("b")),
              {}
            ],
            ["timeout_only_without_deadline", [yield* fresh("a")], { _tag: "TimeoutOnly" }, {}],
            ["resume_condition: empty signal name (use Wildcard instead)", [yield* fresh("a")], single("a", ""), {}],
            ["allof_empty_members at path <root>", [yield* fresh("a")], allOf(), {}],
            ["allof_empty_members at path members[1]", [yield* fresh("a")], allOf(single("a"), allOf()), {}],
            ["count_n_zero at path <root>", [yield* fresh("a")], count(0, "DistinctSignals", ["a"]), {}],
            ["count_waitpoints_empty at path <root>", [yield* fresh("a")], count(1, "DistinctSignals", []), {}],
            [
              "count_exceeds_waitpoint_set: n=3 > waitpoints.len()=2 at path <root>",
              [yield* fresh("a")],
              count(3, "DistinctWaitpoints", ["a", "b"]),
              {}
            ],
            ["depth 5 exceeds cap 4 at path members[0].members[0].members[0].members[0]", [yield* fresh("a")], nested, {}]
          ]
          for (const [detail, waitpoints, resumeCondition, extra] of cases) {
            const e = yield* validationFails(
              b.suspend(c.handle, { suspensionId: yield* Ids.newSuspensionId, waitpoints, resumeCondition, ...extra }),
              "InvalidInput"
            )
            expect([detail, e.detail]).toEqual([detail, detail])
          }
          // a fresh waitpoint key over 256 bytes
          yield* validationFails(
            b.suspend(c.handle, {
              suspensionId: yield* Ids.newSuspensionId,
              waitpoints: [yield* fresh("k".repeat(257))],
              resumeCondition: single("k".repeat(257))
            }),
            "InvalidWaitpointKey"
          )
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* b.renew(c.handle)
          // the composite that is fine at depth 4 suspends
          let ok: M.ResumeCondition = single("a")
          for (let i = 0; i < 4; i++) ok = allOf(ok)
          const out = yield* b.suspend(c.handle, {
            suspensionId: yield* Ids.newSuspensionId,
            waitpoints: [yield* fresh("a")],
            resumeCondition: ok
          })
          expect(out._tag).toBe("Suspended")
        }))
    })

    describe("ids of reads and signals", () => {
      t.test("malformed ids on reads are InvalidInput", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const bad = "not-an-id"
          yield* validationFails(b.describeExecution(bad as ExecutionId), "InvalidInput")
          yield* validationFails(b.readExecutionState(bad as ExecutionId), "InvalidInput")
          yield* validationFails(b.readExecutionInfo(bad as ExecutionId), "InvalidInput")
          yield* validationFails(b.getExecutionResult(bad as ExecutionId), "InvalidInput")
          yield* validationFails(b.resolveExecutionFlowId(bad as ExecutionId), "InvalidInput")
          yield* validationFails(b.replayExecution(bad as ExecutionId), "InvalidInput")
          yield* validationFails(b.describeFlow(bad as M.FlowSnapshot["flowId"]), "InvalidInput")
          yield* validationFails(b.getBudgetStatus(bad as M.BudgetStatus["budgetId"]), "InvalidInput")
          yield* validationFails(b.resetBudget(bad as M.BudgetStatus["budgetId"]), "InvalidInput")
          yield* validationFails(
            b.listPendingWaitpoints({ executionId: bad as ExecutionId }),
            "InvalidInput"
          )
        }))

      t.test("malformed ids in a signal are InvalidInput and the suspension is untouched", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const s = yield* suspendSingle(c.handle)
          const good: M.DeliverSignalArgsInput = {
            executionId: c.executionId,
            waitpointId: s.waitpointId,
            signalId: yield* Ids.newSignalId,
            signalName: "go",
            waitpointToken: s.token
          }
          for (const patch of [{ signalId: "x" }, { waitpointId: "x" }, { executionId: "x" }]) {
            yield* validationFails(b.deliverSignal({ ...good, ...patch } as M.DeliverSignalArgsInput), "InvalidInput")
          }
          expect(yield* publicState(c.executionId)).toBe("suspended")
          expect((yield* b.deliverSignal(good))._tag).toBe("Accepted")
          expect(yield* publicState(c.executionId)).toBe("waiting")
        }))
    })

    describe("flows", () => {
      t.test("join policies are validated with the documented details; nothing is stored", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const { flowId, ids } = yield* buildFlow(2)
          const d = ids[1]!
          const bad: ReadonlyArray<readonly [unknown, string]> = [
            [{ _tag: "quorum", k: 0, onSatisfied: "let_run" }, "quorum k must be >= 1"],
            [{ _tag: "quorum", k: 2_147_483_648, onSatisfied: "let_run" }, "quorum k exceeds supported maximum"],
            [{ _tag: "majority" }, "unknown EdgeDependencyPolicy variant"],
            [{ _tag: "any_of" }, "on_satisfied required for any_of/quorum: cancel_remaining | let_run"],
            [{ _tag: "quorum", k: 1 }, "on_satisfied required for any_of/quorum: cancel_remaining | let_run"]
          ]
          for (const [policy, detail] of bad) {
            yield* validationFails(
              b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: d, policy: policy as M.EdgeDependencyPolicy }),
              "InvalidInput",
              detail
            )
          }
          expect((yield* flowSnapshot(flowId)).edgeGroups).toEqual([])
          expect(yield* b.setEdgeGroupPolicy({ flowId, downstreamExecutionId: d, policy: { _tag: "any_of", onSatisfied: "let_run" } }))
            .toEqual({ _tag: "Set" })
        }))

      t.test("malformed flow input is InvalidInput and creates nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* validationFails(b.createFlow({ flowId: "nope" as M.FlowSnapshot["flowId"], namespace: NS }), "InvalidInput")
          const flowId = yield* createFlow()
          yield* validationFails(
            b.cancelFlow({ flowId, policy: "Everything" as M.CancelFlowPolicy }),
            "InvalidInput"
          )
          expect((yield* flowSnapshot(flowId)).publicFlowState).toBe("open")
          yield* validationFails(
            b.stageDependencyEdge({
              flowId,
              edgeId: "e" as M.EdgeSnapshot["edgeId"],
              upstreamExecutionId: yield* Ids.executionIdForFlow(flowId),
              downstreamExecutionId: yield* Ids.executionIdForFlow(flowId),
              expectedGraphRevision: 0
            }),
            "InvalidInput"
          )
          yield* validationFails(
            b.stageDependencyEdge({
              flowId,
              edgeId: yield* Ids.newEdgeId,
              upstreamExecutionId: yield* Ids.executionIdForFlow(flowId),
              downstreamExecutionId: yield* Ids.executionIdForFlow(flowId),
              expectedGraphRevision: -1
            }),
            "InvalidInput"
          )
          expect(yield* flowSnapshot(flowId)).toMatchObject({ graphRevision: 0, edgeCount: 0 })
        }))
    })

    describe("list_pending_waitpoints limits", () => {
      t.test("limit is clamped to 1..1000, not rejected", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          for (let i = 0; i < 3; i++) {
            yield* b.createWaitpoint(c.handle, { waitpointKey: `k${i}`, expiresIn: Duration.minutes(10) })
          }
          const zero = yield* b.listPendingWaitpoints({ executionId: c.executionId, limit: 0 })
          expect(zero.entries.length).toBe(1)
          expect(zero.nextCursor).toBe(zero.entries[0]?.waitpointId)
          const huge = yield* b.listPendingWaitpoints({ executionId: c.executionId, limit: 1_000_000 })
          expect(huge.entries.length).toBe(3)
          expect(payloadOf(c.handle).executionId).toBe(c.executionId)
        }))
    })
  })
