"""storage/figures.py's refresh on a synchronous connection, for units of work that run in the
SQLite writer thread (storage.db.ThreadedWrites) or through AsyncSession.run_sync. Same SQL, same
definition (crm.figures.compute_figures), same tie rules."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import Connection, select

from crm.figures import Figures, OrderFacts, compute_figures
from storage.figures import (
    _FACTS,
    _STORED,
    _WRITE,
    _as_params,
    _chunks,
    _customer,
    _figures_of,
    _orders,
)


def _expected(conn: Connection, pks: Sequence[int]) -> dict[int, Figures]:
    facts: dict[int, list[OrderFacts]] = defaultdict(list)
    stmt = (
        select(*_FACTS)
        .where(_orders.c.customer_pk.in_(pks))
        .order_by(_orders.c.customer_pk, _orders.c.created_at, _orders.c.id)
    )
    for pk, created_at, amount, paid_at, refunded_at in conn.execute(stmt):
        facts[pk].append(OrderFacts(created_at, amount, paid_at, refunded_at))
    return {pk: compute_figures(facts.get(pk, ())) for pk in pks}


def refresh_figures_sync(conn: Connection, customer_pks: Collection[int]) -> None:
    """Recomputes these customers' figures from their orders, in the caller's transaction; writes
    only the rows whose figures differ (storage.figures.refresh_figures, synchronously)."""
    for pks in _chunks(customer_pks):
        expected = _expected(conn, pks)
        stored = conn.execute(select(*_STORED).where(_customer.c.id.in_(pks)))
        writes = [
            {"pk": row.id, **_as_params(expected[row.id])}
            for row in stored
            if _figures_of(row) != expected[row.id]
        ]
        if writes:
            conn.execute(_WRITE, writes)
