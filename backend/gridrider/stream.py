"""The live stream: a member's notifications to their open app, through Redis pub/sub (DESIGN.md §5).

The `notify` job publishes each notification to `gridrider:<db>:stream:member:<id>` for every member of
its audience (and records a `stream` delivery); any API process serving that member's
`GET /api/v1/events` passes it on as a Server-Sent Event whose id is the notification id. An app that
reconnects sends `Last-Event-ID` and gets what it missed from the database, so a Redis outage or a
dropped connection loses nothing the app cannot fetch back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from gridrider.logging import get_logger
from gridrider.redis_errors import REDIS_TROUBLE

log = get_logger(__name__)

HEARTBEAT_S = 15.0
REPLAY_LIMIT = 200


def channel_of(redis: Redis, member_id: int) -> str:
    """Pub/sub channels are server-wide, not per database: the database number keeps two deployments
    (or two test workers) sharing one Redis server from hearing each other's members."""
    database = redis.connection_pool.connection_kwargs.get("db", 0)
    return f"gridrider:{database}:stream:member:{member_id}"


def frame(notification_id: int, event: str, data: dict[str, Any]) -> str:
    """One SSE message (data on one line: JSON never holds a raw newline)."""
    return f"id: {notification_id}\nevent: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def publish(redis: Redis | None, member_ids: list[int], message: str) -> list[int]:
    """Publish to each member's channel; the members it reached Redis for (none when Redis is down)."""
    if redis is None:
        return []
    reached = []
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for member_id in member_ids:
                pipe.publish(channel_of(redis, member_id), message)
            await pipe.execute()
        reached = list(member_ids)
    except REDIS_TROUBLE as exc:
        # The apps fetch what they missed with Last-Event-ID; alerts on other channels go on.
        log.warning("stream.publish_failed", members=len(member_ids), error=type(exc).__name__)
    return reached


async def live_frames(redis: Redis, member_id: int, *, replay: AsyncIterator[str] | None = None,
                      heartbeat_s: float = HEARTBEAT_S) -> AsyncIterator[str]:
    """Frames for one open app: what it missed (replay) first, then live ones, with a heartbeat comment.

    Subscribed BEFORE the replay is read, so nothing published in between is lost; a live frame whose
    id was already replayed is skipped.
    """
    pubsub = redis.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel_of(redis, member_id))
    last_id = 0
    try:
        yield "retry: 3000\n\n"  # reconnect after 3 s
        if replay is not None:
            async for text in replay:
                last_id = max(last_id, _id_of(text))
                yield text
        while True:
            message = await pubsub.get_message(timeout=heartbeat_s)
            if message is None:
                yield ": ping\n\n"  # keeps proxies and the phone's connection open
                continue
            text = message["data"].decode() if isinstance(message["data"], bytes) else str(message["data"])
            if _id_of(text) > last_id:
                last_id = _id_of(text)
                yield text
    finally:
        try:
            await pubsub.unsubscribe()
            await pubsub.aclose()
        except (*REDIS_TROUBLE, asyncio.CancelledError):
            pass


def _id_of(text: str) -> int:
    first = text.split("\n", 1)[0]
    return int(first[4:]) if first.startswith("id: ") and first[4:].isdigit() else 0
