-- ===========================================================================
-- reads.sql: descriptions and listings of executions, waitpoints and flows
-- (the reads of a stream and of a budget are in streams.sql and budgets.sql).
-- Every read is one STABLE statement; a missing row answers {"ok": null}
-- (the layer's Option.none) unless said otherwise.
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- executions
-- ---------------------------------------------------------------------------

-- ff_describe_execution: describeExecution (a stored blocking reason "none" is reported too:
-- only empty strings read as absent), with the history of ffi_history_json.
--   args:   p_eid, p_now
--   reply:  {"ok": Model.ExecutionSnapshot or null}
--   errors: -
CREATE FUNCTION ff_describe_execution(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((
    SELECT jsonb_strip_nulls(jsonb_build_object(
      'executionId', p_eid, 'flowId', e.flow_id, 'laneId', e.lane_id, 'namespace', e.namespace,
      'publicState', e.public_state, 'blockingReason', e.blocking_reason,
      'blockingDetail', nullif(e.blocking_detail, ''),
      'currentAttempt', CASE WHEN e.current_attempt_id IS NOT NULL THEN
        jsonb_build_object('attemptId', e.current_attempt_id, 'attemptIndex', e.current_attempt_index) END,
      'currentLease', CASE WHEN e.worker_instance_id IS NOT NULL AND e.lease_expires_at IS NOT NULL THEN
        jsonb_strip_nulls(jsonb_build_object('leaseEpoch', e.lease_epoch, 'workerInstanceId', e.worker_instance_id,
          'expiresAt', e.lease_expires_at, 'leaseId', e.lease_id, 'attemptIndex', e.current_attempt_index,
          'lastHeartbeatAt', e.lease_last_renewed_at)) END,
      'currentWaitpoint', e.current_waitpoint_id, 'createdAt', e.created_at,
      -- (NULL until the first change after the create, the count until the first claim: migration 0051)
      'lastMutationAt', coalesce(e.last_mutation_at, e.created_at), 'totalAttemptCount', coalesce(e.total_attempt_count, 0),
      'startedAt', e.started_at, 'completedAt', e.completed_at,
      'progress', CASE WHEN e.progress_updated_at IS NOT NULL THEN jsonb_strip_nulls(jsonb_build_object(
        'percent', e.progress_pct, 'message', nullif(e.progress_message, ''), 'updatedAt', e.progress_updated_at)) END,
      'cancellationReason', CASE WHEN e.terminal_outcome = 'cancelled' THEN nullif(e.cancellation_reason, '') END))
      || jsonb_build_object('tags', coalesce(d.tags, '{}'::jsonb)) || ffi_history_json(e)
    FROM exec_core e LEFT JOIN exec_data d ON ffi_eid(d.e_part, d.e_uuid) = p_eid COLLATE "default"
    WHERE e.partition_key = ffi_eid_part(p_eid) AND e.e_uuid = ffi_eid_uuid(p_eid))));
END $$;

-- ff_read_execution_info: readExecutionInfo — the state vector and the execution's fields.
--   args:   p_eid, p_now
--   reply:  {"ok": Model.ExecutionInfo or null}
--   errors: -
CREATE FUNCTION ff_read_execution_info(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((
    SELECT jsonb_strip_nulls(jsonb_build_object(
      'executionId', p_eid, 'namespace', e.namespace, 'laneId', e.lane_id, 'priority', e.priority,
      'executionKind', e.execution_kind,
      'stateVector', jsonb_build_object('lifecyclePhase', e.lifecycle_phase, 'ownershipState', e.ownership_state,
        'eligibilityState', e.eligibility_state, 'blockingReason', e.blocking_reason,
        'terminalOutcome', e.terminal_outcome, 'attemptState', e.attempt_state, 'publicState', e.public_state),
      'publicState', e.public_state, 'createdAt', e.created_at::text, 'startedAt', e.started_at::text,
      'completedAt', e.completed_at::text, 'currentAttemptIndex', coalesce(e.current_attempt_index, 0),
      'flowId', e.flow_id::text)) || jsonb_build_object('blockingDetail', coalesce(e.blocking_detail, '')) ||
      CASE WHEN e.terminal_outcome = 'cancelled' THEN
        jsonb_build_object('cancellationReason', coalesce(e.cancellation_reason, ''),
                           'cancelledBy', coalesce(e.cancelled_by, '')) ELSE '{}'::jsonb END
    FROM exec_core e WHERE e.partition_key = ffi_eid_part(p_eid) AND e.e_uuid = ffi_eid_uuid(p_eid))));
END $$;

-- ff_read_execution_state: readExecutionState — the public state.
--   args:   p_eid, p_now
--   reply:  {"ok": Model.PublicState or null}
--   errors: -
CREATE FUNCTION ff_read_execution_state(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT to_jsonb(public_state) FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid))));
END $$;

