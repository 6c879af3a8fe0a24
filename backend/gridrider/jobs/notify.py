"""The `notify` job: one per notification, fanned out to every Web Push subscription of its audience.

Idempotent through `deliveries`: targets are planned once per (notification, subscription) and
outcomes are committed in small batches as sends finish, so a re-run sends only what is still
pending. (A worker killed between a send and its commit can repeat that one message; the Topic
header and the per-incident tag make the phone show it once.)

Replies as DESIGN.md §5: 201 sent · 404/410 subscription deleted · 413 sent again once, minimal ·
429 retried after Retry-After · 5xx and timeouts retried with backoff · 400/401/403 the browser is
asked to subscribe again · 3xx never followed.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import datetime as dt

from gridrider import stream
from gridrider.clock import local_day, local_day_start
from gridrider.db import notifications as db_notifications
from gridrider.db.jobs import ClaimedJob
from gridrider.db.notifications import NotificationContext, PendingPush
from gridrider.domain import notifications
from gridrider.images.urls import signed_photo_path
from gridrider.jobs.queue import Tx
from gridrider.jobs.runner import JobCall, RetryAfter
from gridrider.jobs.wecom import send_card
from gridrider.logging import get_logger
from gridrider.push.endpoints import b64url
from gridrider.push.sender import PushMessage, PushReply, PushTarget, SubscriptionKeys
from gridrider.services import Services

log = get_logger(__name__)

RECORD_EVERY = 200  # outcomes per commit: a crash repeats at most this many unrecorded sends
PREPARE_RUN = 256  # messages encrypted back to back (see _Fanout)
MAX_DELIVERY_ATTEMPTS = 5


async def enqueue_notify(tx: Tx, notification_id: int) -> None:
    await tx.add_job("notify", {"notification_id": notification_id}, dedupe_key=f"notification:{notification_id}")


@dataclasses.dataclass(frozen=True)
class _Outcome:
    pending: PendingPush
    state: str  # sent | gone | failed | pending (try again)
    status: int | None
    error: str | None
    subscription: str  # ok | gone | resubscribe | failed | unchanged
    retry_after_s: float | None = None


def classify(pending: PendingPush, reply: PushReply) -> _Outcome:
    status, error = reply.status, reply.error
    last_try = pending.attempts + 1 >= MAX_DELIVERY_ATTEMPTS
    retry_state = "failed" if last_try else "pending"
    if status is None:
        if error and error.startswith("address_refused"):
            return _Outcome(pending, "failed", None, error, "failed")
        return _Outcome(pending, retry_state, None, error, "failed")
    if 200 <= status < 300:
        return _Outcome(pending, "sent", status, None, "ok")
    if status in (404, 410):
        return _Outcome(pending, "gone", status, "subscription expired or unsubscribed", "gone")
    if status == 429:
        return _Outcome(pending, retry_state, status, "rate limited by the push service", "unchanged",
                        reply.retry_after_s)
    if status in (400, 401, 403):
        return _Outcome(pending, "failed", status, "push service refused the subscription or key", "resubscribe")
    if 300 <= status < 400:
        return _Outcome(pending, "failed", status, "redirect refused", "failed")
    if status >= 500:
        return _Outcome(pending, retry_state, status, "push service error", "failed", reply.retry_after_s)
    return _Outcome(pending, "failed", status, f"push service answered {status}", "failed")


def _image_url(services: Services, context: NotificationContext) -> str | None:
    photo_id = context.payload.get("photo_id")
    if not isinstance(photo_id, int):
        return None
    ttl_s, _ = notifications.delivery_options(context)
    path = signed_photo_path(services.settings.url_signing_secret, photo_id, "thumb", services.clock.now(),
                             lifetime=dt.timedelta(seconds=ttl_s + 86400))
    return services.settings.public_url + path


class _Fanout:
    """One notification's pending deliveries to one push service, prepared a run at a time.

    Encrypting each message (~110 µs of ECDH and HKDF) just before its HTTP exchange cost ~90 µs
    more CPU per delivery than encrypting runs of them back to back (440 against 350 µs, measured
    without the database) — the interpreter's and OpenSSL's code evict each other from the CPU
    caches — so deliveries are prepared PREPARE_RUN at a time.
    """

    def __init__(self, services: Services, context: NotificationContext, full: bytes) -> None:
        self.services, self.full = services, full
        self.ttl_s, self.urgency = notifications.delivery_options(context)
        self.topic = notifications.topic_of(context)
        self.todo: collections.deque[PendingPush] = collections.deque()
        self.ready: collections.deque[tuple[PendingPush, PushTarget, PushMessage | None]] = collections.deque()

    def next(self) -> tuple[PendingPush, PushTarget, PushMessage | None] | None:
        """The next delivery (its message None when its key is gone), or None when all are taken."""
        if not self.ready:
            push = self.services.push
            assert push is not None
            for _ in range(min(PREPARE_RUN, len(self.todo))):
                pending = self.todo.popleft()
                key = push.keyring.get(pending.vapid_key_id)
                target = PushTarget(subscription_id=pending.subscription_id, endpoint=pending.endpoint,
                                    keys=SubscriptionKeys(p256dh=b64url(pending.p256dh), auth=b64url(pending.auth)),
                                    vapid_key_id=pending.vapid_key_id)
                message = None if key is None else push.sender.prepare(
                    target, key, self.full, ttl_s=self.ttl_s, urgency=self.urgency, topic=self.topic)
                self.ready.append((pending, target, message))
        return self.ready.popleft() if self.ready else None


async def _deliver(services: Services, fanout: _Fanout, pending: PendingPush, target: PushTarget,
                   message: PushMessage | None, minimal: bytes) -> _Outcome:
    push = services.push
    assert push is not None
    if message is None:
        # Its key was retired while a browser still used it: only a new subscription can fix that.
        return _Outcome(pending, "failed", None, "vapid key no longer configured", "resubscribe")
    reply = await push.sender.deliver(message)
    if reply.status == 413:
        key = push.keyring.get(pending.vapid_key_id)
        assert key is not None
        reply = await push.sender.send(target, key, minimal, ttl_s=fanout.ttl_s, urgency=fanout.urgency,
                                       topic=fanout.topic)
    return classify(pending, reply)


async def _push_all(services: Services, context: NotificationContext, pending: list[PendingPush], full: bytes,
                    minimal: bytes) -> tuple[dict[str, int], float]:
    """Send every pending delivery; outcomes are committed in batches as sends finish.

    Each push service gets as many senders as the push sender keeps connections ("lanes") to it;
    a sender takes its service's next delivery when the last one is answered, so a hanging service
    holds only its own senders (each for at most the send timeout), never another service's. (A
    task per delivery, waiting for a lane, kept tens of thousands of tasks alive: their garbage
    collection cost ~40 µs per delivery.)
    """
    assert services.push is not None
    fanouts: dict[str, _Fanout] = {}
    for delivery in pending:
        origin = PushTarget.origin_of(delivery.endpoint)
        if origin not in fanouts:
            fanouts[origin] = _Fanout(services, context, full)
        fanouts[origin].todo.append(delivery)
    counts: dict[str, int] = {}
    retry_after = 0.0
    batch: list[_Outcome] = []

    async def record_batch() -> None:
        nonlocal batch
        finished, batch = batch, []
        await _record(services, finished)

    async def sender(fanout: _Fanout) -> None:
        nonlocal retry_after
        while (delivery := fanout.next()) is not None:
            outcome = await _deliver(services, fanout, *delivery, minimal)
            batch.append(outcome)
            counts[outcome.state] = counts.get(outcome.state, 0) + 1
            retry_after = max(retry_after, outcome.retry_after_s or 0.0)
            if len(batch) >= RECORD_EVERY:
                await record_batch()

    lanes = services.push.settings.push_concurrency
    senders = [asyncio.ensure_future(sender(fanout)) for fanout in fanouts.values()
               for _ in range(min(lanes, len(fanout.todo)))]
    try:
        await asyncio.gather(*senders)
    finally:
        for task in senders:
            task.cancel()
        if batch:
            await record_batch()
    return counts, retry_after


async def _record(services: Services, outcomes: list[_Outcome]) -> None:
    now = services.clock.now()
    health: dict[str, list[int]] = {"ok": [], "failed": [], "resubscribe": [], "gone": []}
    for outcome in outcomes:
        if outcome.subscription in health:
            health[outcome.subscription].append(outcome.pending.subscription_id)
    async with services.pool.acquire() as conn, conn.transaction():
        await db_notifications.record_deliveries(
            conn, [(o.pending.delivery_id, o.state, o.status, o.error) for o in outcomes], now)
        await db_notifications.record_subscription_health(conn, now=now, **health)
    for outcome in outcomes:
        if outcome.subscription == "gone":
            log.info("push.subscription_gone", subscription_id=outcome.pending.subscription_id,
                     status=outcome.status)
        elif outcome.state == "failed":
            log.warning("push.delivery_failed", delivery_id=outcome.pending.delivery_id, status=outcome.status,
                        error=outcome.error)


async def _stream(services: Services, conn, context: NotificationContext, members: list[int],
                  payload: dict) -> int:
    """Open apps hear of it at once (the live stream); each member once, even when the job runs again."""
    fresh = await db_notifications.plan_stream(conn, context.id, members, services.clock.now())
    reached = await stream.publish(services.redis, fresh, stream.frame(context.id, context.event, payload))
    if reached:
        await db_notifications.mark_stream_sent(conn, context.id, reached, services.clock.now())
    return len(reached)


SMS_CAP_LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended('sms-cap:' || $1::bigint, 0))"


def _sms_params(context: NotificationContext) -> tuple[str, dict[str, str]]:
    """The approved template's kind and its variables (kept short: carriers cap a message's length)."""
    place = (context.place_zh or "")[:20]
    category = (context.category_zh or context.category or "")[:20]
    if context.event == notifications.LIFE_SAFETY_UNACCEPTED:
        return "life_safety", {"category": category, "place": place, "minutes": str(context.payload.get("minutes"))}
    stage = {"dispatch": "派发", "accept": "受理", "resolve": "办结"}.get(context.payload.get("stage", ""), "处理")
    return "escalation", {"category": category, "place": place, "stage": stage}


async def _sms(services: Services, conn, context: NotificationContext, members: list[int]) -> tuple[str, bool]:
    """Texts for the events that go by SMS; each member once; the daily cap for all but life-safety."""
    if context.event not in notifications.SMS_EVENTS or services.sms is None:
        return "no sms", False
    now = services.clock.now()
    await db_notifications.plan_sms(conn, context.id, members, now)
    capped = context.event != notifications.LIFE_SAFETY_UNACCEPTED
    day_start = local_day_start(local_day(now))
    kind, params = _sms_params(context)
    outcomes: list[tuple[int, str, int | None, str | None]] = []
    retry = False
    for pending in await db_notifications.pending_sms(conn, context.id):
        # One member's capped texts are counted, sent and recorded under a lock of theirs, so
        # concurrent notify jobs cannot each see room for the same last text.
        async with conn.transaction():
            if capped:
                await conn.execute(SMS_CAP_LOCK_SQL, pending.member_id)
                if await db_notifications.capped_sms_today(conn, pending.member_id, day_start) \
                        >= services.settings.sms_daily_cap:
                    outcomes.append((pending.delivery_id, "skipped", None, "daily SMS cap reached"))
                    await db_notifications.record_deliveries(conn, outcomes[-1:], services.clock.now())
                    continue
            result = await services.sms.send(phone=pending.phone, kind=kind, params=params)
            if result.ok:
                outcomes.append((pending.delivery_id, "sent", None, None))
            elif result.retryable and pending.attempts + 1 < MAX_DELIVERY_ATTEMPTS:
                outcomes.append((pending.delivery_id, "pending", None, result.code))
                retry = True
            else:
                outcomes.append((pending.delivery_id, "failed", None, result.code))
            # Recorded one by one: a crash mid-way repeats at most the text in flight.
            await db_notifications.record_deliveries(conn, outcomes[-1:], services.clock.now())
    return f"{sum(o[1] == 'sent' for o in outcomes)} texted", retry


NOTIFY_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(hashtextextended('notify:' || $1::bigint, 0))"


async def notify(call: JobCall) -> str:
    services = call.services
    notification_id = call.payload["notification_id"]
    # Held by the job's own transaction until it ends: two runs of one notification never send at once.
    if not await call.tx.conn.fetchval(NOTIFY_LOCK_SQL, notification_id):
        raise RetryAfter(f"notification {notification_id} is being sent by another run", 5.0)
    async with services.pool.acquire() as conn:
        context = await db_notifications.notification_context(conn, notification_id)
        if context is None:
            return "notification gone"
        members = await db_notifications.audience_members(conn, context.audience)
        async with conn.transaction():
            await db_notifications.plan_webpush(conn, notification_id, members, services.clock.now())
        pending = await db_notifications.pending_webpush(conn, notification_id)
        payload = notifications.message(context, image_url=_image_url(services, context))
        streamed = await _stream(services, conn, context, members, payload)
        texted, sms_retry = await _sms(services, conn, context, members)
        carded, card_retry = await send_card(services, call.tx, conn, context)
        sms_retry = sms_retry or card_retry
        texted = f"{texted}, {carded}"
    if not pending:
        if sms_retry:
            raise RetryAfter(f"sms to retry ({texted})", 30.0)
        return f"nothing to push ({len(members)} members, {streamed} streamed, {texted})"
    if services.push is None:
        raise RuntimeError("this process has no push runtime")
    full, minimal = notifications.encode(payload), notifications.encode(notifications.minimal_message(context))
    counts, retry_after = await _push_all(services, context, pending, full, minimal)
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    if counts.get("pending") or sms_retry:
        # The job's own retry sends only these again (with backoff, or after the service's Retry-After).
        raise RetryAfter(f"web push: {summary}; {texted}", max(retry_after, 30.0 if sms_retry else 0.0))
    return f"web push: {summary}; {texted}"


async def on_notify_dead(services: Services, tx: Tx, job: ClaimedJob) -> None:
    await db_notifications.give_up_deliveries(tx.conn, job.payload["notification_id"])
