"""Engine and sessions. SQLite runs in WAL mode so the bot reads while an import writes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def ensure_sqlite_dir(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    ensure_sqlite_dir(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class ThreadedReads:
    """Read-only work on SQLite as one call in a worker thread, with a synchronous SQLModel session.

    Through aiosqlite every query costs four thread round trips (cursor, execute, fetch, close),
    which dominates a card look-up; here the whole look-up is one. The event loop never blocks,
    and WAL lets these readers run beside the async engine's writers.
    """

    def __init__(self, async_url: str) -> None:
        self.engine = sa_create_engine(async_url.replace("sqlite+aiosqlite://", "sqlite://", 1))
        event.listen(self.engine, "connect", _sqlite_pragmas)

    async def run(self, work: Callable[[Session], T]) -> T:
        return await asyncio.to_thread(self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session:
            return work(session)

    def close(self) -> None:
        self.engine.dispose()


class ThreadedWrites(ThreadedReads):
    """Units of work on SQLite, each one call in a single dedicated thread.

    One thread means one writer at a time: SQLite admits only one, and makes the rest poll with
    growing sleeps, which is what a busy timer engine would otherwise spend its time on.
    """

    def __init__(self, async_url: str) -> None:
        super().__init__(async_url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writes")

    async def run(self, work: Callable[[Session], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        super().close()
