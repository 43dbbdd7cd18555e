-- ===========================================================================
-- flow_cancel.sql: flow cancellation — cancel_flow (its atomic header),
-- cancel_flow_header and ack_cancel_member (the cascade over the members).
-- Loaded right after flows.sql, whose helpers it uses.
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- cancel_flow, cancel_flow_header, ack_cancel_member
-- ---------------------------------------------------------------------------

-- ffi_cancel_flow: the atomic header of a flow cancellation: the flow becomes cancelled when the
-- policy covers no open member; else cancelling, the members the policy covers are owed a cancel
-- (with a backlog entry after p_grace_ms), up to p_inline_limit of them are cancelled in this
-- transaction (the backlog pass does the rest), and the flow is cancelled when none is left.
--   args:   f (the locked flow row), p_policy (cancel_all, cancel_pending, ...), p_reason,
--           p_grace_ms, p_inline_limit, p_now
--   reply:  the member ids (a JSON array)
--   errors: -
CREATE FUNCTION ffi_cancel_flow(
  f flow_core, p_policy text, p_reason text, p_grace_ms bigint, p_inline_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  v_members jsonb;
  v_owed text[];
  v_id text;
  v_left int;
BEGIN
  SELECT coalesce(jsonb_agg(ffi_eid(partition_key, e_uuid) ORDER BY ffi_eid_order(partition_key), e_uuid), '[]'::jsonb) INTO v_members
  FROM exec_core WHERE flow_id = f.flow_id;
  SELECT coalesce(array_agg(ffi_eid(partition_key, e_uuid) ORDER BY ffi_eid_order(partition_key), e_uuid), '{}') INTO v_owed
  FROM exec_core
  WHERE flow_id = f.flow_id AND (
    (p_policy = 'cancel_all' AND lifecycle_phase <> 'terminal')
    OR (p_policy = 'cancel_pending' AND lifecycle_phase IN ('submitted', 'runnable')));
  -- nothing owed: cancelled in one change (one FlowStateChanged, as on the other backends)
  UPDATE flow_core SET public_flow_state = CASE WHEN cardinality(v_owed) = 0 THEN 'cancelled' ELSE 'cancelling' END,
    cancelled_at = p_now, cancel_reason = p_reason, cancellation_policy = p_policy, last_mutation_at = p_now
  WHERE flow_id = f.flow_id;
  IF cardinality(v_owed) = 0 THEN
    DELETE FROM cancel_backlog WHERE flow_id = f.flow_id;
    RETURN v_members;
  END IF;
  INSERT INTO cancel_owed (flow_id, execution_id) SELECT f.flow_id, unnest(v_owed) ON CONFLICT DO NOTHING;
  INSERT INTO cancel_backlog (flow_id, requested_at, grace_until, reason, cancellation_policy)
  VALUES (f.flow_id, p_now, p_now + p_grace_ms, p_reason, p_policy)
  ON CONFLICT (flow_id) DO UPDATE SET grace_until = EXCLUDED.grace_until, reason = EXCLUDED.reason,
    cancellation_policy = EXCLUDED.cancellation_policy;
  -- bounded atomic work: up to p_inline_limit members now, the backlog pass does the rest
  FOREACH v_id IN ARRAY v_owed[1:greatest(p_inline_limit, 0)] LOOP
    PERFORM 1 FROM exec_core WHERE partition_key = ffi_eid_part(v_id) AND e_uuid = ffi_eid_uuid(v_id) FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
      PERFORM ffi_cancel_exec(v_id, coalesce(nullif(p_reason, ''), 'flow_cancelled'), 'flow_cascade', p_now);
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

-- ff_cancel_flow: cancelFlow — ffi_cancel_flow with no grace and the layer's inline limit.
--   args:   p_flow, p_policy, p_reason, p_inline_limit, p_now
--   reply:  {"ok": Model.CancelFlowResult}
--   errors: flow_not_found, flow_already_terminal
CREATE FUNCTION ff_cancel_flow(p_flow uuid, p_policy text, p_reason text, p_inline_limit int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); f flow_core; v_members jsonb;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF ffi_flow_final(f) THEN RETURN ffi_err('flow_already_terminal'); END IF;
  v_members := ffi_cancel_flow(f, p_policy, p_reason, 0, p_inline_limit, v_now);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Cancelled', 'cancellationPolicy', p_policy,
                                   'memberExecutionIds', v_members));
END $$;

-- ff_cancel_flow_header: cancelFlowHeader — the header only (nothing cancelled inline, owed
-- members go to the backlog after a 30 s grace); an ended flow answers AlreadyTerminal with
-- what was stored.
--   args:   p_flow, p_policy, p_reason, p_now
--   reply:  {"ok": Model.CancelFlowHeader}
--   errors: flow_not_found
CREATE FUNCTION ff_cancel_flow_header(p_flow uuid, p_policy text, p_reason text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); f flow_core; v_members jsonb;
BEGIN
  SELECT * INTO f FROM flow_core WHERE flow_id = p_flow FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('flow_not_found'); END IF;
  IF ffi_flow_final(f) THEN
    SELECT coalesce(jsonb_agg(ffi_eid(partition_key, e_uuid) ORDER BY ffi_eid_order(partition_key), e_uuid), '[]'::jsonb) INTO v_members
    FROM exec_core WHERE flow_id = p_flow;
    RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('_tag', 'AlreadyTerminal',
      'storedCancellationPolicy', nullif(f.cancellation_policy, ''), 'storedCancelReason', nullif(f.cancel_reason, ''),
      'memberExecutionIds', v_members)));
  END IF;
  v_members := ffi_cancel_flow(f, p_policy, p_reason, 30000, 0, v_now);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Cancelled', 'cancellationPolicy', p_policy,
                                   'memberExecutionIds', v_members));
END $$;

-- ff_ack_cancel_member: ackCancelMember — the caller cancelled an owed member itself: drop it
-- from the owed set and settle the flow.
--   args:   p_flow, p_eid, p_now
--   reply:  {"ok": null}
--   errors: -
CREATE FUNCTION ff_ack_cancel_member(p_flow uuid, p_eid text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  DELETE FROM cancel_owed WHERE flow_id = p_flow AND execution_id = p_eid;
  PERFORM ffi_flow_settle(p_flow, v_now, true);
  RETURN ffi_ok();
END $$;
