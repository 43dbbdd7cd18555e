/**
 * Migration 0008: the submit → claim → complete hot path, measured.
 *
 * - `timer_by_ref`: every terminal / lease-releasing transition deletes an
 *   execution's timers by `ref` (`DELETE FROM timer WHERE ref = $1 AND kind IN
 *   (…)`); the primary key leads with `kind`, so the cached generic plan was a
 *   sequential scan over the churning (dead-tuple heavy) timer table.
 * - `ffi_ok` / `ffi_err` are `STABLE` (their bodies call the stable
 *   `jsonb_build_object` / `to_jsonb`): an `IMMUTABLE` SQL function whose body
 *   is only stable is never inlined, so every call ran the SQL-function
 *   executor, and its body was parsed and planned again in every transaction.
 * - `ff_complete`, `ffi_claim_one`: the common case (an owned lease of an
 *   execution outside any flow, without grant or suspension) runs inline — one
 *   lock, one statement per table — instead of through the general helpers
 *   (which re-read the locked row and pay a PL/pgSQL call each). Every other
 *   case takes the general path, unchanged.
 * - `ff_create_executions`: a batch without idempotency keys, delays or
 *   deadlines is inserted set-based (one statement per table) instead of one
 *   `ffi_create_execution` per item.
 */
export const sql = String.raw`
CREATE INDEX IF NOT EXISTS timer_by_ref ON timer (ref);

-- The exec_core row invariants of 0001 as one CHECK over a PL/pgSQL function:
-- PostgreSQL rebuilds every CHECK expression from its stored text (the IN
-- lists byte by byte) in every INSERT / UPDATE statement, which cost more than
-- the rest of the update; the function's expressions are compiled once per
-- session. Same rules, same SQLSTATE (23514).
CREATE OR REPLACE FUNCTION ffi_exec_core_row_ok(
  p_phase text, p_own text, p_elig text, p_outcome text, p_att text, p_priority int
) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  RETURN p_phase IN ('submitted','runnable','active','suspended','terminal')
    AND p_own IN ('unowned','leased','lease_expired_reclaimable','lease_revoked')
    AND p_elig IN ('eligible_now','not_eligible_until_time','blocked_by_dependencies','blocked_by_budget',
                   'blocked_by_quota','blocked_by_route','blocked_by_lane_state','blocked_by_operator','not_applicable')
    AND p_outcome IN ('none','success','failed','cancelled','expired','skipped')
    AND p_att IN ('none','pending_first_attempt','running_attempt','attempt_interrupted','pending_retry_attempt',
                  'pending_replay_attempt','attempt_terminal')
    AND p_priority BETWEEN 0 AND 9000
    -- model.md §3.8: combinations that must never be persisted
    AND (p_own <> 'leased' OR p_phase = 'active')
    AND ((p_outcome = 'none') = (p_phase <> 'terminal'))
    AND (p_phase <> 'active' OR p_own <> 'unowned');
END $$;

ALTER TABLE exec_core
  DROP CONSTRAINT exec_core_lifecycle_phase,
  DROP CONSTRAINT exec_core_ownership_state,
  DROP CONSTRAINT exec_core_eligibility_state,
  DROP CONSTRAINT exec_core_terminal_outcome,
  DROP CONSTRAINT exec_core_attempt_state,
  DROP CONSTRAINT exec_core_priority,
  DROP CONSTRAINT exec_core_v1_v2_v8,
  DROP CONSTRAINT exec_core_v3_v4,
  DROP CONSTRAINT exec_core_v10,
  ADD CONSTRAINT exec_core_row CHECK (ffi_exec_core_row_ok(lifecycle_phase, ownership_state, eligibility_state,
                                                          terminal_outcome, attempt_state, priority));

ALTER FUNCTION ffi_ok(jsonb) STABLE;
ALTER FUNCTION ffi_err(text, text[]) STABLE;

CREATE OR REPLACE FUNCTION ff_complete(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_payload bytea, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb;
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
  IF e.flow_id IS NOT NULL OR e.has_grant OR e.current_suspension_id IS NOT NULL
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
  DELETE FROM ready WHERE execution_id = p_eid;
  DELETE FROM timer WHERE ref = p_eid AND kind IN ('delay', 'lease', 'attempt_timeout', 'deadline', 'suspension');
  RETURN ffi_ok();
END $$;

CREATE OR REPLACE FUNCTION ffi_claim_one(e exec_core, p_worker text, p_wiid text, p_ttl bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_epoch bigint := e.lease_epoch + 1;
  v_lease uuid := gen_random_uuid();
  v_exp bigint := p_now + p_ttl;
  v_idx int;
  v_att uuid;
  v_type text;
  v_kind text := 'fresh';
  v_prev int;
BEGIN
  IF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'eligible_now'
     AND e.attempt_state = 'attempt_interrupted' AND e.current_attempt_index IS NOT NULL THEN
    v_idx := e.current_attempt_index;
    v_att := e.current_attempt_id;
    v_kind := 'resumed';
    UPDATE attempt SET attempt_state = 'started', resumed_at = p_now, suspended_at = NULL, suspension_id = NULL,
      lease_id = v_lease, lease_epoch = v_epoch, worker_id = p_worker, worker_instance_id = p_wiid
    WHERE execution_id = e.execution_id AND attempt_index = v_idx;
  ELSIF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'eligible_now' AND e.terminal_outcome = 'none'
        AND e.attempt_state IN ('pending_first_attempt', 'pending_retry_attempt', 'pending_replay_attempt', 'none') THEN
    v_idx := e.total_attempt_count;
    v_att := gen_random_uuid();
    v_type := CASE e.attempt_state WHEN 'pending_retry_attempt' THEN 'retry'
                                   WHEN 'pending_replay_attempt' THEN 'replay' ELSE 'initial' END;
    v_prev := e.pending_previous_attempt_index;
  ELSIF e.lifecycle_phase = 'active' AND e.ownership_state IN ('lease_expired_reclaimable', 'lease_revoked') THEN
    IF e.lease_reclaim_count >= e.max_reclaim_count THEN
      PERFORM ffi_terminate(e.execution_id, 'failed', 'ended_failure', 'max_reclaims_exceeded', 'max_reclaims_exceeded',
                            NULL, NULL, 'reclaimed', 'reclaimed', p_now, true);
      RETURN NULL;
    END IF;
    v_prev := e.current_attempt_index;
    IF v_prev IS NOT NULL THEN
        UPDATE attempt SET attempt_state = 'interrupted_reclaimed', ended_at = p_now,
        failure_reason = 'lease_' || e.ownership_state
      WHERE execution_id = e.execution_id AND attempt_index = v_prev AND attempt_state = 'started';
      PERFORM ffi_stream_close(e.execution_id, v_prev, 'reclaimed', p_now);
    END IF;
    v_idx := e.total_attempt_count;
    v_att := gen_random_uuid();
    v_type := 'reclaim';
  ELSE
    DELETE FROM ready WHERE execution_id = e.execution_id;
    RETURN NULL;
  END IF;
  IF v_kind = 'fresh' THEN
    INSERT INTO attempt (execution_id, attempt_index, attempt_id, attempt_type, attempt_state, created_at,
      started_at, lease_id, lease_epoch, worker_id, worker_instance_id, previous_attempt_index)
    VALUES (e.execution_id, v_idx, v_att, v_type, 'started', p_now, p_now, v_lease, v_epoch, p_worker, p_wiid, v_prev)
    ON CONFLICT (execution_id, attempt_index) DO UPDATE SET attempt_id = EXCLUDED.attempt_id,
      attempt_type = EXCLUDED.attempt_type, attempt_state = 'started', created_at = EXCLUDED.created_at,
      started_at = EXCLUDED.started_at, resumed_at = NULL, suspended_at = NULL, ended_at = NULL,
      lease_id = EXCLUDED.lease_id, lease_epoch = EXCLUDED.lease_epoch, worker_id = EXCLUDED.worker_id,
      worker_instance_id = EXCLUDED.worker_instance_id, suspension_id = NULL, failure_reason = NULL,
      failure_category = NULL, previous_attempt_index = EXCLUDED.previous_attempt_index;
  END IF;
  UPDATE exec_core SET lifecycle_phase = 'active', ownership_state = 'leased', eligibility_state = 'not_applicable',
    blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none', attempt_state = 'running_attempt',
    public_state = 'active',
    current_attempt_index = v_idx, current_attempt_id = v_att,
    total_attempt_count = CASE WHEN v_kind = 'fresh' THEN v_idx + 1 ELSE total_attempt_count END,
    lease_reclaim_count = lease_reclaim_count + CASE WHEN v_type = 'reclaim' THEN 1 ELSE 0 END,
    lease_epoch = v_epoch, lease_id = v_lease, worker_id = p_worker, worker_instance_id = p_wiid, has_grant = false,
    lease_ttl_ms = p_ttl, lease_acquired_at = p_now, lease_expires_at = v_exp, lease_last_renewed_at = NULL,
    lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
    started_at = coalesce(started_at, p_now),
    pending_retry_reason = NULL, pending_previous_attempt_index = NULL,
    pending_replay_reason = NULL, pending_replay_requested_by = NULL, delay_until = NULL,
    attempt_timeout_at = CASE WHEN attempt_timeout_ms > 0 THEN p_now + attempt_timeout_ms END,
    last_transition_at = p_now, last_mutation_at = p_now
  WHERE execution_id = e.execution_id;
  DELETE FROM ready WHERE execution_id = e.execution_id;
  IF e.has_grant THEN DELETE FROM claim_grant WHERE execution_id = e.execution_id; END IF;
  INSERT INTO timer (kind, ref, due_at) VALUES ('lease', e.execution_id, v_exp)
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  IF e.attempt_timeout_ms > 0 THEN
    PERFORM ffi_timer_set('attempt_timeout', e.execution_id, p_now + e.attempt_timeout_ms);
  ELSIF e.attempt_timeout_at IS NOT NULL THEN
    PERFORM ffi_timer_del('attempt_timeout', e.execution_id);
  END IF;
  RETURN jsonb_build_object('executionId', e.execution_id, 'attemptIndex', v_idx, 'attemptId', v_att,
    'leaseId', v_lease, 'leaseEpoch', v_epoch, 'leaseTtlMs', p_ttl, 'laneId', e.lane_id,
    'workerInstanceId', p_wiid, 'kind', v_kind);
END $$;

CREATE OR REPLACE FUNCTION ff_create_executions(p_items jsonb, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  x jsonb;
  r jsonb;
  v_out jsonb := '[]'::jsonb;
BEGIN
  -- A batch without idempotency keys, delays or deadlines (the common bulk submit) is created
  -- set-based: the same rows, results and claim order as one ffi_create_execution per item.
  IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_items) AS t(item)
                 WHERE coalesce(item->>'idempotencyKey', '') <> '' OR item->>'delayUntil' IS NOT NULL
                    OR item->>'executionDeadlineAt' IS NOT NULL) THEN
    WITH items AS MATERIALIZED (
      SELECT t.ord, t.item->>'executionId' AS eid, (t.item->>'partition')::int AS part, t.item->>'namespace' AS ns,
        t.item->>'laneId' AS lane, t.item->>'executionKind' AS kind, decode(t.item->>'payload', 'base64') AS payload,
        t.item->>'payloadEncoding' AS enc, (t.item->>'priority')::int AS prio, t.item->>'creatorIdentity' AS creator,
        t.item->'tags' AS tags, t.item->'policy' AS policy,
        ARRAY(SELECT jsonb_array_elements_text(t.item->'requiredCapabilities')) AS caps,
        (t.item->>'attemptTimeoutMs')::bigint AS ato, (t.item->>'maxReclaimCount')::int AS mrc,
        (t.item->>'maxReplayCount')::int AS mrp
      FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(item, ord)
    ), ins AS (
      INSERT INTO exec_core (execution_id, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
        lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
        attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms, delay_until,
        execution_deadline_at, created_at, last_transition_at, last_mutation_at)
      SELECT eid, part, lane, ns, kind, prio, caps, 'runnable', 'unowned', 'eligible_now', 'waiting_for_worker', '',
        'none', 'pending_first_attempt', 'waiting', mrc, mrp, ato, NULL, NULL, v_now, v_now, v_now
      FROM items ORDER BY ord
      ON CONFLICT (execution_id) DO NOTHING
      RETURNING execution_id
    ), created AS (
      -- the first item of each id this statement inserted (a repeated id is a Duplicate)
      SELECT DISTINCT ON (i.eid) i.* FROM items i JOIN ins ON ins.execution_id = i.eid ORDER BY i.eid, i.ord
    ), data AS (
      INSERT INTO exec_data (execution_id, payload, payload_encoding, policy, tags, creator_identity, idempotency_key)
      SELECT eid, payload, enc, policy, tags, creator, NULL FROM created
    ), queued AS (
      INSERT INTO ready (execution_id, lane_id, priority, created_at, required_caps)
      SELECT eid, lane, prio, v_now, caps FROM created ORDER BY ord
    ), lanes AS (
      INSERT INTO lane_registry (lane_id, registered_at) SELECT DISTINCT lane, v_now FROM created
      ON CONFLICT (lane_id) DO NOTHING
    )
    SELECT coalesce(jsonb_agg(CASE WHEN c.ord IS NOT NULL
        THEN jsonb_build_object('_tag', 'Created', 'executionId', i.eid, 'publicState', 'waiting')
        ELSE jsonb_build_object('_tag', 'Duplicate', 'executionId', i.eid) END ORDER BY i.ord), '[]'::jsonb)
    INTO v_out
    FROM items i LEFT JOIN created c ON c.ord = i.ord;
    RETURN ffi_ok(v_out);
  END IF;
  FOR x IN SELECT value FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    r := ffi_create_execution(x->>'executionId', (x->>'partition')::int, x->>'namespace', x->>'laneId',
      x->>'executionKind', decode(x->>'payload', 'base64'), x->>'payloadEncoding', (x->>'priority')::int,
      x->>'creatorIdentity', x->>'idempotencyKey', x->'tags', x->'policy',
      ARRAY(SELECT jsonb_array_elements_text(x->'requiredCapabilities')), (x->>'delayUntil')::bigint,
      (x->>'executionDeadlineAt')::bigint, (x->>'attemptTimeoutMs')::bigint, (x->>'maxReclaimCount')::int,
      (x->>'maxReplayCount')::int, (x->>'dedupTtlMs')::bigint, v_now);
    v_out := v_out || jsonb_build_array(r->'ok');
  END LOOP;
  RETURN ffi_ok(v_out);
END $$;
`
