/** Events on Postgres (docs/design/events.md). */
import { Effect } from "effect"
import { Transport } from "../../EngineError.js"
import type { CoreArea } from "../../internal/boundary.js"
import type { CoreContext } from "./context.js"

const notYet = new Transport({ backend: "postgres", kind: "other", retryable: false, message: "events: not yet" })

export const makeEvents = (_ctx: CoreContext): CoreArea<"events"> => ({
  readEvents: () => Effect.fail(notYet),
  subscribeEvents: () => Effect.fail(notYet)
})
