"""Applying shop events to the records: idempotent by event id, one transaction per batch.

What an event resolves (the follow-ups it answers) is cancelled in the same transaction, so an
order paid and its "ordered, not paid" follow-up can never disagree.

The work is synchronous and set-based (`apply_events_sync`): a batch is read in a few statements
(its event ids, orders, customers, their open follow-ups and care messages), its events are applied
one after the other in memory, exactly as they would be one by one against the rows, and what
changed is written back in a few more (an executemany per table), then the figures of the touched
customers are recomputed. On SQLite it runs as one call in the writer thread (storage.db.
ThreadedWrites); elsewhere through AsyncSession.run_sync (`apply_events`).
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import DateTime, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from sqlmodel import select as orm_select
from sqlmodel.ext.asyncio.session import AsyncSession

from crm.care_queue import CareState
from crm.care_rules import PAYMENT_RULES, CustomerFacts, OrderFacts, PlannedCare, still_applies
from crm.events import (
    ORDER_STEPS,
    CustomerData,
    Event,
    EventError,
    OrderData,
    RestockData,
    ReviewData,
    advance,
)
from crm.figures import Figures, compute_figures
from crm.figures import OrderFacts as FigureFacts
from crm.followups import OPEN_STATES as FOLLOW_UP_OPEN
from storage import care, followups
from storage.care_planner import facts_of_order
from storage.db import db_time, db_value, insert_for, py_date, py_time, sqlite_driver
from storage.figures import FIGURE_COLUMNS
from storage.figures_sync import refresh_figures_sync
from storage.models import CareMessage, Customer, FollowUp, Order, ShopEvent

_EVENTS = ShopEvent.__table__  # type: ignore[attr-defined]
_CUSTOMERS = Customer.__table__  # type: ignore[attr-defined]
_ORDERS = Order.__table__  # type: ignore[attr-defined]
_CARE = CareMessage.__table__  # type: ignore[attr-defined]
CUSTOMER_FIELDS = tuple(name for name in CustomerData.model_fields if name != "customer_id")
ORDER_FIELDS = (
    "created_at",
    "paid_at",
    "shipped_at",
    "signed_at",
    "closed_at",
    "refunded_at",
    "status",
    "amount_cents",
    "source",
    "carrier",
    "tracking_no",
    "province",
)
OPEN_CARE = (CareState.PLANNED, CareState.QUEUED, CareState.APPROVED)  # what an order event re-checks
NOT_BOOKED = (CareState.DROPPED, CareState.SKIPPED)  # payment reminders that do not count as sent
# New payment reminders are due from now on; one a day per customer in the team's zone: reminders
# due before yesterday (UTC) cannot share a calendar day with them in any zone.
BOOKED_SINCE = timedelta(days=2)
FIGURE_FACTS = frozenset({"created_at", "amount_cents", "paid_at", "refunded_at"})  # crm.figures reads these
IN_CHUNK = 500  # ids per IN list: well inside every driver's parameter limit


class CareHook(Protocol):
    """Plans care messages from an applied event (storage/care_planner.py); pure: the event path
    reads what it needs and stores the plans in the event's transaction."""

    def order_plans(
        self,
        event_type: str,
        order: OrderFacts,
        customer: CustomerFacts,
        now: datetime,
        booked: Callable[[], Iterable[datetime]],
    ) -> list[PlannedCare]: ...

    def review_plans(
        self, order: OrderFacts, customer: CustomerFacts, data: ReviewData, now: datetime
    ) -> list[PlannedCare]: ...


@dataclass(slots=True)
class Applied:
    accepted: int = 0
    duplicates: int = 0
    resolved: list[FollowUp] = field(default_factory=list)
    restocked: int = 0
    care_dropped: list[CareMessage] = field(default_factory=list)  # their cards need redrawing


Batch = Sequence[tuple[Event, object]]


# The rows a batch works on, in memory --------------------------------------------------------------
class _Customer:
    __slots__ = (
        "birthday",
        "changes",
        "ext",
        "history",
        "last_purchase_at",
        "mine",
        "new",
        "pk",
        "province",
        "purchases",
        "stored",
    )

    def __init__(
        self,
        pk: int | None,
        ext: str,
        purchases: int = 0,
        birthday: Any = None,
        last_purchase_at: datetime | None = None,
        province: str | None = None,
    ) -> None:
        self.pk, self.ext, self.purchases, self.birthday = pk, ext, purchases, birthday
        self.last_purchase_at, self.province = last_purchase_at, province
        self.changes: dict[str, Any] = {}  # columns to write back
        self.new = pk is None
        # On SQLite the figures are kept in memory (_Run.figures): the stored figure columns, the
        # stored orders' figure facts by order id, the orders the batch holds.
        self.stored: Figures | None = Figures() if self.new else None
        self.history: dict[int, tuple[Any, ...]] = {}
        self.mine: list[_Order] = []

    def facts(self) -> CustomerFacts:
        return CustomerFacts(self.ext, self.purchases, self.birthday, self.last_purchase_at, self.province)


