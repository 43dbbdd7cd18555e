/**
 * Migration 0018: `completeMany` completes its batch set-based.
 *
 * `ff_complete` once per row of a batch ran seven statements per execution,
 * each paying an executor start (measured: a flat server profile of executor
 * and expression initialisation). `ff_complete_set` takes the batch as arrays
 * and, for the common case — an execution outside any flow whose handle owns
 * the lease, without grant or suspension, named once in the batch — writes
 * each table in one statement for all of them: the rows of `ff_complete`'s
 * inlined path (0012, 0017), the retention timer included. Every other row
 * goes through `ff_complete` itself, in batch order. One reply per row, in
 * order, as `ff_complete`'s. Rows of the common case touch only their own
 * execution, so taking them first leaves every reply and row as before.
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ff_complete_set(
  p_eid text[], p_idx int[], p_att uuid[], p_lease uuid[], p_epoch bigint[], p_payload bytea[], p_now bigint
) RETURNS SETOF jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_bitmapscan = off SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  f_ids text[];
  f_cai int[];
  f_arm text[];
  v_i int;
BEGIN
  -- the common case, locked (rows that do not qualify once locked are left to ff_complete)
  SELECT coalesce(array_agg(c.execution_id), '{}'), coalesce(array_agg(c.current_attempt_index), '{}'),
         coalesce(array_agg(c.execution_id) FILTER (WHERE c.completed_at IS DISTINCT FROM v_now), '{}')
  INTO f_ids, f_cai, f_arm
  FROM (
    SELECT c.execution_id, c.current_attempt_index, c.completed_at
    FROM unnest(p_eid, p_att, p_lease, p_epoch) AS t(id, att, lease, epoch)
    JOIN exec_core c ON c.execution_id = t.id
    WHERE c.lifecycle_phase = 'active' AND c.ownership_state <> 'lease_revoked'
      AND (c.lease_expires_at IS NULL OR c.lease_expires_at > v_now)
      AND c.lease_id = t.lease AND c.lease_epoch = t.epoch AND c.current_attempt_id = t.att
      AND c.flow_id IS NULL AND NOT c.has_grant AND c.current_suspension_id IS NULL
      AND c.current_attempt_index IS NOT NULL
      AND (SELECT count(*) FROM unnest(p_eid) AS d(id) WHERE d.id = t.id) = 1
    ORDER BY c.execution_id
    FOR UPDATE OF c
  ) c;
  IF cardinality(f_ids) > 0 THEN
    UPDATE exec_data d SET result = t.payload
    FROM unnest(p_eid, p_payload) AS t(id, payload)
    WHERE t.id = ANY (f_ids) AND d.execution_id = t.id AND t.payload IS NOT NULL AND length(t.payload) > 0;
    UPDATE attempt a SET attempt_state = 'ended_success', ended_at = v_now
    FROM unnest(f_ids, f_cai) AS f(id, cai)
    WHERE a.execution_id = f.id AND a.attempt_index = f.cai AND a.attempt_state IN ('created', 'started', 'suspended');
    UPDATE stream_meta s SET closed_at = v_now, closed_reason = 'attempt_success'
    FROM unnest(f_ids, f_cai) AS f(id, cai)
    WHERE s.execution_id = f.id AND s.attempt_index = f.cai AND s.closed_at IS NULL;
    UPDATE exec_core SET lifecycle_phase = 'terminal', ownership_state = 'unowned',
      eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '',
      terminal_outcome = 'success',
      attempt_state = CASE WHEN total_attempt_count > 0 THEN 'attempt_terminal' ELSE attempt_state END,
      public_state = 'completed',
      completed_at = v_now, lease_id = NULL, worker_id = NULL, worker_instance_id = NULL,
      lease_expires_at = NULL, lease_last_renewed_at = NULL, lease_acquired_at = NULL,
      current_suspension_id = NULL, current_waitpoint_id = NULL, delay_until = NULL, attempt_timeout_at = NULL,
      has_grant = false, last_transition_at = v_now, last_mutation_at = v_now
    WHERE execution_id = ANY (f_ids);
    IF cardinality(f_arm) > 0 THEN
      INSERT INTO timer (kind, ref, due_at)
      SELECT 'retention', d.execution_id, v_now + ffi_retention_ms(d.policy)
      FROM exec_data d WHERE d.execution_id = ANY (f_arm)
      ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
    END IF;
    DELETE FROM ready WHERE execution_id = ANY (f_ids);
    DELETE FROM timer WHERE ref = ANY (f_ids) AND kind IN ('delay', 'lease', 'attempt_timeout', 'deadline', 'suspension');
  END IF;
  FOR v_i IN 1 .. coalesce(cardinality(p_eid), 0) LOOP
    IF p_eid[v_i] = ANY (f_ids) THEN
      RETURN NEXT ffi_ok();
    ELSE
      RETURN NEXT ff_complete(p_eid[v_i], p_idx[v_i], p_att[v_i], p_lease[v_i], p_epoch[v_i], p_payload[v_i], p_now);
    END IF;
  END LOOP;
  RETURN;
END $$;
`
