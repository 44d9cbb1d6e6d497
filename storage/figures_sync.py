"""storage/figures.py's refresh on a synchronous connection, for units of work that run in the
SQLite writer thread (storage.db.ThreadedWrites) or through AsyncSession.run_sync. Same SQL, same
definition (crm.figures.compute_figures), same tie rules."""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Collection, Sequence

from sqlalchemy import Connection, select

from crm.figures import Figures, OrderFacts, compute_figures
from storage.db import db_time, py_time
from storage.figures import (
    _FACTS,
    _STORED,
    _WRITE,
    FIGURE_COLUMNS,
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


_RAW_FACTS = (
    "SELECT customer_pk, created_at, amount_cents, paid_at, refunded_at FROM orders "
    "WHERE customer_pk IN ({}) ORDER BY customer_pk, created_at, id"
)
_RAW_STORED = "SELECT id, " + ", ".join(FIGURE_COLUMNS) + " FROM customer WHERE id IN ({})"
_RAW_WRITE = "UPDATE customer SET " + ", ".join(f"{n}=?" for n in FIGURE_COLUMNS) + " WHERE id=?"


def refresh_figures_raw(cur: sqlite3.Cursor, customer_pks: Collection[int]) -> None:
    """refresh_figures_sync on the sqlite3 cursor under the caller's transaction (the event path on
    SQLite): the same statements, values stored as the ORM stores them."""
    for pks in _chunks(customer_pks):
        marks = ",".join("?" * len(pks))
        facts: dict[int, list[OrderFacts]] = defaultdict(list)
        for pk, created_at, amount, paid_at, refunded_at in cur.execute(_RAW_FACTS.format(marks), pks):
            facts[pk].append(OrderFacts(py_time(created_at), amount, py_time(paid_at), py_time(refunded_at)))
        writes = []
        for pk, count, purchases, total, largest, first_at, first_cents, last_at, last_cents in cur.execute(
            _RAW_STORED.format(marks), pks
        ).fetchall():
            stored = Figures(
                count, purchases, total, largest, py_time(first_at), first_cents, py_time(last_at), last_cents
            )
            expected = compute_figures(facts.get(pk, ()))
            if stored != expected:
                e = expected
                writes.append(
                    (
                        e.orders_count,
                        e.purchases,
                        e.total_spent_cents,
                        e.max_payment_cents,
                        None if e.first_purchase_at is None else db_time(e.first_purchase_at),
                        e.first_purchase_cents,
                        None if e.last_purchase_at is None else db_time(e.last_purchase_at),
                        e.last_purchase_cents,
                        pk,
                    )
                )
        if writes:
            cur.executemany(_RAW_WRITE, writes)
