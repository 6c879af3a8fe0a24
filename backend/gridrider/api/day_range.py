"""Inclusive Asia/Shanghai day ranges from `from`/`to` query parameters (dashboard, exports).

Defaults: `to` today (the injected clock's Shanghai day), `from` the first day of `to`'s month.
Bad dates → 422 `date_invalid`, days outside 2000–2099 → 422 `date_out_of_range`, `from` after
`to` → 422 `date_range_reversed`, more than 366 days → 422 `date_range_too_long`; each a field
error on the parameter concerned.
"""

from __future__ import annotations

import datetime as dt
import re

from gridrider.errors import FieldError, ValidationFailed, message_for

MAX_RANGE_DAYS = 366
# Beyond these, 00:00 of the day after `to` would overflow Python's dates (9999-12-31) or PostgreSQL's
# timestamptz would go below year 1 in UTC: a 422 instead of a 500, and no dashboard needs other years.
FIRST_DAY, LAST_DAY = dt.date(2000, 1, 1), dt.date(2099, 12, 31)
# Exactly YYYY-MM-DD in ASCII digits: date.fromisoformat alone would also take 20261126 or 2026-W48-4.
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class RangeInvalid(ValidationFailed):
    """A bad `from`/`to`; `code` says which rule it broke."""

    def __init__(self, code: str, field: str) -> None:
        # The field error carries the same code, so the API edge gives its text in the caller's language.
        super().__init__(code, errors=[FieldError(field, code, message_for(code, "zh-CN"))])
        self.code = code  # type: ignore[misc]  # per instance: one class, several precise reasons



def _day(raw: str, field: str) -> dt.date:
    if not _DAY.fullmatch(raw):
        raise RangeInvalid("date_invalid", field)
    try:
        day = dt.date.fromisoformat(raw)
    except ValueError:  # 2026-02-30, month 13
        raise RangeInvalid("date_invalid", field) from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise RangeInvalid("date_out_of_range", field)
    return day


def day_range(raw_from: str | None, raw_to: str | None, today: dt.date) -> tuple[dt.date, dt.date]:
    """The inclusive Asia/Shanghai days asked for, defaults filled in, rules checked."""
    given_first = _day(raw_from, "from") if raw_from is not None else None  # checked in reading order
    to = _day(raw_to, "to") if raw_to is not None else today
    first = given_first or to.replace(day=1)
    if first > to:
        raise RangeInvalid("date_range_reversed", "from")
    if (to - first).days + 1 > MAX_RANGE_DAYS:
        raise RangeInvalid("date_range_too_long", "to")
    return first, to
