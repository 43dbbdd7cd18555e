/**
 * Migration 0029: lane queries (docs/design/reads.md#lane-queries).
 *
 * - `exec_core_by_lane`: each lane's executions by creation time, then id, for
 *   `listLaneExecutions`. Its columns never change after the insert, so a transition stays a HOT
 *   update; the public state is checked on the row.
 * - `lane_count`: each lane's count per public state, for `countLaneExecutions`, kept by the
 *   triggers below in the transaction of every insert, delete and change of `public_state`.
 *   Each server process writes rows of its own (`shard` = its backend pid), so concurrent
 *   transactions never wait for one another's count rows (and cannot deadlock on them); a count
 *   sums a lane's rows. `n` is in no index, so a count update is a HOT update. The retention
 *   pass folds the rows of processes that have ended into shard 0.
 * - The trigger functions live here, with the triggers that need them (the function library is
 *   replaced by version and never holds a function a trigger depends on).
 */
export const sql = String.raw`
CREATE INDEX exec_core_by_lane ON exec_core (lane_id, created_at, execution_id);

CREATE TABLE lane_count (
  lane_id      text COLLATE "C" NOT NULL,
  public_state text NOT NULL,
  shard        int NOT NULL,
  n            bigint NOT NULL,
  PRIMARY KEY (lane_id, public_state, shard)
) WITH (fillfactor = 50);

-- Rows inserted or deleted by one statement: one count update per lane and state.
CREATE FUNCTION ffi_lane_count_rows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO lane_count (lane_id, public_state, shard, n)
    SELECT lane_id, public_state, pg_backend_pid(), count(*) FROM ffi_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  ELSE
    INSERT INTO lane_count (lane_id, public_state, shard, n)
    SELECT lane_id, public_state, pg_backend_pid(), -count(*) FROM ffi_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$;

-- One row's public state changed.
CREATE FUNCTION ffi_lane_count_move() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO lane_count (lane_id, public_state, shard, n) VALUES (OLD.lane_id, OLD.public_state, pg_backend_pid(), -1)
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n - 1;
  INSERT INTO lane_count (lane_id, public_state, shard, n) VALUES (NEW.lane_id, NEW.public_state, pg_backend_pid(), 1)
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + 1;
  RETURN NULL;
END $$;

CREATE TRIGGER exec_core_lane_count_insert AFTER INSERT ON exec_core
  REFERENCING NEW TABLE AS ffi_rows FOR EACH STATEMENT EXECUTE FUNCTION ffi_lane_count_rows();
CREATE TRIGGER exec_core_lane_count_delete AFTER DELETE ON exec_core
  REFERENCING OLD TABLE AS ffi_rows FOR EACH STATEMENT EXECUTE FUNCTION ffi_lane_count_rows();
CREATE TRIGGER exec_core_lane_count_move AFTER UPDATE OF public_state ON exec_core
  FOR EACH ROW WHEN (OLD.public_state IS DISTINCT FROM NEW.public_state) EXECUTE FUNCTION ffi_lane_count_move();
`
