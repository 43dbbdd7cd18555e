/**
 * flowfabric-effect: a durable-execution engine backend for Effect.
 *
 * @since 0.1.0
 */
export * as CancelFlow from "./CancelFlow.js"
export * as EngineBackend from "./EngineBackend.js"
export * as EngineError from "./EngineError.js"
export * as Events from "./Events.js"
export * as Ids from "./Ids.js"
export { type LimitName, Limits } from "./Limits.js"
export * as Maintenance from "./Maintenance.js"
export * as MemoryBackend from "./MemoryBackend.js"
export * as Model from "./Model.js"
export * as Producer from "./Producer.js"
export * as Reconciler from "./Reconciler.js"
export * as Worker from "./Worker.js"
