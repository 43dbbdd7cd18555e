/**
 * Migration 0045: an event names its execution by partition and uuid instead of the id's text
 * (docs/design/events.md, "Postgres"; docs/design/postgres.md, "Storage").
 *
 * Every execution id is `{fp:N}:<uuid>` in its one canonical spelling, so the 46 bytes of text an
 * event row held (three rows a task) are `e_part` (N, 4 bytes) and `e_uuid` (16 bytes): about
 * 27 bytes less a row and a WAL record. The two columns are filled from the text id of the rows
 * already stored by generated columns whose expression is then dropped (each row computed by the
 * table rewrite of this DDL, no statement moving rows), before the text column goes. The index by
 * execution keys a 64-bit hash of the uuid (`uuid_hash_extended(e_uuid, 0)`, 8 bytes as before);
 * a read names the hash, the uuid and the partition. Readers rebuild the id
 * (`ffi_event_json`), and the trigger functions of 0039 and 0044 that write or fold events are
 * created again with the two columns.
 */
export const sql = String.raw`
ALTER TABLE event
  ADD COLUMN e_part int GENERATED ALWAYS AS (substr(execution_id, 5, strpos(execution_id, '}') - 5)::int) STORED,
  ADD COLUMN e_uuid uuid GENERATED ALWAYS AS (substr(execution_id, strpos(execution_id, '}') + 2)::uuid) STORED;
ALTER TABLE event ALTER COLUMN e_part DROP EXPRESSION, ALTER COLUMN e_uuid DROP EXPRESSION;
DROP INDEX event_by_execution;
ALTER TABLE event DROP COLUMN execution_id;
CREATE INDEX event_by_execution ON event (uuid_hash_extended(e_uuid, 0), k, id) WHERE e_uuid IS NOT NULL;

-- 0039's and 0044's functions, writing and folding events by partition and uuid.
CREATE OR REPLACE FUNCTION ffi_trg_events_created() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE v_scopes text[];
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  WITH ins AS (
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, s1)
    SELECT n.event_k, n.created_at, substr(n.execution_id, 5, strpos(n.execution_id, '}') - 5)::int, substr(n.execution_id, strpos(n.execution_id, '}') + 2)::uuid, n.lane_id, n.flow_id, 'ExecutionCreated', n.public_state
    FROM ffi_new n
    RETURNING '{fp:' || e_part || '}:' || e_uuid AS execution_id, lane_id, flow_id
  )
  SELECT array_agg(v.s) INTO v_scopes
  FROM ins CROSS JOIN LATERAL (VALUES ('e:' || ins.execution_id), ('l:' || ins.lane_id), ('f:' || ins.flow_id::text)) v(s);
  PERFORM ffi_events_wake(v_scopes);
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
      WHERE uuid_hash_extended(e_uuid, 0) = uuid_hash_extended(substr(r.execution_id, strpos(r.execution_id, '}') + 2)::uuid, 0) AND e_uuid = substr(r.execution_id, strpos(r.execution_id, '}') + 2)::uuid
        AND e_part = substr(r.execution_id, 5, strpos(r.execution_id, '}') - 5)::int
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
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt, num, s1, s2)
    SELECT c.event_k,
      CASE WHEN c.ev = 'Progress' THEN c.progress_updated_at ELSE c.last_mutation_at END,
      substr(c.execution_id, 5, strpos(c.execution_id, '}') - 5)::int, substr(c.execution_id, strpos(c.execution_id, '}') + 2)::uuid, c.lane_id, c.flow_id, c.ev,
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
        WHEN 'Resumed' THEN c.public_state::text
        WHEN 'StateChanged' THEN c.public_state::text END,
      CASE c.ev WHEN 'Failed' THEN f.classification WHEN 'StateChanged' THEN c.o_state::text END
    FROM c LEFT JOIN LATERAL (
      SELECT x.reason, x.classification FROM exec_failure x
      WHERE c.ev IN ('RetryScheduled', 'Failed') AND x.execution_id = c.execution_id AND x.failed_at = c.last_mutation_at
      LIMIT 1) f ON true
    WHERE c.ev IS NOT NULL
    RETURNING at, '{fp:' || e_part || '}:' || e_uuid AS execution_id, lane_id, flow_id
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
