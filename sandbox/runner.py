"""`python -m bot sandbox`: the emulator, the real bot polling it, demo data, and the web chat page.

Everything runs in one process on 127.0.0.1; nothing leaves the machine. The page (sandbox/page.py)
is served on the emulator's port; the terminal chat is still there with ``--chat``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr
from rich.console import Console
from sqlmodel import col, func, select

from bot.clock import Clock
from bot.config import Settings
from bot.i18n import build_i18n
from sandbox.emulator import Emulator, start_emulator
from sandbox.page import SandboxPage
from sandbox.terminal_chat import TerminalChat
from storage.db import create_engine, make_sessionmaker
from storage.migrate import upgrade_async
from storage.models import Customer

SANDBOX_TOKEN = "1000000001:AAE-sandbox-local-only-token-000000"
SANDBOX_DATABASE = "sqlite+aiosqlite:///data/sandbox.db"
SANDBOX_CLOCK_FILE = Path("data/sandbox-clock")  # seconds the page's clock control has moved time on
GROUP_ID = -1001234567890
GROUP_TITLE = "Touchpoint demo team"
PEOPLE: dict[str, dict[str, Any]] = {
    "lead": {"id": 1001, "first_name": "林组长", "username": "lin_lead", "language_code": "zh-hans"},
    "agent": {"id": 1002, "first_name": "小王", "username": "xiaowang", "language_code": "zh-hans"},
    "agent2": {"id": 1003, "first_name": "Alice", "username": "alice_cs", "language_code": "en"},
    "stranger": {"id": 1999, "first_name": "路人", "language_code": "zh-hans"},
}


def sandbox_settings(settings: Settings, base_url: str) -> Settings:
    # Always a database of its own: demo data must never land in the team's real one.
    update: dict[str, Any] = {
        "telegram_bot_token": SecretStr(SANDBOX_TOKEN),
        "telegram_api_base": base_url,
        "admin_ids": settings.admin_ids | {PEOPLE["lead"]["id"]},
        "database_url": SANDBOX_DATABASE,
        "sandbox_clock_file": clock_file(settings),
    }
    if not settings.care_webhook_url:  # approved care messages land in the emulator's outbox
        update["care_webhook_url"] = f"{base_url}/control/outbox"
    return settings.model_copy(update=update)


class SandboxError(Exception):
    """The sandbox cannot start (its port is taken, say); the message says what to do."""


def clock_file(settings: Settings) -> Path:
    return settings.sandbox_clock_file or SANDBOX_CLOCK_FILE


async def ensure_demo_data(settings: Settings, customers: int, console: Console) -> Customer | None:
    """Load the demo shop on first start; returns a repeat buyer to suggest looking up."""
    await upgrade_async(settings.database_url)
    engine = create_engine(settings.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            count = (await session.exec(select(func.count()).select_from(Customer))).one()
            if count == 0:
                from storage.demo import load_demo

                console.print(f"Loading a demo shop with {customers} customers …")
                await load_demo(engine, customers)
            sample = select(Customer).where(Customer.purchases > 2).order_by(col(Customer.id)).limit(1)
            return (await session.exec(sample)).first()
    finally:
        await engine.dispose()


async def _control(http: aiohttp.ClientSession, method: str, path: str, body: dict[str, Any]) -> Any:
    async with http.request(method, path, json=body) as response:
        response.raise_for_status()
        return await response.json()


async def set_up_team(base_url: str) -> None:
    """Create the demo group, add the team, wait for the bot, and have the lead /bind the group."""
    async with aiohttp.ClientSession(base_url) as http:
        await _control(
            http, "POST", "/control/chats", {"id": GROUP_ID, "type": "supergroup", "title": GROUP_TITLE}
        )
        for name in ("lead", "agent", "agent2"):
            await _control(http, "POST", f"/control/chats/{GROUP_ID}/members", {"user": PEOPLE[name]})
        for _ in range(200):
            async with http.get("/control/calls", params={"method": "getUpdates"}) as response:
                if await response.json():
                    break
            await asyncio.sleep(0.05)
        posted = await _control(
            http, "POST", "/control/messages", {"chat_id": GROUP_ID, "from": PEOPLE["lead"], "text": "/bind"}
        )
        params = {"chat_id": GROUP_ID, "after": posted["message"]["message_id"], "timeout": 10}
        async with http.get("/control/wait", params=params) as response:
            await response.read()


async def run_sandbox(settings: Settings, *, port: int, customers: int, chat: bool) -> None:
    from bot.app import build_app, run_polling
    from bot.logs import setup_logging

    console = Console()
    setup_logging("WARNING")
    emulator = Emulator()
    clock_path = clock_file(settings)
    clock_path.parent.mkdir(parents=True, exist_ok=True)
    page = SandboxPage(
        emulator, GROUP_ID, PEOPLE, build_i18n(settings.default_locale), Clock(clock_path), settings.zone
    )
    try:
        runner, base_url = await start_emulator("127.0.0.1", port, emulator, add_routes=page.install)
    except OSError as exc:
        raise SandboxError(
            f"Cannot serve on 127.0.0.1:{port} ({exc.strerror or exc}). "
            "Choose another port with --port or SANDBOX_PORT."
        ) from None
    try:
        settings = sandbox_settings(settings, base_url)
        sample = await ensure_demo_data(settings, customers, console)
        app = await build_app(settings)
        page.app = app
        polling = asyncio.create_task(run_polling(app, handle_signals=False))
        await set_up_team(base_url)
        console.print(
            f"[bold green]Touchpoint sandbox is running: open {base_url}/ in a browser.[/bold green]\n"
            f"A chat page of “{GROUP_TITLE}”: be an agent, a second agent, the team lead or a stranger; "
            "fire shop events and move the clock on from the side panel.\n"
            f"Bot API emulator: {base_url} (control API under /control). Database: {settings.database_url}"
        )
        if sample is not None:
            console.print(
                f"A repeat buyer to look up: /card {sample.phone or sample.external_id}  ({sample.nickname})"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if chat and sys.stdin.isatty():
            chat_task = asyncio.create_task(TerminalChat(base_url, GROUP_ID, PEOPLE).run())
            await asyncio.wait(
                [chat_task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
        else:
            console.print("Serving until stopped (Ctrl+C). A terminal chat as well: --chat.")
            await stop.wait()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError, TimeoutError):
            await app.dispatcher.stop_polling()
            await asyncio.wait_for(polling, timeout=15)
    finally:
        await runner.cleanup()
