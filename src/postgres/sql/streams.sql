-- ===========================================================================
-- streams.sql: an attempt's output stream — appending frames (durable,
-- best-effort with a rate-sized window, summary frames that merge-patch a
-- document), reading and tailing frames, reading the summary.
--
-- A frame id is "<ts>-<seq>": strictly increasing per stream, never "0-0".
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- the summary document
-- ---------------------------------------------------------------------------

-- ffi_merge_patch: JSON merge patch (RFC 7396): null deletes, objects merge recursively,
-- anything else replaces.
--   args:   p_target, p_patch
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_merge_patch(p_target jsonb, p_patch jsonb) RETURNS jsonb
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

-- ffi_rewrite_null: replaces the "__ff_null__" sentinel, at any depth, by a literal JSON null
-- (a patch cannot store a null otherwise).
--   args:   p
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_rewrite_null(p jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
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

-- ---------------------------------------------------------------------------
-- append
-- ---------------------------------------------------------------------------

-- ff_append_frame: appendFrame — appends a frame to the stream of the leased attempt (a
-- best-effort stream past its TTL starts over). Summary frames merge their patch into the
-- summary document; the stream keeps the newest frames only: p_retention for durable frames,
-- 64 for summaries, and for best-effort frames twice the frames their TTL holds at the
-- smoothed arrival rate, within [p_floor, p_ceiling]. A stream of best-effort frames only
-- expires 2 × TTL after its last append.
--   args:   the handle (p_eid, p_idx, p_att, p_lease, p_epoch), p_frame_type, p_payload (text),
--           p_bytes (payload size), p_mode (durable, best_effort, summary), p_correlation,
--           p_patch (summary: the parsed patch), p_patch_error (summary: why the patch does not
--           parse), p_ttl_ms, p_floor, p_ceiling, p_alpha (best-effort window), p_retention,
--           p_summary_max (the summary document's byte budget, Limits.summaryDocumentBytes), p_now
--   reply:  {"ok": Model.AppendFrameOutcome}
--   errors: stream_closed, stale_owner_cannot_append, invalid_input (a summary patch that does
--           not parse: raised), limit_exceeded (the patched summary is past p_summary_max: raised)
CREATE FUNCTION ff_append_frame(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint,
  p_frame_type text, p_payload text, p_bytes int, p_mode text, p_correlation text,
  p_patch jsonb, p_patch_error text, p_ttl_ms bigint, p_floor int, p_ceiling int, p_alpha float8,
  p_retention int, p_summary_max int, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
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
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
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
    IF ffi_json_size(v_doc) > p_summary_max THEN
      PERFORM ffi_raise('limit_exceeded',
        'append_frame: summary document: more than ' || p_summary_max || ' bytes (Limits.summaryDocumentBytes)');
    END IF;
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
  INSERT INTO stream_frame (execution_id, attempt_index, ts, seq, mode, fields, payload_bytes)
  VALUES (p_eid, p_idx, v_ts, v_seq, p_mode, v_fields, p_bytes);
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
    -- the oldest frames' row versions, then a TID scan (a semi-join could read the table whole)
    DELETE FROM stream_frame WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM stream_frame WHERE execution_id = p_eid AND attempt_index = p_idx
      ORDER BY ts, seq LIMIT (m.retained + 1 - v_keep)));
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

-- ---------------------------------------------------------------------------
-- reads
-- ---------------------------------------------------------------------------

-- ffi_stream_frames: the frames of a stream between two bounds. A bound is NULL (open) or a
-- (ts, seq) pair; p_from_last / p_to_first pin it to the last / first frame (the End cursor as
-- a lower bound, Start as an upper bound). An expired best-effort stream reads as empty.
--   args:   p_eid, p_idx, p_from_ts, p_from_seq, p_from_last, p_to_ts, p_to_seq, p_to_first,
--           p_exclusive (exclude the lower bound), p_exclude_be (skip best-effort frames),
--           p_limit, p_page_frames, p_page_bytes (a page's frame and payload-byte budget: it stops
--           before the frame that would pass either, never empty), p_now
--   reply:  Model.StreamFrames JSON ({"frames", "closedAt", "closedReason", "nextFrom" when the
--           budget left frames out})
--   errors: -
CREATE FUNCTION ffi_stream_frames(
  p_eid text, p_idx int, p_from_ts bigint, p_from_seq bigint, p_from_last boolean,
  p_to_ts bigint, p_to_seq bigint, p_to_first boolean,
  p_exclusive boolean, p_exclude_be boolean, p_limit int, p_page_frames int, p_page_bytes bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE m stream_meta; v_frames jsonb; v_from_ts bigint := p_from_ts; v_from_seq bigint := p_from_seq;
  v_to_ts bigint := p_to_ts; v_to_seq bigint := p_to_seq; v_page int := least(p_limit, p_page_frames);
  v_next text; v_count int;
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
  WITH c AS (
    SELECT ts, seq, row_number() OVER w AS n, sum(bytes) OVER w AS run FROM (
      SELECT ts, seq, coalesce(payload_bytes, octet_length(fields->>'payload'), 0) AS bytes FROM stream_frame
      WHERE execution_id = p_eid AND attempt_index = p_idx
        AND (v_from_ts IS NULL OR (CASE WHEN p_exclusive THEN (ts, seq::bigint) > (v_from_ts, v_from_seq)
                                        ELSE (ts, seq::bigint) >= (v_from_ts, v_from_seq) END))
        AND (v_to_ts IS NULL OR (ts, seq::bigint) <= (v_to_ts, v_to_seq))
        AND (NOT p_exclude_be OR mode <> 'best_effort')
      ORDER BY ts, seq LIMIT v_page + 1) x
    WINDOW w AS (ORDER BY ts, seq ROWS UNBOUNDED PRECEDING)
  ), k AS (
    SELECT ts, seq, n <= v_page AND (n = 1 OR run <= p_page_bytes) AS keep FROM c
  )
  SELECT
    (SELECT coalesce(jsonb_agg(jsonb_build_object('id', f.ts || '-' || f.seq, 'fields', f.fields) ORDER BY f.ts, f.seq),
                     '[]'::jsonb)
     FROM k JOIN stream_frame f ON f.execution_id = p_eid AND f.attempt_index = p_idx AND f.ts = k.ts AND f.seq = k.seq
     WHERE k.keep),
    (SELECT k.ts || '-' || k.seq FROM k WHERE NOT k.keep ORDER BY k.ts, k.seq LIMIT 1),
    (SELECT count(*) FROM k WHERE k.keep)
  INTO v_frames, v_next, v_count;
  IF v_count >= p_limit OR p_exclusive THEN v_next := NULL; END IF;
  RETURN jsonb_strip_nulls(jsonb_build_object('frames', v_frames, 'closedAt', m.closed_at,
                                              'closedReason', m.closed_reason, 'nextFrom', v_next));
END $$;

-- ff_read_stream: readStream — the frames between two bounds, inclusive.
--   args:   p_eid, p_idx, p_from_ts, p_from_seq, p_from_last, p_to_ts, p_to_seq, p_to_first,
--           p_limit, p_page_frames, p_page_bytes, p_now
--   reply:  {"ok": Model.StreamFrames}
--   errors: -
CREATE FUNCTION ff_read_stream(
  p_eid text, p_idx int, p_from_ts bigint, p_from_seq bigint, p_from_last boolean,
  p_to_ts bigint, p_to_seq bigint, p_to_first boolean, p_limit int, p_page_frames int, p_page_bytes bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok(ffi_stream_frames(p_eid, p_idx, p_from_ts, p_from_seq, p_from_last, p_to_ts, p_to_seq, p_to_first,
                                  false, false, p_limit, p_page_frames, p_page_bytes, coalesce(p_now, ffi_now()))));
END $$;

-- ff_tail_stream: one poll of tailStream — the frames after a position (the layer repeats it
-- while blocking).
--   args:   p_eid, p_idx, p_after_ts, p_after_seq, p_exclude_be, p_limit, p_page_frames,
--           p_page_bytes, p_now
--   reply:  {"ok": Model.StreamFrames}
--   errors: -
CREATE FUNCTION ff_tail_stream(
  p_eid text, p_idx int, p_after_ts bigint, p_after_seq bigint, p_exclude_be boolean, p_limit int, p_page_frames int,
  p_page_bytes bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok(ffi_stream_frames(p_eid, p_idx, p_after_ts, p_after_seq, false, NULL, NULL, false, true, p_exclude_be,
                                  p_limit, p_page_frames, p_page_bytes, coalesce(p_now, ffi_now()))));
END $$;

-- ff_read_summary: readSummary — the summary document of a stream, or null.
--   args:   p_eid, p_idx, p_now
--   reply:  {"ok": {"documentJson", "version", "patchKind", "lastUpdatedMs", "firstAppliedMs"}
--           or null}
--   errors: -
CREATE FUNCTION ff_read_summary(p_eid text, p_idx int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  RETURN (SELECT ffi_ok((SELECT jsonb_build_object('documentJson', document::text, 'version', version,
                   'patchKind', patch_kind, 'lastUpdatedMs', last_updated, 'firstAppliedMs', first_applied)
                 FROM stream_summary s JOIN stream_meta m USING (execution_id, attempt_index)
  WHERE s.execution_id = p_eid AND s.attempt_index = p_idx AND s.version > 0
    AND (m.be_expires_at IS NULL OR m.be_expires_at > coalesce(p_now, ffi_now())))));
END $$;

-- ffi_json_size: the bytes of a document's compact JSON text (jsonb's own text puts a space after
-- ':' and ','), the measure of the summary document's budget.
--   args:   p (a document)
--   reply:  bigint
--   errors: -
CREATE FUNCTION ffi_json_size(p jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE jsonb_typeof(p)
    WHEN 'object' THEN 2 + coalesce((SELECT sum(octet_length(to_jsonb(key)::text) + 1 + ffi_json_size(value)) + count(*) - 1
                                     FROM jsonb_each(p)), 0)
    WHEN 'array' THEN 2 + coalesce((SELECT sum(ffi_json_size(value)) + count(*) - 1 FROM jsonb_array_elements(p)), 0)
    ELSE octet_length(p::text)
  END
$$;
