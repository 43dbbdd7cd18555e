/**
 * Migration 0052: two indexes for plans made while the tables were small (docs/design/postgres.md,
 * "The function library").
 *
 * - `lane_count_shard`: `lane_count`'s rows of server processes, by process. The retention pass
 *   folds the count rows of ended processes into shard 0; it found them by reading `lane_count`
 *   whole (a row per lane, public state and process that counted in it) at every pass. With this
 *   index it reads the shards in use (one probe each, a skip scan) and the rows of the ended ones.
 *   The shard of a row never changes, so the updates of a count stay HOT; a row's insert (a lane
 *   and state counted by a process for the first time) writes one entry more.
 * - `waitpoint_by_execution` on the execution id alone (it also held the waitpoint id). On a table
 *   of a few rows a look-up by waitpoint id cost the same through the key and through a scan of
 *   this whole index with the id as its second column, and PostgreSQL keeps the newest index of
 *   equal paths: a session that planned `ff_suspend`'s check of its new waitpoint ids while
 *   `waitpoint` was small read the whole index at every suspension after. No look-up by waitpoint
 *   id can use it now; an execution's waitpoints (a few) are read through it and their rows.
 */
export const sql = String.raw`
CREATE INDEX lane_count_shard ON lane_count (shard) WHERE shard <> 0;
DROP INDEX waitpoint_by_execution;
CREATE INDEX waitpoint_by_execution ON waitpoint (execution_id);
`
