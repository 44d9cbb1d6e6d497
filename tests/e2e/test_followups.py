"""Follow-ups end to end: real bot process ↔ emulator ↔ real SQLite, with a clock the tests move."""

from __future__ import annotations

import itertools

import pytest

from tests.e2e.chat import ChatUser, Emulator, buttons
from tests.e2e.conftest import AGENT_ZH, LEAD, STRANGER
from tests.e2e.shop import advance, event, post_events, settle

pytestmark = pytest.mark.e2e
_orders = itertools.count(1)


def reminder_buttons(message: dict) -> set[str]:
    return {b["text"] for b in buttons(message)}


def start_from_card(agent: ChatUser, query: str, scenario: str) -> tuple[dict, dict]:
    """Open the card, tap Follow up, tap the scenario: returns (the card, the confirmation)."""
    (card,) = agent.send(f"/card {query}")
    menu = agent.click_and_wait_edit(card, "Follow up")
    answer, (confirmation,) = agent.click_expecting(menu, scenario)
    assert answer["text"].startswith("⏱ Reminder:"), answer
    return card, confirmation


def test_follow_up_from_the_card_reminds_the_agent_when_due(agent: ChatUser, bot_process: dict) -> None:
    card, confirmation = start_from_card(agent, "C002", "Ordered, not paid")
    assert "Wang will follow up with" in confirmation["text"] and "阿杰" in confirmation["text"]
    assert "Ordered, not paid" in confirmation["text"]
    refreshed = agent.current(card)
    assert "⏱ Follow-up: Ordered, not paid · Wang" in refreshed["text"]  # the card lists it
    assert "Follow up" in reminder_buttons(refreshed) or "⏱ Follow up" in reminder_buttons(refreshed)

    after = agent.last_id()
    advance(bot_process, 10)
    assert agent.quiet_for(after) == []  # 15 minutes are not up yet
    advance(bot_process, 6)
    (reminder,) = agent.wait_new(after)
    text = reminder["text"]
    assert "Wang, time to follow up" in text and "阿杰" in text
    assert "Ordered, not paid" in text and "Suggested reply" in text and "orders" in text
    mention = [e for e in reminder.get("entities", []) if e["type"] in ("text_mention", "text_link")]
    assert mention, reminder.get("entities")
    assert reminder_buttons(reminder) == {"✅ Done", "💤 5 min", "💤 15 min", "🙋 Reassign to me", "✖️ Cancel"}

    done = agent.click_and_wait_edit(reminder, "Done")
    assert "✅ Done by Wang" in done["text"] and not buttons(done)
    # Redrawn with its own heading: the re-post it stood for next never fired.
    assert "Wang, time to follow up" in done["text"] and "a reminder again" not in done["text"]
    (card_again,) = agent.send("/card C002")
    assert "⏱ Follow-up: Ordered, not paid" not in card_again["text"]


def test_snooze_reassign_and_cancel_each_edit_the_reminder(
    emulator: Emulator, agent: ChatUser, team_group: int, bot_process: dict
) -> None:
    (confirmation,) = agent.send("/follow C003 hesitating")
    assert "Hesitating" in confirmation["text"]
    after = agent.last_id()
    advance(bot_process, 31)
    (reminder,) = agent.wait_new(after)
    snoozed = agent.click_and_wait_edit(reminder, "5 min")
    assert "💤 Next reminder at" in snoozed["text"] and not buttons(snoozed)

    after = agent.last_id()
    advance(bot_process, 6)
    (again,) = agent.wait_new(after)
    assert "time to follow up" in again["text"]

    colleague = ChatUser(emulator, team_group, AGENT_ZH)
    taken = colleague.click_and_wait_edit(again, "🙋")
    assert "小李" in taken["text"] and buttons(taken)  # still open, now the colleague's
    lead = ChatUser(emulator, team_group, LEAD)
    cancelled = lead.click_and_wait_edit(taken, "✖️")  # shown in 小李's language since the last press
    assert "✖️ Cancelled by Lin Lead" in cancelled["text"] and not buttons(cancelled)


