"""Sending rules: quiet hours, per-customer caps, exclusions, SMS billing."""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from crm.sending import (
    Caps,
    Delay,
    Exclusion,
    QuietHours,
    Reach,
    SendingError,
    exclusion,
    parse_quiet_hours,
    send_slot,
    sms_segments,
    zone_for,
)

SHANGHAI = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")


def sh(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """A time in Shanghai in March 2026 (the 9th is a Monday), as UTC."""
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI).astimezone(UTC)


# Quiet hours


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [
        (20, 59, False),
        (21, 0, True),
        (23, 59, True),
        (0, 0, True),
        (8, 59, True),
        (9, 0, False),
        (12, 0, False),
    ],
)
def test_default_quiet_hours_wrap_midnight(hour: int, minute: int, quiet: bool) -> None:
    assert QuietHours().is_quiet(sh(10, hour, minute), SHANGHAI) is quiet


@pytest.mark.parametrize(
    ("at", "goes"),
    [
        (sh(10, 21, 30), sh(11, 9)),  # evening: tomorrow morning
        (sh(10, 23, 59), sh(11, 9)),
        (sh(11, 0, 0), sh(11, 9)),  # after midnight: this morning
        (sh(11, 3, 15), sh(11, 9)),
        (sh(10, 14, 0), sh(10, 14, 0)),  # outside: as asked
        (sh(31, 22, 0), sh(1, 9, month=4)),  # across a month end
    ],
)
def test_next_window(at: datetime, goes: datetime) -> None:
    assert QuietHours().next_window(at, SHANGHAI) == goes


def test_quiet_hours_are_in_the_given_zone() -> None:
    at = datetime(2026, 3, 10, 13, 0, tzinfo=UTC)  # 21:00 in Shanghai, 14:00 in Berlin
    assert QuietHours().is_quiet(at, SHANGHAI)
    assert not QuietHours().is_quiet(at, BERLIN)
    assert zone_for(BERLIN, SHANGHAI) is BERLIN
    assert zone_for(None, SHANGHAI) is SHANGHAI


def test_a_window_within_one_day() -> None:
    lunch = QuietHours(time(12, 0), time(13, 30))
    assert lunch.is_quiet(sh(10, 12, 0), SHANGHAI)
    assert not lunch.is_quiet(sh(10, 13, 30), SHANGHAI)
    assert not lunch.is_quiet(sh(10, 23, 0), SHANGHAI)
    assert lunch.next_window(sh(10, 12, 45), SHANGHAI) == sh(10, 13, 30)


def test_next_window_across_a_daylight_saving_change() -> None:
    # Berlin moves to summer time at 02:00 on 29 March 2026: the window still ends at 09:00 local.
    at = datetime(2026, 3, 28, 22, 0, tzinfo=BERLIN).astimezone(UTC)
    assert QuietHours().next_window(at, BERLIN) == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("21:00-09:00", time(21), time(9)),
        (" 12:00 - 13:30 ", time(12), time(13, 30)),
        ("off", time(0), time(0)),
    ],
)
def test_parse_quiet_hours(text: str, start: time, end: time) -> None:
    assert parse_quiet_hours(text) == QuietHours(start, end)


def test_quiet_hours_off_never_hold_a_message() -> None:
    off = parse_quiet_hours("OFF")
    assert not off.is_quiet(sh(10, 3), SHANGHAI)
    assert off.next_window(sh(10, 3), SHANGHAI) == sh(10, 3)


@pytest.mark.parametrize("text", ["21-9", "24:00-09:00", "21:60-09:00", "", "21:00", "nine to five"])
def test_parse_quiet_hours_rejects(text: str) -> None:
    with pytest.raises(SendingError):
        parse_quiet_hours(text)


# Caps and the slot


def test_nothing_booked_goes_as_asked() -> None:
    slot = send_slot(sh(10, 14), zone=SHANGHAI)
    assert (slot.at, slot.reasons, slot.delayed) == (sh(10, 14), (), False)


def test_quiet_hours_delay_says_why() -> None:
    slot = send_slot(sh(10, 22), zone=SHANGHAI)
    assert (slot.at, slot.reasons) == (sh(11, 9), (Delay.QUIET_HOURS,))


def test_second_message_the_same_day_waits_for_tomorrows_window() -> None:
    slot = send_slot(sh(10, 14), booked=[sh(10, 10)], zone=SHANGHAI)
    # Capped to tomorrow's start, which is quiet: 09:00.
    assert (slot.at, slot.reasons) == (sh(11, 9), (Delay.DAILY_CAP, Delay.QUIET_HOURS))


def test_a_message_scheduled_later_today_counts_too() -> None:
    assert send_slot(sh(10, 10), booked=[sh(10, 18)], zone=SHANGHAI).at == sh(11, 9)


def test_the_day_is_the_customers_calendar_day() -> None:
    # Booked 23:30 Monday Shanghai time; a message at 09:00 Tuesday is a new day, 9.5 hours later.
    assert send_slot(sh(10, 9), booked=[sh(9, 23, 30)], zone=SHANGHAI).at == sh(10, 9)


