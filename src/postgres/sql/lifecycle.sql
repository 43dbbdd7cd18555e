-- ===========================================================================
-- lifecycle.sql: an execution's life outside the claim — its creation, and
-- the calls of the worker holding its lease: renew, progress, complete, fail,
-- cancel, delay, wait_children.
--
-- The handle arguments of the worker's calls are always p_eid (execution id),
-- p_idx (attempt index), p_att (attempt id), p_lease (lease id) and p_epoch
-- (lease epoch); the ladder of ffi_lease_check decides whether they still own
-- the execution.
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- create
-- ---------------------------------------------------------------------------

-- ffi_create_execution: creates one execution — runnable and claimable, or delayed until
-- p_delay_until — with its data, lane registration and deadline timer; a duplicate id, or an
-- idempotency key seen within its window, answers Duplicate and writes nothing. It writes the
-- row's lane count itself (flowfabric.own_rows, migration 0039); its ExecutionCreated is read from
-- the row until the row's first change writes it (migration 0058, ff_read_events).
--   args:   p_eid, p_partition, p_namespace, p_lane, p_kind, p_payload, p_payload_encoding,
--           p_priority, p_creator, p_idem (idempotency key or NULL / ''), p_tags, p_policy,
--           p_caps (required capabilities), p_delay_until, p_deadline, p_attempt_timeout_ms,
--           p_max_reclaim, p_max_replay, p_dedup_ttl_ms (the idempotency window), v_now, p_trace (the
--           creator's span context, compact, or NULL)
--   reply:  {"ok": Model.CreateExecutionResult}
--   errors: -
CREATE FUNCTION ffi_create_execution(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, v_now bigint, p_trace text
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_delayed boolean := p_delay_until IS NOT NULL AND p_delay_until > v_now;
  v_has_idem boolean := p_idem IS NOT NULL AND p_idem <> '';
  v_state text := CASE WHEN v_delayed THEN 'delayed' ELSE 'waiting' END;
  -- the input in the exec_core row, no exec_data row (migration 0050)
  v_inline boolean := ffi_inline(p_payload, p_policy, p_tags, p_creator, p_idem, p_trace);
  v_existing text;
  v_found boolean;
  -- what the calls below made as expressions answer (an expression costs no query start-up, a
  -- PERFORM does)
  v_void text;
  v_woke boolean;
BEGIN
  IF v_has_idem THEN
    SELECT execution_id INTO v_existing FROM exec_idempotency
    WHERE partition_key = p_partition AND namespace = p_namespace AND idempotency_key = p_idem AND expires_at > v_now;
    IF FOUND THEN
      RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'executionId', v_existing));
    END IF;
  END IF;
  -- the event and the lane count of this one row are written below, not by the insert triggers
  -- (migration 0039)
  v_void := set_config('flowfabric.own_rows', 'on', true);
  INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
    lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
    attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms, delay_until,
    execution_deadline_at, created_at, payload_encoding, payload, event_k, created_k)
  VALUES (ffi_eid_uuid(p_eid), p_partition, p_lane, p_namespace, p_kind, p_priority, nullif(p_caps, '{}'),
    'runnable', 'unowned',
    CASE WHEN v_delayed THEN 'not_eligible_until_time' ELSE 'eligible_now' END,
    CASE WHEN v_delayed THEN 'waiting_for_delay' ELSE 'waiting_for_worker' END,
    CASE WHEN v_delayed THEN 'delayed until ' || p_delay_until END,
    'none', 'pending_first_attempt',
    v_state,
    -- the limits NULL for their defaults; the counts, the lease epoch, last_mutation_at, has_grant
    -- and an empty blocking_detail NULL until they first change (migration 0051)
    nullif(p_max_reclaim, ffi_max_reclaims(NULL)), nullif(p_max_replay, ffi_max_replays(NULL)), p_attempt_timeout_ms,
    CASE WHEN v_delayed THEN p_delay_until END, p_deadline, v_now,
    CASE WHEN v_inline THEN p_payload_encoding END, CASE WHEN v_inline THEN p_payload END,
    -- its created event read from the row until its first change (migration 0058)
    NULL, ffi_xid())
  ON CONFLICT (partition_key, e_uuid) DO NOTHING;
  v_found := FOUND;
  v_void := set_config('flowfabric.own_rows', '', true);
  IF NOT v_found THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'executionId', p_eid));
  END IF;
  -- what the insert triggers write for a row: its lane's count (its ExecutionCreated is read from
  -- the row, migration 0058)
  INSERT INTO lane_count (lane_id, public_state, shard, n) VALUES (p_lane, v_state, pg_backend_pid(), 1)
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + 1;
  v_woke := ffi_events_wake(ARRAY['e:' || p_eid, 'l:' || p_lane]);
  IF v_has_idem THEN
    INSERT INTO exec_idempotency (partition_key, namespace, idempotency_key, execution_id, expires_at)
    VALUES (p_partition, p_namespace, p_idem, p_eid, v_now + p_dedup_ttl_ms)
    ON CONFLICT (partition_key, namespace, idempotency_key) DO UPDATE
      SET execution_id = EXCLUDED.execution_id, expires_at = EXCLUDED.expires_at
      WHERE exec_idempotency.expires_at <= v_now;
    IF NOT FOUND THEN
      -- a concurrent create committed this key first: this one is its duplicate
      DELETE FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
      SELECT execution_id INTO v_existing FROM exec_idempotency
      WHERE partition_key = p_partition AND namespace = p_namespace AND idempotency_key = p_idem;
      RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'executionId', v_existing));
    END IF;
  END IF;
  IF NOT v_inline THEN
    INSERT INTO exec_data (e_part, e_uuid, payload, payload_encoding, policy, tags, creator_identity, idempotency_key,
      trace_context)
    VALUES (p_partition, ffi_eid_uuid(p_eid), p_payload, p_payload_encoding, p_policy, p_tags, p_creator, p_idem, p_trace);
  END IF;
  INSERT INTO lane_registry (lane_id, registered_at) VALUES (p_lane, v_now) ON CONFLICT (lane_id) DO NOTHING;
  IF v_delayed THEN
    PERFORM ffi_timer_set('delay', p_eid, p_delay_until);
  ELSE
    v_woke := ffi_wake(p_lane);
  END IF;
  IF p_deadline IS NOT NULL THEN PERFORM ffi_timer_set('deadline', p_eid, p_deadline); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'executionId', p_eid,
                                   'publicState', CASE WHEN v_delayed THEN 'delayed' ELSE 'waiting' END));
