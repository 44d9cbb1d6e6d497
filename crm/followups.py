"""A follow-up's life, as rules: states, the steps an unanswered reminder goes through, retries.

pending ──(due, claimed)──▶ firing ──(posted)──▶ pending (next step: repost, then escalate)
   ▲                          │                        └─(no step left)──▶ waiting
   └──────(snoozed)───────────┴── failed send: pending again, later
Done / Cancel end it from any open state; an event that answers it cancels it too.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta


class State:
    PENDING = "pending"  # something to do at fire_at (or waiting for a restock when fire_at is unset)
    FIRING = "firing"  # claimed by one process; fire_at is when the claim lapses
    WAITING = "waiting"  # reminded, re-posted and escalated: only a person can move it now
    DONE = "done"
    CANCELLED = "cancelled"
    UNDELIVERABLE = "undeliverable"  # the team chat is gone or the bot was removed from it


OPEN_STATES = (State.PENDING, State.FIRING, State.WAITING)
CLOSED_STATES = (State.DONE, State.CANCELLED, State.UNDELIVERABLE)


class Step:
    REMIND = "remind"
    REPOST = "repost"
    ESCALATE = "escalate"


_AFTER = {Step.REMIND: Step.REPOST, Step.REPOST: Step.ESCALATE}
_BEFORE = {after: step for step, after in _AFTER.items()}


class Action:
    """What the history records (follow_up_event.action)."""

    CREATED = "created"
    FIRED = "fired"
    REPOSTED = "reposted"
    ESCALATED = "escalated"
    SNOOZED = "snoozed"
    REASSIGNED = "reassigned"
    DONE = "done"
    CANCELLED = "cancelled"
    RESOLVED = "resolved"  # cancelled by a shop event
    RETRY = "retry"
    UNDELIVERABLE = "undeliverable"


FIRED_ACTION = {Step.REMIND: Action.FIRED, Step.REPOST: Action.REPOSTED, Step.ESCALATE: Action.ESCALATED}
SNOOZE_CHOICES = (5, 15)
# A reminder this much after its time is marked late (with how late).
LATE_AFTER = timedelta(seconds=60)
RETRY_FIRST, RETRY_CAP = timedelta(seconds=15), timedelta(minutes=10)


def next_step(step: str) -> str | None:
    """The step after `step` has been posted and nobody reacted; None: only a person can act."""
    return _AFTER.get(step)


def shown_step(state: str, step: str) -> str:
    """The step whose reminder the chat shows. Once a reminder is posted, a pending row already holds
    the step after it (what fires if nobody reacts); a waiting, firing or closed row holds its own."""
    return _BEFORE.get(step, step) if state == State.PENDING else step


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff for a reminder Telegram would not take: 15 s, 30 s, 1 min … 10 min."""
    doublings = min(max(0, attempts - 1), 10)  # 15 s × 2¹⁰ is past the cap already; no overflow later
    return min(RETRY_CAP, RETRY_FIRST * 2**doublings)


def lateness(scheduled: datetime, fired: datetime) -> timedelta | None:
    """How late a reminder went out, when late enough to say so (after a restart, say)."""
    late = fired - scheduled
    return late if late >= LATE_AFTER else None


def plan(
    now: datetime, minutes: int | None, next_open: Callable[[datetime], datetime]
) -> tuple[datetime | None, datetime | None, bool]:
    """(due, when to remind, carried over) for a follow-up `minutes` from now; no minutes: it waits
    for an event (a restock). A reminder due outside working hours waits for the next shift."""
    if minutes is None:
        return None, None, False
    due = now + timedelta(minutes=minutes)
    remind = next_open(due)
    return due, remind, remind > due
