-- ===========================================================================
-- indexes.lua: an execution's scheduling and timer indexes, and the lane's kind indexes kept once it
-- meets a second kind (docs/design/valkey.md); loaded after helpers.lua, whose keys and calls it uses
-- ===========================================================================

-- --- indexes -------------------------------------------------------------------------
-- Removes the execution from every scheduling and timer index of its lane and partition.
-- (Only the indexes the state vector implies: an entry anywhere else is stale, and every
-- reader of an index re-validates and drops stale entries.) Leases are indexed by the
-- partition's lease_expiry alone, suspensions by its `suspended` index (listSuspended reads a
-- partition in one order) and terminal executions by its retention index: upstream's lane
-- `active` and `terminal` sets had no reader here, so they are not kept.
local PHASE_INDEXES = {
  active = { "reclaim" },
  runnable = { "eligible", "delayed", "blocked" },
  suspended = {}
}
local NO_INDEXES = {} -- a held lease is never a reclaim candidate
function FF.unindex(B, e, c)
  local lane = c.lane_id
  local kinds = PHASE_INDEXES[c.lifecycle_phase] or { "eligible", "reclaim", "delayed", "blocked" }
  if c.lifecycle_phase == "active" and c.ownership_state == "leased" then kinds = NO_INDEXES end
  for _, kind in ipairs(kinds) do
    if kind == "eligible" then
      FF.drop_eligible_kind(B, lane, e, c)
    else
      C("ZREM", K.lane(B, lane, kind), e)
    end
  end
  if c.lifecycle_phase ~= "runnable" then FF.zrem(K.idx(B, "lease_expiry"), e) end
  -- (an entry of the attempt_timeout index comes with the core's attempt_timeout_at; one left
  -- stale is dropped by the pass that reads it)
  if (c.attempt_timeout_at or "") ~= "" then C("ZREM", K.idx(B, "attempt_timeout"), e) end
  if c.lifecycle_phase ~= "active" then C("ZREM", K.idx(B, "susp_timeout"), e) end
  if c.lifecycle_phase ~= "active" and c.lifecycle_phase ~= "runnable" then C("ZREM", K.idx(B, "suspended"), e) end
end

