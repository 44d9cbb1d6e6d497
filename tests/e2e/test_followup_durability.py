"""Follow-ups that survive: a crash (kill -9) and restart, two bot processes on one PostgreSQL
database, and Telegram failing while reminders go out. Each test runs bot processes of its own."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.chat import ChatUser, Emulator, buttons
from tests.e2e.conftest import AGENT, DATA, LEAD, TOKEN, bot_env, launch_bot, run_cli, stop
from tests.e2e.shop import advance

pytestmark = pytest.mark.e2e
_groups = itertools.count(-1003000000001, -1)
_bot_ids = itertools.count(5100000001)


@dataclass
class OwnBot:
    env: dict[str, str]
    log: Path
    processes: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> None:
        self.processes.append(launch_bot(self.env, self.log))

    def crash(self) -> None:
        process = self.processes.pop()
        process.send_signal(signal.SIGKILL)  # kill -9: no shutdown of any kind
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for process in self.processes:
            stop(process)


def new_token() -> str:
    return f"{next(_bot_ids)}:AAE-durability-token-0123456789abcdef"


def prepare(database_url: str, emulator: Emulator, workdir: Path, **settings: str) -> dict[str, str]:
    env = bot_env(database_url, emulator.base_url, workdir, token=new_token())
    env.update(settings)
    for kind in ("customers", "orders"):
        result = run_cli(
            env, "import", kind, str(DATA / f"{kind}.csv"), "--errors", str(workdir / f"{kind}.e")
        )
        assert result.returncode == 0, result.stdout + result.stderr
    return env


def team_group(emulator: Emulator, token: str) -> tuple[int, ChatUser]:
    """A group only this test's bot serves (the suite's main bot is not in it); bound by the lead."""
    chat_id = next(_groups)
    emulator.create_chat(chat_id, title=f"Durable team {chat_id}")
    for user in (LEAD, AGENT):
        emulator.add_member(chat_id, user)
    main_bot = int(TOKEN.split(":")[0])
    emulator.add_member(chat_id, {"id": main_bot, "is_bot": True, "first_name": "main"}, status="left")
    (reply,) = ChatUser(emulator, chat_id, LEAD, token=token).send("/bind")
    assert "Touchpoint team chat" in reply["text"]
    return chat_id, ChatUser(emulator, chat_id, AGENT, token=token)


def first_reminders(emulator: Emulator, chat_id: int) -> list[str]:
    """Customer names in every first reminder posted (a digest names several)."""
    names = []
    for message in emulator.messages(chat_id):
        text = message.get("text", "")
        if message.get("from", {}).get("is_bot") and (
            "time to follow up" in text or "follow-ups are due" in text
        ):
            names += re.findall(r"(阿杰|小鱼儿|小鱼干)", text.split("\n", 1)[1])
    return names


@pytest.fixture
def own_bots() -> Iterator[list[OwnBot]]:
    bots: list[OwnBot] = []
    yield bots
    for bot in bots:
        bot.stop_all()


def test_pending_timers_survive_a_crash_and_overdue_ones_fire_once_marked_late(
    emulator: Emulator, tmp_path: Path, own_bots: list[OwnBot]
) -> None:
    env = prepare(
        f"sqlite+aiosqlite:///{tmp_path / 'crash.db'}", emulator, tmp_path, REMINDER_GRACE_MINUTES="600"
    )
    bot = OwnBot(env, tmp_path / "bot.log")
    own_bots.append(bot)
    bot.start()
    chat_id, agent = team_group(emulator, env["TELEGRAM_BOT_TOKEN"])
    (stale,) = agent.send("/follow C001 no_reply 5")
    agent.send("/follow C002 hesitating 30")
    agent.send("/follow C003 no_reply 60")

    bot.crash()
    advance(env, 40)  # two of the three fall due while the bot is down
    after = agent.last_id()
    bot.start()
    (digest,) = agent.wait_new(after)
    assert "2 follow-ups are due" in digest["text"] and digest["text"].count("late by") == 2
    assert agent.quiet_for(digest["message_id"]) == []
    assert sorted(first_reminders(emulator, chat_id)) == ["小鱼儿", "阿杰"]

    advance(env, 20)
    (last,) = agent.wait_new(digest["message_id"])
    assert "小鱼干" in last["text"] and "Late by" not in last["text"]  # on time: the bot was up
    assert sorted(first_reminders(emulator, chat_id)) == ["小鱼儿", "小鱼干", "阿杰"]  # each once

    # A button from before the crash still works: the row, not the process, holds the follow-up.
    answer = agent.click(stale, "Cancel")
    assert "Already closed" not in answer["text"]
    assert "Cancelled by Wang" in agent.wait_edit(stale, 0)["text"]


def test_failed_sends_are_retried_with_backoff_and_not_lost(
    emulator: Emulator, tmp_path: Path, own_bots: list[OwnBot]
) -> None:
    # One retry inside the sender, so that a short run of failures exhausts it and the engine's
    # own backoff (15 s on the bot's clock) has to bring the reminder back.
    env = prepare(
        f"sqlite+aiosqlite:///{tmp_path / 'f.db'}",
        emulator,
        tmp_path,
        SEND_MAX_RETRIES="1",
        REMINDER_GRACE_MINUTES="600",
    )
    bot = OwnBot(env, tmp_path / "bot.log")
    own_bots.append(bot)
    bot.start()
    chat_id, agent = team_group(emulator, env["TELEGRAM_BOT_TOKEN"])
    agent.send("/follow C001 no_reply 1")
    agent.send("/follow C002 no_reply 3")
    agent.send("/follow C003 no_reply 10")

    after = agent.last_id()
    emulator.fault("sendMessage", "429", count=1, retry_after=1)  # waited out by the sender
    advance(env, 2)
    (first,) = agent.wait_new(after)
    assert "小鱼儿" in first["text"]

    emulator.fault("sendMessage", "500", count=2)  # more than the sender retries: the engine retries
    advance(env, 2)
    assert agent.quiet_for(first["message_id"], 2.5) == []
    advance(env, 1)  # past the engine's backoff
    (second,) = agent.wait_new(first["message_id"])
    assert "阿杰" in second["text"]

    # A proxy's HTML 502: the answer is not Telegram's, so the sender does not know whether the
    # message went through and leaves it to the engine, which tries again after its backoff.
    emulator.fault("sendMessage", "502", count=1)
    advance(env, 6)
    assert agent.quiet_for(second["message_id"], 1.5) == []
    advance(env, 1)
    (third,) = agent.wait_new(second["message_id"])
    assert "小鱼干" in third["text"]
    assert sorted(first_reminders(emulator, chat_id)) == ["小鱼儿", "小鱼干", "阿杰"]
    assert buttons(third)


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_two_processes_on_one_database_post_each_reminder_once(
    emulator: Emulator, tmp_path: Path, own_bots: list[OwnBot], database: str, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("pg_url")
        if database == "postgres"
        else f"sqlite+aiosqlite:///{tmp_path}/two.db"
    )
    env = prepare(url, emulator, tmp_path, REMINDER_GRACE_MINUTES="600")
    first = OwnBot(env, tmp_path / "first.log")
    own_bots.append(first)
    first.start()
    groups = [team_group(emulator, env["TELEGRAM_BOT_TOKEN"]) for _ in range(3)]
    for chat_id, agent in groups:
        lead = ChatUser(emulator, chat_id, LEAD, token=env["TELEGRAM_BOT_TOKEN"])
        for person, query in ((agent, "C001"), (agent, "C002"), (lead, "C003"), (lead, "C001")):
            person.send(f"/follow {query} no_reply 2")
    # The second process shares the database and the clock; its own token keeps getUpdates apart
    # (replicas behind one webhook come with #5), and it claims reminders all the same.
    second_env = dict(env, TELEGRAM_BOT_TOKEN=new_token(), HTTP_PORT=str(int(env["HTTP_PORT"]) + 1))
    second = OwnBot(second_env, tmp_path / "second.log")
    own_bots.append(second)
    second.start()
    advance(env, 3)
    expected = sorted(["小鱼儿", "阿杰", "小鱼干", "小鱼儿"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(
        len(first_reminders(emulator, chat_id)) < 4 for chat_id, _ in groups
    ):
        time.sleep(0.2)
    time.sleep(1.5)  # anything claimed twice would have been posted by now
    for chat_id, _ in groups:
        assert sorted(first_reminders(emulator, chat_id)) == expected


def test_a_follow_up_due_outside_working_hours_is_reminded_when_the_shift_starts(
    emulator: Emulator, tmp_path: Path, own_bots: list[OwnBot]
) -> None:
    local = datetime.now(ZoneInfo("Asia/Shanghai"))
    start = (local.hour + 2) % 24  # a one-hour shift that begins in one to two hours
    env = prepare(
        f"sqlite+aiosqlite:///{tmp_path / 'hours.db'}", emulator, tmp_path,
        WORKING_HOURS=f"{start:02d}:00-{start + 1:02d}:00", REMINDER_GRACE_MINUTES="600",
    )  # fmt: skip
    bot = OwnBot(env, tmp_path / "bot.log")
    own_bots.append(bot)
    bot.start()
    _chat_id, agent = team_group(emulator, env["TELEGRAM_BOT_TOKEN"])
    (confirmation,) = agent.send("/follow C001 no_reply 5")
    assert "outside working hours" in confirmation["text"]
    assert f"Reminder: {start:02d}:00" in confirmation["text"] or f"{start:02d}:00." in confirmation["text"]
    after = agent.last_id()
    advance(env, 30)  # past the due time, still before the shift
    assert agent.quiet_for(after) == []
    shift = local.replace(hour=start, minute=0, second=0, microsecond=0)
    shift += timedelta(days=1) if shift <= local else timedelta(0)
    advance(env, (shift - local).total_seconds() / 60 - 30 + 0.25)  # just past the shift's start
    (reminder,) = agent.wait_new(after)
    assert "Carried over" in reminder["text"] and "outside working hours" in reminder["text"]
    assert "Late by" not in reminder["text"]  # carried over is not late
