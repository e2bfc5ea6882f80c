-- Takes the jobs of worker ARGV[1] if its heartbeat (KEYS[1]) expired:
-- reads and deletes its landing list (KEYS[2]) and held set (KEYS[3]) and
-- deregisters it from the worker set (KEYS[4]), atomically, so exactly one
-- scheduler gets them. Returns the jobs, or nil while the worker is alive.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return nil
end
local jobs = redis.call('LRANGE', KEYS[2], 0, -1)
for _, v in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  jobs[#jobs + 1] = v
end
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('SREM', KEYS[4], ARGV[1])
return jobs
