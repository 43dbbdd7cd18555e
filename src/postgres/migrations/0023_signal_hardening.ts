/**
 * Migration 0023: waitpoint tokens and secrets are compared in constant time (docs/guide.md,
 * "Waitpoint tokens and signals").
 */
export const sql = String.raw`
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
`
