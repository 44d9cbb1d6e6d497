"""Care messages end to end: signed shop events into the real bot, approval cards in the group
through the Bot API emulator, one-tap decisions, delivery to a real local HTTP receiver that
checks the signature and counts deliveries by idempotency key.

The module runs a bot of its own (own token, database and group) so that its group is the team
group care cards go to.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.clock import Clock
from tests.e2e.chat import ChatUser, Emulator, buttons
from tests.e2e.conftest import AGENT, AGENT_ZH, LEAD, TOKEN, wait_until
from tests.e2e.shop import advance, post_events
from tests.e2e.test_followup_durability import OwnBot, prepare
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.e2e
WEBHOOK_SECRET = "care-webhook-secret"
FORUM_GROUP = -1005000000001
APPROVALS_TOPIC = 77
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(WEBHOOK_SECRET) as r:
        yield r


@pytest.fixture(scope="module")
def care_bot(
    emulator: Emulator, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[OwnBot, int]]:
    workdir = tmp_path_factory.mktemp("care")
    env = prepare(
        f"sqlite+aiosqlite:///{workdir / 'care.db'}",
        emulator,
        workdir,
        CARE_WEBHOOK_URL=receiver.url + "/sms",
        CARE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CARE_QUIET_HOURS="off",
        CARE_CAP_PER_DAY="5",
        CARE_CAP_PER_WEEK="20",
        TIMER_LEASE_SECONDS="10",
        SHOP_NAME="小鱼母婴",
        DEFAULT_LOCALE="en",  # the group cards in English, for readable assertions
        # One group takes every test of this module: Telegram's 20 a minute would make them wait.
        SEND_PER_GROUP_PER_MINUTE="200",
    )
    bot = OwnBot(env, workdir / "bot.log")
    bot.start()
    # A forum supergroup: care cards go to the general thread until a lead routes them to a topic.
    chat_id = bound_group(emulator, env, FORUM_GROUP, forum=True, members=(LEAD, AGENT, AGENT_ZH))
    try:
        yield bot, chat_id
    finally:
        bot.stop_all()


def bound_group(
    emulator: Emulator,
    env: dict[str, str],
    chat_id: int,
    *,
    forum: bool = False,
    members: tuple[dict[str, Any], ...] = (LEAD, AGENT),
) -> int:
    """A group only this module's bot serves (the suite's main bot has left it), bound by the lead:
    the first bound group, so care cards come here."""
    emulator.call(
        "POST", "/control/chats", {"id": chat_id, "type": "supergroup", "title": "Care", "is_forum": forum}
    )
    for member in members:
        emulator.add_member(chat_id, member)
    main_bot = int(TOKEN.split(":")[0])
    emulator.add_member(chat_id, {"id": main_bot, "is_bot": True, "first_name": "main"}, status="left")
    (bound,) = ChatUser(emulator, chat_id, LEAD, token=env["TELEGRAM_BOT_TOKEN"]).send("/bind")
    assert "Touchpoint team chat" in bound["text"]
    return chat_id


def user(emulator: Emulator, care_bot: tuple[OwnBot, int], who: dict[str, Any]) -> ChatUser:
    bot, chat_id = care_bot
    return ChatUser(emulator, chat_id, who, token=bot.env["TELEGRAM_BOT_TOKEN"])


def now_iso(env: dict[str, str]) -> str:
    """Now on the bot's clock, which the tests move forward."""
    return Clock(Path(env["SANDBOX_CLOCK_FILE"])).now().isoformat()


def new_order(env: dict[str, str], amount: str = "88.00", **extra: Any) -> tuple[str, str]:
    """An unpaid order from a new customer; returns (order no., customer id)."""
    n = next(_ids)
    order_no, customer_id = f"CARE{n:04d}-{uuid.uuid4().hex[:4]}", f"CC{n:04d}-{uuid.uuid4().hex[:4]}"
    status, body = post_events(
        env,
        {
            "id": f"created-{order_no}",
            "type": "order.created",
            "occurred_at": now_iso(env),
            "data": {"order_id": order_no, "customer_id": customer_id, "amount": amount, **extra},
        },
    )
    assert status == 200, body
    return order_no, customer_id


def card_for(
    emulator: Emulator, chat_id: int, order_no: str, timeout: float = 15, kind: str = ""
) -> dict[str, Any]:
    """The approval card (or digest, or alert) in the group that names this order."""
    found: list[dict[str, Any]] = []

    def posted() -> bool:
        found[:] = [
            m for m in emulator.messages(chat_id) if order_no in m.get("text", "") and kind in m["text"]
        ]
        return bool(found)

    wait_until(posted, timeout=timeout, what=f"a care card for {order_no}")
    return found[-1]