-- --- the kind indexes, kept once a lane meets a second kind ---------------------------------
-- A lane's eligible index on a partition serves as the index of its one kind until an execution
-- of a second kind is made eligible there; from then on every eligible execution is also in its
-- kind's index (K.lane_kind). The lane's kind mode, the string key K.lane(B, l, "km"), is one of
-- the words below, after "b" when the lane's eligible index and pending set are bucketed
-- (eligible.lua; the layout of library version 9), without it when they are the plain sorted sets
-- of an older store (K.lane(B, l, "eligible"), K.lane(B, l, "pend")):
--   absent      no execution was made eligible here yet (or the store is older than the mode:
--               then the kind indexes are kept, as "!", in the plain layout);
--   "=<kind>"   one kind: the eligible index holds only executions of <kind>, no kind index (a
--               second kind that finds the eligible index empty takes the lane over: "=<second>");
--   "+<kind>"   kind indexes kept, and the pending set may hold eligible executions of <kind>
--               that are in neither the eligible index nor <kind>'s index: the eligible index as
--               it was when the second kind came (one RENAME: of the plain set, or of the
--               bucketed set's directory, whose buckets keep their names: FF.lane_sets);
--   "!"         kind indexes kept, nothing pending.
-- The pending set is moved back, KSTEP entries from its head per call that makes work eligible or
-- claims on the lane (FF.kind_step), each into the eligible index and its kind's index at the
-- same score; once it is empty the mode is "!". Until then every reader of the eligible index reads
-- the pending set as well (it is part of it, and of <kind>'s index): the claim's candidates and
-- heads (claim.lua), the kind candidates, the lane pages (reads.lua), and every removal from the
-- eligible index removes from both (FF.drop_eligible). Work made eligible meanwhile goes to the
-- eligible index and its kind's index, at its claim score, as in mode "!": the union of the two
-- sets is in claim order at every step. A plain lane whose eligible index is found empty when
-- work is made eligible (modes "=" and "!") takes the bucketed layout.
local KSTEP = 32
local BYTE_ONE, BYTE_PENDING, BYTE_BUCKETED = 61, 43, 98 -- "=", "+", "b"

-- The lane's kind mode (read once per call), false when absent.
function FF.kmode(B, l)
  local mk = K.lane(B, l, "km")
  local m = lane_modes[mk]
  if m == nil then
    m = C("GET", mk)
    lane_modes[mk] = m
  end
  return m
end
local function set_kmode(B, l, m)
  local mk = K.lane(B, l, "km")
  C("SET", mk, m)
  lane_modes[mk] = m
end
-- The lane's eligible index and pending set (eligible.lua's sets). The buckets of a bucketed
-- lane's eligible index are named "eb1" while the lane has one kind (or none yet) and "eb2" once
-- it has kind indexes; its pending set, the directory of the one-kind eligible index renamed, keeps
-- the "eb1" buckets: so a lane switches once, and no two sets share a bucket. Kept for the rest of
-- the call with the mode they follow from (mode key -> {raw mode, mode without its layout letter,
-- bucketed, E, P}).
local lane_info = {}
local last_B, last_l, last_mk = nil, nil, nil -- (the mode key of the lane looked up last)
local function info_of(B, l)
  local mk
  if l == last_l and B == last_B then
    mk = last_mk
  else
    mk = K.lane(B, l, "km")
    last_B, last_l, last_mk = B, l, mk
  end
  local m = lane_modes[mk]
  if m == nil then m = FF.kmode(B, l) end
  local inf = lane_info[mk]
  if inf ~= nil and inf.raw == m then return inf end
  inf = { raw = m, mode = m, bucketed = false }
  if m and string.byte(m, 1) == BYTE_BUCKETED then
    inf.mode, inf.bucketed = string.sub(m, 2), true
    local gen = (string.byte(m, 2) == BYTE_ONE) and "eb1" or "eb2"
    inf.E = { dir = K.lane(B, l, "ed"), pre = K.lane(B, l, gen) .. ":" }
    inf.P = { dir = K.lane(B, l, "pd"), pre = K.lane(B, l, "eb1") .. ":" }
  else
    inf.E, inf.P = { key = K.lane(B, l, "eligible") }, { key = K.lane(B, l, "pend") }
  end
  lane_info[mk] = inf
  return inf
end
-- The mode without its layout letter, and whether the lane is bucketed.
local function mode_of(B, l)
  local inf = info_of(B, l)
  return inf.mode, inf.bucketed
end
function FF.lane_sets(B, l)
  local inf = info_of(B, l)
  return inf.E, inf.P
end
function FF.lane_sets_begin()
  if next(lane_info) ~= nil then lane_info = {} end
  FF.eseen_begin()
end

-- Whether the lane's pending set may hold entries (mode "+<kind>").
function FF.kpending(B, l)
  local m = mode_of(B, l)
  return m and string.byte(m, 1) == BYTE_PENDING
end

-- The pending kind, when the pending set may hold entries, else nil.
function FF.kpending_kind(B, l)
  local m = mode_of(B, l)
  if m and string.byte(m, 1) == BYTE_PENDING then return string.sub(m, 2) end
  return nil
end

-- Whether execution kind `kind` has an index of its own on the lane (not while the lane has one
-- kind).
function FF.kind_indexed(B, l, kind)
  local m = mode_of(B, l)
  return not (m and string.byte(m, 1) == BYTE_ONE and #m == #kind + 1 and string.sub(m, 2) == kind)
end

-- The set that indexes kind `kind` of the lane's eligible executions (the pending set apart), or
-- nil when none can hold one: the kind's index (a plain sorted set), or, while the lane has one
-- kind, its eligible index for that kind.
function FF.kind_set(B, l, kind)
  local m = mode_of(B, l)
  if m and string.byte(m, 1) == BYTE_ONE then
    if string.sub(m, 2) == kind then return (FF.lane_sets(B, l)) end
    return nil
  end
  return { key = K.lane_kind(B, l, kind) }
end

-- Moves up to KSTEP entries of the head of the lane's pending set (mode "+<kind>") into its eligible
-- index and <kind>'s index, at most once per lane per call; the mode becomes "!" with the last.
function FF.kind_step(B, l)
  local kind = FF.kpending_kind(B, l)
  if kind == nil then return end
  local mk = K.lane(B, l, "km")
  if lane_stepped[mk] then return end
  lane_stepped[mk] = true
  local E, P = FF.lane_sets(B, l)
  -- (members as they are: FF.emember)
  local r = FF.efirst(P, KSTEP)
  local n = #r / 2
  if n > 0 then
    local args = {}
    for i = 1, #r, 2 do args[i], args[i + 1] = r[i + 1], r[i] end
    C("ZADD", K.lane_kind(B, l, kind), unpack(args))
    if P.key then
      C("ZADD", E.key, unpack(args))
      C("ZREMRANGEBYRANK", P.key, 0, n - 1)
    else
      for i = 1, #r, 2 do
        local sc = tonumber(r[i + 1])
        FF.eadd(E, sc, r[i])
        FF.erem(P, sc, r[i])
      end
    end
  end
  if n < KSTEP then
    local _, bucketed = mode_of(B, l)
    set_kmode(B, l, bucketed and "b!" or "!")
  end
end

-- Whether the lane holds more than n eligible entries (the pending set's included).
function FF.eligible_more(B, l, n)
  local E, P = FF.lane_sets(B, l)
  if FF.emore(E, n) then return true end
  if not FF.kpending(B, l) then return false end
  return #FF.efirst(E, n + 1) + #FF.efirst(P, n + 1) > 2 * n
end

-- Removes `e` (core `c`, whose priority and creation time give its entry's score) from the lane's
-- eligible index (and from the pending set while there is one), under both of its member forms
-- (FF.emembers) in a plain set.
function FF.drop_eligible(B, l, e, c)
  local score = FF.pscore(c.priority, c.created_at)
  local E, P = FF.lane_sets(B, l)
  local m, old = FF.emembers(e)
  FF.erem(E, score, m, old)
  if FF.kpending(B, l) then FF.erem(P, score, m, old) end
end

-- Removes `e` of kind `kind` from the lane's eligible index, pending set and kind index.
function FF.drop_eligible_kind(B, l, e, c)
  FF.drop_eligible(B, l, e, c)
  local kind = c.execution_kind or ""
  if FF.kind_indexed(B, l, kind) then C("ZREM", K.lane_kind(B, l, kind), FF.emembers(e)) end
end

-- Indexes `e` as eligible on its lane (and its lane and kind, once the lane has met a second kind)
-- at its claim score, and reports the wake. The first kind made eligible on the lane sets its
-- mode; a second one switches the lane to kind indexes (above): the eligible index, all of the
-- first kind, becomes the pending set in one RENAME. An entry of `e` at another score (a priority
-- change) is removed by the caller first (FF.drop_eligible).
function FF.make_eligible(B, e, c)
  local l, kind = c.lane_id, c.execution_kind or ""
  local score = FF.pscore(c.priority, c.created_at)
  local em = FF.emember(e)
  local m, bucketed = mode_of(B, l)
  local E = FF.lane_sets(B, l)
  if not m then
    -- (a lane with eligible work and no mode is of an older store, which kept every kind index)
    if C("EXISTS", E.key) == 0 then m, bucketed = "=" .. kind, true else m = "!" end
    set_kmode(B, l, (bucketed and "b" or "") .. m)
  elseif not bucketed and string.byte(m, 1) ~= BYTE_PENDING and C("EXISTS", E.key) == 0 then
    -- (a plain lane with nothing eligible takes the bucketed layout)
    if string.byte(m, 1) == BYTE_ONE then m = "=" .. kind end
    bucketed = true
    set_kmode(B, l, "b" .. m)
  end
  if string.byte(m, 1) == BYTE_ONE and string.sub(m, 2) ~= kind then
    E = FF.lane_sets(B, l)
    if FF.eexists(E) then
      -- (a bucketed set's buckets keep their names; a set of one bucket has no directory)
      if E.key then
        C("RENAME", E.key, K.lane(B, l, "pend"))
      elseif C("EXISTS", E.dir) == 1 then
        C("RENAME", E.dir, K.lane(B, l, "pd"))
      end
      m = "+" .. string.sub(m, 2)
    else
      m = "=" .. kind -- (nothing of the first kind is eligible: no index holds one)
    end
    set_kmode(B, l, (bucketed and "b" or "") .. m)
  end
  E = FF.lane_sets(B, l)
  if string.byte(m, 1) ~= BYTE_ONE then C("ZADD", K.lane_kind(B, l, kind), FF.s(score), em) end
  FF.eadd(E, score, em)
  FF.add_wake(l, score)
  FF.kind_step(B, l)
end

-- Whether the worker's capability set `worker` (FF.caps_set) holds every capability of
-- `required_csv`; and the missing ones, sorted, comma-separated.
function FF.caps_ok(required_csv, worker)
  if required_csv == nil or required_csv == "" then return true, "" end
  local missing = {}
  for _, tok in ipairs(FF.split(required_csv)) do
    if not worker[tok] then missing[#missing + 1] = tok end
  end
  if #missing == 0 then return true, "" end
  table.sort(missing)
  return false, table.concat(missing, ",")
end

-- A worker's capability list as a set.
function FF.caps_set(list)
  local set = {}
  if type(list) == "table" then
    for _, t in ipairs(list) do set[t] = true end
  end
  return set
end

-- The execution kinds a claim is limited to (`a.kinds`, a list of strings) as a set, cached in
-- a.kinds_set: false when the claim takes any kind; nil and the refusal when the list is bad.
-- A candidate of another kind is passed over (FF.kind_ok), nothing written.
function FF.kinds_of(name, a)
  if a.kinds_set ~= nil then return a.kinds_set end
  local list = a.kinds
  if list == nil then
    a.kinds_set = false
    return false
  end
  if type(list) ~= "table" then return nil, FF.err("invalid_input", name .. ": kinds") end
  local set = {}
  for i = 1, #list do
    if type(list[i]) ~= "string" then return nil, FF.err("invalid_input", name .. ": kinds") end
    set[list[i]] = true
  end
  a.kinds_set = set
  return set
end

-- Whether core `c` is of a kind in `kinds` (FF.kinds_of; false: any kind). A kind is stored only
-- when not empty, so a missing field reads as "", the empty kind.
function FF.kind_ok(c, kinds)
  return kinds == false or kinds[c.execution_kind] == true
end

