/**
 * Migration 0047: `exec_core` names its execution by partition and uuid instead of the id's text
 * (docs/design/postgres.md, "Storage").
 *
 * Every execution id is `{fp:N}:<uuid>` in its one canonical spelling, and the row already held N
 * (`partition_key`). The 46 bytes of text of `execution_id` (in the row and in every entry of
 * `exec_core_pkey`, `exec_core_by_lane` and `exec_core_by_flow`) become the uuid, `e_uuid` (16
 * bytes), in place: the change of type rewrites the table, computing each row's uuid from its id
 * (no statement moves rows), and the column keeps its place among the columns no transition
 * changes. The key is `(partition_key, e_uuid)`: the same uuid may be an execution of two
 * partitions. Within one partition uuid order is the order of the ids' text (the uuid's text is
 * its bytes in hexadecimal), so `listExecutions` reads a partition's range of the key in id order.
 *
 * The lane index orders a lane's executions by creation time, then id, across partitions: text
 * order compares the partitions' decimal digits followed by `}` (`{fp:10}:…` sorts before
 * `{fp:1}:…`). `ffi_eid_order(N)` is N's rank in that order (its digits and the `}` as base-11
 * digits), an immutable function of the index's expression, so it belongs to the migrations.
 * `exec_core_by_flow` keys the flow and the uuid (the lookups name the flow alone).
 *
 * `exec_data` holds the partition (`e_part`, filled from the id by a generated column whose
 * expression is then dropped, as 0045 did for events) and the uuid (`e_uuid`, the id's column
 * changed in place). Its key stays a hash (0041): one row per execution through an exclusion on the
 * hash of the id rebuilt from the two columns, `ffi_eid(e_part, e_uuid)`, which the index's
 * expression makes a function of the migrations (the library names it in its look-ups).
 *
 * A timer of a set of executions (0038) names them by their uuids (`refs`, now `uuid[]`) and their
 * partitions (`ref_parts`, at the same positions) instead of an array of ids (about 50 bytes an
 * element, past the TOAST threshold for a claim of 64). The change of `refs`'s type computes both
 * from the array's text, in the one rewrite of the table.
 *
 * The trigger functions of 0039, 0044 and 0045 that read the transition tables' ids are created
 * again over the two columns.
 */
