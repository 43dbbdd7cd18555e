/**
 * Migration 0010: `ff_create_flow_graph`, a whole flow in one transaction:
 * the flow and its members through `ff_create_flow` / `ff_create_executions`,
 * the joins through `ff_set_edge_group_policy`, and membership and edges
 * written set-based with the same rows the single-step functions leave. A
 * flow that exists already is a replay and writes nothing; a step that
 * refuses rolls everything back (`ffi_raise`).
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_graph_step(p_reply jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE v_d text[];
BEGIN
  IF p_reply ? 'err' THEN
    v_d := ARRAY(SELECT jsonb_array_elements_text(coalesce(p_reply->'d', '[]'::jsonb)));
    PERFORM ffi_raise(p_reply->>'err', VARIADIC v_d);
  END IF;
  RETURN p_reply->'ok';
END $$;

CREATE OR REPLACE FUNCTION ff_create_flow_graph(
  p_flow uuid, p_part int, p_kind text, p_ns text, p_members jsonb, p_edges jsonb, p_joins jsonb, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_ids text[] := ARRAY(SELECT m->>'executionId' FROM jsonb_array_elements(p_members) AS t(m));
  v_edges int := jsonb_array_length(p_edges);
  v_id text;
  v_ok jsonb;
  v_rev bigint;
  x jsonb;
BEGIN
  IF EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
  END IF;
  SELECT execution_id INTO v_id FROM exec_core WHERE execution_id = ANY (v_ids) LIMIT 1;
  IF v_id IS NOT NULL THEN
    RETURN ffi_err('invalid_input', 'create_flow_graph: member ' || v_id || ' already exists');
  END IF;
  PERFORM ffi_graph_step(ff_create_flow(p_flow, p_part, p_kind, p_ns, v_now));
  v_ok := ffi_graph_step(ff_create_executions(p_members, v_now));
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_ok) AS t(r) WHERE r->>'_tag' <> 'Created') THEN
    PERFORM ffi_raise('invalid_input', 'create_flow_graph: a member was created concurrently');
  END IF;
  -- ff_add_execution_to_flow for every member, at once (all new, none terminal)
  UPDATE exec_core SET flow_id = p_flow, last_mutation_at = v_now WHERE execution_id = ANY (v_ids);
  UPDATE flow_core SET node_count = node_count + cardinality(v_ids), graph_revision = graph_revision + cardinality(v_ids),
    live_members = live_members + cardinality(v_ids), last_mutation_at = v_now
  WHERE flow_id = p_flow;
  FOR x IN SELECT value FROM jsonb_array_elements(p_joins) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    PERFORM ffi_graph_step(ff_set_edge_group_policy(p_flow, x->>'downstream', x->>'variant', x->>'onSatisfied',
                                                    (x->>'k')::int, v_now));
  END LOOP;
  -- ff_stage_dependency_edge + ff_apply_dependency_to_child for every edge, at once: the graph is new,
  -- acyclic and between members (checked by the layer), so no staging check can refuse; each child
  -- ends as the last apply leaves it (blocked, its detail naming its dependency count and last edge)
  IF v_edges > 0 THEN
    WITH e AS (
      SELECT (t.x->>'edgeId')::uuid AS edge_id, t.x->>'upstream' AS up, t.x->>'downstream' AS down,
        t.x->>'kind' AS kind, t.x->>'dataRef' AS ref, t.ord
      FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(x, ord)
    ), edges AS (
      INSERT INTO flow_edge (flow_id, edge_id, upstream_id, downstream_id, dependency_kind, satisfaction_condition,
        data_passing_ref, edge_state, created_at, created_by)
      SELECT p_flow, edge_id, up, down, kind, 'all_required', ref, 'pending', v_now, 'engine' FROM e
    ), deps AS (
      INSERT INTO dep (downstream_id, edge_id, flow_id, upstream_id, dependency_kind, data_passing_ref, state, created_at)
      SELECT down, edge_id, p_flow, up, kind, ref, 'unsatisfied', v_now FROM e
    ), children AS (
      SELECT down, count(*) AS n, (array_agg(edge_id ORDER BY ord DESC))[1] AS last_edge FROM e GROUP BY down
    ), groups AS (
      INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
      SELECT down, p_flow, 'all_of', n, v_now FROM children
      ON CONFLICT (downstream_id) DO UPDATE SET n = edge_group.n + EXCLUDED.n
    ), blocked AS (
      UPDATE exec_core c SET eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
        blocking_detail = ch.n || ' dep(s) unresolved incl ' || ch.last_edge, public_state = 'waiting_children',
        last_transition_at = v_now, last_mutation_at = v_now
      FROM children ch WHERE c.execution_id = ch.down AND c.lifecycle_phase = 'runnable'
      RETURNING c.execution_id
    )
    DELETE FROM ready WHERE execution_id IN (SELECT execution_id FROM blocked);
    UPDATE flow_core SET graph_revision = graph_revision + v_edges, edge_count = edge_count + v_edges,
      last_mutation_at = v_now
    WHERE flow_id = p_flow;
  END IF;
  SELECT graph_revision INTO v_rev FROM flow_core WHERE flow_id = p_flow;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow, 'graphRevision', v_rev));
END $$;
`
