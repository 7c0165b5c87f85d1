-- sweep_noted.lua: remove the jobs the worker noted as finished a retention ago.
--
-- Each job whose orders a worker committed is noted in a sorted set by
-- when (the worker's handler does it), so a sweep touches each finished job
-- once, instead of walking apalis's whole done set (every job of the last
-- retention) every few seconds.
--
-- KEYS[1]  the queue's noted-finished sorted set (score: epoch seconds)
-- KEYS[2]  the queue's done set
-- KEYS[3]  the queue's job data hash (job id -> payload)
-- ARGV[1]  the prefix of the jobs' meta hashes ("<queue>:meta")
-- ARGV[2]  remove jobs noted before this, epoch seconds
-- ARGV[3]  most jobs to look at in this call
--
-- A job apalis has not marked Done yet (its acknowledgement is late, or it
-- runs again after its loop died) keeps its note until it is; a note whose
-- job is gone is dropped. Returns { jobs looked at, jobs removed }. The
-- meta keys are not declared in KEYS: apalis-redis runs on one server only.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
local removed = 0
for _, id in ipairs(ids) do
  local meta = ARGV[1] .. ':' .. id
  local status = redis.call('HGET', meta, 'status')
  if status == 'Done' then
    redis.call('HDEL', KEYS[3], id)
    redis.call('DEL', meta)
    redis.call('SREM', KEYS[2], id)
    redis.call('ZREM', KEYS[1], id)
    removed = removed + 1
  elseif not status then
    redis.call('ZREM', KEYS[1], id)
  end
end
return { #ids, removed }
