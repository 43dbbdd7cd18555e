/**
 * Migration 0058: the `ExecutionCreated` of an execution that nothing has changed since its
 * creating transaction is read from its `exec_core` row, not stored (docs/design/events.md,
 * "Postgres"; docs/design/postgres.md, "Storage").
 *
 * Such a row has `created_k`, the position's `k` of its created event (the creating transaction's
 * id), and no `event_k` (NULL: the row's events so far are that one); the event's time is
 * `created_at`, its state `public_state`, its lane `lane_id`, and its `id` a negative number
 * computed from the execution's partition and uuid (the library's `ffi_created_id`), below every
 * stored event's. Every statement that changes a column an event reports sets `event_k` to the
 * largest of its transaction's id, `event_k` and `created_k`, and `created_k` to NULL; the update
 * trigger here then writes the created event as it was read, at the same position, before the
 * change's own (the claim's own statement, the library's `ff_claim`, does the same). A change by the
 * creating transaction folds into the written event, as before. The batch and single creates of
 * the library insert such rows; the other inserts (a flow's members, a create that claims) store
 * their created event as before (`created_k` NULL, `event_k` set).
 *
 * `created_k` is `last_capability_mismatch_at` renamed: a bigint that no statement of the library
 * ever wrote (NULL in every row stored before, which keep their stored events), placed before the
 * state vector. A column added at the end would follow the input: 5 bytes of padding in the
 * create's WAL record for the footprint's input, and the claim, which clears it, would no longer
 * share the row's last bytes (the input) with the old version in its WAL record.
 *
 * `exec_core_created_by_lane (lane_id, created_k)`, partial on `created_k IS NOT NULL`, serves the
 * lane reads. Its columns are ones a completion never changes (it leaves `created_k` NULL), so the
 * completion stays a HOT update; the claim, never HOT, leaves the index (its new version has no
 * `created_k`). The insert trigger writes no event for those rows (it still wakes their followers).
 */
export const sql = String.raw`
ALTER TABLE exec_core RENAME COLUMN last_capability_mismatch_at TO created_k;

CREATE INDEX exec_core_created_by_lane ON exec_core (lane_id, created_k) WHERE created_k IS NOT NULL;

CREATE OR REPLACE FUNCTION ffi_trg_events_created() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE v_scopes text[];
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  WITH ins AS (
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, s1)
    SELECT n.event_k, n.created_at, n.partition_key, n.e_uuid, n.lane_id, n.flow_id, 'ExecutionCreated',
      nullif(n.public_state::text, 'waiting')
    FROM ffi_new n
    WHERE n.created_k IS NULL
  )
  SELECT array_agg(v.s) INTO v_scopes
  FROM ffi_new n CROSS JOIN LATERAL (VALUES ('e:{fp:' || n.partition_key || '}:' || n.e_uuid), ('l:' || n.lane_id),
    ('f:' || n.flow_id::text)) v(s);
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
  -- the created events read from their rows until now, written as they were read
  INSERT INTO event (id, k, at, e_part, e_uuid, lane_id, kind, s1) OVERRIDING SYSTEM VALUE
  SELECT ffi_created_id(o.partition_key, o.e_uuid), o.created_k, o.created_at, o.partition_key, o.e_uuid, o.lane_id,
    'ExecutionCreated', nullif(o.public_state::text, 'waiting')
  FROM ffi_old o JOIN ffi_new n ON n.e_uuid = o.e_uuid AND n.partition_key = o.partition_key
  WHERE o.created_k IS NOT NULL AND n.created_k IS NULL;
  IF EXISTS (SELECT 1 FROM ffi_old o WHERE coalesce(o.event_k, o.created_k) = v_xid) THEN
    FOR r IN SELECT n.partition_key, n.e_uuid, n.public_state, n.flow_id
             FROM ffi_old o JOIN ffi_new n ON n.e_uuid = o.e_uuid AND n.partition_key = o.partition_key
             WHERE coalesce(o.event_k, o.created_k) = v_xid AND n.event_k = v_xid LOOP
      UPDATE event SET s1 = r.public_state, flow_id = r.flow_id
      WHERE uuid_hash_extended(e_uuid, 0) = uuid_hash_extended(r.e_uuid, 0) AND e_uuid = r.e_uuid
        AND e_part = r.partition_key
        AND k = v_xid AND kind = 'ExecutionCreated';
      IF FOUND THEN v_folded := v_folded || ('{fp:' || r.partition_key || '}:' || r.e_uuid); END IF;
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
    FROM ffi_old o JOIN ffi_new n ON n.e_uuid = o.e_uuid AND n.partition_key = o.partition_key
    WHERE (o.public_state IS DISTINCT FROM n.public_state
        OR o.ownership_state IS DISTINCT FROM n.ownership_state
        OR o.lease_epoch IS DISTINCT FROM n.lease_epoch
        OR o.attempt_state IS DISTINCT FROM n.attempt_state
        OR o.progress_updated_at IS DISTINCT FROM n.progress_updated_at
        OR o.flow_id IS DISTINCT FROM n.flow_id)
      AND (v_folded IS NULL OR '{fp:' || n.partition_key || '}:' || n.e_uuid <> ALL (v_folded))
  ), ins AS (
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt, num, s1, s2)
    SELECT c.event_k,
      CASE WHEN c.ev = 'Progress' THEN c.progress_updated_at ELSE c.last_mutation_at END,
      c.partition_key, c.e_uuid, c.lane_id, c.flow_id, c.ev,
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
      WHERE c.ev IN ('RetryScheduled', 'Failed') AND x.execution_id = '{fp:' || c.partition_key || '}:' || c.e_uuid AND x.failed_at = c.last_mutation_at
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
