"""Care rules: the shipped YAML, validation that names the row and field, and each rule's decisions."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from crm.care_rules import (
    RULE_KEYS,
    TRIGGERS,
    CareRuleError,
    CareTable,
    CustomerFacts,
    OrderFacts,
    PlannedCare,
    PurchaseFacts,
    daily,
    on_event,
    one_reminder_a_day,
    parse_care_rules,
    replenishment_day,
    still_applies,
)

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
# 2026-03-10 10:00 in Shanghai, a Tuesday.
T0 = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


def shipped_data() -> dict[str, Any]:
    with (ROOT / "config" / "care_rules.yaml").open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def table(**changes: dict[str, Any]) -> CareTable:
    """The shipped table with some rows' fields changed (`common` changes the common block)."""
    data = copy.deepcopy(shipped_data())
    for key, fields in changes.items():
        target = data.setdefault("common", {}) if key == "common" else data["rules"][key]
        target.update(fields)
    return parse_care_rules(data)


def error_of(mutate: Any) -> str:
    data = copy.deepcopy(shipped_data())
    mutate(data)
    with pytest.raises(CareRuleError) as info:
        parse_care_rules(data)
    return str(info.value)


def order(**fields: Any) -> OrderFacts:
    base: dict[str, Any] = {
        "order_no": "O1",
        "customer_id": "C1",
        "status": "created",
        "created_at": T0,
        "amount_cents": 12_800,
    }
    return OrderFacts(**{**base, **fields})


def buyer(purchases: int = 0, **fields: Any) -> CustomerFacts:
    return CustomerFacts(customer_id="C1", purchases=purchases, **fields)


def keys(planned: list[PlannedCare]) -> list[str]:
    return [p.rule for p in planned]


# The shipped table


def test_shipped_table_lists_every_rule_with_its_trigger() -> None:
    t = table()
    assert tuple(t.rules) == RULE_KEYS
    for key, rule in t.rules.items():
        assert rule.on == TRIGGERS[key]
    assert {k for k, r in t.rules.items() if r.on == "daily"} == {
        "birthday",
        "after_purchase",
        "replenishment",
        "logistics_abnormal",
    }


def test_shipped_defaults_follow_the_domain() -> None:
    t = table()
    assert t.rule("payment_reminder").delay == timedelta(minutes=25)
    assert t.rule("payment_reminder").params["flash_sale_delay_minutes"] == 15
    assert t.rule("shipping_delayed").delay == timedelta(hours=24)
    assert t.rule("after_purchase").params["days"] == 7
    assert t.rule("replenishment").params["lead_days"] == 7
    assert t.rule("bad_review_alert").params["max_rating"] == 3
    assert t.high_value_cents == 100_000
    assert t.unpaid_close == timedelta(hours=72)
    assert t.flash_sale_close == timedelta(minutes=30)
    assert "新疆" in t.remote_provinces and "西藏" in t.remote_provinces


def test_nothing_is_automatic_by_default_and_the_second_reminder_is_off() -> None:
    t = table()
    assert not any(r.automatic for r in t.rules.values())
    assert [k for k, r in t.rules.items() if not r.enabled] == ["payment_reminder_second"]


def test_marketing_and_service_rules() -> None:
    t = table()
    assert t.rule("payment_reminder").marketing and t.rule("birthday").marketing
    assert not t.rule("shipped").marketing and not t.rule("logistics_abnormal").marketing


def test_channels_default_to_webhook_and_the_alert_is_an_agent_task() -> None:
    t = table()
    assert t.rule("bad_review_alert").channel == "agent_task"
    assert {r.channel for k, r in t.rules.items() if k != "bad_review_alert"} == {"webhook"}


@pytest.mark.parametrize(
    ("carrier", "province", "days"),
    [
        ("EMS", "新疆维吾尔自治区", 8),  # carrier × province, by short name
        ("顺丰", "西藏自治区", 7),  # any carrier × province
        ("EMS", "上海市", 5),  # the carrier's default
        ("顺丰", "上海市", 4),  # the default
        (None, None, 4),
        ("EMS", None, 5),
    ],
)
def test_normal_days_most_specific_wins(carrier: str | None, province: str | None, days: int) -> None:
    assert table().normal_days_for(carrier, province) == days


