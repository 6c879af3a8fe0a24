"""The live stream's channels: one member's frames reach that member's open apps, on that database only."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from gridrider import stream


async def _first_live_frame(redis: Redis, member_id: int, publish) -> str | None:
    frames = stream.live_frames(redis, member_id, heartbeat_s=0.2)
    try:
        assert (await anext(frames)).startswith("retry:")
        # The subscription is in place once the first frame was produced; publish, then read a few frames.
        await asyncio.sleep(0.1)
        await publish()
        for _ in range(5):
            frame = await anext(frames)
            if not frame.startswith(":"):
                return frame
        return None
    finally:
        with contextlib.suppress(StopAsyncIteration, RuntimeError):
            await frames.aclose()


async def test_a_frame_reaches_its_member_on_its_database_only(own_redis):
    server = f"redis://127.0.0.1:{own_redis.port}"
    ours, theirs = Redis.from_url(f"{server}/0"), Redis.from_url(f"{server}/1")
    try:
        frame = stream.frame(7, "incident_reached_grid", {"title": "垃圾堆积 · 新华社区"})

        async def same_database():
            assert await stream.publish(ours, [7], frame) == [7]

        async def other_database():  # another deployment (or test worker) on the same Redis server
            await stream.publish(theirs, [7], frame)

        async def other_member():
            await stream.publish(ours, [8], frame)

        assert await _first_live_frame(ours, 7, same_database) == frame
        assert await _first_live_frame(ours, 7, other_database) is None
        assert await _first_live_frame(ours, 7, other_member) is None
    finally:
        await ours.aclose()
        await theirs.aclose()


async def test_publishing_without_redis_reaches_nobody_and_does_not_raise():
    assert await stream.publish(None, [1, 2], stream.frame(1, "x", {})) == []
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    try:
        assert await stream.publish(dead, [1], stream.frame(1, "x", {})) == []
    finally:
        await dead.aclose()
