"""Attribution in Redis: impressions and outcomes of one impressions partition, exactly once.

One Lua step per batch of an ``impressions`` partition, fenced by the partition's stored
offset like the interactions step, touching only keys tagged with that partition (one
slot). Impressions and outcomes are both keyed by ``user_id`` on the topic, so one user's
records meet here whichever arrives first:

- an impression appends its compact record to the user's ``shown`` string (records shown
  before the window are trimmed, the key expires a window after the last one), counts an
  impression for its experiment, variant and day, and attributes any pending outcome that
  names it;
- an outcome (de-duplicated by (user, interaction_id)) is attributed at once if its
  impression is there, else kept as a 14-byte pending entry for the window.

An outcome counts when its event was shown in that response and it happened within the
window after it: per day ``<variant>:<outcome>`` and ``<variant>:<outcome>:<position>``,
and per user of an experiment (the unit of the report).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eventrec.errors import FencedBatchError
from eventrec.model.impressions import PENDING_SIZE
from eventrec.store.keys import Keys

# KEYS: offset, stats, outcome dedup (current bucket), outcome dedup (previous bucket).
# ARGV: expected offset, next offset, key base of the partition, window (s), cutoff (epoch
#       s: older records are dropped), key ttl (s), dead-lettered count, then triples of
#       kind ("i" impression | "o" outcome), user_id, payload (see model.impressions; an
#       outcome's payload is its 8-byte (user, interaction_id) hash + a pending entry).
# Returns {1, impressions, attributed, pending, duplicates, unmatched}; {0, stored} fenced.
APPLY_IMPRESSIONS = """
local stored = redis.call('GET', KEYS[1])
if stored and stored ~= ARGV[1] then
  return {0, stored}
end
local base = ARGV[3]
local window = tonumber(ARGV[4])
local cutoff = tonumber(ARGV[5])
local ttl = tonumber(ARGV[6])
local dead = tonumber(ARGV[7])
local PENDING = __PENDING_SIZE__
local SKEW = 600
local NAMES = {'view', 'save', 'booking'}
local impressions, attributed, pending, duplicates, unmatched = 0, 0, 0, 0, 0

local function u32(s, i)
  local a, b, c, d = string.byte(s, i, i + 3)
  return a + b * 256 + c * 65536 + d * 16777216
end

local function length(s, i)
  return 14 + 3 * string.byte(s, i + 13)
end

local function count(record, counter, user, day, position)
  local code = string.byte(record, 11) + string.byte(record, 12) * 256
  local variant = string.byte(record, 13)
  local day_key = base .. 'exp:' .. code .. ':day:' .. day
  redis.call('HINCRBY', day_key, variant .. ':' .. counter, 1)
  if position then
    redis.call('HINCRBY', day_key, variant .. ':' .. counter .. ':' .. position, 1)
  end
  if code ~= 0 then
    redis.call('HINCRBY', base .. 'exp:' .. code .. ':v' .. variant .. ':' .. counter, user, 1)
  end
end

local function attribute(record, entry, user)
  local shown_at = u32(record, 7)
  local at = u32(entry, 10)
  if at > shown_at + window or at + SKEW < shown_at then
    return false
  end
  local event = string.sub(entry, 7, 9)
  for k = 0, string.byte(record, 14) - 1 do
    if string.sub(record, 15 + 3 * k, 17 + 3 * k) == event then
      count(record, NAMES[string.byte(entry, 14)], user, math.floor(at / 86400), k + 1)
      return true
    end
  end
  return false
end

local function find(shown, request)
  local i = 1
  while i <= #shown do
    local n = length(shown, i)
    if string.sub(shown, i, i + 5) == request then
      return string.sub(shown, i, i + n - 1)
    end
    i = i + n
  end
  return nil
end

local function trimmed(shown)
  local i = 1
  while i <= #shown and u32(shown, i + 6) < cutoff do
    i = i + length(shown, i)
  end
  return string.sub(shown, i)
end

