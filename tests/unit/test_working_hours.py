"""Working hours: parsing, whether the team is in, and when the next shift starts (Asia/Shanghai)."""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from crm.working_hours import WorkingHours, WorkingHoursError, parse_days, parse_working_hours

SHANGHAI = ZoneInfo("Asia/Shanghai")  # UTC+8, no daylight saving


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in November 2026 (the 23rd is a Monday), Shanghai time, given in UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


def team(hours: str = "09:00-23:00", days: str = "mon-sun") -> WorkingHours:
    return parse_working_hours(hours, days, SHANGHAI)


# Parsing


def test_parse_hours() -> None:
    hours = team("09:00-23:00", "mon-fri")
    assert (hours.start, hours.end) == (time(9), time(23))
    assert hours.days == frozenset(range(5))
    assert hours.zone == SHANGHAI


def test_parse_hours_around_the_clock() -> None:
    hours = team("00:00-24:00")
    assert (hours.start, hours.end) == (time(0), None)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [("9:30-18:00", time(9, 30), time(18)), (" 08:15 - 20:45 ", time(8, 15), time(20, 45))],
)
def test_parse_hours_tolerates_short_hours_and_spaces(text: str, start: time, end: time) -> None:
    hours = team(text)
    assert (hours.start, hours.end) == (start, end)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("25:00-26:00", "not a time"),
        ("09:60-23:00", "not a time"),
        ("24:30-23:00", "not a time"),
        ("9-18", "not a time"),
        ("10:00-09:00", "end must come after the start"),
        ("09:00-09:00", "end must come after the start"),
        ("24:00-24:00", "start must be before 24:00"),
        ("", "expected start-end"),
        ("09:00", "expected start-end"),
        ("09:00-12:00-18:00", "expected start-end"),
    ],
)
def test_parse_hours_errors(text: str, why: str) -> None:
    with pytest.raises(WorkingHoursError, match=why):
        team(text)


@pytest.mark.parametrize(
    ("text", "days"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("mon-sun", set(range(7))),
        ("sat-mon", {5, 6, 0}),
        ("fri-tue", {4, 5, 6, 0, 1}),
        ("sun-sun", {6}),
        ("mon,wed,sat", {0, 2, 5}),
        ("MON-Wed, sat", {0, 1, 2, 5}),
        ("mon-tue,mon-wed", {0, 1, 2}),
        ("mon,,tue,", {0, 1}),
    ],
)
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == frozenset(days)


@pytest.mark.parametrize("text", ["funday", "mon-funday", "monday", "mon-wed-fri", "mon-", "1-5"])
def test_parse_days_rejects_names_it_does_not_know(text: str) -> None:
    with pytest.raises(WorkingHoursError, match="day names"):
        parse_days(text)


@pytest.mark.parametrize("text", ["", " ", ",", " , "])
def test_parse_days_needs_one_day(text: str) -> None:
    with pytest.raises(WorkingHoursError, match="at least one working day"):
        parse_days(text)


def test_parse_working_hours_checks_days_too() -> None:
    with pytest.raises(WorkingHoursError):
        parse_working_hours("09:00-23:00", "funday", SHANGHAI)
    with pytest.raises(WorkingHoursError):
        parse_working_hours("09:00-23:00", "", SHANGHAI)


# Open or not


def test_is_open_inside_hours_and_at_the_edges() -> None:
    hours = team()
    assert hours.is_open(cst(23, 9))
    assert hours.is_open(cst(23, 15, 30))
    assert hours.is_open(cst(23, 22, 59))
    assert not hours.is_open(cst(23, 23))  # the end is exclusive
    assert not hours.is_open(cst(23, 8, 59))
    assert not hours.is_open(cst(23, 3))


def test_is_open_uses_the_team_zone_not_utc() -> None:
    hours = team()
    # 02:00 UTC is 10:00 in Shanghai (open); 16:00 UTC is 00:00 the next day there (closed).
    assert hours.is_open(datetime(2026, 11, 23, 2, 0, tzinfo=UTC))
    assert not hours.is_open(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))


def test_is_open_only_on_working_days() -> None:
    hours = team(days="mon-fri")
    assert hours.is_open(cst(27, 12))  # Friday
    assert not hours.is_open(cst(28, 12))  # Saturday
    assert not hours.is_open(cst(29, 12))  # Sunday
    # Friday 20:00 UTC is already Saturday 04:00 in Shanghai.
    assert not hours.is_open(datetime(2026, 11, 27, 20, 0, tzinfo=UTC))


