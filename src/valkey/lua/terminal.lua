-- ===========================================================================
-- terminal.lua: terminal transitions, suspension closing, and the hook that
-- resolves a flow member's dependents inside the same call (docs/design/decisions.md#dependencies-resolve-in-the-terminal-step).
-- ===========================================================================

-- Closes the open suspension of `e` (and its waitpoints and conditions).
function FF.close_suspension(B, e, c, close_reason, wp_reason, now)
  local sk = K.ex(B, e, "susp")
  local s = FF.hmap(sk)
  C("ZREM", K.idx(B, "susp_timeout"), e)
  C("ZREM", K.idx(B, "suspended"), e)
  if s == nil then return end
  if (s.closed_at or "") == "" then
    C("HSET", sk, "closed_at", FF.s(now), "close_reason", close_reason)
  end
  local ids = { s.waitpoint_id }
  local extra = FF.decode(s.additional_waitpoints_json)
  if extra then
    for _, x in ipairs(extra) do ids[#ids + 1] = x.waitpoint_id end
  end
  for _, w in ipairs(ids) do
    if w ~= nil and w ~= "" then FF.close_waitpoint(B, w, wp_reason, now) end
  end
  C("DEL", K.ex(B, e, "susp:sat"), K.ex(B, e, "susp:satsig"), K.ex(B, e, "susp:cnt"))
end

-- Closes waitpoint `w` with `reason` (and its condition), when it is not closed already.
function FF.close_waitpoint(B, w, reason, now)
  local wk = K.wp(B, w)
  local st = C("HGET", wk, "state")
  if st ~= false and st ~= "closed" then
    C("HSET", wk, "state", "closed", "closed_at", FF.s(now), "close_reason", reason)
    C("ZREM", K.idx(B, "pending_wp"), w)
  end
  local ck = K.wpx(B, w, "cond")
  if C("EXISTS", ck) == 1 then
    C("HSET", ck, "closed", "1", "closed_at", FF.s(now), "closed_reason", reason)
  end
end

-- Moves `e` to terminal `outcome`: out of every index (FF.unindex), its lease cleared, its deadline
-- dropped, into the retention index when it is not a flow member, then FF.on_terminal. `extra`:
-- more core field pairs. `opts.astate` overrides the attempt state; `opts.no_resolve` skips
-- dependency resolution (flow cascade cancels); `opts.clears` replaces FF.TERMINAL_CLEARS (a
-- completion's, FF.COMPLETE_CLEARS).
local NO_OPTS = {}
local terminal_args = {} -- reused: FF.state takes the count
function FF.to_terminal(B, e, c, outcome, now, extra, opts)
  opts = opts or NO_OPTS
  FF.unindex(B, e, c)
  local astate = opts.astate
  if astate == nil then
    if FF.num(c.total_attempt_count) > 0 then astate = "attempt_terminal" else astate = c.attempt_state end
  end
  local t = terminal_args
  t[1], t[2] = "completed_at", FF.s(now)
  local n = 2
  if extra then
    for i = 1, #extra do t[n + i] = extra[i] end
    n = n + #extra
  end
  FF.state(B, e, c, "terminal", "unowned", "not_applicable", "none", "", outcome, astate, now, t, n,
    opts.clears or FF.TERMINAL_CLEARS)
  if c.execution_deadline_at ~= "" then C("ZREM", K.idx(B, "deadline"), e) end
  -- trimRetention: flow members are kept (their flow reads them)
  if (c.flow_id or "") == "" then
    FF.zadd(K.idx(B, "retention"), FF.s(now + FF.num(c.retention_ms, FF.RETENTION_MS)), e)
  end
  FF.on_terminal(B, e, c, outcome, now, opts)
end

-- After a terminal transition of a flow member: its flow's counters move, and its dependents are
-- queued for FF.drain (unless opts.no_resolve).
function FF.on_terminal(B, e, c, outcome, now, opts)
  local fid = c.flow_id or ""
  if fid == "" then return end
  FF.flow_member_terminal(B, fid, e, outcome, now)
  if not (opts and opts.no_resolve) then
    FF.queue[#FF.queue + 1] = { e, outcome, fid }
  end
end

-- Resolves queued dependents; beyond the work limit the rest goes to the
-- partition's dep_pending index for the reconcileDependencies pass.
function FF.drain(B, now)
  while #FF.queue > 0 do
    local item = table.remove(FF.queue, 1)
    if FF.work >= FF.WORK_LIMIT then
      C("ZADD", K.idx(B, "dep_pending"), FF.s(now), item[1])
    else
      FF.resolve_outgoing(B, item[3], item[1], item[2], now)
    end
  end
end

-- Cancels `e` from any non-terminal phase. The caller has checked the lease.
function FF.cancel_exec(B, e, c, reason, source, cancelled_by, now, opts)
  if cancelled_by ~= "worker" then FF.revoked(e, c) end
  local phase = c.lifecycle_phase
  FF.run_end(B, e, c, "cancelled", reason, now)
  if phase == "active" then
    FF.end_attempt(B, e, c, "attempt_cancelled", now)
  elseif phase == "suspended" then
    FF.end_attempt(B, e, c, "attempt_cancelled", now)
    FF.close_suspension(B, e, c, "cancelled", "cancelled", now)
  elseif c.attempt_state == "attempt_interrupted" then
    FF.end_attempt(B, e, c, "attempt_cancelled", now)
  end
  FF.to_terminal(B, e, c, "cancelled", now, { "cancellation_reason", reason, "cancelled_by", cancelled_by }, opts)
end

-- Attempt timeout or execution deadline.
function FF.expire_exec(B, e, c, reason, now)
  FF.revoked(e, c)
  local phase = c.lifecycle_phase
  FF.run_end(B, e, c, "expired", reason, now)
  FF.record_failure(B, e, reason, "Timeout", "timeout", now)
  if phase == "active" or c.attempt_state == "attempt_interrupted" then
    FF.end_attempt(B, e, c, "expired", now)
  end
  if phase == "suspended" then
    FF.end_attempt(B, e, c, "expired", now)
    FF.close_suspension(B, e, c, "expired:" .. reason, "expired", now)
  end
  FF.to_terminal(B, e, c, "expired", now, { "failure_reason", reason })
end

-- A required dependency can never be satisfied.
function FF.skip_exec(B, e, c, now)
  if c.lifecycle_phase == "terminal" then return end
  FF.revoked(e, c)
  local phase = c.lifecycle_phase
  FF.run_end(B, e, c, "skipped", "dependency_impossible", now)
  if phase == "active" or phase == "suspended" or c.attempt_state == "attempt_interrupted" then
    FF.end_attempt(B, e, c, "dependency_impossible", now)
  end
  if phase == "suspended" then FF.close_suspension(B, e, c, "skipped", "skipped", now) end
  local astate = "none"
  if FF.num(c.total_attempt_count) > 0 then astate = "attempt_terminal" end
  FF.to_terminal(B, e, c, "skipped", now, { "failure_reason", "dependency_impossible" }, { astate = astate })
end

-- Terminal failure (fail without retry, reclaim cap).
function FF.fail_terminal(B, e, c, reason, now)
  FF.to_terminal(B, e, c, "failed", now, { "failure_reason", reason })
end
