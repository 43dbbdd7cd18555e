-- ===========================================================================
-- budgets.sql: budgets (usage per dimension against hard and soft limits,
-- reset on an interval) and quota policies.
-- ===========================================================================

-- ff_create_budget: createBudget — a budget with its limits and, with a reset interval, its
-- reset timer; an existing id answers AlreadySatisfied.
--   args:   p_budget, p_partition, p_scope_type, p_scope_id, p_enforcement, p_on_hard, p_on_soft,
--           p_reset_interval (ms, 0 = never), p_dims, p_hard, p_soft (one element per
--           dimension, 0 = unlimited), p_now
--   reply:  {"ok": Model.CreateBudgetResult}
--   errors: -
CREATE FUNCTION ff_create_budget(
  p_budget uuid, p_partition int, p_scope_type text, p_scope_id text, p_enforcement text, p_on_hard text,
  p_on_soft text, p_reset_interval bigint, p_dims text[], p_hard bigint[], p_soft bigint[], p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO budget (budget_id, partition_key, scope_type, scope_id, enforcement_mode, on_hard_limit, on_soft_limit,
    reset_interval_ms, next_reset_at, created_at, last_updated_at)
  VALUES (p_budget, p_partition, p_scope_type, p_scope_id, p_enforcement, p_on_hard, p_on_soft, p_reset_interval,
    CASE WHEN p_reset_interval > 0 THEN v_now + p_reset_interval END, v_now, v_now)
  ON CONFLICT (budget_id) DO NOTHING;
  IF NOT FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'budgetId', p_budget)); END IF;
  INSERT INTO budget_limit (budget_id, dimension, hard_limit, soft_limit)
  SELECT p_budget, d, h, s FROM unnest(p_dims, p_hard, p_soft) AS t(d, h, s)
  ON CONFLICT (budget_id, dimension) DO UPDATE SET hard_limit = EXCLUDED.hard_limit, soft_limit = EXCLUDED.soft_limit;
  IF p_reset_interval > 0 THEN PERFORM ffi_timer_set('budget_reset', p_budget::text, v_now + p_reset_interval); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'budgetId', p_budget));
END $$;

