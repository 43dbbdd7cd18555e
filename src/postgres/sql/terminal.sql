-- ===========================================================================
-- terminal.sql: ending an execution — the terminal transition every path
-- shares (complete's fast path inlines it), the suspension it closes and the
-- retention timer it arms.
-- ===========================================================================

-- ffi_suspension_close: closes the open suspension of execution p_eid and its pending or
-- active waitpoints, and disarms the suspension timeout.
--   args:   p_eid, p_reason (the close reason stored on both), p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_suspension_close(p_eid text, p_reason text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE v_sid uuid;
BEGIN
  UPDATE suspension SET closed_at = p_now, close_reason = p_reason
  WHERE execution_id = p_eid AND closed_at IS NULL RETURNING suspension_id INTO v_sid;
  IF FOUND THEN
    UPDATE waitpoint SET state = 'closed', closed_at = p_now, close_reason = p_reason
    WHERE execution_id = p_eid AND suspension_id = v_sid AND state IN ('pending', 'active');
    PERFORM ffi_timer_del('suspension', p_eid);
  END IF;
END $$;

-- ffi_retention_ms: how long a terminal execution outside a flow is kept: the policy's
-- stream_policy.retention_ttl_ms, 24 h by default.
--   args:   p_policy (exec_data.policy)
--   reply:  bigint (ms)
--   errors: -
CREATE FUNCTION ffi_retention_ms(p_policy jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((p_policy -> 'stream_policy' ->> 'retention_ttl_ms')::bigint, 86400000)
$$;

-- ffi_retention_set: arms (or moves) the retention timer of execution p_eid, which ended at
-- p_completed. Only executions outside flows are armed (the callers check): flow members are
-- never deleted by retention.
--   args:   p_eid, p_completed (ms)
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_retention_set(p_eid text, p_completed bigint) RETURNS void LANGUAGE sql AS $$
  -- (the policy is exec_data's: an execution without that row, its input inline, has none)
  INSERT INTO timer (kind, ref, due_at)
  VALUES ('retention', p_eid,
          p_completed + ffi_retention_ms((SELECT d.policy FROM exec_data d WHERE ffi_eid(d.e_part, d.e_uuid) = p_eid COLLATE "default")))
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at
$$;

-- ffi_after_terminal: the common tail of every terminal transition: drops the execution's
-- timers and claim grant and, for a flow member, resolves its outgoing edges (when
-- p_resolve), updates the flow's member counts, clears what a flow cancellation owed for it and
-- settles the flow.
--   args:   p_eid, p_flow (its flow or NULL), p_outcome (success, failed, cancelled, expired,
--           skipped), p_now, p_resolve, p_has_grant (a claim grant row may exist)
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_after_terminal(
  p_eid text, p_flow uuid, p_outcome text, p_now bigint, p_resolve boolean, p_has_grant boolean
)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM timer WHERE ref = p_eid AND kind IN ('delay', 'lease', 'attempt_timeout', 'deadline', 'suspension');
  IF p_has_grant THEN DELETE FROM claim_grant WHERE execution_id = p_eid; END IF;
  IF p_flow IS NOT NULL THEN
    IF p_resolve THEN PERFORM ffi_resolve_from(p_eid, p_outcome, p_now); END IF;
    UPDATE flow_core SET live_members = greatest(live_members - 1, 0),
      failed_members = failed_members + CASE WHEN p_outcome IN ('failed', 'cancelled', 'expired') THEN 1 ELSE 0 END
    WHERE flow_id = p_flow;
    DELETE FROM cancel_owed WHERE flow_id = p_flow AND execution_id = p_eid;
    PERFORM ffi_flow_settle(p_flow, p_now);
  END IF;
END $$;

-- ffi_terminate: ends execution p_eid (any non-terminal phase) with outcome p_outcome: ends its
-- run (when it holds a lease: the reason is p_cancel_reason for a cancellation, else
-- p_attempt_reason), its current attempt and stream, closes its suspension, writes the terminal state vector, arms the
-- retention timer (outside flows) and runs ffi_after_terminal. A terminal execution is left as
-- it is. The caller holds the exec_core row lock.
--   args:   p_eid, p_outcome, p_attempt_reason,
--           p_failure_reason, p_cancel_reason, p_cancelled_by (NULL keeps the stored value),
--           p_stream_reason (the stream's close reason), p_close_reason (the suspension's),
--           p_now, p_resolve (resolve the outgoing edges now)
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_terminate(
  p_eid text, p_outcome text, p_attempt_reason text, p_failure_reason text,
  p_cancel_reason text, p_cancelled_by text, p_stream_reason text, p_close_reason text,
  p_now bigint, p_resolve boolean
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  IF NOT FOUND OR e.lifecycle_phase = 'terminal' THEN RETURN; END IF;
  IF e.lifecycle_phase = 'active' AND e.ownership_state = 'leased' THEN
    PERFORM ffi_run_end(p_eid, CASE p_outcome WHEN 'success' THEN 'completed' ELSE p_outcome END,
                        CASE WHEN p_outcome = 'cancelled' THEN p_cancel_reason ELSE p_attempt_reason END, p_now);
  END IF;
  IF e.current_attempt_index IS NOT NULL THEN
    PERFORM ffi_stream_close(p_eid, e.current_attempt_index, p_stream_reason, p_now);
  END IF;
  IF e.lifecycle_phase = 'suspended' OR e.current_suspension_id IS NOT NULL THEN
    PERFORM ffi_suspension_close(p_eid, p_close_reason, p_now);
  END IF;
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'terminal', ownership_state = 'unowned',
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
    last_mutation_at = p_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  IF e.flow_id IS NULL AND p_now IS NOT NULL AND e.completed_at IS DISTINCT FROM p_now THEN
    PERFORM ffi_retention_set(p_eid, p_now);
  END IF;
  PERFORM ffi_after_terminal(p_eid, e.flow_id, p_outcome, p_now, p_resolve, e.has_grant);
END $$;

-- ffi_cancel_exec: cancels execution p_eid from runnable, active or suspended. The caller holds
-- the exec_core row lock.
--   args:   p_eid, p_reason, p_source (who cancels: '' = the execution itself, 'flow_cascade'
--           = a flow cancellation, which resolves the edges itself), p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_cancel_exec(p_eid text, p_reason text, p_source text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF p_source <> 'worker' THEN PERFORM ffi_revoked(p_eid); END IF;
  PERFORM ffi_terminate(p_eid, 'cancelled', 'cancelled: ' || p_reason, NULL, p_reason,
                        CASE WHEN p_source = '' THEN p_eid ELSE p_source END,
                        'attempt_cancelled', 'cancelled', p_now, p_source <> 'flow_cascade');
END $$;
