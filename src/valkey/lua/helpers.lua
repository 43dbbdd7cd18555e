-- ===========================================================================
-- helpers.lua: what every function shares: numbers and strings, keys, the id registry, the
-- per-call state (wakes, due times, revocations) and its publication, replies, hashes, staged
-- blobs, argument checks, and the state vector (the state changes: transitions.lua)
-- ===========================================================================
-- redis.call, taken at the start of every call (FF.call_begin: the library's load has no
-- redis.call), so that a command costs no wrapper call of its own
local C = nil

FF.NO_TIMEOUT = 9999999999999
FF.PRIORITY_MAX = 9000
FF.WORK_LIMIT = 500          -- dependency edges resolved in one call before the rest is deferred
FF.RETENTION_MS = 86400000   -- default retention of a terminal execution (Maintenance.DEFAULT_RETENTION_MS)
FF.fn = {}                   -- registered operations, by name

-- integers as decimal strings (tostring gives 1.7e+15 for big doubles). "%d" is about three
-- times cheaper than "%.0f" and prints the same digits for integral values below 2^53;
-- anything else (fractions, huge values, inf, nan) keeps "%.0f".
-- (string / math are not reachable while the library loads, so they are looked up at each call;
-- the values formatted are kept, up to 256 of them: a call formats its "now", its lease expiry
-- and its epochs many times, in turns)
local s_memo, s_memo_n = {}, 0
function FF.s(n)
  local s = s_memo[n]
  if s ~= nil then return s end
  if n ~= n then return string.format("%.0f", n) end -- (NaN: not a table key)
  if n == math.floor(n) and n < 9007199254740992 and n > -9007199254740992 then
    s = string.format("%d", n)
  else
    s = string.format("%.0f", n)
  end
  if s_memo_n >= 256 then
    s_memo, s_memo_n = {}, 0
  end
  s_memo[n], s_memo_n = s, s_memo_n + 1
  return s
end
-- `v` as a number, nil when it is not one (tonumber). The strings read are kept, up to 256 of
-- them (as FF.s keeps its numbers): a batch reads the same creation time, expiry, partition and
-- score for many items, and tonumber of a string runs strtod.
do
local n_memo, n_memo_n = {}, 0
function FF.tonum(v)
  if v == nil then return nil end
  local n = n_memo[v]
  if n ~= nil then return n end
  n = tonumber(v)
  if n ~= nil and n == n and type(v) == "string" then
    if n_memo_n >= 256 then
      n_memo, n_memo_n = {}, 0
    end
    n_memo[v], n_memo_n = n, n_memo_n + 1
  end
  return n
end
-- `v` as a number; `d` (default 0) when it is not one.
function FF.num(v, d)
  if v == nil then return d or 0 end
  local n = n_memo[v]
  if n ~= nil then return n end
  n = FF.tonum(v)
  if n == nil then return d or 0 end
  return n
end
end
-- `v` as a string: "" for nil and JSON null, a number as FF.s writes it.
function FF.str(v)
  if v == nil then return "" end
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return FF.s(v) end
  if v == cjson.null then return "" end
  return tostring(v)
end
-- The call's time in ms: ARGV[1] when given (the layer's clock), else the server's TIME.
function FF.now(arg)
  if arg ~= nil and arg ~= "" then return tonumber(arg) end
  local t = C("TIME")
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- --- keys ------------------------------------------------------------------
-- The keys of a partition (docs/design/valkey.md#key-layout), from its base B: an execution's
-- core and its records (e: execution id, i: attempt index, s: suffix), a lane's indexes (l: lane,
-- kind: eligible / reclaim / delayed / blocked), the partition's indexes, a flow's records (f),
-- a waitpoint's (w), a signal's, and the HMAC keystore.
local K = {}
FF.K = K
function K.core(B, e) return B .. ":e:" .. e end
function K.ex(B, e, s) return B .. ":e:" .. e .. ":" .. s end
function K.att(B, e, i) return B .. ":e:" .. e .. ":a:" .. FF.str(i) end
function K.stream(B, e, i) return B .. ":e:" .. e .. ":st:" .. FF.str(i) end
function K.smeta(B, e, i) return B .. ":e:" .. e .. ":st:" .. FF.str(i) .. ":meta" end
function K.ssum(B, e, i) return B .. ":e:" .. e .. ":st:" .. FF.str(i) .. ":sum" end
-- A lane id may hold ':' (any printable byte): the last segment of a lane's key names its record
-- (one of the words of K.lane, `s=<state>`, `n`, `ev` (events.lua), or the length of a kind), so
-- that no lane's key spells another lane's whatever its id.
-- The keys of a lane and of a partition's indexes are kept for the rest of the call once built
-- (a batch builds the same few keys for every item): base -> lane -> record -> key, and base ->
-- index name -> key (FF.call_begin starts them anew, so they hold only what one call touched).
local lane_keys, idx_keys = {}, {}
-- the kind modes of the lanes this call read (FF.kmode: mode key -> value, false when absent), and
-- the lanes whose pending set this call moved a step of (FF.kind_step)
local lane_modes, lane_stepped = {}, {}
-- the keys of lane l on B built so far: record -> key, and at [1] the state sets' (state -> key)
local function lane_tab(B, l)
  local byB = lane_keys[B]
  if byB == nil then
    byB = {}
    lane_keys[B] = byB
  end
  local byL = byB[l]
  if byL == nil then
    byL = { {} }
    byB[l] = byL
  end
  return byL
