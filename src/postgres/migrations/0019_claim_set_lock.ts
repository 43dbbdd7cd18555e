/**
 * Migration 0019: `ff_claim` locks a round's common-case candidates in one
 * statement instead of one `SELECT … FOR UPDATE SKIP LOCKED` per candidate
 * (64 executor starts per full batch). The common case is 0009's (a fresh
 * attempt of an eligible execution without a grant or an attempt timeout);
 * the other candidates — locked elsewhere, gone, reserved, or anything else —
 * take the per-candidate path of 0009 unchanged. Same rows, same handles, same
 * claim order (handles are placed by candidate position as before).
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ff_claim(
  p_lane text, p_caps text[], p_worker text, p_wiid text, p_ttl bigint, p_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_out jsonb := '[]'::jsonb;
  v_round_out jsonb;
  v_count int := 0;
  v_skip text[] := '{}';
  v_round int := 0;
  v_ids text[];
  v_pos int;
  v_h jsonb;
  e exec_core;
  g claim_grant;
  -- the round's common-case candidates, by position in claim order
  f_ids text[];
  f_idx int[];
  f_epoch bigint[];
  f_type text[];
  f_prev int[];
  f_lane text[];
  f_pos int[];
  -- the other candidates' handles, by position
  s_pos int[];
  s_h jsonb[];
BEGIN
  LOOP
    v_round := v_round + 1;
    -- Lock only as many ready rows as are still wanted; candidates that cannot be
    -- taken (reserved by another worker's grant, stale) are skipped in the next round.
    v_ids := ARRAY(
      SELECT r.execution_id FROM ready r
      WHERE r.lane_id = p_lane AND r.required_caps <@ p_caps AND r.execution_id <> ALL (v_skip)
      ORDER BY r.priority DESC, r.created_at, r.seq
      LIMIT p_limit - v_count
      FOR UPDATE SKIP LOCKED);
    EXIT WHEN cardinality(v_ids) = 0;
    s_pos := '{}'; s_h := '{}';
    -- the common case, locked in one statement (rows that do not qualify once locked are left to the loop)
    SELECT coalesce(array_agg(c.execution_id ORDER BY c.pos), '{}'),
           coalesce(array_agg(c.total_attempt_count ORDER BY c.pos), '{}'),
           coalesce(array_agg(c.lease_epoch + 1 ORDER BY c.pos), '{}'),
           coalesce(array_agg(CASE c.attempt_state WHEN 'pending_retry_attempt' THEN 'retry'
                                                   WHEN 'pending_replay_attempt' THEN 'replay' ELSE 'initial' END
                              ORDER BY c.pos), '{}'),
           coalesce(array_agg(c.pending_previous_attempt_index ORDER BY c.pos), '{}'),
           coalesce(array_agg(c.lane_id ORDER BY c.pos), '{}'),
           coalesce(array_agg(c.pos::int ORDER BY c.pos), '{}')
    INTO f_ids, f_idx, f_epoch, f_type, f_prev, f_lane, f_pos
    FROM (
      SELECT c.execution_id, c.total_attempt_count, c.lease_epoch, c.attempt_state,
             c.pending_previous_attempt_index, c.lane_id, v.pos
      FROM unnest(v_ids) WITH ORDINALITY AS v(id, pos)
      JOIN exec_core c ON c.execution_id = v.id
      WHERE c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'eligible_now' AND c.terminal_outcome = 'none'
        AND c.attempt_state IN ('pending_first_attempt', 'pending_retry_attempt', 'pending_replay_attempt', 'none')
        AND NOT c.has_grant AND coalesce(c.attempt_timeout_ms, 0) <= 0 AND c.attempt_timeout_at IS NULL
      FOR UPDATE OF c SKIP LOCKED
    ) c;
    FOR v_pos IN 1 .. cardinality(v_ids) LOOP
      CONTINUE WHEN v_pos = ANY (f_pos);
      SELECT * INTO e FROM exec_core WHERE execution_id = v_ids[v_pos] FOR UPDATE SKIP LOCKED;
      IF NOT FOUND THEN
        IF NOT EXISTS (SELECT 1 FROM exec_core WHERE execution_id = v_ids[v_pos]) THEN
          DELETE FROM ready WHERE execution_id = v_ids[v_pos];
        END IF;
        v_skip := v_skip || v_ids[v_pos];
        CONTINUE;
      END IF;
      IF e.has_grant THEN
        SELECT * INTO g FROM claim_grant WHERE execution_id = e.execution_id;
        IF FOUND AND g.expires_at > v_now AND g.worker_id <> p_worker THEN
          v_skip := v_skip || e.execution_id;
          CONTINUE;
        END IF;
      END IF;
      IF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'eligible_now' AND e.terminal_outcome = 'none'
         AND e.attempt_state IN ('pending_first_attempt', 'pending_retry_attempt', 'pending_replay_attempt', 'none')
         AND NOT e.has_grant AND coalesce(e.attempt_timeout_ms, 0) <= 0 AND e.attempt_timeout_at IS NULL THEN
        f_ids := f_ids || e.execution_id;
        f_idx := f_idx || e.total_attempt_count;
        f_epoch := f_epoch || (e.lease_epoch + 1);
        f_type := f_type || CASE e.attempt_state WHEN 'pending_retry_attempt' THEN 'retry'
                                                 WHEN 'pending_replay_attempt' THEN 'replay' ELSE 'initial' END;
        f_prev := f_prev || e.pending_previous_attempt_index;
        f_lane := f_lane || e.lane_id;
        f_pos := f_pos || v_pos;
      ELSE
        v_h := ffi_claim_one(e, p_worker, p_wiid, p_ttl, v_now);
        IF v_h IS NOT NULL THEN
          s_pos := s_pos || v_pos;
          s_h := s_h || v_h;
        END IF;
      END IF;
    END LOOP;
    WITH u AS MATERIALIZED (
      SELECT t.id, t.idx, t.epoch, t.typ, t.prev, t.lane, t.pos,
        gen_random_uuid() AS att, gen_random_uuid() AS lease
      FROM unnest(f_ids, f_idx, f_epoch, f_type, f_prev, f_lane, f_pos) AS t(id, idx, epoch, typ, prev, lane, pos)
    ), attempts AS (
      INSERT INTO attempt (execution_id, attempt_index, attempt_id, attempt_type, attempt_state, created_at,
        started_at, lease_id, lease_epoch, worker_id, worker_instance_id, previous_attempt_index)
      SELECT id, idx, att, typ, 'started', v_now, v_now, lease, epoch, p_worker, p_wiid, prev FROM u
      ON CONFLICT (execution_id, attempt_index) DO UPDATE SET attempt_id = EXCLUDED.attempt_id,
        attempt_type = EXCLUDED.attempt_type, attempt_state = 'started', created_at = EXCLUDED.created_at,
        started_at = EXCLUDED.started_at, resumed_at = NULL, suspended_at = NULL, ended_at = NULL,
        lease_id = EXCLUDED.lease_id, lease_epoch = EXCLUDED.lease_epoch, worker_id = EXCLUDED.worker_id,
        worker_instance_id = EXCLUDED.worker_instance_id, suspension_id = NULL, failure_reason = NULL,
        failure_category = NULL, previous_attempt_index = EXCLUDED.previous_attempt_index
    ), cores AS (
      UPDATE exec_core c SET lifecycle_phase = 'active', ownership_state = 'leased',
        eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none',
        attempt_state = 'running_attempt', public_state = 'active',
        current_attempt_index = u.idx, current_attempt_id = u.att, total_attempt_count = u.idx + 1,
        lease_epoch = u.epoch, lease_id = u.lease, worker_id = p_worker, worker_instance_id = p_wiid, has_grant = false,
        lease_ttl_ms = p_ttl, lease_acquired_at = v_now, lease_expires_at = v_now + p_ttl,
        lease_last_renewed_at = NULL, lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
        started_at = coalesce(c.started_at, v_now),
        pending_retry_reason = NULL, pending_previous_attempt_index = NULL,
        pending_replay_reason = NULL, pending_replay_requested_by = NULL, delay_until = NULL,
        attempt_timeout_at = NULL, last_transition_at = v_now, last_mutation_at = v_now
      FROM u WHERE c.execution_id = u.id
    ), unready AS (
      DELETE FROM ready WHERE execution_id = ANY (f_ids)
    ), leases AS (
      INSERT INTO timer (kind, ref, due_at) SELECT 'lease', id, v_now + p_ttl FROM u
      ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at
    )
    SELECT coalesce(jsonb_agg(h ORDER BY pos), '[]'::jsonb) INTO v_round_out FROM (
      SELECT pos, jsonb_build_object('executionId', id, 'attemptIndex', idx, 'attemptId', att, 'leaseId', lease,
        'leaseEpoch', epoch, 'leaseTtlMs', p_ttl, 'laneId', lane, 'workerInstanceId', p_wiid, 'kind', 'fresh') AS h
      FROM u
      UNION ALL
      SELECT s.pos, s.h FROM unnest(s_pos, s_h) AS s(pos, h)
    ) claimed;
    v_out := v_out || v_round_out;
    v_count := v_count + jsonb_array_length(v_round_out);
    EXIT WHEN v_count >= p_limit OR v_round >= 8;
  END LOOP;
  RETURN ffi_ok(v_out);
END $$;
`
