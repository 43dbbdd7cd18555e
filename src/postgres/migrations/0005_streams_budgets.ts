/**
 * Migration 0005: attempt streams (per-attempt `<ms>-<seq>` ids, JSON merge
 * patch summaries, best-effort trimming) and budgets / quotas.
 */
export const sql = String.raw`
-- ---------------------------------------------------------------------------
-- streams (model.md §12)
-- ---------------------------------------------------------------------------

-- RFC 7396: null deletes, objects merge recursively, anything else replaces.
CREATE OR REPLACE FUNCTION ffi_merge_patch(p_target jsonb, p_patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE v_result jsonb; k text; v jsonb;
BEGIN
  IF jsonb_typeof(p_patch) <> 'object' THEN RETURN p_patch; END IF;
  v_result := CASE WHEN p_target IS NOT NULL AND jsonb_typeof(p_target) = 'object' THEN p_target ELSE '{}'::jsonb END;
  FOR k, v IN SELECT * FROM jsonb_each(p_patch) LOOP
    IF jsonb_typeof(v) = 'null' THEN
      v_result := v_result - k;
    ELSE
      v_result := jsonb_set(v_result, ARRAY[k], ffi_merge_patch(v_result->k, v), true);
    END IF;
  END LOOP;
  RETURN v_result;
END $$;

-- The "__ff_null__" sentinel stores a literal JSON null.
CREATE OR REPLACE FUNCTION ffi_rewrite_null(p jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  CASE jsonb_typeof(p)
    WHEN 'string' THEN RETURN CASE WHEN p = '"__ff_null__"'::jsonb THEN 'null'::jsonb ELSE p END;
    WHEN 'object' THEN
      RETURN (SELECT coalesce(jsonb_object_agg(key, ffi_rewrite_null(value)), '{}'::jsonb) FROM jsonb_each(p));
    WHEN 'array' THEN
      RETURN (SELECT coalesce(jsonb_agg(ffi_rewrite_null(value) ORDER BY ord), '[]'::jsonb)
              FROM jsonb_array_elements(p) WITH ORDINALITY AS t(value, ord));
    ELSE RETURN p;
  END CASE;
END $$;

CREATE OR REPLACE FUNCTION ff_append_frame(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint,
  p_frame_type text, p_payload text, p_bytes int, p_mode text, p_correlation text,
  p_patch jsonb, p_patch_error text, p_ttl_ms bigint, p_floor int, p_ceiling int, p_alpha float8,
  p_retention int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  m stream_meta;
  v_ts bigint;
  v_seq int;
  v_fields jsonb;
  v_version int;
  v_doc jsonb;
  v_keep int;
  v_ema float8;
  v_dt bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid;
  IF NOT FOUND OR e.lifecycle_phase <> 'active' THEN RETURN ffi_err('stream_closed'); END IF;
  IF e.ownership_state <> 'leased' OR coalesce(e.lease_expires_at, 0) <= v_now
     OR e.current_attempt_index IS DISTINCT FROM p_idx OR e.lease_id IS DISTINCT FROM p_lease
     OR e.lease_epoch <> p_epoch THEN
    RETURN ffi_err('stale_owner_cannot_append');
  END IF;
  INSERT INTO stream_meta (execution_id, attempt_index, attempt_id, created_at)
  VALUES (p_eid, p_idx, p_att, v_now) ON CONFLICT (execution_id, attempt_index) DO NOTHING;
  SELECT * INTO m FROM stream_meta WHERE execution_id = p_eid AND attempt_index = p_idx FOR UPDATE;
  IF m.be_expires_at IS NOT NULL AND m.be_expires_at <= v_now THEN
    -- a best-effort stream past its TTL is gone: start a new one
    DELETE FROM stream_frame WHERE execution_id = p_eid AND attempt_index = p_idx;
    DELETE FROM stream_summary WHERE execution_id = p_eid AND attempt_index = p_idx;
    UPDATE stream_meta SET attempt_id = p_att, created_at = v_now, closed_at = NULL, closed_reason = NULL,
      frame_count = 0, retained = 0, total_bytes = 0, last_ts = 0, last_seq = 0, last_frame_at = NULL,
      has_durable_frame = false, ema_rate_hz = NULL, last_append_ts = 0, maxlen_applied = 0, be_expires_at = NULL
    WHERE execution_id = p_eid AND attempt_index = p_idx
    RETURNING * INTO m;
  END IF;
  IF m.closed_at IS NOT NULL THEN RETURN ffi_err('stream_closed'); END IF;
  IF p_mode = 'summary' THEN
    IF p_patch_error IS NOT NULL THEN PERFORM ffi_raise('invalid_input', p_patch_error); END IF;
    SELECT document, version INTO v_doc, v_version FROM stream_summary
    WHERE execution_id = p_eid AND attempt_index = p_idx FOR UPDATE;
    v_doc := ffi_rewrite_null(ffi_merge_patch(coalesce(v_doc, '{}'::jsonb), p_patch));
    v_version := coalesce(v_version, 0) + 1;
    INSERT INTO stream_summary (execution_id, attempt_index, document, version, patch_kind, first_applied, last_updated)
    VALUES (p_eid, p_idx, v_doc, v_version, 'json-merge-patch', v_now, v_now)
    ON CONFLICT (execution_id, attempt_index) DO UPDATE
      SET document = EXCLUDED.document, version = EXCLUDED.version, last_updated = EXCLUDED.last_updated;
  END IF;
  v_ts := greatest(v_now, m.last_ts);
  -- ids are strictly increasing and never "0-0" (the from-the-beginning cursor)
  v_seq := CASE WHEN v_ts = m.last_ts THEN m.last_seq + 1 ELSE 0 END;
  v_fields := jsonb_strip_nulls(jsonb_build_object('frame_type', p_frame_type, 'ts', v_now::text,
    'payload', p_payload, 'encoding', 'utf8', 'source', 'worker', 'mode', p_mode,
    'correlation_id', p_correlation,
    'summary_version', CASE WHEN p_mode = 'summary' THEN v_version::text END,
    'ttl_ms', CASE WHEN p_mode = 'best_effort' THEN p_ttl_ms::text END));
  INSERT INTO stream_frame (execution_id, attempt_index, ts, seq, mode, fields)
  VALUES (p_eid, p_idx, v_ts, v_seq, p_mode, v_fields);
  IF p_mode = 'best_effort' THEN
    IF m.ema_rate_hz IS NULL OR m.last_frame_at IS NULL THEN
      v_ema := (p_floor::float8 / 2) / greatest(p_ttl_ms::float8 / 1000, 1e-9);
    ELSE
      v_dt := greatest(v_now - m.last_frame_at, 1);
      v_ema := p_alpha * (1000.0 / v_dt) + (1 - p_alpha) * m.ema_rate_hz;
    END IF;
    v_keep := least(greatest(ceil(v_ema * p_ttl_ms / 1000.0 * 2)::int, p_floor), p_ceiling);
  ELSIF p_mode = 'summary' THEN
    v_keep := 64;
  ELSE
    v_keep := p_retention;
  END IF;
  IF m.retained + 1 > v_keep THEN
    DELETE FROM stream_frame WHERE ctid IN (
      SELECT ctid FROM stream_frame WHERE execution_id = p_eid AND attempt_index = p_idx
      ORDER BY ts, seq LIMIT (m.retained + 1 - v_keep));
  END IF;
  UPDATE stream_meta SET frame_count = frame_count + 1, retained = least(retained + 1, v_keep),
    total_bytes = total_bytes + p_bytes, last_ts = v_ts, last_seq = v_seq, last_frame_at = v_now,
    has_durable_frame = has_durable_frame OR p_mode <> 'best_effort',
    ema_rate_hz = CASE WHEN p_mode = 'best_effort' THEN v_ema ELSE ema_rate_hz END,
    last_append_ts = CASE WHEN p_mode = 'best_effort' THEN v_now ELSE last_append_ts END,
    maxlen_applied = CASE WHEN p_mode = 'best_effort' THEN v_keep ELSE maxlen_applied END,
    be_expires_at = CASE WHEN has_durable_frame OR p_mode <> 'best_effort' THEN NULL ELSE v_now + 2 * p_ttl_ms END
  WHERE execution_id = p_eid AND attempt_index = p_idx
  RETURNING * INTO m;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('streamId', v_ts || '-' || v_seq, 'frameCount', m.frame_count,
    'summaryVersion', CASE WHEN p_mode = 'summary' THEN v_version END)));
END $$;

-- Frames of a stream between two bounds. A bound is NULL (open), or the
-- (ts, seq) pair; p_from_last / p_to_first pin it to the last / first entry
-- (cursors End as a lower and Start as an upper bound).
CREATE OR REPLACE FUNCTION ffi_stream_frames(
  p_eid text, p_idx int, p_from_ts bigint, p_from_seq bigint, p_from_last boolean,
  p_to_ts bigint, p_to_seq bigint, p_to_first boolean,
  p_exclusive boolean, p_exclude_be boolean, p_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE m stream_meta; v_frames jsonb; v_from_ts bigint := p_from_ts; v_from_seq bigint := p_from_seq;
  v_to_ts bigint := p_to_ts; v_to_seq bigint := p_to_seq;
BEGIN
  SELECT * INTO m FROM stream_meta WHERE execution_id = p_eid AND attempt_index = p_idx;
  IF NOT FOUND OR (m.be_expires_at IS NOT NULL AND m.be_expires_at <= p_now) THEN
    RETURN jsonb_build_object('frames', '[]'::jsonb);
  END IF;
  IF p_from_last THEN
    SELECT ts, seq INTO v_from_ts, v_from_seq FROM stream_frame WHERE execution_id = p_eid AND attempt_index = p_idx
    ORDER BY ts DESC, seq DESC LIMIT 1;
  END IF;
  IF p_to_first THEN
    SELECT ts, seq INTO v_to_ts, v_to_seq FROM stream_frame WHERE execution_id = p_eid AND attempt_index = p_idx
    ORDER BY ts, seq LIMIT 1;
  END IF;
  SELECT coalesce(jsonb_agg(jsonb_build_object('id', ts || '-' || seq, 'fields', fields) ORDER BY ts, seq), '[]'::jsonb)
  INTO v_frames FROM (
    SELECT ts, seq, fields FROM stream_frame
    WHERE execution_id = p_eid AND attempt_index = p_idx
      AND (v_from_ts IS NULL OR (CASE WHEN p_exclusive THEN (ts, seq::bigint) > (v_from_ts, v_from_seq)
                                      ELSE (ts, seq::bigint) >= (v_from_ts, v_from_seq) END))
      AND (v_to_ts IS NULL OR (ts, seq::bigint) <= (v_to_ts, v_to_seq))
      AND (NOT p_exclude_be OR mode <> 'best_effort')
    ORDER BY ts, seq LIMIT p_limit) f;
  RETURN jsonb_strip_nulls(jsonb_build_object('frames', v_frames, 'closedAt', m.closed_at,
                                              'closedReason', m.closed_reason));
END $$;

CREATE OR REPLACE FUNCTION ff_read_stream(
  p_eid text, p_idx int, p_from_ts bigint, p_from_seq bigint, p_from_last boolean,
  p_to_ts bigint, p_to_seq bigint, p_to_first boolean, p_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok(ffi_stream_frames(p_eid, p_idx, p_from_ts, p_from_seq, p_from_last, p_to_ts, p_to_seq, p_to_first,
                                  false, false, p_limit, coalesce(p_now, ffi_now()))));
END $$;

CREATE OR REPLACE FUNCTION ff_tail_stream(
  p_eid text, p_idx int, p_after_ts bigint, p_after_seq bigint, p_exclude_be boolean, p_limit int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok(ffi_stream_frames(p_eid, p_idx, p_after_ts, p_after_seq, false, NULL, NULL, false, true, p_exclude_be,
                                  p_limit, coalesce(p_now, ffi_now()))));
END $$;

CREATE OR REPLACE FUNCTION ff_read_summary(p_eid text, p_idx int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT jsonb_build_object('documentJson', document::text, 'version', version,
                   'patchKind', patch_kind, 'lastUpdatedMs', last_updated, 'firstAppliedMs', first_applied)
                 FROM stream_summary s JOIN stream_meta m USING (execution_id, attempt_index)
  WHERE s.execution_id = p_eid AND s.attempt_index = p_idx AND s.version > 0
    AND (m.be_expires_at IS NULL OR m.be_expires_at > coalesce(p_now, ffi_now())))));
END $$;

-- ---------------------------------------------------------------------------
-- budgets (model.md §13)
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION ff_create_budget(
  p_budget uuid, p_partition int, p_scope_type text, p_scope_id text, p_enforcement text, p_on_hard text,
  p_on_soft text, p_reset_interval bigint, p_dims text[], p_hard bigint[], p_soft bigint[], p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO budget (budget_id, partition_key, scope_type, scope_id, enforcement_mode, on_hard_limit, on_soft_limit,
    reset_interval_ms, next_reset_at, created_at, last_updated_at)
  VALUES (p_budget, p_partition, p_scope_type, p_scope_id, p_enforcement, p_on_hard, p_on_soft, p_reset_interval,
    CASE WHEN p_reset_interval > 0 THEN v_now + p_reset_interval END, v_now, v_now)
  ON CONFLICT (budget_id) DO NOTHING;
  IF NOT FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'budgetId', p_budget)); END IF;
  INSERT INTO budget_limit (budget_id, dimension, hard_limit, soft_limit)
  SELECT p_budget, d, h, s FROM unnest(p_dims, p_hard, p_soft) AS t(d, h, s)
  ON CONFLICT (budget_id, dimension) DO UPDATE SET hard_limit = EXCLUDED.hard_limit, soft_limit = EXCLUDED.soft_limit;
  IF p_reset_interval > 0 THEN PERFORM ffi_timer_set('budget_reset', p_budget::text, v_now + p_reset_interval); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'budgetId', p_budget));
END $$;

-- Check every hard limit before incrementing anything (zero overshoot).
CREATE OR REPLACE FUNCTION ff_report_usage(p_budget uuid, p_dims text[], p_deltas bigint[], p_dedup text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  r record;
  v_soft record;
BEGIN
  -- the budget row (or, for an unknown budget, an advisory lock) serialises reports
  -- the budget row serialises reports; an unknown budget is unlimited (D-19)
  PERFORM 1 FROM budget WHERE budget_id = p_budget FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Ok')); END IF;
  IF p_dedup IS NOT NULL AND p_dedup <> '' AND EXISTS (
       SELECT 1 FROM budget_dedup WHERE budget_id = p_budget AND dedup_key = p_dedup AND expires_at > v_now) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyApplied'));
  END IF;
  FOR r IN
    SELECT t.d, t.delta, coalesce(u.value, 0) AS cur, coalesce(l.hard_limit, 0) AS hard
    FROM unnest(p_dims, p_deltas) AS t(d, delta)
    LEFT JOIN budget_usage u ON u.budget_id = p_budget AND u.dimension = t.d
    LEFT JOIN budget_limit l ON l.budget_id = p_budget AND l.dimension = t.d
    ORDER BY t.d COLLATE "C"
  LOOP
    IF r.hard > 0 AND r.cur + r.delta > r.hard THEN
      UPDATE budget SET breach_count = breach_count + 1, last_breach_at = v_now, last_breach_dim = r.d,
        last_updated_at = v_now
      WHERE budget_id = p_budget;
      RETURN ffi_ok(jsonb_build_object('_tag', 'HardBreach', 'dimension', r.d, 'currentUsage', r.cur,
                                       'hardLimit', r.hard));
    END IF;
  END LOOP;
  INSERT INTO budget_usage (budget_id, dimension, value)
  SELECT p_budget, d, delta FROM unnest(p_dims, p_deltas) AS t(d, delta)
  ON CONFLICT (budget_id, dimension) DO UPDATE SET value = budget_usage.value + EXCLUDED.value;
  SELECT u.dimension AS d, u.value AS cur, l.soft_limit AS soft INTO v_soft
  FROM budget_usage u JOIN budget_limit l ON l.budget_id = u.budget_id AND l.dimension = u.dimension
  WHERE u.budget_id = p_budget AND u.dimension = ANY (p_dims) AND l.soft_limit > 0 AND u.value > l.soft_limit
  ORDER BY u.dimension LIMIT 1;
  IF p_dedup IS NOT NULL AND p_dedup <> '' THEN
    INSERT INTO budget_dedup VALUES (p_budget, p_dedup, v_now + 86400000)
    ON CONFLICT (budget_id, dedup_key) DO UPDATE SET expires_at = EXCLUDED.expires_at;
  END IF;
  IF v_soft.d IS NOT NULL THEN
    UPDATE budget SET soft_breach_count = soft_breach_count + 1, last_updated_at = v_now WHERE budget_id = p_budget;
    RETURN ffi_ok(jsonb_build_object('_tag', 'SoftBreach', 'dimension', v_soft.d, 'currentUsage', v_soft.cur,
                                     'softLimit', v_soft.soft));
  END IF;
  UPDATE budget SET last_updated_at = v_now WHERE budget_id = p_budget;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Ok'));
END $$;

CREATE OR REPLACE FUNCTION ffi_reset_budget(p_budget uuid, p_now bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_next bigint;
BEGIN
  UPDATE budget_usage SET value = 0 WHERE budget_id = p_budget;
  UPDATE budget SET reset_count = reset_count + 1, last_reset_at = p_now, last_updated_at = p_now,
    last_breach_at = NULL, last_breach_dim = NULL,
    next_reset_at = CASE WHEN reset_interval_ms > 0 THEN p_now + reset_interval_ms END
  WHERE budget_id = p_budget RETURNING next_reset_at INTO v_next;
  IF v_next IS NOT NULL THEN
    PERFORM ffi_timer_set('budget_reset', p_budget::text, v_next);
  ELSE
    PERFORM ffi_timer_del('budget_reset', p_budget::text);
  END IF;
  RETURN coalesce(v_next, 0);
END $$;

CREATE OR REPLACE FUNCTION ff_reset_budget(p_budget uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  PERFORM 1 FROM budget WHERE budget_id = p_budget FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('budget_not_found'); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Reset', 'nextResetAt', ffi_reset_budget(p_budget, v_now)));
END $$;

CREATE OR REPLACE FUNCTION ff_get_budget_status(p_budget uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
DECLARE b budget;
BEGIN
  SELECT * INTO b FROM budget WHERE budget_id = p_budget;
  IF NOT FOUND THEN RETURN ffi_err('budget_not_found'); END IF;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('budgetId', b.budget_id, 'scopeType', b.scope_type,
    'scopeId', b.scope_id, 'enforcementMode', b.enforcement_mode,
    'usage', (SELECT coalesce(jsonb_object_agg(dimension, value), '{}'::jsonb) FROM budget_usage WHERE budget_id = p_budget),
    'hardLimits', (SELECT coalesce(jsonb_object_agg(dimension, hard_limit), '{}'::jsonb) FROM budget_limit
                   WHERE budget_id = p_budget AND hard_limit > 0),
    'softLimits', (SELECT coalesce(jsonb_object_agg(dimension, soft_limit), '{}'::jsonb) FROM budget_limit
                   WHERE budget_id = p_budget AND soft_limit > 0),
    'breachCount', b.breach_count, 'softBreachCount', b.soft_breach_count,
    'lastBreachAt', b.last_breach_at::text, 'lastBreachDim', b.last_breach_dim,
    'nextResetAt', b.next_reset_at::text, 'createdAt', b.created_at::text)));
END $$;

CREATE OR REPLACE FUNCTION ff_create_quota_policy(
  p_quota uuid, p_partition int, p_window bigint, p_max_requests bigint, p_max_concurrent bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO quota_policy (quota_policy_id, partition_key, window_seconds, max_requests_per_window, max_concurrent,
    created_at)
  VALUES (p_quota, p_partition, p_window, p_max_requests, p_max_concurrent, v_now)
  ON CONFLICT (quota_policy_id) DO NOTHING;
  IF FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'quotaPolicyId', p_quota)); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'quotaPolicyId', p_quota));
END $$;
`
