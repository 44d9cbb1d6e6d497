"""A real emulator process and a real bot process (long polling), wired over loopback HTTP."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.chat import ChatUser, ControlError, Emulator

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).with_name("data")
TOKEN = "4242424242:AAE-touchpoint-test-token-0123456789"
UNBOUND_GROUP = -1001000000002
FIRST_TEAM_GROUP = -1002000000001
LEAD = {"id": 9001, "first_name": "Lin", "last_name": "Lead", "language_code": "en"}
AGENT = {"id": 9002, "first_name": "Wang", "username": "xiaowang", "language_code": "en"}
AGENT_ZH = {"id": 9003, "first_name": "小李", "language_code": "zh-hans"}
STRANGER = {"id": 9666, "first_name": "Eve", "language_code": "en"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (ControlError, OSError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    port = free_port()
    log = (tmp_path_factory.mktemp("emulator") / "emulator.log").open("w")
    process = subprocess.Popen(
        # Privacy mode on, as Telegram has it by default for bots in groups.
        [
            sys.executable,
            "-m",
            "sandbox.emulator",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--privacy-mode",
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    emu = Emulator(f"http://127.0.0.1:{port}")
    wait_until(lambda: emu.call("GET", "/control/stats") is not None, what="the emulator")
    yield emu
    stop(process)


EVENTS_SECRET = "e2e-events-secret"


def bot_env(database_url: str, api_base: str, workdir: Path, token: str = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "ADMIN_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=token,
        TELEGRAM_API_BASE=api_base,
        DATABASE_URL=database_url,
        ADMIN_IDS=str(LEAD["id"]),
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        # Follow-ups: a clock the tests move forward, round-the-clock hours, a quick sweep.
        SANDBOX_CLOCK_FILE=str(workdir / "clock"),
        WORKING_HOURS="00:00-24:00",
        TIMER_SWEEP_SECONDS="0.3",
        EVENTS_SECRET=EVENTS_SECRET,
        HTTP_PORT=str(free_port()),
    )
    return env


POLLING = "Start polling"
WEBHOOK_SET = "webhook set"  # webhook mode (WEBHOOK_URL set)


def launch_bot(env: dict[str, str], log_path: Path, ready: str = POLLING) -> subprocess.Popen:
    """Start `python -m bot run` and wait until it takes updates (its log says `ready`)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env=env,
        stdout=log_path.open("a"),
        stderr=subprocess.STDOUT,
    )

    def taking_updates() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"the bot exited: {log_path.read_text()}")
        return ready in log_path.read_text()

    wait_until(taking_updates, what=f"the bot to log {ready!r}")
    return process


def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="session")
def bot_process(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    workdir = tmp_path_factory.mktemp("bot")
    env = bot_env(f"sqlite+aiosqlite:///{workdir / 'touchpoint.db'}", emulator.base_url, workdir)
    for kind in ("customers", "orders"):
        result = run_cli(
            env, "import", kind, str(DATA / f"{kind}.csv"), "--errors", str(workdir / f"{kind}.err")
        )
        assert result.returncode == 0, result.stdout + result.stderr
    emulator.create_chat(UNBOUND_GROUP, title="Random group")
    emulator.add_member(UNBOUND_GROUP, STRANGER)
    log_path = workdir / "bot.log"
    process = launch_bot(env, log_path)
    try:
        env["LOG_PATH"] = str(log_path)
        yield env
    finally:
        stop(process)
        if process.returncode not in (0, -15):
            print(log_path.read_text())


_group_ids = itertools.count(FIRST_TEAM_GROUP, -1)


@pytest.fixture
def team_group(emulator: Emulator, bot_process: dict[str, str]) -> int:
    """A fresh group per test, bound by the lead: each test has Telegram's per-group budget to itself."""
    chat_id = next(_group_ids)
    emulator.create_chat(chat_id, title=f"Support team {chat_id}")
    for user in (LEAD, AGENT, AGENT_ZH):
        emulator.add_member(chat_id, user)
    (reply,) = ChatUser(emulator, chat_id, LEAD).send("/bind")
    assert "Touchpoint team chat" in reply["text"], reply
    return chat_id


@pytest.fixture
def agent(emulator: Emulator, team_group: int) -> ChatUser:
    return ChatUser(emulator, team_group, AGENT)


@pytest.fixture
def agent_zh(emulator: Emulator, team_group: int) -> ChatUser:
    return ChatUser(emulator, team_group, AGENT_ZH)
