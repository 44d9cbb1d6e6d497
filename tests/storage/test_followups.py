"""Follow-up rows on real SQLite and PostgreSQL: claimed once however many claimers race, a button
press wins or learns who won, history kept, events applied all or nothing."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Session, select

from crm.events import EventError, parse_events
from crm.followups import Action, State, Step
from storage import followups, scenario_settings
from storage.db import create_engine, make_sessionmaker
from storage.events import Applied, apply_events, apply_events_sync
from storage.figures import figures_mismatches
from storage.followups import NewFollowUp
from storage.models import Customer, FollowUp, FollowUpEvent, Order, ShopEvent, TeamChat

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


async def seed(engine: AsyncEngine, *, customers: int = 3, chats: int = 1) -> None:
    async with make_sessionmaker(engine)() as session:
        for n in range(1, customers + 1):
            session.add(Customer(external_id=f"C{n}", nickname=f"客户{n}"))
        for n in range(chats):
            session.add(TeamChat(chat_id=-100 - n, title="team", bound_by=1, bound_at=NOW))
        await session.commit()


def new(
    customer: int = 1, *, chat: int = -100, owner: int = 7, due: datetime = NOW, scenario: str = "no_reply"
) -> NewFollowUp:
    return NewFollowUp(
        customer_pk=customer, chat_id=chat, scenario=scenario, owner_id=owner, owner_name=f"agent{owner}",
        created_by=owner, due_at=due, fire_at=due,
    )  # fmt: skip


async def test_each_due_follow_up_is_claimed_by_exactly_one_of_several_claimers(
    engine: AsyncEngine, db_url: str
) -> None:
    await seed(engine, customers=5, chats=4)
    items = [
        new(1 + n % 5, chat=-100 - n % 4, owner=n % 7, due=NOW - timedelta(seconds=n)) for n in range(400)
    ]
    async with make_sessionmaker(engine)() as session:
        assert await followups.create_many(session=session, items=items, now=NOW - timedelta(hours=1)) == 400

    # Separate engines: separate connection pools, as separate processes would have.
    engines = [create_engine(db_url) for _ in range(4)]
    claimed: list[int] = []

    async def claimer(own: AsyncEngine, token: str) -> None:
        sessions = make_sessionmaker(own)
        deadline = asyncio.get_running_loop().time() + 30
        while True:  # small batches, so the four claimers really interleave
            async with sessions() as session:
                got = await followups.claim_due(session=session, now=NOW, lease=LEASE, token=token, limit=7)
            claimed.extend(c.follow_up.id for c in got if c.follow_up.id is not None)
            if got:
                continue
            # Nothing for us: on PostgreSQL the rest may be locked by the others' claims in flight
            # (SKIP LOCKED), as an engine's sweep would find. Stop once nothing is left to claim.
            async with sessions() as session:
                pending = select(func.count()).select_from(FollowUp).where(FollowUp.state == State.PENDING)
                left = (await session.exec(pending)).one()
            # Only rows in the other three claimers' batches can have been skipped.
            assert left <= 3 * 7, f"an empty claim with {left} follow-ups due"
            if left == 0:
                return
            assert asyncio.get_running_loop().time() < deadline, "due follow-ups nobody can claim"
            await asyncio.sleep(0.01)

    try:
        await asyncio.gather(*(claimer(e, f"t{n}") for n, e in enumerate(engines)))
    finally:
        for e in engines:
            await e.dispose()
    assert len(claimed) == 400 and len(set(claimed)) == 400


async def test_a_claim_lapses_after_its_lease_so_a_crash_loses_nothing(engine: AsyncEngine) -> None:
    await seed(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await followups.create(session=session, item=new(), now=NOW)
    async with sessions() as session:
        (first,) = await followups.claim_due(session=session, now=NOW, lease=LEASE, token="dead")
    async with sessions() as session:
        assert await followups.claim_due(session=session, now=NOW + LEASE / 2, lease=LEASE,
                                          token="other") == []  # fmt: skip
        (again,) = await followups.claim_due(session=session, now=NOW + LEASE, lease=LEASE, token="alive")
    assert again.follow_up.id == first.follow_up.id
    async with sessions() as session:  # the crashed process's late report changes nothing
        lost = await followups.record_posted(
            session=session, claimed=[first.follow_up], token="dead", message_id=5, now=NOW, grace=LEASE
        )
    assert lost == [first.follow_up.id]


async def test_posting_schedules_repost_then_escalation_then_waits(engine: AsyncEngine) -> None:
    await seed(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        created = await followups.create(session=session, item=new(), now=NOW - timedelta(minutes=5))
    at = NOW + timedelta(minutes=3)  # three minutes late: marked
    for step, expected_state in ((Step.REMIND, State.PENDING), (Step.REPOST, State.PENDING),
                                 (Step.ESCALATE, State.WAITING)):  # fmt: skip
        async with sessions() as session:
            (item,) = await followups.claim_due(session=session, now=at, lease=LEASE, token=step)
            assert item.follow_up.step == step and item.lead_id == 1
            await followups.record_posted(
                session=session, claimed=[item.follow_up], token=step, message_id=10, now=at, grace=LEASE
            )
            row = await session.get(FollowUp, created.id, populate_existing=True)
        assert row is not None and row.state == expected_state
        at += LEASE
    assert row.late_seconds == 180 and row.fire_at is None
    async with sessions() as session:
        actions = [e.action for e in await followups.history(session=session, follow_up_id=created.id or 0)]
    assert actions == [Action.CREATED, Action.FIRED, Action.REPOSTED, Action.ESCALATED]


async def test_done_and_cancel_at_the_same_moment_one_wins_the_other_reads_who(
    engine: AsyncEngine, db_url: str
) -> None:
    await seed(engine)
    async with make_sessionmaker(engine)() as session:
        created = await followups.create(session=session, item=new(), now=NOW)
    engines = [create_engine(db_url) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(
                followups.close(
                    session=make_sessionmaker(e)(),
                    follow_up_id=created.id or 0,
                    done=done,
                    actor_id=actor,
                    actor_name=name,
                    now=NOW,
                )
                for e, done, actor, name in ((engines[0], True, 7, "Wang"), (engines[1], False, 8, "Li"))
            )
        )
    finally:
        for e in engines:
            await e.dispose()
    assert sorted(r.ok for r in results) == [False, True]
    winner = next(r for r in results if r.ok).follow_up
    loser = next(r for r in results if not r.ok).follow_up
    assert loser is not None and winner is not None and loser.closed_by_name == winner.closed_by_name
    async with make_sessionmaker(engine)() as session:
        closes = (
            await session.exec(
                select(func.count()).where(
                    FollowUpEvent.follow_up_id == created.id,
                    FollowUpEvent.action.in_([Action.DONE, Action.CANCELLED]),  # type: ignore[attr-defined]
                )
            )
        ).one()
    assert closes == 1


async def test_snooze_and_reassign_are_recorded_and_closed_ones_refuse_them(engine: AsyncEngine) -> None:
    await seed(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        created = await followups.create(session=session, item=new(), now=NOW)
        fid = created.id or 0
        later = NOW + timedelta(minutes=15)
        snoozed = await followups.snooze(
            session=session,
            follow_up_id=fid,
            due_at=later,
            fire_at=later,
            actor_id=7,
            actor_name="Wang",
            now=NOW,
        )
        assert snoozed.ok and snoozed.follow_up is not None and snoozed.follow_up.fire_at == later
        taken = await followups.reassign(
            session=session, follow_up_id=fid, owner_id=8, owner_name="Li", now=NOW, grace=LEASE
        )
        assert taken.ok and taken.follow_up is not None and taken.follow_up.owner_id == 8
        await followups.close(
            session=session, follow_up_id=fid, done=True, actor_id=8, actor_name="Li", now=NOW
        )
        refused = await followups.snooze(
            session=session,
            follow_up_id=fid,
            due_at=later,
            fire_at=later,
            actor_id=7,
            actor_name="Wang",
            now=NOW,
        )
        assert not refused.ok and refused.follow_up is not None and refused.follow_up.state == State.DONE
        missing = await followups.close(
            session=session, follow_up_id=987654, done=True, actor_id=7, actor_name="W", now=NOW
        )
        assert not missing.ok and missing.follow_up is None
        history = await followups.history(session=session, follow_up_id=fid)
    assert [(e.action, e.actor_id) for e in history] == [
        (Action.CREATED, 7), (Action.SNOOZED, 7), (Action.REASSIGNED, 8), (Action.DONE, 8)
    ]  # fmt: skip


def _events(*items: dict) -> list:
    parsed, errors = parse_events(list(items))
    assert not errors, errors
    return parsed


def _event(event_id: str, kind: str, **data: object) -> dict:
    return {"id": event_id, "type": kind, "occurred_at": "2026-11-23T10:00:00+08:00", "data": data}


def _resolves(event_type: str) -> tuple[str, ...]:
    return {"order.paid": ("unpaid",), "order.created": ("hesitating", "promo_no_order")}.get(event_type, ())


async def test_events_update_orders_and_figures_resolve_follow_ups_and_ignore_repeats(
    engine: AsyncEngine,
) -> None:
    await seed(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        unpaid = await followups.create(session=session, item=new(1, scenario="unpaid"), now=NOW)
        other = await followups.create(session=session, item=new(1, scenario="no_reply"), now=NOW)
    batch = _events(
        _event("e1", "order.created", order_id="N1", customer_id="C1", amount="99.50"),
        _event("e2", "order.paid", order_id="N1"),
        _event("e3", "order.created", order_id="N2", customer_id="NEW-9", amount="10"),
    )
    async with sessions() as session:
        applied = await apply_events(
            session=session, events=batch, resolves=_resolves, restock_scenarios=(), now=NOW
        )
    assert (applied.accepted, applied.duplicates) == (3, 0)
    assert [f.id for f in applied.resolved] == [unpaid.id]
    async with sessions() as session:
        order = (await session.exec(select(Order).where(Order.order_no == "N1"))).one()
        assert order.status == "paid" and order.paid_at is not None and order.amount_cents == 9950
        customer = await session.get(Customer, order.customer_pk)
        assert customer is not None and customer.purchases == 1 and customer.total_spent_cents == 9950
        bare = (await session.exec(select(Customer).where(Customer.external_id == "NEW-9"))).one()
        assert bare.orders_count == 1
        assert (await session.get(FollowUp, other.id)).state == State.PENDING  # type: ignore[union-attr]
        closed = await session.get(FollowUp, unpaid.id)
        assert closed is not None and closed.state == State.CANCELLED and closed.close_reason == "order.paid"
    async with sessions() as session:
        again = await apply_events(
            session=session, events=batch, resolves=_resolves, restock_scenarios=(), now=NOW
        )
    assert (again.accepted, again.duplicates, again.resolved) == (0, 3, [])


async def test_a_batch_with_an_event_that_cannot_apply_writes_nothing(engine: AsyncEngine) -> None:
    await seed(engine)
    batch = _events(
        _event("ok-1", "order.created", order_id="N7", customer_id="C2", amount="5"),
        _event("bad-1", "order.paid", order_id="NO-SUCH"),
    )
    async with make_sessionmaker(engine)() as session:
        with pytest.raises(EventError, match="NO-SUCH"):
            await apply_events(
                session=session, events=batch, resolves=_resolves, restock_scenarios=(), now=NOW
            )
    async with make_sessionmaker(engine)() as session:
        assert (await session.exec(select(func.count()).select_from(ShopEvent))).one() == 0
        assert (await session.exec(select(func.count()).select_from(Order))).one() == 0


async def test_concurrent_requests_applied_together_keep_their_own_outcome(engine: AsyncEngine) -> None:
    """Group commit: requests applied in one call are each atomic; a bad one fails alone, a later
    one reading figures an earlier one moved goes in its own transaction, figures stay exact."""
    await seed(engine)
    requests = [
        _events(_event("g1", "order.created", order_id="G1", customer_id="C1", amount="10")),
        _events(_event("g2", "order.paid", order_id="NO-SUCH")),  # cannot apply: fails alone
        _events(_event("g3", "order.paid", order_id="G1")),  # C1 again: after g1's figures
        _events(_event("g1", "order.created", order_id="G1", customer_id="C1", amount="10")),
        _events(_event("g4", "order.created", order_id="G2", customer_id="NEW-1", amount="3")),
    ]

    def work(sync: Session) -> list[Applied | EventError]:
        return apply_events_sync(sync, requests, resolves=_resolves, restock_scenarios=(), now=NOW)

    async with make_sessionmaker(engine)() as session:
        results = await session.run_sync(work)
    assert isinstance(results[1], EventError) and "NO-SUCH" in str(results[1])
    assert [(r.accepted, r.duplicates) for r in results if isinstance(r, Applied)] == [
        (1, 0), (1, 0), (0, 1), (1, 0),
    ]  # fmt: skip
    async with make_sessionmaker(engine)() as session:
        assert (await session.exec(select(func.count()).select_from(ShopEvent))).one() == 3
        order = (await session.exec(select(Order).where(Order.order_no == "G1"))).one()
        assert order.status == "paid"
        c1 = await session.get(Customer, order.customer_pk)
        assert c1 is not None and (c1.orders_count, c1.purchases, c1.total_spent_cents) == (1, 1, 1000)
        assert (await figures_mismatches(await session.connection())) == []
    # No bad one: C2's payment reads the figures its order moved, so it goes in a second transaction.
    requests = [
        _events(_event("h1", "order.created", order_id="H1", customer_id="C2", amount="7")),
        _events(_event("h2", "order.paid", order_id="H1")),
    ]
    async with make_sessionmaker(engine)() as session:
        results = await session.run_sync(work)
    assert [(r.accepted, r.duplicates) for r in results if isinstance(r, Applied)] == [(1, 0), (1, 0)]
    async with make_sessionmaker(engine)() as session:
        assert (await figures_mismatches(await session.connection())) == []
        order = (await session.exec(select(Order).where(Order.order_no == "H1"))).one()
        assert order.status == "paid"


async def test_a_restock_makes_waiting_out_of_stock_follow_ups_due(engine: AsyncEngine) -> None:
    await seed(engine)
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        item = new(2, scenario="out_of_stock")
        item.due_at = item.fire_at = None
        waiting = await followups.create(session=session, item=item, now=NOW)
        assert await followups.next_fire_at(session=session) is None  # nothing to wake up for
    async with sessions() as session:
        applied = await apply_events(
            session=session, events=_events(_event("r1", "product.restocked", product="纸尿裤")),
            resolves=_resolves, restock_scenarios=("out_of_stock",), now=NOW,
        )  # fmt: skip
    assert applied.restocked == 1
    async with sessions() as session:
        (claimed,) = await followups.claim_due(session=session, now=NOW, lease=LEASE, token="t")
    assert claimed.follow_up.id == waiting.id


async def test_scenario_changes_are_stored_with_an_audit_trail(engine: AsyncEngine) -> None:
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        await scenario_settings.change(
            session=session,
            scenario="unpaid",
            field="minutes",
            value="20",
            old_value="15",
            user_id=1,
            user_name="Lin",
            now=NOW,
        )
        await scenario_settings.change(
            session=session,
            scenario="unpaid",
            field="reply",
            value="亲～",
            old_value="old",
            user_id=2,
            user_name="Zhao",
            now=NOW,
        )
        (setting,) = await scenario_settings.overrides(session=session)
        trail = await scenario_settings.changes(session=session, scenario="unpaid")
    assert (setting.minutes, setting.reply, setting.updated_by) == (20, "亲～", 2)
    assert [(c.field, c.old_value, c.new_value, c.changed_by_name) for c in trail] == [
        ("minutes", "15", "20", "Lin"), ("reply", "old", "亲～", "Zhao")
    ]  # fmt: skip
