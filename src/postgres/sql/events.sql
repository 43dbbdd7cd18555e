-- ===========================================================================
-- events.sql: the event log (docs/design/events.md). The triggers of
-- migration 0029 hand every change of an exec_core or flow_core row that an
-- event reports to ffi_exec_event / ffi_flow_event, which write the event in
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

-- ffi_event_wake: an event of execution p_eid (lane p_lane, flow p_flow; either may be NULL) or
-- of flow p_flow was written: the processes following one of its scopes are notified when the
-- transaction commits ('e' TAB scope; scopes 'e:<execution>', 'l:<lane>', 'f:<flow>').
--   args:   p_eid, p_lane, p_flow
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_event_wake(p_eid text, p_lane text, p_flow uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_scope text;
BEGIN
  FOR v_scope IN SELECT DISTINCT w.scope FROM event_waiter w
                 WHERE w.scope IN ('e:' || p_eid, 'l:' || p_lane, 'f:' || p_flow::text) LOOP
    PERFORM pg_notify(ffi_channel(), 'e' || chr(9) || v_scope);
  END LOOP;
END $$;

-- ffi_exec_event: the event of a change of exec_core row o into n (p_insert: n is new), written
-- now; returns n's event_k. At most one event per change, the first that applies:
--   insert: ExecutionCreated (s1 = public state); a later change made by the transaction that
--     created the row is folded into that event (its public state, its flow) instead;
--   Claimed (attempt, s1 = worker instance): a lease starts;
--   AttemptInterrupted (attempt, s1 = lease_expired / lease_revoked): the lease is lost;
--   RetryScheduled (attempt, num = when, s1 = the failure's reason): an attempt failed, another
--     is due;
--   Progress (attempt, num = percent, s1 = message): progress reported, no change of state;
--   on a change of public state: Completed / Failed (s1 = reason, s2 = class) / Cancelled
--     (s1 = reason) / Expired / Skipped; Suspended; Resumed (s1 = state); Delayed (num = until);
--     else StateChanged (s2 = from, s1 = to).
-- Reasons and messages are cut like a history reason. Time: the row's last_mutation_at.
--   args:   p_insert, o (NULL on insert), n
--   reply:  bigint (n's event_k)
--   errors: -
CREATE FUNCTION ffi_exec_event(p_insert boolean, o exec_core, n exec_core) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  v_xid bigint := ffi_xid();
  v_k bigint;
  v_at bigint := n.last_mutation_at;
  v_kind text;
  v_attempt int;
  v_num bigint;
  v_s1 text;
  v_s2 text;
  f exec_failure;
BEGIN
  IF p_insert THEN
    INSERT INTO event (k, at, execution_id, lane_id, flow_id, kind, s1)
    VALUES (v_xid, n.created_at, n.execution_id, n.lane_id, n.flow_id, 'ExecutionCreated', n.public_state);
    PERFORM ffi_event_wake(n.execution_id, n.lane_id, n.flow_id);
    RETURN v_xid;
  END IF;
  IF o.event_k = v_xid THEN
    UPDATE event SET s1 = n.public_state, flow_id = n.flow_id
    WHERE execution_id = n.execution_id AND k = v_xid AND kind = 'ExecutionCreated';
    IF FOUND THEN RETURN v_xid; END IF;
  END IF;
  IF n.lifecycle_phase = 'active' AND n.ownership_state = 'leased' THEN
    IF o.lifecycle_phase = 'active' AND o.ownership_state = 'leased' THEN
      IF o.progress_updated_at IS DISTINCT FROM n.progress_updated_at THEN
        v_kind := 'Progress'; v_attempt := n.current_attempt_index; v_num := n.progress_pct;
        v_s1 := ffi_cut_reason(n.progress_message); v_at := n.progress_updated_at;
      END IF;
    ELSE
      v_kind := 'Claimed'; v_attempt := n.current_attempt_index; v_s1 := n.worker_instance_id;
    END IF;
  ELSIF n.lifecycle_phase = 'active' AND o.lifecycle_phase = 'active' AND o.ownership_state = 'leased' THEN
    v_kind := 'AttemptInterrupted'; v_attempt := n.current_attempt_index;
    v_s1 := CASE WHEN n.ownership_state = 'lease_revoked' THEN 'lease_revoked' ELSE 'lease_expired' END;
  ELSIF n.attempt_state = 'pending_retry_attempt' AND o.lifecycle_phase = 'active' THEN
    SELECT * INTO f FROM exec_failure WHERE execution_id = n.execution_id AND failed_at = v_at;
    v_kind := 'RetryScheduled'; v_attempt := n.current_attempt_index;
    v_num := CASE WHEN n.public_state = 'delayed' AND n.delay_until IS NOT NULL THEN n.delay_until ELSE v_at END;
    v_s1 := ffi_cut_reason(f.reason);
  ELSIF o.public_state IS DISTINCT FROM n.public_state THEN
    CASE n.public_state
      WHEN 'completed' THEN
        v_kind := 'Completed'; v_attempt := CASE WHEN n.current_attempt_id IS NOT NULL THEN n.current_attempt_index END;
      WHEN 'failed' THEN
        SELECT * INTO f FROM exec_failure WHERE execution_id = n.execution_id AND failed_at = v_at;
        v_kind := 'Failed'; v_attempt := CASE WHEN n.current_attempt_id IS NOT NULL THEN n.current_attempt_index END;
        v_s1 := ffi_cut_reason(coalesce(f.reason, n.failure_reason)); v_s2 := f.classification;
      WHEN 'cancelled' THEN v_kind := 'Cancelled'; v_s1 := ffi_cut_reason(n.cancellation_reason);
      WHEN 'expired' THEN v_kind := 'Expired';
      WHEN 'skipped' THEN v_kind := 'Skipped';
      WHEN 'suspended' THEN
        v_kind := 'Suspended'; v_attempt := CASE WHEN n.current_attempt_id IS NOT NULL THEN n.current_attempt_index END;
      ELSE
        IF o.lifecycle_phase = 'suspended' THEN
          v_kind := 'Resumed'; v_s1 := n.public_state;
        ELSIF n.public_state = 'delayed' AND o.lifecycle_phase = 'active' AND n.delay_until IS NOT NULL THEN
          v_kind := 'Delayed'; v_num := n.delay_until;
        ELSE
          v_kind := 'StateChanged'; v_s2 := o.public_state; v_s1 := n.public_state;
        END IF;
    END CASE;
  END IF;
  IF v_kind IS NULL THEN RETURN o.event_k; END IF;
  v_k := greatest(v_xid, o.event_k);
  INSERT INTO event (k, at, execution_id, lane_id, flow_id, kind, attempt, num, s1, s2)
  VALUES (v_k, v_at, n.execution_id, n.lane_id, n.flow_id, v_kind, v_attempt, v_num, v_s1, v_s2);
  PERFORM set_config('flowfabric.event_at', v_at::text, true);
  PERFORM ffi_event_wake(n.execution_id, n.lane_id, n.flow_id);
  RETURN v_k;
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
  PERFORM ffi_event_wake(NULL, NULL, n.flow_id);
  RETURN v_k;
END $$;

-- ffi_event_json: the JSON of an event row (Model.EngineEvent, its offset 'k.id').
--   args:   r (an event row)
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_event_json(r event) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
  SELECT jsonb_strip_nulls(jsonb_build_object('offset', r.k || '.' || r.id, 'at', r.at, 'kind', r.kind,
    'executionId', r.execution_id, 'laneId', r.lane_id, 'flowId', r.flow_id, 'attempt', r.attempt,
    'num', r.num, 's1', r.s1, 's2', r.s2))
$$;

-- ff_read_events: readEvents — the events of one scope after position (p_after_k, p_after_id)
-- (p_after_k NULL: from the oldest retained; p_after_id NULL: after every event of p_after_k),
-- oldest first, at most p_limit. A lane or flow read returns only the events no running
-- transaction can still write before (k < xmin, see the header). An execution's read needs no
-- such bound: every transaction that writes an event of an execution holds its exec_core row
-- (the trigger's row), so a later one writes at a position after every committed one (k at
-- least the row's event_k, a larger id): its end is its last event.
--   args:   p_scope ('e', 'l' or 'f'), p_key (the execution id, lane id or flow id), p_after_k,
--           p_after_id, p_limit, p_now
--   reply:  {"ok": {"events": [event JSON], "end": k below which every event is final,
--           "endId": with "end", the position of an execution's last event (scope 'e'),
--           "upto": the end once the transactions running now have ended (scopes 'l', 'f')}}
--   errors: event_offset_expired (events after the position were trimmed)
CREATE FUNCTION ff_read_events(p_scope text, p_key text, p_after_k bigint, p_after_id bigint, p_limit int,
  p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $$
DECLARE
  v_xmin bigint := pg_snapshot_xmin(pg_current_snapshot())::text::bigint;
  v_ak bigint := coalesce(p_after_k, -1);
  v_ai bigint := CASE WHEN p_after_k IS NULL THEN -1 ELSE coalesce(p_after_id, 9223372036854775807) END;
  v_events jsonb;
  v_end_k bigint;
  v_end_id bigint;
BEGIN
  IF p_after_k IS NOT NULL AND EXISTS (SELECT 1 FROM event_trim t WHERE (v_ak, v_ai) < (t.k, t.id)) THEN
    RETURN ffi_err('event_offset_expired');
  END IF;
  IF p_scope = 'e' THEN
    SELECT jsonb_agg(ffi_event_json(x) ORDER BY x.k, x.id) INTO v_events FROM (
      SELECT * FROM event r WHERE r.execution_id = p_key AND (r.k, r.id) > (v_ak, v_ai)
      ORDER BY r.k, r.id LIMIT p_limit) x;
    SELECT r.k, r.id INTO v_end_k, v_end_id FROM event r WHERE r.execution_id = p_key
    ORDER BY r.k DESC, r.id DESC LIMIT 1;
    RETURN ffi_ok(jsonb_build_object('events', coalesce(v_events, '[]'::jsonb), 'end', coalesce(v_end_k, 0),
      'endId', coalesce(v_end_id, -1)));
  ELSIF p_scope = 'l' THEN
    SELECT jsonb_agg(ffi_event_json(x) ORDER BY x.k, x.id) INTO v_events FROM (
      SELECT * FROM event r WHERE r.lane_id = p_key AND (r.k, r.id) > (v_ak, v_ai) AND r.k < v_xmin
      ORDER BY r.k, r.id LIMIT p_limit) x;
  ELSE
    SELECT jsonb_agg(ffi_event_json(x) ORDER BY x.k, x.id) INTO v_events FROM (
      SELECT * FROM event r WHERE r.flow_id = p_key::uuid AND (r.k, r.id) > (v_ak, v_ai) AND r.k < v_xmin
      ORDER BY r.k, r.id LIMIT p_limit) x;
  END IF;
  RETURN ffi_ok(jsonb_build_object('events', coalesce(v_events, '[]'::jsonb), 'end', v_xmin - 1,
    'upto', pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1));
END $$;

-- ff_event_watch: listener p_listener follows scopes p_scopes until p_now + p_ttl: events of
-- those scopes are notified from the commit on (ffi_event_wake). Renewing moves the expiry.
--   args:   p_scopes, p_listener, p_ttl (ms), p_now
--   reply:  {"ok": null}
--   errors: -
CREATE FUNCTION ff_event_watch(p_scopes text[], p_listener uuid, p_ttl bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  DELETE FROM event_waiter WHERE scope = ANY (p_scopes) AND listener = p_listener;
  RETURN ffi_ok();
END $$;

-- ffi_events_trim: the retention part of trimRetention for events: deletes up to p_max of the
-- oldest events (by id) that are older than p_retention_ms or beyond the newest p_keep, and
-- moves event_trim to the newest position deleted; drops expired event_waiter rows. Not counted.
--   args:   p_now, p_max, p_retention_ms (Limits.eventRetentionMs), p_keep (Limits.eventsRetained)
--   reply:  int (events deleted)
--   errors: -
CREATE FUNCTION ffi_events_trim(p_now bigint, p_max int, p_retention_ms bigint, p_keep bigint) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
  v_top bigint := (SELECT max(id) FROM event);
  v_k bigint;
  v_id bigint;
  v_n int;
BEGIN
  DELETE FROM event_waiter WHERE expires_at < p_now;
  IF v_top IS NULL THEN RETURN 0; END IF;
  WITH gone AS (
    DELETE FROM event WHERE id IN (SELECT e.id FROM event e ORDER BY e.id LIMIT p_max)
      AND (at < p_now - p_retention_ms OR id <= v_top - p_keep)
    RETURNING k, id
  ), newest AS (
    SELECT k, id, count(*) OVER () AS n FROM gone ORDER BY k DESC, id DESC LIMIT 1
  )
  SELECT k, id, n INTO v_k, v_id, v_n FROM newest;
  IF v_k IS NULL THEN RETURN 0; END IF;
  INSERT INTO event_trim (singleton, k, id) VALUES (true, v_k, v_id)
  ON CONFLICT (singleton) DO UPDATE SET k = EXCLUDED.k, id = EXCLUDED.id
  WHERE (event_trim.k, event_trim.id) < (EXCLUDED.k, EXCLUDED.id);
  RETURN v_n;
END $$;
