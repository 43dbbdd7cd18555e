/**
 * Migration 0007: behaviour fixes found by the differential and conformance tests.
 *
 * - create_execution (operations.md §8.1): a create that is a `Duplicate`
 *   because its execution id exists writes nothing — in particular it no
 *   longer remembers its idempotency key. The key is checked first (check 1),
 *   then the execution row is inserted (check 2), and only a created
 *   execution records its key. A concurrent create that committed the same
 *   key in between wins: the row this call inserted is removed again and the
 *   result is `Duplicate{the winner's id}`.
 * - replay_execution (operations.md §8.9 lists no flow effect): reopening the
 *   finished flow of a replayed member no longer bumps the flow's
 *   `last_mutation_at`.
 * - As the memory engine now does (where the servers followed the spec):
 *   describe_execution reports `blockingReason: "none"`, get_budget_status
 *   lists 0 limits, a terminal transition of a never-run execution leaves its
 *   attempt state (a skip reads `none`), and the resume delay applied by
 *   deliver_signal is the signal's only; a signal that does not resume and
 *   apply_dependency_to_child of a child it does not block leave the
 *   execution's last_mutation_at.
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_create_execution(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, v_now bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_delayed boolean := p_delay_until IS NOT NULL AND p_delay_until > v_now;
  v_has_idem boolean := p_idem IS NOT NULL AND p_idem <> '';
  v_existing text;
BEGIN
  IF v_has_idem THEN
    SELECT execution_id INTO v_existing FROM exec_idempotency
    WHERE partition_key = p_partition AND namespace = p_namespace AND idempotency_key = p_idem AND expires_at > v_now;
    IF FOUND THEN
      RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'executionId', v_existing));
    END IF;
  END IF;
  INSERT INTO exec_core (execution_id, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
    lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
    attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms, delay_until,
    execution_deadline_at, created_at, last_transition_at, last_mutation_at)
  VALUES (p_eid, p_partition, p_lane, p_namespace, p_kind, p_priority, p_caps,
    'runnable', 'unowned',
    CASE WHEN v_delayed THEN 'not_eligible_until_time' ELSE 'eligible_now' END,
    CASE WHEN v_delayed THEN 'waiting_for_delay' ELSE 'waiting_for_worker' END,
    CASE WHEN v_delayed THEN 'delayed until ' || p_delay_until ELSE '' END,
    'none', 'pending_first_attempt',
    CASE WHEN v_delayed THEN 'delayed' ELSE 'waiting' END,
    p_max_reclaim, p_max_replay, p_attempt_timeout_ms,
    CASE WHEN v_delayed THEN p_delay_until END, p_deadline, v_now, v_now, v_now)
  ON CONFLICT (execution_id) DO NOTHING;
  IF NOT FOUND THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'executionId', p_eid));
  END IF;
  IF v_has_idem THEN
    INSERT INTO exec_idempotency (partition_key, namespace, idempotency_key, execution_id, expires_at)
    VALUES (p_partition, p_namespace, p_idem, p_eid, v_now + p_dedup_ttl_ms)
    ON CONFLICT (partition_key, namespace, idempotency_key) DO UPDATE
      SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
      WHERE exec_idempotency.expires_at <= v_now;
    IF NOT FOUND THEN
      -- a concurrent create committed this key first: this one is its duplicate
      DELETE FROM exec_core WHERE execution_id = p_eid;
      SELECT execution_id INTO v_existing FROM exec_idempotency
      WHERE partition_key = p_partition AND namespace = p_namespace AND idempotency_key = p_idem;
      RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'executionId', v_existing));
    END IF;
  END IF;
  INSERT INTO exec_data (execution_id, payload, payload_encoding, policy, tags, creator_identity, idempotency_key)
  VALUES (p_eid, p_payload, p_payload_encoding, p_policy, p_tags, p_creator, p_idem);
  INSERT INTO lane_registry (lane_id, registered_at) VALUES (p_lane, v_now) ON CONFLICT (lane_id) DO NOTHING;
  IF v_delayed THEN
    PERFORM ffi_timer_set('delay', p_eid, p_delay_until);
  ELSE
    INSERT INTO ready (execution_id, lane_id, priority, created_at, required_caps)
    VALUES (p_eid, p_lane, p_priority, v_now, p_caps);
  END IF;
  IF p_deadline IS NOT NULL THEN PERFORM ffi_timer_set('deadline', p_eid, p_deadline); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'executionId', p_eid,
                                   'publicState', CASE WHEN v_delayed THEN 'delayed' ELSE 'waiting' END));
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
    UPDATE flow_core SET public_flow_state = 'open'
    WHERE flow_id = e.flow_id AND public_flow_state IN ('completed', 'failed');
  END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Replayed', 'publicState', 'waiting'));
END $$;

-- describe_execution reports a stored blocking reason none too (operations.md §6.1 reads only
-- empty strings as absent).
CREATE OR REPLACE FUNCTION ff_describe_execution(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((
    SELECT jsonb_strip_nulls(jsonb_build_object(
      'executionId', e.execution_id, 'flowId', e.flow_id, 'laneId', e.lane_id, 'namespace', e.namespace,
      'publicState', e.public_state, 'blockingReason', e.blocking_reason,
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

-- get_budget_status lists 0 (unlimited) limits: they are stored limits (operations.md §10.2 / §10.5).
CREATE OR REPLACE FUNCTION ff_get_budget_status(p_budget uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
DECLARE b budget;
BEGIN
  SELECT * INTO b FROM budget WHERE budget_id = p_budget;
  IF NOT FOUND THEN RETURN ffi_err('budget_not_found'); END IF;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('budgetId', b.budget_id, 'scopeType', b.scope_type,
    'scopeId', b.scope_id, 'enforcementMode', b.enforcement_mode,
    'usage', (SELECT coalesce(jsonb_object_agg(dimension, value), '{}'::jsonb) FROM budget_usage WHERE budget_id = p_budget),
    'hardLimits', (SELECT coalesce(jsonb_object_agg(dimension, hard_limit), '{}'::jsonb) FROM budget_limit
                   WHERE budget_id = p_budget),
    'softLimits', (SELECT coalesce(jsonb_object_agg(dimension, soft_limit), '{}'::jsonb) FROM budget_limit
                   WHERE budget_id = p_budget),
    'breachCount', b.breach_count, 'softBreachCount', b.soft_breach_count,
    'lastBreachAt', b.last_breach_at::text, 'lastBreachDim', b.last_breach_dim,
    'nextResetAt', b.next_reset_at::text, 'createdAt', b.created_at::text)));
END $$;

-- A terminal transition writes attempt_terminal once an attempt exists; without one a skip reads
-- none and every other end leaves the attempt state as it was (valkey.md ff_cancel_execution,
-- ff_resolve_dependency).
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
  PERFORM ffi_after_terminal(p_eid, e.flow_id, p_outcome, p_now, p_resolve, e.has_grant);
END $$;

-- The resume delay is the signal's; a resumePolicy.resumeDelayMs is stored with the suspension only
-- (model.md ResumePolicy). A signal that does not resume leaves the execution's last_mutation_at
-- (operations.md §5.4).
CREATE OR REPLACE FUNCTION ff_deliver_signal(
  p_eid text, p_wp uuid, p_sid uuid, p_name text, p_category text, p_source_type text, p_source_identity text,
  p_payload bytea, p_payload_encoding text, p_correlation text, p_idem text, p_target_scope text,
  p_created_at bigint, p_dedup_ttl bigint, p_resume_delay bigint, p_max_signals int, p_token text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  w waitpoint;
  s suspension;
  v_code text;
  v_buffering boolean;
  v_limit int;
  v_existing uuid;
  v_nodes jsonb;
  v_root jsonb;
  v_sigs jsonb;
  v_before int := 0;
  v_res jsonb;
  v_effect text;
  v_delay bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  SELECT * INTO w FROM waitpoint WHERE waitpoint_id = p_wp AND execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN
    v_code := CASE WHEN coalesce(p_token, '') = '' THEN 'missing_token' ELSE 'invalid_token' END;
  ELSE
    v_code := ffi_token_check(p_token, w, v_now);
  END IF;
  IF v_code = 'hmac_secret_not_initialized' THEN RETURN ffi_err(v_code); END IF;
  IF v_code IS NOT NULL THEN
    UPDATE exec_core SET last_hmac_validation_failed_at = v_now WHERE execution_id = p_eid;
    RETURN ffi_err(v_code);
  END IF;
  IF e.lifecycle_phase = 'terminal' THEN RETURN ffi_err('target_not_signalable'); END IF;
  v_buffering := w.state IN ('pending', 'expired');
  IF NOT v_buffering AND e.lifecycle_phase <> 'suspended' AND w.state <> 'active' THEN
    RETURN ffi_err('target_not_signalable');
  END IF;
  IF v_buffering THEN
    IF w.state = 'expired' OR (w.expires_at IS NOT NULL AND w.expires_at <= v_now) THEN
      RETURN ffi_err('waitpoint_closed');
    END IF;
  ELSIF w.state <> 'active' THEN
    RETURN ffi_err('waitpoint_closed');
  END IF;
  SELECT coalesce(p_max_signals, (d.policy->>'max_signals_per_execution')::int, 10000) INTO v_limit
  FROM exec_data d WHERE d.execution_id = p_eid;
  IF coalesce(v_limit, 10000) > 0 AND (SELECT count(*) FROM signal WHERE execution_id = p_eid) >= coalesce(v_limit, 10000) THEN
    RETURN ffi_err('signal_limit_exceeded');
  END IF;
  IF p_idem IS NOT NULL AND p_idem <> '' AND p_dedup_ttl > 0 THEN
    SELECT signal_id INTO v_existing FROM signal_dedup
    WHERE waitpoint_id = p_wp AND idempotency_key = p_idem AND expires_at > v_now;
    IF FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'existingSignalId', v_existing)); END IF;
    INSERT INTO signal_dedup VALUES (p_wp, p_idem, p_sid, v_now + p_dedup_ttl)
    ON CONFLICT (waitpoint_id, idempotency_key) DO UPDATE SET signal_id = EXCLUDED.signal_id, expires_at = EXCLUDED.expires_at;
  END IF;
  SELECT * INTO s FROM suspension WHERE execution_id = p_eid AND closed_at IS NULL FOR UPDATE;
  IF NOT v_buffering AND FOUND AND e.lifecycle_phase = 'suspended' THEN
    v_nodes := s.condition->'nodes';
    v_root := v_nodes->0;
    IF NOT coalesce((s.condition->>'legacy')::boolean, false) THEN
      v_before := ffi_cond_count(v_nodes, 0, ffi_suspension_signals(p_eid, s.suspension_id));
    END IF;
  END IF;
  INSERT INTO signal (signal_id, execution_id, waitpoint_id, waitpoint_key, signal_name, signal_category,
    source_type, source_identity, correlation_id, idempotency_key, target_scope, payload, payload_encoding,
    created_at, accepted_at, observed_effect)
  VALUES (p_sid, p_eid, p_wp, w.waitpoint_key, p_name, p_category, p_source_type, p_source_identity,
    coalesce(p_correlation, ''), p_idem, p_target_scope, p_payload, p_payload_encoding,
    coalesce(p_created_at, v_now), v_now, '');
  UPDATE waitpoint SET signal_count = signal_count + 1, last_signal_at = v_now WHERE waitpoint_id = p_wp;
  IF v_buffering THEN
    v_effect := 'buffered_for_pending_waitpoint';
  ELSIF v_nodes IS NULL THEN
    v_effect := 'appended_to_waitpoint';
  ELSE
    UPDATE suspension SET last_signal_at = v_now WHERE execution_id = p_eid;
    v_sigs := ffi_suspension_signals(p_eid, s.suspension_id);
    v_res := ffi_cond_eval(v_nodes, 0, v_sigs);
    IF (v_res->>'sat')::boolean THEN
      UPDATE waitpoint SET matched_signal_count = matched_signal_count + 1 WHERE waitpoint_id = p_wp;
      UPDATE waitpoint SET satisfied_at = v_now WHERE waitpoint_id = s.waitpoint_id;
      UPDATE suspension SET satisfied_at = v_now, closer_signal_id = p_sid,
        satisfiers = ARRAY(SELECT jsonb_array_elements_text(v_res->'sats')::uuid)
      WHERE execution_id = p_eid;
      v_delay := coalesce(p_resume_delay, 0);
      PERFORM ffi_resume(p_eid, v_delay, 'resume delay ' || v_delay || 'ms after signal ' || p_name, 'resumed', v_now);
      v_effect := 'resume_condition_satisfied';
    ELSIF coalesce((s.condition->>'legacy')::boolean, false) THEN
      IF v_root->>'kind' = 'single' AND v_root->>'key' = w.waitpoint_key AND ffi_matches(v_root, p_name) THEN
        UPDATE waitpoint SET matched_signal_count = matched_signal_count + 1 WHERE waitpoint_id = p_wp;
        v_effect := 'appended_to_waitpoint';
      ELSE
        v_effect := 'no_op';
      END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_nodes) n
                      WHERE n->>'key' = w.waitpoint_key OR coalesce(n->'waitpoints', '[]'::jsonb) ? w.waitpoint_key) THEN
      v_effect := 'signal_ignored_not_in_condition';
    ELSIF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_nodes) n
                      WHERE ((n->>'kind' = 'single' AND n->>'key' = w.waitpoint_key)
                             OR (n->>'kind' = 'count' AND (n->'waitpoints') ? w.waitpoint_key))
                        AND ffi_matches(n, p_name)) THEN
      v_effect := 'signal_ignored_matcher_failed';
    ELSE
      UPDATE waitpoint SET matched_signal_count = matched_signal_count + 1 WHERE waitpoint_id = p_wp;
      v_effect := CASE WHEN ffi_cond_count(v_nodes, 0, v_sigs) > v_before
                       THEN 'appended_to_waitpoint' ELSE 'appended_to_waitpoint_duplicate' END;
    END IF;
  END IF;
  UPDATE signal SET observed_effect = v_effect
  WHERE seq = (SELECT max(seq) FROM signal WHERE execution_id = p_eid AND signal_id = p_sid);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Accepted', 'signalId', p_sid, 'effect', v_effect));
END $$;

-- apply_dependency_to_child leaves the last_mutation_at of a child it does not block
-- (operations.md §8.5).
CREATE OR REPLACE FUNCTION ff_apply_dependency_to_child(
  p_flow uuid, p_edge uuid, p_child text, p_up text, p_kind text, p_data_ref text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  c exec_core;
  g edge_group;
  v_n int;
BEGIN
  SELECT * INTO c FROM exec_core WHERE execution_id = p_child FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF c.flow_id IS NOT NULL AND c.flow_id <> p_flow THEN RETURN ffi_err('execution_already_in_flow'); END IF;
  IF EXISTS (SELECT 1 FROM dep WHERE downstream_id = p_child AND edge_id = p_edge) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyApplied'));
  END IF;
  INSERT INTO dep (downstream_id, edge_id, flow_id, upstream_id, dependency_kind, data_passing_ref, state, created_at)
  VALUES (p_child, p_edge, p_flow, p_up, p_kind, p_data_ref, 'unsatisfied', v_now);
  INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
  VALUES (p_child, p_flow, 'all_of', 1, v_now)
  ON CONFLICT (downstream_id) DO UPDATE SET n = edge_group.n + 1
  RETURNING * INTO g;
  SELECT count(*) INTO v_n FROM dep WHERE downstream_id = p_child AND state <> 'satisfied';
  IF c.lifecycle_phase = 'runnable' AND g.group_state = 'pending' THEN
    UPDATE exec_core SET eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
      blocking_detail = v_n || ' dep(s) unresolved incl ' || p_edge, public_state = 'waiting_children',
      last_transition_at = v_now, last_mutation_at = v_now
    WHERE execution_id = p_child;
    DELETE FROM ready WHERE execution_id = p_child;
  END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Applied', 'unsatisfiedCount', v_n));
END $$;
`