# Validation errors name the row and the field


def test_delay_in_hours_or_minutes() -> None:
    data = copy.deepcopy(shipped_data())
    del data["rules"]["order_closed"]["delay_minutes"]
    data["rules"]["order_closed"]["delay_hours"] = 2
    assert parse_care_rules(data).rule("order_closed").delay == timedelta(hours=2)


def test_a_missing_field_takes_the_domain_default() -> None:
    data = copy.deepcopy(shipped_data())
    del data["rules"]["payment_reminder"]["flash_sale_delay_minutes"]
    del data["rules"]["shipped"]["channel"]
    del data["common"]
    t = parse_care_rules(data)
    assert t.rule("payment_reminder").params["flash_sale_delay_minutes"] == 15
    assert t.rule("shipped").channel == "webhook"
    assert t.high_value_cents == 100_000


@pytest.mark.parametrize(
    ("row", "fields", "starts"),
    [
        (
            "payment_reminder",
            {"delay_minutes": 5},
            "payment_reminder.delay_minutes: must be between 10 and 2880",
        ),
        ("payment_reminder", {"delay_minutes": "25"}, "payment_reminder.delay_minutes:"),
        ("payment_reminder", {"delay_minutes": True}, "payment_reminder.delay_minutes:"),
        ("payment_reminder", {"delay_hours": 49}, "payment_reminder: give exactly one"),
        ("payment_reminder", {"flash_sale_delay_minutes": 30}, "payment_reminder.flash_sale_delay_minutes:"),
        ("payment_reminder_preclose", {"before_close_minutes": 10}, "payment_reminder_preclose.before_close"),
        ("payment_reminder_preclose", {"delay_minutes": 5}, "payment_reminder_preclose.delay_minutes:"),
        ("birthday", {"delay_hours": 1}, "birthday.delay_hours: this rule has no delay"),
        ("bad_review_alert", {"delay_minutes": 10}, "bad_review_alert.delay_minutes: this rule has no delay"),
        ("bad_review_alert", {"max_rating": 5}, "bad_review_alert.max_rating: must be between 1 and 4"),
        ("shipped", {"channel": "sms"}, "shipped.channel: one of webhook, email, agent_task"),
        ("shipped", {"enabled": "yes"}, "shipped.enabled: true or false"),
        ("shipped", {"automatic": 1}, "shipped.automatic: true or false"),
        ("shipped", {"trigger": "order.paid"}, "shipped.trigger: this rule is triggered by order.shipped"),
        ("shipped", {"colour": "red"}, "shipped: unknown field(s) colour"),
        ("shipped", {"days": 3}, "shipped: unknown field(s) days"),
        (
            "shipping_delayed",
            {"delay_hours": 169},
            "shipping_delayed.delay_hours: must be between 0 and 10080",
        ),
        ("after_purchase", {"days": 0}, "after_purchase.days: must be between 1 and 365"),
        ("replenishment", {"cycle_days": {"猫粮": 0}}, "replenishment.cycle_days.猫粮:"),
        ("replenishment", {"cycle_days": [30]}, "replenishment.cycle_days:"),
    ],
)
def test_bad_field_is_named(row: str, fields: dict[str, Any], starts: str) -> None:
    def mutate(data: dict[str, Any]) -> None:
        data["rules"][row].update(fields)

    assert error_of(mutate).startswith(starts)


def test_normal_days_errors_name_carrier_and_province() -> None:
    def bad_days(data: dict[str, Any]) -> None:
        data["rules"]["logistics_abnormal"]["normal_days"]["EMS"]["新疆"] = "eight"

    def no_default(data: dict[str, Any]) -> None:
        data["rules"]["logistics_abnormal"]["normal_days"] = {"EMS": {"*": 5}}

    assert error_of(bad_days).startswith("logistics_abnormal.normal_days.EMS.新疆:")
    assert "'*'" in error_of(no_default)


