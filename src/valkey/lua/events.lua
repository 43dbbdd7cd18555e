-- ===========================================================================
-- events.lua: the event log (docs/design/events.md, "Valkey"). Every transition of an execution
-- and every change of a flow's public state is queued during the call and written at its end
-- (FF.ev_flush, from register.lua), in the same atomic step, after every check of the call:
--   B:ev              the partition's events, a stream: one entry per call holds the call's events
--                     of this partition (at most FF.EV_PACK; more fill several entries), each as
--                     one field `v`: the four values below joined by NUL bytes, in order (an entry
--                     written before library version 10 has them as four fields per event, e, l,
--                     f, d, and one of version 6 or 7 one event: both are read). Event ids: the
--                     entry's id is its first event's,
--                     `<ms>-<seq>` where ms is the server's clock (TIME) raised to the stream's
--                     last ms when it went back; its other events take the next sequence numbers
--                     (reserved with XSETID: the stream's last id is the entry's last event's).
--                     Any event written after a read of the server's TIME gets an id of that time
--                     or later, which the lane reads rely on (events.ts). Per event:
--                       e  the execution id ("" for a flow's event)
--                       l  the lane ("" for a flow's event)
--                       f  the flow id ("" when none)
--                       d  code|at|fields...: the type, the event's time (the call's now; empty
--                          when it is the id's ms), then the type's fields (FF.ev_transition), a
--                          free text field always last (it may hold "|")
--   B:l:<lane>:ev     the lane's events on this partition: one entry per B:ev entry holding events
--                     of the lane, under the id of the lane's last event there; r = the id of that
--                     B:ev entry, or "" when it is the same id
--   B:evt             hash: "" -> the id of the newest event trimmed from B:ev; <lane> -> the
--                     newest entry trimmed of that lane's stream (an offset before it has lost
--                     events); "\0n" (FF.EV_COUNT) -> the events B:ev holds
--   B:evw             hash: scope (l:<lane>, e:<execution>, f:<flow>) -> until when (server ms)
--                     a process listens to it: an event of a listened scope is published on
--                     `<prefix>:ev:<scope>`; without listeners nothing is published
-- Trimming: at write, a B:ev holding more than FF.EV_CAP + FF.EV_SLACK events loses its oldest
-- entries down to the cap; trimRetention drops the oldest entries while their last event's time is
-- older than the retention (FF.ev_trim_age).
-- ===========================================================================

FF.EV_SLACK = 64
FF.EV_PACK = 128 -- events of one entry of B:ev, at most (a call's events of a partition fill several)
FF.EV_CAP = 3907 -- per partition: ceil(Limits.eventsRetained / 256)
FF.EV_RETENTION_MS = 3600000 -- Limits.eventRetentionMs

-- the per call queue: records {B, e, l, f, at, d (array of fields, code first)}, the pending
-- ExecutionCreated of executions created in this call (the fold), the flows whose state may
-- have changed
function FF.ev_begin()
  if FF.evq == nil or #FF.evq > 0 then FF.evq = {} end
  if FF.evc == nil or next(FF.evc) ~= nil then FF.evc = {} end
  if FF.evf == nil or #FF.evf > 0 then FF.evf = {} end
end

local function ev_push(B, e, l, f, at, d)
  local rec = { B = B, e = e, l = l, f = f, at = at, d = d }
  FF.evq[#FF.evq + 1] = rec
  return rec
end

-- Execution `e` (core `c`, lane and flow given) was created by this call. Its public state is
-- the one it has at the end of the call: later transitions of the call fold into this event.
function FF.ev_created(B, e, c, flow_id, now)
  local rec = ev_push(B, e, c.lane_id, flow_id or "", now, { "C", c.public_state })
  FF.evc[e] = rec
end

local function attempt_of(c)
  local i = c.current_attempt_index
  if i == nil or i == "" then return "0" end
  return i
end

-- The failure recorded for `e` at `now` by this call, if any: {at, classification, category, reason}.
local function fresh_failure(B, e, now)
  local f = FF.decode(C("GET", K.ex(B, e, "fail")))
  if type(f) ~= "table" or FF.str(f[1]) ~= FF.s(now) then return nil end
  return f
end

-- The event of a transition of `e` (FF.state calls it with the state before: phase, ownership,
-- public state; `c` is the core after), by the rule order of the memory engine's transitionEvent:
-- a lease started (Claimed), a lease lost (AttemptInterrupted), a retry scheduled, then a change
-- of public state: the terminal types, Suspended, Resumed, Delayed, else StateChanged.
function FF.ev_transition(B, e, c, bp, bo, bpub, now)
  local cr = FF.evc[e]
  if cr ~= nil then
    cr.d[2] = c.public_state
    return
  end
  local phase, own, pub = c.lifecycle_phase, c.ownership_state, c.public_state
  local d
  if phase == "active" and own == "leased" then
    if bp == "active" and bo == "leased" then return end
    d = { "K", attempt_of(c), c.current_worker_instance_id or "" }
  elseif phase == "active" and bp == "active" and bo == "leased" then
    local cause = "lease_expired"
    if own == "lease_revoked" then cause = "lease_revoked" end
    d = { "I", attempt_of(c), cause }
  elseif c.attempt_state == "pending_retry_attempt" and bp == "active" then
    local at = FF.s(now)
    if pub == "delayed" and (c.delay_until or "") ~= "" then at = c.delay_until end
    local f = fresh_failure(B, e, now)
    d = { "R", attempt_of(c), at }
    if f ~= nil then d[4] = FF.cut_reason(FF.str(f[4])) end
  elseif pub == bpub then
    return
  elseif pub == "completed" then
    d = { "D" }
    if (c.current_attempt_id or "") ~= "" then d[2] = attempt_of(c) end
  elseif pub == "failed" then
    local f = fresh_failure(B, e, now)
    local reason = c.failure_reason or ""
    local class = ""
    if f ~= nil then reason, class = FF.str(f[4]), FF.str(f[2]) end
    d = { "X", "", class, FF.cut_reason(reason) }
    if (c.current_attempt_id or "") ~= "" then d[2] = attempt_of(c) end
  elseif pub == "cancelled" then
    d = { "N", FF.cut_reason(c.cancellation_reason or "") }
  elseif pub == "expired" then
    d = { "E" }
  elseif pub == "skipped" then
    d = { "Z" }
  elseif pub == "suspended" then
    d = { "S" }
    if (c.current_attempt_id or "") ~= "" then d[2] = attempt_of(c) end
  elseif bp == "suspended" then
    d = { "U", pub }
  elseif pub == "delayed" and bp == "active" and (c.delay_until or "") ~= "" then
    d = { "Y", c.delay_until }
  else
    d = { "T", bpub, pub }
  end
  ev_push(B, e, c.lane_id, c.flow_id or "", now, d)
end

-- The events FF.ev_transition queues for the two transitions of FF.claim_plain and
-- FF.complete_plain (transitions.lua), for an execution of `lane` outside any flow: its first
-- lease started (Claimed: attempt 0, `wiid` its worker instance), its `attempt` succeeded
-- (Completed); either folds into the ExecutionCreated of an execution this call created.
function FF.ev_lease(B, e, lane, wiid, now)
  local cr = FF.evc[e]
  if cr ~= nil then
    cr.d[2] = "active"
    return
  end
  ev_push(B, e, lane, "", now, { "K", "0", wiid })
end
function FF.ev_done(B, e, lane, attempt, now)
  local cr = FF.evc[e]
  if cr ~= nil then
    cr.d[2] = "completed"
    return
  end
  ev_push(B, e, lane, "", now, { "D", attempt })
end

-- The lease holder reported progress: the event carries the progress `c` holds now.
function FF.ev_progress(B, e, c, now)
  local d = { "P", attempt_of(c), c.progress_pct or "" }
  local msg = c.progress_message or ""
  if msg ~= "" then d[4] = FF.cut_reason(msg) end
  ev_push(B, e, c.lane_id, c.flow_id or "", now, d)
end

-- Flow `fid`'s public state may have changed: it is compared at the end of the call (FF.ev_flush).
function FF.ev_flow_touch(B, fid)
  local t = FF.evf
  for i = 1, #t do
    if t[i][2] == fid and t[i][1] == B then return end
  end
  t[#t + 1] = { B, fid }
end

-- Writes a FlowStateChanged when the public state of flow `fid` (`st`, or read from its record)
-- is not the one last reported (the flow's `es`).
function FF.ev_flow_note(B, fid, now, st)
  local fk = K.flow(B, fid)
  local f = FF.hmap(fk)
  if f == nil then return end
  if st == nil then st = FF.flow_state(f) end
  if f.es == st then return end
  C("HSET", fk, "es", st)
  ev_push(B, "", "", fid, now, { "F", st })
end

-- The id right after `id` (XTRIM MINID keeps that id and what follows).
local function next_id(id)
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return ms .. "-" .. FF.s(tonumber(seq) + 1)
end

-- The id of the event at position j (0: the entry's own) of an entry of id `id`.
local function ev_id_at(id, j)
  if j == 0 then return id end
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  return ms .. "-" .. FF.s(tonumber(seq) + j)
end

-- An event of an entry of B:ev is one field `v`: its execution id, lane, flow id and `d`, joined
-- by NUL bytes (none of the first three holds one; `d` is last, so it may); an entry written before
-- library version 10 has four fields per event, e, l, f, d, which are read as well.
local function ev_unpack(v)
  local i = string.find(v, "\0", 1, true)
  local j = i and string.find(v, "\0", i + 1, true)
  local k = j and string.find(v, "\0", j + 1, true)
  if k == nil then return v, "", "", "" end
  return string.sub(v, 1, i - 1), string.sub(v, i + 1, j - 1), string.sub(v, j + 1, k - 1), string.sub(v, k + 1)
end
-- The event at position j (0: the first) of an entry's fields `v`: e, l, f, d.
local function ev_at(v, j)
  if v[1] == "v" then return ev_unpack(v[2 * j + 2]) end
  return v[8 * j + 2], v[8 * j + 4], v[8 * j + 6], v[8 * j + 8]
end

-- The events an entry of B:ev holds.
local function ev_count(entry)
  local v = entry[2]
  if v[1] == "v" then return math.floor(#v / 2) end
  return math.floor(#v / 8)
end

-- The id of the last event of entry `entry` ({id, fields}).
local function ev_last_id(entry) return ev_id_at(entry[1], ev_count(entry) - 1) end

-- The ms of the last id stream `k` has given (its last entry's last event), or of what was trimmed
-- of it (`trimmed`), or 0.
local function last_ms(k, evt, field)
  local r = C("XREVRANGE", k, "+", "-", "COUNT", 1)
  local id = r[1] and ev_last_id(r[1])
  if id == nil then id = C("HGET", evt, field) end
  if not id or id == "" then return 0 end
  local ms = tonumber(string.match(id, "^(%d+)-"))
  return ms or 0
end

-- The B:evt field counting the events of B:ev (a NUL byte: never a lane's name).
FF.EV_COUNT = "\0n"

-- Keeps partition B's stream at most FF.EV_CAP events long (trimmed by whole entries once it
-- holds FF.EV_SLACK more), given its count `n` of events; notes the last event it drops under ""
-- of B:evt and returns that event's id (nil when nothing was dropped).
local function trim_events(B, n)
  if n <= FF.EV_CAP + FF.EV_SLACK then return nil end
  local k, evt = B .. ":ev", B .. ":evt"
  local want, dropped, last, from = n - FF.EV_CAP, 0, nil, "-"
  -- (read a few entries at a time: an entry holds up to FF.EV_PACK events, and a trim drops about
  -- one call's worth)
  local count = 1
  while dropped < want do
    local chunk = C("XRANGE", k, from, "+", "COUNT", count)
    for _, entry in ipairs(chunk) do
      dropped = dropped + ev_count(entry)
      last = entry
      if dropped >= want then break end
    end
    if #chunk < count or last == nil then break end
    from = "(" .. last[1]
    count = math.min(count * 2, 64)
  end
  if last == nil then return nil end
  C("XTRIM", k, "MINID", next_id(last[1]))
  local newest = ev_last_id(last)
  C("HSET", evt, "", newest)
  C("HINCRBY", evt, FF.EV_COUNT, -dropped)
  return newest
end

-- Drops from lane `lane`'s stream on partition B the entries of the events up to `newest` (the
-- newest event trimmed of B:ev), noting the last one dropped under the lane in B:evt.
local function trim_lane(B, lane, newest)
  local lk = K.lane(B, lane, "ev")
  local r = C("XREVRANGE", lk, newest, "-", "COUNT", 1)
  if r[1] ~= nil then
    C("XTRIM", lk, "MINID", next_id(r[1][1]))
    C("HSET", B .. ":evt", lane, r[1][1])
  end
end

-- The scopes an event reaches (the subscriptions' scopes, wakeups.ts eventScope).
local function scopes_of(rec)
  if rec.e == "" then return { "f:" .. rec.f } end
  local s = { "e:" .. rec.e, "l:" .. rec.l }
  if rec.f ~= "" then s[3] = "f:" .. rec.f end
  return s
end

-- The prefix of partition base B.
local function prefix_of(B) return string.match(B, "^(.*):{[^}]*}$") end

-- The stream value of event `rec` written with an id of `at_ms` (ev_unpack's): its execution, lane,
-- flow and `d`, code|at|fields (at empty when it is the id's ms), the usual lengths in one
-- concatenation each.
local function ev_value(rec, at_ms)
  local d = rec.d
  local n = #d
  local at = rec.at == at_ms and "" or FF.s(rec.at)
  if n > 3 then
    local x = rec.e .. "\0" .. rec.l .. "\0" .. rec.f .. "\0" .. d[1] .. "|" .. at
    for j = 2, n do x = x .. "|" .. FF.str(d[j]) end
    return x
  end
  if n == 1 then return rec.e .. "\0" .. rec.l .. "\0" .. rec.f .. "\0" .. d[1] .. "|" .. at end
  if n == 2 then return rec.e .. "\0" .. rec.l .. "\0" .. rec.f .. "\0" .. d[1] .. "|" .. at .. "|" .. FF.str(d[2]) end
  return rec.e .. "\0" .. rec.l .. "\0" .. rec.f .. "\0" .. d[1] .. "|" .. at .. "|" .. FF.str(d[2]) .. "|" ..
    FF.str(d[3])
end

-- The XADD arguments of the events `recs` of one partition written with ids of `ms` (the stream
-- key and `<ms>-*` first, then one field `v` per event).
local function ev_args(k, recs, ms)
  local t, n = { k, FF.s(ms) .. "-*" }, 2
  for i = 1, #recs do
    local rec = recs[i]
    t[n + 1], t[n + 2] = "v", ev_value(rec, ms)
    n = n + 2
  end
  return t
end

-- XADD of the events `recs` of one partition to stream `k` with ids of `ms` (redis.pcall: its
-- reply, the entry's id or an error).
local function ev_xadd(k, recs, ms)
  if #recs == 1 then
    local rec = recs[1]
    return redis.pcall("XADD", k, FF.s(ms) .. "-*", "v", ev_value(rec, ms))
  end
  return redis.pcall("XADD", unpack(ev_args(k, recs, ms)))
end

-- Writes the call's queued events (after noting its touched flows): the events of one partition
-- as one entry of B:ev (the stream's next ids reserved for them with XSETID) and, per lane, one
-- entry of the lane's stream; trims each partition's stream and, with it, the lane streams this
-- call wrote (a lane stream holds only ids of its partition's stream: so it stays as bounded as
-- that stream), and publishes the events of the scopes some process listens to (B:evw: one HMGET
-- per partition of the scopes of its events, never the whole hash).
function FF.ev_flush(now, now_is_server)
  for _, t in ipairs(FF.evf) do FF.ev_flow_note(t[1], t[2], now) end
  local q = FF.evq
  if #q == 0 then return end
  -- (the call's TIME when it read one: calls do not interleave, so a reader's TIME after this
  -- call is at least that; see the lane reads' horizon)
  local clock = now_is_server and now or FF.now()
  -- base -> its events in call order (most calls write on one partition: the queue itself)
  local B1 = q[1].B
  local bases, by = { B1 }, { [B1] = q }
  for i = 2, #q do
    if q[i].B ~= B1 then
      bases, by = {}, {}
      for j = 1, #q do
        local rec = q[j]
        local list = by[rec.B]
        if list == nil then
          list = {}
          by[rec.B] = list
          bases[#bases + 1] = rec.B
        end
        list[#list + 1] = rec
      end
      break
    end
  end
  local pubs = nil
  for _, B in ipairs(bases) do
    local all, k, evt = by[B], B .. ":ev", B .. ":evt"
    local n = #all
    -- the lanes written (a call's events are mostly of one lane: l1, the others in `more`)
    local l1, more = nil, nil
    for from = 1, n, FF.EV_PACK do
      local recs = n <= FF.EV_PACK and all or { unpack(all, from, math.min(n, from + FF.EV_PACK - 1)) }
      local m = #recs
      -- the ids' ms: the clock, or the stream's last ms when the clock is behind it (an XADD of
      -- an id below the stream's last is refused, and then written with the last ms)
      local ms = clock
      local id = ev_xadd(k, recs, ms)
      if type(id) ~= "string" then
        ms = math.max(ms, last_ms(k, evt, ""))
        id = ev_xadd(k, recs, ms)
        if type(id) ~= "string" then return error(id) end
      end
      -- the entry's events take the ids from its own onwards (the next entry's come after them)
      if m > 1 then C("XSETID", k, ev_id_at(id, m - 1)) end
      -- per lane, one entry under the id of the lane's last event here; r: the B:ev entry
      -- holding it ("" when that is the same id)
      local order, last_of = nil, nil
      local first, at1 = nil, nil
      for j = 1, m do
        local l = recs[j].l
        if l ~= "" then
          if first == nil or l == first then
            first, at1 = l, j - 1
          else
            if order == nil then order, last_of = {}, {} end
            if last_of[l] == nil then order[#order + 1] = l end
            last_of[l] = j - 1
          end
        end
      end
      if first ~= nil then
        C("XADD", K.lane(B, first, "ev"), ev_id_at(id, at1), "r", at1 == 0 and "" or id)
        if l1 == nil then l1 = first elseif l1 ~= first then more = more or {}; more[first] = true end
      end
      if order ~= nil then
        more = more or {}
        for _, l in ipairs(order) do
          local j = last_of[l]
          C("XADD", K.lane(B, l, "ev"), ev_id_at(id, j), "r", j == 0 and "" or id)
          if l ~= l1 then more[l] = true end
        end
      end
    end
    local recs = all
    -- the count of events (a stream written before the count existed holds one event per entry)
    local count = C("HINCRBY", evt, FF.EV_COUNT, n)
    if count == n then
      local len = C("XLEN", k)
      if len > 1 then count = C("HINCRBY", evt, FF.EV_COUNT, len - 1) end
    end
    local newest = trim_events(B, count)
    if newest ~= nil and l1 ~= nil then
      trim_lane(B, l1, newest)
      if more ~= nil then
        for l in pairs(more) do trim_lane(B, l, newest) end
      end
    end
    -- wake-ups: only the scopes some process listens to until after now
    if C("EXISTS", B .. ":evw") == 1 then
      local list, seen = {}, {}
      for j = 1, n do
        for _, scope in ipairs(scopes_of(recs[j])) do
          if not seen[scope] then
            seen[scope] = true
            list[#list + 1] = scope
          end
        end
      end
      for from = 1, #list, 1000 do
        local upto = math.min(#list, from + 999)
        local until_ = C("HMGET", B .. ":evw", unpack(list, from, upto))
        for j = from, upto do
          local u = until_[j - from + 1]
          if u and FF.num(u) > clock then
            pubs = pubs or {}
            pubs[prefix_of(B) .. ":ev:" .. list[j]] = true
          end
        end
      end
    end
  end
  if pubs ~= nil then
    for ch in pairs(pubs) do C("PUBLISH", ch, "1") end
  end
end

-- The time of entry `entry` ({id, {e, v, l, v, f, v, d, v, ...}}): its last event's d's second
-- field, or its id's ms.
local function entry_at(entry)
  local _, _, _, d = ev_at(entry[2], ev_count(entry) - 1)
  local at = string.match(d or "", "^[^|]*|(%d*)")
  if at ~= nil and at ~= "" then return tonumber(at) end
  return tonumber(string.match(entry[1], "^(%d+)-"))
end

FF.EV_TRIM_SCAN = 5000 -- events one pass drops per partition, at most (whole entries: a few more)
FF.EV_CHUNK = 32 -- entries of B:ev one XRANGE of a scan reads

-- Drops the oldest events of partition B while their time is at or before now - retention (as
-- far as the first younger one, by whole entries), and from each lane's stream the entries of the
-- dropped events.
function FF.ev_trim_age(B, now)
  local k = B .. ":ev"
  local cutoff = now - FF.EV_RETENTION_MS
  local newest, from, seen, dropped = nil, "-", 0, 0
  while seen < FF.EV_TRIM_SCAN do
    local chunk = C("XRANGE", k, from, "+", "COUNT", FF.EV_CHUNK)
    local young = false
    for _, entry in ipairs(chunk) do
      if entry_at(entry) > cutoff then
        young = true
        break
      end
      newest = entry
      dropped = dropped + ev_count(entry)
    end
    seen = dropped
    if young or #chunk < FF.EV_CHUNK then break end
    from = "(" .. newest[1]
  end
  if newest == nil then return end
  C("XTRIM", k, "MINID", next_id(newest[1]))
  local last = ev_last_id(newest)
  C("HSET", B .. ":evt", "", last)
  -- (a count only where one is kept: an older store's is made at its next write)
  if C("HEXISTS", B .. ":evt", FF.EV_COUNT) == 1 then C("HINCRBY", B .. ":evt", FF.EV_COUNT, -dropped) end
  for _, lane in ipairs(C("SMEMBERS", K.idx(B, "lanes"))) do trim_lane(B, lane, last) end
end

-- Whether partition B's oldest event is older than the retention (a read).
function FF.ev_old(B, now)
  local r = C("XRANGE", B .. ":ev", "-", "+", "COUNT", 1)
  return r[1] ~= nil and entry_at(r[1]) <= now - FF.EV_RETENTION_MS
end

-- --- reads ---------------------------------------------------------------------------------------
-- `id` ("<ms>-<seq>") compared with `other`: -1, 0, 1 (nil for a malformed id).
-- (a sequence is compared as a decimal string: it may be 2^64 - 1, past a double's precision)
local function parse_id(id)
  if type(id) ~= "string" then return nil end
  local ms, seq = string.match(id, "^(%d+)-(%d+)$")
  if ms == nil or #ms > 16 or #seq > 20 then return nil end
  return tonumber(ms), seq
end
local function id_lt(a, b)
  local am, as = parse_id(a)
  local bm, bs = parse_id(b)
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end

-- The last id stream `k` has given, "0-0" when none: its last entry's last event, else the newest
-- trimmed.
local function end_of(k, trimmed)
  local r = C("XREVRANGE", k, "+", "-", "COUNT", 1)
  if r[1] ~= nil then return ev_last_id(r[1]) end
  if trimmed and trimmed ~= "" then return trimmed end
  return "0-0"
end

-- The events of B:ev entry `entry` after `after` (an id, or nil: all), each as {id, e, l, f, d},
-- appended to `out` when `keep` (nil: every event) accepts the event's lane and id; returns the
-- count appended.
local function ev_expand(entry, after, out, keep)
  local v = entry[2]
  local got = 0
  for j = 0, ev_count(entry) - 1 do
    local id = ev_id_at(entry[1], j)
    if after == nil or id_lt(after, id) then
      local e, l, f, d = ev_at(v, j)
      if keep == nil or keep(l, id) then
        out[#out + 1] = { id, e, l, f, d }
        got = got + 1
      end
    end
  end
  return got
end

-- The last id lane stream `k` has given, "0-0" when none: its last entry, else the newest trimmed.
local function lane_end(k, trimmed)
  local r = C("XREVRANGE", k, "+", "-", "COUNT", 1)
  if r[1] ~= nil then return r[1][1] end
  if trimmed and trimmed ~= "" then return trimmed end
  return "0-0"
end

FF.EV_SCAN = 2000 -- events of B:ev one read call looks at, at most (whole entries: a few more)

-- ff_read_events (readEvents of an execution or a flow): the events of partition B whose
-- execution (a.execution_id) or flow (a.flow_id) is the one asked, after a.after.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now (unused), [2] {execution_id | flow_id, after: "earliest" | "latest" | id
--           (exclusive), exact (after is an id of this stream: past its end is invalid), limit}
--   reply:  {1, "OK", "", next, more ("1": not at the end yet), then per event: id, e, l, f, d}
--           next: the last id looked at (the end of the stream when more is "0")
--   errors: invalid_offset (malformed, or after the stream's end), event_offset_expired
FF.fn.read_events = function(B, a)
  local k = B .. ":ev"
  local trimmed = C("HGET", B .. ":evt", "") or ""
  local stop = end_of(k, trimmed)
  local after = a.after
  if after == "latest" then return FF.ok("OK", stop, "0") end
  local from = "-"
  local first = nil
  if after ~= "earliest" then
    if parse_id(after) == nil or (a.exact and id_lt(stop, after)) then return FF.err("invalid_offset") end
    if trimmed ~= "" and id_lt(after, trimmed) then return FF.err("event_offset_expired") end
    from = "(" .. after
    -- (the entry holding `after` may hold later events too)
    first = C("XREVRANGE", k, after, "-", "COUNT", 1)[1]
  else
    after = nil
  end
  local want_e, want_f = FF.str(a.execution_id), FF.str(a.flow_id)
  local limit = FF.num(a.limit, 100)
  local r = { 1, "OK", "", "", "0" }
  local found, scanned, pos = 0, 0, a.after
  local evs = {}
  local function take(entry)
    for j = #evs, 1, -1 do evs[j] = nil end
    ev_expand(entry, after, evs, nil)
    for _, ev in ipairs(evs) do
      pos = ev[1]
      if (want_e ~= "" and ev[2] == want_e) or (want_f ~= "" and ev[4] == want_f) then
        for j = 1, 5 do r[#r + 1] = ev[j] end
        found = found + 1
        if found >= limit then return true end
      end
    end
    return false
  end
  local full = first ~= nil and take(first)
  while not full do
    local chunk = C("XRANGE", k, from, "+", "COUNT", FF.EV_CHUNK)
    for _, entry in ipairs(chunk) do
      scanned = scanned + ev_count(entry)
      if take(entry) then
        full = true
        break
      end
    end
    if full or #chunk < FF.EV_CHUNK then break end
    if scanned >= FF.EV_SCAN then
      r[5] = "1"
      break
    end
    from = "(" .. chunk[#chunk][1]
  end
  if full then
    r[5] = "1"
  elseif r[5] == "0" then
    pos = stop
  end
  if pos == "earliest" then pos = stop end
  r[4] = pos
  return r
end

-- ff_read_lane_events (readEvents of a lane, one partition's share): the lane's events of this
-- partition after a.after (the partition's part of the lane offset), at most a.limit.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now (unused), [2] {lane_id, after: "earliest" | "latest" | id (exclusive), limit}
--   reply:  {1, "OK", "", end, last, more, start, clock, then per event: id, e, l, f, d}
--           end: the last id of the lane's stream here (or "0-0"); reading from it sees only newer
--           last: the last event looked at ("" none); more: "1" when a.limit events were read;
--           start: the position read from (for "earliest": the oldest retained, exclusive);
--           clock: the server's TIME in ms (every event written later has an id of it or later)
--   errors: invalid_offset (malformed, or after the stream's end), event_offset_expired (events
--           after a.after were trimmed)
-- A lane stream's entry stands for the lane's events of one B:ev entry (its field r: that entry's
-- id, "" when it is the lane entry's own) up to its own id.
FF.fn.read_lane_events = function(B, a)
  local lane = FF.str(a.lane_id)
  local lk = K.lane(B, lane, "ev")
  local evt = C("HMGET", B .. ":evt", lane, "")
  local lane_trimmed, trimmed = evt[1] or "", evt[2] or ""
  local stop = lane_end(lk, lane_trimmed)
  local after = a.after
  local t = C("TIME")
  local clock = FF.s(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  if after == "latest" then return FF.ok("OK", stop, "", "0", stop, clock) end
  local start, strict = after, after ~= "earliest"
  if strict then
    if parse_id(after) == nil then return FF.err("invalid_offset") end
    if lane_trimmed ~= "" and id_lt(after, lane_trimmed) then return FF.err("event_offset_expired") end
  else
    -- the oldest retained: past what this stream and B:ev lost (never past the stream's end)
    start = lane_trimmed ~= "" and lane_trimmed or "0-0"
    if trimmed ~= "" and id_lt(start, trimmed) then start = trimmed end
    if id_lt(stop, start) then start = stop end
  end
  local limit = FF.num(a.limit, 100)
  local refs = C("XRANGE", lk, "(" .. start, "+", "COUNT", limit)
  local r = { 1, "OK", "", stop, "", "0", start, clock }
  local k = B .. ":ev"
  local evs, n, last = {}, 0, ""
  for _, ref in ipairs(refs) do
    local upto = ref[1]
    local at = ref[2][2]
    if at == nil or at == "" then at = upto end
    local entry = C("XRANGE", k, at, at)[1]
    if entry == nil then
      -- its events were trimmed from B:ev
      if strict then return FF.err("event_offset_expired") end
    else
      for j = #evs, 1, -1 do evs[j] = nil end
      ev_expand(entry, start, evs, function(l, id) return l == lane and not id_lt(upto, id) end)
      for _, ev in ipairs(evs) do
        if n >= limit then break end
        for j = 1, 5 do r[#r + 1] = ev[j] end
        n = n + 1
        last = ev[1]
      end
      if n >= limit then break end
    end
    last = upto
  end
  r[5] = last
  r[6] = (n >= limit or #refs >= limit) and "1" or "0"
  return r
end

-- ff_read_lane_events_across (readEvents of a lane): ff_read_lane_events of several partitions in
-- one call: every partition on a standalone server; on a cluster the partitions whose slots the
-- node of KEYS[1] serves (the layer groups them by its slot map; a key of a slot served elsewhere
-- fails the call, and the layer asks each partition alone: src/valkey/internal/groups.ts).
--   KEYS:   [1] the base of the first part (the call's node; its other keys are named by parts)
--   ARGV:   [1] now (unused), [2] {prefix, lane_id, parts: [[partition, after, limit], ...]}
--   reply:  {1, "OK", "", then for each part: n, then the n fields ff_read_lane_events answers
--           after its own {1, "OK", ""}}
--   errors: those of ff_read_lane_events (of the first part that fails)
FF.fn.read_lane_events_across = function(_, a)
  local bases, out = FF.partition_bases(FF.str(a.prefix)), { 1, "OK", "" }
  for _, part in ipairs(a.parts or {}) do
    local r = FF.fn.read_lane_events(bases[FF.num(part[1])], { lane_id = a.lane_id, after = part[2], limit = part[3] })
    if r[1] ~= 1 then return r end
    out[#out + 1] = FF.s(#r - 3)
    for i = 4, #r do out[#out + 1] = r[i] end
  end
  return out
end
