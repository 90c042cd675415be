"""Lua scripts: each is one atomic Redis step over keys of one hash slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventrec.errors import FencedBatchError

# How every partition's step begins: KEYS[1] is the partition's stored offset, ARGV[1] the
# batch's expected offset. A step applies only when the stored offset equals it. A missing
# offset is accepted only when ARGV[1] starts with "~" (the batch may start the partition:
# nothing was stored when its consumer last looked). Otherwise a missing offset means Redis
# lost the partition's writes (a failover to a replica that had none of them) and the step
# is fenced (returns {0, -1}), so the consumer replays from the beginning. A refused step
# returns {0, stored} and writes nothing; see :func:`check_fence`.
OFFSET_FENCE = """
local stored = redis.call('GET', KEYS[1])
local expected = ARGV[1]
local may_start = string.sub(expected, 1, 1) == '~'
if may_start then expected = string.sub(expected, 2) end
if stored ~= expected and (stored or not may_start) then
  return {0, stored or -1}
end
"""


def fenced(body: str) -> str:
    """A partition's step: :data:`OFFSET_FENCE`, then ``body``."""
    return OFFSET_FENCE + body


def fence_argument(expected_offset: int, resumes: bool) -> str:
    """A step's ARGV[1]: with ``resumes`` (the offset was read from Redis) a missing
    stored offset is refused; otherwise ("~") the batch may start the partition."""
    return str(expected_offset) if resumes else f"~{expected_offset}"


def check_fence(result: Sequence[Any], topic: str, partition: int, expected: int) -> None:
    """Raise :class:`FencedBatchError` if a fenced step's reply says it was refused."""
    if int(result[0]) == 0:
        found = int(result[1])
        what = "no stored offset (Redis lost it)" if found < 0 else f"stored offset {found}"
        raise FencedBatchError(
            f"{topic}[{partition}]: {what} is not the batch's expected offset {expected}"
        )


# Get-or-claim owners. KEYS: owner hash, partitions set. ARGV: partition, user id...
# Returns {claimed (1 when this call claimed a user), then one owner partition per user
# id}: the first claim wins.
CLAIM_OWNERS = """
local partition = ARGV[1]
local out = {0}
local claimed = false
for i = 2, #ARGV do
  local owner = redis.call('HGET', KEYS[1], ARGV[i])
  if not owner then
    redis.call('HSET', KEYS[1], ARGV[i], partition)
    owner = partition
    claimed = true
  end
  out[#out + 1] = tonumber(owner)
end
if claimed then
  redis.call('SADD', KEYS[2], partition)
  out[1] = 1
end
return out
"""

# One batch of one interactions partition, exactly once.
# KEYS: offset, stats, row-users list, dedup bucket (current), dedup bucket (previous),
#       event index hash, event ids list,
#       then n_rows row keys, then n_search search keys.
# ARGV: expected offset (see OFFSET_FENCE), next offset, dedup ttl, n_rows, n_search keys,
#       search cap,
#       compaction threshold (bytes), dead-lettered count,
#       record payloads (12 bytes each), record slots (2 bytes each, big endian,
#       1-based row slot), record id hashes (8 bytes each, all "\0" = no de-dup),
#       routed count, n_events, then n_events event ids (every event the batch's valid
#       messages name, in offset order: each gets its partition-local index here),
#       row user ids (n_rows values), then per search: slot, id hash, query.
# With n_events > 0 a record's first 4 bytes hold a 1-based position in the event ids,
# replaced by the event's local index; with n_events = 0 records are written unchanged.
# Returns {status, applied, duplicates, compaction slots...}; status 0 = fenced.
APPLY_INTERACTIONS = fenced("""
local ttl = tonumber(ARGV[3])
local n_rows = tonumber(ARGV[4])
local search_cap = tonumber(ARGV[6])
local threshold = tonumber(ARGV[7])
local dead = tonumber(ARGV[8])
local payloads, slots, hashes = ARGV[9], ARGV[10], ARGV[11]
local routed = tonumber(ARGV[12])
local n_events = tonumber(ARGV[13])
local n_records = #slots / 2
local no_hash = string.rep('\\0', 8)
local first_row_key = 8
local pieces = {}
local applied, duplicates = 0, 0

local local_index = {}
for e = 1, n_events do
  local id = ARGV[13 + e]
  local index = redis.call('HGET', KEYS[6], id)
  if not index then
    index = redis.call('RPUSH', KEYS[7], id) - 1
    redis.call('HSET', KEYS[6], id, index)
  end
  index = tonumber(index)
  local_index[e] = string.char(index % 256, math.floor(index / 256) % 256,
    math.floor(index / 65536) % 256, math.floor(index / 16777216) % 256)
end

local function fresh(hash)
  if hash == no_hash then return true end
  if redis.call('SISMEMBER', KEYS[5], hash) == 1 then return false end
  return redis.call('SADD', KEYS[4], hash) == 1
end

for i = 0, n_records - 1 do
  local hash = string.sub(hashes, i * 8 + 1, i * 8 + 8)
  if fresh(hash) then
    local slot = string.byte(slots, i * 2 + 1) * 256 + string.byte(slots, i * 2 + 2)
    local list = pieces[slot]
    if not list then list = {}; pieces[slot] = list end
    local record = string.sub(payloads, i * 12 + 1, i * 12 + 12)
    if n_events > 0 then
      local b1, b2, b3, b4 = string.byte(record, 1, 4)
      record = local_index[b1 + b2 * 256 + b3 * 65536 + b4 * 16777216] .. string.sub(record, 5)
    end
    list[#list + 1] = record
    applied = applied + 1
  else
    duplicates = duplicates + 1
  end
end

local users_base = 13 + n_events
local compact = {}
for slot, list in pairs(pieces) do
  local chunk = table.concat(list)
  local key = KEYS[first_row_key - 1 + slot]
  local length = redis.call('APPEND', key, chunk)
  local before = length - #chunk
  if before == 0 then
    redis.call('RPUSH', KEYS[3], ARGV[users_base + slot])
  end
  if length >= threshold then
    local step = threshold
    while step * 2 <= length do step = step * 2 end
    if before < step then compact[#compact + 1] = slot end
  end
end

local base = users_base + n_rows
for j = 0, (#ARGV - base) / 3 - 1 do
  local slot = tonumber(ARGV[base + j * 3 + 1])
  local hash = ARGV[base + j * 3 + 2]
  if fresh(hash) then
    local key = KEYS[first_row_key - 1 + n_rows + slot]
    -- A cap of 0 keeps no query (LTRIM to -1 would keep them all).
    if search_cap > 0 then
      redis.call('LPUSH', key, ARGV[base + j * 3 + 3])
      redis.call('LTRIM', key, 0, search_cap - 1)
    end
    applied = applied + 1
  else
    duplicates = duplicates + 1
  end
end

if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('EXPIRE', KEYS[4], ttl)
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'processed', applied)
redis.call('HINCRBY', KEYS[2], 'deduplicated', duplicates)
redis.call('HINCRBY', KEYS[2], 'dead_lettered', dead)
redis.call('HINCRBY', KEYS[2], 'routed', routed)
redis.call('HINCRBY', KEYS[2], 'batches', 1)
local out = {1, applied, duplicates}
for _, slot in ipairs(compact) do out[#out + 1] = slot end
return out
""")