END $$;

-- ff_create_execution: createExecution.
--   args:   those of ffi_create_execution, p_trace before p_now, p_now last
--   reply:  {"ok": Model.CreateExecutionResult}
--   errors: -
CREATE FUNCTION ff_create_execution(
  p_eid text, p_partition int, p_namespace text, p_lane text, p_kind text, p_payload bytea,
  p_payload_encoding text, p_priority int, p_creator text, p_idem text, p_tags jsonb, p_policy jsonb,
  p_caps text[], p_delay_until bigint, p_deadline bigint, p_attempt_timeout_ms bigint,
  p_max_reclaim int, p_max_replay int, p_dedup_ttl_ms bigint, p_trace text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
BEGIN
  -- an expression, not a sub-select: no query start-up
  RETURN ffi_create_execution(p_eid, p_partition, p_namespace, p_lane, p_kind, p_payload, p_payload_encoding,
    p_priority, p_creator, p_idem, p_tags, p_policy, p_caps, p_delay_until, p_deadline, p_attempt_timeout_ms,
    p_max_reclaim, p_max_replay, p_dedup_ttl_ms, coalesce(p_now, ffi_now()), p_trace);
END $$;

-- ff_create_executions: createExecutions — the items in order, each as ffi_create_execution
-- would; a batch without idempotency keys, delays or deadlines (the common bulk submit) is
-- inserted set-based, one statement per table. Without sequential scans, and the set's look-up of
-- ids already stored is one probe of the key per item: a plan made while exec_core is small must
-- not read it whole once it has grown.
--   args:   p_items (a JSON array of createItem objects, payloads in base64), p_now
--   reply:  {"ok": [Model.CreateExecutionResult]}, in the order of the items
--   errors: -
CREATE FUNCTION ff_create_executions(p_items jsonb, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  x jsonb;
  r jsonb;
  v_out jsonb := '[]'::jsonb;
  v_try int := 0;
BEGIN
  -- A batch without idempotency keys, delays or deadlines (the common bulk submit) is created
  -- set-based: the same rows, results and claim order as one ffi_create_execution per item.
  -- Its exec_core rows are a plain INSERT of the first item of each id not stored yet, not an
  -- INSERT … ON CONFLICT DO NOTHING, whose speculative insertion logs a confirmation record per
  -- row (48 bytes of WAL); a create of the same id that commits between the look-up and the
  -- insert makes it fail as a whole (unique_violation), and it is run again, seeing that row.
  IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_items) AS t(item)
                 WHERE coalesce(item->>'idempotencyKey', '') <> '' OR item->>'delayUntil' IS NOT NULL
                    OR item->>'executionDeadlineAt' IS NOT NULL) THEN
    LOOP
      v_try := v_try + 1;
      BEGIN
        WITH items AS MATERIALIZED (
          SELECT t.ord, t.item->>'executionId' AS eid, (t.item->>'partition')::int AS part, t.item->>'namespace' AS ns,
            t.item->>'laneId' AS lane, t.item->>'executionKind' AS kind, decode(t.item->>'payload', 'base64') AS payload,
            t.item->>'payloadEncoding' AS enc, (t.item->>'priority')::int AS prio, t.item->>'creatorIdentity' AS creator,
            t.item->'tags' AS tags, t.item->'policy' AS policy,
            nullif(ARRAY(SELECT jsonb_array_elements_text(t.item->'requiredCapabilities')), '{}') AS caps,
            (t.item->>'attemptTimeoutMs')::bigint AS ato, (t.item->>'maxReclaimCount')::int AS mrc,
            (t.item->>'maxReplayCount')::int AS mrp, t.item->>'traceContext' AS trace
          FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(item, ord)
        ), firsts AS (
          SELECT DISTINCT ON (i.eid) i.* FROM items i
          -- (OFFSET 0: the sub-select stays a probe per item, not an anti-join, which a plan made on a
          -- small table would make by reading the whole key)
          WHERE NOT EXISTS (SELECT 1 FROM exec_core e WHERE e.partition_key = i.part AND e.e_uuid = ffi_eid_uuid(i.eid)
                            OFFSET 0)
          ORDER BY i.eid, i.ord
        ), ins AS (
          INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
            lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
            attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms, delay_until,
            execution_deadline_at, created_at, payload_encoding, payload, event_k, created_k)
          -- the states typed (exec_state): an untyped literal of a SELECT list is text, converted per row
          SELECT ffi_eid_uuid(eid), part, lane, ns, kind, prio, caps, 'runnable'::exec_state, 'unowned'::exec_state,
            'eligible_now'::exec_state, 'waiting_for_worker'::exec_state, NULL, 'none'::exec_state,
            'pending_first_attempt'::exec_state, 'waiting'::exec_state,
            -- as ffi_create_execution's (migration 0051)
            nullif(mrc, ffi_max_reclaims(NULL)), nullif(mrp, ffi_max_replays(NULL)), ato, NULL, NULL, v_now,
            -- the input in the exec_core row, no exec_data row (migration 0050)
            CASE WHEN ffi_inline(payload, policy, tags, creator, NULL, trace) THEN enc END,
            CASE WHEN ffi_inline(payload, policy, tags, creator, NULL, trace) THEN payload END,
            -- their created events read from the rows until their first change (migration 0058)
            NULL::bigint, (SELECT ffi_xid())
          FROM firsts ORDER BY ord
          RETURNING ffi_eid(partition_key, e_uuid) AS execution_id
        ), created AS (
          -- the first item of each id this statement inserted (a repeated id is a Duplicate)
          SELECT DISTINCT ON (i.eid) i.* FROM items i JOIN ins ON ins.execution_id = i.eid ORDER BY i.eid, i.ord
        ), data AS (
          INSERT INTO exec_data (e_part, e_uuid, payload, payload_encoding, policy, tags, creator_identity,
            idempotency_key, trace_context)
          SELECT part, ffi_eid_uuid(eid), payload, enc, policy, tags, creator, NULL, trace FROM created
          WHERE NOT ffi_inline(payload, policy, tags, creator, NULL, trace)
        ), lanes AS (
          INSERT INTO lane_registry (lane_id, registered_at) SELECT DISTINCT lane, v_now FROM created
          ON CONFLICT (lane_id) DO NOTHING
        )
        SELECT coalesce(jsonb_agg(CASE WHEN c.ord IS NOT NULL
            THEN jsonb_build_object('_tag', 'Created', 'executionId', i.eid, 'publicState', 'waiting')
            ELSE jsonb_build_object('_tag', 'Duplicate', 'executionId', i.eid) END ORDER BY i.ord), '[]'::jsonb)
        INTO v_out
        FROM items i LEFT JOIN created c ON c.ord = i.ord;
      EXIT;
      EXCEPTION WHEN unique_violation THEN
        IF v_try >= 3 THEN RAISE; END IF;
      END;
    END LOOP;
    PERFORM ffi_wake(s.lane) FROM (SELECT DISTINCT t.item->>'laneId' AS lane
                                   FROM jsonb_array_elements(p_items) AS t(item) ORDER BY 1) s;
    RETURN ffi_ok(v_out);
  END IF;
  FOR x IN SELECT value FROM jsonb_array_elements(p_items) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    r := ffi_create_execution(x->>'executionId', (x->>'partition')::int, x->>'namespace', x->>'laneId',
      x->>'executionKind', decode(x->>'payload', 'base64'), x->>'payloadEncoding', (x->>'priority')::int,
      x->>'creatorIdentity', x->>'idempotencyKey', x->'tags', x->'policy',
      ARRAY(SELECT jsonb_array_elements_text(x->'requiredCapabilities')), (x->>'delayUntil')::bigint,
      (x->>'executionDeadlineAt')::bigint, (x->>'attemptTimeoutMs')::bigint, (x->>'maxReclaimCount')::int,
      (x->>'maxReplayCount')::int, (x->>'dedupTtlMs')::bigint, v_now, x->>'traceContext');
    v_out := v_out || jsonb_build_array(r->'ok');
  END LOOP;
  RETURN ffi_ok(v_out);
