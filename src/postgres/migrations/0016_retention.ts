/**
 * Migration 0016: the retention pass (`trimRetention`, valkey.md §9 retention_trimmer), the same
 * on every backend (see `Maintenance`):
 * - every terminal transition of an execution outside a flow arms a `retention` timer at
 *   `completed_at + retention`, where retention is the policy's `stream_policy.retention_ttl_ms`
 *   (default 24 h). A trigger on `exec_core` arms it, so the terminal paths (ffi_terminate and
 *   the inlined ff_complete) stay as they are: it fires only for updates that set
 *   `completed_at` (claims, renewals and other hot updates never list it);
 * - `ff_pass_retention` deletes, per due timer, the execution and every row it owns (attempts,
 *   streams, summaries, grant, suspension, waitpoints and their pending-expiry timers, signals,
 *   timers, data, core). Flow members are never armed nor deleted. Dedup rows (create
 *   idempotency, suspend and signal dedup) are not deleted: they keep their own windows.
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_retention_ms(p_policy jsonb) RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce((p_policy -> 'stream_policy' ->> 'retention_ttl_ms')::bigint, 86400000)
$$;

CREATE OR REPLACE FUNCTION ffi_retention_arm() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO timer (kind, ref, due_at)
  SELECT 'retention', NEW.execution_id, NEW.completed_at + ffi_retention_ms(d.policy)
  FROM exec_data d WHERE d.execution_id = NEW.execution_id
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  RETURN NULL;
END $$;

CREATE TRIGGER exec_core_retention_arm
AFTER UPDATE OF completed_at ON exec_core
FOR EACH ROW
WHEN (NEW.completed_at IS NOT NULL AND NEW.lifecycle_phase = 'terminal' AND NEW.flow_id IS NULL
      AND OLD.completed_at IS DISTINCT FROM NEW.completed_at)
EXECUTE FUNCTION ffi_retention_arm();

-- Deletes execution p_eid and every row it owns (the caller holds its exec_core row lock).
CREATE OR REPLACE FUNCTION ffi_delete_execution(p_eid text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM timer WHERE kind = 'waitpoint'
    AND ref IN (SELECT waitpoint_id::text FROM waitpoint WHERE execution_id = p_eid);
  DELETE FROM signal WHERE execution_id = p_eid;
  DELETE FROM waitpoint WHERE execution_id = p_eid;
  DELETE FROM suspension WHERE execution_id = p_eid;
  DELETE FROM stream_frame WHERE execution_id = p_eid;
  DELETE FROM stream_meta WHERE execution_id = p_eid;
  DELETE FROM stream_summary WHERE execution_id = p_eid;
  DELETE FROM attempt WHERE execution_id = p_eid;
  DELETE FROM claim_grant WHERE execution_id = p_eid;
  DELETE FROM ready WHERE execution_id = p_eid;
  DELETE FROM timer WHERE ref = p_eid;
  DELETE FROM exec_data WHERE execution_id = p_eid;
  DELETE FROM exec_core WHERE execution_id = p_eid;
END $$;

-- Terminal executions outside flows whose retention ended; one per execution deleted.
CREATE OR REPLACE FUNCTION ff_pass_retention(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  t record;
  e exec_core;
  v_due bigint;
  v_seen int := 0;
  v_done int := 0;
  v_more boolean := false;
BEGIN
  FOR t IN
    SELECT ref, due_at FROM timer WHERE kind = 'retention' AND due_at <= v_now
    ORDER BY due_at, ref LIMIT p_batch + 1 FOR UPDATE SKIP LOCKED
  LOOP
    v_seen := v_seen + 1;
    IF v_seen > p_batch THEN v_more := true; EXIT; END IF;
    SELECT * INTO e FROM exec_core WHERE execution_id = t.ref FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      IF NOT EXISTS (SELECT 1 FROM exec_core WHERE execution_id = t.ref) THEN
        PERFORM ffi_timer_del('retention', t.ref);
      END IF;
      CONTINUE;
    END IF;
    IF e.lifecycle_phase <> 'terminal' OR e.flow_id IS NOT NULL OR e.completed_at IS NULL THEN
      PERFORM ffi_timer_del('retention', t.ref);
      CONTINUE;
    END IF;
    SELECT e.completed_at + ffi_retention_ms(d.policy) INTO v_due FROM exec_data d WHERE d.execution_id = t.ref;
    v_due := coalesce(v_due, e.completed_at + 86400000);
    IF v_due > v_now THEN
      PERFORM ffi_timer_set('retention', t.ref, v_due);
      CONTINUE;
    END IF;
    PERFORM ffi_delete_execution(t.ref);
    v_done := v_done + 1;
  END LOOP;
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;
`
