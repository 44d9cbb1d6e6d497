"""From rows to the care rules and back: the facts crm/care_rules.py reads, the plans it makes
stored in the transaction of the event (or daily run) that made them."""

from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, select
from sqlmodel import col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.care_queue import CareState
from crm.care_rules import (
    CareTable,
    CustomerFacts,
    OrderFacts,
    PlannedCare,
    PurchaseFacts,
    daily,
    on_event,
    one_reminder_a_day,
    still_applies,
)
from crm.events import Event, ReviewData
from storage import care
from storage.models import CareMessage, Customer, Order, OrderItem, Product


def order_facts(order: Order, customer: Customer) -> OrderFacts:
    return OrderFacts(
        order_no=order.order_no,
        customer_id=customer.external_id,
        status=order.status,
        created_at=order.created_at,
        amount_cents=order.amount_cents,
        source=order.source,
        paid_at=order.paid_at,
        shipped_at=order.shipped_at,
        signed_at=order.signed_at,
        carrier=order.carrier,
        province=order.province or customer.province,
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

    async def _store(
        self,
        session: AsyncSession,
        planned: list[PlannedCare],
        customer: Customer,
        order: Order | None,
        now: datetime,
    ) -> None:
        await care.plan(
            session=session,
            planned=planned,
            customer_pk=customer.id or 0,
            order_pk=order.id if order else None,
            now=now,
        )

    async def on_order(
        self, session: AsyncSession, event: Event, order: Order, now: datetime
    ) -> list[CareMessage]:
        customer = await session.get(Customer, order.customer_pk)
        assert customer is not None
        facts = order_facts(order, customer)
        planned = on_event(event.type, facts, customer_facts(customer), now, self.table)
        if event.type == "order.created" and planned:
            booked = await care.payment_reminder_days(session=session, customer_pk=customer.id or 0)
            planned = one_reminder_a_day(planned, {customer.external_id: booked}, self.zone)
        await self._store(session, planned, customer, order, now)
        return await self._drop_stale(session, order, facts, now)

    async def _drop_stale(
        self, session: AsyncSession, order: Order, facts: OrderFacts, now: datetime
    ) -> list[CareMessage]:
        """Messages waiting for this order that the event made pointless (paid: no reminder).
        Returns those with a card in the group, to be redrawn once the event is stored."""
        open_states = [CareState.PLANNED, CareState.QUEUED, CareState.APPROVED]
        rows = (
            await session.exec(
                orm_select(CareMessage).where(
                    CareMessage.order_pk == order.id, col(CareMessage.state).in_(open_states)
                )
            )
        ).all()
        stale = [m for m in rows if not still_applies(m.rule, facts, now=now)]
        if not stale:
            return []
        t = CareMessage.__table__  # type: ignore[attr-defined]
        conn = await session.connection()
        await conn.execute(
            t.update()
            .where(and_(t.c.id.in_([m.id for m in stale]), t.c.state.in_(open_states)))
            .values(state=CareState.DROPPED, drop_reason="no_longer_applies", fire_at=None, decided_at=now)
        )
        return [m for m in stale if m.message_id is not None]

    async def on_review(
        self, session: AsyncSession, event: Event, data: ReviewData, order: Order, now: datetime
    ) -> None:
        customer = await session.get(Customer, order.customer_pk)
        assert customer is not None
        planned = on_event(
            event.type,
            order_facts(order, customer),
            customer_facts(customer),
            now,
            self.table,
            rating=data.rating,
        )
        if not planned:
            return
        # A bad or middling review: no marketing until someone has talked to them.
        customer.bad_reviewer, customer.open_complaint = True, True
        session.add(customer)
        planned = [replace(p, values={**p.values, "review": data.text[:500]}) for p in planned]
        await self._store(session, planned, customer, order, now)

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
