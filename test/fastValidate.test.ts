// The compiled fast path of input validation never accepts what Schema rejects, and returns what
// Schema returns when both accept: on every schema of the model it compiles, with arbitrary JSON,
// and on the hot argument shapes with valid values and the same values with one field replaced.
import { describe, expect, it } from "@effect/vitest"
import { Either, FastCheck as fc, Schema } from "effect"
import { compile } from "../src/internal/fastValidate.js"
import * as M from "../src/Model.js"

const schemas: ReadonlyArray<readonly [string, Schema.Schema<unknown, unknown>]> = Object.entries(M as Record<string, unknown>)
  .flatMap(([name, value]) => (Schema.isSchema(value) ? [[name, value as Schema.Schema<unknown, unknown>] as const] : []))

const executionId = "{fp:12}:0b3e4c1a-1111-4222-8333-444455556666"
const policy = { workerId: "w-1", workerInstanceId: "w-1-a", leaseTtlMs: 30_000 }

/** Valid type-side values of the hot schemas (constructor defaults already applied). */
const valid: Record<string, ReadonlyArray<unknown>> = {
  ClaimArgs: [
    { lane: "default", capabilities: { tokens: [] }, policy },
    { lane: "gpu-lane", capabilities: { tokens: ["gpu", "ssd"] }, policy: { ...policy, leaseTtlMs: 1 } },
    { lane: "default", capabilities: { tokens: [] }, policy, kinds: ["resize", "thumbnail"] }
  ],
  CreateExecutionArgs: [
    {
      executionId,
      namespace: "ns",
      laneId: "default",
      executionKind: "noop",
      inputPayload: new Uint8Array([1, 2]),
      priority: 0,
      creatorIdentity: "",
      tags: { "app.owner": "me" }
    }
  ],
  FailureReason: [{ message: "boom" }, { message: "x", detail: new Uint8Array([0]) }],
  Frame: [{ bytes: new Uint8Array(3), kind: "stdout", frameType: "", mode: { _tag: "Durable" } }],
  ExecutionPolicy: [{}, { priority: 5, maxReplayCount: 2, budgetIds: [] }]
}

/** `value` with one of its own keys (at some depth) replaced. */
const mutate = (value: unknown, replacement: unknown, pick: number): unknown => {
  if (typeof value !== "object" || value === null || value instanceof Uint8Array) return replacement
  const keys = Object.keys(value)
  if (keys.length === 0) return replacement
  const key = keys[pick % keys.length]!
  const copy = (Array.isArray(value) ? [...value] : { ...value }) as Record<string, unknown>
  copy[key] = pick % 3 === 0 ? replacement : mutate(copy[key], replacement, Math.floor(pick / 3))
  return copy
}

/**
 * A fast-path value as Schema builds it. One difference is intended: a record
 * the fast path builds has no prototype and keeps every key, where Schema's
 * plain object drops a `__proto__` key (an assignment sets the prototype).
 */
const asSchemaBuilds = (u: unknown): unknown => {
  if (Array.isArray(u)) return u.map(asSchemaBuilds)
  if (typeof u !== "object" || u === null) return u
  const proto: unknown = Object.getPrototypeOf(u)
  if (proto !== null && proto !== Object.prototype) return u
  const out: Record<string, unknown> = {}
  for (const k of Object.keys(u)) {
    if (proto === null && k === "__proto__") continue
    out[k] = asSchemaBuilds((u as Record<string, unknown>)[k])
  }
  return out
}

describe("fast validation", () => {
  const compiled = schemas.flatMap(([name, schema]) => {
    const fast = compile(schema)
    return fast === undefined ? [] : [{ name, schema, fast }]
  })

  it("compiles the hot argument schemas", () => {
    const names = compiled.map((c) => c.name)
    for (const hot of Object.keys(valid)) expect(names).toContain(hot)
  })

  for (const { fast, name, schema } of compiled) {
    it(`${name}: agrees with Schema.validate`, () => {
      const slow = Schema.validateEither(schema)
      const agree = (u: unknown) => {
        const f = fast(u)
        if (f === undefined) return
        const s = slow(u)
        expect(Either.isRight(s)).toBe(true)
        if (Either.isRight(s)) expect(asSchemaBuilds(f)).toStrictEqual(s.right)
      }
      for (const v of valid[name] ?? []) {
        expect(fast(v)).toBeDefined()
        agree(v)
        agree({ ...(v as object), extra: 1 })
        fc.assert(fc.property(fc.jsonValue(), fc.nat(), (replacement, pick) => {
          agree(mutate(v, replacement, pick))
          agree(mutate(v, undefined, pick))
        }), { numRuns: 300 })
      }
      fc.assert(fc.property(fc.jsonValue(), agree), { numRuns: 100 })
    })
  }
})
