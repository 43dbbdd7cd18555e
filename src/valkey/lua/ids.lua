-- ===========================================================================
-- ids.lua: the partition's id index, listExecutions' buckets (docs/design/valkey.md#the-id-index);
-- loaded after helpers.lua, whose keys and calls it uses
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
-- tag, else `e` itself. (The uuid's 36 bytes read in one call, each digit's value from NIB, the
-- 16 bytes made in one call: no string per pair of digits.)
local NIB = nil -- the byte of a lower-case hex digit -> its value
function FF.emember(e)
  local m = members[e]
  if m ~= nil then return m end
  m = e
  local p = string.find(e, "}:", 5, true)
  if p ~= nil and #e == p + 37 then
    if NIB == nil then
      NIB = {}
      for i = 0, 9 do NIB[48 + i] = i end
      for i = 0, 5 do NIB[97 + i] = 10 + i end
    end
    local N = NIB
    local c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, c18, c19, c20, c21, c22,
      c23, c24, c25, c26, c27, c28, c29, c30, c31, c32, c33, c34, c35, c36 =
      string.byte(e, p + 2, p + 37)
    if c9 == 45 and c14 == 45 and c19 == 45 and c24 == 45 then
      local h1, l1, h2, l2, h3, l3, h4, l4, h5, l5, h6, l6, h7, l7, h8, l8, h9, l9, h10, l10, h11, l11, h12, l12,
        h13, l13, h14, l14, h15, l15, h16, l16
      h1, l1 = N[c1], N[c2]
      h2, l2 = N[c3], N[c4]
      h3, l3 = N[c5], N[c6]
      h4, l4 = N[c7], N[c8]
      h5, l5 = N[c10], N[c11]
      h6, l6 = N[c12], N[c13]
      h7, l7 = N[c15], N[c16]
      h8, l8 = N[c17], N[c18]
      h9, l9 = N[c20], N[c21]
      h10, l10 = N[c22], N[c23]
      h11, l11 = N[c25], N[c26]
      h12, l12 = N[c27], N[c28]
      h13, l13 = N[c29], N[c30]
      h14, l14 = N[c31], N[c32]
      h15, l15 = N[c33], N[c34]
      h16, l16 = N[c35], N[c36]
      if h1 and l1 and h2 and l2 and h3 and l3 and h4 and l4 and h5 and l5 and h6 and l6 and h7 and l7 and h8 and
        l8 and h9 and l9 and h10 and l10 and h11 and l11 and h12 and l12 and h13 and l13 and h14 and l14 and h15 and
        l15 and h16 and l16 then
        m = string.char(h1 * 16 + l1, h2 * 16 + l2, h3 * 16 + l3, h4 * 16 + l4, h5 * 16 + l5, h6 * 16 + l6,
          h7 * 16 + l7, h8 * 16 + l8, h9 * 16 + l9, h10 * 16 + l10, h11 * 16 + l11, h12 * 16 + l12,
          h13 * 16 + l13, h14 * 16 + l14, h15 * 16 + l15, h16 * 16 + l16)
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

-- A call that adds a second id to a partition reads the partition's directory once, when it holds
-- at most ID_DIR_READ bounds or at most 8 per id the call expects to add there (FF.id_expect: a
-- batch of creations sets it), and finds the buckets of its next ids in it (one read instead of a
-- ZREVRANGEBYLEX per id, each of which costs about as much as reading eight bounds). A larger
-- directory is still read once the call's adds there reach a quarter of its bounds (until then
-- each id looks its bucket up): so the read costs at most eight bounds per id added, however large
-- the partition's index grows. A split adds its new bound to what was read; any other write to the
-- directory drops it.
-- (per call: base -> the bounds in order, or false while the directory is larger; base -> ids
-- added; FF.id_sizes: base -> the directory's size when found too large; FF.id_expect: base -> ids
-- the call expects to add)
local ID_DIR_READ = 256
local id_dirs, id_adds = {}, {}
FF.id_sizes, FF.id_expect = {}, {}
function FF.ids_begin()
  if next(id_dirs) ~= nil then id_dirs = {} end
  if next(id_adds) ~= nil then id_adds = {} end
  if next(FF.id_sizes) ~= nil then FF.id_sizes = {} end
  if next(FF.id_expect) ~= nil then FF.id_expect = {} end
end
-- The index in the bounds `d` of the greatest bound <= hex (bounds are "" and 32 lower-case hex
-- digits, as ZREVRANGEBYLEX compares).
function FF.bound_index(d, hex)
  local a, b = 1, #d
  while a <= b do
    local mid = math.floor((a + b) / 2)
    if d[mid] <= hex then a = mid + 1 else b = mid - 1 end
  end
  return b
end
local function add_bucket_of(B, dir, hex)
  local d = id_dirs[B]
  if not d then
    local n = (id_adds[B] or 0) + 1
    id_adds[B] = n
    if n >= 2 and (d == nil or 4 * n >= FF.id_sizes[B]) then
      local size = C("ZCARD", dir)
      if size <= ID_DIR_READ or size <= 8 * (FF.id_expect[B] or 0) or 4 * n >= size then
        d = C("ZRANGE", dir, 0, -1)
      else
        d = false
        FF.id_sizes[B] = size
      end
      id_dirs[B] = d
    end
    if not d then return FF.ids_bucket_of(B, hex) end
  end
  return d[FF.bound_index(d, hex)]
end

-- Adds execution `e` to the partition's id index (nothing for an id without a uuid).
function FF.ids_add(B, e)
  -- (a creation has the id's bytes already: FF.make_eligible came first)
  local m = members[e]
  local hex
  if m ~= nil and #m == 16 and string.byte(e, 1) == 123 then hex = FF.bin_hex(m) else hex = id_hex(e) end
  if hex == nil then return end
  local dir = K.idx(B, "ids")
  local low = add_bucket_of(B, dir, hex)
  if low == nil then
    low = ""
    C("ZADD", dir, 0, "")
    id_dirs[B] = nil
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
    local d = id_dirs[B]
    if d then table.insert(d, FF.bound_index(d, nlow) + 1, nlow) end
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
  id_dirs[B] = nil
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