def test_missing_unknown_and_malformed_rows() -> None:
    assert error_of(lambda d: d["rules"].pop("signed")).startswith("missing rule(s) signed")
    assert error_of(lambda d: d["rules"].update(gift={})).startswith("gift: not a care rule")
    assert error_of(lambda d: d["rules"].update(signed=5)).startswith("signed: expected a mapping")


@pytest.mark.parametrize(
    ("fields", "starts"),
    [
        ({"high_value_yuan": 0}, "common.high_value_yuan:"),
        ({"remote_provinces": "新疆"}, "common.remote_provinces: a list"),
        ({"unpaid_close_hours": 0}, "common.unpaid_close_hours:"),
        ({"tax": 1}, "common: unknown field(s) tax"),
    ],
)
def test_bad_common_field_is_named(fields: dict[str, Any], starts: str) -> None:
    assert error_of(lambda d: d["common"].update(fields)).startswith(starts)


@pytest.mark.parametrize("data", [None, [], {}, {"rules": []}, {"rules": {}, "extra": 1}])
def test_table_without_rules_is_rejected(data: Any) -> None:
    with pytest.raises(CareRuleError):
        parse_care_rules(data)


def test_high_value_null_turns_the_phone_call_off() -> None:
    t = table(common={"high_value_yuan": None})
    planned = on_event("order.created", order(amount_cents=10**8), buyer(), T0, t)
    assert planned[0].channel == "webhook"
    assert "high_amount" not in planned[0].segments


# Payment reminders


def test_payment_reminder_25_minutes_after_the_order() -> None:
    planned = on_event("order.created", order(), buyer(), T0, table())
    assert keys(planned) == ["payment_reminder", "payment_reminder_preclose"]
    first = planned[0]
    assert first.due_at == T0 + timedelta(minutes=25)
    assert (first.channel, first.customer_id, first.order_no) == ("webhook", "C1", "O1")
    assert first.marketing and not first.automatic and not first.immediate
    assert first.key == "payment_reminder:O1"
    assert first.values["order_no"] == "O1" and first.values["amount"] == "128.00"


def test_preclose_two_hours_before_the_platform_closes() -> None:
    planned = on_event("order.created", order(), buyer(), T0, table())
    assert planned[1].due_at == T0 + timedelta(hours=72) - timedelta(minutes=120)


def test_close_time_from_the_event_wins() -> None:
    closes = T0 + timedelta(hours=24)
    planned = on_event("order.created", order(closes_at=closes), buyer(), T0, table())
    assert planned[1].due_at == closes - timedelta(minutes=120)


def test_flash_sale_order_is_reminded_after_15_minutes_and_only_once() -> None:
    planned = on_event("order.created", order(source="flash_sale"), buyer(), T0, table())
    # It closes after 30 minutes: a pre-close reminder would fall before the first one.
    assert keys(planned) == ["payment_reminder"]
    assert planned[0].due_at == T0 + timedelta(minutes=15)


def test_second_reminder_when_enabled_comes_24_hours_later() -> None:
    t = table(payment_reminder_second={"enabled": True})
    planned = on_event("order.created", order(), buyer(), T0, t)
    assert keys(planned) == ["payment_reminder", "payment_reminder_second", "payment_reminder_preclose"]
    assert planned[1].due_at == T0 + timedelta(hours=24)


def test_second_reminder_is_not_planned_after_the_order_closes() -> None:
    t = table(payment_reminder_second={"enabled": True})
    planned = on_event("order.created", order(closes_at=T0 + timedelta(hours=20)), buyer(), T0, t)
    assert "payment_reminder_second" not in keys(planned)


@pytest.mark.parametrize(
    ("amount_cents", "channel"),
    [(99_999, "webhook"), (100_000, "agent_task"), (500_000, "agent_task"), (None, "webhook")],
)
def test_high_value_order_becomes_a_phone_call(amount_cents: int | None, channel: str) -> None:
    planned = on_event("order.created", order(amount_cents=amount_cents), buyer(), T0, table())
    assert {p.channel for p in planned} == {channel}
    assert (planned[0].segments[0] == "high_amount") is (channel == "agent_task")


