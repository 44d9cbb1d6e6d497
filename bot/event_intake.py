"""The one way shop events enter: the event API, the importer's replay and the sandbox all call
`EventIntake.ingest`. It validates, applies (storage/events.py), then tells the agents quietly:
a follow-up an event answered has its messages edited, never a new message."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.care_engine import CareEngine
from bot.followup_engine import FollowUpEngine
from bot.views.followups import confirmation, outcome
from crm.events import Event, EventError, parse_events
from crm.scenarios import ScenarioTable, Trigger
from storage import followups
from storage.care_planner import CarePlanner
from storage.db import ThreadedWrites
from storage.events import Applied, apply_events_sync
from storage.models import FollowUp, Order

log = logging.getLogger(__name__)
CARE_LOOK = timedelta(milliseconds=300)


@dataclass(slots=True)
class IntakeResult:
    accepted: int = 0
    duplicates: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


GROUP_EVENTS = 500  # events one group commit takes at most (a bigger request goes alone)


@dataclass(slots=True)
class _Waiting:
    events: list[tuple[Event, Any]]
    done: asyncio.Future[Applied | EventError]


class EventIntake:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        engine: FollowUpEngine,
        care: CareEngine | None = None,
        planner: CarePlanner | None = None,
    ) -> None:
        self.sessions, self.engine, self.care, self.planner = sessions, engine, care, planner
        # SQLite has one writer: every request's events go to one writer thread, and the requests
        # waiting while it works are applied together, in one transaction (group commit).
        settings = engine.settings
        self._writes = ThreadedWrites(settings.database_url) if settings.is_sqlite else None
        self._waiting: list[_Waiting] = []
        self._writer: asyncio.Task[None] | None = None

    async def ingest(self, body: Any) -> IntakeResult:
        """Validate every event first; any bad one rejects the batch with nothing written."""
        parsed, errors = parse_events(body)
        if errors:
            return IntakeResult(errors=errors)
        if self._writes is None:
            table = await self._table()
            async with self.sessions() as session:
                (applied,) = await session.run_sync(
                    partial(self._apply, requests=[parsed], table=table, now=self.engine.clock.now())
                )
        else:
            waiting = _Waiting(parsed, asyncio.get_running_loop().create_future())
            self._waiting.append(waiting)
            if self._writer is None:
                self._writer = asyncio.get_running_loop().create_task(self._write_waiting())
            applied = await waiting.done
        if isinstance(applied, EventError):
            return IntakeResult(errors=[{"index": None, "error": str(applied)}])
        await self._after(applied)
        return IntakeResult(accepted=applied.accepted, duplicates=applied.duplicates)

    async def _table(self) -> ScenarioTable:
        async with self.sessions() as session:
            return await self.engine.book.current(session)  # re-read every half minute at most

    def _apply(
        self,
        session: Session,
        *,
        requests: list[list[tuple[Event, Any]]],
        table: ScenarioTable,
        now: datetime,
    ) -> list[Applied | EventError]:
        restock = [k for k, row in table.rows.items() if row.trigger == Trigger.RESTOCK]
        return apply_events_sync(
            session,
            requests,
            resolves=table.resolved_by,
            restock_scenarios=restock,
            now=now,
            care=self.planner,
        )

    async def _write_waiting(self) -> None:
        """Take what waits (up to GROUP_EVENTS events), apply it in the writer thread, repeat."""
        assert self._writes is not None
        try:
            while self._waiting:
                group, size = [], 0
                while self._waiting and (not group or size + len(self._waiting[0].events) <= GROUP_EVENTS):
                    group.append(self._waiting.pop(0))
                    size += len(group[-1].events)
                table, now = await self._table(), self.engine.clock.now()
                requests = [w.events for w in group]
                try:
                    results = await self._writes.run(
                        partial(self._apply, requests=requests, table=table, now=now)
                    )
                except Exception as exc:
                    for w in group:
                        if not w.done.done():
                            w.done.set_exception(exc)
                    continue
                for w, result in zip(group, results, strict=True):
                    if not w.done.done():
                        w.done.set_result(result)
        finally:
            self._writer = None

    async def _after(self, applied: Applied) -> None:
        """Tell the agents quietly, wake what must act."""
        for follow_up in applied.resolved:
            await self._tell(follow_up)
        if applied.restocked:
            self.engine.kick()
        for message in applied.care_dropped:
            if self.care is not None:
                await self.care.refresh(message)
        if self.care is not None and applied.accepted:
            # New plans are due minutes from now, an alert at once: one look soon covers both,
            # without a pass (and its write) per request.
            self.care.wakeup.wake_at(self.engine.clock.now() + CARE_LOOK)

    def close(self) -> None:
        if self._writes is not None:
            self._writes.close()

    async def _tell(self, f: FollowUp) -> None:
        """Edit the reminder (if one was posted) and the confirmation to say it closed itself."""
        try:
            async with self.sessions() as session:
                items = await followups.load(session=session, ids=[f.id or 0])
                order = await session.get(Order, f.order_pk) if f.order_pk else None
            if not items:
                return
            item, locale = items[0], self.engine.locale_of(items[0])
            if f.message_id is not None and f.id is not None:
                await self.engine.refresh_message(f.chat_id, f.message_id, [f.id], locale)
            if f.origin_chat_id is not None and f.origin_message_id is not None:
                with self.engine.i18n.context(), self.engine.i18n.use_locale(locale):
                    ctx = self.engine.context(locale)
                    text = confirmation(
                        item.follow_up, item.customer, ctx, order_no=order.order_no if order else None
                    )
                    text += "\n" + outcome(item.follow_up, ctx)
                await self.engine.sender.edit(f.origin_chat_id, f.origin_message_id, text, None)
        except Exception:  # the close is stored; a failed courtesy edit must not fail the event
            log.exception("could not update the messages of follow-up %s", f.id)
