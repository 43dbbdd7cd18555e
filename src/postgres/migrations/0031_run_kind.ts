/**
 * Migration 0031: a run is recorded once (docs/design/postgres.md, "Storage").
 *
 * The `attempt` table held a row per attempt, inserted by the claim and rewritten by every end of
 * a run, with the lease, the worker and the times `exec_core` holds while the run is live and
 * `exec_history` once it ended. The only thing read from it was the kind of the run holding the
 * lease (its attempt's type, or `resumed`), for the history: that is now `exec_core.run_kind`,
 * written by the claim that starts the run (NULL for an initial attempt; left as it is when the
 * run ends), and the table goes. A run live while this migration is applied reports the kind
 * `initial`.
 */
export const sql = String.raw`
ALTER TABLE exec_core ADD COLUMN run_kind text;
DROP TABLE attempt;
`
