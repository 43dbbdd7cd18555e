-- ===========================================================================
-- admin.sql: operator controls — cancel, change priority, revoke a lease,
-- replay a terminal execution — and ping.
-- ===========================================================================

-- ff_cancel_execution: cancelExecution — cancels an execution in any non-terminal phase. An
-- active one needs its current lease (when p_lease is given) unless p_source is
-- operator_override.
--   args:   p_eid, p_reason, p_source (who cancels), p_lease, p_epoch (the expected lease, or
--           NULL), p_now
--   reply:  {"ok": Model.CancelExecutionResult}
--   errors: execution_not_found, execution_not_active, lease_revoked, stale_lease
CREATE FUNCTION ff_cancel_execution(
  p_eid text, p_reason text, p_source text, p_lease uuid, p_epoch bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase = 'terminal' THEN RETURN ffi_not_active(e); END IF;
  IF e.lifecycle_phase = 'active' AND p_source <> 'operator_override' THEN
    IF e.ownership_state = 'lease_revoked' THEN RETURN ffi_err('lease_revoked'); END IF;
    IF p_lease IS NOT NULL AND (e.lease_id IS DISTINCT FROM p_lease OR (p_epoch IS NOT NULL AND e.lease_epoch <> p_epoch)) THEN
      RETURN ffi_err('stale_lease');
    END IF;
  END IF;
  PERFORM ffi_cancel_exec(p_eid, p_reason, p_source, v_now);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Cancelled', 'executionId', p_eid, 'publicState', 'cancelled'));
END $$;

-- ff_change_priority: changePriority — of an execution waiting to be claimed (its entries in the
-- claim indexes move in claim order).
--   args:   p_eid, p_priority (clamped by the layer), p_now
--   reply:  {"ok": Model.ChangePriorityResult}
--   errors: execution_not_found, execution_not_eligible
CREATE FUNCTION ff_change_priority(p_eid text, p_priority int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'runnable' OR e.eligibility_state <> 'eligible_now' THEN
    RETURN ffi_err('execution_not_eligible');
  END IF;
  UPDATE exec_core SET priority = p_priority, last_mutation_at = v_now WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Changed', 'executionId', p_eid));
END $$;

-- ff_revoke_lease: revokeLease — the lease of an active execution is revoked: its holder is
-- fenced and the execution is claimable again (as a reclaim). No lease, an expired or an
-- already revoked one answers AlreadySatisfied.
--   args:   p_eid, p_expected_lease (or NULL), p_wiid, p_reason, p_now
--   reply:  {"ok": Model.RevokeLeaseResult}
--   errors: execution_not_found, execution_not_active, no_active_lease, stale_lease
CREATE FUNCTION ff_revoke_lease(p_eid text, p_expected_lease uuid, p_wiid text, p_reason text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'active' THEN
    -- (a completed row keeps its last run's worker: ffi_run_kept)
    IF e.lease_id IS NULL THEN
      RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'reason', 'no_active_lease'));
    END IF;
    RETURN ffi_not_active(e);
  END IF;
  IF e.ownership_state = 'lease_revoked' THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'reason', 'already_revoked'));
  END IF;
  IF e.ownership_state = 'lease_expired_reclaimable' THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'reason', 'already_expired'));
  END IF;
  IF e.ownership_state <> 'leased' THEN RETURN ffi_err('no_active_lease'); END IF;
  IF p_expected_lease IS NOT NULL AND e.lease_id IS DISTINCT FROM p_expected_lease THEN
    RETURN ffi_err('stale_lease');
  END IF;
  PERFORM ffi_revoked(p_eid);
  PERFORM ffi_run_end(p_eid, 'lease_revoked', p_reason, v_now);
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, ownership_state = 'lease_revoked', eligibility_state = 'not_applicable',
    blocking_reason = 'waiting_for_worker', blocking_detail = 'lease revoked: ' || p_reason,
    attempt_state = 'attempt_interrupted', public_state = 'active',
    lease_revoked_at = v_now, lease_revoke_reason = p_reason, last_mutation_at = v_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  PERFORM ffi_timer_del('lease', p_eid);
  PERFORM ffi_wake_claimable(p_eid);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Revoked', 'leaseId', coalesce(e.lease_id::text, ''),
                                   'leaseEpoch', coalesce(e.lease_epoch, 0)::text));
