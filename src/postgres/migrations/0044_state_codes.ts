/**
 * Migration 0044: `exec_core`'s state vector as an enum of 4 bytes a column instead of text
 * (docs/design/postgres.md, "Storage").
 *
 * The seven columns of the state vector held their values as text: about 85 bytes of a waiting
 * row (`pending_first_attempt`, `waiting_for_worker`, …), repeated in every row version, and in
 * the WAL record of the create, the claim and the completion (all seven change from waiting to
 * active, and five from active to completed). As the enum `exec_state` (one type whose labels are
 * the values of all seven columns, so a literal of one column never fails as a label of another)
 * they take 28 bytes. The labels are the values, so `col = 'waiting'`, `IN (…)`, `CASE col WHEN
 * …` and the JSON of a column read as before; a `text` value is stored through the assignment
 * cast (`UPDATE … SET public_state = p_state`), and a comparison with a `text` value names the
 * cast (`public_state::text = ANY (p_states)`). The other tables that hold a state (`lane_count`,
 * `event.s1`, `exec_history`) keep text.
 *
 * The row CHECK's function takes the enum (a new signature of `ffi_exec_core_row_ok`, same rules,
 * now a SQL function of one expression, which the CHECK inlines instead of calling PL/pgSQL per row),
 * and the trigger functions of 0039 that mix a state with text in one `CASE` are created again
 * with the cast. `exec_core_event_k`'s `WHEN` names two of the columns: it is dropped for the
 * change and created again unchanged. The change of type rewrites the table (no rows are moved
 * by a statement of this migration).
 */
export const sql = String.raw`
CREATE TYPE exec_state AS ENUM (
  -- lifecycle_phase
  'submitted', 'runnable', 'active', 'suspended', 'terminal',
  -- ownership_state
  'unowned', 'leased', 'lease_expired_reclaimable', 'lease_revoked',
  -- eligibility_state
  'eligible_now', 'not_eligible_until_time', 'blocked_by_dependencies', 'blocked_by_budget', 'blocked_by_quota',
  'blocked_by_route', 'blocked_by_lane_state', 'blocked_by_operator', 'not_applicable',
  -- blocking_reason ('none' also of terminal_outcome and attempt_state)
  'none', 'waiting_for_worker', 'waiting_for_retry_backoff', 'waiting_for_resume_delay', 'waiting_for_delay',
  'waiting_for_signal', 'waiting_for_approval', 'waiting_for_callback', 'waiting_for_tool_result',
  'waiting_for_children', 'waiting_for_budget', 'waiting_for_quota', 'waiting_for_capable_worker',
  'waiting_for_locality_match', 'paused_by_operator', 'paused_by_policy', 'paused_by_flow_cancel',
  -- terminal_outcome
  'success', 'failed', 'cancelled', 'expired', 'skipped',
  -- attempt_state
  'pending_first_attempt', 'running_attempt', 'attempt_interrupted', 'pending_retry_attempt',
  'pending_replay_attempt', 'attempt_terminal',
  -- public_state (besides active, suspended and the outcomes above)
  'waiting', 'delayed', 'rate_limited', 'waiting_children', 'resumable', 'completed'
);
CREATE CAST (text AS exec_state) WITH INOUT AS ASSIGNMENT;

ALTER TABLE exec_core DROP CONSTRAINT exec_core_row;
DROP FUNCTION ffi_exec_core_row_ok(text, text, text, text, text, int);
DROP TRIGGER exec_core_event_k ON exec_core;

ALTER TABLE exec_core
  ALTER COLUMN terminal_outcome DROP DEFAULT,
  ALTER COLUMN terminal_outcome TYPE exec_state USING terminal_outcome::exec_state,
  ALTER COLUMN terminal_outcome SET DEFAULT 'none',
  ALTER COLUMN lifecycle_phase TYPE exec_state USING lifecycle_phase::exec_state,
  ALTER COLUMN ownership_state TYPE exec_state USING ownership_state::exec_state,
  ALTER COLUMN eligibility_state TYPE exec_state USING eligibility_state::exec_state,
  ALTER COLUMN blocking_reason TYPE exec_state USING blocking_reason::exec_state,
  ALTER COLUMN attempt_state TYPE exec_state USING attempt_state::exec_state,
  ALTER COLUMN public_state TYPE exec_state USING public_state::exec_state;

-- The row invariants (0020's rules, over the enum): each column holds a value of its own list.
-- A SQL function of one expression: the CHECK inlines it (no function call per row version).
CREATE FUNCTION ffi_exec_core_row_ok(
  p_phase exec_state, p_own exec_state, p_elig exec_state, p_outcome exec_state, p_att exec_state, p_priority int
) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT p_phase IN ('submitted','runnable','active','suspended','terminal')
    AND p_own IN ('unowned','leased','lease_expired_reclaimable','lease_revoked')
    AND p_elig IN ('eligible_now','not_eligible_until_time','blocked_by_dependencies','blocked_by_budget',
                   'blocked_by_quota','blocked_by_route','blocked_by_lane_state','blocked_by_operator','not_applicable')
    AND p_outcome IN ('none','success','failed','cancelled','expired','skipped')
    AND p_att IN ('none','pending_first_attempt','running_attempt','attempt_interrupted','pending_retry_attempt',
                  'pending_replay_attempt','attempt_terminal')
    AND p_priority BETWEEN 0 AND 9000
    -- combinations that must never be persisted (docs/design/executions.md#forbidden-combinations)
    AND (p_own <> 'leased' OR p_phase = 'active')
    AND ((p_outcome = 'none') = (p_phase <> 'terminal'))
    AND (p_phase <> 'active' OR p_own <> 'unowned')
$$;

ALTER TABLE exec_core ADD CONSTRAINT exec_core_row CHECK (ffi_exec_core_row_ok(lifecycle_phase, ownership_state,
  eligibility_state, terminal_outcome, attempt_state, priority));

CREATE TRIGGER exec_core_event_k BEFORE UPDATE ON exec_core
  FOR EACH ROW WHEN ((OLD.public_state IS DISTINCT FROM NEW.public_state
    OR OLD.ownership_state IS DISTINCT FROM NEW.ownership_state
    OR OLD.lease_epoch IS DISTINCT FROM NEW.lease_epoch
    OR OLD.attempt_state IS DISTINCT FROM NEW.attempt_state
    OR OLD.progress_updated_at IS DISTINCT FROM NEW.progress_updated_at
    OR OLD.flow_id IS DISTINCT FROM NEW.flow_id)
    AND OLD.event_k IS NOT DISTINCT FROM NEW.event_k)
  EXECUTE FUNCTION ffi_trg_event_k();

-- 0039's function, the state named as text where a CASE mixes it with text.
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
        WHEN 'Resumed' THEN c.public_state::text
        WHEN 'StateChanged' THEN c.public_state::text END,
      CASE c.ev WHEN 'Failed' THEN f.classification WHEN 'StateChanged' THEN c.o_state::text END
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
