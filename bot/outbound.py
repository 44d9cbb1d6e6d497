"""The one place every Bot API call passes through: paced to Telegram's limits, retried on 429.

Pacing books a send time for each outgoing message per chat (GCRA with a short burst, plus a
sliding minute window per group), then takes the bot-wide pace when it is time to send, so bursts
queue here instead of earning 429s. A 429 that still arrives pushes that chat's schedule back by
`retry_after` and the call is retried; so are 5xx answers and network errors, with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

from bot.metrics import METRICS
from bot.update_effects import note_call

log = logging.getLogger(__name__)

# New messages count against every limit; edits only against the per-chat and global pace.
SEND_METHODS = frozenset(
    {"sendMessage", "sendPhoto", "sendDocument", "sendMediaGroup", "copyMessage", "forwardMessage"}
)
PRUNE_EVERY = 10_000
# Telegram counts a message when it arrives, we when we send it: network jitter can bring two
# sends closer together on arrival than they left. A little slack on each limit absorbs it.
CHAT_SLACK_SECONDS = 0.1
GROUP_SLACK_SECONDS = 0.5
GLOBAL_SLACK_SECONDS = 0.1  # per second's worth of sends
EDIT_METHODS = frozenset({"editMessageText", "editMessageReplyMarkup", "editMessageCaption"})
# A longer wait than this is not waited out inside one update: the error goes up and is reported.
MAX_RETRY_AFTER = 120


class SendPacer:
    def __init__(
        self,
        *,
        per_chat_per_second: float = 1.0,
        chat_burst: int = 3,
        per_group_per_minute: int = 20,
        global_per_second: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._chat_interval = 1.0 / per_chat_per_second + CHAT_SLACK_SECONDS
        self._chat_tolerance = (chat_burst - 1) * self._chat_interval
        self._global_interval = (1.0 + GLOBAL_SLACK_SECONDS) / global_per_second
        self._group_limit = per_group_per_minute
        self._clock = clock
        self._chat_tat: dict[int | str, float] = defaultdict(float)
        self._global_next = 0.0
        self._group_sends: dict[int | str, deque[float]] = defaultdict(deque)
        self._sends_since_prune = 0

    def reserve(self, chat_id: int | str | None, *, counts_for_group: bool = True) -> float:
        """Seconds to wait for the slot `book` books."""
        return self.book(chat_id, counts_for_group=counts_for_group) - self._clock()

    def book(self, chat_id: int | str | None, *, counts_for_group: bool = True) -> float:
        """Book the earliest moment this chat may get its next message (on the pacer's clock).

        Bookings are per chat, so a chat told to wait (a 429, a full group minute) holds up only itself.
        """
        now = self._clock()
        if chat_id is None:
            return now
        self._sends_since_prune += 1
        if self._sends_since_prune >= PRUNE_EVERY:
            self._prune(now)
        at = max(now, self._chat_tat[chat_id] - self._chat_tolerance)
        window = self._group_sends[chat_id] if counts_for_group and _is_group(chat_id) else None
        if window is not None:
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self._group_limit:
                at = max(at, window[-self._group_limit] + 60.0 + GROUP_SLACK_SECONDS)
            window.append(at)
        self._chat_tat[chat_id] = max(self._chat_tat[chat_id], at) + self._chat_interval
        return at

    def settle(self, chat_id: int | str | None, booked: float, *, counts_for_group: bool = True) -> None:
        """The message goes out now, later than booked (it waited for the bot-wide pace): move its
        booking to the real moment, since Telegram counts the real one."""
        if chat_id is None:
            return
        now = self._clock()
        if now <= booked:
            return
        self._chat_tat[chat_id] = max(self._chat_tat[chat_id], now + self._chat_interval)
        window = self._group_sends.get(chat_id) if counts_for_group else None
        if window and booked in window:
            window.remove(booked)
            window.append(now)
            if len(window) > 1 and window[-2] > now:
                self._group_sends[chat_id] = deque(sorted(window))

    def _prune(self, now: float) -> None:
        """Forget chats whose bookings are all in the past: the maps stay as small as the active set."""
        self._sends_since_prune = 0
        for chat_id in [c for c, tat in self._chat_tat.items() if tat < now - 60.0]:
            del self._chat_tat[chat_id]
        for chat_id in [
            c for c, window in self._group_sends.items() if not window or window[-1] < now - 60.0
        ]:
            del self._group_sends[chat_id]

    def now(self) -> float:
        return self._clock()

    def global_wait(self) -> float:
        """The bot-wide pace, taken at the moment of sending: 0 means go (and the slot is used)."""
        now = self._clock()
        if now < self._global_next:
            return self._global_next - now
        self._global_next = now + self._global_interval
        return 0.0

    def back_off(self, chat_id: int | str | None, seconds: float) -> None:
        """Telegram said wait: nothing more to that chat (or at all) until then."""
        until = self._clock() + seconds
        if chat_id is None:
            self._global_next = max(self._global_next, until)
        else:
            self._chat_tat[chat_id] = max(self._chat_tat[chat_id], until + self._chat_tolerance)


def _is_group(chat_id: int | str) -> bool:
    return isinstance(chat_id, str) or chat_id < 0


class PacedRequests(BaseRequestMiddleware):
    """aiogram request middleware: pace, then call, then retry what Telegram asks us to retry."""

    def __init__(self, pacer: SendPacer, *, max_retries: int = 5, max_backoff: float = 30.0) -> None:
        self.pacer = pacer
        self.max_retries = max_retries
        self.max_backoff = max_backoff
        self._response_types: dict[type, type] = {}

    def _pin_response_type(self, method: TelegramMethod[Any]) -> None:
        # aiogram parses every answer with Response[<return type>]; pydantic keeps parametrised
        # generics only weakly, so without a strong reference each call rebuilds the class
        # (a quarter of the CPU time of a card look-up, measured with py-spy).
        kind = type(method)
        if kind not in self._response_types:
            self._response_types[kind] = Response[method.__returning__]  # type: ignore[name-defined]

    async def _global_turn(self) -> None:
        # Polling a monotonic schedule: each sleep lasts exactly until the next free slot.
        wait = self.pacer.global_wait()
        while wait > 0:
            await asyncio.sleep(wait)
            wait = self.pacer.global_wait()

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        self._pin_response_type(method)
        paced = name in SEND_METHODS or name in EDIT_METHODS
        chat_id = getattr(method, "chat_id", None) if paced else None
        attempt = 0
        while True:
            if paced:
                counts = name in SEND_METHODS
                booked = self.pacer.book(chat_id, counts_for_group=counts)
                wait = booked - self.pacer.now()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._global_turn()
                self.pacer.settle(chat_id, booked, counts_for_group=counts)
            try:
                METRICS.sends.labels(method=name).inc()
                note_call(name)
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                # 429: Telegram did not take the message, so sending again cannot duplicate it.
                METRICS.too_many.inc()
                if attempt >= self.max_retries or exc.retry_after > MAX_RETRY_AFTER:
                    raise
                log.warning("429 on %s, retrying after %ss", name, exc.retry_after)
                if chat_id is not None:
                    self.pacer.back_off(chat_id, float(exc.retry_after))
                await asyncio.sleep(float(exc.retry_after))
            except (TelegramServerError, TelegramNetworkError) as exc:
                if attempt >= self.max_retries or not _safe_to_repeat(name, exc):
                    raise
                delay = min(self.max_backoff, 0.5 * 2**attempt)
                log.warning("%s on %s, retrying in %.1fs", type(exc).__name__, name, delay)
                await asyncio.sleep(delay)
            attempt += 1


def _safe_to_repeat(method: str, exc: Exception) -> bool:
    """Whether a failed call may be sent again without risking a second copy in the chat.

    Edits, answers and reads are idempotent. A new message is repeated only when Telegram cannot
    have taken it: a 5xx answer (Telegram failed the request), or no connection at all. A timeout
    or a dropped connection after sending may have delivered it, so that error goes up instead.
    """
    if method not in SEND_METHODS:
        return True
    if isinstance(exc, TelegramServerError):
        return True
    return isinstance(exc.__cause__, aiohttp.ClientConnectorError)


def install_pacing(bot: Bot, pacer: SendPacer, *, max_retries: int) -> PacedRequests:
    middleware = PacedRequests(pacer, max_retries=max_retries)
    bot.session.middleware(middleware)
    return middleware
