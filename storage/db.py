"""Engine and sessions. SQLite runs in WAL mode so the bot reads while an import writes."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel import Session
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T")


def sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
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
        event.listen(engine.sync_engine, "connect", sqlite_pragmas)
        return engine
    # A fixed pool: opening a connection (TLS, auth) costs more than an update's queries, so no
    # overflow churn; 20 per replica leaves room for four replicas under PostgreSQL's 100.
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 0)
    # No ping before each checkout (three round trips per update, 8-17% of a replica's CPU in
    # bench/webhook_replicas.py): a connection found dead fails that one unit of work and the pool
    # is renewed; the update is re-delivered (webhook) or the person told to try again.
    kwargs.setdefault("pool_pre_ping", False)
    kwargs.setdefault("pool_recycle", 1800)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class _SqliteEngine:
    """A synchronous engine on the same SQLite file, for work done in worker threads."""

    def __init__(self, async_url: str) -> None:
        self.engine = sa_create_engine(async_url.replace("sqlite+aiosqlite://", "sqlite://", 1))
        event.listen(self.engine, "connect", sqlite_pragmas)

    def close(self) -> None:
        self.engine.dispose()


class ThreadedReads(_SqliteEngine):
    """Read-only work on SQLite as one call in a worker thread, on the sqlite3 connection itself.

    Through aiosqlite every query costs four thread round trips (cursor, execute, fetch, close),
    which dominates a card look-up; here the whole look-up is one, and its statements skip
    SQLAlchemy's per-statement work (storage.sqlite_reads). The event loop never blocks, and WAL
    lets these readers run beside the async engine's writers.
    """

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._run, work)

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self.engine.raw_connection()
        try:
            return work(conn.driver_connection)  # type: ignore[arg-type]
        finally:
            conn.close()  # back to the pool


class ThreadedWrites(_SqliteEngine):
    """Units of work on SQLite, each one call with a synchronous SQLModel session in a single
    dedicated thread.

    One thread means one writer at a time: SQLite admits only one, and makes the rest poll with
    growing sleeps, which is what a busy timer engine would otherwise spend its time on.
    """

    def __init__(self, async_url: str) -> None:
        super().__init__(async_url)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-writes")

    async def run(self, work: Callable[[Session], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, self._run, work)

    def _run(self, work: Callable[[Session], T]) -> T:
        with Session(self.engine, expire_on_commit=False) as session:
            return work(session)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        super().close()


# The stdlib sqlite3 connection under a synchronous SQLAlchemy connection, for hot paths that skip
# SQLAlchemy's per-row work. Values must be stored exactly as the ORM stores them (sqlmodel's
# UTCDateTime over SQLAlchemy's SQLite DATETIME: UTC, "YYYY-MM-DD HH:MM:SS.ffffff", no offset; DATE:
# "YYYY-MM-DD"; booleans 0/1), so every other reader keeps working.
def sqlite_driver(conn: Any) -> sqlite3.Connection | None:
    """The sqlite3 connection under a synchronous SQLAlchemy Connection, or None (PostgreSQL,
    aiosqlite)."""
    if conn.dialect.name != "sqlite":
        return None
    driver = conn.connection.driver_connection
    return driver if isinstance(driver, sqlite3.Connection) else None


@lru_cache(maxsize=8192)  # a batch's events share a few instants; aware datetimes hash by instant
def db_time(value: datetime) -> str:
    """An aware datetime as the ORM stores it on SQLite."""
    if value.tzinfo is None:
        raise ValueError("Datetime values must have timezone information.")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


@lru_cache(maxsize=8192)
def py_time(value: str | None) -> datetime | None:
    """A stored SQLite datetime as the ORM reads it: aware, UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def py_date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def db_value(value: Any) -> Any:
    """Any bound value as the ORM stores it on SQLite (datetimes and dates converted)."""
    kind = type(value)
    if kind is datetime:
        return db_time(value)
    if kind is date:
        return value.isoformat()
    return value


def insert_for(dialect: Dialect) -> Any:
    """The dialect's INSERT construct (it has on_conflict_do_nothing / _do_update): the two
    databases Touchpoint runs on spell upserts alike, each through its own construct."""
    return postgresql.insert if dialect.name == "postgresql" else sqlite.insert