END $$;

-- ffi_replayed_in_flow: replayed execution e (its row before the replay) is live again in its
-- flow, if any. Called after e's own change, so that the flow's FlowStateChanged (an ended flow
-- reads running again) follows the member's event.
--   args:   e
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_replayed_in_flow(e exec_core) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF e.flow_id IS NULL THEN RETURN; END IF;
  UPDATE flow_core SET live_members = live_members + 1,
    failed_members = greatest(failed_members - CASE WHEN e.terminal_outcome IN ('failed', 'cancelled', 'expired')
                                                    THEN 1 ELSE 0 END, 0)
  WHERE flow_id = e.flow_id;
END $$;

-- ff_replay_execution: replayExecution — a terminal execution runs again as a replay attempt,
-- its result cleared; a skipped flow member gets its impossible dependencies back and waits
-- for them. Its flow counts it as live again (and reopens if it had ended).
--   args:   p_eid, p_now
--   reply:  {"ok": Model.ReplayExecutionResult}
--   errors: execution_not_found, execution_not_terminal, max_replays_exhausted
CREATE FUNCTION ff_replay_execution(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  v_n int;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'terminal' THEN RETURN ffi_err('execution_not_terminal'); END IF;
  IF coalesce(e.replay_count, 0) >= ffi_max_replays(e.max_replay_count) THEN RETURN ffi_err('max_replays_exhausted'); END IF;
  -- the run a completed row keeps joins the history (the updates below clear it)
  PERFORM ffi_run_unkeep(e);
  -- the result cleared where it is (migration 0050): an exec_data row that held only the result goes
  IF e.result IS NOT NULL THEN
    UPDATE exec_core SET result = NULL WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  ELSIF e.payload IS NOT NULL THEN
    DELETE FROM exec_data WHERE ffi_eid(e_part, e_uuid) = p_eid COLLATE "default";
  ELSE
    UPDATE exec_data SET result = NULL WHERE ffi_eid(e_part, e_uuid) = p_eid COLLATE "default";
  END IF;
  IF e.terminal_outcome = 'skipped' AND e.flow_id IS NOT NULL THEN
    UPDATE dep SET state = 'unsatisfied', last_resolved_at = NULL WHERE downstream_id = p_eid AND state = 'impossible';
    UPDATE edge_group SET failed = 0, skipped = 0, group_state = 'pending', satisfied_at = NULL
    WHERE downstream_id = p_eid;
    SELECT count(*) INTO v_n FROM dep WHERE downstream_id = p_eid AND (state = 'unsatisfied') IS TRUE;
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
      blocking_detail = v_n || ' dep(s) unresolved', terminal_outcome = 'none',
      attempt_state = 'pending_replay_attempt', public_state = 'waiting_children',
      replay_count = coalesce(replay_count, 0) + 1, completed_at = NULL,
    worker_id = NULL, worker_instance_id = NULL, lease_acquired_at = NULL, pending_replay_reason = 'replay',
      pending_previous_attempt_index = CASE WHEN current_attempt_id IS NULL THEN NULL ELSE current_attempt_index END,
      last_mutation_at = v_now
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    PERFORM ffi_replayed_in_flow(e);
    RETURN ffi_ok(jsonb_build_object('_tag', 'Replayed', 'publicState', 'waiting_children'));
  END IF;
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'runnable', ownership_state = 'unowned', eligibility_state = 'eligible_now',
    blocking_reason = 'waiting_for_worker', blocking_detail = '', terminal_outcome = 'none',
    attempt_state = 'pending_replay_attempt', public_state = 'waiting',
    replay_count = coalesce(replay_count, 0) + 1, completed_at = NULL,
    worker_id = NULL, worker_instance_id = NULL, lease_acquired_at = NULL, pending_replay_reason = 'replay',
    pending_previous_attempt_index = CASE WHEN current_attempt_id IS NULL THEN NULL ELSE current_attempt_index END,
    last_mutation_at = v_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  PERFORM ffi_wake_claimable(p_eid);
  PERFORM ffi_replayed_in_flow(e);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Replayed', 'publicState', 'waiting'));
END $$;

-- ff_ping: ping — the schema answers.
--   args:   p_now
--   reply:  {"ok": null}
--   errors: -
CREATE FUNCTION ff_ping(p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok());
END $$;
