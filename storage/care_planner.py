"""From rows to the care rules and back: the facts crm/care_rules.py reads, the plans it makes
stored in the transaction of the event (or daily run) that made them."""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.care_rules import (
    CareTable,
    CustomerFacts,
    OrderFacts,
    PlannedCare,
    PurchaseFacts,
    daily,
    on_event,
    one_reminder_a_day,
)
from crm.events import ReviewData
from storage import care
from storage.models import Customer, Order, OrderItem, Product


class OrderLike(Protocol):
    """An order row, or the event path's in-memory copy of one."""

    order_no: str
    status: str
    created_at: datetime
    amount_cents: int
    source: str | None
    paid_at: datetime | None
    shipped_at: datetime | None
    signed_at: datetime | None
    carrier: str | None
    province: str | None
    tracking_no: str | None


def order_facts(order: OrderLike, customer: Customer) -> OrderFacts:
    return facts_of_order(order, customer.external_id, customer.province)


def facts_of_order(order: OrderLike, customer_id: str, customer_province: str | None) -> OrderFacts:
    """What the care rules read of an order; the customer's province stands in for a missing one."""
    return OrderFacts(
        order_no=order.order_no,
        customer_id=customer_id,
        status=order.status,
        created_at=order.created_at,
        amount_cents=order.amount_cents,
        source=order.source,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        signed_at=order.signed_at,
        carrier=order.carrier,
        province=order.province or customer_province,
        tracking_no=order.tracking_no,
    )


def customer_facts(customer: Customer) -> CustomerFacts:
    return CustomerFacts(
        customer_id=customer.external_id,
        purchases=customer.purchases,
        birthday=customer.birthday,
        last_purchase_at=customer.last_purchase_at,
        province=customer.province,
    )


class CarePlanner:
    """The event path's care hook (storage.events.CareHook) and the daily job's planner."""

    def __init__(self, table: CareTable, zone: ZoneInfo) -> None:
        self.table, self.zone = table, zone

    # The event path's hook (storage.events.CareHook): pure, the event path reads and stores.
    def order_plans(
        self,
        event_type: str,
        order: OrderFacts,
        customer: CustomerFacts,
        now: datetime,
        booked: Callable[[], Iterable[datetime]],
    ) -> list[PlannedCare]:
        """What an order event plans; `booked()` gives the customer's payment reminders already
        going out (one a day), asked only when the event plans one."""
        planned = on_event(event_type, order, customer, now, self.table)
        if event_type == "order.created" and planned:
            planned = one_reminder_a_day(planned, {customer.customer_id: booked()}, self.zone)
        return planned

    def review_plans(
        self, order: OrderFacts, customer: CustomerFacts, data: ReviewData, now: datetime
    ) -> list[PlannedCare]:
        """A bad or middling review: the alert (the caller marks the customer: no marketing until
        someone has talked to them)."""
        planned = on_event("review.posted", order, customer, now, self.table, rating=data.rating)
        return [replace(p, values={**p.values, "review": data.text[:500]}) for p in planned]

    async def run_daily(self, session: AsyncSession, now: datetime) -> int:
        """Birthdays, N days after the latest purchase, replenishment, parcels over their normal
        days. Reads only the rows that can match today, then plans; idempotent by plan key."""
        today = now.astimezone(self.zone).date()
        after_days = self.table.rule("after_purchase").params.get("days", 7)
        c = Customer
        day_of = today - timedelta(days=after_days)
        window_start = datetime.combine(day_of, datetime.min.time(), tzinfo=self.zone) - timedelta(days=1)
        pg = (await session.connection()).dialect.name == "postgresql"
        month_day = func.to_char(c.birthday, "MM-DD") if pg else func.strftime("%m-%d", c.birthday)
        days = [today.strftime("%m-%d")]
        if days[0] == "02-28" and not calendar.isleap(today.year):
            days.append("02-29")  # a leap-day birthday is kept on the 28th
        customers = (
            await session.exec(
                orm_select(c).where(
                    (col(c.birthday).is_not(None) & (c.purchases >= 1) & month_day.in_(days))
                    | (
                        (col(c.last_purchase_at) >= window_start)
                        & (col(c.last_purchase_at) < window_start + timedelta(days=3))
                    )
                )
            )
        ).all()
        by_id = {x.external_id: x for x in customers}
        horizon = now - timedelta(days=400)
        purchase_rows = (
            await session.exec(
                select(
                    Customer.external_id,
                    Order.order_no,
                    Product.name,
                    OrderItem.quantity,
                    Order.created_at,
                    Product.cycle_days,
                )
                .join(OrderItem, col(OrderItem.order_pk) == Order.id)
                .join(Product, col(Product.id) == OrderItem.product_pk)
                .join(Customer, col(Customer.id) == Order.customer_pk)
                .where(
                    col(Product.cycle_days).is_not(None) | col(Product.name).in_(list(self.table.cycle_days)),
                    col(Order.paid_at).is_not(None),
                    col(Order.created_at) >= horizon,
                )
            )
        ).all()
        purchases = [
            PurchaseFacts(cid, no, name, qty, created, cycle)
            for cid, no, name, qty, created, cycle in purchase_rows
        ]
        shipped = (
            await session.exec(
                orm_select(Order, Customer)
                .join(Customer, col(Customer.id) == Order.customer_pk)
                .where(Order.status == "shipped", col(Order.signed_at).is_(None))
            )
        ).all()
        orders = [order_facts(o, cu) for o, cu in shipped]
        for _, cu in shipped:
            by_id.setdefault(cu.external_id, cu)
        planned = daily(
            now,
            self.table,
            self.zone,
            customers=[customer_facts(x) for x in customers],
            orders=orders,
            purchases=purchases,
        )
        order_pk = {o.order_no: o.id for o, _ in shipped}
        missing = [p.customer_id for p in planned if p.customer_id not in by_id]
        if missing:
            for x in (
                await session.exec(orm_select(Customer).where(col(Customer.external_id).in_(missing)))
            ).all():
                by_id[x.external_id] = x
        stored = 0
        for p in planned:
            customer = by_id[p.customer_id]
            pk = order_pk.get(p.order_no or "") if p.order_no else None
            if p.order_no and pk is None:
                pk = (await session.exec(orm_select(Order.id).where(Order.order_no == p.order_no))).first()
            stored += await care.plan(
                session=session, planned=[p], customer_pk=customer.id or 0, order_pk=pk, now=now
            )
        await session.commit()
        return stored
