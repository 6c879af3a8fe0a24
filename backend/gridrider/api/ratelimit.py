"""Rate limits that hold across every API process, and fail open when Redis is down or slow.

Litestar's built-in limiter counts per process; behind a load balancer each process would grant
the full budget again. Here the count lives in Redis and one Lua script checks and increments it,
so N processes together grant exactly `limit` hits.

Subjects are members (`member:42`) wherever someone is signed in: riders ride with phones on
carrier-grade NAT, where hundreds of them share one public address, so a per-address limit would
punish a whole district for one flood. An address (`ip:1.2.3.4`) is the subject only where nobody
is signed in (sign-in itself).

Fail open: a Redis outage or stall answers "allowed" after at most `timeout_s`. A rate limit is a
guard against abuse; hazard intake is the product, and a missing manhole cover must still be
reported while Redis is away (DESIGN.md §8, §9).

The algorithm is a sliding-window counter: counts of the current and the previous fixed window,
the previous one weighted by how much of it still overlaps the sliding window. Both counts sit in
one hash per (limit, subject), fields named by window index, so `reset` needs no clock and the key
expires on its own once both windows are over. `now` comes from the app's injectable clock, never
from Redis TIME, so tests move time instead of sleeping.
"""

from __future__ import annotations

import asyncio
import hashlib
import math

import msgspec
from redis.asyncio import Redis

from gridrider.logging import get_logger
from gridrider.redis_errors import REDIS_TROUBLE

log = get_logger(__name__)

# Spare lifetime on keys beyond the two windows they are read in, for clocks that differ a little
# between processes.
_EXPIRY_SLACK_MS = 1000

# KEYS[1]: the (limit, subject) hash; fields are window indexes, values hit counts.
# ARGV: limit, window_ms, current index, previous index, ms elapsed in the current window,
#       1 to count this hit (0 to peek), key lifetime in ms.
# Integer arithmetic throughout (Lua numbers are doubles; these stay far below 2^53).
# Returns {allowed 0|1, current count, previous count}.
_SLIDING_WINDOW_LUA = """
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local idx, prev_idx = ARGV[3], ARGV[4]
local elapsed = tonumber(ARGV[5])
local curr = tonumber(redis.call('HGET', KEYS[1], idx) or '0')
local prev = tonumber(redis.call('HGET', KEYS[1], prev_idx) or '0')
-- allowed when prev * (window - elapsed) / window + curr + 1 <= limit
local allowed = prev * (window - elapsed) + (curr + 1) * window <= limit * window
if allowed and ARGV[6] == '1' then
  curr = redis.call('HINCRBY', KEYS[1], idx, 1)
  if curr == 1 then
    -- a new window began: drop windows older than the previous one (never newer ones, which a
    -- process whose clock runs ahead may have written)
    for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
      if tonumber(field) < tonumber(prev_idx) then redis.call('HDEL', KEYS[1], field) end
    end
  end
  local ttl = tonumber(ARGV[7])
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
end
return {allowed and 1 or 0, curr, prev}
"""


class Limit(msgspec.Struct, frozen=True):
    name: str  # e.g. 'report_intake', 'sign_in_failures'
    limit: int  # allowed hits per window
    window_s: int  # sliding window length, seconds

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window_s < 1:
            raise ValueError(f"rate limit {self.name!r} needs limit >= 1 and window_s >= 1")


class Decision(msgspec.Struct, frozen=True):
    allowed: bool
    remaining: int
    retry_after_s: int  # 0 when allowed; seconds until a hit would be allowed again (>= 1 when refused)


class RateLimiter:
    """Counts hits per (limit, subject) in Redis; never raises, allows everything while Redis is unreachable."""

    def __init__(self, redis: Redis | None, *, prefix: str = "gridrider:rl",
                 timeout_s: float = 0.25) -> None:
        self._redis = redis
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._script = redis.register_script(_SLIDING_WINDOW_LUA) if redis is not None else None
        self._failing = False  # inside a burst of failures: logged once at its start

    def key(self, limit: Limit, subject: str) -> str:
        """The Redis key of one subject's counts; the subject is hashed, so no user input lands in a key."""
        digest = hashlib.sha256(subject.encode()).hexdigest()[:32]
        return f"{self._prefix}:{limit.name}:{digest}"

    async def hit(self, limit: Limit, subject: str, *, now: float) -> Decision:
        """Count one hit for `subject` unless it is refused. Never raises: Redis trouble → allowed."""
        return await self._run(limit, subject, now, count=True)

    async def peek(self, limit: Limit, subject: str, *, now: float) -> Decision:
        """Would a hit be allowed now? Counts nothing (sign-in refuses once the failure budget is spent)."""
        return await self._run(limit, subject, now, count=False)

    async def reset(self, limit: Limit, subject: str) -> None:
        """Forget every hit of `subject` under `limit` (e.g. failures after a good sign-in)."""
        if self._redis is None:
            return
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._redis.delete(self.key(limit, subject))
        except REDIS_TROUBLE as exc:
            self._failed(limit, exc)
        else:
            self._recovered()

    async def _run(self, limit: Limit, subject: str, now: float, *, count: bool) -> Decision:
        if self._script is None:
            return Decision(True, limit.limit, 0)
        window_ms = limit.window_s * 1000
        now_ms = math.floor(now * 1000)
        idx, elapsed = divmod(now_ms, window_ms)
        ttl_ms = 2 * window_ms - elapsed + _EXPIRY_SLACK_MS  # until the end of the next window
        args = [limit.limit, window_ms, idx, idx - 1, elapsed, 1 if count else 0, ttl_ms]
        try:
            async with asyncio.timeout(self._timeout_s):
                allowed, curr, prev = await self._script(keys=[self.key(limit, subject)], args=args)
        except REDIS_TROUBLE as exc:
            self._failed(limit, exc)
            return Decision(True, limit.limit, 0)
        self._recovered()
        return _decide(limit, bool(allowed), int(curr), int(prev), elapsed)

    def _failed(self, limit: Limit, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("ratelimit.redis_unavailable", limit=limit.name, error=type(exc).__name__,
                        detail=str(exc)[:200], timeout_s=self._timeout_s)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.info("ratelimit.redis_recovered")


def _decide(limit: Limit, allowed: bool, curr: int, prev: int, elapsed_ms: int) -> Decision:
    """Remaining hits and wait from the two window counts (`curr` already includes a counted hit)."""
    n, w = limit.limit, limit.window_s * 1000
    if allowed:
        # the largest k with prev * (w - elapsed) / w + curr + k <= n
        remaining = max(0, (n * w - prev * (w - elapsed_ms) - curr * w) // w)
        return Decision(True, remaining, 0)
    if curr + 1 <= n:
        # Refused for the previous window's weight, which fades as this window goes on: allowed
        # once prev * (w - e) + (curr + 1) * w <= n * w.
        return _refused(w - elapsed_ms - (n - curr - 1) * w / prev)
    # This window is spent: wait for the next one, then for the weight of this one to fade until
    # prev' * (w - e) + w <= n * w, with prev' = curr.
    return _refused((w - elapsed_ms) + w - (n - 1) * w / curr)


def _refused(wait_ms: float) -> Decision:
    return Decision(False, 0, max(1, math.ceil(wait_ms / 1000)))
