-- GET with the bearer token when KOOR_TOKEN is set.
function init(args)
  local token = os.getenv("KOOR_TOKEN")
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end
