/**
 * Migration 0012: a flow member's completion in fewer statements and calls —
 * the linear-flow hot path. Same rows, same replies:
 *
 * - `ff_complete`: a member (no grant, no suspension, an open attempt) ends
 *   inline as an execution outside any flow already did (0008) instead of
 *   through `ffi_terminate` (which read the locked row again) and
 *   `ffi_after_terminal`; the flow row is decremented by one UPDATE whose
 *   RETURNING replaces `ffi_flow_settle`'s locking read. Owed cancels exist
 *   only while a flow is `cancelling` (they are inserted with that state and
 *   it leaves it only once none is left), so the owed entry is deleted and
 *   the general settle runs only then (or when the flow row is missing).
 * - `ffi_resolve_edge`: the data-passing reference rides on the dependency's
 *   UPDATE (one scalar subquery, NULL without an edge row as before), the
 *   open-dependency count on the edge group's UPDATE, and an unblocked child
 *   is queued by the same statement that unblocks it (the `ready` row holds
 *   the values `ffi_ready_add` read back).
 * - `ffi_resolve_from`: the "more edges left?" probe runs only when the
 *   budget is spent (it was evaluated through the executor on every step).
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_resolve_edge(p_child text, p_edge uuid, p_upstream text, p_outcome text, p_now bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c exec_core;
  v_success boolean := p_outcome = 'success';
  v_succeeded int := CASE WHEN p_outcome = 'success' THEN 1 ELSE 0 END;
  v_skipped int := CASE WHEN p_outcome = 'skipped' THEN 1 ELSE 0 END;
  v_failed int := CASE WHEN p_outcome NOT IN ('success', 'skipped') THEN 1 ELSE 0 END;
  v_flow uuid;
  v_ref text;
  v_variant text;
  v_on text;
  v_gk int;
  v_n int;
  v_sc int;
  v_fc int;
  v_kc int;
  v_state text;
  v_k int;
  v_open bigint;
BEGIN
  SELECT * INTO c FROM exec_core WHERE execution_id = p_child FOR UPDATE;
  IF NOT FOUND THEN RETURN 'missing'; END IF;
  UPDATE dep SET state = CASE WHEN v_success THEN 'satisfied' ELSE 'impossible' END, last_resolved_at = p_now
  WHERE downstream_id = p_child AND edge_id = p_edge AND state = 'unsatisfied'
  RETURNING dep.flow_id,
    CASE WHEN v_success AND c.lifecycle_phase <> 'terminal' THEN
      (SELECT coalesce(nullif(x.data_passing_ref, ''), nullif(dep.data_passing_ref, ''))
       FROM flow_edge x WHERE x.flow_id = dep.flow_id AND x.edge_id = p_edge) END
  INTO v_flow, v_ref;
  IF NOT FOUND THEN RETURN 'already_resolved'; END IF;
  IF v_ref IS NOT NULL THEN
    UPDATE exec_data cd SET payload = u.result FROM exec_data u
    WHERE cd.execution_id = p_child AND u.execution_id = p_upstream AND u.result IS NOT NULL;
  END IF;
  UPDATE edge_group SET succeeded = succeeded + v_succeeded, skipped = skipped + v_skipped, failed = failed + v_failed
  WHERE downstream_id = p_child
  RETURNING policy_variant, on_satisfied, k, n, succeeded, failed, skipped, group_state,
    CASE WHEN group_state = 'pending' AND policy_variant = 'all_of' THEN
      (SELECT count(*) FROM dep WHERE downstream_id = p_child AND state <> 'satisfied') ELSE 0 END
  INTO v_variant, v_on, v_gk, v_n, v_sc, v_fc, v_kc, v_state, v_open;
  IF NOT FOUND THEN
    INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at, succeeded, skipped, failed)
    VALUES (p_child, v_flow, 'all_of', (SELECT count(*) FROM dep WHERE downstream_id = p_child), p_now,
            v_succeeded, v_skipped, v_failed)
    RETURNING policy_variant, on_satisfied, k, n, succeeded, failed, skipped, group_state,
      (SELECT count(*) FROM dep WHERE downstream_id = p_child AND state <> 'satisfied')
    INTO v_variant, v_on, v_gk, v_n, v_sc, v_fc, v_kc, v_state, v_open;
  END IF;
  v_k := CASE v_variant WHEN 'all_of' THEN v_n WHEN 'any_of' THEN 1 ELSE greatest(v_gk, 1) END;
  IF v_state = 'pending' AND v_sc >= v_k AND v_open = 0 THEN
    UPDATE edge_group SET group_state = 'satisfied', satisfied_at = p_now WHERE downstream_id = p_child;
    IF c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'blocked_by_dependencies' THEN
      WITH u AS (
        UPDATE exec_core SET eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
          blocking_detail = '', public_state = 'waiting',
          attempt_state = CASE WHEN attempt_state = 'none' THEN 'pending_first_attempt' ELSE attempt_state END,
          last_transition_at = p_now, last_mutation_at = p_now
        WHERE execution_id = p_child
        RETURNING execution_id, lane_id, priority, created_at, required_caps
      )
      INSERT INTO ready (execution_id, lane_id, priority, created_at, required_caps)
      SELECT execution_id, lane_id, priority, created_at, required_caps FROM u
      ON CONFLICT (execution_id) DO NOTHING;
    ELSE
      UPDATE exec_core SET last_mutation_at = p_now WHERE execution_id = p_child;
    END IF;
    IF v_variant <> 'all_of' AND v_on = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, p_now);
    END IF;
    RETURN 'satisfied';
  END IF;
  UPDATE exec_core SET last_mutation_at = p_now WHERE execution_id = p_child;
  IF v_state <> 'pending' THEN RETURN 'already_fired'; END IF;
  IF v_fc + v_kc > v_n - v_k THEN
    UPDATE edge_group SET group_state = 'impossible', satisfied_at = p_now WHERE downstream_id = p_child;
    IF c.lifecycle_phase <> 'terminal' THEN
      PERFORM ffi_terminate(p_child, 'skipped', 'ended_cancelled', 'dependency_impossible', 'dependency_impossible',
                            NULL, NULL, 'dependency_impossible', 'dependency_impossible', p_now, false);
    END IF;
    IF v_variant <> 'all_of' AND v_on = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, p_now);
    END IF;
    RETURN CASE WHEN c.lifecycle_phase <> 'terminal' THEN 'child_skipped' ELSE 'impossible' END;
  END IF;
  RETURN 'pending';
END $$;

CREATE OR REPLACE FUNCTION ffi_resolve_from(p_eid text, p_outcome text, p_now bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_ids text[] := ARRAY[p_eid];
  v_outcomes text[] := ARRAY[p_outcome];
  v_i int := 1;
  v_budget int := 1000;
  v_done int := 0;
  v_res text;
  d record;
BEGIN
  WHILE v_i <= cardinality(v_ids) LOOP
    IF v_budget <= 0 THEN
      INSERT INTO dep_pending (execution_id, outcome, enqueued_at)
      SELECT v_ids[i], v_outcomes[i], p_now FROM generate_subscripts(v_ids, 1) AS i WHERE i >= v_i
      ON CONFLICT (execution_id) DO NOTHING;
      RETURN v_done;
    END IF;
    FOR d IN
      SELECT downstream_id, edge_id FROM dep WHERE upstream_id = v_ids[v_i] AND state = 'unsatisfied'
      ORDER BY downstream_id, edge_id LIMIT v_budget
    LOOP
      v_budget := v_budget - 1;
      v_done := v_done + 1;
      v_res := ffi_resolve_edge(d.downstream_id, d.edge_id, v_ids[v_i], v_outcomes[v_i], p_now);
      IF v_res = 'child_skipped' THEN
        v_ids := v_ids || d.downstream_id;
        v_outcomes := v_outcomes || 'skipped'::text;
      END IF;
    END LOOP;
    IF v_budget > 0 THEN
      v_i := v_i + 1;
    ELSIF NOT EXISTS (SELECT 1 FROM dep WHERE upstream_id = v_ids[v_i] AND state = 'unsatisfied') THEN
      v_i := v_i + 1;
    END IF;
  END LOOP;
  RETURN v_done;
END $$;

CREATE OR REPLACE FUNCTION ff_complete(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_payload bytea, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  v_err jsonb;
  v_flow_state text;
  v_nodes int;
  v_live int;
  v_failed int;
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
  IF e.has_grant OR e.current_suspension_id IS NOT NULL
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
  IF e.flow_id IS NOT NULL THEN
    -- the flow steps of ffi_after_terminal (P4) for a success
    PERFORM ffi_resolve_from(p_eid, 'success', v_now);
    UPDATE flow_core SET live_members = greatest(live_members - 1, 0)
    WHERE flow_id = e.flow_id
    RETURNING public_flow_state, node_count, live_members, failed_members
    INTO v_flow_state, v_nodes, v_live, v_failed;
    IF NOT FOUND OR v_flow_state = 'cancelling' THEN
      DELETE FROM cancel_owed WHERE flow_id = e.flow_id AND execution_id = p_eid;
      PERFORM ffi_flow_settle(e.flow_id, v_now);
    ELSIF v_flow_state = 'open' AND v_nodes > 0 AND v_live = 0 THEN
      -- ffi_flow_settle of an open flow whose last member ended (the row is locked by the update)
      UPDATE flow_core SET public_flow_state = CASE WHEN v_failed > 0 THEN 'failed' ELSE 'completed' END,
        last_mutation_at = v_now
      WHERE flow_id = e.flow_id;
    END IF;
  END IF;
  RETURN ffi_ok();
END $$;
`
