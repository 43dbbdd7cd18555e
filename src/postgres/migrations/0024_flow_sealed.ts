/**
 * Migration 0024: a flow can be sealed (docs/guide.md, "Flows that grow while they run"): it then
 * takes no new member and no new edge. The public state of an open flow is derived from its
 * member counters, so `public_flow_state` holds open, cancelling or cancelled from now on.
 */
export const sql = String.raw`
ALTER TABLE flow_core ADD COLUMN sealed boolean NOT NULL DEFAULT false;
`
