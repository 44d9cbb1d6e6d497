"""Customer look-ups and what a card needs: one row plus the latest orders."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, or_
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


async def find_customers(*, session: AsyncSession, query: Query, limit: int = PICK_LIMIT) -> list[Customer]:
    """Exact matches on any key first (phone, customer id, order no., nickname, name), then prefixes."""
    text = query.text
    keys = [Customer.external_id == text, Customer.nickname == text, Customer.name == text]
    if query.phone:
        keys.append(Customer.phone == query.phone)
    by_order = select(Order.customer_pk).where(Order.order_no == text).scalar_subquery()
    keys.append(Customer.id == by_order)
    stmt = select(Customer).where(or_(*keys)).order_by(col(Customer.id)).limit(limit)
    found = list((await session.exec(stmt)).all())
    if found:
        return found
    # Prefix search uses the same indexes on both SQLite and PostgreSQL (a range, not LIKE).
    upper = text + "\U0010ffff"
    prefix = or_(
        (col(Customer.nickname) >= text) & (col(Customer.nickname) < upper),
        (col(Customer.name) >= text) & (col(Customer.name) < upper),
    )
    stmt = select(Customer).where(prefix).order_by(col(Customer.total_spent_cents).desc()).limit(limit)
    return list((await session.exec(stmt)).all())


async def load_card(*, session: AsyncSession, customer_pk: int) -> CardData | None:
    customer = await session.get(Customer, customer_pk)
    if customer is None:
        return None
    orders = select(Order).where(Order.customer_pk == customer_pk)
    orders = orders.order_by(col(Order.created_at).desc()).limit(RECENT_ORDERS)
    quantity = func.sum(OrderItem.quantity)
    products = (
        select(Product.name, quantity)
        .join(Product, col(Product.id) == OrderItem.product_pk)
        .where(OrderItem.customer_pk == customer_pk)
        .group_by(Product.name)
        .order_by(quantity.desc(), Product.name)
        .limit(TOP_PRODUCTS)
    )
    tags = select(CustomerTag.tag).where(CustomerTag.customer_pk == customer_pk).order_by(CustomerTag.tag)
    notes = (
        select(Note).where(Note.customer_pk == customer_pk).order_by(col(Note.id).desc()).limit(RECENT_NOTES)
    )
    return CardData(
        customer=customer,
        recent_orders=list((await session.exec(orders)).all()),
        top_products=[(name, int(qty)) for name, qty in (await session.exec(products)).all()],
        tags=list((await session.exec(tags)).all()),
        notes=list((await session.exec(notes)).all()),
    )


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
