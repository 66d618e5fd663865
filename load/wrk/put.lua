-- PUT /api/state/bench/<thread>-<n mod KEYS> with a small JSON body: every request is an
-- acknowledged, durable write (a new version of one of KEYS keys per thread).
local KEYS = tonumber(os.getenv("KEYS") or "1000")
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  n = 0
  token = os.getenv("KOOR_TOKEN")
end

function request()
  n = n + 1
  local headers = { ["Content-Type"] = "application/json" }
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  local path = string.format("/api/state/bench/%d-%d", tid, n % KEYS)
  return wrk.format("PUT", path, headers, string.format('{"n":%d}', n))
end
