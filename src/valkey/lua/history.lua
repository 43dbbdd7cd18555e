-- ===========================================================================
-- history.lua: what an execution's snapshot tells about its past, each in a key of its own beside
-- the core (docs/design/executions.md, "Attempt history"), written by the transition it records,
-- in the same call; an execution that never ran or never failed has neither key.
--   <B>:e:<id>:hist  the runs that ended (one per lease), the last FF.HISTORY_RUNS, oldest first:
--                    a list of JSON arrays [attempt index, kind, worker id, worker instance id,
--                    started, ended, outcome, reason?]. Two runs are not in it but in the core:
--                    the run holding the lease (its lease fields and run_kind), and the run a
--                    completion ended, the execution's last (last_run_worker_id,
--                    last_run_worker_instance_id, last_run_started_at, run_kind; ended at
--                    completed_at, outcome "completed"), which a replay moves to the list.
--   <B>:e:<id>:fail  the last failure: a JSON array [at, classification, category, reason]
-- ===========================================================================

FF.HISTORY_RUNS = 20          -- Limits.historyRuns
FF.HISTORY_REASON_BYTES = 256 -- Limits.historyReasonBytes

-- `s` cut to FF.HISTORY_REASON_BYTES bytes at a character boundary (`s` is UTF-8).
function FF.cut_reason(s)
  if #s <= FF.HISTORY_REASON_BYTES then return s end
  local n = FF.HISTORY_REASON_BYTES
  while n > 0 do
    local b = string.byte(s, n + 1)
    if b < 128 or b >= 192 then break end
    n = n - 1
  end
  return string.sub(s, 1, n)
end

-- The kinds of runs as the core's run_kind stores them ("R": a run that resumed an attempt a
-- version 3 library began). "" is a run a version 3 library began: its attempt record tells.
local KIND = { i = "initial", t = "retry", y = "replay", c = "reclaim", r = "resumed", R = "resumed" }
local KIND_CODE = { initial = "i", retry = "t", replay = "y", reclaim = "c", resumed = "R" }

-- How the run holding the lease of `e` began (`c`: its core): initial, retry, replay, reclaim or
-- resumed (it took up the interrupted attempt). A read.
function FF.run_kind(B, e, c)
  local k = KIND[c.run_kind]
  if k ~= nil then return k end
  -- (a run a version 3 library began: from its attempt record)
  local a = C("HMGET", K.att(B, e, c.current_attempt_index), "attempt_type", "resumed_at")
  if a[2] and a[2] ~= "" and a[2] == c.lease_acquired_at then return "resumed" end
  if a[1] and a[1] ~= "" then return a[1] end
  return "initial"
end

-- The history entry of a run (its fields as FF.run_end writes them).
local function entry_of(idx, kind, wid, wiid, started, ended, outcome, reason)
  local entry = { FF.str(idx), kind, wid, wiid, started, ended, outcome }
  if reason ~= nil and reason ~= "" then entry[8] = FF.cut_reason(reason) end
  return cjson.encode(entry)
end

local function push(B, e, entry)
  local hk = K.ex(B, e, "hist")
  if C("RPUSH", hk, entry) > FF.HISTORY_RUNS then C("LTRIM", hk, -FF.HISTORY_RUNS, -1) end
end

-- Ends the run of `e` when it holds a lease (`c`: its core as read before the transition, which
-- calls this before its state write): the run joins the history, which keeps the last
-- FF.HISTORY_RUNS. `reason` may be nil.
function FF.run_end(B, e, c, outcome, reason, now)
  if c.lifecycle_phase ~= "active" or c.ownership_state ~= "leased" then return end
  push(B, e, entry_of(c.current_attempt_index, FF.run_kind(B, e, c), c.current_worker_id,
    c.current_worker_instance_id, c.lease_acquired_at, FF.s(now), outcome, reason))
end

-- The core fields that keep the run a completion ends (`c`: the core of `e` as read before the
-- completion, leased): FF.to_terminal's `extra`, with FF.COMPLETE_CLEARS, which leave the run's
-- worker, worker instance and start in their lease fields (helpers.lua, "a completed core keeps
-- the run"). The history then reads it from the core.
function FF.run_kept(B, e, c)
  local kind = c.run_kind
  if KIND[kind] == nil then kind = KIND_CODE[FF.run_kind(B, e, c)] or "i" end
  return { "run_kind", kind }
end

-- The entry of the run the core of a completed execution keeps (FF.run_kept), or nil.
local function kept_entry(c)
  if c.lifecycle_phase ~= "terminal" or (c.last_run_started_at or "") == "" then return nil end
  return entry_of(c.current_attempt_index, KIND[c.run_kind] or "initial", c.last_run_worker_id,
    c.last_run_worker_instance_id, c.last_run_started_at, c.completed_at, "completed")
end

-- Before a transition out of the terminal phase (a replay): the run the core keeps joins the
-- history list. Returns the core fields that clear it (for the transition's state write).
function FF.run_unkeep(B, e, c)
  local entry = kept_entry(c)
  if entry == nil then return {} end
  push(B, e, entry)
  if rawget(c, FF.RUN_LIVE) then
    -- (kept in the lease fields: the table names them again, for the state write to delete)
    local mt = getmetatable(c)
    setmetatable(c, nil)
    c.current_worker_id, c.current_worker_instance_id, c.lease_acquired_at =
      c.last_run_worker_id, c.last_run_worker_instance_id, c.last_run_started_at
    c.last_run_worker_id, c.last_run_worker_instance_id, c.last_run_started_at, c[FF.RUN_LIVE] = nil, nil, nil, nil
    setmetatable(c, mt)
    return { "current_worker_id", "", "current_worker_instance_id", "", "lease_acquired_at", "" }
  end
  return { "last_run_worker_id", "", "last_run_worker_instance_id", "", "last_run_started_at", "" }
end

-- Records the last failure of `e` (classification: a Model.FailureClass).
function FF.record_failure(B, e, reason, classification, category, now)
  C("SET", K.ex(B, e, "fail"), cjson.encode({ FF.s(now), classification, category, reason }))
end

-- The history of `e` for a snapshot (a read): { runs = the stored runs, running = the kind of the
-- run holding the lease or nil, fail = the last failure or nil }.
function FF.history_of(B, e, c)
  local out = { runs = C("LRANGE", K.ex(B, e, "hist"), -FF.HISTORY_RUNS, -1) }
  local kept = kept_entry(c)
  if kept ~= nil then
    out.runs[#out.runs + 1] = kept
    if #out.runs > FF.HISTORY_RUNS then table.remove(out.runs, 1) end
  end
  if c.lifecycle_phase == "active" and c.ownership_state == "leased" then out.running = FF.run_kind(B, e, c) end
  local f = C("GET", K.ex(B, e, "fail"))
  if f then out.fail = f end
  return out
end
