-- A worker's clean exit: hands every job it still holds (landing list
-- KEYS[2], held set KEYS[3]) back to the right of the queue (KEYS[1]), to
-- be taken next, and returns how many.
local jobs = redis.call('LRANGE', KEYS[2], 0, -1)
for _, v in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  jobs[#jobs + 1] = v
end
for i = 1, #jobs, 500 do
  redis.call('RPUSH', KEYS[1], unpack(jobs, i, math.min(i + 499, #jobs)))
end
redis.call('DEL', KEYS[2], KEYS[3])
return #jobs
