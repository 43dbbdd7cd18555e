-- ===========================================================================
-- flow.lua: flows, edges, edge groups, dependency resolution and flow
-- cancellation with its cascade (docs/design/flows.md). A flow and its members share {fp:N}.
-- ===========================================================================

-- The flow record stores public_flow_state open, cancelling or cancelled (a record written by an
-- older library may say completed / failed: that reads as open). The public state of an open flow
-- is derived from its member counters (docs/guide.md, "Flows that grow while they run"): open
-- without members (completed when sealed), running while a member is not terminal, then failed
-- when a member failed, was cancelled or expired, else completed.
function FF.flow_state(f)
  local st = f.public_flow_state
  if st == "cancelling" or st == "cancelled" then return st end
  if FF.num(f.node_count) == 0 then
    if f.sealed == "1" then return "completed" end
    return "open"
  end
  if FF.num(f.open_members) > 0 then return "running" end
  if FF.num(f.bad_members) > 0 then return "failed" end
  return "completed"
end

-- The error code of a flow that takes no new member or edge, or nil.
function FF.flow_refusal(f)
  local st = f.public_flow_state
  if st == "cancelling" or st == "cancelled" then return "flow_already_terminal" end
  if f.sealed == "1" then return "flow_sealed" end
  return nil
end

-- Cancelled, cancelling, or sealed with every member terminal: nothing about the flow can change.
function FF.flow_final(f)
  local st = FF.flow_state(f)
  if st == "cancelling" or st == "cancelled" then return true end
  return f.sealed == "1" and (st == "completed" or st == "failed")
end

-- The per-flow budgets (Limits.flowMembers, Limits.flowEdges, docs/limits.md), passed by the layer
-- as a.members_max / a.edges_max (absent: no budget). A call that would take the flow past one is
-- refused before its first write; a flow already past one (grown before the budget existed) still
-- reads, cancels and takes calls that add nothing.
function FF.flow_over(op, count, adding, max, what, limit)
  if max == nil or max == "" or adding == 0 then return nil end
  if FF.num(count) + adding > FF.num(max) then
    return FF.err("limit_exceeded", op .. ": " .. what .. ": more than " .. FF.s(FF.num(max)) .. " entries (Limits." .. limit .. ")")
  end
  return nil
end

-- A member's join group was written: the flow's set of members with a group (`:groups`) names it,
-- so describe_flow reads the groups only, not every member. A flow whose record has no `gs` was
-- created before the set was kept: describe_flow walks its members (reads.lua).
function FF.group_added(B, fid, child)
  C("SADD", K.fx(B, fid, "groups"), child)
end

-- ff_create_flow: a new flow, open (or sealed at once), without members.
--   KEYS:   [1] the partition base (the flow's)
--   ARGV:   [1] now, [2] {flow_id, flow_kind, namespace, sealed?}
--   reply:  {1, "OK" | "ALREADY", wake, flow id}
--   errors: -
FF.fn.create_flow = function(B, a, now)
  local fid = a.flow_id
  local fk = K.flow(B, fid)
  if C("EXISTS", fk) == 1 then return FF.ok("ALREADY", fid) end
  C("HSET", fk, "flow_id", fid, "flow_kind", FF.str(a.flow_kind), "namespace", FF.str(a.namespace),
    "graph_revision", "0", "node_count", "0", "edge_count", "0", "public_flow_state", "open",
    "created_at", FF.s(now), "last_mutation_at", FF.s(now), "gs", "1")
  -- gs: its members with a join group are kept in `:groups` (FF.group_added)
  -- es: the public state its events last reported (FF.ev_flow_note); none yet: its state now
  if a.sealed == true then C("HSET", fk, "sealed", "1", "es", "completed") else C("HSET", fk, "es", "open") end
  C("ZADD", K.idx(B, "flows"), 0, fid)
  return FF.ok("OK", fid)
end

-- ff_seal_flow: the flow takes no new member or edge.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id}
--   reply:  {1, "OK" | "ALREADY", wake, the flow's public state}
--   errors: flow_not_found, flow_already_terminal (cancelling or cancelled)
FF.fn.seal_flow = function(B, a, now)
  local fk = K.flow(B, a.flow_id)
  local f = FF.hmap(fk)
  if f == nil then return FF.err("flow_not_found") end
  local st = f.public_flow_state
  if st == "cancelling" or st == "cancelled" then return FF.err("flow_already_terminal") end
  if f.sealed == "1" then return FF.ok("ALREADY", FF.flow_state(f)) end
  C("HSET", fk, "sealed", "1", "last_mutation_at", FF.s(now))
  f.sealed = "1"
  FF.ev_flow_note(B, a.flow_id, now)
  return FF.ok("OK", FF.flow_state(f))
end

-- ff_add_to_flow (addExecutionToFlow): an execution of this partition joins the flow.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, execution_id, members_max?}
--   reply:  {1, "OK", wake, execution id, node count} | {1, "ALREADY", wake, execution id, node count}
--   errors: flow_not_found, flow_already_terminal, flow_sealed, execution_not_found,
--           execution_already_in_flow (another flow's member), limit_exceeded (the flow has
--           members_max members: FF.flow_over)
FF.fn.add_to_flow = function(B, a, now)
  local fid, e = a.flow_id, a.execution_id
  local fk = K.flow(B, fid)
  local f = FF.hmap(fk)
  if f == nil then return FF.err("flow_not_found") end
  local refused = FF.flow_refusal(f)
  if refused then return FF.err(refused) end
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  local mk = K.fx(B, fid, "members")
  local bound = c.flow_id or ""
  if C("SISMEMBER", mk, e) == 1 then
    if bound ~= "" and bound ~= fid then return FF.err("execution_already_in_flow") end
    FF.cset(B, e, c, { "flow_id", fid })
    return FF.ok("ALREADY", e, f.node_count)
  end
  if bound ~= "" and bound ~= fid then return FF.err("execution_already_in_flow") end
  local over = FF.flow_over("add_execution_to_flow", f.node_count, 1, a.members_max, "flow members", "flowMembers")
  if over then return over end
  C("SADD", mk, e)
  FF.flow_member_added(B, fid, c)
  FF.cset(B, e, c, { "flow_id", fid, "last_mutation_at", FF.s(now) })
  local nodes = C("HINCRBY", fk, "node_count", 1)
  C("HINCRBY", fk, "graph_revision", 1)
  C("HSET", fk, "last_mutation_at", FF.s(now))
  FF.ev_flow_note(B, fid, now)
  return FF.ok("OK", e, nodes)
