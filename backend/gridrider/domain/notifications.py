"""Alertable events (DESIGN.md §5): who hears of what, and the message a phone shows.

An action records a notification in its own transaction (`record`), and whoever holds a job
transaction enqueues its `notify` job (`announce` does both); the `notify` job fans it out to every
channel. Messages follow UX.md: title = category · place, body = what to do or the outcome, a tag
per incident so a newer message replaces an older one, zh-CN with the English text beside it.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from gridrider.clock import format_local
from gridrider.db import notifications as db_notifications
from gridrider.db.notifications import NotificationContext
from gridrider.db.pool import Connection

# event → who is told (the audience is resolved when the notification is recorded)
INCIDENT_REACHED_GRID = "incident_reached_grid"  # created routed, dispatched, transferred, reopened, appeal upheld
INCIDENT_UNROUTED = "incident_unrouted"  # → the supervisors of the area that must dispatch it
LIFE_SAFETY_CREATED = "life_safety_created"  # → also the community's supervisors
REPORT_ACCEPTED = "report_accepted"  # → the reporters
REPORT_RESOLVED = "report_resolved"  # → the reporters (after-photo, points)
REPORT_REJECTED = "report_rejected"  # → the reporters (reason)
REPORT_MERGED = "report_merged"  # → the reporters (their incident merged into another)
INCIDENT_ESCALATED = "incident_escalated"  # → that level's supervisors
# A life-safety incident still not accepted 15 minutes after it reached a grid → its members; 30 → its supervisors.
LIFE_SAFETY_UNACCEPTED = "life_safety_unaccepted"
EVENTS = (INCIDENT_REACHED_GRID, INCIDENT_UNROUTED, LIFE_SAFETY_CREATED, REPORT_ACCEPTED, REPORT_RESOLVED,
          REPORT_REJECTED, REPORT_MERGED, INCIDENT_ESCALATED, LIFE_SAFETY_UNACCEPTED)
# Events that also go by SMS (DESIGN §5): the life-safety reminders (never capped) and escalations.
SMS_EVENTS = frozenset({LIFE_SAFETY_UNACCEPTED, INCIDENT_ESCALATED})
REPORTER_EVENTS = frozenset({REPORT_ACCEPTED, REPORT_RESOLVED, REPORT_REJECTED, REPORT_MERGED})
REACHED_GRID_REASONS = ("created", "dispatched", "transferred", "reopened", "appeal_upheld")

MAX_PAYLOAD_BYTES = 3000
ELLIPSIS = "…"

_REASONS = {
    "created": ("", ""), "dispatched": ("已派发：", "Dispatched: "), "transferred": ("转派：", "Transferred: "),
    "reopened": ("重新打开：", "Reopened: "), "appeal_upheld": ("申诉成立：", "Appeal upheld: "),
}
_REJECT_REASONS = {
    "not_a_hazard": ("不属于隐患", "not a hazard"),
    "cannot_locate": ("现场找不到", "could not be found on site"),
    "out_of_scope": ("不在受理范围", "outside what we handle"),
}
_STAGES = {"dispatch": ("派发", "dispatched"), "accept": ("受理", "accepted"), "close": ("办结", "closed")}


async def record(conn: Connection, *, event: str, incident_id: int | None, audience: dict[str, Any],
                 payload: dict[str, Any], dedupe_key: str | None, now: dt.datetime) -> int | None:
    """Record one notification; None if its dedupe key says it was recorded before."""
    assert event in EVENTS, event
    return await db_notifications.insert_notification(
        conn, event=event, incident_id=incident_id, audience=audience, payload=payload, dedupe_key=dedupe_key,
        now=now)


def grid_audience(grid_id: int) -> dict[str, Any]:
    return {"area_id": grid_id, "roles": ["grid_member"]}


def supervisors_audience(area_id: int) -> dict[str, Any]:
    return {"area_id": area_id, "roles": ["supervisor"]}


def members_audience(member_ids: list[int]) -> dict[str, Any]:
    return {"member_ids": sorted(set(member_ids))}


# ── how it is sent ─────────────────────────────────────────────────────────────────────────────

def delivery_options(context: NotificationContext) -> tuple[int, str]:
    """(push TTL in seconds, push Urgency) by the hazard's severity; TTL is never 0.

    A life-safety alert is urgent but has a shorter shelf life: after 12 h its SMS and escalation
    chain has taken over. Lower severities may wait out a phone that is off for a weekend. A
    reporter's outcome is low urgency: the phone may batch it to save battery.
    """
    if context.event in REPORTER_EVENTS:
        return 7 * 86400, "low"
    if context.life_safety or context.severity == "critical":
        return 12 * 3600, "high"
    return {"high": 86400, "medium": 2 * 86400}.get(context.severity or "", 3 * 86400), "normal"


def topic_of(context: NotificationContext) -> str | None:
    # Topic (≤32 base64url characters): the push service keeps only the newest undelivered message per topic.
    return f"incident-{context.incident_id}" if context.incident_id is not None else None


def _texts(context: NotificationContext, lang: str) -> tuple[str, str]:
    zh = lang != "en"
    category = (context.category_zh if zh else context.category_en) or context.category or ""
    place = (context.place_zh if zh else context.place_en) or ""
    title = f"{category} · {place}" if place else category
    payload = context.payload
    count = context.report_count or 1
    due = format_local(context.accept_due_at, "zh-CN" if zh else "en") if context.accept_due_at else None
    match context.event:
        case "incident_reached_grid":
            prefix = _REASONS.get(payload.get("reason", "created"), ("", ""))[0 if zh else 1]
            if zh:
                body = ("危及生命安全，" if context.life_safety else "新隐患，") + (
                    f"请在 {due} 前受理" if due else "请受理")
                body += f"（{count} 人上报）" if count > 1 else ""
            else:
                body = ("Life-threatening hazard; " if context.life_safety else "New hazard; ") + (
                    f"accept by {due}" if due else "please accept") + (f" ({count} reports)" if count > 1 else "")
            body = prefix + body
        case "incident_unrouted":
            body = "不在任何网格内，请指派网格" if zh else "Outside every grid; please assign a grid"
        case "life_safety_created":
            grid = (context.area_zh if zh else context.area_en) if payload.get("routed") else None
            if zh:
                body = f"危及生命安全的隐患，已派往 {grid}" if grid else "危及生命安全的隐患，尚未派发"
            else:
                body = (f"Life-threatening hazard, sent to {grid}" if grid
                        else "Life-threatening hazard, not yet assigned")
        case "report_accepted":
            body = "你上报的隐患已受理" if zh else "Your report was accepted"
        case "report_resolved":
            points = payload.get("points")
            if zh:
                body = "已处理" + (f"，+{points} 积分" if points else "")
            else:
                body = "Fixed" + (f", +{points} points" if points else "")
        case "report_rejected":
            reason = _REJECT_REASONS.get(payload.get("reason", ""), ("", ""))[0 if zh else 1]
            note = payload.get("note") or ""
            detail = "；".join(x for x in (reason, note) if x) if zh else "; ".join(x for x in (reason, note) if x)
            body = (f"未采纳：{detail}" if detail else "未采纳") if zh else (
                f"Not accepted: {detail}" if detail else "Not accepted")
        case "report_merged":
            body = f"已与同一隐患合并（{count} 人上报）" if zh else f"Merged with the same hazard ({count} reports)"
        case "life_safety_unaccepted":
            minutes = payload.get("minutes", 15)
            body = f"危及生命安全，{minutes} 分钟仍未受理，请立即处理" if zh else \
                f"Life-threatening and still not accepted after {minutes} minutes; act now"
        case "incident_escalated":
            stage = _STAGES.get(payload.get("stage", ""), ("处理", "handled"))
            body = f"超时未{stage[0]}，请督办" if zh else f"Overdue: not {stage[1]} in time; please follow up"
        case _:
            body = ""
    return title, body


def message(context: NotificationContext, *, image_url: str | None = None) -> dict[str, Any]:
    """The push payload: zh-CN text, the English beside it (the app shows the member's language)."""
    title_zh, body_zh = _texts(context, "zh-CN")
    title_en, body_en = _texts(context, "en")
    incident = context.incident_id
    return {
        "v": 1, "event": context.event, "incident_id": incident, "notification_id": context.id,
        "title": title_zh, "body": body_zh, "en": {"title": title_en, "body": body_en},
        "tag": f"incident-{incident}" if incident is not None else f"notification-{context.id}",
        "url": f"/#/incidents/{incident}" if incident is not None else "/",
        "urgent": bool(context.life_safety), **({"image": image_url} if image_url else {}),
    }


def minimal_message(context: NotificationContext) -> dict[str, Any]:
    """What is sent again after a 413: no texts, the app fetches the details when it is tapped."""
    full = message(context)
    return {k: full[k] for k in ("v", "event", "incident_id", "notification_id", "tag", "url", "urgent")}


def _text_slots(payload: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    slots = [(payload, "body"), (payload, "title")]
    if isinstance(payload.get("en"), dict):
        slots += [(payload["en"], "body"), (payload["en"], "title")]
    return slots


def _dumps(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def encode(payload: dict[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> bytes:
    """JSON within `limit` bytes; too long, every text longer than a common cap is cut there with an ellipsis.

    One cap for all texts (the largest that fits, found by bisection) shortens the Chinese and English
    bodies — which both carry a long note — evenly, and leaves short titles whole.
    """
    data = _dumps(payload)
    if len(data) <= limit:
        return data
    originals = [(holder, key, holder.get(key) or "") for holder, key in _text_slots(payload)]

    def capped(cap: int) -> bytes:
        for holder, key, text in originals:
            holder[key] = text if len(text) <= cap else text[:cap].rstrip(ELLIPSIS) + ELLIPSIS
        return _dumps(payload)

    low, high, best = 0, max(len(text) for _, _, text in originals), None
    while low <= high:
        middle = (low + high) // 2
        if len(capped(middle)) <= limit:
            best, low = middle, middle + 1
        else:
            high = middle - 1
    if best is None:
        raise ValueError("payload cannot be shortened below the limit")
    return capped(best)
