-- ===========================================================================
-- maintenance.sql: the maintenance passes (Maintenance in src/Maintenance.ts).
-- Each takes at most p_batch items, skips rows other transactions hold, and
-- answers {"ok": {"processed": n, "more": bool}} (Model: PassResult); "more"
-- says another call would find work now. A timer is a hint: the owning row
-- decides, and a timer that fires early is moved to the row's due time.
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- timers
-- ---------------------------------------------------------------------------

-- ffi_expire: ends execution p_eid as expired (its deadline passed), the last failure of class
-- Timeout. The caller holds the exec_core row lock.
--   args:   p_eid, p_reason (e.g. execution_deadline), p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_expire(p_eid text, p_reason text, p_now bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_revoked(p_eid);
  PERFORM ffi_record_failure(p_eid, p_reason, 'Timeout', 'timeout', p_now);
  PERFORM ffi_terminate(p_eid, 'expired', p_reason, p_reason, NULL, NULL, 'expired',
                        'expired:' || p_reason, p_now, true);
END $$;

-- ff_pass_timers: the due timers of kind p_kind, the earliest first: delay (promote to
-- claimable), lease (mark the lease expired and the execution reclaimable), attempt_timeout and
-- deadline (expire the execution), suspension (the timeout behaviour: resume, escalate to an
-- operator, or end the execution as failed, cancelled or expired), waitpoint (a pending
-- waitpoint expires), budget_reset (reset the budget). A lease timer of a claim's set (refs,
-- migration 0038) is taken for each of its executions, at most p_batch of them a call, locking
-- only those still leased; those another transaction holds, or past the batch, stay in the row
-- for the next call.
--   args:   p_kind, p_batch, p_now
--   reply:  {"ok": {"processed", "more", "nextDueAt" (the earliest timer of the kind left, absent
--           when none or when more is due now)}}
--   errors: -
CREATE FUNCTION ff_pass_timers(p_kind text, p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
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
  v_ref text;
  v_take int;
  v_left text[];
BEGIN
  FOR t IN
    -- (a set's executions as their ids: refs holds their uuids, ref_parts their partitions, 0047)
    SELECT ref, due_at, CASE WHEN refs IS NOT NULL THEN
             ARRAY(SELECT ffi_eid(x.p, x.u) FROM unnest(ref_parts, refs) WITH ORDINALITY AS x(p, u, o) ORDER BY x.o)
           END AS refs
    FROM timer WHERE kind = p_kind AND due_at <= v_now
    ORDER BY due_at LIMIT p_batch + 1 FOR UPDATE SKIP LOCKED
  LOOP
    v_seen := v_seen + 1;
    IF v_seen > p_batch THEN v_more := true; EXIT; END IF;

    IF t.refs IS NOT NULL THEN
      -- a claim's lease timer for its set: each execution as its own lease timer below; a lease
      -- renewed since has a timer of its own, armed here again in case
      v_take := least(cardinality(t.refs), p_batch - v_seen + 1);
      v_left := t.refs[v_take + 1 :];
      IF cardinality(v_left) > 0 THEN v_more := true; END IF;
      v_seen := v_seen + v_take - 1;
      -- only the executions still leased are locked (most of a set has completed by its lease's
      -- end, and a lock is a WAL record); one that is not leased now has nothing to expire here
      -- (a claim that leases it later arms a timer of its own)
      -- (a probe of the key per id: OFFSET 0 keeps the sub-select from becoming a join over the key)
      FOREACH v_ref IN ARRAY ARRAY(SELECT x.id FROM unnest(t.refs[1 : v_take]) WITH ORDINALITY AS x(id, o)
                                   WHERE EXISTS (SELECT 1 FROM exec_core c
                                                 WHERE c.partition_key = ffi_eid_part(x.id) AND c.e_uuid = ffi_eid_uuid(x.id)
                                                   AND c.lifecycle_phase = 'active' AND c.ownership_state = 'leased' OFFSET 0)
                                   ORDER BY x.o) LOOP
        SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(v_ref) AND e_uuid = ffi_eid_uuid(v_ref) FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
          v_left := v_left || v_ref;
          CONTINUE;
        END IF;
        IF p_kind = 'lease' AND e.lifecycle_phase = 'active' AND e.ownership_state = 'leased' THEN
          IF coalesce(e.lease_expires_at, 0) > v_now THEN
            PERFORM ffi_timer_set(p_kind, v_ref, e.lease_expires_at);
          ELSE
            PERFORM ffi_mark_expired(v_ref, v_now);
            v_done := v_done + 1;
          END IF;
        END IF;
      END LOOP;
      IF cardinality(v_left) > 0 THEN
        UPDATE timer SET refs = ARRAY(SELECT ffi_eid_uuid(x.id) FROM unnest(v_left) WITH ORDINALITY AS x(id, o) ORDER BY x.o),
          ref_parts = ARRAY(SELECT ffi_eid_part(x.id) FROM unnest(v_left) WITH ORDINALITY AS x(id, o) ORDER BY x.o)
        WHERE kind = p_kind AND ref = t.ref;
      ELSE
        PERFORM ffi_timer_del(p_kind, t.ref);
      END IF;
      CONTINUE;
    END IF;

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

    SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(t.ref) AND e_uuid = ffi_eid_uuid(t.ref) FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      IF NOT EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(t.ref) AND e_uuid = ffi_eid_uuid(t.ref)) THEN PERFORM ffi_timer_del(p_kind, t.ref); END IF;
      CONTINUE;
    END IF;
    CASE p_kind
      WHEN 'delay' THEN
        IF e.lifecycle_phase = 'runnable' AND e.eligibility_state = 'not_eligible_until_time' THEN
          IF coalesce(e.delay_until, 0) > v_now THEN
            PERFORM ffi_timer_set(p_kind, t.ref, e.delay_until);
            CONTINUE;
          END IF;
          PERFORM ffi_promote(t.ref, v_now);
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
          PERFORM ffi_revoked(t.ref);
          PERFORM ffi_record_failure(t.ref, 'attempt_timeout', 'Timeout', 'timeout', v_now);
          PERFORM ffi_terminate(t.ref, 'expired', 'attempt_timeout', 'attempt_timeout', NULL, NULL,
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
              last_mutation_at = v_now
            WHERE partition_key = ffi_eid_part(t.ref) AND e_uuid = ffi_eid_uuid(t.ref);
          ELSE
            v_outcome := CASE v_behavior WHEN 'cancel' THEN 'cancelled' WHEN 'expire' THEN 'expired' ELSE 'failed' END;
            IF v_behavior <> 'cancel' THEN
              PERFORM ffi_record_failure(t.ref, 'suspension_timeout:' || v_behavior, 'Timeout', 'timeout', v_now);
            END IF;
            PERFORM ffi_terminate(t.ref, v_outcome,
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
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('processed', v_done, 'more', v_more,
    'nextDueAt', CASE WHEN NOT v_more THEN (SELECT min(due_at) FROM timer WHERE kind = p_kind) END)));
END $$;

-- ---------------------------------------------------------------------------
-- dependencies, flow cancellation
-- ---------------------------------------------------------------------------

-- ff_pass_dependencies: reconcileDependencies — first the upstreams a bounded cascade left in
-- dep_pending, then (when the batch allows) the unresolved edges of blocked flow members whose
-- upstream is already terminal, resolved as its terminal transition would have.
--   args:   p_batch, p_now
--   reply:  {"ok": {"processed", "more"}}
--   errors: -
CREATE FUNCTION ff_pass_dependencies(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  q record;
  ch record;
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
  <<children>>
  FOR ch IN
    -- the unresolved edges (their partial index, whole: this pass's sweep), each end a probe of
    -- the key (OFFSET 0: no join over the key)
    SELECT DISTINCT dp.downstream_id FROM dep dp
    WHERE dp.state = 'unsatisfied'
      AND EXISTS (SELECT 1 FROM exec_core u
                  WHERE u.partition_key = ffi_eid_part(dp.upstream_id) AND u.e_uuid = ffi_eid_uuid(dp.upstream_id)
                    AND u.lifecycle_phase = 'terminal' AND u.terminal_outcome <> 'none' OFFSET 0)
      AND EXISTS (SELECT 1 FROM exec_core c
                  WHERE c.partition_key = ffi_eid_part(dp.downstream_id) AND c.e_uuid = ffi_eid_uuid(dp.downstream_id)
                    AND c.flow_id IS NOT NULL AND c.lifecycle_phase = 'runnable'
                    AND c.eligibility_state = 'blocked_by_dependencies' OFFSET 0)
    ORDER BY dp.downstream_id
  LOOP
    -- still blocked (an earlier cascade of this pass may have moved it)
    PERFORM 1 FROM exec_core
    WHERE partition_key = ffi_eid_part(ch.downstream_id) AND e_uuid = ffi_eid_uuid(ch.downstream_id)
      AND lifecycle_phase = 'runnable' AND eligibility_state = 'blocked_by_dependencies';
    IF NOT FOUND THEN CONTINUE; END IF;
    FOR d IN
      SELECT dp.edge_id, dp.upstream_id, u.terminal_outcome FROM dep dp
      CROSS JOIN LATERAL (SELECT u.terminal_outcome FROM exec_core u
                          WHERE u.partition_key = ffi_eid_part(dp.upstream_id) AND u.e_uuid = ffi_eid_uuid(dp.upstream_id)
                            AND u.lifecycle_phase = 'terminal' AND u.terminal_outcome <> 'none' OFFSET 0) u
      WHERE dp.downstream_id = ch.downstream_id AND (dp.state = 'unsatisfied') IS TRUE
      ORDER BY dp.edge_id
    LOOP
      IF v_done >= p_batch THEN v_more := true; EXIT children; END IF;
      v_res := ffi_resolve_edge(ch.downstream_id, d.edge_id, d.upstream_id, d.terminal_outcome::text, v_now);
      IF v_res NOT IN ('already_resolved', 'missing') THEN v_done := v_done + 1; END IF;
      IF v_res = 'child_skipped' THEN PERFORM ffi_resolve_from(ch.downstream_id, 'skipped', v_now); END IF;
    END LOOP;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;

-- ff_pass_cancel_backlog: drainCancelBacklog — cancels the members flow cancellations still owe
-- once their grace is over (a flow is settled when none is left), then the siblings any_of /
-- quorum groups still owe. Lock order: a downstream's exec_core row, then its group, as
-- resolution does.
--   args:   p_batch, p_now
--   reply:  {"ok": {"processed", "more"}}
--   errors: -
CREATE FUNCTION ff_pass_cancel_backlog(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
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
    -- (the flow's owed entries through the key, then sorted: planned on a small table, the order by
    -- id alone made the plan scan cancel_owed_by_execution whole for the flow's entries)
    FOR o IN SELECT x.execution_id FROM (SELECT execution_id FROM cancel_owed WHERE flow_id = b.flow_id OFFSET 0) x
             ORDER BY x.execution_id LIMIT p_batch LOOP
      IF v_done >= p_batch THEN v_more := true; EXIT; END IF;
      PERFORM 1 FROM exec_core WHERE partition_key = ffi_eid_part(o.execution_id) AND e_uuid = ffi_eid_uuid(o.execution_id) FOR UPDATE SKIP LOCKED;
      IF FOUND THEN
        PERFORM ffi_cancel_exec(o.execution_id, coalesce(nullif(b.reason, ''), 'flow_cancelled'), 'flow_cascade', v_now);
        DELETE FROM cancel_owed WHERE flow_id = b.flow_id AND execution_id = o.execution_id;
        v_done := v_done + 1;
      ELSIF NOT EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(o.execution_id) AND e_uuid = ffi_eid_uuid(o.execution_id)) THEN
        DELETE FROM cancel_owed WHERE flow_id = b.flow_id AND execution_id = o.execution_id;
      ELSE
        v_more := true;
      END IF;
    END LOOP;
    PERFORM ffi_flow_settle(b.flow_id, v_now, true);
    IF NOT EXISTS (SELECT 1 FROM cancel_owed WHERE flow_id = b.flow_id) THEN
      DELETE FROM cancel_backlog WHERE flow_id = b.flow_id;
    END IF;
    IF v_done >= p_batch THEN
      -- the batch is full: more when any due backlog is left (this flow's, or another's)
      v_more := v_more OR EXISTS (SELECT 1 FROM cancel_backlog WHERE grace_until <= v_now);
      EXIT;
    END IF;
  END LOOP;
  -- lock order: the downstream's exec row, then its group (as resolution does)
  FOR v_id IN SELECT downstream_id FROM edge_group WHERE cancel_siblings_pending ORDER BY downstream_id LIMIT p_batch LOOP
    PERFORM 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_id) AND e_uuid = ffi_eid_uuid(v_id) FOR UPDATE SKIP LOCKED;
    IF NOT FOUND AND EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_id) AND e_uuid = ffi_eid_uuid(v_id)) THEN
      v_more := true;
      CONTINUE;
    END IF;
    SELECT downstream_id, cancel_siblings_reason, cancel_siblings_members INTO g FROM edge_group
    WHERE downstream_id = v_id AND cancel_siblings_pending FOR UPDATE;
    CONTINUE WHEN NOT FOUND;
    v_left := '{}';
    FOREACH v_sib IN ARRAY g.cancel_siblings_members LOOP
      PERFORM 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_sib) AND e_uuid = ffi_eid_uuid(v_sib) AND lifecycle_phase <> 'terminal' FOR UPDATE SKIP LOCKED;
      IF FOUND THEN
        PERFORM ffi_cancel_exec(v_sib, coalesce(g.cancel_siblings_reason, 'sibling_quorum_satisfied'),
                                'operator_override', v_now);
        v_done := v_done + 1;
      ELSIF EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_sib) AND e_uuid = ffi_eid_uuid(v_sib) AND lifecycle_phase <> 'terminal') THEN
        v_left := v_left || v_sib;
      END IF;
    END LOOP;
    UPDATE edge_group SET cancel_siblings_pending = cardinality(v_left) > 0, cancel_siblings_members = v_left
    WHERE downstream_id = v_id;
    IF cardinality(v_left) > 0 THEN v_more := true; END IF;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;

