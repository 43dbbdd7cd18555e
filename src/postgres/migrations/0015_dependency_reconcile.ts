/**
 * Migration 0015: dependency resolution as the reference design has it (model.md §10.3, valkey.md
 * `ff_resolve_dependency` / dependency_reconciler), the same on every backend:
 * - inline (P4), a terminal upstream resolves its outgoing *staged* edges: a dependency applied for
 *   an edge that was never staged (operations.md §8.5 does not verify it) is not resolved there;
 * - the dependency pass (the safety net) resolves, for each flow member still blocked by
 *   dependencies, every unresolved dependency whose upstream is terminal, by its dependency record
 *   (staged or not); members that are not blocked (active, terminal) are left alone. It counts one
 *   per dependency resolved.
 */
export const sql = String.raw`
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
      SELECT dp.downstream_id, dp.edge_id FROM dep dp
      WHERE dp.upstream_id = v_ids[v_i] AND dp.state = 'unsatisfied'
        AND EXISTS (SELECT 1 FROM flow_edge x WHERE x.flow_id = dp.flow_id AND x.edge_id = dp.edge_id)
      ORDER BY dp.downstream_id, dp.edge_id LIMIT v_budget
    LOOP
      v_budget := v_budget - 1;
      v_done := v_done + 1;
      v_res := ffi_resolve_edge(d.downstream_id, d.edge_id, v_ids[v_i], v_outcomes[v_i], p_now);
      IF v_res = 'child_skipped' THEN
        v_ids := v_ids || d.downstream_id;
        v_outcomes := v_outcomes || 'skipped'::text;
      END IF;
    END LOOP;
    -- the "more edges left?" probe only when the budget ran out (as 0012 has it)
    IF v_budget > 0 THEN
      v_i := v_i + 1;
    ELSIF NOT EXISTS (
      SELECT 1 FROM dep dp WHERE dp.upstream_id = v_ids[v_i] AND dp.state = 'unsatisfied'
        AND EXISTS (SELECT 1 FROM flow_edge x WHERE x.flow_id = dp.flow_id AND x.edge_id = dp.edge_id)
    ) THEN
      v_i := v_i + 1;
    END IF;
  END LOOP;
  RETURN v_done;
END $$;

CREATE OR REPLACE FUNCTION ff_pass_dependencies(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
    SELECT DISTINCT dp.downstream_id FROM dep dp
    JOIN exec_core u ON u.execution_id = dp.upstream_id
    JOIN exec_core c ON c.execution_id = dp.downstream_id
    WHERE dp.state = 'unsatisfied' AND u.lifecycle_phase = 'terminal' AND u.terminal_outcome <> 'none'
      AND c.flow_id IS NOT NULL AND c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'blocked_by_dependencies'
    ORDER BY dp.downstream_id
  LOOP
    -- still blocked (an earlier cascade of this pass may have moved it)
    PERFORM 1 FROM exec_core
    WHERE execution_id = ch.downstream_id AND lifecycle_phase = 'runnable' AND eligibility_state = 'blocked_by_dependencies';
    IF NOT FOUND THEN CONTINUE; END IF;
    FOR d IN
      SELECT dp.edge_id, dp.upstream_id, u.terminal_outcome FROM dep dp
      JOIN exec_core u ON u.execution_id = dp.upstream_id
      WHERE dp.downstream_id = ch.downstream_id AND dp.state = 'unsatisfied'
        AND u.lifecycle_phase = 'terminal' AND u.terminal_outcome <> 'none'
      ORDER BY dp.edge_id
    LOOP
      IF v_done >= p_batch THEN v_more := true; EXIT children; END IF;
      v_res := ffi_resolve_edge(ch.downstream_id, d.edge_id, d.upstream_id, d.terminal_outcome, v_now);
      IF v_res NOT IN ('already_resolved', 'missing') THEN v_done := v_done + 1; END IF;
      IF v_res = 'child_skipped' THEN PERFORM ffi_resolve_from(ch.downstream_id, 'skipped', v_now); END IF;
    END LOOP;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;
`
