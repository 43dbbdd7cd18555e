/**
 * Migration 0003: flows, dependency edges, edge groups, dependency
 * resolution inside the upstream's terminal transaction (P4) and flow
 * cancellation with its cascade (P5).
 *
 * Lock order: execution rows before the flow row. `cancel_flow` holds the
 * flow row and takes member rows with `SKIP LOCKED` only, so it never waits
 * for a member while holding the flow.
 */
export const sql = String.raw`
-- ---------------------------------------------------------------------------
-- dependency resolution (model.md §10.3–§10.4)
-- ---------------------------------------------------------------------------

-- Cancels the still-running upstream siblings of a group that fired with
-- on_satisfied = cancel_remaining. Siblings locked by someone else are left
-- on the group for the cancel-backlog pass.
CREATE OR REPLACE FUNCTION ffi_cancel_siblings(p_child text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  v_id text;
  v_left text[] := '{}';
BEGIN
  FOR v_id IN
    SELECT DISTINCT d.upstream_id FROM dep d JOIN exec_core u ON u.execution_id = d.upstream_id
    WHERE d.downstream_id = p_child AND d.state = 'unsatisfied' AND u.lifecycle_phase <> 'terminal'
    ORDER BY d.upstream_id
  LOOP
    PERFORM 1 FROM exec_core WHERE execution_id = v_id AND lifecycle_phase <> 'terminal' FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      PERFORM ffi_cancel_exec(v_id, 'sibling_quorum_satisfied', 'engine', p_now);
    ELSIF EXISTS (SELECT 1 FROM exec_core WHERE execution_id = v_id AND lifecycle_phase <> 'terminal') THEN
      v_left := v_left || v_id;
    END IF;
  END LOOP;
  UPDATE edge_group SET cancel_siblings_pending = cardinality(v_left) > 0,
    cancel_siblings_reason = 'sibling_quorum_satisfied', cancel_siblings_members = v_left
  WHERE downstream_id = p_child;
END $$;

-- Resolves one applied edge of p_child with its upstream's outcome.
-- Returns 'satisfied' | 'impossible' | 'child_skipped' | 'pending' |
-- 'already_fired' | 'already_resolved' | 'missing'.
CREATE OR REPLACE FUNCTION ffi_resolve_edge(p_child text, p_edge uuid, p_upstream text, p_outcome text, p_now bigint)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  c exec_core;
  d dep;
  g edge_group;
  v_success boolean := p_outcome = 'success';
  v_ref text;
  v_k int;
  v_open int;
BEGIN
  SELECT * INTO c FROM exec_core WHERE execution_id = p_child FOR UPDATE;
  IF NOT FOUND THEN RETURN 'missing'; END IF;
  SELECT * INTO d FROM dep WHERE downstream_id = p_child AND edge_id = p_edge;
  IF NOT FOUND OR d.state <> 'unsatisfied' THEN RETURN 'already_resolved'; END IF;
  UPDATE dep SET state = CASE WHEN v_success THEN 'satisfied' ELSE 'impossible' END, last_resolved_at = p_now
  WHERE downstream_id = p_child AND edge_id = p_edge;
  UPDATE exec_core SET last_mutation_at = p_now WHERE execution_id = p_child;
  IF v_success AND c.lifecycle_phase <> 'terminal' THEN
    SELECT coalesce(nullif(x.data_passing_ref, ''), nullif(d.data_passing_ref, '')) INTO v_ref
    FROM flow_edge x WHERE x.flow_id = d.flow_id AND x.edge_id = p_edge;
    IF v_ref IS NOT NULL THEN
      UPDATE exec_data cd SET payload = u.result FROM exec_data u
      WHERE cd.execution_id = p_child AND u.execution_id = p_upstream AND u.result IS NOT NULL;
    END IF;
  END IF;
  SELECT * INTO g FROM edge_group WHERE downstream_id = p_child FOR UPDATE;
  IF NOT FOUND THEN
    INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
    VALUES (p_child, d.flow_id, 'all_of', (SELECT count(*) FROM dep WHERE downstream_id = p_child), p_now);
  END IF;
  UPDATE edge_group SET succeeded = succeeded + CASE WHEN v_success THEN 1 ELSE 0 END,
    skipped = skipped + CASE WHEN p_outcome = 'skipped' THEN 1 ELSE 0 END,
    failed = failed + CASE WHEN NOT v_success AND p_outcome <> 'skipped' THEN 1 ELSE 0 END
  WHERE downstream_id = p_child RETURNING * INTO g;
  IF g.group_state <> 'pending' THEN RETURN 'already_fired'; END IF;
  v_k := CASE g.policy_variant WHEN 'all_of' THEN g.n WHEN 'any_of' THEN 1 ELSE greatest(g.k, 1) END;
  SELECT count(*) INTO v_open FROM dep WHERE downstream_id = p_child AND state <> 'satisfied';
  IF g.succeeded >= v_k AND (g.policy_variant <> 'all_of' OR v_open = 0) THEN
    UPDATE edge_group SET group_state = 'satisfied', satisfied_at = p_now WHERE downstream_id = p_child;
    SELECT * INTO c FROM exec_core WHERE execution_id = p_child;
    IF c.lifecycle_phase = 'runnable' AND c.eligibility_state = 'blocked_by_dependencies' THEN
      UPDATE exec_core SET eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
        blocking_detail = '', public_state = 'waiting',
        attempt_state = CASE WHEN attempt_state = 'none' THEN 'pending_first_attempt' ELSE attempt_state END,
        last_transition_at = p_now, last_mutation_at = p_now
      WHERE execution_id = p_child;
      PERFORM ffi_ready_add(p_child);
    END IF;
    IF g.policy_variant <> 'all_of' AND g.on_satisfied = 'cancel_remaining' THEN
      PERFORM ffi_cancel_siblings(p_child, p_now);
    END IF;
    RETURN 'satisfied';
  END IF;
  IF g.failed + g.skipped > g.n - v_k THEN
    UPDATE edge_group SET group_state = 'impossible', satisfied_at = p_now WHERE downstream_id = p_child;
    SELECT * INTO c FROM exec_core WHERE execution_id = p_child;
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

-- Resolves the outgoing edges of a terminal upstream, cascading skips. The
-- work per call is bounded; the rest is queued for the dependency pass.
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
    IF v_budget > 0 OR NOT EXISTS (SELECT 1 FROM dep WHERE upstream_id = v_ids[v_i] AND state = 'unsatisfied') THEN
      v_i := v_i + 1;
    END IF;
  END LOOP;
  RETURN v_done;
END $$;

-- A flow after its members changed: 'cancelling' becomes 'cancelled' once no
-- owed member is left; an 'open' flow whose members are all terminal becomes
-- 'completed' (or 'failed' when one failed, was cancelled or expired).
-- Takes the flow row lock (after the caller's member lock).
-- p_purge also drops owed entries of members that are already terminal (the
-- member's own terminal step drops its entry, so only repairs need it).
CREATE OR REPLACE FUNCTION ffi_flow_settle(p_flow uuid, p_now bigint, p_purge boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE f flow_core;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN; END IF;
  IF f.public_flow_state = 'cancelling' THEN
    IF p_purge THEN
      DELETE FROM cancel_owed o USING exec_core e
      WHERE o.flow_id = p_flow AND e.execution_id = o.execution_id AND e.lifecycle_phase = 'terminal';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM cancel_owed WHERE flow_id = p_flow) THEN
      UPDATE flow_core SET public_flow_state = 'cancelled', last_mutation_at = p_now WHERE flow_id = p_flow;
      DELETE FROM cancel_backlog WHERE flow_id = p_flow;
    END IF;
  ELSIF f.public_flow_state = 'open' AND f.node_count > 0 AND f.live_members = 0 THEN
    UPDATE flow_core SET public_flow_state = CASE WHEN f.failed_members > 0 THEN 'failed' ELSE 'completed' END,
      last_mutation_at = p_now
    WHERE flow_id = p_flow;
  END IF;
END $$;

-- ---------------------------------------------------------------------------
-- create_flow, add_execution_to_flow, set_edge_group_policy
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_create_flow(p_flow uuid, p_partition int, p_kind text, p_namespace text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO flow_core (flow_id, partition_key, flow_kind, namespace, public_flow_state, created_at, last_mutation_at)
  VALUES (p_flow, p_partition, p_kind, p_namespace, 'open', v_now, v_now)
  ON CONFLICT (flow_id) DO NOTHING;
  IF FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'flowId', p_flow)); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'flowId', p_flow));
END $$;

CREATE OR REPLACE FUNCTION ff_add_execution_to_flow(p_flow uuid, p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); e exec_core; f flow_core;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF f.flow_id IS NULL THEN RETURN ffi_err('flow_not_found'); END IF;
  IF f.public_flow_state IN ('cancelled', 'cancelling', 'completed', 'failed') THEN
    RETURN ffi_err('flow_already_terminal');
  END IF;
  IF e.execution_id IS NULL THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.flow_id IS NOT NULL AND e.flow_id <> p_flow THEN
    RETURN ffi_err('execution_already_in_flow', e.flow_id::text);
  END IF;
  IF e.flow_id = p_flow THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyMember', 'executionId', p_eid, 'nodeCount', f.node_count));
  END IF;
  UPDATE exec_core SET flow_id = p_flow, last_mutation_at = v_now WHERE execution_id = p_eid;
  UPDATE flow_core SET node_count = node_count + 1, graph_revision = graph_revision + 1, last_mutation_at = v_now,
    live_members = live_members + CASE WHEN e.lifecycle_phase <> 'terminal' THEN 1 ELSE 0 END,
    failed_members = failed_members + CASE WHEN e.terminal_outcome IN ('failed', 'cancelled', 'expired') THEN 1 ELSE 0 END
  WHERE flow_id = p_flow RETURNING * INTO f;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Added', 'executionId', p_eid, 'newNodeCount', f.node_count));
END $$;

CREATE OR REPLACE FUNCTION ff_set_edge_group_policy(
  p_flow uuid, p_child text, p_variant text, p_on_satisfied text, p_k int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); g edge_group;
BEGIN
  PERFORM 1 FROM exec_core WHERE execution_id = p_child FOR UPDATE;
  IF NOT EXISTS (SELECT 1 FROM flow_core WHERE flow_id = p_flow) THEN RETURN ffi_err('flow_not_found'); END IF;
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

CREATE OR REPLACE FUNCTION ffi_edge_json(x flow_edge) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object('edgeId', x.edge_id, 'flowId', x.flow_id,
    'upstreamExecutionId', x.upstream_id, 'downstreamExecutionId', x.downstream_id,
    'dependencyKind', x.dependency_kind, 'satisfactionCondition', x.satisfaction_condition,
    'dataPassingRef', nullif(x.data_passing_ref, ''), 'edgeState', x.edge_state,
    'createdAt', x.created_at, 'createdBy', x.created_by)) $$;

CREATE OR REPLACE FUNCTION ff_stage_dependency_edge(
  p_flow uuid, p_edge uuid, p_up text, p_down text, p_kind text, p_data_ref text, p_expected bigint,
  p_created_at bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  f flow_core;
  x flow_edge;
  v_cycle boolean;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF f.public_flow_state IN ('cancelled', 'cancelling', 'completed', 'failed') THEN
    RETURN ffi_err('flow_already_terminal');
  END IF;
  IF f.graph_revision <> p_expected THEN RETURN ffi_err('stale_graph_revision'); END IF;
  IF (SELECT count(*) FROM exec_core WHERE execution_id IN (p_up, p_down) AND flow_id = p_flow) < 2 THEN
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

CREATE OR REPLACE FUNCTION ff_apply_dependency_to_child(
  p_flow uuid, p_edge uuid, p_child text, p_up text, p_kind text, p_data_ref text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  c exec_core;
  g edge_group;
  v_n int;
BEGIN
  SELECT * INTO c FROM exec_core WHERE execution_id = p_child FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF c.flow_id IS NOT NULL AND c.flow_id <> p_flow THEN RETURN ffi_err('execution_already_in_flow'); END IF;
  IF EXISTS (SELECT 1 FROM dep WHERE downstream_id = p_child AND edge_id = p_edge) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyApplied'));
  END IF;
  INSERT INTO dep (downstream_id, edge_id, flow_id, upstream_id, dependency_kind, data_passing_ref, state, created_at)
  VALUES (p_child, p_edge, p_flow, p_up, p_kind, p_data_ref, 'unsatisfied', v_now);
  INSERT INTO edge_group (downstream_id, flow_id, policy_variant, n, created_at)
  VALUES (p_child, p_flow, 'all_of', 1, v_now)
  ON CONFLICT (downstream_id) DO UPDATE SET n = edge_group.n + 1
  RETURNING * INTO g;
  SELECT count(*) INTO v_n FROM dep WHERE downstream_id = p_child AND state <> 'satisfied';
  IF c.lifecycle_phase = 'runnable' AND g.group_state = 'pending' THEN
    UPDATE exec_core SET eligibility_state = 'blocked_by_dependencies', blocking_reason = 'waiting_for_children',
      blocking_detail = v_n || ' dep(s) unresolved incl ' || p_edge, public_state = 'waiting_children',
      last_transition_at = v_now, last_mutation_at = v_now
    WHERE execution_id = p_child;
    DELETE FROM ready WHERE execution_id = p_child;
  ELSE
    UPDATE exec_core SET last_mutation_at = v_now WHERE execution_id = p_child;
  END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Applied', 'unsatisfiedCount', v_n));
END $$;

-- ---------------------------------------------------------------------------
-- cancel_flow (§9.1 with P5), cancel_flow_header (§9.2), ack_cancel_member
-- ---------------------------------------------------------------------------

-- The atomic header: flips the flow, records the owed member cancels and,
-- when p_inline_limit allows, cancels them in the same transaction.
CREATE OR REPLACE FUNCTION ffi_cancel_flow(
  f flow_core, p_policy text, p_reason text, p_grace_ms bigint, p_inline_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_members jsonb;
  v_owed text[];
  v_id text;
  v_left int;
BEGIN
  SELECT coalesce(jsonb_agg(execution_id ORDER BY execution_id), '[]'::jsonb) INTO v_members
  FROM exec_core WHERE flow_id = f.flow_id;
  SELECT coalesce(array_agg(execution_id ORDER BY execution_id), '{}') INTO v_owed
  FROM exec_core
  WHERE flow_id = f.flow_id AND (
    (p_policy = 'cancel_all' AND lifecycle_phase <> 'terminal')
    OR (p_policy = 'cancel_pending' AND lifecycle_phase IN ('submitted', 'runnable')));
  UPDATE flow_core SET public_flow_state = 'cancelling', cancelled_at = p_now, cancel_reason = p_reason,
    cancellation_policy = p_policy, last_mutation_at = p_now
  WHERE flow_id = f.flow_id;
  INSERT INTO cancel_owed (flow_id, execution_id) SELECT f.flow_id, unnest(v_owed) ON CONFLICT DO NOTHING;
  INSERT INTO cancel_backlog (flow_id, requested_at, grace_until, reason, cancellation_policy)
  VALUES (f.flow_id, p_now, p_now + p_grace_ms, p_reason, p_policy)
  ON CONFLICT (flow_id) DO UPDATE SET grace_until = EXCLUDED.grace_until, reason = EXCLUDED.reason,
    cancellation_policy = EXCLUDED.cancellation_policy;
  -- bounded atomic work (P5): up to p_inline_limit members now, the backlog pass does the rest
  FOREACH v_id IN ARRAY v_owed[1:greatest(p_inline_limit, 0)] LOOP
    PERFORM 1 FROM exec_core WHERE execution_id = v_id FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      PERFORM ffi_cancel_exec(v_id, p_reason, 'flow_cascade', p_now);
      DELETE FROM cancel_owed WHERE flow_id = f.flow_id AND execution_id = v_id;
    END IF;
  END LOOP;
  SELECT count(*) INTO v_left FROM cancel_owed WHERE flow_id = f.flow_id;
  IF v_left = 0 THEN
    UPDATE flow_core SET public_flow_state = 'cancelled' WHERE flow_id = f.flow_id;
    DELETE FROM cancel_backlog WHERE flow_id = f.flow_id;
  END IF;
  RETURN v_members;
END $$;

CREATE OR REPLACE FUNCTION ff_cancel_flow(p_flow uuid, p_policy text, p_reason text, p_inline_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); f flow_core; v_members jsonb;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF f.public_flow_state IN ('cancelled', 'cancelling', 'completed', 'failed') THEN
    RETURN ffi_err('flow_already_terminal');
  END IF;
  v_members := ffi_cancel_flow(f, p_policy, p_reason, 0, p_inline_limit, v_now);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Cancelled', 'cancellationPolicy', p_policy,
                                   'memberExecutionIds', v_members));
END $$;

CREATE OR REPLACE FUNCTION ff_cancel_flow_header(p_flow uuid, p_policy text, p_reason text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); f flow_core; v_members jsonb;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF f.public_flow_state IN ('cancelled', 'cancelling', 'completed', 'failed') THEN
    SELECT coalesce(jsonb_agg(execution_id ORDER BY execution_id), '[]'::jsonb) INTO v_members
    FROM exec_core WHERE flow_id = p_flow;
    RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('_tag', 'AlreadyTerminal',
      'storedCancellationPolicy', nullif(f.cancellation_policy, ''), 'storedCancelReason', nullif(f.cancel_reason, ''),
      'memberExecutionIds', v_members)));
  END IF;
  v_members := ffi_cancel_flow(f, p_policy, p_reason, 30000, 0, v_now);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Cancelled', 'cancellationPolicy', p_policy,
                                   'memberExecutionIds', v_members));
END $$;

CREATE OR REPLACE FUNCTION ff_ack_cancel_member(p_flow uuid, p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  DELETE FROM cancel_owed WHERE flow_id = p_flow AND execution_id = p_eid;
  PERFORM ffi_flow_settle(p_flow, v_now, true);
  RETURN ffi_ok();
END $$;

-- ---------------------------------------------------------------------------
-- reads
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_describe_flow(p_flow uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
DECLARE f flow_core; v_groups jsonb;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow;
  IF NOT FOUND THEN RETURN ffi_ok(); END IF;
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'downstreamExecutionId', g.downstream_id,
      'policy', CASE g.policy_variant
        WHEN 'all_of' THEN jsonb_build_object('_tag', 'all_of')
        WHEN 'any_of' THEN jsonb_build_object('_tag', 'any_of', 'onSatisfied', coalesce(g.on_satisfied, 'cancel_remaining'))
        ELSE jsonb_build_object('_tag', 'quorum', 'k', g.k, 'onSatisfied', coalesce(g.on_satisfied, 'cancel_remaining')) END,
      'totalDeps', g.n, 'satisfiedCount', g.succeeded, 'failedCount', g.failed, 'skippedCount', g.skipped,
      'runningCount', greatest(g.n - g.succeeded - g.failed - g.skipped, 0), 'groupState', g.group_state)
    ORDER BY g.downstream_id), '[]'::jsonb)
  INTO v_groups
  FROM edge_group g JOIN exec_core e ON e.execution_id = g.downstream_id AND e.flow_id = p_flow
  WHERE g.n > 0;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'flowId', f.flow_id, 'flowKind', f.flow_kind, 'namespace', f.namespace,
    'publicFlowState', f.public_flow_state, 'graphRevision', f.graph_revision,
    'nodeCount', f.node_count, 'edgeCount', f.edge_count, 'createdAt', f.created_at,
    'lastMutationAt', f.last_mutation_at, 'cancelledAt', f.cancelled_at,
    'cancelReason', nullif(f.cancel_reason, ''), 'cancellationPolicy', f.cancellation_policy)) ||
    jsonb_build_object('tags', f.tags, 'edgeGroups', v_groups));
END $$;

CREATE OR REPLACE FUNCTION ff_list_edges(p_flow uuid, p_node text, p_outgoing boolean, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok(coalesce(jsonb_agg(ffi_edge_json(x) ORDER BY x.edge_id), '[]'::jsonb))
  FROM flow_edge x
  WHERE x.flow_id = p_flow AND CASE WHEN p_outgoing THEN x.upstream_id = p_node ELSE x.downstream_id = p_node END);
END $$;

CREATE OR REPLACE FUNCTION ff_describe_edge(p_flow uuid, p_edge uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT ffi_edge_json(x) FROM flow_edge x WHERE x.flow_id = p_flow AND x.edge_id = p_edge)));
END $$;

CREATE OR REPLACE FUNCTION ff_list_flows(p_partition int, p_cursor uuid, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (WITH page AS (
    SELECT flow_id, created_at, public_flow_state FROM flow_core
    WHERE partition_key = p_partition AND (p_cursor IS NULL OR flow_id > p_cursor)
    ORDER BY flow_id LIMIT p_limit + 1
  ), numbered AS (SELECT *, row_number() OVER (ORDER BY flow_id) AS rn FROM page)
  SELECT ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'flows', coalesce((SELECT jsonb_agg(jsonb_build_object('flowId', flow_id, 'createdAt', created_at,
                          'state', public_flow_state) ORDER BY flow_id) FROM numbered WHERE rn <= p_limit), '[]'::jsonb),
    'nextCursor', CASE WHEN (SELECT count(*) FROM page) > p_limit
                       THEN (SELECT flow_id FROM numbered WHERE rn = p_limit) END))));
END $$;
`
