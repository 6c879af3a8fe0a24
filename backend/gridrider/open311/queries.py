"""The GET filters of GeoReport v2 and their limits: W3C date ranges of at most 90 days (the last 90 by
default), at most 1,000 results, comma lists of ids, service codes and statuses.

Per the spec, an empty parameter means the same as an absent one.
"""

from __future__ import annotations

import datetime as dt
import re

import msgspec

from gridrider.clock import SHANGHAI
from gridrider.open311.errors import BadRequest

MAX_SPAN = dt.timedelta(days=90)
MAX_RESULTS = 1000
_MAX_ID = 2**63 - 1

# The W3C profile of ISO 8601 the spec names: a day, or a time with minutes (seconds and fractions
# optional) and a zone. A space where the zone's '+' should be is a '+' a client forgot to encode.
_W3 = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)(Z|[+\- ]\d{2}:\d{2}))?$")
OPEN_STATES = ("unrouted", "dispatched", "accepted")
CLOSED_STATES = ("resolved", "closed", "rejected", "merged")
STATUS_STATES = {"open": OPEN_STATES, "closed": CLOSED_STATES}


class Range(msgspec.Struct, frozen=True):
    start: dt.datetime
    end: dt.datetime


def _invalid_time(field: str) -> BadRequest:
    return BadRequest(field, "datetime_invalid", "时间格式不正确。")


def parse_w3(field: str, raw: str, *, end_of_day: bool = False) -> dt.datetime:
    """A W3C datetime; a bare day is that Asia/Shanghai day's start (or, for an end, its last instant)."""
    found = _W3.match(raw.strip())
    if not found:
        raise _invalid_time(field)
    day, time, zone = found.groups()
    # Far enough for any real query, near enough that a 90-day window around it stays a valid datetime.
    if not 1970 <= int(day[:4]) <= 2999:
        raise _invalid_time(field)
    try:
        if time is None:
            start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(0), tzinfo=SHANGHAI)
            return start + dt.timedelta(days=1, microseconds=-1) if end_of_day else start
        zone = "+00:00" if zone == "Z" else zone.replace(" ", "+")
        return dt.datetime.fromisoformat(f"{day}T{time}{zone}")
    except ValueError:  # 2026-02-30, 25:00, +99:00
        raise _invalid_time(field) from None


def date_range(start_raw: str | None, end_raw: str | None, now: dt.datetime) -> Range:
    """The spec's window: both given (≤ 90 days apart), one given (90 days from it), or the last 90 days."""
    start = parse_w3("start_date", start_raw) if start_raw else None
    end = parse_w3("end_date", end_raw, end_of_day=True) if end_raw else None
    if start is None and end is None:
        return Range(start=now - MAX_SPAN, end=now)
    if start is None:
        assert end is not None
        return Range(start=end - MAX_SPAN, end=end)
    if end is None:
        return Range(start=start, end=start + MAX_SPAN)
    if start > end:
        raise BadRequest("start_date", "date_range_reversed", "开始时间不能晚于结束时间。")
    if end - start > MAX_SPAN:
        raise BadRequest("end_date", "range_too_long", "时间范围不能超过 90 天。")
    return Range(start=start, end=end)


def comma_list(raws: list[str]) -> list[str]:
    """Values given as `a,b` and/or by repeating the parameter, trimmed, empties dropped, order kept."""
    return list(dict.fromkeys(part.strip() for raw in raws for part in raw.split(",") if part.strip()))


def parse_ids(raws: list[str]) -> list[int] | None:
    values = comma_list(raws)
    if not values:
        return None
    if len(values) > MAX_RESULTS:
        raise BadRequest("service_request_id", "too_long", f"最多 {MAX_RESULTS} 个 service_request_id。")
    ids = []
    for value in values:
        if not (value.isascii() and value.isdigit() and len(value) <= 19 and 1 <= int(value) <= _MAX_ID):
            raise BadRequest("service_request_id", "invalid", "service_request_id 须为正整数。")
        ids.append(int(value))
    return ids


def parse_statuses(raws: list[str]) -> list[str] | None:
    """The incident states the statuses cover; None for all."""
    values = [value.lower() for value in comma_list(raws)]
    if not values:
        return None
    if any(value not in STATUS_STATES for value in values):
        raise BadRequest("status", "invalid", "status 只能是 open 或 closed。")
    return [state for value in values for state in STATUS_STATES[value]]


def parse_codes(raws: list[str]) -> list[str] | None:
    values = comma_list(raws)
    if not values:
        return None
    if len(values) > 100 or any(len(value) > 64 for value in values):
        raise BadRequest("service_code", "invalid", "service_code 无效。")
    return values
