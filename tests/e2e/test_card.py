"""The customer card end to end: real bot process ↔ Bot API emulator ↔ real SQLite."""

from __future__ import annotations

import re

import pytest

from tests.e2e.chat import ChatUser, Emulator, buttons
from tests.e2e.conftest import LEAD, STRANGER, UNBOUND_GROUP

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    "query",
    ["13800138000", "+86 138-0013-8000", "小鱼儿", "王芳", "T1002", "C001"],
    ids=["phone", "phone-formatted", "nickname", "name", "order-no", "customer-id"],
)
def test_lookup_by_each_key_finds_the_card(agent: ChatUser, query: str) -> None:
    (card,) = agent.send(f"/card {query}")
    assert "小鱼儿" in card["text"] and "王芳" in card["text"]
    assert {"📦 Orders", "🏷 Tags", "📝 Note", "🔄 Refresh"} <= {b["text"] for b in buttons(card)}


def test_card_shows_running_figures_and_masks_the_phone_in_the_group(agent: ChatUser) -> None:
    (card,) = agent.send("/card C001")
    text = card["text"]
    # Paid and not refunded: 199.00 + 299.50 + 89.90; five orders placed in all.
    assert "Orders 5 · purchases 3 · spent ¥588.40 · AOV ¥196.13" in text
    assert "138****8000" in text and "13800138000" not in text
    assert "wangfang@example.com" not in text and "w***@example.com" in text
    assert "2026-10-20 ¥89.90" in text  # last purchase, in the team's time zone
    assert "Stage: active" in text
    assert "RFM" in text
    assert "婴儿奶粉×3" in text  # most bought product
    assert "T1004" in text and "awaiting payment" in text


def test_a_customer_in_another_time_zone_shows_their_clock(agent: ChatUser) -> None:
    (card,) = agent.send("/card C006")  # imported with zone Asia/Singapore
    assert re.search(r"🕐 \d\d:\d\d Asia/Singapore", card["text"]), card["text"]
    (home,) = agent.send("/card C001")  # no zone: the team's, so no second clock
    assert "🕐" not in home["text"]


def test_callback_data_fits_telegram_limit(agent: ChatUser) -> None:
    (card,) = agent.send("/card C001")
    assert all(len(b["callback_data"].encode()) <= 64 for b in buttons(card))


def test_ambiguous_query_offers_a_pick_list(agent: ChatUser) -> None:
    (pick,) = agent.send("/card 张伟")
    assert "2 customers match" in pick["text"]
    options = buttons(pick)
    assert len(options) == 2
    card = agent.click_and_wait_edit(pick, "小鱼干")
    assert "小鱼干" in card["text"] and "Orders" in card["text"]


def test_prefix_search_when_no_exact_match(agent: ChatUser) -> None:
    (pick,) = agent.send("/card 小鱼")
    assert {b["text"].split(" · ")[0] for b in buttons(pick)} == {"小鱼儿", "小鱼干"}


def test_no_match_and_empty_and_too_long_queries_explain_how_to_search(agent: ChatUser) -> None:
    (none,) = agent.send("/card nobody-like-this")
    assert "No customer matches “nobody-like-this”" in none["text"] and "Search by phone" in none["text"]
    (empty,) = agent.send("/card")
    assert "Whom should I look up?" in empty["text"]
    (long,) = agent.send("/card " + "x" * 10_000)
    assert "too long" in long["text"]


def test_sql_and_html_in_queries_and_data_are_inert(agent: ChatUser) -> None:
    (reply,) = agent.send("/card <b>x</b>'; DROP TABLE customer;--")
    assert "<b>x</b>'; DROP TABLE customer;--" in reply["text"]  # shown literally: exact match on nickname
    (card,) = agent.send("/card C002")
    assert "阿杰" in card["text"]  # the table is still there


def test_orders_button_pages_through_orders(agent: ChatUser) -> None:
    (card,) = agent.send("/card C001")
    page = agent.click_and_wait_edit(card, "Orders")
    assert "5 orders · page 1/1" in page["text"]
    for order_no in ("T1001", "T1002", "T1003", "T1004", "T1005"):
        assert order_no in page["text"]
    assert "顺丰 SF1001" in page["text"]
    back = agent.click_and_wait_edit(page, "Card")
    assert "Latest orders" in back["text"]


def test_press_is_answered_before_the_message_is_edited(agent: ChatUser, emulator: Emulator) -> None:
    (card,) = agent.send("/card C002")
    agent.click_and_wait_edit(card, "Orders")
    calls = [
        c["method"] for c in emulator.calls() if c["method"] in ("answerCallbackQuery", "editMessageText")
    ]
    assert calls[-2:] == ["answerCallbackQuery", "editMessageText"]


def test_tags_toggle_with_one_tap(agent: ChatUser) -> None:
    (card,) = agent.send("/card C002")
    with_tags = agent.click_and_wait_edit(card, "Tags")
    assert any(b["text"] == "decisive" for b in buttons(with_tags))
    tagged = agent.click_and_wait_edit(with_tags, "decisive")
    assert "Tags: decisive" in tagged["text"]
    assert any(b["text"] == "✅ decisive" for b in buttons(tagged))
    cleared = agent.click_and_wait_edit(tagged, "decisive")
    assert "Tags: —" in cleared["text"]


