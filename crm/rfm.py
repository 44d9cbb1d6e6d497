"""RFM scoring (recency, frequency, monetary) by shop-wide quintiles, and the eight segments
Chinese CRM practice uses (重要价值 / 重要发展 / 重要保持 / 重要挽留 and the four 一般 ones).

Cut points are computed in batch over all buyers (storage/stats.py); scoring one customer is then a
pure lookup, so a card never scans the shop.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from crm.quantiles import cut_positions

QUINTILES = (1, 1, 1, 1, 1)
HIGH_SCORE = 3  # a score at or above the median counts as "high" for segmenting


class Segment(StrEnum):
    IMPORTANT_VALUE = "important_value"  # recent, frequent, big spender
    IMPORTANT_DEVELOP = "important_develop"  # recent, big spender, few purchases
    IMPORTANT_KEEP = "important_keep"  # frequent big spender gone quiet
    IMPORTANT_RETAIN = "important_retain"  # big spender, rare and not recent
    GENERAL_VALUE = "general_value"
    GENERAL_DEVELOP = "general_develop"
    GENERAL_KEEP = "general_keep"
    GENERAL_RETAIN = "general_retain"


@dataclass(frozen=True, slots=True)
class RfmCuts:
    """Four ascending cut points per dimension (20/40/60/80 % of buyers)."""

    recency_days: tuple[int, ...]
    frequency: tuple[int, ...]
    monetary_cents: tuple[int, ...]

    def to_json(self) -> dict[str, list[int]]:
        return {"r": list(self.recency_days), "f": list(self.frequency), "m": list(self.monetary_cents)}

    @classmethod
    def from_json(cls, data: dict[str, list[int]]) -> RfmCuts:
        return cls(tuple(data["r"]), tuple(data["f"]), tuple(data["m"]))


@dataclass(frozen=True, slots=True)
class RfmScore:
    r: int
    f: int
    m: int
    segment: Segment

    @property
    def code(self) -> str:
        return f"{self.r}{self.f}{self.m}"


def cuts_from_sorted(values_sorted: Sequence[int]) -> tuple[int, ...]:
    return tuple(values_sorted[i] for i in cut_positions(len(values_sorted), QUINTILES))


def _rising_score(value: int, cuts: Sequence[int]) -> int:
    # 1 + how many cut points the value exceeds: ties at a cut stay in the lower band.
    return 1 + bisect_left(cuts, value)


def segment_for(r: int, f: int, m: int) -> Segment:
    key = (r >= HIGH_SCORE, f >= HIGH_SCORE, m >= HIGH_SCORE)
    return {
        (True, True, True): Segment.IMPORTANT_VALUE,
        (True, False, True): Segment.IMPORTANT_DEVELOP,
        (False, True, True): Segment.IMPORTANT_KEEP,
        (False, False, True): Segment.IMPORTANT_RETAIN,
        (True, True, False): Segment.GENERAL_VALUE,
        (True, False, False): Segment.GENERAL_DEVELOP,
        (False, True, False): Segment.GENERAL_KEEP,
        (False, False, False): Segment.GENERAL_RETAIN,
    }[key]


def score(recency_days: int, purchases: int, spent_cents: int, cuts: RfmCuts) -> RfmScore:
    r = 6 - _rising_score(recency_days, cuts.recency_days)  # fewer days since buying scores higher
    f = _rising_score(purchases, cuts.frequency)
    m = _rising_score(spent_cents, cuts.monetary_cents)
    return RfmScore(r, f, m, segment_for(r, f, m))
