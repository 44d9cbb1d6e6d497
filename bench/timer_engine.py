"""Timer engine benchmark against a named baseline: `python bench/timer_engine.py [--timers 100000]`.

N pending follow-up timers, due at uniformly random moments over --span seconds, spread over
--chats team chats with --agents-per-chat owners each, then measures in the same run, each side in
its own subprocess so that its peak RSS is its own (both on uvloop, as the bot runs):
  * ours: storage.followups.create_many into a freshly migrated SQLite database (batches of
    --batch rows), then bot.followup_engine.FollowUpEngine claiming, rendering and handing the
    reminders to a sender that counts instead of sending (never busy, so Telegram's pacing is
    out of the picture: what is measured is the engine);
  * baseline: the same timers as APScheduler 3 date jobs in its own SQLAlchemyJobStore on SQLite,
    added to a started scheduler one add_job each (its creation cost includes the job-store wake-up
    each add_job queues there), each job recording its own lateness.
Lateness is the time from a timer's due moment (ours: the remind_at stored in its row) to the
reminder being handed over (ours) or the job running (baseline). The first due moment is set
after creation ends, from a pilot creation into a scratch store, so nothing is due while timers
are still being created. Also printed: each side's CPU time per timer while firing (its process).
Bars (ours): lateness p99 ≤ 100 ms, creation ≤ 0.2 ms per timer, peak RSS ≤ 250 MB, every timer
handed over. Exits 1 when one is missed. The baseline has no bars: it is the yardstick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

P99_BAR_MS = 100.0
CREATE_BAR_MS = 0.2
RSS_BAR_MB = 250.0
PILOT = 2000  # timers created into a scratch store to estimate how long creation takes
LEAD_FACTOR, LEAD_MARGIN_S = 1.3, 10.0  # first due moment: estimated creation time × factor + margin
GRACE_AFTER_SPAN_S = 120.0  # how long past the last due moment we wait for stragglers
SEED = 17


def percentile(values: Sequence[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def offsets(n: int, span: float) -> list[float]:
    """Seconds after the first due moment, the same for both sides."""
    rng = random.Random(SEED)
    return [rng.uniform(0, span) for _ in range(n)]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def progress(text: str) -> None:
    print(f"  [{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def summary(late_ms: list[float], create_s: float, n: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "timers": n,
        "handed_over": len(late_ms),
        "create_ms": create_s * 1000 / n,
        "p50_ms": percentile(late_ms, 50) if late_ms else float("nan"),
        "p99_ms": percentile(late_ms, 99) if late_ms else float("nan"),
        "max_ms": max(late_ms) if late_ms else float("nan"),
        "early": sum(1 for v in late_ms if v < 0),  # handed over before due: would be a bug
        "peak_rss_mb": rss_mb(),
        **extra,
    }


async def wait_for(count: Any, n: int, deadline: float) -> None:
    """Until `count()` reaches n or the monotonic deadline passes, with a line every half minute."""
    next_note = time.monotonic() + 30
    while count() < n and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        if time.monotonic() >= next_note:
            progress(f"{count():,} / {n:,} handed over")
            next_note += 30


# Ours ---------------------------------------------------------------------------------------------
class CountingSender:
    """A ReminderSender that never waits and records how late each first reminder is handed over."""

    def __init__(self) -> None:
        self.late_ms: list[float] = []
        self.messages = 0
        self.other_steps = 0  # re-posts / escalations (none expected within the run)

    def ready_in(self, chat_id: int) -> float:
        return 0.0

    async def post(self, chat_id: int, text: str, markup: Any, items: Sequence[Any]) -> int:
        from crm.followups import Step

        now = datetime.now(UTC)
        for item in items:
            f = item.follow_up
            if f.step != Step.REMIND:
                self.other_steps += 1
                continue
            due = f.remind_at if f.remind_at.tzinfo else f.remind_at.replace(tzinfo=UTC)  # SQLite: naive UTC
            self.late_ms.append((now - due).total_seconds() * 1000)
        self.messages += 1
        return self.messages

    async def edit(self, chat_id: int, message_id: int, text: str, markup: Any) -> None:
        return None


async def seed_shop(url: str, customers: int, chat_ids: list[int]) -> None:
    """Customers and bound team chats: the rows a follow-up's reminder joins to."""
    from sqlalchemy import insert

    from storage.db import create_engine
    from storage.models import Customer, TeamChat

    engine = create_engine(url)
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            insert(Customer.__table__),  # type: ignore[attr-defined]
            [
                {
                    "external_id": f"C{i:08d}",
                    "nickname": f"买家{i:07d}",
                    "name": f"客户{i}",
                    "created_at": now,
                }
                for i in range(1, customers + 1)
            ],
        )
        await conn.execute(
            insert(TeamChat.__table__),  # type: ignore[attr-defined]
            [
                {"chat_id": chat, "title": f"team {k}", "bound_by": 1, "bound_at": now, "active": True}
                for k, chat in enumerate(chat_ids)
            ],
        )
    await engine.dispose()


