"""Attribution in Redis: impressions and outcomes of one impressions partition, exactly once.

One Lua step per batch of an ``impressions`` partition, fenced by the partition's stored
offset like every partition's step (``scripts.OFFSET_FENCE``), touching only keys tagged
with that partition (one slot). Impressions and outcomes are both keyed by ``user_id`` on
the topic, so one user's records meet here whichever arrives first:

- an impression stores its record (``model.impressions``) under its response hash in the
  partition's table of the day it was shown, counts an impression for its experiment,
  variant and day, and attributes any pending outcome that names it;
- an outcome (de-duplicated by (user, interaction_id)) is attributed at once if its
  impression is in a table still kept, else waits in the table of pending outcomes of the
  day it happened.

**Tables, not keys per user.** A table is one partition's records of one day: a few
Redis hashes (buckets) of about ``TABLE_LOAD`` fields each, grown one bucket at a time
by linear hashing (``model.impressions.table_bucket``), so every bucket stays a listpack
under Redis's default ``hash-max-listpack-entries`` (128) and its key's own cost is
shared by some 50 records. Every key of a day's table expires at the end of the day plus
the window plus an hour for a consumer that lags (``expire_at``): no step trims anything,
and an interaction dated within the window after its impression finds it whichever day
it falls on.

An outcome counts when its event was shown in that response and it happened within the
window after it: per day ``<variant>:<outcome>`` and ``<variant>:<outcome>:<position>``,
and per user of an experiment (the unit of the report).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from eventrec.model.impressions import (
    CHUNK_EVENTS,
    FIRST_CHUNK_EVENTS,
    ImpressionRecord,
    chunk_fields,
    response_hash,
    stored_record,
    table_bucket,
)
from eventrec.store.client import node_settings
from eventrec.store.keys import Keys
from eventrec.store.scripts import check_fence, fence_argument, fenced

DAY = 86_400
# Fields a table's buckets average before one more is split off. Buckets not yet split in
# a round hold up to twice this, 96, well under Redis's default listpack limit of 128.
TABLE_LOAD = 48
# Redis's defaults, under which every bucket stays a listpack: unsplit buckets average at
# most twice TABLE_LOAD fields, and values are at most 63 bytes.
LISTPACK_LIMITS = {"hash-max-listpack-entries": 128, "hash-max-listpack-value": 64}
# How long a day's tables outlive the last instant one of its impressions can be
# attributed: a consumer lagging by less still counts an outcome at the window's end.
LAG_GRACE = 3600


def expire_at(day: int, window_seconds: int) -> int:
    """When the tables of ``day`` (days since the epoch) expire: the end of that day, plus
    the window, plus ``LAG_GRACE`` (epoch seconds)."""
    return (day + 1) * DAY + window_seconds + LAG_GRACE


# KEYS: offset, stats, outcome dedup (current bucket), outcome dedup (previous bucket).
# ARGV: expected offset, next offset, key base of the partition, window (s), now (epoch s),
#       dedup ttl (s), dead-lettered count, then triples of kind ("i" impression |
#       "o" outcome), user_id, payload: an impression record (model.impressions), or an
#       outcome's 8-byte (user, interaction_id) hash followed by its pending entry.
# Returns {1, impressions, attributed, pending, duplicates, unmatched, expired};
# {0, stored} when fenced.
APPLY_IMPRESSIONS = fenced("""
local base = ARGV[3]
local window = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local dedup_ttl = tonumber(ARGV[6])
local dead = tonumber(ARGV[7])
local DAY = 86400
local LOAD = __TABLE_LOAD__
local FIRST, CHUNK = __FIRST_CHUNK_EVENTS__, __CHUNK_EVENTS__
local SKEW = 600
local GRACE = __LAG_GRACE__
local NAMES = {'view', 'save', 'booking'}
local today = math.floor(now / DAY)
local oldest = math.floor((now - window - GRACE) / DAY)  -- the oldest day whose tables live
local impressions, attributed, pending, duplicates, unmatched, expired = 0, 0, 0, 0, 0, 0

local function u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

local function day_of(t)
  return math.floor(t / DAY)
end

local function expire_at(day)
  return (day + 1) * DAY + window + GRACE
end

-- Linear-hashing tables (model.impressions.table_bucket): the key `name` holds the
-- number of buckets `n` and of fields `entries`; bucket b is the hash `name:b`.
local tables = {}

local function state(name)
  local t = tables[name]
  if not t then
    t = {n = tonumber(redis.call('HGET', name, 'n')) or 0}
    tables[name] = t
  end
  return t
end

local function low_of(n)
  local low = 1
  while low * 2 <= n do low = low * 2 end
  return low
end

local function bucket(t, field)
  local h = u32(field, 1)
  local low = low_of(t.n)
  local b = h % (2 * low)
  if b >= t.n then b = h % low end
  return b
