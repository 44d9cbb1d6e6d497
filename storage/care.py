"""The care queue in the database: planning (idempotent by plan key), claiming what is due, the
agents' decisions as conditional UPDATEs (two presses: one wins, the other reads who), and the
delivery log.

As with follow-ups, the row is the truth: a message is claimed with a lease before it is sent, so
a process killed between Approve and delivery leaves a row that comes back when the lease lapses,
and the channel's idempotency key (the row id) stops the second send from reaching the customer.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlmodel import Session, col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from channels.base import Outcome, Result
from crm.care_queue import (
    AGENT_TASK,
    ALERT_CHANNEL,
    DUE_STATES,
    CareState,
    gives_up,
    retry_delay,
)
from crm.care_rules import PAYMENT_RULES, PlannedCare
from crm.sending import Caps, QuietHours, Reach, SendSlot, send_slot
from storage.db import insert_for
from storage.models import (
    CareAttempt,
    CareMessage,
    CareRuleChange,
    CareRuleSetting,
    ChatRoute,
    Customer,
    Order,
    TeamChat,
)

T = CareMessage.__table__  # type: ignore[attr-defined]
CLAIM_BATCH = 200
DIGEST_MAX = 10
NOT_COUNTED = (AGENT_TASK, ALERT_CHANNEL)  # what does not reach the customer's phone or inbox
_CARE_COLUMNS = (T.c.id, T.c.customer_pk, T.c.order_pk, T.c.plan_key, T.c.rule, T.c.state, T.c.due_at,
                 T.c.message_id)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CareItem:
    message: CareMessage
    customer: Customer
    order: Order | None


@dataclass(frozen=True, slots=True)
class Decision:
    won: bool
    message: CareMessage | None


@dataclass(frozen=True, slots=True)
class Schedule:
    """What decides when an approved message may go (crm/sending.py)."""

    quiet: QuietHours
    caps: Caps
    team_zone: ZoneInfo


def reach_of(customer: Customer) -> Reach:
    return Reach(
        opted_out=customer.opted_out,
        unreachable=customer.unreachable,
        open_complaint=customer.open_complaint,
        bad_reviewer=customer.bad_reviewer,
    )


def zone_of(customer: Customer, team_zone: ZoneInfo) -> ZoneInfo:
    if customer.zone:
        try:
            return ZoneInfo(customer.zone)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return team_zone


async def _core(session: AsyncSession, statement: Any, params: Any = None) -> Any:
    conn = await session.connection()
    return await conn.execute(statement, params) if params is not None else await conn.execute(statement)


# Planning -----------------------------------------------------------------------------------------
def _row(p: PlannedCare, customer_pk: int, order_pk: int | None, now: datetime) -> dict[str, Any]:
    return {
        "plan_key": p.key[:160],
        "rule": p.rule,
        "channel": ALERT_CHANNEL if p.immediate else p.channel,
        "customer_pk": customer_pk,
        "order_pk": order_pk,
        "segments": ",".join(p.segments)[:120],
        "values": json.dumps(dict(p.values), ensure_ascii=False),
        "marketing": p.marketing,
        "automatic": p.automatic,
        "state": CareState.PLANNED,
        "due_at": p.due_at,
        "fire_at": p.due_at,
        "attempts": 0,
        "locale": "zh_CN",
        "created_at": now,
    }


async def plan(
    *,
    session: AsyncSession,
    planned: Sequence[PlannedCare],
    customer_pk: int,
    order_pk: int | None,
    now: datetime,
) -> int:
    """Store plans for one customer; a plan key seen before is ignored. Does not commit: it runs in
    the transaction of the event that planned it."""
    if not planned:
        return 0
    conn = await session.connection()
    stmt = insert_for(conn.dialect)(T).on_conflict_do_nothing(index_elements=["plan_key"])
    result = await conn.execute(stmt, [_row(p, customer_pk, order_pk, now) for p in planned])
    return int(result.rowcount or 0)


def plan_row(p: PlannedCare, customer_pk: int, order_pk: int | None, now: datetime) -> dict[str, Any]:
    """The care_message row a plan becomes (plan / plan_rows_sync store it)."""
    return _row(p, customer_pk, order_pk, now)


def plan_rows_sync(session: Session, rows: Sequence[dict[str, Any]]) -> int:
    """plan, for rows already made (plan_row), many customers at once, in the caller's synchronous
    transaction: one executemany; a plan key seen before is ignored."""
    if not rows:
        return 0
    conn = session.connection()
    result = conn.execute(
        insert_for(conn.dialect)(T).on_conflict_do_nothing(index_elements=["plan_key"]), list(rows)
    )
    return int(result.rowcount or 0)


def payment_rows_sync(session: Session, customer_pks: Collection[int], since: datetime) -> list[Any]:
    """payment_reminder_days for many customers: (id, customer_pk, order_pk, plan_key, rule, state,
    due_at, message_id) of their payment reminders that are or were going out, due from `since` on
    (new reminders are due from now on: only the days from today can collide with them)."""
    if not customer_pks:
        return []
    stmt = select(*_CARE_COLUMNS).where(
        T.c.customer_pk.in_(list(customer_pks)),
        T.c.rule.in_(PAYMENT_RULES),
        T.c.state.not_in([CareState.DROPPED, CareState.SKIPPED]),
        T.c.due_at >= since,
    )
    return list(session.connection().execute(stmt))


def of_orders_sync(session: Session, order_pks: Collection[int]) -> list[Any]:
    """The same columns for every care message of these orders (any state): what an order event
    re-checks, and the plan keys already taken."""
    if not order_pks:
        return []
    return list(session.connection().execute(select(*_CARE_COLUMNS).where(T.c.order_pk.in_(list(order_pks)))))


# Claiming -----------------------------------------------------------------------------------------
def _due(now: datetime) -> Any:
    return and_(T.c.state.in_(DUE_STATES), T.c.fire_at <= now)


async def next_fire_at(*, session: AsyncSession) -> datetime | None:
    firsts = [
        (
            await _core(
                session, select(func.min(T.c.fire_at)).where(T.c.state == s, T.c.fire_at.is_not(None))
            )
        ).scalar()
        for s in DUE_STATES
    ]
    await session.commit()
    return min((f for f in firsts if f is not None), default=None)


def _load_stmt(ids: Iterable[int]) -> Any:
    return (
        orm_select(CareMessage, Customer, Order)
        .join(Customer, col(Customer.id) == CareMessage.customer_pk)
        .outerjoin(Order, col(Order.id) == CareMessage.order_pk)
        .where(col(CareMessage.id).in_(list(ids)))
        .order_by(CareMessage.due_at, CareMessage.id)
        .execution_options(populate_existing=True)
    )


async def load(*, session: AsyncSession, ids: Iterable[int]) -> list[CareItem]:
    rows = [CareItem(*row) for row in (await session.exec(_load_stmt(ids))).all()]
    await session.commit()
    return rows


async def claim_due(
    *, session: AsyncSession, now: datetime, lease: timedelta, token: str, limit: int = CLAIM_BATCH
) -> list[CareItem]:
    """Claim what is due (planned: to be queued; approved or a lapsed sending: to be sent). One
    conditional UPDATE, FOR UPDATE SKIP LOCKED on PostgreSQL: each row goes to one process."""
    picked = (
        select(T.c.id).where(_due(now)).order_by(T.c.fire_at).limit(limit).with_for_update(skip_locked=True)
    )
    sending = CareState.SENDING
    # The picked rows as a CTE joined by the UPDATE (UPDATE … FROM picked), not `id IN (subquery)`:
    # on PostgreSQL the IN form's subquery is evaluated again when a row it meets was changed by a
    # racing claimer, so one claim took far more than `limit` (3 claimers of 7: a round took 47 or
    # all 80) and the others came back empty while rows were due. A CTE runs once. Same in
    # storage.followups; tests/storage pin both.
    picked_rows = picked.cte("picked")
    claim = (
        update(T)
        .where(T.c.id == picked_rows.c.id, _due(now))
        .values(
            claim=token,
            fire_at=now + lease,
            state=func.coalesce(
                func.nullif(T.c.state, CareState.APPROVED), sending
            ),  # approved → sending; planned and sending stay
        )
        .returning(T.c.id)
    )
    ids = list((await _core(session, claim)).scalars())
    await session.commit()
    return await load(session=session, ids=ids) if ids else []


async def _set(session: AsyncSession, where: Any, values: dict[str, Any]) -> bool:
    result = await _core(session, update(T).where(where).values(**values))
    return bool(result.rowcount)


def _ours(message_id: int, token: str) -> Any:
    return and_(T.c.id == message_id, T.c.claim == token)


async def mark_queued(
    *,
    session: AsyncSession,
    ids: Sequence[int],
    token: str,
    chat_id: int,
    thread_id: int | None,
    message_id: int,
    texts: Mapping[int, str],
    state: str = CareState.QUEUED,
) -> None:
    """The approval card (or alert) is in the group."""
    for mid in ids:
        await _set(
            session,
            _ours(mid, token),
            {
                "state": state,
                "fire_at": None,
                "claim": None,
                "chat_id": chat_id,
                "thread_id": thread_id,
                "message_id": message_id,
                "text": texts.get(mid),
            },
        )
    await session.commit()


async def postpone(
    *, session: AsyncSession, ids: Sequence[int], token: str, until: datetime, error: str
) -> None:
    """Nowhere to post it right now (no team chat, Telegram down): look again later. One statement
    per claim batch: on SQLite a statement per row held the single write lock over as many round
    trips, and the event writer slept in SQLite's busy handler meanwhile."""
    values = {"fire_at": until, "claim": None, "last_error": error[:200]}
    for start in range(0, len(ids), CLAIM_BATCH):
        chunk = list(ids[start : start + CLAIM_BATCH])
        await _set(session, and_(T.c.id.in_(chunk), T.c.claim == token), values)
    await session.commit()


