/**
 * Migration 0026: the timer table's key leads with the execution (or waitpoint, budget) it times.
 *
 * Every transition that ends a lease or an execution deletes its timers by `ref` (and a set of
 * kinds); the maintenance passes read by `(kind, due_at)` through `timer_due`. With the primary
 * key on `(ref, kind)` those deletes use it, and `timer_by_ref` (the same entries a second time)
 * goes: one index entry less for every timer row, that is for every claim (its lease timer) and
 * every terminal transition (its retention timer). See docs/design/postgres.md.
 */
export const sql = String.raw`
ALTER TABLE timer DROP CONSTRAINT timer_pkey;
ALTER TABLE timer ADD CONSTRAINT timer_pkey PRIMARY KEY (ref, kind);
DROP INDEX timer_by_ref;
`
