/**
 * Migration 0052: `lane_count`'s rows of server processes, by process (docs/design/postgres.md,
 * "Lane queries"; docs/design/maintenance.md, "Trim retention").
 *
 * The retention pass folds the count rows of ended processes into shard 0. It found them by
 * reading `lane_count` whole, a row per lane, public state and process that counted in it, at
 * every pass. With this index it reads the shards in use (one probe each, a skip scan) and the
 * rows of the ended ones. The shard of a row never changes, so the updates of a count stay HOT;
 * a row's insert (a lane and state counted by a process for the first time) writes one entry more.
 */
export const sql = String.raw`
CREATE INDEX lane_count_shard ON lane_count (shard) WHERE shard <> 0;
`
