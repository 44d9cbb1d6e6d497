"""Bound chats and agents, read on every update and written rarely: cached in the process.

Entries live a short while, so a change made by another replica shows within that time; a change
made here (bind, unbind, /lang, a new sighting) replaces the entry at once.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from sqlmodel.ext.asyncio.session import AsyncSession

from storage import team
from storage.models import Agent, TeamChat

T = TypeVar("T")


class _TtlCache(Generic[T]):
    """A value per key for `ttl` seconds. Each forget bumps the key's generation, so a read that
    started before a change cannot put the old value back when it finishes after it."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl, self._clock = ttl, clock
        self._items: dict[int, tuple[float, T | None]] = {}
        self._generations: dict[int, int] = {}

    def get(self, key: int) -> tuple[bool, T | None]:
        hit = self._items.get(key)
        if hit is None or self._clock() - hit[0] > self._ttl:
            return False, None
        return True, hit[1]

    def generation(self, key: int) -> int:
        return self._generations.get(key, 0)

    def put(self, key: int, value: T | None, generation: int | None = None) -> None:
        if generation is not None and generation != self.generation(key):
            return  # changed while this value was being read: it is already stale
        if len(self._items) > 50_000:  # bounded: a bot sees far fewer people than this between sweeps
            self._items.clear()
        self._items[key] = (self._clock(), value)

    def forget(self, key: int) -> None:
        self._items.pop(key, None)
        self._generations[key] = self.generation(key) + 1


class TeamDirectory:
    TTL_SECONDS = 30.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._chats: _TtlCache[TeamChat] = _TtlCache(self.TTL_SECONDS, clock)
        self._agents: _TtlCache[Agent] = _TtlCache(self.TTL_SECONDS, clock)

    async def chat(self, session: AsyncSession, chat_id: int) -> TeamChat | None:
        return await self._cached(
            self._chats, chat_id, lambda: team.active_chat(session=session, chat_id=chat_id)
        )

    async def agent(self, session: AsyncSession, user_id: int) -> Agent | None:
        return await self._cached(
            self._agents, user_id, lambda: team.get_agent(session=session, user_id=user_id)
        )

    @staticmethod
    async def _cached(cache: _TtlCache[T], key: int, load: Callable[[], Awaitable[T | None]]) -> T | None:
        known, value = cache.get(key)
        if not known:
            generation = cache.generation(key)
            value = await load()
            cache.put(key, value, generation)
        return value

    def remember_agent(self, agent: Agent) -> None:
        self._agents.forget(agent.user_id)
        self._agents.put(agent.user_id, agent)

    def forget_chat(self, chat_id: int) -> None:
        self._chats.forget(chat_id)

    def forget_agent(self, user_id: int) -> None:
        self._agents.forget(user_id)
