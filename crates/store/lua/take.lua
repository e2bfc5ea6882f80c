-- Takes up to ARGV[1] jobs for one worker, atomically: first the entry its
-- blocking wait left in its landing list (KEYS[2], at most one), then more
-- from the right of the queue (KEYS[1]). Each is added to the worker's held
-- set (KEYS[3]), from which an acknowledgement removes it in O(1).
-- Returns the jobs taken.
local out = redis.call('LRANGE', KEYS[2], 0, -1)
if #out > 0 then
  redis.call('DEL', KEYS[2])
end
local want = tonumber(ARGV[1]) - #out
if want > 0 then
  local more = redis.call('RPOP', KEYS[1], want)
  if more then
    for _, v in ipairs(more) do
      out[#out + 1] = v
    end
  end
end
if #out > 0 then
  redis.call('SADD', KEYS[3], unpack(out))
end
return out
