"""`GET /api/v1/admin/channels`: each alert channel's outcomes per Asia/Shanghai day, for admins."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from gridrider.api.auth import roles
from gridrider.clock import local_day, local_day_start
from gridrider.services import Services

CHANNEL_DAYS_SQL = """
SELECT d.channel, (n.created_at AT TIME ZONE 'Asia/Shanghai')::date AS day,
       count(*) FILTER (WHERE d.state = 'sent') AS sent,
       count(*) FILTER (WHERE d.state = 'failed') AS failed,
       count(*) FILTER (WHERE d.state = 'gone') AS gone,
       count(*) FILTER (WHERE d.state = 'skipped') AS skipped,
       count(*) FILTER (WHERE d.state = 'pending') AS pending,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM d.sent_at - n.created_at))
           FILTER (WHERE d.sent_at IS NOT NULL) AS median_latency_s
FROM deliveries d JOIN notifications n ON n.id = d.notification_id
WHERE n.created_at >= $1
GROUP BY 1, 2
ORDER BY 2 DESC, 1
"""


class ChannelDay(msgspec.Struct, frozen=True):
    channel: str  # webpush | stream | sms | wecom
    day: dt.date  # Asia/Shanghai day the notification was raised
    sent: int  # accepted by the push service / SMS provider / robot, or published to open apps
    failed: int
    gone: int  # the subscription had expired (Web Push 404/410)
    skipped: int  # not sent on purpose: daily SMS cap, subscription moved, member deactivated
    pending: int  # waiting for a retry
    median_latency_s: float | None  # from the event to the channel accepting it


class ChannelController(Controller):
    path = "/api/v1/admin/channels"

    @get("/", operation_id="channelFigures", opt=roles("admin"))
    async def figures(self, services: NamedDependency[Services],
                      days: Annotated[int, QueryParameter(ge=1, le=90)] = 7) -> list[ChannelDay]:
        since = local_day_start(local_day(services.clock.now()) - dt.timedelta(days=days - 1))
        rows = await services.pool.fetch(CHANNEL_DAYS_SQL, since)
        return [ChannelDay(**{**dict(r), "median_latency_s": None if r["median_latency_s"] is None
                              else round(r["median_latency_s"], 3)}) for r in rows]
