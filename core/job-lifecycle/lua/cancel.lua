--[[
  cancel: a tenant cancels its job. A queued one ends at once (queued -> cancelled); a
  running one is marked and its worker told to kill the sandbox (it ends as cancelled
  through finish).

  KEYS[1..10]  job.lua, tenant.lua
  ARGV[1..8]   job.lua
  ARGV[9]      the tenant asking (tenant.lua)
  ARGV[10]     the cancel channel (the id is published there for a running job)
  ARGV[11]     reason of a job cancelled before it started (reasons.ts)

  Returns 'do:cancelled', 'do:cancelling', 'was:<status>' (it had ended), or 'missing'
  (no such job of this tenant's).
]]
--- @include "includes/job"
--- @include "includes/tenant"

if not tenantMatches(ARGV[9]) then return 'missing' end
local status = redis.call('HGET', KEYS[1], 'status')
if not movesFrom(status) then return 'was:' .. status end
if status == 'queued' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finishedAt', now, 'reason', ARGV[11], 'cancelRequested', '1')
  final('cancelled')
  return 'do:cancelled'
end
redis.call('HSET', KEYS[1], 'cancelRequested', '1')
redis.call('PUBLISH', ARGV[10], id)
return 'do:cancelling'