@pytest.mark.parametrize(
    ("purchases", "segment"), [(0, "new"), (1, "returning"), (2, "repeat"), (7, "repeat")]
)
def test_payment_wording_counts_the_order_being_reminded(purchases: int, segment: str) -> None:
    planned = on_event("order.created", order(), buyer(purchases), T0, table())
    assert planned[0].segments == (segment,)


def test_disabled_payment_reminder_plans_nothing_but_preclose() -> None:
    planned = on_event("order.created", order(), buyer(), T0, table(payment_reminder={"enabled": False}))
    assert keys(planned) == ["payment_reminder_preclose"]


def test_order_already_paid_gets_no_reminder() -> None:
    paid = order(status="paid", paid_at=T0 + timedelta(minutes=3))
    assert on_event("order.created", paid, buyer(), T0 + timedelta(minutes=5), table()) == []


def test_late_event_goes_now_and_a_stale_one_is_dropped() -> None:
    later = T0 + timedelta(hours=1)
    planned = on_event("order.created", order(), buyer(), later, table())
    assert planned[0].due_at == later  # due 35 minutes ago: goes now
    much_later = T0 + timedelta(hours=13)
    assert keys(on_event("order.created", order(), buyer(), much_later, table())) == [
        "payment_reminder_preclose"
    ]


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        on_event("order.created", order(), buyer(), datetime(2026, 3, 10, 10, 0), table())


# Once a day per customer


def reminder(
    order_no: str, due: datetime, customer_id: str = "C1", rule: str = "payment_reminder"
) -> PlannedCare:
    return PlannedCare(
        rule, customer_id, order_no, due, "webhook", ("new",), True, False, f"{rule}:{order_no}"
    )


def test_two_orders_the_same_day_get_one_reminder() -> None:
    a = reminder("A", T0 + timedelta(minutes=25))
    b = reminder("B", T0 + timedelta(hours=3))
    assert one_reminder_a_day([b, a], {}, SHANGHAI) == [a]


def test_a_reminder_already_booked_today_wins() -> None:
    new = reminder("B", T0 + timedelta(hours=3))
    assert one_reminder_a_day([new], {"C1": [T0 + timedelta(hours=5)]}, SHANGHAI) == []
    assert one_reminder_a_day([new], {"C2": [T0]}, SHANGHAI) == [new]


def test_the_day_is_the_teams_calendar_day() -> None:
    # 23:50 and 00:10 Shanghai time are different days, though 20 minutes apart.
    late = reminder("A", datetime(2026, 3, 10, 15, 50, tzinfo=UTC))
    early = reminder("B", datetime(2026, 3, 10, 16, 10, tzinfo=UTC))
    assert one_reminder_a_day([late, early], {}, SHANGHAI) == [late, early]
    assert one_reminder_a_day([late, early], {}, ZoneInfo("UTC")) == [late]


def test_other_customers_and_other_rules_pass() -> None:
    mine = reminder("A", T0)
    theirs = reminder("B", T0, customer_id="C2")
    shipped = reminder("C", T0, rule="shipped")
    second = reminder("D", T0 + timedelta(hours=1), rule="payment_reminder_preclose")
    assert one_reminder_a_day([mine, theirs, shipped, second], {}, SHANGHAI) == [mine, theirs, shipped]


# Order events after payment


def test_shipping_delayed_24_hours_after_payment() -> None:
    paid = order(status="paid", paid_at=T0)
    planned = on_event("order.paid", paid, buyer(1), T0, table())
    assert keys(planned) == ["shipping_delayed"]
    assert planned[0].due_at == T0 + timedelta(hours=24)
    assert not planned[0].marketing


def test_shipped_message_carries_carrier_and_tracking() -> None:
    shipped = order(
        status="shipped", paid_at=T0, shipped_at=T0, carrier="中通", tracking_no="7531", province="浙江"
    )
    planned = on_event("order.shipped", shipped, buyer(1), T0, table())
    assert keys(planned) == ["shipped"]
    assert planned[0].due_at == T0
    assert planned[0].segments == ("new",)
    assert planned[0].values == {
        "order_no": "O1",
        "amount": "128.00",
        "carrier": "中通",
        "tracking_no": "7531",
        "province": "浙江",
    }