-- ff_get_execution_result: getExecutionResult — the result of a completed execution (none when
-- it stored no result): its exec_core row's, else exec_data's (migration 0050).
--   args:   p_eid, p_now
--   reply:  {"ok": the result in base64, or null}
--   errors: -
CREATE FUNCTION ff_get_execution_result(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT to_jsonb(encode(r.result, 'base64'))
                 FROM exec_core e CROSS JOIN LATERAL (SELECT coalesce(e.result, (SELECT d.result FROM exec_data d
                                                        WHERE ffi_eid(d.e_part, d.e_uuid) = p_eid COLLATE "default")) AS result) r
                 WHERE e.partition_key = ffi_eid_part(p_eid) AND e.e_uuid = ffi_eid_uuid(p_eid) AND e.terminal_outcome = 'success' AND length(r.result) > 0)));
END $$;

-- ff_get_execution_input: getExecutionInput (and, once per id, getExecutionInputs), with the
-- creator's traceparent when one was stored: the input and its encoding of the exec_core row, or
-- (exec_core.payload NULL) exec_data's (migration 0050).
--   args:   p_eid, p_now
--   reply:  {"ok": Model.ExecutionInput with the payload in base64, or null}
--   errors: -
CREATE FUNCTION ff_get_execution_input(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT jsonb_strip_nulls(jsonb_build_object('executionId', p_eid,
                   'executionKind', e.execution_kind, 'laneId', e.lane_id, 'namespace', e.namespace,
                   'payload', encode(coalesce(e.payload, d.payload), 'base64'),
                   'payloadEncoding', CASE WHEN e.payload IS NULL THEN d.payload_encoding ELSE e.payload_encoding END,
                   'traceParent', '00-' || substr(d.trace_context, 1, 32) || '-' || substr(d.trace_context, 33, 16)
                                  || '-' || substr(d.trace_context, 49, 2)))
                 FROM exec_core e LEFT JOIN LATERAL (SELECT d.payload, d.payload_encoding, d.trace_context FROM exec_data d
                                                     WHERE e.payload IS NULL AND ffi_eid(d.e_part, d.e_uuid) = p_eid COLLATE "default") d ON true
                 WHERE e.partition_key = ffi_eid_part(p_eid) AND e.e_uuid = ffi_eid_uuid(p_eid)
                   AND (e.payload IS NOT NULL OR d.payload IS NOT NULL))));
END $$;

-- ff_resolve_execution_flow_id: resolveExecutionFlowId.
--   args:   p_eid, p_now
--   reply:  {"ok": the flow id or null}
--   errors: -
CREATE FUNCTION ff_resolve_execution_flow_id(p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT to_jsonb(flow_id) FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid))));
END $$;

-- ---------------------------------------------------------------------------
-- listings (pages in key order; nextCursor is the last key of a full page with more after it)
-- ---------------------------------------------------------------------------

-- ff_list_executions: listExecutions — the executions of a partition, by id: the partition's
-- range of exec_core_pkey (partition_key, e_uuid) after the cursor's uuid. Within one partition the
-- order of the uuids is the order of the ids (byte by byte, COLLATE "C": the uuid's text is its
-- bytes in hexadecimal); a cursor of another partition starts the page at the partition's first id
-- when it sorts before the partition's ids, and ends it when after.
--   args:   p_partition, p_cursor (the last id of the previous page, or NULL), p_limit, p_now
--   reply:  {"ok": Model.ListExecutionsPage}
--   errors: -
CREATE FUNCTION ff_list_executions(p_partition int, p_cursor text, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_from text := '{fp:' || p_partition || '}:';
  v_to text := '{fp:' || p_partition || '};';
  v_after uuid;
BEGIN
  IF p_cursor IS NOT NULL AND p_cursor >= v_to COLLATE "C" THEN
    RETURN ffi_ok(jsonb_build_object('executions', '[]'::jsonb));
  END IF;
  IF p_cursor IS NOT NULL AND p_cursor > v_from COLLATE "C" THEN v_after := ffi_eid_uuid(p_cursor); END IF;
  RETURN (WITH page AS (
    SELECT e_uuid FROM exec_core
    WHERE partition_key = p_partition AND (v_after IS NULL OR e_uuid > v_after)
    ORDER BY e_uuid LIMIT p_limit + 1
  ), numbered AS (SELECT ffi_eid(p_partition, e_uuid) AS execution_id, row_number() OVER (ORDER BY e_uuid) AS rn FROM page)
  SELECT ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'executions', coalesce((SELECT jsonb_agg(execution_id ORDER BY rn) FROM numbered WHERE rn <= p_limit),
                           '[]'::jsonb),
    'nextCursor', (SELECT execution_id FROM numbered WHERE rn = p_limit AND (SELECT count(*) FROM page) > p_limit)))));
