/**
 * Migration 0038: one timer row for the executions of one claim or one completion
 * (docs/design/postgres.md, "Timers" and "Storage").
 *
 * A claim of 64 fresh executions wrote 64 lease timers (a row and two index entries each), and
 * the completion of those 64 turned each into a retention timer (a new row version and two new
 * index entries each): about 800 bytes of WAL per task, a sixth of it. Both statements now write
 * one row for the whole set, its executions in `refs` (NULL on every other timer row), under a
 * `ref` of its own (`#` and a uuid, which no execution, waitpoint or budget id begins with). The
 * pass that takes such a row handles each execution as it would its own timer (a timer is a
 * hint: the `exec_core` row decides) and keeps, in the same row, those it could not take yet.
 */
export const sql = String.raw`
ALTER TABLE timer ADD COLUMN refs text[];
`
