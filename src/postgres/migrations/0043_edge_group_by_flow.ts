/**
 * Migration 0043: a flow's join groups found by the flow (docs/design/postgres.md, "Storage";
 * docs/design/flows.md, "Join policies").
 *
 * `describeFlow` lists the join groups of one flow. `edge_group` was keyed by the downstream only,
 * so the read went through every member of the flow (`exec_core_by_flow`) and looked each one's
 * group up, or scanned the table: its cost followed the flow's size, or the store's, not the groups
 * it returns. An index by `(flow_id, downstream_id)` gives the flow's groups in the order the read
 * returns them. Neither column ever changes, so the counters a resolution updates stay heap-only
 * updates.
 */
export const sql = String.raw`
CREATE INDEX edge_group_by_flow ON edge_group (flow_id, downstream_id);
`
