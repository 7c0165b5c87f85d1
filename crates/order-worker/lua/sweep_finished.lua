-- sweep_finished.lua: remove jobs that finished more than a retention ago.
--
-- apalis-redis keeps every job it ever ran (payload, meta hash, set member)
-- and has no expiry; a long sale would fill the Redis that also holds the
-- stock and the ledger. A job is in the done set only once its handler
-- succeeded, that is once every order it carried is committed in
-- PostgreSQL, so after a short retention (to look at recent jobs while
-- debugging) nothing of it is needed.
--
-- KEYS[1]  the queue's done set
-- KEYS[2]  the queue's job data hash (job id -> payload)
-- ARGV[1]  the prefix of the jobs' meta hashes ("<queue>:meta"; job ID's is "<prefix>:ID")
-- ARGV[2]  remove jobs finished before this, epoch seconds (apalis's `done_at`)
-- ARGV[3]  SSCAN cursor ("0" to start)
-- ARGV[4]  SSCAN count
--
-- Returns { next cursor ("0": the set was walked), jobs removed }. The meta
-- keys are not declared in KEYS: apalis-redis itself runs on one server
-- only (never a cluster), where that is allowed.
local scan = redis.call('SSCAN', KEYS[1], ARGV[3], 'COUNT', ARGV[4])
local removed = 0
for _, id in ipairs(scan[2]) do
  local meta = ARGV[1] .. ':' .. id
  local state = redis.call('HMGET', meta, 'status', 'done_at')
  if state[1] == 'Done' and tonumber(state[2] or '0') < tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[2], id)
    redis.call('DEL', meta)
    redis.call('SREM', KEYS[1], id)
    removed = removed + 1
  end
end
return { scan[1], removed }
