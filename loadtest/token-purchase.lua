-- wrk script: POST /api/purchases behind sign-in, each request a new buyer's
-- token (so each pays one signature check), an empty body (the token names
-- the buyer). Arguments after `--`: the token file (one per line) and the
-- line to start at; the two threads take alternate lines.
-- wrk -t2 -c64 -d5s -s loadtest/token-purchase.lua http://127.0.0.1:3000 -- tokens.txt 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  tokens = {}
  local start = tonumber(args[2] or "0")
  local line = 0
  for token in io.lines(args[1]) do
    if line >= start and line % 2 == tid % 2 then
      tokens[#tokens + 1] = "Bearer " .. token
    end
    line = line + 1
  end
  n = 0
end

function request()
  n = n % #tokens + 1
  return wrk.format("POST", "/api/purchases", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = tokens[n],
  }, "{}")
end
