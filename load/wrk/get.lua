-- GET /api/state/read/<n> for a random n below KEYS: reads of values seeded beforehand
-- (load/cluster.sh writes read/0 … read/KEYS-1).
local KEYS = tonumber(os.getenv("KEYS") or "1000")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
  token = os.getenv("KOOR_TOKEN")
end

function request()
  local headers = {}
  if token and token ~= "" then
    headers["Authorization"] = "Bearer " .. token
  end
  return wrk.format("GET", string.format("/api/state/read/%d", math.random(0, KEYS - 1)), headers)
end
