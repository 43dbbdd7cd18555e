-- ===========================================================================
-- ids.lua: the partition's id index, listExecutions' buckets (docs/design/valkey.md#the-id-index);
-- loaded right after helpers.lua, whose keys and calls it uses
-- ===========================================================================

-- --- the partition's id index (docs/design/valkey.md#the-id-index) --------------------------
-- listExecutions pages a partition's executions by id, each page costing its limit. The ids are
-- kept in buckets, each a sorted set of at most FF.ID_BUCKET members all scored 0 (so a bucket
-- stays a listpack under the default zset-max-listpack-entries, 128: about 20 bytes per
-- execution where a skiplist entry costs 161; 64 rather than 128, because a ZADD into a listpack
-- scans it: a bucket of 64 costs each creation about 20 000 server instructions less, for about
-- 2 bytes more per execution). A member is the id's uuid as its 16 bytes (FF.id_bin:
-- byte order is the order of the ids, every id of the partition starting with the partition's
-- tag). Bucket j holds the ids from its lower bound (inclusive) to the next bucket's; the
-- directory `B:i:ids` holds the lower bounds as 32 hex digits, all scored 0 (the first bucket's
-- bound is "", present while the directory is), and the bucket of bound L is `B:i:ids:<L>`.
-- Creation adds a member to one bucket; a bucket that reaches FF.ID_BUCKET gives its upper half
-- to a new bucket in the same call (32 members moved; a bucket of a store written with buckets of
-- 128 moves at most 64). Deletion removes the member, and a bucket left empty (but the first)
-- leaves the directory, so a page reads at most limit + 2 buckets.
FF.ID_BUCKET = 64

-- The 32 hex digits of the uuid of execution id `e` ({fp:N}:<uuid>), nil when it has none.
local function id_hex(e)
  local u = string.match(e, "^{fp:%d+}:(%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x)$")
  if u == nil then return nil end
  return (string.gsub(u, "-", ""))
end
-- two hex digits -> their byte, and a byte -> its two hex digits (built at the first use:
-- `string` is not reachable while the library loads)
local HEX_BYTE, BYTE_HEX = nil, nil
local function hex_tables()
  HEX_BYTE, BYTE_HEX = {}, {}
  for i = 0, 255 do
    local h = string.format("%02x", i)
    HEX_BYTE[h] = string.char(i)
    BYTE_HEX[i] = h
  end
end
-- 32 hex digits as their 16 bytes, and back
function FF.id_bin(hex)
  if HEX_BYTE == nil then hex_tables() end
  return (string.gsub(hex, "%x%x", HEX_BYTE))
end
function FF.bin_hex(bin)
  if BYTE_HEX == nil then hex_tables() end
  local H = BYTE_HEX
  local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 = string.byte(bin, 1, 16)
  return H[b1] .. H[b2] .. H[b3] .. H[b4] .. H[b5] .. H[b6] .. H[b7] .. H[b8] .. H[b9] .. H[b10] .. H[b11] ..
    H[b12] .. H[b13] .. H[b14] .. H[b15] .. H[b16]
