-- ===========================================================================
-- flows.sql: flows and their dependency graph — create_flow(_graph),
-- add_execution_to_flow, join policies, staging and applying edges, and the
-- resolution of a terminal member's outgoing edges (their cancellation:
-- flow_cancel.sql).
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- create_flow, create_flow_graph, add_execution_to_flow, set_edge_group_policy
-- ---------------------------------------------------------------------------

-- ffi_flow_state: the public state of a flow (docs/guide.md, "Flows that grow while they run"):
-- cancelling / cancelled as stored; else open without members (completed when sealed), running
-- while a member is not terminal, then failed when a member failed, was cancelled or expired,
-- else completed. (A record stored completed / failed by an older library reads as open.)
--   args:   f (a flow_core row)
--   reply:  text
--   errors: -
CREATE FUNCTION ffi_flow_state(f flow_core) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN f.public_flow_state IN ('cancelling', 'cancelled') THEN f.public_flow_state
    WHEN f.node_count = 0 THEN CASE WHEN f.sealed THEN 'completed' ELSE 'open' END
    WHEN f.live_members > 0 THEN 'running'
    WHEN f.failed_members > 0 THEN 'failed'
    ELSE 'completed' END $$;

-- ffi_flow_refusal: why a flow takes no new member or edge: flow_already_terminal (cancelling or
-- cancelled), flow_sealed, or NULL.
--   args:   f (a flow_core row)
--   reply:  text (an error code) or NULL
--   errors: -
CREATE FUNCTION ffi_flow_refusal(f flow_core) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE
    WHEN f.public_flow_state IN ('cancelling', 'cancelled') THEN 'flow_already_terminal'
    WHEN f.sealed THEN 'flow_sealed' END $$;

-- ffi_flow_final: cancelled, cancelling, or sealed with every member terminal: nothing about the
-- flow can change (cancelFlow refuses it).
--   args:   f (a flow_core row)
--   reply:  boolean
--   errors: -
CREATE FUNCTION ffi_flow_final(f flow_core) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT f.public_flow_state IN ('cancelling', 'cancelled')
    OR (f.sealed AND ffi_flow_state(f) IN ('completed', 'failed')) $$;

-- ff_create_flow: createFlow — an open flow (sealed when asked); an existing id answers
-- AlreadySatisfied.
--   args:   p_flow, p_partition, p_kind, p_namespace, p_sealed, p_now
--   reply:  {"ok": Model.CreateFlowResult}
--   errors: -
CREATE FUNCTION ff_create_flow(p_flow uuid, p_partition int, p_kind text, p_namespace text, p_sealed boolean, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO flow_core (flow_id, partition_key, flow_kind, namespace, public_flow_state, sealed, created_at,
    last_mutation_at)
  VALUES (p_flow, p_partition, p_kind, p_namespace, 'open', coalesce(p_sealed, false), v_now, v_now)
  ON CONFLICT (flow_id) DO NOTHING;
  IF FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow)); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
END $$;

