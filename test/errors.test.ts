// The public error classes: each class is named as its `_tag`, so `catchTag("Validation", …)` and
// `instanceof Validation` name the same thing, and every error a user can catch is listed here.
import { describe, expect, it } from "vitest"
import * as EngineError from "../src/EngineError.js"
import * as Producer from "../src/Producer.js"
import * as Reconciler from "../src/Reconciler.js"
import * as Worker from "../src/Worker.js"

const errorClasses = (module: Record<string, unknown>) =>
  Object.entries(module).flatMap(([name, value]) =>
    typeof value === "function" && value.prototype instanceof Error && "_tag" in value ?
      [{ name, tag: (value as { readonly _tag: unknown })._tag }] :
      []
  )

describe("error classes", () => {
  it("every exported error class is named as its _tag", () => {
    const classes = [EngineError, Producer, Reconciler, Worker].flatMap((m) => errorClasses(m))
    expect(classes.map((c) => c.name)).toEqual(expect.arrayContaining([
      "NotFound",
      "Validation",
      "Contention",
      "Conflict",
      "State",
      "Bug",
      "Transport",
      "Unavailable",
      "ResourceExhausted",
      "Timeout",
      "Contextual"
    ]))
    for (const c of classes) expect(c.tag, c.name).toBe(c.name)
  })

  it("the is… guards still tell the classes apart", () => {
    const e = new EngineError.Validation({ kind: "InvalidInput", detail: "x" })
    expect(EngineError.isEngineError(e)).toBe(true)
    expect(e._tag).toBe("Validation")
    expect(EngineError.isRetryable(e)).toBe(false)
    const nf = EngineError.notFound("flow", "f1")
    expect(nf).toBeInstanceOf(EngineError.NotFound)
    expect(nf.message).toBe("not found: flow f1")
  })
})
