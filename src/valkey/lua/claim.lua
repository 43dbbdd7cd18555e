-- ===========================================================================
-- claim.lua: the claim of one partition (its candidates in claim order), the claim-hint walk of
-- a standalone server (ff_claim_lane), grants and the claim of a resumed execution; the lease a
-- claim writes is lease.lua's (docs/design/executions.md#claiming)
-- ===========================================================================

-- The partition's head on `lane`: the best claim score of its eligible and reclaim indexes (and
-- pending set, helpers.lua), "" when all are empty. The score a visited partition's claim hint is
-- set to.
function FF.lane_head(B, lane)
  local E, P = FF.lane_sets(B, lane)
  local best = nil
  local heads = { FF.efirst(E, 1), C("ZRANGE", K.lane(B, lane, "reclaim"), 0, 0, "WITHSCORES") }
  if FF.kpending(B, lane) then heads[3] = FF.efirst(P, 1) end
  for _, head in ipairs(heads) do
    if #head > 0 then
      local score = tonumber(head[2])
      if best == nil or score < best then best = score end
    end
  end
  if best == nil then return "" end
  return FF.s(best)
end

-- Candidates of `lane` in claim order: lowest score first over eligible, reclaim and the pending
-- set while there is one (each comes in that order already: score, then member); each candidate
-- is {id, score, the index it was read from: "eligible", "reclaim" or "pend"}, its id still the
-- member (FF.emember) with the partition base at [4] until FF.cand_id converts it (a claim looks at
-- its first candidate only, most of the time).
function FF.cand_id(cand)
  local B = cand[4]
  if B ~= nil then
    cand[1], cand[4] = FF.eid(B, cand[1]), nil
  end
  return cand[1]
end
local function claim_order(x, y)
  if x[2] == y[2] then return x[1] < y[1] end
  return x[2] < y[2]
end
-- `no_reclaim` (optional, partition base -> true): partitions whose reclaim index this call found
-- empty (a claim never adds to it, so a batch of claims reads it once per partition).
function FF.candidates(B, lane, scan, no_reclaim)
  local out = {}
  local E, P = FF.lane_sets(B, lane)
  local r = FF.efirst(E, scan)
  for i = 1, #r, 2 do out[#out + 1] = { r[i], tonumber(r[i + 1]), "eligible", B } end
  local merged = false
  if FF.kpending(B, lane) then
    r = FF.efirst(P, scan)
    for i = 1, #r, 2 do out[#out + 1] = { r[i], tonumber(r[i + 1]), "pend", B } end
    merged = #r > 0
  end
  if not (no_reclaim ~= nil and no_reclaim[B]) then
    r = C("ZRANGE", K.lane(B, lane, "reclaim"), 0, scan - 1, "WITHSCORES")
    if #r == 0 and no_reclaim ~= nil then no_reclaim[B] = true end
    for i = 1, #r, 2 do out[#out + 1] = { r[i], tonumber(r[i + 1]), "reclaim" } end
    merged = merged or #r > 0
  end
  if merged then
    -- (ties of one score are in id order: every id converted first)
    for i = 1, #out do FF.cand_id(out[i]) end
    table.sort(out, claim_order)
  end
  return out
end