async def drop(*, session: AsyncSession, message_id: int, reason: str, now: datetime, token: str) -> bool:
    """The engine's claim found the message pointless (order moved on) or excluded (opted out …)."""
    won = await _set(
        session,
        _ours(message_id, token),
        {
            "state": CareState.DROPPED,
            "drop_reason": reason[:32],
            "fire_at": None,
            "claim": None,
            "decided_at": now,
        },
    )
    await session.commit()
    return won


async def _booked(
    session: AsyncSession, customer_pks: Sequence[int], exclude: int = 0
) -> dict[int, list[datetime]]:
    """Per customer, their messages sent or scheduled to be sent: what the caps count."""
    rows = await _core(
        session,
        select(T.c.customer_pk, func.coalesce(T.c.delivered_at, T.c.send_at)).where(
            T.c.customer_pk.in_(list(customer_pks)),
            T.c.id != exclude,
            T.c.channel.not_in(NOT_COUNTED),
            or_(
                T.c.state == CareState.DELIVERED,
                and_(T.c.state.in_([CareState.APPROVED, CareState.SENDING]), T.c.send_at.is_not(None)),
            ),
        ),
    )
    booked: dict[int, list[datetime]] = {pk: [] for pk in customer_pks}
    for pk, at in rows:
        if at is not None:
            booked[pk].append(at)
    return booked


