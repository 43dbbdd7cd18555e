/**
 * Migration 0042: `exec_core` rewritten with its columns in the order of their churn
 * (docs/design/postgres.md, "Storage").
 *
 * The WAL record of an update that stays on its page holds the new row version less the bytes it
 * shares with the old one at its start and at its end. In the order the columns were added, the
 * state vector came right after the execution's identity and `event_k` and `run_kind` last, so a
 * claim and a completion logged nearly the whole row (about 225 bytes each) however few columns
 * they changed. Now the columns come in three groups: those no claim or completion changes
 * (identity, limits, counters, and the columns that are NULL on the common path), then those a
 * claim sets and a completion keeps (the attempt, the worker, the lease's start), then those both
 * change (the lease id and expiry, the times, `event_k` and the state vector). A completion logs
 * the last group only, a claim the last two.
 *
 * PostgreSQL cannot reorder columns, so the table is created again and its rows copied (the one
 * statement of a migration that moves rows; the copy holds an exclusive lock on the table for
 * its duration), before its indexes and triggers, which are then created as 0020–0039 left them.
 * Dropping the old table drops the library functions typed by its row; the library's new version
 * installs them again in the same transaction.
 */
const columns = `execution_id, partition_key, lane_id, namespace, execution_kind, flow_id, priority, required_caps,
  max_reclaim_count, max_replay_count, retry_count, replay_count, lease_reclaim_count, created_at, attempt_timeout_ms,
  execution_deadline_at, has_grant, blocking_detail, delay_until, attempt_timeout_at, current_suspension_id,
  current_waitpoint_id, pending_retry_reason, pending_previous_attempt_index, pending_replay_reason,
  pending_replay_requested_by, progress_pct, progress_message, progress_updated_at, failure_reason,
  cancellation_reason, cancelled_by, lease_last_renewed_at, lease_expired_at, lease_revoked_at, lease_revoke_reason,
  last_capability_mismatch_at, last_hmac_validation_failed_at,
  total_attempt_count, current_attempt_index, current_attempt_id, lease_epoch, lease_ttl_ms, lease_acquired_at,
  started_at, worker_id, worker_instance_id, run_kind,
  lease_id, lease_expires_at, completed_at, last_transition_at, last_mutation_at, event_k,
  terminal_outcome, lifecycle_phase, ownership_state, eligibility_state, blocking_reason, attempt_state, public_state`

