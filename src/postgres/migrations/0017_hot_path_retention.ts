/**
 * Migration 0017: the submit → claim → complete hot path, measured again
 * (pg_stat_user_functions, bench submit-claim-complete).
 *
 * - The retention timer is armed by the terminal paths themselves instead of
 *   0016's row trigger, which cost ~56 µs per completed execution (an
 *   after-trigger event, a PL/pgSQL call with its own search_path, a separate
 *   statement): `ffi_terminate` and the inlined `ff_complete` arm it right after
 *   their `exec_core` update, under the trigger's condition (outside flows, and
 *   `completed_at` changed). Those are the only writers of a non-null
 *   `completed_at`; same timer rows, same due times.
 * - `exec_core` and `attempt` rows are updated in place (HOT) again: a claim
 *   and a completion each write a new version of the row, which did not fit
 *   the page at fillfactor 80 (measured: 39 % / 37 % of the updates HOT, so
 *   the rest inserted into every index); at 50 about 95 % are.
 */
export const sql = String.raw`
DROP TRIGGER IF EXISTS exec_core_retention_arm ON exec_core;

ALTER TABLE exec_core SET (fillfactor = 50);
ALTER TABLE attempt SET (fillfactor = 50);

-- Arms (or moves) the retention timer of execution p_eid completed at p_completed (outside flows).
CREATE OR REPLACE FUNCTION ffi_retention_set(p_eid text, p_completed bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO timer (kind, ref, due_at)
  SELECT 'retention', p_eid, p_completed + ffi_retention_ms(d.policy) FROM exec_data d WHERE d.execution_id = p_eid
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at
$$;

CREATE OR REPLACE FUNCTION ffi_terminate(
  p_eid text, p_outcome text, p_attempt_end text, p_attempt_reason text, p_failure_reason text,
  p_cancel_reason text, p_cancelled_by text, p_stream_reason text, p_close_reason text,
  p_now bigint, p_resolve boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid;
  IF NOT FOUND OR e.lifecycle_phase = 'terminal' THEN RETURN; END IF;
  IF e.current_attempt_index IS NOT NULL THEN
    UPDATE attempt SET attempt_state = p_attempt_end, ended_at = p_now,
      failure_reason = coalesce(p_attempt_reason, failure_reason)
    WHERE execution_id = p_eid AND attempt_index = e.current_attempt_index
      AND attempt_state IN ('created', 'started', 'suspended');
    PERFORM ffi_stream_close(p_eid, e.current_attempt_index, p_stream_reason, p_now);
  END IF;
  IF e.lifecycle_phase = 'suspended' OR e.current_suspension_id IS NOT NULL THEN
    PERFORM ffi_suspension_close(p_eid, p_close_reason, p_now);
  END IF;
  UPDATE exec_core SET lifecycle_phase = 'terminal', ownership_state = 'unowned',
    eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '',
    terminal_outcome = p_outcome,
    attempt_state = CASE WHEN total_attempt_count > 0 THEN 'attempt_terminal'
                         WHEN p_outcome = 'skipped' THEN 'none' ELSE attempt_state END,
    public_state = ffi_public_state('terminal', 'not_applicable', p_outcome),
    completed_at = p_now, lease_id = NULL, worker_id = NULL, worker_instance_id = NULL,
    lease_expires_at = NULL, lease_last_renewed_at = NULL, lease_acquired_at = NULL,
    current_suspension_id = NULL, current_waitpoint_id = NULL, delay_until = NULL, attempt_timeout_at = NULL,
    has_grant = false, failure_reason = coalesce(p_failure_reason, failure_reason),
    cancellation_reason = coalesce(p_cancel_reason, cancellation_reason),
    cancelled_by = coalesce(p_cancelled_by, cancelled_by),
    last_transition_at = p_now, last_mutation_at = p_now
  WHERE execution_id = p_eid;
  IF e.flow_id IS NULL AND p_now IS NOT NULL AND e.completed_at IS DISTINCT FROM p_now THEN
    PERFORM ffi_retention_set(p_eid, p_now);
  END IF;
  PERFORM ffi_after_terminal(p_eid, e.flow_id, p_outcome, p_now, p_resolve, e.has_grant);
END $$;

CREATE OR REPLACE FUNCTION ff_complete(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_payload bytea, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  v_err jsonb;
  v_flow_state text;
  v_nodes int;
  v_live int;
  v_failed int;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  -- the handle owns the lease: the whole ladder of ffi_lease_check passes
  IF NOT (e.lifecycle_phase = 'active' AND e.ownership_state <> 'lease_revoked'
          AND (e.lease_expires_at IS NULL OR e.lease_expires_at > v_now)
          AND e.lease_id = p_lease AND e.lease_epoch = p_epoch AND e.current_attempt_id = p_att) THEN
    v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
    IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  END IF;
  IF p_payload IS NOT NULL AND length(p_payload) > 0 THEN
    UPDATE exec_data SET result = p_payload WHERE execution_id = p_eid;
  END IF;
  IF e.has_grant OR e.current_suspension_id IS NOT NULL
     OR e.current_attempt_index IS NULL OR e.lifecycle_phase <> 'active' THEN
    PERFORM ffi_terminate(p_eid, 'success', 'ended_success', NULL, NULL, NULL, NULL,
                          'attempt_success', 'completed', v_now, true);
    RETURN ffi_ok();
  END IF;
  -- ffi_terminate + ffi_after_terminal for this case
  UPDATE attempt SET attempt_state = 'ended_success', ended_at = v_now
  WHERE execution_id = p_eid AND attempt_index = e.current_attempt_index
    AND attempt_state IN ('created', 'started', 'suspended');
  UPDATE stream_meta SET closed_at = v_now, closed_reason = 'attempt_success'
  WHERE execution_id = p_eid AND attempt_index = e.current_attempt_index AND closed_at IS NULL;
  UPDATE exec_core SET lifecycle_phase = 'terminal', ownership_state = 'unowned',
    eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '',
    terminal_outcome = 'success',
    attempt_state = CASE WHEN total_attempt_count > 0 THEN 'attempt_terminal' ELSE attempt_state END,
    public_state = 'completed',
    completed_at = v_now, lease_id = NULL, worker_id = NULL, worker_instance_id = NULL,
    lease_expires_at = NULL, lease_last_renewed_at = NULL, lease_acquired_at = NULL,
    current_suspension_id = NULL, current_waitpoint_id = NULL, delay_until = NULL, attempt_timeout_at = NULL,
    has_grant = false, last_transition_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  -- the retention timer (0016's trigger, inline)
  IF e.flow_id IS NULL AND v_now IS NOT NULL AND e.completed_at IS DISTINCT FROM v_now THEN
    INSERT INTO timer (kind, ref, due_at)
    SELECT 'retention', p_eid, v_now + ffi_retention_ms(d.policy) FROM exec_data d WHERE d.execution_id = p_eid
    ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  END IF;
  DELETE FROM ready WHERE execution_id = p_eid;
  DELETE FROM timer WHERE ref = p_eid AND kind IN ('delay', 'lease', 'attempt_timeout', 'deadline', 'suspension');
  IF e.flow_id IS NOT NULL THEN
    -- the flow steps of ffi_after_terminal (P4) for a success
    PERFORM ffi_resolve_from(p_eid, 'success', v_now);
    UPDATE flow_core SET live_members = greatest(live_members - 1, 0)
    WHERE flow_id = e.flow_id
    RETURNING public_flow_state, node_count, live_members, failed_members
    INTO v_flow_state, v_nodes, v_live, v_failed;
    IF NOT FOUND OR v_flow_state = 'cancelling' THEN
      DELETE FROM cancel_owed WHERE flow_id = e.flow_id AND execution_id = p_eid;
      PERFORM ffi_flow_settle(e.flow_id, v_now);
    ELSIF v_flow_state = 'open' AND v_nodes > 0 AND v_live = 0 THEN
      -- ffi_flow_settle of an open flow whose last member ended (the row is locked by the update)
      UPDATE flow_core SET public_flow_state = CASE WHEN v_failed > 0 THEN 'failed' ELSE 'completed' END,
        last_mutation_at = v_now
      WHERE flow_id = e.flow_id;
    END IF;
  END IF;
  RETURN ffi_ok();
END $$;
`
