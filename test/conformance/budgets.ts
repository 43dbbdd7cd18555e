/**
 * Budgets and quotas (docs/design/streams-and-budgets.md#budgets): hard and soft
 * limits with check-before-increment, dedup keys, resets (explicit and by
 * the resetBudgets pass), the worker-side report, and quota policies.
 */
import { describe, expect } from "@effect/vitest"
import { Effect } from "effect"
import * as Ids from "../../src/Ids.js"
import {
  advance,
  backend,
  createAndClaim,
  createBudget,
  failsWith,
  now,
  pass,
  type Tester,
  usage,
  validationFails
} from "./helpers.js"

export const budgets = (t: Tester) =>
  describe("budgets and quotas", () => {
    const status = (id: Parameters<typeof usage>[0]) => Effect.flatMap(backend, (b) => b.getBudgetStatus(id))

    t.test("createBudget is idempotent and getBudgetStatus reads the definition", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const id = yield* createBudget([["tokens", 100, 50], ["calls", 10, 0]])
        const s = yield* status(id)
        expect(s).toMatchObject({
          budgetId: id,
          scopeType: "tenant",
          scopeId: "conformance",
          enforcementMode: "strict",
          breachCount: 0,
          softBreachCount: 0
        })
        expect(s.hardLimits).toMatchObject({ tokens: 100, calls: 10 })
        // a 0 limit (unlimited) is still a stored limit
        expect(s.softLimits).toEqual({ calls: 0, tokens: 50 })
        expect(s.usage["tokens"] ?? 0).toBe(0)
        expect(s.lastBreachAt).toBeUndefined()
        expect(s.nextResetAt).toBeUndefined()
        expect(s.createdAt).toBe(String(t0))
        expect(
          yield* b.createBudget({
            budgetId: id,
            scopeType: "other",
            scopeId: "other",
            dimensions: ["x"],
            hardLimits: [1],
            softLimits: [1]
          })
        ).toEqual({ _tag: "AlreadySatisfied", budgetId: id })
        expect((yield* status(id)).scopeType).toBe("tenant")
      }))

    t.test("usage under the limits is Ok and accumulates", () =>
      Effect.gen(function*() {
        const id = yield* createBudget([["tokens", 100, 50]])
        expect(yield* usage(id, { tokens: 20 })).toEqual({ _tag: "Ok" })
        expect(yield* usage(id, { tokens: 30 })).toEqual({ _tag: "Ok" })
        expect((yield* status(id)).usage["tokens"]).toBe(50)
      }))

    t.test("crossing a soft limit applies the increment and reports SoftBreach with the new value", () =>
      Effect.gen(function*() {
        const id = yield* createBudget([["tokens", 100, 50]])
        yield* usage(id, { tokens: 40 })
        expect(yield* usage(id, { tokens: 20 })).toEqual({
          _tag: "SoftBreach",
          dimension: "tokens",
          currentUsage: 60,
          softLimit: 50
        })
        const s = yield* status(id)
        expect(s.usage["tokens"]).toBe(60)
        expect(s.softBreachCount).toBe(1)
        expect(s.breachCount).toBe(0)
      }))

    t.test("crossing a hard limit applies nothing and reports HardBreach with the current value", () =>
      Effect.gen(function*() {
        const id = yield* createBudget([["tokens", 100, 0], ["calls", 5, 0]])
        yield* usage(id, { tokens: 60, calls: 1 })
        const t1 = yield* now
        expect(yield* usage(id, { tokens: 41, calls: 1 })).toEqual({
          _tag: "HardBreach",
          dimension: "tokens",
          currentUsage: 60,
          hardLimit: 100
        })
        const s = yield* status(id)
        expect(s.usage).toMatchObject({ tokens: 60, calls: 1 })
        expect(s.breachCount).toBe(1)
        expect(s.lastBreachDim).toBe("tokens")
        expect(s.lastBreachAt).toBe(String(t1))
        // reaching the limit exactly is allowed
        expect(yield* usage(id, { tokens: 40 })).toEqual({ _tag: "Ok" })
        expect((yield* status(id)).usage["tokens"]).toBe(100)
      }))

    t.test("a hard breach on any dimension blocks the increments of every dimension", () =>
      Effect.gen(function*() {
        const id = yield* createBudget([["a", 0, 0], ["b", 10, 0]])
        expect(yield* usage(id, { a: 1_000, b: 11 })).toMatchObject({ _tag: "HardBreach", dimension: "b", hardLimit: 10 })
        expect((yield* status(id)).usage["a"] ?? 0).toBe(0)
        // a limit of 0 is unlimited
        expect(yield* usage(id, { a: 1_000_000 })).toEqual({ _tag: "Ok" })
      }))

    t.test("a dedup key applies a report once: AlreadyApplied afterwards", () =>
      Effect.gen(function*() {
        const id = yield* createBudget([["tokens", 100, 0]])
        expect(yield* usage(id, { tokens: 10 }, "req-1")).toEqual({ _tag: "Ok" })
        expect(yield* usage(id, { tokens: 10 }, "req-1")).toEqual({ _tag: "AlreadyApplied" })
        expect((yield* status(id)).usage["tokens"]).toBe(10)
        expect(yield* usage(id, { tokens: 10 }, "req-2")).toEqual({ _tag: "Ok" })
        expect((yield* status(id)).usage["tokens"]).toBe(20)
      }))

    t.test("a hard breach is not remembered under its dedup key: the retry is evaluated again", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* createBudget([["tokens", 100, 0]])
        yield* usage(id, { tokens: 95 })
        expect((yield* usage(id, { tokens: 10 }, "retry-me"))._tag).toBe("HardBreach")
        yield* b.resetBudget(id)
        expect(yield* usage(id, { tokens: 10 }, "retry-me")).toEqual({ _tag: "Ok" })
        expect((yield* status(id)).usage["tokens"]).toBe(10)
      }))

    t.test("resetBudget zeroes usage and clears breach markers", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* createBudget([["tokens", 10, 0]])
        yield* usage(id, { tokens: 8 })
        yield* usage(id, { tokens: 8 })
        expect(yield* b.resetBudget(id)).toEqual({ _tag: "Reset", nextResetAt: 0 })
        const s = yield* status(id)
        expect(s.usage["tokens"] ?? 0).toBe(0)
        expect(s.lastBreachAt).toBeUndefined()
        expect(s.lastBreachDim).toBeUndefined()
        expect(yield* usage(id, { tokens: 10 })).toEqual({ _tag: "Ok" })
      }))

    t.test("with a reset interval: resetBudget schedules the next reset and the resetBudgets pass applies it", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const t0 = yield* now
        const id = yield* createBudget([["tokens", 100, 0]], { resetIntervalMs: 60_000 })
        expect((yield* status(id)).nextResetAt).toBe(String(t0 + 60_000))
        yield* usage(id, { tokens: 30 })
        yield* advance(59_999)
        yield* pass("resetBudgets")
        expect((yield* status(id)).usage["tokens"]).toBe(30)
        yield* advance(1)
        yield* pass("resetBudgets")
        const s = yield* status(id)
        expect(s.usage["tokens"] ?? 0).toBe(0)
        expect(s.nextResetAt).toBe(String(t0 + 120_000))
        yield* advance(10)
        expect(yield* b.resetBudget(id)).toEqual({ _tag: "Reset", nextResetAt: t0 + 60_010 + 60_000 })
      }))

    t.test("reports against an unknown budget are accepted as unlimited; its status is NotFound(budget)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* Ids.newBudgetId
        expect(yield* usage(id, { tokens: 1_000_000 })).toEqual({ _tag: "Ok" })
        const e = yield* failsWith(b.getBudgetStatus(id), "NotFound")
        expect(e.entity).toBe("budget")
        expect(e.id).toBe(id)
        expect(e.message).toBe(`not found: budget ${id}`)
      }))

    t.test("reportUsage (worker): only custom dimensions count, and the lease is not checked", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* createBudget([["tokens", 100, 0]])
        const c = yield* createAndClaim()
        const r = yield* b.reportUsage(c.handle, {
          budgetId: id,
          dimensions: { inputTokens: 5_000, outputTokens: 7_000, custom: { tokens: 40 }, dedupKey: "w-1" }
        })
        expect(r).toEqual({ _tag: "Ok" })
        const s = yield* status(id)
        expect(s.usage["tokens"]).toBe(40)
        expect(Object.keys(s.usage).sort()).toEqual(["tokens"])
        expect(
          yield* b.reportUsage(c.handle, { budgetId: id, dimensions: { custom: { tokens: 40 }, dedupKey: "w-1" } })
        ).toEqual({ _tag: "AlreadyApplied" })
        yield* b.complete(c.handle)
        // a finished attempt can still report
        expect(yield* b.reportUsage(c.handle, { budgetId: id, dimensions: { custom: { tokens: 70 } } })).toMatchObject({
          _tag: "HardBreach",
          currentUsage: 40
        })
      }))

    t.test("bad budget input is rejected and writes nothing", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* Ids.newBudgetId
        const base = { budgetId: id, scopeType: "tenant", scopeId: "x" }
        yield* validationFails(
          b.createBudget({ ...base, dimensions: ["a", "b"], hardLimits: [1], softLimits: [1, 2] }),
          "InvalidInput"
        )
        yield* validationFails(b.createBudget({ ...base, dimensions: [""], hardLimits: [1], softLimits: [1] }), "InvalidInput")
        yield* failsWith(
          b.createBudget({ ...base, dimensions: ["a"], hardLimits: [-1], softLimits: [0] }),
          "Validation",
          "InvalidBudgetScope"
        )
        yield* failsWith(b.getBudgetStatus(id), "NotFound")
        const real = yield* createBudget([["tokens", 100, 0]])
        yield* validationFails(
          b.reportUsageAdmin({ budgetId: real, dimensions: ["tokens", "x"], deltas: [1] }),
          "InvalidInput"
        )
        yield* validationFails(b.reportUsageAdmin({ budgetId: real, dimensions: ["tokens"], deltas: [-5] }), "InvalidInput")
        yield* validationFails(b.reportUsageAdmin({ budgetId: real, dimensions: ["tokens"], deltas: [1.5] }), "InvalidInput")
        expect((yield* status(real)).usage["tokens"] ?? 0).toBe(0)
      }))

    t.test("createQuotaPolicy is idempotent; a bad spec is Validation(InvalidQuotaSpec)", () =>
      Effect.gen(function*() {
        const b = yield* backend
        const id = yield* Ids.newQuotaPolicyId
        const args = { quotaPolicyId: id, windowSeconds: 60, maxRequestsPerWindow: 100, maxConcurrent: 5 }
        expect(yield* b.createQuotaPolicy(args)).toEqual({ _tag: "Created", quotaPolicyId: id })
        expect(yield* b.createQuotaPolicy({ ...args, maxConcurrent: 1 })).toEqual({ _tag: "AlreadySatisfied", quotaPolicyId: id })
        const other = yield* Ids.newQuotaPolicyId
        for (const bad of [{ windowSeconds: 0 }, { maxRequestsPerWindow: -1 }, { maxConcurrent: 0.5 }]) {
          yield* failsWith(b.createQuotaPolicy({ ...args, quotaPolicyId: other, ...bad }), "Validation", "InvalidQuotaSpec")
        }
        expect(yield* b.createQuotaPolicy({ ...args, quotaPolicyId: other })).toEqual({
          _tag: "Created",
          quotaPolicyId: other
        })
      }))
  })
