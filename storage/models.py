"""Tables. Money is integer cents (exact, fast); times are timezone-aware UTC.

A customer row carries its running figures (orders, spend, first / last purchase) so a card is one
row plus the latest orders; the importer and the event path keep them in step with the orders
in the same transaction (see storage/figures.py).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Column, Index, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from storage import lengths


def _flag() -> Column[bool]:
    # A database-side default only: bulk inserts (the importer) name just the columns they fill.
    return Column(Boolean, nullable=False, server_default=false())


class CustomerBase(SQLModel):
    external_id: str = Field(max_length=lengths.EXTERNAL_ID, unique=True, index=True)
    nickname: str | None = Field(default=None, max_length=lengths.NICKNAME, index=True)
    name: str | None = Field(default=None, max_length=lengths.PERSON_NAME, index=True)
    phone: str | None = Field(default=None, max_length=lengths.PHONE, index=True)
    email: str | None = Field(default=None, max_length=lengths.EMAIL)
    gender: str | None = Field(default=None, max_length=lengths.GENDER)
    province: str | None = Field(default=None, max_length=lengths.PROVINCE)
    city: str | None = Field(default=None, max_length=lengths.CITY)
    birthday: date | None = None
    created_at: datetime | None = None


class Customer(CustomerBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
    # Running figures, kept in step with the orders (storage/figures.py).
    orders_count: int = 0
    purchases: int = Field(default=0, index=True)
    total_spent_cents: int = Field(default=0, index=True)
    max_payment_cents: int = 0
    first_purchase_at: datetime | None = None
    first_purchase_cents: int | None = None
    last_purchase_at: datetime | None = Field(default=None, index=True)
    last_purchase_cents: int | None = None
    # Marketing response.
    contacted_count: int = 0
    responded_count: int = 0
    last_contact_at: datetime | None = None
    # Reach (crm/sending.py): who may get care messages at all, and in which zone quiet hours count.
    opted_out: bool = Field(default=False, sa_column=_flag())
    unreachable: bool = Field(default=False, sa_column=_flag())
    open_complaint: bool = Field(default=False, sa_column=_flag())
    bad_reviewer: bool = Field(default=False, sa_column=_flag())
    zone: str | None = Field(default=None, max_length=48)  # IANA name; None: the team's zone
    updated_at: datetime | None = None


class OrderBase(SQLModel):
    order_no: str = Field(max_length=lengths.ORDER_NO, unique=True, index=True)
    created_at: datetime
    paid_at: datetime | None = None
    shipped_at: datetime | None = None
    signed_at: datetime | None = None
    closed_at: datetime | None = None
    refunded_at: datetime | None = None
    status: str = Field(default="created", max_length=16)
    amount_cents: int
    source: str | None = Field(default=None, max_length=lengths.SOURCE)
    carrier: str | None = Field(default=None, max_length=lengths.CARRIER)
    tracking_no: str | None = Field(default=None, max_length=lengths.TRACKING_NO)
    province: str | None = Field(default=None, max_length=lengths.PROVINCE)


class Order(OrderBase, table=True):
    __tablename__ = "orders"
    __table_args__ = (Index("ix_orders_customer_created", "customer_pk", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id")


class Product(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=lengths.PRODUCT_NAME, unique=True, index=True)
    # Days one unit lasts, for replenishment reminders; unknown until configured.
    cycle_days: int | None = None


class OrderItem(SQLModel, table=True):
    __tablename__ = "order_item"
    __table_args__ = (UniqueConstraint("order_pk", "product_pk", name="uq_order_item"),)

    id: int | None = Field(default=None, primary_key=True)
    order_pk: int = Field(foreign_key="orders.id")  # uq_order_item's leading column indexes it
    product_pk: int = Field(foreign_key="product.id")
    # Kept with the order's customer; a customer's items are read through their orders (no index).
    customer_pk: int = Field(foreign_key="customer.id")
    quantity: int = 1


class CustomerTag(SQLModel, table=True):
    __tablename__ = "customer_tag"
    __table_args__ = (UniqueConstraint("customer_pk", "tag", name="uq_customer_tag"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id", index=True)
    tag: str = Field(max_length=48)
    set_by: int = Field(sa_type=BigInteger)
    set_at: datetime


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id", index=True)
    author_id: int = Field(sa_type=BigInteger)
    author_name: str = Field(max_length=128)
    text: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime


class TeamChat(SQLModel, table=True):
    __tablename__ = "team_chat"

    chat_id: int = Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    title: str = Field(default="", max_length=256)
    bound_by: int = Field(sa_type=BigInteger)
    bound_at: datetime
    active: bool = True


class Agent(SQLModel, table=True):
    user_id: int = Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    display_name: str = Field(default="", max_length=128)
    username: str | None = Field(default=None, max_length=64)
    # Set by /lang; None follows the user's Telegram language.
    locale: str | None = Field(default=None, max_length=8)
    # The language Telegram reports for them: what messages the bot posts on its own are written in.
    telegram_language: str | None = Field(default=None, max_length=16)
    last_seen_chat: int | None = Field(default=None, sa_type=BigInteger)
    verified_at: datetime | None = None


class ShopStat(SQLModel, table=True):
    """Shop-wide figures computed in batch (RFM and lifecycle cut points) as JSON."""

    __tablename__ = "shop_stat"

    key: str = Field(primary_key=True, max_length=48)
    value: str = Field(sa_column=Column(Text, nullable=False))
    computed_at: datetime


class FollowUp(SQLModel, table=True):
    """One row of the scenario table applied to one customer: a timer owned by one agent.

    `fire_at` is when the engine next acts on it (remind, re-post, escalate, or reclaim a lapsed
    claim); the row, not the scheduler, is the truth, so a restart loses nothing.
    """

    __tablename__ = "follow_up"
    __table_args__ = (
        Index("ix_follow_up_due", "state", "fire_at"),
        Index("ix_follow_up_customer", "customer_pk", "state"),
        Index("ix_follow_up_chat_due", "chat_id", "state", "fire_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_pk: int = Field(foreign_key="customer.id")
    order_pk: int | None = Field(default=None, foreign_key="orders.id")
    chat_id: int = Field(sa_type=BigInteger)
    scenario: str = Field(max_length=24)
    product: str | None = Field(default=None, max_length=200)
    minutes: int | None = None
    owner_id: int = Field(sa_type=BigInteger)
    owner_name: str = Field(default="", max_length=128)
    state: str = Field(max_length=16)
    step: str = Field(default="remind", max_length=12)
    due_at: datetime | None = None
    fire_at: datetime | None = None
    # When the reminder is meant to go out (due time moved into working hours); lateness counts from it.
    remind_at: datetime | None = None
    carried_over: bool = False
    late_seconds: int | None = None
    attempts: int = 0
    claim: str | None = Field(default=None, max_length=32)
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    # The message that confirmed the start (where an automatic close is told, quietly).
    origin_chat_id: int | None = Field(default=None, sa_type=BigInteger)
    origin_message_id: int | None = Field(default=None, sa_type=BigInteger)
    created_by: int = Field(sa_type=BigInteger)
    created_at: datetime
    fired_at: datetime | None = None
    closed_at: datetime | None = None
    closed_by: int | None = Field(default=None, sa_type=BigInteger)
    closed_by_name: str | None = Field(default=None, max_length=128)
    close_reason: str | None = Field(default=None, max_length=32)


class FollowUpEvent(SQLModel, table=True):
    """A follow-up's history, for reports: created, fired, snoozed, done, cancelled … by whom, when."""

    __tablename__ = "follow_up_event"

    id: int | None = Field(default=None, primary_key=True)
    follow_up_id: int = Field(foreign_key="follow_up.id", index=True)
    action: str = Field(max_length=16)
    actor_id: int | None = Field(default=None, sa_type=BigInteger)
    actor_name: str | None = Field(default=None, max_length=128)
    detail: str | None = Field(default=None, max_length=200)
    at: datetime


