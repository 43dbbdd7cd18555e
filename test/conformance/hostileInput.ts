/**
 * Hostile input (docs/guide.md, "Bad input"): missing argument objects,
 * malformed handles, values of the wrong type however big, deep or cyclic,
 * text that no store can hold (NUL, lone surrogates), ids in a spelling that
 * is not canonical or on a partition the deployment does not have, and keys
 * that are names of `Object.prototype`. Each is a typed `Validation` error
 * with a short detail, on every backend, and nothing is written — or, for
 * keys a record may hold, the key is stored as it is.
 */
import { describe, expect } from "@effect/vitest"
import { Duration, Effect, Either, Option } from "effect"
import { operationNames } from "../../src/EngineBackend.js"
import { MAX_VALIDATION_DETAIL } from "../../src/EngineError.js"
import * as Ids from "../../src/Ids.js"
import type { ExecutionId } from "../../src/Ids.js"
import type * as M from "../../src/Model.js"
import { passNames } from "../../src/Maintenance.js"
import {
  backend,
  bytes,
  create,
  createAndClaim,
  createBudget,
  ensureHmac,
  isAbsent,
  maintenance,
  newLane,
  NS,
  partitionKeyOf,
  publicState,
  snapshot,
  suspendSingle,
  type Tester,
  text,
  validationFails
} from "./helpers.js"

/** Calls an operation with arguments of any type (what an untyped caller can do). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const untyped = (f: unknown): ((...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, any>) =>
  f as (...args: ReadonlyArray<unknown>) => Effect.Effect<unknown, never>

const deepArray = (depth: number): unknown => {
  let v: unknown = 0
  for (let i = 0; i < depth; i++) v = [v]
  return v
}

const cyclic = (): unknown => {
  const o: Record<string, unknown> = {}
  o["self"] = o
  return o
}

/** Expects a `Validation` error whose detail is short. */
const refused = <A, R>(effect: Effect.Effect<A, unknown, R>, kind?: string) =>
  Effect.flatMap(Effect.either(Effect.catchAllDefect(effect, (d) => Effect.fail({ _tag: "Defect", defect: String(d) }))), (r) =>
    Effect.sync(() => {
      if (Either.isRight(r)) return expect.fail(`expected a Validation error, got success`)
      const e = r.left as { _tag?: unknown; kind?: unknown; detail?: unknown; defect?: unknown }
      expect(e._tag, `error: ${String(e.defect ?? e.detail ?? e._tag)}`).toBe("Validation")
      if (kind !== undefined) expect(e.kind, `detail: ${String(e.detail)}`).toBe(kind)
      expect(typeof e.detail === "string" && e.detail.length <= MAX_VALIDATION_DETAIL, `detail of ${String(e.detail).length} chars`)
        .toBe(true)
      return e as { readonly kind: string; readonly detail: string }
    }))