END $$;

-- ff_list_lane_executions: listLaneExecutions — a page of a lane's executions by creation time,
-- then id (p_newest: the newest first), after the position (p_at, p_id) (exclusive; the layer
-- passes a position before or after every entry for the start, with the id ''). It walks the lane
-- from the position, at most p_budget entries, and keeps the rows in one of p_states (NULL: any)
-- and of kind p_kind (NULL: any), up to p_limit + 1 of them. The index exec_core_by_lane keys the
-- lane and the creation time only (migration 0054: the executions of one millisecond share an
-- entry), so the walk orders a millisecond's executions by id itself (the partition's rank in text
-- order, ffi_eid_order, then the uuid): it first reads, in index order, the creation time of
-- the p_budget-th entry past the position's time (v_bound), and sorts only the rows between the
-- position and that time (the position's millisecond and v_bound's included), whatever the plan
-- (no bitmap scan: the bound's read walks the index in order, never sorts the lane).
--   args:   p_lane, p_states, p_kind, p_newest, p_at, p_id, p_limit, p_budget, p_now
--   reply:  {"ok": {"rows": [[execution id, public state, kind, created at], ...] (at most
--           p_limit + 1), "stop": [created at, execution id] of the p_budget-th entry walked when
--           fewer than p_limit + 1 rows were kept and the walk reached its budget, else null}}
--   errors: -
CREATE FUNCTION ff_list_lane_executions(p_lane text, p_states text[], p_kind text, p_newest boolean, p_at bigint,
  p_id text, p_limit int, p_budget int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off SET enable_bitmapscan = off
AS $$
DECLARE
  v_rows jsonb;
  v_n int;
  v_stop jsonb;
  -- the position's id as the walk orders it: its partition's rank in text order, then its uuid
  -- (a start position, before or after every entry by its time, has the id '')
  v_ord int := CASE WHEN p_id = '' THEN 0 ELSE ffi_eid_order(ffi_eid_part(p_id)) END;
  v_key uuid := CASE WHEN p_id = '' THEN '00000000-0000-0000-0000-000000000000' ELSE ffi_eid_uuid(p_id) END;
  -- the creation time of the p_budget-th entry past the position's millisecond (NULL: fewer): the walk's
  -- first p_budget entries all lie between the position and it
  v_bound bigint;
BEGIN
  IF p_newest THEN
    v_bound := (SELECT e.created_at FROM exec_core e WHERE e.lane_id = p_lane AND e.created_at < p_at
                ORDER BY e.created_at DESC OFFSET greatest(p_budget, 1) - 1 LIMIT 1);
    SELECT coalesce(jsonb_agg(jsonb_build_array(ffi_eid(h.partition_key, h.e_uuid), h.public_state, h.execution_kind,
                                                h.created_at)
                              ORDER BY h.created_at DESC, h.o DESC, h.e_uuid DESC), '[]'::jsonb), count(*)
    INTO v_rows, v_n
    FROM (SELECT s.* FROM (
            SELECT e.partition_key, ffi_eid_order(e.partition_key) AS o, e.e_uuid, e.public_state, e.execution_kind,
                   e.created_at FROM exec_core e
            WHERE e.lane_id = p_lane AND e.created_at >= coalesce(v_bound, -9223372036854775808)
              AND (e.created_at, ffi_eid_order(e.partition_key), e.e_uuid) < (p_at, v_ord, v_key)
            ORDER BY e.created_at DESC, ffi_eid_order(e.partition_key) DESC, e.e_uuid DESC LIMIT p_budget) s
          WHERE (p_states IS NULL OR s.public_state::text = ANY (p_states)) AND (p_kind IS NULL OR s.execution_kind = p_kind)
          LIMIT p_limit + 1) h;
    IF v_n <= p_limit THEN
      SELECT jsonb_build_array(e.created_at, ffi_eid(e.partition_key, e.e_uuid)) INTO v_stop FROM exec_core e
      WHERE e.lane_id = p_lane AND e.created_at >= coalesce(v_bound, -9223372036854775808)
              AND (e.created_at, ffi_eid_order(e.partition_key), e.e_uuid) < (p_at, v_ord, v_key)
      ORDER BY e.created_at DESC, ffi_eid_order(e.partition_key) DESC, e.e_uuid DESC OFFSET p_budget - 1 LIMIT 1;
    END IF;
  ELSE
    v_bound := (SELECT e.created_at FROM exec_core e WHERE e.lane_id = p_lane AND e.created_at > p_at
                ORDER BY e.created_at OFFSET greatest(p_budget, 1) - 1 LIMIT 1);
    SELECT coalesce(jsonb_agg(jsonb_build_array(ffi_eid(h.partition_key, h.e_uuid), h.public_state, h.execution_kind,
                                                h.created_at)
                              ORDER BY h.created_at, h.o, h.e_uuid), '[]'::jsonb), count(*)
    INTO v_rows, v_n
    FROM (SELECT s.* FROM (
            SELECT e.partition_key, ffi_eid_order(e.partition_key) AS o, e.e_uuid, e.public_state, e.execution_kind,
                   e.created_at FROM exec_core e
            WHERE e.lane_id = p_lane AND e.created_at <= coalesce(v_bound, 9223372036854775807)
              AND (e.created_at, ffi_eid_order(e.partition_key), e.e_uuid) > (p_at, v_ord, v_key)
            ORDER BY e.created_at, ffi_eid_order(e.partition_key), e.e_uuid LIMIT p_budget) s
          WHERE (p_states IS NULL OR s.public_state::text = ANY (p_states)) AND (p_kind IS NULL OR s.execution_kind = p_kind)
          LIMIT p_limit + 1) h;
    IF v_n <= p_limit THEN
      SELECT jsonb_build_array(e.created_at, ffi_eid(e.partition_key, e.e_uuid)) INTO v_stop FROM exec_core e
      WHERE e.lane_id = p_lane AND e.created_at <= coalesce(v_bound, 9223372036854775807)
              AND (e.created_at, ffi_eid_order(e.partition_key), e.e_uuid) > (p_at, v_ord, v_key)
      ORDER BY e.created_at, ffi_eid_order(e.partition_key), e.e_uuid OFFSET p_budget - 1 LIMIT 1;
    END IF;
  END IF;
  RETURN ffi_ok(jsonb_build_object('rows', v_rows, 'stop', v_stop));
END $$;

-- ff_count_lane_executions: countLaneExecutions — a lane's count per public state, the sum of its
-- lane_count rows (migration 0028); a state without executions is left out.
--   args:   p_lane, p_now
--   reply:  {"ok": {public state: count, ...}}
--   errors: -
CREATE FUNCTION ff_count_lane_executions(p_lane text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN ffi_ok(coalesce((SELECT jsonb_object_agg(c.public_state, c.n) FROM (
    SELECT public_state, sum(n) AS n FROM lane_count WHERE lane_id = p_lane GROUP BY public_state HAVING sum(n) <> 0
  ) c), '{}'::jsonb));
END $$;

-- ff_list_lanes: listLanes — the lanes ever used, by id.
--   args:   p_cursor, p_limit, p_now
--   reply:  {"ok": Model.ListLanesPage}
--   errors: -
CREATE FUNCTION ff_list_lanes(p_cursor text, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (WITH page AS (
    SELECT lane_id FROM lane_registry WHERE p_cursor IS NULL OR lane_id > p_cursor ORDER BY lane_id LIMIT p_limit + 1
  ), numbered AS (SELECT lane_id, row_number() OVER (ORDER BY lane_id) AS rn FROM page)
  SELECT ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'lanes', coalesce((SELECT jsonb_agg(lane_id ORDER BY lane_id) FROM numbered WHERE rn <= p_limit), '[]'::jsonb),
    'nextCursor', (SELECT lane_id FROM numbered WHERE rn = p_limit AND (SELECT count(*) FROM page) > p_limit)))));
END $$;

-- ff_list_suspended: listSuspended — the open suspensions of a partition by timeout (none last),
-- then id. A cursor whose entry has left resumes at the first entry with a greater id.
--   args:   p_partition, p_cursor (an execution id, or NULL), p_limit, p_now
--   reply:  {"ok": Model.ListSuspendedPage}
--   errors: -
CREATE FUNCTION ff_list_suspended(p_partition int, p_cursor text, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_score bigint; v_id text; v_inclusive boolean := false; v_rows jsonb; v_count int;
BEGIN
  IF p_cursor IS NOT NULL THEN
    -- just after the cursor's entry; if it left, from the first entry (in order) whose id is greater
    SELECT coalesce(timeout_at, 9999999999999), execution_id INTO v_score, v_id FROM suspension
    WHERE execution_id = p_cursor AND closed_at IS NULL AND partition_key = p_partition;
    IF v_id IS NULL THEN
      SELECT coalesce(timeout_at, 9999999999999), execution_id INTO v_score, v_id FROM suspension
      WHERE partition_key = p_partition AND closed_at IS NULL AND execution_id > p_cursor
      ORDER BY coalesce(timeout_at, 9999999999999), execution_id LIMIT 1;
      IF v_id IS NULL THEN RETURN ffi_ok(jsonb_build_object('entries', '[]'::jsonb)); END IF;
      v_inclusive := true;
    END IF;
  END IF;
  WITH page AS (
    SELECT execution_id, coalesce(timeout_at, 9999999999999) AS score, reason_code FROM suspension
    WHERE partition_key = p_partition AND closed_at IS NULL
      AND (p_cursor IS NULL
           OR (coalesce(timeout_at, 9999999999999), execution_id) > (v_score, v_id)
           OR (v_inclusive AND execution_id = v_id))
    ORDER BY coalesce(timeout_at, 9999999999999), execution_id LIMIT p_limit + 1
  )
  SELECT coalesce(jsonb_agg(jsonb_build_object('executionId', execution_id, 'suspendedAtMs', score,
           'reason', reason_code) ORDER BY score, execution_id), '[]'::jsonb), count(*)
  INTO v_rows, v_count FROM page;
  IF v_count > p_limit THEN
    v_rows := v_rows - p_limit;
    RETURN ffi_ok(jsonb_build_object('entries', v_rows, 'nextCursor', v_rows->(p_limit - 1)->>'executionId'));
  END IF;
  RETURN ffi_ok(jsonb_build_object('entries', v_rows));
END $$;

-- ff_list_pending_waitpoints: listPendingWaitpoints — the pending or active token-bound
-- waitpoints of an execution, by id, with the token's kid and a fingerprint (never the token).
--   args:   p_eid, p_after (the last waitpoint id of the previous page, or NULL), p_limit, p_now
--   reply:  {"ok": Model.ListPendingWaitpointsResult}
--   errors: execution_not_found
CREATE FUNCTION ff_list_pending_waitpoints(p_eid text, p_after uuid, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_page uuid[]; v_more boolean;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) OFFSET 0) THEN RETURN ffi_err('execution_not_found'); END IF;
  SELECT array_agg(waitpoint_id ORDER BY waitpoint_id::text) INTO v_page FROM (
    SELECT waitpoint_id FROM waitpoint WHERE execution_id = p_eid
      AND (p_after IS NULL OR waitpoint_id::text > p_after::text)
    ORDER BY waitpoint_id::text LIMIT p_limit + 1) q;
  v_more := coalesce(cardinality(v_page), 0) > p_limit;
  IF v_more THEN v_page := v_page[1:p_limit]; END IF;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'entries', coalesce((SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('waitpointId', w.waitpoint_id,
        'waitpointKey', w.waitpoint_key, 'state', w.state, 'requiredSignalNames', to_jsonb(w.required_signal_names),
        'createdAt', w.created_at, 'activatedAt', w.activated_at, 'expiresAt', w.expires_at,
        'executionId', w.execution_id, 'tokenKid', w.token_kid,
        'tokenFingerprint', left(substr(w.token, position(':' IN w.token) + 1), 16)))
        ORDER BY w.waitpoint_id::text)
      FROM waitpoint w WHERE w.waitpoint_id = ANY (v_page) AND w.state IN ('pending', 'active')
        AND w.token IS NOT NULL), '[]'::jsonb),
    'nextCursor', CASE WHEN v_more THEN v_page[p_limit] END)));
