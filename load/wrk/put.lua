-- PUT /api/state/bench/<thread>-<n mod KEYS> with a small JSON body: every request is an
-- acknowledged, durable write (a new version of one of KEYS keys per thread).
-- Env: KEYS (1000 per thread), VALUE_BYTES (0; else each value carries this many more bytes).
local KEYS = tonumber(os.getenv("KEYS") or "1000")
local PAD = string.rep("x", tonumber(os.getenv("VALUE_BYTES") or "0"))
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
  local body
  if PAD == "" then
    body = string.format('{"n":%d}', n)
  else
    body = string.format('{"n":%d,"pad":"%s"}', n, PAD)
  end
  return wrk.format("PUT", path, headers, body)
end
