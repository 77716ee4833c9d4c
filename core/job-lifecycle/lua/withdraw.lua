--[[
  withdraw: takes back a job that was never accepted (its queue entry could not be
  written, or its answer was lost), while it is still queued: no worker has it. A job a
  worker has claimed meanwhile stands, as accepted.

  KEYS[1..10]  job.lua, tenant.lua
  KEYS[11]     the tenant's job index {p}:tenant:<t>:jobs
  ARGV[1..8]   job.lua
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     optional: the createdAt of the create taking its job back
  ARGV[11]     with ARGV[10]: that create's request digest, '' for none

  Returns 1 when it took the job back, 0 when there is no job of this tenant's by that id,
  2 when the job stands (a worker has it, or it has ended), 3 (with ARGV[10]) when the job
  there is not the one that create made.
]]
--- @include "includes/job"
--- @include "includes/tenant"
--- @include "includes/made-by"

local status, createdAt, digest = unpack(redis.call('HMGET', KEYS[1], 'status', 'createdAt', 'requestDigest'))
if not status or not tenantMatches(ARGV[9]) then return 0 end
-- An Idempotency-Key's id may hold another request's job, made a moment ahead and
-- answered 202: a create whose answer was lost takes back only the record it made
-- (create.lua's own test of "this call's": createdAt and digest).
if ARGV[10] and not madeBy(createdAt, digest, ARGV[10], ARGV[11]) then return 3 end
if not movesFrom(status) then return 2 end
-- Deleting is allowed when Redis is full, so it goes first; giving back the reservation is
-- a write a full Redis refuses, and then the reservation lapses with its expiry.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[11], id)
redis.call('ZREM', KEYS[6], id)
local given = redis.pcall('DECRBY', KEYS[10], tonumber(redis.call('HGET', KEYS[9], id) or '0'))
if type(given) == 'table' and given.err then return 1 end
redis.call('HDEL', KEYS[9], id)
redis.call('ZREM', KEYS[8], id)
return 1
