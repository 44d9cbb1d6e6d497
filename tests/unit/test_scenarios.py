"""The scenario-response table: the shipped YAML, validation errors that name the row, overrides."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from crm.scenarios import (
    BUILT_IN_KEYS,
    Scenario,
    ScenarioError,
    ScenarioTable,
    Trigger,
    parse_minutes,
    parse_table,
)

ROOT = Path(__file__).resolve().parents[2]
GIFT = {
    "follow_up": 60,
    "title": {"zh_CN": "选礼物咨询", "en": "Gift advice"},
    "reply": {"zh_CN": "亲，送礼的话推荐…", "en": "For a gift we suggest…"},
}


def shipped() -> ScenarioTable:
    with (ROOT / "config" / "scenarios.yaml").open(encoding="utf-8") as f:
        return parse_table(yaml.safe_load(f))


def table_of(**rows: Any) -> ScenarioTable:
    return parse_table({"scenarios": rows})


def error_of(**rows: Any) -> str:
    with pytest.raises(ScenarioError) as info:
        table_of(**rows)
    return str(info.value)


# The shipped table


def test_shipped_table_has_the_seven_built_in_rows_in_order() -> None:
    table = shipped()
    assert table.keys == BUILT_IN_KEYS
    assert len(table.keys) == 7


@pytest.mark.parametrize(
    ("key", "trigger", "minutes"),
    [
        ("no_reply", Trigger.TIMER, 5),
        ("price_objection", Trigger.NONE, None),
        ("promo_no_order", Trigger.TIMER, 15),
        ("unpaid", Trigger.TIMER, 15),
        ("out_of_stock", Trigger.RESTOCK, None),
        ("product_doubt", Trigger.NONE, None),
        ("hesitating", Trigger.TIMER, 30),
    ],
)
def test_shipped_rows_have_their_follow_up(key: str, trigger: str, minutes: int | None) -> None:
    row = shipped().get(key)
    assert row is not None
    assert (row.trigger, row.minutes) == (trigger, minutes)
    assert row.has_timer is (trigger != Trigger.NONE)


def test_shipped_built_in_rows_bring_no_texts_of_their_own() -> None:
    for key in BUILT_IN_KEYS:
        row = shipped().get(key)
        assert row is not None
        assert (row.titles, row.replies) == ({}, {})


def test_shipped_unpaid_is_resolved_by_payment_and_closing() -> None:
    row = shipped().get("unpaid")
    assert row is not None
    assert "order.paid" in row.resolved_by
    assert row.resolved_by == frozenset({"order.paid", "order.closed"})


def test_shipped_new_order_resolves_hesitating_and_promo_no_order() -> None:
    table = shipped()
    assert set(table.resolved_by("order.created")) == {"hesitating", "promo_no_order"}
    assert table.resolved_by("order.paid") == ("unpaid",)
    assert table.resolved_by("order.closed") == ("unpaid",)


def test_shipped_rows_without_resolving_events_resolve_nothing() -> None:
    table = shipped()
    for key in ("no_reply", "price_objection", "out_of_stock", "product_doubt"):
        row = table.get(key)
        assert row is not None
        assert row.resolved_by == frozenset()
    assert table.resolved_by("order.refunded") == ()
    assert table.resolved_by("product.restocked") == ()
    assert table.resolved_by("order.shipped") == ()


def test_resolved_by_keeps_table_order() -> None:
    table = table_of(
        hesitating={"follow_up": 30, "resolved_by": ["order.created"]},
        no_reply={"follow_up": 5},
        promo_no_order={"follow_up": 15, "resolved_by": ["order.created"]},
    )
    assert table.resolved_by("order.created") == ("hesitating", "promo_no_order")


def test_get_of_an_unknown_key_is_none() -> None:
    assert shipped().get("gift_advice") is None


# Rows that parse


def test_follow_up_bounds_are_accepted() -> None:
    table = table_of(no_reply={"follow_up": 1}, hesitating={"follow_up": 1440})
    assert table.get("no_reply") == Scenario("no_reply", Trigger.TIMER, 1)
    assert table.get("hesitating") == Scenario("hesitating", Trigger.TIMER, 1440)


def test_missing_or_null_follow_up_means_none() -> None:
    table = table_of(no_reply={}, hesitating={"follow_up": None})
    for key in ("no_reply", "hesitating"):
        row = table.get(key)
        assert row is not None
        assert (row.trigger, row.minutes, row.has_timer) == (Trigger.NONE, None, False)


def test_custom_key_with_title_and_reply_is_accepted_with_stripped_texts() -> None:
    table = table_of(gift_advice={**GIFT, "reply": {"zh_CN": "  亲，送礼的话推荐…  ", "en": "For a gift…\n"}})
    row = table.get("gift_advice")
    assert row is not None
    assert (row.trigger, row.minutes) == (Trigger.TIMER, 60)
    assert row.titles == {"zh_CN": "选礼物咨询", "en": "Gift advice"}
    assert row.replies == {"zh_CN": "亲，送礼的话推荐…", "en": "For a gift…"}


def test_custom_row_parsed_from_yaml_text() -> None:
    text = """
