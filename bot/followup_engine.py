"""The timer engine: wakes at the next due follow-up, claims it, posts the reminder, records it.

Rows are the truth (storage/followups.py); APScheduler only wakes the process: once at the
next due time and on a short sweep that catches other processes' timers and lapsed claims.
A pass claims everything due in one statement, except in chats still busy sending: a chat gets
one message per agent (a digest when several are due for them) and, while Telegram's limits hold
those back, whatever falls due there waits and joins the next digest instead of queueing up as
separate messages.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramNotFound
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.i18n import locale_from_telegram
from bot.keyboards import list_keyboard, reminder_keyboard
from bot.routes import Routes
from bot.scenario_book import ScenarioBook
from bot.views.card import display_name
from bot.views.followups import (
    FollowUpContext,
    render_acted,
    render_digest,
    render_list,
    render_reminder,
)
from bot.wakeup import Wakeup
from crm.followups import OPEN_STATES, State, Step, lateness
from crm.working_hours import WorkingHours
from storage import followups
from storage.db import ThreadedWrites
from storage.followups import Claimed
from storage.models import FollowUp

log = logging.getLogger(__name__)
T = TypeVar("T")


class ReminderSender(Protocol):
    async def post(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, items: Sequence[Claimed]
    ) -> int: ...

    async def edit(
        self, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> None: ...


class TelegramSender:
    """Posts through the bot, which paces and retries every call (bot.outbound)."""

    def __init__(self, bot: Bot, routes: Routes | None = None) -> None:
        self.bot, self.routes = bot, routes

    async def post(
        self, chat_id: int, text: str, markup: InlineKeyboardMarkup | None, items: Sequence[Claimed]
    ) -> int:
        thread = await self.routes.thread(chat_id, "reminders") if self.routes else None
        sent = await self.bot.send_message(chat_id, text, reply_markup=markup, message_thread_id=thread)
        return sent.message_id

    async def edit(
        self, chat_id: int, message_id: int, text: str, markup: InlineKeyboardMarkup | None
    ) -> None:
        try:
            await self.bot.edit_message_text(
                text, chat_id=chat_id, message_id=message_id, reply_markup=markup
            )
        except TelegramBadRequest as exc:
            log.info("could not edit reminder %s in %s: %s", message_id, chat_id, exc.message)


def still_open(f: FollowUp) -> bool:
    """Whether a reminder still needs buttons: open, and not snoozed (a new reminder will come)."""
    snoozed = f.state == State.PENDING and f.step == Step.REMIND and f.fired_at is not None
    return f.state in OPEN_STATES and not snoozed


def redraw(
    items: Sequence[Claimed], ctx: FollowUpContext, *, header: str
) -> tuple[str, InlineKeyboardMarkup | None]:
    """A reminder (one follow-up) or a digest / list (several) as it stands now, after a press or an
    event: what happened to each, and buttons only for those still open."""
    if len(items) == 1:
        f = items[0].follow_up
        return render_acted(items[0], ctx), reminder_keyboard(f.id or 0) if still_open(f) else None
    rows = [
        (n, c.follow_up.id or 0, display_name(c.customer))
        for n, c in enumerate(items, 1)
        if still_open(c.follow_up)
    ]
    return render_list(items, ctx, header=header), list_keyboard(rows)


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
        self.wakeup = Wakeup(scheduler, clock, "follow_ups", self._run_due)
        # SQLite: each claim or record is one call in one writer thread (storage.db.ThreadedWrites),
        # not a dozen hops through aiosqlite, and never two writers polling for SQLite's one lock.
        self._writes = ThreadedWrites(settings.database_url) if settings.is_sqlite else None

    # Waking up ------------------------------------------------------------------------------------
    def start(self) -> None:
        self.wakeup.sweep_every(self.settings.timer_sweep_seconds)
        self.kick()

    def kick(self) -> None:
        """Run a pass now (new timers, a reminder delivered, a restart)."""
        self.wakeup.kick()

    def wake_at(self, at: datetime) -> None:
        """Make sure the engine is awake at `at` (the bot's clock)."""
        self.wakeup.wake_at(at)

    async def run_due(self) -> None:
        await self.wakeup.run()

    async def _work(self, unit: Callable[[Session], T]) -> T:
        """Run one synchronous unit of work from storage.followups (it commits)."""
        if self._writes is not None:
            return await self._writes.run(unit)
        async with self.sessions() as session:
            return await session.run_sync(unit)

    async def _run_due(self) -> None:
        while True:
            self.wakeup.again = False
            looked_at = self.clock.now()
            if await self._pass(looked_at) or self.wakeup.again:
                continue
            upcoming = await self._work(followups.next_fire_at_sync)
            if self.wakeup.again:  # a reminder landed (or a timer was set) while we looked
                continue
            now = self.clock.now()
            if upcoming is not None and upcoming > now:
                self.wakeup.wake_at(upcoming)
            elif upcoming is not None and upcoming > looked_at:
                continue  # fell due since the pass looked: take it now
            elif upcoming is not None and not self._inflight:
                # Due but not ours to take right now (another process holds it): look again soon.
                self.wakeup.wake_at(now + timedelta(seconds=1))
            # Chats with a reminder in flight are looked at again when it lands (kick()).
            return

    async def _pass(self, now: datetime) -> bool:
        """Claim what is due in every chat not busy sending; returns whether there may be more."""
        token = uuid.uuid4().hex
        async with self.sessions() as session:
            await self.book.current(session)  # re-read every half minute at most
        busy = list(self._inflight)
        claimed = await self._work(
            lambda s: followups.claim_due_sync(s, now=now, lease=self.lease, token=token, busy_chats=busy)
        )
        by_chat: dict[int, list[Claimed]] = {}
        for item in claimed:
            by_chat.setdefault(item.follow_up.chat_id, []).append(item)
        for chat_id, items in by_chat.items():
            task = asyncio.get_running_loop().create_task(self._deliver_chat(chat_id, items, token, now))
            self._inflight[chat_id] = task
        return len(claimed) >= followups.CLAIM_BATCH

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

    async def _deliver_chat(
        self, chat_id: int, items: list[Claimed], token: str, claimed_at: datetime
    ) -> None:
        """One message per agent (a digest when several are due for them), one after the other: the
        chat counts as busy meanwhile, so what falls due there now waits and joins the next digest."""
        try:
            by_owner: dict[int, list[Claimed]] = {}
            for item in items:
                by_owner.setdefault(item.follow_up.owner_id, []).append(item)
            for group in by_owner.values():
                for start in range(0, len(group), followups.DIGEST_MAX):
                    await self._deliver(
                        chat_id, group[start : start + followups.DIGEST_MAX], token, claimed_at
                    )
        finally:
            self._inflight.pop(chat_id, None)
            self.kick()

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
            failed_at, error = self.clock.now(), repr(exc)[:200]
            await self._work(
                lambda s: followups.record_failed_sync(
                    s, claimed=rows, token=token, now=failed_at, error=error, final=final
                )
            )
        else:
            posted_at = self.clock.now()
            lost = await self._work(
                lambda s: followups.record_posted_sync(
                    s, claimed=rows, token=token, message_id=message_id, now=posted_at, grace=self.grace
                )
            )
            if lost:  # closed while we were sending (an event): show that on the message just sent
                await self.refresh_message(
                    chat_id, message_id, [r.id for r in rows if r.id is not None], locale
                )

    async def refresh_message(self, chat_id: int, message_id: int, ids: list[int], locale: str) -> None:
        async with self.sessions() as session:
            items = await followups.load(session=session, ids=ids)
        if not items:
            return
        with self.i18n.context(), self.i18n.use_locale(locale):
            text, markup = redraw(items, self.context(locale), header=items[0].follow_up.owner_name)
        await self.sender.edit(chat_id, message_id, text, markup)

    async def close(self) -> None:
        """Let reminders already handed to Telegram finish recording (SIGTERM, tests)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight.values()), timeout=10)
        if self._writes is not None:
            self._writes.close()
