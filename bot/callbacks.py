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
    FOLLOW = "fu"


class CardCb(CallbackData, prefix="c"):
    action: CardAction
    customer: int
    page: int = 0


class TagCb(CallbackData, prefix="t"):
    customer: int
    tag: str


class ScenarioCb(CallbackData, prefix="s"):
    """Start a follow-up of one scenario for a customer (optionally about one order)."""

    customer: int
    key: str
    order: int = 0


class FollowAction(StrEnum):
    DONE = "d"
    SNOOZE_5 = "s5"
    SNOOZE_15 = "s15"
    MINE = "m"
    CANCEL = "x"


class FollowCb(CallbackData, prefix="f"):
    action: FollowAction
    id: int


class CareAction(StrEnum):
    APPROVE = "a"
    SKIP = "s"
    EDIT = "e"
    APPROVE_RULE = "b"  # every waiting message of this rule from today (leads)
    DONE = "d"  # an agent task (a call) is made
    TAKE = "t"  # "I'll handle it" on a bad-review alert
    RESOLVED = "r"  # the complaint behind an alert is settled
    CONFIRM_EDIT = "c"
    DISCARD_EDIT = "x"
    RETRY = "y"  # a dead letter sent again


class CareCb(CallbackData, prefix="q"):
    action: CareAction
    id: int