async def create_timers(
    url: str, args: argparse.Namespace, chat_ids: list[int], dues: list[datetime]
) -> float:
    """create_many in batches, as an import would; returns the seconds it took (creation only)."""
    from storage import followups
    from storage.db import create_engine, make_sessionmaker
    from storage.followups import NewFollowUp

    rng = random.Random(SEED + 1)

    def batch(at: int) -> list[NewFollowUp]:
        # Built per batch, so the bench's own list does not count towards the engine's memory.
        out = []
        for i in range(at, min(at + args.batch, len(dues))):
            chat = i % len(chat_ids)
            owner = 10_000 + chat * args.agents_per_chat + rng.randrange(args.agents_per_chat)
            out.append(
                NewFollowUp(
                    customer_pk=rng.randint(1, args.customers),
                    chat_id=chat_ids[chat],
                    scenario="no_reply",
                    owner_id=owner,
                    owner_name=f"客服{owner}",
                    created_by=owner,
                    due_at=dues[i],
                    fire_at=dues[i],
                    minutes=5,
                )
            )
        return out

    engine = create_engine(url)
    sessions = make_sessionmaker(engine)
    elapsed = 0.0
    for at in range(0, len(dues), args.batch):
        items = batch(at)
        started = time.perf_counter()  # creation only, not the bench building its input
        async with sessions() as session:
            await followups.create_many(session=session, items=items, now=datetime.now(UTC))
        elapsed += time.perf_counter() - started
    await engine.dispose()
    return elapsed


