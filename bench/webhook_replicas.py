"""Issue 5: card look-ups per second through webhook mode, 1 and 2 replicas on PostgreSQL.

    .venv/bin/python bench/webhook_replicas.py [--customers 20000] [--lookups 3000] [--warmup 600]
        [--concurrency 16] [--chats-per-worker 4] [--phases echo,echo2,tp1,tp2]
        [--replica-cpu 0.4] [--wait-idle 300]

Set-up, all real processes on loopback: a fresh PostgreSQL database (created here, dropped at the
end) with `python -m bot demo-data`; the Bot API emulator (`python -m sandbox.emulator`, limits not
enforced); bot processes `python -m bot run` in webhook mode (WEBHOOK_URL, WEBHOOK_SECRET, an
HTTP_PORT each, one REDIS_URL for the update ledger and FSM, pacing limits lifted: we measure
look-ups, not Telegram's limits). The emulator's balancer (/control/webhook/backends) spreads the
webhook's deliveries round-robin over 1 or 2 replicas.

Load: `--concurrency` simulated agents, each cycling over its own private chats (the emulator keeps
one update in flight per chat, like Telegram), post `/card <phone | nickname | order no.>` through
/control/messages and wait for the card (/control/wait), closed loop. After a warm-up, a fixed number
of look-ups is timed: look-ups/s from the first post to the last card, client latency p50/p99 (post to
card), handler p99 from each replica's /metrics (`touchpoint_handler_seconds`, the difference over the
timed part; interpolated inside its bucket, and the exact share at or under the 100 ms bucket bound),
and the CPU seconds each process group spent per look-up (from /proc, via psutil).

Baseline, same run: a bare aiogram echo bot in webhook mode (bench/echo_bot.py: SimpleRequestHandler,
uvloop, acknowledged after handling), 1 and 2 processes, as the ceiling of this stack on this machine.
Bars: Touchpoint 2 replicas ≥ 1.5 × 1 replica; handler p99 ≤ 100 ms. Exits 1 if one is missed.
Writes bench/out/webhook_replicas-<time>.json.

Reading it on a small machine: everything shares the cores, and the load side (emulator and client)
costs about 3 ms of CPU per look-up, against about 3.5 ms in a Touchpoint replica; on 2 cores one
replica already leaves the machine nearly busy, so a second cannot add much (the CPU columns and
"busy" show it). The "replica-bound capacity" line projects what the replicas alone could do with a
core each; `--replica-cpu 0.4` caps each bot process (cgroup v1 CFS quota) so the replicas, not the
load side, are the bottleneck, which measures the scaling itself (shared PostgreSQL, Redis ledger,
balancer). Handler latency grows with the updates in flight per replica (`--concurrency`): an event
loop that needs ~3.5 ms per update and holds 16 at once answers in ~50 ms at best.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

ROOT = Path(__file__).resolve().parents[1]
PG_SERVER = os.environ.get("TOUCHPOINT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("TOUCHPOINT_BENCH_REDIS", "redis://127.0.0.1:6379/14")
TOUCHPOINT_TOKEN = "5353535353:AAE-touchpoint-webhook-bench-token-0"
ECHO_TOKEN = "5454545454:AAE-echo-webhook-bench-token-000000"
SECRET = "bench-webhook-secret_0123"
HOOK_PATH = "/tg/hook"
SCALE_BAR = 1.5
HANDLER_P99_BAR = 0.100
UNPACED = {
    "SEND_PER_CHAT_PER_SECOND": "100000",
    "SEND_CHAT_BURST": "100000",
    "SEND_PER_GROUP_PER_MINUTE": "1000000",
    "SEND_GLOBAL_PER_SECOND": "100000",
}
PHASES = {  # name: (bot, processes)
    "echo": ("echo", 1),
    "echo2": ("echo", 2),
    "tp1": ("touchpoint", 1),
    "tp2": ("touchpoint", 2),
}
BUCKET_RE = re.compile(r'^touchpoint_handler_seconds_bucket\{kind="(\w+)",le="([^"]+)"\} (\S+)$', re.M)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else float("nan")


# --------------------------------------------------------------------------- database and data


async def create_database() -> str:
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=5)
    name = f"touchpoint_bench_{secrets.token_hex(6)}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name


async def drop_database(name: str) -> None:
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres", timeout=5)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def pg_sessions(database: str) -> int:
    """Sessions ever opened on the database (pg_stat_database, PostgreSQL 14+): the pools' churn."""
    db = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        sql = "SELECT sessions FROM pg_stat_database WHERE datname = $1"
        return int(await db.fetchval(sql, database) or 0)
    finally:
        await db.close()


