"""China's working-day calendar and the complex-case resolve deadline (DESIGN §2c), on real dates."""

from __future__ import annotations

import datetime as dt

import pytest

from gridrider.clock import SHANGHAI
from gridrider.domain.workdays import (
    CalendarFileError,
    WorkCalendar,
    complex_resolve_due,
    missing_year_warning,
    package_knows_year,
    parse_calendar_csv,
)

D = dt.date


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SHANGHAI)


# The State Council's 2027 arrangement is not published in the installed package; a file admins would load.
NEW_YEAR_2027 = {D(2027, 1, 1): False}


def test_the_worked_example_of_design_2c() -> None:
    """Accepted Mon 2026-11-02 10:00 → day 1 is Tue 11-03 → due Mon 2026-11-23 18:00."""
    due = complex_resolve_due(at(2026, 11, 2, 10, 0))
    assert due == at(2026, 11, 23, 18, 0)
    assert due.tzinfo is not None and due.utcoffset() == dt.timedelta(hours=8)


def test_the_acceptance_day_is_the_shanghai_day_not_the_utc_one() -> None:
    # 2026-11-02 01:00 in Shanghai is still Sunday 11-01 in UTC: the Shanghai day (Monday) counts.
    accepted = at(2026, 11, 2, 1, 0).astimezone(dt.UTC)
    assert accepted.date() == D(2026, 11, 1)
    assert complex_resolve_due(accepted) == at(2026, 11, 23, 18, 0)
    # Accepted late on a Friday: day 1 is the next Monday.
    assert complex_resolve_due(at(2026, 11, 6, 23, 59)) == at(2026, 11, 27, 18, 0)
    # Accepted on a Saturday: day 1 is Monday too.
    assert complex_resolve_due(at(2026, 11, 7, 9, 0)) == at(2026, 11, 27, 18, 0)


def test_the_package_has_the_official_2026_national_day_arrangement() -> None:
    """国办发明电〔2025〕7号: 国庆节 10月1日（周四）至7日（周三）放假调休，共7天；9月20日（周日）、10月10日（周六）上班.
    中秋节 9月25日（周五）至27日（周日）放假. Oct 8 is an ordinary working Thursday."""
    calendar = WorkCalendar()
    assert package_knows_year(2026)
    assert [calendar.is_workday(D(2026, 10, d)) for d in range(1, 13)] == [
        False, False, False, False, False, False, False,  # Oct 1–7 off
        True, True,  # Thu 8, Fri 9
        True,  # Sat 10: the adjusted working day
        False,  # Sun 11
        True,  # Mon 12
    ]
    assert calendar.is_workday(D(2026, 9, 20))  # a working Sunday
    assert not calendar.is_workday(D(2026, 9, 25))  # Mid-Autumn Friday
    assert not calendar.is_workday(D(2026, 10, 17))  # an ordinary Saturday


def test_a_clock_across_national_day_2026() -> None:
    # Accepted Tue 09-29: 1 = Wed 09-30, (Oct 1–7 off), 2 = Thu 10-08, 3 = Fri 10-09, 4 = Sat 10-10 (make-up),
    # 5–9 = Oct 12–16, 10–14 = Oct 19–23, 15 = Mon 10-26.
    assert complex_resolve_due(at(2026, 9, 29, 15, 0)) == at(2026, 10, 26, 18, 0)
    # Accepted during the holiday: 1 = Thu 10-08, 2 = Fri 10-09, 3 = Sat 10-10 (make-up), 4–8 = Oct 12–16,
    # 9–13 = Oct 19–23, 14 = Mon 10-26, 15 = Tue 10-27.
    assert complex_resolve_due(at(2026, 10, 3, 11, 0)) == at(2026, 10, 27, 18, 0)
    # Without the make-up Saturday (an override saying it is off) the due moves a day.
    calendar = WorkCalendar({D(2026, 10, 10): False})
    assert calendar.complex_resolve_due(at(2026, 10, 3, 11, 0)) == at(2026, 10, 28, 18, 0)


def test_an_override_beats_the_package() -> None:
    calendar = WorkCalendar({D(2026, 11, 3): False, D(2026, 11, 7): True})
    assert not calendar.is_workday(D(2026, 11, 3))  # a Tuesday made a holiday
    assert calendar.is_workday(D(2026, 11, 7))  # a Saturday made a working day
    assert not calendar.is_workday(D(2026, 10, 1))  # the package still decides the rest
    # Worked example with both: one day lost, one gained → same due.
    assert calendar.complex_resolve_due(at(2026, 11, 2, 10, 0)) == at(2026, 11, 23, 18, 0)
    assert WorkCalendar({D(2026, 11, 3): False}).complex_resolve_due(at(2026, 11, 2, 10, 0)) == at(2026, 11, 24, 18, 0)