async def run_ours(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from bot.clock import Clock
    from bot.config import Settings
    from bot.followup_engine import FollowUpEngine
    from bot.i18n import build_i18n
    from bot.scenario_book import ScenarioBook, load_table
    from storage.db import create_engine, make_sessionmaker
    from storage.migrate import upgrade_async

    chat_ids = [-100_1000_000_000 - k for k in range(args.chats)]
    # Pilot into a scratch database: how long will creating N take?
    pilot_url = f"sqlite+aiosqlite:///{workdir / 'pilot.db'}"
    await upgrade_async(pilot_url)
    await seed_shop(pilot_url, args.customers, chat_ids)
    far = datetime(2999, 1, 1, tzinfo=UTC)
    pilot_n = min(PILOT, args.timers)
    pilot_s = await create_timers(pilot_url, args, chat_ids, [far] * pilot_n)
    lead = LEAD_FACTOR * pilot_s / pilot_n * args.timers + LEAD_MARGIN_S

    url = f"sqlite+aiosqlite:///{workdir / 'touchpoint.db'}"
    await upgrade_async(url)
    await seed_shop(url, args.customers, chat_ids)
    first_due = datetime.now(UTC) + timedelta(seconds=lead)
    dues = [first_due + timedelta(seconds=s) for s in offsets(args.timers, args.span)]
    progress(f"ours: creating {args.timers:,} timers (first due in {lead:.0f} s)")
    create_s = await create_timers(url, args, chat_ids, dues)
    overran = (datetime.now(UTC) - first_due).total_seconds()
    progress(f"ours: created in {create_s:.1f} s; engine running until all are handed over")

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        telegram_bot_token="1:x",
        database_url=url,
        working_hours="00:00-24:00",
        timer_sweep_seconds=5,
    )
    db = create_engine(url)
    sender = CountingSender()
    scheduler = AsyncIOScheduler(timezone=UTC)
    scheduler.start()
    engine = FollowUpEngine(
        sessions=make_sessionmaker(db),
        sender=sender,
        clock=Clock(None),
        settings=settings,
        i18n=build_i18n("zh_CN"),
        book=ScenarioBook(load_table(ROOT / "config")),
        scheduler=scheduler,
    )
    cpu = time.process_time()
    engine.start()
    end = max(dues) if dues else first_due
    deadline = time.monotonic() + (end - datetime.now(UTC)).total_seconds() + GRACE_AFTER_SPAN_S
    await wait_for(lambda: len(sender.late_ms), args.timers, deadline)
    cpu = time.process_time() - cpu
    await engine.close()
    scheduler.shutdown(wait=False)
    await db.dispose()
    return summary(
        sender.late_ms,
        create_s,
        args.timers,
        {
            "overran_s": overran,
            "fire_cpu_s": cpu,
            "messages": sender.messages,
            "other_steps": sender.other_steps,
        },
    )


# Baseline -----------------------------------------------------------------------------------------
BASELINE_LATE_MS: list[float] = []


async def baseline_fire(due_ts: float) -> None:
    """The job: module level, so APScheduler can store a reference to it."""
    BASELINE_LATE_MS.append((time.time() - due_ts) * 1000)


async def add_jobs(scheduler: Any, dues: list[datetime]) -> tuple[float, float]:
    """Seconds spent in add_job, then in the wake-ups it queued: on a started AsyncIOScheduler each
    add_job queues one _process_jobs call (a job-store query) that runs once the loop is free, so
    that work is part of what creating a job costs, and it must be done before the first job is due."""
    started = time.perf_counter()
    for i, due in enumerate(dues):
        scheduler.add_job(
            baseline_fire,
            trigger="date",
            run_date=due,
            args=[due.timestamp()],
            id=f"t{i}",
            misfire_grace_time=None,
        )
    added = time.perf_counter()
    drained = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().call_soon(drained.set_result, None)  # runs after the queued wake-ups
    await drained
    return added - started, time.perf_counter() - added


