--[[
  lost: ends a running job whose worker is gone (running -> error), unless it has
  moved on meanwhile. It is not run again: at most once.

  KEYS[1..10]  job.lua, tenant.lua
  ARGV[1..8]   job.lua
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     the worker believed dead
  ARGV[11]     reason (reasons.ts)

  Returns 1, or 0 when the job had moved on (a job no longer running also leaves the
  running set).
]]
--- @include "includes/job"
--- @include "includes/tenant"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then
  redis.call('ZREM', KEYS[4], id)
  return 0
end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[10] or not tenantMatches(ARGV[9]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'error', 'finishedAt', now, 'reason', ARGV[11])
final('error')
return 1