def test_is_open_until_midnight_with_24_00() -> None:
    hours = team("18:00-24:00")
    assert hours.is_open(cst(23, 23, 59))
    assert not hours.is_open(cst(24, 0, 0))
    assert not hours.is_open(cst(23, 17, 59))


def test_around_the_clock_is_open_all_day_on_working_days() -> None:
    hours = team("00:00-24:00", "mon-fri")
    assert hours.is_open(cst(23, 0))
    assert hours.is_open(cst(27, 23, 59))
    assert not hours.is_open(cst(28, 0))


# Next opening


def test_next_open_inside_hours_is_the_same_instant() -> None:
    at = cst(23, 15, 17)
    assert team().next_open(at) == at
    assert team().next_open(at).tzinfo == UTC


def test_next_open_after_closing_is_the_next_days_opening() -> None:
    opening = team().next_open(cst(23, 23, 30))
    assert opening == cst(24, 9)
    assert opening.tzinfo == UTC
    assert opening == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


def test_next_open_at_closing_time_is_the_next_days_opening() -> None:
    assert team().next_open(cst(23, 23)) == cst(24, 9)


def test_next_open_after_midnight_is_the_same_days_opening() -> None:
    assert team().next_open(cst(24, 0, 30)) == cst(24, 9)


def test_next_open_before_opening_is_the_same_days_opening() -> None:
    opening = team().next_open(cst(23, 7, 45))
    assert opening == cst(23, 9)
    assert opening.tzinfo == UTC


def test_next_open_friday_evening_is_monday_morning() -> None:
    hours = team(days="mon-fri")
    assert hours.next_open(cst(27, 23, 30)) == cst(30, 9)  # Friday → Monday the 30th
    assert hours.next_open(cst(28, 12)) == cst(30, 9)  # Saturday
    assert hours.next_open(cst(29, 8)) == cst(30, 9)  # Sunday morning


def test_next_open_when_the_utc_date_differs_from_the_team_date() -> None:
    hours = team(days="mon-fri")
    # Sunday 23:30 UTC is Monday 07:30 in Shanghai: the opening is that Monday's, not Tuesday's.
    at = datetime(2026, 11, 29, 23, 30, tzinfo=UTC)
    assert hours.next_open(at) == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


def test_next_open_with_one_working_day_a_week() -> None:
    hours = team(days="mon")
    assert hours.next_open(cst(23, 23, 30)) == cst(30, 9)  # Monday after closing → next Monday
    assert hours.next_open(cst(24, 10)) == cst(30, 9)


def test_next_open_with_wrap_around_days() -> None:
    hours = team(days="sat-mon")
    assert hours.next_open(cst(24, 12)) == cst(28, 9)  # Tuesday → Saturday
    assert hours.next_open(cst(29, 23, 30)) == cst(30, 9)  # Sunday night → Monday


def test_next_open_around_the_clock() -> None:
    hours = team("00:00-24:00", "mon-fri")
    assert hours.next_open(cst(28, 12)) == cst(30, 0)
    at = cst(25, 3)
    assert hours.next_open(at) == at


def test_next_open_is_open_or_later() -> None:
    hours = team("09:30-18:00", "mon,wed,fri")
    for day in range(23, 30):
        for hour in range(24):
            at = cst(day, hour, 10)
            opening = hours.next_open(at)
            assert opening >= at
            assert hours.is_open(opening)


# Shift start


def test_shift_starts_on_a_working_day() -> None:
    hours = team(days="mon-fri")
    assert hours.shift_starts(cst(23, 15)) == cst(23, 9)
    assert hours.shift_starts(cst(23, 23, 59)) == cst(23, 9)
    assert hours.shift_starts(cst(23, 1)) == cst(23, 9)
    assert hours.shift_starts(cst(23, 1)) == datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def test_shift_starts_on_a_day_off_is_none() -> None:
    hours = team(days="mon-fri")
    assert hours.shift_starts(cst(28, 12)) is None
    assert hours.shift_starts(cst(29, 12)) is None


def test_shift_starts_uses_the_team_calendar_day() -> None:
    hours = team(days="mon-fri")
    # Friday 17:00 UTC is Saturday 01:00 in Shanghai: a day off for the team.
    assert hours.shift_starts(datetime(2026, 11, 27, 17, 0, tzinfo=UTC)) is None
    # Sunday 20:00 UTC is Monday 04:00 in Shanghai: Monday's shift.
    assert hours.shift_starts(datetime(2026, 11, 29, 20, 0, tzinfo=UTC)) == cst(30, 9)
