--[[
  claim: a worker takes a queued job to run it (queued -> running), or ends it as
  cancelled when a cancel came first (queued -> cancelled).

  KEYS[1..10]  job.lua, tenant.lua
  KEYS[11]     the tenant's job index {p}:tenant:<t>:jobs (renewed with the record)
  ARGV[1..8]   job.lua
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     worker id
  ARGV[11]     reason of a job cancelled before it started (reasons.ts)

  Returns 'claimed'; 'cancelled'; 'throttled' (the tenant is at its maxRunning quota:
  the job stays queued); 'missing'; or the status the job has, when it is not queued.
]]
--- @include "includes/job"
--- @include "includes/tenant"

local status = redis.call('HGET', KEYS[1], 'status')
if not status then return 'missing' end
if not movesFrom(status) then return status end
if not tenantMatches(ARGV[9]) then return 'missing' end
if redis.call('HGET', KEYS[1], 'cancelRequested') == '1' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', now, 'reason', ARGV[11])
  final('cancelled')
  return 'cancelled'
end
-- A running job's record lives a live TTL from its claim (below): an entry claimed
-- longer ago than that has no record left to end it (Redis lost it, or it expired before
-- this renewal existed), and held the tenant's running quota for good (review 19).
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. (tonumber(now) - liveTtl * 1000))
-- The fair-share gate: a tenant at its maxRunning quota waits; its job goes back to
-- the queue for a moment and the worker takes the next one, often another tenant's.
local maxRunning = quota('maxRunning')
if maxRunning and redis.call('ZCARD', KEYS[7]) >= maxRunning then return 'throttled' end
redis.call('HSET', KEYS[1], 'status', 'running', 'startedAt', now, 'worker', ARGV[10])
-- The record, what the tenant's storage counts for it and the tenant's job index live a
-- live TTL from now: a job that waited long in the queue expired while it ran, and its
-- result was lost (and its listing, with the index, when its tenant made no job since).
redis.call('EXPIRE', KEYS[1], liveTtl)
redis.call('ZADD', KEYS[8], 'XX', tonumber(now) + liveTtl * 1000, id)
for i = 8, 11 do redis.call('EXPIRE', KEYS[i], liveTtl) end
redis.call('ZADD', KEYS[4], now, id)
redis.call('ZREM', KEYS[6], id)
redis.call('ZADD', KEYS[7], now, id)
event('type', 'status', 'status', 'running')
return 'claimed'