async def slot_for(*, session: AsyncSession, item: CareItem, now: datetime, schedule: Schedule) -> SendSlot:
    zone = zone_of(item.customer, schedule.team_zone)
    booked = (await _booked(session, [item.message.customer_pk], exclude=item.message.id or 0))[
        item.message.customer_pk
    ]
    return send_slot(
        max(now, item.message.due_at), booked=booked, zone=zone, quiet=schedule.quiet, caps=schedule.caps
    )


async def approve(
    *,
    session: AsyncSession,
    message_id: int,
    actor_id: int | None,
    actor_name: str,
    now: datetime,
    schedule: Schedule,
    text: str | None = None,
    token: str | None = None,
) -> Decision:
    """Approve a queued message (or, with the engine's `token`, an automatic one): it goes at the
    first moment quiet hours and the customer's caps allow; an agent task becomes the agent's."""
    items = await load(session=session, ids=[message_id])
    if not items:
        return Decision(False, None)
    item = items[0]
    values: dict[str, Any] = {
        "decided_by": actor_id,
        "decided_by_name": actor_name[:128],
        "decided_at": now,
        "claim": None,
    }
    if text is not None:
        values.update(text=text, edited_by_name=actor_name[:128])
    if item.message.channel == AGENT_TASK:
        values.update(state=CareState.TASK, fire_at=None)
    else:
        slot = await slot_for(session=session, item=item, now=now, schedule=schedule)
        values.update(
            state=CareState.APPROVED,
            send_at=slot.at,
            fire_at=slot.at,
            delay_reasons=",".join(slot.reasons) or None,
        )
    where = _ours(message_id, token) if token else and_(T.c.id == message_id, T.c.state == CareState.QUEUED)
    won = await _set(session, where, values)
    await session.commit()
    return Decision(won, await _get(session, message_id))