class _Order:
    __slots__ = (
        "amount_cents",
        "carrier",
        "closed_at",
        "created_at",
        "customer",
        "dirty",
        "new",
        "order_no",
        "paid_at",
        "pk",
        "province",
        "refunded_at",
        "shipped_at",
        "signed_at",
        "source",
        "status",
        "tracking_no",
    )

    def __init__(self, pk: int | None, order_no: str, customer: _Customer, **values: Any) -> None:
        self.pk, self.order_no, self.customer = pk, order_no, customer
        for name in ORDER_FIELDS:
            setattr(self, name, values.get(name))
        customer.mine.append(self)
        self.dirty: set[str] = set()
        self.new = pk is None

    def set(self, name: str, value: Any) -> None:
        if getattr(self, name) != value:
            setattr(self, name, value)
            self.dirty.add(name)

    def facts(self) -> OrderFacts:
        return facts_of_order(self, self.customer.ext, self.customer.province)


class _Care:
    """A care message: a stored one (pk) or one this batch plans (row, written at the end)."""

    __slots__ = ("due_at", "message_id", "pk", "row", "rule", "state")

    def __init__(
        self,
        pk: int | None,
        rule: str,
        state: str,
        due_at: datetime,
        message_id: int | None,
        row: dict[str, Any] | None = None,
    ) -> None:
        self.pk, self.rule, self.state, self.due_at, self.message_id, self.row = (
            pk,
            rule,
            state,
            due_at,
            message_id,
            row,
        )


def _chunks(values: Iterable[Any]) -> Iterable[list[Any]]:
    items = list(values)
    for start in range(0, len(items), IN_CHUNK):
        yield items[start : start + IN_CHUNK]


# On SQLite the batch's statements go straight to the sqlite3 connection under the session (the
# same transaction): SQLAlchemy's per-row work (parameter and result processing, compiling) costs
# more than the statements. Values are stored exactly as the ORM stores them (storage.db.db_time).
MAX_VARIABLES = 30_000  # per statement: SQLite 3.32+ takes 32 766
_ORDER_SELECT = ("id", "order_no", "customer_pk", *ORDER_FIELDS)
_ORDER_INSERT = ("order_no", "customer_pk", *ORDER_FIELDS)
_ORDER_TIMES = tuple(i for i, n in enumerate(_ORDER_SELECT) if n.endswith("_at"))
_CUSTOMER_SELECT = ("id", "external_id", "purchases", "birthday", "last_purchase_at", "province")
_CUSTOMER_RAW = ("id", "external_id", "birthday", "province", *FIGURE_COLUMNS)
_FIGURES_WRITE = "UPDATE customer SET " + ",".join(f"{n}=?" for n in FIGURE_COLUMNS) + " WHERE id=?"
_CARE_TIMES = frozenset(c.name for c in _CARE.c if isinstance(getattr(c.type, "impl", c.type), DateTime))
NEW_IDS = 1 << 62  # sorts an order the batch creates after every stored one, as its id will
_CUSTOMER_INSERT = ("external_id", *CUSTOMER_FIELDS, "updated_at", "bad_reviewer", "open_complaint")
_CUSTOMER_ZEROS = ("orders_count", "purchases", "total_spent_cents", "max_payment_cents", "contacted_count",
                   "responded_count")  # fmt: skip
_CARE_SELECT = ("id", "customer_pk", "order_pk", "plan_key", "rule", "state", "due_at", "message_id")


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _quoted(names: Iterable[str]) -> str:
    return ",".join(f'"{n}"' for n in names)


