-- ===========================================================================
-- internal.sql: the helpers every area uses — the reply envelope, the clock,
-- the public state, the wake-up of what became claimable, the timer rows, the lease ladder.
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- envelope and clock
-- ---------------------------------------------------------------------------

-- ffi_now: the database clock in ms (what p_now = NULL stands for).
--   args:   -
--   reply:  bigint
--   errors: -
CREATE FUNCTION ffi_now() RETURNS bigint LANGUAGE sql VOLATILE
AS $$ SELECT floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

-- ffi_eid_part: the partition N of the execution id p_eid ('{fp:N}:<uuid>', its one canonical
-- spelling), as an event row holds it (event.e_part, migration 0045) and exec_core.partition_key.
--   args:   p_eid
--   reply:  int
--   errors: - (a text that is not an execution id: 22P02)
CREATE FUNCTION ffi_eid_part(p_eid text) RETURNS int LANGUAGE sql IMMUTABLE
AS $$ SELECT substr(p_eid, 5, strpos(p_eid, '}') - 5)::int $$;

-- ffi_eid_uuid: the uuid of the execution id p_eid, as an event row (event.e_uuid, migration 0045) and
-- its exec_core and exec_data rows (e_uuid, migration 0047) hold it.
--   args:   p_eid
--   reply:  uuid
--   errors: - (a text that is not an execution id: 22P02)
CREATE FUNCTION ffi_eid_uuid(p_eid text) RETURNS uuid LANGUAGE sql IMMUTABLE
AS $$ SELECT substr(p_eid, strpos(p_eid, '}') + 2)::uuid $$;

-- (ffi_eid(p_part, p_uuid), the execution id of a partition and uuid, is migration 0047's: the key
-- of exec_data is an index on it.)

