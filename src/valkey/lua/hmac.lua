-- ===========================================================================
-- hmac.lua: waitpoint tokens "<kid>:<hex>" = HMAC-SHA1(secret(kid), id|key|created_at)
-- The keystore is one hash per flow partition (B:hmac): current_kid, secret:<kid>,
-- expires_at:<kid> for demoted kids. Seeding and rotation fan out over every partition.
-- ===========================================================================
local H = {}
FF.H = H

-- The bytes of hex text, or nil when it is not an even run of hex digits.
local function hex_to_bin(hex)
  if hex == nil or #hex == 0 or #hex % 2 ~= 0 or string.find(hex, "[^0-9a-fA-F]") then return nil end
  return (string.gsub(hex, "..", function(cc) return string.char(tonumber(cc, 16)) end))
end
H.hex_to_bin = hex_to_bin

-- equal strings, in time that depends on their length only
local function const_eq(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i))) end
  return diff == 0
end

-- `key` padded to the 64-byte SHA-1 block, each byte xor `byte` (HMAC's ipad / opad).
local function xor_pad(key, byte)
  local out = {}
  for i = 1, 64 do
    local k = string.byte(key, i) or 0
    out[i] = string.char(bit.bxor(k, byte))
  end
  return table.concat(out)
end

-- HMAC-SHA1 of `message` under the hex secret, as lower-case hex (nil: the secret is not hex).
function H.hmac_sha1_hex(secret_hex, message)
  local key = hex_to_bin(secret_hex)
  if key == nil then return nil end
  if #key > 64 then key = hex_to_bin(redis.sha1hex(key)) end
  local inner = hex_to_bin(redis.sha1hex(xor_pad(key, 0x36) .. message))
  return redis.sha1hex(xor_pad(key, 0x5c) .. inner)
end

-- The message a waitpoint token signs.
function H.binding(wpid, key, created_at) return wpid .. "|" .. key .. "|" .. created_at end

-- Mints a token with the current kid. Returns token or nil, error code.
function H.mint(B, wpid, key, created_at)
  local ks = FF.hmap(K.hmac(B))
  if ks == nil or (ks.current_kid or "") == "" then return nil, "hmac_secret_not_initialized" end
  local kid = ks.current_kid
  local secret = ks["secret:" .. kid]
  if secret == nil or secret == "" then return nil, "hmac_secret_not_initialized" end
  local digest = H.hmac_sha1_hex(secret, H.binding(wpid, key, created_at))
  if digest == nil then return nil, "invalid_secret" end
  return kid .. ":" .. digest
end

-- Whether the partition's keystore has a current kid with a secret (tokens can be minted).
function H.ready(B)
  local kid = C("HGET", K.hmac(B), "current_kid")
  if kid == false or kid == "" then return false end
  local secret = C("HGET", K.hmac(B), "secret:" .. kid)
  return secret ~= false and secret ~= ""
end


-- Checks `token` for the waitpoint: a current kid's, or a demoted kid's within its grace. Returns
-- nil when valid, else the error code: missing_token, invalid_token, token_expired,
-- hmac_secret_not_initialized, invalid_secret.
function H.validate(B, token, wpid, key, created_at, now)
  if token == nil or token == "" then return "missing_token" end
  local colon = string.find(token, ":", 1, true)
  if colon == nil then return "invalid_token" end
  local kid = string.sub(token, 1, colon - 1)
  local digest = string.sub(token, colon + 1)
  -- a digest is canonical lower-case hex: any other spelling is not the token that was minted
  if kid == "" or #digest ~= 40 or string.find(digest, "[^0-9a-f]") then return "invalid_token" end
  local ks = FF.hmap(K.hmac(B))
  if ks == nil or (ks.current_kid or "") == "" then return "hmac_secret_not_initialized" end
  local secret = ks["secret:" .. kid]
  if kid ~= ks.current_kid then
    if secret == nil then return "invalid_token" end
    local exp = tonumber(ks["expires_at:" .. kid] or "")
    if exp == nil or exp < now then return "token_expired" end
  elseif secret == nil or secret == "" then
    return "hmac_secret_not_initialized"
  end
  local expected = H.hmac_sha1_hex(secret, H.binding(wpid, key, created_at))
  if expected == nil then return "invalid_secret" end
  if not const_eq(digest, expected) then return "invalid_token" end
  return nil
end

-- ff_hmac_seed (seedWaitpointHmacSecret, one partition): installs the kid and secret when the
-- keystore has no current kid, repairs a current kid without its secret, else compares.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {kid, secret (hex)}
--   reply:  {1, "installed" | "repaired" | "match" | "mismatch", wake}
--           | {1, "other_kid", wake, the stored current kid} (nothing written)
--   errors: -
FF.fn.hmac_seed = function(B, a, now)
  local key = K.hmac(B)
  local cur = C("HGET", key, "current_kid")
  if cur == false or cur == "" then
    C("HSET", key, "current_kid", a.kid, "secret:" .. a.kid, a.secret)
    return FF.ok("installed")
  end
  if cur ~= a.kid then return FF.ok("other_kid", cur) end
  local stored = C("HGET", key, "secret:" .. a.kid)
  if stored == false or stored == "" then
    C("HSET", key, "secret:" .. a.kid, a.secret)
    return FF.ok("repaired")
  end
  if const_eq(string.lower(stored), string.lower(a.secret)) then return FF.ok("match") end
  return FF.ok("mismatch")
end

-- ff_hmac_rotate (rotateWaitpointHmacSecretAll, one partition; docs/design/signals.md#the-keystore):
-- the new kid becomes current, the old one stays valid for grace_ms, and demoted kids whose grace
-- ended are collected. Rotating again to the current kid with its secret is a no-op.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {kid, secret (hex), grace_ms}
--   reply:  {1, "rotated", wake, previous kid ("" when none), new kid, kids collected}
--           | {1, "noop", wake, kid}
--   errors: invalid_kid (empty, or with ":"), invalid_secret_hex, invalid_grace_ms,
--           rotation_conflict (+ kid: the current kid with another secret)
FF.fn.hmac_rotate = function(B, a, now)
  local key = K.hmac(B)
  local kid, secret, grace = a.kid, a.secret, tonumber(a.grace_ms)
  if kid == nil or kid == "" or string.find(kid, ":", 1, true) then return FF.err("invalid_kid") end
  if hex_to_bin(secret) == nil then return FF.err("invalid_secret_hex") end
  if grace == nil or grace < 0 or grace ~= math.floor(grace) or grace > 9007199254740991 then return FF.err("invalid_grace_ms") end
  local ks = FF.hmap(key) or {}
  local cur = ks.current_kid or ""
  if cur == kid then
    local stored = ks["secret:" .. kid]
    if stored == nil or stored == "" then
      C("HSET", key, "secret:" .. kid, secret)
      return FF.ok("noop", kid)
    end
    if const_eq(string.lower(stored), string.lower(secret)) then return FF.ok("noop", kid) end
    return FF.err("rotation_conflict", kid)
  end
  local gc = 0
  for field, value in pairs(ks) do
    if string.sub(field, 1, 11) == "expires_at:" then
      local old = string.sub(field, 12)
      local exp = tonumber(value)
      if old ~= cur and (exp == nil or exp < now) then
        C("HDEL", key, field, "secret:" .. old)
        gc = gc + 1
      end
    end
  end
  if cur ~= "" then
    C("HSET", key, "previous_kid", cur, "previous_expires_at", FF.s(now + grace),
      "expires_at:" .. cur, FF.s(now + grace), "current_kid", kid, "secret:" .. kid, secret)
    C("HDEL", key, "expires_at:" .. kid)
  else
    C("HSET", key, "current_kid", kid, "secret:" .. kid, secret)
  end
  return FF.ok("rotated", cur, kid, gc)
end