def test_weekly_cap_waits_for_monday() -> None:
    # Three this week (Mon 9 – Sun 15 March): Thursday's message goes next Monday at 09:00.
    booked = [sh(9, 10), sh(10, 10), sh(11, 10)]
    slot = send_slot(sh(12, 14), booked=booked, zone=SHANGHAI)
    assert (slot.at, slot.reasons) == (sh(16, 9), (Delay.WEEKLY_CAP, Delay.QUIET_HOURS))


def test_week_boundary_sunday_night_to_monday_morning() -> None:
    booked = [sh(13, 10), sh(14, 10), sh(15, 10)]  # Fri, Sat, Sun
    assert send_slot(sh(16, 10), booked=booked, zone=SHANGHAI).at == sh(16, 10)  # a new week
    # Thu, Fri, Sat booked: Sunday evening is still this week, so it waits for Monday.
    slot = send_slot(sh(15, 20), booked=[sh(12, 10), *booked[:2]], zone=SHANGHAI)
    assert (slot.at, slot.reasons) == (sh(16, 9), (Delay.WEEKLY_CAP, Delay.QUIET_HOURS))


def test_last_week_does_not_count() -> None:
    booked = [sh(6, 10), sh(7, 10), sh(8, 10)]  # last Fri, Sat, Sun
    assert send_slot(sh(9, 10), booked=booked, zone=SHANGHAI).at == sh(9, 10)


def test_full_days_ahead_are_skipped() -> None:
    booked = [sh(11, 10), sh(12, 10)]  # tomorrow and the day after already have one
    slot = send_slot(sh(11, 8), booked=booked, zone=SHANGHAI, caps=Caps(per_day=1, per_week=5))
    assert (slot.at, slot.reasons) == (sh(13, 9), (Delay.QUIET_HOURS, Delay.DAILY_CAP))


def test_higher_caps_and_no_caps() -> None:
    booked = [sh(10, 10), sh(10, 11)]
    assert send_slot(sh(10, 14), booked=booked, zone=SHANGHAI, caps=Caps(per_day=3, per_week=3)).at == sh(
        10, 14
    )
    assert send_slot(sh(10, 14), booked=booked * 5, zone=SHANGHAI, caps=None).at == sh(10, 14)


def test_caps_in_the_customers_zone() -> None:
    # 16:30 UTC is 17:30 in Berlin on the 10th but 00:30 on the 11th in Shanghai.
    booked = [datetime(2026, 3, 10, 9, 0, tzinfo=UTC)]
    at = datetime(2026, 3, 10, 16, 30, tzinfo=UTC)
    berlin = send_slot(at, booked=booked, zone=BERLIN)
    assert berlin.reasons == (Delay.DAILY_CAP, Delay.QUIET_HOURS)
    assert berlin.at == datetime(2026, 3, 11, 9, 0, tzinfo=BERLIN)
    shanghai = send_slot(at, booked=booked, zone=SHANGHAI)  # booked on the 10th there: no cap
    assert (shanghai.at, shanghai.reasons) == (sh(11, 9), (Delay.QUIET_HOURS,))


@pytest.mark.parametrize(("per_day", "per_week"), [(0, 3), (2, 1), (-1, -1)])
def test_caps_must_allow_something(per_day: int, per_week: int) -> None:
    with pytest.raises(SendingError):
        Caps(per_day, per_week)


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        send_slot(datetime(2026, 3, 10, 14), zone=SHANGHAI)


# Exclusions


@pytest.mark.parametrize(
    ("reach", "marketing", "reason"),
    [
        (Reach(), True, None),
        (Reach(), False, None),
        (Reach(opted_out=True), False, Exclusion.OPTED_OUT),
        (Reach(unreachable=True), False, Exclusion.UNREACHABLE),
        (Reach(open_complaint=True), True, Exclusion.OPEN_COMPLAINT),
        (Reach(open_complaint=True), False, None),  # their parcel's news still goes
        (Reach(bad_reviewer=True), True, Exclusion.BAD_REVIEWER),
        (Reach(bad_reviewer=True), False, None),
        (Reach(opted_out=True, open_complaint=True), True, Exclusion.OPTED_OUT),
    ],
)
def test_exclusion(reach: Reach, marketing: bool, reason: Exclusion | None) -> None:
    assert exclusion(reach, marketing=marketing) == reason


# SMS billing


@pytest.mark.parametrize(
    ("length", "segments"),
    [(0, 0), (1, 1), (70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)],
)
def test_sms_segments(length: int, segments: int) -> None:
    assert sms_segments("好" * length) == segments


def test_latin_letters_count_like_chinese() -> None:
    assert sms_segments("a" * 70) == 1
    assert sms_segments("a" * 71) == 2


def test_signature_counts_with_its_brackets() -> None:
    # 【暖暖小铺】 is 6 characters: 64 + 6 = 70, 65 + 6 = 71.
    assert sms_segments("好" * 64, signature="暖暖小铺") == 1
    assert sms_segments("好" * 65, signature="暖暖小铺") == 2
