"""The team's working hours: a follow-up due outside them is reminded when the next shift starts."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WorkingHoursError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class WorkingHours:
    start: time
    end: time | None  # None: until midnight (24:00)
    days: frozenset[int]  # 0 = Monday
    zone: ZoneInfo

    def is_open(self, at: datetime) -> bool:
        local = at.astimezone(self.zone)
        clock = local.time().replace(tzinfo=None)
        return local.weekday() in self.days and clock >= self.start and (self.end is None or clock < self.end)

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when the team is working then, else the start of the next working period (UTC)."""
        if self.is_open(at):
            return at
        local = at.astimezone(self.zone)
        for offset in range(8):
            day = local.date() + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            opening = datetime.combine(day, self.start, tzinfo=self.zone)
            if opening > local:
                return opening.astimezone(UTC)
        raise AssertionError("no working day in a week")  # parse_working_hours forbids an empty week

    def shift_starts(self, day_of: datetime) -> datetime | None:
        """When the shift starts on the team's calendar day of `day_of`, or None on a day off."""
        local = day_of.astimezone(self.zone)
        if local.weekday() not in self.days:
            return None
        return datetime.combine(local.date(), self.start, tzinfo=self.zone).astimezone(UTC)


def _clock(text: str) -> time | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match:
        raise WorkingHoursError(f"{text!r} is not a time like 09:00")
    hour, minute = int(match[1]), int(match[2])
    if (hour, minute) == (24, 0):
        return None
    if hour > 23 or minute > 59:
        raise WorkingHoursError(f"{text!r} is not a time like 09:00")
    return time(hour, minute)


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'mon,wed,sat', 'mon-sun'."""
    days: set[int] = set()
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        ends = [e.strip() for e in part.split("-")]
        if len(ends) > 2 or not all(e in DAY_NAMES for e in ends):
            raise WorkingHoursError(f"{part!r}: use day names like mon-fri or mon,wed,sat")
        first, last = DAY_NAMES.index(ends[0]), DAY_NAMES.index(ends[-1])
        days.update(range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)])
    if not days:
        raise WorkingHoursError("at least one working day is needed")
    return frozenset(days)


def parse_working_hours(hours: str, days: str, zone: ZoneInfo) -> WorkingHours:
    """'09:00-23:00' (an end of 24:00 means until midnight) on `days` in the team's time zone."""
    parts = hours.split("-")
    if len(parts) != 2:
        raise WorkingHoursError(f"{hours!r}: expected start-end, e.g. 09:00-23:00")
    start, end = _clock(parts[0]), _clock(parts[1])
    if start is None:
        raise WorkingHoursError("the start must be before 24:00")
    if end is not None and end <= start:
        raise WorkingHoursError(f"{hours!r}: the end must come after the start")
    return WorkingHours(start, end, parse_days(days), zone)
