-- ===========================================================================
-- reads.lua: read-only functions (FCALL_RO, flag no-writes): one consistent snapshot per call
-- (docs/design/reads.md). Each reads one partition; the wake of a reply is always "".
-- ===========================================================================

-- ff_read_execution: an execution's core, with its tags and its history (history.lua) when asked.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, tags?, history?}
--   reply:  {1, "NONE", ""} | {1, "OK", "", JSON {core, tags?, runs?, running?, fail?}}
--   errors: -
FF.fn.read_execution = function(B, a, now)
  local m = FF.hmap(K.core(B, a.execution_id))
  if m == nil then return FF.ok("NONE") end
  local c = FF.core_expand(m)
  c[FF.PAYLOAD_FIELD] = nil -- (the input, bytes, is read by getExecutionInput)
  c[FF.RESULT_FIELD] = nil -- (the result, bytes, is read by getExecutionResult)
  local out = { core = c }
  if a.tags then out.tags = FF.hmap(K.ex(B, a.execution_id, "tags")) or {} end
  if a.history then
    local h = FF.history_of(B, a.execution_id, c)
    out.runs, out.running, out.fail = FF.jarr(h.runs), h.running, h.fail
  end
  return FF.ok("OK", cjson.encode(out))
end

-- ff_lane_head: the partition's head on a lane (FF.lane_head), for a claim hint.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {lane}
--   reply:  {1, "OK", "", the best claim score claimable on the lane ("" when none)}
--   errors: -
FF.fn.lane_head = function(B, a, now)
  return FF.ok("OK", FF.lane_head(B, a.lane))
end

