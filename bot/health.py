"""Is this replica fit to take updates? The database and Redis answer, and it is not shutting down.

``/healthz`` says the process is alive (restart it when not); ``/readyz`` says it can do its work
(route traffic to it when so). A failure of either dependency inside a handler is an outage, not a
bug: :func:`is_outage` tells which, so the update is retried instead of reported as a bug.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 2.0
# One "degraded" notice per chat per outage window, not one per message typed during it.
NOTICE_EVERY_SECONDS = 120.0
OUTAGE_ERRORS = (OperationalError, InterfaceError, PoolTimeout, RedisConnectionError, RedisTimeoutError)


def is_outage(exc: BaseException) -> bool:
    if isinstance(exc, OUTAGE_ERRORS):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (ConnectionError, TimeoutError))


@dataclass
class Health:
    engine: AsyncEngine
    redis: Redis | None = None
    shutting_down: bool = False
    _noticed: dict[int, float] = field(default_factory=dict)
    _down: set[str] = field(default_factory=set)

    async def check(self) -> dict[str, str]:
        """Each dependency's state, and logs each change once (down, then back)."""
        states = {"database": await self._probe(self._database())}
        if self.redis is not None:
            states["redis"] = await self._probe(self._redis())
        for name, state in states.items():
            if state != "ok" and name not in self._down:
                self._down.add(name)
                log.warning("degraded: the %s does not answer (%s); retrying", name, state)
            elif state == "ok" and name in self._down:
                self._down.discard(name)
                log.warning("recovered: the %s answers again", name)
        return states

    @property
    def degraded(self) -> bool:
        return bool(self._down)

    async def _probe(self, check: object) -> str:
        try:
            await asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]
        except Exception as exc:
            return type(exc).__name__
        return "ok"

    async def _database(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def _redis(self) -> None:
        assert self.redis is not None
        await self.redis.ping()

    def should_notice(self, chat_id: int) -> bool:
        """Whether to tell this chat about an outage now (once per window)."""
        now = time.monotonic()
        if now - self._noticed.get(chat_id, -NOTICE_EVERY_SECONDS) < NOTICE_EVERY_SECONDS:
            return False
        self._noticed[chat_id] = now
        return True
