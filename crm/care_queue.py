"""A care message's way through the queue: states, what a decision may change, retry timing.

planned ──due──▶ queued (approval card in the group) ──Approve──▶ approved ──send_at──▶ sending
   │               │  └─Skip──▶ skipped                                    │    ├─▶ delivered
   │               └─(an agent_task) Approve ──▶ task ──Done──▶ done        │    ├─▶ approved (retry later)
   └─(automatic rule) ──▶ approved                                         │    └─▶ failed (dead letter)
Any open message whose reason went away (order paid, customer opted out) becomes dropped.
A bad-review alert is `alert` until someone takes it (`handling`), then `handled`.
"""

from __future__ import annotations

from datetime import timedelta


class CareState:
    PLANNED = "planned"  # due at fire_at; nobody has seen it yet
    QUEUED = "queued"  # its approval card is in the group
    APPROVED = "approved"  # goes out at fire_at (quiet hours, caps), or is waiting to retry
    SENDING = "sending"  # claimed by one process; fire_at is when the claim lapses
    DELIVERED = "delivered"
    TASK = "task"  # a call / IM for an agent, accepted; they press Done when it is made
    DONE = "done"
    SKIPPED = "skipped"
    DROPPED = "dropped"  # no longer applies, or the customer is excluded
    FAILED = "failed"  # the channel refused it or gave up: the dead letter
    ALERT = "alert"  # a bad review, posted at once, nobody has taken it
    HANDLING = "handling"
    HANDLED = "handled"


DUE_STATES = (CareState.PLANNED, CareState.APPROVED, CareState.SENDING)
DECIDABLE = (CareState.QUEUED,)
OPEN_STATES = (
    CareState.PLANNED,
    CareState.QUEUED,
    CareState.APPROVED,
    CareState.SENDING,
    CareState.TASK,
)
AGENT_TASK = "agent_task"
ALERT_CHANNEL = "alert"

MAX_ATTEMPTS = 6
RETRY_FIRST, RETRY_CAP = timedelta(seconds=30), timedelta(minutes=30)


class DropReason:
    NO_LONGER_APPLIES = "no_longer_applies"
    NO_TEAM_CHAT = "no_team_chat"
    # crm.sending.Exclusion values are drop reasons too (opted_out, unreachable, …).


def retry_delay(attempts: int, asked: float | None = None) -> timedelta:
    """Back off 30 s, 1 min, 2 min … capped at 30 min; a receiver's Retry-After wins when longer."""
    backoff = min(RETRY_FIRST * (2 ** max(attempts - 1, 0)), RETRY_CAP)
    if asked is not None and asked > 0:
        return max(backoff, min(timedelta(seconds=asked), RETRY_CAP))
    return backoff


def gives_up(attempts: int) -> bool:
    return attempts >= MAX_ATTEMPTS