export const sql = String.raw`
CREATE OR REPLACE FUNCTION ffi_eid(p_part int, p_uuid uuid) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT '{fp:' || p_part::text || '}:' || p_uuid::text $$;

CREATE FUNCTION ffi_eid_order(p_part int) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((p_part % 10 + p_part / 10 % 10 * 11 + p_part / 100 % 10 * 121 + p_part / 1000 % 10 * 1331
              + p_part / 10000 * 14641) * 11 + 10)
             * CASE WHEN p_part < 10 THEN 14641 WHEN p_part < 100 THEN 1331 WHEN p_part < 1000 THEN 121
                    WHEN p_part < 10000 THEN 11 ELSE 1 END $$;

DROP INDEX exec_core_by_lane;
DROP INDEX exec_core_by_flow;
ALTER TABLE exec_core DROP CONSTRAINT exec_core_pkey;
ALTER TABLE exec_core ALTER COLUMN execution_id TYPE uuid
  USING substr(execution_id, strpos(execution_id, '}') + 2)::uuid;
ALTER TABLE exec_core RENAME COLUMN execution_id TO e_uuid;
ALTER TABLE exec_core ADD CONSTRAINT exec_core_pkey PRIMARY KEY (partition_key, e_uuid);
CREATE INDEX exec_core_by_lane ON exec_core (lane_id, created_at, ffi_eid_order(partition_key), e_uuid);
CREATE INDEX exec_core_by_flow ON exec_core (flow_id, e_uuid) WHERE flow_id IS NOT NULL;

ALTER TABLE exec_data DROP CONSTRAINT exec_data_one;
ALTER TABLE exec_data
  ADD COLUMN e_part int NOT NULL GENERATED ALWAYS AS (substr(execution_id, 5, strpos(execution_id, '}') - 5)::int) STORED;
ALTER TABLE exec_data ALTER COLUMN e_part DROP EXPRESSION;
ALTER TABLE exec_data ALTER COLUMN execution_id TYPE uuid
  USING substr(execution_id, strpos(execution_id, '}') + 2)::uuid;
ALTER TABLE exec_data RENAME COLUMN execution_id TO e_uuid;
ALTER TABLE exec_data ADD CONSTRAINT exec_data_one EXCLUDE USING hash ((ffi_eid(e_part, e_uuid)) WITH =);

ALTER TABLE timer ADD COLUMN ref_parts int[];
ALTER TABLE timer
  ALTER COLUMN ref_parts TYPE int[]
    USING regexp_replace(regexp_replace(refs::text, ':[0-9a-f-]{36}', '', 'g'), '\{fp:(\d+)\}', '\1', 'g')::int[],
  ALTER COLUMN refs TYPE uuid[] USING regexp_replace(refs::text, '\{fp:\d+\}:', '', 'g')::uuid[];

-- 0032's (0039's) lane counts of an update, joining the transition tables by the two columns.
CREATE OR REPLACE FUNCTION ffi_lane_count_update() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  INSERT INTO lane_count (lane_id, public_state, shard, n)
  SELECT v.lane_id, v.public_state, pg_backend_pid(), sum(v.d)
  FROM ffi_old o JOIN ffi_new n ON n.e_uuid = o.e_uuid AND n.partition_key = o.partition_key
  CROSS JOIN LATERAL (VALUES (o.lane_id, o.public_state, -1), (n.lane_id, n.public_state, 1)) AS v(lane_id, public_state, d)
  WHERE n.public_state IS DISTINCT FROM o.public_state OR n.lane_id IS DISTINCT FROM o.lane_id
  GROUP BY 1, 2 HAVING sum(v.d) <> 0
  ON CONFLICT (lane_id, public_state, shard) DO UPDATE SET n = lane_count.n + EXCLUDED.n;
  RETURN NULL;
END $$;

-- 0045's event functions, reading the execution's partition and uuid from the rows.
CREATE OR REPLACE FUNCTION ffi_trg_events_created() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off AS $$
DECLARE v_scopes text[];
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  WITH ins AS (
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, s1)
    SELECT n.event_k, n.created_at, n.partition_key, n.e_uuid, n.lane_id, n.flow_id, 'ExecutionCreated', n.public_state
    FROM ffi_new n
    RETURNING '{fp:' || e_part || '}:' || e_uuid AS execution_id, lane_id, flow_id
  )
  SELECT array_agg(v.s) INTO v_scopes
  FROM ins CROSS JOIN LATERAL (VALUES ('e:' || ins.execution_id), ('l:' || ins.lane_id), ('f:' || ins.flow_id::text)) v(s);
  PERFORM ffi_events_wake(v_scopes);
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION ffi_trg_events_updated() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off
  SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  v_xid bigint := pg_current_xact_id()::text::bigint;
  v_at bigint;
  v_scopes text[];
  v_folded text[];
  r record;
BEGIN
  IF current_setting('flowfabric.own_rows', true) = 'on' THEN RETURN NULL; END IF;
  IF EXISTS (SELECT 1 FROM ffi_old o WHERE o.event_k = v_xid) THEN
    FOR r IN SELECT n.partition_key, n.e_uuid, n.public_state, n.flow_id
             FROM ffi_old o JOIN ffi_new n ON n.e_uuid = o.e_uuid AND n.partition_key = o.partition_key
             WHERE o.event_k = v_xid AND n.event_k = v_xid LOOP
      UPDATE event SET s1 = r.public_state, flow_id = r.flow_id
      WHERE uuid_hash_extended(e_uuid, 0) = uuid_hash_extended(r.e_uuid, 0) AND e_uuid = r.e_uuid
        AND e_part = r.partition_key
        AND k = v_xid AND kind = 'ExecutionCreated';
      IF FOUND THEN v_folded := v_folded || ('{fp:' || r.partition_key || '}:' || r.e_uuid); END IF;
    END LOOP;
  END IF;
  WITH c AS (
    SELECT n.*, o.public_state AS o_state, CASE
      WHEN n.lifecycle_phase = 'active' AND n.ownership_state = 'leased' THEN
        CASE WHEN o.lifecycle_phase = 'active' AND o.ownership_state = 'leased' THEN
          CASE WHEN o.progress_updated_at IS DISTINCT FROM n.progress_updated_at THEN 'Progress' END
        ELSE 'Claimed' END
      WHEN n.lifecycle_phase = 'active' AND o.lifecycle_phase = 'active' AND o.ownership_state = 'leased' THEN 'AttemptInterrupted'
      WHEN n.attempt_state = 'pending_retry_attempt' AND o.lifecycle_phase = 'active' THEN 'RetryScheduled'
      WHEN o.public_state IS DISTINCT FROM n.public_state THEN
        CASE n.public_state
          WHEN 'completed' THEN 'Completed' WHEN 'failed' THEN 'Failed' WHEN 'cancelled' THEN 'Cancelled'
          WHEN 'expired' THEN 'Expired' WHEN 'skipped' THEN 'Skipped' WHEN 'suspended' THEN 'Suspended'
          ELSE CASE
            WHEN o.lifecycle_phase = 'suspended' THEN 'Resumed'
            WHEN n.public_state = 'delayed' AND o.lifecycle_phase = 'active' AND n.delay_until IS NOT NULL THEN 'Delayed'
            ELSE 'StateChanged' END
        END
      END AS ev
    FROM ffi_old o JOIN ffi_new n ON n.e_uuid = o.e_uuid AND n.partition_key = o.partition_key
    WHERE (o.public_state IS DISTINCT FROM n.public_state
        OR o.ownership_state IS DISTINCT FROM n.ownership_state
        OR o.lease_epoch IS DISTINCT FROM n.lease_epoch
        OR o.attempt_state IS DISTINCT FROM n.attempt_state
        OR o.progress_updated_at IS DISTINCT FROM n.progress_updated_at
        OR o.flow_id IS DISTINCT FROM n.flow_id)
      AND (v_folded IS NULL OR '{fp:' || n.partition_key || '}:' || n.e_uuid <> ALL (v_folded))
  ), ins AS (
    INSERT INTO event (k, at, e_part, e_uuid, lane_id, flow_id, kind, attempt, num, s1, s2)
    SELECT c.event_k,
      CASE WHEN c.ev = 'Progress' THEN c.progress_updated_at ELSE c.last_mutation_at END,
      c.partition_key, c.e_uuid, c.lane_id, c.flow_id, c.ev,
      CASE WHEN c.ev IN ('Claimed', 'AttemptInterrupted', 'RetryScheduled', 'Progress') THEN c.current_attempt_index
           WHEN c.ev IN ('Completed', 'Failed', 'Suspended') AND c.current_attempt_id IS NOT NULL THEN c.current_attempt_index END,
      CASE c.ev WHEN 'Progress' THEN c.progress_pct
        WHEN 'RetryScheduled' THEN CASE WHEN c.public_state = 'delayed' AND c.delay_until IS NOT NULL THEN c.delay_until
                                        ELSE c.last_mutation_at END
        WHEN 'Delayed' THEN c.delay_until END,
      CASE c.ev WHEN 'Claimed' THEN c.worker_instance_id
        WHEN 'AttemptInterrupted' THEN CASE WHEN c.ownership_state = 'lease_revoked' THEN 'lease_revoked' ELSE 'lease_expired' END
        WHEN 'Progress' THEN ffi_cut_reason(c.progress_message)
        WHEN 'RetryScheduled' THEN ffi_cut_reason(f.reason)
        WHEN 'Failed' THEN ffi_cut_reason(coalesce(f.reason, c.failure_reason))
        WHEN 'Cancelled' THEN ffi_cut_reason(c.cancellation_reason)
        WHEN 'Resumed' THEN c.public_state::text
        WHEN 'StateChanged' THEN c.public_state::text END,
      CASE c.ev WHEN 'Failed' THEN f.classification WHEN 'StateChanged' THEN c.o_state::text END
    FROM c LEFT JOIN LATERAL (
      SELECT x.reason, x.classification FROM exec_failure x
      WHERE c.ev IN ('RetryScheduled', 'Failed') AND x.execution_id = '{fp:' || c.partition_key || '}:' || c.e_uuid AND x.failed_at = c.last_mutation_at
      LIMIT 1) f ON true
    WHERE c.ev IS NOT NULL
    RETURNING at, '{fp:' || e_part || '}:' || e_uuid AS execution_id, lane_id, flow_id
  )
  SELECT max(ins.at), array_agg(v.s) INTO v_at, v_scopes
  FROM ins CROSS JOIN LATERAL (VALUES ('e:' || ins.execution_id), ('l:' || ins.lane_id), ('f:' || ins.flow_id::text)) v(s);
  IF v_at IS NOT NULL THEN
    PERFORM set_config('flowfabric.event_at', v_at::text, true);
    PERFORM ffi_events_wake(v_scopes);
  END IF;
  RETURN NULL;
END $$;
`