-- The claim of a worker limited to kinds looks at the first a.scan candidates of the lane's indexes
-- on a partition, as every claim does; when none is for it and the eligible index holds more, it
-- reads the heads of the lane's kind indexes (FF.kind_set: K.lane_kind, or the eligible index while
-- the lane has one kind; and the pending set for its kind) of its kinds instead, so that its work
-- is found behind any number of executions of other kinds. An eligible execution is in the index
-- of its lane and kind from FF.make_eligible until its lease (FF.lease_on) or its terminal
-- transition (FF.unindex); an entry left otherwise (a flow blocked the execution again) is dropped
-- when read here. Up to `per` live entries of each kind are returned (a capability or a grant may
-- still rule them out), reading at most `budget` entries in all, as candidates in claim order.
function FF.kind_candidates(B, lane, kinds, per, budget)
  local out = {}
  local sets, src = {}, {}
  local pk = FF.kpending_kind(B, lane)
  for _, kind in ipairs(kinds) do
    local set = FF.kind_set(B, lane, kind)
    if set ~= nil then sets[#sets + 1], src[#sets + 1] = { set, kind }, "eligible" end
    if kind == pk then
      local _, P = FF.lane_sets(B, lane)
      sets[#sets + 1], src[#sets + 1] = { P, kind }, "pend"
    end
  end
  for j, sk in ipairs(sets) do
    if budget <= 0 then break end
    local set, kind = sk[1], sk[2]
    local it = FF.eiter(set)
    local r = FF.enext(it, math.min(per, budget))
    local live = 0
    while #r > 0 and live < per and budget > 0 do
      for i = 1, #r, 2 do
        if live >= per or budget <= 0 then break end
        budget = budget - 1
        local e = FF.eid(B, r[i])
        local st = C("HMGET", K.core(B, e), "sv", FF.CF.lane_id, FF.CF.execution_kind)
        local sv = FF.sv_decode(st[1])
        if sv[1] == "runnable" and sv[3] == "eligible_now" and st[2] == lane and (st[3] or "") == kind then
          live = live + 1
          out[#out + 1] = { e, tonumber(r[i + 1]), src[j] }
        else
          FF.edrop(it, tonumber(r[i + 1]), r[i])
        end
      end
      if live >= per or budget <= 0 then break end
      r = FF.enext(it, math.min(per, budget))
    end
  end
  table.sort(out, claim_order)
  return out
end

-- The core of candidate `e` of index `kind` ("eligible" / "pend" / "reclaim") when it really is
-- claimable there, else nil (its stale entry is removed from the index). `r`: the core's HGETALL
-- reply when read already.
function FF.candidate_core(B, e, kind, lane, score, r)
  local c
  if r ~= nil then c = FF.core_of(r) else c = FF.core(B, e) end
  local stale = false
  if kind ~= "reclaim" then
    stale = c == nil or c.lifecycle_phase ~= "runnable" or c.eligibility_state ~= "eligible_now" or c.lane_id ~= lane
    if stale then
      local E, P = FF.lane_sets(B, lane)
      FF.erem(kind == "pend" and P or E, score, FF.emembers(e))
      return nil
    end
  else
    if c == nil or c.lifecycle_phase ~= "active" or
        (c.ownership_state ~= "lease_expired_reclaimable" and c.ownership_state ~= "lease_revoked") then
      C("ZREM", K.lane(B, lane, kind), e)
      return nil
    end
  end
  return c
end

-- Tries the first `limit` candidates of `cands` in order (skipping those in `tried`, when given,
-- and adding them to it; passing over those of a kind not in a.kinds_set, see FF.kinds_of);
-- returns the claim reply, or nil when none could be served. With a
-- `bound` (a claim score), the first candidate this worker may take is taken only when its score
-- is <= bound; otherwise the reply is LATER with its score and the lane head (the caller knows a
-- partition that may hold a better one). Nothing is written for a LATER candidate.
-- `next_head`, when given, is the lane head once the first candidate is claimed (known from the
-- candidates read), unless the claim made other work claimable.
-- (FF.claim_lane_check marks the arguments it passed with this table, which no JSON argument can
-- be: the claims of its batch skip the checks it made, and lease a plain first attempt by
-- FF.claim_plain)
local CHECKED = {}
-- The candidates a batch of claims (FF.claim_lane_run) read ahead, per partition base: the
-- eligible index's first entries, read once for several claims of the batch instead of two per
-- claim (docs/design/valkey.md#the-workers-hot-path). {r = flat member, score list as FF.efirst
-- answers, i = the position of the next entry, all = r holds every entry of the index, size = the
-- entries asked for}. It serves a claim of `lane` on a partition whose reclaim index the batch
-- found empty and with no pending set, and only while the index lost nothing but the entries the
-- batch's direct first leases (FF.claim_plain) took, in order: any other outcome of a claim there
-- (the general path, a stale entry, LATER, NOMATCH, EMPTY, work made claimable) drops it, and the
-- next claim reads again. Each read asks for twice the entries of the last one on that partition,
-- up to the claims the batch has left (plus the next head): a batch spread over many partitions
-- reads two entries per visit, as a single claim does. nil outside a batch (and only a batch's
-- claims, whose a.no_reclaim FF.claim_lane_run sets, look at it).
-- (one table for the library's locals: ahead = the read-ahead, nil outside a batch; hit = the last
-- FF.claim_from leased its first candidate by FF.claim_plain)
local AH = { ahead = nil, hit = false, MAX = 129 }
-- The first two candidates of `lane` on `B` for a claim of a batch (FF.candidates' entries),
-- from what the batch read ahead; `want`: the claims the batch has left, plus one.
function AH.heads(B, lane, want)
  local t = AH.read(B, lane, want)
  local r, i, out = t.r, t.i, {}
  if r[i] ~= nil then out[1] = { r[i], FF.tonum(r[i + 1]), "eligible", B } end
  if r[i + 2] ~= nil then out[2] = { r[i + 2], FF.tonum(r[i + 3]), "eligible", B } end
  return out
end
-- What the batch read ahead on `B` (AH.ahead's entry), read (again) when fewer than two of its
-- entries are left and the index may hold more.
function AH.read(B, lane, want)
  local ahead = AH.ahead
  local t = ahead[B]
  if t ~= nil and not t.all and t.i + 2 >= #t.r then
    -- (fewer than two entries left of a read that did not reach the end: read on, twice as many)
    t = { size = math.min(math.max(2 * t.size, 2), want, AH.MAX) }
    ahead[B] = t
  elseif t == nil then
    t = { size = 2 }
    ahead[B] = t
  end
  if t.r == nil then
    local E = FF.lane_sets(B, lane)
    t.r = FF.efirst(E, t.size)
    t.i = 1
    t.all = #t.r < 2 * t.size
  end
  return t
end
-- The OK reply of a claim of `lane` (`info`: its 7 fields; `c`: the claimed core, kept for a
-- batch that reads the inputs)
local function claimed(B, a, now, lane, info, c, next_head)
  FF.drain(B, now)
  if next_head == nil or FF.woke then next_head = FF.lane_head(B, lane) end
  info[#info + 1] = next_head
  -- (a batch of claims keeps the claimed cores: ff_complete_claim reads their inputs there)
  local kept = a.cores
  if kept ~= nil then kept[#kept + 1] = c end
  return FF.ok("OK", unpack(info))
end
function FF.claim_from(B, a, now, lane, caps, cands, limit, tried, bound, next_head)
  for i = 1, math.min(limit, #cands) do
    local cand = cands[i]
    local e, kind = FF.cand_id(cand), cand[3]
    if tried == nil or not tried[e] then
      if tried ~= nil then tried[e] = true end
      FF.grant_seen = false
      local c, info = nil, nil
      if a.checked == CHECKED and kind ~= "reclaim" then
        local ck = K.core(B, e)
        local r = C("HGETALL", ck)
        info, c = FF.claim_plain(B, e, r, a, now, lane, cand[2], bound, ck)
        if info then
          AH.hit = i == 1
          return claimed(B, a, now, lane, info, c, next_head)
        end
        c = FF.candidate_core(B, e, kind, lane, cand[2], r)
      else
        c = FF.candidate_core(B, e, kind, lane, cand[2])
      end
      if c ~= nil and FF.kind_ok(c, a.kinds_set) then
        local ok, _ = FF.caps_ok(c.required_capabilities, caps)
        if not ok then
          FF.cset(B, e, c, { "last_capability_mismatch_at", FF.s(now) })
        elseif c.grant_pending == "" or not FF.grant_blocks(B, e, a.worker_id, now) then
          if bound ~= nil and cand[2] > bound then
            FF.drain(B, now)
            return FF.ok("LATER", FF.s(cand[2]), FF.lane_head(B, lane))
          end
          if FF.grant_seen then C("DEL", K.ex(B, e, "grant")) end
          if kind == "reclaim" then
            info = FF.claim_reclaim(B, e, c, now, a)
            -- past the reclaim cap it failed: its dependents are resolved before the next
            -- candidate is read (one it skips is no candidate any more), as in a step of its own
            if info == nil then FF.drain(B, now) end
          elseif c.attempt_state == "attempt_interrupted" then
            info = FF.claim_resume(B, e, c, now, a.lease_id, a.worker_id, a.worker_instance_id, a.lease_ttl_ms)
          else
            info = FF.claim_fresh(B, e, c, now, a)
          end
          if info ~= nil then return claimed(B, a, now, lane, info, c, next_head) end
        end
      end
    end
  end
  return nil
end

-- ff_claim (docs/design/executions.md#claiming): the best candidate of the lane on this partition
-- for this worker is leased: the heads first, then up to a.scan candidates (kind and capability
-- filtering, grants held by others, stale index entries). One visit of the claim-hint walk (below).
-- Whatever it answers, it first moves a step of the lane's pending set back while the lane
-- switches to kind indexes (FF.kind_step, indexes.lua: no read can tell the sets apart).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {lane, worker_id, worker_instance_id, caps, kinds?, lease_ttl_ms, scan,
--           lease_id, attempt_id, bound?}; kinds: the execution kinds the worker runs (absent: any);
--           bound: a claim score, the best another partition may still hold
--           for this lane: a candidate worse than it is not taken (LATER, see FF.claim_from)
--   reply:  {1, "OK", wake, execution id, attempt index, attempt id, lease id, lease epoch, lease
--           expiry, "fresh" | "resumed", the lane's next head ("" when none)}
--           | {1, "EMPTY", wake} nothing claimable on the lane here
--           | {1, "NOMATCH", wake, lane head} work exists, none of it for this worker
--           | {1, "LATER", wake, the score of the best candidate for this worker, lane head}
--   errors: invalid_input
-- the arguments of a claim (a batch of claims sets lease_id / attempt_id per claim)
local CLAIM_ARGS = { "lane", "s", "worker_id", "s", "worker_instance_id", "s", "lease_ttl_ms", "n" }
local CLAIM_IDS = { "lease_id", "s", "attempt_id", "s" }

FF.fn.claim = function(B, a, now)
  if a.checked ~= CHECKED then
    local bad = FF.need("claim", a, CLAIM_ARGS) or FF.need("claim", a, CLAIM_IDS)
    if bad then return bad end
    local _, bad_kinds = FF.kinds_of("claim", a)
    if bad_kinds then return bad_kinds end
  end
  local lane = a.lane
  -- (a batch of claims shares its arguments: the capability set is built once)
  local caps = a.caps_set
  if caps == nil then
    caps = FF.caps_set(a.caps)
    a.caps_set = caps
  end
  local bound = tonumber(a.bound or "")
  FF.kind_step(B, lane)
  -- (a claim of a batch reads what the batch read ahead on this partition, when it may: above)
  local heads
  local ahead = AH.ahead
  local batch = a.checked == CHECKED and ahead ~= nil and a.no_reclaim ~= nil and a.no_reclaim[B] and
    not FF.kpending(B, lane)
  if batch then
    heads = AH.heads(B, lane, a.ahead_want or 2)
  else
    if ahead ~= nil then ahead[B] = nil end
    heads = FF.candidates(B, lane, 2, a.no_reclaim)
  end
  if #heads == 0 then
    if batch then ahead[B] = nil end
    return FF.ok("EMPTY")
  end
  -- only the best head: when it is not for this worker, the other index's head is not the next
  -- best (the merged scan below is), so the order stays priority then FIFO (docs/design/executions.md#claim-order).
  -- With two entries of each index read, the one after it is the next head.
  local next_head = ""
  if #heads > 1 then next_head = FF.s(heads[2][2]) end
  AH.hit = false
  local r = FF.claim_from(B, a, now, lane, caps, heads, 1, nil, bound, next_head)
  if batch then
    -- (the head taken by a direct first lease, nothing made claimable: the next entry is the
    -- next head; else what was read ahead here is dropped)
    if r ~= nil and AH.hit and not FF.woke then
      local t = ahead[B]
      t.i = t.i + 2
    else
      ahead[B] = nil
    end
  end
  if r ~= nil then return r end
  local scan = math.max(1, FF.num(a.scan, 32))
  local cands = FF.candidates(B, lane, scan)
  local tried = { [FF.cand_id(heads[1])] = true }
  r = FF.claim_from(B, a, now, lane, caps, cands, #cands, tried, bound)
  if r ~= nil then return r end
  if a.kinds_set and FF.eligible_more(B, lane, scan) then
    cands = FF.kind_candidates(B, lane, a.kinds, 4, 4 * scan)
    r = FF.claim_from(B, a, now, lane, caps, cands, #cands, tried, bound)
    if r ~= nil then return r end
  end
  FF.drain(B, now)
  local head = FF.lane_head(B, lane)
  if head == "" then return FF.ok("EMPTY") end
  return FF.ok("NOMATCH", head)
end

-- --- the claim hints and the claim-hint walk ----------------------------------------------
-- A claim takes the globally best candidate of a lane for this worker (priority then FIFO,
-- docs/design/executions.md#claim-order), as memory does, without visiting every partition.
-- Each lane has a claim hint, `<prefix>:hint:<lane>`: a sorted set of the partitions that may
-- have claimable work on the lane, each scored by a lower bound of its best claim score. Every
-- path that makes a candidate claimable lowers its partition's hint to the candidate's score
-- (the call's wake, ZADD LT: inside the call on a standalone server, FF.apply_wakes; on a
-- cluster, where the hint lives in another slot, by the layer right after the call); a hint is
-- raised only to its partition's real head (FF.lane_head), by a claim that visited it.
-- The head may still need a capability the worker lacks, or be gone (a "stale" hint: e.g.
-- applyDependencyToChild blocked it). So the walk visits the hint entries best first (ties from a
-- random start, so that concurrent claimers spread over them) and gives each visit a bound, the
-- smaller of the next entry's hint and the best candidate deferred so far: a partition only
-- leases a candidate that scores <= bound; else it reports its best candidate for this worker
-- (LATER, nothing written) and the walk goes on. Once the deferred candidate is no worse than the
-- next hint (or the hints run out), the walk comes back to its partition. Each visited
-- partition's hint is set to its real head (removed when it has nothing claimable), so a stale
-- hint costs one visit once. A hint update lost with a client that died between a call and its
-- hint write (a cluster) is repaired by the promoteDelayed pass, which reports every lane with
-- claimable work (ff_pass_due).
-- Where the walk runs: on a standalone server one call may reach every key, so ff_claim_lane runs
-- it here, with the claims and the hint updates, in one FCALL (one round trip instead of three);
-- it visits at most a.max_visits partitions (a revisit of the deferred one apart), and past that
-- (status MORE) the layer continues the same walk. On a cluster, and for every claimForWorker
-- (ff_issue_grant), the layer runs the same walk, one FCALL per partition (valkey/internal/claim.ts
-- `boundedWalk`).

-- The walk over a lane's hint entries {partition, score, member, stored score}, kept in score
-- order (ties in a random order) across all the claims of one call. Entries are loaded from the
-- hint key in pages that grow (a single claim needs the first two); an entry is in order only up
-- to `frontier`, the last loaded score, so a visited partition whose head moved past it waits for
-- the next page. Hint writes wait for the end of the call (walk_end), so the positions of the
-- entries not loaded yet stay valid (a wake only moves a visited, hence loaded, partition ahead).
local function walk_new(H, n, prefix)
  return {
    key = H, n = n, prefix = prefix, bases = FF.partition_bases(prefix), entries = {}, offset = 0, page = 2,
    done = false, frontier = nil,
    fix = {}, moved = {}, nmoved = 0
  }
end

-- Inserts `ent` after the entries of no greater score (binary search).
local function walk_insert(w, ent)
  local es = w.entries
  local lo, hi = 1, #es + 1
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if es[mid][2] <= ent[2] then lo = mid + 1 else hi = mid end
  end
  table.insert(es, lo, ent)
end

-- Loads the next page of the hint key (partitions out of range are dropped at the end), each
-- group of equal scores in a random rotation.
local function walk_load(w)
  local page = C("ZRANGE", w.key, w.offset, w.offset + w.page - 1, "WITHSCORES")
  w.offset = w.offset + w.page
  if #page < 2 * w.page then w.done = true end
  w.page = math.min(w.page * 4, 64)
  if #page > 0 then w.frontier = tonumber(page[#page]) end
  local got = {}
  for j = 1, #page, 2 do
    local p = tonumber(page[j])
    if p == nil or p ~= math.floor(p) or p < 0 or p >= w.n then
      w.fix[page[j]] = ""
    else
      local score = tonumber(page[j + 1])
      got[#got + 1] = { p, score, page[j], score }
    end
  end
  local s = 1
  while s <= #got do
    local last = s
    while last < #got and got[last + 1][2] == got[s][2] do last = last + 1 end
    local size = last - s + 1
    local shift = 0
    if size > 1 then shift = math.random(0, size - 1) end
    for j = 0, size - 1 do walk_insert(w, got[s + ((j + shift) % size)]) end
    s = last + 1
  end
end

-- The entry at position i of the walk in score order (nil past the end).
local function walk_at(w, i)
  while true do
    local ent = w.entries[i]
    if w.done or (ent ~= nil and ent[2] <= w.frontier) then return ent end
    walk_load(w)
  end
end

-- A visited partition's head is now `head` ("": nothing claimable; `gone`: nothing for this
-- worker, which stays so for the rest of the call): its entry moves (or leaves the walk), and its
-- hint is set at the end.
local function walk_moved(w, ent, head, gone)
  local es = w.entries
  for j = 1, #es do
    if es[j] == ent then
      table.remove(es, j)
      break
    end
  end
  if head ~= "" and not gone then
    ent[2] = FF.tonum(head)
    walk_insert(w, ent)
  end
  if head == "" or FF.tonum(head) ~= ent[4] then w.fix[ent[3]] = head end
end

-- Applies the hint updates of the walk.
local function walk_end(w)
  for member, head in pairs(w.fix) do
    if head == "" then
      C("ZREM", w.key, member)
    else
      C("ZADD", w.key, "XX", head, member)
    end
  end
end

-- Applies the heads the visits of one claim reported (w.moved) to the walk, and returns `r`.
local function walk_visited(w, r)
  local moved = w.moved
  for j = 1, w.nmoved, 3 do walk_moved(w, moved[j], moved[j + 1], moved[j + 2]) end
  w.nmoved = 0
  return r
end

-- The next claim of a batch, leased directly when the walk's first visit would be a partition
-- whose candidates the batch read ahead (AH, above): the same visit as FF.claim_lane_one's first
-- (its bound the next entry's hint) and the same lease as FF.fn.claim's batch path would make
-- (FF.claim_plain on the head, the next head the entry after it), without its steps in between.
-- Appends the claim's 8 fields to `reply` and returns true; returns false, having written
-- nothing, when the claim is not that one (no read-ahead there, a bound below the head, a core
-- not in the plain shape): FF.claim_lane_one then makes it.
function AH.next_plain(w, a, now, reply)
  local ahead = AH.ahead
  local ent = walk_at(w, 1)
  if ent == nil or FF.num(a.max_visits, 8) <= 0 then return false end
  local p = ent[1]
  local B, lane = w.bases[p], a.lane
  if ahead[B] == nil or not a.no_reclaim[B] or FF.kpending(B, lane) then return false end
  local nxt = walk_at(w, 2)
  local bound = nxt and nxt[2]
  FF.begin()
  -- (the head and the next entry as AH.heads gives them, without its tables)
  local t = AH.read(B, lane, a.ahead_want or 2)
  local r, i = t.r, t.i
  local m = r[i]
  if m == nil then return false end
  local score = FF.tonum(r[i + 1])
  if bound ~= nil and score > bound then return false end
  local e = FF.eid(B, m)
  local ck = K.core(B, e)
  local info, c = FF.claim_plain(B, e, C("HGETALL", ck), a, now, lane, score, bound, ck)
  if not info then
    ahead[B] = nil
    return false
  end
  -- (as claimed(): what finished is resolved, the next head known unless work became claimable)
  FF.drain(B, now)
  local head
  if FF.woke then
    head = FF.lane_head(B, lane)
    ahead[B] = nil
  else
    head = r[i + 2] ~= nil and FF.s(FF.tonum(r[i + 3])) or ""
    t.i = i + 2
  end
  FF.apply_wakes(w.prefix, p)
  local kept = a.cores
  if kept ~= nil then kept[#kept + 1] = c end
  local m = #reply
  for j = 1, 7 do reply[m + j] = info[j] end
  reply[m + 8] = head
  walk_moved(w, ent, head, false)
  return true
end

-- One claim of ff_claim_lane: the walk above, from its start, over `w` (the hint entries loaded
-- so far, shared by the claims of one call). Returns ff_claim's OK reply (its wakes applied, its
-- wake field ""), {1, "EMPTY", ""} (no hint left), {1, "MORE", ""} (a.max_visits visits, default
-- 8, served nothing), or ff_claim's refusal.
function FF.claim_lane_one(w, a, now)
  local prefix = w.prefix
  local budget = FF.num(a.max_visits, 8)
  local i = 1
  -- the deferred candidate: its score and hint entry
  local best, bestent = nil, nil
  while true do
    local ent = walk_at(w, i)
    local visit, bound
    if best ~= nil and (ent == nil or best <= ent[2]) then
      visit = bestent
      if ent ~= nil then bound = ent[2] end
      best = nil
    elseif ent == nil then
      FF.begin()
      return walk_visited(w, FF.ok("EMPTY"))
    else
      if budget <= 0 then
        FF.begin()
        return walk_visited(w, FF.ok("MORE"))
      end
      budget = budget - 1
      visit = ent
      i = i + 1
      local nxt = walk_at(w, i)
      if nxt ~= nil then bound = nxt[2] end
      if best ~= nil and (bound == nil or best < bound) then bound = best end
    end
    local p = visit[1]
    FF.begin()
    a.bound = bound
    local r = FF.fn.claim(w.bases[p], a, now)
    FF.apply_wakes(prefix, p)
    if r[1] ~= 1 then return walk_visited(w, r) end
    local st = r[2]
    local head = ""
    if st == "OK" then
      head = r[#r]
    elseif st == "LATER" then
      -- (visited with the deferred candidate as its bound, a partition answers a worse one)
      local score = tonumber(r[4])
      if best == nil or score < best then best, bestent = score, visit end
      head = r[5]
    elseif st == "NOMATCH" then
      head = r[4]
    end
    local m = w.nmoved
    w.moved[m + 1], w.moved[m + 2], w.moved[m + 3] = visit, head, st == "NOMATCH"
    w.nmoved = m + 3
    if st == "OK" then
      r[3] = ""
      return walk_visited(w, r)
    end
  end
end

-- ff_claim_lane (standalone servers only): up to #a.lease_ids claims in one call, each exactly as
-- a single claim (its ids a.lease_ids[i] / a.attempt_ids[i]), sharing one walk of the hints; the
-- batch ends at the first claim that is not OK. An error after the first claim ends the batch
-- with what was claimed (each claim is complete on its own).
--   KEYS:   [1] the lane's claim hint `<prefix>:hint:<lane>`
--   ARGV:   [1] now, [2] {lane, worker_id, worker_instance_id, caps, kinds?, lease_ttl_ms, scan,
--           prefix, partitions, max_visits, lease_ids, attempt_ids}
--   reply:  {1, status, "", last_status, 8 fields per claim (ff_claim's OK fields)...}: status is
--           OK when anything was claimed, else last_status; last_status is why the batch ended:
--           OK (served whole), EMPTY (no hint left), MORE (max_visits reached: the layer walks on),
--           ERROR (a claim after the first failed)
--   errors: invalid_input (lease_ids / attempt_ids, the claim's arguments)
FF.fn.claim_lane = function(H, a, now)
  local bad = FF.claim_lane_check(a)
  if bad then return bad end
  return FF.claim_lane_run(H, a, now)
end

-- The checks of ff_claim_lane's arguments (nil: they pass), made before its first write.
function FF.claim_lane_check(a)
  local lease_ids, attempt_ids = a.lease_ids, a.attempt_ids
  if type(lease_ids) ~= "table" or type(attempt_ids) ~= "table" or #lease_ids == 0 or
      #lease_ids ~= #attempt_ids then
    return FF.err("invalid_input", "claim: lease_ids / attempt_ids")
  end
  local bad = FF.need("claim", a, CLAIM_ARGS) or FF.need("claim", a, { "prefix", "s" })
  if bad then return bad end
  local _, bad_kinds = FF.kinds_of("claim", a)
  if bad_kinds then return bad_kinds end
  for i = 1, #lease_ids do
    if type(lease_ids[i]) ~= "string" or type(attempt_ids[i]) ~= "string" then
      return FF.err("invalid_input", "claim: lease_ids / attempt_ids")
    end
  end
  a.checked = CHECKED
  return nil
end

-- ff_claim_lane once its arguments passed FF.claim_lane_check: its reply.
function FF.claim_lane_run(H, a, now)
  local lease_ids, attempt_ids = a.lease_ids, a.attempt_ids
  local w = walk_new(H, FF.num(a.partitions), a.prefix)
  a.no_reclaim = {}
  AH.ahead = {}
  local reply, n, last, wake = { 1, "OK", "", "OK" }, 0, "OK", ""
  for i = 1, #lease_ids do
    a.lease_id = lease_ids[i]
    a.attempt_id = attempt_ids[i]
    a.ahead_want = #lease_ids - i + 2
    if AH.next_plain(w, a, now, reply) then
      wake = ""
    else
      local r = FF.claim_lane_one(w, a, now)
      if r[1] ~= 1 then
        if n == 0 then
          AH.ahead = nil
          walk_end(w)
          return r
        end
        last = "ERROR"
        break
      end
      wake = r[3]
      if r[2] ~= "OK" then
        last = r[2]
        break
      end
      for j = 4, 11 do reply[#reply + 1] = r[j] end
    end
    n = n + 1
  end
  AH.ahead = nil
  walk_end(w)
  reply[2], reply[3], reply[4] = n > 0 and "OK" or last, wake, last
  return reply
end

-- Appends to `out` the claims of `r` (ff_claim_lane's reply, or a refusal) as ff_complete_claim
-- answers them: status, last_status, n, 8 fields per claim, then per claim 5 fields ("1" with its
-- input / "0" without, the kind, namespace, payload encoding, trace), then per claim its payload.
-- The inputs are read while the payloads total at most a.budget bytes (past it: the caller reads
-- that input); a.cores holds the claimed executions' cores (FF.claim_from keeps them there).
local function claims_out(r, a, out)
  local m = #out
  if r[1] ~= 1 then
    out[m + 1], out[m + 2], out[m + 3] = "ERROR", "ERROR", "0"
    return out
  end
  local n = (#r - 4) / 8
  out[m + 1], out[m + 2], out[m + 3] = r[2], r[4], FF.s(n)
  m = m + 3
  for j = 5, #r do out[m + j - 4] = r[j] end
  local budget = FF.num(a.budget)
  local used, payloads = 0, {}
  local cores = a.cores
  -- (each claim read its execution's whole core: its fields are taken there, not read again;
  -- a claim changes none of them)
  local sk, sns, spe, str, sp = "execution_kind", "namespace", "payload_encoding", "trace", FF.PAYLOAD_FIELD
  for i = 1, n do
    local e = r[4 + (i - 1) * 8 + 1]
    local c = cores[i]
    -- an input in the core (FF.INLINE_PAYLOAD) was read with it, a larger one is read from its key
    local inline, pk = rawget(c, sp), nil
    if inline then
      used = used + #inline
    else
      pk = K.ex(a.prefix .. ":" .. string.match(e, "^({fp:%d+})"), e, "payload")
      used = used + C("STRLEN", pk)
    end
    if used <= budget then
      out[#out + 1] = "1"
      payloads[i] = inline or C("GET", pk) or ""
    else
      out[#out + 1] = "0"
      payloads[i] = ""
    end
    local k = #out
    out[k + 1], out[k + 2], out[k + 3], out[k + 4] =
      rawget(c, sk) or "", rawget(c, sns) or "", rawget(c, spe) or "", rawget(c, str) or ""
  end
  for i = 1, n do out[#out + 1] = payloads[i] end
  return out
end

-- ff_complete_claim (completeAndClaim on a standalone server): ff_complete_many's completions
-- (none: a claim alone), then ff_claim_lane's claims (none when lease_ids is empty), which see
-- what the completions made claimable, and each claimed execution's input, read in the same call
-- while the payloads total at most a.budget bytes (past it: the caller reads that input).
--   KEYS:   [1] the lane's claim hint `<prefix>:hint:<lane>`
--   ARGV:   [1] now, [2] ff_claim_lane's arguments + {items or fi, fn (as ff_complete_many's,
--           maybe none), budget}, [2 + blob] the result of an item that has one (or staged), [fi ..]
--           the items' fields
--   reply:  {1, "OK", "", #items, one field per item as ff_complete_many's, status, last_status
--           (ff_claim_lane's; "OK", "EMPTY" without claims), n (claims), 8 fields per claim
--           (ff_claim's OK fields), then per claim 5 fields: "1" with its input / "0" without,
--           the kind, namespace, payload encoding, trace; then per claim its payload}
--   errors: invalid_input (items, prefix, an item's partition, the claim's arguments, budget),
--           before the first write; an error of the first claim ends the call with it
FF.fn.complete_claim = function(H, a, now, _, _, argv)
  local items, bad_items = FF.complete_items_of("complete_claim", a, argv)
  if items == nil then return bad_items end
  local bad = FF.need("complete_claim", a, { "prefix", "s", "budget", "n" }) or
    FF.need_each("complete_claim", items, { "execution_id", "s" })
  if bad then return bad end
  local claims = type(a.lease_ids) == "table" and #a.lease_ids > 0
  if claims then
    bad = FF.claim_lane_check(a)
    if bad then return bad end
  end
  bad = FF.bad_partition(items, FF.num(a.partitions))
  if bad then return FF.err("invalid_input", "complete_claim: partition of item " .. FF.s(bad)) end
  local out = { 1, "OK", "", FF.s(#items) }
  local done = FF.complete_items(items, a.prefix, now, argv)
  for i = 1, #done do out[#out + 1] = done[i] end
  if not claims then
    local m = #out
    out[m + 1], out[m + 2], out[m + 3] = "EMPTY", "EMPTY", "0"
    return out
  end
  a.cores = {}
  return claims_out(FF.claim_lane_run(H, a, now), a, out)
end

-- ff_create_claim (createExecution made in a process whose idle worker waits on the lane, docs/
-- worker.md, "Wake-ups, timers and cancellation"): ff_create, then that worker's claim on the
-- create's lane, as two calls of their own in a row (FF.call_next between them: the create's
-- claim hints, events and wake-ups are written first, nothing of the claim folds into the
-- create's events), in one FCALL. On a standalone server (claim.partitions given) the claim is
-- ff_complete_claim's without completions: ff_claim_lane's walk over the lane's partitions, up to
-- #lease_ids claims with their inputs. On a cluster the call stays in the create's slot: one
-- claim on this partition as ff_claim's without a bound (the worker waits, so its last claim
-- found nothing for it on the lane), and its input. A claim that fails leaves the create answered
-- (status ERROR, nothing claimed: the worker claims itself).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] ff_create's arguments + {claim = {worker_id, worker_instance_id, caps,
--           kinds?, lease_ttl_ms, scan, lease_ids, attempt_ids, prefix, budget, partitions?,
--           max_visits?}} (the claim's lane is the create's; on a cluster the first ids only are
--           used), [3] the payload (or staged), [4] the policy JSON
--   reply:  {1, "OK" | "DUPLICATE", wake, execution id, public state ("" for a DUPLICATE),
--           the claim's wake (a cluster's: as a reply's wake), the partition's lane head after
--           the claim (a cluster's; "" when none), then the claims as ff_complete_claim's: status,
--           last_status, n, ...}
--   errors: invalid_input (the create's or the claim's arguments), before the first write
FF.fn.create_claim = function(B, a, now, payload, policy_json)
  local cl = a.claim
  if type(cl) ~= "table" then return FF.err("invalid_input", "create_claim: claim") end
  local bad = FF.need("create", a, FF.CREATE_ARGS) or FF.need("create_claim", cl, { "budget", "n" })
  if bad then return bad end
  cl.lane = a.lane_id
  bad = FF.claim_lane_check(cl)
  if bad then return bad end
  local out = FF.ok(FF.create_one(B, a, now, payload, policy_json))
  if out[2] ~= "OK" then out[5] = "" end
  local walk = cl.partitions ~= nil
  FF.call_next(walk and cl.prefix or nil)
  cl.cores = {}
  local ok, claimed = pcall(function()
    -- the claim's wake and head, then its claims
    local part = { "", "" }
    if walk then return claims_out(FF.claim_lane_run(cl.prefix .. ":hint:" .. cl.lane, cl, now), cl, part) end
    cl.lease_id, cl.attempt_id = cl.lease_ids[1], cl.attempt_ids[1]
    local one = FF.fn.claim(B, cl, now)
    if one[1] ~= 1 then return claims_out(one, cl, part) end
    local st = one[2]
    part[1] = one[3]
    -- (EMPTY: no head; NOMATCH: its head; OK: the lane's next head, its last field)
    part[2] = one[#one]
    if st == "EMPTY" then part[2] = "" end
    local r = { 1, st, "", st }
    if st == "OK" then
      for j = 4, #one do r[#r + 1] = one[j] end
    end
    return claims_out(r, cl, part)
  end)
  if not ok then claimed = { "", "", "ERROR", "ERROR", "0" } end
  for j = 1, #claimed do out[#out + 1] = claimed[j] end
  return out
end

-- The grant of ff_issue_grant on the first of the eligible candidates `cands` (those in `seen`
-- apart) the worker may take; its reply, or nil when none.
local function grant_first(B, a, now, lane, caps, kinds, bound, cands, seen)
  for _, cand in ipairs(cands) do
    local e, kind = FF.cand_id(cand), cand[3]
    if kind ~= "reclaim" and (seen == nil or not seen[e]) then
      local c = FF.candidate_core(B, e, kind, lane, cand[2])
      if c ~= nil and FF.kind_ok(c, kinds) then
        local ok, _ = FF.caps_ok(c.required_capabilities, caps)
        if not ok then
          FF.cset(B, e, c, { "last_capability_mismatch_at", FF.s(now) })
        elseif c.grant_pending == "" or not FF.grant_blocks(B, e, a.worker_id, now) then
          if bound ~= nil and cand[2] > bound then
            return FF.ok("LATER", FF.s(cand[2]), FF.lane_head(B, lane))
          end
          local exp = now + FF.num(a.grant_ttl_ms)
          local gk = K.ex(B, e, "grant")
          C("HSET", gk, "worker_id", a.worker_id, "worker_instance_id", a.worker_instance_id, "lane_id", lane,
            "created_at", FF.s(now), "grant_expires_at", FF.s(exp))
          -- the key outlives the grant by a minute of real time; expiry is judged on grant_expires_at
          C("PEXPIRE", gk, FF.int_arg(a.grant_ttl_ms + 60000, 60000))
          -- claims look for a grant only when the core says one may exist (the next lease clears it)
          FF.cset(B, e, c, { "grant_pending", "1" })
          return FF.ok("OK", e, gk, FF.s(exp), FF.lane_head(B, lane))
        end
      end
    end
  end
  return nil
end

-- ff_issue_grant (claimForWorker, docs/design/executions.md#grants): a grant on the best eligible
-- candidate of the lane for this worker on this partition (kinds, capabilities; a live grant of
-- another worker reserves its execution, the worker's own grant is renewed). One visit of the
-- claim-hint walk (above), which the layer runs, so the grant goes to the best candidate of the
-- whole lane. It moves a step of a pending set back first, as ff_claim does.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {lane, worker_id, worker_instance_id, caps, kinds?, grant_ttl_ms, scan,
--           bound?} (kinds as ff_claim's)
--           (bound as ff_claim's: a candidate worse than it is not granted)
--   reply:  {1, "OK", wake, execution id, grant key, grant expiry, lane head}
--           | {1, "EMPTY", wake} | {1, "NOMATCH", wake, lane head}
--           | {1, "LATER", wake, the candidate's score, lane head} (no grant written)
--   errors: invalid_input
FF.fn.issue_grant = function(B, a, now)
  local bad = FF.need("issue_grant", a,
    { "lane", "s", "worker_id", "s", "worker_instance_id", "s", "grant_ttl_ms", "n" })
  if bad then return bad end
  local kinds, bad_kinds = FF.kinds_of("issue_grant", a)
  if bad_kinds then return bad_kinds end
  local lane = a.lane
  local caps = FF.caps_set(a.caps)
  local bound = tonumber(a.bound or "")
  local scan = math.max(1, FF.num(a.scan, 32))
  FF.kind_step(B, lane)
  local cands = FF.candidates(B, lane, scan)
  if #cands == 0 then return FF.ok("EMPTY") end
  local r = grant_first(B, a, now, lane, caps, kinds, bound, cands, nil)
  if r ~= nil then return r end
  if kinds and FF.eligible_more(B, lane, scan) then
    local seen = {}
    for _, cand in ipairs(cands) do seen[FF.cand_id(cand)] = true end
    r = grant_first(B, a, now, lane, caps, kinds, bound, FF.kind_candidates(B, lane, a.kinds, 4, 4 * scan), seen)
    if r ~= nil then return r end
  end
  local head = FF.lane_head(B, lane)
  if head == "" then return FF.ok("EMPTY") end
  return FF.ok("NOMATCH", head)
end

-- ff_claim_resumed (claimResumedExecution and claimFromReclaim, docs/design/executions.md#grants):
-- the worker holding a grant on an interrupted execution leases its attempt again (the grant is
-- used up).
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {execution_id, worker_id, worker_instance_id, lease_id, lease_ttl_ms,
--           remaining_timeout_ms?}
--   reply:  {1, "OK", wake, ff_claim's 7 claim fields (kind "resumed"), the lane id}
--   errors: invalid_input, execution_not_found, execution_not_leaseable (not runnable),
--           not_a_resumed_execution, invalid_claim_grant (none, or another worker's),
--           claim_grant_expired (the expired grant is deleted)
FF.fn.claim_resumed = function(B, a, now)
  local bad = FF.need("claim_resumed", a,
    { "execution_id", "s", "worker_id", "s", "worker_instance_id", "s", "lease_id", "s", "lease_ttl_ms", "n" })
  if bad then return bad end
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil then return FF.err("execution_not_found") end
  if c.lifecycle_phase ~= "runnable" then return FF.err("execution_not_leaseable") end
  if c.attempt_state ~= "attempt_interrupted" then return FF.err("not_a_resumed_execution") end
  local gk = K.ex(B, e, "grant")
  local g = FF.hmap(gk)
  if g == nil or g.worker_id ~= a.worker_id then return FF.err("invalid_claim_grant") end
  if FF.num(g.grant_expires_at) <= now then
    C("DEL", gk)
    return FF.err("claim_grant_expired")
  end
  C("DEL", gk)
  local info = FF.claim_resume(B, e, c, now, a.lease_id, a.worker_id, a.worker_instance_id, a.lease_ttl_ms,
    a.remaining_timeout_ms)
  info[#info + 1] = c.lane_id
  return FF.ok("OK", unpack(info))
end
