-- ===========================================================================
-- lease.lua: an attempt's end and its stream, suspension marks, the lease ladder
-- (docs/design/executions.md#the-lease-ladder), and the lease a claim writes (a fresh, resumed or
-- reclaimed attempt) and the grants that reserve an execution for a worker
-- ===========================================================================

-- --- attempts and streams ------------------------------------------------------------------
-- An attempt has no record of its own: the core holds the run that holds the lease (lease fields,
-- run_kind), and the history (history.lua) the runs that ended. (A store written by library
-- version 3 has attempt hashes `:a:<index>`: they are read only for the kind of a run they began,
-- FF.run_kind, and deleted with the execution.)
--
-- Whether the current attempt opened a stream: the core's stream_opened is set by the frame that
-- opens it (stream.lua). A run_kind of "" (an attempt a version 3 library began) or "R" (its
-- resumption) leaves it unknown, and the stream's metadata is read.
local function may_have_stream(c)
  local rk = c.run_kind
  return rk == "" or rk == "R" or c.stream_opened ~= ""
end

-- Closes the stream of the current attempt of `e` (`c`: its core) with `reason`, when it has one
-- and it is still open.
function FF.close_stream(B, e, c, reason, now)
  local idx = c.current_attempt_index
  if idx == nil or idx == "" or not may_have_stream(c) then return end
  local mk = K.smeta(B, e, idx)
  local closed = C("HGET", mk, "closed_at")
  if closed == false then return end
  if closed == "" then
    C("HSET", mk, "closed_at", FF.s(now), "closed_reason", reason)
  end
end

-- Ends the current attempt: closes its stream.
function FF.end_attempt(B, e, c, close_reason, now)
  FF.close_stream(B, e, c, close_reason, now)
end

