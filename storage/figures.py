"""Keeping each customer's running figures (customer.orders_count … last_purchase_cents) in step.

crm.figures.compute_figures is the definition; this module applies it to stored orders. Orders are
fed to it by (created_at, id), which settles ties the same way everywhere: the first purchase is the
earliest paid_at (on a tie, the earliest created order), the last purchase is the latest paid_at (on
a tie, the latest created order). The importer's incremental path (storage/importer.py) relies on it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from crm.figures import Figures, OrderFacts, compute_figures
from storage.models import Customer, Order

FIGURE_COLUMNS: tuple[str, ...] = (
    "orders_count",
    "purchases",
    "total_spent_cents",
    "max_payment_cents",
    "first_purchase_at",
    "first_purchase_cents",
    "last_purchase_at",
    "last_purchase_cents",
)
CHUNK = 1000  # customers per round trip; keeps IN lists well under every driver's parameter limit

_customer = Customer.__table__  # type: ignore[attr-defined]
_orders = Order.__table__  # type: ignore[attr-defined]
_FACTS = (_orders.c.customer_pk, _orders.c.created_at, _orders.c.amount_cents, _orders.c.paid_at,
          _orders.c.refunded_at)  # fmt: skip
_STORED = (_customer.c.id, _customer.c.external_id, *(_customer.c[name] for name in FIGURE_COLUMNS))
_WRITE = (
    update(_customer)
    .where(_customer.c.id == bindparam("pk"))
    .values({name: bindparam(name) for name in FIGURE_COLUMNS})
)

# The customer indexes on running figures (shop statistics read them). Each customer a batch's new
# orders move rewrites three entries in them: ~15 % of writing a large orders file. A bulk orders
# import into SQLite drops them and builds them once at its end, as bulk loaders do; should it be
# killed before, the next import and storage.migrate.upgrade build them (storage.importer).
FIGURE_INDEXES = tuple(
    index
    for index in _customer.indexes
    if index.name
    in ("ix_customer_purchases", "ix_customer_total_spent_cents", "ix_customer_last_purchase_at")
)


def restore_figure_indexes(conn: Connection) -> None:
    """Builds whichever of FIGURE_INDEXES are missing."""
    for index in FIGURE_INDEXES:
        index.create(conn, checkfirst=True)


@dataclass(frozen=True, slots=True)
class FiguresMismatch:
    customer_pk: int
    external_id: str
    stored: Figures
    expected: Figures


def _figures_of(row: Row[Any] | Sequence[Any]) -> Figures:
    """Figures from a row laid out as _STORED (id, external_id, then FIGURE_COLUMNS)."""
    return Figures(*row[2:])


async def _expected(conn: AsyncConnection, pks: Sequence[int]) -> dict[int, Figures]:
    """compute_figures over each customer's stored orders; customers without orders get zeros."""
    facts: dict[int, list[OrderFacts]] = defaultdict(list)
    stmt = (
        select(*_FACTS)
        .where(_orders.c.customer_pk.in_(pks))
        .order_by(_orders.c.customer_pk, _orders.c.created_at, _orders.c.id)
    )
    for pk, created_at, amount, paid_at, refunded_at in await conn.execute(stmt):
        facts[pk].append(OrderFacts(created_at, amount, paid_at, refunded_at))
    return {pk: compute_figures(facts.get(pk, ())) for pk in pks}


def _chunks(pks: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(set(pks))
    for start in range(0, len(ordered), CHUNK):
        yield ordered[start : start + CHUNK]


async def refresh_figures(conn: AsyncConnection, customer_pks: Collection[int]) -> None:
    """Recomputes the figures of these customers from their orders, in the caller's transaction.

    Only rows whose figures differ are written, so a refresh of consistent customers is read-only.
    """
    for pks in _chunks(customer_pks):
        expected = await _expected(conn, pks)
        stored = await conn.execute(select(*_STORED).where(_customer.c.id.in_(pks)))
        writes = [
            {"pk": row.id, **_as_params(expected[row.id])}
            for row in stored
            if _figures_of(row) != expected[row.id]
        ]
        if writes:
            await conn.execute(_WRITE, writes)


def _as_params(figures: Figures) -> dict[str, Any]:
    return {name: getattr(figures, name) for name in FIGURE_COLUMNS}


async def figures_mismatches(conn: AsyncConnection, limit: int = 100) -> list[FiguresMismatch]:
    """Customers whose stored figures differ from compute_figures over their orders (at most `limit`).

    Walks the whole customer table in id order, a chunk at a time, so memory stays flat.
    """
    found: list[FiguresMismatch] = []
    after = 0
    while len(found) < limit:
        stmt = select(*_STORED).where(_customer.c.id > after).order_by(_customer.c.id).limit(CHUNK)
        rows = (await conn.execute(stmt)).all()
        if not rows:
            break
        after = rows[-1].id
        expected = await _expected(conn, [row.id for row in rows])
        for row in rows:
            stored = _figures_of(row)
            if stored != expected[row.id]:
                found.append(FiguresMismatch(row.id, row.external_id, stored, expected[row.id]))
    return found[:limit]
