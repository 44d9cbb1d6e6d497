"""When an approved care message may go, whether it may go at all, and what it costs as SMS.

Quiet hours and caps never drop a message: they move it to the first moment both allow and say why
(the approval card shows the reasons). Exclusions do drop it, with the reason. Days and weeks are the
customer's calendar days and Monday-to-Sunday weeks in their zone (the team's when unknown): "twice
today" is how a buyer counts, and a calendar boundary gives the card a definite "goes Monday".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

SMS_SINGLE, SMS_SEGMENT = 70, 67
MAX_STEPS = 800  # each step moves at least to the next day's start: this is more than two years


class SendingError(ValueError):
    pass


class Delay(StrEnum):
    QUIET_HOURS = "quiet_hours"
    DAILY_CAP = "daily_cap"
    WEEKLY_CAP = "weekly_cap"


class Exclusion(StrEnum):
    OPTED_OUT = "opted_out"
    UNREACHABLE = "unreachable"
    OPEN_COMPLAINT = "open_complaint"
    BAD_REVIEWER = "bad_reviewer"


@dataclass(frozen=True, slots=True)
class QuietHours:
    """No messages from `start` until `end` local time; a window across midnight wraps. start == end: none."""

    start: time = time(21, 0)
    end: time = time(9, 0)

    def is_quiet(self, at: datetime, zone: ZoneInfo) -> bool:
        clock = at.astimezone(zone).time().replace(tzinfo=None)
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def next_window(self, at: datetime, zone: ZoneInfo) -> datetime:
        """`at` itself outside quiet hours, else when they end (UTC)."""
        if not self.is_quiet(at, zone):
            return at
        local = at.astimezone(zone)
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:  # 22:00 in a 21:00–09:00 window ends tomorrow
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end.astimezone(UTC)


def parse_quiet_hours(text: str) -> QuietHours:
    """'21:00-09:00' (across midnight), '12:00-13:30', or 'off'."""
    if text.strip().lower() == "off":
        return QuietHours(time(0), time(0))
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", text)
    if not match:
        raise SendingError(f"{text!r}: expected start-end like 21:00-09:00, or off")
    hours, minutes = (int(match[1]), int(match[3])), (int(match[2]), int(match[4]))
    if max(hours) > 23 or max(minutes) > 59:
        raise SendingError(f"{text!r}: hours 00–23, minutes 00–59")
    return QuietHours(time(hours[0], minutes[0]), time(hours[1], minutes[1]))


@dataclass(frozen=True, slots=True)
class Caps:
    per_day: int = 1
    per_week: int = 3

    def __post_init__(self) -> None:
        if self.per_day < 1 or self.per_week < self.per_day:
            raise SendingError("caps: at least 1 a day, and a week's cap no lower than a day's")


@dataclass(frozen=True, slots=True)
class SendSlot:
    at: datetime
    reasons: tuple[Delay, ...]  # why it is later than asked, in the order they applied; empty = on time

    @property
    def delayed(self) -> bool:
        return bool(self.reasons)


@lru_cache(maxsize=1)
def _zone_names() -> dict[str, str]:
    return {name.casefold(): name for name in available_timezones()}


@lru_cache(maxsize=4096)
def zone_name(text: str) -> str | None:
    """A customer's time zone as its IANA name ("asia/singapore" -> "Asia/Singapore"); None when
    blank. Quiet hours and caps count in it. Raises ValueError for anything else: a fixed offset
    such as "+08:00" is refused, since it would ignore daylight saving."""
    text = text.strip()
    if not text:
        return None
    name = _zone_names().get(text.casefold())  # names the system's tz database can load
    if name is None:
        raise ValueError(f"not a time zone: {text[:60]!r} (an IANA name such as Asia/Singapore)")
    return name


def zone_for(customer_zone: ZoneInfo | None, team_zone: ZoneInfo) -> ZoneInfo:
    return customer_zone or team_zone


def _day_start(day: datetime, zone: ZoneInfo) -> datetime:
    return datetime.combine(day.astimezone(zone).date(), time(0), tzinfo=zone)


def cap_delay(
    at: datetime, booked: Iterable[datetime], caps: Caps, zone: ZoneInfo
) -> tuple[datetime, Delay | None]:
    """`at` when the customer's day and week still have room, else the start of the next day or week
    (UTC) and which cap held it. `booked`: the customer's other messages, sent or scheduled."""
    local = at.astimezone(zone)
    days = [b.astimezone(zone).date() for b in booked]
    if sum(d == local.date() for d in days) >= caps.per_day:
        return (_day_start(local, zone) + timedelta(days=1)).astimezone(UTC), Delay.DAILY_CAP
    monday = local.date() - timedelta(days=local.weekday())
    if sum(monday <= d < monday + timedelta(days=7) for d in days) >= caps.per_week:
        next_monday = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone)
        return next_monday.astimezone(UTC), Delay.WEEKLY_CAP
    return at, None


def send_slot(
    at: datetime,
    *,
    booked: Iterable[datetime] = (),
    zone: ZoneInfo,
    quiet: QuietHours = QuietHours(),
    caps: Caps | None = Caps(),
) -> SendSlot:
    """The first moment from `at` outside quiet hours with room under the caps (caps=None: uncapped)."""
    if at.tzinfo is None:
        raise ValueError("at must be an aware datetime")
    booked = list(booked)
    reasons: list[Delay] = []
    for _ in range(MAX_STEPS):
        moved = quiet.next_window(at, zone)
        reason: Delay | None = Delay.QUIET_HOURS if moved != at else None
        if reason is None and caps is not None:
            moved, reason = cap_delay(at, booked, caps, zone)
        if reason is None:
            return SendSlot(at, tuple(reasons))
        if reason not in reasons:
            reasons.append(reason)
        at = moved
    raise SendingError("no free slot within two years: the caps are full of scheduled messages")


@dataclass(frozen=True, slots=True)
class Reach:
    """What the shop knows about contacting this customer."""

    opted_out: bool = False  # asked for no messages (/optout, or replied 退订)
    unreachable: bool = False  # messages bounce: wrong number, address gone
    open_complaint: bool = False
    bad_reviewer: bool = False  # left a bad or middling review


def exclusion(reach: Reach, *, marketing: bool) -> Exclusion | None:
    """Why the message must not go, or None. Opted out and unreachable stop every message; an open
    complaint or a bad review stops marketing only: news about their own order still matters to them."""
    if reach.opted_out:
        return Exclusion.OPTED_OUT
    if reach.unreachable:
        return Exclusion.UNREACHABLE
    if marketing and reach.open_complaint:
        return Exclusion.OPEN_COMPLAINT
    if marketing and reach.bad_reviewer:
        return Exclusion.BAD_REVIEWER
    return None


def sms_segments(text: str, signature: str | None = None) -> int:
    """Billable messages for `text` (with the gateway's 【signature】, if given): one up to 70
    characters, else segments of 67. Chinese gateways count every character alike, Latin too; 0 for
    an empty text."""
    length = len(text) + (len(signature) + 2 if signature else 0)
    if length == 0:
        return 0
    if length <= SMS_SINGLE:
        return 1
    return -(-length // SMS_SEGMENT)
