/**
 * Migration 0010: `ff_create_flow_graph`, a whole flow in one transaction —
 * the flow, its members (as `ff_create_executions`), their membership, the
 * joins, and each edge staged and applied — through the single-step
 * functions, in that order. A flow that exists already is a replay and
 * writes nothing; a step that refuses rolls everything back (`ffi_raise`).
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
  v_rev bigint;
  v_id text;
  v_ok jsonb;
  x jsonb;
BEGIN
  IF EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
  END IF;
  SELECT m->>'executionId' INTO v_id FROM jsonb_array_elements(p_members) AS t(m)
  WHERE EXISTS (SELECT 1 FROM exec_core WHERE execution_id = m->>'executionId') LIMIT 1;
  IF v_id IS NOT NULL THEN
    RETURN ffi_err('invalid_input', 'create_flow_graph: member ' || v_id || ' already exists');
  END IF;
  PERFORM ffi_graph_step(ff_create_flow(p_flow, p_part, p_kind, p_ns, v_now));
  v_ok := ffi_graph_step(ff_create_executions(p_members, v_now));
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(v_ok) AS t(r) WHERE r->>'_tag' <> 'Created') THEN
    PERFORM ffi_raise('invalid_input', 'create_flow_graph: a member was created concurrently');
  END IF;
  FOR x IN SELECT value FROM jsonb_array_elements(p_members) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    PERFORM ffi_graph_step(ff_add_execution_to_flow(p_flow, x->>'executionId', v_now));
  END LOOP;
  FOR x IN SELECT value FROM jsonb_array_elements(p_joins) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    PERFORM ffi_graph_step(ff_set_edge_group_policy(p_flow, x->>'downstream', x->>'variant', x->>'onSatisfied',
                                                    (x->>'k')::int, v_now));
  END LOOP;
  SELECT graph_revision INTO v_rev FROM flow_core WHERE flow_id = p_flow;
  FOR x IN SELECT value FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    v_ok := ffi_graph_step(ff_stage_dependency_edge(p_flow, (x->>'edgeId')::uuid, x->>'upstream', x->>'downstream',
                                                   x->>'kind', x->>'dataRef', v_rev, NULL, v_now));
    v_rev := (v_ok->>'newGraphRevision')::bigint;
    PERFORM ffi_graph_step(ff_apply_dependency_to_child(p_flow, (x->>'edgeId')::uuid, x->>'downstream',
                                                        x->>'upstream', x->>'kind', x->>'dataRef', v_now));
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow, 'graphRevision', v_rev));
END $$;
`
