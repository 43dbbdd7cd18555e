-- ===========================================================================
-- signals.sql: suspension, waitpoints and signals — HMAC-SHA256 waitpoint
-- tokens (over the builtin sha256, no pgcrypto) and their keystore, the
-- resume-condition evaluator, suspend, create_waitpoint, deliver_signal and
-- observe_signals.
--
-- A resume condition arrives flattened by the TypeScript side
-- (flattenCondition in src/postgres/internal/signals.ts):
--   {"legacy": bool, "nodes": [{"kind": "single" | "allof" | "count" | "never",
--     "key", "name" (null = any name), "children": [node index], "n",
--     "countKind", "waitpoints": [key]}]}
-- with the root at index 0. It is evaluated over the signals recorded on the
-- suspension's waitpoints, in arrival order:
--   p_sigs = [{"id", "key", "name", "src"}].
-- ===========================================================================

-- ---------------------------------------------------------------------------
-- HMAC-SHA256 and tokens
-- ---------------------------------------------------------------------------

-- ffi_hmac: HMAC-SHA256 (RFC 2104) of p_msg under p_key.
--   args:   p_key, p_msg
--   reply:  bytea (32 bytes)
--   errors: -
CREATE FUNCTION ffi_hmac(p_key bytea, p_msg bytea) RETURNS bytea LANGUAGE plpgsql IMMUTABLE STRICT AS $$
DECLARE
  k bytea := p_key;
  ipad bytea;
  opad bytea;
  i int;
