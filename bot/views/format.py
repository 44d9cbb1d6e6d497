"""Small formatting helpers shared by the renderers."""

from __future__ import annotations

from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo


def money(cents: int | None) -> str:
    if cents is None:
        return "—"
    sign = "-" if cents < 0 else ""
    yuan, fen = divmod(abs(cents), 100)
    return f"{sign}¥{yuan:,}.{fen:02d}"


def day(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d") if moment else "—"


def minute(moment: datetime | None, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M") if moment else "—"


def h(text: object) -> str:
    """Escape anything that came from data before it goes into HTML."""
    return escape(str(text), quote=False)


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_time(moment: datetime | None, now: datetime, zone: ZoneInfo) -> str:
    """14:20 today, 11-24 09:00 on another day: short enough for a phone."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone)
    if local.date() == now.astimezone(zone).date():
        return local.strftime("%H:%M")
    return local.strftime("%m-%d %H:%M")
