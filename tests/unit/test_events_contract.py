"""The shop-event contract: what the event API accepts, how it says no, and forward-only statuses."""

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from crm.events import (
    MAX_BATCH,
    MAX_CENTS,
    ORDER_STEPS,
    STATUS_RANK,
    CustomerData,
    Event,
    OrderData,
    RestockData,
    ReviewData,
    advance,
    data_model,
    parse_events,
)


def event(type_: str = "order.paid", data: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "evt-1",
        "type": type_,
        "occurred_at": "2026-11-23T10:00:00+08:00",
        "data": {"order_id": "T1001"} if data is None else data,
        **extra,
    }


def only_error(body: Any) -> dict[str, Any]:
    parsed, errors = parse_events(body)
    assert parsed == []
    assert len(errors) == 1
    return errors[0]


def only_data(body: Any) -> Any:
    parsed, errors = parse_events(body)
    assert errors == []
    assert len(parsed) == 1
    return parsed[0][1]


# Accepted


def test_a_single_event_is_parsed() -> None:
    parsed, errors = parse_events(event())
    assert errors == []
    [(ev, data)] = parsed
    assert isinstance(ev, Event)
    assert (ev.id, ev.type) == ("evt-1", "order.paid")
    assert isinstance(data, OrderData)
    assert data.order_id == "T1001"


def test_occurred_at_is_stored_in_utc() -> None:
    [(ev, _)] = parse_events(event())[0]
    assert ev.occurred_at == datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    assert ev.occurred_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]


def test_a_list_of_events_is_parsed_in_order() -> None:
    body = [
        event("customer.upserted", {"customer_id": "C1"}, id="e1"),
        event("order.created", {"order_id": "T1", "customer_id": "C1", "amount": "99.00"}, id="e2"),
        event("review.posted", {"order_id": "T1", "rating": 5}, id="e3"),
        event("product.restocked", {"product": "Green tea 250 g"}, id="e4"),
    ]
    parsed, errors = parse_events(body)
    assert errors == []
    assert [ev.id for ev, _ in parsed] == ["e1", "e2", "e3", "e4"]
    assert [type(data) for _, data in parsed] == [CustomerData, OrderData, ReviewData, RestockData]


def test_a_batch_of_exactly_max_batch_is_accepted() -> None:
    parsed, errors = parse_events([event(id=f"e{i}") for i in range(MAX_BATCH)])
    assert errors == []
    assert len(parsed) == MAX_BATCH


@pytest.mark.parametrize("type_", [t for t in ORDER_STEPS])
def test_every_order_event_uses_order_data(type_: str) -> None:
    assert data_model(type_) is OrderData
    assert isinstance(only_data(event(type_)), OrderData)


def test_data_ignores_fields_it_does_not_know_and_strips_text() -> None:
    data = only_data(event(data={"order_id": "  T1001  ", "colour": "red"}))
    assert data.order_id == "T1001"
    assert not hasattr(data, "colour")


# Rejected, with where and why


def test_missing_time_zone_is_rejected_naming_occurred_at() -> None:
    error = only_error(event(occurred_at="2026-11-23T10:00:00"))
    assert error["index"] == 0
    assert error["id"] == "evt-1"
    assert error["error"].startswith("occurred_at:")
    assert "time zone" in error["error"]


def test_missing_time_zone_in_data_is_rejected_naming_the_field() -> None:
    error = only_error(event("order.created", {"order_id": "T1", "created_at": "2026-11-23T10:00:00"}))
    assert error["error"].startswith("data.created_at:")
    assert "time zone" in error["error"]


def test_negative_amount_is_rejected_naming_data_amount() -> None:
    error = only_error(event("order.created", {"order_id": "T1", "amount": "-1.00"}))
    assert error["error"].startswith("data.amount:")


def test_amount_with_three_decimals_is_rejected() -> None:
    error = only_error(event("order.created", {"order_id": "T1", "amount": "1.005"}))
    assert error["error"].startswith("data.amount:")


def test_unknown_type_is_rejected_naming_type() -> None:
    error = only_error(event("order.lost"))
    assert error["error"].startswith("type:")


