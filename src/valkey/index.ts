/**
 * The Valkey backend: `flowfabric-effect/valkey`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as ValkeyBackend from "./ValkeyBackend.js"