for j = 8, #ARGV, 3 do
  local kind, user, payload = ARGV[j], ARGV[j + 1], ARGV[j + 2]
  local shown_key = base .. 'shown:' .. user
  local pending_key = base .. 'pending:' .. user
  if kind == 'i' then
    local shown = redis.call('GET', shown_key) or ''
    local request = string.sub(payload, 1, 6)
    if find(shown, request) then
      duplicates = duplicates + 1
    else
      -- SET, not APPEND: APPEND leaves the string room to grow, up to twice its size.
      redis.call('SET', shown_key, trimmed(shown) .. payload, 'EX', ttl)
      impressions = impressions + 1
      count(payload, 'impressions', user, math.floor(u32(payload, 7) / 86400), nil)
      local waiting = redis.call('GET', pending_key)
      if waiting then
        local keep = {}
        for p = 1, #waiting, PENDING do
          local entry = string.sub(waiting, p, p + PENDING - 1)
          if string.sub(entry, 1, 6) == request then
            if attribute(payload, entry, user) then
              attributed = attributed + 1
            else
              unmatched = unmatched + 1
            end
            pending = pending - 1
          elseif u32(entry, 10) >= cutoff then
            keep[#keep + 1] = entry
          end
        end
        if #keep > 0 then
          redis.call('SET', pending_key, table.concat(keep), 'EX', ttl)
        else
          redis.call('DEL', pending_key)
        end
      end
    end
  else
    local id = string.sub(payload, 1, 8)
    if redis.call('SISMEMBER', KEYS[4], id) == 1 or redis.call('SADD', KEYS[3], id) == 0 then
      duplicates = duplicates + 1
    else
      local entry = string.sub(payload, 9, 8 + PENDING)
      local shown = redis.call('GET', shown_key)
      local record = shown and find(shown, string.sub(entry, 1, 6))
      if record then
        if attribute(record, entry, user) then
          attributed = attributed + 1
        else
          unmatched = unmatched + 1
        end
      else
        redis.call('APPEND', pending_key, entry)
        redis.call('EXPIRE', pending_key, ttl)
        pending = pending + 1
      end
    end
  end
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('EXPIRE', KEYS[3], ttl)
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'impressions', impressions)
redis.call('HINCRBY', KEYS[2], 'attributed', attributed)
redis.call('HINCRBY', KEYS[2], 'pending', pending)
redis.call('HINCRBY', KEYS[2], 'deduplicated', duplicates)
redis.call('HINCRBY', KEYS[2], 'unmatched', unmatched)
redis.call('HINCRBY', KEYS[2], 'dead_lettered', dead)
redis.call('HINCRBY', KEYS[2], 'batches', 1)
return {1, impressions, attributed, pending, duplicates, unmatched}
""".replace("__PENDING_SIZE__", str(PENDING_SIZE))


@dataclass
class AttributionBatch:
    """One impressions partition's batch: ``(kind, user_id, payload)`` in offset order."""

    topic: str
    partition: int
    expected_offset: int
    next_offset: int
    items: list[tuple[str, str, bytes]]
    dead_lettered: int = 0


@dataclass(frozen=True)
class AttributionResult:
    impressions: int
    attributed: int
    pending: int
    duplicates: int
    unmatched: int

    @property
    def applied(self) -> int:
        return self.impressions + self.attributed + self.pending + self.unmatched


class AttributionStore:
    """The attribution step and the reads of its counts."""

    def __init__(
        self,
        client: Any,
        prefix: str,
        window_seconds: float = 7 * 86_400,
        dedup_seconds: float = 86_400,
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
        ttl = max(self.window_seconds, 2 * self.dedup_seconds) + 86_400
        args: list[Any] = [
            batch.expected_offset,
            batch.next_offset,
            keys.attribution_base(topic, partition),
            self.window_seconds,
            int(now) - self.window_seconds,
            ttl,
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
        if result[0] == 0:
            raise FencedBatchError(
                f"{topic}[{partition}]: stored offset {int(result[1])} is not the batch's "
                f"expected offset {batch.expected_offset}"
            )
        return AttributionResult(*(int(v) for v in result[1:6]))

    def stats(self, topic: str) -> dict[str, int]:
        """The steps' counters summed over partitions: impressions, attributed, pending,
        deduplicated, unmatched, dead_lettered, batches."""
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

    def shown(self, topic: str, partition: int, user_id: str) -> bytes:
        """A user's impression records as stored (``model.impressions``)."""
        return bytes(self.client.get(self.keys.attribution_shown(topic, partition, user_id)) or b"")

    def shown_bytes(self, topic: str, partition: int, user_ids: Sequence[str]) -> int:
        """Redis's memory for the users' impression records (``MEMORY USAGE``, summed)."""
        total = 0
        for user_id in user_ids:
            used = self.client.memory_usage(
                self.keys.attribution_shown(topic, partition, user_id), samples=0
            )
            total += int(used or 0)
        return total
