-- ===========================================================================
-- history.lua: what an execution's snapshot tells about its past, each in a key of its own beside
-- the core (docs/design/executions.md, "Attempt history"), written by the transition it records,
-- in the same call; an execution that never ran or never failed has neither key.
--   <B>:e:<id>:hist  the runs that ended (one per lease), the last FF.HISTORY_RUNS, oldest first:
--                    a list of JSON arrays [attempt index, kind, worker id, worker instance id,
--                    started, ended, outcome, reason?]. The run holding the lease is not stored:
--                    describe reads it from the core.
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

-- How the run holding the lease of `e` began (`c`: its core): `resumed` when it took up the
-- interrupted attempt (the attempt was resumed when this lease was acquired), else the attempt's
-- type. A read.
function FF.run_kind(B, e, c)
  local a = C("HMGET", K.att(B, e, c.current_attempt_index), "attempt_type", "resumed_at")
  if a[2] and a[2] ~= "" and a[2] == c.lease_acquired_at then return "resumed" end
  if a[1] and a[1] ~= "" then return a[1] end
  return "initial"
end

-- Ends the run of `e` when it holds a lease (`c`: its core as read before the transition, which
-- calls this before its state write): the run joins the history, which keeps the last
-- FF.HISTORY_RUNS. `reason` may be nil.
function FF.run_end(B, e, c, outcome, reason, now)
  if c.lifecycle_phase ~= "active" or c.ownership_state ~= "leased" then return end
  local entry = { FF.str(c.current_attempt_index), FF.run_kind(B, e, c), c.current_worker_id,
    c.current_worker_instance_id, c.lease_acquired_at, FF.s(now), outcome }
  if reason ~= nil and reason ~= "" then entry[8] = FF.cut_reason(reason) end
  local hk = K.ex(B, e, "hist")
  if C("RPUSH", hk, cjson.encode(entry)) > FF.HISTORY_RUNS then C("LTRIM", hk, -FF.HISTORY_RUNS, -1) end
end

-- Records the last failure of `e` (classification: a Model.FailureClass).
function FF.record_failure(B, e, reason, classification, category, now)
  C("SET", K.ex(B, e, "fail"), cjson.encode({ FF.s(now), classification, category, reason }))
end

-- The history of `e` for a snapshot (a read): { runs = the stored runs, running = the kind of the
-- run holding the lease or nil, fail = the last failure or nil }.
function FF.history_of(B, e, c)
  local out = { runs = C("LRANGE", K.ex(B, e, "hist"), -FF.HISTORY_RUNS, -1) }
  if c.lifecycle_phase == "active" and c.ownership_state == "leased" then out.running = FF.run_kind(B, e, c) end
  local f = C("GET", K.ex(B, e, "fail"))
  if f then out.fail = f end
  return out
end