def test_shipped_segments_most_specific_first() -> None:
    big_remote = order(status="shipped", shipped_at=T0, amount_cents=200_000, province="新疆维吾尔自治区")
    planned = on_event("order.shipped", big_remote, buyer(2), T0, table())
    assert planned[0].segments == ("high_amount", "remote", "returning")
    assert planned[0].channel == "webhook"  # only payment reminders turn into calls


def test_customer_province_counts_when_the_order_has_none() -> None:
    shipped = order(status="shipped", shipped_at=T0)
    planned = on_event("order.shipped", shipped, buyer(3, province="西藏"), T0, table())
    assert planned[0].segments == ("remote", "repeat")


def test_signed_invites_a_review_a_day_later() -> None:
    signed = order(status="signed", signed_at=T0)
    planned = on_event("order.signed", signed, buyer(1), T0, table())
    assert [(p.rule, p.due_at) for p in planned] == [("signed", T0 + timedelta(hours=24))]


def test_arrived_and_refunded_go_at_once() -> None:
    arrived = on_event("order.arrived", order(status="shipped", shipped_at=T0), buyer(1), T0, table())
    refunded = on_event("order.refunded", order(status="refunded"), buyer(1), T0, table())
    assert [(p.rule, p.due_at) for p in arrived + refunded] == [("arrived", T0), ("refunded", T0)]


def test_closed_unpaid_gets_care_and_closed_after_payment_does_not() -> None:
    unpaid = on_event("order.closed", order(status="closed"), buyer(), T0, table())
    assert [(p.rule, p.due_at) for p in unpaid] == [("order_closed", T0 + timedelta(minutes=60))]
    paid_then_closed = order(status="closed", paid_at=T0 - timedelta(days=1))
    assert on_event("order.closed", paid_then_closed, buyer(), T0, table()) == []


def test_events_without_care_plan_nothing() -> None:
    for event in ("customer.upserted", "product.restocked", "order.unknown"):
        assert on_event(event, order(), buyer(), T0, table()) == []


def test_disabled_rule_plans_nothing() -> None:
    shipped = order(status="shipped", shipped_at=T0)
    assert on_event("order.shipped", shipped, buyer(1), T0, table(shipped={"enabled": False})) == []


# Bad reviews


@pytest.mark.parametrize(("rating", "alerted"), [(1, True), (3, True), (4, False), (5, False)])
def test_rating_three_or_less_alerts_at_once(rating: int, alerted: bool) -> None:
    planned = on_event("review.posted", order(status="signed"), buyer(1), T0, table(), rating=rating)
    assert bool(planned) is alerted
    if alerted:
        (alert,) = planned
        assert (alert.rule, alert.immediate, alert.due_at, alert.channel) == (
            "bad_review_alert",
            True,
            T0,
            "agent_task",
        )
        assert alert.values["rating"] == str(rating)


def test_max_rating_is_configurable_and_a_review_needs_its_rating() -> None:
    t = table(bad_review_alert={"max_rating": 2})
    assert on_event("review.posted", order(), buyer(1), T0, t, rating=3) == []
    with pytest.raises(ValueError, match="rating"):
        on_event("review.posted", order(), buyer(1), T0, t)


# Re-checks


@pytest.mark.parametrize(
    ("rule", "facts", "applies"),
    [
        ("payment_reminder", {}, True),
        ("payment_reminder", {"status": "paid", "paid_at": T0}, False),
        ("payment_reminder_second", {"status": "closed"}, False),
        ("payment_reminder_preclose", {"paid_at": T0}, False),  # paid, the status event not in yet
        ("shipping_delayed", {"status": "paid", "paid_at": T0}, True),
        ("shipping_delayed", {"status": "shipped", "paid_at": T0, "shipped_at": T0}, False),
        ("shipping_delayed", {"status": "refunded", "paid_at": T0}, False),
        ("shipped", {"status": "shipped"}, True),
        ("shipped", {"status": "signed"}, False),
        ("arrived", {"status": "refunded"}, False),
        ("signed", {"status": "signed"}, True),
        ("order_closed", {"status": "closed"}, True),
        ("order_closed", {"status": "closed", "paid_at": T0}, False),
        ("refunded", {"status": "refunded"}, True),
        ("logistics_abnormal", {"status": "shipped"}, True),
        ("logistics_abnormal", {"status": "signed", "signed_at": T0}, False),
        ("bad_review_alert", {"status": "refunded"}, True),
    ],
)
def test_still_applies(rule: str, facts: dict[str, Any], applies: bool) -> None:
    assert still_applies(rule, order(**facts)) is applies


