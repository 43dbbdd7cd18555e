-- ===========================================================================
-- suspension.lua: pending waitpoints, suspend, signal delivery and buffering,
-- resume-condition evaluation (single matchers and the composite token algebra)
-- ===========================================================================

-- The blocking reason of a suspension, by its reason code (waiting_for_signal by default).
local BLOCKING = {
  waiting_for_signal = "waiting_for_signal", waiting_for_approval = "waiting_for_approval",
  waiting_for_callback = "waiting_for_callback", waiting_for_tool_result = "waiting_for_tool_result",
  waiting_for_operator_review = "paused_by_operator", manual_pause = "paused_by_operator",
  paused_by_policy = "paused_by_policy", paused_by_budget = "waiting_for_budget"
}
function FF.blocking_for(reason_code) return BLOCKING[reason_code] or "waiting_for_signal" end

-- --- conditions ----------------------------------------------------------------------------
-- Writes the condition hash of waitpoint `w` for a single, operator-only or timeout-only
-- condition `cond`: one matcher (a name, "" = any signal; the last two never match a signal).
function FF.init_single_condition(B, w, cond, now)
  local ck = K.wpx(B, w, "cond")
  C("DEL", ck)
  local name, mode, never = "", "any", "0"
  if cond.kind == "single" then name = FF.str(cond.name)
  elseif cond.kind == "operator" then name = "__operator_only__"; mode = "all"; never = "1"
  elseif cond.kind == "timeout" then name = "__timeout_only__"; mode = "all"; never = "1" end
  C("HSET", ck, "condition_type", "signal_set", "match_mode", mode, "minimum_signal_count", "1", "never", never,
    "total_matchers", "1", "satisfied_count", "0", "closed", "0", "updated_at", FF.s(now),
    "matcher:0:name", name, "matcher:0:satisfied", "0", "matcher:0:signal_id", "")
end

-- Writes the condition hash of waitpoint `w` under a composite condition (the tree itself is in
-- the suspension record, FF.eval_composite reads it there).
function FF.init_composite_condition(B, w, now)
  local ck = K.wpx(B, w, "cond")
  C("DEL", ck)
  C("HSET", ck, "condition_type", "composite", "match_mode", "composite", "composite", "1",
    "total_matchers", "0", "satisfied_count", "0", "closed", "0", "updated_at", FF.s(now))
end

-- Evaluates signal `sig` against waitpoint `w`'s single condition: the first unsatisfied matcher
-- it matches is satisfied. Returns the effect, whether the condition is satisfied now, whether
-- the signal matched.
function FF.eval_single(B, w, sig, now)
  local ck = K.wpx(B, w, "cond")
  local cond = FF.hmap(ck)
  if cond.never == "1" then return "no_op", false, false end
  local total = FF.num(cond.total_matchers)
  local matched = false
  for i = 0, total - 1 do
    local name = cond["matcher:" .. i .. ":name"] or ""
    if cond["matcher:" .. i .. ":satisfied"] ~= "1" and (name == "" or name == sig.signal_name) then
      C("HSET", ck, "matcher:" .. i .. ":satisfied", "1", "matcher:" .. i .. ":signal_id", sig.signal_id,
        "updated_at", FF.s(now))
      C("HINCRBY", ck, "satisfied_count", 1)
      matched = true
      break
    end
  end
  if not matched then return "no_op", false, false end
  local count = FF.num(C("HGET", ck, "satisfied_count"))
  local mode = cond.match_mode
  local need = FF.num(cond.minimum_signal_count, 1)
  if mode == "all" then need = total end
  if count >= need then return "resume_condition_satisfied", true, true end
  return "appended_to_waitpoint", false, true
end

-- Whether a composite node's matcher (a name, or wild) accepts `sig`.
local function matcher_ok(node, sig)
  if node.wild then return true end
  return node.name == sig.signal_name
end

