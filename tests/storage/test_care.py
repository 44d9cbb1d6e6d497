"""The care queue's rows on real SQLite and PostgreSQL: events plan once, a due row is claimed by
one claimer, two presses make one decision, quiet hours and caps move an approved message, a
failing channel is retried and ends as a dead letter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.care_setup import load_care_table
from bot.palette_file import SHIPPED_CONFIG
from channels.base import Outcome, Result
from crm.care_queue import MAX_ATTEMPTS, CareState
from crm.events import parse_events
from crm.sending import Caps, QuietHours
from storage import care
from storage.care_planner import CarePlanner
from storage.db import create_engine, make_sessionmaker
from storage.events import apply_events
from storage.models import CareAttempt, CareMessage, Customer, TeamChat

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
LEASE = timedelta(minutes=5)
OPEN = Caps(per_day=1, per_week=3)
NO_QUIET = QuietHours(time(0), time(0))


def schedule(quiet: QuietHours = NO_QUIET) -> care.Schedule:
    return care.Schedule(quiet, OPEN, SHANGHAI)


def order_created(n: int, customer: str = "C1", at: datetime = NOW, **data: object) -> dict[str, object]:
    return {
        "id": f"e-created-{n}",
        "type": "order.created",
        "occurred_at": at.isoformat(),
        "data": {"order_id": f"O{n}", "customer_id": customer, "amount": "88.00", **data},
    }


async def ingest(engine: AsyncEngine, body: object, now: datetime = NOW) -> None:
    parsed, errors = parse_events(body)
    assert not errors, errors
    async with make_sessionmaker(engine)() as session:
        await apply_events(
            session=session,
            events=parsed,
            resolves=lambda _t: (),
            restock_scenarios=(),
            now=now,
            care=CarePlanner(load_care_table(SHIPPED_CONFIG), SHANGHAI),
        )


async def rows(engine: AsyncEngine) -> list[CareMessage]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.exec(select(CareMessage).order_by(CareMessage.id))).all())


async def queued(engine: AsyncEngine, n: int = 1) -> list[int]:
    """n unpaid orders from n customers, claimed at their due time and marked queued as the
    engine does after posting their card."""
    await ingest(engine, [order_created(i, customer=f"C{i}") for i in range(1, n + 1)])
    async with make_sessionmaker(engine)() as session:
        session.add(TeamChat(chat_id=-100, title="team", bound_by=1, bound_at=NOW))
        await session.commit()
        due = NOW + timedelta(minutes=26)
        items = await care.claim_due(session=session, now=due, lease=LEASE, token="t1")
        first = [i for i in items if i.message.rule == "payment_reminder"]
        await care.mark_queued(
            session=session, ids=[i.message.id or 0 for i in first], token="t1", chat_id=-100,
            thread_id=None, message_id=1, texts={i.message.id or 0: "text" for i in first},
        )  # fmt: skip
    return [i.message.id or 0 for i in first]


async def test_an_event_plans_its_messages_once_however_often_it_is_sent(engine: AsyncEngine) -> None:
    await ingest(engine, [order_created(1)])
    await ingest(engine, [order_created(1)])  # replayed: a duplicate event id
    planned = await rows(engine)
    assert [(m.rule, m.state) for m in planned] == [
        ("payment_reminder", CareState.PLANNED),
        ("payment_reminder_preclose", CareState.PLANNED),
    ]
    assert planned[0].due_at == NOW + timedelta(minutes=25)


async def test_payment_wipes_out_the_reminders_of_that_order(engine: AsyncEngine) -> None:
    await ingest(engine, [order_created(1)])
    paid = {
        "id": "e-paid-1",
        "type": "order.paid",
        "occurred_at": NOW.isoformat(),
        "data": {"order_id": "O1"},
    }
    await ingest(engine, [paid], now=NOW + timedelta(minutes=3))
    states = {m.rule: (m.state, m.drop_reason) for m in await rows(engine)}
    assert states["payment_reminder"] == (CareState.DROPPED, "no_longer_applies")
    assert states["shipping_delayed"][0] == CareState.PLANNED


async def test_a_due_row_is_claimed_by_exactly_one_of_several_claimers(
    engine: AsyncEngine, db_url: str
) -> None:
    await ingest(engine, [order_created(i, customer=f"C{i}") for i in range(1, 41)])
    engines = [create_engine(db_url) for _ in range(3)]

    async def claim(own: AsyncEngine, token: str) -> list[int]:
        async with make_sessionmaker(own)() as session:
            items = await care.claim_due(
                session=session, now=NOW + timedelta(days=5), lease=LEASE, token=token, limit=7
            )
        return [i.message.id or 0 for i in items]

    try:
        got: list[int] = []
        per_round = []
        for _round in range(6):
            batches = await asyncio.gather(*(claim(e, f"t{n}") for n, e in enumerate(engines)))
            got += [i for b in batches for i in b]
            per_round.append(sum(len(b) for b in batches))
    finally:
        for e in engines:
            await e.dispose()
    assert len(got) == len(set(got)) == 80  # two reminders per order
    # Racing claimers skip only each other's rows: three batches of 7 a round while rows last.
    assert per_round == [21, 21, 21, 17, 0, 0]


async def test_of_two_presses_one_decision_stands_and_the_other_reads_it(engine: AsyncEngine) -> None:
    (mid,) = await queued(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as s1, sessions() as s2:
        approve, skip = await asyncio.gather(
            care.approve(
                session=s1, message_id=mid, actor_id=1, actor_name="A", now=NOW, schedule=schedule()
            ),
            care.decide(
                session=s2, message_id=mid, from_states=(CareState.QUEUED,), to_state=CareState.SKIPPED,
                actor_id=2, actor_name="B", now=NOW,
            ),
        )  # fmt: skip
    assert approve.won != skip.won
    final = (await rows(engine))[0]
    assert final.state in (CareState.APPROVED, CareState.SKIPPED)
    loser = skip if approve.won else approve
    assert loser.message is not None and loser.message.state == final.state


async def test_an_approval_in_quiet_hours_waits_for_the_morning_and_says_why(engine: AsyncEngine) -> None:
    (mid,) = await queued(engine)
    night = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai
    async with make_sessionmaker(engine)() as session:
        decision = await care.approve(
            session=session, message_id=mid, actor_id=1, actor_name="A", now=night,
            schedule=schedule(QuietHours(time(21), time(9))),
        )  # fmt: skip
    assert decision.won and decision.message is not None
    assert decision.message.send_at == datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # 09:00 next day
    assert decision.message.delay_reasons == "quiet_hours"


async def test_quiet_hours_count_in_the_customers_own_zone(engine: AsyncEngine) -> None:
    (mid,) = await queued(engine)
    await ingest(
        engine,
        {"id": "zone-1", "type": "customer.upserted", "occurred_at": NOW.isoformat(),
         "data": {"customer_id": "C1", "zone": "Europe/Berlin"}},
    )  # fmt: skip
    afternoon = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # 15:00 in Shanghai, 08:00 in Berlin
    async with make_sessionmaker(engine)() as session:
        decision = await care.approve(
            session=session, message_id=mid, actor_id=1, actor_name="A", now=afternoon,
            schedule=schedule(QuietHours(time(21), time(9))),
        )  # fmt: skip
    assert decision.message is not None and decision.message.delay_reasons == "quiet_hours"
    assert decision.message.send_at == datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # 09:00 in Berlin


async def test_a_second_message_the_same_day_is_held_to_the_next_day_by_the_cap(engine: AsyncEngine) -> None:
    await queued(engine)
    await ingest(engine, [order_created(9, customer="C1", at=NOW + timedelta(minutes=1))])
    async with make_sessionmaker(engine)() as session:
        first = await care.approve(
            session=session, message_id=1, actor_id=1, actor_name="A", now=NOW + timedelta(minutes=30),
            schedule=schedule(),
        )  # fmt: skip
        assert first.won
        second_id = (
            await session.exec(
                select(CareMessage.id).where(CareMessage.id != 1, CareMessage.rule == "shipping_delayed")
            )
        ).first()
    assert second_id is None  # the second order is unpaid: only reminders, one a day
    # A message of another rule for the same customer on the same day is capped.
    async with make_sessionmaker(engine)() as session:
        customer = (await session.exec(select(Customer).where(Customer.external_id == "C1"))).one()
        other = CareMessage(
            plan_key="x", rule="birthday", channel="webhook", customer_pk=customer.id or 0,
            state=CareState.QUEUED, due_at=NOW, created_at=NOW, chat_id=-100, message_id=2,
        )  # fmt: skip
        session.add(other)
        await session.commit()
        decision = await care.approve(
            session=session, message_id=other.id or 0, actor_id=1, actor_name="A",
            now=NOW + timedelta(minutes=31), schedule=schedule(),
        )  # fmt: skip
    assert decision.message is not None and decision.message.delay_reasons == "daily_cap"
    assert decision.message.send_at == datetime(2026, 11, 23, 16, 0, tzinfo=UTC)  # midnight in Shanghai


async def test_a_failing_channel_is_retried_with_back_off_then_dead_lettered(engine: AsyncEngine) -> None:
    (mid,) = await queued(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await care.approve(
            session=session, message_id=mid, actor_id=1, actor_name="A", now=NOW, schedule=schedule()
        )
    now = NOW + timedelta(minutes=30)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        async with sessions() as session:
            (item,) = await care.claim_due(session=session, now=now, lease=LEASE, token=f"k{attempt}")
            assert item.message.state == CareState.SENDING
            state = await care.record_result(
                session=session,
                item=item,
                token=f"k{attempt}",
                result=Result(Outcome.RETRY, "HTTP 500"),
                now=now,
            )
        expected = CareState.FAILED if attempt == MAX_ATTEMPTS else CareState.APPROVED
        assert state == expected
        row = (await rows(engine))[0]
        if state == CareState.APPROVED:
            assert row.fire_at is not None and row.fire_at > now
            now = row.fire_at
    async with sessions() as session:
        attempts = (await session.exec(select(CareAttempt).where(CareAttempt.care_message_id == mid))).all()
    assert len(attempts) == MAX_ATTEMPTS
    assert (await rows(engine))[0].last_error == "HTTP 500"

    # Sent again from the dead letter: two presses at once, one wins; a fresh round of attempts.
    async def press(name: str) -> care.Decision:
        async with sessions() as session:
            return await care.retry_failed(
                session=session, message_id=mid, actor_name=name, now=now, schedule=schedule()
            )

    first, second = await asyncio.gather(press("A"), press("B"))
    assert sorted([first.won, second.won]) == [False, True]
    row = (await rows(engine))[0]
    assert row.state == CareState.APPROVED and row.attempts == 0 and row.fire_at == now
    async with sessions() as session:
        log = (await session.exec(select(CareAttempt).where(CareAttempt.care_message_id == mid))).all()
    assert [a.outcome for a in log][-1] == "requeued" and len(log) == MAX_ATTEMPTS + 1
    async with sessions() as session:
        (item,) = await care.claim_due(session=session, now=now, lease=LEASE, token="again")
        assert item.message.id == mid
    assert not (await press("C")).won  # only a dead letter can be sent again


async def test_a_delivery_counts_as_a_contact_on_the_customer(engine: AsyncEngine) -> None:
    (mid,) = await queued(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await care.approve(
            session=session, message_id=mid, actor_id=1, actor_name="A", now=NOW, schedule=schedule()
        )
        (item,) = await care.claim_due(
            session=session, now=NOW + timedelta(minutes=30), lease=LEASE, token="d"
        )
        assert (
            await care.record_result(
                session=session, item=item, token="d", result=Result(Outcome.DELIVERED), now=NOW
            )
            == CareState.DELIVERED
        )
        # A stale claimer (its lease lapsed and someone else finished) records nothing.
        assert (
            await care.record_result(
                session=session, item=item, token="d", result=Result(Outcome.DELIVERED), now=NOW
            )
            is None
        )
        customer = (await session.exec(select(Customer).where(Customer.external_id == "C1"))).one()
    assert customer.contacted_count == 1 and customer.last_contact_at is not None


async def test_approving_many_at_once_spreads_one_customers_messages_over_the_caps(
    engine: AsyncEngine,
) -> None:
    ids = await queued(engine, n=3)
    async with make_sessionmaker(engine)() as session:
        customer = (await session.exec(select(Customer).where(Customer.external_id == "C1"))).one()
        extra = [
            CareMessage(
                plan_key=f"x{n}",
                rule="birthday",
                channel="webhook",
                customer_pk=customer.id or 0,
                state=CareState.QUEUED,
                due_at=NOW,
                created_at=NOW,
                chat_id=-100,
                message_id=1,
            )
            for n in range(2)
        ]
        session.add_all(extra)
        await session.commit()
        extra_ids = [m.id or 0 for m in extra]
        await care.decide(
            session=session, message_id=ids[2], from_states=(CareState.QUEUED,), to_state=CareState.SKIPPED,
            actor_id=2, actor_name="B", now=NOW,
        )  # fmt: skip
        won = await care.approve_many(
            session=session, ids=[*ids, *extra_ids], actor_id=1, actor_name="Lead",
            now=NOW + timedelta(minutes=30), schedule=schedule(),
        )  # fmt: skip
        cards = await care.cards_of(session=session, ids=won)
    assert sorted(won) == sorted([ids[0], ids[1], *extra_ids]), "the skipped one stays skipped"
    assert len(cards) == 1, "one card to redraw"
    by_id = {m.id: m for m in await rows(engine)}
    c1 = sorted(by_id[i].send_at for i in [ids[0], *extra_ids])  # type: ignore[type-var]
    days = {at.astimezone(SHANGHAI).date() for at in c1 if at}
    assert len(days) == 3, "C1's three messages go on three days (1 a day)"
    assert by_id[ids[1]].delay_reasons is None