END $$;

-- ---------------------------------------------------------------------------
-- renew, progress
-- ---------------------------------------------------------------------------

-- ff_renew: extends the lease by p_ttl from now and moves its timer.
-- Without sequential scans: a plan of a session's first calls, made while exec_core was small,
-- must not read it whole once it has grown (docs/design/postgres.md, "The function library").
--   args:   the handle, p_ttl (ms), p_now
--   reply:  {"ok": Model.LeaseRenewal}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ff_renew(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_ttl bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb; v_exp bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, true);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  v_exp := v_now + p_ttl;
  UPDATE exec_core SET lease_expires_at = v_exp, lease_last_renewed_at = v_now, last_mutation_at = v_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  PERFORM ffi_timer_set('lease', p_eid, v_exp);
  RETURN ffi_ok(jsonb_build_object('expiresAtMs', v_exp, 'leaseEpoch', e.lease_epoch));
END $$;

-- ff_progress: records the attempt's progress (a NULL keeps the stored value); every report
-- writes a Progress event, one in the same millisecond as the last one too.
-- Without sequential scans: a plan of a session's first calls, made while exec_core was small,
-- must not read it whole once it has grown (docs/design/postgres.md, "The function library").
--   args:   the handle, p_pct, p_msg, p_now
--   reply:  {"ok": null}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ff_progress(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_pct int, p_msg text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, false, false, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  IF e.progress_updated_at IS DISTINCT FROM v_now THEN
    -- the event triggers see the report by its new time (Progress)
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, progress_pct = coalesce(p_pct, progress_pct), progress_message = coalesce(p_msg, progress_message),
      progress_updated_at = v_now, last_mutation_at = v_now
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    RETURN ffi_ok();
  END IF;
  -- a second report within the same millisecond leaves the time as it was, so the triggers see no
  -- report: its Progress event (the shape of the update trigger's) is written here
  UPDATE exec_core SET progress_pct = coalesce(p_pct, progress_pct), progress_message = coalesce(p_msg, progress_message),
    last_mutation_at = v_now, event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid)
  RETURNING * INTO e;
  INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt, num, s1)
  VALUES (e.event_k, v_now, e.partition_key, e.e_uuid, e.lane_id, e.flow_id, 'Progress', e.current_attempt_index, e.progress_pct,
    ffi_cut_reason(e.progress_message));
  PERFORM set_config('flowfabric.event_at', v_now::text, true);
  PERFORM ffi_events_wake(ARRAY['e:' || ffi_eid(e.partition_key, e.e_uuid), 'l:' || e.lane_id, 'f:' || e.flow_id::text]);
  RETURN ffi_ok();