-- The nodes of the tree under `node` that wait on the waitpoint of key `wkey`, into `out`.
local function collect(node, wkey, out)
  if node.k == "single" then
    if node.key == wkey then out[#out + 1] = node end
  elseif node.k == "count" then
    for _, k in ipairs(node.wps or {}) do
      if k == wkey then out[#out + 1] = node; break end
    end
  elseif node.k == "allof" then
    for _, m in ipairs(node.members or {}) do collect(m, wkey, out) end
  end
end

-- Whether `node` of the composite condition of `e` holds: a leaf satisfied, a count reached, all
-- members of an allof holding.
function FF.holds(B, e, node)
  if node.k == "single" then
    return C("SISMEMBER", K.ex(B, e, "susp:sat"), "leaf:" .. node.path) == 1
  elseif node.k == "count" then
    return FF.num(C("HGET", K.ex(B, e, "susp:cnt"), node.path)) >= FF.num(node.n)
  elseif node.k == "allof" then
    for _, m in ipairs(node.members or {}) do
      if not FF.holds(B, e, m) then return false end
    end
    return true
  end
  return false
end

-- Evaluates signal `sig` arriving on waitpoint `w` (key `wkey`) against the composite `tree`: each
-- node that waits on that waitpoint and accepts the signal records a token (its leaf, or a
-- distinct waitpoint / signal / source by the node's count kind). Returns the effect, whether the
-- condition is satisfied now, whether the signal matched.
function FF.eval_composite(B, e, tree, wkey, w, sig)
  local cands = {}
  collect(tree, wkey, cands)
  if #cands == 0 then return "signal_ignored_not_in_condition", false, false end
  local accepted, fresh = false, false
  for _, node in ipairs(cands) do
    if matcher_ok(node, sig) then
      accepted = true
      local token
      if node.k == "single" then
        token = "leaf:" .. node.path
      elseif node.ck == "DistinctWaitpoints" then
        token = "c:" .. node.path .. ":wp:" .. w
      elseif node.ck == "DistinctSignals" then
        token = "c:" .. node.path .. ":sig:" .. sig.signal_id
      else
        token = "c:" .. node.path .. ":src:" .. FF.str(sig.source_type) .. ":" .. FF.str(sig.source_identity)
      end
      if C("SADD", K.ex(B, e, "susp:sat"), token) == 1 then
        fresh = true
        if node.k == "count" then C("HINCRBY", K.ex(B, e, "susp:cnt"), node.path, 1) end
      end
    end
  end
  if not accepted then return "signal_ignored_matcher_failed", false, false end
  if not fresh then return "appended_to_waitpoint_duplicate", false, true end
  C("SADD", K.ex(B, e, "susp:satsig"), sig.signal_id)
  if FF.holds(B, e, tree) then return "resume_condition_satisfied", true, true end
  return "appended_to_waitpoint", false, true
end

-- --- resume -----------------------------------------------------------------------------------
-- Resumes the suspended `e`: its suspension closes with `close_reason` (`closer`: the signal that
-- satisfied it, recorded with every satisfier), and the execution becomes runnable on its
-- interrupted attempt, eligible at once or after `delay_ms` (`detail` names the delay).
function FF.resume_exec(B, e, c, now, delay_ms, detail, close_reason, closer)
  local sk = K.ex(B, e, "susp")
  local t = { "satisfied_at", FF.s(now) }
  if closer ~= nil then
    local sats = C("SMEMBERS", K.ex(B, e, "susp:satsig"))
    table.sort(sats)
    t[#t + 1] = "closer_signal_id"; t[#t + 1] = closer
    t[#t + 1] = "all_satisfier_signals"; t[#t + 1] = FF.jarr(sats)
  end
  if C("EXISTS", sk) == 1 then C("HSET", sk, unpack(t)) end
  FF.close_suspension(B, e, c, close_reason, close_reason == "resumed" and "resumed" or close_reason, now)
  local extra = { "current_suspension_id", "", "current_waitpoint_id", "" }
  if delay_ms > 0 then
    local due = now + delay_ms
    extra[#extra + 1] = "delay_until"; extra[#extra + 1] = FF.s(due)
    FF.state(B, e, c, "runnable", "unowned", "not_eligible_until_time", "waiting_for_resume_delay", detail,
      "none", "attempt_interrupted", now, extra)
    C("ZADD", K.lane(B, c.lane_id, "delayed"), FF.s(due), e)
    FF.add_due(B, c.lane_id, due)
  else
    FF.state(B, e, c, "runnable", "unowned", "eligible_now", "waiting_for_worker", "", "none",
      "attempt_interrupted", now, extra)
    FF.make_eligible(B, e, c)
  end
end

-- --- create_waitpoint ----------------------------------------------------------------------------
-- ff_create_waitpoint: a pending waitpoint of the leased execution (it buffers signals until a suspend
-- binds it with UsePending).
--   KEYS:   [1] the partition base; [2] (standalone) the registry key `<prefix>:wpid:<id>` of the id
--   ARGV:   [1] now, [2] {execution_id, attempt_index, lease_id, lease_epoch, waitpoint_id,
--           waitpoint_key, expires_in_ms, taken? (cluster: {bool}, see "the id registry")}
--   reply:  {1, "OK", wake, waitpoint id, token}
--   errors: invalid_input, execution_not_found, execution_not_active, no_active_lease, stale_lease,
--           lease_expired, waitpoint_already_exists (the id is taken, by any execution),
--           hmac_secret_not_initialized, invalid_secret (the stored secret is not hex)
FF.fn.create_waitpoint = function(B, a, now)
  local bad = FF.need("create_waitpoint", a, { "execution_id", "s", "waitpoint_id", "s", "waitpoint_key", "s" })
  if bad then return bad end
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  if c.lifecycle_phase ~= "active" then return FF.not_active(c) end
  if c.ownership_state ~= "leased" then return FF.err("no_active_lease") end
  if FF.str(a.attempt_index) ~= c.current_attempt_index then return FF.err("stale_lease") end
  if a.lease_id ~= c.current_lease_id or FF.str(a.lease_epoch) ~= c.current_lease_epoch then
    return FF.err("stale_lease")
  end
  -- the stricter lease ladder (docs/design/executions.md#the-lease-ladder) (as memory and Postgres): a lease that ran out is LeaseExpired
  -- (not marked here: the lease-expiry pass marks it)
  if c.lease_expires_at ~= "" and FF.num(c.lease_expires_at) <= now then return FF.err("lease_expired") end
  local w = a.waitpoint_id
  if C("EXISTS", K.wp(B, w)) == 1 or FF.id_taken(a, 1, e) then return FF.err("waitpoint_already_exists") end
  local token, code = FF.H.mint(B, w, a.waitpoint_key, FF.s(now))
  if token == nil then return FF.err(code) end
  local expires = now + FF.num(a.expires_in_ms)
  C("DEL", K.wpx(B, w, "cond"))
  C("HSET", K.wp(B, w), "waitpoint_id", w, "execution_id", e, "attempt_index", c.current_attempt_index,
    "suspension_id", "", "waitpoint_key", a.waitpoint_key, "waitpoint_token", token, "state", "pending",
    "created_at", FF.s(now), "activated_at", "", "satisfied_at", "", "closed_at", "", "expires_at", FF.s(expires),
    "close_reason", "", "signal_count", "0", "matched_signal_count", "0", "last_signal_at", "")
  C("ZADD", K.idx(B, "pending_wp"), FF.s(expires), w)
  C("SADD", K.ex(B, e, "wps"), w)
  FF.own_ids(a, e, 1)
  return FF.ok("OK", w, token)
end

-- --- suspend ---------------------------------------------------------------------------------------
-- ff_suspend: the leased execution suspends on a pending waitpoint (use_pending) or on Fresh
-- waitpoints (primary, then extras), under a resume condition; a keyed call replays its first
-- outcome. Buffered signals of a pending waitpoint may satisfy it at once (SATISFIED: the lease is
-- kept).
--   KEYS:   [1] the partition base; [2..] (standalone, Fresh bindings) the registry keys
--           `<prefix>:wpid:<id>` of the primary's and the extras' ids, in that order
--   ARGV:   [1] now, [2] {the lease fence, suspension_id, cond, primary, extras,
--           use_pending, resume_policy_json, reason_code, requested_by, timeout_at,
--           timeout_behavior, continuation, idempotency_key, dedup_ttl_ms, taken? (cluster: one
--           bool per Fresh binding, see "the id registry")}
--   reply:  {1, "SUSPENDED" | "SATISFIED", wake, details JSON}
--   errors: invalid_input, the lease ladder's (execution_not_found, stale_lease, lease_expired, ...),
--           invalid_lease_for_suspend, already_suspended, use_pending_with_extras_unsupported,
--           waitpoint_not_found, waitpoint_not_pending, invalid_waitpoint_for_execution,
--           pending_waitpoint_expired, waitpoint_not_token_bound, hmac_secret_not_initialized,
--           invalid_secret, additional_waitpoint_binding_malformed, waitpoint_already_exists (a
--           Fresh id taken, open or closed, by any execution)
FF.fn.suspend = function(B, a, now)
  local bad = FF.need("suspend", a, { "execution_id", "s", "suspension_id", "s", "cond", "t", "primary", "t" }) or
    FF.need("suspend", a.primary, { "waitpoint_id", "s" })
  if bad then return bad end
  if a.extras ~= nil then
    bad = FF.need_each("suspend", a.extras, { "waitpoint_id", "s", "waitpoint_key", "s" })
    if bad then return bad end
  end
  local e = a.execution_id
  local dedup = nil
  if FF.str(a.idempotency_key) ~= "" then
    dedup = K.ex(B, e, "sdedup:" .. a.idempotency_key)
    local prior = FF.ttl_get(dedup, now)
    if prior ~= nil then
      local sep = string.find(prior, "\n", 1, true)
      return FF.ok(string.sub(prior, 1, sep - 1), string.sub(prior, sep + 1))
    end
  end
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  bad = FF.ladder(B, e, c, now, a, FF.LADDER_WRITE)
  if bad then return bad end
  if FF.str(a.attempt_index) ~= c.current_attempt_index then return FF.err("invalid_lease_for_suspend") end
  local sk = K.ex(B, e, "susp")
  local prev = FF.hmap(sk)
  if prev ~= nil and (prev.suspension_id or "") ~= "" and (prev.closed_at or "") == "" then
    return FF.err("already_suspended")
  end
  local cond = a.cond
  local composite = cond.kind == "composite"
  local primary = a.primary
  local extras = a.extras or {}
  local pw = nil
  -- every check before the first write
  if a.use_pending then
    if #extras > 0 then return FF.err("use_pending_with_extras_unsupported") end
    pw = FF.hmap(K.wp(B, primary.waitpoint_id))
    if pw == nil then return FF.err("waitpoint_not_found") end
    if pw.state ~= "pending" then return FF.err("waitpoint_not_pending") end
    if pw.execution_id ~= e or pw.attempt_index ~= c.current_attempt_index then
      return FF.err("invalid_waitpoint_for_execution")
    end
    if FF.num(pw.expires_at) <= now then return FF.err("pending_waitpoint_expired") end
    if (pw.waitpoint_token or "") == "" then return FF.err("waitpoint_not_token_bound") end
  else
    if not FF.H.ready(B) then return FF.err("hmac_secret_not_initialized") end
    local all = { primary }
    for _, x in ipairs(extras) do all[#all + 1] = x end
    for i, x in ipairs(all) do
      if (x.waitpoint_id or "") == "" or (x.waitpoint_key or "") == "" then
        if x ~= primary then return FF.err("additional_waitpoint_binding_malformed") end
      end
      -- a waitpoint id names one waitpoint of one execution, open or closed
      if C("EXISTS", K.wp(B, x.waitpoint_id)) == 1 or FF.id_taken(a, i, e) then
        return FF.err("waitpoint_already_exists")
      end
    end
  end
  local timeout_at = tonumber(a.timeout_at or "")
  -- the tokens and the JSON this call writes, made before the first write (minting reads the
  -- keystore and can refuse)
  local sid = a.suspension_id
  local wp_id, wp_key, token
  local details_extra = {}
  if pw ~= nil then
    wp_id, wp_key, token = primary.waitpoint_id, pw.waitpoint_key, pw.waitpoint_token
  else
    wp_id, wp_key = primary.waitpoint_id, primary.waitpoint_key
    local t, code = FF.H.mint(B, wp_id, wp_key, FF.s(now))
    if t == nil then return FF.err(code) end
    token = t
    for _, x in ipairs(extras) do
      local xt, xcode = FF.H.mint(B, x.waitpoint_id, x.waitpoint_key, FF.s(now))
      if xt == nil then return FF.err(xcode) end
      details_extra[#details_extra + 1] = { waitpoint_id = x.waitpoint_id, waitpoint_key = x.waitpoint_key, waitpoint_token = xt }
    end
  end
  local details = cjson.encode({
    suspension_id = sid, waitpoint_id = wp_id, waitpoint_key = wp_key, waitpoint_token = token,
    additional = details_extra
  })
  local cond_json = cjson.encode(cond)
  local extras_json = FF.jarr(details_extra)
  -- writes
  if prev ~= nil then
    if (prev.waitpoint_id or "") ~= "" then C("SADD", K.ex(B, e, "wps"), prev.waitpoint_id) end
    C("DEL", sk)
  end
  C("DEL", K.ex(B, e, "susp:sat"), K.ex(B, e, "susp:satsig"), K.ex(B, e, "susp:cnt"))
  local satisfied = false
  if pw ~= nil then
    C("HSET", K.wp(B, wp_id), "suspension_id", sid, "state", "active", "activated_at", FF.s(now),
      "expires_at", timeout_at and FF.s(timeout_at) or "")
    C("ZREM", K.idx(B, "pending_wp"), wp_id)
    if composite then FF.init_composite_condition(B, wp_id, now) else FF.init_single_condition(B, wp_id, cond, now) end
    -- buffered signals are evaluated now, in arrival order
    for _, entry in ipairs(C("XRANGE", K.wpx(B, wp_id, "signals"), "-", "+")) do
      local fields = entry[2]
      local sig_id = nil
      for i = 1, #fields, 2 do if fields[i] == "signal_id" then sig_id = fields[i + 1] end end
      local sig = sig_id and FF.hmap(K.sig(B, sig_id))
      if sig ~= nil and not satisfied then
        local effect, ok
        if composite then
          effect, ok = FF.eval_composite(B, e, cond.tree, wp_key, wp_id, sig)
        else
          effect, ok = FF.eval_single(B, wp_id, sig, now)
        end
        if ok then satisfied = true end
      end
    end
  else
    C("DEL", K.wpx(B, wp_id, "signals"))
    C("HSET", K.wp(B, wp_id), "waitpoint_id", wp_id, "execution_id", e, "attempt_index", c.current_attempt_index,
      "suspension_id", sid, "waitpoint_key", wp_key, "waitpoint_token", token, "state", "active",
      "created_at", FF.s(now), "activated_at", FF.s(now), "satisfied_at", "", "closed_at", "",
      "expires_at", timeout_at and FF.s(timeout_at) or "", "close_reason", "", "signal_count", "0",
      "matched_signal_count", "0", "last_signal_at", "")
    if composite then FF.init_composite_condition(B, wp_id, now) else FF.init_single_condition(B, wp_id, cond, now) end
    for i, x in ipairs(extras) do
      local xt = details_extra[i].waitpoint_token
      C("DEL", K.wpx(B, x.waitpoint_id, "signals"))
      C("HSET", K.wp(B, x.waitpoint_id), "waitpoint_id", x.waitpoint_id, "execution_id", e,
        "attempt_index", c.current_attempt_index, "suspension_id", sid, "waitpoint_key", x.waitpoint_key,
        "waitpoint_token", xt, "state", "active", "created_at", FF.s(now), "activated_at", FF.s(now),
        "satisfied_at", "", "closed_at", "", "expires_at", timeout_at and FF.s(timeout_at) or "", "close_reason", "",
        "signal_count", "0", "matched_signal_count", "0", "last_signal_at", "")
      FF.init_composite_condition(B, x.waitpoint_id, now)
      C("SADD", K.ex(B, e, "wps"), x.waitpoint_id)
    end
    FF.own_ids(a, e, 1 + #extras)
  end
  C("SADD", K.ex(B, e, "wps"), wp_id)
  local status = "SUSPENDED"
  if satisfied then
    -- the buffered signals already satisfy the condition; the worker keeps its lease
    status = "SATISFIED"
    C("HSET", K.wp(B, wp_id), "satisfied_at", FF.s(now))
    FF.close_waitpoint(B, wp_id, "resumed", now)
    C("DEL", K.ex(B, e, "susp:sat"), K.ex(B, e, "susp:cnt"))
    FF.cset(B, e, c, { "last_mutation_at", FF.s(now) })
  else
    local tb = FF.str(a.timeout_behavior)
    if tb == "" then tb = "fail" end
    -- (the condition is kept here only when composite: a single-signal condition is the waitpoint's
    -- `cond`; the resume policy, a JSON text over 64 bytes, in a key of its own: the hash stays a
    -- listpack)
    C("HSET", sk, "suspension_id", sid, "execution_id", e, "attempt_index", c.current_attempt_index,
      "waitpoint_id", wp_id, "waitpoint_key", wp_key, "additional_waitpoints_json", extras_json,
      "reason_code", FF.str(a.reason_code), "requested_by", FF.str(a.requested_by), "created_at", FF.s(now),
      "timeout_at", timeout_at and FF.s(timeout_at) or "", "timeout_behavior", tb,
      "continuation_metadata_pointer", FF.str(a.continuation), "last_signal_at", "", "satisfied_at", "",
      "closed_at", "", "close_reason", "", "composite", composite and "1" or "0")
    if composite then C("HSET", sk, "resume_condition_json", cond_json) end
    local rp = FF.str(a.resume_policy_json)
    if rp ~= "" then C("SET", K.ex(B, e, "susp:policy"), rp) else C("DEL", K.ex(B, e, "susp:policy")) end
    FF.run_end(B, e, c, "suspended", FF.str(a.reason_code), now)
    FF.drop_lease(B, e, c)
    FF.state(B, e, c, "suspended", "unowned", "not_applicable", FF.blocking_for(FF.str(a.reason_code)),
      FF.SUSPENDED_DETAIL .. FF.str(a.reason_code), "none", "attempt_interrupted", now,
      FF.with(FF.LEASE_CLEAR, { "current_suspension_id", sid, "current_waitpoint_id", wp_id }))
    C("ZADD", K.idx(B, "suspended"), FF.s(timeout_at or FF.NO_TIMEOUT), e)
    if timeout_at then C("ZADD", K.idx(B, "susp_timeout"), FF.s(timeout_at), e) end
  end
  if dedup ~= nil then
    FF.ttl_set(dedup, status .. "\n" .. details, math.max(1, FF.num(a.dedup_ttl_ms, 604800000)), now)
  end
  return FF.ok(status, details)
end

-- --- deliver_signal (docs/design/signals.md#delivering-a-signal) ------------------------------------------------
-- A token check failed on `e` (describeExecution shows when).
local function stamp_hmac_failure(B, e, now)
  FF.cset(B, e, nil, { "last_hmac_validation_failed_at", FF.s(now) })
end

-- Stores the accepted signal `a` for waitpoint `w` of `e` (its record, payload, the waitpoint's
-- signal stream, the execution's signal index, its registry entry). Returns what the condition
-- evaluation reads of it.
local function record_signal(B, e, w, a, now, effect, payload)
  local sig = a.signal_id
  local created = tonumber(a.created_at or "") or now
  C("HSET", K.sig(B, sig), "signal_id", sig, "target_execution_id", e, "target_waitpoint_id", w,
    "target_scope", FF.str(a.target_scope), "signal_name", FF.str(a.signal_name),
    "signal_category", FF.str(a.signal_category), "source_type", FF.str(a.source_type),
    "source_identity", FF.str(a.source_identity), "correlation_id", FF.str(a.correlation_id),
    "idempotency_key", FF.str(a.idempotency_key), "created_at", FF.s(created), "accepted_at", FF.s(now),
    "matched_waitpoint_id", w, "payload_encoding", FF.str(a.payload_encoding), "observed_effect", effect)
  if payload ~= nil and payload ~= "" then C("SET", K.sig(B, sig) .. ":payload", payload) end
  local maxlen = FF.num(a.signal_maxlen, 1000)
  if maxlen <= 0 then maxlen = 1000 end
  C("XADD", K.wpx(B, w, "signals"), "MAXLEN", "~", FF.int_arg(maxlen, 1000), "*", "signal_id", sig,
    "signal_name", FF.str(a.signal_name), "accepted_at", FF.s(now))
  C("ZADD", K.ex(B, e, "sigs"), FF.s(now), sig)
  FF.own_ids(a, e, 1)
  return { signal_id = sig, signal_name = FF.str(a.signal_name), source_type = FF.str(a.source_type),
    source_identity = FF.str(a.source_identity) }
end

-- limit then dedup (in that order); returns an error/duplicate reply or nil
local function admit_signal(B, e, c, w, a, now)
  -- the execution's cap (0 = none); a sender may only lower it
  local max = tonumber(c.max_signals or "") or 10000
  local asked = tonumber(a.max_signals or "")
  if asked ~= nil and asked > 0 and (max == 0 or asked < max) then max = asked end
  if max > 0 and C("ZCARD", K.ex(B, e, "sigs")) >= max then return FF.err("signal_limit_exceeded") end
  local key = FF.str(a.idempotency_key)
  local ttl = FF.num(a.dedup_ttl_ms, 86400000)
  local dk = nil
  if key ~= "" and ttl > 0 then
    dk = K.idx(B, "sigdedup:" .. w .. ":" .. key)
    local first = FF.ttl_get(dk, now)
    if first ~= nil then return FF.ok("DUPLICATE", first) end
  end
  -- a signal id names one signal of one execution: reusing it, whoever used it, is refused
  if C("EXISTS", K.sig(B, a.signal_id)) == 1 or FF.id_taken(a, 1, e) then return FF.err("duplicate_signal") end
  if dk ~= nil then FF.ttl_set(dk, a.signal_id, ttl, now) end
  return nil
end

-- ff_deliver_signal: a signal to one waitpoint of an execution, checked against the waitpoint's
-- token: buffered on a pending waitpoint, otherwise evaluated against the suspension's condition,
-- which may resume the execution. A failed token check stamps last_hmac_validation_failed_at.
--   KEYS:   [1] the partition base; [2] (standalone) the registry key `<prefix>:sigid:<id>`
--   ARGV:   [1] now, [2] {execution_id, waitpoint_id, signal_id, signal_name, signal_category,
--           source_type, source_identity, payload_encoding, correlation_id, idempotency_key,
--           target_scope, created_at, dedup_ttl_ms, resume_delay_ms, max_signals, signal_maxlen,
--           token, taken? (cluster: {bool}, see "the id registry")}, [3] the payload (optional)
--   reply:  {1, "OK", wake, signal id, effect} | {1, "DUPLICATE", wake, the first signal id}
--   errors: invalid_input, execution_not_found, invalid_token, missing_token, token_expired,
--           hmac_secret_not_initialized, invalid_secret, target_not_signalable, waitpoint_not_found,
--           waitpoint_closed, signal_limit_exceeded, duplicate_signal (the signal id is taken, by
--           any execution)
FF.fn.deliver_signal = function(B, a, now, payload)
  local bad = FF.need("deliver_signal", a, { "execution_id", "s", "waitpoint_id", "s", "signal_id", "s" })
  if bad then return bad end
  local e, w = a.execution_id, a.waitpoint_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  local wp = FF.hmap(K.wp(B, w))
  if wp == nil or (wp.created_at or "") == "" or wp.execution_id ~= e then
    stamp_hmac_failure(B, e, now)
    return FF.err("invalid_token")
  end
  local code = FF.H.validate(B, a.token, w, wp.waitpoint_key, wp.created_at, now)
  if code ~= nil then
    stamp_hmac_failure(B, e, now)
    return FF.err(code)
  end
  if c.lifecycle_phase == "terminal" then return FF.err("target_not_signalable") end
  local never_bound = (wp.suspension_id or "") == ""
  if c.lifecycle_phase ~= "suspended" or wp.state == "pending" or never_bound then
    if wp.state == "pending" or (wp.state == "closed" and never_bound) then
      -- buffered (docs/design/signals.md#buffering) until suspend activates the waitpoint; a pending waitpoint closed or past
      -- its expiry takes nothing more
      if wp.state == "closed" or (FF.num(wp.expires_at) > 0 and FF.num(wp.expires_at) <= now) then
        return FF.err("waitpoint_closed")
      end
      local r = admit_signal(B, e, c, w, a, now)
      if r ~= nil then return r end
      record_signal(B, e, w, a, now, "buffered_for_pending_waitpoint", payload)
      C("HINCRBY", K.wp(B, w), "signal_count", 1)
      C("HSET", K.wp(B, w), "last_signal_at", FF.s(now))
      return FF.ok("OK", a.signal_id, "buffered_for_pending_waitpoint")
    end
    if wp.state ~= "active" then return FF.err("target_not_signalable") end
  end
  local ck = K.wpx(B, w, "cond")
  local closed = C("HGET", ck, "closed")
  if closed == false then return FF.err("waitpoint_not_found") end
  if closed == "1" or wp.state == "closed" then return FF.err("waitpoint_closed") end
  local r = admit_signal(B, e, c, w, a, now)
  if r ~= nil then return r end
  local sig = record_signal(B, e, w, a, now, "", payload)
  local effect, satisfied, matched
  local s = FF.hmap(K.ex(B, e, "susp"))
  local current = s ~= nil and s.suspension_id == wp.suspension_id and (s.closed_at or "") == ""
  if C("HGET", ck, "composite") == "1" then
    local tree = nil
    if current then
      local rc = FF.decode(s.resume_condition_json)
      if rc ~= nil then tree = rc.tree end
    end
    if tree == nil then
      effect, satisfied, matched = "signal_ignored_not_in_condition", false, false
    else
      effect, satisfied, matched = FF.eval_composite(B, e, tree, wp.waitpoint_key, w, sig)
    end
  else
    effect, satisfied, matched = FF.eval_single(B, w, sig, now)
  end
  if satisfied then
    C("HSET", K.wp(B, w), "satisfied_at", FF.s(now))
    if current and c.lifecycle_phase == "suspended" then
      local delay = FF.num(a.resume_delay_ms)
      FF.resume_exec(B, e, c, now, delay, "resume delay " .. FF.s(delay) .. "ms after signal " .. FF.str(a.signal_name),
        "resumed", a.signal_id)
    else
      FF.close_waitpoint(B, w, "resumed", now)
    end
  end
  C("HSET", K.sig(B, a.signal_id), "observed_effect", effect)
  C("HINCRBY", K.wp(B, w), "signal_count", 1)
  if matched then C("HINCRBY", K.wp(B, w), "matched_signal_count", 1) end
  C("HSET", K.wp(B, w), "last_signal_at", FF.s(now))
  if s ~= nil and current then C("HSET", K.ex(B, e, "susp"), "last_signal_at", FF.s(now)) end
  return FF.ok("OK", a.signal_id, effect)
end

-- --- the id registry on a cluster ---------------------------------------------------------------
-- ff_reserve_id: takes a signal or waitpoint id for an execution before the call that uses it (on a
-- cluster the registry key lives in a slot of its own). The owner taking it again (a retry) keeps
-- it, under the new nonce. A reservation whose call never ran (a crash in between) stays its
-- owner's: a retry by that execution goes through, any other execution is refused.
--   KEYS:   [1] the registry key `<prefix>:sigid:<id>` or `<prefix>:wpid:<id>`
--   ARGV:   [1] now (unused), [2] {owner: execution id, nonce}
--   reply:  {1, "CREATED" | "OWNED" | "TAKEN", ""} (TAKEN: another execution owns the id; nothing
--           is written)
--   errors: invalid_input
FF.fn.reserve_id = function(R, a)
  local bad = FF.need("reserve_id", a, { "owner", "s", "nonce", "s" })
  if bad then return bad end
  local v = C("GET", R)
  if v ~= false and FF.id_owner(v) ~= a.owner then return FF.ok("TAKEN") end
  C("SET", R, a.owner .. "|" .. a.nonce)
  return FF.ok(v == false and "CREATED" or "OWNED")
end

-- ff_release_id: gives an id back. With a nonce (a reservation whose call was refused) only while the
-- key still holds that very reservation (a concurrent call of the same owner that took it again
-- keeps it); without one (retention deleted the owner) whenever the owner holds it.
--   KEYS:   [1] the registry key
--   ARGV:   [1] now (unused), [2] {owner: execution id, nonce?}
--   reply:  {1, "OK", "", "1" deleted | "0" kept}
--   errors: invalid_input
FF.fn.release_id = function(R, a)
  local bad = FF.need("release_id", a, { "owner", "s" })
  if bad then return bad end
  local v = C("GET", R)
  local mine
  if type(a.nonce) == "string" then
    mine = v == a.owner .. "|" .. a.nonce
  else
    mine = v ~= false and FF.id_owner(v) == a.owner
  end
  if not mine then return FF.ok("OK", "0") end
  C("DEL", R)
  return FF.ok("OK", "1")
end

-- --- suspension timeouts ---------------------------------------------------------------------------
-- The timeout of the suspension of `e`, when due, by its timeout_behavior: auto-resume, escalate
-- (paused for operator review, no timeout left), or end terminal: fail (default), cancel, expire.
-- Returns whether it acted; a stale or not yet due index entry is removed or moved instead.
function FF.expire_suspension(B, e, now)
  local c = FF.core(B, e)
  if c == nil or c.lifecycle_phase ~= "suspended" then
    C("ZREM", K.idx(B, "susp_timeout"), e)
    return false
  end
  local sk = K.ex(B, e, "susp")
  local s = FF.hmap(sk)
  if s == nil or (s.closed_at or "") ~= "" then
    C("ZREM", K.idx(B, "susp_timeout"), e)
    return false
  end
  local at = tonumber(s.timeout_at or "")
  if at == nil then
    C("ZREM", K.idx(B, "susp_timeout"), e)
    return false
  end
  if at > now then
    C("ZADD", K.idx(B, "susp_timeout"), FF.s(at), e)
    return false
  end
  local b = s.timeout_behavior
  if b == "auto_resume" or b == "auto_resume_with_timeout_signal" then
    FF.resume_exec(B, e, c, now, 0, "", "timed_out_auto_resume", nil)
  elseif b == "escalate" then
    C("HSET", sk, "reason_code", "waiting_for_operator_review", "timeout_at", "", "timeout_behavior", "")
    C("ZREM", K.idx(B, "susp_timeout"), e)
    -- the timeout is gone, so the suspended score is the no-timeout score (docs/design/reads.md#the-suspended-listing)
    C("ZADD", K.idx(B, "suspended"), "XX", FF.s(FF.NO_TIMEOUT), e)
    FF.state(B, e, c, "suspended", "unowned", "not_applicable", "paused_by_operator",
      "suspension escalated: timeout at " .. FF.s(at), "none", c.attempt_state, now)
  else
    local outcome, astate = "failed", "ended_failure"
    if b == "cancel" then outcome = "cancelled"; astate = "ended_cancelled"
    elseif b == "expire" then outcome = "expired" end
    if b ~= "cancel" and b ~= "expire" then b = "fail" end
    if b ~= "cancel" then FF.record_failure(B, e, "suspension_timeout:" .. b, "Timeout", "timeout", now) end
    FF.end_attempt(B, e, c, "suspension_timeout", now)
    FF.close_suspension(B, e, c, "timed_out_" .. b, "timed_out_" .. b, now)
    local extra = { "failure_reason", "suspension_timeout:" .. b }
    if outcome == "cancelled" then
      extra[#extra + 1] = "cancellation_reason"; extra[#extra + 1] = "suspension_timeout"
      extra[#extra + 1] = "cancelled_by"; extra[#extra + 1] = "system_timeout_policy"
    end
    FF.to_terminal(B, e, c, outcome, now, extra)
  end
  return true
end