BEGIN
  IF length(k) > 64 THEN k := sha256(k); END IF;
  k := k || decode(repeat('00', 64 - length(k)), 'hex');
  ipad := k;
  opad := k;
  FOR i IN 0..63 LOOP
    ipad := set_byte(ipad, i, get_byte(k, i) # 54);
    opad := set_byte(opad, i, get_byte(k, i) # 92);
  END LOOP;
  RETURN sha256(opad || sha256(ipad || p_msg));
END $$;

-- ffi_token: the waitpoint token "<kid>:" || hex(HMAC-SHA256(secret, kid ":" waitpoint_id "|"
-- key "|" created_at)).
--   args:   p_kid, p_secret, p_wp (waitpoint id), p_key (waitpoint key), p_created (its created_at)
--   reply:  text
--   errors: -
CREATE FUNCTION ffi_token(p_kid text, p_secret bytea, p_wp uuid, p_key text, p_created bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT p_kid || ':' || encode(ffi_hmac(p_secret, convert_to(p_kid || ':' || p_wp::text || '|' || p_key || '|' || p_created::text, 'UTF8')), 'hex') $$;

-- ffi_same_bytes: whether two byte strings are equal, in a time that does not depend on where
-- they differ: it compares their SHA-256 digests, which a caller cannot steer byte by byte toward
-- a secret value, so the time '=' takes on them tells nothing about it.
--   args:   a, b
--   reply:  boolean (NULL when either is NULL)
--   errors: -
CREATE FUNCTION ffi_same_bytes(a bytea, b bytea) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT sha256(a) = sha256(b) $$;

-- ffi_token_check: whether p_token authenticates waitpoint w, checked in a fixed order: missing,
-- keystore empty, malformed, unknown kid, kid past its grace, wrong digest.
--   args:   p_token, w (the waitpoint row), p_now
--   reply:  NULL when it does, else the error code (text)
--   errors: missing_token, hmac_secret_not_initialized, invalid_token, token_expired
CREATE FUNCTION ffi_token_check(p_token text, w waitpoint, p_now bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
  v_pos int;
  v_kid text;
  v_digest text;
  k hmac_kid;
BEGIN
  IF p_token IS NULL OR p_token = '' THEN RETURN 'missing_token'; END IF;
  IF NOT EXISTS (SELECT 1 FROM hmac_kid WHERE is_current) THEN RETURN 'hmac_secret_not_initialized'; END IF;
  v_pos := position(':' IN p_token);
  IF v_pos <= 1 OR v_pos = length(p_token) THEN RETURN 'invalid_token'; END IF;
  v_kid := left(p_token, v_pos - 1);
  v_digest := substr(p_token, v_pos + 1);
  IF length(v_digest) <> 64 OR v_digest !~ '^[0-9a-f]+$' THEN RETURN 'invalid_token'; END IF;
  SELECT * INTO k FROM hmac_kid WHERE kid = v_kid;
  IF NOT FOUND THEN RETURN 'invalid_token'; END IF;
  IF NOT k.is_current AND k.expires_at IS NOT NULL AND k.expires_at < p_now THEN RETURN 'token_expired'; END IF;
  IF NOT ffi_same_bytes(convert_to(ffi_token(v_kid, k.secret, w.waitpoint_id, w.waitpoint_key, w.created_at), 'UTF8'),
                        convert_to(p_token, 'UTF8')) THEN
    RETURN 'invalid_token';
  END IF;
  RETURN NULL;
END $$;

-- ---------------------------------------------------------------------------
-- resume conditions
-- ---------------------------------------------------------------------------

-- ffi_matches: whether condition node n accepts a signal named p_name (a node without a name
-- accepts any).
--   args:   n (a condition node), p_name
--   reply:  boolean
--   errors: -
CREATE FUNCTION ffi_matches(n jsonb, p_name text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT n->'name' IS NULL OR jsonb_typeof(n->'name') = 'null' OR n->>'name' = p_name $$;

-- ffi_cond_eval: evaluates node p_i: single (the first signal on its waitpoint key that
-- matches), allof (every child), count (n distinct waitpoints, signals or sources over its
-- waitpoints); never is never satisfied.
--   args:   p_nodes (the flattened condition's nodes), p_i (the node), p_sigs (the signals)
--   reply:  {"sat": bool, "sats": [the satisfying signal ids]}
--   errors: -
CREATE FUNCTION ffi_cond_eval(p_nodes jsonb, p_i int, p_sigs jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  n jsonb := p_nodes->p_i;
  c jsonb;
  r jsonb;
  x jsonb;
  k text;
  v_sats jsonb := '[]'::jsonb;
  v_seen text[] := '{}';
  v_distinct text;
BEGIN
  CASE n->>'kind'
    WHEN 'single' THEN
      SELECT s INTO x FROM jsonb_array_elements(p_sigs) WITH ORDINALITY AS t(s, ord)
      WHERE s->>'key' = n->>'key' AND ffi_matches(n, s->>'name') ORDER BY ord LIMIT 1;
      IF x IS NULL THEN RETURN '{"sat": false, "sats": []}'::jsonb; END IF;
      RETURN jsonb_build_object('sat', true, 'sats', jsonb_build_array(x->'id'));
    WHEN 'allof' THEN
      FOR c IN SELECT * FROM jsonb_array_elements(n->'children') LOOP
        r := ffi_cond_eval(p_nodes, c::text::int, p_sigs);
        IF NOT (r->>'sat')::boolean THEN RETURN '{"sat": false, "sats": []}'::jsonb; END IF;
        FOR x IN SELECT * FROM jsonb_array_elements(r->'sats') LOOP
          IF NOT (v_sats @> jsonb_build_array(x)) THEN v_sats := v_sats || jsonb_build_array(x); END IF;
        END LOOP;
      END LOOP;
      RETURN jsonb_build_object('sat', jsonb_array_length(n->'children') > 0, 'sats', v_sats);
    WHEN 'count' THEN
      FOR k IN SELECT jsonb_array_elements_text(n->'waitpoints') LOOP
        FOR x IN SELECT s FROM jsonb_array_elements(p_sigs) WITH ORDINALITY AS t(s, ord)
                 WHERE s->>'key' = k ORDER BY ord LOOP
          CONTINUE WHEN NOT ffi_matches(n, x->>'name');
          v_distinct := CASE n->>'countKind' WHEN 'DistinctWaitpoints' THEN k
                                             WHEN 'DistinctSignals' THEN x->>'id' ELSE x->>'src' END;
          CONTINUE WHEN v_distinct = ANY (v_seen);
          v_seen := v_seen || v_distinct;
          IF jsonb_array_length(v_sats) < (n->>'n')::int THEN v_sats := v_sats || jsonb_build_array(x->'id'); END IF;
        END LOOP;
      END LOOP;
      IF cardinality(v_seen) >= (n->>'n')::int THEN RETURN jsonb_build_object('sat', true, 'sats', v_sats); END IF;
      RETURN '{"sat": false, "sats": []}'::jsonb;
    ELSE
      RETURN '{"sat": false, "sats": []}'::jsonb;
  END CASE;
END $$;

-- ffi_cond_count: the progress measure of node p_i — distinct satisfiers summed over its parts —
-- with which deliver_signal tells a signal that advanced the condition from a duplicate.
--   args:   p_nodes, p_i, p_sigs (as ffi_cond_eval)
--   reply:  int
--   errors: -
CREATE FUNCTION ffi_cond_count(p_nodes jsonb, p_i int, p_sigs jsonb) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
  n jsonb := p_nodes->p_i;
  c jsonb;
  v_total int := 0;
  v_seen text[] := '{}';
  k text;
  x jsonb;
  v_distinct text;
BEGIN
  CASE n->>'kind'
    WHEN 'single' THEN
      RETURN CASE WHEN (ffi_cond_eval(p_nodes, p_i, p_sigs)->>'sat')::boolean THEN 1 ELSE 0 END;
    WHEN 'allof' THEN
      FOR c IN SELECT * FROM jsonb_array_elements(n->'children') LOOP
        v_total := v_total + ffi_cond_count(p_nodes, c::text::int, p_sigs);
      END LOOP;
      RETURN v_total;
    WHEN 'count' THEN
      FOR k IN SELECT jsonb_array_elements_text(n->'waitpoints') LOOP
        FOR x IN SELECT s FROM jsonb_array_elements(p_sigs) WITH ORDINALITY AS t(s, ord)
                 WHERE s->>'key' = k ORDER BY ord LOOP
          CONTINUE WHEN NOT ffi_matches(n, x->>'name');
          v_distinct := CASE n->>'countKind' WHEN 'DistinctWaitpoints' THEN k
                                             WHEN 'DistinctSignals' THEN x->>'id' ELSE x->>'src' END;
          IF NOT v_distinct = ANY (v_seen) THEN v_seen := v_seen || v_distinct; END IF;
        END LOOP;
      END LOOP;
      RETURN cardinality(v_seen);
    ELSE
      RETURN 0;
  END CASE;
END $$;

-- ffi_suspension_signals: the signals recorded on the waitpoints of suspension p_susp, in
-- arrival order, in the p_sigs shape of the evaluator.
--   args:   p_eid, p_susp (suspension id)
--   reply:  [{"id", "key", "name", "src"}]
--   errors: -
CREATE FUNCTION ffi_suspension_signals(p_eid text, p_susp uuid) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object('id', g.signal_id, 'key', w.waitpoint_key, 'name', g.signal_name,
                                               'src', g.source_type || ':' || g.source_identity) ORDER BY g.seq), '[]'::jsonb)
  FROM waitpoint w JOIN signal g ON g.waitpoint_id = w.waitpoint_id
  WHERE w.execution_id = p_eid AND w.suspension_id = p_susp $$;

-- ffi_resume: a satisfied (or auto-resumed) suspension closes and the execution becomes runnable
-- on its interrupted attempt: claimable at once, or delayed by p_delay_ms.
--   args:   p_eid, p_delay_ms, p_detail (the blocking detail while delayed), p_close_reason, p_now
--   reply:  void
--   errors: -
CREATE FUNCTION ffi_resume(p_eid text, p_delay_ms bigint, p_detail text, p_close_reason text, p_now bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM ffi_suspension_close(p_eid, p_close_reason, p_now);
  IF p_delay_ms > 0 THEN
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'not_eligible_until_time', blocking_reason = 'waiting_for_resume_delay',
      blocking_detail = p_detail, terminal_outcome = 'none', attempt_state = 'attempt_interrupted',
      public_state = 'delayed', delay_until = p_now + p_delay_ms, current_suspension_id = NULL,
      current_waitpoint_id = NULL, last_mutation_at = p_now
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    PERFORM ffi_timer_set('delay', p_eid, p_now + p_delay_ms);
  ELSE
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'runnable', ownership_state = 'unowned',
      eligibility_state = 'eligible_now', blocking_reason = 'waiting_for_worker', blocking_detail = '',
      terminal_outcome = 'none', attempt_state = 'attempt_interrupted', public_state = 'waiting',
      delay_until = NULL, current_suspension_id = NULL, current_waitpoint_id = NULL,
      last_mutation_at = p_now
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    PERFORM ffi_wake_claimable(p_eid);
  END IF;
END $$;

-- ---------------------------------------------------------------------------
-- the keystore
-- ---------------------------------------------------------------------------

-- ff_seed_waitpoint_hmac_secret: seedWaitpointHmacSecret — installs the first current key;
-- idempotent for the same kid. Seeding and rotation are serialised by an advisory lock.
--   args:   p_kid, p_secret_hex, p_now
--   reply:  {"ok": Model.SeedOutcome} (Seeded, or AlreadySeeded with sameSecret)
--   errors: invalid_input (another kid is current: rotate instead)
CREATE FUNCTION ff_seed_waitpoint_hmac_secret(p_kid text, p_secret_hex text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now()); k hmac_kid; v_secret bytea := decode(p_secret_hex, 'hex');
BEGIN
  -- seeding and rotation of the (global) keystore are serialised
  PERFORM pg_advisory_xact_lock(hashtext('flowfabric:hmac_kid:' || current_schema()));
  SELECT * INTO k FROM hmac_kid WHERE is_current;
  IF FOUND THEN
    IF k.kid <> p_kid THEN
      RETURN ffi_err('invalid_input', 'seed_waitpoint_hmac_secret: stored current_kid ' || k.kid ||
        ' differs from supplied kid ' || p_kid || '; use rotate_waitpoint_hmac_secret_all to change kid');
    END IF;
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySeeded', 'kid', p_kid, 'sameSecret', ffi_same_bytes(k.secret, v_secret)));
  END IF;
  INSERT INTO hmac_kid (kid, secret, is_current, expires_at, created_at) VALUES (p_kid, v_secret, true, NULL, v_now)
  ON CONFLICT (kid) DO UPDATE SET secret = EXCLUDED.secret, is_current = true, expires_at = NULL;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Seeded', 'kid', p_kid));
END $$;

-- ff_rotate_waitpoint_hmac_secret: rotateWaitpointHmacSecretAll — makes p_kid current; the
-- previous current key stays valid for p_grace_ms, keys whose grace is over are deleted. (jit
-- off: hmac_kid, a few rows, is read whole for the keys past their grace, and a sequential scan
-- under enable_seqscan = off costs past the JIT thresholds: about 180 ms of compilation a call.)
--   args:   p_kid, p_secret_hex, p_grace_ms, p_now
--   reply:  {"ok": Model.RotateOutcome} (Rotated with previousKid / gcCount, or Noop)
--   errors: rotation_conflict (p_kid is current with another secret)
CREATE FUNCTION ff_rotate_waitpoint_hmac_secret(p_kid text, p_secret_hex text, p_grace_ms bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off SET jit = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  v_secret bytea := decode(p_secret_hex, 'hex');
  k hmac_kid;
  v_gc int;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('flowfabric:hmac_kid:' || current_schema()));
  SELECT * INTO k FROM hmac_kid WHERE is_current;
  IF FOUND AND k.kid = p_kid THEN
    IF ffi_same_bytes(k.secret, v_secret) THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Noop', 'kid', p_kid)); END IF;
    RETURN ffi_err('rotation_conflict', p_kid);
  END IF;
  DELETE FROM hmac_kid WHERE NOT is_current AND (expires_at IS NULL OR expires_at <= 0 OR expires_at < v_now);
  GET DIAGNOSTICS v_gc = ROW_COUNT;
  UPDATE hmac_kid SET is_current = false, expires_at = v_now + p_grace_ms WHERE is_current;
  INSERT INTO hmac_kid (kid, secret, is_current, expires_at, created_at) VALUES (p_kid, v_secret, true, NULL, v_now)
  ON CONFLICT (kid) DO UPDATE SET secret = EXCLUDED.secret, is_current = true, expires_at = NULL;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('_tag', 'Rotated', 'previousKid', k.kid, 'newKid', p_kid,
                                                     'gcCount', v_gc)));
END $$;

-- ---------------------------------------------------------------------------
-- waitpoints and suspension
-- ---------------------------------------------------------------------------

-- ff_create_waitpoint: createWaitpoint — a pending waitpoint of the leased attempt, with its
-- token, expiring after p_expires_in (signals sent to it before suspend are buffered).
--   args:   the handle (p_eid, p_idx, p_att, p_lease, p_epoch), p_key, p_expires_in (ms), p_now
--   reply:  {"ok": Model.PendingWaitpoint}
--   errors: execution_not_found, execution_not_active, no_active_lease, stale_lease,
--           lease_expired, hmac_secret_not_initialized
CREATE FUNCTION ff_create_waitpoint(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint, p_key text, p_expires_in bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  k hmac_kid;
  v_wp uuid := gen_random_uuid();
  v_token text;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  IF e.lifecycle_phase <> 'active' THEN RETURN ffi_not_active(e); END IF;
  IF e.ownership_state <> 'leased' THEN RETURN ffi_err('no_active_lease'); END IF;
  IF e.current_attempt_index IS DISTINCT FROM p_idx OR e.lease_id IS DISTINCT FROM p_lease OR e.lease_epoch <> p_epoch THEN
    RETURN ffi_err('stale_lease');
  END IF;
  IF e.lease_expires_at IS NOT NULL AND e.lease_expires_at <= v_now THEN RETURN ffi_err('lease_expired'); END IF;
  SELECT * INTO k FROM hmac_kid WHERE is_current;
  IF NOT FOUND THEN RETURN ffi_err('hmac_secret_not_initialized'); END IF;
  v_token := ffi_token(k.kid, k.secret, v_wp, p_key, v_now);
  INSERT INTO waitpoint (waitpoint_id, execution_id, attempt_index, waitpoint_key, token, token_kid, state,
    created_at, expires_at)
  VALUES (v_wp, p_eid, p_idx, p_key, v_token, k.kid, 'pending', v_now, v_now + p_expires_in);
  PERFORM ffi_timer_set('waitpoint', v_wp::text, v_now + p_expires_in);
  RETURN ffi_ok(jsonb_build_object('waitpointId', v_wp, 'hmacToken', v_token));
END $$;

-- ff_suspend: suspend — the leased attempt suspends on its primary waitpoint (a fresh one, or a
-- pending one created earlier) and the fresh extra waitpoints, under the resume condition. Every
-- check runs before the first write. Signals buffered on a pending primary may satisfy the
-- condition at once: then the worker keeps its lease (AlreadySatisfied). With an idempotency key
-- the outcome is stored and a repeated call answers it (for up to 7 days, or the timeout + 1 min).
--   args:   the handle, p_susp (suspension id), p_primary_id, p_primary_key (NULL with
--           p_use_pending), p_use_pending, p_extras ([{waitpointId, waitpointKey}]), p_cond (the
--           flattened condition), p_names ({key: [required signal names]}), p_resume_policy,
--           p_reason_code, p_blocking (the blocking reason), p_requested_by, p_timeout_at,
--           p_timeout_behavior, p_continuation, p_idem, p_caller_now (the caller's clock, for the
--           dedup window), p_now
--   reply:  {"ok": {"_tag": "Suspended" | "AlreadySatisfied", "details": Model.SuspendOutcomeDetails}}
--   errors: execution_not_found, execution_not_active, lease_revoked, lease_expired, stale_lease,
--           invalid_lease_for_suspend, already_suspended, waitpoint_not_found,
--           waitpoint_not_pending, invalid_waitpoint_for_execution, pending_waitpoint_expired,
--           waitpoint_not_token_bound, hmac_secret_not_initialized, waitpoint_already_exists;
--           SQLSTATE 23505 on waitpoint_pkey when another call takes a waitpoint id first
CREATE FUNCTION ff_suspend(
  p_eid text, p_idx int, p_att uuid, p_lease uuid, p_epoch bigint,
  p_susp uuid, p_primary_id uuid, p_primary_key text, p_use_pending boolean, p_extras jsonb,
  p_cond jsonb, p_names jsonb, p_resume_policy jsonb, p_reason_code text, p_blocking text, p_requested_by text,
  p_timeout_at bigint, p_timeout_behavior text, p_continuation text, p_idem text, p_caller_now bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  s suspension;
  w waitpoint;
  k hmac_kid;
  v_err jsonb;
  v_key text;
  v_token text;
  v_res jsonb;
  x jsonb;
  v_extra_token text;
  v_extras_out jsonb := '[]'::jsonb;
  v_outcome jsonb;
  v_details jsonb;
BEGIN
  IF p_idem IS NOT NULL AND p_idem <> '' THEN
    SELECT outcome INTO v_outcome FROM suspend_dedup
    WHERE execution_id = p_eid AND idempotency_key = p_idem AND expires_at > v_now;
    IF FOUND THEN RETURN ffi_ok(v_outcome); END IF;
  END IF;
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  v_err := ffi_lease_check(e, p_idx, p_att, p_lease, p_epoch, v_now, true, true, false);
  IF v_err IS NOT NULL THEN RETURN v_err; END IF;
  IF e.current_attempt_index IS DISTINCT FROM p_idx THEN RETURN ffi_err('invalid_lease_for_suspend'); END IF;
  SELECT * INTO s FROM suspension WHERE execution_id = p_eid FOR UPDATE;
  IF FOUND AND s.closed_at IS NULL THEN RETURN ffi_err('already_suspended'); END IF;
  IF p_use_pending THEN
    SELECT * INTO w FROM waitpoint WHERE waitpoint_id = p_primary_id FOR UPDATE;
    IF NOT FOUND THEN RETURN ffi_err('waitpoint_not_found'); END IF;
    IF w.state <> 'pending' THEN RETURN ffi_err('waitpoint_not_pending'); END IF;
    IF w.execution_id <> p_eid OR w.attempt_index <> p_idx THEN RETURN ffi_err('invalid_waitpoint_for_execution'); END IF;
    IF w.expires_at IS NOT NULL AND w.expires_at <= v_now THEN RETURN ffi_err('pending_waitpoint_expired'); END IF;
    IF coalesce(w.token, '') = '' THEN RETURN ffi_err('waitpoint_not_token_bound'); END IF;
  ELSE
    SELECT * INTO k FROM hmac_kid WHERE is_current;
    IF NOT FOUND THEN RETURN ffi_err('hmac_secret_not_initialized'); END IF;
    -- (the key probed per id: as an OR with a semi-join, a plan made on a small table reads the
    -- whole key)
    IF EXISTS (SELECT 1 FROM waitpoint
               WHERE waitpoint_id = ANY (p_primary_id || ARRAY(SELECT (y->>'waitpointId')::uuid
                                                               FROM jsonb_array_elements(coalesce(p_extras, '[]'::jsonb)) y))) THEN
      RETURN ffi_err('waitpoint_already_exists');
    END IF;
  END IF;

  -- checks are done; from here on the call writes
  DELETE FROM suspension WHERE execution_id = p_eid;
  IF p_use_pending THEN
    v_key := w.waitpoint_key;
    v_token := w.token;
    UPDATE waitpoint SET state = 'active', activated_at = v_now, suspension_id = p_susp, expires_at = p_timeout_at,
      required_signal_names = ARRAY(SELECT jsonb_array_elements_text(coalesce(p_names->v_key, '[]'::jsonb)))
    WHERE waitpoint_id = w.waitpoint_id;
    PERFORM ffi_timer_del('waitpoint', w.waitpoint_id::text);
  ELSE
    v_key := p_primary_key;
    v_token := ffi_token(k.kid, k.secret, p_primary_id, v_key, v_now);
    INSERT INTO waitpoint (waitpoint_id, execution_id, attempt_index, suspension_id, waitpoint_key, token, token_kid,
      state, created_at, activated_at, expires_at, required_signal_names)
    VALUES (p_primary_id, p_eid, p_idx, p_susp, v_key, v_token, k.kid, 'active', v_now, v_now, p_timeout_at,
      ARRAY(SELECT jsonb_array_elements_text(coalesce(p_names->v_key, '[]'::jsonb))));
    FOR x IN SELECT * FROM jsonb_array_elements(coalesce(p_extras, '[]'::jsonb)) LOOP
      v_extra_token := ffi_token(k.kid, k.secret, (x->>'waitpointId')::uuid, x->>'waitpointKey', v_now);
      INSERT INTO waitpoint (waitpoint_id, execution_id, attempt_index, suspension_id, waitpoint_key, token, token_kid,
        state, created_at, activated_at, expires_at, required_signal_names)
      VALUES ((x->>'waitpointId')::uuid, p_eid, p_idx, p_susp, x->>'waitpointKey', v_extra_token, k.kid, 'active',
        v_now, v_now, p_timeout_at,
        ARRAY(SELECT jsonb_array_elements_text(coalesce(p_names->(x->>'waitpointKey'), '[]'::jsonb))));
      v_extras_out := v_extras_out || jsonb_build_array(jsonb_build_object('waitpointId', x->>'waitpointId',
        'waitpointKey', x->>'waitpointKey', 'waitpointToken', v_extra_token));
    END LOOP;
  END IF;
  INSERT INTO suspension (execution_id, partition_key, suspension_id, attempt_index, waitpoint_id, waitpoint_key,
    additional, reason_code, requested_by, created_at, timeout_at, timeout_behavior, condition, cond_state,
    resume_policy, continuation_pointer)
  VALUES (p_eid, e.partition_key, p_susp, p_idx, p_primary_id, v_key, v_extras_out, p_reason_code, p_requested_by,
    v_now, p_timeout_at, p_timeout_behavior, p_cond, '{}'::jsonb, p_resume_policy, p_continuation);
  v_details := jsonb_build_object('suspensionId', p_susp, 'waitpointId', p_primary_id, 'waitpointKey', v_key,
    'waitpointToken', v_token, 'additionalWaitpoints', v_extras_out);

  IF p_use_pending AND EXISTS (SELECT 1 FROM signal WHERE waitpoint_id = p_primary_id) THEN
    -- buffered signals may already satisfy the condition: the worker keeps its lease
    v_res := ffi_cond_eval(p_cond->'nodes', 0, ffi_suspension_signals(p_eid, p_susp));
    IF (v_res->>'sat')::boolean THEN
      UPDATE suspension SET satisfied_at = v_now,
        satisfiers = ARRAY(SELECT jsonb_array_elements_text(v_res->'sats')::uuid)
      WHERE execution_id = p_eid;
      PERFORM ffi_suspension_close(p_eid, 'resumed', v_now);
      UPDATE waitpoint SET satisfied_at = v_now, matched_signal_count = jsonb_array_length(v_res->'sats')
      WHERE waitpoint_id = p_primary_id;
      UPDATE exec_core SET last_mutation_at = v_now WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
      v_outcome := jsonb_build_object('_tag', 'AlreadySatisfied', 'details', v_details);
    END IF;
  END IF;

  IF v_outcome IS NULL THEN
    PERFORM ffi_run_end(p_eid, 'suspended', p_reason_code, v_now);
    UPDATE exec_core SET event_k = greatest(ffi_xid(), event_k, created_k), created_k = NULL, lifecycle_phase = 'suspended', ownership_state = 'unowned', eligibility_state = 'not_applicable',
      blocking_reason = p_blocking,
      blocking_detail = 'suspended: waitpoint ' || p_primary_id || ' awaiting ' || p_reason_code,
      terminal_outcome = 'none', attempt_state = 'attempt_interrupted', public_state = 'suspended',
      current_suspension_id = p_susp, current_waitpoint_id = p_primary_id,
      lease_id = NULL, worker_id = NULL, worker_instance_id = NULL, lease_expires_at = NULL,
      lease_last_renewed_at = NULL, lease_acquired_at = NULL, attempt_timeout_at = NULL,
      last_mutation_at = v_now
    WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    DELETE FROM timer WHERE ref = p_eid AND kind IN ('lease', 'attempt_timeout');
    IF p_timeout_at IS NOT NULL THEN PERFORM ffi_timer_set('suspension', p_eid, p_timeout_at); END IF;
    v_outcome := jsonb_build_object('_tag', 'Suspended', 'details', v_details);
  END IF;
  IF p_idem IS NOT NULL AND p_idem <> '' THEN
    INSERT INTO suspend_dedup VALUES (p_eid, p_idem, v_outcome, v_now + CASE WHEN p_timeout_at IS NULL THEN 604800000
      ELSE least(p_timeout_at - coalesce(p_caller_now, v_now) + 60000, 604800000) END)
    ON CONFLICT (execution_id, idempotency_key) DO UPDATE SET outcome = EXCLUDED.outcome, expires_at = EXCLUDED.expires_at;
  END IF;
  RETURN ffi_ok(v_outcome);
END $$;

-- ff_deliver_signal: deliverSignal — authenticates the token, then records the signal on its
-- waitpoint: buffered on a pending waitpoint, otherwise evaluated against the suspension's
-- condition, which may resume the execution (after the signal's resume delay; a
-- resumePolicy.resumeDelayMs is only stored with the suspension). A failed token check stamps
-- last_hmac_validation_failed_at; a signal that does not resume leaves last_mutation_at alone.
--   args:   p_eid, p_wp (waitpoint id), p_sid (signal id), p_name, p_category, p_source_type,
--           p_source_identity, p_payload, p_payload_encoding, p_correlation, p_idem,
--           p_target_scope, p_created_at, p_dedup_ttl, p_resume_delay, p_max_signals (the sender's
--           cap: it can only lower the execution's policy max_signals_per_execution, 10 000 by
--           default, 0 = none), p_token, p_now
--   reply:  {"ok": Model.DeliverSignalResult} (Accepted with its effect, or Duplicate)
--   errors: execution_not_found, missing_token, invalid_token, token_expired,
--           hmac_secret_not_initialized, target_not_signalable, waitpoint_closed,
--           signal_limit_exceeded, duplicate_signal (the signal id is taken, by any execution;
--           a racing insert fails on signal_id_unique: SQLSTATE 23505)
CREATE FUNCTION ff_deliver_signal(
  p_eid text, p_wp uuid, p_sid uuid, p_name text, p_category text, p_source_type text, p_source_identity text,
  p_payload bytea, p_payload_encoding text, p_correlation text, p_idem text, p_target_scope text,
  p_created_at bigint, p_dedup_ttl bigint, p_resume_delay bigint, p_max_signals int, p_token text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  e exec_core;
  w waitpoint;
  s suspension;
  v_code text;
  v_buffering boolean;
  v_limit int;
  v_existing uuid;
  v_nodes jsonb;
  v_root jsonb;
  v_sigs jsonb;
  v_before int := 0;
  v_res jsonb;
  v_effect text;
  v_delay bigint;
BEGIN
  SELECT * INTO e FROM exec_core WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid) FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  SELECT * INTO w FROM waitpoint WHERE waitpoint_id = p_wp AND execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN
    v_code := CASE WHEN coalesce(p_token, '') = '' THEN 'missing_token' ELSE 'invalid_token' END;
  ELSE
    v_code := ffi_token_check(p_token, w, v_now);
  END IF;
  IF v_code = 'hmac_secret_not_initialized' THEN RETURN ffi_err(v_code); END IF;
  IF v_code IS NOT NULL THEN
    UPDATE exec_core SET last_hmac_validation_failed_at = v_now WHERE partition_key = ffi_eid_part(p_eid) AND e_uuid = ffi_eid_uuid(p_eid);
    RETURN ffi_err(v_code);
  END IF;
  IF e.lifecycle_phase = 'terminal' THEN RETURN ffi_err('target_not_signalable'); END IF;
  v_buffering := w.state IN ('pending', 'expired');
  IF NOT v_buffering AND e.lifecycle_phase <> 'suspended' AND w.state <> 'active' THEN
    RETURN ffi_err('target_not_signalable');
  END IF;
  IF v_buffering THEN
    IF w.state = 'expired' OR (w.expires_at IS NOT NULL AND w.expires_at <= v_now) THEN
      RETURN ffi_err('waitpoint_closed');
    END IF;
  ELSIF w.state <> 'active' THEN
    RETURN ffi_err('waitpoint_closed');
  END IF;
  -- the execution's cap (0 = none); a sender may only lower it
  SELECT coalesce((d.policy->>'max_signals_per_execution')::int, 10000) INTO v_limit
  FROM exec_data d WHERE ffi_eid(d.e_part, d.e_uuid) = p_eid COLLATE "default";
  v_limit := coalesce(v_limit, 10000);
  IF p_max_signals > 0 AND (v_limit = 0 OR p_max_signals < v_limit) THEN v_limit := p_max_signals; END IF;
  IF v_limit > 0 AND (SELECT count(*) FROM signal WHERE execution_id = p_eid) >= v_limit THEN
    RETURN ffi_err('signal_limit_exceeded');
  END IF;
  IF p_idem IS NOT NULL AND p_idem <> '' AND p_dedup_ttl > 0 THEN
    SELECT signal_id INTO v_existing FROM signal_dedup
    WHERE waitpoint_id = p_wp AND idempotency_key = p_idem AND expires_at > v_now;
    IF FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Duplicate', 'existingSignalId', v_existing)); END IF;
  END IF;
  -- a signal id names one signal of one execution: reusing it, whoever used it, is refused (a
  -- concurrent call inserting the same id fails on signal_id_unique, mapped to the same error)
  IF EXISTS (SELECT 1 FROM signal WHERE signal_id = p_sid) THEN RETURN ffi_err('duplicate_signal'); END IF;
  IF p_idem IS NOT NULL AND p_idem <> '' AND p_dedup_ttl > 0 THEN
    INSERT INTO signal_dedup VALUES (p_wp, p_idem, p_sid, v_now + p_dedup_ttl)
    ON CONFLICT (waitpoint_id, idempotency_key) DO UPDATE SET signal_id = EXCLUDED.signal_id, expires_at = EXCLUDED.expires_at;
  END IF;
  SELECT * INTO s FROM suspension WHERE execution_id = p_eid AND closed_at IS NULL FOR UPDATE;
  IF NOT v_buffering AND FOUND AND e.lifecycle_phase = 'suspended' THEN
    v_nodes := s.condition->'nodes';
    v_root := v_nodes->0;
    IF NOT coalesce((s.condition->>'legacy')::boolean, false) THEN
      v_before := ffi_cond_count(v_nodes, 0, ffi_suspension_signals(p_eid, s.suspension_id));
    END IF;
  END IF;
  INSERT INTO signal (signal_id, execution_id, waitpoint_id, waitpoint_key, signal_name, signal_category,
    source_type, source_identity, correlation_id, idempotency_key, target_scope, payload, payload_encoding,
    created_at, accepted_at, observed_effect)
  VALUES (p_sid, p_eid, p_wp, w.waitpoint_key, p_name, p_category, p_source_type, p_source_identity,
    coalesce(p_correlation, ''), p_idem, p_target_scope, p_payload, p_payload_encoding,
    coalesce(p_created_at, v_now), v_now, '');
  UPDATE waitpoint SET signal_count = signal_count + 1, last_signal_at = v_now WHERE waitpoint_id = p_wp;
  IF v_buffering THEN
    v_effect := 'buffered_for_pending_waitpoint';
  ELSIF v_nodes IS NULL THEN
    v_effect := 'appended_to_waitpoint';
  ELSE
    UPDATE suspension SET last_signal_at = v_now WHERE execution_id = p_eid;
    v_sigs := ffi_suspension_signals(p_eid, s.suspension_id);
    v_res := ffi_cond_eval(v_nodes, 0, v_sigs);
    IF (v_res->>'sat')::boolean THEN
      UPDATE waitpoint SET matched_signal_count = matched_signal_count + 1 WHERE waitpoint_id = p_wp;
      UPDATE waitpoint SET satisfied_at = v_now WHERE waitpoint_id = s.waitpoint_id;
      UPDATE suspension SET satisfied_at = v_now, closer_signal_id = p_sid,
        satisfiers = ARRAY(SELECT jsonb_array_elements_text(v_res->'sats')::uuid)
      WHERE execution_id = p_eid;
      v_delay := coalesce(p_resume_delay, 0);
      PERFORM ffi_resume(p_eid, v_delay, 'resume delay ' || v_delay || 'ms after signal ' || p_name, 'resumed', v_now);
      v_effect := 'resume_condition_satisfied';
    ELSIF coalesce((s.condition->>'legacy')::boolean, false) THEN
      IF v_root->>'kind' = 'single' AND v_root->>'key' = w.waitpoint_key AND ffi_matches(v_root, p_name) THEN
        UPDATE waitpoint SET matched_signal_count = matched_signal_count + 1 WHERE waitpoint_id = p_wp;
        v_effect := 'appended_to_waitpoint';
      ELSE
        v_effect := 'no_op';
      END IF;
    ELSIF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_nodes) n
                      WHERE n->>'key' = w.waitpoint_key OR coalesce(n->'waitpoints', '[]'::jsonb) ? w.waitpoint_key) THEN
      v_effect := 'signal_ignored_not_in_condition';
    ELSIF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_nodes) n
                      WHERE ((n->>'kind' = 'single' AND n->>'key' = w.waitpoint_key)
                             OR (n->>'kind' = 'count' AND (n->'waitpoints') ? w.waitpoint_key))
                        AND ffi_matches(n, p_name)) THEN
      v_effect := 'signal_ignored_matcher_failed';
    ELSE
      UPDATE waitpoint SET matched_signal_count = matched_signal_count + 1 WHERE waitpoint_id = p_wp;
      v_effect := CASE WHEN ffi_cond_count(v_nodes, 0, v_sigs) > v_before
                       THEN 'appended_to_waitpoint' ELSE 'appended_to_waitpoint_duplicate' END;
    END IF;
  END IF;
  UPDATE signal SET observed_effect = v_effect
  WHERE seq = (SELECT max(seq) FROM signal WHERE execution_id = p_eid AND signal_id = p_sid);
  RETURN ffi_ok(jsonb_build_object('_tag', 'Accepted', 'signalId', p_sid, 'effect', v_effect));
END $$;

-- ff_observe_signals: observeSignals — the signals that satisfied the resumed suspension of
-- attempt p_idx (empty when it was not resumed by signals).
--   args:   p_eid, p_idx, p_now
--   reply:  {"ok": [Model.ResumeSignal, payload in base64]}
--   errors: -
CREATE FUNCTION ff_observe_signals(p_eid text, p_idx int, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE s suspension;
BEGIN
  SELECT * INTO s FROM suspension WHERE execution_id = p_eid;
  IF NOT FOUND OR s.attempt_index <> p_idx OR s.close_reason IS DISTINCT FROM 'resumed' THEN
    RETURN ffi_ok('[]'::jsonb);
  END IF;
  RETURN ffi_ok(coalesce((
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object('signalId', g.signal_id, 'signalName', g.signal_name,
      'signalCategory', g.signal_category, 'sourceType', g.source_type, 'sourceIdentity', g.source_identity,
      'correlationId', g.correlation_id, 'acceptedAt', g.accepted_at,
      'payload', encode(g.payload, 'base64'))) ORDER BY g.seq)
    FROM (SELECT DISTINCT ON (signal_id) * FROM signal
          WHERE execution_id = p_eid AND signal_id = ANY (s.satisfiers) ORDER BY signal_id, seq) g), '[]'::jsonb));
END $$;
