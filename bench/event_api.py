"""Event API benchmark (issue 4) against a bare baseline, both over HTTP on SQLite:

    python bench/event_api.py [--single 20000] [--batches 500] [--batch-size 100] [--concurrency 32]
                              [--batch-concurrency 1] [--generators 1] [--profile]

Ours is the real bot process (`python -m bot run`, started as the end-to-end tests start it, with a
fresh temporary SQLite database, against the Bot API emulator), so what is measured is whatever
POST /api/events does when the bot runs: signature check, validation, EventIntake.ingest, the
records, the follow-up cancellations and whatever else is on that path by then. The baseline is a
bare aiohttp handler in this file, its own subprocess (on uvloop, as the bot): it checks the
timestamp and the HMAC signature and inserts each raw event (id, type, occurred_at, payload) with
the stdlib sqlite3 into a WAL database (synchronous=NORMAL, as the bot's engine sets it), INSERT OR
IGNORE on id, one transaction per request. Both sides get the same request bodies, in the same
order, from the same load generator: `--generators` processes (aiohttp client, uvloop), each with
`--concurrency` connections in total split between them, each signing its requests as it sends
them (fresh timestamp). The mix: order.created for many distinct orders of --customers customers
(repeat buyers among them), and order.paid / order.shipped for orders created at least a few hundred
requests earlier (so they are stored by then). Phases, per side: a warm-up of --warmup single
events (not reported), --single single-event requests, then --batches requests of --batch-size
events each (new orders, and payments and shipments of the orders from the single phase).

Bars (ours): single events ≥ 1 000 requests/s with p99 ≤ 50 ms; batches ≥ 5 000 events/s with
p99 ≤ 50 ms per request (a batch of 100 is one request: its 100 events are all stored, or none,
when it answers, so the per-request latency is each of its events' latency too); no errors; the
bot's shop_event table holds exactly the accepted events; a replayed event id answers 200 as a
duplicate. Ratio = ours / baseline throughput in the same run. Batches go over
--batch-concurrency connections (1, as a sync job or `import events` posts them): by Little's law
a 50 ms p99 for 100-event requests over C busy connections needs C × 2 000 events/s, so 32
connections of batches would measure queueing, not the API (the bare baseline itself then answers
in about 45 ms). Exits 1 when a bar is missed.
The machine's cores are shared by the server under test and the generator(s): the table shows
the CPU each used, so a generator that caps the figures is visible (gen CPU% near 100 per
generator process). --profile attaches py-spy (pip install py-spy; not a project dependency) to
the bot for the single and batch phases, sampling the thread that holds the GIL, and prints where
its Python time goes (the figures of a profiled run are a little lower). --keep keeps the work
directory (bot.log, the databases, the raw stacks) for a closer look.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SINGLE_RPS_BAR = 1000.0
BATCH_EPS_BAR = 5000.0
P99_BAR_MS = 50.0
SEED = 4
PAID, SHIPPED = 0.20, 0.10  # share of payments and shipments among events, when an order is ready
GAP_REQUESTS = 400  # a payment/shipment refers to an order sent at least this many requests earlier
SECRET = "bench-events-secret"
PROFILE_HZ = 100
CLK_TCK = os.sysconf("SC_CLK_TCK")


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))] if ordered else float("nan")


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (not its children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


# Payloads -----------------------------------------------------------------------------------------
CARRIERS = ("SF", "ZTO", "YTO", "STO", "YD", "JD", "EMS")
PROVINCES = ("广东", "浙江", "江苏", "上海", "北京", "四川", "湖北", "山东", "福建", "河南")
SOURCES = ("taobao", "jd", "pdd", "douyin", "wechat")


class Stream:
    """One generator's events: its own orders (so nothing it sends depends on another generator's
    progress), customers shared by all."""

    def __init__(self, number: int, customers: int) -> None:
        self.rng = random.Random(SEED * 1000 + number)
        self.tag = f"g{number}"
        self.customers = customers
        self.request = 0  # requests built so far: an order is "ready" GAP_REQUESTS after its own
        self.unpaid: deque[tuple[int, str]] = deque()
        self.unshipped: deque[tuple[int, str]] = deque()
        self.orders = 0
        self.events = 0
        self.kinds: Counter[str] = Counter()

    def barrier(self) -> None:
        """Everything built so far is stored before what is built next is sent (a new phase)."""
        self.request += GAP_REQUESTS

    def _ready(self, queue: deque[tuple[int, str]]) -> bool:
        return bool(queue) and queue[0][0] <= self.request - GAP_REQUESTS

    def event(self, at: str) -> dict[str, Any]:
        self.events += 1
        event_id = f"{self.tag}-e{self.events:08d}"
        roll = self.rng.random()
        if roll < PAID and self._ready(self.unpaid):
            _, order = self.unpaid.popleft()
            self.unshipped.append((self.request, order))
            kind, data = "order.paid", {"order_id": order}
        elif roll < PAID + SHIPPED and self._ready(self.unshipped):
            _, order = self.unshipped.popleft()
            kind = "order.shipped"
            data = {
                "order_id": order,
                "carrier": self.rng.choice(CARRIERS),
                "tracking_no": f"{self.rng.randrange(10**11, 10**12)}",
            }
        else:
            self.orders += 1
            order = f"{self.tag}-O{self.orders:08d}"
            self.unpaid.append((self.request, order))
            kind = "order.created"
            data = {
                "order_id": order,
                "customer_id": f"C{self.rng.randrange(self.customers):07d}",
                "amount": f"{self.rng.randrange(990, 99_900) / 100:.2f}",
                "source": self.rng.choice(SOURCES),
                "province": self.rng.choice(PROVINCES),
                "created_at": at,
            }
        self.kinds[kind] += 1
        return {"id": event_id, "type": kind, "occurred_at": at, "data": data}

    def bodies(self, requests: int, size: int) -> list[bytes]:
        """`requests` request bodies: one event each (size 0) or a list of `size` events."""
        out = []
        for _ in range(requests):
            at = time.strftime("%Y-%m-%dT%H:%M:%S+08:00", time.gmtime(time.time() + 8 * 3600))
            if size:
                body: Any = [self.event(at) for _ in range(size)]
            else:
                body = self.event(at)
            out.append(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())
            self.request += 1
        return out


def write_phases(args: argparse.Namespace, workdir: Path) -> dict[str, list[Path]]:
    """Request bodies per phase and generator, one per line, built once for both sides."""
    streams = [Stream(g, args.customers) for g in range(args.generators)]
    phases = {
        "warmup": (args.warmup, 0),
        "single": (args.single, 0),
        "batch": (args.batches, args.batch_size),
    }
    files: dict[str, list[Path]] = {}
    for phase, (requests, size) in phases.items():
        files[phase] = []
        for g, stream in enumerate(streams):
            share = requests // args.generators + (1 if g < requests % args.generators else 0)
            path = workdir / f"{phase}-{g}.jsonl"
            path.write_bytes(b"\n".join(stream.bodies(share, size)))
            files[phase].append(path)
        for stream in streams:
            stream.barrier()
    kinds = sum((s.kinds for s in streams), Counter())
    progress("payloads: " + ", ".join(f"{k} {v:,}" for k, v in sorted(kinds.items())))
    return files


# Load generator (child) ---------------------------------------------------------------------------
async def generate(args: argparse.Namespace, bodies: list[bytes]) -> dict[str, Any]:
    import aiohttp

    secret = args.secret.encode()
    latencies = [0.0] * len(bodies)
    statuses: Counter[int] = Counter()
    samples: list[str] = []
    accepted = duplicates = 0
    indices = iter(range(len(bodies)))
    connector = aiohttp.TCPConnector(limit=args.concurrency, limit_per_host=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal accepted, duplicates
            for i in indices:
                body = bodies[i]
                stamp = str(int(time.time()))
                headers = {
                    "Content-Type": "application/json",
                    "X-Touchpoint-Timestamp": stamp,
                    "X-Touchpoint-Signature": sign(secret, stamp, body),
                }
                started = time.perf_counter()
                try:
                    async with http.post(args.url, data=body, headers=headers) as response:
                        answer = await response.read()
                        status = response.status
                except (aiohttp.ClientError, OSError) as exc:
                    status, answer = -1, repr(exc).encode()
                latencies[i] = time.perf_counter() - started
                statuses[status] += 1
                if status == 200:
                    counts = json.loads(answer)
                    accepted += counts["accepted"]
                    duplicates += counts["duplicates"]
                elif len(samples) < 5:
                    samples.append(f"{status}: {answer[:300].decode(errors='replace')}")

        await asyncio.sleep(max(0.0, args.start_at - time.time()))
        cpu, began = time.process_time(), time.time()
        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
        ended, cpu = time.time(), time.process_time() - cpu
    return {
        "began": began,
        "ended": ended,
        "cpu_s": cpu,
        "latencies": latencies,
        "statuses": {str(k): v for k, v in statuses.items()},
        "samples": samples,
        "accepted": accepted,
        "duplicates": duplicates,
    }


# Baseline server (child) --------------------------------------------------------------------------
def serve_baseline(args: argparse.Namespace) -> None:
    """A bare aiohttp handler: timestamp, HMAC, then the raw events into SQLite, one transaction."""
    from aiohttp import web

    db = sqlite3.connect(args.db, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS raw_event (id TEXT PRIMARY KEY, type TEXT NOT NULL, "
        "occurred_at TEXT NOT NULL, payload TEXT NOT NULL)"
    )
    secret = args.secret.encode()

    async def post_events(request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get("X-Touchpoint-Timestamp", "")
        signature = request.headers.get("X-Touchpoint-Signature", "")
        if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
            return web.json_response({"error": "stale or missing timestamp"}, status=401)
        if not hmac.compare_digest(sign(secret, stamp, body), signature):
            return web.json_response({"error": "bad signature"}, status=401)
        try:
            payload = json.loads(body)
            items = payload if isinstance(payload, list) else [payload]
            rows = [
                (e["id"], e["type"], e["occurred_at"], json.dumps(e["data"], ensure_ascii=False))
                for e in items
            ]
        except (ValueError, TypeError, KeyError):
            return web.json_response({"error": "not an event"}, status=400)
        before = db.total_changes
        db.execute("BEGIN")
        db.executemany("INSERT OR IGNORE INTO raw_event VALUES (?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        accepted = db.total_changes - before
        return web.json_response({"accepted": accepted, "duplicates": len(rows) - accepted})

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def main() -> None:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_post("/api/events", post_events)
        app.router.add_get("/healthz", healthz)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", args.port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    db.close()


# Parent -------------------------------------------------------------------------------------------
def child_command(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def wait_http(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited ({process.returncode}) before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"no answer from {url}")


def run_phase(
    url: str, files: list[Path], concurrency: int, server_pid: int, profile_to: Path | None = None
) -> dict[str, Any]:
    """All generators of one phase at once; the server's CPU over the phase."""
    per = [concurrency // len(files) + (1 if g < concurrency % len(files) else 0) for g in range(len(files))]
    start_at = time.time() + 1.5  # the generators import aiohttp and read their bodies meanwhile
    spy = None
    if profile_to is not None:
        spy = subprocess.Popen(
            [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
             "--pid", str(server_pid), "--rate", str(PROFILE_HZ), "--gil", "--format", "raw",
             "-o", str(profile_to)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    generators = [
        subprocess.Popen(
            child_command(
                "--child",
                "load",
                "--url",
                url,
                "--secret",
                SECRET,
                "--bodies",
                str(path),
                "--concurrency",
                str(c),
                "--start-at",
                str(start_at),
            ),
            stdout=subprocess.PIPE,
            text=True,
        )
        for path, c in zip(files, per, strict=True)
    ]
    time.sleep(max(0.0, start_at - time.time()))
    server_cpu = cpu_seconds(server_pid)
    outputs = [g.communicate()[0] for g in generators]
    server_cpu = cpu_seconds(server_pid) - server_cpu
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        spy.wait(timeout=60)
    if any(g.returncode for g in generators):
        raise SystemExit("a load generator failed")
    results = [json.loads(out.strip().splitlines()[-1]) for out in outputs]
    latencies = [v for r in results for v in r["latencies"]]
    statuses = sum((Counter(r["statuses"]) for r in results), Counter())
    seconds = max(r["ended"] for r in results) - min(r["began"] for r in results)
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "errors": sum(v for k, v in statuses.items() if k != "200"),
        "statuses": dict(statuses),
        "samples": [s for r in results for s in r["samples"]][:5],
        "accepted": sum(r["accepted"] for r in results),
        "duplicates": sum(r["duplicates"] for r in results),
        "server_cpu_pct": 100 * server_cpu / seconds,
        "gen_cpu_pct": [round(100 * r["cpu_s"] / seconds) for r in results],
    }


def replay(url: str, body: bytes) -> tuple[int, Any]:
    import urllib.error
    import urllib.request

    stamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-Touchpoint-Timestamp": stamp,
        "X-Touchpoint-Signature": sign(SECRET.encode(), stamp, body),
    }
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:300]