def delivered_texts(receiver: WebhookReceiver, order_no: str) -> list[str]:
    return [
        r["json"]["text"]
        for r in receiver.requests
        if r["json"] and r["json"].get("order_no") == order_no and r["status"] == 200
    ]


def reminder_card(
    emulator: Emulator, care_bot: tuple[OwnBot, int], amount: str = "88.00"
) -> tuple[str, str, dict[str, Any]]:
    """An unpaid order, 26 minutes on: (order no., customer id, its payment reminder's card)."""
    bot, chat_id = care_bot
    order_no, customer_id = new_order(bot.env, amount)
    advance(bot.env, 26)
    return order_no, customer_id, card_for(emulator, chat_id, order_no)


def test_an_unpaid_order_gets_a_reminder_card_that_one_tap_sends_once(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot, chat_id = care_bot
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer = new_order(bot.env)
    time.sleep(1)
    assert not [m for m in emulator.messages(chat_id) if order_no in m.get("text", "")], (
        "not before 25 minutes"
    )
    advance(bot.env, 26)
    card = card_for(emulator, chat_id, order_no)
    assert "Payment reminder" in card["text"] and "1 SMS" in card["text"]
    assert [b["text"] for b in buttons(card)] == [
        "✅ Approve",
        "⏭ Skip",
        "✏️ Edit",
        "✅ Approve all of this rule today",
    ]
    assert delivered_texts(receiver, order_no) == [], "nothing goes before an agent approves"
    edited = agent.click_and_wait_edit(card, "✅ Approve")
    assert "Approved by" in edited["text"]
    wait_until(lambda: len(delivered_texts(receiver, order_no)) == 1, what="the delivery")
    (request,) = [r for r in receiver.requests if r["json"] and r["json"].get("order_no") == order_no]
    key = request["headers"]["Idempotency-Key"]
    assert receiver.delivered[key] == 1
    assert request["json"]["rule"] == "payment_reminder" and "小鱼母婴" in request["json"]["text"]
    wait_until(lambda: "Sent" in agent.current(card)["text"], what="the card to say it was sent")
    # The same event again: accepted, ignored; no second card, no second delivery.
    status, body = post_events(
        bot.env,
        {
            "id": f"created-{order_no}",
            "type": "order.created",
            "occurred_at": now_iso(bot.env),
            "data": {"order_id": order_no, "customer_id": _customer, "amount": "88.00"},
        },
    )
    assert status == 200 and body["duplicates"] == 1
    advance(bot.env, 26)
    time.sleep(1.5)
    assert len([m for m in emulator.messages(chat_id) if order_no in m.get("text", "")]) == 1
    assert len(delivered_texts(receiver, order_no)) == 1


def test_an_order_paid_meanwhile_drops_its_reminder_card(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot = care_bot[0]
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer, card = reminder_card(emulator, care_bot)
    before = agent.current(card)["edit_count"]
    status, _body = post_events(
        bot.env,
        {
            "id": f"paid-{order_no}",
            "type": "order.paid",
            "occurred_at": now_iso(bot.env),
            "data": {"order_id": order_no},
        },
    )
    assert status == 200
    edited = agent.wait_edit(card, before)
    assert "Not sent" in edited["text"] and "no longer applies" in edited["text"]
    assert buttons(edited) == [], "nothing left to decide"
    assert delivered_texts(receiver, order_no) == []


def test_two_agents_press_skip_and_approve_together_one_decision_stands(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    agent, lead = user(emulator, care_bot, AGENT), user(emulator, care_bot, LEAD)
    order_no, _customer, card = reminder_card(emulator, care_bot)
    first = agent.click(card, "⏭ Skip")
    second = lead.click(card, "✅ Approve")
    assert first["text"] == "Skipped."
    assert "Already decided" in second["text"] and "Skipped by" in second["text"]
    time.sleep(1)
    assert delivered_texts(receiver, order_no) == []


def test_edit_takes_the_next_message_shows_it_and_sends_it_on_confirm(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer, card = reminder_card(emulator, care_bot)
    _answer, (prompt,) = agent.click_expecting(card, "✏️ Edit")
    assert "reply with the new text" in prompt["text"]
    (preview,) = agent.reply_to(prompt, f"亲，订单{order_no}还在等您付款，库存给您留着哦")
    assert "The customer will get" in preview["text"]
    agent.click(preview, "Approve this text")
    wait_until(lambda: delivered_texts(receiver, order_no), what="the edited text to go out")
    assert delivered_texts(receiver, order_no) == [f"亲，订单{order_no}还在等您付款，库存给您留着哦"]
    wait_until(lambda: "edited by" in agent.current(card)["text"], what="the card to show the edit")


def test_a_receiver_that_fails_is_retried_and_the_customer_gets_it_once(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot = care_bot[0]
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer, card = reminder_card(emulator, care_bot)
    receiver.script([500])
    agent.click(card, "✅ Approve")
    wait_until(lambda: "retrying" in agent.current(card)["text"], what="the card to show the retry")
    assert delivered_texts(receiver, order_no) == []
    advance(bot.env, 1)  # the first back-off is 30 seconds
    wait_until(lambda: len(delivered_texts(receiver, order_no)) == 1, what="the retried delivery")
    keys = [
        r["headers"]["Idempotency-Key"]
        for r in receiver.requests
        if (r["json"] or {}).get("order_no") == order_no
    ]
    assert len(keys) == 2 and len(set(keys)) == 1, "both attempts carry the same idempotency key"


def test_a_bad_review_alerts_the_group_at_once_and_someone_takes_it(
    emulator: Emulator, care_bot: tuple[OwnBot, int]
) -> None:
    bot, chat_id = care_bot
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer = new_order(bot.env, amount="59.00")
    status, body = post_events(
        bot.env,
        {
            "id": f"review-{order_no}",
            "type": "review.posted",
            "occurred_at": now_iso(bot.env),
            "data": {"order_id": order_no, "rating": 1, "text": "包装破了，客服也不回"},
        },
    )
    assert status == 200, body
    alert = card_for(emulator, chat_id, order_no, timeout=10, kind="Bad review")
    assert "Bad review" in alert["text"] and "包装破了" in alert["text"] and "★☆☆☆☆" in alert["text"]
    edited = agent.click_and_wait_edit(alert, "I'll handle it")
    assert "is handling it" in edited["text"]
    assert [b["text"] for b in buttons(edited)] == ["✅ Resolved"]
    # A review of an order nobody knows is a clear 4xx, nothing stored.
    status, body = post_events(
        bot.env,
        {
            "id": f"review-unknown-{order_no}",
            "type": "review.posted",
            "occurred_at": now_iso(bot.env),
            "data": {"order_id": "NO-SUCH-ORDER", "rating": 2, "text": "?"},
        },
    )
    assert status == 422 and "unknown" in str(body)


def test_only_a_lead_approves_a_whole_rule_and_it_takes_every_waiting_one(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot, chat_id = care_bot
    agent, lead = user(emulator, care_bot, AGENT), user(emulator, care_bot, LEAD)
    orders = [new_order(bot.env)[0] for _ in range(2)]
    advance(bot.env, 26)
    cards = [card_for(emulator, chat_id, no) for no in orders]
    refused = agent.click(cards[0], "Approve all of this rule today")
    assert "Only a team lead" in refused["text"]
    _answer, (said,) = lead.click_expecting(cards[0], "Approve all of this rule today")
    assert "approved 2 × Payment reminder" in said["text"]
    for no in orders:
        wait_until(lambda no=no: len(delivered_texts(receiver, no)) == 1, what=f"delivery of {no}")


def test_queue_lists_what_waits_and_optout_drops_it(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    agent = user(emulator, care_bot, AGENT)
    order_no, customer_id, card = reminder_card(emulator, care_bot)
    (listing,) = agent.send("/queue")
    assert "Waiting" in listing["text"] and customer_id in listing["text"]
    (bad,) = agent.send("/optout")
    assert "Usage" in bad["text"]
    (done,) = agent.send(f"/optout {order_no}")
    assert "no more care messages" in done["text"]
    wait_until(lambda: "opted out" in agent.current(card)["text"], what="the card to say why")
    assert delivered_texts(receiver, order_no) == []


def send_in_topic(
    emulator: Emulator, bot: OwnBot, who: dict[str, Any], text: str, thread: int
) -> dict[str, Any]:
    posted = emulator.call(
        "POST",
        "/control/messages",
        {"chat_id": FORUM_GROUP, "from": who, "text": text, "message_thread_id": thread,
         "token": bot.env["TELEGRAM_BOT_TOKEN"]},
    )  # fmt: skip
    result = emulator.call(
        "GET", "/control/wait", chat_id=FORUM_GROUP, after=posted["message"]["message_id"], timeout=10
    )
    (reply,) = [m for m in result["messages"] if m["from"].get("is_bot")]
    return reply


def test_several_due_together_come_as_one_digest_and_a_lead_routes_cards_to_a_topic(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot, chat_id = care_bot
    agent = user(emulator, care_bot, AGENT)
    refused = send_in_topic(emulator, bot, AGENT, "/route approvals", APPROVALS_TOPIC)
    assert "Only a team lead" in refused["text"]
    routed = send_in_topic(emulator, bot, LEAD, "/route approvals", APPROVALS_TOPIC)
    assert "now go to this topic" in routed["text"]
    placed = [new_order(bot.env) for _ in range(5)]
    orders, customers = [o for o, _c in placed], [c for _o, c in placed]
    advance(bot.env, 26)
    digest = card_for(emulator, chat_id, customers[0], kind="wait for approval")
    assert all(c in digest["text"] for c in customers[1:]), "one digest, not five cards"
    assert digest.get("message_thread_id") == APPROVALS_TOPIC
    assert "✅ 2" in [b["text"] for b in buttons(digest)]
    agent.click(digest, "✅ 2")
    wait_until(
        lambda: len(delivered_texts(receiver, orders[1])) == 1, what="the one approved from the digest"
    )
    assert all(delivered_texts(receiver, no) == [] for no in orders[:1] + orders[2:])
    wait_until(lambda: "✅ 2" not in [b["text"] for b in buttons(agent.current(digest))], what="the redraw")
    send_in_topic(emulator, bot, LEAD, "/route approvals off", APPROVALS_TOPIC)


def test_a_rule_a_lead_made_automatic_goes_without_a_card_and_back(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot, chat_id = care_bot
    agent, lead = user(emulator, care_bot, AGENT), user(emulator, care_bot, LEAD)
    (refused,) = agent.send("/care auto shipped on")
    assert "Only a team lead" in refused["text"]
    (switched,) = lead.send("/care auto shipped on")
    assert "without approval" in switched["text"]
    try:
        order_no, _customer = new_order(bot.env)
        for kind, extra in (
            ("order.paid", {}),
            ("order.shipped", {"carrier": "顺丰", "tracking_no": "SF42"}),
        ):
            status, body = post_events(
                bot.env,
                {"id": f"{kind}-{order_no}", "type": kind, "occurred_at": now_iso(bot.env),
                 "data": {"order_id": order_no, **extra}},
            )  # fmt: skip
            assert status == 200, body
        wait_until(lambda: delivered_texts(receiver, order_no), what="the automatic shipped message")
        (text,) = delivered_texts(receiver, order_no)
        assert "SF42" in text
        assert not [m for m in emulator.messages(chat_id) if order_no in m.get("text", "")], "no card"
    finally:
        (back,) = lead.send("/care auto shipped off")
        assert "waits for approval again" in back["text"]


def test_a_crash_between_approval_and_delivery_still_delivers_exactly_once(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    bot = care_bot[0]
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer, card = reminder_card(emulator, care_bot)
    receiver.delay(4, times=1)  # the gateway takes its time: the bot dies while it waits
    agent.click(card, "✅ Approve")
    wait_until(
        lambda: any((r["json"] or {}).get("order_no") == order_no for r in receiver.requests),
        what="the delivery to start",
    )
    bot.crash()
    bot.start()
    advance(bot.env, 1)  # past the claim's lease: the restarted bot takes the row again
    wait_until(lambda: "Sent" in agent.current(card)["text"], timeout=30, what="the card to say it was sent")
    requests = [r for r in receiver.requests if (r["json"] or {}).get("order_no") == order_no]
    key = requests[0]["headers"]["Idempotency-Key"]
    wait_until(lambda: all(r["status"] is not None for r in requests), what="both requests to finish")
    assert len(requests) == 2, "sent again after the crash, with the same key"
    assert receiver.delivered[key] == 1 and receiver.duplicates[key] == 1


def test_a_high_value_unpaid_order_becomes_a_call_for_an_agent(
    emulator: Emulator, care_bot: tuple[OwnBot, int], receiver: WebhookReceiver
) -> None:
    agent = user(emulator, care_bot, AGENT)
    order_no, _customer, card = reminder_card(emulator, care_bot, amount="1888.00")
    assert "phone call" in card["text"] and "SMS" not in card["text"].split("\n")[-1]
    assert [b["text"] for b in buttons(card)] == ["📞 I'll call", "⏭ Skip"]
    taken = agent.click_and_wait_edit(card, "I'll call")
    assert "is calling" in taken["text"] and [b["text"] for b in buttons(taken)] == ["✅ Called"]
    done = agent.click_and_wait_edit(taken, "Called")
    assert "Called by" in done["text"] and buttons(done) == []
    assert delivered_texts(receiver, order_no) == [], "a call is not a message"
