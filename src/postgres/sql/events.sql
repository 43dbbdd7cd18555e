-- ===========================================================================
-- events.sql: the event log (docs/design/events.md). The triggers of
-- migration 0029 hand every change of an exec_core or flow_core row that an
-- event reports to ffi_exec_events / ffi_flow_event, which write the event in
-- the transaction of the change: a rolled-back change leaves no event.
--
-- Order and visibility: an event's position is (k, id). k is the writing
-- transaction's id (pg_current_xact_id), or the row's previous event_k when
-- that is larger: a transaction that took its id before another one that
-- changed the same execution first still writes after it. Every event a
-- running transaction writes has k >= its id >= the oldest running id
-- (xmin), so the events with k < xmin are all committed or gone for good: a
-- read returns only those, in (k, id) order, and one that resumes after a
-- position never misses an event that commits later.
-- ===========================================================================

-- ffi_xid: the current transaction's id (assigning one), as bigint.
--   args:   -
--   reply:  bigint
--   errors: -
CREATE FUNCTION ffi_xid() RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT pg_current_xact_id()::text::bigint $$;

-- ffi_events_wake: events of the scopes p_scopes ('e:<execution>', 'l:<lane>', 'f:<flow>'; NULLs
-- and repeats allowed) were written: the processes following one of them are notified when the
-- transaction commits ('e' TAB scope). One look-up for all of them; nothing when nobody follows
-- anything (a probe without parameters first: its plan is generic, where the look-up by scopes is
-- planned again at every call under the default plan_cache_mode, about 30 µs).
--   args:   p_scopes
--   reply:  whether any process follows events at all (then those of p_scopes were notified); the
--           hot paths call it in an expression, not a PERFORM: no query start-up
--   errors: -
CREATE FUNCTION ffi_events_wake(p_scopes text[]) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_scope text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM event_waiter) THEN RETURN false; END IF;
  FOR v_scope IN SELECT DISTINCT w.scope FROM event_waiter w WHERE w.scope = ANY (p_scopes) LOOP
    PERFORM pg_notify(ffi_channel(), 'e' || chr(9) || v_scope);
  END LOOP;
  RETURN true;
END $$;

