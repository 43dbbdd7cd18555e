-- ===========================================================================
-- wakeups.sql: waking idle workers (docs/worker.md, "Wake-ups, timers and
-- cancellation"). An idle worker registers in lane_waiter (ff_lane_wait) and
-- LISTENs on the schema's channel; whatever makes work claimable on a lane
-- sends a NOTIFY in its own transaction, only when the lane has a waiter (a
-- NOTIFY takes a global lock at commit: a busy system, whose workers do not
-- wait, sends none). A lease ended by another hand (a cancellation, a revoked
-- lease, a timeout) is notified to the worker instance that holds it.
--
-- The order that makes a registration safe: a transaction that makes work
-- claimable on lane L takes a shared advisory lock of L before it looks for
-- waiters; the registration takes that lock exclusively. So either the
-- producer's transaction committed before the registration (the worker's next
-- claim sees its work) or it sees the registered waiter (and notifies).
-- ===========================================================================

-- ffi_channel: the NOTIFY channel of this schema's wake-ups and revocations ('ff_' and the md5 of
-- the schema name: a channel name is at most 63 bytes).
--   args:   -
--   reply:  text
--   errors: -
CREATE FUNCTION ffi_channel() RETURNS text LANGUAGE sql STABLE
AS $$ SELECT 'ff_' || md5(current_schema()) $$;

-- ffi_lane_lock_key: the advisory lock key of lane p_lane in this schema.
--   args:   p_lane
--   reply:  bigint
--   errors: -
CREATE FUNCTION ffi_lane_lock_key(p_lane text) RETURNS bigint LANGUAGE sql STABLE
AS $$ SELECT hashtextextended('flowfabric:wake:' || current_schema() || ':' || p_lane, 0) $$;

-- ffi_wake: work became claimable on lane p_lane in this transaction: its waiting workers are
-- notified when it commits ('w' TAB lane; several in one transaction are sent once). The worker
-- instance named by the transaction's setting flowfabric.handoff_worker (ff_create_claim's: the
-- create claims for it right after its commit) does not count as a waiter.
-- (The calls are assignments, not PERFORM: an expression without tables is evaluated without a
-- query's executor start-up; the lock still comes before the probe's snapshot.)
--   args:   p_lane
--   reply:  whether the lane had a waiting worker to notify
--   errors: -
CREATE FUNCTION ffi_wake(p_lane text) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_void text;
BEGIN
  v_void := pg_advisory_xact_lock_shared(ffi_lane_lock_key(p_lane))::text;
  IF EXISTS (SELECT 1 FROM lane_waiter WHERE lane_id = p_lane
             AND worker_instance_id IS DISTINCT FROM current_setting('flowfabric.handoff_worker', true)) THEN
    v_void := pg_notify(ffi_channel(), 'w' || chr(9) || p_lane)::text;
    RETURN true;
  END IF;
  RETURN false;
END $$;

-- ffi_wake_claimable_set: ffi_wake for the lanes of the executions p_eids that are claimable now (a
-- statement that made several claimable at once).
--   args:   p_eids
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_wake_claimable_set(p_eids text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_lane text;
BEGIN
  FOR v_lane IN SELECT DISTINCT c.lane_id FROM unnest(p_eids) AS x(id) JOIN LATERAL (SELECT * FROM exec_core c
      WHERE c.partition_key = ffi_eid_part(x.id) AND c.e_uuid = ffi_eid_uuid(x.id) OFFSET 0) c ON true
                WHERE c.blocking_reason = 'waiting_for_worker' ORDER BY 1 LOOP
    PERFORM ffi_wake(v_lane);
  END LOOP;
END $$;

-- ffi_revoked: the lease of execution p_eid, if a worker holds it, ends by another hand in this
-- transaction: that worker instance is notified when it commits ('r' TAB worker instance TAB
-- execution id) and stops the attempt at once instead of at its next renewal. Called before the
-- transition, with the exec_core row locked.
--   args:   p_eid
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_revoked(p_eid text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_worker text;
BEGIN
  SELECT worker_instance_id INTO v_worker FROM exec_core
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) AND lifecycle_phase = 'active' AND ownership_state = 'leased';
  IF v_worker IS NOT NULL THEN
    PERFORM pg_notify(ffi_channel(), 'r' || chr(9) || v_worker || chr(9) || p_eid);
  END IF;
END $$;

-- ff_lane_wait: worker p_worker waits for work on lane p_lane until p_now + p_ttl (or until it
-- calls ff_lane_unwait): from the commit on, work made claimable there is notified. Expired
-- registrations of the lane go. Also answers when the lane's earliest delayed work is due.
--   args:   p_lane, p_worker (worker instance id), p_ttl (ms), p_now
--   reply:  {"ok": {"dueAt": ms or null, "fresh": whether the worker was not registered}}
--   errors: -
CREATE FUNCTION ff_lane_wait(p_lane text, p_worker text, p_ttl bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); v_fresh boolean; v_due bigint;
BEGIN
  -- waits for the transactions that made work claimable on the lane without seeing this waiter
  PERFORM pg_advisory_xact_lock(ffi_lane_lock_key(p_lane));
  DELETE FROM lane_waiter WHERE lane_id = p_lane AND expires_at <= v_now;
  INSERT INTO lane_waiter (lane_id, worker_instance_id, expires_at) VALUES (p_lane, p_worker, v_now + p_ttl)
  ON CONFLICT (lane_id, worker_instance_id) DO UPDATE SET expires_at = EXCLUDED.expires_at
  RETURNING (xmax = 0) INTO v_fresh;
  SELECT delay_until INTO v_due FROM exec_core
  WHERE lane_id = p_lane AND delay_until IS NOT NULL AND eligibility_state = 'not_eligible_until_time'
  ORDER BY delay_until LIMIT 1;
  RETURN ffi_ok(jsonb_build_object('dueAt', v_due, 'fresh', v_fresh));
END $$;

-- ff_lane_unwait: worker p_worker no longer waits on lanes p_lanes (it is busy, or stopped).
--   args:   p_lanes, p_worker, p_now (unused: every entry point takes the clock)
--   reply:  {"ok": null}
--   errors: -
CREATE FUNCTION ff_lane_unwait(p_lanes text[], p_worker text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
BEGIN
  DELETE FROM lane_waiter WHERE lane_id = ANY (p_lanes) AND worker_instance_id = p_worker;
  RETURN ffi_ok();
END $$;

-- ff_promote_due: promoteDelayed for lanes p_lanes alone: up to p_batch of their delayed and
-- backed-off executions whose time came become claimable (their waiting workers are notified).
--   args:   p_lanes, p_batch, p_now
--   reply:  {"ok": the number promoted}
--   errors: -
CREATE FUNCTION ff_promote_due(p_lanes text[], p_batch int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); v_id text; v_done int := 0;
BEGIN
  FOR v_id IN
    SELECT ffi_eid(partition_key, e_uuid) FROM exec_core
    WHERE lane_id = ANY (p_lanes) AND delay_until IS NOT NULL AND delay_until <= v_now
      AND eligibility_state = 'not_eligible_until_time'
    ORDER BY delay_until LIMIT p_batch FOR UPDATE SKIP LOCKED
  LOOP
    IF ffi_promote(v_id, v_now) THEN v_done := v_done + 1; END IF;
  END LOOP;
  RETURN ffi_ok(to_jsonb(v_done));
END $$;
