/** The boundary of events: the filter, the start and the page size of a read, the filter of a subscription. */
import { Effect } from "effect"
import { invalidInput, validation } from "../../EngineError.js"
import { Limits } from "../../Limits.js"
import * as M from "../../Model.js"
import { quote } from "../quote.js"
import * as V from "../validation.js"
import { argObject, type Boundary, failWith, fromEither, type Operations } from "./context.js"
import type { Fx } from "./core.js"

const filterOf = (b: Boundary, op: string, value: unknown): Fx<M.EventFilter> =>
  fromEither(V.check(`${op}: filter`, M.EventFilter, value, "InvalidInput", b.rules))

const startOf = (op: string, value: unknown): Fx<M.EventStart> => {
  if (value === undefined || value === "earliest" || value === "latest") {
    return Effect.succeed(value ?? "earliest")
  }
  if (typeof value !== "string" || value === "") {
    return Effect.fail(validation("InvalidOffset", `${op}: after: expected an event offset, "earliest" or "latest", got ${quote(value)}`))
  }
  return Effect.as(failWith(V.checkBytes(op, "after", value, "eventOffsetBytes")), value as M.EventOffset)
}

/** The event operations. */
export const eventOperations = (b: Boundary): Operations<"readEvents" | "subscribeEvents"> => ({
  readEvents: (args) =>
    Effect.gen(function*() {
      const op = "read_events"
      const a = yield* argObject(op, args)
      const filter = yield* filterOf(b, op, a["filter"])
      const after = yield* startOf(op, a["after"])
      const limit = a["limit"] ?? 100
      if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1) {
        return yield* invalidInput(`${op}: limit must be an integer from 1, got ${quote(limit)}`)
      }
      return yield* b.core.readEvents({ filter, after, limit: Math.min(limit, Limits.eventPageItems) })
    }),

  subscribeEvents: (filter) => Effect.flatMap(filterOf(b, "subscribe_events", filter), b.core.subscribeEvents)
})
