"""Lifecycle stage (客户生命周期) from days since the latest purchase.

Fixed thresholds (DOMAIN.md: active ≤ 90, silent ≤ 180, sleeping ≤ 360, lost beyond), or cut
points learned from the shop itself by splitting customers' recency 3 : 3 : 3 : 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from crm.quantiles import cut_positions


class Stage(StrEnum):
    ACTIVE = "active"
    SILENT = "silent"
    SLEEPING = "sleeping"
    LOST = "lost"
    PROSPECT = "prospect"  # never bought


@dataclass(frozen=True, slots=True)
class Thresholds:
    active_days: int = 90
    silent_days: int = 180
    sleeping_days: int = 360

    def __post_init__(self) -> None:
        if not 0 < self.active_days < self.silent_days < self.sleeping_days:
            raise ValueError("lifecycle thresholds must rise: active < silent < sleeping")


LEARNED_SHARES = (3, 3, 3, 1)


def days_since(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, (now - moment).days)


def stage_for(days: int | None, thresholds: Thresholds) -> Stage:
    if days is None:
        return Stage.PROSPECT
    if days <= thresholds.active_days:
        return Stage.ACTIVE
    if days <= thresholds.silent_days:
        return Stage.SILENT
    if days <= thresholds.sleeping_days:
        return Stage.SLEEPING
    return Stage.LOST


def thresholds_from_cuts(cut_days: Sequence[int]) -> Thresholds:
    """Ties in recency would collapse two stages into one, so cut points are nudged a day apart."""
    cuts: list[int] = []
    for value in cut_days:
        value = max(1, value)
        if cuts and value <= cuts[-1]:
            value = cuts[-1] + 1
        cuts.append(value)
    return Thresholds(*cuts)


MIN_BUYERS_TO_LEARN = 20


def learned_thresholds(recency_days_sorted: Sequence[int]) -> Thresholds | None:
    """Cut the shop's recency (ascending days) 3:3:3:1; None when too few buyers to learn from."""
    n = len(recency_days_sorted)
    if n < MIN_BUYERS_TO_LEARN:
        return None
    return thresholds_from_cuts([recency_days_sorted[i] for i in cut_positions(n, LEARNED_SHARES)])