export const hostileInput = (t: Tester) =>
  describe("hostile input (typed Validation, nothing written)", () => {
    describe("argument objects", () => {
      t.test("every operation refuses a missing or null argument with Validation, never a defect", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const before = yield* snapshot(c.executionId)
          const noArgs = new Set(["ping", "prepare"])
          const handleFirst = new Set([
            "renew",
            "progress",
            "appendFrame",
            "complete",
            "fail",
            "cancel",
            "suspend",
            "createWaitpoint",
            "observeSignals",
            "delay",
            "waitChildren",
            "reportUsage"
          ])
          const withSecondArg = new Set(["progress", "appendFrame", "fail", "cancel", "suspend", "createWaitpoint", "delay", "reportUsage"])
          for (const op of operationNames) {
            if (noArgs.has(op)) continue
            const f = untyped(b[op])
            for (const missing of [undefined, null]) {
              yield* refused(f(missing))
              if (withSecondArg.has(op)) yield* refused(f(c.handle, missing))
              if (!handleFirst.has(op)) yield* refused(f(missing, missing))
            }
          }
          // an optional argument object, when given, is an object
          yield* refused(untyped(b.complete)(c.handle, 5))
          yield* refused(untyped(b.completeMany)([null]))
          yield* refused(untyped(b.createExecutions)("not a list"))
          expect(yield* snapshot(c.executionId)).toEqual(before)
          yield* b.complete(c.handle)
        }))

      t.test("shutdownPrepare takes a Duration; anything else is Validation", () =>
        Effect.gen(function*() {
          const b = yield* backend
          for (const grace of [Number.NaN, -1, "5 seconds", () => 1, {}, 5n, null]) {
            yield* refused(untyped(b.shutdownPrepare)(grace), "InvalidInput")
          }
        }))

      t.test("maintenance options are an object with a positive integer batchSize", () =>
        Effect.gen(function*() {
          const m = yield* maintenance
          for (const name of passNames) {
            for (const options of [null, 5, "x", { batchSize: 0 }, { batchSize: -1 }, { batchSize: 1.5 }, { batchSize: Number.NaN }, {
              batchSize: "10"
            }, { batchSize: 10n }]) {
              yield* refused(untyped(m[name])(options), "InvalidInput")
            }
          }
        }))
    })

    describe("handles", () => {
      t.test("a handle whose backend is not a string, or whose kind or bytes are malformed, is Validation(Corruption)", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const before = yield* snapshot(c.executionId)
          const h = c.handle as unknown as Record<string, unknown>
          const bad: ReadonlyArray<unknown> = [
            { ...h, backend: 7 },
            { ...h, backend: Object.create(null) },
            { ...h, backend: Symbol("b") },
            { ...h, backend: null },
            { ...h, kind: "zombie" },
            { ...h, kind: Object.create(null) },
            { ...h, opaque: "bytes" },
            { backend: h["backend"], kind: h["kind"] },
            "a handle",
            [h]
          ]
          for (const handle of bad) {
            yield* refused(untyped(b.renew)(handle), "Corruption")
            yield* refused(untyped(b.progress)(handle, { percent: 1 }), "Corruption")
            yield* refused(untyped(b.complete)(handle), "Corruption")
          }
          // a huge backend string is quoted, not echoed
          const e = yield* refused(untyped(b.renew)({ ...h, backend: "x".repeat(9_000_000) }), "HandleFromOtherBackend")
          expect(e.detail.length).toBeLessThan(200)
          expect(yield* snapshot(c.executionId)).toEqual(before)
          yield* b.complete(c.handle)
        }))
    })

    describe("values of the wrong type, however big, deep or cyclic", () => {
      t.test("a Validation detail quotes a short part of the value; the call writes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const executionId = yield* Ids.executionIdSolo(lane)
          const huge: ReadonlyArray<unknown> = [
            new Array(1_000_000).fill("x".repeat(9)),
            "k".repeat(9_000_000),
            deepArray(20_000),
            cyclic(),
            Object.create(null),
            12n,
            Symbol("s")
          ]
          for (const value of huge) {
            // each where its type is wrong (a long string where a string belongs is a length question)
            const patches = typeof value === "string" ?
              [{ priority: value }, { inputPayload: value }, { tags: value }, { policy: { priority: value } }] :
              [{ executionKind: value }, { namespace: value }, { priority: value }, { tags: { "a.b": value } }]
            for (const patch of patches) {
              yield* refused(
                untyped(b.createExecution)({ executionId, namespace: NS, laneId: lane, executionKind: "k", ...patch })
              )
            }
            yield* refused(untyped(b.describeExecution)(value))
            yield* refused(untyped(b.createBudget)({ budgetId: value, scopeType: "t", scopeId: "s", dimensions: [], hardLimits: [], softLimits: [] }))
          }
          yield* isAbsent(executionId)
        }))

      t.test("a deep, cyclic or uninspectable value where a union's tag belongs is Validation, not a defect", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const ref = { executionId: c.executionId, attemptIndex: 0 }
          const throwing = { toString: () => { throw new Error("no") } }
          for (const tag of [deepArray(20_000), [cyclic()], deepArray(65), Object.create(null), throwing]) {
            yield* refused(untyped(b.readStream)({ ...ref, from: { _tag: tag }, to: { _tag: "End" }, countLimit: 10 }), "InvalidInput")
            yield* refused(untyped(b.tailStream)({ ...ref, after: { _tag: tag }, blockMs: 0, countLimit: 10 }), "InvalidInput")
            yield* refused(untyped(b.listEdges)({ flowId: yield* Ids.newFlowId, direction: { _tag: tag } }), "InvalidInput")
            yield* refused(
              untyped(b.createExecution)({
                executionId: yield* Ids.executionIdSolo(c.lane),
                namespace: NS,
                laneId: c.lane,
                executionKind: "k",
                policy: { retryPolicy: { backoff: { type: tag } } }
              })
            )
          }
          expect(yield* publicState(c.executionId)).toBe("active")
        }))

      t.test("a progress message must be text: cyclic objects, bigints, bytes are Validation", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const before = yield* snapshot(c.executionId)
          for (const message of [cyclic(), 10n, bytes("m"), 5, ["m"]]) {
            yield* refused(untyped(b.progress)(c.handle, { percent: 5, message }), "InvalidInput")
          }
          for (const reason of [cyclic(), 10n, null]) yield* refused(untyped(b.cancel)(c.handle, { reason }), "InvalidInput")
          expect(yield* snapshot(c.executionId)).toEqual(before)
          yield* b.progress(c.handle, { percent: 5, message: "fine" })
        }))

      t.test("a resume condition nested 20 000 deep, or cyclic, is Validation and the lease is kept", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const wp = yield* Ids.freshWaitpointBinding
          let deep: unknown = { _tag: "Single", waitpointKey: wp.waitpointKey, matcher: { _tag: "Wildcard" } }
          for (let i = 0; i < 20_000; i++) deep = { _tag: "Composite", body: { _tag: "AllOf", members: [deep] } }
          const members: Array<unknown> = []
          const loop = { _tag: "Composite", body: { _tag: "AllOf", members } }
          members.push(loop)
          for (const resumeCondition of [deep, loop]) {
            yield* refused(
              untyped(b.suspend)(c.handle, {
                suspensionId: yield* Ids.newSuspensionId,
                waitpoints: [{ _tag: "Fresh", waitpointId: wp.waitpointId, waitpointKey: wp.waitpointKey }],
                resumeCondition
              }),
              "InvalidInput"
            )
          }
          expect(yield* publicState(c.executionId)).toBe("active")
          yield* b.renew(c.handle)
        }))

      t.test("a summary patch nested deeper than 16 levels (20 000 deep) is patch_depth_exceeded and nothing is applied", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const summary = { _tag: "DurableSummary" as const, patchKind: "json-merge-patch" as const }
          yield* b.appendFrame(c.handle, { bytes: bytes("{\"a\":1}"), kind: "event", mode: summary })
          for (const depth of [17, 20_000]) {
            const patch = `{"x":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}`
            yield* validationFails(b.appendFrame(c.handle, { bytes: bytes(patch), kind: "event", mode: summary }), "InvalidInput", "patch_depth_exceeded")
          }
          const doc = Option.getOrThrow(yield* b.readSummary({ executionId: c.executionId, attemptIndex: Ids.AttemptIndex.make(0) }))
          expect([doc.version, JSON.parse(text(doc.documentJson))]).toEqual([1, { a: 1 }])
          const frames = yield* b.readStream({
            executionId: c.executionId,
            attemptIndex: Ids.AttemptIndex.make(0),
            from: { _tag: "Start" },
            to: { _tag: "End" },
            countLimit: 100
          })
          expect(frames.frames.length).toBe(1)
          // 16 levels are fine
          const ok = `{"x":${"[".repeat(15)}${"]".repeat(15)}}`
          yield* b.appendFrame(c.handle, { bytes: bytes(ok), kind: "event", mode: summary })
        }))
    })

    describe("text no store can hold", () => {
      t.test("NUL in any text field is Validation(InvalidInput) on every backend, and nothing is written", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const executionId = yield* Ids.executionIdSolo(lane)
          const base: M.CreateExecutionArgsInput = { executionId, namespace: NS, laneId: lane, executionKind: "k" }
          for (const bad of ["\u0000", "a\u0000b", "\ud800", "x\udc00y", "\udfff\ud800"]) {
            const patches: ReadonlyArray<Partial<M.CreateExecutionArgsInput>> = [
              { executionKind: bad },
              { namespace: bad as M.CreateExecutionArgs["namespace"] },
              { creatorIdentity: bad },
              { idempotencyKey: bad },
              { payloadEncoding: bad },
              { tags: { "a.b": bad } },
              { tags: { [`a.${bad}`]: "v" } },
              { policy: { fallbackPolicy: { tiers: [{ provider: bad, model: "m" }] } } },
              { policy: JSON.stringify({ stream_policy: { durability_mode: bad } }) }
            ]
            for (const patch of patches) {
              const e = yield* refused(b.createExecution({ ...base, ...patch }))
              expect(e.detail).toMatch(/U\+0000|UTF-16/)
            }
          }
          yield* isAbsent(executionId)
          const listed = yield* b.listExecutions({ partition: partitionKeyOf(executionId), limit: 1000 })
          expect(listed.executions).not.toContain(executionId)
        }))

      t.test("NUL or a lone surrogate in lease-bound, signal, flow and budget text is refused and changes nothing", () =>
        Effect.gen(function*() {
          const b = yield* backend
          yield* ensureHmac
          const c = yield* createAndClaim()
          const before = yield* snapshot(c.executionId)
          for (const bad of ["a\u0000", "b\ud800"]) {
            yield* refused(b.progress(c.handle, { percent: 1, message: bad }), "InvalidInput")
            yield* refused(b.cancel(c.handle, { reason: bad }), "InvalidInput")
            yield* refused(b.fail(c.handle, { reason: { message: bad }, classification: "Permanent" }), "InvalidInput")
            yield* refused(b.appendFrame(c.handle, { bytes: bytes("x"), kind: "stdout", correlationId: bad }), "InvalidInput")
            yield* refused(b.createWaitpoint(c.handle, { waitpointKey: `k${bad}`, expiresIn: Duration.minutes(1) }))
            yield* refused(b.revokeLease({ executionId: c.executionId, reason: bad }), "InvalidInput")
            yield* refused(b.cancelExecution({ executionId: c.executionId, reason: bad }), "InvalidInput")
            yield* refused(b.createFlow({ flowId: yield* Ids.newFlowId, namespace: NS, flowKind: bad }), "InvalidInput")
            yield* refused(b.createBudget({
              budgetId: yield* Ids.newBudgetId,
              scopeType: "tenant",
              scopeId: bad,
              dimensions: ["d"],
              hardLimits: [1],
              softLimits: [1]
            }))
          }
          expect(yield* snapshot(c.executionId)).toEqual(before)
          // JSON escapes of the same in a summary patch
          const summary = { _tag: "DurableSummary" as const, patchKind: "json-merge-patch" as const }
          for (const patch of ["{\"a\":\"x\\u0000\"}", "{\"a\\u0000\":1}", "{\"a\":\"\\ud800\"}"]) {
            yield* refused(b.appendFrame(c.handle, { bytes: bytes(patch), kind: "event", mode: summary }), "InvalidInput")
          }
          expect(Option.isNone(yield* b.readSummary({ executionId: c.executionId, attemptIndex: Ids.AttemptIndex.make(0) })))
            .toBe(true)
          // a suspended execution's signal
          const s = yield* suspendSingle(c.handle)
          for (const bad of ["a\u0000", "b\ud800"]) {
            yield* refused(b.deliverSignal({
              executionId: c.executionId,
              waitpointId: s.waitpointId,
              signalId: yield* Ids.newSignalId,
              signalName: bad,
              waitpointToken: s.token
            }), "InvalidInput")
          }
          expect(yield* publicState(c.executionId)).toBe("suspended")
        }))
    })

    describe("ids", () => {
      t.test("ids are accepted in their canonical spelling only: other spellings of one UUID are Validation", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const executionId = yield* Ids.executionIdSolo(lane)
          const close = executionId.indexOf("}:")
          const tag = executionId.slice(0, close + 2)
          const uuid = executionId.slice(close + 2)
          const n = Ids.executionPartition(executionId)
          const spellings = [
            `${tag}${uuid.toUpperCase()}`,
            `${tag}{${uuid}}`,
            `${tag}urn:uuid:${uuid}`,
            `${tag}${uuid.replace(/-/g, "")}`,
            `\n${executionId}\n`,
            ` ${executionId}`,
            `${tag} ${uuid}`,
            `{fp:0${n}}:${uuid}`
          ]
          for (const id of spellings) {
            yield* refused(b.createExecution({ executionId: id as ExecutionId, namespace: NS, laneId: lane, executionKind: "k" }), "InvalidInput")
            yield* refused(b.describeExecution(id as ExecutionId), "InvalidInput")
          }
          yield* create({ executionId, laneId: lane })
          const listed = yield* b.listExecutions({ partition: partitionKeyOf(executionId), limit: 1000 })
          expect(listed.executions.filter((x) => x.toLowerCase().includes(uuid))).toEqual([executionId])
          // the same for the other ids
          const flowId = yield* Ids.newFlowId
          for (const id of [flowId.toUpperCase(), `{${flowId}}`, `urn:uuid:${flowId}`, ` ${flowId}`]) {
            yield* refused(b.createFlow({ flowId: id as M.CreateFlowArgs["flowId"], namespace: NS }), "InvalidInput")
          }
          expect(Option.isNone(yield* b.describeFlow(flowId))).toBe(true)
          const budgetId = yield* createBudget([["d", 10, 5]])
          yield* refused(b.getBudgetStatus(budgetId.toUpperCase() as typeof budgetId), "InvalidInput")
        }))

      t.test("an execution id or partition key outside the deployment's partitions is Validation everywhere", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const uuid = yield* Ids.randomUuid
          for (const p of [t.options.numFlowPartitions, t.options.numFlowPartitions + 1, 65_535]) {
            const executionId = `{fp:${p}}:${uuid}` as ExecutionId
            const e = yield* refused(
              b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k" }),
              "InvalidInput"
            )
            expect(e.detail).toContain("partition")
            yield* refused(b.describeExecution(executionId), "InvalidInput")
            yield* refused(b.readExecutionState(executionId), "InvalidInput")
            yield* refused(b.cancelExecution({ executionId, reason: "x" }), "InvalidInput")
            const partition = Ids.partitionKey("Flow", p)
            yield* refused(b.listExecutions({ partition, limit: 10 }), "InvalidInput")
            yield* refused(b.listSuspended({ partition, limit: 10 }), "InvalidInput")
            yield* refused(b.listFlows({ partition, limit: 10 }), "InvalidInput")
          }
          const listed = yield* b.listLanes({ cursor: Ids.unsafe.laneId(lane.slice(0, -1)), limit: 5 })
          expect(listed.lanes).not.toContain(lane)
        }))
    })

    describe("keys named like Object.prototype members", () => {
      t.test("a __proto__ tag key is InvalidTagKey, never silently dropped; namespaced ones are kept", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const lane = yield* newLane()
          const executionId = yield* Ids.executionIdSolo(lane)
          const tags = JSON.parse("{\"__proto__\":\"v\",\"ok.key\":\"w\"}") as Record<string, string>
          const e = yield* refused(b.createExecution({ executionId, namespace: NS, laneId: lane, executionKind: "k", tags }), "InvalidTagKey")
          expect(e.detail).toBe("__proto__")
          yield* isAbsent(executionId)
          const kept = yield* create({ tags: { "ns.__proto__": "a", "ns.constructor": "b", "ns.toString": "c" } })
          expect((yield* snapshot(kept.executionId)).tags).toEqual({ "ns.__proto__": "a", "ns.constructor": "b", "ns.toString": "c" })
        }))

      t.test("budget dimensions and usage keys named __proto__, constructor, toString are stored as they are", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const budgetId = yield* createBudget([["__proto__", 100, 50], ["constructor", 10, 5], ["toString", 7, 0]])
          const custom = JSON.parse("{\"__proto__\":3,\"constructor\":2,\"hasOwnProperty\":1}") as Record<string, number>
          const c = yield* createAndClaim()
          expect(yield* b.reportUsage(c.handle, { budgetId, dimensions: { custom } })).toEqual({ _tag: "Ok" })
          yield* b.reportUsageAdmin({ budgetId, dimensions: ["__proto__", "toString"], deltas: [1, 1] })
          const s = yield* b.getBudgetStatus(budgetId)
          const plain = (r: Readonly<Record<string, number>>) =>
            Object.keys(r).sort().map((k) => [k, r[k]])
          expect(plain(s.hardLimits)).toEqual([["__proto__", 100], ["constructor", 10], ["toString", 7]])
          expect(plain(s.softLimits)).toEqual([["__proto__", 50], ["constructor", 5], ["toString", 0]])
          expect(plain(s.usage)).toEqual([["__proto__", 4], ["constructor", 2], ["hasOwnProperty", 1], ["toString", 1]])
          // a breach of a dimension named constructor is a breach like any other
          const r = yield* b.reportUsageAdmin({ budgetId, dimensions: ["constructor"], deltas: [20] })
          expect(r).toMatchObject({ _tag: "HardBreach", dimension: "constructor" })
        }))

      t.test("a summary patch with __proto__ and constructor keys is merged as plain keys", () =>
        Effect.gen(function*() {
          const b = yield* backend
          const c = yield* createAndClaim()
          const summary = { _tag: "DurableSummary" as const, patchKind: "json-merge-patch" as const }
          yield* b.appendFrame(c.handle, { bytes: bytes("{\"__proto__\":{\"x\":1},\"constructor\":2}"), kind: "event", mode: summary })
          yield* b.appendFrame(c.handle, { bytes: bytes("{\"__proto__\":{\"y\":2},\"toString\":3}"), kind: "event", mode: summary })
          const doc = Option.getOrThrow(yield* b.readSummary({ executionId: c.executionId, attemptIndex: Ids.AttemptIndex.make(0) }))
          const parsed = JSON.parse(text(doc.documentJson)) as Record<string, unknown>
          expect(Object.keys(parsed).sort()).toEqual(["__proto__", "constructor", "toString"])
          const own = (o: unknown, k: string) => Object.getOwnPropertyDescriptor(o, k)?.value
          expect([own(parsed, "__proto__"), own(parsed, "constructor"), own(parsed, "toString")]).toEqual([{ x: 1, y: 2 }, 2, 3])
        }))
    })
  })
