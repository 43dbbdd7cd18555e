/**
 * Migration 0023 (docs/guide.md, "Waitpoint tokens and signals"): waitpoint tokens and secrets are
 * compared in constant time; the execution's signal cap holds whatever cap a sender passes; a
 * signal id is unique, whichever execution used it first.
 */
export const sql = String.raw`
-- A signal id names one signal of one execution.
CREATE UNIQUE INDEX signal_id_unique ON signal (signal_id);

-- Equal byte strings, in time that does not depend on where they differ: the comparison runs over
-- the SHA-256 digests of both values, which a caller cannot steer byte by byte toward the secret
-- value, so the time '=' takes on them tells nothing about it.
CREATE OR REPLACE FUNCTION ffi_same_bytes(a bytea, b bytea) RETURNS boolean LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT sha256(a) = sha256(b) $$;

-- NULL when the token authenticates the waitpoint, else the error code, in the reference order.
CREATE OR REPLACE FUNCTION ffi_token_check(p_token text, w waitpoint, p_now bigint) RETURNS text
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

CREATE OR REPLACE FUNCTION ff_seed_waitpoint_hmac_secret(p_kid text, p_secret_hex text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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

CREATE OR REPLACE FUNCTION ff_rotate_waitpoint_hmac_secret(p_kid text, p_secret_hex text, p_grace_ms bigint, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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

-- The resume delay is the signal's; a resumePolicy.resumeDelayMs is stored with the suspension only
-- (model.md ResumePolicy). A signal that does not resume leaves the execution's last_mutation_at
-- (operations.md §5.4).
CREATE OR REPLACE FUNCTION ff_deliver_signal(
  p_eid text, p_wp uuid, p_sid uuid, p_name text, p_category text, p_source_type text, p_source_identity text,
  p_payload bytea, p_payload_encoding text, p_correlation text, p_idem text, p_target_scope text,
  p_created_at bigint, p_dedup_ttl bigint, p_resume_delay bigint, p_max_signals int, p_token text, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
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
  SELECT * INTO e FROM exec_core WHERE execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('execution_not_found'); END IF;
  SELECT * INTO w FROM waitpoint WHERE waitpoint_id = p_wp AND execution_id = p_eid FOR UPDATE;
  IF NOT FOUND THEN
    v_code := CASE WHEN coalesce(p_token, '') = '' THEN 'missing_token' ELSE 'invalid_token' END;
  ELSE
    v_code := ffi_token_check(p_token, w, v_now);
  END IF;
  IF v_code = 'hmac_secret_not_initialized' THEN RETURN ffi_err(v_code); END IF;
  IF v_code IS NOT NULL THEN
    UPDATE exec_core SET last_hmac_validation_failed_at = v_now WHERE execution_id = p_eid;
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
  FROM exec_data d WHERE d.execution_id = p_eid;
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
`