def test_a_year_the_package_does_not_know_is_monday_to_friday_until_overrides_are_loaded() -> None:
    assert not package_knows_year(2027)
    bare = WorkCalendar()
    assert not bare.knows_year(2027) and bare.year_basis(2027) == "weekdays"
    assert bare.is_workday(D(2027, 1, 1))  # a Friday, and nobody said otherwise
    assert not bare.is_workday(D(2027, 1, 2))
    # Mid-December 2026 (package) into 2027 (Mon–Fri): accepted Tue 12-15 → 16,17,18 · 21–25 · 28–31 (12)
    # · Fri 01-01 (13) · Mon 01-04 (14) · Tue 01-05 (15).
    assert bare.complex_resolve_due(at(2026, 12, 15, 10, 0)) == at(2027, 1, 5, 18, 0)
    loaded = WorkCalendar(NEW_YEAR_2027)
    assert loaded.knows_year(2027) and loaded.year_basis(2027) == "overrides"
    assert loaded.complex_resolve_due(at(2026, 12, 15, 10, 0)) == at(2027, 1, 6, 18, 0)
    # An adjusted working Saturday in the loaded year pulls it back.
    weekend = WorkCalendar({**NEW_YEAR_2027, D(2027, 1, 2): True})
    assert weekend.complex_resolve_due(at(2026, 12, 15, 10, 0)) == at(2027, 1, 5, 18, 0)


def test_the_november_warning_asks_for_next_years_calendar() -> None:
    warning = missing_year_warning(at(2026, 11, 1, 0, 0))
    assert warning is not None
    assert "2027" in warning and "gridrider calendar load FILE" in warning
    zh, _, en = warning.partition(" / ")
    assert "节假日" in zh and "holiday calendar" in en  # Chinese first, English after
    assert missing_year_warning(at(2026, 10, 31, 23, 59)) is None  # still October in Shanghai
    assert missing_year_warning(at(2026, 10, 31, 16, 0).astimezone(dt.UTC)) is None
    assert missing_year_warning(at(2026, 11, 1, 0, 0).astimezone(dt.UTC)) is not None  # Oct 31 16:00 UTC
    assert missing_year_warning(at(2026, 12, 31, 23, 0)) is not None
    assert WorkCalendar(NEW_YEAR_2027).missing_year_warning(at(2026, 11, 1, 0, 0)) is None
    assert missing_year_warning(at(2025, 11, 20, 9, 0)) is None  # 2026 is in the package


def test_a_year_in_progress_that_nobody_knows_warns_all_year() -> None:
    warning = missing_year_warning(at(2027, 3, 1, 9, 0))
    assert warning is not None and "2027" in warning
    assert WorkCalendar(NEW_YEAR_2027).missing_year_warning(at(2027, 3, 1, 9, 0)) is None


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        complex_resolve_due(dt.datetime(2026, 11, 2, 10, 0))


def test_the_calendar_file_format() -> None:
    text = ("\ufeff# 2027 State Council arrangement (example)\n\n"
            "2027-01-01,holiday,元旦\n"
            "2027-01-02 , Workday , 调休上班, with a comma\n"
            "2027-02-06,holiday\n")
    assert parse_calendar_csv(text) == [
        (D(2027, 1, 1), False, "元旦"),
        (D(2027, 1, 2), True, "调休上班, with a comma"),
        (D(2027, 2, 6), False, None),
    ]


@pytest.mark.parametrize(("line", "reason"), [
    ("2027-02-30,holiday", "not a date"),
    ("20270101,holiday", "not a date"),
    ("2027-01-05,day-off", "'workday' or 'holiday'"),
    ("2027-01-05", "expected YYYY-MM-DD"),
    ("2027-01-01,workday", "already listed on line 2"),
])
def test_a_bad_line_is_refused_with_its_number(line: str, reason: str) -> None:
    with pytest.raises(CalendarFileError, match=reason) as refused:
        parse_calendar_csv(f"# header\n2027-01-01,holiday\n\n{line}\n2027-01-06,holiday\n")
    assert refused.value.line_no == 4
    assert str(refused.value).startswith("line 4: ")
