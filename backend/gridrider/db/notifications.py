"""SQL for alerts: notifications, who they reach, push subscriptions and one delivery row per target."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db.pool import Connection, Pool

NOTIFICATION_INSERT_SQL = """
INSERT INTO notifications (event, incident_id, audience, payload, dedupe_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (dedupe_key) DO NOTHING
RETURNING id
"""
# Everything a message is rendered from, read when it is sent (names as they are now).
NOTIFICATION_CONTEXT_SQL = """
SELECT n.id, n.event, n.incident_id, n.audience, n.payload, n.created_at,
       i.category, c.name_zh AS category_zh, c.name_en AS category_en, c.severity, c.life_safety,
       i.report_count, i.accept_due_at,
       CASE WHEN a.level = 'grid' THEN coalesce(p.name_zh, a.name_zh) ELSE a.name_zh END AS place_zh,
       CASE WHEN a.level = 'grid' THEN coalesce(p.name_en, p.name_zh, a.name_en, a.name_zh)
            ELSE coalesce(a.name_en, a.name_zh) END AS place_en,
       a.name_zh AS area_zh, coalesce(a.name_en, a.name_zh) AS area_en
FROM notifications n
LEFT JOIN incidents i ON i.id = n.incident_id
LEFT JOIN categories c ON c.code = i.category
LEFT JOIN areas a ON a.id = i.area_id
LEFT JOIN areas p ON p.id = a.parent_id
WHERE n.id = $1
"""
# A grid's own members (their member_areas row names the grid).
AREA_MEMBERS_SQL = """
SELECT m.id FROM members m JOIN member_areas ma ON ma.member_id = m.id
WHERE ma.area_id = $1 AND m.role = 'grid_member' AND m.status = 'active'
ORDER BY m.id
"""
# An area's supervisors: those attached to the area itself or, when it has none, to the nearest
# ancestor that has some — every incident has someone to tell, and the county is not told of everything.
AREA_SUPERVISORS_SQL = """
WITH covering AS (
    SELECT m.id AS member_id, length(a.path) AS depth
    FROM areas target
    JOIN areas a ON target.path LIKE a.path || '%'
    JOIN member_areas ma ON ma.area_id = a.id
    JOIN members m ON m.id = ma.member_id
    WHERE target.id = $1 AND m.role = 'supervisor' AND m.status = 'active'
)
SELECT DISTINCT member_id FROM covering WHERE depth = (SELECT max(depth) FROM covering) ORDER BY member_id
"""
ACTIVE_MEMBERS_SQL = "SELECT id FROM members WHERE id = ANY($1::bigint[]) AND status = 'active' ORDER BY id"

STREAM_PLAN_SQL = """
INSERT INTO deliveries (notification_id, channel, target, member_id, created_at)
SELECT $1, 'stream', m::text, m, $3 FROM unnest($2::bigint[]) AS m
ON CONFLICT (notification_id, channel, target) DO NOTHING
RETURNING member_id
"""
STREAM_SENT_SQL = """
UPDATE deliveries SET state = 'sent', attempts = attempts + 1, sent_at = $3
WHERE notification_id = $1 AND channel = 'stream' AND member_id = ANY($2::bigint[])
"""
# What a reconnecting app missed: its member's notifications after the last id it saw (oldest first).
STREAM_REPLAY_SQL = """
SELECT n.id FROM deliveries d JOIN notifications n ON n.id = d.notification_id
WHERE d.channel = 'stream' AND d.member_id = $1 AND n.id > $2
ORDER BY n.id LIMIT $3
"""
WECOM_PLAN_SQL = """
INSERT INTO deliveries (notification_id, channel, target, created_at) VALUES ($1, 'wecom', $2::bigint::text, $3)
ON CONFLICT (notification_id, channel, target) DO NOTHING
"""
# An area's robot cards still to send, oldest first (the batch a flush sends as one message).
WECOM_PENDING_SQL = """
SELECT d.id AS delivery_id, d.notification_id, d.attempts FROM deliveries d
WHERE d.channel = 'wecom' AND d.target = $1::bigint::text AND d.state = 'pending'
  AND ($2::bigint IS NULL OR d.notification_id = $2)
ORDER BY d.id LIMIT 50
"""
SMS_PLAN_SQL = """
INSERT INTO deliveries (notification_id, channel, target, member_id, created_at)
SELECT $1, 'sms', m.id::text, m.id, $3 FROM members m
WHERE m.id = ANY($2::bigint[]) AND m.phone IS NOT NULL AND m.status = 'active'
ON CONFLICT (notification_id, channel, target) DO NOTHING
"""
SMS_PENDING_SQL = """
SELECT d.id AS delivery_id, d.member_id, d.attempts, m.phone FROM deliveries d JOIN members m ON m.id = d.member_id
WHERE d.notification_id = $1 AND d.channel = 'sms' AND d.state = 'pending' AND m.status = 'active'
ORDER BY d.id
"""
# Capped SMS a member was sent since $2 (the start of their Asia/Shanghai day): every SMS but life-safety ones.
SMS_CAPPED_TODAY_SQL = """
SELECT count(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
WHERE d.channel = 'sms' AND d.member_id = $1 AND d.state = 'sent' AND d.sent_at >= $2
  AND n.event <> 'life_safety_unaccepted'
"""
WEBPUSH_PLAN_SQL = """
INSERT INTO deliveries (notification_id, channel, target, member_id, created_at)
SELECT $1, 'webpush', s.id::text, s.member_id, $3
FROM push_subscriptions s WHERE s.member_id = ANY($2::bigint[])
ON CONFLICT (notification_id, channel, target) DO NOTHING
"""
# A pending delivery goes out only to the subscription it was planned for, still held by the same
# member (a device re-subscribed by someone else must not receive the first member's alerts): the
# others come back without a subscription, and are skipped. (One query for both: a separate UPDATE
# for the skipped ones took ~0.15 s of a 20,000-subscription notify, almost always to find none.)
WEBPUSH_PENDING_SQL = """
SELECT d.id AS delivery_id, d.attempts, s.id AS subscription_id, s.endpoint, s.p256dh, s.auth, s.vapid_key_id
FROM deliveries d
LEFT JOIN (push_subscriptions s JOIN members m ON m.id = s.member_id AND m.status = 'active')
       ON s.id = webpush_target(d) AND s.member_id = d.member_id
WHERE d.notification_id = $1 AND d.channel = 'webpush' AND d.state = 'pending'
ORDER BY d.id
"""
WEBPUSH_SKIP_SQL = """
UPDATE deliveries SET state = 'skipped', last_error = 'subscription gone, moved, or its member deactivated'
WHERE id = ANY($1::bigint[]) AND state = 'pending'
"""
DELIVERIES_RECORD_SQL = """
UPDATE deliveries d SET state = r.state, attempts = d.attempts + 1, last_status = r.status,
       last_error = r.error, sent_at = CASE WHEN r.state = 'sent' THEN $5 ELSE d.sent_at END
FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[]) AS r(id, state, status, error)
WHERE d.id = r.id
"""
SUBSCRIPTIONS_OK_SQL = """
UPDATE push_subscriptions SET last_ok_at = $2, failures = 0 WHERE id = ANY($1::bigint[])
"""
SUBSCRIPTIONS_FAILED_SQL = """
UPDATE push_subscriptions SET failures = failures + 1 WHERE id = ANY($1::bigint[])
"""
SUBSCRIPTIONS_RESUBSCRIBE_SQL = """
UPDATE push_subscriptions SET failures = failures + 1, needs_resubscribe_at = $2 WHERE id = ANY($1::bigint[])
"""
SUBSCRIPTIONS_DELETE_SQL = "DELETE FROM push_subscriptions WHERE id = ANY($1::bigint[])"
DELIVERIES_GIVE_UP_SQL = """
UPDATE deliveries SET state = 'failed', last_error = coalesce(last_error, '') || ' (notify job gave up)'
WHERE notification_id = $1 AND state = 'pending'
"""

SUBSCRIPTION_UPSERT_SQL = """
WITH previous AS (SELECT id, member_id FROM push_subscriptions WHERE endpoint = $2)
INSERT INTO push_subscriptions AS s
    (member_id, endpoint, p256dh, auth, vapid_key_id, user_agent, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
ON CONFLICT (endpoint) DO UPDATE SET
    member_id = excluded.member_id, p256dh = excluded.p256dh, auth = excluded.auth,
    vapid_key_id = excluded.vapid_key_id, user_agent = excluded.user_agent, updated_at = excluded.updated_at,
    failures = 0, needs_resubscribe_at = NULL
RETURNING s.id, s.created_at, s.updated_at, s.vapid_key_id, s.user_agent, s.last_ok_at, s.needs_resubscribe_at,
          (SELECT member_id FROM previous) AS previous_member_id, (xmax = 0) AS inserted
"""
# Past the per-member limit the least recently renewed subscriptions go: old phones, old browsers.
SUBSCRIPTIONS_TRIM_SQL = """
DELETE FROM push_subscriptions WHERE id IN (
    SELECT id FROM push_subscriptions WHERE member_id = $1 ORDER BY updated_at DESC, id DESC OFFSET $2)
"""
SUBSCRIPTIONS_OF_MEMBER_SQL = """
SELECT id, endpoint, vapid_key_id, user_agent, created_at, updated_at, last_ok_at, needs_resubscribe_at
FROM push_subscriptions WHERE member_id = $1 ORDER BY id
"""
SUBSCRIPTION_DELETE_OWN_SQL = "DELETE FROM push_subscriptions WHERE id = $1 AND member_id = $2 RETURNING id"
SUBSCRIPTION_DELETE_OWN_BY_ENDPOINT_SQL = (
    "DELETE FROM push_subscriptions WHERE endpoint = $1 AND member_id = $2 RETURNING id")
VAPID_KEY_USE_SQL = "SELECT vapid_key_id, count(*) FROM push_subscriptions GROUP BY vapid_key_id"


class NotificationContext(msgspec.Struct, frozen=True):
    id: int
    event: str
    incident_id: int | None
    audience: dict
    payload: dict
    created_at: dt.datetime
    category: str | None
    category_zh: str | None
    category_en: str | None
    severity: str | None
    life_safety: bool | None
    report_count: int | None
    accept_due_at: dt.datetime | None
    place_zh: str | None
    place_en: str | None
    area_zh: str | None
    area_en: str | None


class PendingPush(msgspec.Struct, frozen=True):
    delivery_id: int
    attempts: int
    subscription_id: int
    endpoint: str
    p256dh: bytes
    auth: bytes
    vapid_key_id: str


class SubscriptionRow(msgspec.Struct, frozen=True):
    id: int
    endpoint: str
    vapid_key_id: str
    user_agent: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_ok_at: dt.datetime | None
    needs_resubscribe_at: dt.datetime | None


async def insert_notification(conn: Connection, *, event: str, incident_id: int | None, audience: dict,
                              payload: dict, dedupe_key: str | None, now: dt.datetime) -> int | None:
    """The new notification's id; None when its dedupe key was already used (it was announced before)."""
    return await conn.fetchval(NOTIFICATION_INSERT_SQL, event, incident_id, audience, payload, dedupe_key, now)


async def notification_context(conn: Connection | Pool, notification_id: int) -> NotificationContext | None:
    row = await conn.fetchrow(NOTIFICATION_CONTEXT_SQL, notification_id)
    return NotificationContext(**dict(row)) if row else None


async def audience_members(conn: Connection | Pool, audience: dict) -> list[int]:
    members: set[int] = set()
    if audience.get("member_ids"):
        members.update(r["id"] for r in await conn.fetch(ACTIVE_MEMBERS_SQL, audience["member_ids"]))
    area_id = audience.get("area_id")
    if area_id is not None:
        roles = audience.get("roles") or []
        if "grid_member" in roles:
            members.update(r["id"] for r in await conn.fetch(AREA_MEMBERS_SQL, area_id))
        if "supervisor" in roles:
            members.update(r["member_id"] for r in await conn.fetch(AREA_SUPERVISORS_SQL, area_id))
    return sorted(members)


async def plan_stream(conn: Connection, notification_id: int, member_ids: list[int], now: dt.datetime) -> list[int]:
    """Members newly planned for the live stream (none on a re-run: the stream sends nothing twice)."""
    return [r["member_id"] for r in await conn.fetch(STREAM_PLAN_SQL, notification_id, member_ids, now)]


async def mark_stream_sent(conn: Connection | Pool, notification_id: int, member_ids: list[int],
                           now: dt.datetime) -> None:
    await conn.execute(STREAM_SENT_SQL, notification_id, member_ids, now)


async def stream_replay(conn: Connection | Pool, member_id: int, after_id: int, limit: int) -> list[int]:
    return [r["id"] for r in await conn.fetch(STREAM_REPLAY_SQL, member_id, after_id, limit)]


class PendingCard(msgspec.Struct, frozen=True):
    delivery_id: int
    notification_id: int
    attempts: int


async def plan_wecom(conn: Connection, notification_id: int, area_id: int, now: dt.datetime) -> None:
    await conn.execute(WECOM_PLAN_SQL, notification_id, area_id, now)


async def pending_cards(conn: Connection | Pool, area_id: int, notification_id: int | None = None,
                        ) -> list[PendingCard]:
    return [PendingCard(**dict(r)) for r in await conn.fetch(WECOM_PENDING_SQL, area_id, notification_id)]


class PendingSms(msgspec.Struct, frozen=True):
    delivery_id: int
    member_id: int
    attempts: int
    phone: str


async def plan_sms(conn: Connection, notification_id: int, member_ids: list[int], now: dt.datetime) -> None:
    await conn.execute(SMS_PLAN_SQL, notification_id, member_ids, now)


async def pending_sms(conn: Connection | Pool, notification_id: int) -> list[PendingSms]:
    return [PendingSms(**dict(r)) for r in await conn.fetch(SMS_PENDING_SQL, notification_id)]


async def capped_sms_today(conn: Connection | Pool, member_id: int, day_start: dt.datetime) -> int:
    return await conn.fetchval(SMS_CAPPED_TODAY_SQL, member_id, day_start)


async def plan_webpush(conn: Connection, notification_id: int, member_ids: list[int], now: dt.datetime) -> None:
    await conn.execute(WEBPUSH_PLAN_SQL, notification_id, member_ids, now)


async def pending_webpush(conn: Connection, notification_id: int) -> list[PendingPush]:
    """The deliveries still to send; those whose subscription went, moved or whose member left are skipped."""
    pending, orphans = [], []
    for row in await conn.fetch(WEBPUSH_PENDING_SQL, notification_id):
        if row["subscription_id"] is None:
            orphans.append(row["delivery_id"])
        else:
            pending.append(PendingPush(*row))
    if orphans:
        await conn.execute(WEBPUSH_SKIP_SQL, orphans)
    return pending


async def record_deliveries(conn: Connection, outcomes: list[tuple[int, str, int | None, str | None]],
                            now: dt.datetime) -> None:
    """outcomes: (delivery id, new state, HTTP status, error)."""
    if outcomes:
        ids, states, statuses, errors = (list(column) for column in zip(*outcomes, strict=True))
        await conn.execute(DELIVERIES_RECORD_SQL, ids, states, statuses, errors, now)


async def record_subscription_health(conn: Connection, *, ok: list[int], failed: list[int], resubscribe: list[int],
                                     gone: list[int], now: dt.datetime) -> None:
    if ok:
        await conn.execute(SUBSCRIPTIONS_OK_SQL, ok, now)
    if failed:
        await conn.execute(SUBSCRIPTIONS_FAILED_SQL, failed)
    if resubscribe:
        await conn.execute(SUBSCRIPTIONS_RESUBSCRIBE_SQL, resubscribe, now)
    if gone:
        await conn.execute(SUBSCRIPTIONS_DELETE_SQL, gone)


async def give_up_deliveries(conn: Connection, notification_id: int) -> None:
    await conn.execute(DELIVERIES_GIVE_UP_SQL, notification_id)


async def upsert_subscription(conn: Connection, *, member_id: int, endpoint: str, p256dh: bytes, auth: bytes,
                              vapid_key_id: str, user_agent: str | None, now: dt.datetime,
                              keep_per_member: int) -> tuple[SubscriptionRow, bool, int | None]:
    """The stored subscription, whether it is new, and the member who held the endpoint before if another did."""
    row = await conn.fetchrow(SUBSCRIPTION_UPSERT_SQL, member_id, endpoint, p256dh, auth, vapid_key_id, user_agent,
                              now)
    await conn.execute(SUBSCRIPTIONS_TRIM_SQL, member_id, keep_per_member)
    values = dict(row)
    previous, inserted = values.pop("previous_member_id"), values.pop("inserted")
    subscription = SubscriptionRow(endpoint=endpoint, **values)
    return subscription, inserted, previous if previous not in (None, member_id) else None


async def subscriptions_of(conn: Connection | Pool, member_id: int) -> list[SubscriptionRow]:
    return [SubscriptionRow(**dict(r)) for r in await conn.fetch(SUBSCRIPTIONS_OF_MEMBER_SQL, member_id)]


async def delete_own_subscription(conn: Connection | Pool, *, member_id: int, subscription_id: int | None = None,
                                  endpoint: str | None = None) -> bool:
    if subscription_id is not None:
        return await conn.fetchval(SUBSCRIPTION_DELETE_OWN_SQL, subscription_id, member_id) is not None
    return await conn.fetchval(SUBSCRIPTION_DELETE_OWN_BY_ENDPOINT_SQL, endpoint, member_id) is not None


async def vapid_key_use(conn: Connection | Pool) -> dict[str, int]:
    return {r["vapid_key_id"]: r["count"] for r in await conn.fetch(VAPID_KEY_USE_SQL)}
