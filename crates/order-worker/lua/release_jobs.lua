-- release_jobs.lua: give back to the queue the jobs a stopped worker loop held.
--
-- A loop of ours that failed (a Redis timeout, a lost connection) is dropped
-- with jobs still in its in-flight set, and apalis would hand them to
-- another worker only once the loop counts as dead (missed heartbeats).
-- The supervisor calls this before it starts the next loop, so they are
-- fetched again at once (at the head of the queue: they are the oldest).
--
-- KEYS[1]  the queue's workers sorted set
-- KEYS[2]  the queue's active job list
-- KEYS[3]  the stopped loop's in-flight set
-- KEYS[4]  the stopped loop's metadata hash
-- ARGV[1]  the stopped loop's worker name
--
-- Returns the number of jobs given back.
local jobs = redis.call('SMEMBERS', KEYS[3])
-- In chunks: Lua's unpack refuses more than ~8,000 values.
for i = 1, #jobs, 1000 do
  redis.call('LPUSH', KEYS[2], unpack(jobs, i, math.min(i + 999, #jobs)))
end
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('ZREM', KEYS[1], ARGV[1])
return #jobs
