--[[
  finish: a job's final status, written once (queued or running -> any final status).

  KEYS[1..10]  job.lua, tenant.lua
  KEYS[11]     the job's stdout key, KEYS[12] its stderr key (used when the record's
               `output` field says 'keys': its event stream missed some output)
  KEYS[13..]   its artifacts' keys, written before (they expire unless this keeps them)
  ARGV[1..8]   job.lua
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     the final status
  ARGV[11]     stdout, ARGV[12] stderr: kept in KEYS[11], KEYS[12] when `output` is 'keys'
  ARGV[13..]   field/value pairs written to the record

  Returns 1, or 0 when the job had already ended (or is not this tenant's).
]]
--- @include "includes/job"
--- @include "includes/tenant"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then return 0 end
if not tenantMatches(ARGV[9]) then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 13))
local kept = {}
if redis.call('HGET', KEYS[1], 'output') == 'keys' then
  redis.call('SET', KEYS[11], ARGV[11])
  redis.call('SET', KEYS[12], ARGV[12])
  -- Whatever the live log holds stays too (it is what streams replay): both are counted.
  redis.call('HINCRBY', KEYS[1], 'outputBytes', #ARGV[11] + #ARGV[12])
  kept = {KEYS[11], KEYS[12]}
end
-- The job's artifacts live as long as its record.
for i = 13, #KEYS do kept[#kept + 1] = KEYS[i] end
final(ARGV[10], kept)
return 1