-- ---------------------------------------------------------------------------
-- retention
-- ---------------------------------------------------------------------------

-- ffi_delete_execution: deletes execution p_eid and every row it owns (attempts, history, streams,
-- summaries, grant, suspension, waitpoints and their timers, signals, timers, data, core).
-- The caller holds its exec_core row lock.
--   args:   p_eid
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_delete_execution(p_eid text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  -- (timer's key probed per waitpoint: the kind written `(…) IS TRUE` is no condition timer_due
  -- can take, and a plan made on a small table could otherwise read every waitpoint timer)
  DELETE FROM timer
  WHERE ref = ANY (ARRAY(SELECT waitpoint_id::text FROM waitpoint WHERE execution_id = p_eid))
    AND (kind = 'waitpoint') IS TRUE;
  DELETE FROM signal WHERE execution_id = p_eid;
  DELETE FROM waitpoint WHERE execution_id = p_eid;
  DELETE FROM suspension WHERE execution_id = p_eid;
  DELETE FROM stream_frame WHERE execution_id = p_eid;
  DELETE FROM stream_meta WHERE execution_id = p_eid;
  DELETE FROM stream_summary WHERE execution_id = p_eid;
  DELETE FROM exec_history WHERE execution_id = p_eid;
  DELETE FROM exec_failure WHERE execution_id = p_eid;
  DELETE FROM claim_grant WHERE execution_id = p_eid;
  DELETE FROM timer WHERE ref = p_eid;
  DELETE FROM exec_data WHERE ffi_eid(e_part, e_uuid) = p_eid COLLATE "default";
  DELETE FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
END $$;

-- ffi_pass_retention_executions: the executions part of trimRetention — deletes the terminal
-- executions outside flows whose retention timer is due (the retention is recomputed from the
-- policy; an execution that is no longer terminal, or has joined a flow, loses its timer). A
-- completion's timer for its set (refs, migration 0038) is taken for each of its executions, at
-- most p_batch of them a call; those another transaction holds, or past the batch, stay in the
-- row, and one whose retention now ends later gets a timer of its own.
--   args:   p_batch, p_now
--   reply:  {"ok": {"processed", "more"}}
--   errors: -
CREATE FUNCTION ffi_pass_retention_executions(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  t record;
  e exec_core;
  v_due bigint;
  v_seen int := 0;
  v_done int := 0;
  v_more boolean := false;
  v_ref text;
  v_take int;
  v_left text[];
BEGIN
  FOR t IN
    -- (a set's executions as their ids: refs holds their uuids, ref_parts their partitions, 0047)
    SELECT ref, due_at, CASE WHEN refs IS NOT NULL THEN
             ARRAY(SELECT ffi_eid(x.p, x.u) FROM unnest(ref_parts, refs) WITH ORDINALITY AS x(p, u, o) ORDER BY x.o)
           END AS refs
    FROM timer WHERE kind = 'retention' AND due_at <= v_now
    ORDER BY due_at, ref LIMIT p_batch + 1 FOR UPDATE SKIP LOCKED
  LOOP
    v_seen := v_seen + 1;
    IF v_seen > p_batch THEN v_more := true; EXIT; END IF;
    IF t.refs IS NOT NULL THEN
      v_take := least(cardinality(t.refs), p_batch - v_seen + 1);
      v_left := t.refs[v_take + 1 :];
      IF cardinality(v_left) > 0 THEN v_more := true; END IF;
      v_seen := v_seen + v_take - 1;
      FOREACH v_ref IN ARRAY t.refs[1 : v_take] LOOP
        SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(v_ref) AND e_uuid = ffi_eid_uuid(v_ref) FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
          IF EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_ref) AND e_uuid = ffi_eid_uuid(v_ref)) THEN v_left := v_left || v_ref; END IF;
          CONTINUE;
        END IF;
        CONTINUE WHEN e.lifecycle_phase <> 'terminal' OR e.flow_id IS NOT NULL OR e.completed_at IS NULL;
        v_due := e.completed_at + ffi_retention_ms(ffi_policy(e, v_ref));
        IF v_due > v_now THEN
          PERFORM ffi_timer_set('retention', v_ref, v_due);
          CONTINUE;
        END IF;
        PERFORM ffi_delete_execution(v_ref);
        v_done := v_done + 1;
      END LOOP;
      IF cardinality(v_left) > 0 THEN
        UPDATE timer SET refs = ARRAY(SELECT ffi_eid_uuid(x.id) FROM unnest(v_left) WITH ORDINALITY AS x(id, o) ORDER BY x.o),
          ref_parts = ARRAY(SELECT ffi_eid_part(x.id) FROM unnest(v_left) WITH ORDINALITY AS x(id, o) ORDER BY x.o)
        WHERE kind = 'retention' AND ref = t.ref;
      ELSE
        PERFORM ffi_timer_del('retention', t.ref);
      END IF;
      CONTINUE;
    END IF;
    SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(t.ref) AND e_uuid = ffi_eid_uuid(t.ref) FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      IF NOT EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(t.ref) AND e_uuid = ffi_eid_uuid(t.ref)) THEN
        PERFORM ffi_timer_del('retention', t.ref);
      END IF;
      CONTINUE;
    END IF;
    IF e.lifecycle_phase <> 'terminal' OR e.flow_id IS NOT NULL OR e.completed_at IS NULL THEN
      PERFORM ffi_timer_del('retention', t.ref);
      CONTINUE;
    END IF;
    v_due := e.completed_at + ffi_retention_ms(ffi_policy(e, t.ref));
    IF v_due > v_now THEN
      PERFORM ffi_timer_set('retention', t.ref, v_due);
      CONTINUE;
    END IF;
    PERFORM ffi_delete_execution(t.ref);
    v_done := v_done + 1;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;