end
function K.lane(B, l, kind)
  local byL = lane_tab(B, l)
  local k = byL[kind]
  if k == nil then
    k = B .. ":l:" .. l .. ":" .. kind
    byL[kind] = k
  end
  return k
end
-- the lane's executions in public state `s` (FF.lane_member), and their count per state (a hash)
function K.lstate(B, l, s)
  local byS = lane_tab(B, l)[1]
  local k = byS[s]
  if k == nil then
    k = B .. ":l:" .. l .. ":s=" .. s
    byS[s] = k
  end
  return k
end
function K.lcount(B, l) return K.lane(B, l, "n") end
function K.keys_begin()
  if next(lane_keys) ~= nil then lane_keys = {} end
  if next(idx_keys) ~= nil then idx_keys = {} end
  if next(lane_modes) ~= nil then lane_modes = {} end
  if next(lane_stepped) ~= nil then lane_stepped = {} end
end
-- The eligible index of lane l and execution kind k (FF.kind_candidates); the kind's length ends
-- the key, so no lane and kind give another's key.
function K.lane_kind(B, l, k) return B .. ":l:" .. l .. ":kind:" .. k .. ":" .. #k end
function K.idx(B, name)
  local byB = idx_keys[B]
  if byB == nil then
    byB = {}
    idx_keys[B] = byB
  end
  local k = byB[name]
  if k == nil then
    k = B .. ":i:" .. name
    byB[name] = k
  end
  return k
end
function K.flow(B, f) return B .. ":f:" .. f end
function K.fx(B, f, s) return B .. ":f:" .. f .. ":" .. s end
function K.wp(B, w) return B .. ":w:" .. w end
function K.wpx(B, w, s) return B .. ":w:" .. w .. ":" .. s end
function K.sig(B, s) return B .. ":s:" .. s end
function K.hmac(B) return B .. ":hmac" end

-- The partition bases `<prefix>:{fp:N}` of a call reaching several partitions, by partition
-- number, each built once.
function FF.partition_bases(prefix)
  return setmetatable({}, {
    __index = function(t, p)
      local base = prefix .. ":{fp:" .. FF.s(p) .. "}"
      rawset(t, p, base)
      return base
    end
  })
end

-- The index of the first item whose `partition` is not one of the n partitions (nil: none).
function FF.bad_partition(items, n)
  for i = 1, #items do
    local p = tonumber(items[i].partition)
    if p == nil or p ~= math.floor(p) or p < 0 or p >= n then return i end
  end
  return nil
end

-- --- the id registry ------------------------------------------------------------
-- A signal id or waitpoint id names one signal or waitpoint of one execution, whichever partition
-- asks: `<prefix>:sigid:<id>` / `<prefix>:wpid:<id>` hold the owning execution id (a cluster
-- reservation appends "|<nonce>", see reserve_id). Those keys live outside the partitions' slots.
-- On a standalone server the layer declares the registry keys of a call's ids as KEYS[2..], in the
-- order of the call's ids, and the function reads them with its checks and sets them with its
-- writes. On a cluster the layer reserves the ids first (reserve_id, in each key's own slot) and
-- passes a.taken, one boolean per id: true when another execution owns it.

-- The execution a registry value names.
function FF.id_owner(v)
  local bar = string.find(v, "|", 1, true)
  if bar == nil then return v end
  return string.sub(v, 1, bar - 1)
end

-- Whether the call's i-th id belongs to an execution other than `e` (a read).
function FF.id_taken(a, i, e)
  if type(a.taken) == "table" then return a.taken[i] == true end
  local k = FF.KEYS and FF.KEYS[i + 1]
  if k == nil then return false end
  local v = C("GET", k)
  return v ~= false and FF.id_owner(v) ~= e
end

-- Records `e` as the owner of the call's first n ids (standalone; on a cluster the reservation
-- already does). A write: call it after the checks.
function FF.own_ids(a, e, n)
  if type(a.taken) == "table" or FF.KEYS == nil then return end
  for i = 1, n do
    local k = FF.KEYS[i + 1]
    if k ~= nil then C("SET", k, e) end
  end
end

-- --- per call state ----------------------------------------------------------
-- What a whole library call (FF.call_begin .. FF.call_end) tells the idle workers and the lease
-- holders: the lanes to wake (work became claimable there, or delayed work was scheduled), the due
-- times of delayed work per partition and lane (the due hints), the leases ended by another hand.
-- (tables left empty by the previous call are kept: most calls add nothing to them)
function FF.call_begin()
  C = redis.call
  K.keys_begin()
  FF.members_begin()
  FF.ids_begin()
  FF.lane_sets_begin()
  if FF.pubs == nil or next(FF.pubs) ~= nil then FF.pubs = {} end
  if FF.due == nil or FF.dued then FF.due = {} end
  FF.dued = false
  if FF.revokes == nil or #FF.revokes > 0 then FF.revokes = {} end
  if FF.ldelta == nil or FF.ldirty then FF.ldelta = {} end
  FF.ldirty = false
  FF.zq_begin()
  FF.ev_begin()