# One batch of one catalog or profile partition, exactly once.
# KEYS: offset, stats, entity hash, version counter.
# ARGV: expected offset (see OFFSET_FENCE), next offset, channel, dead-lettered count, then pairs of
#       (entity id, JSON) where an empty JSON deletes the entity.
APPLY_ENTITIES = fenced("""
local upserts, deletes = 0, 0
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    deletes = deletes + redis.call('HDEL', KEYS[3], ARGV[i])
  else
    redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
    upserts = upserts + 1
  end
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'processed', upserts + deletes)
redis.call('HINCRBY', KEYS[2], 'dead_lettered', tonumber(ARGV[4]))
redis.call('HINCRBY', KEYS[2], 'batches', 1)
local version = redis.call('INCR', KEYS[4])
if upserts + deletes > 0 then
  redis.call('PUBLISH', ARGV[3], version)
end
return {1, upserts, deletes}
""")

# Replace a row only if nobody appended since it was read. KEYS: row. ARGV: old, new.
REPLACE_ROW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Move a partition's stored offset only if it still holds what the caller saw.
# KEYS: offset. ARGV: old ("" = none stored), new.
RESET_OFFSET = """
local stored = redis.call('GET', KEYS[1]) or ''
if stored == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# Serving's read of a batch's rows in one round trip, on ONE Redis server only: row, offset
# and event-list keys are built here from the owners found, so they are not declared and
# fall in other slots than the owner hashes (a cluster reads in two steps instead).
# KEYS: each user's owner hash, in order.
# ARGV: n partitions given, "1" to read searches too, then per partition: number, row key
#       prefix, offset key, event-ids key, searches key prefix; then the user ids (one per
#       KEYS entry).
# Returns per user: owner (nil: none), row (nil: none, or not read because the owner is
# not among the partitions given) and, when asked, the recent searches (nil: not read);
# then per given partition that owns one of the users:
# partition, stored offset (nil: none), event-ids length.
READ_OWNED_ROWS = """
local n_partitions = tonumber(ARGV[1])
local with_searches = ARGV[2] == '1'
local given = {}
for p = 0, n_partitions - 1 do
  local base = 3 + 5 * p
  given[tonumber(ARGV[base])] = {ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]}
end
local first_user = 3 + 5 * n_partitions
local out, met, order = {}, {}, {}
for i = 1, #KEYS do
  local user = ARGV[first_user + i - 1]
  local owner = redis.call('HGET', KEYS[i], user)
  local row = false
  local searches = false
  if owner then
    owner = tonumber(owner)
    local keys = given[owner]
    if keys then
      row = redis.call('GET', keys[1] .. user)
      if with_searches then
        searches = redis.call('LRANGE', keys[4] .. user, 0, -1)
      end
      if not met[owner] then
        met[owner] = true
        order[#order + 1] = owner
      end
    end
  end
  out[#out + 1] = owner
  out[#out + 1] = row
  if with_searches then
    out[#out + 1] = searches
  end
end
for _, owner in ipairs(order) do
  local keys = given[owner]
  out[#out + 1] = owner
  out[#out + 1] = redis.call('GET', keys[2])
  out[#out + 1] = redis.call('LLEN', keys[3])
end
return out
"""