def test_the_second_of_two_presses_is_told_who_acted_first(
    emulator: Emulator, agent: ChatUser, team_group: int, bot_process: dict
) -> None:
    agent.send("/follow C001 no_reply")
    after = agent.last_id()
    advance(bot_process, 6)
    (reminder,) = agent.wait_new(after)
    # Both press on the reminder as it was posted: one Done, one Cancel.
    agent.click(reminder, "Done")
    late = ChatUser(emulator, team_group, AGENT_ZH).click(reminder, "Cancel")
    assert late["show_alert"] and "✅ Wang 于" in late["text"] and "完成" in late["text"], (
        late
    )  # 小李 reads zh


def test_unanswered_reminder_is_reposted_then_escalated_to_the_lead(
    agent: ChatUser, bot_process: dict
) -> None:
    agent.send("/follow C002 no_reply")
    after = agent.last_id()
    advance(bot_process, 6)
    (first,) = agent.wait_new(after)
    settle(bot_process)
    advance(bot_process, 11)  # the grace period (10 minutes) passes with no answer
    (repost,) = agent.wait_new(first["message_id"])
    assert "a reminder again" in repost["text"]
    settle(bot_process)
    advance(bot_process, 11)
    (escalation,) = agent.wait_new(repost["message_id"])
    assert "team lead" in escalation["text"] and "no answer since" in escalation["text"]
    assert str(LEAD["id"]) in str(escalation.get("entities"))
    advance(bot_process, 30)
    assert agent.quiet_for(escalation["message_id"]) == []  # escalated once, then it waits for a person


def test_a_paid_order_event_cancels_the_unpaid_follow_up_quietly(agent: ChatUser, bot_process: dict) -> None:
    order_no = f"E2E-{next(_orders)}"
    status, body = post_events(
        bot_process,
        event(f"{order_no}-c", "order.created", order_id=order_no, customer_id="C002", amount="88.00"),
    )
    assert status == 200 and body == {"accepted": 1, "duplicates": 0}, body
    (confirmation,) = agent.send(f"/follow {order_no} unpaid")
    assert order_no in confirmation["text"]
    edits = agent.current(confirmation)["edit_count"]
    after = agent.last_id()

    status, body = post_events(bot_process, event(f"{order_no}-p", "order.paid", order_id=order_no))
    assert status == 200 and body["accepted"] == 1
    edited = agent.wait_edit(confirmation, edits)
    assert "Closed automatically" in edited["text"] and "the order was paid" in edited["text"]
    assert not buttons(edited)
    advance(bot_process, 20)
    assert agent.quiet_for(after) == []  # told by an edit, and no reminder comes
    # The same event again is acknowledged and ignored.
    status, body = post_events(bot_process, event(f"{order_no}-p", "order.paid", order_id=order_no))
    assert status == 200 and body == {"accepted": 0, "duplicates": 1}


def test_a_new_order_cancels_hesitating_and_promotion_follow_ups(agent: ChatUser, bot_process: dict) -> None:
    (first,) = agent.send("/follow C003 hesitating")
    (second,) = agent.send("/follow C003 promo_no_order")
    counts = [agent.current(m)["edit_count"] for m in (first, second)]
    order_no = f"E2E-{next(_orders)}"
    status, _ = post_events(
        bot_process, event(order_no, "order.created", order_id=order_no, customer_id="C003", amount="10")
    )
    assert status == 200
    for message, count in zip((first, second), counts, strict=True):
        assert "the customer placed an order" in agent.wait_edit(message, count)["text"]


def test_event_api_refuses_bad_signatures_and_bad_events_writing_nothing(bot_process: dict) -> None:
    order_no = f"E2E-{next(_orders)}"
    good = event(order_no, "order.created", order_id=order_no, customer_id="C002", amount="5")
    assert post_events(bot_process, good, secret="wrong")[0] == 401
    assert post_events(bot_process, good, age=600)[0] == 401
    bad = event("bad-1", "order.created", order_id="X", customer_id="C002", amount="-3")
    status, body = post_events(bot_process, [good, bad])
    assert status == 422 and body["errors"][0]["index"] == 1 and "amount" in body["errors"][0]["error"]
    status, body = post_events(bot_process, event("x-9", "order.paid", order_id="NO-SUCH-ORDER"))
    assert status == 422 and "unknown" in body["errors"][0]["error"]
    # Nothing of the rejected batch landed: the good event is new when sent alone.
    assert post_events(bot_process, good) == (200, {"accepted": 1, "duplicates": 0})


