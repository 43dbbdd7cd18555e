-- ===========================================================================
-- maintenance.lua: one function per maintenance pass (docs/design/maintenance.md), run per
-- partition, and the probe that counts a pass's due work. Every pass re-validates what its index
-- says (indexes are hints) and is bounded by a.batch (default 1000): its reply counts the items
-- it processed and says whether more are due. A pass over timer indexes also replies, when no
-- more are due, the earliest score left in the indexes it walked (the PassResult's nextDueAt).
-- ===========================================================================

-- The first batch + 1 entries of the partition index `index` due at `now`.
local function due(B, index, now, batch)
  FF.zsync()
  return C("ZRANGEBYSCORE", K.idx(B, index), "-inf", FF.s(now), "LIMIT", 0, batch + 1)
end

-- A pass's batch size (default 1000).
local function batch_of(a) return math.max(1, FF.num(a.batch, 1000)) end

-- The lowest score of sorted set `key` (a number), or nil when it is empty.
local function first_score(key)
  FF.zsync()
  return tonumber(C("ZRANGE", key, 0, 0, "WITHSCORES")[2])
end

-- The earlier of two due times, either of them nil.
local function earlier(a, b)
  if a == nil or (b ~= nil and b < a) then return b end
  return a
end

-- The reply of a timer pass: the count, "1"/"0" for more, and (when none more) the earliest
-- score left in its index `index` or "".
local function timer_reply(n, more, index)
  if more then return FF.ok("OK", n, "1", "") end
  return FF.ok("OK", n, "0", first_score(index) or "")
end

-- ff_pass_expire_leases (expireLeases): marks the leases whose expiry came (FF.mark_expired).
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, leases marked, "1" more are due | "0", next due ("" when more or none)}
--   errors: -
FF.fn.pass_expire_leases = function(B, a, now)
  local n, more = FF.expire_due_leases(B, now, batch_of(a))
  return timer_reply(n, more, K.idx(B, "lease_expiry"))
end

-- Makes up to `limit` delayed executions of `lane` on this partition eligible whose time came.
-- Returns how many, and whether more were due (with a limit of 0: whether any is due).
local function promote_lane(B, lane, now, limit)
  local n, more = 0, false
  local dk = K.lane(B, lane, "delayed")
  local items = C("ZRANGEBYSCORE", dk, "-inf", FF.s(now), "LIMIT", 0, limit + 1)
  for i = 1, #items do
    if n >= limit then more = true; break end
    local e = items[i]
    local c = FF.core(B, e)
    if c == nil or c.lifecycle_phase ~= "runnable" or c.eligibility_state ~= "not_eligible_until_time" then
      C("ZREM", dk, e)
    elseif FF.num(c.delay_until) > now then
      C("ZADD", dk, c.delay_until, e)
    else
      C("ZREM", dk, e)
      FF.state(B, e, c, "runnable", "unowned", "eligible_now", "waiting_for_worker", "", "none", c.attempt_state, now,
        { "delay_until", "" })
      FF.make_eligible(B, e, c)
      n = n + 1
    end
  end
  return n, more
end

