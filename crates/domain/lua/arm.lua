-- arm.lua: write a sale's meta, stock and ledger once, unless it is armed already.
--
-- KEYS[1]  {sale:ID}:meta    hash: total, startsAt, endsAt (millis)
-- KEYS[2]  {sale:ID}:stock   integer, remaining stock
-- KEYS[3]  {sale:ID}:buyers  hash userId -> "orderId|purchasedAtMillis"
-- ARGV[1]  total stock
-- ARGV[2]  sale start, epoch millis
-- ARGV[3]  sale end, epoch millis
-- ARGV[4]  remaining stock to write (total minus orders already persisted)
-- ARGV[5..] pairs userId, "orderId|purchasedAtMillis" to restore into the ledger
--
-- Returns "<ARMED|EXISTING>|<total>|<startsAt>|<endsAt>": ARMED when this call
-- wrote the sale, EXISTING when it was armed already (then nothing is written
-- and the stored meta is returned, so a restart or a second replica never
-- resets stock). The stock key is the marker: meta without stock means Redis
-- lost part of the sale, and the sale is written anew from the arguments.
if redis.call('EXISTS', KEYS[2]) == 1 then
  local meta = redis.call('HMGET', KEYS[1], 'total', 'startsAt', 'endsAt')
  return 'EXISTING|' .. (meta[1] or '') .. '|' .. (meta[2] or '') .. '|' .. (meta[3] or '')
end

redis.call('HSET', KEYS[1], 'total', ARGV[1], 'startsAt', ARGV[2], 'endsAt', ARGV[3])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
redis.call('SET', KEYS[2], ARGV[4])
return 'ARMED|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3]