END $$;

-- ---------------------------------------------------------------------------
-- complete
-- ---------------------------------------------------------------------------

-- ff_complete: ends the attempt with success and the execution as completed, storing the
-- result. The common case (an owned lease of an execution without grant or suspension) runs
-- inline — one statement per table, and for a flow member only the steps a success needs —
-- instead of through ffi_terminate; every other case takes ffi_terminate. The common case reads
-- the row without a lock and updates it with the lease checked again by the update itself (which
-- locks the row: no lock record of its own); when another transaction changed the row meanwhile
-- so that the update finds nothing, it reads the row again locked and goes on from there. In the
-- common case the run that ended is not written to exec_history: its worker, start and kind stay in
-- exec_core, where ffi_history_json reads it as the last run (a replay moves it to exec_history).
-- Outside a flow, the common case writes its Completed event, lane counts and wake-ups itself
-- (flowfabric.own_rows, migration 0039), as ff_complete_set does for a set.
--   args:   the handle, p_payload (the result, NULL or empty for none), p_now
--   reply:  {"ok": null}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ff_complete(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_payload bytea, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  v_err jsonb;
  v_flow_state text;
  v_own boolean;
  v_k bigint;
  -- 1: the row read without a lock; 2: read again with one
  v_try int;
  -- (the set_config and wake-up calls are expressions, not PERFORMs: no query start-up)
  v_void text;
BEGIN
  FOR v_try IN 1 .. 2 LOOP
    IF v_try = 1 THEN
      SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    ELSE
      SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
    END IF;
    IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
    -- the handle owns the lease: the whole ladder of ffi_lease_check passes (checked under the lock)
    IF NOT (e.lifecycle_phase = 'active' AND e.ownership_state <> 'lease_revoked'
            AND (e.lease_expires_at IS NULL OR e.lease_expires_at > v_now)
            AND e.lease_id = p_lease AND e.lease_epoch = p_epoch AND e.current_attempt_id = p_att) THEN
      CONTINUE WHEN v_try = 1;
      v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
      IF v_err IS NOT NULL THEN RETURN v_err; END IF;
    END IF;
    IF e.has_grant OR e.current_suspension_id IS NOT NULL
       OR e.current_attempt_index IS NULL OR e.lifecycle_phase <> 'active' THEN
      CONTINUE WHEN v_try = 1;
      -- the result: up to ffi_inline_bytes() in the exec_core row, a larger one in exec_data
      -- (migration 0050)
      IF length(p_payload) > ffi_inline_bytes() THEN
        PERFORM ffi_result_cold(p_eid, p_payload);
      ELSIF length(p_payload) > 0 THEN
        UPDATE exec_core SET result = p_payload WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
      END IF;
      PERFORM ffi_terminate(p_eid, 'success', NULL, NULL, NULL, NULL,
                            'attempt_success', 'completed', v_now, true);
      RETURN ffi_ok();
    END IF;
    -- ffi_terminate + ffi_after_terminal for this case; the run stays in exec_core (its worker,
    -- start and kind), the history's last run (ffi_history_json). Outside a flow, the Completed
    -- event and the lane counts are written below, not by the update triggers (migration 0039),
    -- unless a fold applies (the row's last event is this transaction's)
    v_own := e.flow_id IS NULL AND e.event_k IS DISTINCT FROM ffi_xid();
    IF v_own THEN v_void := set_config('flowfabric.own_rows', 'on', true); END IF;
    UPDATE exec_core SET lifecycle_phase = 'terminal', ownership_state = 'unowned',
      eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '',
      terminal_outcome = 'success',
      attempt_state = CASE WHEN total_attempt_count > 0 THEN 'attempt_terminal' ELSE attempt_state END,
      public_state = 'completed',
      completed_at = v_now, lease_id = NULL,
      worker_id = CASE WHEN ownership_state = 'leased' THEN worker_id END,
      worker_instance_id = CASE WHEN ownership_state = 'leased' THEN worker_instance_id END,
      lease_acquired_at = CASE WHEN ownership_state = 'leased' THEN lease_acquired_at END,
      lease_expires_at = NULL, lease_last_renewed_at = NULL,
      current_suspension_id = NULL, current_waitpoint_id = NULL, delay_until = NULL, attempt_timeout_at = NULL,
      has_grant = false, last_mutation_at = v_now,
      event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL,
      -- the result: up to ffi_inline_bytes() here, a larger one in exec_data (below)
      result = CASE WHEN length(p_payload) BETWEEN 1 AND ffi_inline_bytes() THEN p_payload END
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid)
      -- without the lock, what was read is checked again on the row the update locks
      AND (v_try = 2 OR (lifecycle_phase = 'active' AND ownership_state <> 'lease_revoked'
           AND (lease_expires_at IS NULL OR lease_expires_at > v_now)
           AND lease_id = p_lease AND lease_epoch = p_epoch AND current_attempt_id = p_att
           AND has_grant IS NOT TRUE AND current_suspension_id IS NULL AND current_attempt_index IS NOT NULL
           AND flow_id IS NOT DISTINCT FROM e.flow_id))
    RETURNING event_k INTO v_k;
    EXIT WHEN FOUND;
    -- (only the read without a lock gets here: the row changed since; read again, locked)
    IF v_own THEN v_void := set_config('flowfabric.own_rows', '', true); END IF;
  END LOOP;
  IF length(p_payload) > ffi_inline_bytes() THEN
    PERFORM ffi_result_cold(p_eid, p_payload);
  END IF;
  UPDATE stream_meta SET closed_at = v_now, closed_reason = 'attempt_success'
  WHERE execution_id = p_eid AND attempt_index = e.current_attempt_index AND closed_at IS NULL;
  IF v_own THEN
    v_void := set_config('flowfabric.own_rows', '', true);
    -- what ffi_trg_events_updated and ffi_lane_count_update write for a completion
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, kind, attempt)
    VALUES (v_k, v_now, ffi_eid_part(p_eid), ffi_eid_uuid(p_eid), e.lane_id, 'Completed', e.current_attempt_index);
    INSERT INTO lane_count (lane_id, public_state, shard, n)
    VALUES (e.lane_id, e.public_state, pg_backend_pid(), -1), (e.lane_id, 'completed', pg_backend_pid(), 1)
    ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
    v_void := set_config('flowfabric.event_at', v_now::text, true);
    v_void := ffi_events_wake(ARRAY['e:' || p_eid, 'l:' || e.lane_id])::text;
  END IF;
  -- the retention timer (ffi_retention_set, inline)
  IF e.flow_id IS NULL AND v_now IS NOT NULL AND e.completed_at IS DISTINCT FROM v_now THEN
    INSERT INTO timer (kind, ref, due_at)
    VALUES ('retention', p_eid, v_now + ffi_retention_ms(ffi_policy(e, p_eid)))
    ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  END IF;
  DELETE FROM timer WHERE ref = p_eid AND kind IN ('delay', 'lease', 'attempt_timeout', 'deadline', 'suspension');
  IF e.flow_id IS NOT NULL THEN
    -- the flow steps of ffi_after_terminal for a success
    PERFORM ffi_resolve_from(p_eid, 'success', v_now);
    UPDATE flow_core SET live_members = greatest(live_members - 1, 0)
    WHERE flow_id = e.flow_id
    RETURNING public_flow_state INTO v_flow_state;
    IF NOT FOUND OR v_flow_state = 'cancelling' THEN
      DELETE FROM cancel_owed WHERE flow_id = e.flow_id AND execution_id = p_eid;
      PERFORM ffi_flow_settle(e.flow_id, v_now);
    END IF;
  END IF;
  RETURN ffi_ok();