-- ff_report_usage: reportUsage / reportUsageAdmin — adds the deltas, all or nothing: every hard
-- limit is checked before anything is incremented (zero overshoot; a breach is counted and
-- answered). The budget row serialises reports; an unknown budget is unlimited. A dedup key
-- makes a report count once for 24 h.
--   args:   p_budget, p_dims, p_deltas (one element per dimension), p_dedup (or NULL / ''), p_now
--   reply:  {"ok": Model.ReportUsageResult} (Ok, SoftBreach, HardBreach or AlreadyApplied)
--   errors: -
CREATE FUNCTION ff_report_usage(p_budget uuid, p_dims text[], p_deltas bigint[], p_dedup text, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE
  v_now bigint := coalesce(p_now, ffi_now());
  r record;
  v_soft record;
BEGIN
  -- the budget row serialises reports; an unknown budget is unlimited
  PERFORM 1 FROM budget WHERE budget_id = p_budget FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Ok')); END IF;
  -- (the expiry written `(…) IS TRUE`: no condition budget_dedup_expiry can take, which a plan made
  -- on a small table would read from the key's time on, every unexpired report of every budget)
  IF p_dedup IS NOT NULL AND p_dedup <> '' AND EXISTS (
       SELECT 1 FROM budget_dedup WHERE budget_id = p_budget AND dedup_key = p_dedup AND (expires_at > v_now) IS TRUE) THEN
    RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadyApplied'));
  END IF;
  FOR r IN
    SELECT t.d, t.delta, coalesce(u.value, 0) AS cur, coalesce(l.hard_limit, 0) AS hard
    FROM unnest(p_dims, p_deltas) AS t(d, delta)
    LEFT JOIN budget_usage u ON u.budget_id = p_budget AND u.dimension = t.d
    LEFT JOIN budget_limit l ON l.budget_id = p_budget AND l.dimension = t.d
    ORDER BY t.d COLLATE "C"
  LOOP
    IF r.hard > 0 AND r.cur + r.delta > r.hard THEN
      UPDATE budget SET breach_count = breach_count + 1, last_breach_at = v_now, last_breach_dim = r.d,
        last_updated_at = v_now
      WHERE budget_id = p_budget;
      RETURN ffi_ok(jsonb_build_object('_tag', 'HardBreach', 'dimension', r.d, 'currentUsage', r.cur,
                                       'hardLimit', r.hard));
    END IF;
  END LOOP;
  INSERT INTO budget_usage (budget_id, dimension, value)
  SELECT p_budget, d, delta FROM unnest(p_dims, p_deltas) AS t(d, delta)
  ON CONFLICT (budget_id, dimension) DO UPDATE SET value = budget_usage.value + EXCLUDED.value;
  SELECT u.dimension AS d, u.value AS cur, l.soft_limit AS soft INTO v_soft
  FROM budget_usage u JOIN budget_limit l ON l.budget_id = u.budget_id AND l.dimension = u.dimension
  WHERE u.budget_id = p_budget AND u.dimension = ANY (p_dims) AND l.soft_limit > 0 AND u.value > l.soft_limit
  ORDER BY u.dimension LIMIT 1;
  IF p_dedup IS NOT NULL AND p_dedup <> '' THEN
    INSERT INTO budget_dedup VALUES (p_budget, p_dedup, v_now + 86400000)
    ON CONFLICT (budget_id, dedup_key) DO UPDATE SET expires_at = EXCLUDED.expires_at;
  END IF;
  IF v_soft.d IS NOT NULL THEN
    UPDATE budget SET soft_breach_count = soft_breach_count + 1, last_updated_at = v_now WHERE budget_id = p_budget;
    RETURN ffi_ok(jsonb_build_object('_tag', 'SoftBreach', 'dimension', v_soft.d, 'currentUsage', v_soft.cur,
                                     'softLimit', v_soft.soft));
  END IF;
  UPDATE budget SET last_updated_at = v_now WHERE budget_id = p_budget;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Ok'));
END $$;

-- ffi_reset_budget: zeroes a budget's usage, counts the reset and re-arms (or disarms) its
-- reset timer. The caller holds the budget row lock.
--   args:   p_budget, p_now
--   reply:  the next reset time, 0 for none (bigint)
--   errors: -
CREATE FUNCTION ffi_reset_budget(p_budget uuid, p_now bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE v_next bigint;
BEGIN
  UPDATE budget_usage SET value = 0 WHERE budget_id = p_budget;
  UPDATE budget SET reset_count = reset_count + 1, last_reset_at = p_now, last_updated_at = p_now,
    last_breach_at = NULL, last_breach_dim = NULL,
    next_reset_at = CASE WHEN reset_interval_ms > 0 THEN p_now + reset_interval_ms END
  WHERE budget_id = p_budget RETURNING next_reset_at INTO v_next;
  IF v_next IS NOT NULL THEN
    PERFORM ffi_timer_set('budget_reset', p_budget::text, v_next);
  ELSE
    PERFORM ffi_timer_del('budget_reset', p_budget::text);
  END IF;
  RETURN coalesce(v_next, 0);
END $$;

-- ff_reset_budget: resetBudget.
--   args:   p_budget, p_now
--   reply:  {"ok": Model.ResetBudgetResult}
--   errors: budget_not_found
CREATE FUNCTION ff_reset_budget(p_budget uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  PERFORM 1 FROM budget WHERE budget_id = p_budget FOR UPDATE;
  IF NOT FOUND THEN RETURN ffi_err('budget_not_found'); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'Reset', 'nextResetAt', ffi_reset_budget(p_budget, v_now)));
END $$;

-- ff_get_budget_status: getBudgetStatus — usage and limits by dimension (limits of 0, unlimited,
-- are listed too: they are stored limits), breach counts and the next reset.
--   args:   p_budget, p_now
--   reply:  {"ok": Model.BudgetStatus}
--   errors: budget_not_found
CREATE FUNCTION ff_get_budget_status(p_budget uuid, p_now bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE b budget;
BEGIN
  SELECT * INTO b FROM budget WHERE budget_id = p_budget;
  IF NOT FOUND THEN RETURN ffi_err('budget_not_found'); END IF;
  RETURN ffi_ok(jsonb_strip_nulls(jsonb_build_object('budgetId', b.budget_id, 'scopeType', b.scope_type,
    'scopeId', b.scope_id, 'enforcementMode', b.enforcement_mode,
    'usage', (SELECT coalesce(jsonb_object_agg(dimension, value), '{}'::jsonb) FROM budget_usage WHERE budget_id = p_budget),
    'hardLimits', (SELECT coalesce(jsonb_object_agg(dimension, hard_limit), '{}'::jsonb) FROM budget_limit
                   WHERE budget_id = p_budget),
    'softLimits', (SELECT coalesce(jsonb_object_agg(dimension, soft_limit), '{}'::jsonb) FROM budget_limit
                   WHERE budget_id = p_budget),
    'breachCount', b.breach_count, 'softBreachCount', b.soft_breach_count,
    'lastBreachAt', b.last_breach_at::text, 'lastBreachDim', b.last_breach_dim,
    'nextResetAt', b.next_reset_at::text, 'createdAt', b.created_at::text)));
END $$;

-- ff_create_quota_policy: createQuotaPolicy — an existing id answers AlreadySatisfied.
--   args:   p_quota, p_partition, p_window (seconds), p_max_requests, p_max_concurrent, p_now
--   reply:  {"ok": Model.CreateQuotaPolicyResult}
--   errors: -
CREATE FUNCTION ff_create_quota_policy(
  p_quota uuid, p_partition int, p_window bigint, p_max_requests bigint, p_max_concurrent bigint, p_now bigint
) RETURNS jsonb LANGUAGE plpgsql SET search_path FROM CURRENT SET enable_seqscan = off AS $$
DECLARE v_now bigint := coalesce(p_now, ffi_now());
BEGIN
  INSERT INTO quota_policy (quota_policy_id, partition_key, window_seconds, max_requests_per_window, max_concurrent,
    created_at)
  VALUES (p_quota, p_partition, p_window, p_max_requests, p_max_concurrent, v_now)
  ON CONFLICT (quota_policy_id) DO NOTHING;
  IF FOUND THEN RETURN ffi_ok(jsonb_build_object('_tag', 'Created', 'quotaPolicyId', p_quota)); END IF;
  RETURN ffi_ok(jsonb_build_object('_tag', 'AlreadySatisfied', 'quotaPolicyId', p_quota));
END $$;
