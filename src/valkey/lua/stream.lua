-- ===========================================================================
-- stream.lua: append_frame (durable, summary merge patch, best-effort live)
-- ===========================================================================

-- ff_append_frame (appendFrame, docs/design/streams-and-budgets.md): the lease holder appends a
-- frame to its attempt's stream: durable (trimmed at the retention maxlen, exact), a summary
-- frame (a JSON merge patch applied to the attempt's summary document, json.lua), or best-effort
-- live (approximately trimmed to an adaptive length from the append rate, expiring while the
-- stream holds no durable frame). The trim and expiry are settled before the first write.
--   KEYS:   [1] the partition base
--   ARGV:   [1] now, [2] {the lease fence, frame_type, correlation_id?, mode: "durable" |
--           "summary" | "best_effort", encoding, patch_kind + summary_max (summary), ttl_ms +
--           maxlen_floor + maxlen_ceiling + ema_alpha (best_effort), retention_maxlen?},
--           [3] the frame's payload
--   reply:  {1, "OK", wake, stream entry id, frame count, summary version ("" unless summary)}
--   errors: retention_limit_exceeded (a payload over 64 KiB), stream_closed (the execution is not
--           active, or the stream was closed), stale_owner_cannot_append (the fence does not hold),
--           invalid_input (summary: a patch kind other than json-merge-patch, a patch that is not a
--           JSON object, patch_depth_exceeded), corruption (the stored summary is not JSON),
--           limit_exceeded (the summary document would pass summary_max)
FF.fn.append_frame = function(B, a, now, payload)
  payload = payload or ""
  if #payload > 65536 then return FF.err("retention_limit_exceeded") end
  local e = a.execution_id
  local c = FF.core(B, e)
  if c == nil or c.lifecycle_phase ~= "active" then return FF.err("stream_closed") end
  if c.ownership_state ~= "leased" or FF.num(c.lease_expires_at) <= now or
      FF.str(a.attempt_index) ~= c.current_attempt_index or a.lease_id ~= c.current_lease_id or
      FF.str(a.lease_epoch) ~= c.current_lease_epoch then
    return FF.err("stale_owner_cannot_append")
  end
  local idx = c.current_attempt_index
  local mk = K.smeta(B, e, idx)
  local meta = FF.hmap(mk)
  if meta ~= nil and (meta.closed_at or "") ~= "" then return FF.err("stream_closed") end
  local mode = a.mode or "durable"
  local sk = K.ssum(B, e, idx)
  local doc_text, version = nil, nil
  if mode == "summary" then
    if FF.str(a.patch_kind) ~= "json-merge-patch" then return FF.err("invalid_input", "unsupported patch_kind") end
    local patch = FF.J.parse(payload)
    if patch == nil then return FF.err("invalid_input", "patch payload is not valid JSON") end
    if patch.t ~= "o" then return FF.err("invalid_input", "patch must be a JSON object") end
    if FF.J.max_depth(patch) > 16 then return FF.err("invalid_input", "patch_depth_exceeded") end
    -- the patch costs what it touches, not a parse of the whole stored document (json.lua)
    local stored = C("HGET", sk, "document")
    if stored == false or stored == "" then stored = nil end
    local ok, text = pcall(FF.J.patch_text, stored, patch)
    if not ok then return FF.err("corruption", "summary document of " .. e .. " attempt " .. idx .. " is not JSON") end
    doc_text = text
    local max = FF.num(a.summary_max, 131072)
    if #doc_text > max then
      return FF.err("limit_exceeded",
        "append_frame: summary document: more than " .. FF.s(max) .. " bytes (Limits.summaryDocumentBytes)")
    end
  end
  -- the stream's trim and expiry, settled before the first write (FF.int_arg: a MAXLEN or a
  -- PEXPIRE that is not a positive integer would fail, after the stream's first writes)
  local trim, rate, ttl
  if mode == "best_effort" then
    ttl = math.max(1, FF.num(a.ttl_ms, 5000))
    local floor = math.max(1, FF.num(a.maxlen_floor, 64))
    local ceiling = math.max(floor, FF.num(a.maxlen_ceiling, 16384))
    local alpha = FF.num(a.ema_alpha, 0.2)
    if alpha <= 0 or alpha > 1 then alpha = 0.2 end
    local ttl_s = ttl / 1000
    local prev_rate = tonumber((meta or {}).ema_rate_hz or "")
    local last = tonumber((meta or {}).last_append_ts_ms or "")
    if prev_rate == nil or last == nil then
      rate = floor / (ttl_s * 2)
    else
      local dt = math.max(1, now - last)
      rate = alpha * (1000 / dt) + (1 - alpha) * prev_rate
    end
    trim = FF.int_arg(math.min(ceiling, math.max(floor, math.ceil(rate * ttl_s * 2))), floor)
  end
  local maxlen, approx = "64", true
  if mode == "best_effort" then
    maxlen = trim
  elseif mode ~= "summary" then
    local n = tonumber(a.retention_maxlen or "") or tonumber(c.stream_maxlen or "") or 10000
    if n > 0 then maxlen, approx = FF.int_arg(n, 10000), false else maxlen = "10000" end
  end
  -- writes
  if meta == nil then
    meta = {
      stream_id = e .. ":" .. idx, execution_id = e, attempt_id = c.current_attempt_id, attempt_index = idx,
      created_at = FF.s(now), closed_at = "", closed_reason = "", frame_count = "0", total_bytes = "0",
      has_durable_frame = "0"
    }
    C("HSET", mk, "stream_id", meta.stream_id, "execution_id", e, "attempt_id", meta.attempt_id,
      "attempt_index", idx, "created_at", meta.created_at, "closed_at", "", "closed_reason", "",
      "frame_count", "0", "total_bytes", "0", "last_sequence", "", "last_frame_at", "", "has_durable_frame", "0")
    -- (the core tells that the attempt has a stream: a run's end without it skips FF.close_stream's read)
    if c.stream_opened == "" then FF.cset(B, e, c, { "stream_opened", "1" }) end
  end
  if doc_text ~= nil then
    version = C("HINCRBY", sk, "version", 1)
    C("HSET", sk, "document", doc_text, "patch_kind", "json-merge-patch", "last_updated_ms", FF.s(now))
    if version == 1 then C("HSET", sk, "first_applied_ms", FF.s(now)) end
  end
  local stream = K.stream(B, e, idx)
  local fields = { "frame_type", FF.str(a.frame_type), "ts", FF.s(now), "payload", payload,
    "encoding", FF.str(a.encoding ~= nil and a.encoding or "utf8"), "source", "worker", "mode", mode }
  if FF.str(a.correlation_id) ~= "" then fields[#fields + 1] = "correlation_id"; fields[#fields + 1] = a.correlation_id end
  if version ~= nil then fields[#fields + 1] = "summary_version"; fields[#fields + 1] = FF.s(version) end
  if mode == "best_effort" then
    fields[#fields + 1] = "ttl_ms"; fields[#fields + 1] = FF.s(ttl)
    C("HSET", mk, "ema_rate_hz", tostring(rate), "last_append_ts_ms", FF.s(now), "maxlen_applied_last", trim)
  end
  local id
  if approx then
    id = C("XADD", stream, "MAXLEN", "~", maxlen, "*", unpack(fields))
  else
    id = C("XADD", stream, "MAXLEN", maxlen, "*", unpack(fields))
  end
  if mode == "best_effort" then
    if meta.has_durable_frame ~= "1" then C("PEXPIRE", stream, FF.int_arg(2 * ttl, 10000)) end
  elseif meta.has_durable_frame ~= "1" then
    C("HSET", mk, "has_durable_frame", "1")
    C("PERSIST", stream)
  end
  local count = C("HINCRBY", mk, "frame_count", 1)
  C("HINCRBY", mk, "total_bytes", #payload)
  C("HSET", mk, "last_sequence", id, "last_frame_at", FF.s(now))
  return FF.ok("OK", id, count, version and FF.s(version) or "")
end
