"""Quiet hours end to end: a message approved during them waits for the morning, the card says so,
and it goes out when they end (the bot's clock moved on)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.clock import Clock
from tests.e2e.chat import ChatUser, Emulator
from tests.e2e.conftest import AGENT, wait_until
from tests.e2e.shop import advance
from tests.e2e.test_care import WEBHOOK_SECRET, bound_group, card_for, delivered_texts, new_order
from tests.e2e.test_followup_durability import OwnBot, prepare
from tests.receivers import WebhookReceiver

pytestmark = pytest.mark.e2e
GROUP = -1005200000001


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(WEBHOOK_SECRET) as r:
        yield r


@pytest.fixture(scope="module")
def quiet_bot(
    emulator: Emulator, receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OwnBot]:
    workdir = tmp_path_factory.mktemp("care_quiet")
    hour = Clock(workdir / "clock").now().astimezone(ZoneInfo("Asia/Shanghai")).hour
    quiet = f"{(hour - 1) % 24:02d}:00-{(hour + 3) % 24:02d}:00"  # now is inside, for 2–3 hours more
    env = prepare(
        f"sqlite+aiosqlite:///{workdir / 'quiet.db'}",
        emulator,
        workdir,
        CARE_WEBHOOK_URL=receiver.url + "/sms",
        CARE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        CARE_QUIET_HOURS=quiet,
        DEFAULT_LOCALE="en",
    )
    bot = OwnBot(env, workdir / "bot.log")
    bot.start()
    bound_group(emulator, env, GROUP)
    try:
        yield bot
    finally:
        bot.stop_all()


def test_an_approval_in_quiet_hours_waits_for_them_to_end(
    emulator: Emulator, quiet_bot: OwnBot, receiver: WebhookReceiver
) -> None:
    order_no, _customer = new_order(quiet_bot.env)
    advance(quiet_bot.env, 26)
    card = card_for(emulator, GROUP, order_no)
    agent = ChatUser(emulator, GROUP, AGENT, token=quiet_bot.env["TELEGRAM_BOT_TOKEN"])
    approved = agent.click_and_wait_edit(card, "✅ Approve")
    assert "quiet hours" in approved["text"], approved["text"]
    time.sleep(2)  # the engine sweeps every 0.3 s: it would have sent by now
    assert delivered_texts(receiver, order_no) == [], "nothing goes in quiet hours"
    advance(quiet_bot.env, int(timedelta(hours=3, minutes=30).total_seconds() // 60))
    wait_until(lambda: len(delivered_texts(receiver, order_no)) == 1, what="the delivery after quiet hours")
