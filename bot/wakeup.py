"""Waking a row-driven engine: APScheduler runs its pass at the next due time and on a sweep.

The rows are the truth; this only makes sure the process looks at them in time. A pass already
running when another is asked for goes round once more instead of running twice at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.clock import Clock
from bot.health import is_outage

log = logging.getLogger(__name__)


class Wakeup:
    def __init__(
        self, scheduler: AsyncIOScheduler, clock: Clock, name: str, run: Callable[[], Awaitable[None]]
    ):
        self.scheduler, self.clock, self.name, self._run = scheduler, clock, name, run
        self._wake_at: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.running = False
        self.again = False

    def sweep_every(self, seconds: float) -> None:
        self.scheduler.add_job(
            self.run,
            "interval",
            seconds=seconds,
            id=f"{self.name}_sweep",
            replace_existing=True,
            max_instances=4,
            coalesce=True,
        )

    def kick(self) -> None:
        """Run a pass now (new rows, a delivery finished, a restart)."""
        task = asyncio.get_running_loop().create_task(self.run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wake_at(self, at: datetime) -> None:
        """Make sure a pass runs at `at` (the bot's clock)."""
        if self._wake_at is not None and self._wake_at <= at and self._wake_at > self.clock.now():
            return
        self._wake_at = at
        self.scheduler.add_job(
            self.run,
            "date",
            run_date=self.clock.to_real(at),
            id=f"{self.name}_wake",
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=4,
        )

    async def run(self) -> None:
        if self.running:
            self.again = True  # the pass under way goes round once more
            return
        self.running = True
        try:
            await self._run()
        except Exception as exc:  # the sweep comes back in a few seconds; nothing is lost meanwhile
            if is_outage(exc):  # the database is away: one line, not a traceback every sweep
                log.warning("%s pass put off: %s", self.name, type(exc).__name__)
            else:
                log.exception("%s pass failed", self.name)
        finally:
            self.running = False
