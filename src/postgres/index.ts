/**
 * The PostgreSQL backend: `flowfabric-effect/postgres`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as PostgresBackend from "./PostgresBackend.js"
