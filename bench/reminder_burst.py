"""Reminders under Telegram's limits, through the Bot API emulator with its flood control on.

    python bench/reminder_burst.py [--reminders 2000] [--groups 20] [--agents 5] [--restart 10000]

(a) Burst: `--reminders` follow-ups fall due within the same minute across `--groups` team groups
    (`--agents` owners each), with the real bot process running. Measures: 429 answers from the
    emulator (bar: 0), the most messages any group got in a 60-second window (bar: ≤ 20), how
    many messages carried them (digests merge what one agent has due while the group waits), and
    the delay from due time to the reminder being in the chat (largest and p99; reported).
(b) Restart: `--restart` follow-ups are already overdue when the bot starts (as after an outage).
    Every one must be posted exactly once (counted in the emulator from the buttons of each first
    reminder), within the same limits; reports how long it took to drain.
The emulator enforces Telegram's published limits (1 msg/s per chat with bursts, 20/min per
group, 30/s per bot) and answers 429 when a bot exceeds them. Exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from storage import followups  # noqa: E402  (after the path set-up above)
from storage.db import create_engine, make_sessionmaker  # noqa: E402
from storage.migrate import upgrade_async  # noqa: E402
from storage.models import Customer, TeamChat  # noqa: E402

TOKEN = "5353535353:AAE-touchpoint-burst-bench-token-0001"
FIRST_GROUP = -1009000000001
GROUP_LIMIT = 20
FOLLOW_ID = re.compile(r"^f:[a-z0-9]+:(\d+)$")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def seed(url: str, *, groups: int, agents: int, count: int, due: list[datetime]) -> None:
    """Customers, bound groups and `count` pending follow-ups, one per due time, round-robin."""
    await upgrade_async(url)
    engine = create_engine(url)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    async with sessions() as session:
        for n in range(200):
            session.add(Customer(external_id=f"B{n}", nickname=f"顾客{n}"))
        for g in range(groups):
            session.add(TeamChat(chat_id=FIRST_GROUP - g, title=f"team {g}", bound_by=1, bound_at=now))
        await session.commit()
    items = []
    for n in range(count):
        group, owner = n % groups, (n // groups) % agents
        items.append(
            followups.NewFollowUp(
                customer_pk=1 + n % 200, chat_id=FIRST_GROUP - group, scenario="no_reply",
                owner_id=7000 + owner, owner_name=f"agent{owner}", created_by=7000 + owner,
                due_at=due[n], fire_at=due[n],
            )
        )  # fmt: skip
    async with sessions() as session:
        for start in range(0, count, 5000):
            await followups.create_many(session=session, items=items[start : start + 5000], now=now)
    await engine.dispose()


async def fired(url: str) -> list[tuple[datetime | None, datetime | None]]:
    """(remind_at, fired_at) of every follow-up."""
    from sqlmodel import select

    from storage.models import FollowUp

    engine = create_engine(url)
    async with make_sessionmaker(engine)() as session:
        rows = (await session.exec(select(FollowUp.remind_at, FollowUp.fired_at))).all()
    await engine.dispose()
    return list(rows)


def start_emulator(port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulator", "--port", str(port), "--enforce-limits"],
        cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def start_bot(url: str, api: str, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_"))}
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN, TELEGRAM_API_BASE=api, DATABASE_URL=url, WORKING_HOURS="00:00-24:00",
        TIMER_SWEEP_SECONDS="1", REMINDER_GRACE_MINUTES="600", LOG_LEVEL="WARNING",
    )  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


async def get(http: aiohttp.ClientSession, path: str) -> Any:
    async with http.get(path) as response:
        response.raise_for_status()
        return await response.json()


async def wait_for(http: aiohttp.ClientSession) -> None:
    for _ in range(100):
        try:
            await get(http, "/control/stats")
            return
        except aiohttp.ClientError:
            await asyncio.sleep(0.1)
    raise SystemExit("the emulator did not start")


def max_in_minute(dates: list[int]) -> int:
    """Most messages within any 60 seconds (message dates are whole seconds)."""
    dates, best, lo = sorted(dates), 0, 0
    for hi, date in enumerate(dates):
        while date - dates[lo] >= 60:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def observe(http: aiohttp.ClientSession, groups: int) -> dict[str, Any]:
    stats = await get(http, "/control/stats")
    per_group, ids, messages = [], Counter(), 0
    for g in range(groups):
        sent = [
            m
            for m in await get(http, f"/control/chats/{FIRST_GROUP - g}/messages")
            if m.get("from", {}).get("is_bot")
        ]
        messages += len(sent)
        per_group.append(max_in_minute([m["date"] for m in sent]))
        for message in sent:
            seen = {
                int(match[1])
                for row in (message.get("reply_markup") or {}).get("inline_keyboard", [])
                for button in row
                if (match := FOLLOW_ID.match(button.get("callback_data", "")))
            }
            ids.update(seen)
    return {
        "429": stats.get("too_many_requests", 0),
        "max_per_group_minute": max(per_group),
        "messages": messages,
        "ids": ids,
    }


async def phase(
    name: str, workdir: Path, *, count: int, groups: int, agents: int, due: list[datetime], limit_s: float
) -> dict[str, Any]:
    url = f"sqlite+aiosqlite:///{workdir / (name + '.db')}"
    await seed(url, groups=groups, agents=agents, count=count, due=due)
    port = free_port()
    emulator = start_emulator(port, workdir / f"{name}-emulator.log")
    bot = None
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
            await wait_for(http)
            for g in range(groups):
                chat = {"id": FIRST_GROUP - g, "type": "supergroup", "title": f"team {g}"}
                async with http.post("/control/chats", json=chat) as response:
                    response.raise_for_status()
            started = time.monotonic()
            bot = start_bot(url, f"http://127.0.0.1:{port}", workdir / f"{name}-bot.log")
            deadline = started + limit_s
            rows = await fired(url)
            while time.monotonic() < deadline and any(f is None for _, f in rows):
                if bot.poll() is not None:
                    raise SystemExit(f"the bot exited; see {workdir / (name + '-bot.log')}")
                await asyncio.sleep(1.0)
                rows = await fired(url)
            drained = time.monotonic() - started
            await asyncio.sleep(2.0)  # anything posted twice would show now
            seen = await observe(http, groups)
    finally:
        for process in (bot, emulator):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)
    delays = sorted((f - r).total_seconds() for r, f in rows if f is not None and r is not None)
    return {
        "fired": len(delays),
        "drained_s": drained,
        "delay_max_s": delays[-1] if delays else None,
        "delay_p99_s": delays[int(0.99 * (len(delays) - 1))] if delays else None,
        "delay_p50_s": statistics.median(delays) if delays else None,
        **seen,
    }


def report(name: str, result: dict[str, Any], count: int) -> list[str]:
    ids: Counter = result.pop("ids")
    twice = sum(1 for n in ids.values() if n > 1)
    print(f"\n{name}: {count} reminders")
    r = result
    print(f"  fired {r['fired']} · drained in {r['drained_s']:.1f} s · in {r['messages']} messages"
          f" ({count / max(1, r['messages']):.1f} per message)")  # fmt: skip
    print(f"  delay due → in the chat: p50 {r['delay_p50_s']:.1f} s · p99 {r['delay_p99_s']:.1f} s"
          f" · largest {r['delay_max_s']:.1f} s")  # fmt: skip
    print(f"  429 answers {r['429']} (bar 0) · most in one group in a minute {r['max_per_group_minute']}"
          f" (bar ≤ {GROUP_LIMIT}) · distinct reminders {len(ids)} · posted twice {twice}")  # fmt: skip
    missed = []
    if result["fired"] != count or len(ids) != count or twice:
        missed.append(f"{name}: every reminder exactly once")
    if result["429"]:
        missed.append(f"{name}: zero 429")
    if result["max_per_group_minute"] > GROUP_LIMIT:
        missed.append(f"{name}: ≤ {GROUP_LIMIT} per group per minute")
    return missed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reminders", type=int, default=2000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--restart", type=int, default=10_000)
    args = parser.parse_args()
    rng = random.Random(7)
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tp-burst-") as tmp:
        workdir = Path(tmp)
        start = datetime.now(UTC) + timedelta(seconds=25)  # after the bot is up and polling
        burst_due = sorted(start + timedelta(seconds=rng.uniform(0, 60)) for _ in range(args.reminders))
        burst = await phase("burst", workdir, count=args.reminders, groups=args.groups, agents=args.agents,
                            due=burst_due, limit_s=600)  # fmt: skip
        missed += report("burst (due within one minute)", burst, args.reminders)
        if args.restart:
            past = datetime.now(UTC) - timedelta(minutes=30)
            overdue = [past + timedelta(seconds=rng.uniform(0, 1500)) for _ in range(args.restart)]
            restart = await phase(
                "restart", workdir, count=args.restart, groups=args.groups, agents=args.agents, due=overdue,
                limit_s=1800,
            )
            missed += report("restart (all overdue at start)", restart, args.restart)
    if missed:
        print("\nMISSED: " + "; ".join(missed))
        raise SystemExit(1)
    print("\nAll bars met.")


if __name__ == "__main__":
    asyncio.run(main())
