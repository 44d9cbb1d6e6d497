"""Follow-up timers as rows: create, claim atomically, record what happened, act on them.

Every change is a conditional UPDATE on the row's state, so two processes (or two agents) racing
for the same follow-up cannot both win: the claim takes only rows still due, and a button takes
only rows still open. Each function is one unit of work and commits.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, case, func, insert, or_, select, update
from sqlmodel import Session, col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.followups import (
    FIRED_ACTION,
    OPEN_STATES,
    Action,
    State,
    Step,
    lateness,
    next_step,
    retry_delay,
    shown_step,
)
from storage.models import Agent, Customer, FollowUp, FollowUpEvent, Order, TeamChat

T = FollowUp.__table__  # type: ignore[attr-defined]
E = FollowUpEvent.__table__  # type: ignore[attr-defined]
DUE_STATES = (State.PENDING, State.FIRING)  # firing and due again: a claim that lapsed (a crash)
DIGEST_MAX = 15  # lines in one digest message: well inside Telegram's 4096 characters
CLAIM_BATCH = 500  # rows one claim takes at most: one statement, however many chats they are in


@dataclass(slots=True)
class NewFollowUp:
    customer_pk: int
    chat_id: int
    scenario: str
    owner_id: int
    owner_name: str
    created_by: int
    due_at: datetime | None
    fire_at: datetime | None
    minutes: int | None = None
    carried_over: bool = False
    order_pk: int | None = None
    product: str | None = None


@dataclass(slots=True)
class Claimed:
    """A claimed follow-up with what its reminder shows."""

    follow_up: FollowUp
    customer: Customer
    order_no: str | None
    lead_id: int | None = None
    owner_locale: str | None = None  # the agent's /lang choice
    owner_language: str | None = None  # else their Telegram language


@dataclass(slots=True)
class ActResult:
    ok: bool
    follow_up: FollowUp | None  # None: no such follow-up


async def _core(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    """A Core statement on the session's own connection: same transaction, no ORM bookkeeping."""
    return await (await session.connection()).execute(statement, params)


def _row(item: NewFollowUp, now: datetime) -> dict[str, Any]:
    return {
        "customer_pk": item.customer_pk,
        "order_pk": item.order_pk,
        "chat_id": item.chat_id,
        "scenario": item.scenario,
        "product": item.product,
        "minutes": item.minutes,
        "owner_id": item.owner_id,
        "owner_name": item.owner_name[:128],
        "state": State.PENDING,
        "step": Step.REMIND,
        "due_at": item.due_at,
        "fire_at": item.fire_at,
        "remind_at": item.fire_at,
        "carried_over": item.carried_over,
        "attempts": 0,
        "created_by": item.created_by,
        "created_at": now,
    }