scenarios:
  gift_advice:
    follow_up: restock
    resolved_by: [product.restocked]
    title: {zh_CN: 选礼物咨询, en: Gift advice}
    reply: {zh_CN: 亲，送礼的话推荐…, en: For a gift we suggest…}
"""
    row = parse_table(yaml.safe_load(text)).get("gift_advice")
    assert row is not None
    assert row.trigger == Trigger.RESTOCK
    assert row.resolved_by == frozenset({"product.restocked"})
    assert row.replies["en"] == "For a gift we suggest…"


def test_built_in_key_may_bring_its_own_texts() -> None:
    row = table_of(unpaid={"follow_up": 15, "reply": {"en": "Still want it?"}}).get("unpaid")
    assert row is not None
    assert row.replies == {"en": "Still want it?"}


# Errors name the row and the field


@pytest.mark.parametrize("data", [None, [], {}, {"scenarios": {}}, {"scenarios": []}, {"other": {}}])
def test_table_without_rows_is_rejected(data: Any) -> None:
    with pytest.raises(ScenarioError, match="scenarios"):
        parse_table(data)


@pytest.mark.parametrize("key", ["No_Reply", "gift-advice", "gift advice", "", "a" * 25, "礼物"])
def test_bad_key_is_named(key: str) -> None:
    message = error_of(**{key: GIFT})
    assert repr(key) in message
    assert "lowercase" in message


def test_key_of_24_characters_is_accepted() -> None:
    assert table_of(**{"a" * 24: GIFT}).keys == ("a" * 24,)


def test_key_with_a_trailing_newline_is_rejected() -> None:
    with pytest.raises(ScenarioError):
        table_of(**{"gift_advice\n": GIFT})


def test_row_that_is_not_a_mapping_is_named() -> None:
    assert error_of(no_reply=5).startswith("no_reply:")
    assert error_of(no_reply=None).startswith("no_reply:")


def test_unknown_field_is_named() -> None:
    message = error_of(no_reply={"follow_up": 5, "delay": 3, "colour": "red"})
    assert message == "no_reply: unknown field(s) colour, delay"


@pytest.mark.parametrize("follow_up", [0, 1441, -5, True, False, "abc", "15", 15.0, [15]])
def test_bad_follow_up_is_named(follow_up: Any) -> None:
    message = error_of(unpaid={"follow_up": follow_up})
    assert message.startswith("unpaid.follow_up:")


def test_out_of_range_minutes_say_the_range() -> None:
    assert "between 1 and 1440" in error_of(unpaid={"follow_up": 0})
    assert "between 1 and 1440" in error_of(unpaid={"follow_up": 1441})


def test_true_is_not_one_minute() -> None:
    assert error_of(unpaid={"follow_up": True}) == "unpaid.follow_up: minutes, 'restock' or 'none'"


@pytest.mark.parametrize(
    "resolved_by", [["order.payed"], ["order.paid", "order.shipped"], "order.paid", {"order.paid": 1}]
)
def test_unknown_resolved_by_event_is_named(resolved_by: Any) -> None:
    message = error_of(unpaid={"follow_up": 15, "resolved_by": resolved_by})
    assert message.startswith("unpaid.resolved_by:")
    assert "order.paid" in message  # the message lists what is allowed


def test_resolved_by_with_a_mapping_item_is_named() -> None:
    message = error_of(unpaid={"follow_up": 15, "resolved_by": [{"order.paid": 1}]})
    assert message.startswith("unpaid.resolved_by:")


@pytest.mark.parametrize(
    "spec",
    [
        {"follow_up": 60},
        {"follow_up": 60, "title": GIFT["title"]},
        {"follow_up": 60, "reply": GIFT["reply"]},
        {"follow_up": 60, "title": {}, "reply": {}},
    ],
)
def test_custom_key_without_title_and_reply_is_named(spec: dict[str, Any]) -> None:
    message = error_of(gift_advice=spec)
    assert message.startswith("gift_advice:")
    assert "title and a reply" in message


@pytest.mark.parametrize("texts", ["Gift advice", ["Gift advice"], {"en": ""}, {"en": "   "}, {"en": 5}])
def test_malformed_texts_are_named(texts: Any) -> None:
    assert error_of(gift_advice={**GIFT, "title": texts}).startswith("gift_advice.title:")
    assert error_of(gift_advice={**GIFT, "reply": texts}).startswith("gift_advice.reply:")


def test_first_bad_row_fails_the_whole_table() -> None:
    message = error_of(no_reply={"follow_up": 5}, unpaid={"follow_up": 0})
    assert message.startswith("unpaid.")


# Overrides


def test_with_override_sets_minutes_and_leaves_the_original_alone() -> None:
    table = shipped()
    changed = table.with_override("no_reply", minutes=20)
    row = changed.get("no_reply")
    assert row is not None
    assert (row.trigger, row.minutes) == (Trigger.TIMER, 20)
    original = table.get("no_reply")
    assert original is not None and original.minutes == 5
    assert changed.keys == table.keys
    assert changed.get("unpaid") == table.get("unpaid")


def test_with_override_minutes_turn_a_reply_only_row_into_a_timer() -> None:
    row = shipped().with_override("price_objection", minutes=45).get("price_objection")
    assert row is not None
    assert (row.trigger, row.minutes, row.has_timer) == (Trigger.TIMER, 45, True)


def test_with_override_keeps_resolving_events() -> None:
    row = shipped().with_override("unpaid", minutes=60).get("unpaid")
    assert row is not None
    assert row.resolved_by == frozenset({"order.paid", "order.closed"})


@pytest.mark.parametrize("minutes", [0, 1441, -1])
def test_with_override_rejects_out_of_range_minutes(minutes: int) -> None:
    with pytest.raises(ScenarioError, match="between 1 and 1440"):
        shipped().with_override("no_reply", minutes=minutes)


def test_with_override_reply_per_locale_and_for_every_locale() -> None:
    table = shipped().with_override("hesitating", reply="Ends tonight!", locale="en")
    table = table.with_override("hesitating", reply="今晚截止！", locale="zh_CN")
    table = table.with_override("hesitating", reply="Any locale")
    row = table.get("hesitating")
    assert row is not None
    assert row.replies == {"en": "Ends tonight!", "zh_CN": "今晚截止！", "*": "Any locale"}
    assert (row.trigger, row.minutes) == (Trigger.TIMER, 30)  # a reply alone keeps the timer


def test_with_override_reply_replaces_the_same_locale() -> None:
    table = table_of(gift_advice=GIFT).with_override("gift_advice", reply="New", locale="en")
    row = table.get("gift_advice")
    assert row is not None
    assert row.replies == {"zh_CN": "亲，送礼的话推荐…", "en": "New"}
    assert row.titles == GIFT["title"]


def test_with_override_of_both_at_once() -> None:
    row = shipped().with_override("no_reply", minutes=10, reply="Hello?", locale="en").get("no_reply")
    assert row is not None
    assert (row.minutes, row.replies) == (10, {"en": "Hello?"})


def test_with_override_of_nothing_changes_nothing() -> None:
    table = shipped()
    assert table.with_override("unpaid") == table


def test_with_override_of_an_unknown_key_raises() -> None:
    with pytest.raises(KeyError):
        shipped().with_override("gift_advice", minutes=5)


# Minutes typed by an agent


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("15", 15),
        ("15m", 15),
        ("15 min", 15),
        ("15MIN", 15),
        ("2h", 120),
        ("2H", 120),
        ("24h", 1440),
        (" 7 ", 7),
        ("1", 1),
        ("1440", 1440),
        ("0015", 15),
    ],
)
def test_parse_minutes_accepts(text: str, minutes: int) -> None:
    assert parse_minutes(text) == minutes


@pytest.mark.parametrize("text", ["0", "0h", "1441", "25h", "100000", "999999"])
def test_parse_minutes_rejects_out_of_range(text: str) -> None:
    with pytest.raises(ScenarioError, match="between 1 and 1440"):
        parse_minutes(text)


@pytest.mark.parametrize("text", ["-5", "abc", "", "1.5h", "15s", "h", "1234567", "15 m m"])
def test_parse_minutes_rejects_what_is_not_a_number(text: str) -> None:
    with pytest.raises(ScenarioError, match="not a number"):
        parse_minutes(text)