end

local function get(name, field)
  local t = state(name)
  if t.n == 0 then return nil end
  local value = redis.call('HGET', name .. ':' .. bucket(t, field), field)
  if value then return value end
  return nil
end

local function split(name, t, at)
  local low = low_of(t.n)
  local new = t.n
  local old_key = name .. ':' .. (new - low)
  local all = redis.call('HGETALL', old_key)
  local moved, fields = {}, {}
  for i = 1, #all, 2 do
    if u32(all[i], 1) % (2 * low) == new then
      moved[#moved + 1] = all[i]
      moved[#moved + 1] = all[i + 1]
      fields[#fields + 1] = all[i]
    end
  end
  if #fields > 0 then
    local new_key = name .. ':' .. new
    redis.call('HSET', new_key, unpack(moved))
    redis.call('EXPIREAT', new_key, at)
    redis.call('HDEL', old_key, unpack(fields))
  end
  t.n = new + 1
  redis.call('HSET', name, 'n', t.n)
end

local function put(name, field, value, at)
  local t = state(name)
  if t.n == 0 then
    t.n = 1
    redis.call('HSET', name, 'n', 1)
    redis.call('EXPIREAT', name, at)
  end
  local key = name .. ':' .. bucket(t, field)
  local added = redis.call('HSET', key, field, value)
  redis.call('EXPIREAT', key, at)
  if added == 1 and redis.call('HINCRBY', name, 'entries', 1) > LOAD * t.n then
    split(name, t, at)
  end
end

local function remove(name, field)
  local t = state(name)
  if redis.call('HDEL', name .. ':' .. bucket(t, field), field) == 1 then
    redis.call('HINCRBY', name, 'entries', -1)
  end
end

-- A record: {shown_at, code, variant, events (3 bytes each)}. Stored as a value of
-- seconds into its day (3 bytes), code (2), variant (1) and events, in chunks
-- (model.impressions.value_chunks); a chunk shorter than the most is the last.
local function from_payload(payload)
  return {shown_at = u32(payload, 7),
          code = string.byte(payload, 11) + string.byte(payload, 12) * 256,
          variant = string.byte(payload, 13), events = string.sub(payload, 15)}
end

local function store_record(name, hash, record, at)
  local t = record.shown_at % DAY
  local value = string.char(t % 256, math.floor(t / 256) % 256, math.floor(t / 65536),
    record.code % 256, math.floor(record.code / 256), record.variant) .. record.events
  put(name, hash, string.sub(value, 1, 6 + 3 * FIRST), at)
  local k, start = 1, 7 + 3 * FIRST
  while start <= #value do
    put(name, hash .. string.char(k), string.sub(value, start, start + 3 * CHUNK - 1), at)
    k, start = k + 1, start + 3 * CHUNK
  end
end

local function record_of(name, hash, day)
  local value = get(name, hash)
  if not value then return nil end
  if #value == 6 + 3 * FIRST then
    local parts, k = {value}, 1
    while true do
      local chunk = get(name, hash .. string.char(k))
      if not chunk then break end
      parts[#parts + 1] = chunk
      if #chunk < 3 * CHUNK then break end
      k = k + 1
    end
    value = table.concat(parts)
  end
  local a, b, c = string.byte(value, 1, 3)
  return {shown_at = day * DAY + a + b * 256 + c * 65536,
          code = string.byte(value, 4) + string.byte(value, 5) * 256,
          variant = string.byte(value, 6), events = string.sub(value, 7)}
end

local function count(record, counter, user, day, position)
  local code, variant = record.code, record.variant
  local day_key = base .. 'exp:' .. code .. ':day:' .. day
  redis.call('HINCRBY', day_key, variant .. ':' .. counter, 1)
  if position then
    redis.call('HINCRBY', day_key, variant .. ':' .. counter .. ':' .. position, 1)
  end
  if code ~= 0 then
    redis.call('HINCRBY', base .. 'exp:' .. code .. ':v' .. variant .. ':' .. counter, user, 1)
  end
end

-- entry: event hash (3), time (4), outcome code (1).
local function attribute(record, entry, user)
  local at = u32(entry, 4)
  if at > record.shown_at + window or at + SKEW < record.shown_at then
    return false
  end
  local event = string.sub(entry, 1, 3)
  local events = record.events
  for k = 0, #events / 3 - 1 do
    if string.sub(events, 1 + 3 * k, 3 + 3 * k) == event then
      count(record, NAMES[string.byte(entry, 8)], user, day_of(at), k + 1)
      return true
    end
  end
  return false
end

local function settle(ok)
  if ok then attributed = attributed + 1 else unmatched = unmatched + 1 end
end

for j = 8, #ARGV, 3 do
  local kind, user, payload = ARGV[j], ARGV[j + 1], ARGV[j + 2]
  if kind == 'i' then
    local hash = string.sub(payload, 1, 6)
    local record = from_payload(payload)
    local shown_at = record.shown_at
    local day = day_of(shown_at)
    local name = base .. 'shown:' .. day
    if expire_at(day) <= now then
      expired = expired + 1
    elseif get(name, hash) then
      duplicates = duplicates + 1
    else
      store_record(name, hash, record, expire_at(day))
      impressions = impressions + 1
      count(record, 'impressions', user, day, nil)
      -- Outcomes that came first wait in the tables of the days they happened on.
      local last = math.min(day_of(shown_at + window), today + 1)
      for d = math.max(day_of(shown_at - SKEW), oldest), last do
        local pending_name = base .. 'pending:' .. d
        local waiting = get(pending_name, hash)
        if waiting then
          for p = 1, #waiting, 8 do
            settle(attribute(record, string.sub(waiting, p, p + 7), user))
            pending = pending - 1
          end
          remove(pending_name, hash)
        end
      end
    end
  else
    local id = string.sub(payload, 1, 8)
    if redis.call('SISMEMBER', KEYS[4], id) == 1 or redis.call('SADD', KEYS[3], id) == 0 then
      duplicates = duplicates + 1
    else
      local hash = string.sub(payload, 9, 14)
      local entry = string.sub(payload, 15, 22)
      local at = u32(entry, 4)
      local record
      -- Every day still kept: one found outside the window counts as unmatched.
      for d = math.min(day_of(at + SKEW), today + 1), oldest, -1 do
        record = record_of(base .. 'shown:' .. d, hash, d)
        if record then break end
      end
      if record then
        settle(attribute(record, entry, user))
      elseif expire_at(day_of(at)) <= now then
        expired = expired + 1
      else
        local pending_name = base .. 'pending:' .. day_of(at)
        put(pending_name, hash, (get(pending_name, hash) or '') .. entry, expire_at(day_of(at)))
        pending = pending + 1
      end
    end
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('EXPIRE', KEYS[3], dedup_ttl)
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'impressions', impressions)
redis.call('HINCRBY', KEYS[2], 'attributed', attributed)
redis.call('HINCRBY', KEYS[2], 'pending', pending)
redis.call('HINCRBY', KEYS[2], 'deduplicated', duplicates)
redis.call('HINCRBY', KEYS[2], 'unmatched', unmatched)
redis.call('HINCRBY', KEYS[2], 'expired', expired)
redis.call('HINCRBY', KEYS[2], 'dead_lettered', dead)
redis.call('HINCRBY', KEYS[2], 'batches', 1)
return {1, impressions, attributed, pending, duplicates, unmatched, expired}
""")
for _name, _value in {
    "__TABLE_LOAD__": TABLE_LOAD,
    "__FIRST_CHUNK_EVENTS__": FIRST_CHUNK_EVENTS,
    "__CHUNK_EVENTS__": CHUNK_EVENTS,
    "__LAG_GRACE__": LAG_GRACE,
}.items():
    APPLY_IMPRESSIONS = APPLY_IMPRESSIONS.replace(_name, str(_value))


@dataclass
class AttributionBatch:
    """One impressions partition's batch: ``(kind, user_id, payload)`` in offset order."""

    topic: str
    partition: int
    expected_offset: int
    next_offset: int
    items: list[tuple[str, str, bytes]]
    dead_lettered: int = 0
    # True when ``expected_offset`` was read from Redis: a missing stored offset then means
    # lost writes and the step is fenced (``scripts.fence_argument``).
    resumes: bool = False


@dataclass(frozen=True)
class AttributionResult:
    impressions: int
    attributed: int
    pending: int
    duplicates: int
    unmatched: int
    expired: int = 0

    @property
    def applied(self) -> int:
        return self.impressions + self.attributed + self.pending + self.unmatched + self.expired


class AttributionStore:
    """The attribution step and the reads of its counts."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        window_seconds: float = 7 * DAY,
        dedup_seconds: float = DAY,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix)
        self.window_seconds = int(window_seconds)
        self.dedup_seconds = max(1, int(dedup_seconds))
        self._apply = client.register_script(APPLY_IMPRESSIONS)

    def apply(self, batch: AttributionBatch, now: float) -> AttributionResult:
        """Apply a batch exactly once; :class:`FencedBatchError` if another consumer did."""
        keys, topic, partition = self.keys, batch.topic, batch.partition
        bucket = int(now) // self.dedup_seconds
        dedup = keys.attribution_base(topic, partition) + "outcome-dedup:"
        args: list[Any] = [
            fence_argument(batch.expected_offset, batch.resumes),
            batch.next_offset,
            keys.attribution_base(topic, partition),
            self.window_seconds,
            int(now),
            # A set is read in its bucket and the next: it lives two buckets after a write.
            2 * self.dedup_seconds + 60,
            batch.dead_lettered,
        ]
        for item in batch.items:
            args.extend(item)
        self.client.sadd(keys.attribution_partitions(topic), partition)
        result = self._apply(
            keys=[
                keys.offset(topic, partition),
                keys.stats(topic, partition),
                f"{dedup}{bucket}",
                f"{dedup}{bucket - 1}",
            ],
            args=args,
        )
        check_fence(result, topic, partition, batch.expected_offset)
        return AttributionResult(*(int(v) for v in result[1:7]))

    def listpack_warnings(self) -> list[str]:
        """What keeps the tables from staying listpacks on this server (empty: nothing).

        Below these limits a table's hashes are converted to Redis's hashtable encoding,
        which works the same and takes about twice the memory per impression.
        """
        warnings = []
        for name, needed in LISTPACK_LIMITS.items():
            for node, value in node_settings(self.client, name).items():
                if value.isdigit() and int(value) < needed:
                    where = f" on node {node}" if node else ""
                    warnings.append(
                        f"Redis {name} is {value}{where}; attribution's tables stay compact "
                        f"with at least {needed} (Redis's default): CONFIG SET {name} {needed}"
                    )
        return warnings

    def stats(self, topic: str) -> dict[str, int]:
        """The steps' counters summed over partitions: impressions, attributed, pending,
        deduplicated, unmatched, expired, dead_lettered, batches."""
        total: dict[str, int] = {}
        for partition in self.partitions(topic):
            for name, value in self.client.hgetall(self.keys.stats(topic, partition)).items():
                total[name.decode()] = total.get(name.decode(), 0) + int(value)
        return total

    def partitions(self, topic: str) -> list[int]:
        return sorted(int(p) for p in self.client.smembers(self.keys.attribution_partitions(topic)))

    def user_counts(
        self, topic: str, code: int, variants: int, counters: Sequence[str]
    ) -> list[dict[str, dict[str, int]]]:
        """Per variant, per counter: user_id -> count, summed over partitions."""
        out: list[dict[str, dict[str, int]]] = [
            {counter: {} for counter in counters} for _ in range(variants)
        ]
        partitions = self.partitions(topic)
        for partition in partitions:
            pipe = self.client.pipeline(transaction=False)
            for variant in range(variants):
                for counter in counters:
                    pipe.hgetall(
                        self.keys.attribution_users(topic, partition, code, variant, counter)
                    )
            replies = iter(pipe.execute())
            for variant in range(variants):
                for counter in counters:
                    target = out[variant][counter]
                    for user, value in next(replies).items():
                        name = user.decode()
                        target[name] = target.get(name, 0) + int(value)
        return out

    def day_counts(self, topic: str, code: int) -> dict[int, dict[str, int]]:
        """Day (since the epoch) -> ``<variant>:<counter>[:<position>]`` -> count."""
        days: dict[int, dict[str, int]] = {}
        for partition in self.partitions(topic):
            pattern = self.keys.attribution_days(topic, partition, code)
            for key in self.client.scan_iter(match=pattern, count=1000):
                day = int(key.decode().rsplit(":", 1)[1])
                target = days.setdefault(day, {})
                for field, value in self.client.hgetall(key).items():
                    name = field.decode()
                    target[name] = target.get(name, 0) + int(value)
        return dict(sorted(days.items()))

    def impression(
        self, topic: str, partition: int, user_id: str, request_id: str, day: int
    ) -> ImpressionRecord | None:
        """One stored impression record, looked up as the step does (None if not kept)."""
        table = self.keys.attribution_table(topic, partition, "shown", day)
        buckets = self.client.hget(table, "n")
        if buckets is None:
            return None
        field = response_hash(user_id, request_id)
        bucket = self.keys.attribution_bucket(table, table_bucket(field, int(buckets)))
        values = self.client.hmget(bucket, [field, *chunk_fields(field)])
        if values[0] is None:
            return None
        return stored_record(field, day, [None if v is None else bytes(v) for v in values])

    def table_keys(self, topic: str) -> Iterator[bytes]:
        """Every key of the partitions' impression and pending tables (buckets and counts)."""
        for partition in self.partitions(topic):
            for kind in ("shown", "pending"):
                yield from self.client.scan_iter(
                    match=self.keys.attribution_tables(topic, partition, kind), count=1000
                )

    def table_bytes(self, topic: str) -> int:
        """Redis's memory for the tables (``MEMORY USAGE`` of every key, summed)."""
        return sum(
            int(self.client.memory_usage(key, samples=0) or 0) for key in self.table_keys(topic)
        )
