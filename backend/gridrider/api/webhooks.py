"""An area's WeCom group robot (DESIGN.md §5): set, inspect, remove — by admins and the area's supervisors.

The webhook URL is a secret: accepted only in WeCom's exact form, stored encrypted, and never
answered back or logged — GET says only whether one is set and the key's last four characters.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter

from gridrider.api.auth import roles
from gridrider.db import areas as db_areas
from gridrider.db import webhooks as db_webhooks
from gridrider.db.members import MemberRow
from gridrider.db.webhooks import WebhookInfo
from gridrider.errors import NotFound
from gridrider.jobs.queue import Tx
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)

# Area codes as the areas table allows them; anything else cannot name an area (and never reaches SQL).
AreaCode = Annotated[str, PathParameter(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")]


class WeComWebhookIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    webhook_url: str  # checked by channels.wecom.check_webhook_url (one problem code for every way it is wrong)


class WeComWebhookOut(msgspec.Struct, frozen=True):
    area_code: str
    channel: str
    configured: bool
    key_hint: str | None = None  # last 4 characters of the robot key
    updated_by: int | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def of(cls, area_code: str, info: WebhookInfo | None) -> WeComWebhookOut:
        if info is None:
            return cls(area_code=area_code, channel="wecom", configured=False)
        return cls(area_code=area_code, channel=info.channel, configured=True, key_hint=info.key_hint,
                   updated_by=info.updated_by, updated_at=info.updated_at)


async def _area_in_reach(tx: Tx, me: MemberRow, code: str) -> db_areas.AreaRef:
    """The area if the caller may manage its robot: admins any, supervisors their subtree (in SQL); else 404."""
    subtrees = None if me.role == "admin" else list(me.area_paths)
    if subtrees == []:
        raise NotFound()
    found = await db_areas.areas_in_subtrees(tx.conn, [code], subtrees)
    if not found:
        raise NotFound()
    return found[0]


class WebhookController(Controller):
    path = "/api/v1/areas"
    opt = roles("admin", "supervisor")

    @put("/{code:str}/wecom", operation_id="setAreaWeComWebhook", status_code=200)
    async def set_wecom(self, code: AreaCode, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                        services: NamedDependency[Services], data: JSONBody[WeComWebhookIn]) -> WeComWebhookOut:
        area = await _area_in_reach(tx, me, code)
        info = await db_webhooks.set_webhook(tx.conn, area_id=area.id, url=data.webhook_url,
                                             secret=services.settings.session_secret, actor_id=me.id,
                                             now=services.clock.now())
        log.info("webhooks.wecom_set", area_id=area.id, actor_id=me.id)  # never the URL, nor its key
        return WeComWebhookOut.of(area.code, info)

    @get("/{code:str}/wecom", operation_id="getAreaWeComWebhook")
    async def get_wecom(self, code: AreaCode, tx: NamedDependency[Tx],
                        me: NamedDependency[MemberRow]) -> WeComWebhookOut:
        area = await _area_in_reach(tx, me, code)
        return WeComWebhookOut.of(area.code, await db_webhooks.webhook_info(tx.conn, area.id))

    @delete("/{code:str}/wecom", operation_id="deleteAreaWeComWebhook", status_code=204)
    async def delete_wecom(self, code: AreaCode, tx: NamedDependency[Tx], me: NamedDependency[MemberRow]) -> None:
        area = await _area_in_reach(tx, me, code)
        if not await db_webhooks.delete_webhook(tx.conn, area_id=area.id):
            raise NotFound()
        log.info("webhooks.wecom_deleted", area_id=area.id, actor_id=me.id)
