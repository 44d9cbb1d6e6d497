"""Applying shop events to the records: idempotent by event id, one transaction per batch.

What an event resolves (the follow-ups it answers) is cancelled in the same transaction, so an
order paid and its "ordered, not paid" follow-up can never disagree.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.events import (
    ORDER_STEPS,
    CustomerData,
    Event,
    EventError,
    OrderData,
    RestockData,
    ReviewData,
    advance,
)
from storage import followups
from storage.figures import refresh_figures
from storage.models import CareMessage, Customer, FollowUp, Order, ShopEvent


class CareHook(Protocol):
    """Plans care messages from an applied event, in the same transaction (storage/care_planner.py)."""

    async def on_order(
        self, session: AsyncSession, event: Event, order: Order, now: datetime
    ) -> list[CareMessage]: ...

    async def on_review(
        self, session: AsyncSession, event: Event, data: ReviewData, order: Order, now: datetime
    ) -> None: ...


@dataclass(slots=True)
class Applied:
    accepted: int = 0
    duplicates: int = 0
    resolved: list[FollowUp] = field(default_factory=list)
    restocked: int = 0
    care_dropped: list[CareMessage] = field(default_factory=list)  # their cards need redrawing


async def _customer(session: AsyncSession, external_id: str, now: datetime) -> Customer:
    found = (await session.exec(select(Customer).where(Customer.external_id == external_id))).first()
    if found is None:  # an order for a customer we have not seen yet: a bare record, as the importer does
        found = Customer(external_id=external_id, updated_at=now)
        session.add(found)
        await session.flush()
    return found


async def _upsert_customer(session: AsyncSession, data: CustomerData, now: datetime) -> None:
    customer = await _customer(session, data.customer_id, now)
    for name, value in data.model_dump(exclude={"customer_id"}, exclude_unset=True).items():
        setattr(customer, name, value)
    customer.updated_at = now
    session.add(customer)


async def _apply_order(session: AsyncSession, event: Event, data: OrderData, now: datetime) -> Order:
    order = (await session.exec(select(Order).where(Order.order_no == data.order_id))).first()
    if order is None:
        if data.customer_id is None or data.amount_cents is None:
            raise EventError(
                f"order {data.order_id} is unknown: send order.created (customer_id, amount) first"
            )
        customer = await _customer(session, data.customer_id, now)
        assert customer.id is not None
        order = Order(
            order_no=data.order_id,
            customer_pk=customer.id,
            created_at=data.created_at or event.occurred_at,
            amount_cents=data.amount_cents,
        )
    status, stamp = ORDER_STEPS[event.type]
    for name in ("source", "carrier", "tracking_no", "province"):
        value = getattr(data, name)
        if value:
            setattr(order, name, value)
    if data.amount_cents is not None and event.type == "order.created":
        order.amount_cents = data.amount_cents
    if stamp is not None and getattr(order, stamp) is None:
        setattr(order, stamp, event.occurred_at)
    order.status = advance(order.status, status)
    session.add(order)
    await session.flush()
    return order


async def apply_events(
    *,
    session: AsyncSession,
    events: Sequence[tuple[Event, object]],
    resolves: Callable[[str], Sequence[str]],
    restock_scenarios: Sequence[str],
    now: datetime,
    care: CareHook | None = None,
) -> Applied:
    """Apply a batch atomically. `resolves(event_type)` names the scenario keys an event answers.
    Raises EventError (nothing written) when an event cannot be applied."""
    result = Applied()
    touched: set[int] = set()
    try:
        for event, data in events:
            if await session.get(ShopEvent, event.id) is not None:
                result.duplicates += 1
                continue
            session.add(
                ShopEvent(
                    id=event.id,
                    type=event.type,
                    occurred_at=event.occurred_at,
                    received_at=now,
                    payload=json.dumps(event.data, ensure_ascii=False, default=str),
                )
            )
            result.accepted += 1
            if isinstance(data, CustomerData):
                await _upsert_customer(session, data, now)
            elif isinstance(data, OrderData):
                order = await _apply_order(session, event, data, now)
                touched.add(order.customer_pk)
                result.resolved += await followups.resolve_by_event(
                    session=session,
                    customer_pk=order.customer_pk,
                    scenarios=resolves(event.type),
                    reason=event.type,
                    now=now,
                )
                if care is not None:
                    result.care_dropped += await care.on_order(session, event, order, now)
            elif isinstance(data, ReviewData):
                reviewed = (await session.exec(select(Order).where(Order.order_no == data.order_id))).first()
                if reviewed is None:
                    raise EventError(f"review of order {data.order_id}: that order is unknown")
                if care is not None:
                    await care.on_review(session, event, data, reviewed, now)
            elif isinstance(data, RestockData):
                result.restocked += await followups.restocked(
                    session=session, product=data.product, scenarios=restock_scenarios, now=now
                )
            await session.flush()
        if touched:
            await refresh_figures(await session.connection(), touched)
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise EventError("the batch conflicts with data written at the same moment; send it again") from None
    except BaseException:
        await session.rollback()
        raise
    return result
