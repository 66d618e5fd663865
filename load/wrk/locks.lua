-- Acquire, then release, one lock at a time per connection: POST /api/locks on a resource
-- of its own (bench/<thread>/<n>.rs, so no two requests conflict), then DELETE it with the
-- token from the answer. HOLDERS is a comma-separated list of registered instance ids;
-- acquisitions take them in turn. Every answer is an acknowledged, durable write.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  n = 0
  pending = {}
  holders = {}
  for h in string.gmatch(os.getenv("HOLDERS") or "", "[^,]+") do
    holders[#holders + 1] = h
  end
  headers = { ["Content-Type"] = "application/json" }
  local token = os.getenv("KOOR_TOKEN")
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  local lock = table.remove(pending)
  if lock then
    return wrk.format("DELETE", "/api/locks/" .. lock.id .. "?token=" .. lock.token, headers)
  end
  n = n + 1
  local body = string.format('{"resource":"bench/%d/%d.rs","holder":"%s","ttl_seconds":60}',
    tid, n, holders[(n % #holders) + 1])
  return wrk.format("POST", "/api/locks", headers, body)
end

function response(status, headers, body)
  if status == 200 then
    local id = string.match(body, '^{"id":"([^"]+)"')
    local token = string.match(body, '"token":(%d+)')
    if id and token then
      pending[#pending + 1] = { id = id, token = token }
    end
  end
end
