/**
 * Migration 0030: an execution's `ExecutionCreated` is written after its row is inserted.
 *
 * A `BEFORE INSERT` trigger runs for every row an `INSERT` proposes, also one that
 * `ON CONFLICT DO NOTHING` then skips (a duplicate create), so 0028's insert trigger wrote an
 * event for a row that was never written. The event is now written by an `AFTER INSERT` row
 * trigger, which runs only for the rows inserted (at the end of the inserting statement, so a
 * later change of the row by the same transaction still folds into it). The row's `event_k` (its
 * transaction's id) is the column's default instead of a `BEFORE` trigger's work.
 */
export const sql = String.raw`
DROP TRIGGER exec_core_event_insert ON exec_core;
ALTER TABLE exec_core ALTER COLUMN event_k SET DEFAULT pg_current_xact_id()::text::bigint;

CREATE FUNCTION ff_trg_exec_created() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_exec_event(true, NULL, NEW);
  RETURN NULL;
END $$;

CREATE TRIGGER exec_core_event_created AFTER INSERT ON exec_core
  FOR EACH ROW EXECUTE FUNCTION ff_trg_exec_created();
`