def jobs_scheduler(path: Path) -> Any:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    return AsyncIOScheduler(jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{path}")}, timezone=UTC)


async def run_baseline(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    # Pilot into a scratch job store, with the jobs far in the future.
    pilot = jobs_scheduler(workdir / "pilot_jobs.db")
    pilot.start()
    pilot_n = min(PILOT, args.timers)
    pilot_s = sum(await add_jobs(pilot, [datetime(2999, 1, 1, tzinfo=UTC)] * pilot_n))
    pilot.shutdown(wait=False)
    lead = LEAD_FACTOR * pilot_s / pilot_n * args.timers + LEAD_MARGIN_S

    # Started first: a started scheduler writes each job to its store at once (the realistic path).
    scheduler = jobs_scheduler(workdir / "jobs.db")
    scheduler.start()
    first_due = datetime.now(UTC) + timedelta(seconds=lead)
    dues = [first_due + timedelta(seconds=s) for s in offsets(args.timers, args.span)]
    progress(f"baseline: adding {args.timers:,} jobs (first due in {lead:.0f} s)")
    add_s, drain_s = await add_jobs(scheduler, dues)
    create_s = add_s + drain_s
    overran = (datetime.now(UTC) - first_due).total_seconds()
    progress(
        f"baseline: added in {add_s:.1f} s + {drain_s:.1f} s of queued wake-ups; running until all have run"
    )
    cpu = time.process_time()
    end = max(dues) if dues else first_due
    deadline = time.monotonic() + (end - datetime.now(UTC)).total_seconds() + GRACE_AFTER_SPAN_S
    await wait_for(lambda: len(BASELINE_LATE_MS), args.timers, deadline)
    cpu = time.process_time() - cpu
    scheduler.shutdown(wait=False)
    extra = {"overran_s": overran, "fire_cpu_s": cpu, "add_ms": add_s * 1000 / args.timers}
    return summary(BASELINE_LATE_MS, create_s, args.timers, extra)


def child(args: argparse.Namespace) -> None:
    import uvloop

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="touchpoint-timers-") as tmp:
        run = run_ours if args.child == "ours" else run_baseline
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(run(args, Path(tmp)))
    print(json.dumps(result))


# Parent -------------------------------------------------------------------------------------------
def run_side(side: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", side]
    for name in ("timers", "span", "chats", "agents_per_chat", "customers", "batch"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)  # stderr: progress
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def bars(r: dict[str, Any]) -> dict[str, bool]:
    return {
        f"p99 ≤ {P99_BAR_MS:.0f} ms": r["p99_ms"] <= P99_BAR_MS,
        f"create ≤ {CREATE_BAR_MS} ms": r["create_ms"] <= CREATE_BAR_MS,
        f"RSS ≤ {RSS_BAR_MB:.0f} MB": r["peak_rss_mb"] <= RSS_BAR_MB,
        "all handed over": r["handed_over"] == r["timers"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--timers", type=int, default=100_000)
    parser.add_argument("--span", type=float, default=600.0, help="seconds over which due times are spread")
    parser.add_argument("--chats", type=int, default=20)
    parser.add_argument("--agents-per-chat", type=int, default=10)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=5000, help="timers per create_many call (ours)")
    parser.add_argument("--only", choices=("ours", "baseline", "both"), default="both")
    parser.add_argument("--child", choices=("ours", "baseline"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    print(
        f"{args.timers:,} timers due over {args.span:.0f} s in {args.chats} chats × "
        f"{args.agents_per_chat} agents, {args.customers:,} customers"
    )
    sides = ("ours", "baseline") if args.only == "both" else (args.only,)
    results = {side: run_side(side, args) for side in sides}
    # Both sides share the machine with whatever else runs: the load says how noisy the figures are.
    print("load average (1/5/15 min) at the end: " + " / ".join(f"{v:.2f}" for v in os.getloadavg()))
    labels = {
        "ours": "ours (create_many + FollowUpEngine)",
        "baseline": "baseline (APScheduler + SQLAlchemyJobStore)",
    }
    print(
        f"{'':45} {'create ms/timer':>15} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>9} "
        f"{'peak RSS MB':>11} {'handed over':>12} {'CPU ms/timer':>12}"
    )
    for side, r in results.items():
        print(
            f"{labels[side]:45} {r['create_ms']:>15.3f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
            f"{r['max_ms']:>9.1f} {r['peak_rss_mb']:>11.0f} {r['handed_over']:>12,} "
            f"{r['fire_cpu_s'] * 1000 / r['timers']:>12.2f}"
        )
        if r["overran_s"] > 0:
            print(f"  note: {side} was still creating {r['overran_s']:.1f} s after the first due time")
        if "add_ms" in r:
            print(
                f"  {side}: create = add_job {r['add_ms']:.3f} ms"
                " + the wake-up each add_job queues on a running scheduler"
            )
        if r["early"]:
            print(f"  note: {side} handed {r['early']:,} over before they were due")
    if "ours" in results:
        r = results["ours"]
        print(
            f"ours: {r['messages']:,} messages (digests fold one agent's due timers into one); "
            "CPU ms/timer: the process's CPU while firing, per timer"
        )
    ok = True
    if "ours" in results:
        met = bars(results["ours"])
        ok = all(met.values())
        print(
            "bars (ours): " + ", ".join(f"{name} {'ok' if good else 'MISSED'}" for name, good in met.items())
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