END $$;

-- ff_complete_set: completeMany — ff_complete for each row of the arrays, in one statement:
-- the rows of the common case outside flows are read without a lock and completed set-based by
-- one update that names the row versions read and checks the lease again under its own row lock
-- (with one retention timer for the set, timer.refs); every other row, and any that another
-- transaction changed since it was read, goes through ff_complete.
--   args:   p_eid, p_idx, p_att, p_lease, p_epoch, p_payload (one element per row), p_now
--   reply:  one ff_complete reply per row, in order
--   errors: per row, those of ff_complete
CREATE FUNCTION ff_complete_set(
  p_eid text[], p_idx int[], p_att uuid[], p_lease uuid[], p_epoch bigint[], p_payload bytea[], p_now bigint
) RETURNS SETOF jsonb LANGUAGE plpgsql SET search_path FROM CURRENT
  SET enable_bitmapscan = off SET enable_seqscan = off SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  f_ids text[];
  f_cai int[];
  f_arm text[];
  -- (whether an f_arm execution has an exec_data row: its input is not inline, migration 0050)
  f_arm_cold boolean[];
  -- the f_ids rows' results
  f_res bytea[];
  f_state text[];
  f_fold boolean;
  -- the row versions read (ctid): the set's update reads them by a TID scan, the only plan it has
  f_tid tid[];
  f_att uuid[];
  f_lease uuid[];
  f_epoch bigint[];
  -- the ids the update completed (those of f_ids whose row no other transaction changed meanwhile)
  f_done text[];
  v_scopes text[];
  v_i int;
  -- (the set_config and wake-up calls are expressions, not PERFORMs: no query start-up)
  v_void text;
  -- ids named more than once (each of their rows goes through ff_complete), found once for the batch
  v_dups text[] := ARRAY(SELECT d.id FROM unnest(p_eid) AS d(id) GROUP BY d.id HAVING count(*) > 1);
