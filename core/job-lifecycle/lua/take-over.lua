--[[
  take-over: a worker becomes the holder of a running job whose worker stopped, to
  follow a sandbox that outlived it (running -> running, another worker).

  KEYS[1..3]   job.lua
  ARGV[1..8]   job.lua
  ARGV[9]      the worker taking over
  ARGV[10]     the worker it takes over from, or '' for whichever it was

  Returns 1, or 0 when the job is no longer running (or no longer that worker's).
]]
--- @include "includes/job"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then return 0 end
if ARGV[10] ~= '' and redis.call('HGET', KEYS[1], 'worker') ~= ARGV[10] then return 0 end
redis.call('HSET', KEYS[1], 'worker', ARGV[9])
return 1
