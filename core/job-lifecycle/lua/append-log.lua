--[[
  append-log: output of a running job, as one log event. Only a running job's log
  grows (not one already ended, say as lost, whose worker still writes), and only to
  MAX_LOG_EVENTS events. The record counts the bytes, which its tenant's storage quota
  holds once it ends.

  KEYS[1..3]   job.lua
  ARGV[1..8]   job.lua (ARGV[8]: running)
  ARGV[9]      stream name (stdout or stderr)
  ARGV[10]     data

  Returns the event's seq, or 0 when nothing was written.
]]
--- @include "includes/job"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then return 0 end
if redis.call('HINCRBY', KEYS[1], 'logEvents', 1) > MAX_LOG_EVENTS then return 0 end
redis.call('HINCRBY', KEYS[1], 'outputBytes', #ARGV[10] + LOG_EVENT_OVERHEAD_BYTES)
return event('type', 'log', 'stream', ARGV[9], 'data', ARGV[10])
