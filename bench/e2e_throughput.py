"""Full stack through the emulator on loopback: card lookups per second vs a bare aiogram echo bot.

    python bench/e2e_throughput.py [--customers 2000] [--workers 32] [--seconds 20]

Both bots poll the same Bot API emulator process; W simulated agents, each in a private chat with
the bot, send a message and wait for the reply, over and over. Touchpoint answers `/card <phone>`
(access check, i18n, SQLite look-up, card render); the echo bot answers the text back. Outbound
pacing is lifted for both (it models Telegram's limits, which the emulator does not enforce here),
so the figure is the stack's own capacity. Bar: Touchpoint ≥ 0.5 × echo.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "5151515151:AAE-touchpoint-bench-token-0123456789"
ECHO_TOKEN = "5252525252:AAE-echo-bench-token-000000000000"
BAR = 0.5
UNPACED = {
    "SEND_PER_CHAT_PER_SECOND": "100000",
    "SEND_CHAT_BURST": "100000",
    "SEND_PER_GROUP_PER_MINUTE": "1000000",
    "SEND_GLOBAL_PER_SECOND": "100000",
}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def last_call_seq(http: aiohttp.ClientSession, base: str) -> int:
    async with http.get(f"{base}/control/calls") as response:
        calls = await response.json()
    return max((c["seq"] for c in calls), default=0)


async def wait_for_polling(http: aiohttp.ClientSession, base: str, since: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        params = {"method": "getUpdates", "since": since}
        async with http.get(f"{base}/control/calls", params=params) as response:
            if [c for c in await response.json() if c["seq"] > since]:
                return
        await asyncio.sleep(0.2)
    raise SystemExit("bot did not start polling")


async def load(
    base: str, workers: int, seconds: float, texts: list[str], first_user: int
) -> tuple[int, list[float]]:
    latencies: list[float] = []
    done = 0
    stop_at = time.monotonic() + seconds

    async def agent(index: int, http: aiohttp.ClientSession) -> None:
        nonlocal done
        user = {"id": first_user + index, "first_name": f"Agent{index}", "language_code": "zh-hans"}
        rng = random.Random(index)
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            body = {"chat_id": user["id"], "from": user, "text": rng.choice(texts)}
            async with http.post(f"{base}/control/messages", json=body) as response:
                posted = await response.json()
            params = {"chat_id": user["id"], "after": posted["message"]["message_id"], "timeout": 30}
            async with http.get(f"{base}/control/wait", params=params) as response:
                result = await response.json()
            if result.get("timed_out"):
                raise SystemExit("a reply did not come within 30 s")
            latencies.append(time.perf_counter() - started)
            done += 1

    connector = aiohttp.TCPConnector(limit=workers * 2)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(agent(i, http) for i in range(workers)))
    return done, latencies


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


async def run_bot_load(
    name: str,
    cmd: list[str],
    env: dict[str, str],
    base: str,
    args: argparse.Namespace,
    texts: list[str],
    work: Path,
    first_user: int,
) -> float:
    # Private chats belong to one bot, so each bot gets its own simulated agents.
    async with aiohttp.ClientSession() as http:
        since = await last_call_seq(http, base)
    process = start(cmd, env, work / f"{name}.log")
    try:
        async with aiohttp.ClientSession() as http:
            await wait_for_polling(http, base, since)
        await load(base, args.workers, 3, texts, first_user)  # warm-up
        done, latencies = await load(base, args.workers, args.seconds, texts, first_user)
    finally:
        stop(process)
    rate = done / args.seconds
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"{name:<11} {rate:8.1f} replies/s   round trip p50 {p50 * 1000:6.1f} ms  p99 {p99 * 1000:6.1f} ms")
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="tp-bench-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    py = sys.executable
    emulator = start(
        [py, "-m", "sandbox.emulator", "--port", str(port)], dict(os.environ), work / "emulator.log"
    )
    db_path = work / "bench.db"
    env = dict(
        os.environ, DATABASE_URL=f"sqlite+aiosqlite:///{db_path}", TELEGRAM_API_BASE=base, LOG_LEVEL="WARNING"
    )
    env["ADMIN_IDS"] = ",".join(str(700_000 + i) for i in range(args.workers))
    env.update(UNPACED)
    try:
        subprocess.run(
            [py, "-m", "bot", "demo-data", "--customers", str(args.customers)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )
        db = sqlite3.connect(db_path)
        phones = [
            row[0] for row in db.execute("SELECT phone FROM customer WHERE phone IS NOT NULL LIMIT 500")
        ]
        db.close()
        ours = asyncio.run(
            run_bot_load(
                "touchpoint",
                [py, "-m", "bot", "run"],
                dict(env, TELEGRAM_BOT_TOKEN=TOKEN),
                base,
                args,
                [f"/card {p}" for p in phones],
                work,
                700_000,
            )
        )
        echo = asyncio.run(
            run_bot_load(
                "echo",
                [py, str(ROOT / "bench" / "echo_bot.py")],
                dict(env, TELEGRAM_BOT_TOKEN=ECHO_TOKEN),
                base,
                args,
                ["hello", "/card 13800138000", "你好"],
                work,
                800_000,
            )
        )
    finally:
        stop(emulator)
    ratio = ours / echo
    print(
        f"ratio touchpoint / echo: {ratio:.2f}   bar ≥ {BAR} → {'PASS' if ratio >= BAR else 'FAIL'}"
        f"   (logs: {work})"
    )
    return 0 if ratio >= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
