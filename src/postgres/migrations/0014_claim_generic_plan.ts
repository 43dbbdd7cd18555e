/**
 * Migration 0014: `ff_claim` plans its statements once per session
 * (`plan_cache_mode = force_generic_plan`). Its statements already run with
 * sequential scans, sorts and bitmap scans disabled (0009), so the generic
 * plans are the index plans the custom ones were; a new connection no longer
 * plans the batch statement (~0.3 ms) and the candidate scan for each of its
 * first five claims (measured: 192 plans of the batch statement, 61 ms, in one
 * four-round linear-flow bench run).
 */
export const sql = String.raw`
ALTER FUNCTION ff_claim(text, text[], text, text, bigint, int, bigint) SET plan_cache_mode = force_generic_plan;
`