def test_note_is_the_agents_next_message(agent: ChatUser) -> None:
    (card,) = agent.send("/card C006")
    agent.click(card, "Note")
    (prompt,) = agent._wait_new(card["message_id"], 1)
    assert "reply with the note for Lily" in prompt["text"]
    sent = [c for c in agent.emulator.calls("sendMessage") if c["chat_id"] == agent.chat_id][-1]
    assert '"force_reply":true' in sent["params"]["reply_markup"].replace(
        " ", ""
    )  # so privacy mode lets it through
    (saved,) = agent.reply_to(prompt, "<i>prefers</i> calls after 18:00")
    assert "Note saved for Lily" in saved["text"]
    refreshed = agent.click_and_wait_edit(card, "Refresh")
    assert "<i>prefers</i> calls after 18:00" in refreshed["text"]


def test_cancel_stops_the_note_without_saving(agent: ChatUser) -> None:
    (card,) = agent.send("/card C004")
    agent.click(card, "Note")
    agent._wait_new(card["message_id"], 1)
    (cancelled,) = agent.send("/cancel")
    assert "nothing was saved" in cancelled["text"]
    (card_again,) = agent.send("/card C004")
    assert "📝" not in card_again["text"].split("Tags:")[1]


def test_stranger_is_refused_and_nothing_happens(emulator: Emulator, bot_process: dict[str, str]) -> None:
    outsider = ChatUser(emulator, UNBOUND_GROUP, STRANGER)
    (refusal,) = outsider.send("/card 13800138000")
    assert "not bound" in refusal["text"] and "小鱼儿" not in refusal["text"]
    assert outsider.send_silent("hello everyone") == []
    private = ChatUser(emulator, STRANGER["id"], STRANGER)
    (refusal,) = private.send("13800138000")
    assert "only for members" in refusal["text"]
    (bind,) = outsider.send("/bind")
    assert "Only a team lead" in bind["text"]


def test_private_chat_with_a_member_takes_a_bare_query_and_shows_full_contacts(agent: ChatUser) -> None:
    agent.send("/help")  # seen in the team group: a member
    private = ChatUser(agent.emulator, agent.user["id"], agent.user)
    (card,) = private.send("13912345678")
    assert "阿杰" in card["text"] and "13912345678" in card["text"]


def test_unknown_command_is_explained(agent: ChatUser) -> None:
    (reply,) = agent.send("/frobnicate")
    assert "/help" in reply["text"]


def test_chinese_agent_gets_chinese_and_lang_overrides(agent_zh: ChatUser) -> None:
    (card,) = agent_zh.send("/card C001")
    assert "最近订单" in card["text"] and "Latest orders" not in card["text"]
    (switched,) = agent_zh.send("/lang en")
    assert "English" in switched["text"]
    (card,) = agent_zh.send("/card C001")
    assert "Latest orders" in card["text"]
    (auto,) = agent_zh.send("/lang auto")
    assert "自动" in auto["text"]


def test_commands_are_registered_in_both_languages(emulator: Emulator, bot_process: dict[str, str]) -> None:
    commands = emulator.call("GET", "/control/commands")
    text = str(commands)
    assert "card" in text and "客户" in text and "customer card" in text


def test_429_from_telegram_is_waited_out_and_the_reply_still_arrives(
    agent: ChatUser, emulator: Emulator
) -> None:
    emulator.fault("sendMessage", "429", count=1, retry_after=1)
    (card,) = agent.send("/card C002")
    assert "阿杰" in card["text"]
    codes = [c.get("error_code") for c in emulator.calls("sendMessage")][-2:]
    assert codes == [429, None]


def test_a_visitor_of_the_group_cannot_press_card_buttons(agent: ChatUser, emulator: Emulator) -> None:
    (card,) = agent.send("/card C002")
    visitor = ChatUser(emulator, agent.chat_id, {"id": 9777, "first_name": "Visitor", "language_code": "en"})
    answer = visitor.click(card, "Tags")
    assert answer["show_alert"] and "Only members of this team" in answer["text"]
    assert agent.current(card)["edit_count"] == 0  # nothing changed
    # ... and pressing did not make the visitor a member with access to private look-ups.
    private = ChatUser(emulator, 9777, visitor.user)
    (refusal,) = private.send("13912345678")
    assert "only for members" in refusal["text"]


def test_unbinding_the_group_ends_private_access_too(team_group: int, emulator: Emulator) -> None:
    member = ChatUser(emulator, team_group, {"id": 9555, "first_name": "Temp", "language_code": "en"})
    member.send("/help")  # seen in this team group, and in no other
    private = ChatUser(emulator, member.user["id"], member.user)
    (card,) = private.send("C002")
    assert "阿杰" in card["text"]
    (unbound,) = ChatUser(emulator, team_group, LEAD).send("/unbind")
    assert "no longer served" in unbound["text"]
    (refusal,) = private.send("C002")
    assert "only for members" in refusal["text"]