END $$;

-- ---------------------------------------------------------------------------
-- flows
-- ---------------------------------------------------------------------------

-- ff_describe_flow: describeFlow — the flow and its join groups with their counts. The groups are
-- read by the flow (edge_group_by_flow), so the cost follows the groups returned, not the members.
--   args:   p_flow, p_now
--   reply:  {"ok": Model.FlowSnapshot or null}
--   errors: -
CREATE FUNCTION ff_describe_flow(p_flow uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
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
  FROM edge_group g
  JOIN LATERAL (SELECT * FROM exec_core e
      WHERE e.partition_key = ffi_eid_part(g.downstream_id) AND e.e_uuid = ffi_eid_uuid(g.downstream_id) OFFSET 0) e ON true
    AND e.flow_id = p_flow
  WHERE g.flow_id = p_flow AND g.n > 0;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'flowId', f.flow_id, 'flowKind', f.flow_kind, 'namespace', f.namespace,
    'publicFlowState', ffi_flow_state(f), 'sealed', f.sealed, 'graphRevision', f.graph_revision,
    'nodeCount', f.node_count, 'edgeCount', f.edge_count, 'createdAt', f.created_at,
    'lastMutationAt', f.last_mutation_at, 'cancelledAt', f.cancelled_at,
    'cancelReason', nullif(f.cancel_reason, ''), 'cancellationPolicy', f.cancellation_policy)) ||
    jsonb_build_object('tags', f.tags, 'edgeGroups', v_groups));
