"""Customer look-ups and what a card needs: one row plus the latest orders."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    DateTime,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    union_all,
)
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.followups import OPEN_STATES
from crm.lookup import Query
from storage.models import Customer, CustomerTag, FollowUp, Note, Order, OrderItem, Product
from storage.sqlite_reads import PreparedRead, detached

PICK_LIMIT = 8
RECENT_ORDERS = 5
TOP_PRODUCTS = 3
RECENT_NOTES = 2
OPEN_FOLLOW_UPS = 5


@dataclass(frozen=True, slots=True)
class OrderLine:
    order_no: str
    created_at: datetime
    amount_cents: int
    status: str
    source: str | None


@dataclass(frozen=True, slots=True)
class NoteLine:
    created_at: datetime
    author_name: str
    text: str


@dataclass(frozen=True, slots=True)
class FollowUpLine:
    scenario: str
    owner_name: str
    due_at: datetime | None


@dataclass(slots=True)
class CardData:
    customer: Customer
    recent_orders: list[OrderLine] = field(default_factory=list)
    top_products: list[tuple[str, int]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    notes: list[NoteLine] = field(default_factory=list)
    follow_ups: list[FollowUpLine] = field(default_factory=list)


# Statements are built once, with bind parameters: building a SELECT (let alone a UNION of
# subqueries) costs more Python time per card than SQLite spends answering it.
_TEXT, _PHONE = bindparam("text", type_=String), bindparam("phone", type_=String)
_CUSTOMER = bindparam("customer_pk", type_=Integer)

_FIND_EXACT = (
    select(Customer)
    .where(
        or_(
            Customer.external_id == _TEXT,
            Customer.nickname == _TEXT,
            Customer.name == _TEXT,
            Customer.phone == _PHONE,
            Customer.id == select(Order.customer_pk).where(Order.order_no == _TEXT).scalar_subquery(),
        )
    )
    .order_by(col(Customer.id))
    .limit(PICK_LIMIT)
)
# Prefix search uses the same indexes on SQLite and PostgreSQL (a range, not LIKE).
_UPPER = bindparam("upper", type_=String)
_FIND_PREFIX = (
    select(Customer)
    .where(
        or_(
            (col(Customer.nickname) >= _TEXT) & (col(Customer.nickname) < _UPPER),
            (col(Customer.name) >= _TEXT) & (col(Customer.name) < _UPPER),
        )
    )
    .order_by(col(Customer.total_spent_cents).desc())
    .limit(PICK_LIMIT)
)


def _find_params(query: Query) -> dict[str, str | None]:
    return {"text": query.text, "phone": query.phone, "upper": query.text + "\U0010ffff"}


async def find_customers(*, session: AsyncSession, query: Query) -> list[Customer]:
    """Exact matches on any key first (phone, customer id, order no., nickname, name), then prefixes."""
    params = _find_params(query)
    found = list((await session.exec(_FIND_EXACT, params=params)).all())
    return found or list((await session.exec(_FIND_PREFIX, params=params)).all())


def _card_query() -> CompoundSelect:
    """Latest orders, notes, tags and top products in one round trip: each query costs more in
    async plumbing than SQLite spends answering it. Notes come first so their column types rule."""

    def row(kind: str, label: Any, n: Any, who: Any, at: Any, extra: Any) -> Select:
        # Every column labelled alike, so UNION lines them up on every database.
        return select(
            literal(kind).label("kind"),
            label.label("label"),
            n.label("n"),
            who.label("who"),
            at.label("at"),
            extra.label("extra"),
        )

    no_text, no_time = cast(null(), String), cast(null(), DateTime(timezone=True))
    notes = (
        row("note", col(Note.text), col(Note.id), col(Note.author_name), col(Note.created_at), no_text)
        .where(Note.customer_pk == _CUSTOMER)
        .order_by(col(Note.id).desc())
        .limit(RECENT_NOTES)
    )
    orders = (
        row(
            "order",
            col(Order.order_no),
            col(Order.amount_cents),
            col(Order.status),
            col(Order.created_at),
            col(Order.source),
        )
        .where(Order.customer_pk == _CUSTOMER)
        .order_by(col(Order.created_at).desc())
        .limit(RECENT_ORDERS)
    )
    tags = row("tag", col(CustomerTag.tag), literal(0), no_text, no_time, no_text).where(
        CustomerTag.customer_pk == _CUSTOMER
    )
    quantity = func.sum(OrderItem.quantity)
    products = (
        row("product", col(Product.name), quantity, no_text, no_time, no_text)
        .select_from(Order)
        .join(OrderItem, col(OrderItem.order_pk) == Order.id)
        .join(Product, col(Product.id) == OrderItem.product_pk)
        .where(Order.customer_pk == _CUSTOMER)
        .group_by(Product.name)
        .order_by(quantity.desc(), Product.name)
        .limit(TOP_PRODUCTS)
    )
    follow_ups = (
        row(
            "follow_up",
            col(FollowUp.scenario),
            col(FollowUp.id),
            col(FollowUp.owner_name),
            col(FollowUp.due_at),
            col(FollowUp.state),
        )
        .where(FollowUp.customer_pk == _CUSTOMER, col(FollowUp.state).in_(OPEN_STATES))
        .limit(OPEN_FOLLOW_UPS)
    )
    parts = (notes, orders, tags, products, follow_ups)
    return union_all(*(select(part.subquery()) for part in parts))


_CARD = _card_query()


def _card_from_rows(customer: Customer, rows: Iterable[Any]) -> CardData:
    card = CardData(customer=customer)
    for kind, label, n, who, at, extra in rows:
        if kind == "order":
            card.recent_orders.append(OrderLine(label, at, n, who, extra))
        elif kind == "note":
            card.notes.append(NoteLine(at, who, label))
        elif kind == "tag":
            card.tags.append(label)
        elif kind == "follow_up":
            card.follow_ups.append(FollowUpLine(label, who, at))
        else:
            card.top_products.append((label, int(n)))
    # UNION ALL promises no order across its parts, so each list is put in order here.
    card.recent_orders.sort(key=lambda o: o.created_at, reverse=True)
    card.notes.sort(key=lambda note: note.created_at, reverse=True)
    card.tags.sort()
    card.follow_ups.sort(key=lambda f: (f.due_at is None, f.due_at))
    return card


async def load_card(*, session: AsyncSession, customer_pk: int) -> CardData | None:
    customer = await session.get(Customer, customer_pk)  # usually already in the session from the look-up
    if customer is None:
        return None
    rows = (await session.exec(_CARD, params={"customer_pk": customer_pk})).all()  # type: ignore[call-overload]
    return _card_from_rows(customer, rows)


@dataclass(slots=True)
class LookupResult:
    customers: list[Customer]
    card: CardData | None  # loaded with the look-up when exactly one customer matched


async def look_up(*, session: AsyncSession, query: Query) -> LookupResult:
    found = await find_customers(session=session, query=query)
    card = await load_card(session=session, customer_pk=found[0].id) if len(found) == 1 else None  # type: ignore[arg-type]
    return LookupResult(found, card)


# SQLite: the look-up as one call in the reader thread, on the sqlite3 connection (storage.sqlite_reads).
_FIND_EXACT_READ = PreparedRead(_FIND_EXACT, text="", phone="")
_FIND_PREFIX_READ = PreparedRead(_FIND_PREFIX, text="", upper="")
_CUSTOMER_READ = PreparedRead(select(Customer).where(Customer.id == _CUSTOMER), customer_pk=0)
_CARD_READ = PreparedRead(_CARD, customer_pk=0)


def _customers(read: PreparedRead, conn: sqlite3.Connection, params: dict[str, Any]) -> list[Customer]:
    return [detached(Customer, read.columns, row) for row in read.rows(conn, params)]


def _card_sqlite(conn: sqlite3.Connection, customer: Customer) -> CardData:
    return _card_from_rows(customer, _CARD_READ.rows(conn, {"customer_pk": customer.id}))


def look_up_sqlite(*, conn: sqlite3.Connection, query: Query) -> LookupResult:
    """look_up on SQLite's own connection."""
    params = _find_params(query)
    found = _customers(_FIND_EXACT_READ, conn, params) or _customers(_FIND_PREFIX_READ, conn, params)
    return LookupResult(found, _card_sqlite(conn, found[0]) if len(found) == 1 else None)