-- ffi_dedup_expire: deletes up to p_limit expired rows of each dedup table (create idempotency
-- keys, signal dedup, suspend dedup, budget usage dedup), the oldest first.
--   args:   p_now, p_limit
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_dedup_expire(p_now bigint, p_limit int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM exec_idempotency WHERE ctid IN (
    SELECT ctid FROM exec_idempotency WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
  DELETE FROM signal_dedup WHERE ctid IN (
    SELECT ctid FROM signal_dedup WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
  DELETE FROM suspend_dedup WHERE ctid IN (
    SELECT ctid FROM suspend_dedup WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
  DELETE FROM budget_dedup WHERE ctid IN (
    SELECT ctid FROM budget_dedup WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
END $$;

-- ffi_lane_count_fold: moves up to p_limit lane_count rows of server processes that have ended
-- (a shard that is no live backend's pid) into shard 0 (migration 0028), so that a lane keeps
-- about one row per state and live process. The shards in use are read by a skip scan of
-- lane_count_shard (a probe each, migration 0052), the rows of the ended ones by that index. Rows a
-- transaction holds are passed over; one fold runs at a time per schema (a transaction advisory
-- lock; the pass skips the fold when it is taken).
--   args:   p_limit
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_lane_count_fold(p_limit int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_gone int[];
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext('flowfabric:lane_count_fold:' || current_schema())) THEN
    RETURN;
  END IF;
  WITH RECURSIVE shards(s) AS (
    SELECT (SELECT min(l.shard) FROM lane_count l WHERE l.shard <> 0)
    UNION ALL
    SELECT (SELECT min(l.shard) FROM lane_count l WHERE l.shard <> 0 AND l.shard > shards.s)
    FROM shards WHERE shards.s IS NOT NULL)
  SELECT array_agg(shards.s) INTO v_gone FROM shards
  WHERE shards.s IS NOT NULL AND NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(NULL) a WHERE a.pid = shards.s);
  IF v_gone IS NULL THEN RETURN; END IF;
  WITH gone AS (
    DELETE FROM lane_count WHERE ctid IN (
      SELECT l.ctid FROM lane_count l WHERE l.shard <> 0 AND l.shard = ANY (v_gone)
      LIMIT p_limit FOR UPDATE SKIP LOCKED)
    RETURNING lane_id, public_state, n)
  INSERT INTO lane_count (lane_id, public_state, shard, n)
  SELECT lane_id, public_state, 0, sum(n) FROM gone GROUP BY 1, 2 ORDER BY 1, 2
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
END $$;

-- ff_pass_retention: trimRetention — the due executions, then up to max(1 000, 10 × batch)
-- expired dedup rows per table, lapsed waiter registrations (lane_waiter rows a worker did not
-- renew: its process ended without withdrawing them, and each left the lane's creates sending a
-- NOTIFY) and lane count rows of ended processes (ffi_lane_count_fold). What it reports is about
-- executions only, as on the other backends.
--   args:   p_batch, p_now
--   reply:  {"ok": {"processed", "more"}}
--   errors: -
CREATE FUNCTION ff_pass_retention(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
  v_result jsonb := ffi_pass_retention_executions(p_batch, p_now);
BEGIN
  PERFORM ffi_dedup_expire(coalesce(p_now, ffi_now()), greatest(1000, 10 * p_batch));
  DELETE FROM lane_waiter WHERE ctid IN (
    SELECT w.ctid FROM lane_waiter w WHERE w.expires_at < coalesce(p_now, ffi_now())
    LIMIT greatest(1000, 10 * p_batch) FOR UPDATE SKIP LOCKED);
  -- events past Limits.eventRetentionMs (1 h) or beyond Limits.eventsRetained (1 000 000)
  PERFORM ffi_events_trim(coalesce(p_now, ffi_now()), greatest(1000, 10 * p_batch), 3600000, 1000000);
  PERFORM ffi_lane_count_fold(greatest(1000, 10 * p_batch));
  RETURN v_result;
END $$;
