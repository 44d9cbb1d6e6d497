"""storage.figures against crm.figures.compute_figures, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from crm.figures import Figures, OrderFacts, compute_figures
from storage.db import make_sessionmaker
from storage.figures import figures_mismatches, refresh_figures
from storage.models import Customer, Order

T0 = datetime(2026, 1, 1, 8, tzinfo=UTC)


async def seed(engine: AsyncEngine) -> dict[str, int]:
    """Three customers whose orders were written without their figures (as a bare ORM insert would)."""
    async with make_sessionmaker(engine)() as session:
        people = {ext: Customer(external_id=ext) for ext in ("A", "B", "C")}
        session.add_all(people.values())
        await session.flush()
        a, b = people["A"].id, people["B"].id
        assert a is not None and b is not None
        session.add_all(
            [
                Order(order_no="A1", customer_pk=a, created_at=T0, paid_at=T0, amount_cents=1000),
                # Same paid_at as A1 but created later: the last purchase by compute_figures' order.
                Order(
                    order_no="A2",
                    customer_pk=a,
                    created_at=T0 + timedelta(minutes=1),
                    paid_at=T0,
                    amount_cents=2500,
                ),
                Order(
                    order_no="A3",
                    customer_pk=a,
                    created_at=T0 + timedelta(days=3),
                    paid_at=T0 + timedelta(days=3),
                    refunded_at=T0 + timedelta(days=5),
                    amount_cents=9900,
                ),
                Order(order_no="B1", customer_pk=b, created_at=T0, amount_cents=500),  # never paid
            ]
        )
        await session.commit()
        return {ext: c.id for ext, c in people.items() if c.id is not None}


async def test_mismatches_are_found_and_refresh_fixes_them(engine: AsyncEngine) -> None:
    pks = await seed(engine)
    async with engine.connect() as conn:
        found = await figures_mismatches(conn)
        assert sorted(m.external_id for m in found) == ["A", "B"]  # C has no orders: zeros are right
        a = next(m for m in found if m.external_id == "A")
        assert a.stored == Figures()
        assert a.expected == compute_figures(
            [
                OrderFacts(T0, 1000, paid_at=T0),
                OrderFacts(T0 + timedelta(minutes=1), 2500, paid_at=T0),
                OrderFacts(T0 + timedelta(days=3), 9900, T0 + timedelta(days=3), T0 + timedelta(days=5)),
            ]
        )
        assert (a.expected.first_purchase_cents, a.expected.last_purchase_cents) == (1000, 2500)
        assert len(await figures_mismatches(conn, limit=1)) == 1

        await refresh_figures(conn, list(pks.values()))
        await conn.commit()
        assert await figures_mismatches(conn) == []

    async with engine.connect() as conn:
        a_row = (await conn.execute(select(Customer).where(Customer.id == pks["A"]))).one()
        assert (a_row.orders_count, a_row.purchases, a_row.total_spent_cents, a_row.max_payment_cents) == (
            3, 2, 3500, 2500
        )  # fmt: skip
        b_row = (await conn.execute(select(Customer).where(Customer.id == pks["B"]))).one()
        assert (b_row.orders_count, b_row.purchases, b_row.first_purchase_at) == (1, 0, None)


async def test_refresh_runs_in_the_callers_transaction(engine: AsyncEngine) -> None:
    pks = await seed(engine)
    async with engine.connect() as conn:
        await refresh_figures(conn, [pks["A"]])
        await conn.rollback()
        assert {m.external_id for m in await figures_mismatches(conn)} == {"A", "B"}
        await conn.rollback()
        async with conn.begin():
            await refresh_figures(conn, pks.values())
        # A tampered row is reported again.
        await conn.execute(update(Customer).where(Customer.id == pks["C"]).values(purchases=4))
        await conn.commit()
        assert [m.external_id for m in await figures_mismatches(conn)] == ["C"]
        await refresh_figures(conn, [pks["C"]])
        await conn.commit()
        assert await figures_mismatches(conn) == []
