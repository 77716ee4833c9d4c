#!lua flags=no-writes
--[[
  list-after: the first piece of a page of a tenant's job index after a cursor, newest
  first. A cursor is the score and id of the last entry the page before looked at. The
  entries that share its score (the jobs of one batch share a millisecond) sort by id,
  descending, and those down to the cursor's own were seen already: this finds how many
  they are in one step (the cursor's rank), where skipping them a read at a time took a
  round trip per page of them.

  KEYS[1]  the tenant's job index (job ids scored by their creation time)
  ARGV[1]  the cursor's score
  ARGV[2]  the cursor's job id
  ARGV[3]  at most this many entries

  Returns { skip, entries }: how many entries from the cursor's score down were seen
  already (where the next reads carry on, by offset below that score), and the entries
  after them as ZREVRANGEBYSCORE ... WITHSCORES gives them.
]]
local index, score, id = KEYS[1], ARGV[1], ARGV[2]
local skip
local rank = redis.call('ZREVRANK', index, id)
if rank and tonumber(redis.call('ZSCORE', index, id)) == tonumber(score) then
  skip = rank + 1 - redis.call('ZCOUNT', index, '(' .. score, '+inf')
else
  -- The cursor's own entry is gone (its record expired and a page dropped it): count
  -- those at its score that sort above it. Bounded by the jobs one tenant made in one
  -- millisecond. Lua compares strings by the locale's collation, the sorted set by bytes;
  -- they agree on job ids (job_ and lowercase hex: the cursor's pattern, and newJobId's).
  skip = 0
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, score, score)) do
    if member > id then skip = skip + 1 end
  end
end
return { skip, redis.call('ZREVRANGEBYSCORE', index, score, '-inf', 'WITHSCORES', 'LIMIT', skip, tonumber(ARGV[3])) }