_APPROVE_MANY = (
    update(T)
    .where(T.c.id == bindparam("b_id"), T.c.state == CareState.QUEUED)
    .values(
        state=bindparam("b_state"),
        send_at=bindparam("b_send_at"),
        fire_at=bindparam("b_send_at"),
        delay_reasons=bindparam("b_reasons"),
        decided_by=bindparam("b_actor"),
        decided_by_name=bindparam("b_actor_name"),
        decided_at=bindparam("b_now"),
        claim=None,
    )
)


async def approve_many(
    *,
    session: AsyncSession,
    ids: Sequence[int],
    actor_id: int,
    actor_name: str,
    now: datetime,
    schedule: Schedule,
) -> list[int]:
    """Approve many queued messages at once (a lead's "all of this rule today", a burst): one read
    of the messages and of their customers' booked sends, slots worked out in memory (each approved
    message counts against the next one's caps), one conditional UPDATE per row in one statement,
    one commit. Returns the ids this call approved (someone else may have decided the others)."""
    won: list[int] = []
    for start in range(0, len(ids), CLAIM_BATCH):
        chunk = list(ids[start : start + CLAIM_BATCH])
        items = [i for i in await load(session=session, ids=chunk) if i.message.state == CareState.QUEUED]
        if not items:
            continue
        booked = await _booked(session, sorted({i.message.customer_pk for i in items}))
        params = []
        for item in items:
            m = item.message
            row = {"b_id": m.id, "b_actor": actor_id, "b_actor_name": actor_name[:128], "b_now": now}
            if m.channel == AGENT_TASK:
                params.append({**row, "b_state": CareState.TASK, "b_send_at": None, "b_reasons": None})
                continue
            mine = booked[m.customer_pk]
            zone = zone_of(item.customer, schedule.team_zone)
            slot = send_slot(
                max(now, m.due_at), booked=mine, zone=zone, quiet=schedule.quiet, caps=schedule.caps
            )
            mine.append(slot.at)
            reasons = ",".join(slot.reasons) or None
            params.append({**row, "b_state": CareState.APPROVED, "b_send_at": slot.at, "b_reasons": reasons})
        await _core(session, _APPROVE_MANY, params)
        decided = await _core(
            session,
            select(T.c.id).where(
                T.c.id.in_([p["b_id"] for p in params]), T.c.decided_by == actor_id, T.c.decided_at == now
            ),
        )
        won += list(decided.scalars())
        await session.commit()
    return won


async def cards_of(*, session: AsyncSession, ids: Sequence[int]) -> list[CareMessage]:
    """One message per card or digest among `ids`, to redraw each once."""
    rows = (
        (await session.exec(orm_select(CareMessage).where(col(CareMessage.id).in_(list(ids))))).all()
        if ids
        else []
    )
    await session.commit()
    return list({(m.chat_id, m.message_id): m for m in rows if m.message_id is not None}.values())


async def _get(session: AsyncSession, message_id: int) -> CareMessage | None:
    row = await session.get(CareMessage, message_id, populate_existing=True)
    await session.commit()
    return row


async def decide(
    *,
    session: AsyncSession,
    message_id: int,
    from_states: Sequence[str],
    to_state: str,
    actor_id: int,
    actor_name: str,
    now: datetime,
) -> Decision:
    """Skip a queued message, mark a task done, take or close an alert: one press wins."""
    won = await _set(
        session,
        and_(T.c.id == message_id, T.c.state.in_(list(from_states))),
        {
            "state": to_state,
            "fire_at": None,
            "decided_by": actor_id,
            "decided_by_name": actor_name[:128],
            "decided_at": now,
        },
    )
    if won and to_state == CareState.DONE:
        row = await _get(session, message_id)
        if row is not None:
            await _contacted(session, row.customer_pk, now)
    await session.commit()
    return Decision(won, await _get(session, message_id))