def test_extra_top_level_field_is_rejected() -> None:
    error = only_error(event(source="taobao"))
    assert error["error"].startswith("source:")
    assert "not permitted" in error["error"].lower()


@pytest.mark.parametrize("missing", ["id", "type", "occurred_at", "data"])
def test_missing_top_level_field_is_rejected_naming_it(missing: str) -> None:
    body = event()
    del body[missing]
    assert only_error(body)["error"].startswith(f"{missing}:")


def test_empty_id_is_rejected() -> None:
    assert only_error(event(id=""))["error"].startswith("id:")


def test_missing_order_id_is_rejected_naming_data_order_id() -> None:
    assert only_error(event(data={}))["error"].startswith("data.order_id:")


@pytest.mark.parametrize("body", ["just text", 42, None])
def test_something_that_is_not_an_event_is_rejected(body: Any) -> None:
    error = only_error(body)
    assert error["index"] == 0
    assert error["id"] is None
    assert error["error"].startswith("event:")


def test_empty_batch_is_rejected() -> None:
    assert parse_events([]) == ([], [{"index": None, "error": "the batch is empty"}])


def test_batch_over_max_batch_is_rejected_without_parsing() -> None:
    parsed, errors = parse_events([event(id=f"e{i}") for i in range(MAX_BATCH + 1)])
    assert parsed == []
    assert errors == [{"index": None, "error": f"at most {MAX_BATCH} events per request"}]


def test_each_bad_event_in_a_batch_is_reported_by_index_and_id() -> None:
    body = [
        event(id="ok-1"),
        event("order.lost", id="bad-1"),
        event(id="ok-2"),
        event("order.created", {"order_id": "T2", "amount": -5}, id="bad-2"),
    ]
    parsed, errors = parse_events(body)
    assert [ev.id for ev, _ in parsed] == ["ok-1", "ok-2"]
    assert [(e["index"], e["id"]) for e in errors] == [(1, "bad-1"), (3, "bad-2")]
    assert errors[1]["error"].startswith("data.amount:")


# Customers


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("+86 138-0013-8000", "13800138000"),
        ("0086 138 0013 8000", "13800138000"),
        ("13800138000", "13800138000"),
        ("", None),
    ],
)
def test_customer_phone_is_normalised(raw: str, phone: str | None) -> None:
    data = only_data(event("customer.upserted", {"customer_id": "C1", "phone": raw}))
    assert data.phone == phone


@pytest.mark.parametrize("raw", ["call me", "12", "138-0013-8000 ext. 5"])
def test_customer_phone_that_is_not_a_phone_is_rejected(raw: str) -> None:
    error = only_error(event("customer.upserted", {"customer_id": "C1", "phone": raw}))
    assert error["error"] == "data.phone: Value error, not a phone number"


@pytest.mark.parametrize(
    ("raw", "zone"), [("Asia/Singapore", "Asia/Singapore"), ("europe/berlin", "Europe/Berlin"), ("", None)]
)
def test_customer_zone_is_an_iana_name(raw: str, zone: str | None) -> None:
    assert only_data(event("customer.upserted", {"customer_id": "C1", "zone": raw})).zone == zone


@pytest.mark.parametrize("raw", ["+08:00", "GMT+8", "Mars/Olympus"])
def test_customer_zone_that_is_not_a_zone_is_rejected(raw: str) -> None:
    error = only_error(event("customer.upserted", {"customer_id": "C1", "zone": raw}))
    assert error["error"].startswith("data.zone: Value error, not a time zone"), error


def test_customer_fields_parse() -> None:
    data = only_data(
        event(
            "customer.upserted",
            {"customer_id": "C1", "birthday": "1990-05-01", "created_at": "2026-01-01T08:00:00+08:00"},
        )
    )
    assert data.birthday == date(1990, 5, 1)
    assert data.created_at == datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    assert data.phone is None


def test_customer_without_id_is_rejected() -> None:
    assert only_error(event("customer.upserted", {"nickname": "Li"}))["error"].startswith("data.customer_id:")


# Reviews


