-- ===========================================================================
-- json.lua: an order-preserving JSON reader/writer for summary documents.
-- cjson would turn [] into {} and round numbers to 14 digits; this keeps the
-- lexemes of scalars as they were written and the order of object keys.
-- Nodes: {t="o", keys={raw key lexemes...}, vals={[raw]=node}} | {t="a", items={...}} | {t="v", raw=lexeme}
-- ===========================================================================
local J = {}
FF.J = J

local function skip_ws(s, i)
  local _, e = string.find(s, "^[ \t\r\n]*", i)
  return e + 1
end

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

function J.encode(node) return table.concat(J.write(node, {})) end

local function is_null(node) return node.t == "v" and node.raw == "null" end

-- RFC 7396 JSON Merge Patch.
function J.merge(target, patch)
  if patch.t ~= "o" then return patch end
  if target == nil or target.t ~= "o" then target = { t = "o", keys = {}, vals = {} } end
  for _, k in ipairs(patch.keys) do
    local pv = patch.vals[k]
    if is_null(pv) then
      if target.vals[k] ~= nil then
        target.vals[k] = nil
        local keys = {}
        for _, tk in ipairs(target.keys) do if tk ~= k then keys[#keys + 1] = tk end end
        target.keys = keys
      end
    else
      if target.vals[k] == nil then target.keys[#target.keys + 1] = k end
      target.vals[k] = J.merge(target.vals[k], pv)
    end
  end
  return target
end

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