async def vacuum_analyze(database: str) -> None:
    """As after any bulk import: otherwise autovacuum wakes (a minute after the load) mid-measurement."""
    db = await asyncpg.connect(f"{PG_SERVER}/{database}")
    try:
        await db.execute("VACUUM ANALYZE")
    finally:
        await db.close()


@dataclass(frozen=True)
class Lookup:
    text: str
    expect: str  # a substring of the right card (the customer's nickname)


async def pick_lookups(database: str, per_kind: int) -> list[Lookup]:
    """Look-ups that each find exactly one customer: by phone, by nickname, by order no., interleaved."""
    db = await asyncpg.connect(f"{PG_SERVER}/{database}")
    try:
        await db.execute("SELECT setseed(0.42)")
        phones = await db.fetch(
            "SELECT phone, nickname FROM customer WHERE phone IN "
            "(SELECT phone FROM customer WHERE phone IS NOT NULL GROUP BY phone HAVING count(*) = 1) "
            "ORDER BY random() LIMIT $1",
            per_kind,
        )
        nicknames = await db.fetch(
            "SELECT nickname, nickname FROM customer WHERE nickname IN "
            "(SELECT nickname FROM customer GROUP BY nickname HAVING count(*) = 1) "
            "AND nickname NOT IN (SELECT name FROM customer WHERE name IS NOT NULL) "
            "AND position(' ' in nickname) = 0 ORDER BY random() LIMIT $1",
            per_kind,
        )
        orders = await db.fetch(
            "SELECT o.order_no, c.nickname FROM orders o JOIN customer c ON c.id = o.customer_pk "
            "ORDER BY random() LIMIT $1",
            per_kind,
        )
    finally:
        await db.close()
    kinds = [[Lookup(f"/card {a}", b) for a, b in rows] for rows in (phones, nicknames, orders)]
    mixed = [each for trio in zip(*kinds, strict=False) for each in trio]
    if not mixed:
        raise SystemExit("no look-ups: the demo data has no customers")
    return mixed


