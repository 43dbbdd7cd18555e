/**
 * Migration 0006: execution reads, operator controls (cancel_execution,
 * change_priority, replay, revoke_lease), grant-based claims and the
 * maintenance passes (each one bounded batch, one transaction).
 */
export const sql = String.raw`
-- ---------------------------------------------------------------------------
-- execution reads
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_describe_execution(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((
    SELECT jsonb_strip_nulls(jsonb_build_object(
      'executionId', e.execution_id, 'flowId', e.flow_id, 'laneId', e.lane_id, 'namespace', e.namespace,
      'publicState', e.public_state, 'blockingReason', nullif(e.blocking_reason, 'none'),
      'blockingDetail', nullif(e.blocking_detail, ''),
      'currentAttempt', CASE WHEN e.current_attempt_id IS NOT NULL THEN
        jsonb_build_object('attemptId', e.current_attempt_id, 'attemptIndex', e.current_attempt_index) END,
      'currentLease', CASE WHEN e.worker_instance_id IS NOT NULL AND e.lease_expires_at IS NOT NULL THEN
        jsonb_strip_nulls(jsonb_build_object('leaseEpoch', e.lease_epoch, 'workerInstanceId', e.worker_instance_id,
          'expiresAt', e.lease_expires_at, 'leaseId', e.lease_id, 'attemptIndex', e.current_attempt_index,
          'lastHeartbeatAt', e.lease_last_renewed_at)) END,
      'currentWaitpoint', e.current_waitpoint_id, 'createdAt', e.created_at, 'lastMutationAt', e.last_mutation_at,
      'totalAttemptCount', e.total_attempt_count)) || jsonb_build_object('tags', coalesce(d.tags, '{}'::jsonb))
    FROM exec_core e LEFT JOIN exec_data d ON d.execution_id = e.execution_id
    WHERE e.execution_id = p_eid)));
END $$;

CREATE OR REPLACE FUNCTION ff_read_execution_info(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((
    SELECT jsonb_strip_nulls(jsonb_build_object(
      'executionId', e.execution_id, 'namespace', e.namespace, 'laneId', e.lane_id, 'priority', e.priority,
      'executionKind', e.execution_kind,
      'stateVector', jsonb_build_object('lifecyclePhase', e.lifecycle_phase, 'ownershipState', e.ownership_state,
        'eligibilityState', e.eligibility_state, 'blockingReason', e.blocking_reason,
        'terminalOutcome', e.terminal_outcome, 'attemptState', e.attempt_state, 'publicState', e.public_state),
      'publicState', e.public_state, 'createdAt', e.created_at::text, 'startedAt', e.started_at::text,
      'completedAt', e.completed_at::text, 'currentAttemptIndex', coalesce(e.current_attempt_index, 0),
      'flowId', e.flow_id::text)) || jsonb_build_object('blockingDetail', e.blocking_detail)
    FROM exec_core e WHERE e.execution_id = p_eid)));
END $$;

CREATE OR REPLACE FUNCTION ff_read_execution_state(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT to_jsonb(public_state) FROM exec_core WHERE execution_id = p_eid)));
END $$;

CREATE OR REPLACE FUNCTION ff_get_execution_result(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT to_jsonb(encode(d.result, 'base64')) FROM exec_core e JOIN exec_data d USING (execution_id)
                 WHERE e.execution_id = p_eid AND e.terminal_outcome = 'success' AND length(d.result) > 0)));
END $$;

CREATE OR REPLACE FUNCTION ff_get_execution_input(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT jsonb_strip_nulls(jsonb_build_object('executionId', e.execution_id,
                   'executionKind', e.execution_kind, 'laneId', e.lane_id, 'namespace', e.namespace,
                   'payload', encode(d.payload, 'base64'), 'payloadEncoding', d.payload_encoding))
                 FROM exec_core e JOIN exec_data d USING (execution_id) WHERE e.execution_id = p_eid)));
END $$;

CREATE OR REPLACE FUNCTION ff_resolve_execution_flow_id(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT to_jsonb(flow_id) FROM exec_core WHERE execution_id = p_eid)));
END $$;

CREATE OR REPLACE FUNCTION ff_list_executions(p_partition int, p_cursor text, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (WITH page AS (
    SELECT execution_id FROM exec_core
    WHERE partition_key = p_partition AND (p_cursor IS NULL OR execution_id > p_cursor)
    ORDER BY execution_id LIMIT p_limit + 1
  ), numbered AS (SELECT execution_id, row_number() OVER (ORDER BY execution_id) AS rn FROM page)
  SELECT ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'executions', coalesce((SELECT jsonb_agg(execution_id ORDER BY execution_id) FROM numbered WHERE rn <= p_limit),
                           '[]'::jsonb),
    'nextCursor', (SELECT execution_id FROM numbered WHERE rn = p_limit AND (SELECT count(*) FROM page) > p_limit)))));
END $$;

CREATE OR REPLACE FUNCTION ff_list_lanes(p_cursor text, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (WITH page AS (
    SELECT lane_id FROM lane_registry WHERE p_cursor IS NULL OR lane_id > p_cursor ORDER BY lane_id LIMIT p_limit + 1
  ), numbered AS (SELECT lane_id, row_number() OVER (ORDER BY lane_id) AS rn FROM page)
  SELECT ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'lanes', coalesce((SELECT jsonb_agg(lane_id ORDER BY lane_id) FROM numbered WHERE rn <= p_limit), '[]'::jsonb),
    'nextCursor', (SELECT lane_id FROM numbered WHERE rn = p_limit AND (SELECT count(*) FROM page) > p_limit)))));
END $$;

CREATE OR REPLACE FUNCTION ff_ping(p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok());
END $$;

-- ---------------------------------------------------------------------------
-- operator controls (§8.7–§8.10)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_cancel_execution(
  p_eid text, p_reason text, p_source text, p_lease uuid, p_epoch bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
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

CREATE OR REPLACE FUNCTION ff_change_priority(p_eid text, p_priority int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'runnable' OR e.eligibility_state <> 'eligible_now' THEN
    RETURN ffi_err('execution_not_eligible');
  END IF;
  UPDATE exec_core SET priority = p_priority, last_mutation_at = v_now WHERE execution_id = p_eid;
  UPDATE ready SET priority = p_priority WHERE execution_id = p_eid;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Changed', 'executionId', p_eid));
END $$;

CREATE OR REPLACE FUNCTION ff_replay_execution(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  v_n int;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'terminal' THEN RETURN ffi_err('execution_not_terminal'); END IF;
  IF e.replay_count >= e.max_replay_count THEN RETURN ffi_err('max_replays_exhausted'); END IF;
  UPDATE exec_data SET result = NULL WHERE execution_id = p_eid;
  IF e.flow_id IS NOT NULL THEN
    -- the flow counts the member as live again
    UPDATE flow_core SET live_members = live_members + 1,
      failed_members = greatest(failed_members - CASE WHEN e.terminal_outcome IN ('failed', 'cancelled', 'expired')
                                                      THEN 1 ELSE 0 END, 0)
    WHERE flow_id = e.flow_id;
  END IF;
  IF e.terminal_outcome = 'skipped' AND e.flow_id IS NOT NULL THEN
    UPDATE dep SET state = 'unsatisfied', last_resolved_at = NULL WHERE downstream_id = p_eid AND state = 'impossible';
    UPDATE edge_group SET failed = 0, skipped = 0, group_state = 'pending', satisfied_at = NULL
    WHERE downstream_id = p_eid;
    SELECT count(*) INTO v_n FROM dep WHERE downstream_id = p_eid AND state = 'unsatisfied';
    UPDATE exec_core SET lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
      blocking_detail = v_n || ' dep(s) unresolved', terminal_outcome = 'none',
      attempt_state = 'pending_replay_attempt', public_state = 'waiting_children',
      replay_count = replay_count + 1, completed_at = NULL, pending_replay_reason = 'replay',
      pending_previous_attempt_index = CASE WHEN current_attempt_id IS NULL THEN NULL ELSE current_attempt_index END,
      last_transition_at = v_now, last_mutation_at = v_now
    WHERE execution_id = p_eid;
    RETURN ffi_ok(jsonb_build_object('_tag', 'Replayed', 'publicState', 'waiting_children'));
  END IF;
  UPDATE exec_core SET lifecycle_phase = 'runnable', ownership_state = 'unowned', eligibility_state = 'eligible_now',
    blocking_reason = 'waiting_for_worker', blocking_detail = '', terminal_outcome = 'none',
    attempt_state = 'pending_replay_attempt', public_state = 'waiting',
    replay_count = replay_count + 1, completed_at = NULL, pending_replay_reason = 'replay',
    pending_previous_attempt_index = CASE WHEN current_attempt_id IS NULL THEN NULL ELSE current_attempt_index END,
    last_transition_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  PERFORM ffi_ready_add(p_eid);
  IF e.flow_id IS NOT NULL THEN
    UPDATE flow_core SET public_flow_state = 'open', last_mutation_at = v_now
    WHERE flow_id = e.flow_id AND public_flow_state IN ('completed', 'failed');
  END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Replayed', 'publicState', 'waiting'));
END $$;

CREATE OR REPLACE FUNCTION ff_revoke_lease(p_eid text, p_expected_lease uuid, p_wiid text, p_reason text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'active' THEN
    IF e.worker_instance_id IS NULL THEN
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
  UPDATE exec_core SET ownership_state = 'lease_revoked', eligibility_state = 'not_applicable',
    blocking_reason = 'waiting_for_worker', blocking_detail = 'lease revoked: ' || p_reason,
    attempt_state = 'attempt_interrupted', public_state = 'active',
    lease_revoked_at = v_now, lease_revoke_reason = p_reason, last_transition_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  PERFORM ffi_timer_del('lease', p_eid);
  PERFORM ffi_ready_add(p_eid);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Revoked', 'leaseId', coalesce(e.lease_id::text, ''),
                                   'leaseEpoch', e.lease_epoch::text));
END $$;

-- ---------------------------------------------------------------------------
-- grant-based claims (§4.8, §4.11, §5.5)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_claim_for_worker(
  p_lane text, p_worker text, p_wiid text, p_caps text[], p_ttl bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_id text;
  e exec_core;
  v_key text;
BEGIN
  FOR v_id IN
    SELECT r.execution_id FROM ready r
    WHERE r.lane_id = p_lane AND r.required_caps <@ p_caps
    ORDER BY r.priority DESC, r.created_at, r.seq
    LIMIT 64
    FOR UPDATE SKIP LOCKED
  LOOP
    SELECT * INTO e FROM exec_core WHERE execution_id = v_id FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    CONTINUE WHEN NOT ((e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'eligible_now')
                       OR (e.lifecycle_phase = 'active' AND e.ownership_state IN ('lease_expired_reclaimable', 'lease_revoked')));
    -- a live grant of another worker reserves the execution
    CONTINUE WHEN EXISTS (SELECT 1 FROM claim_grant WHERE execution_id = v_id AND expires_at > v_now AND worker_id <> p_worker);
    -- an attached budget at its hard limit blocks the candidate
    CONTINUE WHEN EXISTS (
      SELECT 1 FROM exec_data d
      CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(d.policy->'budget_ids', '[]'::jsonb)) AS b(id)
      JOIN budget_limit l ON l.budget_id = b.id::uuid AND l.hard_limit > 0
      JOIN budget_usage u ON u.budget_id = l.budget_id AND u.dimension = l.dimension
      WHERE d.execution_id = v_id AND u.value >= l.hard_limit);
    v_key := gen_random_uuid()::text;
    UPDATE exec_core SET has_grant = true WHERE execution_id = v_id;
    INSERT INTO claim_grant (execution_id, grant_key, kind, worker_id, worker_instance_id, lane_id, created_at, expires_at)
    VALUES (v_id, v_key, 'claim', p_worker, p_wiid, p_lane, v_now, v_now + p_ttl)
    ON CONFLICT (execution_id) DO UPDATE SET grant_key = EXCLUDED.grant_key, kind = EXCLUDED.kind,
      worker_id = EXCLUDED.worker_id, worker_instance_id = EXCLUDED.worker_instance_id, lane_id = EXCLUDED.lane_id,
      created_at = EXCLUDED.created_at, expires_at = EXCLUDED.expires_at;
    RETURN ffi_ok(jsonb_build_object('_tag', 'Granted', 'grant', jsonb_build_object('executionId', v_id,
      'partitionKey', '{fp:' || e.partition_key || '}', 'grantKey', v_key, 'expiresAtMs', v_now + p_ttl)));
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('_tag', 'NoWork'));
END $$;

-- T4: re-leases the interrupted attempt of a runnable execution with a grant.
CREATE OR REPLACE FUNCTION ff_claim_resumed(
  p_eid text, p_worker text, p_wiid text, p_lease uuid, p_ttl bigint, p_remaining_timeout bigint, p_grant_key text,
  p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  g claim_grant;
  v_epoch bigint;
  v_exp bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'runnable' THEN RETURN ffi_err('execution_not_leaseable'); END IF;
  IF e.attempt_state <> 'attempt_interrupted' OR e.current_attempt_index IS NULL THEN
    RETURN ffi_err('not_a_resumed_execution');
  END IF;
  SELECT * INTO g FROM claim_grant WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND OR g.worker_id <> p_worker OR (p_grant_key IS NOT NULL AND g.grant_key <> p_grant_key) THEN
    RETURN ffi_err('invalid_claim_grant');
  END IF;
  DELETE FROM claim_grant WHERE execution_id = p_eid;
  UPDATE exec_core SET has_grant = false WHERE execution_id = p_eid;
  IF g.expires_at <= v_now THEN RETURN ffi_err('claim_grant_expired'); END IF;
  v_epoch := e.lease_epoch + 1;
  v_exp := v_now + p_ttl;
  UPDATE attempt SET attempt_state = 'started', resumed_at = v_now, suspended_at = NULL, suspension_id = NULL,
    lease_id = p_lease, lease_epoch = v_epoch, worker_id = p_worker, worker_instance_id = p_wiid
  WHERE execution_id = p_eid AND attempt_index = e.current_attempt_index;
  UPDATE exec_core SET lifecycle_phase = 'active', ownership_state = 'leased', eligibility_state = 'not_applicable',
    blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none', attempt_state = 'running_attempt',
    public_state = 'active', lease_epoch = v_epoch, lease_id = p_lease, worker_id = p_worker,
    worker_instance_id = p_wiid, lease_ttl_ms = p_ttl, lease_acquired_at = v_now, lease_expires_at = v_exp,
    lease_last_renewed_at = NULL, lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
    delay_until = NULL,
    attempt_timeout_at = CASE WHEN p_remaining_timeout > 0 THEN v_now + p_remaining_timeout END,
    last_transition_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  DELETE FROM ready WHERE execution_id = p_eid;
  DELETE FROM timer WHERE ref = p_eid AND kind = 'delay';
  PERFORM ffi_timer_set('lease', p_eid, v_exp);
  IF p_remaining_timeout > 0 THEN
    PERFORM ffi_timer_set('attempt_timeout', p_eid, v_now + p_remaining_timeout);
  END IF;
  RETURN ffi_ok(jsonb_build_object('executionId', p_eid, 'attemptIndex', e.current_attempt_index,
    'attemptId', e.current_attempt_id, 'leaseId', p_lease, 'leaseEpoch', v_epoch, 'leaseTtlMs', p_ttl,
    'laneId', e.lane_id, 'workerInstanceId', p_wiid, 'leaseExpiresAt', v_exp));
END $$;

-- ---------------------------------------------------------------------------
-- maintenance passes: each returns {"processed": n, "more": bool}
-- ---------------------------------------------------------------------------

-- T15: attempt timeout / execution deadline.
CREATE OR REPLACE FUNCTION ffi_expire(p_eid text, p_reason text, p_now bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_terminate(p_eid, 'expired', 'ended_failure', p_reason, p_reason, NULL, NULL, 'expired',
                        'expired:' || p_reason, p_now, true);
END $$;

CREATE OR REPLACE FUNCTION ff_pass_timers(p_kind text, p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  t record;
  e exec_core;
  s suspension;
  w waitpoint;
  v_seen int := 0;
  v_done int := 0;
  v_more boolean := false;
  v_behavior text;
  v_reason text;
  v_outcome text;
BEGIN
  FOR t IN
    SELECT ref, due_at FROM timer WHERE kind = p_kind AND due_at <= v_now
    ORDER BY due_at LIMIT p_batch + 1 FOR UPDATE SKIP LOCKED
  LOOP
    v_seen := v_seen + 1;
    IF v_seen > p_batch THEN v_more := true; EXIT; END IF;

    IF p_kind = 'waitpoint' THEN
      SELECT * INTO w FROM waitpoint WHERE waitpoint_id = t.ref::uuid FOR UPDATE SKIP LOCKED;
      IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM waitpoint WHERE waitpoint_id = t.ref::uuid) THEN
          PERFORM ffi_timer_del(p_kind, t.ref);
        END IF;
        CONTINUE;
      END IF;
      IF w.state = 'pending' AND w.expires_at IS NOT NULL AND w.expires_at <= v_now THEN
        UPDATE waitpoint SET state = 'expired', closed_at = v_now, close_reason = 'expired'
        WHERE waitpoint_id = w.waitpoint_id;
        v_done := v_done + 1;
      END IF;
      PERFORM ffi_timer_del(p_kind, t.ref);
      CONTINUE;
    END IF;

    IF p_kind = 'budget_reset' THEN
      PERFORM 1 FROM budget WHERE budget_id = t.ref::uuid AND next_reset_at <= v_now FOR UPDATE SKIP LOCKED;
      IF FOUND THEN
        PERFORM ffi_reset_budget(t.ref::uuid, v_now);
        v_done := v_done + 1;
      ELSIF NOT EXISTS (SELECT 1 FROM budget WHERE budget_id = t.ref::uuid AND next_reset_at IS NOT NULL) THEN
        PERFORM ffi_timer_del(p_kind, t.ref);
      END IF;
      CONTINUE;
    END IF;

    SELECT * INTO e FROM exec_core WHERE execution_id = t.ref FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      IF NOT EXISTS (SELECT 1 FROM exec_core WHERE execution_id = t.ref) THEN PERFORM ffi_timer_del(p_kind, t.ref); END IF;
      CONTINUE;
    END IF;
    CASE p_kind
      WHEN 'delay' THEN
        IF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'not_eligible_until_time' THEN
          IF coalesce(e.delay_until, 0) > v_now THEN
            PERFORM ffi_timer_set(p_kind, t.ref, e.delay_until);
            CONTINUE;
          END IF;
          UPDATE exec_core SET eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
            blocking_detail = '', public_state = 'waiting', delay_until = NULL,
            last_transition_at = v_now, last_mutation_at = v_now
          WHERE execution_id = t.ref;
          PERFORM ffi_ready_add(t.ref);
          v_done := v_done + 1;
        END IF;
      WHEN 'lease' THEN
        IF e.lifecycle_phase = 'active' AND e.ownership_state = 'leased' THEN
          IF coalesce(e.lease_expires_at, 0) > v_now THEN
            PERFORM ffi_timer_set(p_kind, t.ref, e.lease_expires_at);
            CONTINUE;
          END IF;
          PERFORM ffi_mark_expired(t.ref, v_now);
          v_done := v_done + 1;
        END IF;
      WHEN 'attempt_timeout' THEN
        IF e.lifecycle_phase = 'active' AND e.attempt_timeout_at IS NOT NULL THEN
          IF e.attempt_timeout_at > v_now THEN
            PERFORM ffi_timer_set(p_kind, t.ref, e.attempt_timeout_at);
            CONTINUE;
          END IF;
          PERFORM ffi_terminate(t.ref, 'expired', 'ended_failure', 'attempt_timeout', 'attempt_timeout', NULL, NULL,
                                'expired', 'expired', v_now, true);
          v_done := v_done + 1;
        END IF;
      WHEN 'deadline' THEN
        IF e.lifecycle_phase <> 'terminal' AND e.execution_deadline_at IS NOT NULL THEN
          IF e.execution_deadline_at > v_now THEN
            PERFORM ffi_timer_set(p_kind, t.ref, e.execution_deadline_at);
            CONTINUE;
          END IF;
          PERFORM ffi_expire(t.ref, 'execution_deadline', v_now);
          v_done := v_done + 1;
        END IF;
      WHEN 'suspension' THEN
        SELECT * INTO s FROM suspension WHERE execution_id = t.ref AND closed_at IS NULL FOR UPDATE;
        IF FOUND AND e.lifecycle_phase = 'suspended' AND s.timeout_at IS NOT NULL THEN
          IF s.timeout_at > v_now THEN
            PERFORM ffi_timer_set(p_kind, t.ref, s.timeout_at);
            CONTINUE;
          END IF;
          v_behavior := coalesce(nullif(s.timeout_behavior, ''), 'fail');
          v_reason := 'timed_out_' || CASE WHEN v_behavior = 'auto_resume' THEN 'auto_resume_with_timeout_signal'
                                           ELSE v_behavior END;
          IF v_behavior IN ('auto_resume', 'auto_resume_with_timeout_signal') THEN
            PERFORM ffi_resume(t.ref, 0, '', v_reason, v_now);
          ELSIF v_behavior = 'escalate' THEN
            UPDATE suspension SET reason_code = 'waiting_for_operator_review', timeout_at = NULL
            WHERE execution_id = t.ref;
            UPDATE exec_core SET blocking_reason = 'paused_by_operator',
              blocking_detail = 'suspension escalated: timeout at ' || s.timeout_at,
              last_transition_at = v_now, last_mutation_at = v_now
            WHERE execution_id = t.ref;
          ELSE
            v_outcome := CASE v_behavior WHEN 'cancel' THEN 'cancelled' WHEN 'expire' THEN 'expired' ELSE 'failed' END;
            PERFORM ffi_terminate(t.ref, v_outcome,
              CASE WHEN v_behavior = 'cancel' THEN 'ended_cancelled' ELSE 'ended_failure' END,
              'suspension_timeout:' || v_behavior, 'suspension_timeout:' || v_behavior,
              CASE WHEN v_behavior = 'cancel' THEN 'suspension_timeout' END,
              CASE WHEN v_behavior = 'cancel' THEN 'system_timeout_policy' END,
              'suspension_timeout', v_reason, v_now, true);
          END IF;
          v_done := v_done + 1;
        END IF;
      ELSE
        NULL;
    END CASE;
    PERFORM ffi_timer_del(p_kind, t.ref);
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;

-- Safety net of P4: queued cascades and unresolved edges whose upstream is
-- already terminal.
CREATE OR REPLACE FUNCTION ff_pass_dependencies(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  q record;
  d record;
  v_done int := 0;
  v_more boolean := false;
  v_res text;
BEGIN
  FOR q IN SELECT execution_id, outcome FROM dep_pending ORDER BY enqueued_at LIMIT p_batch + 1 FOR UPDATE SKIP LOCKED LOOP
    IF v_done >= p_batch THEN v_more := true; EXIT; END IF;
    DELETE FROM dep_pending WHERE execution_id = q.execution_id;
    v_done := v_done + greatest(ffi_resolve_from(q.execution_id, q.outcome, v_now), 1);
  END LOOP;
  IF v_more THEN RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', true)); END IF;
  FOR d IN
    SELECT dp.downstream_id, dp.edge_id, dp.upstream_id, u.terminal_outcome FROM dep dp
    JOIN exec_core u ON u.execution_id = dp.upstream_id
    WHERE dp.state = 'unsatisfied' AND u.lifecycle_phase = 'terminal'
    ORDER BY dp.downstream_id, dp.edge_id LIMIT p_batch - v_done + 1
  LOOP
    IF v_done >= p_batch THEN v_more := true; EXIT; END IF;
    v_res := ffi_resolve_edge(d.downstream_id, d.edge_id, d.upstream_id, d.terminal_outcome, v_now);
    IF v_res NOT IN ('already_resolved', 'missing') THEN v_done := v_done + 1; END IF;
    IF v_res = 'child_skipped' THEN PERFORM ffi_resolve_from(d.downstream_id, 'skipped', v_now); END IF;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;

-- P5: cancels the members flow cancellations still owe (after their grace),
-- and siblings owed by any_of / quorum groups.
CREATE OR REPLACE FUNCTION ff_pass_cancel_backlog(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  b record;
  o record;
  g record;
  v_id text;
  v_sib text;
  v_left text[];
  v_done int := 0;
  v_more boolean := false;
BEGIN
  FOR b IN SELECT * FROM cancel_backlog WHERE grace_until <= v_now ORDER BY grace_until LIMIT p_batch
           FOR UPDATE SKIP LOCKED LOOP
    IF NOT EXISTS (SELECT 1 FROM flow_core WHERE flow_id = b.flow_id) THEN
      DELETE FROM cancel_owed WHERE flow_id = b.flow_id;
      DELETE FROM cancel_backlog WHERE flow_id = b.flow_id;
      CONTINUE;
    END IF;
    FOR o IN SELECT execution_id FROM cancel_owed WHERE flow_id = b.flow_id ORDER BY execution_id LIMIT p_batch LOOP
      IF v_done >= p_batch THEN v_more := true; EXIT; END IF;
      PERFORM 1 FROM exec_core WHERE execution_id = o.execution_id FOR UPDATE SKIP LOCKED;
      IF FOUND THEN
        PERFORM ffi_cancel_exec(o.execution_id, b.reason, 'flow_cascade', v_now);
        DELETE FROM cancel_owed WHERE flow_id = b.flow_id AND execution_id = o.execution_id;
        v_done := v_done + 1;
      ELSIF NOT EXISTS (SELECT 1 FROM exec_core WHERE execution_id = o.execution_id) THEN
        DELETE FROM cancel_owed WHERE flow_id = b.flow_id AND execution_id = o.execution_id;
      ELSE
        v_more := true;
      END IF;
    END LOOP;
    PERFORM ffi_flow_settle(b.flow_id, v_now, true);
    IF NOT EXISTS (SELECT 1 FROM cancel_owed WHERE flow_id = b.flow_id) THEN
      DELETE FROM cancel_backlog WHERE flow_id = b.flow_id;
    END IF;
    EXIT WHEN v_done >= p_batch;
  END LOOP;
  -- lock order: the downstream's exec row, then its group (as resolution does)
  FOR v_id IN SELECT downstream_id FROM edge_group WHERE cancel_siblings_pending ORDER BY downstream_id LIMIT p_batch LOOP
    PERFORM 1 FROM exec_core WHERE execution_id = v_id FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM exec_core WHERE execution_id = v_id) THEN
      v_more := true;
      CONTINUE;
    END IF;
    SELECT downstream_id, cancel_siblings_reason, cancel_siblings_members INTO g FROM edge_group
    WHERE downstream_id = v_id AND cancel_siblings_pending FOR UPDATE;
    CONTINUE WHEN NOT FOUND;
    v_left := '{}';
    FOREACH v_sib IN ARRAY g.cancel_siblings_members LOOP
      PERFORM 1 FROM exec_core WHERE execution_id = v_sib AND lifecycle_phase <> 'terminal' FOR UPDATE SKIP LOCKED;
      IF FOUND THEN
        PERFORM ffi_cancel_exec(v_sib, coalesce(g.cancel_siblings_reason, 'sibling_quorum_satisfied'),
                                'engine', v_now);
        v_done := v_done + 1;
      ELSIF EXISTS (SELECT 1 FROM exec_core WHERE execution_id = v_sib AND lifecycle_phase <> 'terminal') THEN
        v_left := v_left || v_sib;
      END IF;
    END LOOP;
    UPDATE edge_group SET cancel_siblings_pending = cardinality(v_left) > 0, cancel_siblings_members = v_left
    WHERE downstream_id = v_id;
    IF cardinality(v_left) > 0 THEN v_more := true; END IF;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;
`
