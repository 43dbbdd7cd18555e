/**
 * Migration 0035: the event log's index by execution keys a 64-bit hash of the id
 * (docs/design/events.md, "Postgres"; docs/design/postgres.md, "Storage").
 *
 * `event_by_execution (execution_id, k, id)` repeated the 46-byte text id in every entry: a third
 * of what a completed execution's events cost. Keyed by `hashtextextended(execution_id, 0)` (8
 * bytes) it is about half as wide. A read of one execution names the hash and the id (the id
 * rechecks the rare other execution with the same hash); within one hash the entries are still in
 * `(k, id)` order, the order of the read.
 */
export const sql = String.raw`
DROP INDEX event_by_execution;
CREATE INDEX event_by_execution ON event (hashtextextended(execution_id, 0), k, id) WHERE execution_id IS NOT NULL;
`
