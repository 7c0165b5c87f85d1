-- reading.lua: the sale's stock and Redis's clock, in one round trip.
--
-- KEYS[1]  {sale:ID}:stock
-- KEYS[2]  {sale:ID}:buyers
-- KEYS[3]  {sale:ID}:meta
--
-- Returns "<stock>|<nowMillis>", with an empty stock when the sale is not
-- whole (missing, or stock without the ledger or meta it belongs to; see
-- purchase.lua). Status pages judge the sale's phase on this clock, the one
-- the purchase script uses, so every replica shows the same phase.
local stock = redis.call('GET', KEYS[1])
local total = redis.call('HGET', KEYS[3], 'total')
if stock and total then
  local expected = math.max(0, tonumber(total) - redis.call('HLEN', KEYS[2]))
  if tonumber(stock) ~= expected then
    stock = false
  end
else
  stock = false
end
local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return (stock or '') .. '|' .. string.format('%d', millis)
