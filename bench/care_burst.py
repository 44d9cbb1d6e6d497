"""10 000 care approvals in a burst: every one delivered once, and how fast against the channel's limit.

    python bench/care_burst.py [--messages 10000] [--limit 200] [--fail-rate 0.05]
                               [--card-messages 100] [--scenarios burst,backlog,flaky,cards] [--seed 7]

Each scenario runs the real bot (`python -m bot run`) against the Bot API emulator (flood limits
on) on a fresh SQLite database, with CARE_WEBHOOK_URL pointing at a real signed HTTP receiver
(tests/receivers.py WebhookReceiver, in a subprocess of its own so the approval loop here does not
share its GIL): it checks the HMAC signature of every request and counts 2xx answers per
Idempotency-Key (a key answered 2xx before gets 409). CARE_QUIET_HOURS=off, caps 20/day 50/week
(one customer per message anyway), CARE_SEND_PER_SECOND = `--limit` (the channel's own limit).

Set-up: `--messages` customers, each with an unpaid order and a payment reminder in state `queued`
(rendered text, due a minute ago), written with SQL straight into the database. Then the burst:
this process calls storage.care.approve_many, what "Approve all of this rule today" runs, 100
messages a press, five leads in turn, against the same database; the bot's 1-second sweep picks
the approved rows up. Measured: from the first approval to the last
delivery at the receiver (drain), deliveries per second over that time and its ratio to the limit
(bar: ≥ 0.8; achieved/s counts from the first to the last delivery), every key delivered exactly
once (bar), re-sends the receiver answered 409, rows `delivered` (bar: all), rows `failed`, the
bot's peak RSS (VmHWM).

Scenarios (the rows of the table):
  burst    the approval loop runs while the bot is up: drain = first approval → last delivery, the
           issue's "10 000 approvals in a burst". The rows carry no approval card (chat_id NULL, the
           shape an automatic rule leaves them in), so the bot has nothing to redraw.
  backlog  the same approvals made while the bot is down, then the bot starts (drain counts from its
           start): the sender alone against the channel's limit.
  flaky  as backlog, the receiver answers 500 to `--fail-rate` of the requests at random. Retries
         back off 30 s, 1 min, …: once every message has had its first try, and again whenever the
         receiver has been idle for a second with deliveries missing, the bench moves the bot's clock
         (SANDBOX_CLOCK_FILE) on by a minute, so the drain time does not include the back-off waits
         themselves (only the bot's 1-second sweep noticing); the table says how often it moved it.
  cards  as backlog, but as agents' approvals really leave the rows: each on an approval digest
         (10 a message, as the bot bundles them) the bench posts into one team group beforehand
         (limits briefly off for that). After each delivery the bot redraws the message's card, and
         Telegram (the emulator) limits edits in a group; `--card-messages` keeps this one short.
Exits 1 when a bar is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.clock import Clock  # noqa: E402  (after the path set-up above)
from crm.sending import Caps, parse_quiet_hours  # noqa: E402
from storage import care  # noqa: E402
from storage.care import Schedule  # noqa: E402
from storage.db import create_engine, make_sessionmaker  # noqa: E402
from storage.migrate import upgrade_async  # noqa: E402
from storage.models import CareMessage, Customer, Order  # noqa: E402

TOKEN = "5454545454:AAE-touchpoint-care-burst-token-0001"
BOT_ID = int(TOKEN.split(":")[0])
GROUP = -1009100000001
SECRET = "care-burst-webhook-secret"
DIGEST = 10  # storage.care.DIGEST_MAX: messages on one approval digest
CAP_DAY, CAP_WEEK = 20, 50  # the settings' maxima; each customer gets one message anyway
BAR_RATIO = 0.8
ZONE = "Asia/Shanghai"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The receiver, in a child process -------------------------------------------------------------------
def serve_receiver(fail_rate: float, seed: int) -> None:
    """Child: a WebhookReceiver that fails `fail_rate` of the requests with 500 at random and keeps
    the time of each 2xx. Prints its URL, then answers each 'stats' line on stdin with JSON."""
    from tests.receivers import Reply, WebhookReceiver

    class Receiver(WebhookReceiver):
        def __init__(self) -> None:
            super().__init__(SECRET)
            self.rng = random.Random(seed)
            self.injected = 0
            self.times: list[float] = []

        def _decide(self, key: str | None) -> Reply:
            with self._lock:
                if fail_rate and self.rng.random() < fail_rate:
                    self.injected += 1
                    return Reply(500, {"error": "injected failure"})
            reply = super()._decide(key)
            if 200 <= reply.status < 300:
                with self._lock:
                    self.times.append(time.time())
            return reply

        def stats(self) -> dict[str, Any]:
            with self._lock:
                statuses = Counter(str(r["status"]) for r in self._requests)
                return {
                    "requests": len(self._requests),
                    "statuses": dict(statuses),
                    "delivered": dict(self._delivered),
                    "duplicates": dict(self._duplicates),
                    "injected": self.injected,
                    "first": min(self.times, default=None),
                    "last": max(self.times, default=None),
                }

    with Receiver() as receiver:
        print(receiver.url, flush=True)
        for line in sys.stdin:
            if line.strip() == "stats":
                print(json.dumps(receiver.stats()), flush=True)
            elif line.strip() == "count":
                with receiver._lock:
                    print(json.dumps([len(receiver._delivered), len(receiver._requests)]), flush=True)


class ReceiverProcess:
    def __init__(self, fail_rate: float, seed: int) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--child-receiver",
                "--fail-rate",
                str(fail_rate),
                "--seed",
                str(seed),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise SystemExit("the receiver did not start")

    def ask(self, what: str) -> Any:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


# Set-up ---------------------------------------------------------------------------------------------
async def seed_rows(url: str, count: int, cards: list[int] | None, now: datetime) -> list[int]:
    """`count` customers, each with an unpaid order and a queued payment reminder; with `cards`,
    each row sits on one of those digest messages in GROUP, DIGEST to a message."""
    await upgrade_async(url)
    engine = create_engine(url)
    due = now - timedelta(minutes=1)
    async with engine.begin() as conn:
        for start in range(0, count, 1000):
            span = range(start, min(count, start + 1000))
            await conn.execute(
                Customer.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "id": n + 1,
                        "external_id": f"CB{n:05d}",
                        "nickname": f"顾客{n}",
                        "phone": f"1390000{n:05d}",
                        "created_at": now,
                    }
                    for n in span
                ],
            )
            await conn.execute(
                Order.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "id": n + 1,
                        "order_no": f"BURST{n:05d}",
                        "customer_pk": n + 1,
                        "created_at": due - timedelta(minutes=25),
                        "status": "created",
                        "amount_cents": 8800,
                        "source": "bench",
                    }
                    for n in span
                ],
            )
            await conn.execute(
                CareMessage.__table__.insert(),  # type: ignore[attr-defined]
                [
                    {
                        "id": n + 1,
                        "plan_key": f"payment_reminder:BURST{n:05d}",
                        "rule": "payment_reminder",
                        "channel": "webhook",
                        "customer_pk": n + 1,
                        "order_pk": n + 1,
                        "segments": "new",
                        "values": json.dumps({"order_no": f"BURST{n:05d}", "amount": "88.00"}),
                        "marketing": True,
                        "automatic": False,
                        "state": "queued",
                        "due_at": due,
                        "fire_at": None,
                        "text": f"亲，订单BURST{n:05d}还在等您付款，库存给您留着哦",
                        "locale": "zh_CN",
                        "chat_id": GROUP if cards else None,
                        "message_id": cards[n // DIGEST] if cards else None,
                        "attempts": 0,
                        "created_at": due,
                    }
                    for n in span
                ],
            )
    await engine.dispose()
    return list(range(1, count + 1))


async def post_digests(http: aiohttp.ClientSession, api: str, count: int) -> list[int]:
    """The approval digests the rows sit on, posted as the bot (limits off for the set-up only)."""
    async with http.post("/control/limits", json={"enforce": False}) as response:
        response.raise_for_status()
    ids = []
    for d in range(0, count, DIGEST):
        rows = [
            [{"text": f"✅ {n + 1}", "callback_data": f"c:a:{n + 1}"}]
            for n in range(d, min(count, d + DIGEST))
        ]
        body = {
            "chat_id": GROUP,
            "text": f"🗂 {len(rows)} care messages to approve",
            "reply_markup": {"inline_keyboard": rows},
        }
        async with http.post(f"/bot{TOKEN}/sendMessage", json=body) as response:
            response.raise_for_status()
            ids.append((await response.json())["result"]["message_id"])
    async with http.post("/control/limits", json={"enforce": True}) as response:
        response.raise_for_status()
    return ids


def start_emulator(port: int, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sandbox.emulator", "--port", str(port), "--enforce-limits"],
        cwd=ROOT,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )


def start_bot(url: str, api: str, workdir: Path, webhook: str, limit: float) -> subprocess.Popen:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TELEGRAM_", "DATABASE_", "CARE_", "EVENTS_"))
    }
    env.update(
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE=api,
        DATABASE_URL=url,
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        SANDBOX_CLOCK_FILE=str(workdir / "clock"),
        TIMER_SWEEP_SECONDS="1",
        TEAM_TIMEZONE=ZONE,
        CARE_WEBHOOK_URL=webhook + "/sms",
        CARE_WEBHOOK_SECRET=SECRET,
        CARE_QUIET_HOURS="off",
        CARE_CAP_PER_DAY=str(CAP_DAY),
        CARE_CAP_PER_WEEK=str(CAP_WEEK),
        CARE_SEND_PER_SECOND=str(limit),
        HTTP_PORT=str(free_port()),
    )
    log = workdir / "bot.log"
    bot = subprocess.Popen(
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while "Start polling" not in log.read_text():
        if bot.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the bot did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    return bot


# The burst ------------------------------------------------------------------------------------------
PRESS = 100  # messages one "Approve all of this rule today" press takes in the burst
async def approve_all(url: str, ids: list[int], clock: Clock) -> tuple[float, float]:
    """The burst: five leads pressing "Approve all" over and over, 100 messages a press
    (storage.care.approve_many, what the button runs). Returns wall-clock (first, last approval)."""
    engine = create_engine(url)
    schedule = Schedule(parse_quiet_hours("off"), Caps(CAP_DAY, CAP_WEEK), ZoneInfo(ZONE))
    won = 0
    async with make_sessionmaker(engine)() as session:
        first = time.time()
        for n, start in enumerate(range(0, len(ids), PRESS)):
            won += len(
                await care.approve_many(
                    session=session,
                    ids=ids[start : start + PRESS],
                    actor_id=7000 + n % 5,
                    actor_name=f"lead{n % 5}",
                    now=clock.now(),
                    schedule=schedule,
                )
            )
        last = time.time()
    await engine.dispose()
    if won != len(ids):
        raise SystemExit(f"only {won} of {len(ids)} approvals won")
    return first, last


def db_states(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return dict(db.execute("SELECT state, count(*) FROM care_message GROUP BY state").fetchall())


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def scenario(
    name: str,
    args: argparse.Namespace,
    workdir: Path,
    *,
    count: int,
    fail_rate: float,
    cards: bool,
    backlog: bool,
) -> dict[str, Any]:
    workdir = workdir / name
    workdir.mkdir()
    db = workdir / "care.db"
    url = f"sqlite+aiosqlite:///{db}"
    port = free_port()
    api = f"http://127.0.0.1:{port}"
    emulator = start_emulator(port, workdir / "emulator.log")
    receiver = ReceiverProcess(fail_rate, args.seed)
    bot: subprocess.Popen | None = None
    clock = Clock(workdir / "clock")
    try:
        async with aiohttp.ClientSession(api) as http:
            for _ in range(100):
                try:
                    async with http.get("/control/stats") as response:
                        response.raise_for_status()
                    break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            chat = {"id": GROUP, "type": "supergroup", "title": "care team"}
            async with http.post("/control/chats", json=chat) as response:
                response.raise_for_status()
            member = {
                "user": {"id": BOT_ID, "is_bot": True, "first_name": "touchpoint"},
                "status": "administrator",
            }
            async with http.post(f"/control/chats/{GROUP}/members", json=member) as response:
                response.raise_for_status()
            digests = await post_digests(http, api, count) if cards else None
            ids = await seed_rows(url, count, digests, clock.now())
            if backlog:  # approved while the bot was down; the drain counts from its start
                approved_from, approved_to = await approve_all(url, ids, clock)
                first = time.time()
                bot = start_bot(url, api, workdir, receiver.url, args.limit)
            else:
                bot = start_bot(url, api, workdir, receiver.url, args.limit)
                await asyncio.sleep(1.5)  # the bot's first passes: nothing is due yet
                approved_from, approved_to = await approve_all(url, ids, clock)
                first = approved_from
            moved, idle_since, seen = 0, time.monotonic(), (0, 0)
            deadline = time.monotonic() + args.timeout + (count * 4 if cards else count / args.limit * 3)
            while time.monotonic() < deadline:
                if bot.poll() is not None:
                    raise SystemExit(f"the bot exited; see {workdir / 'bot.log'}")
                delivered, requests = receiver.ask("count")
                if delivered >= count:
                    break
                if (delivered, requests) != seen:
                    seen, idle_since = (delivered, requests), time.monotonic()
                elif fail_rate and requests >= count and (not moved or time.monotonic() - idle_since > 1.0):
                    clock.advance_minutes(1)  # skip the retry back-off (30 s, 1 min, 2 min …)
                    moved, idle_since = moved + 1, time.monotonic()
                await asyncio.sleep(0.2)
            await asyncio.sleep(2.0)  # a second send of anything would show now
            rss = peak_rss_mb(bot.pid)
            bot.send_signal(signal.SIGTERM)  # deliveries under way finish first
            bot.wait(timeout=30)
            stats = receiver.ask("stats")
            async with http.get("/control/stats") as response:
                emu = await response.json()
    finally:
        if bot is not None and bot.poll() is None:
            bot.kill()
            bot.wait(timeout=30)
        receiver.stop()
        emulator.terminate()
        emulator.wait(timeout=15)
    states = db_states(db)
    expected = {f"tp-{mid}" for mid in ids}
    delivered: dict[str, int] = stats["delivered"]
    last = stats["last"] or time.time()
    drain = last - first
    sending = last - (stats["first"] or last)
    return {
        "scenario": name,
        "messages": count,
        "limit": args.limit,
        "approve_s": approved_to - approved_from,
        "drain_s": drain,
        "achieved": (len(delivered) - 1) / sending if sending > 0 else 0.0,
        "once": sum(1 for k, n in delivered.items() if n == 1 and k in expected),
        "twice_2xx": sum(1 for n in delivered.values() if n > 1),
        "resent_409": sum(stats["duplicates"].values()),
        "missing": len(expected - delivered.keys()),
        "rows_delivered": states.get("delivered", 0),
        "rows_failed": states.get("failed", 0),
        "injected_500": stats["injected"],
        "requests": stats["requests"],
        "clock_moves": moved,
        "rss_mb": rss,
        "tg_429": emu.get("too_many_requests", 0),
        "states": states,
    }


def report(results: list[dict[str, Any]]) -> list[str]:
    head = (
        "scenario",
        "messages",
        "limit/s",
        "approve s",
        "drain s",
        "achieved/s",
        "ratio",
        "delivered once",
        "dup 2xx",
        "re-sent (409)",
        "failed",
        "500s injected",
        "clock moved",
        "bot peak RSS",
    )
    rows = [
        (
            r["scenario"],
            str(r["messages"]),
            f"{r['limit']:g}",
            f"{r['approve_s']:.1f}",
            f"{r['drain_s']:.1f}",
            f"{r['achieved']:.1f}",
            f"{r['achieved'] / r['limit']:.2f}",
            f"{r['once']}/{r['messages']}",
            str(r["twice_2xx"]),
            str(r["resent_409"]),
            str(r["rows_failed"] + r["missing"]),
            str(r["injected_500"]),
            f"{r['clock_moves']} min",
            f"{r['rss_mb']:.0f} MB",
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print("\nfailed = rows in `failed` + keys never delivered; dup 2xx = keys answered 2xx twice;")
    print("re-sent = requests for a key already delivered (answered 409); approve s = the approval loop")
    missed = []
    for r in results:
        print(
            f"  {r['scenario']}: rows by state {r['states']} · requests {r['requests']}"
            f" · Telegram 429s {r['tg_429']}"
        )
        if r["once"] != r["messages"] or r["twice_2xx"] or r["rows_delivered"] != r["messages"]:
            missed.append(f"{r['scenario']}: every message delivered exactly once")
        if r["achieved"] < BAR_RATIO * r["limit"]:
            missed.append(f"{r['scenario']}: ≥ {BAR_RATIO:g} × the channel limit ({r['achieved']:.1f}/s)")
    return missed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument(
        "--limit", type=float, default=200.0, help="the channel's limit: CARE_SEND_PER_SECOND"
    )
    parser.add_argument("--fail-rate", type=float, default=0.05)
    parser.add_argument("--card-messages", type=int, default=100)
    parser.add_argument("--scenarios", default="burst,backlog,flaky,cards")
    parser.add_argument("--timeout", type=float, default=120.0, help="extra seconds a drain may take")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--child-receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_receiver:
        serve_receiver(args.fail_rate, args.seed)
        return
    plan = {
        "burst": {"count": args.messages, "fail_rate": 0.0, "cards": False, "backlog": False},
        "backlog": {"count": args.messages, "fail_rate": 0.0, "cards": False, "backlog": True},
        "flaky": {"count": args.messages, "fail_rate": args.fail_rate, "cards": False, "backlog": True},
        "cards": {"count": args.card_messages, "fail_rate": 0.0, "cards": True, "backlog": True},
    }
    results = []
    with tempfile.TemporaryDirectory(prefix="tp-care-burst-") as tmp:
        for name in [s.strip() for s in args.scenarios.split(",") if s.strip()]:
            print(f"{name}: {plan[name]['count']} messages …", flush=True)
            results.append(await scenario(name, args, Path(tmp), **plan[name]))
    missed = report(results)
    if missed:
        print("\nMISSED: " + "; ".join(missed))
        raise SystemExit(1)
    print("\nAll bars met.")


if __name__ == "__main__":
    asyncio.run(main())
