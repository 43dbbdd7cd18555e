-- ===========================================================================
-- register.lua: every operation becomes one function "ff_<name>".
-- (At load time only register_function exists: no pairs/ipairs, hence the lists.)
-- ===========================================================================

local WRITES = {
  "create", "create_many", "create_claim", "claim", "issue_grant", "claim_resumed", "renew", "progress", "complete",
  "fail", "cancel", "delay", "wait_children", "revoke", "change_priority", "replay",
  "create_waitpoint", "suspend", "deliver_signal", "append_frame",
  "create_flow", "create_flow_graph", "extend_flow", "seal_flow", "add_to_flow", "set_edge_group_policy", "stage_edge", "apply_dependency",
  "cancel_flow", "ack_cancel_member",
  "create_budget", "report_usage", "reset_budget", "create_quota",
  "hmac_seed", "hmac_rotate", "reserve_id", "release_id",
  "pass_expire_leases", "pass_promote_delayed", "pass_expire_attempts", "pass_expire_executions",
  "pass_expire_suspensions", "pass_expire_pending_waitpoints", "pass_reconcile_dependencies",
  "pass_drain_cancel_backlog", "pass_reset_budgets", "pass_trim_retention", "promote_lane"
}

local READS = {
  "read_execution", "lane_head", "describe_flow", "flow_state", "list_edges", "describe_edge", "list_flows",
  "list_suspended", "list_executions", "list_pending_waitpoints", "observe_signals", "read_stream", "read_summary",
  "budget_status", "pass_due", "read_events", "read_lane_events"
}

-- On a standalone server the layer passes `_hint = {prefix, partition}`: the work a call made
-- claimable goes to the lanes' claim hints inside the call, so no claim can see the new state
-- before its hint, and the lanes' idle workers are woken in the same call (on a cluster the hint
-- keys live in other slots and the layer writes them, then wakes the workers). See FF.call_end.
local NO_CLUSTER = { claim_lane = true, complete_many = true, complete_claim = true, create_across = true }

-- How the running call ends (call_tail): its partition base, its `_hint`, the prefix FF.call_end
-- publishes with, its `now` and whether that is the server's clock.
local tail = {}

-- The end of a call: a standalone write's wakes go to the claim hints, the call's events are
-- written (FF.ev_flush), and the call's revocations, due hints and wake-ups are published
-- (FF.call_end).
local function call_tail()
  FF.zsync()
  FF.lane_counts_flush()
  if tail.hint ~= nil then FF.apply_wakes(tail.hint[1], tail.hint[2]) end
  -- the events' ids: the server's clock, read again only when `now` is the layer's
  FF.ev_flush(tail.now, tail.server_now)
  FF.call_end(tail.B, tail.prefix)
end

-- A function that is two calls in one (ff_create_claim) ends its first operation here as a call
-- of its own ends (claim hints, events, wake-ups), and its second one begins as a call of its own
-- would: nothing of the first folds into it. `prefix`: what the second one publishes with, as
-- ff_claim_lane's (a standalone server) or nil (a cluster's single-partition call); it writes
-- its claim hints itself or reports them (FF.hinted false).
function FF.call_next(prefix)
  call_tail()
  FF.call_begin()
  FF.begin()
  tail.hint, tail.prefix = nil, prefix
  FF.hinted = false
end

-- The callback of operation `name` (the calling convention of flowfabric.lua): the per-call
-- state begins, ARGV[2] is decoded and staged blobs are put in place, FF.fn[name] runs on KEYS[1],
-- the staged blobs it did not take are deleted, and the call ends (call_tail).
local function callback_of(name)
  return function(keys, args)
    FF.call_begin()
    FF.begin()
    FF.KEYS = keys
    local now = FF.now(args[1])
    local a = FF.args(args[2])
    FF.hinted = a._hint ~= nil
    -- standalone calls: a single-partition write gets `_hint`, the calls over several partitions `prefix`
    tail.B, tail.hint, tail.now, tail.server_now = keys[1], a._hint, now, args[1] == nil or args[1] == ""
    tail.prefix = (a._hint ~= nil and a._hint[1]) or NO_CLUSTER[name] and a.prefix or nil
    local staged = a.staged
    if staged ~= nil then
      local bad = FF.take_staged(keys[1], args, staged)
      if bad then return bad end
    end
    local r = FF.fn[name](keys[1], a, now, args[3], args[4], args)
    if staged ~= nil then FF.drop_staged(staged) end
    call_tail()
    return r
  end
end

for i = 1, #WRITES do
  redis.register_function { function_name = "ff_" .. WRITES[i], callback = callback_of(WRITES[i]) }
end
for i = 1, #READS do
  redis.register_function { function_name = "ff_" .. READS[i], callback = callback_of(READS[i]), flags = { "no-writes" } }
end

-- standalone servers only (they reach several partitions)
redis.register_function { function_name = "ff_claim_lane", callback = callback_of("claim_lane"), flags = { "no-cluster" } }
redis.register_function { function_name = "ff_complete_many", callback = callback_of("complete_many"), flags = { "no-cluster" } }
redis.register_function { function_name = "ff_complete_claim", callback = callback_of("complete_claim"), flags = { "no-cluster" } }
redis.register_function { function_name = "ff_create_across", callback = callback_of("create_across"), flags = { "no-cluster" } }

-- reads of several partitions: on a standalone server every partition, on a cluster the partitions
-- whose slots one node serves (a key of a slot served elsewhere fails the call)
redis.register_function {
  function_name = "ff_lane_page", callback = callback_of("lane_page"), flags = { "no-writes", "allow-cross-slot-keys" }
}
redis.register_function {
  function_name = "ff_pass_due_across", callback = callback_of("pass_due_across"),
  flags = { "no-writes", "allow-cross-slot-keys" }
}
redis.register_function {
  function_name = "ff_lane_counts", callback = callback_of("lane_counts"), flags = { "no-writes", "allow-cross-slot-keys" }
}
redis.register_function {
  function_name = "ff_read_lane_events_across", callback = callback_of("read_lane_events_across"),
  flags = { "no-writes", "allow-cross-slot-keys" }
}

-- ff_version: the loaded library's version, FF.VERSION .. "+" .. the SHA-1 of its source.
--   KEYS: none    ARGV: none    reply: the version string (not an envelope)    errors: -
redis.register_function {
  function_name = "ff_version",
  callback = function() return FF.VERSION .. "+" .. FF.SOURCE_HASH end,
  flags = { "no-writes" }
}