-- ff_pass_promote_delayed (promoteDelayed): delayed, backoff and resume-delay work whose time came
-- becomes eligible, lane by lane. (Its probe, ff_pass_due, also re-reports the lanes' claimable
-- work, which repairs claim hints lost by a crashed client.) Every lane is visited: once the batch
-- is spent, only to learn whether it has due work left.
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, executions promoted, "1" more are due | "0", next due ("" when more or
--          none: the earliest delayed time left on the partition's lanes)}
--   errors: -
FF.fn.pass_promote_delayed = function(B, a, now)
  local batch = batch_of(a)
  local n, more = 0, false
  local next_due
  for _, lane in ipairs(C("SMEMBERS", K.idx(B, "lanes"))) do
    local done, left = promote_lane(B, lane, now, batch - n)
    n = n + done
    if left then more = true end
    if not more then next_due = earlier(next_due, first_score(K.lane(B, lane, "delayed"))) end
  end
  return FF.ok("OK", n, more and "1" or "0", (not more and next_due) or "")
end

-- ff_promote_lane: the due delayed work of one lane on this partition, promoted at its due time
-- by an idle worker of the lane (docs/worker.md, "Wake-ups, timers and cancellation").
--   KEYS: [1] the partition base
--   ARGV: now, {lane, batch, _hint?}
--   reply: {1, "OK", wake, promoted, more ("0"/"1"), the lane's next due time on this partition or ""}
--   errors: invalid_input (lane)
-- On a standalone server (`_hint`) the call sets the partition's due hint of the lane to that
-- next due time (or removes it); on a cluster the layer does.
FF.fn.promote_lane = function(B, a, now)
  local bad = FF.need("promote_lane", a, { "lane", "s" })
  if bad then return bad end
  local lane = a.lane
  local n, more = promote_lane(B, lane, now, batch_of(a))
  local head = C("ZRANGE", K.lane(B, lane, "delayed"), 0, 0, "WITHSCORES")
  local next_due = head[2] or ""
  if a._hint ~= nil then
    local key = a._hint[1] .. ":due:" .. lane
    if next_due ~= "" then C("ZADD", key, next_due, FF.s(a._hint[2])) else C("ZREM", key, FF.s(a._hint[2])) end
  end
  return FF.ok("OK", n, more and "1" or "0", next_due)
end

-- The due time an entry of the attempt_timeout index stands for, from core `c`: the current
-- attempt's attempt_timeout_at while the execution is active (nil: none, the entry is stale). A
-- core without the field (its attempt armed by an earlier library; it reads "", as any field the
-- core does not hold) keeps the entry's `score`.
local function attempt_due(c, score)
  if c.lifecycle_phase ~= "active" then return nil end
  local at = c.attempt_timeout_at
  if at == "" then return score end
  return tonumber(at)
end

-- The due time an entry of the deadline index stands for: any non-terminal execution's.
local function deadline_due(c, score)
  if c.lifecycle_phase == "terminal" then return nil end
  return score
end

-- The expiry passes of a timer index: each due execution expires with `reason`
-- (FF.expire_exec) once `due_of(core, entry score)` says its time came; an entry it finds stale
-- (nil) is removed, one not yet due (a later attempt's) is moved to its due time. The dependents
-- of each are resolved before the next entry is read (one of them it skips is not expired after
-- it, as in a step of its own).
local function expire_pass(B, a, now, index, reason, due_of)
  local batch = batch_of(a)
  local key = K.idx(B, index)
  local items = C("ZRANGEBYSCORE", key, "-inf", FF.s(now), "WITHSCORES", "LIMIT", 0, batch + 1)
  local seen = #items / 2
  local n = 0
  for i = 1, math.min(seen, batch) do
    local e = items[2 * i - 1]
    local c = FF.core(B, e)
    local at = c and due_of(c, tonumber(items[2 * i]))
    if at == nil then
      C("ZREM", key, e)
    elseif at > now then
      C("ZADD", key, FF.s(at), e)
    else
      FF.expire_exec(B, e, c, reason, now)
      FF.drain(B, now)
      n = n + 1
    end
  end
  return timer_reply(n, seen > batch, key)
end

-- ff_pass_expire_attempts (expireAttempts) / ff_pass_expire_executions (expireExecutions): the
-- executions whose attempt timeout / execution deadline came expire.
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, executions expired, "1" more are due | "0", next due ("" when more or
--          none)}
--   errors: -
FF.fn.pass_expire_attempts = function(B, a, now) return expire_pass(B, a, now, "attempt_timeout", "attempt_timeout", attempt_due) end
FF.fn.pass_expire_executions = function(B, a, now) return expire_pass(B, a, now, "deadline", "execution_deadline", deadline_due) end

-- ff_pass_expire_suspensions (expireSuspensions): suspensions whose timeout came act by their
-- timeout behavior (FF.expire_suspension), the dependents of each resolved before the next.
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, suspensions timed out, "1" more are due | "0", next due ("" when more
--          or none)}
--   errors: -
FF.fn.pass_expire_suspensions = function(B, a, now)
  local batch = batch_of(a)
  local items = due(B, "susp_timeout", now, batch)
  local n = 0
  for i = 1, math.min(#items, batch) do
    if FF.expire_suspension(B, items[i], now) then n = n + 1 end
    FF.drain(B, now)
  end
  return timer_reply(n, #items > batch, K.idx(B, "susp_timeout"))
end

-- ff_pass_expire_pending_waitpoints (expirePendingWaitpoints): pending waitpoints past their
-- expiry close (never_committed).
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, waitpoints closed, "1" more are due | "0", next due ("" when more or
--          none)}
--   errors: -
FF.fn.pass_expire_pending_waitpoints = function(B, a, now)
  local batch = batch_of(a)
  local items = due(B, "pending_wp", now, batch)
  local n = 0
  for i = 1, math.min(#items, batch) do
    local w = items[i]
    local st = C("HGET", K.wp(B, w), "state")
    if st == "pending" then
      FF.close_waitpoint(B, w, "never_committed", now)
      n = n + 1
    end
    C("ZREM", K.idx(B, "pending_wp"), w)
  end
  return timer_reply(n, #items > batch, K.idx(B, "pending_wp"))
end

-- --- retention (docs/design/maintenance.md#trim-retention) -----------------------------------------------

-- DEL of `keys`, 500 at a time.
local function del_chunked(keys)
  for i = 1, #keys, 500 do
    C("DEL", unpack(keys, i, math.min(i + 499, #keys)))
  end
end

-- Deletes a terminal execution outside flows and everything it owns: the core and its records,
-- attempts, streams, suspension, waitpoints (conditions, buffered signals) and signals, and its
-- index entries. Dedup records (create idempotency, suspend and signal dedup) keep their TTLs.
-- Its signal and waitpoint ids go to the partition's `idfree` set as "sigid:<id> <e>" /
-- "wpid:<id> <e>": their registry keys live in other slots, and the layer deletes them
-- (registry.ts `free`).
local function delete_execution(B, e, c)
  local keys = { K.core(B, e) }
  for _, s in ipairs({ "payload", "policy", "result", "tags", "grant", "susp", "susp:policy", "susp:cnt", "susp:sat",
    "susp:satsig", "sigs", "wps", "unres", "hist", "fail" }) do
    keys[#keys + 1] = K.ex(B, e, s)
  end
  local n = FF.num(c.total_attempt_count)
  local cur = tonumber(c.current_attempt_index)
  if cur ~= nil and cur + 1 > n then n = cur + 1 end
  for i = 0, n - 1 do
    keys[#keys + 1] = K.att(B, e, i)
    keys[#keys + 1] = K.stream(B, e, i)
    keys[#keys + 1] = K.smeta(B, e, i)
    keys[#keys + 1] = K.ssum(B, e, i)
  end
  local ids = {}
  for _, sid in ipairs(C("ZRANGE", K.ex(B, e, "sigs"), 0, -1)) do
    keys[#keys + 1] = K.sig(B, sid)
    keys[#keys + 1] = K.sig(B, sid) .. ":payload"
    ids[#ids + 1] = "sigid:" .. sid .. " " .. e
  end
  for _, w in ipairs(C("SMEMBERS", K.ex(B, e, "wps"))) do
    keys[#keys + 1] = K.wp(B, w)
    keys[#keys + 1] = K.wpx(B, w, "cond")
    keys[#keys + 1] = K.wpx(B, w, "signals")
    C("ZREM", K.idx(B, "pending_wp"), w)
    ids[#ids + 1] = "wpid:" .. w .. " " .. e
  end
  del_chunked(keys)
  FF.chunked("SADD", K.idx(B, "idfree"), ids)
  FF.ids_del(B, e)
  FF.zrem(K.idx(B, "retention"), e)
  FF.lane_move(B, e, c, c.public_state, "")
end

-- ff_pass_trim_retention (trimRetention): deletes the terminal executions outside flows whose
-- retention ended (the `retention` index holds completed_at + retention), and lists their ids for
-- the registry; and drops the partition's events older than their retention (FF.ev_trim_age, not
-- counted).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {batch}
--   reply:  {1, "OK", "", executions deleted, "1" more are due | "0"}
--   errors: -
FF.fn.pass_trim_retention = function(B, a, now)
  local batch = batch_of(a)
  local items = due(B, "retention", now, batch)
  local n = 0
  for i = 1, math.min(#items, batch) do
    local e = items[i]
    local c = FF.core(B, e)
    if c == nil or c.lifecycle_phase ~= "terminal" or c.flow_id ~= "" or c.completed_at == "" then
      FF.zrem(K.idx(B, "retention"), e)
    else
      local at = FF.num(c.completed_at) + FF.num(c.retention_ms, FF.RETENTION_MS)
      if at > now then
        FF.zadd(K.idx(B, "retention"), FF.s(at), e)
      else
        delete_execution(B, e, c)
        n = n + 1
      end
    end
  end
  FF.ev_trim_age(B, now)
  return FF.ok("OK", n, #items > batch and "1" or "0")
end

-- ff_pass_reconcile_dependencies (reconcileDependencies), the safety net of inline resolution
-- (docs/design/flows.md#the-reconcile-pass): deferred cascades (dep_pending), and blocked
-- children whose upstreams are terminal or whose join is satisfied (a join still pending keeps
-- its child blocked, even with nothing unresolved).
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, dependencies resolved (or children unblocked), "1" more | "0"}
--   errors: -
FF.fn.pass_reconcile_dependencies = function(B, a, now)
  local batch = batch_of(a)
  local n = 0
  local more = false
  local pending = C("ZRANGE", K.idx(B, "dep_pending"), 0, batch)
  for i = 1, math.min(#pending, batch) do
    local up = pending[i]
    C("ZREM", K.idx(B, "dep_pending"), up)
    local c = FF.core(B, up)
    if c ~= nil and c.lifecycle_phase == "terminal" and (c.flow_id or "") ~= "" then
      FF.resolve_outgoing(B, c.flow_id, up, c.terminal_outcome, now)
      n = n + 1
    end
    FF.drain(B, now)
  end
  if #pending > batch then more = true end
  for _, lane in ipairs(C("SMEMBERS", K.idx(B, "lanes"))) do
    local bk = K.lane(B, lane, "blocked")
    for _, e in ipairs(C("ZRANGE", bk, 0, batch - 1)) do
      local c = FF.core(B, e)
      if c == nil or c.lifecycle_phase ~= "runnable" or c.eligibility_state ~= "blocked_by_dependencies" then
        C("ZREM", bk, e)
      else
        -- one per dependency resolved (as memory and Postgres), or one for a child only unblocked
        local resolved = 0
        if (c.flow_id or "") ~= "" then
          for _, edge in ipairs(C("SMEMBERS", K.ex(B, e, "unres"))) do
            local up = C("HGET", K.ex(B, e, "dep:" .. edge), "upstream_execution_id")
            if up then
              local uc = FF.core(B, up)
              if uc ~= nil and uc.lifecycle_phase == "terminal" and (uc.terminal_outcome or "none") ~= "none" then
                FF.resolve_edge(B, c.flow_id, edge, e, up, uc.terminal_outcome, now)
                resolved = resolved + 1
              end
            end
          end
          c = FF.core(B, e) or c
          -- a safety net for a satisfied join whose child stayed blocked (resolution unblocks it);
          -- a child whose join is pending stays blocked even with nothing unresolved (a replayed
          -- skipped member waits for its join to settle again, as memory and Postgres)
          if C("HGET", K.fx(B, c.flow_id, "grp:" .. e), "group_state") == "satisfied" and
              FF.maybe_unblock(B, e, c, now) and resolved == 0 then
            resolved = 1
          end
        elseif FF.maybe_unblock(B, e, c, now) and resolved == 0 then
          -- outside any flow nothing blocks it (FF.deps_ready): only a store written before
          -- dependencies were refused to non-members holds one blocked here
          resolved = 1
        end
        n = n + resolved
      end
    end
  end
  FF.drain(B, now)
  return FF.ok("OK", n, more and "1" or "0")
end

-- ff_pass_drain_cancel_backlog (drainCancelBacklog): the members flow cancellations still owe,
-- once their grace ended, are cancelled; a flow owing nothing more is cancelled.
--   KEYS: [1] the partition base    ARGV: [1] now, [2] {batch}
--   reply: {1, "OK", wake, members cancelled, "1" more are due | "0"}    errors: -
FF.fn.pass_drain_cancel_backlog = function(B, a, now)
  local batch = batch_of(a)
  local flows = due(B, "cancel_backlog", now, batch)
  local n = 0
  local more = #flows > batch
  for i = 1, math.min(#flows, batch) do
    local fid = flows[i]
    local owed = K.fx(B, fid, "owed")
    local fk = K.flow(B, fid)
    if C("EXISTS", fk) == 0 then
      C("DEL", owed)
      C("ZREM", K.idx(B, "cancel_backlog"), fid)
    else
      local reason = C("HGET", fk, "cancel_reason")
      if reason == false or reason == "" then reason = "flow_cancelled" end
      local members = C("SRANDMEMBER", owed, batch - n)
      for _, m in ipairs(members) do
        local c = FF.core(B, m)
        if c ~= nil and c.lifecycle_phase ~= "terminal" then
          FF.cancel_exec(B, m, c, reason, "flow_cascade", "flow_cascade", now, { no_resolve = true })
          n = n + 1
        else
          C("SREM", owed, m)
        end
      end
      if C("SCARD", owed) == 0 then
        FF.flow_cancel_done(B, fid, now)
      else
        more = true
      end
    end
    if n >= batch then break end
  end
  FF.drain(B, now)
  return FF.ok("OK", n, more and "1" or "0")
end

-- The timer index each timer pass walks, by pass (promote_delayed walks the lanes' delayed sets).
local TIMER_INDEX = {
  expire_leases = "lease_expiry", expire_attempts = "attempt_timeout", expire_executions = "deadline",
  expire_suspensions = "susp_timeout", expire_pending_waitpoints = "pending_wp"
}

-- ff_pass_due (read-only): how many items of `a.pass` are due on this partition (capped at a.cap),
-- and for a timer pass the earliest score of the indexes it walks (due or not).
-- With a.repair, the promote_delayed probe also reports every lane's claimable work and due
-- delayed work as wakes (claim hint and due hint repair); a partition with registry entries left
-- to free, or with events older than their retention, counts one for trim_retention.
--   KEYS:   [1] the partition base (the budget partition's for reset_budgets)
--   ARGV:   [1] now, [2] {pass: a pass name without "pass_", cap, repair?}
--   reply:  {1, "OK", wake, due, earliest timer ("" for none, or not a timer pass)}
--   errors: -
local function probe(B, a, now, cap)
  local pass = a.pass
  local n = 0
  local first
  local function zdue(key)
    first = first_score(key)
    if first == nil or first > now then return 0 end
    return C("ZCOUNT", key, "-inf", FF.s(now))
  end
  if TIMER_INDEX[pass] ~= nil then
    n = zdue(K.idx(B, TIMER_INDEX[pass]))
  elseif pass == "promote_delayed" then
    local earliest
    for _, lane in ipairs(C("SMEMBERS", K.idx(B, "lanes"))) do
      n = n + zdue(K.lane(B, lane, "delayed"))
      earliest = earlier(earliest, first)
      if a.repair then
        local head = FF.lane_head(B, lane)
        if head ~= "" then FF.add_wake(lane, head) end
        if first ~= nil then FF.add_due(B, lane, first) end
      end
    end
    first = earliest
  elseif pass == "trim_retention" then
    FF.zsync()
    n = C("ZCOUNT", K.idx(B, "retention"), "-inf", FF.s(now))
    -- registry entries an interrupted run left behind make the partition due
    if n == 0 and C("EXISTS", K.idx(B, "idfree")) == 1 then n = 1 end
    -- and so do events older than their retention
    if n == 0 and FF.ev_old(B, now) then n = 1 end
  elseif pass == "reset_budgets" then
    n = zdue(B .. ":i:budget_resets")
  elseif pass == "drain_cancel_backlog" then
    for _, fid in ipairs(C("ZRANGEBYSCORE", K.idx(B, "cancel_backlog"), "-inf", FF.s(now), "LIMIT", 0, cap)) do
      n = n + math.max(1, C("SCARD", K.fx(B, fid, "owed")))
      if n >= cap then break end
    end
  elseif pass == "reconcile_dependencies" then
    n = C("ZCARD", K.idx(B, "dep_pending"))
    for _, lane in ipairs(C("SMEMBERS", K.idx(B, "lanes"))) do
      if n >= cap then break end
      for _, e in ipairs(C("ZRANGE", K.lane(B, lane, "blocked"), 0, cap - 1)) do
        if n >= cap then break end
        local c = FF.core(B, e)
        if c == nil or c.lifecycle_phase ~= "runnable" or c.eligibility_state ~= "blocked_by_dependencies" then
          n = n + 1
        else
          local unres = C("SMEMBERS", K.ex(B, e, "unres"))
          local due = #unres == 0
          if not due and (c.flow_id or "") ~= "" then
            due = C("HGET", K.fx(B, c.flow_id, "grp:" .. e), "group_state") == "satisfied"
            for _, edge in ipairs(unres) do
              if due then break end
              local up = C("HGET", K.ex(B, e, "dep:" .. edge), "upstream_execution_id")
              if up and FF.sv_decode(C("HGET", K.core(B, up), "sv"))[1] == "terminal" then due = true end
            end
          end
          if due then n = n + 1 end
        end
      end
    end
  end
  return math.min(n, cap), first
end

FF.fn.pass_due = function(B, a, now)
  local n, first = probe(B, a, now, math.max(1, FF.num(a.cap, 1000)))
  return FF.ok("OK", n, first or "")
end

-- ff_pass_due_across (read-only): ff_pass_due for the flow partitions `parts` in one call, in
-- their order (an idle process's probes are one call per group, not one per partition). On a
-- cluster the partitions of one call are those whose slots the node of KEYS[1] serves (grouped as
-- ff_lane_page's). The counts share `cap`: once they reach it, the partitions left are not probed
-- (the run has more due than its batch either way), so a call examines at most `cap` items
-- besides a constant per partition. With a.repair each partition's wakes come in its own field.
--   KEYS:   [1] the base of parts[1]
--   ARGV:   [1] now, [2] {prefix, parts: [partition, ...], pass, cap, repair?}
--   reply:  {1, "OK", "", partitions probed, then 3 fields per partition probed: due, earliest
--           timer ("" for none), wakes (FF.wake_json, "" for none)}
--   errors: -
FF.fn.pass_due_across = function(_, a, now)
  local bases = FF.partition_bases(FF.str(a.prefix))
  local cap = math.max(1, FF.num(a.cap, 1000))
  local parts = a.parts or {}
  local out, total = {}, 0
  for i = 1, #parts do
    if total >= cap then break end
    FF.begin()
    local n, first = probe(bases[FF.num(parts[i])], a, now, cap - total)
    total = total + n
    out[#out + 1] = n
    out[#out + 1] = first or ""
    out[#out + 1] = FF.wake_json()
    FF.due, FF.dued = {}, false
  end
  FF.begin()
  return FF.ok("OK", #out / 3, unpack(out))
end
