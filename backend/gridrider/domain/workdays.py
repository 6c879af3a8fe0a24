"""China's working-day calendar, for the resolve deadline of complex cases (DESIGN §2c).

Which days are working days, in order of precedence:

1. an admin-loaded override (`calendar_overrides`, loaded with `gridrider calendar load FILE`) —
   it wins over everything, including the package, so a late correction can be applied at once;
2. the `chinesecalendar` package, for the years it knows (State Council holidays and the adjusted
   working weekend days, 调休上班);
3. Monday–Friday, for a year nobody told us about.

A year counts as *known* when the package covers it or at least one override for it was loaded:
admins load a whole year's official arrangement at once (the holidays and the adjusted working
days), so any override in a year means someone has dealt with that year. Weekends need no row.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import Literal

import chinese_calendar

from gridrider.clock import SHANGHAI, local_day

COMPLEX_RESOLVE_WORKING_DAYS = 15
DAY_END = dt.time(18, 0)  # a working day ends at 18:00 Asia/Shanghai
WARNING_FROM_MONTH = 11  # from November 1 admins are asked for next year's calendar
_SEARCH_LIMIT_DAYS = 400  # 15 working days never take this long; more means overrides closed everything

YearBasis = Literal["package", "overrides", "weekdays"]


@functools.cache
def package_knows_year(year: int) -> bool:
    """Whether the installed `chinesecalendar` has the official arrangement for `year`."""
    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


class WorkCalendar:
    """Working days: overrides first, then `chinesecalendar`, then Monday–Friday."""

    def __init__(self, overrides: Mapping[dt.date, bool] | None = None) -> None:
        self._overrides: Mapping[dt.date, bool] = MappingProxyType(dict(overrides or {}))
        self._override_years = frozenset(day.year for day in self._overrides)

    @property
    def overrides(self) -> Mapping[dt.date, bool]:
        return self._overrides

    def is_workday(self, day: dt.date) -> bool:
        if day in self._overrides:
            return self._overrides[day]
        if package_knows_year(day.year):
            return chinese_calendar.is_workday(day)
        return day.weekday() < 5

    def knows_year(self, year: int) -> bool:
        """The package covers `year`, or overrides for it were loaded (see the module docstring)."""
        return package_knows_year(year) or year in self._override_years

    def year_basis(self, year: int) -> YearBasis:
        """What decides `year`'s working days apart from single overrides: the package, loaded overrides, or
        nothing but Monday–Friday."""
        if package_knows_year(year):
            return "package"
        if year in self._override_years:
            return "overrides"
        return "weekdays"

    def overrides_in_year(self, year: int) -> int:
        return sum(1 for day in self._overrides if day.year == year)

    def nth_workday_after(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day strictly after `day` (n ≥ 1)."""
        if n < 1:
            raise ValueError("n must be at least 1")
        current, found = day, 0
        for _ in range(_SEARCH_LIMIT_DAYS):
            current += dt.timedelta(days=1)
            if self.is_workday(current):
                found += 1
                if found == n:
                    return current
        raise ValueError(f"no {n} working days within {_SEARCH_LIMIT_DAYS} days after {day}: check the overrides")

    def complex_resolve_due(self, accepted_at: dt.datetime) -> dt.datetime:
        """18:00 Asia/Shanghai of the 15th working day, counting from the first working day after the
        (Asia/Shanghai) day of acceptance. Accepted Mon 2026-11-02 → day 1 Tue 11-03 → Mon 11-23 18:00."""
        if accepted_at.tzinfo is None:
            raise ValueError("accepted_at must be timezone-aware")
        due_day = self.nth_workday_after(local_day(accepted_at), COMPLEX_RESOLVE_WORKING_DAYS)
        return dt.datetime.combine(due_day, DAY_END, tzinfo=SHANGHAI)

    def missing_year_warning(self, now: dt.datetime) -> str | None:
        """A message for admins when working days are being guessed as Monday–Friday: from November 1
        (Asia/Shanghai) when next year is not known, and at any time when this year is not known."""
        today = local_day(now)
        missing = [year for year in (today.year, today.year + 1)
                   if not self.knows_year(year) and (year == today.year or today.month >= WARNING_FROM_MONTH)]
        if not missing:
            return None
        year = missing[0]
        return (
            f"{year} 年的法定节假日安排尚未载入，复杂案件的办结期限暂按周一至周五计算工作日。"
            f"请管理员按国务院办公厅发布的 {year} 年节假日安排，运行 `gridrider calendar load FILE` 载入。"
            f" / The official {year} holiday calendar is not loaded: working days for complex-case deadlines"
            f" are counted as Monday–Friday. An admin should load the State Council's {year} arrangement"
            f" with `gridrider calendar load FILE`."
        )

    def __repr__(self) -> str:
        return f"WorkCalendar({len(self._overrides)} overrides)"


def complex_resolve_due(accepted_at: dt.datetime, calendar: WorkCalendar | None = None) -> dt.datetime:
    """`WorkCalendar.complex_resolve_due` on `calendar` (the package and Monday–Friday alone if None)."""
    return (calendar or WorkCalendar()).complex_resolve_due(accepted_at)


def missing_year_warning(now: dt.datetime, calendar: WorkCalendar | None = None) -> str | None:
    """`WorkCalendar.missing_year_warning` on `calendar` (the package alone if None)."""
    return (calendar or WorkCalendar()).missing_year_warning(now)


# ── the file admins load: one day a line ─────────────────────────────────────────────────────────

CSV_KINDS = {"workday": True, "holiday": False}
CSV_FORMAT = "YYYY-MM-DD,workday|holiday[,note]"


class CalendarFileError(ValueError):
    """A line of a calendar file that cannot be loaded; the whole file is refused."""

    def __init__(self, line_no: int, message: str) -> None:
        super().__init__(f"line {line_no}: {message}")
        self.line_no = line_no


def parse_calendar_csv(text: str) -> list[tuple[dt.date, bool, str | None]]:
    """`YYYY-MM-DD,workday|holiday[,note]` lines; `#` comments and blank lines are skipped.

    Every line is checked; the first bad one raises `CalendarFileError` naming its line number, so a
    file is loaded whole or not at all. A day listed twice is refused too.
    """
    rows: list[tuple[dt.date, bool, str | None]] = []
    seen: dict[dt.date, int] = {}
    for line_no, raw in enumerate(text.removeprefix("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",", 2)]
        if len(fields) < 2:
            raise CalendarFileError(line_no, f"{line!r}: expected {CSV_FORMAT}")
        day_text, kind = fields[0], fields[1].lower()
        try:
            if len(day_text) != 10:
                raise ValueError(day_text)
            day = dt.date.fromisoformat(day_text)
        except ValueError:
            raise CalendarFileError(line_no, f"{day_text!r} is not a date (YYYY-MM-DD)") from None
        if kind not in CSV_KINDS:
            raise CalendarFileError(line_no, f"{fields[1]!r} must be 'workday' or 'holiday'")
        if day in seen:
            raise CalendarFileError(line_no, f"{day} is already listed on line {seen[day]}")
        seen[day] = line_no
        note = fields[2] if len(fields) == 3 and fields[2] else None
        rows.append((day, CSV_KINDS[kind], note))
    return rows
