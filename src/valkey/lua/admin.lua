-- ===========================================================================
-- admin.lua: operator control of one execution: revoke its lease, change its priority,
-- replay it (docs/design/executions.md)
-- ===========================================================================

-- --- revoke_lease -----------------------------------------------------------------------------------------
-- ff_revoke: takes the lease away from its worker (the run ends lease_revoked); the execution
-- becomes a reclaim candidate.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, expected_lease_id?, reason}
--   reply:  {1, "OK", wake, lease id, lease epoch} | {1, "ALREADY", wake, no_active_lease |
--           already_revoked | already_expired}
--   errors: execution_not_found, execution_not_active, no_active_lease, stale_lease
FF.fn.revoke = function(B, a, now)
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  if (c.current_worker_instance_id or "") == "" then return FF.ok("ALREADY", "no_active_lease") end
  if c.lifecycle_phase ~= "active" then return FF.not_active(c) end
  if c.ownership_state == "lease_revoked" then return FF.ok("ALREADY", "already_revoked") end
  if c.ownership_state == "lease_expired_reclaimable" then return FF.ok("ALREADY", "already_expired") end
  if c.ownership_state ~= "leased" then return FF.err("no_active_lease") end
  local expected = FF.str(a.expected_lease_id)
  if expected ~= "" and expected ~= c.current_lease_id then return FF.err("stale_lease") end
  local reason = FF.str(a.reason)
  local lid, epoch = c.current_lease_id, c.current_lease_epoch
  FF.revoked(e, c)
  FF.run_end(B, e, c, "lease_revoked", reason, now)
  FF.state(B, e, c, "active", "lease_revoked", "not_applicable", "waiting_for_worker", "lease revoked: " .. reason,
    "none", "attempt_interrupted", now, { "lease_revoked_at", FF.s(now), "lease_revoke_reason", reason })
  FF.zrem(K.idx(B, "lease_expiry"), e)
  local score = FF.pscore(c.priority, c.created_at)
  C("ZADD", K.lane(B, c.lane_id, "reclaim"), FF.s(score), e)
  FF.add_wake(c.lane_id, score)
  return FF.ok("OK", lid, epoch)
end

-- --- change_priority --------------------------------------------------------------------------------------
-- ff_change_priority: an eligible execution takes a new priority (the layer clamps it to 0..9000)
-- and its place in the lane's eligible index.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, priority}
--   reply:  {1, "OK", wake}
--   errors: execution_not_found, execution_not_eligible (not runnable and eligible now)
FF.fn.change_priority = function(B, a, now)
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  if c.lifecycle_phase ~= "runnable" or c.eligibility_state ~= "eligible_now" then
    return FF.err("execution_not_eligible")
  end
  local p = FF.num(a.priority)
  -- (its entry leaves the eligible index at its old score: a bucket is found by the score)
  FF.drop_eligible(B, c.lane_id, e, c)
  FF.cset(B, e, c, { "priority", FF.s(p), "last_mutation_at", FF.s(now) })
  FF.make_eligible(B, e, c)
  return FF.ok("OK")
end

-- --- replay ---------------------------------------------------------------------------------------------------
-- ff_replay (docs/design/executions.md): a terminal execution becomes runnable again, its next
-- attempt of type replay; the stored result is dropped, the run a completion kept in the core
-- joins the history list (history.lua). A flow member counts as open again; a
-- skipped member's impossible dependencies become unsatisfied again, its join group starts
-- over (failed/skipped 0, pending), and it waits blocked on its dependencies (even with 0
-- unresolved: a join policy settles it again), as memory and Postgres.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id}
--   reply:  {1, "OK", wake, the public state after the replay}
--   errors: execution_not_found, execution_not_terminal, max_replays_exhausted (policy
--           max_replay_count, default 10)
FF.fn.replay = function(B, a, now)
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  if c.lifecycle_phase ~= "terminal" then return FF.err("execution_not_terminal") end
  local p = FF.policy(B, e)
  local max = FF.num(p.max_replay_count, 10)
  local rc = FF.num(c.replay_count)
  if rc >= max then return FF.err("max_replays_exhausted") end
  local fid = c.flow_id or ""
  local lane = c.lane_id
  -- the result belongs to the replaced run (as memory and Postgres): its key, or its core field in
  -- the state write below
  C("DEL", K.ex(B, e, "result"))
  local common = {
    "replay_count", FF.s(rc + 1), "completed_at", "", FF.RESULT_FIELD, "", "pending_replay_reason", "replay",
    "pending_previous_attempt_index", FF.str(c.current_attempt_index), "lease_expired_at", "",
    "lease_revoked_at", "", "lease_revoke_reason", ""
  }
  -- the run a completion kept in the core joins the history list
  local unkeep = FF.run_unkeep(B, e, c)
  for i = 1, #unkeep do common[#common + 1] = unkeep[i] end
  if fid ~= "" then FF.flow_member_replayed(B, fid, e, c.terminal_outcome, now) end
  if c.terminal_outcome == "skipped" and fid ~= "" then
    local n = FF.reset_impossible_deps(B, fid, e, now)
    FF.state(B, e, c, "runnable", "unowned", "blocked_by_dependencies", "waiting_for_children",
      n .. " dep(s) unresolved", "none", "pending_replay_attempt", now, common)
    C("ZADD", K.lane(B, lane, "blocked"), c.created_at, e)
    return FF.ok("OK", c.public_state)
  end
  FF.state(B, e, c, "runnable", "unowned", "eligible_now", "waiting_for_worker", "", "none",
    "pending_replay_attempt", now, common)
  FF.make_eligible(B, e, c)
  return FF.ok("OK", c.public_state)
end
