"""`GET /api/v1/events`: the caller's notifications as Server-Sent Events, for an open app.

Authenticated by the usual Bearer header — the PWA reads the stream with `fetch`, because the
browser's EventSource cannot send headers, and a token in a URL would end up in logs.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Annotated

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import HeaderParameter
from litestar.response import Stream

from gridrider import stream
from gridrider.api.auth import ANY_MEMBER, roles
from gridrider.db import notifications as db_notifications
from gridrider.db.members import MemberRow
from gridrider.domain import notifications
from gridrider.errors import DomainError
from gridrider.services import Services


class StreamUnavailable(DomainError):
    status, code = 503, "service_unavailable"


_EVENT_ID = re.compile(r"[0-9]{1,18}")


class EventController(Controller):
    path = "/api/v1/events"

    @get("/", operation_id="eventStream", opt=roles(*ANY_MEMBER), media_type="text/event-stream")
    async def events(self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                     last_event_id: Annotated[str | None, HeaderParameter(name="last-event-id", max_length=20)] = None,
                     ) -> Response:
        if services.stream_redis is None:
            raise StreamUnavailable("no Redis: the live stream is off; the app polls instead")
        # Only what the stream itself sends as ids (ASCII digits, a bigint); anything else replays nothing.
        # (str.isdigit() would also pass '²', which int() refuses: a 500.)
        after = int(last_event_id) if last_event_id and _EVENT_ID.fullmatch(last_event_id) else None

        async def replay() -> AsyncIterator[str]:
            if after is None:
                return
            for notification_id in await db_notifications.stream_replay(services.pool, me.id, after,
                                                                         stream.REPLAY_LIMIT):
                context = await db_notifications.notification_context(services.pool, notification_id)
                if context is not None:
                    yield stream.frame(context.id, context.event, notifications.message(context))

        return Stream(stream.live_frames(services.stream_redis, me.id, replay=replay()), media_type="text/event-stream",
                      headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
