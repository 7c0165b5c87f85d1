-- purchase.lua: one purchase attempt, checked and written in one atomic step.
--
-- KEYS[1]  {sale:ID}:stock              integer, remaining stock
-- KEYS[2]  {sale:ID}:buyers             hash userId -> "orderId|purchasedAtMillis" (the ledger)
-- KEYS[3]  {sale:ID}:attempts:<userId>  per-user attempt counter
-- KEYS[4]  {sale:ID}:meta               hash: total, startsAt, endsAt, last (the
--                                       ledger's last writer: an order id)
-- ARGV[1]  userId
-- ARGV[2]  orderId, minted by the api before the call
-- ARGV[3]  maximum attempts per user in the window (0 = no limit)
-- ARGV[4]  attempt window in seconds (at least 1)
-- ARGV[5]  sale start, epoch millis (inclusive)
-- ARGV[6]  sale end, epoch millis (inclusive)
--
-- Returns one of:
--   "OK|<purchasedAtMillis>|<stockLeft>"      stock decremented, ledger entry written
--   "DUPLICATE|<orderId>|<purchasedAtMillis>" this user already bought: their order
--   "SOLD_OUT|<buyers>|<nowMillis>"           no stock left; the ledger's size and
--                                             Redis's clock, so a replica can answer
--                                             later refusals itself until either moves
--   "TOO_MANY_ATTEMPTS"                       the user is over ARGV[3] attempts
--   "NOT_ARMED"                               the sale is missing or only partly there
--   "NOT_STARTED" / "ENDED"                   outside the window, by Redis's clock
--
-- A sale is sold from only when it is whole: meta and stock present and
-- stock = max(0, total - buyers). A missing stock key is never "sold out"
-- (that would answer for a sale Redis merely forgot, and DECR would create a
-- negative stock); a stock whose ledger is gone would let earlier buyers buy
-- again. Either answers NOT_ARMED, and the api rebuilds the sale from
-- PostgreSQL. The window is judged first, and the purchase time taken, on
-- Redis's clock: one clock for every replica, however far their own clocks
-- drift; outside the window the answer does not depend on the stock (an
-- ended sale's keys expire, PostgreSQL keeps its orders).
local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if millis < tonumber(ARGV[5]) then
  return 'NOT_STARTED'
end
if millis > tonumber(ARGV[6]) then
  return 'ENDED'
end

local stock = redis.call('GET', KEYS[1])
local total = redis.call('HGET', KEYS[4], 'total')
if not stock or not total then
  return 'NOT_ARMED'
end
stock = tonumber(stock)
local buyers = redis.call('HLEN', KEYS[2])
if stock ~= math.max(0, tonumber(total) - buyers) then
  return 'NOT_ARMED'
end

local max_attempts = tonumber(ARGV[3])
if max_attempts > 0 then
  local attempts = redis.call('INCR', KEYS[3])
  if attempts == 1 then
    redis.call('EXPIRE', KEYS[3], ARGV[4])
  end
  if attempts > max_attempts then
    return 'TOO_MANY_ATTEMPTS'
  end
end

local existing = redis.call('HGET', KEYS[2], ARGV[1])
if existing then
  return 'DUPLICATE|' .. existing
end

if stock <= 0 then
  return 'SOLD_OUT|' .. buyers .. '|' .. string.format('%d', millis)
end

local purchased_at = string.format('%d', millis)
local left = redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. purchased_at)
-- The ledger's last writer: a change the reconciler's counts cannot see
-- (a buyer lost in a failover, another's entry added) still changes this.
redis.call('HSET', KEYS[4], 'last', ARGV[2])
return 'OK|' .. purchased_at .. '|' .. left
