/**
 * Migration 0039: a statement that writes the event and the lane count of the rows it inserts
 * itself tells the insert triggers so (docs/design/postgres.md, "Storage"; docs/design/events.md,
 * "Postgres").
 *
 * The statement triggers of 0028, 0032 and 0036 cost about the same for one row as for a
 * hundred: the trigger call, its transition tables and the executor start-up of their statements
 * (about 90 µs for a single create, 200 µs for an update of exec_core, a third of a single task's
 * server time). A statement whose rows all make one known transition knows their events and
 * counts: `ffi_create_execution` (one row, ExecutionCreated), the set-based claim of `ff_claim`
 * (Claimed) and completion of `ff_complete_set` (Completed). They set `flowfabric.own_rows` to
 * `on` for that statement only and write the events, the counts and the wake-ups themselves, and
 * the four trigger functions below return at once when the setting is on. Every other statement
 * is counted and logged by the triggers as before, and so is a set with a row whose last event
 * this transaction wrote (the fold rule of 0036 applies to it).
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_lane_count_rows() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    INSERT INTO lane_count (lane_id, public_state, shard, n)
    SELECT lane_id, public_state, pg_backend_pid(), count(*) FROM ffi_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  ELSE
    INSERT INTO lane_count (lane_id, public_state, shard, n)
    SELECT lane_id, public_state, pg_backend_pid(), -count(*) FROM ffi_rows GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  END IF;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ffi_trg_events_created() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE v_scopes text[];
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  WITH ins AS (
    INSERT INTO event (k, at, execution_id, lane_id, flow_id, kind, s1)
    SELECT n.event_k, n.created_at, n.execution_id, n.lane_id, n.flow_id, 'ExecutionCreated', n.public_state
    FROM ffi_new n
    RETURNING execution_id, lane_id, flow_id
  )
  SELECT array_agg(v.s) INTO v_scopes
  FROM ins CROSS JOIN LATERAL (VALUES ('e:' || ins.execution_id), ('l:' || ins.lane_id), ('f:' || ins.flow_id::text)) v(s);
  PERFORM ffi_events_wake(v_scopes);
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ffi_lane_count_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  INSERT INTO lane_count (lane_id, public_state, shard, n)
  SELECT v.lane_id, v.public_state, pg_backend_pid(), sum(v.d)
  FROM ffi_old o JOIN ffi_new n ON n.execution_id = o.execution_id
  CROSS JOIN LATERAL (VALUES (o.lane_id, o.public_state, -1), (n.lane_id, n.public_state, 1)) AS v(lane_id, public_state, d)
  WHERE n.public_state IS DISTINCT FROM o.public_state OR n.lane_id IS DISTINCT FROM o.lane_id
  GROUP BY 1, 2 HAVING sum(v.d) <> 0
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ffi_trg_events_updated() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_xid bigint := pg_current_xact_id()::text::bigint;
  v_at bigint;
  v_scopes text[];
  v_folded text[];
  r record;
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  IF EXISTS (SELECT 1 FROM ffi_old o WHERE o.event_k = v_xid) THEN
    FOR r IN SELECT n.execution_id, n.public_state, n.flow_id
             FROM ffi_old o JOIN ffi_new n ON n.execution_id = o.execution_id
             WHERE o.event_k = v_xid AND n.event_k = v_xid LOOP
      UPDATE event SET s1 = r.public_state, flow_id = r.flow_id
      WHERE hashtextextended(execution_id, 0) = hashtextextended(r.execution_id, 0) AND execution_id = r.execution_id
        AND k = v_xid AND kind = 'ExecutionCreated';
      IF FOUND THEN v_folded := v_folded || r.execution_id; END IF;
    END LOOP;
  END IF;
  WITH c AS (
    SELECT n.*, o.public_state AS o_state, CASE
      WHEN n.lifecycle_phase = 'active' AND n.ownership_state = 'leased' THEN
        CASE WHEN o.lifecycle_phase = 'active' AND o.ownership_state = 'leased' THEN
          CASE WHEN o.progress_updated_at IS DISTINCT FROM n.progress_updated_at THEN 'Progress' END
        ELSE 'Claimed' END
      WHEN n.lifecycle_phase = 'active' AND o.lifecycle_phase = 'active' AND o.ownership_state = 'leased' THEN 'AttemptInterrupted'
      WHEN n.attempt_state = 'pending_retry_attempt' AND o.lifecycle_phase = 'active' THEN 'RetryScheduled'
      WHEN o.public_state IS DISTINCT FROM n.public_state THEN
        CASE n.public_state
          WHEN 'completed' THEN 'Completed' WHEN 'failed' THEN 'Failed' WHEN 'cancelled' THEN 'Cancelled'
          WHEN 'expired' THEN 'Expired' WHEN 'skipped' THEN 'Skipped' WHEN 'suspended' THEN 'Suspended'
          ELSE CASE
            WHEN o.lifecycle_phase = 'suspended' THEN 'Resumed'
            WHEN n.public_state = 'delayed' AND o.lifecycle_phase = 'active' AND n.delay_until IS NOT NULL THEN 'Delayed'
            ELSE 'StateChanged' END
        END
      END AS ev
    FROM ffi_old o JOIN ffi_new n ON n.execution_id = o.execution_id
    WHERE (o.public_state IS DISTINCT FROM n.public_state
        OR o.ownership_state IS DISTINCT FROM n.ownership_state
        OR o.lease_epoch IS DISTINCT FROM n.lease_epoch
        OR o.attempt_state IS DISTINCT FROM n.attempt_state
        OR o.progress_updated_at IS DISTINCT FROM n.progress_updated_at
        OR o.flow_id IS DISTINCT FROM n.flow_id)
      AND (v_folded IS NULL OR n.execution_id <> ALL (v_folded))
  ), ins AS (
    INSERT INTO event (k, at, execution_id, lane_id, flow_id, kind, attempt, num, s1, s2)
    SELECT c.event_k,
      CASE WHEN c.ev = 'Progress' THEN c.progress_updated_at ELSE c.last_mutation_at END,
      c.execution_id, c.lane_id, c.flow_id, c.ev,
      CASE WHEN c.ev IN ('Claimed', 'AttemptInterrupted', 'RetryScheduled', 'Progress') THEN c.current_attempt_index
           WHEN c.ev IN ('Completed', 'Failed', 'Suspended') AND c.current_attempt_id IS NOT NULL THEN c.current_attempt_index END,
      CASE c.ev WHEN 'Progress' THEN c.progress_pct
        WHEN 'RetryScheduled' THEN CASE WHEN c.public_state = 'delayed' AND c.delay_until IS NOT NULL THEN c.delay_until
                                        ELSE c.last_mutation_at END
        WHEN 'Delayed' THEN c.delay_until END,
      CASE c.ev WHEN 'Claimed' THEN c.worker_instance_id
        WHEN 'AttemptInterrupted' THEN CASE WHEN c.ownership_state = 'lease_revoked' THEN 'lease_revoked' ELSE 'lease_expired' END
        WHEN 'Progress' THEN ffi_cut_reason(c.progress_message)
        WHEN 'RetryScheduled' THEN ffi_cut_reason(f.reason)
        WHEN 'Failed' THEN ffi_cut_reason(coalesce(f.reason, c.failure_reason))
        WHEN 'Cancelled' THEN ffi_cut_reason(c.cancellation_reason)
        WHEN 'Resumed' THEN c.public_state
        WHEN 'StateChanged' THEN c.public_state END,
      CASE c.ev WHEN 'Failed' THEN f.classification WHEN 'StateChanged' THEN c.o_state END
    FROM c LEFT JOIN LATERAL (
      SELECT x.reason, x.classification FROM exec_failure x
      WHERE c.ev IN ('RetryScheduled', 'Failed') AND x.execution_id = c.execution_id AND x.failed_at = c.last_mutation_at
      LIMIT 1) f ON true
    WHERE c.ev IS NOT NULL
    RETURNING at, execution_id, lane_id, flow_id
  )
  SELECT max(ins.at), array_agg(v.s) INTO v_at, v_scopes
  FROM ins CROSS JOIN LATERAL (VALUES ('e:' || ins.execution_id), ('l:' || ins.lane_id), ('f:' || ins.flow_id::text)) v(s);
  IF v_at IS NOT NULL THEN
    PERFORM set_config('flowfabric.event_at', v_at::text, true);
    PERFORM ffi_events_wake(v_scopes);
  END IF;
  RETURN NULL;
END $$;
`
