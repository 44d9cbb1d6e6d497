"""What several bot processes share so that each update, and each scheduled job, is handled once.

With ``REDIS_URL`` set, the ledger of Telegram updates and the job locks live in Redis; without it
(one process) they live in memory. Timers and care messages need nothing here: their rows are
claimed in the database (``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import wraps
from typing import Any, Protocol

from redis.asyncio import Redis

log = logging.getLogger(__name__)

# Telegram keeps an undelivered update for 24 hours, so a re-delivery can come that late.
LEDGER_TTL_SECONDS = 24 * 3600
# A replica that dies mid-update leaves its claim; after this long another may take the update.
CLAIM_TTL_SECONDS = 60
KEY_PREFIX = "touchpoint"


class Claim(enum.Enum):
    MINE = "mine"  # handle it
    DONE = "done"  # handled before: answer 200 and do nothing
    BUSY = "busy"  # another replica is handling it right now: let Telegram try again later


class UpdateLedger(Protocol):
    async def claim(self, update_id: int) -> Claim: ...
    async def finish(self, update_id: int) -> None: ...
    async def release(self, update_id: int) -> None: ...


class RedisLedger:
    """``SET NX`` with a short expiry while handling, then a 24-hour "done" mark."""

    def __init__(self, redis: Redis, bot_id: int) -> None:
        self._redis = redis
        self._prefix = f"{KEY_PREFIX}:update:{bot_id}:"

    async def claim(self, update_id: int) -> Claim:
        key = self._prefix + str(update_id)
        if await self._redis.set(key, "busy", nx=True, ex=CLAIM_TTL_SECONDS):
            return Claim.MINE
        state = await self._redis.get(key)
        if state is None:  # the claim expired between the two calls
            return await self.claim(update_id)
        return Claim.DONE if state in (b"done", "done") else Claim.BUSY

    async def finish(self, update_id: int) -> None:
        await self._redis.set(self._prefix + str(update_id), "done", ex=LEDGER_TTL_SECONDS)

    async def release(self, update_id: int) -> None:
        await self._redis.delete(self._prefix + str(update_id))


class MemoryLedger:
    """One process: the last 100 000 updates, enough for a day of a busy team."""

    def __init__(self, size: int = 100_000) -> None:
        self._seen: OrderedDict[int, bool] = OrderedDict()  # update_id → finished
        self._size = size

    async def claim(self, update_id: int) -> Claim:
        state = self._seen.get(update_id)
        if state is None:
            self._seen[update_id] = False
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)
            return Claim.MINE
        return Claim.DONE if state else Claim.BUSY

    async def finish(self, update_id: int) -> None:
        self._seen[update_id] = True

    async def release(self, update_id: int) -> None:
        self._seen.pop(update_id, None)


Job = Callable[..., Awaitable[Any]]


def once_per_fire(
    redis: Redis | None, job_id: str, job: Job, *, bot_id: int, hold_seconds: int = 3600
) -> Job:
    """Wrap a scheduled job so that, of all replicas whose scheduler fires it at the same minute,
    one runs it: the first to ``SET NX`` the key for that minute. The key expires (no release), so a
    replica whose clock lags a little does not run it again once the first has finished."""
    if redis is None:
        return job

    @wraps(job)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        minute = datetime.fromtimestamp(time.time()).strftime("%Y%m%d%H%M")
        key = f"{KEY_PREFIX}:job:{bot_id}:{job_id}:{minute}"  # two bots may share one Redis
        if not await redis.set(key, str(time.time()), nx=True, ex=hold_seconds):
            log.info("scheduled job %s already taken by another replica", job_id)
            return None
        return await job(*args, **kwargs)

    return guarded


def connect_redis(url: str) -> Redis:
    # Short timeouts: a Redis that went away must fail a call quickly, not hang a handler.
    return Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3, health_check_interval=15)