def count_rows(db: Path, table: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def drive(
    side: str, url: str, pid: int, files: dict[str, list[Path]], args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for phase in ("warmup", "single", "batch"):
        progress(f"{side}: {phase}")
        profile_to = workdir / f"profile-{phase}.txt" if side == "ours" and args.profile else None
        if phase == "warmup":
            profile_to = None
        connections = args.batch_concurrency if phase == "batch" else args.concurrency
        r = out[phase] = run_phase(url, files[phase], connections, pid, profile_to)
        progress(
            f"{side}: {phase}: {r['requests']:,} requests in {r['seconds']:.1f} s, "
            f"{r['requests'] / r['seconds']:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
            f"{r['errors']:,} errors"
        )
    first = files["single"][0].read_bytes().split(b"\n", 1)[0]
    out["replay"] = replay(url, first)
    out["accepted"] = sum(out[p]["accepted"] for p in ("warmup", "single", "batch"))
    return out


def run_ours(files: dict[str, list[Path]], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.e2e.chat import Emulator
    from tests.e2e.conftest import bot_env, free_port, launch_bot, stop, wait_until

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
        for test_only in ("SANDBOX_CLOCK_FILE", "TIMER_SWEEP_SECONDS"):  # the tests' clock and sweep
            env.pop(test_only)
        env["EVENTS_SECRET"] = SECRET
        bot = launch_bot(env, workdir / "bot.log")
        try:
            url = f"http://127.0.0.1:{env['HTTP_PORT']}"
            wait_http(url + "/healthz", bot)
            out = drive("ours", url + "/api/events", bot.pid, files, args, workdir)
        finally:
            stop(bot)
        out["rows"] = count_rows(db, "shop_event")
        out["orders"] = count_rows(db, "orders")
        return out
    finally:
        stop(emulator)


def run_baseline(files: dict[str, list[Path]], args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from tests.e2e.conftest import free_port, stop

    port, db = free_port(), workdir / "baseline.db"
    server = subprocess.Popen(
        child_command("--child", "baseline", "--port", str(port), "--db", str(db), "--secret", SECRET)
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", server)
        out = drive("baseline", url + "/api/events", server.pid, files, args, workdir)
    finally:
        stop(server)
    out["rows"] = count_rows(db, "raw_event")
    return out


FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
OURS = ("bot/", "storage/", "crm/")


def top_functions(path: Path, seconds: float, n: int = 20) -> None:
    """py-spy's raw stacks (--gil: the thread holding the GIL) → where the Python time goes: the
    share of the phase some thread held the GIL, the functions with most samples of their own, and
    the project's functions with most samples including what they call."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        names = []
        for frame in stack.split(";"):
            m = FRAME.match(frame)
            if m is None:
                continue
            file = m["file"]
            for marker in ("site-packages/", "lib/python3.11/", str(ROOT) + "/"):
                file = file.split(marker, 1)[-1]
            names.append(f"{m['fn']} ({file})")
        if names:
            own[names[-1]] += samples
            for name in set(names):
                inclusive[name] += samples
    if not total:
        print(f"  {path.name}: no samples")
        return
    busy = 100 * total / (PROFILE_HZ * seconds)
    print(f"  {path.stem}: {total:,} samples; the GIL was held {busy:.0f}% of the phase")
    print("    own time (leaf frames), % of GIL-held samples:")
    for name, samples in own.most_common(n):
        print(f"      {100 * samples / total:5.1f}%  {name}")
    print("    the project's functions, including their callees:")
    mine = [(k, v) for k, v in inclusive.items() if k.rsplit("(", 1)[-1].startswith(OURS)]
    for name, samples in sorted(mine, key=lambda kv: -kv[1])[:n]:
        print(f"      {100 * samples / total:5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--single", type=int, default=20_000, help="single-event requests")
    parser.add_argument("--batches", type=int, default=500, help="batch requests")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=1000, help="single-event requests before measuring")
    parser.add_argument("--concurrency", type=int, default=32, help="connections, over all generators")
    parser.add_argument(
        "--batch-concurrency",
        type=int,
        default=1,
        help="connections in the batch phase (a shop's sync job, or the importer's replay, posts its "
        "batches one at a time)",
    )
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--customers", type=int, default=8000)
    parser.add_argument("--only", choices=("ours", "baseline", "both"), default="both")
    parser.add_argument("--profile", action="store_true", help="py-spy on the bot (single, batch)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, databases)")
    parser.add_argument("--child", choices=("load", "baseline"), help=argparse.SUPPRESS)
    for hidden in ("--url", "--secret", "--bodies", "--db"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "load":
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            bodies = Path(args.bodies).read_bytes().split(b"\n")
            print(json.dumps(runner.run(generate(args, bodies))))
        return 0
    if args.child == "baseline":
        serve_baseline(args)
        return 0

    print(
        f"{args.single:,} single-event requests, {args.batches:,} batches of {args.batch_size} "
        f"({args.batches * args.batch_size:,} events), after a warm-up of {args.warmup:,}; "
        f"{args.concurrency} connections ({args.batch_concurrency} for batches) from {args.generators} "
        f"generator process(es); {os.cpu_count()} cores"
    )
    with tempfile.TemporaryDirectory(prefix="touchpoint-events-") as tmp:
        workdir = Path(tempfile.mkdtemp(prefix="touchpoint-events-")) if args.keep else Path(tmp)
        files = write_phases(args, workdir)
        sides = ("ours", "baseline") if args.only == "both" else (args.only,)
        results = {}
        for side in sides:
            results[side] = (run_ours if side == "ours" else run_baseline)(files, args, workdir)
        print("load average (1/5/15 min) at the end: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
        report(results, args)
        if args.profile and "ours" in results:
            print("\nwhere the bot's Python time goes (py-spy --gil: the thread holding the GIL):")
            for phase in ("single", "batch"):
                path = workdir / f"profile-{phase}.txt"
                if path.exists():
                    top_functions(path, results["ours"][phase]["seconds"])
        if args.keep:
            print(f"kept: {workdir} (databases, bot.log, emulator.log, py-spy raw stacks, payloads)")
        return 0 if check(results, args) else 1


def report(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> None:
    head = (
        f"{'side':9} {'mode':12} {'requests':>9} {'events':>8} {'seconds':>8} {'req/s':>8} "
        f"{'events/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} {'ratio':>6} "
        f"{'srv CPU%':>8} {'gen CPU%':>9}"
    )
    print(head)
    for side, out in results.items():
        for phase, size in (("single", 1), ("batch", args.batch_size)):
            r = out[phase]
            rps = r["requests"] / r["seconds"]
            ratio = ""
            if side == "ours" and "baseline" in results:
                b = results["baseline"][phase]
                ratio = f"{rps / (b['requests'] / b['seconds']):.2f}"
            mode = "single" if size == 1 else f"batch of {size}"
            print(
                f"{side:9} {mode:12} {r['requests']:>9,} {r['requests'] * size:>8,} {r['seconds']:>8.2f} "
                f"{rps:>8,.0f} {rps * size:>9,.0f} {r['p50_ms']:>7.1f} {r['p99_ms']:>7.1f} "
                f"{r['max_ms']:>7.0f} {r['errors']:>6,} {ratio:>6} {r['server_cpu_pct']:>8.0f} "
                f"{'+'.join(str(v) for v in r['gen_cpu_pct']):>9}"
            )
    for side, out in results.items():
        for phase in ("warmup", "single", "batch"):
            r = out[phase]
            if r["errors"]:
                print(f"  {side} {phase}: statuses {r['statuses']}; e.g. {r['samples'][:3]}")
        print(
            f"  {side}: {out['accepted']:,} events accepted, {out['rows']:,} rows stored; "
            f"replayed event id → {out['replay'][0]} {out['replay'][1]}"
        )
    print(
        "  ratio: ours / baseline throughput. p99 of a batch is per request (= each of its 100 events, "
        "stored together). srv CPU%: the server process over the phase (100 = one core); gen CPU%: "
        "each generator process. Server and generators share the cores. With C connections kept "
        "busy, latency ≈ C / req/s (Little's law): p99 ≤ 50 ms at 32 connections needs ≥ 640 req/s, "
        "batches included."
    )


def check(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> bool:
    if "ours" not in results:
        return True
    out = results["ours"]
    single, batch = out["single"], out["batch"]
    status, answer = out["replay"]
    met = {
        f"single ≥ {SINGLE_RPS_BAR:,.0f} req/s": single["requests"] / single["seconds"] >= SINGLE_RPS_BAR,
        f"single p99 ≤ {P99_BAR_MS:.0f} ms": single["p99_ms"] <= P99_BAR_MS,
        f"batch ≥ {BATCH_EPS_BAR:,.0f} events/s": batch["requests"] * args.batch_size / batch["seconds"]
        >= BATCH_EPS_BAR,
        f"batch p99 ≤ {P99_BAR_MS:.0f} ms": batch["p99_ms"] <= P99_BAR_MS,
        "no errors": not any(out[p]["errors"] for p in ("warmup", "single", "batch")),
        "rows = accepted": out["rows"] == out["accepted"],
        "replay is a duplicate": status == 200 and isinstance(answer, dict) and answer.get("duplicates") == 1,
    }
    print("bars (ours): " + ", ".join(f"{name} {'ok' if good else 'MISSED'}" for name, good in met.items()))
    return all(met.values())


if __name__ == "__main__":
    sys.exit(main())
