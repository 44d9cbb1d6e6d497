"""What every delivery channel takes and answers, so the care queue can treat them alike."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # worth another attempt later: the receiver was down, slow or busy
    REJECTED = "rejected"  # another attempt would get the same answer


@dataclass(frozen=True, slots=True)
class Outgoing:
    delivery_id: str  # idempotency key: the same for every attempt at one message
    customer_id: str
    rule: str
    to: str | None  # phone (webhook) or e-mail address (email)
    text: str
    subject: str | None = None
    order_no: str | None = None
    locale: str = "zh_CN"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str = ""  # shown in the group: short, and never a secret
    retry_after: float | None = None  # seconds the receiver asked us to wait, if it said


class Channel(Protocol):
    name: str

    async def send(self, item: Outgoing) -> Result: ...

    async def close(self) -> None: ...
