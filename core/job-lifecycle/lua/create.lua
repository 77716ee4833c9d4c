--[[
  create: new jobs of one tenant, queued, each unless one of its tenant's quotas refuses
  it. One call takes a whole batch (or a turn's single submissions): the tenant's quotas,
  counts and trimming are read once, and each job is then created or refused in order,
  as if it had come alone after the ones before it.

  KEYS[1..10]  job.lua (the first job's), tenant.lua
  KEYS[11]     the tenant's job index {p}:tenant:<t>:jobs (scored by creation, ms)
  KEYS[12..]   each job's three keys, as job.lua's KEYS[1..3]: job i's at 12 + 3(i-1)
  ARGV[1..8]   job.lua (ARGV[4] and ARGV[6] the first job's; ARGV[8] is empty: a job is
               created from nothing)
  ARGV[9]      tenant (tenant.lua)
  ARGV[10]     queued entries older than this (ms) are dropped, and index entries a live
               TTL older: their records expired
  ARGV[11]     the number of jobs
  ARGV[12..]   seven for each job, job i's at 12 + 7(i-1): its id, its notify channel,
               the bytes it reserves against the tenant's storage quota, its runtime, its
               spec (JSON), that spec's size in bytes, and the digest of the request an
               Idempotency-Key made it for ('' for a job without one; idempotency.ts)

  Returns, for each job in order, 'created' or why it was not: 'queued-quota',
  'storage-quota:<bytes the tenant holds>', 'exists' (the id is taken), or, for a job
  whose id its tenant's Idempotency-Key chose and that is there already, 'replay' (the
  same request made it) or 'key-reused' (another request did). The same create run twice
  (a client library sends a transaction again after a reconnect) is 'created' both times:
  a record is this call's own when its tenant, createdAt (ARGV[1]) and digest are.
]]
--- @include "includes/job"
--- @include "includes/tenant"
--- @include "includes/made-by"

local tenant, oldest, count = ARGV[9], ARGV[10], tonumber(ARGV[11])
-- A queued or index entry older than any record can live is one whose record expired.
-- Dropped a bounded number per call, more than a call adds: a tenant back after a long
-- time away (with a million entries) must not hold Redis, everyone's, for one long sweep
-- (its queued quota counts the expired entries still left, a few calls at most).
-- (Lua's unpack takes ~8,000 values: 4,000 at most, above any AIRLOCK_MAX_BATCH_JOBS's 2,200.)
local function dropOlder(key, before)
  local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. before, 'LIMIT', 0, math.min(200 + 2 * count, 4000))
  if #old > 0 then redis.call('ZREM', key, unpack(old)) end
end
dropOlder(KEYS[6], oldest)
-- A claim renews a record for a live TTL, so a job that waited long in the queue lives up
-- to two from its creation, and its index entry (scored by creation) as long: cut at one,
-- such a job dropped out of its tenant's listing while it ran (code review L3). Entries
-- leave the index sooner as their storage entries expire (below), which a claim renews too.
dropOlder(KEYS[11], tonumber(oldest) - liveTtl * 1000)
local maxQueued, maxStored = quota('maxQueued'), quota('maxStoredBytes')
local queued = maxQueued and redis.call('ZCARD', KEYS[6])
-- Records that expired free their bytes and their index entries here, a bounded number
-- per call, with a storage quota or without one: kept, they grew for as long as the
-- tenant made jobs (without a quota), or outlived a record a short retention expired by
-- up to a day and the retention (the index), counted by nothing. A minute late: an
-- expiry is scored by the deployment's clock (core/clock.ts), Redis's as a process last
-- read it, and records expire by Redis's own.
local CLOCK_MARGIN_MS = 60000
local expired = redis.call('ZRANGEBYSCORE', KEYS[8], '-inf', '(' .. (tonumber(now) - CLOCK_MARGIN_MS), 'LIMIT', 0, 200)
storageForget(expired)
for _, j in ipairs(expired) do redis.call('ZREM', KEYS[11], j) end
local held = maxStored and tonumber(redis.call('GET', KEYS[10]) or '0')
local expiresAt = tonumber(now) + liveTtl * 1000

local results, made = {}, false
for i = 1, count do
  local k, a = 12 + 3 * (i - 1), 12 + 7 * (i - 1)
  local record, jobId, reserve, digest = KEYS[k], ARGV[a], tonumber(ARGV[a + 2]), ARGV[a + 6]
  if redis.call('EXISTS', record) == 1 then
    local owner, createdAt, made = unpack(redis.call('HMGET', record, 'tenant', 'createdAt', 'requestDigest'))
    if owner ~= tenant then
      results[i] = 'exists'
    elseif madeBy(createdAt, made, now, digest) then
      results[i] = 'created'
    elseif digest == '' then
      results[i] = 'exists'
    else
      results[i] = made == digest and 'replay' or 'key-reused'
    end
  elseif maxQueued and queued >= maxQueued then
    results[i] = 'queued-quota'
  elseif maxStored and held + reserve > maxStored then
    results[i] = 'storage-quota:' .. held
  else
    local moved = storageSet(jobId, reserve, expiresAt)
    if held then held = held + moved end
    if queued then queued = queued + 1 end
    redis.call('ZADD', KEYS[6], now, jobId)
    redis.call('HSET', record, 'tenant', tenant, 'status', 'queued', 'runtime', ARGV[a + 3], 'spec', ARGV[a + 4],
      'inputBytes', ARGV[a + 5], 'createdAt', now)
    if digest ~= '' then redis.call('HSET', record, 'requestDigest', digest) end
    redis.call('EXPIRE', record, liveTtl)
    redis.call('ZADD', KEYS[11], now, jobId)
    eventOn(KEYS[k + 1], KEYS[k + 2], ARGV[a + 1], 'type', 'status', 'status', 'queued')
    results[i] = 'created'
    made = true
  end
end
if made then
  for _, key in ipairs({ KEYS[6], KEYS[8], KEYS[9], KEYS[10], KEYS[11] }) do redis.call('EXPIRE', key, liveTtl) end
end
return results
