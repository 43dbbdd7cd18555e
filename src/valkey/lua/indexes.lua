-- ===========================================================================
-- indexes.lua: an execution's scheduling and timer indexes, and the lane's kind indexes kept once it
-- meets a second kind (docs/design/valkey.md); loaded right after helpers.lua, whose keys and calls it uses
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
      FF.drop_eligible_kind(B, lane, e, c.execution_kind or "")
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
-- kind's index (K.lane_kind). The lane's kind mode, the string key K.lane(B, l, "km"):
--   absent      no execution was made eligible here yet (or the store is older than the mode:
--               then the kind indexes are kept, as "!");
--   "=<kind>"   one kind: the eligible index holds only executions of <kind>, no kind index (a
--               second kind that finds the eligible index empty takes the lane over: "=<second>");
--   "+<kind>"   kind indexes kept, and the pending set K.lane(B, l, "pend") may hold eligible
--               executions of <kind> that are in neither the eligible index nor <kind>'s index:
--               the eligible index as it was when the second kind came (RENAME, one step);
--   "!"         kind indexes kept, nothing pending.
-- The pending set is moved back, KSTEP entries from its head per call that makes work eligible or
-- claims on the lane (FF.kind_step), each into the eligible index and its kind's index at the
-- same score; once it is empty the mode is "!". Until then every reader of the eligible index reads
-- the pending set as well (it is part of it, and of <kind>'s index): the claim's candidates and
-- heads (claim.lua), the kind candidates, the lane pages (reads.lua), and every removal from the
-- eligible index removes from both (FF.drop_eligible). Work made eligible meanwhile goes to the
-- eligible index and its kind's index, at its claim score, as in mode "!": the union of the two
-- sets is in claim order at every step.
local KSTEP = 32
local BYTE_ONE, BYTE_PENDING = 61, 43 -- "=", "+"

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

-- Whether the lane's pending set may hold entries (mode "+<kind>").
function FF.kpending(B, l)
  local m = FF.kmode(B, l)
  return m and string.byte(m, 1) == BYTE_PENDING
end

-- The pending kind, when the pending set may hold entries, else nil.
function FF.kpending_kind(B, l)
  local m = FF.kmode(B, l)
  if m and string.byte(m, 1) == BYTE_PENDING then return string.sub(m, 2) end
  return nil
end

-- Whether execution kind `kind` has an index of its own on the lane (not while the lane has one
-- kind).
function FF.kind_indexed(B, l, kind)
  local m = FF.kmode(B, l)
  return not (m and string.byte(m, 1) == BYTE_ONE and #m == #kind + 1 and string.sub(m, 2) == kind)
end

-- The key that indexes kind `kind` of the lane's eligible executions (the pending set apart), or
-- nil when none can hold one: the kind's index, or, while the lane has one kind, its eligible
-- index for that kind.
function FF.kind_key(B, l, kind)
  local m = FF.kmode(B, l)
  if m and string.byte(m, 1) == BYTE_ONE then
    if string.sub(m, 2) == kind then return K.lane(B, l, "eligible") end
    return nil
  end
  return K.lane_kind(B, l, kind)
end

-- Moves up to KSTEP entries of the head of the lane's pending set (mode "+<kind>") into its eligible
-- index and <kind>'s index, at most once per lane per call; the mode becomes "!" with the last.
function FF.kind_step(B, l)
  local kind = FF.kpending_kind(B, l)
  if kind == nil then return end
  local mk = K.lane(B, l, "km")
  if lane_stepped[mk] then return end
  lane_stepped[mk] = true
  local P = K.lane(B, l, "pend")
  -- (members as they are: FF.emember)
  local r = C("ZRANGE", P, 0, KSTEP - 1, "WITHSCORES")
  local n = #r / 2
  if n > 0 then
    local args = {}
    for i = 1, #r, 2 do args[i], args[i + 1] = r[i + 1], r[i] end
    C("ZADD", K.lane(B, l, "eligible"), unpack(args))
    C("ZADD", K.lane_kind(B, l, kind), unpack(args))
    C("ZREMRANGEBYRANK", P, 0, n - 1)
  end
  if n < KSTEP then set_kmode(B, l, "!") end
end

-- The number of the lane's eligible entries (the pending set's included).
function FF.eligible_count(B, l)
  local n = C("ZCARD", K.lane(B, l, "eligible"))
  if FF.kpending(B, l) then n = n + C("ZCARD", K.lane(B, l, "pend")) end
  return n
end

-- Removes `e` from the lane's eligible index (and from the pending set while there is one), under
-- both of its member forms (FF.emembers).
function FF.drop_eligible(B, l, e)
  local m, old = FF.emembers(e)
  C("ZREM", K.lane(B, l, "eligible"), m, old)
  if FF.kpending(B, l) then C("ZREM", K.lane(B, l, "pend"), m, old) end
end

-- Removes `e` of kind `kind` from the lane's eligible index, pending set and kind index.
function FF.drop_eligible_kind(B, l, e, kind)
  FF.drop_eligible(B, l, e)
  if FF.kind_indexed(B, l, kind) then C("ZREM", K.lane_kind(B, l, kind), FF.emembers(e)) end
end

-- Indexes `e` as eligible on its lane (and its lane and kind, once the lane has met a second kind)
-- at its claim score, and reports the wake. The first kind made eligible on the lane sets its
-- mode; a second one switches the lane to kind indexes (above): the eligible index, all of the
-- first kind, becomes the pending set in one RENAME.
function FF.make_eligible(B, e, c)
  local l, kind = c.lane_id, c.execution_kind or ""
  local score = FF.pscore(c.priority, c.created_at)
  local ss = FF.s(score)
  local E = K.lane(B, l, "eligible")
  local em = FF.emember(e)
  local m = FF.kmode(B, l)
  if not m then
    -- (a lane with eligible work and no mode is of an older store, which kept every kind index)
    if C("EXISTS", E) == 0 then m = "=" .. kind else m = "!" end
    set_kmode(B, l, m)
  elseif string.byte(m, 1) == BYTE_ONE and string.sub(m, 2) ~= kind then
    if C("EXISTS", E) == 1 then
      C("RENAME", E, K.lane(B, l, "pend"))
      m = "+" .. string.sub(m, 2)
    else
      m = "=" .. kind -- (nothing of the first kind is eligible: no index holds one)
    end
    set_kmode(B, l, m)
  end
  if string.byte(m, 1) ~= BYTE_ONE then
    -- (a priority change finds `e` still pending)
    if string.byte(m, 1) == BYTE_PENDING then C("ZREM", K.lane(B, l, "pend"), FF.emembers(e)) end
    C("ZADD", K.lane_kind(B, l, kind), ss, em)
  end
  C("ZADD", E, ss, em)
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

