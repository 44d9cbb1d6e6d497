"""The one way shop events enter: the event API, the importer's replay and the sandbox all call
`EventIntake.ingest`. It validates, applies (storage/events.py), then tells the agents quietly:
a follow-up an event answered has its messages edited, never a new message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.care_engine import CareEngine
from bot.followup_engine import FollowUpEngine
from bot.views.followups import confirmation, outcome
from crm.events import EventError, parse_events
from crm.scenarios import Trigger
from storage import followups
from storage.care_planner import CarePlanner
from storage.events import apply_events
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
        # SQLite has one writer: batches taking turns here wait on a queue instead of polling for
        # the file lock (which ends in "database is locked" under load).
        self._one_writer = asyncio.Lock() if engine.settings.is_sqlite else contextlib.nullcontext()

    async def ingest(self, body: Any) -> IntakeResult:
        """Validate every event first; any bad one rejects the batch with nothing written."""
        parsed, errors = parse_events(body)
        if errors:
            return IntakeResult(errors=errors)
        async with self.sessions() as session:
            table = await self.engine.book.current(session)
        restock = [k for k, row in table.rows.items() if row.trigger == Trigger.RESTOCK]
        try:
            async with self._one_writer, self.sessions() as session:
                applied = await apply_events(
                    session=session,
                    events=parsed,
                    resolves=table.resolved_by,
                    restock_scenarios=restock,
                    now=self.engine.clock.now(),
                    care=self.planner,
                )
        except EventError as exc:
            return IntakeResult(errors=[{"index": None, "error": str(exc)}])
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
        return IntakeResult(accepted=applied.accepted, duplicates=applied.duplicates)

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
