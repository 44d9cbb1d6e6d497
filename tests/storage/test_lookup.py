"""Look-ups, card data, tags, notes, team binding and shop cut points on real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import bindparam
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.lookup import parse_query
from storage import annotations, followups, team
from storage.customers import (
    CardData,
    customer_tags,
    find_customers,
    load_card,
    load_card_sqlite,
    look_up,
    look_up_sqlite,
    orders_page,
)
from storage.db import ThreadedReads, create_engine, make_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Customer, Order, OrderItem, Product
from storage.sqlite_reads import PreparedRead
from storage.stats import compute_shop_cuts, load_shop_cuts, recompute_shop_stats

NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
async def session(db_url: str) -> AsyncIterator[AsyncSession]:
    await upgrade_async(db_url)
    engine = create_engine(db_url)
    async with make_sessionmaker(engine)() as s:
        await seed(s)
        yield s
    await engine.dispose()


async def seed(s: AsyncSession) -> None:
    people = [
        Customer(external_id="C1", nickname="小鱼儿", name="王芳", phone="13800138000"),
        Customer(external_id="C2", nickname="小鱼干", name="张伟", phone="13700000001"),
        Customer(external_id="C3", nickname="大张", name="张伟", phone="13700000002"),
        Customer(external_id="C4", nickname="<b>'; DROP TABLE customer;--", name="x"),
    ]
    s.add_all(people)
    await s.flush()
    milk, wipes = Product(name="婴儿奶粉"), Product(name="湿巾")
    s.add_all([milk, wipes])
    await s.flush()
    c1 = people[0]
    for i in range(12):
        order = Order(
            order_no=f"T{i:03d}",
            customer_pk=c1.id,
            created_at=NOW - timedelta(days=i * 10),
            paid_at=NOW - timedelta(days=i * 10),
            status="signed",
            amount_cents=1000 + i,
        )
        s.add(order)
        await s.flush()
        s.add(
            OrderItem(
                order_pk=order.id, product_pk=(milk if i % 3 else wipes).id, customer_pk=c1.id, quantity=2
            )
        )
    c1.purchases, c1.total_spent_cents, c1.last_purchase_at = 12, 12066, NOW
    await s.commit()


async def keys(s: AsyncSession, text: str) -> set[str]:
    return {c.external_id for c in await find_customers(session=s, query=parse_query(text))}


async def test_every_key_finds_the_customer(session: AsyncSession) -> None:
    for text in ("13800138000", "+86 138 0013 8000", "小鱼儿", "王芳", "T005", "C1"):
        assert await keys(session, text) == {"C1"}, text


async def test_exact_matches_beat_prefixes_and_prefixes_fall_back(session: AsyncSession) -> None:
    assert await keys(session, "张伟") == {"C2", "C3"}
    assert await keys(session, "小鱼") == {"C1", "C2"}
    assert await keys(session, "nobody") == set()


async def test_sql_in_a_query_is_just_text(session: AsyncSession) -> None:
    assert await keys(session, "<b>'; DROP TABLE customer;--") == {"C4"}
    assert await keys(session, "' OR 1=1 --") == set()


async def test_card_data_has_latest_orders_top_products_tags_and_notes(session: AsyncSession) -> None:
    (c1,) = await find_customers(session=session, query=parse_query("C1"))
    assert await annotations.toggle_tag(session=session, customer_pk=c1.id, tag="decisive", user_id=7) is True
    note = await annotations.add_note(
        session=session, customer_pk=c1.id, author_id=7, author_name="W", text="hi"
    )
    assert note is not None
    card = await load_card(session=session, customer_pk=c1.id)
    assert card is not None
    assert [o.order_no for o in card.recent_orders] == ["T000", "T001", "T002", "T003", "T004"]
    assert card.top_products == [("婴儿奶粉", 16), ("湿巾", 8)]
    assert card.tags == ["decisive"] and [n.text for n in card.notes] == ["hi"]
    assert await load_card(session=session, customer_pk=999_999) is None


async def test_orders_page_counts_and_pages(session: AsyncSession) -> None:
    (c1,) = await find_customers(session=session, query=parse_query("C1"))
    orders, total = await orders_page(session=session, customer_pk=c1.id, page=1, per_page=5)
    assert total == 12 and [o.order_no for o in orders] == ["T005", "T006", "T007", "T008", "T009"]


async def test_tag_toggles_and_note_needs_a_customer(session: AsyncSession) -> None:
    (c1,) = await find_customers(session=session, query=parse_query("C1"))
    assert await annotations.toggle_tag(session=session, customer_pk=c1.id, tag="stingy", user_id=7)
    assert await customer_tags(session=session, customer_pk=c1.id) == {"stingy"}
    assert not await annotations.toggle_tag(session=session, customer_pk=c1.id, tag="stingy", user_id=7)
    assert await customer_tags(session=session, customer_pk=c1.id) == set()
    assert (
        await annotations.add_note(
            session=session, customer_pk=424242, author_id=1, author_name="x", text="t"
        )
        is None
    )


async def test_binding_and_agents(session: AsyncSession) -> None:
    assert await team.bind_chat(session=session, chat_id=-100123, title="Team", bound_by=1)
    assert not await team.bind_chat(session=session, chat_id=-100123, title="Team", bound_by=1)
    assert await team.active_chat_ids(session=session) == [-100123]
    assert await team.unbind_chat(session=session, chat_id=-100123)
    assert await team.active_chat(session=session, chat_id=-100123) is None
    agent = await team.record_agent(
        session=session, user_id=5_000_000_000, display_name="W", username="w", chat_id=-1
    )
    assert agent.verified_at is not None
    await team.set_agent_locale(session=session, user_id=5_000_000_000, display_name="W", locale="en")
    stored = await team.get_agent(session=session, user_id=5_000_000_000)
    assert stored is not None and stored.locale == "en"


async def test_shop_cuts_are_stored_and_read_back(session: AsyncSession, db_url: str) -> None:
    for i in range(40):
        session.add(
            Customer(
                external_id=f"B{i}",
                purchases=1 + i % 4,
                total_spent_cents=1000 * (i + 1),
                last_purchase_at=NOW - timedelta(days=i * 10),
            )
        )
    await session.commit()
    cuts = await compute_shop_cuts(session, NOW)
    assert cuts.buyers == 41 and cuts.rfm is not None and cuts.learned_lifecycle is not None
    assert list(cuts.rfm.recency_days) == sorted(cuts.rfm.recency_days)
    engine = create_engine(db_url)
    await recompute_shop_stats(engine, NOW)
    await engine.dispose()
    stored = await load_shop_cuts(session)
    assert (
        stored is not None and stored.rfm == cuts.rfm and stored.learned_lifecycle == cuts.learned_lifecycle
    )


async def test_reads_on_the_sqlite3_connection_agree_with_the_orm(sqlite_url: str) -> None:
    """The card look-up's SQLite path (storage.sqlite_reads) reads what the ORM reads, value for
    value, and its customers behave as loaded instances."""
    await upgrade_async(sqlite_url)
    engine = create_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    async with sessions() as s:
        await seed(s)
        (c1,) = await find_customers(session=s, query=parse_query("C1"))
        c1.birthday, c1.opted_out, c1.first_purchase_at = date(1990, 5, 1), True, NOW - timedelta(days=400)
        await s.commit()
        await annotations.toggle_tag(session=s, customer_pk=c1.id, tag="decisive", user_id=7)
        await annotations.add_note(
            session=s, customer_pk=c1.id, author_id=7, author_name="Li", text="<b>VIP</b>"
        )
        await followups.create(session=s, item=_follow_up(c1.id), now=NOW)
    queries = ("13800138000", "张伟", "小鱼", "T005", "nobody")
    expected = {}
    async with sessions() as s:
        for text in queries:
            expected[text] = await look_up(session=s, query=parse_query(text))
        expected_card = await load_card(session=s, customer_pk=c1.id)
    reads = ThreadedReads(sqlite_url)
    try:
        for text in queries:
            query = parse_query(text)
            got = await reads.run(lambda conn, q=query: look_up_sqlite(conn=conn, query=q))
            want = expected[text]
            assert [c.model_dump() for c in got.customers] == [c.model_dump() for c in want.customers], text
            assert got.card == want.card or _same_card(got.card, want.card), text
        card = await reads.run(lambda conn: load_card_sqlite(conn=conn, customer_pk=c1.id))
        missing = await reads.run(lambda conn: load_card_sqlite(conn=conn, customer_pk=424242))
    finally:
        reads.close()
    assert expected_card is not None and _same_card(card, expected_card)
    assert card is not None and card.notes and card.follow_ups and card.tags == ["decisive"]
    assert card.customer.birthday == date(1990, 5, 1) and card.customer.opted_out is True
    assert card.customer.first_purchase_at == NOW - timedelta(days=400)  # aware, as the ORM reads it
    assert expected["张伟"].card is None and len(expected["张伟"].customers) == 2
    assert missing is None
    # A customer read this way is a detached loaded instance: it merges back like one.
    async with sessions() as s:
        merged = await s.merge(card.customer, load=False)
        merged.nickname = "改名了"
        await s.commit()
    async with sessions() as s:
        assert (await s.get(Customer, c1.id)).nickname == "改名了"  # type: ignore[union-attr]
    await engine.dispose()


def test_a_prepared_read_refuses_parameters_that_need_converting() -> None:
    since = bindparam("since", type_=Order.__table__.c.created_at.type)
    with pytest.raises(ValueError, match="since"):
        PreparedRead(select(Order).where(Order.created_at > since), since=NOW)


def _same_card(got: CardData | None, want: CardData | None) -> bool:
    if got is None or want is None:
        return got is want
    parts = ("recent_orders", "top_products", "tags", "notes", "follow_ups")
    return got.customer.model_dump() == want.customer.model_dump() and all(
        getattr(got, part) == getattr(want, part) for part in parts
    )


def _follow_up(customer_pk: int) -> followups.NewFollowUp:
    due = NOW + timedelta(minutes=5)
    return followups.NewFollowUp(
        customer_pk=customer_pk,
        chat_id=-100,
        scenario="silent",
        owner_id=7,
        owner_name="Li",
        created_by=7,
        due_at=due,
        fire_at=due,
    )
