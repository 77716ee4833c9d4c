-- walkEvents: visits a job's event stream after `start`, in order, calling visit(entry)
-- until it returns true, the stream ends, or `limit` entries were visited. It reads a
-- few entries first (an event holds up to 64 K characters) and four times as many each
-- round while small() says what was gathered is still small, up to 256. Returns the id
-- of the last entry visited ('' when none).
local function walkEvents(key, start, limit, visit, small)
  local last, seen, count = '', 0, 4
  while seen < limit do
    local entries = redis.call('XRANGE', key, start, '+', 'COUNT', math.min(count, limit - seen))
    if #entries == 0 then break end
    for _, e in ipairs(entries) do
      seen = seen + 1
      last = e[1]
      if visit(e) then return last end
    end
    start = '(' .. last
    if #entries < count then break end
    if small() then count = math.min(count * 4, 256) end
  end
  return last
end