class _Raw:
    """The batch's statements on the sqlite3 connection under the session."""

    def __init__(self, driver: sqlite3.Connection) -> None:
        self.cur = driver.cursor()

    def select(self, sql: str, values: Collection[Any], prefix: Sequence[Any] = ()) -> list[Any]:
        """`sql` with one `{}` where the IN list of `values` goes (in chunks)."""
        out: list[Any] = []
        for chunk in _chunks(values):
            out += self.cur.execute(sql.format(_marks(len(chunk))), (*prefix, *chunk)).fetchall()
        return out

    def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
    ) -> list[Any]:
        """Multi-row INSERT … `tail` (ON CONFLICT …, RETURNING …) in as few statements as fit."""
        per = max(1, MAX_VARIABLES // len(columns))
        one = f"({_marks(len(columns))})"
        head = f'INSERT INTO "{table}" ({_quoted(columns)}) VALUES '
        out: list[Any] = []
        for start in range(0, len(rows), per):
            chunk = rows[start : start + per]
            sql = head + ",".join([one] * len(chunk)) + " " + tail
            out += self.cur.execute(sql, [v for row in chunk for v in row]).fetchall()
        return out

    def update(self, table: str, keys: Sequence[str], params: Iterable[Sequence[Any]]) -> None:
        """One executemany: each row's `keys` values, then its id."""
        sets = ",".join(f'"{k}"=?' for k in keys)
        self.cur.executemany(f'UPDATE "{table}" SET {sets} WHERE id=?', params)

    def orders(self, order_nos: Collection[str]) -> list[list[Any]]:
        sql = f"SELECT {_quoted(_ORDER_SELECT)} FROM orders WHERE order_no IN ({{}})"
        out = []
        for row in self.select(sql, order_nos):
            row = list(row)
            for i in _ORDER_TIMES:
                if row[i] is not None:
                    row[i] = py_time(row[i])
            out.append(row)
        return out

    def customers(self, column: str, keys: Collection[Any]) -> list[tuple[Any, ...]]:
        """Laid out as _CUSTOMER_SELECT, then the stored figures."""
        sql = f"SELECT {_quoted(_CUSTOMER_RAW)} FROM customer WHERE {column} IN ({{}})"
        out = []
        for (
            pk,
            ext,
            birthday,
            province,
            count,
            purchases,
            total,
            top,
            first_at,
            first,
            last_at,
            last,
        ) in self.select(sql, keys):
            last_at = py_time(last_at)
            stored = Figures(count, purchases, total, top, py_time(first_at), first, last_at, last)
            out.append((pk, ext, purchases, py_date(birthday), last_at, province, stored))
        return out

    def order_facts(self, customer_pks: Collection[int]) -> list[tuple[Any, ...]]:
        """(customer_pk, id, created_at, amount_cents, paid_at, refunded_at) of their orders."""
        sql = (
            "SELECT customer_pk, id, created_at, amount_cents, paid_at, refunded_at FROM orders "
            "WHERE customer_pk IN ({})"
        )
        return [
            (c, o, py_time(at), a, py_time(p), py_time(r))
            for c, o, at, a, p, r in self.select(sql, customer_pks)
        ]

    def care(self, where: str, keys: Collection[Any], prefix: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        sql = f"SELECT {_quoted(_CARE_SELECT)} FROM care_message WHERE {where} IN ({{}})"
        return [(*row[:6], py_time(row[6]), row[7]) for row in self.select(sql, keys, prefix)]

    def payment_rows(self, customer_pks: Collection[int], since: datetime) -> list[tuple[Any, ...]]:
        """storage.care.payment_rows_sync"""
        rules = sorted(PAYMENT_RULES)
        where = (
            f"rule IN ({_marks(len(rules))}) AND state NOT IN ({_marks(len(NOT_BOOKED))}) AND due_at >= ? "
            "AND customer_pk"
        )
        return self.care(where, customer_pks, (*rules, *NOT_BOOKED, db_time(since)))

    def open_follow_ups(self, customer_pks: Collection[int], scenarios: Collection[str]) -> list[Any]:
        """storage.followups.open_for_customers_sync"""
        names = sorted(scenarios)
        sql = (
            f"SELECT id, customer_pk, scenario FROM follow_up WHERE state IN ({_marks(len(FOLLOW_UP_OPEN))}) "
            f"AND scenario IN ({_marks(len(names))}) AND customer_pk IN ({{}}) ORDER BY id"
        )
        return self.select(sql, customer_pks, (*FOLLOW_UP_OPEN, *names))


class _Run:
    """One transaction: requests applied in order, each with its own Applied."""

    def __init__(
        self,
        session: Session,
        *,
        resolves: Callable[[str], Sequence[str]],
        restock_scenarios: Sequence[str],
        now: datetime,
        care: CareHook | None,
    ) -> None:
        self.session, self.conn = session, session.connection()
        driver = sqlite_driver(self.conn)
        self.raw = _Raw(driver) if driver is not None else None
        self.resolves, self.restock_scenarios, self.now, self.care = resolves, restock_scenarios, now, care
        self.customers: dict[str, _Customer] = {}
        self.orders: dict[str, _Order] = {}
        self.new_customers: list[_Customer] = []
        self.new_orders: list[_Order] = []
        self.care_by_order: dict[str, list[_Care]] = defaultdict(list)
        self.payments: dict[str, list[_Care]] = defaultdict(list)  # payment reminders, by customer
        self.plan_keys: set[str] = set()
        self.new_care: list[tuple[_Care, _Customer, _Order]] = []
        self.dropped: list[int] = []  # stored care messages the batch made pointless
        self.open_follow_ups: dict[int, list[tuple[int, str]]] = defaultdict(list)
        self.resolving: list[tuple[int, str, Applied]] = []  # (follow-up id, reason, for whom)
        self.touched: set[_Customer] = set()
        self.moved: set[_Customer] = set()  # touched since the last settle()

    # Reading ----------------------------------------------------------------------------------------
    def claim_ids(self, requests: Sequence[Batch]) -> list[list[bool]]:
        """Insert the events' ids; per request and event, whether it is new (else a duplicate)."""
        first: dict[str, tuple[Event, object]] = {}
        for events in requests:
            for item in events:
                first.setdefault(item[0].id, item)
        new: set[str] = set()
        if first and self.raw is not None:
            received = db_time(self.now)
            found = self.raw.insert(
                "shop_event",
                ("id", "type", "occurred_at", "received_at", "payload"),
                [
                    (
                        e.id,
                        e.type,
                        db_time(e.occurred_at),
                        received,
                        json.dumps(e.data, ensure_ascii=False, default=str),
                    )
                    for e, _ in first.values()
                ],
                "ON CONFLICT(id) DO NOTHING RETURNING id",
            )
            new = {row[0] for row in found}
        elif first:
            rows = [
                {
                    "id": e.id,
                    "type": e.type,
                    "occurred_at": e.occurred_at,
                    "received_at": self.now,
                    "payload": json.dumps(e.data, ensure_ascii=False, default=str),
                }
                for e, _ in first.values()
            ]
            stmt = insert_for(self.conn.dialect)(_EVENTS).on_conflict_do_nothing(index_elements=["id"])
            new = set(self.conn.execute(stmt.returning(_EVENTS.c.id), rows).scalars())
        flags = []
        for events in requests:
            mine = []
            for event, _ in events:
                mine.append(event.id in new)
                new.discard(event.id)  # a second copy in the same batch is a duplicate
            flags.append(mine)
        return flags

    def load(self, requests: Sequence[Batch], fresh: list[list[bool]]) -> None:
        order_nos: set[str] = set()
        customer_ids: set[str] = set()
        created: set[str] = set()  # customers whose payment reminders an order.created counts
        for events, flags in zip(requests, fresh, strict=True):
            for (_, data), new in zip(events, flags, strict=True):
                if not new:
                    continue
                if isinstance(data, OrderData | ReviewData):
                    order_nos.add(data.order_id)
                owner = data.customer_id if isinstance(data, CustomerData | OrderData) else None
                if owner is not None:
                    customer_ids.add(owner)
        raw = self.raw
        c, o = _CUSTOMERS.c, _ORDERS.c
        stored_orders: list[Any] = []  # laid out as _ORDER_SELECT
        if raw is not None:
            stored_orders = raw.orders(order_nos)
        else:
            for chunk in _chunks(order_nos):
                stored_orders += self.conn.execute(
                    select(*(o[n] for n in _ORDER_SELECT)).where(o.order_no.in_(chunk))
                ).all()
        columns = [c[n] for n in _CUSTOMER_SELECT]
        by_pk: dict[int, _Customer] = {}
        owners = {row[2] for row in stored_orders}
        rows: list[Any] = []
        if raw is not None:
            rows = raw.customers("external_id", customer_ids) + raw.customers("id", owners)
        else:
            for chunk in _chunks(customer_ids):
                rows += self.conn.execute(select(*columns).where(c.external_id.in_(chunk))).all()
            for chunk in _chunks(owners):
                rows += self.conn.execute(select(*columns).where(c.id.in_(chunk))).all()
        for row in rows:
            pk, ext, purchases, birthday, last_purchase_at, province = row[:6]
            if pk not in by_pk:
                by_pk[pk] = self.customers[ext] = _Customer(
                    pk, ext, purchases, birthday, last_purchase_at, province
                )
                if raw is not None:
                    by_pk[pk].stored = row[6]
        if raw is not None:  # the figure facts of their orders: figures are kept in memory
            for customer_pk, order_pk, *facts in raw.order_facts(by_pk):
                by_pk[customer_pk].history[order_pk] = tuple(facts)
        for row in stored_orders:
            self.orders[row[1]] = _Order(
                row[0], row[1], by_pk[row[2]], **dict(zip(ORDER_FIELDS, row[3:], strict=True))
            )
        # What the batch re-checks: its stored orders' care messages and plan keys, the payment
        # reminders of customers who order, the open follow-ups it may resolve.
        by_order_pk = {order.pk: order for order in self.orders.values()}
        seen: dict[int, _Care] = {}

        def remember(row: Any) -> _Care:
            pk, _, _, plan_key, rule, state, due_at, message_id = row  # as _CARE_SELECT
            found = seen.get(pk)
            if found is None:
                found = seen[pk] = _Care(pk, rule, state, due_at, message_id)
                self.plan_keys.add(plan_key)
            return found

        if self.care is not None:
            if raw is not None:
                of_orders = raw.care("order_pk", by_order_pk)
            else:
                of_orders = care.of_orders_sync(self.session, list(by_order_pk))
            for row in of_orders:
                self.care_by_order[by_order_pk[row[2]].order_no].append(remember(row))
            for events, flags in zip(requests, fresh, strict=True):
                for (event, data), new in zip(events, flags, strict=True):
                    if new and event.type == "order.created" and isinstance(data, OrderData):
                        known = self.orders.get(data.order_id)
                        owner = known.customer if known else self.customers.get(data.customer_id or "")
                        if owner is not None and owner.pk is not None:
                            created.add(owner.ext)
            pks = {self.customers[ext].pk for ext in created}
            since = self.now - BOOKED_SINCE
            if raw is not None:
                payment_rows = raw.payment_rows(pks, since)
            else:
                payment_rows = [
                    row
                    for chunk in _chunks(pks)
                    for row in care.payment_rows_sync(self.session, chunk, since=since)
                ]
            for row in payment_rows:
                self.payments[by_pk[row[1]].ext].append(remember(row))
        scenarios = {
            s
            for events in requests
            for event, data in events
            if isinstance(data, OrderData)
            for s in self.resolves(event.type)
        }
        if scenarios:
            if raw is not None:
                open_rows = raw.open_follow_ups(by_pk, scenarios)
            else:
                open_rows = [
                    row
                    for chunk in _chunks(by_pk)
                    for row in followups.open_for_customers_sync(self.session, chunk, scenarios)
                ]
            for fid, customer_pk, scenario in open_rows:
                self.open_follow_ups[customer_pk].append((fid, scenario))

    # Applying ---------------------------------------------------------------------------------------
    def customer(self, external_id: str) -> _Customer:
        found = self.customers.get(external_id)
        if found is None:  # an order for a customer we have not seen yet: a bare record, as the importer does
            found = self.customers[external_id] = _Customer(None, external_id)
            found.changes["updated_at"] = self.now
            self.new_customers.append(found)
        return found

    def upsert_customer(self, data: CustomerData) -> None:
        customer = self.customer(data.customer_id)
        for name, value in data.model_dump(exclude={"customer_id"}, exclude_unset=True).items():
            customer.changes[name] = value
            if name in ("birthday", "province"):
                setattr(customer, name, value)
        customer.changes["updated_at"] = self.now

    def apply_order(self, event: Event, data: OrderData) -> _Order:
        order = self.orders.get(data.order_id)
        if order is None:
            if data.customer_id is None or data.amount_cents is None:
                raise EventError(
                    f"order {data.order_id} is unknown: send order.created (customer_id, amount) first"
                )
            order = self.orders[data.order_id] = _Order(
                None,
                data.order_id,
                self.customer(data.customer_id),
                created_at=data.created_at or event.occurred_at,
                amount_cents=data.amount_cents,
                status="created",
            )
            self.new_orders.append(order)
        status, stamp = ORDER_STEPS[event.type]
        for name in ("source", "carrier", "tracking_no", "province"):
            value = getattr(data, name)
            if value:
                order.set(name, value)
        if data.amount_cents is not None and event.type == "order.created":
            order.set("amount_cents", data.amount_cents)
        if stamp is not None and getattr(order, stamp) is None:
            order.set(stamp, event.occurred_at)
        order.set("status", advance(order.status, status))
        return order

    def resolve(self, customer: _Customer, event_type: str, result: Applied) -> None:
        scenarios = self.resolves(event_type)
        if not scenarios or customer.pk is None:
            return
        still_open = []
        for fid, scenario in self.open_follow_ups.get(customer.pk, ()):
            if scenario in scenarios:
                self.resolving.append((fid, event_type, result))
            else:
                still_open.append((fid, scenario))
        self.open_follow_ups[customer.pk] = still_open

    def plan(self, planned: Sequence[PlannedCare], order: _Order) -> None:
        for p in planned:
            if p.key[:160] in self.plan_keys:
                continue  # planned before: the stored row stands (as ON CONFLICT DO NOTHING would)
            self.plan_keys.add(p.key[:160])
            row = care.plan_row(p, 0, None, self.now)
            item = _Care(None, row["rule"], row["state"], row["due_at"], None, row)
            self.new_care.append((item, order.customer, order))
            self.care_by_order[order.order_no].append(item)
            if item.rule in PAYMENT_RULES:
                self.payments[order.customer.ext].append(item)

    def booked(self, customer: _Customer) -> list[datetime]:
        return [m.due_at for m in self.payments.get(customer.ext, ()) if m.state not in NOT_BOOKED]

    def on_order(self, event: Event, order: _Order, result: Applied) -> None:
        assert self.care is not None
        facts = order.facts()
        customer = order.customer
        planned = self.care.order_plans(
            event.type, facts, customer.facts(), self.now, lambda: self.booked(customer)
        )
        self.plan(planned, order)
        # Messages waiting for this order that the event made pointless (paid: no reminder); those
        # with a card in the group are redrawn once the event is stored.
        for m in self.care_by_order.get(order.order_no, ()):
            if m.state in OPEN_CARE and not still_applies(m.rule, facts, now=self.now):
                m.state = CareState.DROPPED
                if m.row is not None:
                    m.row.update(
                        state=CareState.DROPPED,
                        drop_reason="no_longer_applies",
                        fire_at=None,
                        decided_at=self.now,
                    )
                else:
                    assert m.pk is not None
                    self.dropped.append(m.pk)
                    if m.message_id is not None:
                        result.care_dropped.append(CareMessage(id=m.pk))  # filled in at the end

    def on_review(self, data: ReviewData, order: _Order) -> None:
        assert self.care is not None
        planned = self.care.review_plans(order.facts(), order.customer.facts(), data, self.now)
        if planned:
            # A bad or middling review: no marketing until someone has talked to them.
            order.customer.changes.update(bad_reviewer=True, open_complaint=True)
            self.plan(planned, order)

    def owners(self, events: Batch, fresh: list[bool]) -> set[_Customer]:
        """The customers whose figures this request's care rules would read."""
        found = set()
        for (_, data), new in zip(events, fresh, strict=True):
            if new and isinstance(data, OrderData | ReviewData):
                order = self.orders.get(data.order_id)
                if order is not None:
                    found.add(order.customer)
                elif isinstance(data, OrderData) and data.customer_id in self.customers:
                    found.add(self.customers[data.customer_id])
        return found

    def apply(self, events: Batch, fresh: list[bool]) -> Applied:
        result = Applied()
        for (event, data), new in zip(events, fresh, strict=True):
            if not new:
                result.duplicates += 1
                continue
            result.accepted += 1
            if isinstance(data, CustomerData):
                self.upsert_customer(data)
            elif isinstance(data, OrderData):
                before = self.orders.get(data.order_id)
                seen = set(before.dirty) if before is not None else set()
                order = self.apply_order(event, data)
                if before is None or (order.dirty - seen) & FIGURE_FACTS:
                    # A new order, a payment, a refund: the customer's figures move (a shipment
                    # does not; a field changed before in the batch touched them then).
                    self.touched.add(order.customer)
                    self.moved.add(order.customer)
                self.resolve(order.customer, event.type, result)
                if self.care is not None:
                    self.on_order(event, order, result)
            elif isinstance(data, ReviewData):
                reviewed = self.orders.get(data.order_id)
                if reviewed is None:
                    raise EventError(f"review of order {data.order_id}: that order is unknown")
                if self.care is not None:
                    self.on_review(data, reviewed)
            elif isinstance(data, RestockData):
                self.write_resolutions()  # what this batch resolved before is not waiting any more
                result.restocked += followups.restocked_sync(
                    self.session, product=data.product, scenarios=self.restock_scenarios, now=self.now
                )
        return result

    # Figures in memory (SQLite) -----------------------------------------------------------------------
    def figures(self, c: _Customer) -> Figures:
        """compute_figures over the customer's orders as the batch left them, in (created_at, id)
        order, as storage.figures feeds them."""
        held = {o.pk for o in c.mine if o.pk is not None}
        rows = [(f[0], pk, f[1], f[2], f[3]) for pk, f in c.history.items() if pk not in held]
        for i, o in enumerate(c.mine):
            pk = o.pk if o.pk is not None else NEW_IDS + i
            rows.append((o.created_at, pk, o.amount_cents, o.paid_at, o.refunded_at))
        rows.sort(key=lambda r: (r[0], r[1]))
        return compute_figures(FigureFacts(r[0], r[2], r[3], r[4]) for r in rows)

    def settle(self) -> None:
        """Before the next request: the figures the requests so far moved, as it would read them
        had they committed first (what the care rules read: purchases, last purchase)."""
        for c in self.moved:
            f = self.figures(c)
            c.purchases, c.last_purchase_at = f.purchases, f.last_purchase_at
        self.moved.clear()

    def write_figures(self, raw: _Raw) -> None:
        writes = []
        for c in self.touched:
            f = self.figures(c)
            if f != c.stored:
                first = None if f.first_purchase_at is None else db_time(f.first_purchase_at)
                last = None if f.last_purchase_at is None else db_time(f.last_purchase_at)
                writes.append(
                    (f.orders_count, f.purchases, f.total_spent_cents, f.max_payment_cents, first,
                     f.first_purchase_cents, last, f.last_purchase_cents, c.pk)
                )  # fmt: skip
        if writes:
            raw.cur.executemany(_FIGURES_WRITE, writes)

    # Writing ----------------------------------------------------------------------------------------
    def write_resolutions(self) -> None:
        by_reason: dict[str, list[int]] = defaultdict(list)
        for fid, reason, _ in self.resolving:
            by_reason[reason].append(fid)
        done: set[int] = set()
        for reason, ids in by_reason.items():
            for chunk in _chunks(ids):
                done.update(followups.resolve_sync(self.session, chunk, reason, self.now))
        rows = followups.load_rows_sync(self.session, done)
        for fid, _, result in self.resolving:
            if fid in rows:
                result.resolved.append(rows[fid])
        self.resolving = []

    def write(self) -> None:
        if self.raw is not None:
            self.write_raw(self.raw)
        else:
            self.write_core()
        self.write_resolutions()
        if self.raw is not None:
            self.write_figures(self.raw)
        elif self.touched:
            refresh_figures_sync(self.conn, [c.pk for c in self.touched if c.pk is not None])

    def write_raw(self, raw: _Raw) -> None:
        """write_core's statements on the sqlite3 connection, the same rows."""
        if self.new_customers:
            extra = sorted({k for c in self.new_customers for k in c.changes} - set(_CUSTOMER_INSERT))
            columns = (*_CUSTOMER_INSERT, *extra, *_CUSTOMER_ZEROS)
            flags = {"bad_reviewer": False, "open_complaint": False}
            rows = []
            for c in self.new_customers:
                values = {**flags, **c.changes}
                row = [c.ext]
                row += [db_value(values.get(k)) for k in columns[1 : len(_CUSTOMER_INSERT) + len(extra)]]
                row += [0] * len(_CUSTOMER_ZEROS)
                rows.append(row)
            made = dict(
                raw.insert(
                    "customer", columns, rows, "ON CONFLICT(external_id) DO NOTHING RETURNING external_id, id"
                )
            )
            if len(made) != len(rows):
                raise IntegrityError("customer", None, Exception("created meanwhile"))
            for c in self.new_customers:
                c.pk = made[c.ext]
        changed: dict[tuple[str, ...], list[list[Any]]] = defaultdict(list)
        for c in self.customers.values():
            if not c.new and c.changes:
                keys = tuple(sorted(c.changes))
                changed[keys].append([*(db_value(c.changes[k]) for k in keys), c.pk])
        for keys, params in changed.items():
            raw.update("customer", keys, params)
        if self.new_orders:
            rows = []
            for o in self.new_orders:
                row = [o.order_no, o.customer.pk, *(getattr(o, n) for n in ORDER_FIELDS)]
                rows.append([db_value(v) for v in row])
            made = dict(raw.insert("orders", _ORDER_INSERT, rows, "RETURNING order_no, id"))
            for o in self.new_orders:
                o.pk = made[o.order_no]
        dirty: dict[tuple[str, ...], list[list[Any]]] = defaultdict(list)
        for o in self.orders.values():
            if o.dirty and not o.new:
                keys = tuple(sorted(o.dirty))
                dirty[keys].append([*(db_value(getattr(o, n)) for n in keys), o.pk])
        for keys, params in dirty.items():
            raw.update("orders", keys, params)
        if self.new_care:
            keys = tuple(
                sorted(
                    {k for item, _, _ in self.new_care for k in item.row or ()} | {"customer_pk", "order_pk"}
                )
            )
            times = [i for i, k in enumerate(keys) if k in _CARE_TIMES]
            params = []
            for item, customer, order in self.new_care:
                assert item.row is not None
                row = {**item.row, "customer_pk": customer.pk, "order_pk": order.pk}
                values = [row.get(k) for k in keys]
                for i in times:
                    if values[i] is not None:
                        values[i] = db_time(values[i])
                params.append(values)
            raw.cur.executemany(
                f"INSERT INTO care_message ({_quoted(keys)}) VALUES ({_marks(len(keys))}) "
                "ON CONFLICT(plan_key) DO NOTHING",
                params,
            )
        for chunk in _chunks(self.dropped):
            raw.cur.execute(
                "UPDATE care_message SET state=?, drop_reason=?, fire_at=NULL, decided_at=? "
                f"WHERE id IN ({_marks(len(chunk))}) AND state IN ({_marks(len(OPEN_CARE))})",
                (CareState.DROPPED, "no_longer_applies", db_time(self.now), *chunk, *OPEN_CARE),
            )

    def write_core(self) -> None:
        conn = self.conn
        if self.new_customers:
            rows = [
                {"external_id": c.ext, **dict.fromkeys(CUSTOMER_FIELDS), **c.changes}
                for c in self.new_customers
            ]
            keys = sorted({k for row in rows for k in row})
            rows = [{k: row.get(k) for k in keys} for row in rows]  # review flags: False unless set
            for row in rows:
                for flag in ("bad_reviewer", "open_complaint"):
                    if flag in row and row[flag] is None:
                        row[flag] = False
            stmt = insert_for(conn.dialect)(_CUSTOMERS).on_conflict_do_nothing(index_elements=["external_id"])
            made = dict(conn.execute(stmt.returning(_CUSTOMERS.c.external_id, _CUSTOMERS.c.id), rows).all())
            if len(made) != len(rows):  # created meanwhile by another writer (PostgreSQL)
                raise IntegrityError("customer", None, Exception("created meanwhile"))
            for c in self.new_customers:
                c.pk = made[c.ext]
        changed: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for c in self.customers.values():
            if not c.new and c.changes:
                keys = tuple(sorted(c.changes))
                changed[keys].append({"_pk": c.pk, **c.changes})
        for keys, params in changed.items():
            stmt = (
                update(_CUSTOMERS)
                .where(_CUSTOMERS.c.id == bindparam("_pk"))
                .values({k: bindparam(k) for k in keys})
            )
            conn.execute(stmt, params)
        if self.new_orders:
            rows = [
                {
                    "order_no": o.order_no,
                    "customer_pk": o.customer.pk,
                    **{n: getattr(o, n) for n in ORDER_FIELDS},
                }
                for o in self.new_orders
            ]
            made = dict(conn.execute(insert(_ORDERS).returning(_ORDERS.c.order_no, _ORDERS.c.id), rows).all())
            for o in self.new_orders:
                o.pk = made[o.order_no]
        dirty: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for o in self.orders.values():
            if o.dirty and not o.new:
                keys = tuple(sorted(o.dirty))
                dirty[keys].append({"_pk": o.pk, **{n: getattr(o, n) for n in keys}})
        for keys, params in dirty.items():
            stmt = (
                update(_ORDERS)
                .where(_ORDERS.c.id == bindparam("_pk"))
                .values({k: bindparam(k) for k in keys})
            )
            conn.execute(stmt, params)
        if self.new_care:
            rows = []
            for item, customer, order in self.new_care:
                assert item.row is not None
                rows.append({**item.row, "customer_pk": customer.pk, "order_pk": order.pk})
            keys = sorted({k for row in rows for k in row})  # a dropped one carries more columns
            care.plan_rows_sync(self.session, [{k: row.get(k) for k in keys} for row in rows])
        for chunk in _chunks(self.dropped):
            conn.execute(
                update(_CARE)
                .where(_CARE.c.id.in_(chunk), _CARE.c.state.in_(OPEN_CARE))
                .values(
                    state=CareState.DROPPED,
                    drop_reason="no_longer_applies",
                    fire_at=None,
                    decided_at=self.now,
                )
            )

    def redraw(self, results: Sequence[Applied]) -> None:
        """The stored messages dropped with a card in the group, as rows (their card is redrawn)."""
        ids = [m.id for r in results for m in r.care_dropped]
        if not ids:
            return
        stmt = orm_select(CareMessage).where(col(CareMessage.id).in_(ids))
        rows = {m.id: m for m in self.session.exec(stmt.execution_options(populate_existing=True)).all()}
        for r in results:
            r.care_dropped = [rows[m.id] for m in r.care_dropped if m.id in rows]


def _transaction(
    session: Session,
    requests: Sequence[Batch],
    *,
    resolves: Callable[[str], Sequence[str]],
    restock_scenarios: Sequence[str],
    now: datetime,
    care: CareHook | None,
) -> list[Applied]:
    """Apply requests in order in one transaction and commit. Stops before a request whose care
    rules would read figures an earlier one changed (figures are recomputed once, at the end): the
    caller applies the rest in the next transaction. Raises EventError with nothing written."""
    run = _Run(session, resolves=resolves, restock_scenarios=restock_scenarios, now=now, care=care)
    try:
        fresh = run.claim_ids(requests)
        if any(any(flags) for flags in fresh):
            run.load(requests, fresh)
        results: list[Applied] = []
        for events, flags in zip(requests, fresh, strict=True):
            if results and run.raw is not None:
                run.settle()  # figures in memory: the group goes on
            elif results and run.touched & run.owners(events, flags):
                later = [
                    e.id
                    for rest, f in zip(requests[len(results) :], fresh[len(results) :], strict=True)
                    for (e, _), new in zip(rest, f, strict=True)
                    if new
                ]
                for chunk in _chunks(later):
                    if run.raw is not None:
                        run.raw.cur.execute(
                            f"DELETE FROM shop_event WHERE id IN ({_marks(len(chunk))})", chunk
                        )
                    else:
                        run.conn.execute(delete(_EVENTS).where(_EVENTS.c.id.in_(chunk)))
                break
            results.append(run.apply(events, flags))
        run.write()
        run.redraw(results)
        session.commit()
    except (IntegrityError, sqlite3.IntegrityError):
        session.rollback()
        raise EventError("the batch conflicts with data written at the same moment; send it again") from None
    except BaseException:
        session.rollback()
        raise
    return results


def apply_events_sync(
    session: Session,
    requests: Sequence[Batch],
    *,
    resolves: Callable[[str], Sequence[str]],
    restock_scenarios: Sequence[str],
    now: datetime,
    care: CareHook | None = None,
) -> list[Applied | EventError]:
    """Apply requests (each a batch, atomic on its own) in as few transactions as possible: group
    commit for concurrent requests. When the group cannot apply, each request is applied alone, so
    one bad request never fails another. Per request: its Applied, or the EventError that kept it
    out (nothing of it written)."""
    kwargs: dict[str, Any] = {
        "resolves": resolves,
        "restock_scenarios": restock_scenarios,
        "now": now,
        "care": care,
    }
    out: list[Applied | EventError] = []
    rest = list(requests)
    try:
        while rest:
            done = _transaction(session, rest, **kwargs)
            out += done
            rest = rest[len(done) :]
    except EventError as exc:
        if len(rest) == 1:
            return [*out, exc]
        for events in rest:
            try:
                out += _transaction(session, [events], **kwargs)
            except EventError as alone:
                out.append(alone)
    return out


async def apply_events(
    *,
    session: AsyncSession,
    events: Batch,
    resolves: Callable[[str], Sequence[str]],
    restock_scenarios: Sequence[str],
    now: datetime,
    care: CareHook | None = None,
) -> Applied:
    """Apply a batch atomically. `resolves(event_type)` names the scenario keys an event answers.
    Raises EventError (nothing written) when an event cannot be applied."""
    (result,) = await session.run_sync(
        lambda sync: _transaction(
            sync, [events], resolves=resolves, restock_scenarios=restock_scenarios, now=now, care=care
        )
    )
    return result
