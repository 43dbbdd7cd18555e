/**
 * Migration 0055: an `ExecutionCreated` event of an execution created `waiting` stores no state
 * (docs/design/events.md, "Postgres"; docs/design/postgres.md, "Storage").
 *
 * The event's `s1` held the public state the creating call left, almost always `waiting`: 8 bytes of
 * every created execution's event row and of its WAL record. It is NULL for `waiting` now, and the
 * event's JSON (`ffi_event_json`, library) reads a NULL state of an `ExecutionCreated` as `waiting`;
 * an event stored before holds the text and reads the same. The insert trigger's function (0047's,
 * the batch and flow creates) is created again with that rule; the create of one execution
 * (`ffi_create_execution`) and the fold of a later change into the event (which writes the state)
 * are the library's.
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_trg_events_created() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE v_scopes text[];
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  WITH ins AS (
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, s1)
    SELECT n.event_k, n.created_at, n.partition_key, n.e_uuid, n.lane_id, n.flow_id, 'ExecutionCreated',
      nullif(n.public_state::text, 'waiting')
    FROM ffi_new n
    RETURNING '{fp:' || e_part || '}:' || e_uuid AS execution_id, lane_id, flow_id
  )
  SELECT array_agg(v.s) INTO v_scopes
  FROM ins CROSS JOIN LATERAL (VALUES ('e:' || ins.execution_id), ('l:' || ins.lane_id), ('f:' || ins.flow_id::text)) v(s);
  PERFORM ffi_events_wake(v_scopes);
  RETURN NULL;
END $$;
`
