from datetime import UTC, datetime, timedelta

from crm.figures import OrderFacts, average_order_cents, compute_figures

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_only_paid_unrefunded_orders_are_purchases() -> None:
    orders = [
        OrderFacts(T0, 19900, paid_at=T0),
        OrderFacts(
            T0 + timedelta(days=10),
            5000,
            paid_at=T0 + timedelta(days=10),
            refunded_at=T0 + timedelta(days=12),
        ),
        OrderFacts(T0 + timedelta(days=20), 12000),  # never paid
        OrderFacts(T0 + timedelta(days=30), 29950, paid_at=T0 + timedelta(days=30, minutes=5)),
    ]
    f = compute_figures(orders)
    assert (f.orders_count, f.purchases, f.total_spent_cents, f.max_payment_cents) == (4, 2, 49850, 29950)
    assert (f.first_purchase_at, f.first_purchase_cents) == (T0, 19900)
    assert (f.last_purchase_at, f.last_purchase_cents) == (T0 + timedelta(days=30, minutes=5), 29950)


def test_no_orders_gives_empty_figures() -> None:
    f = compute_figures([])
    assert f.orders_count == 0 and f.first_purchase_at is None and f.last_purchase_cents is None


def test_average_order_value_rounds_half_up_and_is_none_before_buying() -> None:
    assert average_order_cents(58840, 3) == 19613
    assert average_order_cents(5, 2) == 3
    assert average_order_cents(0, 0) is None
