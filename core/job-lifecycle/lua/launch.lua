--[[
  launch: a worker is about to start a job's program, which it may do only while the job
  is still running under that worker. Counted, so a second launch would show; refused
  once the job has ended (a worker frozen between its claim and its launch whose job was
  ended as lost meanwhile) or passed to another worker.

  KEYS[1..3]   job.lua
  ARGV[1..8]   job.lua (ARGV[8]: running)
  ARGV[9]      the worker launching it

  Returns the job's launches counted so far, this one included, or 0 when it may not be
  launched.
]]
--- @include "includes/job"

if not movesFrom(redis.call('HGET', KEYS[1], 'status')) then return 0 end
if redis.call('HGET', KEYS[1], 'worker') ~= ARGV[9] then return 0 end
return redis.call('HINCRBY', KEYS[1], 'launches', 1)
