/**
 * Migration 0048: `exec_core_by_lane` ends with the uuid's bytes, `uuid_send(e_uuid)`, instead of
 * the uuid column (docs/design/postgres.md, "Plans").
 *
 * A look-up of one execution names `partition_key` and `e_uuid`. With the uuid column last in the
 * lane index, the planner could serve it from that index too, scanning all of it with the uuid as a
 * condition on its last column: on a table of one analyzed row both indexes cost the same, the tie
 * went to the lane index (the index created last is considered first), and a session's generic plan
 * made then read the whole lane index at every look-up once the table had grown. An expression of
 * the uuid is not the column, so only `exec_core_pkey` can serve a look-up by id, whatever the
 * table's size when the plan was made. The bytes of a uuid (`bytea`, compared byte by byte) sort as
 * the uuid does, so the index keeps the lane order (creation time, then the id as partition rank
 * and uuid); its entries keep their size (17 bytes instead of 16 end at the same 8-byte boundary).
 */
export const sql = String.raw`
DROP INDEX exec_core_by_lane;
CREATE INDEX exec_core_by_lane ON exec_core (lane_id, created_at, ffi_eid_order(partition_key), uuid_send(e_uuid));
`
