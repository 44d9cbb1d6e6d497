"""The care queue at work: planned messages become approval cards in the group when due, approved
ones go out through their channel when quiet hours and caps allow, failures are retried and end
as a dead letter the group can see.

Each row is claimed with a lease before it is acted on (storage/care.py); a delivery carries the
row's id as its idempotency key, so a process killed mid-send that sends again on restart still
reaches the customer once. Everything is re-checked against the order right before it goes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Coroutine, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.clock import Clock
from bot.config import Settings
from bot.keyboards import (
    alert_keyboard,
    approval_keyboard,
    care_digest_keyboard,
    dead_letter_keyboard,
    task_keyboard,
)
from bot.routes import Routes
from bot.views.care import (
    CareContext,
    dead_letter,
    digest_header,
    render_alert,
    render_approval,
    render_digest,
)
from bot.wakeup import Wakeup
from channels.base import Channel, Outcome, Outgoing, Result
from crm.care_queue import AGENT_TASK, ALERT_CHANNEL, CareState, DropReason
from crm.care_rules import CareTable, still_applies
from crm.sending import exclusion
from crm.templates import TemplateBook, render
from storage import care
from storage.care import CareItem, Schedule, reach_of
from storage.care_planner import order_facts
from storage.models import CareMessage

log = logging.getLogger(__name__)
SINGLE_CARDS = 3  # more than this due together in one pass go out as one digest
SEND_CONCURRENCY = 16
NO_CHAT_RETRY = timedelta(minutes=5)
REDRAW_AFTER = 1.5  # seconds: outcomes landing together redraw their card once


def draw(items: Sequence[CareItem], ctx: CareContext) -> tuple[str, InlineKeyboardMarkup | None]:
    """A card (one message) or digest (several) as it stands now, buttons only where a decision
    is still open."""
    if len(items) == 1:
        item = items[0]
        m = item.message
        if m.channel == ALERT_CHANNEL:
            values = json.loads(m.values or "{}")
            text = render_alert(item, ctx, values.get("review", ""), values.get("rating", "0"))
            open_alert = m.state in (CareState.ALERT, CareState.HANDLING)
            return text, alert_keyboard(
                m.id or 0, taken=m.state == CareState.HANDLING
            ) if open_alert else None
        markup = None
        if m.state == CareState.QUEUED:
            markup = approval_keyboard(m.id or 0, task=m.channel == AGENT_TASK)
        elif m.state == CareState.TASK:
            markup = task_keyboard(m.id or 0)
        return render_approval(item, ctx), markup
    rows = [
        (n, item.message.id or 0, item.message.channel == AGENT_TASK)
        for n, item in enumerate(items, 1)
        if item.message.state == CareState.QUEUED
    ]
    return render_digest(items, ctx, header=digest_header(len(items))), care_digest_keyboard(rows)


def care_text(item: CareItem, templates: TemplateBook, shop_name: str | None) -> str:
    m, c = item.message, item.customer
    template = templates.select(m.rule, [s for s in m.segments.split(",") if s], m.locale)
    values = {
        **json.loads(m.values or "{}"),
        "nickname": c.nickname or c.name,
        "shop_name": shop_name,
    }
    return render(template, values)


class CareEngine:
    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        bot: Bot,
        clock: Clock,
        settings: Settings,
        i18n: I18n,
        table: CareTable,
        templates: TemplateBook,
        channels: Mapping[str, Channel],
        scheduler: AsyncIOScheduler,
        routes: Routes,
    ) -> None:
        self.sessions, self.bot, self.clock, self.settings, self.i18n = sessions, bot, clock, settings, i18n
        self.table, self.templates, self.channels, self.routes = table, templates, channels, routes
        self.schedule = Schedule(settings.quiet_hours, settings.caps, settings.zone)
        self.lease = timedelta(seconds=settings.timer_lease_seconds)
        self.wakeup = Wakeup(scheduler, clock, "care", self._run_due)
        self._slots = asyncio.Semaphore(SEND_CONCURRENCY)
        self._interval = 1.0 / settings.care_send_per_second
        self._next_send = 0.0
        self._inflight: set[asyncio.Task[None]] = set()
        # Claim no more than can go out well within the lease: what waits here past it would be
        # claimed again (harmless, the key dedupes, but wasted) and memory would grow with the backlog.
        rate_bound = settings.care_send_per_second * settings.timer_lease_seconds / 4
        self._max_inflight = int(min(2000, max(SEND_CONCURRENCY * 4, rate_bound)))
        self._gated = False
        self._dirty: dict[tuple[int, int], CareMessage] = {}
        self._redrawing: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self.wakeup.sweep_every(self.settings.timer_sweep_seconds)
        self.wakeup.kick()

    def kick(self) -> None:
        self.wakeup.kick()

    def context(self) -> CareContext:
        return CareContext(self.clock.now(), self.settings.zone)

    # The pass ---------------------------------------------------------------------------------------
    async def _run_due(self) -> None:
        while True:
            self.wakeup.again = False
            looked_at = self.clock.now()
            token = uuid.uuid4().hex
            if len(self._inflight) >= self._max_inflight:
                self._gated = True  # a delivery finishing opens the gate again (_send)
                return
            room = min(care.CLAIM_BATCH, self._max_inflight - len(self._inflight))
            async with self.sessions() as session:
                items = await care.claim_due(
                    session=session, now=looked_at, lease=self.lease, token=token, limit=room
                )
            if items:
                await self._handle(items, token, looked_at)
                continue
            async with self.sessions() as session:
                upcoming = await care.next_fire_at(session=session)
            if self.wakeup.again:
                continue
            now = self.clock.now()
            if upcoming is not None and upcoming > now:
                self.wakeup.wake_at(upcoming)
            elif upcoming is not None and upcoming > looked_at:
                continue
            elif upcoming is not None:  # another process holds it: look again soon
                self.wakeup.wake_at(now + timedelta(seconds=1))
            return

    async def _handle(self, items: list[CareItem], token: str, now: datetime) -> None:
        planned = [i for i in items if i.message.state == CareState.PLANNED]
        sending = [i for i in items if i.message.state == CareState.SENDING]
        if planned:
            await self._queue(planned, token, now)
        for item in sending:  # deliveries run beside the next passes, a bounded number at once
            task = asyncio.get_running_loop().create_task(self._send(item, token))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    # Queueing: from a plan to an approval card ------------------------------------------------------
    def _why_not(self, item: CareItem, now: datetime) -> str | None:
        m = item.message
        facts = order_facts(item.order, item.customer) if item.order is not None else None
        if m.channel != ALERT_CHANNEL and not still_applies(m.rule, facts, now=now):
            return DropReason.NO_LONGER_APPLIES
        if m.channel == ALERT_CHANNEL:
            return None
        excluded = exclusion(reach_of(item.customer), marketing=m.marketing)
        return str(excluded) if excluded else None

    async def _queue(self, items: list[CareItem], token: str, now: datetime) -> None:
        async with self.sessions() as session:
            automatic = await care.automatic_rules(session=session)
            chat_id = await care.primary_chat(session=session)
        cards: list[CareItem] = []
        alerts: list[CareItem] = []
        for item in items:
            m = item.message
            assert m.id is not None
            reason = self._why_not(item, now)
            if reason is not None:
                async with self.sessions() as session:
                    await care.drop(session=session, message_id=m.id, reason=reason, now=now, token=token)
                continue
            if m.channel == ALERT_CHANNEL:
                alerts.append(item)
                continue
            m.text = care_text(item, self.templates, self.settings.shop_name)
            if automatic.get(m.rule, m.automatic) and m.channel != AGENT_TASK:
                async with self.sessions() as session:
                    await care.approve(
                        session=session,
                        message_id=m.id,
                        actor_id=None,
                        actor_name="auto",
                        now=now,
                        schedule=self.schedule,
                        text=m.text,
                        token=token,
                    )
                continue
            cards.append(item)
        if not cards and not alerts:
            self.kick()
            return
        if chat_id is None:
            log.warning("no bound team group: %d care messages wait", len(cards) + len(alerts))
            async with self.sessions() as session:
                await care.postpone(
                    session=session,
                    ids=[i.message.id or 0 for i in cards + alerts],
                    token=token,
                    until=now + NO_CHAT_RETRY,
                    error=DropReason.NO_TEAM_CHAT,
                )
            return
        alerts_thread = await self.routes.thread(chat_id, "alerts")
        approvals_thread = await self.routes.thread(chat_id, "approvals")
        for alert in alerts:
            await self._post(chat_id, alerts_thread, [alert], token, CareState.ALERT)
        if len(cards) <= SINGLE_CARDS:
            for card in cards:
                await self._post(chat_id, approvals_thread, [card], token, CareState.QUEUED)
        else:
            for start in range(0, len(cards), care.DIGEST_MAX):
                chunk = cards[start : start + care.DIGEST_MAX]
                await self._post(chat_id, approvals_thread, chunk, token, CareState.QUEUED)

    async def _post(
        self, chat_id: int, thread_id: int | None, items: list[CareItem], token: str, state: str
    ) -> None:
        ids = [i.message.id or 0 for i in items]
        for item in items:
            item.message.state = state
        try:
            with self.i18n.context(), self.i18n.use_locale(self.settings.default_locale):
                text, markup = draw(items, self.context())
            sent = await self.bot.send_message(
                chat_id, text, reply_markup=markup, message_thread_id=thread_id
            )
        except Exception as exc:  # Telegram refused or is away: the rows come back in a minute
            log.warning("care card for chat %s not posted, will retry: %r", chat_id, exc)
            async with self.sessions() as session:
                await care.postpone(
                    session=session,
                    ids=ids,
                    token=token,
                    until=self.clock.now() + timedelta(minutes=1),
                    error=repr(exc),
                )
            return
        async with self.sessions() as session:
            await care.mark_queued(
                session=session,
                ids=ids,
                token=token,
                chat_id=chat_id,
                thread_id=thread_id,
                message_id=sent.message_id,
                texts={i.message.id or 0: i.message.text or "" for i in items},
                state=state,
            )

    # Delivering ---------------------------------------------------------------------------------------
    async def _pace(self) -> None:
        """The channel's own limit (CARE_SEND_PER_SECOND), shared by all deliveries of this process."""
        now = time.monotonic()
        wait = self._next_send - now
        self._next_send = max(now, self._next_send) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)

    async def _send(self, item: CareItem, token: str) -> None:
        async with self._slots:
            try:
                await self._deliver(item, token)
            except Exception:  # the lease brings the row back; the idempotency key keeps it single
                log.exception("care message %s: delivery failed unexpectedly", item.message.id)
        if self._gated and len(self._inflight) <= self._max_inflight // 2:
            self._gated = False
            self.kick()

    def _side(self, work: Coroutine[Any, Any, None]) -> None:
        """Telegram work after a delivery, off the send slot: the slot paces the channel, not the chat."""
        task = asyncio.get_running_loop().create_task(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def _redraw_soon(self, m: CareMessage) -> None:
        """Outcomes landing together (a digest approved at once) redraw their card once."""
        if m.chat_id is None or m.message_id is None:
            return
        self._dirty[(m.chat_id, m.message_id)] = m
        if self._redrawing is None or self._redrawing.done():
            self._redrawing = asyncio.get_running_loop().create_task(self._redraw_dirty())

    async def _redraw_dirty(self) -> None:
        while self._dirty:
            await asyncio.sleep(REDRAW_AFTER)
            batch, self._dirty = self._dirty, {}
            for m in batch.values():
                try:
                    await self.refresh(m)
                except Exception:  # a card that cannot be redrawn must not stop the others
                    log.exception("care card %s in %s: redraw failed", m.message_id, m.chat_id)

    async def _deliver(self, item: CareItem, token: str) -> None:
        m = item.message
        assert m.id is not None
        now = self.clock.now()
        reason = self._why_not(item, now)
        if reason is not None:
            async with self.sessions() as session:
                await care.drop(session=session, message_id=m.id, reason=reason, now=now, token=token)
            self._redraw_soon(m)
            return
        channel = self.channels.get(m.channel)
        if channel is None:
            result = Result(Outcome.REJECTED, f"the {m.channel} channel is not configured")
        else:
            c = item.customer
            outgoing = Outgoing(
                delivery_id=f"tp-{m.id}",
                customer_id=c.external_id,
                rule=m.rule,
                to=c.email if m.channel == "email" else c.phone,
                text=m.text or "",
                subject=self.settings.shop_name,
                order_no=item.order.order_no if item.order else None,
                locale=m.locale,
            )
            await self._pace()
            try:
                result = await channel.send(outgoing)
            except Exception as exc:  # a channel bug must not lose the message: try again later
                result = Result(Outcome.RETRY, repr(exc)[:200])
        async with self.sessions() as session:
            state = await care.record_result(
                session=session, item=item, token=token, result=result, now=self.clock.now()
            )
        if state in (CareState.DELIVERED, CareState.FAILED) or (state and m.attempts == 0):
            self._redraw_soon(m)
        if state == CareState.FAILED:
            self._side(self._dead_letter(m))

    async def _dead_letter(self, m: CareMessage) -> None:
        if m.chat_id is None or m.id is None:
            return
        async with self.sessions() as session:
            items = await care.load(session=session, ids=[m.id])
        try:
            with self.i18n.context(), self.i18n.use_locale(self.settings.default_locale):
                text, keyboard = dead_letter(items[0]), dead_letter_keyboard(m.id)
            await self.bot.send_message(
                m.chat_id,
                text,
                reply_to_message_id=m.message_id,
                message_thread_id=m.thread_id,
                reply_markup=keyboard,
            )
        except Exception as exc:
            log.warning("dead letter for care message %s not posted: %r", m.id, exc)

    async def refresh(self, m: CareMessage) -> None:
        """Draw the card (or digest) the message is on again, as it stands now."""
        if m.chat_id is None or m.message_id is None:
            return
        async with self.sessions() as session:
            items = await care.on_message(session=session, chat_id=m.chat_id, message_id=m.message_id)
        if not items:
            return
        with self.i18n.context(), self.i18n.use_locale(self.settings.default_locale):
            text, markup = draw(items, self.context())
        try:
            await self.bot.edit_message_text(
                text, chat_id=m.chat_id, message_id=m.message_id, reply_markup=markup
            )
        except TelegramBadRequest as exc:
            log.info("could not redraw care card %s in %s: %s", m.message_id, m.chat_id, exc.message)

    async def close(self) -> None:
        """Let deliveries under way finish and record (SIGTERM, tests)."""
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=15)
        if self._redrawing is not None:
            await asyncio.wait([self._redrawing], timeout=REDRAW_AFTER + 5)
        if self._side_tasks:
            await asyncio.wait(list(self._side_tasks), timeout=5)
        for channel in self.channels.values():
            await channel.close()
