-- purchase.lua: one purchase attempt, checked and written in one atomic step.
--
-- KEYS[1]  {sale:ID}:stock              integer, remaining stock
-- KEYS[2]  {sale:ID}:buyers             hash userId -> "orderId|purchasedAtMillis" (the ledger)
-- KEYS[3]  {sale:ID}:attempts:<userId>  per-user attempt counter
-- ARGV[1]  userId
-- ARGV[2]  orderId, minted by the api before the call
-- ARGV[3]  maximum attempts per user in the window (0 = no limit)
-- ARGV[4]  attempt window in seconds
--
-- Returns one of:
--   "OK|<purchasedAtMillis>|<stockLeft>"      stock decremented, ledger entry written
--   "DUPLICATE|<orderId>|<purchasedAtMillis>" this user already bought: their order
--   "SOLD_OUT"                                no stock left
--   "TOO_MANY_ATTEMPTS"                       the user is over ARGV[3] attempts
--   "NOT_ARMED"                               the sale's stock key does not exist
--
-- A missing stock key is never treated as zero: that would answer "sold out"
-- for a sale Redis merely forgot, and DECR would create a negative stock.
-- The purchase time comes from Redis's clock so every replica agrees on it.
local stock = redis.call('GET', KEYS[1])
if not stock then
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

if tonumber(stock) <= 0 then
  return 'SOLD_OUT'
end

local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local purchased_at = string.format('%d', millis)
local left = redis.call('DECR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. purchased_at)
return 'OK|' .. purchased_at .. '|' .. left