-- ffi_graph_step: a step of create_flow_graph: the ok value of an entry point's reply, or its
-- error raised (the whole graph rolls back).
--   args:   p_reply (an entry point's reply)
--   reply:  the ok value
--   errors: the step's error code, raised
CREATE FUNCTION ffi_graph_step(p_reply jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE v_d text[];
BEGIN
  IF p_reply ? 'err' THEN
    v_d := ARRAY(SELECT jsonb_array_elements_text(coalesce(p_reply->'d', '[]'::jsonb)));
    PERFORM ffi_raise(p_reply->>'err', VARIADIC v_d);
  END IF;
  RETURN p_reply->'ok';
END $$;

-- ff_create_flow_graph: createFlowGraph — a flow with its members, join policies and edges in
-- one transaction, as createFlow, createExecutions, addExecutionToFlow, setEdgeGroupPolicy,
-- stageDependencyEdge and applyDependencyToChild would leave them. The layer has checked that
-- the graph is acyclic and its edges between members. Members without idempotency keys, delays
-- or deadlines are inserted set-based (one statement per table, planned once per session);
-- other graphs take ffi_create_flow_graph_general.
--   args:   p_flow, p_part, p_kind, p_ns, p_members (createItem objects, payloads in base64),
--           p_edges ([{edgeId, upstream, downstream, kind, dataRef}]), p_joins ([{downstream,
--           variant, onSatisfied, k}]), p_sealed, p_now
--   reply:  {"ok": Model.CreateFlowGraphResult} (Created with graphRevision, or AlreadySatisfied
--           when the flow exists)
--   errors: invalid_input (a member exists already, or was created concurrently: raised), and
--           those of ff_set_edge_group_policy, raised
CREATE FUNCTION ff_create_flow_graph(
  p_flow uuid, p_part int, p_kind text, p_ns text, p_members jsonb, p_edges jsonb, p_joins jsonb, p_sealed boolean,
  p_now bigint
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
    RETURN ffi_create_flow_graph_general(p_flow, p_part, p_kind, p_ns, p_members, p_edges, p_joins, p_sealed, v_now);
  END IF;
  IF EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
  END IF;
  v_ids := ARRAY(SELECT m->>'executionId' FROM jsonb_array_elements(p_members) AS t(m));
  SELECT x.id INTO v_id FROM unnest(v_ids) AS x(id)
  WHERE EXISTS (SELECT 1 FROM exec_core ec WHERE ec.partition_key = ffi_eid_part(x.id) AND ec.e_uuid = ffi_eid_uuid(x.id) OFFSET 0)
  LIMIT 1;
  IF v_id IS NOT NULL THEN
    RETURN ffi_err('invalid_input', 'create_flow_graph: member ' || v_id || ' already exists');
  END IF;
  v_edges := jsonb_array_length(p_edges);
  PERFORM ffi_graph_step(ff_create_flow(p_flow, p_part, p_kind, p_ns, p_sealed, v_now));
  -- ff_create_executions (set-based) + ff_add_execution_to_flow for every member + the blocking of
  -- ff_apply_dependency_to_child for every child (its detail naming its dependency count and last edge)
  WITH items AS MATERIALIZED (
    SELECT t.ord, t.item->>'executionId' AS eid, (t.item->>'partition')::int AS part, t.item->>'namespace' AS ns,
      t.item->>'laneId' AS lane, t.item->>'executionKind' AS kind, decode(t.item->>'payload', 'base64') AS payload,
      t.item->>'payloadEncoding' AS enc, (t.item->>'priority')::int AS prio, t.item->>'creatorIdentity' AS creator,
      t.item->'tags' AS tags, t.item->'policy' AS policy,
      nullif(ARRAY(SELECT jsonb_array_elements_text(t.item->'requiredCapabilities')), '{}') AS caps,
      (t.item->>'attemptTimeoutMs')::bigint AS ato, (t.item->>'maxReclaimCount')::int AS mrc,
      (t.item->>'maxReplayCount')::int AS mrp, t.item->>'traceContext' AS trace
    FROM jsonb_array_elements(p_members) WITH ORDINALITY AS t(item, ord)
  ), children AS MATERIALIZED (
    SELECT t.x->>'downstream' AS down, count(*) AS n,
      (array_agg((t.x->>'edgeId')::uuid ORDER BY t.ord DESC))[1] AS last_edge
    FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(x, ord)
    GROUP BY t.x->>'downstream'
  ), ins AS (
    INSERT INTO exec_core (e_uuid, partition_key, lane_id, namespace, execution_kind, priority, required_caps,
      lifecycle_phase, ownership_state, eligibility_state, blocking_reason, blocking_detail, terminal_outcome,
      attempt_state, public_state, max_reclaim_count, max_replay_count, attempt_timeout_ms, delay_until,
      execution_deadline_at, created_at, flow_id, payload_encoding, payload)
    -- the states typed (exec_state): an untyped literal of a SELECT list is text, converted per row
    SELECT ffi_eid_uuid(i.eid), i.part, i.lane, i.ns, i.kind, i.prio, i.caps, 'runnable'::exec_state, 'unowned'::exec_state,
      CASE WHEN ch.down IS NULL THEN 'eligible_now'::exec_state ELSE 'blocked_by_dependencies'::exec_state END,
      CASE WHEN ch.down IS NULL THEN 'waiting_for_worker'::exec_state ELSE 'waiting_for_children'::exec_state END,
      CASE WHEN ch.down IS NULL THEN NULL ELSE ch.n || ' dep(s) unresolved incl ' || ch.last_edge END,
      'none'::exec_state, 'pending_first_attempt'::exec_state,
      CASE WHEN ch.down IS NULL THEN 'waiting'::exec_state ELSE 'waiting_children'::exec_state END,
      -- as ffi_create_execution's (migration 0051)
      nullif(i.mrc, ffi_max_reclaims(NULL)), nullif(i.mrp, ffi_max_replays(NULL)), i.ato, NULL, NULL, v_now, p_flow,
      -- the input in the exec_core row, no exec_data row (migration 0050)
      CASE WHEN ffi_inline(i.payload, i.policy, i.tags, i.creator, NULL, i.trace) THEN i.enc END,
      CASE WHEN ffi_inline(i.payload, i.policy, i.tags, i.creator, NULL, i.trace) THEN i.payload END
    FROM items i LEFT JOIN children ch ON ch.down = i.eid ORDER BY i.ord
    ON CONFLICT (partition_key, e_uuid) DO NOTHING
    RETURNING ffi_eid(partition_key, e_uuid) AS execution_id, eligibility_state
  ), created AS (
    -- the first item of each id this statement inserted (a repeated id is refused below)
    SELECT DISTINCT ON (i.eid) i.*, ins.eligibility_state AS elig FROM items i JOIN ins ON ins.execution_id = i.eid
    ORDER BY i.eid, i.ord
  ), data AS (
    INSERT INTO exec_data (e_part, e_uuid, payload, payload_encoding, policy, tags, creator_identity, idempotency_key,
      trace_context)
    SELECT part, ffi_eid_uuid(eid), payload, enc, policy, tags, creator, NULL, trace FROM created
    WHERE NOT ffi_inline(payload, policy, tags, creator, NULL, trace)
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
  -- ff_stage_dependency_edge + ff_apply_dependency_to_child for every edge, at once (the children
  -- were created blocked above)
  IF v_edges > 0 THEN PERFORM ffi_add_new_edges(p_flow, p_edges, v_now); END IF;
  UPDATE flow_core SET node_count = node_count + cardinality(v_ids),
    graph_revision = graph_revision + cardinality(v_ids) + v_edges, live_members = live_members + cardinality(v_ids),
    edge_count = edge_count + v_edges, last_mutation_at = v_now
  WHERE flow_id = p_flow
  RETURNING graph_revision INTO v_rev;
  PERFORM ffi_wake_claimable_set(v_ids);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow, 'graphRevision', v_rev));
END $$;

-- ffi_add_new_edges: edges p_edges of a new graph (acyclic, between members, new ids: the layer
-- checked) recorded at once, as ff_stage_dependency_edge and the dependency side of
-- ff_apply_dependency_to_child would leave them: the edge, the child's dep row, the child's join
-- group counting it (all_of unless a policy was set). The children's blocking is the caller's.
--   args:   p_flow, p_edges ([{edgeId, upstream, downstream, kind, dataRef}]), p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_add_new_edges(p_flow uuid, p_edges jsonb, p_now bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  WITH e AS (
    SELECT (t.x->>'edgeId')::uuid AS edge_id, t.x->>'upstream' AS up, t.x->>'downstream' AS down,
      t.x->>'kind' AS kind, t.x->>'dataRef' AS ref
    FROM jsonb_array_elements(p_edges) AS t(x)
  ), edges AS (
    INSERT INTO flow_edge (flow_id, edge_id, upstream_id, downstream_id, dependency_kind, satisfaction_condition,
      data_passing_ref, edge_state, created_at, created_by)
    SELECT p_flow, edge_id, up, down, kind, 'all_required', ref, 'pending', p_now, 'engine' FROM e
  ), deps AS (
    INSERT INTO dep (downstream_id, edge_id, flow_id, upstream_id, dependency_kind, data_passing_ref, state, created_at)
    SELECT down, edge_id, p_flow, up, kind, ref, 'unsatisfied', p_now FROM e
  )
  INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
  SELECT down, p_flow, 'all_of', count(*), p_now FROM e GROUP BY down
  ON CONFLICT (downstream_id) DO UPDATE SET n = edge_group.n + EXCLUDED.n;
END $$;

-- ffi_add_new_members: members p_members, none of which exists yet (the caller checked), created
-- and made members of flow p_flow at once — as ff_create_executions, then ff_add_execution_to_flow
-- for each (all new, none terminal) — then the join policies p_joins set in order.
--   args:   p_flow, p_members (createItem objects), p_joins ([{downstream, variant, onSatisfied, k}]),
--           p_op (the calling operation, for the error), p_now
--   reply:  void
--   errors: raises invalid_input when a member was created concurrently, and what
--           ff_set_edge_group_policy refuses
CREATE FUNCTION ffi_add_new_members(p_flow uuid, p_members jsonb, p_joins jsonb, p_op text, p_now bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  v_ids text[] := ARRAY(SELECT m->>'executionId' FROM jsonb_array_elements(p_members) AS t(m));
  x jsonb;
BEGIN
  IF cardinality(v_ids) > 0 THEN
    IF EXISTS (SELECT 1 FROM jsonb_array_elements(ffi_graph_step(ff_create_executions(p_members, p_now))) AS t(r)
               WHERE r->>'_tag' <> 'Created') THEN
      PERFORM ffi_raise('invalid_input', p_op || ': a member was created concurrently');
    END IF;
    -- the rows this transaction created, by their row versions (a TID scan: a join by id could
    -- read the key whole on a plan made while exec_core was small)
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, flow_id = p_flow, last_mutation_at = p_now
    WHERE ctid = ANY (ARRAY(SELECT (SELECT c.ctid FROM exec_core c
                                    WHERE c.partition_key = ffi_eid_part(x.id) AND c.e_uuid = ffi_eid_uuid(x.id))
                            FROM unnest(v_ids) AS x(id)));
    UPDATE flow_core SET node_count = node_count + cardinality(v_ids), graph_revision = graph_revision + cardinality(v_ids),
      live_members = live_members + cardinality(v_ids), last_mutation_at = p_now
    WHERE flow_id = p_flow;
  END IF;
  FOR x IN SELECT value FROM jsonb_array_elements(p_joins) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
    PERFORM ffi_graph_step(ff_set_edge_group_policy(p_flow, x->>'downstream', x->>'variant', x->>'onSatisfied',
                                                    (x->>'k')::int, p_now));
  END LOOP;
END $$;

-- ffi_create_flow_graph_general: ff_create_flow_graph for the graphs the set-based path does
-- not take (a member with an idempotency key, a delay or a deadline): the members through
-- ff_create_executions, then membership, joins and edges set-based.
--   args:   those of ff_create_flow_graph
--   reply:  as ff_create_flow_graph
--   errors: as ff_create_flow_graph
CREATE FUNCTION ffi_create_flow_graph_general(
  p_flow uuid, p_part int, p_kind text, p_ns text, p_members jsonb, p_edges jsonb, p_joins jsonb, p_sealed boolean,
  p_now bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_ids text[] := ARRAY(SELECT m->>'executionId' FROM jsonb_array_elements(p_members) AS t(m));
  v_edges int := jsonb_array_length(p_edges);
  v_id text;
  v_rev bigint;
BEGIN
  IF EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
  END IF;
  SELECT x.id INTO v_id FROM unnest(v_ids) AS x(id)
  WHERE EXISTS (SELECT 1 FROM exec_core ec WHERE ec.partition_key = ffi_eid_part(x.id) AND ec.e_uuid = ffi_eid_uuid(x.id) OFFSET 0)
  LIMIT 1;
  IF v_id IS NOT NULL THEN
    RETURN ffi_err('invalid_input', 'create_flow_graph: member ' || v_id || ' already exists');
  END IF;
  PERFORM ffi_graph_step(ff_create_flow(p_flow, p_part, p_kind, p_ns, p_sealed, v_now));
  PERFORM ffi_add_new_members(p_flow, p_members, p_joins, 'create_flow_graph', v_now);
  -- ff_stage_dependency_edge + ff_apply_dependency_to_child for every edge, at once: the graph is new,
  -- acyclic and between members (checked by the layer), so no staging check can refuse; each child
  -- ends as the last apply leaves it (blocked, its detail naming its dependency count and last edge)
  IF v_edges > 0 THEN
    PERFORM ffi_add_new_edges(p_flow, p_edges, v_now);
    WITH children AS (
      SELECT t.x->>'downstream' AS down, count(*) AS n, (array_agg((t.x->>'edgeId')::uuid ORDER BY t.ord DESC))[1] AS last_edge
      FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(x, ord) GROUP BY 1
    )
    -- each child by its row version, found by key (a TID scan; created by this transaction)
    , tids AS MATERIALIZED (
      SELECT ch.*, (SELECT c.ctid FROM exec_core c
                    WHERE c.partition_key = ffi_eid_part(ch.down) AND c.e_uuid = ffi_eid_uuid(ch.down)) AS tid
      FROM children ch
    )
    UPDATE exec_core c SET event_k = greatest(ffi_xid(), c.event_k, c.created_k), created_k = NULL, eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
      blocking_detail = ch.n || ' dep(s) unresolved incl ' || ch.last_edge, public_state = 'waiting_children',
      last_mutation_at = v_now
    FROM tids ch WHERE c.ctid = ANY (ARRAY(SELECT tid FROM tids)) AND c.ctid = ch.tid
      AND c.lifecycle_phase = 'runnable';
    UPDATE flow_core SET graph_revision = graph_revision + v_edges, edge_count = edge_count + v_edges,
      last_mutation_at = v_now
    WHERE flow_id = p_flow;
  END IF;
  SELECT graph_revision INTO v_rev FROM flow_core WHERE flow_id = p_flow;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow, 'graphRevision', v_rev));
END $$;

-- ffi_flow_over: the refusal of a call that would take a flow of p_count members (or edges) past
-- its budget p_max (Limits.flowMembers / Limits.flowEdges, passed by the layer; NULL: none) by
-- adding p_adding, or NULL. A call that adds none is never refused: a flow past its budget (grown
-- before the budget existed) still takes it.
--   args:   p_op, p_count, p_adding, p_max, p_what ("flow members" | "flow edges"), p_limit (its name)
--   reply:  jsonb (the error reply) or NULL
--   errors: -
CREATE FUNCTION ffi_flow_over(p_op text, p_count bigint, p_adding bigint, p_max int, p_what text, p_limit text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT CASE WHEN p_max IS NOT NULL AND p_adding > 0 AND p_count + p_adding > p_max
    THEN ffi_err('limit_exceeded', p_op || ': ' || p_what || ': more than ' || p_max || ' entries (Limits.' || p_limit || ')')
  END
$$;

-- ff_add_execution_to_flow: addExecutionToFlow — makes an execution a member (a terminal one
-- counts as settled), once.
--   args:   p_flow, p_eid, p_members_max (Limits.flowMembers), p_now
--   reply:  {"ok": Model.AddExecutionToFlowResult} (Added, or AlreadyMember)
--   errors: flow_not_found, flow_already_terminal, flow_sealed, execution_not_found,
--           execution_already_in_flow (detail: the other flow), limit_exceeded (the flow has
--           p_members_max members: ffi_flow_over)
CREATE FUNCTION ff_add_execution_to_flow(p_flow uuid, p_eid text, p_members_max int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; f flow_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF f.flow_id IS NULL THEN RETURN ffi_err('flow_not_found'); END IF;
  IF ffi_flow_refusal(f) IS NOT NULL THEN RETURN ffi_err(ffi_flow_refusal(f)); END IF;
  IF e.e_uuid IS NULL THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.flow_id IS NOT NULL AND e.flow_id <> p_flow THEN
    RETURN ffi_err('execution_already_in_flow', e.flow_id::text);
  END IF;
  IF e.flow_id = p_flow THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyMember', 'executionId', p_eid, 'nodeCount', f.node_count));
  END IF;
  IF ffi_flow_over('add_execution_to_flow', f.node_count, 1, p_members_max, 'flow members', 'flowMembers') IS NOT NULL THEN
    RETURN ffi_flow_over('add_execution_to_flow', f.node_count, 1, p_members_max, 'flow members', 'flowMembers');
  END IF;
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, flow_id = p_flow, last_mutation_at = v_now WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  UPDATE flow_core SET node_count = node_count + 1, graph_revision = graph_revision + 1, last_mutation_at = v_now,
    live_members = live_members + CASE WHEN e.lifecycle_phase <> 'terminal' THEN 1 ELSE 0 END,
    failed_members = failed_members + CASE WHEN e.terminal_outcome IN ('failed', 'cancelled', 'expired') THEN 1 ELSE 0 END
  WHERE flow_id = p_flow RETURNING * INTO f;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Added', 'executionId', p_eid, 'newNodeCount', f.node_count));
END $$;

-- ffi_not_member: why execution c, not a member of the flow named, may not take a join group or a
-- dependency of it: it is another flow's member, or no flow's (docs/design/flows.md#applying-an-edge).
--   args:   c (the execution's exec_core row)
--   reply:  execution_already_in_flow or execution_not_in_flow (text)
--   errors: -
CREATE FUNCTION ffi_not_member(c exec_core) RETURNS text LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN c.flow_id IS NULL THEN 'execution_not_in_flow' ELSE 'execution_already_in_flow' END
$$;

-- ff_set_edge_group_policy: setEdgeGroupPolicy — the join policy of a child (all_of, any_of,
-- quorum k; on_satisfied), fixed once its first dependency is staged.
--   args:   p_flow, p_child, p_variant, p_on_satisfied, p_k, p_now
--   reply:  {"ok": Model.SetEdgeGroupPolicyResult} (Set, or AlreadySet)
--   errors: flow_not_found, execution_not_found, execution_already_in_flow (another flow's member),
--           execution_not_in_flow (no flow's), invalid_input (dependencies already staged)
CREATE FUNCTION ff_set_edge_group_policy(
  p_flow uuid, p_child text, p_variant text, p_on_satisfied text, p_k int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); g edge_group; c exec_core;
BEGIN
  SELECT * INTO c FROM exec_core WHERE partition_key = ffi_eid_part(p_child) AND e_uuid = ffi_eid_uuid(p_child) FOR UPDATE;
  IF NOT EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN RETURN ffi_err('flow_not_found'); END IF;
  IF c.e_uuid IS NULL THEN RETURN ffi_err('execution_not_found'); END IF;
  IF c.flow_id IS DISTINCT FROM p_flow THEN RETURN ffi_err(ffi_not_member(c)); END IF;
  SELECT * INTO g FROM edge_group WHERE downstream_id = p_child FOR UPDATE;
  IF FOUND THEN
    IF g.n > 0 THEN
      RETURN ffi_err('invalid_input', 'edge_group_policy_already_fixed: dependencies already staged');
    END IF;
    IF g.policy_variant = p_variant THEN RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySet')); END IF;
    UPDATE edge_group SET flow_id = p_flow, policy_variant = p_variant, on_satisfied = p_on_satisfied, k = p_k,
      group_state = 'pending', created_at = v_now
    WHERE downstream_id = p_child;
  ELSE
    INSERT INTO edge_group (downstream_id, flow_id, policy_variant, on_satisfied, k, created_at)
    VALUES (p_child, p_flow, p_variant, p_on_satisfied, p_k, v_now)
    ON CONFLICT (downstream_id) DO UPDATE SET policy_variant = EXCLUDED.policy_variant,
      on_satisfied = EXCLUDED.on_satisfied, k = EXCLUDED.k
      WHERE edge_group.n = 0;
  END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Set'));
END $$;

-- ---------------------------------------------------------------------------
-- stage_dependency_edge, apply_dependency_to_child
-- ---------------------------------------------------------------------------

-- ffi_edge_json: an edge as Model.EdgeSnapshot JSON.
--   args:   x (a flow_edge row)
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_edge_json(x flow_edge) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object('edgeId', x.edge_id, 'flowId', x.flow_id,
    'upstreamExecutionId', x.upstream_id, 'downstreamExecutionId', x.downstream_id,
    'dependencyKind', x.dependency_kind, 'satisfactionCondition', x.satisfaction_condition,
    'dataPassingRef', nullif(x.data_passing_ref, ''), 'edgeState', x.edge_state,
    'createdAt', x.created_at, 'createdBy', x.created_by)) $$;

-- ff_stage_dependency_edge: stageDependencyEdge — records an edge between two members at the
-- expected graph revision. A cycle is refused: the upstream must not be reachable from the
-- downstream (a walk of more than 1 000 nodes counts as a cycle).
--   args:   p_flow, p_edge, p_up, p_down, p_kind, p_data_ref, p_expected (graph revision),
--           p_created_at (the caller's clock, or NULL), p_edges_max (Limits.flowEdges), p_now
--   reply:  {"ok": Model.StageDependencyEdgeResult}
--   errors: flow_not_found, flow_already_terminal, flow_sealed, stale_graph_revision,
--           limit_exceeded (the flow has p_edges_max edges: ffi_flow_over), execution_not_in_flow,
--           cycle_detected, dependency_already_exists (detail: the stored edge as JSON)
CREATE FUNCTION ff_stage_dependency_edge(
  p_flow uuid, p_edge uuid, p_up text, p_down text, p_kind text, p_data_ref text, p_expected bigint,
  p_created_at bigint, p_edges_max int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  f flow_core;
  x flow_edge;
  v_cycle boolean;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF ffi_flow_refusal(f) IS NOT NULL THEN RETURN ffi_err(ffi_flow_refusal(f)); END IF;
  IF f.graph_revision <> p_expected THEN RETURN ffi_err('stale_graph_revision'); END IF;
  IF ffi_flow_over('stage_dependency_edge', f.edge_count, 1, p_edges_max, 'flow edges', 'flowEdges') IS NOT NULL THEN
    RETURN ffi_flow_over('stage_dependency_edge', f.edge_count, 1, p_edges_max, 'flow edges', 'flowEdges');
  END IF;
  IF (SELECT count(*) FROM unnest(ARRAY[p_up, p_down]) AS q(id) JOIN LATERAL (SELECT * FROM exec_core ec
      WHERE ec.partition_key = ffi_eid_part(q.id) AND ec.e_uuid = ffi_eid_uuid(q.id) OFFSET 0) ec ON true
      WHERE ec.flow_id = p_flow) < 2 THEN
    RETURN ffi_err('execution_not_in_flow');
  END IF;
  -- A cycle iff the upstream is reachable from the downstream; more than
  -- 1000 visited nodes counts as a cycle (conservative).
  WITH RECURSIVE walk(node, depth) AS (
    SELECT p_down::text COLLATE "C", 0
    UNION
    SELECT e.downstream_id, w.depth + 1 FROM walk w
    JOIN flow_edge e ON e.flow_id = p_flow AND e.upstream_id = w.node
    WHERE w.depth < 1001
  )
  SELECT bool_or(node = p_up) OR count(DISTINCT node) > 1000 INTO v_cycle FROM (SELECT node FROM walk LIMIT 1002) s;
  IF v_cycle THEN RETURN ffi_err('cycle_detected'); END IF;
  SELECT * INTO x FROM flow_edge WHERE flow_id = p_flow AND edge_id = p_edge;
  IF FOUND THEN RETURN ffi_err('dependency_already_exists', ffi_edge_json(x)::text); END IF;
  INSERT INTO flow_edge (flow_id, edge_id, upstream_id, downstream_id, dependency_kind, satisfaction_condition,
    data_passing_ref, edge_state, created_at, created_by)
  VALUES (p_flow, p_edge, p_up, p_down, p_kind, 'all_required', p_data_ref, 'pending',
          coalesce(p_created_at, v_now), 'engine');
  UPDATE flow_core SET graph_revision = graph_revision + 1, edge_count = edge_count + 1,
    last_mutation_at = coalesce(p_created_at, v_now)
  WHERE flow_id = p_flow RETURNING * INTO f;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Staged', 'edgeId', p_edge, 'newGraphRevision', f.graph_revision));
END $$;

-- ffi_apply_dep: the child's side of an edge: its dep row and join group. A new dependency makes
-- a satisfied all_of group pending again unless the child is terminal; a runnable child is
-- blocked while its group is pending (an any_of / quorum group already satisfied stays so). A
-- child it does not block keeps its last_mutation_at. The caller holds the child's row lock and
-- has checked that the dependency is new.
--   args:   c (the child's exec_core row), p_flow, p_edge, p_up, p_kind, p_data_ref, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_apply_dep(
  c exec_core, p_flow uuid, p_edge uuid, p_up text, p_kind text, p_data_ref text, p_now bigint
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  g edge_group;
  v_n int;
BEGIN
  INSERT INTO dep (downstream_id, edge_id, flow_id, upstream_id, dependency_kind, data_passing_ref, state, created_at)
  VALUES (ffi_eid(c.partition_key, c.e_uuid), p_edge, p_flow, p_up, p_kind, p_data_ref, 'unsatisfied', p_now);
  INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
  VALUES (ffi_eid(c.partition_key, c.e_uuid), p_flow, 'all_of', 1, p_now)
  ON CONFLICT (downstream_id) DO UPDATE SET n = edge_group.n + 1,
    group_state = CASE WHEN edge_group.policy_variant = 'all_of' AND edge_group.group_state = 'satisfied'
                            AND c.lifecycle_phase <> 'terminal' THEN 'pending' ELSE edge_group.group_state END
  RETURNING * INTO g;
  IF c.lifecycle_phase = 'runnable' AND g.group_state = 'pending' THEN
    v_n := g.n - g.succeeded;
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
      blocking_detail = v_n || ' dep(s) unresolved incl ' || p_edge, public_state = 'waiting_children',
      last_mutation_at = p_now
    WHERE partition_key = c.partition_key AND e_uuid = c.e_uuid;
  END IF;
END $$;

-- ffi_resolve_late: an applied dependency whose upstream has already ended resolves now, with the
-- upstream's outcome (a child it skips cascades, as after a terminal operation).
--   args:   p_child, p_edge, p_up, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_resolve_late(p_child text, p_edge uuid, p_up text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE v_phase text; v_outcome text;
BEGIN
  SELECT lifecycle_phase, terminal_outcome INTO v_phase, v_outcome FROM exec_core WHERE partition_key = ffi_eid_part(p_up) AND e_uuid = ffi_eid_uuid(p_up);
  IF NOT FOUND OR v_phase <> 'terminal' OR v_outcome = 'none' THEN RETURN; END IF;
  IF ffi_resolve_edge(p_child, p_edge, p_up, v_outcome, p_now) = 'child_skipped' THEN
    PERFORM ffi_resolve_from(p_child, 'skipped', p_now);
  END IF;
END $$;

-- ff_apply_dependency_to_child: applyDependencyToChild — ffi_apply_dep, then ffi_resolve_late. A
-- dependency for an edge the flow has not staged counts as one of the flow's edges
-- (docs/design/flows.md#applying-an-edge).
--   args:   p_flow, p_edge, p_child, p_up, p_kind, p_data_ref, p_edges_max (Limits.flowEdges), p_now
--   reply:  {"ok": Model.ApplyDependencyToChildResult} (Applied with the child's dependencies not
--           satisfied after the call, or AlreadyApplied)
--   errors: execution_not_found, execution_already_in_flow (another flow's member),
--           execution_not_in_flow (no flow's), invalid_dependency (the edge id is staged with other
--           ends), limit_exceeded (an edge not staged, and the flow has p_edges_max edges)
CREATE FUNCTION ff_apply_dependency_to_child(
  p_flow uuid, p_edge uuid, p_child text, p_up text, p_kind text, p_data_ref text, p_edges_max int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  c exec_core;
  x flow_edge;
  v_edges bigint;
  v_n int;
BEGIN
  SELECT * INTO c FROM exec_core WHERE partition_key = ffi_eid_part(p_child) AND e_uuid = ffi_eid_uuid(p_child) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF c.flow_id IS DISTINCT FROM p_flow THEN RETURN ffi_err(ffi_not_member(c)); END IF;
  SELECT * INTO x FROM flow_edge WHERE flow_id = p_flow AND edge_id = p_edge;
  IF FOUND AND (x.upstream_id <> p_up OR x.downstream_id <> p_child) THEN
    RETURN ffi_err('invalid_dependency',
      'apply_dependency_to_child: the edge id is staged with another upstream or downstream');
  END IF;
  IF EXISTS (SELECT 1 FROM dep WHERE downstream_id = p_child AND edge_id = p_edge) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyApplied'));
  END IF;
  IF x.edge_id IS NULL THEN
    SELECT edge_count INTO v_edges FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
    IF ffi_flow_over('apply_dependency_to_child', v_edges, 1, p_edges_max, 'flow edges', 'flowEdges') IS NOT NULL THEN
      RETURN ffi_flow_over('apply_dependency_to_child', v_edges, 1, p_edges_max, 'flow edges', 'flowEdges');
    END IF;
    UPDATE flow_core SET edge_count = edge_count + 1 WHERE flow_id = p_flow;
  END IF;
  PERFORM ffi_apply_dep(c, p_flow, p_edge, p_up, p_kind, p_data_ref, v_now);
  PERFORM ffi_resolve_late(p_child, p_edge, p_up, v_now);
  SELECT count(*) INTO v_n FROM dep WHERE downstream_id = p_child AND state <> 'satisfied';
  RETURN ffi_ok(jsonb_build_object('_tag', 'Applied', 'unsatisfiedCount', v_n));
END $$;

-- ffi_closes_cycle: whether edges p_edges would close a cycle with the flow's edges: the members
-- reachable from the edges' downstream ends (along both) hold a cycle (Kahn's algorithm leaves
-- some never freed), or there are more than 1 000 of them (refused conservatively). A cycle
-- through a new edge lies among those members. (jit off: the walk's estimated cost, under the
-- callers' enable_seqscan = off, passes the JIT thresholds: about 50 ms of compilation a call.)
--   args:   p_flow, p_edges ([{upstream, downstream}])
--   reply:  boolean
--   errors: -
CREATE FUNCTION ffi_closes_cycle(p_flow uuid, p_edges jsonb) RETURNS boolean LANGUAGE plpgsql SET jit = off AS $$
DECLARE
  v_nodes text[];
  v_src int[];
  v_dst int[];
  v_start int[];
  v_indegree int[];
  v_free int[];
  v_n int;
  v_m int;
  v_top int := 0;
  v_freed int := 0;
  v_node int;
  v_j int;
BEGIN
  WITH RECURSIVE added AS MATERIALIZED (
    SELECT x->>'upstream' COLLATE "C" AS up, x->>'downstream' COLLATE "C" AS down FROM jsonb_array_elements(p_edges) AS t(x)
  ), walk(node) AS (
    SELECT down FROM added
    UNION
    SELECT nx.down FROM walk w CROSS JOIN LATERAL (
      SELECT e.downstream_id AS down FROM flow_edge e WHERE e.flow_id = p_flow AND e.upstream_id = w.node
      UNION ALL
      SELECT a.down FROM added a WHERE a.up = w.node
    ) nx
  )
  SELECT array_agg(node ORDER BY node) INTO v_nodes FROM (SELECT node FROM walk LIMIT 1001) s;
  v_n := coalesce(cardinality(v_nodes), 0);
  IF v_n > 1000 THEN RETURN true; END IF;
  IF v_n = 0 THEN RETURN false; END IF;
  -- the edges among them, by their upstream's index
  WITH idx AS (SELECT node, i FROM unnest(v_nodes) WITH ORDINALITY AS t(node, i)),
  edges AS (
    SELECT e.upstream_id AS up, e.downstream_id AS down FROM flow_edge e
    WHERE e.flow_id = p_flow AND e.upstream_id = ANY (v_nodes)
    UNION ALL
    SELECT x->>'upstream', x->>'downstream' FROM jsonb_array_elements(p_edges) AS t(x) WHERE x->>'upstream' = ANY (v_nodes)
  )
  SELECT array_agg(u.i::int ORDER BY u.i, d.i), array_agg(d.i::int ORDER BY u.i, d.i) INTO v_src, v_dst
  FROM edges x JOIN idx u ON u.node = x.up JOIN idx d ON d.node = x.down;
  v_m := coalesce(cardinality(v_src), 0);
  v_indegree := array_fill(0, ARRAY[v_n]);
  v_start := array_fill(v_m + 1, ARRAY[v_n + 1]);
  FOR v_j IN REVERSE v_m..1 LOOP
    v_start[v_src[v_j]] := v_j;
    v_indegree[v_dst[v_j]] := v_indegree[v_dst[v_j]] + 1;
  END LOOP;
  FOR v_node IN REVERSE v_n..1 LOOP
    IF v_start[v_node] > v_start[v_node + 1] THEN v_start[v_node] := v_start[v_node + 1]; END IF;
  END LOOP;
  v_free := array_fill(0, ARRAY[v_n]);
  FOR v_node IN 1..v_n LOOP
    IF v_indegree[v_node] = 0 THEN v_top := v_top + 1; v_free[v_top] := v_node; END IF;
  END LOOP;
  WHILE v_top > 0 LOOP
    v_node := v_free[v_top];
    v_top := v_top - 1;
    v_freed := v_freed + 1;
    FOR v_j IN v_start[v_node]..v_start[v_node + 1] - 1 LOOP
      v_indegree[v_dst[v_j]] := v_indegree[v_dst[v_j]] - 1;
      IF v_indegree[v_dst[v_j]] = 0 THEN v_top := v_top + 1; v_free[v_top] := v_dst[v_j]; END IF;
    END LOOP;
  END LOOP;
  RETURN v_freed < v_n;
END $$;

-- ff_extend_flow: extendFlow — new members, their joins and edges added to an open flow in one
-- transaction, as createExecutions, addExecutionToFlow, setEdgeGroupPolicy,
-- stageDependencyEdge and ffi_apply_dep would leave them; every edge is applied before any
-- resolves, then each edge whose upstream has ended resolves, in order. Every refusal is checked
-- before the first write (a step that still fails raises, and the call rolls back). The edges'
-- downstream executions are locked before the flow, the order of every path that locks both.
--   args:   p_flow, p_members (createItem objects, payloads in base64), p_edges ([{edgeId,
--           upstream, downstream, kind, dataRef}]), p_joins ([{downstream, variant, onSatisfied,
--           k}]), p_members_max (Limits.flowMembers), p_edges_max (Limits.flowEdges), p_now
--   reply:  {"ok": Model.ExtendFlowResult} (Extended, or AlreadySatisfied when every member and
--           edge is in the flow already)
--   errors: flow_not_found, flow_already_terminal, flow_sealed, limit_exceeded (the flow would
--           pass p_members_max members or p_edges_max edges: ffi_flow_over), invalid_input (a
--           member exists already), execution_not_in_flow, dependency_already_exists (detail: the stored edge as
--           JSON), invalid_dependency (an edge applied to its downstream already), cycle_detected
CREATE FUNCTION ff_extend_flow(
  p_flow uuid, p_members jsonb, p_edges jsonb, p_joins jsonb, p_members_max int, p_edges_max int, p_now bigint
)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_ids text[] := ARRAY(SELECT m->>'executionId' FROM jsonb_array_elements(p_members) AS t(m));
  v_edges int := jsonb_array_length(p_edges);
  f flow_core;
  c exec_core;
  v_id text;
  v_code text;
  v_edge uuid;
  v_over jsonb;
  x jsonb;
BEGIN
  -- the edges' downstream executions that exist are locked first, in id order, then the flow: the
  -- order of every path that locks an execution and its flow (applyDependencyToChild, a member's
  -- completion, addExecutionToFlow), so that none waits for the other in a cycle
  FOR v_id IN SELECT DISTINCT t.x->>'downstream' FROM jsonb_array_elements(p_edges) AS t(x) ORDER BY 1 LOOP
    PERFORM 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_id) AND e_uuid = ffi_eid_uuid(v_id) FOR UPDATE;
  END LOOP;
  v_id := NULL;
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF ffi_flow_refusal(f) IS NOT NULL THEN RETURN ffi_err(ffi_flow_refusal(f)); END IF;
  IF NOT EXISTS (SELECT 1 FROM unnest(v_ids) AS m(id)
                 WHERE NOT EXISTS (SELECT 1 FROM exec_core e
                                   WHERE e.partition_key = ffi_eid_part(m.id) AND e.e_uuid = ffi_eid_uuid(m.id)
                                     AND e.flow_id = p_flow OFFSET 0))
     AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_edges) AS t(x)
                     WHERE NOT EXISTS (SELECT 1 FROM flow_edge y
                                       WHERE y.flow_id = p_flow AND y.edge_id = (t.x->>'edgeId')::uuid)) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
  END IF;
  v_over := coalesce(
    ffi_flow_over('extend_flow', f.node_count, cardinality(v_ids), p_members_max, 'flow members', 'flowMembers'),
    ffi_flow_over('extend_flow', f.edge_count, v_edges, p_edges_max, 'flow edges', 'flowEdges'));
  IF v_over IS NOT NULL THEN RETURN v_over; END IF;
  SELECT x.id INTO v_id FROM unnest(v_ids) AS x(id)
  WHERE EXISTS (SELECT 1 FROM exec_core ec WHERE ec.partition_key = ffi_eid_part(x.id) AND ec.e_uuid = ffi_eid_uuid(x.id) OFFSET 0)
  ORDER BY array_position(v_ids, x.id) LIMIT 1;
  IF v_id IS NOT NULL THEN
    RETURN ffi_err('invalid_input', 'extend_flow: member ' || v_id || ' already exists');
  END IF;
  -- the edges, in order: both ends members, a new id
  SELECT b.code, b.edge_id INTO v_code, v_edge FROM (
    SELECT t.ord, (t.x->>'edgeId')::uuid AS edge_id,
      CASE
        WHEN NOT ((t.x->>'upstream') = ANY (v_ids) OR EXISTS (SELECT 1 FROM exec_core e
                    WHERE e.partition_key = ffi_eid_part(t.x->>'upstream') AND e.e_uuid = ffi_eid_uuid(t.x->>'upstream')
                      AND e.flow_id = p_flow OFFSET 0))
          OR NOT ((t.x->>'downstream') = ANY (v_ids) OR EXISTS (SELECT 1 FROM exec_core e
                    WHERE e.partition_key = ffi_eid_part(t.x->>'downstream') AND e.e_uuid = ffi_eid_uuid(t.x->>'downstream')
                      AND e.flow_id = p_flow OFFSET 0))
          THEN 'execution_not_in_flow'
        WHEN EXISTS (SELECT 1 FROM flow_edge y WHERE y.flow_id = p_flow AND y.edge_id = (t.x->>'edgeId')::uuid)
          THEN 'dependency_already_exists'
        -- applied already (never staged): docs/design/flows.md#extending-a-flow
        WHEN EXISTS (SELECT 1 FROM dep d WHERE d.downstream_id = t.x->>'downstream' AND d.edge_id = (t.x->>'edgeId')::uuid)
          THEN 'invalid_dependency'
      END AS code
    FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(x, ord)
  ) b WHERE b.code IS NOT NULL ORDER BY b.ord LIMIT 1;
  IF v_code = 'dependency_already_exists' THEN
    RETURN ffi_err(v_code, (SELECT ffi_edge_json(y)::text FROM flow_edge y WHERE y.flow_id = p_flow AND y.edge_id = v_edge));
  ELSIF v_code = 'invalid_dependency' THEN
    RETURN ffi_err(v_code, 'extend_flow: edge ' || v_edge || ' was applied to its downstream already');
  ELSIF v_code IS NOT NULL THEN
    RETURN ffi_err(v_code);
  END IF;
  IF v_edges > 0 AND ffi_closes_cycle(p_flow, p_edges) THEN RETURN ffi_err('cycle_detected'); END IF;
  PERFORM ffi_add_new_members(p_flow, p_members, p_joins, 'extend_flow', v_now);
  IF v_edges > 0 THEN
    INSERT INTO flow_edge (flow_id, edge_id, upstream_id, downstream_id, dependency_kind, satisfaction_condition,
      data_passing_ref, edge_state, created_at, created_by)
    SELECT p_flow, (t.x->>'edgeId')::uuid, t.x->>'upstream', t.x->>'downstream', t.x->>'kind', 'all_required',
      t.x->>'dataRef', 'pending', v_now, 'engine'
    FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(x, ord) ORDER BY t.ord;
    FOR x IN SELECT value FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
      SELECT * INTO c FROM exec_core WHERE partition_key = ffi_eid_part(x->>'downstream') AND e_uuid = ffi_eid_uuid(x->>'downstream') FOR UPDATE;
      PERFORM ffi_apply_dep(c, p_flow, (x->>'edgeId')::uuid, x->>'upstream', x->>'kind', x->>'dataRef', v_now);
    END LOOP;
    UPDATE flow_core SET graph_revision = graph_revision + v_edges, edge_count = edge_count + v_edges,
      last_mutation_at = v_now
    WHERE flow_id = p_flow;
    FOR x IN SELECT value FROM jsonb_array_elements(p_edges) WITH ORDINALITY AS t(value, ord) ORDER BY ord LOOP
      PERFORM ffi_resolve_late(x->>'downstream', (x->>'edgeId')::uuid, x->>'upstream', v_now);
    END LOOP;
  END IF;
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Extended', 'flowId', p_flow, 'graphRevision', f.graph_revision,
                                   'nodeCount', f.node_count));
END $$;

-- ff_seal_flow: sealFlow — the flow takes no new member or edge from now on.
--   args:   p_flow, p_now
--   reply:  {"ok": Model.SealFlowResult} (Sealed, or AlreadySealed)
--   errors: flow_not_found, flow_already_terminal (cancelling or cancelled)
CREATE FUNCTION ff_seal_flow(p_flow uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); f flow_core;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF f.public_flow_state IN ('cancelling', 'cancelled') THEN RETURN ffi_err('flow_already_terminal'); END IF;
  IF f.sealed THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySealed', 'flowId', p_flow, 'publicFlowState', ffi_flow_state(f)));
  END IF;
  UPDATE flow_core SET sealed = true, last_mutation_at = v_now WHERE flow_id = p_flow RETURNING * INTO f;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Sealed', 'flowId', p_flow, 'publicFlowState', ffi_flow_state(f)));
END $$;

-- ---------------------------------------------------------------------------
-- dependency resolution
-- ---------------------------------------------------------------------------

-- ffi_cancel_siblings: cancels the still-running upstream siblings of a group that fired with
-- on_satisfied = cancel_remaining (the reason sibling_quorum_satisfied or _impossible,
-- cancelled_by operator_override). Siblings locked by someone else are left on the group for the
-- cancel-backlog pass.
--   args:   p_child (the group's downstream), p_reason, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_cancel_siblings(p_child text, p_reason text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_id text;
  v_left text[] := '{}';
BEGIN
  FOR v_id IN
    SELECT DISTINCT d.upstream_id FROM dep d
    JOIN LATERAL (SELECT * FROM exec_core u
        WHERE u.partition_key = ffi_eid_part(d.upstream_id) AND u.e_uuid = ffi_eid_uuid(d.upstream_id) OFFSET 0) u ON true
    WHERE d.downstream_id = p_child AND (d.state = 'unsatisfied') IS TRUE AND u.lifecycle_phase <> 'terminal'
    ORDER BY d.upstream_id
  LOOP
    PERFORM 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_id) AND e_uuid = ffi_eid_uuid(v_id) AND lifecycle_phase <> 'terminal'
    FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      PERFORM ffi_cancel_exec(v_id, p_reason, 'operator_override', p_now);
    ELSIF EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_id) AND e_uuid = ffi_eid_uuid(v_id)
                  AND lifecycle_phase <> 'terminal' OFFSET 0) THEN
      v_left := v_left || v_id;
    END IF;
  END LOOP;
  UPDATE edge_group SET cancel_siblings_pending = cardinality(v_left) > 0,
    cancel_siblings_reason = p_reason, cancel_siblings_members = v_left
  WHERE downstream_id = p_child;
END $$;

-- ffi_resolve_edge: resolves edge p_edge into p_child after its upstream ended with p_outcome:
-- the dep becomes satisfied (passing the upstream's result when the edge carries a data ref) or
-- impossible; the child's join group counts it, and fires — the child becomes claimable — or
-- becomes impossible — the child is skipped — with cancel_remaining siblings cancelled.
--   args:   p_child, p_edge, p_upstream, p_outcome, p_now
--   reply:  missing, already_resolved, satisfied, already_fired, child_skipped, impossible or
--           pending (text)
--   errors: -
CREATE FUNCTION ffi_resolve_edge(p_child text, p_edge uuid, p_upstream text, p_outcome text, p_now bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c exec_core;
  v_success boolean := p_outcome = 'success';
  v_succeeded int := CASE WHEN p_outcome = 'success' THEN 1 ELSE 0 END;
  v_skipped int := CASE WHEN p_outcome = 'skipped' THEN 1 ELSE 0 END;
  v_failed int := CASE WHEN p_outcome NOT IN ('success', 'skipped') THEN 1 ELSE 0 END;
  v_flow uuid;
  v_ref text;
  v_result bytea;
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
  SELECT * INTO c FROM exec_core WHERE partition_key = ffi_eid_part(p_child) AND e_uuid = ffi_eid_uuid(p_child) FOR UPDATE;
  IF NOT FOUND THEN RETURN 'missing'; END IF;
  -- (`(…) IS TRUE`: the key's look-up, never a bitmap AND with the whole dep_unresolved_by_upstream,
  -- which a plan made on a small table chose)
  UPDATE dep SET state = CASE WHEN v_success THEN 'satisfied' ELSE 'impossible' END, last_resolved_at = p_now
  WHERE downstream_id = p_child AND edge_id = p_edge AND (state = 'unsatisfied') IS TRUE
  RETURNING dep.flow_id,
    CASE WHEN v_success AND c.lifecycle_phase <> 'terminal' THEN
      -- the reference given when the dependency was applied (the staged edge's when none was given)
      coalesce(nullif(dep.data_passing_ref, ''),
        (SELECT nullif(x.data_passing_ref, '') FROM flow_edge x WHERE x.flow_id = dep.flow_id AND x.edge_id = p_edge)) END
  INTO v_flow, v_ref;
  IF NOT FOUND THEN RETURN 'already_resolved'; END IF;
  IF v_ref IS NOT NULL THEN
    -- the upstream's result, in its exec_core row or exec_data (migration 0050), becomes the input
    SELECT coalesce(ue.result, (SELECT u.result FROM exec_data u WHERE ffi_eid(u.e_part, u.e_uuid) = p_upstream COLLATE "default"))
    INTO v_result FROM exec_core ue WHERE ue.partition_key = ffi_eid_part(p_upstream) AND ue.e_uuid = ffi_eid_uuid(p_upstream);
    IF v_result IS NOT NULL THEN PERFORM ffi_input_set(p_child, v_result); END IF;
  END IF;
  -- an all_of join counts a skipped upstream as failed
  UPDATE edge_group SET succeeded = succeeded + v_succeeded,
    skipped = skipped + CASE WHEN policy_variant = 'all_of' THEN 0 ELSE v_skipped END,
    failed = failed + v_failed + CASE WHEN policy_variant = 'all_of' THEN v_skipped ELSE 0 END
  WHERE downstream_id = p_child
  RETURNING policy_variant, on_satisfied, k, n, succeeded, failed, skipped, group_state,
    CASE WHEN group_state = 'pending' AND policy_variant = 'all_of' THEN
      (SELECT count(*) FROM dep WHERE downstream_id = p_child AND state <> 'satisfied') ELSE 0 END
  INTO v_variant, v_on, v_gk, v_n, v_sc, v_fc, v_kc, v_state, v_open;
  IF NOT FOUND THEN
    INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at, succeeded, skipped, failed)
    VALUES (p_child, v_flow, 'all_of', (SELECT count(*) FROM dep WHERE downstream_id = p_child), p_now,
            v_succeeded, 0, v_failed + v_skipped)
    RETURNING policy_variant, on_satisfied, k, n, succeeded, failed, skipped, group_state,
      (SELECT count(*) FROM dep WHERE downstream_id = p_child AND state <> 'satisfied')
    INTO v_variant, v_on, v_gk, v_n, v_sc, v_fc, v_kc, v_state, v_open;
  END IF;
  v_k := CASE v_variant WHEN 'all_of' THEN v_n WHEN 'any_of' THEN 1 ELSE greatest(v_gk, 1) END;
  IF v_state = 'pending' AND v_sc >= v_k AND v_open = 0 THEN
    UPDATE edge_group SET group_state = 'satisfied', satisfied_at = p_now WHERE downstream_id = p_child;
    IF c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'blocked_by_dependencies' THEN
      UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
        blocking_detail = '', public_state = 'waiting',
        attempt_state = CASE WHEN attempt_state = 'none' THEN 'pending_first_attempt' ELSE attempt_state END,
        last_mutation_at = p_now
      WHERE partition_key = ffi_eid_part(p_child) AND e_uuid = ffi_eid_uuid(p_child);
      PERFORM ffi_wake(c.lane_id);
    ELSE
      UPDATE exec_core SET last_mutation_at = p_now WHERE partition_key = ffi_eid_part(p_child) AND e_uuid = ffi_eid_uuid(p_child);
    END IF;
    IF v_variant <> 'all_of' AND v_on = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, 'sibling_quorum_satisfied', p_now);
    END IF;
    RETURN 'satisfied';
  END IF;
  UPDATE exec_core SET last_mutation_at = p_now WHERE partition_key = ffi_eid_part(p_child) AND e_uuid = ffi_eid_uuid(p_child);
  IF v_state <> 'pending' THEN RETURN 'already_fired'; END IF;
  IF v_fc + v_kc > v_n - v_k THEN
    UPDATE edge_group SET group_state = 'impossible', satisfied_at = p_now WHERE downstream_id = p_child;
    IF c.lifecycle_phase <> 'terminal' THEN
      PERFORM ffi_terminate(p_child, 'skipped', 'dependency_impossible', 'dependency_impossible',
                            NULL, NULL, 'dependency_impossible', 'dependency_impossible', p_now, false);
    END IF;
    IF v_variant <> 'all_of' AND v_on = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, 'sibling_quorum_impossible', p_now);
    END IF;
    RETURN CASE WHEN c.lifecycle_phase <> 'terminal' THEN 'child_skipped' ELSE 'impossible' END;
  END IF;
  RETURN 'pending';
END $$;

-- ffi_resolve_from: resolves the outgoing edges of execution p_eid, terminal with p_outcome (the
-- dependency applied for each staged edge with the edge's own ends),
-- and of every child that becomes skipped on the way, breadth first, at most 1 000 edges; the
-- upstreams left over go to dep_pending for the dependency pass.
--   args:   p_eid, p_outcome, p_now
--   reply:  the number of edges resolved (int)
--   errors: -
CREATE FUNCTION ffi_resolve_from(p_eid text, p_outcome text, p_now bigint) RETURNS int
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
        AND EXISTS (SELECT 1 FROM flow_edge x WHERE x.flow_id = dp.flow_id AND x.edge_id = dp.edge_id
                      AND x.upstream_id = dp.upstream_id AND x.downstream_id = dp.downstream_id)
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
    -- the "more edges left?" probe only when the budget ran out
    IF v_budget > 0 THEN
      v_i := v_i + 1;
    ELSIF NOT EXISTS (
      SELECT 1 FROM dep dp WHERE dp.upstream_id = v_ids[v_i] AND dp.state = 'unsatisfied'
        AND EXISTS (SELECT 1 FROM flow_edge x WHERE x.flow_id = dp.flow_id AND x.edge_id = dp.edge_id
                      AND x.upstream_id = dp.upstream_id AND x.downstream_id = dp.downstream_id)
    ) THEN
      v_i := v_i + 1;
    END IF;
  END LOOP;
  RETURN v_done;
END $$;

-- ffi_flow_settle: a flow after its members changed: cancelling becomes cancelled once no owed
-- member is left (an open flow's state is derived, ffi_flow_state). Takes the flow row lock (after
-- the caller's member lock).
--   args:   p_flow, p_now, p_purge (also drop the owed entries of members already terminal: only
--           repairs need it, a member's own terminal step drops its entry)
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_flow_settle(p_flow uuid, p_now bigint, p_purge boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE f flow_core;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  IF f.public_flow_state = 'cancelling' THEN
    IF p_purge THEN
      DELETE FROM cancel_owed o
      WHERE o.flow_id = p_flow AND EXISTS (SELECT 1 FROM exec_core e
        WHERE e.partition_key = ffi_eid_part(o.execution_id) AND e.e_uuid = ffi_eid_uuid(o.execution_id)
          AND e.lifecycle_phase = 'terminal' OFFSET 0);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM cancel_owed WHERE flow_id = p_flow) THEN
      UPDATE flow_core SET public_flow_state = 'cancelled', last_mutation_at = p_now WHERE flow_id = p_flow;
      DELETE FROM cancel_backlog WHERE flow_id = p_flow;
    END IF;
  END IF;
END $$;
