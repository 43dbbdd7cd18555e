/**
 * Migration 0021: a signal id names one signal of one execution, whichever execution used it
 * first (docs/guide.md, "Waitpoint tokens and signals"). A concurrent delivery reusing the id
 * fails on this index and is mapped to the same error as the function's own check.
 */
export const sql = String.raw`
CREATE UNIQUE INDEX signal_id_unique ON signal (signal_id);
`
