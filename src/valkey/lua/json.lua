-- ===========================================================================
-- json.lua: an order-preserving JSON reader/writer for summary documents.
-- cjson would turn [] into {} and round numbers to 14 digits; this keeps the
-- lexemes of scalars as they were written and the order of object keys.
-- Nodes: {t="o", keys={raw key lexemes...}, vals={[raw]=node}} | {t="a", items={...}} | {t="v", raw=lexeme}
-- ===========================================================================
local J = {}
FF.J = J

-- The index of the first character at or after i that is not white space.
local function skip_ws(s, i)
  local _, e = string.find(s, "^[ \t\r\n]*", i)
  return e + 1
end

-- The string lexeme that opens at i (quotes and escapes kept), and the index after it.
local function read_string(s, i)
  -- s:sub(i,i) == '"'
  local j = i + 1
  local n = #s
  while j <= n do
    local ch = string.sub(s, j, j)
    if ch == "\\" then
      j = j + 2
    elseif ch == '"' then
      return string.sub(s, i, j), j + 1
    else
      local b = string.byte(ch)
      if b < 32 then error("control character in string") end
      j = j + 1
    end
  end
  error("unterminated string")
end

-- The node of the value at i (at most 64 levels deep), and the index after it; errors on bad JSON.
local function read_value(s, i, depth)
  if depth > 64 then error("too deep") end
  i = skip_ws(s, i)
  local ch = string.sub(s, i, i)
  if ch == "{" then
    local node = { t = "o", keys = {}, vals = {}, depth = depth }
    i = skip_ws(s, i + 1)
    if string.sub(s, i, i) == "}" then return node, i + 1 end
    while true do
      i = skip_ws(s, i)
      if string.sub(s, i, i) ~= '"' then error("expected key") end
      local key
      key, i = read_string(s, i)
      i = skip_ws(s, i)
      if string.sub(s, i, i) ~= ":" then error("expected :") end
      local v
      v, i = read_value(s, i + 1, depth + 1)
      if node.vals[key] == nil then node.keys[#node.keys + 1] = key end
      node.vals[key] = v
      i = skip_ws(s, i)
      local d = string.sub(s, i, i)
      if d == "," then
        i = i + 1
      elseif d == "}" then
        return node, i + 1
      else
        error("expected , or }")
      end
    end
  elseif ch == "[" then
    local node = { t = "a", items = {}, depth = depth }
    i = skip_ws(s, i + 1)
    if string.sub(s, i, i) == "]" then return node, i + 1 end
    while true do
      local v
      v, i = read_value(s, i, depth + 1)
      node.items[#node.items + 1] = v
      i = skip_ws(s, i)
      local d = string.sub(s, i, i)
      if d == "," then
        i = i + 1
      elseif d == "]" then
        return node, i + 1
      else
        error("expected , or ]")
      end
    end
  elseif ch == '"' then
    local raw
    raw, i = read_string(s, i)
    return { t = "v", raw = raw }, i
  else
    local _, e = string.find(s, "^-?%d+%.?%d*[eE]?[-+]?%d*", i)
    if e ~= nil and e >= i then
      local raw = string.sub(s, i, e)
      if tonumber(raw) == nil then error("bad number") end
      return { t = "v", raw = raw }, e + 1
    end
    for _, lit in ipairs({ "true", "false", "null" }) do
      if string.sub(s, i, i + #lit - 1) == lit then return { t = "v", raw = lit }, i + #lit end
    end
    error("unexpected character")
  end
end

-- Parses a whole document; returns node or nil, message.
function J.parse(s)
  local ok, node, i = pcall(read_value, s, 1, 1)
  if not ok then return nil, tostring(node) end
  i = skip_ws(s, i)
  if i <= #s then return nil, "trailing characters" end
  return node
end

-- How deep `node` nests (a scalar is 0).
function J.max_depth(node)
  if node.t == "v" then return 0 end
  local m = 0
  local children = node.t == "o" and node.keys or node.items
  for idx, k in ipairs(children) do
    local child = node.t == "o" and node.vals[k] or node.items[idx]
    local d = J.max_depth(child)
    if d > m then m = d end
  end
  return m + 1
end

-- Appends the compact text of `node` to the list `out` (lexemes as they were read).
function J.write(node, out)
  if node.t == "v" then
    out[#out + 1] = node.raw
  elseif node.t == "a" then
    out[#out + 1] = "["
    for idx, item in ipairs(node.items) do
      if idx > 1 then out[#out + 1] = "," end
      J.write(item, out)
    end
    out[#out + 1] = "]"
  else
    out[#out + 1] = "{"
    for idx, k in ipairs(node.keys) do
      if idx > 1 then out[#out + 1] = "," end
      out[#out + 1] = k
      out[#out + 1] = ":"
      J.write(node.vals[k], out)
    end
    out[#out + 1] = "}"
  end
  return out
end

-- The compact text of `node`.
function J.encode(node) return table.concat(J.write(node, {})) end

-- Whether `node` is JSON null.
local function is_null(node) return node.t == "v" and node.raw == "null" end

-- The sentinel string "__ff_null__" as a leaf means a stored JSON null.
function J.unsentinel(node)
  if node.t == "v" then
    if node.raw == '"__ff_null__"' then node.raw = "null" end
  elseif node.t == "a" then
    for _, item in ipairs(node.items) do J.unsentinel(item) end
  else
    for _, k in ipairs(node.keys) do J.unsentinel(node.vals[k]) end
  end
  return node
end

-- --- patching a stored document ------------------------------------------------------------
-- A patch costs what it touches: the stored document (our own compact output, well-formed) is
-- split into its members as raw text, skipping over their values with string.find, and only a
-- member the patch merges an object into is split further. The other values are copied as they
-- are; the patch's values are written with their sentinels rewritten (the stored ones already were).

-- skip_ws, cheaper when i is not white space (the common case in our own output).
local function skip(s, i)
  local b = string.byte(s, i)
  if b == 32 or b == 9 or b == 10 or b == 13 then return skip_ws(s, i) end
  return i
end

-- The index of the closing quote of the string that opens at i.
local function string_end(s, i)
  local j = i + 1
  while true do
    local q = string.find(s, '["\\]', j)
    if q == nil then error("unterminated string") end
    if string.byte(s, q) == 92 then j = q + 2 else return q end
  end
end

-- The index of the last character of the value that starts at i.
local function value_end(s, i)
  local b = string.byte(s, i)
  if b == 34 then return string_end(s, i) end
  if b ~= 123 and b ~= 91 then
    local _, e = string.find(s, "^[^,}%]%s]+", i)
    if e == nil then error("expected a value") end
    return e
  end
  local depth, j = 0, i
  while true do
    local p = string.find(s, '[%[%]{}"]', j)
    if p == nil then error("unterminated value") end
    local c = string.byte(s, p)
    if c == 34 then
      j = string_end(s, p) + 1
    elseif c == 123 or c == 91 then
      depth = depth + 1
      j = p + 1
    else
      depth = depth - 1
      if depth == 0 then return p end
      j = p + 1
    end
  end
end

-- RFC 7396: the text of the object text `s` (nil or not an object: {}) merged with the parsed
-- object `patch`. One pass over `s` finds the members the patch names (a key is compared only when
-- its length is one of theirs); the runs of members between them are copied as they stand, a
-- named member takes its new value in place (a merged object is patched the same way) or is
-- dropped, and new members come last, in the patch's order.
function J.patch_text(s, patch)
  local want, lens = {}, {}
  for _, k in ipairs(patch.keys) do
    want[k] = true
    lens[#k] = true
  end
  local pieces, seen = {}, {}
  local function named(key, vs, ve)
    seen[key] = true
    local pv = patch.vals[key]
    if is_null(pv) then return end
    if pv.t == "o" then
      pieces[#pieces + 1] = key .. ":" .. J.patch_text(vs and string.sub(s, vs, ve), pv)
    else
      pieces[#pieces + 1] = key .. ":" .. J.encode(J.unsentinel(pv))
    end
  end
  local i = s ~= nil and skip(s, 1) or nil
  if i ~= nil and string.byte(s, i) == 123 then
    i = skip(s, i + 1)
    if string.byte(s, i) ~= 125 then
      local run = nil -- where the current run of copied members starts
      local last = nil -- where the last member ended
      while true do
        i = skip(s, i)
        if string.byte(s, i) ~= 34 then error("expected key") end
        local ks, ke = i, string_end(s, i)
        i = skip(s, ke + 1)
        if string.byte(s, i) ~= 58 then error("expected :") end
        local vs = skip(s, i + 1)
        local ve = value_end(s, vs)
        local key = lens[ke - ks + 1] and string.sub(s, ks, ke) or nil
        if key ~= nil and want[key] and not seen[key] then
          if run ~= nil then pieces[#pieces + 1] = string.sub(s, run, last) end
          run = nil
          named(key, vs, ve)
        elseif run == nil then
          run = ks
        end
        last = ve
        i = skip(s, ve + 1)
        local d = string.byte(s, i)
        if d == 125 then break end
        if d ~= 44 then error("expected , or }") end
        i = i + 1
      end
      if run ~= nil then pieces[#pieces + 1] = string.sub(s, run, last) end
    end
  end
  for _, k in ipairs(patch.keys) do
    if not seen[k] then named(k, nil, nil) end
  end
  return "{" .. table.concat(pieces, ",") .. "}"
end
