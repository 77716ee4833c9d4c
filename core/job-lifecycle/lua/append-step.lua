--[[
  append-step: a step of a running job starting (compile, a test case), between its
  log events; counted and bounded as they are.

  KEYS[1..3]   job.lua
  ARGV[1..8]   job.lua (ARGV[8]: running)
  ARGV[9]      step kind
  ARGV[10]     its index

  Returns the event's seq, or 0 when nothing was written.
]]
--- @include "includes/job"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then return 0 end
if redis.call('HINCRBY', KEYS[1], 'logEvents', 1) > MAX_LOG_EVENTS then return 0 end
redis.call('HINCRBY', KEYS[1], 'outputBytes', LOG_EVENT_OVERHEAD_BYTES)
return event('type', 'step', 'step', ARGV[9], 'index', ARGV[10])