BEGIN
  -- the common case, read without a lock (the update below locks and checks each row again; rows
  -- that do not qualify are left to ff_complete): each row looked up by its key on its own (a
  -- LATERAL subquery with OFFSET 0 is not flattened into a join, which a plan made on a small
  -- table would make by reading the whole key)
  SELECT coalesce(array_agg(c.id ORDER BY c.id), '{}'), coalesce(array_agg(c.current_attempt_index ORDER BY c.id), '{}'),
         coalesce(array_agg(c.id ORDER BY c.id) FILTER (WHERE c.completed_at IS DISTINCT FROM v_now), '{}'),
         coalesce(array_agg(c.cold ORDER BY c.id) FILTER (WHERE c.completed_at IS DISTINCT FROM v_now), '{}'),
         coalesce(array_agg(c.res ORDER BY c.id), '{}'),
         coalesce(array_agg(c.public_state ORDER BY c.id), '{}'), coalesce(array_agg(c.tid ORDER BY c.id), '{}'),
         coalesce(array_agg(c.att ORDER BY c.id), '{}'), coalesce(array_agg(c.lease ORDER BY c.id), '{}'),
         coalesce(array_agg(c.epoch ORDER BY c.id), '{}'),
         coalesce(bool_or(c.event_k = ffi_xid()), false)
  INTO f_ids, f_cai, f_arm, f_arm_cold, f_res, f_state, f_tid, f_att, f_lease, f_epoch, f_fold
  FROM (
    SELECT t.id, c.tid, c.current_attempt_index, c.completed_at, c.public_state, c.event_k, c.cold, t.res,
      t.att, t.lease, t.epoch
    FROM (SELECT t.* FROM unnest(p_eid, p_att, p_lease, p_epoch, p_payload) AS t(id, att, lease, epoch, res)
          WHERE t.id <> ALL (v_dups) ORDER BY t.id OFFSET 0) t
    CROSS JOIN LATERAL (
      SELECT c.ctid AS tid, c.current_attempt_index, c.completed_at, c.public_state, c.event_k,
        c.payload IS NULL AS cold
      FROM exec_core c
      WHERE c.partition_key = ffi_eid_part(t.id) AND c.e_uuid = ffi_eid_uuid(t.id)
        AND c.lifecycle_phase = 'active' AND c.ownership_state <> 'lease_revoked'
        AND (c.lease_expires_at IS NULL OR c.lease_expires_at > v_now)
        AND c.lease_id = t.lease AND c.lease_epoch = t.epoch AND c.current_attempt_id = t.att
        AND c.flow_id IS NULL AND c.has_grant IS NOT TRUE AND c.current_suspension_id IS NULL
        AND c.current_attempt_index IS NOT NULL
      OFFSET 0
    ) c
  ) c;
  IF cardinality(f_ids) > 0 THEN
    -- the set's Completed events and lane counts are written by this statement, not by the update
    -- triggers (migration 0039), unless a fold applies
    IF NOT f_fold THEN v_void := set_config('flowfabric.own_rows', 'on', true); END IF;
    WITH done AS (
    UPDATE exec_core SET lifecycle_phase = 'terminal', ownership_state = 'unowned',
      eligibility_state = 'not_applicable', blocking_reason = 'none', blocking_detail = '',
      terminal_outcome = 'success',
      attempt_state = CASE WHEN total_attempt_count > 0 THEN 'attempt_terminal' ELSE attempt_state END,
      public_state = 'completed',
      completed_at = v_now, lease_id = NULL,
      -- the run stays in exec_core (its worker, start and kind): the history's last run
      worker_id = CASE WHEN ownership_state = 'leased' THEN worker_id END,
      worker_instance_id = CASE WHEN ownership_state = 'leased' THEN worker_instance_id END,
      lease_acquired_at = CASE WHEN ownership_state = 'leased' THEN lease_acquired_at END,
      lease_expires_at = NULL, lease_last_renewed_at = NULL,
      current_suspension_id = NULL, current_waitpoint_id = NULL, delay_until = NULL, attempt_timeout_at = NULL,
      has_grant = false, last_mutation_at = v_now,
      event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL,
      result = CASE WHEN length(x.res) BETWEEN 1 AND ffi_inline_bytes() THEN x.res END
    -- the row versions read above: a TID scan, whatever the table held when the session planned
    -- this statement. No separate lock (its WAL record, 54 bytes a row): the update locks each row
    -- and checks its key and lease again; a row another transaction changed since it was read is
    -- checked in its new version, whose location no longer matches x.tid, and is left out (and
    -- completed by ff_complete below). The lease's and attempt's uuids name the row: no condition
    -- on the key, which would let a plan made on a small table read exec_core_pkey whole instead.
    FROM unnest(f_ids, f_tid, f_res, f_att, f_lease, f_epoch) AS x(id, tid, res, att, lease, epoch)
    WHERE exec_core.ctid = ANY (f_tid) AND exec_core.ctid = x.tid
      AND exec_core.lifecycle_phase = 'active' AND exec_core.ownership_state <> 'lease_revoked'
      AND (exec_core.lease_expires_at IS NULL OR exec_core.lease_expires_at > v_now)
      AND exec_core.lease_id = x.lease AND exec_core.lease_epoch = x.epoch AND exec_core.current_attempt_id = x.att
      AND exec_core.flow_id IS NULL AND exec_core.has_grant IS NOT TRUE AND exec_core.current_suspension_id IS NULL
      AND exec_core.current_attempt_index IS NOT NULL
    RETURNING x.id AS execution_id, partition_key, e_uuid, event_k, lane_id, flow_id, current_attempt_index
    ), evs AS (
      -- what ffi_trg_events_updated writes for a completion: Completed (attempt)
      INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt)
      SELECT d.event_k, v_now, d.partition_key, d.e_uuid, d.lane_id, d.flow_id,
        'Completed', d.current_attempt_index
      FROM done d WHERE current_setting('flowfabric.own_rows', true) = 'on'
      RETURNING ffi_eid(e_part, e_uuid) AS execution_id, lane_id, flow_id
    ), counts AS (
      -- what ffi_lane_count_update writes: the net change per lane and public state
      INSERT INTO lane_count (lane_id, public_state, shard, n)
      SELECT x.lane, x.st, pg_backend_pid(), sum(x.n) FROM (
        SELECT d.lane_id AS lane, o.st, -1 AS n FROM done d JOIN unnest(f_ids, f_state) AS o(id, st) ON o.id = d.execution_id
        UNION ALL SELECT d.lane_id, 'completed', 1 FROM done d) x
      WHERE current_setting('flowfabric.own_rows', true) = 'on'
      GROUP BY 1, 2 HAVING sum(x.n) <> 0
      ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n
    )
    SELECT (SELECT array_agg(v.s)
            FROM evs CROSS JOIN LATERAL (VALUES ('e:' || evs.execution_id), ('l:' || evs.lane_id), ('f:' || evs.flow_id::text)) v(s)),
           (SELECT coalesce(array_agg(d.execution_id), '{}') FROM done d)
    INTO v_scopes, f_done;
    IF current_setting('flowfabric.own_rows', true) = 'on' THEN
      v_void := set_config('flowfabric.own_rows', '', true);
      v_void := set_config('flowfabric.event_at', v_now::text, true);
      v_void := ffi_events_wake(v_scopes)::text;
    END IF;
    IF cardinality(f_done) < cardinality(f_ids) THEN
      -- rows changed by another transaction since they were read: ff_complete takes them below
      SELECT coalesce(array_agg(f.id ORDER BY f.n), '{}'), coalesce(array_agg(f.cai ORDER BY f.n), '{}'),
             coalesce(array_agg(f.res ORDER BY f.n), '{}')
      INTO f_ids, f_cai, f_res
      FROM unnest(f_ids, f_cai, f_res) WITH ORDINALITY AS f(id, cai, res, n) WHERE f.id = ANY (f_done);
      SELECT coalesce(array_agg(f.id ORDER BY f.n), '{}'), coalesce(array_agg(f.cold ORDER BY f.n), '{}')
      INTO f_arm, f_arm_cold
      FROM unnest(f_arm, f_arm_cold) WITH ORDINALITY AS f(id, cold, n) WHERE f.id = ANY (f_done);
    END IF;
    -- the results: up to ffi_inline_bytes() in the exec_core rows (the update above), larger ones in
    -- exec_data (migration 0050)
    PERFORM ffi_result_cold(r.id, r.res) FROM unnest(f_ids, f_res) AS r(id, res) WHERE length(r.res) > ffi_inline_bytes();
    UPDATE stream_meta s SET closed_at = v_now, closed_reason = 'attempt_success'
    FROM unnest(f_ids, f_cai) AS f(id, cai)
    WHERE s.execution_id = f.id AND s.attempt_index = f.cai AND s.closed_at IS NULL;
    IF cardinality(f_arm) > 0 THEN
      -- one retention timer for the set per retention time (timer.refs, migration 0038); the
      -- claim's lease timer of the set stays until its time, when the pass finds them ended
      INSERT INTO timer (kind, ref, due_at, refs, ref_parts)
      SELECT 'retention', '#' || gen_random_uuid()::text, r.due, array_agg(ffi_eid_uuid(r.id) ORDER BY r.id),
        array_agg(ffi_eid_part(r.id) ORDER BY r.id)
      FROM (SELECT x.id, v_now + ffi_retention_ms(d.policy) AS due
            FROM unnest(f_arm, f_arm_cold) AS x(id, cold)
            -- (the policy is exec_data's; an execution whose input is inline has none, and no row)
            LEFT JOIN LATERAL (SELECT d.policy FROM exec_data d
                               WHERE x.cold AND ffi_eid(d.e_part, d.e_uuid) = x.id LIMIT 1) d ON true) r
      GROUP BY r.due;
    END IF;
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

-- ---------------------------------------------------------------------------
-- fail
-- ---------------------------------------------------------------------------

-- ffi_backoff_ms: the delay before retry number p_n: the policy's fixed or exponential backoff
-- (with its cap), or 1 s doubling up to 60 s without one.
--   args:   p_backoff (retry_policy.backoff of the execution's policy), p_n (retries so far)
--   reply:  bigint (ms)
--   errors: -
CREATE FUNCTION ffi_backoff_ms(p_backoff jsonb, p_n int) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN p_backoff IS NULL OR jsonb_typeof(p_backoff) <> 'object' THEN least(1000 * power(2::float8, p_n), 60000)::bigint
    WHEN p_backoff->>'type' = 'fixed' THEN coalesce((p_backoff->>'delay_ms')::bigint, 1000)
    WHEN p_backoff->>'type' = 'exponential' THEN least(
      floor(coalesce((p_backoff->>'initial_delay_ms')::float8, 1000)
            * power(coalesce((p_backoff->>'multiplier')::float8, 2), p_n))::bigint,
      coalesce((p_backoff->>'max_delay_ms')::bigint, 60000))
    ELSE 1000 END $$;

-- ff_fail: records the failure (exec_failure), ends the run and the attempt with it, then
-- either schedules a retry (the retry policy
-- allows another for this category and the class is neither Permanent nor Cancelled: runnable
-- after the backoff) or ends the execution as failed.
-- Without sequential scans: a plan of a session's first calls, made while exec_core was small,
-- must not read it whole once it has grown (docs/design/postgres.md, "The function library").
--   args:   the handle, p_reason (the message), p_category, p_class (Model.FailureClass), p_now
--   reply:  {"ok": Model.FailOutcome}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ff_fail(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint,
  p_reason text, p_category text, p_class text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
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
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  PERFORM ffi_record_failure(p_eid, p_reason, p_class, p_category, v_now);
  v_rp := ffi_policy(e, p_eid)->'retry_policy';
  IF v_rp IS NOT NULL AND jsonb_typeof(v_rp) = 'object' AND p_class NOT IN ('Permanent', 'Cancelled') THEN
    v_max := coalesce((v_rp->>'max_retries')::int, 3);
    v_cats := v_rp->'retryable_categories';
    v_retry := coalesce(e.retry_count, 0) < v_max AND (
      v_cats IS NULL OR jsonb_typeof(v_cats) <> 'array' OR jsonb_array_length(v_cats) = 0
      OR v_cats ? p_category);
  END IF;
  IF NOT v_retry THEN
    PERFORM ffi_terminate(p_eid, 'failed', p_reason, p_reason, NULL, NULL,
                          'attempt_failure', 'failed', v_now, true);
    RETURN ffi_ok(jsonb_build_object('_tag', 'TerminalFailed'));
  END IF;
  v_until := v_now + ffi_backoff_ms(v_rp->'backoff', coalesce(e.retry_count, 0));
  PERFORM ffi_run_end(p_eid, 'retry_scheduled', p_reason, v_now);
  PERFORM ffi_stream_close(p_eid, e.current_attempt_index, 'attempt_failure', v_now);
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'runnable', ownership_state = 'unowned',
    eligibility_state = 'not_eligible_until_time', blocking_reason = 'waiting_for_retry_backoff',
    blocking_detail = 'retry backoff until ' || v_until || ' (attempt ' || e.current_attempt_index || ' failed: ' || p_reason || ')',
    terminal_outcome = 'none', attempt_state = 'pending_retry_attempt', public_state = 'delayed',
    pending_retry_reason = p_reason, pending_previous_attempt_index = e.current_attempt_index,
    retry_count = coalesce(retry_count, 0) + 1, current_attempt_id = NULL,
    lease_id = NULL, worker_id = NULL, worker_instance_id = NULL, lease_expires_at = NULL,
    lease_last_renewed_at = NULL, lease_acquired_at = NULL, attempt_timeout_at = NULL,
    delay_until = v_until, failure_reason = p_reason, last_mutation_at = v_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  DELETE FROM timer WHERE ref = p_eid AND kind IN ('lease', 'attempt_timeout');
  PERFORM ffi_timer_set('delay', p_eid, v_until);
  RETURN ffi_ok(jsonb_build_object('_tag', 'RetryScheduled', 'delayUntil', v_until));
END $$;

-- ---------------------------------------------------------------------------
-- cancel
-- ---------------------------------------------------------------------------

-- ff_cancel: the worker cancels its execution. A lease that expired still allows it, a revoked
-- or stale lease does not.
-- Without sequential scans: a plan of a session's first calls, made while exec_core was small,
-- must not read it whole once it has grown (docs/design/postgres.md, "The function library").
--   args:   the handle, p_reason, p_now
--   reply:  {"ok": null}
--   errors: execution_not_found, execution_not_active, lease_revoked, stale_lease
CREATE FUNCTION ff_cancel(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_reason text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase = 'terminal' THEN RETURN ffi_not_active(e); END IF;
  IF e.lifecycle_phase = 'active' THEN
    IF e.ownership_state = 'lease_revoked' THEN RETURN ffi_err('lease_revoked'); END IF;
    IF e.lease_id IS DISTINCT FROM p_lease OR e.lease_epoch <> p_epoch THEN RETURN ffi_err('stale_lease'); END IF;
  END IF;
  PERFORM ffi_cancel_exec(p_eid, p_reason, 'worker', v_now);
  RETURN ffi_ok();
END $$;

-- ---------------------------------------------------------------------------
-- delay, wait_children
-- ---------------------------------------------------------------------------

-- ffi_interrupt: releases the lease of active execution e into an interrupted runnable state
-- (its attempt interrupted, to be resumed by the next claim); the lease and attempt timers go.
--   args:   e (the locked exec_core row), p_elig / p_blocking / p_detail (the new eligibility,
--           blocking reason and detail), p_delay_until, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_interrupt(
  e exec_core, p_elig text, p_blocking text, p_detail text, p_delay_until bigint, p_now bigint
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'runnable', ownership_state = 'unowned', eligibility_state = p_elig,
    blocking_reason = p_blocking, blocking_detail = p_detail, terminal_outcome = 'none',
    attempt_state = 'attempt_interrupted', public_state = ffi_public_state('runnable', p_elig, 'none'),
    delay_until = p_delay_until, lease_id = NULL, worker_id = NULL, worker_instance_id = NULL,
    lease_expires_at = NULL, lease_last_renewed_at = NULL, lease_acquired_at = NULL, attempt_timeout_at = NULL,
    last_mutation_at = p_now
  WHERE partition_key = e.partition_key AND e_uuid = e.e_uuid;
  DELETE FROM timer WHERE ref = ffi_eid(e.partition_key, e.e_uuid) AND kind IN ('lease', 'attempt_timeout');
END $$;

-- ff_delay: the worker releases its execution until p_until (same attempt, resumed later).
-- Without sequential scans: a plan of a session's first calls, made while exec_core was small,
-- must not read it whole once it has grown (docs/design/postgres.md, "The function library").
--   args:   the handle, p_until (ms), p_now
--   reply:  {"ok": null}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ff_delay(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_until bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  PERFORM ffi_run_end(p_eid, 'delayed', NULL, v_now);
  PERFORM ffi_interrupt(e, 'not_eligible_until_time', 'waiting_for_delay', 'delayed until ' || p_until,
                        p_until, v_now);
  PERFORM ffi_timer_set('delay', p_eid, p_until);
  RETURN ffi_ok();
END $$;

-- ff_wait_children: the worker releases its execution until its dependencies are satisfied;
-- when nothing is left to wait for it is claimable again at once.
--   args:   the handle, p_now
--   reply:  {"ok": null}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ff_wait_children(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; v_err jsonb; v_satisfied boolean;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  PERFORM ffi_run_end(p_eid, 'waiting_children', NULL, v_now);
  -- nothing to wait for (no dependencies, or all already satisfied): eligible at once
  v_satisfied := NOT EXISTS (SELECT 1 FROM edge_group WHERE downstream_id = p_eid AND group_state <> 'satisfied')
    OR NOT EXISTS (SELECT 1 FROM dep WHERE downstream_id = p_eid AND state <> 'satisfied');
  IF v_satisfied THEN
    PERFORM ffi_interrupt(e, 'eligible_now', 'waiting_for_worker', '', NULL, v_now);
    PERFORM ffi_wake_claimable(p_eid);
  ELSE
    PERFORM ffi_interrupt(e, 'blocked_by_dependencies', 'waiting_for_children',
                          'waiting for child executions to complete', NULL, v_now);
  END IF;
  RETURN ffi_ok();
END $$;
