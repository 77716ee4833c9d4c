--[[
  Shared by the scripts that move a job between queued, running and its end: the
  job's tenant's keys, its quotas and what it holds in Redis. These scripts take, after
  the three job keys (job.lua):

    KEYS[4]  running jobs of every tenant  {p}:running (scored by claim time)
    KEYS[5]  the tenant's hash             {p}:tenant:<t> (quotas as JSON)
    KEYS[6]  the tenant's queued jobs      {p}:tenant:<t>:queued
    KEYS[7]  the tenant's running jobs     {p}:tenant:<t>:running
    KEYS[8]  the tenant's stored jobs      {p}:tenant:<t>:stored (scored by expiry, ms)
    KEYS[9]  bytes each job holds          {p}:tenant:<t>:stored:bytes
    KEYS[10] their sum                     {p}:tenant:<t>:stored:total

    ARGV[9]  the tenant (after job.lua's ARGV[1..8])

  The caller names the tenant's keys from the job's `tenant` field; a script checks
  that field (tenantMatches) before it counts anything against them.
]]
local TENANT_KEYS = 10

-- The caller passes the tenant it read from the record; a record that says otherwise
-- (or none) is not this job's, and nothing is counted.
local function tenantMatches(tenant)
  return redis.call('HGET', KEYS[1], 'tenant') == tenant
end

-- The tenant's own quota, else the server's default; nil (or 0 by default) is no limit.
local defaults
local function quota(name)
  local q = redis.call('HGET', KEYS[5], 'quotas')
  if q then
    local ok, d = pcall(cjson.decode, q)
    if ok and type(d) == 'table' and type(d[name]) == 'number' then return d[name] end
  end
  defaults = defaults or cjson.decode(ARGV[7])
  local v = defaults[name]
  if type(v) == 'number' and v > 0 then return v end
  return nil
end

-- What a tenant holds in Redis: each job's bytes (a reservation until it ends, then
-- what it really holds), scored by when the record expires, and their running total.
local function storageForget(ids)
  for _, j in ipairs(ids) do
    local b = tonumber(redis.call('HGET', KEYS[9], j) or '0')
    redis.call('DECRBY', KEYS[10], b)
    redis.call('HDEL', KEYS[9], j)
    redis.call('ZREM', KEYS[8], j)
  end
end

-- Returns by how much the tenant's total moved. Without `keepFor` the caller sets the
-- keys' expiry itself (create, once for all its jobs).
local function storageSet(j, bytes, expiresAt, keepFor)
  local was = tonumber(redis.call('HGET', KEYS[9], j) or '0')
  redis.call('INCRBY', KEYS[10], bytes - was)
  redis.call('HSET', KEYS[9], j, bytes)
  redis.call('ZADD', KEYS[8], expiresAt, j)
  if keepFor then
    for i = 8, 10 do redis.call('EXPIRE', KEYS[i], keepFor) end
  end
  return bytes - was
end

-- The job's end: out of the running and queued sets, its last events, and kept for
-- its retention. `kept` lists more keys that live as long as the record (its output
-- and artifacts, FINISH only).
local function final(status, kept)
  redis.call('ZREM', KEYS[4], id)
  redis.call('ZREM', KEYS[7], id)
  redis.call('ZREM', KEYS[6], id)
  event('type', 'status', 'status', status)
  event('type', 'end')
  -- A tenant's retention quota can only shorten how long its jobs are kept.
  local keep = tonumber(ttl)
  local own = quota('retentionSeconds')
  if own and own < keep then keep = own end
  for i = 1, 3 do redis.call('EXPIRE', KEYS[i], keep) end
  for _, k in ipairs(kept or {}) do redis.call('EXPIRE', k, keep) end
  local values = 0
  for _, f in ipairs({'inputBytes', 'outputBytes', 'artifactBytes', 'resultBytes'}) do
    values = values + tonumber(redis.call('HGET', KEYS[1], f) or '0')
  end
  local held = JOB_OVERHEAD_BYTES + math.ceil(values * STORED_VALUE_FACTOR)
  storageSet(id, held, tonumber(now) + keep * 1000, liveTtl)
  redis.call('PUBLISH', finished, id)
end
