-- wrk script: POST /api/purchases with a fresh user id per request.
-- wrk -s loadtest/purchase.lua -t2 -c64 -d10s http://127.0.0.1:3000
local counter = 0
local prefix = tostring(os.time()) .. "-" .. tostring(math.random(1000000))
request = function()
  counter = counter + 1
  local body = '{"userId":"w' .. prefix .. "-" .. counter .. '"}'
  return wrk.format("POST", "/api/purchases", { ["Content-Type"] = "application/json" }, body)
end
