-- wrk script: POST /api/purchases with a fresh user id per request.
-- wrk -s loadtest/purchase.lua -t2 -c64 -d10s http://127.0.0.1:3000
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = tostring(os.time()) .. "-" .. tostring(tid) .. "-"
  counter = 0
end

function request()
  counter = counter + 1
  local body = '{"userId":"w' .. prefix .. counter .. '"}'
  return wrk.format("POST", "/api/purchases", { ["Content-Type"] = "application/json" }, body)
end
