"""Care message templates: the shipped YAML, validation naming the template, selection, rendering."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from crm.care_rules import RULE_KEYS
from crm.sending import sms_segments
from crm.templates import (
    PLACEHOLDERS,
    Template,
    TemplateBook,
    TemplateError,
    format_amount,
    missing,
    parse_templates,
    placeholders,
    render,
)

ROOT = Path(__file__).resolve().parents[2]
VALUES = {
    "nickname": "小鱼儿",
    "order_no": "4012345678901234",
    "carrier": "中通快递",
    "tracking_no": "75312345678901",
    "shop_name": "暖暖小铺",
    "amount": "128.00",
    "product": "猫粮 2kg",
    "days": "7",
    "province": "新疆",
    "rating": "2",
}
TWO = {"zh_CN": "{nickname}您好", "en": "Hi {nickname}"}


def shipped_data() -> dict[str, Any]:
    with (ROOT / "config" / "templates.yaml").open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def shipped() -> TemplateBook:
    return parse_templates(shipped_data())


def book_of(**rules: Any) -> TemplateBook:
    return parse_templates({"templates": rules}, rules=tuple(rules))


def error_of(**rules: Any) -> str:
    with pytest.raises(TemplateError) as info:
        book_of(**rules)
    return str(info.value)


# The shipped file


def test_shipped_templates_cover_every_rule_in_both_locales() -> None:
    book = shipped()
    for rule in RULE_KEYS:
        for locale in ("zh_CN", "en"):
            assert book.select(rule, (), locale).segment == "default"


def test_shipped_segments() -> None:
    book = shipped()
    assert book.segments_of("payment_reminder") == ("default", "new", "returning", "repeat", "high_amount")
    assert set(book.segments_of("shipped")) == {
        "default",
        "new",
        "returning",
        "repeat",
        "remote",
        "high_amount",
    }


def test_shipped_chinese_texts_fit_one_sms_with_real_values() -> None:
    for template in shipped().templates.values():
        if template.locale == "zh_CN":
            assert sms_segments(render(template, VALUES)) == 1, template.name


def test_shipped_shipped_text_names_carrier_and_tracking_number() -> None:
    text = render(shipped().select("shipped", ("new",)), VALUES)
    assert "中通快递" in text and "75312345678901" in text and "小鱼儿" in text


def test_shipped_texts_leave_no_brace_behind() -> None:
    for template in shipped().templates.values():
        text = render(template, VALUES)
        assert "{" not in text and "}" not in text, template.name


# Selection


def test_most_specific_segment_first_then_default() -> None:
    book = shipped()
    assert book.select("shipped", ("high_amount", "remote", "new")).segment == "high_amount"
    assert book.select("shipped", ("remote", "new")).segment == "remote"
    assert book.select("logistics_abnormal", ("high_amount", "repeat")).segment == "default"
    assert book.select("payment_reminder", ("remote", "returning")).segment == "returning"


def test_locale_is_chosen_and_an_unknown_one_reads_chinese() -> None:
    book = shipped()
    assert book.select("signed", (), "en").locale == "en"
    assert book.select("signed", (), "fr").locale == "zh_CN"
    assert book.select("signed").locale == "zh_CN"


def test_select_of_a_rule_the_book_lacks_raises() -> None:
    with pytest.raises(KeyError):
        book_of(signed={"default": TWO}).select("shipped")


# Rendering


def test_render_fills_placeholders_and_ignores_extra_values() -> None:
    template = book_of(
        shipped={"default": {"zh_CN": "{nickname}：{carrier} {tracking_no}", "en": "x"}}
    ).select("shipped")
    assert render(template, {**VALUES, "unused": "?"}) == "小鱼儿：中通快递 75312345678901"


@pytest.mark.parametrize(
    ("locale", "expected"), [("zh_CN", "亲您好，本店为您发货"), ("en", "Hi there, our shop ships")]
)
def test_missing_nickname_and_shop_name_fall_back_to_friendly_words(locale: str, expected: str) -> None:
    book = book_of(
        shipped={
            "default": {
                "zh_CN": "{nickname}您好，{shop_name}为您发货",
                "en": "Hi {nickname}, {shop_name} ships",
            }
        }
    )
    assert render(book.select("shipped", (), locale), {"nickname": None, "shop_name": "  "}) == expected


def test_missing_values_render_empty_and_are_listed() -> None:
    template = shipped().select("shipped")
    values = {"nickname": "小鱼儿", "carrier": "中通快递"}
    text = render(template, values)
    assert "小鱼儿" in text and "运单号，" in text  # the gap, not a crash
    assert missing(template, values) == ("shop_name", "tracking_no")
    assert missing(template, VALUES) == ()


def test_values_with_braces_are_not_reinterpreted() -> None:
    template = book_of(signed={"default": TWO}).select("signed", (), "en")
    assert render(template, {"nickname": "{order_no}"}) == "Hi {order_no}"


def test_literal_braces_are_written_doubled() -> None:
    template = book_of(signed={"default": {"zh_CN": "{{笑}} {nickname}", "en": "x"}}).select("signed")
    assert template.fields == frozenset({"nickname"})
    assert render(template, {"nickname": "阿明"}) == "{笑} 阿明"


def test_non_string_values_are_shown_as_text() -> None:
    template = book_of(after_purchase={"default": {"zh_CN": "{days}天", "en": "x"}}).select("after_purchase")
    assert render(template, {"days": 7}) == "7天"


@pytest.mark.parametrize(
    ("cents", "text"), [(12_800, "128.00"), (5, "0.05"), (0, "0.00"), (100_001, "1000.01"), (None, None)]
)
def test_format_amount(cents: int | None, text: str | None) -> None:
    assert format_amount(cents) == text


# Errors name the template


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("Hi {nick}", "unknown placeholder {nick}"),
        ("Hi {}", "unknown placeholder {}"),
        ("Hi {0}", "unknown placeholder {0}"),
        ("Hi {nickname.upper}", "unknown placeholder {nickname.upper}"),
        ("Hi {nickname[0]}", "unknown placeholder {nickname[0]}"),
        ("Hi {nickname:>10}", "without a format"),
        ("Hi {nickname!r}", "without a format"),
        ("Hi {nickname", "malformed"),
        ("Hi nickname}", "malformed"),
    ],
)
def test_bad_placeholder_names_rule_segment_and_locale(text: str, needle: str) -> None:
    message = error_of(shipped={"default": TWO, "remote": {"zh_CN": "您好", "en": text}})
    assert message.startswith("shipped.remote.en: ")
    assert needle in message


def test_unknown_placeholder_message_lists_the_allowed_ones() -> None:
    assert "tracking_no" in error_of(shipped={"default": {"zh_CN": "{单号}", "en": "x"}})


def test_every_allowed_placeholder_is_accepted() -> None:
    text = " ".join("{" + name + "}" for name in sorted(PLACEHOLDERS))
    template = book_of(shipped={"default": {"zh_CN": text, "en": text}}).select("shipped")
    assert template.fields == PLACEHOLDERS


@pytest.mark.parametrize(
    ("spec", "starts"),
    [
        ({"default": {"zh_CN": "您好"}}, "shipped.default: missing the en text"),
        ({"default": {**TWO, "fr": "Salut"}}, "shipped.default.fr: unknown locale"),
        ({"default": {"zh_CN": "  ", "en": "x"}}, "shipped.default.zh_CN: expected a non-empty text"),
        ({"default": {"zh_CN": 5, "en": "x"}}, "shipped.default.zh_CN: expected a non-empty text"),
        ({"default": "您好"}, "shipped.default: expected texts per locale"),
        ({"new": TWO}, "shipped.default: missing"),
        ({"default": TWO, "vip": TWO}, "shipped.vip: unknown segment"),
        ("您好", "shipped: expected texts per segment"),
    ],
)
def test_malformed_templates_are_named(spec: Any, starts: str) -> None:
    assert error_of(shipped=spec).startswith(starts)


def test_unknown_and_missing_rules() -> None:
    with pytest.raises(TemplateError, match=r"^gift: not a care rule"):
        parse_templates({"templates": {"gift": {"default": TWO}}}, rules=("signed",))
    data = copy.deepcopy(shipped_data())
    del data["templates"]["birthday"]
    with pytest.raises(TemplateError, match=r"^birthday: no templates"):
        parse_templates(data)


@pytest.mark.parametrize("data", [None, [], {}, {"templates": []}])
def test_file_without_templates_is_rejected(data: Any) -> None:
    with pytest.raises(TemplateError, match="templates"):
        parse_templates(data)


def test_placeholders_of_an_agents_edited_text() -> None:
    assert placeholders("谢谢{nickname}") == frozenset({"nickname"})
    assert placeholders("没有占位符") == frozenset()
    with pytest.raises(TemplateError, match=r"^text: unknown placeholder"):
        placeholders("{笑}")


def test_template_name() -> None:
    assert Template("shipped", "remote", "en", "x", frozenset()).name == "shipped.remote.en"
