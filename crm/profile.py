"""Badges and member levels on a customer's purchase history."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Badge(StrEnum):
    PROSPECT = "prospect"  # no purchase yet
    NEW = "new"  # 新客: one purchase
    RETURNING = "returning"  # 老客: two purchases
    REPEAT = "repeat"  # 多次回购: three or more


def badge_for(purchases: int) -> Badge:
    if purchases <= 0:
        return Badge.PROSPECT
    if purchases == 1:
        return Badge.NEW
    if purchases == 2:
        return Badge.RETURNING
    return Badge.REPEAT


@dataclass(frozen=True, slots=True)
class MemberLevel:
    key: str
    min_purchases: int
    min_spent_cents: int


# 会员等级, highest first: a customer holds the first level whose both minimums they meet.
DEFAULT_LEVELS: tuple[MemberLevel, ...] = (
    MemberLevel("diamond", 10, 500_000),
    MemberLevel("gold", 5, 200_000),
    MemberLevel("silver", 2, 50_000),
    MemberLevel("regular", 1, 0),
)


def member_level(
    purchases: int, spent_cents: int, levels: tuple[MemberLevel, ...] = DEFAULT_LEVELS
) -> str | None:
    for level in levels:
        if purchases >= level.min_purchases and spent_cents >= level.min_spent_cents:
            return level.key
    return None


def response_rate(contacted: int, responded: int) -> float | None:
    if contacted <= 0:
        return None
    return min(1.0, responded / contacted)
