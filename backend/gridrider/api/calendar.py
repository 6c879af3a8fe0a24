"""The working-day calendar's coverage, for admins: which years are known, and the yearly warning."""

from __future__ import annotations

from typing import Literal

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency

from gridrider.api.auth import roles
from gridrider.clock import SHANGHAI
from gridrider.db.calendar import work_calendar
from gridrider.services import Services


class YearCoverage(msgspec.Struct, frozen=True):
    year: int
    basis: Literal["package", "overrides", "weekdays"]  # weekdays: Monday–Friday only, holidays unknown


class CalendarStatus(msgspec.Struct, frozen=True):
    years: list[YearCoverage]
    # From November on, when next year's official arrangement is not loaded (`gridrider calendar load FILE`).
    warning: str | None


class CalendarController(Controller):
    path = "/api/v1/calendar"

    @get("/status", operation_id="calendarStatus", opt=roles("admin"))
    async def status(self, services: NamedDependency[Services]) -> CalendarStatus:
        calendar = await work_calendar(services.pool)
        now = services.clock.now()
        year = now.astimezone(SHANGHAI).year
        return CalendarStatus(years=[YearCoverage(y, calendar.year_basis(y)) for y in (year, year + 1)],
                              warning=calendar.missing_year_warning(now))
