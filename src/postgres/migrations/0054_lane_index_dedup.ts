/**
 * Migration 0054: the lane indexes key the lane and the time only, so that equal keys share one
 * entry (docs/design/postgres.md, "Storage"; docs/design/events.md, "Postgres").
 *
 * - `exec_core_by_lane (lane_id, created_at)` instead of `(lane_id, created_at,
 *   ffi_eid_order(partition_key), uuid_send(e_uuid))`: the executions created in one millisecond
 *   (a batch create, a flow's members) share one entry, a list of row locations (B-tree
 *   deduplication, 6 bytes a row); one created alone is a 24-byte key instead of 48, appended at
 *   the lane's end instead of at a random place among the millisecond's uuids (pages no longer
 *   split half-full). The lane queries order a millisecond's executions by id themselves (an
 *   incremental sort of that millisecond's rows after the index scan).
 * - `event_by_lane (lane_id, k)` and `event_by_flow (flow_id, k)` instead of `(…, k, id)`: the
 *   events one transaction writes in a lane or a flow (a batch's `ExecutionCreated`, a claim's or a
 *   completion's set) share one entry; the reads order the events of one `k` by `id` themselves.
 *
 * A claim is not a HOT update (it moves the row out of the claim indexes), so it writes a new
 * `exec_core_by_lane` entry too: 24 bytes narrower as well.
 */
export const sql = String.raw`
DROP INDEX exec_core_by_lane;
CREATE INDEX exec_core_by_lane ON exec_core (lane_id, created_at);
DROP INDEX event_by_lane;
CREATE INDEX event_by_lane ON event (lane_id, k) WHERE lane_id IS NOT NULL;
DROP INDEX event_by_flow;
CREATE INDEX event_by_flow ON event (flow_id, k) WHERE flow_id IS NOT NULL;
`