@pytest.mark.parametrize("rating", [1, 3, 5])
def test_review_rating_within_one_to_five_is_accepted(rating: int) -> None:
    data = only_data(event("review.posted", {"order_id": "T1", "rating": rating, "text": "好评"}))
    assert (data.rating, data.text) == (rating, "好评")


@pytest.mark.parametrize("rating", [0, 6, -1, 4.5, "five"])
def test_review_rating_outside_one_to_five_is_rejected(rating: Any) -> None:
    error = only_error(event("review.posted", {"order_id": "T1", "rating": rating}))
    assert error["error"].startswith("data.rating:")


def test_review_text_is_limited() -> None:
    error = only_error(event("review.posted", {"order_id": "T1", "rating": 5, "text": "x" * 2001}))
    assert error["error"].startswith("data.text:")


def test_restock_needs_a_product() -> None:
    assert only_error(event("product.restocked", {"product": ""}))["error"].startswith("data.product:")


# Amounts


@pytest.mark.parametrize(
    ("amount", "cents"),
    [("123.45", 12345), ("0.1", 10), (0.1, 10), ("0.29", 29), (19.99, 1999), ("0", 0), (7, 700)],
)
def test_amount_cents_is_exact(amount: Any, cents: int) -> None:
    assert OrderData.model_validate({"order_id": "T1", "amount": amount}).amount_cents == cents


def test_amount_is_a_decimal() -> None:
    assert OrderData.model_validate({"order_id": "T1", "amount": "123.45"}).amount == Decimal("123.45")


def test_no_amount_has_no_cents() -> None:
    assert OrderData.model_validate({"order_id": "T1"}).amount_cents is None


def test_amount_at_the_limit_and_over_it() -> None:
    at_limit = OrderData.model_validate({"order_id": "T1", "amount": "21474836.47"})
    assert at_limit.amount_cents == MAX_CENTS
    # Over the limit the event itself is refused, naming the field, before anything is applied.
    error = only_error(
        event("order.created", {"order_id": "T1", "customer_id": "C1", "amount": "21474836.48"})
    )
    assert error["error"].startswith("data.amount:")


def test_a_boolean_is_not_a_rating() -> None:
    error = only_error(event("review.posted", {"order_id": "T1", "rating": True}))
    assert error["error"].startswith("data.rating:")


# Statuses only move forward


def test_advance_moves_forward() -> None:
    assert advance("created", "paid") == "paid"
    assert advance("paid", "shipped") == "shipped"
    assert advance("shipped", "signed") == "signed"
    assert advance("signed", "closed") == "closed"


def test_advance_never_moves_backwards() -> None:
    assert advance("shipped", "paid") == "shipped"
    assert advance("signed", "shipped") == "signed"
    assert advance("paid", "created") == "paid"
    assert advance("closed", "created") == "closed"


def test_advance_refund_after_payment_moves() -> None:
    assert advance("paid", "refunded") == "refunded"
    assert advance("shipped", "refunded") == "refunded"
    assert advance("created", "refunded") == "refunded"


def test_advance_between_the_two_final_statuses_keeps_the_first() -> None:
    assert advance("closed", "refunded") == "closed"
    assert advance("refunded", "closed") == "refunded"


def test_advance_to_the_same_status_or_none_keeps_it() -> None:
    assert advance("paid", "paid") == "paid"
    assert advance("paid", None) == "paid"
    assert advance("shipped", ORDER_STEPS["order.arrived"][0]) == "shipped"


def test_advance_replayed_in_any_order_ends_at_the_furthest_status() -> None:
    statuses = ["created", "shipped", "paid", "signed", "paid", "created"]
    current = "created"
    for new in statuses:
        current = advance(current, new)
    assert current == "signed"
    assert STATUS_RANK[current] == max(STATUS_RANK[s] for s in statuses)


def test_order_steps_set_matching_time_columns() -> None:
    for type_, (status, column) in ORDER_STEPS.items():
        if status in (None, "created"):
            assert column is None, type_
        else:
            assert column == f"{status}_at", type_
            assert status in STATUS_RANK