END $$;

-- ff_read_flow_state: a flow's public state alone (ffi_flow_state, from the record's counters):
-- what the wait of cancelFlow polls, at the same cost whatever the flow's size.
--   args:   p_flow, p_now
--   reply:  {"ok": the public state, or null}
--   errors: -
CREATE FUNCTION ff_read_flow_state(p_flow uuid, p_now bigint)
RETURNS jsonb LANGUAGE sql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
  SELECT ffi_ok((SELECT to_jsonb(ffi_flow_state(f)) FROM flow_core f WHERE f.flow_id = p_flow))
$$;

-- ff_list_edges: listEdges — the outgoing or incoming edges of a node, by edge id.
--   args:   p_flow, p_node, p_outgoing, p_now
--   reply:  {"ok": [Model.EdgeSnapshot]}
--   errors: -
CREATE FUNCTION ff_list_edges(p_flow uuid, p_node text, p_outgoing boolean, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok(coalesce(jsonb_agg(ffi_edge_json(x) ORDER BY x.edge_id), '[]'::jsonb))
  FROM flow_edge x
  WHERE x.flow_id = p_flow AND CASE WHEN p_outgoing THEN x.upstream_id = p_node ELSE x.downstream_id = p_node END);
END $$;

-- ff_describe_edge: describeEdge.
--   args:   p_flow, p_edge, p_now
--   reply:  {"ok": Model.EdgeSnapshot or null}
--   errors: -
CREATE FUNCTION ff_describe_edge(p_flow uuid, p_edge uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT ffi_edge_json(x) FROM flow_edge x WHERE x.flow_id = p_flow AND x.edge_id = p_edge)));
END $$;

