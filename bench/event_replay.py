"""Replaying a large event file through the importer (issue 4): memory must not grow with the file.

    python bench/event_replay.py [--events 1000000] [--customers 200000] [--keep]

Writes a JSON Lines file of N shop events (orders created, then paid, shipped and signed in a
realistic mix, over --customers customers), starts the Bot API emulator and the real bot
(`python -m bot run`, fresh SQLite database, events API on) and runs the real importer
(`python -m bot import events FILE`) against it, sampling the resident memory (RSS) of both
processes every second. Bars: the importer's RSS flat — its peak no more than 20 MB over what it
used after the first 10 % of the file — and the bot's likewise within 60 MB (its caches and
SQLite's page cache fill early and then stay); every event accepted exactly once (shop_event rows
= events in the file). Prints the RSS at 10 %, 50 % and 100 % of the file, the peak, and the rate.
There is no baseline to compare with: the bar is flatness, not speed (the events API benchmark,
bench/event_api.py, has the speed bars).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SECRET = "bench-replay-secret"
IMPORTER_GROWTH_MB, BOT_GROWTH_MB = 20, 60


def write_events(path: Path, count: int, customers: int, seed: int = 7) -> None:
    """Orders created, and most of them paid, shipped and signed later in the file (4 events each)."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    orders = count // 4 + 1
    written = 0
    with path.open("w", encoding="utf-8") as out:
        pending: list[tuple[int, str]] = []  # (order, next step) waiting to happen
        for n in range(orders):
            at = (start + timedelta(seconds=n * 7)).isoformat()
            order = f"R{n:08d}"
            data = {
                "order_id": order,
                "customer_id": f"RC{rng.randrange(customers):07d}",
                "amount": f"{rng.randint(9, 999)}.00",
                "province": rng.choice(["浙江", "广东", "新疆"]),
            }
            created = {"id": f"c-{order}", "type": "order.created", "occurred_at": at, "data": data}
            out.write(json.dumps(created, ensure_ascii=False) + "\n")
            written += 1
            pending.append((n, "order.paid"))
            # Move a few older orders one step on, so later events refer to stored orders.
            for _ in range(3):
                if written >= count or not pending:
                    break
                index = rng.randrange(max(1, len(pending) - 50)) if len(pending) > 50 else None
                if index is None:
                    break
                old, step = pending.pop(index)
                extra = {"carrier": "中通", "tracking_no": f"ZT{old}"} if step == "order.shipped" else {}
                event = {"id": f"{step}-{old}", "type": step, "occurred_at": at,
                         "data": {"order_id": f"R{old:08d}", **extra}}  # fmt: skip
                out.write(json.dumps(event, ensure_ascii=False) + "\n")
                written += 1
                after = {"order.paid": "order.shipped", "order.shipped": "order.signed"}.get(step)
                if after:
                    pending.append((old, after))
            if written >= count:
                break


def rss_mb(process: psutil.Process) -> float:
    try:
        return process.memory_info().rss / 2**20
    except psutil.Error:
        return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    from tests.e2e.chat import Emulator
    from tests.e2e.conftest import bot_env, free_port, launch_bot, stop, wait_until

    workdir = Path(tempfile.mkdtemp(prefix="touchpoint-replay-"))
    events = workdir / "events.jsonl"
    began = time.monotonic()
    write_events(events, args.events, args.customers)
    lines = sum(1 for _ in events.open(encoding="utf-8"))
    size = events.stat().st_size / 2**20
    print(f"{lines:,} events written in {time.monotonic() - began:.0f} s ({size:.0f} MB)")

    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulator", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, stdout=(workdir / "emulator.log").open("w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        emu = Emulator(f"http://127.0.0.1:{port}")
        wait_until(lambda: emu.call("GET", "/control/stats") is not None, what="the emulator")
        db = workdir / "touchpoint.db"
        env = bot_env(f"sqlite+aiosqlite:///{db}", emu.base_url, workdir)
        for test_only in ("SANDBOX_CLOCK_FILE", "TIMER_SWEEP_SECONDS"):
            env.pop(test_only)
        env["EVENTS_SECRET"] = SECRET
        bot = launch_bot(env, workdir / "bot.log")
        try:
            bot_ps = psutil.Process(bot.pid)
            started = time.monotonic()
            command = ["import", "events", str(events), "--errors", str(workdir / "e.txt")]
            importer = subprocess.Popen(
                [sys.executable, "-m", "bot", *command],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            importer_ps = psutil.Process(importer.pid)
            samples: list[tuple[float, float, float, int]] = []  # (seconds, importer MB, bot MB, rows)
            while importer.poll() is None:
                time.sleep(1)
                with sqlite3.connect(db, timeout=30) as conn:
                    rows = conn.execute("SELECT count(*) FROM shop_event").fetchone()[0]
                samples.append((time.monotonic() - started, rss_mb(importer_ps), rss_mb(bot_ps), rows))
            output = importer.stdout.read() if importer.stdout else ""
            seconds = time.monotonic() - started
        finally:
            stop(bot)
        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT count(*) FROM shop_event").fetchone()[0]
    finally:
        stop(emulator)

    def at(fraction: float) -> tuple[float, float]:
        target = fraction * lines
        alive = [s for s in samples if s[1] > 0]  # the importer's last sample may come after it ended
        for _s, imp, bot_mb, rows in alive:
            if rows >= target:
                return imp, bot_mb
        return alive[-1][1], alive[-1][2]

    ten, half, full = at(0.1), at(0.5), at(0.99)
    importer_peak = max(s[1] for s in samples)
    bot_peak = max(s[2] for s in samples)
    print()
    print("process  | RSS at 10 % | at 50 % | at 100 % | peak   | growth after 10 %")
    print("---------+-------------+---------+----------+--------+------------------")
    print(f"importer | {ten[0]:8.0f} MB | {half[0]:4.0f} MB | {full[0]:5.0f} MB | {importer_peak:3.0f} MB | "
          f"{importer_peak - ten[0]:+.0f} MB (bar ≤ {IMPORTER_GROWTH_MB})")  # fmt: skip
    print(f"bot      | {ten[1]:8.0f} MB | {half[1]:4.0f} MB | {full[1]:5.0f} MB | {bot_peak:3.0f} MB | "
          f"{bot_peak - ten[1]:+.0f} MB (bar ≤ {BOT_GROWTH_MB})")  # fmt: skip
    print(f"\n{lines:,} events in {seconds:.0f} s: {lines / seconds:,.0f} events/s; stored {stored:,}")
    print(output.strip().splitlines()[-1] if output.strip() else "(no importer output)")
    ok = (
        importer_peak - ten[0] <= IMPORTER_GROWTH_MB
        and bot_peak - ten[1] <= BOT_GROWTH_MB
        and stored == lines
        and importer.returncode == 0
    )
    print("All bars met." if ok else "A bar was missed.")
    if args.keep:
        print(f"kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
