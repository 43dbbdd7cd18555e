/**
 * Migration 0049: `exec_core`'s row invariants written into its CHECK constraint instead of a call
 * of `ffi_exec_core_row_ok` (docs/design/postgres.md, "Tables").
 *
 * A CHECK is made ready at the start of every statement that inserts or updates the table (its
 * expression read from the catalog and planned), and a SQL function in it is inlined then: its body
 * parsed and analysed again at each such statement. On an idle pickup's `CALL ff_create_claim` that
 * was about a tenth of the server's CPU (the create's insert and the claim's update; a `perf`
 * profile, docs/benchmarks.md, "Thirteenth session: Postgres idle pickup"). The rules are the same expression (0044's),
 * over the columns themselves; the function, which nothing else calls, goes. Adding the constraint
 * reads the table once (every row already meets it: the same rules).
 */
export const sql = String.raw`
ALTER TABLE exec_core DROP CONSTRAINT exec_core_row;
DROP FUNCTION ffi_exec_core_row_ok(exec_state, exec_state, exec_state, exec_state, exec_state, int);
-- each column holds a value of its own list; the combinations that must never be persisted
-- (docs/design/executions.md#forbidden-combinations)
ALTER TABLE exec_core ADD CONSTRAINT exec_core_row CHECK (
  lifecycle_phase IN ('submitted', 'runnable', 'active', 'suspended', 'terminal')
  AND ownership_state IN ('unowned', 'leased', 'lease_expired_reclaimable', 'lease_revoked')
  AND eligibility_state IN ('eligible_now', 'not_eligible_until_time', 'blocked_by_dependencies', 'blocked_by_budget',
    'blocked_by_quota', 'blocked_by_route', 'blocked_by_lane_state', 'blocked_by_operator', 'not_applicable')
  AND terminal_outcome IN ('none', 'success', 'failed', 'cancelled', 'expired', 'skipped')
  AND attempt_state IN ('none', 'pending_first_attempt', 'running_attempt', 'attempt_interrupted',
    'pending_retry_attempt', 'pending_replay_attempt', 'attempt_terminal')
  AND priority BETWEEN 0 AND 9000
  AND (ownership_state <> 'leased' OR lifecycle_phase = 'active')
  AND ((terminal_outcome = 'none') = (lifecycle_phase <> 'terminal'))
  AND (lifecycle_phase <> 'active' OR ownership_state <> 'unowned'));
`