def load_card_sqlite(*, conn: sqlite3.Connection, customer_pk: int) -> CardData | None:
    """load_card on SQLite's own connection."""
    found = _customers(_CUSTOMER_READ, conn, {"customer_pk": customer_pk})
    return _card_sqlite(conn, found[0]) if found else None


async def orders_page(
    *, session: AsyncSession, customer_pk: int, page: int, per_page: int = 8
) -> tuple[list[Order], int]:
    total = (await session.exec(select(func.count()).where(Order.customer_pk == customer_pk))).one()
    stmt = (
        select(Order)
        .where(Order.customer_pk == customer_pk)
        .order_by(col(Order.created_at).desc())
        .offset(max(0, page) * per_page)
        .limit(per_page)
    )
    return list((await session.exec(stmt)).all()), int(total)


async def customer_tags(*, session: AsyncSession, customer_pk: int) -> set[str]:
    stmt = select(CustomerTag.tag).where(CustomerTag.customer_pk == customer_pk)
    return set((await session.exec(stmt)).all())


async def latest_unpaid_order(*, session: AsyncSession, customer_pk: int) -> int | None:
    """The customer's newest order still awaiting payment (what an "unpaid" follow-up is about)."""
    stmt = (
        select(Order.id)
        .where(Order.customer_pk == customer_pk, Order.status == "created")
        .order_by(col(Order.created_at).desc())
        .limit(1)
    )
    return (await session.exec(stmt)).first()


async def order_pk_by_no(*, session: AsyncSession, order_no: str) -> int | None:
    return (await session.exec(select(Order.id).where(Order.order_no == order_no))).first()
