--[[
  requeue: a worker shutting down past its grace period hands a job back
  (running -> queued), so that a claim can take it again. Only the worker that claimed
  it may.

  KEYS[1..10]  job.lua, tenant.lua
  ARGV[1..8]   job.lua
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     worker id

  Returns 1, or 0 when this worker no longer holds the job.
]]
--- @include "includes/job"
--- @include "includes/tenant"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[10] or not tenantMatches(ARGV[9]) then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'startedAt', 'worker')
redis.call('HINCRBY', KEYS[1], 'handedBack', 1)
redis.call('ZREM', KEYS[4], id)
redis.call('ZREM', KEYS[7], id)
redis.call('ZADD', KEYS[6], now, id)
event('type', 'status', 'status', 'queued')
return 1