def test_still_applies_past_the_close_time() -> None:
    unpaid = order(closes_at=T0 + timedelta(minutes=30))
    assert still_applies("payment_reminder", unpaid, now=T0 + timedelta(minutes=29))
    assert not still_applies("payment_reminder", unpaid, now=T0 + timedelta(minutes=30))


def test_customer_rules_always_apply_and_unknown_rules_raise() -> None:
    assert still_applies("birthday", None)
    assert still_applies("payment_reminder", None)
    with pytest.raises(KeyError):
        still_applies("gift", order())


# The daily job


def test_birthday_on_the_teams_day_for_customers_who_bought() -> None:
    now = datetime(2026, 3, 9, 17, 0, tzinfo=UTC)  # already 10 March in Shanghai
    customers = [
        buyer(1, birthday=date(1990, 3, 10)),
        CustomerFacts("C2", purchases=0, birthday=date(1990, 3, 10)),  # never bought
        CustomerFacts("C3", purchases=1, birthday=date(1990, 3, 11)),
        CustomerFacts("C4", purchases=1),
    ]
    planned = daily(now, table(), SHANGHAI, customers=customers)
    assert [(p.rule, p.customer_id, p.order_no, p.due_at) for p in planned] == [("birthday", "C1", None, now)]
    assert planned[0].key == "birthday:C1:2026-03-10"


@pytest.mark.parametrize(
    ("today", "greeted"), [(date(2027, 2, 28), True), (date(2028, 2, 28), False), (date(2028, 2, 29), True)]
)
def test_leap_day_birthday(today: date, greeted: bool) -> None:
    now = datetime.combine(today, datetime.min.time(), tzinfo=UTC) + timedelta(hours=4)
    planned = daily(now, table(), SHANGHAI, customers=[buyer(1, birthday=date(2000, 2, 29))])
    assert bool(planned) is greeted


@pytest.mark.parametrize(("days_ago", "planned"), [(6, False), (7, True), (8, False)])
def test_after_purchase_seven_days_later(days_ago: int, planned: bool) -> None:
    customer = buyer(2, last_purchase_at=T0 - timedelta(days=days_ago))
    found = daily(T0, table(), SHANGHAI, customers=[customer])
    assert bool(found) is planned
    if planned:
        assert found[0].rule == "after_purchase" and found[0].values == {"days": "7"}
        assert found[0].segments == ("returning",)


def test_replenishment_day_is_cycle_times_quantity_less_a_week() -> None:
    purchase = PurchaseFacts("C1", "O1", "猫粮 2kg", 2, T0, cycle_days=30)
    assert replenishment_day(purchase, table(), SHANGHAI) == date(2026, 3, 10) + timedelta(days=53)


def test_replenishment_cycle_from_the_table() -> None:
    t = table(replenishment={"cycle_days": {"奶粉": 20}})
    assert replenishment_day(PurchaseFacts("C1", "O1", "奶粉", 1, T0), t, SHANGHAI) == date(2026, 3, 23)
    assert replenishment_day(PurchaseFacts("C1", "O1", "袜子", 1, T0), t, SHANGHAI) is None


def test_replenishment_that_would_not_come_after_the_purchase_is_none() -> None:
    short = PurchaseFacts("C1", "O1", "湿巾", 1, T0, cycle_days=7)
    assert replenishment_day(short, table(), SHANGHAI) is None


