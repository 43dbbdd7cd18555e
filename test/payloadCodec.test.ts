// The worker's payload codecs give what Schema gives: a schema without a transformation goes
// through the compiled validator, anything it cannot vouch for (and every schema with a
// transformation) through Schema's parser, with Schema's errors.
import { describe, expect, it } from "@effect/vitest"
import { Effect, Either, Schema } from "effect"
import { jsonDecoder, jsonEncoder } from "../src/internal/worker/codec.js"

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))
const text = (b: Uint8Array) => new TextDecoder().decode(b)
const run = <A, E>(effect: Effect.Effect<A, E>) => Effect.runSync(Effect.either(effect))

const Plain = Schema.Struct({
  n: Schema.Int,
  s: Schema.String,
  tags: Schema.optional(Schema.Array(Schema.String)),
  kind: Schema.Literal("a", "b")
})
const Transformed = Schema.Struct({ n: Schema.NumberFromString })

describe("payload codecs", () => {
  it("decode as Schema decodes: excess keys dropped, refinements and literals checked", () => {
    const decode = jsonDecoder(Plain, "input of \"t\"")
    const schema = Schema.decodeUnknownEither(Plain)
    const inputs: ReadonlyArray<unknown> = [
      { n: 1, s: "x", kind: "a", extra: true },
      { s: "x", n: 2, kind: "b", tags: ["t"] },
      { n: 1.5, s: "x", kind: "a" },
      { n: 1, s: "x", kind: "c" },
      { n: 1, s: 2, kind: "a" },
      { n: 1, s: "x", kind: "a", tags: [1] },
      null,
      []
    ]
    for (const input of inputs) {
      const ours = run(decode(bytes(input)))
      const theirs = schema(input)
      expect(Either.isRight(ours)).toBe(Either.isRight(theirs))
      if (Either.isRight(ours) && Either.isRight(theirs)) {
        expect(JSON.stringify(ours.right)).toBe(JSON.stringify(theirs.right))
      }
      if (Either.isLeft(ours)) expect(ours.left.message).toMatch(/^cannot decode input of "t": /)
    }
  })

  it("encode as Schema encodes, key order included; a transformation still runs", () => {
    const encode = jsonEncoder(Plain, "output of \"t\"")
    const value = { kind: "a", s: "x", n: 3, extra: 1 } as unknown as typeof Plain.Type
    expect(text(Either.getOrThrow(run(encode(value))))).toBe(JSON.stringify(Schema.encodeSync(Plain)(value)))
    expect(Either.isLeft(run(encode({ n: 1.5, s: "x", kind: "a" })))).toBe(true)
    const transformed = jsonEncoder(Transformed, "output of \"u\"")
    expect(text(Either.getOrThrow(run(transformed({ n: 7 }))))).toBe("{\"n\":\"7\"}")
    const back = jsonDecoder(Transformed, "input of \"u\"")
    expect(Either.getOrThrow(run(back(bytes({ n: "8" }))))).toEqual({ n: 8 })
  })
})
