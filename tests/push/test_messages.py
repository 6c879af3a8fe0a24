"""What a phone shows for each alert, how it is sent (TTL, Urgency, Topic, size) and how replies are read.

Pure: NotificationContext values are built here, no database.
"""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest

from gridrider.clock import SHANGHAI
from gridrider.db.notifications import NotificationContext, PendingPush
from gridrider.domain import notifications
from gridrider.domain.notifications import (
    ELLIPSIS,
    EVENTS,
    MAX_PAYLOAD_BYTES,
    REPORTER_EVENTS,
    delivery_options,
    encode,
    message,
    minimal_message,
    topic_of,
)
from gridrider.jobs.notify import MAX_DELIVERY_ATTEMPTS, classify
from gridrider.push.sender import PushReply

NOW = dt.datetime(2026, 11, 26, 10, 0, tzinfo=SHANGHAI)
DUE = dt.datetime(2026, 11, 26, 14, 5, tzinfo=SHANGHAI).astimezone(dt.UTC)  # stored in UTC, shown in Shanghai
SEVERITIES = ("low", "medium", "high", "critical", None)

GARBAGE = {"category": "garbage_pileup", "category_zh": "垃圾堆积", "category_en": "piled garbage", "severity": "low",
           "life_safety": False}
MANHOLE = {"category": "missing_manhole_cover", "category_zh": "井盖缺失或破损",
           "category_en": "missing or broken manhole cover", "severity": "critical", "life_safety": True}


def context(event: str, payload: dict | None = None, **changes) -> NotificationContext:
    values = {
        "id": 501, "event": event, "incident_id": 42, "audience": {}, "payload": payload or {}, "created_at": NOW,
        **GARBAGE, "report_count": 1, "accept_due_at": DUE,
        "place_zh": "城南社区", "place_en": "Chengnan Community", "area_zh": "城南三网格", "area_en": "Chengnan Grid 3",
    }
    return NotificationContext(**{**values, **changes})


def shown(ctx: NotificationContext, **kwargs) -> tuple[dict, dict]:
    """(the payload, its English texts)."""
    body = message(ctx, **kwargs)
    return body, body["en"]


# ── titles ─────────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("event", EVENTS)
def test_title_is_category_and_place_in_both_languages(event):
    body, en = shown(context(event))
    assert body["title"] == "垃圾堆积 · 城南社区"
    assert en["title"] == "piled garbage · Chengnan Community"
    assert body["event"] == event and body["v"] == 1 and body["notification_id"] == 501
    assert body["incident_id"] == 42 and body["tag"] == "incident-42" and body["url"] == "/#/incidents/42"
    assert body["body"] and en["body"] and body["body"] != en["body"]


def test_title_without_a_place_is_the_category_alone_and_falls_back_to_the_code():
    body, en = shown(context("incident_unrouted", place_zh=None, place_en=None))
    assert body["title"] == "垃圾堆积" and en["title"] == "piled garbage"
    body, en = shown(context("incident_unrouted", category_zh=None, category_en=None, place_zh=None, place_en=None))
    assert body["title"] == "garbage_pileup" and en["title"] == "garbage_pileup"


def test_a_notification_without_an_incident_is_tagged_by_itself_and_opens_the_app():
    body = message(context("report_accepted", incident_id=None))
    assert body["incident_id"] is None and body["tag"] == "notification-501" and body["url"] == "/"


# ── bodies ─────────────────────────────────────────────────────────────────────────────────────

def test_reached_grid_names_the_deadline_in_shanghai_time():
    body, en = shown(context("incident_reached_grid", {"reason": "created"}))
    assert body["body"] == "新隐患，请在 11月26日 14:05 前受理"
    assert en["body"] == "New hazard; accept by 26 Nov 14:05"
    assert body["urgent"] is False and "image" not in body


def test_reached_grid_counts_reporters_only_when_more_than_one():
    body, en = shown(context("incident_reached_grid", report_count=3))
    assert body["body"].endswith("前受理（3 人上报）") and en["body"].endswith(" (3 reports)")
    body, en = shown(context("incident_reached_grid", report_count=1))
    assert "人上报" not in body["body"] and "reports" not in en["body"]


