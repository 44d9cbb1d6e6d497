"""Follow-up rules: the step chain, retry backoff, lateness and planning around working hours."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from crm.followups import (
    CLOSED_STATES,
    FIRED_ACTION,
    OPEN_STATES,
    Action,
    State,
    Step,
    lateness,
    next_step,
    plan,
    retry_delay,
    shown_step,
)
from crm.working_hours import parse_working_hours

NOW = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # Monday 12:00 in Shanghai


def always_open(at: datetime) -> datetime:
    return at


# Steps


def test_step_chain_is_remind_repost_escalate_then_a_person() -> None:
    assert next_step(Step.REMIND) == Step.REPOST
    assert next_step(Step.REPOST) == Step.ESCALATE
    assert next_step(Step.ESCALATE) is None


def test_shown_step_is_the_one_posted_not_the_one_pending() -> None:
    # Posted and nobody reacted yet: the row holds the step that fires next.
    assert shown_step(State.PENDING, Step.REPOST) == Step.REMIND
    assert shown_step(State.PENDING, Step.ESCALATE) == Step.REPOST
    # Not posted yet (or snoozed back to the start): the first reminder.
    assert shown_step(State.PENDING, Step.REMIND) == Step.REMIND
    # Being posted, waiting for a person after the escalation, or closed: the row's own step.
    for state in (State.FIRING, State.WAITING, State.DONE, State.CANCELLED):
        assert shown_step(state, Step.REPOST) == Step.REPOST
        assert shown_step(state, Step.ESCALATE) == Step.ESCALATE


def test_next_step_of_something_unknown_is_none() -> None:
    assert next_step("nag") is None


def test_walking_the_chain_visits_each_step_once() -> None:
    steps, step = [], Step.REMIND
    while step is not None:
        steps.append(step)
        step = next_step(step)
    assert steps == [Step.REMIND, Step.REPOST, Step.ESCALATE]


def test_every_step_has_its_history_action() -> None:
    assert FIRED_ACTION == {
        Step.REMIND: Action.FIRED,
        Step.REPOST: Action.REPOSTED,
        Step.ESCALATE: Action.ESCALATED,
    }


def test_open_and_closed_states_do_not_overlap() -> None:
    assert set(OPEN_STATES) == {State.PENDING, State.FIRING, State.WAITING}
    assert set(CLOSED_STATES) == {State.DONE, State.CANCELLED, State.UNDELIVERABLE}
    assert not set(OPEN_STATES) & set(CLOSED_STATES)


# Retries


@pytest.mark.parametrize(
    ("attempts", "seconds"),
    [(0, 15), (1, 15), (2, 30), (3, 60), (4, 120), (5, 240), (6, 480), (7, 600), (8, 600), (20, 600)],
)
def test_retry_delay_doubles_from_15_seconds_up_to_10_minutes(attempts: int, seconds: int) -> None:
    assert retry_delay(attempts) == timedelta(seconds=seconds)


def test_retry_delay_never_shrinks_and_never_passes_the_cap() -> None:
    delays = [retry_delay(n) for n in range(1, 40)]
    assert delays == sorted(delays)
    assert max(delays) == timedelta(minutes=10)


@pytest.mark.parametrize("attempts", [44, 100])
def test_retry_delay_stays_capped_after_many_attempts(attempts: int) -> None:
    assert retry_delay(attempts) == timedelta(minutes=10)


# Lateness


@pytest.mark.parametrize("seconds", [0, 1, 30, 59])
def test_lateness_under_a_minute_is_not_mentioned(seconds: int) -> None:
    assert lateness(NOW, NOW + timedelta(seconds=seconds)) is None


def test_lateness_just_under_a_minute_is_not_mentioned() -> None:
    assert lateness(NOW, NOW + timedelta(seconds=59, microseconds=999_999)) is None


@pytest.mark.parametrize("delta", [timedelta(seconds=60), timedelta(seconds=61), timedelta(hours=7)])
def test_lateness_of_a_minute_or_more_is_the_delta(delta: timedelta) -> None:
    assert lateness(NOW, NOW + delta) == delta


def test_early_firing_is_not_late() -> None:
    assert lateness(NOW, NOW - timedelta(minutes=5)) is None


# Planning


def test_plan_without_minutes_waits_for_an_event() -> None:
    calls: list[datetime] = []

    def next_open(at: datetime) -> datetime:
        calls.append(at)
        return at

    assert plan(NOW, None, next_open) == (None, None, False)
    assert calls == []


def test_plan_inside_hours_reminds_when_due() -> None:
    due, remind, carried = plan(NOW, 15, always_open)
    assert due == NOW + timedelta(minutes=15)
    assert remind == due
    assert carried is False


def test_plan_outside_hours_reminds_at_the_next_opening() -> None:
    opening = NOW + timedelta(hours=10)
    due, remind, carried = plan(NOW, 30, lambda at: opening)
    assert due == NOW + timedelta(minutes=30)
    assert remind == opening
    assert carried is True


def test_plan_asks_about_the_due_time_not_now() -> None:
    asked: list[datetime] = []

    def next_open(at: datetime) -> datetime:
        asked.append(at)
        return at

    plan(NOW, 45, next_open)
    assert asked == [NOW + timedelta(minutes=45)]


def test_plan_with_real_working_hours() -> None:
    hours = parse_working_hours("09:00-23:00", "mon-fri", ZoneInfo("Asia/Shanghai"))
    # Monday 12:00 + 15 min: inside hours.
    assert plan(NOW, 15, hours.next_open) == (
        NOW + timedelta(minutes=15),
        NOW + timedelta(minutes=15),
        False,
    )
    # Friday 22:50 Shanghai + 30 min = 23:20, after closing: reminded Monday 09:00 (01:00 UTC).
    friday = datetime(2026, 11, 27, 14, 50, tzinfo=UTC)
    due, remind, carried = plan(friday, 30, hours.next_open)
    assert due == datetime(2026, 11, 27, 15, 20, tzinfo=UTC)
    assert remind == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    assert carried is True
