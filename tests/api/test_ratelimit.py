"""The Redis rate limiter: exact across processes and concurrent callers, fails open when Redis is gone or stalls."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from gridrider.api.ratelimit import Decision, Limit, RateLimiter
from gridrider.embedded import EmbeddedRedis

# A window boundary for every window length used here (divisible by 60 and 3600).
NOW = 1_800_000_000.0
FIVE_A_MINUTE = Limit("report_intake", limit=5, window_s=60)
LOGGER = "gridrider.api.ratelimit"


def url_of(server: EmbeddedRedis) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


@pytest_asyncio.fixture
async def store(own_redis: EmbeddedRedis) -> AsyncIterator[Redis]:
    client = Redis.from_url(url_of(own_redis))
    yield client
    await client.aclose()


@pytest.fixture
def limiter(store: Redis) -> RateLimiter:
    return RateLimiter(store)


async def hits(limiter: RateLimiter, limit: Limit, subject: str, n: int, now: float = NOW) -> list[Decision]:
    return [await limiter.hit(limit, subject, now=now) for _ in range(n)]


async def test_allows_exactly_limit_hits_then_refuses_with_retry_after(limiter):
    decisions = await hits(limiter, FIVE_A_MINUTE, "member:42", 5)
    assert decisions == [Decision(True, remaining, 0) for remaining in (4, 3, 2, 1, 0)]

    refused = await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW + 1)
    # The rest of this window (59 s), then until the spent window weighs at most 4 of 5 (12 s).
    assert refused == Decision(False, 0, 71)
    # Refused hits are not counted: hammering does not push the wait further out.
    await hits(limiter, FIVE_A_MINUTE, "member:42", 10, now=NOW + 30)
    assert await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW + 71) == Decision(False, 0, 1)
    assert await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW + 72) == Decision(True, 0, 0)


async def test_the_next_window_admits_hits_as_the_spent_one_slides_away(limiter):
    await hits(limiter, FIVE_A_MINUTE, "member:42", 5)
    # Half-way into the next window the spent one still weighs 2.5 of 5: two more hits fit.
    assert await limiter.peek(FIVE_A_MINUTE, "member:42", now=NOW + 90) == Decision(True, 2, 0)
    assert [d.allowed for d in await hits(limiter, FIVE_A_MINUTE, "member:42", 3, now=NOW + 90)] == [
        True, True, False]
    # Once a whole window passed without hits the full budget is back.
    later = NOW + 240
    assert [d.allowed for d in await hits(limiter, FIVE_A_MINUTE, "member:42", 6, now=later)] == [True] * 5 + [False]


async def test_a_window_later_the_full_budget_is_back(limiter):
    await hits(limiter, FIVE_A_MINUTE, "ip:1.2.3.4", 5)
    assert not (await limiter.hit(FIVE_A_MINUTE, "ip:1.2.3.4", now=NOW + 59)).allowed
    decisions = await hits(limiter, FIVE_A_MINUTE, "ip:1.2.3.4", 6, now=NOW + 120)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]


async def test_counts_are_per_subject_and_per_limit(limiter):
    sign_in = Limit("sign_in_failures", limit=5, window_s=60)
    await hits(limiter, FIVE_A_MINUTE, "member:42", 5)
    assert not (await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW)).allowed
    # Subjects that differ only after a ':' or in unicode are different subjects.
    for subject in ("member:4", "member:42:x", "ip:1.2.3.4", "member:四十二"):
        assert await limiter.hit(FIVE_A_MINUTE, subject, now=NOW) == Decision(True, 4, 0)
    assert await limiter.hit(sign_in, "member:42", now=NOW) == Decision(True, 4, 0)


async def test_two_processes_share_one_count(own_redis):
    first, second = Redis.from_url(url_of(own_redis)), Redis.from_url(url_of(own_redis))
    try:
        a, b = RateLimiter(first), RateLimiter(second)
        await hits(a, FIVE_A_MINUTE, "member:42", 3)
        assert [d.remaining for d in await hits(b, FIVE_A_MINUTE, "member:42", 2)] == [1, 0]
        assert not (await a.hit(FIVE_A_MINUTE, "member:42", now=NOW)).allowed
        assert not (await b.hit(FIVE_A_MINUTE, "member:42", now=NOW)).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_concurrent_hits_from_two_processes_grant_exactly_the_limit(own_redis):
    twenty = Limit("report_intake", limit=20, window_s=3600)
    first, second = Redis.from_url(url_of(own_redis)), Redis.from_url(url_of(own_redis))
    try:
        limiters = [RateLimiter(first), RateLimiter(second)]
        decisions = await asyncio.gather(*(limiters[i % 2].hit(twenty, "member:42", now=NOW + i / 100)
                                           for i in range(50)))
        assert sum(d.allowed for d in decisions) == 20
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(20))
        assert all(d.retry_after_s >= 1 for d in decisions if not d.allowed)
    finally:
        await first.aclose()
        await second.aclose()


async def test_peek_does_not_count(limiter):
    sign_in = Limit("sign_in_failures", limit=3, window_s=900)
    for _ in range(10):
        assert await limiter.peek(sign_in, "ip:1.2.3.4", now=NOW) == Decision(True, 3, 0)
    await hits(limiter, sign_in, "ip:1.2.3.4", 2)
    assert await limiter.peek(sign_in, "ip:1.2.3.4", now=NOW) == Decision(True, 1, 0)
    await limiter.hit(sign_in, "ip:1.2.3.4", now=NOW)
    peeked = await limiter.peek(sign_in, "ip:1.2.3.4", now=NOW + 10)
    assert peeked == await limiter.hit(sign_in, "ip:1.2.3.4", now=NOW + 10)
    assert not peeked.allowed and peeked.retry_after_s == 890 + 300  # window rest + a third of the next


async def test_reset_clears_the_count(limiter, store):
    await hits(limiter, FIVE_A_MINUTE, "member:42", 5)
    await hits(limiter, FIVE_A_MINUTE, "member:7", 5)
    await limiter.reset(FIVE_A_MINUTE, "member:42")
    assert await store.exists(limiter.key(FIVE_A_MINUTE, "member:42")) == 0
    assert await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW) == Decision(True, 4, 0)
    assert not (await limiter.hit(FIVE_A_MINUTE, "member:7", now=NOW)).allowed  # others untouched


async def test_keys_expire_hold_no_raw_subject_and_keep_two_windows(limiter, store):
    subject = "ip:2001:db8::1 骑手"
    await limiter.hit(FIVE_A_MINUTE, subject, now=NOW + 15)
    key = limiter.key(FIVE_A_MINUTE, subject)
    # Until the end of the next window (105 s from NOW + 15) plus a second of slack.
    assert 100_000 < await store.pttl(key) <= 106_000
    assert 100 <= await store.ttl(key) <= 106
    keys = [k.decode() for k in await store.keys("*")]
    assert keys == [key] and len(key) < 80
    assert "2001" not in key and "骑手" not in key

    # Windows older than the previous one are dropped when a new window begins.
    await limiter.hit(FIVE_A_MINUTE, subject, now=NOW + 60)
    await limiter.hit(FIVE_A_MINUTE, subject, now=NOW + 120)
    index = int(NOW) // 60
    assert sorted(int(f) for f in await store.hkeys(key)) == [index + 1, index + 2]


async def test_redis_down_fails_open_and_limits_again_once_back(own_redis, caplog):
    client = Redis.from_url(url_of(own_redis))
    limiter = RateLimiter(client, timeout_s=0.25)
    try:
        await hits(limiter, FIVE_A_MINUTE, "member:42", 5)
        assert not (await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW)).allowed

        await asyncio.to_thread(own_redis.stop)
        with caplog.at_level(logging.INFO, logger=LOGGER):
            started = time.perf_counter()
            down = await hits(limiter, FIVE_A_MINUTE, "member:42", 10)
            down.append(await limiter.peek(FIVE_A_MINUTE, "member:42", now=NOW))
            await limiter.reset(FIVE_A_MINUTE, "member:42")  # does not raise either
            elapsed = time.perf_counter() - started
            assert down == [Decision(True, 5, 0)] * 11
            assert elapsed < 12 * 0.25
            print(f"\nfail-open latency, Redis stopped: {elapsed / 12 * 1000:.1f} ms per call")

            await asyncio.to_thread(own_redis.start)  # same port, empty
            back = await hits(limiter, FIVE_A_MINUTE, "member:42", 6)
            assert [d.allowed for d in back] == [True] * 5 + [False]
        events = [r.getMessage() for r in caplog.records if r.name == LOGGER]
        assert events == ["ratelimit.redis_unavailable", "ratelimit.redis_recovered"]  # once per burst
    finally:
        await client.aclose()


async def test_a_redis_that_never_answers_fails_open_within_the_timeout(caplog):
    connections: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0")
    limiter = RateLimiter(client, timeout_s=0.25)
    try:
        latencies = []
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            for _ in range(3):
                started = time.perf_counter()
                decision = await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW)
                latencies.append(time.perf_counter() - started)
                assert decision == Decision(True, 5, 0)
        assert connections  # it really reached the stalled server
        assert all(0.24 <= s < 0.75 for s in latencies), latencies
        assert [r.getMessage() for r in caplog.records if r.name == LOGGER] == ["ratelimit.redis_unavailable"]
        print("\nfail-open latency, Redis stalled: " + ", ".join(f"{s * 1000:.0f} ms" for s in latencies))
    finally:
        await client.aclose()
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_without_redis_everything_is_allowed():
    limiter = RateLimiter(None)
    assert await limiter.hit(FIVE_A_MINUTE, "member:42", now=NOW) == Decision(True, 5, 0)
    assert await limiter.peek(FIVE_A_MINUTE, "member:42", now=NOW) == Decision(True, 5, 0)
    await limiter.reset(FIVE_A_MINUTE, "member:42")


def test_a_limit_needs_a_positive_budget_and_window():
    with pytest.raises(ValueError, match="report_intake"):
        Limit("report_intake", limit=0, window_s=60)
    with pytest.raises(ValueError, match="report_intake"):
        Limit("report_intake", limit=5, window_s=0)