end

-- ff_set_edge_group_policy: the join policy of a child's dependencies (all_of, any_of, quorum k),
-- set before any of them is applied.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, downstream, variant, on_satisfied?, k?}
--   reply:  {1, "OK" | "ALREADY", wake}
--   errors: flow_not_found, execution_not_found, execution_already_in_flow (another flow's
--           member), execution_not_in_flow (no flow's), invalid_input
--           (edge_group_policy_already_fixed: dependencies applied)
FF.fn.set_edge_group_policy = function(B, a, now)
  local fid, child = a.flow_id, a.downstream
  if C("EXISTS", K.flow(B, fid)) == 0 then return FF.err("flow_not_found") end
  local refused = FF.not_member(B, fid, child)
  if refused then return refused end
  local gk = K.fx(B, fid, "grp:" .. child)
  local g = FF.hmap(gk)
  if g ~= nil and FF.num(g.n) > 0 then
    return FF.err("invalid_input", "edge_group_policy_already_fixed: dependencies already staged")
  end
  if g ~= nil and g.policy_variant == a.variant then return FF.ok("ALREADY") end
  C("HSET", gk, "policy_variant", a.variant, "on_satisfied", FF.str(a.on_satisfied), "k", FF.str(a.k),
    "n", "0", "succeeded", "0", "failed", "0", "skipped", "0", "group_state", "pending", "created_at", FF.s(now))
  FF.group_added(B, fid, child)
  return FF.ok("OK")
end

-- nil when `e` is a member of flow `fid`, else the refusal of a join group or a dependency of that
-- flow for it: missing, another flow's member, or no flow's (docs/design/flows.md#applying-an-edge).
function FF.not_member(B, fid, e)
  if C("SISMEMBER", K.fx(B, fid, "members"), e) == 1 then return nil end
  local x = C("HMGET", K.core(B, e), "sv", FF.cf("flow_id"))
  if x[1] == false then return FF.err("execution_not_found") end
  if x[2] ~= false and x[2] ~= "" then return FF.err("execution_already_in_flow") end
  return FF.err("execution_not_in_flow")
end

-- Breadth-first walk from `from` along outgoing edges; true when `target` is reachable
-- (or more than 1000 nodes were visited: rejected conservatively).
function FF.reaches(B, fid, from, target)
  local seen = { [from] = true }
  local queue = { from }
  local visited = 0
  while #queue > 0 do
    local node = table.remove(queue, 1)
    if node == target then return true end
    visited = visited + 1
    if visited > 1000 then return true end
    for _, edge in ipairs(C("SMEMBERS", K.fx(B, fid, "out:" .. node))) do
      local down = C("HGET", K.fx(B, fid, "edge:" .. edge), "downstream_execution_id")
      if down and not seen[down] then
        seen[down] = true
        queue[#queue + 1] = down
      end
    end
  end
  return false
end

-- ff_stage_edge (stageDependencyEdge): a new edge between two members, checked against the
-- expected graph revision and for cycles; the child's side is written by ff_apply_dependency.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, edge_id, upstream, downstream, dependency_kind,
--           data_passing_ref?, expected_graph_revision, created_at?, edges_max?}
--   reply:  {1, "OK", wake, edge id, the new graph revision}
--   errors: self_referencing_edge, flow_not_found, flow_already_terminal, flow_sealed,
--           stale_graph_revision, limit_exceeded (the flow has edges_max edges: FF.flow_over),
--           execution_not_in_flow, cycle_detected, dependency_already_exists
FF.fn.stage_edge = function(B, a, now)
  local fid, edge, up, down = a.flow_id, a.edge_id, a.upstream, a.downstream
  if up == down then return FF.err("self_referencing_edge") end
  local fk = K.flow(B, fid)
  local f = FF.hmap(fk)
  if f == nil then return FF.err("flow_not_found") end
  local refused = FF.flow_refusal(f)
  if refused then return FF.err(refused) end
  if f.graph_revision ~= FF.str(a.expected_graph_revision) then return FF.err("stale_graph_revision") end
  local over = FF.flow_over("stage_dependency_edge", f.edge_count, 1, a.edges_max, "flow edges", "flowEdges")
  if over then return over end
  local mk = K.fx(B, fid, "members")
  if C("SISMEMBER", mk, up) == 0 or C("SISMEMBER", mk, down) == 0 then return FF.err("execution_not_in_flow") end
  if FF.reaches(B, fid, down, up) then return FF.err("cycle_detected") end
  local ek = K.fx(B, fid, "edge:" .. edge)
  if C("EXISTS", ek) == 1 then return FF.err("dependency_already_exists") end
  local created = tonumber(a.created_at or "") or now
  C("HSET", ek, "edge_id", edge, "flow_id", fid, "upstream_execution_id", up, "downstream_execution_id", down,
    "dependency_kind", FF.str(a.dependency_kind), "satisfaction_condition", "all_required",
    "data_passing_ref", FF.str(a.data_passing_ref), "edge_state", "pending", "created_at", FF.s(created),
    "created_by", "engine")
  C("SADD", K.fx(B, fid, "out:" .. up), edge)
  C("SADD", K.fx(B, fid, "in:" .. down), edge)
  local rev = C("HINCRBY", fk, "graph_revision", 1)
  C("HINCRBY", fk, "edge_count", 1)
  C("HSET", fk, "last_mutation_at", FF.s(created))
  return FF.ok("OK", edge, rev)
end

-- A join's group record before any edge is applied, as set_edge_group_policy writes it.
local function write_new_group(B, fid, j, ts)
  C("HSET", K.fx(B, fid, "grp:" .. j.downstream), "policy_variant", j.variant, "on_satisfied", FF.str(j.on_satisfied),
    "k", FF.str(j.k), "n", "0", "succeeded", "0", "failed", "0", "skipped", "0", "group_state", "pending",
    "created_at", ts)
  FF.group_added(B, fid, j.downstream)
end

-- A staged edge (x.edge_id from x.upstream to x.downstream) and the child's unsatisfied
-- dependency record, as stage_edge and FF.apply_dep write them.
local function write_new_edge(B, fid, x, ts)
  local edge, up, down = x.edge_id, x.upstream, x.downstream
  C("HSET", K.fx(B, fid, "edge:" .. edge), "edge_id", edge, "flow_id", fid, "upstream_execution_id", up,
    "downstream_execution_id", down, "dependency_kind", FF.str(x.dependency_kind),
    "satisfaction_condition", "all_required", "data_passing_ref", FF.str(x.data_passing_ref),
    "edge_state", "pending", "created_at", ts, "created_by", "engine")
  C("HSET", K.ex(B, down, "dep:" .. edge), "edge_id", edge, "flow_id", fid, "upstream_execution_id", up,
    "downstream_execution_id", down, "dependency_kind", FF.str(x.dependency_kind), "state", "unsatisfied",
    "data_passing_ref", FF.str(x.data_passing_ref), "last_resolved_at", "")
end

-- ff_create_flow_graph (createFlowGraph): the flow and its members (create_flow, create_one), the
-- joins (set_edge_group_policy), then membership and edges written together, with the same keys
-- and fields the single-step add_to_flow / stage_edge / apply_dependency leave: the layer
-- validated the graph (members on this partition, edges between members, no cycle) and every
-- refusal is checked here before the first write, so the call writes all or nothing.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow: ff_create_flow's arguments, members: ff_create's arguments each
--           (no idempotency key), joins: ff_set_edge_group_policy's, edges: ff_apply_dependency's},
--           [3 + 2(i-1)] / [4 + 2(i-1)] the payload (or staged) / policy of member i
--   reply:  {1, "OK", wake, graph revision} | {1, "ALREADY", ""} (the flow exists)
--   errors: invalid_input (a member listed twice, keyed or existing; an edge or a join that does not
--           fit the members)
FF.fn.create_flow_graph = function(B, a, now, _, _, argv)
  local bad = FF.need("create_flow_graph", a, { "flow", "t", "members", "t", "joins", "t", "edges", "t" }) or
    FF.need("create_flow_graph", a.flow, { "flow_id", "s" })
  if bad then return bad end
  local fid = a.flow.flow_id
  local fk = K.flow(B, fid)
  if C("EXISTS", fk) == 1 then return FF.ok("ALREADY") end
  local members, joins, edges = a.members, a.joins, a.edges
  bad = FF.need_each("create_flow_graph", members, FF.CREATE_ARGS) or
    FF.need_each("create_flow_graph", joins, { "downstream", "s", "variant", "s" }) or
    FF.need_each("create_flow_graph", edges, { "edge_id", "s", "upstream", "s", "downstream", "s" })
  if bad then return bad end
  -- the layer checked the graph; these are the checks without which a write below would fail
  -- or leave a half-made record (a member created twice, an edge to a non-member)
  local is_member, edge_ids, joined = {}, {}, {}
  for i = 1, #members do
    local m = members[i]
    if is_member[m.execution_id] or FF.str(m.idempotency_key) ~= "" then
      return FF.err("invalid_input", "create_flow_graph: member " .. m.execution_id .. " listed twice or with an idempotency key")
    end
    if C("EXISTS", K.core(B, m.execution_id)) == 1 then
      return FF.err("invalid_input", "create_flow_graph: member " .. m.execution_id .. " already exists")
    end
    is_member[m.execution_id] = true
  end
  for i = 1, #edges do
    local x = edges[i]
    if not is_member[x.upstream] or not is_member[x.downstream] or x.upstream == x.downstream or edge_ids[x.edge_id] then
      return FF.err("invalid_input", "create_flow_graph: edge " .. x.edge_id)
    end
    edge_ids[x.edge_id] = true
  end
  for i = 1, #joins do
    local j = joins[i]
    if not is_member[j.downstream] or joined[j.downstream] then
      return FF.err("invalid_input", "create_flow_graph: join of " .. j.downstream)
    end
    joined[j.downstream] = true
  end
  local ts = FF.s(now)
  -- each child's dependency count and last edge: a child is created blocked, its detail as its last
  -- apply_dependency would leave it
  local children, order = {}, {}
  for i = 1, #edges do
    local down = edges[i].downstream
    local ch = children[down]
    if ch == nil then
      ch = { n = 0 }
      children[down] = ch
      order[#order + 1] = down
    end
    ch.n = ch.n + 1
    ch.last = edges[i].edge_id
  end
  FF.fn.create_flow(B, a.flow, now)
  -- the members, in the flow (add_to_flow for each: all new, none terminal)
  local ids = {}
  for i = 1, #members do
    local e = members[i].execution_id
    local ch = children[e]
    FF.create_one(B, members[i], now, argv[1 + 2 * i], argv[2 + 2 * i],
      { id = fid, blocked = ch and (FF.s(ch.n) .. " dep(s) unresolved incl " .. ch.last) })
    ids[#ids + 1] = e
    -- the flow runs from its first member on (as a member's add_to_flow would report it)
    if i == 1 then FF.ev_flow_note(B, fid, now, "running") end
  end
  FF.chunked("SADD", K.fx(B, fid, "members"), ids)
  C("HINCRBY", fk, "open_members", #ids)
  C("HINCRBY", fk, "node_count", #ids)
  C("HINCRBY", fk, "graph_revision", #ids)
  -- the joins (set_edge_group_policy on a new flow: no group exists yet)
  for i = 1, #joins do
    local j = joins[i]
    write_new_group(B, fid, j, ts)
  end
  -- the edges, staged and applied (stage_edge + apply_dependency for each), their sets written
  -- once per node
  local outs, ins, ups = {}, {}, {}
  for i = 1, #edges do
    local x = edges[i]
    local edge, up, down = x.edge_id, x.upstream, x.downstream
    write_new_edge(B, fid, x, ts)
    local out = outs[up]
    if out == nil then
      out = {}
      outs[up] = out
      ups[#ups + 1] = up
    end
    out[#out + 1] = edge
    local into = ins[down]
    if into == nil then
      into = {}
      ins[down] = into
    end
    into[#into + 1] = edge
  end
  for _, up in ipairs(ups) do FF.chunked("SADD", K.fx(B, fid, "out:" .. up), outs[up]) end
  if #order > 0 then FF.chunked("SADD", K.fx(B, fid, "groups"), order) end
  for _, down in ipairs(order) do
    FF.chunked("SADD", K.fx(B, fid, "in:" .. down), ins[down])
    FF.chunked("SADD", K.ex(B, down, "unres"), ins[down])
    local gk = K.fx(B, fid, "grp:" .. down)
    if joined[down] then
      C("HINCRBY", gk, "n", children[down].n)
    else
      C("HSET", gk, "policy_variant", "all_of", "on_satisfied", "", "k", "", "n", FF.s(children[down].n), "succeeded", "0",
        "failed", "0", "skipped", "0", "group_state", "pending", "created_at", ts)
    end
  end
  local rev = C("HINCRBY", fk, "graph_revision", #edges)
  C("HINCRBY", fk, "edge_count", #edges)
  C("HSET", fk, "last_mutation_at", ts)
  return FF.ok("OK", rev)
end

-- The child's side of edge x = {edge_id, upstream, downstream, dependency_kind,
-- data_passing_ref}: its dependency record and join group. A new dependency makes a satisfied
-- all_of group pending again unless the child is terminal; a runnable child is blocked while its
-- group is pending (an any_of / quorum group already satisfied stays so). The caller has checked
-- that the child exists and the dependency does not.
function FF.apply_dep(B, fid, x, c, now)
  local edge, child = x.edge_id, x.downstream
  C("HSET", K.ex(B, child, "dep:" .. edge), "edge_id", edge, "flow_id", fid, "upstream_execution_id", x.upstream,
    "downstream_execution_id", child, "dependency_kind", FF.str(x.dependency_kind), "state", "unsatisfied",
    "data_passing_ref", FF.str(x.data_passing_ref), "last_resolved_at", "")
  C("SADD", K.ex(B, child, "unres"), edge)
  local gk = K.fx(B, fid, "grp:" .. child)
  local state, n, succeeded = "pending", 1, 0
  if C("EXISTS", gk) == 0 then
    C("HSET", gk, "policy_variant", "all_of", "on_satisfied", "", "k", "", "n", "1", "succeeded", "0",
      "failed", "0", "skipped", "0", "group_state", "pending", "created_at", FF.s(now))
    FF.group_added(B, fid, child)
  else
    n = C("HINCRBY", gk, "n", 1)
    local g = C("HMGET", gk, "policy_variant", "group_state", "succeeded")
    state, succeeded = g[2] or "pending", FF.num(g[3])
    if (g[1] == "all_of" or g[1] == false or g[1] == "") and state == "satisfied" and c.lifecycle_phase ~= "terminal" then
      C("HSET", gk, "group_state", "pending")
      state = "pending"
    end
  end
  if c.lifecycle_phase == "runnable" and c.terminal_outcome == "none" and state == "pending" then
    local lane = c.lane_id
    FF.drop_eligible(B, lane, child, c)
    C("ZREM", K.lane(B, lane, "delayed"), child)
    FF.state(B, child, c, "runnable", "unowned", "blocked_by_dependencies", "waiting_for_children",
      FF.s(n - succeeded) .. " dep(s) unresolved incl " .. edge, "none", c.attempt_state, now)
    C("ZADD", K.lane(B, lane, "blocked"), c.created_at, child)
  end
end

-- An applied edge whose upstream has already ended resolves now, with the upstream's outcome.
function FF.resolve_late(B, fid, x, now)
  local u = FF.sv_decode(C("HGET", K.core(B, x.upstream), "sv"))
  if u[1] == "terminal" and u[5] ~= "none" and u[5] ~= "" then
    FF.resolve_edge(B, fid, x.edge_id, x.downstream, x.upstream, u[5], now)
  end
end

-- The child's dependencies not satisfied: n - succeeded of its group.
function FF.unsatisfied(B, fid, child)
  local g = C("HMGET", K.fx(B, fid, "grp:" .. child), "n", "succeeded")
  return FF.num(g[1]) - FF.num(g[2])
end

-- ff_apply_dependency (applyDependencyToChild): the child's side of an edge (FF.apply_dep),
-- resolved at once when the upstream has already ended. A dependency for an edge the flow has not
-- staged counts as one of the flow's edges (docs/design/flows.md#applying-an-edge).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, edge_id, upstream, downstream, dependency_kind, data_passing_ref?,
--           edges_max?}
--   reply:  {1, "OK", wake, the child's dependencies not satisfied after this call}
--           | {1, "ALREADY", wake}
--   errors: execution_not_found (the child), execution_already_in_flow (another flow's member),
--           execution_not_in_flow (no flow's), invalid_dependency (the edge id is staged with
--           other ends), limit_exceeded (an edge not staged, and the flow has edges_max edges)
FF.fn.apply_dependency = function(B, a, now)
  local fid, child = a.flow_id, a.downstream
  local c = FF.core(B, child)
  if c == nil then return FF.err("execution_not_found") end
  if (c.flow_id or "") ~= fid then
    return FF.err((c.flow_id or "") == "" and "execution_not_in_flow" or "execution_already_in_flow")
  end
  local staged = C("HMGET", K.fx(B, fid, "edge:" .. a.edge_id), "upstream_execution_id", "downstream_execution_id")
  if staged[1] and (staged[1] ~= a.upstream or staged[2] ~= child) then
    return FF.err("invalid_dependency",
      "apply_dependency_to_child: the edge id is staged with another upstream or downstream")
  end
  if C("EXISTS", K.ex(B, child, "dep:" .. a.edge_id)) == 1 then return FF.ok("ALREADY") end
  if not staged[1] then
    local fk = K.flow(B, fid)
    local over = FF.flow_over("apply_dependency_to_child", C("HGET", fk, "edge_count"), 1, a.edges_max,
      "flow edges", "flowEdges")
    if over then return over end
    C("HINCRBY", fk, "edge_count", 1)
  end
  FF.apply_dep(B, fid, a, c, now)
  FF.resolve_late(B, fid, a, now)
  FF.drain(B, now)
  return FF.ok("OK", FF.unsatisfied(B, fid, child))
end

-- Whether `edges` would close a cycle with the flow's edges: the members reachable from the
-- edges' downstream ends (along both) hold a cycle, or there are more than 1000 of them (refused
-- conservatively). A cycle through a new edge lies among those members. `is_new`: the members
-- this call creates (no stored edge leaves them).
function FF.closes_cycle(B, fid, edges, is_new)
  local outs = {}
  local function next_of(node)
    local d = outs[node]
    if d == nil then
      d = {}
      if not is_new[node] then
        for _, edge in ipairs(C("SMEMBERS", K.fx(B, fid, "out:" .. node))) do
          local down = C("HGET", K.fx(B, fid, "edge:" .. edge), "downstream_execution_id")
          if down then d[#d + 1] = down end
        end
      end
      outs[node] = d
    end
    return d
  end
  for i = 1, #edges do
    local d = next_of(edges[i].upstream)
    d[#d + 1] = edges[i].downstream
  end
  local reach, queue = {}, {}
  for i = 1, #edges do
    local down = edges[i].downstream
    if not reach[down] then
      reach[down] = true
      queue[#queue + 1] = down
    end
  end
  local i = 1
  while i <= #queue do
    for _, n in ipairs(next_of(queue[i])) do
      if not reach[n] then
        reach[n] = true
        queue[#queue + 1] = n
        if #queue > 1000 then return true end
      end
    end
    i = i + 1
  end
  -- Kahn's algorithm over the reached members: a cycle leaves some never freed
  local indegree = {}
  for _, node in ipairs(queue) do
    for _, n in ipairs(next_of(node)) do indegree[n] = (indegree[n] or 0) + 1 end
  end
  local free = {}
  for _, node in ipairs(queue) do
    if (indegree[node] or 0) == 0 then free[#free + 1] = node end
  end
  local freed = 0
  while #free > 0 do
    local node = free[#free]
    free[#free] = nil
    freed = freed + 1
    for _, n in ipairs(next_of(node)) do
      indegree[n] = indegree[n] - 1
      if indegree[n] == 0 then free[#free + 1] = n end
    end
  end
  return freed < #queue
end

-- ff_extend_flow (extendFlow): new members (create_one), their joins, then the edges staged and
-- applied, with the keys and fields add_to_flow, set_edge_group_policy, stage_edge and
-- FF.apply_dep leave; every edge is applied before any resolves, then each edge whose upstream has
-- ended resolves, in order. Every refusal is checked before the first write, so the call writes
-- all or nothing.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, members: ff_create's arguments each (no idempotency key), joins:
--           ff_set_edge_group_policy's (new members only), edges: ff_apply_dependency's,
--           members_max?, edges_max?},
--           [3 + 2(i-1)] / [4 + 2(i-1)] the payload (or staged) / policy of member i
--   reply:  {1, "OK", wake, graph revision, node count} | {1, "ALREADY", wake} (a replay: every
--           member and edge is in the flow already)
--   errors: invalid_input (a member listed twice, keyed or existing; a join), flow_not_found,
--           flow_already_terminal, flow_sealed, limit_exceeded (the flow would pass members_max
--           members or edges_max edges: FF.flow_over), execution_not_in_flow, self_referencing_edge,
--           dependency_already_exists, invalid_dependency (an edge applied already), cycle_detected
FF.fn.extend_flow = function(B, a, now, _, _, argv)
  local bad = FF.need("extend_flow", a, { "flow_id", "s", "members", "t", "joins", "t", "edges", "t" })
  if bad then return bad end
  local members, joins, edges = a.members, a.joins, a.edges
  bad = FF.need_each("extend_flow", members, FF.CREATE_ARGS) or
    FF.need_each("extend_flow", joins, { "downstream", "s", "variant", "s" }) or
    FF.need_each("extend_flow", edges, { "edge_id", "s", "upstream", "s", "downstream", "s" })
  if bad then return bad end
  local fid = a.flow_id
  local fk = K.flow(B, fid)
  local f = FF.hmap(fk)
  if f == nil then return FF.err("flow_not_found") end
  local refused = FF.flow_refusal(f)
  if refused then return FF.err(refused) end
  local mk = K.fx(B, fid, "members")
  local replay = true
  for i = 1, #members do
    if C("SISMEMBER", mk, members[i].execution_id) == 0 then
      replay = false
      break
    end
  end
  if replay then
    for i = 1, #edges do
      if C("EXISTS", K.fx(B, fid, "edge:" .. edges[i].edge_id)) == 0 then
        replay = false
        break
      end
    end
  end
  if replay then return FF.ok("ALREADY") end
  local over = FF.flow_over("extend_flow", f.node_count, #members, a.members_max, "flow members", "flowMembers") or
    FF.flow_over("extend_flow", f.edge_count, #edges, a.edges_max, "flow edges", "flowEdges")
  if over then return over end
  local is_new = {}
  for i = 1, #members do
    local e = members[i].execution_id
    if is_new[e] or FF.str(members[i].idempotency_key) ~= "" then
      return FF.err("invalid_input", "extend_flow: member " .. e .. " listed twice or with an idempotency key")
    end
    if C("EXISTS", K.core(B, e)) == 1 then return FF.err("invalid_input", "extend_flow: member " .. e .. " already exists") end
    is_new[e] = true
  end
  -- the edges: both ends members, new ids, and no cycle with the flow's edges
  local member_cache = {}
  local function is_member(e)
    if is_new[e] then return true end
    local m = member_cache[e]
    if m == nil then
      m = C("SISMEMBER", mk, e) == 1
      member_cache[e] = m
    end
    return m
  end
  for i = 1, #edges do
    local x = edges[i]
    if not is_member(x.upstream) or not is_member(x.downstream) then return FF.err("execution_not_in_flow") end
    if x.upstream == x.downstream then return FF.err("self_referencing_edge") end
    if C("EXISTS", K.fx(B, fid, "edge:" .. x.edge_id)) == 1 then return FF.err("dependency_already_exists") end
    if not is_new[x.downstream] and C("EXISTS", K.ex(B, x.downstream, "dep:" .. x.edge_id)) == 1 then
      return FF.err("invalid_dependency", "extend_flow: edge " .. x.edge_id .. " was applied to its downstream already")
    end
  end
  if FF.closes_cycle(B, fid, edges, is_new) then return FF.err("cycle_detected") end
  local joined = {}
  for i = 1, #joins do
    local j = joins[i]
    if not is_new[j.downstream] or joined[j.downstream] then
      return FF.err("invalid_input", "extend_flow: join of " .. j.downstream)
    end
    joined[j.downstream] = true
  end
  -- each child's new edges, in order: a child is blocked (or not) as its last FF.apply_dep would
  -- leave it, so the groups and the blocking are written once per child
  local children, order = {}, {}
  for i = 1, #edges do
    local down = edges[i].downstream
    local ch = children[down]
    if ch == nil then
      ch = {}
      children[down] = ch
      order[#order + 1] = down
    end
    ch[#ch + 1] = edges[i].edge_id
  end
  -- the members, in the flow (a new member with edges coming in is created blocked)
  local ts = FF.s(now)
  local ids = {}
  for i = 1, #members do
    local e = members[i].execution_id
    local ch = children[e]
    FF.create_one(B, members[i], now, argv[1 + 2 * i], argv[2 + 2 * i],
      { id = fid, blocked = ch and (FF.s(#ch) .. " dep(s) unresolved incl " .. ch[#ch]) })
    ids[#ids + 1] = e
    -- the flow runs from its first new member on (as a member's add_to_flow would report it)
    if i == 1 then FF.ev_flow_note(B, fid, now, "running") end
  end
  if #ids > 0 then
    FF.chunked("SADD", mk, ids)
    C("HINCRBY", fk, "open_members", #ids)
    C("HINCRBY", fk, "node_count", #ids)
    C("HINCRBY", fk, "graph_revision", #ids)
  end
  for i = 1, #joins do
    local j = joins[i]
    write_new_group(B, fid, j, ts)
  end
  -- the edges and the children's dependency records (stage_edge + the records of FF.apply_dep)
  local outs_new, ups = {}, {}
  for i = 1, #edges do
    local x = edges[i]
    local edge, up, down = x.edge_id, x.upstream, x.downstream
    write_new_edge(B, fid, x, ts)
    local out = outs_new[up]
    if out == nil then
      out = {}
      outs_new[up] = out
      ups[#ups + 1] = up
    end
    out[#out + 1] = edge
  end
  for _, up in ipairs(ups) do FF.chunked("SADD", K.fx(B, fid, "out:" .. up), outs_new[up]) end
  -- the groups (FF.apply_dep once per child, with all of its new edges)
  if #order > 0 then FF.chunked("SADD", K.fx(B, fid, "groups"), order) end
  for _, down in ipairs(order) do
    local ch = children[down]
    FF.chunked("SADD", K.fx(B, fid, "in:" .. down), ch)
    FF.chunked("SADD", K.ex(B, down, "unres"), ch)
    local gk = K.fx(B, fid, "grp:" .. down)
    if is_new[down] then
      if joined[down] then
        C("HINCRBY", gk, "n", #ch)
      else
        C("HSET", gk, "policy_variant", "all_of", "on_satisfied", "", "k", "", "n", FF.s(#ch), "succeeded", "0",
          "failed", "0", "skipped", "0", "group_state", "pending", "created_at", ts)
      end
    else
      local c = FF.core(B, down)
      local state, n, succeeded = "pending", #ch, 0
      if C("EXISTS", gk) == 0 then
        C("HSET", gk, "policy_variant", "all_of", "on_satisfied", "", "k", "", "n", FF.s(#ch), "succeeded", "0",
          "failed", "0", "skipped", "0", "group_state", "pending", "created_at", ts)
      else
        n = C("HINCRBY", gk, "n", #ch)
        local g = C("HMGET", gk, "policy_variant", "group_state", "succeeded")
        state, succeeded = g[2] or "pending", FF.num(g[3])
        if (g[1] == "all_of" or g[1] == false or g[1] == "") and state == "satisfied" and c.lifecycle_phase ~= "terminal" then
          C("HSET", gk, "group_state", "pending")
          state = "pending"
        end
      end
      if c.lifecycle_phase == "runnable" and c.terminal_outcome == "none" and state == "pending" then
        local lane = c.lane_id
        FF.drop_eligible(B, lane, down, c)
        C("ZREM", K.lane(B, lane, "delayed"), down)
        FF.state(B, down, c, "runnable", "unowned", "blocked_by_dependencies", "waiting_for_children",
          FF.s(n - succeeded) .. " dep(s) unresolved incl " .. ch[#ch], "none", c.attempt_state, now)
        C("ZADD", K.lane(B, lane, "blocked"), c.created_at, down)
      end
    end
  end
  C("HINCRBY", fk, "edge_count", #edges)
  local rev = C("HINCRBY", fk, "graph_revision", #edges)
  C("HSET", fk, "last_mutation_at", ts)
  -- then each edge whose upstream has ended resolves, its cascade with it
  for i = 1, #edges do
    FF.resolve_late(B, fid, edges[i], now)
    FF.drain(B, now)
  end
  return FF.ok("OK", rev, C("HGET", fk, "node_count"))
end

-- --- resolution ----------------------------------------------------------------------------
-- Resolves every outgoing edge of the finished member `up` with its outcome (FF.resolve_edge).
function FF.resolve_outgoing(B, fid, up, outcome, now)
  for _, edge in ipairs(C("SMEMBERS", K.fx(B, fid, "out:" .. up))) do
    local down = C("HGET", K.fx(B, fid, "edge:" .. edge), "downstream_execution_id")
    if down then FF.resolve_edge(B, fid, edge, down, up, outcome, now) end
  end
end

-- Whether nothing blocks `e` on its dependencies (as memory and Postgres): no join group, a
-- join already satisfied, or every dependency satisfied (n - succeeded of its group: one resolved
-- impossible still blocks). An execution outside any flow has no dependency: dependencies and
-- join groups are a member's, under its flow (FF.not_member).
function FF.deps_ready(B, e, c)
  if (c.flow_id or "") == "" then return true end
  local g = C("HMGET", K.fx(B, c.flow_id, "grp:" .. e), "group_state", "n", "succeeded")
  if g[1] == false or g[1] == "satisfied" then return true end
  return FF.num(g[2]) - FF.num(g[3]) <= 0
end

-- Eligible again when nothing blocks it (FF.deps_ready).
function FF.maybe_unblock(B, e, c, now)
  if c.lifecycle_phase ~= "runnable" or c.eligibility_state ~= "blocked_by_dependencies" or
      c.terminal_outcome ~= "none" or c.ownership_state ~= "unowned" then
    return false
  end
  if not FF.deps_ready(B, e, c) then return false end
  local astate = c.attempt_state
  if astate == "none" or astate == "" or astate == nil then astate = "pending_first_attempt" end
  -- resolution overrides a creation delay (docs/design/flows.md#resolution)
  C("ZREM", K.lane(B, c.lane_id, "blocked"), e)
  C("ZREM", K.lane(B, c.lane_id, "delayed"), e)
  FF.state(B, e, c, "runnable", "unowned", "eligible_now", "waiting_for_worker", "", "none", astate, now)
  FF.make_eligible(B, e, c)
  return true
end

-- Passes the upstream's result to the child as its payload (a data-passing edge), unless the
-- child is missing or terminal.
function FF.copy_result(B, up, child, cc)
  if cc == nil or cc.lifecycle_phase == "terminal" then return end
  local small = C("HGET", K.core(B, up), FF.RESULT_FIELD)
  if small then
    -- (an input a data-passing edge wrote is the key `:payload`, whatever its size)
    C("SET", K.ex(B, child, "payload"), small)
    C("HDEL", K.core(B, child), FF.PAYLOAD_FIELD)
    return
  end
  local src = K.ex(B, up, "result")
  if C("EXISTS", src) == 1 then
    C("COPY", src, K.ex(B, child, "payload"), "REPLACE")
    C("HDEL", K.core(B, child), FF.PAYLOAD_FIELD)
  end
end

-- cancel_remaining: the upstreams of `child` whose dependency is unresolved and that have not
-- ended are cancelled by the engine (reason sibling_quorum_satisfied / _impossible, cancelled_by
-- operator_override), in edge id order.
function FF.cancel_siblings(B, fid, child, up, reason, now)
  local edges = C("SMEMBERS", K.ex(B, child, "unres"))
  table.sort(edges)
  for _, edge in ipairs(edges) do
    local sib = C("HGET", K.ex(B, child, "dep:" .. edge), "upstream_execution_id")
    if sib and sib ~= up then
      local sc = FF.core(B, sib)
      if sc ~= nil and sc.lifecycle_phase ~= "terminal" then
        FF.cancel_exec(B, sib, sc, reason, "operator_override", "operator_override", now, {})
      end
    end
  end
end

-- Resolves the dependency of `child` on `up` through `edge` with the upstream's `outcome`
-- (docs/design/flows.md#resolution): the dependency becomes satisfied or impossible, the child's
-- join group counts it, and by the group's policy the child is unblocked (with the upstream's
-- result when data passes), skipped, or its other upstreams are cancelled (cancel_remaining),
-- only when the group fires: a group leaves pending once, later resolutions only count.
-- Counts one unit of the call's resolution work (FF.work, see FF.drain). An edge resolved
-- already is left as it is.
function FF.resolve_edge(B, fid, edge, child, up, outcome, now)
  FF.work = FF.work + 1
  local dk = K.ex(B, child, "dep:" .. edge)
  local dep = FF.hmap(dk)
  -- only the dependency applied with the edge's own upstream (docs/design/flows.md#resolution)
  if dep == nil or dep.state ~= "unsatisfied" or dep.upstream_execution_id ~= up then return end
  local gk = K.fx(B, fid, "grp:" .. child)
  local g = FF.hmap(gk) or { policy_variant = "all_of", n = "1", group_state = "pending" }
  local variant = g.policy_variant
  if variant == nil or variant == "" then variant = "all_of" end
  local success = outcome == "success"
  -- the reference given when the dependency was applied (the staged edge's when none was given;
  -- none when the edge was never staged: HGET answers false, which FF.str would make "false")
  local ref = FF.str(dep.data_passing_ref)
  if success and ref == "" then ref = C("HGET", K.fx(B, fid, "edge:" .. edge), "data_passing_ref") or "" end
  local bucket = "failed"
  if success then bucket = "succeeded" elseif outcome == "skipped" and variant ~= "all_of" then bucket = "skipped" end
  C("HSET", dk, "state", success and "satisfied" or "impossible", "last_resolved_at", FF.s(now), "bucket", bucket,
    "upstream_outcome", outcome)
  C("SREM", K.ex(B, child, "unres"), edge)
  C("HINCRBY", gk, bucket, 1)
  local cc = FF.core(B, child)
  -- the child's dependency changed: stamp it, whether or not its state moves (as memory and Postgres)
  if cc ~= nil then FF.cset(B, child, cc, { "last_mutation_at", FF.s(now) }) end
  if variant == "all_of" then
    if success and ref ~= "" then FF.copy_result(B, up, child, cc) end
    -- a group fires once: one that fired already (a finished child's, or a replayed completed
    -- child's) only counts; a group without a state yet is pending
    local state = C("HGET", gk, "group_state")
    if state ~= false and state ~= "pending" then return end
    if success and C("SCARD", K.ex(B, child, "unres")) == 0 and FF.num(C("HGET", gk, "failed")) == 0 then
      C("HSET", gk, "group_state", "satisfied", "satisfied_at", FF.s(now))
      if cc ~= nil then FF.maybe_unblock(B, child, cc, now) end
    elseif not success or FF.num(C("HGET", gk, "failed")) > 0 then
      -- a failed edge makes it impossible, and so does any resolution of a group pending again
      -- with a failure counted before (a late edge into a satisfied group of a replayed child)
      C("HSET", gk, "group_state", "impossible")
      if cc ~= nil and cc.lifecycle_phase ~= "terminal" then FF.skip_exec(B, child, cc, now) end
    end
    return
  end
  -- any_of / quorum: four counters, fires once; every satisfied edge passes its data
  if success and ref ~= "" then FF.copy_result(B, up, child, cc) end
  if C("HGET", gk, "group_state") ~= "pending" then return end
  local k = 1
  if variant == "quorum" then k = math.max(1, FF.num(g.k, 1)) end
  local n = FF.num(C("HGET", gk, "n"))
  local succeeded = FF.num(C("HGET", gk, "succeeded"))
  local lost = FF.num(C("HGET", gk, "failed")) + FF.num(C("HGET", gk, "skipped"))
  local cancel_remaining = g.on_satisfied == "cancel_remaining"
  if succeeded >= k then
    C("HSET", gk, "group_state", "satisfied", "satisfied_at", FF.s(now))
    if cc ~= nil then FF.maybe_unblock(B, child, cc, now) end
    if cancel_remaining then FF.cancel_siblings(B, fid, child, up, "sibling_quorum_satisfied", now) end
  elseif lost > n - k then
    C("HSET", gk, "group_state", "impossible")
    if cc ~= nil and cc.lifecycle_phase ~= "terminal" then FF.skip_exec(B, child, cc, now) end
    if cancel_remaining then FF.cancel_siblings(B, fid, child, up, "sibling_quorum_impossible", now) end
  end
end

-- Replay of a skipped member: impossible edges become unsatisfied again, and its join group (if
-- any) starts over: failed and skipped back to 0, pending, not satisfied (as memory and Postgres).
-- Returns the unresolved count.
function FF.reset_impossible_deps(B, fid, e, now)
  local uk = K.ex(B, e, "unres")
  local gk = K.fx(B, fid, "grp:" .. e)
  for _, edge in ipairs(C("SMEMBERS", K.fx(B, fid, "in:" .. e))) do
    local dk = K.ex(B, e, "dep:" .. edge)
    if C("HGET", dk, "state") == "impossible" then
      C("HSET", dk, "state", "unsatisfied", "last_resolved_at", "", "bucket", "")
      C("SADD", uk, edge)
    end
  end
  if C("EXISTS", gk) == 1 then
    C("HSET", gk, "failed", "0", "skipped", "0", "group_state", "pending")
    C("HDEL", gk, "satisfied_at")
  end
  return C("SCARD", uk)
end

-- --- member bookkeeping ------------------------------------------------------------------------
-- The flow hash counts its non-terminal members (open_members) and its members that ended
-- failed, cancelled or expired (bad_members): the flow's public state is read from them
-- (FF.flow_state) without reading the members.
function FF.bad_outcome(outcome)
  return outcome == "failed" or outcome == "cancelled" or outcome == "expired"
end

-- A new member `c` counts as open, or as bad when it joins terminal with a bad outcome.
function FF.flow_member_added(B, fid, c)
  local fk = K.flow(B, fid)
  if c.lifecycle_phase ~= "terminal" then
    C("HINCRBY", fk, "open_members", 1)
  elseif FF.bad_outcome(c.terminal_outcome) then
    C("HINCRBY", fk, "bad_members", 1)
  end
end

-- Member `e` ended with `outcome`: it no longer counts as open (and counts as bad after a
-- failure); the last member a flow cancellation owed completes the cancellation.
function FF.flow_member_terminal(B, fid, e, outcome, now)
  local owed = K.fx(B, fid, "owed")
  if C("SREM", owed, e) == 1 and C("SCARD", owed) == 0 then
    FF.flow_cancel_done(B, fid, now)
  end
  local fk = K.flow(B, fid)
  if FF.bad_outcome(outcome) then C("HINCRBY", fk, "bad_members", 1) end
  C("HINCRBY", fk, "open_members", -1)
  FF.ev_flow_touch(B, fid)
end

-- A replayed member counts as not terminal again (its flow reads running).
function FF.flow_member_replayed(B, fid, e, outcome, now)
  local fk = K.flow(B, fid)
  C("HINCRBY", fk, "open_members", 1)
  if FF.bad_outcome(outcome) then C("HINCRBY", fk, "bad_members", -1) end
  FF.ev_flow_touch(B, fid)
end

-- A flow cancellation owes no member any more: the flow leaves the backlog and is cancelled.
function FF.flow_cancel_done(B, fid, now)
  C("ZREM", K.idx(B, "cancel_backlog"), fid)
  local fk = K.flow(B, fid)
  if C("HGET", fk, "public_flow_state") == "cancelling" then
    C("HSET", fk, "public_flow_state", "cancelled", "last_mutation_at", FF.s(now))
    FF.ev_flow_touch(B, fid)
  end
end

-- --- cancel_flow (docs/design/flows.md#cancelling-a-flow) ------------------------------------------
-- ff_cancel_flow (cancelFlow, cancelFlowHeader): cancels the flow and owes its members a cancel by
-- the policy (cancel_all: every member not terminal, cancel_pending: the runnable ones, else none).
-- a.mode "trait": cascade inline when at most a.inline_limit members are owed, else via the backlog;
-- a.mode "header": the idempotent header only (owed members go to the backlog after a.grace_ms).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, policy, reason, mode, inline_limit?, grace_ms}
--   reply:  {1, "OK", wake, policy, the members (JSON array)}
--           | {1, "ALREADY", wake, stored policy, stored reason, the members} (header mode, on a
--           flow that cannot change any more: FF.flow_final)
--   errors: flow_not_found, flow_already_terminal (trait mode, on such a flow)
FF.fn.cancel_flow = function(B, a, now)
  local fid = a.flow_id
  local fk = K.flow(B, fid)
  local f = FF.hmap(fk)
  if f == nil then return FF.err("flow_not_found") end
  local members = C("SMEMBERS", K.fx(B, fid, "members"))
  table.sort(members)
  if FF.flow_final(f) then
    if a.mode == "header" then
      return FF.ok("ALREADY", f.cancellation_policy or "", f.cancel_reason or "", FF.jarr(members))
    end
    return FF.err("flow_already_terminal")
  end
  local policy = a.policy
  local reason = FF.str(a.reason)
  local owed = {}
  if policy == "cancel_all" or policy == "cancel_pending" then
    for _, m in ipairs(members) do
      local sv = C("HGET", K.core(B, m), "sv")
      local phase = sv and FF.sv_decode(sv)[1]
      if phase and phase ~= "terminal" and (policy == "cancel_all" or phase == "runnable") then
        owed[#owed + 1] = m
      end
    end
  end
  C("HSET", fk, "cancelled_at", FF.s(now), "cancel_reason", reason, "cancellation_policy", policy,
    "last_mutation_at", FF.s(now))
  local member_reason = reason
  if member_reason == "" then member_reason = "flow_cancelled" end
  if #owed == 0 then
    C("HSET", fk, "public_flow_state", "cancelled")
  elseif a.mode ~= "header" and #owed <= FF.num(a.inline_limit, 0) then
    -- cancelling while the cascade runs (reported before the members' events), then cancelled
    FF.ev_flow_note(B, fid, now, "cancelling")
    for _, m in ipairs(owed) do
      local c = FF.core(B, m)
      if c ~= nil and c.lifecycle_phase ~= "terminal" then
        FF.cancel_exec(B, m, c, member_reason, "flow_cascade", "flow_cascade", now, { no_resolve = true })
      end
    end
    C("HSET", fk, "public_flow_state", "cancelled")
  else
    FF.chunked("SADD", K.fx(B, fid, "owed"), owed)
    C("HSET", fk, "public_flow_state", "cancelling")
    C("ZADD", K.idx(B, "cancel_backlog"), FF.s(now + FF.num(a.grace_ms, 0)), fid)
  end
  FF.ev_flow_touch(B, fid)
  FF.drain(B, now)
  return FF.ok("OK", policy, FF.jarr(members))
end

-- ff_ack_cancel_member: a member the flow's cancellation owed is acknowledged as cancelled (the
-- set of owed members loses it); the last one completes the cancellation.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, execution_id}
--   reply:  {1, "OK", wake}
--   errors: -
FF.fn.ack_cancel_member = function(B, a, now)
  local owed = K.fx(B, a.flow_id, "owed")
  C("SREM", owed, a.execution_id)
  if C("SCARD", owed) == 0 and C("ZSCORE", K.idx(B, "cancel_backlog"), a.flow_id) ~= false then
    FF.flow_cancel_done(B, a.flow_id, now)
  end
  return FF.ok("OK")
end
