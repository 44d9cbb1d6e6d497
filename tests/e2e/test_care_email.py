"""The e-mail channel end to end: a deployment's care_rules.yaml sends `shipped` by e-mail; the
real bot delivers an approved message to a real local SMTP server (aiosmtpd), and an address the
server refuses ends as a dead letter the group can see."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from bot.palette_file import SHIPPED_CONFIG
from tests.e2e.chat import ChatUser, Emulator
from tests.e2e.conftest import AGENT, wait_until
from tests.e2e.shop import post_events
from tests.e2e.test_care import bound_group, now_iso
from tests.e2e.test_followup_durability import OwnBot, prepare
from tests.receivers import SmtpReceiver

pytestmark = pytest.mark.e2e
GROUP = -1005100000001


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpReceiver]:
    with SmtpReceiver() as server:
        yield server


@pytest.fixture(scope="module")
def mail_bot(
    emulator: Emulator, smtp: SmtpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnBot]:
    workdir = tmp_path_factory.mktemp("care_email")
    config = workdir / "config"
    config.mkdir()
    rules = (SHIPPED_CONFIG / "care_rules.yaml").read_text(encoding="utf-8")
    shipped = re.search(r"  shipped:.*?\n    channel: webhook\n", rules, re.S)
    assert shipped is not None
    (config / "care_rules.yaml").write_text(
        rules.replace(shipped.group(), shipped.group().replace("channel: webhook", "channel: email")),
        encoding="utf-8",
    )
    env = prepare(
        f"sqlite+aiosqlite:///{workdir / 'mail.db'}",
        emulator,
        workdir,
        TOUCHPOINT_CONFIG=str(config),
        SMTP_HOST=smtp.host,
        SMTP_PORT=str(smtp.port),
        SMTP_FROM="care@shop.example",
        SHOP_NAME="小鱼母婴",
        CARE_QUIET_HOURS="off",
        DEFAULT_LOCALE="en",
    )
    bot = OwnBot(env, workdir / "bot.log")
    bot.start()
    bound_group(emulator, env, GROUP)
    try:
        yield bot
    finally:
        bot.stop_all()


def ship(bot: OwnBot, n: int, email: str) -> str:
    order_no, customer = f"MAIL{n}", f"MC{n}"
    created = {"order_id": order_no, "customer_id": customer, "amount": "66.00"}
    shipped = {"order_id": order_no, "carrier": "中通", "tracking_no": f"ZT{n}"}
    events: list[dict[str, Any]] = [
        {"id": f"c-{n}", "type": "customer.upserted", "data": {"customer_id": customer, "email": email}},
        {"id": f"o-{n}", "type": "order.created", "data": created},
        {"id": f"p-{n}", "type": "order.paid", "data": {"order_id": order_no}},
        {"id": f"s-{n}", "type": "order.shipped", "data": shipped},
    ]
    for event in events:
        event["occurred_at"] = now_iso(bot.env)
    status, body = post_events(bot.env, events)
    assert status == 200, body
    return order_no


def shipped_card(emulator: Emulator, tracking: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def posted() -> bool:
        found[:] = [
            m for m in emulator.messages(GROUP) if tracking in m.get("text", "") and "e-mail" in m["text"]
        ]
        return bool(found)

    wait_until(posted, what=f"the shipped card for {tracking}")
    return found[-1]


def approve_to_a_refusing_address(
    emulator: Emulator, mail_bot: OwnBot, smtp: SmtpReceiver, n: int, address: str
) -> tuple[ChatUser, dict[str, Any], dict[str, Any]]:
    """Order n shipped to an address the mail server refuses, its message approved: the agent, the
    shipped card, and the one notice the group gets."""
    smtp.reject(address)
    ship(mail_bot, n, address)
    card = shipped_card(emulator, f"ZT{n}")
    agent = ChatUser(emulator, GROUP, AGENT, token=mail_bot.env["TELEGRAM_BOT_TOKEN"])
    after = agent.last_id()
    agent.click(card, "✅ Approve")
    (notice,) = agent.wait_new(after)
    return agent, card, notice


def test_an_approved_message_goes_out_by_e_mail(
    emulator: Emulator, mail_bot: OwnBot, smtp: SmtpReceiver
) -> None:
    ship(mail_bot, 1, "buyer1@example.com")
    card = shipped_card(emulator, "ZT1")
    ChatUser(emulator, GROUP, AGENT, token=mail_bot.env["TELEGRAM_BOT_TOKEN"]).click(card, "✅ Approve")
    wait_until(lambda: any(m["To"] == "buyer1@example.com" for m in smtp.messages), what="the e-mail")
    (mail,) = [m for m in smtp.messages if m["To"] == "buyer1@example.com"]
    assert "ZT1" in mail.get_content() and mail["Message-ID"].startswith("<tp-")


def test_an_address_the_server_refuses_ends_as_a_dead_letter_in_the_group(
    emulator: Emulator, mail_bot: OwnBot, smtp: SmtpReceiver
) -> None:
    agent, card, notice = approve_to_a_refusing_address(emulator, mail_bot, smtp, 2, "gone@example.com")
    assert "Not delivered" in notice["text"] and "550" in notice["text"]
    wait_until(
        lambda: "Not delivered after 1 attempts" in agent.current(card)["text"], what="the card's outcome"
    )


def test_a_dead_letter_is_sent_again_once_the_address_is_fixed(
    emulator: Emulator, mail_bot: OwnBot, smtp: SmtpReceiver
) -> None:
    agent, card, notice = approve_to_a_refusing_address(emulator, mail_bot, smtp, 3, "typo@example.con")
    assert "Not delivered" in notice["text"] and "Send again" in str(notice["reply_markup"])

    fixed = {"customer_id": "MC3", "email": "fixed@example.com"}
    status, body = post_events(
        mail_bot.env,
        [{"id": "c-3-fix", "type": "customer.upserted", "occurred_at": now_iso(mail_bot.env), "data": fixed}],
    )
    assert status == 200, body
    answer = agent.click(notice, "Send again")
    assert "again" in answer["text"], answer
    wait_until(
        lambda: any(m["To"] == "fixed@example.com" for m in smtp.messages), what="the e-mail sent again"
    )
    (mail,) = [m for m in smtp.messages if m["To"] == "fixed@example.com"]
    assert "ZT3" in mail.get_content()
    wait_until(lambda: "Sent again by" in agent.current(notice)["text"], what="the notice's new line")
    assert not agent.current(notice).get("reply_markup")
    wait_until(lambda: "📨 Sent" in agent.current(card)["text"], what="the card's outcome")
