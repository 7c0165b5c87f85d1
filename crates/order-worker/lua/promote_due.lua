-- promote_due.lua: move due jobs from apalis-redis's scheduled set to its
-- active list, at most ARGV[2] at a time.
--
-- apalis-redis 1.0 puts every pushed job in the scheduled set and its fetch
-- script promotes *all* due jobs with one `unpack`, which Redis's Lua refuses
-- past ~8,000 values: a backlog that large (a worker down during a burst)
-- jams the queue for good. Promoting in bounded chunks first keeps the
-- scheduled set small enough for apalis's fetch.
--
-- KEYS[1]  the queue's scheduled jobs sorted set (score: due time, seconds)
-- KEYS[2]  the queue's active job list
-- KEYS[3]  the queue's signal list (workers wait on it)
-- ARGV[1]  now, epoch seconds (apalis-redis's unit)
-- ARGV[2]  most jobs to move in this call
--
-- Returns the number of jobs moved (less than ARGV[2] once none are left).
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], 0, ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
if #ids == 0 then
  return 0
end
redis.call('RPUSH', KEYS[2], unpack(ids))
redis.call('ZREM', KEYS[1], unpack(ids))
redis.call('DEL', KEYS[3])
redis.call('LPUSH', KEYS[3], 1)
return #ids
