"""Typed callback data. Prefixes are short so every packed value stays within Telegram's 64 bytes."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData

CALLBACK_DATA_LIMIT = 64


class CardAction(StrEnum):
    OPEN = "o"
    ORDERS = "ord"
    TAGS = "tg"
    NOTE = "n"
    REFRESH = "r"


class CardCb(CallbackData, prefix="c"):
    action: CardAction
    customer: int
    page: int = 0


class TagCb(CallbackData, prefix="t"):
    customer: int
    tag: str
