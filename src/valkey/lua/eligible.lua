-- ===========================================================================
-- eligible.lua: the sets a lane's eligible executions are kept in, plain sorted sets (a store of
-- version 8 or older) or bucketed ones (docs/design/valkey.md#the-eligible-buckets); loaded after
-- ids.lua, whose member conversions it uses
-- ===========================================================================

-- --- the eligible buckets (docs/design/valkey.md#the-eligible-buckets) ------------------------
-- A lane's eligible index (and its pending set) holds entries (claim score, member), read in that
-- order. A bucketed set keeps them in buckets of at most FF.E_BUCKET entries, each a sorted set
-- small enough to stay a listpack (about 30 bytes an entry where a skiplist entry costs 129).
-- The position of an entry is its key, the score as 17 digits (score + 10^16: scores are
-- -(priority x 10^12) + created_at with priority in 0..9000) and the member's 32 hex digits, so
-- that keys sort as the entries do. Bucket j holds the entries from its lower bound (a key,
-- inclusive) to the next bucket's; the directory (a sorted set, all scored 0) holds the bounds,
-- the first bucket's being "", and the bucket of bound L is `<pre>L`. The directory is written
-- at the first split: a set of one bucket has none (a lane that empties and fills again at every
-- task writes no directory). Every bucket holds an entry: a bucket left empty leaves the
-- directory (the first one takes over the second's entries by a RENAME), so the set is empty when
-- its first bucket is. A bucket that passes
-- FF.E_BUCKET splits in the same call: the newcomer alone starts the next bucket when it is the
-- bucket's last entry (work is made eligible in time order, mostly at the end: the bucket stays
-- full), else the upper half moves.
-- A set is {dir = directory key, pre = bucket key prefix} (bucketed) or {key = key} (plain); the
-- functions below serve both, so that every reader reads both layouts alike.
FF.E_BUCKET = 48
local SCORE_OFFSET = 10000000000000000
local MEMBER_MAX = "\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255\255" -- after every member (16 bytes, or an id of an older store)

-- The 17 digits of score + 10^16, exactly. The sum is past 2^53, where a double holds only even
-- numbers: taken as a double it gave the scores T and T + 1 the same digits (T a multiple of 4),
-- so an entry of T + 1 with a lower member keyed before the entries of T it follows in its bucket,
-- and was looked up in, or split off into, the wrong bucket. The score (an integer, exact below
-- 2^53) is split at 10^8 instead, each part exact.
local function digits(score)
  if score < -SCORE_OFFSET then score = -SCORE_OFFSET end
  local hi = math.floor(score / 100000000)
  local lo = score - hi * 100000000
  -- (the quotient may have rounded up to the next integer, or down)
  if lo < 0 then
    hi, lo = hi - 1, lo + 100000000
  elseif lo >= 100000000 then
    hi, lo = hi + 1, lo - 100000000
  end
  return string.format("%09.0f%08.0f", hi + 100000000, lo)
end

-- The key of (score, member) (member "" for before every member of the score, MEMBER_MAX after);
-- the digits of the last score are kept (a batch's entries mostly share their score).
local last_score, last_digits
local function ekey(score, m)
  local s = last_digits
  if score ~= last_score then
    s = digits(score)
    last_score, last_digits = score, s
  end
  if m == "" then return s end
  if m == MEMBER_MAX then return s .. "~" end
  if #m == 16 then return s .. FF.bin_hex(m) end
  return s .. m
end
FF.MEMBER_MAX = MEMBER_MAX

-- The bound of the bucket that holds (or would hold) key k.
local function bucket_of(s, k)
  return C("ZREVRANGEBYLEX", s.dir, "[" .. k, "-", "LIMIT", 0, 1)[1] or ""
end

-- The buckets this call read entries from (bucket key prefix -> member -> bound), so that the
-- removal of an entry a claim read needs no directory lookup; a hint that no longer holds (its
-- bucket split or taken over since) fails its ZREM, and the lookup follows.
local seen = {}
-- and per bucketed set this call wrote (on the set's table, FF.lane_sets'): the buckets its
-- insertions looked up, {lows = their bounds, sorted; hi = bound -> the next bound (false: none;
-- nil: not read yet); n = bound -> entries, once counted}, so that a batch adding to a few
-- buckets (executions created in the same millisecond land anywhere among their score's entries)
-- looks each one up and counts it once. A split adds its new bucket; a bucket leaving the
-- directory drops them all.
function FF.eseen_begin()
  if next(seen) ~= nil then seen = {} end
end
local function shape_of(s)
  local sh = s.sh
  if sh == nil then
    sh = { lows = {}, hi = {}, n = {} }
    s.sh = sh
  end
  return sh
end
local function reshaped(sh)
  sh.lows, sh.hi, sh.n = {}, {}, {}
end
-- The index in sh.lows of the greatest bound <= k (0 for none).
local function low_index(lows, k)
  local a, b = 1, #lows
  while a <= b do
    local mid = math.floor((a + b) / 2)
    if lows[mid] <= k then a = mid + 1 else b = mid - 1 end
  end
  return b
end
local function note(s, low, r)
  local t = seen[s.pre]
  if t == nil then
    t = {}
    seen[s.pre] = t
  end
  for i = 1, #r, 2 do t[r[i]] = low end
end

-- Adds (score, member m) to set s (a plain set's ZADD moves an entry of m at another score; a
-- bucketed set's caller removes that first: FF.drop_eligible).
function FF.eadd(s, score, m)
  local ss = FF.s(score)
  if s.key then
    C("ZADD", s.key, ss, m)
    return
  end
  local k = ekey(score, m)
  local sh = shape_of(s)
  local lows = sh.lows
  local j = low_index(lows, k)
  local low = lows[j]
  if low ~= nil then
    local hi = sh.hi[low]
    if hi == nil then
      hi = C("ZRANGEBYLEX", s.dir, "(" .. low, "+", "LIMIT", 0, 1)[1] or false
      sh.hi[low] = hi
    end
    if hi and k >= hi then low = nil end
  end
  if low == nil then
    low = bucket_of(s, k)
    j = low_index(lows, low)
    if lows[j] ~= low then table.insert(lows, j + 1, low) end
  end
  local bk = s.pre .. low
  local added = C("ZADD", bk, ss, m)
  local n = sh.n[low]
  if n == nil then n = C("ZCARD", bk) else n = n + added end
  sh.n[low] = n
  if n <= FF.E_BUCKET then return end
  local upper = C("ZRANGE", bk, math.floor(n / 2), -1, "WITHSCORES")
  if upper[#upper - 1] == m then
    -- (the newcomer is the bucket's last entry: it starts the next bucket alone)
    upper = { m, ss }
  end
  local t = {}
  for i = 1, #upper, 2 do t[i], t[i + 1] = upper[i + 1], upper[i] end
  local nlow = ekey(tonumber(upper[2]), upper[1])
  C("ZADD", s.pre .. nlow, unpack(t))
  C("ZREMRANGEBYRANK", bk, n - #upper / 2, -1)
  C("ZADD", s.dir, 0, "", 0, nlow)
  sh.n[low], sh.n[nlow] = n - #upper / 2, #upper / 2
  if sh.hi[low] ~= nil then sh.hi[nlow] = sh.hi[low] end
  sh.hi[low] = nlow
  j = low_index(lows, nlow)
  if lows[j] ~= nlow then table.insert(lows, j + 1, nlow) end
end

-- Removes member m (and `old`, its form in an older store, from a plain set) at `score` from set s.
function FF.erem(s, score, m, old)
  if s.key then
    C("ZREM", s.key, m, old)
    return
  end
  local t = seen[s.pre]
  local low = t and t[m]
  local bk
  if low ~= nil then
    t[m] = nil
    bk = s.pre .. low
    if C("ZREM", bk, m) == 0 then low = nil end
  end
  if low == nil then
    low = bucket_of(s, ekey(score, m))
    bk = s.pre .. low
    if C("ZREM", bk, m) == 0 then return end
  end
  local sh = shape_of(s)
  local n = sh.n[low]
  if n == nil then n = C("ZCARD", bk) else n = n - 1 end
  sh.n[low] = n
  if n > 0 then return end
  reshaped(sh)
  if low ~= "" then
    C("ZREM", s.dir, low)
    return
  end
  local nx = C("ZRANGE", s.dir, 1, 1)[1]
  if nx == nil then
    C("UNLINK", s.dir)
  else
    C("RENAME", s.pre .. nx, bk)
    C("ZREM", s.dir, nx)
    -- (the entries this call read in bucket nx are in the first one now)
    if t ~= nil then
      for em, l in pairs(t) do
        if l == nx then t[em] = low end
      end
    end
  end
end

-- Whether set s holds an entry.
function FF.eexists(s)
  return C("EXISTS", s.key or s.pre) == 1
end

-- The first n entries of set s, flat: member, score (a string), member, score, ...
function FF.efirst(s, n)
  if s.key then return C("ZRANGE", s.key, 0, n - 1, "WITHSCORES") end
  -- (the first bucket, of bound "", holds an entry whenever the set does)
  local low = ""
  local out = C("ZRANGE", s.pre, 0, n - 1, "WITHSCORES")
  if #out == 0 then return out end
  note(s, low, out)
  -- (a bucket read short is read whole: its size is known)
  if #out < 2 * n then shape_of(s).n[low] = #out / 2 end
  while #out < 2 * n do
    low = C("ZRANGEBYLEX", s.dir, "(" .. low, "+", "LIMIT", 0, 1)[1]
    if low == nil then break end
    local want = n - #out / 2
    local r = C("ZRANGE", s.pre .. low, 0, want - 1, "WITHSCORES")
    note(s, low, r)
    if #r < 2 * want then shape_of(s).n[low] = #r / 2 end
    for i = 1, #r do out[#out + 1] = r[i] end
  end
  return out
end

-- Whether set s holds more than n entries (reads at most n + 1 of them).
function FF.emore(s, n)
  if s.key then return C("ZCARD", s.key) > n end
  return #FF.efirst(s, n + 1) > 2 * n
end

-- --- reading a set from a position -----------------------------------------------------------
-- An iterator over set s from position (score, member) on, strictly after it (forward) or strictly
-- before it (rev); score nil: from the first entry (forward) or the last (rev). FF.enext(it, n)
-- gives the next n entries, flat as FF.efirst's; FF.edrop(it, score, m) removes an entry the
-- iterator gave. A plain set is read by rank (the start found by a binary search among the
-- entries of the position's score), a bucketed one by key (the bucket of the position, then the
-- next ones in the directory: every bucket holds an entry, so n entries cost at most n + 2
-- buckets).
local function before(s1, m1, s2, m2)
  if s1 ~= s2 then return s1 < s2 end
  return m1 < m2
end

function FF.eiter(s, score, m, rev)
  local it = { s = s, rev = rev, score = score, m = m or "" }
  if not s.key then return it end
  local key = s.key
  if score == nil then
    if rev then it.rank = C("ZCARD", key) - 1 else it.rank = 0 end
    return it
  end
  -- the rank of the first entry after the position (forward), or of the last before it (rev)
  local ss = FF.s(score)
  local lo = C("ZCOUNT", key, "-inf", "(" .. ss)
  local hi = lo + C("ZCOUNT", key, ss, ss)
  local pm = it.m
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local mm = C("ZRANGE", key, mid, mid)[1]
    if mm > pm or (rev and mm == pm) then hi = mid else lo = mid + 1 end
  end
  if rev then it.rank = lo - 1 else it.rank = lo end
  return it
end

function FF.enext(it, n)
  local s = it.s
  if it.done then return {} end
  if s.key then
    local r
    if it.rev then
      if it.rank < 0 then return {} end
      local f = C("ZRANGE", s.key, math.max(0, it.rank - n + 1), it.rank, "WITHSCORES")
      r = {}
      for i = #f - 1, 1, -2 do r[#r + 1], r[#r + 2] = f[i], f[i + 1] end
      it.rank = it.rank - #r / 2
    else
      r = C("ZRANGE", s.key, it.rank, it.rank + n - 1, "WITHSCORES")
      it.rank = it.rank + #r / 2
    end
    if #r < 2 * n then it.done = true end
    return r
  end
  local out = {}
  local low = it.low
  if low == nil then
    if it.score == nil then
      low = it.rev and C("ZREVRANGE", s.dir, 0, 0)[1] or ""
    else
      low = bucket_of(s, ekey(it.score, it.m))
    end
  end
  while true do
    local r = C("ZRANGE", s.pre .. low, 0, -1, "WITHSCORES")
    local ps, pm = it.score, it.m
    if it.rev then
      for i = #r - 1, 1, -2 do
        local sc = tonumber(r[i + 1])
        if ps == nil or before(sc, r[i], ps, pm) then
          out[#out + 1], out[#out + 2] = r[i], r[i + 1]
          it.score, it.m = sc, r[i]
          if #out >= 2 * n then break end
        end
      end
    else
      for i = 1, #r, 2 do
        local sc = tonumber(r[i + 1])
        if ps == nil or before(ps, pm, sc, r[i]) then
          out[#out + 1], out[#out + 2] = r[i], r[i + 1]
          it.score, it.m = sc, r[i]
          if #out >= 2 * n then break end
        end
      end
    end
    it.low = low
    if #out >= 2 * n then return out end
    if it.rev then
      low = C("ZREVRANGEBYLEX", s.dir, "(" .. low, "-", "LIMIT", 0, 1)[1]
    else
      low = C("ZRANGEBYLEX", s.dir, "(" .. low, "+", "LIMIT", 0, 1)[1]
    end
    if low == nil then
      it.done = true
      return out
    end
  end
end

function FF.edrop(it, score, m, old)
  local s = it.s
  if s.key then
    -- (an entry the iterator gave: those after it move down one rank)
    if C("ZREM", s.key, m, old) > 0 and not it.rev then it.rank = it.rank - 1 end
    return
  end
  FF.erem(s, score, m)
  -- (its bucket may have left the directory: the next read finds the position's bucket again)
  it.low = nil
end
