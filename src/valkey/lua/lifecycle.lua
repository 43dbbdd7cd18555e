-- ===========================================================================
-- lifecycle.lua: an execution's life outside claims: create (one, a partition's batch, a
-- standalone batch over partitions), and the lease holder's writes: renew, progress, complete
-- (one, a standalone batch), fail, cancel, delay, wait_children (docs/design/executions.md)
-- ===========================================================================

-- --- create ------------------------------------------------------------------------
-- create arguments stored under their own name, when given
local CREATE_OPTIONAL = {
  "execution_kind", "creator_identity", "payload_encoding", "required_capabilities", "attempt_timeout_ms",
  "max_signals", "stream_maxlen", "retention_ms", "trace"
}

-- The fields every create item needs (checked for every item of a batch before its first write).
FF.CREATE_ARGS = { "execution_id", "s", "lane_id", "s" }

-- Creates one execution (its arguments checked with FF.CREATE_ARGS): its core, its lane index
-- (eligible, delayed or blocked), payload, policy, tags, deadline and the partition's indexes. A
-- repeat of a live idempotency key, or an existing id, writes nothing. Returns the status and
-- reply fields: "OK", id, public state | "DUPLICATE", the existing id. `flow` (the members of
-- createFlowGraph / extendFlow): { id = the flow, blocked = nil or the detail of a member created
-- blocked by its dependencies }.
function FF.create_one(B, a, now, payload, policy_json, flow)
  local e = a.execution_id
  local ns = FF.str(a.namespace)
  local idem = FF.str(a.idempotency_key)
  local idem_key = nil
  if idem ~= "" then
    idem_key = K.idx(B, "idem:" .. #ns .. ":" .. ns .. ":" .. idem)
    local prior = FF.ttl_get(idem_key, now)
    if prior ~= nil then return "DUPLICATE", prior end
  end
  local ck = K.core(B, e)
  if C("EXISTS", ck) == 1 then return "DUPLICATE", e end
  local lane = a.lane_id
  local priority = FF.num(a.priority)
  local delay_until = tonumber(a.delay_until or "")
  local delayed = delay_until ~= nil and delay_until > now
  local ts = FF.s(now)
  local sprio = FF.s(priority)
  local c = { execution_id = e, namespace = ns, lane_id = lane, priority = sprio, created_at = ts,
    execution_kind = FF.str(a.execution_kind) }
  -- the state vector (docs/design/valkey.md#key-layout) of a new execution
  local elig, reason, detail, pub, sdelay = "eligible_now", "waiting_for_worker", "", "waiting", ""
  if delayed then
    sdelay = FF.s(delay_until)
    elig, reason, detail, pub = "not_eligible_until_time", "waiting_for_delay", "delayed until " .. sdelay, "delayed"
  end
  local blocked = flow ~= nil and flow.blocked or nil
  if blocked ~= nil then
    elig, reason, detail, pub = "blocked_by_dependencies", "waiting_for_children", blocked, "waiting_children"
  end
  c.lifecycle_phase, c.ownership_state, c.eligibility_state, c.attempt_state = "runnable", "unowned", elig,
    "pending_first_attempt"
  c.public_state = pub
  -- the whole record in one HSET, the state vector included. What a record can do without is
  -- not stored: an empty field (FF.core reads it as ""), a counter at zero (read as 0) and what
  -- the key says (the execution id, its partition, `current_lane` = `lane_id`).
  -- (stored names: FF.CF; the transition times are not stored until they differ from created_at,
  -- the public state never: it follows from `sv`)
  local CF = FF.CF
  local t = {
    CF.lane_id, lane, CF.created_at, ts,
    "sv", FF.sv_encode("runnable", "unowned", elig, reason, "none", "pending_first_attempt")
  }
  if ns ~= "" then -- (an empty field is not stored, nor priority 0)
    t[#t + 1] = CF.namespace; t[#t + 1] = ns
  end
  if sprio ~= "0" then
    t[#t + 1] = CF.priority; t[#t + 1] = sprio
  end
  for i = 1, #CREATE_OPTIONAL do
    local f = CREATE_OPTIONAL[i]
    local v = a[f]
    if v ~= nil then
      v = FF.str(v)
      if v ~= "" then
        t[#t + 1] = CF[f] or f
        t[#t + 1] = v
      end
    end
  end
  if delayed then
    t[#t + 1] = CF.delay_until; t[#t + 1] = sdelay
  end
  if detail ~= "" then
    t[#t + 1] = CF.blocking_detail; t[#t + 1] = detail
  end
  if flow ~= nil then
    t[#t + 1] = CF.flow_id; t[#t + 1] = flow.id
  end
  local deadline = tonumber(a.deadline_at or "")
  if deadline == nil and tonumber(a.deadline_ms or "") ~= nil then deadline = now + tonumber(a.deadline_ms) end
  if deadline ~= nil then
    t[#t + 1] = CF.execution_deadline_at
    t[#t + 1] = FF.s(deadline)
  end
  -- a small input is a field of the core (FF.INLINE_PAYLOAD), a larger one a key of its own
  local inline = type(payload) == "string" and payload ~= "" and #payload <= FF.INLINE_PAYLOAD
  if inline then
    t[#t + 1] = FF.PAYLOAD_FIELD; t[#t + 1] = payload
  end
  C("HSET", ck, unpack(t))
  FF.ev_created(B, e, c, flow and flow.id, now)
  if blocked ~= nil then
    C("ZADD", K.lane(B, lane, "blocked"), ts, e)
  elseif delayed then
    C("ZADD", K.lane(B, lane, "delayed"), sdelay, e)
    FF.add_due(B, lane, sdelay)
  else
    FF.make_eligible(B, e, c)
  end
  if not inline and payload ~= nil and payload ~= "" then FF.put_blob(K.ex(B, e, "payload"), payload) end
  if policy_json ~= nil and policy_json ~= "" then C("SET", K.ex(B, e, "policy"), policy_json) end
  if type(a.tags) == "table" then
    local tt = {}
    for k, v in pairs(a.tags) do tt[#tt + 1] = k; tt[#tt + 1] = FF.str(v) end
    FF.hset(K.ex(B, e, "tags"), tt)
  end
  if deadline ~= nil then
    C("ZADD", K.idx(B, "deadline"), FF.s(deadline), e)
  end
  FF.ids_add(B, e)
  FF.lane_move(B, e, c, "", pub)
  -- FF.lanes_seen (partition base -> lane -> true): lanes a batch call has registered already
  local seen = FF.lanes_seen
  local here = seen and seen[B]
  if here == nil or not here[lane] then
    C("SADD", K.idx(B, "lanes"), lane)
    if seen ~= nil then
      if here == nil then
        here = {}
        seen[B] = here
      end
      here[lane] = true
    end
  end
  if idem_key ~= nil then
    FF.ttl_set(idem_key, e, math.max(1, FF.num(a.dedup_ttl_ms, 86400000)), now)
  end
  return "OK", e, c.public_state
end

-- ff_create (createExecution): one execution (FF.create_one).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, namespace, lane_id, execution_kind, priority,
--           creator_identity, payload_encoding, delay_until?, deadline_at?, deadline_ms?,
--           attempt_timeout_ms?, max_signals?, stream_maxlen?, retention_ms?, idempotency_key?,
--           dedup_ttl_ms?, tags, required_capabilities, trace?}, [3] the payload (or staged),
--           [4] the policy JSON
--   reply:  {1, "OK", wake, execution id, public state} | {1, "DUPLICATE", wake, the existing id}
--   errors: invalid_input
FF.fn.create = function(B, a, now, payload, policy_json)
  local bad = FF.need("create", a, FF.CREATE_ARGS)
  if bad then return bad end
  return FF.ok(FF.create_one(B, a, now, payload, policy_json))
end

-- ff_create_many (createExecutions on a cluster): a batch of executions of this partition, each
-- created exactly as ff_create does (each one atomically, in order, as if by consecutive calls).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {items: ff_create's arguments each, or fi, fn: the items in ARGV
--           (FF.create_items_of; their partition is this one)}, [3 + 2(i-1)] / [4 + 2(i-1)] the
--           payload (or staged) / policy of item i, [fi ..] the items' fields
--   reply:  {1, "OK", wake, then per item: status, id, public state ("" for a DUPLICATE)}
--   errors: invalid_input (any item, before the first write)
FF.fn.create_many = function(B, a, now, _, _, argv)
  local items, bad = FF.create_items_of("create_many", a, argv)
  if items == nil then return bad end
  bad = FF.need_each("create_many", items, FF.CREATE_ARGS)
  if bad then return bad end
  local r = { 1, "OK", "" }
  FF.lanes_seen = {}
  FF.id_expect[B] = #items
  for i = 1, #items do
    local st, f1, f2 = FF.create_one(B, items[i], now, argv[1 + 2 * i], argv[2 + 2 * i])
    r[#r + 1] = st
    r[#r + 1] = f1
    r[#r + 1] = f2 or ""
  end
  r[3] = FF.wake_json()
  return r
end

-- The place of a call's items in ARGV: a.fn items of w entries each from ARGV[a.fi] on, after
-- ARGV[1] (now) and ARGV[2] (the JSON arguments). a.fi and a.fn, or nil and the refusal when they
-- do not place the items inside ARGV (checked before anything is written).
local function argv_items(name, a, argv, w)
  local at, n = a.fi, a.fn
  if type(at) ~= "number" or type(n) ~= "number" or at ~= math.floor(at) or n ~= math.floor(n) or at < 3 or n < 0 or
      n > 100000 or (n > 0 and type(argv[at + w * n - 1]) ~= "string") then
    return nil, FF.err("invalid_input", name .. ": items")
  end
  return at, n
end

-- The items of ff_create_across: a.items, a list of JSON objects (ff_create's arguments +
-- partition each), or, when a.fi is given, a.fn items of FF.CREATE_ITEM_WIDTH ARGV entries each
-- from ARGV[a.fi] on: execution id, namespace, lane, kind, priority, creator identity, payload
-- encoding, required capabilities, partition, and "" or the JSON object of its other arguments
-- (CREATE_OPTIONAL's, deadline_at / deadline_ms, idempotency_key / dedup_ttl_ms, tags); each made
-- the table a JSON item decodes to (as FF.complete_items_of). nil and the refusal when a.fi / a.fn
-- do not place the items inside ARGV or an item's other arguments are no JSON object.
FF.CREATE_ITEM_WIDTH = 10
function FF.create_items_of(name, a, argv)
  if a.fi == nil then
    if type(a.items) ~= "table" then return nil, FF.err("invalid_input", name .. ": items") end
    return a.items
  end
  local w = FF.CREATE_ITEM_WIDTH
  local at, n = argv_items(name, a, argv, w)
  if at == nil then return nil, n end
  local items = {}
  for i = 1, n do
    local k = at + w * (i - 1)
    local it = {
      execution_id = argv[k], namespace = argv[k + 1], lane_id = argv[k + 2], execution_kind = argv[k + 3],
      priority = argv[k + 4], creator_identity = argv[k + 5], payload_encoding = argv[k + 6],
      required_capabilities = argv[k + 7], partition = FF.tonum(argv[k + 8])
    }
    local more = argv[k + 9]
    if more ~= "" then
      local m = FF.decode(more)
      if m == nil then return nil, FF.err("invalid_input", name .. ": item " .. FF.s(i)) end
      for f, v in pairs(m) do
        if it[f] == nil then it[f] = v end
      end
    end
    items[i] = it
  end
  return items
end

-- ff_create_across (createExecutions on a standalone server): a batch over any partitions in one
-- call, each item created exactly as ff_create on its partition (a.prefix .. ":{fp:" ..
-- item.partition .. "}"), in order. The wakes go to the claim hints at the end of the call (the
-- best score per partition and lane), and the lanes to the lane registry.
--   KEYS:   [1] the slot anchor `<prefix>:lanes` (nothing is stored there)
--   ARGV:   [1] now, [2] {prefix, partitions, and either items: ff_create's arguments + partition
--           each, or fi, fn: the items in ARGV (FF.create_items_of)}, [3 + 2(i-1)] / [4 + 2(i-1)]
--           the payload (or staged) / policy of item i, [fi ..] the items' fields
--   reply:  as ff_create_many's, wake ""
--   errors: invalid_input (any item or its partition, before the first write)
FF.fn.create_across = function(_, a, now, _, _, argv)
  local items, bad = FF.create_items_of("create_across", a, argv)
  if items == nil then return bad end
  local prefix = a.prefix
  bad = FF.need("create_across", a, { "prefix", "s" }) or FF.need_each("create_across", items, FF.CREATE_ARGS)
  if bad then return bad end
  bad = FF.bad_partition(items, FF.num(a.partitions))
  if bad then return FF.err("invalid_input", "create_across: partition of item " .. FF.s(bad)) end
  local r = { 1, "OK", "" }
  -- per partition: its wakes (FF.add_wake keeps the best score per lane)
  local bases, wakes = FF.partition_bases(prefix), {}
  FF.lanes_seen = {}
  -- (the ids each partition's id index is to take: FF.id_expect, ids.lua)
  local expect = FF.id_expect
  for i = 1, #items do
    local B = bases[items[i].partition]
    expect[B] = (expect[B] or 0) + 1
  end
  for i = 1, #items do
    local it = items[i]
    local p = it.partition
    local w = wakes[p]
    if w == nil then
      w = {}
      wakes[p] = w
    end
    FF.wake = w
    local st, f1, f2 = FF.create_one(bases[p], it, now, argv[1 + 2 * i], argv[2 + 2 * i])
    r[#r + 1] = st
    r[#r + 1] = f1
    r[#r + 1] = f2 or ""
  end
  FF.begin()
  local registered = {}
  for p, best in pairs(wakes) do
    for lane, score in pairs(best) do
      if not registered[lane] then
        C("ZADD", prefix .. ":lane-index", 0, lane)
        registered[lane] = true
      end
      C("ZADD", prefix .. ":hint:" .. lane, "LT", FF.s(score), FF.s(p))
    end
  end
  return r
end

-- --- renew / progress ----------------------------------------------------------------------
-- ff_renew: the lease holder extends its lease to now + lease_ttl_ms.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {the lease fence, lease_ttl_ms}
--   reply:  {1, "OK", wake, the new lease expiry}
--   errors: invalid_input, execution_not_found, the ladder's (an expired lease is marked; a set
--           lease_revoked_at counts as revoked; the attempt index is compared)
FF.fn.renew = function(B, a, now)
  local bad = FF.need("renew", a, { "execution_id", "s", "lease_ttl_ms", "n" })
  if bad then return bad end
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  bad = FF.ladder(B, e, c, now, a, { mark = true, attempt = true, index = true, revoked_at = true })
  if bad then return bad end
  local exp = now + FF.num(a.lease_ttl_ms)
  FF.cset(B, e, c, { "lease_expires_at", FF.s(exp), "lease_last_renewed_at", FF.s(now),
    "last_mutation_at", FF.s(now) })
  FF.zadd(K.idx(B, "lease_expiry"), FF.s(exp), e)
  return FF.ok("OK", FF.s(exp))
end

-- ff_progress: the lease holder reports its progress on the core (and its Progress event).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {the lease fence, percent?, message?}
--   reply:  {1, "OK", wake}
--   errors: execution_not_found, the ladder's (an expired lease is refused, not marked)
FF.fn.progress = function(B, a, now)
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  local bad = FF.ladder(B, e, c, now, a, {})
  if bad then return bad end
  local t = { "progress_updated_at", FF.s(now), "last_mutation_at", FF.s(now) }
  if a.percent ~= nil and a.percent ~= cjson.null then
    c.progress_pct = FF.str(a.percent)
    t[#t + 1] = "progress_pct"; t[#t + 1] = c.progress_pct
  end
  if a.message ~= nil and a.message ~= cjson.null then
    c.progress_message = FF.str(a.message)
    t[#t + 1] = "progress_message"; t[#t + 1] = c.progress_message
  end
  FF.cset(B, e, c, t)
  FF.ev_progress(B, e, c, now)
  return FF.ok("OK")
end

-- --- complete ---------------------------------------------------------------------------------
-- ff_complete: ends the run and the attempt with success (the run stays in the core: history.lua),
-- stores the result, makes the execution terminal and resolves a flow member's dependents.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] the lease fence, [3] the result (or staged; optional)
--   reply:  {1, "OK", wake}
--   errors: execution_not_found, the ladder's
local COMPLETE_OPTS = { clears = FF.COMPLETE_CLEARS }
FF.fn.complete = function(B, a, now, result) return FF.complete_one(B, a, now, result, false) end

-- ff_complete's work (its reply); `plain`: a core in the plain shape is completed by
-- FF.complete_plain (the batches of completions, FF.complete_items), any other by the general
-- path from the same read; `read`: the core's HGETALL reply when FF.complete_plain declined it
-- already (the general path then answers from it).
function FF.complete_one(B, a, now, result, plain, read)
  local e, c, bad
  if plain then
    e = a.execution_id
    local r = read or C("HGETALL", K.core(B, e))
    if read == nil and FF.complete_plain(B, a, now, result, r) then return FF.ok("OK") end
    c = FF.core_of(r)
    if c == nil then return FF.err("execution_not_found") end
    bad = FF.ladder(B, e, c, now, a, FF.LADDER_WRITE)
  else
    e, c, bad = FF.held(B, a, now)
  end
  if bad then return bad end
  -- (the run stays in the core, not in the history list: FF.run_kept)
  local kept = FF.run_kept(B, e, c)
  FF.end_attempt(B, e, c, "attempt_success", now)
  if type(result) == "string" and result ~= "" and #result <= FF.INLINE_PAYLOAD then
    -- (a small result: a field of the terminal write, FF.RESULT_FIELD)
    kept[#kept + 1], kept[#kept + 2] = FF.RESULT_FIELD, result
  elseif result ~= nil and result ~= "" then
    FF.put_blob(K.ex(B, e, "result"), result)
  end
  FF.to_terminal(B, e, c, "success", now, kept, COMPLETE_OPTS)
  -- (the table as FF.core reads it back: the run under last_run_*, no lease fields)
  local mt = getmetatable(c)
  setmetatable(c, nil)
  FF.run_of_completion(c)
  setmetatable(c, mt)
  FF.drain(B, now)
  return FF.ok("OK")
end

-- The items of ff_complete_many / ff_complete_claim: a.items, a list of JSON objects (the lease
-- fence + partition + blob? each), or, when a.fi is given, a.fn items of FF.COMPLETE_ITEM_WIDTH
-- ARGV entries each from ARGV[a.fi] on: execution id, attempt index, attempt id, lease id, lease
-- epoch, partition, blob ("" for none); each made the table a JSON item decodes to (the fence's
-- numbers as strings, which the ladder compares as such). Decoding an object of JSON cost the
-- server about 8 000 instructions per item; strings it is handed cost it only their creation.
-- nil and the refusal when a.fi / a.fn do not place the items inside ARGV (nothing is written).
FF.COMPLETE_ITEM_WIDTH = 7
function FF.complete_items_of(name, a, argv)
  if a.fi == nil then
    if type(a.items) ~= "table" then return nil, FF.err("invalid_input", name .. ": items") end
    return a.items
  end
  local w = FF.COMPLETE_ITEM_WIDTH
  local at, n = argv_items(name, a, argv, w)
  if at == nil then return nil, n end
  local items = {}
  for i = 1, n do
    local k = at + w * (i - 1)
    items[i] = {
      execution_id = argv[k], attempt_index = argv[k + 1], attempt_id = argv[k + 2], lease_id = argv[k + 3],
      lease_epoch = argv[k + 4], partition = FF.tonum(argv[k + 5]), blob = tonumber(argv[k + 6])
    }
  end
  return items
end

-- ff_complete_many (completeMany on a standalone server): each item exactly as ff_complete on its
-- partition (a.prefix .. ":{fp:" .. item.partition .. "}"), the wakes of each applied to the
-- claim hints at once, as ff_claim_lane does. A refused item does not stop the others.
--   KEYS:   [1] the slot anchor `<prefix>:lanes` (nothing is stored there)
--   ARGV:   [1] now, [2] {prefix, partitions, and either items: the lease fence + partition +
--           blob? each, or fi, fn: the items in ARGV (FF.complete_items_of)}, [2 + blob] the result
--           of an item that has one (or staged), [fi ..] the items' fields
--   reply:  {1, "OK", "", one field per item: "" when it completed, else its refusal as JSON}
--   errors: invalid_input (items, prefix, an item's partition; before the first write)
FF.fn.complete_many = function(_, a, now, _, _, argv)
  local items = FF.complete_items_of("complete_many", a, argv)
  if type(items) ~= "table" or #items == 0 then return FF.err("invalid_input", "complete_many: items") end
  local bad = FF.need("complete_many", a, { "prefix", "s" }) or
    FF.need_each("complete_many", items, { "execution_id", "s" })
  if bad then return bad end
  bad = FF.bad_partition(items, FF.num(a.partitions))
  if bad then return FF.err("invalid_input", "complete_many: partition of item " .. FF.s(bad)) end
  local out = { 1, "OK", "" }
  local done = FF.complete_items(items, a.prefix, now, argv)
  for i = 1, #done do out[#out + 1] = done[i] end
  return out
end

-- The completions of ff_complete_many and ff_complete_claim (their items checked): one field per
-- item, "" when it completed, else its refusal as JSON.
function FF.complete_items(items, prefix, now, argv)
  local out = {}
  local bases = FF.partition_bases(prefix)
  for i = 1, #items do
    local it = items[i]
    local p = tonumber(it.partition)
    local result = nil
    if it.blob ~= nil and it.blob ~= cjson.null then result = argv[2 + FF.num(it.blob)] end
    FF.begin()
    -- (a core in the plain shape completed here, as FF.complete_one would, without its reply)
    local B = bases[p]
    local ck = K.core(B, it.execution_id)
    local raw = C("HGETALL", ck)
    if FF.complete_plain(B, it, now, result, raw, ck) then
      FF.apply_wakes(prefix, p)
      out[#out + 1] = ""
    else
      local r = FF.complete_one(B, it, now, result, true, raw)
      FF.apply_wakes(prefix, p)
      if r[1] == 1 then out[#out + 1] = "" else out[#out + 1] = cjson.encode(r) end
    end
  end
  return out
end

-- --- fail ----------------------------------------------------------------------------------------
-- The backoff (ms) before retry number retry_count + 1 under the retry policy `rp`: its fixed or
-- exponential (capped) backoff; without one, 1 s doubling up to 60 s.
function FF.retry_delay(rp, retry_count)
  local b = rp.backoff
  if type(b) ~= "table" then return math.min(1000 * math.pow(2, retry_count), 60000) end
  if b.type == "fixed" then return FF.num(b.delay_ms, 1000) end
  if b.type == "exponential" then
    local initial = FF.num(b.initial_delay_ms, 1000)
    local mult = FF.num(b.multiplier, 2)
    local max = FF.num(b.max_delay_ms, 60000)
    -- (no initial delay stays none, whatever the multiplier: 0 * inf would be nan)
    if initial == 0 then return 0 end
    return math.min(math.floor(initial * math.pow(mult, retry_count)), max)
  end
  return 1000
end

-- ff_fail: records the failure, ends the run and the attempt, then schedules a retry or makes the
-- execution terminal (failed).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {the lease fence, reason, category, classification}
--   reply:  {1, "RETRY", wake, delay until} | {1, "TERMINAL", wake}
--   errors: execution_not_found, the ladder's
FF.fn.fail = function(B, a, now)
  local e, c, bad = FF.held(B, a, now)
  if bad then return bad end
  local reason = FF.str(a.reason)
  local category = FF.str(a.category)
  FF.record_failure(B, e, reason, FF.str(a.classification), category, now)
  FF.end_attempt(B, e, c, "attempt_failure", now)
  local p = FF.policy(B, e)
  local rp = p.retry_policy
  local retry = false
  local rc = FF.num(c.retry_count)
  if type(rp) == "table" then
    local max = FF.num(rp.max_retries, 3)
    retry = rc < max
    if a.classification == "Permanent" or a.classification == "Cancelled" then retry = false end
    local cats = rp.retryable_categories
    if retry and type(cats) == "table" and #cats > 0 then
      local listed = false
      for _, cat in ipairs(cats) do if cat == category then listed = true end end
      retry = listed
    end
  end
  if retry then
    FF.run_end(B, e, c, "retry_scheduled", reason, now)
    local delay_until = now + FF.retry_delay(rp, rc)
    local idx = FF.str(c.current_attempt_index)
    FF.release_until(B, e, c, delay_until, "waiting_for_retry_backoff",
      "retry backoff until " .. FF.s(delay_until) .. " (attempt " .. idx .. " failed: " .. reason .. ")",
      "pending_retry_attempt", {
        "pending_retry_reason", reason, "pending_previous_attempt_index", idx,
        "retry_count", FF.s(rc + 1), "current_attempt_id", "", "failure_reason", reason
      }, now)
    return FF.ok("RETRY", FF.s(delay_until))
  end
  FF.run_end(B, e, c, "failed", reason, now)
  FF.fail_terminal(B, e, c, reason, now)
  FF.drain(B, now)
  return FF.ok("TERMINAL")
end

-- --- cancel ----------------------------------------------------------------------------------------
-- ff_cancel (docs/design/executions.md#cancel): a non-terminal execution becomes cancelled; its
-- lease holder is told. On an active execution the worker's call (mode "worker") must hold the
-- lease; an operator's checks the lease only when it names one, never with source
-- "operator_override". A flow
-- cascade (source "flow_cascade") does not resolve the member's dependents.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, reason, source, mode: "worker" | "operator",
--           lease_id?, lease_epoch? (the worker's fence)}
--   reply:  {1, "OK", wake}
--   errors: execution_not_found, execution_not_active (terminal, FF.not_active), lease_revoked,
--           stale_lease
FF.fn.cancel = function(B, a, now)
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  if c.lifecycle_phase == "terminal" then return FF.not_active(c) end
  local source = FF.str(a.source)
  local worker = a.mode == "worker"
  if c.lifecycle_phase == "active" and (worker or source ~= "operator_override") then
    if c.ownership_state == "lease_revoked" then return FF.err("lease_revoked") end
    local lid = FF.str(a.lease_id)
    if worker or lid ~= "" then
      if lid ~= c.current_lease_id or FF.str(a.lease_epoch) ~= c.current_lease_epoch then
        return FF.err("stale_lease")
      end
    end
  end
  local by = source
  if worker then by = "worker" elseif by == "" then by = e end
  FF.cancel_exec(B, e, c, FF.str(a.reason), source, by, now, { no_resolve = source == "flow_cascade" })
  FF.drain(B, now)
  return FF.ok("OK")
end

-- --- delay / wait_children ---------------------------------------------------------------------------
-- ff_delay: ends the run, parks the attempt and releases the lease until a.delay_until.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {the lease fence, delay_until}
--   reply:  {1, "OK", wake}
--   errors: execution_not_found, the ladder's
FF.fn.delay = function(B, a, now)
  local e, c, bad = FF.held(B, a, now)
  if bad then return bad end
  local until_ms = FF.num(a.delay_until)
  FF.run_end(B, e, c, "delayed", nil, now)
  FF.release_until(B, e, c, until_ms, "waiting_for_delay", "delayed until " .. FF.s(until_ms), "attempt_interrupted",
    nil, now)
  return FF.ok("OK")
end

-- ff_wait_children: ends the run, parks the attempt and releases the lease until the execution's
-- dependencies resolve (eligible at once when nothing blocks it).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] the lease fence
--   reply:  {1, "OK", wake}
--   errors: execution_not_found, the ladder's
FF.fn.wait_children = function(B, a, now)
  local e, c, bad = FF.held(B, a, now)
  if bad then return bad end
  FF.run_end(B, e, c, "waiting_children", nil, now)
  FF.drop_lease(B, e, c)
  if FF.deps_ready(B, e, c) then
    -- nothing left to wait for: eligible again at once (resumed on the same attempt), one change
    FF.state(B, e, c, "runnable", "unowned", "eligible_now", "waiting_for_worker", "", "none", "attempt_interrupted",
      now, FF.LEASE_CLEAR)
    FF.make_eligible(B, e, c)
  else
    FF.state(B, e, c, "runnable", "unowned", "blocked_by_dependencies", "waiting_for_children",
      "waiting for child executions to complete", "none", "attempt_interrupted", now, FF.LEASE_CLEAR)
    C("ZADD", K.lane(B, c.lane_id, "blocked"), c.created_at, e)
  end
  return FF.ok("OK")
end