def test_bad_follow_commands_get_clear_answers(agent: ChatUser) -> None:
    (unknown,) = agent.send("/follow C001 bogus")
    assert "Unknown scenario “bogus”" in unknown["text"] and "no_reply" in unknown["text"]
    for minutes in ("0", "100000", "-5", "abc5"):
        (reply,) = agent.send(f"/follow C001 no_reply {minutes}")
        assert "1 to 1440" in reply["text"] or "Unknown scenario" in reply["text"], (minutes, reply["text"])
    (nobody,) = agent.send("/follow nobody-at-all no_reply")
    assert "No customer matches" in nobody["text"]
    (usage,) = agent.send("/follow")
    assert "Usage: /follow" in usage["text"]
    (no_timer,) = agent.send("/follow C001 price_objection")
    assert "no follow-up" in no_timer["text"] and "coupons" in no_timer["text"]
    (timers,) = agent.send("/timers")
    assert "No open follow-ups" in timers["text"] or "Your open follow-ups" in timers["text"]


def test_strangers_and_stale_buttons_change_nothing(
    emulator: Emulator, agent: ChatUser, team_group: int, bot_process: dict
) -> None:
    (confirmation,) = agent.send("/follow C001 no_reply 1")
    after = agent.last_id()
    advance(bot_process, 2)
    (reminder,) = agent.wait_new(after)
    refused = ChatUser(emulator, team_group, STRANGER).click(reminder, "Done")
    assert refused["show_alert"] and "Only members" in refused["text"]
    assert buttons(agent.current(reminder))  # still open
    agent.click_and_wait_edit(reminder, "Done")
    again = agent.click(confirmation, "Cancel")  # the confirmation's button, after the reminder was done
    assert "Already closed" in again["text"] and "Done by Wang" in again["text"]


def test_timers_lists_mine_and_the_team_s_overdue_first(
    emulator: Emulator, agent: ChatUser, team_group: int, bot_process: dict
) -> None:
    agent.send("/follow C002 hesitating 120")
    agent.send("/follow C003 no_reply 1")
    colleague = ChatUser(emulator, team_group, AGENT_ZH)
    colleague.send("/follow C001 hesitating 60")
    after = agent.last_id()
    advance(bot_process, 2)
    agent.wait_new(after)  # the 1-minute one fired: it is now overdue
    (mine,) = agent.send("/timers")
    assert "Your open follow-ups: 2 (1 overdue)" in mine["text"]
    assert mine["text"].index("小鱼干") < mine["text"].index("阿杰")  # overdue first
    assert len(buttons(mine)) == 6  # Done · Snooze · Cancel for each
    (team,) = agent.send("/timers all")
    assert "The team's open follow-ups: 3" in team["text"]
    closed = agent.click_and_wait_edit(mine, "✅ 1.")
    assert "✅ Done by Wang" in closed["text"] and len(buttons(closed)) == 3


def test_scenario_table_is_listed_and_only_a_lead_changes_it(
    emulator: Emulator, agent: ChatUser, team_group: int
) -> None:
    (table,) = agent.send("/scenarios")
    for key in (
        "no_reply",
        "price_objection",
        "promo_no_order",
        "unpaid",
        "out_of_stock",
        "product_doubt",
        "hesitating",
    ):
        assert f"{key}" in table["text"]
    assert "15 min" in table["text"] and "when restocked" in table["text"]
    (refused,) = agent.send("/scenario set unpaid minutes 20")
    assert "Only a team lead" in refused["text"]
    lead = ChatUser(emulator, team_group, LEAD)
    (bad,) = lead.send("/scenario set unpaid minutes 5000")
    assert "1 to 1440" in bad["text"]
    (changed,) = lead.send("/scenario set product_doubt minutes 45")
    assert "45 min" in changed["text"]
    (reply,) = lead.send("/scenario set product_doubt reply 亲，这款是纯棉的，放心～")
    assert "纯棉" in reply["text"]
    (table,) = agent.send("/scenarios")
    assert "45 min" in table["text"] and "纯棉" in table["text"]
    (confirmation,) = agent.send("/follow C001 product_doubt")  # now has a timer
    assert "will follow up" in confirmation["text"]
