-- etcd's counterpart of put.lua: the same keys (bench/<thread>-<n mod KEYS>) and the same
-- small JSON values ({"n":<n>}), written through etcd's v3 JSON gateway as
-- POST <ETCD_PUT_PATH> {"key": base64(key), "value": base64(json)}.
-- ETCD_PUT_PATH is /v3/kv/put (etcd >= 3.4) or /v3beta/kv/put (3.3); load/etcd.sh detects it.
local KEYS = tonumber(os.getenv("KEYS") or "1000")
local PATH = os.getenv("ETCD_PUT_PATH") or "/v3/kv/put"
local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local threads = 0

local function base64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = a * 65536 + (b or 0) * 256 + (c or 0)
    local d1 = math.floor(v / 262144) % 64
    local d2 = math.floor(v / 4096) % 64
    local d3 = math.floor(v / 64) % 64
    local d4 = v % 64
    out[#out + 1] = ALPHABET:sub(d1 + 1, d1 + 1) .. ALPHABET:sub(d2 + 1, d2 + 1)
      .. (b and ALPHABET:sub(d3 + 1, d3 + 1) or "=")
      .. (c and ALPHABET:sub(d4 + 1, d4 + 1) or "=")
  end
  return table.concat(out)
end

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  n = 0
  -- The keys are encoded once per thread; only the value changes per request.
  keys = {}
  for i = 0, KEYS - 1 do
    keys[i] = base64(string.format("bench/%d-%d", tid, i))
  end
end

function request()
  n = n + 1
  local headers = { ["Content-Type"] = "application/json" }
  local body = string.format('{"key":"%s","value":"%s"}', keys[n % KEYS],
    base64(string.format('{"n":%d}', n)))
  return wrk.format("POST", PATH, headers, body)
end
