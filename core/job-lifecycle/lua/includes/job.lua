--[[
  Shared by every job script: the arguments every script gets, and how an event is
  written. Every script takes the same first KEYS and ARGV:

    KEYS[1] job hash          {p}:job:<id>
    KEYS[2] job events        {p}:job:<id>:events (stream, entry ids <seq>-0)
    KEYS[3] job seq           {p}:job:<id>:seq (counter numbering the events)

    ARGV[1] now (ms)
    ARGV[2] retention of a finished job (s)
    ARGV[3] retention of a job that has not ended yet (s)
    ARGV[4] the job's notify channel (the newest seq is published there)
    ARGV[5] the finished channel (the id is published there once it ends)
    ARGV[6] job id
    ARGV[7] the server's default quotas (JSON), for tenants without their own
    ARGV[8] the statuses this move may start from, comma-separated (transitions.ts)

  Script-specific KEYS and ARGV come after these; each script's header says which.
]]
local now, ttl, liveTtl, notify, finished, id = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]

-- Whether the job's current status is one this move may start from (transitions.ts).
local function movesFrom(status)
  return status ~= false and status ~= nil and string.find(',' .. ARGV[8] .. ',', ',' .. status .. ',', 1, true) ~= nil
end

-- An event of the job whose events stream, seq counter and notify channel are given
-- (create writes several jobs' first events); `event` is this script's own job's.
local function eventOn(events, counter, channel, ...)
  local seq = redis.call('INCR', counter)
  redis.call('XADD', events, seq .. '-0', 'seq', seq, 'ts', now, ...)
  redis.call('EXPIRE', events, liveTtl)
  redis.call('EXPIRE', counter, liveTtl)
  redis.call('PUBLISH', channel, seq)
  return seq
end

local function event(...)
  return eventOn(KEYS[2], KEYS[3], notify, ...)
end
