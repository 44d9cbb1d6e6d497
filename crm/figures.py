"""A customer's running figures, derived from their orders.

A purchase is an order that was paid and not refunded. The storage layer keeps these figures on
the customer row; this is the one definition both it and the consistency test use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class OrderFacts:
    created_at: datetime
    amount_cents: int
    paid_at: datetime | None = None
    refunded_at: datetime | None = None

    @property
    def is_purchase(self) -> bool:
        return self.paid_at is not None and self.refunded_at is None


@dataclass(frozen=True, slots=True)
class Figures:
    orders_count: int = 0
    purchases: int = 0
    total_spent_cents: int = 0
    max_payment_cents: int = 0
    first_purchase_at: datetime | None = None
    first_purchase_cents: int | None = None
    last_purchase_at: datetime | None = None
    last_purchase_cents: int | None = None


def compute_figures(orders: Iterable[OrderFacts]) -> Figures:
    count = purchases = total = largest = 0
    first: OrderFacts | None = None
    last: OrderFacts | None = None
    for order in orders:
        count += 1
        if not order.is_purchase:
            continue
        purchases += 1
        total += order.amount_cents
        largest = max(largest, order.amount_cents)
        assert order.paid_at is not None
        if first is None or order.paid_at < first.paid_at:  # type: ignore[operator]
            first = order
        if last is None or order.paid_at >= last.paid_at:  # type: ignore[operator]
            last = order
    return Figures(
        orders_count=count,
        purchases=purchases,
        total_spent_cents=total,
        max_payment_cents=largest,
        first_purchase_at=first.paid_at if first else None,
        first_purchase_cents=first.amount_cents if first else None,
        last_purchase_at=last.paid_at if last else None,
        last_purchase_cents=last.amount_cents if last else None,
    )


def average_order_cents(total_spent_cents: int, purchases: int) -> int | None:
    """客单价: spend per purchase, rounded half up to a cent; None before the first purchase."""
    if purchases <= 0:
        return None
    return (total_spent_cents * 2 + purchases) // (purchases * 2)
