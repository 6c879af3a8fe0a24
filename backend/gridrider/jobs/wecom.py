"""WeCom group robot cards: one per event while the robot's minute allows, then one batch card.

A robot takes 20 messages a minute. `notify` sends an event's card at once when the area's robot
has room; otherwise the card waits (delivery `pending`) and a `wecom_flush` job, one per area and
minute, sends every waiting card of that area as ONE batch message a minute later.
"""

from __future__ import annotations

from gridrider.channels.wecom import (
    CardItem,
    RobotRateLimiter,
    WeComResult,
    batch_card,
    check_webhook_url,
    incident_card,
)
from gridrider.db import notifications as db_notifications
from gridrider.db import webhooks as db_webhooks
from gridrider.db.notifications import NotificationContext, PendingCard
from gridrider.db.pool import Connection
from gridrider.jobs.queue import Tx
from gridrider.jobs.runner import JobCall, RetryAfter
from gridrider.logging import get_logger
from gridrider.services import Services

log = get_logger(__name__)

MAX_CARD_ATTEMPTS = 5
FLUSH_AFTER_S = 60


async def _webhook(services: Services, conn: Connection, area_id: int) -> str | None:
    try:
        return await db_webhooks.webhook_for(conn, area_id, services.settings.session_secret)
    except db_webhooks.WebhookUnreadable:
        # The session secret changed since it was stored: an admin must set the webhook again.
        log.warning("wecom.webhook_unreadable", area_id=area_id)
        return None


async def _record(conn: Connection, services: Services, cards: list[PendingCard], result: WeComResult) -> bool:
    """Record one send's outcome for the cards it carried; True when they should be tried again."""
    retry = result.retryable and all(card.attempts + 1 < MAX_CARD_ATTEMPTS for card in cards)
    state = "sent" if result.ok else "pending" if retry else "failed"
    error = None if result.ok else f"{result.errcode}: {result.errmsg}"[:200]
    await db_notifications.record_deliveries(conn, [(c.delivery_id, state, None, error) for c in cards],
                                             services.clock.now())
    if result.gone:
        log.warning("wecom.webhook_gone", errcode=result.errcode)
    return state == "pending"


async def send_card(services: Services, tx: Tx, conn: Connection, context: NotificationContext) -> tuple[str, bool]:
    """The event's card to the robot of its audience's area; (summary, try again)."""
    area_id = context.audience.get("area_id")
    if services.wecom is None or area_id is None or context.incident_id is None:
        return "no wecom", False
    url = await _webhook(services, conn, area_id)
    if url is None:
        return "no wecom", False  # no robot for this area: the channel is simply skipped
    now = services.clock.now()
    await db_notifications.plan_wecom(conn, context.id, area_id, now)
    cards = await db_notifications.pending_cards(conn, area_id, context.id)
    if not cards:
        return "wecom done", False
    if not await RobotRateLimiter(services.redis, services.clock).take(check_webhook_url(url).key):
        minute = int(now.timestamp() // FLUSH_AFTER_S)
        await tx.add_job("wecom_flush", {"area_id": area_id}, delay_s=FLUSH_AFTER_S,
                         dedupe_key=f"wecom-flush:{area_id}:{minute}")
        return "wecom card batched", False
    card = incident_card(CardItem.of(context), public_url=services.settings.public_url, now=now)
    result = await services.wecom.send_markdown(url, card)
    retry = await _record(conn, services, cards, result)
    return ("wecom sent" if result.ok else f"wecom {result.errcode}"), retry


async def wecom_flush(call: JobCall) -> str:
    """Every card waiting for this area's robot, as one message."""
    services, conn = call.services, call.tx.conn
    area_id = call.payload["area_id"]
    if services.wecom is None:
        return "no wecom"
    url = await _webhook(services, conn, area_id)
    cards = await db_notifications.pending_cards(conn, area_id)
    if url is None or not cards:
        return "nothing to flush"
    decision = await RobotRateLimiter(services.redis, services.clock).acquire(check_webhook_url(url).key)
    if not decision.allowed:
        raise RetryAfter("robot still at its minute limit", decision.retry_after_s)
    items = []
    for card in cards:
        context = await db_notifications.notification_context(conn, card.notification_id)
        if context is not None and context.incident_id is not None:
            items.append(CardItem.of(context))
    message = batch_card(items, public_url=services.settings.public_url, now=services.clock.now()) if len(items) > 1 \
        else incident_card(items[0], public_url=services.settings.public_url, now=services.clock.now())
    result = await services.wecom.send_markdown(url, message)
    if await _record(conn, services, cards, result):
        raise RetryAfter(f"wecom {result.errcode}", result.retry_after_s or 30)
    return f"{len(cards)} cards in one message: {'sent' if result.ok else result.errcode}"
