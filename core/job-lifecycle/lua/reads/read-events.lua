#!lua flags=no-writes
--[[
  read-events: a job's events in one bounded read, for NDJSON logs and stream replays:
  many small events in one round trip (a program alternating stdout and stderr a byte at
  a time makes 10,000 of them), few big ones. Read-only, so it answers when Redis is at
  its maxmemory.

  KEYS[1]  the job's event stream
  ARGV[1]  read after this entry id ('-': from the start)
  ARGV[2]  stop once the events' data passes this many bytes
  ARGV[3]  at most this many events

  Returns the entries as XRANGE does.
]]
--- @include "includes/event-walk"

local maxBytes = tonumber(ARGV[2])
local out, bytes = {}, 0
walkEvents(KEYS[1], ARGV[1], tonumber(ARGV[3]), function(e)
  out[#out + 1] = e
  local f = e[2]
  for i = 1, #f, 2 do
    if f[i] == 'data' then bytes = bytes + #f[i + 1] end
  end
  return bytes >= maxBytes
end, function() return bytes < maxBytes / 4 end)
return out
