#!lua flags=no-writes
--[[
  read-output: a job's output in one bounded read: the data of its log events of one
  stream (or both), joined. A read costs one round trip and a bounded reply however small
  or many the events. Read-only, so it answers when Redis is at its maxmemory.

  KEYS[1]  the job's event stream
  ARGV[1]  read after this entry id ('-': from the start)
  ARGV[2]  'stdout', 'stderr' or 'both'
  ARGV[3]  stop once this many bytes are gathered
  ARGV[4]  stop after looking at this many entries

  Returns { the id of the last entry looked at ('' when none), the data gathered }.
]]
--- @include "includes/event-walk"

local want, maxBytes = ARGV[2], tonumber(ARGV[3])
local parts, bytes = {}, 0
local last = walkEvents(KEYS[1], ARGV[1], tonumber(ARGV[4]), function(e)
  local f, kind, stream, data = e[2], nil, 'stdout', nil
  for i = 1, #f, 2 do
    if f[i] == 'type' then kind = f[i + 1] elseif f[i] == 'stream' then stream = f[i + 1] elseif f[i] == 'data' then data = f[i + 1] end
  end
  if kind == 'log' and data and (want == 'both' or want == stream) then
    parts[#parts + 1] = data
    bytes = bytes + #data
  end
  return bytes >= maxBytes
end, function() return bytes < maxBytes / 4 end)
return { last, table.concat(parts) }