def test_reached_grid_without_a_deadline_still_asks_to_accept():
    body, en = shown(context("incident_reached_grid", accept_due_at=None))
    assert body["body"] == "新隐患，请受理" and en["body"] == "New hazard; please accept"


def test_reached_grid_of_a_life_safety_hazard_says_so_and_is_urgent():
    body, en = shown(context("incident_reached_grid", **MANHOLE))
    assert body["body"].startswith("危及生命安全，请在 11月26日 14:05") and body["urgent"] is True
    assert en["body"].startswith("Life-threatening hazard; accept by")
    assert body["title"] == "井盖缺失或破损 · 城南社区"


@pytest.mark.parametrize(("reason", "zh", "en"), [
    ("dispatched", "已派发：", "Dispatched: "),
    ("transferred", "转派：", "Transferred: "),
    ("reopened", "重新打开：", "Reopened: "),
    ("appeal_upheld", "申诉成立：", "Appeal upheld: "),
])
def test_reached_grid_reasons_prefix_the_body(reason, zh, en):
    body, english = shown(context("incident_reached_grid", {"reason": reason}, report_count=2))
    assert body["body"] == f"{zh}新隐患，请在 11月26日 14:05 前受理（2 人上报）"
    assert english["body"] == f"{en}New hazard; accept by 26 Nov 14:05 (2 reports)"


def test_created_has_no_prefix():
    assert message(context("incident_reached_grid", {"reason": "created"}))["body"].startswith("新隐患")


def test_unrouted_asks_for_a_grid():
    body, en = shown(context("incident_unrouted", accept_due_at=None))
    assert body["body"] == "不在任何网格内，请指派网格" and en["body"] == "Outside every grid; please assign a grid"


def test_life_safety_created_names_the_grid_when_routed():
    body, en = shown(context("life_safety_created", {"routed": True}, **MANHOLE))
    assert body["body"] == "危及生命安全的隐患，已派往 城南三网格"
    assert en["body"] == "Life-threatening hazard, sent to Chengnan Grid 3"
    assert body["urgent"] is True


def test_life_safety_created_not_routed_says_not_yet_assigned():
    ctx = context("life_safety_created", {"routed": False}, **MANHOLE, area_zh="彰武镇", area_en="Zhangwu Town")
    body, en = shown(ctx)
    assert body["body"] == "危及生命安全的隐患，尚未派发"
    assert en["body"] == "Life-threatening hazard, not yet assigned"
    assert "彰武镇" not in body["body"] and "Zhangwu" not in en["body"]


def test_report_accepted():
    body, en = shown(context("report_accepted"))
    assert body["body"] == "你上报的隐患已受理" and en["body"] == "Your report was accepted"


def test_report_resolved_with_points_and_after_photo():
    image = "https://gridrider.example/api/v1/photos/9/thumb?sig=abc"
    body, en = shown(context("report_resolved", {"points": 12, "photo_id": 9}), image_url=image)
    assert body["body"] == "已处理，+12 积分" and en["body"] == "Fixed, +12 points"
    assert body["image"] == image


def test_report_resolved_without_points_or_photo():
    body, en = shown(context("report_resolved"))
    assert body["body"] == "已处理" and en["body"] == "Fixed" and "image" not in body
    assert "积分" not in message(context("report_resolved", {"points": 0}))["body"]


@pytest.mark.parametrize(("reason", "zh", "en"), [
    ("not_a_hazard", "不属于隐患", "not a hazard"),
    ("cannot_locate", "现场找不到", "could not be found on site"),
    ("out_of_scope", "不在受理范围", "outside what we handle"),
])
def test_report_rejected_turns_the_reason_into_words_and_adds_the_note(reason, zh, en):
    body, english = shown(context("report_rejected", {"reason": reason, "note": "已有人清理"}))
    assert body["body"] == f"未采纳：{zh}；已有人清理"
    assert english["body"] == f"Not accepted: {en}; 已有人清理"
    assert reason not in body["body"] and reason not in english["body"]  # never the bare code


