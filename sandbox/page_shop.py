"""The shop side of the sandbox page: find a demo customer, and make the events a shop would send.

Events are whole and valid before they reach `EventIntake.ingest` (which checks them again and
writes all or nothing), so a page request never leaves half an event behind.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Customer, Order

MAX_QUERY = 64
SHOWN = 8
DEMO_AMOUNT = "128.00"  # under the care rules' high-value line: a reminder card, not a call task
DEMO_CARRIER = "顺丰"
DEMO_REVIEW = "包装破了，客服也一直不回消息。"  # the customer's words: shop data, not page text
EVENT_TYPES = {
    "created": "order.created",
    "paid": "order.paid",
    "shipped": "order.shipped",
    "signed": "order.signed",
    "review": "review.posted",
}


def customer_json(customer: Customer) -> dict[str, Any]:
    return {
        "customer_id": customer.external_id,
        "nickname": customer.nickname,
        "name": customer.name,
        "phone": customer.phone,
        "orders": customer.orders_count,
    }


async def search_customers(sessions: async_sessionmaker[AsyncSession], query: str) -> list[Customer]:
    """Customers whose nickname, name, phone or ID contains ``query``; repeat buyers when it is empty."""
    statement = select(Customer)
    if query:
        statement = statement.where(
            or_(
                *(
                    col(column).contains(query, autoescape=True)
                    for column in (Customer.nickname, Customer.name, Customer.phone, Customer.external_id)
                )
            )
        ).order_by(col(Customer.id))
    else:
        statement = statement.order_by(col(Customer.purchases).desc(), col(Customer.id))
    async with sessions() as session:
        return list((await session.exec(statement.limit(SHOWN))).all())


async def find_customer(sessions: async_sessionmaker[AsyncSession], customer_id: str) -> Customer | None:
    async with sessions() as session:
        statement = select(Customer).where(Customer.external_id == customer_id)
        return (await session.exec(statement)).first()


async def latest_order(sessions: async_sessionmaker[AsyncSession], customer: Customer) -> Order | None:
    """The customer's newest order: the one "paid", "shipped" … move on (the page's own, usually)."""
    async with sessions() as session:
        statement = (
            select(Order)
            .where(Order.customer_pk == customer.id)
            .order_by(col(Order.created_at).desc(), col(Order.id).desc())
            .limit(1)
        )
        return (await session.exec(statement)).first()


def new_order_no(now: datetime) -> str:
    return f"SBX{now:%y%m%d%H%M}-{uuid.uuid4().hex[:6].upper()}"


def shop_event(kind: str, customer: Customer, order_no: str, now: datetime) -> dict[str, Any]:
    """One event as the shop would post it (crm/events.py), happening now on the sandbox clock."""
    data: dict[str, Any] = {"order_id": order_no}
    if kind == "created":
        data.update(
            customer_id=customer.external_id,
            amount=DEMO_AMOUNT,
            created_at=now.isoformat(),
            province=customer.province,
        )
    elif kind == "shipped":
        data.update(carrier=DEMO_CARRIER, tracking_no=f"SF{uuid.uuid4().int % 10**12:012d}")
    elif kind == "review":
        data.update(rating=2, text=DEMO_REVIEW)
    return {
        "id": f"sandbox-{kind}-{uuid.uuid4().hex}",
        "type": EVENT_TYPES[kind],
        "occurred_at": now.isoformat(),
        "data": {k: v for k, v in data.items() if v is not None},
    }
