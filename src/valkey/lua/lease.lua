-- ===========================================================================
-- lease.lua: an attempt's end and its stream, suspension marks, and the lease ladder
-- (docs/design/executions.md#the-lease-ladder); loaded right after ids.lua
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