def _event(
    follow_up_id: int,
    action: str,
    now: datetime,
    actor_id: int | None = None,
    actor_name: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    return {
        "follow_up_id": follow_up_id,
        "action": action,
        "actor_id": actor_id,
        "actor_name": (actor_name or "")[:128] or None,
        "detail": (detail or "")[:200] or None,
        "at": now,
    }


async def create(*, session: AsyncSession, item: NewFollowUp, now: datetime) -> FollowUp:
    follow_up = FollowUp(**_row(item, now))
    session.add(follow_up)
    await session.flush()
    assert follow_up.id is not None
    await _core(session, insert(E), [_event(follow_up.id, Action.CREATED, now, item.created_by)])
    await session.commit()
    return follow_up


async def create_many(*, session: AsyncSession, items: Sequence[NewFollowUp], now: datetime) -> int:
    """Bulk creation (imports, benchmarks): one multi-row INSERT for the rows, one for the history."""
    if not items:
        return 0
    ids = (await _core(session, insert(T).returning(T.c.id), [_row(i, now) for i in items])).scalars().all()
    await _core(
        session,
        insert(E),
        [_event(fid, Action.CREATED, now, i.created_by) for fid, i in zip(ids, items, strict=True)],
    )
    await session.commit()
    return len(ids)


async def set_origin(*, session: AsyncSession, follow_up_id: int, chat_id: int, message_id: int) -> None:
    await _core(
        session,
        update(T).where(T.c.id == follow_up_id).values(origin_chat_id=chat_id, origin_message_id=message_id),
    )
    await session.commit()


def _due(now: datetime) -> Any:
    return and_(T.c.state.in_(DUE_STATES), T.c.fire_at <= now)


def next_fire_at_sync(session: Session) -> datetime | None:
    # One MIN per state: each is a single index seek, where MIN over `state IN (…)` scans.
    conn = session.connection()
    firsts = [
        conn.execute(
            select(func.min(T.c.fire_at)).where(T.c.state == state, T.c.fire_at.is_not(None))
        ).scalar()
        for state in DUE_STATES
    ]
    session.commit()
    return min((f for f in firsts if f is not None), default=None)


async def next_fire_at(*, session: AsyncSession) -> datetime | None:
    return await session.run_sync(next_fire_at_sync)


def claim_due_sync(
    session: Session,
    *,
    now: datetime,
    lease: timedelta,
    token: str,
    busy_chats: Collection[int] = (),
    limit: int = CLAIM_BATCH,
) -> list[Claimed]:
    """Claim what is due, most overdue first, except in chats still busy with an earlier reminder
    (what waits there is claimed later, together, and goes out as a digest).

    One UPDATE takes the rows only if they are still due, so exactly one process gets each; on
    PostgreSQL the rows are picked with FOR UPDATE SKIP LOCKED so a second process moves on at once.
    The claim lapses after `lease`, which brings back what a crashed process had taken.
    The engine-side functions are synchronous so that on SQLite each runs as one call in the
    writer thread (storage.db.ThreadedWrites); the async wrappers below serve everyone else.
    """
    picked = (
        select(T.c.id).where(_due(now)).order_by(T.c.fire_at).limit(limit).with_for_update(skip_locked=True)
    )
    if busy_chats:
        picked = picked.where(T.c.chat_id.not_in(list(busy_chats)))
    picked_rows = picked.cte("picked")  # not `id IN (…)`: see storage.care.claim_due
    claim = (
        update(T)
        .where(T.c.id == picked_rows.c.id, _due(now))
        .values(state=State.FIRING, claim=token, fire_at=now + lease, attempts=T.c.attempts + 1)
        .returning(T.c.id)
    )
    claimed_ids = session.connection().execute(claim).scalars().all()
    rows = [Claimed(*row) for row in session.exec(_load_stmt(claimed_ids)).all()] if claimed_ids else []
    session.commit()
    return rows


async def claim_due(
    *,
    session: AsyncSession,
    now: datetime,
    lease: timedelta,
    token: str,
    busy_chats: Collection[int] = (),
    limit: int = CLAIM_BATCH,
) -> list[Claimed]:
    return await session.run_sync(
        lambda sync: claim_due_sync(
            sync, now=now, lease=lease, token=token, busy_chats=busy_chats, limit=limit
        )
    )


def _load_stmt(ids: Iterable[int]) -> Any:
    return (
        orm_select(
            FollowUp, Customer, Order.order_no, TeamChat.bound_by, Agent.locale, Agent.telegram_language
        )
        .join(Customer, col(Customer.id) == FollowUp.customer_pk)
        .outerjoin(Order, col(Order.id) == FollowUp.order_pk)
        .outerjoin(TeamChat, col(TeamChat.chat_id) == FollowUp.chat_id)
        .outerjoin(Agent, col(Agent.user_id) == FollowUp.owner_id)
        .where(col(FollowUp.id).in_(list(ids)))
        .order_by(FollowUp.fire_at, FollowUp.id)
        # Rows change under conditional UPDATEs; never hand back a stale copy from the identity map.
        .execution_options(populate_existing=True)
    )


async def _load(session: AsyncSession, ids: Iterable[int]) -> list[Claimed]:
    return [Claimed(*row) for row in (await session.exec(_load_stmt(ids))).all()]


async def load(*, session: AsyncSession, ids: Iterable[int]) -> list[Claimed]:
    rows = await _load(session, ids)
    await session.commit()
    return rows


_POSTED = (
    update(T)
    .where(T.c.id == bindparam("b_id"), T.c.claim == bindparam("b_claim"), T.c.state == State.FIRING)
    .values(
        claim=None,
        attempts=0,
        message_id=bindparam("b_message"),
        state=bindparam("b_state"),
        step=bindparam("b_step"),
        fire_at=bindparam("b_fire_at"),
        fired_at=bindparam("b_fired_at"),
        late_seconds=bindparam("b_late"),
    )
)


def record_posted_sync(
    session: Session,
    *,
    claimed: Sequence[FollowUp],
    token: str,
    message_id: int,
    now: datetime,
    grace: timedelta,
) -> list[int]:
    """The reminder is in the chat: schedule the next step. Returns ids no longer ours (closed by
    someone while we were sending), whose message the caller re-renders."""
    params = []
    for f in claimed:
        step_after = next_step(f.step)
        late = lateness(f.remind_at or now, now) if f.step == Step.REMIND else None
        params.append(
            {
                "b_id": f.id,
                "b_claim": token,
                "b_message": message_id,
                "b_state": State.PENDING if step_after else State.WAITING,
                "b_step": step_after or f.step,
                "b_fire_at": now + grace if step_after else None,
                "b_fired_at": now if f.step == Step.REMIND else f.fired_at,
                "b_late": int(late.total_seconds())
                if late
                else (None if f.step == Step.REMIND else f.late_seconds),
            }
        )
    conn = session.connection()
    ids = [f.id for f in claimed]
    updated = conn.execute(_POSTED, params).rowcount
    if updated == len(ids):
        ours = set(ids)
    else:  # someone closed one while we were sending
        ours = set(
            conn.execute(select(T.c.id).where(T.c.id.in_(ids), T.c.message_id == message_id)).scalars()
        )
    events = [
        _event(f.id, FIRED_ACTION[f.step], now, detail=f"message {message_id}")
        for f in claimed
        if f.id is not None and f.id in ours
    ]
    if events:
        conn.execute(insert(E), events)
    session.commit()
    return [fid for fid in ids if fid is not None and fid not in ours]


async def record_posted(
    *,
    session: AsyncSession,
    claimed: Sequence[FollowUp],
    token: str,
    message_id: int,
    now: datetime,
    grace: timedelta,
) -> list[int]:
    return await session.run_sync(
        lambda sync: record_posted_sync(
            sync, claimed=claimed, token=token, message_id=message_id, now=now, grace=grace
        )
    )


def record_failed_sync(
    session: Session, *, claimed: Sequence[FollowUp], token: str, now: datetime, error: str, final: bool
) -> None:
    """Telegram did not take the reminder: try again later with backoff, or give up on a chat that is
    gone (`final`). Nothing is dropped silently: the history says what happened."""
    events = []
    for f in claimed:
        assert f.id is not None
        values: dict[str, Any] = {"claim": None}
        if final:
            values |= {
                "state": State.UNDELIVERABLE,
                "fire_at": None,
                "closed_at": now,
                "close_reason": "undeliverable",
            }
        else:
            values |= {"state": State.PENDING, "fire_at": now + retry_delay(f.attempts)}
        result = session.connection().execute(
            update(T).where(T.c.id == f.id, T.c.claim == token, T.c.state == State.FIRING).values(**values),
        )
        if result.rowcount:  # type: ignore[attr-defined]
            action = Action.UNDELIVERABLE if final else Action.RETRY
            events.append(_event(f.id, action, now, detail=error))
    if events:
        session.connection().execute(insert(E), events)
    session.commit()


async def record_failed(
    *, session: AsyncSession, claimed: Sequence[FollowUp], token: str, now: datetime, error: str, final: bool
) -> None:
    await session.run_sync(
        lambda sync: record_failed_sync(sync, claimed=claimed, token=token, now=now, error=error, final=final)
    )


def _closing(state: str, now: datetime, reason: str) -> dict[str, Any]:
    """The values that close a row (Done, Cancel, or an event that answered it). `step` becomes the
    step its chat shows (crm.followups.shown_step), so that a closed reminder is redrawn with the
    heading it had, not the one of a step that never fired."""
    shown = case(
        *((and_(T.c.state == State.PENDING, T.c.step == after), shown_step(State.PENDING, after))
          for after in (Step.REPOST, Step.ESCALATE)),
        else_=T.c.step,
    )  # fmt: skip
    return {
        "state": state,
        "step": shown,
        "fire_at": None,
        "claim": None,
        "closed_at": now,
        "close_reason": reason[:32],
    }


async def _act(
    session: AsyncSession,
    follow_up_id: int,
    values: dict[str, Any],
    *,
    action: str,
    actor_id: int | None,
    actor_name: str | None,
    now: datetime,
    detail: str | None = None,
) -> ActResult:
    result = await _core(
        session, update(T).where(T.c.id == follow_up_id, T.c.state.in_(OPEN_STATES)).values(**values)
    )
    won = bool(result.rowcount)  # type: ignore[attr-defined]
    if won:
        await _core(session, insert(E), [_event(follow_up_id, action, now, actor_id, actor_name, detail)])
    await session.commit()
    row = await session.get(FollowUp, follow_up_id, populate_existing=True)
    await session.commit()
    return ActResult(won, row)


async def close(
    *,
    session: AsyncSession,
    follow_up_id: int,
    done: bool,
    actor_id: int,
    actor_name: str,
    now: datetime,
    reason: str | None = None,
) -> ActResult:
    """Done or Cancel: only one of two simultaneous presses wins; the loser reads who did."""
    state = State.DONE if done else State.CANCELLED
    return await _act(
        session,
        follow_up_id,
        _closing(state, now, reason or state) | {"closed_by": actor_id, "closed_by_name": actor_name[:128]},
        action=Action.DONE if done else Action.CANCELLED,
        actor_id=actor_id,
        actor_name=actor_name,
        now=now,
        detail=reason,
    )


async def snooze(
    *,
    session: AsyncSession,
    follow_up_id: int,
    due_at: datetime,
    fire_at: datetime,
    actor_id: int,
    actor_name: str,
    now: datetime,
) -> ActResult:
    """Remind again later, from the first step (a fresh reminder, then re-post, then escalation)."""
    return await _act(
        session,
        follow_up_id,
        {
            "state": State.PENDING,
            "step": Step.REMIND,
            "due_at": due_at,
            "fire_at": fire_at,
            "remind_at": fire_at,
            "carried_over": fire_at > due_at,
            "claim": None,
            "attempts": 0,
        },
        action=Action.SNOOZED,
        actor_id=actor_id,
        actor_name=actor_name,
        now=now,
        detail=due_at.isoformat(timespec="minutes"),
    )


async def reassign(
    *,
    session: AsyncSession,
    follow_up_id: int,
    owner_id: int,
    owner_name: str,
    now: datetime,
    grace: timedelta,
) -> ActResult:
    """Take a follow-up over. A reminder already posted gets a fresh grace period for its new owner."""
    row = await session.get(FollowUp, follow_up_id)
    values: dict[str, Any] = {"owner_id": owner_id, "owner_name": owner_name[:128]}
    if row is not None and row.message_id is not None and row.state in (State.PENDING, State.WAITING):
        values |= {"state": State.PENDING, "step": Step.REPOST, "fire_at": now + grace}
    return await _act(
        session,
        follow_up_id,
        values,
        action=Action.REASSIGNED,
        actor_id=owner_id,
        actor_name=owner_name,
        now=now,
    )


async def resolve_by_event(
    *,
    session: AsyncSession,
    customer_pk: int,
    scenarios: Sequence[str],
    reason: str,
    now: datetime,
    product: str | None = None,
) -> list[FollowUp]:
    """Cancel the customer's open follow-ups that an event answers; returns them (for a quiet edit).
    Runs inside the caller's transaction: the event and its effects commit together."""
    if not scenarios:
        return []
    rows = (
        (
            await _core(
                session,
                update(T)
                .where(
                    T.c.customer_pk == customer_pk, T.c.scenario.in_(scenarios), T.c.state.in_(OPEN_STATES)
                )
                .values(_closing(State.CANCELLED, now, reason))
                .returning(T.c.id),
            )
        )
        .scalars()
        .all()
    )
    if rows:
        await _core(session, insert(E), [_event(fid, Action.RESOLVED, now, detail=reason) for fid in rows])
    found = (await session.exec(orm_select(FollowUp).where(col(FollowUp.id).in_(rows)))).all()
    return list(found)


async def restocked(*, session: AsyncSession, product: str, scenarios: Sequence[str], now: datetime) -> int:
    """A product is back: every follow-up waiting for it (or for any restock) is due now."""
    result = await _core(session, _restock_stmt(product, scenarios, now))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def open_for_customers_sync(
    session: Session, customer_pks: Collection[int], scenarios: Collection[str]
) -> list[tuple[int, int, str]]:
    """(id, customer_pk, scenario) of these customers' open follow-ups in these scenarios: what a
    batch of events may resolve, read once for the batch."""
    if not customer_pks or not scenarios:
        return []
    stmt = (
        select(T.c.id, T.c.customer_pk, T.c.scenario)
        .where(
            T.c.customer_pk.in_(list(customer_pks)),
            T.c.state.in_(OPEN_STATES),
            T.c.scenario.in_(list(scenarios)),
        )
        .order_by(T.c.id)
    )
    return [(r[0], r[1], r[2]) for r in session.connection().execute(stmt)]


def resolve_sync(session: Session, ids: Sequence[int], reason: str, now: datetime) -> list[int]:
    """Cancel these follow-ups if still open (an event answered them), with their history line, in
    the caller's transaction; returns the ids cancelled. resolve_by_event, for a batch."""
    if not ids:
        return []
    conn = session.connection()
    done = (
        conn.execute(
            update(T)
            .where(T.c.id.in_(list(ids)), T.c.state.in_(OPEN_STATES))
            .values(_closing(State.CANCELLED, now, reason))
            .returning(T.c.id)
        )
        .scalars()
        .all()
    )
    if done:
        conn.execute(insert(E), [_event(fid, Action.RESOLVED, now, detail=reason) for fid in done])
    return list(done)


def load_rows_sync(session: Session, ids: Collection[int]) -> dict[int, FollowUp]:
    if not ids:
        return {}
    stmt = orm_select(FollowUp).where(col(FollowUp.id).in_(list(ids)))
    stmt = stmt.execution_options(populate_existing=True)
    return {f.id or 0: f for f in session.exec(stmt).all()}


def _restock_stmt(product: str, scenarios: Sequence[str], now: datetime) -> Any:
    return (
        update(T)
        .where(
            T.c.scenario.in_(scenarios),
            T.c.state == State.PENDING,
            T.c.fire_at.is_(None),
            or_(T.c.product.is_(None), T.c.product == product),
        )
        .values(fire_at=now, due_at=now, remind_at=now)
    )


def restocked_sync(session: Session, *, product: str, scenarios: Sequence[str], now: datetime) -> int:
    """restocked, in the caller's (synchronous) transaction."""
    if not scenarios:
        return 0
    result = session.connection().execute(_restock_stmt(product, list(scenarios), now))
    return int(result.rowcount or 0)


async def open_for_customer(*, session: AsyncSession, customer_pk: int) -> list[FollowUp]:
    stmt = (
        orm_select(FollowUp)
        .where(FollowUp.customer_pk == customer_pk, col(FollowUp.state).in_(OPEN_STATES))
        .order_by(FollowUp.due_at)
    )
    return list((await session.exec(stmt)).all())


async def open_in_chat(
    *, session: AsyncSession, chat_id: int | None, owner_id: int | None, now: datetime, limit: int
) -> tuple[list[Claimed], int, int]:
    """Open follow-ups (in one chat or all; one agent's or everyone's), overdue first; and how many
    there are in all and overdue."""
    where = [col(FollowUp.state).in_(OPEN_STATES)]
    if chat_id is not None:
        where.append(FollowUp.chat_id == chat_id)
    if owner_id is not None:
        where.append(FollowUp.owner_id == owner_id)
    overdue_expr = func.sum(case((col(FollowUp.due_at) <= now, 1), else_=0))
    total, overdue = (await _core(session, select(func.count(), overdue_expr).where(*where))).one()
    due_order = (col(FollowUp.due_at).is_(None), col(FollowUp.due_at))
    ids = (
        await _core(session, select(FollowUp.id).where(*where).order_by(*due_order).limit(limit))
    ).scalars()
    rows = await _load(session, list(ids))
    rows.sort(key=lambda c: (c.follow_up.due_at is None, c.follow_up.due_at))
    await session.commit()
    return rows, int(total or 0), int(overdue or 0)


async def open_by_owner(*, session: AsyncSession, chat_id: int) -> dict[int, list[FollowUp]]:
    """Each agent's open follow-ups in a chat, for the start-of-shift summary."""
    stmt = (
        orm_select(FollowUp)
        .where(FollowUp.chat_id == chat_id, col(FollowUp.state).in_(OPEN_STATES))
        .order_by(FollowUp.owner_id, FollowUp.due_at)
    )
    grouped: dict[int, list[FollowUp]] = {}
    for row in (await session.exec(stmt)).all():
        grouped.setdefault(row.owner_id, []).append(row)
    await session.commit()
    return grouped


async def history(*, session: AsyncSession, follow_up_id: int) -> list[FollowUpEvent]:
    stmt = (
        orm_select(FollowUpEvent).where(FollowUpEvent.follow_up_id == follow_up_id).order_by(FollowUpEvent.id)
    )
    return list((await session.exec(stmt)).all())