async def queued_of_rule(
    *, session: AsyncSession, chat_id: int, rule: str, since: datetime, until: datetime
) -> list[int]:
    rows = await _core(
        session,
        select(T.c.id).where(
            T.c.chat_id == chat_id,
            T.c.rule == rule,
            T.c.state == CareState.QUEUED,
            T.c.due_at >= since,
            T.c.due_at < until,
        ),
    )
    ids = list(rows.scalars())
    await session.commit()
    return ids


async def waiting(*, session: AsyncSession, chat_id: int, limit: int = 30) -> list[CareItem]:
    rows = await _core(
        session,
        select(T.c.id)
        .where(T.c.chat_id == chat_id, T.c.state.in_([CareState.QUEUED, CareState.TASK, CareState.ALERT]))
        .order_by(T.c.due_at)
        .limit(limit),
    )
    ids = list(rows.scalars())
    return await load(session=session, ids=ids) if ids else []


async def count_waiting(*, session: AsyncSession, chat_id: int) -> int:
    n = (
        await _core(
            session,
            select(func.count()).where(
                T.c.chat_id == chat_id, T.c.state.in_([CareState.QUEUED, CareState.TASK, CareState.ALERT])
            ),
        )
    ).scalar()
    await session.commit()
    return int(n or 0)


# Delivering ---------------------------------------------------------------------------------------
async def _contacted(session: AsyncSession, customer_pk: int, now: datetime) -> None:
    c = Customer.__table__  # type: ignore[attr-defined]
    await _core(
        session,
        update(c)
        .where(c.c.id == customer_pk)
        .values(contacted_count=c.c.contacted_count + 1, last_contact_at=now),
    )


async def record_result(
    *, session: AsyncSession, item: CareItem, token: str, result: Result, now: datetime
) -> str | None:
    """Store one attempt. Returns the new state, or None when the claim was no longer ours."""
    m = item.message
    assert m.id is not None
    attempts = m.attempts + 1
    values: dict[str, Any] = {"attempts": attempts, "claim": None, "last_error": None}
    if result.outcome == Outcome.DELIVERED:
        values.update(state=CareState.DELIVERED, delivered_at=now, fire_at=None)
    elif result.outcome == Outcome.RETRY and not gives_up(attempts):
        values.update(
            state=CareState.APPROVED,
            fire_at=now + retry_delay(attempts, result.retry_after),
            last_error=result.detail[:200],
        )
    else:
        values.update(state=CareState.FAILED, fire_at=None, last_error=result.detail[:200])
    if not await _set(session, and_(_ours(m.id, token), T.c.state == CareState.SENDING), values):
        await session.rollback()
        return None
    await _core(
        session,
        insert(CareAttempt.__table__),  # type: ignore[attr-defined]
        [
            {
                "care_message_id": m.id,
                "outcome": result.outcome.value,
                "detail": result.detail[:200] or None,
                "at": now,
            }
        ],
    )
    if result.outcome == Outcome.DELIVERED:
        await _contacted(session, m.customer_pk, now)
    await session.commit()
    return str(values["state"])


async def retry_failed(
    *, session: AsyncSession, message_id: int, actor_name: str, now: datetime, schedule: Schedule
) -> Decision:
    """A dead letter sent again (the address fixed, the gateway back): approved as it was, with a
    fresh round of attempts, at the first moment quiet hours and caps allow. One press wins; the
    delivery log records who asked. The engine re-checks exclusions before sending, as always."""
    items = await load(session=session, ids=[message_id])
    if not items or items[0].message.state != CareState.FAILED:
        return Decision(False, items[0].message if items else None)
    slot = await slot_for(session=session, item=items[0], now=now, schedule=schedule)
    values = {
        "state": CareState.APPROVED,
        "send_at": slot.at,
        "fire_at": slot.at,
        "delay_reasons": ",".join(slot.reasons) or None,
        "attempts": 0,
        "claim": None,
    }
    won = await _set(session, and_(T.c.id == message_id, T.c.state == CareState.FAILED), values)
    if won:
        await _core(
            session,
            insert(CareAttempt.__table__),  # type: ignore[attr-defined]
            [{"care_message_id": message_id, "outcome": "requeued", "detail": actor_name[:200], "at": now}],
        )
    await session.commit()
    return Decision(won, await _get(session, message_id))


