/**
 * Migration 0036: the execution events written once per statement (docs/design/events.md,
 * "Postgres"; docs/design/postgres.md, "Storage").
 *
 * 0029's row triggers called the library once per changed `exec_core` row, and each call ran its
 * own `INSERT` into `event`, its own look-up of the event followers and a `set_config`: a claim of
 * 64 executions ran 64 of each. Now:
 *
 * - `exec_core_event_k` (before each update of a column an event reports) only moves the row's
 *   `event_k` to the larger of its transaction's id and its previous value: the `k` of the event
 *   of this change, which orders the execution's events. A statement that sets `event_k` itself
 *   to that value (the claim's and the completion's, `greatest(ffi_xid(), event_k)`) skips it;
 *   when the value is unchanged the trigger runs and changes nothing;
 * - `exec_core_events_created` (after an `INSERT` statement) writes the `ExecutionCreated` event
 *   of every row the statement inserted (an `INSERT` whose `ON CONFLICT DO NOTHING` skipped a row
 *   has no such row in its transition table), and `exec_core_events_updated` (after an `UPDATE`
 *   statement) the event of every row whose reported columns changed, each in one
 *   `INSERT … SELECT` over the statement's rows (transition tables, as the lane counts of 0032)
 *   and one look-up of the followers (`ffi_events_wake`, library).
 *
 * The rules (which event a change writes) are therefore here, in `ffi_trg_events_updated`, and
 * change with a migration, like the lane counts: handing the rows to a library function as arrays
 * of `exec_core` cost more than writing the events. They run without JIT (the claim's disabled
 * plans would price a query high enough to start it).
 */
export const sql = String.raw`
DROP TRIGGER exec_core_event_created ON exec_core;
DROP TRIGGER exec_core_event_update ON exec_core;
DROP FUNCTION ff_trg_exec_created();
DROP FUNCTION ff_trg_exec_event();

-- The k of the event of this change: the larger of the transaction's id and the row's last one.
CREATE FUNCTION ffi_trg_event_k() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.event_k := greatest(pg_current_xact_id()::text::bigint, OLD.event_k);
  RETURN NEW;
END $$;

CREATE TRIGGER exec_core_event_k BEFORE UPDATE ON exec_core
  FOR EACH ROW WHEN ((OLD.public_state IS DISTINCT FROM NEW.public_state
    OR OLD.ownership_state IS DISTINCT FROM NEW.ownership_state
    OR OLD.lease_epoch IS DISTINCT FROM NEW.lease_epoch
    OR OLD.attempt_state IS DISTINCT FROM NEW.attempt_state
    OR OLD.progress_updated_at IS DISTINCT FROM NEW.progress_updated_at
    OR OLD.flow_id IS DISTINCT FROM NEW.flow_id)
    AND OLD.event_k IS NOT DISTINCT FROM NEW.event_k)
  EXECUTE FUNCTION ffi_trg_event_k();

-- ExecutionCreated (s1 = public state) for each inserted row; k is the transaction's id (the
-- row's event_k, the column's default), the time its created_at.
CREATE FUNCTION ffi_trg_events_created() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE v_scopes text[];
BEGIN
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

CREATE TRIGGER exec_core_events_created AFTER INSERT ON exec_core
  REFERENCING NEW TABLE AS ffi_new FOR EACH STATEMENT EXECUTE FUNCTION ffi_trg_events_created();

-- The event of each row change (old row o, new row n) whose reported columns changed, the first
-- rule that applies (docs/design/events.md, "Which event"):
--   a change by the transaction that created the row: folded into its ExecutionCreated (public
--     state, flow), no event;
--   Claimed (attempt, s1 = worker instance): a lease starts;
--   AttemptInterrupted (attempt, s1 = lease_expired / lease_revoked): the lease is lost;
--   RetryScheduled (attempt, num = when, s1 = the failure's reason): an attempt failed, another
--     is due;
--   Progress (attempt, num = percent, s1 = message; time: the report's): still leased;
--   on a change of public state: Completed / Failed (s1 = reason, s2 = class) / Cancelled
--     (s1 = reason) / Expired / Skipped; Suspended; Resumed (s1 = state); Delayed (num = until);
--     else StateChanged (s2 = from, s1 = to).
-- Reasons and messages are cut like a history reason (ffi_cut_reason). Time: the row's
-- last_mutation_at; k: its event_k (exec_core_event_k). The latest time written goes to
-- flowfabric.event_at, which a flow event of the same transaction takes (ffi_flow_event).
CREATE FUNCTION ffi_trg_events_updated() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_xid bigint := pg_current_xact_id()::text::bigint;
  v_at bigint;
  v_scopes text[];
  v_folded text[];
  r record;
BEGIN
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

CREATE TRIGGER exec_core_events_updated AFTER UPDATE ON exec_core
  REFERENCING OLD TABLE AS ffi_old NEW TABLE AS ffi_new FOR EACH STATEMENT EXECUTE FUNCTION ffi_trg_events_updated();
`
