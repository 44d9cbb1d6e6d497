"""Customer look-ups and what a card needs: one row plus the latest orders."""

from __future__ import annotations

from dataclasses import dataclass, field
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

from crm.lookup import Query
from storage.models import Customer, CustomerTag, Note, Order, OrderItem, Product

PICK_LIMIT = 8
RECENT_ORDERS = 5
TOP_PRODUCTS = 3
RECENT_NOTES = 2


@dataclass(slots=True)
class CardData:
    customer: Customer
    recent_orders: list[Order]
    top_products: list[tuple[str, int]]
    tags: list[str]
    notes: list[Note] = field(default_factory=list)


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


async def find_customers(*, session: AsyncSession, query: Query) -> list[Customer]:
    """Exact matches on any key first (phone, customer id, order no., nickname, name), then prefixes."""
    params = {"text": query.text, "phone": query.phone}
    found = list((await session.exec(_FIND_EXACT, params=params)).all())
    if found:
        return found
    params["upper"] = query.text + "\U0010ffff"
    return list((await session.exec(_FIND_PREFIX, params=params)).all())


def _extras_query() -> CompoundSelect:
    """Notes, tags and top products in one round trip: each query costs more in async plumbing
    than SQLite spends answering it. Notes come first so their column types rule."""

    def row(kind: str, label: Any, n: Any, author: Any, at: Any) -> Select:
        # Every column labelled alike, so UNION lines them up on every database.
        return select(
            literal(kind).label("kind"),
            label.label("label"),
            n.label("n"),
            author.label("author"),
            at.label("at"),
        )

    no_author, no_time = cast(null(), String), cast(null(), DateTime(timezone=True))
    notes = (
        row("note", col(Note.text), col(Note.id), col(Note.author_name), col(Note.created_at))
        .where(Note.customer_pk == _CUSTOMER)
        .order_by(col(Note.id).desc())
        .limit(RECENT_NOTES)
    )
    tags = row("tag", col(CustomerTag.tag), literal(0), no_author, no_time).where(
        CustomerTag.customer_pk == _CUSTOMER
    )
    quantity = func.sum(OrderItem.quantity)
    products = (
        row("product", col(Product.name), quantity, no_author, no_time)
        .join(Product, col(Product.id) == OrderItem.product_pk)
        .where(OrderItem.customer_pk == _CUSTOMER)
        .group_by(Product.name)
        .order_by(quantity.desc(), Product.name)
        .limit(TOP_PRODUCTS)
    )
    return union_all(*(select(part.subquery()) for part in (notes, tags, products)))


_EXTRAS = _extras_query()
_RECENT_ORDERS = (
    select(Order)
    .where(Order.customer_pk == _CUSTOMER)
    .order_by(col(Order.created_at).desc())
    .limit(RECENT_ORDERS)
)


async def load_card(*, session: AsyncSession, customer_pk: int) -> CardData | None:
    customer = await session.get(Customer, customer_pk)  # usually already in the session from the look-up
    if customer is None:
        return None
    params = {"customer_pk": customer_pk}
    orders = list((await session.exec(_RECENT_ORDERS, params=params)).all())
    card = CardData(customer=customer, recent_orders=orders, top_products=[], tags=[])
    for kind, label, n, author, at in (await session.exec(_EXTRAS, params=params)).all():  # type: ignore[call-overload]
        if kind == "note":
            card.notes.append(
                Note(
                    id=n, customer_pk=customer_pk, author_id=0, author_name=author, text=label, created_at=at
                )
            )
        elif kind == "tag":
            card.tags.append(label)
        else:
            card.top_products.append((label, int(n)))
    card.tags.sort()
    return card


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
