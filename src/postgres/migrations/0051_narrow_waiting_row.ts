/**
 * Migration 0051: a waiting execution's `exec_core` row without the values that only say "not
 * yet" (docs/design/postgres.md, "Storage").
 *
 * A waiting row held, besides what a claim needs, about 58 bytes of such values: the counts of
 * retries, replays, reclaims and attempts (0), the reclaim and replay limits at their defaults
 * (100, 10), the lease epoch (0), the creation time twice more (`last_transition_at`,
 * `last_mutation_at`), no grant (`has_grant` false) and no blocking detail (''). At fillfactor 50
 * every byte of a waiting row is paid twice.
 *
 * - The four counts and the lease epoch are NULL for 0: nullable, without a default. A claim sets
 *   the attempt count and the epoch; the other counts stay NULL until they first count.
 * - The two limits are NULL for their defaults (`ffi_max_reclaims`, `ffi_max_replays` read them):
 *   a NULL among the row's first columns costs a claim's and a completion's records nothing.
 * - `last_mutation_at` is NULL until the first change after the create (it reads as `created_at`);
 *   every change that writes an event sets it (it is the event's time).
 * - `has_grant` and `blocking_detail` are NULL at the create (no grant, no detail), which takes
 *   the row below the next multiple of 8 bytes; the transitions write them as before.
 * - `last_transition_at`, which no read returns, goes: each row version is 8 bytes shorter, and so
 *   is every claim's and completion's WAL record.
 *
 * Nothing is rewritten: a row stored before keeps its zeros, defaults, flags and times, which read
 * the same, and the dropped column's bytes until the row's next version.
 */
export const sql = String.raw`
ALTER TABLE exec_core DROP COLUMN last_transition_at;
ALTER TABLE exec_core
  ALTER COLUMN last_mutation_at DROP NOT NULL,
  ALTER COLUMN lease_epoch DROP NOT NULL, ALTER COLUMN lease_epoch DROP DEFAULT,
  ALTER COLUMN retry_count DROP NOT NULL, ALTER COLUMN retry_count DROP DEFAULT,
  ALTER COLUMN replay_count DROP NOT NULL, ALTER COLUMN replay_count DROP DEFAULT,
  ALTER COLUMN lease_reclaim_count DROP NOT NULL, ALTER COLUMN lease_reclaim_count DROP DEFAULT,
  ALTER COLUMN total_attempt_count DROP NOT NULL, ALTER COLUMN total_attempt_count DROP DEFAULT,
  ALTER COLUMN max_reclaim_count DROP NOT NULL, ALTER COLUMN max_reclaim_count DROP DEFAULT,
  ALTER COLUMN max_replay_count DROP NOT NULL, ALTER COLUMN max_replay_count DROP DEFAULT,
  ALTER COLUMN has_grant DROP NOT NULL, ALTER COLUMN has_grant DROP DEFAULT,
  ALTER COLUMN blocking_detail DROP NOT NULL, ALTER COLUMN blocking_detail DROP DEFAULT;
`
