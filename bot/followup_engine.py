"""The timer engine: wakes at the next due follow-up, claims it, posts the reminder, records it.

Rows are the truth (storage/followups.py); APScheduler only wakes the process: once at the
next due time and on a short sweep that catches other processes' timers and lapsed claims.
Per chat, one reminder is in flight at a time and a new one is claimed only when Telegram's
limits let that chat take a message, so whatever piles up for one agent meanwhile goes out as
one digest instead of a queue of messages.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNotFound
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.i18n import locale_from_telegram
from bot.keyboards import list_keyboard, reminder_keyboard
from bot.outbound import SendPacer
from bot.scenario_book import ScenarioBook
from bot.views.card import display_name
from bot.views.followups import (
    FollowUpContext,
    render_acted,
    render_digest,
    render_list,
    render_reminder,
)
from crm.followups import Step, lateness
from crm.working_hours import WorkingHours
from storage import followups
from storage.followups import Claimed

log = logging.getLogger(__name__)
WAKE_JOB, SWEEP_JOB = "follow_ups_wake", "follow_ups_sweep"


class ReminderSender(Protocol):
    def ready_in(self, chat_id: int) -> float: ...

    async def post(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, items: Sequence[Claimed]
    ) -> int: ...

    async def edit(
        self, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> None: ...


class TelegramSender:
    """Posts through the bot (paced and retried by bot.outbound); asks the pacer when a chat is free."""

    def __init__(self, bot: Bot, pacer: SendPacer) -> None:
        self.bot, self.pacer = bot, pacer

    def ready_in(self, chat_id: int) -> float:
        return self.pacer.ready_in(chat_id)

    async def post(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, items: Sequence[Claimed]
    ) -> int:
        return (await self.bot.send_message(chat_id, text, reply_markup=markup)).message_id

    async def edit(
        self, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> None:
        try:
            await self.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            )
        except TelegramBadRequest as exc:
            log.info("could not edit reminder %s in %s: %s", message_id, chat_id, exc.message)


def _gone(exc: Exception) -> bool:
    """The chat will never take this message: the bot was removed, or the chat no longer exists."""
    if isinstance(exc, TelegramForbiddenError | TelegramNotFound):
        return True
    return isinstance(exc, TelegramBadRequest) and "chat not found" in exc.message


class FollowUpEngine:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        sender: ReminderSender,
        clock: Clock,
        settings: Settings,
        i18n: I18n,
        book: ScenarioBook,
        scheduler: AsyncIOScheduler,
    ) -> None:
        self.sessions, self.sender, self.clock = sessions, sender, clock
        self.settings, self.i18n, self.book, self.scheduler = settings, i18n, book, scheduler
        self.hours: WorkingHours = settings.hours
        self.lease = timedelta(seconds=settings.timer_lease_seconds)
        self.grace = timedelta(minutes=settings.reminder_grace_minutes)
        self._inflight: dict[int, asyncio.Task[None]] = {}
        self._running = False
        self._again = False
        self._wake_at: datetime | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # Waking up ------------------------------------------------------------------------------------
    def start(self) -> None:
        self.scheduler.add_job(
            self.run_due,
            "interval",
            seconds=self.settings.timer_sweep_seconds,
            id=SWEEP_JOB,
            replace_existing=True,
            max_instances=4,
            coalesce=True,
        )
        self.kick()

    def kick(self) -> None:
        """Run a pass now (new timers, a reminder delivered, a restart)."""
        task = asyncio.get_running_loop().create_task(self.run_due())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def wake_at(self, at: datetime) -> None:
        """Make sure the engine is awake at `at` (the bot's clock)."""
        if self._wake_at is not None and self._wake_at <= at and self._wake_at > self.clock.now():
            return
        self._wake_at = at
        self.scheduler.add_job(
            self.run_due,
            "date",
            run_date=self.clock.to_real(at),
            id=WAKE_JOB,
            replace_existing=True,
            misfire_grace_time=None,
            max_instances=4,
        )

    async def run_due(self) -> None:
        if self._running:
            self._again = True  # the pass under way goes round once more
            return
        self._running = True
        try:
            wait = await self._pass()
            while self._again:
                self._again = False
                wait = await self._pass()
            async with self.sessions() as session:
                upcoming = await followups.next_fire_at(session=session)
            now = self.clock.now()
            candidates = [now + timedelta(seconds=wait)] if wait else []
            if upcoming is not None and upcoming > now:
                candidates.append(upcoming)
            elif upcoming is not None and not self._inflight and not wait:
                # Due but not ours to take right now (another process holds it): look again shortly.
                candidates.append(now + timedelta(seconds=1))
            # Chats with a reminder in flight are looked at again when it lands (kick()).
            if candidates:
                self.wake_at(max(min(candidates), now))
        except Exception:  # the sweep comes back in a few seconds; nothing is lost meanwhile
            log.exception("follow-up pass failed")
        finally:
            self._running = False

    async def _pass(self) -> float:
        """Claim one reminder per free chat; returns how long until a busy chat is free (0: none)."""
        now = self.clock.now()
        async with self.sessions() as session:
            await self.book.current(session)
            chats = await followups.due_chats(session=session, now=now)
        soonest = 0.0
        for chat_id in chats:
            if chat_id in self._inflight:
                continue
            wait = self.sender.ready_in(chat_id)
            if wait > 0:
                soonest = wait if not soonest else min(soonest, wait)
                continue
            token = uuid.uuid4().hex
            async with self.sessions() as session:
                claimed = await followups.claim_next(
                    session=session, chat_id=chat_id, now=now, lease=self.lease, token=token
                )
            if claimed:
                task = asyncio.get_running_loop().create_task(self._deliver(chat_id, claimed, token, now))
                self._inflight[chat_id] = task
        return soonest

    # Delivering -----------------------------------------------------------------------------------
    def locale_of(self, item: Claimed) -> str:
        """The owner's language: their /lang choice, else what Telegram says, else the team default."""
        default = self.settings.default_locale
        return item.owner_locale or locale_from_telegram(item.owner_language, default)

    def context(self, locale: str) -> FollowUpContext:
        return FollowUpContext(self.clock.now(), self.settings.zone, self.book.table, locale)

    def _render(self, claimed: Sequence[Claimed], now: datetime) -> tuple[str, InlineKeyboardMarkup | None]:
        ctx = self.context(self.i18n.current_locale)
        late = {}
        for item in claimed:
            f = item.follow_up
            gap = lateness(f.remind_at, now) if f.step == Step.REMIND and f.remind_at else None
            if gap is not None and f.id is not None:
                late[f.id] = gap
        if len(claimed) == 1:
            f = claimed[0].follow_up
            assert f.id is not None
            return render_reminder(claimed[0], ctx, late=late.get(f.id)), reminder_keyboard(f.id)
        rows = [(n, c.follow_up.id or 0, display_name(c.customer)) for n, c in enumerate(claimed, 1)]
        return render_digest(claimed, ctx, late=late), list_keyboard(rows)

    async def _deliver(self, chat_id: int, claimed: list[Claimed], token: str, claimed_at: datetime) -> None:
        rows = [c.follow_up for c in claimed]
        try:
            locale = self.locale_of(claimed[0])
            with self.i18n.context(), self.i18n.use_locale(locale):
                text, markup = self._render(claimed, claimed_at)
            message_id = await self.sender.post(chat_id, text, markup, claimed)
        except Exception as exc:
            final = _gone(exc)
            if final:
                log.warning("chat %s does not take reminders any more: %s", chat_id, exc)
            else:
                log.warning("reminder for chat %s not sent, will retry: %r", chat_id, exc)
            async with self.sessions() as session:
                await followups.record_failed(
                    session=session,
                    claimed=rows,
                    token=token,
                    now=self.clock.now(),
                    error=repr(exc)[:200],
                    final=final,
                )
        else:
            async with self.sessions() as session:
                lost = await followups.record_posted(
                    session=session,
                    claimed=rows,
                    token=token,
                    message_id=message_id,
                    now=self.clock.now(),
                    grace=self.grace,
                )
            if lost:  # closed while we were sending (an event): show that on the message just sent
                await self.refresh_message(
                    chat_id, message_id, [r.id for r in rows if r.id is not None], locale
                )
        finally:
            self._inflight.pop(chat_id, None)
            self.kick()

    async def refresh_message(self, chat_id: int, message_id: int, ids: list[int], locale: str) -> None:
        async with self.sessions() as session:
            items = await followups.load(session=session, ids=ids)
        if not items:
            return
        with self.i18n.context(), self.i18n.use_locale(locale):
            ctx = self.context(locale)
            if len(items) == 1:
                text, markup = render_acted(items[0], ctx), None
            else:
                text = render_list(items, ctx, header=items[0].follow_up.owner_name)
                open_rows = [
                    (n, c.follow_up.id or 0, display_name(c.customer))
                    for n, c in enumerate(items, 1)
                    if not followups.is_closed(c.follow_up)
                ]
                markup = list_keyboard(open_rows)
        await self.sender.edit(chat_id, message_id, text, markup)

    async def close(self) -> None:
        """Let reminders already handed to Telegram finish recording (SIGTERM, tests)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=10)
