/**
 * Migration 0046: the claimable executions read from partial indexes of `exec_core` instead of the
 * `ready` table (docs/design/postgres.md, "Storage" and "Claims").
 *
 * An execution is claimable exactly when its `blocking_reason` is `waiting_for_worker`: a runnable
 * execution eligible now (a first, retry or replay attempt, or an interrupted one to resume), or an
 * active one whose lease expired or was revoked (to reclaim). The new CHECK `exec_core_claimable`
 * makes that equivalence a rule of every row version, so the two indexes, partial on that one
 * column, hold the claimable executions and no other. Their predicate is one column that a
 * completion does not change (`none` before and after), so a completion stays a HOT update; a claim
 * changes it and is not HOT.
 *
 * The claim order is the index's: priority descending, then creation time, then the entry's row
 * location (no sequence column: ties within a millisecond are unordered by the rules, and equal
 * keys share one index entry). `exec_core_claim_by_kind` leads with the kind, so that a claim
 * naming its kinds never reads the rows of other kinds. The `ready` rows held the same facts
 * (lane, priority, creation time, capabilities, kind) as their `exec_core` rows; the table goes.
 */
export const sql = String.raw`
ALTER TABLE exec_core ADD CONSTRAINT exec_core_claimable CHECK (
  (blocking_reason = 'waiting_for_worker') =
  ((lifecycle_phase = 'runnable' AND eligibility_state = 'eligible_now')
   OR (lifecycle_phase = 'active' AND ownership_state IN ('lease_expired_reclaimable', 'lease_revoked'))));
CREATE INDEX exec_core_claim_order ON exec_core (lane_id, priority DESC, created_at)
  WHERE blocking_reason = 'waiting_for_worker';
CREATE INDEX exec_core_claim_by_kind ON exec_core (lane_id, execution_kind, priority DESC, created_at)
  WHERE blocking_reason = 'waiting_for_worker';
DROP TABLE ready;
`
