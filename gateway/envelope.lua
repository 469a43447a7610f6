-- Shapes every REST response into the documented envelopes:
--   success  {"status":"success","data":<transcoded body>}
--   error    {"message":"...","code":<http status>,"status":"error"}
-- Native gRPC (content-type application/grpc*) passes untouched.

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
-- documented shape has `"claimedAt": null` between `expiresAt` and `metadata`.
local UNCLAIMED_OFFER = '("expiresAt":"[%d%-T:Z]+")(,"metadata":)'

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

function envoy_on_request(request_handle)
  local path = request_handle:headers():get(":path") or ""
  local offers = path:find("/offers", 1, true) ~= nil
  request_handle:streamInfo():dynamicMetadata():set("journeys", "offers", offers)
end

function envoy_on_response(response_handle)
  local headers = response_handle:headers()
  local content_type = headers:get("content-type") or ""
  if content_type:sub(1, 16) == "application/grpc" then
    return
  end
  local status = tonumber(headers:get(":status")) or 500
  if status == 499 then
    -- gRPC CANCELLED from the server: it is shutting down and refused the call.
    status = 503
    headers:replace(":status", "503")
  end
  headers:replace("content-type", "application/json")
  for _, name in ipairs(GRPC_HEADERS) do
    headers:remove(name)
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
    local meta = response_handle:streamInfo():dynamicMetadata():get("journeys")
    if meta ~= nil and meta["offers"] then
      raw = raw:gsub(UNCLAIMED_OFFER, '%1,"claimedAt":null%2')
    end
    out = '{"status":"success","data":' .. raw .. "}"
  else
    local message = nil
    if raw:find(SERVICE_ERROR_MARK, 1, true) then
      message = json_string_value(raw, "message")
    end
    message = message or GENERIC_MESSAGES[status] or "Request failed"
    out = '{"message":"' .. message .. '","code":' .. status .. ',"status":"error"}'
  end
  body:setBytes(out)
end
