/**
 * Migration 0037: an event's kind as a 4-byte enum instead of its name as text
 * (docs/design/events.md, "Postgres"; docs/design/postgres.md, "Storage").
 *
 * The name took 10–17 bytes of every event row and of its WAL record (`ExecutionCreated` 17).
 * The enum's labels are the names, so `kind = 'Completed'` and the JSON of a row read the same.
 * The assignment cast from text lets the writers (the triggers of 0036, `ffi_flow_event`) insert
 * a computed name as before. A new kind of event is a new label (`ALTER TYPE … ADD VALUE`).
 */
export const sql = String.raw`
CREATE TYPE event_kind AS ENUM ('ExecutionCreated', 'Claimed', 'AttemptInterrupted', 'RetryScheduled', 'Progress',
  'Completed', 'Failed', 'Cancelled', 'Expired', 'Skipped', 'Suspended', 'Resumed', 'Delayed', 'StateChanged',
  'FlowStateChanged');
CREATE CAST (text AS event_kind) WITH INOUT AS ASSIGNMENT;
ALTER TABLE event ALTER COLUMN kind TYPE event_kind USING kind::event_kind;
`