-- ffi_eid_order: the rank of partition p_part in the text order of execution ids, where '{fp:10}:'
-- sorts before '{fp:1}:' (its digits and the '}' read as base-11 digits; checked against text order
-- for all 65 536 partitions): the lane queries order the executions of one millisecond by
-- (ffi_eid_order(partition_key), e_uuid), the id's text order. Migration 0047's until 0054, whose
-- lane index no longer keys it (a function no index depends on is the library's).
--   args:   p_part
--   reply:  int
--   errors: -
CREATE FUNCTION ffi_eid_order(p_part int) RETURNS int LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT ((p_part % 10 + p_part / 10 % 10 * 11 + p_part / 100 % 10 * 121 + p_part / 1000 % 10 * 1331
              + p_part / 10000 * 14641) * 11 + 10)
             * CASE WHEN p_part < 10 THEN 14641 WHEN p_part < 100 THEN 1331 WHEN p_part < 1000 THEN 121
                    WHEN p_part < 10000 THEN 11 ELSE 1 END $$;

-- ffi_inline_bytes: the largest input or result kept in the exec_core row (migration 0050; docs/
-- design/postgres.md, "Storage"). A larger one is exec_data's.
--   args:   -
--   reply:  int (bytes)
--   errors: -
CREATE FUNCTION ffi_inline_bytes() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT 128 $$;

-- ffi_max_reclaims: an exec_core row's reclaim limit, which the row holds as NULL when it is the
-- default (100; migration 0051). NULL gives the default.
--   args:   the row's max_reclaim_count
--   reply:  int
--   errors: -
CREATE FUNCTION ffi_max_reclaims(p_stored int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(p_stored, 100) $$;

-- ffi_max_replays: an exec_core row's replay limit, NULL in the row for the default (10; migration
-- 0051). NULL gives the default.
--   args:   the row's max_replay_count
--   reply:  int
--   errors: -
CREATE FUNCTION ffi_max_replays(p_stored int) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT coalesce(p_stored, 10) $$;

-- ffi_inline: whether a create keeps the input (and its encoding) in the exec_core row and writes
-- no exec_data row: an input of at most ffi_inline_bytes() bytes and nothing else of exec_data
-- (no policy, tags, creator identity, idempotency key or trace context). exec_core.payload IS NULL
-- says that exec_data holds the input, the policy and the rest (and every row stored before
-- migration 0050).
--   args:   the create's p_payload, p_policy, p_tags, p_creator, p_idem, p_trace
--   reply:  boolean (false for a NULL input)
--   errors: -
CREATE FUNCTION ffi_inline(p_payload bytea, p_policy jsonb, p_tags jsonb, p_creator text, p_idem text, p_trace text)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT coalesce(length(p_payload) <= ffi_inline_bytes(), false) AND coalesce(p_policy, 'null') = 'null'
    AND coalesce(p_tags, '{}') = '{}' AND coalesce(p_creator, '') = '' AND coalesce(p_idem, '') = ''
    AND p_trace IS NULL $$;

-- ffi_policy: the policy stored for execution p_eid, whose exec_core row is e: exec_data's, or
-- none (NULL) without a look-up when its input is in the row, which a create chooses only for an
-- execution without a policy (ffi_inline, migration 0050).
--   args:   e (the execution's exec_core row), p_eid
--   reply:  jsonb or NULL
--   errors: -
CREATE FUNCTION ffi_policy(e exec_core, p_eid text) RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
  IF e.payload IS NOT NULL THEN RETURN NULL; END IF;
  RETURN (SELECT d.policy FROM exec_data d WHERE ffi_eid(d.e_part, d.e_uuid) = p_eid COLLATE "default");
END $$;

-- ffi_result_cold: stores result p_result (larger than ffi_inline_bytes()) of execution p_eid in
-- exec_data, in a row of its own (input NULL) when the execution has none (its input inline).
-- The caller holds the exec_core row lock.
--   args:   p_eid, p_result
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_result_cold(p_eid text, p_result bytea) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  UPDATE exec_data SET result = p_result WHERE ffi_eid(e_part, e_uuid) = p_eid COLLATE "default";
  IF NOT FOUND THEN
    INSERT INTO exec_data (e_part, e_uuid, result) VALUES (ffi_eid_part(p_eid), ffi_eid_uuid(p_eid), p_result);
  END IF;
END $$;

-- ffi_input_set: replaces the input of execution p_eid (not terminal) with p_payload, where the
-- input is: an inline input stays inline while the new one fits, and moves to an exec_data row of
-- its own (with its encoding) when it does not. The caller holds the exec_core row lock.
--   args:   p_eid, p_payload
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_input_set(p_eid text, p_payload bytea) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_enc text; v_inline boolean;
BEGIN
  SELECT payload_encoding, payload IS NOT NULL INTO v_enc, v_inline
  FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  IF NOT v_inline THEN
    UPDATE exec_data SET payload = p_payload WHERE ffi_eid(e_part, e_uuid) = p_eid COLLATE "default";
  ELSIF length(p_payload) <= ffi_inline_bytes() THEN
    UPDATE exec_core SET payload = p_payload WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
  ELSE
    UPDATE exec_core SET payload = NULL, payload_encoding = NULL
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    INSERT INTO exec_data (e_part, e_uuid, payload, payload_encoding)
    VALUES (ffi_eid_part(p_eid), ffi_eid_uuid(p_eid), p_payload, v_enc);
  END IF;
END $$;

-- ffi_err: the error reply {"err": p_code, "d": p_d} of an entry point. STABLE, not IMMUTABLE:
-- the body is only stable, and an IMMUTABLE SQL function over a stable body is never inlined.
--   args:   p_code (an error code of EngineError.fromScriptCode), p_d (its details, text)
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_err(p_code text, VARIADIC p_d text[] DEFAULT '{}') RETURNS jsonb LANGUAGE sql STABLE
AS $$ SELECT jsonb_build_object('err', p_code, 'd', to_jsonb(p_d)) $$;

-- ffi_ok: the success reply {"ok": p_v} of an entry point (STABLE, as ffi_err, to be inlined).
--   args:   p_v (the value, JSON null by default)
--   reply:  jsonb
--   errors: -
CREATE FUNCTION ffi_ok(p_v jsonb DEFAULT 'null'::jsonb) RETURNS jsonb LANGUAGE sql STABLE
AS $$ SELECT jsonb_build_object('ok', p_v) $$;

-- ffi_raise: an error that must roll the whole operation back: SQLSTATE FF001, MESSAGE = the
-- code, DETAIL = the details as a JSON array (errors.ts maps it as an {"err"} reply).
--   args:   p_code (an error code), p_d (its details)
--   reply:  never returns
--   errors: p_code
CREATE FUNCTION ffi_raise(p_code text, VARIADIC p_d text[] DEFAULT '{}') RETURNS void LANGUAGE plpgsql
AS $$ BEGIN RAISE EXCEPTION USING ERRCODE = 'FF001', MESSAGE = p_code, DETAIL = to_jsonb(p_d)::text; END $$;

-- ---------------------------------------------------------------------------
-- execution state
-- ---------------------------------------------------------------------------

-- ffi_public_state: the public state of a state vector (waiting, delayed, active, suspended,
-- waiting_children, rate_limited, completed, failed, cancelled, expired, skipped).
--   args:   p_phase (lifecycle_phase), p_elig (eligibility_state), p_outcome (terminal_outcome)
--   reply:  text
--   errors: -
CREATE FUNCTION ffi_public_state(p_phase text, p_elig text, p_outcome text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE p_phase
    WHEN 'terminal' THEN CASE p_outcome WHEN 'success' THEN 'completed' WHEN 'none' THEN 'failed' ELSE p_outcome END
    WHEN 'suspended' THEN 'suspended'
    WHEN 'active' THEN 'active'
    WHEN 'submitted' THEN 'waiting'
    ELSE CASE p_elig
      WHEN 'not_eligible_until_time' THEN 'delayed'
      WHEN 'blocked_by_dependencies' THEN 'waiting_children'
      WHEN 'blocked_by_budget' THEN 'rate_limited'
      WHEN 'blocked_by_quota' THEN 'rate_limited'
      ELSE 'waiting' END
  END $$;

-- ffi_not_active: the execution_not_active reply for row e, with its details (terminal outcome,
-- lease epoch, lifecycle phase, current attempt id).
--   args:   e (an exec_core row)
--   reply:  {"err": "execution_not_active", "d": [...]}
--   errors: execution_not_active
CREATE FUNCTION ffi_not_active(e exec_core) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT ffi_err('execution_not_active', e.terminal_outcome::text, coalesce(e.lease_epoch, 0)::text, e.lifecycle_phase::text,
                 coalesce(e.current_attempt_id::text, '')) $$;

-- ---------------------------------------------------------------------------
-- index rows (the DML helpers are PL/pgSQL, not SQL, functions: their plans are cached per session)
-- ---------------------------------------------------------------------------

-- ffi_wake_claimable: execution p_eid became claimable in this transaction (its state put it in
-- the claim index, exec_core_claim_by_kind): wakes its lane's waiting
-- workers (wakeups.sql).
--   args:   p_eid
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_wake_claimable(p_eid text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_lane text; v_void text;
BEGIN
  -- (the state as IS TRUE: a condition that proves the claim indexes' predicate would let a plan
  -- made on a small table read one of them whole instead of the key)
  SELECT lane_id INTO v_lane FROM exec_core
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) AND (blocking_reason = 'waiting_for_worker') IS TRUE;
  IF v_lane IS NOT NULL THEN v_void := ffi_wake(v_lane)::text; END IF;
END $$;

-- ffi_promote: delayed execution p_eid (its row locked) becomes claimable when its time came by
-- p_now; its delay timer goes.
--   args:   p_eid, p_now
--   reply:  whether it was promoted
--   errors: -
CREATE FUNCTION ffi_promote(p_eid text, p_now bigint) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker',
    blocking_detail = '', public_state = 'waiting', delay_until = NULL,
    last_mutation_at = p_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) AND lifecycle_phase = 'runnable'
    AND eligibility_state = 'not_eligible_until_time'
    AND coalesce(delay_until, 0) <= p_now;
  IF NOT FOUND THEN RETURN false; END IF;
  PERFORM ffi_wake_claimable(p_eid);
  PERFORM ffi_timer_del('delay', p_eid);
  RETURN true;
END $$;

-- ffi_timer_set: arms (or moves) the timer of kind p_kind for p_ref at p_due; a delay wakes the
-- waiting workers of its lane, which arm their timers for it (wakeups.sql).
--   args:   p_kind (delay, lease, attempt_timeout, deadline, suspension, waitpoint, budget_reset,
--           retention), p_ref (the execution id, waitpoint id or budget id), p_due (ms)
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_timer_set(p_kind text, p_ref text, p_due bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE v_lane text;
BEGIN
  INSERT INTO timer (kind, ref, due_at) VALUES (p_kind, p_ref, p_due)
  ON CONFLICT (kind, ref) DO UPDATE SET due_at = EXCLUDED.due_at;
  -- the lane's waiting workers arm their timers for the new due time
  IF p_kind = 'delay' THEN
    SELECT lane_id INTO v_lane FROM exec_core WHERE partition_key = ffi_eid_part(p_ref) AND e_uuid = ffi_eid_uuid(p_ref);
    IF v_lane IS NOT NULL THEN PERFORM ffi_wake(v_lane); END IF;
  END IF;
END $$;

-- ffi_timer_del: disarms the timer of kind p_kind for p_ref.
--   args:   p_kind, p_ref
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_timer_del(p_kind text, p_ref text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM timer WHERE kind = p_kind AND ref = p_ref;
END $$;

-- ffi_stream_close: closes the stream of attempt p_idx of p_eid (if open) with reason p_reason.
--   args:   p_eid, p_idx, p_reason (e.g. attempt_success, lease_expired), p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_stream_close(p_eid text, p_idx int, p_reason text, p_now bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  UPDATE stream_meta SET closed_at = p_now, closed_reason = p_reason
  WHERE execution_id = p_eid AND attempt_index = p_idx AND closed_at IS NULL;
END $$;

-- ---------------------------------------------------------------------------
-- the lease
-- ---------------------------------------------------------------------------

-- ffi_mark_expired: a lease past its expiry becomes reclaimable (a claim takes it as a new
-- attempt): its run ends, the attempt is interrupted, its stream closed, the lease timer
-- disarmed and the execution made claimable.
--   args:   p_eid, p_now
--   reply:  whether the row was leased (and is now marked)
--   errors: -
CREATE FUNCTION ffi_mark_expired(p_eid text, p_now bigint) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE v_idx int;
BEGIN
  PERFORM ffi_run_end(p_eid, 'lease_expired', NULL, p_now);
  UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, ownership_state = 'lease_expired_reclaimable', blocking_reason = 'waiting_for_worker',
    blocking_detail = 'lease expired, awaiting reclaim', attempt_state = 'attempt_interrupted',
    public_state = 'active', lease_expired_at = p_now, last_mutation_at = p_now
  WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) AND lifecycle_phase = 'active' AND ownership_state = 'leased'
  RETURNING current_attempt_index INTO v_idx;
  IF NOT FOUND THEN RETURN false; END IF;
  IF v_idx IS NOT NULL THEN PERFORM ffi_stream_close(p_eid, v_idx, 'lease_expired', p_now); END IF;
  PERFORM ffi_timer_del('lease', p_eid);
  PERFORM ffi_wake_claimable(p_eid);
  RETURN true;
END $$;

-- ffi_lease_check: the lease ladder — whether the handle still owns execution e, checked in a
-- fixed order: not active, revoked, expired, stale.
--   args:   e (the exec_core row, locked), p_idx / p_att / p_lease / p_epoch (the handle), p_now,
--           p_mark (mark an expired lease reclaimable on the way), p_attempt (compare the attempt
--           id too), p_renew (renew's stricter ladder: a recorded revocation counts as revoked and
--           the attempt index is compared)
--   reply:  NULL when the handle owns the execution, else the {"err"} reply
--   errors: execution_not_active, lease_revoked, lease_expired, stale_lease
CREATE FUNCTION ffi_lease_check(
  e exec_core, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_now bigint,
  p_mark boolean, p_attempt boolean, p_renew boolean
) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  IF e.lifecycle_phase <> 'active' THEN RETURN ffi_not_active(e); END IF;
  IF e.ownership_state = 'lease_revoked' OR (p_renew AND e.lease_revoked_at IS NOT NULL) THEN
    RETURN ffi_err('lease_revoked');
  END IF;
  IF e.lease_expires_at IS NOT NULL AND e.lease_expires_at <= p_now THEN
    IF p_mark THEN PERFORM ffi_mark_expired(ffi_eid(e.partition_key, e.e_uuid), p_now); END IF;
    RETURN ffi_err('lease_expired');
  END IF;
  IF e.lease_id IS DISTINCT FROM p_lease OR e.lease_epoch <> p_epoch
     OR (p_attempt AND e.current_attempt_id IS DISTINCT FROM p_att)
     OR (p_renew AND e.current_attempt_index IS DISTINCT FROM p_idx) THEN
    RETURN ffi_err('stale_lease');
  END IF;
  RETURN NULL;
END $$;
