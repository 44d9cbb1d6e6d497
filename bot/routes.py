"""Which forum topic each kind of message goes to in a team group (/route), cached briefly: every
reminder and card asks, and a lead's change reaches other processes within the TTL."""

from __future__ import annotations

import time

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from storage import care

KINDS = ("approvals", "reminders", "alerts")


class Routes:
    TTL_SECONDS = 30.0

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self._cache: dict[int, tuple[float, dict[str, int]]] = {}

    async def thread(self, chat_id: int, kind: str) -> int | None:
        """The topic's message_thread_id, or None for the group's general thread (a plain group)."""
        cached = self._cache.get(chat_id)
        if cached is None or time.monotonic() - cached[0] > self.TTL_SECONDS:
            async with self.sessions() as session:
                found = await care.routes(session=session, chat_id=chat_id)
            cached = (time.monotonic(), found)
            self._cache[chat_id] = cached
        return cached[1].get(kind)

    def forget(self, chat_id: int) -> None:
        self._cache.pop(chat_id, None)
