"""Shop events, as the event API takes them: the contract and the rules that need no database.

`data` uses the importer's column names (order_id, customer_id, amount, …) so a shop's export and
its live events speak the same language.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from crm.lookup import normalize_phone
from crm.sending import zone_name

EventType = Literal[
    "customer.upserted",
    "order.created",
    "order.paid",
    "order.shipped",
    "order.arrived",
    "order.signed",
    "order.refunded",
    "order.closed",
    "review.posted",
    "product.restocked",
]
MAX_BATCH = 500
MAX_CENTS = 2_147_483_647
# An order's status only moves forward: a late "paid" after "shipped" must not undo the shipment.
STATUS_RANK = {"created": 0, "paid": 1, "shipped": 2, "signed": 3, "closed": 4, "refunded": 4}
# What each order event sets: (status, time column).
ORDER_STEPS: dict[str, tuple[str | None, str | None]] = {
    "order.created": ("created", None),
    "order.paid": ("paid", "paid_at"),
    "order.shipped": ("shipped", "shipped_at"),
    "order.arrived": (None, None),
    "order.signed": ("signed", "signed_at"),
    "order.refunded": ("refunded", "refunded_at"),
    "order.closed": ("closed", "closed_at"),
}


class EventError(ValueError):
    pass


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a time zone, e.g. 2026-11-23T10:00:00+08:00")
    return value.astimezone(UTC)


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    type: EventType
    occurred_at: datetime
    data: dict[str, Any]

    @field_validator("occurred_at")
    @classmethod
    def _occurred(cls, value: datetime) -> datetime:
        return _aware(value)


class _Data(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)


class CustomerData(_Data):
    customer_id: str = Field(min_length=1, max_length=64)
    nickname: str | None = Field(None, max_length=128)
    name: str | None = Field(None, max_length=128)
    phone: str | None = Field(None, max_length=32)
    email: str | None = Field(None, max_length=254)
    gender: str | None = Field(None, max_length=8)
    province: str | None = Field(None, max_length=32)
    city: str | None = Field(None, max_length=64)
    birthday: date | None = None
    created_at: datetime | None = None
    zone: str | None = Field(None, max_length=48)  # IANA time zone for quiet hours and caps

    @field_validator("zone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else zone_name(value)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        phone = normalize_phone(value)
        if phone is None:
            raise ValueError("not a phone number")
        return phone

    @field_validator("created_at")
    @classmethod
    def _created(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)


class OrderData(_Data):
    order_id: str = Field(min_length=1, max_length=64)
    customer_id: str | None = Field(None, min_length=1, max_length=64)
    amount: Decimal | None = Field(None, ge=0, le=Decimal(MAX_CENTS) / 100, decimal_places=2)
    created_at: datetime | None = None
    source: str | None = Field(None, max_length=32)
    carrier: str | None = Field(None, max_length=32)
    tracking_no: str | None = Field(None, max_length=64)
    province: str | None = Field(None, max_length=32)

    @field_validator("created_at")
    @classmethod
    def _created(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _aware(value)

    @property
    def amount_cents(self) -> int | None:
        if self.amount is None:
            return None
        cents = int(self.amount * 100)
        if cents > MAX_CENTS:
            raise EventError("amount is too large")
        return cents


class ReviewData(_Data):
    order_id: str = Field(min_length=1, max_length=64)
    rating: int = Field(ge=1, le=5, strict=True)
    text: str = Field("", max_length=2000)


class RestockData(_Data):
    product: str = Field(min_length=1, max_length=200)


DATA_MODELS: dict[str, type[_Data]] = {
    "customer.upserted": CustomerData,
    "review.posted": ReviewData,
    "product.restocked": RestockData,
}


_EVENT_LIST = TypeAdapter(list[Event])


def data_model(event_type: str) -> type[_Data]:
    return DATA_MODELS.get(event_type, OrderData)


def parse_events(body: Any) -> tuple[list[tuple[Event, _Data]], list[dict[str, Any]]]:
    """One event or a list; returns the parsed ones and, per bad one, where and why."""
    items = body if isinstance(body, list) else [body]
    if not items:
        return [], [{"index": None, "error": "the batch is empty"}]
    if len(items) > MAX_BATCH:
        return [], [{"index": None, "error": f"at most {MAX_BATCH} events per request"}]
    try:  # the usual case, every event well formed: validated in one call
        events = _EVENT_LIST.validate_python(items)
    except ValidationError:
        events = None  # say which ones and why, below
    parsed, errors = [], []
    if events is not None:
        for index, event in enumerate(events):
            try:
                parsed.append((event, data_model(event.type).model_validate(event.data)))
            except ValidationError as exc:
                errors.append(_error(index, items[index], exc, "data."))
        return parsed, errors
    for index, item in enumerate(items):
        prefix = ""
        try:
            event = Event.model_validate(item)
            prefix = "data."
            parsed.append((event, data_model(event.type).model_validate(event.data)))
        except ValidationError as exc:
            errors.append(_error(index, item, exc, prefix))
    return parsed, errors


def _error(index: int, item: Any, exc: ValidationError, prefix: str) -> dict[str, Any]:
    first = exc.errors()[0]
    where = prefix + ".".join(str(p) for p in first["loc"]) or "event"
    event_id = item.get("id") if isinstance(item, dict) else None
    return {"index": index, "id": event_id, "error": f"{where}: {first['msg']}"}


def advance(current: str, new: str | None) -> str:
    """The status after an event: forward only."""
    if new is None or STATUS_RANK.get(new, 0) <= STATUS_RANK.get(current, 0):
        return current
    return new