-- ffi_flow_event: a FlowStateChanged event (s1 = the public state) when the change of flow_core
-- row o into n changes the flow's public state (ffi_flow_state); returns n's event_k. Its time is
-- the flow's last_mutation_at when the change moved it, else that of the execution event this
-- transaction wrote last (a member's end, which settles the flow).
--   args:   o, n
--   reply:  bigint (n's event_k)
--   errors: -
CREATE FUNCTION ffi_flow_event(o flow_core, n flow_core) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
  v_state text := ffi_flow_state(n);
  v_k bigint;
  v_at bigint := n.last_mutation_at;
BEGIN
  IF v_state = ffi_flow_state(o) THEN RETURN o.event_k; END IF;
  IF n.last_mutation_at IS NOT DISTINCT FROM o.last_mutation_at THEN
    v_at := coalesce(nullif(current_setting('flowfabric.event_at', true), '')::bigint, n.last_mutation_at);
  END IF;
  v_k := greatest(ffi_xid(), o.event_k);
  INSERT INTO event (k, at, flow_id, kind, s1) VALUES (v_k, v_at, n.flow_id, 'FlowStateChanged', v_state);
  PERFORM ffi_events_wake(ARRAY['f:' || n.flow_id::text]);
  RETURN v_k;
END $$;

-- ffi_created_id: the id of the ExecutionCreated of execution (p_part, p_uuid) while it is read
-- from its exec_core row (migration 0058), and once written: a negative number (-2^53 .. -1, exact
-- in a JSON number), below every stored event's id, so the event comes first among the events of
-- its k in the execution, its lane and its flow; two executions of one transaction share it only if
-- their 53-bit hashes collide.
--   args:   p_part, p_uuid
--   reply:  bigint
--   errors: -
CREATE FUNCTION ffi_created_id(p_part int, p_uuid uuid) RETURNS bigint LANGUAGE sql IMMUTABLE
AS $$ SELECT -1 - (uuid_hash_extended(p_uuid, p_part) & 9007199254740991) $$;

-- ffi_event_json: the JSON of an event row (Model.EngineEvent, its offset 'k.id'). An
-- ExecutionCreated without a state (s1 NULL, migration 0055) was created waiting.
--   args:   r (an event row)
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_event_json(r event) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object('offset', r.k || '.' || r.id, 'at', r.at, 'kind', r.kind,
    'executionId', ffi_eid(r.e_part, r.e_uuid), 'laneId', r.lane_id, 'flowId', r.flow_id, 'attempt', r.attempt,
    'num', r.num, 's1', CASE WHEN r.kind = 'ExecutionCreated' THEN coalesce(r.s1, 'waiting') ELSE r.s1 END,
    's2', r.s2))
$$;

-- ff_read_events: readEvents — the events of one scope after position (p_after_k, p_after_id)
-- (p_after_k NULL: from the oldest retained; p_after_id NULL: after every event of p_after_k),
-- oldest first, at most p_limit. A lane or flow read returns only the events no running
-- transaction can still write before (k < xmin, see the header). An execution's read needs no
-- such bound: every transaction that writes an event of an execution holds its exec_core row
-- (the trigger's row), so a later one writes at a position after every committed one (k at
-- least the row's event_k, a larger id): its end is its last event.
-- A lane's or flow's index keys (scope, k) (migration 0054): the read bounds the rows it sorts by
-- (k, id) with the k of the p_limit-th entry after the position's k (read from the index in order;
-- no bitmap scan, which would read the scope's every event to sort them). The created event of an
-- execution that nothing changed since its creating transaction is read from its exec_core row
-- (migration 0058: the row's created_k, created_at, lane and state, the id ffi_created_id), in the
-- same order as a stored one; its lane's are found by exec_core_created_by_lane.
--   args:   p_scope ('e', 'l' or 'f'), p_key (the execution id, lane id or flow id), p_after_k,
--           p_after_id, p_limit, p_now
--   reply:  {"ok": {"events": [event JSON], "end": k below which every event is final,
--           "endId": with "end", the position of an execution's last event (scope 'e'; absent when it
--           has none),
--           "upto": the end once the transactions running now have ended (scopes 'l', 'f')}}
--   errors: event_offset_expired (events after the position were trimmed)
CREATE FUNCTION ff_read_events(p_scope text, p_key text, p_after_k bigint, p_after_id bigint, p_limit int,
  p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off
  SET enable_bitmapscan = off AS $$
DECLARE
  v_xmin bigint := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
  v_ak bigint := coalesce(p_after_k, -1);
  v_ai bigint := CASE WHEN p_after_k IS NULL THEN -1 ELSE coalesce(p_after_id, 9223372036854775807) END;
  v_events jsonb;
  v_end_k bigint;
  v_end_id bigint;
  v_part int;
  v_uuid uuid;
  -- an execution's read: the id its events are read after
  v_from bigint := -9223372036854775808;
  -- a lane's or flow's read: the k of the p_limit-th event after the position's k (NULL: fewer)
  v_top bigint;
  -- an execution's read: its created event while its exec_core row holds it (migration 0058)
  v_ck bigint;
  v_cid bigint;
  v_cat bigint;
  v_clane text COLLATE "C";
  v_cstate text;
BEGIN
  IF p_after_k IS NOT NULL AND EXISTS (SELECT 1 FROM event_trim t WHERE (v_ak, v_ai) < (t.k, t.id)) THEN
    RETURN ffi_err('event_offset_expired');
  END IF;
  IF p_scope = 'e' THEN
    -- an event names its execution by partition and uuid (migration 0045)
    v_part := ffi_eid_part(p_key);
    v_uuid := ffi_eid_uuid(p_key);
    v_cid := ffi_created_id(v_part, v_uuid);
    SELECT c.created_k, c.created_at, c.lane_id, nullif(c.public_state::text, 'waiting')
    INTO v_ck, v_cat, v_clane, v_cstate FROM exec_core c
    WHERE c.partition_key = v_part AND c.e_uuid = v_uuid AND c.created_k IS NOT NULL;
    -- An execution's events are in id order (its index, event_by_execution, keys no k: migration
    -- 0053): each is written under its exec_core row's lock, with an id taken after the previous
    -- one's commit and a k at least the previous one's. So the events after an offset of its own
    -- are those after its id; another position is looked for among all of its events.
    IF p_after_k IS NOT NULL AND ((v_ck = v_ak AND v_cid = v_ai) OR EXISTS (
        SELECT 1 FROM event r
        WHERE uuid_hash_extended(r.e_uuid, 0) = uuid_hash_extended(v_uuid, 0) AND r.id = v_ai
          AND r.k = v_ak AND r.e_uuid = v_uuid AND r.e_part = v_part)) THEN
      v_from := v_ai;
    END IF;
    -- (a row that holds its created event has no other event: the first change writes it)
    SELECT jsonb_agg(ffi_event_json(x) ORDER BY x.k, x.id) INTO v_events FROM (
      SELECT v_cid AS id, v_ck AS k, v_cat AS at, v_clane AS lane_id, NULL::uuid AS flow_id,
        'ExecutionCreated'::event_kind AS kind, NULL::int AS attempt, NULL::bigint AS num, v_cstate AS s1,
        NULL::text AS s2, v_part AS e_part, v_uuid AS e_uuid
      WHERE v_ck IS NOT NULL AND (v_ck, v_cid) > (v_ak, v_ai) AND p_limit > 0
      UNION ALL
      (SELECT * FROM event r
       WHERE uuid_hash_extended(r.e_uuid, 0) = uuid_hash_extended(v_uuid, 0) AND r.id > v_from
         AND r.e_uuid = v_uuid AND r.e_part = v_part AND (r.k, r.id) > (v_ak, v_ai)
       ORDER BY r.id LIMIT p_limit)) x;
    SELECT r.k, r.id INTO v_end_k, v_end_id FROM event r
    WHERE uuid_hash_extended(r.e_uuid, 0) = uuid_hash_extended(v_uuid, 0) AND r.e_uuid = v_uuid AND r.e_part = v_part
    ORDER BY r.id DESC LIMIT 1;
    IF v_end_id IS NULL AND v_ck IS NOT NULL THEN
      v_end_k := v_ck;
      v_end_id := v_cid;
    END IF;
    -- (no endId: the execution has no event)
    RETURN ffi_ok(jsonb_build_object('events', coalesce(v_events, '[]'::jsonb), 'end', coalesce(v_end_k, 0))
      || CASE WHEN v_end_id IS NULL THEN '{}'::jsonb ELSE jsonb_build_object('endId', v_end_id) END);
  ELSIF p_scope = 'l' THEN
    -- event_by_lane keys (lane, k) only (migration 0054: the events of one transaction share an
    -- entry): the k of the p_limit-th entry after the position's k, read in index order, bounds
    -- the rows sorted by (k, id) (the position's k and that one included)
    -- with the created events its rows hold (exec_core_created_by_lane, migration 0058): the
    -- p_limit-th of the first p_limit of each
    v_top := (SELECT u.k FROM (
                (SELECT r.k FROM event r WHERE r.lane_id = p_key AND r.k > v_ak AND r.k < v_xmin
                 ORDER BY r.k LIMIT greatest(p_limit, 1))
                UNION ALL
                (SELECT c.created_k FROM exec_core c WHERE c.lane_id = p_key AND c.created_k > v_ak
                   AND c.created_k < v_xmin
                 ORDER BY c.created_k LIMIT greatest(p_limit, 1))) u
              ORDER BY u.k OFFSET greatest(p_limit, 1) - 1 LIMIT 1);
    SELECT jsonb_agg(ffi_event_json(x) ORDER BY x.k, x.id) INTO v_events FROM (
      SELECT * FROM (
        SELECT * FROM event r WHERE r.lane_id = p_key AND r.k >= v_ak AND r.k <= coalesce(v_top, v_xmin)
          AND (r.k, r.id) > (v_ak, v_ai) AND r.k < v_xmin
        UNION ALL
        SELECT ffi_created_id(c.partition_key, c.e_uuid), c.created_k, c.created_at, c.lane_id, NULL::uuid,
          'ExecutionCreated'::event_kind, NULL::int, NULL::bigint, nullif(c.public_state::text, 'waiting'), NULL::text,
          c.partition_key, c.e_uuid
        FROM exec_core c WHERE c.lane_id = p_key AND c.created_k >= v_ak AND c.created_k <= coalesce(v_top, v_xmin)
          AND (c.created_k, ffi_created_id(c.partition_key, c.e_uuid)) > (v_ak, v_ai) AND c.created_k < v_xmin) u
      ORDER BY u.k, u.id LIMIT p_limit) x;
  ELSE
    -- event_by_flow, the same (flow, k)
    v_top := (SELECT r.k FROM event r WHERE r.flow_id = p_key::uuid AND r.k > v_ak AND r.k < v_xmin
              ORDER BY r.k OFFSET greatest(p_limit, 1) - 1 LIMIT 1);
    SELECT jsonb_agg(ffi_event_json(x) ORDER BY x.k, x.id) INTO v_events FROM (
      SELECT * FROM event r WHERE r.flow_id = p_key::uuid AND r.k >= v_ak AND r.k <= coalesce(v_top, v_xmin)
        AND (r.k, r.id) > (v_ak, v_ai) AND r.k < v_xmin
      ORDER BY r.k, r.id LIMIT p_limit) x;
  END IF;
  RETURN ffi_ok(jsonb_build_object('events', coalesce(v_events, '[]'::jsonb), 'end', v_xmin - 1,
    'upto', pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1));
END $$;

-- ff_event_watch: listener p_listener follows scopes p_scopes until p_now + p_ttl: events of
-- those scopes are notified from the commit on (ffi_events_wake). Renewing moves the expiry.
--   args:   p_scopes, p_listener, p_ttl (ms), p_now
--   reply:  {"ok": null}
--   errors: -
CREATE FUNCTION ff_event_watch(p_scopes text[], p_listener uuid, p_ttl bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO event_waiter (scope, listener, expires_at)
  SELECT s, p_listener, v_now + p_ttl FROM unnest(p_scopes) AS s
  ON CONFLICT (scope, listener) DO UPDATE SET expires_at = EXCLUDED.expires_at;
  RETURN ffi_ok();
END $$;

-- ff_event_unwatch: listener p_listener stops following scopes p_scopes.
--   args:   p_scopes, p_listener, p_now (unused)
--   reply:  {"ok": null}
--   errors: -
CREATE FUNCTION ff_event_unwatch(p_scopes text[], p_listener uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  DELETE FROM event_waiter WHERE scope = ANY (p_scopes) AND listener = p_listener;
  RETURN ffi_ok();
END $$;

-- ffi_events_trim: the retention part of trimRetention for events: deletes the events older than
-- p_retention_ms or beyond the newest p_keep (by id, the newest read from the identity sequence; a
-- created event written from its exec_core row, whose id is negative (ffi_created_id), by its age only)
-- in the next block range of the event heap (about 2 x p_max rows' worth, TID range scan: no index
-- on id, migration 0040), sweeping the heap from its first block again once past its end, and moves
-- event_trim to the newest position deleted (a read after an older position fails expired); drops
-- expired event_waiter rows. Not counted. A trim that finds another one running (the event_trim
-- row locked) deletes no event.
--   args:   p_now, p_max, p_retention_ms (Limits.eventRetentionMs), p_keep (Limits.eventsRetained)
--   reply:  int (events deleted)
--   errors: -
CREATE FUNCTION ffi_events_trim(p_now bigint, p_max int, p_retention_ms bigint, p_keep bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_top bigint := (SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END FROM event_id_seq s);
  v_blocks bigint := pg_relation_size('event') / current_setting('block_size')::bigint;
  v_span bigint := greatest(8, p_max / 25);
  v_from bigint;
  v_k bigint;
  v_id bigint;
  v_n int;
BEGIN
  DELETE FROM event_waiter WHERE expires_at < p_now;
  SELECT t.next_block INTO v_from FROM event_trim t FOR UPDATE SKIP LOCKED;
  IF v_blocks = 0 OR v_from IS NULL THEN RETURN 0; END IF;
  IF v_from >= v_blocks THEN v_from := 0; END IF;
  WITH gone AS (
    DELETE FROM event
    WHERE ctid >= format('(%s,0)', v_from)::tid AND ctid < format('(%s,0)', v_from + v_span)::tid
      AND (at < p_now - p_retention_ms OR (id > 0 AND id <= v_top - p_keep))
    RETURNING k, id
  ), newest AS (
    SELECT k, id, count(*) OVER () AS n FROM gone ORDER BY k DESC, id DESC LIMIT 1
  )
  SELECT k, id, n INTO v_k, v_id, v_n FROM newest;
  UPDATE event_trim t SET next_block = v_from + v_span,
    k = CASE WHEN (t.k, t.id) < (v_k, v_id) THEN v_k ELSE t.k END,
    id = CASE WHEN (t.k, t.id) < (v_k, v_id) THEN v_id ELSE t.id END;
  RETURN coalesce(v_n, 0);
END $$;
