"""Webhook mode: the real bot process serves Telegram's webhook; the emulator posts updates to it
with the secret token, as Telegram does. Health, readiness, metrics, refusal of a wrong secret,
a re-delivered update handled once, and SIGTERM letting the update under way finish."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.chat import ChatUser, Emulator
from tests.e2e.conftest import (
    AGENT,
    DATA,
    LEAD,
    WEBHOOK_SET,
    bot_env,
    launch_bot,
    run_cli,
    stop,
    wait_until,
)

pytestmark = pytest.mark.e2e

TOKEN = "5151515151:AAE-touchpoint-webhook-test-token-000"
SECRET = "webhook-secret_0123"
GROUPS = iter(range(-1006000000001, -1006000001000, -1))


def http(
    verb: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=verb, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def webhook_env(emulator: Emulator, workdir: Path) -> dict[str, str]:
    env = bot_env(f"sqlite+aiosqlite:///{workdir / 'touchpoint.db'}", emulator.base_url, workdir, TOKEN)
    env.update(WEBHOOK_URL=f"http://127.0.0.1:{env['HTTP_PORT']}/tg/hook", WEBHOOK_SECRET=SECRET)
    return env


def launch_webhook_bot(env: dict[str, str], log_path: Path) -> subprocess.Popen:
    return launch_bot(env, log_path, ready=WEBHOOK_SET)


@pytest.fixture(scope="module")
def webhook_bot(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    workdir = tmp_path_factory.mktemp("webhook-bot")
    env = webhook_env(emulator, workdir)
    for kind in ("customers", "orders"):
        result = run_cli(env, "import", kind, str(DATA / f"{kind}.csv"))
        assert result.returncode == 0, result.stdout + result.stderr
    env["LOG_PATH"] = str(workdir / "bot.log")
    process = launch_webhook_bot(env, Path(env["LOG_PATH"]))
    try:
        yield env
    finally:
        stop(process)


def bound_group(emulator: Emulator) -> int:
    chat_id = next(GROUPS)
    emulator.call("POST", "/control/chats", {"id": chat_id, "type": "supergroup", "title": "Webhook team"})
    for user in (LEAD, AGENT):
        emulator.add_member(chat_id, user)
    (reply,) = ChatUser(emulator, chat_id, LEAD, token=TOKEN).send("/bind")
    assert "Touchpoint team chat" in reply["text"], reply
    return chat_id


def base(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['HTTP_PORT']}"


def test_a_card_through_the_webhook_with_health_readiness_and_metrics(
    emulator: Emulator, webhook_bot: dict[str, str]
) -> None:
    agent = ChatUser(emulator, bound_group(emulator), AGENT, token=TOKEN)
    (card,) = agent.send("/card C001")
    assert "小鱼儿" in card["text"] and "138****8000" in card["text"]
    info = emulator.call("GET", "/control/webhook/deliveries", token=TOKEN)
    assert sum(info["updates"].values()) >= 2  # /bind and /card came by webhook, not by getUpdates

    assert http("GET", base(webhook_bot) + "/healthz")[0] == 200
    status, body = http("GET", base(webhook_bot) + "/readyz")
    assert status == 200 and '"database": "ok"' in body
    status, metrics = http("GET", base(webhook_bot) + "/metrics")
    assert status == 200
    assert 'touchpoint_updates_handled_total{kind="message",outcome="ok"}' in metrics
    assert 'touchpoint_telegram_calls_total{method="sendMessage"}' in metrics
    assert "touchpoint_timers_pending " in metrics and "touchpoint_care_queue_depth{" in metrics


@pytest.mark.parametrize("secret", [None, "wrong-secret"])
def test_a_call_without_the_right_secret_is_refused_and_nothing_is_handled(
    emulator: Emulator, webhook_bot: dict[str, str], secret: str | None
) -> None:
    chat_id = bound_group(emulator)
    agent = ChatUser(emulator, chat_id, AGENT, token=TOKEN)
    before = agent.last_id()
    update = {
        "update_id": 990000001,
        "message": {
            "message_id": 99001,
            "date": int(time.time()),
            "text": "/card C001",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
            "chat": {"id": chat_id, "type": "supergroup", "title": "Webhook team"},
            "from": {"id": AGENT["id"], "is_bot": False, "first_name": "Wang"},
        },
    }
    headers = {"Content-Type": "application/json"}
    if secret:
        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
    status, _ = http("POST", base(webhook_bot) + "/tg/hook", json.dumps(update).encode(), headers)
    assert status == 403
    assert agent.quiet_for(before, seconds=1.5) == []
    log = Path(webhook_bot["LOG_PATH"]).read_text()
    assert "webhook call refused" in log and "wrong-secret" not in log and SECRET not in log


def test_a_redelivered_update_is_handled_once(emulator: Emulator, webhook_bot: dict[str, str]) -> None:
    agent = ChatUser(emulator, bound_group(emulator), AGENT, token=TOKEN)
    posted = emulator.call(
        "POST",
        "/control/messages",
        {"chat_id": agent.chat_id, "from": AGENT, "text": "/card C002", "token": TOKEN},
    )
    (card,) = agent.wait_new(posted["message"]["message_id"])
    assert "阿杰" in card["text"]
    # The card shows before the bot answers the webhook call; Telegram re-delivers after that.
    delivered = lambda: emulator.call("GET", "/control/webhook/deliveries", token=TOKEN)["updates"]  # noqa: E731
    wait_until(lambda: delivered().get(str(posted["update_id"]), 0) >= 1, what="the webhook call to end")
    replay = emulator.call(
        "POST", "/control/webhook/redeliver", {"update_id": posted["update_id"], "token": TOKEN}
    )
    assert replay["status"] == 200  # acknowledged, so Telegram stops re-delivering it ...
    assert agent.quiet_for(card["message_id"], seconds=1.5) == []  # ... and no second card
    _, metrics = http("GET", base(webhook_bot) + "/metrics")
    assert "touchpoint_updates_duplicate_total 1.0" in metrics


def test_sigterm_lets_the_update_under_way_finish(emulator: Emulator, tmp_path: Path) -> None:
    env = webhook_env(emulator, tmp_path)
    assert run_cli(env, "import", "customers", str(DATA / "customers.csv")).returncode == 0
    process = launch_webhook_bot(env, tmp_path / "bot.log")
    try:
        agent = ChatUser(emulator, bound_group(emulator), AGENT, token=TOKEN)
        before = agent.last_id()
        # Telegram takes 3 s to accept the card, so the update is mid-way when SIGTERM comes.
        emulator.fault("sendMessage", "delay", delay=3)
        emulator.call(
            "POST",
            "/control/messages",
            {"chat_id": agent.chat_id, "from": AGENT, "text": "/card C001", "token": TOKEN},
        )
        in_flight = lambda: emulator.call("GET", "/control/webhook/deliveries", token=TOKEN)["in_flight"]  # noqa: E731
        wait_until(lambda: in_flight() >= 1, what="the update to be with the bot")
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        texts = [m.get("text") or "" for m in emulator.messages(agent.chat_id, after=before)]
        assert sum("小鱼儿" in text for text in texts) == 1  # the card went out, once
        assert "still running" not in (tmp_path / "bot.log").read_text()
    finally:
        emulator.call("DELETE", "/control/faults")
        stop(process)
