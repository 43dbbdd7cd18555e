-- ===========================================================================
-- budget.lua: budgets ({b:M}) and quota policies ({q:K})
-- ===========================================================================

-- every dimension a string, every limit / delta a whole number (checked before the first write)
local function bad_dimensions(name, dims, values)
  if dims == nil then return nil end
  if type(dims) ~= "table" then return FF.err("invalid_input", name .. ": dimensions") end
  for i = 1, #dims do
    if type(dims[i]) ~= "string" then return FF.err("invalid_input", name .. ": dimensions") end
  end
  for _, list in ipairs(values) do
    if list ~= nil then
      if type(list) ~= "table" then return FF.err("invalid_input", name .. ": limits") end
      for i = 1, #list do
        local v = list[i]
        if type(v) ~= "number" or v ~= math.floor(v) or v < 0 or v > 9007199254740991 then
          return FF.err("invalid_input", name .. ": a limit or delta is not a whole number in 0..2^53-1")
        end
      end
    end
  end
  return nil
end

-- ff_create_budget: a budget with its limits per dimension (0: none) and its reset schedule.
--   KEYS:   [1] the budget partition base `<prefix>:{b:M}`
--   ARGV:   [1] now, [2] {budget_id, scope_type, scope_id, enforcement_mode, on_hard_limit,
--           on_soft_limit, reset_interval_ms, dimensions, hard, soft}
--   reply:  {1, "OK" | "ALREADY", wake, budget id}
--   errors: invalid_input (a dimension that is not a string, a limit that is not a whole number)
FF.fn.create_budget = function(B, a, now)
  local bad = FF.need("create_budget", a, { "budget_id", "s" }) or
    bad_dimensions("create_budget", a.dimensions, { a.hard, a.soft })
  if bad then return bad end
  local id = a.budget_id
  local dk = B .. ":bud:" .. id
  C("SADD", B .. ":i:budgets", id)
  if C("EXISTS", dk) == 1 then return FF.ok("ALREADY", id) end
  local interval = FF.num(a.reset_interval_ms)
  local t = {
    "budget_id", id, "scope_type", FF.str(a.scope_type), "scope_id", FF.str(a.scope_id),
    "enforcement_mode", FF.str(a.enforcement_mode), "on_hard_limit", FF.str(a.on_hard_limit),
    "on_soft_limit", FF.str(a.on_soft_limit), "reset_interval_ms", FF.s(interval),
    "breach_count", "0", "soft_breach_count", "0", "created_at", FF.s(now), "last_updated_at", FF.s(now)
  }
  if interval > 0 then
    t[#t + 1] = "next_reset_at"; t[#t + 1] = FF.s(now + interval)
    C("ZADD", B .. ":i:budget_resets", FF.s(now + interval), id)
  end
  C("HSET", dk, unpack(t))
  local limits = {}
  local dims = a.dimensions or {}
  for i, d in ipairs(dims) do
    limits[#limits + 1] = "hard:" .. d; limits[#limits + 1] = FF.str((a.hard or {})[i] or 0)
    limits[#limits + 1] = "soft:" .. d; limits[#limits + 1] = FF.str((a.soft or {})[i] or 0)
  end
  FF.hset(dk .. ":limits", limits)
  return FF.ok("OK", id)
end

-- ff_report_usage (reportUsage, reportUsageAdmin): adds the deltas to the budget's usage. Every
-- hard limit is checked before any dimension is incremented (zero overshoot): a breach adds
-- nothing and counts the breach. A repeated dedup key within a day adds nothing.
--   KEYS:   [1] the budget partition base
--   ARGV:   [1] now, [2] {budget_id, dimensions, deltas, dedup_key?}
--   reply:  {1, "OK" | "ALREADY_APPLIED", wake}
--           | {1, "SOFT_BREACH", wake, dimension, usage, soft limit} (added; the first dimension
--           past its soft limit) | {1, "HARD_BREACH", wake, dimension, usage, hard limit}
--   errors: invalid_input (a dimension, a delta, a usage past 2^53 - 1)
FF.fn.report_usage = function(B, a, now)
  local id = a.budget_id
  local dk = B .. ":bud:" .. id
  local uk = dk .. ":usage"
  local lk = dk .. ":limits"
  local dedup = nil
  if FF.str(a.dedup_key) ~= "" then
    dedup = B .. ":usagededup:" .. id .. ":" .. a.dedup_key
    if FF.ttl_get(dedup, now) ~= nil then return FF.ok("ALREADY_APPLIED") end
  end
  local dims, deltas = a.dimensions or {}, a.deltas or {}
  local bad = bad_dimensions("report_usage", dims, { deltas })
  if bad then return bad end
  -- a usage past 2^53 - 1 would lose precision (and HINCRBY fails past 2^63 - 1): refused whole
  local after = {}
  for i, d in ipairs(dims) do
    local cur = FF.num(C("HGET", uk, d))
    local hard = FF.num(C("HGET", lk, "hard:" .. d))
    local delta = FF.num(deltas[i])
    if hard > 0 and cur + delta > hard then
      C("HINCRBY", dk, "breach_count", 1)
      C("HSET", dk, "last_breach_at", FF.s(now), "last_breach_dim", d, "last_updated_at", FF.s(now))
      return FF.ok("HARD_BREACH", d, FF.s(cur), FF.s(hard))
    end
    after[d] = (after[d] or cur) + delta
    if after[d] > 9007199254740991 then
      return FF.err("invalid_input", "report_usage: the usage of a dimension would pass 2^53 - 1")
    end
  end
  local soft_dim, soft_cur, soft_lim = nil, nil, nil
  for i, d in ipairs(dims) do
    local nv = C("HINCRBY", uk, d, FF.s(FF.num(deltas[i])))
    local soft = FF.num(C("HGET", lk, "soft:" .. d))
    if soft_dim == nil and soft > 0 and nv > soft then
      soft_dim, soft_cur, soft_lim = d, nv, soft
    end
  end
  if C("EXISTS", dk) == 1 then C("HSET", dk, "last_updated_at", FF.s(now)) end
  if dedup ~= nil then FF.ttl_set(dedup, "1", 86400000, now) end
  if soft_dim ~= nil then
    C("HINCRBY", dk, "soft_breach_count", 1)
    return FF.ok("SOFT_BREACH", soft_dim, FF.s(soft_cur), FF.s(soft_lim))
  end
  return FF.ok("OK")
end

-- Resets the usage of budget `id` to zero and schedules its next reset (when it has an interval).
-- Returns the next reset time (0: none), or nil when the budget does not exist (its schedule entry
-- is dropped).
function FF.reset_budget(B, id, now)
  local dk = B .. ":bud:" .. id
  local def = FF.hmap(dk)
  if def == nil then
    C("ZREM", B .. ":i:budget_resets", id)
    return nil
  end
  local uk = dk .. ":usage"
  local usage = C("HKEYS", uk)
  local zero = {}
  for _, f in ipairs(usage) do zero[#zero + 1] = f; zero[#zero + 1] = "0" end
  FF.hset(uk, zero)
  C("HINCRBY", dk, "reset_count", 1)
  C("HSET", dk, "last_reset_at", FF.s(now), "last_updated_at", FF.s(now))
  C("HDEL", dk, "last_breach_at", "last_breach_dim")
  local interval = FF.num(def.reset_interval_ms)
  if interval > 0 then
    local next_at = now + interval
    C("HSET", dk, "next_reset_at", FF.s(next_at))
    C("ZADD", B .. ":i:budget_resets", FF.s(next_at), id)
    return next_at
  end
  C("ZREM", B .. ":i:budget_resets", id)
  return 0
end

-- ff_reset_budget (resetBudget): FF.reset_budget now.
--   KEYS:   [1] the budget partition base
--   ARGV:   [1] now, [2] {budget_id}
--   reply:  {1, "OK", wake, next reset time ("0": none)}
--   errors: budget_not_found
FF.fn.reset_budget = function(B, a, now)
  local next_at = FF.reset_budget(B, a.budget_id, now)
  if next_at == nil then return FF.err("budget_not_found") end
  return FF.ok("OK", FF.s(next_at))
end

-- ff_pass_reset_budgets (the resetBudgets pass): resets up to a.batch budgets whose reset is due.
--   KEYS:   [1] the budget partition base
--   ARGV:   [1] now, [2] {batch}
--   reply:  {1, "OK", wake, budgets reset, "1" more are due | "0", next due (the earliest reset
--           left; "" when more or none)}
--   errors: -
FF.fn.pass_reset_budgets = function(B, a, now)
  local batch = math.max(1, FF.num(a.batch, 1000))
  local index = B .. ":i:budget_resets"
  local due = C("ZRANGEBYSCORE", index, "-inf", FF.s(now), "LIMIT", 0, batch + 1)
  local n = 0
  for i = 1, math.min(#due, batch) do
    if FF.reset_budget(B, due[i], now) ~= nil then n = n + 1 end
  end
  if #due > batch then return FF.ok("OK", n, "1", "") end
  return FF.ok("OK", n, "0", C("ZRANGE", index, 0, 0, "WITHSCORES")[2] or "")
end

-- ff_create_quota (createQuotaPolicy): a quota policy with its concurrency counter at 0.
--   KEYS:   [1] the quota partition base `<prefix>:{q:K}`
--   ARGV:   [1] now, [2] {quota_policy_id, window_seconds, max_requests_per_window, max_concurrent}
--   reply:  {1, "OK" | "ALREADY", wake, quota policy id}
--   errors: -
FF.fn.create_quota = function(B, a, now)
  local id = a.quota_policy_id
  local qk = B .. ":quota:" .. id
  if C("EXISTS", qk) == 1 then return FF.ok("ALREADY", id) end
  C("HSET", qk, "quota_policy_id", id, "requests_per_window_seconds", FF.str(a.window_seconds),
    "max_requests_per_window", FF.str(a.max_requests_per_window), "active_concurrency_cap", FF.str(a.max_concurrent),
    "created_at", FF.s(now))
  C("SET", qk .. ":concurrency", "0")
  C("SADD", B .. ":i:quotas", id)
  return FF.ok("OK", id)
end

-- ff_budget_status (getBudgetStatus, read-only): the budget's definition, usage and limits.
--   KEYS:   [1] the budget partition base
--   ARGV:   [1] now, [2] {budget_id}
--   reply:  {1, "OK", "", JSON {def, usage, limits}} (hashes of strings; limits "hard:<dim>",
--           "soft:<dim>")
--   errors: budget_not_found
FF.fn.budget_status = function(B, a, now)
  local dk = B .. ":bud:" .. a.budget_id
  local def = FF.hmap(dk)
  if def == nil then return FF.err("budget_not_found") end
  return FF.ok("OK", cjson.encode({
    def = def, usage = FF.hmap(dk .. ":usage") or {}, limits = FF.hmap(dk .. ":limits") or {}
  }))
end
