/**
 * Migration 0056: `exec_core`'s CHECK constraints with their value lists as array constants
 * (docs/design/postgres.md, "Tables").
 *
 * A CHECK is made ready at the start of every statement that inserts or updates the table: its
 * stored expression is read back from its text form and simplified. A list written
 * `x IN ('a', 'b', …)` is stored as an array built of one constant per value, which each such
 * statement reads (a node each) and folds into one array again; written as one array constant
 * (`x = ANY ('{a,b,…}'::exec_state[])`) it is read as one node and needs no folding. The stored
 * form of `exec_core_row` goes from about 10 kB to 6 kB. The rules are the same (0049's, 0046's);
 * adding the constraints reads the table once (every row already meets them).
 */
export const sql = String.raw`
ALTER TABLE exec_core DROP CONSTRAINT exec_core_row, DROP CONSTRAINT exec_core_claimable,
  -- each column holds a value of its own list; the combinations that must never be persisted
  -- (docs/design/executions.md#forbidden-combinations)
  ADD CONSTRAINT exec_core_row CHECK (
    lifecycle_phase = ANY ('{submitted,runnable,active,suspended,terminal}'::exec_state[])
    AND ownership_state = ANY ('{unowned,leased,lease_expired_reclaimable,lease_revoked}'::exec_state[])
    AND eligibility_state = ANY ('{eligible_now,not_eligible_until_time,blocked_by_dependencies,blocked_by_budget,'
      'blocked_by_quota,blocked_by_route,blocked_by_lane_state,blocked_by_operator,not_applicable}'::exec_state[])
    AND terminal_outcome = ANY ('{none,success,failed,cancelled,expired,skipped}'::exec_state[])
    AND attempt_state = ANY ('{none,pending_first_attempt,running_attempt,attempt_interrupted,'
      'pending_retry_attempt,pending_replay_attempt,attempt_terminal}'::exec_state[])
    AND priority BETWEEN 0 AND 9000
    AND (ownership_state <> 'leased' OR lifecycle_phase = 'active')
    AND ((terminal_outcome = 'none') = (lifecycle_phase <> 'terminal'))
    AND (lifecycle_phase <> 'active' OR ownership_state <> 'unowned')),
  -- claimable exactly when blocking_reason says so (migration 0046)
  ADD CONSTRAINT exec_core_claimable CHECK (
    (blocking_reason = 'waiting_for_worker') =
    ((lifecycle_phase = 'runnable' AND eligibility_state = 'eligible_now')
     OR (lifecycle_phase = 'active'
         AND ownership_state = ANY ('{lease_expired_reclaimable,lease_revoked}'::exec_state[]))));
`