class ScenarioSetting(SQLModel, table=True):
    """A lead's change to one scenario row, layered over the YAML table."""

    __tablename__ = "scenario_setting"

    scenario: str = Field(primary_key=True, max_length=24)
    minutes: int | None = None
    reply: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    updated_by: int = Field(sa_type=BigInteger)
    updated_at: datetime


class ScenarioChange(SQLModel, table=True):
    """Audit trail of scenario changes made from the chat."""

    __tablename__ = "scenario_change"

    id: int | None = Field(default=None, primary_key=True)
    scenario: str = Field(max_length=24, index=True)
    field: str = Field(max_length=16)
    old_value: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    new_value: str = Field(sa_column=Column(Text, nullable=False))
    changed_by: int = Field(sa_type=BigInteger)
    changed_by_name: str = Field(default="", max_length=128)
    changed_at: datetime


class ShopEvent(SQLModel, table=True):
    """Every shop event taken in, by its id: a repeated id is acknowledged and ignored."""

    __tablename__ = "shop_event"

    id: str = Field(primary_key=True, max_length=64)
    type: str = Field(max_length=32)
    occurred_at: datetime
    received_at: datetime
    payload: str = Field(sa_column=Column(Text, nullable=False))


class CareMessage(SQLModel, table=True):
    """One planned care message (or call task, or alert) and its way through the queue.

    States (crm/care_queue.py): planned → queued (approval card posted) → approved → sending →
    delivered; or skipped, dropped (no longer applies, excluded), failed (dead letter), task → done.
    `fire_at` is when the engine next acts on it, as with follow-ups; `plan_key` makes planning
    idempotent (a replayed event or a second daily run plans nothing new).
    """

    __tablename__ = "care_message"
    __table_args__ = (
        Index("ix_care_message_due", "state", "fire_at"),
        Index("ix_care_message_customer", "customer_pk", "state"),
        Index("ix_care_message_chat", "chat_id", "state"),
        Index("ix_care_message_order", "order_pk", "state"),  # an order event re-checks its messages
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_key: str = Field(max_length=160, unique=True)
    rule: str = Field(max_length=32)
    channel: str = Field(max_length=16)
    customer_pk: int = Field(foreign_key="customer.id")
    order_pk: int | None = Field(default=None, foreign_key="orders.id")
    segments: str = Field(default="", max_length=120)  # most specific first, comma-separated
    values: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # rule placeholders, JSON
    marketing: bool = False
    automatic: bool = False
    state: str = Field(max_length=16)
    due_at: datetime
    fire_at: datetime | None = None
    send_at: datetime | None = None
    delay_reasons: str | None = Field(default=None, max_length=64)
    drop_reason: str | None = Field(default=None, max_length=32)
    text: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    locale: str = Field(default="zh_CN", max_length=8)
    edited_by_name: str | None = Field(default=None, max_length=128)
    chat_id: int | None = Field(default=None, sa_type=BigInteger)
    thread_id: int | None = None
    message_id: int | None = Field(default=None, sa_type=BigInteger)
    decided_by: int | None = Field(default=None, sa_type=BigInteger)
    decided_by_name: str | None = Field(default=None, max_length=128)
    decided_at: datetime | None = None
    attempts: int = 0
    claim: str | None = Field(default=None, max_length=32)
    last_error: str | None = Field(default=None, max_length=200)
    delivered_at: datetime | None = None
    created_at: datetime


class CareAttempt(SQLModel, table=True):
    """Each try at delivering a care message: the customer's delivery log."""

    __tablename__ = "care_attempt"

    id: int | None = Field(default=None, primary_key=True)
    care_message_id: int = Field(foreign_key="care_message.id", index=True)
    outcome: str = Field(max_length=16)
    detail: str | None = Field(default=None, max_length=200)
    at: datetime


class CareRuleSetting(SQLModel, table=True):
    """A lead's switch of a care rule to automatic (no approval) or back; each change is audited."""

    __tablename__ = "care_rule_setting"

    rule: str = Field(primary_key=True, max_length=32)
    automatic: bool
    updated_by: int = Field(sa_type=BigInteger)
    updated_at: datetime


class CareRuleChange(SQLModel, table=True):
    __tablename__ = "care_rule_change"

    id: int | None = Field(default=None, primary_key=True)
    rule: str = Field(max_length=32, index=True)
    automatic: bool
    changed_by: int = Field(sa_type=BigInteger)
    changed_by_name: str = Field(max_length=128)
    changed_at: datetime


class ChatRoute(SQLModel, table=True):
    """In a forum supergroup, the topic (message_thread_id) each kind of message goes to."""

    __tablename__ = "chat_route"

    chat_id: int = Field(sa_type=BigInteger, primary_key=True, sa_column_kwargs={"autoincrement": False})
    kind: str = Field(primary_key=True, max_length=16)  # approvals · reminders · alerts
    thread_id: int
    set_by: int = Field(sa_type=BigInteger)
    set_at: datetime
