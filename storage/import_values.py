"""Parsing one imported cell: times, money, items, status, gender, bounded text.

Pure functions on strings, fast paths first; a bad value raises RowError with the reason that goes
to the error file.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from storage import lengths

MAX_CENTS = 2_147_483_647  # orders.amount_cents is a 32-bit integer on PostgreSQL
MAX_QUANTITY = 100_000


class RowError(ValueError):
    """One row cannot be imported; `reason` goes to the error file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# ---------------------------------------------------------------------------------------------
# Field parsing. Internal times are UTC text "YYYY-MM-DD HH:MM:SS.ffffff": the exact form
# SQLAlchemy stores on SQLite, ordered like the instants, and turned into datetimes for PostgreSQL.

_MINUTE_SECOND = frozenset(f":{m:02d}:{s:02d}" for m in range(60) for s in range(60))
_MINUTE = frozenset(f":{m:02d}" for m in range(60))
_TIME = re.compile(
    r"\s*(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
    r"(?:(?:\s+|T)(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:[.,](\d{1,6}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?\s*",
    re.ASCII,
)
_HOUR_CACHE_LIMIT = 500_000


def utc_text(moment: datetime) -> str:
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}"
    )


class TimeParser:
    """Parses the time formats exports use into internal UTC text; naive times are in `zone`.

    Fast path: 'YYYY-MM-DD HH:MM[:SS]' with a cache from the local hour to the UTC hour (valid when
    the zone's offset is a whole number of hours and constant through that hour), so most values
    cost two dict look-ups and a concatenation instead of building datetimes.
    """

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._hours: dict[str, str] = {}

    def __call__(self, text: str) -> str | None:
        size = len(text)
        if size == 19:
            head = self._hours.get(text[:13])
            if head is not None and text[13:] in _MINUTE_SECOND:
                return head + text[13:] + ".000000"
        elif size == 16:
            head = self._hours.get(text[:13])
            if head is not None and text[13:] in _MINUTE:
                return head + text[13:] + ":00.000000"
        return self._slow(text)

    def _slow(self, text: str) -> str | None:
        if not text or text.isspace():
            return None
        match = _TIME.fullmatch(text)
        if match is None:
            raise RowError(f"not a date/time: {text!r}")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        try:
            local = datetime(
                int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                int((fraction or "0").ljust(6, "0")),
            )  # fmt: skip
            if not 1900 <= local.year <= 2200:
                raise ValueError("year out of range")
            if offset:
                moment = local.replace(tzinfo=_offset_zone(offset)).astimezone(UTC)
            else:
                moment = local.replace(tzinfo=self.zone).astimezone(UTC)
        except (ValueError, OverflowError):
            raise RowError(f"not a date/time: {text!r}") from None
        if not offset and hour is not None:
            self._remember_hour(local)
        return utc_text(moment)

    def _remember_hour(self, local: datetime) -> None:
        start = local.replace(minute=0, second=0, microsecond=0, tzinfo=self.zone)
        end = start.replace(minute=59, second=59)
        offset = start.utcoffset()
        if offset is None or offset != end.utcoffset() or offset % timedelta(hours=1):
            return
        if len(self._hours) >= _HOUR_CACHE_LIMIT:
            self._hours.clear()
        utc = start.replace(tzinfo=None) - offset
        self._hours[f"{start:%Y-%m-%d %H}"] = f"{utc:%Y-%m-%d %H}"

    def date(self, text: str) -> str | None:
        """A calendar date (birthday) as 'YYYY-MM-DD'; a time part, if any, is ignored."""
        if not text:
            return None
        match = _TIME.fullmatch(text)
        try:
            if match is None:
                raise ValueError
            year, month, day = (int(part) for part in match.groups()[:3])
            return date(year, month, day).isoformat()
        except ValueError:
            raise RowError(f"not a date: {text!r}") from None


def _offset_zone(offset: str) -> timezone:
    if offset == "Z":
        return UTC
    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
    return timezone(-delta if offset[0] == "-" else delta)


_MONEY_NOISE = str.maketrans("", "", "¥￥,， 元")


def parse_amount(text: str) -> int:
    """'123.45', '¥1,234.50', '1234' -> cents, exactly (no float on the way)."""
    whole, _, fraction = text.partition(".")
    if whole.isdigit() and whole.isascii() and len(fraction) <= 2 and (fraction.isdigit() or not fraction):
        cents = int(whole) * 100 + (int(fraction) * (10 if len(fraction) == 1 else 1) if fraction else 0)
        if cents <= MAX_CENTS:
            return cents
    return _parse_amount_slow(text)


def _parse_amount_slow(text: str) -> int:
    cleaned = text.strip().upper().removeprefix("RMB").translate(_MONEY_NOISE)
    if not cleaned:
        raise RowError("missing amount")
    if cleaned.startswith("-") or (cleaned.startswith("(") and cleaned.endswith(")")):
        raise RowError(f"negative amount: {text!r}")
    cleaned = cleaned.removeprefix("+")
    whole, _, fraction = cleaned.partition(".")
    whole = whole or "0"
    if not (
        whole.isdigit() and whole.isascii() and (not fraction or (fraction.isdigit() and fraction.isascii()))
    ):
        raise RowError(f"not an amount: {text!r}")
    if fraction[2:].strip("0"):
        raise RowError(f"amount has fractions of a cent: {text!r}")
    cents = int(whole) * 100 + int(fraction[:2].ljust(2, "0"))
    if cents > MAX_CENTS:
        raise RowError(f"amount too large: {text!r}")
    return cents


