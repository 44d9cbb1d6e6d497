"""Prometheus metrics served on ``/metrics``: updates, handler latency, sends, 429s, timers, queue.

Counters are per process (Prometheus sums the replicas); the gauges of pending and late timers and
of the care queue are read from the shared database at scrape time, so every replica reports the
same team-wide figure (use ``max`` across replicas, not ``sum``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.update_effects import track_visible_calls
from crm.care_queue import CareState
from crm.followups import State as FollowUpState
from storage.models import CareMessage, FollowUp


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.updates = Counter(
            "touchpoint_updates_handled", "Telegram updates handled", ["kind", "outcome"], registry=r
        )
        self.updates_duplicate = Counter(
            "touchpoint_updates_duplicate", "Re-delivered updates skipped (already handled)", registry=r
        )
        self.webhook_refused = Counter(
            "touchpoint_webhook_refused", "Webhook calls refused for a missing or wrong secret", registry=r
        )
        self.handler_seconds = Histogram(
            "touchpoint_handler_seconds",
            "Time to handle one update",
            ["kind"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.sends = Counter("touchpoint_telegram_calls", "Bot API calls made", ["method"], registry=r)
        self.too_many = Counter("touchpoint_telegram_429", "Bot API calls answered 429", registry=r)
        self.timers_pending = Gauge("touchpoint_timers_pending", "Follow-up timers waiting", registry=r)
        self.timers_late = Gauge(
            "touchpoint_timers_late", "Follow-up timers due over a minute ago and not yet fired", registry=r
        )
        self.queue_depth = Gauge(
            "touchpoint_care_queue_depth", "Care messages waiting (planned, queued, approved)", ["state"],
            registry=r,
        )

    async def render(self, sessions: async_sessionmaker[AsyncSession], now: datetime) -> bytes:
        async with sessions() as session:
            pending = (FollowUpState.PENDING, FollowUpState.FIRING)
            timers = select(func.count()).where(FollowUp.state.in_(pending), FollowUp.fire_at.is_not(None))
            self.timers_pending.set((await session.execute(timers)).scalar_one())
            late = timers.where(FollowUp.fire_at < now - timedelta(minutes=1))
            self.timers_late.set((await session.execute(late)).scalar_one())
            waiting = (CareState.PLANNED, CareState.QUEUED, CareState.APPROVED)
            counts = dict.fromkeys(waiting, 0)
            rows = await session.execute(
                select(CareMessage.state, func.count())
                .where(CareMessage.state.in_(list(counts)))
                .group_by(CareMessage.state)
            )
            counts.update({state: n for state, n in rows.all()})
        for state, n in counts.items():
            self.queue_depth.labels(state=state).set(n)
        return generate_latest(self.registry)


METRICS = Metrics()


class UpdateMetricsMiddleware(BaseMiddleware):
    """Outermost: counts each update by kind and outcome and times the whole of its handling; knows
    how many are in flight, so a graceful shutdown can wait for them."""

    def __init__(self) -> None:
        self.inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drained(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        kind = event.event_type if isinstance(event, Update) else type(event).__name__
        started = time.perf_counter()
        outcome = "error"
        self.inflight += 1
        self._idle.clear()
        track_visible_calls()
        try:
            result = await handler(event, data)
            outcome = "ok"
            return result
        finally:
            self.inflight -= 1
            if not self.inflight:
                self._idle.set()
            METRICS.handler_seconds.labels(kind=kind).observe(time.perf_counter() - started)
            METRICS.updates.labels(kind=kind, outcome=outcome).inc()
