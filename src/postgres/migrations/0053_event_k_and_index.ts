/**
 * Migration 0053: `exec_core` without its `BEFORE UPDATE` row trigger `exec_core_event_k`, and the
 * event log's index by execution without `k` (docs/design/events.md, "Postgres"; docs/design/
 * postgres.md, "Storage").
 *
 * - The trigger set a changed row's `event_k` (the `k` of its last event) when the statement did
 *   not. A table with a `BEFORE UPDATE` row trigger has every row an `UPDATE` changes locked before
 *   the trigger is called, whatever the trigger's `WHEN` says: a lock record in the WAL (54 bytes)
 *   for every row the statement had not locked itself, so that an update that checks its row in
 *   its own `WHERE` could not do without a separate lock. Every statement of the library that
 *   changes a column an event reports sets `event_k` itself now (library version 13).
 * - `event_by_execution` keys the uuid's hash and `id`, not `(k, id)`: an execution's events are in
 *   id order (each written under its `exec_core` row's lock, with an id taken after the previous
 *   one committed and a `k` at least the previous one's), so an entry is 8 bytes narrower (24
 *   bytes instead of 32: about 8 bytes less WAL an event, three a task).
 */
export const sql = String.raw`
DROP TRIGGER exec_core_event_k ON exec_core;
DROP FUNCTION ffi_trg_event_k();
DROP INDEX event_by_execution;
CREATE INDEX event_by_execution ON event (uuid_hash_extended(e_uuid, 0), id) WHERE e_uuid IS NOT NULL;
`
