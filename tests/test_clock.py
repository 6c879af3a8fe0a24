import datetime as dt

import pytest

from gridrider.clock import SHANGHAI, ManualClock, format_local, local_day, month_bounds


def test_a_shanghai_day_starts_at_16_00_utc():
    assert local_day(dt.datetime(2026, 11, 26, 15, 59, tzinfo=dt.UTC)) == dt.date(2026, 11, 26)
    assert local_day(dt.datetime(2026, 11, 26, 16, 0, tzinfo=dt.UTC)) == dt.date(2026, 11, 27)


def test_month_bounds_are_shanghai_midnights():
    start, end = month_bounds(2026, 12)
    assert start == dt.datetime(2026, 11, 30, 16, 0, tzinfo=dt.UTC)
    assert end == dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)


def test_times_shown_to_people_are_shanghai_time():
    when = dt.datetime(2026, 11, 26, 6, 5, tzinfo=dt.UTC)
    assert format_local(when) == "11月26日 14:05"
    assert format_local(when, "en") == "26 Nov 14:05"


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(dt.datetime(2026, 11, 26, 2, 0, tzinfo=dt.UTC))
    assert clock.now() == clock.now()
    clock.advance(hours=25)
    assert clock.now().astimezone(SHANGHAI).day == 27
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(dt.datetime(2026, 1, 1))
