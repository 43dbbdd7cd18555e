-- ===========================================================================
-- history.sql: what a snapshot tells about an execution's past, kept out of
-- exec_core (docs/design/executions.md, "Attempt history"): the runs of its
-- attempts (exec_history, one row per lease that ended, the last 20 =
-- Limits.historyRuns; the run a completion ended stays in the completed
-- exec_core row instead, until a replay) and its last failure (exec_failure),
-- written by the transition they record, in its transaction.
-- ===========================================================================

-- ffi_cut_reason: p cut to 256 bytes of UTF-8 (Limits.historyReasonBytes) at a character
-- boundary; NULL for NULL or ''.
--   args:   p
--   reply:  text
--   errors: -
CREATE FUNCTION ffi_cut_reason(p text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE b bytea; n int := 256;
BEGIN
  IF p IS NULL OR p = '' THEN RETURN NULL; END IF;
  IF octet_length(p) <= n THEN RETURN p; END IF;
  b := convert_to(p, 'UTF8');
  -- get_byte counts from 0: byte n is the first one cut off
  WHILE n > 0 AND (get_byte(b, n) & 192) = 128 LOOP n := n - 1; END LOOP;
  RETURN convert_from(substring(b FROM 1 FOR n), 'UTF8');
END $$;

-- ffi_runs_end: ends the run of each execution of p_eids that holds a lease (phase active,
-- ownership leased): the run joins its history, which keeps the last 20. Called before the
-- transition's exec_core update, with the rows locked. The run's kind is "resumed" when its lease
-- took up the interrupted attempt (the attempt was resumed when the lease was acquired), else
-- the attempt's type.
--   args:   p_eids, p_outcome (Model.AttemptRunOutcome), p_reason (NULL for none), p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_runs_end(p_eids text[], p_outcome text, p_reason text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  WITH ended AS (
    INSERT INTO exec_history (execution_id, seq, attempt_index, kind, worker_id, worker_instance_id, started_at,
      ended_at, outcome, reason)
    SELECT x.id,
      coalesce((SELECT h.seq + 1 FROM exec_history h WHERE h.execution_id = x.id
                ORDER BY h.seq DESC LIMIT 1), 0),
      c.current_attempt_index,
      coalesce(c.run_kind, 'initial'),
      c.worker_id, c.worker_instance_id, c.lease_acquired_at, p_now, p_outcome, ffi_cut_reason(p_reason)
    FROM (SELECT DISTINCT u.id FROM unnest(p_eids) AS u(id)) x
    JOIN LATERAL (SELECT * FROM exec_core c
        WHERE c.partition_key = ffi_eid_part(x.id) AND c.e_uuid = ffi_eid_uuid(x.id) OFFSET 0) c ON true
    WHERE c.lifecycle_phase = 'active' AND c.ownership_state = 'leased'
    RETURNING execution_id, seq
  )
  DELETE FROM exec_history h USING ended WHERE h.execution_id = ended.execution_id AND h.seq <= ended.seq - 20;
END $$;

-- ffi_run_end: ffi_runs_end for one execution.
--   args:   p_eid, p_outcome, p_reason, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_run_end(p_eid text, p_outcome text, p_reason text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_runs_end(ARRAY[p_eid], p_outcome, p_reason, p_now);
END $$;

-- ffi_record_failure: records the last failure of execution p_eid.
--   args:   p_eid, p_reason, p_class (Model.FailureClass), p_category, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_record_failure(p_eid text, p_reason text, p_class text, p_category text, p_now bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO exec_failure (execution_id, failed_at, classification, category, reason)
  VALUES (p_eid, p_now, p_class, p_category, p_reason)
  ON CONFLICT (execution_id) DO UPDATE SET failed_at = EXCLUDED.failed_at,
    classification = EXCLUDED.classification, category = EXCLUDED.category, reason = EXCLUDED.reason;
END $$;

-- ffi_run_kept: whether execution e keeps its last run in exec_core instead of exec_history: a
-- completion's common case (ff_complete, ff_complete_set) leaves the run's worker, start and kind
-- in the completed row (the only terminal rows with a worker).
--   args:   e (its exec_core row)
--   reply:  boolean
--   errors: -
CREATE FUNCTION ffi_run_kept(e exec_core) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT e.lifecycle_phase = 'terminal' AND e.terminal_outcome = 'success' AND e.worker_instance_id IS NOT NULL
$$;

-- ffi_run_unkeep: moves the run execution e (locked) keeps in exec_core (ffi_run_kept) to
-- exec_history, which keeps the last 20; the caller's update of the row clears it (worker_id,
-- worker_instance_id, lease_acquired_at). Nothing when it keeps none.
--   args:   e (its exec_core row)
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_run_unkeep(e exec_core) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_seq int;
BEGIN
  IF NOT ffi_run_kept(e) THEN RETURN; END IF;
  v_seq := coalesce((SELECT h.seq + 1 FROM exec_history h WHERE h.execution_id = ffi_eid(e.partition_key, e.e_uuid)
                     ORDER BY h.seq DESC LIMIT 1), 0);
  INSERT INTO exec_history (execution_id, seq, attempt_index, kind, worker_id, worker_instance_id, started_at,
    ended_at, outcome, reason)
  VALUES (ffi_eid(e.partition_key, e.e_uuid), v_seq, e.current_attempt_index, coalesce(e.run_kind, 'initial'), e.worker_id,
    e.worker_instance_id, e.lease_acquired_at, e.completed_at, 'completed', NULL);
  DELETE FROM exec_history WHERE execution_id = ffi_eid(e.partition_key, e.e_uuid) AND seq <= v_seq - 20;
END $$;

-- ffi_history_json: the history fields of execution e's snapshot: attemptHistory (the stored
-- runs, the run a completed row keeps (ffi_run_kept) and the run holding the lease, the last 20,
-- oldest first) and lastFailure when there is one.
--   args:   e (its exec_core row)
--   reply:  jsonb {"attemptHistory": [Model.AttemptRun], "lastFailure"?: Model.LastFailure}
--   errors: -
CREATE FUNCTION ffi_history_json(e exec_core) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object('attemptHistory', coalesce((
    SELECT jsonb_agg(r.run ORDER BY r.seq) FROM (
      SELECT x.seq, x.run FROM (
        SELECT h.seq, jsonb_strip_nulls(jsonb_build_object('attemptIndex', h.attempt_index, 'kind', h.kind,
          'workerId', h.worker_id, 'workerInstanceId', h.worker_instance_id, 'startedAt', h.started_at,
          'endedAt', h.ended_at, 'outcome', h.outcome, 'reason', h.reason)) AS run
        FROM exec_history h WHERE h.execution_id = ffi_eid(e.partition_key, e.e_uuid)
        UNION ALL
        SELECT 2147483647, jsonb_build_object('attemptIndex', e.current_attempt_index,
          'kind', coalesce(e.run_kind, 'initial'),
          'workerId', e.worker_id, 'workerInstanceId', e.worker_instance_id, 'startedAt', e.lease_acquired_at,
          'outcome', 'running')
        WHERE e.lifecycle_phase = 'active' AND e.ownership_state = 'leased'
        UNION ALL
        SELECT 2147483646, jsonb_strip_nulls(jsonb_build_object('attemptIndex', e.current_attempt_index,
          'kind', coalesce(e.run_kind, 'initial'),
          'workerId', e.worker_id, 'workerInstanceId', e.worker_instance_id, 'startedAt', e.lease_acquired_at,
          'endedAt', e.completed_at, 'outcome', 'completed'))
        WHERE ffi_run_kept(e)
      ) x ORDER BY x.seq DESC LIMIT 20
    ) r), '[]'::jsonb))
  || coalesce((SELECT jsonb_build_object('lastFailure', jsonb_build_object('reason', f.reason,
        'classification', f.classification, 'category', f.category, 'at', f.failed_at))
      FROM exec_failure f WHERE f.execution_id = ffi_eid(e.partition_key, e.e_uuid)), '{}'::jsonb)
$$;
