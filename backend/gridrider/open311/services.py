"""gridrider as GeoReport v2 sees it: categories are services, incidents are service requests, incident
events are status updates (mySociety's servicerequestupdates extension).

What leaves without a key is what a stranger may know: the category, a position rounded to about
100 m, the state and the team's area — never a note, a photo or anything about a reporter (street
photos and notes name people and places). A key holder (a city system) gets exact positions, the
origin report's note and signed, expiring photo links, within its own area.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gridrider.db.open311 import ServiceRequestRow, UpdateRow
from gridrider.images.urls import signed_photo_path

SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
BASE_PATH = "/open311/v2"
# About 100 m: 0.001° is 111 m of latitude and 83 m of longitude at Fuxin's 42°N.
PUBLIC_DECIMALS = 3
OPEN_STATES = frozenset({"unrouted", "dispatched", "accepted"})
# Incident events that change what a city system should show (transfers and deadline marks do not).
UPDATE_KINDS = ("created", "dispatch", "accept", "resolve", "close", "reject", "merge", "reopen", "uphold_appeal")
# The one attribute every service takes: the caller's own id, which makes a retried POST file nothing new.
CLIENT_ID_ATTRIBUTE = "client_id"


def _pick(lang: str, zh: str, en: str | None) -> str:
    return en if lang == "en" and en else zh


_GROUPS = {
    "critical": ("紧急隐患", "critical hazards"),
    "high": ("高风险隐患", "high-risk hazards"),
    "medium": ("一般隐患", "medium hazards"),
    "low": ("轻微隐患", "minor hazards"),
}
_LIFE_SAFETY = ("危及生命安全，1 小时内受理", "life-safety: accepted within 1 hour")
_ORDINARY = ("24 小时内受理", "accepted within 24 hours")


def service(category: dict[str, Any], lang: str) -> dict[str, Any]:
    """One category as a GeoReport service.

    `type` is `batch`: the spec's word for "a token comes back and resolves to the id later", which
    is what happens here — the incident is only known once the pipeline has routed and merged it.
    """
    name = _pick(lang, category["name_zh"], category["name_en"])
    other = category["name_en"] if lang != "en" else category["name_zh"]
    promise = _pick(lang, *(_LIFE_SAFETY if category["life_safety"] else _ORDINARY))
    return {
        "service_code": category["code"],
        "service_name": name,
        "description": f"{name}（{other}）：{promise}" if lang != "en" else f"{name} ({other}): {promise}",
        "metadata": True,
        "type": "batch",
        "keywords": ", ".join(dict.fromkeys([category["name_zh"], category["name_en"], category["code"]])),
        "group": _pick(lang, *_GROUPS[category["severity"]]),
    }


def definition(code: str, lang: str) -> dict[str, Any]:
    return {
        "service_code": code,
        "attributes": [{
            "variable": True,
            "code": CLIENT_ID_ATTRIBUTE,
            "datatype": "string",
            "required": False,
            "datatype_description": _pick(lang, "1 到 100 个字符，由贵方系统生成，每个请求唯一。",
                                          "1 to 100 characters, made by your system, one per request."),
            "order": 1,
            "description": _pick(lang, "贵方系统自己的请求编号：用同一编号重发，不会重复立案。",
                                 "Your system's own id for the request: resending with the same id files nothing new."),
            "values": [],
        }],
    }


def discovery(*, public_url: str, contact: str, changeset: dt.datetime, lang: str) -> dict[str, Any]:
    """`changeset` moves when the services do (the latest category edit), so clients know to reload them."""
    return {
        "changeset": changeset,
        "contact": contact,
        "key_service": _pick(lang, "API 密钥由本系统管理员签发（gridrider apikey create）。",
                             "API keys are issued by this deployment's operators (gridrider apikey create)."),
        "endpoints": [{
            "specification": SPECIFICATION,
            "url": f"{public_url}{BASE_PATH}",
            "changeset": changeset,
            "type": "production",
            "formats": ["text/xml", "application/json"],
        }],
    }


_STATE_NOTES = {
    "unrouted": ("已收到，等待派单。", "Received; waiting to be dispatched."),
    "dispatched": ("已派至网格，等待受理。", "Dispatched to a grid team; waiting to be accepted."),
    "accepted": ("网格员已受理，正在处理。", "Accepted by the grid team; being handled."),
    "resolved": ("已处理完毕。", "Resolved."),
    "closed": ("已办结。", "Closed."),
}
_REJECT_NOTES = {
    "not_a_hazard": ("经核实不构成隐患。", "Checked: not a hazard."),
    "cannot_locate": ("无法找到该位置。", "The place could not be found."),
    "out_of_scope": ("不属于本平台处理范围。", "Outside what this service handles."),
}


def status_notes(state: str, *, reject_reason: str | None, merged_into_id: int | None, lang: str) -> str:
    """Why the request is where it is, from fixed texts only (a team's free-text note may name people)."""
    if state == "merged":
        return _pick(lang, f"与请求 {merged_into_id} 重复，已合并。", f"Duplicate of request {merged_into_id}.")
    if state == "rejected":
        return _pick(lang, *_REJECT_NOTES.get(reject_reason or "", ("已驳回。", "Rejected.")))
    return _pick(lang, *_STATE_NOTES[state])


def _photo_url(public_url: str, secret: str, photo_id: int | None, now: dt.datetime) -> str | None:
    return f"{public_url}{signed_photo_path(secret, photo_id, 'display', now)}" if photo_id else None


def service_request(row: ServiceRequestRow, *, lang: str, keyed: bool, public_url: str, secret: str,
                    now: dt.datetime) -> dict[str, Any]:
    name = _pick(lang, row.category_zh, row.category_en)
    lat, lon = (row.lat, row.lon) if keyed else (round(row.lat, PUBLIC_DECIMALS), round(row.lon, PUBLIC_DECIMALS))
    description = name
    if keyed and row.origin_note:
        description = f"{name}：{row.origin_note}" if lang != "en" else f"{name}: {row.origin_note}"
    return {
        "service_request_id": row.id,
        "status": "open" if row.state in OPEN_STATES else "closed",
        "status_notes": status_notes(row.state, reject_reason=row.reject_reason, merged_into_id=row.merged_into_id,
                                     lang=lang),
        "service_name": name,
        "service_code": row.category,
        "description": description,
        "agency_responsible": _pick(lang, row.area_zh, row.area_en) if row.area_zh else None,
        "service_notice": None,
        "requested_datetime": row.created_at,
        "updated_datetime": row.updated_at,
        # The due time of the stage the incident is in; none once it is no longer worked on.
        "expected_datetime": row.expected_at if row.state in OPEN_STATES else None,
        "address": None,
        "address_id": None,
        "zipcode": None,
        "lat": lat,
        "long": lon,
        "media_url": _photo_url(public_url, secret, row.photo_id, now) if keyed else None,
    }


# event kind → (status, zh, en); mySociety's statuses (OPEN, CLOSED and its extended set).
_UPDATES = {
    "dispatch": ("ACTION_SCHEDULED", "已派至网格。", "Dispatched to a grid team."),
    "accept": ("IN_PROGRESS", "网格员已受理。", "Accepted by the grid team."),
    "resolve": ("FIXED", "已处理完毕。", "Resolved."),
    "close": ("CLOSED", "已办结。", "Closed."),
    "merge": ("DUPLICATE", "与其他请求重复，已合并。", "Duplicate of another request."),
    "reopen": ("ACTION_SCHEDULED", "已重新派至网格。", "Reopened and sent back to the grid team."),
    "uphold_appeal": ("ACTION_SCHEDULED", "复核后重新派至网格。", "Reviewed and sent back to the grid team."),
}
_REJECT_STATUS = {"out_of_scope": "NOT_COUNCILS_RESPONSIBILITY"}


def _update_status(kind: str, data: dict[str, Any], lang: str) -> tuple[str, str]:
    if kind == "created":
        if data.get("route") == "unrouted":
            return "OPEN", _pick(lang, *_STATE_NOTES["unrouted"])
        return "ACTION_SCHEDULED", _pick(lang, *_STATE_NOTES["dispatched"])
    if kind == "reject":
        reason = str(data.get("reason") or "")
        return (_REJECT_STATUS.get(reason, "NO_FURTHER_ACTION"),
                _pick(lang, *_REJECT_NOTES.get(reason, ("已驳回。", "Rejected."))))
    if kind == "merge":
        into = data.get("into")
        status, zh, en = _UPDATES[kind]
        return status, _pick(lang, f"与请求 {into} 重复，已合并。", f"Duplicate of request {into}.") if into else \
            _pick(lang, zh, en)
    status, zh, en = _UPDATES[kind]
    return status, _pick(lang, zh, en)


def update(row: UpdateRow, *, lang: str, keyed: bool, public_url: str, secret: str, now: dt.datetime
           ) -> dict[str, Any]:
    status, description = _update_status(row.kind, row.data, lang)
    return {
        "update_id": row.id,
        "service_request_id": row.incident_id,
        "status": status,
        "updated_datetime": row.occurred_at,
        "description": description,
        "media_url": _photo_url(public_url, secret, row.photo_id, now) if keyed else None,
    }
