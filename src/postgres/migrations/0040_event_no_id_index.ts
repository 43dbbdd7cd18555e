/**
 * Migration 0040: the event log without an index on `id` (docs/design/postgres.md, "Storage";
 * docs/design/events.md, "Postgres").
 *
 * `event_pkey` cost a B-tree entry per event (three a task, about 200 bytes of WAL) and was read by
 * the trim only (the oldest events by `id`, and `max(id)`); reads go by execution, lane or flow and
 * `(k, id)`. `id` stays, unique by its identity sequence. The trim now sweeps the heap a block range
 * at a time (`ffi_events_trim`), its place kept in `event_trim.next_block`, and reads the newest id
 * from the sequence. The singleton row is created here, at the position before every event, so
 * the trim only updates it.
 */
export const sql = String.raw`
ALTER TABLE event DROP CONSTRAINT event_pkey;
ALTER TABLE event_trim ADD COLUMN next_block bigint NOT NULL DEFAULT 0;
INSERT INTO event_trim (singleton, k, id) VALUES (true, -1, -1) ON CONFLICT (singleton) DO NOTHING;
`
