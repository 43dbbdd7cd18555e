/**
 * Migration 0013: `ff_create_flow_graph` writes each member in its final
 * state. A graph whose members need no idempotency key, delay or deadline
 * (the set-based case of `ff_create_executions`) inserts its members with
 * their flow and, for a child, blocked on its dependencies — the rows the
 * insert, the membership update and the blocking update of 0010 left, in one
 * write — and queues only the members without incoming edges (0010 queued
 * every member and dequeued the children again). The flow row is updated
 * once. Every other graph takes the 0010 path, unchanged
 * (`ffi_create_flow_graph_general`).
 *
 * The function plans its statements once per session (`plan_cache_mode =
 * force_generic_plan`; they read JSON, not tables, apart from key lookups):
 * the member statement cost ~0.7 ms to plan, and a connection planned it for
 * each of its first five graphs. `enable_seqscan = off` keeps the key lookups
 * on their indexes in a plan made while the tables were still small.
 */
export const sql = String.raw`
-- The 0010 ff_create_flow_graph, for the graphs the set-based path does not take.
CREATE OR REPLACE FUNCTION ffi_create_flow_graph_general(
  p_flow uuid, p_part int, p_kind text, p_ns text, p_members jsonb, p_edges jsonb, p_joins jsonb, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
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

CREATE OR REPLACE FUNCTION ff_create_flow_graph(
  p_flow uuid, p_part int, p_kind text, p_ns text, p_members jsonb, p_edges jsonb, p_joins jsonb, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_ids text[];
  v_edges int;
  v_id text;
  v_created int;
  v_rev bigint;
  x jsonb;
BEGIN
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(p_members) AS t(item)
             WHERE coalesce(item->>'idempotencyKey', '') <> '' OR item->>'delayUntil' IS NOT NULL
                OR item->>'executionDeadlineAt' IS NOT NULL) THEN
    RETURN ffi_create_flow_graph_general(p_flow, p_part, p_kind, p_ns, p_members, p_edges, p_joins, v_now);
  END IF;
  IF EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
  END IF;
  v_ids := ARRAY(SELECT m->>'executionId' FROM jsonb_array_elements(p_members) AS t(m));
  SELECT execution_id INTO v_id FROM exec_core WHERE execution_id = ANY (v_ids) LIMIT 1;
  IF v_id IS NOT NULL THEN
    RETURN ffi_err('invalid_input', 'create_flow_graph: member ' || v_id || ' already exists');
  END IF;
  v_edges := jsonb_array_length(p_edges);
  PERFORM ffi_graph_step(ff_create_flow(p_flow, p_part, p_kind, p_ns, v_now));
  -- ff_create_executions (set-based) + ff_add_execution_to_flow for every member + the blocking of
  -- ff_apply_dependency_to_child for every child (its detail naming its dependency count and last edge)
  WITH items AS MATERIALIZED (
    SELECT t.ord, t.item->>'executionId' AS eid, (t.item->>'partition')::int AS part, t.item->>'namespace' AS ns,
      t.item->>'laneId' AS lane, t.item->>'executionKind' AS kind, decode(t.item->>'payload', 'base64') AS payload,
      t.item->>'payloadEncoding' AS enc, (t.item->>'priority')::int AS prio, t.item->>'creatorIdentity' AS creator,
      t.item->'tags' AS tags, t.item->'policy' AS policy,
      ARRAY(SELECT jsonb_array_elements_text(t.item->'requiredCapabilities')) AS caps,
      (t.item->>'attemptTimeoutMs')::bigint AS ato, (t.item->>'maxReclaimCount')::int AS mrc,
      (t.item->>'maxReplayCount')::int AS mrp
    FROM jsonb_array_elements(p_members) WITH ORDINALITY AS t(item, ord)
  ), children AS MATERIALIZED (
    SELECT t.x->>'downstream' AS down, count(*) AS n,
      (array_agg((t.x->>'edgeId')::uuid ORDER BY t.ord DESC))[1] AS last_edge
    FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(x, ord)
    GROUP BY t.x->>'downstream'
  ), ins AS (
    INSERT INTO exec_core (execution_id, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
      lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
      attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms, delay_until,
      execution_deadline_at, created_at, last_transition_at, last_mutation_at, flow_id)
    SELECT i.eid, i.part, i.lane, i.ns, i.kind, i.prio, i.caps, 'runnable', 'unowned',
      CASE WHEN ch.down IS NULL THEN 'eligible_now' ELSE 'blocked_by_dependencies' END,
      CASE WHEN ch.down IS NULL THEN 'waiting_for_worker' ELSE 'waiting_for_children' END,
      CASE WHEN ch.down IS NULL THEN '' ELSE ch.n || ' dep(s) unresolved incl ' || ch.last_edge END,
      'none', 'pending_first_attempt',
      CASE WHEN ch.down IS NULL THEN 'waiting' ELSE 'waiting_children' END,
      i.mrc, i.mrp, i.ato, NULL, NULL, v_now, v_now, v_now, p_flow
    FROM items i LEFT JOIN children ch ON ch.down = i.eid ORDER BY i.ord
    ON CONFLICT (execution_id) DO NOTHING
    RETURNING execution_id, eligibility_state
  ), created AS (
    -- the first item of each id this statement inserted (a repeated id is refused below)
    SELECT DISTINCT ON (i.eid) i.*, ins.eligibility_state AS elig FROM items i JOIN ins ON ins.execution_id = i.eid
    ORDER BY i.eid, i.ord
  ), data AS (
    INSERT INTO exec_data (execution_id, payload, payload_encoding, policy, tags, creator_identity, idempotency_key)
    SELECT eid, payload, enc, policy, tags, creator, NULL FROM created
  ), queued AS (
    INSERT INTO ready (execution_id, lane_id, priority, created_at, required_caps)
    SELECT eid, lane, prio, v_now, caps FROM created WHERE elig = 'eligible_now' ORDER BY ord
  ), lanes AS (
    INSERT INTO lane_registry (lane_id, registered_at) SELECT DISTINCT lane, v_now FROM created
    ON CONFLICT (lane_id) DO NOTHING
  )
  SELECT count(*) INTO v_created FROM created;
  IF v_created <> jsonb_array_length(p_members) THEN
    PERFORM ffi_raise('invalid_input', 'create_flow_graph: a member was created concurrently');
  END IF;
  FOR x IN SELECT value FROM jsonb_array_elements(p_joins) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    PERFORM ffi_graph_step(ff_set_edge_group_policy(p_flow, x->>'downstream', x->>'variant', x->>'onSatisfied',
                                                    (x->>'k')::int, v_now));
  END LOOP;
  -- ff_stage_dependency_edge + ff_apply_dependency_to_child for every edge, at once (see 0010)
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
    )
    INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
    SELECT down, p_flow, 'all_of', count(*), v_now FROM e GROUP BY down
    ON CONFLICT (downstream_id) DO UPDATE SET n = edge_group.n + EXCLUDED.n;
  END IF;
  UPDATE flow_core SET node_count = node_count + cardinality(v_ids),
    graph_revision = graph_revision + cardinality(v_ids) + v_edges, live_members = live_members + cardinality(v_ids),
    edge_count = edge_count + v_edges, last_mutation_at = v_now
  WHERE flow_id = p_flow
  RETURNING graph_revision INTO v_rev;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow, 'graphRevision', v_rev));
END $$;
`
