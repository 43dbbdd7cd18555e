/**
 * Schemas of every record, argument and outcome of the engine (described in
 * docs/design/). Field names are camelCase; stored wire strings (states,
 * reasons, policies) keep their snake_case values.
 *
 * The schemas live by area under `internal/model/`, the same areas as the
 * backends' code: claim, lifecycle, flows, signals, streams, budgets, admin
 * and reads, with the records they share (state vector, handle) in `common`.
 *
 * @since 0.1.0
 */
export * from "./internal/model/admin.js"
export * from "./internal/model/budgets.js"
export * from "./internal/model/claim.js"
export * from "./internal/model/common.js"
export * from "./internal/model/events.js"
export * from "./internal/model/flows.js"
export * from "./internal/model/lifecycle.js"
export * from "./internal/model/reads.js"
export * from "./internal/model/signals.js"
export * from "./internal/model/streams.js"