def test_report_rejected_with_only_a_note_or_nothing():
    body, en = shown(context("report_rejected", {"note": "照片看不清"}))
    assert body["body"] == "未采纳：照片看不清" and en["body"] == "Not accepted: 照片看不清"
    body, en = shown(context("report_rejected"))
    assert body["body"] == "未采纳" and en["body"] == "Not accepted"


def test_report_merged_counts_the_reporters():
    body, en = shown(context("report_merged", report_count=4))
    assert body["body"] == "已与同一隐患合并（4 人上报）" and en["body"] == "Merged with the same hazard (4 reports)"


@pytest.mark.parametrize(("stage", "zh", "en"), [
    ("dispatch", "超时未派发，请督办", "Overdue: not dispatched in time; please follow up"),
    ("accept", "超时未受理，请督办", "Overdue: not accepted in time; please follow up"),
    ("close", "超时未办结，请督办", "Overdue: not closed in time; please follow up"),
    ("something_new", "超时未处理，请督办", "Overdue: not handled in time; please follow up"),
])
def test_incident_escalated_names_the_missed_stage(stage, zh, en):
    body, english = shown(context("incident_escalated", {"stage": stage}))
    assert body["body"] == zh and english["body"] == en


# ── how it is sent ─────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("life_safety", [False, True, None])
def test_every_event_and_severity_has_a_positive_ttl_and_a_valid_urgency(event, severity, life_safety):
    ttl_s, urgency = delivery_options(context(event, severity=severity, life_safety=life_safety))
    assert isinstance(ttl_s, int) and ttl_s > 0
    assert urgency in ("very-low", "low", "normal", "high")


@pytest.mark.parametrize("event", sorted(set(EVENTS) - REPORTER_EVENTS))
def test_life_safety_is_high_urgency(event):
    ttl_s, urgency = delivery_options(context(event, **MANHOLE))
    assert urgency == "high" and 0 < ttl_s <= 24 * 3600
    _, urgency = delivery_options(context(event, severity="critical", life_safety=False))
    assert urgency == "high"


@pytest.mark.parametrize("event", sorted(set(EVENTS) - REPORTER_EVENTS))
def test_other_hazards_are_normal_urgency_and_wait_longer_when_less_severe(event):
    ttls = []
    for severity in ("high", "medium", "low"):
        ttl_s, urgency = delivery_options(context(event, severity=severity))
        assert urgency == "normal"
        ttls.append(ttl_s)
    assert ttls == sorted(ttls) and ttls[0] < ttls[-1]


@pytest.mark.parametrize("event", sorted(REPORTER_EVENTS))
def test_reporter_events_are_low_urgency_even_for_life_safety(event):
    for ctx in (context(event), context(event, **MANHOLE)):
        ttl_s, urgency = delivery_options(ctx)
        assert urgency == "low" and ttl_s > 0


@pytest.mark.parametrize("incident_id", [1, 42, 2**31 - 1, 2**63 - 1])
def test_topic_is_at_most_32_base64url_characters(incident_id):
    topic = topic_of(context("incident_reached_grid", incident_id=incident_id))
    assert topic is not None and re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic)


def test_no_topic_without_an_incident():
    assert topic_of(context("report_accepted", incident_id=None)) is None


# ── size ───────────────────────────────────────────────────────────────────────────────────────

def test_a_long_rejection_note_is_shortened_to_fit():
    ctx = context("report_rejected", {"reason": "not_a_hazard", "note": "隐" * 2000})
    full = message(ctx)
    data = encode(message(ctx))
    assert len(data) <= MAX_PAYLOAD_BYTES
    decoded = json.loads(data.decode("utf-8"))  # valid UTF-8, valid JSON
    assert decoded["body"].endswith(ELLIPSIS) and decoded["en"]["body"].endswith(ELLIPSIS)
    assert decoded["body"].startswith("未采纳：不属于隐患；隐")
    for key in ("v", "event", "incident_id", "notification_id", "tag", "url", "urgent"):
        assert decoded[key] == full[key], key
    assert decoded["title"] == full["title"] and decoded["en"]["title"] == full["en"]["title"]


def test_a_long_note_leaves_both_languages_readable():
    data = encode(message(context("report_rejected", {"reason": "not_a_hazard", "note": "隐" * 2000})))
    decoded = json.loads(data)
    assert decoded["en"]["body"].startswith("Not accepted: not a hazard; 隐")


