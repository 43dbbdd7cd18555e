/**
 * Migration 0041: `ready` and `exec_data` found by execution id through a hash index
 * (docs/design/postgres.md, "Storage").
 *
 * Both are only ever read by an execution's id, equal to one value, never by a range or in key
 * order (the claim reads `ready` by its claim-order indexes; `listExecutions` pages `exec_core`).
 * A B-tree entry holds the 46-byte text id (about 94 bytes per row, some 100 bytes of WAL per
 * insert); a hash entry holds its 4-byte hash (about 60 bytes per row, 60 bytes less WAL). A hash
 * index cannot be unique, so each key is an exclusion constraint on the hash index (`=`): the same
 * one-row-per-execution rule, and `ON CONFLICT ON CONSTRAINT … DO NOTHING` where a row may exist
 * already. A hash index serves `= ANY (array)` only by a bitmap scan, which the claim and the
 * completion turn off: their statements join the arrays (`unnest`) instead.
 */
export const sql = String.raw`
ALTER TABLE ready DROP CONSTRAINT ready_pkey;
ALTER TABLE ready ADD CONSTRAINT ready_one EXCLUDE USING hash (execution_id WITH =);
ALTER TABLE exec_data DROP CONSTRAINT exec_data_pkey;
ALTER TABLE exec_data ADD CONSTRAINT exec_data_one EXCLUDE USING hash (execution_id WITH =);
`
