from datetime import UTC, datetime, timedelta

import pytest

from crm.lifecycle import Stage, Thresholds, days_since, learned_thresholds, stage_for, thresholds_from_cuts

DEFAULT = Thresholds()


@pytest.mark.parametrize(
    ("days", "stage"),
    [
        (0, Stage.ACTIVE),
        (90, Stage.ACTIVE),
        (91, Stage.SILENT),
        (180, Stage.SILENT),
        (181, Stage.SLEEPING),
        (360, Stage.SLEEPING),
        (361, Stage.LOST),
        (None, Stage.PROSPECT),
    ],
)
def test_fixed_thresholds_follow_domain_defaults(days: int | None, stage: Stage) -> None:
    assert stage_for(days, DEFAULT) is stage


def test_days_since_counts_whole_days_and_never_negative() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    assert days_since(now - timedelta(days=3, hours=23), now) == 3
    assert days_since(now + timedelta(hours=5), now) == 0
    assert days_since(None, now) is None


def test_learned_cuts_split_the_shop_three_three_three_one() -> None:
    recency = list(range(1, 101))  # one buyer per day of recency
    t = learned_thresholds(recency)
    assert t == Thresholds(30, 60, 90)
    stages = [stage_for(d, t) for d in recency]
    assert [stages.count(s) for s in (Stage.ACTIVE, Stage.SILENT, Stage.SLEEPING, Stage.LOST)] == [
        30,
        30,
        30,
        10,
    ]


def test_learning_needs_enough_buyers_and_ties_do_not_collapse_stages() -> None:
    assert learned_thresholds([5] * 10) is None
    assert thresholds_from_cuts([7, 7, 7]) == Thresholds(7, 8, 9)


def test_thresholds_must_rise() -> None:
    with pytest.raises(ValueError):
        Thresholds(100, 90, 360)
