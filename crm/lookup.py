"""What an agent typed after /card: normalising it into the forms the records are stored in."""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_QUERY_CHARS = 64
_PHONE_NOISE = re.compile(r"[\s\-()]")
_CN_PREFIX = re.compile(r"^(?:\+?86|0086)(?=1\d{10}$)")


def normalize_phone(raw: str) -> str | None:
    """Digits of a phone number, without +86 / 0086; None if it is not a plausible number."""
    digits = _CN_PREFIX.sub("", _PHONE_NOISE.sub("", raw.strip()))
    if digits.startswith("+"):
        digits = digits[1:]
    if digits.isdigit() and 5 <= len(digits) <= 15:
        return digits
    return None


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    phone: str | None


class QueryError(ValueError):
    """The query cannot be searched; `reason` is a stable key for the message shown."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_query(raw: str | None) -> Query:
    text = " ".join((raw or "").split())
    if not text:
        raise QueryError("empty")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError("too_long")
    return Query(text=text, phone=normalize_phone(text))