def test_a_long_latin_note_is_shortened_too():
    data = encode(message(context("report_rejected", {"note": "x" * 5000})))
    decoded = json.loads(data)
    assert len(data) <= MAX_PAYLOAD_BYTES and decoded["body"].endswith(ELLIPSIS)
    assert decoded["url"] == "/#/incidents/42" and decoded["tag"] == "incident-42"


@pytest.mark.parametrize("limit", [400, 1000, 2999])
def test_encode_meets_any_limit_without_splitting_a_character(limit):
    data = encode(message(context("report_rejected", {"note": "隐患😀" * 1500})), limit)
    assert len(data) <= limit
    assert json.loads(data.decode("utf-8"))["incident_id"] == 42


@pytest.mark.parametrize("event", EVENTS)
def test_a_short_message_is_unchanged(event):
    full = message(context(event, {"reason": "cannot_locate", "note": "短", "points": 3, "stage": "accept"}))
    data = encode(full)
    assert json.loads(data) == full
    assert data == json.dumps(full, ensure_ascii=False, separators=(",", ":")).encode()
    assert len(data) <= MAX_PAYLOAD_BYTES


def test_minimal_message_has_no_texts_but_opens_the_incident():
    ctx = context("report_rejected", {"reason": "not_a_hazard", "note": "隐" * 2000}, **MANHOLE)
    minimal = minimal_message(ctx)
    assert not {"title", "body", "en", "image"} & minimal.keys()
    assert minimal["url"] == "/#/incidents/42" and minimal["tag"] == "incident-42" and minimal["incident_id"] == 42
    assert minimal["event"] == "report_rejected" and minimal["notification_id"] == 501 and minimal["urgent"] is True
    assert len(encode(minimal)) < 200
    assert notifications.minimal_message(context("report_accepted", incident_id=None))["tag"] == "notification-501"


# ── reading a push service's reply ─────────────────────────────────────────────────────────────

def pending(attempts: int = 0) -> PendingPush:
    return PendingPush(delivery_id=7, attempts=attempts, subscription_id=3, endpoint="https://push.example/x",
                       p256dh=b"\x04" + b"\x00" * 64, auth=b"\x00" * 16, vapid_key_id="k1")


@pytest.mark.parametrize(("reply", "state", "subscription"), [
    (PushReply(201), "sent", "ok"),
    (PushReply(404), "gone", "gone"),
    (PushReply(410), "gone", "gone"),
    (PushReply(500), "pending", "failed"),
    (PushReply(503, retry_after_s=30.0), "pending", "failed"),
    (PushReply(400), "failed", "resubscribe"),
    (PushReply(401), "failed", "resubscribe"),
    (PushReply(403), "failed", "resubscribe"),
    (PushReply(307), "failed", "failed"),
    (PushReply(None, "timeout"), "pending", "failed"),
    (PushReply(None, "address_refused: 127.0.0.1 is non-public"), "failed", "failed"),
    (PushReply(418), "failed", "failed"),
])
def test_classify(reply, state, subscription):
    outcome = classify(pending(), reply)
    assert (outcome.state, outcome.subscription, outcome.status) == (state, subscription, reply.status)
    assert (outcome.error is None) == (state == "sent")
    assert outcome.pending.delivery_id == 7


def test_classify_rate_limited_waits_for_retry_after():
    outcome = classify(pending(), PushReply(429, retry_after_s=3.0))
    assert outcome.state == "pending" and outcome.retry_after_s == 3.0 and outcome.subscription == "unchanged"


@pytest.mark.parametrize("reply", [PushReply(500), PushReply(429, retry_after_s=3.0), PushReply(None, "timeout")])
def test_classify_gives_up_on_the_last_allowed_attempt(reply):
    assert classify(pending(MAX_DELIVERY_ATTEMPTS - 2), reply).state == "pending"
    assert classify(pending(MAX_DELIVERY_ATTEMPTS - 1), reply).state == "failed"


def test_classify_success_on_the_last_attempt_is_still_sent():
    assert classify(pending(MAX_DELIVERY_ATTEMPTS - 1), PushReply(201)).state == "sent"
