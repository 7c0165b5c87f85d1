-- reading.lua: the sale's stock and Redis's clock, in one round trip.
--
-- KEYS[1]  {sale:ID}:stock
--
-- Returns "<stock>|<nowMillis>", with an empty stock when the sale is not
-- armed. Status pages judge the sale's phase on this clock, the one the
-- purchase script uses, so every replica shows the same phase.
local stock = redis.call('GET', KEYS[1]) or ''
local now = redis.call('TIME')
local millis = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return stock .. '|' .. string.format('%d', millis)