@pytest.mark.parametrize(("days_after", "planned"), [(52, False), (53, True), (59, True), (60, False)])
def test_replenishment_runs_from_its_day_until_it_runs_out(days_after: int, planned: bool) -> None:
    purchase = PurchaseFacts("C1", "O1", "猫粮 2kg", 2, T0, cycle_days=30)
    found = daily(T0 + timedelta(days=days_after), table(), SHANGHAI, purchases=[purchase])
    assert bool(found) is planned
    if planned:
        assert (found[0].rule, found[0].values, found[0].key) == (
            "replenishment",
            {"product": "猫粮 2kg"},
            "replenishment:C1:猫粮 2kg:O1",
        )


def test_a_later_purchase_of_the_same_product_restarts_the_clock() -> None:
    first = PurchaseFacts("C1", "O1", "猫粮 2kg", 1, T0, cycle_days=30)
    again = PurchaseFacts("C1", "O2", "猫粮 2kg", 1, T0 + timedelta(days=20), cycle_days=30)
    assert daily(T0 + timedelta(days=23), table(), SHANGHAI, purchases=[first, again]) == []
    found = daily(T0 + timedelta(days=43), table(), SHANGHAI, purchases=[again, first])
    assert [p.order_no for p in found] == ["O2"]


def parcel(**fields: Any) -> OrderFacts:
    return order(status="shipped", paid_at=T0, shipped_at=T0, carrier="中通", tracking_no="7531", **fields)


@pytest.mark.parametrize(
    ("province", "days", "flagged"),
    [("上海", 4, False), ("上海", 5, True), ("新疆", 6, False), ("新疆", 7, True), ("西藏", 7, False)],
)
def test_logistics_abnormal_after_the_normal_days(province: str, days: int, flagged: bool) -> None:
    now = T0 + timedelta(days=days, minutes=1) if flagged else T0 + timedelta(days=days)
    found = daily(now, table(), SHANGHAI, orders=[parcel(province=province)])
    assert bool(found) is flagged
    if flagged:
        assert found[0].rule == "logistics_abnormal"
        assert found[0].key == "logistics_abnormal:O1"  # flagged once, however many days it stays late
        assert found[0].values["tracking_no"] == "7531"


def test_logistics_abnormal_when_tracking_goes_silent() -> None:
    now = T0 + timedelta(days=3, hours=1)
    quiet = parcel(province="新疆", last_tracking_at=T0 - timedelta(hours=1))
    busy = parcel(province="新疆", last_tracking_at=T0 + timedelta(days=2), order_no="O2")
    assert [p.order_no for p in daily(now, table(), SHANGHAI, orders=[quiet, busy])] == ["O1"]


def test_logistics_abnormal_skips_signed_and_unshipped_orders_and_uses_remote_wording() -> None:
    now = T0 + timedelta(days=30)
    orders = [
        parcel(province="新疆", order_no="late"),
        order(status="signed", shipped_at=T0, signed_at=T0 + timedelta(days=2), order_no="signed"),
        order(status="paid", paid_at=T0, order_no="unshipped"),
    ]
    found = daily(now, table(), SHANGHAI, orders=orders, customers=[buyer(3)])
    assert [(p.order_no, p.segments) for p in found] == [("late", ("remote", "repeat"))]
    assert found[0].values["days"] == "6"


def test_disabled_daily_rules_plan_nothing() -> None:
    t = table(
        birthday={"enabled": False},
        after_purchase={"enabled": False},
        replenishment={"enabled": False},
        logistics_abnormal={"enabled": False},
    )
    found = daily(
        T0 + timedelta(days=53),
        t,
        SHANGHAI,
        customers=[buyer(1, birthday=date(1990, 5, 2), last_purchase_at=T0 + timedelta(days=46))],
        orders=[parcel()],
        purchases=[PurchaseFacts("C1", "O1", "猫粮", 2, T0, cycle_days=30)],
    )
    assert found == []


def test_replenishment_with_no_lead_is_planned_on_its_day_only() -> None:
    t = table(replenishment={"lead_days": 0})
    purchase = PurchaseFacts("C1", "O1", "猫粮 2kg", 1, T0, cycle_days=30)
    assert [bool(daily(T0 + timedelta(days=d), t, SHANGHAI, purchases=[purchase])) for d in (29, 30, 31)] == [
        False,
        True,
        False,
    ]
