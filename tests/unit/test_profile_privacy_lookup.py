import pytest

from crm.lookup import QueryError, normalize_phone, parse_query
from crm.palette import PaletteError, parse_palette
from crm.privacy import mask_email, mask_phone
from crm.profile import Badge, badge_for, member_level, response_rate


@pytest.mark.parametrize(
    ("purchases", "badge"), [(0, Badge.PROSPECT), (1, Badge.NEW), (2, Badge.RETURNING), (7, Badge.REPEAT)]
)
def test_badges(purchases: int, badge: Badge) -> None:
    assert badge_for(purchases) is badge


def test_member_level_needs_both_purchases_and_spend() -> None:
    assert member_level(0, 0) is None
    assert member_level(1, 100) == "regular"
    assert member_level(2, 50_000) == "silver"
    assert member_level(9, 10_000) == "regular"  # many cheap purchases: not silver by spend
    assert member_level(12, 900_000) == "diamond"


def test_response_rate() -> None:
    assert response_rate(0, 0) is None
    assert response_rate(5, 2) == 0.4


def test_masking() -> None:
    assert mask_phone("13800138000") == "138****8000"
    assert mask_phone("12345") == "1**45"
    assert mask_phone(None) == ""
    assert mask_email("wangfang@example.com") == "w***@example.com"
    assert mask_email("") == ""


@pytest.mark.parametrize(
    ("raw", "phone"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("小鱼儿", None),
        ("T1002", None),
        ("(021) 6123 4567", "02161234567"),
    ],
)
def test_phone_normalisation(raw: str, phone: str | None) -> None:
    assert normalize_phone(raw) == phone


def test_query_rejects_empty_and_overlong_and_collapses_spaces() -> None:
    with pytest.raises(QueryError) as empty:
        parse_query("   ")
    assert empty.value.reason == "empty"
    with pytest.raises(QueryError) as long:
        parse_query("x" * 10_000)
    assert long.value.reason == "too_long"
    assert parse_query("  张  伟 ").text == "张 伟"


def test_palette_validation_names_the_problem() -> None:
    good = parse_palette({"groups": {"t": ["stingy"]}}, known_labels=frozenset({"stingy"}))
    assert good.keys == {"stingy"} and good.group_of("stingy") == "t"
    with pytest.raises(PaletteError, match="Bad-Key"):
        parse_palette({"groups": {"t": ["Bad-Key"]}})
    with pytest.raises(PaletteError, match="no label for silk"):
        parse_palette({"groups": {"t": ["silk"]}})
    with pytest.raises(PaletteError, match="twice"):
        parse_palette({"groups": {"a": ["x"], "b": ["x"]}, "labels": {"x": {"en": "X"}}})
