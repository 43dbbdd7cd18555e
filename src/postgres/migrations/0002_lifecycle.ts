/**
 * Migration 0002: shared helpers and the worker hot path as server-side
 * functions — one call (one statement, one transaction) per operation.
 *
 * Conventions:
 * - entry points are `ff_<op>`, take the caller's clock as the last argument
 *   (`NULL` ⇒ the database's `clock_timestamp()`), carry
 *   `SET search_path FROM CURRENT` and return `{"ok": value}` or
 *   `{"err": code, "d": [details]}` (codes of errors.md §6);
 * - internal helpers are `ffi_<name>` and run on the caller's search path;
 * - the `exec_core` row is the owner lock of everything about an execution:
 *   lock it first, then touch `ready` / `timer` / attempt / stream rows.
 *   Claims and passes take rows with `SKIP LOCKED`, so they never wait while
 *   holding a lock someone else needs.
 */
export const sql = String.raw`
-- ---------------------------------------------------------------------------
-- helpers
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ffi_now() RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE OR REPLACE FUNCTION ffi_err(p_code text, VARIADIC p_d text[] DEFAULT '{}') RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('err', p_code, 'd', to_jsonb(p_d)) $$;

CREATE OR REPLACE FUNCTION ffi_ok(p_v jsonb DEFAULT 'null'::jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('ok', p_v) $$;

-- An error that must roll the whole operation back.
CREATE OR REPLACE FUNCTION ffi_raise(p_code text, VARIADIC p_d text[] DEFAULT '{}') RETURNS void LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'FF001', MESSAGE = p_code, DETAIL = to_jsonb(p_d)::text; END $$;

CREATE OR REPLACE FUNCTION ffi_public_state(p_phase text, p_elig text, p_outcome text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p_phase
    WHEN 'terminal' THEN CASE p_outcome WHEN 'success' THEN 'completed' WHEN 'none' THEN 'failed' ELSE p_outcome END
    WHEN 'suspended' THEN 'suspended'
    WHEN 'active' THEN 'active'
    WHEN 'submitted' THEN 'waiting'
    ELSE CASE p_elig
      WHEN 'not_eligible_until_time' THEN 'delayed'
      WHEN 'blocked_by_dependencies' THEN 'waiting_children'
      WHEN 'blocked_by_budget' THEN 'rate_limited'
      WHEN 'blocked_by_quota' THEN 'rate_limited'
      ELSE 'waiting' END
  END $$;

CREATE OR REPLACE FUNCTION ffi_not_active(e exec_core) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT ffi_err('execution_not_active', e.terminal_outcome, e.lease_epoch::text, e.lifecycle_phase,
                 coalesce(e.current_attempt_id::text, '')) $$;

-- DML helpers are PL/pgSQL (not SQL) functions: their plans are cached per
-- session instead of being prepared again in every transaction.
CREATE OR REPLACE FUNCTION ffi_ready_add(p_eid text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ready (execution_id, lane_id, priority, created_at, required_caps)
  SELECT execution_id, lane_id, priority, created_at, required_caps FROM exec_core WHERE execution_id = p_eid
  ON CONFLICT (execution_id) DO NOTHING;
END $$;

CREATE OR REPLACE FUNCTION ffi_timer_set(p_kind text, p_ref text, p_due bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO timer (kind, ref, due_at) VALUES (p_kind, p_ref, p_due)
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
END $$;

CREATE OR REPLACE FUNCTION ffi_timer_del(p_kind text, p_ref text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM timer WHERE kind = p_kind AND ref = p_ref;
END $$;

CREATE OR REPLACE FUNCTION ffi_stream_close(p_eid text, p_idx int, p_reason text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE stream_meta SET closed_at = p_now, closed_reason = p_reason
  WHERE execution_id = p_eid AND attempt_index = p_idx AND closed_at IS NULL;
END $$;

-- T12: a lease past its expiry becomes reclaimable (claim takes it, P3).
CREATE OR REPLACE FUNCTION ffi_mark_expired(p_eid text, p_now bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_idx int;
BEGIN
  UPDATE exec_core SET ownership_state = 'lease_expired_reclaimable', blocking_reason = 'waiting_for_worker',
    blocking_detail = 'lease expired, awaiting reclaim', attempt_state = 'attempt_interrupted',
    public_state = 'active', lease_expired_at = p_now, last_mutation_at = p_now
  WHERE execution_id = p_eid AND lifecycle_phase = 'active' AND ownership_state = 'leased'
  RETURNING current_attempt_index INTO v_idx;
  IF NOT FOUND THEN RETURN false; END IF;
  IF v_idx IS NOT NULL THEN PERFORM ffi_stream_close(p_eid, v_idx, 'lease_expired', p_now); END IF;
  PERFORM ffi_timer_del('lease', p_eid);
  PERFORM ffi_ready_add(p_eid);
  RETURN true;
END $$;

-- The lease ladder (model.md §6.3). NULL when the handle owns the execution.
-- p_attempt compares the attempt id; p_renew also treats a recorded revocation
-- as revoked and compares the attempt index (renew's stricter ladder).
CREATE OR REPLACE FUNCTION ffi_lease_check(
  e exec_core, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_now bigint,
  p_mark boolean, p_attempt boolean, p_renew boolean
) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  IF e.lifecycle_phase <> 'active' THEN RETURN ffi_not_active(e); END IF;
  IF e.ownership_state = 'lease_revoked' OR (p_renew AND e.lease_revoked_at IS NOT NULL) THEN
    RETURN ffi_err('lease_revoked');
  END IF;
  IF e.lease_expires_at IS NOT NULL AND e.lease_expires_at <= p_now THEN
    IF p_mark THEN PERFORM ffi_mark_expired(e.execution_id, p_now); END IF;
    RETURN ffi_err('lease_expired');
  END IF;
  IF e.lease_id IS DISTINCT FROM p_lease OR e.lease_epoch <> p_epoch
     OR (p_attempt AND e.current_attempt_id IS DISTINCT FROM p_att)
     OR (p_renew AND e.current_attempt_index IS DISTINCT FROM p_idx) THEN
    RETURN ffi_err('stale_lease');
  END IF;
  RETURN NULL;
END $$;

-- Closes the open suspension of an execution and its waitpoints.
CREATE OR REPLACE FUNCTION ffi_suspension_close(p_eid text, p_reason text, p_now bigint) RETURNS void
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

-- Common tail of every terminal transition: indexes, timers, grants and, for
-- a flow member, (P4) the dependency resolution and the flow's settlement.
CREATE OR REPLACE FUNCTION ffi_after_terminal(
  p_eid text, p_flow uuid, p_outcome text, p_now bigint, p_resolve boolean, p_has_grant boolean
)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM ready WHERE execution_id = p_eid;
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

-- Ends an execution (any non-terminal phase) with a terminal outcome. The
-- caller holds the exec_core row lock.
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
    attempt_state = CASE WHEN current_attempt_id IS NULL THEN 'none' ELSE 'attempt_terminal' END,
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

-- T8 from runnable / active / suspended.
CREATE OR REPLACE FUNCTION ffi_cancel_exec(p_eid text, p_reason text, p_source text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_terminate(p_eid, 'cancelled', 'ended_cancelled', 'cancelled: ' || p_reason, NULL, p_reason,
                        CASE WHEN p_source = '' THEN p_eid ELSE p_source END,
                        'attempt_cancelled', 'cancelled', p_now, p_source <> 'flow_cascade');
END $$;

-- ---------------------------------------------------------------------------
-- create_execution (T1/T2)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ffi_create_execution(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, v_now bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_delayed boolean := p_delay_until IS NOT NULL AND p_delay_until > v_now;
  v_existing text;
BEGIN
  IF p_idem IS NOT NULL AND p_idem <> '' THEN
    INSERT INTO exec_idempotency (partition_key, namespace, idempotency_key, execution_id, expires_at)
    VALUES (p_partition, p_namespace, p_idem, p_eid, v_now + p_dedup_ttl_ms)
    ON CONFLICT (partition_key, namespace, idempotency_key) DO UPDATE
      SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
      WHERE exec_idempotency.expires_at <= v_now;
    IF NOT FOUND THEN
      SELECT execution_id INTO v_existing FROM exec_idempotency
      WHERE partition_key = p_partition AND namespace = p_namespace AND idempotency_key = p_idem;
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

CREATE OR REPLACE FUNCTION ff_create_execution(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_create_execution(p_eid, p_partition, p_namespace, p_lane, p_kind, p_payload, p_payload_encoding,
    p_priority, p_creator, p_idem, p_tags, p_policy, p_caps, p_delay_until, p_deadline, p_attempt_timeout_ms,
    p_max_reclaim, p_max_replay, p_dedup_ttl_ms, coalesce(p_now, ffi_now())));
END $$;

-- A batch: every item as create_execution, in one statement.
CREATE OR REPLACE FUNCTION ff_create_executions(p_items jsonb, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  x jsonb;
  r jsonb;
  v_out jsonb := '[]'::jsonb;
BEGIN
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

-- ---------------------------------------------------------------------------
-- claim (T3 fresh, T4 resumed per D-4, T14 reclaim per P3)
-- ---------------------------------------------------------------------------

-- Leases one candidate whose row the caller locked. NULL when it is not
-- claimable (its stale ready row is dropped).
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
  PERFORM ffi_timer_set('lease', e.execution_id, v_exp);
  IF e.attempt_timeout_ms > 0 THEN
    PERFORM ffi_timer_set('attempt_timeout', e.execution_id, p_now + e.attempt_timeout_ms);
  ELSIF e.attempt_timeout_at IS NOT NULL THEN
    PERFORM ffi_timer_del('attempt_timeout', e.execution_id);
  END IF;
  RETURN jsonb_build_object('executionId', e.execution_id, 'attemptIndex', v_idx, 'attemptId', v_att,
    'leaseId', v_lease, 'leaseEpoch', v_epoch, 'leaseTtlMs', p_ttl, 'laneId', e.lane_id,
    'workerInstanceId', p_wiid, 'kind', v_kind);
END $$;

-- The ready scan must walk ready_claim_order from its head: on a churning
-- queue table the statistics lag and the planner would otherwise sort the
-- whole lane on every claim.
CREATE OR REPLACE FUNCTION ff_claim(
  p_lane text, p_caps text[], p_worker text, p_wiid text, p_ttl bigint, p_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_out jsonb := '[]'::jsonb;
  v_count int := 0;
  v_skip text[] := '{}';
  v_round int := 0;
  v_seen int;
  v_id text;
  v_h jsonb;
  e exec_core;
  g claim_grant;
BEGIN
  -- Lock only as many ready rows as are still wanted; candidates that cannot be
  -- taken (reserved by another worker's grant, stale) are skipped in the next round.
  LOOP
    v_round := v_round + 1;
    v_seen := 0;
    FOR v_id IN
      SELECT r.execution_id FROM ready r
      WHERE r.lane_id = p_lane AND r.required_caps <@ p_caps AND r.execution_id <> ALL (v_skip)
      ORDER BY r.priority DESC, r.created_at, r.seq
      LIMIT p_limit - v_count
      FOR UPDATE SKIP LOCKED
    LOOP
      v_seen := v_seen + 1;
      SELECT * INTO e FROM exec_core WHERE execution_id = v_id FOR UPDATE SKIP LOCKED;
      IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM exec_core WHERE execution_id = v_id) THEN
          DELETE FROM ready WHERE execution_id = v_id;
        END IF;
        v_skip := v_skip || v_id;
        CONTINUE;
      END IF;
      IF e.has_grant THEN
        SELECT * INTO g FROM claim_grant WHERE execution_id = v_id;
        IF FOUND AND g.expires_at > v_now AND g.worker_id <> p_worker THEN
          v_skip := v_skip || v_id;
          CONTINUE;
        END IF;
      END IF;
      v_h := ffi_claim_one(e, p_worker, p_wiid, p_ttl, v_now);
      IF v_h IS NOT NULL THEN
        v_out := v_out || jsonb_build_array(v_h);
        v_count := v_count + 1;
      END IF;
    END LOOP;
    EXIT WHEN v_count >= p_limit OR v_seen = 0 OR v_round >= 8;
  END LOOP;
  RETURN ffi_ok(v_out);
END $$;

-- ---------------------------------------------------------------------------
-- renew, progress
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_renew(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_ttl bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb; v_exp bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, true);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  v_exp := v_now + p_ttl;
  UPDATE exec_core SET lease_expires_at = v_exp, lease_last_renewed_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  PERFORM ffi_timer_set('lease', p_eid, v_exp);
  RETURN ffi_ok(jsonb_build_object('expiresAtMs', v_exp, 'leaseEpoch', e.lease_epoch));
END $$;

CREATE OR REPLACE FUNCTION ff_progress(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_pct int, p_msg text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, false, false, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  UPDATE exec_core SET progress_pct = coalesce(p_pct, progress_pct), progress_message = coalesce(p_msg, progress_message),
    progress_updated_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  RETURN ffi_ok();
END $$;

-- ---------------------------------------------------------------------------
-- complete (T5), fail (T6/T7), cancel (T8), delay (T10), wait_children (T11)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_complete(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_payload bytea, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  IF p_payload IS NOT NULL AND length(p_payload) > 0 THEN
    UPDATE exec_data SET result = p_payload WHERE execution_id = p_eid;
  END IF;
  PERFORM ffi_terminate(p_eid, 'success', 'ended_success', NULL, NULL, NULL, NULL,
                        'attempt_success', 'completed', v_now, true);
  RETURN ffi_ok();
END $$;

-- Backoff of the retry numbered p_n (model.md §14).
CREATE OR REPLACE FUNCTION ffi_backoff_ms(p_backoff jsonb, p_n int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN p_backoff IS NULL OR jsonb_typeof(p_backoff) <> 'object' THEN least(1000 * power(2::float8, p_n), 60000)::bigint
    WHEN p_backoff->>'type' = 'fixed' THEN coalesce((p_backoff->>'delay_ms')::bigint, 1000)
    WHEN p_backoff->>'type' = 'exponential' THEN least(
      floor(coalesce((p_backoff->>'initial_delay_ms')::float8, 1000)
            * power(coalesce((p_backoff->>'multiplier')::float8, 2), p_n))::bigint,
      coalesce((p_backoff->>'max_delay_ms')::bigint, 60000))
    ELSE 1000 END $$;

CREATE OR REPLACE FUNCTION ff_fail(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint,
  p_reason text, p_category text, p_class text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  v_err jsonb;
  v_rp jsonb;
  v_max int;
  v_cats jsonb;
  v_retry boolean := false;
  v_until bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  SELECT policy->'retry_policy' INTO v_rp FROM exec_data WHERE execution_id = p_eid;
  IF v_rp IS NOT NULL AND jsonb_typeof(v_rp) = 'object' AND p_class NOT IN ('Permanent', 'Cancelled') THEN
    v_max := coalesce((v_rp->>'max_retries')::int, 3);
    v_cats := v_rp->'retryable_categories';
    v_retry := e.retry_count < v_max AND (
      v_cats IS NULL OR jsonb_typeof(v_cats) <> 'array' OR jsonb_array_length(v_cats) = 0
      OR v_cats ? p_category);
  END IF;
  UPDATE attempt SET attempt_state = 'ended_failure', ended_at = v_now, failure_reason = p_reason,
    failure_category = p_category
  WHERE execution_id = p_eid AND attempt_index = e.current_attempt_index;
  IF NOT v_retry THEN
    PERFORM ffi_terminate(p_eid, 'failed', 'ended_failure', p_reason, p_reason, NULL, NULL,
                          'attempt_failure', 'failed', v_now, true);
    RETURN ffi_ok(jsonb_build_object('_tag', 'TerminalFailed'));
  END IF;
  v_until := v_now + ffi_backoff_ms(v_rp->'backoff', e.retry_count);
  PERFORM ffi_stream_close(p_eid, e.current_attempt_index, 'attempt_failure', v_now);
  UPDATE exec_core SET lifecycle_phase = 'runnable', ownership_state = 'unowned',
    eligibility_state = 'not_eligible_until_time', blocking_reason = 'waiting_for_retry_backoff',
    blocking_detail = 'retry backoff until ' || v_until || ' (attempt ' || e.current_attempt_index || ' failed: ' || p_reason || ')',
    terminal_outcome = 'none', attempt_state = 'pending_retry_attempt', public_state = 'delayed',
    pending_retry_reason = p_reason, pending_previous_attempt_index = e.current_attempt_index,
    retry_count = retry_count + 1, current_attempt_id = NULL,
    lease_id = NULL, worker_id = NULL, worker_instance_id = NULL, lease_expires_at = NULL,
    lease_last_renewed_at = NULL, lease_acquired_at = NULL, attempt_timeout_at = NULL,
    delay_until = v_until, failure_reason = p_reason, last_transition_at = v_now, last_mutation_at = v_now
  WHERE execution_id = p_eid;
  DELETE FROM timer WHERE ref = p_eid AND kind IN ('lease', 'attempt_timeout');
  PERFORM ffi_timer_set('delay', p_eid, v_until);
  RETURN ffi_ok(jsonb_build_object('_tag', 'RetryScheduled', 'delayUntil', v_until));
END $$;

CREATE OR REPLACE FUNCTION ff_cancel(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_reason text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase = 'terminal' THEN RETURN ffi_not_active(e); END IF;
  IF e.lifecycle_phase = 'active' THEN
    IF e.ownership_state = 'lease_revoked' THEN RETURN ffi_err('lease_revoked'); END IF;
    IF e.lease_id IS DISTINCT FROM p_lease OR e.lease_epoch <> p_epoch THEN RETURN ffi_err('stale_lease'); END IF;
  END IF;
  PERFORM ffi_cancel_exec(p_eid, p_reason, 'worker', v_now);
  RETURN ffi_ok();
END $$;

-- Releases the lease of an active execution into an interrupted runnable
-- state (delay, wait_children).
CREATE OR REPLACE FUNCTION ffi_interrupt(
  e exec_core, p_elig text, p_blocking text, p_detail text, p_delay_until bigint, p_marker text, p_now bigint
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE attempt SET attempt_state = 'suspended', suspended_at = p_now, suspension_id = p_marker
  WHERE execution_id = e.execution_id AND attempt_index = e.current_attempt_index;
  UPDATE exec_core SET lifecycle_phase = 'runnable', ownership_state = 'unowned', eligibility_state = p_elig,
    blocking_reason = p_blocking, blocking_detail = p_detail, terminal_outcome = 'none',
    attempt_state = 'attempt_interrupted', public_state = ffi_public_state('runnable', p_elig, 'none'),
    delay_until = p_delay_until, lease_id = NULL, worker_id = NULL, worker_instance_id = NULL,
    lease_expires_at = NULL, lease_last_renewed_at = NULL, lease_acquired_at = NULL, attempt_timeout_at = NULL,
    last_transition_at = p_now, last_mutation_at = p_now
  WHERE execution_id = e.execution_id;
  DELETE FROM timer WHERE ref = e.execution_id AND kind IN ('lease', 'attempt_timeout');
END $$;

CREATE OR REPLACE FUNCTION ff_delay(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_until bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  PERFORM ffi_interrupt(e, 'not_eligible_until_time', 'waiting_for_delay', 'delayed until ' || p_until,
                        p_until, 'worker_delay', v_now);
  PERFORM ffi_timer_set('delay', p_eid, p_until);
  RETURN ffi_ok();
END $$;

CREATE OR REPLACE FUNCTION ff_wait_children(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb; v_satisfied boolean;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  -- nothing to wait for (no dependencies, or all already satisfied): eligible at once
  v_satisfied := NOT EXISTS (SELECT 1 FROM edge_group WHERE downstream_id = p_eid AND group_state <> 'satisfied')
    OR NOT EXISTS (SELECT 1 FROM dep WHERE downstream_id = p_eid AND state <> 'satisfied');
  IF v_satisfied THEN
    PERFORM ffi_interrupt(e, 'eligible_now', 'waiting_for_worker', '', NULL, 'waiting_children', v_now);
    PERFORM ffi_ready_add(p_eid);
  ELSE
    PERFORM ffi_interrupt(e, 'blocked_by_dependencies', 'waiting_for_children',
                          'waiting for child executions to complete', NULL, 'waiting_children', v_now);
  END IF;
  RETURN ffi_ok();
END $$;
`
