/**
 * Migration 0011: `ffi_resolve_edge` in fewer statements — the hot path of
 * every flow member's completion. Same results: the dependency is claimed by
 * its own guarded UPDATE, the child's row (locked first) is not read again,
 * the edge group's counters are bumped by one UPDATE (inserted only when it
 * is missing), the open dependencies are counted only for all-of, and the
 * child's `last_mutation_at` rides on the update that unblocks it.
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_resolve_edge(p_child text, p_edge uuid, p_upstream text, p_outcome text, p_now bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c exec_core;
  d dep;
  g edge_group;
  v_success boolean := p_outcome = 'success';
  v_succeeded int := CASE WHEN p_outcome = 'success' THEN 1 ELSE 0 END;
  v_skipped int := CASE WHEN p_outcome = 'skipped' THEN 1 ELSE 0 END;
  v_failed int := CASE WHEN p_outcome NOT IN ('success', 'skipped') THEN 1 ELSE 0 END;
  v_ref text;
  v_k int;
  v_open int := 0;
BEGIN
  SELECT * INTO c FROM exec_core WHERE execution_id = p_child FOR UPDATE;
  IF NOT FOUND THEN RETURN 'missing'; END IF;
  UPDATE dep SET state = CASE WHEN v_success THEN 'satisfied' ELSE 'impossible' END, last_resolved_at = p_now
  WHERE downstream_id = p_child AND edge_id = p_edge AND state = 'unsatisfied'
  RETURNING * INTO d;
  IF NOT FOUND THEN RETURN 'already_resolved'; END IF;
  IF v_success AND c.lifecycle_phase <> 'terminal' THEN
    SELECT coalesce(nullif(x.data_passing_ref, ''), nullif(d.data_passing_ref, '')) INTO v_ref
    FROM flow_edge x WHERE x.flow_id = d.flow_id AND x.edge_id = p_edge;
    IF v_ref IS NOT NULL THEN
      UPDATE exec_data cd SET payload = u.result FROM exec_data u
      WHERE cd.execution_id = p_child AND u.execution_id = p_upstream AND u.result IS NOT NULL;
    END IF;
  END IF;
  UPDATE edge_group SET succeeded = succeeded + v_succeeded, skipped = skipped + v_skipped, failed = failed + v_failed
  WHERE downstream_id = p_child RETURNING * INTO g;
  IF NOT FOUND THEN
    INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at, succeeded, skipped, failed)
    VALUES (p_child, d.flow_id, 'all_of', (SELECT count(*) FROM dep WHERE downstream_id = p_child), p_now,
            v_succeeded, v_skipped, v_failed)
    RETURNING * INTO g;
  END IF;
  v_k := CASE g.policy_variant WHEN 'all_of' THEN g.n WHEN 'any_of' THEN 1 ELSE greatest(g.k, 1) END;
  IF g.group_state = 'pending' AND g.policy_variant = 'all_of' THEN
    SELECT count(*) INTO v_open FROM dep WHERE downstream_id = p_child AND state <> 'satisfied';
  END IF;
  IF g.group_state = 'pending' AND g.succeeded >= v_k AND v_open = 0 THEN
    UPDATE edge_group SET group_state = 'satisfied', satisfied_at = p_now WHERE downstream_id = p_child;
    IF c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'blocked_by_dependencies' THEN
      UPDATE exec_core SET eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
        blocking_detail = '', public_state = 'waiting',
        attempt_state = CASE WHEN attempt_state = 'none' THEN 'pending_first_attempt' ELSE attempt_state END,
        last_transition_at = p_now, last_mutation_at = p_now
      WHERE execution_id = p_child;
      PERFORM ffi_ready_add(p_child);
    ELSE
      UPDATE exec_core SET last_mutation_at = p_now WHERE execution_id = p_child;
    END IF;
    IF g.policy_variant <> 'all_of' AND g.on_satisfied = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, p_now);
    END IF;
    RETURN 'satisfied';
  END IF;
  UPDATE exec_core SET last_mutation_at = p_now WHERE execution_id = p_child;
  IF g.group_state <> 'pending' THEN RETURN 'already_fired'; END IF;
  IF g.failed + g.skipped > g.n - v_k THEN
    UPDATE edge_group SET group_state = 'impossible', satisfied_at = p_now WHERE downstream_id = p_child;
    IF c.lifecycle_phase <> 'terminal' THEN
      PERFORM ffi_terminate(p_child, 'skipped', 'ended_cancelled', 'dependency_impossible', 'dependency_impossible',
                            NULL, NULL, 'dependency_impossible', 'dependency_impossible', p_now, false);
    END IF;
    IF g.policy_variant <> 'all_of' AND g.on_satisfied = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, p_now);
    END IF;
    RETURN CASE WHEN c.lifecycle_phase <> 'terminal' THEN 'child_skipped' ELSE 'impossible' END;
  END IF;
  RETURN 'pending';
END $$;
`
