import pytest

from crm.rfm import RfmCuts, Segment, cuts_from_sorted, score, segment_for

CUTS = RfmCuts(
    recency_days=(10, 30, 90, 200), frequency=(1, 1, 1, 2), monetary_cents=(5000, 10000, 20000, 50000)
)


def test_quintile_cuts_come_from_positions_in_the_sorted_values() -> None:
    assert cuts_from_sorted(list(range(1, 11))) == (2, 4, 6, 8)
    assert cuts_from_sorted([7]) == (7, 7, 7, 7)


def test_recent_frequent_big_spender_scores_top() -> None:
    s = score(recency_days=3, purchases=6, spent_cents=90000, cuts=CUTS)
    assert (s.r, s.f, s.m, s.segment) == (5, 5, 5, Segment.IMPORTANT_VALUE)
    assert s.code == "555"


def test_old_single_small_purchase_scores_bottom() -> None:
    s = score(recency_days=400, purchases=1, spent_cents=1000, cuts=CUTS)
    assert (s.r, s.f, s.m, s.segment) == (1, 1, 1, Segment.GENERAL_RETAIN)


def test_ties_at_a_cut_stay_in_the_lower_band() -> None:
    # 60 % of buyers bought once: once is the lowest frequency band, twice the fourth.
    assert score(50, 1, 100, CUTS).f == 1
    assert score(50, 2, 100, CUTS).f == 4


@pytest.mark.parametrize(
    ("r", "f", "m", "segment"),
    [
        (5, 5, 5, Segment.IMPORTANT_VALUE),
        (4, 1, 4, Segment.IMPORTANT_DEVELOP),
        (1, 5, 5, Segment.IMPORTANT_KEEP),
        (2, 2, 3, Segment.IMPORTANT_RETAIN),
        (3, 3, 2, Segment.GENERAL_VALUE),
        (5, 1, 1, Segment.GENERAL_DEVELOP),
        (1, 4, 1, Segment.GENERAL_KEEP),
        (1, 1, 1, Segment.GENERAL_RETAIN),
    ],
)
def test_eight_segments(r: int, f: int, m: int, segment: Segment) -> None:
    assert segment_for(r, f, m) is segment
