-- arm.lua: find a sale whole, or (re)build it from the orders that stand.
--
-- KEYS[1]  {sale:ID}:meta    hash: total, startsAt, endsAt (millis), last
-- KEYS[2]  {sale:ID}:stock   integer, remaining stock
-- KEYS[3]  {sale:ID}:buyers  hash userId -> "orderId|purchasedAtMillis"
-- KEYS[4]  (arm only) {sale:ID}:restore:<random>: a staging hash of the
--          orders that stand (userId -> entry), written beforehand a page
--          at a time, so a sale of any size is rebuilt without one huge
--          call; deleted here
-- ARGV[1]  mode:
--            "look"   write nothing; the sale as Redis holds it, if whole
--            "arm"    make the sale whole: meta from ARGV[2..4] unless present,
--                     the orders of KEYS[4] into the ledger, and
--                     stock = max(0, total - buyers)
--            "merge"  put the orders of ARGV[5..] back into a whole sale's
--                     ledger and take their units out of its stock
-- ARGV[2]  total stock              (arm)
-- ARGV[3]  sale start, epoch millis (arm)
-- ARGV[4]  sale end, epoch millis   (arm)
-- ARGV[5..] pairs userId, "orderId|purchasedAtMillis" (merge)
--
-- Whole means meta and stock present and stock = max(0, total - buyers):
-- every unit is in stock or held by a buyer. Anything else is a sale Redis
-- partly lost, and selling from it could sell a unit twice, so only "arm"
-- (given every order that stands: PostgreSQL's rows and the queue's jobs)
-- may write one. An order that stands wins over a ledger entry of the same
-- user naming another. A write sets meta `last` (see purchase.lua).
--
-- Returns "<EXISTING|ARMED>|<total>|<startsAt>|<endsAt>|<restored>":
-- EXISTING when the sale was whole already (then only `restored` buyers were
-- put back), ARMED when this call made it whole; or "NOT_ARMED" when the
-- sale is not whole and the mode may not write it (nothing was written).
local mode = ARGV[1]
local meta = redis.call('HMGET', KEYS[1], 'total', 'startsAt', 'endsAt')
local has_meta = meta[1] and meta[2] and meta[3]
local stock = redis.call('GET', KEYS[2])

local function expected_stock(total)
  return math.max(0, tonumber(total) - redis.call('HLEN', KEYS[3]))
end

local whole = has_meta and stock and tonumber(stock) == expected_stock(meta[1])
if not whole and mode ~= 'arm' then
  return 'NOT_ARMED'
end
if not has_meta then
  redis.call('HSET', KEYS[1], 'total', ARGV[2], 'startsAt', ARGV[3], 'endsAt', ARGV[4])
  meta = { ARGV[2], ARGV[3], ARGV[4] }
end

local restored = 0
local changed = false
local function put_back(user, entry)
  local held = redis.call('HGET', KEYS[3], user)
  if held ~= entry then
    redis.call('HSET', KEYS[3], user, entry)
    changed = true
    if not held then
      restored = restored + 1
    end
  end
end

if mode == 'arm' and KEYS[4] then
  if redis.call('EXISTS', KEYS[3]) == 0 then
    -- The whole ledger is gone: the staged orders are the ledger.
    restored = redis.call('HLEN', KEYS[4])
    if restored > 0 then
      redis.call('RENAME', KEYS[4], KEYS[3])
      changed = true
    end
  else
    local staged = redis.call('HGETALL', KEYS[4])
    for i = 1, #staged, 2 do
      put_back(staged[i], staged[i + 1])
    end
  end
  redis.call('DEL', KEYS[4])
else
  for i = 5, #ARGV, 2 do
    put_back(ARGV[i], ARGV[i + 1])
  end
end

if not whole or changed then
  redis.call('SET', KEYS[2], expected_stock(meta[1]))
  local now = redis.call('TIME')
  redis.call('HSET', KEYS[1], 'last', 'arm:' .. now[1] .. '.' .. now[2])
end
local state = whole and 'EXISTING' or 'ARMED'
return state .. '|' .. meta[1] .. '|' .. meta[2] .. '|' .. meta[3] .. '|' .. restored
