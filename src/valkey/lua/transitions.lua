-- ===========================================================================
-- transitions.lua: what every state change shares: the lane state sets and their counts, the
-- index writes a call queues, and the state write itself (FF.state); loaded right after
-- helpers.lua, whose locals (the command function, the formatting of numbers, the core's field
-- names) it uses
-- ===========================================================================

-- --- the lane state index (docs/design/reads.md#lane-queries) -------------------------------
-- Each lane of a partition has one sorted set per public state (K.lstate), holding its executions
-- in that state as "<created_at, 13 digits>:<execution id>", all scored 0: read by name, a set is
-- in creation order, ties by id, and a page starts exactly after any position. The entry moves
-- when FF.state changes the public state, is added by create and removed by deletion; the lane's
-- hash K.lcount counts the entries of each set, so that a read skips the empty sets and a count
-- reads one hash per partition.
function FF.lane_member(created_at, e)
  local at = FF.str(created_at)
  if #at == 13 then return at .. ":" .. e end
  return string.rep("0", 13 - #at) .. at .. ":" .. e
end

-- The count changes of a call are summed per lane and state (FF.ldelta) and written once, at the
-- end of the call (FF.lane_counts_flush, register.lua): a batch of claims moving 64 executions
-- from waiting to active writes two counts, not 128.
local function count(B, lane, state, d)
  local k = K.lcount(B, lane)
  local t = FF.ldelta[k]
  if t == nil then
    t = {}
    FF.ldelta[k] = t
    FF.ldirty = true
  end
  t[state] = (t[state] or 0) + d
end

-- --- index writes batched per key (docs/design/valkey.md#index-writes-batched-per-call) ---------
-- The lane state sets, `lease_expiry` and `retention` are read by no write of the call that
-- writes them (only by the lane pages, which are reads, and by the passes, which read them after
-- FF.zsync): a call queues its writes to them (FF.zadd, FF.zrem) and sends each key's run of
-- writes of one kind as one command, at the end of the call (register.lua, before the counts) or
-- before a pass reads such an index. A key's writes keep their order (a ZREM after queued ZADDs
-- of the same key sends those first), so every set ends as the single commands would leave it; a
-- lane state set's count moves by the members the command added or removed.
local zq, zq_keys, zq_n = {}, {}, 0
-- The sets written here are queues in practice (an execution enters `s=active` and
-- `lease_expiry` at its claim, mostly at their end: scores and creation times grow, and leaves at
-- its completion), and a set of up to zset-max-listpack-entries (128) is kept by the server as a
-- listpack, where each insertion walks the list twice (the member looked for, then its place):
-- with a hundred leases out, the two walks of these two sets were about a tenth of a task's server
-- instructions. So a queued ZADD that would take a set past ZQ_SKIPLIST entries makes it a
-- skiplist first (an insertion then costs a search of a few levels): a member longer than any
-- listpack value is added and removed again around the ZADD (a listpack set is converted when it
-- meets one, or created as a skiplist; the server converts a skiplist back only when it loads it
-- from a dump). Nothing else sees the member: it never outlives the command that sends the
-- queued writes, and no member of these sets is that long. Only the encoding changes (about 100
-- bytes more per entry, for sets of more than ZQ_SKIPLIST entries: active leases, live states).
-- A server or ACL user that refuses OBJECT leaves the sets as they are.
local ZQ_SKIPLIST = 32
local ZQ_FILLER = "\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255" -- (80 bytes)
-- key -> {op, args, n (arguments queued), B, lane, state (for a lane state set's count)}
local function zq_send(key, q)
  local n = q.n
  if n == 0 then return end
  local r = 0
  local filler = false
  if q.op == "ZADD" then
    -- (redis.pcall: a server or user that does not allow OBJECT keeps the listpack, nothing fails
    -- after the call's writes)
    local enc = redis.pcall("OBJECT", "ENCODING", key)
    if enc == false then
      filler = n / 2 > ZQ_SKIPLIST
    elseif enc == "listpack" then
      filler = C("ZCARD", key) + n / 2 > ZQ_SKIPLIST
    end
    if filler then C("ZADD", key, 0, ZQ_FILLER) end
  end
  for i = 1, n, FF.CHUNK do r = r + C(q.op, key, unpack(q.args, i, math.min(i + FF.CHUNK - 1, n))) end
  if filler then C("ZREM", key, ZQ_FILLER) end
  if q.lane ~= nil and r > 0 then count(q.B, q.lane, q.state, q.op == "ZADD" and r or -r) end
  q.n = 0
end
-- The queue of `key` for writes of kind `op` (a queued run of the other kind sent first).
local function zq_of(key, op, B, lane, state)
  local q = zq[key]
  if q == nil then
    q = { op = op, args = {}, n = 0, B = B, lane = lane, state = state }
    zq[key] = q
    zq_n = zq_n + 1
    zq_keys[zq_n] = key
  elseif q.op ~= op then
    zq_send(key, q)
    q.op = op
  end
  return q
end
-- ZADD key score member / ZREM key member, queued; `B`, `lane`, `state` name a lane state set
-- (its count moves with it), nil for the partition's indexes. (A key's queue of the same kind is
-- taken here without a call: most writes of a call add to one.)
function FF.zadd(key, score, member, B, lane, state)
  local q = zq[key]
  if q == nil or q.op ~= "ZADD" then q = zq_of(key, "ZADD", B, lane, state) end
  local n, args = q.n, q.args
  args[n + 1], args[n + 2] = score, member
  q.n = n + 2
end
function FF.zrem(key, member, B, lane, state)
  local q = zq[key]
  if q == nil or q.op ~= "ZREM" then q = zq_of(key, "ZREM", B, lane, state) end
  local n = q.n + 1
  q.args[n] = member
  q.n = n
end
-- Sends the queued writes.
function FF.zsync()
  if zq_n == 0 then return end
  for i = 1, zq_n do
    local key = zq_keys[i]
    zq_send(key, zq[key])
  end
  zq, zq_keys, zq_n = {}, {}, 0
end
-- (a call that ended in a Lua error left its queue: the next call starts without it)
function FF.zq_begin()
  if zq_n > 0 then zq, zq_keys, zq_n = {}, {}, 0 end
end

-- Writes the count changes of the call (above).
function FF.lane_counts_flush()
  if not FF.ldirty then return end
  for k, t in pairs(FF.ldelta) do
    for state, d in pairs(t) do
      if d ~= 0 then C("HINCRBY", k, state, d) end
    end
  end
  FF.ldelta = {}
  FF.ldirty = false
end

-- Moves `e` (core `c`, before the change) from its lane's set of public state `from` to `to`'s.
-- A waiting execution has no entry there: it is in the lane's eligible index (every waiting
-- execution is, from the FF.make_eligible that follows each transition to waiting), which the
-- lane reads take for the waiting set (reads.lua, "the waiting executions"); only its count moves.
function FF.lane_move(B, e, c, from, to) FF.lane_move_at(B, e, c.lane_id, c.created_at, from, to) end
-- The same for an execution of lane `lane` created at `created`.
function FF.lane_move_at(B, e, lane, created, from, to)
  local m = nil
  if from == "waiting" then
    count(B, lane, from, -1)
  elseif from ~= "" then
    m = FF.lane_member(created, e)
    FF.zrem(K.lstate(B, lane, from), m, B, lane, from)
  end
  if to == "waiting" then
    count(B, lane, to, 1)
  elseif to ~= "" then
    m = m or FF.lane_member(created, e)
    FF.zadd(K.lstate(B, lane, to), 0, m, B, lane, to)
  end
end

-- Writes the state vector (`sv`, CF), blocking_detail and the two transition timestamps (plus the
-- field pairs of `extra`, its first `extra_n` entries when given, and the fields of `clears` set to
-- ""; long names) in one HSET (and
-- one HDEL of the fields set to ""), moves the lane state entry when the public state changes,
-- and queues the event of the transition (FF.ev_transition). `c` is the core as read at the start
-- of the call (and kept current by every FF.state): a field whose value is already stored is left
-- out of the write (the core is a listpack where every written field costs). The arguments are
-- gathered in reused tables (unpack stops at n, whatever follows).
local state_args, state_dels = {}, {}
local S_TT, S_TM = CF.last_transition_at, CF.last_mutation_at
function FF.state(B, e, c, phase, own, elig, reason, detail, outcome, astate, now, extra, extra_n, clears)
  local bp, bo, bpub = c.lifecycle_phase, c.ownership_state, c.public_state
  local moved = bp ~= phase or bo ~= own or c.eligibility_state ~= elig or c.blocking_reason ~= reason or
    c.terminal_outcome ~= outcome or c.attempt_state ~= astate
  local created = c.created_at
  -- The fields are compared and set by their long names on the table without its metatable (a
  -- field absent is nil there, not ""); blocking_detail by its stored form, `bd` (a core table
  -- reads the detail itself as blocking_detail, FF.core_detail). `extra` and `clears` never name
  -- blocking_detail or a transition time.
  local mt = getmetatable(c)
  if mt ~= nil then setmetatable(c, nil) end
  local bd_set = false
  local args, dels, n, nd = state_args, state_dels, 0, 0
  local ts = FF.s(now)
  local list, ln = extra, extra_n or (extra and #extra or 0)
  -- (`clears`: long names of fields set to "", none of them blocking_detail or a transition time,
  -- before the list's pairs; a field absent or empty costs a read)
  if clears then
    for j = 1, #clears do
      local f = clears[j]
      local cur = c[f]
      if cur ~= nil and cur ~= "" then
        c[f] = ""
        nd = nd + 1
        dels[nd] = CF[f] or f
      end
    end
  end
  -- the transition times (read as created_at while not stored) and blocking_detail (by its stored
  -- form), then the list's pairs
  local cur = c.last_transition_at
  if cur == nil then cur = created end
  if cur ~= ts then
    c.last_transition_at = ts
    args[1], args[2] = S_TT, ts
    n = 2
  end
  -- (last_mutation_at is stored only while it differs from last_transition_at: a write of its
  -- own, FF.cset, stores it, and a transition then moves it with the transition time)
  cur = c.last_mutation_at
  if cur ~= nil and cur ~= ts then
    c.last_mutation_at = ts
    args[n + 1], args[n + 2] = S_TM, ts
    n = n + 2
  end
  cur = c.bd
  if cur == nil then cur = "" end
  if cur ~= detail then
    c.bd, bd_set = detail, true
    if detail == "" then
      nd = nd + 1
      dels[nd] = "bd"
    else
      args[n + 1], args[n + 2] = "bd", detail
      n = n + 2
    end
  end
  for i = 1, ln, 2 do
    local f, v = list[i], list[i + 1]
    cur = c[f]
    if cur ~= v and (cur ~= nil or v ~= "") then
      c[f] = v
      if v == "" then
        nd = nd + 1
        dels[nd] = CF[f] or f
      else
        args[n + 1], args[n + 2] = CF[f] or f, v
        n = n + 2
      end
    end
  end
  -- (started_at not stored reads as lease_acquired_at: stored before that changes, helpers.lua)
  if c[FF.SA_DERIVED] and (c.lease_acquired_at or "") ~= c.started_at then
    args[n + 1], args[n + 2] = CF.started_at, c.started_at
    n = n + 2
    c[FF.SA_DERIVED] = nil
  end
  if moved then
    args[n + 1], args[n + 2] = "sv", FF.sv_encode(phase, own, elig, reason, outcome, astate)
    n = n + 2
  end
  if mt ~= nil then setmetatable(c, mt) end
  if bd_set then FF.core_detail(c) end
  if moved then
    c.lifecycle_phase, c.ownership_state, c.eligibility_state = phase, own, elig
    c.blocking_reason, c.terminal_outcome, c.attempt_state = reason, outcome, astate
  end
  local pub = FF.public(phase, elig, outcome)
  if bpub ~= pub then FF.lane_move(B, e, c, bpub, pub) end
  c.public_state = pub
  local k = K.core(B, e)
  if n > 0 then C("HSET", k, unpack(args, 1, n)) end
  if nd > 0 then C("HDEL", k, unpack(dels, 1, nd)) end
  FF.ev_transition(B, e, c, bp, bo, bpub, now)
end

-- --- the worker's two hot transitions, written directly ---------------------------------------
-- Most executions a worker runs take two transitions only: the first lease of a waiting execution
-- and its success. For a core in the plain shape (its stored fields all of a known few, checked
-- on the HGETALL reply: nothing the general path would compare, clear or index beyond the
-- lease's), FF.claim_plain and FF.complete_plain write exactly what FF.claim_fresh (FF.lease_on)
-- and ff_complete (FF.to_terminal) write: the same fields in the same order, the same lane state
-- move, index writes and event, without building the core table nor the general path's lists and
-- comparisons (docs/design/valkey.md#the-workers-hot-path). They return false, having written
-- nothing, for any other core, which then takes the general path from the same read. The batch
-- functions use them (ff_claim_lane, ff_complete_many, ff_complete_claim, and ff_create_claim's
-- walk); test/valkey-library-hot.test.ts compares both paths' writes.
local WAITING_SV, LEASED_SV, DONE_SV = nil, nil, nil
-- The stored fields a waiting core may hold and still be leased directly, and where
-- FF.claim_plain keeps their values (0: a field the lease does not look at). A field not listed
-- (a previous attempt's, a timeout, a delay, a grant, required capabilities, a flow, stored
-- last_mutation_at or blocking_detail, ...) sends the core to the general path.
local WAITING_FIELDS = {
  [CF.lane_id] = 1, [CF.created_at] = 2, sv = 3, [CF.priority] = 4, [CF.execution_kind] = 5,
  [CF.namespace] = 6, [CF.payload_encoding] = 7, [CF.trace] = 8, [FF.PAYLOAD_FIELD] = 9,
  [CF.last_transition_at] = 10,
  [CF.creator_identity] = 0, [CF.max_signals] = 0, [CF.stream_maxlen] = 0, [CF.retention_ms] = 0,
  [CF.execution_deadline_at] = 0, [CF.last_capability_mismatch_at] = 0
}
local first_args, first_v = {}, {}
-- The first lease of `e` (candidate of `lane`'s eligible index or pending set at `score`; `r`:
-- its core's HGETALL reply, flat) to the claim `a` (kinds a.kinds_set, ids a.lease_id and
-- a.attempt_id), as FF.claim_fresh would write it, when the core is in the plain shape
-- (WAITING_FIELDS), waiting on `lane` for its first attempt, of a kind the claim takes, and no
-- `bound` holds it back. Returns its 7 reply fields and the fields of the core a batch of claims
-- reads the input with (claim.lua, claims_out), or false. `ck`: the core's key, when the caller
-- built it for the read.
function FF.claim_plain(B, e, r, a, now, lane, score, bound, ck)
  if bound ~= nil and score > bound then return false end
  local v = first_v
  for i = 1, 10 do v[i] = nil end
  for i = 1, #r, 2 do
    local slot = WAITING_FIELDS[r[i]]
    if slot == nil then return false end
    if slot > 0 then v[slot] = r[i + 1] end
  end
  if WAITING_SV == nil then
    WAITING_SV = FF.sv_encode("runnable", "unowned", "eligible_now", "waiting_for_worker", "none",
      "pending_first_attempt")
    LEASED_SV = FF.sv_encode("active", "leased", "not_applicable", "none", "none", "running_attempt")
  end
  local created, kind, kinds = v[2], v[5] or "", a.kinds_set
  if v[3] ~= WAITING_SV or v[1] ~= lane or created == nil or not (kinds == false or kinds[kind] == true) then
    return false
  end
  local snow = FF.s(now)
  local exp = now + a.lease_ttl_ms
  local sexp = FF.s(exp)
  local aid, lid, wid, wiid = a.attempt_id, a.lease_id, a.worker_id, a.worker_instance_id
  local t, n = first_args, 0
  -- (FF.state: the transition time, unless it reads so already (created_at while not stored);
  -- then FF.lease_on's fields that differ from the core's)
  if (v[10] or created) ~= snow then
    t[1], t[2] = S_TT, snow
    n = 2
  end
  t[n + 1], t[n + 2], t[n + 3], t[n + 4] = CF.current_attempt_id, aid, CF.current_lease_id, lid
  t[n + 5], t[n + 6], t[n + 7], t[n + 8] = CF.current_worker_id, wid, CF.current_worker_instance_id, wiid
  t[n + 9], t[n + 10], t[n + 11], t[n + 12] = CF.lease_acquired_at, snow, CF.lease_expires_at, sexp
  t[n + 13], t[n + 14], t[n + 15], t[n + 16] = CF.total_attempt_count, "1", CF.run_kind, "i"
  t[n + 17], t[n + 18] = "sv", LEASED_SV
  n = n + 18
  FF.lane_move_at(B, e, lane, created, "waiting", "active")
  C("HSET", ck or K.core(B, e), unpack(t, 1, n))
  FF.ev_lease(B, e, lane, wiid, now)
  local c = { priority = v[4] or "", created_at = created, execution_kind = kind, namespace = v[6],
    payload_encoding = v[7], trace = v[8], [FF.PAYLOAD_FIELD] = v[9] }
  FF.drop_eligible_kind(B, lane, e, c)
  FF.zadd(K.idx(B, "lease_expiry"), sexp, e)
  return { e, "0", aid, lid, "1", sexp, "fresh" }, c
end

local done_args = {}
-- The stored fields a core may hold and still be completed directly, and where FF.complete_plain
-- keeps the values it reads (0: a field whose value the completion does not look at). A field
-- not listed (a flow, deadline, attempt timeout, stream flag, renewal, suspension, completion
-- time, result, stored last_mutation_at or blocking_detail, attempt index or lease epoch stored
-- beside the count, the marks a claim clears, a version 9 run copy) sends the core to the
-- general path.
local PLAIN_FIELDS = {
  [CF.lane_id] = 1, [CF.created_at] = 2, sv = 3, [CF.current_attempt_id] = 4, [CF.current_lease_id] = 5,
  [CF.lease_expires_at] = 6, [CF.total_attempt_count] = 7, [CF.run_kind] = 8, [CF.retention_ms] = 9,
  [CF.last_transition_at] = 10,
  [CF.namespace] = 0, [CF.execution_kind] = 0, [CF.priority] = 0, [CF.payload_encoding] = 0, [CF.trace] = 0,
  [CF.creator_identity] = 0, [CF.required_capabilities] = 0, [CF.max_signals] = 0, [CF.stream_maxlen] = 0,
  [CF.attempt_timeout_ms] = 0, [CF.current_worker_id] = 0, [CF.current_worker_instance_id] = 0,
  [CF.lease_acquired_at] = 0, [CF.started_at] = 0, [CF.lease_reclaim_count] = 0, [CF.failure_reason] = 0,
  [CF.last_capability_mismatch_at] = 0, [FF.PAYLOAD_FIELD] = 0
}
-- (the run kinds whose runs have no stream unless stream_opened says so: lease.lua)
local PLAIN_RUN = { i = true, t = true, y = true, c = true, r = true }
local plain_v = {}
-- The success of `a.execution_id` (the lease fence `a`; `r`: its core's HGETALL reply, flat)
-- with `result` (nil, or a string: a small result goes into the core, a larger one to its key),
-- as ff_complete writes it, when the core is in the plain shape (PLAIN_FIELDS: read from the
-- reply, no core table built) with its lease held: active, leased and running, not expired, and
-- the fence's lease id, epoch (the attempt count, no epoch stored) and attempt id its own. Returns
-- false, having written nothing, for any other core (the general path then answers, with the
-- ladder's refusals). `ck`: the core's key, when the caller built it for the read.
function FF.complete_plain(B, a, now, result, r, ck)
  local v = plain_v
  for i = 1, 10 do v[i] = nil end
  for i = 1, #r, 2 do
    local slot = PLAIN_FIELDS[r[i]]
    if slot == nil then return false end
    if slot > 0 then v[slot] = r[i + 1] end
  end
  local lane, created, sv, aid, lid, lx, n, rk = v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8]
  if LEASED_SV == nil then
    LEASED_SV = FF.sv_encode("active", "leased", "not_applicable", "none", "none", "running_attempt")
  end
  local count_n = FF.tonum(n)
  if sv ~= LEASED_SV or lane == nil or created == nil or aid == nil or lid == nil or count_n == nil or
      count_n < 1 or not PLAIN_RUN[rk] or FF.num(lx) <= now or a.lease_id ~= lid or a.attempt_id ~= aid or
      FF.str(a.lease_epoch) ~= n then
    return false
  end
  local e = a.execution_id
  local small = type(result) == "string" and result ~= "" and #result <= FF.INLINE_PAYLOAD
  if not small and result ~= nil and result ~= "" then FF.put_blob(K.ex(B, e, "result"), result) end
  if DONE_SV == nil then
    DONE_SV = FF.sv_encode("terminal", "unowned", "not_applicable", "none", "success", "attempt_terminal")
  end
  local snow = FF.s(now)
  -- (FF.unindex of a held lease; then FF.state: the transition time, unless it reads so already
  -- (created_at while not stored), completed_at, the result, the vector, and the lease id and
  -- expiry deleted)
  FF.zrem(K.idx(B, "lease_expiry"), e)
  local t, m = done_args, 0
  if (v[10] or created) ~= snow then
    t[1], t[2] = S_TT, snow
    m = 2
  end
  t[m + 1], t[m + 2] = CF.completed_at, snow
  m = m + 2
  if small then
    t[m + 1], t[m + 2] = FF.RESULT_FIELD, result
    m = m + 2
  end
  t[m + 1], t[m + 2] = "sv", DONE_SV
  m = m + 2
  FF.lane_move_at(B, e, lane, created, "active", "completed")
  local k = ck or K.core(B, e)
  C("HSET", k, unpack(t, 1, m))
  C("HDEL", k, CF.current_lease_id, CF.lease_expires_at)
  FF.ev_done(B, e, lane, FF.s(count_n - 1), now)
  FF.zadd(K.idx(B, "retention"), FF.s(now + FF.num(v[9], FF.RETENTION_MS)), e)
  return true
end

-- The core fields of a lease, cleared: FF.state's `extra` of a transition that ends the lease.
FF.LEASE_CLEAR = {
  "current_lease_id", "", "current_worker_id", "", "current_worker_instance_id", "",
  "lease_acquired_at", "", "lease_expires_at", "", "lease_last_renewed_at", "", "attempt_timeout_at", ""
}
-- The same fields and the suspension's, as FF.state's `clears` (a terminal transition's).
FF.TERMINAL_CLEARS = {
  "current_lease_id", "current_worker_id", "current_worker_instance_id", "lease_acquired_at", "lease_expires_at",
  "lease_last_renewed_at", "attempt_timeout_at", "current_suspension_id", "current_waitpoint_id"
}
-- A completion's: the worker, its instance and lease_acquired_at stay, the run it ended
-- (helpers.lua, "a completed core keeps the run").
FF.COMPLETE_CLEARS = {
  "current_lease_id", "lease_expires_at", "lease_last_renewed_at", "attempt_timeout_at", "current_suspension_id",
  "current_waitpoint_id"
}

-- A new list: the entries of `base`, then those of `more` (optional).
function FF.with(base, more)
  local t = {}
  for i = 1, #base do t[#t + 1] = base[i] end
  if more then for i = 1, #more do t[#t + 1] = more[i] end end
  return t
end

-- The execution_not_active refusal, with the terminal outcome, lease epoch ("0" when none),
-- lifecycle phase and attempt id of `c`: the layer reconciles a retried terminal write with them
-- (docs/design/executions.md#replaying-a-terminal-write).
function FF.not_active(c)
  local epoch = c.current_lease_epoch or ""
  if epoch == "" then epoch = "0" end
  return FF.err("execution_not_active", c.terminal_outcome or "", epoch,
    c.lifecycle_phase or "", c.current_attempt_id or "")
end
