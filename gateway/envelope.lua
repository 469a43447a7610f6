-- Shapes every REST response into the documented envelopes:
--   success  {"status":"success","data":<transcoded body>}
--   error    {"message":"...","code":<http status>,"status":"error"}
-- checks REST requests before the transcoder sees them (headers, encoding, strict JSON), and
-- answers what the gateway answers itself (OPTIONS, 405, 501, the OpenAPI document).
-- Native gRPC (content-type application/grpc*) passes untouched but for its request id.

-- Only statuses raised by the service carry this ErrorInfo domain; for anything else (gRPC
-- internals, Envoy's own replies) the client gets a fixed text for the HTTP status, so no
-- internal detail ever leaks.
local SERVICE_ERROR_MARK = '"domain":"journeys"'

local GENERIC_MESSAGES = {
  [400] = "Invalid request body",
  [401] = "Invalid API key",
  [403] = "Forbidden",
  [404] = "Not found",
  [405] = "Method not allowed",
  [408] = "Request timeout",
  [413] = "Request body too large",
  [415] = "Unsupported content encoding",
  [429] = "Rate limit exceeded",
  [431] = "Request headers too large",
  [500] = "Internal server error",
  [501] = "Not implemented",
  [502] = "Bad gateway",
  [503] = "Service unavailable",
  [504] = "Gateway timeout",
}

-- gRPC plumbing that means nothing to a REST client.
local GRPC_HEADERS = {
  "grpc-status", "grpc-message", "grpc-status-details-bin", "grpc-accept-encoding", "grpc-encoding",
}

-- Offers print no `claimedAt` while unclaimed (an unset Timestamp is omitted); the
-- documented shape has `"claimedAt": null` right after `expiresAt`. Added only to the offers
-- of the member the route names (`offers[]` of GET offers, `offer` of the claim), by
-- position, never by matching text: a partner's values (metadata, ids) are never touched.

-- Envoy makes a new request id for every request and sets the client's own aside in this
-- header (envoy.yaml.tmpl): a valid one is used instead, anything else is dropped.
local CLIENT_REQUEST_ID = "x-journeys-client-request-id"
local REQUEST_ID_CHARACTERS = "^[A-Za-z0-9._%-]+$"
local MAX_REQUEST_ID = 128

-- The still-escaped contents of the first string value of `key` in a JSON text.
local function json_string_value(raw, key)
  local marker = '"' .. key .. '":"'
  local _, last = raw:find(marker, 1, true)
  if last == nil then
    return nil
  end
  local i = last + 1
  while true do
    local j = raw:find('[\\"]', i)
    if j == nil then
      return nil
    end
    if raw:sub(j, j) == '"' then
      return raw:sub(last + 1, j - 1)
    end
    i = j + 2
  end
end

-- Request headers (without the path) that fit grpc.aio's 8 KiB metadata limit together with
-- what Envoy adds.
local MAX_HEADERS_BYTES = 7168

-- True when `s` is well-formed UTF-8 (no overlong forms, no surrogates, at most U+10FFFF).
local function valid_utf8(s)
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    local size, low, high = 1, 0x80, 0xBF
    if c >= 0xC2 and c <= 0xDF then
      size = 2
    elseif c >= 0xE0 and c <= 0xEF then
      size = 3
      if c == 0xE0 then low = 0xA0 elseif c == 0xED then high = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      size = 4
      if c == 0xF0 then low = 0x90 elseif c == 0xF4 then high = 0x8F end
    elseif c >= 0x80 then
      return false
    end
    for k = 1, size - 1 do
      local b = s:byte(i + k)
      if b == nil or b < low or b > high then
        return false
      end
      low, high = 0x80, 0xBF
    end
    i = i + size
  end
  return true
end

local function percent_decoded(s)
  return (s:gsub("%%(%x%x)", function(hex) return string.char(tonumber(hex, 16)) end))
end

-- Strict JSON (RFC 8259) for REST request bodies. The transcoder's parser is lenient: it
-- takes single quotes, bare keys, trailing commas and unknown escapes, reads a lone object
-- as a list of one and drops or flattens items of a repeated field, which would shift
-- POST /track's result indexes. A body it cannot be trusted with is `Invalid request body`.
local MAX_BODY_CHECKED = 1048576
local MAX_DEPTH = 100

local function skip_space(s, i)
  return s:find("[^ \t\n\r]", i) or #s + 1
end

local ESCAPED = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function utf8_char(cp)
  if cp < 0x80 then
    return string.char(cp)
  elseif cp < 0x800 then
    return string.char(0xC0 + math.floor(cp / 0x40), 0x80 + cp % 0x40)
  elseif cp < 0x10000 then
    return string.char(0xE0 + math.floor(cp / 0x1000), 0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
  end
  return string.char(0xF0 + math.floor(cp / 0x40000), 0x80 + math.floor(cp / 0x1000) % 0x40,
    0x80 + math.floor(cp / 0x40) % 0x40, 0x80 + cp % 0x40)
end

-- The text of a JSON string's contents (already checked by scan_string): `"a"` and `"\u0061"`
-- are one key. A lone surrogate becomes bytes that are not UTF-8.
local function decoded_string(raw)
  if not raw:find("\\", 1, true) then
    return raw
  end
  local out, i = {}, 1
  while true do
    local j = raw:find("\\", i, true)
    if j == nil then
      out[#out + 1] = raw:sub(i)
      return table.concat(out)
    end
    out[#out + 1] = raw:sub(i, j - 1)
    local escape = raw:sub(j + 1, j + 1)
    if escape == "u" then
      local cp = tonumber(raw:sub(j + 2, j + 5), 16)
      i = j + 6
      if cp >= 0xD800 and cp <= 0xDBFF and raw:sub(i, i + 1) == "\\u" then
        local low = tonumber(raw:sub(i + 2, i + 5), 16)
        if low >= 0xDC00 and low <= 0xDFFF then
          cp = 0x10000 + (cp - 0xD800) * 0x400 + (low - 0xDC00)
          i = i + 6
        end
      end
      out[#out + 1] = utf8_char(cp)
    else
      out[#out + 1] = ESCAPED[escape]
      i = j + 2
    end
  end
end

-- `s` as the contents of a JSON string.
local function json_escaped(s)
  return (s:gsub('[%c"\\]', function(c)
    if c == '"' or c == "\\" then
      return "\\" .. c
    end
    return string.format("\\u%04x", c:byte())
  end))
end

-- Index after the string starting at s[i] (a quote), or nil.
local function scan_string(s, i)
  i = i + 1
  while true do
    local j = s:find('["\\%z\1-\31]', i)
    if j == nil then
      return nil
    end
    local c = s:byte(j)
    if c == 34 then
      return j + 1
    end
    if c ~= 92 then
      return nil -- an unescaped control character
    end
    local escape = s:sub(j + 1, j + 1)
    if escape == "u" then
      if not s:find("^%x%x%x%x", j + 2) then
        return nil
      end
      i = j + 6
    elseif escape ~= "" and ('"\\/bfnrt'):find(escape, 1, true) then
      i = j + 2
    else
      return nil
    end
  end
end

local function scan_number(s, i)
  local j = i
  if s:sub(j, j) == "-" then
    j = j + 1
  end
  if s:sub(j, j) == "0" then
    j = j + 1
  else
    local _, last = s:find("^[1-9]%d*", j)
    if last == nil then
      return nil
    end
    j = last + 1
  end
  if s:sub(j, j) == "." then
    local _, last = s:find("^%d+", j + 1)
    if last == nil then
      return nil
    end
    j = last + 1
  end
  local e = s:sub(j, j)
  if e == "e" or e == "E" then
    local _, last = s:find("^[+-]?%d+", j + 1)
    if last == nil then
      return nil
    end
    j = last + 1
  end
  return j
end

-- Scans the value at s[i]: returns the index after it and its kind ("object", "array",
-- "string", "number", "literal"), or nil. `members(key, kind, start, after)` sees the members
-- of this value when it is an object (the decoded key; the value from s[start] to
-- s[after - 1]); `items(kind, start, after)` the items when it is an array. When `found` is a
-- table, `found.duplicate` gets the first key that repeats within one object, at any depth.
local scan_value
scan_value = function(s, i, depth, found, members, items)
  local c = s:sub(i, i)
  if c == "{" or c == "[" then
    if depth >= MAX_DEPTH then
      return nil
    end
    local close = c == "{" and "}" or "]"
    local kind = c == "{" and "object" or "array"
    local seen = {}
    i = skip_space(s, i + 1)
    if s:sub(i, i) == close then
      return i + 1, kind
    end
    while true do
      local key = nil
      if kind == "object" then
        if s:sub(i, i) ~= '"' then
          return nil
        end
        local after = scan_string(s, i)
        if after == nil then
          return nil
        end
        key = decoded_string(s:sub(i + 1, after - 2))
        if found ~= nil then
          if seen[key] and found.duplicate == nil then
            found.duplicate = key
          end
          seen[key] = true
        end
        i = skip_space(s, after)
        if s:sub(i, i) ~= ":" then
          return nil
        end
        i = skip_space(s, i + 1)
      end
      local start, item = i, nil
      i, item = scan_value(s, i, depth + 1, found)
      if i == nil then
        return nil
      end
      if key ~= nil and members ~= nil then
        members(key, item, start, i)
      elseif key == nil and items ~= nil then
        items(item, start, i)
      end
      i = skip_space(s, i)
      local separator = s:sub(i, i)
      if separator == close then
        return i + 1, kind
      end
      if separator ~= "," then
        return nil
      end
      i = skip_space(s, i + 1)
    end
  elseif c == '"' then
    local after = scan_string(s, i)
    return after, after and "string"
  elseif c == "-" or c:find("%d") then
    local after = scan_number(s, i)
    return after, after and "number"
  end
  for _, literal in ipairs({ "true", "false", "null" }) do
    if s:sub(i, i + #literal - 1) == literal then
      return i + #literal, "literal"
    end
  end
  return nil
end

local INVALID_BODY = "Invalid request body"

-- Why `raw` cannot be trusted as a request body, or nil: it must be one strict JSON object,
-- with no key twice in one object (RFC 8259 leaves that undefined: the transcoder would let
-- the last win, merge objects or concatenate arrays), whose members named in `arrays` (the
-- route's repeated message fields, e.g. POST /track's `events`), if present, are arrays of
-- objects.
local function body_problem(raw, arrays)
  local shape_ok = true
  local function check_events(kind)
    if kind ~= "object" then
      shape_ok = false
    end
  end
  local function members(key, kind, start)
    if arrays[key] then
      if kind ~= "array" then
        shape_ok = false
      else
        scan_value(raw, start, 1, nil, nil, check_events)
      end
    end
  end
  local i = skip_space(raw, 1)
  if raw:sub(i, i) ~= "{" then
    return INVALID_BODY
  end
  local found = {}
  local after = scan_value(raw, i, 0, found, members)
  if after == nil or skip_space(raw, after) <= #raw or not shape_ok then
    return INVALID_BODY
  end
  if found.duplicate ~= nil then
    if not valid_utf8(found.duplicate) then
      return INVALID_BODY -- not JSON text (RFC 8259 8.1), so no name to quote
    end
    return INVALID_BODY .. ': duplicate key "' .. found.duplicate .. '"'
  end
  return nil
end

-- The offers of a success answer (`holder`: the member holding one offer or a list of them)
-- with `"claimedAt":null` after the `expiresAt` of each offer that has no `claimedAt`.
local function with_unclaimed_nulls(raw, holder)
  local points = {}
  local function offer(kind, start)
    if kind ~= "object" then
      return
    end
    local expires_after, claimed = nil, false
    scan_value(raw, start, 1, nil, function(key, _, _, after)
      if key == "expiresAt" then
        expires_after = after
      elseif key == "claimedAt" then
        claimed = true
      end
    end)
    if expires_after ~= nil and not claimed then
      points[#points + 1] = expires_after
    end
  end
  scan_value(raw, skip_space(raw, 1), 0, nil, function(key, kind, start)
    if key == holder then
      if kind == "array" then
        scan_value(raw, start, 1, nil, nil, offer)
      else
        offer(kind, start)
      end
    end
  end)
  if #points == 0 then
    return raw
  end
  local parts, last = {}, 1
  for _, point in ipairs(points) do
    parts[#parts + 1] = raw:sub(last, point - 1)
    parts[#parts + 1] = ',"claimedAt":null'
    last = point
  end
  parts[#parts + 1] = raw:sub(last)
  return table.concat(parts)
end

local function error_body(status, message)
  return '{"message":"' .. json_escaped(message) .. '","code":' .. status .. ',"status":"error"}'
end

-- Answers the request from this filter. Its answer passes envoy_on_response too, which must
-- leave it as it is.
local function respond(request_handle, headers, body)
  request_handle:streamInfo():dynamicMetadata():set("journeys", "answered", true)
  request_handle:respond(headers, body)
end

local function reject(request_handle, status, message, allow)
  respond(request_handle,
    {[":status"] = tostring(status), ["content-type"] = "application/json", ["allow"] = allow},
    error_body(status, message))
end

-- Documents served as they are, read once per worker.
local documents = {}

-- What the gateway answers itself, by the route's metadata (journeys/gateway.py): the OpenAPI
-- document, OPTIONS 204 and 405 with `Allow`, 501. Direct responses would miss the CORS filter.
local function answer_for_route(request_handle)
  local route = request_handle:metadata()
  local path = route:get("document")
  if path ~= nil then
    if documents[path] == nil then
      local file = assert(io.open(path, "rb"))
      documents[path] = file:read("*a")
      file:close()
    end
    respond(request_handle, {[":status"] = "200", ["content-type"] = "application/json"}, documents[path])
    return true
  end
  local answer = route:get("answer")
  if answer == nil then
    return false
  end
  local allow = route:get("allow")
  -- Answered once the whole request is in: an HTTP/2 client still sending its body would
  -- otherwise see its stream reset.
  request_handle:body()
  if answer == "204" then
    respond(request_handle, {[":status"] = "204", ["allow"] = allow}, "")
  else
    local status = tonumber(answer)
    reject(request_handle, status, GENERIC_MESSAGES[status], allow)
  end
  return true
end

-- Puts back the client's own request id when it is a valid one (Envoy made a new one).
local function keep_client_request_id(headers)
  local client = headers:get(CLIENT_REQUEST_ID)
  if client == nil then
    return
  end
  headers:remove(CLIENT_REQUEST_ID)
  if #client <= MAX_REQUEST_ID and client:find(REQUEST_ID_CHARACTERS) then
    headers:replace("x-request-id", client)
  end
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  keep_client_request_id(headers)
  local path = headers:get(":path") or ""
  if (headers:get("content-type") or ""):sub(1, 16) == "application/grpc" then
    return
  end
  -- Every header reaches grpc.aio as metadata. Over its 8 KiB limit it refuses the call
  -- (a misleading 429); gRPC's own headers (`grpc-timeout: 1n`, `grpc-encoding: x`) and
  -- binary `-bin` metadata that is not base64 fail it (5xx). None of them is REST's.
  local size, drop = 0, {}
  for name, value in pairs(headers) do
    if name ~= ":path" then
      size = size + #name + #value + 32
    end
    if name:sub(1, 5) == "grpc-" or name:sub(-4) == "-bin" then
      drop[#drop + 1] = name
    end
  end
  if size > MAX_HEADERS_BYTES then
    reject(request_handle, 431, GENERIC_MESSAGES[431])
    return
  end
  for _, name in ipairs(drop) do
    headers:remove(name)
  end
  if answer_for_route(request_handle) then
    return
  end
  -- The decompressor before this filter has decoded (and dropped the header of) a gzip body.
  local encoding = (headers:get("content-encoding") or "identity"):lower()
  if encoding ~= "identity" then
    reject(request_handle, 415, GENERIC_MESSAGES[415])
    return
  end
  local method = headers:get(":method")
  local base, query = path:match("^([^?]*)%??(.*)$")
  -- The transcoder binds any query parameter to a request field of the same name
  -- (`?displayName=` on POST /users, `?events.externalId=` on POST /track, `?externalId=`
  -- over the path's id): drop every query parameter the API does not define.
  -- The route names its operation's parameters (journeys/gateway/config.py), and whether the
  -- service streams the document itself. Noted for the response now: the transcoder turns
  -- the path into the gRPC method's, and the response sees the route of that path.
  -- Read now: the route's handle is invalid once the body has been waited for below.
  local route = request_handle:metadata()
  if route:get("streamed") then
    request_handle:streamInfo():dynamicMetadata():set("journeys", "streamed", true)
  end
  local holder = route:get("offer_holder")
  local arrays = {}
  for name in (route:get("object_arrays") or ""):gmatch("[^,]+") do
    arrays[name] = true
  end
  local kept, allowed = {}, {}
  for name in (route:get("query") or ""):gmatch("[^,]+") do
    allowed[name] = true
  end
  for pair in query:gmatch("[^&]+") do
    if allowed[pair:match("^[^=]*")] then
      kept[#kept + 1] = pair
    end
  end
  -- A path id that is not UTF-8 once decoded (`%FF`) is no valid protobuf string (the
  -- service could not even parse the call), and no id holds NUL (`%00`): escape the `%`s
  -- so the id arrives as literal text, which is never a valid id (404 like any unknown id).
  local decoded = percent_decoded(base)
  if decoded:find("%z") or not valid_utf8(decoded) then
    base = base:gsub("%%", "%%25")
  end
  local rewritten = base
  if #kept > 0 then
    rewritten = base .. "?" .. table.concat(kept, "&")
  end
  if rewritten ~= path then
    headers:replace(":path", rewritten)
  end
  local length = tonumber(headers:get("content-length") or "")
  -- Bodies over the limit are left to the buffer filter's 413.
  if method == "POST" and (length == nil or (length > 0 and length <= MAX_BODY_CHECKED)) then
    local body = request_handle:body()
    if body ~= nil and body:length() > 0 and body:length() <= MAX_BODY_CHECKED then
      local problem = body_problem(body:getBytes(0, body:length()), arrays)
      if problem ~= nil then
        reject(request_handle, 400, problem)
        return
      end
    end
  end
  if holder ~= nil then
    request_handle:streamInfo():dynamicMetadata():set("journeys", "offer_holder", holder)
  end
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:sub(1, 16) == "application/grpc" then
    return
  end
  -- Access-Control-Allow-Origin depends on the request's Origin.
  headers:add("vary", "Origin")
  local status = tonumber(headers:get(":status")) or 500
  if status == 200 and headers:get("access-control-max-age") ~= nil then
    -- The CORS filter's answer to a preflight: no content.
    headers:replace(":status", "204")
    return
  end
  local meta = response_handle:streamInfo():dynamicMetadata():get("journeys")
  if status == 204 or (meta ~= nil and meta["answered"]) then
    return
  end
  if status == 499 then
    -- gRPC CANCELLED from the server: it is shutting down and refused the call.
    status = 503
    headers:replace(":status", "503")
  end
  headers:replace("content-type", "application/json")
  for _, name in ipairs(GRPC_HEADERS) do
    headers:remove(name)
  end
  if status < 400 and meta ~= nil and meta["streamed"] then
    -- The service writes this document whole, envelope included: it passes as it streams,
    -- never held here (an export can be far larger than any buffer).
    return
  end

  local body = response_handle:body(true)
  local raw = ""
  if body:length() > 0 then
    raw = body:getBytes(0, body:length())
  end

  local out
  if status < 400 then
    if raw == "" then
      raw = "{}"
    end
    if meta ~= nil and meta["offer_holder"] ~= nil then
      raw = with_unclaimed_nulls(raw, meta["offer_holder"])
    end
    out = '{"status":"success","data":' .. raw .. "}"
  else
    -- Only a transcoded gRPC status is JSON: Envoy's own replies are text/plain and may echo
    -- client input (a bad `?page=` value), which must never become the message.
    if content_type:sub(1, 16) == "application/json" and raw:find(SERVICE_ERROR_MARK, 1, true) then
      local message = json_string_value(raw, "message") -- still escaped, as JSON wants it
      if message ~= nil then
        out = '{"message":"' .. message .. '","code":' .. status .. ',"status":"error"}'
      end
    end
    out = out or error_body(status, GENERIC_MESSAGES[status] or "Request failed")
  end
  body:setBytes(out)
end
