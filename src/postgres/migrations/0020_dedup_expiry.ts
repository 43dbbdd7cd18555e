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

-- 0016's pass, kept under another name, then the expired dedup rows.
ALTER FUNCTION ff_pass_retention(int, bigint) RENAME TO ffi_pass_retention_executions;

CREATE FUNCTION ff_pass_retention(p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  v_result jsonb := ffi_pass_retention_executions(p_batch, p_now);
BEGIN
  PERFORM ffi_dedup_expire(coalesce(p_now, ffi_now()), greatest(1000, 10 * p_batch));
  RETURN v_result;
END $$;
`