# Customers and settings ---------------------------------------------------------------------------
async def opt_out(*, session: AsyncSession, customer_pk: int, now: datetime) -> list[CareMessage]:
    """No more messages for this customer: the flag, and every open message dropped. Returns those
    that had a card in the group, so it can say so."""
    c = Customer.__table__  # type: ignore[attr-defined]
    await _core(session, update(c).where(c.c.id == customer_pk).values(opted_out=True, updated_at=now))
    open_rows = (
        await session.exec(
            orm_select(CareMessage).where(
                CareMessage.customer_pk == customer_pk,
                col(CareMessage.state).in_([CareState.PLANNED, CareState.QUEUED, CareState.APPROVED]),
                col(CareMessage.channel) != ALERT_CHANNEL,
            )
        )
    ).all()
    ids = [m.id for m in open_rows]
    if ids:
        await _core(
            session,
            update(T)
            .where(T.c.id.in_(ids), T.c.state.in_([CareState.PLANNED, CareState.QUEUED, CareState.APPROVED]))
            .values(state=CareState.DROPPED, drop_reason="opted_out", fire_at=None, decided_at=now),
        )
    await session.commit()
    return [m for m in open_rows if m.message_id is not None]


async def set_reach(*, session: AsyncSession, customer_pk: int, **flags: bool) -> None:
    c = Customer.__table__  # type: ignore[attr-defined]
    await _core(session, update(c).where(c.c.id == customer_pk).values(**flags))


async def automatic_rules(*, session: AsyncSession) -> dict[str, bool]:
    rows = (await session.exec(orm_select(CareRuleSetting))).all()
    return {r.rule: r.automatic for r in rows}


async def set_automatic(
    *, session: AsyncSession, rule: str, automatic: bool, actor_id: int, actor_name: str, now: datetime
) -> None:
    """A lead's switch, audited: nothing goes without approval unless a lead said so, on record."""
    setting = await session.get(CareRuleSetting, rule)
    if setting is None:
        setting = CareRuleSetting(rule=rule, automatic=automatic, updated_by=actor_id, updated_at=now)
    setting.automatic, setting.updated_by, setting.updated_at = automatic, actor_id, now
    session.add(setting)
    session.add(
        CareRuleChange(
            rule=rule,
            automatic=automatic,
            changed_by=actor_id,
            changed_by_name=actor_name[:128],
            changed_at=now,
        )
    )
    await session.commit()


async def routes(*, session: AsyncSession, chat_id: int) -> dict[str, int]:
    rows = (await session.exec(orm_select(ChatRoute).where(ChatRoute.chat_id == chat_id))).all()
    return {r.kind: r.thread_id for r in rows}


async def set_route(
    *, session: AsyncSession, chat_id: int, kind: str, thread_id: int | None, actor_id: int, now: datetime
) -> None:
    route = await session.get(ChatRoute, (chat_id, kind))
    if thread_id is None:
        if route is not None:
            await session.delete(route)
    elif route is None:
        session.add(ChatRoute(chat_id=chat_id, kind=kind, thread_id=thread_id, set_by=actor_id, set_at=now))
    else:
        route.thread_id, route.set_by, route.set_at = thread_id, actor_id, now
        session.add(route)
    await session.commit()


async def on_message(*, session: AsyncSession, chat_id: int, message_id: int) -> list[CareItem]:
    """Everything one approval card or digest shows, to draw it again after a change."""
    rows = await _core(
        session, select(T.c.id).where(T.c.chat_id == chat_id, T.c.message_id == message_id).order_by(T.c.id)
    )
    ids = list(rows.scalars())
    return await load(session=session, ids=ids) if ids else []


async def primary_chat(*, session: AsyncSession) -> int | None:
    """The team group care cards go to: the first bound one that is still active."""
    tc = TeamChat.__table__  # type: ignore[attr-defined]
    found = (
        await _core(
            session, select(tc.c.chat_id).where(tc.c.active.is_(True)).order_by(tc.c.bound_at).limit(1)
        )
    ).scalar()
    await session.commit()
    return int(found) if found is not None else None