_QUANTITY_TAIL = re.compile(r"(.*?)\s*[xX*＊✕]\s*(\d+)", re.DOTALL)
_PRODUCT_NAME_MAX = lengths.PRODUCT_NAME


_ITEM_PARTS: dict[str, tuple[str, int] | None] = {}  # raw part -> (name, quantity); None: blank
_ITEM_PARTS_LIMIT = 20_000


def parse_items(text: str) -> dict[str, int]:
    """'name×2;other' -> {'name': 2, 'other': 1}; also x, X, *; repeats in one order are summed."""
    items: dict[str, int] = {}
    parts = _ITEM_PARTS
    for raw in text.replace("；", ";").split(";"):
        try:
            part = parts[raw]
        except KeyError:
            part = _item_part(raw)  # raises RowError: bad parts are never cached
            if len(parts) >= _ITEM_PARTS_LIMIT:
                parts.clear()
            parts[raw] = part
        if part is None:
            continue
        name, quantity = part
        items[name] = items.get(name, 0) + quantity
    if not items:
        raise RowError(f"unparseable items: {text!r}")
    return items


def _item_part(raw: str) -> tuple[str, int] | None:
    """One 'name×qty' part: (name, quantity), None when blank."""
    part = raw.strip()
    if not part:
        return None
    name, sep, count = part.rpartition("×")
    if sep and count.strip().isdigit() and count.isascii():
        name, count = name.strip(), count.strip()
    elif sep and not count.strip():
        raise RowError(f"unparseable items: {part!r} (no quantity after ×)")
    else:  # no quantity: "纸巾 80抽×6包" is one product's name
        match = _QUANTITY_TAIL.fullmatch(part)
        name, count = (match.group(1), match.group(2)) if match else (part, "1")
    quantity = int(count)
    if not name:
        raise RowError(f"unparseable items: {part!r} (no product name)")
    if not 0 < quantity <= MAX_QUANTITY:
        raise RowError(f"unparseable items: {part!r} (quantity {quantity})")
    if len(name) > _PRODUCT_NAME_MAX:
        raise RowError(f"item name longer than {_PRODUCT_NAME_MAX} characters: {name[:40]!r}…")
    return name, quantity


def _status_key(text: str) -> str:
    return re.sub(r"[\s,，、;；:：]", "", text).casefold()


STATUSES: dict[str, str] = {
    _status_key(label): status
    for status, labels in {
        "created": ("created", "pending", "unpaid", "等待买家付款", "待付款", "未付款", "已下单"),
        "paid": ("paid", "买家已付款", "等待卖家发货", "买家已付款，等待卖家发货", "待发货", "已付款"),
        "shipped": (
            "shipped",
            "卖家已发货",
            "等待买家确认收货",
            "卖家已发货，等待买家确认",
            "已发货",
            "待收货",
        ),
        "signed": (
            "signed",
            "delivered",
            "completed",
            "交易成功",
            "已签收",
            "买家已签收",
            "已完成",
            "已收货",
        ),
        "closed": ("closed", "cancelled", "canceled", "交易关闭", "已关闭", "交易已关闭", "已取消"),
        "refunded": ("refunded", "退款成功", "已退款", "退款完成"),
    }.items()
    for label in labels
}

GENDERS: dict[str, str | None] = {
    "男": "m", "m": "m", "male": "m", "先生": "m", "女": "f", "f": "f", "female": "f", "女士": "f",
    "未知": None, "保密": None, "unknown": None, "其他": None, "-": None,
}  # fmt: skip
FLASH_SALE = "flash_sale"
FLASH_SALE_NAMES = frozenset({"聚划算", "juhuasuan", "flash_sale", "flash sale", "flash-sale", "聚划算订单"})


def parse_gender(text: str) -> str | None:
    try:
        return GENDERS[text.casefold()]
    except KeyError:
        raise RowError(f"unknown gender: {text!r} (use 男/女, m/f, male/female)") from None


def parse_status(text: str) -> str:
    status = STATUSES.get(_status_key(text))
    if status is None:
        raise RowError(f"unknown status: {text!r}")
    return status


def derive_status(paid: object, shipped: object, signed: object, closed: object, refunded: object) -> str:
    """The status an order has reached by its timestamps, when the file gives none."""
    if refunded is not None:
        return "refunded"
    if closed is not None:
        return "closed"
    if signed is not None:
        return "signed"
    if shipped is not None:
        return "shipped"
    return "paid" if paid is not None else "created"


def bounded_text(value: str, field: str, limit: int) -> str | None:
    value = value.strip()
    if len(value) > limit:
        raise RowError(f"{field} longer than {limit} characters")
    return value or None


def identifier(value: str, field: str, limit: int) -> str:
    """An id cell; Excel-protected forms (="123", '123) are unwrapped."""
    value = value.strip()
    if value[:2] == '="' and value[-1:] == '"':
        value = value[2:-1].strip()
    elif value[:1] == "'":
        value = value[1:].strip()
    if not value:
        raise RowError(f"missing {field}")
    if len(value) > limit:
        raise RowError(f"{field} longer than {limit} characters")
    return value
