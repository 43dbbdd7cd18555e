/**
 * Migration 0020: the dedup rows — create idempotency keys, suspend and signal dedup, budget
 * usage dedup — were kept past their window forever (a read ignores an expired row, nothing
 * deleted it). The retention pass (`trimRetention`) now also deletes expired dedup rows, the
 * oldest first, at most max(1 000, 10 × batch) per table and call, through an index on each
 * table's `expires_at` (what is left waits for the next call). What the pass reports stays about
 * executions, as on the other backends (Valkey's dedup keys expire on their own, the memory
 * engine drops its expired records in the same pass).
 */
export const sql = String.raw`
CREATE INDEX exec_idempotency_expiry ON exec_idempotency (expires_at);
CREATE INDEX signal_dedup_expiry ON signal_dedup (expires_at);
CREATE INDEX suspend_dedup_expiry ON suspend_dedup (expires_at);
CREATE INDEX budget_dedup_expiry ON budget_dedup (expires_at);

-- Deletes up to p_limit expired rows of each dedup table, the oldest first.
CREATE OR REPLACE FUNCTION ffi_dedup_expire(p_now bigint, p_limit int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM exec_idempotency WHERE ctid IN (
    SELECT ctid FROM exec_idempotency WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
  DELETE FROM signal_dedup WHERE ctid IN (
    SELECT ctid FROM signal_dedup WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
  DELETE FROM suspend_dedup WHERE ctid IN (
    SELECT ctid FROM suspend_dedup WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
  DELETE FROM budget_dedup WHERE ctid IN (
    SELECT ctid FROM budget_dedup WHERE expires_at <= p_now ORDER BY expires_at LIMIT p_limit);
END $$;

-- 0016's pass, then the expired dedup rows.
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
  PERFORM ffi_dedup_expire(v_now, greatest(1000, 10 * p_batch));
  RETURN ffi_ok(jsonb_build_object('processed', v_done, 'more', v_more));
END $$;
`