end
-- The execution id of a bucket member (its uuid's 16 bytes) of the partition whose tag is `tag`
-- ("{fp:N}:"), in one concatenation.
function FF.id_of_member(tag, m)
  if BYTE_HEX == nil then hex_tables() end
  local H = BYTE_HEX
  local b1, b2, b3, b4, b5, b6, b7, b8, b9, b10, b11, b12, b13, b14, b15, b16 = string.byte(m, 1, 16)
  return tag .. H[b1] .. H[b2] .. H[b3] .. H[b4] .. "-" .. H[b5] .. H[b6] .. "-" .. H[b7] .. H[b8] .. "-" ..
    H[b9] .. H[b10] .. "-" .. H[b11] .. H[b12] .. H[b13] .. H[b14] .. H[b15] .. H[b16]
end
function FF.ids_bucket_key(B, low) return K.idx(B, "ids:" .. low) end

-- --- the members of the eligible indexes -------------------------------------------------------
-- A lane's eligible index, its pending set and its kind indexes name an execution by its uuid's 16
-- bytes, as the id index does (a skiplist entry costs 129 bytes with them, 161 with the id: the
-- partition's tag is the key's), the byte order being the ids' within a partition. Every execution
-- id has a uuid (the boundary takes the canonical spelling only), so a member of another length is
-- an id, as a store of version 5 or older wrote them: read, and removed together with the new
-- form. The conversions of a call are kept for the rest of it (a claim reads the member it then
-- removes, a creation encodes the id the id index encoded).
local members, member_tags = {}, {}
function FF.members_begin()
  if next(members) ~= nil then members = {} end
  if next(member_tags) ~= nil then member_tags = {} end
end
-- The member of execution `e` in an eligible index: the 16 bytes of the lower-case uuid after its
-- tag, else `e` itself. (Indexing pairs of digits: about half the time of a validating match and
-- FF.id_bin.)
function FF.emember(e)
  local m = members[e]
  if m ~= nil then return m end
  m = e
  local p = string.find(e, "}:", 5, true)
  if p ~= nil and #e == p + 37 then
    local q = p + 2
    local d1, d2, d3, d4 = string.byte(e, q + 8), string.byte(e, q + 13), string.byte(e, q + 18), string.byte(e, q + 23)
    if d1 == 45 and d2 == 45 and d3 == 45 and d4 == 45 then
      if HEX_BYTE == nil then hex_tables() end
      local H, s = HEX_BYTE, string.sub
      local b1, b2, b3, b4 = H[s(e, q, q + 1)], H[s(e, q + 2, q + 3)], H[s(e, q + 4, q + 5)], H[s(e, q + 6, q + 7)]
      local b5, b6, b7, b8 = H[s(e, q + 9, q + 10)], H[s(e, q + 11, q + 12)], H[s(e, q + 14, q + 15)], H[s(e, q + 16, q + 17)]
      local b9, b10, b11, b12 = H[s(e, q + 19, q + 20)], H[s(e, q + 21, q + 22)], H[s(e, q + 24, q + 25)], H[s(e, q + 26, q + 27)]
      local b13, b14, b15, b16 = H[s(e, q + 28, q + 29)], H[s(e, q + 30, q + 31)], H[s(e, q + 32, q + 33)], H[s(e, q + 34, q + 35)]
      if b1 and b2 and b3 and b4 and b5 and b6 and b7 and b8 and b9 and b10 and b11 and b12 and b13 and b14 and b15 and b16 then
        m = b1 .. b2 .. b3 .. b4 .. b5 .. b6 .. b7 .. b8 .. b9 .. b10 .. b11 .. b12 .. b13 .. b14 .. b15 .. b16
      end
    end
  end
  members[e] = m
  return m
end
-- The tag "{fp:N}:" that begins the ids of partition `B`.
function FF.member_tag(B)
  local tag = member_tags[B]
  if tag == nil then
    tag = string.match(B, "({fp:%d+})$") .. ":"
    member_tags[B] = tag
  end
  return tag
end
-- The execution id of member `m` of an eligible index of partition `B`.
function FF.eid(B, m)
  if #m ~= 16 then return m end
  local e = FF.id_of_member(FF.member_tag(B), m)
  members[e] = m
  return e
end
-- `e`'s member and, when it differs, its id (the form of an older store), for a ZREM.
function FF.emembers(e)
  local m = FF.emember(e)
  if m == e then return m end
  return m, e
end
-- The lower bound of the bucket that holds (or would hold) the id of hex digits `hex`; nil when
-- the directory is empty.
function FF.ids_bucket_of(B, hex)
  return C("ZREVRANGEBYLEX", K.idx(B, "ids"), "[" .. hex, "-", "LIMIT", 0, 1)[1]
end

-- Adds execution `e` to the partition's id index (nothing for an id without a uuid).
function FF.ids_add(B, e)
  -- (a creation has the id's bytes already: FF.make_eligible came first)
  local m = members[e]
  local hex
  if m ~= nil and #m == 16 and string.byte(e, 1) == 123 then hex = FF.bin_hex(m) else hex = id_hex(e) end
  if hex == nil then return end
  local dir = K.idx(B, "ids")
  local low = FF.ids_bucket_of(B, hex)
  if low == nil then
    low = ""
    C("ZADD", dir, 0, "")
  end
  local bk = FF.ids_bucket_key(B, low)
  if m == nil or #m ~= 16 then
    m = FF.id_bin(hex)
    members[e] = m
  end
  C("ZADD", bk, 0, m)
  local n = C("ZCARD", bk)
  if n >= FF.ID_BUCKET then
    -- the split: the upper half becomes a bucket of its own (bounded: FF.ID_BUCKET / 2 members)
    local upper = C("ZRANGE", bk, math.floor(n / 2), -1)
    local t = {}
    for i = 1, #upper do t[#t + 1] = 0; t[#t + 1] = upper[i] end
    local nlow = FF.bin_hex(upper[1])
    C("ZADD", FF.ids_bucket_key(B, nlow), unpack(t))
    C("ZREM", bk, unpack(upper))
    C("ZADD", dir, 0, nlow)
  end
end

-- Removes execution `e` from the partition's id index; a bucket left empty leaves the directory
-- (the first one stays until the directory has no other).
function FF.ids_del(B, e)
  local hex = id_hex(e)
  if hex == nil then return end
  local low = FF.ids_bucket_of(B, hex)
  if low == nil then return end
  local bk = FF.ids_bucket_key(B, low)
  if C("ZREM", bk, FF.id_bin(hex)) == 0 or C("EXISTS", bk) == 1 then return end
  local dir = K.idx(B, "ids")
  if low ~= "" then C("ZREM", dir, low) end
  -- the directory goes with its last bucket (the first one may be empty while others are not)
  if C("ZCARD", dir) == 1 and C("EXISTS", FF.ids_bucket_key(B, "")) == 0 then C("DEL", dir) end
end

-- Up to `want` execution ids of the partition after `cursor` (an execution id; nil: from the
-- first), in id order: the bucket of the cursor from the cursor on, then the next buckets. Every
-- bucket but the first holds an id, so the call reads at most want + 2 buckets.
function FF.ids_page(B, cursor, want)
  local out = {}
  if want <= 0 then return out end
  local dir = K.idx(B, "ids")
  local low, from = nil, "-"
  local tag = string.match(B, "{fp:%d+}$") .. ":"
  if cursor ~= nil and cursor ~= "" then
    local hex = string.sub(cursor, 1, #tag) == tag and id_hex(cursor) or nil
    if hex == nil then
      -- a cursor that is not an id of this partition: every id here is after it, or none is
      if cursor > tag then return out end
    else
      low = FF.ids_bucket_of(B, hex)
      if low == nil then return out end
      from = "(" .. FF.id_bin(hex)
    end
  end
  if low == nil then
    low = C("ZRANGE", dir, 0, 0)[1]
    if low == nil then return out end
  end
  while true do
    local r = C("ZRANGEBYLEX", FF.ids_bucket_key(B, low), from, "+", "LIMIT", 0, want - #out)
    for i = 1, #r do out[#out + 1] = FF.id_of_member(tag, r[i]) end
    if #out >= want then return out end
    local nexts = C("ZRANGEBYLEX", dir, "(" .. low, "+", "LIMIT", 0, 1)
    if #nexts == 0 then return out end
    low, from = nexts[1], "-"
  end
end

