-- ===========================================================================
-- claim.sql: taking executions — the claim of claimable work in claim order
-- (priority, then age), grants that reserve an execution for one worker, and
-- the claim of a resumed execution with its grant.
-- ===========================================================================

-- ffi_claim_one: leases execution e (locked by the caller) to the worker, whichever way it is
-- claimable: the interrupted attempt of a runnable execution is resumed; a pending first, retry
-- or replay attempt is started; the attempt of an expired or revoked lease ends as reclaimed
-- and a new attempt starts (past max_reclaim_count the execution fails instead).
--   args:   e, p_worker, p_wiid (worker instance id), p_ttl (lease ms), p_now
--   reply:  the handle payload (Model.HandlePayload fields plus kind: fresh | resumed), or NULL
--           when e was not claimable
--   errors: -
CREATE FUNCTION ffi_claim_one(e exec_core, p_worker text, p_wiid text, p_ttl bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  -- (the counts and the epoch are NULL for 0 until they first change: migration 0051)
  v_epoch bigint := coalesce(e.lease_epoch, 0) + 1;
  v_lease uuid := gen_random_uuid();
  v_exp bigint := p_now + p_ttl;
  v_idx int;
  v_att uuid;
  v_type text;
  v_kind text := 'fresh';
  v_prev int;
  v_eid text := ffi_eid(e.partition_key, e.e_uuid);
BEGIN
  IF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'eligible_now'
     AND e.attempt_state = 'attempt_interrupted' AND e.current_attempt_index IS NOT NULL THEN
    v_idx := e.current_attempt_index;
    v_att := e.current_attempt_id;
    v_kind := 'resumed';
  ELSIF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'eligible_now' AND e.terminal_outcome = 'none'
        AND e.attempt_state IN ('pending_first_attempt', 'pending_retry_attempt', 'pending_replay_attempt', 'none') THEN
    v_idx := coalesce(e.total_attempt_count, 0);
    v_att := gen_random_uuid();
    v_type := CASE e.attempt_state WHEN 'pending_retry_attempt' THEN 'retry'
                                   WHEN 'pending_replay_attempt' THEN 'replay' ELSE 'initial' END;
    v_prev := e.pending_previous_attempt_index;
  ELSIF e.lifecycle_phase = 'active' AND e.ownership_state IN ('lease_expired_reclaimable', 'lease_revoked') THEN
    IF coalesce(e.lease_reclaim_count, 0) >= ffi_max_reclaims(e.max_reclaim_count) THEN
      PERFORM ffi_record_failure(v_eid, 'max_reclaims_exceeded', 'InfraCrash', 'infra_crash', p_now);
      PERFORM ffi_terminate(v_eid, 'failed', 'max_reclaims_exceeded', 'max_reclaims_exceeded',
                            NULL, NULL, 'reclaimed', 'reclaimed', p_now, true);
      RETURN NULL;
    END IF;
    v_prev := e.current_attempt_index;
    IF v_prev IS NOT NULL THEN
      PERFORM ffi_stream_close(v_eid, v_prev, 'reclaimed', p_now);
    END IF;
    v_idx := coalesce(e.total_attempt_count, 0);
    v_att := gen_random_uuid();
    v_type := 'reclaim';
  ELSE
    RETURN NULL;
  END IF;
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'active', ownership_state = 'leased', eligibility_state = 'not_applicable',
    blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none', attempt_state = 'running_attempt',
    public_state = 'active',
    current_attempt_index = v_idx, current_attempt_id = v_att,
    total_attempt_count = CASE WHEN v_kind = 'fresh' THEN v_idx + 1 ELSE total_attempt_count END,
    run_kind = CASE WHEN v_kind = 'resumed' THEN 'resumed' ELSE nullif(v_type, 'initial') END,
    lease_reclaim_count = CASE WHEN v_type = 'reclaim' THEN coalesce(lease_reclaim_count, 0) + 1 ELSE lease_reclaim_count END,
    lease_epoch = v_epoch, lease_id = v_lease, worker_id = p_worker, worker_instance_id = p_wiid, has_grant = false,
    lease_ttl_ms = p_ttl, lease_acquired_at = p_now, lease_expires_at = v_exp, lease_last_renewed_at = NULL,
    lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
    started_at = coalesce(started_at, p_now),
    pending_retry_reason = NULL, pending_previous_attempt_index = NULL,
    pending_replay_reason = NULL, pending_replay_requested_by = NULL, delay_until = NULL,
    attempt_timeout_at = CASE WHEN attempt_timeout_ms > 0 THEN p_now + attempt_timeout_ms END,
    last_mutation_at = p_now
  WHERE partition_key = e.partition_key AND e_uuid = e.e_uuid;
  IF e.has_grant THEN DELETE FROM claim_grant WHERE execution_id = v_eid; END IF;
  INSERT INTO timer (kind, ref, due_at) VALUES ('lease', v_eid, v_exp)
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  IF e.attempt_timeout_ms > 0 THEN
    PERFORM ffi_timer_set('attempt_timeout', v_eid, p_now + e.attempt_timeout_ms);
  ELSIF e.attempt_timeout_at IS NOT NULL THEN
    PERFORM ffi_timer_del('attempt_timeout', v_eid);
  END IF;
  RETURN jsonb_build_object('executionId', v_eid, 'attemptIndex', v_idx, 'attemptId', v_att,
    'leaseId', v_lease, 'leaseEpoch', v_epoch, 'leaseTtlMs', p_ttl, 'laneId', e.lane_id,
    'workerInstanceId', p_wiid, 'kind', v_kind);
END $$;

-- ffi_claim_window: the claimable executions of lane p_lane (those in p_skip apart) a claim for a
-- worker with capabilities p_caps and kinds p_kinds (NULL: any) may take, among a bounded window
-- in claim order: with kinds, the first p_want + 256 of each kind; without, the first p_want + 256
-- of the lane. Both read the one claim index, exec_core_claim_by_kind (migration 0057): a claim
-- without kinds first reads the kinds of the lane that have claimable executions (one descent of
-- the index per kind, in kind order), then each kind's first p_want + 256, and keeps the first
-- p_want + 256 of their merge (the lane's first p_want + 256 are among them). So a claim's cost
-- never grows with the executions of other kinds ahead of its work; one whose capabilities the
-- worker lacks still counts in the window (docs/limits.md, "What one claim reads"). Nothing is
-- locked. (The kind leads the ORDER BY of a kind's window, a no-op there, so that the plan reads
-- exec_core_claim_by_kind, never the lane's rows. The merge of the kinds' windows is a sort, which
-- the callers' enable_sort = off prices so high that JIT compilation would start, at about a
-- second a call: jit is off here.)
--   args:   p_lane, p_caps, p_kinds, p_skip (execution ids), p_want
--   reply:  the executions in claim order, as their partitions (o_part) and uuids (o_uuid) at the
--           same positions
--   errors: -
CREATE FUNCTION ffi_claim_window(p_lane text, p_caps text[], p_kinds text[], p_skip text[], p_want int,
  OUT o_part int[], OUT o_uuid uuid[])
LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
  v_kinds text[] := p_kinds;
BEGIN
  IF p_kinds IS NULL THEN
    -- the lane's kinds with claimable executions, each found by one descent of the index past the
    -- one before (a loose scan)
    WITH RECURSIVE k(kind) AS (
      (SELECT c.execution_kind FROM exec_core c
       WHERE c.lane_id = p_lane AND c.blocking_reason = 'waiting_for_worker'
       ORDER BY c.execution_kind LIMIT 1)
      UNION ALL
      SELECT (SELECT c.execution_kind FROM exec_core c
              WHERE c.lane_id = p_lane AND c.blocking_reason = 'waiting_for_worker' AND c.execution_kind > k.kind
              ORDER BY c.execution_kind LIMIT 1)
      FROM k WHERE k.kind IS NOT NULL
    )
    SELECT coalesce(array_agg(k.kind), '{}') INTO v_kinds FROM k WHERE k.kind IS NOT NULL;
  END IF;
  -- (both arrays aggregate one stream of rows in claim order: the same positions)
  SELECT coalesce(array_agg(w.partition_key), '{}'), coalesce(array_agg(w.e_uuid), '{}')
  INTO o_part, o_uuid FROM (SELECT w.* FROM (
      SELECT x.* FROM unnest(v_kinds) AS k(kind) CROSS JOIN LATERAL (
        SELECT c.partition_key, c.e_uuid, c.required_caps, c.priority, c.created_at FROM exec_core c
        WHERE c.lane_id = p_lane AND c.execution_kind = k.kind AND c.blocking_reason = 'waiting_for_worker'
          AND (cardinality(p_skip) = 0 OR ffi_eid(c.partition_key, c.e_uuid) <> ALL (p_skip))
        ORDER BY c.execution_kind, c.priority DESC, c.created_at LIMIT p_want + 256
      ) x
      -- without kinds: the lane's window, the first p_want + 256 of the merge
      ORDER BY x.priority DESC, x.created_at
      LIMIT CASE WHEN p_kinds IS NULL THEN p_want + 256 END
    ) w
    WHERE w.required_caps IS NULL OR w.required_caps <@ p_caps
    ORDER BY w.priority DESC, w.created_at) w;
END $$;

-- ff_claim: claim / claimMany — claims up to p_limit claimable executions of lane p_lane whose
-- required capabilities p_caps cover and whose kind is in p_kinds (when given), in claim order
-- within the window of ffi_claim_window. Per round it locks, in claim order, only as many of the
-- window's exec_core rows as are still wanted, each still claimable once locked (a row whose claim
-- another transaction committed meanwhile is read in its new version and passed over), skipping
-- rows another transaction holds: another claimer's, or a renewal's or a cancellation's. When a
-- round locks fewer than it wanted, the window's rows it skipped that are still claimable are
-- counted as busy: they may be claimable once that transaction ends, and no wake-up will say so,
-- so the caller claims again shortly (docs/worker.md, "Wake-ups, timers and cancellation"). The
-- common case (a fresh attempt without grant or attempt timeout) is leased set-based, every
-- other candidate through ffi_claim_one, and a candidate reserved by another worker's live grant
-- is skipped. The set-based part of a round arms one lease timer for its executions
-- (timer.refs), ffi_claim_one one per execution. A round that locked a single candidate, of the
-- common case, claims it with single-row statements instead (the same row, event and lane counts,
-- a lease timer of its own): the claim of an idle worker woken for one execution, for about 12 %
-- less server CPU than the set-based statement. At most 8 rounds. The plan is generic and
-- index-only (sort, bitmap and sequential scans off): the statements are planned once per session.
--   args:   p_lane, p_caps (the worker's capabilities), p_kinds (the execution kinds the worker runs,
--           NULL: any), p_worker, p_wiid, p_ttl (lease ms), p_limit, p_now
--   reply:  {"ok": {"handles": [claimed handle payload] in claim order (kind fresh | resumed), maybe
--           empty, "busy": the candidates skipped because another transaction held them}}
--   errors: -
CREATE FUNCTION ff_claim(
  p_lane text, p_caps text[], p_kinds text[], p_worker text, p_wiid text, p_ttl bigint, p_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_out jsonb := '[]'::jsonb;
  v_round_out jsonb;
  v_count int := 0;
  v_busy int := 0;
  v_skip text[] := '{}';
  v_round int := 0;
  v_w record;
  v_wpart int[];
  v_wuuid uuid[];
  v_held text[];
  -- the round's locked candidates, and their positions in the window (claim order)
  v_ids text[];
  v_wpos int[];
  v_i int;
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
  f_state text[];
  -- the row versions locked (ctid): the set's update reads them by a TID scan, the only plan it has
  f_tid tid[];
  -- the k and time of each one's created event while its row holds it (migration 0058: written here
  -- as it was read, before the Claimed), else NULL
  f_ck bigint[];
  f_cat bigint[];
  v_scopes text[];
  -- whether a candidate's last event is this transaction's (then the triggers write the events)
  f_fold boolean;
  -- the other candidates' handles, by position
  s_pos int[];
  s_h jsonb[];
  -- (the set_config and wake-up calls are expressions, not PERFORMs: no query start-up)
  v_void text;
  -- a single candidate's claim: its new attempt and lease, and what its update returns
  v_att uuid;
  v_lease uuid;
  v_part int;
  v_uuid uuid;
  v_k bigint;
  v_flow uuid;
BEGIN
  LOOP
    v_round := v_round + 1;
    -- (an expression, not a query over the function: no query start-up)
    v_w := ffi_claim_window(p_lane, p_caps, p_kinds, v_skip, p_limit - v_count);
    v_wpart := v_w.o_part;
    v_wuuid := v_w.o_uuid;
    EXIT WHEN cardinality(v_wuuid) = 0;
    -- Lock only as many candidates as are still wanted, in claim order, and read the common case
    -- (a fresh attempt without grant or attempt timeout) in the same statement; candidates that
    -- cannot be taken (reserved by another worker's grant) are skipped in the next round.
    SELECT coalesce(array_agg(l.execution_id ORDER BY l.pos), '{}'),
           coalesce(array_agg(l.pos::int ORDER BY l.pos), '{}'),
           coalesce(array_agg(l.execution_id ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(coalesce(l.total_attempt_count, 0) ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(coalesce(l.lease_epoch, 0) + 1 ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(CASE l.attempt_state WHEN 'pending_retry_attempt' THEN 'retry'
                                                   WHEN 'pending_replay_attempt' THEN 'replay' ELSE 'initial' END
                              ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(l.pending_previous_attempt_index ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(l.lane_id ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(l.pos::int ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(l.public_state ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(l.tid ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(bool_or(coalesce(l.event_k, l.created_k) = ffi_xid()) FILTER (WHERE l.common), false),
           coalesce(array_agg(l.created_k ORDER BY l.pos) FILTER (WHERE l.common), '{}'),
           coalesce(array_agg(l.created_at ORDER BY l.pos) FILTER (WHERE l.common), '{}')
    INTO v_ids, v_wpos, f_ids, f_idx, f_epoch, f_type, f_prev, f_lane, f_pos, f_state, f_tid, f_fold, f_ck, f_cat
    FROM (
      SELECT w.pos, c.*
      FROM unnest(v_wpart, v_wuuid) WITH ORDINALITY AS w(part, u, pos)
      CROSS JOIN LATERAL (
        SELECT c.ctid AS tid, ffi_eid(c.partition_key, c.e_uuid) AS execution_id, c.total_attempt_count, c.lease_epoch, c.attempt_state,
               c.pending_previous_attempt_index, c.lane_id, c.public_state, c.event_k, c.created_at,
               c.created_k,
               (c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'eligible_now' AND c.terminal_outcome = 'none'
                AND c.attempt_state IN ('pending_first_attempt', 'pending_retry_attempt', 'pending_replay_attempt', 'none')
                AND c.has_grant IS NOT TRUE AND coalesce(c.attempt_timeout_ms, 0) <= 0 AND c.attempt_timeout_at IS NULL) AS common
        FROM exec_core c WHERE c.partition_key = w.part AND c.e_uuid = w.u
          AND (c.blocking_reason = 'waiting_for_worker') IS TRUE
        FOR UPDATE OF c SKIP LOCKED
      ) c
      LIMIT p_limit - v_count
    ) l;
    IF cardinality(v_ids) < p_limit - v_count AND cardinality(v_ids) < cardinality(v_wuuid) THEN
      -- the whole window was tried: what is still claimable and was not locked, another transaction holds
      SELECT array_agg(ffi_eid(w.part, w.u)) INTO v_held FROM unnest(v_wpart, v_wuuid) WITH ORDINALITY AS w(part, u, pos)
      WHERE w.pos <> ALL (v_wpos)
        AND EXISTS (SELECT 1 FROM exec_core c
                    WHERE c.partition_key = w.part AND c.e_uuid = w.u
          AND (c.blocking_reason = 'waiting_for_worker') IS TRUE);
      IF v_held IS NOT NULL THEN
        v_busy := v_busy + cardinality(v_held);
        v_skip := v_skip || v_held;
      END IF;
    END IF;
    EXIT WHEN cardinality(v_ids) = 0;
    s_pos := '{}'; s_h := '{}';
    FOR v_i IN 1 .. cardinality(v_ids) LOOP
      v_pos := v_wpos[v_i];
      CONTINUE WHEN v_pos = ANY (f_pos);
      SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(v_ids[v_i]) AND e_uuid = ffi_eid_uuid(v_ids[v_i]);
      IF e.has_grant THEN
        SELECT * INTO g FROM claim_grant WHERE execution_id = v_ids[v_i];
        IF FOUND AND g.expires_at > v_now AND g.worker_id <> p_worker THEN
          v_skip := v_skip || v_ids[v_i];
          CONTINUE;
        END IF;
      END IF;
      v_h := ffi_claim_one(e, p_worker, p_wiid, p_ttl, v_now);
      IF v_h IS NOT NULL THEN
        s_pos := s_pos || v_pos;
        s_h := s_h || v_h;
      ELSE
        v_skip := v_skip || v_ids[v_i];
      END IF;
    END LOOP;
    IF cardinality(f_ids) > 0 AND cardinality(v_ids) > cardinality(f_ids) THEN
      -- ffi_claim_one may have run for other candidates, and what it did (a flow member that
      -- ended, its edges resolved) may have updated a row of the set: the set's current row
      -- versions, each looked up by its key (LIMIT 1: not flattened into a join)
      -- (and whether each still holds its created event: such a change wrote it)
      SELECT array_agg(c.ctid ORDER BY f.n), array_agg(c.created_k ORDER BY f.n) INTO f_tid, f_ck
      FROM unnest(f_ids) WITH ORDINALITY AS f(id, n)
      CROSS JOIN LATERAL (SELECT x.ctid, x.created_k FROM exec_core x
                          WHERE x.partition_key = ffi_eid_part(f.id) AND x.e_uuid = ffi_eid_uuid(f.id) LIMIT 1) c;
    END IF;
    IF cardinality(v_ids) = 1 AND cardinality(f_ids) = 1 AND NOT f_fold AND f_state[1] <> 'active' THEN
      -- the round's one candidate, of the common case: what the set-based statement below does for
      -- it, in single-row statements (its Claimed event and lane counts written here, not by the
      -- update triggers: migration 0039), its lease timer its own
      v_att := gen_random_uuid();
      v_lease := gen_random_uuid();
      v_void := set_config('flowfabric.own_rows', 'on', true);
      -- the row locked above, by its row version: a TID scan
      UPDATE exec_core c SET lifecycle_phase = 'active', ownership_state = 'leased',
        eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none',
        attempt_state = 'running_attempt', public_state = 'active',
        current_attempt_index = f_idx[1], current_attempt_id = v_att, total_attempt_count = f_idx[1] + 1,
        run_kind = nullif(f_type[1], 'initial'),
        lease_epoch = f_epoch[1], lease_id = v_lease, worker_id = p_worker, worker_instance_id = p_wiid,
        has_grant = false, lease_ttl_ms = p_ttl, lease_acquired_at = v_now, lease_expires_at = v_now + p_ttl,
        lease_last_renewed_at = NULL, lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
        started_at = coalesce(c.started_at, v_now),
        pending_retry_reason = NULL, pending_previous_attempt_index = NULL,
        pending_replay_reason = NULL, pending_replay_requested_by = NULL, delay_until = NULL,
        attempt_timeout_at = NULL, last_mutation_at = v_now,
        event_k = greatest(ffi_xid(), c.event_k, c.created_k), created_k = NULL
      WHERE c.ctid = f_tid[1]
      RETURNING c.partition_key, c.e_uuid, c.event_k, c.flow_id INTO v_part, v_uuid, v_k, v_flow;
      v_void := set_config('flowfabric.own_rows', '', true);
      IF f_ck[1] IS NOT NULL THEN
        INSERT INTO event (id, k, at, e_part, e_uuid, lane_id, kind, s1) OVERRIDING SYSTEM VALUE
        VALUES (ffi_created_id(v_part, v_uuid), f_ck[1], f_cat[1], v_part, v_uuid, f_lane[1], 'ExecutionCreated',
          nullif(f_state[1], 'waiting'));
      END IF;
      INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt, s1)
      VALUES (v_k, v_now, v_part, v_uuid, f_lane[1], v_flow, 'Claimed', f_idx[1], p_wiid);
      INSERT INTO lane_count (lane_id, public_state, shard, n)
      VALUES (f_lane[1], f_state[1], pg_backend_pid(), -1), (f_lane[1], 'active', pg_backend_pid(), 1)
      ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
      INSERT INTO timer (kind, ref, due_at) VALUES ('lease', f_ids[1], v_now + p_ttl)
      ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
      v_void := set_config('flowfabric.event_at', v_now::text, true);
      v_void := ffi_events_wake(ARRAY['e:' || f_ids[1], 'l:' || f_lane[1], 'f:' || v_flow::text])::text;
      v_out := v_out || jsonb_build_array(jsonb_build_object('executionId', f_ids[1], 'attemptIndex', f_idx[1],
        'attemptId', v_att, 'leaseId', v_lease, 'leaseEpoch', f_epoch[1], 'leaseTtlMs', p_ttl, 'laneId', f_lane[1],
        'workerInstanceId', p_wiid, 'kind', 'fresh'));
      v_count := v_count + 1;
      EXIT WHEN v_count >= p_limit OR v_round >= 8;
      CONTINUE;
    END IF;
    -- the set's Claimed events and lane counts are written by this statement, not by the update
    -- triggers (migration 0039), unless a fold applies
    IF cardinality(f_ids) > 0 AND NOT f_fold THEN
      v_void := set_config('flowfabric.own_rows', 'on', true);
    END IF;
    WITH u AS MATERIALIZED (
      SELECT t.id, t.idx, t.epoch, t.typ, t.prev, t.lane, t.pos, t.ostate, t.tid, t.ck, t.cat,
        gen_random_uuid() AS att, gen_random_uuid() AS lease
      FROM unnest(f_ids, f_idx, f_epoch, f_type, f_prev, f_lane, f_pos, f_state, f_tid, f_ck, f_cat)
        AS t(id, idx, epoch, typ, prev, lane, pos, ostate, tid, ck, cat)
    ), cores AS (
      -- the rows locked above, by their row versions (no other transaction can have moved them): a
      -- TID scan, whatever the table held when the session planned this statement
      UPDATE exec_core c SET lifecycle_phase = 'active', ownership_state = 'leased',
        eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none',
        attempt_state = 'running_attempt', public_state = 'active',
        current_attempt_index = u.idx, current_attempt_id = u.att, total_attempt_count = u.idx + 1,
        run_kind = nullif(u.typ, 'initial'),
        lease_epoch = u.epoch, lease_id = u.lease, worker_id = p_worker, worker_instance_id = p_wiid, has_grant = false,
        lease_ttl_ms = p_ttl, lease_acquired_at = v_now, lease_expires_at = v_now + p_ttl,
        lease_last_renewed_at = NULL, lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
        started_at = coalesce(c.started_at, v_now),
        pending_retry_reason = NULL, pending_previous_attempt_index = NULL,
        pending_replay_reason = NULL, pending_replay_requested_by = NULL, delay_until = NULL,
        attempt_timeout_at = NULL, last_mutation_at = v_now,
        event_k = greatest(ffi_xid(), c.event_k, c.created_k), created_k = NULL
      FROM u WHERE c.ctid = ANY (f_tid) AND c.ctid = u.tid
      RETURNING c.partition_key, c.e_uuid, c.event_k, c.lane_id, c.flow_id, c.current_attempt_index
    ), created AS (
      -- what ffi_trg_events_updated writes first: the created events the rows held (migration 0058)
      INSERT INTO event (id, k, at, e_part, e_uuid, lane_id, kind, s1) OVERRIDING SYSTEM VALUE
      SELECT ffi_created_id(ffi_eid_part(u.id), ffi_eid_uuid(u.id)), u.ck, u.cat, ffi_eid_part(u.id),
        ffi_eid_uuid(u.id), u.lane, 'ExecutionCreated', nullif(u.ostate, 'waiting')
      FROM u WHERE u.ck IS NOT NULL AND current_setting('flowfabric.own_rows', true) = 'on'
    ), evs AS (
      -- what ffi_trg_events_updated writes for a claim: Claimed (attempt, s1 = worker instance)
      INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt, s1)
      SELECT r.event_k, v_now, r.partition_key, r.e_uuid, r.lane_id, r.flow_id,
        'Claimed', r.current_attempt_index, p_wiid
      FROM cores r WHERE current_setting('flowfabric.own_rows', true) = 'on'
      RETURNING ffi_eid(e_part, e_uuid) AS execution_id, lane_id, flow_id
    ), counts AS (
      -- what ffi_lane_count_update writes: the net change per lane and public state
      INSERT INTO lane_count (lane_id, public_state, shard, n)
      SELECT d.lane, d.st, pg_backend_pid(), sum(d.n) FROM (
        SELECT u.lane, u.ostate AS st, -1 AS n FROM u UNION ALL SELECT u.lane, 'active', 1 FROM u) d
      WHERE current_setting('flowfabric.own_rows', true) = 'on'
      GROUP BY 1, 2 HAVING sum(d.n) <> 0
      ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n
    ), leases AS (
      -- one lease timer for the round's set (migration 0038): the pass takes each execution of
      -- refs as its own timer; a renewal arms a timer of the execution's own
      INSERT INTO timer (kind, ref, due_at, refs, ref_parts)
      SELECT 'lease', '#' || gen_random_uuid()::text, v_now + p_ttl, array_agg(ffi_eid_uuid(id)), array_agg(ffi_eid_part(id))
      FROM u HAVING count(*) > 0
    )
    SELECT coalesce(jsonb_agg(h ORDER BY pos), '[]'::jsonb),
      (SELECT array_agg(v.s) FROM evs CROSS JOIN LATERAL (VALUES ('e:' || evs.execution_id), ('l:' || evs.lane_id),
         ('f:' || evs.flow_id::text)) v(s))
    INTO v_round_out, v_scopes FROM (
      SELECT pos, jsonb_build_object('executionId', id, 'attemptIndex', idx, 'attemptId', att, 'leaseId', lease,
        'leaseEpoch', epoch, 'leaseTtlMs', p_ttl, 'laneId', lane, 'workerInstanceId', p_wiid, 'kind', 'fresh') AS h
      FROM u
      UNION ALL
      SELECT s.pos, s.h FROM unnest(s_pos, s_h) AS s(pos, h)
    ) claimed;
    IF current_setting('flowfabric.own_rows', true) = 'on' THEN
      v_void := set_config('flowfabric.own_rows', '', true);
      v_void := set_config('flowfabric.event_at', v_now::text, true);
      v_void := ffi_events_wake(v_scopes)::text;
    END IF;
    v_out := v_out || v_round_out;
    v_count := v_count + jsonb_array_length(v_round_out);
    EXIT WHEN v_count >= p_limit OR v_round >= 8;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('handles', v_out, 'busy', v_busy));
END $$;

-- ff_complete_claim: completeAndClaim — in one transaction, ff_complete_set on the rows of the
-- arrays (none: a claim alone), then ff_claim on the lane (p_limit 0: none), which sees what the
-- completions made claimable, and the claimed executions' inputs in claim order while their
-- payloads total at most p_budget bytes (past it, null: the caller reads that input itself).
-- Planned generically from a session's first call and without sequential scans: a plan made
-- while the tables are small must not read exec_data whole once they have grown.
--   args:   p_eid, p_idx, p_att, p_lease, p_epoch, p_payload (one element per completion, as
--           ff_complete_set), p_lane, p_caps, p_kinds, p_worker, p_wiid, p_ttl, p_limit (as
--           ff_claim), p_budget (bytes), p_now
--   reply:  {"ok": {"completed": [one ff_complete reply per row, in order], "handles": as ff_claim,
--           "busy": as ff_claim, "inputs": [Model.ExecutionInput with the payload in base64, or
--           null, per handle]}}
--   errors: - (each completion's refusal is its own reply)
CREATE FUNCTION ff_complete_claim(
  p_eid text[], p_idx int[], p_att uuid[], p_lease uuid[], p_epoch bigint[], p_payload bytea[],
  p_lane text, p_caps text[], p_kinds text[], p_worker text, p_wiid text, p_ttl bigint, p_limit int,
  p_budget bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_done jsonb := '[]'::jsonb;
  v_claim jsonb := '{"handles": [], "busy": 0}'::jsonb;
  v_inputs jsonb := '[]'::jsonb;
BEGIN
  IF coalesce(cardinality(p_eid), 0) > 0 THEN
    SELECT coalesce(jsonb_agg(t.r ORDER BY t.n), '[]'::jsonb) INTO v_done
    FROM ff_complete_set(p_eid, p_idx, p_att, p_lease, p_epoch, p_payload, v_now) WITH ORDINALITY AS t(r, n);
  END IF;
  IF p_limit > 0 THEN
    v_claim := ff_claim(p_lane, p_caps, p_kinds, p_worker, p_wiid, p_ttl, p_limit, v_now) -> 'ok';
    SELECT coalesce(jsonb_agg(CASE WHEN x.used <= p_budget AND x.kind IS NOT NULL THEN
             jsonb_strip_nulls(jsonb_build_object('executionId', x.id, 'executionKind', x.kind,
               'laneId', x.lane_id, 'namespace', x.namespace, 'payload', encode(x.payload, 'base64'),
               'payloadEncoding', x.payload_encoding,
               'traceParent', '00-' || substr(x.trace_context, 1, 32) || '-' || substr(x.trace_context, 33, 16)
                              || '-' || substr(x.trace_context, 49, 2)))
           END ORDER BY x.n), '[]'::jsonb) INTO v_inputs
    FROM (
      SELECT h.n, h.id, i.kind, i.lane_id, i.namespace, i.payload, i.payload_encoding, i.trace_context,
             sum(coalesce(length(i.payload), 0)) OVER (ORDER BY h.n) AS used
      FROM (SELECT j.v ->> 'executionId' AS id, j.n
            FROM jsonb_array_elements(v_claim -> 'handles') WITH ORDINALITY AS j(v, n)) h
      -- each claimed row by its key: a LIMIT keeps the subquery from being flattened into a join
      -- the planner may hash, reading exec_core and exec_data whole at every claim. The input and
      -- its encoding are the exec_core row's, or (payload NULL) exec_data's, read only then
      -- (migration 0050).
      LEFT JOIN LATERAL (
        SELECT e.execution_kind AS kind, e.lane_id, e.namespace, coalesce(e.payload, d.payload) AS payload,
          CASE WHEN e.payload IS NULL THEN d.payload_encoding ELSE e.payload_encoding END AS payload_encoding,
          d.trace_context
        FROM exec_core e LEFT JOIN LATERAL (
          SELECT d.payload, d.payload_encoding, d.trace_context FROM exec_data d
          WHERE e.payload IS NULL AND ffi_eid(d.e_part, d.e_uuid) = h.id LIMIT 1) d ON true
        WHERE e.partition_key = ffi_eid_part(h.id) AND e.e_uuid = ffi_eid_uuid(h.id)
          AND (e.payload IS NOT NULL OR d.payload IS NOT NULL) LIMIT 1
      ) i ON true
    ) x;
  END IF;
  RETURN ffi_ok(jsonb_build_object('completed', v_done, 'handles', v_claim -> 'handles',
                                   'busy', v_claim -> 'busy', 'inputs', v_inputs));
END $$;

-- ffi_create_claimed: ff_create_claim's common case, in one transaction and without a second
-- write of the row — the create of work the waiting worker p_wiid runs (no delay, idempotency key
-- or attempt timeout; its kind among p_kinds, its required capabilities among p_wcaps; p_limit >
-- 0, checked by the caller) on a lane where that worker has nothing else to claim (no candidate
-- in its claim window), inserted already claimed by it: what a create (ffi_create_execution)
-- followed by that worker's claim (ff_claim's common case, a fresh first attempt) leaves — the
-- exec_core row leased (attempt 0, lease epoch 1), the exec_data row of an input that is not
-- inline, the lane's registration, the deadline timer, a lease timer of its own, the events
-- ExecutionCreated (created waiting) then Claimed (attempt 0, s1 the worker instance) in that order,
-- the lane count of the end state — and the reply of both. The execution is never claimable in
-- a committed state, so no waiting worker is notified (ffi_wake); the event followers are. The
-- rows and events stay those of the two transactions (test/postgres-handoff.test.ts compares
-- them): a change to what a create writes is made here too. NULL, with nothing written, when
-- another candidate is in the worker's window or the id exists (the caller takes the two
-- transactions).
--   args:   those of ff_create_claim up to p_ttl (no p_limit), then p_budget, p_now (not NULL)
--   reply:  as ff_create_claim's r, or NULL
--   errors: -
CREATE FUNCTION ffi_create_claimed(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, p_trace text,
  p_wcaps text[], p_kinds text[], p_worker text, p_wiid text, p_ttl bigint, p_budget bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
  v_w record;
  v_uuid uuid := ffi_eid_uuid(p_eid);
  v_att uuid := gen_random_uuid();
  v_lease uuid := gen_random_uuid();
  -- the input in the exec_core row, no exec_data row (migration 0050)
  v_inline boolean := ffi_inline(p_payload, p_policy, p_tags, p_creator, p_idem, p_trace);
  -- (expressions, not PERFORMs: no query start-up)
  v_void text;
BEGIN
  v_w := ffi_claim_window(p_lane, p_wcaps, p_kinds, '{}', 1);
  IF cardinality(v_w.o_uuid) > 0 THEN RETURN NULL; END IF;
  -- the events and the lane count are written below, not by the insert triggers (migration 0039)
  v_void := set_config('flowfabric.own_rows', 'on', true);
  -- ffi_create_execution's row, with ff_claim's changes for a fresh first attempt (the limits, the
  -- counts and has_grant as a create stores them: migration 0051)
  INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
    lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
    attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms,
    execution_deadline_at, created_at, payload_encoding, payload,
    current_attempt_index, current_attempt_id, total_attempt_count, lease_epoch, lease_id, worker_id,
    worker_instance_id, has_grant, lease_ttl_ms, lease_acquired_at, lease_expires_at, started_at, last_mutation_at)
  VALUES (v_uuid, p_partition, p_lane, p_namespace, p_kind, p_priority, nullif(p_caps, '{}'),
    'active', 'leased', 'not_applicable', 'none', '', 'none', 'running_attempt', 'active',
    nullif(p_max_reclaim, ffi_max_reclaims(NULL)), nullif(p_max_replay, ffi_max_replays(NULL)), p_attempt_timeout_ms,
    p_deadline, p_now, CASE WHEN v_inline THEN p_payload_encoding END, CASE WHEN v_inline THEN p_payload END,
    0, v_att, 1, 1, v_lease, p_worker, p_wiid, false, p_ttl, p_now, p_now + p_ttl, p_now, p_now)
  ON CONFLICT (partition_key, e_uuid) DO NOTHING;
  IF NOT FOUND THEN
    v_void := set_config('flowfabric.own_rows', '', true);
    RETURN NULL;
  END IF;
  v_void := set_config('flowfabric.own_rows', '', true);
  -- the create's ExecutionCreated (no state for waiting: migration 0055), then the claim's Claimed
  -- (k: this transaction's id, the row's event_k)
  INSERT INTO event (k, at, e_part, e_uuid, lane_id, kind, attempt, s1)
  VALUES (ffi_xid(), p_now, p_partition, v_uuid, p_lane, 'ExecutionCreated', NULL, NULL),
         (ffi_xid(), p_now, p_partition, v_uuid, p_lane, 'Claimed', 0, p_wiid);
  INSERT INTO lane_count (lane_id, public_state, shard, n) VALUES (p_lane, 'active', pg_backend_pid(), 1)
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + 1;
  IF NOT v_inline THEN
    INSERT INTO exec_data (e_part, e_uuid, payload, payload_encoding, policy, tags, creator_identity, idempotency_key,
      trace_context)
    VALUES (p_partition, v_uuid, p_payload, p_payload_encoding, p_policy, p_tags, p_creator, p_idem, p_trace);
  END IF;
  INSERT INTO lane_registry (lane_id, registered_at) VALUES (p_lane, p_now) ON CONFLICT (lane_id) DO NOTHING;
  IF p_deadline IS NOT NULL THEN PERFORM ffi_timer_set('deadline', p_eid, p_deadline); END IF;
  INSERT INTO timer (kind, ref, due_at) VALUES ('lease', p_eid, p_now + p_ttl)
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  v_void := set_config('flowfabric.event_at', p_now::text, true);
  v_void := ffi_events_wake(ARRAY['e:' || p_eid, 'l:' || p_lane])::text;
  RETURN ffi_ok(jsonb_build_object(
    'created', jsonb_build_object('_tag', 'Created', 'executionId', p_eid, 'publicState', 'waiting'),
    'claim', jsonb_build_object('completed', '[]'::jsonb,
      'handles', jsonb_build_array(jsonb_build_object('executionId', p_eid, 'attemptIndex', 0, 'attemptId', v_att,
        'leaseId', v_lease, 'leaseEpoch', 1, 'leaseTtlMs', p_ttl, 'laneId', p_lane, 'workerInstanceId', p_wiid,
        'kind', 'fresh')),
      'busy', 0,
      -- as ff_complete_claim's inputs: null past the budget (the worker reads it itself)
      'inputs', jsonb_build_array(CASE WHEN p_payload IS NOT NULL AND length(p_payload) <= p_budget THEN
        jsonb_strip_nulls(jsonb_build_object('executionId', p_eid, 'executionKind', p_kind, 'laneId', p_lane,
          'namespace', p_namespace, 'payload', encode(p_payload, 'base64'), 'payloadEncoding', p_payload_encoding,
          'traceParent', '00-' || substr(p_trace, 1, 32) || '-' || substr(p_trace, 33, 16)
                         || '-' || substr(p_trace, 49, 2)))
        END))));
END $$;

-- ff_create_claim: createExecution made in a process whose idle worker waits on the lane (docs/
-- worker.md, "Wake-ups, timers and cancellation"): ff_create_execution, committed, then, in a
-- transaction of its own, ff_complete_claim (no completions) for that worker on the lane: the two
-- transactions of a create and of the worker's claim after it (the same rows, events and
-- wake-ups), in one statement and one round trip. A procedure, called with CALL, since it commits
-- between the two; without SET clauses for that reason (a procedure with one cannot commit): each
-- transaction resolves its calls in schema p_schema (its search_path, set locally). The create
-- does not notify worker p_wiid (flowfabric.handoff_worker, set locally: ffi_wake), which this
-- claim serves; the lane's other waiting workers are notified as for any create. A claim that
-- fails leaves the committed create answered, with a null claim (the worker claims itself).
-- The common case (work that worker runs, created without delay, idempotency key or attempt
-- timeout, on a lane where it has nothing else to claim) is one transaction instead, which
-- inserts the execution already claimed (ffi_create_claimed): the same rows, events and reply,
-- and no waiting worker notified, since the work is never claimable once committed.
--   args:   those of ff_create_execution up to p_trace (p_caps: the execution's required
--           capabilities), then p_wcaps (the worker's capabilities), p_kinds, p_worker, p_wiid,
--           p_ttl, p_limit, p_budget (as ff_complete_claim's), p_now, p_schema, r (INOUT: NULL)
--   reply:  r = {"ok": {"created": Model.CreateExecutionResult, "claim": ff_complete_claim's ok
--           value ("completed" empty, "handles", "busy", "inputs"), or null}}
--   errors: - (a create that raises commits nothing)
CREATE PROCEDURE ff_create_claim(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, p_trace text,
  p_wcaps text[], p_kinds text[], p_worker text, p_wiid text, p_ttl bigint, p_limit int, p_budget bigint,
  p_now bigint, p_schema text, INOUT r jsonb
) LANGUAGE plpgsql AS $$
DECLARE
  v_created jsonb;
  v_claim jsonb;
  -- (expressions, not PERFORMs: no query start-up)
  v_void text;
BEGIN
  v_void := set_config('search_path', p_schema, true);
  IF (p_delay_until IS NULL OR p_delay_until <= coalesce(p_now, ffi_now())) AND coalesce(p_idem, '') = ''
     AND coalesce(p_attempt_timeout_ms, 0) <= 0 AND p_limit > 0 AND (p_kinds IS NULL OR p_kind = ANY (p_kinds))
     AND (coalesce(p_caps, '{}') = '{}' OR p_caps <@ p_wcaps) THEN
    r := ffi_create_claimed(p_eid, p_partition, p_namespace, p_lane, p_kind, p_payload, p_payload_encoding,
      p_priority, p_creator, p_idem, p_tags, p_policy, p_caps, p_delay_until, p_deadline, p_attempt_timeout_ms,
      p_max_reclaim, p_max_replay, p_dedup_ttl_ms, p_trace, p_wcaps, p_kinds, p_worker, p_wiid, p_ttl, p_budget,
      coalesce(p_now, ffi_now()));
    IF r IS NOT NULL THEN RETURN; END IF;
  END IF;
  v_void := set_config('flowfabric.handoff_worker', p_wiid, true);
  v_created := ff_create_execution(p_eid, p_partition, p_namespace, p_lane, p_kind, p_payload, p_payload_encoding,
    p_priority, p_creator, p_idem, p_tags, p_policy, p_caps, p_delay_until, p_deadline, p_attempt_timeout_ms,
    p_max_reclaim, p_max_replay, p_dedup_ttl_ms, p_trace, p_now);
  IF NOT v_created ? 'ok' THEN
    r := v_created;
    RETURN;
  END IF;
  COMMIT;
  v_void := set_config('search_path', p_schema, true);
  BEGIN
    v_claim := ff_complete_claim('{}', '{}', '{}', '{}', '{}', '{}', p_lane, p_wcaps, p_kinds, p_worker, p_wiid,
      p_ttl, p_limit, p_budget, p_now) -> 'ok';
  EXCEPTION WHEN OTHERS THEN
    v_claim := NULL;
  END;
  r := ffi_ok(jsonb_build_object('created', v_created -> 'ok', 'claim', v_claim));
END $$;

-- ff_warm_up: the functions of an idle pickup run once on a lane of their own — the create
-- (ff_create_execution), the worker's claim of one execution of a named kind (ff_complete_claim),
-- its completion (ff_complete), the create that claims in one transaction (ffi_create_claimed,
-- ff_create_claim's common case), a claim of two (ff_claim's set-based statement) — in a
-- subtransaction rolled back at the end: nothing written stays and nothing is notified. What stays is the session's: the compiled functions, the
-- catalog entries they read and their statements' plans (kept: made while exec_core holds the
-- warm-up's row, they find rows by key whatever the table holds later), which the first pickup
-- on a new connection would otherwise pay (about 11 ms of server time against 1.2;
-- docs/design/postgres.md, "Connections"). The lane's id has tabs, which no lane id has (printable ASCII), and
-- the server process's id, so that warm-ups of several connections at once do not wait for each
-- other's lane_registry row.
--   args:   p_now
--   reply:  {"ok": whether the creates, the claims, the completion and the create that claims all succeeded}
--   errors: -
CREATE FUNCTION ff_warm_up(p_now bigint) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_lane text := 'flowfabric' || chr(9) || 'warm-up' || chr(9) || pg_backend_pid();
  v_payload bytea := '\x7b7d'::bytea;
  v_ok boolean := false;
  r jsonb;
  h jsonb;
BEGIN
  BEGIN
    r := ff_create_execution('{fp:0}:' || gen_random_uuid()::text, 0, 'default', v_lane, 'warm-up', v_payload, 'json',
      0, '', NULL, '{}', 'null', '{}', NULL, NULL, NULL, 0, 0, 0, NULL, p_now);
    r := ff_complete_claim('{}', '{}', '{}', '{}', '{}', '{}', v_lane, '{}', ARRAY['warm-up'], 'warm-up', 'warm-up',
      1000, 1, 1024, p_now);
    h := r -> 'ok' -> 'handles' -> 0;
    IF h IS NOT NULL THEN
      r := ff_complete(h ->> 'executionId', (h ->> 'attemptIndex')::int, (h ->> 'attemptId')::uuid,
        (h ->> 'leaseId')::uuid, (h ->> 'leaseEpoch')::bigint, v_payload, p_now);
      v_ok := r ? 'ok';
    END IF;
    -- the pickup's create in one transaction (ff_create_claim's common case), on the lane now empty
    r := ffi_create_claimed('{fp:0}:' || gen_random_uuid()::text, 0, 'default', v_lane, 'warm-up', v_payload, 'json',
      0, '', NULL, '{}', 'null', '{}', NULL, NULL, NULL, 0, 0, 0, NULL, '{}', ARRAY['warm-up'], 'warm-up', 'warm-up',
      1000, 1024, coalesce(p_now, ffi_now()));
    v_ok := v_ok AND r -> 'ok' -> 'claim' -> 'handles' -> 0 IS NOT NULL;
    -- the set-based claim of several (the claim of one above takes single-row statements)
    FOR i IN 1 .. 2 LOOP
      r := ff_create_execution('{fp:0}:' || gen_random_uuid()::text, 0, 'default', v_lane, 'warm-up', v_payload, 'json',
        0, '', NULL, '{}', 'null', '{}', NULL, NULL, NULL, 0, 0, 0, NULL, p_now);
    END LOOP;
    r := ff_complete_claim('{}', '{}', '{}', '{}', '{}', '{}', v_lane, '{}', ARRAY['warm-up'], 'warm-up', 'warm-up',
      1000, 2, 1024, p_now);
    v_ok := v_ok AND jsonb_array_length(r -> 'ok' -> 'handles') = 2;
    RAISE SQLSTATE 'FFW01';
  EXCEPTION WHEN SQLSTATE 'FFW01' THEN
    NULL;
  END;
  RETURN ffi_ok(to_jsonb(v_ok));
END $$;

-- ff_claim_for_worker: claimForWorker — reserves the first claimable execution of the lane
-- (among the window of ffi_claim_window for 64 candidates, of the kinds p_kinds when given) for worker p_worker with
-- a grant valid p_ttl: not one another worker's live grant reserves, nor one an attached budget
-- at its hard limit blocks.
--   args:   p_lane, p_worker, p_wiid, p_caps, p_kinds (NULL: any kind), p_ttl (grant ms), p_now
--   reply:  {"ok": Model.ClaimForWorkerOutcome} (Granted with the grant, or NoWork)
--   errors: -
CREATE FUNCTION ff_claim_for_worker(
  p_lane text, p_worker text, p_wiid text, p_caps text[], p_kinds text[], p_ttl bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_sort = off SET enable_bitmapscan = off SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_id text;
  e exec_core;
  v_key text;
  w record;
  v_i int;
  v_part int;
  v_u uuid;
BEGIN
  -- (an expression, not a query: a query's ORDER BY is a sort, which enable_sort = off prices so
  -- high that JIT compilation starts, tens of ms a call)
  w := ffi_claim_window(p_lane, p_caps, p_kinds, '{}', 64);
  FOR v_i IN 1 .. cardinality(w.o_uuid) LOOP
    v_part := w.o_part[v_i];
    v_u := w.o_uuid[v_i];
    -- still claimable once locked (exec_core_claimable: runnable and eligible, or a lease to reclaim)
    SELECT * INTO e FROM exec_core WHERE partition_key = v_part AND e_uuid = v_u AND (blocking_reason = 'waiting_for_worker') IS TRUE
    FOR UPDATE SKIP LOCKED;
    CONTINUE WHEN NOT FOUND;
    v_id := ffi_eid(v_part, v_u);
    -- a live grant of another worker reserves the execution
    CONTINUE WHEN EXISTS (SELECT 1 FROM claim_grant WHERE execution_id = v_id AND expires_at > v_now AND worker_id <> p_worker);
    -- an attached budget at its hard limit blocks the candidate
    CONTINUE WHEN EXISTS (
      SELECT 1 FROM exec_data d
      CROSS JOIN LATERAL jsonb_array_elements_text(coalesce(d.policy->'budget_ids', '[]'::jsonb)) AS b(id)
      JOIN budget_limit l ON l.budget_id = b.id::uuid AND l.hard_limit > 0
      JOIN budget_usage u ON u.budget_id = l.budget_id AND u.dimension = l.dimension
      WHERE ffi_eid(d.e_part, d.e_uuid) = v_id AND u.value >= l.hard_limit);
    v_key := gen_random_uuid()::text;
    UPDATE exec_core SET has_grant = true WHERE partition_key = v_part AND e_uuid = v_u;
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

-- ff_claim_resumed: claimResumedExecution and claimFromReclaim — leases the interrupted attempt
-- of a runnable execution to the worker whose grant it holds (the grant is consumed, even when
-- it turns out expired).
-- Without sequential scans: a plan of a session's first calls, made while exec_core was small,
-- must not read it whole once it has grown (docs/design/postgres.md, "The function library").
--   args:   p_eid, p_worker, p_wiid, p_lease (the new lease id), p_ttl, p_remaining_timeout (the
--           attempt timeout left, ms, or NULL), p_grant_key (NULL = any grant of this worker),
--           p_now
--   reply:  {"ok": handle payload with leaseExpiresAt}
--   errors: execution_not_found, execution_not_leaseable, not_a_resumed_execution,
--           invalid_claim_grant, claim_grant_expired
CREATE FUNCTION ff_claim_resumed(
  p_eid text, p_worker text, p_wiid text, p_lease uuid, p_ttl bigint, p_remaining_timeout bigint, p_grant_key text,
  p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  g claim_grant;
  v_epoch bigint;
  v_exp bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
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
  UPDATE exec_core SET has_grant = false WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  IF g.expires_at <= v_now THEN RETURN ffi_err('claim_grant_expired'); END IF;
  v_epoch := coalesce(e.lease_epoch, 0) + 1;
  v_exp := v_now + p_ttl;
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'active', ownership_state = 'leased', eligibility_state = 'not_applicable',
    blocking_reason = 'none', blocking_detail = '', terminal_outcome = 'none', attempt_state = 'running_attempt',
    public_state = 'active', run_kind = 'resumed', lease_epoch = v_epoch, lease_id = p_lease, worker_id = p_worker,
    worker_instance_id = p_wiid, lease_ttl_ms = p_ttl, lease_acquired_at = v_now, lease_expires_at = v_exp,
    lease_last_renewed_at = NULL, lease_expired_at = NULL, lease_revoked_at = NULL, lease_revoke_reason = NULL,
    delay_until = NULL,
    attempt_timeout_at = CASE WHEN p_remaining_timeout > 0 THEN v_now + p_remaining_timeout END,
    last_mutation_at = v_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  DELETE FROM timer WHERE ref = p_eid AND kind = 'delay';
  PERFORM ffi_timer_set('lease', p_eid, v_exp);
  IF p_remaining_timeout > 0 THEN
    PERFORM ffi_timer_set('attempt_timeout', p_eid, v_now + p_remaining_timeout);
  END IF;
  RETURN ffi_ok(jsonb_build_object('executionId', p_eid, 'attemptIndex', e.current_attempt_index,
    'attemptId', e.current_attempt_id, 'leaseId', p_lease, 'leaseEpoch', v_epoch, 'leaseTtlMs', p_ttl,
    'laneId', e.lane_id, 'workerInstanceId', p_wiid, 'leaseExpiresAt', v_exp));
END $$;
