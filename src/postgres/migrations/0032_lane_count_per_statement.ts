/**
 * Migration 0032: the lane counts follow the changes of `public_state` once per statement
 * (docs/design/reads.md#lane-queries, docs/design/postgres.md, "Storage").
 *
 * 0028's row trigger moved each execution that changed state with two count upserts, so a claim
 * of 64 executions wrote 128 versions of the same two `lane_count` rows (and their WAL). The
 * statement trigger below reads the statement's old and new rows (transition tables) and writes
 * one upsert per lane and state whose count the statement changed: two for such a claim. It runs
 * after every `UPDATE` of `exec_core` (a trigger with transition tables cannot name columns) and
 * writes nothing when no public state changed. It runs inside the calling function's planner
 * settings (the claim turns sorts off), so it sorts nothing (the count rows are the process's own:
 * no lock order is needed) and never JIT-compiles (a disabled plan's cost would start it).
 */
export const sql = String.raw`
DROP TRIGGER exec_core_lane_count_move ON exec_core;
DROP FUNCTION ffi_lane_count_move();

-- The net change of each lane's count per public state made by one UPDATE statement.
CREATE FUNCTION ffi_lane_count_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
BEGIN
  INSERT INTO lane_count (lane_id, public_state, shard, n)
  SELECT v.lane_id, v.public_state, pg_backend_pid(), sum(v.d)
  FROM ffi_old o JOIN ffi_new n ON n.execution_id = o.execution_id
  CROSS JOIN LATERAL (VALUES (o.lane_id, o.public_state, -1), (n.lane_id, n.public_state, 1)) AS v(lane_id, public_state, d)
  WHERE n.public_state IS DISTINCT FROM o.public_state OR n.lane_id IS DISTINCT FROM o.lane_id
  GROUP BY 1, 2 HAVING sum(v.d) <> 0
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE TRIGGER exec_core_lane_count_update AFTER UPDATE ON exec_core
  REFERENCING OLD TABLE AS ffi_old NEW TABLE AS ffi_new FOR EACH STATEMENT EXECUTE FUNCTION ffi_lane_count_update();
`
