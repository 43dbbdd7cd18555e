/**
 * Migration 0034: `ready` and `timer` fill their pages (docs/design/postgres.md, "Storage").
 *
 * Both were at fillfactor 70, a reserve for HOT updates that never happen there: the only update
 * of a `ready` row changes its `priority` and of a `timer` row its `due_at`, both in an index
 * (`ready_claim_order`, `timer_due`), so each such update writes a new row version elsewhere and
 * new index entries whatever the free space. Rows are inserted and deleted; at 100 a page holds
 * 10/7 as many (new pages only: existing ones keep their rows until vacuum frees them).
 */
export const sql = String.raw`
ALTER TABLE ready SET (fillfactor = 100);
ALTER TABLE timer SET (fillfactor = 100);
`