# --------------------------------------------------------------------------- processes


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_line(process: subprocess.Popen[bytes], log: Path, line: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{log.name}: the process exited\n{log.read_text()[-3000:]}")
        if line in log.read_text(errors="replace"):
            return
        time.sleep(0.1)
    raise SystemExit(f"{log.name}: no {line!r} within {seconds:.0f}s\n{log.read_text()[-3000:]}")


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")  # cgroup v1's cpu controller, as on this machine


class CpuCap:
    """`--replica-cpu`: each bot process in a cgroup of its own limited to that share of one core (CFS
    quota over a 10 ms period), so the replicas, not the load side, are the bottleneck."""

    PERIOD_US = 10_000

    def __init__(self, share: float) -> None:
        if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
            raise SystemExit(f"--replica-cpu needs cgroup v1's cpu controller at {CGROUP_CPU}")
        self.share = share
        self.groups: list[Path] = []

    def cap(self, pid: int) -> None:
        group = CGROUP_CPU / f"touchpoint-bench-{pid}"
        group.mkdir()
        self.groups.append(group)
        (group / "cpu.cfs_period_us").write_text(str(self.PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(int(self.PERIOD_US * self.share)))
        (group / "cgroup.procs").write_text(str(pid))

    def remove(self) -> None:
        """After the processes exited (an empty cgroup can be removed)."""
        for group in self.groups:
            group.rmdir()
        self.groups.clear()


def wait_for_idle(seconds: float, busy_below: float = 0.1) -> None:
    """A shared machine: wait (up to `seconds`) for a quiet 2 s before timing; the others column says
    how quiet the timed part then was."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and psutil.cpu_percent(interval=2) / 100 >= busy_below:
        pass


class CpuMeter:
    """CPU seconds (user + system) per process group, and the machine's busy share, between two marks.

    PostgreSQL counts the backends serving this run's database only (others may be testing beside us).
    """

    def __init__(self, groups: dict[str, list[int]], database: str) -> None:
        self.groups = groups
        self.database = database
        self._start: dict[int, float] = {}
        self._machine: Any = None
        self._wall = 0.0

    def _members(self) -> dict[str, list[int]]:
        groups = dict(self.groups)
        groups["postgres"], groups["redis"] = [], []
        for proc in psutil.process_iter(["name", "cmdline"]):
            cmdline = " ".join(proc.info["cmdline"] or [])
            if proc.info["name"] == "postgres" and self.database in cmdline.split():  # autovacuum too
                groups["postgres"].append(proc.pid)
            elif proc.info["name"] == "redis-server":
                groups["redis"].append(proc.pid)
        return groups

    @staticmethod
    def _cpu(pid: int) -> float:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            return 0.0
        return times.user + times.system

    def mark(self) -> None:
        self._start = {pid: self._cpu(pid) for pids in self._members().values() for pid in pids}
        self._machine = psutil.cpu_times()
        self._wall = time.monotonic()

    def since(self) -> tuple[dict[str, float], float]:
        """CPU seconds per group (a process born meanwhile counts from 0), "others" (every process not
        in this run: the machine's busy time minus ours), and the busy share of all cores."""
        spent = {
            group: sum(self._cpu(pid) - self._start.get(pid, 0.0) for pid in pids)
            for group, pids in self._members().items()
        }
        machine = psutil.cpu_times()
        idle = (machine.idle + getattr(machine, "iowait", 0.0)) - (
            self._machine.idle + getattr(self._machine, "iowait", 0.0)
        )
        capacity = (time.monotonic() - self._wall) * (psutil.cpu_count() or 1)
        spent["others"] = max(0.0, capacity - idle - sum(spent.values()))
        return spent, 1 - idle / capacity


# --------------------------------------------------------------------------- load


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float]
    wrong: int


async def drive(
    http: aiohttp.ClientSession,
    base: str,
    token: str,
    lookups: list[Lookup],
    users: list[dict[str, Any]],
    concurrency: int,
    check: Callable[[Lookup, str], bool],
) -> LoadResult:
    """`concurrency` agents, each cycling over its own chats, post look-ups and wait for the answer."""
    queue = iter(lookups)
    latencies: list[float] = []
    wrong = 0

    async def agent(own: list[dict[str, Any]]) -> None:
        nonlocal wrong
        for user in itertools.cycle(own):
            lookup = next(queue, None)
            if lookup is None:
                return
            started = time.perf_counter()
            body = {"chat_id": user["id"], "from": user, "text": lookup.text, "token": token}
            async with http.post(f"{base}/control/messages", json=body) as response:
                posted = await response.json()
            params = {"chat_id": user["id"], "after": posted["message"]["message_id"], "timeout": 60}
            async with http.get(f"{base}/control/wait", params=params) as response:
                result = await response.json()
            if result.get("timed_out"):
                raise SystemExit(f"no answer within 60 s to {lookup.text!r}")
            latencies.append(time.perf_counter() - started)
            wrong += not check(lookup, result["messages"][0].get("text", ""))

    started = time.perf_counter()
    await asyncio.gather(*(agent(users[i::concurrency]) for i in range(concurrency)))
    return LoadResult(time.perf_counter() - started, latencies, wrong)


# --------------------------------------------------------------------------- handler histogram


def read_buckets(metrics_text: str) -> dict[float, float]:
    """Cumulative counts per upper bound, summed over update kinds."""
    buckets: dict[float, float] = {}
    for _kind, bound, count in BUCKET_RE.findall(metrics_text):
        key = float("inf") if bound == "+Inf" else float(bound)
        buckets[key] = buckets.get(key, 0.0) + float(count)
    return buckets


def histogram_quantile(buckets: dict[float, float], q: float) -> float:
    """Prometheus' histogram_quantile: linear inside the bucket the quantile falls in."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] == 0:
        return float("nan")
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-9)
        lower, below = bound, buckets[bound]
    return lower


def share_within(buckets: dict[float, float], bound: float) -> float:
    total = buckets.get(float("inf"), 0.0)
    return buckets.get(bound, 0.0) / total if total else float("nan")


# --------------------------------------------------------------------------- phases


@dataclass
class PhaseResult:
    name: str
    bot: str
    processes: int
    lookups: int
    wrong: int
    seconds: float
    per_second: float
    client_p50_ms: float
    client_p99_ms: float
    handler_p99_ms: float | None = None
    handler_p50_ms: float | None = None
    handler_within_100ms: float | None = None
    handled: float | None = None
    per_replica: list[float] = field(default_factory=list)
    cpu_ms_per_lookup: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0
    load_before: float = 0.0
    pg_sessions_opened: int = 0  # new PostgreSQL connections during the timed part (pool overflow)
    # What the bot processes alone could do with a core each: processes × 1 s ÷ their CPU per look-up.
    replica_bound_per_second: float = 0.0


@dataclass
class Context:
    args: argparse.Namespace
    base: str
    database: str
    lookups: list[Lookup]
    work: Path
    emulator_pid: int
    cpu_cap: CpuCap | None = None
    first_user: int = 700_000_000


def bot_env(ctx: Context, bot: str, port: int, hook_port: int, users: list[dict[str, Any]]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DATABASE_", "WEBHOOK_"))}
    env.update(
        UNPACED,
        TELEGRAM_API_BASE=ctx.base,
        TELEGRAM_BOT_TOKEN=TOUCHPOINT_TOKEN if bot == "touchpoint" else ECHO_TOKEN,
        DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{ctx.database}",
        REDIS_URL=REDIS_URL,
        ADMIN_IDS=",".join(str(u["id"]) for u in users),
        WEBHOOK_URL=f"http://127.0.0.1:{hook_port}{HOOK_PATH}",  # every replica names the same address
        WEBHOOK_SECRET=SECRET,
        WEBHOOK_MAX_CONNECTIONS=str(ctx.args.max_connections),
        HTTP_PORT=str(port),
        LOG_LEVEL="INFO",  # "webhook set" is an INFO line; nothing is logged per update
        PYTHONUNBUFFERED="1",
    )
    env.pop("EVENTS_SECRET", None)
    return env


async def run_phase(ctx: Context, name: str) -> PhaseResult:
    bot, processes = PHASES[name]
    args = ctx.args
    token = TOUCHPOINT_TOKEN if bot == "touchpoint" else ECHO_TOKEN
    # Fresh users (private chats) per phase, so no chat carries another phase's history.
    chats = args.concurrency * args.chats_per_worker
    users = [
        {"id": ctx.first_user + i, "is_bot": False, "first_name": f"Agent{i}", "language_code": "zh-hans"}
        for i in range(chats)
    ]
    ctx.first_user += chats
    ports = [free_port() for _ in range(processes)]
    procs = []
    for index, port in enumerate(ports):
        env = bot_env(ctx, bot, port, ports[0], users)
        cmd = [sys.executable, "-m", "bot", "run"] if bot == "touchpoint" else [
            sys.executable, str(ROOT / "bench" / "echo_bot.py")
        ]
        log = ctx.work / f"{name}-{index}.log"
        procs.append((start(cmd, env, log), log))
        if ctx.cpu_cap is not None:
            ctx.cpu_cap.cap(procs[-1][0].pid)
    try:
        for process, log in procs:
            await asyncio.to_thread(wait_for_line, process, log, "webhook set")
        urls = [f"http://127.0.0.1:{port}{HOOK_PATH}" for port in ports]
        timeout = aiohttp.ClientTimeout(total=120)
        connector = aiohttp.TCPConnector(limit=args.concurrency * 2 + 8)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
            async with http.post(
                f"{ctx.base}/control/webhook/backends", json={"urls": urls, "token": token}
            ) as response:
                response.raise_for_status()

            def check(lookup: Lookup, text: str) -> bool:
                return text == lookup.text if bot == "echo" else lookup.expect in text

            pool = ctx.lookups  # the timed part goes on where the warm-up stopped
            warm = [pool[i % len(pool)] for i in range(args.warmup)]
            await drive(http, ctx.base, token, warm, users, args.concurrency, check)
            timed = [pool[i % len(pool)] for i in range(args.warmup, args.warmup + args.lookups)]
            if args.wait_idle:
                await asyncio.to_thread(wait_for_idle, args.wait_idle)
            before = [await read_metrics(http, port) for port in ports] if bot == "touchpoint" else []
            meter = CpuMeter(
                {
                    "bots": [p.pid for p, _ in procs],
                    "emulator": [ctx.emulator_pid],
                    "client": [os.getpid()],
                },
                ctx.database,
            )
            load_before = os.getloadavg()[0]
            profilers = start_profilers(ctx, name, [p.pid for p, _ in procs]) if args.profile else []
            sessions_before = await pg_sessions(ctx.database)
            meter.mark()
            result = await drive(http, ctx.base, token, timed, users, args.concurrency, check)
            cpu, busy = meter.since()
            await asyncio.sleep(0.6)  # the statistics collector reports every 500 ms
            sessions_opened = await pg_sessions(ctx.database) - sessions_before
            for profiler in profilers:  # py-spy writes its profile on SIGINT
                profiler.send_signal(signal.SIGINT)
                profiler.wait(timeout=60)
            after = [await read_metrics(http, port) for port in ports] if bot == "touchpoint" else []
            async with http.post(
                f"{ctx.base}/control/webhook/backends", json={"urls": [], "token": token}
            ) as response:
                response.raise_for_status()
    finally:
        for process, _ in procs:
            stop(process)
        if ctx.cpu_cap is not None:
            ctx.cpu_cap.remove()
    n = len(result.latencies)
    phase = PhaseResult(
        name=name,
        bot=bot,
        processes=processes,
        lookups=n,
        wrong=result.wrong,
        seconds=round(result.seconds, 3),
        per_second=round(n / result.seconds, 1),
        client_p50_ms=round(percentile(result.latencies, 50) * 1000, 1),
        client_p99_ms=round(percentile(result.latencies, 99) * 1000, 1),
        cpu_ms_per_lookup={g: round(s * 1000 / n, 2) for g, s in cpu.items()},
        replica_bound_per_second=round(processes * n / cpu["bots"], 1) if cpu["bots"] else 0.0,
        machine_busy=round(busy, 3),
        pg_sessions_opened=sessions_opened,
        load_before=round(load_before, 2),
    )
    if after:
        diffs = [
            {b: a.get(b, 0.0) - pre.get(b, 0.0) for b in a} for pre, a in zip(before, after, strict=True)
        ]
        total = {b: sum(d.get(b, 0.0) for d in diffs) for b in diffs[0]}
        phase.handler_p99_ms = round(histogram_quantile(total, 0.99) * 1000, 1)
        phase.handler_p50_ms = round(histogram_quantile(total, 0.50) * 1000, 1)
        phase.handler_within_100ms = round(share_within(total, HANDLER_P99_BAR), 4)
        phase.handled = total.get(float("inf"), 0.0)
        phase.per_replica = [d.get(float("inf"), 0.0) for d in diffs]
    return phase


def start_profilers(ctx: Context, name: str, bot_pids: list[int]) -> list[subprocess.Popen[bytes]]:
    """py-spy over the timed part, one profile per bot process and one of the emulator, written next
    to the logs. Sampling costs CPU too: figures of a profiled run are for finding hot spots only."""
    py_spy = Path(sys.executable).with_name("py-spy")
    if not py_spy.exists():
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    targets = [(f"{name}-{i}", pid) for i, pid in enumerate(bot_pids)]
    targets.append((f"{name}-emulator", ctx.emulator_pid))
    return [
        subprocess.Popen(
            [str(py_spy), "record", "--pid", str(pid), "--rate", "200", "--format", ctx.args.profile,
             "--output", str(ctx.work / f"{label}.{'svg' if ctx.args.profile == 'flamegraph' else 'txt'}")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for label, pid in targets
    ]


async def read_metrics(http: aiohttp.ClientSession, port: int) -> dict[float, float]:
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        return read_buckets(await response.text())


async def forget_ledger(token: str) -> None:
    """Drop the update ledger's keys this run left in Redis (the bot id is the token's first part)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(REDIS_URL)
    try:
        pattern = f"touchpoint:update:{token.split(':')[0]}:*"
        keys = [key async for key in redis.scan_iter(pattern, count=1000)]
        for start_at in range(0, len(keys), 1000):
            await redis.delete(*keys[start_at : start_at + 1000])
    finally:
        await redis.aclose()


# --------------------------------------------------------------------------- report


def print_table(results: list[PhaseResult]) -> None:
    groups = ["bots", "emulator", "postgres", "redis", "client", "others"]
    print()
    print(
        f"{'phase':<6} {'bot':<10} {'proc':>4} {'look-ups/s':>10} {'client p50':>10} {'p99':>8} "
        f"{'handler p50':>11} {'p99':>7} {'≤100ms':>7}  "
        + " ".join(f"{g[:8]:>8}" for g in groups)
        + f" {'busy':>5} {'load':>5} {'pg conn':>7}"
    )
    for r in results:
        handler = (
            f"{r.handler_p50_ms:>9.1f}ms {r.handler_p99_ms:>5.1f}ms {r.handler_within_100ms:>7.2%}"
            if r.handler_p99_ms is not None
            else f"{'-':>11} {'-':>7} {'-':>7}"
        )
        cpu = " ".join(f"{r.cpu_ms_per_lookup.get(g, 0.0):>8.2f}" for g in groups)
        print(
            f"{r.name:<6} {r.bot:<10} {r.processes:>4} {r.per_second:>10.1f} {r.client_p50_ms:>8.1f}ms "
            f"{r.client_p99_ms:>6.1f}ms {handler}  {cpu} {r.machine_busy:>5.0%} {r.load_before:>5.2f}"
            f" {r.pg_sessions_opened:>7}"
        )
    print(
        "(CPU columns: ms of CPU per look-up in each process group during the timed part, others = "
        "processes not in this run; busy: share of all cores in use; load: 1-min load average before;\n"
        " pg conn: PostgreSQL connections opened during the timed part)"
    )


def verdict(results: list[PhaseResult]) -> tuple[list[str], bool]:
    by_name = {r.name: r for r in results}
    lines, ok = [], True
    if "tp1" in by_name and "tp2" in by_name:
        ratio = by_name["tp2"].per_second / by_name["tp1"].per_second
        met = ratio >= SCALE_BAR
        ok &= met
        lines.append(
            f"scaling: 2 replicas / 1 replica = {ratio:.2f}   bar ≥ {SCALE_BAR} → "
            + ("MET" if met else "MISSED")
        )
    if "echo" in by_name and "echo2" in by_name:
        echo_ratio = by_name["echo2"].per_second / by_name["echo"].per_second
        lines.append(f"echo ceiling: 2 processes / 1 = {echo_ratio:.2f}")
    if "tp1" in by_name and "tp2" in by_name:
        one, two = by_name["tp1"].replica_bound_per_second, by_name["tp2"].replica_bound_per_second
        lines.append(
            f"replica-bound capacity (a core per replica; processes × 1 s ÷ their CPU per look-up): "
            f"{one:.0f}/s → {two:.0f}/s = {two / one:.2f}× (a projection, not the bar)"
        )
    for name, echo in (("tp1", "echo"), ("tp2", "echo2")):
        if name in by_name and echo in by_name:
            share = by_name[name].per_second / by_name[echo].per_second
            lines.append(f"{name} / {echo}: {share:.2f} of the ceiling")
    for r in results:
        if r.handler_p99_ms is not None:
            met = r.handler_within_100ms is not None and r.handler_within_100ms >= 0.99
            ok &= met
            lines.append(
                f"{r.name}: handler p99 ≈ {r.handler_p99_ms:.1f} ms ({r.handler_within_100ms:.2%} ≤ 100 ms)"
                f"   bar p99 ≤ 100 ms → {'MET' if met else 'MISSED'}"
            )
        if r.wrong:
            ok = False
            lines.append(f"{r.name}: {r.wrong} answers were not the expected card or echo")
    return lines, ok


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="tp-webhook-bench-"))
    database = await create_database()
    emulator = None
    try:
        print(f"database {database}: demo data for {args.customers:,} customers …", flush=True)
        env = dict(os.environ, DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}")
        demo = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "demo-data", "--customers", str(args.customers),
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await demo.communicate()
        if demo.returncode:
            raise SystemExit(f"demo-data failed:\n{output.decode(errors='replace')}")
        await vacuum_analyze(database)
        lookups = await pick_lookups(database, per_kind=max(1, args.lookups // 3))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = work / "emulator.log"
        emulator = start([sys.executable, "-m", "sandbox.emulator", "--port", str(port)], {**os.environ}, log)
        await asyncio.to_thread(wait_for_line, emulator, log, "Telegram Bot API emulator on")
        cap = CpuCap(args.replica_cpu) if args.replica_cpu else None
        ctx = Context(args, base, database, lookups, work, emulator.pid, cap)
        results = []
        for name in args.phases.split(","):
            print(f"phase {name} …", flush=True)
            results.append(await run_phase(ctx, name))
            r = results[-1]
            print(f"  {r.per_second:.1f} look-ups/s, client p99 {r.client_p99_ms:.1f} ms", flush=True)
    finally:
        if emulator is not None:
            stop(emulator)
        await drop_database(database)
        await forget_ledger(TOUCHPOINT_TOKEN)
    print_table(results)
    lines, ok = verdict(results)
    print("\n".join(lines))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"webhook_replicas-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(
        json.dumps(
            {
                "args": vars(args),
                "cores": psutil.cpu_count(),
                "phases": [asdict(r) for r in results],
                "verdict": lines,
                "ok": ok,
                "logs": str(work),
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    print(f"written {path} (logs: {work})")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--lookups", type=int, default=3000, help="timed look-ups per phase")
    parser.add_argument("--warmup", type=int, default=600, help="untimed look-ups per phase first")
    parser.add_argument("--concurrency", type=int, default=16, help="agents waiting for a card at once")
    parser.add_argument("--chats-per-worker", type=int, default=4)
    parser.add_argument("--max-connections", type=int, default=100, help="the webhook's max_connections")
    parser.add_argument(
        "--profile", choices=["flamegraph", "raw"], help="py-spy the bot processes and the emulator"
    )
    parser.add_argument(
        "--wait-idle", type=float, default=0, help="wait up to this many seconds for an idle machine"
    )
    parser.add_argument(
        "--replica-cpu", type=float, help="cap each bot process at this share of a core (e.g. 0.4)"
    )
    parser.add_argument("--phases", default="echo,echo2,tp1,tp2", help=f"of {', '.join(PHASES)}")
    args = parser.parse_args()
    if unknown := set(args.phases.split(",")) - set(PHASES):
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
