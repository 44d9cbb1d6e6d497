"""The event path on SQLite's writer thread (storage.db.ThreadedWrites) writes through the sqlite3
connection under the session, not through SQLAlchemy: it must store exactly what the Core path
stores (the same text in every column: datetimes, dates, booleans), and what it stores must read
back through the ORM as the ORM wrote it."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from bot.care_setup import load_care_table
from bot.palette_file import SHIPPED_CONFIG
from crm.events import EventError, parse_events
from storage import followups
from storage.care_planner import CarePlanner
from storage.db import ThreadedWrites, create_engine, make_sessionmaker, sqlite_driver
from storage.events import Applied, apply_events_sync
from storage.figures import figures_mismatches
from storage.followups import NewFollowUp
from storage.migrate import upgrade_async
from storage.models import CareMessage, Customer, FollowUp, Order, ShopEvent, TeamChat

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 3, 0, 0, 250_000, tzinfo=UTC)
TABLES = ("shop_event", "customer", "orders", "care_message", "follow_up", "follow_up_event")


def _event(event_id: str, kind: str, at: str = "2026-11-23T10:00:00.5+08:00", **data: object) -> dict:
    return {"id": event_id, "type": kind, "occurred_at": at, "data": data}


def _requests() -> list[list[dict]]:
    return [
        [
            _event("c1", "customer.upserted", customer_id="C1", nickname="老客", birthday="1990-02-03",
                   phone="13800138000", created_at="2020-01-01T08:00:00+08:00"),
            _event("o1", "order.created", order_id="N1", customer_id="C1", amount="99.50", source="taobao",
                   created_at="2026-11-23T09:59:00+08:00"),
            _event("o2", "order.created", order_id="N2", customer_id="NEW-1", amount="10", province="浙江"),
        ],
        [_event("p1", "order.paid", "2026-11-23T10:05:00+08:00", order_id="N1")],
        [_event("bad", "order.paid", order_id="NO-SUCH")],
        [
            _event("s1", "order.shipped", "2026-11-23T11:00:00+08:00", order_id="N1", carrier="SF",
                   tracking_no="SF123"),
            _event("o3", "order.created", order_id="N3", customer_id="C2", amount="1999"),
            _event("o1", "order.created", order_id="N1", customer_id="C1", amount="99.50"),  # a repeat
        ],
        [_event("r1", "review.posted", order_id="N1", rating=2, text="slow")],
        [
            _event("p2", "order.paid", "2026-11-23T10:30:00+08:00", order_id="N2"),
            _event("f1", "order.refunded", "2026-11-23T12:00:00+08:00", order_id="N2"),
            _event("c2", "customer.upserted", customer_id="NEW-1", email="a@example.com",
                   zone="asia/singapore"),
        ],
    ]  # fmt: skip


def _resolves(event_type: str) -> tuple[str, ...]:
    return {"order.paid": ("unpaid",), "order.created": ("hesitating",)}.get(event_type, ())


async def _database(path: Path) -> str:
    url = "sqlite+aiosqlite:///" + str(path)
    await upgrade_async(url)
    engine = create_engine(url)
    async with make_sessionmaker(engine)() as session:
        session.add(Customer(external_id="C1", nickname="客户1"))
        session.add(Customer(external_id="C2", nickname="客户2"))
        session.add(TeamChat(chat_id=-100, title="team", bound_by=1, bound_at=NOW))
        await session.commit()
        for scenario in ("unpaid", "hesitating"):
            item = NewFollowUp(
                customer_pk=1, chat_id=-100, scenario=scenario, owner_id=7, owner_name="agent7",
                created_by=7, due_at=NOW, fire_at=NOW,
            )  # fmt: skip
            await followups.create(session=session, item=item, now=NOW)
    await engine.dispose()
    return url


def _outcome(r: Applied | EventError) -> object:
    if isinstance(r, EventError):
        return str(r)
    return (r.accepted, r.duplicates, [f.id for f in r.resolved], r.restocked, len(r.care_dropped))


def _apply(session: Session, raw: bool) -> list[object]:
    assert (sqlite_driver(session.connection()) is not None) is raw
    planner = CarePlanner(load_care_table(SHIPPED_CONFIG), SHANGHAI)
    requests = []
    for body in _requests():
        parsed, errors = parse_events(body)
        assert not errors, errors
        requests.append(parsed)
    out: list[object] = []
    # The first three together (group commit: the bad one fails alone), the rest one by one.
    for step, group in enumerate([requests[:3], *([r] for r in requests[3:])]):
        out += map(
            _outcome,
            apply_events_sync(
                session,
                group,
                resolves=_resolves,
                restock_scenarios=(),
                now=NOW + timedelta(seconds=step),
                care=planner,
            ),
        )
    return out


def _dump(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}


async def test_the_raw_sqlite_path_stores_what_the_core_path_stores(tmp_path: Path) -> None:
    core_url = await _database(tmp_path / "core.db")
    raw_url = await _database(tmp_path / "raw.db")
    engine = create_engine(core_url)
    async with make_sessionmaker(engine)() as session:
        core_results = await session.run_sync(lambda sync: _apply(sync, raw=False))
    await engine.dispose()
    writes = ThreadedWrites(raw_url)
    try:
        raw_results = await writes.run(lambda sync: _apply(sync, raw=True))
    finally:
        writes.close()
    assert raw_results == core_results
    core, raw = _dump(tmp_path / "core.db"), _dump(tmp_path / "raw.db")
    for table in TABLES:
        assert raw[table] == core[table], table
    assert raw["care_message"] and raw["follow_up_event"]  # the test exercised them

    # What the raw path wrote reads back through the ORM: aware UTC datetimes, dates, booleans.
    engine = create_engine(raw_url)
    async with make_sessionmaker(engine)() as session:
        n1 = (await session.exec(select(Order).where(Order.order_no == "N1"))).one()
        assert n1.created_at == datetime(2026, 11, 23, 1, 59, tzinfo=UTC)
        assert n1.paid_at == datetime(2026, 11, 23, 2, 5, tzinfo=UTC)
        assert n1.shipped_at == datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
        assert (n1.status, n1.carrier, n1.amount_cents) == ("shipped", "SF", 9950)
        c1 = await session.get(Customer, n1.customer_pk)
        assert c1 is not None and c1.birthday == date(1990, 2, 3)
        assert c1.created_at == datetime(2020, 1, 1, tzinfo=UTC)
        new1 = (await session.exec(select(Customer).where(Customer.external_id == "NEW-1"))).one()
        assert (new1.email, new1.zone, c1.zone) == ("a@example.com", "Asia/Singapore", None)
        assert c1.last_purchase_at == n1.paid_at and c1.purchases == 1
        assert c1.bad_reviewer is True and c1.open_complaint is True and c1.opted_out is False
        new = (await session.exec(select(Customer).where(Customer.external_id == "NEW-1"))).one()
        assert (new.orders_count, new.purchases, new.email, new.bad_reviewer) == (
            1,
            0,
            "a@example.com",
            False,
        )
        event = await session.get(ShopEvent, "o1")
        assert event is not None and event.received_at == NOW
        assert event.occurred_at == datetime(2026, 11, 23, 2, 0, 0, 500_000, tzinfo=UTC)
        plans = (await session.exec(select(CareMessage).order_by(CareMessage.id))).all()
        assert plans and all(p.due_at.tzinfo is not None and p.created_at.tzinfo is not None for p in plans)
        assert any(p.state == "dropped" and p.decided_at is not None for p in plans)
        assert await figures_mismatches(await session.connection()) == []  # figures kept in memory are exact
        unpaid = (await session.exec(select(FollowUp).where(FollowUp.scenario == "unpaid"))).one()
        assert unpaid.state == "cancelled" and unpaid.closed_at is not None
    await engine.dispose()
