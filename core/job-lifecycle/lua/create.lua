--[[
  create: a new job, queued, unless one of its tenant's quotas refuses it.

  KEYS[1..10]  job.lua, tenant.lua
  KEYS[11]     the tenant's job index {p}:tenant:<t>:jobs (scored by creation, ms)
  ARGV[1..8]   job.lua (ARGV[8] is empty: a job is created from nothing)
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     index entries older than this (ms) are dropped: their records expired
  ARGV[11]     bytes the job reserves against the tenant's storage quota
  ARGV[12..]   field/value pairs of the new record

  Returns 'created', or why nothing was created: 'queued-quota',
  'storage-quota:<bytes the tenant holds>', or 'exists' (the id is taken). The same
  create run twice (a client library sends a transaction again after a reconnect) is
  'created' both times: the record is this call's own when its tenant and createdAt
  (ARGV[1]) are.
]]
--- @include "includes/job"
--- @include "includes/tenant"

local tenant, oldest, reserve = ARGV[9], ARGV[10], tonumber(ARGV[11])
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('HGET', KEYS[1], 'tenant') == tenant and redis.call('HGET', KEYS[1], 'createdAt') == now then
    return 'created'
  end
  return 'exists'
end
-- A queued entry older than any record can live is one whose record expired unclaimed.
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. oldest)
local maxQueued = quota('maxQueued')
if maxQueued and redis.call('ZCARD', KEYS[6]) >= maxQueued then return 'queued-quota' end
local maxStored = quota('maxStoredBytes')
if maxStored then
  -- Records that expired free their bytes here, a bounded number per submission.
  storageForget(redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', now, 'LIMIT', 0, 200))
  local held = tonumber(redis.call('GET', KEYS[10]) or '0')
  if held + reserve > maxStored then return 'storage-quota:' .. held end
end
storageSet(id, reserve, tonumber(now) + liveTtl * 1000, liveTtl)
redis.call('ZADD', KEYS[6], now, id)
redis.call('EXPIRE', KEYS[6], liveTtl)
redis.call('HSET', KEYS[1], 'tenant', tenant, unpack(ARGV, 12))
redis.call('EXPIRE', KEYS[1], liveTtl)
redis.call('ZADD', KEYS[11], now, id)
redis.call('ZREMRANGEBYSCORE', KEYS[11], '-inf', '(' .. oldest)
redis.call('EXPIRE', KEYS[11], liveTtl)
event('type', 'status', 'status', 'queued')
return 'created'