-- ff_list_flows: listFlows — the flows of a partition, by id.
--   args:   p_partition, p_cursor, p_limit, p_now
--   reply:  {"ok": {"flows": [{"flowId", "createdAt", "state"}], "nextCursor"}}
--   errors: -
CREATE FUNCTION ff_list_flows(p_partition int, p_cursor uuid, p_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (WITH page AS (
    SELECT flow_id, created_at, ffi_flow_state(f) AS public_flow_state FROM flow_core f
    WHERE partition_key = p_partition AND (p_cursor IS NULL OR flow_id > p_cursor)
    ORDER BY flow_id LIMIT p_limit + 1
  ), numbered AS (SELECT *, row_number() OVER (ORDER BY flow_id) AS rn FROM page)
  SELECT ffi_ok(jsonb_strip_nulls(jsonb_build_object(
    'flows', coalesce((SELECT jsonb_agg(jsonb_build_object('flowId', flow_id, 'createdAt', created_at,
                          'state', public_flow_state) ORDER BY flow_id) FROM numbered WHERE rn <= p_limit), '[]'::jsonb),
    'nextCursor', CASE WHEN (SELECT count(*) FROM page) > p_limit
                       THEN (SELECT flow_id FROM numbered WHERE rn = p_limit) END))));
END $$;