end

-- The start of one operation's work (a batch begins each of its items anew): its wakes, its
-- queue of finished flow members whose dependents FF.drain resolves, its count of resolution
-- work, and the lanes a batch registered.
function FF.begin()
  -- (tables left empty by the previous call are kept)
  if FF.woke or FF.wake == nil or next(FF.wake) ~= nil then FF.wake = {} end
  FF.woke = false
  if FF.queue == nil or #FF.queue > 0 then FF.queue = {} end
  FF.work = 0
  FF.lanes_seen = nil
end

-- `score` is the claim score of the best work made claimable on `lane` (lower is claimed first).
function FF.add_wake(lane, score)
  score = FF.num(score)
  local cur = FF.wake[lane]
  if cur == nil or score < cur then FF.wake[lane] = score end
  FF.woke = true
  FF.pubs[lane] = true
end

-- Delayed work of `lane` on partition base `B` becomes due at `at` (the lane's due hint).
function FF.add_due(B, lane, at)
  at = FF.num(at)
  local d = FF.due[B]
  if d == nil then
    d = {}
    FF.due[B] = d
  end
  local cur = d[lane]
  if cur == nil or at < cur then d[lane] = at end
  FF.dued = true
  FF.pubs[lane] = true
end

-- The holder of `c`'s lease, if any, learns that its lease ends by another hand (the call publishes it).
function FF.revoked(e, c)
  if c.lifecycle_phase == "active" and c.ownership_state == "leased" and (c.current_worker_instance_id or "") ~= "" then
    FF.revokes[#FF.revokes + 1] = { c.current_worker_instance_id, e }
  end
end

-- The end of a library call: the leases ended by another hand are published on
-- `<prefix>:revoke:<worker instance>` (message: the execution id), from here on any server (a
-- cluster forwards a PUBLISH to every node). On a standalone server (`prefix` given) the call also
-- writes the due hints (`<prefix>:due:<lane>`, partitions scored by their earliest due time) and
-- wakes the lanes' idle workers on `<prefix>:wake:<lane>`; on a cluster those keys live in other
-- slots, and the layer does both after the call, once the claim hints are written.
local function prefix_of(B) return string.match(B, "^(.*):{[^}]*}$") end
function FF.call_end(B, prefix)
  if #FF.revokes > 0 then
    local rp = prefix or prefix_of(B)
    if rp ~= nil then
      for _, r in ipairs(FF.revokes) do C("PUBLISH", rp .. ":revoke:" .. r[1], r[2]) end
    end
  end
  if prefix == nil then return end
  if FF.dued then
    for base, lanes in pairs(FF.due) do
      local p = string.match(base, "{fp:(%d+)}$")
      if p ~= nil then
        for lane, at in pairs(lanes) do C("ZADD", prefix .. ":due:" .. lane, "LT", FF.s(at), p) end
      end
    end
  end
  for lane in pairs(FF.pubs) do C("PUBLISH", prefix .. ":wake:" .. lane, "1") end
end

-- Writes the wakes of this operation (since FF.begin) to the claim hints of partition `p`, and
-- registers their lanes (standalone servers only: the keys live in other slots).
function FF.apply_wakes(prefix, p)
  if not FF.woke then return end
  for lane, score in pairs(FF.wake) do
    C("ZADD", prefix .. ":lane-index", 0, lane)
    C("ZADD", prefix .. ":hint:" .. lane, "LT", FF.s(score), FF.s(p))
  end
end

-- The reply's wakes, for the layer to apply on a cluster: {lane: claim score}, and for due
-- hints {"\1" .. lane: due time} (a lane id is printable, so the keys never meet).
function FF.wake_json()
  if not FF.woke and not FF.dued then return "" end
  local t = {}
  for lane, score in pairs(FF.wake) do t[lane] = FF.s(score) end
  if FF.dued then
    for _, lanes in pairs(FF.due) do
      for lane, at in pairs(lanes) do
        local k = "\1" .. lane
        if t[k] == nil or at < tonumber(t[k]) then t[k] = FF.s(at) end
      end
    end
  end
  return cjson.encode(t)
end

-- The success reply {1, status, wake, fields...} (the fields as strings). A call that writes its
-- wakes to the claim hints itself (FF.hinted: a standalone write given `_hint`, register.lua)
-- answers no wake: the layer would not read it.
function FF.ok(status, ...)
  local r = { 1, status, FF.hinted and "" or FF.wake_json(), ... }
  for i = 4, select("#", ...) + 3 do
    if type(r[i]) ~= "string" then r[i] = FF.str(r[i]) end
  end
  return r
end

-- The refusal reply {0, code, details...} (the details as strings).
function FF.err(code, ...)
  local r = { 0, code }
  local extra = { ... }
  for i = 1, select("#", ...) do r[#r + 1] = FF.str(extra[i]) end
  return r
end

-- Whether `r` is a refusal reply.
function FF.is_err(r) return type(r) == "table" and r[1] == 0 end

-- --- hashes --------------------------------------------------------------------
-- The hash at `key` as a table, or nil when it is missing or empty. (Read as a RESP3 map, which
-- the server hands over as a Lua table: a third cheaper than building it from the flat RESP2 reply.)
function FF.hmap(key)
  redis.setresp(3)
  local m = C("HGETALL", key).map
  redis.setresp(2)
  if next(m) == nil then return nil end
  return m
end

-- --- the core record (docs/design/valkey.md#the-core-record) ---------------------------------
-- The code names the core's fields by their long names (those of docs/design/executions.md and of
-- the layer's decode); the store keeps the frequent ones under the short names of CF (a name not
-- in CF is stored as it is), and the six enumerated dimensions of the state vector as one field,
-- `sv`, of one character each (SV_CODES; a value without a code is written "(value)"). The public
-- state is not stored: it follows from the vector (FF.public). A field is stored only once it has
-- a value: a missing one reads as "" (a counter as 0), and `last_transition_at` /
-- `last_mutation_at` read as `created_at` until a first change. Every write of the core goes
-- through FF.state (transitions) or FF.cset (other fields), which translate the names and HDEL a
-- field set to "".
local CF = {
  namespace = "ns", lane_id = "l", priority = "pr", created_at = "c", last_transition_at = "tt",
  last_mutation_at = "tm", execution_kind = "k", blocking_detail = "bd", creator_identity = "ci",
  payload_encoding = "pe", required_capabilities = "rc", attempt_timeout_ms = "atm", max_signals = "mxs",
  stream_maxlen = "sml", retention_ms = "rm", trace = "tr", delay_until = "du", flow_id = "f",
  execution_deadline_at = "dl", current_attempt_index = "ai", current_attempt_id = "aid",
  current_lease_id = "li", current_lease_epoch = "le", current_worker_id = "w",
  current_worker_instance_id = "wi", lease_acquired_at = "la", lease_expires_at = "lx",
  lease_last_renewed_at = "lr", lease_expired_at = "lxa", lease_revoked_at = "lva",
  lease_revoke_reason = "lvr", attempt_timeout_at = "ato", started_at = "sa", completed_at = "ca",
  total_attempt_count = "n", lease_reclaim_count = "rcn", failure_reason = "fr",
  current_waitpoint_id = "cw", current_suspension_id = "cs", cancellation_reason = "cr",
  grant_pending = "gp", pending_retry_reason = "prr", pending_replay_reason = "ppr",
  pending_previous_attempt_index = "ppi", progress_updated_at = "pga", progress_pct = "pgp",
  progress_message = "pgm", last_capability_mismatch_at = "lcm", run_kind = "rk", stream_opened = "so",
  last_run_worker_id = "rw", last_run_worker_instance_id = "rwi", last_run_started_at = "rs"
}
FF.CF = CF
-- The stored name of core field `f`.
function FF.cf(f) return CF[f] or f end

-- The six dimensions in `sv`, in order, and the code of each value ("" is "-").
local SV = { "lifecycle_phase", "ownership_state", "eligibility_state", "blocking_reason", "terminal_outcome",
  "attempt_state" }
local SV_CODES = {
  { submitted = "s", runnable = "r", active = "a", suspended = "u", terminal = "t" },
  { unowned = "u", leased = "l", lease_expired_reclaimable = "x", lease_revoked = "r" },
  { eligible_now = "e", not_eligible_until_time = "t", blocked_by_dependencies = "d", blocked_by_budget = "b",
    blocked_by_quota = "q", blocked_by_route = "r", blocked_by_lane_state = "l", blocked_by_operator = "o",
    not_applicable = "n" },
  { none = "n", waiting_for_worker = "w", waiting_for_retry_backoff = "b", waiting_for_resume_delay = "r",
    waiting_for_delay = "d", waiting_for_signal = "s", waiting_for_approval = "a", waiting_for_callback = "c",
    waiting_for_tool_result = "t", waiting_for_children = "h", waiting_for_budget = "g", waiting_for_quota = "q",
    waiting_for_capable_worker = "p", waiting_for_locality_match = "m", paused_by_operator = "o",
    paused_by_policy = "y", paused_by_flow_cancel = "f" },
  { none = "n", success = "s", failed = "f", cancelled = "c", expired = "e", skipped = "k" },
  { none = "n", pending_first_attempt = "p", running_attempt = "r", attempt_interrupted = "i",
    pending_retry_attempt = "t", pending_replay_attempt = "y", attempt_terminal = "x" }
}
local SV_DECODE = nil -- (built at the first call: no pairs while the library loads)
local SV_BYTES = nil   -- the same, keyed by the code's byte (returns SV_BYTES)
local function sv_decode_tables()
  SV_DECODE, SV_BYTES = {}, {}
  for i, codes in ipairs(SV_CODES) do
    local d, b = { ["-"] = "" }, { [string.byte("-")] = "" }
    for v, code in pairs(codes) do
      d[code] = v
      b[string.byte(code)] = v
    end
    SV_DECODE[i], SV_BYTES[i] = d, b
  end
  return SV_BYTES
end

-- The state vector's stored form.
local function sv_code(i, v)
  if v == nil or v == "" then return "-" end
  return SV_CODES[i][v] or ("(" .. v .. ")")
end
-- (the vectors encoded so far, by their six values: a transition writes one of a few dozen)
local SV_MEMO = {}
local function memo_step(t, v)
  local n = t[v]
  if n == nil then
    n = {}
    t[v] = n
  end
  return n
end
function FF.sv_encode(phase, own, elig, reason, outcome, astate)
  phase, own, elig, reason, outcome, astate = phase or "", own or "", elig or "", reason or "", outcome or "",
    astate or ""
  local t = SV_MEMO[phase]
  t = t and t[own]
  t = t and t[elig]
  t = t and t[reason]
  t = t and t[outcome]
  local sv = t and t[astate]
  if sv == nil then
    local last = memo_step(memo_step(memo_step(memo_step(memo_step(SV_MEMO, phase), own), elig), reason), outcome)
    sv = sv_code(1, phase) .. sv_code(2, own) .. sv_code(3, elig) .. sv_code(4, reason) .. sv_code(5, outcome) ..
      sv_code(6, astate)
    last[astate] = sv
  end
  return sv
end

-- The six dimensions of a stored vector (all "" for a missing or malformed one).
function FF.sv_decode(sv)
  if SV_DECODE == nil then sv_decode_tables() end
  local d = SV_DECODE
  local out = { "", "", "", "", "", "" }
  if type(sv) ~= "string" then return out end
  local pos = 1
  for i = 1, 6 do
    local ch = string.sub(sv, pos, pos)
    if ch == "(" then
      local close = string.find(sv, ")", pos, true)
      if close == nil then return out end
      out[i] = string.sub(sv, pos + 1, close - 1)
      pos = close + 1
    else
      out[i] = d[i][ch] or ""
      pos = pos + 1
    end
  end
  return out
end

-- A suspension's blocking detail, "suspended: waitpoint <current_waitpoint_id> awaiting <reason
-- code>", is stored as "\1<reason code>" (the waitpoint id alone is 36 bytes: the whole text would
-- turn the core into a hash table), and read back whole.
FF.SUSPENDED_DETAIL = "\1"
local function detail_of(t, v)
  if string.byte(v, 1) ~= 1 then return v end
  return "suspended: waitpoint " .. t.current_waitpoint_id .. " awaiting " .. string.sub(v, 2)
end

-- A core table (FF.core) is keyed by the long names: the HGETALL reply's fields are renamed as
-- they are read (a field not in CF keeps its stored name, as do `sv`, the inline input and result,
-- and `bd`, the stored form of blocking_detail), the state vector's dimensions and the public state
-- are decoded, the transition times default to created_at and blocking_detail is the detail as
-- read. A field the core does not hold reads as "" from CORE_MT's table of defaults: a plain table
-- read, where a metamethod per read of a short-named table cost a Lua call (docs/benchmarks.md,
-- eleventh session). Writes go to the long name (FF.state, FF.cset).
local SV_INDEX = { lifecycle_phase = 1, ownership_state = 2, eligibility_state = 3, blocking_reason = 4,
  terminal_outcome = 5, attempt_state = 6, public_state = 0 }
local function sv_fill(t)
  local sv = rawget(t, "sv")
  if type(sv) == "string" and #sv == 6 then
    -- (six one-character codes, the common vector: decoded by byte, no table)
    local d = SV_BYTES or sv_decode_tables()
    local b1, b2, b3, b4, b5, b6 = string.byte(sv, 1, 6)
    local phase, elig, outcome = d[1][b1] or "", d[3][b3] or "", d[5][b5] or ""
    -- (the table has no __newindex: plain writes)
    t.lifecycle_phase, t.ownership_state, t.eligibility_state = phase, d[2][b2] or "", elig
    t.blocking_reason, t.terminal_outcome, t.attempt_state = d[4][b4] or "", outcome, d[6][b6] or ""
    t.public_state = FF.public(phase, elig, outcome)
  else
    local dims = FF.sv_decode(sv)
    for i = 1, 6 do rawset(t, SV[i], dims[i]) end
    rawset(t, "public_state", FF.public(dims[1], dims[3], dims[5]))
  end
end
-- (CORE_MT.__index: "" for every long name, then for any other name; built at the first call,
-- when pairs exists; LONG: stored name -> long name, `bd` apart)
local CORE_MT = {}
local LONG = nil
local function core_tables()
  local def = {}
  LONG = {}
  for l, sn in pairs(CF) do
    def[l] = ""
    LONG[sn] = l
  end
  LONG.bd = nil
  for l in pairs(SV_INDEX) do def[l] = "" end
  CORE_MT.__index = setmetatable(def, { __index = function() return "" end })
  return LONG
end
-- The blocking_detail of a core table from its stored form `bd` (after FF.state wrote it)
function FF.core_detail(c)
  local bd = rawget(c, "bd")
  if bd ~= nil then rawset(c, "blocking_detail", detail_of(c, bd)) end
end
-- The same reads for FF.core_expand's table of long names (each value kept once read).
local EXPAND_MT = {
  __index = function(t, k)
    local s = CF[k]
    local v
    if s ~= nil then
      v = rawget(t, s)
      if v == nil then
        if k == "last_transition_at" then
          v = t.created_at
        elseif k == "last_mutation_at" then
          v = t.last_transition_at
        else
          v = ""
        end
      elseif k == "blocking_detail" then
        v = detail_of(t, v)
      end
    elseif SV_INDEX[k] ~= nil then
      sv_fill(t)
      return rawget(t, k)
    else
      v = ""
    end
    rawset(t, k, v)
    return v
  end
}

-- A completed core keeps the run the completion ended in the lease fields it does not clear
-- (worker, worker instance, lease_acquired_at; since library version 10: a version 9 completion
-- copied them to last_run_*): a terminal core that has lease_acquired_at holds such a run. A core
-- table names it last_run_* and has no current_* fields, as a version 9 core; RUN_LIVE marks it
-- (FF.run_unkeep deletes the stored fields under their lease names).
local RUN_LIVE = "\0run"
FF.RUN_LIVE = RUN_LIVE
local function run_of_completion(c)
  c.last_run_worker_id, c.last_run_worker_instance_id, c.last_run_started_at =
    c.current_worker_id, c.current_worker_instance_id, c.lease_acquired_at
  c.current_worker_id, c.current_worker_instance_id, c.lease_acquired_at = nil, nil, nil
  c[RUN_LIVE] = true
end
FF.run_of_completion = run_of_completion

-- current_attempt_index is always total_attempt_count - 1 once an attempt began (every claim sets
-- both): since library version 10 a claim stores it only where a version 9 claim stored it
-- already (FF.lease_on), and a core without it reads it from the count. AI_DERIVED marks a core
-- table whose index is the count's.
local AI_DERIVED = "\0ai"
FF.AI_DERIVED = AI_DERIVED
-- current_lease_epoch likewise reads as total_attempt_count when not stored: a claim stores it
-- only when they differ (a resumed attempt's lease) or where it is stored already (LE_DERIVED: a
-- core table whose epoch is the count's).
local LE_DERIVED = "\0le"
FF.LE_DERIVED = LE_DERIVED
-- started_at reads as lease_acquired_at while not stored: the first claim sets both to its time and
-- stores only the latter; a write that changes or clears lease_acquired_at stores started_at first
-- (FF.state). SA_DERIVED marks a core table whose started_at is not stored.
local SA_DERIVED = "\0sa"
FF.SA_DERIVED = SA_DERIVED
local function attempt_derived(c)
  local n = tonumber(c.total_attempt_count)
  if n ~= nil and n >= 1 then
    c.current_attempt_index = FF.s(n - 1)
    c[AI_DERIVED] = true
  end
end

-- The core of `e`, or nil (a table of long names, CORE_MT).
function FF.core(B, e) return FF.core_of(C("HGETALL", K.core(B, e))) end
-- The same from the core's HGETALL reply `r` (flat: field, value, ...).
function FF.core_of(r)
  local n = #r
  if n == 0 then return nil end
  local long = LONG or core_tables()
  -- (the table made with room for a claimed core's fields and the decoded vector, 27 names: filled
  -- from empty it was rehashed five times on the way, about 3 000 instructions of a read)
  local c = {
    lane_id = nil, created_at = nil, namespace = nil, execution_kind = nil, p = nil, sv = nil,
    last_transition_at = nil, last_mutation_at = nil, current_attempt_index = nil, current_attempt_id = nil,
    current_lease_id = nil, current_lease_epoch = nil, current_worker_id = nil, current_worker_instance_id = nil,
    lease_acquired_at = nil, lease_expires_at = nil, started_at = nil, total_attempt_count = nil, run_kind = nil,
    lifecycle_phase = nil, ownership_state = nil, eligibility_state = nil, blocking_reason = nil,
    terminal_outcome = nil, attempt_state = nil, public_state = nil, priority = nil
  }
  for i = 1, n, 2 do
    local f = r[i]
    c[long[f] or f] = r[i + 1]
  end
  sv_fill(c)
  if c.last_transition_at == nil then c.last_transition_at = c.created_at end
  -- (last_mutation_at stays nil while not stored: it is then last_transition_at, which FF.state
  -- writes without it)
  if c.total_attempt_count ~= nil then
    if c.current_attempt_index == nil then attempt_derived(c) end
    if c.current_lease_epoch == nil then
      c.current_lease_epoch = c.total_attempt_count
      c[LE_DERIVED] = true
    end
  end
  if c.lease_acquired_at ~= nil then
    if c.started_at == nil then
      c.started_at = c.lease_acquired_at
      c[SA_DERIVED] = true
    end
    if c.lifecycle_phase == "terminal" then run_of_completion(c) end
  end
  local bd = c.bd
  setmetatable(c, CORE_MT)
  if bd ~= nil then c.blocking_detail = detail_of(c, bd) end
  return c
end

-- The core hash `m` as HGETALL reads it, with every field under its long name, the state vector's
-- dimensions and the public state (for replies that hand the whole core to the layer).
function FF.core_expand(m)
  local c = setmetatable({}, EXPAND_MT)
  local long = FF.CF_LONG
  if long == nil then
    long = {}
    for l, s in pairs(CF) do long[s] = l end
    FF.CF_LONG = long
  end
  for k, v in pairs(m) do
    if k ~= "sv" then c[long[k] or k] = v end
  end
  local dims = FF.sv_decode(m.sv)
  for i = 1, 6 do c[SV[i]] = dims[i] end
  c.public_state = FF.public(dims[1], dims[3], dims[5])
  if c.priority == "" then c.priority = "0" end
  if c.blocking_detail ~= "" then c.blocking_detail = detail_of(c, c.blocking_detail) end
  c.namespace = c.namespace -- (stored only when not empty)
  if c.last_transition_at == "" then c.last_transition_at = c.created_at end
  if c.last_mutation_at == "" then c.last_mutation_at = c.last_transition_at end
  if rawget(c, "total_attempt_count") ~= nil then
    if rawget(c, "current_attempt_index") == nil then
      attempt_derived(c)
      c[AI_DERIVED] = nil
    end
    if rawget(c, "current_lease_epoch") == nil then c.current_lease_epoch = c.total_attempt_count end
  end
  if rawget(c, "started_at") == nil and rawget(c, "lease_acquired_at") ~= nil then
    c.started_at = c.lease_acquired_at
  end
  if dims[1] == "terminal" and rawget(c, "lease_acquired_at") ~= nil then
    run_of_completion(c)
    c[RUN_LIVE] = nil
  end
  return setmetatable(c, nil)
end

-- Writes the long-named field/value pairs of `t` (its first n entries) to the core of `e` (a field
-- set to "" is deleted), and into the core table `c` when given.
local cset_args, cdel_args = {}, {}
function FF.cset(B, e, c, t, n)
  n = n or #t
  local w, d, nw, nd = cset_args, cdel_args, 0, 0
  for i = 1, n, 2 do
    local f, v = t[i], t[i + 1]
    if c ~= nil then c[f] = v end
    if v == "" then
      nd = nd + 1
      d[nd] = CF[f] or f
    else
      w[nw + 1], w[nw + 2] = CF[f] or f, v
      nw = nw + 2
    end
  end
  local k = K.core(B, e)
  if nw > 0 then C("HSET", k, unpack(w, 1, nw)) end
  if nd > 0 then C("HDEL", k, unpack(d, 1, nd)) end
end

-- An execution's input of at most INLINE_PAYLOAD bytes is stored in its core, field
-- PAYLOAD_FIELD, rather than in a key of its own (`:payload`): the core stays a listpack (whose
-- values may reach hash-max-listpack-value, 64 bytes by default) and the input costs no key. An
-- input is in one of the two places, never both (a data-passing edge that replaces an input
-- writes the key and drops the field, FF.copy_result).
FF.INLINE_PAYLOAD = 48
FF.PAYLOAD_FIELD = "p"
-- A completion's result of at most INLINE_PAYLOAD bytes is the core's field RESULT_FIELD (written
-- in the terminal transition's HSET), a larger or staged one the key `:result`, never both. A
-- version 4 store has every result in `:result`, which is still read when the field is absent.
FF.RESULT_FIELD = "rv"

-- A command over a long list of arguments is sent in chunks: `unpack` of more values than Lua's
-- C stack holds (about 8,000) fails, and a library call must never fail after its first write.
FF.CHUNK = 1000 -- arguments per command (even, so field/value pairs stay together)

-- `cmd key t[i..j]` for consecutive chunks of the first n entries of t (default #t).
function FF.chunked(cmd, key, t, n)
  n = n or #t
  for i = 1, n, FF.CHUNK do
    C(cmd, key, unpack(t, i, math.min(i + FF.CHUNK - 1, n)))
  end
end

-- HSET of the field/value pairs of t (nothing when t is empty).
function FF.hset(key, t) FF.chunked("HSET", key, t) end

-- --- staged blobs -----------------------------------------------------------------------------
-- A large payload or result comes staged (plumbing.ts STAGE_BYTES): the layer SETs it in a key of
-- its own beside KEYS[1], a.staged maps its ARGV position to that key, and the argument stands in
-- as {staged = key}. FF.put_blob RENAMEs it into place (its bytes never pass through Lua); the
-- callback deletes what the function did not take.
-- FF.take_staged puts the staged arguments in place in `argv`; nil, or the refusal:
-- invalid_input "staged" (a position below 3, a key not beside B), staged_blob_missing.
function FF.take_staged(B, argv, staged)
  if type(staged) ~= "table" then return FF.err("invalid_input", "staged") end
  local own = B .. ":stage:"
  for i, key in pairs(staged) do
    local n = tonumber(i)
    if n == nil or n < 3 or type(key) ~= "string" or string.sub(key, 1, #own) ~= own then
      return FF.err("invalid_input", "staged")
    end
    if C("EXISTS", key) == 0 then return FF.err("staged_blob_missing") end
    argv[n] = { staged = key }
  end
  return nil
end

-- Deletes the staged blobs the function did not take (FF.put_blob renamed the others away).
function FF.drop_staged(staged)
  for _, key in pairs(staged) do C("DEL", key) end
end

-- Writes blob `v` (an argument: a string, or a staged blob) at `dest`.
function FF.put_blob(dest, v)
  if type(v) == "table" then C("RENAME", v.staged, dest) else C("SET", dest, v) end
end

-- The JSON object or array text `s` decoded, or nil (empty, not JSON, a scalar).
function FF.decode(s)
  if s == nil or s == false or s == "" then return nil end
  local ok, v = pcall(cjson.decode, s)
  if ok and type(v) == "table" then return v end
  return nil
end

-- Keys whose lifetime follows the engine clock ("now"), so that an Effect TestClock drives
-- them like the store clock does; the real PX (ttl + 1 min) only collects garbage. The value is
-- stored as "<expiry>\t<value>". FF.ttl_get: the value, or nil when missing or expired at `now`.
function FF.ttl_get(key, now)
  local v = C("GET", key)
  if v == false then return nil end
  local sep = string.find(v, "\t", 1, true)
  if sep == nil then return v end
  local exp = tonumber(string.sub(v, 1, sep - 1))
  if exp ~= nil and exp <= now then return nil end
  return string.sub(v, sep + 1)
end

-- Stores `value` at `key` until now + ttl (engine clock).
function FF.ttl_set(key, value, ttl, now)
  C("SET", key, FF.s(now + ttl) .. "\t" .. value, "PX", FF.int_arg(ttl + 60000, 60000))
end

-- --- arguments ------------------------------------------------------------------------------
-- A function checks its arguments before its first write (nothing is rolled back): FF.bad_arg
-- names the first field of `a` listed in `spec` (field, kind, field, kind, ...) whose value is
-- not of its kind: "s" a string, "n" a finite number, "t" a table (a JSON object or array).
local function is_kind(v, kind)
  if kind == "s" then return type(v) == "string" end
  if kind == "n" then return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge end
  return type(v) == "table"
end
function FF.bad_arg(a, spec)
  if type(a) ~= "table" then return "arguments" end
  for i = 1, #spec, 2 do
    if not is_kind(a[spec[i]], spec[i + 1]) then return spec[i] end
  end
  return nil
end

-- The invalid_input reply for the first bad field of `a` (see FF.bad_arg), or nil.
function FF.need(name, a, spec)
  local bad = FF.bad_arg(a, spec)
  if bad ~= nil then return FF.err("invalid_input", name .. ": " .. bad) end
  return nil
end

-- The first item of `items` (a list) with a bad field, as an invalid_input reply, or nil.
function FF.need_each(name, items, spec)
  if type(items) ~= "table" then return FF.err("invalid_input", name .. ": items") end
  for i = 1, #items do
    local bad = FF.bad_arg(items[i], spec)
    if bad ~= nil then return FF.err("invalid_input", name .. ": item " .. FF.s(i) .. ": " .. bad) end
  end
  return nil
end

-- The argument of a command that takes a positive integer (PX, PEXPIRE, MAXLEN): `n` as a whole
-- number in 1..FF.INT_MAX (`default` when it is not a number), so no value makes the command fail.
FF.INT_MAX = 1e15
function FF.int_arg(n, default)
  n = tonumber(n)
  if n == nil or n ~= n then n = default end
  n = math.floor(n)
  if n < 1 then n = 1 elseif n > FF.INT_MAX then n = FF.INT_MAX end
  return FF.s(n)
end

-- ARGV[2] decoded ({} when it is not a JSON object or array).
function FF.args(s)
  local a = FF.decode(s)
  if a == nil then return {} end
  return a
end

-- JSON array text of a Lua sequence ("[]" when empty: cjson would write {})
function FF.jarr(t)
  if #t == 0 then return "[]" end
  return cjson.encode(t)
end

-- The tokens of a comma-separated list (none for nil or "").
function FF.split(csv)
  local out = {}
  if csv == nil or csv == "" then return out end
  for tok in string.gmatch(csv, "[^,]+") do out[#out + 1] = tok end
  return out
end

-- --- policies ----------------------------------------------------------------------
-- The stored policy of `e` (retry, timeouts, reclaim and replay caps) decoded, {} when none.
function FF.policy(B, e)
  local p = FF.decode(C("GET", K.ex(B, e, "policy")))
  if p == nil then return {} end
  return p
end

-- The claim score of a candidate, lower claimed first: priority, then creation time
-- (docs/design/executions.md#claim-order). The score of the lane indexes and of the claim hints.
function FF.pscore(priority, created_at)
  return -(FF.num(priority) * 1000000000000) + FF.num(created_at)
end

-- --- the state vector ------------------------------------------------------------------
-- The public state a state vector shows (its lifecycle phase, eligibility and terminal outcome).
function FF.public(phase, elig, outcome)
  if phase == "terminal" then
    if outcome == "success" then return "completed" end
    if outcome == "none" or outcome == "" or outcome == nil then return "failed" end
    return outcome
  elseif phase == "suspended" then return "suspended"
  elseif phase == "active" then return "active"
  elseif phase == "runnable" then
    if elig == "not_eligible_until_time" then return "delayed" end
    if elig == "blocked_by_dependencies" then return "waiting_children" end
    if elig == "blocked_by_budget" or elig == "blocked_by_quota" then return "rate_limited" end
    return "waiting"
  end
  return "waiting"
end