-- Removes the lease from its indexes (the core fields are cleared by the caller's state write).
-- (A held lease is never a reclaim candidate: a stale entry is dropped by the claim that reads it.)
function FF.drop_lease(B, e, c)
  FF.zrem(K.idx(B, "lease_expiry"), e)
  if c.ownership_state ~= "leased" then C("ZREM", K.lane(B, c.lane_id, "reclaim"), e) end
  if (c.attempt_timeout_at or "") ~= "" then C("ZREM", K.idx(B, "attempt_timeout"), e) end
end

-- The lease holder gives `e` back until `until_ms` (its run ended by the caller): the lease is
-- dropped and cleared, and the execution is runnable, delayed until then (blocking `reason`,
-- `detail`, attempt state `astate`, more core fields `extra`), in its lane's delayed index.
function FF.release_until(B, e, c, until_ms, reason, detail, astate, extra, now)
  FF.drop_lease(B, e, c)
  local fields = FF.with(FF.LEASE_CLEAR, extra)
  fields[#fields + 1] = "delay_until"
  fields[#fields + 1] = FF.s(until_ms)
  FF.state(B, e, c, "runnable", "unowned", "not_eligible_until_time", reason, detail, "none", astate, now, fields)
  C("ZADD", K.lane(B, c.lane_id, "delayed"), FF.s(until_ms), e)
  FF.add_due(B, c.lane_id, until_ms)
end

-- --- the lease ladder (docs/design/executions.md#the-lease-ladder) -----------------------------------------------------
FF.LADDER_WRITE = { mark = true, attempt = true } -- the checks of a write that ends or parks the attempt
-- The checks of a write by the lease holder `f` (the lease fence) on `e`, in order: the execution
-- is active, the lease not revoked, not expired, and the fence matches. Returns nil when the lease
-- holds, else the refusal: execution_not_active (FF.not_active), lease_revoked, lease_expired
-- (with opts.mark an expired lease is marked now, FF.mark_expired, and the refusal carries
-- "marked" and the wake: the only write a refused write makes), stale_lease.
-- opts.mark: mark an expired lease (write) ; opts.attempt: compare the attempt id ;
-- opts.index: compare the attempt index ; opts.revoked_at: a set lease_revoked_at counts as revoked
function FF.ladder(B, e, c, now, f, opts)
  if c.lifecycle_phase ~= "active" then return FF.not_active(c) end
  if c.ownership_state == "lease_revoked" or (opts.revoked_at and (c.lease_revoked_at or "") ~= "") then
    return FF.err("lease_revoked")
  end
  if c.ownership_state == "lease_expired_reclaimable" then return FF.err("lease_expired") end
  if FF.num(c.lease_expires_at) <= now then
    if opts.mark then
      FF.mark_expired(B, e, c, now)
      return FF.err("lease_expired", "marked", FF.wake_json())
    end
    return FF.err("lease_expired")
  end
  if opts.index and FF.str(f.attempt_index) ~= (c.current_attempt_index or "") then return FF.err("stale_lease") end
  if f.lease_id ~= c.current_lease_id or FF.str(f.lease_epoch) ~= c.current_lease_epoch then
    return FF.err("stale_lease")
  end
  if opts.attempt and f.attempt_id ~= c.current_attempt_id then return FF.err("stale_lease") end
  return nil
end

-- The execution of a write by its lease holder: a.execution_id and its core when the lease ladder
-- (FF.LADDER_WRITE) lets the write through; else nil, nil and the refusal (execution_not_found,
-- the ladder's).
function FF.held(B, a, now)
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return nil, nil, FF.err("execution_not_found") end
  local bad = FF.ladder(B, e, c, now, a, FF.LADDER_WRITE)
  if bad then return nil, nil, bad end
  return e, c
end

-- The lease elapsed. The execution stays active and becomes a reclaim candidate.
function FF.mark_expired(B, e, c, now)
  if c.ownership_state ~= "leased" then return end
  FF.run_end(B, e, c, "lease_expired", nil, now)
  FF.state(B, e, c, "active", "lease_expired_reclaimable", "not_applicable", "waiting_for_worker",
    "lease expired, awaiting reclaim", "none", "attempt_interrupted", now, { "lease_expired_at", FF.s(now) })
  FF.close_stream(B, e, c, "lease_expired", now)
  FF.zrem(K.idx(B, "lease_expiry"), e)
  local score = FF.pscore(c.priority, c.created_at)
  C("ZADD", K.lane(B, c.lane_id, "reclaim"), FF.s(score), e)
  FF.add_wake(c.lane_id, score)
end

-- Marks up to `limit` leases of the partition whose expiry is due. Returns the count and whether more remain.
function FF.expire_due_leases(B, now, limit)
  FF.zsync()
  local due = C("ZRANGEBYSCORE", K.idx(B, "lease_expiry"), "-inf", FF.s(now), "LIMIT", 0, limit + 1)
  local n = 0
  for i = 1, math.min(#due, limit) do
    local e = due[i]
    local c = FF.core(B, e)
    if c == nil or c.lifecycle_phase ~= "active" or c.ownership_state ~= "leased" then
      FF.zrem(K.idx(B, "lease_expiry"), e)
    elseif FF.num(c.lease_expires_at) <= now then
      FF.mark_expired(B, e, c, now)
      n = n + 1
    else
      FF.zadd(K.idx(B, "lease_expiry"), c.lease_expires_at, e)
    end
  end
  return n, #due > limit
end

-- --- leasing -------------------------------------------------------------------------
-- Writes the lease of a claim into the core and the indexes (the core holds the whole lease: no
-- separate lease record): the execution becomes active and leased, leaves its lane's eligible (or
-- reclaim) index and enters the lease_expiry index. `extra`: more core field pairs. Returns the
-- lease expiry. The fields go through a reused table (FF.state takes their count). `count`: the
-- attempt count after the claim.
local lease_args = {}
local LEASE_ON_CLEARS = { "lease_last_renewed_at", "lease_expired_at", "lease_revoked_at", "lease_revoke_reason",
  "delay_until", "current_suspension_id", "current_waitpoint_id", "grant_pending" }
function FF.lease_on(B, e, c, now, idx, attempt_id, lease_id, epoch, wid, wiid, ttl, extra, count)
  local was = c.lifecycle_phase
  local exp = now + ttl
  local snow = FF.s(now)
  local t = lease_args
  t[1], t[2], t[3], t[4] = "current_attempt_id", attempt_id, "current_lease_id", lease_id
  t[5], t[6], t[7], t[8] = "current_worker_id", wid, "current_worker_instance_id", wiid
  t[9], t[10], t[11], t[12] = "lease_acquired_at", snow, "lease_expires_at", FF.s(exp)
  local n = 12
  -- the epoch: stored when it differs from the attempt count, or where it is stored already
  -- (helpers.lua, LE_DERIVED), else read from the count
  local sepoch = FF.s(epoch)
  if sepoch ~= count or (c.current_lease_epoch ~= "" and not rawget(c, FF.LE_DERIVED)) then
    t[13], t[14] = "current_lease_epoch", sepoch
    n = 14
    rawset(c, FF.LE_DERIVED, nil)
  else
    rawset(c, "current_lease_epoch", sepoch)
    rawset(c, FF.LE_DERIVED, true)
  end
  -- the attempt index is the attempt count - 1 after every claim: stored only where a version 9
  -- claim stored it (helpers.lua, AI_DERIVED), else read from the count
  local ai = c.current_attempt_index
  if ai ~= "" and not rawget(c, FF.AI_DERIVED) then
    t[15], t[16] = "current_attempt_index", FF.str(idx)
    n = 16
  else
    rawset(c, "current_attempt_index", FF.str(idx))
    rawset(c, FF.AI_DERIVED, true)
  end
  if (c.started_at or "") == "" then
    -- (the first claim: started_at is lease_acquired_at until that changes, FF.state)
    rawset(c, "started_at", snow)
    rawset(c, FF.SA_DERIVED, true)
  end
  if extra then
    for i = 1, #extra do t[n + i] = extra[i] end
    n = n + #extra
  end
  FF.state(B, e, c, "active", "leased", "not_applicable", "none", "", "none", "running_attempt", now, t, n,
    LEASE_ON_CLEARS)
  local lane = c.lane_id
  if was == "active" then
    C("ZREM", K.lane(B, lane, "reclaim"), e)
  else
    FF.drop_eligible_kind(B, lane, e, c)
  end
  FF.zadd(K.idx(B, "lease_expiry"), FF.s(exp), e)
  return exp
end

-- Arms the attempt's timeout (attempt_timeout_ms of the core, or `override`), when it has one: its
-- due time goes to the core's attempt_timeout_at (what expireAttempts checks an index entry
-- against) and to the attempt_timeout index; an attempt without one clears a due time left.
function FF.arm_attempt_timeout(B, e, c, now, override)
  local ms = tonumber(override or "") or FF.num(c.attempt_timeout_ms)
  if ms > 0 then
    local due = FF.s(now + ms)
    FF.cset(B, e, c, { "attempt_timeout_at", due })
    C("ZADD", K.idx(B, "attempt_timeout"), due, e)
  elseif (c.attempt_timeout_at or "") ~= "" then
    FF.cset(B, e, c, { "attempt_timeout_at", "" })
    C("ZREM", K.idx(B, "attempt_timeout"), e)
  end
end

-- A new attempt of the eligible `e` (initial / retry / replay, from the core's attempt_state),
-- leased to the claim `a` (worker_id, worker_instance_id, lease_ttl_ms, lease_id, attempt_id).
-- Returns the claim's 7 reply fields: execution id, attempt index, attempt id, lease id, lease
-- epoch, lease expiry, "fresh".
function FF.claim_fresh(B, e, c, now, a)
  local idx = FF.num(c.total_attempt_count)
  local epoch = FF.num(c.current_lease_epoch) + 1
  -- (the run's kind: initial, retry or replay; no attempt record, the core holds the run)
  local kind = "i"
  if c.attempt_state == "pending_retry_attempt" then
    kind = "t"
  elseif c.attempt_state == "pending_replay_attempt" then
    kind = "y"
  end
  local exp = FF.lease_on(B, e, c, now, idx, a.attempt_id, a.lease_id, epoch, a.worker_id, a.worker_instance_id,
    a.lease_ttl_ms, {
      "total_attempt_count", FF.s(idx + 1), "pending_retry_reason", "", "pending_replay_reason", "",
      "pending_previous_attempt_index", "", "run_kind", kind, "stream_opened", ""
    }, FF.s(idx + 1))
  FF.arm_attempt_timeout(B, e, c, now)
  return { e, FF.s(idx), a.attempt_id, a.lease_id, FF.s(epoch), FF.s(exp), "fresh" }
end

-- The interrupted attempt of `e` is leased again (same index, same attempt id); `remaining`:
-- the attempt timeout left, when the caller knows it. Returns the 7 reply fields (kind "resumed").
function FF.claim_resume(B, e, c, now, lease_id, wid, wiid, ttl, remaining)
  local idx = c.current_attempt_index
  local aid = c.current_attempt_id
  local epoch = FF.num(c.current_lease_epoch) + 1
  -- the run's kind: resumed ("R" when a version 3 library began the attempt: its stream is unknown)
  local kind = "r"
  if c.run_kind == "" or c.run_kind == "R" then kind = "R" end
  local exp = FF.lease_on(B, e, c, now, idx, aid, lease_id, epoch, wid, wiid, ttl, { "run_kind", kind },
    FF.str(c.total_attempt_count))
  FF.arm_attempt_timeout(B, e, c, now, remaining)
  return { e, FF.str(idx), aid, lease_id, FF.s(epoch), FF.s(exp), "resumed" }
end

-- An expired or revoked lease is taken over by a new attempt of type reclaim (the old attempt
-- ends, its stream closes). Returns the 7 reply fields (kind "fresh"), or
-- nil when the reclaim cap (policy max_reclaim_count, default 100) turned the execution terminal
-- (failed: max_reclaims_exceeded) instead.
function FF.claim_reclaim(B, e, c, now, a)
  local p = FF.policy(B, e)
  local cap = tonumber(p.max_reclaim_count or "")
  if cap == nil and type(p.timeout_policy) == "table" then cap = tonumber(p.timeout_policy.max_reclaim_count or "") end
  if cap == nil then cap = 100 end
  if FF.num(c.lease_reclaim_count) >= cap then
    FF.record_failure(B, e, "max_reclaims_exceeded", "InfraCrash", "infra_crash", now)
    FF.end_attempt(B, e, c, "reclaimed", now)
    FF.fail_terminal(B, e, c, "max_reclaims_exceeded", now)
    return nil
  end
  FF.close_stream(B, e, c, "reclaimed", now)
  local idx = FF.num(c.total_attempt_count)
  local epoch = FF.num(c.current_lease_epoch) + 1
  local exp = FF.lease_on(B, e, c, now, idx, a.attempt_id, a.lease_id, epoch, a.worker_id, a.worker_instance_id,
    a.lease_ttl_ms, {
      "total_attempt_count", FF.s(idx + 1), "lease_reclaim_count", FF.s(FF.num(c.lease_reclaim_count) + 1),
      "run_kind", "c", "stream_opened", ""
    }, FF.s(idx + 1))
  FF.arm_attempt_timeout(B, e, c, now)
  return { e, FF.s(idx), a.attempt_id, a.lease_id, FF.s(epoch), FF.s(exp), "fresh" }
end

-- Whether a grant of another worker, not expired, reserves `e` (an expired grant is deleted).
-- Sets FF.grant_seen when a grant key exists.
function FF.grant_blocks(B, e, worker_id, now)
  local gk = K.ex(B, e, "grant")
  if C("EXISTS", gk) == 0 then return false end
  FF.grant_seen = true
  local g = FF.hmap(gk)
  if g == nil then return false end
  if FF.num(g.grant_expires_at) <= now then
    C("DEL", K.ex(B, e, "grant"))
    return false
  end
  return g.worker_id ~= worker_id
end
