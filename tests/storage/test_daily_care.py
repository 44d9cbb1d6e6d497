"""The daily care run on real SQLite and PostgreSQL: birthdays, N days after the latest purchase,
replenishment and parcels over their normal days become planned messages, once however often it
runs that day."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.care_setup import load_care_table
from bot.palette_file import SHIPPED_CONFIG
from crm.care_queue import CareState
from storage.care_planner import CarePlanner
from storage.db import make_sessionmaker
from storage.models import CareMessage, Customer, Order, OrderItem, Product

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai, when the job runs


async def seed(engine: AsyncEngine) -> None:
    week_ago = NOW - timedelta(days=7)
    async with make_sessionmaker(engine)() as session:
        session.add_all(
            [
                # Birthday today, a buyer: greeted. Birthday today, never bought: not.
                Customer(external_id="B1", birthday=date(1990, 11, 23), purchases=2, orders_count=2),
                Customer(external_id="B0", birthday=date(1991, 11, 23), purchases=0),
                # Last purchase exactly 7 days ago (Shanghai calendar): the after-purchase message.
                Customer(external_id="A7", purchases=1, orders_count=1, last_purchase_at=week_ago),
                Customer(
                    external_id="A6",
                    purchases=1,
                    orders_count=1,
                    last_purchase_at=week_ago + timedelta(days=1),
                ),
                # A parcel to Xinjiang shipped 8 days ago (normal: 6) and one to Zhejiang 2 days ago.
                Customer(external_id="L1", purchases=1, orders_count=2, province="新疆"),
                # Bought 2 × a 30-day product 53 days ago: runs out in a week.
                Customer(external_id="R1", purchases=1, orders_count=1),
            ]
        )
        await session.commit()
        ids = {c.external_id: c.id for c in (await session.exec(select(Customer))).all()}
        shipped = NOW - timedelta(days=8)
        session.add_all(
            [
                Order(order_no="LATE", customer_pk=ids["L1"], created_at=shipped, paid_at=shipped,
                      shipped_at=shipped, status="shipped", amount_cents=9900, carrier="顺丰",
                      province="新疆"),
                Order(order_no="FINE", customer_pk=ids["L1"], created_at=NOW - timedelta(days=2),
                      paid_at=NOW - timedelta(days=2), shipped_at=NOW - timedelta(days=2), status="shipped",
                      amount_cents=9900, carrier="顺丰", province="浙江"),
                Order(order_no="MILK", customer_pk=ids["R1"], created_at=NOW - timedelta(days=53),
                      paid_at=NOW - timedelta(days=53), status="signed", amount_cents=30000),
            ]
        )  # fmt: skip
        product = Product(name="奶粉 800g", cycle_days=30)
        session.add(product)
        await session.commit()
        milk = (await session.exec(select(Order).where(Order.order_no == "MILK"))).one()
        session.add(
            OrderItem(order_pk=milk.id or 0, product_pk=product.id or 0, customer_pk=ids["R1"], quantity=2)
        )
        await session.commit()


async def test_the_daily_run_plans_each_message_once(engine: AsyncEngine) -> None:
    await seed(engine)
    planner = CarePlanner(load_care_table(SHIPPED_CONFIG), SHANGHAI)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        first = await planner.run_daily(session, NOW)
    async with sessions() as session:
        again = await planner.run_daily(session, NOW + timedelta(hours=2))
        rows = (
            await session.exec(
                select(CareMessage.rule, Customer.external_id, CareMessage.state, CareMessage.values)
                .join(Customer, Customer.id == CareMessage.customer_pk)  # type: ignore[arg-type]
                .order_by(CareMessage.rule, Customer.external_id)
            )
        ).all()
    planned = {(rule, who) for rule, who, _state, _values in rows}
    assert planned == {
        ("birthday", "B1"),
        ("after_purchase", "A7"),
        ("logistics_abnormal", "L1"),
        ("replenishment", "R1"),
    }
    assert first == 4 and again == 0, "a second run the same day plans nothing new"
    assert all(state == CareState.PLANNED for _rule, _who, state, _values in rows)
    logistics = next(v for rule, _who, _s, v in rows if rule == "logistics_abnormal")
    assert '"order_no": "LATE"' in logistics and '"days": "6"' in logistics
