/**
 * Migration 0027: the kind of each claimable execution in `ready`, and an index by lane and kind
 * in claim order, so that a claim limited to kinds reads only rows of its kinds (docs/limits.md,
 * "What one claim reads"). Rows queued before this migration have no kind (NULL): a claim with
 * kinds reads their kind from `exec_core`, within its window, until they are claimed.
 */
export const sql = String.raw`
ALTER TABLE ready ADD COLUMN execution_kind text COLLATE "C";
CREATE INDEX ready_claim_by_kind ON ready (lane_id, execution_kind, priority DESC, created_at, seq);
`