-- ff_describe_flow: a flow's record (its public state derived, FF.flow_state), its tags and the
-- join groups of its members. It reads the members that have a group (`:groups`, FF.group_added),
-- so its cost follows the groups it returns; a flow created before that set was kept (no `gs` in
-- its record) has its members walked instead.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id}
--   reply:  {1, "NONE", ""} | {1, "OK", "", JSON {flow, tags}, JSON [group hash + downstream, ...]}
--   errors: -
FF.fn.describe_flow = function(B, a, now)
  local fid = a.flow_id
  local f = FF.hmap(K.flow(B, fid))
  if f == nil then return FF.ok("NONE") end
  local groups = {}
  local members
  if f.gs == "1" then
    members = C("SMEMBERS", K.fx(B, fid, "groups"))
  else
    members = C("SMEMBERS", K.fx(B, fid, "members"))
  end
  table.sort(members)
  -- one group per member with inbound (applied) dependencies, n > 0 (n counts the inbound edges applied;
  -- docs/design/flows.md#join-policies); a policy set before any edge is applied is not listed
  for _, m in ipairs(members) do
    local g = FF.hmap(K.fx(B, fid, "grp:" .. m))
    if g ~= nil and FF.num(g.n) > 0 then
      g.downstream = m
      groups[#groups + 1] = g
    end
  end
  f.public_flow_state = FF.flow_state(f)
  return FF.ok("OK", cjson.encode({ flow = f, tags = FF.hmap(K.fx(B, fid, "tags")) or {} }), FF.jarr(groups))
end

-- ff_flow_state: a flow's public state alone (FF.flow_state, from the record's counters): what
-- the wait of cancelFlow polls, at the same cost whatever the flow's size.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id}
--   reply:  {1, "NONE", ""} | {1, "OK", "", the public state}
--   errors: -
FF.fn.flow_state = function(B, a, now)
  local h = C("HMGET", K.flow(B, a.flow_id), "public_flow_state", "node_count", "open_members", "bad_members", "sealed")
  if h[1] == false then return FF.ok("NONE") end
  return FF.ok("OK", FF.flow_state({ public_flow_state = h[1], node_count = h[2], open_members = h[3],
    bad_members = h[4], sealed = h[5] }))
end

-- ff_list_edges: the edges out of or into a node of the flow.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, direction: "out" | "in", node}
--   reply:  {1, "OK", "", JSON [edge hash, or {missing: edge id} when its record is gone, ...]}
--   errors: -
FF.fn.list_edges = function(B, a, now)
  local set
  if a.direction == "out" then set = K.fx(B, a.flow_id, "out:" .. a.node) else set = K.fx(B, a.flow_id, "in:" .. a.node) end
  local edges = {}
  for _, edge in ipairs(C("SMEMBERS", set)) do
    local h = FF.hmap(K.fx(B, a.flow_id, "edge:" .. edge))
    if h == nil then h = { missing = edge } end
    edges[#edges + 1] = h
  end
  return FF.ok("OK", FF.jarr(edges))
end

-- ff_describe_edge: one edge's record.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {flow_id, edge_id}
--   reply:  {1, "NONE", ""} | {1, "OK", "", JSON edge hash}
--   errors: -
FF.fn.describe_edge = function(B, a, now)
  local h = FF.hmap(K.fx(B, a.flow_id, "edge:" .. a.edge_id))
  if h == nil then return FF.ok("NONE") end
  return FF.ok("OK", cjson.encode(h))
end

-- ff_list_flows: a page of the partition's flows by id, after the cursor.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {cursor?, limit}
--   reply:  {1, "OK", "", JSON [[flow id, created_at, public state, "1" | "0" when its record is
--           gone], ...]} (up to limit + 1 rows: one more tells the layer a next page exists)
--   errors: -
FF.fn.list_flows = function(B, a, now)
  local start = "-"
  if FF.str(a.cursor) ~= "" then start = "(" .. a.cursor end
  local ids = C("ZRANGEBYLEX", K.idx(B, "flows"), start, "+", "LIMIT", 0, FF.num(a.limit) + 1)
  local out = {}
  for i = 1, #ids do
    local h = C("HMGET", K.flow(B, ids[i]), "created_at", "public_flow_state", "node_count", "open_members",
      "bad_members", "sealed")
    local state = FF.flow_state({ public_flow_state = h[2] or "", node_count = h[3], open_members = h[4],
      bad_members = h[5], sealed = h[6] })
    out[#out + 1] = { ids[i], h[1] or "", state, h[1] == false and "0" or "1" }
  end
  return FF.ok("OK", FF.jarr(out))
end

-- ff_list_executions: a page of the partition's executions by id, after the cursor, read from the
-- partition's id index (FF.ids_page, ids.lua): the call reads at most limit + 3 buckets.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {cursor?, limit}
--   reply:  {1, "OK", "", execution id, ...} (up to limit + 1 ids: one more tells the layer a next
--           page exists)
--   errors: -
FF.fn.list_executions = function(B, a, now)
  local want = math.max(0, math.floor(FF.num(a.limit))) + 1
  return FF.ok("OK", unpack(FF.ids_page(B, FF.str(a.cursor), want)))
end

-- ff_list_suspended: a page of the partition's suspended executions in (score, id) order: the
-- `suspended` index is one sorted set scored by the suspension's timeout (NO_TIMEOUT without one),
-- whose ties sort by id, so a page costs its limit, not the size of the index. The page starts
-- after the cursor's entry; a cursor that left the index resumes at the first entry (in order)
-- whose id is greater, found by a scan of at most SCAN_BUDGET entries per call: past that the
-- reply is SCAN with the position reached (a.scan_from of the next call).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {cursor?, scan_from?, limit}
--   reply:  {1, "OK", "", JSON [[execution id, score, reason code], ...]} (up to limit + 1 rows)
--           | {1, "SCAN", "", the position reached}
--   errors: -
local SCAN_CHUNK, SCAN_BUDGET = 1000, 10000
FF.fn.list_suspended = function(B, a, now)
  local key = K.idx(B, "suspended")
  local limit = math.max(1, math.floor(FF.num(a.limit, 100)))
  local cursor = FF.str(a.cursor)
  local start = 0
  if cursor ~= "" then
    local rank = C("ZRANK", key, cursor)
    if rank ~= false then
      start = rank + 1
    else
      local pos = math.max(0, math.floor(FF.num(a.scan_from, 0)))
      local scanned = 0
      start = nil
      while start == nil do
        local ids = C("ZRANGE", key, pos, pos + SCAN_CHUNK - 1)
        for i = 1, #ids do
          if ids[i] > cursor then
            start = pos + i - 1
            break
          end
        end
        if start == nil then
          if #ids < SCAN_CHUNK then return FF.ok("OK", "[]") end
          pos = pos + SCAN_CHUNK
          scanned = scanned + SCAN_CHUNK
          if scanned >= SCAN_BUDGET then return FF.ok("SCAN", FF.s(pos)) end
        end
      end
    end
  end
  local r = C("ZRANGE", key, start, start + limit, "WITHSCORES")
  local out = {}
  for i = 1, #r, 2 do
    local e = r[i]
    local reason = C("HGET", K.ex(B, e, "susp"), "reason_code")
    out[#out + 1] = { e, FF.s(tonumber(r[i + 1])), reason or "" }
  end
  return FF.ok("OK", FF.jarr(out))
end

-- --- lane pages (docs/design/reads.md#lane-queries) ------------------------------------------
-- A lane page merges the lane's state sets (FF.lane_member) of several partitions: one stream
-- per partition and set asked (of three sets or more, those its count hash says are not empty:
-- one HMGET instead of a read per set), each read a few entries at a time from the position
-- after `after`, and a heap of the streams by their next entry. Entries come out in the query's
-- order, each examined once (its kind read from its core), until `want` match or `scan` were
-- examined. Every entry up to the last one examined has been examined, so that entry is where the
-- next read of the same partitions starts. Reads are bounded: a first read of each stream (the
-- streams are at most partitions x states), then one per stream whose buffer the merge emptied.

-- The next `n` members of the state set `key` after `from` ("(" .. member, or "-" / "+").
local function lane_read(key, from, n, rev)
  if rev then return C("ZRANGE", key, from, "-", "BYLEX", "REV", "LIMIT", 0, n) end
  return C("ZRANGE", key, from, "+", "BYLEX", "LIMIT", 0, n)
end

-- --- the waiting executions: the eligible index read in creation order ---------------------------
-- A waiting execution has no entry of its own among the lane's state sets: it is in the lane's
-- eligible index (transitions.lua, FF.lane_move), scored by its claim score -(priority x 10^12) +
-- created_at with its uuid's bytes as member (FF.emember). Within one priority the scores are the creation times shifted
-- by the same offset, so the index holds one run per priority present (a band; creation times
-- span far less than 10^12 ms), each in (creation time, id) order, which a lane page reads as a
-- stream of its own. A band is found by its first entry; its priority is
-- floor((ref - score) / 10^12) for a `ref` after every creation time (the call's now plus a day).
-- An entry may be stale (a flow blocked the execution again): the page checks its core.
local BAND = 1000000000000

-- The bands of the eligible index `set` (eligible.lua): {set, off, lo, hi} each (scores in
-- (lo, hi], created_at = score - off), best priority first (ascending scores).
local function bands_of(set, now)
  local ref = now + 86400000
  local out = {}
  local head = FF.efirst(set, 1)
  while #head > 0 do
    local p = math.floor((ref - tonumber(head[2])) / BAND)
    local hi = ref - p * BAND
    out[#out + 1] = { set = set, off = -(p * BAND), lo = ref - (p + 1) * BAND, hi = hi }
    head = FF.enext(FF.eiter(set, hi, FF.MEMBER_MAX), 1)
  end
  return out
end

-- Positions band `b` after lane position `after` ("" for the start) in the walk's order: b.it
-- reads its next entries (forward) or its next entries going down (rev). The position is (score,
-- member) in the eligible index's form (FF.emember: the uuid's bytes, in the order of the
-- partition's ids; a store of version 5 or older holds ids, whose order among the new members at
-- one score is not the ids': such ties may be read out of order). An id of another partition
-- (a cursor of the merge over partitions) is before or after every id of this one, as its tag says.
local function band_start(b, after, rev)
  local s, id = nil, nil
  if after ~= "" then
    s, id = tonumber(string.sub(after, 1, 13)) + b.off, string.sub(after, 15)
    if s <= b.lo then s = nil; if rev then b.done = true return end end
    if s ~= nil and s > b.hi then s = nil; if not rev then b.done = true return end end
  end
  if s == nil then
    if rev then b.it = FF.eiter(b.set, b.hi, FF.MEMBER_MAX, true) else b.it = FF.eiter(b.set, b.lo, FF.MEMBER_MAX) end
    return
  end
  local tag = FF.member_tag(b.base)
  local m
  if string.sub(id, 1, #tag) ~= tag then
    if id < tag then m = "" else m = FF.MEMBER_MAX end
  else
    m = FF.emember(id)
  end
  b.it = FF.eiter(b.set, s, m, rev)
end

-- The next `n` entries of band `b` in the walk's order, as lane members "<created_at>:<id>".
local function band_read(b, n, rev)
  local out = {}
  if b.done then return out end
  local r = FF.enext(b.it, n)
  for i = 1, #r, 2 do
    local sc = tonumber(r[i + 1])
    if (rev and sc <= b.lo) or (not rev and sc > b.hi) then b.done = true break end
    out[#out + 1] = FF.lane_member(FF.s(sc - b.off), FF.eid(b.base, r[i]))
  end
  if #r < 2 * n then b.done = true end
  return out
end

-- The merge of the lane's sets of `a.states` over the partitions `parts` (their bases from
-- a.prefix), after `after` ("" for the start): the rows {member, public state, kind, ...} (3
-- strings per row, flat), the last member examined ("" when none), and whether nothing follows it.
local function lane_merge(parts, a, after, now)
  local want = math.max(1, math.floor(FF.num(a.want, 1)))
  local scan = math.max(want, math.floor(FF.num(a.scan, want)))
  local kind = a.kind
  if type(kind) ~= "string" then kind = nil end
  local rev = a.rev == true
  local lane = FF.str(a.lane)
  local states = a.states or {}
  local bases = FF.partition_bases(FF.str(a.prefix))
  local from = (after ~= "" and ("(" .. after)) or (rev and "+" or "-")
  -- the streams: their key, state, buffer, position in it, whether the set may hold more
  -- (a waiting stream is a band of the eligible index, sband, above)
  local skey, sstate, sbase, sband = {}, {}, {}, {}
  local function add(B, st)
    if st == "waiting" then
      -- (and the bands of its pending set while there is one, indexes.lua FF.kind_step)
      local E, P = FF.lane_sets(B, lane)
      local esets = { E }
      if FF.kpending(B, lane) then esets[2] = P end
      for _, es in ipairs(esets) do
        for _, b in ipairs(bands_of(es, now)) do
          b.base = B
          local i = #skey + 1
          skey[i], sstate[i], sbase[i], sband[i] = es.key or es.dir, st, B, b
          band_start(b, after, rev)
        end
      end
    else
      skey[#skey + 1], sstate[#skey + 1], sbase[#skey + 1] = K.lstate(B, lane, st), st, B
    end
  end
  for _, p in ipairs(parts) do
    local B = bases[FF.num(p)]
    if #states <= 2 then -- (read them: an absent set reads empty, at the cost of its count)
      for _, st in ipairs(states) do add(B, st) end
    else
      local sizes = C("HMGET", K.lcount(B, lane), unpack(states))
      for i, st in ipairs(states) do
        if FF.num(sizes[i]) > 0 then add(B, st) end -- (an empty set is not read)
      end
    end
  end
  local n = #skey
  -- (at first twice a stream's even share of the scan, and at least two entries: a stream that
  -- gives the page one entry, or its share, rarely needs a second read)
  local first = math.min(scan, math.max(2, math.ceil(2 * scan / math.max(n, 1))))
  local buf, pos, more, chunk = {}, {}, {}, {}
  -- a binary heap of the streams by their next entry (head), the first in the walk's order on top
  local head, heap, size = {}, {}, 0
  -- whether member a comes before member b in the walk's order
  local function before(a, b)
    if rev then return a > b end
    return a < b
  end
  local function up(k)
    local i = heap[k]
    local h = head[i]
    while k > 1 do
      local parent = math.floor(k / 2)
      if not before(h, head[heap[parent]]) then break end
      heap[k] = heap[parent]
      k = parent
    end
    heap[k] = i
  end
  local function down(k)
    local i = heap[k]
    local h = head[i]
    while true do
      local c = 2 * k
      if c > size then break end
      local hc = head[heap[c]]
      if c < size then
        local h2 = head[heap[c + 1]]
        if before(h2, hc) then c, hc = c + 1, h2 end
      end
      if not before(hc, h) then break end
      heap[k] = heap[c]
      k = c
    end
    heap[k] = i
  end
  for i = 1, n do
    local r
    if sband[i] then
      r = band_read(sband[i], first, rev)
      more[i] = not sband[i].done
    else
      r = lane_read(skey[i], from, first, rev)
      more[i] = #r == first
    end
    buf[i], pos[i], chunk[i] = r, 1, first
    if #r > 0 then
      head[i] = r[1]
      size = size + 1
      heap[size] = i
      up(size)
    end
  end
  local out, last, examined = {}, "", 0
  while size > 0 and examined < scan do
    local i = heap[1]
    local m = head[i]
    pos[i] = pos[i] + 1
    if pos[i] > #buf[i] then -- the buffer is spent: read on, or the stream leaves the heap
      local r = {}
      if more[i] then
        chunk[i] = math.min(2 * chunk[i], scan)
        if sband[i] then
          r = band_read(sband[i], chunk[i], rev)
          more[i] = not sband[i].done
        else
          r = lane_read(skey[i], "(" .. m, chunk[i], rev)
          more[i] = #r == chunk[i]
        end
      end
      if #r > 0 then
        buf[i], pos[i] = r, 1
      else
        heap[1] = heap[size]
        heap[size] = nil
        size = size - 1
      end
    end
    if pos[i] <= #buf[i] then head[i] = buf[i][pos[i]] end
    if size > 0 then down(1) end
    examined = examined + 1
    last = m
    local k, live = "", true
    if sband[i] then -- (an entry of the eligible index: waiting unless stale)
      local st = C("HMGET", K.core(sbase[i], string.sub(m, 15)), "sv", FF.CF.execution_kind)
      local sv = FF.sv_decode(st[1])
      live = sv[1] == "runnable" and sv[3] == "eligible_now"
      k = st[2] or ""
    else
      k = C("HGET", K.core(sbase[i], string.sub(m, 15)), FF.CF.execution_kind) or ""
    end
    if live and (kind == nil or k == kind) then
      out[#out + 1] = m
      out[#out + 1] = sstate[i]
      out[#out + 1] = k
      if #out == 3 * want then break end
    end
  end
  return out, last, size == 0
end

-- ff_lane_page (listLaneExecutions): the lane's executions on the partitions `parts`, in the
-- states asked, after `after` in the query's order (by name; `rev`: newest first), merged over
-- their state sets (above): the first `scan` entries are examined in order; with `kind`, an entry
-- of another kind is passed over; the walk stops at `want` matches. On a cluster the partitions of
-- one call are those whose slots the node of KEYS[1] serves (the layer groups them by the slot map
-- it knows; a key of a slot served elsewhere fails the call, and the layer asks each partition
-- alone). The layer merges the calls' rows (src/valkey/internal/lanes.ts).
--   KEYS:   [1] the base of parts[1] (the call's node; its other keys are named by parts)
--   ARGV:   [1] now, [2] {prefix, parts: [partition, ...], lane, states: [public state, ...],
--           kind?, rev, after ("" for the start), want, scan}
--   reply:  {1, "OK", "", the last member examined ("" when none), "1" when nothing follows it
--           | "0", then 3 fields per row: member, public state, kind}
--   errors: -
FF.fn.lane_page = function(_, a, now)
  local rows, last, done = lane_merge(a.parts or {}, a, FF.str(a.after), now)
  local r = FF.ok("OK", last, done and "1" or "0")
  for i = 1, #rows do r[#r + 1] = rows[i] end
  return r
end

-- ff_lane_counts (countLaneExecutions): the size of the lane's set of each public state asked
-- (its count hash, FF.lane_move), summed over the partitions `parts` (grouped as ff_lane_page's).
--   KEYS:   [1] the base of parts[1]
--   ARGV:   [1] now, [2] {prefix, parts: [partition, ...], lane, states: [public state, ...]}
--   reply:  {1, "OK", "", JSON [count, ...] (in the order of `states`)}
--   errors: -
FF.fn.lane_counts = function(_, a, now)
  local bases, out = FF.partition_bases(FF.str(a.prefix)), {}
  local states = a.states or {}
  for i = 1, #states do out[i] = 0 end
  if #states > 0 then
    for _, p in ipairs(a.parts or {}) do
      local n = C("HMGET", K.lcount(bases[FF.num(p)], FF.str(a.lane)), unpack(states))
      for i = 1, #states do out[i] = out[i] + FF.num(n[i]) end
    end
  end
  return FF.ok("OK", FF.jarr(out))
end

-- ff_list_pending_waitpoints: a page of an execution's open (pending or active) token-bound
-- waitpoints by id, after the cursor, with the signal names their condition waits for.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, after?, limit}
--   reply:  {1, "OK", "", JSON [{waitpoint_id, waitpoint_key, state, created_at, activated_at,
--           expires_at, token, names (JSON)}, ...], the next cursor ("" when none)}
--   errors: execution_not_found
FF.fn.list_pending_waitpoints = function(B, a, now)
  local e = a.execution_id
  if C("EXISTS", K.core(B, e)) == 0 then return FF.err("execution_not_found") end
  local ids = C("SMEMBERS", K.ex(B, e, "wps"))
  table.sort(ids)
  local after = FF.str(a.after)
  local page = {}
  local limit = FF.num(a.limit, 100)
  local more = false
  for _, w in ipairs(ids) do
    if after == "" or w > after then
      if #page >= limit then more = true; break end
      page[#page + 1] = w
    end
  end
  local out = {}
  for _, w in ipairs(page) do
    local h = FF.hmap(K.wp(B, w))
    if h ~= nil and (h.state == "pending" or h.state == "active") and (h.waitpoint_token or "") ~= "" then
      local names = {}
      local cond = FF.hmap(K.wpx(B, w, "cond"))
      if cond ~= nil then
        for i = 0, FF.num(cond.total_matchers) - 1 do
          local n = cond["matcher:" .. i .. ":name"] or ""
          if n ~= "" then names[#names + 1] = n end
        end
      end
      out[#out + 1] = {
        waitpoint_id = w, waitpoint_key = h.waitpoint_key or "", state = h.state, created_at = h.created_at or "",
        activated_at = h.activated_at or "", expires_at = h.expires_at or "", token = h.waitpoint_token,
        names = FF.jarr(names)
      }
    end
  end
  local next_cursor = ""
  if more and #page > 0 then next_cursor = page[#page] end
  return FF.ok("OK", FF.jarr(out), next_cursor)
end

-- ff_observe_signals: the signals that satisfied the suspension this attempt resumed from (its
-- last suspension, closed "resumed"), none otherwise.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, attempt_index}
--   reply:  {1, "OK", "", JSON [signal hash + has_payload "1" | "0", ...]}
--   errors: -
FF.fn.observe_signals = function(B, a, now)
  local e = a.execution_id
  local s = FF.hmap(K.ex(B, e, "susp"))
  if s == nil or s.attempt_index ~= FF.str(a.attempt_index) or s.close_reason ~= "resumed" or
      (s.waitpoint_id or "") == "" then
    return FF.ok("OK", "[]")
  end
  local ids = {}
  if (s.all_satisfier_signals or "") ~= "" and s.composite == "1" then
    ids = FF.decode(s.all_satisfier_signals) or {}
  else
    local cond = FF.hmap(K.wpx(B, s.waitpoint_id, "cond"))
    if cond ~= nil then
      for i = 0, FF.num(cond.total_matchers) - 1 do
        local sid = cond["matcher:" .. i .. ":signal_id"] or ""
        if cond["matcher:" .. i .. ":satisfied"] == "1" and sid ~= "" then ids[#ids + 1] = sid end
      end
    end
  end
  local out = {}
  for _, sid in ipairs(ids) do
    local h = FF.hmap(K.sig(B, sid))
    if h ~= nil and h.target_execution_id == e then
      h.has_payload = C("EXISTS", K.sig(B, sid) .. ":payload") == 1 and "1" or "0"
      out[#out + 1] = h
    end
  end
  return FF.ok("OK", FF.jarr(out))
end

-- ff_read_stream (readStream, tailStream): a page of an attempt's stream (a.page_frames,
-- a.page_bytes: Limits.readPageFrames / readPageBytes): at most a.count frames and page_frames,
-- stopping before the frame that would take the payload bytes past page_bytes (never empty). The
-- stream is read in chunks of READ_CHUNK entries, so a page reads at most one chunk past its
-- budget. a.after (exclusive, tail) or a.from / a.to (inclusive, "-" / "+" for the ends).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, attempt_index, count, page_frames, page_bytes, after? |
--           from + to}
--   reply:  {1, "OK", "", JSON [{id, fields}, ...], closed_at, closed_reason, the id of the first
--           frame the page budget left out ("" when none)}
--   errors: -
local READ_CHUNK = 32
FF.fn.read_stream = function(B, a, now)
  local e, idx = a.execution_id, a.attempt_index
  local page_frames, page_bytes = FF.num(a.page_frames, 1000), FF.num(a.page_bytes, 1048576)
  local stream = K.stream(B, e, idx)
  local count = math.max(1, math.floor(FF.num(a.count, 1)))
  local start, stop = a.from, a.to
  if a.after ~= nil then start, stop = "(" .. FF.str(a.after), "+" end
  -- End as the lower bound is the last entry, Start as the upper bound the first (XRANGE reads
  -- "+" as a start and "-" as an end as an empty range)
  if start == "+" then
    local last = C("XREVRANGE", stream, "+", "-", "COUNT", 1)
    start = (last[1] and last[1][1]) or "+"
  end
  if stop == "-" then
    local first = C("XRANGE", stream, "-", "+", "COUNT", 1)
    stop = (first[1] and first[1][1]) or "-"
  end
  local frames, bytes, next_id = {}, 0, ""
  local done = false
  while not done do
    local entries = C("XRANGE", stream, start, stop, "COUNT", READ_CHUNK)
    for _, entry in ipairs(entries) do
      if #frames >= count then
        done = true
        break
      end
      local f = entry[2]
      local fields, size = {}, 0
      for i = 1, #f, 2 do
        fields[f[i]] = f[i + 1]
        if f[i] == "payload" then size = #f[i + 1] end
      end
      if #frames >= page_frames or (#frames > 0 and bytes + size > page_bytes) then
        next_id = entry[1]
        done = true
        break
      end
      frames[#frames + 1] = { id = entry[1], fields = fields }
      bytes = bytes + size
    end
    if #entries < READ_CHUNK then done = true end
    if not done then start = "(" .. entries[#entries][1] end
  end
  local meta = C("HMGET", K.smeta(B, e, idx), "closed_at", "closed_reason")
  return FF.ok("OK", FF.jarr(frames), meta[1] or "", meta[2] or "", next_id)
end

-- ff_read_summary: an attempt's summary document.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, attempt_index}
--   reply:  {1, "NONE", ""} | {1, "OK", "", document, version, patch kind, last updated ms,
--           first applied ms}
--   errors: -
FF.fn.read_summary = function(B, a, now)
  local h = FF.hmap(K.ssum(B, a.execution_id, a.attempt_index))
  if h == nil or FF.num(h.version) == 0 then return FF.ok("NONE") end
  return FF.ok("OK", h.document or "", h.version or "0", h.patch_kind or "json-merge-patch", h.last_updated_ms or "",
    h.first_applied_ms or "")
end
