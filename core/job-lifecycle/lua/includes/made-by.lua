--[[
  Which create made a record: its createdAt is the create's `now` and its requestDigest
  the create's digest ('' for none). A create run twice (a reconnect) finds its own record
  so (create.lua), and a take-back takes only the record its create made (withdraw.lua).
]]
local function madeBy(createdAt, requestDigest, at, digest)
  return createdAt == at and (requestDigest or '') == digest
end