export const sql = String.raw`
ALTER TABLE exec_core RENAME TO exec_core_0041;
ALTER TABLE exec_core_0041 RENAME CONSTRAINT exec_core_pkey TO exec_core_0041_pkey;
DROP INDEX exec_core_by_flow, exec_core_delayed_by_lane, exec_core_by_lane;

CREATE TABLE exec_core (
  -- what no claim or completion changes (most of it NULL on the common path: no bytes)
  execution_id                   text COLLATE "C" PRIMARY KEY,
  partition_key                  int NOT NULL,
  lane_id                        text COLLATE "C" NOT NULL,
  namespace                      text NOT NULL,
  execution_kind                 text NOT NULL,
  flow_id                        uuid,
  priority                       int NOT NULL,
  required_caps                  text[],
  max_reclaim_count              int NOT NULL DEFAULT 100,
  max_replay_count               int NOT NULL DEFAULT 10,
  retry_count                    int NOT NULL DEFAULT 0,
  replay_count                   int NOT NULL DEFAULT 0,
  lease_reclaim_count            int NOT NULL DEFAULT 0,
  created_at                     bigint NOT NULL,
  attempt_timeout_ms             bigint,
  execution_deadline_at          bigint,
  -- a claim grant row exists (spares the hot path a lookup of the grant table)
  has_grant                      boolean NOT NULL DEFAULT false,
  blocking_detail                text NOT NULL DEFAULT '',
  delay_until                    bigint,
  attempt_timeout_at             bigint,
  current_suspension_id          uuid,
  current_waitpoint_id           uuid,
  pending_retry_reason           text,
  pending_previous_attempt_index int,
  pending_replay_reason          text,
  pending_replay_requested_by    text,
  progress_pct                   int,
  progress_message               text,
  progress_updated_at            bigint,
  failure_reason                 text,
  cancellation_reason            text,
  cancelled_by                   text,
  lease_last_renewed_at          bigint,
  lease_expired_at               bigint,
  lease_revoked_at               bigint,
  lease_revoke_reason            text,
  last_capability_mismatch_at    bigint,
  last_hmac_validation_failed_at bigint,
  -- what a claim sets and a completion keeps
  total_attempt_count            int NOT NULL DEFAULT 0,
  current_attempt_index          int,
  current_attempt_id             uuid,
  lease_epoch                    bigint NOT NULL DEFAULT 0,
  lease_ttl_ms                   bigint,
  lease_acquired_at              bigint,
  started_at                     bigint,
  worker_id                      text,
  worker_instance_id             text,
  run_kind                       text,
  -- what both change
  lease_id                       uuid,
  lease_expires_at               bigint,
  completed_at                   bigint,
  last_transition_at             bigint NOT NULL,
  last_mutation_at               bigint NOT NULL,
  event_k                        bigint DEFAULT pg_current_xact_id()::text::bigint,
  terminal_outcome               text NOT NULL DEFAULT 'none',
  lifecycle_phase                text NOT NULL,
  ownership_state                text NOT NULL,
  eligibility_state              text NOT NULL,
  blocking_reason                text NOT NULL,
  attempt_state                  text NOT NULL,
  public_state                   text NOT NULL,
  -- the row invariants, as one CHECK over a function (see ffi_exec_core_row_ok, migration 0020)
  CONSTRAINT exec_core_row CHECK (ffi_exec_core_row_ok(lifecycle_phase, ownership_state, eligibility_state,
                                                      terminal_outcome, attempt_state, priority))
) WITH (fillfactor = 50);

INSERT INTO exec_core (${columns}) SELECT ${columns} FROM exec_core_0041;
DROP TABLE exec_core_0041 CASCADE;

CREATE INDEX exec_core_by_flow ON exec_core (flow_id, execution_id) WHERE flow_id IS NOT NULL;
CREATE INDEX exec_core_delayed_by_lane ON exec_core (lane_id, delay_until) WHERE delay_until IS NOT NULL;
CREATE INDEX exec_core_by_lane ON exec_core (lane_id, created_at, execution_id);

CREATE TRIGGER exec_core_lane_count_insert AFTER INSERT ON exec_core
  REFERENCING NEW TABLE AS ffi_rows FOR EACH STATEMENT EXECUTE FUNCTION ffi_lane_count_rows();
CREATE TRIGGER exec_core_lane_count_delete AFTER DELETE ON exec_core
  REFERENCING OLD TABLE AS ffi_rows FOR EACH STATEMENT EXECUTE FUNCTION ffi_lane_count_rows();
CREATE TRIGGER exec_core_lane_count_update AFTER UPDATE ON exec_core
  REFERENCING OLD TABLE AS ffi_old NEW TABLE AS ffi_new FOR EACH STATEMENT EXECUTE FUNCTION ffi_lane_count_update();
CREATE TRIGGER exec_core_event_k BEFORE UPDATE ON exec_core
  FOR EACH ROW WHEN ((OLD.public_state IS DISTINCT FROM NEW.public_state
    OR OLD.ownership_state IS DISTINCT FROM NEW.ownership_state
    OR OLD.lease_epoch IS DISTINCT FROM NEW.lease_epoch
    OR OLD.attempt_state IS DISTINCT FROM NEW.attempt_state
    OR OLD.progress_updated_at IS DISTINCT FROM NEW.progress_updated_at
    OR OLD.flow_id IS DISTINCT FROM NEW.flow_id)
    AND OLD.event_k IS NOT DISTINCT FROM NEW.event_k)
  EXECUTE FUNCTION ffi_trg_event_k();
CREATE TRIGGER exec_core_events_created AFTER INSERT ON exec_core
  REFERENCING NEW TABLE AS ffi_new FOR EACH STATEMENT EXECUTE FUNCTION ffi_trg_events_created();
CREATE TRIGGER exec_core_events_updated AFTER UPDATE ON exec_core
  REFERENCING OLD TABLE AS ffi_old NEW TABLE AS ffi_new FOR EACH STATEMENT EXECUTE FUNCTION ffi_trg_events_updated();
`
